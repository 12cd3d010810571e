//! RFC 7644 §3.4.2.2 filters: comparisons (`eq ne co sw ew gt ge lt le pr`), `and`, `or`,
//! `not (...)`, parentheses, and value paths on multi-valued attributes
//! (`members[value eq "ID"]`, `emails[type eq "work" and primary eq true]`). Attribute paths
//! are matched case-insensitively.

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
    /// `path[filter]`: some element of the multi-valued attribute `path` matches `filter`,
    /// whose paths name sub-attributes (`value`, `type`, …).
    ValuePath {
        path: String,
        filter: Box<Filter>,
    },
}

/// An attribute value as filters see it.
#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue<'a> {
    Str { value: &'a str, case_exact: bool },
    Bool(bool),
}

/// A resource as filters see it.
pub trait Attributes<'a> {
    /// The values of a lower-case path (`username`, `name.givenname`, `members.value`).
    fn values(&self, path: &str) -> Vec<AttrValue<'a>>;

    /// The elements of a multi-valued complex attribute (`members`, `emails`), each with its
    /// sub-attributes. None by default: a value path on it then matches nothing.
    fn elements(&self, _path: &str) -> Vec<Element<'a>> {
        Vec::new()
    }
}

/// Any `Fn(path) -> values` is a resource without multi-valued complex attributes.
impl<'a, F: Fn(&str) -> Vec<AttrValue<'a>>> Attributes<'a> for F {
    fn values(&self, path: &str) -> Vec<AttrValue<'a>> {
        self(path)
    }
}

/// One element of a multi-valued attribute: (lower-case sub-attribute, value) pairs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Element<'a>(pub Vec<(&'static str, AttrValue<'a>)>);

