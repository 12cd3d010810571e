//! The webhook sources: per source, how a request is authenticated, which handshakes it
//! answers and how its payload becomes [`LifecycleEvent`]s.
//!
//! Every source verifies the raw bytes before it parses anything. The scheme is pinned by
//! the connection's configuration, never guessed from the headers a request happens to
//! carry (that would let an attacker pick the weakest one).

pub mod bamboohr;
pub mod generic;
pub mod hibob;
pub mod okta;

use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use sha2::{Digest, Sha256, Sha512};
use std::collections::BTreeMap;
use std::time::Duration;
use subtle::ConstantTimeEq;

use crate::event::{LifecycleEvent, SourceKind};

/// The webhook connections, as stored in the connections secret:
/// `{"connections": {"<name>": {"source": "bamboohr", ...}}}` (see docs/ingest.md).
///
/// Each entry is read on its own: an entry that cannot be read (a bad name, an unknown
/// source, a missing or malformed credential) disables that connection only, with a
/// description of the problem that never quotes a value from the secret.
#[derive(Debug, Deserialize)]
#[serde(from = "RawConnections")]
pub struct Connections {
    connections: BTreeMap<String, ConnectionConfig>,
    disabled: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct RawConnections {
    connections: BTreeMap<String, serde_json::Value>,
}

impl From<RawConnections> for Connections {
    fn from(raw: RawConnections) -> Self {
        let mut connections = BTreeMap::new();
        let mut disabled = BTreeMap::new();
        for (name, entry) in raw.connections {
            if !is_valid_connection_name(&name) {
                let problem = "the name must be 1-64 characters of A-Z, a-z, 0-9, '_', '.', '-'".to_owned();
                disabled.insert(name, problem);
                continue;
            }
            match ConnectionConfig::deserialize(&entry) {
                Ok(config) => {
                    connections.insert(name, config);
                }
                Err(error) => {
                    disabled.insert(name, describe_entry_error(&error));
                }
            }
        }
        Connections { connections, disabled }
    }
}

/// What is wrong with one connection entry, in words that cannot carry a secret: serde's
/// messages quote offending values ("invalid type: string \"…\""), so only the parts
/// that name our own fields and types are kept.
fn describe_entry_error(error: &serde_json::Error) -> String {
    let text = error.to_string();
    if text.starts_with("missing field") || text == generic::KEY_PROBLEM {
        text
    } else if text.starts_with("unknown variant") {
        "\"source\" must be one of generic, bamboohr, hibob, okta".to_owned()
    } else if text.starts_with("invalid type") {
        // The expectation comes last and is serde's own wording.
        let expected = text.rsplit_once(", expected ").map_or("another type", |(_, expected)| expected);
        format!("a value has the wrong type (expected {expected})")
    } else {
        "the entry has the wrong shape".to_owned()
    }
}

/// A connection as the secret describes it.
#[derive(Debug, Clone, Copy)]
pub enum Entry<'a> {
    Ready(&'a ConnectionConfig),
    /// The entry could not be read; why, in words that quote nothing from the secret.
    Disabled(&'a str),
}

impl Connections {
    /// The connection, when its entry is usable.
    pub fn get(&self, name: &str) -> Option<&ConnectionConfig> {
        self.connections.get(name)
    }

    /// The connection whether or not its entry is usable; `None` when the secret does not
    /// name it at all.
    pub fn lookup(&self, name: &str) -> Option<Entry<'_>> {
        match self.connections.get(name) {
            Some(config) => Some(Entry::Ready(config)),
            None => self.disabled.get(name).map(|problem| Entry::Disabled(problem.as_str())),
        }
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.connections.keys().map(String::as_str)
    }

    /// The entries that could not be read, with what is wrong with each.
    pub fn disabled(&self) -> impl Iterator<Item = (&str, &str)> {
        self.disabled.iter().map(|(name, problem)| (name.as_str(), problem.as_str()))
    }
}

/// Connection names become the `source` half of every person key, so they follow its rules.
pub fn is_valid_connection_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// One connection: which kind of source it is and its credentials. Unknown keys are
/// ignored, so the worker's settings for the same connection (API tokens for read-back)
/// can live beside ingest's.
#[derive(Debug, Deserialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum ConnectionConfig {
    Generic(generic::Config),
    Bamboohr(bamboohr::Config),
    Hibob(hibob::Config),
    Okta(okta::Config),
}

