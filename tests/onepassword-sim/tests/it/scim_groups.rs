//! SCIM `/Groups`: managed groups only, protected groups refuse changes, both membership forms.

use crate::support::*;
use std::collections::BTreeSet;
use std::time::Duration;

use onepassword_sim::{
    DuplicateGroupName, FilterMode, GroupMembers, ProtectedGroupError, Seed, SeedGroup, SeedState, SeedUser, SimConfig,
};
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
    assert_eq!(r.status, 200);
    assert!(r.body.get("members").is_none(), "an empty group has no members key: {}", r.body);
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

    let put = h.scim(Method::PUT, &format!("/Groups/{g}"), Some(json!({"displayName": "Eng2", "members": []}))).await;
    assert_eq!(put.body["displayName"], "Eng2");
    assert!(put.body.get("members").is_none());
    assert!(h.sim.state().groups().iter().find(|x| x.id == g).unwrap().members.is_empty());

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

fn with(config: impl FnOnce(&mut SimConfig)) -> SimConfig {
    let mut c = SimConfig::default();
    config(&mut c);
    c
}

async fn post_group(h: &Harness, body: serde_json::Value) -> Reply {
    h.scim(Method::POST, "/Groups", Some(body)).await
}

fn group_count(h: &Harness, name: &str) -> usize {
    h.sim.state().groups().iter().filter(|g| g.display_name.eq_ignore_ascii_case(name)).count()
}

// ----- duplicate_group_name ----------------------------------------------------------------------

#[tokio::test]
async fn duplicate_group_name_returns_the_existing_group_by_default() {
    let h = start_default().await;
    let a = id_of(&h.create_user("a@example.com", "A", "A").await);
    let b = id_of(&h.create_user("b@example.com", "B", "B").await);
    let first = post_group(&h, json!({"displayName": "Engineering", "members": [{"value": a}]})).await.body;
    h.sim.state().advance_clock(Duration::from_secs(300));

    let again = post_group(&h, json!({"displayName": "ENGINEERING", "members": [{"value": b}]})).await;
    assert_eq!(again.status, 200, "the create status");
    assert_eq!(again.body["id"], first["id"]);
    assert_eq!(again.body["displayName"], "Engineering");
    assert_eq!(again.body["meta"]["created"], first["meta"]["created"], "the original creation time");
    assert_eq!(again.body["members"], json!([{"value": a, "type": "User"}]), "nothing changed");
    assert_eq!(group_count(&h, "Engineering"), 1);

    // With duplicates already there, the oldest by meta.created is the one returned.
    let older = "2020-01-01T00:00:00Z".parse().unwrap();
    let seeded = h
        .sim
        .state()
        .seed(Seed {
            users: vec![],
            groups: vec![
                SeedGroup { display_name: "Ops".into(), ..SeedGroup::default() },
                SeedGroup {
                    display_name: "Ops".into(),
                    duplicate: true,
                    created_at: Some(older),
                    ..SeedGroup::default()
                },
            ],
        })
        .unwrap();
    assert_eq!(group_count(&h, "Ops"), 2);
    let ops = post_group(&h, json!({"displayName": "ops"})).await.body;
    assert_eq!(ops["id"], seeded.group_ids[1]);
    assert_eq!(ops["meta"]["created"], "2020-01-01T00:00:00Z");
}

#[tokio::test]
async fn duplicate_group_name_is_409_uniqueness_by_switch() {
    let h = start(with(|c| c.duplicate_group_name = DuplicateGroupName::Reject409)).await;
    let eng = id_of(&post_group(&h, json!({"displayName": "Eng"})).await.body);
    post_group(&h, json!({"displayName": "eng"})).await.assert_scim_error(409, Some("uniqueness"));
    let ops = id_of(&post_group(&h, json!({"displayName": "Ops"})).await.body);
    h.patch_group(&ops, json!([{"op": "replace", "path": "displayName", "value": "ENG"}]))
        .await
        .assert_scim_error(409, Some("uniqueness"));
    assert_eq!((group_count(&h, "Eng"), group_count(&h, "Ops")), (1, 1));
    assert_ne!(eng, ops);
}

