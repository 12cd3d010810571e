//! Executes plans: the only place (with the adapters) where the worker does I/O. Reads the
//! ledger and the bridge, asks the pure planner, guards (mass-leaver brake, dry run),
//! applies the operations in order, and records what happened.

use chrono::{DateTime, Utc};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

use crate::enrich::{EnrichError, Enricher};
use crate::event::{EventKind, LifecycleEvent};
use crate::ledger::{Invitation, InvitationStatus, Ledger, LedgerError, PersonRecord};
use crate::mapping::MappingRules;
use crate::notify::Notifier;
use crate::plan::{self, Actual, Desired, LastApplied, Note, Operation, Plan, PlanPolicy, Refusal, Skip};
use crate::scim::{CreateOutcome, Directory, PatchOperation, ScimError, ScimGroup, ScimUser};
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
    #[error("the bridge lost the user {user_id} between two calls")]
    UserVanished { user_id: String },
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
            ApplyError::UserVanished { .. } => "user_vanished",
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

    /// Processes one event end to end. Errors mean "not done": the message goes back to
    /// the queue (and, after the redrive limit, to the DLQ).
    pub async fn process(
        &self,
        directory: &dyn Directory,
        mut event: LifecycleEvent,
        now: DateTime<Utc>,
    ) -> Result<Outcome, ApplyError> {
        let record = self.ledger.person(&event.person).await?;
        let last_applied = record
            .as_ref()
            .map(|r| LastApplied { event_id: r.last_event_id.clone(), effective_at: r.last_effective_at });
        // Redeliveries and late events stop here, before any bridge call.
        if let Some(reason) = plan::already_handled(&event, last_applied.as_ref()) {
            return Ok(Outcome::Skipped { reason, notes: vec![] });
        }

        if event.kind == EventKind::Leaver && event.attributes.employment_status.is_none() {
            self.confirm_leaver(&mut event).await?;
        }
        let thin = !event.attributes.is_complete_for_invite() || !self.rules.can_decide(&event.attributes);
        if event.kind != EventKind::Leaver && thin {
            match self.enricher.fetch(&event.person).await {
                Ok(Some(current)) => event.attributes.fill_from(&current),
                Ok(None) if event.kind == EventKind::Mover => {}
                Ok(None) => return Err(ApplyError::NotInSource),
                // No source API configured for this connection (a generic sender, say):
                // go on with what the webhook said; groups are then only added.
                Err(EnrichError::UnknownConnection { .. }) => {
                    tracing::info!(person = %event.person, "no source API configured; using the webhook's attributes only");
                }
                Err(error) => return Err(error.into()),
            }
        }

        let known_user_id = record.as_ref().and_then(|r| r.user_id.clone());
        let user = self.find_user(directory, &event, known_user_id.as_deref()).await?;
        let groups = match &user {
            // A new person is in no group: the cached catalogue is enough.
            None => self.groups.groups(directory).await?,
            Some(_) => self.groups.fresh(directory).await?,
        };
        let desired = Desired {
            groups: if event.kind == EventKind::Leaver {
                BTreeSet::new()
            } else {
                self.rules.desired_groups(&event.attributes)
            },
            managed: self.rules.managed_groups(),
            complete: event.kind == EventKind::Leaver || self.rules.can_decide(&event.attributes),
        };
        let actual = Actual {
            member_of: user.as_ref().map(|u| membership(u, &groups)).unwrap_or_default(),
            existing_groups: groups.iter().map(|g| g.display_name.clone()).collect(),
            user,
            last_applied,
        };

        let plan = plan::plan(&event, &desired, &actual, &self.policy)?;
        let (operations, notes) = match plan {
            Plan::Skip { reason, notes } => {
                self.record(&event, actual.user.as_ref().map(|u| u.id.clone()), now).await?;
                return Ok(Outcome::Skipped { reason, notes });
            }
            Plan::Apply { operations, notes } => (operations, notes),
        };
        let names: Vec<&'static str> = operations.iter().map(Operation::name).collect();
        if self.dry_run {
            tracing::info!(person = %event.person, kind = %event.kind, operations = ?names, "dry run: plan not applied");
            return Ok(Outcome::Planned { operations: names });
        }
        if operations.iter().any(|op| matches!(op, Operation::Suspend | Operation::Delete)) {
            self.reserve_suspension(&event, now).await?;
        }

        let executed = self.execute(directory, &event, &desired, actual, operations, &groups).await?;
        self.record(&event, Some(executed.user_id.clone()), now).await?;
        self.track_invitation(&event, &executed, now).await?;
        Ok(Outcome::Applied { operations: executed.names, notes })
    }

    /// A leaver that does not say why (BambooHR reports terminations and reactivations
    /// alike as a thin "status changed") is checked against the source's record first: a
    /// wrong suspension locks someone out. When the source says the person is active, the
    /// event is a reactivation and is treated as a rehire.
    async fn confirm_leaver(&self, event: &mut LifecycleEvent) -> Result<(), ApplyError> {
        match self.enricher.fetch(&event.person).await {
            Ok(Some(current)) => {
                event.attributes.fill_from(&current);
                if current.employment_status.as_deref().is_some_and(|s| s.trim().eq_ignore_ascii_case("active")) {
                    tracing::warn!(person = %event.person, event_id = %event.source_event_id,
                        "leaver event, but the source says the person is active: treated as a rehire");
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
        known_user_id: Option<&str>,
    ) -> Result<Option<ScimUser>, ScimError> {
        if let Some(id) = known_user_id
            && let Some(user) = directory.get_user(id).await?
        {
            return Ok(Some(user));
        }
        let email = event.attributes.work_email.as_deref().map(str::trim);
        directory.find_user(&event.person.to_string(), email).await
    }

    async fn reserve_suspension(&self, event: &LifecycleEvent, now: DateTime<Utc>) -> Result<(), ApplyError> {
        let window = self.brake.window_id(now);
        if self.ledger.reserve_suspension(&window, self.brake.limit).await? {
            return Ok(());
        }
        metrics::counter!("mass_leaver_brake_engaged").increment(1);
        tracing::error!(
            person = %event.person, limit = self.brake.limit, window,
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

    async fn execute(
        &self,
        directory: &dyn Directory,
        event: &LifecycleEvent,
        desired: &Desired,
        actual: Actual,
        operations: Vec<Operation>,
        groups: &[ScimGroup],
    ) -> Result<Executed, ApplyError> {
        let mut group_ids: HashMap<String, String> =
            groups.iter().map(|g| (g.display_name.to_lowercase(), g.id.clone())).collect();
        let mut user_id = actual.user.as_ref().map(|u| u.id.clone());
        let mut executed = Vec::new();
        let mut invited = false;
        let mut queue: std::collections::VecDeque<Operation> = operations.into();

        while let Some(operation) = queue.pop_front() {
            let started = Instant::now();
            let name = operation.name();
            let result = match &operation {
                Operation::CreateUser(new_user) => match directory.create_user(new_user).await? {
                    CreateOutcome::Created(user) => {
                        user_id = Some(user.id);
                        invited = true;
                        Ok(())
                    }
                    CreateOutcome::Conflict => {
                        // Someone has this e-mail already: adopt them and plan again from
                        // what is really there.
                        let existing =
                            directory.find_user_by_user_name(&new_user.user_name).await?.ok_or_else(|| {
                                ScimError::Status {
                                    status: 409,
                                    scim_type: Some("uniqueness".into()),
                                    detail: Some("conflict, but no user with that userName is listed".into()),
                                }
                            })?;
                        tracing::info!(person = %event.person, user_id = %existing.id, "create answered 409: adopting the existing user");
                        let member_of = membership(&existing, &self.groups.fresh(directory).await?);
                        user_id = Some(existing.id.clone());
                        let adopted = Actual { user: Some(existing), member_of, ..actual.clone() };
                        queue = match plan::plan(event, desired, &adopted, &self.policy)? {
                            Plan::Apply { operations, .. } => operations.into(),
                            Plan::Skip { .. } => Default::default(),
                        };
                        executed.push("adopt_existing");
                        continue;
                    }
                },
                other => {
                    let id = user_id.clone().ok_or_else(|| ApplyError::UserVanished { user_id: "<none>".into() })?;
                    self.execute_one(directory, other, &id, &mut group_ids).await
                }
            };
            result?;
            let user = user_id.as_deref().unwrap_or("-");
            tracing::info!(
                audit = true, person = %event.person, kind = %event.kind, operation = name, user_id = user,
                email = %event.attributes.work_email.as_deref().map(mask_email).unwrap_or_default(),
                outcome = "ok", duration_ms = started.elapsed().as_millis() as u64,
                "applied"
            );
            metrics::counter!("operations_applied", "operation" => name).increment(1);
            executed.push(name);
        }
        let user_id = user_id.ok_or_else(|| ApplyError::UserVanished { user_id: "<none>".into() })?;
        Ok(Executed { user_id, names: executed, invited })
    }

    async fn execute_one(
        &self,
        directory: &dyn Directory,
        operation: &Operation,
        user_id: &str,
        group_ids: &mut HashMap<String, String>,
    ) -> Result<(), ApplyError> {
        match operation {
            Operation::CreateUser(_) => unreachable!("execute() handles creation itself"),
            Operation::Reactivate => {
                directory.patch_user(user_id, vec![PatchOperation::replace("active", true.into())]).await?
            }
            Operation::Suspend => {
                directory.patch_user(user_id, vec![PatchOperation::replace("active", false.into())]).await?
            }
            Operation::Delete => directory.delete_user(user_id).await?,
            Operation::UpdateName { given_name, family_name, display_name } => {
                directory
                    .patch_user(
                        user_id,
                        vec![
                            PatchOperation::replace("name.givenName", given_name.as_str().into()),
                            PatchOperation::replace("name.familyName", family_name.as_str().into()),
                            PatchOperation::replace("displayName", display_name.as_str().into()),
                        ],
                    )
                    .await?
            }
            Operation::UpdateEmail { email } => {
                directory
                    .patch_user(
                        user_id,
                        vec![
                            PatchOperation::replace("userName", email.as_str().into()),
                            PatchOperation::replace("emails", serde_json::json!([{ "value": email, "primary": true }])),
                        ],
                    )
                    .await?
            }
            Operation::CreateGroup(name) => match directory.create_group(name).await {
                Ok(group) => {
                    group_ids.insert(name.to_lowercase(), group.id.clone());
                    self.groups.remember(group).await;
                }
                // Another message group created it a moment ago: use theirs.
                Err(ScimError::Status { status: 409, .. }) => {
                    let groups = self.groups.fresh(directory).await?;
                    let existing = groups.iter().find(|g| g.display_name.eq_ignore_ascii_case(name));
                    let Some(existing) = existing else {
                        return Err(ScimError::Status {
                            status: 409,
                            scim_type: None,
                            detail: Some(format!("group {name:?} conflicts but is not listed")),
                        }
                        .into());
                    };
                    group_ids.insert(name.to_lowercase(), existing.id.clone());
                }
                Err(other) => return Err(other.into()),
            },
            Operation::AddToGroup(name) => {
                let group_id = self.group_id(group_ids, name).await?;
                directory.patch_group(&group_id, vec![PatchOperation::add_members(&[user_id.to_owned()])]).await?
            }
            Operation::RemoveFromGroup(name) => {
                let group_id = self.group_id(group_ids, name).await?;
                directory.patch_group(&group_id, vec![PatchOperation::remove_member(user_id)]).await?
            }
        }
        Ok(())
    }

    async fn group_id(&self, group_ids: &HashMap<String, String>, name: &str) -> Result<String, ApplyError> {
        match group_ids.get(&name.to_lowercase()) {
            Some(id) => Ok(id.clone()),
            None => {
                // The catalogue was stale (a group deleted by hand): start fresh next time.
                self.groups.forget().await;
                Err(ScimError::Status {
                    status: 404,
                    scim_type: None,
                    detail: Some(format!("group {name:?} not found")),
                }
                .into())
            }
        }
    }

    async fn record(
        &self,
        event: &LifecycleEvent,
        user_id: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<(), LedgerError> {
        let recorded = self
            .ledger
            .record_applied(&PersonRecord {
                person: event.person.clone(),
                user_id,
                last_event_id: event.source_event_id.clone(),
                last_effective_at: event.effective_at,
                updated_at: now,
            })
            .await?;
        if !recorded {
            tracing::info!(person = %event.person, "a newer event was recorded meanwhile; keeping it");
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
            EventKind::Leaver if pending => self.ledger.set_invitation_status(person, InvitationStatus::Cleared).await,
            EventKind::Leaver => Ok(()),
            _ => {
                let reactivated_unaccepted = executed.names.contains(&"reactivate")
                    && existing.as_ref().is_some_and(|i| i.status != InvitationStatus::Accepted);
                if !(executed.invited || reactivated_unaccepted) {
                    return Ok(());
                }
                if pending {
                    self.ledger.set_invitation_status(person, InvitationStatus::Cleared).await?;
                }
                let Some(email) = event.attributes.work_email.clone() else { return Ok(()) };
                self.ledger
                    .start_invitation(&Invitation {
                        person: person.clone(),
                        user_id: executed.user_id.clone(),
                        email: email.trim().to_owned(),
                        invited_at: now,
                        last_sent_at: now,
                        reissues: 0,
                        status: InvitationStatus::Pending,
                    })
                    .await
                    .map(|_| ())
            }
        }
    }
}

struct Executed {
    user_id: String,
    names: Vec<&'static str>,
    invited: bool,
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
