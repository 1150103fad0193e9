//! The label-selector lexer: upstream's byte-wise tokenizer, NUL-as-end quirk included.

/// The lexer's tokens (upstream `labels.Token`, less the unreachable `ErrorToken`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Token {
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

fn is_whitespace(ch: u8) -> bool {
    matches!(ch, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_special_symbol(ch: u8) -> bool {
    matches!(ch, b'=' | b'!' | b'(' | b')' | b',' | b'>' | b'<')
}

/// Byte-wise lexer with upstream's behaviour, including that a NUL byte reads as end of input.
pub(super) struct Lexer<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Lexer<'a> {
    /// A lexer at the start of `text`.
    pub(super) fn new(text: &'a str) -> Self {
        Self { text, pos: 0 }
    }

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

    /// The next token and its text; [`Token::EndOfString`] once the input is used up.
    pub(super) fn lex(&mut self) -> (Token, &'a str) {
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

#[cfg(test)]
mod tests {
    use crate::selector::tests::{label_error, label_matches};
    use serde_json::json;

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
}
