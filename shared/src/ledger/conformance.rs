//! One behavioural suite every [`Ledger`] implementation must pass: the in-memory twin in
//! unit tests, [`super::DynamoLedger`] against moto's DynamoDB in `tests/e2e`. Keeping a
//! single suite is what makes the twin trustworthy as a stand-in.
//!
//! Each case gets a fresh, empty ledger from the factory and returns `Err(description)`
//! instead of panicking, so one run reports every failing case by name.

use std::future::Future;
use std::pin::Pin;

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};

use super::{Due, DueAction, Invitation, InvitationStatus, Ledger, PersonRecord};
use crate::event::{Attributes, EventKind, LifecycleEvent, PersonKey, SourceKind};
use crate::scim::ScimUserId;

type CaseResult = Result<(), String>;
type CaseFuture<'a> = Pin<Box<dyn Future<Output = CaseResult> + Send + 'a>>;
type Case = for<'a> fn(&'a dyn Ledger) -> CaseFuture<'a>;

/// Every case, by name.
pub const CASES: &[(&str, Case)] = &[
    ("unknown person has no record", |l| Box::pin(unknown_person_has_no_record(l))),
    ("save_person round-trips the whole record and overwrites it", |l| Box::pin(save_person_round_trips(l))),
    ("due_actions orders, cuts off inclusively, limits and pages", |l| Box::pin(due_actions_order_cutoff_paging(l))),
    ("paging continues after an action that left the index", |l| Box::pin(due_actions_page_after_completed(l))),
    ("clearing due takes the person out of the index", |l| Box::pin(clearing_due_leaves_the_index(l))),
    ("complete_due_action is conditional on the due time", |l| Box::pin(complete_due_action_is_conditional(l))),
    ("invitation counts_from round-trips", |l| Box::pin(invitation_counts_from_round_trips(l))),
    ("start_invitation_unless_pending refuses while one is pending", |l| {
        Box::pin(start_invitation_refuses_while_pending(l))
    }),
    ("status change leaves the pending index", |l| Box::pin(status_change_leaves_pending_index(l))),
    ("pending again re-enters the index", |l| Box::pin(pending_again_reenters_index(l))),
    ("settle_invitation_if_pending moves only a pending invitation", |l| {
        Box::pin(settle_invitation_moves_only_pending(l))
    }),
    ("record_reissue_if_unchanged is conditional", |l| Box::pin(record_reissue_is_conditional(l))),
    ("pending_invitations orders, limits and cuts off", |l| Box::pin(pending_invitations_order_limit_cutoff(l))),
    ("all_pending_invitations returns every pending one", |l| Box::pin(all_pending_returns_every_pending(l))),
    ("events cursor round-trips", |l| Box::pin(events_cursor_round_trips(l))),
    ("reserve_suspension allows exactly the limit per window", |l| Box::pin(reserve_suspension_limits_per_window(l))),
    ("a sign-in is remembered per user id, case-insensitively, first time kept", |l| {
        Box::pin(sign_ins_are_remembered_per_user(l))
    }),
];

/// Runs every case against a fresh ledger from `make`; returns the failures (empty when all
/// pass), each prefixed with the case's name.
pub async fn run_all<F, Fut>(make: F) -> Vec<String>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Box<dyn Ledger>>,
{
    let mut failures = Vec::new();
    for (name, case) in CASES {
        let ledger = make().await;
        if let Err(reason) = case(ledger.as_ref()).await {
            failures.push(format!("{name}: {reason}"));
        }
    }
    failures
}

fn ledger_err(e: super::LedgerError) -> String {
    format!("ledger error: {e}")
}

/// A fixed instant plus `minutes`, with sub-second precision so storage must keep nanos.
fn at(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).single().expect("valid date")
        + Duration::minutes(minutes)
        + Duration::nanoseconds(123_456_789)
}

