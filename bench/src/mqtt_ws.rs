//! The load generator's MQTT over WebSocket client: raw packets encoded with
//! `rumqttc::mqttbytes`, so thousands of connections cost little and both brokers
//! see exactly the same traffic. It speaks 3.1.1, or MQTT 5 ([`Connection::open_v5`]),
//! whose packets it hands on in their 3.1.1 shape (the suites read topic, payload,
//! QoS and packet identifier only).

use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use rumqttc::mqttbytes::QoS;
use rumqttc::mqttbytes::v4::{Connect, Packet, PubAck, Publish, Subscribe};
use rumqttc::v5::mqttbytes::{QoS as QoS5, v5};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub struct Connection {
    socket: Socket,
    buffer: BytesMut,
    v5: bool,
}

const MAX: usize = 1 << 20;

/// The load generator's WebSocket settings, the same toward every broker.
/// tungstenite's default read buffer is 128 KiB, and it zeroes the unused part of
/// it before every read: with many small reads, the load generator spent more CPU
/// clearing memory than the broker under test spent serving (a perf profile of
/// the fan-out suite, 2026-12-05). 16 KiB still takes a burst in few reads.
fn socket_config(read_buffer: usize) -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(read_buffer)
}

impl Connection {
    /// WebSocket handshake (subprotocol `mqtt`), CONNECT, CONNACK.
    pub async fn open(url: &str, client_id: &str) -> anyhow::Result<Self> {
        Self::open_version(url, client_id, false).await
    }

    /// The same with MQTT 5 (protocol level 5).
    pub async fn open_v5(url: &str, client_id: &str) -> anyhow::Result<Self> {
        Self::open_version(url, client_id, true).await
    }

    /// MQTT 5 with a CONNECT of the caller's making (session expiry, will).
    pub async fn open_v5_with(url: &str, connect: v5::Connect, will: Option<v5::LastWill>) -> anyhow::Result<Self> {
        let mut connection = Self::handshake(url, true).await?;
        connection.send_v5(v5::Packet::Connect(connect, will, None)).await?;
        connection.connack().await
    }

    async fn handshake(url: &str, v5: bool) -> anyhow::Result<Self> {
        let mut request = url.into_client_request()?;
        request.headers_mut().insert("sec-websocket-protocol", "mqtt".parse()?);
        // No Nagle delay: small packets (PUBACKs) go out when flushed, as MQTT
        // clients send them.
        let (socket, _) =
            tokio_tungstenite::connect_async_with_config(request, Some(socket_config(16 * 1024)), true).await?;
        Ok(Self {
            socket,
            buffer: BytesMut::new(),
            v5,
        })
    }

    /// 3.1.1, from the loopback address `source` (each address has its own
    /// ephemeral ports: past ~28,000 connections to one port, a load generator
    /// needs several). Plain `ws://` only.
    pub async fn open_from(url: &str, client_id: &str, source: std::net::IpAddr) -> anyhow::Result<Self> {
        let mut request = url.into_client_request()?;
        request.headers_mut().insert("sec-websocket-protocol", "mqtt".parse()?);
        let uri = request.uri();
        let host = uri.host().ok_or_else(|| anyhow::anyhow!("no host in {url}"))?;
        let port = uri.port_u16().unwrap_or(80);
        let target: std::net::SocketAddr = format!("{host}:{port}").parse()?;
        // A port of an earlier run may still be in TIME_WAIT toward the same
        // address: another port then.
        let mut tries = 0;
        let stream = loop {
            let tcp = tokio::net::TcpSocket::new_v4()?;
            tcp.set_reuseaddr(true)?;
            tcp.bind(std::net::SocketAddr::new(source, 0))?;
            match tcp.connect(target).await {
                Err(err) if err.kind() == std::io::ErrorKind::AddrInUse && tries < 8 => tries += 1,
                other => break other?,
            }
        };
        stream.set_nodelay(true)?;
        // Small buffers: tungstenite reserves a 128 KiB read buffer per socket by
        // default, 12.5 GiB for 100,000 idle connections.
        let config = socket_config(4096).write_buffer_size(0);
        let (socket, _) = tokio_tungstenite::client_async_with_config(
            request,
            tokio_tungstenite::MaybeTlsStream::Plain(stream),
            Some(config),
        )
        .await?;
        let mut connection = Self {
            socket,
            buffer: BytesMut::new(),
            v5: false,
        };
        let mut connect = Connect::new(client_id);
        connect.keep_alive = 1200;
        connection.send(Packet::Connect(connect)).await?;
        connection.connack().await
    }

    async fn connack(mut self) -> anyhow::Result<Self> {
        match self.next().await? {
            Some(Packet::ConnAck(ack)) if ack.code == rumqttc::mqttbytes::v4::ConnectReturnCode::Success => Ok(self),
            other => anyhow::bail!("no CONNACK: {other:?}"),
        }
    }

    async fn open_version(url: &str, client_id: &str, v5: bool) -> anyhow::Result<Self> {
        let mut connection = Self::handshake(url, v5).await?;
        if v5 {
            let connect = v5::Connect {
                keep_alive: 600,
                client_id: client_id.into(),
                clean_start: true,
                properties: None,
            };
            connection.send_v5(v5::Packet::Connect(connect, None, None)).await?;
        } else {
            let mut connect = Connect::new(client_id);
            connect.keep_alive = 600;
            connection.send(Packet::Connect(connect)).await?;
        }
        connection.connack().await
    }

