//! The HTTP server: route assembly, the request observer (operations log + fault injection),
//! and a listener whose connections can be dropped on purpose.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, HttpBody};
use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use crate::faults::FaultAction;
use crate::scim::error::ScimError;
use crate::state::SimState;
use crate::{control, events, scim};

/// A TCP connection the fault injector can cut: once killed, every read sees end-of-file and
/// every write fails, so hyper closes the socket without sending a byte of the response.
pub struct KillableStream {
    inner: TcpStream,
    killed: Arc<AtomicBool>,
}

fn killed_error() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionReset, "connection dropped by fault injection")
}

impl AsyncRead for KillableStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.killed.load(Ordering::Acquire) {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for KillableStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.killed.load(Ordering::Acquire) {
            return Poll::Ready(Err(killed_error()));
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.killed.load(Ordering::Acquire) {
            return Poll::Ready(Err(killed_error()));
        }
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Per-connection handle handed to requests, so a fault can drop the connection.
#[derive(Clone, Debug)]
pub struct ConnHandle {
    pub remote: SocketAddr,
    killed: Arc<AtomicBool>,
}

impl ConnHandle {
    fn kill(&self) {
        self.killed.store(true, Ordering::Release);
    }
}

impl Connected<IncomingStream<'_, SimListener>> for ConnHandle {
    fn connect_info(stream: IncomingStream<'_, SimListener>) -> Self {
        stream.remote_addr().clone()
    }
}

pub struct SimListener {
    inner: TcpListener,
}

impl SimListener {
    pub fn new(inner: TcpListener) -> Self {
        SimListener { inner }
    }
}

impl Listener for SimListener {
    type Io = KillableStream;
    type Addr = ConnHandle;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.inner.accept().await {
                Ok((stream, remote)) => {
                    // Small request/response pairs: don't let Nagle add latency.
                    let _ = stream.set_nodelay(true);
                    let killed = Arc::new(AtomicBool::new(false));
                    return (KillableStream { inner: stream, killed: killed.clone() }, ConnHandle { remote, killed });
                }
                // Out of file descriptors and the like: wait a little rather than spin.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(ConnHandle { remote: self.inner.local_addr()?, killed: Arc::new(AtomicBool::new(false)) })
    }
}

/// Logs every SCIM / Events request, applies injected faults to it, and counts SCIM traffic.
async fn observe(
    State(state): State<SimState>,
    ConnectInfo(conn): ConnectInfo<ConnHandle>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_owned();
    if path.starts_with("/_sim") {
        return next.run(request).await;
    }
    let scim = !path.starts_with("/api/");
    if scim {
        state.count_request();
    }
    let method = request.method().as_str().to_owned();
    let seq = state.log_begin(&method, &path, request.uri().query());
    let decision = state.decide_fault(&method, &path);
    for label in &decision.labels {
        state.log_fault(seq, label);
    }
    if !decision.delay.is_zero() {
        tokio::time::sleep(decision.delay).await;
    }
    let response = match decision.terminal {
        None | Some(FaultAction::Latency { .. }) => {
            let response = next.run(request).await;
            state.log_finish(seq, Some(response.status().as_u16()));
            response
        }
        Some(FaultAction::Status { status, retry_after }) => {
            state.log_finish(seq, Some(status));
            fault_response(&path, status, retry_after)
        }
        Some(FaultAction::Drop) => {
            conn.kill();
            return dropped();
        }
        Some(FaultAction::Hang) => {
            state.until_shutdown().await;
            conn.kill();
            return dropped();
        }
    };
    if scim { count_body(&state, response).await } else { response }
}

/// Adds the body size to the traffic counters. Every body the simulator builds has a known
/// size; anything else is buffered to be measured.
async fn count_body(state: &SimState, response: Response) -> Response {
    if let Some(size) = response.body().size_hint().exact() {
        state.count_response_bytes(size);
        return response;
    }
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
    state.count_response_bytes(bytes.len() as u64);
    Response::from_parts(parts, Body::from(bytes))
}

/// Never reaches the client: the connection is killed before hyper writes it.
fn dropped() -> Response {
    let mut response = StatusCode::INTERNAL_SERVER_ERROR.into_response();
    response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

fn fault_response(path: &str, status: u16, retry_after: Option<u64>) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let detail = code.canonical_reason().unwrap_or("injected fault");
    let mut response = if path.starts_with("/api/") {
        events::error(code, detail)
    } else {
        ScimError::new(status, None, detail).into_response()
    };
    if let Some(seconds) = retry_after {
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

async fn fallback(request: Request) -> Response {
    if request.uri().path().starts_with("/api/") {
        events::error(StatusCode::NOT_FOUND, "Not Found")
    } else {
        scim::not_found().await.into_response()
    }
}

async fn method_not_allowed(request: Request) -> Response {
    if request.uri().path().starts_with("/api/") {
        events::error(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
    } else {
        scim::method_not_allowed().await.into_response()
    }
}

pub fn app(state: &SimState) -> Router {
    let mut router = scim::router(state);
    if state.config().events_token.is_some() {
        router = router.merge(events::router(state));
    }
    if state.config().control_api {
        router = router.merge(control::router());
    }
    router
        .fallback(fallback)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state.clone())
}