impl<'a> Attributes<'a> for Element<'a> {
    fn values(&self, path: &str) -> Vec<AttrValue<'a>> {
        self.0.iter().filter(|(name, _)| *name == path).map(|(_, value)| value.clone()).collect()
    }
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

    /// Every attribute path the filter reads; inside a value path as `attribute.sub`.
    pub fn paths(&self) -> Vec<String> {
        match self {
            Filter::Compare { path, .. } | Filter::Present { path } => vec![path.clone()],
            Filter::And(a, b) | Filter::Or(a, b) => {
                let mut paths = a.paths();
                paths.extend(b.paths());
                paths
            }
            Filter::Not(inner) => inner.paths(),
            Filter::ValuePath { path, filter } => {
                filter.paths().into_iter().map(|sub| format!("{path}.{sub}")).collect()
            }
        }
    }

    /// Evaluates against a resource.
    pub fn matches<'a>(&self, resource: &dyn Attributes<'a>) -> bool {
        match self {
            Filter::Present { path } => !resource.values(path).is_empty(),
            Filter::Compare { path, op, value } => {
                resource.values(path).iter().any(|candidate| compare(candidate, *op, value))
            }
            Filter::And(a, b) => a.matches(resource) && b.matches(resource),
            Filter::Or(a, b) => a.matches(resource) || b.matches(resource),
            Filter::Not(inner) => !inner.matches(resource),
            Filter::ValuePath { path, filter } => resource.elements(path).iter().any(|element| filter.matches(element)),
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
                    // A value path `emails[type eq "work"]` stays one word up to its `]` (a `]`
                    // inside a quoted string does not end it).
                    if c == '[' {
                        let (mut in_string, mut escaped, mut closed) = (false, false, false);
                        for inner in chars.by_ref() {
                            word.push(inner);
                            match inner {
                                _ if escaped => escaped = false,
                                '\\' if in_string => escaped = true,
                                '"' => in_string = !in_string,
                                ']' if !in_string => {
                                    closed = true;
                                    break;
                                }
                                _ => {}
                            }
                        }
                        if !closed {
                            return Err("missing ']' in filter".into());
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
            Some(Token::Word(word)) if word.contains('[') => {
                self.pos += 1;
                self.parse_value_path(&word)
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
                let op = compare_op(&op).ok_or_else(|| format!("unknown operator {op:?}"))?;
                let value = self.parse_value()?;
                Ok(Filter::Compare { path, op, value })
            }
            other => Err(format!("expected an attribute, found {other:?}")),
        }
    }

    /// `attr[filter]` (RFC 7644), plus two forms some clients send: `attr[filter] pr` (the
    /// same) and `attr[filter].sub op value` (an element matching both).
    fn parse_value_path(&mut self, word: &str) -> Result<Filter, String> {
        let (path, rest) = word.split_once('[').expect("the caller checked for '['");
        let close = rest.rfind(']').ok_or("missing ']' in filter")?;
        let (inner, after) = (&rest[..close], &rest[close + 1..]);
        let path = normalise_path(path);
        if path.is_empty() || path.contains('.') {
            return Err(format!("invalid value path {word:?}"));
        }
        let mut filter = Filter::parse(inner)?;
        let next_op = match self.tokens.get(self.pos) {
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("pr") || compare_op(&w.to_ascii_lowercase()).is_some() => {
                Some(w.to_ascii_lowercase())
            }
            _ => None,
        };
        match (after.strip_prefix('.'), next_op) {
            (None, None) if after.is_empty() => {}
            (None, Some(op)) if after.is_empty() && op == "pr" => self.pos += 1,
            (Some(sub), Some(op)) if !sub.is_empty() && !sub.contains(['.', '[', ']']) => {
                self.pos += 1;
                let sub = sub.to_ascii_lowercase();
                let condition = match compare_op(&op) {
                    None => Filter::Present { path: sub },
                    Some(op) => Filter::Compare { path: sub, op, value: self.parse_value()? },
                };
                filter = Filter::And(Box::new(filter), Box::new(condition));
            }
            _ => return Err(format!("invalid value path {word:?}")),
        }
        Ok(Filter::ValuePath { path, filter: Box::new(filter) })
    }

    fn parse_value(&mut self) -> Result<Literal, String> {
        let value = match self.tokens.get(self.pos) {
            Some(Token::Str(s)) => Literal::Str(s.clone()),
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("true") => Literal::Bool(true),
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("false") => Literal::Bool(false),
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("null") => Literal::Null,
            Some(Token::Word(w)) => Literal::Num(w.parse().map_err(|_| format!("invalid value {w:?} in filter"))?),
            other => return Err(format!("expected a value, found {other:?}")),
        };
        self.pos += 1;
        Ok(value)
    }
}

fn compare_op(op: &str) -> Option<CompareOp> {
    Some(match op {
        "eq" => CompareOp::Eq,
        "ne" => CompareOp::Ne,
        "co" => CompareOp::Co,
        "sw" => CompareOp::Sw,
        "ew" => CompareOp::Ew,
        "gt" => CompareOp::Gt,
        "ge" => CompareOp::Ge,
        "lt" => CompareOp::Lt,
        "le" => CompareOp::Le,
        _ => return None,
    })
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

    fn member(id: &str) -> Element<'_> {
        Element(vec![("value", AttrValue::Str { value: id, case_exact: true })])
    }

    struct Group(Vec<&'static str>);

    impl<'a> Attributes<'a> for &'a Group {
        fn values(&self, _: &str) -> Vec<AttrValue<'a>> {
            Vec::new()
        }
        fn elements(&self, path: &str) -> Vec<Element<'a>> {
            if path == "members" { self.0.iter().map(|id| member(id)).collect() } else { Vec::new() }
        }
    }

    #[test]
    fn value_paths_match_one_element() {
        let f = Filter::parse(r#"members[value eq "ABC"]"#).unwrap();
        assert_eq!(
            f,
            Filter::ValuePath {
                path: "members".into(),
                filter: Box::new(Filter::Compare {
                    path: "value".into(),
                    op: CompareOp::Eq,
                    value: Literal::Str("ABC".into())
                }),
            }
        );
        assert_eq!(f.paths(), ["members.value"]);
        assert!(f.matches(&&Group(vec!["XYZ", "ABC"])));
        assert!(!f.matches(&&Group(vec!["abc"])), "ids are case-exact");
        assert!(!f.matches(&&Group(vec![])));
        // A plain `Fn` resource has no elements: the value path matches nothing.
        assert!(!f.matches(&|_: &str| vec![AttrValue::Str { value: "ABC", case_exact: true }]));

        let urn =
            Filter::parse(r#"urn:ietf:params:scim:schemas:core:2.0:Group:members[value eq "A]B"] and displayName pr"#);
        let Ok(Filter::And(left, _)) = urn else { panic!("{urn:?}") };
        assert!(matches!(*left, Filter::ValuePath { ref path, ref filter }
            if path == "members" && filter.paths() == ["value"] && matches!(**filter, Filter::Compare { ref value, .. } if *value == Literal::Str("A]B".into()))));

        let sub = Filter::parse(r#"emails[type eq "work"].value eq "a@b""#).unwrap();
        assert_eq!(sub.paths(), ["emails.type", "emails.value"]);
    }

    #[test]
    fn malformed_value_paths_are_errors() {
        for bad in [
            r#"members[value eq "x""#,
            r#"members[value eq "x"] eq "y""#,
            r#"members[value eq "x"].value"#,
            r#"[value eq "x"]"#,
            r#"name.x[value eq "x"]"#,
            "members[]",
        ] {
            assert!(Filter::parse(bad).is_err(), "{bad:?} should not parse");
        }
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
