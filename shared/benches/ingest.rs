//! verify + parse + normalize, per source, in-process (no queue, no network).
//!
//! Criterion reports means; the target (README, Benchmarks) is a p99 (≤ 1 ms), so after
//! criterion's run this times every call of a separate run individually and prints
//! p50/p99/max per case.
//!
//! Then a 1 MB field-based BambooHR body goes through the whole handler (verify, parse,
//! normalize, queue) into the in-memory queue behind SQS's batching, each
//! `SendMessageBatch` taking 20 ms: one call in flight at a time, then
//! `SEND_CONCURRENCY`. Printed: wall time per request, min and median of a few runs.
//!
//! `cargo bench -p provisioning --bench ingest`

use chrono::{DateTime, Utc};
use criterion::Criterion;
use provisioning::ingest::{FixedClock, IngestApp, IngestConfig, Ports};
use provisioning::queue::{
    BatchOutcome, BatchSender, BatchingQueue, InMemoryEventQueue, QueuedEvent, SEND_CONCURRENCY,
};
use provisioning::secrets::InMemorySecretSource;
use provisioning::sources::{self, Connections, Context, InboundRequest, Outcome, bamboohr, generic, hibob};
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

const BAMBOO_KEY: &str = "5f2c9a0d7e31b4c8a6e9d2f10b7c3a48";
const BOB_SECRET: &str = "bob-webhook-secret-4Qz7Lw9Xk2";
const OKTA_AUTH: &str = "Bearer okta-hook-secret-7d1c2e";
const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const TS: &str = "1772442900";

fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures").join(path)).unwrap()
}

struct Case {
    name: &'static str,
    connection: &'static str,
    method: http::Method,
    headers: http::HeaderMap,
    body: Vec<u8>,
    expected_events: usize,
}

fn headers(pairs: &[(&str, String)]) -> http::HeaderMap {
    pairs
        .iter()
        .map(|(k, v)| (http::HeaderName::from_bytes(k.as_bytes()).unwrap(), http::HeaderValue::from_str(v).unwrap()))
        .collect()
}

fn bamboo_case(name: &'static str, body: Vec<u8>, expected_events: usize) -> Case {
    let signature = bamboohr::sign(BAMBOO_KEY, &body, TS);
    Case {
        name,
        connection: "bamboohr-main",
        method: http::Method::POST,
        headers: headers(&[("x-bamboohr-signature", signature), ("x-bamboohr-timestamp", TS.into())]),
        body,
        expected_events,
    }
}

fn cases() -> Vec<Case> {
    let generic_body = fixture("generic/two-events.json");
    let key = generic::StandardWebhookKey::parse(WHSEC).unwrap();
    let generic_signature = generic::sign(&key, "msg_1", TS, &generic_body);
    let hibob_body = fixture("hibob/employee-left.json");
    let batch: Vec<_> = (0..100)
        .map(|id| serde_json::json!({"id": id.to_string(), "action": "Updated", "timestamp": "2026-03-02T09:15:00+0000",
            "changedFields": ["Department"], "fields": {"Department": {"value": "Sales"}, "Work Email": {"value": format!("p{id}@example.com")}}}))
        .collect();
    vec![
        bamboo_case("bamboohr event-based", fixture("bamboohr/event-based-updated.json"), 1),
        bamboo_case("bamboohr field-based", fixture("bamboohr/field-based-termination.json"), 1),
        bamboo_case(
            "bamboohr field-based x100",
            serde_json::to_vec(&serde_json::json!({"employees": batch})).unwrap(),
            100,
        ),
        Case {
            name: "hibob",
            connection: "hibob-main",
            method: http::Method::POST,
            headers: headers(&[("bob-signature", hibob::sign(BOB_SECRET, &hibob_body))]),
            body: hibob_body,
            expected_events: 1,
        },
        Case {
            name: "okta",
            connection: "okta-main",
            method: http::Method::POST,
            headers: headers(&[("authorization", OKTA_AUTH.into())]),
            body: fixture("okta/delivery.json"),
            expected_events: 2,
        },
        Case {
            name: "generic",
            connection: "hr-generic",
            method: http::Method::POST,
            headers: headers(&[
                ("webhook-id", "msg_1".into()),
                ("webhook-timestamp", TS.into()),
                ("webhook-signature", generic_signature),
            ]),
            body: generic_body,
            expected_events: 2,
        },
    ]
}

