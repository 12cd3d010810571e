//! Throughput of the lookup every client does before creating a user,
//! `GET /scim/Users?filter=userName eq "…"`, with 10,000 users seeded, over loopback with
//! keep-alive connections and some concurrency; and start-up time (library and binary).
//!
//! Prints plain figures first (requests/s, start-up ms), then runs the criterion groups.
//! Targets: ≥ 5,000 requests/s, start-up < 100 ms.
//!
//! Also what a department mover costs the simulator as the account grows (100 vs 10,000 users,
//! everyone in two managed groups, as in `tests/e2e/benches/group_movers.rs`): the worker's
//! `externalId eq … or userName eq …` lookup and a group PATCH that removes one member and one
//! that adds it back (`excludedAttributes=members`, as the worker asks). One keep-alive
//! connection, requests one after the other; the figures must not grow with the account.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use onepassword_sim::{RunningSim, Seed, SeedGroup, SeedState, SeedUser, SimConfig, spawn};
use tokio::runtime::Runtime;

const USERS: usize = 10_000;
const CONCURRENCY: usize = 8;

async fn seeded_sim() -> RunningSim {
    let sim = spawn(SimConfig::default(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let users = (0..USERS).map(|i| SeedUser::new(format!("user{i}@example.com"), SeedState::Active)).collect();
    sim.state().seed(Seed { users, groups: vec![] }).unwrap();
    sim
}

/// Accounts of the scaling figures: `users` users, all in "Employees" and "Engineering".
const ACCOUNT_SIZES: [usize; 2] = [100, 10_000];

fn person(i: usize) -> String {
    format!("person.n{i}@example.com")
}

/// An account of `users` people (externalId `hr:i`), everyone in two managed groups; returns
/// the simulator, the user ids and the id of "Engineering".
async fn account_sim(users: usize) -> (RunningSim, Vec<String>, String) {
    let sim = spawn(SimConfig::default(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let seeded = (0..users)
        .map(|i| SeedUser { external_id: Some(format!("hr:{i}")), ..SeedUser::new(person(i), SeedState::Active) })
        .collect();
    let everyone: Vec<String> = (0..users).map(person).collect();
    let group = |name: &str| SeedGroup { display_name: name.into(), members: everyone.clone(), ..Default::default() };
    let seeded =
        sim.state().seed(Seed { users: seeded, groups: vec![group("Employees"), group("Engineering")] }).unwrap();
    let engineering = seeded.group_ids[1].clone();
    (sim, seeded.user_ids, engineering)
}

/// `total` sequential `externalId eq "hr:i" or userName eq "person.ni@…"` lookups.
async fn run_or_lookups(client: &reqwest::Client, base: &str, users: usize, total: u64) -> Duration {
    let started = Instant::now();
    for n in 0..total {
        let i = (n as usize * 7919) % users;
        let url = format!(
            "{base}/scim/v2/Users?filter=externalId%20eq%20%22hr%3A{i}%22%20or%20userName%20eq%20%22person.n{i}%40example.com%22"
        );
        let response = client.get(url).bearer_auth("sim-scim-token").send().await.unwrap();
        assert_eq!(response.status(), 200);
        let body = response.bytes().await.unwrap();
        assert!(body.windows(16).any(|w| w == b"\"totalResults\":1"), "one user found");
    }
    started.elapsed()
}

/// `total` sequential group PATCHes on `group` (every member of it is in `ids`): even ones
/// remove a member, odd ones add it back, so the group keeps its size.
async fn run_member_patches(client: &reqwest::Client, base: &str, group: &str, ids: &[String], total: u64) -> Duration {
    let url = format!("{base}/scim/v2/Groups/{group}?excludedAttributes=members");
    let started = Instant::now();
    for n in 0..total {
        let member = &ids[(n as usize / 2 * 7919) % ids.len()];
        let op = if n % 2 == 0 { "remove" } else { "add" };
        let body = serde_json::json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": op, "path": "members", "value": [{"value": member}]}],
        });
        let response = client.patch(&url).bearer_auth("sim-scim-token").json(&body).send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.bytes().await.unwrap();
    }
    started.elapsed()
}

/// `total` sequential GETs of `path` (under `/scim/v2`); each must answer 200.
async fn run_gets(client: &reqwest::Client, base: &str, path: &str, total: u64) -> Duration {
    let url = format!("{base}/scim/v2{path}");
    let started = Instant::now();
    for _ in 0..total {
        let response = client.get(&url).bearer_auth("sim-scim-token").send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.bytes().await.unwrap();
    }
    started.elapsed()
}

/// Per-request figures of the lookup and the PATCH on both account sizes.
async fn print_scaling_figures() {
    const LOOKUPS: u64 = 2_000;
    const PATCHES: u64 = 2_000;
    for users in ACCOUNT_SIZES {
        let (sim, ids, engineering) = account_sim(users).await;
        let client = client();
        let base = sim.base_url();
        run_or_lookups(&client, &base, users, 200).await; // warm-up
        let lookup = run_or_lookups(&client, &base, users, LOOKUPS).await / LOOKUPS as u32;
        run_member_patches(&client, &base, &engineering, &ids, 200).await;
        let patch = run_member_patches(&client, &base, &engineering, &ids, PATCHES).await / PATCHES as u32;
        // Group reads that need not grow with the group: by id without members, by name, and
        // the worker's `members[value eq …]` probe (displayName only).
        let member = &ids[users / 2];
        let reads = [
            (
                "GET /Groups/{id}?excludedAttributes=members",
                format!("/Groups/{engineering}?excludedAttributes=members"),
            ),
            (
                "GET /Groups?filter=displayName eq&excludedAttributes=members",
                "/Groups?filter=displayName%20eq%20%22Engineering%22&excludedAttributes=members".to_owned(),
            ),
            (
                "GET /Groups?filter=members[value eq]&attributes=displayName",
                format!("/Groups?filter=members%5Bvalue%20eq%20%22{member}%22%5D&attributes=displayName"),
            ),
        ];
        let mut read_figures = Vec::new();
        for (name, path) in reads {
            run_gets(&client, &base, &path, 100).await;
            let each = run_gets(&client, &base, &path, 1_000).await / 1_000;
            read_figures.push(format!("{name} {:.1} us", each.as_secs_f64() * 1e6));
        }
        println!("op-sim {users:>6} users: {}", read_figures.join("; "));
        let members = sim.state().groups().iter().find(|g| g.id == engineering).map_or(0, |g| g.members.len());
        assert_eq!(members, users, "the PATCHes keep the group whole");
        println!(
            "op-sim {users:>6} users: `externalId eq or userName eq` lookup {:>8.1} us/request; \
             group PATCH add/remove one member ({members} members) {:>8.1} us/request",
            lookup.as_secs_f64() * 1e6,
            patch.as_secs_f64() * 1e6,
        );
        sim.shutdown().await;
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().pool_max_idle_per_host(CONCURRENCY * 2).build().unwrap()
}

/// Sends `total` filtered lookups from `CONCURRENCY` tasks sharing one keep-alive client.
async fn run_lookups(client: &reqwest::Client, base: &str, total: u64) -> Duration {
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let client = client.clone();
            let base = base.to_owned();
            let next = next.clone();
            tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= total {
                        break;
                    }
                    let user = n % USERS as u64;
                    let url = format!("{base}/scim/Users?filter=userName%20eq%20%22user{user}%40example.com%22");
                    let response = client.get(url).bearer_auth("sim-scim-token").send().await.unwrap();
                    assert_eq!(response.status(), 200);
                    let body = response.bytes().await.unwrap();
                    assert!(body.len() > 100, "a user was found");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    started.elapsed()
}

async fn library_startup() -> Duration {
    let http = reqwest::Client::new();
    let started = Instant::now();
    let sim = spawn(SimConfig::default(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let status = http.get(format!("{}/ping", sim.base_url())).send().await.unwrap().status();
    let elapsed = started.elapsed();
    assert_eq!(status, 200);
    sim.shutdown().await;
    elapsed
}

/// From process start to the printed address line (the server is listening by then).
fn binary_startup() -> Duration {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_op-sim"))
        .args(["--addr", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("op-sim starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let elapsed = started.elapsed();
    assert!(line.starts_with("op-sim listening on http://"), "{line}");
    let _ = child.kill();
    let _ = child.wait();
    elapsed
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn print_figures(rt: &Runtime) {
    rt.block_on(async {
        print_scaling_figures().await;
        let sim = seeded_sim().await;
        let client = client();
        run_lookups(&client, &sim.base_url(), 2_000).await; // warm-up
        let total = 40_000;
        let elapsed = run_lookups(&client, &sim.base_url(), total).await;
        println!(
            "op-sim filtered lookup: {:.0} requests/s ({total} requests, {CONCURRENCY} keep-alive connections, {USERS} users) [target >= 5000]",
            total as f64 / elapsed.as_secs_f64()
        );
        sim.shutdown().await;
        let lib: Vec<_> = {
            let mut v = Vec::new();
            for _ in 0..20 {
                v.push(library_startup().await);
            }
            v
        };
        println!("op-sim start-up (spawn to first /ping answer, median of 20): {:.2} ms [target < 100]", median(lib).as_secs_f64() * 1e3);
    });
    let bin: Vec<_> = (0..10).map(|_| binary_startup()).collect();
    println!(
        "op-sim binary start-up (exec to address line, median of 10): {:.2} ms [target < 100]",
        median(bin).as_secs_f64() * 1e3
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    print_figures(&rt);

    let mut criterion =
        Criterion::default().configure_from_args().sample_size(20).measurement_time(Duration::from_secs(5));
    let sim = rt.block_on(seeded_sim());
    let base = sim.base_url();
    let client = client();
    let mut group = criterion.benchmark_group("scim_filter_lookup");
    group.throughput(Throughput::Elements(1));
    group.bench_function("userName_eq_10k_users_8_conns", |b| {
        b.iter_custom(|iters| rt.block_on(run_lookups(&client, &base, iters)))
    });
    group.finish();
    let mut group = criterion.benchmark_group("scim_account_scaling");
    group.throughput(Throughput::Elements(1));
    for users in ACCOUNT_SIZES {
        let (sim, ids, engineering) = rt.block_on(account_sim(users));
        let base = sim.base_url();
        group.bench_function(format!("or_lookup_{users}_users"), |b| {
            b.iter_custom(|iters| rt.block_on(run_or_lookups(&client, &base, users, iters)))
        });
        // An even number of PATCHes leaves the group as it was.
        group.bench_function(format!("group_patch_one_member_{users}_members"), |b| {
            b.iter_custom(|iters| rt.block_on(run_member_patches(&client, &base, &engineering, &ids, iters * 2)) / 2)
        });
        rt.block_on(sim.shutdown());
    }
    group.finish();
    let mut group = criterion.benchmark_group("startup");
    group.bench_function("spawn_to_first_ping", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += library_startup().await;
                }
                total
            })
        })
    });
    group.finish();
    rt.block_on(sim.shutdown());
    criterion.final_summary();
}
