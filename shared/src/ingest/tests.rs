//! The handler end to end in-process: real lambda_http event decoding, the real sources,
//! the in-memory queue and secret source (moto-backed tests live in tests/e2e).

use super::*;
use crate::queue::{InMemoryEventQueue, deduplication_id};
use crate::secrets::{InMemorySecretSource, SecretsError};
use crate::sources::{bamboohr, generic, hibob};
use base64::Engine;
use chrono::{DateTime, TimeZone, Utc};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

const SECRET_ID: &str = "ingest/connections";
const BAMBOO_KEY: &str = "5f2c9a0d7e31b4c8a6e9d2f10b7c3a48";
const BOB_SECRET: &str = "bob-webhook-secret-4Qz7Lw9Xk2";
const OKTA_AUTH: &str = "Bearer okta-hook-secret-7d1c2e";
const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn connections_json(bamboo_key: &str) -> String {
    serde_json::json!({"connections": {
        "bamboohr-main": {"source": "bamboohr", "private_key": bamboo_key},
        "hibob-main": {"source": "hibob", "secret": BOB_SECRET},
        "okta-main": {"source": "okta", "auth_value": OKTA_AUTH},
        "hr-generic": {"source": "generic", "secret": WHSEC}
    }})
    .to_string()
}

/// 2026-03-02T09:15:00Z, the signing time of our vectors in tests/fixtures/signature-vectors.json.
fn vector_time() -> DateTime<Utc> {
    Utc.timestamp_opt(1_772_442_900, 0).unwrap()
}

struct Harness {
    app: IngestApp,
    queue: Arc<InMemoryEventQueue>,
    secrets: Arc<InMemorySecretSource>,
    clock: Arc<FixedClock>,
}

fn harness_with(max_body_bytes: usize) -> Harness {
    let secrets = Arc::new(InMemorySecretSource::new());
    secrets.set(SECRET_ID, connections_json(BAMBOO_KEY));
    let (app, queue, clock) = app_with(secrets.clone(), max_body_bytes);
    Harness { app, queue, secrets, clock }
}

fn app_with(
    secrets: Arc<dyn SecretSource>,
    max_body_bytes: usize,
) -> (IngestApp, Arc<InMemoryEventQueue>, Arc<FixedClock>) {
    let queue = Arc::new(InMemoryEventQueue::new());
    let clock = Arc::new(FixedClock::new(vector_time()));
    let settings = IngestConfig {
        connections_secret_id: SECRET_ID.into(),
        secret_cache_ttl: TTL,
        max_body_bytes,
        timestamp_tolerance: Duration::from_secs(300),
    };
    let ports = Ports { queue: queue.clone(), secrets, clock: clock.clone() };
    (IngestApp::new(settings, ports), queue, clock)
}

const TTL: Duration = Duration::from_secs(300);

fn harness() -> Harness {
    harness_with(1_048_576)
}

/// A Function URL event, decoded by lambda_http exactly as in Lambda.
fn function_url(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8], base64: bool) -> Request {
    let headers: serde_json::Map<String, serde_json::Value> =
        headers.iter().map(|(k, v)| (k.to_ascii_lowercase(), serde_json::Value::from(*v))).collect();
    let body = if base64 {
        base64::engine::general_purpose::STANDARD.encode(body)
    } else {
        String::from_utf8(body.to_vec()).unwrap()
    };
    let event = serde_json::json!({
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012", "apiId": "x", "domainName": "x.lambda-url.us-east-1.on.aws",
            "domainPrefix": "x", "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
            "sourceIp": "203.0.113.1", "userAgent": "test"}, "requestId": "r", "routeKey": "$default",
            "stage": "$default", "time": "02/Mar/2026:09:15:00 +0000", "timeEpoch": 1772442900000u64
        },
        "body": body, "isBase64Encoded": base64
    });
    lambda_http::request::from_str(&event.to_string()).unwrap()
}

/// An API Gateway REST API event on stage `prod`.
fn rest_api(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Request {
    let headers: serde_json::Map<String, serde_json::Value> =
        headers.iter().map(|(k, v)| (k.to_string(), serde_json::Value::from(*v))).collect();
    let event = serde_json::json!({
        "resource": "/webhooks/{connection}", "path": path, "httpMethod": method,
        "headers": headers, "multiValueHeaders": {},
        "requestContext": {"accountId": "123456789012", "resourceId": "r", "stage": "prod",
            "requestId": "q", "identity": {"sourceIp": "203.0.113.1"}, "resourcePath": "/webhooks/{connection}",
            "httpMethod": method, "apiId": "a", "path": format!("/prod{path}")},
        "body": base64::engine::general_purpose::STANDARD.encode(body), "isBase64Encoded": true
    });
    lambda_http::request::from_str(&event.to_string()).unwrap()
}

fn bamboo_body() -> &'static [u8] {
    include_bytes!("../../../tests/fixtures/bamboohr/event-based-updated.json")
}

