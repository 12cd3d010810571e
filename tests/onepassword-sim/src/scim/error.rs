//! RFC 7644 §3.12 errors, and how domain errors map onto them.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::config::SimConfig;
use crate::error::SimError;

pub const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
pub const SCIM_CONTENT_TYPE: &str = "application/scim+json";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScimError {
    pub status: u16,
    pub scim_type: Option<&'static str>,
    pub detail: String,
}

impl ScimError {
    pub fn new(status: u16, scim_type: Option<&'static str>, detail: impl Into<String>) -> Self {
        ScimError { status, scim_type, detail: detail.into() }
    }

    pub fn bad_request(scim_type: &'static str, detail: impl Into<String>) -> Self {
        ScimError::new(400, Some(scim_type), detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        ScimError::new(404, None, detail)
    }

    pub fn from_sim(err: SimError, config: &SimConfig) -> Self {
        let detail = err.to_string();
        match err {
            SimError::NotFound(_) => ScimError::new(404, None, detail),
            SimError::Uniqueness(_) => ScimError::new(409, Some("uniqueness"), detail),
            SimError::ProtectedGroup(_) => ScimError::new(config.protected_group_error.code(), None, detail),
            SimError::InvalidValue(_) | SimError::SuspendedEmailChange(_) => {
                ScimError::bad_request("invalidValue", detail)
            }
            SimError::Mutability(_) => ScimError::bad_request("mutability", detail),
            SimError::NotInvited { .. } | SimError::InvitationExpired(_) => ScimError::new(409, None, detail),
        }
    }
}

impl IntoResponse for ScimError {
    fn into_response(self) -> Response {
        let mut body = json!({
            "schemas": [ERROR_SCHEMA],
            "status": self.status.to_string(),
            "detail": self.detail,
        });
        if let Some(t) = self.scim_type {
            body["scimType"] = json!(t);
        }
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = scim_response(status, &body);
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// A JSON body with the SCIM content type.
pub fn scim_response(status: StatusCode, body: &serde_json::Value) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    (status, [(header::CONTENT_TYPE, HeaderValue::from_static(SCIM_CONTENT_TYPE))], bytes).into_response()
}
