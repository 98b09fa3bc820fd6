//! What an expression means for one message
//! (<https://docs.aws.amazon.com/iot/latest/developerguide/iot-sql-operators.html>):
//! AND, OR and NOT on Booleans (or "true"/"false"), Undefined otherwise; `=` between
//! different types is false and `<>` true, with an Undefined side Undefined; the
//! ordering operators compare as numbers; `+` joins text when a side is a String;
//! Int with Int stays Int (overflow becomes Decimal), anything else is Decimal.
//!
//! Not here: parsing ([`super::parser`]), the functions ([`super::functions`]).

use serde_json::Value as Json;

use super::functions;
use super::parser::{Expr, Literal};
use super::value::Value;
use super::{Context, SqlVersion};

/// Evaluates expressions for one message: its context and the SET variables.
pub struct Evaluator<'a> {
    pub context: &'a Context<'a>,
    pub vars: Vec<(&'a str, Value)>,
}

impl Evaluator<'_> {
    fn whole_ints(&self) -> bool {
        self.context.version == SqlVersion::V2016_03_23
    }

    pub fn eval(&self, expr: &Expr) -> Value {
        match expr {
            Expr::Literal(literal) => self.literal(literal),
            Expr::Key(None, key) => self.payload_key(key),
            Expr::Key(Some(base), key) => match self.eval(base) {
                Value::Object(map) => map
                    .get(key)
                    .map_or(Value::Undefined, |v| Value::from_json(v, self.whole_ints())),
                _ => Value::Undefined,
            },
            Expr::Var(name) => self
                .vars
                .iter()
                .find(|(n, _)| n == name)
                .map_or(Value::Undefined, |(_, v)| v.clone()),
            Expr::Call(name, args) => self.call(name, args),
            Expr::Cast(value, to) => functions::cast(self.eval(value), to, self.whole_ints()),
            Expr::Unary(op, operand) => unary(op, self.eval(operand), self.whole_ints()),
            Expr::Binary(op, left, right) => binary(op, self.eval(left), self.eval(right), self.whole_ints()),
            Expr::Case {
                operand,
                whens,
                otherwise,
            } => self.case(operand, whens, otherwise.as_deref()),
            Expr::Object(fields) => {
                let map = fields
                    .iter()
                    .filter_map(|(k, e)| self.eval(e).into_json().map(|v| (k.clone(), v)))
                    .collect();
                Value::Object(map)
            }
            Expr::Array(items) => Value::Array(items.iter().map(|e| self.eval(e)).collect()),
        }
    }

    fn literal(&self, literal: &Literal) -> Value {
        match literal {
            Literal::Null => Value::Null,
            Literal::Bool(b) => Value::Bool(*b),
            Literal::Int(i) => Value::Int(*i),
            Literal::Decimal(f) => Value::decimal(*f, self.whole_ints()),
            Literal::Str(s) => Value::String(s.clone()),
        }
    }

    /// A top-level key of a JSON payload; Undefined for any other payload.
    fn payload_key(&self, key: &str) -> Value {
        match self.context.json {
            Some(Json::Object(map)) => map
                .get(key)
                .map_or(Value::Undefined, |v| Value::from_json(v, self.whole_ints())),
            _ => Value::Undefined,
        }
    }

    /// The whole payload as a value: its JSON, or its text.
    pub fn payload(&self) -> Value {
        match self.context.json {
            Some(json) => Value::from_json(json, self.whole_ints()),
            None => std::str::from_utf8(self.context.payload)
                .map_or(Value::Undefined, |text| Value::String(text.to_owned())),
        }
    }

    fn call(&self, name: &str, args: &[Expr]) -> Value {
        if name == "*" {
            return self.payload();
        }
        if name == "encode"
            && let [Expr::Call(star, _), scheme] = args
            && star == "*"
        {
            return functions::encode_bytes(self.context.payload, &self.eval(scheme));
        }
        let values = args.iter().map(|a| self.eval(a)).collect();
        functions::call(name, values, self.context)
    }

    fn case(&self, operand: &Expr, whens: &[(Expr, Expr)], otherwise: Option<&Expr>) -> Value {
        let value = self.eval(operand);
        if value.is_undefined() {
            return Value::Undefined;
        }
        for (test, result) in whens {
            if equal(&value, &self.eval(test)) == Some(true) {
                return self.eval(result);
            }
        }
        otherwise.map_or(Value::Undefined, |e| self.eval(e))
    }
}