fn bamboo_request(body: &[u8], key: &str, ts: &str) -> Request {
    let signature = bamboohr::sign(key, body, ts);
    function_url(
        "POST",
        "/webhooks/bamboohr-main",
        &[("X-BambooHR-Signature", &signature), ("X-BambooHR-Timestamp", ts), ("Content-Type", "application/json")],
        body,
        false,
    )
}

fn generic_request(body: &[u8], id: &str, ts: &str) -> Request {
    let key = generic::StandardWebhookKey::parse(WHSEC).unwrap();
    let signature = generic::sign(&key, id, ts, body);
    function_url(
        "POST",
        "/webhooks/hr-generic",
        &[("webhook-id", id), ("webhook-timestamp", ts), ("webhook-signature", &signature)],
        body,
        false,
    )
}

fn generic_body() -> &'static [u8] {
    include_bytes!("../../../tests/fixtures/generic/two-events.json")
}

fn okta_body() -> &'static [u8] {
    include_bytes!("../../../tests/fixtures/okta/delivery.json")
}

fn hibob_body() -> &'static [u8] {
    include_bytes!("../../../tests/fixtures/hibob/employee-left.json")
}

async fn answer(app: &IngestApp, request: Request) -> (u16, serde_json::Value, http::HeaderMap) {
    let response = app.handle(request).await;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body: serde_json::Value = serde_json::from_slice(response.body().as_ref()).unwrap_or(serde_json::Value::Null);
    (status, body, headers)
}

#[tokio::test]
async fn each_source_queues_its_events_with_person_groups_and_hashed_dedup_ids() {
    let h = harness();
    let ts = "1772442900";
    let (status, body, _) = answer(&h.app, bamboo_request(bamboo_body(), BAMBOO_KEY, ts)).await;
    assert_eq!((status, body), (202, serde_json::json!({"accepted": 1, "ignored": 0})));
    let (status, body, _) = answer(&h.app, generic_request(generic_body(), "msg_1", ts)).await;
    assert_eq!((status, body), (202, serde_json::json!({"accepted": 2, "ignored": 0})));
    let signature = hibob::sign(BOB_SECRET, hibob_body());
    let request = function_url("POST", "/webhooks/hibob-main", &[("Bob-Signature", &signature)], hibob_body(), false);
    assert_eq!(answer(&h.app, request).await.0, 202);
    let request = function_url("POST", "/webhooks/okta-main", &[("Authorization", OKTA_AUTH)], okta_body(), false);
    assert_eq!(answer(&h.app, request).await.1, serde_json::json!({"accepted": 2, "ignored": 0}));

    let queued = h.queue.drain();
    let groups: Vec<&str> = queued.iter().map(|q| q.group_id.as_str()).collect();
    assert_eq!(
        groups,
        [
            "bamboohr-main:1187",
            "hr-generic:E-1042",
            "hr-generic:E-7731",
            "hibob-main:3332883854254932743",
            "okta-main:00u1dana0000000042",
            "okta-main:00u1lee00000000077"
        ]
    );
    for q in &queued {
        assert_eq!(q.deduplication_id, deduplication_id(&q.event.person.source, &q.event.source_event_id));
        assert_eq!(q.event.received_at, vector_time());
    }
    assert!(queued[0].event.source_event_id.starts_with("employee.updated:1187:2026-03-02T09:15:00+0000:"));
}

#[tokio::test]
async fn a_duplicate_delivery_is_queued_once() {
    let h = harness();
    for _ in 0..3 {
        let (status, _, _) = answer(&h.app, generic_request(generic_body(), "msg_1", "1772442900")).await;
        assert_eq!(status, 202);
    }
    assert_eq!(h.queue.drain().len(), 2);
}

#[tokio::test]
async fn bad_stale_future_or_missing_signatures_are_a_bare_401() {
    let h = harness();
    let cases = [
        bamboo_request(bamboo_body(), "wrong-key", "1772442900"),
        bamboo_request(bamboo_body(), BAMBOO_KEY, "1772442599"),
        bamboo_request(bamboo_body(), BAMBOO_KEY, "1772443201"),
        function_url("POST", "/webhooks/bamboohr-main", &[], bamboo_body(), false),
        function_url("POST", "/webhooks/hibob-main", &[("Bob-Signature", "AAAA")], hibob_body(), false),
        function_url("POST", "/webhooks/okta-main", &[("Authorization", "Bearer guess")], okta_body(), false),
        function_url("GET", "/webhooks/okta-main", &[("X-Okta-Verification-Challenge", "c")], b"", false),
        generic_request(generic_body(), "msg_1", "1772442000"),
    ];
    for request in cases {
        let (status, body, _) = answer(&h.app, request).await;
        assert_eq!((status, body), (401, serde_json::json!({"error": "unauthorized"})));
    }
    assert!(h.queue.is_empty());
}