impl ConnectionConfig {
    pub fn kind(&self) -> SourceKind {
        match self {
            ConnectionConfig::Generic(_) => SourceKind::Generic,
            ConnectionConfig::Bamboohr(_) => SourceKind::Bamboohr,
            ConnectionConfig::Hibob(_) => SourceKind::Hibob,
            ConnectionConfig::Okta(_) => SourceKind::Okta,
        }
    }
}

/// What a source sees of a request: the raw body bytes (already base64-decoded when the
/// event said `isBase64Encoded`) and the headers (looked up case-insensitively).
pub struct InboundRequest<'a> {
    pub method: &'a http::Method,
    pub headers: &'a http::HeaderMap,
    pub body: &'a [u8],
}

impl InboundRequest<'_> {
    /// A header's value as text; a value that is not visible ASCII counts as absent.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim)
    }

    pub fn content_type_is(&self, essence: &str) -> bool {
        self.header("content-type")
            .and_then(|ct| ct.split(';').next())
            .is_some_and(|ct| ct.trim().eq_ignore_ascii_case(essence))
    }
}

/// Everything a source needs besides the request.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The connection's name: the `source` of every person key it produces.
    pub connection: &'a str,
    pub now: DateTime<Utc>,
    /// How far a signed timestamp may be from `now`, either way.
    pub tolerance: Duration,
}

/// A request the source answered itself (a verification handshake): 200 with this body.
#[derive(Debug, Clone, PartialEq)]
pub struct Handshake(pub serde_json::Value);

/// An event the source sent that we do not act on: acknowledged and counted, not queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ignored {
    /// The source's event id, when it has one (for the logs).
    pub source_event_id: Option<String>,
    pub reason: String,
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Normalized {
    pub events: Vec<LifecycleEvent>,
    pub ignored: Vec<Ignored>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Handshake(Handshake),
    Events(Normalized),
}

/// Why a request was refused. `Unauthorized`'s reason is for our logs only; the sender
/// just gets 401.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    #[error("unauthorized: {0}")]
    Unauthorized(&'static str),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// A method the connection's source never uses. `verified` says whether the request
    /// still passed the source's verification: only then may the answer say so (405), as
    /// anything else would tell a stranger which connections exist.
    #[error("method not allowed")]
    MethodNotAllowed { verified: bool },
}

impl SourceError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        SourceError::BadRequest(message.into())
    }
}

/// Verifies, answers handshakes, parses and normalizes one request for one connection.
pub fn process(
    config: &ConnectionConfig,
    request: &InboundRequest<'_>,
    context: &Context<'_>,
) -> Result<Outcome, SourceError> {
    if !accepts(config, request.method) {
        return Err(SourceError::MethodNotAllowed { verified: verify(config, request, context).is_ok() });
    }
    match config {
        ConnectionConfig::Generic(config) => generic::process(config, request, context),
        ConnectionConfig::Bamboohr(config) => bamboohr::process(config, request, context),
        ConnectionConfig::Hibob(config) => hibob::process(config, request, context),
        ConnectionConfig::Okta(config) => okta::process(config, request, context),
    }
}

/// The connection's own verification of the request (signature, timestamp or header),
/// whatever its method and body.
pub fn verify(
    config: &ConnectionConfig,
    request: &InboundRequest<'_>,
    context: &Context<'_>,
) -> Result<(), SourceError> {
    match config {
        ConnectionConfig::Generic(config) => generic::verify(config, request, context).map(drop),
        ConnectionConfig::Bamboohr(config) => bamboohr::verify(config, request, context).map(drop),
        ConnectionConfig::Hibob(config) => hibob::verify(config, request),
        ConnectionConfig::Okta(config) => okta::verify(config, request),
    }
}

fn accepts(config: &ConnectionConfig, method: &http::Method) -> bool {
    *method == http::Method::POST || (*method == http::Method::GET && matches!(config, ConnectionConfig::Okta(_)))
}