/// A record with every field set: a folded joiner (attributes, a start date) and an
/// immediate revocation, a few converged event ids, a due action and the account link.
fn full_record(person: &PersonKey, due_minutes: i64) -> PersonRecord {
    let mut record = PersonRecord::new(person.clone(), SourceKind::Hibob, at(1));
    let joiner = LifecycleEvent {
        version: 1,
        kind: EventKind::Joiner,
        person: person.clone(),
        source_kind: SourceKind::Hibob,
        source_event_id: "evt-1".into(),
        effective_at: at(-60),
        received_at: at(-59),
        attributes: Attributes {
            work_email: Some("dana.kim@example.com".into()),
            given_name: Some("Dana".into()),
            department: Some("Finance".into()),
            start_date: NaiveDate::from_ymd_opt(2026, 4, 1),
            ..Attributes::default()
        },
        immediate: false,
        requeued: 0,
    };
    let revocation = LifecycleEvent {
        kind: EventKind::Leaver,
        source_event_id: "evt-2".into(),
        effective_at: at(-30),
        received_at: at(-31),
        attributes: Attributes { termination_date: NaiveDate::from_ymd_opt(2026, 3, 31), ..Attributes::default() },
        immediate: true,
        ..joiner.clone()
    };
    record.known.fold(&joiner);
    record.known.fold(&revocation);
    record.remember("evt-1");
    record.remember("evt-2");
    record.user_id = Some(ScimUserId::new(format!("op-{}", person.id)));
    record.due = Some(due(due_minutes));
    record
}

fn due(minutes: i64) -> Due {
    Due { at: at(minutes), intent: format!("suspend at minute {minutes} (termination date 2026-03-31)") }
}

/// A person with a due action at `minutes`, and nothing else of note.
fn with_due(id: &str, minutes: i64) -> PersonRecord {
    let mut record = PersonRecord::new(PersonKey::new("bamboohr-main", id), SourceKind::Bamboohr, at(0));
    record.due = Some(due(minutes));
    record
}

fn action_of(record: &PersonRecord) -> Result<DueAction, String> {
    let due = record.due.clone().ok_or("record without a due action")?;
    Ok(DueAction { person: record.person.clone(), source_kind: record.source_kind, due })
}

fn due_ids(actions: &[DueAction]) -> Vec<String> {
    actions.iter().map(|a| a.person.id.clone()).collect()
}

fn invitation(person: &PersonKey, sent_minutes: i64) -> Invitation {
    Invitation {
        person: person.clone(),
        user_id: ScimUserId::new(format!("op-{}", person.id)),
        email: format!("{}@example.com", person.id.to_lowercase()),
        invited_at: at(sent_minutes),
        last_sent_at: at(sent_minutes),
        counts_from: None,
        reissues: 0,
        status: InvitationStatus::Pending,
    }
}

async fn unknown_person_has_no_record(ledger: &dyn Ledger) -> CaseResult {
    let nobody = PersonKey::new("bamboohr-main", "404");
    ensure_eq!(ledger.person(&nobody).await.map_err(ledger_err)?, None, "person()");
    ensure_eq!(ledger.invitation(&nobody).await.map_err(ledger_err)?, None, "invitation()");
    Ok(())
}

async fn save_person_round_trips(ledger: &dyn Ledger) -> CaseResult {
    // Separators in the id must not confuse the key scheme.
    let person = PersonKey::new("okta-main", "00u#1:x");
    let full = full_record(&person, 20);
    ensure!(full.known.lifecycle.is_some() && full.known.revoked.is_some(), "fixture folds nothing");
    ledger.save_person(&full).await.map_err(ledger_err)?;
    ensure_eq!(ledger.person(&person).await.map_err(ledger_err)?, Some(full.clone()), "after first save");

    // A plain overwrite: fields now unset are gone, not kept from the older record.
    let bare = PersonRecord::new(person.clone(), SourceKind::Okta, at(30));
    ledger.save_person(&bare).await.map_err(ledger_err)?;
    ensure_eq!(ledger.person(&person).await.map_err(ledger_err)?, Some(bare), "after overwrite");
    ensure_eq!(
        ledger.due_actions(at(1_000), None, 10).await.map_err(ledger_err)?,
        Vec::<DueAction>::new(),
        "due after overwrite"
    );

    // Other people are independent.
    let other = PersonKey::new("okta-main", "00u2");
    ledger.save_person(&full_record(&other, 5)).await.map_err(ledger_err)?;
    ensure_eq!(ledger.person(&other).await.map_err(ledger_err)?, Some(full_record(&other, 5)), "other person");
    ensure_eq!(ledger.person(&person).await.map_err(ledger_err)?.map(|r| r.due), Some(None), "first person");
    Ok(())
}

