//! What every HTTP client of the crate shares (the Stripe client, the Platform upload client,
//! alert webhooks): the retry policy and how a transport error is described.

pub mod retry;

pub use retry::RetryPolicy;

/// A reqwest error described with its cause chain but without the URL (which may carry
/// query parameters).
pub(crate) fn describe_error(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "reading the response body failed"
    } else {
        "request failed"
    };
    let mut out = kind.to_string();
    let mut src: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(s) = src {
        out.push_str(": ");
        out.push_str(&s.to_string());
        src = s.source();
    }
    out
}
