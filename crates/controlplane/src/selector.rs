//! Kubernetes label and field selectors: upstream's syntax, error messages and matching.
//!
//! Label selectors follow `k8s.io/apimachinery/pkg/labels` (`Parse`): the same lexer, the same
//! recursive-descent parser, the same key/value validation and the same messages (`unable to
//! parse requirement: ...`, `found '<token>', expected: ...`). Field selectors follow
//! `k8s.io/apimachinery/pkg/fields` (`ParseSelector`) for the syntax and the registries'
//! field-label conversion functions and `ToSelectableFields` for which fields each resource
//! accepts and how their values are rendered.

use std::borrow::Cow;
use std::collections::BTreeSet;

use serde_json::{Map, Number, Value};

/// A selector that cannot be parsed or asks for an unsupported field. The text is the message
/// upstream gives; callers answer it as a 400 `BadRequest` status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SelectorError(pub String);

// ---------------------------------------------------------------------------------------------
// Label selectors
// ---------------------------------------------------------------------------------------------

/// A parsed `labelSelector`: the conjunction of its requirements over `metadata.labels`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    requirements: Vec<LabelRequirement>,
}

impl LabelSelector {
    /// Parses `labelSelector` (`a=b,c!=d,e in (x,y),f notin (z),g,!h`, `==` too; empty = everything).
    ///
    /// Upstream's `>`/`<` integer comparisons (`replicas>1`) are accepted as well, and so are its
    /// quirks: `x in ()` means "x is the empty string", `in`/`notin` may be keys or values.
    pub fn parse(text: &str) -> Result<Self, SelectorError> {
        let mut requirements = Parser::new(text).parse().map_err(SelectorError)?;
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(Self { requirements })
    }

    /// Whether an object's `metadata.labels` satisfy every requirement. A label whose value is
    /// not a JSON string counts as absent.
    pub fn matches(&self, object: &Value) -> bool {
        let labels = object
            .get("metadata")
            .and_then(|metadata| metadata.get("labels"))
            .and_then(Value::as_object);
        self.requirements.iter().all(|r| r.matches(labels))
    }

    /// True when it selects everything.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }
}

/// `selection.Operator`, with `=` and `==` folded together (they mean the same).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LabelOperator {
    Exists,
    DoesNotExist,
    Equals,
    NotEquals,
    In,
    NotIn,
    GreaterThan,
    LessThan,
}

/// One `key <op> values` term.
#[derive(Debug, Clone, PartialEq, Eq)]
struct LabelRequirement {
    key: String,
    operator: LabelOperator,
    /// Sorted and de-duplicated, as upstream's `sets.String.List()` leaves them.
    values: Vec<String>,
}

impl LabelRequirement {
    fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        let value = labels
            .and_then(|labels| labels.get(&self.key))
            .and_then(Value::as_str);
        let listed = |v: &str| self.values.iter().any(|x| x == v);
        match self.operator {
            LabelOperator::Exists => value.is_some(),
            LabelOperator::DoesNotExist => value.is_none(),
            LabelOperator::Equals | LabelOperator::In => value.is_some_and(listed),
            LabelOperator::NotEquals | LabelOperator::NotIn => !value.is_some_and(listed),
            LabelOperator::GreaterThan | LabelOperator::LessThan => {
                let actual = value.and_then(|v| v.parse::<i64>().ok());
                let bound = self.values.first().and_then(|v| v.parse::<i64>().ok());
                match (actual, bound) {
                    (Some(actual), Some(bound)) if self.operator == LabelOperator::GreaterThan => {
                        actual > bound
                    }
                    (Some(actual), Some(bound)) => actual < bound,
                    _ => false,
                }
            }
        }
    }
}

/// The lexer's tokens (upstream `labels.Token`, less the unreachable `ErrorToken`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    EndOfString,
    ClosedPar,
    Comma,
    DoesNotExist,
    DoubleEquals,
    Equals,
    GreaterThan,
    Identifier,
    In,
    LessThan,
    NotEquals,
    NotIn,
    OpenPar,
}

/// Where the parser is: in `Values`, the keywords `in`/`notin` are plain identifiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Context {
    KeyAndOperator,
    Values,
}

fn is_whitespace(ch: u8) -> bool {
    matches!(ch, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_special_symbol(ch: u8) -> bool {
    matches!(ch, b'=' | b'!' | b'(' | b')' | b',' | b'>' | b'<')
}

/// Byte-wise lexer with upstream's behaviour, including that a NUL byte reads as end of input.
struct Lexer<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Lexer<'a> {
    /// The next byte (0 at the end), advancing past it if there is one.
    fn read(&mut self) -> u8 {
        match self.text.as_bytes().get(self.pos) {
            Some(&byte) => {
                self.pos += 1;
                byte
            }
            None => 0,
        }
    }

    fn unread(&mut self) {
        self.pos = self.pos.saturating_sub(1);
    }

    /// Token boundaries are ASCII bytes, so they are always `char` boundaries.
    fn slice(&self, start: usize, end: usize) -> &'a str {
        self.text.get(start..end).unwrap_or("")
    }

    fn lex(&mut self) -> (Token, &'a str) {
        let mut ch = self.read();
        while is_whitespace(ch) {
            ch = self.read();
        }
        if ch == 0 {
            return (Token::EndOfString, "");
        }
        self.unread();
        if is_special_symbol(ch) {
            self.scan_special_symbol()
        } else {
            self.scan_identifier_or_keyword()
        }
    }

    fn scan_identifier_or_keyword(&mut self) -> (Token, &'a str) {
        let start = self.pos;
        let end = loop {
            let before = self.pos;
            let ch = self.read();
            if ch == 0 {
                break before;
            }
            if is_special_symbol(ch) || is_whitespace(ch) {
                self.unread();
                break before;
            }
        };
        let literal = self.slice(start, end);
        let token = match literal {
            "in" => Token::In,
            "notin" => Token::NotIn,
            _ => Token::Identifier,
        };
        (token, literal)
    }

    /// The longest operator at the cursor: `!=` and `==` are the only two-byte ones.
    fn scan_special_symbol(&mut self) -> (Token, &'a str) {
        let start = self.pos;
        let first = self.read();
        let mut token = match first {
            b'=' => Token::Equals,
            b'!' => Token::DoesNotExist,
            b'(' => Token::OpenPar,
            b')' => Token::ClosedPar,
            b',' => Token::Comma,
            b'>' => Token::GreaterThan,
            _ => Token::LessThan,
        };
        let mut end = self.pos;
        match (first, self.read()) {
            (_, 0) => {}
            (b'!' | b'=', b'=') => {
                token = if first == b'!' {
                    Token::NotEquals
                } else {
                    Token::DoubleEquals
                };
                end = self.pos;
                if self.read() != 0 {
                    self.unread();
                }
            }
            _ => self.unread(),
        }
        (token, self.slice(start, end))
    }
}

/// The operators upstream lists when it expected one (`selection` names, in its order).
const BINARY_OPERATORS: &str = "in, notin, =, ==, !=, gt, lt";

