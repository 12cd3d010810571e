//! Everything on one machine: the 1Password simulator (or a real bridge), the ingest
//! handler behind a real HTTP listener, a queue, the worker draining it, the due-action
//! sweep and invite-retry. With the simulator, every function reads its clock, so the demo
//! can let days pass.
//!
//! In-memory adapters by default; `--aws` swaps in moto's server (SQS FIFO + DLQ, Secrets
//! Manager, DynamoDB) over the real AWS protocols.

use anyhow::{Context, Result};
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use dev_support::sqs_message;
use onepassword_sim::{RunningSim, SimConfig};
use provisioning::clock::Clock;
use provisioning::config::Env;
use provisioning::enrich::InMemoryEnricher;
use provisioning::ingest::{IngestApp, IngestConfig, SystemClock};
use provisioning::invite_retry;
use provisioning::invite_retry::{InviteRetryApp, InviteRetryConfig, RunSummary};
use provisioning::ledger::{DynamoLedger, InMemoryLedger, Ledger};
use provisioning::notify::InMemoryNotifier;
use provisioning::queue::{EventQueue, InMemoryEventQueue, QueuedEvent, SqsEventQueue};
use provisioning::secrets::{AwsSecretSource, InMemorySecretSource, SecretSource};
use provisioning::sweep::{self, DueSweep, SweepSettings, SweepSummary};
use provisioning::worker::{self, WorkerApp, WorkerConfig};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const CONNECTIONS_SECRET_ID: &str = "local/connections";
pub const WORKER_SECRET_ID: &str = "local/worker";
const LEDGER_TABLE: &str = "local-ledger";
/// Deliveries of one message before it is parked in the local DLQ (the template's default).
const MAX_RECEIVES: u32 = 5;
/// The most SQS hands the worker at once (the template's `BatchSize`).
const BATCH_SIZE: usize = 10;

/// Groups follow the department; everyone is in Employees.
pub const MAPPING_RULES: &str = r#"{"default_groups":["Employees"],"rules":[
  {"name":"engineering","when":{"department":["Engineering"]},"groups":["Engineering"]},
  {"name":"finance","when":{"department":["Finance"]},"groups":["Finance"]},
  {"name":"support","when":{"department":["Support"]},"groups":["Support"]}]}"#;

pub struct Options {
    pub aws: bool,
    pub port: u16,
    /// A real SCIM bridge instead of the simulator.
    pub bridge: Option<(String, String)>,
    pub connections: serde_json::Value,
}

pub struct Stack {
    pub ingest_url: String,
    pub sim: Option<RunningSim>,
    /// The stand-in HR/IdP directory the worker enriches thin webhooks from.
    pub hr: Arc<InMemoryEnricher>,
    pub notifications: Arc<InMemoryNotifier>,
    pub dead_letters: Mutex<Vec<String>>,
    pub scim_url: String,
    pub scim_token: String,
    worker: WorkerApp,
    invites: InviteRetryApp,
    due_sweep: DueSweep,
    queue: Queue,
    next_id: Mutex<u64>,
}

/// The SCIM bridge the worker and invite-retry talk to.
struct Bridge {
    /// Only when no bridge was given; the demo needs its clock and outbox.
    sim: Option<RunningSim>,
    scim_url: String,
    scim_token: String,
}

/// What the stack runs on: in-memory adapters or moto's.
struct Adapters {
    secrets: Arc<dyn SecretSource>,
    ledger: Arc<dyn Ledger>,
    /// Where ingest sends events.
    event_queue: Arc<dyn EventQueue>,
    /// The same queue as the worker's side sees it.
    queue: Queue,
}

enum Queue {
    Memory(MemoryQueue),
    Moto { queues: dev_support::FifoQueues, _moto: dev_support::Moto },
}

/// The in-memory queue plus what SQS would add: failed messages come back, counted, until
/// the redrive limit.
struct MemoryQueue {
    queue: Arc<InMemoryEventQueue>,
    redeliver: Mutex<VecDeque<(QueuedEvent, u32)>>,
}

