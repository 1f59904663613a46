//! The webhook target: one JSON `POST` per attempt, retried on network errors, timeouts, 408,
//! 429 and 5xx.

use std::time::Duration;

use reqwest::header::{HeaderValue, CONTENT_TYPE};
use serde_json::Value;

use super::{retrying, Attempt, DeliveryOptions};
use crate::catalog::AlertKind;
use crate::net::retry::parse_retry_after;
use crate::secret::cut as excerpt;

/// The most of a refusing response's body kept in the error.
const BODY_EXCERPT_CHARS: usize = 200;

/// Posts `body` to `url` until it is accepted (2xx), refused for good, or the attempts are spent.
pub(super) async fn deliver(
    url: reqwest::Url,
    kind: AlertKind,
    payload: &Value,
    body: &str,
    opts: &DeliveryOptions,
) -> (u32, Result<(), String>) {
    let http = match reqwest::Client::builder()
        .user_agent(concat!("stripe-xdm/", env!("CARGO_PKG_VERSION")))
        .timeout(opts.timeout)
        .connect_timeout(opts.timeout.min(Duration::from_secs(10)))
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(c) => c,
        Err(e) => return (0, Err(format!("cannot build the HTTP client: {e}"))),
    };
    let event_id = payload
        .get("event_id")
        .and_then(Value::as_str)
        .and_then(|v| HeaderValue::from_str(v).ok());
    retrying(opts, "webhook", || {
        let mut req = http
            .post(url.clone())
            .header(CONTENT_TYPE, "application/json")
            .header("x-stripe-xdm-event", kind.as_str())
            .body(body.to_string());
        if let Some(id) = &event_id {
            req = req.header("x-stripe-xdm-event-id", id.clone());
        }
        async move { attempt(req).await }
    })
    .await
}

async fn attempt(req: reqwest::RequestBuilder) -> Attempt {
    let resp = match req.send().await {
        Ok(r) => r,
        Err(e) => {
            return Attempt::Retry {
                error: crate::net::describe_error(&e),
                after: None,
            }
        }
    };
    let status = resp.status();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after);
    if status.is_success() {
        return Attempt::Done;
    }
    // The body only explains the refusal; a failure to read it does not change the outcome.
    let text = resp.text().await.unwrap_or_default();
    let error = if text.trim().is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {}", excerpt(&text, BODY_EXCERPT_CHARS))
    };
    let code = status.as_u16();
    if matches!(code, 408 | 429) || status.is_server_error() {
        Attempt::Retry {
            error,
            after: retry_after,
        }
    } else {
        Attempt::Final(error)
    }
}
