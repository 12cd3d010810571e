//! Harness for tests that use real parts: moto's server for the AWS APIs and cargo-lambda's
//! Runtime API emulator in front of the real, prebuilt function binaries.
//!
//! Every process started here is killed when its guard drops, so a failing test leaves
//! nothing running.

pub mod invite_retry_harness;
pub mod worker_harness;

use anyhow::{Context, Result, bail};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("workspace root")
}

/// A tool installed by `scripts/setup` into one of the repo's virtualenvs.
pub fn venv_tool(venv: &str, tool: &str) -> Result<PathBuf> {
    let path = workspace_root().join(".venv").join(venv).join("bin").join(tool);
    if !path.exists() {
        bail!("{} not found: run scripts/setup first", path.display());
    }
    Ok(path)
}

/// A port that was free a moment ago. Tools that cannot bind port 0 themselves need this.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free loopback port")
}

pub fn wait_for_port(addr: SocketAddr, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    bail!("nothing listened on {addr} within {timeout:?}")
}

/// Kills the child process when dropped.
pub struct ChildGuard {
    child: Child,
    name: String,
}

impl ChildGuard {
    pub fn spawn(name: &str, command: &mut Command) -> Result<Self> {
        let child = command.stdin(Stdio::null()).spawn().with_context(|| format!("starting {name}"))?;
        Ok(ChildGuard { child, name: name.to_owned() })
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Err(error) = self.child.kill() {
            eprintln!("could not stop {}: {error}", self.name);
        }
        let _ = self.child.wait();
    }
}

/// moto's server: SQS, Secrets Manager and DynamoDB over the real AWS wire protocols.
pub struct Moto {
    pub endpoint: String,
    _process: ChildGuard,
}

impl Moto {
    pub fn start() -> Result<Self> {
        let port = free_port();
        let mut command = Command::new(venv_tool("aws", "moto_server")?);
        command.args(["-H", "127.0.0.1", "-p", &port.to_string()]).stdout(Stdio::null()).stderr(Stdio::null());
        let process = ChildGuard::spawn("moto_server", &mut command)?;
        wait_for_port(SocketAddr::from(([127, 0, 0, 1], port)), Duration::from_secs(20))?;
        Ok(Moto { endpoint: format!("http://127.0.0.1:{port}"), _process: process })
    }

    /// The variables that point the AWS SDK (in our binaries) at this server.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", self.endpoint.as_str()),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_REGION", "us-east-1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    /// An SDK configuration for clients inside the test process.
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(&self.endpoint)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_sqs::config::Credentials::new("testing", "testing", None, None, "moto"))
            .load()
            .await
    }
}

/// Makes sure the three function binaries are built (once per test process) and returns
/// their directory.
pub fn function_binaries() -> Result<PathBuf> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let root = workspace_root();
            let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
                .current_dir(&root)
                // The same selection as `cargo test --workspace` (all targets, so the same
                // features): a no-op after scripts/test's build, not a second build.
                .args(["build", "--quiet", "--workspace", "--all-targets"])
                .status()
                .map_err(|e| format!("running cargo build: {e}"))?;
            if !status.success() {
                return Err(format!("cargo build of the function binaries failed: {status}"));
            }
            let target = std::env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| root.join("target"));
            Ok(target.join("debug"))
        })
        .clone()
        .map_err(anyhow::Error::msg)
}

/// One real function binary, polling its own instance of cargo-lambda's Runtime API
/// emulator (which also emulates the Function URL).
pub struct LambdaFunction {
    pub emulator: String,
    pub log_path: PathBuf,
    http: reqwest::Client,
    _function: ChildGuard,
    _emulator: ChildGuard,
}

impl LambdaFunction {
    pub fn start(binary: &str, env: &[(String, String)]) -> Result<Self> {
        let binary_path = function_binaries()?.join(binary);
        let port = free_port();
        let mut emulator = Command::new(venv_tool("aws", "cargo-lambda")?);
        emulator
            .args(["lambda", "watch", "--only-lambda-apis", "-A", "127.0.0.1", "-P", &port.to_string()])
            .current_dir(workspace_root())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let emulator = ChildGuard::spawn("cargo lambda watch", &mut emulator)?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        wait_for_port(addr, Duration::from_secs(30))?;

        let log_path = std::env::temp_dir().join(format!("{binary}-{port}.log"));
        let log = std::fs::File::create(&log_path)?;
        let mut function = Command::new(&binary_path);
        function
            .env("AWS_LAMBDA_RUNTIME_API", format!("http://127.0.0.1:{port}/.rt"))
            .env("AWS_LAMBDA_FUNCTION_NAME", "_")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_REGION", "us-east-1")
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(log.try_clone()?)
            .stderr(log);
        let function = ChildGuard::spawn(binary, &mut function)?;
        Ok(LambdaFunction {
            emulator: format!("http://127.0.0.1:{port}"),
            log_path,
            http: reqwest::Client::builder().timeout(Duration::from_secs(60)).build()?,
            _function: function,
            _emulator: emulator,
        })
    }

    /// Invokes the function synchronously, as the Lambda Invoke API does.
    pub async fn invoke(&self, payload: &serde_json::Value) -> Result<serde_json::Value> {
        let url = format!("{}/2015-03-31/functions/_/invocations", self.emulator);
        let response = self.http.post(url).json(payload).send().await?;
        let status = response.status();
        let body = response.text().await?;
        if !status.is_success() {
            bail!("invocation failed with {status}: {body}");
        }
        serde_json::from_str(&body).with_context(|| format!("invocation answered non-JSON: {body}"))
    }

