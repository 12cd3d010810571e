//! Converges one person: the only place (with the adapters) where the worker does I/O.
//! An event is a trigger, not a delta: it is folded into the person's known state, then the
//! best truth is read (the source's API, else the folded events), the desired state as of
//! now is computed (pure), the bridge is read, the pure planner plans, the guards (dry run,
//! mass-leaver brake) run, the operations are applied in order, and the ledger records the
//! link, the fold, the event id and the next due action.

use chrono::{DateTime, Utc};
use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::desired::{Access, DesiredState, TimingRules, desired_as_of};
use crate::enrich::{EnrichError, Enricher};
use crate::event::{EventKind, LifecycleEvent};
use crate::groups::{Catalogue, ManagedGroups, Membership};
use crate::ledger::{Due, Invitation, InvitationStatus, Ledger, LedgerError, PersonRecord};
use crate::mapping::MappingRules;
use crate::notify::Notifier;
use crate::plan::{self, Actual, Note, Operation, Plan, PlanPolicy, Refusal, Skip};
use crate::scim::{CreateOutcome, Directory, NewUser, PatchOperation, ScimError, ScimUser, ScimUserId};
use crate::telemetry::mask_email;
use crate::truth::{KnownState, Lifecycle, Status, Truth};

/// Who holds a person's lease while the worker writes to their account, and for how long
/// at most (far beyond any plan; a crashed holder's lease simply lapses).
pub const LEASE_HOLDER: &str = "worker";
const LEASE: chrono::Duration = chrono::Duration::minutes(2);
/// How long a process trusts its group catalogue: groups change rarely, and a group deleted
/// by hand is noticed sooner (a 404 forgets the catalogue).
const CATALOGUE_TTL: Duration = Duration::from_secs(300);

/// Mass-leaver brake: at most `limit` suspensions per fixed window of `window`.
#[derive(Debug, Clone, Copy)]
pub struct Brake {
    pub limit: u32,
    pub window: Duration,
}

impl Default for Brake {
    fn default() -> Self {
        Brake { limit: 10, window: Duration::from_secs(3600) }
    }
}

impl Brake {
    fn window_id(&self, now: DateTime<Utc>) -> String {
        let seconds = self.window.as_secs().max(1) as i64;
        format!("{}s-{}", seconds, now.timestamp().div_euclid(seconds))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Applied {
        operations: Vec<&'static str>,
        notes: Vec<Note>,
    },
    Skipped {
        reason: Skip,
        notes: Vec<Note>,
    },
    /// Dry run: the plan was logged, nothing changed.
    Planned {
        operations: Vec<&'static str>,
    },
}

impl Outcome {
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Applied { .. } => "applied",
            Outcome::Skipped { reason, .. } => reason.as_str(),
            Outcome::Planned { .. } => "dry_run",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("refused: {0}")]
    Refused(#[from] Refusal),
    #[error(
        "mass-leaver brake engaged: {limit} suspensions already in this window; raise MASS_LEAVER_LIMIT to let more through"
    )]
    BrakeEngaged { limit: u32 },
    #[error("bridge: {0}")]
    Scim(#[from] ScimError),
    #[error("ledger: {0}")]
    Ledger(#[from] LedgerError),
    #[error("source API: {0}")]
    Enrich(#[from] EnrichError),
    #[error("the source has no record of this joiner (yet); retried later")]
    NotInSource,
    #[error("no 1Password user to apply the plan to: the bridge lost it between two calls")]
    NoUser,
    #[error("invite-retry is re-issuing this person's invitation right now; retried shortly")]
    Busy,
}

impl ApplyError {
    pub fn label(&self) -> &'static str {
        match self {
            ApplyError::Refused(Refusal::ProtectedGroup { .. }) => "refused_protected_group",
            ApplyError::Refused(Refusal::MissingEmail) => "refused_missing_email",
            ApplyError::Refused(Refusal::AccountOfAnotherPerson { .. }) => "refused_account_of_another_person",
            ApplyError::Refused(Refusal::ProtectedAccount { .. }) => "refused_protected_account",
            ApplyError::Refused(Refusal::UnlinkedAccount { .. }) => "refused_unlinked_account",
            ApplyError::BrakeEngaged { .. } => "brake_engaged",
            ApplyError::Scim(_) => "scim_error",
            ApplyError::Ledger(_) => "ledger_error",
            ApplyError::Enrich(_) => "enrich_error",
            ApplyError::NotInSource => "not_in_source",
            ApplyError::NoUser => "user_vanished",
            ApplyError::Busy => "busy",
        }
    }
}

pub struct Applier {
    pub ledger: Arc<dyn Ledger>,
    pub enricher: Arc<dyn Enricher>,
    pub notifier: Option<Arc<dyn Notifier>>,
    pub rules: Arc<MappingRules>,
    pub timing: TimingRules,
    pub policy: PlanPolicy,
    pub brake: Brake,
    pub dry_run: bool,
    attribute_only_connections: BTreeSet<String>,
    groups: ManagedGroups,
}

/// How the worker decides, besides the ports: mapping rules, time settings, plan policy,
/// the brake and dry run.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    /// Connections that describe people another connection owns (an IdP beside the HR
    /// system): they update profile and groups of the linked account, never its lifecycle,
    /// and never create or claim accounts.
    pub attribute_only_connections: BTreeSet<String>,
    pub mapping: MappingRules,
    pub timing: TimingRules,
    pub policy: PlanPolicy,
    pub brake: Brake,
    pub dry_run: bool,
}

