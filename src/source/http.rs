//! The HTTP side of [`StripeClient`]: the retry loop around each request, one attempt and its
//! classification, and the error built from a non-2xx response.

use std::time::Duration;

use bytes::Bytes;
use reqwest::Url;
use serde::Deserialize;

use super::client::{bump, StripeClient};
use super::error::{truncate_chars, SourceError};
use crate::net::retry;

/// A successful (2xx) response.
pub(super) struct Fetched {
    pub(super) body: Bytes,
    pub(super) request_id: Option<String>,
}

/// A failed attempt, with what the retry loop needs to decide.
struct Failure {
    error: SourceError,
    retryable: bool,
    retry_after: Option<Duration>,
    status: Option<u16>,
    request_id: Option<String>,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ApiError,
}

#[derive(Deserialize)]
struct ApiError {
    #[serde(rename = "type")]
    error_type: Option<String>,
    code: Option<String>,
    message: Option<String>,
    param: Option<String>,
}

impl StripeClient {
    /// Sends GET `url` until it succeeds, fails for good, or runs out of retries.
    pub(super) async fn execute(&self, endpoint: &str, url: Url) -> Result<Fetched, SourceError> {
        let policy = self.inner.policy;
        let mut retry = 0u32;
        loop {
            self.inner.budget.acquire(endpoint).await;
            bump(&self.inner.counters.requests, 1);
            let failure = match self.attempt(endpoint, &url).await {
                Ok(f) => return Ok(f),
                Err(f) => f,
            };
            if !failure.retryable {
                return Err(failure.error);
            }
            if retry >= policy.max_retries {
                return Err(SourceError::RetriesExhausted {
                    endpoint: endpoint.to_string(),
                    attempts: retry + 1,
                    last_status: failure.status,
                    request_id: failure.request_id,
                    last_error: without_endpoint(&failure.error.to_string(), endpoint),
                });
            }
            retry += 1;
            bump(&self.inner.counters.retries, 1);
            let wait = policy.delay(retry, failure.retry_after);
            tracing::warn!(
                endpoint,
                retry,
                wait_ms = wait.as_millis() as u64,
                error = %failure.error,
                "retrying"
            );
            tokio::time::sleep(wait).await;
        }
    }

    /// One attempt: send, read the body, classify.
    async fn attempt(&self, endpoint: &str, url: &Url) -> Result<Fetched, Failure> {
        // The server's origin (scheme, host, port: no path or query) says where the request
        // went, e.g. a `--api-base-url` with the wrong port.
        let network = |e: reqwest::Error, retryable: bool| Failure {
            error: SourceError::Network {
                endpoint: endpoint.to_string(),
                message: format!(
                    "{} (at {})",
                    crate::net::describe_error(&e),
                    url.origin().ascii_serialization()
                ),
            },
            retryable,
            retry_after: None,
            status: None,
            request_id: None,
        };
        let resp = match self.inner.http.get(url.clone()).send().await {
            Ok(r) => r,
            Err(e) => {
                let retryable = !e.is_builder();
                return Err(network(e, retryable));
            }
        };
        let status = resp.status().as_u16();
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let request_id = header("request-id");
        let should_retry =
            header("stripe-should-retry").and_then(|v| retry::parse_should_retry(&v));
        let retry_after = header("retry-after").and_then(|v| retry::parse_retry_after(&v));
        let body = match resp.bytes().await {
            Ok(b) => b,
            Err(e) => {
                let mut f = network(e, true);
                f.status = Some(status);
                f.request_id = request_id;
                return Err(f);
            }
        };
        let c = &self.inner.counters;
        bump(&c.bytes_in, body.len() as u64);
        tracing::debug!(
            endpoint,
            status,
            bytes = body.len(),
            request_id = request_id.as_deref().unwrap_or(""),
            "response"
        );
        if (200..300).contains(&status) {
            return Ok(Fetched { body, request_id });
        }
        if status == 429 {
            bump(&c.throttled, 1);
        }
        if status >= 500 {
            bump(&c.server_errors, 1);
        }
        Err(Failure {
            error: self.stripe_error(status, endpoint, &body, request_id.clone()),
            retryable: retry::status_is_retryable(status, should_retry),
            retry_after,
            status: Some(status),
            request_id,
        })
    }

    /// Builds the error for a non-2xx response, with a hint for the usual causes.
    fn stripe_error(
        &self,
        status: u16,
        endpoint: &str,
        body: &[u8],
        request_id: Option<String>,
    ) -> SourceError {
        let (error_type, code, message, param) = match serde_json::from_slice::<ErrorBody>(body) {
            Ok(ErrorBody { error: e }) => (
                e.error_type,
                e.code,
                e.message.unwrap_or_else(|| "(no message)".to_string()),
                e.param,
            ),
            Err(_) if body.iter().all(u8::is_ascii_whitespace) => {
                (None, None, "empty response body".to_string(), None)
            }
            Err(_) => (
                None,
                None,
                format!("non-JSON response body: {}", excerpt(body)),
                None,
            ),
        };
        let cfg = &self.inner.cfg;
        // Stripe masks keys in its messages; make sure ours is never echoed in full regardless.
        let message = message.replace(cfg.key.expose(), &cfg.key.masked());
        let key = cfg.key.expose();
        let hint = match status {
            401 => Some(match cfg.key.stripe_mode() {
                Some(mode) => format!(
                    "check the API key ({}, a {mode}-mode key): it may be wrong, for the other mode (test vs live), or revoked/rolled",
                    cfg.key.masked()
                ),
                None => format!(
                    "check the API key ({}): it is not shaped like a Stripe secret key (sk_test_…, sk_live_…, rk_…)",
                    cfg.key.masked()
                ),
            }),
            403 if key.starts_with("rk_") => Some(format!(
                "the restricted key {} lacks read permission on this resource ({endpoint}): grant it 'Read' in the Dashboard under Developers → API keys",
                cfg.key.masked()
            )),
            403 => Some(format!(
                "the key {} lacks permission for {endpoint}{}",
                cfg.key.masked(),
                cfg.stripe_account
                    .as_deref()
                    .map(|a| format!(" or for the connected account {a}"))
                    .unwrap_or_default()
            )),
            404 => Some(match &cfg.stripe_account {
                Some(a) => format!("check the Stripe-Account {a} and the base URL {}", self.inner.base),
                None => format!("check the base URL {}", self.inner.base),
            }),
            _ => None,
        };
        SourceError::Stripe {
            status,
            endpoint: endpoint.to_string(),
            error_type,
            code,
            message,
            param,
            request_id,
            hint,
        }
    }
}

/// An error's text without its leading endpoint (the caller names the endpoint once).
fn without_endpoint(text: &str, endpoint: &str) -> String {
    text.strip_prefix(endpoint)
        .map(|rest| {
            rest.trim_start_matches(" failed")
                .trim_start_matches(':')
                .trim_start()
        })
        .unwrap_or(text)
        .to_string()
}

/// The first 200 characters of a body, lossily decoded.
pub(super) fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(1024)]);
    truncate_chars(text.trim(), 200)
}
