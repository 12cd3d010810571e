//! The real `worker` binary under cargo-lambda's emulator, with moto's SQS (FIFO + DLQ),
//! Secrets Manager and DynamoDB, and the 1Password simulator over HTTP.

use e2e::worker_harness::{RULES, event, worker_secret};
use e2e::{FifoQueues, LambdaFunction, Moto};
use onepassword_sim::{FaultAction, FaultRule, RunningSim, SimConfig};
use provisioning::EventKind::Joiner;
use provisioning::ledger::{DynamoLedger, Ledger};

const SECRET_ID: &str = "provisioning/worker";
const TABLE: &str = "ledger";

struct Stack {
    moto: Moto,
    sim: RunningSim,
    queues: FifoQueues,
    ledger: DynamoLedger,
    secrets: aws_sdk_secretsmanager::Client,
    worker: LambdaFunction,
}

async fn stack(max_receive_count: u32, extra_env: &[(&str, &str)]) -> Stack {
    let moto = Moto::start().unwrap();
    let sdk = moto.sdk_config().await;
    let sim = onepassword_sim::spawn(SimConfig::default(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
    secrets
        .create_secret()
        .name(SECRET_ID)
        .secret_string(worker_secret(&sim, &SimConfig::default().scim_token))
        .send()
        .await
        .unwrap();
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    DynamoLedger::create_table_for_tests(&dynamo, TABLE).await.unwrap();
    let queues = FifoQueues::create(&sdk, "events", max_receive_count).await.unwrap();
    let mut env = moto.env();
    for (k, v) in [
        ("WORKER_SECRET_ID", SECRET_ID),
        ("LEDGER_TABLE", TABLE),
        ("ALLOW_HTTP_BRIDGE", "true"),
        ("MAPPING_RULES", RULES),
    ]
    .iter()
    .chain(extra_env)
    {
        env.push((k.to_string(), v.to_string()));
    }
    let worker = LambdaFunction::start("worker", &env).unwrap();
    Stack { ledger: DynamoLedger::new(dynamo, TABLE), moto, sim, queues, secrets, worker }
}

impl Stack {
    async fn pump(&self) -> e2e::PumpRound {
        self.queues.pump_once(|batch| self.worker.invoke_owned(batch)).await.unwrap()
    }
}

#[tokio::test]
async fn empty_batch_answers_with_no_failures() {
    let s = stack(3, &[]).await;
    let answer = s.worker.invoke(&serde_json::json!({ "Records": [] })).await.unwrap();
    assert_eq!(answer, serde_json::json!({ "batchItemFailures": [] }));
    let _ = &s.moto;
}

#[tokio::test]
async fn a_queued_joiner_is_invited_recorded_and_deleted() {
    let s = stack(3, &[]).await;
    let ada = event(Joiner, "1", "ada.lovelace@example.com", "Engineering", 0);
    let body = serde_json::to_string(&ada).unwrap();
    s.queues.send(&ada.person.to_string(), "d1", &body).await.unwrap();
    // A duplicate delivery inside the dedup window is dropped by SQS FIFO itself.
    s.queues.send(&ada.person.to_string(), "d1", &body).await.unwrap();
    let round = s.pump().await;
    assert_eq!(round, e2e::PumpRound { received: 1, deleted: 1, failed: 0 });
    assert_eq!(s.pump().await.received, 0, "queue drained");
    assert_eq!(s.sim.state().outbox().len(), 1);
    let invitation = s.ledger.invitation(&ada.person).await.unwrap().expect("recorded in DynamoDB");
    assert_eq!(invitation.email, "ada.lovelace@example.com");
    let logs = s.worker.logs();
    assert!(logs.contains("\"audit\":true"), "audit lines expected: {logs}");
    assert!(!logs.contains(&SimConfig::default().scim_token), "token leaked into logs");
    assert!(!logs.contains("ada.lovelace@example.com"), "e-mail must be masked in logs");
}

#[tokio::test]
async fn a_bridge_that_stays_down_sends_the_message_to_the_dlq() {
    let s = stack(2, &[("SCIM_MAX_RETRIES", "1")]).await;
    s.sim
        .state()
        .add_fault(FaultRule::new(None, "/scim/*", FaultAction::Status { status: 503, retry_after: None }))
        .unwrap();
    let ada = event(Joiner, "1", "ada.lovelace@example.com", "Engineering", 0);
    s.queues.send(&ada.person.to_string(), "d1", &serde_json::to_string(&ada).unwrap()).await.unwrap();
    let mut rounds = Vec::new();
    for _ in 0..4 {
        rounds.push(s.pump().await);
    }
    assert_eq!(rounds.iter().map(|r| r.failed).sum::<usize>(), 2, "{rounds:?}");
    assert_eq!(rounds.iter().map(|r| r.deleted).sum::<usize>(), 0, "{rounds:?}");
    let dlq = s.queues.dlq_bodies().await.unwrap();
    assert_eq!(dlq.len(), 1, "the message waits in the DLQ");
    assert!(dlq[0].contains("\"source_event_id\""));
    assert!(s.worker.logs().contains("event failed; returned to the queue"));
}

#[tokio::test]
async fn a_token_rotated_in_secrets_manager_mid_run_is_picked_up_after_one_401() {
    let s = stack(3, &[]).await;
    let ada = event(Joiner, "1", "ada.lovelace@example.com", "Engineering", 0);
    s.queues.send(&ada.person.to_string(), "d1", &serde_json::to_string(&ada).unwrap()).await.unwrap();
    assert_eq!(s.pump().await.deleted, 1, "warm: the secret is cached now");

    // An admin regenerates the bridge credentials and stores the new token.
    s.sim.state().rotate_scim_token("rotated-token-9f2c");
    s.secrets
        .put_secret_value()
        .secret_id(SECRET_ID)
        .secret_string(worker_secret(&s.sim, "rotated-token-9f2c"))
        .send()
        .await
        .unwrap();
    s.sim.state().clear_operations();
    let alan = event(Joiner, "2", "alan.turing@example.com", "Finance", 0);
    s.queues.send(&alan.person.to_string(), "d2", &serde_json::to_string(&alan).unwrap()).await.unwrap();
    assert_eq!(s.pump().await, e2e::PumpRound { received: 1, deleted: 1, failed: 0 });
    let statuses: Vec<Option<u16>> = s.sim.state().operations().iter().map(|op| op.status).collect();
    assert_eq!(statuses.iter().filter(|s| **s == Some(401)).count(), 1, "exactly one 401: {statuses:?}");
    assert!(s.sim.state().user_view("alan.turing@example.com").is_some());
    assert!(!s.worker.logs().contains("rotated-token-9f2c"), "new token leaked into logs");
}