impl Applier {
    pub fn new(
        ledger: Arc<dyn Ledger>,
        enricher: Arc<dyn Enricher>,
        notifier: Option<Arc<dyn Notifier>>,
        rules: Rules,
    ) -> Self {
        Applier {
            groups: ManagedGroups::new(rules.mapping.managed_groups(), CATALOGUE_TTL).coordinated_by(ledger.clone()),
            ledger,
            enricher,
            notifier,
            rules: Arc::new(rules.mapping),
            timing: rules.timing,
            policy: rules.policy,
            brake: rules.brake,
            dry_run: rules.dry_run,
            attribute_only_connections: rules.attribute_only_connections,
        }
    }

    /// Reads the group catalogue (which probes and logs the membership strategy).
    pub async fn prepare(&self, directory: &dyn Directory) -> Result<(), ScimError> {
        self.groups.catalogue(directory).await.map(|_| ())
    }

    /// How the bridge shows memberships, once probed.
    pub fn membership_strategy(&self) -> Option<crate::groups::MembershipStrategy> {
        self.groups.strategy()
    }

    /// Converges the person an event names: load → fold → truth → desired → observe →
    /// plan → guard → execute → record. Errors mean "not done": the message goes back to
    /// the queue (and, after the redrive limit, to the DLQ). `deadline` bounds source reads.
    pub async fn process(
        &self,
        directory: &dyn Directory,
        event: LifecycleEvent,
        now: DateTime<Utc>,
        deadline: Option<Instant>,
    ) -> Result<Outcome, ApplyError> {
        let stored = self.ledger.person(&event.person).await?;
        let mut record = stored.unwrap_or_else(|| PersonRecord::new(event.person.clone(), event.source_kind, now));
        // A redelivery stops here, before any source or bridge call.
        if record.recognises(&event.source_event_id) {
            return Ok(Outcome::Skipped { reason: Skip::Duplicate, notes: vec![] });
        }
        record.known.fold(&event);
        let truth = self.read_truth(&event, &record.known, deadline).await?;
        let timing = self.timing.for_connection(&event.person.source);
        let mut desired = desired_as_of(&event.person, &truth, &self.rules, timing, now);
        if self.attribute_only_connections.contains(&event.person.source) {
            desired.access = Access::Keep;
            desired.attribute_only = true;
        }
        log_desired(&truth, &desired);
        let observed = self.observe(directory, &desired, event.kind, record.user_id.as_ref()).await?;
        let mut user_id = observed.actual.user.as_ref().map(|u| u.id.clone());
        let created_by_us =
            observed.actual.user.as_ref().is_some_and(|u| u.external_id == Some(event.person.to_string()));
        let plan = self.plan(&desired, &observed.actual, event.kind)?;
        report_refused_removals(&plan);
        let outcome = match plan {
            Plan::Skip { reason, notes } => Outcome::Skipped { reason, notes },
            Plan::Apply { operations, notes } => {
                if let Some(planned) = self.guard(&operations, now).await? {
                    return Ok(planned);
                }
                let executed = self.execute_under_lease(directory, &desired, observed, operations, now).await?;
                user_id = Some(executed.user_id);
                Outcome::Applied { operations: executed.names, notes }
            }
        };
        if self.dry_run {
            return Ok(outcome);
        }
        if created_by_us && let Some(user_id) = &user_id {
            self.track_unrecorded_invitation(&desired, user_id, now).await?;
        }
        self.record(record, user_id, &event, &desired, now).await?;
        Ok(outcome)
    }

