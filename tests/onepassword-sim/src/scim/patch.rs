//! Translates PATCH and PUT bodies into domain changes. Accepts the forms Okta and Entra send:
//! `{"op":"replace","path":"active","value":false}`, `{"op":"Replace","value":{"active":"False"}}`,
//! `emails[type eq "work"].value`, `members[value eq "<id>"]`, and capitalised ops.

use serde_json::{Map, Value};

use super::error::ScimError;
use super::filter::{CompareOp, Filter, Literal, normalise_path};
use crate::model::Email;
use crate::state::{EmailSelector, GroupChange, NewGroup, NewUser, UserChange};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Add,
    Replace,
    Remove,
}

fn invalid_syntax(detail: impl Into<String>) -> ScimError {
    ScimError::bad_request("invalidSyntax", detail)
}

fn invalid_value(detail: impl Into<String>) -> ScimError {
    ScimError::bad_request("invalidValue", detail)
}

/// Case-insensitive key lookup (clients differ in how they spell attribute names).
fn get<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v)
}

/// One PatchOp operation: op, optional path, optional value.
type Operation = (Op, Option<String>, Option<Value>);

fn operations(body: &Value) -> Result<Vec<Operation>, ScimError> {
    let obj = body.as_object().ok_or_else(|| invalid_syntax("a PatchOp body must be a JSON object"))?;
    let ops = get(obj, "Operations")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid_syntax("a PatchOp body needs an Operations array"))?;
    ops.iter()
        .map(|op| {
            let op = op.as_object().ok_or_else(|| invalid_syntax("each operation must be an object"))?;
            let name = get(op, "op").and_then(Value::as_str).unwrap_or_default();
            let kind = match name.to_ascii_lowercase().as_str() {
                "add" => Op::Add,
                "replace" => Op::Replace,
                "remove" => Op::Remove,
                _ => return Err(invalid_syntax(format!("unknown PATCH op {name:?}"))),
            };
            let path = get(op, "path").and_then(Value::as_str).map(str::to_owned);
            let value = get(op, "value").cloned();
            if kind == Op::Remove && path.is_none() {
                return Err(ScimError::bad_request("noTarget", "remove needs a path"));
            }
            if kind != Op::Remove && value.is_none() {
                return Err(invalid_syntax(format!("{name} needs a value")));
            }
            Ok((kind, path, value))
        })
        .collect()
}

// ----- users -------------------------------------------------------------------------------------

pub fn user_patch(body: &Value) -> Result<Vec<UserChange>, ScimError> {
    let mut changes = Vec::new();
    for (op, path, value) in operations(body)? {
        match path {
            Some(path) => user_path_change(op, &path, value.as_ref(), &mut changes)?,
            None => {
                let Some(Value::Object(attrs)) = value else {
                    return Err(invalid_syntax("an operation without path needs an object value"));
                };
                // Attributes first, `active` last: an e-mail change in the same request as a
                // reactivation then applies to the reactivated user, as the IdPs intend.
                let mut active = None;
                for (key, v) in &attrs {
                    if key.eq_ignore_ascii_case("active") {
                        active = Some(v.clone());
                    } else {
                        user_path_change(op, key, Some(v), &mut changes)?;
                    }
                }
                if let Some(v) = active {
                    user_path_change(op, "active", Some(&v), &mut changes)?;
                }
            }
        }
    }
    Ok(changes)
}

fn string_value(value: Option<&Value>, what: &str) -> Result<String, ScimError> {
    match value {
        Some(Value::String(s)) => Ok(s.clone()),
        _ => Err(invalid_value(format!("{what} must be a string"))),
    }
}

fn optional_string(op: Op, value: Option<&Value>, what: &str) -> Result<Option<String>, ScimError> {
    match (op, value) {
        (Op::Remove, _) | (_, Some(Value::Null)) => Ok(None),
        _ => string_value(value, what).map(Some),
    }
}

/// `true`, `false`, or Entra's `"True"` / `"False"`.
fn bool_value(value: Option<&Value>) -> Result<bool, ScimError> {
    match value {
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(true),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(false),
        other => Err(invalid_value(format!("active must be a boolean, got {other:?}"))),
    }
}

