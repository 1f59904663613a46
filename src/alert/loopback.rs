//! A loopback webhook receiver: HTTP/1.1 on 127.0.0.1 that records every request and answers
//! the statuses of a script in order (then 200), for tests of [`super::deliver`] and of the
//! modules that send alerts.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use stripe_xdm::alert::loopback::WebhookReceiver;
//! let hook = WebhookReceiver::start(vec![503]).await?; // 503 once, then 200
//! // … deliver to hook.url() …
//! assert_eq!(hook.requests(), 2); // both attempts
//! assert_eq!(hook.received().len(), 1); // the accepted body
//! hook.shutdown().await;
//! # Ok(()) }
//! ```

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use serde_json::Value;

/// One request the receiver got.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedRequest {
    /// The method.
    pub method: String,
    /// The path.
    pub path: String,
    /// The query string.
    pub query: Option<String>,
    /// Headers, names lower-case (the last value of a repeated header).
    pub headers: BTreeMap<String, String>,
    /// The body as JSON (a JSON string holding the text when it is not JSON).
    pub body: Value,
    /// The status answered (the client may have given up before it arrived).
    pub status: u16,
}

#[derive(Default)]
struct Inner {
    script: VecDeque<u16>,
    seen: Vec<ReceivedRequest>,
    retry_after: Option<u32>,
    delay: Duration,
}

fn lock(m: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running receiver; dropping it stops the server.
pub struct WebhookReceiver {
    inner: Arc<Mutex<Inner>>,
    server: crate::loopback::Server,
}

impl std::fmt::Debug for WebhookReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookReceiver")
            .field("addr", &self.server.addr())
            .finish()
    }
}

impl WebhookReceiver {
    /// Starts on 127.0.0.1 with an ephemeral port. Requests get the statuses of `script` in
    /// order, then 200.
    pub async fn start(script: Vec<u16>) -> std::io::Result<WebhookReceiver> {
        let inner = Arc::new(Mutex::new(Inner {
            script: script.into(),
            ..Inner::default()
        }));
        let served = inner.clone();
        let server =
            crate::loopback::Server::start(SocketAddr::from(([127, 0, 0, 1], 0)), move |req| {
                handle(served.clone(), req)
            })
            .await?;
        Ok(WebhookReceiver { inner, server })
    }

    /// `http://127.0.0.1:PORT/hook`.
    pub fn url(&self) -> String {
        format!("http://{}/hook", self.server.addr())
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// Adds `Retry-After: <secs>` to every answer that is not 2xx (`None`: no header).
    pub fn set_retry_after(&self, secs: Option<u32>) {
        lock(&self.inner).retry_after = secs;
    }

    /// Waits this long before answering each request (to make a client time out).
    pub fn set_delay(&self, delay: Duration) {
        lock(&self.inner).delay = delay;
    }

    /// The bodies accepted (answered 2xx), in order: what was delivered. Requests answered
    /// otherwise are only in [`WebhookReceiver::seen`] and [`WebhookReceiver::requests`].
    pub fn received(&self) -> Vec<Value> {
        lock(&self.inner)
            .seen
            .iter()
            .filter(|r| (200..300).contains(&r.status))
            .map(|r| r.body.clone())
            .collect()
    }

    /// Every request received, in order.
    pub fn seen(&self) -> Vec<ReceivedRequest> {
        lock(&self.inner).seen.clone()
    }

    /// Requests received, whatever they were answered (every attempt).
    pub fn requests(&self) -> usize {
        lock(&self.inner).seen.len()
    }

    /// Stops accepting and ends the server task.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}

async fn handle(
    inner: Arc<Mutex<Inner>>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    let query = req.uri().query().map(str::to_string);
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let bytes = req.into_body().collect().await?.to_bytes();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    // Recorded on arrival, so a request the client gave up on still counts.
    let (status, retry_after, delay) = {
        let mut inner = lock(&inner);
        let status = inner.script.pop_front().unwrap_or(200);
        inner.seen.push(ReceivedRequest {
            method,
            path,
            query,
            headers,
            body,
            status,
        });
        (status, inner.retry_after, inner.delay)
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let answer = if (200..300).contains(&status) {
        r#"{"ok":true}"#.to_string()
    } else {
        format!(r#"{{"ok":false,"error":"scripted status {status}"}}"#)
    };
    let mut resp = Response::new(Full::new(Bytes::from(answer)));
    *resp.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    let h = resp.headers_mut();
    h.insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/json"),
    );
    if let (Some(secs), false) = (retry_after, (200..300).contains(&status)) {
        h.insert("retry-after", hyper::header::HeaderValue::from(secs));
    }
    Ok(resp)
}
