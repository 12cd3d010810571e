//! The simulator's clock. Invitation expiry, event timestamps and the operations log all read
//! it, so tests can jump five days ahead without waiting.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

#[derive(Debug)]
pub struct SimClock {
    /// `None`: follow real time. `Some`: frozen at this instant (before any advance).
    frozen_at: Option<DateTime<Utc>>,
    /// Total advance in milliseconds.
    offset_ms: AtomicI64,
}

impl SimClock {
    pub fn new(frozen_at: Option<DateTime<Utc>>) -> Self {
        SimClock { frozen_at, offset_ms: AtomicI64::new(0) }
    }

    pub fn now(&self) -> DateTime<Utc> {
        let base = self.frozen_at.unwrap_or_else(Utc::now);
        base + TimeDelta::milliseconds(self.offset_ms.load(Ordering::Relaxed))
    }

    /// Moves the clock forward and returns the new time.
    pub fn advance(&self, by: Duration) -> DateTime<Utc> {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX / 2);
        self.offset_ms.fetch_add(ms, Ordering::Relaxed);
        self.now()
    }

    /// Undo every advance (used by reset).
    pub fn rewind(&self) {
        self.offset_ms.store(0, Ordering::Relaxed);
    }
}

/// Converts a std duration into chrono's, saturating at ~100 years (TTL arithmetic only).
pub fn to_delta(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::days(36_500))
}
