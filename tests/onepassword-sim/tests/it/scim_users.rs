//! SCIM `/Users` over real HTTP: auth, shapes, filters, paging, PATCH forms, DELETE, conflicts.

use crate::support::*;
use onepassword_sim::{
    ConflictMode, CreateStatus, FilterMode, Lifecycle, SeedState, SeedUser, SimConfig, SuspendedEmailChange, UserGroups,
};
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn missing_or_wrong_token_is_401_with_scim_error() {
    let h = start_default().await;
    for token in [None, Some("wrong-token"), Some("sim-scim-token-but-longer")] {
        let reply = h.send(Method::GET, "/scim/v2/Users", token, None).await;
        reply.assert_scim_error(401, None);
        assert_eq!(reply.headers["www-authenticate"], "Bearer");
    }
    // The Events API token is not a SCIM token.
    h.send(Method::GET, "/scim/v2/Users", Some(EVENTS_TOKEN), None).await.assert_scim_error(401, None);
}

#[tokio::test]
async fn ping_is_open_and_health_needs_the_token() {
    let h = start_default().await;
    assert_eq!(h.send(Method::GET, "/ping", None, None).await.status, 200);
    h.send(Method::GET, "/health", None, None).await.assert_scim_error(401, None);
    let health = h.send(Method::GET, "/health", Some(SCIM_TOKEN), None).await;
    assert_eq!(health.status, 200);
    assert_eq!(health.body["reports"].as_array().map(Vec::len), Some(4));
    assert!(health.body["reports"].as_array().unwrap().iter().all(|r| r["state"] == "healthy"));
}

#[tokio::test]
async fn create_returns_200_by_default_with_derived_fields() {
    let h = start_default().await;
    let reply = h
        .scim(
            Method::POST,
            "/Users",
            Some(json!({"userName": "jane@example.com",
            "name": {"givenName": "Jane", "familyName": "Doe"}, "active": true})),
        )
        .await;
    assert_eq!(reply.status, 200);
    assert!(reply.content_type().starts_with("application/scim+json"));
    let user = reply.body;
    let id = id_of(&user);
    assert_eq!(id.len(), 26);
    assert_eq!(id, id.to_uppercase());
    assert_eq!(user["displayName"], "Jane Doe");
    assert_eq!(user["name"]["formatted"], "Jane Doe");
    assert_eq!(user["emails"], json!([{"value": "jane@example.com", "primary": true}]));
    assert_eq!(user["active"], true, "an invited user reads active: true");
    assert_eq!(user["meta"], json!({"resourceType": "User"}));
    assert_eq!(h.sim.state().user_view(&id).unwrap().lifecycle, Lifecycle::Invited);

    let fetched = h.scim(Method::GET, &format!("/Users/{id}"), None).await;
    assert_eq!(fetched.status, 200);
    assert_eq!(fetched.body, user);
}

#[tokio::test]
async fn create_status_201_by_switch() {
    let h = start(SimConfig { create_status: CreateStatus::Created201, ..SimConfig::default() }).await;
    let reply = h.scim(Method::POST, "/Users", Some(json!({"userName": "a@example.com"}))).await;
    assert_eq!(reply.status, 201);
    let group = h.scim(Method::POST, "/Groups", Some(json!({"displayName": "Eng"}))).await;
    assert_eq!(group.status, 201);
}

#[tokio::test]
async fn bad_bodies_are_scim_errors() {
    let h = start_default().await;
    h.scim(Method::POST, "/Users", Some(json!({"name": {"givenName": "x"}})))
        .await
        .assert_scim_error(400, Some("invalidValue"));
    let raw = h.http.post(h.url("/scim/v2/Users")).bearer_auth(SCIM_TOKEN).body("{not json").send().await.unwrap();
    assert_eq!(raw.status(), 400);
    let body: serde_json::Value = raw.json().await.unwrap();
    assert_eq!(body["scimType"], "invalidSyntax");
    h.scim(Method::GET, "/Users/NOPE", None).await.assert_scim_error(404, None);
    h.scim(Method::GET, "/Nothing/here", None).await.assert_scim_error(404, None);
    h.scim(Method::GET, "/Users?startIndex=abc", None).await.assert_scim_error(400, Some("invalidValue"));
}

