//! invite-retry wired to the same simulator and in-memory ledger as a [`WorkerHarness`], so
//! tests run joiners (and leavers) through the real worker and then invite-retry over the
//! same ledger, with the simulator's clock as invite-retry's "now".

use onepassword_sim::{Operation, RunningSim, SimConfig};
use provisioning::config::Env;
use provisioning::invite_retry::{InviteRetryApp, InviteRetryConfig, Ports, RunSummary};
use provisioning::notify::Notifier;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::worker_harness::WorkerHarness;

/// invite-retry's copy of the worker secret (the worker's own has no Events API).
pub const RETRY_SECRET_ID: &str = "invite-retry-secret";

/// The worker secret as invite-retry reads it: bridge, optional Events API and Slack.
pub fn retry_secret(sim: &RunningSim, events: bool, slack_webhook_url: Option<&str>) -> String {
    let defaults = SimConfig::default();
    let mut secret =
        serde_json::json!({ "bridge_url": sim.scim_url(), "bridge_token": sim.state().config().scim_token.clone() });
    if events {
        secret["events_api_url"] = sim.base_url().into();
        secret["events_api_token"] =
            sim.state().config().events_token.clone().or(defaults.events_token).unwrap_or_default().into();
    }
    if let Some(url) = slack_webhook_url {
        secret["slack_webhook_url"] = url.into();
    }
    secret.to_string()
}

/// Builds invite-retry over `h`'s simulator and ledger. `tweak` adjusts what the
/// environment cannot (e.g. the Events API page size).
pub async fn retry_app(
    h: &WorkerHarness,
    env: &[(&str, &str)],
    secret: String,
    notifier: Option<Arc<dyn Notifier>>,
    tweak: impl FnOnce(&mut InviteRetryConfig),
) -> InviteRetryApp {
    h.secrets.set(RETRY_SECRET_ID, secret);
    let mut pairs = vec![
        ("WORKER_SECRET_ID", RETRY_SECRET_ID),
        ("LEDGER_TABLE", "unused-in-memory"),
        ("ALLOW_HTTP_BRIDGE", "true"),
    ];
    pairs.extend_from_slice(env);
    let mut config = InviteRetryConfig::from_env(&Env::from_pairs(pairs)).expect("invite-retry config");
    tweak(&mut config);
    let state = h.sim.state();
    let mut ports =
        Ports::from_secret(&config, h.secrets.clone(), h.ledger.clone()).await.expect("invite-retry starts");
    ports.clock = Arc::new(move || state.now());
    if let Some(notifier) = notifier {
        ports.notifier = Some(notifier);
    }
    InviteRetryApp::new(config, ports)
}

/// One run with a comfortable deadline.
pub async fn run(app: &InviteRetryApp) -> RunSummary {
    app.handle(Instant::now() + Duration::from_secs(120)).await
}

/// Moves the simulator's clock (and so invite-retry's) past the default 120-hour TTL.
pub fn pass_ttl(h: &WorkerHarness) {
    h.sim.state().advance_clock(Duration::from_secs(121 * 3600));
}

/// `PATCH /Users/{id}` requests in the simulator's operations log.
pub fn patches_of(operations: &[Operation], user_id: &str) -> usize {
    operations.iter().filter(|op| op.method == "PATCH" && op.path.ends_with(&format!("/Users/{user_id}"))).count()
}

/// The real `invite-retry` binary under cargo-lambda's emulator, with moto's Secrets
/// Manager and DynamoDB and the simulator over HTTP.
pub struct BinaryStack {
    pub moto: crate::Moto,
    pub sim: RunningSim,
    pub ledger: provisioning::ledger::DynamoLedger,
    pub job: crate::LambdaFunction,
}

pub const BINARY_SECRET_ID: &str = "provisioning/invite-retry";
pub const BINARY_TABLE: &str = "ledger";

impl BinaryStack {
    /// `events`: whether the secret carries an Events API token.
    pub async fn start(events: bool, extra_env: &[(&str, &str)]) -> anyhow::Result<Self> {
        let moto = crate::Moto::start()?;
        let sdk = moto.sdk_config().await;
        let sim = onepassword_sim::spawn(SimConfig::default(), "127.0.0.1:0".parse()?).await?;
        aws_sdk_secretsmanager::Client::new(&sdk)
            .create_secret()
            .name(BINARY_SECRET_ID)
            .secret_string(retry_secret(&sim, events, None))
            .send()
            .await?;
        let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
        provisioning::ledger::DynamoLedger::create_table_for_tests(&dynamo, BINARY_TABLE).await?;
        let mut env = moto.env();
        for (k, v) in
            [("WORKER_SECRET_ID", BINARY_SECRET_ID), ("LEDGER_TABLE", BINARY_TABLE), ("ALLOW_HTTP_BRIDGE", "true")]
                .iter()
                .chain(extra_env)
        {
            env.push((k.to_string(), v.to_string()));
        }
        let job = crate::LambdaFunction::start("invite-retry", &env)?;
        Ok(BinaryStack { ledger: provisioning::ledger::DynamoLedger::new(dynamo, BINARY_TABLE), moto, sim, job })
    }

    /// Invokes the function with an EventBridge scheduled event.
    pub async fn tick(&self) -> anyhow::Result<serde_json::Value> {
        self.job.invoke(&scheduled_event()).await
    }
}

pub fn scheduled_event() -> serde_json::Value {
    serde_json::json!({
        "version": "0", "id": "e1", "detail-type": "Scheduled Event", "source": "aws.events",
        "account": "123456789012", "time": "2026-11-22T06:00:00Z", "region": "us-east-1",
        "resources": [], "detail": {}
    })
}
