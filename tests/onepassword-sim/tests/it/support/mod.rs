#![allow(dead_code)]

use std::time::Duration;

use onepassword_sim::{RunningSim, SimConfig, spawn};
use reqwest::{Method, StatusCode};
use serde_json::Value;

pub const SCIM_TOKEN: &str = "sim-scim-token";
pub const EVENTS_TOKEN: &str = "sim-events-token";

pub struct Harness {
    pub sim: RunningSim,
    pub http: reqwest::Client,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn content_type(&self) -> &str {
        self.headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("")
    }

    /// Asserts an RFC 7644 error with this status (and scimType when given).
    pub fn assert_scim_error(&self, status: u16, scim_type: Option<&str>) {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.body);
        assert_eq!(self.body["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:Error", "body: {}", self.body);
        assert_eq!(self.body["status"], status.to_string(), "status must be a string: {}", self.body);
        assert!(self.body["detail"].as_str().is_some_and(|d| !d.is_empty()), "detail missing: {}", self.body);
        if let Some(t) = scim_type {
            assert_eq!(self.body["scimType"], t, "body: {}", self.body);
        }
        assert!(self.content_type().starts_with("application/scim+json"), "content-type {}", self.content_type());
    }
}

pub async fn start(config: SimConfig) -> Harness {
    let sim = spawn(config, "127.0.0.1:0".parse().unwrap()).await.expect("simulator starts");
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    Harness { sim, http }
}

pub async fn start_default() -> Harness {
    start(SimConfig::default()).await
}

impl Harness {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.sim.base_url(), path)
    }

    pub async fn send(&self, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> Reply {
        let mut request = self.http.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.header("content-type", "application/scim+json").body(serde_json::to_vec(&body).unwrap());
        }
        let response = request.send().await.expect("request completes");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.unwrap();
        let body = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap_or(Value::Null) };
        Reply { status, headers, body }
    }

    /// SCIM call with the right token, under `/scim/v2`.
    pub async fn scim(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        self.send(method, &format!("/scim/v2{path}"), Some(SCIM_TOKEN), body).await
    }

    pub async fn events(&self, path: &str, body: Value) -> Reply {
        self.send(Method::POST, &format!("/api/v2{path}"), Some(EVENTS_TOKEN), Some(body)).await
    }

    pub async fn control(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        self.send(method, &format!("/_sim{path}"), None, body).await
    }

    pub async fn create_user(&self, user_name: &str, given: &str, family: &str) -> Value {
        let reply = self
            .scim(
                Method::POST,
                "/Users",
                Some(serde_json::json!({
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                    "userName": user_name,
                    "name": {"givenName": given, "familyName": family},
                    "active": true,
                })),
            )
            .await;
        assert!(reply.status.is_success(), "create failed: {} {}", reply.status, reply.body);
        reply.body
    }

    pub async fn patch_user(&self, id: &str, operations: Value) -> Reply {
        self.scim(
            Method::PATCH,
            &format!("/Users/{id}"),
            Some(serde_json::json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": operations,
            })),
        )
        .await
    }

    pub async fn patch_group(&self, id: &str, operations: Value) -> Reply {
        self.scim(
            Method::PATCH,
            &format!("/Groups/{id}"),
            Some(serde_json::json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": operations,
            })),
        )
        .await
    }
}

pub fn id_of(v: &Value) -> String {
    v["id"].as_str().expect("resource has an id").to_owned()
}
