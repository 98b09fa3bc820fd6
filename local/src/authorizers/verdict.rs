//! A custom authorizer's answer, checked as IoT checks it
//! (<https://docs.aws.amazon.com/iot/latest/developerguide/custom-auth-lambda.html>):
//! `isAuthenticated`; a `principalId` of 1 to 128 ASCII letters and digits; at
//! most 10 `policyDocuments` of at most 2048 characters each, taken as JSON
//! objects (today's docs) or as JSON strings (the older page, and what
//! `TestInvokeAuthorizer` returns); `refreshAfterInSeconds` and
//! `disconnectAfterInSeconds` from 300 to 86,400. Anything else is an invalid
//! response, said precisely: IoT only closes the connection.

use serde_json::Value;
use serverless_websockets_core::policy::PolicyDocument;
use serverless_websockets_core::policy::authorizer::{MAX_DOCUMENT_CHARS, MAX_DOCUMENTS};

pub use serverless_websockets_core::quota::{
    AUTHORIZER_MAX_INTERVAL_SECS as MAX_INTERVAL_SECONDS, AUTHORIZER_MIN_INTERVAL_SECS as MIN_INTERVAL_SECONDS,
};

/// A valid answer.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub authenticated: bool,
    pub principal_id: String,
    pub policies: Vec<PolicyDocument>,
    /// The documents as JSON strings, as `TestInvokeAuthorizer` returns them.
    pub documents: Vec<String>,
    pub refresh_after: u32,
    pub disconnect_after: u32,
}

/// Parses and checks the function's answer; `min_interval` is IoT's 300 s
/// unless a test shortened it.
pub fn parse(body: &[u8], min_interval: u32) -> Result<Verdict, String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| format!("the answer is not JSON: {e}"))?;
    let Value::Object(answer) = value else {
        return Err("the answer is not a JSON object".into());
    };
    let authenticated = answer
        .get("isAuthenticated")
        .and_then(Value::as_bool)
        .ok_or("isAuthenticated is missing or not a boolean")?;
    if !authenticated {
        // A refusal: nothing else in it matters.
        return Ok(Verdict {
            authenticated,
            principal_id: answer
                .get("principalId")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
            policies: Vec::new(),
            documents: Vec::new(),
            refresh_after: 0,
            disconnect_after: 0,
        });
    }
    let principal_id = principal(answer.get("principalId"))?;
    let (policies, documents) = documents(answer.get("policyDocuments"))?;
    let interval = |name: &str| seconds(name, answer.get(name), min_interval);
    Ok(Verdict {
        authenticated,
        principal_id,
        policies,
        documents,
        refresh_after: interval("refreshAfterInSeconds")?,
        disconnect_after: interval("disconnectAfterInSeconds")?,
    })
}

fn principal(value: Option<&Value>) -> Result<String, String> {
    match value {
        Some(Value::String(id)) if (1..=128).contains(&id.len()) && id.chars().all(|c| c.is_ascii_alphanumeric()) => {
            Ok(id.clone())
        }
        Some(Value::String(id)) => Err(format!(
            "principalId {id:?} must be 1 to 128 ASCII letters and digits (no - _ : or spaces)"
        )),
        Some(Value::Null) | None => Err("principalId is missing".into()),
        Some(_) => Err("principalId is not a string".into()),
    }
}

fn documents(value: Option<&Value>) -> Result<(Vec<PolicyDocument>, Vec<String>), String> {
    let list = match value {
        Some(Value::Array(list)) => list,
        None | Some(Value::Null) => return Err("policyDocuments is missing".into()),
        Some(_) => return Err("policyDocuments is not a list".into()),
    };
    if list.len() > MAX_DOCUMENTS {
        return Err(format!(
            "policyDocuments has {} documents; IoT takes at most {MAX_DOCUMENTS}",
            list.len()
        ));
    }
    let mut policies = Vec::with_capacity(list.len());
    let mut texts = Vec::with_capacity(list.len());
    for (i, document) in list.iter().enumerate() {
        let text = match document {
            Value::String(text) => text.clone(),
            Value::Object(_) => document.to_string(),
            _ => return Err(format!("policyDocuments[{i}] is neither a JSON object nor a string")),
        };
        let chars = text.chars().count();
        if chars > MAX_DOCUMENT_CHARS {
            return Err(format!(
                "policyDocuments[{i}] has {chars} characters; IoT takes at most {MAX_DOCUMENT_CHARS}"
            ));
        }
        let policy = PolicyDocument::parse(&text).map_err(|e| format!("policyDocuments[{i}] is not a policy: {e}"))?;
        policies.push(policy);
        texts.push(text);
    }
    Ok((policies, texts))
}

