//! SigV4 throughput on one core: presigning an IoT WebSocket URL (`aws-sigv4`) and
//! verifying one (the gateway's verifier, signing-key cache warm). Reference in the
//! same run: one HMAC-SHA256 over a 256-byte message, the primitive both are made
//! of (a verification is about two SHA-256 and one HMAC; a presign a few more).

use std::time::{Duration, Instant, SystemTime};

use aws_credential_types::Credentials;
use hmac::{Hmac, Mac};
use serverless_websockets_core::presign::{DEFAULT_EXPIRES, IotEndpoint, presign};
use serverless_websockets_core::sigv4::{
    Expectations, RequestParts, SignedClaims, TokenInQuery, Verifier, query_pairs,
};
use sha2::Sha256;

use crate::report::Report;

fn rate(count: u64, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

/// Runs `f` `count` times and returns operations per second.
fn measure(count: u64, mut f: impl FnMut(u64)) -> f64 {
    let started = Instant::now();
    for i in 0..count {
        f(i);
    }
    rate(count, started.elapsed())
}

/// Verifications per second of one presigned URL, as the gateway checks it.
fn verify_rate(count: u64, endpoint: &IotEndpoint, credentials: &Credentials, now: SystemTime) -> anyhow::Result<f64> {
    let url = presign(endpoint, "us-east-1", credentials, now, DEFAULT_EXPIRES)?;
    let query = url.split_once('?').map(|(_, q)| q.to_owned()).unwrap_or_default();
    let mut headers = http::HeaderMap::new();
    headers.insert("host", "127.0.0.1:8443".parse()?);
    let verifier = Verifier::new();
    let expect = Expectations {
        services: &["iotdevicegateway"],
        region: Some("us-east-1"),
        token_in_query: TokenInQuery::Unsigned,
        payload_sha256: None,
    };
    Ok(measure(count, |_| {
        let pairs = query_pairs(&query);
        let claims = SignedClaims::from_query(&pairs).expect("parses");
        let parts = RequestParts {
            method: "GET",
            raw_path: "/mqtt",
            query: &pairs,
            headers: &headers,
        };
        verifier
            .verify(&claims, parts, "bench-secret", expect, now)
            .expect("verifies");
    }))
}

pub fn run(count: u64) -> anyhow::Result<Report> {
    let endpoint = IotEndpoint::parse("ws://127.0.0.1:8443")?;
    let credentials = Credentials::new(
        "ASIABENCHMARK0000001",
        "bench-secret",
        Some("bench-token".into()),
        None,
        "bench",
    );
    let now = SystemTime::now();

    let hmac_rate = measure(count, |i| {
        let mut mac = Hmac::<Sha256>::new_from_slice(b"key").expect("any key length");
        mac.update(&[i as u8; 256]);
        std::hint::black_box(mac.finalize());
    });
    let presign_rate = measure(count, |_| {
        std::hint::black_box(presign(&endpoint, "us-east-1", &credentials, now, DEFAULT_EXPIRES).expect("signs"));
    });

    let verify_rate = verify_rate(count, &endpoint, &credentials, now)?;

    let row = |name: &str, ops: f64| {
        vec![
            name.to_owned(),
            format!("{ops:.0}/s"),
            format!("{:.2} µs", 1e6 / ops),
            format!("{:.1}× HMAC", hmac_rate / ops),
        ]
    };
    Ok(Report {
        title: format!("SigV4 on one core ({count} operations each)"),
        header: ["operation", "throughput", "per operation", "cost vs reference"]
            .map(String::from)
            .to_vec(),
        rows: vec![
            row("presign an IoT wss URL (aws-sigv4)", presign_rate),
            row("verify a presigned URL (gateway)", verify_rate),
            row("reference: HMAC-SHA256 of 256 bytes", hmac_rate),
        ],
        notes: vec!["Each figure is single-threaded; the machine has 2 cores.".into()],
        json: serde_json::json!({
            "suite": "sigv4", "count": count,
            "presign_per_s": presign_rate, "verify_per_s": verify_rate, "hmac_per_s": hmac_rate,
        }),
    })
}
