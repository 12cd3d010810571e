use thiserror::Error;

/// Why the simulated account refused an operation. The HTTP layers map these onto SCIM or
/// control-API errors.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SimError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Uniqueness(String),
    #[error("the group {0:?} is protected and cannot be managed through provisioning")]
    ProtectedGroup(String),
    #[error("{0}")]
    InvalidValue(String),
    #[error("{0}")]
    Mutability(String),
    #[error("the e-mail of suspended user {0} cannot be changed; reactivate the user first")]
    SuspendedEmailChange(String),
    #[error("user {user} cannot accept an invitation: {reason}")]
    NotInvited { user: String, reason: String },
    #[error("the invitation of user {0} has expired")]
    InvitationExpired(String),
}
