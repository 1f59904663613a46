//! Source: the Stripe list API client.
//!
//! HTTP, auth, pagination, `created` windows, retries and rate budgets. The output is
//! [`Page`]s: raw bodies plus the byte range of each record, found by a byte scanner
//! ([`envelope::scan`]) without parsing the records. This module knows nothing of Arrow or SQL,
//! and no HTTP-library type leaves it.

mod blocks;
pub mod client;
pub mod config;
pub mod envelope;
pub mod error;
pub mod events;
mod http;
pub mod page;
pub mod plan;
pub mod rate;
pub mod windows;

pub use crate::net::RetryPolicy;
pub use client::StripeClient;
pub use config::{resolve_base_url, ClientConfig, DEFAULT_BASE_URL, DEFAULT_STRIPE_VERSION};
pub use envelope::{record_id, scan, Envelope, EnvelopeError};
pub use error::SourceError;
pub use events::{Change, ChangeKind, ChangeQuery, ChangeSet};
pub use page::{FetchStats, Page, Window};
pub use plan::{plan_backfill, BackfillPlanEstimate, EstimateBasis, WindowEstimate};
pub use rate::{KeyedRateLimiter, RateBudget, RateLimiter};
pub use windows::{
    fetch_windows, record_created, FetchSummary, WindowEvent, WindowOptions, WindowPlan,
    WindowState, WindowedPage,
};
