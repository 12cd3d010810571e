//! `/Groups`: only managed groups are visible; protected groups refuse every change.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::error::{ScimError, scim_response};
use super::filter::{AttrValue, Attributes, CompareOp, Element, Filter, Literal};
use super::render::{GROUP_ALWAYS, Projection, group_json, list_response};
use super::{ListParams, parse_json, patch};
use crate::config::GroupMembers;
use crate::model::Group;
use crate::state::{GroupChange, SimState};

const FILTERABLE: &[&str] = &["id", "displayname", "externalid", "members", "members.value", "members.type"];

/// A group as filters see it (`members[value eq "ID"]` goes through [`Attributes::elements`]).
struct Filterable<'a>(&'a Group);

impl<'a> Attributes<'a> for Filterable<'a> {
    fn values(&self, path: &str) -> Vec<AttrValue<'a>> {
        let group = self.0;
        match path {
            "id" => vec![AttrValue::Str { value: &group.id, case_exact: true }],
            "displayname" => vec![AttrValue::Str { value: &group.display_name, case_exact: false }],
            "externalid" => group
                .external_id
                .as_deref()
                .map(|value| AttrValue::Str { value, case_exact: true })
                .into_iter()
                .collect(),
            "members" | "members.value" => {
                group.members.iter().map(|value| AttrValue::Str { value, case_exact: true }).collect()
            }
            "members.type" => {
                group.members.iter().map(|_| AttrValue::Str { value: "User", case_exact: false }).collect()
            }
            _ => Vec::new(),
        }
    }

    fn elements(&self, path: &str) -> Vec<Element<'a>> {
        match path {
            "members" => self
                .0
                .members
                .iter()
                .map(|id| {
                    Element(vec![
                        ("value", AttrValue::Str { value: id, case_exact: true }),
                        ("type", AttrValue::Str { value: "User", case_exact: false }),
                    ])
                })
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// Whether `group` matches `filter`. Exactly what [`Filter::matches`] on [`Filterable`] says,
/// but a member test (`members[value eq "ID"]`, `members.value eq "ID"`, `members eq "ID"`)
/// is a lookup in the member set instead of a walk over every member.
pub fn group_matches(filter: &Filter, group: &Group) -> bool {
    match filter {
        Filter::And(a, b) => group_matches(a, group) && group_matches(b, group),
        Filter::Or(a, b) => group_matches(a, group) || group_matches(b, group),
        Filter::Not(inner) => !group_matches(inner, group),
        _ => match member_eq(filter) {
            Some(id) => group.members.contains(id),
            None => filter.matches(&Filterable(group)),
        },
    }
}

/// The user id of a member test (member ids are case-exact).
fn member_eq(filter: &Filter) -> Option<&str> {
    match filter {
        Filter::Compare { path, op: CompareOp::Eq, value: Literal::Str(id) }
            if path == "members" || path == "members.value" =>
        {
            Some(id)
        }
        Filter::ValuePath { path, filter } if path == "members" => match &**filter {
            Filter::Compare { path, op: CompareOp::Eq, value: Literal::Str(id) } if path == "value" => Some(id),
            _ => None,
        },
        _ => None,
    }
}

/// Which answer a group is rendered for (the `group_members` switch depends on it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// `GET /Groups`.
    Listing,
    /// `GET /Groups/{id}`.
    ById,
    /// POST, PATCH and PUT.
    Write,
}

fn render(state: &SimState, group: &Group, projection: &Projection, answer: Answer) -> serde_json::Value {
    let mode_allows = match state.config().group_members {
        GroupMembers::Always => true,
        GroupMembers::Never => false,
        GroupMembers::OnlyById => answer == Answer::ById,
    };
    let members = (mode_allows && projection.includes("members")).then_some(&group.members);
    let mut json = group_json(group, members, state.config().meta_location);
    if !projection.is_identity() {
        projection.apply(&mut json, GROUP_ALWAYS);
    }
    json
}

fn sim_error(state: &SimState) -> impl Fn(crate::error::SimError) -> ScimError + '_ {
    move |e| ScimError::from_sim(e, state.config())
}

pub async fn list(State(state): State<SimState>, RawQuery(query): RawQuery) -> Result<Response, ScimError> {
    let params = ListParams::parse(query.as_deref(), state.config())?;
    let projection = params.projection();
    let filter = params.filter(state.config(), FILTERABLE)?;
    // Rendered in place: neither the groups nor their members are copied.
    let (total, resources) = state.query_groups(
        |g| filter.as_ref().is_none_or(|f| group_matches(f, g)),
        params.offset(),
        params.limit,
        |g| render(&state, g, &projection, Answer::Listing),
    );
    Ok(scim_response(StatusCode::OK, &list_response(total, params.start_index, resources)))
}

pub async fn create(State(state): State<SimState>, body: Bytes) -> Result<Response, ScimError> {
    let new = patch::new_group(&parse_json(&body)?)?;
    let json = state
        .create_group_then(new, |g| render(&state, g, &Projection::default(), Answer::Write))
        .map_err(sim_error(&state))?;
    let status = StatusCode::from_u16(state.config().create_status.code()).unwrap_or(StatusCode::OK);
    Ok(scim_response(status, &json))
}

pub async fn get(
    State(state): State<SimState>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ScimError> {
    let params = ListParams::parse(query.as_deref(), state.config())?;
    let projection = params.projection();
    let json = state
        .with_group(&id, |g| render(&state, g, &projection, Answer::ById))
        .ok_or_else(|| ScimError::not_found(format!("group {id} not found")))?;
    Ok(scim_response(StatusCode::OK, &json))
}

/// RFC 7644 §3.5.2: `attributes` / `excludedAttributes` shape the answer to a PATCH too.
pub async fn patch(
    State(state): State<SimState>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Result<Response, ScimError> {
    let projection = ListParams::parse(query.as_deref(), state.config())?.projection();
    let changes = patch::group_patch(&parse_json(&body)?)?;
    let json = state
        .change_group_then(&id, changes, |g| render(&state, g, &projection, Answer::Write))
        .map_err(sim_error(&state))?;
    Ok(scim_response(StatusCode::OK, &json))
}

pub async fn put(State(state): State<SimState>, Path(id): Path<String>, body: Bytes) -> Result<Response, ScimError> {
    if !state.config().put_supported {
        return Err(ScimError::new(405, None, "PUT is not supported; use PATCH"));
    }
    let changes = patch::group_replacement(&parse_json(&body)?)?;
    change_and_render(&state, &id, changes)
}

/// PATCH and PUT alike: apply the changes all-or-nothing, answer with the group.
fn change_and_render(state: &SimState, id: &str, changes: Vec<GroupChange>) -> Result<Response, ScimError> {
    let json = state
        .change_group_then(id, changes, |g| render(state, g, &Projection::default(), Answer::Write))
        .map_err(sim_error(state))?;
    Ok(scim_response(StatusCode::OK, &json))
}

pub async fn delete(State(state): State<SimState>, Path(id): Path<String>) -> Result<StatusCode, ScimError> {
    state.delete_group(&id).map_err(sim_error(&state))?;
    Ok(StatusCode::NO_CONTENT)
}
