//! `invite-retry`: scheduled (EventBridge); re-issues invitations that were never accepted.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use provisioning::invite_retry::InviteRetryApp;
use provisioning::lambda::deadline_of;

#[tokio::main]
async fn main() -> Result<(), Error> {
    provisioning::telemetry::init("invite-retry");
    let app = InviteRetryApp::from_env().await.inspect_err(|error| {
        tracing::error!(%error, "invite-retry cannot start");
    })?;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| {
        let app = app.clone();
        async move {
            let summary = app.handle(deadline_of(&event.context)).await;
            provisioning::telemetry::flush_metrics();
            // A failed invocation raises InviteRetryErrorsAlarm; the summary is in the log.
            match summary.errors.first() {
                Some(first) => {
                    Err(Error::from(format!("invite-retry run had {} error(s); first: {first}", summary.errors.len())))
                }
                None => Ok(summary),
            }
        }
    }))
    .await
}
