//! URL functions (§2.5 "URL"). An input that is not an absolute URL (`scheme://…`) gives null.

use std::sync::Arc;

use arrow::array::{ArrayRef, StringArray};
use arrow::datatypes::DataType;
use datafusion::common::{Result, ScalarValue};

use super::hierarchy::{build_map, map_type};
use super::{int64, ints, strings, utf8, Args, Def};

pub(crate) fn defs() -> Vec<Def> {
    vec![
        Def::new("get_url_protocol", "get_url_protocol(URL)", "The URL's scheme (\"https\")", (1, 1), utf8, protocol),
        Def::new("get_url_host", "get_url_host(URL)", "The URL's host", (1, 1), utf8, host),
        Def::new("get_url_port", "get_url_port(URL)",
            "The URL's port, or the scheme's default port (http 80, https 443, ftp 21, sftp/ssh 22, …); null if neither",
            (1, 1), int64, port),
        Def::new("get_url_path", "get_url_path(URL, FULL_PATH)",
            "The URL's path; FULL_PATH false gives only its last segment (default true)", (1, 2), utf8, path),
        Def::new("get_url_query_str", "get_url_query_str(URL, ANCHOR)",
            "Map of query parameters; ANCHOR \"retain\" keeps #fragment on the last value, \"remove\" drops it, \"append\" adds it as `_anchor_`",
            (2, 2), str_map, query_str),
        Def::new("get_url_encoded", "get_url_encoded(URL)",
            "Percent-encodes everything but letters, digits, '-', '_' and '.' (UTF-8); '|' is %7C (the docs' %5C is a doc bug)",
            (1, 1), utf8, encoded),
        Def::new("get_url_decoded", "get_url_decoded(URL)", "Percent-decodes (UTF-8); invalid input gives null", (1, 1), utf8, decoded),
    ]
}

fn str_map(_: &[DataType], _: &[Option<&ScalarValue>]) -> Result<DataType> {
    Ok(map_type(DataType::Utf8))
}

/// The parts of an absolute URL.
struct Url<'a> {
    scheme: &'a str,
    host: &'a str,
    port: Option<&'a str>,
    path: &'a str,
    query: Option<&'a str>,
    fragment: Option<&'a str>,
}

fn parse(s: &str) -> Option<Url<'_>> {
    let s = s.trim();
    let (scheme, rest) = s.split_once("://")?;
    let mut chars = scheme.chars();
    if !chars.next()?.is_ascii_alphabetic()
        || !chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    {
        return None;
    }
    let (rest, fragment) = match rest.split_once('#') {
        Some((a, b)) => (a, Some(b)),
        None => (rest, None),
    };
    let (rest, query) = match rest.split_once('?') {
        Some((a, b)) => (a, Some(b)),
        None => (rest, None),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = if hostport.starts_with('[') {
        let end = hostport.find(']')?;
        let port = hostport[end + 1..].strip_prefix(':');
        (&hostport[..=end], port)
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    if host.is_empty() && !matches!(scheme, "file") {
        return None;
    }
    if let Some(p) = port {
        if !p.is_empty() && !p.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
    }
    Some(Url {
        scheme,
        host,
        port: port.filter(|p| !p.is_empty()),
        path,
        query,
        fragment,
    })
}

fn default_port(scheme: &str) -> Option<i64> {
    Some(match scheme.to_ascii_lowercase().as_str() {
        "http" | "ws" => 80,
        "https" | "wss" => 443,
        "ftp" => 21,
        "sftp" | "ssh" | "scp" => 22,
        "telnet" => 23,
        "smtp" => 25,
        "gopher" => 70,
        "pop3" => 110,
        "imap" => 143,
        "ldap" => 389,
        "ldaps" => 636,
        "rtsp" => 554,
        _ => return None,
    })
}

fn protocol(a: &Args) -> Result<ArrayRef> {
    strings(a.n, |r| Some(parse(a.str(0, r)?)?.scheme.to_string()))
}

fn host(a: &Args) -> Result<ArrayRef> {
    strings(a.n, |r| Some(parse(a.str(0, r)?)?.host.to_string()))
}

fn port(a: &Args) -> Result<ArrayRef> {
    ints(a.n, |r| {
        let u = parse(a.str(0, r)?)?;
        match u.port {
            Some(p) => p.parse().ok(),
            None => default_port(u.scheme),
        }
    })
}

fn path(a: &Args) -> Result<ArrayRef> {
    strings(a.n, |r| {
        let u = parse(a.str(0, r)?)?;
        let full = if a.len() > 1 {
            a.bool(1, r).unwrap_or(true)
        } else {
            true
        };
        Some(if full {
            u.path.to_string()
        } else {
            u.path.rsplit('/').next().unwrap_or("").to_string()
        })
    })
}

fn query_str(a: &Args) -> Result<ArrayRef> {
    let mut values: Vec<String> = Vec::new();
    let mut rows = Vec::with_capacity(a.n);
    for r in 0..a.n {
        let row = (|| {
            let u = parse(a.str(0, r)?)?;
            let anchor = a.str(1, r)?.to_ascii_lowercase();
            let mut pairs: Vec<(String, String)> = u
                .query
                .unwrap_or("")
                .split('&')
                .filter(|p| !p.is_empty())
                .map(|p| match p.split_once('=') {
                    Some((k, v)) => (k.to_string(), v.to_string()),
                    None => (p.to_string(), String::new()),
                })
                .collect();
            match (anchor.as_str(), u.fragment) {
                ("retain", Some(f)) => {
                    if let Some(last) = pairs.last_mut() {
                        last.1 = format!("{}#{f}", last.1);
                    }
                }
                ("append", Some(f)) => pairs.push(("_anchor_".to_string(), f.to_string())),
                ("retain" | "remove" | "append", _) => {}
                _ => return None,
            }
            Some(pairs)
        })();
        rows.push(row.map(|pairs| {
            pairs
                .into_iter()
                .map(|(k, v)| {
                    values.push(v);
                    (k, 0, values.len() - 1)
                })
                .collect::<Vec<_>>()
        }));
    }
    let source: ArrayRef = Arc::new(StringArray::from(values));
    build_map(&DataType::Utf8, &[source], &rows)
}

/// Percent-encoding of everything but ASCII letters, digits, `-`, `_`, `.`.
pub(crate) fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Percent-decoding; None for a malformed escape or invalid UTF-8.
pub(crate) fn url_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let h = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(h, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn encoded(a: &Args) -> Result<ArrayRef> {
    strings(a.n, |r| Some(url_encode(a.str(0, r)?)))
}

fn decoded(a: &Args) -> Result<ArrayRef> {
    strings(a.n, |r| url_decode(a.str(0, r)?))
}