    /// Executes a guarded plan while holding the person's lease, with the invitation ledger
    /// kept in step before (a revocation clears it first) and after.
    async fn execute_under_lease(
        &self,
        directory: &dyn Directory,
        desired: &DesiredState,
        observed: Observed,
        operations: Vec<Operation>,
        now: DateTime<Utc>,
    ) -> Result<Executed, ApplyError> {
        self.clear_invitation_before_revoking(desired).await?;
        if !self.ledger.try_lease(&desired.person, LEASE_HOLDER, now + LEASE, now).await? {
            return Err(ApplyError::Busy);
        }
        let executed = self.execute(directory, desired, observed, operations, now).await;
        self.ledger.release_lease(&desired.person, LEASE_HOLDER).await?;
        let executed = executed?;
        self.track_invitation(desired, &executed, now).await?;
        Ok(executed)
    }

    /// The best truth: the source's API record when the connection has an API, else the
    /// person's folded events.
    async fn read_truth(
        &self,
        event: &LifecycleEvent,
        known: &KnownState,
        deadline: Option<Instant>,
    ) -> Result<Truth, ApplyError> {
        match self.enricher.fetch(&event.person, deadline).await {
            Ok(Some(record)) => Ok(Truth::from_source(record, known)),
            Ok(None) => {
                let mut truth = Truth::from_events(known);
                match event.kind {
                    // HiBob's reads can lag its webhooks by seconds: the retry will find them.
                    EventKind::Joiner | EventKind::Rehire => return Err(ApplyError::NotInSource),
                    // Deleted from the source: they have left.
                    _ if known.lifecycle.as_ref().is_some_and(|l| l.value == Lifecycle::Leaves) => {
                        truth.status = Status::Inactive
                    }
                    _ => {}
                }
                Ok(truth)
            }
            // No source API configured for this connection (a generic sender, say).
            Err(EnrichError::UnknownConnection { .. }) => Ok(Truth::from_events(known)),
            Err(error) => Err(error.into()),
        }
    }

    /// The pure plan, with one rule of the trigger's: only a joiner, a rehire or a converge
    /// trigger creates an account. Movers and leavers fire for everyone in an HR system,
    /// including people who should not have 1Password; a leaver the source contradicts must
    /// never become an invitation.
    fn plan(&self, desired: &DesiredState, actual: &Actual, trigger: EventKind) -> Result<Plan, Refusal> {
        let plan = plan::plan(desired, actual, &self.policy)?;
        let creates = matches!(&plan, Plan::Apply { operations, .. } if matches!(operations.first(), Some(Operation::CreateUser(_))));
        if creates && matches!(trigger, EventKind::Mover | EventKind::Leaver) {
            return Ok(Plan::Skip { reason: Skip::UnknownPerson, notes: vec![] });
        }
        Ok(plan)
    }