#[tokio::test]
async fn a_flipped_byte_is_401_and_nothing_is_queued() {
    let h = harness();
    let signature = bamboohr::sign(BAMBOO_KEY, bamboo_body(), "1772442900");
    let mut tampered = bamboo_body().to_vec();
    tampered[30] ^= 0x01;
    let request = function_url(
        "POST",
        "/webhooks/bamboohr-main",
        &[("x-bamboohr-signature", &signature), ("x-bamboohr-timestamp", "1772442900")],
        &tampered,
        false,
    );
    assert_eq!(answer(&h.app, request).await.0, 401);
    assert!(h.queue.is_empty());
}

#[tokio::test]
async fn base64_bodies_and_rest_api_stage_paths_are_handled() {
    let h = harness();
    let signature = bamboohr::sign(BAMBOO_KEY, bamboo_body(), "1772442900");
    let headers = [("X-BambooHR-Signature", signature.as_str()), ("X-BambooHR-Timestamp", "1772442900")];
    let request = function_url("POST", "/webhooks/bamboohr-main", &headers, bamboo_body(), true);
    assert_eq!(answer(&h.app, request).await.0, 202);
    let request = rest_api("POST", "/webhooks/bamboohr-main", &headers, bamboo_body());
    assert_eq!(request.uri().path(), "/prod/webhooks/bamboohr-main");
    assert_eq!(answer(&h.app, request).await.0, 202);
    // The same event twice: deduplicated.
    assert_eq!(h.queue.drain().len(), 1);
}

#[tokio::test]
async fn handshakes_are_answered_and_queue_nothing() {
    let h = harness();
    let request = function_url("POST", "/webhooks/hibob-main", &[("Content-Type", "text/plain")], b"Ping test", false);
    assert_eq!(answer(&h.app, request).await.0, 200);
    let request = function_url(
        "GET",
        "/webhooks/okta-main",
        &[("Authorization", OKTA_AUTH), ("X-Okta-Verification-Challenge", "3xq8WnZ0c0Jd-PkLr2tY9uVbHs")],
        b"",
        false,
    );
    let (status, body, headers) = answer(&h.app, request).await;
    assert_eq!((status, body), (200, serde_json::json!({"verification": "3xq8WnZ0c0Jd-PkLr2tY9uVbHs"})));
    assert_eq!(headers[http::header::CONTENT_TYPE], "application/json");
    assert!(h.queue.is_empty());
}

#[tokio::test]
async fn routing_and_sizes() {
    let h = harness_with(2_000);
    let (status, _, _) = answer(&h.app, function_url("POST", "/hooks/x", &[], b"{}", false)).await;
    assert_eq!(status, 404);
    let big = vec![b' '; 2_001];
    let (status, _, _) = answer(&h.app, bamboo_request(&big, BAMBOO_KEY, "1772442900")).await;
    assert_eq!(status, 413);
}

/// Captures the JSON log lines of the current thread (tokio's test runtime runs the test
/// on it) while the guard lives.
#[derive(Clone, Default)]
struct Logs(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = Logs;
    fn make_writer(&'a self) -> Logs {
        self.clone()
    }
}

impl Logs {
    fn capture() -> (Logs, tracing::subscriber::DefaultGuard) {
        let logs = Logs::default();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_max_level(tracing::Level::INFO)
            .with_writer(logs.clone())
            .finish();
        // Without a global subscriber, a callsite first reached on another test thread is
        // cached as "never interested", and its lines would be lost here: a global one that
        // is always undecided keeps every callsite asking the thread's own subscriber.
        static UNDECIDED: std::sync::Once = std::sync::Once::new();
        UNDECIDED.call_once(|| {
            let _ = tracing::subscriber::set_global_default(Undecided);
        });
        tracing::callsite::rebuild_interest_cache();
        (logs.clone(), tracing::subscriber::set_default(subscriber))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// The `outcome` of every `webhook answered` line, in order.
    fn outcomes(&self) -> Vec<String> {
        self.text()
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|line| line["message"] == "webhook answered")
            .map(|line| line["outcome"].as_str().unwrap_or_default().to_owned())
            .collect()
    }
}

