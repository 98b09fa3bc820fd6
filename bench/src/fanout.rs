//! Gateway fan-out: N subscribers on one shared topic over WebSocket, one publisher,
//! against our gateway and mosquitto with the same load generator in the same run.
//! Each payload starts with its send time, so every delivery yields a latency;
//! deliveries that never arrive within the wait count as lost.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::{BufMut, Bytes, BytesMut};
use rumqttc::mqttbytes::QoS;
use rumqttc::mqttbytes::v4::Packet;
use tokio::sync::Semaphore;

use crate::brokers::Broker;
use crate::mqtt_ws::{Connection, publish};
use crate::report::quantile;

const TOPIC: &str = "bench/fanout";

#[derive(Debug, Clone, Copy)]
pub struct Load {
    pub subscribers: usize,
    pub messages: usize,
    pub payload: usize,
    pub qos: QoS,
    /// Messages per second, or as fast as possible.
    pub rate: Option<u32>,
    /// Subscribers speak MQTT 5 (the publisher always speaks 3.1.1).
    pub mqtt5: bool,
}

#[derive(Debug, Clone)]
pub struct Outcome {
    pub deliveries_per_s: f64,
    pub p50: Duration,
    pub p99: Duration,
    pub lost: usize,
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// One fan-out run: subscribe → receive in the background → publish → collect.
pub async fn run(broker: &Broker, load: Load, tag: &str) -> anyhow::Result<Outcome> {
    let connections = subscribe_all(broker, load, tag).await?;
    let give_up = Arc::new(tokio::sync::Notify::new());
    let receivers: Vec<_> = connections
        .into_iter()
        .map(|connection| tokio::spawn(receive(connection, load, give_up.clone())))
        .collect();
    let mut publisher = Connection::open(&broker.url(), &format!("{tag}-publisher")).await?;
    let started = Instant::now();
    publish_all(&mut publisher, load).await?;
    // Give stragglers a bounded time, then stop waiting.
    let notify = give_up.clone();
    let grace = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(15)).await;
        notify.notify_waiters();
    });
    let mut latencies = Vec::with_capacity(load.subscribers * load.messages);
    let mut last = started;
    for receiver in receivers {
        let (mut samples, at) = receiver.await?;
        latencies.append(&mut samples);
        if let Some(at) = at {
            last = last.max(at);
        }
    }
    grace.abort();
    let received = latencies.len();
    let elapsed = (last - started).max(Duration::from_micros(1));
    Ok(Outcome {
        deliveries_per_s: received as f64 / elapsed.as_secs_f64(),
        p50: quantile(&mut latencies, 0.5),
        p99: quantile(&mut latencies, 0.99),
        lost: load.subscribers * load.messages - received,
    })
}

/// Opens and subscribes every subscriber, at most 32 handshakes at a time.
async fn subscribe_all(broker: &Broker, load: Load, tag: &str) -> anyhow::Result<Vec<Connection>> {
    let opening = Arc::new(Semaphore::new(32));
    let mut subscribers = Vec::with_capacity(load.subscribers);
    for i in 0..load.subscribers {
        let permit = opening.clone().acquire_owned().await?;
        let url = broker.url();
        let id = format!("{tag}-sub-{i}");
        subscribers.push(tokio::spawn(async move {
            let mut connection = if load.mqtt5 {
                Connection::open_v5(&url, &id).await?
            } else {
                Connection::open(&url, &id).await?
            };
            connection.subscribe(TOPIC, load.qos).await?;
            drop(permit);
            anyhow::Ok(connection)
        }));
    }
    let mut connections = Vec::with_capacity(load.subscribers);
    for subscriber in subscribers {
        connections.push(subscriber.await??);
    }
    Ok(connections)
}

/// One subscriber's latencies (and when the last message came), until every
/// message arrived, the connection ended, or `give_up` fires.
async fn receive(
    mut connection: Connection,
    load: Load,
    give_up: Arc<tokio::sync::Notify>,
) -> (Vec<Duration>, Option<Instant>) {
    let mut latencies = Vec::with_capacity(load.messages);
    let mut last = None;
    let give_up = give_up.notified();
    tokio::pin!(give_up);
    while latencies.len() < load.messages {
        let packet = tokio::select! {
            packet = connection.next() => packet,
            () = &mut give_up => break,
        };
        match packet {
            Ok(Some(Packet::Publish(message))) => {
                let sent = u64::from_be_bytes(message.payload[..8].try_into().unwrap_or_default());
                latencies.push(Duration::from_nanos(now_nanos().saturating_sub(sent)));
                last = Some(Instant::now());
                if message.qos == QoS::AtLeastOnce && connection.puback(message.pkid).await.is_err() {
                    break;
                }
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    (latencies, last)
}

/// Publishes `load.messages` timestamped messages, paced by `load.rate` if set.
async fn publish_all(publisher: &mut Connection, load: Load) -> anyhow::Result<()> {
    let mut ticker = load
        .rate
        .map(|r| tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(r))));
    for i in 0..load.messages {
        if let Some(ticker) = ticker.as_mut() {
            ticker.tick().await;
        }
        let mut payload = BytesMut::with_capacity(load.payload.max(8));
        payload.put_u64(now_nanos());
        payload.resize(load.payload.max(8), 0);
        let pkid = if load.qos == QoS::AtLeastOnce {
            (i % 65_535) as u16 + 1
        } else {
            0
        };
        publisher
            .feed(publish(TOPIC, load.qos, pkid, Bytes::from(payload)))
            .await?;
        if i % 16 == 15 || ticker.is_some() {
            publisher.flush().await?;
        }
    }
    publisher.flush().await?;
    Ok(())
}
