//! The in-memory twin of the 1Password SCIM bridge, for unit tests and the local stack. It
//! behaves like the simulator's defaults (tests/onepassword-sim): userName unique and
//! case-insensitive (409 → [`CreateOutcome::Conflict`]), `externalId` kept and matched
//! exactly, `DELETE` suspends instead of deleting (docs/invite-retry.md). Where real bridges
//! differ or nobody knows (a duplicate group name, where memberships show) it follows a
//! [`TwinBehaviour`]; the default shows memberships everywhere and answers 409 to a
//! duplicate group name. It passes the `scim::conformance` suite, like the simulator and
//! scim2-server do over HTTP.
//!
//! Test hooks: [`InMemoryDirectory::fail_next`] makes the next call of an operation fail,
//! [`InMemoryDirectory::before_next`] runs a closure just before the next call of an
//! operation (another invocation racing ours, a human in the admin console), and
//! [`InMemoryDirectory::calls`] is the log of every call made through [`Directory`].

use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;

use super::{
    CreateOutcome, Directory, ListResponse, NewUser, PatchOperation, ResourceRef, ScimEmail, ScimError, ScimGroup,
    ScimGroupId, ScimMeta, ScimName, ScimUser, ScimUserId,
};

/// How the twin answers where bridges differ (docs/external-facts.md, "Groups and
/// memberships").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TwinBehaviour {
    /// Users carry the `groups` they are in (omitted when none, as RFC 7643 servers do).
    pub user_groups: bool,
    /// `members[value eq …]` group filters are answered.
    pub member_filter: bool,
    /// `GET /Groups/{id}` shows `members`.
    pub members_on_get: bool,
    pub duplicate_groups: DuplicateGroups,
}

impl Default for TwinBehaviour {
    fn default() -> Self {
        TwinBehaviour {
            user_groups: true,
            member_filter: true,
            members_on_get: true,
            duplicate_groups: DuplicateGroups::Conflict,
        }
    }
}

impl TwinBehaviour {
    /// A bridge that shows memberships nowhere.
    pub fn no_memberships() -> Self {
        TwinBehaviour { user_groups: false, member_filter: false, members_on_get: false, ..Self::default() }
    }
}

/// What creating a group whose name is taken (in any case) does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DuplicateGroups {
    /// 409 `uniqueness`.
    Conflict,
    /// A second group with the same name.
    Allow,
    /// The existing group, as if created.
    ReturnExisting,
}

/// The [`Directory`] methods, to aim faults and hooks at and to read the call log by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DirectoryOp {
    FindUser,
    FindUserByUserName,
    GetUser,
    CreateUser,
    PatchUser,
    DeleteUser,
    ListUsers,
    ListGroups,
    GetGroup,
    GroupsWithMember,
    CreateGroup,
    DeleteGroup,
    PatchGroup,
}

impl DirectoryOp {
    /// Whether the operation changes the account.
    pub fn is_write(self) -> bool {
        matches!(
            self,
            DirectoryOp::CreateUser
                | DirectoryOp::PatchUser
                | DirectoryOp::DeleteUser
                | DirectoryOp::CreateGroup
                | DirectoryOp::DeleteGroup
                | DirectoryOp::PatchGroup
        )
    }
}

/// One call made through [`Directory`], failed ones included.
#[derive(Debug, Clone, PartialEq)]
pub struct DirectoryCall {
    pub op: DirectoryOp,
    /// What the call named: the user or group id, the userName, the group's displayName, or
    /// for `find_user` the externalId (and ` | userName` when one was given).
    pub target: String,
    /// The PATCH operations of `patch_user` / `patch_group`; empty otherwise.
    pub operations: Vec<PatchOperation>,
}

impl DirectoryCall {
    pub fn is_write(&self) -> bool {
        self.op.is_write()
    }
}

type Hook = Box<dyn FnOnce(&InMemoryDirectory, &DirectoryCall) + Send>;

#[derive(Default)]
struct State {
    behaviour: TwinBehaviour,
    /// In creation order; a user's `groups` is always `None` here (derived on read).
    users: Vec<ScimUser>,
    /// In creation order, `members` always `Some`.
    groups: Vec<ScimGroup>,
    next_id: u64,
    calls: Vec<DirectoryCall>,
    failures: Vec<(DirectoryOp, ScimError)>,
    hooks: Vec<(DirectoryOp, Hook)>,
}