#[tokio::test]
async fn unknown_connections_wrong_methods_and_unverified_requests_get_one_answer() {
    let (logs, _guard) = Logs::capture();
    let h = harness();
    let cases = [
        (function_url("POST", "/webhooks/nobody", &[], b"{}", false), "unknown_connection"),
        (function_url("GET", "/webhooks/nobody", &[], b"", false), "unknown_connection"),
        (function_url("PUT", "/webhooks/nobody", &[], b"", false), "unknown_connection"),
        (generic_request(generic_body(), "msg_1", "1772442900"), "accepted"),
        (function_url("PUT", "/webhooks/okta-main", &[], b"", false), "method_not_allowed"),
        (function_url("DELETE", "/webhooks/hr-generic", &[], b"", false), "method_not_allowed"),
        (function_url("GET", "/webhooks/bamboohr-main", &[], b"", false), "method_not_allowed"),
        (function_url("GET", "/webhooks/hibob-main", &[], b"Ping test", false), "method_not_allowed"),
        (bamboo_request(bamboo_body(), "forged", "1772442900"), "unauthorized"),
        (
            function_url("POST", "/webhooks/okta-main", &[("Authorization", "Bearer guess")], okta_body(), false),
            "unauthorized",
        ),
    ];
    let mut expected = Vec::new();
    for (request, outcome) in cases {
        let (status, body, headers) = answer(&h.app, request).await;
        expected.push(outcome.to_owned());
        if outcome == "accepted" {
            assert_eq!(status, 202);
            continue;
        }
        assert_eq!((status, &body), (401, &serde_json::json!({"error": "unauthorized"})), "{outcome}");
        assert!(headers.get(http::header::ALLOW).is_none(), "{outcome}: {headers:?}");
    }
    // The answer is one; the logs still tell an operator what happened.
    assert_eq!(logs.outcomes(), expected);
    assert_eq!(h.queue.drain().len(), 2);
}

#[tokio::test]
async fn verified_requests_with_a_wrong_method_learn_what_the_connection_accepts() {
    let (logs, _guard) = Logs::capture();
    let h = harness();
    for method in ["PUT", "PATCH", "DELETE"] {
        let request = function_url(method, "/webhooks/okta-main", &[("Authorization", OKTA_AUTH)], b"", false);
        let (status, _, headers) = answer(&h.app, request).await;
        assert_eq!((status, &headers[http::header::ALLOW]), (405, &http::HeaderValue::from_static("GET, POST")));
    }
    let signature = bamboohr::sign(BAMBOO_KEY, b"", "1772442900");
    let headers = [("X-BambooHR-Signature", signature.as_str()), ("X-BambooHR-Timestamp", "1772442900")];
    let (status, _, headers) =
        answer(&h.app, function_url("GET", "/webhooks/bamboohr-main", &headers, b"", false)).await;
    assert_eq!((status, &headers[http::header::ALLOW]), (405, &http::HeaderValue::from_static("POST")));
    assert_eq!(logs.outcomes(), ["method_not_allowed"; 4]);
    assert!(h.queue.is_empty());
}

#[tokio::test]
async fn hibobs_ping_is_answered_signed_or_not_for_hibob_connections_only() {
    let h = harness();
    let ping = |path: &str, headers: &[(&str, &str)]| function_url("POST", path, headers, b"Ping test", false);
    let signature = hibob::sign(BOB_SECRET, b"Ping test");
    for request in [
        ping("/webhooks/hibob-main", &[("Content-Type", "text/plain")]),
        ping("/webhooks/hibob-main", &[("Bob-Signature", &signature)]),
        ping("/webhooks/hibob-main", &[("Bob-Signature", "AAAA")]),
    ] {
        let (status, body, _) = answer(&h.app, request).await;
        assert_eq!((status, body), (200, serde_json::json!({"handshake": "ok"})));
    }
    for path in ["/webhooks/nobody", "/webhooks/bamboohr-main", "/webhooks/okta-main", "/webhooks/hr-generic"] {
        let (status, body, _) = answer(&h.app, ping(path, &[])).await;
        assert_eq!((status, body), (401, serde_json::json!({"error": "unauthorized"})), "{path}");
    }
    assert!(h.queue.is_empty());
}

