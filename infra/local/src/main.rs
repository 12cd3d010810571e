//! `local-stack [demo|serve] [--aws] [--port N] [--bridge-url URL --bridge-token TOKEN]`
//!
//! demo  plays a scripted story and exits 0 only if 1Password ends as expected;
//! serve keeps running and prints a signed `curl` for each source.

use anyhow::{Context, Result, bail};
use local_stack::stack::{Options, Stack};
use local_stack::{demo, senders};
use std::time::Duration;

/// The command line, with the environment variables that stand in for its flags.
struct Cli {
    mode: String,
    aws: bool,
    port: u16,
    bridge: Option<(String, String)>,
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse(std::env::args().skip(1).collect())?;
    let connections = load_connections()?;
    let stack =
        Stack::start(Options { aws: cli.aws, port: cli.port, bridge: cli.bridge, connections: connections.clone() })
            .await?;
    match cli.mode.as_str() {
        "demo" => {
            let passed = demo::run(&stack, &connections).await?;
            println!(
                "\n{}",
                if passed {
                    "Demo passed: 1Password ends in the expected state."
                } else {
                    "Demo FAILED: see ✗ above."
                }
            );
            // Stopped before exiting: `exit` skips destructors, and the stack's guards are
            // what stop the simulator and moto's server.
            drop(stack);
            std::process::exit(if passed { 0 } else { 1 });
        }
        "serve" => serve(&stack, &connections).await,
        other => bail!("unknown mode {other:?}: use demo or serve"),
    }
}

impl Cli {
    fn parse(args: Vec<String>) -> Result<Self> {
        let flag = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
        let mode = args.first().filter(|a| !a.starts_with("--")).cloned().unwrap_or_else(|| "demo".into());
        let aws = args.iter().any(|a| a == "--aws")
            || std::env::var("LOCAL_STACK_AWS").is_ok_and(|v| v == "1" || v == "true");
        let bridge_url = flag("--bridge-url").or_else(|| std::env::var("LOCAL_BRIDGE_URL").ok());
        let bridge_token = flag("--bridge-token").or_else(|| std::env::var("LOCAL_BRIDGE_TOKEN").ok());
        let bridge = match (bridge_url, bridge_token) {
            (Some(url), Some(token)) => Some((url, token)),
            (None, None) => None,
            _ => bail!("--bridge-url and --bridge-token go together"),
        };
        // The demo picks any free port; serve needs one the curl lines can keep using.
        let port = flag("--port")
            .map(|p| p.parse())
            .transpose()
            .context("--port must be a number")?
            .unwrap_or(if mode == "demo" { 0 } else { 8787 });
        Ok(Cli { mode, aws, port, bridge })
    }
}

fn load_connections() -> Result<serde_json::Value> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/connections.json");
    Ok(serde_json::from_str(&std::fs::read_to_string(path)?)?)
}

async fn serve(stack: &Stack, connections: &serde_json::Value) -> Result<()> {
    let keys = senders::Keys::from_connections(connections)?;
    println!("Webhook endpoint: {}/webhooks/<connection>  (1Password: {})", stack.ingest_url, stack.scim_url);
    println!("Signed requests you can paste (signatures are valid for 5 minutes; restart for fresh ones):\n");
    for (label, webhook) in sample_webhooks(&keys)? {
        println!("# {label}\n{}\n", webhook.curl(&stack.ingest_url));
    }
    println!(
        "The worker drains the queue continuously; every 10 s the simulator's clock moves 1 day ahead and the due-action sweep and invite-retry run. Ctrl-C stops."
    );
    keep_running(stack).await
}

/// One signed request per source, labelled.
fn sample_webhooks(keys: &senders::Keys) -> Result<[(&'static str, senders::Webhook); 5]> {
    let generic = serde_json::json!({"kind":"joiner","person":{"source":"hr-generic","id":"E-1"},"source_kind":"generic",
        "source_event_id":"hired-E-1","effective_at":chrono::Utc::now().to_rfc3339(),
        "attributes":{"work_email":"dana.kim@acme.test","given_name":"Dana","family_name":"Kim","department":"Finance"}});
    let future_leaver = serde_json::json!({"kind":"leaver","person":{"source":"hr-generic","id":"E-1"},
        "source_kind":"generic","source_event_id":"leaves-E-1",
        "effective_at":(chrono::Utc::now() + chrono::Duration::days(14)).to_rfc3339(),
        "attributes":{"work_email":"dana.kim@acme.test"}});
    Ok([
        (
            "BambooHR (thin event; enriched from the stand-in HR directory if known)",
            senders::bamboohr_event(keys, "employee.created", "101"),
        ),
        ("HiBob", senders::hibob_event(keys, "employee.left", "3001", &[])),
        (
            "Okta",
            senders::okta_event(
                keys,
                "user.lifecycle.deactivate",
                "00uken0000000001",
                "ken.thompson@acme.test",
                "Ken Thompson",
            ),
        ),
        ("Generic (Standard Webhooks)", senders::generic_event(keys, &generic)?),
        (
            "Generic leaver dated 14 days ahead: Dana stays active; the due-action sweep suspends her when the simulated clock passes it (about 2 minutes of `serve`)",
            senders::generic_event(keys, &future_leaver)?,
        ),
    ])
}

/// Until Ctrl-C: the worker drains what arrives, and invite-retry runs with the
/// simulator's clock a day further each time, so expiries show up within a minute.
async fn keep_running(stack: &Stack) -> Result<()> {
    let mut worker_tick = tokio::time::interval(Duration::from_millis(200));
    let mut retry_tick = tokio::time::interval(Duration::from_secs(10));
    loop {
        tokio::select! {
            _ = worker_tick.tick() => {
                let done = stack.drain().await?;
                if done > 0 { println!("worker: applied {done} event(s)"); }
            }
            _ = retry_tick.tick() => {
                if let Some(sim) = &stack.sim { sim.state().advance_clock(Duration::from_secs(86_400)); }
                let swept = stack.run_due_sweep().await;
                if swept.enqueued > 0 { println!("due-action sweep: {} converge(s) queued", swept.enqueued); }
                let summary = stack.run_invite_retry().await;
                if summary.reinvited + summary.escalated > 0 {
                    println!("invite-retry: re-invited {}, escalated {}", summary.reinvited, summary.escalated);
                }
            }
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}
