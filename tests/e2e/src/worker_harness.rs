//! A worker wired to the 1Password simulator over real HTTP, with in-memory ledger and
//! secrets (the moto-backed variants live in their own tests).

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use chrono::{DateTime, Duration as ChronoDuration, TimeZone, Utc};
pub use dev_support::sqs_message;
use onepassword_sim::{RunningSim, SimConfig};
use provisioning::config::Env;
use provisioning::enrich::InMemoryEnricher;
use provisioning::ledger::InMemoryLedger;
use provisioning::secrets::InMemorySecretSource;
use provisioning::worker::{Ports, WorkerApp, WorkerConfig};
use provisioning::{Attributes, EventKind, LifecycleEvent, PersonKey, SourceKind};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const WORKER_SECRET_ID: &str = "worker-secret";

/// Rules used by the worker tests: everyone is in Employees; Engineering and Finance
/// follow the department.
pub const RULES: &str = r#"{"default_groups":["Employees"],"rules":[
    {"name":"engineering","when":{"department":["Engineering"]},"groups":["Engineering"]},
    {"name":"finance","when":{"department":["Finance"]},"groups":["Finance"]}]}"#;

pub fn worker_secret(sim: &RunningSim, token: &str) -> String {
    serde_json::json!({ "bridge_url": sim.scim_url(), "bridge_token": token }).to_string()
}

pub struct WorkerHarness {
    pub sim: RunningSim,
    pub app: WorkerApp,
    pub secrets: Arc<InMemorySecretSource>,
    pub ledger: Arc<InMemoryLedger>,
    next_message: std::sync::atomic::AtomicU64,
}

impl WorkerHarness {
    pub async fn start(env: &[(&str, &str)]) -> Self {
        Self::start_with(SimConfig::default(), env).await
    }

    pub async fn start_with(sim_config: SimConfig, env: &[(&str, &str)]) -> Self {
        Self::start_full(sim_config, env, None).await
    }

    /// With a stand-in source API (the HR record the worker reads back).
    pub async fn start_with_source(env: &[(&str, &str)], source: Arc<InMemoryEnricher>) -> Self {
        Self::start_full(SimConfig::default(), env, Some(source)).await
    }

    async fn start_full(sim_config: SimConfig, env: &[(&str, &str)], source: Option<Arc<InMemoryEnricher>>) -> Self {
        let token = sim_config.scim_token.clone();
        let sim =
            onepassword_sim::spawn(sim_config, "127.0.0.1:0".parse().expect("addr")).await.expect("simulator starts");
        let secrets = Arc::new(InMemorySecretSource::new());
        secrets.set(WORKER_SECRET_ID, worker_secret(&sim, &token));
        let ledger = Arc::new(InMemoryLedger::new());
        let mut pairs = vec![
            ("WORKER_SECRET_ID", WORKER_SECRET_ID),
            ("LEDGER_TABLE", "unused-in-memory"),
            ("ALLOW_HTTP_BRIDGE", "true"),
            ("MAPPING_RULES", RULES),
        ];
        pairs.extend_from_slice(env);
        let config = WorkerConfig::from_env(&Env::from_pairs(pairs)).expect("worker config");
        let mut ports = Ports::from_secret(&config, secrets.clone(), ledger.clone()).await.expect("worker starts");
        if let Some(source) = source {
            ports.enricher = source;
        }
        let app = WorkerApp::new(config, ports);
        WorkerHarness { sim, app, secrets, ledger, next_message: 0.into() }
    }

    /// Delivers events as one SQS batch; returns the ids reported failed.
    pub async fn deliver(&self, events: &[LifecycleEvent]) -> Vec<String> {
        let records = events.iter().map(|event| self.message(event)).collect();
        self.deliver_messages(records, Duration::from_secs(30)).await
    }

    pub async fn deliver_messages(&self, records: Vec<SqsMessage>, budget: Duration) -> Vec<String> {
        let mut batch = SqsEvent::default();
        batch.records = records;
        let response = self.app.handle(batch, Instant::now() + budget).await;
        response.batch_item_failures.into_iter().map(|f| f.item_identifier).collect()
    }

    pub fn message(&self, event: &LifecycleEvent) -> SqsMessage {
        let n = self.next_message.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        sqs_message(&format!("m{n}"), &event.person.to_string(), &serde_json::to_string(event).expect("json"))
    }

    /// SCIM requests the simulator has seen since the last call (and forgets them).
    pub fn take_scim_calls(&self) -> Vec<onepassword_sim::Operation> {
        let calls = self.sim.state().operations().into_iter().filter(|op| op.path.starts_with("/scim")).collect();
        self.sim.state().clear_operations();
        calls
    }
}

pub fn base_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).single().expect("valid time")
}

/// A complete event for person `id`, effective `minutes` after the base time.
pub fn event(kind: EventKind, id: &str, email: &str, department: &str, minutes: i64) -> LifecycleEvent {
    let (given, family) =
        email.split_once('@').map(|(l, _)| l).unwrap_or("x").split_once('.').unwrap_or(("Pat", "Doe"));
    LifecycleEvent {
        version: 1,
        kind,
        person: PersonKey::new("hr", id),
        source_kind: SourceKind::Generic,
        source_event_id: format!("{kind}-{id}-{minutes}"),
        effective_at: base_time() + ChronoDuration::minutes(minutes),
        received_at: base_time() + ChronoDuration::minutes(minutes),
        attributes: Attributes {
            work_email: Some(email.to_owned()),
            given_name: Some(capitalise(given)),
            family_name: Some(capitalise(family)),
            department: Some(department.to_owned()),
            ..Default::default()
        },
        immediate: false,
        requeued: 0,
    }
}

fn capitalise(s: &str) -> String {
    let mut chars = s.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}