async fn due_actions_order_cutoff_paging(ledger: &dyn Ledger) -> CaseResult {
    // Saved out of order; "a" and "b" are due at the same instant (the key breaks the tie).
    for (id, minutes) in [("p30", 30), ("b", 10), ("p0", 0), ("p40", 40), ("a", 10), ("p20", 20)] {
        ledger.save_person(&with_due(id, minutes)).await.map_err(ledger_err)?;
    }
    let due_by = at(30);
    let all = ledger.due_actions(due_by, None, 100).await.map_err(ledger_err)?;
    // Due exactly at `due_by` is due: the cutoff is inclusive.
    ensure_eq!(due_ids(&all), vec!["p0", "a", "b", "p20", "p30"], "order and inclusive cutoff");
    ensure_eq!(all.first().cloned(), Some(action_of(&with_due("p0", 0))?), "full action round-trips");
    let just_before = due_by - Duration::nanoseconds(1);
    ensure_eq!(
        due_ids(&ledger.due_actions(just_before, None, 100).await.map_err(ledger_err)?),
        vec!["p0", "a", "b", "p20"],
        "a nanosecond before a due time"
    );
    ensure_eq!(
        ledger.due_actions(at(-1), None, 10).await.map_err(ledger_err)?,
        Vec::<DueAction>::new(),
        "cutoff before all"
    );
    ensure_eq!(ledger.due_actions(due_by, None, 0).await.map_err(ledger_err)?, Vec::<DueAction>::new(), "limit 0");

    // Pages of two, each after the last action of the previous one.
    let mut pages = Vec::new();
    let mut after: Option<DueAction> = None;
    loop {
        let page = ledger.due_actions(due_by, after.as_ref(), 2).await.map_err(ledger_err)?;
        ensure!(page.len() <= 2, "page of {} with limit 2", page.len());
        ensure!(pages.len() < 10, "paging does not end");
        let Some(last) = page.last().cloned() else { break };
        pages.push(due_ids(&page));
        after = Some(last);
    }
    ensure_eq!(pages, vec![vec!["p0", "a"], vec!["b", "p20"], vec!["p30"]], "pages");
    Ok(())
}

async fn due_actions_page_after_completed(ledger: &dyn Ledger) -> CaseResult {
    // The sweep completes a page before asking for the next one after its last action, which
    // by then has left the index: the next page must start after it all the same.
    for (id, minutes) in [("p0", 0), ("p1", 1), ("p2", 2), ("p3", 3), ("p4", 4)] {
        ledger.save_person(&with_due(id, minutes)).await.map_err(ledger_err)?;
    }
    let first = ledger.due_actions(at(10), None, 2).await.map_err(ledger_err)?;
    ensure_eq!(due_ids(&first), vec!["p0", "p1"], "first page");
    for action in &first {
        ensure!(ledger.complete_due_action(action).await.map_err(ledger_err)?, "complete {}", action.person);
    }
    let second = ledger.due_actions(at(10), first.last(), 2).await.map_err(ledger_err)?;
    ensure_eq!(due_ids(&second), vec!["p2", "p3"], "page after a completed action");
    Ok(())
}

async fn clearing_due_leaves_the_index(ledger: &dyn Ledger) -> CaseResult {
    let keep = with_due("keep", 5);
    let mut cancel = with_due("cancel", 3);
    ledger.save_person(&keep).await.map_err(ledger_err)?;
    ledger.save_person(&cancel).await.map_err(ledger_err)?;
    ensure_eq!(
        due_ids(&ledger.due_actions(at(10), None, 10).await.map_err(ledger_err)?),
        vec!["cancel", "keep"],
        "before cancelling"
    );

    cancel.due = None;
    ledger.save_person(&cancel).await.map_err(ledger_err)?;
    ensure_eq!(
        due_ids(&ledger.due_actions(at(10), None, 10).await.map_err(ledger_err)?),
        vec!["keep"],
        "after cancelling"
    );
    ensure_eq!(ledger.person(&cancel.person).await.map_err(ledger_err)?, Some(cancel.clone()), "record kept");

    // Moving a due time re-sorts the person in the index.
    let moved = PersonRecord { due: Some(due(1)), ..keep.clone() };
    ledger.save_person(&moved).await.map_err(ledger_err)?;
    ensure_eq!(
        ledger.due_actions(at(10), None, 10).await.map_err(ledger_err)?,
        vec![action_of(&moved)?],
        "after moving"
    );
    Ok(())
}

