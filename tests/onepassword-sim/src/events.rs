//! The 1Password Events API (v2, and the v1 aliases): introspection, sign-in attempts, audit
//! events and (always empty) item usages, with its own bearer token and cursor paging.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::scim::bearer_matches;
use crate::state::SimState;

const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

/// The Events API's error body.
pub fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({"Error": {"Message": message}}))).into_response()
}

async fn require_token(State(state): State<SimState>, request: Request, next: Next) -> Response {
    match &state.config().events_token {
        Some(token) if bearer_matches(&request, token) => next.run(request).await,
        _ => error(StatusCode::UNAUTHORIZED, "Unauthorized"),
    }
}

async fn introspect(State(state): State<SimState>) -> Response {
    axum::Json(json!({
        "uuid": "SIMULATOREVENTSTOKEN000000",
        "issued_at": state.now().to_rfc3339(),
        "features": ["auditevents", "itemusages", "signinattempts"],
        "account_uuid": state.account_uuid(),
    }))
    .into_response()
}

/// Where a cursor continues: the feature it belongs to, the position in the (append-only)
/// event list, and the window of the original request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Cursor {
    feature: String,
    position: usize,
    limit: usize,
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
}

impl Cursor {
    fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    fn decode(text: &str) -> Option<Cursor> {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(text).ok()?).ok()
    }
}

#[derive(Debug, Deserialize)]
struct EventRequest {
    cursor: Option<String>,
    limit: Option<i64>,
    start_time: Option<String>,
    end_time: Option<String>,
}

/// Errors are the message of a 400 answer.
fn parse_time(field: &str, value: Option<&str>) -> Result<Option<DateTime<Utc>>, String> {
    value
        .map(|v| {
            DateTime::parse_from_rfc3339(v)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| format!("{field} must be an RFC 3339 timestamp"))
        })
        .transpose()
}

/// Errors are the message of a 400 answer.
fn cursor_for(feature: &str, body: &[u8]) -> Result<Cursor, String> {
    let request: EventRequest = if body.iter().all(u8::is_ascii_whitespace) {
        EventRequest { cursor: None, limit: None, start_time: None, end_time: None }
    } else {
        serde_json::from_slice(body).map_err(|e| format!("invalid request body: {e}"))?
    };
    if let Some(text) = request.cursor {
        return Cursor::decode(&text).filter(|c| c.feature == feature).ok_or_else(|| "invalid cursor".to_owned());
    }
    let limit = match request.limit {
        None => DEFAULT_LIMIT,
        Some(l) if (1..=MAX_LIMIT as i64).contains(&l) => l as usize,
        Some(l) => {
            return Err(format!("limit must be between 1 and {MAX_LIMIT}, got {l}"));
        }
    };
    Ok(Cursor {
        feature: feature.to_owned(),
        position: 0,
        limit,
        start: parse_time("start_time", request.start_time.as_deref())?,
        end: parse_time("end_time", request.end_time.as_deref())?,
    })
}

/// One page of `events` after the cursor; the returned cursor continues after it.
fn page<T: Serialize>(cursor: Cursor, events: &[T], timestamp: impl Fn(&T) -> DateTime<Utc>) -> Value {
    let in_window = |t: DateTime<Utc>| cursor.start.is_none_or(|s| t >= s) && cursor.end.is_none_or(|e| t < e);
    let mut items = Vec::new();
    let mut position = cursor.position.min(events.len());
    while position < events.len() && items.len() < cursor.limit {
        if in_window(timestamp(&events[position])) {
            items.push(serde_json::to_value(&events[position]).unwrap_or(Value::Null));
        }
        position += 1;
    }
    let has_more = events[position..].iter().any(|e| in_window(timestamp(e)));
    let next = Cursor { position, ..cursor };
    json!({"cursor": next.encode(), "has_more": has_more, "items": items})
}

async fn sign_in_attempts(State(state): State<SimState>, body: Bytes) -> Response {
    match cursor_for("signinattempts", &body) {
        Ok(cursor) => axum::Json(state.with_sign_ins(|events| page(cursor, events, |e| e.timestamp))).into_response(),
        Err(message) => error(StatusCode::BAD_REQUEST, &message),
    }
}

async fn audit_events(State(state): State<SimState>, body: Bytes) -> Response {
    match cursor_for("auditevents", &body) {
        Ok(cursor) => {
            axum::Json(state.with_audit_events(|events| page(cursor, events, |e| e.timestamp))).into_response()
        }
        Err(message) => error(StatusCode::BAD_REQUEST, &message),
    }
}

async fn item_usages(body: Bytes) -> Response {
    match cursor_for("itemusages", &body) {
        Ok(cursor) => axum::Json(page::<Value>(cursor, &[], |_| Utc::now())).into_response(),
        Err(message) => error(StatusCode::BAD_REQUEST, &message),
    }
}

pub fn router(state: &SimState) -> Router<SimState> {
    let versioned = |router: Router<SimState>, v: &str| {
        router
            .route(&format!("/api/{v}/signinattempts"), post(sign_in_attempts))
            .route(&format!("/api/{v}/auditevents"), post(audit_events))
            .route(&format!("/api/{v}/itemusages"), post(item_usages))
    };
    let router =
        Router::new().route("/api/v2/auth/introspect", get(introspect)).route("/api/auth/introspect", get(introspect));
    versioned(versioned(router, "v1"), "v2").route_layer(middleware::from_fn_with_state(state.clone(), require_token))
}