/// Upstream's label-selector parser over the scanned tokens.
struct Parser<'a> {
    items: Vec<(Token, &'a str)>,
    position: usize,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Self {
        let mut lexer = Lexer { text, pos: 0 };
        let mut items = Vec::new();
        loop {
            let item = lexer.lex();
            items.push(item);
            if item.0 == Token::EndOfString {
                break;
            }
        }
        Self { items, position: 0 }
    }

    fn lookahead(&self, context: Context) -> (Token, &'a str) {
        let (token, literal) = self
            .items
            .get(self.position)
            .copied()
            .unwrap_or((Token::EndOfString, ""));
        match token {
            Token::In | Token::NotIn if context == Context::Values => (Token::Identifier, literal),
            _ => (token, literal),
        }
    }

    fn consume(&mut self, context: Context) -> (Token, &'a str) {
        let item = self.lookahead(context);
        self.position += 1;
        item
    }

    fn parse(&mut self) -> Result<Vec<LabelRequirement>, String> {
        let mut requirements = Vec::new();
        loop {
            let (token, literal) = self.lookahead(Context::Values);
            match token {
                Token::Identifier | Token::DoesNotExist => {
                    let requirement = self
                        .parse_requirement()
                        .map_err(|e| format!("unable to parse requirement: {e}"))?;
                    requirements.push(requirement);
                    let (token, literal) = self.consume(Context::Values);
                    match token {
                        Token::EndOfString => return Ok(requirements),
                        Token::Comma => {
                            let (next, next_literal) = self.lookahead(Context::Values);
                            if next != Token::Identifier && next != Token::DoesNotExist {
                                return Err(format!(
                                    "found '{next_literal}', expected: identifier after ','"
                                ));
                            }
                        }
                        _ => {
                            return Err(format!(
                                "found '{literal}', expected: ',' or 'end of string'"
                            ))
                        }
                    }
                }
                Token::EndOfString => return Ok(requirements),
                _ => {
                    return Err(format!(
                        "found '{literal}', expected: !, identifier, or 'end of string'"
                    ))
                }
            }
        }
    }

    fn parse_requirement(&mut self) -> Result<LabelRequirement, String> {
        let (key, operator) = self.parse_key_and_infer_operator()?;
        if let Some(operator) = operator {
            return new_requirement(key, operator, BTreeSet::new());
        }
        let operator = self.parse_operator()?;
        let values = match operator {
            LabelOperator::In | LabelOperator::NotIn => self.parse_values()?,
            _ => self.parse_exact_value()?,
        };
        new_requirement(key, operator, values)
    }

    /// The key, and `Exists`/`DoesNotExist` when no binary operator follows it.
    fn parse_key_and_infer_operator(&mut self) -> Result<(&'a str, Option<LabelOperator>), String> {
        let mut operator = None;
        let (mut token, mut literal) = self.consume(Context::Values);
        if token == Token::DoesNotExist {
            operator = Some(LabelOperator::DoesNotExist);
            (token, literal) = self.consume(Context::Values);
        }
        if token != Token::Identifier {
            return Err(format!("found '{literal}', expected: identifier"));
        }
        let problems = label_key_errors(literal);
        if !problems.is_empty() {
            // Upstream's `labels.Parse` has no field path, which prints as `<nil>`.
            return Err(invalid_value("<nil>", literal, &problems.join("; ")));
        }
        let (next, _) = self.lookahead(Context::Values);
        if (next == Token::EndOfString || next == Token::Comma) && operator.is_none() {
            operator = Some(LabelOperator::Exists);
        }
        Ok((literal, operator))
    }

    fn parse_operator(&mut self) -> Result<LabelOperator, String> {
        let (token, literal) = self.consume(Context::KeyAndOperator);
        match token {
            Token::In => Ok(LabelOperator::In),
            Token::Equals | Token::DoubleEquals => Ok(LabelOperator::Equals),
            Token::GreaterThan => Ok(LabelOperator::GreaterThan),
            Token::LessThan => Ok(LabelOperator::LessThan),
            Token::NotIn => Ok(LabelOperator::NotIn),
            Token::NotEquals => Ok(LabelOperator::NotEquals),
            _ => Err(format!("found '{literal}', expected: {BINARY_OPERATORS}")),
        }
    }

    /// A parenthesised set: `(a,b)`; `()`, `(,a)`, `(a,)` and `(a,,b)` include the empty string.
    fn parse_values(&mut self) -> Result<BTreeSet<&'a str>, String> {
        let (token, literal) = self.consume(Context::Values);
        if token != Token::OpenPar {
            return Err(format!("found '{literal}' expected: '('"));
        }
        let (token, literal) = self.lookahead(Context::Values);
        match token {
            Token::Identifier | Token::Comma => {
                let values = self.parse_identifiers_list()?;
                if self.consume(Context::Values).0 != Token::ClosedPar {
                    return Err(format!("found '{literal}', expected: ')'"));
                }
                Ok(values)
            }
            Token::ClosedPar => {
                self.consume(Context::Values);
                Ok(BTreeSet::from([""]))
            }
            _ => Err(format!(
                "found '{literal}', expected: ',', ')' or identifier"
            )),
        }
    }

    fn parse_identifiers_list(&mut self) -> Result<BTreeSet<&'a str>, String> {
        let mut values = BTreeSet::new();
        loop {
            let (token, literal) = self.consume(Context::Values);
            match token {
                Token::Identifier => {
                    values.insert(literal);
                    let (next, next_literal) = self.lookahead(Context::Values);
                    match next {
                        Token::Comma => {}
                        Token::ClosedPar => return Ok(values),
                        _ => return Err(format!("found '{next_literal}', expected: ',' or ')'")),
                    }
                }
                Token::Comma => {
                    if values.is_empty() {
                        values.insert("");
                    }
                    match self.lookahead(Context::Values).0 {
                        Token::ClosedPar => {
                            values.insert("");
                            return Ok(values);
                        }
                        Token::Comma => {
                            values.insert("");
                        }
                        _ => {}
                    }
                }
                _ => return Err(format!("found '{literal}', expected: ',', or identifier")),
            }
        }
    }

    /// The single value after `=`, `==`, `!=`, `>` or `<`; nothing means the empty string.
    fn parse_exact_value(&mut self) -> Result<BTreeSet<&'a str>, String> {
        let (token, _) = self.lookahead(Context::Values);
        if token == Token::EndOfString || token == Token::Comma {
            return Ok(BTreeSet::from([""]));
        }
        let (token, literal) = self.consume(Context::Values);
        if token == Token::Identifier {
            Ok(BTreeSet::from([literal]))
        } else {
            Err(format!("found '{literal}', expected: identifier"))
        }
    }
}

/// Upstream `NewRequirement`'s checks that the parser can trip (the key is already checked):
/// integer values for `>`/`<`, then every value a valid label value.
fn new_requirement(
    key: &str,
    operator: LabelOperator,
    values: BTreeSet<&str>,
) -> Result<LabelRequirement, String> {
    let values: Vec<String> = values.into_iter().map(str::to_owned).collect();
    let mut errors = Vec::new();
    if matches!(
        operator,
        LabelOperator::GreaterThan | LabelOperator::LessThan
    ) {
        for (i, value) in values.iter().enumerate() {
            if value.parse::<i64>().is_err() {
                errors.push(invalid_value(
                    &format!("values[{i}]"),
                    value,
                    "for 'Gt', 'Lt' operators, the value must be an integer",
                ));
            }
        }
    }
    for (i, value) in values.iter().enumerate() {
        let problems = label_value_errors(value);
        if !problems.is_empty() {
            errors.push(invalid_value(
                &format!("values[{i}][{key}]"),
                value,
                &problems.join("; "),
            ));
        }
    }
    if errors.is_empty() {
        Ok(LabelRequirement {
            key: key.to_owned(),
            operator,
            values,
        })
    } else {
        Err(aggregate(errors))
    }
}

/// `field.Invalid(path, value, detail).Error()`.
fn invalid_value(path: &str, value: &str, detail: &str) -> String {
    format!("{path}: Invalid value: {}: {detail}", go_quote(value))
}

/// `utilerrors.NewAggregate(errs).Error()`: one message as is, several de-duplicated in brackets.
fn aggregate(errors: Vec<String>) -> String {
    let mut unique: Vec<String> = Vec::with_capacity(errors.len());
    for error in errors {
        if !unique.contains(&error) {
            unique.push(error);
        }
    }
    if unique.len() == 1 {
        unique.concat()
    } else {
        format!("[{}]", unique.join(", "))
    }
}

const LABEL_KEY_FORMAT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const LABEL_KEY_MESSAGE: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const LABEL_VALUE_FORMAT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const LABEL_VALUE_MESSAGE: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const DNS1123_SUBDOMAIN_FORMAT: &str =
    r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS1123_SUBDOMAIN_MESSAGE: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
const LABEL_MAX_LENGTH: usize = 63;
const DNS1123_SUBDOMAIN_MAX_LENGTH: usize = 253;

/// `content.RegexError`, examples and all (including upstream's doubled space before "or").
fn regex_error(message: &str, format: &str, examples: &[&str]) -> String {
    let examples: Vec<String> = examples.iter().map(|e| format!("'{e}', ")).collect();
    format!(
        "{message} (e.g. {}regex used for validation is '{format}')",
        examples.join(" or ")
    )
}