impl State {
    fn new_id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}-{:04}", self.next_id)
    }

    /// The user as the bridge shows it: with the groups they are in, when it shows them.
    fn view(&self, user: &ScimUser) -> ScimUser {
        let groups: Vec<ResourceRef> = self
            .groups
            .iter()
            .filter(|g| g.has_member(&user.id) == Some(true))
            .map(|g| ResourceRef { value: g.id.to_string(), display: Some(g.display_name.clone()) })
            .collect();
        let groups = (self.behaviour.user_groups && !groups.is_empty()).then_some(groups);
        ScimUser { groups, ..user.clone() }
    }

    fn new_group(&mut self, display_name: &str, members: Vec<ResourceRef>) -> ScimGroup {
        let id = self.new_id("group");
        // Creation times one second apart, in creation order.
        let created = chrono::DateTime::UNIX_EPOCH + chrono::Duration::seconds(1_800_000_000 + self.next_id as i64);
        let group = ScimGroup {
            id: ScimGroupId::new(id),
            display_name: display_name.to_owned(),
            members: Some(members),
            meta: Some(ScimMeta { created: Some(created.to_rfc3339()) }),
        };
        self.groups.push(group.clone());
        group
    }

    fn user_index(&self, id: &ScimUserId) -> Result<usize, ScimError> {
        self.users.iter().position(|u| &u.id == id).ok_or_else(|| not_found("user", id.as_str()))
    }

    fn group_index(&self, id: &ScimGroupId) -> Result<usize, ScimError> {
        self.groups.iter().position(|g| &g.id == id).ok_or_else(|| not_found("group", id.as_str()))
    }
}

/// The 1Password twin. Clones share one account.
#[derive(Clone, Default)]
pub struct InMemoryDirectory {
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for InMemoryDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.state();
        f.debug_struct("InMemoryDirectory")
            .field("users", &state.users.len())
            .field("groups", &state.groups.len())
            .field("calls", &state.calls.len())
            .finish()
    }
}

impl InMemoryDirectory {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_behaviour(behaviour: TwinBehaviour) -> Self {
        let directory = Self::default();
        directory.state().behaviour = behaviour;
        directory
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Every change is applied to a copy and committed last, so a poisoned lock still
        // guards consistent data.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    // ----- seeding and inspection (no call is logged, nothing is checked) ---------------

    /// Adds a user as is (a person invited by hand, say); an empty `id` gets a generated one.
    /// `groups` is ignored: membership lives on the groups ([`Self::insert_group`]).
    pub fn insert_user(&self, mut user: ScimUser) -> ScimUser {
        let mut state = self.state();
        if user.id.as_str().is_empty() {
            user.id = ScimUserId::new(state.new_id("user"));
        }
        user.groups = None;
        state.users.push(user.clone());
        user
    }

    /// Adds a group with these member ids.
    pub fn insert_group(&self, display_name: &str, member_ids: &[&str]) -> ScimGroup {
        self.state().new_group(display_name, member_ids.iter().map(|id| ResourceRef::to(*id)).collect())
    }

    /// Deletes a group, as an administrator can in the 1Password console.
    pub fn remove_group(&self, id: &ScimGroupId) -> Option<ScimGroup> {
        let mut state = self.state();
        let index = state.groups.iter().position(|g| &g.id == id)?;
        Some(state.groups.remove(index))
    }

    /// Every user, in creation order, with their groups.
    pub fn users(&self) -> Vec<ScimUser> {
        let state = self.state();
        state.users.iter().map(|u| state.view(u)).collect()
    }

    /// Every group, in creation order, with its members.
    pub fn groups(&self) -> Vec<ScimGroup> {
        self.state().groups.clone()
    }

    /// Every call made through [`Directory`] so far, oldest first.
    pub fn calls(&self) -> Vec<DirectoryCall> {
        self.state().calls.clone()
    }

    pub fn clear_calls(&self) {
        self.state().calls.clear();
    }

    // ----- faults and races ---------------------------------------------------------------

