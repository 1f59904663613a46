//! The HTTP/1.1 front: accepting, routing, auth, fault injection, statistics.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};

use super::dataset::{hash, ns, push_base62, salt, unit};
use super::json::{push_i64, push_str};
use super::reply::{
    api_key, error_body, forbidden, into_response, rate_limited, server_error, unauthorized,
    unrecognized, Reply,
};
use super::{ListParams, Simulator, SIM_API_VERSION};
use crate::Resource;

/// What a scripted fault does to one response.
#[derive(Debug, Clone, PartialEq)]
pub enum FaultAction {
    /// Answer with `status`, extra `headers` and `body` (Stripe's body for the status when
    /// `None`), whatever the request.
    Respond {
        /// The HTTP status.
        status: u16,
        /// Extra response headers, e.g. `Retry-After`.
        headers: Vec<(String, String)>,
        /// The body; `None` for a Stripe-style error body matching the status.
        body: Option<String>,
    },
    /// Wait, then serve the request normally.
    Delay(Duration),
    /// Close the connection without answering.
    Disconnect,
}

/// A fault for the next [`ScriptedFault::times`] responses, queued with
/// [`SimHandle::inject`]; queued faults apply in order, then normal service resumes.
#[derive(Debug, Clone, PartialEq)]
pub struct ScriptedFault {
    /// What happens.
    pub action: FaultAction,
    /// How many consecutive responses it affects.
    pub times: u32,
}

impl ScriptedFault {
    /// The next response has this status and Stripe's error body for it.
    pub fn status(status: u16) -> Self {
        ScriptedFault {
            action: FaultAction::Respond {
                status,
                headers: Vec::new(),
                body: None,
            },
            times: 1,
        }
    }

    /// A 429 `rate_limit`, with `Retry-After: <secs>` if given.
    pub fn rate_limit(retry_after_secs: Option<u64>) -> Self {
        let f = ScriptedFault::status(429);
        match retry_after_secs {
            Some(s) => f.with_header("Retry-After", s.to_string()),
            None => f,
        }
    }

    /// A 5xx `api_error`, with `Stripe-Should-Retry` if given.
    pub fn server_error(status: u16, should_retry: Option<bool>) -> Self {
        let f = ScriptedFault::status(status);
        match should_retry {
            Some(b) => f.with_header("Stripe-Should-Retry", b.to_string()),
            None => f,
        }
    }

    /// Delays the next response, then serves it normally.
    pub fn delay(d: Duration) -> Self {
        ScriptedFault {
            action: FaultAction::Delay(d),
            times: 1,
        }
    }

    /// Drops the connection instead of answering.
    pub fn disconnect() -> Self {
        ScriptedFault {
            action: FaultAction::Disconnect,
            times: 1,
        }
    }

    /// Adds a response header (only for [`FaultAction::Respond`]).
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        if let FaultAction::Respond { headers, .. } = &mut self.action {
            headers.push((name.into(), value.into()));
        }
        self
    }

    /// Replaces the body (only for [`FaultAction::Respond`]).
    pub fn with_body(mut self, text: impl Into<String>) -> Self {
        if let FaultAction::Respond { body, .. } = &mut self.action {
            *body = Some(text.into());
        }
        self
    }

    /// Applies the fault to `n` consecutive responses.
    pub fn times(mut self, n: u32) -> Self {
        self.times = n;
        self
    }
}

/// Counters since the server started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Requests received (answered or dropped).
    pub requests: u64,
    /// Responses by HTTP status.
    pub by_status: BTreeMap<u16, u64>,
    /// 429s injected (random or scripted).
    pub injected_429: u64,
    /// 5xx injected (random or scripted).
    pub injected_5xx: u64,
    /// Responses delayed on purpose (random or scripted).
    pub delayed: u64,
    /// Connections dropped on purpose.
    pub disconnects: u64,
    /// Objects served in list and retrieve responses.
    pub objects: u64,
    /// The most requests received within one wall-clock second since start.
    pub peak_rps: u64,
    /// 429s from the enforced [`super::Faults::rate_limit`] (the client went too fast).
    pub limited_429: u64,
    /// Requests by the connected account they named (`Stripe-Account`).
    pub by_stripe_account: BTreeMap<String, u64>,
}

impl SimStats {
    /// Responses with this status.
    pub fn status(&self, code: u16) -> u64 {
        self.by_status.get(&code).copied().unwrap_or(0)
    }
}

#[derive(Default)]
struct StatsState {
    stats: SimStats,
    second: u64,
    in_second: u64,
}

