//! How a [`StripeClient`](super::StripeClient) talks to Stripe: origin, key, version, budgets.

use std::time::Duration;

use crate::Secret;

/// The Stripe API version pinned on every request: the spec our Arrow schemas are written from.
pub const DEFAULT_STRIPE_VERSION: &str = "2023-08-16";

/// The default Stripe API origin.
pub const DEFAULT_BASE_URL: &str = "https://api.stripe.com";

/// The API base URL to use: the one given (a flag), else the one stored with the account, else
/// Stripe's.
pub fn resolve_base_url(given: Option<&str>, stored: Option<&str>) -> String {
    given.or(stored).unwrap_or(DEFAULT_BASE_URL).to_string()
}

/// How a [`StripeClient`](super::StripeClient) talks to Stripe.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// API origin, `https://api.stripe.com` (a simulator or stub in tests).
    pub base_url: String,
    /// The secret (`sk_`) or restricted (`rk_`) key.
    pub key: Secret,
    /// The `Stripe-Version` header; [`DEFAULT_STRIPE_VERSION`] by default.
    pub stripe_version: String,
    /// The `Stripe-Account` header (Connect), sent on every request when set.
    pub stripe_account: Option<String>,
    /// Records per page (`limit`, 1..=100); 100 by default.
    pub page_limit: u32,
    /// Retries after the first attempt of a request; 8 by default.
    pub max_retries: u32,
    /// First backoff and floor of every backoff; 500 ms by default.
    pub backoff_base: Duration,
    /// Cap of the exponential backoff; 20 s by default.
    pub backoff_max: Duration,
    /// Whole-request timeout (connect, headers and body); 80 s by default, like Stripe's SDKs.
    pub timeout: Duration,
    /// Global request budget; `None` means 25/s for test keys and 100/s for live keys.
    pub requests_per_sec: Option<f64>,
    /// Per-endpoint request budget; `None` means 25/s.
    pub endpoint_requests_per_sec: Option<f64>,
    /// Requests that may go out at once after an idle period; 3 by default.
    pub burst: u32,
    /// The `User-Agent` header; `stripe-xdm/<version>` by default.
    pub user_agent: String,
}

impl ClientConfig {
    /// A configuration with the defaults for `base_url` and `key`.
    pub fn new(base_url: impl Into<String>, key: Secret) -> Self {
        ClientConfig {
            base_url: base_url.into(),
            key,
            stripe_version: DEFAULT_STRIPE_VERSION.to_string(),
            stripe_account: None,
            page_limit: 100,
            max_retries: 8,
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(20),
            timeout: Duration::from_secs(80),
            requests_per_sec: None,
            endpoint_requests_per_sec: None,
            burst: 3,
            user_agent: format!("stripe-xdm/{}", env!("CARGO_PKG_VERSION")),
        }
    }

    /// The global budget in effect: the configured one, or Stripe's mode default.
    pub fn effective_requests_per_sec(&self) -> f64 {
        self.requests_per_sec
            .unwrap_or(if self.key.is_live() { 100.0 } else { 25.0 })
    }

    /// The per-endpoint budget in effect.
    pub fn effective_endpoint_requests_per_sec(&self) -> f64 {
        self.endpoint_requests_per_sec.unwrap_or(25.0)
    }
}
