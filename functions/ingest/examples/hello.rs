//! The smallest lambda_runtime function: the baseline `scripts/bench-cold-start` compares
//! the `ingest` binary's cold start against. Built with the same profile and toolchain.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move { Ok::<Value, Error>(event.payload) })).await
}
