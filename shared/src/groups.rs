//! The managed groups on the bridge: one group per name the mapping rules use, ensured once
//! per catalogue refresh, and a person's memberships learnt without listing the world.
//!
//! Real bridges differ where nobody has checked (docs/external-facts.md, "Groups and
//! memberships"): a second group with a taken name may be refused (409), returned (the
//! existing one) or created; memberships may show in a user's `groups`, answer a
//! `members[value eq …]` filter, show only when a group is read by id, or nowhere. So:
//!
//! * The catalogue is read without members and cached. When a plan needs a managed group
//!   the catalogue lacks, every missing managed group is created at once, single-flight in
//!   the process, and the groups are listed again; when two share a managed name (any
//!   case), every invocation picks the same one — the oldest `meta.created`, then the
//!   smallest id — and the duplicate is logged and kept for the reconcile report. Reading
//!   never writes, so a dry run or a leaver with no account creates nothing.
//! * The membership strategy is probed once per process and logged; when the bridge shows
//!   memberships nowhere, removals are refused loudly (the planner's `membership_known`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex as SyncMutex};
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use crate::event::PersonKey;
use crate::ledger::Ledger;
use crate::scim::{Directory, ScimError, ScimGroup, ScimGroupId, ScimUser, ScimUserId};

/// The ledger item whose lease makes group creation single-flight across processes.
const LEASE_SOURCE: &str = "_managed-groups";
const LEASE_ID: &str = "creation";
/// Far beyond a few creates; a crashed holder's lease lapses.
const CREATION_LEASE: chrono::Duration = chrono::Duration::seconds(30);
/// How long a process waits for another's creation before creating anyway.
const CREATION_WAIT: Duration = Duration::from_secs(5);

/// How this bridge tells which groups a user is in, cheapest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum MembershipStrategy {
    /// The user resource carries `groups`: no extra request.
    UserGroups,
    /// `GET /Groups?filter=members[value eq "…"]&attributes=displayName`: one request.
    MemberFilter,
    /// `GET /Groups/{id}` of each managed group: one request per managed group.
    ManagedGroupReads,
    /// The bridge shows memberships nowhere (so far): group removals are refused, and the
    /// managed groups are read with each person until one shows members.
    Unknown,
}

/// A person's memberships, as far as the bridge shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Membership {
    /// Names of the groups the user is in (managed ones by their chosen group only).
    Known(BTreeSet<String>),
    Unknown,
}

/// Two or more groups with one managed name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuplicateGroup {
    pub name: String,
    /// The one every invocation uses.
    pub kept: ScimGroupId,
    pub others: Vec<ScimGroupId>,
}

/// The groups as one refresh saw them, with one group chosen per managed name.
#[derive(Debug, Default)]
pub struct Catalogue {
    /// Lower-cased managed name → the chosen group.
    managed: BTreeMap<String, ScimGroup>,
    /// Every listed group's id → display name; ids of unchosen duplicates are left out, so
    /// a membership of one never counts as the managed group's.
    names: HashMap<ScimGroupId, String>,
    /// Every managed name, lower-cased, listed or not.
    wanted: BTreeSet<String>,
    pub duplicates: Vec<DuplicateGroup>,
}

impl Catalogue {
    /// Resolves a listing: one group per managed name, deterministically.
    pub fn resolve(groups: Vec<ScimGroup>, managed: &BTreeSet<String>) -> Catalogue {
        let wanted: BTreeSet<String> = managed.iter().map(|name| name.trim().to_lowercase()).collect();
        let mut by_name: BTreeMap<String, Vec<ScimGroup>> = BTreeMap::new();
        let mut names = HashMap::new();
        for group in groups {
            let key = group.display_name.trim().to_lowercase();
            if wanted.contains(&key) {
                by_name.entry(key).or_default().push(group);
            } else {
                names.insert(group.id.clone(), group.display_name.clone());
            }
        }
        let mut catalogue = Catalogue { names, wanted, ..Catalogue::default() };
        for (key, mut same) in by_name {
            // Oldest first (a group without a readable `created` after every dated one),
            // then the smallest id: the same choice in every process, whatever the order
            // the bridge lists them in.
            same.sort_by(|a, b| {
                let (a_at, b_at) = (a.created_at(), b.created_at());
                (a_at.is_none(), a_at, &a.id).cmp(&(b_at.is_none(), b_at, &b.id))
            });
            let mut same = same.into_iter();
            let Some(kept) = same.next() else { continue };
            let others: Vec<ScimGroupId> = same.map(|g| g.id).collect();
            if !others.is_empty() {
                catalogue.duplicates.push(DuplicateGroup {
                    name: kept.display_name.clone(),
                    kept: kept.id.clone(),
                    others,
                });
            }
            catalogue.names.insert(kept.id.clone(), kept.display_name.clone());
            catalogue.managed.insert(key, kept);
        }
        catalogue
    }

