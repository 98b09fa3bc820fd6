//! The local stack's three listeners — STS emulator, vending API, IoT gateway —
//! bound before anything is served (port 0 resolved by the OS), what to say when a
//! port cannot be bound, and serving a router on one until the stack stops.
//!
//! Not here: what each listener serves (`stack`), the accept loop and its
//! deadlines (`serverless_websockets_vending::server`).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

/// A port that could not be bound, and which flag chooses it.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen for the {what} on {addr}: {source}{}", bind_hint(source, flag))]
pub struct BindError {
    what: &'static str,
    /// The command-line flag that chooses this port.
    flag: &'static str,
    addr: SocketAddr,
    source: std::io::Error,
}

/// The ports asked for (0: any free port).
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    pub sts: u16,
    pub api: u16,
    pub iot: u16,
}

/// The three listeners, bound before anything is served.
pub struct Listeners {
    pub sts: TcpListener,
    pub api: TcpListener,
    pub iot: TcpListener,
    tls: bool,
}

impl Listeners {
    /// Binds the three ports on `host`; `tls` says how the gateway will serve.
    pub async fn bind(host: IpAddr, ports: Ports, tls: bool) -> Result<Self, BindError> {
        Ok(Self {
            sts: bind(host, ports.sts, "STS emulator", "--sts-port").await?,
            api: bind(host, ports.api, "vending API", "--api-port").await?,
            iot: bind(host, ports.iot, "IoT gateway", "--iot-port").await?,
            tls,
        })
    }

    /// The bound addresses (the OS picks a port 0 at bind time).
    pub fn addresses(&self) -> Result<Addresses, BindError> {
        let address = |listener: &TcpListener, what: &'static str, flag: &'static str| {
            listener.local_addr().map_err(|source| BindError {
                what,
                flag,
                addr: SocketAddr::from(([0, 0, 0, 0], 0)),
                source,
            })
        };
        Ok(Addresses {
            sts: address(&self.sts, "STS emulator", "--sts-port")?,
            api: address(&self.api, "vending API", "--api-port")?,
            iot: address(&self.iot, "IoT gateway", "--iot-port")?,
            tls: self.tls,
        })
    }
}

/// Where the listeners are, port 0 resolved.
pub struct Addresses {
    pub sts: SocketAddr,
    pub api: SocketAddr,
    pub iot: SocketAddr,
    pub tls: bool,
}

impl Addresses {
    pub fn sts_endpoint(&self) -> String {
        format!("http://{}", self.sts)
    }

    pub fn api_base(&self) -> String {
        format!("http://{}", self.api)
    }

    pub fn iot_endpoint(&self) -> serverless_websockets_core::presign::IotEndpoint {
        serverless_websockets_core::presign::IotEndpoint::local(self.iot, self.tls)
    }
}

async fn bind(host: IpAddr, port: u16, what: &'static str, flag: &'static str) -> Result<TcpListener, BindError> {
    let addr = SocketAddr::new(host, port);
    TcpListener::bind(addr).await.map_err(|source| BindError {
        what,
        flag,
        addr,
        source,
    })
}

/// What to do about a port that cannot be bound.
fn bind_hint(source: &std::io::Error, flag: &str) -> String {
    match source.kind() {
        std::io::ErrorKind::AddrInUse => format!(
            ". Another local stack (or another program) is using that port: stop it, or choose another port with {flag} PORT (0 = any free port)"
        ),
        std::io::ErrorKind::PermissionDenied => format!(". Choose a port above 1023 with {flag} PORT"),
        _ => String::new(),
    }
}

/// Serves `router` on `listener` until `stopped` turns true.
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    timeouts: serverless_websockets_vending::server::Timeouts,
    mut stopped: watch::Receiver<bool>,
) {
    let stop = async move {
        let _ = stopped.wait_for(|stop| *stop).await;
    };
    serverless_websockets_vending::server::serve(listener, router, tls, timeouts, stop).await;
}
