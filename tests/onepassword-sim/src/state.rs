//! The simulated 1Password account and every operation on it. The HTTP layers (SCIM, Events,
//! control) are thin translations onto [`SimState`]; tests can use it in-process too.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::clock::{SimClock, to_delta};
use crate::config::{
    BUILT_IN_PROTECTED_GROUPS, BUILT_IN_UNMANAGED_GROUPS, ConflictMode, DuplicateGroupName, SimConfig,
    SuspendedEmailChange,
};
use crate::error::SimError;
use crate::faults::{ActiveFault, FaultBook, FaultDecision, FaultRule};
use crate::ids;
use crate::model::*;
use crate::oplog::{OpLog, Operation};

/// A user with the managed groups it belongs to, as (id, displayName).
pub type UserWithGroups = (User, Vec<(String, String)>);

/// One change to a user, as PATCH/PUT requests decompose into.
#[derive(Debug, Clone, PartialEq)]
pub enum UserChange {
    Active(bool),
    UserName(String),
    DisplayName(Option<String>),
    GivenName(Option<String>),
    FamilyName(Option<String>),
    Formatted(Option<String>),
    ExternalId(Option<String>),
    PreferredLanguage(Option<String>),
    ReplaceEmails(Vec<Email>),
    AddEmails(Vec<Email>),
    /// `emails[type eq "work"].value` style: set the value of the matching e-mails (adding one
    /// of that type when none matches).
    SetEmailValue {
        selector: EmailSelector,
        value: String,
    },
    RemoveEmails(EmailSelector),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmailSelector {
    All,
    Type(String),
    Primary,
    Value(String),
}

impl EmailSelector {
    fn selects(&self, email: &Email) -> bool {
        match self {
            EmailSelector::All => true,
            EmailSelector::Type(t) => email.kind.as_deref().is_some_and(|k| k.eq_ignore_ascii_case(t)),
            EmailSelector::Primary => email.primary == Some(true),
            EmailSelector::Value(v) => email.value.eq_ignore_ascii_case(v),
        }
    }
}

/// The attributes of a new user (`POST /Users`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewUser {
    pub user_name: String,
    pub external_id: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub formatted: Option<String>,
    pub display_name: Option<String>,
    pub emails: Vec<Email>,
    pub preferred_language: Option<String>,
    pub active: Option<bool>,
}

/// One change to a group.
#[derive(Debug, Clone, PartialEq)]
pub enum GroupChange {
    DisplayName(String),
    ExternalId(Option<String>),
    AddMembers(Vec<String>),
    RemoveMembers(Vec<String>),
    ReplaceMembers(Vec<String>),
}

/// What a user index answers: the `eq` terms of a filter the indexes can serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserKey {
    /// Case-insensitive.
    UserName(String),
    /// Case-exact.
    ExternalId(String),
    Id(String),
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewGroup {
    pub display_name: String,
    pub external_id: Option<String>,
    pub members: Vec<String>,
}

/// Side effects of a user change, committed only when the whole request succeeds.
enum Effect {
    Invitation(InvitationKind),
    Account(AccountAction),
    Violation { old: String, new: String },
    Audit(&'static str),
}

#[derive(Debug, Clone, Default)]
struct Store {
    users: HashMap<String, User>,
    user_order: Vec<String>,
    /// id → position in `user_order` (creation order of index hits).
    user_pos: HashMap<String, usize>,
    /// Lower-cased userName → id.
    by_user_name: HashMap<String, String>,
    /// externalId (case-exact) → ids.
    by_external_id: HashMap<String, Vec<String>>,
    groups: HashMap<String, Group>,
    group_order: Vec<String>,
    outbox: Vec<InvitationMail>,
    violations: Vec<Violation>,
    account_changes: Vec<AccountChange>,
    sign_ins: Vec<SignInAttempt>,
    audit: Vec<AuditEvent>,
}

struct Inner {
    config: SimConfig,
    /// The bridge's bearer token; starts as `config.scim_token`, changes on rotation
    /// ("Regenerate Credentials" invalidates the old token at once).
    scim_token: RwLock<String>,
    clock: SimClock,
    store: RwLock<Store>,
    log: Mutex<OpLog>,
    faults: Mutex<FaultBook>,
    /// The account's own identity, used as actor of provisioning audit events.
    bridge_user_id: String,
    account_uuid: String,
    /// Flips to `true` when the server shuts down (releases hanging requests).
    shutdown: tokio::sync::watch::Sender<bool>,
    /// SCIM requests received and response body bytes sent (see [`Traffic`]).
    requests: AtomicU64,
    response_bytes: AtomicU64,
}

/// Handle to the simulated account. Cheap to clone; shared by the server and tests.
#[derive(Clone)]
pub struct SimState {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SimState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimState").field("now", &self.now()).finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data behind; keep serving.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl SimState {
    pub fn new(config: SimConfig) -> Self {
        let clock = SimClock::new(config.clock_start);
        let log = OpLog::new(config.op_log_capacity);
        let state = SimState {
            inner: Arc::new(Inner {
                scim_token: RwLock::new(config.scim_token.clone()),
                config,
                clock,
                store: RwLock::new(Store::default()),
                log: Mutex::new(log),
                faults: Mutex::new(FaultBook::default()),
                bridge_user_id: ids::new_user_id(),
                account_uuid: ids::new_uuid(),
                shutdown: tokio::sync::watch::Sender::new(false),
                requests: AtomicU64::new(0),
                response_bytes: AtomicU64::new(0),
            }),
        };
        state.reset();
        state
    }