    /// What 1Password looks like now for this person.
    async fn observe(
        &self,
        directory: &dyn Directory,
        desired: &DesiredState,
        trigger: EventKind,
        known_user_id: Option<&ScimUserId>,
    ) -> Result<Observed, ApplyError> {
        let user = self.find_user(directory, desired, trigger, known_user_id).await?;
        let catalogue = self.groups.catalogue(directory).await?;
        let actual = self.actual(directory, &catalogue, user).await?;
        Ok(Observed { actual, catalogue, trigger })
    }

    /// The user with their memberships (none for a user that does not exist yet).
    async fn actual(
        &self,
        directory: &dyn Directory,
        catalogue: &Catalogue,
        user: Option<ScimUser>,
    ) -> Result<Actual, ScimError> {
        let membership = match &user {
            Some(user) => self.groups.membership(directory, catalogue, user).await?,
            None => Membership::Known(BTreeSet::new()),
        };
        let (member_of, memberships_unknown) = match membership {
            Membership::Known(names) => (names, false),
            Membership::Unknown => (BTreeSet::new(), true),
        };
        Ok(Actual { user, member_of, memberships_unknown, existing_groups: catalogue.existing() })
    }

    /// Dry run stops here with the plan; a suspension must fit under the mass-leaver brake.
    async fn guard(&self, operations: &[Operation], now: DateTime<Utc>) -> Result<Option<Outcome>, ApplyError> {
        if self.dry_run {
            let names: Vec<&'static str> = operations.iter().map(Operation::name).collect();
            tracing::info!(operations = ?names, "dry run: plan not applied");
            return Ok(Some(Outcome::Planned { operations: names }));
        }
        if operations.iter().any(|op| matches!(op, Operation::Suspend | Operation::Delete)) {
            self.reserve_suspension(now).await?;
        }
        // A wave of reactivations is as suspicious as a wave of suspensions (a source
        // flipping everyone back to active): the same brake, counted apart.
        if operations.iter().any(|op| matches!(op, Operation::Reactivate)) {
            self.reserve(now, "reactivation").await?;
        }
        Ok(None)
    }

    /// The person's account: the linked one, else the one whose `externalId` is the person
    /// key. Only a joiner (or a converge trigger) who should have access may take over an
    /// unlinked account with their e-mail — 1Password's own matching, needed on the first
    /// deployment — and only one that is active and linked to nobody: a leaver, mover or
    /// rehire never takes over an account that is not provably theirs.
    async fn find_user(
        &self,
        directory: &dyn Directory,
        desired: &DesiredState,
        trigger: EventKind,
        known_user_id: Option<&ScimUserId>,
    ) -> Result<Option<ScimUser>, ApplyError> {
        if let Some(id) = known_user_id
            && let Some(user) = directory.get_user(id).await?
        {
            return Ok(Some(user));
        }
        let key = desired.person.to_string();
        let email = desired.attributes.work_email.as_deref().map(str::trim).filter(|e| !e.is_empty());
        let Some(user) = directory.find_user(&key, email).await? else { return Ok(None) };
        if user.external_id.as_deref() == Some(key.as_str()) || desired.attribute_only {
            return Ok(Some(user));
        }
        self.vet_adoption(desired, trigger, user).await
    }