struct Shared {
    sim: Simulator,
    stats: Mutex<StatsState>,
    /// Tokens and the last refill of the enforced rate limit.
    bucket: Mutex<(f64, Instant)>,
    script: Mutex<VecDeque<ScriptedFault>>,
    requests: AtomicU64,
    started: Instant,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running simulator. Dropping it stops the server like [`SimHandle::shutdown`] (without
/// waiting).
pub struct SimHandle {
    shared: Arc<Shared>,
    server: crate::loopback::Server,
}

impl std::fmt::Debug for SimHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimHandle")
            .field("addr", &self.server.addr())
            .finish()
    }
}

impl SimHandle {
    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// The dataset being served (for computing test expectations).
    pub fn simulator(&self) -> &Simulator {
        &self.shared.sim
    }

    /// Queues a scripted fault for the next responses.
    pub fn inject(&self, fault: ScriptedFault) {
        if fault.times > 0 {
            lock(&self.shared.script).push_back(fault);
        }
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> SimStats {
        lock(&self.shared.stats).stats.clone()
    }

    /// Stops accepting, lets in-flight requests finish, and ends the server task.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}

pub(super) async fn start(sim: Simulator, addr: SocketAddr) -> std::io::Result<SimHandle> {
    let tokens = sim.config.faults.rate_limit.unwrap_or(0.0).max(1.0);
    let shared = Arc::new(Shared {
        sim,
        stats: Mutex::default(),
        bucket: Mutex::new((tokens, Instant::now())),
        script: Mutex::default(),
        requests: AtomicU64::new(0),
        started: Instant::now(),
    });
    let served = shared.clone();
    let server =
        crate::loopback::Server::start(addr, move |req| handle(served.clone(), req)).await?;
    Ok(SimHandle { shared, server })
}

/// The error that makes hyper drop a connection without answering.
#[derive(Debug, thiserror::Error)]
#[error("simulated disconnect")]
struct Disconnect;

/// Stripe's body for an arbitrary injected status.
fn default_reply(status: u16, ctx: &Ctx) -> Reply {
    match status {
        401 => unauthorized(ctx.key.as_deref()),
        403 => forbidden(
            ctx.key.as_deref().unwrap_or("rk_test_"),
            ctx.account.as_deref().unwrap_or("acct_simulator"),
            "charge",
        ),
        404 => unrecognized(&ctx.method, &ctx.path),
        409 => Reply::json(409, error_body("invalid_request_error", Some("lock_timeout"), "This object cannot be accessed right now because another API request or Stripe process is currently accessing it. If you see this error intermittently, retry the request. If you see this error frequently and are making multiple concurrent requests to a single object, make your requests serially or at a lower rate.", None)),
        429 => rate_limited(),
        500.. => server_error(status),
        _ => Reply::json(status, error_body("invalid_request_error", None, "Invalid request (simulated).", None)),
    }
}

/// What one request carries that the handlers need.
struct Ctx {
    method: String,
    path: String,
    query: String,
    key: Option<String>,
    account: Option<String>,
}

impl Shared {
    fn next_scripted(&self) -> Option<FaultAction> {
        let mut q = lock(&self.script);
        let front = q.front_mut()?;
        let action = front.action.clone();
        front.times -= 1;
        if front.times == 0 {
            q.pop_front();
        }
        Some(action)
    }

    fn account_id(&self) -> String {
        let mut b = Vec::new();
        self.sim.push_ns_id("acct_", ns::ACCOUNT, 0, &mut b);
        b.truncate(5 + 16);
        String::from_utf8_lossy(&b).into_owned()
    }

    /// Takes a token from the enforced rate limit; false when the bucket is empty.
    fn admit(&self) -> bool {
        let Some(rate) = self.sim.config.faults.rate_limit else {
            return true;
        };
        let mut b = lock(&self.bucket);
        let now = Instant::now();
        b.0 = (b.0 + now.duration_since(b.1).as_secs_f64() * rate).min(rate.max(1.0));
        b.1 = now;
        if b.0 >= 1.0 {
            b.0 -= 1.0;
            true
        } else {
            false
        }
    }

    /// Randomised faults for request `n`, decided by hashing `(seed, n)`.
    fn random_fault(&self, n: u64) -> Option<Reply> {
        let f = &self.sim.config.faults;
        let h = hash(&[self.sim.config.seed, n, salt::REQUEST]);
        let u = unit(h);
        if u < f.rate_429 {
            let r = rate_limited();
            return Some(match f.retry_after_secs {
                Some(s) => r.header("Retry-After", s.to_string()),
                None => r,
            });
        }
        if u < f.rate_429 + f.rate_5xx {
            let r = server_error([500, 502, 503][(h % 3) as usize]);
            return Some(match f.should_retry {
                Some(b) => r.header("Stripe-Should-Retry", b.to_string()),
                None => r,
            });
        }
        None
    }

    fn serve(&self, ctx: &Ctx) -> (Reply, u64) {
        let Some(key) = ctx.key.as_deref() else {
            return (unauthorized(None), 0);
        };
        let config = &self.sim.config;
        let allowed: Option<&[Resource]> = if config.keys.iter().any(|k| k == key) {
            None
        } else if let Some((_, rs)) = config.restricted.iter().find(|(k, _)| k == key) {
            Some(rs)
        } else {
            return (unauthorized(Some(key)), 0);
        };
        let live = key.starts_with("sk_live_") || key.starts_with("rk_live_");
        if ctx.method != "GET" {
            return (unrecognized(&ctx.method, &ctx.path), 0);
        }
        if ctx.path == "/v1/account" {
            return (Reply::json(200, self.account_json(live)), 0);
        }
        if ctx.path == "/v1/accounts" {
            return self.connected_accounts(&ctx.query);
        }
        if ctx.path == "/v1/events" {
            let mut body = Vec::new();
            return match self.sim.write_events(&ctx.query, &mut body) {
                Ok(n) => (Reply::json(200, body), n as u64),
                Err(e) => {
                    let body =
                        error_body("invalid_request_error", e.code(), &e.to_string(), e.param());
                    (Reply::json(400, body), 0)
                }
            };
        }
        let mut segments = ctx.path.strip_prefix("/v1/").unwrap_or("").split('/');
        let resource = segments
            .next()
            .and_then(|s| Resource::ALL.into_iter().find(|r| r.path() == s));
        let (Some(r), id, None) = (resource, segments.next(), segments.next()) else {
            return (unrecognized(&ctx.method, &ctx.path), 0);
        };
        if allowed.is_some_and(|rs| !rs.contains(&r)) {
            return (forbidden(key, &self.account_id(), r.object_name()), 0);
        }
        if let Some(id) = id {
            return match self.sim.index_of(r, id) {
                Some(i) if r == Resource::Customers && self.sim.deleted_by_change(r, i) => (
                    Reply::json(200, super::changes::deleted_stub(&self.sim, r, i)),
                    1,
                ),
                Some(i) if !self.sim.is_deleted(r, i) => {
                    let mut body = Vec::with_capacity(3072);
                    self.sim.write_object(r, i, live, &mut body);
                    (Reply::json(200, body), 1)
                }
                _ => {
                    let message = format!("No such {}: '{id}'", r.object_name());
                    let body = error_body(
                        "invalid_request_error",
                        Some("resource_missing"),
                        &message,
                        Some("id"),
                    );
                    (Reply::json(404, body), 0)
                }
            };
        }
        let page = ListParams::parse(r, &ctx.query).and_then(|p| {
            let mut body = Vec::new();
            let n = self.sim.write_page(r, &p, live, &mut body)?;
            Ok((body, n))
        });
        match page {
            Ok((body, n)) => (Reply::json(200, body), n as u64),
            Err(e) => {
                let body = error_body("invalid_request_error", e.code(), &e.to_string(), e.param());
                (Reply::json(400, body), 0)
            }
        }
    }

    /// `GET /v1/accounts`: the connected accounts, in the configured order, paged with
    /// `limit` and `starting_after`.
    fn connected_accounts(&self, query: &str) -> (Reply, u64) {
        let ids = &self.sim.config.connected_accounts;
        let mut limit = 10usize;
        let mut from = 0usize;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "limit" => limit = v.parse().unwrap_or(10).clamp(1, 100),
                "starting_after" => match ids.iter().position(|i| i == v) {
                    Some(p) => from = p + 1,
                    None => {
                        let body = error_body(
                            "invalid_request_error",
                            Some("resource_missing"),
                            &format!("No such account: '{v}'"),
                            Some("starting_after"),
                        );
                        return (Reply::json(400, body), 0);
                    }
                },
                _ => {}
            }
        }
        let page: Vec<&String> = ids.iter().skip(from).take(limit).collect();
        let data: Vec<serde_json::Value> = page
            .iter()
            .map(|id| serde_json::json!({"id": id, "object": "account", "type": "standard", "charges_enabled": true}))
            .collect();
        let body = serde_json::json!({
            "object": "list",
            "data": data,
            "has_more": from + page.len() < ids.len(),
            "url": "/v1/accounts",
        });
        (
            Reply::json(200, body.to_string().into_bytes()),
            page.len() as u64,
        )
    }