    /// The bearer token the SCIM bridge accepts now.
    pub fn scim_token(&self) -> String {
        self.inner.scim_token.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Regenerates the bridge credentials: the old token stops working immediately.
    pub fn rotate_scim_token(&self, new_token: impl Into<String>) {
        *self.inner.scim_token.write().unwrap_or_else(|p| p.into_inner()) = new_token.into();
    }

    pub fn config(&self) -> &SimConfig {
        &self.inner.config
    }

    pub fn account_uuid(&self) -> &str {
        &self.inner.account_uuid
    }

    fn read(&self) -> RwLockReadGuard<'_, Store> {
        self.inner.store.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Store> {
        self.inner.store.write().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn signal_shutdown(&self) {
        self.inner.shutdown.send_replace(true);
    }

    /// Resolves once the server is shutting down.
    pub(crate) async fn until_shutdown(&self) {
        let mut rx = self.inner.shutdown.subscribe();
        // An error means the sender is gone, which also means shutdown.
        let _ = rx.wait_for(|down| *down).await;
    }

    // ----- clock -------------------------------------------------------------------------

    pub fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    pub fn advance_clock(&self, by: Duration) -> DateTime<Utc> {
        self.inner.clock.advance(by)
    }

    // ----- reset and seeding ---------------------------------------------------------------

    /// Empties the account (keeping the built-in groups), the records, the log, the traffic
    /// counters and the faults, and undoes clock advances.
    pub fn reset(&self) {
        self.inner.clock.rewind();
        let now = self.now();
        let mut store = self.write();
        *store = Store::default();
        for name in BUILT_IN_PROTECTED_GROUPS.iter().chain(BUILT_IN_UNMANAGED_GROUPS.iter()) {
            insert_group(&mut store, ids::new_group_id(), name, None, false, now);
        }
        for name in &self.inner.config.extra_protected_groups {
            if find_group_by_name(&store, name).is_none() {
                insert_group(&mut store, ids::new_group_id(), name, None, false, now);
            }
        }
        drop(store);
        lock(&self.inner.log).clear();
        lock(&self.inner.faults).clear();
        self.reset_traffic();
    }

    /// Puts users and groups into the account directly: no invitation mails, no log entries.
    pub fn seed(&self, seed: Seed) -> Result<SeedResult, SimError> {
        let now = self.now();
        let ttl = to_delta(self.inner.config.invite_ttl);
        let mut store = self.write();
        let mut result = SeedResult::default();
        for s in seed.users {
            let user_name = s.user_name.trim().to_owned();
            if user_name.is_empty() {
                return Err(SimError::InvalidValue("seeded user without userName".into()));
            }
            let key = user_name.to_lowercase();
            if store.by_user_name.contains_key(&key) {
                return Err(SimError::Uniqueness(format!("userName {user_name} already exists")));
            }
            let id = s.id.unwrap_or_else(ids::new_user_id);
            if store.users.contains_key(&id) {
                return Err(SimError::Uniqueness(format!("user id {id} already exists")));
            }
            let state = s.state.unwrap_or(SeedState::Active);
            let invited_at = match state {
                SeedState::InvitationExpired => s.invited_at.unwrap_or(now - ttl - chrono::TimeDelta::seconds(1)),
                _ => s.invited_at.unwrap_or(now),
            };
            let (account_state, invitation) = match state {
                SeedState::Invited | SeedState::InvitationExpired => (AccountState::Invited, Some(invited_at)),
                SeedState::InviteSuspended => (AccountState::InviteSuspended, Some(invited_at)),
                SeedState::Active => (AccountState::Active, None),
                SeedState::Suspended => (AccountState::Suspended, None),
            };
            let (given, family) = match (&s.given_name, &s.family_name, &s.display_name) {
                (None, None, Some(d)) => split_name(d),
                _ => (s.given_name.clone(), s.family_name.clone()),
            };
            let formatted = s.display_name.clone().or_else(|| join_name(&given, &family));
            let user = User {
                id: id.clone(),
                external_id: s.external_id.filter(|_| self.inner.config.store_external_id),
                given_name: given,
                family_name: family,
                display_name: formatted.clone(),
                formatted,
                emails: vec![Email { value: user_name.clone(), primary: Some(true), kind: None }],
                user_name,
                preferred_language: Some("en".into()),
                state: account_state,
                created_at: invitation.unwrap_or(now),
                last_modified: now,
                invitation_sent_at: invitation,
                invitation_expires_at: invitation.map(|at| at + ttl),
                invitations_sent: u32::from(invitation.is_some()),
                accepted_at: if account_state.is_accepted() { Some(now) } else { None },
                confirms_at: None,
                group_ids: BTreeSet::new(),
            };
            index_user(&mut store, &user);
            push_user_order(&mut store, &id);
            store.users.insert(id.clone(), user);
            result.user_ids.push(id);
        }
        for g in seed.groups {
            let members = g
                .members
                .iter()
                .map(|m| resolve_user(&store, m).ok_or_else(|| SimError::NotFound(format!("user {m}"))))
                .collect::<Result<Vec<_>, _>>()?;
            let managed = g.managed.unwrap_or(true);
            let same_name = if g.duplicate { None } else { find_group_by_name(&store, &g.display_name) };
            let id = match same_name {
                Some(existing) => {
                    let group = store.groups.get_mut(&existing).expect("indexed group exists");
                    group.managed |= managed && !self.inner.config.is_protected_group(&g.display_name);
                    if g.external_id.is_some() {
                        group.external_id = g.external_id.clone();
                    }
                    existing
                }
                None => {
                    let id = g.id.clone().unwrap_or_else(ids::new_group_id);
                    if store.groups.contains_key(&id) {
                        return Err(SimError::Uniqueness(format!("group id {id} already exists")));
                    }
                    let created = g.created_at.unwrap_or(now);
                    insert_group(&mut store, id.clone(), &g.display_name, g.external_id.clone(), managed, created);
                    id
                }
            };
            set_members(&mut store, &id, members.into_iter().collect(), now, false);
            result.group_ids.push(id);
        }
        Ok(result)
    }

    // ----- users ------------------------------------------------------------------------------

    /// `POST /Users`: provisions the user and sends the invitation. Returns the user and whether
    /// it was newly created (`false` when an existing user was linked).
    pub fn create_user(&self, new: NewUser) -> Result<(User, bool), SimError> {
        let config = &self.inner.config;
        let now = self.now();
        let user_name = new.user_name.trim().to_owned();
        if user_name.is_empty() {
            return Err(SimError::InvalidValue("userName is required".into()));
        }
        let mut store = self.write();
        if let Some(existing) = store.by_user_name.get(&user_name.to_lowercase()) {
            return match config.conflict {
                ConflictMode::Reject409 => {
                    Err(SimError::Uniqueness(format!("a user with userName {user_name} already exists")))
                }
                ConflictMode::LinkExisting => Ok((store.users[existing].clone(), false)),
            };
        }
        let (mut given, mut family) = (new.given_name, new.family_name);
        if given.is_none()
            && family.is_none()
            && let Some(d) = new.display_name.as_deref().or(new.formatted.as_deref())
        {
            (given, family) = split_name(d);
        }
        let joined = join_name(&given, &family);
        let display_name = new.display_name.or_else(|| new.formatted.clone()).or_else(|| joined.clone());
        let formatted = new.formatted.or(joined).or_else(|| display_name.clone());
        let mut emails = new.emails;
        normalise_primary(&mut emails, None);
        if emails.is_empty() {
            emails.push(Email { value: user_name.clone(), primary: Some(true), kind: None });
        }
        let ttl = to_delta(config.invite_ttl);
        let invite = new.active != Some(false);
        let user = User {
            id: ids::new_user_id(),
            user_name,
            external_id: new.external_id.filter(|_| config.store_external_id),
            given_name: given,
            family_name: family,
            formatted,
            display_name,
            emails,
            preferred_language: new.preferred_language.or_else(|| Some("en".into())),
            state: if invite { AccountState::Invited } else { AccountState::InviteSuspended },
            created_at: now,
            last_modified: now,
            invitation_sent_at: invite.then_some(now),
            invitation_expires_at: invite.then(|| now + ttl),
            invitations_sent: u32::from(invite),
            accepted_at: None,
            confirms_at: None,
            group_ids: BTreeSet::new(),
        };
        index_user(&mut store, &user);
        push_user_order(&mut store, &user.id);
        store.users.insert(user.id.clone(), user.clone());
        if invite {
            self.send_invitation(&mut store, &user, InvitationKind::First, now);
        }
        self.audit(&mut store, "provsn", "user", &user, now);
        Ok((user, true))
    }

    pub fn user(&self, id: &str) -> Option<User> {
        self.read().users.get(id).cloned()
    }

    /// Users in creation order, optionally narrowed by a predicate.
    pub fn users_where(&self, mut keep: impl FnMut(&User) -> bool) -> Vec<User> {
        let store = self.read();
        store.user_order.iter().filter_map(|id| store.users.get(id)).filter(|u| keep(u)).cloned().collect()
    }

    /// O(1) lookup by userName (case-insensitive).
    pub fn user_by_user_name(&self, user_name: &str) -> Option<User> {
        let store = self.read();
        store.by_user_name.get(&user_name.to_lowercase()).and_then(|id| store.users.get(id)).cloned()
    }

    /// Lookup by externalId (case-exact), through the index.
    pub fn users_by_external_id(&self, external_id: &str) -> Vec<User> {
        let store = self.read();
        store
            .by_external_id
            .get(external_id)
            .map(|ids| ids.iter().filter_map(|id| store.users.get(id)).cloned().collect())
            .unwrap_or_default()
    }

    /// A page of the users `keep` selects (creation order), with their managed groups; also
    /// the total number selected. `offset` is 0-based.
    pub fn query_users(
        &self,
        keep: impl Fn(&User) -> bool,
        offset: usize,
        limit: usize,
    ) -> (usize, Vec<UserWithGroups>) {
        let store = self.read();
        let users = store.user_order.iter().filter_map(|id| store.users.get(id));
        page_of_users(&store, users, keep, offset, limit)
    }

    /// [`Self::query_users`] over the users the indexes find for `keys` (any of them) instead
    /// of every user: `keep` still decides, in creation order, with the same paging and
    /// total. Only for a `keep` that no user outside the keys' hits can satisfy (a filter
    /// that is an `eq` on userName / externalId / id, or an `or` of such terms).
    pub fn query_users_by_keys(
        &self,
        keys: &[UserKey],
        keep: impl Fn(&User) -> bool,
        offset: usize,
        limit: usize,
    ) -> (usize, Vec<UserWithGroups>) {
        let store = self.read();
        let mut hits: Vec<usize> = Vec::new();
        for key in keys {
            let ids: &[String] = match key {
                UserKey::UserName(name) => store.by_user_name.get(&name.to_lowercase()).map(std::slice::from_ref),
                UserKey::ExternalId(ext) => store.by_external_id.get(ext).map(Vec::as_slice),
                UserKey::Id(id) => store.user_pos.get_key_value(id).map(|(id, _)| std::slice::from_ref(id)),
            }
            .unwrap_or_default();
            hits.extend(ids.iter().filter_map(|id| store.user_pos.get(id)));
        }
        hits.sort_unstable();
        hits.dedup();
        let users = hits.iter().filter_map(|&pos| store.users.get(&store.user_order[pos]));
        page_of_users(&store, users, keep, offset, limit)
    }

    /// The users behind a list of ids (index hits), with their managed groups.
    pub fn users_with_groups(&self, ids: &[String]) -> Vec<UserWithGroups> {
        let store = self.read();
        ids.iter().filter_map(|id| store.users.get(id)).map(|u| (u.clone(), groups_of(&store, u))).collect()
    }

    /// Ids found through the userName / externalId indexes.
    pub fn user_ids_by_user_name(&self, user_name: &str) -> Vec<String> {
        self.read().by_user_name.get(&user_name.to_lowercase()).cloned().into_iter().collect()
    }

    pub fn user_ids_by_external_id(&self, external_id: &str) -> Vec<String> {
        self.read().by_external_id.get(external_id).cloned().unwrap_or_default()
    }

    pub fn user_count(&self) -> usize {
        self.read().users.len()
    }

    /// The managed groups a user belongs to, as (id, displayName).
    pub fn user_groups(&self, user: &User) -> Vec<(String, String)> {
        groups_of(&self.read(), user)
    }

    /// Applies changes atomically (all or nothing) and records their side effects.
    pub fn change_user(&self, id: &str, changes: Vec<UserChange>, via: Via) -> Result<User, SimError> {
        let config = &self.inner.config;
        let now = self.now();
        let mut store = self.write();
        let original = store.users.get(id).cloned().ok_or_else(|| SimError::NotFound(format!("user {id}")))?;
        let mut user = original.clone();
        let mut effects = Vec::new();
        for change in changes {
            let name_before = user.user_name.clone();
            self.apply_user_change(&mut user, change, now, &mut effects)?;
            if !name_before.eq_ignore_ascii_case(&user.user_name) && user.effective_state(now).is_suspended() {
                if config.suspended_email_change == SuspendedEmailChange::Reject {
                    store.violations.push(Violation {
                        kind: ViolationKind::SuspendedUserEmailChanged,
                        user_id: user.id.clone(),
                        at: now,
                        old_value: name_before,
                        new_value: user.user_name.clone(),
                        outcome: "rejected".into(),
                    });
                    return Err(SimError::SuspendedEmailChange(original.user_name));
                }
                effects.push(Effect::Violation { old: name_before, new: user.user_name.clone() });
            }
        }
        if user.user_name.trim().is_empty() {
            return Err(SimError::InvalidValue("userName must not be empty".into()));
        }
        let new_key = user.user_name.to_lowercase();
        if new_key != original.user_name.to_lowercase()
            && store.by_user_name.get(&new_key).is_some_and(|other| other != id)
        {
            return Err(SimError::Uniqueness(format!("a user with userName {} already exists", user.user_name)));
        }
        user.last_modified = now;
        unindex_user(&mut store, &original);
        index_user(&mut store, &user);
        store.users.insert(id.to_owned(), user.clone());
        for effect in effects {
            match effect {
                Effect::Invitation(kind) => self.send_invitation(&mut store, &user, kind, now),
                Effect::Account(action) => {
                    store.account_changes.push(AccountChange {
                        user_id: user.id.clone(),
                        user_name: user.user_name.clone(),
                        action,
                        via,
                        at: now,
                    });
                }
                Effect::Violation { old, new } => store.violations.push(Violation {
                    kind: ViolationKind::SuspendedUserEmailChanged,
                    user_id: user.id.clone(),
                    at: now,
                    old_value: old,
                    new_value: new,
                    outcome: "applied".into(),
                }),
                Effect::Audit(action) => self.audit(&mut store, action, "user", &user, now),
            }
        }
        Ok(user)
    }

    /// `DELETE /Users/{id}`: suspends, never deletes.
    pub fn delete_user(&self, id: &str) -> Result<User, SimError> {
        self.change_user(id, vec![UserChange::Active(false)], Via::Delete)
    }

    fn apply_user_change(
        &self,
        user: &mut User,
        change: UserChange,
        now: DateTime<Utc>,
        effects: &mut Vec<Effect>,
    ) -> Result<(), SimError> {
        let config = &self.inner.config;
        let coupled = config.display_name_rewrites_name;
        match change {
            UserChange::Active(active) => self.set_active(user, active, now, effects),
            UserChange::UserName(name) => {
                let name = name.trim().to_owned();
                if name.is_empty() {
                    return Err(SimError::InvalidValue("userName must not be empty".into()));
                }
                match user.emails.iter_mut().find(|e| e.primary == Some(true)) {
                    Some(primary) => primary.value = name.clone(),
                    None => match user.emails.first_mut() {
                        Some(first) => first.value = name.clone(),
                        None => user.emails.push(Email { value: name.clone(), primary: Some(true), kind: None }),
                    },
                }
                user.user_name = name;
            }
            UserChange::DisplayName(name) | UserChange::Formatted(name) if coupled => {
                if let Some(full) = &name {
                    (user.given_name, user.family_name) = split_name(full);
                }
                user.display_name = name.clone();
                user.formatted = name;
            }
            UserChange::DisplayName(name) => user.display_name = name,
            UserChange::Formatted(name) => user.formatted = name,
            UserChange::GivenName(name) => {
                user.given_name = name;
                if coupled {
                    user.formatted = join_name(&user.given_name, &user.family_name);
                    user.display_name = user.formatted.clone();
                }
            }
            UserChange::FamilyName(name) => {
                user.family_name = name;
                if coupled {
                    user.formatted = join_name(&user.given_name, &user.family_name);
                    user.display_name = user.formatted.clone();
                }
            }
            UserChange::ExternalId(external_id) => {
                if config.store_external_id {
                    user.external_id = external_id;
                }
            }
            UserChange::PreferredLanguage(lang) => user.preferred_language = lang,
            UserChange::ReplaceEmails(mut emails) => {
                normalise_primary(&mut emails, None);
                user.emails = emails;
                follow_primary_email(user);
            }
            UserChange::AddEmails(added) => {
                let new_primary = added.iter().rev().find(|e| e.primary == Some(true)).map(|e| e.value.clone());
                for email in added {
                    match user.emails.iter_mut().find(|e| e.value.eq_ignore_ascii_case(&email.value)) {
                        Some(existing) => *existing = email,
                        None => user.emails.push(email),
                    }
                }
                normalise_primary(&mut user.emails, new_primary.as_deref());
                follow_primary_email(user);
            }
            UserChange::SetEmailValue { selector, value } => {
                let mut matched = false;
                for email in user.emails.iter_mut().filter(|e| selector.selects(e)) {
                    email.value = value.clone();
                    matched = true;
                }
                if !matched {
                    let kind = match &selector {
                        EmailSelector::Type(t) => Some(t.clone()),
                        _ => None,
                    };
                    let primary = user.emails.is_empty() || selector == EmailSelector::Primary;
                    user.emails.push(Email { value, primary: Some(primary), kind });
                    normalise_primary(&mut user.emails, None);
                }
                follow_primary_email(user);
            }
            UserChange::RemoveEmails(selector) => {
                user.emails.retain(|e| !selector.selects(e));
                normalise_primary(&mut user.emails, None);
                follow_primary_email(user);
            }
        }
        Ok(())
    }

    fn set_active(&self, user: &mut User, active: bool, now: DateTime<Utc>, effects: &mut Vec<Effect>) {
        let state = user.effective_state(now);
        user.state = state;
        match (state, active) {
            (AccountState::Invited, false) => {
                user.state = AccountState::InviteSuspended;
                effects.push(Effect::Audit("suspend"));
            }
            (AccountState::Pending | AccountState::Active, false) => {
                user.state = AccountState::Suspended;
                effects.push(Effect::Account(AccountAction::Suspend));
                effects.push(Effect::Audit("suspend"));
            }
            (AccountState::InviteSuspended, true) => {
                user.state = AccountState::Invited;
                if self.inner.config.reactivate_resends_invite {
                    user.invitation_sent_at = Some(now);
                    user.invitation_expires_at = Some(now + to_delta(self.inner.config.invite_ttl));
                    user.invitations_sent += 1;
                    effects.push(Effect::Invitation(InvitationKind::Repeat));
                }
                effects.push(Effect::Audit("reactive"));
            }
            (AccountState::Suspended, true) => {
                user.state = AccountState::Active;
                effects.push(Effect::Account(AccountAction::Reactivate));
                effects.push(Effect::Audit("reactive"));
            }
            // Already in the requested state: nothing happens.
            _ => {}
        }
    }

    fn send_invitation(&self, store: &mut Store, user: &User, kind: InvitationKind, now: DateTime<Utc>) {
        store.outbox.push(InvitationMail {
            user_id: user.id.clone(),
            email: user.primary_email().unwrap_or(&user.user_name).to_owned(),
            at: now,
            kind,
            expires_at: user.invitation_expires_at.unwrap_or(now),
        });
    }

    fn audit(&self, store: &mut Store, action: &str, object_type: &str, user: &User, now: DateTime<Utc>) {
        store.audit.push(AuditEvent {
            uuid: ids::new_uuid(),
            timestamp: now,
            actor_uuid: self.inner.bridge_user_id.clone(),
            action: action.to_owned(),
            object_type: object_type.to_owned(),
            object_uuid: user.id.clone(),
            object_details: Some(event_user(user)),
            aux_uuid: None,
            aux_info: None,
        });
    }

    fn audit_group(&self, store: &mut Store, action: &str, group_id: &str, aux: Option<String>, now: DateTime<Utc>) {
        store.audit.push(AuditEvent {
            uuid: ids::new_uuid(),
            timestamp: now,
            actor_uuid: self.inner.bridge_user_id.clone(),
            action: action.to_owned(),
            object_type: "group".into(),
            object_uuid: group_id.to_owned(),
            object_details: None,
            aux_uuid: aux,
            aux_info: None,
        });
    }

    // ----- invitation lifecycle (control) ------------------------------------------------

    /// Resolves a user by id or userName.
    pub fn find_user(&self, id_or_user_name: &str) -> Option<User> {
        let store = self.read();
        resolve_user(&store, id_or_user_name).and_then(|id| store.users.get(&id)).cloned()
    }

    /// The invitee accepts: the account becomes real (pending, then active once confirmed) and
    /// a successful sign-in appears in the Events API.
    pub fn accept_invitation(&self, id_or_user_name: &str) -> Result<UserView, SimError> {
        let now = self.now();
        let delay = to_delta(self.inner.config.confirmation_delay);
        let mut store = self.write();
        let id = resolve_user(&store, id_or_user_name)
            .ok_or_else(|| SimError::NotFound(format!("user {id_or_user_name}")))?;
        let user = store.users.get_mut(&id).expect("resolved user exists");
        match user.effective_state(now) {
            AccountState::Invited if user.invitation_expired(now) => {
                return Err(SimError::InvitationExpired(id));
            }
            AccountState::Invited => {}
            other => {
                return Err(SimError::NotInvited { user: id, reason: format!("the account is {other:?}") });
            }
        }
        user.accepted_at = Some(now);
        if delay.is_zero() {
            user.state = AccountState::Active;
            user.confirms_at = None;
        } else {
            user.state = AccountState::Pending;
            user.confirms_at = Some(now + delay);
        }
        user.invitation_expires_at = None;
        user.last_modified = now;
        let user = user.clone();
        store.sign_ins.push(sign_in(&user, "success", "credentials_ok", now));
        self.audit(&mut store, "join", "user", &user, now);
        Ok(view_user(&store, &user, now))
    }

    /// Makes a pending invitation expire now.
    pub fn expire_invitation(&self, id_or_user_name: &str) -> Result<UserView, SimError> {
        let now = self.now();
        let mut store = self.write();
        let id = resolve_user(&store, id_or_user_name)
            .ok_or_else(|| SimError::NotFound(format!("user {id_or_user_name}")))?;
        let user = store.users.get_mut(&id).expect("resolved user exists");
        if !matches!(user.state, AccountState::Invited | AccountState::InviteSuspended) {
            return Err(SimError::NotInvited { user: id, reason: format!("the account is {:?}", user.state) });
        }
        user.invitation_expires_at = Some(now);
        let user = user.clone();
        Ok(view_user(&store, &user, now))
    }

    /// Records a failed sign-in attempt (for Events API tests).
    pub fn record_failed_sign_in(&self, id_or_user_name: &str) -> Result<(), SimError> {
        let now = self.now();
        let mut store = self.write();
        let id = resolve_user(&store, id_or_user_name)
            .ok_or_else(|| SimError::NotFound(format!("user {id_or_user_name}")))?;
        let attempt = sign_in(&store.users[&id], "credentials_failed", "password_secret_bad", now);
        store.sign_ins.push(attempt);
        Ok(())
    }

    // ----- groups -------------------------------------------------------------------------

    /// `POST /Groups`. A name already managed is handled as `duplicate_group_name` says
    /// (`ReturnExisting` answers with the oldest such group, unchanged); an unmanaged group of
    /// that name (a built-in one) is adopted.
    pub fn create_group(&self, new: NewGroup) -> Result<Group, SimError> {
        self.create_group_then(new, Group::clone)
    }

    /// [`Self::create_group`], answering with `f` of the group (no copy of its members).
    pub fn create_group_then<R>(&self, new: NewGroup, f: impl FnOnce(&Group) -> R) -> Result<R, SimError> {
        let config = &self.inner.config;
        let now = self.now();
        let name = new.display_name.trim().to_owned();
        if name.is_empty() {
            return Err(SimError::InvalidValue("displayName is required".into()));
        }
        if config.is_protected_group(&name) {
            return Err(SimError::ProtectedGroup(name));
        }
        let mut store = self.write();
        let oldest_managed = groups_named(&store, &name).filter(|g| g.managed).min_by_key(|g| g.created_at);
        if let Some(existing) = oldest_managed {
            match config.duplicate_group_name {
                DuplicateGroupName::Reject409 => {
                    return Err(SimError::Uniqueness(format!("a group named {name} already exists")));
                }
                DuplicateGroupName::ReturnExisting => return Ok(f(existing)),
                DuplicateGroupName::Allow => {}
            }
        }
        let members = check_members(&store, &new.members)?;
        let unmanaged = groups_named(&store, &name).find(|g| !g.managed).map(|g| g.id.clone());
        let id = match unmanaged {
            // An existing 1Password group is matched by name and becomes managed.
            Some(existing) => {
                let group = store.groups.get_mut(&existing).expect("found group exists");
                group.managed = true;
                group.external_id = new.external_id.filter(|_| config.store_external_id);
                group.last_modified = now;
                existing
            }
            None => {
                let id = ids::new_group_id();
                let external_id = new.external_id.filter(|_| config.store_external_id);
                insert_group(&mut store, id.clone(), &name, external_id, true, now);
                self.audit_group(&mut store, "create", &id, None, now);
                id
            }
        };
        let current = &store.groups[&id].members;
        let added: BTreeSet<String> = members.into_iter().filter(|m| !current.contains(m)).collect();
        change_members(&mut store, &id, added.into_iter().collect(), Vec::new(), now, true);
        Ok(f(&store.groups[&id]))
    }

    /// A group as SCIM may show it (managed only).
    pub fn group(&self, id: &str) -> Option<Group> {
        self.with_group(id, Group::clone)
    }

    /// `f` of a group SCIM may show (managed only), without copying it.
    pub fn with_group<R>(&self, id: &str, f: impl FnOnce(&Group) -> R) -> Option<R> {
        self.read().groups.get(id).filter(|g| g.managed).map(f)
    }

    /// Managed groups in creation order.
    pub fn managed_groups(&self) -> Vec<Group> {
        let store = self.read();
        store.group_order.iter().filter_map(|id| store.groups.get(id)).filter(|g| g.managed).cloned().collect()
    }

    /// A page of the managed groups `keep` selects (creation order), each as `render` makes
    /// it (no copy of the groups or their members); also the total number selected. `offset`
    /// is 0-based.
    pub fn query_groups<R>(
        &self,
        keep: impl Fn(&Group) -> bool,
        offset: usize,
        limit: usize,
        mut render: impl FnMut(&Group) -> R,
    ) -> (usize, Vec<R>) {
        let store = self.read();
        let mut total = 0;
        let mut page = Vec::new();
        for group in store.group_order.iter().filter_map(|id| store.groups.get(id)).filter(|g| g.managed) {
            if !keep(group) {
                continue;
            }
            if total >= offset && page.len() < limit {
                page.push(render(group));
            }
            total += 1;
        }
        (total, page)
    }

    /// Finds the group a SCIM request wants to change: protected groups refuse, unmanaged ones
    /// do not exist as far as SCIM is concerned.
    fn changeable_group<'s>(&self, store: &'s Store, id: &str) -> Result<&'s Group, SimError> {
        let group = store.groups.get(id).ok_or_else(|| SimError::NotFound(format!("group {id}")))?;
        if self.inner.config.is_protected_group(&group.display_name) {
            return Err(SimError::ProtectedGroup(group.display_name.clone()));
        }
        if !group.managed {
            return Err(SimError::NotFound(format!("group {id}")));
        }
        Ok(group)
    }

