//! The operations log: one entry per request to the SCIM bridge or the Events API (the control
//! API is not logged, so polling it does not pollute what tests assert on).

use std::collections::VecDeque;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operation {
    pub seq: u64,
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// `None` while in flight, and for requests that were dropped or left hanging.
    pub status: Option<u16>,
    pub at: DateTime<Utc>,
    /// The injected fault, if any (`latency`, `status`, `drop`, `hang`).
    pub fault: Option<String>,
}

#[derive(Debug)]
pub struct OpLog {
    entries: VecDeque<Operation>,
    next_seq: u64,
    capacity: usize,
}

impl OpLog {
    pub fn new(capacity: usize) -> Self {
        OpLog { entries: VecDeque::new(), next_seq: 1, capacity: capacity.max(1) }
    }

    pub fn begin(&mut self, method: &str, path: &str, query: Option<&str>, at: DateTime<Utc>) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        if self.entries.len() >= self.capacity {
            self.entries.pop_front();
        }
        self.entries.push_back(Operation {
            seq,
            method: method.to_owned(),
            path: path.to_owned(),
            query: query.map(str::to_owned),
            status: None,
            at,
            fault: None,
        });
        seq
    }

    fn entry_mut(&mut self, seq: u64) -> Option<&mut Operation> {
        // Entries are in seq order and recent ones are looked up, so search from the back.
        self.entries.iter_mut().rev().find(|e| e.seq == seq)
    }

    pub fn finish(&mut self, seq: u64, status: Option<u16>) {
        if let Some(entry) = self.entry_mut(seq) {
            entry.status = status;
        }
    }

    pub fn mark_fault(&mut self, seq: u64, fault: &str) {
        if let Some(entry) = self.entry_mut(seq) {
            entry.fault = Some(match entry.fault.take() {
                Some(previous) => format!("{previous}+{fault}"),
                None => fault.to_owned(),
            });
        }
    }

    pub fn list(&self) -> Vec<Operation> {
        self.entries.iter().cloned().collect()
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }
}
