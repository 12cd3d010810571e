//! Groups on any bridge: twenty people through joiner → mover → leaver → rehire, delivered
//! to two worker processes at once (as two Lambda instances would get them), against the
//! simulator under every combination of its unverified switches that changes the worker's
//! path, and against scim2-server. Each run must end with exactly one group per managed name
//! and every person in exactly their rule's groups — or, on a bridge that shows memberships
//! nowhere, with the additions made and the removals refused, never guessed.

use e2e::worker_harness::{RULES, event, sqs_message};
use e2e::{ChildGuard, free_port, venv_tool, wait_for_port};
use onepassword_sim::{DuplicateGroupName, FilterMode, GroupMembers, SimConfig, SimState, UserGroups};
use provisioning::EventKind::{self, Joiner, Leaver, Mover, Rehire};
use provisioning::config::Env;
use provisioning::groups::MembershipStrategy;
use provisioning::ledger::InMemoryLedger;
use provisioning::scim::{Directory, ScimClient, ScimClientConfig, StaticCredentials};
use provisioning::secrets::InMemorySecretSource;
use provisioning::worker::{Ports, WorkerApp, WorkerConfig};
use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const PEOPLE: usize = 20;
const MANAGED: [&str; 3] = ["Employees", "Engineering", "Finance"];

/// What the account looks like: groups per name, and each user's groups and state.
#[derive(Debug, Default)]
struct Account {
    groups_named: BTreeMap<String, usize>,
    users: BTreeMap<String, (bool, BTreeSet<String>)>,
}

enum Truth {
    Sim(SimState),
    /// An RFC server, read over SCIM with members on `GET /Groups/{id}`.
    Scim(ScimClient),
}

impl Truth {
    async fn account(&self) -> Account {
        let mut account = Account::default();
        match self {
            Truth::Sim(state) => {
                let names: BTreeMap<String, String> =
                    state.users().into_iter().map(|u| (u.id.clone(), u.user_name.to_lowercase())).collect();
                for user in state.users() {
                    account.users.insert(user.user_name.to_lowercase(), (user.scim_active, BTreeSet::new()));
                }
                for group in state.groups().into_iter().filter(|g| g.managed) {
                    *account.groups_named.entry(group.display_name.to_lowercase()).or_default() += 1;
                    for member in &group.members {
                        if let Some(entry) = names.get(member).and_then(|n| account.users.get_mut(n)) {
                            entry.1.insert(group.display_name.clone());
                        }
                    }
                }
            }
            Truth::Scim(reader) => {
                let users = reader.list_users(1, 1000).await.unwrap().resources;
                let names: BTreeMap<String, String> =
                    users.iter().map(|u| (u.id.to_string(), u.user_name.to_lowercase())).collect();
                for user in &users {
                    account.users.insert(user.user_name.to_lowercase(), (user.active, BTreeSet::new()));
                }
                for listed in reader.list_groups().await.unwrap() {
                    *account.groups_named.entry(listed.display_name.to_lowercase()).or_default() += 1;
                    let group = reader.get_group(&listed.id).await.unwrap().expect("listed group reads");
                    for member in group.members.iter().flatten() {
                        if let Some(entry) = names.get(&member.value).and_then(|n| account.users.get_mut(n)) {
                            entry.1.insert(group.display_name.clone());
                        }
                    }
                }
            }
        }
        account
    }
}

fn email(n: usize) -> String {
    format!("person.{n}@example.com")
}

fn department(n: usize, moved: bool) -> &'static str {
    if n.is_multiple_of(2) != moved { "Engineering" } else { "Finance" }
}

/// One worker process: its own SCIM client and caches, the shared ledger.
async fn worker(base: &str, token: &str, ledger: &Arc<InMemoryLedger>) -> WorkerApp {
    let secrets = Arc::new(InMemorySecretSource::new());
    secrets.set("w", serde_json::json!({ "bridge_url": base, "bridge_token": token }).to_string());
    let env = Env::from_pairs([
        ("WORKER_SECRET_ID", "w"),
        ("LEDGER_TABLE", "-"),
        ("ALLOW_HTTP_BRIDGE", "true"),
        ("MAPPING_RULES", RULES),
        ("LEAVER_REMOVE_GROUPS", "true"),
        ("MASS_LEAVER_LIMIT", "1000"),
    ]);
    let config = WorkerConfig::from_env(&env).unwrap();
    let ports = Ports::from_secret(&config, secrets, ledger.clone()).await.unwrap();
    WorkerApp::new(config, ports)
}