    /// An account found by e-mail, not linked to this person: adopted (claimed in the
    /// ledger, an audit line and a metric) only under the trust rules; otherwise refused
    /// and reported, untouched.
    async fn vet_adoption(
        &self,
        desired: &DesiredState,
        trigger: EventKind,
        user: ScimUser,
    ) -> Result<Option<ScimUser>, ApplyError> {
        let report = |why: &'static str| {
            metrics::counter!("unlinked_account_left_alone").increment(1);
            tracing::warn!(user_id = %user.id, why, "an account with this e-mail is not linked to this person; left alone");
        };
        if !matches!(trigger, EventKind::Joiner | EventKind::Converge) || desired.access != Access::Granted {
            report("only a joiner who should have access may adopt an account by e-mail");
            return Ok(None);
        }
        if !user.active {
            let why = "suspended (never reactivated for someone it is not linked to)";
            report(why);
            return Err(Refusal::UnlinkedAccount { why }.into());
        }
        if user.external_id.as_deref().is_some_and(|id| !id.is_empty()) {
            return Ok(Some(user)); // the planner refuses it: another person's account
        }
        if let Some(owner) = self.ledger.account_owner(&user.id).await?
            && owner != desired.person
        {
            return Err(Refusal::AccountOfAnotherPerson { external_id: owner.to_string() }.into());
        }
        if !self.policy.is_protected_account(&user.user_name) && !self.dry_run {
            if !self.ledger.claim_account(&user.id, &desired.person).await? {
                return Err(Refusal::AccountOfAnotherPerson { external_id: "(claimed meanwhile)".into() }.into());
            }
            metrics::counter!("accounts_adopted").increment(1);
            tracing::info!(audit = true, operation = "adopt_by_email", user_id = %user.id, "adopting the account with this e-mail");
        }
        Ok(Some(user))
    }

    async fn reserve_suspension(&self, now: DateTime<Utc>) -> Result<(), ApplyError> {
        self.reserve(now, "suspension").await
    }

    /// Counts one `what` (suspension, reactivation) in the brake's window, or engages it.
    async fn reserve(&self, now: DateTime<Utc>, what: &'static str) -> Result<(), ApplyError> {
        let window = match what {
            "suspension" => self.brake.window_id(now),
            other => format!("{other}-{}", self.brake.window_id(now)),
        };
        if self.ledger.reserve_suspension(&window, self.brake.limit).await? {
            return Ok(());
        }
        metrics::counter!("mass_leaver_brake_engaged", "what" => what).increment(1);
        tracing::error!(
            limit = self.brake.limit,
            window,
            what,
            "mass-leaver brake engaged: paused and returned to the queue"
        );
        if let Some(notifier) = &self.notifier {
            let text = format!(
                "1Password provisioning: mass-leaver brake engaged. More than {} {what}s within {} s; \
                 further {what}s are paused and wait in the queue. If this is expected, raise MASS_LEAVER_LIMIT.",
                self.brake.limit,
                self.brake.window.as_secs()
            );
            if let Err(error) = notifier.notify(&text).await {
                tracing::warn!(%error, "brake notification failed");
            }
        }
        Err(ApplyError::BrakeEngaged { limit: self.brake.limit })
    }

    /// Applies the operations in order. A create that finds the person exists (409) adopts
    /// them and plans again from what is really there.
    async fn execute(
        &self,
        directory: &dyn Directory,
        desired: &DesiredState,
        observed: Observed,
        operations: Vec<Operation>,
        now: DateTime<Utc>,
    ) -> Result<Executed, ApplyError> {
        let Observed { actual, mut catalogue, trigger } = observed;
        let mut progress = Progress { user_id: actual.user.as_ref().map(|u| u.id.clone()), ..Progress::default() };
        let mut queue: VecDeque<Operation> = operations.into();
        while let Some(operation) = queue.pop_front() {
            let started = Instant::now();
            match (&operation, progress.user_id.clone()) {
                (Operation::CreateUser(new_user), _) => {
                    if let Some(replanned) = self
                        .create_user(directory, desired, (trigger, &catalogue), &actual, new_user, &mut progress)
                        .await?
                    {
                        queue = replanned.into();
                        progress.names.push("adopt_existing");
                        continue;
                    }
                    // Tracked now, not at the end: if a later operation fails, the retry
                    // finds the user existing and would never know it invited them.
                    if let Some(user_id) = &progress.user_id {
                        self.start_tracking(desired, user_id, now).await?;
                    }
                }
                (other, Some(user_id)) => self.execute_one(directory, other, &user_id, &mut catalogue).await?,
                (_, None) => return Err(ApplyError::NoUser),
            }
            audit(desired, &operation, progress.user_id.as_ref(), started);
            progress.names.push(operation.name());
        }
        let user_id = progress.user_id.ok_or(ApplyError::NoUser)?;
        Ok(Executed { user_id, names: progress.names })
    }

    /// Creates the user; on a 409 (someone has this e-mail already) adopts them and returns
    /// the operations planned from their real state.
    async fn create_user(
        &self,
        directory: &dyn Directory,
        desired: &DesiredState,
        (trigger, catalogue): (EventKind, &Catalogue),
        actual: &Actual,
        new_user: &NewUser,
        progress: &mut Progress,
    ) -> Result<Option<Vec<Operation>>, ApplyError> {
        let existing = match directory.create_user(new_user).await? {
            CreateOutcome::Created(user) => {
                self.ledger.claim_account(&user.id, &desired.person).await?;
                progress.user_id = Some(user.id);
                return Ok(None);
            }
            CreateOutcome::Conflict => directory.find_user_by_user_name(&new_user.user_name).await?,
        };
        let existing = existing.ok_or_else(|| ScimError::Status {
            status: 409,
            scim_type: Some("uniqueness".into()),
            detail: Some("conflict, but no user with that userName is listed".into()),
        })?;
        let ours = existing.external_id.as_deref() == Some(desired.person.to_string().as_str());
        let existing = match ours {
            true => existing,
            false => self.vet_adoption(desired, trigger, existing).await?.ok_or(Refusal::UnlinkedAccount {
                why: "found when creating, by an event that may not adopt (only a joiner's may)",
            })?,
        };
        tracing::info!(user_id = %existing.id, "create answered 409: adopting the existing user");
        progress.user_id = Some(existing.id.clone());
        let adopted = Actual {
            existing_groups: actual.existing_groups.clone(),
            ..self.actual(directory, catalogue, Some(existing)).await?
        };
        Ok(Some(match self.plan(desired, &adopted, trigger)? {
            Plan::Apply { operations, .. } => operations,
            Plan::Skip { .. } => Vec::new(),
        }))
    }

    /// One operation on an existing user.
    async fn execute_one(
        &self,
        directory: &dyn Directory,
        operation: &Operation,
        user_id: &ScimUserId,
        catalogue: &mut Arc<Catalogue>,
    ) -> Result<(), ApplyError> {
        if let Some(patch) = user_patch(operation) {
            return Ok(directory.patch_user(user_id, patch).await?);
        }
        match operation {
            Operation::Delete => directory.delete_user(user_id).await?,
            Operation::CreateGroup(name) => *catalogue = self.groups.ensure(directory, name).await?,
            Operation::AddToGroup(name) => {
                let add = PatchOperation::add_members(std::slice::from_ref(user_id));
                self.patch_membership(directory, name, catalogue, add).await?
            }
            Operation::RemoveFromGroup(name) => {
                let remove = PatchOperation::remove_member(user_id);
                self.patch_membership(directory, name, catalogue, remove).await?
            }
            // Handled by `user_patch` and `create_user`.
            Operation::CreateUser(_)
            | Operation::Reactivate
            | Operation::Suspend
            | Operation::UpdateName { .. }
            | Operation::UpdateEmail { .. } => {}
        }
        Ok(())
    }

    /// Adds to or removes from a managed group. A group the bridge no longer has (deleted
    /// by hand) means the catalogue is stale: it is forgotten, so the retry reads afresh
    /// (and re-creates the group).
    async fn patch_membership(
        &self,
        directory: &dyn Directory,
        name: &str,
        catalogue: &Catalogue,
        change: PatchOperation,
    ) -> Result<(), ApplyError> {
        let Some(group) = catalogue.group(name) else {
            return Err(self.stale_catalogue(format!("group {name:?} not found")).await);
        };
        match directory.patch_group(&group.id, vec![change]).await {
            Err(ScimError::Status { status: 404, .. }) => {
                Err(self.stale_catalogue(format!("group {name:?} ({}) is gone", group.id)).await)
            }
            other => Ok(other?),
        }
    }

    /// The cached group catalogue no longer matches the bridge (a group deleted by hand):
    /// forgets it, so the retry reads groups afresh, and says which group went missing.
    async fn stale_catalogue(&self, problem: String) -> ApplyError {
        self.groups.forget().await;
        let detail = format!("{problem}; the group catalogue is refreshed");
        ScimError::Status { status: 404, scim_type: None, detail: Some(detail) }.into()
    }

    /// Saves what this convergence learnt: the account link, the fold, the event id (so a
    /// redelivery costs nothing) and the next due action (moved or cancelled when HR moved
    /// or cancelled a date).
    async fn record(
        &self,
        mut record: PersonRecord,
        user_id: Option<ScimUserId>,
        event: &LifecycleEvent,
        desired: &DesiredState,
        now: DateTime<Utc>,
    ) -> Result<(), LedgerError> {
        if let Some(user_id) = user_id
            && !desired.attribute_only
        {
            if !self.ledger.claim_account(&user_id, &record.person).await? {
                tracing::warn!(%user_id, "the account is linked to another person; this person's link is not recorded");
            } else {
                record.user_id = Some(user_id);
            }
        }
        // A converge trigger claims nothing, so a later one with the same id (a due action
        // re-enqueued after the worker moved it back) must still run.
        if event.kind != EventKind::Converge {
            record.remember(&event.source_event_id);
        }
        let due = desired.next_change.as_ref().map(|next| Due { at: next.at, intent: next.intent.clone() });
        if due != record.due {
            match &due {
                Some(due) => tracing::info!(due_at = %due.at, intent = due.intent, "due action recorded"),
                None => tracing::info!("due action cancelled"),
            }
        }
        record.due = due;
        record.updated_at = now;
        self.ledger.save_person(&record).await
    }

    /// Revoked access clears a pending invitation *before* the suspension is sent, so
    /// invite-retry, which re-checks the ledger before reactivating, never re-invites or
    /// reactivates someone who is leaving.
    async fn clear_invitation_before_revoking(&self, desired: &DesiredState) -> Result<(), LedgerError> {
        if desired.access != Access::Revoked {
            return Ok(());
        }
        let pending =
            self.ledger.invitation(&desired.person).await?.is_some_and(|i| i.status == InvitationStatus::Pending);
        if pending {
            self.ledger.overwrite_invitation_status(&desired.person, InvitationStatus::Cleared).await?;
        }
        Ok(())
    }

    /// Keeps the invitation ledger in step: a new invitation starts tracking, revoked access
    /// clears a pending one, a reactivation of someone who never accepted starts afresh.
    async fn track_invitation(
        &self,
        desired: &DesiredState,
        executed: &Executed,
        now: DateTime<Utc>,
    ) -> Result<(), LedgerError> {
        let person = &desired.person;
        let existing = self.ledger.invitation(person).await?;
        let pending = existing.as_ref().is_some_and(|i| i.status == InvitationStatus::Pending);
        match desired.access {
            Access::Revoked if pending => {
                self.ledger.overwrite_invitation_status(person, InvitationStatus::Cleared).await
            }
            Access::Revoked => Ok(()),
            // A new account's invitation is tracked as soon as it is created (`execute`).
            _ => {
                let reactivated_unaccepted = executed.names.contains(&"reactivate")
                    && existing.as_ref().is_some_and(|i| i.status != InvitationStatus::Accepted);
                if !reactivated_unaccepted {
                    return Ok(());
                }
                self.start_tracking(desired, &executed.user_id, now).await
            }
        }
    }

    /// An account we created (its `externalId` is the person key) with no invitation record
    /// at all: the write after the create failed. Tracked now, or invite-retry would never
    /// know to re-issue it.
    async fn track_unrecorded_invitation(
        &self,
        desired: &DesiredState,
        user_id: &ScimUserId,
        now: DateTime<Utc>,
    ) -> Result<(), LedgerError> {
        if desired.access != Access::Granted || self.ledger.invitation(&desired.person).await?.is_some() {
            return Ok(());
        }
        tracing::warn!(%user_id, "an account we created has no invitation record; tracking it now");
        self.start_tracking(desired, user_id, now).await
    }

    /// Tracks a fresh invitation for the person; one still pending is cleared first.
    async fn start_tracking(
        &self,
        desired: &DesiredState,
        user_id: &ScimUserId,
        now: DateTime<Utc>,
    ) -> Result<(), LedgerError> {
        let person = &desired.person;
        let pending = self.ledger.invitation(person).await?.is_some_and(|i| i.status == InvitationStatus::Pending);
        if pending {
            self.ledger.overwrite_invitation_status(person, InvitationStatus::Cleared).await?;
        }
        let Some(email) = desired.attributes.work_email.as_deref() else { return Ok(()) };
        let invitation = Invitation {
            person: person.clone(),
            user_id: user_id.clone(),
            email: email.trim().to_owned(),
            invited_at: now,
            last_sent_at: now,
            counts_from: desired.starts_at,
            reissues: 0,
            status: InvitationStatus::Pending,
        };
        self.ledger.start_invitation_unless_pending(&invitation).await.map(|_| ())
    }
}

