//! `worker`: SQS-triggered; plans and applies lifecycle events.

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use provisioning::worker::WorkerApp;

#[tokio::main]
async fn main() -> Result<(), Error> {
    provisioning::telemetry::init("worker");
    let app = WorkerApp::default();
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let app = app.clone();
        async move {
            let response = app.handle(event.payload).await;
            provisioning::telemetry::flush_metrics();
            Ok::<_, Error>(response)
        }
    }))
    .await
}