    /// [`Self::invoke`] taking its payload by value, for use as a callback.
    pub async fn invoke_owned(&self, payload: serde_json::Value) -> Result<serde_json::Value> {
        self.invoke(&payload).await
    }

    /// The Function URL for `path` (starting with `/`).
    pub fn function_url(&self, path: &str) -> String {
        format!("{}/lambda-url/_{path}", self.emulator)
    }

    /// Everything the function wrote to stdout and stderr so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

/// A FIFO queue and its DLQ in moto, and a pump that feeds the worker the way Lambda's
/// event source mapping does: batches of up to ten, failed items left for redelivery,
/// successes deleted, the DLQ after `maxReceiveCount` receives.
pub struct FifoQueues {
    pub client: aws_sdk_sqs::Client,
    pub queue_url: String,
    pub dlq_url: String,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PumpRound {
    pub received: usize,
    pub deleted: usize,
    pub failed: usize,
}

impl FifoQueues {
    pub async fn create(sdk: &aws_config::SdkConfig, name: &str, max_receive_count: u32) -> Result<Self> {
        use aws_sdk_sqs::types::QueueAttributeName as A;
        let client = aws_sdk_sqs::Client::new(sdk);
        let dlq_url = client
            .create_queue()
            .queue_name(format!("{name}-dlq.fifo"))
            .attributes(A::FifoQueue, "true")
            .send()
            .await?
            .queue_url
            .context("dlq url")?;
        let dlq_arn = client
            .get_queue_attributes()
            .queue_url(&dlq_url)
            .attribute_names(A::QueueArn)
            .send()
            .await?
            .attributes
            .and_then(|a| a.get(&A::QueueArn).cloned())
            .context("dlq arn")?;
        let redrive =
            serde_json::json!({ "deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive_count.to_string() });
        let queue_url = client
            .create_queue()
            .queue_name(format!("{name}.fifo"))
            .attributes(A::FifoQueue, "true")
            .attributes(A::VisibilityTimeout, "360")
            .attributes(A::RedrivePolicy, redrive.to_string())
            .send()
            .await?
            .queue_url
            .context("queue url")?;
        Ok(FifoQueues { client, queue_url, dlq_url })
    }

    /// Receives one batch and hands it to `invoke` as a Lambda SQS event (JSON); deletes
    /// what succeeded and makes failures visible again at once (standing in for the
    /// visibility timeout running out).
    pub async fn pump_once<F, Fut>(&self, invoke: F) -> Result<PumpRound>
    where
        F: FnOnce(serde_json::Value) -> Fut,
        Fut: std::future::Future<Output = Result<serde_json::Value>>,
    {
        let received = self
            .client
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(10)
            .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
            .send()
            .await?
            .messages
            .unwrap_or_default();
        if received.is_empty() {
            return Ok(PumpRound::default());
        }
        let records: Vec<serde_json::Value> = received
            .iter()
            .map(|m| {
                let attributes: serde_json::Map<String, serde_json::Value> = m
                    .attributes()
                    .map(|a| a.iter().map(|(k, v)| (k.as_str().to_owned(), v.clone().into())).collect())
                    .unwrap_or_default();
                serde_json::json!({
                    "messageId": m.message_id(), "receiptHandle": m.receipt_handle(), "body": m.body(),
                    "attributes": attributes, "messageAttributes": {}, "md5OfBody": m.md5_of_body(),
                    "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q.fifo",
                    "awsRegion": "us-east-1"
                })
            })
            .collect();
        let answer = invoke(serde_json::json!({ "Records": records })).await?;
        let failed: Vec<String> = answer["batchItemFailures"]
            .as_array()
            .context("worker answer has no batchItemFailures")?
            .iter()
            .filter_map(|f| f["itemIdentifier"].as_str().map(str::to_owned))
            .collect();
        let mut round = PumpRound { received: received.len(), ..Default::default() };
        for message in &received {
            let handle = message.receipt_handle().context("receipt handle")?;
            if failed.iter().any(|id| Some(id.as_str()) == message.message_id()) {
                self.client
                    .change_message_visibility()
                    .queue_url(&self.queue_url)
                    .receipt_handle(handle)
                    .visibility_timeout(0)
                    .send()
                    .await?;
                round.failed += 1;
            } else {
                self.client.delete_message().queue_url(&self.queue_url).receipt_handle(handle).send().await?;
                round.deleted += 1;
            }
        }
        Ok(round)
    }

    /// Bodies of the messages in the DLQ (received with a short visibility, not deleted).
    pub async fn dlq_bodies(&self) -> Result<Vec<String>> {
        let mut bodies = Vec::new();
        loop {
            let batch = self
                .client
                .receive_message()
                .queue_url(&self.dlq_url)
                .max_number_of_messages(10)
                .visibility_timeout(30)
                .send()
                .await?
                .messages
                .unwrap_or_default();
            if batch.is_empty() {
                return Ok(bodies);
            }
            bodies.extend(batch.into_iter().filter_map(|m| m.body));
        }
    }

    pub async fn send(&self, group: &str, dedup: &str, body: &str) -> Result<()> {
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_group_id(group)
            .message_deduplication_id(dedup)
            .message_body(body)
            .send()
            .await?;
        Ok(())
    }
}
