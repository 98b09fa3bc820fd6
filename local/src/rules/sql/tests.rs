//! The rule SQL against AWS's documented examples, and its operators against a
//! reference written from the operator tables of the IoT SQL reference
//! (<https://docs.aws.amazon.com/iot/latest/developerguide/iot-sql-operators.html>).

use proptest::prelude::*;
use serde_json::{Value as Json, json};

use super::*;

fn context<'a>(version: SqlVersion, topic: &'a str, payload: &'a [u8], json: Option<&'a Json>) -> Context<'a> {
    Context {
        version,
        topic,
        client_id: Some("client-1"),
        principal: Some("AROAEXAMPLE:client-1"),
        timestamp_ms: 1_700_000_000_000,
        account_id: "000000000000",
        trace_id: None,
        payload,
        json,
    }
}

/// The output of `sql` (2016-03-23) for a JSON payload on `topic`.
fn run(sql: &str, topic: &str, payload: Json) -> Option<Json> {
    run_as(SqlVersion::V2016_03_23, sql, topic, payload)
}

fn run_as(version: SqlVersion, sql: &str, topic: &str, payload: Json) -> Option<Json> {
    let statement = Sql::parse(sql, version).unwrap();
    let bytes = payload.to_string().into_bytes();
    let json = payload_json(&bytes);
    match statement.evaluate(&context(version, topic, &bytes, json.as_ref()))? {
        Output::Json(json) => Some(json),
        Output::Bytes(bytes) => panic!("bytes: {bytes:?}"),
    }
}

#[test]
fn select_star_fields_nested_fields_and_aliases_build_the_output_object() {
    let payload = json!({"color": "red", "temperature": 50, "a": {"b": {"c": 1}}});
    assert_eq!(run("SELECT * FROM 't'", "t", payload.clone()), Some(payload.clone()));
    assert_eq!(
        run("SELECT color, a.b.c AS depth FROM 't'", "t", payload.clone()),
        Some(json!({"color": "red", "depth": 1}))
    );
    assert_eq!(
        run("SELECT *, 15 AS speed FROM 't'", "t", payload.clone()),
        Some(json!({"color": "red", "temperature": 50, "a": {"b": {"c": 1}}, "speed": 15}))
    );
}

#[test]
fn a_missing_key_is_undefined_and_vanishes_while_json_null_stays() {
    let payload = json!({"present": null});
    assert_eq!(
        run("SELECT present, absent, absent.deeper AS d FROM 't'", "t", payload),
        Some(json!({"present": null}))
    );
}

#[test]
fn actions_run_only_when_where_is_true() {
    let hot = json!({"temperature": 60});
    let cold = json!({"temperature": 20});
    let sql = "SELECT temperature FROM 'sensors/+' WHERE temperature > 50";
    assert!(run(sql, "sensors/a", hot).is_some());
    assert!(run(sql, "sensors/a", cold).is_none());
    // Undefined is not true either.
    assert!(run(sql, "sensors/a", json!({})).is_none());
}

#[test]
fn topic_clientid_principal_timestamp_and_accountid_come_from_the_context() {
    let got = run(
        "SELECT topic() AS t, topic(2) AS sender, topic(9) AS nothing, clientid() AS c, principal() AS p, timestamp() AS ts, accountid() AS acct FROM 'from/#'",
        "from/alice/abc",
        json!({}),
    )
    .unwrap();
    assert_eq!(
        got,
        json!({"t": "from/alice/abc", "sender": "alice", "c": "client-1", "p": "AROAEXAMPLE:client-1", "ts": 1_700_000_000_000_i64, "acct": "000000000000"})
    );
}

#[test]
fn a_whole_decimal_is_an_int_under_2016_03_23_only() {
    let sql = "SELECT 10.0 AS n, 10.5 AS d FROM 't'";
    assert_eq!(run(sql, "t", json!({})), Some(json!({"n": 10, "d": 10.5})));
    assert_eq!(
        run_as(SqlVersion::V2015_10_08, sql, "t", json!({})),
        Some(json!({"n": 10.0, "d": 10.5}))
    );
}

