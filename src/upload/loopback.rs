//! A loopback Platform: the Batch Ingestion and Catalog API subset the upload uses, served over
//! HTTP/1.1 on 127.0.0.1, for tests and demos.
//!
//! Faithful where it matters to a client: the four gateway headers are required (a missing or
//! wrong bearer token is 401; a wrong API key, org or sandbox is 403), batches are created
//! `loading` (201), files are accepted with `PUT` or the large-file `INITIALIZE` / `PATCH`
//! (`Content-Range: bytes a-b/total`, syntax checked) / `COMPLETE` flow (ranges validated at
//! `COMPLETE`: an overlap or a gap is 400), `action=COMPLETE` (200, safe to repeat) moves the batch
//! to `staging`, and after [`LoopbackConfig::polls_before_final`] catalog reads it becomes
//! `success`, or `failed` when there is no file, an empty file, or a file without the Parquet
//! `PAR1` magic. Replays mark their predecessors `inactive`. Scripted faults ([`Fault`]) and an
//! inspection API ([`LoopbackPlatform::requests`], [`LoopbackPlatform::batches`]) serve tests.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use serde_json::Value;

mod api;
mod registry;

pub use api::parse_range;
use api::{err, percent_decode, route, Reply};

use super::credentials::PlatformCredentials;
use crate::Secret;

/// Who the loopback Platform accepts.
#[derive(Debug, Clone)]
pub struct LoopbackConfig {
    /// The only valid bearer token.
    pub access_token: String,
    /// The only valid `x-api-key`.
    pub api_key: String,
    /// The only valid `x-gw-ims-org-id`.
    pub org_id: String,
    /// The only valid `x-sandbox-name`.
    pub sandbox: String,
    /// Catalog reads that still answer `staging` after `action=COMPLETE`.
    pub polls_before_final: u32,
    /// The client secret its IMS token endpoint (`POST /ims/token/v3`) accepts with the API key
    /// as client id; the tokens it issues are accepted like the static one until they expire.
    pub client_secret: String,
    /// Lifetime of the tokens it issues (`expires_in`).
    pub token_lifetime: std::time::Duration,
    /// The tenant id its Schema Registry answers (`GET /schemaregistry/stats`) and puts in `$id`s.
    pub tenant: String,
}

impl Default for LoopbackConfig {
    fn default() -> Self {
        LoopbackConfig {
            access_token: "eyJloopback-access-token-7f3a9c1d2e".to_string(),
            api_key: "loopback-api-key-5b8e2d".to_string(),
            org_id: "0123456789ABCDEF01234567@AdobeOrg".to_string(),
            sandbox: "prod".to_string(),
            polls_before_final: 1,
            client_secret: "p8e-loopback-client-secret-91c4".to_string(),
            token_lifetime: std::time::Duration::from_secs(86_399),
            tenant: "stripexdmloopback".to_string(),
        }
    }
}

impl LoopbackConfig {
    /// Credentials this server accepts.
    pub fn credentials(&self) -> PlatformCredentials {
        PlatformCredentials {
            access_token: Secret::new(self.access_token.clone()),
            api_key: Secret::new(self.api_key.clone()),
            org_id: self.org_id.clone(),
            sandbox: self.sandbox.clone(),
            oauth: None,
        }
    }

    /// OAuth Server-to-Server credentials for this server: no token, a client secret, and
    /// this server (at `base_url`) as IMS.
    pub fn oauth_credentials(&self, base_url: &str) -> PlatformCredentials {
        PlatformCredentials {
            access_token: Secret::new(""),
            oauth: Some(super::ims::OAuthClient {
                client_secret: Secret::new(self.client_secret.clone()),
                scopes: super::ims::DEFAULT_SCOPES.to_string(),
                ims_url: base_url.to_string(),
            }),
            ..self.credentials()
        }
    }
}

/// What a scripted fault does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultAction {
    /// Answer with this status (and a gateway-style JSON body) whatever the request.
    Status(u16),
    /// Close the connection without answering.
    Disconnect,
}

/// A fault applied to `times` consecutive requests, after `after` requests served normally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// What happens.
    pub action: FaultAction,
    /// How many consecutive requests it affects.
    pub times: u32,
    /// Requests served normally first.
    pub after: u32,
}

impl Fault {
    /// The next request gets `status`.
    pub fn status(status: u16) -> Self {
        Fault {
            action: FaultAction::Status(status),
            times: 1,
            after: 0,
        }
    }
    /// The next request's connection is dropped.
    pub fn disconnect() -> Self {
        Fault {
            action: FaultAction::Disconnect,
            times: 1,
            after: 0,
        }
    }
    /// Affects `n` consecutive requests.
    pub fn times(mut self, n: u32) -> Self {
        self.times = n;
        self
    }
    /// Starts after `n` requests served normally.
    pub fn after(mut self, n: u32) -> Self {
        self.after = n;
        self
    }
}

