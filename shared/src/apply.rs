//! Executes plans: the only place (with the adapters) where the worker does I/O. Reads the
//! ledger and the bridge, asks the pure planner, guards (mass-leaver brake, dry run),
//! applies the operations in order, and records what happened.

use chrono::{DateTime, Utc};
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

use crate::enrich::{EnrichError, Enricher};
use crate::event::{EventKind, LifecycleEvent};
use crate::ledger::{Invitation, InvitationStatus, Ledger, LedgerError, PersonRecord};
use crate::mapping::MappingRules;
use crate::notify::Notifier;
use crate::plan::{self, Actual, Desired, LastApplied, Note, Operation, Plan, PlanPolicy, Refusal, Skip};
use crate::scim::{
    CreateOutcome, Directory, NewUser, PatchOperation, ScimError, ScimGroup, ScimGroupId, ScimUser, ScimUserId,
};
use crate::telemetry::mask_email;

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
    #[error("the person's source record is gone; cannot invite")]
    NotInSource,
    #[error("no 1Password user to apply the plan to: the bridge lost it between two calls")]
    NoUser,
}

impl ApplyError {
    pub fn label(&self) -> &'static str {
        match self {
            ApplyError::Refused(Refusal::ProtectedGroup { .. }) => "refused_protected_group",
            ApplyError::Refused(Refusal::MissingEmail) => "refused_missing_email",
            ApplyError::Refused(Refusal::AccountOfAnotherPerson { .. }) => "refused_account_of_another_person",
            ApplyError::BrakeEngaged { .. } => "brake_engaged",
            ApplyError::Scim(_) => "scim_error",
            ApplyError::Ledger(_) => "ledger_error",
            ApplyError::Enrich(_) => "enrich_error",
            ApplyError::NotInSource => "not_in_source",
            ApplyError::NoUser => "user_vanished",
        }
    }
}

/// Group names → groups, cached across invocations: groups change rarely, and listing them
/// for every event would cost a SCIM call each.
struct GroupCatalog {
    ttl: Duration,
    cached: Mutex<Option<(Instant, Vec<ScimGroup>)>>,
}

impl GroupCatalog {
    async fn groups(&self, directory: &dyn Directory) -> Result<Vec<ScimGroup>, ScimError> {
        let mut cached = self.cached.lock().await;
        if let Some((at, groups)) = cached.as_ref()
            && at.elapsed() < self.ttl
        {
            return Ok(groups.clone());
        }
        let groups = directory.list_groups().await?;
        *cached = Some((Instant::now(), groups.clone()));
        Ok(groups)
    }

    /// Fresh list (memberships change with every event), which also refreshes the cache.
    async fn fresh(&self, directory: &dyn Directory) -> Result<Vec<ScimGroup>, ScimError> {
        let groups = directory.list_groups().await?;
        *self.cached.lock().await = Some((Instant::now(), groups.clone()));
        Ok(groups)
    }

    async fn remember(&self, group: ScimGroup) {
        if let Some((_, groups)) = self.cached.lock().await.as_mut() {
            groups.push(group);
        }
    }

    async fn forget(&self) {
        *self.cached.lock().await = None;
    }
}

pub struct Applier {
    pub ledger: Arc<dyn Ledger>,
    pub enricher: Arc<dyn Enricher>,
    pub notifier: Option<Arc<dyn Notifier>>,
    pub rules: Arc<MappingRules>,
    pub policy: PlanPolicy,
    pub brake: Brake,
    pub dry_run: bool,
    groups: GroupCatalog,
}

impl Applier {
    pub fn new(
        ledger: Arc<dyn Ledger>,
        enricher: Arc<dyn Enricher>,
        notifier: Option<Arc<dyn Notifier>>,
        rules: MappingRules,
        policy: PlanPolicy,
        brake: Brake,
        dry_run: bool,
    ) -> Self {
        Applier {
            ledger,
            enricher,
            notifier,
            rules: Arc::new(rules),
            policy,
            brake,
            dry_run,
            groups: GroupCatalog { ttl: Duration::from_secs(300), cached: Mutex::new(None) },
        }
    }