    pub fn change_group(&self, id: &str, changes: Vec<GroupChange>) -> Result<Group, SimError> {
        self.change_group_then(id, changes, Group::clone)
    }

    /// Applies changes atomically (all or nothing) and answers with `f` of the changed group
    /// (no copy of its members). Adding or removing k members costs O(k log n), whatever the
    /// group's size n; only a replacement of the member list walks the whole list.
    pub fn change_group_then<R>(
        &self,
        id: &str,
        changes: Vec<GroupChange>,
        f: impl FnOnce(&Group) -> R,
    ) -> Result<R, SimError> {
        let config = &self.inner.config;
        let now = self.now();
        let mut store = self.write();
        self.changeable_group(&store, id)?;
        // Checked first, applied only when every change is valid.
        let mut display_name = None;
        let mut external_id = None;
        // The member list a `replace` set (if any), then the later adds (true) / removes
        // (false) per user: the last word on a user wins, as when applied one by one.
        let mut replaced: Option<BTreeSet<String>> = None;
        let mut edits: BTreeMap<String, bool> = BTreeMap::new();
        for change in changes {
            match change {
                GroupChange::DisplayName(name) => {
                    let name = name.trim().to_owned();
                    if name.is_empty() {
                        return Err(SimError::InvalidValue("displayName must not be empty".into()));
                    }
                    if config.is_protected_group(&name) {
                        return Err(SimError::ProtectedGroup(name));
                    }
                    if config.duplicate_group_name != DuplicateGroupName::Allow
                        && groups_named(&store, &name).any(|other| other.id != id)
                    {
                        return Err(SimError::Uniqueness(format!("a group named {name} already exists")));
                    }
                    display_name = Some(name);
                }
                GroupChange::ExternalId(ext) => {
                    if config.store_external_id {
                        external_id = Some(ext);
                    }
                }
                GroupChange::AddMembers(members) => {
                    edits.extend(check_members(&store, &members)?.into_iter().map(|m| (m, true)));
                }
                GroupChange::RemoveMembers(members) => edits.extend(members.into_iter().map(|m| (m, false))),
                GroupChange::ReplaceMembers(members) => {
                    replaced = Some(check_members(&store, &members)?.into_iter().collect());
                    edits.clear();
                }
            }
        }
        let group = store.groups.get_mut(id).expect("changeable group exists");
        if let Some(name) = display_name {
            group.display_name = name;
        }
        if let Some(ext) = external_id {
            group.external_id = ext;
        }
        group.last_modified = now;
        match replaced {
            Some(mut wanted) => {
                for (member, keep) in edits {
                    if keep {
                        wanted.insert(member);
                    } else {
                        wanted.remove(&member);
                    }
                }
                set_members(&mut store, id, wanted, now, true);
            }
            None => {
                let (mut added, mut removed) = (Vec::new(), Vec::new());
                for (member, keep) in edits {
                    match (keep, group.members.contains(&member)) {
                        (true, false) => added.push(member),
                        (false, true) => removed.push(member),
                        _ => {}
                    }
                }
                change_members(&mut store, id, added, removed, now, true);
            }
        }
        Ok(f(&store.groups[id]))
    }