fn max_length_error(length: usize) -> String {
    format!("must be no more than {length} bytes")
}

/// Matches `^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$`.
fn is_label_name(s: &str) -> bool {
    let bytes = s.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        }
        _ => false,
    }
}

/// Matches the RFC 1123 subdomain pattern: dot-separated lowercase DNS labels.
fn is_dns1123_subdomain(s: &str) -> bool {
    s.split('.').all(|label| {
        let bytes = label.as_bytes();
        let edge = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
        match (bytes.first(), bytes.last()) {
            (Some(first), Some(last)) => {
                edge(first) && edge(last) && bytes.iter().all(|b| edge(b) || *b == b'-')
            }
            _ => false,
        }
    })
}

/// `content.IsLabelKey`: `[prefix/]name`, prefix a DNS subdomain, name at most 63 bytes.
fn label_key_errors(key: &str) -> Vec<String> {
    let parts: Vec<&str> = key.split('/').collect();
    let mut errors = Vec::new();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errors.push("prefix part must be non-empty".to_owned());
            } else {
                if prefix.len() > DNS1123_SUBDOMAIN_MAX_LENGTH {
                    errors.push(format!(
                        "prefix part {}",
                        max_length_error(DNS1123_SUBDOMAIN_MAX_LENGTH)
                    ));
                }
                if !is_dns1123_subdomain(prefix) {
                    errors.push(format!(
                        "prefix part {}",
                        regex_error(
                            DNS1123_SUBDOMAIN_MESSAGE,
                            DNS1123_SUBDOMAIN_FORMAT,
                            &["example.com"]
                        )
                    ));
                }
            }
            *name
        }
        _ => {
            return vec![format!(
                "a valid label key {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(
                    LABEL_KEY_MESSAGE,
                    LABEL_KEY_FORMAT,
                    &["MyName", "my.name", "123-abc"]
                )
            )]
        }
    };
    if name.is_empty() {
        errors.push("name part must be non-empty".to_owned());
    } else if name.len() > LABEL_MAX_LENGTH {
        errors.push(format!("name part {}", max_length_error(LABEL_MAX_LENGTH)));
    }
    if !is_label_name(name) {
        errors.push(format!(
            "name part {}",
            regex_error(
                LABEL_KEY_MESSAGE,
                LABEL_KEY_FORMAT,
                &["MyName", "my.name", "123-abc"]
            )
        ));
    }
    errors
}

/// `content.IsLabelValue`: empty, or a label name of at most 63 bytes.
fn label_value_errors(value: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if value.len() > LABEL_MAX_LENGTH {
        errors.push(max_length_error(LABEL_MAX_LENGTH));
    }
    if !value.is_empty() && !is_label_name(value) {
        errors.push(regex_error(
            LABEL_VALUE_MESSAGE,
            LABEL_VALUE_FORMAT,
            &["MyValue", "my_value", "12345"],
        ));
    }
    errors
}

/// Go's `%q` (`strconv.Quote`) for valid UTF-8. Which code points count as printable follows
/// Go's `unicode.IsPrint` for controls, spaces and the common format characters.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if is_go_printable(c) => out.push(c),
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
    out
}

fn is_go_printable(c: char) -> bool {
    let code = c as u32;
    let format_or_private = matches!(
        code,
        0xAD | 0x600..=0x605
            | 0x61C
            | 0x6DD
            | 0x70F
            | 0x180E
            | 0x200B..=0x200F
            | 0x202A..=0x202E
            | 0x2060..=0x206F
            | 0xE000..=0xF8FF
            | 0xFEFF
            | 0xFDD0..=0xFDEF
            | 0xFFF9..=0xFFFB
            | 0xF0000..=0x10FFFF
    ) || code & 0xFFFE == 0xFFFE;
    c == ' ' || !(c.is_control() || c.is_whitespace() || format_or_private)
}

// ---------------------------------------------------------------------------------------------
// Field selectors
// ---------------------------------------------------------------------------------------------

/// A parsed `fieldSelector`: the conjunction of `field=value` / `field!=value` terms.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    /// In upstream's order: sorted by the raw term text.
    requirements: Vec<FieldRequirement>,
}

/// One `field=value` (`equals`) or `field!=value` term, value unescaped.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FieldRequirement {
    field: String,
    equals: bool,
    value: String,
}

impl FieldSelector {
    /// Parses `fieldSelector` (`metadata.name=x,status.phase!=Running`; `=`/`==`/`!=`; `\` escapes `,` `=` `\`).
    ///
    /// The field is everything before the first operator, taken literally (no trimming).
    pub fn parse(text: &str) -> Result<Self, SelectorError> {
        let mut terms = split_terms(text);
        terms.sort_unstable();
        let mut requirements = Vec::with_capacity(terms.len());
        for term in terms.into_iter().filter(|term| !term.is_empty()) {
            let Some((field, operator, raw_value)) = split_term(term) else {
                return Err(SelectorError(format!(
                    "invalid selector: '{text}'; can't understand '{term}'"
                )));
            };
            requirements.push(FieldRequirement {
                field: field.to_owned(),
                equals: operator != "!=",
                value: unescape_value(raw_value)?,
            });
        }
        Ok(Self { requirements })
    }

    /// Checks every field is selectable for the resource (`group`, `plural`), as upstream's
    /// field-label conversion functions decide; `extra` lists additional selectable JSON paths
    /// (CRD `selectableFields`, with or without the leading `.`).
    ///
    /// Built-ins with their own list: pods, nodes, replicationcontrollers, events (core and
    /// `events.k8s.io`), namespaces, secrets, services, `batch` jobs and `certificates.k8s.io`
    /// certificatesigningrequests, clustertrustbundles and podcertificaterequests. Other built-ins
    /// allow `metadata.name` and `metadata.namespace` only; so do custom resources, plus `extra`.
    /// Unsupported → `SelectorError` with upstream's message for that resource: mostly
    /// `field label not supported: <f>`; `"<f>" is not a known field selector: only
    /// "metadata.name", "metadata.namespace"` for built-ins without a list (e.g. configmaps,
    /// apps replicasets); `field label "<f>" not supported for Job` for jobs. The first offending
    /// term in upstream's order (sorted term text) is the one reported. (Upstream also refuses
    /// `metadata.namespace` for cluster-scoped custom resources; the scope is not known here.)
    pub fn check_supported(
        &self,
        group: &str,
        plural: &str,
        extra: &[String],
    ) -> Result<(), SelectorError> {
        let rules = FieldRules::for_resource(group, plural);
        for requirement in &self.requirements {
            let field = requirement.field.as_str();
            let in_extra = extra
                .iter()
                .any(|path| path.strip_prefix('.').unwrap_or(path) == field);
            if !in_extra && !rules.allows(field) {
                return Err(SelectorError(rules.complaint.message(field)));
            }
        }
        Ok(())
    }

    /// Whether the object's fields satisfy every requirement, values compared as upstream renders
    /// them.
    ///
    /// Objects of custom resources (an `apiVersion` outside the built-in groups) are read at the
    /// literal JSON path: strings as-is, booleans `true`/`false`, numbers in decimal, a missing
    /// field as `""`. Built-in objects (or objects without `apiVersion`) are rendered like
    /// upstream's typed `ToSelectableFields`: `spec.hostNetwork`/`spec.unschedulable` default to
    /// `false`, `status.replicas` to `0`; `status.successful` is a job's `status.succeeded`
    /// (default `0`); `spec.host` is `spec.nodeName`; `status.podIP` is the primary pod IP;
    /// `status.podIPs` is always `""` (upstream accepts the label but never fills it); event
    /// fields read either the core (`involvedObject`, `reportingComponent`, `source.component`)
    /// or the `events.k8s.io` shape (`regarding`, `reportingController`,
    /// `deprecatedSource.component`).
    pub fn matches(&self, object: &Value) -> bool {
        let builtin = is_builtin_object(object);
        self.requirements.iter().all(|requirement| {
            let actual = if builtin {
                builtin_field_value(object, canonical_label(&requirement.field))
            } else {
                render(lookup(object, &requirement.field))
            };
            (actual == requirement.value.as_str()) == requirement.equals
        })
    }

