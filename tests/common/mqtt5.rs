//! MQTT 5 clients for the local gateway: `rumqttc`'s v5 client over WebSocket, and
//! a raw WebSocket that speaks v5 packets encoded with `rumqttc`'s v5 codec, for
//! what a well-behaved client library will not send (an alias-only PUBLISH, an
//! alias above the maximum).

#![allow(dead_code)]

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use bytes::BytesMut;
use futures_util::{SinkExt, StreamExt};
use rumqttc::Transport;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{ConnAck, Packet, Publish, SubscribeReasonCode};
use rumqttc::v5::{AsyncClient, ConnectionError, Event, MqttOptions, StateError};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use super::mqtt::WAIT;
use serverless_websockets_core::presign::{DEFAULT_EXPIRES, IotEndpoint, presign};
use serverless_websockets_local::stack::LocalStack;

/// A presigned `ws://…/mqtt` URL of the stack's gateway for `credentials`.
pub fn url_for(stack: &LocalStack, credentials: &Credentials) -> String {
    let endpoint = IotEndpoint::parse(&stack.info().iot_endpoint).unwrap();
    presign(&endpoint, "us-east-1", credentials, SystemTime::now(), DEFAULT_EXPIRES).unwrap()
}

/// Credentials the local STS issues for `client_id` with the session policy of
/// `grants`, as the vending API would ask for them.
pub async fn credentials_for(
    stack: &LocalStack,
    client_id: &str,
    grants: &serverless_websockets_core::policy::Grants,
) -> Credentials {
    use serverless_websockets_vending::issuer::{AssumeRoleIssuer, CredentialIssuer, IssueRequest};
    let info = stack.info();
    let sdk_config = serverless_websockets_vending::issuer::sdk_config_loader()
        .region(aws_config::Region::new(info.region.clone()))
        .credentials_provider(admin(stack))
        .endpoint_url(&info.sts_endpoint)
        .load()
        .await;
    let issuer = AssumeRoleIssuer::new(&sdk_config, &info.client_role_arn);
    let arns = serverless_websockets_core::arn::IotArns::new("aws", &info.region, &info.account_id).unwrap();
    let client_id = serverless_websockets_core::client_id::ClientId::parse(client_id).unwrap();
    let policy = serverless_websockets_core::policy::session_policy(&arns, &client_id, grants).unwrap();
    let issued = issuer
        .issue(IssueRequest {
            client_id: &client_id,
            policy: &policy,
            duration: Duration::from_secs(900),
            source_identity: None,
        })
        .await
        .unwrap();
    issued.to_sdk()
}

pub fn admin(stack: &LocalStack) -> Credentials {
    let a = &stack.info().admin;
    Credentials::new(&a.access_key_id, &a.secret_access_key, None, None, "admin")
}

pub fn options(url: &str, client_id: &str) -> MqttOptions {
    let mut options = MqttOptions::new(client_id, url, 0);
    options.set_keep_alive(Duration::from_secs(30));
    options.set_transport(Transport::Ws);
    options
}

/// Options for a session that outlives its connection by `expiry_secs` (Clean
/// Start 0 + Session Expiry Interval).
pub fn persistent(url: &str, client_id: &str, expiry_secs: u32) -> MqttOptions {
    let mut options = options(url, client_id);
    options.set_clean_start(false);
    options.set_session_expiry_interval(Some(expiry_secs));
    options
}

/// What a v5 client's event loop reported.
#[derive(Debug)]
pub enum Seen5 {
    ConnAck(ConnAck),
    SubAck(Vec<SubscribeReasonCode>),
    Publish(Publish),
    PubAck(rumqttc::v5::mqttbytes::v5::PubAck),
    /// The server's DISCONNECT reason, or how the connection otherwise ended.
    Disconnected(Option<rumqttc::v5::mqttbytes::v5::DisconnectReasonCode>, String),
}

pub struct Client5 {
    pub client: AsyncClient,
    events: mpsc::UnboundedReceiver<Seen5>,
}