    /// The next call of `op` fails with `error` (after being logged, before changing
    /// anything). Queued failures for the same operation apply one per call, in order.
    pub fn fail_next(&self, op: DirectoryOp, error: ScimError) {
        self.state().failures.push((op, error));
    }

    /// Runs `hook` just before the next call of `op` does anything (it is not logged yet):
    /// what another invocation or a human did a moment before ours. The hook gets the
    /// directory (seed it, remove a group) and the call about to be made.
    pub fn before_next(&self, op: DirectoryOp, hook: impl FnOnce(&InMemoryDirectory, &DirectoryCall) + Send + 'static) {
        self.state().hooks.push((op, Box::new(hook)));
    }

    /// Hook, log, injected failure: the prologue of every [`Directory`] method.
    fn begin(&self, op: DirectoryOp, target: String, operations: &[PatchOperation]) -> Result<(), ScimError> {
        let call = DirectoryCall { op, target, operations: operations.to_vec() };
        let hook = {
            let mut state = self.state();
            state.hooks.iter().position(|(o, _)| *o == op).map(|i| state.hooks.remove(i).1)
        };
        // Outside the lock: the hook uses the directory.
        if let Some(hook) = hook {
            hook(self, &call);
        }
        let mut state = self.state();
        state.calls.push(call);
        match state.failures.iter().position(|(o, _)| *o == op) {
            Some(i) => Err(state.failures.remove(i).1),
            None => Ok(()),
        }
    }
}

fn status(status: u16, scim_type: Option<&str>, detail: String) -> ScimError {
    ScimError::Status { status, scim_type: scim_type.map(str::to_owned), detail: Some(detail) }
}

fn not_found(kind: &str, id: &str) -> ScimError {
    status(404, None, format!("{kind} {id} not found"))
}

fn invalid_path(path: &str, op: &str, resource: &str) -> ScimError {
    status(400, Some("invalidPath"), format!("InMemoryDirectory does not model {op} of {path:?} on {resource}"))
}

fn same_name(a: &str, b: &str) -> bool {
    a.trim().to_lowercase() == b.trim().to_lowercase()
}

fn value_as<T: serde::de::DeserializeOwned>(op: &PatchOperation) -> Result<T, ScimError> {
    let value = op.value.clone().unwrap_or_default();
    serde_json::from_value(value.clone())
        .map_err(|e| status(400, Some("invalidValue"), format!("bad value {value} for {:?}: {e}", op.path)))
}

fn apply_user_patch(user: &mut ScimUser, op: &PatchOperation) -> Result<(), ScimError> {
    let path = op.path.as_deref().unwrap_or_default();
    if !op.op.eq_ignore_ascii_case("replace") {
        return Err(invalid_path(path, op.op, "a user"));
    }
    match path.to_ascii_lowercase().as_str() {
        "active" => user.active = value_as(op)?,
        "username" => {
            let user_name: String = value_as(op)?;
            if user_name.trim().is_empty() {
                return Err(status(400, Some("invalidValue"), "userName must not be empty".into()));
            }
            user.user_name = user_name.trim().to_owned();
        }
        "displayname" => user.display_name = Some(value_as(op)?),
        "name" => user.name = Some(value_as(op)?),
        "name.givenname" => name_of(user).given_name = Some(value_as(op)?),
        "name.familyname" => name_of(user).family_name = Some(value_as(op)?),
        "name.formatted" => name_of(user).formatted = Some(value_as(op)?),
        "emails" => user.emails = value_as::<Vec<ScimEmail>>(op)?,
        _ => return Err(invalid_path(path, op.op, "a user")),
    }
    Ok(())
}

fn name_of(user: &mut ScimUser) -> &mut ScimName {
    user.name.get_or_insert_with(ScimName::default)
}

/// The member id in `members[value eq "ID"]`.
fn member_filter(path: &str) -> Option<String> {
    let quoted = path.strip_prefix("members[value eq ")?.strip_suffix(']')?;
    serde_json::from_str(quoted.trim()).ok()
}

fn apply_group_patch(state: &State, group: &mut ScimGroup, op: &PatchOperation) -> Result<(), ScimError> {
    let path = op.path.as_deref().unwrap_or_default();
    let listed = || -> Result<Vec<String>, ScimError> {
        let refs: Vec<ResourceRef> = value_as(op)?;
        refs.into_iter()
            .map(|r| match state.users.iter().any(|u| u.id == r.value) {
                true => Ok(r.value),
                // As on the bridge: members must be users.
                false => Err(status(400, Some("invalidValue"), format!("member {} is not a user", r.value))),
            })
            .collect()
    };
    let verb = op.op.to_ascii_lowercase();
    match (verb.as_str(), path) {
        ("add", "members") => {
            let members = group.members.get_or_insert_with(Vec::new);
            for id in listed()? {
                if !members.iter().any(|m| m.value == id) {
                    members.push(ResourceRef::to(id));
                }
            }
        }
        ("replace", "members") => {
            group.members = Some(listed()?.into_iter().map(ResourceRef::to).collect());
        }
        ("remove", "members") if op.value.is_none() => group.members = Some(Vec::new()),
        ("remove", "members") => {
            let gone = listed()?;
            group.members.get_or_insert_with(Vec::new).retain(|m| !gone.contains(&m.value));
        }
        ("remove", filtered) if let Some(gone) = member_filter(filtered) => {
            group.members.get_or_insert_with(Vec::new).retain(|m| m.value != gone);
        }
        ("replace", "displayName") => {
            let name: String = value_as(op)?;
            if state.groups.iter().any(|g| g.id != group.id && same_name(&g.display_name, &name)) {
                return Err(status(409, Some("uniqueness"), format!("a group named {name} already exists")));
            }
            group.display_name = name.trim().to_owned();
        }
        _ => return Err(invalid_path(path, op.op, "a group")),
    }
    Ok(())
}

#[async_trait]
impl Directory for InMemoryDirectory {
    /// No I/O, nothing to bound.
    fn until(self: Arc<Self>, _deadline: std::time::Instant) -> Arc<dyn Directory> {
        self
    }

