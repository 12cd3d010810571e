//! The scripted story: each step sends a signed webhook (or moves the clock), lets the
//! worker and invite-retry do their work, and prints what changed in 1Password.

use anyhow::{Result, bail};
use onepassword_sim::{InvitationKind, Lifecycle, SimState};
use provisioning::{Attributes, PersonKey};
use std::collections::BTreeMap;
use std::time::Duration;

use crate::senders::{self, Keys, Webhook};
use crate::stack::Stack;

const DAY: Duration = Duration::from_secs(86_400);
const KEN_OKTA_ID: &str = "00uken0000000001";

/// One person as the demo expects them at the end.
struct Expected {
    email: &'static str,
    lifecycle: Lifecycle,
    groups: &'static [&'static str],
}

const EXPECTED: &[Expected] = &[
    Expected { email: "grace.hopper@acme.test", lifecycle: Lifecycle::Active, groups: &["Employees", "Engineering"] },
    // Her last day came while Alan's invitations expired: suspended, groups kept.
    Expected {
        email: "margaret.hamilton@acme.test",
        lifecycle: Lifecycle::Suspended,
        groups: &["Employees", "Finance"],
    },
    // Hired to start in 5 days: invited 3 days before, by the due-action sweep.
    Expected { email: "barbara.liskov@acme.test", lifecycle: Lifecycle::Active, groups: &["Employees", "Engineering"] },
    Expected { email: "ken.thompson@acme.test", lifecycle: Lifecycle::Active, groups: &["Employees", "Support"] },
    // Re-invited three times, never accepted: the last invitation has expired too.
    Expected {
        email: "alan.turing@acme.test",
        lifecycle: Lifecycle::InvitationExpired,
        groups: &["Employees", "Engineering"],
    },
];

/// One person as the stand-in HR directory holds them.
struct HrRecord {
    key: PersonKey,
    attributes: Attributes,
}

fn person(connection: &str, id: &str, given: &str, family: &str, department: &str) -> HrRecord {
    let email = format!("{}.{}@acme.test", given.to_lowercase(), family.to_lowercase());
    HrRecord {
        key: PersonKey::new(connection, id),
        attributes: Attributes {
            work_email: Some(email),
            given_name: Some(given.into()),
            family_name: Some(family.into()),
            display_name: Some(format!("{given} {family}")),
            department: Some(department.into()),
            employment_status: Some("Active".into()),
            ..Default::default()
        },
    }
}

struct Timeline<'a> {
    stack: &'a Stack,
    sim: SimState,
    http: reqwest::Client,
    keys: Keys,
    rows: Vec<(String, String, String)>,
}

impl<'a> Timeline<'a> {
    /// Fails without the simulator: the story moves its clock and reads its outbox.
    fn open(stack: &'a Stack, connections: &serde_json::Value) -> Result<Self> {
        let Some(sim) = &stack.sim else {
            bail!("the demo needs the simulator's clock and outbox; with --bridge-url use `serve`");
        };
        Ok(Timeline {
            stack,
            sim: sim.state(),
            http: reqwest::Client::new(),
            keys: Keys::from_connections(connections)?,
            rows: vec![],
        })
    }

    async fn webhook(&mut self, source: &str, what: &str, webhook: Webhook) -> Result<()> {
        let before = snapshot(&self.sim);
        let (status, body) = webhook.send(&self.http, &self.stack.ingest_url).await?;
        if status != 202 {
            bail!("{source} webhook answered {status}: {body}");
        }
        self.stack.drain().await?;
        self.record(source, what, &before);
        Ok(())
    }

    /// The clock moves; the scheduled functions run as their schedules would: the due-action
    /// sweep (and the worker converging what it queued), then invite-retry.
    async fn advance(&mut self, days: u64) -> Result<()> {
        let before = snapshot(&self.sim);
        self.sim.advance_clock(DAY * days as u32);
        let swept = self.stack.run_due_sweep().await;
        if let Some(error) = swept.error {
            bail!("the due-action sweep failed: {error}");
        }
        self.stack.drain().await?;
        let summary = self.stack.run_invite_retry().await;
        let what = format!(
            "{days} days pass (now {}); due actions run {}; invite-retry checked {}, re-invited {}, escalated {}",
            self.sim.now().format("%Y-%m-%d"),
            swept.enqueued,
            summary.checked,
            summary.reinvited,
            summary.escalated
        );
        self.record("clock", &what, &before);
        Ok(())
    }

    fn record(&mut self, source: &str, what: &str, before: &BTreeMap<String, String>) {
        let after = snapshot(&self.sim);
        let mut changes: Vec<String> = after
            .iter()
            .filter(|(email, state)| before.get(*email) != Some(*state))
            .map(|(email, state)| format!("{email}: {state}"))
            .collect();
        let mails = self.sim.outbox().len();
        if changes.is_empty() {
            changes.push("no change".into());
        }
        println!("\n▶ [{source}] {what}");
        for change in &changes {
            println!("    1Password → {change}");
        }
        println!("    (invitation e-mails sent so far: {mails})");
        self.rows.push((source.to_owned(), what.to_owned(), changes.join("; ")));
    }
}

