//! The Events API: its own token, introspection, cursor paging of sign-in attempts and audit events.

use std::time::Duration;

use crate::support::*;
use onepassword_sim::SimConfig;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn needs_its_own_token() {
    let h = start_default().await;
    for token in [None, Some(SCIM_TOKEN), Some("nope")] {
        let r = h.send(Method::GET, "/api/v2/auth/introspect", token, None).await;
        assert_eq!(r.status, 401);
        assert_eq!(r.body["Error"]["Message"], "Unauthorized");
    }
    let r = h.send(Method::GET, "/api/v2/auth/introspect", Some(EVENTS_TOKEN), None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["features"], json!(["auditevents", "itemusages", "signinattempts"]));
    assert!(r.body["account_uuid"].is_string() && r.body["issued_at"].is_string());
}

#[tokio::test]
async fn disabled_without_a_token() {
    let h = start(SimConfig { events_token: None, ..SimConfig::default() }).await;
    let r = h.send(Method::POST, "/api/v2/signinattempts", Some(EVENTS_TOKEN), Some(json!({"limit": 10}))).await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn sign_ins_page_with_limit_and_cursor() {
    let h =
        start(SimConfig { clock_start: Some("2026-03-01T00:00:00Z".parse().unwrap()), ..SimConfig::default() }).await;
    let state = h.sim.state();
    let mut ids = Vec::new();
    for i in 0..5 {
        let id = id_of(&h.create_user(&format!("u{i}@example.com"), "U", "N").await);
        state.advance_clock(Duration::from_secs(60));
        state.accept_invitation(&id).unwrap();
        ids.push(id);
    }
    let first = h.events("/signinattempts", json!({"limit": 2, "start_time": "2026-03-01T00:00:00Z"})).await;
    assert_eq!(first.status, 200);
    assert_eq!(first.body["items"].as_array().unwrap().len(), 2);
    assert_eq!(first.body["has_more"], true);
    assert_eq!(first.body["items"][0]["target_user"]["uuid"], ids[0]);
    assert_eq!(first.body["items"][0]["category"], "success");
    assert_eq!(first.body["items"][0]["type"], "credentials_ok");

    let mut seen: Vec<String> = first.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["target_user"]["uuid"].as_str().unwrap().to_owned())
        .collect();
    let mut cursor = first.body["cursor"].as_str().unwrap().to_owned();
    loop {
        let page = h.events("/signinattempts", json!({"cursor": cursor})).await.body;
        seen.extend(
            page["items"].as_array().unwrap().iter().map(|i| i["target_user"]["uuid"].as_str().unwrap().to_owned()),
        );
        cursor = page["cursor"].as_str().unwrap().to_owned();
        if page["has_more"] == false {
            break;
        }
    }
    assert_eq!(seen, ids);

    // Polling the last cursor later returns only what is new.
    let empty = h.events("/signinattempts", json!({"cursor": cursor})).await.body;
    assert_eq!(empty["items"], json!([]));
    state.record_failed_sign_in(&ids[0]).unwrap();
    let new = h.events("/signinattempts", json!({"cursor": empty["cursor"]})).await.body;
    assert_eq!(new["items"][0]["category"], "credentials_failed");

    // start_time narrows the window.
    let later = h.events("/signinattempts", json!({"limit": 100, "start_time": "2026-03-01T00:04:00Z"})).await.body;
    assert_eq!(later["items"].as_array().unwrap().len(), 3, "{later}");
}

#[tokio::test]
async fn audit_events_record_provisioning() {
    let h = start_default().await;
    let id = id_of(&h.create_user("a@example.com", "A", "B").await);
    h.sim.state().accept_invitation(&id).unwrap();
    h.patch_user(&id, json!([{"op": "replace", "path": "active", "value": false}])).await;
    let page = h.events("/auditevents", json!({"limit": 100})).await.body;
    let actions: Vec<_> =
        page["items"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap().to_owned()).collect();
    assert_eq!(actions, vec!["provsn", "join", "suspend"]);
    assert!(page["items"].as_array().unwrap().iter().all(|e| e["object_uuid"] == id.as_str()));
    let usages = h.events("/itemusages", json!({"limit": 10})).await.body;
    assert_eq!((usages["items"].clone(), usages["has_more"].clone()), (json!([]), json!(false)));
}

#[tokio::test]
async fn bad_requests_are_400() {
    let h = start_default().await;
    for body in
        [json!({"limit": 0}), json!({"limit": 5000}), json!({"cursor": "garbage"}), json!({"start_time": "yesterday"})]
    {
        let r = h.events("/signinattempts", body.clone()).await;
        assert_eq!(r.status, 400, "{body}");
        assert!(r.body["Error"]["Message"].is_string());
    }
    // A cursor of one feature is not valid for another.
    let c = h.events("/signinattempts", json!({"limit": 1})).await.body["cursor"].clone();
    assert_eq!(h.events("/auditevents", json!({"cursor": c})).await.status, 400);
}
