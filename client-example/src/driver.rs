//! The connection driver: keeps one MQTT-over-WebSocket session alive on `rumqttc`.
//!
//! * Every connect — first or re-connect — presigns a fresh URL, because IoT stops
//!   accepting a URL about 15 minutes after it was signed.
//! * Credentials are fetched again at a fraction (default 80 %) of their lifetime,
//!   in the background while connected, and used from the next connect on; a `403`
//!   at the handshake also forces a fetch. Every fetch after the first *resumes*:
//!   the new credentials are for the same client ID. If the API refuses the resume
//!   (token expired, key rotated away), a new client ID is vended and reported
//!   ([`Event::NewClientId`]): what was queued for the old one is lost.
//! * The session is persistent (`cleanSession = 0`) with QoS 1 subscriptions, so
//!   IoT queues messages while the client is away; a reconnect whose CONNACK says
//!   the session is present does not subscribe again, if this driver saw a SUBACK
//!   in that session (else the session may hold no subscriptions: a CONNECT can be
//!   accepted and its connection lost before the SUBACK).
//! * Reconnects back off exponentially with full jitter, capped (`backon`).
//! * Before the first successful connection, failures are returned to the caller
//!   (wrong URL, API down, forbidden) instead of being retried for ever.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use backon::{BackoffBuilder, ExponentialBuilder};
use bytes::Bytes;
use rumqttc::{
    AsyncClient, ConnectionError, Event as MqttEvent, MqttOptions, Packet, QoS, TlsConfiguration, Transport,
};
use tokio::task::JoinHandle;

use crate::credentials::{CredentialSource, FetchError, Obtained, Vended, obtain, refresh_due};
use crate::tls::{TrustRoots, client_config};

pub use serverless_websockets_core::quota::MAX_PACKET_BYTES;

#[derive(Debug, Clone)]
pub struct Options {
    /// MQTT keep-alive; IoT accepts 30–1200 s.
    pub keep_alive: Duration,
    /// Fetch new credentials after this fraction of their lifetime.
    pub refresh_fraction: f64,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// Topics to subscribe to besides the vended `topic`.
    pub extra_topics: Vec<String>,
    /// Messages to publish once, after the first subscription.
    pub publish_on_connect: Vec<(String, Bytes)>,
    pub trust: TrustRoots,
    /// Keep one client ID and a persistent session (the default). `false`: clean
    /// sessions and a new client ID at every refresh (what a client without resume
    /// tokens gets; the continuity benchmark's reference).
    pub persistent: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            keep_alive: Duration::from_secs(60),
            refresh_fraction: 0.8,
            backoff_min: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            extra_topics: Vec::new(),
            publish_on_connect: Vec::new(),
            trust: TrustRoots::WebPki,
            persistent: true,
        }
    }
}

/// What the driver reports as it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    CredentialsRefreshed {
        client_id: String,
        expiration: String,
    },
    /// The API refused to resume `previous` (the reason says why) and vended a new
    /// client ID: messages queued for the old one are lost.
    NewClientId {
        previous: String,
        client_id: String,
        reason: String,
    },
    /// A background refresh failed; the next connect tries again.
    RefreshFailed {
        reason: String,
    },
    Connecting {
        client_id: String,
        attempt: u32,
        signed_at: SystemTime,
    },
    Connected {
        client_id: String,
        /// IoT kept the session (subscriptions, queued messages) from before.
        session_present: bool,
    },
    Subscribed {
        topics: Vec<String>,
    },
    Published {
        topic: String,
    },
    Message {
        topic: String,
        payload: Bytes,
    },
    Disconnected {
        reason: String,
    },
    Reconnecting {
        delay: Duration,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("could not get credentials: {0}")]
    Credentials(#[from] FetchError),
    #[error("the IoT endpoint refused the connection: {0}")]
    Refused(String),
    #[error("the IoT endpoint forbade the connection (HTTP 403) with fresh credentials")]
    Forbidden,
    #[error("{0}")]
    PolicyRefused(String),
    #[error("invalid presigned URL: {0}")]
    Presign(String),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
}

/// How one connection ended.
enum Ended {
    /// The caller asked to stop.
    Stopped,
    Lost {
        reason: String,
        forbidden: bool,
        subscribed: bool,
        /// The policy refusal this loss amounts to (a SUBSCRIBE or PUBLISH outside
        /// the credentials' grants), worded for the user.
        refusal: Option<String>,
    },
}

