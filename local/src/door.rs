//! The local stack's front door against web pages: what keeps a page on another
//! site from driving the emulators through the visitor's browser.
//!
//! Browsers apply no CORS to WebSockets, and a page can make its own name resolve
//! to 127.0.0.1 (DNS rebinding), the class of holes found in webpack-dev-server
//! and Vite. So every listener checks, before any handler runs:
//!
//! * `Host` ([`Door::host_allowed`]): an IP address literal, `localhost` (or a
//!   name under it), or a name given with `--allow-host`. A rebinding page sends
//!   its own name, which is none of these.
//! * `Origin` ([`Door::origin_allowed`], the gateway and STS listeners): absent
//!   (not a browser), one of the stack's own origins (its loopback names and the
//!   bound address on its API and gateway ports), or allowed by
//!   `CORS_ALLOW_ORIGINS`. The vending API applies its own CORS.
//!
//! Secrets (the demo page's backend credentials) go to loopback peers only
//! ([`is_loopback_peer`]), and `--host` other than loopback prints a warning.
//!
//! Not here: authentication (SigV4, JWT), which still applies to whatever passes.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serverless_websockets_vending::config::CorsOrigins;

/// Which hosts and origins the stack answers.
#[derive(Debug, Clone)]
pub struct Door {
    /// Host names (lowercase, no port) besides IP literals and `localhost`.
    names: Vec<String>,
    /// The stack's own origins, `scheme://host:port`, lowercase.
    own_origins: Vec<String>,
    cors: CorsOrigins,
}

impl Door {
    /// The door of a stack bound to `host` on `ports` (API, gateway), answering
    /// the extra `names` too, with the vending API's CORS setting.
    pub fn new(host: IpAddr, ports: &[u16], names: &[String], cors: CorsOrigins) -> Self {
        let names: Vec<String> = names.iter().map(|n| n.trim().to_ascii_lowercase()).collect();
        let mut hosts = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "[::1]".to_owned()];
        if !host.is_unspecified() && !host.is_loopback() {
            hosts.push(match host {
                IpAddr::V4(v4) => v4.to_string(),
                IpAddr::V6(v6) => format!("[{v6}]"),
            });
        }
        hosts.extend(names.iter().cloned());
        let own_origins = hosts
            .iter()
            .flat_map(|h| {
                ports
                    .iter()
                    .flat_map(move |p| ["http", "https"].map(|scheme| format!("{scheme}://{h}:{p}")))
            })
            .collect();
        Self {
            names,
            own_origins,
            cors,
        }
    }

    /// Whether a request's `Host` header names this stack (see the module docs).
    /// An absent one passes: browsers always send it.
    pub fn host_allowed(&self, host: Option<&str>) -> bool {
        let Some(host) = host else {
            return true;
        };
        let name = strip_port(host.trim()).to_ascii_lowercase();
        if name.trim_matches(['[', ']']).parse::<IpAddr>().is_ok() {
            return true;
        }
        name == "localhost" || name.ends_with(".localhost") || self.names.contains(&name)
    }

    /// Whether a request's `Origin` may reach the gateway or STS.
    pub fn origin_allowed(&self, origin: Option<&str>) -> bool {
        let Some(origin) = origin else {
            return true;
        };
        let origin = origin.trim().trim_end_matches('/').to_ascii_lowercase();
        if self.own_origins.contains(&origin) {
            return true;
        }
        match &self.cors {
            CorsOrigins::None => false,
            CorsOrigins::Any => true,
            CorsOrigins::List(list) => list.iter().any(|o| o.eq_ignore_ascii_case(&origin)),
        }
    }
}

/// `host` without its `:port` (IPv6 literals keep their brackets).
fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |end| &host[..=end]);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

/// Whether the request came from this machine (the peer address the listener
/// attached); with no address, it did not.
pub fn is_loopback_peer(request: &Request) -> bool {
    request
        .extensions()
        .get::<SocketAddr>()
        .is_some_and(|peer| peer.ip().to_canonical().is_loopback())
}

