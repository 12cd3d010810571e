//! What the local stack and the tests share to run real parts on one machine: moto's server
//! for the AWS APIs (SQS FIFO with its DLQ and a pump that feeds a worker the way Lambda's
//! event source mapping does, Secrets Manager, DynamoDB), child processes that die with their
//! guard, free ports, the tools installed in the repo's venvs, and SQS message builders.

use anyhow::{Context, Result, bail};
use aws_lambda_events::event::sqs::SqsMessage;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
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

/// An SQS message as Lambda's event source mapping delivers it to the worker.
pub fn sqs_message(id: &str, group: &str, body: &str) -> SqsMessage {
    let mut message = SqsMessage::default();
    message.message_id = Some(id.to_owned());
    message.body = Some(body.to_owned());
    message.attributes.insert("MessageGroupId".into(), group.to_owned());
    message
}
