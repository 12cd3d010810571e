//! Signed webhook requests as each source would send them, for the demo and for the
//! ready-to-paste `curl` lines of serve mode.

use base64::Engine;
use provisioning::sources::{bamboohr, generic, hibob};

/// One HTTP request to the webhook endpoint.
pub struct Webhook {
    pub connection: &'static str,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

pub struct Keys {
    pub bamboohr: String,
    pub hibob: String,
    pub okta_auth: String,
    pub generic: String,
}

impl Keys {
    /// Reads the demo keys from the connections document the stack loaded.
    pub fn from_connections(doc: &serde_json::Value) -> anyhow::Result<Self> {
        let key = |conn: &str, field: &str| -> anyhow::Result<String> {
            doc["connections"][conn][field]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| anyhow::anyhow!("connections.json lacks connections.{conn}.{field}"))
        };
        Ok(Keys {
            bamboohr: key("bamboohr-main", "private_key")?,
            hibob: key("hibob-eu", "secret")?,
            okta_auth: key("okta-main", "auth_value")?,
            generic: key("hr-generic", "secret")?,
        })
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

pub fn bamboohr_event(keys: &Keys, kind: &str, employee_id: &str) -> Webhook {
    let body = serde_json::json!({
        "type": kind,
        "timestamp": chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S+0000").to_string(),
        "data": { "companyId": "48213", "employeeId": employee_id, "changedFields": [] }
    })
    .to_string();
    let ts = now().to_string();
    let signature = bamboohr::sign(&keys.bamboohr, body.as_bytes(), &ts);
    Webhook {
        connection: "bamboohr-main",
        headers: vec![("X-BambooHR-Signature".into(), signature), ("X-BambooHR-Timestamp".into(), ts)],
        body,
    }
}

pub fn hibob_event(keys: &Keys, kind: &str, employee_id: &str, field_updates: &[&str]) -> Webhook {
    let mut data = serde_json::json!({ "employeeId": employee_id });
    if !field_updates.is_empty() {
        data["fieldUpdates"] = field_updates.iter().map(|f| serde_json::json!({ "fieldId": f })).collect();
    }
    let body = serde_json::json!({
        "companyId": 638121, "type": kind, "triggeredBy": "system",
        "triggeredAt": chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.6f").to_string(),
        "version": "v2", "data": data
    })
    .to_string();
    let signature = hibob::sign(&keys.hibob, body.as_bytes());
    Webhook { connection: "hibob-eu", headers: vec![("Bob-Signature".into(), signature)], body }
}

pub fn okta_event(keys: &Keys, event_type: &str, user_id: &str, login: &str, display_name: &str) -> Webhook {
    let published = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let body = serde_json::json!({
        "eventType": "com.okta.event_hook", "eventTypeVersion": "1.0", "cloudEventsVersion": "0.1",
        "contentType": "application/json", "eventId": format!("local-{}", nonce()), "eventTime": published,
        "source": "https://acme.okta.com/api/v1/eventHooks/local",
        "data": { "events": [{
            "uuid": format!("{}-{}", event_type, nonce()), "published": published, "eventType": event_type,
            "version": "0", "severity": "INFO", "displayMessage": event_type,
            "outcome": { "result": "SUCCESS" },
            "target": [{ "id": user_id, "type": "User", "alternateId": login, "displayName": display_name }]
        }]}
    })
    .to_string();
    Webhook { connection: "okta-main", headers: vec![("Authorization".into(), keys.okta_auth.clone())], body }
}

pub fn generic_event(keys: &Keys, event: &serde_json::Value) -> anyhow::Result<Webhook> {
    let body = event.to_string();
    let key = generic::StandardWebhookKey::parse(&keys.generic).map_err(anyhow::Error::msg)?;
    let id = format!("msg_{}", nonce());
    let ts = now().to_string();
    let signature = generic::sign(&key, &id, &ts, body.as_bytes());
    Ok(Webhook {
        connection: "hr-generic",
        headers: vec![
            ("webhook-id".into(), id),
            ("webhook-timestamp".into(), ts),
            ("webhook-signature".into(), signature),
        ],
        body,
    })
}

/// A short random-looking id; uniqueness within a run is all that matters.
fn nonce() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let t = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{t}-{n}"))
}

impl Webhook {
    pub async fn send(&self, http: &reqwest::Client, base_url: &str) -> anyhow::Result<(u16, String)> {
        let mut request = http
            .post(format!("{base_url}/webhooks/{}", self.connection))
            .header("Content-Type", "application/json")
            .body(self.body.clone());
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        Ok((status, response.text().await?))
    }

    /// The same request as a shell command.
    pub fn curl(&self, base_url: &str) -> String {
        let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
        let mut line = format!(
            "curl -sS -X POST {} -H 'Content-Type: application/json'",
            quote(&format!("{base_url}/webhooks/{}", self.connection))
        );
        for (name, value) in &self.headers {
            line.push_str(&format!(" -H {}", quote(&format!("{name}: {value}"))));
        }
        line.push_str(&format!(" --data-raw {}", quote(&self.body)));
        line
    }
}