/// What to tell someone who binds the stack to `host`, when it is not loopback:
/// anyone who can reach it can use the stack.
pub fn exposure_warning(host: IpAddr) -> Option<String> {
    (!host.is_loopback()).then(|| {
        format!(
            "listening on {host}, beyond this machine: anyone who can reach it can get credentials from the vending \
             API and use the emulators; keep it on a trusted network, or use --host 127.0.0.1"
        )
    })
}

fn refuse(what: &str, value: &str) -> Response {
    tracing::warn!(value = %value, "request refused: its {what} is not one of the local stack's");
    let message = format!(
        "The local stack does not answer this {what}: {value}. Use localhost or an IP address (or start it with \
         --allow-host NAME); a web page on another origin needs CORS_ALLOW_ORIGINS."
    );
    (
        StatusCode::FORBIDDEN,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::json!({ "error": "Forbidden", "message": message }).to_string(),
    )
        .into_response()
}

fn header_text(request: &Request, name: header::HeaderName) -> Option<&str> {
    request.headers().get(name).map(|v| v.to_str().unwrap_or("\u{fffd}"))
}

/// Middleware: refuses a request whose `Host` is not the stack's, or, when
/// `check_origin`, whose `Origin` is not.
async fn check(State((door, check_origin)): State<(Arc<Door>, bool)>, request: Request, next: Next) -> Response {
    let host = header_text(&request, header::HOST);
    if !door.host_allowed(host) {
        return refuse("Host", host.unwrap_or_default());
    }
    let origin = header_text(&request, header::ORIGIN);
    if check_origin && !door.origin_allowed(origin) {
        return refuse("Origin", origin.unwrap_or_default());
    }
    next.run(request).await
}

/// `router` behind the door: the `Host` check for the vending API (which applies
/// its own CORS), `Host` and `Origin` for the others.
pub fn guard(router: axum::Router, door: &Arc<Door>, check_origin: bool) -> axum::Router {
    router.layer(axum::middleware::from_fn_with_state(
        (door.clone(), check_origin),
        check,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn door(cors: CorsOrigins) -> Door {
        Door::new(
            IpAddr::from([127, 0, 0, 1]),
            &[3000, 8443],
            &["gateway".to_owned()],
            cors,
        )
    }

    #[test]
    fn binding_beyond_loopback_is_warned_about() {
        assert!(exposure_warning(IpAddr::from([0, 0, 0, 0])).is_some());
        assert!(exposure_warning(IpAddr::from([192, 168, 1, 20])).is_some());
        assert!(exposure_warning(IpAddr::from([127, 0, 0, 1])).is_none());
        assert!(exposure_warning("::1".parse().unwrap()).is_none());
    }

    #[test]
    fn hosts_are_ip_literals_localhost_and_the_names_given() {
        let door = door(CorsOrigins::None);
        for ok in [
            "127.0.0.1:3000",
            "localhost:8443",
            "LOCALHOST",
            "app.localhost:3000",
            "[::1]:8443",
            "192.168.1.20:3000",
            "gateway:8443",
        ] {
            assert!(door.host_allowed(Some(ok)), "{ok}");
        }
        for refused in [
            "evil.example:3000",
            "127.0.0.1.nip.io:8443",
            "localhost.evil.example",
            "gateway.evil:1",
        ] {
            assert!(!door.host_allowed(Some(refused)), "{refused}");
        }
        assert!(door.host_allowed(None));
    }

    #[test]
    fn origins_are_absent_the_stacks_own_or_allowed_by_cors() {
        let listed = door(CorsOrigins::List(vec!["http://localhost:5173".to_owned()]));
        for ok in [
            None,
            Some("http://127.0.0.1:3000"),
            Some("http://localhost:8443/"),
            Some("http://localhost:5173"),
        ] {
            assert!(listed.origin_allowed(ok), "{ok:?}");
        }
        for refused in [
            "http://evil.example",
            "http://127.0.0.1:9999",
            "http://1.2.3.4:3000",
            "null",
        ] {
            assert!(!listed.origin_allowed(Some(refused)), "{refused}");
        }
        assert!(door(CorsOrigins::Any).origin_allowed(Some("http://evil.example")));
    }
}