fn connections_json() -> serde_json::Value {
    serde_json::json!({"connections": {
        "bamboohr-main": {"source": "bamboohr", "private_key": BAMBOO_KEY},
        "hibob-main": {"source": "hibob", "secret": BOB_SECRET},
        "okta-main": {"source": "okta", "auth_value": OKTA_AUTH},
        "hr-generic": {"source": "generic", "secret": WHSEC}
    }})
}

fn connections() -> Connections {
    serde_json::from_value(connections_json()).unwrap()
}

fn run(connections: &Connections, case: &Case, now: DateTime<Utc>) -> usize {
    let request = InboundRequest { method: &case.method, headers: &case.headers, body: &case.body };
    let context = Context { connection: case.connection, now, tolerance: Duration::from_secs(300) };
    match sources::process(connections.get(case.connection).unwrap(), &request, &context) {
        Ok(Outcome::Events(normalized)) => normalized.events.len(),
        other => panic!("{}: {other:?}", case.name),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

/// The largest ingest accepts by default (`MAX_BODY_BYTES`).
const MAX_BODY: usize = 1_048_576;
/// What one `SendMessageBatch` round trip is taken to cost.
const BATCH_LATENCY: Duration = Duration::from_millis(20);
const QUEUE_RUNS: usize = 3;

/// A field-based BambooHR body of as many employees as fit in `limit` bytes.
fn large_bamboo_body(limit: usize) -> (Vec<u8>, usize) {
    let mut body = br#"{"employees":["#.to_vec();
    let mut count = 0;
    loop {
        let entry = serde_json::json!({"id": (10_000 + count).to_string(), "action": "Updated",
            "timestamp": "2026-03-02T09:15:00+0000", "changedFields": ["Department", "Job Title"],
            "fields": {"Department": {"value": format!("Team {}", count % 37)}, "Job Title": {"value": "Engineer"},
                "First Name": {"value": format!("First{count}")}, "Last Name": {"value": format!("Last{count}")},
                "Work Email": {"value": format!("person{count}@example.com")}, "Status": {"value": "Active"}}});
        let entry = serde_json::to_vec(&entry).unwrap();
        if body.len() + entry.len() + 3 > limit {
            break;
        }
        if count > 0 {
            body.push(b',');
        }
        body.extend_from_slice(&entry);
        count += 1;
    }
    body.extend_from_slice(b"]}");
    (body, count)
}

/// The in-memory queue with a round trip's latency per batch.
struct SlowBatches {
    queue: Arc<InMemoryEventQueue>,
    latency: Duration,
}

#[async_trait::async_trait]
impl BatchSender for SlowBatches {
    async fn send_batch(&self, entries: &[(QueuedEvent, String)]) -> BatchOutcome {
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        self.queue.send_batch(entries).await
    }
}

/// One run: a fresh app and queue, one signed request; the wall time of the answer.
fn queue_once(
    runtime: &tokio::runtime::Runtime,
    body: &[u8],
    employees: usize,
    latency: Duration,
    concurrency: usize,
) -> Duration {
    let memory = Arc::new(InMemoryEventQueue::new());
    let secrets = Arc::new(InMemorySecretSource::new());
    secrets.set("connections", connections_json().to_string());
    let config = IngestConfig {
        connections_secret_id: "connections".into(),
        secret_cache_ttl: Duration::from_secs(300),
        max_body_bytes: MAX_BODY,
        timestamp_tolerance: Duration::from_secs(300),
    };
    let queue = BatchingQueue::new(SlowBatches { queue: memory.clone(), latency }, concurrency);
    let now = DateTime::from_timestamp(TS.parse().unwrap(), 0).unwrap();
    let app = IngestApp::new(config, Ports { queue: Arc::new(queue), secrets, clock: Arc::new(FixedClock::new(now)) });
    // Warm the secret cache so the run times the request, not the first secret read.
    runtime.block_on(app.handle(signed_bamboo_request(b"{\"employees\":[]}")));
    let request = signed_bamboo_request(body);
    let started = Instant::now();
    let response = runtime.block_on(app.handle(request));
    let elapsed = started.elapsed();
    assert_eq!(response.status(), 202, "{:?}", response.body());
    assert_eq!(memory.len(), employees);
    elapsed
}

fn signed_bamboo_request(body: &[u8]) -> lambda_http::Request {
    http::Request::builder()
        .method("POST")
        .uri("https://x.lambda-url.eu-west-1.on.aws/webhooks/bamboohr-main")
        .header("x-bamboohr-signature", bamboohr::sign(BAMBOO_KEY, body, TS))
        .header("x-bamboohr-timestamp", TS)
        .header("content-type", "application/json")
        .body(lambda_http::Body::Binary(body.to_vec()))
        .unwrap()
}

fn queue_a_large_body() {
    let (body, employees) = large_bamboo_body(MAX_BODY);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    println!(
        "\nverify + parse + normalize + queue: one {} byte BambooHR body, {employees} employees, {} batches; \
         wall time per request over {QUEUE_RUNS} runs:",
        body.len(),
        employees.div_ceil(10)
    );
    println!("{:<36} {:>10} {:>10}", "case", "min ms", "median ms");
    let cases = [
        ("no batch latency", Duration::ZERO, SEND_CONCURRENCY),
        ("20 ms per batch, 1 in flight", BATCH_LATENCY, 1),
        ("20 ms per batch, 4 in flight", BATCH_LATENCY, SEND_CONCURRENCY),
    ];
    for (name, latency, concurrency) in cases {
        let mut times: Vec<Duration> =
            (0..QUEUE_RUNS).map(|_| queue_once(&runtime, &body, employees, latency, concurrency)).collect();
        times.sort();
        let millis = |d: Duration| d.as_secs_f64() * 1e3;
        println!("{name:<36} {:>10.1} {:>10.1}", millis(times[0]), millis(percentile(&times, 0.5)));
    }
}

fn main() {
    let connections = connections();
    let now = DateTime::from_timestamp(TS.parse().unwrap(), 0).unwrap();
    let cases = cases();
    for case in &cases {
        assert_eq!(run(&connections, case, now), case.expected_events, "{}", case.name);
    }

    let mut criterion = Criterion::default()
        .sample_size(50)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    for case in &cases {
        criterion.bench_function(case.name, |b| b.iter(|| black_box(run(&connections, black_box(case), now))));
    }
    criterion.final_summary();

    const SAMPLES: usize = 20_000;
    println!("\nverify + parse + normalize, {SAMPLES} timed calls per case (after 1,000 warm-up calls):");
    println!("{:<28} {:>10} {:>10} {:>10}", "case", "p50 µs", "p99 µs", "max µs");
    for case in &cases {
        for _ in 0..1_000 {
            black_box(run(&connections, case, now));
        }
        let mut samples: Vec<Duration> = (0..SAMPLES)
            .map(|_| {
                let started = Instant::now();
                black_box(run(&connections, black_box(case), now));
                started.elapsed()
            })
            .collect();
        samples.sort();
        let micros = |d: Duration| d.as_secs_f64() * 1e6;
        println!(
            "{:<28} {:>10.1} {:>10.1} {:>10.1}",
            case.name,
            micros(percentile(&samples, 0.50)),
            micros(percentile(&samples, 0.99)),
            micros(*samples.last().unwrap())
        );
    }
    queue_a_large_body();
}
