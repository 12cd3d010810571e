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

use tracing::Instrument;

use crate::config::{ConfigError, Env};
use crate::event::PersonKey;
use crate::events_api::{EventsApiError, EventsClientConfig, HttpSignInEvents, SignInEvents};
use crate::http_retry::{HttpClient, RetryPolicy};
use crate::ledger::{DynamoLedger, Invitation, InvitationStatus, Ledger};
use crate::notify::Notifier;
use crate::scim::{
    Directory, PatchOperation, ScimClient, ScimClientConfig, ScimError, SecretCredentials, WorkerSecret,
};
use crate::secrets::{AwsSecretSource, CachedSecret, SecretSource, SecretString, SecretsError};
use crate::telemetry::mask_email;

/// Expired invitations fetched from the ledger at a time.
const LEDGER_PAGE: usize = 200;

pub use crate::clock::{Clock, SystemClock};

/// Why an expired invitation was left alone this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, strum::IntoStaticStr)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
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
    /// Sent ahead of the person's start date: neither re-issued nor escalated before it.
    BeforeStart,
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        self.into()
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

/// Where a run reads sign-ins from.
#[derive(Clone)]
pub enum SignIns {
    /// The Events API the worker secret configures, re-read after the secret's TTL (so a
    /// token added or rotated later is picked up) and once after a 401. No token in the
    /// secret means report-only.
    FromSecret { secret: Arc<CachedSecret<WorkerSecret>>, http: HttpClient },
    /// A fixed source (tests, the local stack).
    Fixed(Arc<dyn SignInEvents>),
}

/// Every external system invite-retry uses, built once per cold start: from AWS in Lambda
/// ([`Ports::from_aws`]), by hand in the local stack and the tests.
#[derive(Clone)]
pub struct Ports {
    pub ledger: Arc<dyn Ledger>,
    /// The 1Password SCIM bridge.
    pub directory: Arc<dyn Directory>,
    pub sign_ins: SignIns,
    pub notifier: Option<Arc<dyn Notifier>>,
    pub clock: Arc<dyn Clock>,
}

impl Ports {
    /// DynamoDB, and what the worker secret in Secrets Manager configures.
    pub async fn from_aws(config: &InviteRetryConfig, sdk: &aws_config::SdkConfig) -> Result<Self, StartupError> {
        let ledger = Arc::new(DynamoLedger::new(aws_sdk_dynamodb::Client::new(sdk), config.ledger_table.clone()));
        Self::from_secret(config, Arc::new(AwsSecretSource::from_sdk_config(sdk)), ledger).await
    }

    /// The bridge, the Events API and Slack as the worker secret configures them. A
    /// half-configured Events API fails the cold start rather than every run.
    pub async fn from_secret(
        config: &InviteRetryConfig,
        secrets: Arc<dyn SecretSource>,
        ledger: Arc<dyn Ledger>,
    ) -> Result<Self, StartupError> {
        let secret = WorkerSecret::cached(secrets, &config.secret_id, config.secret_ttl);
        let initial = secret.get().await?;
        let http = HttpSignInEvents::http_client(&EventsClientConfig::default())
            .map_err(|e| StartupError::EventsApi(e.to_string()))?;
        events_port(&initial, &http, config).map_err(|e| StartupError::EventsApi(e.to_string()))?;
        let scim = ScimClientConfig {
            concurrency: config.concurrency,
            retry: RetryPolicy { max_retries: config.scim_max_retries, ..RetryPolicy::default() },
            allow_http: config.allow_http_bridge,
            ..ScimClientConfig::default()
        };
        Ok(Ports {
            ledger,
            directory: Arc::new(ScimClient::new(Arc::new(SecretCredentials::new(secret.clone())), scim)?),
            sign_ins: SignIns::FromSecret { secret, http },
            notifier: initial.slack_notifier(),
            clock: Arc::new(SystemClock),
        })
    }
}