#[tokio::test]
async fn malformed_bodies_are_400_with_a_message_and_form_field_posts_415() {
    let h = harness();
    let (status, body, _) =
        answer(&h.app, bamboo_request(br#"{"type":"employee.updated","data":{}}"#, BAMBOO_KEY, "1772442900")).await;
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("data.employeeId"), "{body}");
    let form = b"employees%5B0%5D%5Bid%5D=1187";
    let signature = bamboohr::sign(BAMBOO_KEY, form, "1772442900");
    let request = function_url(
        "POST",
        "/webhooks/bamboohr-main",
        &[
            ("x-bamboohr-signature", &signature),
            ("x-bamboohr-timestamp", "1772442900"),
            ("content-type", "application/x-www-form-urlencoded"),
        ],
        form,
        false,
    );
    let (status, body, _) = answer(&h.app, request).await;
    assert_eq!(status, 415);
    assert!(body["error"].as_str().unwrap().contains("JSON"), "{body}");
}

#[tokio::test]
async fn queue_outage_is_503_and_the_retry_queues_everything_once() {
    let h = harness();
    h.queue.set_available(false);
    let (status, _, _) = answer(&h.app, generic_request(generic_body(), "msg_1", "1772442900")).await;
    assert_eq!(status, 503);
    assert!(h.queue.is_empty());
    h.queue.set_available(true);
    h.clock.set(vector_time() + chrono::Duration::seconds(60));
    for _ in 0..2 {
        let (status, _, _) = answer(&h.app, generic_request(generic_body(), "msg_1", "1772442960")).await;
        assert_eq!(status, 202);
    }
    assert_eq!(h.queue.drain().len(), 2);
}

#[tokio::test]
async fn warm_invocations_never_reread_the_secret() {
    let h = harness();
    for _ in 0..10 {
        assert_eq!(answer(&h.app, bamboo_request(bamboo_body(), BAMBOO_KEY, "1772442900")).await.0, 202);
    }
    assert_eq!(h.secrets.reads(), 1);
}

#[tokio::test]
async fn a_rotated_key_is_picked_up_once_and_forgeries_cannot_force_rereads() {
    let h = harness();
    assert_eq!(answer(&h.app, bamboo_request(bamboo_body(), BAMBOO_KEY, "1772442900")).await.0, 202);
    h.secrets.set(SECRET_ID, connections_json("rotated-private-key"));
    // Signed with the new key: the failed check re-reads the secret once and succeeds.
    assert_eq!(answer(&h.app, bamboo_request(bamboo_body(), "rotated-private-key", "1772442900")).await.0, 202);
    assert_eq!(h.secrets.reads(), 2);
    for _ in 0..20 {
        assert_eq!(answer(&h.app, bamboo_request(bamboo_body(), "forged", "1772442900")).await.0, 401);
    }
    assert_eq!(h.secrets.reads(), 2);
}

#[tokio::test]
async fn requests_to_unknown_connections_never_reread_the_secret() {
    let h = harness();
    assert_eq!(answer(&h.app, bamboo_request(bamboo_body(), BAMBOO_KEY, "1772442900")).await.0, 202);
    for n in 0..50 {
        let request = function_url("POST", &format!("/webhooks/guess-{n}"), &[], b"{}", false);
        assert_eq!(answer(&h.app, request).await.0, 401);
    }
    assert_eq!(h.secrets.reads(), 1);
    // ...so the one re-read a rotation needs is still there for a real connection.
    h.secrets.set(SECRET_ID, connections_json("rotated-private-key"));
    assert_eq!(answer(&h.app, bamboo_request(bamboo_body(), "rotated-private-key", "1772442900")).await.0, 202);
    assert_eq!(h.secrets.reads(), 2);
}

#[tokio::test]
async fn a_forgery_on_one_connection_does_not_spend_another_connections_reread() {
    let h = harness();
    assert_eq!(answer(&h.app, bamboo_request(bamboo_body(), BAMBOO_KEY, "1772442900")).await.0, 202);
    for _ in 0..10 {
        let request =
            function_url("POST", "/webhooks/okta-main", &[("Authorization", "Bearer guess")], okta_body(), false);
        assert_eq!(answer(&h.app, request).await.0, 401);
    }
    assert_eq!(h.secrets.reads(), 2, "okta-main's forgeries re-read once");
    h.secrets.set(SECRET_ID, connections_json("rotated-private-key"));
    assert_eq!(answer(&h.app, bamboo_request(bamboo_body(), "rotated-private-key", "1772442900")).await.0, 202);
    assert_eq!(h.secrets.reads(), 3);
}

#[tokio::test(start_paused = true)]
async fn each_connection_rereads_at_most_once_per_ttl() {
    let h = harness();
    let forged = || bamboo_request(bamboo_body(), "forged", "1772442900");
    assert_eq!(answer(&h.app, forged()).await.0, 401);
    assert_eq!(h.secrets.reads(), 2, "the first read, then one re-read");
    tokio::time::advance(TTL / 2).await;
    for _ in 0..10 {
        assert_eq!(answer(&h.app, forged()).await.0, 401);
    }
    assert_eq!(h.secrets.reads(), 2);
    // The TTL passes: the value is read again, and bamboohr-main may re-read once more.
    tokio::time::advance(TTL / 2 + Duration::from_secs(1)).await;
    for _ in 0..10 {
        assert_eq!(answer(&h.app, forged()).await.0, 401);
    }
    assert_eq!(h.secrets.reads(), 4);
}

/// The in-memory secret source, switchable to failing as Secrets Manager does when it
/// cannot be reached.
#[derive(Default)]
struct FlakySecrets {
    inner: InMemorySecretSource,
    failing: AtomicBool,
    failed_reads: AtomicUsize,
}

#[async_trait::async_trait]
impl SecretSource for FlakySecrets {
    async fn secret_string(&self, id: &str) -> Result<String, SecretsError> {
        if self.failing.load(Ordering::SeqCst) {
            self.failed_reads.fetch_add(1, Ordering::SeqCst);
            return Err(SecretsError::Unavailable { id: id.to_owned(), reason: "connect timeout".into() });
        }
        self.inner.secret_string(id).await
    }
}

#[tokio::test(start_paused = true)]
async fn after_the_ttl_a_failed_read_keeps_the_last_good_value_in_use() {
    let (logs, _guard) = Logs::capture();
    let secrets = Arc::new(FlakySecrets::default());
    secrets.inner.set(SECRET_ID, connections_json(BAMBOO_KEY));
    let (app, queue, _) = app_with(secrets.clone(), 1_048_576);
    assert_eq!(answer(&app, bamboo_request(bamboo_body(), BAMBOO_KEY, "1772442900")).await.0, 202);
    secrets.failing.store(true, Ordering::SeqCst);
    tokio::time::advance(TTL + Duration::from_secs(1)).await;
    for _ in 0..5 {
        assert_eq!(answer(&app, generic_request(generic_body(), "msg_1", "1772442900")).await.0, 202);
    }
    assert_eq!(secrets.failed_reads.load(Ordering::SeqCst), 1, "one attempt per TTL, not one per request");
    assert!(logs.text().contains("the last good value stays in use"), "{}", logs.text());
    // A forgery may still try its re-read; its failure is a 401, not a 503.
    assert_eq!(answer(&app, bamboo_request(bamboo_body(), "forged", "1772442900")).await.0, 401);
    assert_eq!(queue.drain().len(), 3);
    // Without any good value there is nothing to serve.
    let (cold, _, _) = app_with(secrets.clone(), 1_048_576);
    assert_eq!(answer(&cold, bamboo_request(bamboo_body(), BAMBOO_KEY, "1772442900")).await.0, 503);
}

#[tokio::test]
async fn a_malformed_entry_disables_only_its_connection() {
    let (logs, _guard) = Logs::capture();
    let h = harness();
    let secret = serde_json::json!({"connections": {
        "bamboohr-main": {"source": "bamboohr", "private_key": BAMBOO_KEY},
        "hr-generic": {"source": "generic", "secret": "whsec_not base64 (leaked-value)"},
        "okta-main": {"source": "okta", "auth_header": ["leaked-value-2"], "auth_value": OKTA_AUTH}
    }});
    h.secrets.set(SECRET_ID, secret.to_string());
    assert_eq!(answer(&h.app, bamboo_request(bamboo_body(), BAMBOO_KEY, "1772442900")).await.0, 202);
    let (status, body, _) = answer(&h.app, generic_request(generic_body(), "msg_1", "1772442900")).await;
    assert_eq!((status, body), (401, serde_json::json!({"error": "unauthorized"})));
    let request = function_url("POST", "/webhooks/okta-main", &[("Authorization", OKTA_AUTH)], okta_body(), false);
    assert_eq!(answer(&h.app, request).await.0, 401);
    assert_eq!(h.queue.drain().len(), 1);

    let errors: Vec<serde_json::Value> = logs
        .text()
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|line| line["level"] == "ERROR")
        .collect();
    let named = |connection: &str, problem: &str| {
        errors.iter().any(|line| {
            let text = line.to_string();
            text.contains(connection) && line["problem"].as_str().is_some_and(|p| p.contains(problem))
        })
    };
    assert!(named("hr-generic", "whsec_"), "{errors:?}");
    assert!(named("okta-main", "wrong type"), "{errors:?}");
    assert!(!logs.text().contains("leaked-value"), "{}", logs.text());
    assert_eq!(logs.outcomes(), ["accepted", "connection_disabled", "connection_disabled"]);
}

