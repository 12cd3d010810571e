//! `reconcile`: scheduled (EventBridge, `{"task": "sweep_due_actions"}`); queues a converge
//! event for every person whose HR date has arrived.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use provisioning::lambda::deadline_of;
use provisioning::sweep::ReconcileApp;

#[tokio::main]
async fn main() -> Result<(), Error> {
    provisioning::telemetry::init("reconcile");
    let app = ReconcileApp::from_env().await.inspect_err(|error| {
        tracing::error!(%error, "reconcile cannot start");
    })?;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| {
        let app = app.clone();
        async move {
            let result = app.handle(&event.payload, deadline_of(&event.context)).await;
            provisioning::telemetry::flush_metrics();
            // A failed invocation raises ReconcileErrorsAlarm; the summary is in the log.
            result.map_err(Error::from)
        }
    }))
    .await
}
