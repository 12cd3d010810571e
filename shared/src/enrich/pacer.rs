//! Client-side pacing of one connection's reads: a minimum spacing between request starts,
//! shared by every concurrent fetch in the process. A source's own quota (HiBob's per-minute
//! limit on people reads) is cheaper to respect here than to learn from a 429; a source that
//! says its quota is nearly spent (Okta's `X-Rate-Limit-*` headers) can hold the pacer too.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use crate::http_retry::DEADLINE_MARGIN;

#[derive(Debug)]
pub(super) struct Pacer {
    /// Zero: no client-side limit.
    spacing: Duration,
    /// The earliest start of the next request.
    next: Mutex<Option<Instant>>,
}

impl Pacer {
    /// At most `requests` request starts per minute, evenly spaced; 0 means unlimited.
    pub(super) fn per_minute(requests: u32) -> Self {
        let spacing = if requests == 0 { Duration::ZERO } else { Duration::from_secs(60) / requests };
        Pacer { spacing, next: Mutex::new(None) }
    }

    /// Takes the next free slot and sleeps until it. A slot that starts too late for
    /// `deadline` (less the margin every client keeps) is not taken: the caller gets the wait
    /// instead, so it can hand the message back rather than sleep past its invocation.
    pub(super) async fn wait(&self, deadline: Option<std::time::Instant>) -> Result<(), Duration> {
        let now = Instant::now();
        let slot = {
            let mut next = self.next.lock().unwrap_or_else(PoisonError::into_inner);
            let slot = next.map_or(now, |next| next.max(now));
            let too_late = deadline.is_some_and(|deadline| slot + DEADLINE_MARGIN >= Instant::from_std(deadline));
            if slot > now && too_late {
                return Err(slot - now);
            }
            *next = Some(slot + self.spacing);
            slot
        };
        tokio::time::sleep_until(slot).await;
        Ok(())
    }

    /// No request starts before `until` (the source's quota window resets then).
    pub(super) fn hold_until(&self, until: Instant) {
        let mut next = self.next.lock().unwrap_or_else(PoisonError::into_inner);
        *next = Some(next.map_or(until, |next| next.max(until)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn requests_are_spaced_evenly_and_unlimited_means_no_wait() {
        let pacer = Pacer::per_minute(600);
        let start = Instant::now();
        for _ in 0..5 {
            pacer.wait(None).await.unwrap();
        }
        assert_eq!(start.elapsed(), Duration::from_millis(400));

        let unlimited = Pacer::per_minute(0);
        let start = Instant::now();
        for _ in 0..50 {
            unlimited.wait(None).await.unwrap();
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_callers_share_one_schedule() {
        let pacer = std::sync::Arc::new(Pacer::per_minute(60));
        let start = Instant::now();
        let waits = (0..3).map(|_| {
            let pacer = pacer.clone();
            tokio::spawn(async move { pacer.wait(None).await.map(|()| start.elapsed()) })
        });
        let mut elapsed: Vec<Duration> =
            futures::future::join_all(waits).await.into_iter().flatten().flatten().collect();
        elapsed.sort();
        assert_eq!(elapsed, [0, 1, 2].map(Duration::from_secs));
    }

    #[tokio::test(start_paused = true)]
    async fn a_slot_past_the_deadline_is_refused_at_once_and_not_taken() {
        let pacer = Pacer::per_minute(6);
        pacer.wait(None).await.unwrap();
        let start = Instant::now();
        let deadline = (Instant::now() + Duration::from_secs(5)).into_std();
        assert_eq!(pacer.wait(Some(deadline)).await, Err(Duration::from_secs(10)));
        assert_eq!(start.elapsed(), Duration::ZERO, "refused without sleeping");
        // The refused slot is still free for a caller with more time.
        let later = (Instant::now() + Duration::from_secs(30)).into_std();
        pacer.wait(Some(later)).await.unwrap();
        assert_eq!(start.elapsed(), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn a_hold_delays_every_later_slot() {
        let pacer = Pacer::per_minute(0);
        let start = Instant::now();
        pacer.hold_until(start + Duration::from_secs(3));
        pacer.hold_until(start + Duration::from_secs(1));
        pacer.wait(None).await.unwrap();
        assert_eq!(start.elapsed(), Duration::from_secs(3));
        let deadline = (Instant::now() + Duration::from_secs(2)).into_std();
        pacer.hold_until(Instant::now() + Duration::from_secs(4));
        assert_eq!(pacer.wait(Some(deadline)).await, Err(Duration::from_secs(4)));
    }
}
