//! The real binaries answer real invocations under cargo-lambda's emulator (the worker's
//! own test, which needs its secret and table, is in worker_moto.rs; invite-retry gets its
//! secret and table from moto here).

use e2e::LambdaFunction;
use e2e::invite_retry_harness::BinaryStack;

#[tokio::test]
async fn invite_retry_answers_with_a_summary() {
    // Its secret and table in moto (without them it exits: see invite_retry_binary.rs).
    let stack = BinaryStack::start(true, &[]).await.unwrap();
    let answer = stack.tick().await.unwrap();
    for field in ["checked", "accepted", "reinvited", "escalated", "skipped"] {
        assert!(answer.get(field).is_some(), "summary lacks {field}: {answer}");
    }
}

#[tokio::test]
async fn ingest_answers_unknown_routes_with_a_json_404() {
    let ingest = LambdaFunction::start("ingest", &[]).unwrap();
    let response = reqwest::Client::new().post(ingest.function_url("/no/such/route")).body("{}").send().await.unwrap();
    assert_eq!(response.status(), 404);
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(body.get("error").is_some(), "{body}");
}