fn user_path_change(
    op: Op,
    raw_path: &str,
    value: Option<&Value>,
    changes: &mut Vec<UserChange>,
) -> Result<(), ScimError> {
    let path = normalise_path(raw_path);
    if let Some(rest) = path.strip_prefix("emails[") {
        return email_filter_change(op, raw_path, rest, value, changes);
    }
    match path.as_str() {
        "active" => {
            if op == Op::Remove {
                return Err(ScimError::bad_request("mutability", "active cannot be removed"));
            }
            changes.push(UserChange::Active(bool_value(value)?));
        }
        "username" => {
            if op == Op::Remove {
                return Err(ScimError::bad_request("mutability", "userName is required"));
            }
            changes.push(UserChange::UserName(string_value(value, "userName")?));
        }
        "displayname" => changes.push(UserChange::DisplayName(optional_string(op, value, "displayName")?)),
        "name.givenname" => changes.push(UserChange::GivenName(optional_string(op, value, "name.givenName")?)),
        "name.familyname" => changes.push(UserChange::FamilyName(optional_string(op, value, "name.familyName")?)),
        "name.formatted" => changes.push(UserChange::Formatted(optional_string(op, value, "name.formatted")?)),
        "name" => match (op, value) {
            (Op::Remove, _) => {
                changes.extend([UserChange::GivenName(None), UserChange::FamilyName(None), UserChange::Formatted(None)])
            }
            (_, Some(Value::Object(name))) => {
                // `formatted` first so explicit parts win over the split of the full name.
                if let Some(v) = get(name, "formatted") {
                    changes.push(UserChange::Formatted(optional_string(op, Some(v), "name.formatted")?));
                }
                if let Some(v) = get(name, "givenName") {
                    changes.push(UserChange::GivenName(optional_string(op, Some(v), "name.givenName")?));
                }
                if let Some(v) = get(name, "familyName") {
                    changes.push(UserChange::FamilyName(optional_string(op, Some(v), "name.familyName")?));
                }
            }
            _ => return Err(invalid_value("name must be an object")),
        },
        "externalid" => changes.push(UserChange::ExternalId(optional_string(op, value, "externalId")?)),
        "preferredlanguage" => {
            changes.push(UserChange::PreferredLanguage(optional_string(op, value, "preferredLanguage")?));
        }
        "emails" => match op {
            Op::Remove => changes.push(UserChange::RemoveEmails(EmailSelector::All)),
            Op::Add => changes.push(UserChange::AddEmails(emails(value)?)),
            Op::Replace => changes.push(UserChange::ReplaceEmails(emails(value)?)),
        },
        "emails.value" => match op {
            Op::Remove => changes.push(UserChange::RemoveEmails(EmailSelector::All)),
            _ => changes.push(UserChange::SetEmailValue {
                selector: EmailSelector::Primary,
                value: string_value(value, "emails.value")?,
            }),
        },
        "id" | "meta" | "groups" => {
            return Err(ScimError::bad_request("mutability", format!("{raw_path} is read-only")));
        }
        // Attributes 1Password does not keep (title, phoneNumbers, addresses, the enterprise
        // extension, …): IdPs send them anyway and the bridge accepts them.
        _ => {}
    }
    Ok(())
}

fn email_filter_change(
    op: Op,
    raw_path: &str,
    rest: &str,
    value: Option<&Value>,
    changes: &mut Vec<UserChange>,
) -> Result<(), ScimError> {
    let bad_path = || ScimError::bad_request("invalidPath", format!("unsupported path {raw_path}"));
    let close = rest.find(']').ok_or_else(bad_path)?;
    // Parse the filter from the original spelling so quoted values keep their case.
    let original_rest = &raw_path[raw_path.len() - rest.len()..];
    let filter = Filter::parse(&original_rest[..close]).map_err(|_| bad_path())?;
    let selector = match filter {
        Filter::Compare { path, op: CompareOp::Eq, value: Literal::Str(v) } if path == "type" => EmailSelector::Type(v),
        Filter::Compare { path, op: CompareOp::Eq, value: Literal::Str(v) } if path == "value" => {
            EmailSelector::Value(v)
        }
        Filter::Compare { path, op: CompareOp::Eq, value: Literal::Bool(true) } if path == "primary" => {
            EmailSelector::Primary
        }
        _ => return Err(bad_path()),
    };
    let sub = &rest[close + 1..];
    match (op, sub) {
        (Op::Remove, "") => changes.push(UserChange::RemoveEmails(selector)),
        (Op::Remove, _) => {}
        (_, ".value") => {
            changes.push(UserChange::SetEmailValue { selector, value: string_value(value, "emails.value")? })
        }
        (_, "") => {
            let email = emails(value)?.into_iter().next().ok_or_else(|| invalid_value("no e-mail given"))?;
            changes.push(UserChange::SetEmailValue { selector, value: email.value });
        }
        // `.type`, `.primary` and the like do not change the login e-mail.
        _ => {}
    }
    Ok(())
}

