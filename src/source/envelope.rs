//! A fast byte scanner for Stripe list envelopes (`{"object":"list","data":[…],"has_more":…}`).
//!
//! [`scan`] finds the top-level `data` array and splits it into one byte range per record by
//! tracking nesting depth, strings and escapes; it never parses a record. A record that is broken
//! JSON but bracket-balanced (`{"id":"ch_1","amount": ,"x":usd}`) still gets its own range, and
//! the decoder rejects it later, alone. An envelope that is itself broken is an [`EnvelopeError`].
//!
//! [`record_id`] reads a record's top-level `"id"` the same way, tolerating broken JSON elsewhere.

use std::fmt;
use std::ops::Range;

/// The result of scanning a list envelope: where each record is in the body, and `has_more`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// Byte ranges of the elements of the top-level `data` array, in order.
    pub records: Vec<Range<usize>>,
    /// The envelope's `has_more` flag.
    pub has_more: bool,
}

/// A list envelope that cannot be split: where, why, and an excerpt of the bytes there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvelopeError {
    /// Byte offset in the body where scanning failed.
    pub offset: usize,
    /// What was expected or found.
    pub reason: String,
    /// A short, printable excerpt of the body around `offset`.
    pub excerpt: String,
}

impl fmt::Display for EnvelopeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "malformed list envelope at byte {}: {} (near `{}`)",
            self.offset, self.reason, self.excerpt
        )
    }
}

impl std::error::Error for EnvelopeError {}

/// How many bytes an excerpt shows before and after the offending offset.
const EXCERPT_BEFORE: usize = 24;
const EXCERPT_AFTER: usize = 40;

fn excerpt(body: &[u8], offset: usize) -> String {
    let start = offset.saturating_sub(EXCERPT_BEFORE);
    let end = (offset + EXCERPT_AFTER).min(body.len());
    let text = String::from_utf8_lossy(&body[start.min(end)..end]);
    let mut out = String::with_capacity(text.len() + 2);
    if start > 0 {
        out.push('…');
    }
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    if end < body.len() {
        out.push('…');
    }
    out
}

/// A cursor over the body. All methods report errors with the current offset.
struct Scanner<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Scanner<'a> {
    fn new(b: &'a [u8]) -> Self {
        Scanner { b, pos: 0 }
    }

    fn err(&self, at: usize, reason: impl Into<String>) -> EnvelopeError {
        EnvelopeError {
            offset: at,
            reason: reason.into(),
            excerpt: excerpt(self.b, at),
        }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    fn expect(&mut self, byte: u8, what: &str) -> Result<(), EnvelopeError> {
        self.skip_ws();
        match self.peek() {
            Some(c) if c == byte => {
                self.pos += 1;
                Ok(())
            }
            Some(_) => Err(self.err(self.pos, format!("expected {what}"))),
            None => Err(self.err(self.pos, format!("unexpected end of body, expected {what}"))),
        }
    }

    /// Skips a string whose opening quote is at `pos`; returns the range of its raw contents.
    fn string(&mut self) -> Result<Range<usize>, EnvelopeError> {
        let open = self.pos;
        debug_assert_eq!(self.b.get(open), Some(&b'"'));
        match string_end(self.b, open + 1) {
            Some(close) => {
                self.pos = close + 1;
                Ok(open + 1..close)
            }
            None => Err(self.err(open, "unterminated string")),
        }
    }

    /// Skips one value, leniently: containers must be bracket-balanced (strings respected), and a
    /// scalar is any run of bytes up to the next delimiter. Returns the value's range, which is
    /// empty when no value is present (e.g. `"a": ,`).
    fn value(&mut self) -> Result<Range<usize>, EnvelopeError> {
        self.skip_ws();
        let start = self.pos;
        match self.peek() {
            Some(b'{' | b'[') => {
                if let Some(end) = super::blocks::container_end(self.b, start) {
                    self.pos = end;
                    return Ok(start..end);
                }
                // Broken or unusual bytes: byte by byte, which says what is wrong and where.
                self.container_bytewise()
            }
            Some(b'"') => self.string().map(|r| r.start - 1..r.end + 1),
            _ => {
                while let Some(c) = self.peek() {
                    if matches!(
                        c,
                        b',' | b'}' | b']' | b'{' | b'[' | b'"' | b' ' | b'\t' | b'\n' | b'\r'
                    ) {
                        break;
                    }
                    self.pos += 1;
                }
                Ok(start..self.pos)
            }
        }
    }

    /// Skips the container opening at `pos` byte by byte: strings respected, brackets matched.
    fn container_bytewise(&mut self) -> Result<Range<usize>, EnvelopeError> {
        let start = self.pos;
        let mut stack: Vec<u8> = Vec::with_capacity(8);
        while let Some(c) = self.peek() {
            match c {
                b'"' => {
                    self.string()?;
                    continue;
                }
                b'{' => stack.push(b'}'),
                b'[' => stack.push(b']'),
                b'}' | b']' => {
                    if stack.pop() != Some(c) {
                        return Err(self.err(self.pos, "mismatched bracket"));
                    }
                    if stack.is_empty() {
                        self.pos += 1;
                        return Ok(start..self.pos);
                    }
                }
                _ => {}
            }
            self.pos += 1;
        }
        Err(self.err(start, "unbalanced brackets: value never closes"))
    }
}