/// One request received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenRequest {
    /// The method.
    pub method: String,
    /// The path (percent-decoded).
    pub path: String,
    /// The query string.
    pub query: Option<String>,
    /// Body bytes.
    pub bytes: u64,
    /// The `Content-Range` header.
    pub content_range: Option<String>,
    /// The `Content-Type` header.
    pub content_type: Option<String>,
    /// The status answered; `0` when the connection was dropped.
    pub status: u16,
}

/// A batch as the loopback Platform holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct LoopbackBatch {
    /// The id.
    pub id: String,
    /// The dataset.
    pub dataset_id: String,
    /// `loading`, `staging`, `success`, `failed`, `inactive`.
    pub status: String,
    /// `enableErrorDiagnostics` as sent.
    pub enable_error_diagnostics: Option<bool>,
    /// `partialIngestionPercent` as sent.
    pub partial_ingestion_percent: Option<f64>,
    /// `replay.predecessors` as sent.
    pub predecessors: Vec<String>,
    /// Files stored (completed), by name.
    pub files: BTreeMap<String, Bytes>,
    /// Large files initialized and not yet completed: their chunks `(start, end, bytes)`.
    pub pending_chunks: BTreeMap<String, Vec<(u64, u64, Bytes)>>,
    /// Errors of the final status.
    pub errors: Vec<Value>,
    /// Rows read from the files' Parquet footers at the final status.
    pub records: u64,
    polls_left: u32,
    created: i64,
    updated: i64,
    completed: Option<i64>,
}

impl LoopbackBatch {
    /// File sizes by name.
    pub fn file_sizes(&self) -> BTreeMap<String, u64> {
        self.files
            .iter()
            .map(|(k, v)| (k.clone(), v.len() as u64))
            .collect()
    }
}

#[derive(Default)]
struct Inner {
    batches: BTreeMap<String, LoopbackBatch>,
    requests: Vec<SeenRequest>,
    faults: VecDeque<Fault>,
    next: u64,
    /// Tokens issued by the IMS endpoint and when they expire.
    issued: Vec<(String, std::time::Instant)>,
    /// Schema Registry resources by kind (`classes`, `fieldgroups`, `schemas`, `descriptors`).
    registry: Vec<(String, Value)>,
    /// Catalog datasets by id.
    datasets: BTreeMap<String, Value>,
}

struct Shared {
    cfg: LoopbackConfig,
    inner: Mutex<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running loopback Platform; dropping it stops the server.
pub struct LoopbackPlatform {
    shared: Arc<Shared>,
    server: crate::loopback::Server,
}

impl std::fmt::Debug for LoopbackPlatform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoopbackPlatform")
            .field("addr", &self.server.addr())
            .finish()
    }
}

