//! Chaos run through the real binaries: 200 events for 50 people sent as signed webhooks to
//! `ingest` (cargo-lambda's Function URL emulation), queued on moto's SQS FIFO, pumped into
//! `worker` like the event source mapping, with 10% of bridge calls failing (429, 500,
//! dropped connections, timeouts) and 10% of webhooks delivered twice. The final 1Password
//! state must equal the expected one, with no duplicate invitation and no message lost.

use e2e::worker_harness::{RULES, worker_secret};
use e2e::{FifoQueues, LambdaFunction, Moto};
use onepassword_sim::{FaultAction, FaultRule, InvitationKind, SimConfig};
use provisioning::ledger::{DynamoLedger, Ledger};
use provisioning::sources::generic::{StandardWebhookKey, sign};
use std::collections::BTreeMap;

const PEOPLE: usize = 50;
const CONNECTION: &str = "hr-generic";
const KEY: &str = "whsec_Y2hhb3MtdGVzdC1zdGFuZGFyZC13ZWJob29rcy1rZXk=";
const DEPARTMENTS: [&str; 2] = ["Engineering", "Finance"];

/// Four events per person: joiner, two moves, then a leaver for every third person and a
/// third move for the others.
fn story(person: usize) -> Vec<(serde_json::Value, &'static str, bool)> {
    let dept = |step: usize| DEPARTMENTS[(person + step) % 2];
    let email = format!("person.{person}@example.com");
    let event = |step: usize, kind: &str| {
        serde_json::json!({
            "kind": kind, "person": { "source": CONNECTION, "id": format!("P{person}") }, "source_kind": "generic",
            "source_event_id": format!("P{person}-{step}"),
            "effective_at": format!("2026-03-02T09:{:02}:00Z", step * 10),
            "attributes": { "work_email": email, "given_name": "Person", "family_name": format!("N{person}"), "department": dept(step) }
        })
    };
    let leaves = person.is_multiple_of(3);
    vec![
        (event(0, "joiner"), dept(0), true),
        (event(1, "mover"), dept(1), true),
        (event(2, "mover"), dept(2), true),
        if leaves { (event(3, "leaver"), dept(2), false) } else { (event(3, "mover"), dept(3), true) },
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_ends_in_the_expected_state_with_nothing_lost() {
    let moto = Moto::start().unwrap();
    let sdk = moto.sdk_config().await;
    let sim = onepassword_sim::spawn(SimConfig::default(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
    let connections = serde_json::json!({ "connections": { CONNECTION: { "source": "generic", "secret": KEY } } });
    secrets.create_secret().name("connections").secret_string(connections.to_string()).send().await.unwrap();
    secrets
        .create_secret()
        .name("worker")
        .secret_string(worker_secret(&sim, &SimConfig::default().scim_token))
        .send()
        .await
        .unwrap();
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    DynamoLedger::create_table_for_tests(&dynamo, "ledger").await.unwrap();
    let ledger = DynamoLedger::new(dynamo, "ledger");
    let queues = FifoQueues::create(&sdk, "chaos", 5).await.unwrap();

    let mut ingest_env = moto.env();
    ingest_env.push(("QUEUE_URL".into(), queues.queue_url.clone()));
    ingest_env.push(("CONNECTIONS_SECRET_ID".into(), "connections".into()));
    let ingest = LambdaFunction::start("ingest", &ingest_env).unwrap();
    let mut worker_env = moto.env();
    for (k, v) in [
        ("WORKER_SECRET_ID", "worker"),
        ("LEDGER_TABLE", "ledger"),
        ("ALLOW_HTTP_BRIDGE", "true"),
        ("MAPPING_RULES", RULES),
        ("SCIM_TIMEOUT_MS", "500"),
        ("MASS_LEAVER_LIMIT", "1000"),
    ] {
        worker_env.push((k.into(), v.into()));
    }
    let worker = LambdaFunction::start("worker", &worker_env).unwrap();

    // 10% of bridge calls fail, each kind with its own seeded chance.
    let faults = [
        (FaultAction::Status { status: 429, retry_after: Some(0) }, 0.04),
        (FaultAction::Status { status: 500, retry_after: None }, 0.03),
        (FaultAction::Drop, 0.02),
        (FaultAction::Latency { ms: 800 }, 0.01),
    ];
    for (seed, (action, p)) in faults.into_iter().enumerate() {
        sim.state()
            .add_fault(FaultRule {
                probability: Some(p),
                seed: Some(seed as u64 + 7),
                ..FaultRule::new(None, "/scim/*", action)
            })
            .unwrap();
    }

    // Send every person's story in order, interleaving people; every 10th webhook twice.
    let key = StandardWebhookKey::parse(KEY).unwrap();
    let http = reqwest::Client::new();
    let stories: Vec<_> = (0..PEOPLE).map(story).collect();
    let (mut sent, mut duplicates, mut accepted) = (0, 0, 0);
    for step in 0..4 {
        for (person, story) in stories.iter().enumerate() {
            let body = story[step].0.to_string();
            let id = format!("msg_{person}_{step}");
            let ts = chrono::Utc::now().timestamp().to_string();
            let signature = sign(&key, &id, &ts, body.as_bytes());
            let deliveries = if (person * 4 + step) % 10 == 0 { 2 } else { 1 };
            for _ in 0..deliveries {
                let response = http
                    .post(ingest.function_url(&format!("/webhooks/{CONNECTION}")))
                    .header("webhook-id", &id)
                    .header("webhook-timestamp", &ts)
                    .header("webhook-signature", &signature)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 202, "{}", response.text().await.unwrap());
                let answer: serde_json::Value = response.json().await.unwrap();
                accepted += answer["accepted"].as_u64().unwrap_or(0);
                sent += 1;
            }
            duplicates += deliveries - 1;
        }
    }

    let (mut deleted, mut failed, mut rounds) = (0, 0, 0);
    loop {
        let round = queues.pump_once(|batch| worker.invoke_owned(batch)).await.unwrap();
        rounds += 1;
        deleted += round.deleted;
        failed += round.failed;
        if round.received == 0 || rounds > 400 {
            break;
        }
    }
    let dead = queues.dlq_bodies().await.unwrap();
    let injected = sim.state().operations().iter().filter(|op| op.fault.is_some()).count();
    let calls = sim.state().operations().len();
    println!("chaos: {sent} webhooks ({duplicates} duplicated), {accepted} events accepted, {rounds} worker batches,");
    println!(
        "       {deleted} messages applied, {failed} redeliveries, {} in the DLQ, {injected} of {calls} bridge calls faulted",
        dead.len()
    );

    // Nothing lost: every event was accepted (duplicates included: SQS deduplicates), and
    // every queued message was applied or sits in the DLQ.
    assert_eq!(accepted as usize, sent);
    assert_eq!(deleted + dead.len(), PEOPLE * 4, "every message applied or dead-lettered");
    assert!(injected > 0, "the faults really fired");
    let logs = worker.logs();
    for body in &dead {
        let event_id =
            serde_json::from_str::<serde_json::Value>(body).unwrap()["source_event_id"].as_str().unwrap().to_owned();
        assert!(logs.contains(&event_id), "dead-lettered {event_id} has a logged reason");
    }
    assert!(dead.is_empty(), "with 5 receives and retries, no event should need the DLQ: {dead:?}");

    // The final state equals the expected one; nobody was invited twice.
    let outbox = sim.state().outbox();
    let mut invitations: BTreeMap<String, usize> = BTreeMap::new();
    for mail in &outbox {
        assert_eq!(mail.kind, InvitationKind::First, "a repeat invitation: {mail:?}");
        *invitations.entry(mail.email.clone()).or_default() += 1;
    }
    assert!(invitations.values().all(|n| *n == 1), "duplicate invitations: {invitations:?}");
    assert_eq!(invitations.len(), PEOPLE);
    assert_eq!(sim.state().users().len(), PEOPLE, "no duplicate accounts");
    for (person, story) in stories.iter().enumerate() {
        let (_, final_dept, active) = story[3];
        let view = sim.state().user_view(&format!("person.{person}@example.com")).expect("provisioned");
        assert_eq!(view.scim_active, active, "person {person}");
        let mut groups = view.groups.clone();
        groups.sort();
        let mut expected = vec!["Employees".to_owned(), final_dept.to_owned()];
        expected.sort();
        assert_eq!(groups, expected, "person {person}");
        let record = ledger
            .person(&provisioning::PersonKey::new(CONNECTION, format!("P{person}")))
            .await
            .unwrap()
            .expect("recorded");
        assert!(record.recognises(&format!("P{person}-3")), "the last event was converged: {record:?}");
    }
}
