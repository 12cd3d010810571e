//! The `invite-retry` function: finds invitations that were never accepted and re-issues
//! them a bounded number of times, then tells a human.
//!
//! The SCIM bridge shows an invited person as `active: true`, exactly like one who accepted,
//! so the truth comes from the ledger (whom we invited, when) and the 1Password Events API
//! (who has since signed in). One run:
//!
//! 1. reads new sign-ins since the stored cursor and marks matching invitations accepted;
//! 2. queries the pending invitations last sent before `now - INVITE_TTL_HOURS`;
//! 3. for each, re-reads the ledger and the user (still there, still active, not accepted)
//!    and re-issues it with the configured strategy, recording the attempt;
//! 4. escalates those re-issued `MAX_INVITE_ATTEMPTS` times (error log, metric, Slack);
//! 5. without an Events API token (or with `REISSUE_STRATEGY=report-only`) only reports.
//!
//! It stops starting new work `TIME_BUDGET_MARGIN_SECONDS` before the deadline; whatever is
//! left stays expired in the ledger and is picked up by the next run.

mod acceptance;
mod config;
mod notice;

pub use acceptance::{FeedError, PendingIndex, SignInFeed};
pub use config::{InviteRetryConfig, ReissueStrategy};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;
use tokio::sync::Mutex;

use crate::config::{ConfigError, Env};
use crate::events_api::{EventsApiError, EventsClientConfig, HttpSignInEvents, SignInEvents};
use crate::ledger::{DynamoLedger, Invitation, InvitationStatus, Ledger};
use crate::notify::{Notifier, SlackNotifier};
use crate::scim::{Directory, PatchOperation, ScimClient, ScimClientConfig, ScimError};
use crate::secrets::{AwsSecretSource, CachedSecret, SecretSource, SecretsError};
use crate::telemetry::mask_email;
use crate::worker::{SecretCredentials, WorkerSecret};

/// Expired invitations fetched from the ledger at a time.
const LEDGER_PAGE: usize = 200;

pub use crate::clock::{Clock, SystemClock};

/// Why an expired invitation was left alone this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// The run's time budget ran out before this invitation's turn; the next run takes it.
    TimeBudget,
    /// Sign-ins could not be read up to date (Events API failing, backlog not caught up):
    /// re-issuing might suspend and reactivate someone who has accepted.
    AcceptanceUnknown,
    /// The ledger no longer holds it as pending, or it changed since it was listed.
    NoLongerPending,
    /// The user is no longer in 1Password; the invitation is cleared.
    UserGone,
    /// The user is suspended (a leaver, or by hand): never reactivated by this job.
    UserSuspended,
    /// The ledger has no 1Password user id for it.
    NoUserId,
    /// The bridge failed (nothing was changed, or it was restored).
    BridgeError,
    /// The ledger failed.
    LedgerError,
    /// The person left while the invitation was being re-issued; the user stays deactivated.
    LeftDuringReissue,
    /// Deactivated but could not be reactivated: an operator must reactivate by hand.
    ReactivationFailed,
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::TimeBudget => "time_budget",
            SkipReason::AcceptanceUnknown => "acceptance_unknown",
            SkipReason::NoLongerPending => "no_longer_pending",
            SkipReason::UserGone => "user_gone",
            SkipReason::UserSuspended => "user_suspended",
            SkipReason::NoUserId => "no_user_id",
            SkipReason::BridgeError => "bridge_error",
            SkipReason::LedgerError => "ledger_error",
            SkipReason::LeftDuringReissue => "left_during_reissue",
            SkipReason::ReactivationFailed => "reactivation_failed",
        }
    }
}

/// What one run did; also the function's response and a log line.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct RunSummary {
    /// `toggle-active` or `report-only` (the mode this run actually used).
    pub mode: String,
    /// Expired invitations examined.
    pub checked: usize,
    /// Invitations found accepted (successful sign-ins) this run.
    pub accepted: usize,
    pub reinvited: usize,
    pub escalated: usize,
    /// Report-only: expired invitations reported to a human.
    pub reported: usize,
    pub skipped: usize,
    pub skipped_reasons: BTreeMap<SkipReason, usize>,
    /// The time budget ended the run before everything was done.
    pub stopped_early: bool,
    /// Problems an operator must look at; the binary fails the invocation when any.
    pub errors: Vec<String>,
}