/// Where the byte-wise scanner says the container opening at `start` ends (`None`: an error):
/// the reference [`super::blocks::container_end`] is tested against.
#[cfg(test)]
pub(super) fn container_end_bytewise(b: &[u8], start: usize) -> Option<usize> {
    let mut s = Scanner::new(b);
    s.pos = start;
    s.container_bytewise().ok().map(|r| r.end)
}

/// Given the index just after an opening quote, returns the index of the closing quote.
fn string_end(b: &[u8], mut i: usize) -> Option<usize> {
    // Most of a Stripe object's bytes are inside strings: jump to the next quote or backslash.
    while i < b.len() {
        i += memchr::memchr2(b'"', b'\\', &b[i..])?;
        match b[i] {
            b'"' => return Some(i),
            _ => i += 2,
        }
    }
    None
}

/// Splits a list envelope into record ranges and reads `has_more`.
///
/// Only the top level is interpreted: `data` must be an array, `has_more` a boolean; every other
/// key is skipped. Records are split by depth, not parsed. An `{"error":…}` body, a body that is
/// not an object, lacks `data`/`has_more`, or is unbalanced is an [`EnvelopeError`].
pub fn scan(body: &[u8]) -> Result<Envelope, EnvelopeError> {
    let mut s = Scanner::new(body);
    s.skip_ws();
    match s.peek() {
        Some(b'{') => s.pos += 1,
        Some(_) => return Err(s.err(s.pos, "body is not a JSON object")),
        None => return Err(s.err(0, "empty body")),
    }
    let mut records: Option<Vec<Range<usize>>> = None;
    let mut has_more: Option<bool> = None;
    let mut error_at: Option<usize> = None;

    s.skip_ws();
    if s.peek() == Some(b'}') {
        s.pos += 1;
    } else {
        loop {
            s.skip_ws();
            if s.peek() != Some(b'"') {
                return Err(s.err(s.pos, "expected a key"));
            }
            let key_at = s.pos;
            let key = s.string()?;
            s.expect(b':', "':' after key")?;
            s.skip_ws();
            match &body[key] {
                b"data" => {
                    if records.is_some() {
                        return Err(s.err(key_at, "duplicate \"data\" key"));
                    }
                    records = Some(data_array(&mut s)?);
                }
                b"has_more" => {
                    let at = s.pos;
                    let v = s.value()?;
                    has_more = Some(match &body[v] {
                        b"true" => true,
                        b"false" => false,
                        _ => return Err(s.err(at, "\"has_more\" is not a boolean")),
                    });
                }
                other => {
                    if other == b"error" {
                        error_at = Some(key_at);
                    }
                    let at = s.pos;
                    if s.value()?.is_empty() {
                        return Err(s.err(at, "missing value"));
                    }
                }
            }
            s.skip_ws();
            match s.peek() {
                Some(b',') => s.pos += 1,
                Some(b'}') => {
                    s.pos += 1;
                    break;
                }
                Some(_) => return Err(s.err(s.pos, "expected ',' or '}' after a value")),
                None => return Err(s.err(s.pos, "unexpected end of body inside the envelope")),
            }
        }
    }
    s.skip_ws();
    if s.pos < body.len() {
        return Err(s.err(s.pos, "trailing bytes after the envelope"));
    }
    match (records, has_more) {
        (Some(records), Some(has_more)) => Ok(Envelope { records, has_more }),
        _ if error_at.is_some() => Err(s.err(
            error_at.unwrap_or(0),
            "body is an {\"error\":…} object, not a list",
        )),
        (None, _) => Err(s.err(0, "no top-level \"data\" array")),
        (Some(_), None) => Err(s.err(0, "no top-level \"has_more\" flag")),
    }
}