fn seconds(name: &str, value: Option<&Value>, min: u32) -> Result<u32, String> {
    let n = value
        .and_then(Value::as_u64)
        .ok_or_else(|| format!("{name} is missing or not a whole number of seconds"))?;
    match u32::try_from(n) {
        Ok(n) if (min..=MAX_INTERVAL_SECONDS).contains(&n) => Ok(n),
        _ => Err(format!("{name} is {n}; IoT takes {min} to {MAX_INTERVAL_SECONDS}")),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const POLICY: &str =
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Connect","Resource":"*"}]}"#;

    fn answer(change: impl FnOnce(&mut Value)) -> Vec<u8> {
        let mut value = json!({
            "isAuthenticated": true,
            "principalId": "alice01",
            "policyDocuments": [serde_json::from_str::<Value>(POLICY).unwrap()],
            "refreshAfterInSeconds": 300,
            "disconnectAfterInSeconds": 3600,
        });
        change(&mut value);
        value.to_string().into_bytes()
    }

    #[test]
    fn documents_are_taken_as_objects_or_as_strings() {
        let verdict = parse(&answer(|_| {}), 300).unwrap();
        assert_eq!(verdict.policies.len(), 1);
        let verdict = parse(&answer(|v| v["policyDocuments"] = json!([POLICY])), 300).unwrap();
        assert_eq!(verdict.documents, [POLICY]);
        assert_eq!((verdict.refresh_after, verdict.disconnect_after), (300, 3600));
    }

    #[test]
    fn each_rule_iot_applies_is_named_when_broken() {
        type Change = Box<dyn FnOnce(&mut Value)>;
        let cases: Vec<(Change, &str)> = vec![
            (Box::new(|v| v["principalId"] = json!("user-1")), "principalId"),
            (Box::new(|v| v["principalId"] = Value::Null), "principalId is missing"),
            (Box::new(|v| v["principalId"] = json!("x".repeat(129))), "principalId"),
            (
                Box::new(|v| v["policyDocuments"] = json!(vec![POLICY; 11])),
                "at most 10",
            ),
            (
                Box::new(|v| v["policyDocuments"] = json!([format!("{POLICY:<2100}")])),
                "at most 2048",
            ),
            (Box::new(|v| v["policyDocuments"] = json!(["{}"])), "not a policy"),
            (Box::new(|v| v["policyDocuments"] = json!([1])), "neither"),
            (Box::new(|v| v["refreshAfterInSeconds"] = json!(299)), "300 to 86400"),
            (
                Box::new(|v| v["disconnectAfterInSeconds"] = json!(86_401)),
                "300 to 86400",
            ),
            (
                Box::new(|v| v["disconnectAfterInSeconds"] = json!("600")),
                "whole number",
            ),
            (Box::new(|v| v["isAuthenticated"] = json!("true")), "isAuthenticated"),
        ];
        for (change, expected) in cases {
            let error = parse(&answer(change), 300).unwrap_err();
            assert!(error.contains(expected), "{error:?} should say {expected:?}");
        }
        assert!(parse(b"[]", 300).unwrap_err().contains("not a JSON object"));
        assert!(parse(b"nope", 300).unwrap_err().contains("not JSON"));
    }

    #[test]
    fn a_refusal_needs_nothing_but_is_authenticated_false() {
        let verdict = parse(br#"{"isAuthenticated":false}"#, 300).unwrap();
        assert!(!verdict.authenticated);
    }

    #[test]
    fn a_test_may_shorten_the_minimum_interval() {
        let verdict = parse(&answer(|v| v["refreshAfterInSeconds"] = json!(1)), 1).unwrap();
        assert_eq!(verdict.refresh_after, 1);
    }
}
