//! Who is connected, and who was: the sessions by client ID and the clients that
//! left without one, as `GetConnection` and the lifecycle events report them
//! (<https://docs.aws.amazon.com/iot/latest/apireference/API_iotdata_GetConnection.html>,
//! <https://docs.aws.amazon.com/iot/latest/developerguide/life-cycle-events.html>).
//!
//! A departed client is remembered once per client ID however often it comes and
//! goes, for [`DEPARTED_RETENTION`] and at most [`MAX_DEPARTED`] of them.
//!
//! Not here: the sessions' contents ([`super::session`]), the events themselves
//! (`gateway::lifecycle`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::SystemTime;

pub use serverless_websockets_core::quota::DEPARTED_RETENTION;

use super::session::Session;

/// At most this many departed clients are remembered.
const MAX_DEPARTED: usize = 100_000;

/// Milliseconds since the epoch, as AWS's APIs and events report times.
pub fn millis(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Why the gateway ended a connection: AWS's lifecycle `disconnectReason` values
/// (<https://docs.aws.amazon.com/iot/latest/developerguide/life-cycle-events.html>).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisconnectReason {
    /// MQTT DISCONNECT, or a WebSocket Close frame from the client.
    ClientInitiated,
    ConnectionLost,
    DuplicateClientId,
    /// Not allowed to connect at all.
    ForbiddenAccess,
    /// A SUBSCRIBE or PUBLISH the policy refuses ("authorization failed").
    AuthError,
    KeepAliveTimeout,
    ClientError,
    ServerInitiated,
    Throttled,
    /// `DeleteConnection`.
    ApiInitiated,
    /// A custom authorizer's `disconnectAfterInSeconds` is over.
    CustomAuthTtl,
    /// The WebSocket connection reached IoT's maximum duration (24 h).
    WebsocketTtl,
}

impl DisconnectReason {
    pub fn as_aws(self) -> &'static str {
        match self {
            Self::ClientInitiated => "CLIENT_INITIATED_DISCONNECT",
            Self::ConnectionLost => "CONNECTION_LOST",
            Self::DuplicateClientId => "DUPLICATE_CLIENTID",
            Self::ForbiddenAccess => "FORBIDDEN_ACCESS",
            Self::AuthError => "AUTH_ERROR",
            Self::KeepAliveTimeout => "MQTT_KEEP_ALIVE_TIMEOUT",
            Self::ClientError => "CLIENT_ERROR",
            Self::ServerInitiated => "SERVER_INITIATED_DISCONNECT",
            Self::Throttled => "THROTTLED",
            Self::ApiInitiated => "API_INITIATED_DISCONNECT",
            Self::CustomAuthTtl => "CUSTOMAUTH_TTL_EXPIRATION",
            Self::WebsocketTtl => "WEBSOCKET_TTL_EXPIRATION",
        }
    }
}

/// What `GetConnection` reports about a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionInfo {
    pub clean_session: bool,
    pub keep_alive_secs: u64,
    /// Milliseconds since the epoch.
    pub connected_since: u64,
    pub session_expiry_secs: u64,
    /// The client's address (`includeSocketInformation`).
    pub source: std::net::SocketAddr,
}

/// A client's state as `GetConnection` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presence {
    pub connected: bool,
    pub info: ConnectionInfo,
    /// When and why it left, while it is not connected.
    pub departed: Option<(u64, DisconnectReason)>,
}

pub(super) struct Record {
    pub(super) session: Arc<Session>,
    pub(super) info: ConnectionInfo,
    /// While a persistent session's client is away: when it left, why, and when
    /// the session expires.
    pub(super) away: Option<(u64, DisconnectReason, tokio::time::Instant)>,
    /// While the client is away: the one task that publishes its delayed will and
    /// expires the session, stopped when a connection takes the session up.
    pub(super) timer: Option<tokio::task::AbortHandle>,
}

impl Record {
    /// Stops the away timer, and with it a will still waiting for its delay.
    pub(super) fn stop_timer(&mut self) {
        if let Some(timer) = self.timer.take() {
            timer.abort();
        }
    }
}

struct Departed {
    info: ConnectionInfo,
    at: u64,
    reason: DisconnectReason,
    /// Its key in [`Registry::departures`].
    order: (tokio::time::Instant, u64),
}

/// Sessions by client ID, and clients that left without one (for `GetConnection`),
/// one entry per client ID however often it comes and goes.
#[derive(Default)]
pub(super) struct Registry {
    pub(super) sessions: HashMap<String, Record>,
    departed: HashMap<String, Departed>,
    /// Departures in time order, for forgetting them after the retention.
    departures: BTreeMap<(tokio::time::Instant, u64), String>,
    next_departure: u64,
}

impl Registry {
    pub(super) fn forget_departed(&mut self, client_id: &str) {
        if let Some(departed) = self.departed.remove(client_id) {
            self.departures.remove(&departed.order);
        }
    }

    /// `GetConnection`'s view of `client_id`: its session, connected or away, or
    /// how it left.
    pub(super) fn presence(&self, client_id: &str) -> Option<Presence> {
        if let Some(record) = self.sessions.get(client_id) {
            return Some(Presence {
                connected: record.away.is_none(),
                info: record.info.clone(),
                departed: record.away.map(|(at, reason, _)| (at, reason)),
            });
        }
        self.departed.get(client_id).map(|d| Presence {
            connected: false,
            info: d.info.clone(),
            departed: Some((d.at, d.reason)),
        })
    }

    /// Remembers that `client_id` left at `at` (epoch milliseconds) for `reason`,
    /// forgetting its earlier departure and those past the retention or the bound.
    pub(super) fn remember_departed(
        &mut self,
        client_id: &str,
        info: ConnectionInfo,
        at: u64,
        reason: DisconnectReason,
    ) {
        let now = tokio::time::Instant::now();
        self.forget_departed(client_id);
        while let Some((&(when, seq), _)) = self.departures.first_key_value() {
            if now.duration_since(when) < DEPARTED_RETENTION && self.departures.len() < MAX_DEPARTED {
                break;
            }
            if let Some(old) = self.departures.remove(&(when, seq)) {
                self.departed.remove(&old);
            }
        }
        let order = (now, self.next_departure);
        self.next_departure += 1;
        self.departures.insert(order, client_id.to_owned());
        self.departed.insert(
            client_id.to_owned(),
            Departed {
                info,
                at,
                reason,
                order,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_that_comes_and_goes_is_remembered_once_however_often_it_leaves() {
        let mut registry = Registry::default();
        let info = ConnectionInfo {
            clean_session: true,
            keep_alive_secs: 30,
            connected_since: 0,
            session_expiry_secs: 0,
            source: "127.0.0.1:1".parse().unwrap(),
        };
        for n in 0..1000 {
            registry.remember_departed("churner", info.clone(), n, DisconnectReason::ConnectionLost);
            registry.remember_departed(
                &format!("other-{}", n % 3),
                info.clone(),
                n,
                DisconnectReason::ClientInitiated,
            );
        }
        assert_eq!(registry.departed.len(), 4);
        assert_eq!(registry.departures.len(), 4);
        assert_eq!(registry.departed["churner"].at, 999);
        registry.forget_departed("churner");
        assert_eq!((registry.departed.len(), registry.departures.len()), (3, 3));
    }
}