#[tokio::test]
async fn duplicate_user_name_is_409_uniqueness_case_insensitively() {
    let h = start_default().await;
    h.create_user("dup@example.com", "A", "B").await;
    h.scim(Method::POST, "/Users", Some(json!({"userName": "DUP@Example.com"})))
        .await
        .assert_scim_error(409, Some("uniqueness"));
    assert_eq!(h.sim.state().outbox().len(), 1, "no second invitation");
}

#[tokio::test]
async fn duplicate_links_the_existing_user_by_switch() {
    let h = start(SimConfig { conflict: ConflictMode::LinkExisting, ..SimConfig::default() }).await;
    let first = h.create_user("dup@example.com", "A", "B").await;
    let again = h.scim(Method::POST, "/Users", Some(json!({"userName": "dup@example.com"}))).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body["id"], first["id"]);
    assert_eq!(h.sim.state().user_count(), 1);
    assert_eq!(h.sim.state().outbox().len(), 1);
}

#[tokio::test]
async fn filter_by_user_name_is_case_insensitive_and_external_id_exact() {
    let h = start_default().await;
    let created = h
        .scim(Method::POST, "/Users", Some(json!({"userName": "Mixed.Case@Example.com", "externalId": "HR-42"})))
        .await
        .body;
    h.create_user("other@example.com", "O", "T").await;

    let list = h.scim(Method::GET, "/Users?filter=userName%20eq%20%22mixed.case%40example.com%22", None).await;
    assert_eq!(list.status, 200);
    assert_eq!(list.body["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:ListResponse");
    assert_eq!(list.body["totalResults"], 1);
    assert_eq!(list.body["itemsPerPage"], 1);
    assert_eq!(list.body["startIndex"], 1);
    assert_eq!(list.body["Resources"][0]["id"], created["id"]);

    let by_ext = h.scim(Method::GET, "/Users?filter=externalId%20eq%20%22HR-42%22", None).await;
    assert_eq!(by_ext.body["totalResults"], 1);
    assert_eq!(by_ext.body["Resources"][0]["externalId"], "HR-42");
    let wrong_case = h.scim(Method::GET, "/Users?filter=externalId%20eq%20%22hr-42%22", None).await;
    assert_eq!(wrong_case.body["totalResults"], 0);

    let none = h.scim(Method::GET, "/Users?filter=userName%20eq%20%22nobody%40example.com%22", None).await;
    assert_eq!(none.body["totalResults"], 0);
    assert_eq!(none.body["Resources"], json!([]));

    // Scanning filters work too.
    let co = h.scim(Method::GET, "/Users?filter=userName%20co%20%22other%22%20and%20active%20eq%20true", None).await;
    assert_eq!(co.body["totalResults"], 1);
}

#[tokio::test]
async fn malformed_or_unsupported_filters_are_400_invalid_filter() {
    let h = start_default().await;
    for filter in ["userName%20eq", "userName%20zz%20%22a%22", "title%20eq%20%22x%22"] {
        h.scim(Method::GET, &format!("/Users?filter={filter}"), None)
            .await
            .assert_scim_error(400, Some("invalidFilter"));
    }
}

#[tokio::test]
async fn filters_rejected_by_switch_are_400_invalid_filter() {
    let h = start(SimConfig { filters: FilterMode::Rejected, ..SimConfig::default() }).await;
    h.create_user("a@example.com", "A", "B").await;
    for filter in ["userName%20eq%20%22a%40example.com%22", "externalId%20eq%20%22X%22", "not%20a%20filter"] {
        h.scim(Method::GET, &format!("/Users?filter={filter}"), None)
            .await
            .assert_scim_error(400, Some("invalidFilter"));
    }
    let all = h.scim(Method::GET, "/Users", None).await;
    assert_eq!(all.body["totalResults"], 1);
    let spc = h.scim(Method::GET, "/ServiceProviderConfig", None).await;
    assert_eq!(spc.body["filter"]["supported"], false);
}

#[tokio::test]
async fn filters_ignored_by_switch_return_the_unfiltered_page() {
    let h = start(SimConfig { filters: FilterMode::Ignored, ..SimConfig::default() }).await;
    for name in ["a", "b", "c"] {
        h.create_user(&format!("{name}@example.com"), "X", "Y").await;
    }
    let one = h.scim(Method::GET, "/Users?filter=userName%20eq%20%22b%40example.com%22", None).await.body;
    assert_eq!((one["totalResults"].clone(), one["itemsPerPage"].clone()), (json!(3), json!(3)));
    assert_eq!(one["Resources"][0]["userName"], "a@example.com", "not the user asked for");
    let paged = h.scim(Method::GET, "/Users?filter=userName%20eq%20%22b%40example.com%22&count=1", None).await.body;
    assert_eq!((paged["totalResults"].clone(), paged["itemsPerPage"].clone()), (json!(3), json!(1)));
    let nonsense = h.scim(Method::GET, "/Users?filter=%28%28%28", None).await;
    assert_eq!((nonsense.status.as_u16(), nonsense.body["totalResults"].clone()), (200, json!(3)));
    let spc = h.scim(Method::GET, "/ServiceProviderConfig", None).await;
    assert_eq!(spc.body["filter"]["supported"], true, "advertised all the same");
}

#[tokio::test]
async fn supported_user_filters_cover_or_and_email_value_paths() {
    let h = start_default().await;
    let ext = h.scim(Method::POST, "/Users", Some(json!({"userName": "ext@example.com", "externalId": "E-1"}))).await;
    let named = h.create_user("named@example.com", "N", "M").await;
    let work = h
        .scim(
            Method::POST,
            "/Users",
            Some(json!({"userName": "w@example.com",
                "emails": [{"value": "w@example.com", "type": "work", "primary": true}]})),
        )
        .await
        .body;
    let ids =
        |body: &serde_json::Value| -> Vec<String> { body["Resources"].as_array().unwrap().iter().map(id_of).collect() };

    let either = h
        .scim(
            Method::GET,
            "/Users?filter=userName%20eq%20%22NAMED%40example.com%22%20or%20externalId%20eq%20%22E-1%22",
            None,
        )
        .await
        .body;
    assert_eq!(either["totalResults"], 2);
    assert_eq!(ids(&either), [id_of(&ext.body), id_of(&named)]);

    let typed = h.scim(Method::GET, "/Users?filter=emails%5Btype%20eq%20%22work%22%5D", None).await.body;
    assert_eq!(ids(&typed), [id_of(&work)]);
    let both = "/Users?filter=emails%5Btype%20eq%20%22work%22%20and%20value%20eq%20%22W%40example.com%22%5D";
    assert_eq!(ids(&h.scim(Method::GET, both, None).await.body), [id_of(&work)]);
    let mismatch = "/Users?filter=emails%5Btype%20eq%20%22work%22%20and%20value%20eq%20%22ext%40example.com%22%5D";
    assert_eq!(h.scim(Method::GET, mismatch, None).await.body["totalResults"], 0, "one element must match both");
}

#[tokio::test]
async fn user_listing_pages_are_capped_at_max_results() {
    let h = start(SimConfig { max_results: 3, ..SimConfig::default() }).await;
    let users = (0..7).map(|i| SeedUser::new(format!("u{i}@example.com"), SeedState::Active)).collect();
    h.sim.state().seed(onepassword_sim::Seed { users, groups: vec![] }).unwrap();
    for query in ["", "?count=50", "?filter=userName%20sw%20%22u%22&count=50"] {
        let page = h.scim(Method::GET, &format!("/Users{query}"), None).await.body;
        assert_eq!((page["totalResults"].clone(), page["itemsPerPage"].clone()), (json!(7), json!(3)), "{query}");
    }
    let last = h.scim(Method::GET, "/Users?startIndex=7&count=50", None).await.body;
    assert_eq!(
        (last["itemsPerPage"].clone(), last["Resources"][0]["userName"].clone()),
        (json!(1), json!("u6@example.com"))
    );
    let small = h.scim(Method::GET, "/Users?count=2", None).await.body;
    assert_eq!(small["itemsPerPage"], 2, "a smaller count still wins");
}

// ----- user_groups -------------------------------------------------------------------------------

/// A user in group Eng and one in no group: (member's id, loner's id, group id).
async fn user_in_a_group(h: &Harness) -> (String, String, String) {
    let member = id_of(&h.create_user("m@example.com", "M", "M").await);
    let loner = id_of(&h.create_user("l@example.com", "L", "L").await);
    let body = json!({"displayName": "Eng", "members": [{"value": member}]});
    let g = id_of(&h.scim(Method::POST, "/Groups", Some(body)).await.body);
    (member, loner, g)
}

async fn groups_key(h: &Harness, id: &str) -> Option<serde_json::Value> {
    let got = h.scim(Method::GET, &format!("/Users/{id}"), None).await.body;
    let listed = h.scim(Method::GET, &format!("/Users?filter=id%20eq%20%22{id}%22"), None).await.body;
    assert_eq!(got.get("groups"), listed["Resources"][0].get("groups"), "same shape in GET and listings");
    got.get("groups").cloned()
}

#[tokio::test]
async fn user_groups_value_and_display_by_default() {
    let h = start_default().await;
    let (member, loner, g) = user_in_a_group(&h).await;
    assert_eq!(groups_key(&h, &member).await, Some(json!([{"value": g, "display": "Eng"}])));
    assert_eq!(groups_key(&h, &loner).await, None, "no groups key for a user in no group");

    let h = start(SimConfig { meta_location: true, ..SimConfig::default() }).await;
    let (member, _, g) = user_in_a_group(&h).await;
    let with_ref = json!([{"value": g, "display": "Eng", "$ref": format!("/scim/v2/Groups/{g}")}]);
    assert_eq!(groups_key(&h, &member).await, Some(with_ref), "$ref follows meta_location");
}

#[tokio::test]
async fn user_groups_value_and_ref_by_switch() {
    let h = start(SimConfig { user_groups: UserGroups::Ref, ..SimConfig::default() }).await;
    let (member, loner, g) = user_in_a_group(&h).await;
    assert_eq!(groups_key(&h, &member).await, Some(json!([{"value": g, "ref": format!("/scim/v2/Groups/{g}")}])));
    assert_eq!(groups_key(&h, &loner).await, None);
}

#[tokio::test]
async fn user_groups_off_by_switch() {
    let h = start(SimConfig { user_groups: UserGroups::Off, ..SimConfig::default() }).await;
    let (member, _, g) = user_in_a_group(&h).await;
    assert_eq!(groups_key(&h, &member).await, None);
    let patched = h.patch_user(&member, json!([{"op": "replace", "path": "displayName", "value": "M N"}])).await;
    assert!(patched.body.get("groups").is_none());
    assert_eq!(h.sim.state().user_view(&member).unwrap().groups, ["Eng"], "membership kept");
    assert!(!g.is_empty());
}

#[tokio::test]
async fn paging_is_one_based_and_honours_count() {
    let h = start_default().await;
    let users = (0..7).map(|i| SeedUser::new(format!("u{i}@example.com"), SeedState::Active)).collect();
    h.sim.state().seed(onepassword_sim::Seed { users, groups: vec![] }).unwrap();

    let page = h.scim(Method::GET, "/Users?startIndex=3&count=2", None).await.body;
    assert_eq!(page["totalResults"], 7);
    assert_eq!(page["startIndex"], 3);
    assert_eq!(page["itemsPerPage"], 2);
    assert_eq!(page["Resources"][0]["userName"], "u2@example.com");
    assert_eq!(page["Resources"][1]["userName"], "u3@example.com");

    let last = h.scim(Method::GET, "/Users?startIndex=7&count=5", None).await.body;
    assert_eq!(last["itemsPerPage"], 1);
    let beyond = h.scim(Method::GET, "/Users?startIndex=50&count=5", None).await.body;
    assert_eq!(beyond["itemsPerPage"], 0);
    let all = h.scim(Method::GET, "/Users", None).await.body;
    assert_eq!(all["itemsPerPage"], 7, "no count: everything in one page");
    let zero = h.scim(Method::GET, "/Users?startIndex=0&count=0", None).await.body;
    assert_eq!((zero["startIndex"].as_u64(), zero["itemsPerPage"].as_u64()), (Some(1), Some(0)));
}

#[tokio::test]
async fn okta_and_entra_deactivation_both_suspend() {
    let h = start_default().await;
    let okta = id_of(&h.create_user("okta@example.com", "O", "K").await);
    let entra = id_of(&h.create_user("entra@example.com", "E", "N").await);

    let r = h.patch_user(&okta, json!([{"op": "replace", "path": "active", "value": false}])).await;
    assert_eq!((r.status.as_u16(), r.body["active"].clone()), (200, json!(false)));
    let r = h.patch_user(&entra, json!([{"op": "Replace", "value": {"active": "False"}}])).await;
    assert_eq!((r.status.as_u16(), r.body["active"].clone()), (200, json!(false)));

    let state = h.sim.state();
    assert_eq!(state.user_view(&okta).unwrap().lifecycle, Lifecycle::InviteSuspended);
    assert_eq!(state.user_view(&entra).unwrap().lifecycle, Lifecycle::InviteSuspended);
}

#[tokio::test]
async fn patch_name_parts_and_display_name_rewrites_the_name() {
    let h = start_default().await;
    let id = id_of(&h.create_user("n@example.com", "Jane", "Doe").await);

    let r = h.patch_user(&id, json!([{"op": "replace", "path": "name.familyName", "value": "Smith"}])).await;
    assert_eq!(r.body["name"]["familyName"], "Smith");
    assert_eq!(r.body["displayName"], "Jane Smith");

    // As observed: the display name is split at the first space into given and family name.
    let r = h.patch_user(&id, json!([{"op": "replace", "path": "displayName", "value": "Mary Ann Jones"}])).await;
    assert_eq!(r.body["displayName"], "Mary Ann Jones");
    assert_eq!(r.body["name"]["givenName"], "Mary");
    assert_eq!(r.body["name"]["familyName"], "Ann Jones");
    assert_eq!(r.body["name"]["formatted"], "Mary Ann Jones");

    // Entra sends dotted attribute names inside a path-less value.
    let r = h.patch_user(&id, json!([{"op": "Replace", "value": {"name.givenName": "Anna"}}])).await;
    assert_eq!(r.body["name"]["givenName"], "Anna");

    // Attributes 1Password does not keep are accepted and ignored.
    let r = h.patch_user(&id, json!([{"op": "Add", "path": "title", "value": "Engineer"}])).await;
    assert_eq!(r.status, 200);
    assert!(r.body.get("title").is_none());
}

#[tokio::test]
async fn display_name_coupling_can_be_switched_off() {
    let h = start(SimConfig { display_name_rewrites_name: false, ..SimConfig::default() }).await;
    let id = id_of(&h.create_user("n@example.com", "Jane", "Doe").await);
    let r = h.patch_user(&id, json!([{"op": "replace", "path": "displayName", "value": "JD"}])).await;
    assert_eq!(r.body["displayName"], "JD");
    assert_eq!(r.body["name"]["givenName"], "Jane");
    assert_eq!(r.body["name"]["familyName"], "Doe");
}

#[tokio::test]
async fn user_name_and_email_changes_follow_each_other() {
    let h = start_default().await;
    let id = id_of(&h.create_user("old@example.com", "A", "B").await);
    let r = h.patch_user(&id, json!([{"op": "replace", "path": "userName", "value": "new@example.com"}])).await;
    assert_eq!(r.body["userName"], "new@example.com");
    assert_eq!(r.body["emails"][0]["value"], "new@example.com");

    let r = h
        .patch_user(
            &id,
            json!([{"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "work@example.com"}]),
        )
        .await;
    assert_eq!(r.status, 200);
    // The old address is still the primary login; the work address is added.
    assert_eq!(r.body["userName"], "new@example.com");
    let found = h.scim(Method::GET, "/Users?filter=userName%20eq%20%22new%40example.com%22", None).await;
    assert_eq!(found.body["totalResults"], 1);
    let old = h.scim(Method::GET, "/Users?filter=userName%20eq%20%22old%40example.com%22", None).await;
    assert_eq!(old.body["totalResults"], 0, "the index follows renames");

    h.create_user("taken@example.com", "T", "K").await;
    h.patch_user(&id, json!([{"op": "replace", "path": "userName", "value": "TAKEN@example.com"}]))
        .await
        .assert_scim_error(409, Some("uniqueness"));
}

#[tokio::test]
async fn patch_errors() {
    let h = start_default().await;
    let id = id_of(&h.create_user("p@example.com", "A", "B").await);
    h.patch_user(&id, json!([{"op": "jump", "path": "active", "value": true}]))
        .await
        .assert_scim_error(400, Some("invalidSyntax"));
    h.patch_user(&id, json!([{"op": "replace", "path": "active", "value": "perhaps"}]))
        .await
        .assert_scim_error(400, Some("invalidValue"));
    h.patch_user(&id, json!([{"op": "remove", "path": "userName"}])).await.assert_scim_error(400, Some("mutability"));
    h.patch_user("NOSUCHUSER", json!([{"op": "replace", "path": "active", "value": false}]))
        .await
        .assert_scim_error(404, None);
    // Nothing was half-applied by the failing requests.
    assert_eq!(h.sim.state().user_view(&id).unwrap().lifecycle, Lifecycle::Invited);
}

#[tokio::test]
async fn delete_suspends_and_the_user_stays_listed() {
    let h = start_default().await;
    let id = id_of(&h.create_user("leaver@example.com", "L", "V").await);
    let r = h.scim(Method::DELETE, &format!("/Users/{id}"), None).await;
    assert_eq!(r.status, 204);
    assert_eq!(r.body, serde_json::Value::Null, "204 has no body");
    let got = h.scim(Method::GET, &format!("/Users/{id}"), None).await;
    assert_eq!((got.status.as_u16(), got.body["active"].clone()), (200, json!(false)));
    let list = h.scim(Method::GET, "/Users", None).await;
    assert_eq!(list.body["totalResults"], 1);
    assert_eq!(h.scim(Method::DELETE, &format!("/Users/{id}"), None).await.status, 204, "idempotent");
    h.scim(Method::DELETE, "/Users/NOSUCH", None).await.assert_scim_error(404, None);
}

#[tokio::test]
async fn put_replaces_the_user() {
    let h = start_default().await;
    let id = id_of(&h.create_user("put@example.com", "A", "B").await);
    let r = h
        .scim(
            Method::PUT,
            &format!("/Users/{id}"),
            Some(json!({"userName": "put@example.com",
            "name": {"givenName": "Carl", "familyName": "Dee"}, "externalId": "E1", "active": true})),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["name"]["givenName"], "Carl");
    assert_eq!(r.body["externalId"], "E1");

    let h = start(SimConfig { put_supported: false, ..SimConfig::default() }).await;
    let id = id_of(&h.create_user("put@example.com", "A", "B").await);
    h.scim(Method::PUT, &format!("/Users/{id}"), Some(json!({"userName": "put@example.com"})))
        .await
        .assert_scim_error(405, None);
}

#[tokio::test]
async fn suspended_user_email_change_is_recorded_as_a_violation() {
    let h = start_default().await;
    let state = h.sim.state();
    state
        .seed(onepassword_sim::Seed {
            users: vec![SeedUser::new("s@example.com", SeedState::Suspended)],
            groups: vec![],
        })
        .unwrap();
    let id = state.find_user("s@example.com").unwrap().id;
    let r = h.patch_user(&id, json!([{"op": "replace", "path": "userName", "value": "s2@example.com"}])).await;
    assert_eq!(r.status, 200, "applied, as the real bridge would");
    let violations = state.violations();
    assert_eq!(violations.len(), 1);
    assert_eq!(violations[0].user_id, id);
    assert_eq!(
        (violations[0].old_value.as_str(), violations[0].new_value.as_str()),
        ("s@example.com", "s2@example.com")
    );

    // Reactivating first, in the same request, is fine.
    let r = h
        .patch_user(
            &id,
            json!([{"op": "replace", "path": "active", "value": true},
                                 {"op": "replace", "path": "userName", "value": "s3@example.com"}]),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(state.violations().len(), 1);
}

#[tokio::test]
async fn suspended_user_email_change_is_rejected_by_switch() {
    let h = start(SimConfig { suspended_email_change: SuspendedEmailChange::Reject, ..SimConfig::default() }).await;
    let state = h.sim.state();
    let id = id_of(&h.create_user("s@example.com", "A", "B").await);
    h.patch_user(&id, json!([{"op": "replace", "path": "active", "value": false}])).await;
    h.patch_user(
        &id,
        json!([{"op": "replace", "path": "emails", "value": [{"value": "t@example.com", "primary": true}]}]),
    )
    .await
    .assert_scim_error(400, Some("invalidValue"));
    assert_eq!(state.find_user(&id).unwrap().user_name, "s@example.com", "nothing changed");
    assert_eq!(state.violations()[0].outcome, "rejected");
}

#[tokio::test]
async fn served_under_scim_scim_v2_and_root() {
    let h = start_default().await;
    h.create_user("where@example.com", "W", "H").await;
    for prefix in ["/scim/v2", "/scim", ""] {
        let r = h.send(Method::GET, &format!("{prefix}/Users"), Some(SCIM_TOKEN), None).await;
        assert_eq!((r.status.as_u16(), r.body["totalResults"].clone()), (200, json!(1)), "prefix {prefix:?}");
    }
}

#[tokio::test]
async fn attributes_and_excluded_attributes_project_responses() {
    let h = start_default().await;
    let id = id_of(
        &h.scim(Method::POST, "/Users", Some(json!({"userName": "p@example.com", "externalId": "X"}))).await.body,
    );
    let only = h.scim(Method::GET, &format!("/Users/{id}?attributes=externalId"), None).await.body;
    assert_eq!(only["externalId"], "X");
    assert!(only.get("preferredLanguage").is_none());
    assert_eq!(only["userName"], "p@example.com", "userName is always returned");
    let without = h.scim(Method::GET, "/Users?excludedAttributes=externalId", None).await.body;
    assert!(without["Resources"][0].get("externalId").is_none());
}

#[tokio::test]
async fn discovery_endpoints_match_the_recordings() {
    let h = start_default().await;
    let spc = h.scim(Method::GET, "/ServiceProviderConfig", None).await.body;
    assert_eq!(spc["patch"]["supported"], true);
    assert_eq!(spc["bulk"]["supported"], false);
    assert_eq!(spc["filter"]["maxResults"], 10000);
    assert_eq!(spc["etag"]["supported"], false);
    assert_eq!(spc["authenticationSchemes"][0]["type"], "oauthbearertoken");
    let rt = h.scim(Method::GET, "/ResourceTypes", None).await.body;
    assert_eq!(rt["startIndex"], 0);
    assert_eq!(rt["Resources"][0]["endpoint"], "/scim/v2/User");
    let schemas = h.scim(Method::GET, "/Schemas", None).await.body;
    assert_eq!(schemas["totalResults"], 2);
    let names: Vec<_> =
        schemas["Resources"][0]["attributes"].as_array().unwrap().iter().map(|a| a["name"].clone()).collect();
    assert!(!names.contains(&json!("active")), "the recorded schema omits active");
    h.scim(Method::POST, "/ServiceProviderConfig", Some(json!({}))).await.assert_scim_error(405, None);

    let h = start(SimConfig { observed_discovery_quirks: false, ..SimConfig::default() }).await;
    let rt = h.scim(Method::GET, "/ResourceTypes", None).await.body;
    assert_eq!((rt["startIndex"].clone(), rt["Resources"][0]["endpoint"].clone()), (json!(1), json!("/Users")));
}

// ----- index lookups ------------------------------------------------------------------------------

/// `GET /Users?filter=…` (plus paging) with the filter URL-encoded.
fn users_query(filter: &str, start_index: Option<usize>, count: Option<usize>) -> String {
    let mut pairs = vec![("filter", filter.to_owned())];
    pairs.extend(start_index.map(|s| ("startIndex", s.to_string())));
    pairs.extend(count.map(|c| ("count", c.to_string())));
    format!("/Users?{}", serde_urlencoded::to_string(pairs).unwrap())
}

/// (totalResults, userNames) of a filtered listing.
async fn user_names(h: &Harness, filter: &str) -> (u64, Vec<String>) {
    let body = h.scim(Method::GET, &users_query(filter, None, None), None).await.body;
    let names = body["Resources"].as_array().unwrap().iter().map(|u| u["userName"].as_str().unwrap().to_owned());
    (body["totalResults"].as_u64().unwrap(), names.collect())
}

#[tokio::test]
async fn indexed_user_filters_answer_exactly_like_the_scan() {
    let h = start_default().await;
    let state = h.sim.state();
    let user = |name: &str, ext: Option<&str>| SeedUser {
        external_id: ext.map(str::to_owned),
        ..SeedUser::new(name, SeedState::Active)
    };
    let seeded = state
        .seed(onepassword_sim::Seed {
            users: vec![
                user("Ada@Example.com", Some("hr:1")),
                user("bob@example.com", Some("hr:2")),
                user("carol@example.com", Some("shared")),
                user("dave@example.com", Some("shared")),
                user("erin@example.com", None),
            ],
            groups: vec![onepassword_sim::SeedGroup {
                display_name: "Eng".into(),
                members: vec!["ada@example.com".into(), "dave@example.com".into()],
                ..Default::default()
            }],
        })
        .unwrap();
    let (ada, carol, erin) = (&seeded.user_ids[0], &seeded.user_ids[2], &seeded.user_ids[4]);
    // Re-indexed after dave: the externalId index no longer lists "shared" in creation order.
    h.patch_user(carol, json!([{"op": "replace", "path": "externalId", "value": "shared"}])).await;
    h.patch_user(erin, json!([{"op": "replace", "path": "externalId", "value": "shared"}])).await;
    h.scim(Method::DELETE, &format!("/Users/{erin}"), None).await;

    let filters = [
        r#"userName eq "ADA@EXAMPLE.COM""#.to_owned(),
        r#"externalId eq "hr:2""#.into(),
        r#"externalId eq "HR:2""#.into(),
        r#"externalId eq "hr:1" or userName eq "ada@example.com""#.into(),
        r#"externalId eq "hr:2" or userName eq "Ada@example.COM""#.into(),
        r#"userName eq "bob@example.com" or externalId eq "shared""#.into(),
        r#"userName eq "nobody@example.com""#.into(),
        r#"externalId eq "nope" or userName eq "nobody@example.com""#.into(),
        format!(r#"id eq "{ada}" or userName eq "erin@example.com""#),
    ];
    let mut answered = 0;
    for filter in &filters {
        for start_index in [None, Some(1), Some(2), Some(3), Some(9)] {
            for count in [None, Some(0), Some(1), Some(2)] {
                let indexed = h.scim(Method::GET, &users_query(filter, start_index, count), None).await;
                // `… and id pr` selects the same users but no index serves it: a scan.
                let scanned =
                    h.scim(Method::GET, &users_query(&format!("({filter}) and id pr"), start_index, count), None).await;
                assert_eq!(indexed.status, 200, "{filter}: {}", indexed.body);
                assert_eq!(indexed.body, scanned.body, "{filter} startIndex {start_index:?} count {count:?}");
                answered += indexed.body["itemsPerPage"].as_u64().unwrap();
            }
        }
    }
    assert!(answered > 50, "the table finds users: {answered}");

    assert_eq!(
        user_names(&h, r#"externalId eq "hr:2" or userName eq "ADA@example.com""#).await,
        (2, vec!["Ada@Example.com".to_owned(), "bob@example.com".into()]),
        "two users, in creation order"
    );
    assert_eq!(
        user_names(&h, r#"externalId eq "shared" or userName eq "bob@example.com""#).await,
        (4, ["bob", "carol", "dave", "erin"].map(|n| format!("{n}@example.com")).to_vec())
    );
    let paged = h.scim(Method::GET, &users_query(r#"externalId eq "shared""#, Some(2), Some(1)), None).await.body;
    assert_eq!((paged["totalResults"].clone(), paged["itemsPerPage"].clone()), (json!(3), json!(1)));
    assert_eq!(
        (paged["startIndex"].clone(), paged["Resources"][0]["userName"].clone()),
        (json!(2), json!("dave@example.com"))
    );
    assert_eq!(user_names(&h, r#"userName eq "nobody@example.com" or externalId eq "none""#).await, (0, vec![]));
}
