//! The brokers the gateway suites compare, each started as its own process on
//! loopback: our gateway (`serverless-websockets local`, release build),
//! mosquitto (Debian package; single-threaded) and rumqttd (`cargo install
//! rumqttd`; multi-threaded, in Rust), each with a WebSocket listener. All are
//! reached by the same load generator ([`crate::mqtt_ws`]); ours with
//! SigV4-presigned URLs signed with the local admin credentials, the references
//! anonymously.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use aws_credential_types::Credentials;
use serverless_websockets_core::presign::{DEFAULT_EXPIRES, IotEndpoint, presign};
use tokio::process::{Child, Command};

pub enum Kind {
    Ours {
        endpoint: IotEndpoint,
        credentials: Credentials,
        region: String,
    },
    /// A reference broker: anonymous WebSocket on `port`.
    Reference { port: u16 },
}

pub struct Broker {
    pub name: &'static str,
    pub kind: Kind,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Broker {
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// A URL (and subprotocol) for one new connection.
    pub fn url(&self) -> String {
        match &self.kind {
            Kind::Ours {
                endpoint,
                credentials,
                region,
            } => presign(endpoint, region, credentials, SystemTime::now(), DEFAULT_EXPIRES).expect("presigns"),
            Kind::Reference { port } => format!("ws://127.0.0.1:{port}/mqtt"),
        }
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// Our gateway, started from `binary` with a ready file.
pub async fn ours(binary: &Path) -> anyhow::Result<Broker> {
    ours_with(binary, &[]).await
}

/// Our gateway with extra `local` arguments (`--rules FILE`, …).
pub async fn ours_with(binary: &Path, extra: &[&std::ffi::OsStr]) -> anyhow::Result<Broker> {
    let dir = tempfile::tempdir()?;
    let ready = dir.path().join("ready.json");
    let child = Command::new(binary)
        .args([
            "local",
            "--api-port",
            "0",
            "--sts-port",
            "0",
            "--iot-port",
            "0",
            "--ready-file",
        ])
        .arg(&ready)
        // The suites measure the gateway, as the references (which have no
        // quotas) are measured: IoT's rate limits are relaxed, as a load test
        // against the local stack would relax them.
        .args([
            "--client-id-connects-per-second",
            "0",
            "--publishes-per-second",
            "0",
            "--publish-bytes-per-second",
            "0",
        ])
        .args(extra)
        .env("RUST_LOG", "warn")
        .env("AUTH_MODE", "none")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let info = wait_for_file(&ready).await?;
    let info: serde_json::Value = serde_json::from_str(&info)?;
    let text = |k: &str| info[k].as_str().unwrap_or_default().to_owned();
    let credentials = Credentials::new(
        info["admin"]["access_key_id"].as_str().unwrap_or_default(),
        info["admin"]["secret_access_key"].as_str().unwrap_or_default(),
        None,
        None,
        "bench",
    );
    Ok(Broker {
        name: "serverless-websockets",
        kind: Kind::Ours {
            endpoint: IotEndpoint::parse(&text("iot_endpoint"))?,
            credentials,
            region: text("region"),
        },
        child,
        _dir: dir,
    })
}

/// A loopback port free now, for a reference broker that cannot report the
/// port it bound (the OS may hand it out again before the broker binds it).
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// mosquitto with a TCP listener and a WebSocket listener on free loopback ports.
pub async fn mosquitto() -> anyhow::Result<Broker> {
    let (tcp, ws) = (free_port()?, free_port()?);
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("mosquitto.conf");
    std::fs::write(
        &config,
        format!(
            "per_listener_settings false\nallow_anonymous true\nmax_queued_messages 100000\nmax_inflight_messages 0\n\
             listener {tcp} 127.0.0.1\nlistener {ws} 127.0.0.1\nprotocol websockets\n"
        ),
    )?;
    let child = Command::new("mosquitto")
        .arg("-c")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("starting mosquitto (apt-get install mosquitto)")?;
    ready("mosquitto", ws, child, dir).await
}

/// Where `rumqttd` is: `$RUMQTTD`, or on the `PATH` (`cargo install rumqttd`).
fn rumqttd_binary() -> std::ffi::OsString {
    std::env::var_os("RUMQTTD").unwrap_or_else(|| "rumqttd".into())
}

/// rumqttd with a WebSocket listener on a free loopback port, room for
/// `max_connections`, and IoT's (and our gateway's) 100 unacknowledged QoS 1
/// deliveries per client.
pub async fn rumqttd(max_connections: usize) -> anyhow::Result<Broker> {
    let (tcp, ws) = (free_port()?, free_port()?);
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("rumqttd.toml");
    let connections =
        "connection_timeout_ms = 60000\nmax_payload_size = 262144\nmax_inflight_count = 100\ndynamic_filters = true\n";
    std::fs::write(
        &config,
        format!(
            "id = 0\n[router]\nid = 0\nmax_connections = {max}\nmax_outgoing_packet_count = 100000\n\
             max_segment_size = 104857600\nmax_segment_count = 10\n\
             [v4.1]\nname = \"v4-1\"\nlisten = \"127.0.0.1:{tcp}\"\nnext_connection_delay_ms = 0\n\
             [v4.1.connections]\n{connections}\
             [ws.1]\nname = \"ws-1\"\nlisten = \"127.0.0.1:{ws}\"\nnext_connection_delay_ms = 0\n\
             [ws.1.connections]\n{connections}",
            max = max_connections + 16,
        ),
    )?;
    let child = Command::new(rumqttd_binary())
        .arg("--config")
        .arg(&config)
        .arg("-q")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("starting rumqttd (cargo install rumqttd, or set RUMQTTD to its path)")?;
    ready("rumqttd", ws, child, dir).await
}

/// A reference broker, once its WebSocket port accepts.
async fn ready(name: &'static str, port: u16, mut child: Child, dir: tempfile::TempDir) -> anyhow::Result<Broker> {
    for _ in 0..400 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return Ok(Broker {
                name,
                kind: Kind::Reference { port },
                child,
                _dir: dir,
            });
        }
        if let Ok(Some(status)) = child.try_wait() {
            anyhow::bail!("{name} exited before opening its WebSocket port: {status}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    anyhow::bail!("{name} did not open its WebSocket port")
}

async fn wait_for_file(path: &Path) -> anyhow::Result<String> {
    for _ in 0..400 {
        if let Ok(text) = std::fs::read_to_string(path) {
            return Ok(text);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    anyhow::bail!("{} did not appear", path.display())
}

/// Resident memory of a process, in bytes (Linux `/proc`).
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
