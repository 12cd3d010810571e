//! JSON shapes as the bridge returns them (copied from recorded traffic), list responses, and
//! the `attributes` / `excludedAttributes` projection.

use std::collections::BTreeSet;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};

use crate::config::UserGroups;
use crate::model::{Group, User};

pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const LIST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
pub const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// Attributes a projection never removes.
pub const USER_ALWAYS: &[&str] = &["schemas", "id", "username", "name", "emails"];
pub const GROUP_ALWAYS: &[&str] = &["schemas", "id"];

pub fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Where resources live when `meta.location` is switched on (and what `$ref` / `ref` point at).
pub const LOCATION_PREFIX: &str = "/scim/v2";

/// A user as recorded: no `meta.location`, `created` or `version`; `emails` without `type`
/// unless one was given; `groups` (shaped by `user_groups`) only when the user is in a managed
/// group.
pub fn user_json(
    user: &User,
    active: bool,
    groups: &[(String, String)],
    user_groups: UserGroups,
    location: bool,
) -> Value {
    let mut obj = Map::new();
    obj.insert("schemas".into(), json!([USER_SCHEMA]));
    obj.insert("id".into(), json!(user.id));
    obj.insert("userName".into(), json!(user.user_name));
    if let Some(ext) = &user.external_id {
        obj.insert("externalId".into(), json!(ext));
    }
    if let Some(d) = &user.display_name {
        obj.insert("displayName".into(), json!(d));
    }
    let mut name = Map::new();
    if let Some(f) = &user.formatted {
        name.insert("formatted".into(), json!(f));
    }
    if let Some(f) = &user.family_name {
        name.insert("familyName".into(), json!(f));
    }
    if let Some(g) = &user.given_name {
        name.insert("givenName".into(), json!(g));
    }
    obj.insert("name".into(), Value::Object(name));
    obj.insert("emails".into(), serde_json::to_value(&user.emails).unwrap_or(Value::Array(vec![])));
    obj.insert("active".into(), json!(active));
    if let Some(lang) = &user.preferred_language {
        obj.insert("preferredLanguage".into(), json!(lang));
    }
    if !groups.is_empty() && user_groups != UserGroups::Off {
        let groups: Vec<Value> = groups
            .iter()
            .map(|(id, name)| {
                let reference = format!("{LOCATION_PREFIX}/Groups/{id}");
                match user_groups {
                    UserGroups::Ref => json!({"value": id, "ref": reference}),
                    _ if location => json!({"value": id, "display": name, "$ref": reference}),
                    _ => json!({"value": id, "display": name}),
                }
            })
            .collect();
        obj.insert("groups".into(), Value::Array(groups));
    }
    let mut meta = json!({"resourceType": "User"});
    if location {
        meta["location"] = json!(format!("{LOCATION_PREFIX}/Users/{}", user.id));
    }
    obj.insert("meta".into(), meta);
    Value::Object(obj)
}

/// A group as recorded (`meta.created`/`lastModified`, no location), plus `members`
/// (`value` and `type`, as the recorded Group schema describes them) when the caller passes
/// them and there are any.
pub fn group_json(group: &Group, members: Option<&BTreeSet<String>>, location: bool) -> Value {
    let mut obj = Map::new();
    obj.insert("schemas".into(), json!([GROUP_SCHEMA]));
    obj.insert("id".into(), json!(group.id));
    obj.insert("displayName".into(), json!(group.display_name));
    if let Some(ext) = &group.external_id {
        obj.insert("externalId".into(), json!(ext));
    }
    if let Some(members) = members.filter(|m| !m.is_empty()) {
        let members: Vec<Value> = members
            .iter()
            .map(|id| {
                let mut m = json!({"value": id, "type": "User"});
                if location {
                    m["$ref"] = json!(format!("{LOCATION_PREFIX}/Users/{id}"));
                }
                m
            })
            .collect();
        obj.insert("members".into(), Value::Array(members));
    }
    let mut meta = json!({
        "resourceType": "Group",
        "created": timestamp(group.created_at),
        "lastModified": timestamp(group.last_modified),
    });
    if location {
        meta["location"] = json!(format!("{LOCATION_PREFIX}/Groups/{}", group.id));
    }
    obj.insert("meta".into(), meta);
    Value::Object(obj)
}