/// Delivers one phase: half the people to each process, both batches at once.
async fn phase(workers: &[WorkerApp; 2], kind: EventKind, minutes: i64, moved: bool) {
    let batch = |range: std::ops::Range<usize>| {
        let mut batch = aws_lambda_events::event::sqs::SqsEvent::default();
        batch.records = range
            .map(|n| {
                let event = event(kind, &n.to_string(), &email(n), department(n, moved), minutes);
                sqs_message(&format!("{kind}-{n}"), &event.person.to_string(), &serde_json::to_string(&event).unwrap())
            })
            .collect();
        batch
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let (a, b) = tokio::join!(
        workers[0].handle(batch(0..PEOPLE / 2), deadline),
        workers[1].handle(batch(PEOPLE / 2..PEOPLE), deadline)
    );
    let failed: Vec<_> = a.batch_item_failures.into_iter().chain(b.batch_item_failures).collect();
    assert!(failed.is_empty(), "{kind}: failed messages {failed:?}");
}

/// Runs the four phases and checks the account after each. Returns the strategy the
/// workers settled on.
async fn jml(name: &str, base: &str, token: &str, truth: &Truth) -> Option<MembershipStrategy> {
    let ledger = Arc::new(InMemoryLedger::new());
    let workers = [worker(base, token, &ledger).await, worker(base, token, &ledger).await];
    let steps: [(EventKind, i64, bool, &str); 4] = [
        (Joiner, 0, false, "joined"),
        (Mover, 5, true, "moved"),
        (Leaver, 10, true, "left"),
        (Rehire, 15, false, "rehired"),
    ];
    let mut previous = Account::default();
    for (kind, minutes, moved, step) in steps {
        phase(&workers, kind, minutes, moved).await;
        let unknown = workers.iter().any(|w| w.membership_strategy() == Some(MembershipStrategy::Unknown));
        let account = truth.account().await;
        for group in MANAGED {
            let count = account.groups_named.get(&group.to_lowercase()).copied().unwrap_or(0);
            assert_eq!(count, 1, "{name}, {step}: groups named {group}");
        }
        for n in 0..PEOPLE {
            let (active, groups) =
                account.users.get(&email(n)).unwrap_or_else(|| panic!("{name}: {} missing", email(n)));
            let mut expected: BTreeSet<String> = match kind {
                Leaver => BTreeSet::new(),
                _ => ["Employees", department(n, moved)].map(String::from).into(),
            };
            if unknown {
                // Additions only: whatever the person was in stays.
                expected.extend(previous.users.get(&email(n)).map(|(_, g)| g.clone()).unwrap_or_default());
            }
            assert_eq!((*active, groups), (kind != Leaver, &expected), "{name}, {step}: {}", email(n));
        }
        previous = account;
    }
    assert_eq!(users_named_once(truth).await, PEOPLE, "{name}: one account per person");
    workers[0].membership_strategy()
}

async fn users_named_once(truth: &Truth) -> usize {
    truth.account().await.users.keys().filter(|name| name.starts_with("person.")).count()
}

async fn on_simulator(name: &str, config: SimConfig) -> Option<MembershipStrategy> {
    let token = config.scim_token.clone();
    let sim = onepassword_sim::spawn(config, "127.0.0.1:0".parse().unwrap()).await.expect("simulator starts");
    jml(name, &sim.scim_url(), &token, &Truth::Sim(sim.state().clone())).await
}

#[tokio::test]
async fn every_bridge_behaviour_ends_with_one_group_per_name_and_everyone_in_their_groups() {
    use MembershipStrategy::{ManagedGroupReads, MemberFilter, Unknown, UserGroups as FromUsers};
    let default = SimConfig::default;
    let no_user_groups = || SimConfig { user_groups: UserGroups::Off, ..default() };
    let matrix: Vec<(&str, SimConfig, MembershipStrategy)> = vec![
        ("defaults", default(), FromUsers),
        (
            "duplicate group answers 409",
            SimConfig { duplicate_group_name: DuplicateGroupName::Reject409, ..default() },
            FromUsers,
        ),
        (
            "duplicate groups allowed, user groups with `ref`, no members in groups",
            SimConfig {
                duplicate_group_name: DuplicateGroupName::Allow,
                user_groups: UserGroups::Ref,
                group_members: GroupMembers::Never,
                ..default()
            },
            FromUsers,
        ),
        ("member filter", SimConfig { group_members: GroupMembers::Never, ..no_user_groups() }, MemberFilter),
        (
            "duplicates allowed, member filter, pages of 3",
            SimConfig { duplicate_group_name: DuplicateGroupName::Allow, max_results: 3, ..no_user_groups() },
            MemberFilter,
        ),
        (
            "filters rejected, members only by id",
            SimConfig { filters: FilterMode::Rejected, group_members: GroupMembers::OnlyById, ..no_user_groups() },
            ManagedGroupReads,
        ),
        (
            "filters ignored, members only by id, duplicates allowed",
            SimConfig {
                filters: FilterMode::Ignored,
                group_members: GroupMembers::OnlyById,
                duplicate_group_name: DuplicateGroupName::Allow,
                ..no_user_groups()
            },
            ManagedGroupReads,
        ),
        (
            "memberships shown nowhere",
            SimConfig { filters: FilterMode::Rejected, group_members: GroupMembers::Never, ..no_user_groups() },
            Unknown,
        ),
    ];
    for (name, config, strategy) in matrix {
        assert_eq!(on_simulator(name, config).await, Some(strategy), "{name}: membership strategy");
    }
}

#[tokio::test]
async fn scim2_server_ends_with_one_group_per_name_and_everyone_in_their_groups() {
    let port = free_port();
    let mut command = Command::new(venv_tool("scim", "scim2-server").unwrap());
    command
        .args(["--hostname", "127.0.0.1", "--port", &port.to_string(), "--bearer-token", "other-token"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let _server = ChildGuard::spawn("scim2-server", &mut command).unwrap();
    wait_for_port(([127, 0, 0, 1], port).into(), Duration::from_secs(20)).unwrap();
    let base = format!("http://127.0.0.1:{port}/v2");
    let reader = ScimClient::new(
        Arc::new(StaticCredentials::new(base.clone(), "other-token")),
        ScimClientConfig { allow_http: true, ..Default::default() },
    )
    .unwrap();
    let strategy = jml("scim2-server", &base, "other-token", &Truth::Scim(reader)).await;
    assert!(strategy.is_some_and(|s| s != MembershipStrategy::Unknown), "scim2-server shows memberships: {strategy:?}");
}
