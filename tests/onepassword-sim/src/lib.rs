//! A 1Password simulator for tests, benchmarks and the local stack: the SCIM bridge (with the
//! invitation lifecycle SCIM cannot show), the Events API, a controllable clock, a control API
//! and fault injection, over real HTTP.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use onepassword_sim::{SimConfig, spawn};
//! let sim = spawn(SimConfig::default(), "127.0.0.1:0".parse()?).await?;
//! println!("SCIM at {}/scim/v2", sim.base_url());
//! let state = sim.state();
//! state.advance_clock(std::time::Duration::from_secs(6 * 86_400));
//! let traffic = state.traffic(); // SCIM requests and response body bytes so far
//! # let _ = traffic;
//! sim.shutdown().await;
//! # Ok(()) }
//! ```

pub mod cli;
pub mod clock;
pub mod config;
pub mod control;
pub mod error;
pub mod events;
pub mod faults;
mod ids;
pub mod model;
pub mod oplog;
pub mod scim;
pub mod server;
pub mod state;

use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use config::{
    ConflictMode, CreateStatus, DuplicateGroupName, FilterMode, GroupMembers, ProtectedGroupError, SimConfig,
    SuspendedEmailChange, UserGroups,
};
pub use error::SimError;
pub use faults::{ActiveFault, FaultAction, FaultRule};
pub use model::*;
pub use oplog::Operation;
pub use state::SimState;

#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("cannot bind {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
}

/// A simulator serving HTTP. Dropping it stops the server too.
#[derive(Debug)]
pub struct RunningSim {
    /// The bound address (the real port when 0 was asked for).
    pub addr: SocketAddr,
    state: SimState,
    task: Option<JoinHandle<()>>,
}

impl RunningSim {
    /// `http://IP:PORT`. SCIM lives under `/scim/v2` (and `/scim`, and the root), the Events
    /// API under `/api/v2`, the control API under `/_sim`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The SCIM base URL clients should be configured with.
    pub fn scim_url(&self) -> String {
        format!("{}/scim/v2", self.base_url())
    }

    /// In-process handle on the simulated account (same operations as the control API).
    pub fn state(&self) -> SimState {
        self.state.clone()
    }

    /// Stops serving: hanging requests are released, open connections closed.
    pub async fn shutdown(mut self) {
        self.state.signal_shutdown();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for RunningSim {
    fn drop(&mut self) {
        self.state.signal_shutdown();
    }
}

/// Binds `addr` (port 0 picks a free port) and serves the simulator on the current runtime.
pub async fn spawn(config: SimConfig, addr: SocketAddr) -> Result<RunningSim, SpawnError> {
    let listener = TcpListener::bind(addr).await.map_err(|source| SpawnError::Bind { addr, source })?;
    let bound = listener.local_addr().map_err(|source| SpawnError::Bind { addr, source })?;
    let state = SimState::new(config);
    let app = server::app(&state);
    let shutdown_state = state.clone();
    let task = tokio::spawn(async move {
        let service = app.into_make_service_with_connect_info::<server::ConnHandle>();
        let result = axum::serve(server::SimListener::new(listener), service)
            .with_graceful_shutdown(async move { shutdown_state.until_shutdown().await })
            .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "op-sim server stopped with an error");
        }
    });
    Ok(RunningSim { addr: bound, state, task: Some(task) })
}