    /// Deletes a managed group (the users stay).
    pub fn delete_group(&self, id: &str) -> Result<(), SimError> {
        let now = self.now();
        let mut store = self.write();
        self.changeable_group(&store, id)?;
        set_members(&mut store, id, BTreeSet::new(), now, false);
        store.groups.remove(id);
        store.group_order.retain(|g| g != id);
        self.audit_group(&mut store, "delete", id, None, now);
        Ok(())
    }

    // ----- what tests read back -----------------------------------------------------------

    pub fn users(&self) -> Vec<UserView> {
        let now = self.now();
        let store = self.read();
        store.user_order.iter().filter_map(|id| store.users.get(id)).map(|u| view_user(&store, u, now)).collect()
    }

    pub fn user_view(&self, id_or_user_name: &str) -> Option<UserView> {
        let now = self.now();
        let store = self.read();
        let id = resolve_user(&store, id_or_user_name)?;
        store.users.get(&id).map(|u| view_user(&store, u, now))
    }

    /// All groups, including built-in and protected ones.
    pub fn groups(&self) -> Vec<GroupView> {
        let store = self.read();
        store
            .group_order
            .iter()
            .filter_map(|id| store.groups.get(id))
            .map(|g| GroupView {
                id: g.id.clone(),
                display_name: g.display_name.clone(),
                external_id: g.external_id.clone(),
                managed: g.managed,
                protected: self.inner.config.is_protected_group(&g.display_name),
                members: g.members.iter().cloned().collect(),
            })
            .collect()
    }

