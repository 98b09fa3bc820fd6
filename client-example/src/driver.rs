//! The connection driver: keeps one MQTT-over-WebSocket session alive on `rumqttc`.
//!
//! * Every connect — first or re-connect — presigns a fresh URL, because IoT stops
//!   accepting a URL about 15 minutes after it was signed.
//! * Credentials are fetched again at a fraction (default 80 %) of their lifetime,
//!   in the background while connected, and used from the next connect on; a `403`
//!   at the handshake also forces a fetch. New credentials carry a new client ID.
//! * Reconnects back off exponentially with full jitter, capped (`backon`), and
//!   resubscribe: sessions are clean, so nothing survives a reconnect otherwise.
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

use crate::credentials::{CredentialSource, FetchError, Vended, refresh_due};
use crate::tls::{TrustRoots, client_config};

pub use serverless_websockets_core::topic::MAX_PACKET_BYTES;

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
    },
}

pub struct Driver<S> {
    source: Arc<S>,
    options: Options,
    current: Option<(Vended, SystemTime)>,
    /// Credentials fetched in the background for the next connect.
    next: Option<JoinHandle<Result<Vended, FetchError>>>,
    published: bool,
}

impl<S: CredentialSource> Driver<S> {
    pub fn new(source: S, options: Options) -> Self {
        Self {
            source: Arc::new(source),
            options,
            current: None,
            next: None,
            published: false,
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

    async fn fetch(&mut self, on_event: &mut impl FnMut(Event) -> ControlFlow<()>) -> Result<(), FetchError> {
        let vended = self.source.fetch().await?;
        let _ = on_event(Event::CredentialsRefreshed {
            client_id: vended.client_id.clone(),
            expiration: vended.credentials.expiration.clone(),
        });
        self.current = Some((vended, SystemTime::now()));
        Ok(())
    }

    /// Runs until `on_event` returns `Break`, `stop` resolves, or a failure before
    /// the first successful connection.
    pub async fn run(
        &mut self,
        mut on_event: impl FnMut(Event) -> ControlFlow<()>,
        stop: impl std::future::Future<Output = ()>,
    ) -> Result<(), DriverError> {
        let tls = match &self.options.trust {
            TrustRoots::WebPki => None,
            roots => Some(client_config(roots)?),
        };
        let web_pki = client_config(&TrustRoots::WebPki)?;
        tokio::pin!(stop);
        let mut backoff = self.backoff();
        let mut ever_subscribed = false;
        let mut force_refresh = false;
        let mut forbidden_in_a_row = 0;
        let mut attempt = 0u32;
        loop {
            // Credentials: background refresh done, forced, missing or due.
            if let Some(handle) = self.next.take() {
                if handle.is_finished() {
                    if let Ok(Ok(vended)) = handle.await {
                        self.current = Some((vended, SystemTime::now()));
                    }
                } else {
                    handle.abort();
                }
            }
            let due = self.current.as_ref().is_none_or(|(vended, fetched)| {
                SystemTime::now()
                    >= refresh_due(*fetched, vended.credentials.expires_at(), self.options.refresh_fraction)
            });
            if force_refresh || due {
                match self.fetch(&mut on_event).await {
                    Ok(()) => force_refresh = false,
                    Err(err) if !ever_subscribed || !err.is_transient() => return Err(err.into()),
                    Err(err) => {
                        let _ = on_event(Event::Disconnected {
                            reason: err.to_string(),
                        });
                        if self.wait(&mut backoff, &mut on_event, &mut stop).await {
                            return Ok(());
                        }
                        continue;
                    }
                }
            }

            let (vended, fetched) = self.current.clone().expect("credentials were just ensured");
            let signed_at = SystemTime::now();
            let url = crate::presign(&vended.endpoint, &vended.region, &vended.credentials, signed_at)
                .map_err(|e| DriverError::Presign(e.to_string()))?;
            attempt += 1;
            let _ = on_event(Event::Connecting {
                client_id: vended.client_id.clone(),
                attempt,
                signed_at,
            });
            let mut mqtt = MqttOptions::new(&vended.client_id, url, 0);
            mqtt.set_keep_alive(self.options.keep_alive)
                .set_clean_session(true)
                .set_max_packet_size(MAX_PACKET_BYTES, MAX_PACKET_BYTES);
            mqtt.set_transport(if vended.endpoint.starts_with("wss://") {
                Transport::wss_with_config(TlsConfiguration::Rustls(tls.clone().unwrap_or_else(|| web_pki.clone())))
            } else {
                Transport::Ws
            });
            let refresh_at = refresh_due(fetched, vended.credentials.expires_at(), self.options.refresh_fraction);

            match self.session(mqtt, &vended, refresh_at, &mut on_event, &mut stop).await {
                Ended::Stopped => return Ok(()),
                Ended::Lost {
                    reason,
                    forbidden,
                    subscribed,
                } => {
                    let _ = on_event(Event::Disconnected { reason: reason.clone() });
                    if subscribed {
                        ever_subscribed = true;
                        backoff = self.backoff();
                    }
                    if forbidden {
                        forbidden_in_a_row += 1;
                        force_refresh = true;
                        if !ever_subscribed && forbidden_in_a_row >= 2 {
                            return Err(DriverError::Forbidden);
                        }
                    } else {
                        forbidden_in_a_row = 0;
                        if !ever_subscribed {
                            return Err(DriverError::Refused(reason));
                        }
                    }
                    if forbidden && forbidden_in_a_row == 1 {
                        continue; // retry at once with fresh credentials
                    }
                    if self.wait(&mut backoff, &mut on_event, &mut stop).await {
                        return Ok(());
                    }
                }
            }
        }
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

    async fn session(
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
        let mut subscribed = false;
        let refresh_in = refresh_at.duration_since(SystemTime::now()).unwrap_or_default();
        let refresh = tokio::time::sleep(refresh_in);
        tokio::pin!(refresh);
        let mut refresh_started = false;
        loop {
            tokio::select! {
                event = eventloop.poll() => match event {
                    Ok(MqttEvent::Incoming(Packet::ConnAck(_))) => {
                        let _ = on_event(Event::Connected { client_id: vended.client_id.clone() });
                        let filters = topics.iter().map(|t| rumqttc::SubscribeFilter::new(t.clone(), QoS::AtLeastOnce));
                        if client.try_subscribe_many(filters).is_err() {
                            return Ended::Lost { reason: "could not queue SUBSCRIBE".into(), forbidden: false, subscribed };
                        }
                    }
                    Ok(MqttEvent::Incoming(Packet::SubAck(ack))) => {
                        let refused = ack.return_codes.iter().any(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure));
                        if refused {
                            return Ended::Lost { reason: "SUBSCRIBE refused".into(), forbidden: true, subscribed };
                        }
                        subscribed = true;
                        let _ = on_event(Event::Subscribed { topics: topics.clone() });
                        if !self.published {
                            self.published = true;
                            for (topic, payload) in &self.options.publish_on_connect {
                                let _ = client.try_publish(topic.clone(), QoS::AtLeastOnce, false, payload.clone());
                            }
                        }
                    }
                    Ok(MqttEvent::Incoming(Packet::PubAck(_))) => {
                        if let Some((topic, _)) = self.options.publish_on_connect.first() {
                            let _ = on_event(Event::Published { topic: topic.clone() });
                        }
                    }
                    Ok(MqttEvent::Incoming(Packet::Publish(message))) => {
                        let event = Event::Message { topic: message.topic.clone(), payload: message.payload.clone() };
                        if on_event(event).is_break() {
                            disconnect(&client, &mut eventloop).await;
                            return Ended::Stopped;
                        }
                    }
                    Ok(_) => {}
                    Err(err) => {
                        let forbidden = is_forbidden(&err);
                        return Ended::Lost { reason: describe(&err), forbidden, subscribed };
                    }
                },
                () = stop.as_mut() => {
                    disconnect(&client, &mut eventloop).await;
                    return Ended::Stopped;
                }
                () = &mut refresh, if !refresh_started => {
                    // Fetch the next credentials now; they are used from the next connect.
                    refresh_started = true;
                    let source = self.source.clone();
                    self.next = Some(tokio::spawn(async move { source.fetch().await }));
                }
                fetched = async { self.next.as_mut().expect("guarded by the condition").await }, if self.next.is_some() => {
                    self.next = None;
                    match fetched {
                        Ok(Ok(fresh)) => {
                            let _ = on_event(Event::CredentialsRefreshed {
                                client_id: fresh.client_id.clone(),
                                expiration: fresh.credentials.expiration.clone(),
                            });
                            self.current = Some((fresh, SystemTime::now()));
                        }
                        // The next connect fetches again; this session is unaffected.
                        Ok(Err(err)) => {
                            let _ = on_event(Event::RefreshFailed { reason: err.to_string() });
                        }
                        Err(_) => {}
                    }
                }
            }
        }
    }
}

/// Sends DISCONNECT and waits briefly for it to leave.
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
        other => other.to_string(),
    }
}