impl RunSummary {
    fn skip(&mut self, reason: SkipReason) {
        self.skipped += 1;
        *self.skipped_reasons.entry(reason).or_default() += 1;
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Secret(#[from] SecretsError),
    #[error(transparent)]
    Scim(#[from] ScimError),
    #[error("worker secret: {0}")]
    EventsApi(String),
}

/// What happened to one expired invitation.
#[derive(Debug)]
enum Outcome {
    Reinvited,
    Escalated(Invitation),
    Reported(Invitation),
    Skipped(SkipReason),
}

/// How this run may act, decided once at its start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Reissue,
    ReportOnly,
}

#[derive(Clone)]
pub struct InviteRetryApp {
    config: Arc<InviteRetryConfig>,
    ledger: Arc<dyn Ledger>,
    secret: Arc<CachedSecret<WorkerSecret>>,
    scim: ScimClient,
    directory: Option<Arc<dyn Directory>>,
    notifier: Option<Arc<dyn Notifier>>,
    events_http: reqwest::Client,
    events: Option<Arc<dyn SignInEvents>>,
    clock: Arc<dyn Clock>,
}

impl InviteRetryApp {
    /// Real adapters, built once per cold start: Secrets Manager, DynamoDB, the SCIM
    /// client, the Events API and (when configured) Slack.
    pub async fn from_env() -> Result<Self, StartupError> {
        let config = InviteRetryConfig::from_env(&Env::from_process())?;
        let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let secrets: Arc<dyn SecretSource> = Arc::new(AwsSecretSource::from_sdk_config(&sdk));
        let ledger: Arc<dyn Ledger> =
            Arc::new(DynamoLedger::new(aws_sdk_dynamodb::Client::new(&sdk), config.ledger_table.clone()));
        Self::with_adapters(config, secrets, ledger, None).await
    }

    /// Builds the app from a config and the stateful adapters (the local stack and tests
    /// pass in-memory or moto-backed ones). `notifier` replaces the Slack notifier the
    /// secret would configure.
    pub async fn with_adapters(
        config: InviteRetryConfig,
        secrets: Arc<dyn SecretSource>,
        ledger: Arc<dyn Ledger>,
        notifier: Option<Arc<dyn Notifier>>,
    ) -> Result<Self, StartupError> {
        let secret = Arc::new(CachedSecret::<WorkerSecret>::new(secrets, config.secret_id.clone(), config.secret_ttl));
        let initial = secret.get().await?;
        let events_http = HttpSignInEvents::http_client();
        // Fail the cold start on a half-configured Events API rather than every run.
        events_port(&initial, &events_http, &config).map_err(|e| StartupError::EventsApi(e.to_string()))?;
        let notifier = notifier.or_else(|| {
            initial.slack_webhook_url.as_ref().map(|url| Arc::new(SlackNotifier::new(url.clone())) as Arc<dyn Notifier>)
        });
        let scim = ScimClient::new(
            Arc::new(SecretCredentials::new(secret.clone())),
            ScimClientConfig {
                concurrency: config.concurrency,
                max_retries: config.scim_max_retries,
                allow_http: config.allow_http,
                ..Default::default()
            },
        )?;
        Ok(InviteRetryApp {
            config: Arc::new(config),
            ledger,
            secret,
            scim,
            directory: None,
            notifier,
            events_http,
            events: None,
            clock: Arc::new(SystemClock),
        })
    }

    /// Reads "now" from `clock` (tests: the simulator's clock).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Uses `events` instead of the Events API the secret configures.
    pub fn with_sign_in_events(mut self, events: Arc<dyn SignInEvents>) -> Self {
        self.events = Some(events);
        self
    }

    /// Uses `directory` instead of the SCIM bridge the secret configures.
    pub fn with_directory(mut self, directory: Arc<dyn Directory>) -> Self {
        self.directory = Some(directory);
        self
    }

    pub fn config(&self) -> &InviteRetryConfig {
        &self.config
    }

    /// One scheduled run; `deadline` is the invocation's deadline.
    pub async fn handle(&self, deadline: Instant) -> RunSummary {
        let budget_end = deadline.checked_sub(self.config.time_margin).unwrap_or_else(Instant::now);
        let now = self.clock.now();
        let mut summary = RunSummary::default();

        let events = match self.current_events_port().await {
            Ok(events) => events,
            Err(problem) => {
                summary.errors.push(problem);
                None
            }
        };
        let mode = match (&events, self.config.strategy) {
            (Some(_), ReissueStrategy::ToggleActive) => Mode::Reissue,
            _ => Mode::ReportOnly,
        };
        summary.mode = match mode {
            Mode::Reissue => ReissueStrategy::ToggleActive.as_str().to_owned(),
            Mode::ReportOnly => ReissueStrategy::ReportOnly.as_str().to_owned(),
        };
        if events.is_none() && self.config.strategy == ReissueStrategy::ToggleActive {
            tracing::warn!("no Events API token in the secret: report-only, nobody is re-invited");
        }

        // 1. Sign-ins since the stored cursor.
        let feed = match events {
            Some(events) => {
                let mut feed = SignInFeed::new(events, self.ledger.clone(), self.config.events_page_limit);
                let caught_up = self.catch_up(&mut feed, now, budget_end, &mut summary).await;
                Some((Mutex::new(feed), caught_up))
            }
            None => None,
        };
        let acceptance_known = feed.as_ref().is_some_and(|(_, caught_up)| *caught_up);
        let feed = feed.map(|(feed, _)| feed);
        let has_events = feed.is_some();

        // 2.–4. Expired invitations, oldest first, a page at a time.
        let sent_before = now - chrono::Duration::from_std(self.config.invite_ttl).unwrap_or(chrono::Duration::MAX);
        let directory: Arc<dyn Directory> = match &self.directory {
            Some(directory) => directory.clone(),
            None => Arc::new(self.scim.until(deadline)),
        };
        let run = Run {
            app: self,
            directory,
            feed: feed.as_ref(),
            mode,
            acceptance_ok: AtomicBool::new(acceptance_known),
            accepted_later: AtomicUsize::new(0),
            errors: std::sync::Mutex::new(Vec::new()),
            budget_end,
        };
        let mut seen: HashSet<crate::event::PersonKey> = HashSet::new();
        let mut escalations = Vec::new();
        let mut reports = Vec::new();
        loop {
            if Instant::now() >= budget_end {
                summary.stopped_early = true;
                break;
            }
            let batch = match self.ledger.pending_invitations(sent_before, seen.len() + LEDGER_PAGE).await {
                Ok(batch) => batch,
                Err(error) => {
                    tracing::error!(%error, "cannot list expired invitations");
                    summary.errors.push(format!("listing expired invitations: {error}"));
                    break;
                }
            };
            let fresh: Vec<Invitation> = batch.into_iter().filter(|i| seen.insert(i.person.clone())).collect();
            if fresh.is_empty() {
                break;
            }
            let outcomes: Vec<Outcome> = futures::stream::iter(fresh)
                .map(|invitation| run.process(invitation))
                .buffer_unordered(self.config.concurrency)
                .collect()
                .await;
            for outcome in outcomes {
                summary.checked += 1;
                match outcome {
                    Outcome::Reinvited => summary.reinvited += 1,
                    Outcome::Escalated(invitation) => {
                        summary.escalated += 1;
                        escalations.push(invitation);
                    }
                    Outcome::Reported(invitation) => {
                        summary.reported += 1;
                        reports.push(invitation);
                    }
                    Outcome::Skipped(reason) => {
                        if reason == SkipReason::TimeBudget {
                            summary.stopped_early = true;
                        }
                        if reason == SkipReason::ReactivationFailed {
                            summary
                                .errors
                                .push("a user was deactivated and could not be reactivated; see the logs".into());
                        }
                        summary.skip(reason);
                    }
                }
            }
        }
        summary.accepted += run.accepted_later.load(Ordering::SeqCst);
        summary.errors.extend(run.errors.into_inner().unwrap_or_else(|p| p.into_inner()));

        // One Slack message per kind per run, however many people it names.
        if !escalations.is_empty() {
            self.notify(&notice::escalation_digest(&escalations, self.config.max_reissues)).await;
        }
        if !reports.is_empty() {
            let reason = if has_events { notice::ReportReason::Configured } else { notice::ReportReason::NoEventsApi };
            self.notify(&notice::report_digest(&reports, self.config.invite_ttl, reason)).await;
        }
        for (reason, count) in &summary.skipped_reasons {
            metrics::counter!("invitations", "outcome" => "skipped", "reason" => reason.as_str())
                .increment(*count as u64);
        }
        tracing::info!(summary = %serde_json::to_string(&summary).unwrap_or_default(), "invite-retry run finished");
        summary
    }

    /// The Events API for this run: the override, else the secret's (re-read after its TTL,
    /// so a token added or rotated later is picked up); `None` means report-only.
    async fn current_events_port(&self) -> Result<Option<Arc<dyn SignInEvents>>, String> {
        if let Some(events) = &self.events {
            return Ok(Some(events.clone()));
        }
        let secret = self.secret.get().await.map_err(|e| {
            tracing::error!(error = %e, "cannot read the secret; report-only this run");
            format!("reading the secret: {e}")
        })?;
        events_port(&secret, &self.events_http, &self.config).map_err(|e| {
            tracing::error!(error = %e, "Events API misconfigured; report-only this run");
            e.to_string()
        })
    }

    /// Catches up with the sign-ins; a 401 re-reads the secret once (rotated token).
    async fn catch_up(
        &self,
        feed: &mut SignInFeed,
        now: DateTime<Utc>,
        budget_end: Instant,
        summary: &mut RunSummary,
    ) -> bool {
        let mut result = feed.catch_up(now, budget_end).await;
        if matches!(result, Err(FeedError::Events(EventsApiError::Unauthorized))) && self.events.is_none() {
            tracing::warn!("Events API answered 401; re-reading the secret once");
            if let Ok(secret) = self.secret.force_refresh().await
                && let Ok(Some(events)) = events_port(&secret, &self.events_http, &self.config)
            {
                *feed = SignInFeed::new(events, self.ledger.clone(), self.config.events_page_limit);
                result = feed.catch_up(now, budget_end).await;
            }
        }
        match result {
            Ok((accepted, caught_up)) => {
                summary.accepted += accepted.len();
                if !caught_up {
                    tracing::warn!("sign-ins not read up to date within the time budget; no re-issue this run");
                }
                caught_up
            }
            Err(error) => {
                tracing::error!(%error, "cannot read sign-ins; no re-issue this run");
                metrics::counter!("events_api_failures").increment(1);
                summary.errors.push(format!("reading sign-ins: {error}"));
                false
            }
        }
    }

    async fn notify(&self, text: &str) {
        let Some(notifier) = &self.notifier else { return };
        if let Err(error) = notifier.notify(text).await {
            tracing::warn!(%error, "Slack notification failed; the error log lines above stand");
            metrics::counter!("notifications_failed").increment(1);
        }
    }
}

/// The Events API the secret configures, or `None` without a token.
fn events_port(
    secret: &WorkerSecret,
    http: &reqwest::Client,
    config: &InviteRetryConfig,
) -> Result<Option<Arc<dyn SignInEvents>>, EventsApiError> {
    let Some(token) = secret.events_api_token.as_deref().filter(|t| !t.trim().is_empty()) else {
        return Ok(None);
    };
    let Some(url) = secret.events_api_url.as_deref().filter(|u| !u.trim().is_empty()) else {
        return Err(EventsApiError::InvalidUrl(
            "events_api_token is set but events_api_url is not (e.g. https://events.1password.com)".into(),
        ));
    };
    let client_config = EventsClientConfig { allow_http: config.allow_http, ..Default::default() };
    Ok(Some(Arc::new(HttpSignInEvents::new(http.clone(), url.trim(), token.trim(), client_config)?)))
}

/// One run's shared context for the concurrent per-invitation work.
struct Run<'a> {
    app: &'a InviteRetryApp,
    directory: Arc<dyn Directory>,
    /// `None` without an Events API: report-only, acceptance unknowable.
    feed: Option<&'a Mutex<SignInFeed>>,
    mode: Mode,
    /// Sign-ins are read up to date (cleared when a refresh fails).
    acceptance_ok: AtomicBool,
    /// Accepted by sign-ins read during the re-issue phase.
    accepted_later: AtomicUsize,
    errors: std::sync::Mutex<Vec<String>>,
    budget_end: Instant,
}

impl Run<'_> {
    fn error(&self, problem: String) {
        self.errors.lock().unwrap_or_else(|p| p.into_inner()).push(problem);
    }

