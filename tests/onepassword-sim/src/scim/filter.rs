//! RFC 7644 §3.4.2.2 filters: comparisons (`eq ne co sw ew gt ge lt le pr`), `and`, `or`,
//! `not (...)` and parentheses. Attribute paths are matched case-insensitively.

use std::cmp::Ordering;

#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Str(String),
    Bool(bool),
    Num(f64),
    Null,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// `path` is lower-cased, with any core-schema URN prefix removed.
    Compare {
        path: String,
        op: CompareOp,
        value: Literal,
    },
    Present {
        path: String,
    },
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
}

/// An attribute value as filters see it.
#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue<'a> {
    Str { value: &'a str, case_exact: bool },
    Bool(bool),
}

impl Filter {
    pub fn parse(input: &str) -> Result<Filter, String> {
        let tokens = tokenize(input)?;
        let mut parser = Parser { tokens, pos: 0 };
        let filter = parser.parse_or()?;
        if parser.pos != parser.tokens.len() {
            return Err(format!("unexpected {:?} in filter", parser.tokens[parser.pos]));
        }
        Ok(filter)
    }

    /// Every attribute path the filter reads.
    pub fn paths(&self) -> Vec<&str> {
        match self {
            Filter::Compare { path, .. } | Filter::Present { path } => vec![path.as_str()],
            Filter::And(a, b) | Filter::Or(a, b) => {
                let mut paths = a.paths();
                paths.extend(b.paths());
                paths
            }
            Filter::Not(inner) => inner.paths(),
        }
    }

    /// Evaluates against a resource; `attr` returns the values of a (lower-case) path.
    pub fn matches<'a>(&self, attr: &dyn Fn(&str) -> Vec<AttrValue<'a>>) -> bool {
        match self {
            Filter::Present { path } => !attr(path).is_empty(),
            Filter::Compare { path, op, value } => attr(path).iter().any(|candidate| compare(candidate, *op, value)),
            Filter::And(a, b) => a.matches(attr) && b.matches(attr),
            Filter::Or(a, b) => a.matches(attr) || b.matches(attr),
            Filter::Not(inner) => !inner.matches(attr),
        }
    }
}