async fn complete_due_action_is_conditional(ledger: &dyn Ledger) -> CaseResult {
    let listed = with_due("p1", 5);
    ledger.save_person(&listed).await.map_err(ledger_err)?;
    let action = action_of(&listed)?;

    // The worker moves the due time after the sweep listed it: the sweep's completion must
    // not take the newer plan out of the index.
    let moved = PersonRecord { due: Some(due(50)), ..listed.clone() };
    ledger.save_person(&moved).await.map_err(ledger_err)?;
    ensure!(!ledger.complete_due_action(&action).await.map_err(ledger_err)?, "completed a moved action");
    ensure_eq!(ledger.person(&listed.person).await.map_err(ledger_err)?, Some(moved.clone()), "moved record");
    ensure_eq!(
        ledger.due_actions(at(100), None, 10).await.map_err(ledger_err)?,
        vec![action_of(&moved)?],
        "moved action still listed"
    );

    let current = action_of(&moved)?;
    ensure!(ledger.complete_due_action(&current).await.map_err(ledger_err)?, "current action not completed");
    ensure!(!ledger.complete_due_action(&current).await.map_err(ledger_err)?, "completed twice");
    ensure_eq!(
        ledger.due_actions(at(100), None, 10).await.map_err(ledger_err)?,
        Vec::<DueAction>::new(),
        "index after completion"
    );
    let after = ledger.person(&listed.person).await.map_err(ledger_err)?.ok_or("record vanished")?;
    ensure_eq!(after, PersonRecord { due: None, ..moved }, "only due is cleared");

    // Completing for someone without a record creates nothing.
    let nobody = DueAction { person: PersonKey::new("bamboohr-main", "none"), ..current };
    ensure!(!ledger.complete_due_action(&nobody).await.map_err(ledger_err)?, "completed for nobody");
    ensure_eq!(ledger.person(&nobody.person).await.map_err(ledger_err)?, None, "completion created a record");
    Ok(())
}

async fn invitation_counts_from_round_trips(ledger: &dyn Ledger) -> CaseResult {
    let early = PersonKey::new("hibob-main", "early");
    let invitation = Invitation { counts_from: Some(at(24 * 60)), ..invitation(&early, 0) };
    ensure!(ledger.start_invitation_unless_pending(&invitation).await.map_err(ledger_err)?, "start refused");
    ensure_eq!(ledger.invitation(&early).await.map_err(ledger_err)?, Some(invitation.clone()), "stored");
    ensure_eq!(
        ledger.pending_invitations(at(1), 10).await.map_err(ledger_err)?,
        vec![invitation.clone()],
        "through the pending index"
    );
    ledger.overwrite_invitation_status(&early, InvitationStatus::Accepted).await.map_err(ledger_err)?;
    let accepted = ledger.invitation(&early).await.map_err(ledger_err)?.ok_or("invitation vanished")?;
    ensure_eq!(accepted.counts_from, invitation.counts_from, "kept through a status change");
    Ok(())
}

async fn start_invitation_refuses_while_pending(ledger: &dyn Ledger) -> CaseResult {
    let person = PersonKey::new("hibob-eu", "3332883854254932743");
    let first = invitation(&person, 0);
    ensure!(ledger.start_invitation_unless_pending(&first).await.map_err(ledger_err)?, "first invitation refused");
    ensure_eq!(ledger.invitation(&person).await.map_err(ledger_err)?, Some(first.clone()), "stored invitation");

    let duplicate = Invitation { email: "other@example.com".into(), ..invitation(&person, 5) };
    ensure!(
        !ledger.start_invitation_unless_pending(&duplicate).await.map_err(ledger_err)?,
        "second pending invitation accepted"
    );
    ensure_eq!(ledger.invitation(&person).await.map_err(ledger_err)?, Some(first), "invitation after refusal");

    // Once the person left, a rehire starts a fresh invitation.
    ledger.overwrite_invitation_status(&person, InvitationStatus::Cleared).await.map_err(ledger_err)?;
    let rehire = invitation(&person, 60);
    ensure!(ledger.start_invitation_unless_pending(&rehire).await.map_err(ledger_err)?, "rehire invitation refused");
    ensure_eq!(ledger.invitation(&person).await.map_err(ledger_err)?, Some(rehire), "rehire invitation");
    let pending = ledger.all_pending_invitations().await.map_err(ledger_err)?;
    ensure_eq!(pending.len(), 1, "pending count after rehire");
    Ok(())
}

