//! Responses: Stripe's error bodies, key parsing and masking, conversion to hyper.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use hyper::{Response, StatusCode};

use super::json::push_str;

/// A response before the common headers are added.
pub(super) struct Reply {
    pub(super) status: u16,
    pub(super) body: Vec<u8>,
    pub(super) headers: Vec<(String, String)>,
}

impl Reply {
    pub(super) fn json(status: u16, body: Vec<u8>) -> Self {
        Reply {
            status,
            body,
            headers: Vec::new(),
        }
    }

    pub(super) fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }
}

/// A Stripe error body: `{"error":{"code":…,"doc_url":…,"message":…,"param":…,"type":…}}`.
pub(super) fn error_body(
    kind: &str,
    code: Option<&str>,
    message: &str,
    param: Option<&str>,
) -> Vec<u8> {
    let mut b = Vec::with_capacity(256);
    b.extend_from_slice(b"{\"error\":{");
    if let Some(code) = code {
        b.extend_from_slice(b"\"code\":");
        push_str(&mut b, code);
        b.extend_from_slice(b",\"doc_url\":");
        push_str(
            &mut b,
            &format!(
                "https://stripe.com/docs/error-codes/{}",
                code.replace('_', "-")
            ),
        );
        b.push(b',');
    }
    b.extend_from_slice(b"\"message\":");
    push_str(&mut b, message);
    if let Some(param) = param {
        b.extend_from_slice(b",\"param\":");
        push_str(&mut b, param);
    }
    b.extend_from_slice(b",\"type\":");
    push_str(&mut b, kind);
    b.extend_from_slice(b"}}");
    b
}

const RATE_LIMIT_MESSAGE: &str = "Request rate limit exceeded. You can learn more about rate limits here https://stripe.com/docs/rate-limits.";
const MISSING_KEY_MESSAGE: &str = "You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for details, or we can help at https://support.stripe.com/.";

/// `sk_test_****4242`: the key's mode prefix, stars, its last four characters.
fn mask(key: &str) -> String {
    let prefix_len = key.match_indices('_').nth(1).map_or(0, |(i, _)| i + 1);
    let chars: Vec<char> = key[prefix_len..].chars().collect();
    let tail: String = chars[chars.len().saturating_sub(4)..].iter().collect();
    format!("{}****{tail}", &key[..prefix_len])
}

pub(super) fn unauthorized(key: Option<&str>) -> Reply {
    let message = match key {
        Some(k) => format!("Invalid API Key provided: {}", mask(k)),
        None => MISSING_KEY_MESSAGE.to_string(),
    };
    Reply::json(
        401,
        error_body("invalid_request_error", None, &message, None),
    )
    .header("WWW-Authenticate", "Bearer realm=\"Stripe\"")
}

pub(super) fn forbidden(key: &str, account: &str, object: &str) -> Reply {
    let message = format!(
        "The provided key '{}' does not have the required permissions for this endpoint on account '{account}'. Having the 'rak_{object}_read' permission would allow this request to continue.",
        mask(key)
    );
    Reply::json(
        403,
        error_body("invalid_request_error", None, &message, None),
    )
}

pub(super) fn unrecognized(method: &str, path: &str) -> Reply {
    let message = format!("Unrecognized request URL ({method}: {path}). Please see https://stripe.com/docs or we can help at https://support.stripe.com/.");
    Reply::json(
        404,
        error_body("invalid_request_error", None, &message, None),
    )
}

pub(super) fn rate_limited() -> Reply {
    Reply::json(
        429,
        error_body(
            "invalid_request_error",
            Some("rate_limit"),
            RATE_LIMIT_MESSAGE,
            None,
        ),
    )
}

pub(super) fn server_error(status: u16) -> Reply {
    let message = match status {
        502 | 504 => "Error while communicating with one of our backends.  Sorry about that!  We have been notified of the problem.",
        _ => "An unknown error occurred",
    };
    Reply::json(status, error_body("api_error", None, message, None))
}

/// The key from `Authorization: Bearer <key>` or HTTP Basic with the key as username.
pub(super) fn api_key(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, rest) = value.split_once(' ')?;
    let key = if scheme.eq_ignore_ascii_case("bearer") {
        rest.trim().to_string()
    } else if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64_decode(rest.trim())?;
        let text = String::from_utf8(decoded).ok()?;
        text.split(':').next()?.to_string()
    } else {
        return None;
    };
    (!key.is_empty()).then_some(key)
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes().filter(|&c| c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

pub(super) fn into_response(reply: Reply) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(reply.body)));
    *resp.status_mut() =
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = resp.headers_mut();
    h.insert("content-type", HeaderValue::from_static("application/json"));
    h.insert(
        "cache-control",
        HeaderValue::from_static("no-cache, no-store"),
    );
    for (name, value) in reply.headers {
        if let (Ok(name), Ok(value)) = (
            hyper::header::HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            h.append(name, value);
        }
    }
    resp
}