#[derive(Clone)]
pub struct InviteRetryApp {
    config: Arc<InviteRetryConfig>,
    ports: Ports,
}

/// The expired invitations one run decided about, for the digests sent at its end.
#[derive(Default)]
struct Digest {
    escalated: Vec<Invitation>,
    reported: Vec<Invitation>,
}

impl InviteRetryApp {
    pub fn new(config: InviteRetryConfig, ports: Ports) -> Self {
        InviteRetryApp { config: Arc::new(config), ports }
    }

    /// The Lambda's app: settings from the environment, ports from AWS.
    pub async fn from_env() -> Result<Self, StartupError> {
        let config = InviteRetryConfig::from_env(&Env::from_process())?;
        let ports = Ports::from_aws(&config, &crate::lambda::sdk_config().await).await?;
        Ok(Self::new(config, ports))
    }

    pub fn config(&self) -> &InviteRetryConfig {
        &self.config
    }

    /// One scheduled run; `deadline` is the invocation's deadline.
    pub async fn handle(&self, deadline: Instant) -> RunSummary {
        let budget_end = deadline.checked_sub(self.config.time_margin).unwrap_or_else(Instant::now);
        let now = self.ports.clock.now();
        let mut summary = RunSummary::default();
        let events = self.sign_ins_for_run(&mut summary).await;
        let mode = self.mode(events.is_some());
        summary.mode = mode.strategy().as_str().to_owned();
        // 1. Sign-ins since the stored cursor.
        let feed = match events {
            Some(events) => Some(self.open_feed(events, now, budget_end, &mut summary).await),
            None => None,
        };
        // 2.–4. Expired invitations, oldest first, a page at a time.
        let run = Run {
            app: self,
            directory: self.ports.directory.clone().until(deadline),
            feed: feed.as_ref().map(|(feed, _)| feed),
            mode,
            acceptance_ok: AtomicBool::new(feed.as_ref().is_some_and(|(_, caught_up)| *caught_up)),
            accepted_later: AtomicUsize::new(0),
            errors: std::sync::Mutex::new(Vec::new()),
            budget_end,
        };
        // An absurd INVITE_TTL_HOURS means "nothing has expired", never an overflow panic.
        let ttl = chrono::Duration::from_std(self.config.invite_ttl).unwrap_or(chrono::Duration::MAX);
        let sent_before = now.checked_sub_signed(ttl).unwrap_or(DateTime::<Utc>::MIN_UTC);
        let digest = self.sweep_expired(&run, sent_before, &mut summary).await;
        summary.accepted += run.accepted_later.load(Ordering::SeqCst);
        summary.errors.extend(run.errors.into_inner().unwrap_or_else(|p| p.into_inner()));
        self.finish(&summary, digest, feed.is_some()).await;
        summary
    }

    /// Re-issuing needs sign-ins and the toggle strategy; anything else only reports.
    fn mode(&self, has_sign_ins: bool) -> Mode {
        if !has_sign_ins && self.config.strategy == ReissueStrategy::ToggleActive {
            tracing::warn!("no Events API token in the secret: report-only, nobody is re-invited");
        }
        match (has_sign_ins, self.config.strategy) {
            (true, ReissueStrategy::ToggleActive) => Mode::Reissue,
            _ => Mode::ReportOnly,
        }
    }

    /// The sign-in source for this run; `None` (report-only) without one, with the reason
    /// in the summary's errors when it is a failure.
    async fn sign_ins_for_run(&self, summary: &mut RunSummary) -> Option<Arc<dyn SignInEvents>> {
        let SignIns::FromSecret { secret, http } = &self.ports.sign_ins else {
            let SignIns::Fixed(events) = &self.ports.sign_ins else { return None };
            return Some(events.clone());
        };
        let secret = match secret.get().await {
            Ok(secret) => secret,
            Err(error) => {
                tracing::error!(%error, "cannot read the secret; report-only this run");
                summary.errors.push(format!("reading the secret: {error}"));
                return None;
            }
        };
        events_port(&secret, http, &self.config).unwrap_or_else(|error| {
            tracing::error!(%error, "Events API misconfigured; report-only this run");
            summary.errors.push(error.to_string());
            None
        })
    }