/// The three functions, built as Lambda would build them, and the stand-ins they share
/// with the demo.
struct Apps {
    ingest: IngestApp,
    worker: WorkerApp,
    invites: InviteRetryApp,
    due_sweep: DueSweep,
    hr: Arc<InMemoryEnricher>,
    notifications: Arc<InMemoryNotifier>,
}

/// What one batch did to the queue.
struct Round {
    succeeded: usize,
    failed: usize,
}

impl Stack {
    pub async fn start(options: Options) -> Result<Self> {
        let bridge = Bridge::start(options.bridge).await?;
        let worker_secret = bridge.worker_secret();
        let adapters = if options.aws {
            Adapters::on_moto(&options.connections, &worker_secret).await?
        } else {
            Adapters::in_memory(&options.connections, &worker_secret)
        };
        let apps = Apps::build(&bridge, &adapters).await?;
        let ingest_url = listen(options.port, apps.ingest).await?;
        Ok(Stack {
            ingest_url,
            sim: bridge.sim,
            hr: apps.hr,
            notifications: apps.notifications,
            dead_letters: Mutex::new(Vec::new()),
            scim_url: bridge.scim_url,
            scim_token: bridge.scim_token,
            worker: apps.worker,
            invites: apps.invites,
            due_sweep: apps.due_sweep,
            queue: adapters.queue,
            next_id: Mutex::new(0),
        })
    }

    /// Hands the worker batches until the queue is empty (failed messages come back, up to
    /// the redrive limit). Returns how many messages were processed successfully.
    pub async fn drain(&self) -> Result<usize> {
        let mut done = 0;
        for _ in 0..(MAX_RECEIVES * 20) {
            let round = self.pump_once().await?;
            done += round.succeeded;
            if round.succeeded + round.failed == 0 {
                return Ok(done);
            }
        }
        Ok(done)
    }

    async fn pump_once(&self) -> Result<Round> {
        match &self.queue {
            Queue::Memory(memory) => self.pump_memory(memory).await,
            Queue::Moto { queues, .. } => self.pump_moto(queues).await,
        }
    }

    async fn pump_memory(&self, memory: &MemoryQueue) -> Result<Round> {
        let batch = memory.next_batch();
        if batch.is_empty() {
            return Ok(Round { succeeded: 0, failed: 0 });
        }
        let ids: Vec<String> = batch.iter().map(|_| self.message_id()).collect();
        let records = batch
            .iter()
            .zip(&ids)
            .map(|((queued, _), id)| Ok(sqs_message(id, &queued.group_id, &serde_json::to_string(&queued.event)?)))
            .collect::<Result<Vec<_>>>()?;
        let failed = self.invoke_worker(records).await;
        memory.settle(batch, &ids, &failed, &self.dead_letters);
        Ok(Round { succeeded: ids.len() - failed.len(), failed: failed.len() })
    }

    async fn pump_moto(&self, queues: &dev_support::FifoQueues) -> Result<Round> {
        let round = queues
            .pump_once(|batch| async move {
                let event: SqsEvent = serde_json::from_value(batch)?;
                let failed = self.invoke_worker(event.records).await;
                Ok(batch_response(&failed))
            })
            .await?;
        Ok(Round { succeeded: round.deleted, failed: round.failed })
    }

    async fn invoke_worker(&self, records: Vec<SqsMessage>) -> Vec<String> {
        let mut event = SqsEvent::default();
        event.records = records;
        let response = self.worker.handle(event, Instant::now() + Duration::from_secs(60)).await;
        response.batch_item_failures.into_iter().map(|f| f.item_identifier).collect()
    }

    fn message_id(&self) -> String {
        let mut next = self.next_id.lock().unwrap_or_else(|p| p.into_inner());
        *next += 1;
        format!("local-{next}")
    }

    pub async fn run_invite_retry(&self) -> RunSummary {
        self.invites.handle(Instant::now() + Duration::from_secs(60)).await
    }

    /// What the scheduled sweep does: every due action whose time has come becomes a
    /// converge message on the queue.
    pub async fn run_due_sweep(&self) -> SweepSummary {
        self.due_sweep.run(Instant::now() + Duration::from_secs(60)).await
    }
}

