//! BambooHR webhooks. `X-BambooHR-Signature` is the lower-case hex HMAC-SHA256 of the raw
//! body followed directly by the `X-BambooHR-Timestamp` value. Two payload families:
//! event-based (`employee.created|updated|deleted`, one thin event per POST) and
//! field-based (`employees[]` with `fields`, many per POST).

use chrono::{DateTime, NaiveDateTime, Utc};
use hmac::Mac;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{
    Context, Ignored, InboundRequest, Normalized, Outcome, SourceError, StringOrNumber, check_timestamp, hmac_sha256,
    non_empty, parse_json, required_id,
};
use crate::event::{Attributes, EventKind, LifecycleEvent, PersonKey, SourceKind, WIRE_VERSION};
use crate::secrets::SecretString;

#[derive(Debug, Deserialize)]
pub struct Config {
    /// The webhook's private key, shown once when the webhook is created.
    pub private_key: SecretString,
}

/// The `X-BambooHR-Signature` BambooHR would send.
pub fn sign(private_key: &str, body: &[u8], timestamp: &str) -> String {
    hex::encode(hmac_sha256(private_key.as_bytes(), &[body, timestamp.as_bytes()]).finalize().into_bytes())
}

/// What the signed timestamp header said.
#[derive(Debug, Clone)]
pub struct SignedTimestamp<'a> {
    pub raw: &'a str,
    pub at: DateTime<Utc>,
}

/// Checks the signature over `body ‖ timestamp` and the replay window.
pub fn verify<'r>(
    config: &Config,
    request: &'r InboundRequest<'_>,
    context: &Context<'_>,
) -> Result<SignedTimestamp<'r>, SourceError> {
    let signature =
        request.header("x-bamboohr-signature").ok_or(SourceError::Unauthorized("missing X-BambooHR-Signature"))?;
    let timestamp =
        request.header("x-bamboohr-timestamp").ok_or(SourceError::Unauthorized("missing X-BambooHR-Timestamp"))?;
    let signature = hex::decode(signature).map_err(|_| SourceError::Unauthorized("signature is not hex"))?;
    hmac_sha256(config.private_key.expose().as_bytes(), &[request.body, timestamp.as_bytes()])
        .verify_slice(&signature)
        .map_err(|_| SourceError::Unauthorized("signature does not match"))?;
    let at = parse_time(timestamp).ok_or(SourceError::Unauthorized("timestamp is unreadable"))?;
    check_timestamp(at, context)?;
    Ok(SignedTimestamp { raw: timestamp, at })
}

