//! `stripe-xdm console`: a local web console over the same application layer as the CLI.
//!
//! It listens on 127.0.0.1 only and answers nothing without its token: the URL it prints
//! carries the token once (`/?token=…`), the first page sets it as an `HttpOnly`,
//! `SameSite=Strict` cookie, and API clients may send `Authorization: Bearer <token>` instead.
//! Pages are rendered on the server (module `pages`) with a little JavaScript for the wizard, the
//! live progress and the SQL box; assets are compiled into the binary.

mod api;
mod charts;
mod html;
mod live;
mod pages;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::runner::RunnerConfig;

pub use live::LiveRuns;

/// The cookie holding the console's token.
const COOKIE: &str = "stripe_xdm_console";

/// How the console runs.
#[derive(Debug, Clone)]
pub struct ConsoleOptions {
    /// The catalog's home folder.
    pub home: PathBuf,
    /// Port on 127.0.0.1 (0: any free port).
    pub port: u16,
    /// The token (`None`: a random one).
    pub token: Option<String>,
}

/// What the handlers share.
pub(crate) struct Console {
    pub home: PathBuf,
    pub token: String,
    pub runner: RunnerConfig,
    pub live: LiveRuns,
}

impl Console {
    /// The catalog (one connection per request; SQLite serialises writers).
    pub fn catalog(&self) -> Result<crate::catalog::Catalog, api::ApiError> {
        crate::catalog::Catalog::open(&self.home).map_err(api::ApiError::from)
    }
}

/// A running console.
pub struct ConsoleHandle {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The token every request needs.
    pub token: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl std::fmt::Debug for ConsoleHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleHandle")
            .field("addr", &self.addr)
            .field("token", &"***")
            .finish_non_exhaustive()
    }
}

impl ConsoleHandle {
    /// The base URL (`http://127.0.0.1:<port>`).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The URL to open: the base URL with the token.
    pub fn login_url(&self) -> String {
        format!("{}/?token={}", self.base_url(), self.token)
    }

    /// Stops taking requests and waits for the server to end.
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.task
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)))
    }

    /// Waits until the server ends (it ends on [`ConsoleHandle::shutdown`] or an error).
    pub async fn wait(&mut self) -> std::io::Result<()> {
        (&mut self.task)
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)))
    }
}

/// A random token: 128 bits, hex.
fn new_token() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..4)
        .map(|_| format!("{:08x}", rng.random::<u32>()))
        .collect()
}

/// Starts the console on 127.0.0.1:`port`.
pub async fn start(options: ConsoleOptions) -> std::io::Result<ConsoleHandle> {
    let token = options.token.clone().unwrap_or_else(new_token);
    let console = Arc::new(Console {
        runner: RunnerConfig::new(&options.home),
        home: options.home.clone(),
        token: token.clone(),
        live: LiveRuns::default(),
    });
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", options.port)).await?;
    let addr = listener.local_addr()?;
    let app = router(console);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await
    });
    Ok(ConsoleHandle {
        addr,
        token,
        shutdown: Some(tx),
        task,
    })
}

fn router(console: Arc<Console>) -> Router {
    Router::new()
        .route("/", get(pages::home))
        .route("/accounts", get(pages::accounts))
        .route("/wizard", get(pages::wizard))
        .route("/dataflows", get(pages::dataflows))
        .route("/monitoring", get(pages::monitoring))
        .route("/rejected", get(pages::rejected))
        .route("/assets/console.css", get(pages::css))
        .route("/assets/console.js", get(pages::js))
        .route("/api/accounts", get(api::accounts).post(api::add_account))
        .route(
            "/api/accounts/{name}",
            axum::routing::delete(api::remove_account),
        )
        .route("/api/accounts/{name}/test", post(api::test_account))
        .route("/api/resources", get(api::resources))
        .route("/api/preview", get(api::preview))
        .route(
            "/api/datasets",
            get(api::datasets).post(api::create_dataset),
        )
        .route("/api/mapping/default", get(api::default_mapping))
        .route("/api/mapping/check", post(api::check_mapping))
        .route("/api/mapping/preview", post(api::mapping_preview))
        .route("/api/schedule/check", post(api::check_schedule))
        .route(
            "/api/dataflows",
            get(api::dataflows).post(api::create_dataflow),
        )
        .route(
            "/api/dataflows/{name}",
            get(api::dataflow)
                .patch(api::update_dataflow)
                .delete(api::delete_dataflow),
        )
        .route("/api/dataflows/{name}/enable", post(api::enable_dataflow))
        .route("/api/dataflows/{name}/disable", post(api::disable_dataflow))
        .route("/api/dataflows/{name}/run", post(api::run_dataflow))
        .route("/api/runs", get(api::runs))
        .route("/api/live", get(api::live))
        .route("/api/rejected/summary", get(api::rejected_summary))
        .route("/api/rejected/query", post(api::rejected_query))
        .route("/api/rejected/replay", post(api::rejected_replay))
        .layer(axum::middleware::from_fn_with_state(console.clone(), auth))
        .with_state(console)
}

/// The token a request carries: bearer header, cookie, or `?token=` (first page only).
fn token_of(headers: &HeaderMap, query: Option<&str>) -> (Option<String>, bool) {
    if let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        if let Some(t) = v.strip_prefix("Bearer ") {
            return (Some(t.trim().to_string()), false);
        }
    }
    for cookies in headers.get_all(header::COOKIE) {
        for c in cookies.to_str().unwrap_or("").split(';') {
            if let Some(t) = c.trim().strip_prefix(&format!("{COOKIE}=")) {
                return (Some(t.to_string()), false);
            }
        }
    }
    let from_query = query.and_then(|q| {
        q.split('&')
            .find_map(|kv| kv.strip_prefix("token="))
            .map(str::to_string)
    });
    (from_query, true)
}

/// Equal without an early exit (the token is compared in constant time).
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

async fn auth(State(console): State<Arc<Console>>, req: Request, next: Next) -> Response {
    let (token, in_query) = token_of(req.headers(), req.uri().query());
    let ok = token.as_deref().is_some_and(|t| same(t, &console.token));
    if !ok {
        let body = if req.uri().path().starts_with("/api/") {
            axum::Json(serde_json::json!({"error": "missing or wrong console token: open the URL `stripe-xdm console` printed, or send Authorization: Bearer <token>"})).into_response()
        } else {
            (
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                "401: this console needs its token: open the URL `stripe-xdm console` printed.\n",
            )
                .into_response()
        };
        return (StatusCode::UNAUTHORIZED, body).into_response();
    }
    if in_query {
        // Trade the token in the URL for a cookie, and drop it from the address bar.
        let rest: Vec<&str> = req
            .uri()
            .query()
            .unwrap_or("")
            .split('&')
            .filter(|kv| !kv.is_empty() && !kv.starts_with("token="))
            .collect();
        let path = match rest.is_empty() {
            true => req.uri().path().to_string(),
            false => format!("{}?{}", req.uri().path(), rest.join("&")),
        };
        return (
            StatusCode::SEE_OTHER,
            [
                (
                    header::SET_COOKIE,
                    format!(
                        "{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/",
                        console.token
                    ),
                ),
                (header::LOCATION, path),
            ],
        )
            .into_response();
    }
    next.run(req).await
}