    async fn find_user(&self, external_id: &str, user_name: Option<&str>) -> Result<Option<ScimUser>, ScimError> {
        let target = match user_name {
            Some(name) => format!("{external_id} | {name}"),
            None => external_id.to_owned(),
        };
        self.begin(DirectoryOp::FindUser, target, &[])?;
        let state = self.state();
        // One `externalId eq … or userName eq …` query; the externalId match wins.
        let found = state
            .users
            .iter()
            .find(|u| u.external_id.as_deref() == Some(external_id))
            .or_else(|| user_name.and_then(|name| state.users.iter().find(|u| same_name(&u.user_name, name))));
        Ok(found.map(|u| state.view(u)))
    }

    async fn find_user_by_user_name(&self, user_name: &str) -> Result<Option<ScimUser>, ScimError> {
        self.begin(DirectoryOp::FindUserByUserName, user_name.to_owned(), &[])?;
        let state = self.state();
        Ok(state.users.iter().find(|u| same_name(&u.user_name, user_name)).map(|u| state.view(u)))
    }

    async fn get_user(&self, id: &ScimUserId) -> Result<Option<ScimUser>, ScimError> {
        self.begin(DirectoryOp::GetUser, id.to_string(), &[])?;
        let state = self.state();
        Ok(state.users.iter().find(|u| &u.id == id).map(|u| state.view(u)))
    }

    async fn create_user(&self, user: &NewUser) -> Result<CreateOutcome, ScimError> {
        self.begin(DirectoryOp::CreateUser, user.user_name.clone(), &[])?;
        let mut state = self.state();
        let user_name = user.user_name.trim();
        if user_name.is_empty() {
            return Err(status(400, Some("invalidValue"), "userName is required".into()));
        }
        if state.users.iter().any(|u| same_name(&u.user_name, user_name)) {
            return Ok(CreateOutcome::Conflict);
        }
        let created = ScimUser {
            id: ScimUserId::new(state.new_id("user")),
            user_name: user_name.to_owned(),
            external_id: Some(user.external_id.clone()),
            active: user.active,
            name: Some(user.name.clone()),
            display_name: Some(user.display_name.clone()),
            emails: user.emails.clone(),
            groups: None,
        };
        state.users.push(created.clone());
        Ok(CreateOutcome::Created(created))
    }