/// `email → "state, groups, invitations"` for every user.
fn snapshot(sim: &SimState) -> BTreeMap<String, String> {
    sim.users()
        .into_iter()
        .map(|u| {
            let mut groups = u.groups.clone();
            groups.sort();
            (
                u.user_name.clone(),
                format!("{:?} in [{}], {} invitation(s)", u.lifecycle, groups.join(", "), u.invitations_sent),
            )
        })
        .collect()
}

pub async fn run(stack: &Stack, connections: &serde_json::Value) -> Result<bool> {
    let mut t = Timeline::open(stack, connections)?;
    println!(
        "Demo: webhooks go to {}/webhooks/<connection>; 1Password is the simulator at {}",
        stack.ingest_url, stack.scim_url
    );
    grace_joins_from_bamboohr(&mut t).await?;
    margaret_joins_then_moves_on_hibob(&mut t).await?;
    let ken = ken_joins_then_leaves_on_okta(&mut t).await?;
    barbara_is_hired_to_start_in_5_days(&mut t).await?;
    margarets_last_day_is_set_4_days_ahead(&mut t).await?;
    alan_never_accepts_while_the_days_pass(&mut t).await?;
    ken_is_rehired(&mut t, ken).await?;
    print_summary(&t.rows);
    let escalations = print_escalations(stack);
    Ok(verify(&t.sim, escalations))
}

/// A thin event-based webhook: the worker reads her record back from BambooHR.
async fn grace_joins_from_bamboohr(t: &mut Timeline<'_>) -> Result<()> {
    let grace = person("bamboohr-main", "101", "Grace", "Hopper", "Engineering");
    t.stack.hr.insert(grace.key, grace.attributes);
    t.webhook(
        "bamboohr",
        "employee.created for Grace Hopper (Engineering)",
        senders::bamboohr_event(&t.keys, "employee.created", "101"),
    )
    .await?;
    t.sim.accept_invitation("grace.hopper@acme.test")?;
    println!("    Grace accepts her invitation.");
    Ok(())
}

/// A mover: her department goes from Engineering to Finance, and her groups follow.
async fn margaret_joins_then_moves_on_hibob(t: &mut Timeline<'_>) -> Result<()> {
    let margaret = person("hibob-eu", "3001", "Margaret", "Hamilton", "Engineering");
    t.stack.hr.insert(margaret.key.clone(), margaret.attributes.clone());
    t.webhook(
        "hibob",
        "employee.joined for Margaret Hamilton (Engineering)",
        senders::hibob_event(&t.keys, "employee.joined", "3001", &[]),
    )
    .await?;
    t.sim.accept_invitation("margaret.hamilton@acme.test")?;
    t.stack.hr.insert(margaret.key, Attributes { department: Some("Finance".into()), ..margaret.attributes });
    t.webhook(
        "hibob",
        "employee.updated: Margaret moves to Finance",
        senders::hibob_event(&t.keys, "employee.updated", "3001", &["work.department"]),
    )
    .await?;
    Ok(())
}

/// Returns Ken's record as it was before he left, for his rehire.
async fn ken_joins_then_leaves_on_okta(t: &mut Timeline<'_>) -> Result<HrRecord> {
    let ken = person("okta-main", KEN_OKTA_ID, "Ken", "Thompson", "Support");
    t.stack.hr.insert(ken.key.clone(), ken.attributes.clone());
    let activate = ken_okta_event(&t.keys, "user.lifecycle.activate");
    t.webhook("okta", "user.lifecycle.activate for Ken Thompson (Support)", activate).await?;
    t.sim.accept_invitation("ken.thompson@acme.test")?;
    // Okta's record now says DEPROVISIONED: the worker checks before suspending.
    let deprovisioned = Attributes { employment_status: Some("DEPROVISIONED".into()), ..ken.attributes.clone() };
    t.stack.hr.insert(ken.key.clone(), deprovisioned);
    let deactivate = ken_okta_event(&t.keys, "user.lifecycle.deactivate");
    t.webhook("okta", "user.lifecycle.deactivate: Ken leaves", deactivate).await?;
    Ok(ken)
}

/// A start date ahead: nothing now; the invitation is a due action 3 days before it.
async fn barbara_is_hired_to_start_in_5_days(t: &mut Timeline<'_>) -> Result<()> {
    let mut barbara = person("bamboohr-main", "102", "Barbara", "Liskov", "Engineering");
    let start = t.sim.now().date_naive() + chrono::Days::new(5);
    barbara.attributes.start_date = Some(start);
    t.stack.hr.insert(barbara.key, barbara.attributes);
    let what = format!("employee.created for Barbara Liskov (Engineering), starting {start}: not invited yet");
    t.webhook("bamboohr", &what, senders::bamboohr_event(&t.keys, "employee.created", "102")).await
}