    pub fn outbox(&self) -> Vec<InvitationMail> {
        self.read().outbox.clone()
    }

    pub fn violations(&self) -> Vec<Violation> {
        self.read().violations.clone()
    }

    pub fn account_changes(&self) -> Vec<AccountChange> {
        self.read().account_changes.clone()
    }

    pub fn sign_in_attempts(&self) -> Vec<SignInAttempt> {
        self.read().sign_ins.clone()
    }

    pub fn audit_events(&self) -> Vec<AuditEvent> {
        self.read().audit.clone()
    }

    /// Runs `f` over the sign-in attempts without copying them all.
    pub fn with_sign_ins<R>(&self, f: impl FnOnce(&[SignInAttempt]) -> R) -> R {
        f(&self.read().sign_ins)
    }

    pub fn with_audit_events<R>(&self, f: impl FnOnce(&[AuditEvent]) -> R) -> R {
        f(&self.read().audit)
    }

    // ----- operations log -----------------------------------------------------------------

    pub fn operations(&self) -> Vec<Operation> {
        lock(&self.inner.log).list()
    }

    pub fn clear_operations(&self) {
        lock(&self.inner.log).clear();
    }

    pub(crate) fn log_begin(&self, method: &str, path: &str, query: Option<&str>) -> u64 {
        let now = self.now();
        lock(&self.inner.log).begin(method, path, query, now)
    }

