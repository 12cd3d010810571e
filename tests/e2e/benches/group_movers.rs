//! What a department mover costs as the account grows: 1,000 movers on an account of 100
//! users and on one of 10,000 (everyone in two managed groups), the worker against the
//! simulator over HTTP with its default switches. Per mover: SCIM requests, response bytes
//! read, wall time. Target: ≤ 4 requests per mover, and the 10,000-user figures within 1.3×
//! of the 100-user ones (a mover must not read what grows with the company).
//!
//! `cargo bench -p e2e --bench group_movers` (env: MOVERS, default 1000).

use e2e::worker_harness::{WorkerHarness, event};
use onepassword_sim::{Seed, SeedGroup, SeedState, SeedUser};
use provisioning::EventKind::Mover;
use std::time::{Duration, Instant};

struct Row {
    users: usize,
    requests: f64,
    bytes: f64,
    wall: Duration,
    failed: usize,
}

fn email(i: usize) -> String {
    format!("person.n{i}@example.com")
}

async fn account_of(users: usize, movers: usize) -> Row {
    let h = WorkerHarness::start(&[("MASS_LEAVER_LIMIT", "100000")]).await;
    let seeded: Vec<SeedUser> = (0..users)
        .map(|i| SeedUser {
            external_id: Some(format!("hr:{i}")),
            // The names the events carry, so a move changes groups only.
            given_name: Some("Person".into()),
            family_name: Some(format!("N{i}")),
            display_name: Some(format!("Person N{i}")),
            ..SeedUser::new(email(i), SeedState::Active)
        })
        .collect();
    let everyone: Vec<String> = (0..users).map(email).collect();
    let group =
        |name: &str, members: Vec<String>| SeedGroup { display_name: name.into(), members, ..Default::default() };
    h.sim
        .state()
        .seed(Seed {
            users: seeded,
            groups: vec![
                group("Employees", everyone.clone()),
                group("Engineering", everyone),
                group("Finance", vec![]),
            ],
        })
        .expect("seeded");
    // A running worker: catalogue read and strategy probed by an earlier message.
    let warm = h.deliver(&[event(Mover, "0", &email(0), "Finance", 0)]).await;
    assert!(warm.is_empty(), "warm-up mover failed");
    h.take_scim_calls();
    let traffic_before = h.sim.state().traffic();

    // Mover k moves person 1 + k mod (users − 1) back and forth: on the small account each
    // person moves several times, each move one add and one remove, as on the large one.
    let move_of = |k: usize| {
        let (person, round) = (1 + k % (users - 1), k / (users - 1));
        (person, if round.is_multiple_of(2) { "Finance" } else { "Engineering" }, 1 + round as i64)
    };
    let events: Vec<_> = (0..movers)
        .map(|k| {
            let (person, department, minutes) = move_of(k);
            event(Mover, &person.to_string(), &email(person), department, minutes)
        })
        .collect();
    let started = Instant::now();
    let mut failed = 0;
    for batch in events.chunks(10) {
        failed += h.deliver(batch).await.len();
    }
    let wall = started.elapsed();
    let calls = h.take_scim_calls();
    let requests = calls.len();
    if std::env::var("SHOW_CALLS").is_ok() {
        let mut kinds = std::collections::BTreeMap::<String, usize>::new();
        for call in &calls {
            let path = if call.path.matches('/').count() > 3 {
                call.path.rsplit_once('/').map_or("", |p| p.0)
            } else {
                &call.path
            };
            *kinds
                .entry(format!(
                    "{} {path} {}",
                    call.method,
                    call.query.as_deref().unwrap_or("").split('=').next().unwrap_or("")
                ))
                .or_default() += 1;
        }
        eprintln!("{users} users: {kinds:#?}");
    }
    let bytes = h.sim.state().traffic().response_bytes - traffic_before.response_bytes;

    let (person, department, _) = move_of(movers - 1);
    let mut groups = h.sim.state().user_view(&email(person)).expect("listed").groups;
    groups.sort();
    assert_eq!(groups, vec!["Employees", department], "a mover ends in exactly their groups");
    Row {
        users,
        requests: requests as f64 / movers as f64,
        bytes: bytes as f64 / movers as f64,
        wall: wall / movers as u32,
        failed,
    }
}

#[tokio::main]
async fn main() {
    let movers: usize = std::env::var("MOVERS").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
    let small = account_of(100, movers).await;
    let large = account_of(10_000, movers).await;
    println!("{movers} department movers per account (simulator over HTTP, default switches)");
    println!("{:>8} {:>14} {:>14} {:>14} {:>8}", "users", "requests/mover", "bytes/mover", "wall/mover", "failed");
    for row in [&small, &large] {
        println!(
            "{:>8} {:>14.2} {:>14.0} {:>11.2} ms {:>8}",
            row.users,
            row.requests,
            row.bytes,
            row.wall.as_secs_f64() * 1000.0,
            row.failed
        );
    }
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::INFINITY };
    println!(
        "10,000 / 100: requests {:.2}×, bytes {:.2}×, wall {:.2}× (target ≤ 1.3×; requests ≤ 4)",
        ratio(large.requests, small.requests),
        ratio(large.bytes, small.bytes),
        ratio(large.wall.as_secs_f64(), small.wall.as_secs_f64())
    );
}