    /// True when it selects everything.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// The exact value required for `field` by an `=`/`==` requirement, if any (lets callers narrow a
    /// list to one key for `metadata.name=x`). Aliases count: `spec.host` for `spec.nodeName`,
    /// `regarding.*` for `involvedObject.*`, `reportingController` for `reportingComponent`.
    pub fn required_value(&self, field: &str) -> Option<&str> {
        let wanted = canonical_label(field);
        self.requirements
            .iter()
            .find(|r| r.equals && canonical_label(&r.field) == wanted)
            .map(|r| r.value.as_str())
    }
}

/// Upstream `splitTerms`: split at commas not escaped by a backslash (escapes are kept).
fn split_terms(text: &str) -> Vec<&str> {
    if text.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut in_slash = false;
    for (i, c) in text.char_indices() {
        if in_slash {
            in_slash = false;
        } else if c == '\\' {
            in_slash = true;
        } else if c == ',' {
            terms.push(text.get(start..i).unwrap_or(""));
            start = i + 1;
        }
    }
    terms.push(text.get(start..).unwrap_or(""));
    terms
}

/// Upstream `splitTerm`: the first `!=`, `==` or `=` splits the term (no escaping on the left).
fn split_term(term: &str) -> Option<(&str, &'static str, &str)> {
    for (i, _) in term.char_indices() {
        let (field, rest) = term.split_at_checked(i)?;
        for operator in ["!=", "==", "="] {
            if let Some(value) = rest.strip_prefix(operator) {
                return Some((field, operator, value));
            }
        }
    }
    None
}

/// Upstream `UnescapeValue`: `\\`, `\,` and `\=` are the only escapes; bare `,`/`=` are errors.
fn unescape_value(raw: &str) -> Result<String, SelectorError> {
    let mut value = String::with_capacity(raw.len());
    let mut in_slash = false;
    for c in raw.chars() {
        if in_slash {
            if !matches!(c, '\\' | ',' | '=') {
                return Err(SelectorError(format!(
                    "invalid field selector: invalid escape sequence: \\{c}"
                )));
            }
            value.push(c);
            in_slash = false;
        } else {
            match c {
                '\\' => in_slash = true,
                ',' | '=' => {
                    // Go prints the rune with %v: its code point in decimal.
                    return Err(SelectorError(format!(
                        "invalid field selector: unescaped character in value: {}",
                        c as u32
                    )));
                }
                _ => value.push(c),
            }
        }
    }
    if in_slash {
        return Err(SelectorError(
            "invalid field selector: invalid escape sequence: \\".to_owned(),
        ));
    }
    Ok(value)
}

/// The API groups kube-apiserver serves itself; any other group is a custom resource's.
const BUILTIN_GROUPS: &[&str] = &[
    "",
    "admissionregistration.k8s.io",
    "apiextensions.k8s.io",
    "apiregistration.k8s.io",
    "apps",
    "authentication.k8s.io",
    "authorization.k8s.io",
    "autoscaling",
    "batch",
    "certificates.k8s.io",
    "coordination.k8s.io",
    "discovery.k8s.io",
    "events.k8s.io",
    "extensions",
    "flowcontrol.apiserver.k8s.io",
    "internal.apiserver.k8s.io",
    "networking.k8s.io",
    "node.k8s.io",
    "policy",
    "rbac.authorization.k8s.io",
    "resource.k8s.io",
    "scheduling.k8s.io",
    "storage.k8s.io",
    "storagemigration.k8s.io",
];

const POD_FIELDS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "spec.hostNetwork",
    "status.phase",
    "status.podIP",
    "status.podIPs",
    "status.nominatedNodeName",
    "spec.host",
];
const NODE_FIELDS: &[&str] = &["metadata.name", "spec.unschedulable"];
const REPLICATION_CONTROLLER_FIELDS: &[&str] =
    &["metadata.name", "metadata.namespace", "status.replicas"];
const CORE_EVENT_FIELDS: &[&str] = &[
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
    "metadata.namespace",
    "metadata.name",
];
const EVENTS_API_EVENT_FIELDS: &[&str] = &[
    "reason",
    "regarding.kind",
    "regarding.namespace",
    "regarding.name",
    "regarding.uid",
    "regarding.apiVersion",
    "regarding.resourceVersion",
    "regarding.fieldPath",
    "reportingController",
    "source",
    "type",
    "metadata.namespace",
    "metadata.name",
];
const NAMESPACE_FIELDS: &[&str] = &["status.phase", "metadata.name"];
const SECRET_FIELDS: &[&str] = &["type", "metadata.namespace", "metadata.name"];
const SERVICE_FIELDS: &[&str] = &[
    "metadata.namespace",
    "metadata.name",
    "spec.clusterIP",
    "spec.type",
];
const JOB_FIELDS: &[&str] = &["metadata.name", "metadata.namespace", "status.successful"];
const SIGNER_FIELDS: &[&str] = &["metadata.name", "spec.signerName"];
const POD_CERTIFICATE_REQUEST_FIELDS: &[&str] = &[
    "metadata.name",
    "spec.signerName",
    "spec.podName",
    "spec.nodeName",
];

/// Field labels that upstream's conversion functions rename before matching.
const LABEL_ALIASES: &[(&str, &str)] = &[
    ("spec.host", "spec.nodeName"),
    ("regarding.kind", "involvedObject.kind"),
    ("regarding.namespace", "involvedObject.namespace"),
    ("regarding.name", "involvedObject.name"),
    ("regarding.uid", "involvedObject.uid"),
    ("regarding.apiVersion", "involvedObject.apiVersion"),
    (
        "regarding.resourceVersion",
        "involvedObject.resourceVersion",
    ),
    ("regarding.fieldPath", "involvedObject.fieldPath"),
    ("reportingController", "reportingComponent"),
];

fn canonical_label(label: &str) -> &str {
    LABEL_ALIASES
        .iter()
        .find(|(alias, _)| *alias == label)
        .map_or(label, |(_, canonical)| canonical)
}

/// How upstream words an unsupported field label for a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Complaint {
    /// `field label not supported: <f>`: most kinds' conversion functions, and custom resources'.
    Conversion,
    /// `field label "<f>" not supported for Job`: batch/v1 Job's conversion function.
    JobConversion,
    /// `runtime.DefaultMetaV1FieldSelectorConversion`, for built-ins without a function.
    DefaultConversion,
}

impl Complaint {
    fn message(self, field: &str) -> String {
        match self {
            Complaint::Conversion => format!("field label not supported: {field}"),
            Complaint::JobConversion => {
                format!("field label {} not supported for Job", go_quote(field))
            }
            Complaint::DefaultConversion => format!(
                "{} is not a known field selector: only \"metadata.name\", \"metadata.namespace\"",
                go_quote(field)
            ),
        }
    }
}

/// The field labels a resource accepts, and how it refuses others.
struct FieldRules {
    /// `None`: `metadata.name` and `metadata.namespace`.
    fields: Option<&'static [&'static str]>,
    complaint: Complaint,
}

impl FieldRules {
    fn for_resource(group: &str, plural: &str) -> Self {
        let listed = |fields, complaint| Self {
            fields: Some(fields),
            complaint,
        };
        match (group, plural) {
            ("", "pods") => listed(POD_FIELDS, Complaint::Conversion),
            ("", "nodes") => listed(NODE_FIELDS, Complaint::Conversion),
            ("", "replicationcontrollers") => {
                listed(REPLICATION_CONTROLLER_FIELDS, Complaint::Conversion)
            }
            ("", "events") => listed(CORE_EVENT_FIELDS, Complaint::Conversion),
            ("", "namespaces") => listed(NAMESPACE_FIELDS, Complaint::Conversion),
            ("", "secrets") => listed(SECRET_FIELDS, Complaint::Conversion),
            ("", "services") => listed(SERVICE_FIELDS, Complaint::Conversion),
            ("events.k8s.io", "events") => listed(EVENTS_API_EVENT_FIELDS, Complaint::Conversion),
            ("batch", "jobs") => listed(JOB_FIELDS, Complaint::JobConversion),
            ("certificates.k8s.io", "certificatesigningrequests" | "clustertrustbundles") => {
                listed(SIGNER_FIELDS, Complaint::Conversion)
            }
            ("certificates.k8s.io", "podcertificaterequests") => {
                listed(POD_CERTIFICATE_REQUEST_FIELDS, Complaint::Conversion)
            }
            _ => Self {
                fields: None,
                complaint: if BUILTIN_GROUPS.contains(&group) {
                    Complaint::DefaultConversion
                } else {
                    Complaint::Conversion
                },
            },
        }
    }

