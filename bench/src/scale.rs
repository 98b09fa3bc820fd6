//! Scale: hold N idle authenticated connections (100,000 by default) on this
//! machine, each subscribed to one topic, and fan one message out to all of them;
//! the same against rumqttd. Connections come from several loopback source
//! addresses (`127.0.1.2`, `127.0.1.3`, …): each address has its own ~28,000
//! ephemeral ports. The file limit is raised first (the brokers inherit it).
//!
//! Reported per broker: resident memory per connection (its RSS after minus
//! before, over N), the connect rate (WebSocket handshake + SigV4 verification
//! for ours + CONNECT/CONNACK + SUBSCRIBE/SUBACK), and the time from one
//! publish to its last delivery.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use rumqttc::mqttbytes::QoS;
use rumqttc::mqttbytes::v4::Packet;
use tokio::sync::{Notify, Semaphore};

use crate::brokers::{Broker, rss_bytes};
use crate::mqtt_ws::{Connection, publish};

/// Connections opened at once.
const IN_FLIGHT: usize = 64;
/// Connections per loopback source address (well under the ~28,000 ephemeral
/// ports, which an earlier run's TIME_WAIT sockets may still hold).
const PER_SOURCE: usize = 10_000;
const TOPIC: &str = "scale/all";

pub struct Outcome {
    pub connections: usize,
    pub connects_per_s: f64,
    pub bytes_per_connection: f64,
    pub rss_after: u64,
    /// From the publish to the last of the N deliveries.
    pub fanout: Duration,
}

/// The loopback source address of connection `index` of run `run`: each run
/// its own addresses (`127.0.<run>.x`), so one run's TIME_WAIT ports do not
/// crowd the next.
fn source(run: u8, index: usize) -> IpAddr {
    let n = u8::try_from(2 + index / PER_SOURCE).unwrap_or(u8::MAX);
    IpAddr::V4(Ipv4Addr::new(127, 0, run, n))
}

/// Opens `count` connections, each subscribed to [`TOPIC`].
async fn open_subscribed(broker: &Broker, count: usize, run: u8) -> anyhow::Result<Vec<Connection>> {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut opening = Vec::with_capacity(count);
    for i in 0..count {
        let permit = slots.clone().acquire_owned().await?;
        let url = broker.url();
        opening.push(tokio::spawn(async move {
            let opening = async {
                let mut connection = Connection::open_from(&url, &format!("scale-{i}"), source(run, i))
                    .await
                    .map_err(|e| anyhow::anyhow!("connect: {e:#}"))?;
                connection
                    .subscribe(TOPIC, QoS::AtMostOnce)
                    .await
                    .map_err(|e| anyhow::anyhow!("subscribe: {e:#}"))?;
                anyhow::Ok(connection)
            };
            // A broker out of files stops accepting: say so instead of waiting.
            let opened = tokio::time::timeout(Duration::from_secs(30), opening)
                .await
                .unwrap_or_else(|_| Err(anyhow::anyhow!("no CONNACK and SUBACK within 30 s")))
                .with_context(|| format!("connection {i} from {}", source(run, i)));
            drop(permit);
            opened
        }));
    }
    let mut open = Vec::with_capacity(count);
    for connection in opening {
        open.push(connection.await??);
    }
    Ok(open)
}

pub async fn run(broker: &Broker, count: usize, run: u8) -> anyhow::Result<Outcome> {
    let pid = broker.pid().ok_or_else(|| anyhow::anyhow!("broker has exited"))?;
    let rss_before = rss_bytes(pid).unwrap_or(0);
    let started = Instant::now();
    let open = open_subscribed(broker, count, run).await?;
    let connecting = started.elapsed();
    // Let the broker settle its buffers before reading its memory.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let rss_after = rss_bytes(pid).unwrap_or(0);

    // Every connection waits for one message; the publisher sends it.
    let received = Arc::new(AtomicUsize::new(0));
    let all = Arc::new(Notify::new());
    let mut readers = Vec::with_capacity(count);
    for mut connection in open {
        let (received, all) = (received.clone(), all.clone());
        readers.push(tokio::spawn(async move {
            while let Ok(Some(packet)) = connection.next().await {
                if matches!(packet, Packet::Publish(_)) {
                    if received.fetch_add(1, Ordering::AcqRel) + 1 == count {
                        all.notify_one();
                    }
                    break;
                }
            }
            connection
        }));
    }
    let mut publisher = Connection::open(&broker.url(), "scale-publisher").await?;
    let done = all.notified();
    let sent = Instant::now();
    publisher
        .send(publish(TOPIC, QoS::AtMostOnce, 0, Bytes::from_static(b"to everyone")))
        .await?;
    if tokio::time::timeout(Duration::from_secs(120), done).await.is_err() {
        anyhow::bail!(
            "{} of {count} connections got the message within 120 s",
            received.load(Ordering::Acquire)
        );
    }
    let fanout = sent.elapsed();
    for reader in readers {
        drop(reader.await?);
    }
    Ok(Outcome {
        connections: count,
        connects_per_s: count as f64 / connecting.as_secs_f64(),
        bytes_per_connection: rss_after.saturating_sub(rss_before) as f64 / count as f64,
        rss_after,
        fanout,
    })
}
