//! Substitution templates, as republish topics and headers take them:
//! `out/${topic(2)}/${clientid()}`, with `$$` for a literal `$`
//! (<https://docs.aws.amazon.com/iot/latest/developerguide/iot-substitution-templates.html>).
//! Each `${…}` is an expression of the rule SQL, parsed when the rule is created
//! and evaluated against the message (not the SELECT's output, as in IoT).
//!
//! Not emulated: SET variables inside templates.

use super::eval::Evaluator;
use super::parser::{self, Expr};
use super::{Context, SqlError, SqlVersion, lexer};

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Expr(Expr),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template(Vec<Part>);

impl Template {
    pub fn parse(text: &str, version: SqlVersion) -> Result<Self, SqlError> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(at) = rest.find('$') {
            literal.push_str(&rest[..at]);
            rest = &rest[at..];
            if let Some(after) = rest.strip_prefix("$$") {
                literal.push('$');
                rest = after;
            } else if let Some(after) = rest.strip_prefix("${") {
                let end = after
                    .find('}')
                    .ok_or_else(|| SqlError::new(format!("a ${{ in {text:?} is not closed")))?;
                if !literal.is_empty() {
                    parts.push(Part::Text(std::mem::take(&mut literal)));
                }
                parts.push(Part::Expr(parser::parse_expression(
                    lexer::tokens(&after[..end])?,
                    version,
                )?));
                rest = &after[end + 1..];
            } else {
                literal.push('$');
                rest = &rest[1..];
            }
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            parts.push(Part::Text(literal));
        }
        Ok(Self(parts))
    }

    /// The text for one message; `None` when an expression is Undefined.
    pub fn render(&self, context: &Context<'_>) -> Option<String> {
        let evaluator = Evaluator {
            context,
            vars: Vec::new(),
        };
        let mut out = String::new();
        for part in &self.0 {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Expr(expr) => out.push_str(&evaluator.eval(expr).to_text()?),
            }
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expressions_are_substituted_and_double_dollar_is_a_dollar() {
        let payload = br#"{"kind":"reply"}"#;
        let json = super::super::payload_json(payload);
        let context = Context {
            version: SqlVersion::V2016_03_23,
            topic: "from/alice/c1",
            client_id: Some("c1"),
            principal: None,
            timestamp_ms: 0,
            account_id: "000000000000",
            trace_id: None,
            payload,
            json: json.as_ref(),
        };
        let template = Template::parse("to/${topic(2)}/${clientid()}/${kind}", SqlVersion::V2016_03_23).unwrap();
        assert_eq!(template.render(&context).as_deref(), Some("to/alice/c1/reply"));
        let dollar = Template::parse("$$aws/things/${topic(3)}", SqlVersion::V2016_03_23).unwrap();
        assert_eq!(dollar.render(&context).as_deref(), Some("$aws/things/c1"));
        let missing = Template::parse("x/${nope}", SqlVersion::V2016_03_23).unwrap();
        assert_eq!(missing.render(&context), None);
        assert!(Template::parse("x/${topic(", SqlVersion::V2016_03_23).is_err());
    }
}