fn compare(candidate: &AttrValue<'_>, op: CompareOp, value: &Literal) -> bool {
    match (candidate, value) {
        (AttrValue::Bool(b), Literal::Bool(v)) => match op {
            CompareOp::Eq => b == v,
            CompareOp::Ne => b != v,
            _ => false,
        },
        (AttrValue::Str { value: s, case_exact }, Literal::Str(v)) => {
            let (s, v) = if *case_exact { (s.to_string(), v.clone()) } else { (s.to_lowercase(), v.to_lowercase()) };
            match op {
                CompareOp::Eq => s == v,
                CompareOp::Ne => s != v,
                CompareOp::Co => s.contains(&v),
                CompareOp::Sw => s.starts_with(&v),
                CompareOp::Ew => s.ends_with(&v),
                CompareOp::Gt => s.cmp(&v) == Ordering::Greater,
                CompareOp::Ge => s.cmp(&v) != Ordering::Less,
                CompareOp::Lt => s.cmp(&v) == Ordering::Less,
                CompareOp::Le => s.cmp(&v) != Ordering::Greater,
            }
        }
        (_, Literal::Null) => op == CompareOp::Ne,
        _ => op == CompareOp::Ne,
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Str(String),
    Open,
    Close,
}

fn tokenize(input: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut chars = input.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' => {
                chars.next();
                tokens.push(Token::Open);
            }
            ')' => {
                chars.next();
                tokens.push(Token::Close);
            }
            '"' => {
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next() {
                        Some('\\') => match chars.next() {
                            Some(escaped) => s.push(escaped),
                            None => return Err("unterminated string in filter".into()),
                        },
                        Some('"') => break,
                        Some(other) => s.push(other),
                        None => return Err("unterminated string in filter".into()),
                    }
                }
                tokens.push(Token::Str(s));
            }
            _ => {
                let mut word = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || c == '(' || c == ')' || c == '"' {
                        break;
                    }
                    // A value filter `emails[type eq "work"]` stays one word up to its `]`.
                    if c == '[' {
                        for inner in chars.by_ref() {
                            word.push(inner);
                            if inner == ']' {
                                break;
                            }
                        }
                        continue;
                    }
                    word.push(c);
                    chars.next();
                }
                tokens.push(Token::Word(word));
            }
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek_keyword(&self, keyword: &str) -> bool {
        matches!(self.tokens.get(self.pos), Some(Token::Word(w)) if w.eq_ignore_ascii_case(keyword))
    }

    fn parse_or(&mut self) -> Result<Filter, String> {
        let mut left = self.parse_and()?;
        while self.peek_keyword("or") {
            self.pos += 1;
            let right = self.parse_and()?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn parse_and(&mut self) -> Result<Filter, String> {
        let mut left = self.parse_atom()?;
        while self.peek_keyword("and") {
            self.pos += 1;
            let right = self.parse_atom()?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn parse_atom(&mut self) -> Result<Filter, String> {
        if self.peek_keyword("not") {
            self.pos += 1;
            return Ok(Filter::Not(Box::new(self.parse_atom()?)));
        }
        match self.tokens.get(self.pos).cloned() {
            Some(Token::Open) => {
                self.pos += 1;
                let inner = self.parse_or()?;
                if self.tokens.get(self.pos) != Some(&Token::Close) {
                    return Err("missing ')' in filter".into());
                }
                self.pos += 1;
                Ok(inner)
            }
            Some(Token::Word(path)) => {
                self.pos += 1;
                let path = normalise_path(&path);
                let op = match self.tokens.get(self.pos) {
                    Some(Token::Word(op)) => op.to_ascii_lowercase(),
                    other => {
                        return Err(format!("expected an operator after {path}, found {other:?}"));
                    }
                };
                self.pos += 1;
                if op == "pr" {
                    return Ok(Filter::Present { path });
                }
                let op = match op.as_str() {
                    "eq" => CompareOp::Eq,
                    "ne" => CompareOp::Ne,
                    "co" => CompareOp::Co,
                    "sw" => CompareOp::Sw,
                    "ew" => CompareOp::Ew,
                    "gt" => CompareOp::Gt,
                    "ge" => CompareOp::Ge,
                    "lt" => CompareOp::Lt,
                    "le" => CompareOp::Le,
                    other => return Err(format!("unknown operator {other:?}")),
                };
                let value = match self.tokens.get(self.pos) {
                    Some(Token::Str(s)) => Literal::Str(s.clone()),
                    Some(Token::Word(w)) if w.eq_ignore_ascii_case("true") => Literal::Bool(true),
                    Some(Token::Word(w)) if w.eq_ignore_ascii_case("false") => Literal::Bool(false),
                    Some(Token::Word(w)) if w.eq_ignore_ascii_case("null") => Literal::Null,
                    Some(Token::Word(w)) => {
                        Literal::Num(w.parse().map_err(|_| format!("invalid value {w:?} in filter"))?)
                    }
                    other => return Err(format!("expected a value, found {other:?}")),
                };
                self.pos += 1;
                Ok(Filter::Compare { path, op, value })
            }
            other => Err(format!("expected an attribute, found {other:?}")),
        }
    }
}

/// Lower-cases a path and strips a core schema URN prefix.
pub fn normalise_path(path: &str) -> String {
    let lower = path.to_ascii_lowercase();
    for prefix in ["urn:ietf:params:scim:schemas:core:2.0:user:", "urn:ietf:params:scim:schemas:core:2.0:group:"] {
        if let Some(rest) = lower.strip_prefix(prefix) {
            return rest.to_owned();
        }
    }
    lower
}

/// The filter is exactly `path eq "value"`.
pub fn as_simple_eq<'f>(filter: &'f Filter, wanted_path: &str) -> Option<&'f str> {
    match filter {
        Filter::Compare { path, op: CompareOp::Eq, value: Literal::Str(v) } if path == wanted_path => Some(v),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_filters_idps_send() {
        let f = Filter::parse(r#"userName eq "Jane@Example.com""#).unwrap();
        assert_eq!(as_simple_eq(&f, "username"), Some("Jane@Example.com"));
        let f = Filter::parse(r#"externalId eq "a\"b" and active eq true"#).unwrap();
        assert!(matches!(f, Filter::And(..)));
        let f = Filter::parse(r#"not (displayName co "x") or emails[type eq "work"] pr"#).unwrap();
        assert!(matches!(f, Filter::Or(..)));
    }

    #[test]
    fn rejects_malformed_filters() {
        for bad in ["userName eq", r#"userName xx "a""#, r#"userName eq "open"#, "(userName pr", ""] {
            assert!(Filter::parse(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn case_insensitive_unless_case_exact() {
        let f = Filter::parse(r#"userName eq "JANE@example.com""#).unwrap();
        let attr = |_: &str| vec![AttrValue::Str { value: "jane@EXAMPLE.com", case_exact: false }];
        assert!(f.matches(&attr));
        let exact = |_: &str| vec![AttrValue::Str { value: "jane@EXAMPLE.com", case_exact: true }];
        assert!(!f.matches(&exact));
    }
}
