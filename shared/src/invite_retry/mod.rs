//! The `invite-retry` function: finds invitations that were never accepted and re-issues
//! them a bounded number of times, then tells a human.
//!
//! The SCIM bridge shows an invited person as `active: true`, exactly like one who accepted,
//! so the truth comes from the ledger (whom we invited, when) and the 1Password Events API
//! (who has since signed in). One run:
//!
//! 1. checks that the Events API token belongs to the bridge's account when
//!    `EVENTS_API_ACCOUNT_UUID` says which that is, then reads new sign-ins since the
//!    stored cursor, remembers who ever signed in and marks matching invitations accepted;
//! 2. queries the pending invitations last sent before `now - INVITE_TTL_HOURS`;
//! 3. for each, re-reads the ledger and the user (still there, still active, never signed
//!    in) and re-issues it with the configured strategy, recording the attempt; at most
//!    `MAX_REISSUES_PER_RUN` toggles, and none after a failed reactivation;
//! 4. escalates those re-issued `MAX_INVITE_ATTEMPTS` times (error log, metric, Slack);
//! 5. without an Events API token (or with `REISSUE_STRATEGY=report-only`) only reports.
//!
//! It stops starting new work `TIME_BUDGET_MARGIN_SECONDS` before the deadline; whatever is
//! left stays expired in the ledger and is picked up by the next run.

mod acceptance;
mod account;
mod config;
mod notice;

pub use acceptance::{FeedError, PendingIndex, SignInFeed};
pub use account::AccountError;
pub use config::{InviteRetryConfig, ReissueStrategy};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
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

/// invite-retry's name on a person's lease (the worker's is `apply::LEASE_HOLDER`).
const LEASE_HOLDER: &str = "invite-retry";

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
    /// The worker holds the person's lease (it is applying a change to them right now).
    WorkerBusy,
    /// A reactivation failed earlier in this run: a bridge that suspends but does not
    /// reactivate would lock everyone out, so nothing more is started until the next run.
    StoppedAfterFailure,
    /// `MAX_REISSUES_PER_RUN` toggles were started this run; the rest wait for the next one.
    ReissueBrake,
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

