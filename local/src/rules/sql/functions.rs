//! The rule SQL's functions the emulator knows
//! (<https://docs.aws.amazon.com/iot/latest/developerguide/iot-sql-functions.html>):
//! the context functions (`topic`, `clientid`, `principal`, `timestamp`, `newuuid`,
//! `accountid`, `sql_version`, `traceid`), base64 `encode`/`decode`, `get`, `cast`,
//! the string functions, `isNull`/`isUndefined`, `abs` and the SHA-2 hashes. A bad
//! argument gives Undefined, as in IoT.
//!
//! A function this table does not have (the regular expressions, MD5 and SHA-1,
//! the external ones such as `aws_lambda` or `get_dynamodb`) is refused when the
//! rule is created, with "not emulated", never silently evaluated to Undefined.
//!
//! Not here: the functions' context ([`super::Context`]), operators ([`super::eval`]).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::Digest as _;

use super::value::Value;
use super::{Context, SqlError, SqlVersion};

/// Each function with its smallest and largest number of arguments.
const FUNCTIONS: &[(&str, usize, usize)] = &[
    ("topic", 0, 1),
    ("clientid", 0, 0),
    ("principal", 0, 0),
    ("timestamp", 0, 0),
    ("newuuid", 0, 0),
    ("accountid", 0, 0),
    ("sql_version", 0, 0),
    ("traceid", 0, 0),
    ("encode", 2, 2),
    ("decode", 2, 2),
    ("get", 2, 2),
    ("upper", 1, 1),
    ("lower", 1, 1),
    ("trim", 1, 1),
    ("ltrim", 1, 1),
    ("rtrim", 1, 1),
    ("substring", 2, 3),
    ("replace", 3, 3),
    ("startswith", 2, 2),
    ("endswith", 2, 2),
    ("indexof", 2, 2),
    ("length", 1, 1),
    ("numbytes", 1, 1),
    ("concat", 2, 64),
    ("lpad", 2, 2),
    ("rpad", 2, 2),
    ("chr", 1, 1),
    ("isnull", 1, 1),
    ("isundefined", 1, 1),
    ("abs", 1, 1),
    ("sha224", 1, 1),
    ("sha256", 1, 1),
    ("sha384", 1, 1),
    ("sha512", 1, 1),
];

/// Refuses, at rule creation, a function the emulator does not know or a wrong
/// number of arguments.
pub fn check(name: &str, args: usize, _version: SqlVersion) -> Result<(), SqlError> {
    match FUNCTIONS.iter().find(|(f, _, _)| *f == name) {
        Some((_, min, max)) if (*min..=*max).contains(&args) => Ok(()),
        Some((_, min, max)) => Err(SqlError::new(format!(
            "{name}() takes {min} to {max} arguments, not {args}"
        ))),
        None => Err(SqlError::new(format!(
            "the function {name}() is not emulated by the local rules engine"
        ))),
    }
}

/// The types `cast(v AS t)` takes.
pub fn cast_type(to: &str) -> Result<(), SqlError> {
    match to.to_ascii_lowercase().as_str() {
        "string" | "int" | "integer" | "decimal" | "double" | "bool" | "boolean" => Ok(()),
        _ => Err(SqlError::new(format!("cast to {to} is not a type IoT has"))),
    }
}

/// `cast(value AS to)`: Decimal to Int rounds down; Booleans become 1 and 0 and back.
pub fn cast(value: Value, to: &str, whole_decimals_are_ints: bool) -> Value {
    match to.to_ascii_lowercase().as_str() {
        "string" => value.to_text().map_or(Value::Undefined, Value::String),
        "int" | "integer" => match value {
            Value::Bool(b) => Value::Int(i64::from(b)),
            other => other.as_number().map_or(Value::Undefined, floor_int),
        },
        "decimal" | "double" => match value {
            Value::Bool(b) => Value::decimal(if b { 1.0 } else { 0.0 }, whole_decimals_are_ints),
            other => other.as_number().map_or(Value::Undefined, Value::Decimal),
        },
        _ => match value {
            Value::Int(i) => Value::Bool(i != 0),
            Value::Decimal(f) => Value::Bool(f != 0.0),
            other => other.as_bool().map_or(Value::Undefined, Value::Bool),
        },
    }
}