#[tokio::test]
async fn duplicate_group_name_allow_creates_a_second_group_by_switch() {
    let h = start(with(|c| c.duplicate_group_name = DuplicateGroupName::Allow)).await;
    let first = post_group(&h, json!({"displayName": "Eng"})).await.body;
    h.sim.state().advance_clock(Duration::from_secs(60));
    let second = post_group(&h, json!({"displayName": "Eng"})).await;
    assert_eq!(second.status, 200);
    assert_ne!(second.body["id"], first["id"], "a new group");
    assert!(second.body["meta"]["created"].as_str() > first["meta"]["created"].as_str());
    let named = h.scim(Method::GET, "/Groups?filter=displayName%20eq%20%22eng%22", None).await.body;
    assert_eq!(named["totalResults"], 2);

    // Names are not unique at all: renaming onto a taken name works too.
    let ops = id_of(&post_group(&h, json!({"displayName": "Ops"})).await.body);
    let renamed = h.patch_group(&ops, json!([{"op": "replace", "path": "displayName", "value": "Eng"}])).await;
    assert_eq!(renamed.status, 200);
    assert_eq!(group_count(&h, "Eng"), 3);
}

// ----- group_members -----------------------------------------------------------------------------

/// (list, get by id, POST, PATCH, PUT) answers for a group with one member.
async fn member_answers(h: &Harness) -> [serde_json::Value; 5] {
    let a = id_of(&h.create_user("a@example.com", "A", "A").await);
    let b = id_of(&h.create_user("b@example.com", "B", "B").await);
    let post = post_group(h, json!({"displayName": "Eng", "members": [{"value": a}]})).await.body;
    let g = id_of(&post);
    let patch = h.patch_group(&g, json!([{"op": "add", "path": "members", "value": [{"value": b}]}])).await.body;
    let put = h
        .scim(Method::PUT, &format!("/Groups/{g}"), Some(json!({"displayName": "Eng", "members": [{"value": a}]})))
        .await
        .body;
    let list = h.scim(Method::GET, "/Groups", None).await.body["Resources"][0].clone();
    let get = h.scim(Method::GET, &format!("/Groups/{g}"), None).await.body;
    [list, get, post, patch, put]
}

fn has_members(answers: &[serde_json::Value; 5]) -> [bool; 5] {
    answers.clone().map(|a| a.get("members").is_some())
}

#[tokio::test]
async fn group_members_always_by_default_unless_excluded_or_not_selected() {
    let h = start_default().await;
    let answers = member_answers(&h).await;
    assert_eq!(has_members(&answers), [true; 5], "{answers:?}");
    assert_eq!(answers[3]["members"].as_array().unwrap().len(), 2, "PATCH answers with both members");

    let g = id_of(&answers[1]);
    for query in ["excludedAttributes=members", "attributes=displayName"] {
        let list = h.scim(Method::GET, &format!("/Groups?{query}"), None).await.body;
        assert!(list["Resources"][0].get("members").is_none(), "{query}: {list}");
        let get = h.scim(Method::GET, &format!("/Groups/{g}?{query}"), None).await.body;
        assert!(get.get("members").is_none(), "{query}: {get}");
    }
    let selected = h.scim(Method::GET, "/Groups?attributes=members", None).await.body;
    assert_eq!(selected["Resources"][0]["members"].as_array().map(Vec::len), Some(1));
    assert!(selected["Resources"][0].get("displayName").is_none());

    let empty = post_group(&h, json!({"displayName": "Empty"})).await.body;
    assert!(empty.get("members").is_none(), "no members key for an empty group: {empty}");
}

#[tokio::test]
async fn group_members_never_by_switch() {
    let h = start(with(|c| c.group_members = GroupMembers::Never)).await;
    let answers = member_answers(&h).await;
    assert_eq!(has_members(&answers), [false; 5], "{answers:?}");
    let g = id_of(&answers[1]);
    let asked = h.scim(Method::GET, &format!("/Groups/{g}?attributes=members"), None).await.body;
    assert!(asked.get("members").is_none());
    assert_eq!(h.sim.state().groups().iter().find(|x| x.id == g).unwrap().members.len(), 1, "kept, just not shown");
}

