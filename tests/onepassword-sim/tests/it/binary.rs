//! The `op-sim` binary: flags, the printed address line, serving until killed.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn prints_its_address_and_serves_with_flags_and_env() {
    let mut child = Child(
        Command::new(env!("CARGO_BIN_EXE_op-sim"))
            .args(["--addr", "127.0.0.1:0", "--scim-token", "flag-token", "--create-status=201"])
            .env("OP_SIM_FILTERS", "rejected")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("op-sim starts"),
    );
    let mut line = String::new();
    BufReader::new(child.0.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let base = line.trim().strip_prefix("op-sim listening on ").expect("address line").to_owned();
    assert!(base.starts_with("http://127.0.0.1:") && !base.ends_with(":0"), "{base}");

    let http = reqwest::Client::new();
    assert_eq!(http.get(format!("{base}/ping")).send().await.unwrap().status(), 200);
    let created = http
        .post(format!("{base}/scim/v2/Users"))
        .bearer_auth("flag-token")
        .json(&serde_json::json!({"userName": "bin@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let filtered = http
        .get(format!("{base}/scim/v2/Users?filter=userName%20eq%20%22bin%40example.com%22"))
        .bearer_auth("flag-token")
        .send()
        .await
        .unwrap();
    assert_eq!(filtered.status(), 400, "filter support switched off through the environment");
}

#[test]
fn rejects_unknown_flags_with_a_clear_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_op-sim")).args(["--bogus", "1"]).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unknown option --bogus"), "{stderr}");
    let help = Command::new(env!("CARGO_BIN_EXE_op-sim")).arg("--help").output().unwrap();
    assert!(String::from_utf8_lossy(&help.stdout).contains("--invite-ttl"));
}
