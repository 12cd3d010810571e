//! The `invite-retry` function: re-issues invitations that were never accepted.

use serde::Serialize;

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct RunSummary {
    pub checked: usize,
    pub accepted: usize,
    pub reinvited: usize,
    pub escalated: usize,
    pub skipped: usize,
}

#[derive(Clone, Default)]
pub struct InviteRetryApp {}

impl InviteRetryApp {
    pub async fn handle(&self) -> RunSummary {
        RunSummary::default()
    }
}