#[tokio::test]
async fn okta_app_assignments_of_other_apps_are_acknowledged_and_not_queued() {
    let h = harness();
    let secret = serde_json::json!({"connections": {
        "okta-main": {"source": "okta", "auth_value": OKTA_AUTH, "app_id": "0oa1password000001"}
    }});
    h.secrets.set(SECRET_ID, secret.to_string());
    let delivery = |event_type: &str, app: &str| {
        serde_json::to_vec(&serde_json::json!({"data": {"events": [{
            "uuid": format!("{event_type}-{app}"), "published": "2026-03-02T09:15:00Z", "eventType": event_type,
            "outcome": {"result": "SUCCESS"},
            "target": [
                {"id": "0ua1dana00000000042", "type": "AppUser", "alternateId": "dana.kim@example.com"},
                {"id": app, "type": "AppInstance", "alternateId": "app", "displayName": "An app"},
                {"id": "00u1dana0000000042", "type": "User", "alternateId": "dana.kim@example.com"}
            ]
        }]}}))
        .unwrap()
    };
    let post =
        |body: Vec<u8>| function_url("POST", "/webhooks/okta-main", &[("Authorization", OKTA_AUTH)], &body, false);
    for event_type in ["application.user_membership.add", "application.user_membership.remove"] {
        let (status, body, _) = answer(&h.app, post(delivery(event_type, "0oa1slack0000000001"))).await;
        assert_eq!((status, body), (202, serde_json::json!({"accepted": 0, "ignored": 1})), "{event_type}");
    }
    assert!(h.queue.is_empty());
    let (status, body, _) =
        answer(&h.app, post(delivery("application.user_membership.remove", "0oa1password000001"))).await;
    assert_eq!((status, body), (202, serde_json::json!({"accepted": 1, "ignored": 0})));
    let [leaver] = h.queue.drain().try_into().unwrap_or_else(|q: Vec<_>| panic!("{q:?}"));
    assert_eq!((leaver.event.kind, leaver.event.immediate), (crate::EventKind::Leaver, true));
}

