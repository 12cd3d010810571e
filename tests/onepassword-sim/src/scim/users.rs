//! `/Users`: list with filter and paging, create (invite), get, PATCH, PUT, DELETE (suspend).

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::error::{ScimError, scim_response};
use super::filter::{AttrValue, Attributes, Element, Filter, as_simple_eq};
use super::render::{Projection, USER_ALWAYS, list_response, user_json};
use super::{ListParams, parse_json, patch};
use crate::model::{User, Via};
use crate::state::{SimState, UserKey};

const FILTERABLE: &[&str] = &[
    "id",
    "username",
    "externalid",
    "displayname",
    "name.givenname",
    "name.familyname",
    "name.formatted",
    "emails",
    "emails.value",
    "emails.type",
    "emails.primary",
    "active",
    "preferredlanguage",
];

/// A user as filters see it (`emails[type eq "work"]` goes through [`Attributes::elements`]).
struct Filterable<'a> {
    user: &'a User,
    active: bool,
}

impl<'a> Attributes<'a> for Filterable<'a> {
    fn values(&self, path: &str) -> Vec<AttrValue<'a>> {
        let user = self.user;
        let ci = |value: &'a str| AttrValue::Str { value, case_exact: false };
        let exact = |value: &'a str| AttrValue::Str { value, case_exact: true };
        match path {
            "id" => vec![exact(&user.id)],
            "username" => vec![ci(&user.user_name)],
            "externalid" => user.external_id.as_deref().map(exact).into_iter().collect(),
            "displayname" => user.display_name.as_deref().map(ci).into_iter().collect(),
            "name.givenname" => user.given_name.as_deref().map(ci).into_iter().collect(),
            "name.familyname" => user.family_name.as_deref().map(ci).into_iter().collect(),
            "name.formatted" => user.formatted.as_deref().map(ci).into_iter().collect(),
            "emails" | "emails.value" => user.emails.iter().map(|e| ci(&e.value)).collect(),
            "emails.type" => user.emails.iter().filter_map(|e| e.kind.as_deref()).map(ci).collect(),
            "emails.primary" => user.emails.iter().filter_map(|e| e.primary).map(AttrValue::Bool).collect(),
            "active" => vec![AttrValue::Bool(self.active)],
            "preferredlanguage" => user.preferred_language.as_deref().map(ci).into_iter().collect(),
            _ => Vec::new(),
        }
    }

    fn elements(&self, path: &str) -> Vec<Element<'a>> {
        if path != "emails" {
            return Vec::new();
        }
        self.user
            .emails
            .iter()
            .map(|e| {
                let mut element = vec![("value", AttrValue::Str { value: &e.value, case_exact: false })];
                if let Some(kind) = e.kind.as_deref() {
                    element.push(("type", AttrValue::Str { value: kind, case_exact: false }));
                }
                if let Some(primary) = e.primary {
                    element.push(("primary", AttrValue::Bool(primary)));
                }
                Element(element)
            })
            .collect()
    }
}

/// The index keys that find every user `filter` can match: an `eq` on `userName`,
/// `externalId` or `id`, or an `or` of such terms. `None` for any other filter (it scans).
pub fn index_keys(filter: &Filter) -> Option<Vec<UserKey>> {
    match filter {
        Filter::Or(a, b) => {
            let mut keys = index_keys(a)?;
            keys.extend(index_keys(b)?);
            Some(keys)
        }
        _ => {
            let key = if let Some(name) = as_simple_eq(filter, "username") {
                UserKey::UserName(name.to_owned())
            } else if let Some(ext) = as_simple_eq(filter, "externalid") {
                UserKey::ExternalId(ext.to_owned())
            } else {
                UserKey::Id(as_simple_eq(filter, "id")?.to_owned())
            };
            Some(vec![key])
        }
    }
}

