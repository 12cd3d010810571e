//! Runs scim2-tester (`scim2 --url … test`, from the SCIM venv) against the simulator. The
//! simulator runs with its RFC-facing switches (listed in the README); every check must pass
//! except the deliberate deviations below, each recognised by check name and reason.

use std::path::PathBuf;
use std::time::Duration;

use onepassword_sim::{CreateStatus, SimConfig, spawn};

/// (check, text of its reason): the 1Password behaviours scim2-tester flags, on purpose.
const DELIBERATE_DEVIATIONS: &[(&str, &str)] = &[
    // DELETE suspends: the user stays readable with active=false.
    ("object_deletion", "still exists after deletion"),
    // The login e-mail (derived from userName) is always among the e-mails; `add` appends to it.
    ("check_add_attribute", "unexpected value for 'emails'"),
    // `active` is the account state; it cannot be removed.
    ("check_remove_attribute", "Failed to remove attribute 'active'"),
    // 1Password keeps one name: name.formatted follows givenName/familyName.
    ("check_replace_attribute", "unexpected value for 'name'"),
];

fn scim2_cli() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/scim/bin/scim2")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_scim2_tester_except_documented_deviations() {
    let cli = scim2_cli();
    assert!(
        cli.exists(),
        "scim2 CLI not found at {}: run scripts/setup to create the .venv/scim virtualenv",
        cli.display()
    );
    let config = SimConfig {
        create_status: CreateStatus::Created201,
        observed_discovery_quirks: false,
        meta_location: true,
        ..SimConfig::default()
    };
    let sim = spawn(config.clone(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let url = sim.scim_url();
    let output = tokio::time::timeout(
        Duration::from_secs(300),
        tokio::process::Command::new(&cli)
            .args(["--url", &url, "test"])
            // Through the environment, not argv, so the token is not visible in `ps`.
            .env("SCIM_CLI_HEADERS", format!("Authorization: Bearer {}", config.scim_token))
            .output(),
    )
    .await
    .expect("scim2 test finishes within 5 minutes")
    .expect("scim2 runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stdout.contains("Performing a SCIM compliance check"), "scim2 did not run its checks:\n{stdout}\n{stderr}");

    let lines: Vec<&str> = stdout.lines().collect();
    let successes = lines.iter().filter(|l| l.starts_with("SUCCESS ")).count();
    let mut unexpected = Vec::new();
    let mut deviations_seen = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(check) = line.strip_prefix("ERROR ").or_else(|| line.strip_prefix("CRITICAL ")) else {
            continue;
        };
        let is_result = |l: &&&str| ["SUCCESS ", "ERROR ", "SKIPPED ", "CRITICAL "].iter().any(|p| l.starts_with(p));
        let reason = lines[i + 1..].iter().take_while(|l| !is_result(l)).copied().collect::<Vec<_>>().join("\n");
        match DELIBERATE_DEVIATIONS.iter().find(|(name, text)| *name == check.trim() && reason.contains(text)) {
            Some(deviation) => deviations_seen.push(deviation.0),
            None => unexpected.push(format!("{check}: {reason}")),
        }
    }
    assert!(
        unexpected.is_empty(),
        "unexpected scim2-tester failures:\n{}\n\nfull output:\n{stdout}",
        unexpected.join("\n")
    );
    assert!(successes >= 55, "only {successes} checks succeeded:\n{stdout}");
    // Each documented deviation still shows up (otherwise the README list is stale).
    for (name, _) in DELIBERATE_DEVIATIONS {
        assert!(deviations_seen.contains(name), "deviation {name} no longer reported; update the README and this list");
    }
    sim.shutdown().await;
}
