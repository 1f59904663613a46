//! The HTTP side of the upload: Platform's gateway headers, one request with its retries, and the
//! errors built from a failed response (with a hint naming the credential to check).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_RANGE, CONTENT_TYPE};
use reqwest::Method;

use super::credentials::PlatformCredentials;
use super::error::UploadError;
use super::UploadConfig;
use crate::net::retry::{parse_retry_after, RetryPolicy};

/// A request body.
#[derive(Debug, Clone)]
pub enum Content {
    /// No body (`Content-Type: application/json` is still sent, as Platform's examples do).
    Empty,
    /// A JSON document.
    Json(Bytes),
    /// File bytes, with the `Content-Range` of a chunk.
    Octets {
        /// The bytes.
        body: Bytes,
        /// `bytes a-b/total` for a large-file chunk.
        range: Option<String>,
    },
}

/// A client for Platform's import and catalog APIs.
#[derive(Debug)]
pub struct PlatformClient {
    http: reqwest::Client,
    base: String,
    creds: PlatformCredentials,
    policy: RetryPolicy,
    requests: AtomicU64,
    retries: AtomicU64,
}

fn header(
    name: &'static str,
    value: &str,
    what: &str,
    sensitive: bool,
) -> Result<(HeaderName, HeaderValue), UploadError> {
    let mut v = HeaderValue::from_str(value).map_err(|_| {
        UploadError::Credentials(format!(
            "{what} contains characters not allowed in an HTTP header"
        ))
    })?;
    v.set_sensitive(sensitive);
    Ok((HeaderName::from_static(name), v))
}

impl PlatformClient {
    /// A client with the four gateway headers set on every request.
    pub fn new(cfg: &UploadConfig) -> Result<Self, UploadError> {
        let c = &cfg.credentials;
        let mut headers = HeaderMap::new();
        for (name, value, what, sensitive) in [
            (
                "authorization",
                format!("Bearer {}", c.access_token.expose()),
                "the access token (AEP_ACCESS_TOKEN)",
                true,
            ),
            (
                "x-api-key",
                c.api_key.expose().to_string(),
                "the API key (AEP_API_KEY)",
                true,
            ),
            (
                "x-gw-ims-org-id",
                c.org_id.clone(),
                "the org id (AEP_ORG_ID)",
                false,
            ),
            (
                "x-sandbox-name",
                c.sandbox.clone(),
                "the sandbox name (AEP_SANDBOX)",
                false,
            ),
        ] {
            let (n, v) = header(name, &value, what, sensitive)?;
            headers.insert(n, v);
        }
        let base = cfg.base_url.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(UploadError::Config(format!(
                "base URL {base} must start with http:// or https://"
            )));
        }
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .user_agent(concat!("stripe-xdm/", env!("CARGO_PKG_VERSION")))
            .timeout(cfg.request_timeout)
            .connect_timeout(cfg.request_timeout.min(Duration::from_secs(30)))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| UploadError::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(PlatformClient {
            http,
            base,
            creds: c.clone(),
            policy: RetryPolicy {
                max_retries: cfg.max_retries,
                base: cfg.backoff_base,
                max: cfg.backoff_max,
            },
            requests: AtomicU64::new(0),
            retries: AtomicU64::new(0),
        })
    }

    /// Requests sent (every attempt).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Retries made.
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    /// Sends `method path_and_query` until it succeeds (2xx), fails for good, or runs out of
    /// retries. 429, 5xx and network errors are retried with jittered exponential backoff
    /// (`Retry-After` honoured); every other status is final.
    pub async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        content: Content,
    ) -> Result<Bytes, UploadError> {
        let endpoint = format!("{method} {path_and_query}");
        let url = format!("{}{}", self.base, path_and_query);
        let mut retry = 0u32;
        loop {
            self.requests.fetch_add(1, Ordering::Relaxed);
            let (status, last_error, retry_after) =
                match self.attempt(&method, &url, &content).await {
                    Ok(Ok(body)) => return Ok(body),
                    Ok(Err((status, body, retry_after))) => {
                        if !(status == 429 || status >= 500) {
                            return Err(self.final_error(&endpoint, status, &body));
                        }
                        (
                            Some(status),
                            format!("HTTP {status}: {}", self.message(&body)),
                            retry_after,
                        )
                    }
                    Err(e) => (None, e, None),
                };
            if retry >= self.policy.max_retries {
                return Err(UploadError::RetriesExhausted {
                    endpoint,
                    attempts: retry + 1,
                    last_status: status,
                    last_error,
                });
            }
            retry += 1;
            self.retries.fetch_add(1, Ordering::Relaxed);
            let wait = self.policy.delay(retry, retry_after);
            tracing::warn!(endpoint = %endpoint, retry, wait_ms = wait.as_millis() as u64, error = %last_error, "retrying Platform request");
            tokio::time::sleep(wait).await;
        }
    }

    /// One attempt: `Ok(Ok(body))` on 2xx, `Ok(Err(status, body, retry_after))` on another
    /// status, `Err(description)` on a network failure.
    #[allow(clippy::type_complexity)]
    async fn attempt(
        &self,
        method: &Method,
        url: &str,
        content: &Content,
    ) -> Result<Result<Bytes, (u16, Bytes, Option<Duration>)>, String> {
        let mut req = self.http.request(method.clone(), url);
        req = match content {
            Content::Empty => req.header(CONTENT_TYPE, "application/json"),
            Content::Json(b) => req.header(CONTENT_TYPE, "application/json").body(b.clone()),
            Content::Octets { body, range } => {
                let r = req
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .body(body.clone());
                match range {
                    Some(range) => r.header(CONTENT_RANGE, range.as_str()),
                    None => r,
                }
            }
        };
        let resp = req
            .send()
            .await
            .map_err(|e| crate::net::describe_error(&e))?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let body = resp
            .bytes()
            .await
            .map_err(|e| crate::net::describe_error(&e))?;
        tracing::debug!(url, status, bytes = body.len(), "Platform response");
        if (200..300).contains(&status) {
            Ok(Ok(body))
        } else {
            Ok(Err((status, body, retry_after)))
        }
    }

    fn final_error(&self, endpoint: &str, status: u16, body: &[u8]) -> UploadError {
        let message = self.message(body);
        let endpoint = endpoint.to_string();
        match status {
            401 => UploadError::Unauthorized { endpoint, message },
            403 => UploadError::Forbidden {
                endpoint,
                message,
                org_id: self.creds.org_id.clone(),
                sandbox: self.creds.sandbox.clone(),
            },
            _ => UploadError::Http {
                endpoint,
                status,
                message,
            },
        }
    }

    /// Platform's message from an error body (`message`, `detail`, `title`, …), or an excerpt;
    /// scrubbed of the credentials.
    fn message(&self, body: &[u8]) -> String {
        let text = match serde_json::from_slice::<serde_json::Value>(body) {
            Ok(v) => {
                let field = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
                let code = field("error_code").or_else(|| field("code"));
                let msg = field("message")
                    .or_else(|| field("detail"))
                    .or_else(|| field("title"));
                match (code, msg) {
                    (Some(c), Some(m)) => format!("{m} ({c})"),
                    (None, Some(m)) => m,
                    _ => excerpt(body),
                }
            }
            Err(_) if body.iter().all(u8::is_ascii_whitespace) => "empty response body".to_string(),
            Err(_) => excerpt(body),
        };
        self.creds.scrub(&text)
    }
}

fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(1024)]);
    text.trim().chars().take(200).collect()
}