    async fn process(&self, listed: Invitation) -> Outcome {
        if Instant::now() >= self.budget_end {
            return Outcome::Skipped(SkipReason::TimeBudget);
        }
        if let Err(reason) = self.refresh_acceptance().await {
            return Outcome::Skipped(reason);
        }
        let ledger = &self.app.ledger;
        let person = &listed.person;
        // Never act on what the ledger no longer holds as this pending invitation.
        let current = match ledger.invitation(person).await {
            Ok(Some(current))
                if current.status == InvitationStatus::Pending
                    && current.reissues == listed.reissues
                    && current.last_sent_at == listed.last_sent_at =>
            {
                current
            }
            Ok(_) => return Outcome::Skipped(SkipReason::NoLongerPending),
            Err(error) => {
                tracing::error!(%person, %error, "cannot re-read the invitation");
                return Outcome::Skipped(SkipReason::LedgerError);
            }
        };
        let email = mask_email(&current.email);
        if current.user_id.trim().is_empty() {
            tracing::warn!(%person, %email, "pending invitation without a 1Password user id; left alone");
            return Outcome::Skipped(SkipReason::NoUserId);
        }
        match self.directory.get_user(&current.user_id).await {
            Ok(Some(user)) if user.active => {}
            Ok(Some(_)) => {
                tracing::info!(%person, %email, user_id = %current.user_id, "user is suspended; not re-invited");
                return Outcome::Skipped(SkipReason::UserSuspended);
            }
            Ok(None) => {
                tracing::info!(%person, %email, user_id = %current.user_id, "user no longer in 1Password; invitation cleared");
                if let Err(error) = ledger.settle_invitation(person, InvitationStatus::Cleared).await {
                    tracing::error!(%person, %error, "cannot clear the invitation");
                }
                return Outcome::Skipped(SkipReason::UserGone);
            }
            Err(error) => {
                tracing::warn!(%person, %error, "cannot read the user from the bridge; next run retries");
                return Outcome::Skipped(SkipReason::BridgeError);
            }
        }
        match self.mode {
            Mode::ReportOnly => self.report(current).await,
            Mode::Reissue if current.reissues >= self.app.config.max_reissues => self.escalate(current).await,
            Mode::Reissue => self.reissue(current).await,
        }
    }