fn unary(op: &str, value: Value, whole_ints: bool) -> Value {
    match (op, value) {
        ("NOT", v) => v.as_bool().map_or(Value::Undefined, |b| Value::Bool(!b)),
        ("-", Value::Int(i)) => i.checked_neg().map_or(Value::Undefined, Value::Int),
        ("-", v) => v
            .as_number()
            .map_or(Value::Undefined, |f| Value::decimal(-f, whole_ints)),
        _ => Value::Undefined,
    }
}

fn binary(op: &str, left: Value, right: Value, whole_ints: bool) -> Value {
    match op {
        "AND" | "OR" => match (left.as_bool(), right.as_bool()) {
            (Some(a), Some(b)) => Value::Bool(if op == "AND" { a && b } else { a || b }),
            _ => Value::Undefined,
        },
        "=" => equal(&left, &right).map_or(Value::Undefined, Value::Bool),
        "<>" => equal(&left, &right).map_or(Value::Undefined, |e| Value::Bool(!e)),
        "<" | "<=" | ">" | ">=" => match (left.as_number(), right.as_number()) {
            (Some(a), Some(b)) => Value::Bool(match op {
                "<" => a < b,
                "<=" => a <= b,
                ">" => a > b,
                _ => a >= b,
            }),
            _ => Value::Undefined,
        },
        "+" if matches!(left, Value::String(_)) || matches!(right, Value::String(_)) => {
            match (left.to_text(), right.to_text()) {
                (Some(a), Some(b)) => Value::String(a + &b),
                _ => Value::Undefined,
            }
        }
        _ => arithmetic(op, &left, &right, whole_ints),
    }
}

/// `+ - * / %`: Int with Int stays Int, anything else is Decimal; numeric strings
/// count as numbers; division by zero is Undefined.
fn arithmetic(op: &str, left: &Value, right: &Value, whole_ints: bool) -> Value {
    if let (Value::Int(a), Value::Int(b)) = (left, right) {
        let exact = match op {
            "+" => a.checked_add(*b),
            "-" => a.checked_sub(*b),
            "*" => a.checked_mul(*b),
            "/" => a.checked_div(*b),
            _ => a.checked_rem(*b),
        };
        if let Some(result) = exact {
            return Value::Int(result);
        }
        if *b == 0 {
            return Value::Undefined;
        }
    }
    let (Some(a), Some(b)) = (left.as_number(), right.as_number()) else {
        return Value::Undefined;
    };
    let result = match op {
        "+" => a + b,
        "-" => a - b,
        "*" => a * b,
        "/" if b != 0.0 => a / b,
        "%" if b != 0.0 => a % b,
        _ => return Value::Undefined,
    };
    if result.is_finite() {
        Value::decimal(result, whole_ints)
    } else {
        Value::Undefined
    }
}

/// `=`: `None` when a side is Undefined; numbers compare by value; other types
/// only with their own type (objects ignore key order, arrays compare in order).
pub fn equal(left: &Value, right: &Value) -> Option<bool> {
    if left.is_undefined() || right.is_undefined() {
        return None;
    }
    Some(match (left, right) {
        (Value::Int(_) | Value::Decimal(_), Value::Int(_) | Value::Decimal(_)) => left.as_number() == right.as_number(),
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| equal(x, y) == Some(true))
        }
        (a, b) => a == b,
    })
}