    pub(crate) fn log_finish(&self, seq: u64, status: Option<u16>) {
        lock(&self.inner.log).finish(seq, status);
    }

    pub(crate) fn log_fault(&self, seq: u64, fault: &str) {
        lock(&self.inner.log).mark_fault(seq, fault);
    }

    // ----- traffic ------------------------------------------------------------------------

    /// SCIM requests and response body bytes since the start or the last reset (for benchmarks).
    pub fn traffic(&self) -> Traffic {
        Traffic {
            requests: self.inner.requests.load(Ordering::Relaxed),
            response_bytes: self.inner.response_bytes.load(Ordering::Relaxed),
        }
    }

    pub fn reset_traffic(&self) {
        self.inner.requests.store(0, Ordering::Relaxed);
        self.inner.response_bytes.store(0, Ordering::Relaxed);
    }

    pub(crate) fn count_request(&self) {
        self.inner.requests.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_response_bytes(&self, bytes: u64) {
        self.inner.response_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    // ----- faults -------------------------------------------------------------------------

    pub fn add_fault(&self, rule: FaultRule) -> Result<u64, SimError> {
        lock(&self.inner.faults).add(rule).map_err(SimError::InvalidValue)
    }

    pub fn remove_fault(&self, id: u64) -> bool {
        lock(&self.inner.faults).remove(id)
    }

    pub fn clear_faults(&self) {
        lock(&self.inner.faults).clear();
    }

    pub fn faults(&self) -> Vec<ActiveFault> {
        lock(&self.inner.faults).list()
    }

    pub(crate) fn decide_fault(&self, method: &str, path: &str) -> FaultDecision {
        let mut book = lock(&self.inner.faults);
        if book.is_empty() {
            return FaultDecision::default();
        }
        book.decide(method, path)
    }
}

// ----- helpers over the store ------------------------------------------------------------------

fn index_user(store: &mut Store, user: &User) {
    store.by_user_name.insert(user.user_name.to_lowercase(), user.id.clone());
    if let Some(ext) = &user.external_id {
        store.by_external_id.entry(ext.clone()).or_default().push(user.id.clone());
    }
}

fn unindex_user(store: &mut Store, user: &User) {
    let key = user.user_name.to_lowercase();
    if store.by_user_name.get(&key) == Some(&user.id) {
        store.by_user_name.remove(&key);
    }
    if let Some(ext) = &user.external_id
        && let Some(ids) = store.by_external_id.get_mut(ext)
    {
        ids.retain(|id| id != &user.id);
        if ids.is_empty() {
            store.by_external_id.remove(ext);
        }
    }
}

fn push_user_order(store: &mut Store, id: &str) {
    store.user_pos.insert(id.to_owned(), store.user_order.len());
    store.user_order.push(id.to_owned());
}

/// A page (`offset`, `limit`) of the `users` that `keep` selects, with their managed groups,
/// and how many it selects in all.
fn page_of_users<'s>(
    store: &'s Store,
    users: impl Iterator<Item = &'s User>,
    keep: impl Fn(&User) -> bool,
    offset: usize,
    limit: usize,
) -> (usize, Vec<UserWithGroups>) {
    let mut total = 0;
    let mut page = Vec::new();
    for user in users {
        if !keep(user) {
            continue;
        }
        if total >= offset && page.len() < limit {
            page.push((user.clone(), groups_of(store, user)));
        }
        total += 1;
    }
    (total, page)
}

fn groups_of(store: &Store, user: &User) -> Vec<(String, String)> {
    user.group_ids
        .iter()
        .filter_map(|gid| store.groups.get(gid))
        .filter(|g| g.managed)
        .map(|g| (g.id.clone(), g.display_name.clone()))
        .collect()
}

fn resolve_user(store: &Store, id_or_user_name: &str) -> Option<String> {
    if store.users.contains_key(id_or_user_name) {
        return Some(id_or_user_name.to_owned());
    }
    store.by_user_name.get(&id_or_user_name.to_lowercase()).cloned()
}

/// Every group called `name` (case-insensitive), in creation order.
fn groups_named<'s>(store: &'s Store, name: &str) -> impl Iterator<Item = &'s Group> {
    let name = name.trim().to_owned();
    store
        .group_order
        .iter()
        .filter_map(|id| store.groups.get(id))
        .filter(move |g| g.display_name.eq_ignore_ascii_case(&name))
}

fn find_group_by_name(store: &Store, name: &str) -> Option<String> {
    let name = name.trim();
    store
        .group_order
        .iter()
        .find(|id| store.groups.get(*id).is_some_and(|g| g.display_name.eq_ignore_ascii_case(name)))
        .cloned()
}

fn insert_group(
    store: &mut Store,
    id: String,
    name: &str,
    external_id: Option<String>,
    managed: bool,
    now: DateTime<Utc>,
) {
    store.group_order.push(id.clone());
    store.groups.insert(
        id.clone(),
        Group {
            id,
            display_name: name.trim().to_owned(),
            external_id,
            managed,
            members: BTreeSet::new(),
            created_at: now,
            last_modified: now,
        },
    );
}

/// Every member must be an existing user (1Password has no nested groups).
fn check_members(store: &Store, members: &[String]) -> Result<Vec<String>, SimError> {
    members
        .iter()
        .map(|m| {
            if store.users.contains_key(m) {
                Ok(m.clone())
            } else {
                Err(SimError::InvalidValue(format!("member {m} is not a user of this account")))
            }
        })
        .collect()
}

/// Sets a group's members and keeps every user's `group_ids` in step.
fn set_members(store: &mut Store, group_id: &str, wanted: BTreeSet<String>, now: DateTime<Utc>, audit: bool) {
    let Some(group) = store.groups.get(group_id) else {
        return;
    };
    let added: Vec<String> = wanted.difference(&group.members).cloned().collect();
    let removed: Vec<String> = group.members.difference(&wanted).cloned().collect();
    change_members(store, group_id, added, removed, now, audit);
}

/// Adds `added` (not members yet) to a group and removes `removed` (members), keeping the
/// users' `group_ids` in step; touches `last_modified` when anything changes and records a
/// `grant` / `revoke` audit event per user (grants first, each list in the given order).
/// O(changes · log n).
fn change_members(
    store: &mut Store,
    group_id: &str,
    added: Vec<String>,
    removed: Vec<String>,
    now: DateTime<Utc>,
    audit: bool,
) {
    let Some(group) = store.groups.get_mut(group_id) else {
        return;
    };
    if !added.is_empty() || !removed.is_empty() {
        group.last_modified = now;
    }
    for uid in &added {
        group.members.insert(uid.clone());
    }
    for uid in &removed {
        group.members.remove(uid);
    }
    for uid in &added {
        if let Some(u) = store.users.get_mut(uid) {
            u.group_ids.insert(group_id.to_owned());
        }
    }
    for uid in &removed {
        if let Some(u) = store.users.get_mut(uid) {
            u.group_ids.remove(group_id);
        }
    }
    if audit {
        for (action, uids) in [("grant", added), ("revoke", removed)] {
            for uid in uids {
                store.audit.push(AuditEvent {
                    uuid: ids::new_uuid(),
                    timestamp: now,
                    actor_uuid: String::new(),
                    action: action.into(),
                    object_type: "gm".into(),
                    object_uuid: group_id.to_owned(),
                    object_details: store.users.get(&uid).map(event_user),
                    aux_uuid: Some(uid),
                    aux_info: None,
                });
            }
        }
    }
}