/// Splits the array starting at `s.pos` into element ranges; leaves `s.pos` after its `]`.
fn data_array(s: &mut Scanner<'_>) -> Result<Vec<Range<usize>>, EnvelopeError> {
    if s.peek() != Some(b'[') {
        return Err(s.err(s.pos, "\"data\" is not an array"));
    }
    s.pos += 1;
    let mut out = Vec::new();
    s.skip_ws();
    if s.peek() == Some(b']') {
        s.pos += 1;
        return Ok(out);
    }
    loop {
        let at = s.pos;
        let r = s.value()?;
        if r.is_empty() {
            return Err(s.err(at, "empty element in \"data\""));
        }
        out.push(r);
        s.skip_ws();
        match s.peek() {
            Some(b',') => s.pos += 1,
            Some(b']') => {
                s.pos += 1;
                return Ok(out);
            }
            Some(_) => return Err(s.err(s.pos, "expected ',' or ']' in \"data\"")),
            None => return Err(s.err(s.pos, "unexpected end of body inside \"data\"")),
        }
    }
}

/// The top-level `"id"` string of a record, found without parsing the record.
///
/// Tolerates broken JSON anywhere else in the record (missing values, bare words), as long as
/// the part before the `id` is bracket- and quote-balanced. Returns `None` when the record is
/// not an object or has no string `id` at its top level.
pub fn record_id(raw: &[u8]) -> Option<String> {
    let j = top_level_value(raw, b"id")?;
    if raw.get(j) != Some(&b'"') {
        return None;
    }
    let vend = string_end(raw, j + 1)?;
    serde_json::from_slice::<String>(&raw[j..=vend]).ok()
}

