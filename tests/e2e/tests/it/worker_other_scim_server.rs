//! The worker against another RFC 7644 server (scim2-server, from PyPI) instead of the
//! 1Password simulator: what `scripts/run-local serve --bridge-url` relies on.

use e2e::worker_harness::{RULES, event};
use e2e::{ChildGuard, free_port, venv_tool, wait_for_port};
use provisioning::EventKind::{Joiner, Leaver, Mover};
use provisioning::config::Env;
use provisioning::ledger::InMemoryLedger;
use provisioning::scim::{Directory, ScimClient, ScimClientConfig, StaticCredentials};
use provisioning::secrets::InMemorySecretSource;
use provisioning::worker::{Ports, WorkerApp, WorkerConfig};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[tokio::test]
async fn joiner_mover_leaver_against_scim2_server() {
    let port = free_port();
    let mut command = Command::new(venv_tool("scim", "scim2-server").unwrap());
    command
        .args(["--hostname", "127.0.0.1", "--port", &port.to_string(), "--bearer-token", "other-token"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let _server = ChildGuard::spawn("scim2-server", &mut command).unwrap();
    wait_for_port(([127, 0, 0, 1], port).into(), Duration::from_secs(20)).unwrap();
    let base = format!("http://127.0.0.1:{port}/v2");

    let secrets = Arc::new(InMemorySecretSource::new());
    secrets.set("w", serde_json::json!({ "bridge_url": base, "bridge_token": "other-token" }).to_string());
    let env = Env::from_pairs([
        ("WORKER_SECRET_ID", "w"),
        ("LEDGER_TABLE", "-"),
        ("ALLOW_HTTP_BRIDGE", "true"),
        ("MAPPING_RULES", RULES),
    ]);
    let config = WorkerConfig::from_env(&env).unwrap();
    let ports = Ports::from_secret(&config, secrets, Arc::new(InMemoryLedger::new())).await.unwrap();
    let app = WorkerApp::new(config, ports);
    let deliver = |e: provisioning::LifecycleEvent| {
        let app = app.clone();
        async move {
            let mut batch = aws_lambda_events::event::sqs::SqsEvent::default();
            batch.records =
                vec![e2e::worker_harness::sqs_message("m", &e.person.to_string(), &serde_json::to_string(&e).unwrap())];
            app.handle(batch, Instant::now() + Duration::from_secs(30)).await.batch_item_failures
        }
    };
    let reader = ScimClient::new(
        Arc::new(StaticCredentials::new(base.clone(), "other-token")),
        ScimClientConfig { allow_http: true, ..Default::default() },
    )
    .unwrap();
    let groups_of = |id: String| {
        let reader = reader.clone();
        async move {
            let mut names: Vec<String> = reader
                .list_groups()
                .await
                .unwrap()
                .into_iter()
                .filter(|g| g.members.iter().any(|m| m.value == id))
                .map(|g| g.display_name)
                .collect();
            names.sort();
            names
        }
    };

    assert!(deliver(event(Joiner, "1", "ada.lovelace@example.com", "Engineering", 0)).await.is_empty());
    let ada = reader.find_user("hr:1", None).await.unwrap().expect("created with our externalId");
    assert!(ada.active);
    assert_eq!(groups_of(ada.id.to_string()).await, vec!["Employees", "Engineering"]);

    assert!(deliver(event(Mover, "1", "ada.lovelace@example.com", "Finance", 5)).await.is_empty());
    assert_eq!(groups_of(ada.id.to_string()).await, vec!["Employees", "Finance"]);

    assert!(deliver(event(Leaver, "1", "ada.lovelace@example.com", "Finance", 10)).await.is_empty());
    let ada = reader.get_user(&ada.id).await.unwrap().expect("still there");
    assert!(!ada.active, "suspended, not deleted");
}