    /// Makes sure no sign-in older than `acceptance_refresh_after` is unread before acting.
    async fn refresh_acceptance(&self) -> Result<(), SkipReason> {
        let Some(feed) = self.feed else { return Ok(()) };
        if !self.acceptance_ok.load(Ordering::SeqCst) {
            return Err(SkipReason::AcceptanceUnknown);
        }
        let mut feed = feed.lock().await;
        if feed.last_caught_up().is_some_and(|at| at.elapsed() < self.app.config.acceptance_refresh_after) {
            return Ok(());
        }
        match feed.catch_up(self.app.clock.now(), self.budget_end).await {
            Ok((accepted, caught_up)) => {
                self.accepted_later.fetch_add(accepted.len(), Ordering::SeqCst);
                if caught_up {
                    Ok(())
                } else {
                    self.acceptance_ok.store(false, Ordering::SeqCst);
                    Err(SkipReason::TimeBudget)
                }
            }
            Err(error) => {
                tracing::error!(%error, "cannot refresh sign-ins; no more re-issues this run");
                self.error(format!("refreshing sign-ins: {error}"));
                self.acceptance_ok.store(false, Ordering::SeqCst);
                Err(SkipReason::AcceptanceUnknown)
            }
        }
    }

    async fn reissue(&self, current: Invitation) -> Outcome {
        let person = &current.person;
        let email = mask_email(&current.email);
        let user_id = current.user_id.as_str();
        let deactivate = vec![PatchOperation::replace("active", false.into())];
        let reactivate = || vec![PatchOperation::replace("active", true.into())];
        if let Err(error) = self.directory.patch_user(user_id, deactivate).await {
            // An answer lost in transit may hide a deactivation that did happen: put the
            // user back (a no-op on an active user). A definite refusal changed nothing.
            if !matches!(error, ScimError::Status { .. }) {
                let _ = self.directory.patch_user(user_id, reactivate()).await;
            }
            tracing::warn!(%person, %email, %error, "could not re-issue the invitation; next run retries");
            return Outcome::Skipped(SkipReason::BridgeError);
        }
        // A leaver applied between our check and now must stay suspended.
        match self.app.ledger.invitation(person).await {
            Ok(Some(latest)) if latest.status == InvitationStatus::Pending => {}
            Ok(_) => {
                tracing::warn!(%person, %email, user_id, "the person left while the invitation was re-issued; left deactivated");
                return Outcome::Skipped(SkipReason::LeftDuringReissue);
            }
            // The user was active a moment ago: restoring that is the safe default.
            Err(error) => tracing::warn!(%person, %error, "cannot re-read the invitation; reactivating"),
        }
        if let Err(error) = self.directory.patch_user(user_id, reactivate()).await {
            tracing::error!(%person, %email, user_id, %error,
                "user deactivated to re-send the invitation but could not be reactivated: reactivate by hand");
            metrics::counter!("invitations", "outcome" => "reactivation_failed").increment(1);
            self.error(format!("{person}: deactivated but not reactivated ({error})"));
            return Outcome::Skipped(SkipReason::ReactivationFailed);
        }
        match self.app.ledger.record_reissue(person, current.reissues, self.app.clock.now()).await {
            Ok(true) => {}
            Ok(false) => tracing::warn!(%person, "the invitation changed while being re-issued; not counted"),
            Err(error) => {
                tracing::error!(%person, %error, "re-issued but not recorded; the next run may re-issue again");
                self.error(format!("{person}: re-issue not recorded ({error})"));
            }
        }
        tracing::info!(%person, %email, user_id, reissue = current.reissues + 1,
            first_invited = %current.invited_at.format("%Y-%m-%d"), "invitation re-issued");
        metrics::counter!("invitations", "outcome" => "reinvited").increment(1);
        Outcome::Reinvited
    }

