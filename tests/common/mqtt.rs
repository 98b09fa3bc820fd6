//! Helpers to drive the local stack as a client would: vend credentials, connect
//! with `rumqttc` over WebSocket, publish through the HTTPS API signed like
//! botocore signs, and wait for events without sleeping.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use rumqttc::{AsyncClient, ConnectionError, Event, MqttOptions, Packet, QoS, TlsConfiguration, Transport};
use tokio::sync::mpsc;

pub const WAIT: Duration = Duration::from_secs(10);

pub use serverless_websockets_core::wire::Vended;

pub async fn vend(api_url: &str) -> Vended {
    let response = reqwest::Client::new().post(api_url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// What a client's event loop reported.
#[derive(Debug)]
pub enum Seen {
    /// The return code and the session-present flag.
    ConnAck(rumqttc::ConnectReturnCode, bool),
    SubAck(Vec<rumqttc::SubscribeReasonCode>),
    Publish(rumqttc::Publish),
    PubAck(u16),
    Closed(String),
}

/// A connected (or connecting) MQTT client whose event loop runs in a task.
pub struct Client {
    pub client: AsyncClient,
    events: mpsc::UnboundedReceiver<Seen>,
}

pub fn options(url: &str, client_id: &str, ca_pem: Option<&[u8]>) -> MqttOptions {
    let mut options = MqttOptions::new(client_id, url, 0);
    options.set_keep_alive(Duration::from_secs(30));
    options.set_transport(match ca_pem {
        None => Transport::Ws,
        Some(ca) => Transport::wss_with_config(TlsConfiguration::Simple {
            ca: ca.to_vec(),
            alpn: None,
            client_auth: None,
        }),
    });
    options
}

impl Client {
    pub fn start(options: MqttOptions) -> Self {
        let (client, mut eventloop) = AsyncClient::new(options, 100);
        let (tx, events) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let seen = match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(ack))) => Seen::ConnAck(ack.code, ack.session_present),
                    Ok(Event::Incoming(Packet::SubAck(ack))) => Seen::SubAck(ack.return_codes),
                    Ok(Event::Incoming(Packet::Publish(publish))) => Seen::Publish(publish),
                    Ok(Event::Incoming(Packet::PubAck(ack))) => Seen::PubAck(ack.pkid),
                    Ok(_) => continue,
                    Err(err) => {
                        let _ = tx.send(Seen::Closed(describe(&err)));
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

    /// Connects and waits for a successful CONNACK.
    pub async fn connect(url: &str, client_id: &str, ca_pem: Option<&[u8]>) -> Self {
        Self::connected(options(url, client_id, ca_pem)).await.0
    }

    /// Connects with `options` and waits for a successful CONNACK; returns its
    /// session-present flag too.
    pub async fn connected(options: MqttOptions) -> (Self, bool) {
        let mut client = Self::start(options);
        match client.next().await {
            Seen::ConnAck(rumqttc::ConnectReturnCode::Success, session_present) => (client, session_present),
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    pub async fn next(&mut self) -> Seen {
        tokio::time::timeout(WAIT, self.events.recv())
            .await
            .expect("an MQTT event within the wait")
            .unwrap_or(Seen::Closed("event loop ended".into()))
    }

    /// Subscribes and returns the SUBACK codes, or the close if the gateway hung up.
    pub async fn subscribe(&mut self, filter: &str, qos: QoS) -> Seen {
        self.client.subscribe(filter, qos).await.unwrap();
        self.next().await
    }

    /// Subscribes and insists on success.
    pub async fn subscribed(&mut self, filter: &str, qos: QoS) {
        match self.subscribe(filter, qos).await {
            Seen::SubAck(codes)
                if codes
                    .iter()
                    .all(|c| matches!(c, rumqttc::SubscribeReasonCode::Success(_))) => {}
            other => panic!("subscribe {filter}: {other:?}"),
        }
    }

    pub async fn next_publish(&mut self) -> rumqttc::Publish {
        loop {
            match self.next().await {
                Seen::Publish(publish) => return publish,
                Seen::Closed(why) => panic!("connection closed while waiting for a message: {why}"),
                _ => continue,
            }
        }
    }

    /// Waits until the gateway closes the connection; returns the error text.
    pub async fn closed(&mut self) -> String {
        loop {
            if let Seen::Closed(why) = self.next().await {
                return why;
            }
        }
    }
}

fn describe(err: &ConnectionError) -> String {
    format!("{err:?}")
}

/// An HTTPS client that trusts only the PEM certificate at `ca_path` (the local CA).
pub fn https_client_trusting(ca_path: &str) -> reqwest::Client {
    let pem = std::fs::read(ca_path).unwrap();
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap()])
        .build()
        .unwrap()
}

/// A `POST {endpoint}/topics/{topic}[?query]` of the HTTPS data plane.
pub struct PublishRequest<'a> {
    pub endpoint: &'a str,
    pub region: &'a str,
    pub credentials: &'a Credentials,
    pub topic: &'a str,
    pub query: &'a str,
    pub payload: &'a [u8],
}

/// Signs and sends a publish as botocore does for `aws iot-data publish`
/// (service `iotdata`, `/` in the topic as `%2F`), with a default client.
pub async fn https_publish(
    endpoint: &str,
    region: &str,
    credentials: &Credentials,
    topic: &str,
    query: &str,
    payload: &[u8],
) -> reqwest::Response {
    let request = PublishRequest {
        endpoint,
        region,
        credentials,
        topic,
        query,
        payload,
    };
    https_publish_via(&reqwest::Client::new(), &request).await
}

/// [`https_publish`] through `client` (one that trusts the local CA, say).
pub async fn https_publish_via(client: &reqwest::Client, publish: &PublishRequest<'_>) -> reqwest::Response {
    let encoded = percent_encoding::utf8_percent_encode(publish.topic, percent_encoding::NON_ALPHANUMERIC).to_string();
    let query = if publish.query.is_empty() {
        String::new()
    } else {
        format!("?{}", publish.query)
    };
    let call = SignedCall {
        method: "POST",
        url: &format!("{}/topics/{encoded}{query}", publish.endpoint),
        region: publish.region,
        credentials: publish.credentials,
        signed: &[],
        unsigned: &[],
        body: publish.payload,
    };
    signed_call(client, &call).await
}

/// One data-plane request as botocore signs it (service `iotdata`).
pub struct SignedCall<'a> {
    pub method: &'a str,
    pub url: &'a str,
    pub region: &'a str,
    pub credentials: &'a Credentials,
    /// Headers signed and sent besides `host`.
    pub signed: &'a [(&'a str, &'a str)],
    /// Headers added after signing (a forgery).
    pub unsigned: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
}