    fn account_json(&self, live: bool) -> Vec<u8> {
        let mut b = Vec::with_capacity(512);
        b.extend_from_slice(b"{\"id\":");
        push_str(&mut b, &self.account_id());
        b.extend_from_slice(br#","object":"account","business_profile":{"name":"Simulated Shop","support_email":"support@example.com","url":"https://shop.example.com"},"business_type":"company","capabilities":{"card_payments":"active","transfers":"active"},"charges_enabled":true,"country":"US","created":"#);
        push_i64(&mut b, self.sim.config.start);
        b.extend_from_slice(br#","default_currency":"usd","details_submitted":true,"email":"owner@example.com","livemode":"#);
        b.extend_from_slice(if live { b"true" } else { b"false" });
        b.extend_from_slice(br#","payouts_enabled":true,"settings":{"dashboard":{"display_name":"Simulated Shop","timezone":"Etc/UTC"}},"type":"standard"}"#);
        b
    }

    /// Counts one request; status `0` is a dropped connection.
    fn record(&self, status: u16, objects: u64, delayed: bool, injected: bool) {
        let mut s = lock(&self.stats);
        let second = self.started.elapsed().as_secs();
        if second != s.second {
            s.second = second;
            s.in_second = 0;
        }
        s.in_second += 1;
        let in_second = s.in_second;
        let st = &mut s.stats;
        st.requests += 1;
        st.peak_rps = st.peak_rps.max(in_second);
        if status == 0 {
            st.disconnects += 1;
            return;
        }
        *st.by_status.entry(status).or_default() += 1;
        st.objects += objects;
        st.delayed += u64::from(delayed);
        match status {
            429 if injected => st.injected_429 += 1,
            500.. if injected => st.injected_5xx += 1,
            _ => {}
        }
    }
}

async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Disconnect> {
    let n = shared.requests.fetch_add(1, Ordering::Relaxed);
    let headers = req.headers();
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let ctx = Ctx {
        method: req.method().as_str().to_string(),
        path: req.uri().path().to_string(),
        query: req.uri().query().unwrap_or("").to_string(),
        key: api_key(headers),
        account: header("stripe-account"),
    };
    let version = header("stripe-version").unwrap_or_else(|| SIM_API_VERSION.to_string());
    drop(req);
    let seed = shared.sim.config.seed;
    let faults = &shared.sim.config.faults;

    let mut delayed = false;
    let scripted = shared.next_scripted();
    let was_scripted = scripted.is_some();
    let (mut reply, objects, injected) = match scripted {
        Some(FaultAction::Disconnect) => {
            shared.record(0, 0, false, false);
            return Err(Disconnect);
        }
        Some(FaultAction::Respond {
            status,
            headers,
            body,
        }) => {
            let mut r = match body {
                Some(b) => Reply::json(status, b.into_bytes()),
                None => default_reply(status, &ctx),
            };
            r.headers.extend(headers);
            (r, 0, true)
        }
        Some(FaultAction::Delay(d)) => {
            delayed = true;
            tokio::time::sleep(d).await;
            let (r, n) = shared.serve(&ctx);
            (r, n, false)
        }
        None if !shared.admit() => {
            lock(&shared.stats).stats.limited_429 += 1;
            (rate_limited(), 0, false)
        }
        None => match shared.random_fault(n) {
            Some(r) => (r, 0, true),
            None => {
                let (r, n) = shared.serve(&ctx);
                (r, n, false)
            }
        },
    };
    if !was_scripted
        && faults.slow_rate > 0.0
        && unit(hash(&[seed, n, salt::REQUEST, 2])) < faults.slow_rate
    {
        delayed = true;
        tokio::time::sleep(Duration::from_millis(faults.slow_ms)).await;
    }

    let mut request_id = b"req_".to_vec();
    push_base62(hash(&[seed, n, salt::REQUEST, 1]), 14, &mut request_id);
    reply.headers.push((
        "Request-Id".into(),
        String::from_utf8_lossy(&request_id).into_owned(),
    ));
    reply.headers.push(("Stripe-Version".into(), version));
    if let Some(a) = ctx.account {
        *lock(&shared.stats)
            .stats
            .by_stripe_account
            .entry(a.clone())
            .or_default() += 1;
        reply.headers.push(("Stripe-Account".into(), a));
    }
    shared.record(reply.status, objects, delayed, injected);
    Ok(into_response(reply))
}
