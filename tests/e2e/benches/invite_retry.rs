//! invite-retry at scale: 10,000 pending invitations, 1,000 of them expired and 500 of the
//! others accepted, processed in one invocation against the 1Password simulator over real
//! HTTP (SCIM bridge and Events API) with the in-memory ledger. Prints wall time and peak
//! memory (VmHWM; the simulator runs in the same process, so its 10,000 users count too;
//! the baseline after seeding is printed for comparison).
//!
//! `cargo bench -p e2e --bench invite_retry`

use chrono::Duration as ChronoDuration;
use onepassword_sim::{Seed, SeedState, SeedUser, SimConfig};
use provisioning::PersonKey;
use provisioning::config::Env;
use provisioning::invite_retry::{InviteRetryApp, InviteRetryConfig, Ports};
use provisioning::ledger::{InMemoryLedger, Invitation, InvitationStatus, Ledger};
use provisioning::scim::ScimUserId;
use provisioning::secrets::InMemorySecretSource;
use std::sync::Arc;
use std::time::{Duration, Instant};

const PENDING: usize = 10_000;
const EXPIRED: usize = 1_000;
const ACCEPTED: usize = 500;

fn vm_hwm_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(bench());
}

async fn bench() {
    let sim = onepassword_sim::spawn(SimConfig::default(), "127.0.0.1:0".parse().unwrap()).await.expect("simulator");
    let state = sim.state();
    let now = state.now();
    let expired_at = now - ChronoDuration::hours(6 * 24);
    let users: Vec<SeedUser> = (0..PENDING)
        .map(|n| {
            let expired = n < EXPIRED;
            SeedUser {
                external_id: Some(format!("hr:{n}")),
                invited_at: Some(if expired { expired_at } else { now }),
                ..SeedUser::new(
                    format!("person.{n}@example.com"),
                    if expired { SeedState::InvitationExpired } else { SeedState::Invited },
                )
            }
        })
        .collect();
    let ids = state.seed(Seed { users, groups: vec![] }).expect("seed").user_ids;

    let ledger = Arc::new(InMemoryLedger::new());
    for (n, user_id) in ids.iter().enumerate() {
        let sent = if n < EXPIRED { expired_at } else { now };
        ledger
            .start_invitation_unless_pending(&Invitation {
                counts_from: None,
                person: PersonKey::new("hr", n.to_string()),
                user_id: ScimUserId::new(user_id.as_str()),
                email: format!("person.{n}@example.com"),
                invited_at: sent,
                last_sent_at: sent,
                reissues: 0,
                status: InvitationStatus::Pending,
            })
            .await
            .expect("ledger");
    }
    for id in &ids[EXPIRED..EXPIRED + ACCEPTED] {
        state.accept_invitation(id).expect("accept");
    }

    let secrets = Arc::new(InMemorySecretSource::new());
    secrets.set(
        "secret",
        serde_json::json!({
            "bridge_url": sim.scim_url(), "bridge_token": "sim-scim-token",
            "events_api_url": sim.base_url(), "events_api_token": "sim-events-token",
        })
        .to_string(),
    );
    let config = InviteRetryConfig::from_env(&Env::from_pairs([
        ("WORKER_SECRET_ID", "secret"),
        ("LEDGER_TABLE", "in-memory"),
        ("ALLOW_HTTP_BRIDGE", "true"),
        // Every expired invitation in one run, which the default toggle brake (50) forbids.
        ("MAX_REISSUES_PER_RUN", "1000000"),
    ]))
    .expect("config");
    let concurrency = config.concurrency;
    let clock_state = state.clone();
    let mut ports = Ports::from_secret(&config, secrets, ledger.clone()).await.expect("app");
    ports.clock = Arc::new(move || clock_state.now());
    let app = InviteRetryApp::new(config, ports);
    state.clear_operations();
    let baseline = vm_hwm_kib();

    let started = Instant::now();
    let summary = app.handle(Instant::now() + Duration::from_secs(15 * 60)).await;
    let wall = started.elapsed();
    let peak = vm_hwm_kib();

    let repeats = state.outbox().iter().filter(|m| m.kind == onepassword_sim::InvitationKind::Repeat).count();
    let requests = state.operations().len();
    assert_eq!(summary.reinvited, EXPIRED, "{summary:?}");
    assert_eq!(summary.accepted, ACCEPTED, "{summary:?}");
    assert_eq!(repeats, EXPIRED);
    assert!(state.account_changes().is_empty());
    println!(
        "invite-retry benchmark: {PENDING} pending invitations, {EXPIRED} expired, {ACCEPTED} accepted (RETRY_CONCURRENCY={concurrency})"
    );
    println!(
        "  wall time:        {:.3} s ({:.1} re-issues/s)",
        wall.as_secs_f64(),
        EXPIRED as f64 / wall.as_secs_f64()
    );
    println!("  bridge+events requests: {requests}");
    println!("  summary:          {}", serde_json::to_string(&summary).unwrap_or_default());
    match (baseline, peak) {
        (Some(base), Some(peak)) => println!(
            "  peak memory:      VmHWM {:.1} MiB (after seeding, before the run: {:.1} MiB; simulator in-process)",
            peak as f64 / 1024.0,
            base as f64 / 1024.0
        ),
        _ => println!("  peak memory:      /proc/self/status not readable here"),
    }
    sim.shutdown().await;
}