fn floor_int(f: f64) -> Value {
    let floor = f.floor();
    if floor.is_finite() && floor.abs() < 9.0e18 {
        #[allow(clippy::cast_possible_truncation, reason = "whole and in range")]
        return Value::Int(floor as i64);
    }
    Value::Undefined
}

/// Calls `name` (checked at creation) on evaluated arguments.
pub fn call(name: &str, args: Vec<Value>, context: &Context<'_>) -> Value {
    if let Some(value) = context_function(name, &args, context) {
        return value;
    }
    let mut args = args.into_iter();
    let (a, b, c) = (args.next(), args.next(), args.next());
    let a = a.unwrap_or(Value::Undefined);
    let b = b.unwrap_or(Value::Undefined);
    match name {
        "encode" => encode_text(&a, &b),
        "decode" => decode(&a, &b, context.version == SqlVersion::V2016_03_23),
        "get" => get(a, &b, context.version == SqlVersion::V2016_03_23),
        "isnull" => Value::Bool(matches!(a, Value::Null)),
        "isundefined" => Value::Bool(a.is_undefined()),
        "abs" => match a {
            Value::Int(i) => i.checked_abs().map_or(Value::Undefined, Value::Int),
            other => other.as_number().map_or(Value::Undefined, |f| Value::Decimal(f.abs())),
        },
        "concat" => concat(std::iter::once(a).chain(Some(b)).chain(c).chain(args)),
        _ => string_function(name, &a, &b, c.as_ref()),
    }
}

/// The functions that read the message's context rather than their arguments.
fn context_function(name: &str, args: &[Value], context: &Context<'_>) -> Option<Value> {
    Some(match name {
        "topic" => match args.first() {
            None => Value::String(context.topic.to_owned()),
            Some(n) => topic_level(context.topic, n),
        },
        "clientid" => Value::String(context.client_id.unwrap_or("n/a").to_owned()),
        "principal" => context
            .principal
            .map_or(Value::Undefined, |p| Value::String(p.to_owned())),
        "timestamp" => Value::Int(i64::try_from(context.timestamp_ms).unwrap_or(i64::MAX)),
        "newuuid" => Value::String(serverless_websockets_core::random::uuid()),
        "accountid" => Value::String(context.account_id.to_owned()),
        "sql_version" => Value::String(context.version.as_str().to_owned()),
        "traceid" => context
            .trace_id
            .map_or(Value::Undefined, |t| Value::String(t.to_owned())),
        _ => return None,
    })
}

/// `topic(n)`: the n-th level, from 1.
fn topic_level(topic: &str, n: &Value) -> Value {
    let Some(n) = n.as_number() else {
        return Value::Undefined;
    };
    if n < 1.0 || n.fract() != 0.0 {
        return Value::Undefined;
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "whole and at least 1"
    )]
    let index = n as usize - 1;
    topic
        .split('/')
        .nth(index)
        .map_or(Value::Undefined, |level| Value::String(level.to_owned()))
}

/// `encode(value, 'base64')` of a value's text (the whole payload is handled by
/// the evaluator, which has its bytes).
fn encode_text(value: &Value, scheme: &Value) -> Value {
    match (value.to_text(), scheme) {
        (Some(text), Value::String(s)) if s == "base64" => Value::String(STANDARD.encode(text)),
        _ => Value::Undefined,
    }
}

/// `encode(*, 'base64')`: the payload's bytes.
pub fn encode_bytes(bytes: &[u8], scheme: &Value) -> Value {
    match scheme {
        Value::String(s) if s == "base64" => Value::String(STANDARD.encode(bytes)),
        _ => Value::Undefined,
    }
}

/// `decode(value, 'base64')`: an object when the bytes are JSON, else a string;
/// NULL when they cannot be decoded.
fn decode(value: &Value, scheme: &Value, whole_decimals_are_ints: bool) -> Value {
    let (Value::String(text), Value::String(s)) = (value, scheme) else {
        return Value::Undefined;
    };
    if s != "base64" {
        return Value::Undefined;
    }
    let Ok(bytes) = STANDARD.decode(text) else {
        return Value::Null;
    };
    match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(json) => Value::from_json(&json, whole_decimals_are_ints),
        Err(_) => String::from_utf8(bytes).map_or(Value::Null, Value::String),
    }
}