/// A termination date ahead: she keeps access until the start of that day.
async fn margarets_last_day_is_set_4_days_ahead(t: &mut Timeline<'_>) -> Result<()> {
    let mut margaret = person("hibob-eu", "3001", "Margaret", "Hamilton", "Finance");
    let last_day = t.sim.now().date_naive() + chrono::Days::new(4);
    margaret.attributes.termination_date = Some(last_day);
    t.stack.hr.insert(margaret.key, margaret.attributes);
    let what = format!("employee.updated: Margaret's termination date set to {last_day}: still active");
    let webhook = senders::hibob_event(&t.keys, "employee.updated", "3001", &["internal.terminationDate"]);
    t.webhook("hibob", &what, webhook).await
}

/// Alan is re-invited after each expiry, then escalated; meanwhile Margaret's last day
/// arrives and Barbara's invitation goes out (she accepts it).
async fn alan_never_accepts_while_the_days_pass(t: &mut Timeline<'_>) -> Result<()> {
    let alan = serde_json::json!({
        "kind": "joiner", "person": { "source": "hr-generic", "id": "E-2001" }, "source_kind": "generic",
        "source_event_id": "hired-E-2001", "effective_at": chrono::Utc::now().to_rfc3339(),
        "attributes": { "work_email": "alan.turing@acme.test", "given_name": "Alan", "family_name": "Turing", "department": "Engineering" }
    });
    t.webhook(
        "generic",
        "joiner Alan Turing (Engineering), who never accepts",
        senders::generic_event(&t.keys, &alan)?,
    )
    .await?;
    t.advance(6).await?;
    t.sim.accept_invitation("barbara.liskov@acme.test")?;
    println!("    Barbara accepts her invitation.");
    for _ in 0..3 {
        t.advance(6).await?;
    }
    Ok(())
}

/// Okta's record is active again; his 1Password account is reactivated, not duplicated.
async fn ken_is_rehired(t: &mut Timeline<'_>, ken: HrRecord) -> Result<()> {
    t.stack.hr.insert(ken.key, ken.attributes);
    let reactivate = ken_okta_event(&t.keys, "user.lifecycle.reactivate");
    t.webhook("okta", "user.lifecycle.reactivate: Ken is rehired", reactivate).await?;
    Ok(())
}

fn ken_okta_event(keys: &Keys, event_type: &str) -> Webhook {
    senders::okta_event(keys, event_type, KEN_OKTA_ID, "ken.thompson@acme.test", "Ken Thompson")
}

fn print_summary(rows: &[(String, String, String)]) {
    println!("\nSummary");
    println!("{:<10} {:<58} what changed in 1Password", "source", "what came in");
    for (source, what, changes) in rows {
        println!("{source:<10} {what:<58} {changes}");
    }
}

/// Returns how many, for the final check.
fn print_escalations(stack: &Stack) -> usize {
    let escalations = stack.notifications.sent();
    println!("\nEscalations sent: {}", escalations.len());
    for text in &escalations {
        println!("  {text}");
    }
    escalations.len()
}

/// True when 1Password ends exactly as the story says it should.
fn verify(sim: &SimState, escalations: usize) -> bool {
    let mut ok = true;
    println!("\nFinal state check");
    for expected in EXPECTED {
        let actual = sim.user_view(expected.email);
        let mut groups = actual.as_ref().map(|u| u.groups.clone()).unwrap_or_default();
        groups.sort();
        let good = actual.as_ref().is_some_and(|u| u.lifecycle == expected.lifecycle) && groups == expected.groups;
        ok &= good;
        println!(
            "  {} {:<32} expected {:?} in {:?}, found {}",
            if good { "✓" } else { "✗" },
            expected.email,
            expected.lifecycle,
            expected.groups,
            actual.map(|u| format!("{:?} in {:?}", u.lifecycle, groups)).unwrap_or_else(|| "nothing".into())
        );
    }
    let repeats =
        sim.outbox().iter().filter(|m| m.email == "alan.turing@acme.test" && m.kind == InvitationKind::Repeat).count();
    let good = repeats == 3 && escalations == 1;
    ok &= good;
    println!(
        "  {} Alan re-invited 3 times (found {repeats}), then escalated once (found {escalations})",
        if good { "✓" } else { "✗" }
    );
    let users = sim.users().len();
    ok &= users == EXPECTED.len();
    println!(
        "  {} {} accounts, no duplicates (found {users})",
        if users == EXPECTED.len() { "✓" } else { "✗" },
        EXPECTED.len()
    );
    ok
}
