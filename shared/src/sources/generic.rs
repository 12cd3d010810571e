//! Generic senders, signed with Standard Webhooks (`webhook-id`, `webhook-timestamp`,
//! `webhook-signature`; Svix's `svix-*` names are accepted as aliases). The body is our own
//! canonical event JSON, one event or an array, validated against the published schema.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};
use hmac::Mac;
use serde::Deserialize;
use serde_json::Value;
use std::fmt;

use super::{
    Context, Ignored, InboundRequest, Normalized, Outcome, SourceError, check_timestamp, hmac_sha256, parse_json,
};
use crate::event::{ATTRIBUTE_FIELDS, LifecycleEvent, SourceKind};

/// The schema every generic event must satisfy.
pub const LIFECYCLE_EVENT_SCHEMA: &str = include_str!("../../schemas/lifecycle-event.v1.json");

/// How many schema violations a 400 lists; more would only bury the first one.
const MAX_REPORTED_ERRORS: usize = 5;

#[derive(Debug, Deserialize)]
pub struct Config {
    /// `whsec_` followed by the base64 key, as Standard Webhooks senders display it.
    pub secret: StandardWebhookKey,
}

/// What is wrong with a generic connection's secret that does not decode.
pub const KEY_PROBLEM: &str = "a generic connection's secret must be \"whsec_\" followed by base64";

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
            _ => Err(KEY_PROBLEM.to_owned()),
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

/// One rule of [`LIFECYCLE_EVENT_SCHEMA`] that an event breaks: the JSON pointer of the
/// offending value and what is wrong with it. The message names the rule, never the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaViolation {
    pub path: String,
    pub message: String,
}

const EVENT_FIELDS: &[&str] = &[
    "version",
    "kind",
    "person",
    "source_kind",
    "source_event_id",
    "effective_at",
    "received_at",
    "attributes",
    "immediate",
    "requeued",
];
const EVENT_REQUIRED: &[&str] = &["kind", "person", "source_kind", "source_event_id", "effective_at"];
const PERSON_FIELDS: &[&str] = &["source", "id"];
const KINDS: &[&str] = &["joiner", "mover", "leaver", "rehire", "converge"];
const SOURCE_KINDS: &[&str] = &["generic", "bamboohr", "hibob", "okta"];
const DATE_FIELDS: &[&str] = &["start_date", "termination_date"];
const SOURCE_PATTERN: &str = "^[A-Za-z0-9_.-]+$";
const WORK_EMAIL_PATTERN: &str = r"^[^@\s]+@[^@\s]+$";

/// Every rule of [`LIFECYCLE_EVENT_SCHEMA`] that `event` breaks, with the schema's own
/// semantics: lengths in characters, `pattern` as ECMA-262 reads it, `format: date-time` as
/// RFC 3339. The checks are written out here rather than run by a JSON Schema engine (the
/// `jsonschema` crate was 4.7 MB of the 16.6 MB ingest binary); the tests hold them to the
/// schema file, run by `jsonschema`, over every fixture and thousands of generated variants.
pub fn schema_violations(event: &Value) -> Vec<SchemaViolation> {
    let mut check = SchemaCheck::default();
    let Some(fields) = check.object("", event, EVENT_REQUIRED, EVENT_FIELDS) else {
        return check.violations;
    };
    for (name, value) in fields {
        let path = format!("/{name}");
        match name.as_str() {
            "version" if value.as_f64() != Some(1.0) => check.fail(&path, "1 was expected".to_owned()),
            "kind" => check.one_of(&path, value, KINDS),
            "source_kind" => check.one_of(&path, value, SOURCE_KINDS),
            "source_event_id" => {
                check.text(&path, value, 256);
            }
            "effective_at" | "received_at" => check.date_time(&path, value),
            "immediate" if !value.is_boolean() => check.fail(&path, "a boolean was expected".to_owned()),
            // JSON Schema's `integer` includes 1.0.
            "requeued" if value.as_f64().is_none_or(|n| n < 0.0 || n.fract() != 0.0) => {
                check.fail(&path, "a non-negative integer was expected".to_owned())
            }
            "person" => {
                let Some(person) = check.object(&path, value, PERSON_FIELDS, PERSON_FIELDS) else { continue };
                if let Some(source) = person.get("source") {
                    let path = format!("{path}/source");
                    if check.text(&path, source, 64).is_some_and(|text| !is_source_name(text)) {
                        check.fail(&path, format!("value does not match {SOURCE_PATTERN:?}"));
                    }
                }
                if let Some(id) = person.get("id") {
                    check.text(&format!("{path}/id"), id, 128);
                }
            }
            "attributes" => {
                let Some(attributes) = check.object(&path, value, &[], &ATTRIBUTE_FIELDS) else { continue };
                for (name, value) in attributes.iter().filter(|(name, _)| ATTRIBUTE_FIELDS.contains(&name.as_str())) {
                    let path = format!("{path}/{name}");
                    if DATE_FIELDS.contains(&name.as_str()) {
                        check.date(&path, value);
                        continue;
                    }
                    let text = check.text(&path, value, 512);
                    if name == "work_email" && text.is_some_and(|text| !is_work_email(text)) {
                        check.fail(&path, format!("value does not match {WORK_EMAIL_PATTERN:?}"));
                    }
                }
            }
            _ => {}
        }
    }
    check.violations
}

