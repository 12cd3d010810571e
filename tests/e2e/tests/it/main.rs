//! The e2e crate's one integration-test binary: the real binaries and adapters over real
//! protocols (moto, the 1Password simulator, scim2-server, cargo-lambda's emulator).

mod support;

mod binaries_answer;
mod chaos;
mod converge;
mod directory_conformance;
mod due_sweep;
mod groups_matrix;
mod ingest_function_url;
mod ingest_sqs;
mod invite_retry;
mod invite_retry_binary;
mod invite_retry_events_api;
mod ledger_dynamo;
mod worker_moto;
mod worker_sim;
