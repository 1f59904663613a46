//! A minimal streaming JSON writer over a byte buffer: no value trees, integers formatted
//! by hand, strings escaped per RFC 8259. Keys are trusted static ASCII.

/// Writes JSON into `buf`. Tracks only whether the next member is the first of its
/// container, which is all comma placement needs.
pub(crate) struct Json<'a> {
    pub(crate) buf: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> Json<'a> {
    pub(crate) fn new(buf: &'a mut Vec<u8>) -> Self {
        Json { buf, first: true }
    }

    fn sep(&mut self) {
        if !self.first {
            self.buf.push(b',');
        }
        self.first = false;
    }

    fn key(&mut self, k: &str) {
        self.sep();
        self.buf.push(b'"');
        self.buf.extend_from_slice(k.as_bytes());
        self.buf.extend_from_slice(b"\":");
    }

    /// Opens the root object (or an array element object).
    pub(crate) fn begin(&mut self) {
        self.sep();
        self.buf.push(b'{');
        self.first = true;
    }

    /// Opens the object member `k`.
    pub(crate) fn open(&mut self, k: &str) {
        self.key(k);
        self.buf.push(b'{');
        self.first = true;
    }

    /// Closes the current object.
    pub(crate) fn close(&mut self) {
        self.buf.push(b'}');
        self.first = false;
    }

    /// Opens the array member `k`.
    pub(crate) fn open_arr(&mut self, k: &str) {
        self.key(k);
        self.buf.push(b'[');
        self.first = true;
    }

    /// Closes the current array.
    pub(crate) fn close_arr(&mut self) {
        self.buf.push(b']');
        self.first = false;
    }

    /// An array element string.
    pub(crate) fn item_str(&mut self, v: &str) {
        self.sep();
        push_str(self.buf, v);
    }

    pub(crate) fn int(&mut self, k: &str, v: i64) {
        self.key(k);
        push_i64(self.buf, v);
    }

    pub(crate) fn opt_int(&mut self, k: &str, v: Option<i64>) {
        match v {
            Some(v) => self.int(k, v),
            None => self.null(k),
        }
    }

    /// A float that always shows a decimal point (`25.0`, `1.0843`).
    pub(crate) fn float(&mut self, k: &str, v: f64) {
        use std::io::Write;
        self.key(k);
        // Writing to a Vec cannot fail.
        let _ = write!(self.buf, "{v:?}");
    }

    pub(crate) fn str(&mut self, k: &str, v: &str) {
        self.key(k);
        push_str(self.buf, v);
    }

    pub(crate) fn opt_str(&mut self, k: &str, v: Option<&str>) {
        match v {
            Some(v) => self.str(k, v),
            None => self.null(k),
        }
    }

    pub(crate) fn bool(&mut self, k: &str, v: bool) {
        self.key(k);
        self.buf
            .extend_from_slice(if v { b"true" } else { b"false" });
    }

    pub(crate) fn null(&mut self, k: &str) {
        self.key(k);
        self.buf.extend_from_slice(b"null");
    }

    /// A member whose value is already valid JSON.
    pub(crate) fn raw(&mut self, k: &str, json: &str) {
        self.key(k);
        self.buf.extend_from_slice(json.as_bytes());
    }

    /// A string member built by `f` from raw (already safe) bytes, e.g. generated ids.
    pub(crate) fn str_with(&mut self, k: &str, f: impl FnOnce(&mut Vec<u8>)) {
        self.key(k);
        self.buf.push(b'"');
        f(self.buf);
        self.buf.push(b'"');
    }
}

/// Appends a signed integer in decimal.
pub(crate) fn push_i64(buf: &mut Vec<u8>, v: i64) {
    let mut tmp = [0u8; 20];
    let mut n = v.unsigned_abs();
    let mut pos = tmp.len();
    loop {
        pos -= 1;
        tmp[pos] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if v < 0 {
        buf.push(b'-');
    }
    buf.extend_from_slice(&tmp[pos..]);
}

/// Appends `s` as a JSON string literal.
pub(crate) fn push_str(buf: &mut Vec<u8>, s: &str) {
    buf.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => b"",
            _ => continue,
        };
        buf.extend_from_slice(&bytes[start..i]);
        if esc.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            buf.extend_from_slice(b"\\u00");
            buf.push(HEX[usize::from(b >> 4)]);
            buf.push(HEX[usize::from(b & 0xf)]);
        } else {
            buf.extend_from_slice(esc);
        }
        start = i + 1;
    }
    buf.extend_from_slice(&bytes[start..]);
    buf.push(b'"');
}

