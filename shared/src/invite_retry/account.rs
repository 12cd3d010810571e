//! Whose sign-ins these are. The Events API token and the SCIM bridge are configured
//! separately; sign-ins of another 1Password account would make invite-retry treat everyone
//! here as never having accepted, and suspend (toggle) people who use their accounts. The
//! bridge does not say which account it serves, so the operator states it
//! (`EVENTS_API_ACCOUNT_UUID`) and each run compares it with what the token introspects as.

use std::time::Instant;

use crate::events_api::{EventsApiError, SignInEvents};

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error(
        "the Events API token belongs to 1Password account {actual}, but EVENTS_API_ACCOUNT_UUID (the bridge's \
         account) is {expected}: nobody is re-invited this run"
    )]
    Mismatch { expected: String, actual: String },
    #[error(
        "cannot confirm that the Events API token belongs to 1Password account {expected} \
         (EVENTS_API_ACCOUNT_UUID): {source}; nobody is re-invited this run"
    )]
    Unconfirmed { expected: String, source: EventsApiError },
}

impl AccountError {
    pub fn is_unauthorized(&self) -> bool {
        matches!(self, AccountError::Unconfirmed { source: EventsApiError::Unauthorized, .. })
    }
}

/// With `expected` set, the token must introspect as that account (case ignored); without
/// it, the token's account is logged so an operator can compare it and set the variable.
pub async fn check_account(
    events: &dyn SignInEvents,
    expected: Option<&str>,
    deadline: Instant,
) -> Result<(), AccountError> {
    let introspected = events.introspect(deadline).await;
    let Some(expected) = expected else {
        match introspected {
            Ok(info) => tracing::info!(
                events_account_uuid = info.account_uuid.as_deref().unwrap_or("(not reported)"),
                "the Events API token belongs to this 1Password account; \
                 set EVENTS_API_ACCOUNT_UUID to the bridge's account to enforce it"
            ),
            // Reading the sign-ins reports a real failure soon enough; this line is a courtesy.
            Err(error) => tracing::warn!(%error, "cannot introspect the Events API token; its account is unknown"),
        }
        return Ok(());
    };
    let expected = expected.to_owned();
    let info = introspected.map_err(|source| AccountError::Unconfirmed { expected: expected.clone(), source })?;
    match info.account_uuid.as_deref().map(str::trim) {
        Some(actual) if actual.eq_ignore_ascii_case(&expected) => {
            tracing::info!(
                events_account_uuid = actual,
                "the Events API token belongs to the expected 1Password account"
            );
            Ok(())
        }
        actual => Err(AccountError::Mismatch { expected, actual: actual.unwrap_or("(not reported)").to_owned() }),
    }
}