/// What this client sent that the gateway has not acknowledged yet: IoT Core
/// answers an unauthorized SUBSCRIBE or PUBLISH by closing the connection.
#[derive(Debug, Clone)]
enum Pending {
    Subscribe,
    Publish(String),
}

pub struct Driver<S> {
    source: Arc<S>,
    options: Options,
    current: Option<(Vended, SystemTime)>,
    /// Credentials fetched in the background for the next connect.
    next: Option<JoinHandle<Result<Obtained, FetchError>>>,
    published: bool,
    /// The client ID whose session on the gateway is known to hold the
    /// subscriptions: a SUBACK came for them, and no CONNACK since said the session
    /// was gone. A session IoT kept is not enough: it may have been made by a
    /// CONNECT whose connection closed before the SUBACK (or before its CONNACK
    /// reached us), and then it holds no subscriptions.
    subscribed_session: Option<String>,
}

impl<S: CredentialSource> Driver<S> {
    pub fn new(source: S, options: Options) -> Self {
        Self {
            source: Arc::new(source),
            options,
            current: None,
            next: None,
            published: false,
            subscribed_session: None,
        }
    }

    /// The credentials in use, if any.
    pub fn credentials(&self) -> Option<&Vended> {
        self.current.as_ref().map(|(vended, _)| vended)
    }

    fn backoff(&self) -> impl Iterator<Item = Duration> + use<S> {
        ExponentialBuilder::default()
            .with_min_delay(self.options.backoff_min)
            .with_max_delay(self.options.backoff_max)
            .with_jitter()
            .without_max_times()
            .build()
    }

    /// The credentials whose client ID the next fetch resumes, if any.
    fn to_resume(&self) -> Option<&Vended> {
        self.credentials().filter(|_| self.options.persistent)
    }

    async fn fetch(&mut self, on_event: &mut impl FnMut(Event) -> ControlFlow<()>) -> Result<(), FetchError> {
        let obtained = obtain(self.source.as_ref(), self.to_resume()).await?;
        self.adopt(obtained, on_event);
        Ok(())
    }

    /// Uses `obtained` from the next connect on, and says so.
    fn adopt(&mut self, obtained: Obtained, on_event: &mut impl FnMut(Event) -> ControlFlow<()>) {
        let vended = obtained.vended;
        if let Some((previous, reason)) = obtained.replaced {
            let _ = on_event(Event::NewClientId {
                previous,
                client_id: vended.client_id.clone(),
                reason,
            });
        }
        let _ = on_event(Event::CredentialsRefreshed {
            client_id: vended.client_id.clone(),
            expiration: vended.credentials.expiration.clone(),
        });
        self.current = Some((vended, SystemTime::now()));
    }

    /// The credentials for the next connect, fetched first when due (or when the
    /// last loss asked for fresh ones). `None` after a transient failure once the
    /// client has been subscribed: the caller backs off and tries again.
    async fn credentials_for_connect(
        &mut self,
        retry: &mut RetryState,
        on_event: &mut impl FnMut(Event) -> ControlFlow<()>,
    ) -> Result<Option<(Vended, SystemTime)>, DriverError> {
        self.adopt_background_refresh(on_event).await;
        if retry.force_refresh || self.refresh_due() {
            match self.fetch(on_event).await {
                Ok(()) => retry.force_refresh = false,
                Err(err) if !retry.ever_subscribed || !err.is_transient() => return Err(err.into()),
                Err(err) => {
                    let _ = on_event(Event::Disconnected {
                        reason: err.to_string(),
                    });
                    return Ok(None);
                }
            }
        }
        if self.current.is_none() {
            // Not reached: a successful fetch sets them. Fetch again rather than panic.
            retry.force_refresh = true;
        }
        Ok(self.current.clone())
    }