/// Signs and sends `call` through `client`.
pub async fn signed_call(client: &reqwest::Client, call: &SignedCall<'_>) -> reqwest::Response {
    let mut headers = vec![("host", super::sigv4::host_of(call.url))];
    headers.extend_from_slice(call.signed);
    let signature = super::sigv4::sign_headers(
        &super::sigv4::ToSign {
            method: call.method,
            url: call.url,
            headers: &headers,
            body: call.body,
            service: "iotdata",
            region: call.region,
            content_sha256_header: false,
        },
        call.credentials,
        SystemTime::now(),
    );
    let mut request = client
        .request(call.method.parse().unwrap(), call.url)
        .body(call.body.to_vec());
    for (name, value) in &signature {
        request = request.header(name, value);
    }
    for (name, value) in call.signed.iter().chain(call.unsigned) {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

/// Options of a local stack on free ports for tests whose subject is not IoT's
/// CONNECT rate but which reconnect a client ID at once (sessions, takeovers,
/// wills): one CONNECT per second per client ID is relaxed; `tests/limits.rs`
/// tests it, and our clients' spacing is tested in their own suites.
pub fn quick_reconnects() -> serverless_websockets_local::stack::LocalOptions {
    let mut options = serverless_websockets_local::stack::LocalOptions::ephemeral();
    options.gateway.limits.connects_per_second = 0;
    options
}

/// Gateway options with IoT's CONNECT rate relaxed, as [`quick_reconnects`].
pub fn quick_gateway() -> serverless_websockets_local::gateway::GatewayOptions {
    quick_reconnects().gateway
}

/// A local stack on free ports with these gateway options.
pub async fn stack_with(
    gateway: serverless_websockets_local::gateway::GatewayOptions,
) -> serverless_websockets_local::stack::LocalStack {
    use serverless_websockets_local::stack::{LocalOptions, LocalStack};
    LocalStack::start(LocalOptions {
        gateway,
        ..LocalOptions::ephemeral()
    })
    .await
    .unwrap()
}

/// POSTs `body` to the vending API with `Authorization: Bearer <token>`: the
/// status and the JSON answer, whatever they are.
pub async fn vend_answer(api_url: &str, token: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
    let response = reqwest::Client::new()
        .post(api_url)
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// Vends with `Authorization: Bearer <token>`.
pub async fn vend_as(api_url: &str, token: &str) -> Vended {
    let response = reqwest::Client::new()
        .post(api_url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// A WebSocket to the local gateway, as the local admin, handshake done (101) and
/// nothing sent: for tests that speak raw MQTT packets or raw frames.
pub type RawSocket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub async fn admin_websocket(stack: &serverless_websockets_local::stack::LocalStack) -> RawSocket {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let admin = &stack.info().admin;
    let credentials = Credentials::new(&admin.access_key_id, &admin.secret_access_key, None, None, "admin");
    let endpoint = serverless_websockets_core::presign::IotEndpoint::parse(&stack.info().iot_endpoint).unwrap();
    let url = serverless_websockets_core::presign::presign(
        &endpoint,
        "us-east-1",
        &credentials,
        SystemTime::now(),
        serverless_websockets_core::presign::DEFAULT_EXPIRES,
    )
    .unwrap();
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("sec-websocket-protocol", "mqtt".parse().unwrap());
    let (socket, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(response.status(), 101);
    socket
}