/// Why the sign-ins could not be read at the start of a run.
#[derive(Debug, thiserror::Error)]
enum OpenError {
    #[error(transparent)]
    Account(#[from] AccountError),
    #[error(transparent)]
    Feed(#[from] FeedError),
}

impl OpenError {
    fn is_unauthorized(&self) -> bool {
        match self {
            OpenError::Account(error) => error.is_unauthorized(),
            OpenError::Feed(error) => matches!(error, FeedError::Events(EventsApiError::Unauthorized)),
        }
    }
}

/// What happened to one expired invitation.
#[derive(Debug)]
enum Outcome {
    /// Its user has signed in at some point: settled as accepted, never toggled.
    Accepted,
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
        let run = Run::new(self, feed.as_ref(), mode, deadline, budget_end);
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

    /// Checks the token's account, then catches up with the sign-ins (a 401 re-reads the
    /// secret once: rotated token); the feed, and whether acceptance is known up to date.
    async fn open_feed(
        &self,
        events: Arc<dyn SignInEvents>,
        now: DateTime<Utc>,
        budget_end: Instant,
        summary: &mut RunSummary,
    ) -> (Mutex<SignInFeed>, bool) {
        let (mut feed, mut result) = self.first_read(events, now, budget_end).await;
        if result.as_ref().is_err_and(OpenError::is_unauthorized)
            && let Some(events) = self.events_after_401().await
        {
            (feed, result) = self.first_read(events, now, budget_end).await;
        }
        let caught_up = match result {
            Ok((accepted, caught_up)) => {
                summary.accepted += accepted.len();
                if !caught_up {
                    tracing::warn!("sign-ins not read up to date within the time budget; no re-issue this run");
                }
                caught_up
            }
            Err(OpenError::Account(error)) => {
                tracing::error!(%error, "the Events API token is not the bridge's account; no re-issue this run");
                summary.errors.push(error.to_string());
                false
            }
            Err(OpenError::Feed(error)) => {
                tracing::error!(%error, "cannot read sign-ins; no re-issue this run");
                metrics::counter!("events_api_failures").increment(1);
                summary.errors.push(format!("reading sign-ins: {error}"));
                false
            }
        };
        (Mutex::new(feed), caught_up)
    }

    /// A feed on `events`, caught up only when the token belongs to the expected account:
    /// another account's sign-ins are never read, let alone matched.
    async fn first_read(
        &self,
        events: Arc<dyn SignInEvents>,
        now: DateTime<Utc>,
        budget_end: Instant,
    ) -> (SignInFeed, Result<(Vec<Invitation>, bool), OpenError>) {
        let mut feed = SignInFeed::new(events.clone(), self.ports.ledger.clone(), self.config.events_page_limit);
        let expected = self.config.events_account_uuid.as_deref();
        let result = match account::check_account(events.as_ref(), expected, budget_end).await {
            Ok(()) => feed.catch_up(now, budget_end).await.map_err(OpenError::from),
            Err(error) => Err(error.into()),
        };
        (feed, result)
    }

    /// The Events API as the secret configures it after a 401, re-read once (a rotated
    /// token); `None` when there is nothing new to try.
    async fn events_after_401(&self) -> Option<Arc<dyn SignInEvents>> {
        let SignIns::FromSecret { secret, http } = &self.ports.sign_ins else { return None };
        tracing::warn!("Events API answered 401; re-reading the secret once");
        let secret = secret.force_refresh().await.ok()?;
        events_port(&secret, http, &self.config).ok().flatten()
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
        let skipped = |reason| summary.skipped_reasons.get(&reason).copied().unwrap_or(0);
        if skipped(SkipReason::ReactivationFailed) > 0 {
            let held_back = skipped(SkipReason::StoppedAfterFailure);
            self.notify(&notice::reactivation_failed(skipped(SkipReason::ReactivationFailed), held_back)).await;
        }
        if skipped(SkipReason::ReissueBrake) > 0 {
            let limit = self.config.max_reissues_per_run;
            tracing::warn!(
                limit,
                held_back = skipped(SkipReason::ReissueBrake),
                "re-issue brake engaged (MAX_REISSUES_PER_RUN): the rest wait for the next run"
            );
            self.notify(&notice::brake_engaged(limit, skipped(SkipReason::ReissueBrake))).await;
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
            Outcome::Accepted => self.accepted += 1,
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
    /// Toggles started this run, against `MAX_REISSUES_PER_RUN`.
    toggles: AtomicU32,
    /// Set by the first failed reactivation: nothing more is started this run.
    stopped: AtomicBool,
}

impl Run<'_> {
    fn new<'a>(
        app: &'a InviteRetryApp,
        feed: Option<&'a (Mutex<SignInFeed>, bool)>,
        mode: Mode,
        deadline: Instant,
        budget_end: Instant,
    ) -> Run<'a> {
        Run {
            app,
            directory: app.ports.directory.clone().until(deadline),
            feed: feed.map(|(feed, _)| feed),
            mode,
            acceptance_ok: AtomicBool::new(feed.is_some_and(|(_, caught_up)| *caught_up)),
            accepted_later: AtomicUsize::new(0),
            errors: std::sync::Mutex::new(Vec::new()),
            budget_end,
            toggles: AtomicU32::new(0),
            stopped: AtomicBool::new(false),
        }
    }

    fn error(&self, problem: String) {
        self.errors.lock().unwrap_or_else(|p| p.into_inner()).push(problem);
    }

    async fn process(&self, listed: Invitation) -> Outcome {
        if Instant::now() >= self.budget_end {
            return Outcome::Skipped(SkipReason::TimeBudget);
        }
        if self.stopped.load(Ordering::SeqCst) {
            return Outcome::Skipped(SkipReason::StoppedAfterFailure);
        }
        // Checked early too, so a run whose brake has engaged costs no more bridge reads.
        let would_toggle = self.mode == Mode::Reissue && listed.reissues < self.app.config.max_invite_attempts;
        if would_toggle && self.toggles.load(Ordering::SeqCst) >= self.app.config.max_reissues_per_run {
            return Outcome::Skipped(SkipReason::ReissueBrake);
        }
        if let Err(reason) = self.refresh_acceptance().await {
            return Outcome::Skipped(reason);
        }
        let current = match self.still_pending(&listed).await {
            Ok(current) => current,
            Err(outcome) => return outcome,
        };
        if current.counts_from.is_some_and(|start| start > self.app.ports.clock.now()) {
            return Outcome::Skipped(SkipReason::BeforeStart);
        }
        if let Err(outcome) = self.user_still_invited(&current).await {
            return outcome;
        }
        if let Err(outcome) = self.never_signed_in(&current).await {
            return outcome;
        }
        match self.mode {
            Mode::ReportOnly => self.report(current).await,
            Mode::Reissue if current.reissues >= self.app.config.max_invite_attempts => self.escalate(current).await,
            Mode::Reissue => self.reissue(current).await,
        }
    }

    /// The ledger's current copy, if it is still the pending invitation that was listed:
    /// never act on what the ledger no longer holds as pending.
    async fn still_pending(&self, listed: &Invitation) -> Result<Invitation, Outcome> {
        match self.app.ports.ledger.invitation(&listed.person).await {
            Ok(Some(current))
                if current.status == InvitationStatus::Pending
                    && current.reissues == listed.reissues
                    && current.last_sent_at == listed.last_sent_at =>
            {
                Ok(current)
            }
            Ok(_) => Err(Outcome::Skipped(SkipReason::NoLongerPending)),
            Err(error) => {
                tracing::error!(%error, "cannot re-read the invitation");
                Err(Outcome::Skipped(SkipReason::LedgerError))
            }
        }
    }

    /// The user is still in 1Password and active. A suspended user is never reactivated: it
    /// may be a leaver whose invitation the worker has not cleared yet.
    async fn user_still_invited(&self, current: &Invitation) -> Result<(), Outcome> {
        let email = mask_email(&current.email);
        if current.user_id.as_str().trim().is_empty() {
            tracing::warn!(%email, "pending invitation without a 1Password user id; left alone");
            return Err(Outcome::Skipped(SkipReason::NoUserId));
        }
        match self.directory.get_user(&current.user_id).await {
            Ok(Some(user)) if user.active => Ok(()),
            Ok(Some(_)) => {
                tracing::info!(%email, user_id = %current.user_id, "user is suspended; not re-invited");
                Err(Outcome::Skipped(SkipReason::UserSuspended))
            }
            Ok(None) => {
                tracing::info!(%email, user_id = %current.user_id, "user no longer in 1Password; invitation cleared");
                let ledger = &self.app.ports.ledger;
                if let Err(error) =
                    ledger.settle_invitation_if_pending(&current.person, InvitationStatus::Cleared).await
                {
                    tracing::error!(%error, "cannot clear the invitation");
                }
                Err(Outcome::Skipped(SkipReason::UserGone))
            }
            Err(error) => {
                tracing::warn!(%error, "cannot read the user from the bridge; next run retries");
                Err(Outcome::Skipped(SkipReason::BridgeError))
            }
        }
    }

    /// A user who has ever signed in has an account in use (accepted after an escalation,
    /// or before leaving and coming back): suspending it, even for a moment, is never
    /// right, so the invitation is settled as accepted instead.
    async fn never_signed_in(&self, current: &Invitation) -> Result<(), Outcome> {
        let ledger = &self.app.ports.ledger;
        let first = match ledger.first_sign_in(&current.user_id).await {
            Ok(None) => return Ok(()),
            Ok(Some(first)) => first,
            Err(error) => {
                tracing::error!(%error, "cannot read whether the user ever signed in; next run retries");
                return Err(Outcome::Skipped(SkipReason::LedgerError));
            }
        };
        match ledger.settle_invitation_if_pending(&current.person, InvitationStatus::Accepted).await {
            Ok(true) => {
                tracing::info!(email = %mask_email(&current.email), user_id = %current.user_id,
                    first_signed_in = %first.format("%Y-%m-%d"), "the user has signed in before; invitation accepted");
                metrics::counter!("invitations", "outcome" => "accepted").increment(1);
                Err(Outcome::Accepted)
            }
            Ok(false) => Err(Outcome::Skipped(SkipReason::NoLongerPending)),
            Err(error) => {
                tracing::error!(%error, "cannot mark the invitation accepted; next run retries");
                Err(Outcome::Skipped(SkipReason::LedgerError))
            }
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

    /// Takes one of the run's toggles, unless the brake has engaged or a reactivation
    /// failed; the slot is spent even if the toggle then fails, so the brake bounds
    /// suspensions, not successes.
    fn reserve_toggle(&self) -> Result<(), SkipReason> {
        if self.stopped.load(Ordering::SeqCst) {
            return Err(SkipReason::StoppedAfterFailure);
        }
        let limit = self.app.config.max_reissues_per_run;
        match self.toggles.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| (n < limit).then_some(n + 1)) {
            Ok(_) => Ok(()),
            Err(_) => Err(SkipReason::ReissueBrake),
        }
    }

    /// The toggle, under the person's lease: the worker never writes to the account (a
    /// leaver's suspension, say) between our suspension and reactivation.
    async fn reissue(&self, current: Invitation) -> Outcome {
        let ledger = &self.app.ports.ledger;
        let now = self.app.ports.clock.now();
        match ledger.try_lease(&current.person, LEASE_HOLDER, now + chrono::Duration::minutes(2), now).await {
            Ok(true) => {}
            Ok(false) => return Outcome::Skipped(SkipReason::WorkerBusy),
            Err(error) => {
                tracing::error!(%error, "cannot take the person's lease");
                return Outcome::Skipped(SkipReason::LedgerError);
            }
        }
        let person = current.person.clone();
        let outcome = self.toggle(current).await;
        if let Err(error) = ledger.release_lease(&person, LEASE_HOLDER).await {
            tracing::warn!(%error, "could not give the person's lease back; it lapses in two minutes");
        }
        outcome
    }

    async fn toggle(&self, current: Invitation) -> Outcome {
        if let Err(reason) = self.reserve_toggle() {
            return Outcome::Skipped(reason);
        }
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
        if let Err(outcome) = self.confirm_still_pending(&current).await {
            return outcome;
        }
        if let Err(error) = self.directory.patch_user(user_id, reactivate()).await {
            return self.reactivation_failed(&current, &error.to_string());
        }
        self.record_reissue(&current).await;
        tracing::info!(%email, %user_id, reissue = current.reissues + 1,
            first_invited = %current.invited_at.format("%Y-%m-%d"), "invitation re-issued");
        metrics::counter!("invitations", "outcome" => "reinvited").increment(1);
        Outcome::Reinvited
    }

    /// Re-reads the invitation between the two PATCHes. Only one still pending for the same
    /// user is reactivated: a leaver the worker applied meanwhile stays deactivated, and so
    /// does a user whose invitation cannot be re-read, since reactivating might undo a
    /// leaver (and a half-done toggle is loud, where a re-admitted leaver is silent).
    async fn confirm_still_pending(&self, current: &Invitation) -> Result<(), Outcome> {
        match self.app.ports.ledger.invitation(&current.person).await {
            Ok(Some(latest)) if latest.status == InvitationStatus::Pending && latest.user_id == current.user_id => {
                Ok(())
            }
            Ok(_) => {
                tracing::warn!(email = %mask_email(&current.email), user_id = %current.user_id,
                    "the person left while the invitation was re-issued; left deactivated");
                Err(Outcome::Skipped(SkipReason::LeftDuringReissue))
            }
            Err(error) => {
                Err(self.reactivation_failed(current, &format!("the invitation could not be re-read: {error}")))
            }
        }
    }

    /// A user left deactivated by this job: loud, and nothing more is started this run.
    fn reactivation_failed(&self, current: &Invitation, why: &str) -> Outcome {
        let (person, user_id) = (&current.person, &current.user_id);
        tracing::error!(email = %mask_email(&current.email), %user_id, why,
            "user deactivated to re-send the invitation but not reactivated: reactivate by hand unless leaving");
        metrics::counter!("invitations", "outcome" => "reactivation_failed").increment(1);
        self.error(format!("{person}: deactivated but not reactivated ({why})"));
        if !self.stopped.swap(true, Ordering::SeqCst) {
            tracing::error!("stopping re-issues for the rest of this run after a failed reactivation");
        }
        Outcome::Skipped(SkipReason::ReactivationFailed)
    }

    /// Counts the attempt, conditional on the count read before (no attempt counted twice).
    async fn record_reissue(&self, current: &Invitation) {
        let (ledger, person, now) = (&self.app.ports.ledger, &current.person, self.app.ports.clock.now());
        match ledger.record_reissue_if_unchanged(person, current.reissues, now).await {
            Ok(true) => {}
            Ok(false) => tracing::warn!("the invitation changed while being re-issued; not counted"),
            Err(error) => {
                tracing::error!(%error, "re-issued but not recorded; the next run may re-issue again");
                self.error(format!("{person}: re-issue not recorded ({error})"));
            }
        }
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
