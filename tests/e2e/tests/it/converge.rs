//! Convergence through the real `worker` binary (cargo-lambda's emulator) with moto's SQS and
//! DynamoDB, the 1Password simulator over HTTP, and wiremock standing in for the HR APIs:
//! late, reordered, redelivered and future-dated events, HR moving dates, and a burst of
//! events against a rate-limited HR API.
//!
//! The binary reads the real clock, so "weeks later" is a converge at a chosen instant through
//! the same library code, the same DynamoDB ledger and the same simulator; "seconds later" is
//! real time and the due-action sweep.

use chrono::{DateTime, Duration as ChronoDuration, NaiveDate, Utc};
use e2e::worker_harness::{RULES, event};
use e2e::{FifoQueues, LambdaFunction, Moto};
use onepassword_sim::{RunningSim, SimConfig};
use provisioning::EventKind::{Joiner, Leaver, Mover};
use provisioning::apply::Applier;
use provisioning::config::Env;
use provisioning::ledger::{DynamoLedger, Ledger};
use provisioning::queue::{EventQueue, SqsEventQueue};
use provisioning::scim::Directory;
use provisioning::secrets::AwsSecretSource;
use provisioning::worker::{Ports, WorkerConfig};
use provisioning::{Attributes, EventKind, LifecycleEvent, PersonKey, SourceKind};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const SECRET_ID: &str = "provisioning/worker";
const TABLE: &str = "ledger";

struct Stack {
    moto: Moto,
    sim: RunningSim,
    queues: FifoQueues,
    ledger: Arc<DynamoLedger>,
    publisher: SqsEventQueue,
    worker: LambdaFunction,
    env: Vec<(String, String)>,
}

