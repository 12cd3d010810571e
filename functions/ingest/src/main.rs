//! `ingest`: the webhook endpoint behind a Lambda Function URL.

use lambda_http::{Error, Request, service_fn};
use provisioning::ingest::IngestApp;

#[tokio::main]
async fn main() -> Result<(), Error> {
    provisioning::telemetry::init("ingest");
    // Built once per cold start: warm invocations reuse the clients and the cached secret.
    let app = match IngestApp::from_env().await {
        Ok(app) => app,
        Err(error) => {
            tracing::error!(%error, "ingest is misconfigured; webhook routes answer 500");
            IngestApp::misconfigured(error.to_string())
        }
    };
    lambda_http::run(service_fn(move |request: Request| {
        let app = app.clone();
        async move {
            let response = app.handle(request).await;
            provisioning::telemetry::flush_metrics();
            Ok::<_, Error>(response)
        }
    }))
    .await
}
