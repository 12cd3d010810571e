//! The real binaries answer real invocations under cargo-lambda's emulator (the worker's
//! own test, which needs its secret and table, is in worker_moto.rs).

use e2e::LambdaFunction;
use serde_json::json;

#[tokio::test]
async fn invite_retry_answers_with_a_summary() {
    let job = LambdaFunction::start("invite-retry", &[]).unwrap();
    let event = json!({
        "version": "0", "id": "e1", "detail-type": "Scheduled Event", "source": "aws.events",
        "account": "123456789012", "time": "2026-11-22T06:00:00Z", "region": "us-east-1",
        "resources": [], "detail": {}
    });
    let answer = job.invoke(&event).await.unwrap();
    for field in ["checked", "accepted", "reinvited", "escalated", "skipped"] {
        assert!(answer.get(field).is_some(), "summary lacks {field}: {answer}");
    }
}

#[tokio::test]
async fn ingest_answers_unknown_routes_with_a_json_404() {
    let ingest = LambdaFunction::start("ingest", &[]).unwrap();
    let response = reqwest::Client::new()
        .post(ingest.function_url("/no/such/route"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(body.get("error").is_some(), "{body}");
}