/// The worker binary on moto, with `sources` (connection → API settings) in its secret.
async fn stack(sources: serde_json::Value, extra_env: &[(&str, &str)]) -> Stack {
    let moto = Moto::start().unwrap();
    let sdk = moto.sdk_config().await;
    let sim = onepassword_sim::spawn(SimConfig::default(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let secret = json!({ "bridge_url": sim.scim_url(), "bridge_token": SimConfig::default().scim_token,
        "sources": sources });
    let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
    secrets.create_secret().name(SECRET_ID).secret_string(secret.to_string()).send().await.unwrap();
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    DynamoLedger::create_table_for_tests(&dynamo, TABLE).await.unwrap();
    let queues = FifoQueues::create(&sdk, "events", 3).await.unwrap();
    let mut env = moto.env();
    let queue_url = queues.queue_url.clone();
    for (k, v) in [
        ("WORKER_SECRET_ID", SECRET_ID),
        ("LEDGER_TABLE", TABLE),
        ("ALLOW_HTTP_BRIDGE", "true"),
        ("ALLOW_HTTP_SOURCES", "true"),
        ("MAPPING_RULES", RULES),
        ("QUEUE_URL", queue_url.as_str()),
    ]
    .iter()
    .chain(extra_env)
    {
        env.push((k.to_string(), v.to_string()));
    }
    let worker = LambdaFunction::start("worker", &env).unwrap();
    let publisher = provisioning::sweep::background_queue(&sdk, queue_url);
    let ledger = Arc::new(DynamoLedger::new(dynamo, TABLE));
    Stack { moto, sim, queues, ledger, publisher, worker, env }
}

impl Stack {
    async fn send(&self, events: &[LifecycleEvent]) {
        self.publisher.send(events).await.unwrap();
    }

    /// Pumps until the queue is empty; returns the messages received.
    async fn drain(&self) -> usize {
        let mut received = 0;
        for _ in 0..400 {
            let round = self.queues.pump_once(|batch| self.worker.invoke_owned(batch)).await.unwrap();
            if round.received == 0 {
                return received;
            }
            received += round.received;
        }
        panic!("the queue did not drain; worker log:\n{}", self.worker.logs());
    }

    fn account(&self, email: &str) -> onepassword_sim::UserView {
        let users: Vec<_> = self.sim.state().users().into_iter().filter(|u| u.user_name == email).collect();
        assert_eq!(users.len(), 1, "exactly one account {email}: {users:?}");
        users.into_iter().next().unwrap()
    }

    async fn due_at(&self, person: &PersonKey) -> Option<DateTime<Utc>> {
        self.ledger.person(person).await.unwrap().and_then(|r| r.due).map(|d| d.at)
    }

    /// What the worker does when a due action fires at `now`: the same library, ledger,
    /// simulator and source APIs as the binary, with the clock at `now`.
    async fn converge_at(&self, person: &PersonKey, source_kind: SourceKind, now: DateTime<Utc>) -> String {
        let env = Env::from_map(self.env.iter().cloned().collect());
        let config = WorkerConfig::from_env(&env).unwrap();
        let secrets = Arc::new(AwsSecretSource::from_sdk_config(&self.moto.sdk_config().await));
        let ports = Ports::from_secret(&config, secrets, self.ledger.clone()).await.unwrap();
        let directory: Arc<dyn Directory> = ports.directory.clone();
        let applier = Applier::new(ports.ledger, ports.enricher, None, config.rules);
        let trigger = converge_event(person, source_kind, now);
        applier.process(directory.as_ref(), trigger, now, None).await.unwrap().label().to_owned()
    }

    /// One due-action sweep: every action due by now, enqueued as a converge message.
    async fn sweep(&self) -> usize {
        let due = self.ledger.due_actions(Utc::now(), None, 1000).await.unwrap();
        let events: Vec<_> =
            due.iter().map(|action| converge_event(&action.person, action.source_kind, action.due.at)).collect();
        self.send(&events).await;
        for action in &due {
            self.ledger.complete_due_action(action).await.unwrap();
        }
        due.len()
    }
}

fn converge_event(person: &PersonKey, source_kind: SourceKind, at: DateTime<Utc>) -> LifecycleEvent {
    LifecycleEvent {
        version: 1,
        kind: EventKind::Converge,
        person: person.clone(),
        source_kind,
        source_event_id: format!("due:{}", at.to_rfc3339()),
        effective_at: at,
        received_at: Utc::now(),
        attributes: Attributes::default(),
        immediate: false,
        requeued: 0,
    }
}

fn days_from_today(days: i64) -> NaiveDate {
    Utc::now().date_naive() + ChronoDuration::days(days)
}

fn midnight_utc(date: NaiveDate) -> DateTime<Utc> {
    date.and_hms_opt(0, 0, 0).unwrap().and_utc()
}

#[tokio::test]
async fn late_reordered_and_redelivered_events_end_in_the_right_state() {
    let s = stack(json!({}), &[]).await;
    let ada = "ada.lovelace@example.com";
    // (a) joiner t0, mover t2, then the leaver of t1 arrives late.
    s.send(&[event(Joiner, "1", ada, "Engineering", 0)]).await;
    s.send(&[event(Mover, "1", ada, "Finance", 20)]).await;
    s.send(&[event(Leaver, "1", ada, "Finance", 10)]).await;
    assert_eq!(s.drain().await, 3);
    assert!(!s.account(ada).scim_active, "the late leaver suspended her");

    // The joiner redriven long after (a new SQS deduplication id): recognised, no bridge call.
    s.sim.state().clear_operations();
    let mut redriven = event(Joiner, "1", ada, "Engineering", 0);
    redriven.requeued = 1;
    s.send(&[redriven]).await;
    assert_eq!(s.drain().await, 1);
    let scim: Vec<_> = s.sim.state().operations().into_iter().filter(|op| op.path.starts_with("/scim")).collect();
    assert!(scim.is_empty(), "a redelivery costs no bridge call: {scim:?}");
    assert!(!s.account(ada).scim_active);
    assert!(s.queues.dlq_bodies().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_leaver_dated_ahead_keeps_access_until_its_time_and_the_sweep_then_suspends() {
    let s = stack(json!({}), &[]).await;
    let (ada, bob) = ("ada.lovelace@example.com", "bob.babbage@example.com");
    s.send(&[event(Joiner, "1", ada, "Engineering", 0), event(Joiner, "2", bob, "Engineering", 0)]).await;
    s.drain().await;
    // (b) Ada's last day is in 14 days; Bob's leaver takes effect in 3 seconds.
    let in_14_days = Utc::now() + ChronoDuration::days(14);
    let in_3_seconds = Utc::now() + ChronoDuration::seconds(3);
    let leaver = |id: &str, email: &str, at: DateTime<Utc>| LifecycleEvent {
        effective_at: at,
        source_event_id: format!("leaver-{id}"),
        ..event(Leaver, id, email, "Engineering", 5)
    };
    s.send(&[leaver("1", ada, in_14_days), leaver("2", bob, in_3_seconds)]).await;
    s.drain().await;
    assert!(s.account(ada).scim_active && s.account(bob).scim_active, "nobody suspended early");
    let (ada_key, bob_key) = (PersonKey::new("hr", "1"), PersonKey::new("hr", "2"));
    assert_eq!(s.due_at(&ada_key).await, Some(in_14_days));
    assert_eq!(s.due_at(&bob_key).await, Some(in_3_seconds));

    assert_eq!(s.sweep().await, 0, "nothing is due yet");
    tokio::time::sleep((in_3_seconds - Utc::now()).to_std().unwrap_or_default()).await;
    assert_eq!(s.sweep().await, 1, "Bob's action is due");
    s.drain().await;
    assert!(!s.account(bob).scim_active, "suspended once his time passed");
    assert_eq!(s.due_at(&bob_key).await, None);
    assert!(s.account(ada).scim_active);

    let before = s.converge_at(&ada_key, SourceKind::Generic, in_14_days - ChronoDuration::minutes(1)).await;
    assert_eq!(before, "no_change");
    assert_eq!(s.converge_at(&ada_key, SourceKind::Generic, in_14_days).await, "applied");
    assert!(!s.account(ada).scim_active, "suspended at the cutoff");
}

/// A BambooHR employee record, as `GET /employees/{id}` answers it.
fn bamboo_record(hire: NaiveDate, termination: Option<NaiveDate>) -> serde_json::Value {
    json!({ "id": "7", "firstName": "Dana", "lastName": "Scully", "workEmail": "dana.scully@example.com",
        "department": "Engineering", "status": "Active", "employmentHistoryStatus": "Full-Time",
        "hireDate": hire.to_string(), "terminationDate": termination.map(|d| d.to_string()).unwrap_or_default() })
}

async fn bamboo_answers(server: &MockServer, record: serde_json::Value) {
    server.reset().await;
    Mock::given(method("GET"))
        .and(path_regex("^/api/v1/employees/7$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(record))
        .mount(server)
        .await;
}

fn bamboo_event(id: &str, kind: EventKind) -> LifecycleEvent {
    LifecycleEvent {
        kind,
        person: PersonKey::new("bamboohr-main", "7"),
        source_kind: SourceKind::Bamboohr,
        source_event_id: id.to_owned(),
        effective_at: Utc::now(),
        received_at: Utc::now(),
        attributes: Attributes::default(),
        ..converge_event(&PersonKey::new("bamboohr-main", "7"), SourceKind::Bamboohr, Utc::now())
    }
}

#[tokio::test]
async fn bamboohr_dates_drive_invitations_and_suspensions_and_moving_them_moves_the_due_action() {
    let hr = MockServer::start().await;
    let sources = json!({ "bamboohr-main": { "kind": "bamboohr", "company_domain": "acme", "api_key": "k",
        "base_url": format!("{}/api/v1", hr.uri()) } });
    let s = stack(sources, &[]).await;
    let dana = "dana.scully@example.com";
    let person = PersonKey::new("bamboohr-main", "7");

    // (d) Hired to start in 30 days: not invited now; the invitation is due 3 days before.
    let start = days_from_today(30);
    bamboo_answers(&hr, bamboo_record(start, None)).await;
    s.send(&[bamboo_event("created-7", Joiner)]).await;
    s.drain().await;
    assert!(s.sim.state().users().is_empty(), "not invited 30 days ahead");
    let invite_at = midnight_utc(start) - ChronoDuration::days(3);
    assert_eq!(s.due_at(&person).await, Some(invite_at));
    assert_eq!(s.converge_at(&person, SourceKind::Bamboohr, invite_at).await, "applied");
    assert!(s.account(dana).scim_active, "invited at start - lead");
    let invitation = s.ledger.invitation(&person).await.unwrap().expect("tracked");
    assert_eq!(invitation.counts_from, Some(midnight_utc(start)), "escalation counts from the start date");

    // (c) She has started; HR enters a termination 14 days ahead: still active, suspension due.
    let hired = days_from_today(-1);
    let last_day = days_from_today(14);
    bamboo_answers(&hr, bamboo_record(hired, Some(last_day))).await;
    s.send(&[bamboo_event("updated-7-a", Leaver)]).await;
    s.drain().await;
    assert!(s.account(dana).scim_active, "active until her termination date");
    assert_eq!(s.due_at(&person).await, Some(midnight_utc(last_day)));

    // (e) HR moves the date a week later: the due action moves.
    let later = days_from_today(21);
    bamboo_answers(&hr, bamboo_record(hired, Some(later))).await;
    s.send(&[bamboo_event("updated-7-b", Mover)]).await;
    s.drain().await;
    assert_eq!(s.due_at(&person).await, Some(midnight_utc(later)));
    assert_eq!(s.converge_at(&person, SourceKind::Bamboohr, midnight_utc(last_day)).await, "no_change");
    assert!(s.account(dana).scim_active, "the old date no longer suspends");

    // HR cancels the termination: no due action, and nothing happens at the old time.
    bamboo_answers(&hr, bamboo_record(hired, None)).await;
    s.send(&[bamboo_event("updated-7-c", Mover)]).await;
    s.drain().await;
    assert_eq!(s.due_at(&person).await, None);
    assert_eq!(s.converge_at(&person, SourceKind::Bamboohr, midnight_utc(later)).await, "no_change");
    assert!(s.account(dana).scim_active);

    // The termination comes back and its day arrives: suspended at the cutoff.
    bamboo_answers(&hr, bamboo_record(hired, Some(last_day))).await;
    s.send(&[bamboo_event("updated-7-d", Leaver)]).await;
    s.drain().await;
    assert_eq!(s.converge_at(&person, SourceKind::Bamboohr, midnight_utc(last_day)).await, "applied");
    assert!(!s.account(dana).scim_active);
    assert!(s.queues.dlq_bodies().await.unwrap().is_empty());
}

/// HiBob's documented limit, compressed in time so the suite stays fast: `limit` reads per
/// window, then 429 with `Retry-After: 1` until the window turns.
struct RateLimitedHiBob {
    limit: usize,
    window: std::time::Duration,
    started: std::time::Instant,
    served: std::sync::Mutex<(u64, usize)>,
    throttled: Arc<AtomicUsize>,
}

impl Respond for RateLimitedHiBob {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let window = (self.started.elapsed().as_millis() / self.window.as_millis().max(1)) as u64;
        let mut served = self.served.lock().unwrap();
        if served.0 != window {
            *served = (window, 0);
        }
        if served.1 >= self.limit {
            self.throttled.fetch_add(1, Ordering::SeqCst);
            return ResponseTemplate::new(429).insert_header("Retry-After", "1");
        }
        served.1 += 1;
        let id = request.url.path().rsplit('/').next().unwrap_or_default().to_owned();
        ResponseTemplate::new(200).set_body_json(json!({
            "id": id, "email": format!("person.{id}@example.com"), "firstName": "Person", "surname": id,
            "work": { "department": "Engineering", "startDate": "2020-01-06" },
            "internal": { "lifecycleStatus": "Employed", "status": "Active" }
        }))
    }
}

#[tokio::test]
async fn a_burst_of_300_hibob_events_against_its_rate_limit_drains_with_nothing_in_the_dlq() {
    let hr = MockServer::start().await;
    let throttled = Arc::new(AtomicUsize::new(0));
    // 5 reads per quarter second (HiBob's rule of 50 per minute, 30 times faster), while the
    // worker is told it may read 100 per second: it meets 429s and has to wait or hand
    // messages back.
    let responder = RateLimitedHiBob {
        limit: 5,
        window: std::time::Duration::from_millis(250),
        started: std::time::Instant::now(),
        served: std::sync::Mutex::new((0, 0)),
        throttled: throttled.clone(),
    };
    Mock::given(method("POST")).and(path_regex("^/v1/people/")).respond_with(responder).mount(&hr).await;
    let sources = json!({ "hibob-main": { "kind": "hibob", "service_user_id": "svc", "service_user_token": "t",
        "base_url": format!("{}/v1", hr.uri()), "requests_per_minute": 6000 } });
    let s = stack(sources, &[]).await;
    let events: Vec<LifecycleEvent> = (0..300)
        .map(|i| LifecycleEvent {
            kind: Joiner,
            source_event_id: format!("joined-{i}"),
            ..converge_event(&PersonKey::new("hibob-main", i.to_string()), SourceKind::Hibob, Utc::now())
        })
        .collect();
    for chunk in events.chunks(50) {
        s.send(chunk).await;
    }
    let received = s.drain().await;
    assert!(received >= 300, "{received}");
    assert!(s.queues.dlq_bodies().await.unwrap().is_empty(), "nothing in the DLQ");
    let invited = s.sim.state().users().into_iter().filter(|u| u.scim_active).count();
    assert_eq!(invited, 300, "everyone converged");
    assert!(throttled.load(Ordering::SeqCst) > 0, "the HR API did throttle (the test exercised the 429 path)");
}
