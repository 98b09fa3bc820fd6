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

pub async fn run(broker: &Broker, count: usize) -> anyhow::Result<Outcome> {
    let pid = broker.pid().ok_or_else(|| anyhow::anyhow!("broker has exited"))?;
    let rss_before = rss_bytes(pid).unwrap_or(0);
    let slots = Arc::new(Semaphore::new(64));
    let started = Instant::now();
    let mut opening = Vec::with_capacity(count);
    for i in 0..count {
        let permit = slots.clone().acquire_owned().await?;
        let url = broker.url();
        opening.push(tokio::spawn(async move {
            let connection = Connection::open(&url, &format!("idle-{i}")).await;
            drop(permit);
            connection
        }));
    }
    let mut open = Vec::with_capacity(count);
    for connection in opening {
        open.push(connection.await??);
    }
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
