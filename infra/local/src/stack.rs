//! Everything on one machine: the 1Password simulator (or a real bridge), the ingest
//! handler behind a real HTTP listener, a queue, the worker draining it and invite-retry.
//!
//! In-memory adapters by default; `--aws` swaps in moto's server (SQS FIFO + DLQ, Secrets
//! Manager, DynamoDB) over the real AWS protocols.

use anyhow::{Context, Result};
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use dev_support::sqs_message;
use onepassword_sim::{RunningSim, SimConfig};
use provisioning::config::Env;
use provisioning::enrich::InMemoryEnricher;
use provisioning::ingest::{IngestApp, IngestConfig, SystemClock};
use provisioning::invite_retry;
use provisioning::invite_retry::{InviteRetryApp, InviteRetryConfig, RunSummary};
use provisioning::ledger::{DynamoLedger, InMemoryLedger, Ledger};
use provisioning::notify::InMemoryNotifier;
use provisioning::queue::{EventQueue, InMemoryEventQueue, QueuedEvent, SqsEventQueue};
use provisioning::secrets::{AwsSecretSource, InMemorySecretSource, SecretSource};
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

/// What the stack runs on: in-memory adapters or moto's.
type Adapters = (Arc<dyn SecretSource>, Arc<dyn Ledger>, Queue, Arc<dyn EventQueue>);

enum Queue {
    Memory { queue: Arc<InMemoryEventQueue>, redeliver: Mutex<VecDeque<(QueuedEvent, u32)>> },
    Moto { queues: dev_support::FifoQueues, _moto: dev_support::Moto },
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
    queue: Queue,
    next_id: Mutex<u64>,
}