/// What the bridge looks like for one person, and what kind of event asked.
struct Observed {
    trigger: EventKind,
    actual: Actual,
    /// The group catalogue the observation used.
    catalogue: Arc<Catalogue>,
}

/// How far execution got.
#[derive(Default)]
struct Progress {
    user_id: Option<ScimUserId>,
    names: Vec<&'static str>,
}

struct Executed {
    user_id: ScimUserId,
    names: Vec<&'static str>,
}

/// One line per convergence: where the truth came from and what it means now.
fn log_desired(truth: &Truth, desired: &DesiredState) {
    let origin: &'static str = truth.origin.into();
    let phase: &'static str = desired.phase.into();
    let access: &'static str = desired.access.into();
    tracing::info!(
        truth = origin,
        phase,
        access,
        next_change_at = desired.next_change.as_ref().map(|n| n.at.to_rfc3339()),
        next_change = desired.next_change.as_ref().map(|n| n.intent.as_str()),
        "desired state"
    );
    if desired.access == Access::Untouched {
        tracing::warn!("out of scope, report only: the 1Password account (if any) is left alone");
        metrics::counter!("out_of_scope_reported").increment(1);
    }
}

/// Group removals the planner could not check (the bridge shows no memberships) are an
/// error an admin must see, not a silent skip; the rest of the plan still applies.
fn report_refused_removals(plan: &Plan) {
    let (Plan::Apply { notes, .. } | Plan::Skip { notes, .. }) = plan;
    for note in notes {
        if let Note::GroupRemovalsRefused { groups } = note {
            metrics::counter!("group_removals_refused").increment(1);
            tracing::error!(
                ?groups,
                "group removals refused: the bridge shows no memberships, so whether the person is still in \
                 these groups cannot be checked; see docs/decisions.md, \"Managed groups\""
            );
        }
    }
}

