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

/// The ports that could not be bound, every one of them (not one per try), and
/// which flag chooses each.
#[derive(Debug)]
pub struct BindError {
    failures: Vec<Failure>,
}

/// One port that could not be bound.
#[derive(Debug)]
struct Failure {
    what: &'static str,
    /// The command-line flag that chooses this port.
    flag: &'static str,
    addr: SocketAddr,
    error: std::io::Error,
}

impl std::error::Error for BindError {}

impl std::fmt::Display for BindError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let lines: Vec<String> = self
            .failures
            .iter()
            .map(|e| format!("cannot listen for the {} on {}: {}", e.what, e.addr, e.error))
            .collect();
        f.write_str(&lines.join("; "))?;
        let busy: Vec<String> = self
            .failures
            .iter()
            .filter(|e| e.error.kind() == std::io::ErrorKind::AddrInUse)
            .map(|e| format!("{} PORT", e.flag))
            .collect();
        if !busy.is_empty() {
            write!(
                f,
                ". Another local stack (or another program) is using {}: stop it, or choose free ports with {} (0 = any free port; the banner and the ready file say which)",
                if busy.len() == 1 { "that port" } else { "those ports" },
                busy.join(" ")
            )?;
        }
        if let Some(e) = self
            .failures
            .iter()
            .find(|e| e.error.kind() == std::io::ErrorKind::PermissionDenied)
        {
            write!(f, ". Choose a port above 1023 with {} PORT", e.flag)?;
        }
        Ok(())
    }
}

impl BindError {
    fn one(what: &'static str, flag: &'static str, addr: SocketAddr, error: std::io::Error) -> Self {
        Self {
            failures: vec![Failure {
                what,
                flag,
                addr,
                error,
            }],
        }
    }
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
        // All three are tried, so that every busy port is reported at once.
        let sts = bind(host, ports.sts, "STS emulator", "--sts-port").await;
        let api = bind(host, ports.api, "vending API", "--api-port").await;
        let iot = bind(host, ports.iot, "IoT gateway", "--iot-port").await;
        match (sts, api, iot) {
            (Ok(sts), Ok(api), Ok(iot)) => Ok(Self { sts, api, iot, tls }),
            (sts, api, iot) => Err(BindError {
                failures: [sts.err(), api.err(), iot.err()]
                    .into_iter()
                    .flatten()
                    .flat_map(|e| e.failures)
                    .collect(),
            }),
        }
    }

    /// The bound addresses (the OS picks a port 0 at bind time).
    pub fn addresses(&self) -> Result<Addresses, BindError> {
        let address = |listener: &TcpListener, what: &'static str, flag: &'static str| {
            listener
                .local_addr()
                .map_err(|error| BindError::one(what, flag, SocketAddr::from(([0, 0, 0, 0], 0)), error))
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
    TcpListener::bind(addr)
        .await
        .map_err(|error| BindError::one(what, flag, addr, error))
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

/// Raises the process's open-file limit to at least `want`, or as far as it
/// goes: the hard limit too when the process may (root), else the soft limit to
/// the hard one, as servers do — each connection is a file, and a login shell's
/// soft limit (often 1,024) is what breaks first under many clients. Children
/// started afterwards inherit it. Returns the soft limit `(before, after)`.
pub fn raise_file_limit(want: u64) -> std::io::Result<(u64, u64)> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read and write the struct passed, nothing else.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut limit) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let before = limit.rlim_cur;
        if want > limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: want,
                rlim_max: want,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raw const raised) == 0 {
                return Ok((before, want));
            }
        }
        if before >= limit.rlim_max {
            return Ok((before, before));
        }
        limit.rlim_cur = limit.rlim_max;
        if libc::setrlimit(libc::RLIMIT_NOFILE, &raw const limit) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok((before, limit.rlim_max))
    }
}