/// Replaces the value of the first `"key":` member found in `buf[from..]` with
/// `replacement` (used to corrupt records). Returns false if the key is absent.
pub(crate) fn splice_value(buf: &mut Vec<u8>, from: usize, key: &str, replacement: &[u8]) -> bool {
    let pat = format!("\"{key}\":");
    let Some(at) = buf[from..]
        .windows(pat.len())
        .position(|w| w == pat.as_bytes())
    else {
        return false;
    };
    let vstart = from + at + pat.len();
    let mut vend = vstart;
    if buf.get(vstart) == Some(&b'"') {
        vend += 1;
        while vend < buf.len() && buf[vend] != b'"' {
            vend += if buf[vend] == b'\\' { 2 } else { 1 };
        }
        vend = (vend + 1).min(buf.len());
    } else {
        while vend < buf.len() && !matches!(buf[vend], b',' | b'}' | b']') {
            vend += 1;
        }
    }
    buf.splice(vstart..vend, replacement.iter().copied());
    true
}

/// The end of the JSON value starting at `buf[i]` (strings, numbers, literals, objects and
/// arrays, nested).
fn value_end(buf: &[u8], mut i: usize) -> usize {
    let mut depth = 0usize;
    let mut in_str = false;
    while i < buf.len() {
        let b = buf[i];
        if in_str {
            match b {
                b'\\' => i += 1,
                b'"' => {
                    in_str = false;
                    if depth == 0 {
                        return i + 1;
                    }
                }
                _ => {}
            }
        } else {
            match b {
                b'"' => in_str = true,
                b'{' | b'[' => depth += 1,
                b'}' | b']' if depth == 0 => return i,
                b'}' | b']' => {
                    depth -= 1;
                    if depth == 0 {
                        return i + 1;
                    }
                }
                b',' if depth == 0 => return i,
                _ => {}
            }
        }
        i += 1;
    }
    buf.len()
}

/// The byte ranges of the top-level member `key` of the object starting at `buf[from]`: the
/// member (from its key's opening quote to the end of its value) and the value.
pub(crate) fn top_member(
    buf: &[u8],
    from: usize,
    key: &str,
) -> Option<(std::ops::Range<usize>, std::ops::Range<usize>)> {
    let mut i = from + 1;
    while i < buf.len() {
        while i < buf.len() && matches!(buf[i], b' ' | b',' | b'\n') {
            i += 1;
        }
        if buf.get(i) != Some(&b'"') {
            return None;
        }
        let kstart = i;
        let kend = value_end(buf, i);
        let vstart = kend + 1; // past ':'
        let vend = value_end(buf, vstart);
        if &buf[kstart + 1..kend - 1] == key.as_bytes() {
            return Some((kstart..vend, vstart..vend));
        }
        i = vend;
    }
    None
}

/// Replaces the value of the top-level member `key` of the object at `buf[from]`. Returns
/// false if there is no such member.
pub(crate) fn set_top(buf: &mut Vec<u8>, from: usize, key: &str, value: &[u8]) -> bool {
    match top_member(buf, from, key) {
        Some((_, v)) => {
            buf.splice(v, value.iter().copied());
            true
        }
        None => false,
    }
}

/// Removes the top-level member `key` (and its separating comma) from the object at
/// `buf[from]`. Returns false if there is no such member.
pub(crate) fn remove_top(buf: &mut Vec<u8>, from: usize, key: &str) -> bool {
    let Some((m, _)) = top_member(buf, from, key) else {
        return false;
    };
    let range = if buf.get(m.end) == Some(&b',') {
        m.start..m.end + 1
    } else if m.start > from + 1 && buf[m.start - 1] == b',' {
        m.start - 1..m.end
    } else {
        m
    };
    buf.drain(range);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_valid_escaped_json() {
        let mut buf = Vec::new();
        let mut j = Json::new(&mut buf);
        j.begin();
        j.int("a", -42);
        j.str("s", "q\"b\\n\nt\u{1}é🙏");
        j.open("o");
        j.close();
        j.open_arr("l");
        j.item_str("x");
        j.item_str("y");
        j.close_arr();
        j.float("f", 25.0);
        j.close();
        let v: serde_json::Value = serde_json::from_slice(&buf).unwrap();
        assert_eq!(v["a"], -42);
        assert_eq!(v["s"], "q\"b\\n\nt\u{1}é🙏");
        assert_eq!(v["l"][1], "y");
        assert_eq!(v["f"], 25.0);
        assert!(splice_value(&mut buf, 0, "s", b"1"));
        assert!(set_top(&mut buf, 0, "o", b"{\"k\":[1,{\"x\":\"}\"}]}"));
        assert!(set_top(&mut buf, 0, "f", b"2"));
        assert!(remove_top(&mut buf, 0, "a"));
        assert!(remove_top(&mut buf, 0, "f"));
        assert!(
            !remove_top(&mut buf, 0, "x"),
            "nested keys are not top-level"
        );
        let v: serde_json::Value = serde_json::from_slice(&buf).unwrap();
        assert_eq!(v["o"]["k"][1]["x"], "}");
        assert!(v.get("a").is_none() && v.get("f").is_none());
        assert_eq!(v["l"][0], "x");
        let v: serde_json::Value = serde_json::from_slice(&buf).unwrap();
        assert_eq!(v["s"], 1);
    }
}
