//! `invite-retry`: scheduled; re-issues invitations that were never accepted.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use provisioning::invites::InviteRetryApp;

#[tokio::main]
async fn main() -> Result<(), Error> {
    provisioning::telemetry::init("invite-retry");
    let app = InviteRetryApp::default();
    lambda_runtime::run(service_fn(move |_event: LambdaEvent<serde_json::Value>| {
        let app = app.clone();
        async move {
            let summary = app.handle().await;
            provisioning::telemetry::flush_metrics();
            Ok::<_, Error>(summary)
        }
    }))
    .await
}
