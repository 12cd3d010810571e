//! Okta Event Hooks. Okta does not sign: every request (the one-time verification GET
//! included) carries a static header whose name and value the admin chose, which we compare
//! in constant time. Deliveries batch System Log events in `data.events[]`.

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::{
    Context, Handshake, Ignored, InboundRequest, Normalized, Outcome, SourceError, constant_time_eq, non_empty,
    parse_json,
};
use crate::event::{Attributes, EventKind, LifecycleEvent, PersonKey, SourceKind, WIRE_VERSION};
use crate::secrets::SecretString;

#[derive(Debug, Deserialize)]
pub struct Config {
    /// The header Okta sends the secret in ("authentication field"); `Authorization` unless
    /// the admin chose another.
    #[serde(default = "default_auth_header")]
    pub auth_header: String,
    /// Its exact value ("authentication secret"), e.g. `Bearer <long random value>`.
    pub auth_value: SecretString,
    /// The 1Password app's id in Okta (`0oa…`). App assignment events act only for this
    /// app; without it they are ignored, since an assignment to any other app says nothing
    /// about 1Password.
    #[serde(default)]
    pub app_id: Option<String>,
}

impl Config {
    fn app_id(&self) -> Option<&str> {
        self.app_id.as_deref().map(str::trim).filter(|id| !id.is_empty())
    }
}

fn default_auth_header() -> String {
    "Authorization".to_owned()
}

pub fn verify(config: &Config, request: &InboundRequest<'_>) -> Result<(), SourceError> {
    let given = request
        .header(&config.auth_header)
        .ok_or(SourceError::Unauthorized("missing the configured authentication header"))?;
    if constant_time_eq(given.as_bytes(), config.auth_value.expose().trim().as_bytes()) {
        Ok(())
    } else {
        Err(SourceError::Unauthorized("authentication header does not match"))
    }
}

/// Okta's one-time verification: echo `X-Okta-Verification-Challenge` as `{"verification"}`.
pub fn verification(request: &InboundRequest<'_>) -> Result<Handshake, SourceError> {
    let challenge = request.header("x-okta-verification-challenge").filter(|c| !c.is_empty()).ok_or_else(|| {
        SourceError::bad_request("a GET must carry X-Okta-Verification-Challenge (Okta's one-time hook verification)")
    })?;
    Ok(Handshake(serde_json::json!({ "verification": challenge })))
}

#[derive(Debug, Deserialize)]
struct Delivery {
    data: DeliveryData,
}

