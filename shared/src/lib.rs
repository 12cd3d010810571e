//! Keeps 1Password accounts in step with the HR system and the identity provider.
//!
//! One module per concern; each external system sits behind a small trait with a real
//! (AWS/HTTP) implementation and an in-memory one. The three Lambda binaries are thin
//! wrappers around [`ingest`], [`worker`] and [`invite_retry`], each with its `Ports`.

// First, so the suites below see its macros.
#[cfg(any(test, feature = "test-support"))]
#[macro_use]
mod conformance_macros;

pub mod apply;
pub mod clock;
pub mod config;
pub mod desired;
pub mod enrich;
pub mod event;
pub mod events_api;
pub mod groups;
pub mod http_api;
pub mod http_retry;
pub mod ingest;
pub mod invite_retry;
pub mod lambda;
pub mod ledger;
pub mod mapping;
pub mod notify;
pub mod plan;
pub mod queue;
pub mod scim;
pub mod secrets;
pub mod sources;
pub mod sweep;
pub mod telemetry;
pub mod truth;
pub mod worker;

pub use event::{Attributes, EventKind, LifecycleEvent, PersonKey, SourceKind};
