//! The invitation lifecycle SCIM cannot show: expiry on a controllable clock, acceptance,
//! re-invitation through active=false/true, and real-account suspensions recorded apart.

use std::time::Duration;

use crate::support::*;
use onepassword_sim::{AccountAction, InvitationKind, Lifecycle, Seed, SeedState, SeedUser, SimConfig, SimError, Via};
use reqwest::Method;
use serde_json::json;

const DAY: Duration = Duration::from_secs(86_400);

fn frozen() -> SimConfig {
    SimConfig { clock_start: Some("2026-01-05T09:00:00Z".parse().unwrap()), ..SimConfig::default() }
}

#[tokio::test]
async fn invitation_expires_after_the_ttl_and_can_then_not_be_accepted() {
    let h = start(frozen()).await;
    let state = h.sim.state();
    let id = id_of(&h.create_user("late@example.com", "L", "T").await);
    let mail = &state.outbox()[0];
    assert_eq!(
        (mail.kind, mail.email.as_str(), mail.user_id.as_str()),
        (InvitationKind::First, "late@example.com", id.as_str())
    );
    assert_eq!(mail.expires_at - mail.at, chrono::TimeDelta::days(5));

    state.advance_clock(5 * DAY - Duration::from_secs(1));
    assert_eq!(state.user_view(&id).unwrap().lifecycle, Lifecycle::Invited);
    state.advance_clock(Duration::from_secs(1));
    assert_eq!(state.user_view(&id).unwrap().lifecycle, Lifecycle::InvitationExpired);
    // SCIM still cannot tell.
    assert_eq!(h.scim(Method::GET, &format!("/Users/{id}"), None).await.body["active"], true);
    assert_eq!(state.accept_invitation(&id), Err(SimError::InvitationExpired(id.clone())));
}

#[tokio::test]
async fn invite_ttl_is_configurable() {
    let h = start(SimConfig { invite_ttl: Duration::from_secs(3600), ..frozen() }).await;
    let state = h.sim.state();
    let id = id_of(&h.create_user("quick@example.com", "Q", "K").await);
    state.advance_clock(Duration::from_secs(3600));
    assert_eq!(state.user_view(&id).unwrap().lifecycle, Lifecycle::InvitationExpired);
}

#[tokio::test]
async fn accepting_activates_and_records_a_sign_in() {
    let h = start(frozen()).await;
    let state = h.sim.state();
    let id = id_of(&h.create_user("joiner@example.com", "J", "N").await);
    state.advance_clock(DAY);
    let view = state.accept_invitation("JOINER@example.com").unwrap();
    assert_eq!(view.lifecycle, Lifecycle::Active);
    assert_eq!(view.accepted_at, Some(state.now()));
    let sign_ins = state.sign_in_attempts();
    assert_eq!(sign_ins.len(), 1);
    assert_eq!((sign_ins[0].category.as_str(), sign_ins[0].target_user.uuid.as_str()), ("success", id.as_str()));
    assert_eq!(sign_ins[0].timestamp, state.now());
    // Accepting twice is refused.
    assert!(matches!(state.accept_invitation(&id), Err(SimError::NotInvited { .. })));
    assert!(matches!(state.accept_invitation("nobody@example.com"), Err(SimError::NotFound(_))));
}

#[tokio::test]
async fn confirmation_delay_keeps_the_account_pending() {
    let h = start(SimConfig { confirmation_delay: Duration::from_secs(300), ..frozen() }).await;
    let state = h.sim.state();
    let id = id_of(&h.create_user("p@example.com", "P", "D").await);
    assert_eq!(state.accept_invitation(&id).unwrap().lifecycle, Lifecycle::Pending);
    state.advance_clock(Duration::from_secs(300));
    assert_eq!(state.user_view(&id).unwrap().lifecycle, Lifecycle::Active);
}

#[tokio::test]
async fn deactivate_then_reactivate_reissues_an_expired_invitation() {
    let h = start(frozen()).await;
    let state = h.sim.state();
    let id = id_of(&h.create_user("retry@example.com", "R", "T").await);
    state.advance_clock(6 * DAY);
    assert_eq!(state.user_view(&id).unwrap().lifecycle, Lifecycle::InvitationExpired);

    h.patch_user(&id, json!([{"op": "replace", "path": "active", "value": false}])).await;
    assert_eq!(state.user_view(&id).unwrap().lifecycle, Lifecycle::InviteSuspended);
    let r = h.patch_user(&id, json!([{"op": "replace", "path": "active", "value": true}])).await;
    assert_eq!(r.body["active"], true);

    let view = state.user_view(&id).unwrap();
    assert_eq!(view.lifecycle, Lifecycle::Invited);
    assert_eq!(view.invitations_sent, 2);
    assert_eq!(view.invitation_expires_at, Some(state.now() + chrono::TimeDelta::days(5)));
    let outbox = state.outbox();
    assert_eq!(outbox.iter().map(|m| m.kind).collect::<Vec<_>>(), vec![InvitationKind::First, InvitationKind::Repeat]);
    assert_eq!(outbox[1].at, state.now());
    assert!(state.account_changes().is_empty(), "no real account was touched");
    // The fresh invitation can be accepted.
    assert_eq!(state.accept_invitation(&id).unwrap().lifecycle, Lifecycle::Active);
}

