//! Small helpers for answering HTTP requests with JSON bodies.

use lambda_http::{Body, Response};
use serde::Serialize;

/// A JSON response. Serializing our own response types cannot fail; if it ever did, the
/// caller still gets a well-formed 500 rather than a panic.
pub fn json_response(status: u16, body: &impl Serialize) -> Response<Body> {
    let (status, text) = match serde_json::to_string(body) {
        Ok(text) => (status, text),
        Err(_) => (500, r#"{"error":"internal error"}"#.to_owned()),
    };
    let mut response = Response::new(Body::Text(text));
    *response.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    response
}

/// `{"error": "<message>"}` with the given status.
pub fn error_response(status: u16, message: &str) -> Response<Body> {
    json_response(status, &serde_json::json!({ "error": message }))
}
