//! AWS IoT's rule SQL, parsed once when a rule is created and evaluated for each
//! message that matches its FROM filter
//! (<https://docs.aws.amazon.com/iot/latest/developerguide/iot-sql-reference.html>).
//!
//! * [`lexer`] and [`parser`] — the statement, refused as `SqlParseException` when
//!   it does not parse or uses what the emulator does not have.
//! * [`value`] — JSON's values plus Undefined.
//! * [`eval`] — operators, keys, CASE; [`functions`] — the SQL functions.
//!
//! Both versions are read: `2015-10-08` (what the API defaults to) and
//! `2016-03-23` (`SELECT VALUE`, JSON literals, whole decimals as Int); `beta` is
//! read as 2016-03-23. Not emulated: nested SELECTs, `IN`, the regular-expression,
//! MD5/SHA-1 and external functions, and AWS's 34-digit decimals (an `f64` here).

pub mod eval;
pub mod functions;
pub mod lexer;
pub mod parser;
pub mod template;
pub mod value;

use serde_json::Value as Json;

use eval::Evaluator;
use parser::{Item, Select, Statement};

/// Why a statement was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SqlError(String);

impl SqlError {
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

/// `awsIotSqlVersion`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlVersion {
    V2015_10_08,
    V2016_03_23,
}

impl SqlVersion {
    /// The version a rule names; absent means 2015-10-08, as in the API.
    pub fn parse(version: Option<&str>) -> Result<Self, SqlError> {
        match version {
            None | Some("2015-10-08") => Ok(Self::V2015_10_08),
            Some("2016-03-23" | "beta") => Ok(Self::V2016_03_23),
            Some(other) => Err(SqlError::new(format!(
                "awsIotSqlVersion {other:?} is not one of 2015-10-08, 2016-03-23, beta"
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::V2015_10_08 => "2015-10-08",
            Self::V2016_03_23 => "2016-03-23",
        }
    }
}

/// What the functions know about the message besides its payload.
pub struct Context<'a> {
    pub version: SqlVersion,
    /// The topic, without a Basic Ingest `$aws/rules/<name>/` prefix.
    pub topic: &'a str,
    /// The publisher's client ID; `None` off MQTT (`clientid()` is then "n/a").
    pub client_id: Option<&'a str>,
    /// `principal()`: the IAM user ID of the publisher (`AROA…:<session>` for STS).
    pub principal: Option<&'a str>,
    pub timestamp_ms: u64,
    pub account_id: &'a str,
    pub trace_id: Option<&'a str>,
    pub payload: &'a [u8],
    /// The payload, when it is a JSON object or array (a bare `80` is not JSON here).
    pub json: Option<&'a Json>,
}

/// The payload as JSON, if it is a JSON object or array.
pub fn payload_json(payload: &[u8]) -> Option<Json> {
    match serde_json::from_slice::<Json>(payload) {
        Ok(json @ (Json::Object(_) | Json::Array(_))) => Some(json),
        _ => None,
    }
}

/// What a rule sends to its actions for one message.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    Json(Json),
    /// `SELECT *` of a payload that is not JSON: its bytes, unchanged.
    Bytes(Vec<u8>),
}

impl Output {
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            Self::Json(json) => json.to_string().into_bytes(),
            Self::Bytes(bytes) => bytes.clone(),
        }
    }
}

/// A parsed statement.
#[derive(Debug, Clone)]
pub struct Sql {
    statement: Statement,
    version: SqlVersion,
}

impl Sql {
    pub fn parse(sql: &str, version: SqlVersion) -> Result<Self, SqlError> {
        let statement = parser::parse(lexer::tokens(sql)?, version)?;
        if let Some(from) = &statement.from {
            check_from(from)?;
        }
        Ok(Self { statement, version })
    }

    pub fn version(&self) -> SqlVersion {
        self.version
    }

    /// The FROM topic filter, if any.
    pub fn from(&self) -> Option<&str> {
        self.statement.from.as_deref()
    }

    /// The rule's output for a message, or `None` when WHERE is not true (then
    /// no action runs) or `SELECT VALUE` is Undefined.
    pub fn evaluate(&self, context: &Context<'_>) -> Option<Output> {
        let mut evaluator = Evaluator {
            context,
            vars: Vec::with_capacity(self.statement.set.len()),
        };
        for (name, expr) in &self.statement.set {
            let value = evaluator.eval(expr);
            evaluator.vars.push((name.as_str(), value));
        }
        if let Some(condition) = &self.statement.condition
            && evaluator.eval(condition).as_bool() != Some(true)
        {
            return None;
        }
        match &self.statement.select {
            Select::Value(expr) => evaluator.eval(expr).into_json().map(Output::Json),
            Select::Items(items) => Some(select_items(&evaluator, items)),
        }
    }
}

/// `SELECT a, b.c AS x, *`: an object of the named values (Undefined ones dropped);
/// a lone `*` of a payload that is not a JSON object is the payload itself.
fn select_items(evaluator: &Evaluator<'_>, items: &[Item]) -> Output {
    if let [Item::Star] = items {
        return match evaluator.context.json {
            Some(json) => Output::Json(json.clone()),
            None => Output::Bytes(evaluator.context.payload.to_vec()),
        };
    }
    let mut object = serde_json::Map::new();
    for (position, item) in items.iter().enumerate() {
        match item {
            Item::Star => {
                if let Some(Json::Object(map)) = evaluator.context.json {
                    object.extend(map.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
            }
            Item::Expr { expr, name } => {
                if let Some(value) = evaluator.eval(expr).into_json() {
                    object.insert(name.clone().unwrap_or_else(|| default_name(expr, position)), value);
                }
            }
        }
    }
    Output::Json(Json::Object(object))
}

/// The key of an unnamed SELECT item: a key's last name, a function's name, else
/// `_<position>` (AWS does not document it; the docs say so).
fn default_name(expr: &parser::Expr, position: usize) -> String {
    match expr {
        parser::Expr::Key(_, key) => key.clone(),
        parser::Expr::Call(name, _) => name.clone(),
        parser::Expr::Var(name) => name.trim_start_matches('@').to_owned(),
        _ => format!("_{position}"),
    }
}

/// FROM takes a topic filter (`+` and `#` as in MQTT).
fn check_from(from: &str) -> Result<(), SqlError> {
    serverless_websockets_core::topic::check_filter(from)
        .map_err(|e| SqlError::new(format!("FROM '{from}' is not a topic filter: {e}")))
}

#[cfg(test)]
mod tests;