impl LoopbackPlatform {
    /// Starts on 127.0.0.1 with an ephemeral port.
    pub async fn start(cfg: LoopbackConfig) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            cfg,
            inner: Mutex::default(),
        });
        let served = shared.clone();
        let server =
            crate::loopback::Server::start(SocketAddr::from(([127, 0, 0, 1], 0)), move |req| {
                handle(served.clone(), req)
            })
            .await?;
        Ok(LoopbackPlatform { shared, server })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// The credentials it accepts.
    pub fn credentials(&self) -> PlatformCredentials {
        self.shared.cfg.credentials()
    }

    /// OAuth Server-to-Server credentials whose tokens its IMS endpoint issues.
    pub fn oauth_credentials(&self) -> PlatformCredentials {
        self.shared.cfg.oauth_credentials(&self.base_url())
    }

    /// The Schema Registry resources created, as `(kind, resource)` in creation order.
    pub fn registry(&self) -> Vec<(String, Value)> {
        lock(&self.shared.inner).registry.clone()
    }

    /// The datasets created, by id.
    pub fn datasets(&self) -> BTreeMap<String, Value> {
        lock(&self.shared.inner).datasets.clone()
    }

    /// Tokens its IMS endpoint has issued.
    pub fn tokens_issued(&self) -> usize {
        lock(&self.shared.inner).issued.len()
    }

    /// Queues a fault; queued faults apply in order.
    pub fn inject(&self, fault: Fault) {
        if fault.times > 0 {
            lock(&self.shared.inner).faults.push_back(fault);
        }
    }

    /// Drops the queued faults.
    pub fn clear_faults(&self) {
        lock(&self.shared.inner).faults.clear();
    }

    /// Every request received, in order.
    pub fn requests(&self) -> Vec<SeenRequest> {
        lock(&self.shared.inner).requests.clone()
    }

    /// Requests received.
    pub fn request_count(&self) -> usize {
        lock(&self.shared.inner).requests.len()
    }

    /// Forgets the requests seen.
    pub fn clear_requests(&self) {
        lock(&self.shared.inner).requests.clear();
    }

    /// Every batch, by creation order.
    pub fn batches(&self) -> Vec<LoopbackBatch> {
        let inner = lock(&self.shared.inner);
        let mut v: Vec<_> = inner.batches.values().cloned().collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    /// One batch.
    pub fn batch(&self, id: &str) -> Option<LoopbackBatch> {
        lock(&self.shared.inner).batches.get(id).cloned()
    }

    /// Stops accepting and ends the server task.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}

#[derive(Debug, thiserror::Error)]
#[error("loopback disconnect")]
struct Disconnect;

async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Disconnect> {
    let method = req.method().as_str().to_string();
    let path = percent_decode(req.uri().path());
    let query = req.uri().query().map(str::to_string);
    let headers = req.headers().clone();
    let header = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Err(Disconnect),
    };
    let mut seen = SeenRequest {
        method: method.clone(),
        path: path.clone(),
        query: query.clone(),
        bytes: body.len() as u64,
        content_range: header("content-range"),
        content_type: header("content-type"),
        status: 0,
    };
    let mut inner = lock(&shared.inner);
    let fault = next_fault(&mut inner.faults);
    let (status, value) = match fault {
        Some(FaultAction::Disconnect) => {
            inner.requests.push(seen);
            return Err(Disconnect);
        }
        Some(FaultAction::Status(s)) => err(
            s,
            &format!("{s}050"),
            format!("Injected failure (HTTP {s})."),
        ),
        None if method == "POST" && path == "/ims/token/v3" => {
            ims_token(&shared.cfg, &mut inner, &body)
        }
        None => match authorize(&shared.cfg, &inner.issued, &header) {
            Some(r) => r,
            None => match registry::route(
                &shared.cfg,
                &mut inner,
                &method,
                &path,
                query.as_deref(),
                &body,
            ) {
                Some(r) => r,
                None => route(
                    &shared.cfg,
                    &mut inner,
                    &method,
                    &path,
                    query.as_deref(),
                    &header,
                    body,
                ),
            },
        },
    };
    seen.status = status;
    inner.requests.push(seen);
    drop(inner);
    let bytes = if value.is_null() {
        Bytes::new()
    } else {
        Bytes::from(value.to_string())
    };
    let mut resp = Response::new(Full::new(bytes));
    *resp.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

fn next_fault(q: &mut VecDeque<Fault>) -> Option<FaultAction> {
    let f = q.front_mut()?;
    if f.after > 0 {
        f.after -= 1;
        return None;
    }
    let action = f.action.clone();
    f.times -= 1;
    if f.times == 0 {
        q.pop_front();
    }
    Some(action)
}

/// IMS's `POST /ims/token/v3` for the client-credentials grant.
fn ims_token(cfg: &LoopbackConfig, inner: &mut Inner, body: &Bytes) -> Reply {
    let form: BTreeMap<String, String> = String::from_utf8_lossy(body)
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| {
            (
                percent_decode(&k.replace('+', " ")),
                percent_decode(&v.replace('+', " ")),
            )
        })
        .collect();
    let denied = |error: &str, description: &str| {
        (
            401,
            serde_json::json!({"error": error, "error_description": description}),
        )
    };
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return (
            400,
            serde_json::json!({"error": "unsupported_grant_type", "error_description": "grant_type must be client_credentials"}),
        );
    }
    if form.get("client_id") != Some(&cfg.api_key) {
        return denied("invalid_client", "invalid client_id parameter");
    }
    if form.get("client_secret") != Some(&cfg.client_secret) {
        return denied("invalid_client", "invalid client_secret parameter");
    }
    inner.next += 1;
    let token = format!(
        "eyJloopback-oauth-{}-{:08x}",
        inner.next,
        inner.next.wrapping_mul(0x9e37_79b9)
    );
    inner.issued.push((
        token.clone(),
        std::time::Instant::now() + cfg.token_lifetime,
    ));
    (
        200,
        serde_json::json!({"access_token": token, "token_type": "bearer", "expires_in": cfg.token_lifetime.as_secs()}),
    )
}

fn authorize(
    cfg: &LoopbackConfig,
    issued: &[(String, std::time::Instant)],
    header: &dyn Fn(&str) -> Option<String>,
) -> Option<Reply> {
    let bearer = header("authorization");
    let token = bearer.as_deref().and_then(|b| b.strip_prefix("Bearer "));
    let now = std::time::Instant::now();
    let valid = token == Some(cfg.access_token.as_str())
        || issued
            .iter()
            .any(|(t, until)| Some(t.as_str()) == token && now < *until);
    if !valid {
        return Some(err(401, "401013", "Oauth token is not valid"));
    }
    if header("x-api-key").as_deref() != Some(cfg.api_key.as_str()) {
        return Some(err(403, "403000", "Api Key is invalid"));
    }
    match header("x-gw-ims-org-id") {
        None => return Some(err(403, "403025", "x-gw-ims-org-id header is required")),
        Some(o) if o != cfg.org_id => {
            return Some(err(
                403,
                "403025",
                "Profile is not valid for this org: the org id does not match the token",
            ))
        }
        _ => {}
    }
    match header("x-sandbox-name") {
        None => Some(err(403, "403027", "x-sandbox-name header is required")),
        Some(s) if s != cfg.sandbox => Some(err(
            403,
            "403027",
            format!("User does not have access to sandbox '{s}'"),
        )),
        _ => None,
    }
}