    /// All or nothing; only `replace` of the attributes the worker changes is modelled (any
    /// other operation answers 400, so a test notices what the twin does not know).
    async fn patch_user(&self, id: &ScimUserId, operations: Vec<PatchOperation>) -> Result<(), ScimError> {
        self.begin(DirectoryOp::PatchUser, id.to_string(), &operations)?;
        let mut state = self.state();
        let index = state.user_index(id)?;
        let mut user = state.users[index].clone();
        for op in &operations {
            apply_user_patch(&mut user, op)?;
        }
        if state.users.iter().any(|u| &u.id != id && same_name(&u.user_name, &user.user_name)) {
            return Err(status(409, Some("uniqueness"), format!("userName {} is taken", user.user_name)));
        }
        state.users[index] = user;
        Ok(())
    }

    /// Suspends, like the 1Password bridge: the user stays listed with `active: false`. An
    /// unknown id is not an error (the bridge's 404 reads as "gone already").
    async fn delete_user(&self, id: &ScimUserId) -> Result<(), ScimError> {
        self.begin(DirectoryOp::DeleteUser, id.to_string(), &[])?;
        if let Some(user) = self.state().users.iter_mut().find(|u| &u.id == id) {
            user.active = false;
        }
        Ok(())
    }

    async fn list_users(&self, start_index: usize, count: usize) -> Result<ListResponse<ScimUser>, ScimError> {
        self.begin(DirectoryOp::ListUsers, format!("{start_index}+{count}"), &[])?;
        let state = self.state();
        let resources = state.users.iter().skip(start_index.max(1) - 1).take(count).map(|u| state.view(u)).collect();
        Ok(ListResponse { total_results: state.users.len(), resources })
    }

    /// Without members, as asked.
    async fn list_groups(&self) -> Result<Vec<ScimGroup>, ScimError> {
        self.begin(DirectoryOp::ListGroups, String::new(), &[])?;
        Ok(self.groups().into_iter().map(|group| ScimGroup { members: None, ..group }).collect())
    }

    async fn get_group(&self, id: &ScimGroupId) -> Result<Option<ScimGroup>, ScimError> {
        self.begin(DirectoryOp::GetGroup, id.to_string(), &[])?;
        let state = self.state();
        let shown = |g: &ScimGroup| match state.behaviour.members_on_get {
            true => g.clone(),
            false => ScimGroup { members: None, ..g.clone() },
        };
        Ok(state.groups.iter().find(|g| &g.id == id).map(shown))
    }

    async fn groups_with_member(&self, user: &ScimUserId) -> Result<Option<Vec<ScimGroup>>, ScimError> {
        self.begin(DirectoryOp::GroupsWithMember, user.to_string(), &[])?;
        let state = self.state();
        if !state.behaviour.member_filter {
            return Ok(None);
        }
        let with_user = state.groups.iter().filter(|g| g.has_member(user) == Some(true));
        Ok(Some(with_user.map(|g| ScimGroup { members: None, ..g.clone() }).collect()))
    }

    async fn create_group(&self, display_name: &str) -> Result<ScimGroup, ScimError> {
        self.begin(DirectoryOp::CreateGroup, display_name.to_owned(), &[])?;
        let mut state = self.state();
        let name = display_name.trim();
        if name.is_empty() {
            return Err(status(400, Some("invalidValue"), "displayName is required".into()));
        }
        if let Some(existing) = state.groups.iter().find(|g| same_name(&g.display_name, name)) {
            match state.behaviour.duplicate_groups {
                DuplicateGroups::Conflict => {
                    return Err(status(409, Some("uniqueness"), format!("a group named {name} already exists")));
                }
                DuplicateGroups::ReturnExisting => return Ok(ScimGroup { members: None, ..existing.clone() }),
                DuplicateGroups::Allow => {}
            }
        }
        Ok(state.new_group(name, Vec::new()))
    }

    async fn delete_group(&self, id: &ScimGroupId) -> Result<(), ScimError> {
        self.begin(DirectoryOp::DeleteGroup, id.to_string(), &[])?;
        self.state().groups.retain(|g| &g.id != id);
        Ok(())
    }

