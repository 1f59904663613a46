//! The source's error type. No variant ever holds the API key; only masked forms appear in hints.

use super::envelope::EnvelopeError;
use super::page::Window;

/// Everything that can go wrong while reading from Stripe.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Stripe answered with an error that is not retried (400, 401, 403, 404, other 4xx, or any
    /// status with `Stripe-Should-Retry: false`).
    #[error("{endpoint} failed: HTTP {status}{}: {}{}{}", type_code(.error_type, .code, .param), clip(.message), rid(.request_id), hint_text(.hint))]
    Stripe {
        /// The HTTP status.
        status: u16,
        /// The endpoint, e.g. `GET /v1/charges`.
        endpoint: String,
        /// Stripe's `error.type` (`invalid_request_error`, `api_error`, …).
        error_type: Option<String>,
        /// Stripe's `error.code` (`resource_missing`, `rate_limit`, …).
        code: Option<String>,
        /// Stripe's `error.message`, or a description of a non-JSON body (first 200 chars).
        message: String,
        /// Stripe's `error.param`.
        param: Option<String>,
        /// The `Request-Id` response header.
        request_id: Option<String>,
        /// What to check, for statuses with a usual cause (401, 403, 404).
        hint: Option<String>,
    },
    /// A retryable failure persisted through every allowed attempt.
    #[error("{endpoint} failed after {attempts} attempts{}: {}{}", last_status.map(|s| format!(" (last status HTTP {s})")).unwrap_or_default(), clip(.last_error), rid(.request_id))]
    RetriesExhausted {
        /// The endpoint, e.g. `GET /v1/charges`.
        endpoint: String,
        /// Attempts made (the first plus the retries).
        attempts: u32,
        /// The last HTTP status, or `None` if the last attempt was a network error.
        last_status: Option<u16>,
        /// The last `Request-Id` seen.
        request_id: Option<String>,
        /// The last failure, described.
        last_error: String,
    },
    /// A network failure that is not retried (the request could not be built).
    #[error("{endpoint}: network error: {message}")]
    Network {
        /// The endpoint, e.g. `GET /v1/charges`.
        endpoint: String,
        /// The transport's description (never contains the key).
        message: String,
    },
    /// A 2xx list response whose envelope cannot be split into records.
    #[error("{endpoint} returned a malformed list{}: {source}", rid(.request_id))]
    Envelope {
        /// The endpoint, e.g. `GET /v1/charges`.
        endpoint: String,
        /// The `Request-Id` response header.
        request_id: Option<String>,
        /// Where and why the scan failed.
        #[source]
        source: EnvelopeError,
    },
    /// A 2xx response that is not the JSON expected (e.g. `/v1/account` not an object).
    #[error("{endpoint} returned an unreadable response{}: {message}", rid(.request_id))]
    InvalidResponse {
        /// The endpoint.
        endpoint: String,
        /// The `Request-Id` response header.
        request_id: Option<String>,
        /// What is wrong.
        message: String,
    },
    /// Pagination cannot advance: `has_more` is true but the cursor would not move.
    #[error("{endpoint}: pagination is stuck after cursor {} in window {window}: {reason}", .cursor.as_deref().unwrap_or("(first page)"))]
    StuckCursor {
        /// The endpoint, e.g. `GET /v1/charges`.
        endpoint: String,
        /// The `starting_after` cursor of the page that could not advance.
        cursor: Option<String>,
        /// The `created` window being listed.
        window: Window,
        /// Why it cannot advance.
        reason: String,
    },
    /// The client configuration is unusable (bad base URL, publishable key, …).
    #[error("invalid Stripe client configuration: {0}")]
    Config(String),
}

impl SourceError {
    /// True for authentication/authorisation failures (HTTP 401 or 403) and for an unusable key
    /// in the configuration: the CLI maps these to exit code 2.
    pub fn is_auth(&self) -> bool {
        match self {
            SourceError::Stripe { status, .. } => matches!(status, 401 | 403),
            SourceError::Config(msg) => msg.contains("key"),
            _ => false,
        }
    }

    /// True when the caller must fix something before trying again (exit code 2): a request
    /// Stripe refuses (4xx other than 429), a client that cannot be configured or a request that
    /// cannot be built. Retries exhausted (Stripe's 5xx and 429, or a network that does not
    /// answer, the usual outage), a malformed list or a cursor that does not advance are
    /// failures to retry later (exit code 1).
    pub fn is_usage(&self) -> bool {
        match self {
            SourceError::Stripe { status, .. } => (400..500).contains(status) && *status != 429,
            SourceError::Config(_) | SourceError::Network { .. } => true,
            SourceError::RetriesExhausted { .. }
            | SourceError::Envelope { .. }
            | SourceError::InvalidResponse { .. }
            | SourceError::StuckCursor { .. } => false,
        }
    }

    /// A Stripe refusal with `status`, as tests of the exit-code rules need one.
    #[cfg(test)]
    pub(crate) fn refused(status: u16) -> SourceError {
        SourceError::Stripe {
            status,
            endpoint: "GET /v1/charges".into(),
            error_type: None,
            code: None,
            message: "refused".into(),
            param: None,
            request_id: None,
            hint: None,
        }
    }

    /// The HTTP status behind this error, if any.
    pub fn status(&self) -> Option<u16> {
        match self {
            SourceError::Stripe { status, .. } => Some(*status),
            SourceError::RetriesExhausted { last_status, .. } => *last_status,
            _ => None,
        }
    }

    /// The Stripe `Request-Id` behind this error, if any.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            SourceError::Stripe { request_id, .. }
            | SourceError::RetriesExhausted { request_id, .. }
            | SourceError::Envelope { request_id, .. }
            | SourceError::InvalidResponse { request_id, .. } => request_id.as_deref(),
            _ => None,
        }
    }
}

/// Longest message printed by `Display` (Stripe messages may be up to 40000 chars).
const DISPLAY_MESSAGE_CHARS: usize = 1000;

fn clip(s: &str) -> String {
    truncate_chars(s, DISPLAY_MESSAGE_CHARS)
}

/// The first `n` characters of `s`, with `…` if cut.
pub(crate) fn truncate_chars(s: &str, n: usize) -> String {
    match s.char_indices().nth(n) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

fn type_code(t: &Option<String>, c: &Option<String>, p: &Option<String>) -> String {
    let parts: Vec<String> = [
        t.clone(),
        c.as_ref().map(|c| format!("code {c}")),
        p.as_ref().map(|p| format!("param {p}")),
    ]
    .into_iter()
    .flatten()
    .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!(" ({})", parts.join(", "))
    }
}

fn rid(r: &Option<String>) -> String {
    r.as_ref()
        .map(|r| format!(" [request-id {r}]"))
        .unwrap_or_default()
}

fn hint_text(h: &Option<String>) -> String {
    h.as_ref()
        .map(|h| format!(". Hint: {h}"))
        .unwrap_or_default()
}