    fn allows(&self, field: &str) -> bool {
        match self.fields {
            Some(fields) => fields.contains(&field),
            None => field == "metadata.name" || field == "metadata.namespace",
        }
    }
}

/// Whether the object belongs to a built-in API group (judged by its own `apiVersion`).
fn is_builtin_object(object: &Value) -> bool {
    object
        .get("apiVersion")
        .and_then(Value::as_str)
        .is_none_or(|api_version| {
            let group = api_version.rsplit_once('/').map_or("", |(group, _)| group);
            BUILTIN_GROUPS.contains(&group)
        })
}

/// The value at a dotted JSON path.
fn lookup<'a>(object: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .try_fold(object, |value, key| value.get(key))
}

/// A field value as upstream's field set holds it (`fmt.Sprint` of the unstructured value).
fn render(value: Option<&Value>) -> Cow<'_, str> {
    match value {
        None | Some(Value::Null) => Cow::Borrowed(""),
        Some(Value::String(s)) => Cow::Borrowed(s),
        Some(Value::Bool(b)) => Cow::Borrowed(if *b { "true" } else { "false" }),
        Some(Value::Number(n)) => Cow::Owned(number_text(n)),
        Some(other) => Cow::Owned(other.to_string()),
    }
}

/// Like `render`, but a missing or null field reads as a typed zero value.
fn render_or<'a>(value: Option<&'a Value>, zero: &'static str) -> Cow<'a, str> {
    match value {
        None | Some(Value::Null) => Cow::Borrowed(zero),
        some => render(some),
    }
}

fn number_text(number: &Number) -> String {
    if let Some(i) = number.as_i64() {
        i.to_string()
    } else if let Some(u) = number.as_u64() {
        u.to_string()
    } else {
        number.as_f64().map_or_else(|| number.to_string(), go_float)
    }
}

/// Go's `%v` for a float64: shortest digits, exponent form below 1e-4 and from 1e6 up.
fn go_float(f: f64) -> String {
    let scientific = format!("{f:e}");
    let Some((mantissa, exponent)) = scientific.split_once('e') else {
        return f.to_string();
    };
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if (-4..6).contains(&exponent) {
        f.to_string()
    } else {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exponent.unsigned_abs())
    }
}

