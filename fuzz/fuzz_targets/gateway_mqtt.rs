//! The gateway's handling of arbitrary MQTT bytes after the WebSocket handshake,
//! CONNECT included (either version, or none): it must end with a disconnect,
//! never a panic. See `gateway_harness.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "fixtures.rs"]
mod fixtures;
#[path = "gateway_harness.rs"]
mod gateway_harness;

fuzz_target!(|data: &[u8]| gateway_harness::run(&[], data));
