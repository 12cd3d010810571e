//! Drains 1,000 queued joiner events through the worker against the simulator with 20 ms
//! injected latency on every SCIM call, and compares the throughput with the physical
//! limit: SCIM calls × latency ÷ SCIM concurrency.
//!
//! `cargo bench -p e2e --bench worker_drain` (env: EVENTS, LATENCY_MS, SCIM_CONCURRENCY).

use e2e::worker_harness::{WorkerHarness, event};
use onepassword_sim::{FaultAction, FaultRule};
use provisioning::EventKind::Joiner;
use std::time::{Duration, Instant};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[tokio::main]
async fn main() {
    let events = env_or("EVENTS", 1000);
    let latency_ms = env_or("LATENCY_MS", 20);
    let concurrency = env_or("SCIM_CONCURRENCY", 2).to_string();
    let h = WorkerHarness::start(&[("SCIM_CONCURRENCY", concurrency.as_str())]).await;
    h.sim.state().add_fault(FaultRule::new(None, "/scim/*", FaultAction::Latency { ms: latency_ms })).expect("fault");

    let departments = ["Engineering", "Finance"];
    let all: Vec<_> = (0..events)
        .map(|i| event(Joiner, &i.to_string(), &format!("person.n{i}@example.com"), departments[i as usize % 2], 0))
        .collect();
    h.take_scim_calls();
    let started = Instant::now();
    let mut failed = 0;
    // Batches of ten, as the SQS event source mapping delivers them.
    for batch in all.chunks(10) {
        failed += h.deliver_messages(batch.iter().map(|e| h.message(e)).collect(), Duration::from_secs(60)).await.len();
    }
    let elapsed = started.elapsed();
    let calls = h.take_scim_calls().len();
    let concurrency: f64 = concurrency.parse().unwrap_or(2.0);
    let physical = Duration::from_secs_f64(calls as f64 * latency_ms as f64 / 1000.0 / concurrency);
    println!(
        "worker drain: {events} events, {failed} failed, {calls} SCIM calls, latency {latency_ms} ms, SCIM concurrency {concurrency}"
    );
    println!("  wall time        {:>8.2} s", elapsed.as_secs_f64());
    println!("  events/s         {:>8.1}", events as f64 / elapsed.as_secs_f64());
    println!("  physical limit   {:>8.2} s (calls × latency ÷ concurrency)", physical.as_secs_f64());
    println!("  ratio            {:>8.3} (target ≥ 0.8)", physical.as_secs_f64() / elapsed.as_secs_f64());
    assert_eq!(h.sim.state().outbox().len() as u64, events, "every joiner invited exactly once");
}
