//! The rules engine's values: JSON's, plus **Undefined** — what a missing key, a
//! bad function argument or an operator on the wrong types gives, apart from
//! JSON's `null` (<https://docs.aws.amazon.com/iot/latest/developerguide/iot-sql-data-types.html>).
//! An Undefined key is dropped from a SELECT's output; a WHERE that is not true
//! runs no action.
//!
//! Numbers are Int (i64) or Decimal. AWS keeps 34 decimal digits; this emulator
//! keeps an `f64` (about 15–17), which is a documented difference. Under SQL
//! version 2016-03-23 a whole Decimal such as `10.0` is an Int.
//!
//! Not here: the operators and functions ([`super::eval`], [`super::functions`]).

use serde_json::{Map, Number, Value as Json};

/// A value during evaluation.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Undefined,
    Null,
    Bool(bool),
    Int(i64),
    Decimal(f64),
    String(String),
    Array(Vec<Value>),
    Object(Map<String, Json>),
}

impl Value {
    /// A JSON value as the engine sees it; `whole_decimals_are_ints` under 2016-03-23.
    pub fn from_json(json: &Json, whole_decimals_are_ints: bool) -> Self {
        match json {
            Json::Null => Self::Null,
            Json::Bool(b) => Self::Bool(*b),
            Json::Number(n) => Self::from_number(n, whole_decimals_are_ints),
            Json::String(s) => Self::String(s.clone()),
            Json::Array(items) => Self::Array(
                items
                    .iter()
                    .map(|v| Self::from_json(v, whole_decimals_are_ints))
                    .collect(),
            ),
            Json::Object(map) => Self::Object(map.clone()),
        }
    }

    fn from_number(n: &Number, whole_decimals_are_ints: bool) -> Self {
        if let Some(i) = n.as_i64() {
            return Self::Int(i);
        }
        let f = n.as_f64().unwrap_or(f64::NAN);
        Self::decimal(f, whole_decimals_are_ints)
    }

    /// A Decimal, or an Int when it is whole, fits and `whole_decimals_are_ints`.
    pub fn decimal(f: f64, whole_decimals_are_ints: bool) -> Self {
        if whole_decimals_are_ints && f.fract() == 0.0 && f.abs() < 9.0e15 {
            // In range and whole: the cast is exact.
            #[allow(clippy::cast_possible_truncation, reason = "whole and below 2^53")]
            return Self::Int(f as i64);
        }
        Self::Decimal(f)
    }

    /// The JSON form for the output; `None` for Undefined (the key is dropped).
    pub fn into_json(self) -> Option<Json> {
        Some(match self {
            Self::Undefined => return None,
            Self::Null => Json::Null,
            Self::Bool(b) => Json::Bool(b),
            Self::Int(i) => Json::Number(i.into()),
            Self::Decimal(f) => Number::from_f64(f).map_or(Json::Null, Json::Number),
            Self::String(s) => Json::String(s),
            Self::Array(items) => Json::Array(items.into_iter().filter_map(Self::into_json).collect()),
            Self::Object(map) => Json::Object(map),
        })
    }

    pub fn is_undefined(&self) -> bool {
        matches!(self, Self::Undefined)
    }

    /// The value as a number, with IoT's implicit conversion of numeric strings
    /// (`^-?\d+(\.\d+)?([eE]-?\d+)?$`); Booleans never become numbers.
    pub fn as_number(&self) -> Option<f64> {
        match self {
            #[allow(clippy::cast_precision_loss, reason = "Decimal arithmetic, as IoT's")]
            Self::Int(i) => Some(*i as f64),
            Self::Decimal(f) => Some(*f),
            Self::String(s) if is_numeric(s) => s.parse().ok(),
            _ => None,
        }
    }

    /// The value as a Boolean: Booleans, and "true"/"false" in any case.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Self::Bool(b) => Some(*b),
            Self::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
            Self::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
            _ => None,
        }
    }

    /// The text of a value where a string is wanted: strings as they are,
    /// numbers and Booleans as their literals, anything else as JSON.
    pub fn to_text(&self) -> Option<String> {
        match self {
            Self::Undefined => None,
            Self::String(s) => Some(s.clone()),
            other => other.clone().into_json().map(|j| j.to_string()),
        }
    }
}

/// IoT's numeric-string pattern.
pub fn is_numeric(text: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let text = text.strip_prefix('-').unwrap_or(text);
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(at) => (&text[..at], Some(&text[at + 1..])),
        None => (text, None),
    };
    let mantissa_ok = match mantissa.split_once('.') {
        Some((whole, fraction)) => digits(whole) && digits(fraction),
        None => digits(mantissa),
    };
    mantissa_ok && exponent.is_none_or(|e| digits(e.strip_prefix('-').unwrap_or(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_strings_are_those_iot_converts() {
        for yes in ["1", "-1", "1.5", "10e3", "1.5E-2", "-0.0"] {
            assert!(is_numeric(yes), "{yes}");
        }
        for no in ["", "-", "1.", ".5", "1e", "+1", "0x10", "1 ", "NaN", "1e+2"] {
            assert!(!is_numeric(no), "{no}");
        }
    }

    #[test]
    fn a_whole_decimal_is_an_int_only_under_2016_03_23() {
        assert_eq!(Value::from_json(&serde_json::json!(10.0), true), Value::Int(10));
        assert_eq!(Value::from_json(&serde_json::json!(10.0), false), Value::Decimal(10.0));
        assert_eq!(Value::from_json(&serde_json::json!(10.5), true), Value::Decimal(10.5));
    }

    #[test]
    fn undefined_vanishes_from_arrays_and_is_no_json_at_all() {
        assert_eq!(Value::Undefined.into_json(), None);
        let array = Value::Array(vec![Value::Int(1), Value::Undefined, Value::Null]);
        assert_eq!(array.into_json(), Some(serde_json::json!([1, null])));
    }
}
