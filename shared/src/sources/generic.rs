//! Generic senders, signed with Standard Webhooks (`webhook-id`, `webhook-timestamp`,
//! `webhook-signature`; Svix's `svix-*` names are accepted as aliases). The body is our own
//! canonical event JSON, one event or an array, validated against the published schema.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};
use hmac::Mac;
use serde::Deserialize;
use std::fmt;
use std::sync::OnceLock;

use super::{
    Context, Ignored, InboundRequest, Normalized, Outcome, SourceError, check_timestamp, hmac_sha256, parse_json,
};
use crate::event::{LifecycleEvent, SourceKind};

/// The schema every generic event must satisfy.
pub const LIFECYCLE_EVENT_SCHEMA: &str = include_str!("../../schemas/lifecycle-event.v1.json");

/// How many schema violations a 400 lists; more would only bury the first one.
const MAX_REPORTED_ERRORS: usize = 5;

#[derive(Debug, Deserialize)]
pub struct Config {
    /// `whsec_` followed by the base64 key, as Standard Webhooks senders display it.
    pub secret: StandardWebhookKey,
}

/// The decoded HMAC key. Never printed.
#[derive(Clone, Deserialize)]
#[serde(try_from = "String")]
pub struct StandardWebhookKey(Vec<u8>);

impl StandardWebhookKey {
    /// Accepts `whsec_<base64>` (or the bare base64); the HMAC key is the decoded bytes.
    pub fn parse(secret: &str) -> Result<Self, String> {
        let encoded = secret.trim();
        let encoded = encoded.strip_prefix("whsec_").unwrap_or(encoded);
        match BASE64.decode(encoded) {
            Ok(key) if !key.is_empty() => Ok(StandardWebhookKey(key)),
            _ => Err("a generic connection's secret must be \"whsec_\" followed by base64".to_owned()),
        }
    }
}

impl TryFrom<String> for StandardWebhookKey {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl fmt::Debug for StandardWebhookKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StandardWebhookKey(***)")
    }
}

/// The `webhook-signature` value a sender would put on this message: `v1,<base64>`.
pub fn sign(key: &StandardWebhookKey, id: &str, timestamp: &str, body: &[u8]) -> String {
    let mac = hmac_sha256(&key.0, &[id.as_bytes(), b".", timestamp.as_bytes(), b".", body]);
    format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
}

fn header<'r>(request: &'r InboundRequest<'_>, name: &str) -> Option<&'r str> {
    request
        .header(&format!("webhook-{name}"))
        .or_else(|| request.header(&format!("svix-{name}")))
        .filter(|v| !v.is_empty())
}

/// Checks the signature and the timestamp; returns the `webhook-id`.
pub fn verify<'r>(
    config: &Config,
    request: &'r InboundRequest<'_>,
    context: &Context<'_>,
) -> Result<&'r str, SourceError> {
    let missing = || SourceError::Unauthorized("missing Standard Webhooks headers");
    let id = header(request, "id").ok_or_else(missing)?;
    let timestamp = header(request, "timestamp").ok_or_else(missing)?;
    let signatures = header(request, "signature").ok_or_else(missing)?;
    let signed_at = timestamp
        .parse::<i64>()
        .ok()
        .and_then(|seconds| DateTime::<Utc>::from_timestamp(seconds, 0))
        .ok_or(SourceError::Unauthorized("webhook-timestamp is not Unix seconds"))?;
    check_timestamp(signed_at, context)?;
    let mac = hmac_sha256(&config.secret.0, &[id.as_bytes(), b".", timestamp.as_bytes(), b".", request.body]);
    let matches = signatures
        .split(' ')
        .filter_map(|entry| entry.split_once(','))
        .filter(|(version, _)| *version == "v1")
        .filter_map(|(_, signature)| BASE64.decode(signature).ok())
        .any(|signature| mac.clone().verify_slice(&signature).is_ok());
    if matches { Ok(id) } else { Err(SourceError::Unauthorized("no v1 signature matches")) }
}

fn validator() -> &'static jsonschema::Validator {
    static VALIDATOR: OnceLock<jsonschema::Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| {
        let schema: serde_json::Value =
            serde_json::from_str(LIFECYCLE_EVENT_SCHEMA).expect("the bundled schema is JSON");
        jsonschema::options()
            .should_validate_formats(true)
            .build(&schema)
            .expect("the bundled schema is a valid JSON Schema")
    })
}

