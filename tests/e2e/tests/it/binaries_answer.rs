//! The real binaries answer real invocations under cargo-lambda's emulator (the worker's
//! own test, which needs its secret and table, is in worker_moto.rs; invite-retry and
//! reconcile get their secret, table and queue from moto here).

use chrono::{Duration as ChronoDuration, Utc};
use e2e::invite_retry_harness::{BinaryStack, scheduled_event};
use e2e::{FifoQueues, LambdaFunction, Moto};
use provisioning::ledger::{Due, DynamoLedger, Ledger, PersonRecord};
use provisioning::{PersonKey, SourceKind};

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

#[tokio::test]
async fn reconcile_sweeps_due_actions_by_default_and_refuses_an_unknown_task() {
    let moto = Moto::start().unwrap();
    let sdk = moto.sdk_config().await;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    DynamoLedger::create_table_for_tests(&dynamo, "ledger").await.unwrap();
    let queues = FifoQueues::create(&sdk, "events", 5).await.unwrap();
    let mut record = PersonRecord::new(PersonKey::new("okta-main", "00u1"), SourceKind::Okta, Utc::now());
    record.due = Some(Due { at: Utc::now() - ChronoDuration::minutes(1), intent: "suspend at the cutoff".into() });
    DynamoLedger::new(dynamo, "ledger").save_person(&record).await.unwrap();
    let mut env = moto.env();
    env.extend([("LEDGER_TABLE".to_owned(), "ledger".to_owned()), ("QUEUE_URL".to_owned(), queues.queue_url.clone())]);
    let reconcile = LambdaFunction::start("reconcile", &env).unwrap();

    let answer = reconcile.invoke(&serde_json::json!({"task": "sweep_due_actions"})).await.unwrap();
    assert_eq!((answer["enqueued"].as_u64(), answer["completed"].as_u64()), (Some(1), Some(1)), "{answer}");
    // EventBridge's own envelope (no `task`) means the sweep; nothing is due any more.
    let again = reconcile.invoke(&scheduled_event()).await.unwrap();
    assert_eq!(again["enqueued"].as_u64(), Some(0), "{again}");
    let refused = reconcile.invoke(&serde_json::json!({"task": "drift"})).await.unwrap_err().to_string();
    assert!(refused.contains("unknown task") && refused.contains("drift"), "{refused}");
}