fn view_user(store: &Store, u: &User, now: DateTime<Utc>) -> UserView {
    UserView {
        id: u.id.clone(),
        user_name: u.user_name.clone(),
        external_id: u.external_id.clone(),
        display_name: u.display_name.clone(),
        given_name: u.given_name.clone(),
        family_name: u.family_name.clone(),
        lifecycle: u.lifecycle(now),
        scim_active: u.effective_state(now).scim_active(),
        created_at: u.created_at,
        invitation_sent_at: u.invitation_sent_at,
        invitation_expires_at: u.invitation_expires_at,
        invitations_sent: u.invitations_sent,
        accepted_at: u.accepted_at,
        groups: u.group_ids.iter().filter_map(|g| store.groups.get(g)).map(|g| g.display_name.clone()).collect(),
    }
}

fn event_user(u: &User) -> EventUser {
    EventUser { uuid: u.id.clone(), name: u.full_name(), email: u.user_name.clone() }
}

fn sign_in(user: &User, category: &str, kind: &str, now: DateTime<Utc>) -> SignInAttempt {
    SignInAttempt {
        uuid: ids::new_uuid(),
        session_uuid: ids::new_uuid(),
        timestamp: now,
        category: category.into(),
        kind: kind.into(),
        country: "CA".into(),
        target_user: event_user(user),
        client: EventClient {
            app_name: "1Password Browser Extension".into(),
            app_version: "20240".into(),
            platform_name: "Chrome".into(),
            platform_version: "126".into(),
            os_name: "MacOSX".into(),
            os_version: "14.5".into(),
            ip_address: "192.0.2.10".into(),
        },
    }
}

/// "Mary Ann Smith" → ("Mary", "Ann Smith"): how 1Password re-splits a display name.
pub fn split_name(full: &str) -> (Option<String>, Option<String>) {
    let full = full.trim();
    match full.split_once(' ') {
        Some((given, family)) => (Some(given.to_owned()), Some(family.trim().to_owned())),
        None if full.is_empty() => (None, None),
        None => (Some(full.to_owned()), None),
    }
}

fn join_name(given: &Option<String>, family: &Option<String>) -> Option<String> {
    match (given.as_deref(), family.as_deref()) {
        (Some(g), Some(f)) => Some(format!("{g} {f}").trim().to_owned()),
        (Some(one), None) | (None, Some(one)) => Some(one.to_owned()),
        (None, None) => None,
    }
}

/// At most one primary e-mail: `prefer` wins, else the first marked primary.
fn normalise_primary(emails: &mut [Email], prefer: Option<&str>) {
    let chosen = prefer
        .and_then(|p| emails.iter().position(|e| e.value.eq_ignore_ascii_case(p)))
        .or_else(|| emails.iter().position(|e| e.primary == Some(true)));
    if let Some(chosen) = chosen {
        for (i, e) in emails.iter_mut().enumerate() {
            if e.primary.is_some() || i == chosen {
                e.primary = Some(i == chosen);
            }
        }
    }
}

