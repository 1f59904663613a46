//! A scriptable HTTP stub on loopback: records every request and answers from a queue of
//! scripted actions, falling back to a default handler when the queue is empty.

#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A scripted HTTP response.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Wait this long before answering.
    pub delay: Duration,
}

impl Reply {
    /// A JSON response.
    pub fn json(status: u16, body: impl Into<String>) -> Self {
        Reply {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.into().into_bytes(),
            delay: Duration::ZERO,
        }
    }

    /// A Stripe error body `{"error":{type,code,message}}`.
    pub fn stripe_error(status: u16, error_type: &str, code: &str, message: &str) -> Self {
        let body = serde_json::json!({
            "error": {"type": error_type, "code": code, "message": message}
        });
        Reply::json(status, body.to_string())
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Delays the answer.
    pub fn delayed(mut self, d: Duration) -> Self {
        self.delay = d;
        self
    }
}

/// What the stub does with one request.
#[derive(Debug, Clone)]
pub enum Action {
    /// Answer.
    Reply(Reply),
    /// Drop the connection without answering (a reset mid-request).
    Reset,
}

impl From<Reply> for Action {
    fn from(r: Reply) -> Self {
        Action::Reply(r)
    }
}

/// One request as the stub saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub at: Instant,
    pub method: String,
    pub path: String,
    /// The raw query string.
    pub query: String,
    /// The decoded query pairs, in order.
    pub params: Vec<(String, String)>,
    /// Headers, names lowercased.
    pub headers: HashMap<String, String>,
}

impl Recorded {
    /// The first value of query parameter `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A header's value (name case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
}

type Handler = Arc<dyn Fn(&Recorded) -> Action + Send + Sync>;

struct State {
    requests: Mutex<Vec<Recorded>>,
    script: Mutex<VecDeque<Action>>,
    default: Handler,
}

/// A running stub server; stops when dropped.
pub struct Stub {
    addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl Stub {
    /// A stub whose default answer is a 404 Stripe error.
    pub async fn start() -> Stub {
        Stub::with_handler(|r| {
            Reply::stripe_error(
                404,
                "invalid_request_error",
                "resource_missing",
                &format!("Unrecognized request URL (GET: {})", r.path),
            )
            .into()
        })
        .await
    }

    /// A stub answering with `handler` whenever the script is empty.
    pub async fn with_handler(
        handler: impl Fn(&Recorded) -> Action + Send + Sync + 'static,
    ) -> Stub {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().unwrap();
        Stub::spawn(addr, Some(listener), Duration::ZERO, Arc::new(handler))
    }

    /// A stub that only starts listening after `delay`: until then connections are refused.
    pub async fn start_after(
        delay: Duration,
        handler: impl Fn(&Recorded) -> Action + Send + Sync + 'static,
    ) -> Stub {
        let probe = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = probe.local_addr().unwrap();
        drop(probe);
        Stub::spawn(addr, None, delay, Arc::new(handler))
    }

    fn spawn(
        addr: SocketAddr,
        listener: Option<TcpListener>,
        delay: Duration,
        default: Handler,
    ) -> Stub {
        let state = Arc::new(State {
            requests: Mutex::new(Vec::new()),
            script: Mutex::new(VecDeque::new()),
            default,
        });
        let st = Arc::clone(&state);
        let task = tokio::spawn(async move {
            let listener = match listener {
                Some(l) => l,
                None => {
                    tokio::time::sleep(delay).await;
                    TcpListener::bind(addr)
                        .await
                        .expect("re-bind reserved port")
                }
            };
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let st = Arc::clone(&st);
                tokio::spawn(async move {
                    let svc = service_fn(move |req| handle(Arc::clone(&st), req));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Stub { addr, state, task }
    }

    /// The base URL, `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Queues an action for the next unanswered request.
    pub fn push(&self, action: impl Into<Action>) {
        self.state.script.lock().unwrap().push_back(action.into());
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().unwrap().clone()
    }
}

impl Drop for Stub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, std::io::Error> {
    let uri = req.uri().clone();
    let query = uri.query().unwrap_or("").to_string();
    let params = reqwest::Url::parse(&format!("http://stub/?{query}"))
        .map(|u| u.query_pairs().into_owned().collect())
        .unwrap_or_default();
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let rec = Recorded {
        at: Instant::now(),
        method: req.method().to_string(),
        path: uri.path().to_string(),
        query,
        params,
        headers,
    };
    state.requests.lock().unwrap().push(rec.clone());
    let scripted = state.script.lock().unwrap().pop_front();
    let action = scripted.unwrap_or_else(|| (state.default)(&rec));
    match action {
        Action::Reset => Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "stub: scripted reset",
        )),
        Action::Reply(r) => {
            if !r.delay.is_zero() {
                tokio::time::sleep(r.delay).await;
            }
            let mut resp = Response::builder().status(r.status);
            for (k, v) in &r.headers {
                resp = resp.header(k, v);
            }
            Ok(resp.body(Full::new(Bytes::from(r.body))).unwrap())
        }
    }
}

/// A default handler serving a list of `n` objects with ids `<prefix>NNNN`, newest first, paged by
/// `limit` and `starting_after` like Stripe, with a `Request-Id` per response.
pub fn paged_list(prefix: &str, n: usize) -> impl Fn(&Recorded) -> Action + Send + Sync + 'static {
    let ids: Vec<String> = (0..n).rev().map(|i| format!("{prefix}{i:04}")).collect();
    let counter = std::sync::atomic::AtomicU64::new(0);
    move |r: &Recorded| {
        let limit: usize = r.param("limit").and_then(|l| l.parse().ok()).unwrap_or(10);
        let start = match r.param("starting_after") {
            Some(c) => match ids.iter().position(|id| id == c) {
                Some(p) => p + 1,
                None => {
                    return Reply::stripe_error(
                        400,
                        "invalid_request_error",
                        "resource_missing",
                        &format!("No such object: '{c}'"),
                    )
                    .into()
                }
            },
            None => 0,
        };
        let end = (start + limit).min(ids.len());
        let data: Vec<serde_json::Value> = ids[start..end]
            .iter()
            .map(|id| serde_json::json!({"id": id, "object": "charge", "amount": 100}))
            .collect();
        let body = serde_json::json!({
            "object": "list", "data": data, "has_more": end < ids.len(), "url": r.path,
        });
        let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Reply::json(200, body.to_string())
            .header("Request-Id", &format!("req_stub{n}"))
            .into()
    }
}
