//! The harness of the gateway fuzz targets: a real connection (decode, authorize,
//! route through the broker, answer) fed from memory, for an identity allowed
//! everything, on one shared gateway.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ws::Message;
use bytes::Bytes;

use super::fixtures;
use serverless_websockets_local::gateway::connection::Connection;
use serverless_websockets_local::gateway::{Gateway, GatewayOptions};
use serverless_websockets_local::identity::{Identity, IdentityStore};
use serverless_websockets_core::arn::IotArns;

/// Incoming messages from memory; everything written is dropped.
struct MemorySocket {
    incoming: VecDeque<Message>,
}

impl futures_util::Stream for MemorySocket {
    type Item = Result<Message, axum::Error>;
    fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Poll::Ready(self.incoming.pop_front().map(Ok))
    }
}

impl futures_util::Sink<Message> for MemorySocket {
    type Error = axum::Error;
    fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }
    fn start_send(self: Pin<&mut Self>, _: Message) -> Result<(), Self::Error> {
        Ok(())
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }
    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }
}

struct World {
    runtime: tokio::runtime::Runtime,
    gateway: Arc<Gateway>,
    identity: Arc<Identity>,
}

static WORLD: LazyLock<World> = LazyLock::new(|| {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (_stop, stopped) = tokio::sync::watch::channel(false);
    std::mem::forget(_stop);
    let options = GatewayOptions {
        min_keep_alive: Duration::from_secs(1),
        ..GatewayOptions::default()
    };
    let arns = IotArns::new("aws", "us-east-1", "000000000000").unwrap();
    let gateway = Arc::new(Gateway::new(Arc::new(IdentityStore::new()), arns, options, stopped));
    let identity = Arc::new(fixtures::admin());
    World {
        runtime,
        gateway,
        identity,
    }
});

/// Runs one connection over `bytes`, after `prefix`. The first byte of `data` picks
/// how the stream is cut into WebSocket messages (an MQTT packet may span messages
/// and a message may hold several packets) and whether a text frame follows.
pub fn run(prefix: &[u8], data: &[u8]) {
    let Some((&cut, bytes)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(cut % 64) + 1;
    let stream: Vec<u8> = prefix.iter().chain(bytes).copied().collect();
    let mut incoming: VecDeque<Message> = stream
        .chunks(chunk)
        .map(|c| Message::Binary(Bytes::copy_from_slice(c)))
        .collect();
    if cut & 0x80 != 0 {
        incoming.push_back(Message::Text("not mqtt".into()));
    }
    let world = &*WORLD;
    let connection = Connection::new(
        world.gateway.clone(),
        world.identity.clone(),
        "127.0.0.1:1".parse().unwrap(),
        MemorySocket { incoming },
    );
    world.runtime.block_on(connection.run());
}