/// The methods a connection answers, for the `Allow` header of a 405.
pub fn allowed_methods(config: &ConnectionConfig) -> &'static str {
    match config {
        ConnectionConfig::Okta(_) => "GET, POST",
        _ => "POST",
    }
}

pub(crate) fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Hmac<Sha256> {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC accepts any key length");
    for part in parts {
        mac.update(part);
    }
    mac
}

pub(crate) fn hmac_sha512(key: &[u8], parts: &[&[u8]]) -> Hmac<Sha512> {
    let mut mac = <Hmac<Sha512> as KeyInit>::new_from_slice(key).expect("HMAC accepts any key length");
    for part in parts {
        mac.update(part);
    }
    mac
}

/// Constant-time equality that does not leak the expected value's length either: both
/// sides are hashed first.
pub(crate) fn constant_time_eq(given: &[u8], expected: &[u8]) -> bool {
    let given = Sha256::digest(given);
    let expected = Sha256::digest(expected);
    bool::from(given.as_slice().ct_eq(expected.as_slice()))
}

/// Checks a signed Unix-seconds timestamp against `now ± tolerance`.
pub(crate) fn check_timestamp(signed_at: DateTime<Utc>, context: &Context<'_>) -> Result<(), SourceError> {
    let skew = (context.now - signed_at).abs();
    let tolerance = chrono::Duration::from_std(context.tolerance).unwrap_or(chrono::Duration::MAX);
    if skew > tolerance { Err(SourceError::Unauthorized("timestamp outside the tolerance")) } else { Ok(()) }
}

/// Parses JSON, describing a failure by position and category only (the admin can find the
/// spot; the body itself is never echoed back or logged).
pub(crate) fn parse_json<'a, T: Deserialize<'a>>(body: &'a [u8], what: &str) -> Result<T, SourceError> {
    serde_json::from_slice(body).map_err(|error| {
        let detail = match error.classify() {
            serde_json::error::Category::Data => describe_data_error(&error),
            serde_json::error::Category::Eof => "the JSON ends early".to_owned(),
            _ => "the body is not valid JSON".to_owned(),
        };
        SourceError::BadRequest(format!(
            "malformed {what}: {detail} (line {}, column {})",
            error.line(),
            error.column()
        ))
    })
}

/// serde's data errors name fields and expected types ("missing field `employeeId`"),
/// which help an admin; keep that part and drop anything after a quoted value.
fn describe_data_error(error: &serde_json::Error) -> String {
    let text = error.to_string();
    let text = text.split(" at line ").next().unwrap_or("the JSON has the wrong shape");
    if text.starts_with("missing field") || text.starts_with("unknown field") || text.starts_with("invalid type") {
        // "invalid type: string \"abc\", expected ..." quotes the value: drop the quote.
        match text.split_once(':') {
            Some(("invalid type", rest)) => {
                let expected = rest.split(", expected ").nth(1).unwrap_or("another type");
                format!("a value has the wrong type (expected {expected})")
            }
            _ => text.to_owned(),
        }
    } else {
        "the JSON has the wrong shape".to_owned()
    }
}

/// A JSON value that may be a string or a number (sources disagree on ids' types).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum StringOrNumber {
    String(String),
    Number(serde_json::Number),
}

impl StringOrNumber {
    pub(crate) fn into_string(self) -> String {
        match self {
            StringOrNumber::String(s) => s,
            StringOrNumber::Number(n) => n.to_string(),
        }
    }
}

/// A non-empty id, or a 400 naming the field.
pub(crate) fn required_id(value: Option<StringOrNumber>, field: &str) -> Result<String, SourceError> {
    value
        .map(StringOrNumber::into_string)
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| SourceError::bad_request(format!("{field} is missing or empty")))
}

