//! The SCIM bridge: served at `/scim/v2/...`, `/scim/...` and the bare root.

pub mod discovery;
pub mod error;
pub mod filter;
pub mod groups;
pub mod patch;
pub mod render;
pub mod users;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::config::{FilterMode, SimConfig};
use error::ScimError;
use filter::Filter;
use render::Projection;

use crate::state::SimState;

/// `filter`, `startIndex`, `count`, `attributes`, `excludedAttributes` of a request.
#[derive(Debug, Clone, PartialEq)]
pub struct ListParams {
    pub filter: Option<String>,
    /// 1-based, as echoed in the response.
    pub start_index: usize,
    pub limit: usize,
    pub attributes: Option<String>,
    pub excluded: Option<String>,
}

impl ListParams {
    pub fn parse(query: Option<&str>, config: &SimConfig) -> Result<Self, ScimError> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query.unwrap_or(""))
            .map_err(|e| ScimError::bad_request("invalidValue", format!("malformed query string: {e}")))?;
        let find = |key: &str| pairs.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v.clone());
        let number = |key: &str| -> Result<Option<i64>, ScimError> {
            find(key)
                .map(|v| {
                    v.trim()
                        .parse::<i64>()
                        .map_err(|_| ScimError::bad_request("invalidValue", format!("{key} must be an integer")))
                })
                .transpose()
        };
        // RFC 7644 §3.4.2.4: startIndex < 1 is read as 1, a negative count as 0.
        let start_index = usize::try_from(number("startIndex")?.unwrap_or(1).max(1)).unwrap_or(1);
        let default_count = config.default_page_size.unwrap_or(config.max_results);
        let count = number("count")?.map_or(default_count, |c| usize::try_from(c.max(0)).unwrap_or(0));
        Ok(ListParams {
            filter: find("filter").filter(|f| !f.trim().is_empty()),
            start_index,
            limit: count.min(config.max_results),
            attributes: find("attributes"),
            excluded: find("excludedAttributes"),
        })
    }

    pub fn offset(&self) -> usize {
        self.start_index - 1
    }

    pub fn projection(&self) -> Projection {
        Projection::parse(self.attributes.as_deref(), self.excluded.as_deref())
    }

    /// The request's filter as the `filters` switch has it: parsed (`Supported`), dropped
    /// unread (`Ignored`: the caller lists everything) or refused (`Rejected`).
    pub fn filter(&self, config: &SimConfig, filterable: &[&str]) -> Result<Option<Filter>, ScimError> {
        let Some(text) = &self.filter else {
            return Ok(None);
        };
        match config.filters {
            FilterMode::Supported => {}
            FilterMode::Ignored => return Ok(None),
            FilterMode::Rejected => {
                return Err(ScimError::bad_request("invalidFilter", "filtering is not supported"));
            }
        }
        let filter = Filter::parse(text).map_err(|e| ScimError::bad_request("invalidFilter", e))?;
        if let Some(unknown) = filter.paths().into_iter().find(|p| !filterable.contains(&p.as_str())) {
            return Err(ScimError::bad_request("invalidFilter", format!("cannot filter on {unknown}")));
        }
        Ok(Some(filter))
    }
}

pub fn parse_json(body: &[u8]) -> Result<serde_json::Value, ScimError> {
    serde_json::from_slice(body)
        .map_err(|e| ScimError::bad_request("invalidSyntax", format!("the body is not valid JSON: {e}")))
}

/// Constant-time bearer-token check.
pub fn bearer_matches(request: &Request, expected: &str) -> bool {
    let Some(value) = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let Some((scheme, token)) = value.trim().split_once(' ') else {
        return false;
    };
    scheme.eq_ignore_ascii_case("bearer") && bool::from(token.trim().as_bytes().ct_eq(expected.as_bytes()))
}

async fn require_token(State(state): State<SimState>, request: Request, next: Next) -> Response {
    if bearer_matches(&request, &state.scim_token()) {
        next.run(request).await
    } else {
        ScimError::new(401, None, "missing or invalid bearer token").into_response()
    }
}

async fn ping() -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain")], "pong").into_response()
}

/// The bridge's health report (shape from 1Password's deployment docs).
async fn health(State(state): State<SimState>) -> Response {
    let now = render::timestamp(state.now());
    let expires = render::timestamp(state.now() + chrono::TimeDelta::minutes(10));
    let reports: Vec<_> = ["ConfirmationWatcher", "RedisCache", "SCIMServer", "StartProvisionWatcher"]
        .iter()
        .map(|source| json!({"source": source, "time": now, "expires": expires, "state": "healthy"}))
        .collect();
    let body = json!({"build": "209163", "version": "2.9.16", "reports": reports, "retrievedAt": now});
    (StatusCode::OK, axum::Json(body)).into_response()
}

/// `POST /.search` across resource types is not offered (RFC 7644 §3.4.3 allows 501).
async fn root_search() -> ScimError {
    ScimError::new(501, None, "searching across resource types is not supported")
}

pub async fn not_found() -> ScimError {
    ScimError::not_found("no such endpoint")
}

pub async fn method_not_allowed() -> ScimError {
    ScimError::new(405, None, "method not allowed on this endpoint")
}

/// The SCIM routes relative to one prefix.
fn routes(state: &SimState) -> Router<SimState> {
    Router::new()
        .route("/Users", get(users::list).post(users::create))
        .route("/Users/{id}", get(users::get).patch(users::patch).put(users::put).delete(users::delete))
        .route("/Groups", get(groups::list).post(groups::create))
        .route("/Groups/{id}", get(groups::get).patch(groups::patch).put(groups::put).delete(groups::delete))
        .route("/ServiceProviderConfig", get(discovery::service_provider_config))
        .route("/Schemas", get(discovery::list_schemas))
        .route("/Schemas/{id}", get(discovery::get_schema))
        .route("/ResourceTypes", get(discovery::list_resource_types))
        .route("/ResourceTypes/{id}", get(discovery::get_resource_type))
        .route("/.search", post(root_search))
        .route("/health", get(health))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token))
        .route("/ping", get(ping))
}

pub fn router(state: &SimState) -> Router<SimState> {
    Router::new()
        .nest("/scim/v2", routes(state))
        .nest("/scim", routes(state))
        .merge(routes(state))
        .route("/", get(|| async { (StatusCode::FOUND, [(header::LOCATION, "/app")], Body::empty()) }))
}
