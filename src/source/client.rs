//! The Stripe list client: one page per request, retries, rate budgets, pagination.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use reqwest::Url;
use tokio::sync::mpsc;

pub use super::config::{ClientConfig, DEFAULT_BASE_URL, DEFAULT_STRIPE_VERSION};
use super::envelope::{self, record_id};
use super::error::SourceError;
use super::http::{excerpt, Fetched};
pub use super::page::{FetchStats, Page, Window};
use super::rate::RateBudget;
use crate::net::retry::RetryPolicy;
use crate::Resource;

#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) requests: AtomicU64,
    pages: AtomicU64,
    pub(super) retries: AtomicU64,
    pub(super) throttled: AtomicU64,
    pub(super) server_errors: AtomicU64,
    pub(super) bytes_in: AtomicU64,
    records: AtomicU64,
}

pub(super) fn bump(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// A Stripe API client. Cheap to clone; clones share one HTTP pool, rate budget and stats, and
/// every client of the same key and rates in the process shares the rate budget.
#[derive(Clone, Debug)]
pub struct StripeClient {
    pub(super) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(super) struct Inner {
    pub(super) http: reqwest::Client,
    pub(super) base: String,
    pub(super) cfg: ClientConfig,
    pub(super) policy: RetryPolicy,
    pub(super) budget: Arc<RateBudget>,
    pub(super) counters: Counters,
}

fn config_err(msg: impl Into<String>) -> SourceError {
    SourceError::Config(msg.into())
}

// SourceError is large (the Stripe variant carries every field of Stripe's error), but errors are
// rare and end a run, so boxing would only cost callers ergonomics.
#[allow(clippy::result_large_err)]
fn header_value(name: &str, value: &str) -> Result<HeaderValue, SourceError> {
    HeaderValue::from_str(value).map_err(|_| {
        config_err(format!(
            "{name} contains characters not allowed in an HTTP header"
        ))
    })
}

impl StripeClient {
    /// Validates the configuration and builds the client.
    ///
    /// Refuses publishable (`pk_`) keys, empty keys, unparsable or non-HTTP(S) base URLs, a page
    /// limit outside 1..=100, non-positive rates, and header values that are not valid headers.
    #[allow(clippy::result_large_err)]
    pub fn new(cfg: ClientConfig) -> Result<Self, SourceError> {
        let key = cfg.key.expose();
        if key.is_empty() {
            return Err(config_err("the Stripe API key is empty"));
        }
        if key.starts_with("pk_") {
            return Err(config_err(format!(
                "{} is a publishable key: publishable keys cannot read lists; use a secret key (sk_…) or a restricted key (rk_…) with read access",
                cfg.key.masked()
            )));
        }
        let base = cfg.base_url.trim().trim_end_matches('/').to_string();
        let url = Url::parse(&base)
            .map_err(|e| config_err(format!("base URL '{base}' is not a URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(config_err(format!(
                "base URL '{base}' must be an http(s) URL with a host"
            )));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(config_err(format!(
                "base URL '{base}' must not have a query or fragment"
            )));
        }
        if !(1..=100).contains(&cfg.page_limit) {
            return Err(config_err(format!(
                "page limit {} is outside Stripe's 1..=100",
                cfg.page_limit
            )));
        }
        for (name, rate) in [
            ("requests per second", cfg.requests_per_sec),
            (
                "endpoint requests per second",
                cfg.endpoint_requests_per_sec,
            ),
        ] {
            if let Some(r) = rate {
                super::rate::check_rate(r).map_err(|e| config_err(format!("{name}: {e}")))?;
            }
        }

        let mut headers = HeaderMap::new();
        let mut auth = HeaderValue::from_str(&format!("Bearer {key}")).map_err(|_| {
            config_err("the Stripe API key contains characters not allowed in an HTTP header")
        })?;
        auth.set_sensitive(true);
        headers.insert(AUTHORIZATION, auth);
        headers.insert(
            "Stripe-Version",
            header_value("Stripe-Version", &cfg.stripe_version)?,
        );
        if let Some(acct) = &cfg.stripe_account {
            headers.insert("Stripe-Account", header_value("Stripe-Account", acct)?);
        }
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .user_agent(header_value("User-Agent", &cfg.user_agent)?)
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout.min(Duration::from_secs(30)))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| config_err(format!("cannot build the HTTP client: {e}")))?;

        let policy = RetryPolicy {
            max_retries: cfg.max_retries,
            base: cfg.backoff_base,
            max: cfg.backoff_max.max(cfg.backoff_base),
        };
        let budget = RateBudget::shared(
            &format!("{base}\n{key}"),
            cfg.effective_requests_per_sec(),
            cfg.effective_endpoint_requests_per_sec(),
            cfg.burst,
        );
        Ok(StripeClient {
            inner: Arc::new(Inner {
                http,
                base,
                cfg,
                policy,
                budget,
                counters: Counters::default(),
            }),
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.cfg
    }

    /// A snapshot of the counters shared by all clones.
    pub fn stats(&self) -> FetchStats {
        let c = &self.inner.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        FetchStats {
            requests: get(&c.requests),
            pages: get(&c.pages),
            retries: get(&c.retries),
            throttled: get(&c.throttled),
            server_errors: get(&c.server_errors),
            bytes_in: get(&c.bytes_in),
            records: get(&c.records),
        }
    }

    /// The endpoint name used in errors, logs and per-endpoint budgets: `GET /v1/charges`.
    pub fn endpoint(resource: Resource) -> String {
        format!("GET /v1/{}", resource.path())
    }

    fn list_url(&self, resource: Resource, window: Window, starting_after: Option<&str>) -> Url {
        let mut url = Url::parse(&format!("{}/v1/{}", self.inner.base, resource.path()))
            .expect("base URL validated in StripeClient::new");
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("limit", &self.inner.cfg.page_limit.to_string());
            if let Some(c) = starting_after {
                q.append_pair("starting_after", c);
            }
            if let Some(gte) = window.gte {
                q.append_pair("created[gte]", &gte.to_string());
            }
            if let Some(lt) = window.lt {
                q.append_pair("created[lt]", &lt.to_string());
            }
            for (k, v) in resource.fixed_params() {
                q.append_pair(k, v);
            }
        }
        url
    }

    /// Fetches one page of `resource` in `window` after `starting_after`, with retries.
    ///
    /// Fails with [`SourceError::StuckCursor`] when `has_more` is true but the page cannot
    /// advance the cursor (no records, no readable id on the last record, or the same cursor).
    pub async fn list_page(
        &self,
        resource: Resource,
        window: Window,
        starting_after: Option<&str>,
    ) -> Result<Page, SourceError> {
        let endpoint = Self::endpoint(resource);
        let url = self.list_url(resource, window, starting_after);
        let Fetched { body, request_id } = self.execute(&endpoint, url).await?;
        let env = envelope::scan(&body).map_err(|source| SourceError::Envelope {
            endpoint: endpoint.clone(),
            request_id: request_id.clone(),
            source,
        })?;
        let next_cursor = env.records.last().and_then(|r| record_id(&body[r.clone()]));
        if env.has_more {
            let reason = if env.records.is_empty() {
                Some("has_more is true but the page has no records".to_string())
            } else if next_cursor.is_none() {
                Some("has_more is true but the last record has no readable id".to_string())
            } else if next_cursor.as_deref() == starting_after {
                Some("the last record's id equals the cursor".to_string())
            } else {
                None
            };
            if let Some(reason) = reason {
                return Err(SourceError::StuckCursor {
                    endpoint,
                    cursor: starting_after.map(str::to_string),
                    window,
                    reason: format!(
                        "{reason}{}",
                        request_id
                            .as_deref()
                            .map(|r| format!(" [request-id {r}]"))
                            .unwrap_or_default()
                    ),
                });
            }
        }
        let c = &self.inner.counters;
        bump(&c.pages, 1);
        bump(&c.records, env.records.len() as u64);
        tracing::debug!(
            endpoint = %endpoint,
            records = env.records.len(),
            has_more = env.has_more,
            request_id = request_id.as_deref().unwrap_or(""),
            "page"
        );
        Ok(Page {
            resource,
            body,
            records: env.records,
            has_more: env.has_more,
            request_id,
            window,
            starting_after: starting_after.map(str::to_string),
            next_cursor,
        })
    }

    /// Lists every page of `resource` in `window`, sending each to `tx` in order.
    ///
    /// Follows `starting_after` = last id until `has_more` is false. `send` applies backpressure;
    /// if the receiver is dropped the walk stops quietly with `Ok(())`. A cursor seen twice is a
    /// [`SourceError::StuckCursor`].
    pub async fn fetch_all(
        &self,
        resource: Resource,
        window: Window,
        tx: mpsc::Sender<Page>,
    ) -> Result<(), SourceError> {
        let mut cursor: Option<String> = None;
        let mut seen: HashSet<String> = HashSet::new();
        loop {
            if tx.is_closed() {
                return Ok(());
            }
            let page = self.list_page(resource, window, cursor.as_deref()).await?;
            let has_more = page.has_more;
            let next = page.next_cursor.clone();
            if tx.send(page).await.is_err() {
                return Ok(());
            }
            if !has_more {
                return Ok(());
            }
            // list_page guarantees a cursor when has_more is true.
            let Some(next) = next else { return Ok(()) };
            if !seen.insert(next.clone()) {
                return Err(SourceError::StuckCursor {
                    endpoint: Self::endpoint(resource),
                    cursor: Some(next),
                    window,
                    reason: "the cursor was already visited (pagination loops)".to_string(),
                });
            }
            cursor = Some(next);
        }
    }

    /// `GET /v1/accounts`, every page: the ids of the platform's connected accounts.
    pub async fn connected_accounts(&self) -> Result<Vec<String>, SourceError> {
        let endpoint = "GET /v1/accounts";
        let mut ids = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut url = Url::parse(&format!("{}/v1/accounts", self.inner.base))
                .expect("base URL validated in StripeClient::new");
            url.query_pairs_mut().append_pair("limit", "100");
            if let Some(a) = &after {
                url.query_pairs_mut().append_pair("starting_after", a);
            }
            let Fetched { body, request_id } = self.execute(endpoint, url).await?;
            let page: serde_json::Value =
                serde_json::from_slice(&body).map_err(|e| SourceError::InvalidResponse {
                    endpoint: endpoint.to_string(),
                    request_id: request_id.clone(),
                    message: format!("not JSON ({e})"),
                })?;
            let data = page["data"].as_array().cloned().unwrap_or_default();
            let before = ids.len();
            ids.extend(
                data.iter()
                    .filter_map(|a| a["id"].as_str().map(str::to_string)),
            );
            if page["has_more"] != true || ids.len() == before {
                return Ok(ids);
            }
            after = ids.last().cloned();
        }
    }

    /// `GET /v1/account`: the account behind the key, to test a connection.
    pub async fn get_account(&self) -> Result<serde_json::Value, SourceError> {
        let endpoint = "GET /v1/account";
        let url = Url::parse(&format!("{}/v1/account", self.inner.base))
            .expect("base URL validated in StripeClient::new");
        let Fetched { body, request_id } = self.execute(endpoint, url).await?;
        match serde_json::from_slice::<serde_json::Value>(&body) {
            Ok(v) if v.is_object() => Ok(v),
            Ok(_) => Err(SourceError::InvalidResponse {
                endpoint: endpoint.to_string(),
                request_id,
                message: "the body is not a JSON object".to_string(),
            }),
            Err(e) => Err(SourceError::InvalidResponse {
                endpoint: endpoint.to_string(),
                request_id,
                message: format!("not JSON ({e}): {}", excerpt(&body)),
            }),
        }
    }
}