    /// Processes one event end to end: load → complete (enrich) → observe (desired and
    /// actual) → plan → guard → execute → record. Errors mean "not done": the message goes
    /// back to the queue (and, after the redrive limit, to the DLQ).
    pub async fn process(
        &self,
        directory: &dyn Directory,
        event: LifecycleEvent,
        now: DateTime<Utc>,
    ) -> Result<Outcome, ApplyError> {
        let record = self.ledger.person(&event.person).await?;
        let last_applied = record.as_ref().map(LastApplied::of);
        // Redeliveries and late events stop here, before any bridge call.
        if let Some(reason) = plan::already_handled(&event, last_applied.as_ref()) {
            return Ok(Outcome::Skipped { reason, notes: vec![] });
        }
        let event = self.complete(event).await?;
        let known_user_id = record.and_then(|r| r.user_id);
        let observed = self.observe(directory, &event, known_user_id.as_ref(), last_applied).await?;
        let (operations, notes) = match plan::plan(&event, &observed.desired, &observed.actual, &self.policy)? {
            Plan::Apply { operations, notes } => (operations, notes),
            Plan::Skip { reason, notes } => {
                self.record(&event, observed.actual.user.as_ref().map(|u| u.id.clone()), now).await?;
                return Ok(Outcome::Skipped { reason, notes });
            }
        };
        if let Some(planned) = self.guard(&operations, now).await? {
            return Ok(planned);
        }
        let executed = self.execute(directory, &event, observed, operations, now).await?;
        self.record(&event, Some(executed.user_id.clone()), now).await?;
        self.track_invitation(&event, &executed, now).await?;
        Ok(Outcome::Applied { operations: executed.names, notes })
    }

    /// The event with what the source knows filled in: an unexplained leaver confirmed, a
    /// thin event (attributes the rules need are missing) read back from the source's API.
    async fn complete(&self, mut event: LifecycleEvent) -> Result<LifecycleEvent, ApplyError> {
        if event.kind == EventKind::Leaver && event.attributes.employment_status.is_none() {
            self.confirm_leaver(&mut event).await?;
        }
        let thin = !event.attributes.is_complete_for_invite() || !self.rules.can_decide(&event.attributes);
        if event.kind == EventKind::Leaver || !thin {
            return Ok(event);
        }
        match self.enricher.fetch(&event.person, None).await {
            Ok(Some(current)) => event.attributes.fill_from(&current),
            Ok(None) if event.kind == EventKind::Mover => {}
            Ok(None) => return Err(ApplyError::NotInSource),
            // No source API configured for this connection (a generic sender, say): go on
            // with what the webhook said; groups are then only added.
            Err(EnrichError::UnknownConnection { .. }) => {
                tracing::info!("no source API configured; using the webhook's attributes only");
            }
            Err(error) => return Err(error.into()),
        }
        Ok(event)
    }

    /// What 1Password should look like for this person, and what it looks like now.
    async fn observe(
        &self,
        directory: &dyn Directory,
        event: &LifecycleEvent,
        known_user_id: Option<&ScimUserId>,
        last_applied: Option<LastApplied>,
    ) -> Result<Observed, ApplyError> {
        let user = self.find_user(directory, event, known_user_id).await?;
        let groups = match &user {
            // A new person is in no group: the cached catalogue is enough.
            None => self.groups.groups(directory).await?,
            Some(_) => self.groups.fresh(directory).await?,
        };
        let leaving = event.kind == EventKind::Leaver;
        let desired = Desired {
            groups: if leaving { BTreeSet::new() } else { self.rules.desired_groups(&event.attributes) },
            managed: self.rules.managed_groups(),
            complete: leaving || self.rules.can_decide(&event.attributes),
        };
        let actual = Actual {
            member_of: user.as_ref().map(|u| membership(u, &groups)).unwrap_or_default(),
            existing_groups: groups.iter().map(|g| g.display_name.clone()).collect(),
            user,
            last_applied,
        };
        Ok(Observed { desired, actual, groups })
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
        Ok(None)
    }

