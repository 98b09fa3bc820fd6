//! The rules engine's hand-written SQL parser and evaluator with arbitrary text:
//! a statement and a payload, split at the first NUL. Property: parsing either
//! refuses the statement or gives one that evaluates any payload under both SQL
//! versions without panicking, and a substitution template of the same text does too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serverless_websockets_local::rules::sql::template::Template;
use serverless_websockets_local::rules::sql::{Context, Sql, SqlVersion, payload_json};

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    let (sql, payload) = (String::from_utf8_lossy(&data[..split]), data.get(split + 1..).unwrap_or_default());
    let json = payload_json(payload);
    for version in [SqlVersion::V2015_10_08, SqlVersion::V2016_03_23] {
        let context = Context {
            version,
            topic: "from/alice/c1",
            client_id: Some("c1"),
            principal: Some("AROAFUZZ:c1"),
            timestamp_ms: 1,
            account_id: "000000000000",
            trace_id: None,
            payload,
            json: json.as_ref(),
        };
        if let Ok(statement) = Sql::parse(&sql, version) {
            let _ = statement.evaluate(&context);
        }
        if let Ok(template) = Template::parse(&sql, version) {
            let _ = template.render(&context);
        }
    }
});
