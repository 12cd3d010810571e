//! The `/_sim/` control API: the same operations as [`SimState`], over HTTP, for the local
//! stack and out-of-process tests. Unauthenticated; enabled by `SimConfig::control_api`.

use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::error::SimError;
use crate::faults::FaultRule;
use crate::model::Seed;
use crate::state::SimState;

fn fail(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({"error": message.into()}))).into_response()
}

fn sim_fail(err: SimError) -> Response {
    let status = match err {
        SimError::NotFound(_) => StatusCode::NOT_FOUND,
        SimError::Uniqueness(_) | SimError::NotInvited { .. } | SimError::InvitationExpired(_) => StatusCode::CONFLICT,
        _ => StatusCode::BAD_REQUEST,
    };
    fail(status, err.to_string())
}

/// Errors are the message of a 400 answer.
fn body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    serde_json::from_slice(bytes).map_err(|e| format!("invalid JSON body: {e}"))
}

fn ok<T: serde::Serialize>(value: T) -> Response {
    axum::Json(value).into_response()
}

async fn reset(State(state): State<SimState>) -> StatusCode {
    state.reset();
    StatusCode::NO_CONTENT
}

async fn seed(State(state): State<SimState>, bytes: Bytes) -> Response {
    match body::<Seed>(&bytes) {
        Ok(seed) => state.seed(seed).map(ok).unwrap_or_else(sim_fail),
        Err(message) => fail(StatusCode::BAD_REQUEST, message),
    }
}

async fn users(State(state): State<SimState>) -> Response {
    ok(state.users())
}

async fn user(State(state): State<SimState>, Path(key): Path<String>) -> Response {
    state.user_view(&key).map(ok).unwrap_or_else(|| fail(StatusCode::NOT_FOUND, format!("user {key} not found")))
}

async fn accept(State(state): State<SimState>, Path(key): Path<String>) -> Response {
    state.accept_invitation(&key).map(ok).unwrap_or_else(sim_fail)
}

async fn expire(State(state): State<SimState>, Path(key): Path<String>) -> Response {
    state.expire_invitation(&key).map(ok).unwrap_or_else(sim_fail)
}

async fn failed_sign_in(State(state): State<SimState>, Path(key): Path<String>) -> Response {
    match state.record_failed_sign_in(&key) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => sim_fail(e),
    }
}

async fn groups(State(state): State<SimState>) -> Response {
    ok(state.groups())
}

async fn clock(State(state): State<SimState>) -> Response {
    ok(json!({"now": state.now()}))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Advance {
    days: u64,
    hours: u64,
    minutes: u64,
    seconds: u64,
    millis: u64,
}

async fn advance(State(state): State<SimState>, bytes: Bytes) -> Response {
    let by: Advance = match body(&bytes) {
        Ok(by) => by,
        Err(message) => return fail(StatusCode::BAD_REQUEST, message),
    };
    let total = Duration::from_secs(by.days * 86_400 + by.hours * 3_600 + by.minutes * 60 + by.seconds)
        + Duration::from_millis(by.millis);
    ok(json!({"now": state.advance_clock(total)}))
}

async fn outbox(State(state): State<SimState>) -> Response {
    ok(state.outbox())
}

async fn violations(State(state): State<SimState>) -> Response {
    ok(state.violations())
}

async fn account_changes(State(state): State<SimState>) -> Response {
    ok(state.account_changes())
}

async fn operations(State(state): State<SimState>) -> Response {
    ok(state.operations())
}

async fn clear_operations(State(state): State<SimState>) -> StatusCode {
    state.clear_operations();
    StatusCode::NO_CONTENT
}

async fn traffic(State(state): State<SimState>) -> Response {
    ok(state.traffic())
}

async fn reset_traffic(State(state): State<SimState>) -> StatusCode {
    state.reset_traffic();
    StatusCode::NO_CONTENT
}

async fn faults(State(state): State<SimState>) -> Response {
    ok(state.faults())
}

async fn add_fault(State(state): State<SimState>, bytes: Bytes) -> Response {
    match body::<FaultRule>(&bytes) {
        Ok(rule) => match state.add_fault(rule) {
            Ok(id) => (StatusCode::CREATED, axum::Json(json!({"id": id}))).into_response(),
            Err(e) => sim_fail(e),
        },
        Err(message) => fail(StatusCode::BAD_REQUEST, message),
    }
}

async fn clear_faults(State(state): State<SimState>) -> StatusCode {
    state.clear_faults();
    StatusCode::NO_CONTENT
}

async fn remove_fault(State(state): State<SimState>, Path(id): Path<u64>) -> Response {
    if state.remove_fault(id) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        fail(StatusCode::NOT_FOUND, format!("fault {id} not found"))
    }
}

pub fn router() -> Router<SimState> {
    Router::new()
        .route("/_sim/reset", post(reset))
        .route("/_sim/seed", post(seed))
        .route("/_sim/users", get(users))
        .route("/_sim/users/{key}", get(user))
        .route("/_sim/users/{key}/accept", post(accept))
        .route("/_sim/users/{key}/expire-invitation", post(expire))
        .route("/_sim/users/{key}/failed-sign-in", post(failed_sign_in))
        .route("/_sim/groups", get(groups))
        .route("/_sim/clock", get(clock))
        .route("/_sim/clock/advance", post(advance))
        .route("/_sim/outbox", get(outbox))
        .route("/_sim/violations", get(violations))
        .route("/_sim/account-changes", get(account_changes))
        .route("/_sim/operations", get(operations).delete(clear_operations))
        .route("/_sim/traffic", get(traffic).delete(reset_traffic))
        .route("/_sim/faults", get(faults).post(add_fault).delete(clear_faults))
        .route("/_sim/faults/{id}", delete(remove_fault))
}
