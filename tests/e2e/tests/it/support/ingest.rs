//! Shared by the ingest_* tests: moto with the
//! connections secret and a FIFO queue, the real ingest binary pointed at them, and
//! helpers to sign requests the way each source does and to read the queue back.
#![allow(dead_code)]

use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use e2e::{LambdaFunction, Moto};
use provisioning::LifecycleEvent;
use provisioning::sources::{bamboohr, generic, hibob};
use std::time::{SystemTime, UNIX_EPOCH};

pub const SECRET_ID: &str = "ingest/connections";
pub const BAMBOO_KEY: &str = "5f2c9a0d7e31b4c8a6e9d2f10b7c3a48";
pub const BOB_SECRET: &str = "bob-webhook-secret-4Qz7Lw9Xk2";
pub const OKTA_AUTH: &str = "Bearer okta-hook-secret-7d1c2e";
pub const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

pub fn connections_json() -> String {
    serde_json::json!({"connections": {
        "bamboohr-main": {"source": "bamboohr", "private_key": BAMBOO_KEY},
        "hibob-main": {"source": "hibob", "secret": BOB_SECRET},
        "okta-main": {"source": "okta", "auth_value": OKTA_AUTH},
        "hr-generic": {"source": "generic", "secret": WHSEC}
    }})
    .to_string()
}

pub fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(e2e::workspace_root().join("tests/fixtures").join(path)).unwrap()
}

pub fn now_seconds() -> String {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs().to_string()
}

/// moto with the connections secret and an empty FIFO queue.
pub struct Aws {
    pub moto: Moto,
    pub sqs: aws_sdk_sqs::Client,
    pub queue_url: String,
}

impl Aws {
    pub async fn start() -> Aws {
        let moto = Moto::start().unwrap();
        let config = moto.sdk_config().await;
        aws_sdk_secretsmanager::Client::new(&config)
            .create_secret()
            .name(SECRET_ID)
            .secret_string(connections_json())
            .send()
            .await
            .unwrap();
        let sqs = aws_sdk_sqs::Client::new(&config);
        let queue_url = sqs
            .create_queue()
            .queue_name("ingest-events.fifo")
            .attributes(QueueAttributeName::FifoQueue, "true")
            .attributes(QueueAttributeName::ContentBasedDeduplication, "false")
            .send()
            .await
            .unwrap()
            .queue_url
            .unwrap();
        Aws { moto, sqs, queue_url }
    }

    /// The ingest binary's environment: moto for every AWS call, plus `extra`.
    pub fn ingest_env(&self, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut env = self.moto.env();
        env.push(("QUEUE_URL".into(), self.queue_url.clone()));
        env.push(("CONNECTIONS_SECRET_ID".into(), SECRET_ID.into()));
        // Debug level, so the "never logs secrets" checks cover the chattiest setting.
        env.push(("RUST_LOG".into(), "debug".into()));
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        env
    }

    pub fn start_ingest(&self, extra: &[(&str, &str)]) -> LambdaFunction {
        LambdaFunction::start("ingest", &self.ingest_env(extra)).unwrap()
    }

    /// Everything on the queue: (group id, deduplication id, event), in queue order.
    pub async fn drain(&self) -> Vec<(String, String, LifecycleEvent)> {
        let mut messages = Vec::new();
        loop {
            let output = self
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .send()
                .await
                .unwrap();
            let batch = output.messages.unwrap_or_default();
            if batch.is_empty() {
                return messages;
            }
            for message in batch {
                let attributes = message.attributes.clone().unwrap_or_default();
                let group = attributes[&MessageSystemAttributeName::MessageGroupId].clone();
                let dedup = attributes[&MessageSystemAttributeName::MessageDeduplicationId].clone();
                let event: LifecycleEvent = serde_json::from_str(message.body.as_deref().unwrap()).unwrap();
                self.sqs
                    .delete_message()
                    .queue_url(&self.queue_url)
                    .receipt_handle(message.receipt_handle.unwrap())
                    .send()
                    .await
                    .unwrap();
                messages.push((group, dedup, event));
            }
        }
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(std::time::Duration::from_secs(30)).build().unwrap()
}

/// A Standard Webhooks request: (headers, signature).
pub fn generic_headers(id: &str, ts: &str, body: &[u8]) -> (Vec<(&'static str, String)>, String) {
    let key = generic::StandardWebhookKey::parse(WHSEC).unwrap();
    let signature = generic::sign(&key, id, ts, body);
    (
        vec![
            ("webhook-id", id.to_owned()),
            ("webhook-timestamp", ts.to_owned()),
            ("webhook-signature", signature.clone()),
        ],
        signature,
    )
}

pub fn bamboohr_headers(ts: &str, body: &[u8]) -> (Vec<(&'static str, String)>, String) {
    let signature = bamboohr::sign(BAMBOO_KEY, body, ts);
    (
        vec![
            ("X-BambooHR-Signature", signature.clone()),
            ("X-BambooHR-Timestamp", ts.to_owned()),
            ("Content-Type", "application/json".to_owned()),
        ],
        signature,
    )
}

pub fn hibob_headers(body: &[u8]) -> (Vec<(&'static str, String)>, String) {
    let signature = hibob::sign(BOB_SECRET, body);
    (vec![("Bob-Signature", signature.clone()), ("Content-Type", "application/json".to_owned())], signature)
}

pub async fn post(
    function: &LambdaFunction,
    path: &str,
    headers: &[(&'static str, String)],
    body: &[u8],
) -> (u16, serde_json::Value) {
    let mut request = client().post(function.function_url(path)).body(body.to_vec());
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)))
}

/// Asserts the function's logs hold none of `needles` (secrets, signatures, personal data).
pub fn assert_logs_exclude(function: &LambdaFunction, needles: &[&str]) {
    let logs = function.logs();
    assert!(logs.contains("events queued") || logs.contains("webhook answered"), "no request logged: {logs}");
    for needle in needles {
        assert!(!logs.contains(needle), "the function's logs contain {needle:?}");
    }
}
