//! The `/_sim/` control API over HTTP, and the operations log.

use crate::support::*;
use onepassword_sim::SimConfig;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn seed_accept_expire_and_read_back() {
    let h =
        start(SimConfig { clock_start: Some("2026-02-01T00:00:00Z".parse().unwrap()), ..SimConfig::default() }).await;
    let seeded = h
        .control(
            Method::POST,
            "/seed",
            Some(json!({
                "users": [{"user_name": "a@example.com", "state": "invited"},
                          {"user_name": "b@example.com", "given_name": "Bo", "family_name": "Bee", "state": "active"}],
                "groups": [{"display_name": "Eng", "members": ["a@example.com", "b@example.com"]}],
            })),
        )
        .await;
    assert_eq!(seeded.status, 200, "{}", seeded.body);
    assert_eq!(seeded.body["user_ids"].as_array().unwrap().len(), 2);

    let groups = h.control(Method::GET, "/groups", None).await.body;
    let eng = groups.as_array().unwrap().iter().find(|g| g["display_name"] == "Eng").unwrap();
    assert_eq!(eng["members"].as_array().unwrap().len(), 2);
    assert_eq!(eng["managed"], true);
    assert!(groups.as_array().unwrap().iter().any(|g| g["display_name"] == "Owners" && g["protected"] == true));
    // Seeded groups are visible through SCIM with their members.
    let scim = h.scim(Method::GET, "/Groups", None).await.body;
    assert_eq!(scim["Resources"][0]["members"].as_array().unwrap().len(), 2);

    let accepted = h.control(Method::POST, "/users/a@example.com/accept", None).await;
    assert_eq!((accepted.status.as_u16(), accepted.body["lifecycle"].clone()), (200, json!("active")));
    assert_eq!(h.control(Method::POST, "/users/a@example.com/accept", None).await.status, 409);
    assert_eq!(h.control(Method::POST, "/users/nobody/accept", None).await.status, 404);

    let now = h.control(Method::GET, "/clock", None).await.body["now"].clone();
    assert_eq!(now, "2026-02-01T00:00:00Z");
    let advanced = h.control(Method::POST, "/clock/advance", Some(json!({"days": 5, "hours": 1}))).await.body;
    assert_eq!(advanced["now"], "2026-02-06T01:00:00Z");
    assert_eq!(h.control(Method::POST, "/clock/advance", Some(json!({"weeks": 1}))).await.status, 400);

    let users = h.control(Method::GET, "/users", None).await.body;
    assert_eq!(users.as_array().unwrap().len(), 2);
    let b = h.control(Method::GET, "/users/b@example.com", None).await.body;
    assert_eq!((b["lifecycle"].clone(), b["groups"].clone()), (json!("active"), json!(["Eng"])));

    let c = h.scim(Method::POST, "/Users", Some(json!({"userName": "c@example.com"}))).await.body;
    let expired = h.control(Method::POST, &format!("/users/{}/expire-invitation", id_of(&c)), None).await;
    assert_eq!(expired.body["lifecycle"], "invitation_expired");
    let outbox = h.control(Method::GET, "/outbox", None).await.body;
    assert_eq!(outbox.as_array().unwrap().len(), 1);
    assert_eq!((outbox[0]["email"].clone(), outbox[0]["kind"].clone()), (json!("c@example.com"), json!("first")));

    assert_eq!(h.control(Method::GET, "/violations", None).await.body, json!([]));
    assert_eq!(h.control(Method::GET, "/account-changes", None).await.body, json!([]));
    assert_eq!(h.control(Method::POST, "/seed", Some(json!({"users": [{"state": "active"}]}))).await.status, 400);
    assert_eq!(h.control(Method::POST, "/seed", Some(json!("not a seed"))).await.status, 400);

    assert_eq!(h.control(Method::POST, "/reset", None).await.status, 204);
    assert_eq!(h.control(Method::GET, "/users", None).await.body, json!([]));
}

#[tokio::test]
async fn operations_log_records_every_bridge_request_but_not_control_calls() {
    let h = start_default().await;
    h.create_user("a@example.com", "A", "B").await;
    h.send(Method::GET, "/scim/Users?filter=userName%20eq%20%22a%40example.com%22", Some(SCIM_TOKEN), None).await;
    h.send(Method::GET, "/scim/v2/Users", None, None).await;
    h.events("/signinattempts", json!({"limit": 1})).await;
    h.control(Method::GET, "/users", None).await;

    let ops = h.control(Method::GET, "/operations", None).await.body;
    let ops = ops.as_array().unwrap();
    let summary: Vec<_> = ops
        .iter()
        .map(|o| (o["method"].as_str().unwrap(), o["path"].as_str().unwrap(), o["status"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("POST", "/scim/v2/Users", 200),
            ("GET", "/scim/Users", 200),
            ("GET", "/scim/v2/Users", 401),
            ("POST", "/api/v2/signinattempts", 200),
        ]
    );
    assert_eq!(ops[1]["query"], "filter=userName%20eq%20%22a%40example.com%22");
    assert!(ops.iter().all(|o| o["at"].is_string()));
    assert_eq!(h.control(Method::DELETE, "/operations", None).await.status, 204);
    assert_eq!(h.sim.state().operations(), vec![]);
}

#[tokio::test]
async fn control_api_can_be_switched_off() {
    let h = start(SimConfig { control_api: false, ..SimConfig::default() }).await;
    assert_eq!(h.control(Method::GET, "/users", None).await.status, 404);
    assert_eq!(h.control(Method::POST, "/reset", None).await.status, 404);
}
