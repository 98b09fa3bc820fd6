//! The gateway's MQTT 5 packet path: arbitrary bytes after a valid MQTT 5 CONNECT
//! (session expiry, receive maximum and maximum packet size set), so that every
//! input exercises the v5 decoder, properties, topic aliases, shared
//! subscriptions and reason codes. It must end with a disconnect, never a panic.
#![no_main]

use std::sync::LazyLock;

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use rumqttc::v5::mqttbytes::v5::{Connect, ConnectProperties, Packet};

#[path = "fixtures.rs"]
mod fixtures;
#[path = "gateway_harness.rs"]
mod gateway_harness;

static CONNECT: LazyLock<Vec<u8>> = LazyLock::new(|| {
    let mut properties = ConnectProperties::new();
    properties.session_expiry_interval = Some(60);
    properties.receive_maximum = Some(10);
    properties.max_packet_size = Some(4096);
    let connect = Connect {
        keep_alive: 30,
        client_id: "fuzz-v5".into(),
        clean_start: false,
        properties: Some(properties),
    };
    let mut buffer = BytesMut::new();
    Packet::Connect(connect, None, None).write(&mut buffer, None).unwrap();
    buffer.to_vec()
});

fuzz_target!(|data: &[u8]| gateway_harness::run(&CONNECT, data));