/// `get(array, i)` (from 0), `get(string, i)` (one character), `get(object, 'k')`.
fn get(container: Value, key: &Value, whole_decimals_are_ints: bool) -> Value {
    let index = |key: &Value| match key {
        Value::Int(i) => usize::try_from(*i).ok(),
        _ => None,
    };
    match (container, key) {
        (Value::Array(items), key) => index(key)
            .and_then(|i| items.into_iter().nth(i))
            .unwrap_or(Value::Undefined),
        (Value::String(s), key) => index(key)
            .and_then(|i| s.chars().nth(i))
            .map_or(Value::Undefined, |c| Value::String(c.to_string())),
        (Value::Object(map), Value::String(k)) => map
            .get(k)
            .map_or(Value::Undefined, |v| Value::from_json(v, whole_decimals_are_ints)),
        _ => Value::Undefined,
    }
}

/// `concat(a, b, …)`: arrays join, anything else joins as text.
fn concat(values: impl Iterator<Item = Value>) -> Value {
    let values: Vec<Value> = values.collect();
    if values.iter().all(|v| matches!(v, Value::Array(_))) {
        let items = values
            .into_iter()
            .flat_map(|v| match v {
                Value::Array(items) => items,
                _ => Vec::new(),
            })
            .collect();
        return Value::Array(items);
    }
    let mut out = String::new();
    for value in &values {
        match value.to_text() {
            Some(text) => out.push_str(&text),
            None => return Value::Undefined,
        }
    }
    Value::String(out)
}

/// The functions of one string (and its numeric arguments).
fn string_function(name: &str, a: &Value, b: &Value, c: Option<&Value>) -> Value {
    let Value::String(s) = a else {
        return match (name, a) {
            ("chr", Value::Int(code)) => u32::try_from(*code)
                .ok()
                .and_then(char::from_u32)
                .map_or(Value::Undefined, |ch| Value::String(ch.to_string())),
            _ => Value::Undefined,
        };
    };
    let text = |v: &Value| match v {
        Value::String(t) => Some(t.clone()),
        _ => None,
    };
    let count = |v: &Value| match v {
        Value::Int(i) => usize::try_from(*i).ok(),
        _ => None,
    };
    let string = |t: String| Value::String(t);
    match name {
        "upper" => string(s.to_uppercase()),
        "lower" => string(s.to_lowercase()),
        "trim" => string(s.trim().to_owned()),
        "ltrim" => string(s.trim_start().to_owned()),
        "rtrim" => string(s.trim_end().to_owned()),
        "length" => Value::Int(i64::try_from(s.chars().count()).unwrap_or(i64::MAX)),
        "numbytes" => Value::Int(i64::try_from(s.len()).unwrap_or(i64::MAX)),
        "startswith" => text(b).map_or(Value::Undefined, |p| Value::Bool(s.starts_with(&p))),
        "endswith" => text(b).map_or(Value::Undefined, |p| Value::Bool(s.ends_with(&p))),
        "indexof" => text(b).map_or(Value::Undefined, |p| {
            Value::Int(
                s.find(&p)
                    .map_or(-1, |at| i64::try_from(s[..at].chars().count()).unwrap_or(-1)),
            )
        }),
        "replace" => match (text(b), c.and_then(text)) {
            (Some(from), Some(to)) if !from.is_empty() => string(s.replace(&from, &to)),
            _ => Value::Undefined,
        },
        "substring" => substring(s, count(b), c.map(count)),
        "lpad" => count(b).map_or(Value::Undefined, |n| string(format!("{}{s}", " ".repeat(n)))),
        "rpad" => count(b).map_or(Value::Undefined, |n| string(format!("{s}{}", " ".repeat(n)))),
        "sha224" => string(hex::encode(sha2::Sha224::digest(s))),
        "sha256" => string(hex::encode(sha2::Sha256::digest(s))),
        "sha384" => string(hex::encode(sha2::Sha384::digest(s))),
        "sha512" => string(hex::encode(sha2::Sha512::digest(s))),
        _ => Value::Undefined,
    }
}

/// `substring(s, start[, end])`: characters from `start` (from 0) to `end`
/// (exclusive), clamped to the string.
fn substring(s: &str, start: Option<usize>, end: Option<Option<usize>>) -> Value {
    let Some(start) = start else { return Value::Undefined };
    let len = s.chars().count();
    let end = match end {
        None => len,
        Some(Some(end)) => end.min(len),
        Some(None) => return Value::Undefined,
    };
    if start >= end {
        return Value::String(String::new());
    }
    Value::String(s.chars().skip(start).take(end - start).collect())
}
