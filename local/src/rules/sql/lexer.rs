//! The rule SQL's tokens: identifiers and keywords (case-insensitive), single-quoted
//! strings (`''` is a quote), numbers, `@variables` and the operators
//! (<https://docs.aws.amazon.com/iot/latest/developerguide/iot-sql-reference.html>).
//! Hand-written because no well-kept crate parses IoT's dialect; it is small, and
//! the parser's property tests drive it with arbitrary text.
//!
//! Not here: grammar ([`super::parser`]).

use super::SqlError;

#[derive(Debug, Clone, PartialEq)]
pub enum Token {
    /// An identifier or keyword, as written.
    Word(String),
    Str(String),
    Int(i64),
    Decimal(f64),
    Symbol(&'static str),
}

impl Token {
    /// Whether this is the keyword `keyword` (given in upper case).
    pub fn is_keyword(&self, keyword: &str) -> bool {
        matches!(self, Token::Word(w) if w.eq_ignore_ascii_case(keyword))
    }
}

/// Operators, longest first so that `<=` is not read as `<`, `=`.
const SYMBOLS: &[&str] = &[
    "<>", "!=", "<=", ">=", "=", "<", ">", "+", "-", "*", "/", "%", "(", ")", ",", ".", "{", "}", "[", "]", ":",
];

/// The tokens of `sql`.
pub fn tokens(sql: &str) -> Result<Vec<Token>, SqlError> {
    let mut out = Vec::new();
    let mut rest = sql;
    while let Some(c) = rest.chars().next() {
        if c.is_whitespace() {
            rest = &rest[c.len_utf8()..];
            continue;
        }
        let (token, len) = if c == '\'' {
            string(rest)?
        } else if c.is_ascii_digit() {
            number(rest)?
        } else if c.is_ascii_alphabetic() || c == '_' || c == '@' || c == '$' {
            word(rest)
        } else if let Some(symbol) = SYMBOLS.iter().find(|s| rest.starts_with(**s)) {
            (Token::Symbol(symbol), symbol.len())
        } else {
            return Err(SqlError::new(format!("unexpected character {c:?}")));
        };
        out.push(token);
        rest = &rest[len..];
    }
    Ok(out)
}

fn string(text: &str) -> Result<(Token, usize), SqlError> {
    let mut value = String::new();
    let mut chars = text.char_indices().skip(1).peekable();
    while let Some((at, c)) = chars.next() {
        if c == '\'' {
            if chars.peek().is_some_and(|(_, next)| *next == '\'') {
                chars.next();
                value.push('\'');
                continue;
            }
            return Ok((Token::Str(value), at + 1));
        }
        value.push(c);
    }
    Err(SqlError::new("a string literal is not closed"))
}

fn number(text: &str) -> Result<(Token, usize), SqlError> {
    let mut len = text.bytes().take_while(u8::is_ascii_digit).count();
    let mut decimal = false;
    let bytes = text.as_bytes();
    if bytes.get(len) == Some(&b'.') && bytes.get(len + 1).is_some_and(u8::is_ascii_digit) {
        decimal = true;
        len += 1 + text[len + 1..].bytes().take_while(u8::is_ascii_digit).count();
    }
    if matches!(bytes.get(len), Some(b'e' | b'E')) {
        let sign = usize::from(bytes.get(len + 1) == Some(&b'-'));
        let digits = text[len + 1 + sign..].bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 {
            decimal = true;
            len += 1 + sign + digits;
        }
    }
    let literal = &text[..len];
    let token = if decimal {
        Token::Decimal(
            literal
                .parse()
                .map_err(|_| SqlError::new(format!("bad number {literal}")))?,
        )
    } else {
        match literal.parse::<i64>() {
            Ok(i) => Token::Int(i),
            Err(_) => Token::Decimal(
                literal
                    .parse()
                    .map_err(|_| SqlError::new(format!("bad number {literal}")))?,
            ),
        }
    };
    Ok((token, len))
}

fn word(text: &str) -> (Token, usize) {
    let len = text
        .char_indices()
        .find(|(at, c)| !(c.is_ascii_alphanumeric() || *c == '_' || (*at == 0 && (*c == '@' || *c == '$'))))
        .map_or(text.len(), |(at, _)| at);
    (Token::Word(text[..len].to_owned()), len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_statement_splits_into_words_strings_numbers_and_operators() {
        let got = tokens("SELECT a.b, 'it''s' AS x FROM 'a/+' WHERE n >= 10.5e1 <> -2").unwrap();
        let words: Vec<String> = got.iter().map(|t| format!("{t:?}")).collect();
        assert_eq!(got[0], Token::Word("SELECT".into()));
        assert!(got.contains(&Token::Str("it's".into())), "{words:?}");
        assert!(got.contains(&Token::Str("a/+".into())));
        assert!(got.contains(&Token::Symbol(">=")));
        assert!(got.contains(&Token::Decimal(105.0)));
        assert!(got.contains(&Token::Symbol("<>")));
        assert!(got.contains(&Token::Int(2)));
    }

    #[test]
    fn an_unclosed_string_or_a_stray_character_is_an_error() {
        assert!(tokens("SELECT 'abc").is_err());
        assert!(tokens("SELECT a ; b").is_err());
    }
}