    /// The chosen group of a managed name (any case).
    pub fn group(&self, name: &str) -> Option<&ScimGroup> {
        self.managed.get(&name.trim().to_lowercase())
    }

    /// Whether this id was listed (chosen, duplicate or unmanaged).
    fn knows(&self, id: &ScimGroupId) -> bool {
        self.names.contains_key(id) || self.duplicates.iter().any(|d| d.others.contains(id))
    }

    /// Forgets duplicates that were deleted.
    fn drop_duplicates(&mut self, deleted: &[ScimGroupId]) {
        for duplicate in &mut self.duplicates {
            duplicate.others.retain(|id| !deleted.contains(id));
        }
        self.duplicates.retain(|d| !d.others.is_empty());
    }

    /// Whether a group with this name (any case) exists.
    pub fn has(&self, name: &str) -> bool {
        self.group(name).is_some() || self.names.values().any(|n| n.trim().eq_ignore_ascii_case(name.trim()))
    }

    /// Display names of every group that exists (chosen ones for managed names).
    pub fn existing(&self) -> BTreeSet<String> {
        self.names.values().cloned().collect()
    }

    pub fn managed_groups(&self) -> impl Iterator<Item = &ScimGroup> {
        self.managed.values()
    }

    /// Names of these groups; groups the catalogue does not know (created since it was
    /// read) count by the name the bridge sent, unless that is a managed name: a managed
    /// name means its chosen group only.
    fn names_of<'a>(&self, groups: impl Iterator<Item = (&'a str, Option<&'a str>)>) -> BTreeSet<String> {
        groups
            .filter_map(|(id, display)| match self.names.get(&ScimGroupId::new(id)) {
                Some(name) => Some(name.clone()),
                None => display.filter(|name| !self.wanted.contains(&name.trim().to_lowercase())).map(str::to_owned),
            })
            .collect()
    }
}

/// The catalogue cache and the probed strategy, shared by every invocation of a process.
pub struct ManagedGroups {
    names: BTreeSet<String>,
    ttl: Duration,
    /// Makes group creation single-flight across processes too (a lease in the ledger every
    /// Lambda instance shares); without one, only within the process.
    coordination: Option<(Arc<dyn Ledger>, String)>,
    /// Held across a whole refresh: concurrent invocations wait for one refresh instead of
    /// each creating the missing groups.
    cached: Mutex<Option<(Instant, Arc<Catalogue>)>>,
    strategy: SyncMutex<Option<MembershipStrategy>>,
}

impl ManagedGroups {
    pub fn new(names: BTreeSet<String>, ttl: Duration) -> Self {
        ManagedGroups { names, ttl, coordination: None, cached: Mutex::new(None), strategy: SyncMutex::new(None) }
    }

    /// Creations wait for a lease in `ledger`, so two Lambda instances never create the same
    /// group at the same moment (on a bridge that allows two groups with one name, both would).
    pub fn coordinated_by(mut self, ledger: Arc<dyn Ledger>) -> Self {
        let holder = format!("groups-{:016x}", rand::random::<u64>());
        self.coordination = Some((ledger, holder));
        self
    }

    /// The catalogue: cached for the TTL, else read afresh (without creating anything).
    pub async fn catalogue(&self, directory: &dyn Directory) -> Result<Arc<Catalogue>, ScimError> {
        let mut cached = self.cached.lock().await;
        if let Some((at, catalogue)) = cached.as_ref()
            && at.elapsed() < self.ttl
        {
            return Ok(catalogue.clone());
        }
        let catalogue = Arc::new(self.refresh(directory).await?);
        *cached = Some((Instant::now(), catalogue.clone()));
        Ok(catalogue)
    }

    /// A catalogue in which `name` exists: the cached one if it has it, else a fresh one
    /// after creating `name` and every other managed group the cached one lacks.
    pub async fn ensure(&self, directory: &dyn Directory, name: &str) -> Result<Arc<Catalogue>, ScimError> {
        let mut cached = self.cached.lock().await;
        let current = match cached.as_ref() {
            Some((_, catalogue)) if catalogue.group(name).is_some() => return Ok(catalogue.clone()),
            Some((_, catalogue)) => catalogue.clone(),
            None => Arc::new(Catalogue::resolve(directory.list_groups().await?, &self.names)),
        };
        let catalogue = Arc::new(self.create_missing_under_lease(directory, current, name).await?);
        *cached = Some((Instant::now(), catalogue.clone()));
        Ok(catalogue)
    }