#[test]
fn select_value_and_json_literals_need_2016_03_23() {
    assert_eq!(
        run("SELECT VALUE color FROM 't'", "t", json!({"color": "red"})),
        Some(json!("red"))
    );
    assert_eq!(
        run("SELECT {'a': 1, 'b': [1, 2]} AS o FROM 't'", "t", json!({})),
        Some(json!({"o": {"a": 1, "b": [1, 2]}}))
    );
    for old in ["SELECT VALUE color FROM 't'", "SELECT [1] AS a FROM 't'"] {
        assert!(Sql::parse(old, SqlVersion::V2015_10_08).is_err(), "{old}");
    }
}

#[test]
fn case_picks_the_first_match_and_is_undefined_without_else() {
    let sql = "SELECT CASE color WHEN 'red' THEN 'stop' WHEN 'green' THEN 'go' ELSE 'wait' END AS a, CASE color WHEN 'blue' THEN 1 END AS b FROM 't'";
    assert_eq!(run(sql, "t", json!({"color": "red"})), Some(json!({"a": "stop"})));
    assert_eq!(run(sql, "t", json!({"color": "pink"})), Some(json!({"a": "wait"})));
}

#[test]
fn functions_follow_the_reference_examples() {
    let got = run(
        "SELECT upper(s) AS u, lower(s) AS l, trim('  x ') AS t, substring(s, 1, 3) AS sub, replace(s, 'b', 'B') AS r, startswith(s, 'ab') AS sw, indexof(s, 'c') AS i, length(s) AS len, concat(s, '!') AS c, get(arr, 1) AS g, get(obj, 'k') AS k, encode(s, 'base64') AS e, decode('eyJhIjoxfQ==', 'base64') AS dj, cast('12.7' AS Int) AS ci, cast(true AS Int) AS cb, cast(1 AS Boolean) AS bb, isUndefined(nope) AS iu, isNull(n) AS inull FROM 't'",
        "t",
        json!({"s": "abcd", "arr": [10, 20], "obj": {"k": "v"}, "n": null}),
    )
    .unwrap();
    assert_eq!(
        got,
        json!({"u": "ABCD", "l": "abcd", "t": "x", "sub": "bc", "r": "aBcd", "sw": true, "i": 2, "len": 4, "c": "abcd!", "g": 20, "k": "v", "e": "YWJjZA==", "dj": {"a": 1}, "ci": 12, "cb": 1, "bb": true, "iu": true, "inull": true})
    );
}

#[test]
fn a_payload_that_is_not_json_passes_through_select_star_and_encodes_to_base64() {
    let statement = Sql::parse("SELECT * FROM 't'", SqlVersion::V2016_03_23).unwrap();
    let bytes = [0xff_u8, 0x00, 0x80];
    let out = statement.evaluate(&context(SqlVersion::V2016_03_23, "t", &bytes, None));
    assert_eq!(out, Some(Output::Bytes(bytes.to_vec())));
    let encoded = Sql::parse("SELECT encode(*, 'base64') AS data FROM 't'", SqlVersion::V2016_03_23).unwrap();
    let out = encoded.evaluate(&context(SqlVersion::V2016_03_23, "t", &bytes, None));
    assert_eq!(out, Some(Output::Json(json!({"data": "/wCA"}))));
    // A bare number is not a JSON document here: its fields are Undefined.
    assert_eq!(payload_json(b"80"), None);
}

#[test]
fn set_variables_are_usable_in_select_and_where() {
    let sql = "SET @limit = 50 SELECT @limit AS limit, temperature FROM 't' WHERE temperature > @limit";
    assert_eq!(
        run(sql, "t", json!({"temperature": 60})),
        Some(json!({"limit": 50, "temperature": 60}))
    );
    assert!(run(sql, "t", json!({"temperature": 40})).is_none());
}

