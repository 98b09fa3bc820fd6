//! The STS emulator's Query request parser and `AssumeRole` validation on
//! arbitrary bytes: a parse and a refusal (or an issue), never a panic.
#![no_main]

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;

#[path = "fixtures.rs"]
mod fixtures;
use fixtures::allow_all;
use serverless_websockets_local::identity::{Identity, IdentityStore};
use serverless_websockets_local::sts::{LocalRole, QueryRequest, StsEmulator};

const ROLE: &str = "arn:aws:iam::000000000000:role/r";

/// A fresh emulator per input, so issued credentials do not pile up across runs.
fn emulator() -> (StsEmulator, Identity) {
    let role = LocalRole {
        arn: ROLE.into(),
        name: "r".into(),
        role_id: "AROAFUZZ".into(),
        max_session: Duration::from_secs(3600),
        policies: Arc::from(vec![allow_all()]),
        trusted: vec!["*".into()],
        inline: Arc::default(),
    };
    let caller = fixtures::admin();
    (
        StsEmulator::new("000000000000", vec![role], Arc::new(IdentityStore::new())),
        caller,
    )
}

fuzz_target!(|data: &[u8]| {
    // The first line is the request target (path and query), the rest the form body.
    let split = data.iter().position(|&b| b == b'\n').unwrap_or(data.len());
    let target = String::from_utf8_lossy(&data[..split]);
    let body = data.get(split + 1..).unwrap_or(&[]);
    let Ok(uri) = format!("/?{}", target.trim_start_matches(['/', '?'])).parse::<http::Uri>() else {
        return;
    };
    let (sts, caller) = emulator();
    for method in [http::Method::POST, http::Method::GET] {
        let request = QueryRequest::parse(&method, &uri, body);
        let mut params = request.params.clone();
        params.insert("RoleArn".into(), ROLE.into());
        let now = UNIX_EPOCH + Duration::from_secs(1_795_412_400);
        let _ = sts.assume_role(&caller, &request.params, now);
        let _ = sts.assume_role(&caller, &params, SystemTime::UNIX_EPOCH);
    }
});