/// The PATCH of the user an operation is, when it is one.
fn user_patch(operation: &Operation) -> Option<Vec<PatchOperation>> {
    let replace = PatchOperation::replace;
    Some(match operation {
        Operation::Reactivate => vec![replace("active", true.into())],
        Operation::Suspend => vec![replace("active", false.into())],
        Operation::UpdateName { given_name, family_name, display_name } => vec![
            replace("name.givenName", given_name.as_str().into()),
            replace("name.familyName", family_name.as_str().into()),
            replace("displayName", display_name.as_str().into()),
        ],
        Operation::UpdateEmail { email } => vec![
            replace("userName", email.as_str().into()),
            replace("emails", serde_json::json!([{ "value": email, "primary": true }])),
        ],
        _ => return None,
    })
}

/// The audit line of one applied operation (the message's span names the person).
fn audit(desired: &DesiredState, operation: &Operation, user_id: Option<&ScimUserId>, started: Instant) {
    let name = operation.name();
    tracing::info!(
        audit = true,
        operation = name,
        user_id = user_id.map(ScimUserId::as_str),
        email = %desired.attributes.work_email.as_deref().map(mask_email).unwrap_or_default(),
        outcome = "ok",
        duration_ms = started.elapsed().as_millis() as u64,
        "applied"
    );
    metrics::counter!("operations_applied", "operation" => name).increment(1);
}

#[cfg(test)]
mod tests;
