//! Throughput of the lookup every client does before creating a user,
//! `GET /scim/Users?filter=userName eq "…"`, with 10,000 users seeded, over loopback with
//! keep-alive connections and some concurrency; and start-up time (library and binary).
//!
//! Prints plain figures first (requests/s, start-up ms), then runs the criterion groups.
//! Targets: ≥ 5,000 requests/s, start-up < 100 ms.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use onepassword_sim::{RunningSim, Seed, SeedState, SeedUser, SimConfig, spawn};
use tokio::runtime::Runtime;

const USERS: usize = 10_000;
const CONCURRENCY: usize = 8;

async fn seeded_sim() -> RunningSim {
    let sim = spawn(SimConfig::default(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let users = (0..USERS).map(|i| SeedUser::new(format!("user{i}@example.com"), SeedState::Active)).collect();
    sim.state().seed(Seed { users, groups: vec![] }).unwrap();
    sim
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
