//! Harness for tests that use real parts: moto's server for the AWS APIs and cargo-lambda's
//! Runtime API emulator in front of the real, prebuilt function binaries.
//!
//! Every process started here is killed when its guard drops, so a failing test leaves
//! nothing running.

pub mod invite_retry_harness;
pub mod worker_harness;

pub use dev_support::{
    ChildGuard, FifoQueues, Moto, PumpRound, free_port, sqs_message, venv_tool, wait_for_port, workspace_root,
};

use anyhow::{Context, Result, bail};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

/// Makes sure the three function binaries are built (once per test process) and returns
/// their directory.
pub fn function_binaries() -> Result<PathBuf> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let root = workspace_root();
            let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
                .current_dir(&root)
                // The same selection as `cargo test --workspace` (all targets, so the same
                // features): a no-op after scripts/test's build, not a second build.
                .args(["build", "--quiet", "--workspace", "--all-targets"])
                .status()
                .map_err(|e| format!("running cargo build: {e}"))?;
            if !status.success() {
                return Err(format!("cargo build of the function binaries failed: {status}"));
            }
            let target = std::env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| root.join("target"));
            Ok(target.join("debug"))
        })
        .clone()
        .map_err(anyhow::Error::msg)
}

/// One real function binary, polling its own instance of cargo-lambda's Runtime API
/// emulator (which also emulates the Function URL).
pub struct LambdaFunction {
    pub emulator: String,
    pub log_path: PathBuf,
    http: reqwest::Client,
    _function: ChildGuard,
    _emulator: ChildGuard,
}

impl LambdaFunction {
    pub fn start(binary: &str, env: &[(String, String)]) -> Result<Self> {
        let binary_path = function_binaries()?.join(binary);
        let port = free_port();
        let mut emulator = Command::new(venv_tool("aws", "cargo-lambda")?);
        emulator
            .args(["lambda", "watch", "--only-lambda-apis", "-A", "127.0.0.1", "-P", &port.to_string()])
            .current_dir(workspace_root())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let emulator = ChildGuard::spawn("cargo lambda watch", &mut emulator)?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        wait_for_port(addr, Duration::from_secs(30))?;

        let log_path = std::env::temp_dir().join(format!("{binary}-{port}.log"));
        let log = std::fs::File::create(&log_path)?;
        let mut function = Command::new(&binary_path);
        function
            .env("AWS_LAMBDA_RUNTIME_API", format!("http://127.0.0.1:{port}/.rt"))
            .env("AWS_LAMBDA_FUNCTION_NAME", "_")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_REGION", "us-east-1")
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(log.try_clone()?)
            .stderr(log);
        let function = ChildGuard::spawn(binary, &mut function)?;
        Ok(LambdaFunction {
            emulator: format!("http://127.0.0.1:{port}"),
            log_path,
            http: reqwest::Client::builder().timeout(Duration::from_secs(60)).build()?,
            _function: function,
            _emulator: emulator,
        })
    }

    /// Invokes the function synchronously, as the Lambda Invoke API does.
    pub async fn invoke(&self, payload: &serde_json::Value) -> Result<serde_json::Value> {
        let url = format!("{}/2015-03-31/functions/_/invocations", self.emulator);
        let response = self.http.post(url).json(payload).send().await?;
        let status = response.status();
        let body = response.text().await?;
        if !status.is_success() {
            bail!("invocation failed with {status}: {body}");
        }
        serde_json::from_str(&body).with_context(|| format!("invocation answered non-JSON: {body}"))
    }

    /// [`Self::invoke`] taking its payload by value, for use as a callback.
    pub async fn invoke_owned(&self, payload: serde_json::Value) -> Result<serde_json::Value> {
        self.invoke(&payload).await
    }

    /// The Function URL for `path` (starting with `/`).
    pub fn function_url(&self, path: &str) -> String {
        format!("{}/lambda-url/_{path}", self.emulator)
    }

    /// Everything the function wrote to stdout and stderr so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}
