//! The rule SQL's grammar, parsed once when a rule is created:
//! `[SET @v = e, …] SELECT (VALUE e | * | e [AS name], …) [FROM '<filter>'] [WHERE e]`
//! (<https://docs.aws.amazon.com/iot/latest/developerguide/iot-sql-reference.html>).
//!
//! Operator precedence is not documented by AWS; this follows ANSI SQL (unary
//! minus, `* / %`, `+ -`, comparisons, NOT, AND, OR), which is what the emulator
//! documents. A recursive-descent parser over [`super::lexer`]'s tokens.
//!
//! Not here: what an expression means ([`super::eval`]).

use super::functions;
use super::lexer::Token;
use super::{SqlError, SqlVersion};

/// A parsed rule statement.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    pub set: Vec<(String, Expr)>,
    pub select: Select,
    /// The FROM topic filter; absent for Basic-Ingest-only rules.
    pub from: Option<String>,
    pub condition: Option<Expr>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Select {
    /// `SELECT VALUE e` (2016-03-23): a bare value.
    Value(Expr),
    Items(Vec<Item>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// `*`: every key of the payload (or the payload itself).
    Star,
    Expr {
        expr: Expr,
        name: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Literal(Literal),
    /// A key of the payload (`a`), or of an expression's value (`a.b`).
    Key(Option<Box<Expr>>, String),
    Var(String),
    Call(String, Vec<Expr>),
    Cast(Box<Expr>, String),
    Unary(&'static str, Box<Expr>),
    Binary(&'static str, Box<Expr>, Box<Expr>),
    Case {
        operand: Box<Expr>,
        whens: Vec<(Expr, Expr)>,
        otherwise: Option<Box<Expr>>,
    },
    Object(Vec<(String, Expr)>),
    Array(Vec<Expr>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Null,
    Bool(bool),
    Int(i64),
    Decimal(f64),
    Str(String),
}

const KEYWORDS: &[&str] = &[
    "SELECT", "FROM", "WHERE", "AS", "AND", "OR", "NOT", "CASE", "WHEN", "THEN", "ELSE", "END", "TRUE", "FALSE",
    "NULL", "VALUE", "SET", "IN",
];

/// Parses `sql` as `version` reads it.
pub fn parse(tokens: Vec<Token>, version: SqlVersion) -> Result<Statement, SqlError> {
    let mut parser = Parser { tokens, at: 0, version };
    let statement = parser.statement()?;
    match parser.peek() {
        None => Ok(statement),
        Some(token) => Err(SqlError::new(format!("unexpected {token:?} after the statement"))),
    }
}

/// Parses one expression (a substitution template's `${…}`).
pub fn parse_expression(tokens: Vec<Token>, version: SqlVersion) -> Result<Expr, SqlError> {
    let mut parser = Parser { tokens, at: 0, version };
    let expr = parser.expr()?;
    match parser.peek() {
        None => Ok(expr),
        Some(token) => Err(SqlError::new(format!("unexpected {token:?} after the expression"))),
    }
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
    version: SqlVersion,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.at).cloned();
        self.at += 1;
        token
    }

    fn keyword(&mut self, keyword: &str) -> bool {
        let found = self.peek().is_some_and(|t| t.is_keyword(keyword));
        if found {
            self.at += 1;
        }
        found
    }

    fn symbol(&mut self, symbol: &str) -> bool {
        let found = matches!(self.peek(), Some(Token::Symbol(s)) if *s == symbol);
        if found {
            self.at += 1;
        }
        found
    }

    fn expect_keyword(&mut self, keyword: &str) -> Result<(), SqlError> {
        if self.keyword(keyword) {
            Ok(())
        } else {
            Err(SqlError::new(format!("expected {keyword}, found {:?}", self.peek())))
        }
    }

    fn expect_symbol(&mut self, symbol: &str) -> Result<(), SqlError> {
        if self.symbol(symbol) {
            Ok(())
        } else {
            Err(SqlError::new(format!("expected {symbol:?}, found {:?}", self.peek())))
        }
    }

    fn statement(&mut self) -> Result<Statement, SqlError> {
        let set = if self.keyword("SET") {
            self.assignments()?
        } else {
            Vec::new()
        };
        self.expect_keyword("SELECT")?;
        let select = self.select()?;
        let from = if self.keyword("FROM") {
            match self.next() {
                Some(Token::Str(filter)) => Some(filter),
                other => {
                    return Err(SqlError::new(format!(
                        "FROM takes a quoted topic filter, found {other:?}"
                    )));
                }
            }
        } else {
            None
        };
        let condition = if self.keyword("WHERE") {
            Some(self.expr()?)
        } else {
            None
        };
        Ok(Statement {
            set,
            select,
            from,
            condition,
        })
    }

    fn assignments(&mut self) -> Result<Vec<(String, Expr)>, SqlError> {
        let mut set = Vec::new();
        loop {
            let name = match self.next() {
                Some(Token::Word(w)) if w.starts_with('@') && w.len() > 1 && w.len() <= 65 => w,
                other => return Err(SqlError::new(format!("SET takes @name = expression, found {other:?}"))),
            };
            if set.iter().any(|(n, _)| *n == name) {
                return Err(SqlError::new(format!("{name} is assigned twice")));
            }
            self.expect_symbol("=")?;
            set.push((name, self.expr()?));
            if !self.symbol(",") {
                return Ok(set);
            }
        }
    }

    fn select(&mut self) -> Result<Select, SqlError> {
        if self.keyword("VALUE") {
            if self.version == SqlVersion::V2015_10_08 {
                return Err(SqlError::new("SELECT VALUE needs SQL version 2016-03-23"));
            }
            return Ok(Select::Value(self.expr()?));
        }
        let mut items = Vec::new();
        loop {
            if self.symbol("*") {
                items.push(Item::Star);
            } else {
                let expr = self.expr()?;
                let name = if self.keyword("AS") { Some(self.name()?) } else { None };
                items.push(Item::Expr { expr, name });
            }
            if !self.symbol(",") {
                return Ok(Select::Items(items));
            }
        }
    }

    fn name(&mut self) -> Result<String, SqlError> {
        match self.next() {
            Some(Token::Word(w)) if !is_keyword(&w) && !w.starts_with(['@', '$']) => Ok(w),
            other => Err(SqlError::new(format!("expected a name, found {other:?}"))),
        }
    }

    fn expr(&mut self) -> Result<Expr, SqlError> {
        let mut left = self.and()?;
        while self.keyword("OR") {
            left = Expr::Binary("OR", Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, SqlError> {
        let mut left = self.not()?;
        while self.keyword("AND") {
            left = Expr::Binary("AND", Box::new(left), Box::new(self.not()?));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Expr, SqlError> {
        if self.keyword("NOT") {
            return Ok(Expr::Unary("NOT", Box::new(self.not()?)));
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Expr, SqlError> {
        let left = self.sum()?;
        if self.peek().is_some_and(|t| t.is_keyword("IN")) {
            return Err(SqlError::new("IN is not emulated (its semantics are not documented)"));
        }
        for op in ["=", "<>", "!=", "<=", ">=", "<", ">"] {
            if self.symbol(op) {
                let op = if op == "!=" { "<>" } else { op };
                return Ok(Expr::Binary(op, Box::new(left), Box::new(self.sum()?)));
            }
        }
        Ok(left)
    }

    fn sum(&mut self) -> Result<Expr, SqlError> {
        let mut left = self.product()?;
        loop {
            let op = if self.symbol("+") {
                "+"
            } else if self.symbol("-") {
                "-"
            } else {
                return Ok(left);
            };
            left = Expr::Binary(op, Box::new(left), Box::new(self.product()?));
        }
    }

    fn product(&mut self) -> Result<Expr, SqlError> {
        let mut left = self.unary()?;
        loop {
            let op = ["*", "/", "%"].into_iter().find(|op| self.symbol(op));
            match op {
                Some(op) => left = Expr::Binary(op, Box::new(left), Box::new(self.unary()?)),
                None => return Ok(left),
            }
        }
    }

    fn unary(&mut self) -> Result<Expr, SqlError> {
        if self.symbol("-") {
            return Ok(Expr::Unary("-", Box::new(self.unary()?)));
        }
        let mut expr = self.primary()?;
        while self.symbol(".") {
            expr = Expr::Key(Some(Box::new(expr)), self.name()?);
        }
        Ok(expr)
    }

    fn primary(&mut self) -> Result<Expr, SqlError> {
        let Some(token) = self.next() else {
            return Err(SqlError::new("the statement ends where an expression was expected"));
        };
        match token {
            Token::Str(s) => Ok(Expr::Literal(Literal::Str(s))),
            Token::Int(i) => Ok(Expr::Literal(Literal::Int(i))),
            Token::Decimal(f) => Ok(Expr::Literal(self.decimal(f))),
            Token::Symbol("(") => {
                let expr = self.expr()?;
                self.expect_symbol(")")?;
                Ok(expr)
            }
            Token::Symbol("{") => self.object(),
            Token::Symbol("[") => self.array(),
            Token::Word(word) => self.word(word),
            Token::Symbol(s) => Err(SqlError::new(format!("unexpected {s:?}"))),
        }
    }

    /// Under 2016-03-23 a whole decimal literal such as `10.0` is an Int.
    fn decimal(&self, f: f64) -> Literal {
        match super::value::Value::decimal(f, self.version == SqlVersion::V2016_03_23) {
            super::value::Value::Int(i) => Literal::Int(i),
            _ => Literal::Decimal(f),
        }
    }

    fn word(&mut self, word: String) -> Result<Expr, SqlError> {
        let upper = word.to_ascii_uppercase();
        match upper.as_str() {
            "TRUE" => return Ok(Expr::Literal(Literal::Bool(true))),
            "FALSE" => return Ok(Expr::Literal(Literal::Bool(false))),
            "NULL" => return Ok(Expr::Literal(Literal::Null)),
            "CASE" => return self.case(),
            _ => {}
        }
        if word.starts_with('@') {
            return Ok(Expr::Var(word));
        }
        if is_keyword(&word) || word.starts_with('$') {
            return Err(SqlError::new(format!("unexpected {word}")));
        }
        if !self.symbol("(") {
            return Ok(Expr::Key(None, word));
        }
        let name = word.to_ascii_lowercase();
        if name == "cast" {
            let value = self.expr()?;
            self.expect_keyword("AS")?;
            let to = self.name()?;
            self.expect_symbol(")")?;
            return functions::cast_type(&to).map(|_| Expr::Cast(Box::new(value), to));
        }
        let args = self.arguments()?;
        functions::check(&name, args.len(), self.version)?;
        Ok(Expr::Call(name, args))
    }

    fn arguments(&mut self) -> Result<Vec<Expr>, SqlError> {
        let mut args = Vec::new();
        if self.symbol(")") {
            return Ok(args);
        }
        loop {
            // `encode(*, 'base64')`: the whole payload.
            if self.symbol("*") {
                args.push(Expr::Call("*".into(), Vec::new()));
            } else {
                args.push(self.expr()?);
            }
            if self.symbol(")") {
                return Ok(args);
            }
            self.expect_symbol(",")?;
        }
    }

    fn case(&mut self) -> Result<Expr, SqlError> {
        let operand = Box::new(self.expr()?);
        let mut whens = Vec::new();
        while self.keyword("WHEN") {
            let test = self.expr()?;
            self.expect_keyword("THEN")?;
            whens.push((test, self.expr()?));
        }
        if whens.is_empty() {
            return Err(SqlError::new("CASE needs at least one WHEN"));
        }
        let otherwise = if self.keyword("ELSE") {
            Some(Box::new(self.expr()?))
        } else {
            None
        };
        self.expect_keyword("END")?;
        Ok(Expr::Case {
            operand,
            whens,
            otherwise,
        })
    }

    fn json_literals(&self) -> Result<(), SqlError> {
        if self.version == SqlVersion::V2015_10_08 {
            return Err(SqlError::new("JSON literals need SQL version 2016-03-23"));
        }
        Ok(())
    }

    fn object(&mut self) -> Result<Expr, SqlError> {
        self.json_literals()?;
        let mut fields = Vec::new();
        if self.symbol("}") {
            return Ok(Expr::Object(fields));
        }
        loop {
            let key = match self.next() {
                Some(Token::Str(key)) => key,
                Some(Token::Word(key)) if !is_keyword(&key) => key,
                other => return Err(SqlError::new(format!("expected an object key, found {other:?}"))),
            };
            self.expect_symbol(":")?;
            fields.push((key, self.expr()?));
            if self.symbol("}") {
                return Ok(Expr::Object(fields));
            }
            self.expect_symbol(",")?;
        }
    }

    fn array(&mut self) -> Result<Expr, SqlError> {
        self.json_literals()?;
        let mut items = Vec::new();
        if self.symbol("]") {
            return Ok(Expr::Array(items));
        }
        loop {
            items.push(self.expr()?);
            if self.symbol("]") {
                return Ok(Expr::Array(items));
            }
            self.expect_symbol(",")?;
        }
    }
}

fn is_keyword(word: &str) -> bool {
    KEYWORDS.iter().any(|k| k.eq_ignore_ascii_case(word))
}