#[derive(Default)]
struct SchemaCheck {
    violations: Vec<SchemaViolation>,
}

impl SchemaCheck {
    fn fail(&mut self, path: &str, message: String) {
        self.violations.push(SchemaViolation { path: path.to_owned(), message });
    }

    /// `type: object`, `required` and `additionalProperties: false`; the object if it is one.
    fn object<'v>(
        &mut self,
        path: &str,
        value: &'v Value,
        required: &[&str],
        known: &[&str],
    ) -> Option<&'v serde_json::Map<String, Value>> {
        let Some(object) = value.as_object() else {
            self.fail(path, r#"value is not of type "object""#.to_owned());
            return None;
        };
        for name in required.iter().filter(|name| !object.contains_key(**name)) {
            self.fail(path, format!("{name:?} is a required property"));
        }
        let unexpected: Vec<String> =
            object.keys().filter(|name| !known.contains(&name.as_str())).map(|name| format!("'{name}'")).collect();
        if !unexpected.is_empty() {
            let verb = if unexpected.len() == 1 { "was" } else { "were" };
            self.fail(
                path,
                format!("Additional properties are not allowed ({} {verb} unexpected)", unexpected.join(", ")),
            );
        }
        Some(object)
    }

    /// `type: string`; the string if it is one.
    fn string<'v>(&mut self, path: &str, value: &'v Value) -> Option<&'v str> {
        let text = value.as_str();
        if text.is_none() {
            self.fail(path, r#"value is not of type "string""#.to_owned());
        }
        text
    }

    /// `type: string` with `minLength: 1` and `maxLength: max`, counted in characters; the
    /// string if it is one.
    fn text<'v>(&mut self, path: &str, value: &'v Value, max: usize) -> Option<&'v str> {
        let text = self.string(path, value)?;
        if text.is_empty() {
            self.fail(path, "value is shorter than 1 character".to_owned());
        } else if text.chars().count() > max {
            self.fail(path, format!("value is longer than {max} characters"));
        }
        Some(text)
    }

    /// `type: string` with `format: date-time`.
    fn date_time(&mut self, path: &str, value: &Value) {
        if self.string(path, value).is_some_and(|text| !is_date_time(text)) {
            self.fail(path, r#"value is not a "date-time""#.to_owned());
        }
    }

    /// `enum` of strings.
    /// `format: date`: a full date, `YYYY-MM-DD` (RFC 3339 `full-date`).
    fn date(&mut self, path: &str, value: &Value) {
        let Some(text) = self.string(path, value) else { return };
        let valid = text.len() == 10 && chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").is_ok();
        if !valid {
            self.fail(path, "a date (YYYY-MM-DD) was expected".to_owned());
        }
    }

    fn one_of(&mut self, path: &str, value: &Value, allowed: &[&str]) {
        if !value.as_str().is_some_and(|text| allowed.contains(&text)) {
            let quoted: Vec<String> = allowed.iter().map(|option| format!("{option:?}")).collect();
            let (last, rest) = quoted.split_last().expect("an enum has options");
            self.fail(path, format!("value is not one of {} or {last}", rest.join(", ")));
        }
    }
}

