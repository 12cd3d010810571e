//! SCIM 2.0 resources as the 1Password bridge returns them (see docs/external-facts.md, "Bridge
//! users" and "Bridge groups": users carry no state beyond `active`, `meta` is thin, groups may
//! omit `members`).

use serde::{Deserialize, Serialize};

pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
pub const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

/// An id the bridge assigned: opaque, compared exactly, never parsed.
macro_rules! opaque_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn new(id: impl Into<String>) -> Self {
                $name(id.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(id: &str) -> Self {
                $name(id.to_owned())
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }

        impl PartialEq<$name> for String {
            fn eq(&self, other: &$name) -> bool {
                self == &other.0
            }
        }
    };
}

opaque_id!(
    /// A 1Password user's SCIM `id`.
    ScimUserId
);
opaque_id!(
    /// A 1Password group's SCIM `id`.
    ScimGroupId
);

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScimName {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub formatted: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScimEmail {
    pub value: String,
    #[serde(default)]
    pub primary: bool,
}

/// A member of a group, or a group of a user. Bridges differ in the link beside `value`
/// (`$ref` as RFC 7643 has it, `ref` in a vendor example): neither is read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceRef {
    pub value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
}

impl ResourceRef {
    pub fn to(value: impl Into<String>) -> Self {
        ResourceRef { value: value.into(), display: None }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScimUser {
    pub id: ScimUserId,
    pub user_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// Required: an answer without it is an error, not "active". Guessing `true` would
    /// make a suspended user look active (and a leaver look already handled).
    pub active: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<ScimName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub emails: Vec<ScimEmail>,
    /// `None` when the answer had no `groups`: either the user is in none or the bridge
    /// does not return them (docs/external-facts.md) — one user cannot tell which.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<ResourceRef>>,
}

/// What we send to create (invite) a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewUser {
    pub schemas: Vec<String>,
    pub user_name: String,
    pub external_id: String,
    pub active: bool,
    pub name: ScimName,
    pub display_name: String,
    pub emails: Vec<ScimEmail>,
}

impl NewUser {
    pub fn new(email: &str, external_id: &str, given: &str, family: &str, display: &str) -> Self {
        NewUser {
            schemas: vec![USER_SCHEMA.to_owned()],
            user_name: email.to_owned(),
            external_id: external_id.to_owned(),
            active: true,
            name: ScimName {
                given_name: Some(given.to_owned()),
                family_name: Some(family.to_owned()),
                formatted: Some(display.to_owned()),
            },
            display_name: display.to_owned(),
            emails: vec![ScimEmail { value: email.to_owned(), primary: true }],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScimGroup {
    pub id: ScimGroupId,
    pub display_name: String,
    /// `None` when the answer had no `members`: not asked for, not returned by this bridge,
    /// or (for servers that omit empty attributes) an empty group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub members: Option<Vec<ResourceRef>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<ScimMeta>,
}

impl ScimGroup {
    /// Whether the answer lists `user` among the members; `None` when it had no members.
    pub fn has_member(&self, user: &ScimUserId) -> Option<bool> {
        self.members.as_ref().map(|members| members.iter().any(|m| m.value == *user))
    }

    /// `meta.created`, when the bridge sent a readable one.
    pub fn created_at(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        let created = self.meta.as_ref()?.created.as_deref()?;
        chrono::DateTime::parse_from_rfc3339(created).ok().map(|at| at.to_utc())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScimMeta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListResponse<T> {
    #[serde(default)]
    pub total_results: usize,
    #[serde(rename = "Resources", default = "Vec::new")]
    pub resources: Vec<T>,
}

/// One PATCH operation (RFC 7644 §3.5.2), in the Okta style the bridge accepts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PatchOperation {
    pub op: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<serde_json::Value>,
}

impl PatchOperation {
    pub fn replace(path: &str, value: serde_json::Value) -> Self {
        PatchOperation { op: "replace", path: Some(path.to_owned()), value: Some(value) }
    }

    pub fn add_members(user_ids: &[ScimUserId]) -> Self {
        let members = user_ids.iter().map(|id| serde_json::json!({ "value": id.as_str() })).collect();
        PatchOperation { op: "add", path: Some("members".to_owned()), value: Some(serde_json::Value::Array(members)) }
    }

    pub fn remove_member(user_id: &ScimUserId) -> Self {
        PatchOperation {
            op: "remove",
            path: Some(format!("members[value eq {}]", quote_filter_value(user_id.as_str()))),
            value: None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct PatchRequest {
    pub schemas: Vec<String>,
    #[serde(rename = "Operations")]
    pub operations: Vec<PatchOperation>,
}

impl PatchRequest {
    pub fn new(operations: Vec<PatchOperation>) -> Self {
        PatchRequest { schemas: vec![PATCH_SCHEMA.to_owned()], operations }
    }
}

/// RFC 7644 error body. Every field optional: we parse defensively, status code first.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScimErrorBody {
    #[serde(default)]
    pub detail: Option<String>,
    #[serde(default)]
    pub scim_type: Option<String>,
}

/// A SCIM filter string literal: `"` and `\` escaped (RFC 7644 §3.4.2.2 uses JSON strings).
pub fn quote_filter_value(value: &str) -> String {
    serde_json::Value::String(value.to_owned()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_values_are_escaped_as_json_strings() {
        assert_eq!(quote_filter_value("a@b.c"), r#""a@b.c""#);
        assert_eq!(quote_filter_value(r#"x" or userName pr or "y"#), r#""x\" or userName pr or \"y""#);
        assert_eq!(quote_filter_value(r"back\slash"), r#""back\\slash""#);
    }

    #[test]
    fn user_parses_the_recorded_bridge_shape() {
        let json = r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],
            "id":"Z54GW3SPDZBJJPCEBMEOO2HQPE","userName":"scim-test-action@nango.dev",
            "displayName":"SCIM Test","name":{"formatted":"SCIM Test","familyName":"Test","givenName":"SCIM"},
            "emails":[{"value":"scim-test-action@nango.dev","primary":true}],"active":true,
            "preferredLanguage":"en","meta":{"resourceType":"User"}}"#;
        let user: ScimUser = serde_json::from_str(json).unwrap();
        assert_eq!(user.id, "Z54GW3SPDZBJJPCEBMEOO2HQPE");
        assert!(user.active);
        assert_eq!(user.external_id, None);
        assert_eq!(user.name.unwrap().family_name.as_deref(), Some("Test"));
    }

    #[test]
    fn a_group_without_members_says_so_and_keeps_its_creation_time() {
        let json = r#"{"displayName":"Test Group","id":"sitza7mfvjmrgdr6krnetp7g2q",
            "meta":{"created":"2026-05-21T14:15:21Z","lastModified":"2026-05-21T14:15:20Z"}}"#;
        let group: ScimGroup = serde_json::from_str(json).unwrap();
        assert_eq!(group.members, None);
        assert_eq!(group.has_member(&"U1".into()), None);
        assert_eq!(group.created_at().map(|at| at.to_rfc3339()).as_deref(), Some("2026-05-21T14:15:21+00:00"));
        let listed: ScimGroup =
            serde_json::from_str(r#"{"id":"G","displayName":"G","members":[{"value":"U1"}]}"#).unwrap();
        assert_eq!(listed.has_member(&"U1".into()), Some(true));
        assert_eq!(listed.has_member(&"U2".into()), Some(false));
    }

    /// The vendor's self-hosted example links with `ref`, RFC 7643 with `$ref`: both read.
    #[test]
    fn user_groups_parse_with_ref_or_dollar_ref_and_absent_is_not_empty() {
        for link in ["ref", "$ref"] {
            let json = format!(
                r#"{{"id":"U1","userName":"a@example.com","active":true,
                "groups":[{{"value":"f7eqriu7ht27mq5zmm63gf2dhq","{link}":"https://scim.example.com/Groups/f7eqriu7ht27mq5zmm63gf2dhq"}}]}}"#
            );
            let user: ScimUser = serde_json::from_str(&json).unwrap();
            assert_eq!(user.groups, Some(vec![ResourceRef::to("f7eqriu7ht27mq5zmm63gf2dhq")]), "{link}");
        }
        let none: ScimUser = serde_json::from_str(r#"{"id":"U1","userName":"a@example.com","active":true}"#).unwrap();
        assert_eq!(none.groups, None);
    }

    #[test]
    fn remove_member_uses_a_quoted_filter_path() {
        let op = serde_json::to_value(PatchOperation::remove_member(&"ABC".into())).unwrap();
        assert_eq!(op, serde_json::json!({"op":"remove","path":"members[value eq \"ABC\"]"}));
    }

    #[test]
    fn a_user_without_active_is_an_error_not_an_active_user() {
        let json = r#"{"id":"U1","userName":"a@example.com"}"#;
        assert!(serde_json::from_str::<ScimUser>(json).is_err());
    }
}