async fn status_change_leaves_pending_index(ledger: &dyn Ledger) -> CaseResult {
    let keys: Vec<PersonKey> = (1..=3).map(|i| PersonKey::new("bamboohr-main", i.to_string())).collect();
    for (i, key) in keys.iter().enumerate() {
        ensure!(
            ledger.start_invitation_unless_pending(&invitation(key, i as i64)).await.map_err(ledger_err)?,
            "start {key}"
        );
    }
    ledger.overwrite_invitation_status(&keys[0], InvitationStatus::Accepted).await.map_err(ledger_err)?;
    ledger.overwrite_invitation_status(&keys[2], InvitationStatus::Escalated).await.map_err(ledger_err)?;

    let pending: Vec<PersonKey> =
        ledger.all_pending_invitations().await.map_err(ledger_err)?.into_iter().map(|i| i.person).collect();
    ensure_eq!(pending, vec![keys[1].clone()], "all pending");
    let expired = ledger.pending_invitations(at(1_000), 10).await.map_err(ledger_err)?;
    ensure_eq!(expired.len(), 1, "pending before far future");

    let accepted = ledger.invitation(&keys[0]).await.map_err(ledger_err)?.ok_or("accepted invitation vanished")?;
    ensure_eq!(accepted.status, InvitationStatus::Accepted, "status");
    ensure_eq!(accepted.email, invitation(&keys[0], 0).email, "other fields kept");

    // No invitation: a no-op, not an error, and nothing appears.
    let nobody = PersonKey::new("bamboohr-main", "none");
    ledger.overwrite_invitation_status(&nobody, InvitationStatus::Cleared).await.map_err(ledger_err)?;
    ensure_eq!(ledger.invitation(&nobody).await.map_err(ledger_err)?, None, "status set on absent invitation");
    Ok(())
}

async fn pending_again_reenters_index(ledger: &dyn Ledger) -> CaseResult {
    let person = PersonKey::new("okta-main", "00u5");
    ledger.start_invitation_unless_pending(&invitation(&person, 3)).await.map_err(ledger_err)?;
    ledger.overwrite_invitation_status(&person, InvitationStatus::Accepted).await.map_err(ledger_err)?;
    ensure_eq!(ledger.all_pending_invitations().await.map_err(ledger_err)?.len(), 0, "after accept");
    ledger.overwrite_invitation_status(&person, InvitationStatus::Pending).await.map_err(ledger_err)?;
    let pending = ledger.pending_invitations(at(4), 10).await.map_err(ledger_err)?;
    ensure_eq!(pending, vec![invitation(&person, 3)], "pending again, same send time");
    Ok(())
}

async fn settle_invitation_moves_only_pending(ledger: &dyn Ledger) -> CaseResult {
    let person = PersonKey::new("hibob-main", "77");
    ledger.start_invitation_unless_pending(&invitation(&person, 5)).await.map_err(ledger_err)?;
    ensure!(
        ledger.settle_invitation_if_pending(&person, InvitationStatus::Escalated).await.map_err(ledger_err)?,
        "pending invitation not settled"
    );
    ensure_eq!(ledger.all_pending_invitations().await.map_err(ledger_err)?.len(), 0, "pending after settling");

    // A worker clears it for a leaver; a second decision taken on the old, pending copy
    // must not overwrite that.
    ledger.overwrite_invitation_status(&person, InvitationStatus::Cleared).await.map_err(ledger_err)?;
    ensure!(
        !ledger.settle_invitation_if_pending(&person, InvitationStatus::Escalated).await.map_err(ledger_err)?,
        "settled an invitation that was no longer pending"
    );
    let stored = ledger.invitation(&person).await.map_err(ledger_err)?.ok_or("invitation vanished")?;
    ensure_eq!(stored.status, InvitationStatus::Cleared, "status after refused settle");

    let nobody = PersonKey::new("hibob-main", "none");
    ensure!(
        !ledger.settle_invitation_if_pending(&nobody, InvitationStatus::Accepted).await.map_err(ledger_err)?,
        "settled an absent invitation"
    );
    ensure_eq!(ledger.invitation(&nobody).await.map_err(ledger_err)?, None, "settle created an invitation");
    Ok(())
}