    pub async fn send(&mut self, packet: Packet) -> anyhow::Result<()> {
        let mut buffer = BytesMut::new();
        packet.write(&mut buffer, MAX)?;
        self.socket.send(Message::binary(buffer.freeze())).await?;
        Ok(())
    }

    /// Queues a packet without flushing.
    pub async fn feed(&mut self, packet: Packet) -> anyhow::Result<()> {
        let mut buffer = BytesMut::new();
        packet.write(&mut buffer, MAX)?;
        self.socket.feed(Message::binary(buffer.freeze())).await?;
        Ok(())
    }

    pub async fn flush(&mut self) -> anyhow::Result<()> {
        self.socket.flush().await?;
        Ok(())
    }

    /// The next packet; `None` when the broker closed the connection.
    pub async fn next(&mut self) -> anyhow::Result<Option<Packet>> {
        loop {
            if self.v5 {
                match v5::Packet::read(&mut self.buffer, None) {
                    Ok(packet) => return Ok(Some(as_v4(packet)?)),
                    Err(rumqttc::v5::mqttbytes::Error::InsufficientBytes(_)) => {}
                    Err(err) => anyhow::bail!("bad MQTT 5 packet: {err:?}"),
                }
            } else {
                match Packet::read(&mut self.buffer, MAX) {
                    Ok(packet) => return Ok(Some(packet)),
                    Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => {}
                    Err(err) => anyhow::bail!("bad packet: {err:?}"),
                }
            }
            match self.socket.next().await {
                Some(Ok(Message::Binary(bytes))) => self.buffer.extend_from_slice(&bytes),
                Some(Ok(Message::Close(_))) | None => return Ok(None),
                Some(Ok(_)) => {}
                Some(Err(err)) => return Err(err.into()),
            }
        }
    }

    pub async fn subscribe(&mut self, filter: &str, qos: QoS) -> anyhow::Result<()> {
        if self.v5 {
            let qos = if qos == QoS::AtMostOnce {
                QoS5::AtMostOnce
            } else {
                QoS5::AtLeastOnce
            };
            let mut subscribe = v5::Subscribe::new(v5::Filter::new(filter, qos), None);
            subscribe.pkid = 1;
            self.send_v5(v5::Packet::Subscribe(subscribe)).await?;
        } else {
            let mut subscribe = Subscribe::new(filter, qos);
            subscribe.pkid = 1;
            self.send(Packet::Subscribe(subscribe)).await?;
        }
        match self.next().await? {
            Some(Packet::SubAck(_)) => Ok(()),
            other => anyhow::bail!("no SUBACK: {other:?}"),
        }
    }

    pub async fn puback(&mut self, pkid: u16) -> anyhow::Result<()> {
        if self.v5 {
            return self.send_v5(v5::Packet::PubAck(v5::PubAck::new(pkid, None))).await;
        }
        self.send(Packet::PubAck(PubAck::new(pkid))).await
    }

    /// Sends an MQTT 5 packet as it is.
    pub async fn send_v5(&mut self, packet: v5::Packet) -> anyhow::Result<()> {
        let mut buffer = BytesMut::new();
        packet.write(&mut buffer, None)?;
        self.socket.send(Message::binary(buffer.freeze())).await?;
        Ok(())
    }
}

/// An MQTT 5 packet in the 3.1.1 shape the suites read.
fn as_v4(packet: v5::Packet) -> anyhow::Result<Packet> {
    use rumqttc::mqttbytes::v4::{ConnAck, ConnectReturnCode, SubAck, SubscribeReasonCode};
    Ok(match packet {
        v5::Packet::ConnAck(ack) => Packet::ConnAck(ConnAck::new(
            if ack.code == v5::ConnectReturnCode::Success {
                ConnectReturnCode::Success
            } else {
                ConnectReturnCode::NotAuthorized
            },
            ack.session_present,
        )),
        v5::Packet::SubAck(ack) => Packet::SubAck(SubAck::new(
            ack.pkid,
            ack.return_codes
                .iter()
                .map(|code| match code {
                    v5::SubscribeReasonCode::Success(QoS5::AtMostOnce) => SubscribeReasonCode::Success(QoS::AtMostOnce),
                    v5::SubscribeReasonCode::Success(_) => SubscribeReasonCode::Success(QoS::AtLeastOnce),
                    _ => SubscribeReasonCode::Failure,
                })
                .collect(),
        )),
        v5::Packet::Publish(p) => {
            let qos = if p.qos == QoS5::AtMostOnce {
                QoS::AtMostOnce
            } else {
                QoS::AtLeastOnce
            };
            let mut publish = Publish::from_bytes(std::str::from_utf8(&p.topic)?, qos, p.payload);
            publish.pkid = p.pkid;
            Packet::Publish(publish)
        }
        v5::Packet::PubAck(ack) => Packet::PubAck(PubAck::new(ack.pkid)),
        v5::Packet::PingResp(_) => Packet::PingResp,
        v5::Packet::Disconnect(d) => anyhow::bail!("the broker disconnected: {:?}", d.reason_code),
        other => anyhow::bail!("unexpected MQTT 5 packet: {other:?}"),
    })
}

pub fn publish(topic: &str, qos: QoS, pkid: u16, payload: Bytes) -> Packet {
    let mut publish = Publish::from_bytes(topic, qos, payload);
    publish.pkid = pkid;
    Packet::Publish(publish)
}
