//! Fault injection: rules that match requests by method and path pattern and delay them,
//! answer with an error status, drop the connection or never answer.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// What a matching rule does to a request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultAction {
    /// Wait this long, then handle the request normally (other rules may still apply).
    Latency { ms: u64 },
    /// Answer with this status (429, 500, 503, …) and an error body, without handling the request.
    /// `retry_after` (seconds) sets the `Retry-After` header.
    Status {
        status: u16,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after: Option<u64>,
    },
    /// Close the connection without sending any response.
    Drop,
    /// Never answer (until the simulator shuts down).
    Hang,
}

impl FaultAction {
    pub fn label(&self) -> &'static str {
        match self {
            FaultAction::Latency { .. } => "latency",
            FaultAction::Status { .. } => "status",
            FaultAction::Drop => "drop",
            FaultAction::Hang => "hang",
        }
    }

    pub fn rate_limit(retry_after_secs: u64) -> Self {
        FaultAction::Status { status: 429, retry_after: Some(retry_after_secs) }
    }
}

/// A fault rule as callers submit it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultRule {
    /// HTTP method to match (case-insensitive); `None` matches all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Path pattern; `*` matches any run of characters, including `/`.
    /// Example: `/scim/*Users*`, `*/Groups/*`, `/api/v2/signinattempts`.
    pub path: String,
    pub action: FaultAction,
    /// Apply to the next N matching requests only; `None` = every matching request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<u32>,
    /// Apply to each matching request with this probability (0.0–1.0); `None` = always.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probability: Option<f64>,
    /// Seed of the random choices, so a probabilistic run can be repeated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

impl FaultRule {
    pub fn new(method: Option<&str>, path: impl Into<String>, action: FaultAction) -> Self {
        FaultRule {
            method: method.map(str::to_owned),
            path: path.into(),
            action,
            times: None,
            probability: None,
            seed: None,
        }
    }

    pub fn times(mut self, n: u32) -> Self {
        self.times = Some(n);
        self
    }

    pub fn with_probability(mut self, p: f64, seed: u64) -> Self {
        self.probability = Some(p);
        self.seed = Some(seed);
        self
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        self.method.as_deref().is_none_or(|m| m.eq_ignore_ascii_case(method))
            && glob_match(self.path.as_bytes(), path.as_bytes())
    }
}

/// A rule as the simulator holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActiveFault {
    pub id: u64,
    #[serde(flatten)]
    pub rule: FaultRule,
    /// How many more times it applies (`None` = unlimited).
    pub remaining: Option<u32>,
    /// How many requests it has hit so far.
    pub hits: u64,
}

/// What to do with one request.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct FaultDecision {
    pub delay: Duration,
    pub terminal: Option<FaultAction>,
    pub labels: Vec<&'static str>,
}

#[derive(Debug, Default)]
pub struct FaultBook {
    rules: Vec<(ActiveFault, StdRng)>,
    next_id: u64,
}

impl FaultBook {
    pub fn add(&mut self, rule: FaultRule) -> Result<u64, String> {
        if rule.path.is_empty() {
            return Err("path pattern must not be empty".into());
        }
        if let Some(p) = rule.probability
            && !(0.0..=1.0).contains(&p)
        {
            return Err(format!("probability must be between 0 and 1, got {p}"));
        }
        if let FaultAction::Status { status, .. } = rule.action
            && !(400..=599).contains(&status)
        {
            return Err(format!("fault status must be 4xx or 5xx, got {status}"));
        }
        self.next_id += 1;
        let id = self.next_id;
        let rng = StdRng::seed_from_u64(rule.seed.unwrap_or(id));
        let remaining = rule.times;
        self.rules.push((ActiveFault { id, rule, remaining, hits: 0 }, rng));
        Ok(id)
    }

    pub fn remove(&mut self, id: u64) -> bool {
        let before = self.rules.len();
        self.rules.retain(|(f, _)| f.id != id);
        self.rules.len() != before
    }

    pub fn clear(&mut self) {
        self.rules.clear();
    }

    pub fn list(&self) -> Vec<ActiveFault> {
        self.rules.iter().map(|(f, _)| f.clone()).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Rules apply in the order they were added: latencies add up, the first error/drop/hang
    /// ends the evaluation.
    pub fn decide(&mut self, method: &str, path: &str) -> FaultDecision {
        let mut decision = FaultDecision::default();
        for (fault, rng) in &mut self.rules {
            if fault.remaining == Some(0) || !fault.rule.matches(method, path) {
                continue;
            }
            if let Some(p) = fault.rule.probability
                && !rng.random_bool(p)
            {
                continue;
            }
            if let Some(n) = fault.remaining.as_mut() {
                *n -= 1;
            }
            fault.hits += 1;
            decision.labels.push(fault.rule.action.label());
            match &fault.rule.action {
                FaultAction::Latency { ms } => decision.delay += Duration::from_millis(*ms),
                terminal => {
                    decision.terminal = Some(terminal.clone());
                    break;
                }
            }
        }
        decision
    }
}

/// `*` matches any run of bytes; everything else matches itself.
fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            backtrack = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((star_p, star_t)) = backtrack {
            p = star_p + 1;
            t = star_t + 1;
            backtrack = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matches_prefixes_and_wildcards() {
        assert!(glob_match(b"/scim/*Users*", b"/scim/v2/Users/ABC"));
        assert!(glob_match(b"/scim/*Users*", b"/scim/Users"));
        assert!(!glob_match(b"/scim/*Users*", b"/scim/Groups"));
        assert!(glob_match(b"*", b"/anything"));
        assert!(glob_match(b"/api/v2/signinattempts", b"/api/v2/signinattempts"));
        assert!(!glob_match(b"/api/v2/signinattempts", b"/api/v2/signinattempts/x"));
    }

    #[test]
    fn limited_rule_stops_after_n_hits() {
        let mut book = FaultBook::default();
        book.add(FaultRule::new(Some("GET"), "*", FaultAction::Drop).times(2)).unwrap();
        assert_eq!(book.decide("GET", "/x").terminal, Some(FaultAction::Drop));
        assert_eq!(book.decide("POST", "/x").terminal, None);
        assert_eq!(book.decide("GET", "/x").terminal, Some(FaultAction::Drop));
        assert_eq!(book.decide("GET", "/x").terminal, None);
    }

    #[test]
    fn seeded_probability_is_repeatable() {
        let run = || {
            let mut book = FaultBook::default();
            book.add(FaultRule::new(None, "*", FaultAction::Hang).with_probability(0.3, 42)).unwrap();
            (0..200).map(|_| book.decide("GET", "/").terminal.is_some()).collect::<Vec<_>>()
        };
        let first = run();
        assert_eq!(first, run());
        let hits = first.iter().filter(|h| **h).count();
        assert!((30..=90).contains(&hits), "about 30% expected, got {hits}/200");
    }
}