fn emails(value: Option<&Value>) -> Result<Vec<Email>, ScimError> {
    let items = match value {
        Some(Value::Array(items)) => items.clone(),
        Some(obj @ Value::Object(_)) => vec![obj.clone()],
        _ => return Err(invalid_value("emails must be a list of objects")),
    };
    items
        .into_iter()
        .map(|item| {
            let obj = item.as_object().ok_or_else(|| invalid_value("each e-mail must be an object"))?;
            let value =
                get(obj, "value").and_then(Value::as_str).ok_or_else(|| invalid_value("e-mail without value"))?;
            let primary = match get(obj, "primary") {
                None | Some(Value::Null) => None,
                other => Some(bool_value(other)?),
            };
            let kind = get(obj, "type").and_then(Value::as_str).map(str::to_owned);
            Ok(Email { value: value.trim().to_owned(), primary, kind })
        })
        .collect()
}

/// `POST /Users` body.
pub fn new_user(body: &Value) -> Result<NewUser, ScimError> {
    let obj = body.as_object().ok_or_else(|| invalid_syntax("a User must be a JSON object"))?;
    let user_name = match get(obj, "userName") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_owned(),
        _ => return Err(invalid_value("userName is required")),
    };
    let name = get(obj, "name").and_then(Value::as_object);
    let name_part = |key: &str| name.and_then(|n| get(n, key)).and_then(Value::as_str).map(str::to_owned);
    let text = |key: &str| get(obj, key).and_then(Value::as_str).map(str::to_owned);
    Ok(NewUser {
        user_name,
        external_id: text("externalId"),
        given_name: name_part("givenName"),
        family_name: name_part("familyName"),
        formatted: name_part("formatted"),
        display_name: text("displayName"),
        emails: match get(obj, "emails") {
            None | Some(Value::Null) => Vec::new(),
            some => emails(some)?,
        },
        preferred_language: text("preferredLanguage"),
        active: match get(obj, "active") {
            None | Some(Value::Null) => None,
            some => Some(bool_value(some)?),
        },
    })
}

/// `PUT /Users/{id}`: the whole resource, as ordered changes (attributes first, `active` last).
pub fn user_replacement(body: &Value) -> Result<Vec<UserChange>, ScimError> {
    let new = new_user(body)?;
    let mut changes = vec![UserChange::UserName(new.user_name)];
    if let Some(f) = new.formatted {
        changes.push(UserChange::Formatted(Some(f)));
    }
    if new.given_name.is_some() || new.family_name.is_some() {
        changes.push(UserChange::GivenName(new.given_name));
        changes.push(UserChange::FamilyName(new.family_name));
    }
    if let Some(d) = new.display_name {
        changes.push(UserChange::DisplayName(Some(d)));
    }
    if !new.emails.is_empty() {
        changes.push(UserChange::ReplaceEmails(new.emails));
    }
    changes.push(UserChange::ExternalId(new.external_id));
    changes.push(UserChange::PreferredLanguage(new.preferred_language));
    if let Some(active) = new.active {
        changes.push(UserChange::Active(active));
    }
    Ok(changes)
}

// ----- groups ------------------------------------------------------------------------------------

fn member_ids(value: Option<&Value>) -> Result<Vec<String>, ScimError> {
    let items = match value {
        Some(Value::Array(items)) => items.iter().collect::<Vec<_>>(),
        Some(v @ Value::Object(_)) => vec![v],
        None | Some(Value::Null) => Vec::new(),
        _ => {
            return Err(invalid_value("members must be a list of {\"value\": id} objects"));
        }
    };
    items
        .into_iter()
        .map(|m| match m {
            Value::Object(o) => get(o, "value")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| invalid_value("member without value")),
            Value::String(s) => Ok(s.clone()),
            _ => Err(invalid_value("members must be objects")),
        })
        .collect()
}

pub fn group_patch(body: &Value) -> Result<Vec<GroupChange>, ScimError> {
    let mut changes = Vec::new();
    for (op, path, value) in operations(body)? {
        match path {
            Some(path) => group_path_change(op, &path, value.as_ref(), &mut changes)?,
            None => {
                let Some(Value::Object(attrs)) = value else {
                    return Err(invalid_syntax("an operation without path needs an object value"));
                };
                for (key, v) in &attrs {
                    if !key.eq_ignore_ascii_case("id") && !key.eq_ignore_ascii_case("schemas") {
                        group_path_change(op, key, Some(v), &mut changes)?;
                    }
                }
            }
        }
    }
    Ok(changes)
}