/// `^[A-Za-z0-9_.-]+$`
fn is_source_name(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// `^[^@\s]+@[^@\s]+$`, with ECMA-262's `\s` (which, unlike Rust's `char::is_whitespace`,
/// includes U+FEFF and excludes U+0085).
fn is_work_email(text: &str) -> bool {
    let is_ecma_space = |c: char| {
        matches!(
            c,
            '\t'..='\r'
                | ' '
                | '\u{a0}'
                | '\u{1680}'
                | '\u{2000}'..='\u{200a}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202f}'
                | '\u{205f}'
                | '\u{3000}'
                | '\u{feff}'
        )
    };
    match text.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty() && !domain.is_empty() && !domain.contains('@') && !text.contains(is_ecma_space)
        }
        None => false,
    }
}

/// RFC 3339 `date-time` as the JSON Schema `format` reads it: `YYYY-MM-DDTHH:MM:SS[.frac]`
/// then `Z` or `±HH:MM`, `T` and `Z` in either case, a real calendar day, and second 60 only
/// at 23:59 UTC.
fn is_date_time(text: &str) -> bool {
    fn number(bytes: &[u8]) -> Option<u32> {
        bytes.iter().try_fold(0, |n, &b| b.is_ascii_digit().then(|| n * 10 + u32::from(b - b'0')))
    }
    let Some((date, time)) = text.split_once(['T', 't']) else { return false };
    let (date, time) = (date.as_bytes(), time.as_bytes());

    if date.len() != 10 || date[4] != b'-' || date[7] != b'-' {
        return false;
    }
    let (Some(year), Some(month), Some(day)) = (number(&date[..4]), number(&date[5..7]), number(&date[8..])) else {
        return false;
    };
    let leap_year = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap_year => 29,
        2 => 28,
        _ => return false,
    };
    if day == 0 || day > days_in_month {
        return false;
    }

    if time.len() < 9 || time[2] != b':' || time[5] != b':' {
        return false;
    }
    let (Some(hour), Some(minute), Some(second)) = (number(&time[..2]), number(&time[3..5]), number(&time[6..8]))
    else {
        return false;
    };
    if hour > 23 || minute > 59 || second > 60 {
        return false;
    }
    let mut rest = &time[8..];
    if let Some(fraction) = rest.strip_prefix(b".") {
        let digits = fraction.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 {
            return false;
        }
        rest = &fraction[digits..];
    }
    let offset_minutes: i64 = match rest {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let (Some(hours), Some(minutes)) = (number(&[*h1, *h2]), number(&[*m1, *m2])) else { return false };
            if hours > 23 || minutes > 59 {
                return false;
            }
            let minutes = i64::from(hours * 60 + minutes);
            if *sign == b'+' { minutes } else { -minutes }
        }
        _ => return false,
    };
    // A leap second is inserted at the end of a UTC day.
    second != 60 || (i64::from(hour * 60 + minute) - offset_minutes).rem_euclid(24 * 60) == 23 * 60 + 59
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
    let mut problems = Vec::new();
    for (index, item) in items.iter().enumerate() {
        for violation in schema_violations(item) {
            problems.push(format!("event {index} at {:?}: {}", violation.path, violation.message));
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
        event.requeued = 0;
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

    /// The schema file run by a JSON Schema engine: what [`schema_violations`] is held to.
    fn reference() -> &'static jsonschema::Validator {
        static REFERENCE: std::sync::OnceLock<jsonschema::Validator> = std::sync::OnceLock::new();
        REFERENCE.get_or_init(|| {
            let schema: serde_json::Value = serde_json::from_str(LIFECYCLE_EVENT_SCHEMA).unwrap();
            jsonschema::options().should_validate_formats(true).build(&schema).unwrap()
        })
    }

    /// Both find the same violations: one per broken rule, at the same JSON pointers.
    fn assert_agrees_with_the_schema(event: &serde_json::Value) {
        let mut ours: Vec<String> = schema_violations(event).into_iter().map(|v| v.path).collect();
        let mut reference: Vec<String> =
            reference().iter_errors(event).map(|e| e.instance_path().as_str().to_owned()).collect();
        ours.sort();
        reference.sort();
        assert_eq!(ours, reference, "{event}");
    }

    fn full_event() -> serde_json::Value {
        serde_json::from_str(include_str!("../../../tests/fixtures/events/joiner-full.json")).unwrap()
    }

    /// `event` with the value at `pointer` replaced (`Some`) or removed (`None`).
    fn with(pointer: &str, value: Option<serde_json::Value>) -> serde_json::Value {
        let mut event = full_event();
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        let object = event.pointer_mut(parent).unwrap().as_object_mut().unwrap();
        match value {
            Some(value) => object.insert(key.to_owned(), value),
            None => object.remove(key),
        };
        event
    }

    const DATE_TIMES: &[&str] = &[
        "2026-03-02T09:15:00Z",
        "2026-03-02t09:15:00z",
        "2026-03-02T09:15:00.123456789+05:30",
        "2026-03-02T09:15:00-00:00",
        "2024-02-29T00:00:00Z",
        "2023-02-29T00:00:00Z",
        "2026-04-31T00:00:00Z",
        "2026-13-01T00:00:00Z",
        "2026-00-10T00:00:00Z",
        "2026-01-00T00:00:00Z",
        "1900-02-29T00:00:00Z",
        "2000-02-29T00:00:00Z",
        "2026-03-02 09:15:00Z",
        "2026-03-02T09:15Z",
        "2026-03-02T09:15:00",
        "2026-03-02T09:15:00.Z",
        "2026-03-02T24:00:00Z",
        "2026-03-02T23:60:00Z",
        "2026-12-31T23:59:60Z",
        "2026-12-31T23:58:60Z",
        "2026-12-31T15:59:60-08:00",
        "2027-01-01T00:59:60+01:00",
        "2026-12-31T23:59:60+00:30",
        "2026-03-02T09:15:00+24:00",
        "2026-03-02T09:15:00+05:60",
        "2026-03-02T09:15:00+0530",
        "2026-03-02T09:15:00+05:30:00",
        "2026-03-02T09:15:00ZZ",
        "26-03-02T09:15:00Z",
        "2026-3-02T09:15:00Z",
        "+2026-03-02T09:15:00Z",
        "2026-03-02T0a:15:00Z",
        "2026-03-02T09:15:00.5\u{663}Z",
        "yesterday",
        "",
        "T",
        "2026-03-02T",
    ];

    const STRINGS: &[&str] = &[
        "a",
        "",
        "dana.kim@example.com",
        "@example.com",
        "dana@",
        "dana@@example.com",
        "da@na@example.com",
        "dana kim@example.com",
        "dana@example.com\n",
        "dana\u{85}@example.com",
        "dana\u{a0}@example.com",
        "dana\u{feff}@example.com",
        "dana\u{3000}@example.com",
        "dana\u{2009}@example.com",
        "dana\u{200b}@example.com",
        "jürgen@exämple.com",
        "okta-main_2.eu",
        "okta main",
        "okta/main",
        "okta:main",
        "ökta",
        "E-1042",
    ];

    #[test]
    fn the_rust_checks_find_what_the_schema_finds() {
        let fixtures = |dir: &str| -> Vec<serde_json::Value> {
            let dir = format!("{}/../tests/fixtures/{dir}", env!("CARGO_MANIFEST_DIR"));
            let read =
                |path: std::path::PathBuf| serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
            std::fs::read_dir(dir).unwrap().map(|entry| read(entry.unwrap().path())).collect()
        };
        for event in fixtures("events") {
            assert!(schema_violations(&event).is_empty(), "{event}");
            assert_agrees_with_the_schema(&event);
        }
        for event in fixtures("events-invalid") {
            assert!(!schema_violations(&event).is_empty(), "{event}");
            assert_agrees_with_the_schema(&event);
        }

        let odd_values = [
            serde_json::json!(null),
            serde_json::json!(true),
            serde_json::json!(1),
            serde_json::json!(1.0),
            serde_json::json!(2),
            serde_json::json!(-1),
            serde_json::json!(1.5),
            serde_json::json!("1"),
            serde_json::json!("joiner"),
            serde_json::json!("generic"),
            serde_json::json!([]),
            serde_json::json!(["joiner"]),
            serde_json::json!({}),
            serde_json::json!({"source": "s", "id": "1"}),
        ];
        let mut pointers: Vec<String> = EVENT_FIELDS.iter().map(|name| format!("/{name}")).collect();
        pointers.extend(PERSON_FIELDS.iter().map(|name| format!("/person/{name}")));
        pointers.extend(ATTRIBUTE_FIELDS.iter().map(|name| format!("/attributes/{name}")));
        pointers.extend(["/unknown", "/person/email", "/attributes/emial"].map(str::to_owned));
        for pointer in &pointers {
            assert_agrees_with_the_schema(&with(pointer, None));
            for value in &odd_values {
                assert_agrees_with_the_schema(&with(pointer, Some(value.clone())));
            }
            for text in STRINGS.iter().chain(DATE_TIMES) {
                assert_agrees_with_the_schema(&with(pointer, Some((*text).into())));
            }
            for length in [63, 64, 65, 127, 128, 129, 255, 256, 257, 511, 512, 513] {
                for unit in ["a", "é", "😀"] {
                    assert_agrees_with_the_schema(&with(pointer, Some(unit.repeat(length).into())));
                }
            }
        }
        for event in [serde_json::json!(42), serde_json::json!("text"), serde_json::json!([]), serde_json::json!(null)]
        {
            assert_agrees_with_the_schema(&event);
        }
        let mut many_unknown = full_event();
        many_unknown["b"] = 1.into();
        many_unknown["a"] = 2.into();
        many_unknown.as_object_mut().unwrap().remove("kind");
        assert_agrees_with_the_schema(&many_unknown);
    }

    #[test]
    fn violations_say_what_is_wrong_in_the_schemas_words() {
        let messages = |event: serde_json::Value| -> Vec<String> {
            schema_violations(&event).into_iter().map(|v| format!("{} {}", v.path, v.message)).collect()
        };
        assert_eq!(
            messages(with("/kind", Some("promoted".into()))),
            [r#"/kind value is not one of "joiner", "mover", "leaver", "rehire" or "converge""#]
        );
        assert_eq!(messages(with("/person/id", None)), [r#"/person "id" is a required property"#]);
        assert_eq!(
            messages(with("/attributes/departmnet", Some("Sales".into()))),
            ["/attributes Additional properties are not allowed ('departmnet' was unexpected)"]
        );
        assert_eq!(messages(with("/version", Some(2.into()))), ["/version 1 was expected"]);
        assert_eq!(
            messages(with("/effective_at", Some("yesterday".into()))),
            [r#"/effective_at value is not a "date-time""#]
        );
        assert_eq!(
            messages(with("/source_event_id", Some(7.into()))),
            [r#"/source_event_id value is not of type "string""#]
        );
        assert_eq!(
            messages(with("/person/source", Some("".into()))),
            [
                "/person/source value is shorter than 1 character",
                r#"/person/source value does not match "^[A-Za-z0-9_.-]+$""#
            ]
        );
        assert_eq!(
            messages(with("/attributes/title", Some("x".repeat(513).into()))),
            ["/attributes/title value is longer than 512 characters"]
        );
        assert_eq!(
            messages(with("/attributes/work_email", Some("dana at example.com".into()))),
            [r#"/attributes/work_email value does not match "^[^@\\s]+@[^@\\s]+$""#]
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(500))]

        #[test]
        fn the_rust_checks_agree_with_the_schema_on_any_string(
            text in "[a-zA-Z0-9@._+:Tt Zz\\-\t\n\u{85}\u{a0}\u{feff}\u{3000}é😀]{0,24}",
            field in proptest::sample::select(vec![
                "/person/source", "/person/id", "/source_event_id", "/effective_at", "/attributes/work_email",
                "/attributes/given_name",
            ]),
        ) {
            assert_agrees_with_the_schema(&with(field, Some(text.into())));
        }

        #[test]
        fn the_rust_checks_agree_with_the_schema_on_date_times(
            date in "[0-9]{4}-[0-9]{2}-[0-9]{2}",
            separator in "[Tt ]",
            time in "[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{0,3})?",
            offset in "([Zz]|[+-][0-9]{2}:[0-9]{2}|[+-][0-9]{4}|)",
        ) {
            let stamp = format!("{date}{separator}{time}{offset}");
            assert_agrees_with_the_schema(&with("/effective_at", Some(stamp.clone().into())));
            assert_agrees_with_the_schema(&with("/received_at", Some(stamp.into())));
        }
    }
}