    /// Catches up with the sign-ins (a 401 re-reads the secret once: rotated token); the
    /// feed, and whether acceptance is known up to date.
    async fn open_feed(
        &self,
        events: Arc<dyn SignInEvents>,
        now: DateTime<Utc>,
        budget_end: Instant,
        summary: &mut RunSummary,
    ) -> (Mutex<SignInFeed>, bool) {
        let mut feed = SignInFeed::new(events, self.ports.ledger.clone(), self.config.events_page_limit);
        let mut result = feed.catch_up(now, budget_end).await;
        if matches!(result, Err(FeedError::Events(EventsApiError::Unauthorized)))
            && let SignIns::FromSecret { secret, http } = &self.ports.sign_ins
        {
            tracing::warn!("Events API answered 401; re-reading the secret once");
            if let Ok(secret) = secret.force_refresh().await
                && let Ok(Some(events)) = events_port(&secret, http, &self.config)
            {
                feed = SignInFeed::new(events, self.ports.ledger.clone(), self.config.events_page_limit);
                result = feed.catch_up(now, budget_end).await;
            }
        }
        let caught_up = match result {
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
        };
        (Mutex::new(feed), caught_up)
    }

    /// Every expired invitation, a ledger page at a time, each in its own span.
    async fn sweep_expired(&self, run: &Run<'_>, sent_before: DateTime<Utc>, summary: &mut RunSummary) -> Digest {
        let mut seen: HashSet<PersonKey> = HashSet::new();
        let mut digest = Digest::default();
        loop {
            if Instant::now() >= run.budget_end {
                summary.stopped_early = true;
                return digest;
            }
            let batch = match self.ports.ledger.pending_invitations(sent_before, seen.len() + LEDGER_PAGE).await {
                Ok(batch) => batch,
                Err(error) => {
                    tracing::error!(%error, "cannot list expired invitations");
                    summary.errors.push(format!("listing expired invitations: {error}"));
                    return digest;
                }
            };
            let fresh: Vec<Invitation> = batch.into_iter().filter(|i| seen.insert(i.person.clone())).collect();
            if fresh.is_empty() {
                return digest;
            }
            let outcomes: Vec<Outcome> = futures::stream::iter(fresh)
                .map(|invitation| {
                    let span = tracing::info_span!("invitation", person = %invitation.person);
                    run.process(invitation).instrument(span)
                })
                .buffer_unordered(self.config.concurrency)
                .collect()
                .await;
            for outcome in outcomes {
                summary.count(outcome, &mut digest);
            }
        }
    }

    /// One Slack message per kind per run, however many people it names; metrics; the
    /// summary's log line.
    async fn finish(&self, summary: &RunSummary, digest: Digest, has_events: bool) {
        if !digest.escalated.is_empty() {
            self.notify(&notice::escalation_digest(&digest.escalated, self.config.max_invite_attempts)).await;
        }
        if !digest.reported.is_empty() {
            let reason = if has_events { notice::ReportReason::Configured } else { notice::ReportReason::NoEventsApi };
            self.notify(&notice::report_digest(&digest.reported, self.config.invite_ttl, reason)).await;
        }
        for (reason, count) in &summary.skipped_reasons {
            metrics::counter!("invitations", "outcome" => "skipped", "reason" => reason.as_str())
                .increment(*count as u64);
        }
        tracing::info!(summary = %serde_json::to_string(summary).unwrap_or_default(), "invite-retry run finished");
    }