#[test]
fn what_does_not_parse_or_is_not_emulated_is_refused_at_creation() {
    for bad in [
        "SELECT",
        "SELECT * FROM t",
        "SELECT * FROM 'a/#/b'",
        "SELECT * FROM 't' WHERE",
        "SELECT regexp_matches(a, 'x') AS m FROM 't'",
        "SELECT aws_lambda('arn', *) AS x FROM 't'",
        "SELECT a FROM 't' WHERE a IN (1, 2)",
        "SELECT upper() AS u FROM 't'",
        "SELECT cast(a AS Blob) AS b FROM 't'",
        "SELECT * FROM 't' extra",
        "SELECT 'unterminated FROM 't'",
    ] {
        assert!(Sql::parse(bad, SqlVersion::V2016_03_23).is_err(), "{bad}");
    }
}

/// A value in a payload field: one of each JSON type, or absent (Undefined).
fn field() -> impl Strategy<Value = Option<Json>> {
    prop_oneof![
        Just(None),
        Just(Some(Json::Null)),
        any::<bool>().prop_map(|b| Some(json!(b))),
        (-1000i64..1000).prop_map(|i| Some(json!(i))),
        (-1000i32..1000).prop_map(|i| Some(json!(f64::from(i) + 0.5))),
        prop_oneof![Just("true"), Just("FALSE"), Just("12"), Just("-3.5"), Just("abc")].prop_map(|s| Some(json!(s))),
    ]
}

/// The operator tables, written out case by case: what `x op y` must give.
fn reference(op: &str, x: &Option<Json>, y: &Option<Json>) -> Option<Json> {
    let (x, y) = (x.as_ref()?, y.as_ref()?);
    let number = |v: &Json| match v {
        Json::Number(n) => n.as_f64(),
        Json::String(s) if super::value::is_numeric(s) => s.parse().ok(),
        _ => None,
    };
    let boolean = |v: &Json| match v {
        Json::Bool(b) => Some(*b),
        Json::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Json::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    };
    let same = match (x, y) {
        (Json::Number(a), Json::Number(b)) => a.as_f64() == b.as_f64(),
        (a, b) => a == b,
    };
    match op {
        // Both sides must be Booleans: no short-circuit past a non-Boolean.
        "AND" => {
            let (a, b) = (boolean(x)?, boolean(y)?);
            Some(json!(a && b))
        }
        "OR" => {
            let (a, b) = (boolean(x)?, boolean(y)?);
            Some(json!(a || b))
        }
        "=" => Some(json!(same)),
        "<>" => Some(json!(!same)),
        "<" => Some(json!(number(x)? < number(y)?)),
        ">=" => Some(json!(number(x)? >= number(y)?)),
        _ => None,
    }
}

proptest! {
    #[test]
    fn logical_and_comparison_operators_follow_the_documented_tables(
        x in field(),
        y in field(),
        op in prop_oneof![Just("AND"), Just("OR"), Just("="), Just("<>"), Just("<"), Just(">=")],
    ) {
        let mut payload = serde_json::Map::new();
        if let Some(x) = &x { payload.insert("x".into(), x.clone()); }
        if let Some(y) = &y { payload.insert("y".into(), y.clone()); }
        let got = run(&format!("SELECT VALUE x {op} y FROM 't'"), "t", Json::Object(payload));
        prop_assert_eq!(got, reference(op, &x, &y));
    }

    #[test]
    fn int_arithmetic_stays_int_and_matches_i64(a in -1_000_000i64..1_000_000, b in -1_000_000i64..1_000_000) {
        let got = run("SELECT a + b AS s, a - b AS d, a * b AS p FROM 't'", "t", json!({"a": a, "b": b}));
        prop_assert_eq!(got, Some(json!({"s": a + b, "d": a - b, "p": a * b})));
    }

    #[test]
    fn any_text_either_parses_or_is_refused_without_panicking(sql in ".{0,80}") {
        let _ = Sql::parse(&sql, SqlVersion::V2016_03_23);
    }
}
