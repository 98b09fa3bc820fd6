//! Serving an axum [`Router`] on a bound listener with the limits a public
//! listener needs: the one accept loop of `serve` and of every local-stack
//! listener (vending API, STS emulator, IoT gateway).
//!
//! hyper does the HTTP/1.1 work; this module adds what it leaves to the caller:
//! a deadline for a request's headers (which also closes a keep-alive connection
//! that sends nothing — hyper restarts the header timer while it waits for the
//! next request), a total deadline for reading a body ([`read_body`]), optional
//! TLS (rustls) with a handshake deadline, the peer address as a request
//! extension, and a graceful stop. A client that trickles a header line every few
//! seconds (slowloris) is cut off at the header deadline, whatever it sends.
//!
//! Not here: routing, authentication, WebSocket sessions (their own module keeps
//! their deadlines), and HTTP/2.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tower::ServiceExt;

/// The deadlines and limits of one listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// HTTP connections served at once; one more is closed at once, with a
    /// warning (a WebSocket stops counting once upgraded: the gateway's sessions
    /// are authenticated and bounded on their own).
    pub max_connections: usize,
    /// From the first byte of a request (or from the end of the previous response
    /// on a keep-alive connection) to the end of its headers.
    pub header_read: Duration,
    /// For reading a whole request body.
    pub body_read: Duration,
    /// For a TLS handshake.
    pub tls_handshake: Duration,
    /// For in-flight requests to finish once a stop is asked for.
    pub graceful_stop: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            max_connections: 4096,
            header_read: Duration::from_secs(10),
            body_read: Duration::from_secs(10),
            tls_handshake: Duration::from_secs(10),
            graceful_stop: Duration::from_secs(5),
        }
    }
}

/// The most a listener buffers of a request's line and headers.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// Why a request body could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("the body is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("the body did not arrive within {0:?}")]
    Timeout(Duration),
    #[error("the body could not be read: {0}")]
    Read(String),
}

/// Reads at most `limit` bytes of a request's body within its listener's
/// [`Timeouts::body_read`] (the default when the request did not come through
/// [`serve`], as in Lambda). A declared `Content-Length` over the limit is refused
/// before anything is read.
/// Takes the request's parts by reference, so the handler keeps them without a copy.
pub async fn read_body(parts: &http::request::Parts, body: Body, limit: usize) -> Result<Bytes, BodyError> {
    let deadline = parts
        .extensions
        .get::<Timeouts>()
        .copied()
        .unwrap_or_default()
        .body_read;
    if declared_length(&parts.headers).is_some_and(|len| len > limit as u64) {
        return Err(BodyError::TooLarge { limit });
    }
    match tokio::time::timeout(deadline, axum::body::to_bytes(body, limit)).await {
        Err(_) => Err(BodyError::Timeout(deadline)),
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(err)) => {
            let inner = err.into_inner();
            if inner.downcast_ref::<http_body_util::LengthLimitError>().is_some() {
                Err(BodyError::TooLarge { limit })
            } else {
                Err(BodyError::Read(inner.to_string()))
            }
        }
    }
}

/// The `Content-Length` a request declares, if it is a number.
fn declared_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// Accepts connections on `listener` until `stop` resolves, serving each with
/// `router` (after TLS, when `tls` is set). WebSocket upgrades are enabled and
/// every request carries the peer's [`std::net::SocketAddr`] and the [`Timeouts`] as
/// extensions. After `stop`,
/// in-flight requests get [`Timeouts::graceful_stop`] to finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    timeouts: Timeouts,
    stop: impl Future<Output = ()>,
) {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new()).http1_only();
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(timeouts.header_read)
        // Request line and headers buffered at most: 64 KiB (hyper's default is
        // ~400 KiB per connection, read before any handler can refuse anything).
        .max_buf_size(MAX_HEADER_BYTES);
    let builder = Arc::new(builder);
    let slots = Arc::new(tokio::sync::Semaphore::new(timeouts.max_connections));
    tokio::pin!(stop);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!("accept failed: {err}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(peer = %peer, max = timeouts.max_connections, "connection refused: the listener serves its maximum of connections");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = service_for(router.clone(), peer, timeouts);
        let connection = Connection {
            builder: builder.clone(),
            acceptor: acceptor.clone(),
            watcher: graceful.watcher(),
            peer,
            tls_handshake: timeouts.tls_handshake,
        };
        tokio::spawn(async move {
            connection.serve(stream, service).await;
            drop(slot);
        });
    }
    if tokio::time::timeout(timeouts.graceful_stop, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::debug!("some connections were still open at the end of the graceful stop");
    }
}

/// The router as a hyper service for one connection: each request carries the
/// peer's address and the listener's deadlines as extensions.
fn service_for(
    router: Router,
    peer: SocketAddr,
    timeouts: Timeouts,
) -> impl hyper::service::Service<
    hyper::Request<hyper::body::Incoming>,
    Response = axum::response::Response,
    Error = Infallible,
    Future = impl Future<Output = Result<axum::response::Response, Infallible>> + Send,
> + Clone
+ Send
+ 'static {
    hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
        request.extensions_mut().insert(peer);
        request.extensions_mut().insert(timeouts);
        let router = router.clone();
        async move {
            Ok::<_, Infallible>(
                router
                    .oneshot(request.map(Body::new))
                    .await
                    .unwrap_or_else(|e| match e {}),
            )
        }
    })
}

/// One accepted connection: TLS first when configured, then HTTP/1.1 with
/// upgrades, watched for the graceful stop.
struct Connection {
    builder: Arc<auto::Builder<TokioExecutor>>,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    watcher: hyper_util::server::graceful::Watcher,
    peer: SocketAddr,
    tls_handshake: Duration,
}

impl Connection {
    async fn serve<S>(self, stream: tokio::net::TcpStream, service: S)
    where
        S: hyper::service::Service<
                hyper::Request<hyper::body::Incoming>,
                Response = axum::response::Response,
                Error = Infallible,
            > + Clone
            + Send
            + 'static,
        S::Future: Send + 'static,
    {
        let Self {
            builder,
            acceptor,
            watcher,
            peer,
            tls_handshake,
        } = self;
        let result = match acceptor {
            None => {
                let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                watcher.watch(connection.into_owned()).await
            }
            Some(acceptor) => match tokio::time::timeout(tls_handshake, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    let connection = builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
                    watcher.watch(connection.into_owned()).await
                }
                Ok(Err(err)) => {
                    tracing::debug!(peer = %peer, "TLS handshake failed: {err}");
                    return;
                }
                Err(_) => {
                    tracing::debug!(peer = %peer, "TLS handshake timed out");
                    return;
                }
            },
        };
        if let Err(err) = result {
            tracing::debug!(peer = %peer, "connection ended: {err}");
        }
    }
}