    async fn notify(&self, text: &str) {
        let Some(notifier) = &self.ports.notifier else { return };
        if let Err(error) = notifier.notify(text).await {
            tracing::warn!(%error, "Slack notification failed; the error log lines above stand");
            metrics::counter!("notifications_failed").increment(1);
        }
    }
}

impl RunSummary {
    fn count(&mut self, outcome: Outcome, digest: &mut Digest) {
        self.checked += 1;
        match outcome {
            Outcome::Reinvited => self.reinvited += 1,
            Outcome::Escalated(invitation) => {
                self.escalated += 1;
                digest.escalated.push(invitation);
            }
            Outcome::Reported(invitation) => {
                self.reported += 1;
                digest.reported.push(invitation);
            }
            Outcome::Skipped(reason) => {
                if reason == SkipReason::TimeBudget {
                    self.stopped_early = true;
                }
                if reason == SkipReason::ReactivationFailed {
                    self.errors.push("a user was deactivated and could not be reactivated; see the logs".into());
                }
                self.skip(reason);
            }
        }
    }
}

impl Mode {
    fn strategy(self) -> ReissueStrategy {
        match self {
            Mode::Reissue => ReissueStrategy::ToggleActive,
            Mode::ReportOnly => ReissueStrategy::ReportOnly,
        }
    }
}