    /// [`Self::create_missing`] holding the cross-process lease when there is one, from a
    /// listing read under the lease: another process may have created the groups meanwhile.
    async fn create_missing_under_lease(
        &self,
        directory: &dyn Directory,
        current: Arc<Catalogue>,
        name: &str,
    ) -> Result<Catalogue, ScimError> {
        let Some((ledger, holder)) = &self.coordination else {
            return self.create_missing(directory, &current, name).await;
        };
        let key = PersonKey::new(LEASE_SOURCE, LEASE_ID);
        let started = Instant::now();
        loop {
            let now = chrono::Utc::now();
            match ledger.try_lease(&key, holder, now + CREATION_LEASE, now).await {
                Ok(true) => break,
                Ok(false) if started.elapsed() < CREATION_WAIT => tokio::time::sleep(Duration::from_millis(100)).await,
                // Busy for long, or the ledger failing: the deterministic choice and the
                // clean-up in `create_missing` still keep one group per name.
                Ok(false) => break,
                Err(error) => {
                    tracing::warn!(%error, "group creation lease unavailable; creating without it");
                    break;
                }
            }
        }
        // Another process may have created the groups since `current` was read.
        drop(current);
        let current = Catalogue::resolve(directory.list_groups().await?, &self.names);
        let created = self.create_missing(directory, &current, name).await;
        if let Err(error) = ledger.release_lease(&key, holder).await {
            tracing::warn!(%error, "group creation lease not released; it lapses by itself");
        }
        created
    }

    /// Forgets the cached catalogue (a group deleted by hand): the next use reads afresh.
    pub async fn forget(&self) {
        *self.cached.lock().await = None;
    }

    /// The strategy probed so far (`None` before the first catalogue).
    pub fn strategy(&self) -> Option<MembershipStrategy> {
        *self.strategy.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn set_strategy(&self, strategy: MembershipStrategy) {
        let previous = self.strategy.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).replace(strategy);
        if previous == Some(strategy) {
            return;
        }
        let label: &'static str = strategy.into();
        metrics::gauge!("membership_strategy", "strategy" => label).set(1.0);
        match strategy {
            MembershipStrategy::Unknown => tracing::warn!(
                strategy = label,
                "the bridge shows group memberships nowhere (no user carries `groups`, the member filter is \
                 not answered, managed groups read by id show no members): group removals are refused until \
                 it does; probed again at the next catalogue refresh"
            ),
            _ => tracing::info!(strategy = label, "group memberships are read this way"),
        }
    }

    /// Lists and resolves (creating nothing); probes the strategy if it is not known yet.
    async fn refresh(&self, directory: &dyn Directory) -> Result<Catalogue, ScimError> {
        let catalogue = Catalogue::resolve(directory.list_groups().await?, &self.names);
        self.settle(directory, &catalogue).await?;
        Ok(catalogue)
    }

    /// Creates `name` and every managed group `current` lacks, then lists again: the
    /// listing, not the create's answer, decides which group a name means.
    async fn create_missing(
        &self,
        directory: &dyn Directory,
        current: &Catalogue,
        name: &str,
    ) -> Result<Catalogue, ScimError> {
        let mut wanted = self.names.clone();
        wanted.insert(name.to_owned());
        let mut created = Vec::new();
        for missing in wanted.iter().filter(|name| !current.has(name)) {
            match directory.create_group(missing).await {
                Ok(group) => created.push(group.id),
                // 409: someone else created it a moment ago; the listing shows it.
                Err(ScimError::Status { status: 409, .. }) => {}
                Err(other) => return Err(other),
            }
            tracing::info!(audit = true, operation = "create_group", group = %missing, "managed group ensured");
        }
        let mut catalogue = Catalogue::resolve(directory.list_groups().await?, &wanted);
        if let Some(name) = wanted.iter().find(|name| catalogue.group(name).is_none()) {
            let detail = format!("group {name:?} was created but is not listed");
            return Err(ScimError::Status { status: 404, scim_type: None, detail: Some(detail) });
        }
        // Another process created the same group a moment before ours, on a bridge that
        // allows two groups with one name: everyone uses the older one, so the one this
        // process just made (empty, new, used by nobody) is deleted again.
        let ours: Vec<ScimGroupId> = catalogue
            .duplicates
            .iter()
            .flat_map(|d| d.others.iter())
            .filter(|id| created.contains(id) && !current.knows(id))
            .cloned()
            .collect();
        for id in &ours {
            directory.delete_group(id).await?;
            tracing::info!(audit = true, operation = "delete_group", group_id = %id, "our duplicate of a group another process created at the same moment was deleted");
        }
        catalogue.drop_duplicates(&ours);
        self.settle(directory, &catalogue).await?;
        Ok(catalogue)
    }