#[derive(Debug, Deserialize)]
struct DeliveryData {
    events: Vec<LogEvent>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogEvent {
    uuid: Option<String>,
    published: Option<String>,
    event_type: Option<String>,
    outcome: Option<EventOutcome>,
    #[serde(default)]
    target: Option<Vec<Target>>,
}

#[derive(Debug, Deserialize)]
struct EventOutcome {
    result: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Target {
    id: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    alternate_id: Option<String>,
    display_name: Option<String>,
}

/// Assignment to an app and removal from it; they concern 1Password only when the app is
/// the configured one.
const APP_ASSIGNED: &str = "application.user_membership.add";
const APP_UNASSIGNED: &str = "application.user_membership.remove";

fn kind_of(event_type: &str) -> Option<EventKind> {
    match event_type {
        "user.lifecycle.create" | "user.lifecycle.activate" | "user.lifecycle.reactivate" | APP_ASSIGNED => {
            Some(EventKind::Joiner)
        }
        "user.account.update_profile" | "group.user_membership.add" | "group.user_membership.remove" => {
            Some(EventKind::Mover)
        }
        "user.lifecycle.deactivate" | "user.lifecycle.suspend" | "user.lifecycle.delete.initiated" | APP_UNASSIGNED => {
            Some(EventKind::Leaver)
        }
        "user.lifecycle.unsuspend" => Some(EventKind::Rehire),
        _ => None,
    }
}

/// Why an app assignment event is not about 1Password; `None` for every other event type.
fn not_our_app(event_type: &str, targets: &[Target], app_id: Option<&str>) -> Option<Skip> {
    if event_type != APP_ASSIGNED && event_type != APP_UNASSIGNED {
        return None;
    }
    let Some(app_id) = app_id else { return Some(Skip::NoAppId) };
    let ours = targets
        .iter()
        .any(|t| t.kind.as_deref() == Some("AppInstance") && t.id.as_deref().map(str::trim) == Some(app_id));
    (!ours).then_some(Skip::Because("an app other than the configured app_id".into()))
}

enum Skip {
    Because(String),
    /// An app assignment event on a connection without `app_id`.
    NoAppId,
}

/// One System Log event: the lifecycle event it means, or why it is skipped.
fn normalize(
    index: usize,
    uuid: &str,
    event: LogEvent,
    app_id: Option<&str>,
    context: &Context<'_>,
) -> Result<Result<LifecycleEvent, Skip>, SourceError> {
    let skip = |reason: String| Ok(Err(Skip::Because(reason)));
    let event_type = non_empty(event.event_type).unwrap_or_default();
    let Some(kind) = kind_of(&event_type) else {
        return skip(format!("event type {event_type:?} is not acted on"));
    };
    // A failed action did not change anything.
    if let Some(result) = event.outcome.and_then(|o| o.result)
        && !result.eq_ignore_ascii_case("SUCCESS")
    {
        return skip(format!("outcome {result}"));
    }
    let targets = event.target.unwrap_or_default();
    if let Some(why) = not_our_app(&event_type, &targets, app_id) {
        return Ok(Err(why));
    }
    let user = targets
        .into_iter()
        .find(|t| t.kind.as_deref() == Some("User") && t.id.as_deref().is_some_and(|id| !id.trim().is_empty()));
    let Some(user) = user else { return skip("no User target".into()) };
    let published = non_empty(event.published)
        .ok_or_else(|| SourceError::bad_request(format!("data.events[{index}].published is missing")))?;
    let effective_at = DateTime::parse_from_rfc3339(&published).map(|t| t.with_timezone(&Utc)).map_err(|_| {
        SourceError::bad_request(format!("data.events[{index}].published is not an RFC 3339 date-time"))
    })?;
    let attributes = Attributes {
        work_email: non_empty(user.alternate_id).filter(|login| login.contains('@')),
        display_name: non_empty(user.display_name),
        ..Default::default()
    };
    Ok(Ok(LifecycleEvent {
        version: WIRE_VERSION,
        kind,
        person: PersonKey::new(context.connection, user.id.unwrap_or_default().trim()),
        source_kind: SourceKind::Okta,
        source_event_id: uuid.to_owned(),
        effective_at,
        received_at: context.now,
        attributes,
        // Okta's own deactivation is authoritative: its user read can still say ACTIVE for a
        // moment after the event (without `transitioningToStatus`), and unassigned from
        // 1Password the person stays ACTIVE in Okta. Only a revocation ends access whatever
        // the read-back says (until a later reactivate or unsuspend).
        immediate: kind == EventKind::Leaver,
        requeued: 0,
    }))
}

/// Parses a delivery; `app_id` is the configured 1Password app (see [`Config::app_id`]).
pub fn parse(body: &[u8], app_id: Option<&str>, context: &Context<'_>) -> Result<Normalized, SourceError> {
    let delivery: Delivery = parse_json(body, "Okta event hook delivery (expected data.events[])")?;
    let mut normalized = Normalized::default();
    let mut without_app_id = 0;
    for (index, mut event) in delivery.data.events.into_iter().enumerate() {
        let uuid = non_empty(event.uuid.take())
            .ok_or_else(|| SourceError::bad_request(format!("data.events[{index}].uuid is missing")))?;
        let reason = match normalize(index, &uuid, event, app_id, context)? {
            Ok(event) => {
                normalized.events.push(event);
                continue;
            }
            Err(Skip::Because(reason)) => reason,
            Err(Skip::NoAppId) => {
                without_app_id += 1;
                "app assignment events need app_id in the connection's config".to_owned()
            }
        };
        normalized.ignored.push(Ignored { source_event_id: Some(uuid), reason });
    }
    if without_app_id > 0 {
        tracing::warn!(
            events = without_app_id,
            "application.user_membership events ignored: set app_id (the 1Password app's id in Okta) in this \
             connection's entry of the connections secret to act on them"
        );
    }
    Ok(normalized)
}

pub fn process(config: &Config, request: &InboundRequest<'_>, context: &Context<'_>) -> Result<Outcome, SourceError> {
    verify(config, request)?;
    if *request.method == http::Method::GET {
        verification(request).map(Outcome::Handshake)
    } else if *request.method == http::Method::POST {
        parse(request.body, config.app_id(), context).map(Outcome::Events)
    } else {
        Err(SourceError::MethodNotAllowed { verified: true })
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{context, headers};
    use super::*;

    pub const DELIVERY_FIXTURE: &str = include_str!("../../../tests/fixtures/okta/delivery.json");

    /// The 1Password app's id in these tests.
    const APP: &str = "0oa1password000001";

    fn config(app_id: Option<&str>) -> Config {
        Config {
            auth_header: "Authorization".into(),
            auth_value: SecretString::new("Bearer okta-hook-secret-7d1c2e"),
            app_id: app_id.map(str::to_owned),
        }
    }

    fn run(method: http::Method, pairs: &[(&str, &str)], body: &[u8]) -> Result<Outcome, SourceError> {
        run_with(&config(Some(APP)), method, pairs, body)
    }

    fn run_with(
        config: &Config,
        method: http::Method,
        pairs: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Outcome, SourceError> {
        let headers = headers(pairs);
        let request = InboundRequest { method: &method, headers: &headers, body };
        process(config, &request, &context("2026-03-02T09:15:03Z"))
    }

    const AUTH: (&str, &str) = ("authorization", "Bearer okta-hook-secret-7d1c2e");

    #[test]
    fn the_verification_get_echoes_the_challenge_when_authenticated() {
        let challenge = ("X-Okta-Verification-Challenge", "3xq8WnZ0c0Jd-PkLr2tY9uVbHs");
        let outcome = run(http::Method::GET, &[AUTH, challenge, ("User-Agent", "Okta-Integrations")], b"").unwrap();
        assert_eq!(
            outcome,
            Outcome::Handshake(Handshake(serde_json::json!({"verification": "3xq8WnZ0c0Jd-PkLr2tY9uVbHs"})))
        );
        assert!(matches!(run(http::Method::GET, &[challenge], b""), Err(SourceError::Unauthorized(_))));
        assert!(matches!(
            run(http::Method::GET, &[("authorization", "Bearer okta-hook-secret-7d1c2f"), challenge], b""),
            Err(SourceError::Unauthorized(_))
        ));
        assert!(matches!(run(http::Method::GET, &[AUTH], b""), Err(SourceError::BadRequest(_))));
    }

    #[test]
    fn a_custom_auth_header_name_is_honoured() {
        let config =
            Config { auth_header: "X-Hook-Token".into(), auth_value: SecretString::new("t0ken"), app_id: None };
        let headers = headers(&[("x-hook-token", "t0ken")]);
        let method = http::Method::POST;
        let request = InboundRequest { method: &method, headers: &headers, body: b"" };
        assert_eq!(verify(&config, &request), Ok(()));
        let headers = super::super::test_support::headers(&[("authorization", "t0ken")]);
        let request = InboundRequest { method: &method, headers: &headers, body: b"" };
        assert!(verify(&config, &request).is_err());
    }

    #[test]
    fn the_delivery_fixture_is_a_leaver_and_a_mover() {
        let Outcome::Events(normalized) = run(http::Method::POST, &[AUTH], DELIVERY_FIXTURE.as_bytes()).unwrap() else {
            panic!()
        };
        assert!(normalized.ignored.is_empty());
        let [leaver, mover] = normalized.events.as_slice() else { panic!("{normalized:?}") };
        assert_eq!(leaver.kind, EventKind::Leaver);
        assert_eq!(leaver.person, PersonKey::new("conn", "00u1dana0000000042"));
        assert_eq!(leaver.source_kind, SourceKind::Okta);
        assert_eq!(leaver.source_event_id, "0d5c8d4e-1a7b-11f1-9e2c-8f1c2d3e4f50");
        assert_eq!(leaver.effective_at.to_rfc3339(), "2026-03-02T09:15:00.912+00:00");
        assert_eq!(leaver.attributes.work_email.as_deref(), Some("dana.kim@example.com"));
        assert_eq!(leaver.attributes.display_name.as_deref(), Some("Dana Kim"));
        assert_eq!(mover.kind, EventKind::Mover);
        assert_eq!(mover.person, PersonKey::new("conn", "00u1lee00000000077"));
        assert_eq!(mover.source_event_id, "0f11a7c2-1a7b-11f1-9e2c-8f1c2d3e4f51");
    }

    #[test]
    fn posts_need_the_header_too() {
        assert!(matches!(run(http::Method::POST, &[], DELIVERY_FIXTURE.as_bytes()), Err(SourceError::Unauthorized(_))));
        assert_eq!(run(http::Method::PUT, &[AUTH], b""), Err(SourceError::MethodNotAllowed { verified: true }));
        assert!(matches!(run(http::Method::PUT, &[], b""), Err(SourceError::Unauthorized(_))));
    }

    fn one(event_type: &str, result: &str, target_type: &str) -> Normalized {
        let body = serde_json::json!({"data": {"events": [{
            "uuid": "u-1", "published": "2026-03-02T09:15:00Z", "eventType": event_type,
            "outcome": {"result": result},
            "target": [{"id": "00u9", "type": target_type, "alternateId": "someone", "displayName": "Some One"}]
        }]}});
        match run(http::Method::POST, &[AUTH], &serde_json::to_vec(&body).unwrap()).unwrap() {
            Outcome::Events(n) => n,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn event_types_map_to_joiner_mover_leaver_rehire() {
        let kind = |t: &str| one(t, "SUCCESS", "User").events.first().map(|e| e.kind);
        for t in ["user.lifecycle.create", "user.lifecycle.activate", "user.lifecycle.reactivate"] {
            assert_eq!(kind(t), Some(EventKind::Joiner), "{t}");
        }
        for t in ["user.account.update_profile", "group.user_membership.add", "group.user_membership.remove"] {
            assert_eq!(kind(t), Some(EventKind::Mover), "{t}");
        }
        for t in ["user.lifecycle.deactivate", "user.lifecycle.suspend", "user.lifecycle.delete.initiated"] {
            assert_eq!(kind(t), Some(EventKind::Leaver), "{t}");
            let leaver = &one(t, "SUCCESS", "User").events[0];
            assert!(leaver.immediate, "{t}: authoritative, whatever the read-back says");
        }
        assert_eq!(kind("user.lifecycle.unsuspend"), Some(EventKind::Rehire));
        assert_eq!(kind("user.session.start"), None);
        // Failed actions and events without a user are acknowledged, not queued.
        assert_eq!(one("user.lifecycle.deactivate", "FAILURE", "User").ignored.len(), 1);
        assert_eq!(one("user.lifecycle.deactivate", "SUCCESS", "AppInstance").ignored.len(), 1);
        // A login that is not an e-mail is not passed on as one.
        assert_eq!(one("user.lifecycle.create", "SUCCESS", "User").events[0].attributes.work_email, None);
    }

    /// An app assignment event as Okta sends it: the app user, the app, then the Okta user.
    fn membership(event_type: &str, app: &str) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({"data": {"events": [{
            "uuid": "m-1", "published": "2026-03-02T09:15:00Z", "eventType": event_type,
            "outcome": {"result": "SUCCESS"},
            "target": [
                {"id": "0ua1dana00000000042", "type": "AppUser", "alternateId": "dana.kim@example.com"},
                {"id": app, "type": "AppInstance", "alternateId": "1Password", "displayName": "1Password"},
                {"id": "00u1dana0000000042", "type": "User", "alternateId": "dana.kim@example.com", "displayName": "Dana Kim"}
            ]
        }]}}))
        .unwrap()
    }

    fn normalized(config: &Config, body: &[u8]) -> Normalized {
        match run_with(config, http::Method::POST, &[AUTH], body).unwrap() {
            Outcome::Events(n) => n,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn app_assignment_events_act_only_for_the_configured_1password_app() {
        let ours = config(Some(APP));
        let added = normalized(&ours, &membership("application.user_membership.add", APP));
        let [joiner] = added.events.as_slice() else { panic!("{added:?}") };
        assert_eq!((joiner.kind, joiner.immediate), (EventKind::Joiner, false));
        assert_eq!(joiner.person, PersonKey::new("conn", "00u1dana0000000042"));

        // Unassigned from 1Password, the person stays active in Okta: the leaver must end
        // access whatever the worker reads back.
        let removed = normalized(&ours, &membership("application.user_membership.remove", APP));
        let [leaver] = removed.events.as_slice() else { panic!("{removed:?}") };
        assert_eq!((leaver.kind, leaver.immediate), (EventKind::Leaver, true));
        assert_eq!(leaver.person, PersonKey::new("conn", "00u1dana0000000042"));
        assert_eq!(leaver.source_event_id, "m-1");

        for event_type in ["application.user_membership.add", "application.user_membership.remove"] {
            let other = normalized(&ours, &membership(event_type, "0oa1slack0000000001"));
            assert!(other.events.is_empty(), "{event_type}: {other:?}");
            assert_eq!(other.ignored.len(), 1, "{event_type}");
            assert!(other.ignored[0].reason.contains("app_id"), "{other:?}");
        }
        // An id with stray spaces in the secret still matches.
        let padded = config(Some(" 0oa1password000001 "));
        assert_eq!(normalized(&padded, &membership("application.user_membership.add", APP)).events.len(), 1);
    }

    #[test]
    fn without_app_id_app_assignment_events_are_ignored_and_the_rest_still_act() {
        for app_id in [None, Some(""), Some("  ")] {
            let unconfigured = config(app_id);
            for event_type in ["application.user_membership.add", "application.user_membership.remove"] {
                let result = normalized(&unconfigured, &membership(event_type, APP));
                assert!(result.events.is_empty(), "{event_type}: {result:?}");
                assert!(result.ignored[0].reason.contains("need app_id"), "{result:?}");
            }
            let fixture = normalized(&unconfigured, DELIVERY_FIXTURE.as_bytes());
            assert_eq!(fixture.events.len(), 2);
        }
        let secret = r#"{"source":"okta","auth_value":"Bearer x","app_id":"0oa1password000001"}"#;
        let parsed: super::super::ConnectionConfig = serde_json::from_str(secret).unwrap();
        let super::super::ConnectionConfig::Okta(parsed) = parsed else { panic!() };
        assert_eq!(parsed.app_id(), Some(APP));
    }

    #[test]
    fn malformed_deliveries_get_a_helpful_400() {
        for (body, expected) in [
            ("{", "JSON ends early"),
            (r#"{"data":{}}"#, "missing field `events`"),
            (r#"{"data":{"events":[{"eventType":"user.lifecycle.create"}]}}"#, "data.events[0].uuid"),
            (
                r#"{"data":{"events":[{"uuid":"u","eventType":"user.lifecycle.create","published":"noon","target":[{"id":"1","type":"User"}]}]}}"#,
                "published",
            ),
        ] {
            match run(http::Method::POST, &[AUTH], body.as_bytes()) {
                Err(SourceError::BadRequest(message)) => assert!(message.contains(expected), "{message}"),
                other => panic!("{body}: {other:?}"),
            }
        }
    }
}