    /// Runs until `on_event` returns `Break`, `stop` resolves, or a failure before
    /// the first successful connection. Each round: credentials → presign →
    /// connect and subscribe → on loss, decide whether and when to try again.
    pub async fn run(
        &mut self,
        mut on_event: impl FnMut(Event) -> ControlFlow<()>,
        stop: impl std::future::Future<Output = ()>,
    ) -> Result<(), DriverError> {
        let transports = Transports::new(&self.options.trust)?;
        tokio::pin!(stop);
        let mut backoff = self.backoff();
        let mut retry = RetryState::default();
        let mut attempt = 0u32;
        // IoT allows one CONNECT per second per client ID and refuses the next:
        // the last CONNECT's client ID and time, to space them.
        let mut last_connect: Option<(String, tokio::time::Instant)> = None;
        loop {
            let Some((vended, fetched)) = self.credentials_for_connect(&mut retry, &mut on_event).await? else {
                if self.wait(&mut backoff, &mut on_event, &mut stop).await {
                    return Ok(());
                }
                continue;
            };
            if let Some((client_id, at)) = &last_connect
                && *client_id == vended.client_id
            {
                let due = *at + serverless_websockets_core::quota::CLIENT_CONNECT_SPACING;
                tokio::select! {
                    () = tokio::time::sleep_until(due) => {}
                    () = stop.as_mut() => return Ok(()),
                }
            }
            last_connect = Some((vended.client_id.clone(), tokio::time::Instant::now()));
            let signed_at = SystemTime::now();
            let url = crate::presign(&vended.endpoint, &vended.region, &vended.credentials, signed_at)
                .map_err(|e| DriverError::Presign(e.to_string()))?;
            attempt += 1;
            let _ = on_event(Event::Connecting {
                client_id: vended.client_id.clone(),
                attempt,
                signed_at,
            });
            let mqtt = self.mqtt_options(&vended, url, &transports);
            let refresh_at = refresh_due(fetched, vended.credentials.expires_at(), self.options.refresh_fraction);
            let ended = self.connection(mqtt, &vended, refresh_at, &mut on_event, &mut stop);
            let Ended::Lost {
                reason,
                forbidden,
                subscribed,
                refusal,
            } = ended.await
            else {
                return Ok(());
            };
            let _ = on_event(Event::Disconnected { reason: reason.clone() });
            if subscribed {
                backoff = self.backoff();
            }
            match retry.after_loss(reason, forbidden, subscribed, refusal)? {
                Next::RetryNow => continue,
                Next::Backoff => {
                    if self.wait(&mut backoff, &mut on_event, &mut stop).await {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// Takes credentials a background refresh has finished fetching; abandons
    /// one still in flight (the next connect fetches anew if it must).
    async fn adopt_background_refresh(&mut self, on_event: &mut impl FnMut(Event) -> ControlFlow<()>) {
        if let Some(handle) = self.next.take() {
            if handle.is_finished() {
                if let Ok(Ok(obtained)) = handle.await {
                    self.adopt(obtained, on_event);
                }
            } else {
                handle.abort();
            }
        }
    }

    /// Whether there are no credentials, or they are past their refresh point.
    fn refresh_due(&self) -> bool {
        self.current.as_ref().is_none_or(|(vended, fetched)| {
            SystemTime::now() >= refresh_due(*fetched, vended.credentials.expires_at(), self.options.refresh_fraction)
        })
    }

    /// MQTT settings for one connect to the presigned `url`.
    fn mqtt_options(&self, vended: &Vended, url: String, transports: &Transports) -> MqttOptions {
        let mut mqtt = MqttOptions::new(&vended.client_id, url, 0);
        mqtt.set_keep_alive(self.options.keep_alive)
            .set_clean_session(!self.options.persistent)
            .set_max_packet_size(MAX_PACKET_BYTES, MAX_PACKET_BYTES);
        mqtt.set_transport(transports.for_endpoint(&vended.endpoint));
        mqtt
    }

    /// Sleeps for the next backoff delay; `true` if told to stop meanwhile.
    async fn wait(
        &self,
        backoff: &mut impl Iterator<Item = Duration>,
        on_event: &mut impl FnMut(Event) -> ControlFlow<()>,
        stop: &mut std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
    ) -> bool {
        let delay = backoff.next().unwrap_or(self.options.backoff_max);
        let _ = on_event(Event::Reconnecting { delay });
        tokio::select! {
            () = tokio::time::sleep(delay) => false,
            () = stop.as_mut() => true,
        }
    }

    /// One MQTT connection, from CONNECT to its end: subscribes once connected,
    /// hands messages to `on_event`, and refreshes credentials in the background
    /// at `refresh_at` for the next connect.
    async fn connection(
        &mut self,
        mqtt: MqttOptions,
        vended: &Vended,
        refresh_at: SystemTime,
        on_event: &mut impl FnMut(Event) -> ControlFlow<()>,
        stop: &mut std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
    ) -> Ended {
        let (client, mut eventloop) = AsyncClient::new(mqtt, 64);
        let mut topics = vec![vended.topic.clone()];
        topics.extend(self.options.extra_topics.iter().cloned());
        let mut state = ConnectionState::default();
        let refresh_in = refresh_at.duration_since(SystemTime::now()).unwrap_or_default();
        let refresh = tokio::time::sleep(refresh_in);
        tokio::pin!(refresh);
        let mut refresh_started = false;
        loop {
            tokio::select! {
                event = eventloop.poll() => {
                    let packet = match event {
                        Ok(MqttEvent::Incoming(packet)) => packet,
                        Ok(_) => continue,
                        Err(err) => {
                            let refusal = state.pending.as_ref().map(|pending| refusal_of(pending, vended, &topics));
                            return Ended::Lost {
                                reason: refusal.clone().unwrap_or_else(|| describe(&err)),
                                forbidden: is_forbidden(&err),
                                subscribed: state.subscribed,
                                refusal,
                            };
                        }
                    };
                    match self.on_packet(packet, &client, vended, &topics, &mut state, on_event) {
                        Some(Ended::Stopped) => {
                            disconnect(&client, &mut eventloop).await;
                            return Ended::Stopped;
                        }
                        Some(ended) => return ended,
                        None => {}
                    }
                }
                () = stop.as_mut() => {
                    disconnect(&client, &mut eventloop).await;
                    return Ended::Stopped;
                }
                () = &mut refresh, if !refresh_started => {
                    // Fetch the next credentials now (a resume: the same client ID);
                    // they are used from the next connect.
                    refresh_started = true;
                    let source = self.source.clone();
                    let current = self.options.persistent.then(|| vended.clone());
                    self.next = Some(tokio::spawn(async move { obtain(source.as_ref(), current.as_ref()).await }));
                }
                fetched = next_credentials(&mut self.next), if self.next.is_some() => {
                    self.next = None;
                    self.on_refreshed(fetched, on_event);
                }
            }
        }
    }

    /// After CONNACK: subscribes to `topics`, unless IoT kept a session this
    /// driver subscribed in (then nothing is sent again, and no retained message
    /// comes twice). Returns false if SUBSCRIBE could not be queued.
    fn subscribe_unless_present(
        &mut self,
        session_present: bool,
        client: &AsyncClient,
        vended: &Vended,
        topics: &[String],
        state: &mut ConnectionState,
        on_event: &mut impl FnMut(Event) -> ControlFlow<()>,
    ) -> bool {
        if !session_present {
            self.subscribed_session = None;
        } else if self.subscribed_session.as_deref() == Some(vended.client_id.as_str()) {
            state.subscribed = true;
            let _ = on_event(Event::Subscribed {
                topics: topics.to_vec(),
            });
            self.publish_once(client, state);
            return true;
        }
        let filters = topics
            .iter()
            .map(|t| rumqttc::SubscribeFilter::new(t.clone(), QoS::AtLeastOnce));
        if client.try_subscribe_many(filters).is_err() {
            return false;
        }
        state.pending = Some(Pending::Subscribe);
        true
    }

    /// Handles one incoming packet; `Some` when the connection ends with it.
    fn on_packet(
        &mut self,
        packet: Packet,
        client: &AsyncClient,
        vended: &Vended,
        topics: &[String],
        state: &mut ConnectionState,
        on_event: &mut impl FnMut(Event) -> ControlFlow<()>,
    ) -> Option<Ended> {
        let subscribed = state.subscribed;
        let lost = |reason: String, refusal: Option<String>| {
            Some(Ended::Lost {
                reason,
                forbidden: false,
                subscribed,
                refusal,
            })
        };
        match packet {
            Packet::ConnAck(ack) => {
                let _ = on_event(Event::Connected {
                    client_id: vended.client_id.clone(),
                    session_present: ack.session_present,
                });
                if !self.subscribe_unless_present(ack.session_present, client, vended, topics, state, on_event) {
                    return lost("could not queue SUBSCRIBE".into(), None);
                }
            }
            Packet::SubAck(ack) => {
                if ack
                    .return_codes
                    .iter()
                    .any(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure))
                {
                    let refusal = refusal_of(&Pending::Subscribe, vended, topics);
                    return lost(refusal.clone(), Some(refusal));
                }
                state.subscribed = true;
                state.pending = None;
                self.subscribed_session = Some(vended.client_id.clone());
                let _ = on_event(Event::Subscribed {
                    topics: topics.to_vec(),
                });
                self.publish_once(client, state);
            }
            Packet::PubAck(_) => {
                if let Some(Pending::Publish(topic)) = state.pending.take() {
                    self.published = true;
                    let _ = on_event(Event::Published { topic });
                }
            }
            Packet::Publish(message) => {
                let event = Event::Message {
                    topic: message.topic.clone(),
                    payload: message.payload.clone(),
                };
                if on_event(event).is_break() {
                    return Some(Ended::Stopped);
                }
            }
            _ => {}
        }
        None
    }

    /// The `--publish` messages, once subscribed; until acknowledged they are sent
    /// again on every connect.
    fn publish_once(&self, client: &AsyncClient, state: &mut ConnectionState) {
        if !self.published {
            for (topic, payload) in &self.options.publish_on_connect {
                let _ = client.try_publish(topic.clone(), QoS::AtLeastOnce, false, payload.clone());
                state.pending = Some(Pending::Publish(topic.clone()));
            }
        }
    }

    /// A background refresh finished: use its credentials from the next connect.
    fn on_refreshed(
        &mut self,
        fetched: Result<Result<Obtained, FetchError>, tokio::task::JoinError>,
        on_event: &mut impl FnMut(Event) -> ControlFlow<()>,
    ) {
        match fetched {
            Ok(Ok(obtained)) => self.adopt(obtained, on_event),
            // The next connect fetches again; this connection is unaffected.
            Ok(Err(err)) => {
                let _ = on_event(Event::RefreshFailed {
                    reason: err.to_string(),
                });
            }
            Err(_) => {}
        }
    }
}

/// The TLS settings of `wss://` connects: the configured trust roots, else the web PKI.
struct Transports {
    custom: Option<Arc<rustls::ClientConfig>>,
    web_pki: Arc<rustls::ClientConfig>,
}

impl Transports {
    fn new(trust: &TrustRoots) -> Result<Self, DriverError> {
        Ok(Self {
            custom: match trust {
                TrustRoots::WebPki => None,
                roots => Some(client_config(roots)?),
            },
            web_pki: client_config(&TrustRoots::WebPki)?,
        })
    }

    fn for_endpoint(&self, endpoint: &str) -> Transport {
        if endpoint.starts_with("wss://") {
            let config = self.custom.clone().unwrap_or_else(|| self.web_pki.clone());
            Transport::wss_with_config(TlsConfiguration::Rustls(config))
        } else {
            Transport::Ws
        }
    }
}

/// What the retry loop remembers between connections.
#[derive(Default)]
struct RetryState {
    /// Whether any connection got as far as its subscription.
    ever_subscribed: bool,
    /// Refused handshakes (HTTP 403) in a row.
    forbidden_in_a_row: u32,
    /// Fetch credentials before the next connect, due or not.
    force_refresh: bool,
    /// The policy refusal that ended the last connection, if one did.
    last_refusal: Option<String>,
}

/// One connection's progress.
#[derive(Default)]
struct ConnectionState {
    subscribed: bool,
    pending: Option<Pending>,
}

/// Says which operation the gateway refused and what the credentials allow.
fn refusal_of(pending: &Pending, vended: &Vended, topics: &[String]) -> String {
    let allowed = |grants: &[String]| {
        if grants.is_empty() {
            "nothing".to_owned()
        } else {
            grants.join(", ")
        }
    };
    match pending {
        Pending::Subscribe => format!(
            "the gateway refused SUBSCRIBE to {}: these credentials may subscribe to {} only",
            topics.join(", "),
            allowed(&vended.grants.subscribe)
        ),
        Pending::Publish(topic) => format!(
            "the gateway refused PUBLISH to {topic}: these credentials may publish to {} only",
            allowed(&vended.grants.publish)
        ),
    }
}

/// What to do after a lost connection.
enum Next {
    RetryNow,
    Backoff,
}

impl RetryState {
    /// A 403 is retried once at once with fresh credentials; other losses after
    /// a first subscription back off; before it, they are the caller's error. A
    /// policy refusal is retried once, even before the first subscription: with
    /// MQTT 3.1.1 IoT refuses by closing the connection, which a kick or a network
    /// loss while the SUBSCRIBE is in flight looks exactly like (and grants may be
    /// widened meanwhile). The same refusal twice in a row is the caller's error.
    fn after_loss(
        &mut self,
        reason: String,
        forbidden: bool,
        subscribed: bool,
        refusal: Option<String>,
    ) -> Result<Next, DriverError> {
        self.ever_subscribed |= subscribed;
        if let Some(refusal) = refusal {
            if self.last_refusal.as_ref() == Some(&refusal) {
                return Err(DriverError::PolicyRefused(refusal));
            }
            self.last_refusal = Some(refusal);
            return Ok(Next::Backoff);
        }
        self.last_refusal = None;
        if !forbidden {
            self.forbidden_in_a_row = 0;
            return if self.ever_subscribed {
                Ok(Next::Backoff)
            } else {
                Err(DriverError::Refused(reason))
            };
        }
        self.forbidden_in_a_row += 1;
        self.force_refresh = true;
        if !self.ever_subscribed && self.forbidden_in_a_row >= 2 {
            return Err(DriverError::Forbidden);
        }
        Ok(if self.forbidden_in_a_row == 1 {
            Next::RetryNow
        } else {
            Next::Backoff
        })
    }
}

/// Sends DISCONNECT and waits briefly for it to leave.
/// The background refresh's result; never resolves while none is in flight.
async fn next_credentials(
    next: &mut Option<JoinHandle<Result<Obtained, FetchError>>>,
) -> Result<Result<Obtained, FetchError>, tokio::task::JoinError> {
    match next.as_mut() {
        Some(handle) => handle.await,
        None => std::future::pending().await,
    }
}

async fn disconnect(client: &AsyncClient, eventloop: &mut rumqttc::EventLoop) {
    if client.try_disconnect().is_err() {
        return;
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            match eventloop.poll().await {
                Ok(MqttEvent::Outgoing(rumqttc::Outgoing::Disconnect)) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
}

/// Whether the WebSocket handshake was answered `403 Forbidden`.
pub fn is_forbidden(err: &ConnectionError) -> bool {
    matches!(err, ConnectionError::Websocket(tungstenite::Error::Http(response)) if response.status() == 403)
}

fn describe(err: &ConnectionError) -> String {
    match err {
        ConnectionError::Websocket(tungstenite::Error::Http(response)) => {
            format!("WebSocket handshake answered HTTP {}", response.status())
        }
        other => {
            let text = other.to_string();
            if text.contains("UnknownIssuer") || text.contains("invalid peer certificate") {
                format!(
                    "the IoT endpoint's TLS certificate is not trusted ({text}); for the local stack started with --tls, pass --ca-cert with the CA file its banner prints"
                )
            } else {
                text
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REFUSAL: &str = "the gateway refused SUBSCRIBE to elsewhere/x";

    fn refused(retry: &mut RetryState, subscribed: bool) -> Result<Next, DriverError> {
        retry.after_loss(REFUSAL.into(), false, subscribed, Some(REFUSAL.into()))
    }

    #[test]
    fn a_connection_lost_with_the_first_subscribe_in_flight_is_retried_not_reported() {
        let mut retry = RetryState::default();
        assert!(matches!(refused(&mut retry, false), Ok(Next::Backoff)));
    }

    #[test]
    fn the_same_refusal_twice_in_a_row_is_the_callers_error_before_and_after_subscribing() {
        for subscribed in [false, true] {
            let mut retry = RetryState::default();
            refused(&mut retry, subscribed).unwrap();
            assert!(matches!(refused(&mut retry, false), Err(DriverError::PolicyRefused(r)) if r == REFUSAL));
        }
    }

    #[test]
    fn a_refusal_after_a_clean_loss_counts_as_the_first_again() {
        let mut retry = RetryState::default();
        refused(&mut retry, true).unwrap();
        assert!(matches!(
            retry.after_loss("closed".into(), false, true, None),
            Ok(Next::Backoff)
        ));
        assert!(matches!(refused(&mut retry, true), Ok(Next::Backoff)));
    }
}
