//! `op-sim`: runs the 1Password simulator until killed. Prints the bound address as its first
//! line on stdout (`op-sim listening on http://127.0.0.1:PORT`).

use std::collections::HashMap;
use std::io::Write;

use anyhow::Context;
use onepassword_sim::cli::{self, Command};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .init();

    let args: Vec<String> = std::env::args().skip(1).collect();
    let env: HashMap<String, String> = std::env::vars().collect();
    let (addr, config) = match cli::parse(&args, &env)? {
        Command::Help => {
            print!("{}", cli::usage());
            return Ok(());
        }
        Command::Run { addr, config } => (addr, config),
    };

    let sim = onepassword_sim::spawn(config, addr).await?;
    let mut stdout = std::io::stdout();
    writeln!(stdout, "op-sim listening on {}", sim.base_url()).context("writing to stdout")?;
    stdout.flush().context("flushing stdout")?;

    shutdown_signal().await;
    sim.shutdown().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
