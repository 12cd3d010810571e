//! The due-action sweep: turns the dates HR set into converge events when they arrive.
//!
//! The worker records, on each person's ledger record, the next time their desired state
//! changes by itself (an invitation due before a start date, a suspension due at a
//! termination cutoff). The `reconcile` function runs this sweep on a schedule: it reads
//! the actions due by now from the ledger's due-time index a page at a time, queues one
//! [`EventKind::Converge`] event per action ("re-read the truth and converge"), and only
//! after the queue accepted the page takes those actions out of the index.
//!
//! Every step is safe to repeat. The event's id is derived from the person and the due
//! time, so a second sweep over the same actions (overlapping runs, or a crash between
//! enqueueing and marking) yields the same SQS deduplication id and SQS FIFO drops the copy
//! within its 5-minute window; a copy after it is one more convergence, which changes
//! nothing. Marking is conditional on the due time being unchanged, so a date the worker
//! moved meanwhile stays in the index for its own time.

mod app;
mod config;

pub use app::{ReconcileApp, ReconcileError, StartupError, Task, TaskError, background_queue};
pub use config::SweepConfig;

use chrono::{DateTime, SecondsFormat, Utc};
use futures::StreamExt;
use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::clock::Clock;
use crate::event::{Attributes, EventKind, LifecycleEvent, WIRE_VERSION};
use crate::ledger::{DueAction, Ledger, LedgerError};
use crate::queue::{EventQueue, QueueError};

/// Every external system the sweep uses.
#[derive(Clone)]
pub struct Ports {
    pub ledger: Arc<dyn Ledger>,
    pub queue: Arc<dyn EventQueue>,
    pub clock: Arc<dyn Clock>,
}

/// How the sweep paces itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepSettings {
    /// Due actions read, queued and marked at a time: the sweep's memory is bounded by it,
    /// whatever the number of due actions.
    pub page_size: usize,
    /// No new page is started when less than this is left before the invocation deadline.
    pub time_margin: Duration,
    /// Conditional marks in flight at once.
    pub mark_concurrency: usize,
}

impl Default for SweepSettings {
    fn default() -> Self {
        SweepSettings { page_size: 100, time_margin: Duration::from_secs(10), mark_concurrency: 8 }
    }
}