    /// Reports duplicates of a fresh catalogue and probes the strategy if not known yet.
    async fn settle(&self, directory: &dyn Directory, catalogue: &Catalogue) -> Result<(), ScimError> {
        for duplicate in &catalogue.duplicates {
            metrics::counter!("duplicate_groups").increment(duplicate.others.len() as u64);
            tracing::warn!(
                group = %duplicate.name,
                kept = %duplicate.kept,
                others = ?duplicate.others.iter().map(ScimGroupId::as_str).collect::<Vec<_>>(),
                "several groups share a managed name: the oldest is used; delete or rename the others"
            );
        }
        if matches!(self.strategy(), None | Some(MembershipStrategy::Unknown)) {
            self.set_strategy(probe(directory, catalogue).await?);
        }
        Ok(())
    }

    /// The groups `user` is in, by the probed strategy. A user resource that carries
    /// `groups` proves the cheapest strategy works, whatever the probe found.
    pub async fn membership(
        &self,
        directory: &dyn Directory,
        catalogue: &Catalogue,
        user: &ScimUser,
    ) -> Result<Membership, ScimError> {
        if user.groups.is_some() && self.strategy() != Some(MembershipStrategy::UserGroups) {
            self.set_strategy(MembershipStrategy::UserGroups);
        }
        match self.strategy().unwrap_or(MembershipStrategy::Unknown) {
            MembershipStrategy::UserGroups => {
                let refs = user.groups.iter().flatten();
                Ok(Membership::Known(catalogue.names_of(refs.map(|r| (r.value.as_str(), r.display.as_deref())))))
            }
            MembershipStrategy::MemberFilter => match directory.groups_with_member(&user.id).await? {
                Some(groups) => {
                    let named = groups.iter().map(|g| (g.id.as_str(), Some(g.display_name.as_str())));
                    Ok(Membership::Known(catalogue.names_of(named)))
                }
                None => {
                    tracing::warn!("the member filter stopped answering; reading the managed groups instead");
                    self.set_strategy(MembershipStrategy::ManagedGroupReads);
                    Ok(Membership::Known(managed_group_reads(directory, catalogue, &user.id).await?.0))
                }
            },
            MembershipStrategy::ManagedGroupReads => {
                let (names, _) = managed_group_reads(directory, catalogue, &user.id).await?;
                Ok(Membership::Known(names))
            }
            // Empty groups show no members on many servers, so on a fresh account nothing
            // could be seen at start-up: the managed groups are read again, and the first
            // that shows members settles it.
            MembershipStrategy::Unknown => match managed_group_reads(directory, catalogue, &user.id).await? {
                (names, true) => {
                    self.set_strategy(MembershipStrategy::ManagedGroupReads);
                    Ok(Membership::Known(names))
                }
                (_, false) => Ok(Membership::Unknown),
            },
        }
    }
}

/// Which managed groups list `user` among their members, one read each, and whether any
/// read showed members at all.
async fn managed_group_reads(
    directory: &dyn Directory,
    catalogue: &Catalogue,
    user: &ScimUserId,
) -> Result<(BTreeSet<String>, bool), ScimError> {
    let (mut names, mut shown) = (BTreeSet::new(), false);
    for group in catalogue.managed_groups() {
        let Some(read) = directory.get_group(&group.id).await? else { continue };
        shown |= read.members.is_some();
        if read.has_member(user) == Some(true) {
            names.insert(group.display_name.clone());
        }
    }
    Ok((names, shown))
}

/// An id no user has: a member filter that answers it with any group ignores the filter.
const PROBE_USER: &str = "membership-probe-no-such-user";

/// How this bridge shows memberships, cheapest first: a user listed with `groups`; a member
/// filter that answers an unknown user with no group; a managed group read by id that
/// shows `members`.
async fn probe(directory: &dyn Directory, catalogue: &Catalogue) -> Result<MembershipStrategy, ScimError> {
    let sample = directory.list_users(1, 20).await?;
    if sample.resources.iter().any(|user| user.groups.is_some()) {
        return Ok(MembershipStrategy::UserGroups);
    }
    match directory.groups_with_member(&ScimUserId::new(PROBE_USER)).await? {
        Some(groups) if groups.is_empty() => return Ok(MembershipStrategy::MemberFilter),
        Some(_) => {
            tracing::warn!("the bridge ignores the member filter (it answered groups for a user that is none's)")
        }
        None => {}
    }
    for group in catalogue.managed_groups() {
        if directory.get_group(&group.id).await?.is_some_and(|g| g.members.is_some()) {
            return Ok(MembershipStrategy::ManagedGroupReads);
        }
    }
    Ok(MembershipStrategy::Unknown)
}

#[cfg(test)]
mod tests;
