//! The Events API client (`HttpSignInEvents`) against the simulator's Events API over real
//! HTTP: introspection, cursor paging, retries on 429/5xx bounded by the deadline, and
//! clear errors for a wrong token.

use onepassword_sim::{FaultAction, FaultRule, Seed, SeedState, SeedUser, SimConfig};
use provisioning::events_api::{EventsApiError, EventsClientConfig, HttpSignInEvents, PageRequest, SignInEvents};
use provisioning::http_retry::GaveUp;
use provisioning::secrets::SecretString;
use std::time::{Duration, Instant};

fn client(sim: &onepassword_sim::RunningSim, token: &str) -> HttpSignInEvents {
    let mut config = EventsClientConfig::default();
    config.retry.base_backoff = Duration::from_millis(20);
    let http = HttpSignInEvents::http_client(&config).unwrap();
    HttpSignInEvents::new(http, &sim.base_url(), SecretString::new(token), true).unwrap()
}

async fn sim_with_sign_ins(n: usize) -> onepassword_sim::RunningSim {
    let sim = onepassword_sim::spawn(SimConfig::default(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let users = (0..n).map(|i| SeedUser::new(format!("p{i}@example.com"), SeedState::Invited)).collect();
    sim.state().seed(Seed { users, groups: vec![] }).unwrap();
    for i in 0..n {
        sim.state().accept_invitation(&format!("p{i}@example.com")).unwrap();
    }
    sim
}

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(20)
}

#[tokio::test]
async fn introspection_lists_the_token_features() {
    let sim = sim_with_sign_ins(0).await;
    let info = client(&sim, "sim-events-token").introspect(soon()).await.unwrap();
    assert!(info.can_read_sign_ins(), "{info:?}");
    assert_eq!(info.account_uuid.as_deref(), Some(sim.state().account_uuid()));
}

#[tokio::test]
async fn pages_follow_the_cursor_to_the_end() {
    let sim = sim_with_sign_ins(5).await;
    let events = client(&sim, "sim-events-token");
    let mut request = PageRequest::Reset { limit: 2, start_time: None };
    let mut emails = Vec::new();
    let mut pages = 0;
    loop {
        let page = events.sign_in_attempts(&request, soon()).await.unwrap();
        pages += 1;
        emails.extend(page.items.iter().map(|a| a.target_user.email.clone()));
        assert!(page.items.iter().all(|a| a.is_success() && !a.target_user.uuid.is_empty()));
        request = PageRequest::Continue { cursor: page.cursor };
        if !page.has_more {
            break;
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(emails, (0..5).map(|i| format!("p{i}@example.com")).collect::<Vec<_>>());
    // A start time after every event: nothing.
    let later = sim.state().now() + chrono::Duration::minutes(1);
    let empty =
        events.sign_in_attempts(&PageRequest::Reset { limit: 10, start_time: Some(later) }, soon()).await.unwrap();
    assert!(empty.items.is_empty() && !empty.has_more);
}

#[tokio::test]
async fn rate_limits_and_server_errors_are_retried() {
    let sim = sim_with_sign_ins(1).await;
    sim.state()
        .add_fault(FaultRule::new(Some("POST"), "/api/v2/signinattempts", FaultAction::rate_limit(0)).times(1))
        .unwrap();
    sim.state()
        .add_fault(
            FaultRule::new(
                Some("POST"),
                "/api/v2/signinattempts",
                FaultAction::Status { status: 503, retry_after: None },
            )
            .times(1),
        )
        .unwrap();
    let page = client(&sim, "sim-events-token")
        .sign_in_attempts(&PageRequest::Reset { limit: 10, start_time: None }, soon())
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1);
    let statuses: Vec<Option<u16>> = sim.state().operations().iter().map(|op| op.status).collect();
    assert_eq!(statuses, vec![Some(429), Some(503), Some(200)]);
}

#[tokio::test]
async fn retries_stop_at_the_deadline() {
    let sim = sim_with_sign_ins(1).await;
    sim.state().add_fault(FaultRule::new(None, "/api/v2/signinattempts", FaultAction::rate_limit(5))).unwrap();
    let started = Instant::now();
    let result = client(&sim, "sim-events-token")
        .sign_in_attempts(&PageRequest::Reset { limit: 10, start_time: None }, Instant::now() + Duration::from_secs(2))
        .await;
    assert!(matches!(result, Err(EventsApiError::GaveUp(GaveUp::Deadline { .. }))), "{result:?}");
    assert!(started.elapsed() < Duration::from_secs(2), "gave up in time");
}

#[tokio::test]
async fn a_wrong_token_is_a_clear_error_without_the_token() {
    let sim = sim_with_sign_ins(0).await;
    let error = client(&sim, "wrong-token-123")
        .sign_in_attempts(&PageRequest::Reset { limit: 10, start_time: None }, soon())
        .await
        .unwrap_err();
    assert!(matches!(error, EventsApiError::Unauthorized), "{error:?}");
    assert!(!error.to_string().contains("wrong-token-123"));
    let bad_cursor = client(&sim, "sim-events-token")
        .sign_in_attempts(&PageRequest::Continue { cursor: "not-a-cursor".into() }, soon())
        .await
        .unwrap_err();
    assert!(
        matches!(bad_cursor, EventsApiError::Status { status: 400, message: Some(ref m) } if m.contains("cursor")),
        "{bad_cursor:?}"
    );
}