#[tokio::test]
async fn an_unreadable_secret_is_503_and_a_misconfigured_app_500() {
    let h = harness();
    h.secrets.set(SECRET_ID, "{not json");
    let (status, body, _) = answer(&h.app, bamboo_request(bamboo_body(), BAMBOO_KEY, "1772442900")).await;
    assert_eq!(status, 503);
    assert!(!body.to_string().contains("not json"));
    let app = IngestApp::misconfigured("environment variable QUEUE_URL is required but not set");
    let (status, body, _) = answer(&app, bamboo_request(bamboo_body(), BAMBOO_KEY, "1772442900")).await;
    assert_eq!(status, 500);
    assert!(!body.to_string().contains("QUEUE_URL"), "details go to the logs: {body}");
    assert_eq!(answer(&app, function_url("POST", "/elsewhere", &[], b"", false)).await.0, 404);
}

#[test]
fn settings_come_from_the_template_variables_with_defaults() {
    let env = Env::from_pairs([("CONNECTIONS_SECRET_ID", "arn:x")]);
    assert_eq!(
        IngestConfig::from_env(&env).unwrap(),
        IngestConfig {
            connections_secret_id: "arn:x".into(),
            secret_cache_ttl: Duration::from_secs(300),
            max_body_bytes: 1_048_576,
            timestamp_tolerance: Duration::from_secs(300),
        }
    );
    let env = Env::from_pairs([
        ("CONNECTIONS_SECRET_ID", "arn:x"),
        ("SECRET_CACHE_TTL_SECONDS", "60"),
        ("MAX_BODY_BYTES", "2048"),
        ("TIMESTAMP_TOLERANCE_SECONDS", "30"),
    ]);
    let settings = IngestConfig::from_env(&env).unwrap();
    assert_eq!(settings.secret_cache_ttl, Duration::from_secs(60));
    assert_eq!(settings.max_body_bytes, 2048);
    assert_eq!(settings.timestamp_tolerance, Duration::from_secs(30));
    let error = IngestConfig::from_env(&Env::from_pairs([])).unwrap_err().to_string();
    assert!(error.contains("CONNECTIONS_SECRET_ID"), "{error}");
    let env = Env::from_pairs([("CONNECTIONS_SECRET_ID", "arn:x"), ("MAX_BODY_BYTES", "1MB")]);
    assert!(IngestConfig::from_env(&env).unwrap_err().to_string().contains("MAX_BODY_BYTES"));
}

#[test]
fn routes_accept_one_stage_prefix_only() {
    assert_eq!(route("/webhooks/okta-main"), Some("okta-main"));
    assert_eq!(route("/Prod/webhooks/okta-main"), Some("okta-main"));
    assert_eq!(route("/webhooks/"), None);
    assert_eq!(route("/webhooks/a/b"), None);
    assert_eq!(route("/a/b/webhooks/c"), None);
}