/// Where the value of the first top-level `key` of a JSON object starts (after whitespace),
/// found by walking the bytes without parsing: only the part before the key has to be
/// bracket- and quote-balanced. `None` when `raw` is not an object or has no such key.
pub(crate) fn top_level_value(raw: &[u8], key: &[u8]) -> Option<usize> {
    let ws = |i: &mut usize| {
        while matches!(raw.get(*i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            *i += 1;
        }
    };
    let mut i = 0;
    ws(&mut i);
    if raw.get(i) != Some(&b'{') {
        return None;
    }
    i += 1;
    let mut depth = 1usize;
    // True right after `{` or `,` at depth 1: the next string there is a key.
    let mut key_position = true;
    while i < raw.len() {
        match raw[i] {
            b'"' => {
                let end = string_end(raw, i + 1)?;
                if depth == 1 && key_position && &raw[i + 1..end] == key {
                    let mut j = end + 1;
                    ws(&mut j);
                    if raw.get(j) == Some(&b':') {
                        j += 1;
                        ws(&mut j);
                        return Some(j);
                    }
                }
                key_position = false;
                i = end + 1;
                continue;
            }
            b'{' | b'[' => {
                depth += 1;
                key_position = false;
            }
            b'}' | b']' => {
                depth -= 1;
                if depth == 0 {
                    return None;
                }
            }
            b',' if depth == 1 => key_position = true,
            b' ' | b'\t' | b'\n' | b'\r' => {}
            _ => key_position = false,
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(body: &str) -> (Vec<&str>, bool) {
        let env = scan(body.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        let recs = env.records.iter().map(|r| &body[r.clone()]).collect();
        (recs, env.has_more)
    }

    fn fails(body: &str) -> EnvelopeError {
        scan(body.as_bytes()).expect_err(body)
    }

    #[test]
    fn splits_a_plain_envelope() {
        let body = r#"{"object":"list","data":[{"id":"ch_1"},{"id":"ch_2","n":[1,2]}],"has_more":true,"url":"/v1/charges"}"#;
        let (recs, more) = parts(body);
        assert_eq!(recs, vec![r#"{"id":"ch_1"}"#, r#"{"id":"ch_2","n":[1,2]}"#]);
        assert!(more);
    }

    #[test]
    fn empty_data_and_key_order() {
        assert_eq!(parts(r#"{"has_more":false,"data":[]}"#), (vec![], false));
        assert_eq!(
            parts(" \n{ \"data\" : [ ] , \"has_more\" : false }\n "),
            (vec![], false)
        );
    }

    #[test]
    fn whitespace_everywhere() {
        let body = "{\n  \"object\": \"list\",\n  \"data\": [\n    {\"id\": \"a\"} ,\n\t{ \"id\" : \"b\" }\r\n  ],\n  \"has_more\": false\n}\n";
        let (recs, _) = parts(body);
        assert_eq!(recs, vec![r#"{"id": "a"}"#, r#"{ "id" : "b" }"#]);
    }

    #[test]
    fn escapes_and_brackets_inside_strings() {
        let r1 = r#"{"id":"ch_1","d":"quote \" and ] and } and [ {"}"#;
        let r2 = r#"{"id":"ch_2","d":"backslash \\","e":"\\\" still inside ]"}"#;
        let r3 = r#"{"id":"ch_3","d":"\\\\"}"#;
        let body = format!(r#"{{"data":[{r1},{r2},{r3}],"has_more":false}}"#);
        let (recs, _) = parts(&body);
        assert_eq!(recs, vec![r1, r2, r3]);
    }

    #[test]
    fn nested_arrays_and_objects() {
        let r1 = r#"{"id":"sub_1","items":{"object":"list","data":[{"id":"si_1","x":[[1],[2,[3]]]}],"has_more":true}}"#;
        let body =
            format!(r#"{{"url":"/v1/x","extra":{{"data":[1,2]}},"data":[{r1}],"has_more":false}}"#);
        let (recs, more) = parts(&body);
        assert_eq!(recs, vec![r1]);
        assert!(!more, "nested has_more must not leak to the top level");
    }

    #[test]
    fn unicode_passes_through() {
        let r1 = r#"{"id":"cus_1","name":"東京 🎉 \u00e9\ud83d\ude00","ar":"مرحبا"}"#;
        let body = format!(r#"{{"data":[{r1}],"has_more":false}}"#);
        let (recs, _) = parts(&body);
        assert_eq!(recs, vec![r1]);
        assert_eq!(record_id(recs[0].as_bytes()).as_deref(), Some("cus_1"));
    }

    #[test]
    fn broken_but_balanced_records_still_split() {
        let bad = r#"{"id":"ch_1","amount": ,"x":usd}"#;
        let good = r#"{"id":"ch_2"}"#;
        let body = format!(r#"{{"data":[{bad}, {good}, 42, "s", null],"has_more":true}}"#);
        let (recs, _) = parts(&body);
        assert_eq!(recs, vec![bad, good, "42", "\"s\"", "null"]);
        assert_eq!(record_id(bad.as_bytes()).as_deref(), Some("ch_1"));
    }

    #[test]
    fn broken_envelopes_are_errors_with_offsets() {
        let e = fails(r#"{"error":{"type":"api_error","message":"boom"}}"#);
        assert!(e.reason.contains("error"), "{e}");
        assert_eq!(e.offset, 1);
        assert!(fails(r#"[{"id":"x"}]"#)
            .reason
            .contains("not a JSON object"));
        assert!(fails("").reason.contains("empty"));
        assert!(fails(r#"{"has_more":false}"#).reason.contains("data"));
        assert!(fails(r#"{"data":[]}"#).reason.contains("has_more"));
        assert!(fails(r#"{"data":{},"has_more":false}"#)
            .reason
            .contains("not an array"));
        assert!(fails(r#"{"data":[],"has_more":"yes"}"#)
            .reason
            .contains("boolean"));
        let e = fails(r#"{"data":[{"id":"a"},{"id":"b""#);
        assert!(
            e.reason.contains("unbalanced") || e.reason.contains("end"),
            "{e}"
        );
        assert!(fails(r#"{"data":[{"id":"a"]],"has_more":false}"#)
            .reason
            .contains("mismatched"));
        assert!(fails(r#"{"data":[{"id":"a"},],"has_more":false}"#)
            .reason
            .contains("empty element"));
        assert!(fails(r#"{"data":[],"has_more":false} x"#)
            .reason
            .contains("trailing"));
        let e = fails(r#"{"data":["abc], \"has_more\":false}"#);
        assert!(e.reason.contains("unterminated"), "{e}");
        assert_eq!(e.offset, 9);
        assert!(e.to_string().contains("at byte 9"));
        assert!(e.excerpt.contains("abc"));
        assert!(fails(r#"{"data":[] "has_more":false}"#)
            .reason
            .contains("expected ','"));
        assert!(fails(r#"{"data":[], "x": , "has_more":false}"#)
            .reason
            .contains("missing value"));
        assert!(fails(r#"{"data":[],"has_more":true,"data":[]}"#)
            .reason
            .contains("duplicate"));
    }

    #[test]
    fn excerpt_is_short_and_printable() {
        let mut body = String::from(r#"{"data":[{"id":"a"}],"has_more":false,"x":"#);
        body.push_str(&"y".repeat(500));
        body.push('\n');
        body.push_str("}}}");
        let e = fails(&body);
        assert!(e.excerpt.chars().count() <= EXCERPT_BEFORE + EXCERPT_AFTER + 2);
        assert!(!e.excerpt.contains('\n'));
    }

    #[test]
    fn record_id_finds_only_the_top_level_id() {
        let id = |s: &str| record_id(s.as_bytes());
        assert_eq!(id(r#"{"id":"ch_1"}"#).as_deref(), Some("ch_1"));
        assert_eq!(
            id(r#"{"object":"charge","customer":{"id":"cus_9"},"refunds":{"data":[{"id":"re_1"}]},"id":"ch_2"}"#).as_deref(),
            Some("ch_2")
        );
        assert_eq!(id(r#"{"customer":{"id":"cus_9"}}"#), None);
        assert_eq!(
            id(r#"{"metadata":{"k":"id"},"x":"id","id" : "ch_3"}"#).as_deref(),
            Some("ch_3")
        );
        assert_eq!(
            id(r#"{"d":"\"id\":\"fake\"","id":"ch_4"}"#).as_deref(),
            Some("ch_4")
        );
        assert_eq!(id(r#"{"d":"\\","id":"ch_5"}"#).as_deref(), Some("ch_5"));
        assert_eq!(id(r#"{"id":"ch_\u0036"}"#).as_deref(), Some("ch_6"));
        assert_eq!(
            id(r#"{"amount": ,"x":usd, "id":"ch_7"}"#).as_deref(),
            Some("ch_7")
        );
        assert_eq!(id(r#"{"id":7}"#), None);
        assert_eq!(id(r#"{"id":null}"#), None);
        assert_eq!(id(r#"{"ids":"x","i":"y"}"#), None);
        assert_eq!(id(r#"["id","ch_1"]"#), None);
        assert_eq!(id(r#"{"id":"unterminated"#), None);
        assert_eq!(id(""), None);
        assert_eq!(
            id(r#"{"id":"first","id":"second"}"#).as_deref(),
            Some("first")
        );
    }
}
