//! The real `invite-retry` binary under cargo-lambda's emulator: ledger in moto's DynamoDB,
//! secret in moto's Secrets Manager, 1Password simulated over HTTP.

use chrono::{Duration as ChronoDuration, Utc};
use e2e::LambdaFunction;
use e2e::invite_retry_harness::BinaryStack;
use onepassword_sim::{InvitationKind, Seed, SeedState, SeedUser, SimConfig};
use provisioning::PersonKey;
use provisioning::ledger::{Invitation, InvitationStatus, Ledger};
use std::time::{Duration, Instant};

const ADA: &str = "ada.lovelace@example.com";

async fn expired_invitation(stack: &BinaryStack) -> PersonKey {
    let sent = Utc::now() - ChronoDuration::days(6);
    let mut user = SeedUser::new(ADA, SeedState::InvitationExpired);
    user.invited_at = Some(sent);
    let ids = stack.sim.state().seed(Seed { users: vec![user], groups: vec![] }).unwrap().user_ids;
    let person = PersonKey::new("hr", "1");
    stack
        .ledger
        .start_invitation_unless_pending(&Invitation {
            counts_from: None,
            person: person.clone(),
            user_id: ids[0].as_str().into(),
            email: ADA.into(),
            invited_at: sent,
            last_sent_at: sent,
            reissues: 0,
            status: InvitationStatus::Pending,
        })
        .await
        .unwrap();
    person
}

#[tokio::test]
async fn the_binary_reissues_an_expired_invitation_recorded_in_dynamodb() {
    let stack = BinaryStack::start(true, &[]).await.unwrap();
    let person = expired_invitation(&stack).await;

    let answer = stack.tick().await.unwrap();
    assert_eq!(answer["reinvited"], 1, "{answer}");
    assert_eq!(answer["mode"], "toggle-active", "{answer}");
    let repeats = stack.sim.state().outbox().iter().filter(|m| m.kind == InvitationKind::Repeat).count();
    assert_eq!(repeats, 1);
    let recorded = stack.ledger.invitation(&person).await.unwrap().unwrap();
    assert_eq!((recorded.reissues, recorded.status), (1, InvitationStatus::Pending));
    assert!(stack.ledger.events_cursor().await.unwrap().is_some(), "Events API cursor stored in DynamoDB");

    let again = stack.tick().await.unwrap();
    assert_eq!((again["checked"].as_u64(), again["reinvited"].as_u64()), (Some(0), Some(0)), "{again}");
    let logs = stack.job.logs();
    assert!(logs.contains("invitation re-issued"), "{logs}");
    for secret in [SimConfig::default().scim_token, SimConfig::default().events_token.unwrap()] {
        assert!(!logs.contains(&secret), "token leaked into logs");
    }
    assert!(!logs.contains(ADA), "e-mail must be masked in logs");
}

#[tokio::test]
async fn without_an_events_token_the_binary_only_reports() {
    let stack = BinaryStack::start(false, &[]).await.unwrap();
    let person = expired_invitation(&stack).await;
    let answer = stack.tick().await.unwrap();
    assert_eq!(
        (answer["mode"].as_str(), answer["reported"].as_u64(), answer["reinvited"].as_u64()),
        (Some("report-only"), Some(1), Some(0)),
        "{answer}"
    );
    assert_eq!(stack.sim.state().outbox().len(), 0, "seeded users got no mail; nobody was re-invited");
    assert_eq!(stack.ledger.invitation(&person).await.unwrap().unwrap().status, InvitationStatus::Escalated);
}

#[tokio::test]
async fn without_configuration_the_binary_exits_naming_the_variable() {
    let job = LambdaFunction::start("invite-retry", &[]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !job.logs().contains("invite-retry cannot start") && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let logs = job.logs();
    assert!(logs.contains("invite-retry cannot start") && logs.contains("WORKER_SECRET_ID"), "{logs}");
}