impl Bridge {
    /// The simulator's clock, which the demo moves; the system clock with a real bridge.
    fn clock(&self) -> Arc<dyn Clock> {
        match &self.sim {
            Some(sim) => {
                let state = sim.state();
                Arc::new(move || state.now())
            }
            None => Arc::new(SystemClock),
        }
    }

    /// The given bridge, or a fresh simulator when none is given.
    async fn start(given: Option<(String, String)>) -> Result<Self> {
        match given {
            Some((scim_url, scim_token)) => Ok(Bridge { sim: None, scim_url, scim_token }),
            None => {
                let sim = onepassword_sim::spawn(SimConfig::default(), "127.0.0.1:0".parse()?).await?;
                let scim_url = sim.scim_url();
                Ok(Bridge { sim: Some(sim), scim_url, scim_token: SimConfig::default().scim_token })
            }
        }
    }

    /// The worker secret; with the simulator it also names its Events API, which
    /// invite-retry reads sign-ins from.
    fn worker_secret(&self) -> serde_json::Value {
        let mut secret = serde_json::json!({ "bridge_url": self.scim_url, "bridge_token": self.scim_token });
        if let Some(sim) = &self.sim {
            secret["events_api_url"] = sim.base_url().into();
            secret["events_api_token"] = SimConfig::default().events_token.into();
        }
        secret
    }
}

impl Adapters {
    async fn on_moto(connections: &serde_json::Value, worker_secret: &serde_json::Value) -> Result<Self> {
        let moto = dev_support::Moto::start().context("starting moto (run scripts/setup first)")?;
        let sdk = moto.sdk_config().await;
        let sm = aws_sdk_secretsmanager::Client::new(&sdk);
        for (id, value) in
            [(CONNECTIONS_SECRET_ID, connections.to_string()), (WORKER_SECRET_ID, worker_secret.to_string())]
        {
            sm.create_secret().name(id).secret_string(value).send().await?;
        }
        let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
        DynamoLedger::create_table_for_tests(&dynamo, LEDGER_TABLE).await?;
        let queues = dev_support::FifoQueues::create(&sdk, "local-events", MAX_RECEIVES).await?;
        Ok(Adapters {
            event_queue: Arc::new(SqsEventQueue::from_sdk_config(&sdk, queues.queue_url.clone())),
            secrets: Arc::new(AwsSecretSource::from_sdk_config(&sdk)),
            ledger: Arc::new(DynamoLedger::new(dynamo, LEDGER_TABLE)),
            queue: Queue::Moto { queues, _moto: moto },
        })
    }

    fn in_memory(connections: &serde_json::Value, worker_secret: &serde_json::Value) -> Self {
        let secrets = InMemorySecretSource::new();
        secrets.set(CONNECTIONS_SECRET_ID, connections.to_string());
        secrets.set(WORKER_SECRET_ID, worker_secret.to_string());
        let queue = Arc::new(InMemoryEventQueue::new());
        Adapters {
            secrets: Arc::new(secrets),
            ledger: Arc::new(InMemoryLedger::new()),
            event_queue: queue.clone(),
            queue: Queue::Memory(MemoryQueue { queue, redeliver: Mutex::new(VecDeque::new()) }),
        }
    }
}

impl Apps {
    async fn build(bridge: &Bridge, adapters: &Adapters) -> Result<Self> {
        let env = lambda_env(&bridge.scim_url);
        let ingest_ports = provisioning::ingest::Ports {
            queue: adapters.event_queue.clone(),
            secrets: adapters.secrets.clone(),
            clock: Arc::new(SystemClock),
        };
        let ingest = IngestApp::new(IngestConfig::from_env(&env)?, ingest_ports);
        let hr = Arc::new(InMemoryEnricher::new());
        let notifications = Arc::new(InMemoryNotifier::default());
        let worker = build_worker(&env, adapters, bridge, hr.clone(), notifications.clone()).await?;
        let invites = build_invite_retry(&env, adapters, bridge, notifications.clone()).await?;
        let sweep_ports = sweep::Ports {
            ledger: adapters.ledger.clone(),
            queue: adapters.event_queue.clone(),
            clock: bridge.clock(),
        };
        let due_sweep = DueSweep::new(sweep_ports, SweepSettings::default());
        Ok(Apps { ingest, worker, invites, due_sweep, hr, notifications })
    }
}