const OTHER_METHODS: [&str; 5] = ["PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

/// Every answer the handler can give, produced for real: (method, status, body).
async fn every_answer() -> Vec<(String, u16, serde_json::Value)> {
    let mut answers = Vec::new();
    let h = harness_with(4_000);
    let mut requests = vec![
        bamboo_request(bamboo_body(), BAMBOO_KEY, "1772442900"),
        function_url("POST", "/webhooks/hibob-main", &[], b"Ping test", false),
        bamboo_request(b"{}", BAMBOO_KEY, "1772442900"),
        bamboo_request(bamboo_body(), "forged", "1772442900"),
        function_url("POST", "/webhooks/nobody", &[], b"{}", false),
        bamboo_request(&[b' '; 4_001], BAMBOO_KEY, "1772442900"),
        function_url(
            "POST",
            "/webhooks/bamboohr-main",
            &[
                ("x-bamboohr-signature", &bamboohr::sign(BAMBOO_KEY, b"employees=1", "1772442900")),
                ("x-bamboohr-timestamp", "1772442900"),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            b"employees=1",
            false,
        ),
        function_url(
            "GET",
            "/webhooks/okta-main",
            &[("Authorization", OKTA_AUTH), ("X-Okta-Verification-Challenge", "c")],
            b"",
            false,
        ),
        function_url("GET", "/webhooks/okta-main", &[("Authorization", OKTA_AUTH)], b"", false),
        function_url("GET", "/webhooks/okta-main", &[], b"", false),
        function_url("GET", "/webhooks/nobody", &[], b"", false),
        function_url("GET", "/webhooks/bamboohr-main", &[], b"", false),
        function_url(
            "GET",
            "/webhooks/bamboohr-main",
            &[
                ("x-bamboohr-signature", &bamboohr::sign(BAMBOO_KEY, b"", "1772442900")),
                ("x-bamboohr-timestamp", "1772442900"),
            ],
            b"",
            false,
        ),
        function_url("GET", "/webhooks/okta-main", &[], &[b' '; 4_001], false),
    ];
    for method in OTHER_METHODS {
        requests.push(function_url(method, "/webhooks/okta-main", &[], b"", false));
        requests.push(function_url(method, "/webhooks/nobody", &[], b"", false));
        requests.push(function_url(method, "/webhooks/okta-main", &[("Authorization", OKTA_AUTH)], b"", false));
        requests.push(function_url(method, "/webhooks/okta-main", &[], &[b' '; 4_001], false));
    }
    for request in requests {
        let method = request.method().to_string();
        let (status, body, _) = answer(&h.app, request).await;
        answers.push((method, status, body));
    }
    // Outages: the queue, then the secret.
    h.queue.set_available(false);
    let (status, body, _) = answer(&h.app, bamboo_request(bamboo_body(), BAMBOO_KEY, "1772442900")).await;
    answers.push(("POST".into(), status, body));
    for method in ["POST", "GET"].into_iter().chain(OTHER_METHODS) {
        let h = harness();
        h.secrets.set(SECRET_ID, "{");
        let (status, body, _) = answer(&h.app, function_url(method, "/webhooks/okta-main", &[], b"", false)).await;
        answers.push((method.into(), status, body));
        let app = IngestApp::misconfigured("test");
        let (status, body, _) = answer(&app, function_url(method, "/webhooks/okta-main", &[], b"", false)).await;
        answers.push((method.into(), status, body));
    }
    answers
}

fn resolve<'a>(document: &'a serde_json::Value, node: &'a serde_json::Value) -> &'a serde_json::Value {
    match node.get("$ref").and_then(serde_json::Value::as_str) {
        Some(reference) => {
            let pointer = reference.trim_start_matches('#');
            resolve(document, document.pointer(pointer).unwrap_or_else(|| panic!("dangling {reference}")))
        }
        None => node,
    }
}

#[tokio::test]
async fn the_openapi_document_lists_exactly_what_the_handler_answers() {
    let yaml = include_str!("../../../docs/openapi.yaml");
    let document: serde_json::Value = serde_yaml::from_str(yaml).unwrap();
    assert_eq!(document["openapi"], "3.1.0");
    let paths = document["paths"].as_object().unwrap();
    assert_eq!(paths.keys().collect::<Vec<_>>(), ["/webhooks/{connection}"]);
    let path_item = &paths["/webhooks/{connection}"];

    let mut documented = BTreeSet::new();
    for (method, operation) in path_item.as_object().unwrap() {
        if method == "parameters" {
            continue;
        }
        for status in operation["responses"].as_object().unwrap().keys() {
            documented.insert((method.to_uppercase(), status.parse::<u16>().unwrap()));
        }
    }

    let mut observed = BTreeSet::new();
    for (method, status, body) in every_answer().await {
        let response = resolve(&document, &path_item[method.to_lowercase()]["responses"][status.to_string()]);
        assert!(response.is_object(), "{method} answered {status}, which docs/openapi.yaml does not list");
        let schema = resolve(&document, &response["content"]["application/json"]["schema"]);
        let validator = jsonschema::validator_for(schema).unwrap();
        assert!(validator.is_valid(&body), "{method} {status} body {body} does not match {schema}");
        observed.insert((method, status));
    }
    let never_answered: Vec<_> = documented.difference(&observed).collect();
    assert!(never_answered.is_empty(), "documented but never answered: {never_answered:?}");
}

/// A global subscriber that records nothing and never lets a callsite's interest be cached.
struct Undecided;

impl tracing::Subscriber for Undecided {
    fn register_callsite(&self, _: &'static tracing::Metadata<'static>) -> tracing::subscriber::Interest {
        tracing::subscriber::Interest::sometimes()
    }
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        false
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, _: &tracing::Event<'_>) {}
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}