/// In 1Password the e-mail is the login: the userName follows the primary e-mail.
fn follow_primary_email(user: &mut User) {
    if let Some(primary) = user.primary_email()
        && !primary.eq_ignore_ascii_case(&user.user_name)
        && !primary.trim().is_empty()
    {
        user.user_name = primary.trim().to_owned();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::filter::Filter;
    use crate::scim::users::{index_keys, user_matches};
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn frozen() -> SimState {
        let start = "2025-01-01T00:00:00Z".parse().unwrap();
        SimState::new(SimConfig { clock_start: Some(start), ..SimConfig::default() })
    }

    fn ids(page: &[UserWithGroups]) -> Vec<String> {
        page.iter().map(|(u, _)| u.id.clone()).collect()
    }

    #[test]
    fn indexed_user_queries_match_the_scan() {
        let state = frozen();
        let user = |name: &str, ext: Option<&str>| SeedUser {
            external_id: ext.map(str::to_owned),
            ..SeedUser::new(name, SeedState::Active)
        };
        let seeded = state
            .seed(Seed {
                users: vec![
                    user("Ada@Example.com", Some("hr:1")),
                    user("bob@example.com", Some("shared")),
                    user("carol@example.com", Some("hr:3")),
                    user("dave@example.com", Some("shared")),
                    user("erin@example.com", None),
                    user("old.name@example.com", Some("hr:6")),
                ],
                groups: vec![],
            })
            .unwrap();
        let [ada, bob, _carol, _dave, erin, renamed] = &seeded.user_ids[..] else { panic!() };
        // The externalId index now lists bob after dave (re-indexed on change), the scan
        // before: the indexed answer must still come in creation order.
        state.change_user(bob, vec![UserChange::ExternalId(Some("shared".into()))], Via::Patch).unwrap();
        state.change_user(erin, vec![UserChange::ExternalId(Some("shared".into()))], Via::Patch).unwrap();
        state.change_user(renamed, vec![UserChange::UserName("new.name@example.com".into())], Via::Patch).unwrap();
        state.delete_user(erin).unwrap();

        let filters = [
            r#"userName eq "ADA@EXAMPLE.COM""#.to_owned(),
            r#"externalId eq "hr:1""#.into(),
            r#"externalId eq "HR:1""#.into(),
            r#"externalId eq "hr:1" or userName eq "ada@example.com""#.into(),
            r#"externalId eq "hr:3" or userName eq "ADA@example.com""#.into(),
            r#"externalId eq "shared""#.into(),
            r#"userName eq "carol@example.com" or externalId eq "shared""#.into(),
            r#"userName eq "nobody@example.com""#.into(),
            r#"externalId eq "none" or userName eq "nobody@example.com""#.into(),
            r#"userName eq "old.name@example.com""#.into(),
            r#"userName eq "NEW.name@example.com" or (externalId eq "hr:6" or externalId eq "hr:1")"#.into(),
            r#"urn:ietf:params:scim:schemas:core:2.0:User:userName eq "bob@example.com""#.into(),
            format!(r#"id eq "{ada}""#),
            format!(r#"id eq "{}" or userName eq "dave@example.com""#, ada.to_lowercase()),
            format!(r#"id eq "{erin}" or externalId eq "shared" or userName eq "ada@example.com""#),
        ];
        let now = state.now();
        for text in &filters {
            let filter = Filter::parse(text).unwrap();
            let keys = index_keys(&filter).unwrap_or_else(|| panic!("{text} is indexable"));
            let keep = |u: &User| user_matches(&filter, u, now);
            for offset in 0..4 {
                for limit in [0, 1, 2, usize::MAX] {
                    let (scan_total, scan) = state.query_users(keep, offset, limit);
                    let (index_total, indexed) = state.query_users_by_keys(&keys, keep, offset, limit);
                    assert_eq!(
                        (index_total, ids(&indexed)),
                        (scan_total, ids(&scan)),
                        "{text} offset {offset} limit {limit}"
                    );
                    let groups = |page: &[UserWithGroups]| page.iter().map(|(_, g)| g.clone()).collect::<Vec<_>>();
                    assert_eq!(groups(&indexed), groups(&scan));
                }
            }
        }
        let two = Filter::parse(r#"userName eq "carol@example.com" or externalId eq "shared""#).unwrap();
        let (total, page) = state.query_users_by_keys(&index_keys(&two).unwrap(), |_| true, 0, usize::MAX);
        assert_eq!(total, 4, "bob, carol, dave and erin");
        assert_eq!(ids(&page), [&seeded.user_ids[1], &seeded.user_ids[2], &seeded.user_ids[3], erin].map(String::from));
        for scanned in [r#"userName co "a""#, r#"userName eq "a" and externalId eq "b""#, r#"not (id eq "x")"#] {
            assert_eq!(index_keys(&Filter::parse(scanned).unwrap()), None, "{scanned} scans");
        }
    }

    /// The membership part of `change_group` as it was: a full copy of the members, the
    /// changes applied one by one, then the whole set diffed against the old one.
    fn reference_change_group(state: &SimState, id: &str, changes: Vec<GroupChange>) -> Result<Group, SimError> {
        let config = &state.inner.config;
        let now = state.now();
        let mut store = state.write();
        let mut group = state.changeable_group(&store, id)?.clone();
        for change in changes {
            match change {
                GroupChange::DisplayName(name) => {
                    let name = name.trim().to_owned();
                    if name.is_empty() {
                        return Err(SimError::InvalidValue("displayName must not be empty".into()));
                    }
                    if config.is_protected_group(&name) {
                        return Err(SimError::ProtectedGroup(name));
                    }
                    if config.duplicate_group_name != DuplicateGroupName::Allow
                        && groups_named(&store, &name).any(|other| other.id != id)
                    {
                        return Err(SimError::Uniqueness(format!("a group named {name} already exists")));
                    }
                    group.display_name = name;
                }
                GroupChange::ExternalId(external_id) => {
                    if config.store_external_id {
                        group.external_id = external_id;
                    }
                }
                GroupChange::AddMembers(members) => group.members.extend(check_members(&store, &members)?),
                GroupChange::RemoveMembers(members) => {
                    for m in members {
                        group.members.remove(&m);
                    }
                }
                GroupChange::ReplaceMembers(members) => {
                    group.members = check_members(&store, &members)?.into_iter().collect();
                }
            }
        }
        let wanted = std::mem::take(&mut group.members);
        group.members = store.groups[id].members.clone();
        group.last_modified = now;
        store.groups.insert(id.to_owned(), group);
        reference_set_members(&mut store, id, wanted, now);
        Ok(store.groups[id].clone())
    }

    /// `set_members` as it was (with `audit`).
    fn reference_set_members(store: &mut Store, group_id: &str, wanted: BTreeSet<String>, now: DateTime<Utc>) {
        let group = store.groups.get_mut(group_id).unwrap();
        let current = std::mem::take(&mut group.members);
        let added: Vec<String> = wanted.difference(&current).cloned().collect();
        let removed: Vec<String> = current.difference(&wanted).cloned().collect();
        if !added.is_empty() || !removed.is_empty() {
            group.last_modified = now;
        }
        group.members = wanted;
        for uid in &added {
            if let Some(u) = store.users.get_mut(uid) {
                u.group_ids.insert(group_id.to_owned());
            }
        }
        for uid in &removed {
            if let Some(u) = store.users.get_mut(uid) {
                u.group_ids.remove(group_id);
            }
        }
        for (action, uids) in [("grant", added), ("revoke", removed)] {
            for uid in uids {
                store.audit.push(AuditEvent {
                    uuid: ids::new_uuid(),
                    timestamp: now,
                    actor_uuid: String::new(),
                    action: action.into(),
                    object_type: "gm".into(),
                    object_uuid: group_id.to_owned(),
                    object_details: store.users.get(&uid).map(event_user),
                    aux_uuid: Some(uid),
                    aux_info: None,
                });
            }
        }
    }

    /// Everything a group change may touch, comparable (audit events without their uuid).
    fn snapshot(store: &Store) -> String {
        let mut users: Vec<String> = store.users.values().map(|u| format!("{u:?}")).collect();
        users.sort();
        let mut groups: Vec<String> = store.groups.values().map(|g| format!("{g:?}")).collect();
        groups.sort();
        let audit: Vec<String> =
            store.audit.iter().map(|e| format!("{:?}", AuditEvent { uuid: String::new(), ..e.clone() })).collect();
        format!("{users:?}\n{groups:?}\n{audit:?}\n{:?}\n{:?}", store.violations, store.account_changes)
    }

    #[test]
    fn incremental_member_changes_match_the_full_recompute() {
        let state = frozen();
        let users = (0..10).map(|i| SeedUser::new(format!("u{i}@example.com"), SeedState::Active)).collect();
        let members = |range: std::ops::Range<usize>| range.map(|i| format!("u{i}@example.com")).collect();
        let group = |name: &str, members| SeedGroup { display_name: name.into(), members, ..Default::default() };
        let seeded =
            state.seed(Seed { users, groups: vec![group("One", members(0..6)), group("Two", members(3..9))] }).unwrap();
        let owners = state.groups().into_iter().find(|g| g.display_name == "Owners").unwrap().id;
        let mut people = seeded.user_ids.clone();
        people.push("not-a-user".into());
        let mut rng = StdRng::seed_from_u64(7);
        let some = |rng: &mut StdRng| -> Vec<String> {
            let n = rng.random_range(0..4);
            (0..n)
                .map(|_| {
                    // Rarely a non-user (the request must then fail as a whole).
                    let i = rng.random_range(0..people.len() * 4) % (people.len() - usize::from(rng.random_bool(0.8)));
                    people[i].clone()
                })
                .collect()
        };
        let (mut failures, mut grants, mut revokes) = (0, 0, 0);
        for step in 0..400 {
            let target = match rng.random_range(0..20) {
                0 => owners.clone(),
                1 => "no-such-group".into(),
                n => seeded.group_ids[n % 2].clone(),
            };
            let changes: Vec<GroupChange> = (0..rng.random_range(1..5))
                .map(|_| match rng.random_range(0..10) {
                    0..=2 => GroupChange::AddMembers(some(&mut rng)),
                    3..=5 => GroupChange::RemoveMembers(some(&mut rng)),
                    6 => GroupChange::ReplaceMembers(some(&mut rng)),
                    7 => {
                        GroupChange::DisplayName(["One", "Two", "Three", " ", "Owners"][rng.random_range(0..5)].into())
                    }
                    8 => GroupChange::ExternalId(rng.random_bool(0.5).then(|| format!("ext-{step}"))),
                    _ => GroupChange::RemoveMembers(Vec::new()),
                })
                .collect();
            let before = state.write().clone();
            let audit_before = before.audit.len();
            let new = state.change_group(&target, changes.clone()).map(|g| format!("{g:?}"));
            let after_new = state.write().clone();
            *state.write() = before;
            let old = reference_change_group(&state, &target, changes.clone()).map(|g| format!("{g:?}"));
            let after_old = state.write().clone();
            assert_eq!(
                new.as_ref().map_err(|e| format!("{e:?}")),
                old.as_ref().map_err(|e| format!("{e:?}")),
                "step {step}: {changes:?}"
            );
            assert_eq!(snapshot(&after_new), snapshot(&after_old), "step {step}: {changes:?}");
            failures += usize::from(new.is_err());
            for event in &after_new.audit[audit_before..] {
                grants += usize::from(event.action == "grant");
                revokes += usize::from(event.action == "revoke");
            }
            // Users' groups and groups' members agree.
            for (id, g) in &after_new.groups {
                for m in &g.members {
                    assert!(after_new.users[m].group_ids.contains(id), "step {step}");
                }
            }
            for (id, u) in &after_new.users {
                for g in &u.group_ids {
                    assert!(after_new.groups[g].members.contains(id), "step {step}");
                }
            }
            *state.write() = after_new;
            state.advance_clock(Duration::from_secs(1));
        }
        assert!(
            failures > 20 && grants > 50 && revokes > 50,
            "{failures} failures, {grants} grants, {revokes} revokes"
        );
    }
}
