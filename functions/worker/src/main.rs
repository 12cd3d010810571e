//! `worker`: SQS-triggered; converges each queued person through the SCIM bridge.

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use provisioning::lambda::deadline_of;
use provisioning::worker::WorkerApp;

#[tokio::main]
async fn main() -> Result<(), Error> {
    provisioning::telemetry::init("worker");
    // Built once per cold start: warm invocations reuse the clients and caches.
    let app = WorkerApp::from_env().await.inspect_err(|error| {
        tracing::error!(%error, "worker cannot start");
    })?;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let app = app.clone();
        async move {
            let response = app.handle(event.payload, deadline_of(&event.context)).await;
            provisioning::telemetry::flush_metrics();
            Ok::<_, Error>(response)
        }
    }))
    .await
}