/// Parses and checks the body: one event or an array of them.
pub fn parse(body: &[u8], context: &Context<'_>) -> Result<Normalized, SourceError> {
    let value: serde_json::Value = parse_json(body, "generic webhook body")?;
    let items = match value {
        serde_json::Value::Array(items) => items,
        single @ serde_json::Value::Object(_) => vec![single],
        _ => {
            return Err(SourceError::bad_request(
                "the body must be one lifecycle event (a JSON object) or an array of them",
            ));
        }
    };
    let validator = validator();
    let mut problems = Vec::new();
    for (index, item) in items.iter().enumerate() {
        for error in validator.iter_errors(item) {
            problems.push(format!("event {index} at {:?}: {}", error.instance_path().as_str(), error.masked()));
        }
    }
    if !problems.is_empty() {
        let more = problems.len().saturating_sub(MAX_REPORTED_ERRORS);
        problems.truncate(MAX_REPORTED_ERRORS);
        let mut message = format!(
            "the body does not match the lifecycle event schema (schemas/lifecycle-event.v1.json): {}",
            problems.join("; ")
        );
        if more > 0 {
            message.push_str(&format!("; and {more} more"));
        }
        return Err(SourceError::BadRequest(message));
    }

    let mut events = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        let mut event: LifecycleEvent = serde_json::from_value(item).map_err(|error| {
            SourceError::bad_request(format!(
                "event {index} is not a valid lifecycle event: {}",
                error_category(&error)
            ))
        })?;
        if event.person.source != context.connection {
            return Err(SourceError::bad_request(format!(
                "event {index}: person.source must be this connection's name {:?}; a generic sender speaks only for its own people",
                context.connection
            )));
        }
        if event.source_kind != SourceKind::Generic {
            return Err(SourceError::bad_request(format!(
                "event {index}: source_kind must be \"generic\" on a generic connection"
            )));
        }
        event.received_at = context.now;
        events.push(event);
    }
    Ok(Normalized { events, ignored: Vec::<Ignored>::new() })
}

fn error_category(error: &serde_json::Error) -> &'static str {
    match error.classify() {
        serde_json::error::Category::Data => "a field has the wrong type or format",
        _ => "it is not valid JSON",
    }
}