/// The Events API the secret configures, or `None` without a token.
fn events_port(
    secret: &WorkerSecret,
    http: &HttpClient,
    config: &InviteRetryConfig,
) -> Result<Option<Arc<dyn SignInEvents>>, EventsApiError> {
    let Some(token) = secret.events_api_token.as_ref().map(|t| t.expose()).filter(|t| !t.trim().is_empty()) else {
        return Ok(None);
    };
    let Some(url) = secret.events_api_url.as_deref().filter(|u| !u.trim().is_empty()) else {
        return Err(EventsApiError::InvalidUrl(
            "events_api_token is set but events_api_url is not (e.g. https://events.1password.com)".into(),
        ));
    };
    let token = SecretString::new(token.trim());
    Ok(Some(Arc::new(HttpSignInEvents::new(http.clone(), url.trim(), token, config.allow_http_bridge)?)))
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
        let ledger = &self.app.ports.ledger;
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
                tracing::error!(%error, "cannot re-read the invitation");
                return Outcome::Skipped(SkipReason::LedgerError);
            }
        };
        if current.counts_from.is_some_and(|start| start > self.app.ports.clock.now()) {
            return Outcome::Skipped(SkipReason::BeforeStart);
        }
        let email = mask_email(&current.email);
        if current.user_id.as_str().trim().is_empty() {
            tracing::warn!(%email, "pending invitation without a 1Password user id; left alone");
            return Outcome::Skipped(SkipReason::NoUserId);
        }
        match self.directory.get_user(&current.user_id).await {
            Ok(Some(user)) if user.active => {}
            Ok(Some(_)) => {
                tracing::info!(%email, user_id = %current.user_id, "user is suspended; not re-invited");
                return Outcome::Skipped(SkipReason::UserSuspended);
            }
            Ok(None) => {
                tracing::info!(%email, user_id = %current.user_id, "user no longer in 1Password; invitation cleared");
                if let Err(error) = ledger.settle_invitation_if_pending(person, InvitationStatus::Cleared).await {
                    tracing::error!(%error, "cannot clear the invitation");
                }
                return Outcome::Skipped(SkipReason::UserGone);
            }
            Err(error) => {
                tracing::warn!(%error, "cannot read the user from the bridge; next run retries");
                return Outcome::Skipped(SkipReason::BridgeError);
            }
        }
        match self.mode {
            Mode::ReportOnly => self.report(current).await,
            Mode::Reissue if current.reissues >= self.app.config.max_invite_attempts => self.escalate(current).await,
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
        match feed.catch_up(self.app.ports.clock.now(), self.budget_end).await {
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
        let user_id = &current.user_id;
        let deactivate = vec![PatchOperation::replace("active", false.into())];
        let reactivate = || vec![PatchOperation::replace("active", true.into())];
        if let Err(error) = self.directory.patch_user(user_id, deactivate).await {
            // An answer lost in transit may hide a deactivation that did happen: put the
            // user back (a no-op on an active user). A definite refusal changed nothing.
            if !matches!(error, ScimError::Status { .. }) {
                let _ = self.directory.patch_user(user_id, reactivate()).await;
            }
            tracing::warn!(%email, %error, "could not re-issue the invitation; next run retries");
            return Outcome::Skipped(SkipReason::BridgeError);
        }
        // A leaver applied between our check and now must stay suspended.
        match self.app.ports.ledger.invitation(person).await {
            Ok(Some(latest)) if latest.status == InvitationStatus::Pending => {}
            Ok(_) => {
                tracing::warn!(%email, %user_id, "the person left while the invitation was re-issued; left deactivated");
                return Outcome::Skipped(SkipReason::LeftDuringReissue);
            }
            // The user was active a moment ago: restoring that is the safe default.
            Err(error) => tracing::warn!(%error, "cannot re-read the invitation; reactivating"),
        }
        if let Err(error) = self.directory.patch_user(user_id, reactivate()).await {
            tracing::error!(%email, %user_id, %error,
                "user deactivated to re-send the invitation but could not be reactivated: reactivate by hand");
            metrics::counter!("invitations", "outcome" => "reactivation_failed").increment(1);
            self.error(format!("{person}: deactivated but not reactivated ({error})"));
            return Outcome::Skipped(SkipReason::ReactivationFailed);
        }
        match self
            .app
            .ports
            .ledger
            .record_reissue_if_unchanged(person, current.reissues, self.app.ports.clock.now())
            .await
        {
            Ok(true) => {}
            Ok(false) => tracing::warn!("the invitation changed while being re-issued; not counted"),
            Err(error) => {
                tracing::error!(%error, "re-issued but not recorded; the next run may re-issue again");
                self.error(format!("{person}: re-issue not recorded ({error})"));
            }
        }
        tracing::info!(%email, %user_id, reissue = current.reissues + 1,
            first_invited = %current.invited_at.format("%Y-%m-%d"), "invitation re-issued");
        metrics::counter!("invitations", "outcome" => "reinvited").increment(1);
        Outcome::Reinvited
    }

    async fn escalate(&self, current: Invitation) -> Outcome {
        let person = &current.person;
        if let Err(skipped) = self.settle_escalated(person, "escalated").await {
            return skipped;
        }
        tracing::error!(email = %mask_email(&current.email), user_id = %current.user_id,
            reissues = current.reissues, invitations_sent = current.reissues + 1,
            first_invited = %current.invited_at.format("%Y-%m-%d"),
            "invitation never accepted after the last re-issue; escalated to a human");
        metrics::counter!("invitations", "outcome" => "escalated").increment(1);
        Outcome::Escalated(current)
    }

    /// Marks the invitation escalated (a human takes it from here), unless the ledger no
    /// longer holds it as pending; `what` names the decision in the log.
    async fn settle_escalated(&self, person: &PersonKey, what: &str) -> Result<(), Outcome> {
        match self.app.ports.ledger.settle_invitation_if_pending(person, InvitationStatus::Escalated).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(Outcome::Skipped(SkipReason::NoLongerPending)),
            Err(error) => {
                tracing::error!(%error, "cannot mark the invitation {}; next run retries", what);
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
        tracing::error!(email = %mask_email(&current.email), user_id = %current.user_id,
            last_sent = %current.last_sent_at.format("%Y-%m-%d"), first_invited = %current.invited_at.format("%Y-%m-%d"),
            "invitation expired (report-only: not re-issued); resend it from 1Password");
        metrics::counter!("invitations", "outcome" => "reported").increment(1);
        Outcome::Reported(current)
    }
}

#[cfg(test)]
mod tests;