fn group_path_change(
    op: Op,
    raw_path: &str,
    value: Option<&Value>,
    changes: &mut Vec<GroupChange>,
) -> Result<(), ScimError> {
    let path = normalise_path(raw_path);
    if let Some(rest) = path.strip_prefix("members[") {
        let bad_path = || ScimError::bad_request("invalidPath", format!("unsupported path {raw_path}"));
        let close = rest.find(']').ok_or_else(bad_path)?;
        let original_rest = &raw_path[raw_path.len() - rest.len()..];
        let id = match Filter::parse(&original_rest[..close]).map_err(|_| bad_path())? {
            Filter::Compare { path, op: CompareOp::Eq, value: Literal::Str(v) } if path == "value" => v,
            _ => return Err(bad_path()),
        };
        match op {
            Op::Remove => changes.push(GroupChange::RemoveMembers(vec![id])),
            Op::Add | Op::Replace => changes.push(GroupChange::AddMembers(vec![id])),
        }
        return Ok(());
    }
    match path.as_str() {
        "displayname" => match op {
            Op::Remove => {
                return Err(ScimError::bad_request("mutability", "displayName is required"));
            }
            _ => changes.push(GroupChange::DisplayName(string_value(value, "displayName")?)),
        },
        "externalid" => changes.push(GroupChange::ExternalId(optional_string(op, value, "externalId")?)),
        "members" => match (op, value) {
            (Op::Add, _) => changes.push(GroupChange::AddMembers(member_ids(value)?)),
            (Op::Replace, _) => changes.push(GroupChange::ReplaceMembers(member_ids(value)?)),
            (Op::Remove, None | Some(Value::Null)) => changes.push(GroupChange::ReplaceMembers(Vec::new())),
            (Op::Remove, Some(_)) => changes.push(GroupChange::RemoveMembers(member_ids(value)?)),
        },
        "id" | "meta" => {
            return Err(ScimError::bad_request("mutability", format!("{raw_path} is read-only")));
        }
        _ => {}
    }
    Ok(())
}

pub fn new_group(body: &Value) -> Result<NewGroup, ScimError> {
    let obj = body.as_object().ok_or_else(|| invalid_syntax("a Group must be a JSON object"))?;
    let display_name = match get(obj, "displayName") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_owned(),
        _ => return Err(invalid_value("displayName is required")),
    };
    Ok(NewGroup {
        display_name,
        external_id: get(obj, "externalId").and_then(Value::as_str).map(str::to_owned),
        members: member_ids(get(obj, "members"))?,
    })
}

pub fn group_replacement(body: &Value) -> Result<Vec<GroupChange>, ScimError> {
    let new = new_group(body)?;
    Ok(vec![
        GroupChange::DisplayName(new.display_name),
        GroupChange::ExternalId(new.external_id),
        GroupChange::ReplaceMembers(new.members),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn okta_and_entra_deactivation_mean_the_same() {
        let okta = json!({"schemas": [super::super::render::PATCH_SCHEMA],
            "Operations": [{"op": "replace", "path": "active", "value": false}]});
        let entra = json!({"schemas": [super::super::render::PATCH_SCHEMA],
            "Operations": [{"op": "Replace", "value": {"active": "False"}}]});
        assert_eq!(user_patch(&okta).unwrap(), vec![UserChange::Active(false)]);
        assert_eq!(user_patch(&entra).unwrap(), vec![UserChange::Active(false)]);
    }

    #[test]
    fn entra_work_email_path_keeps_case_of_the_filter_value() {
        let body =
            json!({"Operations": [{"op": "Replace", "path": "emails[type eq \"Work\"].value", "value": "a@b.c"}]});
        assert_eq!(
            user_patch(&body).unwrap(),
            vec![UserChange::SetEmailValue { selector: EmailSelector::Type("Work".into()), value: "a@b.c".into() }]
        );
    }

    #[test]
    fn both_member_removal_forms() {
        let entra = json!({"Operations": [{"op": "Remove", "path": "members", "value": [{"value": "U1"}]}]});
        let okta = json!({"Operations": [{"op": "remove", "path": "members[value eq \"U1\"]"}]});
        assert_eq!(group_patch(&entra).unwrap(), vec![GroupChange::RemoveMembers(vec!["U1".into()])]);
        assert_eq!(group_patch(&okta).unwrap(), vec![GroupChange::RemoveMembers(vec!["U1".into()])]);
    }

    #[test]
    fn rejects_unknown_ops_and_bad_values() {
        assert!(user_patch(&json!({"Operations": [{"op": "move", "path": "active", "value": true}]})).is_err());
        assert!(user_patch(&json!({"Operations": [{"op": "replace", "path": "active", "value": "maybe"}]})).is_err());
        assert!(user_patch(&json!({"nothing": []})).is_err());
    }
}
