//! The 1Password SCIM bridge: typed resources, the [`Directory`] port the worker and
//! invite-retry use, and its HTTP implementation [`ScimClient`].

mod client;
#[cfg(any(test, feature = "test-support"))]
pub mod conformance;
mod credentials;
mod memory;
mod types;

pub use client::{BridgeCredentials, CredentialProvider, ScimClient, ScimClientConfig, StaticCredentials};
pub use credentials::{SecretCredentials, WorkerSecret};
pub use memory::{DirectoryCall, DirectoryOp, DuplicateGroups, InMemoryDirectory, TwinBehaviour};
pub use types::*;

use async_trait::async_trait;

#[derive(Debug, thiserror::Error)]
pub enum ScimError {
    #[error("bridge URL must use https (set ALLOW_HTTP_BRIDGE=true only for local testing)")]
    InsecureUrl,
    #[error("bridge URL is invalid: {0}")]
    InvalidUrl(String),
    #[error("bridge rejected the bearer token (401), even after refreshing it from the secret")]
    Unauthorized,
    #[error("bridge answered {status}{}{}", .scim_type.as_deref().map(|t| format!(" ({t})")).unwrap_or_default(), .detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    Status { status: u16, scim_type: Option<String>, detail: Option<String> },
    #[error("bridge unreachable: {0}")]
    Transport(String),
    #[error("bridge answered something we could not read: {0}")]
    Decode(String),
    #[error(transparent)]
    GaveUp(#[from] crate::http_retry::GaveUp),
    #[error("bridge credentials unavailable: {0}")]
    Credentials(String),
}

impl ScimError {
    pub fn status(&self) -> Option<u16> {
        match self {
            ScimError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// What creating a user led to.
#[derive(Debug, Clone, PartialEq, Eq)]
#[expect(clippy::large_enum_variant, reason = "one per create call, moved straight into the plan's result")]
pub enum CreateOutcome {
    Created(ScimUser),
    /// 409: someone with this userName exists already (adopt them).
    Conflict,
}

/// The 1Password side, as the planner and applier need it.
#[async_trait]
pub trait Directory: Send + Sync {
    /// This directory with every call bounded by `deadline` (the invocation's). A directory
    /// without I/O has nothing to bound and returns itself.
    fn until(self: std::sync::Arc<Self>, deadline: std::time::Instant) -> std::sync::Arc<dyn Directory>;
    /// The user with this externalId or, failing that, this userName, in one request
    /// (`externalId eq … or userName eq …`): the externalId match wins.
    async fn find_user(&self, external_id: &str, user_name: Option<&str>) -> Result<Option<ScimUser>, ScimError>;
    async fn find_user_by_user_name(&self, user_name: &str) -> Result<Option<ScimUser>, ScimError>;
    async fn get_user(&self, id: &ScimUserId) -> Result<Option<ScimUser>, ScimError>;
    async fn create_user(&self, user: &NewUser) -> Result<CreateOutcome, ScimError>;
    async fn patch_user(&self, id: &ScimUserId, operations: Vec<PatchOperation>) -> Result<(), ScimError>;
    async fn delete_user(&self, id: &ScimUserId) -> Result<(), ScimError>;
    /// One page of users, `start_index` counting from 1.
    async fn list_users(&self, start_index: usize, count: usize) -> Result<ListResponse<ScimUser>, ScimError>;
    /// Every group, without members (`excludedAttributes=members`): the catalogue. The
    /// answer is the same size whether the account has 100 users or 100,000.
    async fn list_groups(&self) -> Result<Vec<ScimGroup>, ScimError>;
    /// One group as the bridge shows it by id: with `members` when it sends them.
    async fn get_group(&self, id: &ScimGroupId) -> Result<Option<ScimGroup>, ScimError>;
    /// The groups `user` is a member of, asked with `members[value eq …]`. `None` when the
    /// bridge cannot answer that filter: it rejected it, or its answer contradicts it.
    async fn groups_with_member(&self, user: &ScimUserId) -> Result<Option<Vec<ScimGroup>>, ScimError>;
    async fn create_group(&self, display_name: &str) -> Result<ScimGroup, ScimError>;
    /// Deletes a group (only ever one this process just created as a duplicate).
    async fn delete_group(&self, id: &ScimGroupId) -> Result<(), ScimError>;
    async fn patch_group(&self, id: &ScimGroupId, operations: Vec<PatchOperation>) -> Result<(), ScimError>;
}