async fn record_reissue_is_conditional(ledger: &dyn Ledger) -> CaseResult {
    let person = PersonKey::new("okta-main", "00u9");
    let first = invitation(&person, 0);
    ledger.start_invitation_unless_pending(&first).await.map_err(ledger_err)?;

    ensure!(
        !ledger.record_reissue_if_unchanged(&person, 1, at(10)).await.map_err(ledger_err)?,
        "wrong expected count accepted"
    );
    ensure!(ledger.record_reissue_if_unchanged(&person, 0, at(10)).await.map_err(ledger_err)?, "valid reissue refused");
    ensure!(
        !ledger.record_reissue_if_unchanged(&person, 0, at(11)).await.map_err(ledger_err)?,
        "the same reissue counted twice"
    );

    let after = ledger.invitation(&person).await.map_err(ledger_err)?.ok_or("invitation vanished")?;
    ensure_eq!(after.reissues, 1, "reissues");
    ensure_eq!(after.last_sent_at, at(10), "last_sent_at");
    ensure_eq!(after.invited_at, first.invited_at, "invited_at unchanged");

    // The index follows the new last_sent_at.
    ensure_eq!(
        ledger.pending_invitations(at(10), 10).await.map_err(ledger_err)?.len(),
        0,
        "pending before reissue time"
    );
    ensure_eq!(
        ledger.pending_invitations(at(11), 10).await.map_err(ledger_err)?.len(),
        1,
        "pending after reissue time"
    );

    ledger.overwrite_invitation_status(&person, InvitationStatus::Accepted).await.map_err(ledger_err)?;
    ensure!(
        !ledger.record_reissue_if_unchanged(&person, 1, at(20)).await.map_err(ledger_err)?,
        "reissue of an accepted invitation"
    );
    let nobody = PersonKey::new("okta-main", "none");
    ensure!(
        !ledger.record_reissue_if_unchanged(&nobody, 0, at(20)).await.map_err(ledger_err)?,
        "reissue without invitation"
    );
    ensure_eq!(ledger.invitation(&nobody).await.map_err(ledger_err)?, None, "reissue created an invitation");
    Ok(())
}

async fn pending_invitations_order_limit_cutoff(ledger: &dyn Ledger) -> CaseResult {
    // Inserted out of order; sent at minutes 0, 10, 20, 30, 40.
    for minutes in [30, 0, 40, 10, 20] {
        let key = PersonKey::new("bamboohr-main", format!("p{minutes}"));
        ledger.start_invitation_unless_pending(&invitation(&key, minutes)).await.map_err(ledger_err)?;
    }
    let ids = |v: Vec<Invitation>| v.into_iter().map(|i| i.person.id).collect::<Vec<_>>();

    ensure_eq!(
        ids(ledger.pending_invitations(at(25), 10).await.map_err(ledger_err)?),
        vec!["p0", "p10", "p20"],
        "cutoff between 20 and 30"
    );
    ensure_eq!(ids(ledger.pending_invitations(at(100), 2).await.map_err(ledger_err)?), vec!["p0", "p10"], "limit 2");
    // Sent exactly at the cutoff is not "before" it.
    ensure_eq!(
        ids(ledger.pending_invitations(at(20), 10).await.map_err(ledger_err)?),
        vec!["p0", "p10"],
        "cutoff equal to a send time"
    );
    ensure_eq!(ledger.pending_invitations(at(100), 0).await.map_err(ledger_err)?.len(), 0, "limit 0");
    ensure_eq!(ledger.pending_invitations(at(-1), 10).await.map_err(ledger_err)?.len(), 0, "cutoff before all");
    let all = ledger.pending_invitations(at(100), 100).await.map_err(ledger_err)?;
    ensure_eq!(all.len(), 5, "all below a generous limit");
    ensure_eq!(all[0], invitation(&PersonKey::new("bamboohr-main", "p0"), 0), "full record round-trips");
    Ok(())
}

