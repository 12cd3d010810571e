//! HiBob (Bob) webhooks v2. `Bob-Signature` is the base64 HMAC-SHA512 of the raw body.
//! Bob signs no timestamp, so replays are stopped only by the queue's deduplication on
//! (type, employeeId, triggeredAt).
//!
//! `employee.access.revoked.immediately` fires when a termination flow with "Revoke access
//! immediately" completes, before the termination date; `employee.left` and
//! `employee.inactivated` still follow on the effective date. Source:
//! https://apidocs.hibob.com/changelog/employee-data-api-immediate-access-revocation-webhook

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, NaiveDateTime, Utc};
use hmac::Mac;
use serde::Deserialize;
use serde_json::Value;

use super::{
    Context, Handshake, Ignored, InboundRequest, Normalized, Outcome, SourceError, StringOrNumber, hmac_sha512,
    non_empty, parse_json, required_id,
};
use crate::event::{Attributes, EventKind, LifecycleEvent, PersonKey, SourceKind, WIRE_VERSION};
use crate::secrets::SecretString;

#[derive(Debug, Deserialize)]
pub struct Config {
    /// The secret Bob shows on the webhook's settings page.
    pub secret: SecretString,
}

/// The `Bob-Signature` Bob would send.
pub fn sign(secret: &str, body: &[u8]) -> String {
    BASE64.encode(hmac_sha512(secret.as_bytes(), &[body]).finalize().into_bytes())
}

pub fn verify(config: &Config, request: &InboundRequest<'_>) -> Result<(), SourceError> {
    let signature = request.header("bob-signature").ok_or(SourceError::Unauthorized("missing Bob-Signature"))?;
    let signature = BASE64.decode(signature).map_err(|_| SourceError::Unauthorized("signature is not base64"))?;
    hmac_sha512(config.secret.expose().as_bytes(), &[request.body])
        .verify_slice(&signature)
        .map_err(|_| SourceError::Unauthorized("signature does not match"))
}