/// A built-in object's field as its typed `ToSelectableFields` renders it (label canonical).
fn builtin_field_value<'a>(object: &'a Value, label: &str) -> Cow<'a, str> {
    match label {
        "spec.hostNetwork" | "spec.unschedulable" => render_or(lookup(object, label), "false"),
        "status.replicas" => render_or(lookup(object, label), "0"),
        "status.successful" => render_or(lookup(object, "status.succeeded"), "0"),
        "status.podIP" => {
            // Like the v1 → internal conversion: a set `podIP` wins, else the first `podIPs` entry.
            let primary = lookup(object, "status.podIP")
                .and_then(Value::as_str)
                .filter(|ip| !ip.is_empty());
            let first = || {
                lookup(object, "status.podIPs")
                    .and_then(|ips| ips.get(0))
                    .and_then(|ip| ip.get("ip"))
                    .and_then(Value::as_str)
            };
            Cow::Borrowed(primary.or_else(first).unwrap_or(""))
        }
        "status.podIPs" => Cow::Borrowed(""),
        "source" => render(
            lookup(object, "source.component")
                .or_else(|| lookup(object, "deprecatedSource.component")),
        ),
        "reportingComponent" => render(
            object
                .get("reportingComponent")
                .or_else(|| object.get("reportingController")),
        ),
        _ => match label.strip_prefix("involvedObject.") {
            Some(rest) => render(
                lookup(object, label).or_else(|| object.get("regarding").and_then(|r| r.get(rest))),
            ),
            None => render(lookup(object, label)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labelled(labels: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "labels": labels}})
    }

    fn label_matches(selector: &str, labels: Value) -> bool {
        LabelSelector::parse(selector)
            .unwrap_or_else(|e| panic!("{selector:?}: {e}"))
            .matches(&labelled(labels))
    }

    fn label_error(selector: &str) -> String {
        match LabelSelector::parse(selector) {
            Ok(parsed) => panic!("{selector:?} parsed: {parsed:?}"),
            Err(SelectorError(message)) => message,
        }
    }

    fn field_matches(selector: &str, object: &Value) -> bool {
        FieldSelector::parse(selector)
            .unwrap_or_else(|e| panic!("{selector:?}: {e}"))
            .matches(object)
    }

    fn field_error(selector: &str) -> String {
        match FieldSelector::parse(selector) {
            Ok(parsed) => panic!("{selector:?} parsed: {parsed:?}"),
            Err(SelectorError(message)) => message,
        }
    }

    fn unsupported(selector: &str, group: &str, plural: &str, extra: &[String]) -> Option<String> {
        FieldSelector::parse(selector)
            .unwrap_or_else(|e| panic!("{selector:?}: {e}"))
            .check_supported(group, plural, extra)
            .err()
            .map(|SelectorError(message)| message)
    }

    const NAME_PART_REGEX: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
    const VALUE_REGEX: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

    #[test]
    fn empty_label_selector_selects_everything() {
        for text in ["", "   ", " \t\r\n"] {
            let selector = LabelSelector::parse(text).unwrap();
            assert!(selector.is_empty());
            assert!(selector.matches(&json!({})));
            assert!(selector.matches(&labelled(json!({"a": "b"}))));
        }
        assert!(!LabelSelector::parse("a").unwrap().is_empty());
    }

    #[test]
    fn label_equality_operators() {
        for op in ["=", "=="] {
            assert!(label_matches(&format!("app{op}web"), json!({"app": "web"})));
            assert!(!label_matches(&format!("app{op}web"), json!({"app": "db"})));
            assert!(!label_matches(&format!("app{op}web"), json!({})));
        }
        assert!(label_matches("app!=web", json!({"app": "db"})));
        assert!(!label_matches("app!=web", json!({"app": "web"})));
        assert!(label_matches("app!=web", json!({"other": "web"})));
        // An empty value after the operator is the empty string.
        assert!(label_matches("app=", json!({"app": ""})));
        assert!(label_matches("app= ,b", json!({"app": "", "b": "x"})));
        assert!(!label_matches("app=", json!({"app": "x"})));
    }

    #[test]
    fn label_set_operators() {
        assert!(label_matches(
            "env in (prod,staging)",
            json!({"env": "staging"})
        ));
        assert!(!label_matches(
            "env in (prod,staging)",
            json!({"env": "dev"})
        ));
        assert!(!label_matches("env in (prod)", json!({})));
        assert!(label_matches("env notin (prod)", json!({"env": "dev"})));
        assert!(!label_matches(
            "env notin (prod, dev)",
            json!({"env": "dev"})
        ));
        assert!(label_matches("env notin (prod)", json!({})));
        // Upstream's empty-string members.
        assert!(label_matches("x in ()", json!({"x": ""})));
        assert!(label_matches("x in (,a)", json!({"x": ""})));
        assert!(label_matches("x in (a,)", json!({"x": ""})));
        assert!(label_matches("x in (a,,b)", json!({"x": ""})));
        assert!(label_matches(
            "x in (foo,,baz),y,z notin ()",
            json!({"x": "baz", "y": "1"})
        ));
        assert!(!label_matches("x in (a,b)", json!({"x": ""})));
    }

    #[test]
    fn label_existence_operators() {
        assert!(label_matches("app", json!({"app": "anything"})));
        assert!(label_matches("app", json!({"app": ""})));
        assert!(!label_matches("app", json!({"other": "x"})));
        assert!(label_matches("!app", json!({"other": "x"})));
        assert!(!label_matches("!app", json!({"app": ""})));
        // No labels at all, or labels that are not a map.
        let selector = LabelSelector::parse("!app,x notin (y),z!=w").unwrap();
        assert!(selector.matches(&json!({"metadata": {"name": "n"}})));
        assert!(selector.matches(&json!({"metadata": {"labels": null}})));
        assert!(!LabelSelector::parse("app").unwrap().matches(&json!({})));
        // A non-string label value counts as absent.
        assert!(label_matches("!app", json!({"app": 1})));
    }

    #[test]
    fn label_integer_comparisons() {
        assert!(label_matches("x>1", json!({"x": "2"})));
        assert!(!label_matches("x>1", json!({"x": "1"})));
        assert!(label_matches("x<1", json!({"x": "0"})));
        assert!(!label_matches("x<1", json!({"x": "2"})));
        assert!(!label_matches("x>1", json!({})));
        assert!(!label_matches("x>1", json!({"x": "two"})));
        assert!(label_matches("x>1,x<5", json!({"x": "3"})));
    }

    #[test]
    fn label_combinations_and_whitespace() {
        let labels = json!({"app": "web", "tier": "front", "example.com/team": "a-b_c.d"});
        assert!(label_matches(
            "app=web,tier in (front,back),!gone,example.com/team",
            labels.clone()
        ));
        assert!(label_matches(
            "  app = web ,\ttier\nin ( front , back ) , ! gone ,example.com/team==a-b_c.d ",
            labels.clone()
        ));
        assert!(!label_matches("app=web,tier=back", labels.clone()));
        assert!(!label_matches("app=web,gone", labels));
        // `in` and `notin` are identifiers where a key or value is expected.
        assert!(label_matches("notin=in", json!({"notin": "in"})));
        assert!(label_matches("in in (notin)", json!({"in": "notin"})));
        assert!(label_matches("in", json!({"in": "x"})));
        // Upstream's lexer reads a NUL byte as "end": where a token would start, it ends the
        // input; inside a token, it ends that token and is skipped.
        assert!(label_matches("a=b \0 (((", json!({"a": "b"})));
        assert!(label_matches("a=\0b", json!({"a": "b"})));
        assert!(!label_matches("a=b\0,c", json!({"a": "b"})));
        assert_eq!(
            label_error("a=b\0c"),
            "found 'c', expected: ',' or 'end of string'"
        );
        assert!(label_matches("a=b,\0c", json!({"a": "b", "c": ""})));
        assert_eq!(
            label_error("a=b, \0c"),
            "found '', expected: identifier after ','"
        );
    }

    #[test]
    fn label_syntax_errors() {
        let cases = [
            ("x==a==b", "found '==', expected: ',' or 'end of string'"),
            ("!x=a", "found '=', expected: ',' or 'end of string'"),
            ("a,", "found '', expected: identifier after ','"),
            ("a,,b", "found ',', expected: identifier after ','"),
            (
                ",a",
                "found ',', expected: !, identifier, or 'end of string'",
            ),
            (
                "=a",
                "found '=', expected: !, identifier, or 'end of string'",
            ),
            (
                "(a)",
                "found '(', expected: !, identifier, or 'end of string'",
            ),
            (
                "a b",
                "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt",
            ),
            (
                "a !b",
                "unable to parse requirement: found '!', expected: in, notin, =, ==, !=, gt, lt",
            ),
            (
                "a in b",
                "unable to parse requirement: found 'b' expected: '('",
            ),
            (
                "a in",
                "unable to parse requirement: found '' expected: '('",
            ),
            (
                "a in (",
                "unable to parse requirement: found '', expected: ',', ')' or identifier",
            ),
            (
                "a in (=)",
                "unable to parse requirement: found '=', expected: ',', ')' or identifier",
            ),
            (
                "a in (b",
                "unable to parse requirement: found '', expected: ',' or ')'",
            ),
            (
                "a in (b c)",
                "unable to parse requirement: found 'c', expected: ',' or ')'",
            ),
            (
                "a in (b,=)",
                "unable to parse requirement: found '=', expected: ',', or identifier",
            ),
            (
                "a=(",
                "unable to parse requirement: found '(', expected: identifier",
            ),
            (
                "a!=!",
                "unable to parse requirement: found '!', expected: identifier",
            ),
            (
                "!",
                "unable to parse requirement: found '', expected: identifier",
            ),
            (
                "!!a",
                "unable to parse requirement: found '!', expected: identifier",
            ),
            (
                "!=a",
                "found '!=', expected: !, identifier, or 'end of string'",
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(label_error(text), expected, "{text:?}");
        }
    }

    #[test]
    fn label_key_and_value_validation_errors() {
        assert_eq!(
            label_error("-a=b"),
            format!("unable to parse requirement: <nil>: Invalid value: \"-a\": {NAME_PART_REGEX}")
        );
        assert_eq!(
            label_error("a/=b"),
            format!(
                "unable to parse requirement: <nil>: Invalid value: \"a/\": name part must be non-empty; {NAME_PART_REGEX}"
            )
        );
        assert_eq!(
            label_error("/a"),
            "unable to parse requirement: <nil>: Invalid value: \"/a\": prefix part must be non-empty"
        );
        assert_eq!(
            label_error("Example.com/a"),
            "unable to parse requirement: <nil>: Invalid value: \"Example.com/a\": prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
        );
        assert!(label_error("a/b/c").starts_with(
            "unable to parse requirement: <nil>: Invalid value: \"a/b/c\": a valid label key must consist of alphanumeric characters"
        ));
        assert!(label_error("a/b/c").ends_with(
            "with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ));
        let long = "k".repeat(64);
        assert_eq!(
            label_error(&long),
            format!("unable to parse requirement: <nil>: Invalid value: \"{long}\": name part must be no more than 63 bytes")
        );
        assert!(LabelSelector::parse(&"k".repeat(63)).is_ok());
        assert!(LabelSelector::parse(&format!("{}/k", "a".repeat(253))).is_ok());
        assert!(label_error(&format!("{}/k", "a".repeat(254)))
            .contains("prefix part must be no more than 253 bytes"));

        assert_eq!(
            label_error("x=a||y=b"),
            format!(
                "unable to parse requirement: values[0][x]: Invalid value: \"a||y\": {VALUE_REGEX}"
            )
        );
        assert_eq!(
            label_error("x in (ok,-bad)"),
            format!(
                "unable to parse requirement: values[0][x]: Invalid value: \"-bad\": {VALUE_REGEX}"
            )
        );
        let long_value = "v".repeat(64);
        assert_eq!(
            label_error(&format!("x={long_value}")),
            format!("unable to parse requirement: values[0][x]: Invalid value: \"{long_value}\": must be no more than 63 bytes")
        );
        // Several problems are aggregated in brackets.
        assert_eq!(
            label_error("x in (a-,b-)"),
            format!(
                "unable to parse requirement: [values[0][x]: Invalid value: \"a-\": {VALUE_REGEX}, values[1][x]: Invalid value: \"b-\": {VALUE_REGEX}]"
            )
        );
        assert_eq!(
            label_error("x<a"),
            "unable to parse requirement: values[0]: Invalid value: \"a\": for 'Gt', 'Lt' operators, the value must be an integer"
        );
        assert_eq!(
            label_error("x>"),
            "unable to parse requirement: values[0]: Invalid value: \"\": for 'Gt', 'Lt' operators, the value must be an integer"
        );
        assert_eq!(
            label_error("x>-1"),
            format!(
                "unable to parse requirement: values[0][x]: Invalid value: \"-1\": {VALUE_REGEX}"
            )
        );
        // Non-ASCII and control bytes are quoted the way Go's %q does.
        assert!(label_error("é=x").contains("Invalid value: \"é\": "));
        assert!(label_error("a\u{1}=x").contains("Invalid value: \"a\\x01\": "));
        assert!(label_error("x=\u{a0}").contains("Invalid value: \"\\u00a0\": "));
    }

    #[test]
    fn go_quote_escapes_like_strconv_quote() {
        assert_eq!(go_quote(""), "\"\"");
        assert_eq!(go_quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(
            go_quote("\u{7}\u{8}\u{c}\u{b}\u{7f}"),
            "\"\\a\\b\\f\\v\\x7f\""
        );
        assert_eq!(go_quote("함 x"), "\"함 x\"");
        assert_eq!(go_quote("\u{feff}\u{10ffff}"), "\"\\ufeff\\U0010ffff\"");
    }

    #[test]
    fn field_selector_parses_operators_and_escapes() {
        let selector =
            FieldSelector::parse("metadata.name=a,status.phase!=Running,spec.nodeName==n1")
                .unwrap();
        assert!(!selector.is_empty());
        assert_eq!(selector.required_value("metadata.name"), Some("a"));
        assert_eq!(selector.required_value("spec.nodeName"), Some("n1"));
        assert_eq!(selector.required_value("status.phase"), None);
        assert_eq!(selector.required_value("metadata.namespace"), None);

        let escaped = FieldSelector::parse(r"metadata.name=a\,b\=c\\d,x=").unwrap();
        assert_eq!(escaped.required_value("metadata.name"), Some(r"a,b=c\d"));
        assert_eq!(escaped.required_value("x"), Some(""));
        // Empty terms are skipped; an empty selector selects everything.
        for text in ["", ",", ",,"] {
            assert!(FieldSelector::parse(text).unwrap().is_empty());
        }
        assert_eq!(
            FieldSelector::parse("a=1,,b=2").unwrap().requirements.len(),
            2
        );
        // The first operator splits; the rest belongs to the value.
        let bang = FieldSelector::parse("a!b=c").unwrap();
        assert_eq!(bang.required_value("a!b"), Some("c"));
        let multibyte = FieldSelector::parse("함=수,목=록").unwrap();
        assert_eq!(multibyte.required_value("목"), Some("록"));
        // A literal escaped backslash before a comma ends the value.
        let two = FieldSelector::parse(r"k=\\,k2=v2").unwrap();
        assert_eq!(two.required_value("k"), Some("\\"));
        assert_eq!(two.required_value("k2"), Some("v2"));
    }

    #[test]
    fn field_selector_syntax_errors() {
        assert_eq!(
            field_error("metadata.name"),
            "invalid selector: 'metadata.name'; can't understand 'metadata.name'"
        );
        assert_eq!(
            field_error("x=a,b"),
            "invalid selector: 'x=a,b'; can't understand 'b'"
        );
        assert_eq!(
            field_error("x in (a)"),
            "invalid selector: 'x in (a)'; can't understand 'x in (a)'"
        );
        assert_eq!(
            field_error("x==a==b"),
            "invalid field selector: unescaped character in value: 61"
        );
        assert_eq!(
            field_error("x=a=b"),
            "invalid field selector: unescaped character in value: 61"
        );
        assert_eq!(
            field_error(r"x=\a"),
            r"invalid field selector: invalid escape sequence: \a"
        );
        assert_eq!(
            field_error(r"x=a\"),
            r"invalid field selector: invalid escape sequence: \"
        );
        assert_eq!(
            field_error(r"x=\\\"),
            r"invalid field selector: invalid escape sequence: \"
        );
        // Terms are checked in sorted order, so the reported one is the smallest.
        assert_eq!(
            field_error("zz,aa"),
            "invalid selector: 'zz,aa'; can't understand 'aa'"
        );
    }

    #[test]
    fn field_labels_supported_everywhere_and_per_kind() {
        let none: &[String] = &[];
        for (group, plural) in [
            ("", "configmaps"),
            ("apps", "deployments"),
            ("example.com", "widgets"),
        ] {
            assert_eq!(
                unsupported("metadata.name=a,metadata.namespace=b", group, plural, none),
                None
            );
        }
        let pod_fields =
            "spec.nodeName=n,spec.host=n,spec.restartPolicy=Always,spec.schedulerName=s,\
            spec.serviceAccountName=sa,spec.hostNetwork=false,status.phase=Running,status.podIP=1,\
            status.podIPs=1,status.nominatedNodeName=n,metadata.name=a,metadata.namespace=b";
        assert_eq!(unsupported(pod_fields, "", "pods", none), None);
        assert_eq!(
            unsupported("spec.containers=x", "", "pods", none).as_deref(),
            Some("field label not supported: spec.containers")
        );
        assert_eq!(unsupported("type=Opaque", "", "secrets", none), None);
        assert_eq!(
            unsupported("data=x", "", "secrets", none).as_deref(),
            Some("field label not supported: data")
        );
        let event_fields =
            "involvedObject.kind=Pod,involvedObject.namespace=d,involvedObject.name=p,\
            involvedObject.uid=u,involvedObject.apiVersion=v1,involvedObject.resourceVersion=1,\
            involvedObject.fieldPath=f,reason=r,reportingComponent=c,source=s,type=Normal";
        assert_eq!(unsupported(event_fields, "", "events", none), None);
        assert_eq!(
            unsupported("regarding.name=p", "", "events", none).as_deref(),
            Some("field label not supported: regarding.name")
        );
        assert_eq!(
            unsupported(
                "regarding.name=p,reportingController=c,source=s",
                "events.k8s.io",
                "events",
                none
            ),
            None
        );
        assert_eq!(
            unsupported("involvedObject.name=p", "events.k8s.io", "events", none).as_deref(),
            Some("field label not supported: involvedObject.name")
        );
        assert_eq!(
            unsupported("status.phase=Active", "", "namespaces", none),
            None
        );
        // Cluster-scoped kinds with their own list refuse metadata.namespace.
        assert_eq!(
            unsupported("metadata.namespace=x", "", "namespaces", none).as_deref(),
            Some("field label not supported: metadata.namespace")
        );
        assert_eq!(
            unsupported("spec.unschedulable=true", "", "nodes", none),
            None
        );
        assert_eq!(
            unsupported("metadata.namespace=", "", "nodes", none).as_deref(),
            Some("field label not supported: metadata.namespace")
        );
        assert_eq!(
            unsupported("status.replicas=1", "", "replicationcontrollers", none),
            None
        );
        assert_eq!(
            unsupported(
                "spec.clusterIP=None,spec.type=ClusterIP",
                "",
                "services",
                none
            ),
            None
        );
        assert_eq!(
            unsupported("status.successful=1", "batch", "jobs", none),
            None
        );
        assert_eq!(
            unsupported("status.active=1", "batch", "jobs", none).as_deref(),
            Some("field label \"status.active\" not supported for Job")
        );
        assert_eq!(
            unsupported(
                "spec.signerName=x",
                "certificates.k8s.io",
                "certificatesigningrequests",
                none
            ),
            None
        );
        // apps/v1 ReplicaSet has no conversion function upstream, so status.replicas is refused.
        assert_eq!(
            unsupported("status.replicas=1", "apps", "replicasets", none).as_deref(),
            Some("\"status.replicas\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\"")
        );
        assert_eq!(
            unsupported("data.x=1", "", "configmaps", none).as_deref(),
            Some("\"data.x\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\"")
        );
        // Custom resources: metadata plus their selectable fields, with or without the dot.
        let extra = vec![".spec.color".to_owned(), "spec.size".to_owned()];
        assert_eq!(
            unsupported(
                "spec.color=red,spec.size=1",
                "example.com",
                "widgets",
                &extra
            ),
            None
        );
        assert_eq!(
            unsupported("spec.shape=round", "example.com", "widgets", &extra).as_deref(),
            Some("field label not supported: spec.shape")
        );
        // The first unsupported term in sorted order is reported; an empty field is a field too.
        assert_eq!(
            unsupported("z=1,b=2", "", "pods", none).as_deref(),
            Some("field label not supported: b")
        );
        assert_eq!(
            unsupported("=x", "", "pods", none).as_deref(),
            Some("field label not supported: ")
        );
    }

    fn pod() -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "web-1", "namespace": "default"},
            "spec": {"nodeName": "node-a", "restartPolicy": "Always", "schedulerName": "default-scheduler", "serviceAccountName": "default"},
            "status": {"phase": "Running", "podIPs": [{"ip": "10.0.0.5"}, {"ip": "fd00::5"}]}
        })
    }

    #[test]
    fn field_matching_for_pods() {
        let pod = pod();
        assert!(field_matches("status.phase=Running", &pod));
        assert!(!field_matches("status.phase=Pending", &pod));
        assert!(field_matches("status.phase!=Pending", &pod));
        assert!(field_matches(
            "metadata.name=web-1,metadata.namespace=default",
            &pod
        ));
        assert!(!field_matches(
            "metadata.name=web-1,metadata.namespace=other",
            &pod
        ));
        assert!(field_matches("spec.nodeName=node-a", &pod));
        assert!(field_matches("spec.host=node-a", &pod));
        assert!(field_matches("spec.nodeName!=", &pod));
        assert!(field_matches("spec.hostNetwork=false", &pod));
        assert!(!field_matches("spec.hostNetwork=", &pod));
        assert!(field_matches("status.podIP=10.0.0.5", &pod));
        assert!(field_matches("status.nominatedNodeName=", &pod));
        // Upstream accepts status.podIPs but its field set never holds it.
        assert!(field_matches("status.podIPs=", &pod));
        assert!(!field_matches("status.podIPs=10.0.0.5", &pod));

        let mut host_network = pod.clone();
        host_network["spec"]["hostNetwork"] = json!(true);
        host_network["status"]["podIP"] = json!("192.168.1.1");
        assert!(field_matches("spec.hostNetwork=true", &host_network));
        assert!(field_matches("status.podIP=192.168.1.1", &host_network));

        let unscheduled = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}});
        assert!(field_matches("spec.nodeName=", &unscheduled));
        assert!(field_matches("spec.host=", &unscheduled));
        assert!(field_matches("status.podIP=", &unscheduled));
        assert!(field_matches("metadata.namespace=", &unscheduled));

        let selector = FieldSelector::parse("spec.host=node-a").unwrap();
        assert_eq!(selector.required_value("spec.nodeName"), Some("node-a"));
        assert_eq!(selector.required_value("spec.host"), Some("node-a"));
    }

    #[test]
    fn field_matching_for_other_builtins() {
        let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "type": "kubernetes.io/tls"});
        assert!(field_matches("type=kubernetes.io/tls", &secret));
        assert!(field_matches("type!=Opaque", &secret));

        let node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n"}});
        assert!(field_matches("spec.unschedulable=false", &node));
        assert!(field_matches("spec.unschedulable!=true", &node));
        let cordoned = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n"}, "spec": {"unschedulable": true}});
        assert!(field_matches("spec.unschedulable=true", &cordoned));

        let rc =
            json!({"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "r"}});
        assert!(field_matches("status.replicas=0", &rc));
        let scaled = json!({"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "r"}, "status": {"replicas": 3}});
        assert!(field_matches("status.replicas=3", &scaled));

        let job = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"}, "status": {"succeeded": 1}});
        assert!(field_matches("status.successful=1", &job));
        let fresh_job = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"}});
        assert!(field_matches("status.successful=0", &fresh_job));

        let namespace = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns"}, "status": {"phase": "Terminating"}});
        assert!(field_matches("status.phase=Terminating", &namespace));

        let service = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc"}, "spec": {"clusterIP": "None", "type": "ClusterIP"}});
        assert!(field_matches(
            "spec.clusterIP=None,spec.type=ClusterIP",
            &service
        ));
    }

    #[test]
    fn field_matching_for_events_in_both_shapes() {
        let core = json!({
            "apiVersion": "v1", "kind": "Event", "metadata": {"name": "e", "namespace": "d"},
            "involvedObject": {"kind": "Pod", "name": "web-1", "namespace": "d", "uid": "u1"},
            "reason": "Scheduled", "type": "Normal", "source": {"component": "scheduler"},
            "reportingComponent": "default-scheduler"
        });
        let events_api = json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e", "namespace": "d"},
            "regarding": {"kind": "Pod", "name": "web-1", "namespace": "d", "uid": "u1"},
            "reason": "Scheduled", "type": "Normal", "deprecatedSource": {"component": "scheduler"},
            "reportingController": "default-scheduler"
        });
        for event in [&core, &events_api] {
            for selector in [
                "involvedObject.name=web-1,involvedObject.kind=Pod",
                "regarding.name=web-1,regarding.uid=u1",
                "reason=Scheduled,type=Normal",
                "source=scheduler",
                "reportingComponent=default-scheduler",
                "reportingController=default-scheduler",
                "involvedObject.fieldPath=",
                "involvedObject.name!=web-2",
            ] {
                assert!(field_matches(selector, event), "{selector} on {event}");
            }
            assert!(!field_matches("involvedObject.name=web-2", event));
        }
        let selector = FieldSelector::parse("regarding.name=web-1").unwrap();
        assert_eq!(
            selector.required_value("involvedObject.name"),
            Some("web-1")
        );
    }

    #[test]
    fn field_matching_for_custom_resources() {
        let widget = json!({
            "apiVersion": "example.com/v1", "kind": "Widget",
            "metadata": {"name": "w", "namespace": "d"},
            "spec": {"color": "red", "size": 3, "big": 12345678901_i64, "ratio": 1.5, "tiny": 0.00001, "enabled": false, "host": "h"}
        });
        assert!(field_matches(
            "spec.color=red,spec.size=3,spec.enabled=false",
            &widget
        ));
        assert!(field_matches(
            "spec.big=12345678901,spec.ratio=1.5",
            &widget
        ));
        assert!(field_matches("spec.tiny=1e-05", &widget));
        assert!(field_matches("spec.missing=", &widget));
        assert!(field_matches("spec.missing!=x", &widget));
        // No built-in rendering for custom kinds: no aliases, no typed defaults.
        assert!(field_matches("spec.host=h", &widget));
        assert!(field_matches("spec.unschedulable=", &widget));
        assert!(field_matches("status.replicas=", &widget));
        assert!(!field_matches("spec.color=blue", &widget));
    }

    #[test]
    fn go_float_formatting() {
        assert_eq!(go_float(0.0), "0");
        assert_eq!(go_float(1.5), "1.5");
        assert_eq!(go_float(3.0), "3");
        assert_eq!(go_float(123456.0), "123456");
        assert_eq!(go_float(1234567.0), "1.234567e+06");
        assert_eq!(go_float(0.0001), "0.0001");
        assert_eq!(go_float(0.00001), "1e-05");
        assert_eq!(go_float(1e21), "1e+21");
        assert_eq!(go_float(-2.5e-7), "-2.5e-07");
    }

    /// xorshift64*: deterministic, dependency-free.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[test]
    fn parsers_never_panic_on_garbage() {
        const PIECES: &[&str] = &[
            "a",
            "b",
            "Z",
            "0",
            "9",
            "-",
            "_",
            ".",
            "/",
            "=",
            "==",
            "!",
            "!=",
            "(",
            ")",
            ",",
            "<",
            ">",
            " ",
            "\t",
            "\n",
            "\r",
            "\0",
            "\\",
            "in",
            "notin",
            " in ",
            "é",
            "함",
            "\u{feff}",
            "\u{1}",
            "metadata.name",
            "spec.host",
            "x",
            "\\,",
            "\\=",
            "\\\\",
        ];
        let objects = [
            pod(),
            labelled(json!({"a": "b", "in": "notin", "x": "1"})),
            json!({"apiVersion": "example.com/v1", "kind": "W", "a": {"b": [1, 2]}}),
            json!(null),
            json!([1, 2]),
        ];
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for _ in 0..20_000 {
            let mut text = String::new();
            for _ in 0..rng.below(24) {
                text.push_str(PIECES[rng.below(PIECES.len())]);
            }
            if let Ok(selector) = LabelSelector::parse(&text) {
                for object in &objects {
                    let _ = selector.matches(object);
                }
            }
            if let Ok(selector) = FieldSelector::parse(&text) {
                let _ = selector.check_supported("", "pods", &[]);
                let _ = selector.check_supported("example.com", "widgets", &["a.b".to_owned()]);
                let _ = selector.required_value("metadata.name");
                for object in &objects {
                    let _ = selector.matches(object);
                }
            }
            // Raw bytes too, made valid UTF-8 lossily.
            let bytes: Vec<u8> = (0..rng.below(16)).map(|_| rng.next() as u8).collect();
            let text = String::from_utf8_lossy(&bytes);
            let _ = LabelSelector::parse(&text);
            let _ = FieldSelector::parse(&text);
        }
    }
}