#[tokio::test]
async fn group_members_only_by_id_by_switch() {
    let h = start(with(|c| c.group_members = GroupMembers::OnlyById)).await;
    let answers = member_answers(&h).await;
    assert_eq!(has_members(&answers), [false, true, false, false, false], "{answers:?}");
    let g = id_of(&answers[1]);
    let excluded = h.scim(Method::GET, &format!("/Groups/{g}?excludedAttributes=members"), None).await.body;
    assert!(excluded.get("members").is_none());
}

// ----- filters and projections on /Groups --------------------------------------------------------

/// Users a, b and groups Eng {a}, Ops {a, b}, Empty {}. Returns (a, b, eng, ops, empty).
async fn three_groups(h: &Harness) -> (String, String, String, String, String) {
    let a = id_of(&h.create_user("a@example.com", "A", "A").await);
    let b = id_of(&h.create_user("b@example.com", "B", "B").await);
    let eng = id_of(&post_group(h, json!({"displayName": "Eng", "members": [{"value": a}]})).await.body);
    let ops = id_of(&post_group(h, json!({"displayName": "Ops", "members": [{"value": a}, {"value": b}]})).await.body);
    let empty = id_of(&post_group(h, json!({"displayName": "Empty"})).await.body);
    (a, b, eng, ops, empty)
}

async fn group_ids(h: &Harness, query: &str) -> (serde_json::Value, Vec<String>) {
    let reply = h.scim(Method::GET, &format!("/Groups?{query}"), None).await;
    assert_eq!(reply.status, 200, "{query}: {}", reply.body);
    let ids = reply.body["Resources"].as_array().unwrap().iter().map(id_of).collect();
    (reply.body["totalResults"].clone(), ids)
}

#[tokio::test]
async fn group_filters_display_name_and_member_value_path() {
    let h = start_default().await;
    let (a, b, eng, ops, _) = three_groups(&h).await;

    assert_eq!(group_ids(&h, "filter=displayName%20eq%20%22ops%22").await, (json!(1), vec![ops.clone()]));
    let with_a = format!("filter=members%5Bvalue%20eq%20%22{a}%22%5D");
    assert_eq!(group_ids(&h, &with_a).await, (json!(2), vec![eng.clone(), ops.clone()]));
    let with_b = format!("filter=members%5Bvalue%20eq%20%22{b}%22%5D");
    assert_eq!(group_ids(&h, &with_b).await, (json!(1), vec![ops.clone()]));
    let nobody = "filter=members%5Bvalue%20eq%20%22NOBODY%22%5D";
    assert_eq!(group_ids(&h, nobody).await, (json!(0), vec![]));
    // Combined with and/not, and the dotted form.
    let combined = format!("filter=members%5Bvalue%20eq%20%22{a}%22%5D%20and%20not%20(displayName%20eq%20%22ops%22)");
    assert_eq!(group_ids(&h, &combined).await, (json!(1), vec![eng.clone()]));
    let dotted = format!("filter=members.value%20eq%20%22{b}%22");
    assert_eq!(group_ids(&h, &dotted).await, (json!(1), vec![ops.clone()]));

    // What an IdP sends to find a user's groups cheaply.
    let projected = h.scim(Method::GET, &format!("/Groups?{with_b}&attributes=displayName"), None).await.body;
    let group = &projected["Resources"][0];
    let mut keys: Vec<&str> = group.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["displayName", "id", "meta", "schemas"], "{group}");

    for bad in ["members%5Bdisplay%20eq%20%22x%22%5D", "members%5Bvalue%20eq%20%22x%22", "members%5Bvalue%20eq%5D"] {
        h.scim(Method::GET, &format!("/Groups?filter={bad}"), None).await.assert_scim_error(400, Some("invalidFilter"));
    }
}

#[tokio::test]
async fn group_filters_ignored_by_switch_return_the_unfiltered_page() {
    let h = start(with(|c| c.filters = FilterMode::Ignored)).await;
    let (a, _, eng, ops, empty) = three_groups(&h).await;
    let all = (json!(3), vec![eng.clone(), ops.clone(), empty.clone()]);
    assert_eq!(group_ids(&h, "filter=displayName%20eq%20%22ops%22").await, all);
    assert_eq!(group_ids(&h, &format!("filter=members%5Bvalue%20eq%20%22{a}%22%5D")).await, all);
    assert_eq!(group_ids(&h, "filter=not%20even%20a%20filter").await, all, "not parsed at all");
    assert_eq!(group_ids(&h, "filter=displayName%20eq%20%22ops%22&count=1").await, (json!(3), vec![eng]));
    let spc = h.scim(Method::GET, "/ServiceProviderConfig", None).await.body;
    assert_eq!(spc["filter"]["supported"], true, "still advertised");
}