async fn all_pending_returns_every_pending(ledger: &dyn Ledger) -> CaseResult {
    // More than one query page for implementations with small pages.
    for i in 0..7 {
        let key = PersonKey::new("hibob-eu", format!("e{i}"));
        ledger.start_invitation_unless_pending(&invitation(&key, 7 - i)).await.map_err(ledger_err)?;
    }
    let all = ledger.all_pending_invitations().await.map_err(ledger_err)?;
    let ids: Vec<String> = all.iter().map(|i| i.person.id.clone()).collect();
    ensure_eq!(ids, vec!["e6", "e5", "e4", "e3", "e2", "e1", "e0"], "oldest first");
    Ok(())
}

async fn events_cursor_round_trips(ledger: &dyn Ledger) -> CaseResult {
    ensure_eq!(ledger.events_cursor().await.map_err(ledger_err)?, None, "initial cursor");
    ledger.set_events_cursor("aGVsbG8=").await.map_err(ledger_err)?;
    ensure_eq!(ledger.events_cursor().await.map_err(ledger_err)?, Some("aGVsbG8=".to_owned()), "cursor");
    ledger.set_events_cursor("d29ybGQ=").await.map_err(ledger_err)?;
    ensure_eq!(ledger.events_cursor().await.map_err(ledger_err)?, Some("d29ybGQ=".to_owned()), "replaced cursor");
    Ok(())
}

async fn reserve_suspension_limits_per_window(ledger: &dyn Ledger) -> CaseResult {
    for n in 1..=3 {
        ensure!(ledger.reserve_suspension("w-100", 3).await.map_err(ledger_err)?, "suspension {n} of 3 refused");
    }
    ensure!(!ledger.reserve_suspension("w-100", 3).await.map_err(ledger_err)?, "suspension 4 of 3 allowed");
    ensure!(!ledger.reserve_suspension("w-100", 3).await.map_err(ledger_err)?, "refusal counted");
    ensure!(ledger.reserve_suspension("w-101", 3).await.map_err(ledger_err)?, "next window not independent");
    // An operator raising the limit lets the paused suspensions through.
    ensure!(ledger.reserve_suspension("w-100", 4).await.map_err(ledger_err)?, "raised limit not honoured");
    ensure!(!ledger.reserve_suspension("w-100", 4).await.map_err(ledger_err)?, "raised limit exceeded");
    ensure!(!ledger.reserve_suspension("w-102", 0).await.map_err(ledger_err)?, "limit 0 allowed one");
    Ok(())
}

async fn sign_ins_are_remembered_per_user(ledger: &dyn Ledger) -> CaseResult {
    let ada = ScimUserId::new("IR7VJHJ36JHINBFAD7V2T5MP3E");
    let alan = ScimUserId::new("56YE2TYN2VFYRLNSHKPW5NVT5E");
    ensure_eq!(ledger.first_sign_in(&ada).await.map_err(ledger_err)?, None, "before any sign-in");
    ledger.record_sign_in(&ada, at(10)).await.map_err(ledger_err)?;
    ensure_eq!(ledger.first_sign_in(&ada).await.map_err(ledger_err)?, Some(at(10)), "after a sign-in");
    // The same user in the other spelling, later and earlier: the first record stands.
    let lower = ScimUserId::new(ada.as_str().to_lowercase());
    ensure_eq!(ledger.first_sign_in(&lower).await.map_err(ledger_err)?, Some(at(10)), "lower-case id");
    ledger.record_sign_in(&lower, at(20)).await.map_err(ledger_err)?;
    ledger.record_sign_in(&ada, at(5)).await.map_err(ledger_err)?;
    ensure_eq!(ledger.first_sign_in(&ada).await.map_err(ledger_err)?, Some(at(10)), "first record kept");
    ensure_eq!(ledger.first_sign_in(&alan).await.map_err(ledger_err)?, None, "another user");
    // Nothing else in the ledger is touched.
    ensure_eq!(ledger.all_pending_invitations().await.map_err(ledger_err)?.len(), 0, "pending invitations");
    ensure_eq!(ledger.events_cursor().await.map_err(ledger_err)?, None, "cursor");
    Ok(())
}
