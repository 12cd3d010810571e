//! Traffic counters for benchmarks: SCIM requests and response body bytes, nothing else.

use crate::support::*;
use onepassword_sim::Traffic;
use reqwest::Method;
use serde_json::json;

/// Sends a SCIM request and returns the size of the response body as the client saw it.
async fn scim_bytes(h: &Harness, method: Method, path: &str, token: &str, body: Option<serde_json::Value>) -> u64 {
    let mut request = h.http.request(method, h.url(path)).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap().bytes().await.unwrap().len() as u64
}

#[tokio::test]
async fn traffic_counts_scim_requests_and_response_bytes_only() {
    let h = start_default().await;
    let state = h.sim.state();
    assert_eq!(state.traffic(), Traffic::default());

    let mut bytes = 0;
    bytes +=
        scim_bytes(&h, Method::POST, "/scim/v2/Users", SCIM_TOKEN, Some(json!({"userName": "t@example.com"}))).await;
    bytes += scim_bytes(&h, Method::GET, "/scim/v2/Users?count=5", SCIM_TOKEN, None).await;
    bytes += scim_bytes(&h, Method::GET, "/scim/v2/Groups", SCIM_TOKEN, None).await;
    bytes += scim_bytes(&h, Method::GET, "/scim/v2/Users", "wrong-token", None).await; // 401: still traffic
    bytes += scim_bytes(&h, Method::GET, "/Users", SCIM_TOKEN, None).await; // the bridge root counts too
    assert!(bytes > 0);

    // Neither the control API nor the Events API counts.
    h.control(Method::GET, "/users", None).await;
    h.events("/signinattempts", json!({"limit": 10})).await;

    assert_eq!(state.traffic(), Traffic { requests: 5, response_bytes: bytes });
    let over_http = h.control(Method::GET, "/traffic", None).await;
    assert_eq!(over_http.body, json!({"requests": 5, "response_bytes": bytes}));

    assert_eq!(h.control(Method::DELETE, "/traffic", None).await.status, 204);
    assert_eq!(state.traffic(), Traffic::default());
    h.scim(Method::GET, "/Users", None).await;
    assert_eq!(state.traffic().requests, 1);
    state.reset_traffic();
    assert_eq!(state.traffic(), Traffic::default());
    h.scim(Method::GET, "/Users", None).await;
    state.reset();
    assert_eq!(state.traffic(), Traffic::default(), "reset clears the counters too");
}

#[tokio::test]
async fn injected_faults_count_as_traffic_when_answered() {
    let h = start_default().await;
    let state = h.sim.state();
    let rule = json!({"path": "/scim/*", "action": {"kind": "status", "status": 503}, "times": 1});
    assert_eq!(h.control(Method::POST, "/faults", Some(rule)).await.status, 201);
    let bytes = scim_bytes(&h, Method::GET, "/scim/v2/Users", SCIM_TOKEN, None).await;
    assert_eq!(state.traffic(), Traffic { requests: 1, response_bytes: bytes });
}
