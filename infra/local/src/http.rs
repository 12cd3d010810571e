//! Serves the ingest handler over plain HTTP on loopback, as the Function URL would.

use axum::body::Body as AxumBody;
use axum::extract::{Request, State};
use axum::response::Response;
use provisioning::ingest::IngestApp;

/// Bodies up to this size reach the handler, which answers 413 past its own limit.
const READ_LIMIT: usize = 8 * 1024 * 1024;

pub async fn serve(listener: tokio::net::TcpListener, app: IngestApp) {
    let router = axum::Router::new().fallback(forward).with_state(app);
    if let Err(error) = axum::serve(listener, router).await {
        tracing::error!(%error, "webhook listener stopped");
    }
}

async fn forward(State(app): State<IngestApp>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = match axum::body::to_bytes(body, READ_LIMIT).await {
        Ok(bytes) => bytes,
        Err(_) => return status_only(413),
    };
    let request = http::Request::from_parts(parts, lambda_http::Body::Binary(bytes.to_vec()));
    let (parts, body) = app.handle(request).await.into_parts();
    let body = match body {
        lambda_http::Body::Empty => AxumBody::empty(),
        lambda_http::Body::Text(text) => AxumBody::from(text),
        lambda_http::Body::Binary(bytes) => AxumBody::from(bytes),
        _ => AxumBody::empty(),
    };
    Response::from_parts(parts, body)
}

fn status_only(status: u16) -> Response {
    let mut response = Response::new(AxumBody::empty());
    *response.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::BAD_REQUEST);
    response
}
