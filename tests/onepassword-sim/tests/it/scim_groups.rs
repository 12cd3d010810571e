//! SCIM `/Groups`: managed groups only, protected groups refuse changes, both membership forms.

use crate::support::*;
use onepassword_sim::{ProtectedGroupError, Seed, SeedGroup, SimConfig};
use reqwest::Method;
use serde_json::json;

fn protected_id(h: &Harness, name: &str) -> String {
    h.sim.state().groups().into_iter().find(|g| g.display_name == name).expect("built-in group").id
}

#[tokio::test]
async fn list_shows_only_managed_groups() {
    let h = start_default().await;
    let empty = h.scim(Method::GET, "/Groups", None).await.body;
    assert_eq!(empty["totalResults"], 0, "built-in groups are hidden: {empty}");
    assert!(h.sim.state().groups().iter().any(|g| g.display_name == "Owners" && g.protected && !g.managed));

    let created = h.scim(Method::POST, "/Groups", Some(json!({"displayName": "Engineering"}))).await;
    assert_eq!(created.status, 200);
    let id = id_of(&created.body);
    assert_eq!(id, id.to_lowercase(), "group ids are lower-case");
    assert!(created.body["meta"]["created"].is_string());
    let list = h.scim(Method::GET, "/Groups", None).await.body;
    assert_eq!(list["totalResults"], 1);
    assert_eq!(list["Resources"][0]["displayName"], "Engineering");
    let filtered = h.scim(Method::GET, "/Groups?filter=displayName%20eq%20%22engineering%22", None).await.body;
    assert_eq!(filtered["totalResults"], 1);
    let hidden = h.scim(Method::GET, "/Groups?filter=displayName%20eq%20%22Owners%22", None).await.body;
    assert_eq!(hidden["totalResults"], 0);
}

#[tokio::test]
async fn protected_groups_refuse_every_change_with_403() {
    let h = start_default().await;
    let user = id_of(&h.create_user("p@example.com", "P", "Q").await);
    for name in ["Owners", "Administrators", "Recovery", "Provision Managers"] {
        let id = protected_id(&h, name);
        h.patch_group(&id, json!([{"op": "add", "path": "members", "value": [{"value": user}]}]))
            .await
            .assert_scim_error(403, None);
        h.scim(Method::PUT, &format!("/Groups/{id}"), Some(json!({"displayName": name})))
            .await
            .assert_scim_error(403, None);
        h.scim(Method::DELETE, &format!("/Groups/{id}"), None).await.assert_scim_error(403, None);
        h.scim(Method::POST, "/Groups", Some(json!({"displayName": name.to_uppercase()})))
            .await
            .assert_scim_error(403, None);
        assert!(h.sim.state().groups().iter().find(|g| g.id == id).unwrap().members.is_empty());
    }
    let eng = id_of(&h.scim(Method::POST, "/Groups", Some(json!({"displayName": "Eng"}))).await.body);
    h.patch_group(&eng, json!([{"op": "replace", "path": "displayName", "value": "Administrators"}]))
        .await
        .assert_scim_error(403, None);
}

#[tokio::test]
async fn protected_group_error_400_and_extra_names_by_switch() {
    let config = SimConfig {
        protected_group_error: ProtectedGroupError::BadRequest400,
        extra_protected_groups: vec!["Finance Admins".into()],
        ..SimConfig::default()
    };
    let h = start(config).await;
    h.scim(Method::POST, "/Groups", Some(json!({"displayName": "finance admins"}))).await.assert_scim_error(400, None);
    let id = protected_id(&h, "Owners");
    h.scim(Method::DELETE, &format!("/Groups/{id}"), None).await.assert_scim_error(400, None);
}