    /// All or nothing: `add`/`replace`/`remove` of `members`, `remove` of
    /// `members[value eq "…"]`, `replace` of `displayName`.
    async fn patch_group(&self, id: &ScimGroupId, operations: Vec<PatchOperation>) -> Result<(), ScimError> {
        self.begin(DirectoryOp::PatchGroup, id.to_string(), &operations)?;
        let mut state = self.state();
        let index = state.group_index(id)?;
        let mut group = state.groups[index].clone();
        for op in &operations {
            apply_group_patch(&state, &mut group, op)?;
        }
        state.groups[index] = group;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ada() -> NewUser {
        NewUser::new("ada@example.com", "hr:1", "Ada", "Lovelace", "Ada Lovelace")
    }

    #[tokio::test]
    async fn passes_the_directory_conformance_suite() {
        let failures = crate::scim::conformance::run_except(
            // 1Password's DELETE suspends (docs/invite-retry.md); the twin does the same.
            &["deleted user is gone"],
            || async { Box::new(InMemoryDirectory::new()) as Box<dyn Directory> },
        )
        .await;
        assert!(failures.is_empty(), "conformance failures:\n{}", failures.join("\n"));
    }

    #[tokio::test]
    async fn calls_are_logged_and_an_injected_failure_hits_only_the_next_call() {
        let directory = InMemoryDirectory::new();
        directory.fail_next(DirectoryOp::CreateUser, status(503, None, "down".into()));
        let first = directory.create_user(&ada()).await;
        assert!(matches!(first, Err(ScimError::Status { status: 503, .. })), "{first:?}");
        assert!(directory.users().is_empty(), "a failed call changes nothing");
        assert!(matches!(directory.create_user(&ada()).await, Ok(CreateOutcome::Created(_))));

        let ops: Vec<(DirectoryOp, String)> = directory.calls().into_iter().map(|c| (c.op, c.target)).collect();
        assert_eq!(
            ops,
            vec![
                (DirectoryOp::CreateUser, "ada@example.com".to_owned()),
                (DirectoryOp::CreateUser, "ada@example.com".to_owned())
            ]
        );
        directory.clear_calls();
        assert!(directory.calls().is_empty());
    }

    #[tokio::test]
    async fn a_hook_runs_once_just_before_the_call_and_sees_it() {
        let directory = InMemoryDirectory::new();
        // Another invocation creates the group we are about to create.
        directory.before_next(DirectoryOp::CreateGroup, |d, call| {
            d.insert_group(&call.target, &[]);
        });
        let raced = directory.create_group("Engineering").await;
        assert!(matches!(raced, Err(ScimError::Status { status: 409, .. })), "{raced:?}");
        assert_eq!(directory.groups().len(), 1);
        // Spent: the next create goes through.
        assert!(directory.create_group("Finance").await.is_ok());
        assert_eq!(directory.groups().len(), 2);
    }

    #[tokio::test]
    async fn patches_are_all_or_nothing_and_unmodelled_ones_are_refused() {
        let directory = InMemoryDirectory::new();
        let CreateOutcome::Created(user) = directory.create_user(&ada()).await.unwrap() else { panic!("created") };
        let result = directory
            .patch_user(
                &user.id,
                vec![
                    PatchOperation::replace("active", false.into()),
                    PatchOperation::replace("title", "Countess".into()),
                ],
            )
            .await;
        assert!(matches!(result, Err(ScimError::Status { status: 400, .. })), "{result:?}");
        assert!(directory.users()[0].active, "the first operation was not kept");

        let group = directory.insert_group("Engineering", &[]);
        let result = directory.patch_group(&group.id, vec![PatchOperation::add_members(&["not-a-user".into()])]).await;
        assert!(matches!(result, Err(ScimError::Status { status: 400, .. })), "{result:?}");
    }

    #[tokio::test]
    async fn delete_suspends_and_users_show_their_groups() {
        let directory = InMemoryDirectory::new();
        let CreateOutcome::Created(user) = directory.create_user(&ada()).await.unwrap() else { panic!("created") };
        let group = directory.insert_group("Engineering", &[user.id.as_str()]);
        directory.delete_user(&user.id).await.unwrap();
        let after = directory.get_user(&user.id).await.unwrap().expect("still listed");
        assert!(!after.active);
        assert_eq!(
            after.groups,
            Some(vec![ResourceRef { value: group.id.to_string(), display: Some("Engineering".into()) }])
        );
        directory.delete_user(&"no-such-user".into()).await.unwrap();
    }
}
