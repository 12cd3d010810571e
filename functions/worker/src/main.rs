//! `worker`: SQS-triggered; plans and applies lifecycle events through the SCIM bridge.

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use provisioning::worker::{WorkerApp, deadline_of};

#[tokio::main]
async fn main() -> Result<(), Error> {
    provisioning::telemetry::init("worker");
    let app = WorkerApp::from_env().await.inspect_err(|error| {
        tracing::error!(%error, "worker cannot start");
    })?;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let app = app.clone();
        async move {
            let deadline = deadline_of(&event.context);
            let response = app.handle(event.payload, deadline).await;
            provisioning::telemetry::flush_metrics();
            Ok::<_, Error>(response)
        }
    }))
    .await
}