#[tokio::test]
async fn group_filters_rejected_by_switch_are_400_invalid_filter() {
    let h = start(with(|c| c.filters = FilterMode::Rejected)).await;
    let (a, ..) = three_groups(&h).await;
    for filter in ["displayName%20eq%20%22ops%22".to_owned(), format!("members%5Bvalue%20eq%20%22{a}%22%5D")] {
        h.scim(Method::GET, &format!("/Groups?filter={filter}"), None)
            .await
            .assert_scim_error(400, Some("invalidFilter"));
    }
    assert_eq!(group_ids(&h, "").await.0, 3, "listing without a filter works");
    let spc = h.scim(Method::GET, "/ServiceProviderConfig", None).await.body;
    assert_eq!(spc["filter"]["supported"], false);
}

// ----- max_results -------------------------------------------------------------------------------

#[tokio::test]
async fn group_listing_pages_are_capped_at_max_results() {
    let h = start(with(|c| c.max_results = 2)).await;
    let state = h.sim.state();
    state.seed(Seed { users: vec![SeedUser::new("m@example.com", SeedState::Active)], groups: vec![] }).unwrap();
    let groups = (0..5)
        .map(|i| SeedGroup {
            display_name: format!("G{i}"),
            members: vec!["m@example.com".into()],
            ..SeedGroup::default()
        })
        .collect();
    state.seed(Seed { users: vec![], groups }).unwrap();

    let spc = h.scim(Method::GET, "/ServiceProviderConfig", None).await.body;
    assert_eq!(spc["filter"]["maxResults"], 2);
    for query in ["", "?count=100"] {
        let page = h.scim(Method::GET, &format!("/Groups{query}"), None).await.body;
        assert_eq!((page["totalResults"].clone(), page["itemsPerPage"].clone()), (json!(5), json!(2)), "{query}");
    }
    // A client that pages until totalResults (not until a short page) sees every group.
    let mut names = Vec::new();
    let mut start_index = 1;
    loop {
        let page = h.scim(Method::GET, &format!("/Groups?startIndex={start_index}&count=10"), None).await.body;
        let resources = page["Resources"].as_array().unwrap();
        assert_eq!(page["startIndex"], start_index);
        assert_eq!(page["itemsPerPage"], resources.len());
        names.extend(resources.iter().map(|g| g["displayName"].as_str().unwrap().to_owned()));
        start_index += resources.len();
        if resources.is_empty() || start_index > page["totalResults"].as_u64().unwrap() as usize {
            break;
        }
    }
    assert_eq!(names, ["G0", "G1", "G2", "G3", "G4"]);
}

// ----- incremental membership changes ------------------------------------------------------------

/// (member ids of `GET /Groups/{id}`, its `meta.lastModified`).
async fn members_of(h: &Harness, group: &str) -> (BTreeSet<String>, String) {
    let body = h.scim(Method::GET, &format!("/Groups/{group}"), None).await.body;
    let members = body["members"]
        .as_array()
        .map(|m| m.iter().map(|m| m["value"].as_str().unwrap().to_owned()).collect())
        .unwrap_or_default();
    (members, body["meta"]["lastModified"].as_str().unwrap().to_owned())
}