pub fn process(config: &Config, request: &InboundRequest<'_>, context: &Context<'_>) -> Result<Outcome, SourceError> {
    let webhook_id = verify(config, request, context)?;
    let normalized = parse(request.body, context)?;
    tracing::debug!(webhook_id, events = normalized.events.len(), "generic webhook parsed");
    Ok(Outcome::Events(normalized))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{context, headers, vector};
    use super::*;
    use crate::event::EventKind;

    fn config(secret: &str) -> Config {
        Config { secret: StandardWebhookKey::parse(secret).unwrap() }
    }

    fn check(secret: &str, pairs: &[(&str, &str)], body: &[u8], now: &str) -> Result<(), SourceError> {
        let headers = headers(pairs);
        let method = http::Method::POST;
        let request = InboundRequest { method: &method, headers: &headers, body };
        verify(&config(secret), &request, &context(now)).map(|_| ())
    }

    const AT_VECTOR_TIME: &str = "2026-03-02T09:15:00Z";

    fn vector_headers(signature: &str) -> Vec<(&'static str, String)> {
        vec![
            ("webhook-id", vector("standard", "id")),
            ("webhook-timestamp", vector("standard", "ts")),
            ("webhook-signature", signature.to_owned()),
        ]
    }

    fn as_refs<'a>(pairs: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
        pairs.iter().map(|(k, v)| (*k, v.as_str())).collect()
    }

    #[test]
    fn our_standard_webhooks_vector_verifies() {
        let pairs = vector_headers(&vector("standard", "sig"));
        let body = vector("standard", "body");
        assert_eq!(check(&vector("standard", "secret"), &as_refs(&pairs), body.as_bytes(), AT_VECTOR_TIME), Ok(()));
    }

    #[test]
    fn the_published_reference_vector_verifies_with_svix_headers() {
        let pairs = [
            ("svix-id", "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk"),
            ("svix-timestamp", "1649367553"),
            ("svix-signature", "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="),
        ];
        let body = br#"{"email":"test@example.com","username":"test_user"}"#;
        assert_eq!(check("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD", &pairs, body, "2022-04-07T21:39:13Z"), Ok(()));
    }

    #[test]
    fn any_matching_entry_of_several_passes() {
        let good = vector("standard", "sig");
        let list = format!("v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= v1a,xyz v2,abc {good}");
        let pairs = vector_headers(&list);
        let body = vector("standard", "body");
        assert_eq!(check(&vector("standard", "secret"), &as_refs(&pairs), body.as_bytes(), AT_VECTOR_TIME), Ok(()));
    }

    #[test]
    fn tampering_wrong_keys_stale_or_future_timestamps_and_missing_headers_fail() {
        let secret = vector("standard", "secret");
        let body = vector("standard", "body");
        let good = vector_headers(&vector("standard", "sig"));
        let unauthorized = |result: Result<(), SourceError>| matches!(result, Err(SourceError::Unauthorized(_)));

        let mut flipped = body.clone().into_bytes();
        flipped[10] ^= 0x01;
        assert!(unauthorized(check(&secret, &as_refs(&good), &flipped, AT_VECTOR_TIME)));
        assert!(unauthorized(check(
            "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
            &as_refs(&good),
            body.as_bytes(),
            AT_VECTOR_TIME
        )));
        assert!(unauthorized(check(&secret, &as_refs(&good), body.as_bytes(), "2026-03-02T09:20:01Z")));
        assert!(unauthorized(check(&secret, &as_refs(&good), body.as_bytes(), "2026-03-02T09:09:59Z")));
        for skip in 0..3 {
            let partial: Vec<_> =
                as_refs(&good).into_iter().enumerate().filter(|(i, _)| *i != skip).map(|(_, p)| p).collect();
            assert!(unauthorized(check(&secret, &partial, body.as_bytes(), AT_VECTOR_TIME)));
        }
        // The secret used as-is, without base64-decoding, is a different key.
        let undecoded = Config { secret: StandardWebhookKey(secret.as_bytes().to_vec()) };
        let headers = headers(&as_refs(&good));
        let method = http::Method::POST;
        let request = InboundRequest { method: &method, headers: &headers, body: body.as_bytes() };
        assert!(matches!(verify(&undecoded, &request, &context(AT_VECTOR_TIME)), Err(SourceError::Unauthorized(_))));
    }

    #[test]
    fn sign_matches_the_vector() {
        let key = StandardWebhookKey::parse(&vector("standard", "secret")).unwrap();
        let body = vector("standard", "body");
        assert_eq!(
            sign(&key, &vector("standard", "id"), &vector("standard", "ts"), body.as_bytes()),
            vector("standard", "sig")
        );
    }

    #[test]
    fn secrets_that_are_not_base64_are_refused_without_quoting_them() {
        let error = StandardWebhookKey::parse("whsec_not*base64*at-all").unwrap_err();
        assert!(!error.contains("not*base64"), "{error}");
    }

    fn event_json(source: &str, id: &str) -> serde_json::Value {
        serde_json::json!({
            "kind": "leaver",
            "person": {"source": source, "id": "E-1042"},
            "source_kind": "generic",
            "source_event_id": id,
            "effective_at": "2026-03-31T00:00:00Z",
            "received_at": "1999-01-01T00:00:00Z",
            "attributes": {"work_email": "dana.kim@example.com"}
        })
    }

    #[test]
    fn one_event_or_an_array_normalizes_and_received_at_is_stamped() {
        let now = "2026-03-02T09:15:00Z";
        let one = serde_json::to_vec(&event_json("conn", "e1")).unwrap();
        let parsed = parse(&one, &context(now)).unwrap();
        assert_eq!(parsed.events.len(), 1);
        let event = &parsed.events[0];
        assert_eq!(event.kind, EventKind::Leaver);
        assert_eq!(event.person.to_string(), "conn:E-1042");
        assert_eq!(event.received_at.to_rfc3339(), "2026-03-02T09:15:00+00:00");
        assert_eq!(event.attributes.work_email.as_deref(), Some("dana.kim@example.com"));

        let many =
            serde_json::to_vec(&serde_json::json!([event_json("conn", "e1"), event_json("conn", "e2")])).unwrap();
        let ids: Vec<_> = parse(&many, &context(now)).unwrap().events.into_iter().map(|e| e.source_event_id).collect();
        assert_eq!(ids, ["e1", "e2"]);
        assert!(parse(b"[]", &context(now)).unwrap().events.is_empty());
    }

    #[test]
    fn events_for_another_connection_are_refused() {
        let body =
            serde_json::to_vec(&serde_json::json!([event_json("conn", "e1"), event_json("okta-main", "e2")])).unwrap();
        let error = parse(&body, &context("2026-03-02T09:15:00Z")).unwrap_err().to_string();
        assert!(error.contains("event 1") && error.contains("person.source"), "{error}");
        let mut claims_okta = event_json("conn", "e1");
        claims_okta["source_kind"] = "okta".into();
        let error = parse(&serde_json::to_vec(&claims_okta).unwrap(), &context("2026-03-02T09:15:00Z")).unwrap_err();
        assert!(error.to_string().contains("source_kind"), "{error}");
    }

    #[test]
    fn schema_violations_name_the_event_and_the_place_without_echoing_values() {
        let mut bad = event_json("conn", "e1");
        bad["kind"] = "fired-by-mistake-secretword".into();
        bad["effective_at"] = "yesterday".into();
        let body = serde_json::to_vec(&serde_json::json!([event_json("conn", "e0"), bad])).unwrap();
        let error = parse(&body, &context("2026-03-02T09:15:00Z")).unwrap_err().to_string();
        assert!(error.contains("event 1 at \"/kind\""), "{error}");
        assert!(error.contains("/effective_at"), "{error}");
        assert!(!error.contains("secretword"), "{error}");
        for body in [&b"42"[..], b"\"text\"", b"{", b"not json"] {
            assert!(matches!(parse(body, &context("2026-03-02T09:15:00Z")), Err(SourceError::BadRequest(_))));
        }
    }

    #[test]
    fn the_vector_payload_verifies_but_is_not_our_event_shape() {
        // The "employee.terminated" body of our Standard Webhooks vector is signed correctly but
        // is not the canonical event, so the admin gets a 400 that points at the schema.
        let error = parse(vector("standard", "body").as_bytes(), &context("2026-03-02T09:15:00Z")).unwrap_err();
        assert!(error.to_string().contains("schema"), "{error}");
    }
}