/// The environment all three functions read, as the template would set it.
fn lambda_env(scim_url: &str) -> Env {
    let allow_http = if scim_url.starts_with("http://") { "true" } else { "false" };
    Env::from_pairs([
        ("CONNECTIONS_SECRET_ID", CONNECTIONS_SECRET_ID),
        ("WORKER_SECRET_ID", WORKER_SECRET_ID),
        ("LEDGER_TABLE", LEDGER_TABLE),
        ("MAPPING_RULES", MAPPING_RULES),
        ("ALLOW_HTTP_BRIDGE", allow_http),
    ])
}

/// The worker reads people back from the stand-in HR directory and reports to the local
/// notifier, so the demo can set up the one and show the other; it follows the bridge's
/// clock.
async fn build_worker(
    env: &Env,
    adapters: &Adapters,
    bridge: &Bridge,
    hr: Arc<InMemoryEnricher>,
    notifications: Arc<InMemoryNotifier>,
) -> Result<WorkerApp> {
    let config = WorkerConfig::from_env(env)?;
    let mut ports = worker::Ports::from_secret(&config, adapters.secrets.clone(), adapters.ledger.clone()).await?;
    ports.enricher = hr;
    ports.notifier = Some(notifications);
    ports.clock = bridge.clock();
    Ok(WorkerApp::new(config, ports))
}

/// With the simulator, invite-retry follows its clock, so the demo can let days pass.
async fn build_invite_retry(
    env: &Env,
    adapters: &Adapters,
    bridge: &Bridge,
    notifications: Arc<InMemoryNotifier>,
) -> Result<InviteRetryApp> {
    let config = InviteRetryConfig::from_env(env)?;
    let mut ports =
        invite_retry::Ports::from_secret(&config, adapters.secrets.clone(), adapters.ledger.clone()).await?;
    ports.notifier = Some(notifications);
    ports.clock = bridge.clock();
    Ok(InviteRetryApp::new(config, ports))
}

/// Serves ingest on loopback and returns its base URL (port 0 picks a free one).
async fn listen(port: u16, ingest: IngestApp) -> Result<String> {
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .with_context(|| format!("cannot listen on 127.0.0.1:{port}"))?;
    let ingest_url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(crate::http::serve(listener, ingest));
    Ok(ingest_url)
}

/// The worker's answer as Lambda returns it to the event source mapping.
fn batch_response(failed: &[String]) -> serde_json::Value {
    let failures: Vec<serde_json::Value> =
        failed.iter().map(|id| serde_json::json!({ "itemIdentifier": id })).collect();
    serde_json::json!({ "batchItemFailures": failures })
}

impl MemoryQueue {
    /// Redeliveries first, then new messages, as many as fit in one batch.
    fn next_batch(&self) -> Vec<(QueuedEvent, u32)> {
        let mut batch: Vec<(QueuedEvent, u32)> = {
            let mut again = self.redeliver.lock().unwrap_or_else(|p| p.into_inner());
            let n = again.len().min(BATCH_SIZE);
            again.drain(..n).collect()
        };
        batch.extend(self.queue.receive(BATCH_SIZE - batch.len()).into_iter().map(|q| (q, 0)));
        batch
    }

    /// Failed messages come back for another delivery, or go to the dead letters once they
    /// have used up their receives; the rest are done.
    fn settle(
        &self,
        batch: Vec<(QueuedEvent, u32)>,
        ids: &[String],
        failed: &[String],
        dead_letters: &Mutex<Vec<String>>,
    ) {
        let mut again = self.redeliver.lock().unwrap_or_else(|p| p.into_inner());
        for ((queued, receives), id) in batch.into_iter().zip(ids) {
            if failed.contains(id) {
                if receives + 1 >= MAX_RECEIVES {
                    dead_letters
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(format!("{} {}", queued.event.kind, queued.event.person));
                } else {
                    again.push_back((queued, receives + 1));
                }
            }
        }
    }
}
