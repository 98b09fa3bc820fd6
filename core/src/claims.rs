//! A token's claims as grant-template values: `{claims.rooms}` in a template
//! (`rooms/{claims.rooms}/+`) is one grant per value of the token's `rooms`
//! claim — a string is one value, an array of strings (or whole numbers) one per
//! element. Nested claims are named with dots (`{claims.app.tenant}`); a name is
//! first looked up whole, so `{claims.cognito:groups}` reads Cognito's groups.
//!
//! Every value is checked exactly as `{sub}` is ([`crate::grants::SubRule`]: one
//! topic level without wildcard or policy characters, bounded length, the
//! operator's character set); a bad value refuses the request naming the claim,
//! never an escape. A missing claim (or an empty array) adds no grant.
//!
//! A caller may **narrow** a claim to some of its values (`{"claims": {"rooms":
//! ["42", "7"]}}` in the vend body): every template using the claim follows; a
//! value the token does not carry, or a claim no template uses, is refused.
//!
//! Not here: which templates use which claims, and the expansion
//! ([`crate::grants`]).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::grants::{GrantError, SubRule, check_value};

/// The most grants one template may expand to (a product of claim arrays).
pub const MAX_EXPANSIONS: usize = 256;
/// The most values one claim may contribute: far above what a session policy holds.
pub const MAX_VALUES: usize = 1024;

/// What a caller asked for: claim name → the values it wants.
pub type Narrowing = BTreeMap<String, Vec<String>>;

/// The values each claim the templates use takes for one caller.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClaimValues(BTreeMap<String, Vec<String>>);

impl ClaimValues {
    /// No claims: templates that use one expand to nothing.
    pub fn none() -> Self {
        Self::default()
    }

    /// The values of `name` (empty when the token has none).
    pub fn get(&self, name: &str) -> &[String] {
        self.0.get(name).map_or(&[], Vec::as_slice)
    }

    /// Reads the claims `names` from the token's `claims`, checks every value
    /// against `rule`, then narrows them to `narrow`.
    pub fn read(
        names: &[&str],
        claims: Option<&Map<String, Value>>,
        rule: SubRule,
        narrow: Option<&Narrowing>,
    ) -> Result<Self, GrantError> {
        let mut values = BTreeMap::new();
        for &name in names {
            let found = claims.and_then(|claims| lookup(claims, name));
            values.insert(name.to_owned(), strings(name, found, rule)?);
        }
        let mut read = Self(values);
        if let Some(narrow) = narrow {
            read.narrow(narrow)?;
        }
        Ok(read)
    }

    fn narrow(&mut self, narrow: &Narrowing) -> Result<(), GrantError> {
        for (claim, wanted) in narrow {
            let Some(carried) = self.0.get_mut(claim) else {
                return Err(GrantError::UnknownClaim { claim: claim.clone() });
            };
            if let Some(missing) = wanted.iter().find(|w| !carried.contains(w)) {
                return Err(GrantError::ClaimNotInToken {
                    claim: claim.clone(),
                    value: missing.clone(),
                });
            }
            let mut kept: Vec<String> = Vec::with_capacity(wanted.len());
            for value in wanted {
                if !kept.contains(value) {
                    kept.push(value.clone());
                }
            }
            *carried = kept;
        }
        Ok(())
    }
}

/// The claim `name`: the whole name first (`cognito:groups`, `https://…`),
/// then as a dotted path into nested objects (`app.tenant`).
fn lookup<'a>(claims: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    if let Some(value) = claims.get(name) {
        return Some(value);
    }
    let mut parts = name.split('.');
    let mut value = claims.get(parts.next()?)?;
    for part in parts {
        value = value.as_object()?.get(part)?;
    }
    Some(value)
}

/// A claim's values as strings, each checked as a topic level.
fn strings(name: &str, value: Option<&Value>, rule: SubRule) -> Result<Vec<String>, GrantError> {
    let bad = |problem: String| GrantError::BadClaim {
        claim: name.to_owned(),
        problem,
    };
    let items: Vec<&Value> = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items.iter().collect(),
        Some(one) => vec![one],
    };
    if items.len() > MAX_VALUES {
        return Err(bad(format!(
            "it has {} values; at most {MAX_VALUES} are read",
            items.len()
        )));
    }
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for item in items {
        let text = match item {
            Value::String(text) => text.clone(),
            Value::Number(n) if n.is_u64() || n.is_i64() => n.to_string(),
            _ => return Err(bad("its values must be strings or whole numbers".into())),
        };
        check_value(&text, rule).map_err(|problem| bad(format!("{text:?} {problem}")))?;
        if !out.contains(&text) {
            out.push(text);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn claims(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn strings_arrays_numbers_nested_and_namespaced_claims_are_read() {
        let token = claims(json!({
            "rooms": ["42", 7, "42"],
            "team": "blue",
            "app": {"tenant": "acme"},
            "cognito:groups": ["admins"],
        }));
        let names = ["rooms", "team", "app.tenant", "cognito:groups", "absent"];
        let read = ClaimValues::read(&names, Some(&token), SubRule::default(), None).unwrap();
        assert_eq!(read.get("rooms"), ["42", "7"]);
        assert_eq!(read.get("team"), ["blue"]);
        assert_eq!(read.get("app.tenant"), ["acme"]);
        assert_eq!(read.get("cognito:groups"), ["admins"]);
        assert!(read.get("absent").is_empty());
    }

    #[test]
    fn a_value_that_would_widen_a_grant_is_refused_naming_the_claim() {
        for bad in [
            json!("a/b"),
            json!("#"),
            json!(["ok", "+"]),
            json!("*"),
            json!(""),
            json!({"x": 1}),
            json!(1.5),
        ] {
            let token = claims(json!({ "rooms": bad }));
            let error = ClaimValues::read(&["rooms"], Some(&token), SubRule::default(), None).unwrap_err();
            assert!(
                matches!(&error, GrantError::BadClaim { claim, .. } if claim == "rooms"),
                "{error:?}"
            );
        }
    }

    #[test]
    fn narrowing_keeps_only_values_the_token_carries() {
        let token = claims(json!({"rooms": ["1", "2", "3"]}));
        let narrow: Narrowing = [("rooms".to_owned(), vec!["3".to_owned(), "1".to_owned()])].into();
        let read = ClaimValues::read(&["rooms"], Some(&token), SubRule::default(), Some(&narrow)).unwrap();
        assert_eq!(read.get("rooms"), ["3", "1"]);
        let stranger: Narrowing = [("rooms".to_owned(), vec!["4".to_owned()])].into();
        assert_eq!(
            ClaimValues::read(&["rooms"], Some(&token), SubRule::default(), Some(&stranger)).unwrap_err(),
            GrantError::ClaimNotInToken {
                claim: "rooms".into(),
                value: "4".into()
            }
        );
        let unknown: Narrowing = [("teams".to_owned(), vec![])].into();
        assert!(matches!(
            ClaimValues::read(&["rooms"], Some(&token), SubRule::default(), Some(&unknown)),
            Err(GrantError::UnknownClaim { .. })
        ));
    }
}
