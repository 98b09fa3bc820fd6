//! The load generator's MQTT 3.1.1 over WebSocket client: raw packets encoded with
//! `rumqttc::mqttbytes`, so thousands of connections cost little and both brokers
//! see exactly the same traffic.

use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use rumqttc::mqttbytes::QoS;
use rumqttc::mqttbytes::v4::{Connect, Packet, PubAck, Publish, Subscribe};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub struct Connection {
    socket: Socket,
    buffer: BytesMut,
}

const MAX: usize = 1 << 20;

impl Connection {
    /// WebSocket handshake (subprotocol `mqtt`), CONNECT, CONNACK.
    pub async fn open(url: &str, client_id: &str) -> anyhow::Result<Self> {
        let mut request = url.into_client_request()?;
        request.headers_mut().insert("sec-websocket-protocol", "mqtt".parse()?);
        let (socket, _) = tokio_tungstenite::connect_async(request).await?;
        let mut connection = Self {
            socket,
            buffer: BytesMut::new(),
        };
        let mut connect = Connect::new(client_id);
        connect.keep_alive = 600;
        connection.send(Packet::Connect(connect)).await?;
        match connection.next().await? {
            Some(Packet::ConnAck(ack)) if ack.code == rumqttc::mqttbytes::v4::ConnectReturnCode::Success => {
                Ok(connection)
            }
            other => anyhow::bail!("no CONNACK: {other:?}"),
        }
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
            match Packet::read(&mut self.buffer, MAX) {
                Ok(packet) => return Ok(Some(packet)),
                Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => {}
                Err(err) => anyhow::bail!("bad packet: {err:?}"),
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
        let mut subscribe = Subscribe::new(filter, qos);
        subscribe.pkid = 1;
        self.send(Packet::Subscribe(subscribe)).await?;
        match self.next().await? {
            Some(Packet::SubAck(_)) => Ok(()),
            other => anyhow::bail!("no SUBACK: {other:?}"),
        }
    }

    pub async fn puback(&mut self, pkid: u16) -> anyhow::Result<()> {
        self.send(Packet::PubAck(PubAck::new(pkid))).await
    }
}

pub fn publish(topic: &str, qos: QoS, pkid: u16, payload: Bytes) -> Packet {
    let mut publish = Publish::from_bytes(topic, qos, payload);
    publish.pkid = pkid;
    Packet::Publish(publish)
}