/// An optional text value, trimmed; empty counts as absent.
pub(crate) fn non_empty(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::*;

    pub fn context(now: &str) -> Context<'static> {
        Context {
            connection: "conn",
            now: DateTime::parse_from_rfc3339(now).unwrap().with_timezone(&Utc),
            tolerance: Duration::from_secs(300),
        }
    }

    pub fn headers(pairs: &[(&str, &str)]) -> http::HeaderMap {
        let mut map = http::HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                http::HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    /// The signature test vectors; where each one comes from: docs/external-facts.md,
    /// "Signature test vectors".
    pub fn vectors() -> serde_json::Value {
        serde_json::from_str(include_str!("../../../tests/fixtures/signature-vectors.json")).unwrap()
    }

    pub fn vector(name: &str, field: &str) -> String {
        vectors()[name][field].as_str().unwrap_or_else(|| panic!("{name}.{field}")).to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_parse_and_names_are_checked() {
        let json = r#"{"connections":{
            "bamboo-main":{"source":"bamboohr","private_key":"k"},
            "bob":{"source":"hibob","secret":"s","api_token":"for the worker"},
            "okta":{"source":"okta","auth_value":"Bearer x"},
            "hr":{"source":"generic","secret":"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}}}"#;
        let connections: Connections = serde_json::from_str(json).unwrap();
        assert_eq!(connections.get("bamboo-main").unwrap().kind(), SourceKind::Bamboohr);
        assert_eq!(connections.get("bob").unwrap().kind(), SourceKind::Hibob);
        assert_eq!(connections.get("okta").unwrap().kind(), SourceKind::Okta);
        assert_eq!(connections.get("hr").unwrap().kind(), SourceKind::Generic);
        assert!(connections.get("other").is_none());

        assert!(connections.lookup("other").is_none());
        assert_eq!(connections.disabled().count(), 0);
        assert!(serde_json::from_str::<Connections>(r#"{"connectionz":{}}"#).is_err());
    }

    #[test]
    fn a_malformed_entry_disables_only_its_connection_and_the_problem_quotes_no_value() {
        let json = r#"{"connections":{
            "good":{"source":"hibob","secret":"s"},
            "has space":{"source":"hibob","secret":"leak-name-1"},
            "kind":{"source":"workday-leak-2","secret":"s"},
            "missing":{"source":"okta"},
            "typed":{"source":"bamboohr","private_key":987654321},
            "listed":{"source":"bamboohr","private_key":["leak-list-3"]},
            "whsec":{"source":"generic","secret":"whsec_!!leak-4!!"},
            "scalar":"leak-scalar-5, expected leak-6",
            "no-source":{"secret":"leak-7"}}}"#;
        let connections: Connections = serde_json::from_str(json).unwrap();
        assert!(matches!(connections.lookup("good"), Some(Entry::Ready(_))));
        let problems: BTreeMap<&str, &str> = connections.disabled().collect();
        assert_eq!(
            problems.keys().copied().collect::<Vec<_>>(),
            ["has space", "kind", "listed", "missing", "no-source", "scalar", "typed", "whsec"]
        );
        assert!(problems["missing"].contains("missing field `auth_value`"), "{problems:?}");
        assert!(problems["kind"].contains("\"source\" must be one of"), "{problems:?}");
        assert!(problems["typed"].contains("wrong type"), "{problems:?}");
        assert!(problems["whsec"].contains("whsec_"), "{problems:?}");
        assert!(matches!(connections.lookup("typed"), Some(Entry::Disabled(_))));
        assert!(connections.get("typed").is_none());
        let text = format!("{problems:?} {connections:?}");
        for leak in ["leak", "987654321", "workday"] {
            assert!(!text.contains(leak), "{leak}: {text}");
        }
    }

    #[test]
    fn connection_debug_output_hides_credentials() {
        let json = r#"{"connections":{
            "a":{"source":"bamboohr","private_key":"bamboo-key-123"},
            "b":{"source":"hibob","secret":"bob-secret-456"},
            "c":{"source":"okta","auth_value":"Bearer okta-789"},
            "d":{"source":"generic","secret":"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}}}"#;
        let connections: Connections = serde_json::from_str(json).unwrap();
        let debug = format!("{connections:?}");
        for secret in ["bamboo-key-123", "bob-secret-456", "okta-789", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"] {
            assert!(!debug.contains(secret), "{debug}");
        }
    }

    #[test]
    fn timestamps_are_checked_both_ways() {
        let context = test_support::context("2026-03-02T09:15:00Z");
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        assert!(check_timestamp(at("2026-03-02T09:10:00Z"), &context).is_ok());
        assert!(check_timestamp(at("2026-03-02T09:20:00Z"), &context).is_ok());
        assert!(check_timestamp(at("2026-03-02T09:09:59Z"), &context).is_err());
        assert!(check_timestamp(at("2026-03-02T09:20:01Z"), &context).is_err());
    }

    #[test]
    fn json_errors_help_without_echoing_values() {
        #[derive(Deserialize, Debug)]
        #[allow(dead_code)]
        struct Shape {
            id: u32,
        }
        let error = parse_json::<Shape>(br#"{"id":"secret-looking-value"}"#, "payload").unwrap_err();
        let text = error.to_string();
        assert!(!text.contains("secret-looking-value"), "{text}");
        assert!(text.contains("u32"), "{text}");
        let error = parse_json::<Shape>(br#"{}"#, "payload").unwrap_err().to_string();
        assert!(error.contains("missing field `id`"), "{error}");
        let error = parse_json::<Shape>(b"not json", "payload").unwrap_err().to_string();
        assert!(error.contains("not valid JSON") && error.contains("line 1"), "{error}");
    }

    #[test]
    fn constant_time_eq_compares_values() {
        assert!(constant_time_eq(b"Bearer abc", b"Bearer abc"));
        assert!(!constant_time_eq(b"Bearer abd", b"Bearer abc"));
        assert!(!constant_time_eq(b"", b"Bearer abc"));
    }
}

#[cfg(test)]
mod vector_tests {
    use super::test_support::{context, headers, vectors};
    use super::*;

    /// Every vector in tests/fixtures/signature-vectors.json is checked by the source that uses
    /// its scheme. Stripe-, GitHub-, Deel- and Gusto-style schemes are not ones a connection can
    /// be configured with (generic senders use Standard Webhooks only), so those four vectors
    /// are listed here rather than silently skipped: a new vector fails this test until it
    /// is wired to a source or added to that list deliberately.
    #[test]
    fn every_vector_of_a_scheme_we_accept_verifies() {
        const NOT_OUR_SCHEMES: &[&str] = &["stripe", "github", "deel", "gusto"];
        let vectors = vectors();
        let method = http::Method::POST;
        for (name, vector) in vectors.as_object().unwrap() {
            let text = |field: &str| vector[field].as_str().unwrap().to_owned();
            let body = text("body");
            let (config, pairs, now): (ConnectionConfig, Vec<(&str, String)>, i64) = match name.as_str() {
                "bamboohr" | "bamboohr_fusebit" => (
                    ConnectionConfig::Bamboohr(bamboohr::Config {
                        private_key: crate::secrets::SecretString::new(text("secret")),
                    }),
                    vec![("X-BambooHR-Signature", text("sig")), ("X-BambooHR-Timestamp", text("ts"))],
                    text("ts").parse().unwrap(),
                ),
                "hibob" => (
                    ConnectionConfig::Hibob(hibob::Config {
                        secret: crate::secrets::SecretString::new(text("secret")),
                    }),
                    vec![("Bob-Signature", text("sig"))],
                    0,
                ),
                "standard" => (
                    ConnectionConfig::Generic(generic::Config {
                        secret: generic::StandardWebhookKey::parse(&text("secret")).unwrap(),
                    }),
                    vec![
                        ("webhook-id", text("id")),
                        ("webhook-timestamp", text("ts")),
                        ("webhook-signature", text("sig")),
                    ],
                    text("ts").parse().unwrap(),
                ),
                other if NOT_OUR_SCHEMES.contains(&other) => continue,
                other => panic!("vector {other} is not wired to a source"),
            };
            let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let headers = headers(&pairs);
            let request = InboundRequest { method: &method, headers: &headers, body: body.as_bytes() };
            let mut context = context("2026-03-02T09:15:00Z");
            if now != 0 {
                context.now = DateTime::from_timestamp(now, 0).unwrap();
            }
            let result = process(&config, &request, &context);
            assert!(!matches!(result, Err(SourceError::Unauthorized(_))), "{name}: {result:?}");
        }
    }
}

#[cfg(test)]
mod never_panic {
    //! Whatever arrives, parsing answers with events or an error; it never panics.
    use super::test_support::context;
    use super::*;
    use proptest::prelude::*;

    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        let keys = prop::sample::select(vec![
            "type",
            "timestamp",
            "data",
            "employeeId",
            "changedFields",
            "employees",
            "id",
            "action",
            "fields",
            "value",
            "triggeredAt",
            "version",
            "fieldUpdates",
            "fieldId",
            "tableId",
            "events",
            "uuid",
            "published",
            "eventType",
            "outcome",
            "result",
            "target",
            "alternateId",
            "displayName",
            "kind",
            "person",
            "source",
            "source_kind",
            "source_event_id",
            "effective_at",
            "attributes",
            "work_email",
            "Status",
        ]);
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<f64>().prop_map(
                |f| serde_json::Number::from_f64(f).map_or(serde_json::Value::Null, serde_json::Value::Number)
            ),
            prop::sample::select(vec![
                "v2",
                "conn",
                "generic",
                "User",
                "SUCCESS",
                "employee.updated",
                "employee.left",
                "Updated",
                "Inactive",
                "Terminated",
                "work",
                "user.lifecycle.deactivate",
                "2026-03-02T09:15:00Z",
                "2026-03-02T09:15:00+0000",
                "2026-03-31T00:00:04.118732",
                "joiner",
                "",
                "Ping test",
            ])
            .prop_map(serde_json::Value::from),
            ".*".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(5, 64, 8, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
                prop::collection::btree_map(keys.clone().prop_map(str::to_owned), inner, 0..6)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn parse_everywhere(body: &[u8], form: bool) {
        let context = context("2026-03-02T09:15:00Z");
        let _ = generic::parse(body, &context);
        let _ = hibob::parse(body, &context);
        let _ = hibob::is_ping(body);
        let _ = okta::parse(body, Some("0oa1"), &context);
        let _ = okta::parse(body, None, &context);
        let method = http::Method::POST;
        let mut headers = http::HeaderMap::new();
        if form {
            headers.insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/x-www-form-urlencoded"),
            );
        }
        let request = InboundRequest { method: &method, headers: &headers, body };
        let signed = bamboohr::SignedTimestamp { raw: "1772442900", at: context.now };
        let _ = bamboohr::parse(&request, &signed, &context);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn arbitrary_bytes(body in prop::collection::vec(any::<u8>(), 0..512), form in any::<bool>()) {
            parse_everywhere(&body, form);
        }

        #[test]
        fn arbitrary_json_shaped_like_our_payloads(value in json_value(), wrap in any::<bool>()) {
            let value = if wrap { serde_json::json!({"data": {"events": [value.clone()]}, "employees": [value]}) } else { value };
            parse_everywhere(&serde_json::to_vec(&value).unwrap(), false);
        }

        #[test]
        fn arbitrary_form_posts(pairs in prop::collection::vec((".{0,24}", ".{0,24}"), 0..8)) {
            let body = serde_urlencoded::to_string(&pairs).unwrap();
            parse_everywhere(body.as_bytes(), true);
        }

        #[test]
        fn arbitrary_headers_through_every_verifier(
            values in prop::collection::vec(".{0,100}", 6),
            body in prop::collection::vec(any::<u8>(), 0..64),
        ) {
            let names = ["webhook-id", "webhook-timestamp", "webhook-signature", "x-bamboohr-signature", "x-bamboohr-timestamp", "bob-signature"];
            let mut headers = http::HeaderMap::new();
            for (name, value) in names.iter().zip(&values) {
                if let Ok(value) = http::HeaderValue::from_str(value) {
                    headers.insert(*name, value);
                }
            }
            headers.insert("authorization", http::HeaderValue::from_static("x"));
            let configs: Connections = serde_json::from_str(r#"{"connections":{
                "g":{"source":"generic","secret":"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"},
                "b":{"source":"bamboohr","private_key":"k"},"h":{"source":"hibob","secret":"s"},
                "o":{"source":"okta","auth_value":"x"}}}"#).unwrap();
            for method in [http::Method::POST, http::Method::GET] {
                let request = InboundRequest { method: &method, headers: &headers, body: &body };
                for name in ["g", "b", "h", "o"] {
                    let _ = process(configs.get(name).unwrap(), &request, &context("2026-03-02T09:15:00Z"));
                }
            }
        }
    }
}