#[tokio::test]
async fn members_add_and_remove_in_both_forms() {
    let h = start_default().await;
    let a = id_of(&h.create_user("a@example.com", "A", "A").await);
    let b = id_of(&h.create_user("b@example.com", "B", "B").await);
    let g = id_of(&h.scim(Method::POST, "/Groups", Some(json!({"displayName": "Eng"}))).await.body);

    let r = h.patch_group(&g, json!([{"op": "add", "path": "members", "value": [{"value": a}, {"value": b}]}])).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["members"].as_array().unwrap().len(), 2);
    // Invited (not yet accepted) users can be added: that is what provisioning invites are for.
    let user = h.scim(Method::GET, &format!("/Users/{a}"), None).await.body;
    assert_eq!(user["groups"], json!([{"value": g, "display": "Eng"}]));

    // Okta form.
    let r = h.patch_group(&g, json!([{"op": "remove", "path": format!("members[value eq \"{a}\"]")}])).await;
    assert_eq!(r.body["members"], json!([{"value": b, "type": "User"}]));
    // Entra form, capitalised.
    let r = h.patch_group(&g, json!([{"op": "Remove", "path": "members", "value": [{"value": b}]}])).await;
    assert_eq!(r.body["members"], json!([]));
    assert!(h.scim(Method::GET, &format!("/Users/{a}"), None).await.body.get("groups").is_none());

    // Entra's path-less replace, and an unknown member.
    let r = h.patch_group(&g, json!([{"op": "Add", "value": {"members": [{"value": a}]}}])).await;
    assert_eq!(r.body["members"].as_array().unwrap().len(), 1);
    h.patch_group(&g, json!([{"op": "add", "path": "members", "value": [{"value": "NOTAUSER"}]}]))
        .await
        .assert_scim_error(400, Some("invalidValue"));
    assert_eq!(h.sim.state().groups().iter().find(|x| x.id == g).unwrap().members, vec![a]);
}

#[tokio::test]
async fn rename_get_put_delete() {
    let h = start_default().await;
    let a = id_of(&h.create_user("a@example.com", "A", "A").await);
    let g = id_of(
        &h.scim(Method::POST, "/Groups", Some(json!({"displayName": "Eng", "members": [{"value": a}]}))).await.body,
    );
    let r = h.patch_group(&g, json!([{"op": "replace", "path": "displayName", "value": "Engineering"}])).await;
    assert_eq!(r.body["displayName"], "Engineering");
    assert_eq!(h.scim(Method::GET, &format!("/Groups/{g}"), None).await.body["displayName"], "Engineering");
    let excluded = h.scim(Method::GET, &format!("/Groups/{g}?excludedAttributes=members"), None).await.body;
    assert!(excluded.get("members").is_none());

    h.scim(Method::POST, "/Groups", Some(json!({"displayName": "ENGINEERING"})))
        .await
        .assert_scim_error(409, Some("uniqueness"));

    let put = h.scim(Method::PUT, &format!("/Groups/{g}"), Some(json!({"displayName": "Eng2", "members": []}))).await;
    assert_eq!((put.body["displayName"].clone(), put.body["members"].clone()), (json!("Eng2"), json!([])));

    assert_eq!(h.scim(Method::DELETE, &format!("/Groups/{g}"), None).await.status, 204);
    h.scim(Method::GET, &format!("/Groups/{g}"), None).await.assert_scim_error(404, None);
    assert_eq!(h.scim(Method::GET, &format!("/Users/{a}"), None).await.status, 200, "members survive");
}

#[tokio::test]
async fn existing_unmanaged_group_is_adopted_by_name() {
    let h = start_default().await;
    let state = h.sim.state();
    state
        .seed(Seed {
            users: vec![],
            groups: vec![SeedGroup { display_name: "Designers".into(), managed: Some(false), ..SeedGroup::default() }],
        })
        .unwrap();
    assert_eq!(h.scim(Method::GET, "/Groups", None).await.body["totalResults"], 0);
    let existing = state.groups().into_iter().find(|g| g.display_name == "Designers").unwrap();
    let created = h.scim(Method::POST, "/Groups", Some(json!({"displayName": "Designers"}))).await;
    assert_eq!(created.body["id"], existing.id, "matched by exact name, not duplicated");
    assert_eq!(h.scim(Method::GET, "/Groups", None).await.body["totalResults"], 1);
}

#[tokio::test]
async fn members_can_be_hidden_from_group_responses_by_switch() {
    let h = start(SimConfig { group_members_in_responses: false, ..SimConfig::default() }).await;
    let a = id_of(&h.create_user("a@example.com", "A", "A").await);
    let g = h.scim(Method::POST, "/Groups", Some(json!({"displayName": "Eng", "members": [{"value": a}]}))).await.body;
    assert!(g.get("members").is_none());
    assert_eq!(h.sim.state().groups().iter().find(|x| x.display_name == "Eng").unwrap().members.len(), 1);
}