/// What one sweep did; also the function's response and its log line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SweepSummary {
    /// Actions due at or before this instant were swept (the clock at the start).
    pub due_by: DateTime<Utc>,
    pub pages: usize,
    /// Converge events the queue accepted (SQS drops the ones it has seen within 5 minutes).
    pub enqueued: usize,
    /// Due actions taken out of the index after their event was queued.
    pub completed: usize,
    /// Due actions the worker moved or cancelled between listing and marking: kept.
    pub moved_meanwhile: usize,
    /// The time budget ended the sweep before the index was exhausted; the next run goes on.
    pub stopped_early: bool,
    /// What stopped the sweep; the binary fails the invocation when set.
    pub error: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("listing due actions: {0}")]
    Listing(#[source] LedgerError),
    #[error("queueing converge events: {0}")]
    Queue(#[source] QueueError),
    #[error("marking due actions done: {0}")]
    Marking(#[source] LedgerError),
}

pub struct DueSweep {
    ports: Ports,
    settings: SweepSettings,
}

impl DueSweep {
    pub fn new(ports: Ports, settings: SweepSettings) -> Self {
        let settings = SweepSettings {
            page_size: settings.page_size.max(1),
            mark_concurrency: settings.mark_concurrency.max(1),
            ..settings
        };
        DueSweep { ports, settings }
    }

    /// One sweep of every action due by now; `deadline` is the invocation's deadline.
    pub async fn run(&self, deadline: Instant) -> SweepSummary {
        let now = self.ports.clock.now();
        let budget_end = deadline.checked_sub(self.settings.time_margin).unwrap_or_else(Instant::now);
        let mut summary = SweepSummary {
            due_by: now,
            pages: 0,
            enqueued: 0,
            completed: 0,
            moved_meanwhile: 0,
            stopped_early: false,
            error: None,
        };
        if let Err(error) = self.sweep(now, budget_end, &mut summary).await {
            tracing::error!(%error, "due sweep stopped; what was not marked is swept again next run");
            summary.error = Some(error.to_string());
        }
        tracing::info!(summary = %serde_json::to_string(&summary).unwrap_or_default(), "due sweep finished");
        summary
    }

    /// Page after page, each after the last action of the one before: completed actions
    /// have left the index by then, and moved ones are not read twice in one run.
    async fn sweep(
        &self,
        now: DateTime<Utc>,
        budget_end: Instant,
        summary: &mut SweepSummary,
    ) -> Result<(), SweepError> {
        let mut after: Option<DueAction> = None;
        loop {
            if Instant::now() >= budget_end {
                summary.stopped_early = true;
                return Ok(());
            }
            let page = self
                .ports
                .ledger
                .due_actions(now, after.as_ref(), self.settings.page_size)
                .await
                .map_err(SweepError::Listing)?;
            let Some(last) = page.last().cloned() else { return Ok(()) };
            summary.pages += 1;
            self.enqueue(&page, now, summary).await?;
            self.mark(&page, summary).await?;
            // A short page was the index's last.
            if page.len() < self.settings.page_size {
                return Ok(());
            }
            after = Some(last);
        }
    }

    async fn enqueue(
        &self,
        page: &[DueAction],
        now: DateTime<Utc>,
        summary: &mut SweepSummary,
    ) -> Result<(), SweepError> {
        let events: Vec<LifecycleEvent> = page.iter().map(|action| converge_event(action, now)).collect();
        self.ports.queue.send(&events).await.map_err(SweepError::Queue)?;
        summary.enqueued += events.len();
        metrics::counter!("due_actions_enqueued").increment(events.len() as u64);
        Ok(())
    }

    /// Marks a queued page done. A failed condition means the worker moved the action
    /// meanwhile: its new time stays in the index.
    async fn mark(&self, page: &[DueAction], summary: &mut SweepSummary) -> Result<(), SweepError> {
        let results: Vec<Result<bool, LedgerError>> = futures::stream::iter(page)
            .map(|action| self.ports.ledger.complete_due_action(action))
            .buffer_unordered(self.settings.mark_concurrency)
            .collect()
            .await;
        let mut first_error = None;
        let mut moved = 0;
        for result in results {
            match result {
                Ok(true) => summary.completed += 1,
                Ok(false) => moved += 1,
                Err(error) => first_error = first_error.or(Some(error)),
            }
        }
        summary.moved_meanwhile += moved;
        metrics::counter!("due_actions_moved_meanwhile").increment(moved as u64);
        first_error.map_or(Ok(()), |error| Err(SweepError::Marking(error)))
    }
}

/// The converge event for a due action: claims nothing new, effective at the due time.
pub fn converge_event(action: &DueAction, now: DateTime<Utc>) -> LifecycleEvent {
    LifecycleEvent {
        version: WIRE_VERSION,
        kind: EventKind::Converge,
        person: action.person.clone(),
        source_kind: action.source_kind,
        source_event_id: due_event_id(action),
        effective_at: action.due.at,
        received_at: now,
        attributes: Attributes::default(),
        immediate: false,
        requeued: 0,
    }
}

/// `due:<due time>#<person id>`: the same for every sweep of the same action, so its SQS
/// deduplication id is too. The person id is part of it because SQS deduplicates across
/// the whole queue and the id is hashed with the connection only: two people of one
/// connection due at the same midnight must not share one.
pub fn due_event_id(action: &DueAction) -> String {
    format!("due:{}#{}", action.due.at.to_rfc3339_opts(SecondsFormat::AutoSi, true), action.person.id)
}

#[cfg(test)]
mod tests;