/// Unix seconds (what BambooHR sends in practice), RFC 3339, or BambooHR's
/// `2026-01-31T18:42:00+0000`.
pub fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<i64>() {
        return DateTime::from_timestamp(seconds, 0);
    }
    DateTime::parse_from_rfc3339(text)
        .or_else(|_| DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%z"))
        .or_else(|_| DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .or_else(|_| DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%z"))
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S").ok().map(|t| t.and_utc()))
}

#[derive(Debug, Deserialize)]
struct EventBased {
    #[serde(rename = "type")]
    event_type: String,
    timestamp: Option<String>,
    data: EventData,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct EventData {
    employee_id: Option<StringOrNumber>,
    #[serde(default)]
    changed_fields: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct FieldBased {
    /// Kept as JSON: each entry's own text is part of its event id.
    employees: Vec<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FieldEmployee {
    id: Option<StringOrNumber>,
    action: Option<String>,
    timestamp: Option<String>,
    changed_fields: Option<Vec<String>>,
    #[serde(default)]
    fields: serde_json::Map<String, Value>,
}

/// `Reporting to`, `reportingTo` and `reporting_to` are the same field: BambooHR sends
/// display names or API aliases depending on how the webhook was set up.
fn field_key(name: &str) -> String {
    name.chars().filter(char::is_ascii_alphanumeric).map(|c| c.to_ascii_lowercase()).collect()
}

/// Changes that may mean the person left (or came back).
const STATUS_FIELDS: &[&str] = &["status", "employmenthistorystatus", "employmentstatus", "terminationdate"];
/// Changes the 1Password account follows (name, e-mail, groups).
const MOVER_FIELDS: &[&str] = &[
    "department",
    "division",
    "jobtitle",
    "location",
    "supervisoreid",
    "supervisorid",
    "supervisor",
    "supervisoremail",
    "reportingto",
    "workemail",
    "firstname",
    "lastname",
    "preferredname",
];

fn touches(changed: &[String], set: &[&str]) -> bool {
    changed.iter().any(|field| set.contains(&field_key(field).as_str()))
}

/// The first 16 hex digits of the SHA-256 of `parts`, each followed by a NUL.
///
/// BambooHR sends no event id, and its timestamps have whole seconds: two changes to one
/// employee within a second would share `{type}:{id}:{timestamp}` and SQS would drop the
/// second as a duplicate. The hash of what changed tells them apart, while an exact
/// redelivery hashes the same and is still dropped.
fn change_hash<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part);
        hasher.update([0u8]);
    }
    hex::encode(&hasher.finalize()[..8])
}

/// [`change_hash`] of one JSON value, serialized straight into the hash: a 1 MB body holds
/// thousands of entries, and a copy of each would cost more than the hashing.
fn json_hash(value: &Value) -> String {
    struct Feed(Sha256);
    impl std::io::Write for Feed {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.update(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut feed = Feed(Sha256::new());
    // Writing to a hash cannot fail, and a `Value` always serializes.
    let _ = serde_json::to_writer(&mut feed, value);
    feed.0.update([0u8]);
    hex::encode(&feed.0.finalize()[..8])
}

/// Parses the body (JSON, or the event-based form post) into events.
pub fn parse(
    request: &InboundRequest<'_>,
    signed: &SignedTimestamp<'_>,
    context: &Context<'_>,
) -> Result<Normalized, SourceError> {
    if request.content_type_is("application/x-www-form-urlencoded") {
        let event = parse_form(request.body)?;
        return normalize_event_based(event, signed, context);
    }
    let value: Value = parse_json(request.body, "BambooHR webhook body")?;
    if value.get("employees").is_some() {
        let payload: FieldBased = serde_json::from_value(value)
            .map_err(|_| SourceError::bad_request("malformed BambooHR field-based payload: employees must be an array of {id, action, changedFields, fields}"))?;
        normalize_field_based(payload, signed, context)
    } else if value.get("type").is_some() {
        let payload: EventBased = serde_json::from_value(value).map_err(|_| {
            SourceError::bad_request(
                "malformed BambooHR event: expected {\"type\", \"timestamp\", \"data\": {\"employeeId\", \"changedFields\"}}",
            )
        })?;
        normalize_event_based(payload, signed, context)
    } else {
        Err(SourceError::bad_request(
            "not a BambooHR webhook payload: expected an event-based body with \"type\" or a field-based body with \"employees\"",
        ))
    }
}

/// The event-based form post: `type=…&timestamp=…&data[employeeId]=…&data[changedFields][0]=…`.
/// Field-based form posts have no documented structure, so they are refused with 415.
fn parse_form(body: &[u8]) -> Result<EventBased, SourceError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
        .map_err(|_| SourceError::bad_request("the form-encoded body could not be decoded"))?;
    let unsupported = || {
        SourceError::UnsupportedMediaType(
            "form-encoded BambooHR bodies are accepted for event-based webhooks only; set this webhook's format to JSON".into(),
        )
    };
    if pairs.iter().any(|(key, _)| key.starts_with("employees")) {
        return Err(unsupported());
    }
    let mut event_type = None;
    let mut timestamp = None;
    let mut data = EventData::default();
    for (key, value) in pairs {
        match key.as_str() {
            "type" => event_type = Some(value),
            "timestamp" => timestamp = Some(value),
            "data[employeeId]" => data.employee_id = Some(StringOrNumber::String(value)),
            _ if key.starts_with("data[changedFields]") => data.changed_fields.push(value),
            _ => {}
        }
    }
    let event_type = event_type.ok_or_else(unsupported)?;
    Ok(EventBased { event_type, timestamp, data })
}

fn event(
    kind: EventKind,
    context: &Context<'_>,
    employee_id: String,
    source_event_id: String,
    effective_at: DateTime<Utc>,
    attributes: Attributes,
) -> LifecycleEvent {
    LifecycleEvent {
        version: WIRE_VERSION,
        kind,
        person: PersonKey::new(context.connection, employee_id),
        source_kind: SourceKind::Bamboohr,
        source_event_id,
        effective_at,
        received_at: context.now,
        attributes,
        immediate: false,
        requeued: 0,
    }
}

fn normalize_event_based(
    payload: EventBased,
    signed: &SignedTimestamp<'_>,
    context: &Context<'_>,
) -> Result<Normalized, SourceError> {
    let employee_id = required_id(payload.data.employee_id, "data.employeeId")?;
    let timestamp = non_empty(payload.timestamp);
    let effective_at = timestamp.as_deref().and_then(parse_time).unwrap_or(signed.at);
    let changed = &payload.data.changed_fields;
    // No event id in the payload: (type, employee, timestamp, what changed) identifies the
    // event, and is the same on BambooHR's retries and for the JSON and form twins.
    let source_event_id = format!(
        "{}:{}:{}:{}",
        payload.event_type,
        employee_id,
        timestamp.as_deref().unwrap_or(signed.raw),
        change_hash(changed.iter().map(String::as_bytes))
    );
    let kind = match payload.event_type.as_str() {
        "employee.created" => Some(EventKind::Joiner),
        "employee.deleted" => Some(EventKind::Leaver),
        // Thin: only the names of the changed fields. A status change is most often a
        // termination; the worker confirms it from the employee record before suspending.
        "employee.updated" if touches(changed, STATUS_FIELDS) => Some(EventKind::Leaver),
        "employee.updated" if touches(changed, MOVER_FIELDS) => Some(EventKind::Mover),
        _ => None,
    };
    let mut normalized = Normalized::default();
    match kind {
        Some(kind) => normalized.events.push(event(
            kind,
            context,
            employee_id,
            source_event_id,
            effective_at,
            Attributes::default(),
        )),
        None => normalized.ignored.push(Ignored {
            source_event_id: Some(source_event_id),
            reason: if payload.event_type == "employee.updated" {
                "no field we act on changed".into()
            } else {
                format!("event type {} is not acted on", payload.event_type)
            },
        }),
    }
    Ok(normalized)
}

fn field_text(value: &Value) -> Option<String> {
    let value = match value {
        Value::Object(map) => map.get("value")?,
        other => other,
    };
    match value {
        Value::String(s) => non_empty(Some(s.clone())),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn attributes_from_fields(fields: &serde_json::Map<String, Value>) -> Attributes {
    let mut attributes = Attributes::default();
    for (name, value) in fields {
        let Some(text) = field_text(value) else { continue };
        let slot = match field_key(name).as_str() {
            "workemail" => &mut attributes.work_email,
            "firstname" => &mut attributes.given_name,
            "lastname" => &mut attributes.family_name,
            "department" => &mut attributes.department,
            "jobtitle" => &mut attributes.title,
            "location" => &mut attributes.location,
            "reportingto" | "supervisor" | "supervisoreid" | "supervisoremail" => &mut attributes.manager,
            "status" => &mut attributes.employment_status,
            "employmentstatus" | "employmenthistorystatus" => &mut attributes.employment_type,
            _ => continue,
        };
        *slot = Some(text);
    }
    attributes
}

fn normalize_field_based(
    payload: FieldBased,
    signed: &SignedTimestamp<'_>,
    context: &Context<'_>,
) -> Result<Normalized, SourceError> {
    let mut normalized = Normalized::default();
    for (index, entry) in payload.employees.into_iter().enumerate() {
        // The entry's own JSON carries the changed values: see `change_hash`.
        let hash = json_hash(&entry);
        let employee: FieldEmployee = serde_json::from_value(entry).map_err(|_| {
            SourceError::bad_request(format!(
                "malformed BambooHR field-based payload: employees[{index}] must be {{id, action, changedFields, fields}}"
            ))
        })?;
        let id = required_id(employee.id, &format!("employees[{index}].id"))?;
        // BambooHR's own samples omit `action` on updates; absent means "Updated".
        let action = non_empty(employee.action).unwrap_or_else(|| "Updated".to_owned());
        let timestamp = non_empty(employee.timestamp);
        let effective_at = timestamp.as_deref().and_then(parse_time).unwrap_or(signed.at);
        let source_event_id = format!(
            "employee_with_fields.{}:{}:{}:{}",
            action.to_ascii_lowercase(),
            id,
            timestamp.as_deref().unwrap_or(signed.raw),
            hash
        );
        let changed = employee.changed_fields.unwrap_or_default();
        match field_based_kind(&action, &employee.fields, &changed) {
            Some(kind) => {
                let attributes = attributes_from_fields(&employee.fields);
                normalized.events.push(event(kind, context, id, source_event_id, effective_at, attributes))
            }
            None => normalized.ignored.push(Ignored {
                source_event_id: Some(source_event_id),
                reason: format!("action {action} changed no field we act on"),
            }),
        }
    }
    Ok(normalized)
}

/// What one field-based entry means: `Created` joins, `Deleted` leaves, an update that
/// shows the person inactive or terminated leaves, one that sets the status back to Active
/// is a rehire, and one that touches a field we follow (or names none) is a mover.
fn field_based_kind(action: &str, fields: &serde_json::Map<String, Value>, changed: &[String]) -> Option<EventKind> {
    let fields_by_key: Vec<(String, Option<String>)> =
        fields.iter().map(|(name, value)| (field_key(name), field_text(value))).collect();
    let field = |key: &str| fields_by_key.iter().find(|(k, _)| k == key).and_then(|(_, v)| v.as_deref());
    let left = field("status").is_some_and(|s| s.eq_ignore_ascii_case("inactive"))
        || field("employmentstatus").is_some_and(|s| s.eq_ignore_ascii_case("terminated"))
        || field("employmenthistorystatus").is_some_and(|s| s.eq_ignore_ascii_case("terminated"));
    let status_changed = touches(changed, STATUS_FIELDS);
    match action.to_ascii_lowercase().as_str() {
        "created" => Some(EventKind::Joiner),
        "deleted" => Some(EventKind::Leaver),
        "updated" if left => Some(EventKind::Leaver),
        "updated" if status_changed && field("status").is_some_and(|s| s.eq_ignore_ascii_case("active")) => {
            Some(EventKind::Rehire)
        }
        "updated" if changed.is_empty() || status_changed || touches(changed, MOVER_FIELDS) => Some(EventKind::Mover),
        _ => None,
    }
}

pub fn process(config: &Config, request: &InboundRequest<'_>, context: &Context<'_>) -> Result<Outcome, SourceError> {
    let signed = verify(config, request, context)?;
    parse(request, &signed, context).map(Outcome::Events)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{context, headers, vector};
    use super::*;

    fn config(key: &str) -> Config {
        Config { private_key: SecretString::new(key) }
    }

    fn run(key: &str, pairs: &[(&str, &str)], body: &[u8], now: &str) -> Result<Outcome, SourceError> {
        let headers = headers(pairs);
        let method = http::Method::POST;
        let request = InboundRequest { method: &method, headers: &headers, body };
        process(&config(key), &request, &context(now))
    }

    fn events(outcome: Result<Outcome, SourceError>) -> Normalized {
        match outcome {
            Ok(Outcome::Events(normalized)) => normalized,
            other => panic!("expected events, got {other:?}"),
        }
    }

    #[test]
    fn our_vector_and_fusebits_published_vector_verify() {
        for (name, now) in [("bamboohr", "2026-03-02T09:15:00Z"), ("bamboohr_fusebit", "2022-07-19T16:27:03Z")] {
            let pairs = [("X-BambooHR-Signature", vector(name, "sig")), ("X-BambooHR-Timestamp", vector(name, "ts"))];
            let pairs: Vec<_> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let result = run(&vector(name, "secret"), &pairs, vector(name, "body").as_bytes(), now);
            assert!(result.is_ok(), "{name}: {result:?}");
            assert_eq!(
                sign(&vector(name, "secret"), vector(name, "body").as_bytes(), &vector(name, "ts")),
                vector(name, "sig")
            );
        }
    }

    #[test]
    fn bad_signatures_keys_timestamps_and_missing_headers_are_unauthorized() {
        let key = vector("bamboohr", "secret");
        let body = vector("bamboohr", "body");
        let ts = vector("bamboohr", "ts");
        let sig = vector("bamboohr", "sig");
        let now = "2026-03-02T09:15:00Z";
        let unauthorized = |r: Result<Outcome, SourceError>| matches!(r, Err(SourceError::Unauthorized(_)));
        let good = [("x-bamboohr-signature", sig.as_str()), ("x-bamboohr-timestamp", ts.as_str())];

        let mut flipped = body.clone().into_bytes();
        flipped[20] ^= 0x20;
        assert!(unauthorized(run(&key, &good, &flipped, now)));
        assert!(unauthorized(run("another-private-key", &good, body.as_bytes(), now)));
        assert!(unauthorized(run(&key, &good, body.as_bytes(), "2026-03-02T09:20:01Z")));
        assert!(unauthorized(run(&key, &good, body.as_bytes(), "2026-03-02T09:09:59Z")));
        assert!(unauthorized(run(&key, &good[..1], body.as_bytes(), now)));
        assert!(unauthorized(run(&key, &good[1..], body.as_bytes(), now)));
        // Signed the other way round (timestamp first), as some guides wrongly claim.
        let reversed =
            hex::encode(hmac_sha256(key.as_bytes(), &[ts.as_bytes(), body.as_bytes()]).finalize().into_bytes());
        let pairs = [("x-bamboohr-signature", reversed.as_str()), ("x-bamboohr-timestamp", ts.as_str())];
        assert!(unauthorized(run(&key, &pairs, body.as_bytes(), now)));
        // A different timestamp header than the one signed.
        let pairs = [("x-bamboohr-signature", sig.as_str()), ("x-bamboohr-timestamp", "1772442901")];
        assert!(unauthorized(run(&key, &pairs, body.as_bytes(), now)));
    }

    /// `{prefix}:{16 hex digits}`: the id BambooHR's fields give, then the change hash.
    fn assert_hashed_id(id: &str, prefix: &str) {
        let hash = id.strip_prefix(prefix).and_then(|rest| rest.strip_prefix(':'));
        assert!(
            hash.is_some_and(|h| h.len() == 16 && h.bytes().all(|b| b.is_ascii_hexdigit())),
            "{id} is not {prefix}:<hash>"
        );
    }

    fn signed(body: &str, ts: &str) -> Normalized {
        let key = "k";
        let sig = sign(key, body.as_bytes(), ts);
        let now = parse_time(ts).unwrap().to_rfc3339();
        events(run(key, &[("x-bamboohr-signature", &sig), ("x-bamboohr-timestamp", ts)], body.as_bytes(), &now))
    }

    #[test]
    fn the_event_based_fixture_is_a_mover_with_a_derived_dedup_key() {
        let normalized = signed(&vector("bamboohr", "body"), &vector("bamboohr", "ts"));
        assert!(normalized.ignored.is_empty());
        let [event] = normalized.events.as_slice() else { panic!("{normalized:?}") };
        assert_eq!(event.kind, EventKind::Mover);
        assert_eq!(event.person, PersonKey::new("conn", "1187"));
        assert_eq!(event.source_kind, SourceKind::Bamboohr);
        assert_hashed_id(&event.source_event_id, "employee.updated:1187:2026-03-02T09:15:00+0000");
        assert_eq!(event.effective_at.to_rfc3339(), "2026-03-02T09:15:00+00:00");
        assert_eq!(event.attributes, Attributes::default());
    }

    #[test]
    fn event_based_types_map_to_joiner_leaver_mover_or_ignored() {
        let body = |t: &str, fields: &str| {
            format!(
                r#"{{"type":"{t}","timestamp":"2026-03-02T09:15:00+0000","data":{{"companyId":"48213","employeeId":1187,"changedFields":[{fields}]}}}}"#
            )
        };
        let kind = |t: &str, fields: &str| signed(&body(t, fields), "1772442900").events.first().map(|e| e.kind);
        assert_eq!(kind("employee.created", ""), Some(EventKind::Joiner));
        assert_eq!(kind("employee.deleted", ""), Some(EventKind::Leaver));
        assert_eq!(kind("employee.updated", r#""terminationDate""#), Some(EventKind::Leaver));
        assert_eq!(kind("employee.updated", r#""employmentHistoryStatus""#), Some(EventKind::Leaver));
        assert_eq!(kind("employee.updated", r#""status","department""#), Some(EventKind::Leaver));
        assert_eq!(kind("employee.updated", r#""jobTitle""#), Some(EventKind::Mover));
        assert_eq!(kind("employee.updated", r#""workEmail""#), Some(EventKind::Mover));
        let ignored = signed(&body("employee.updated", r#""payRate""#), "1772442900");
        assert!(ignored.events.is_empty());
        assert_eq!(ignored.ignored.len(), 1);
        assert_eq!(kind("company.updated", ""), None);
    }

    #[test]
    fn the_field_based_termination_fixture_is_a_leaver_with_attributes() {
        let body = include_str!("../../../tests/fixtures/bamboohr/field-based-termination.json");
        let normalized = signed(body, "1775001000");
        let [event] = normalized.events.as_slice() else { panic!("{normalized:?}") };
        assert_eq!(event.kind, EventKind::Leaver);
        assert_eq!(event.person, PersonKey::new("conn", "1187"));
        assert_hashed_id(&event.source_event_id, "employee_with_fields.updated:1187:2026-03-31T23:05:11+0000");
        assert_eq!(event.effective_at.to_rfc3339(), "2026-03-31T23:05:11+00:00");
        assert_eq!(
            event.attributes,
            Attributes {
                work_email: Some("dana.kim@example.com".into()),
                given_name: Some("Dana".into()),
                family_name: Some("Kim".into()),
                department: Some("Finance".into()),
                title: Some("Senior Accountant".into()),
                manager: Some("Sam Lee".into()),
                employment_status: Some("Inactive".into()),
                employment_type: Some("Terminated".into()),
                ..Default::default()
            }
        );
    }

    #[test]
    fn the_fusebit_fixture_without_action_or_timestamp_is_a_mover_keyed_on_the_header() {
        let normalized = signed(&vector("bamboohr_fusebit", "body"), &vector("bamboohr_fusebit", "ts"));
        let [event] = normalized.events.as_slice() else { panic!("{normalized:?}") };
        assert_eq!(event.kind, EventKind::Mover);
        assert_hashed_id(&event.source_event_id, "employee_with_fields.updated:5:1658248023");
        assert_eq!(event.attributes.given_name.as_deref(), Some("Tefi"));
        assert_eq!(event.attributes.family_name.as_deref(), Some("Adams"));
    }

    #[test]
    fn two_changes_in_one_second_get_different_ids_and_a_redelivery_the_same() {
        let ids = |body: &str| -> Vec<String> {
            let normalized = signed(body, "1772442900");
            normalized.events.iter().map(|e| e.source_event_id.clone()).collect()
        };
        // Event-based: one employee, one second, different fields changed.
        let event_based = |fields: &str| {
            format!(
                r#"{{"type":"employee.updated","timestamp":"2026-03-02T09:15:00+0000","data":{{"employeeId":1187,"changedFields":[{fields}]}}}}"#
            )
        };
        let department = ids(&event_based(r#""department""#));
        let title = ids(&event_based(r#""jobTitle""#));
        assert_eq!((department.len(), title.len()), (1, 1));
        assert_ne!(department, title);
        assert_eq!(department, ids(&event_based(r#""department""#)), "a redelivery keeps its id");

        // Field-based: the same field changed twice within the second, to different values.
        let entry = |department: &str| {
            format!(
                r#"{{"id":"1187","action":"Updated","timestamp":"2026-03-02T09:15:00+0000","changedFields":["Department"],"fields":{{"Department":{{"value":"{department}"}}}}}}"#
            )
        };
        let field_based = |department: &str| format!(r#"{{"employees":[{}]}}"#, entry(department));
        let to_sales = ids(&field_based("Sales"));
        let to_finance = ids(&field_based("Finance"));
        assert_eq!((to_sales.len(), to_finance.len()), (1, 1));
        assert_ne!(to_sales, to_finance);
        assert_eq!(to_sales, ids(&field_based("Sales")), "a redelivery keeps its id");
        // Both changes in one body are two events, not one.
        let both = ids(&format!(r#"{{"employees":[{},{}]}}"#, entry("Sales"), entry("Finance")));
        assert_eq!(both.len(), 2);
        assert_ne!(both[0], both[1]);
    }

    #[test]
    fn field_based_batches_map_each_employee() {
        let body = r#"{"employees":[
          {"id":"1","action":"Created","timestamp":"2026-03-01T08:00:00+0000","fields":{"Work Email":{"value":"a@example.com"}}},
          {"id":"2","action":"Updated","timestamp":"2026-03-01T08:00:00+0000","changedFields":["Status"],"fields":{"Status":{"value":"Active"}}},
          {"id":"3","action":"Updated","timestamp":"2026-03-01T08:00:00+0000","changedFields":["Department"],"fields":{"Department":{"value":"Sales"}}},
          {"id":"4","action":"Deleted","timestamp":"2026-03-01T08:00:00+0000","fields":{}},
          {"id":"5","action":"Updated","timestamp":"2026-03-01T08:00:00+0000","changedFields":["Pay Rate"],"fields":{}}]}"#;
        let normalized = signed(body, "1772352000");
        let kinds: Vec<_> = normalized.events.iter().map(|e| (e.person.id.as_str(), e.kind)).collect();
        assert_eq!(
            kinds,
            [("1", EventKind::Joiner), ("2", EventKind::Rehire), ("3", EventKind::Mover), ("4", EventKind::Leaver)]
        );
        assert_eq!(normalized.ignored.len(), 1);
    }

    #[test]
    fn event_based_form_posts_are_parsed_and_field_based_ones_refused() {
        let body = "type=employee.updated&timestamp=2026-03-02T09%3A15%3A00%2B0000&data%5BcompanyId%5D=48213&data%5BemployeeId%5D=1187&data%5BchangedFields%5D%5B0%5D=department";
        let key = "k";
        let sig = sign(key, body.as_bytes(), "1772442900");
        let pairs = [
            ("x-bamboohr-signature", sig.as_str()),
            ("x-bamboohr-timestamp", "1772442900"),
            ("content-type", "application/x-www-form-urlencoded; charset=utf-8"),
        ];
        let normalized = events(run(key, &pairs, body.as_bytes(), "2026-03-02T09:15:00Z"));
        assert_eq!(normalized.events[0].kind, EventKind::Mover);
        let twin = r#"{"type":"employee.updated","timestamp":"2026-03-02T09:15:00+0000","data":{"companyId":"48213","employeeId":"1187","changedFields":["department"]}}"#;
        assert_eq!(normalized.events[0].source_event_id, signed(twin, "1772442900").events[0].source_event_id);
        assert_hashed_id(&normalized.events[0].source_event_id, "employee.updated:1187:2026-03-02T09:15:00+0000");

        let body = "employees%5B0%5D%5Bid%5D=1187";
        let sig = sign(key, body.as_bytes(), "1772442900");
        let pairs = [
            ("x-bamboohr-signature", sig.as_str()),
            ("x-bamboohr-timestamp", "1772442900"),
            ("content-type", "application/x-www-form-urlencoded"),
        ];
        assert!(matches!(
            run(key, &pairs, body.as_bytes(), "2026-03-02T09:15:00Z"),
            Err(SourceError::UnsupportedMediaType(_))
        ));
    }

    #[test]
    fn malformed_bodies_get_a_helpful_400() {
        for (body, expected) in [
            ("not json", "not valid JSON"),
            (r#"{"hello":1}"#, "not a BambooHR webhook payload"),
            (r#"{"type":"employee.updated","data":{"changedFields":[]}}"#, "data.employeeId"),
            (r#"{"employees":[{"action":"Created"}]}"#, "employees[0].id"),
            (r#"{"employees":"nope"}"#, "employees must be an array"),
        ] {
            let key = "k";
            let sig = sign(key, body.as_bytes(), "1772442900");
            let pairs = [("x-bamboohr-signature", sig.as_str()), ("x-bamboohr-timestamp", "1772442900")];
            match run(key, &pairs, body.as_bytes(), "2026-03-02T09:15:00Z") {
                Err(SourceError::BadRequest(message)) => assert!(message.contains(expected), "{message}"),
                other => panic!("{body}: {other:?}"),
            }
        }
    }
}