pub fn list_response(total: usize, start_index: usize, resources: Vec<Value>) -> Value {
    json!({
        "schemas": [LIST_SCHEMA],
        "totalResults": total,
        "startIndex": start_index,
        "itemsPerPage": resources.len(),
        "Resources": resources,
    })
}

/// Which attributes a response should carry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Projection {
    /// Lower-cased paths (`name`, `name.givenname`); empty = all.
    pub attributes: Vec<String>,
    pub excluded: Vec<String>,
}

impl Projection {
    pub fn parse(attributes: Option<&str>, excluded: Option<&str>) -> Self {
        let split = |s: Option<&str>| -> Vec<String> {
            s.map(|s| s.split(',').map(|p| super::filter::normalise_path(p.trim())).filter(|p| !p.is_empty()).collect())
                .unwrap_or_default()
        };
        Projection { attributes: split(attributes), excluded: split(excluded) }
    }

    pub fn is_identity(&self) -> bool {
        self.attributes.is_empty() && self.excluded.is_empty()
    }

    /// Whether the top-level attribute `name` (lower-case) survives the projection, whole or
    /// in part.
    pub fn includes(&self, name: &str) -> bool {
        let selected = self.attributes.is_empty()
            || self.attributes.iter().any(|a| a == name || a.strip_prefix(name).is_some_and(|s| s.starts_with('.')));
        selected && !self.excluded.iter().any(|e| e == name)
    }

    pub fn apply(&self, value: &mut Value, always: &[&str]) {
        let Value::Object(obj) = value else { return };
        if !self.attributes.is_empty() {
            obj.retain(|key, child| {
                let key_lc = key.to_ascii_lowercase();
                if always.contains(&key_lc.as_str()) || key_lc == "meta" {
                    return true;
                }
                let subs: Vec<&str> = self
                    .attributes
                    .iter()
                    .filter_map(|a| match a.split_once('.') {
                        Some((top, sub)) if top == key_lc => Some(sub),
                        _ => None,
                    })
                    .collect();
                if self.attributes.contains(&key_lc) {
                    return true;
                }
                if subs.is_empty() {
                    return false;
                }
                retain_sub_attributes(child, |sub| subs.contains(&sub));
                true
            });
        }
        for excluded in &self.excluded {
            match excluded.split_once('.') {
                Some((top, sub)) if !always.contains(&top) => {
                    if let Some((_, child)) = obj.iter_mut().find(|(k, _)| k.eq_ignore_ascii_case(top)) {
                        retain_sub_attributes(child, |s| s != sub);
                    }
                }
                Some(_) => {}
                None if always.contains(&excluded.as_str()) => {}
                None => obj.retain(|k, _| !k.eq_ignore_ascii_case(excluded)),
            }
        }
    }
}

fn retain_sub_attributes(value: &mut Value, keep: impl Fn(&str) -> bool) {
    let keep_in = |obj: &mut Map<String, Value>| obj.retain(|k, _| keep(&k.to_ascii_lowercase()));
    match value {
        Value::Object(obj) => keep_in(obj),
        Value::Array(items) => items.iter_mut().filter_map(Value::as_object_mut).for_each(keep_in),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn projection_includes_whole_or_partly_selected_attributes() {
        assert!(Projection::parse(None, None).includes("members"));
        assert!(Projection::parse(Some("members.value"), None).includes("members"));
        assert!(!Projection::parse(Some("membersx,displayName"), None).includes("members"));
        assert!(!Projection::parse(None, Some("Members")).includes("members"));
        assert!(Projection::parse(None, Some("members.type")).includes("members"));
    }

    #[test]
    fn projection_keeps_always_returned_attributes() {
        let mut v = json!({"schemas": [], "id": "1", "userName": "a", "externalId": "x",
                           "preferredLanguage": "en", "name": {"givenName": "A", "familyName": "B"}});
        Projection::parse(Some("externalId"), None).apply(&mut v, USER_ALWAYS);
        assert!(v.get("externalId").is_some());
        assert!(v.get("preferredLanguage").is_none());
        assert!(v.get("userName").is_some());

        let mut v = json!({"id": "1", "externalId": "x", "preferredLanguage": "en",
                           "name": {"givenName": "A", "familyName": "B"}});
        Projection::parse(None, Some("preferredLanguage,name.givenName")).apply(&mut v, GROUP_ALWAYS);
        assert!(v.get("preferredLanguage").is_none());
        assert_eq!(v["name"], json!({"familyName": "B"}));
    }
}