/// Whether `user` matches `filter` (SCIM `active` as of `now`).
pub fn user_matches(filter: &Filter, user: &User, now: chrono::DateTime<chrono::Utc>) -> bool {
    filter.matches(&Filterable { user, active: user.effective_state(now).scim_active() })
}

pub(super) fn render_user(
    state: &SimState,
    user: &User,
    groups: &[(String, String)],
    projection: &Projection,
) -> serde_json::Value {
    let active = user.effective_state(state.now()).scim_active();
    let config = state.config();
    let mut json = user_json(user, active, groups, config.user_groups, config.meta_location);
    if !projection.is_identity() {
        projection.apply(&mut json, USER_ALWAYS);
    }
    json
}

pub async fn list(State(state): State<SimState>, RawQuery(query): RawQuery) -> Result<Response, ScimError> {
    let params = ListParams::parse(query.as_deref(), state.config())?;
    let projection = params.projection();
    let now = state.now();
    let filter = params.filter(state.config(), FILTERABLE)?;

    let keep = |u: &User| filter.as_ref().is_none_or(|f| user_matches(f, u, now));
    // The lookups every IdP does before creating a user (`externalId eq … or userName eq …`)
    // go through the indexes; the filter still decides on the users they find.
    let (total, page) = match filter.as_ref().and_then(index_keys) {
        Some(keys) => state.query_users_by_keys(&keys, keep, params.offset(), params.limit),
        None => state.query_users(keep, params.offset(), params.limit),
    };
    let resources = page.iter().map(|(u, groups)| render_user(&state, u, groups, &projection)).collect();
    Ok(scim_response(StatusCode::OK, &list_response(total, params.start_index, resources)))
}

pub async fn create(State(state): State<SimState>, body: Bytes) -> Result<Response, ScimError> {
    let new = patch::new_user(&parse_json(&body)?)?;
    let (user, _created) = state.create_user(new).map_err(|e| ScimError::from_sim(e, state.config()))?;
    let groups = state.user_groups(&user);
    let status = StatusCode::from_u16(state.config().create_status.code()).unwrap_or(StatusCode::OK);
    Ok(scim_response(status, &render_user(&state, &user, &groups, &Projection::default())))
}

pub async fn get(
    State(state): State<SimState>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ScimError> {
    let params = ListParams::parse(query.as_deref(), state.config())?;
    let user = state.user(&id).ok_or_else(|| ScimError::not_found(format!("user {id} not found")))?;
    let groups = state.user_groups(&user);
    Ok(scim_response(StatusCode::OK, &render_user(&state, &user, &groups, &params.projection())))
}

pub async fn patch(State(state): State<SimState>, Path(id): Path<String>, body: Bytes) -> Result<Response, ScimError> {
    let changes = patch::user_patch(&parse_json(&body)?)?;
    let user = state.change_user(&id, changes, Via::Patch).map_err(|e| ScimError::from_sim(e, state.config()))?;
    let groups = state.user_groups(&user);
    Ok(scim_response(StatusCode::OK, &render_user(&state, &user, &groups, &Projection::default())))
}

pub async fn put(State(state): State<SimState>, Path(id): Path<String>, body: Bytes) -> Result<Response, ScimError> {
    if !state.config().put_supported {
        return Err(ScimError::new(405, None, "PUT is not supported; use PATCH"));
    }
    let changes = patch::user_replacement(&parse_json(&body)?)?;
    let user = state.change_user(&id, changes, Via::Put).map_err(|e| ScimError::from_sim(e, state.config()))?;
    let groups = state.user_groups(&user);
    Ok(scim_response(StatusCode::OK, &render_user(&state, &user, &groups, &Projection::default())))
}

/// DELETE suspends: 204, and the user stays listed with `active: false`.
pub async fn delete(State(state): State<SimState>, Path(id): Path<String>) -> Result<StatusCode, ScimError> {
    state.delete_user(&id).map_err(|e| ScimError::from_sim(e, state.config()))?;
    Ok(StatusCode::NO_CONTENT)
}