    /// A leaver that does not say why (BambooHR reports terminations and reactivations
    /// alike as a thin "status changed") is checked against the source's record first: a
    /// wrong suspension locks someone out. When the source says the person is active, the
    /// event is a reactivation and is treated as a rehire.
    async fn confirm_leaver(&self, event: &mut LifecycleEvent) -> Result<(), ApplyError> {
        match self.enricher.fetch(&event.person, None).await {
            Ok(Some(current)) => {
                event.attributes.fill_from(&current);
                if current.employment_status.as_deref().is_some_and(|s| s.trim().eq_ignore_ascii_case("active")) {
                    tracing::warn!("leaver event, but the source says the person is active: treated as a rehire");
                    event.kind = EventKind::Rehire;
                }
                Ok(())
            }
            // Gone from the source, or a source without an API: the leaver stands.
            Ok(None) | Err(EnrichError::UnknownConnection { .. }) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    async fn find_user(
        &self,
        directory: &dyn Directory,
        event: &LifecycleEvent,
        known_user_id: Option<&ScimUserId>,
    ) -> Result<Option<ScimUser>, ScimError> {
        if let Some(id) = known_user_id
            && let Some(user) = directory.get_user(id).await?
        {
            return Ok(Some(user));
        }
        let email = event.attributes.work_email.as_deref().map(str::trim);
        directory.find_user(&event.person.to_string(), email).await
    }

    async fn reserve_suspension(&self, now: DateTime<Utc>) -> Result<(), ApplyError> {
        let window = self.brake.window_id(now);
        if self.ledger.reserve_suspension(&window, self.brake.limit).await? {
            return Ok(());
        }
        metrics::counter!("mass_leaver_brake_engaged").increment(1);
        tracing::error!(
            limit = self.brake.limit,
            window,
            "mass-leaver brake engaged: suspension paused and returned to the queue"
        );
        if let Some(notifier) = &self.notifier {
            let text = format!(
                "1Password provisioning: mass-leaver brake engaged. More than {} suspensions within {} s; \
                 further suspensions are paused and wait in the queue. If this is expected, raise MASS_LEAVER_LIMIT.",
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
        event: &LifecycleEvent,
        observed: Observed,
        operations: Vec<Operation>,
        now: DateTime<Utc>,
    ) -> Result<Executed, ApplyError> {
        let Observed { desired, actual, groups } = observed;
        let mut group_ids: HashMap<String, ScimGroupId> =
            groups.iter().map(|g| (g.display_name.to_lowercase(), g.id.clone())).collect();
        let mut progress = Progress { user_id: actual.user.as_ref().map(|u| u.id.clone()), ..Progress::default() };
        let mut queue: VecDeque<Operation> = operations.into();
        while let Some(operation) = queue.pop_front() {
            let started = Instant::now();
            match (&operation, progress.user_id.clone()) {
                (Operation::CreateUser(new_user), _) => {
                    if let Some(replanned) =
                        self.create_user(directory, event, &desired, &actual, new_user, &mut progress).await?
                    {
                        queue = replanned.into();
                        progress.names.push("adopt_existing");
                        continue;
                    }
                    // Tracked now, not at the end: if a later operation fails, the retry
                    // finds the user existing and would never know it invited them.
                    if let Some(user_id) = &progress.user_id {
                        self.start_tracking(event, user_id, now).await?;
                    }
                }
                (other, Some(user_id)) => self.execute_one(directory, other, &user_id, &mut group_ids).await?,
                (_, None) => return Err(ApplyError::NoUser),
            }
            audit(event, &operation, progress.user_id.as_ref(), started);
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
        event: &LifecycleEvent,
        desired: &Desired,
        actual: &Actual,
        new_user: &NewUser,
        progress: &mut Progress,
    ) -> Result<Option<Vec<Operation>>, ApplyError> {
        let existing = match directory.create_user(new_user).await? {
            CreateOutcome::Created(user) => {
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
        tracing::info!(user_id = %existing.id, "create answered 409: adopting the existing user");
        let member_of = membership(&existing, &self.groups.fresh(directory).await?);
        progress.user_id = Some(existing.id.clone());
        let adopted = Actual { user: Some(existing), member_of, ..actual.clone() };
        Ok(Some(match plan::plan(event, desired, &adopted, &self.policy)? {
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
        group_ids: &mut HashMap<String, ScimGroupId>,
    ) -> Result<(), ApplyError> {
        if let Some(patch) = user_patch(operation) {
            return Ok(directory.patch_user(user_id, patch).await?);
        }
        match operation {
            Operation::Delete => directory.delete_user(user_id).await?,
            Operation::CreateGroup(name) => self.create_group(directory, name, group_ids).await?,
            Operation::AddToGroup(name) => {
                let add = PatchOperation::add_members(std::slice::from_ref(user_id));
                self.patch_membership(directory, name, group_ids, add).await?
            }
            Operation::RemoveFromGroup(name) => {
                let remove = PatchOperation::remove_member(user_id);
                self.patch_membership(directory, name, group_ids, remove).await?
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

    /// Creates a group; if another invocation created it a moment ago (409), uses theirs.
    async fn create_group(
        &self,
        directory: &dyn Directory,
        name: &str,
        group_ids: &mut HashMap<String, ScimGroupId>,
    ) -> Result<(), ApplyError> {
        let group = match directory.create_group(name).await {
            Ok(group) => {
                self.groups.remember(group.clone()).await;
                group
            }
            Err(ScimError::Status { status: 409, .. }) => {
                let groups = self.groups.fresh(directory).await?;
                let existing = groups.into_iter().find(|g| g.display_name.eq_ignore_ascii_case(name));
                existing.ok_or_else(|| ScimError::Status {
                    status: 409,
                    scim_type: None,
                    detail: Some(format!("group {name:?} conflicts but is not listed")),
                })?
            }
            Err(other) => return Err(other.into()),
        };
        group_ids.insert(name.to_lowercase(), group.id);
        Ok(())
    }

    /// Adds to or removes from a group. A group the bridge no longer has (deleted by hand)
    /// means the catalogue is stale: it is forgotten, so the retry reads groups afresh.
    async fn patch_membership(
        &self,
        directory: &dyn Directory,
        name: &str,
        group_ids: &HashMap<String, ScimGroupId>,
        change: PatchOperation,
    ) -> Result<(), ApplyError> {
        let group_id = self.group_id(group_ids, name).await?;
        match directory.patch_group(&group_id, vec![change]).await {
            Err(ScimError::Status { status: 404, .. }) => {
                Err(self.stale_catalogue(format!("group {name:?} ({group_id}) is gone")).await)
            }
            other => Ok(other?),
        }
    }

    async fn group_id(&self, group_ids: &HashMap<String, ScimGroupId>, name: &str) -> Result<ScimGroupId, ApplyError> {
        match group_ids.get(&name.to_lowercase()) {
            Some(id) => Ok(id.clone()),
            None => Err(self.stale_catalogue(format!("group {name:?} not found")).await),
        }
    }

    /// The cached group catalogue no longer matches the bridge (a group deleted by hand):
    /// forgets it, so the retry reads groups afresh, and says which group went missing.
    async fn stale_catalogue(&self, problem: String) -> ApplyError {
        self.groups.forget().await;
        let detail = format!("{problem}; the group catalogue is refreshed");
        ScimError::Status { status: 404, scim_type: None, detail: Some(detail) }.into()
    }

    async fn record(
        &self,
        event: &LifecycleEvent,
        user_id: Option<ScimUserId>,
        now: DateTime<Utc>,
    ) -> Result<(), LedgerError> {
        let recorded = self
            .ledger
            .record_applied_if_newer(&PersonRecord {
                person: event.person.clone(),
                user_id,
                last_event_id: event.source_event_id.clone(),
                last_effective_at: event.effective_at,
                updated_at: now,
            })
            .await?;
        if !recorded {
            tracing::info!("a newer event was recorded meanwhile; keeping it");
        }
        Ok(())
    }

    /// Keeps the invitation ledger in step: a new invitation starts tracking, a leaver
    /// clears a pending one, a rehire of someone who never accepted starts afresh.
    async fn track_invitation(
        &self,
        event: &LifecycleEvent,
        executed: &Executed,
        now: DateTime<Utc>,
    ) -> Result<(), LedgerError> {
        let person = &event.person;
        let existing = self.ledger.invitation(person).await?;
        let pending = existing.as_ref().is_some_and(|i| i.status == InvitationStatus::Pending);
        match event.kind {
            EventKind::Leaver if pending => {
                self.ledger.overwrite_invitation_status(person, InvitationStatus::Cleared).await
            }
            EventKind::Leaver => Ok(()),
            // A new account's invitation is tracked as soon as it is created (`execute`).
            _ => {
                let reactivated_unaccepted = executed.names.contains(&"reactivate")
                    && existing.as_ref().is_some_and(|i| i.status != InvitationStatus::Accepted);
                if !reactivated_unaccepted {
                    return Ok(());
                }
                self.start_tracking(event, &executed.user_id, now).await
            }
        }
    }

    /// Tracks a fresh invitation for the person; one still pending is cleared first.
    async fn start_tracking(
        &self,
        event: &LifecycleEvent,
        user_id: &ScimUserId,
        now: DateTime<Utc>,
    ) -> Result<(), LedgerError> {
        let person = &event.person;
        let pending = self.ledger.invitation(person).await?.is_some_and(|i| i.status == InvitationStatus::Pending);
        if pending {
            self.ledger.overwrite_invitation_status(person, InvitationStatus::Cleared).await?;
        }
        let Some(email) = event.attributes.work_email.as_deref() else { return Ok(()) };
        let invitation = Invitation {
            person: person.clone(),
            user_id: user_id.clone(),
            email: email.trim().to_owned(),
            invited_at: now,
            last_sent_at: now,
            reissues: 0,
            status: InvitationStatus::Pending,
        };
        self.ledger.start_invitation_unless_pending(&invitation).await.map(|_| ())
    }
}

/// What the bridge looks like for one person, and what it should look like.
struct Observed {
    desired: Desired,
    actual: Actual,
    /// The group catalogue the observation used.
    groups: Vec<ScimGroup>,
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
fn audit(event: &LifecycleEvent, operation: &Operation, user_id: Option<&ScimUserId>, started: Instant) {
    let name = operation.name();
    tracing::info!(
        audit = true,
        operation = name,
        user_id = user_id.map(ScimUserId::as_str),
        email = %event.attributes.work_email.as_deref().map(mask_email).unwrap_or_default(),
        outcome = "ok",
        duration_ms = started.elapsed().as_millis() as u64,
        "applied"
    );
    metrics::counter!("operations_applied", "operation" => name).increment(1);
}

/// Names of the groups a user is in: from the user's own `groups` when the bridge sends
/// them, else from the groups' member lists.
fn membership(user: &ScimUser, groups: &[ScimGroup]) -> BTreeSet<String> {
    let by_id: HashMap<&str, &str> = groups.iter().map(|g| (g.id.as_str(), g.display_name.as_str())).collect();
    let mut names: BTreeSet<String> = user
        .groups
        .iter()
        .filter_map(|r| by_id.get(r.value.as_str()).map(|n| n.to_string()).or_else(|| r.display.clone()))
        .collect();
    names
        .extend(groups.iter().filter(|g| g.members.iter().any(|m| m.value == user.id)).map(|g| g.display_name.clone()));
    names
}

#[cfg(test)]
mod tests;