impl Stack {
    pub async fn start(options: Options) -> Result<Self> {
        let sim = match &options.bridge {
            Some(_) => None,
            None => Some(onepassword_sim::spawn(SimConfig::default(), "127.0.0.1:0".parse()?).await?),
        };
        let (scim_url, scim_token) = match (&options.bridge, &sim) {
            (Some((url, token)), _) => (url.clone(), token.clone()),
            (None, Some(sim)) => (sim.scim_url(), SimConfig::default().scim_token),
            (None, None) => unreachable!("a simulator runs when no bridge is given"),
        };
        let mut worker_secret = serde_json::json!({ "bridge_url": scim_url, "bridge_token": scim_token });
        if let Some(sim) = &sim {
            worker_secret["events_api_url"] = sim.base_url().into();
            worker_secret["events_api_token"] = SimConfig::default().events_token.into();
        }

        let (secrets, ledger, queue, event_queue): Adapters = if options.aws {
            let moto = dev_support::Moto::start().context("starting moto (run scripts/setup first)")?;
            let sdk = moto.sdk_config().await;
            let sm = aws_sdk_secretsmanager::Client::new(&sdk);
            for (id, value) in [
                (CONNECTIONS_SECRET_ID, options.connections.to_string()),
                (WORKER_SECRET_ID, worker_secret.to_string()),
            ] {
                sm.create_secret().name(id).secret_string(value).send().await?;
            }
            let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
            DynamoLedger::create_table_for_tests(&dynamo, LEDGER_TABLE).await?;
            let queues = dev_support::FifoQueues::create(&sdk, "local-events", MAX_RECEIVES).await?;
            let event_queue = Arc::new(SqsEventQueue::from_sdk_config(&sdk, queues.queue_url.clone()));
            (
                Arc::new(AwsSecretSource::from_sdk_config(&sdk)),
                Arc::new(DynamoLedger::new(dynamo, LEDGER_TABLE)),
                Queue::Moto { queues, _moto: moto },
                event_queue,
            )
        } else {
            let secrets = InMemorySecretSource::new();
            secrets.set(CONNECTIONS_SECRET_ID, options.connections.to_string());
            secrets.set(WORKER_SECRET_ID, worker_secret.to_string());
            let queue = Arc::new(InMemoryEventQueue::new());
            (
                Arc::new(secrets),
                Arc::new(InMemoryLedger::new()),
                Queue::Memory { queue: queue.clone(), redeliver: Mutex::new(VecDeque::new()) },
                queue,
            )
        };

        let allow_http = if scim_url.starts_with("http://") { "true" } else { "false" };
        let env = Env::from_pairs([
            ("CONNECTIONS_SECRET_ID", CONNECTIONS_SECRET_ID),
            ("WORKER_SECRET_ID", WORKER_SECRET_ID),
            ("LEDGER_TABLE", LEDGER_TABLE),
            ("MAPPING_RULES", MAPPING_RULES),
            ("ALLOW_HTTP_BRIDGE", allow_http),
        ]);
        let ingest_ports =
            provisioning::ingest::Ports { queue: event_queue, secrets: secrets.clone(), clock: Arc::new(SystemClock) };
        let ingest = IngestApp::new(IngestConfig::from_env(&env)?, ingest_ports);
        let hr = Arc::new(InMemoryEnricher::new());
        let notifications = Arc::new(InMemoryNotifier::default());
        let worker_config = WorkerConfig::from_env(&env)?;
        let mut worker_ports = worker::Ports::from_secret(&worker_config, secrets.clone(), ledger.clone()).await?;
        worker_ports.enricher = hr.clone();
        worker_ports.notifier = Some(notifications.clone());
        let worker = WorkerApp::new(worker_config, worker_ports);
        let retry_config = InviteRetryConfig::from_env(&env)?;
        let mut retry_ports = invite_retry::Ports::from_secret(&retry_config, secrets, ledger).await?;
        retry_ports.notifier = Some(notifications.clone());
        if let Some(sim) = &sim {
            let state = sim.state();
            retry_ports.clock = Arc::new(move || state.now());
        }
        let invites = InviteRetryApp::new(retry_config, retry_ports);

        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], options.port)))
            .await
            .with_context(|| format!("cannot listen on 127.0.0.1:{}", options.port))?;
        let ingest_url = format!("http://{}", listener.local_addr()?);
        tokio::spawn(crate::http::serve(listener, ingest));

        Ok(Stack {
            ingest_url,
            sim,
            hr,
            notifications,
            dead_letters: Mutex::new(Vec::new()),
            scim_url,
            scim_token,
            worker,
            invites,
            queue,
            next_id: Mutex::new(0),
        })
    }

    /// Hands the worker batches until the queue is empty (failed messages come back, up to
    /// the redrive limit). Returns how many messages were processed successfully.
    pub async fn drain(&self) -> Result<usize> {
        let mut done = 0;
        for _ in 0..(MAX_RECEIVES * 20) {
            let round = self.pump_once().await?;
            done += round.0;
            if round.0 + round.1 == 0 {
                return Ok(done);
            }
        }
        Ok(done)
    }

    /// One batch: (succeeded, failed).
    async fn pump_once(&self) -> Result<(usize, usize)> {
        match &self.queue {
            Queue::Memory { queue, redeliver } => {
                let mut batch: Vec<(QueuedEvent, u32)> = {
                    let mut again = redeliver.lock().unwrap_or_else(|p| p.into_inner());
                    let n = again.len().min(10);
                    again.drain(..n).collect()
                };
                batch.extend(queue.receive(10 - batch.len()).into_iter().map(|q| (q, 0)));
                if batch.is_empty() {
                    return Ok((0, 0));
                }
                let ids: Vec<String> = batch.iter().map(|_| self.message_id()).collect();
                let records = batch
                    .iter()
                    .zip(&ids)
                    .map(|((queued, _), id)| {
                        Ok(sqs_message(id, &queued.group_id, &serde_json::to_string(&queued.event)?))
                    })
                    .collect::<Result<Vec<_>>>()?;
                let failed = self.invoke_worker(records).await;
                let mut again = redeliver.lock().unwrap_or_else(|p| p.into_inner());
                for ((queued, receives), id) in batch.into_iter().zip(&ids) {
                    if failed.contains(id) {
                        if receives + 1 >= MAX_RECEIVES {
                            self.dead_letters
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .push(format!("{} {}", queued.event.kind, queued.event.person));
                        } else {
                            again.push_back((queued, receives + 1));
                        }
                    }
                }
                Ok((ids.len() - failed.len(), failed.len()))
            }
            Queue::Moto { queues, .. } => {
                let round = queues
                    .pump_once(|batch| async move {
                        let event: SqsEvent = serde_json::from_value(batch)?;
                        let failed = self.invoke_worker(event.records).await;
                        Ok(serde_json::json!({ "batchItemFailures": failed.iter().map(|id| serde_json::json!({"itemIdentifier": id})).collect::<Vec<_>>() }))
                    })
                    .await?;
                Ok((round.deleted, round.failed))
            }
        }
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
}