/// The group ids `GET /Users/{id}` lists.
async fn groups_of_user(h: &Harness, user: &str) -> BTreeSet<String> {
    let body = h.scim(Method::GET, &format!("/Users/{user}"), None).await.body;
    body["groups"]
        .as_array()
        .map(|g| g.iter().map(|g| g["value"].as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

/// (operations, status, Eng's members after, users granted, users revoked), users by index.
type Step = (serde_json::Value, u16, &'static [usize], &'static [usize], &'static [usize]);

#[tokio::test]
async fn incremental_membership_changes_keep_users_and_groups_consistent() {
    let h = start_default().await;
    let state = h.sim.state();
    let users = (0..6).map(|i| SeedUser::new(format!("u{i}@example.com"), SeedState::Active)).collect();
    let group = |name: &str, members: &[&str]| SeedGroup {
        display_name: name.into(),
        members: members.iter().map(|m| format!("{m}@example.com")).collect(),
        ..SeedGroup::default()
    };
    let seeded =
        state.seed(Seed { users, groups: vec![group("Eng", &["u0", "u1", "u2"]), group("Ops", &["u1"])] }).unwrap();
    let u = &seeded.user_ids;
    let (eng, ops) = (&seeded.group_ids[0], &seeded.group_ids[1]);
    let value = |ids: &[usize]| json!(ids.iter().map(|&i| json!({"value": u[i]})).collect::<Vec<_>>());
    let set = |ids: &[usize]| ids.iter().map(|&i| u[i].clone()).collect::<BTreeSet<String>>();

    let steps: Vec<Step> = vec![
        (json!([{"op": "add", "path": "members", "value": value(&[3])}]), 200, &[0, 1, 2, 3], &[3], &[]),
        (json!([{"op": "remove", "path": "members", "value": value(&[0])}]), 200, &[1, 2, 3], &[], &[0]),
        (
            json!([{"op": "add", "path": "members", "value": value(&[4])},
                   {"op": "remove", "path": "members", "value": value(&[1])}]),
            200,
            &[2, 3, 4],
            &[4],
            &[1],
        ),
        (
            json!([{"op": "add", "path": "members", "value": value(&[5])},
                   {"op": "remove", "path": "members", "value": value(&[5])}]),
            200,
            &[2, 3, 4],
            &[],
            &[],
        ),
        (
            json!([{"op": "remove", "path": "members", "value": value(&[5])},
                   {"op": "add", "path": "members", "value": value(&[2, 2])}]),
            200,
            &[2, 3, 4],
            &[],
            &[],
        ),
        (json!([{"op": "remove", "path": format!("members[value eq \"{}\"]", u[2])}]), 200, &[3, 4], &[], &[2]),
        (
            json!([{"op": "replace", "path": "members", "value": value(&[0, 1])},
                   {"op": "add", "path": "members", "value": value(&[3])},
                   {"op": "remove", "path": "members", "value": value(&[0])}]),
            200,
            &[1, 3],
            &[1],
            &[4],
        ),
        (
            json!([{"op": "add", "path": "members", "value": value(&[5])},
                   {"op": "add", "path": "members", "value": [{"value": "not-a-user"}]}]),
            400,
            &[1, 3],
            &[],
            &[],
        ),
        (
            json!([{"op": "replace", "path": "displayName", "value": "Engineering"},
                   {"op": "add", "path": "members", "value": value(&[0, 2, 5])}]),
            200,
            &[0, 1, 2, 3, 5],
            &[0, 2, 5],
            &[],
        ),
        (json!([{"op": "remove", "path": "members"}]), 200, &[], &[], &[0, 1, 2, 3, 5]),
        (
            json!([{"op": "add", "path": "members", "value": value(&[0, 1, 2, 3, 4, 5])}]),
            200,
            &[0, 1, 2, 3, 4, 5],
            &[0, 1, 2, 3, 4, 5],
            &[],
        ),
    ];
    for (n, (operations, status, members, granted, revoked)) in steps.into_iter().enumerate() {
        let (_, modified_before) = members_of(&h, eng).await;
        let audit_before = state.audit_events().len();
        state.advance_clock(Duration::from_secs(2));
        let reply = h.patch_group(eng, operations).await;
        assert_eq!(reply.status.as_u16(), status, "step {n}: {}", reply.body);
        let (now_members, modified) = members_of(&h, eng).await;
        assert_eq!(now_members, set(members), "step {n}: GET /Groups/{{id}} members");
        if status == 200 {
            assert_ne!(modified, modified_before, "step {n}: a change touches lastModified");
            let patched: BTreeSet<String> = reply.body["members"]
                .as_array()
                .map(|m| m.iter().map(|m| m["value"].as_str().unwrap().to_owned()).collect())
                .unwrap_or_default();
            assert_eq!(patched, set(members), "step {n}: the PATCH answer");
        } else {
            assert_eq!(modified, modified_before, "step {n}: a refused request changes nothing");
        }
        for (i, id) in u.iter().enumerate() {
            let expected: BTreeSet<String> = [(eng, members.contains(&i)), (ops, i == 1)]
                .into_iter()
                .filter(|(_, member)| *member)
                .map(|(g, _)| g.clone())
                .collect();
            assert_eq!(groups_of_user(&h, id).await, expected, "step {n}: GET /Users/{{u{i}}} groups");
        }
        let view = state.groups().into_iter().find(|g| &g.id == eng).unwrap();
        assert_eq!(view.members.into_iter().collect::<BTreeSet<_>>(), set(members), "step {n}: control view");
        let events: Vec<(String, String)> = state.audit_events()[audit_before..]
            .iter()
            .map(|e| (e.action.clone(), e.aux_uuid.clone().unwrap_or_default()))
            .collect();
        let mut expected: Vec<(String, String)> = Vec::new();
        for (action, ids) in [("grant", granted), ("revoke", revoked)] {
            let mut ids: Vec<String> = ids.iter().map(|&i| u[i].clone()).collect();
            ids.sort();
            expected.extend(ids.into_iter().map(|id| (action.to_owned(), id)));
        }
        assert_eq!(events, expected, "step {n}: grant/revoke audit events");
    }
    assert_eq!(members_of(&h, ops).await.0, set(&[1]), "the other group is untouched");
    let bare = h.scim(Method::GET, &format!("/Groups/{eng}?excludedAttributes=members"), None).await.body;
    assert!(bare.get("members").is_none() && bare["displayName"] == "Engineering", "{bare}");
}

#[tokio::test]
async fn member_filters_answer_exactly_like_the_scan() {
    let h = start_default().await;
    let users = (0..4).map(|i| SeedUser::new(format!("u{i}@example.com"), SeedState::Active)).collect();
    let group = |name: &str, members: &[&str]| SeedGroup {
        display_name: name.into(),
        members: members.iter().map(|m| format!("{m}@example.com")).collect(),
        ..SeedGroup::default()
    };
    let seeded = h
        .sim
        .state()
        .seed(Seed {
            users,
            groups: vec![group("A", &["u0", "u1"]), group("B", &["u1", "u2"]), group("C", &[]), group("D", &["u1"])],
        })
        .unwrap();
    let names = |body: &serde_json::Value| -> Vec<String> {
        body["Resources"].as_array().unwrap().iter().map(|g| g["displayName"].as_str().unwrap().to_owned()).collect()
    };
    let mut found = 0;
    let ids = seeded.user_ids.iter().cloned().chain([seeded.user_ids[1].to_lowercase(), "nobody".into()]);
    for id in ids {
        // `and type eq "User"` inside the brackets: the same members, but no member-set lookup.
        let scan = format!(r#"members[value eq "{id}" and type eq "User"]"#);
        for (fast, slow) in [
            (format!(r#"members[value eq "{id}"]"#), scan.clone()),
            (format!(r#"members.value eq "{id}""#), scan.clone()),
            (format!(r#"members eq "{id}""#), scan.clone()),
            (format!(r#"not (members[value eq "{id}"])"#), format!("not ({scan})")),
            (format!(r#"members[value eq "{id}"] or displayName eq "C""#), format!(r#"{scan} or displayName eq "C""#)),
        ] {
            for paging in ["", "&startIndex=2&count=1"] {
                let query =
                    |f: &str| format!("/Groups?{}{paging}", serde_urlencoded::to_string([("filter", f)]).unwrap());
                let fast_body = h.scim(Method::GET, &query(&fast), None).await.body;
                let slow_body = h.scim(Method::GET, &query(&slow), None).await.body;
                assert_eq!(fast_body, slow_body, "{fast}{paging}");
                found += names(&fast_body).len();
            }
        }
    }
    assert!(found > 20, "{found}");
    let u1 = &seeded.user_ids[1];
    let body = h.scim(Method::GET, &format!("/Groups?filter=members%5Bvalue%20eq%20%22{u1}%22%5D"), None).await.body;
    assert_eq!(names(&body), ["A", "B", "D"]);
}