#[tokio::test]
async fn reactivation_without_resend_by_switch() {
    let h = start(SimConfig { reactivate_resends_invite: false, ..frozen() }).await;
    let state = h.sim.state();
    let id = id_of(&h.create_user("retry@example.com", "R", "T").await);
    state.advance_clock(6 * DAY);
    h.patch_user(&id, json!([{"op": "replace", "path": "active", "value": false}])).await;
    h.patch_user(&id, json!([{"op": "replace", "path": "active", "value": true}])).await;
    assert_eq!(state.outbox().len(), 1);
    assert_eq!(state.user_view(&id).unwrap().lifecycle, Lifecycle::InvitationExpired);
}

#[tokio::test]
async fn suspending_an_accepted_user_is_recorded_distinctly() {
    let h = start(frozen()).await;
    let state = h.sim.state();
    let id = id_of(&h.create_user("real@example.com", "R", "L").await);
    state.accept_invitation(&id).unwrap();
    h.patch_user(&id, json!([{"op": "replace", "path": "active", "value": false}])).await;
    assert_eq!(state.user_view(&id).unwrap().lifecycle, Lifecycle::Suspended);
    h.patch_user(&id, json!([{"op": "Replace", "value": {"active": "True"}}])).await;
    assert_eq!(state.user_view(&id).unwrap().lifecycle, Lifecycle::Active);
    h.scim(Method::DELETE, &format!("/Users/{id}"), None).await;

    let changes = state.account_changes();
    let summary: Vec<_> = changes.iter().map(|c| (c.action, c.via)).collect();
    assert_eq!(
        summary,
        vec![
            (AccountAction::Suspend, Via::Patch),
            (AccountAction::Reactivate, Via::Patch),
            (AccountAction::Suspend, Via::Delete),
        ]
    );
    assert!(changes.iter().all(|c| c.user_id == id && c.user_name == "real@example.com"));
    assert_eq!(state.outbox().len(), 1, "reactivating a real account sends no invitation");
    // Repeating the same state is a no-op.
    h.patch_user(&id, json!([{"op": "replace", "path": "active", "value": false}])).await;
    assert_eq!(state.account_changes().len(), 3);
}

#[tokio::test]
async fn seeded_states_and_expire_control() {
    let h = start(frozen()).await;
    let state = h.sim.state();
    let users = vec![
        SeedUser::new("inv@example.com", SeedState::Invited),
        SeedUser::new("exp@example.com", SeedState::InvitationExpired),
        SeedUser::new("act@example.com", SeedState::Active),
        SeedUser::new("sus@example.com", SeedState::Suspended),
        SeedUser::new("isus@example.com", SeedState::InviteSuspended),
    ];
    state.seed(Seed { users, groups: vec![] }).unwrap();
    let lifecycles: Vec<_> = state.users().iter().map(|u| (u.user_name.clone(), u.lifecycle, u.scim_active)).collect();
    assert_eq!(
        lifecycles,
        vec![
            ("inv@example.com".into(), Lifecycle::Invited, true),
            ("exp@example.com".into(), Lifecycle::InvitationExpired, true),
            ("act@example.com".into(), Lifecycle::Active, true),
            ("sus@example.com".into(), Lifecycle::Suspended, false),
            ("isus@example.com".into(), Lifecycle::InviteSuspended, false),
        ]
    );
    assert!(state.outbox().is_empty(), "seeding sends no mail");
    state.expire_invitation("inv@example.com").unwrap();
    assert_eq!(state.user_view("inv@example.com").unwrap().lifecycle, Lifecycle::InvitationExpired);
    assert!(state.expire_invitation("act@example.com").is_err());
    // Seeding a taken userName is refused.
    assert!(
        state.seed(Seed { users: vec![SeedUser::new("ACT@example.com", SeedState::Active)], groups: vec![] }).is_err()
    );
}

#[tokio::test]
async fn reset_empties_the_account_and_rewinds_the_clock() {
    let h = start(frozen()).await;
    let state = h.sim.state();
    let start_time = state.now();
    h.create_user("x@example.com", "X", "Y").await;
    state.advance_clock(DAY);
    state.reset();
    assert_eq!(state.now(), start_time);
    assert_eq!(state.user_count(), 0);
    assert!(state.outbox().is_empty() && state.operations().is_empty());
    assert!(state.groups().iter().any(|g| g.display_name == "Owners"), "built-in groups come back");
}