/// Bob's connection test: the body `Ping test`, or `{"text":"Ping test"}`. It is answered
/// before verification because it has no effect and Bob may send it unsigned.
pub fn is_ping(body: &[u8]) -> bool {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text == "Ping test" {
        return true;
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Ping {
        text: String,
    }
    serde_json::from_str::<Ping>(text).is_ok_and(|ping| ping.text.trim() == "Ping test")
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    #[serde(rename = "type")]
    event_type: String,
    triggered_at: String,
    version: Option<String>,
    #[serde(default)]
    data: EventData,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EventData {
    employee_id: Option<StringOrNumber>,
    table_id: Option<String>,
    /// Bare field ids or `{fieldId: …}` objects: Bob's docs do not say which, so both.
    field_updates: Option<Vec<Value>>,
}

/// HiBob's "access ends now" event: a leaver whatever the termination date says.
const IMMEDIATE_REVOCATION: &str = "employee.access.revoked.immediately";

/// Field ids whose change the 1Password account follows; the dates too, because the worker
/// schedules by them (a termination entered ahead, a start date moved).
const MOVER_FIELDS: &[&str] = &[
    "work.startDate",
    "internal.terminationDate",
    "work.department",
    "work.reportsTo",
    "work.title",
    "work.site",
    "root.email",
    "root.firstName",
    "root.surname",
    "root.displayName",
];

fn field_id(update: &Value) -> Option<&str> {
    match update {
        Value::String(id) => Some(id),
        Value::Object(map) => map.get("fieldId").or_else(|| map.get("id")).and_then(Value::as_str),
        _ => None,
    }
}

/// `2026-03-31T00:00:04.118732`: Bob's timestamps carry no zone; they are UTC.
fn parse_triggered_at(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f").ok().map(|t| t.and_utc()))
}

pub fn parse(body: &[u8], context: &Context<'_>) -> Result<Normalized, SourceError> {
    let envelope: Envelope = parse_json(body, "HiBob webhook body")?;
    match envelope.version.as_deref() {
        Some("v2") => {}
        _ => {
            return Err(SourceError::bad_request(
                "only HiBob webhooks v2 are supported (\"version\":\"v2\"); recreate the webhook as v2",
            ));
        }
    }
    let kind = kind_of(&envelope.event_type, &envelope.data);
    let triggered_at =
        non_empty(Some(envelope.triggered_at)).ok_or_else(|| SourceError::bad_request("triggeredAt is empty"))?;
    let effective_at = parse_triggered_at(&triggered_at)
        .ok_or_else(|| SourceError::bad_request("triggeredAt is not a date-time like 2026-03-31T00:00:04.118732"))?;
    let employee_id = required_id(envelope.data.employee_id, "data.employeeId")?;
    let source_event_id = format!("{}:{}:{}", envelope.event_type, employee_id, triggered_at);
    let mut normalized = Normalized::default();
    match kind {
        Some(kind) => normalized.events.push(LifecycleEvent {
            version: WIRE_VERSION,
            kind,
            person: PersonKey::new(context.connection, employee_id),
            source_kind: SourceKind::Hibob,
            source_event_id,
            effective_at,
            received_at: context.now,
            attributes: Attributes::default(),
            immediate: envelope.event_type == IMMEDIATE_REVOCATION,
            requeued: 0,
        }),
        None => normalized.ignored.push(Ignored {
            source_event_id: Some(source_event_id),
            reason: format!("{} is not acted on", envelope.event_type),
        }),
    }
    Ok(normalized)
}

fn kind_of(event_type: &str, data: &EventData) -> Option<EventKind> {
    match event_type {
        "employee.joined" | "employee.created" => Some(EventKind::Joiner),
        "employee.left" | "employee.inactivated" | "employee.deleted" | IMMEDIATE_REVOCATION => Some(EventKind::Leaver),
        "employee.activated" => Some(EventKind::Rehire),
        "employee.updated" => match &data.field_updates {
            // Without the list we cannot tell what changed: let the worker look.
            None => Some(EventKind::Mover),
            Some(updates) => {
                updates.iter().filter_map(field_id).any(|id| MOVER_FIELDS.contains(&id)).then_some(EventKind::Mover)
            }
        },
        "table.entry.created" | "table.entry.updated" => {
            (data.table_id.as_deref() == Some("work")).then_some(EventKind::Mover)
        }
        _ => None,
    }
}

pub fn process(config: &Config, request: &InboundRequest<'_>, context: &Context<'_>) -> Result<Outcome, SourceError> {
    if is_ping(request.body) {
        return Ok(Outcome::Handshake(Handshake(serde_json::json!({ "handshake": "ok" }))));
    }
    verify(config, request)?;
    parse(request.body, context).map(Outcome::Events)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{context, headers, vector};
    use super::*;

    const NOW: &str = "2026-03-31T00:00:05Z";

    fn run(secret: &str, signature: Option<&str>, body: &[u8]) -> Result<Outcome, SourceError> {
        let pairs: Vec<(&str, &str)> = signature.map(|s| ("Bob-Signature", s)).into_iter().collect();
        let headers = headers(&pairs);
        let method = http::Method::POST;
        let request = InboundRequest { method: &method, headers: &headers, body };
        process(&Config { secret: SecretString::new(secret) }, &request, &context(NOW))
    }

    fn signed(body: &str) -> Normalized {
        match run("s", Some(&sign("s", body.as_bytes())), body.as_bytes()) {
            Ok(Outcome::Events(normalized)) => normalized,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_employee_left_vector_verifies_and_is_a_leaver() {
        let body = vector("hibob", "body");
        assert_eq!(sign(&vector("hibob", "secret"), body.as_bytes()), vector("hibob", "sig"));
        let outcome = run(&vector("hibob", "secret"), Some(&vector("hibob", "sig")), body.as_bytes()).unwrap();
        let Outcome::Events(normalized) = outcome else { panic!() };
        let [event] = normalized.events.as_slice() else { panic!("{normalized:?}") };
        assert_eq!(event.kind, EventKind::Leaver);
        assert_eq!(event.person, PersonKey::new("conn", "3332883854254932743"));
        assert_eq!(event.source_kind, SourceKind::Hibob);
        assert_eq!(event.source_event_id, "employee.left:3332883854254932743:2026-03-31T00:00:04.118732");
        assert_eq!(event.effective_at.to_rfc3339(), "2026-03-31T00:00:04.118732+00:00");
    }

    #[test]
    fn tampering_wrong_keys_hex_signatures_and_missing_headers_are_unauthorized() {
        let secret = vector("hibob", "secret");
        let body = vector("hibob", "body");
        let sig = vector("hibob", "sig");
        let unauthorized = |r: Result<Outcome, SourceError>| matches!(r, Err(SourceError::Unauthorized(_)));
        let mut flipped = body.clone().into_bytes();
        flipped[5] ^= 0x01;
        assert!(unauthorized(run(&secret, Some(&sig), &flipped)));
        assert!(unauthorized(run("other-secret", Some(&sig), body.as_bytes())));
        assert!(unauthorized(run(&secret, None, body.as_bytes())));
        let as_hex = hex::encode(BASE64.decode(&sig).unwrap());
        assert!(unauthorized(run(&secret, Some(&as_hex), body.as_bytes())));
    }

    #[test]
    fn ping_is_answered_in_both_forms_and_queues_nothing() {
        for body in ["Ping test", "{\"text\":\"Ping test\"}", " Ping test\n"] {
            assert!(matches!(run("s", None, body.as_bytes()), Ok(Outcome::Handshake(_))), "{body}");
        }
        // Anything more than a ping must be signed.
        assert!(matches!(
            run("s", None, br#"{"text":"Ping test","type":"employee.left"}"#),
            Err(SourceError::Unauthorized(_))
        ));
    }

    #[test]
    fn event_types_map_to_joiner_mover_leaver_rehire() {
        let body = |t: &str, data: &str| {
            format!(
                r#"{{"companyId":638121,"type":"{t}","triggeredBy":"system","triggeredAt":"2026-03-02T09:15:00.402117","version":"v2","data":{{"employeeId":"42"{data}}}}}"#
            )
        };
        let kind = |t: &str, data: &str| signed(&body(t, data)).events.first().map(|e| e.kind);
        assert_eq!(kind("employee.joined", ""), Some(EventKind::Joiner));
        assert_eq!(kind("employee.created", ""), Some(EventKind::Joiner));
        assert_eq!(kind("employee.left", ""), Some(EventKind::Leaver));
        assert_eq!(kind("employee.inactivated", ""), Some(EventKind::Leaver));
        assert_eq!(kind("employee.deleted", ""), Some(EventKind::Leaver));
        assert_eq!(kind("employee.activated", ""), Some(EventKind::Rehire));
        assert_eq!(kind("employee.updated", ""), Some(EventKind::Mover));
        assert_eq!(
            kind("employee.updated", r#","fieldUpdates":[{"fieldId":"work.department"},{"fieldId":"work.reportsTo"}]"#),
            Some(EventKind::Mover)
        );
        assert_eq!(kind("employee.updated", r#","fieldUpdates":["root.email"]"#), Some(EventKind::Mover));
        assert_eq!(kind("employee.updated", r#","fieldUpdates":["payroll.salary"]"#), None);
        assert_eq!(
            kind("table.entry.created", r#","tableId":"work","effectiveDate":"2026-04-01""#),
            Some(EventKind::Mover)
        );
        assert_eq!(kind("table.entry.updated", r#","tableId":"work","id":7"#), Some(EventKind::Mover));
        assert_eq!(kind("table.entry.created", r#","tableId":"payroll""#), None);
        assert_eq!(kind("employee.temporaryLeave", ""), None);
        let ignored = signed(&body("employee.temporaryLeave", ""));
        assert_eq!(ignored.ignored.len(), 1);
    }

    #[test]
    fn immediate_access_revocation_is_an_immediate_leaver() {
        let body = r#"{"companyId":638121,"type":"employee.access.revoked.immediately","triggeredBy":"3332883804594373380","triggeredAt":"2026-03-02T09:15:00.402117","version":"v2","data":{"employeeId":"3332883854254932743"}}"#;
        let normalized = signed(body);
        let [event] = normalized.events.as_slice() else { panic!("{normalized:?}") };
        assert_eq!(event.kind, EventKind::Leaver);
        assert!(event.immediate);
        assert_eq!(event.person, PersonKey::new("conn", "3332883854254932743"));
        assert_eq!(
            event.source_event_id,
            "employee.access.revoked.immediately:3332883854254932743:2026-03-02T09:15:00.402117"
        );
        // The effective-date events that follow stay ordinary leavers.
        let left = body.replace("employee.access.revoked.immediately", "employee.left");
        assert!(signed(&left).events.iter().all(|event| event.kind == EventKind::Leaver && !event.immediate));
    }

    #[test]
    fn the_mover_fixture_normalizes() {
        let body = r#"{"companyId":638121,"type":"employee.updated","triggeredBy":"3332883804594373380","triggeredAt":"2026-03-02T09:15:00.402117","version":"v2","data":{"employeeId":"3332883854254932743","fieldUpdates":[{"fieldId":"work.department"},{"fieldId":"work.reportsTo"}]}}"#;
        let normalized = signed(body);
        let [event] = normalized.events.as_slice() else { panic!("{normalized:?}") };
        assert_eq!(event.kind, EventKind::Mover);
        assert_eq!(event.source_event_id, "employee.updated:3332883854254932743:2026-03-02T09:15:00.402117");
    }

    #[test]
    fn malformed_bodies_get_a_helpful_400() {
        for (body, expected) in [
            ("nope", "not valid JSON"),
            (r#"{"type":"employee.left","triggeredAt":"2026-03-31T00:00:04","data":{"employeeId":"1"}}"#, "v2"),
            (
                r#"{"type":"employee.left","triggeredAt":"yesterday","version":"v2","data":{"employeeId":"1"}}"#,
                "triggeredAt",
            ),
            (
                r#"{"type":"employee.left","triggeredAt":"2026-03-31T00:00:04","version":"v2","data":{}}"#,
                "data.employeeId",
            ),
            (r#"{"triggeredAt":"2026-03-31T00:00:04","version":"v2"}"#, "missing field `type`"),
        ] {
            match run("s", Some(&sign("s", body.as_bytes())), body.as_bytes()) {
                Err(SourceError::BadRequest(message)) => assert!(message.contains(expected), "{message}"),
                other => panic!("{body}: {other:?}"),
            }
        }
    }
}
