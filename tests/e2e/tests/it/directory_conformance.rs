//! The directory conformance suite (`provisioning::scim::conformance`, which the in-memory
//! twin passes in its unit tests) through the real `ScimClient` over HTTP: against the
//! 1Password simulator, as configured by default and with its unverified switches turned
//! the RFC way, and against scim2-server, an independent RFC 7644 server. A page size of 2
//! makes every list go through several pages.

use e2e::{ChildGuard, free_port, venv_tool, wait_for_port};
use onepassword_sim::{CreateStatus, DuplicateGroupName, FilterMode, GroupMembers, SimConfig, UserGroups};
use provisioning::scim::conformance::{self, CASES};
use provisioning::scim::{Directory, ScimClient, ScimClientConfig, StaticCredentials};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// What the 1Password simulator excludes: RFC behaviour 1Password documents otherwise.
const SIMULATOR_EXCLUDES: &[&str] = &[
    // DELETE suspends on 1Password (docs/invite-retry.md); "delete suspends the user"
    // checks that instead.
    "deleted user is gone",
];

fn client(base: &str, token: &str) -> ScimClient {
    let config = ScimClientConfig { allow_http: true, page_size: 2, ..Default::default() };
    ScimClient::new(Arc::new(StaticCredentials::new(base, token)), config).expect("client")
}

async fn run_against_simulator(config: SimConfig, skip: &[&str]) -> Vec<String> {
    let token = config.scim_token.clone();
    let sim = onepassword_sim::spawn(config, "127.0.0.1:0".parse().unwrap()).await.expect("simulator starts");
    let directory = client(&sim.scim_url(), &token);
    let resets = AtomicUsize::new(0);
    let failures = conformance::run_except(skip, || {
        // A fresh account per case: reset empties it (the built-in groups stay, hidden).
        sim.state().reset();
        resets.fetch_add(1, Ordering::Relaxed);
        let directory = directory.clone();
        async move { Box::new(directory) as Box<dyn Directory> }
    })
    .await;
    assert_eq!(resets.load(Ordering::Relaxed), CASES.len() - skip.len());
    failures
}

#[tokio::test]
async fn scim_client_on_the_simulator_passes_the_directory_suite() {
    let skip = SIMULATOR_EXCLUDES.to_vec();
    let failures = run_against_simulator(SimConfig::default(), &skip).await;
    assert!(failures.is_empty(), "conformance failures on the simulator:\n{}", failures.join("\n"));
}

/// The [UNK] switches set other ways a bridge could behave: the RFC's 201 on create and
/// 409 on a duplicate group; filters rejected (the client falls back to listing every user)
/// or ignored (the client notices and does the same); members only on a group read by id, or
/// nowhere but the user's `groups`.
#[tokio::test]
async fn scim_client_on_the_simulator_with_other_switches_passes_the_directory_suite() {
    let rfc = SimConfig {
        create_status: CreateStatus::Created201,
        observed_discovery_quirks: false,
        meta_location: true,
        ..SimConfig::default()
    };
    let configs = [
        (
            "409 on a duplicate group, filters rejected, members only in users",
            SimConfig {
                duplicate_group_name: DuplicateGroupName::Reject409,
                filters: FilterMode::Rejected,
                group_members: GroupMembers::Never,
                ..rfc.clone()
            },
        ),
        (
            "filters ignored, members only by id, users carry `ref`",
            SimConfig {
                filters: FilterMode::Ignored,
                group_members: GroupMembers::OnlyById,
                user_groups: UserGroups::Ref,
                ..rfc.clone()
            },
        ),
        (
            "no user groups, member filter, pages of 1",
            SimConfig { user_groups: UserGroups::Off, group_members: GroupMembers::Never, max_results: 1, ..rfc },
        ),
    ];
    for (name, config) in configs {
        let failures = run_against_simulator(config, SIMULATOR_EXCLUDES).await;
        assert!(failures.is_empty(), "conformance failures on the simulator ({name}):\n{}", failures.join("\n"));
    }
}

#[tokio::test]
async fn scim_client_on_scim2_server_passes_the_directory_suite() {
    let port = free_port();
    let mut command = Command::new(venv_tool("scim", "scim2-server").unwrap());
    command
        // Every case gets its own tenant (`/case-N/v2`): a fresh, empty server.
        .args(["--hostname", "127.0.0.1", "--port", &port.to_string(), "--bearer-token", "other-token"])
        .arg("--dynamic-tenants")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let _server = ChildGuard::spawn("scim2-server", &mut command).unwrap();
    wait_for_port(([127, 0, 0, 1], port).into(), Duration::from_secs(20)).unwrap();

    let skip = [
        // 1Password behaviour, not RFC 7644's: scim2-server deletes for real (and passes
        // "deleted user is gone") and, as RFC 7643 allows, accepts two groups with one name.
        "delete suspends the user",
        "a duplicate group displayName makes no second group",
    ];
    let tenants = AtomicUsize::new(0);
    let failures = conformance::run_except(&skip, || {
        let n = tenants.fetch_add(1, Ordering::Relaxed);
        let directory = client(&format!("http://127.0.0.1:{port}/case-{n}/v2"), "other-token");
        async move { Box::new(directory) as Box<dyn Directory> }
    })
    .await;
    assert_eq!(tenants.load(Ordering::Relaxed), CASES.len() - skip.len());
    assert!(failures.is_empty(), "conformance failures on scim2-server:\n{}", failures.join("\n"));
}
