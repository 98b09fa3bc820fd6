//! Idle connections: open C authenticated MQTT-over-WebSocket connections to each
//! broker (64 at a time) and report the broker process's resident memory per
//! connection and the connect rate (handshake, SigV4 verification for ours, CONNACK).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use crate::brokers::{Broker, rss_bytes};
use crate::mqtt_ws::Connection;

pub struct Outcome {
    pub connects_per_s: f64,
    pub bytes_per_connection: f64,
    pub rss_before: u64,
    pub rss_after: u64,
}

/// Opens `count` connections to `broker`, 64 at a time, with client IDs `{prefix}-{i}`.
pub async fn open_many(broker: &Broker, count: usize, prefix: &str) -> anyhow::Result<Vec<Connection>> {
    let slots = Arc::new(Semaphore::new(64));
    let mut opening = Vec::with_capacity(count);
    for i in 0..count {
        let permit = slots.clone().acquire_owned().await?;
        let (url, client_id) = (broker.url(), format!("{prefix}-{i}"));
        opening.push(tokio::spawn(async move {
            let connection = Connection::open(&url, &client_id).await;
            drop(permit);
            connection
        }));
    }
    let mut open = Vec::with_capacity(count);
    for connection in opening {
        open.push(connection.await??);
    }
    Ok(open)
}

pub async fn run(broker: &Broker, count: usize) -> anyhow::Result<Outcome> {
    let pid = broker.pid().ok_or_else(|| anyhow::anyhow!("broker has exited"))?;
    let rss_before = rss_bytes(pid).unwrap_or(0);
    let started = Instant::now();
    let open = open_many(broker, count, "idle").await?;
    let elapsed = started.elapsed();
    // Let the broker settle its buffers before reading its memory.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_after = rss_bytes(pid).unwrap_or(0);
    drop(open);
    Ok(Outcome {
        connects_per_s: count as f64 / elapsed.as_secs_f64(),
        bytes_per_connection: rss_after.saturating_sub(rss_before) as f64 / count as f64,
        rss_before,
        rss_after,
    })
}