    async fn escalate(&self, current: Invitation) -> Outcome {
        let person = &current.person;
        if let Err(skipped) = self.settle_escalated(person, "escalated").await {
            return skipped;
        }
        tracing::error!(%person, email = %mask_email(&current.email), user_id = %current.user_id,
            reissues = current.reissues, invitations_sent = current.reissues + 1,
            first_invited = %current.invited_at.format("%Y-%m-%d"),
            "invitation never accepted after the last re-issue; escalated to a human");
        metrics::counter!("invitations", "outcome" => "escalated").increment(1);
        Outcome::Escalated(current)
    }

    /// Marks the invitation escalated (a human takes it from here), unless the ledger no
    /// longer holds it as pending; `what` names the decision in the log.
    async fn settle_escalated(&self, person: &crate::event::PersonKey, what: &str) -> Result<(), Outcome> {
        match self.app.ledger.settle_invitation(person, InvitationStatus::Escalated).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(Outcome::Skipped(SkipReason::NoLongerPending)),
            Err(error) => {
                tracing::error!(%person, %error, "cannot mark the invitation {}; next run retries", what);
                Err(Outcome::Skipped(SkipReason::LedgerError))
            }
        }
    }

    /// Report-only: tell a human once (the invitation leaves the pending index as escalated).
    async fn report(&self, current: Invitation) -> Outcome {
        let person = &current.person;
        if let Err(skipped) = self.settle_escalated(person, "reported").await {
            return skipped;
        }
        tracing::error!(%person, email = %mask_email(&current.email), user_id = %current.user_id,
            last_sent = %current.last_sent_at.format("%Y-%m-%d"), first_invited = %current.invited_at.format("%Y-%m-%d"),
            "invitation expired (report-only: not re-issued); resend it from 1Password");
        metrics::counter!("invitations", "outcome" => "reported").increment(1);
        Outcome::Reported(current)
    }
}

#[cfg(test)]
mod tests;
