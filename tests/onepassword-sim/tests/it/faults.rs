//! Fault injection over real HTTP: latency, 429 + Retry-After, 5xx, dropped connections, hangs.

use std::time::{Duration, Instant};

use crate::support::*;
use onepassword_sim::{FaultAction, FaultRule};
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn rate_limit_for_the_next_n_matching_requests() {
    let h = start_default().await;
    let state = h.sim.state();
    state.add_fault(FaultRule::new(Some("GET"), "/scim/*Users*", FaultAction::rate_limit(7)).times(2)).unwrap();
    for _ in 0..2 {
        let r = h.scim(Method::GET, "/Users", None).await;
        r.assert_scim_error(429, None);
        assert_eq!(r.headers["retry-after"], "7");
    }
    assert_eq!(h.scim(Method::GET, "/Users", None).await.status, 200);
    // POST did not match the rule.
    state.add_fault(FaultRule::new(Some("GET"), "*", FaultAction::rate_limit(1)).times(1)).unwrap();
    assert!(h.scim(Method::POST, "/Users", Some(json!({"userName": "x@example.com"}))).await.status.is_success());
    assert_eq!(state.user_count(), 1);

    let ops = state.operations();
    assert_eq!(ops[0].status, Some(429));
    assert_eq!(ops[0].fault.as_deref(), Some("status"));
    assert_eq!(ops[2].fault, None);
    let faults = state.faults();
    assert_eq!((faults[0].remaining, faults[0].hits), (Some(0), 2));
}

#[tokio::test]
async fn server_errors_do_not_touch_the_account() {
    let h = start_default().await;
    let state = h.sim.state();
    state
        .add_fault(
            FaultRule::new(Some("POST"), "*/Users", FaultAction::Status { status: 503, retry_after: None }).times(1),
        )
        .unwrap();
    let r = h.scim(Method::POST, "/Users", Some(json!({"userName": "x@example.com"}))).await;
    r.assert_scim_error(503, None);
    assert!(r.headers.get("retry-after").is_none());
    assert_eq!(state.user_count(), 0, "the failed request was not applied");
    state
        .add_fault(FaultRule::new(None, "/api/*", FaultAction::Status { status: 500, retry_after: None }).times(1))
        .unwrap();
    let r = h.events("/signinattempts", json!({"limit": 1})).await;
    assert_eq!(r.status, 500);
    assert!(r.body["Error"]["Message"].is_string(), "Events API errors keep the Events API shape");
}

#[tokio::test]
async fn latency_delays_then_serves() {
    let h = start_default().await;
    h.sim.state().add_fault(FaultRule::new(None, "/scim/v2/Users", FaultAction::Latency { ms: 300 }).times(1)).unwrap();
    let started = Instant::now();
    let r = h.scim(Method::GET, "/Users", None).await;
    assert_eq!(r.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(300), "{:?}", started.elapsed());
    assert_eq!(h.sim.state().operations()[0].fault.as_deref(), Some("latency"));
}

#[tokio::test]
async fn dropped_connection_gets_no_response() {
    let h = start_default().await;
    h.sim.state().add_fault(FaultRule::new(Some("POST"), "*", FaultAction::Drop).times(1)).unwrap();
    let err = h
        .http
        .post(h.url("/scim/v2/Users"))
        .bearer_auth(SCIM_TOKEN)
        .json(&json!({"userName": "x@example.com"}))
        .send()
        .await
        .expect_err("the connection is dropped");
    assert!(!err.is_timeout(), "dropped, not timed out: {err}");
    assert!(err.status().is_none());
    let op = &h.sim.state().operations()[0];
    assert_eq!((op.status, op.fault.as_deref()), (None, Some("drop")));
    assert_eq!(h.sim.state().user_count(), 0);
    // The next request is served normally (on a new connection).
    assert_eq!(h.scim(Method::GET, "/Users", None).await.status, 200);
}

#[tokio::test]
async fn hang_never_answers_until_shutdown() {
    let h = start_default().await;
    h.sim.state().add_fault(FaultRule::new(None, "/scim/v2/Groups", FaultAction::Hang)).unwrap();
    let err = h
        .http
        .get(h.url("/scim/v2/Groups"))
        .bearer_auth(SCIM_TOKEN)
        .timeout(Duration::from_millis(400))
        .send()
        .await
        .expect_err("no answer");
    assert!(err.is_timeout(), "{err}");
    // Other routes still answer.
    assert_eq!(h.scim(Method::GET, "/Users", None).await.status, 200);
    h.sim.state().clear_faults();
    assert_eq!(h.scim(Method::GET, "/Groups", None).await.status, 200);
    // Shutdown releases anything still hanging.
    h.sim.state().add_fault(FaultRule::new(None, "*", FaultAction::Hang)).unwrap();
    let pending = tokio::spawn({
        let http = h.http.clone();
        let url = h.url("/scim/v2/Users");
        async move { http.get(url).bearer_auth(SCIM_TOKEN).send().await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    tokio::time::timeout(Duration::from_secs(5), h.sim.shutdown())
        .await
        .expect("shutdown does not wait for hung requests");
    assert!(pending.await.unwrap().is_err());
}

#[tokio::test]
async fn seeded_probability_is_repeatable_over_http() {
    async fn run() -> Vec<u16> {
        let h = start_default().await;
        h.sim
            .state()
            .add_fault(
                FaultRule::new(None, "*", FaultAction::Status { status: 500, retry_after: None })
                    .with_probability(0.5, 7),
            )
            .unwrap();
        let mut statuses = Vec::new();
        for _ in 0..30 {
            statuses.push(h.scim(Method::GET, "/Users", None).await.status.as_u16());
        }
        statuses
    }
    let first = run().await;
    assert_eq!(first, run().await);
    let failures = first.iter().filter(|s| **s == 500).count();
    assert!((5..=25).contains(&failures), "{failures}/30 failed");
}

#[tokio::test]
async fn faults_through_the_control_api() {
    let h = start_default().await;
    let r = h
        .control(
            Method::POST,
            "/faults",
            Some(json!({"method": "GET", "path": "/scim/*",
            "action": {"kind": "status", "status": 429, "retry_after": 2}, "times": 1})),
        )
        .await;
    assert_eq!(r.status, 201);
    let id = r.body["id"].as_u64().unwrap();
    assert_eq!(h.control(Method::GET, "/faults", None).await.body[0]["remaining"], 1);
    assert_eq!(h.scim(Method::GET, "/Users", None).await.status, 429);
    assert_eq!(h.control(Method::DELETE, &format!("/faults/{id}"), None).await.status, 204);
    assert_eq!(h.control(Method::DELETE, &format!("/faults/{id}"), None).await.status, 404);
    let bad = h
        .control(Method::POST, "/faults", Some(json!({"path": "*", "action": {"kind": "status", "status": 200}})))
        .await;
    assert_eq!(bad.status, 400);
    let bad = h
        .control(Method::POST, "/faults", Some(json!({"path": "*", "action": {"kind": "drop"}, "probability": 2.0})))
        .await;
    assert_eq!(bad.status, 400);
    h.control(Method::POST, "/faults", Some(json!({"path": "*", "action": {"kind": "drop"}}))).await;
    assert_eq!(h.control(Method::DELETE, "/faults", None).await.status, 204);
    assert_eq!(h.scim(Method::GET, "/Users", None).await.status, 200);
    // Control calls are never faulted.
    h.sim.state().add_fault(FaultRule::new(None, "*", FaultAction::Drop)).unwrap();
    assert_eq!(h.control(Method::GET, "/faults", None).await.status, 200);
}