impl Client5 {
    pub fn start(options: MqttOptions) -> Self {
        let (client, mut eventloop) = AsyncClient::new(options, 100);
        let (tx, events) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let seen = match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(ack))) => Seen5::ConnAck(ack),
                    Ok(Event::Incoming(Packet::SubAck(ack))) => Seen5::SubAck(ack.return_codes),
                    Ok(Event::Incoming(Packet::Publish(publish))) => Seen5::Publish(publish),
                    Ok(Event::Incoming(Packet::PubAck(ack))) => Seen5::PubAck(ack),
                    Ok(_) => continue,
                    Err(ConnectionError::MqttState(StateError::ServerDisconnect {
                        reason_code,
                        reason_string,
                    })) => {
                        let _ = tx.send(Seen5::Disconnected(
                            Some(reason_code),
                            reason_string.unwrap_or_default(),
                        ));
                        return;
                    }
                    Err(err) => {
                        let _ = tx.send(Seen5::Disconnected(None, format!("{err:?}")));
                        return;
                    }
                };
                if tx.send(seen).is_err() {
                    return;
                }
            }
        });
        Self { client, events }
    }

    /// Connects and returns the client and its CONNACK, insisting on success.
    pub async fn connect(options: MqttOptions) -> (Self, ConnAck) {
        let mut client = Self::start(options);
        match client.next().await {
            Seen5::ConnAck(ack) if ack.code == rumqttc::v5::mqttbytes::v5::ConnectReturnCode::Success => (client, ack),
            other => panic!("expected a successful CONNACK, got {other:?}"),
        }
    }

    pub async fn next(&mut self) -> Seen5 {
        tokio::time::timeout(WAIT, self.events.recv())
            .await
            .expect("an MQTT 5 event within the wait")
            .unwrap_or(Seen5::Disconnected(None, "event loop ended".into()))
    }

    pub async fn subscribe(&mut self, filter: &str, qos: QoS) -> Vec<SubscribeReasonCode> {
        self.client.subscribe(filter, qos).await.unwrap();
        loop {
            match self.next().await {
                Seen5::SubAck(codes) => return codes,
                Seen5::Disconnected(code, why) => panic!("closed while subscribing to {filter}: {code:?} {why}"),
                _ => continue,
            }
        }
    }

    pub async fn subscribed(&mut self, filter: &str, qos: QoS) {
        let codes = self.subscribe(filter, qos).await;
        assert!(
            codes.iter().all(|c| matches!(c, SubscribeReasonCode::Success(_))),
            "subscribe {filter}: {codes:?}"
        );
    }

    pub async fn next_publish(&mut self) -> Publish {
        loop {
            match self.next().await {
                Seen5::Publish(publish) => return publish,
                Seen5::Disconnected(code, why) => panic!("closed while waiting for a message: {code:?} {why}"),
                _ => continue,
            }
        }
    }

    pub async fn next_puback(&mut self) -> rumqttc::v5::mqttbytes::v5::PubAck {
        loop {
            match self.next().await {
                Seen5::PubAck(ack) => return ack,
                Seen5::Disconnected(code, why) => panic!("closed while waiting for a PUBACK: {code:?} {why}"),
                _ => continue,
            }
        }
    }

    /// Sends DISCONNECT and waits until the connection is closed.
    pub async fn leave(mut self) {
        self.client.disconnect().await.unwrap();
        self.disconnected().await;
    }

    /// Waits for the end of the connection; returns the server's reason code.
    pub async fn disconnected(&mut self) -> (Option<rumqttc::v5::mqttbytes::v5::DisconnectReasonCode>, String) {
        loop {
            if let Seen5::Disconnected(code, why) = self.next().await {
                return (code, why);
            }
        }
    }
}

/// A raw WebSocket speaking MQTT 5 packets.
pub struct Raw5 {
    socket: super::mqtt::RawSocket,
    buffer: BytesMut,
}

impl Raw5 {
    pub async fn open(url: &str) -> Self {
        Self::open_with(url, &[]).await
    }

    /// Opens `url` with extra upgrade `headers` (which browsers cannot set, other clients can).
    pub async fn open_with(url: &str, headers: &[(&'static str, &str)]) -> Self {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut request = url.into_client_request().unwrap();
        request
            .headers_mut()
            .insert("sec-websocket-protocol", "mqtt".parse().unwrap());
        for (name, value) in headers {
            request.headers_mut().insert(*name, value.parse().unwrap());
        }
        let (socket, response) = tokio_tungstenite::connect_async(request).await.unwrap();
        assert_eq!(response.status(), 101);
        Self {
            socket,
            buffer: BytesMut::new(),
        }
    }

    pub async fn send(&mut self, packet: Packet) {
        let mut buffer = BytesMut::new();
        packet.write(&mut buffer, None).unwrap();
        self.socket.send(WsMessage::Binary(buffer.freeze())).await.unwrap();
    }

    /// Sends bytes as they are (an MQTT 3.1.1 packet, say).
    pub async fn send_bytes(&mut self, bytes: bytes::Bytes) {
        self.socket.send(WsMessage::Binary(bytes)).await.unwrap();
    }

    /// The next binary frame from the gateway, undecoded; `None` once it closed.
    pub async fn recv_bytes(&mut self) -> Option<bytes::Bytes> {
        loop {
            match tokio::time::timeout(WAIT, self.socket.next())
                .await
                .expect("a frame within the wait")
            {
                Some(Ok(WsMessage::Binary(bytes))) => return Some(bytes),
                Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => return None,
                Some(Ok(_)) => {}
            }
        }
    }

    /// The next packet from the gateway; `None` once it closed the connection.
    pub async fn recv(&mut self) -> Option<Packet> {
        loop {
            if !self.buffer.is_empty() {
                match Packet::read(&mut self.buffer, None) {
                    Ok(packet) => return Some(packet),
                    Err(rumqttc::v5::mqttbytes::Error::InsufficientBytes(_)) => {}
                    Err(err) => panic!("the gateway sent a malformed packet: {err:?}"),
                }
            }
            match tokio::time::timeout(WAIT, self.socket.next())
                .await
                .expect("a frame within the wait")
            {
                Some(Ok(WsMessage::Binary(bytes))) => self.buffer.extend_from_slice(&bytes),
                Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => return None,
                Some(Ok(_)) => {}
            }
        }
    }

    /// Waits for the gateway's DISCONNECT and checks its reason code.
    pub async fn expect_disconnect(&mut self, code: rumqttc::v5::mqttbytes::v5::DisconnectReasonCode) {
        match self.recv().await {
            Some(Packet::Disconnect(d)) => assert_eq!(d.reason_code, code),
            other => panic!("expected DISCONNECT {code:?}, got {other:?}"),
        }
    }

    /// Sends CONNECT and returns CONNACK.
    pub async fn connect(&mut self, client_id: &str) -> ConnAck {
        self.connect_with(client_id, None).await
    }

    /// Sends CONNECT with `properties` and returns CONNACK.
    pub async fn connect_with(
        &mut self,
        client_id: &str,
        properties: Option<rumqttc::v5::mqttbytes::v5::ConnectProperties>,
    ) -> ConnAck {
        let connect = rumqttc::v5::mqttbytes::v5::Connect {
            keep_alive: 30,
            client_id: client_id.into(),
            clean_start: true,
            properties,
        };
        self.send(Packet::Connect(connect, None, None)).await;
        match self.recv().await {
            Some(Packet::ConnAck(ack)) => ack,
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }
}
