//! What converging costs per event, against the simulator over HTTP with a stand-in HR API:
//! SCIM requests (all, and writes), and source API reads, for joiners, movers, leavers,
//! exact redeliveries and converge triggers. Targets: a joiner with k groups ≤ 2 + k SCIM
//! requests once the group catalogue is warm; a redelivery 0 SCIM requests and 0 reads; one
//! source read per event otherwise.
//!
//! `cargo bench -p e2e --bench converge_cost` (env: PEOPLE, default 200).

use e2e::worker_harness::{WorkerHarness, event};
use provisioning::EventKind::{Converge, Joiner, Leaver, Mover};
use provisioning::enrich::InMemoryEnricher;
use provisioning::{Attributes, EventKind, LifecycleEvent, PersonKey};
use std::sync::Arc;

fn hr_record(i: usize, department: &str, status: &str) -> Attributes {
    Attributes {
        work_email: Some(format!("person.n{i}@example.com")),
        given_name: Some("Person".into()),
        family_name: Some(format!("N{i}")),
        department: Some(department.into()),
        employment_status: Some(status.into()),
        ..Default::default()
    }
}

struct Round {
    name: &'static str,
    events: usize,
    scim: usize,
    writes: usize,
    reads: usize,
    failed: usize,
}

async fn round(h: &WorkerHarness, hr: &InMemoryEnricher, name: &'static str, events: Vec<LifecycleEvent>) -> Round {
    h.take_scim_calls();
    let reads_before = hr.reads();
    let mut failed = 0;
    for batch in events.chunks(10) {
        failed += h.deliver(batch).await.len();
    }
    let calls = h.take_scim_calls();
    let writes = calls.iter().filter(|op| op.method != "GET").count();
    Round { name, events: events.len(), scim: calls.len(), writes, reads: hr.reads() - reads_before, failed }
}

fn kind_events(kind: EventKind, people: usize, tag: &str, department: &str) -> Vec<LifecycleEvent> {
    (0..people)
        .map(|i| {
            let mut e = event(kind, &i.to_string(), &format!("person.n{i}@example.com"), department, 0);
            e.source_event_id = format!("{tag}-{i}");
            e
        })
        .collect()
}

#[tokio::main]
async fn main() {
    let people: usize = std::env::var("PEOPLE").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    let hr = Arc::new(InMemoryEnricher::new());
    let h = WorkerHarness::start_with_source(&[("MASS_LEAVER_LIMIT", "100000")], hr.clone()).await;
    let set = |department: &str, status: &str| {
        for i in 0..people {
            hr.insert(PersonKey::new("hr", i.to_string()), hr_record(i, department, status));
        }
    };
    // Warm the group catalogue (one joiner creates the groups), as a running worker has it.
    set("Engineering", "Active");
    let warm = kind_events(Joiner, 1, "warm", "Engineering");
    h.deliver(&warm).await;
    let joiners: Vec<_> = kind_events(Joiner, people, "joined", "Engineering").into_iter().skip(1).collect();
    let mut rounds = vec![round(&h, &hr, "joiner (k = 2 groups)", joiners.clone()).await];
    rounds.push(round(&h, &hr, "exact redelivery", joiners).await);
    set("Finance", "Active");
    rounds.push(round(&h, &hr, "mover (department)", kind_events(Mover, people, "moved", "Finance")).await);
    rounds.push(round(&h, &hr, "converge, nothing changed", kind_events(Converge, people, "due", "Finance")).await);
    set("Finance", "Inactive");
    rounds.push(round(&h, &hr, "leaver", kind_events(Leaver, people, "left", "Finance")).await);

    println!("converge cost per event ({people} people, simulator over HTTP, stand-in HR API)");
    println!(
        "  {:<28} {:>7} {:>10} {:>11} {:>11} {:>7}",
        "event", "events", "SCIM/evt", "writes/evt", "reads/evt", "failed"
    );
    for r in &rounds {
        let per = |n: usize| n as f64 / r.events.max(1) as f64;
        println!(
            "  {:<28} {:>7} {:>10.2} {:>11.2} {:>11.2} {:>7}",
            r.name,
            r.events,
            per(r.scim),
            per(r.writes),
            per(r.reads),
            r.failed
        );
    }
    let joiner = &rounds[0];
    assert!(joiner.scim as f64 / joiner.events as f64 <= 4.0, "a joiner with 2 groups costs at most 2 + 2 requests");
    assert_eq!((rounds[1].scim, rounds[1].reads), (0, 0), "a redelivery costs nothing");
    assert!(rounds.iter().all(|r| r.failed == 0));
}
