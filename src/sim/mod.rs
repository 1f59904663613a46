//! The Stripe simulator: a deterministic, on-demand dataset behind an HTTP/1.1 server that
//! speaks Stripe's list API (envelopes, cursors, `created` filters, auth, errors, faults).
//!
//! Object `i` of a resource is generated from `(seed, resource, i)` when it is served, so
//! millions of objects cost no memory. Index order is creation order: `created` is
//! non-decreasing in the index and lists are served from the highest index down (newest
//! first; ties inside one second keep that fixed order). Ids encode the index reversibly,
//! so a cursor maps back to its position in O(1), and `created` windows map to index ranges
//! by binary search.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use stripe_xdm::sim::{SimConfig, Simulator, SIM_KEY};
//! let handle = Simulator::new(SimConfig::default()).start().await?;
//! let url = format!("{}/v1/charges?limit=100", handle.base_url());
//! // GET `url` with `Authorization: Bearer {SIM_KEY}` …
//! handle.shutdown().await;
//! # Ok(()) }
//! ```

mod billing;
mod changes;
mod dataset;
mod fake;
mod json;
mod list;
mod payments;
mod reply;
mod server;

use std::collections::BTreeMap;
use std::net::SocketAddr;

use crate::Resource;
use dataset::{hash, salt, unit, Rng, Timeline};

pub use changes::{ChangeError, EVENT_RETENTION_SECS, SIM_EVENTS_API_VERSION};
pub use list::{CreatedFilter, ListError, ListParams};
pub use server::{FaultAction, ScriptedFault, SimHandle, SimStats};

/// The secret key the simulator accepts by default (and the README demo uses).
pub const SIM_KEY: &str = "sk_test_simulator_4242424242424242";

/// The `Stripe-Version` the simulator reports when the request does not pin one; the
/// object shapes follow this version's schemas (plus a few widely-seen later additions).
pub const SIM_API_VERSION: &str = "2023-08-16";

/// Randomised faults, each a fraction of responses (or of records) in `0.0..=1.0`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Faults {
    /// Fraction of requests answered `429` with Stripe's `rate_limit` error body.
    pub rate_429: f64,
    /// Fraction of requests answered `500`, `502` or `503` (`api_error`).
    pub rate_5xx: f64,
    /// Fraction of requests delayed by [`Faults::slow_ms`] before being answered.
    pub slow_rate: f64,
    /// The delay of a slow response, in milliseconds.
    pub slow_ms: u64,
    /// Fraction of records served corrupt inside otherwise good pages (see [`Corruption`]).
    pub corrupt_rate: f64,
    /// `Retry-After` seconds sent with injected 429s (none if `None`).
    pub retry_after_secs: Option<u64>,
    /// `Stripe-Should-Retry` value sent with injected 5xx (none if `None`).
    pub should_retry: Option<bool>,
    /// Enforce a request rate like Stripe's limiter: a token bucket of this many requests per
    /// second holding at most one second's worth; a request finding it empty gets a `429`
    /// (counted in [`SimStats::limited_429`], without `Retry-After`, as Stripe often sends them).
    pub rate_limit: Option<f64>,
}

/// The simulator's configuration: the dataset, the accepted keys and the faults.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// Seeds every generated value; the same seed gives the same bytes.
    pub seed: u64,
    /// Objects per resource; a resource missing from the map has none.
    pub counts: BTreeMap<Resource, u64>,
    /// First `created` second of the dataset (inclusive).
    pub start: i64,
    /// End of the `created` range (exclusive); also the dataset's "now".
    pub end: i64,
    /// How many consecutive objects share one `created` second (at least 1).
    pub per_second: u64,
    /// How strongly objects are packed towards the end of `[start, end)`: `0.0` (the default)
    /// spreads them uniformly; with `s > 0` the last fraction `q` of the range holds
    /// `1 - (1-q)^(1+s)` of the objects (see [`SimConfig::with_skew`]).
    pub skew: f64,
    /// Accepted secret keys with access to everything (`sk_live_…` keys see `livemode:true`).
    pub keys: Vec<String>,
    /// Restricted keys (`rk_test_…`) and the resources each may read; other list
    /// endpoints answer 403.
    pub restricted: Vec<(String, Vec<Resource>)>,
    /// Randomised fault injection.
    pub faults: Faults,
    /// Objects (resource, indices) that lists leave out until [`Simulator::reveal_late`]: they
    /// exist with their `created` time but become visible late, as Stripe's lists sometimes do.
    pub late: Vec<(Resource, u64)>,
    /// Resources whose objects are deleted right after a list first returns them, as when
    /// customers are deleted while a backfill walks them: a later `starting_after` naming one
    /// gets Stripe's `resource_missing`, and lists leave them out.
    pub deleted_after_listing: Vec<Resource>,
    /// The API version event payloads are rendered at ([`SIM_EVENTS_API_VERSION`] by
    /// default); at any other than [`SIM_API_VERSION`] they lack the expandable references.
    pub events_api_version: String,
    /// Connected accounts `GET /v1/accounts` lists (Stripe Connect).
    pub connected_accounts: Vec<String>,
}

/// 2025-01-01T00:00:00Z.
const DEFAULT_START: i64 = 1_735_689_600;
/// 2026-01-01T00:00:00Z.
const DEFAULT_END: i64 = 1_767_225_600;

impl Default for SimConfig {
    fn default() -> Self {
        let counts = Resource::ALL
            .into_iter()
            .map(|r| (r, if r == Resource::Prices { 200 } else { 1000 }))
            .collect();
        SimConfig {
            seed: 42,
            counts,
            start: DEFAULT_START,
            end: DEFAULT_END,
            per_second: 3,
            skew: 0.0,
            keys: vec![SIM_KEY.into()],
            restricted: Vec::new(),
            faults: Faults::default(),
            late: Vec::new(),
            deleted_after_listing: Vec::new(),
            events_api_version: SIM_EVENTS_API_VERSION.to_string(),
            connected_accounts: Vec::new(),
        }
    }
}

impl SimConfig {
    /// The number of objects of `r`.
    pub fn count(&self, r: Resource) -> u64 {
        self.counts.get(&r).copied().unwrap_or(0)
    }

    /// Sets the seed.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Sets the number of objects of one resource.
    pub fn with_count(mut self, r: Resource, n: u64) -> Self {
        self.counts.insert(r, n);
        self
    }

    /// Sets the number of objects of every resource.
    pub fn with_counts(mut self, n: u64) -> Self {
        self.counts = Resource::ALL.into_iter().map(|r| (r, n)).collect();
        self
    }

    /// Sets the `created` range `[start, end)`.
    pub fn with_window(mut self, start: i64, end: i64) -> Self {
        self.start = start;
        self.end = end;
        self
    }

    /// Sets how many consecutive objects share one second.
    pub fn with_per_second(mut self, n: u64) -> Self {
        self.per_second = n.max(1);
        self
    }

    /// Packs objects towards the end of the `created` range, as real accounts that grow do:
    /// an object's uniform position `p` in `[0, 1)` becomes `p^(1/(1+skew))`. With `skew` 4
    /// the last tenth of the range holds ≈41% of the objects and the first half ≈3%. `created`
    /// stays non-decreasing in the index, so windows and cursors behave as before. `0.0` (the
    /// default; negative values too) is the uniform timeline, bit for bit.
    pub fn with_skew(mut self, skew: f64) -> Self {
        self.skew = skew;
        self
    }

    /// Accepts one more secret key.
    pub fn with_key(mut self, key: impl Into<String>) -> Self {
        self.keys.push(key.into());
        self
    }

    /// Accepts a restricted key that may read only `resources`.
    pub fn with_restricted_key(mut self, key: impl Into<String>, resources: &[Resource]) -> Self {
        self.restricted.push((key.into(), resources.to_vec()));
        self
    }

    /// Hides objects of `r` from lists until [`Simulator::reveal_late`] (late visibility).
    pub fn with_late(mut self, r: Resource, indices: impl IntoIterator<Item = u64>) -> Self {
        self.late.extend(indices.into_iter().map(|i| (r, i)));
        self
    }

    /// Deletes every object of `r` right after a list first returns it (see
    /// [`SimConfig::deleted_after_listing`]).
    pub fn with_deleted_after_listing(mut self, r: Resource) -> Self {
        self.deleted_after_listing.push(r);
        self
    }

    /// Renders event payloads at `version` (see [`SimConfig::events_api_version`]).
    pub fn with_events_api_version(mut self, version: impl Into<String>) -> Self {
        self.events_api_version = version.into();
        self
    }

    /// Lists `ids` as the platform's connected accounts (`GET /v1/accounts`).
    pub fn with_connected_accounts(mut self, ids: &[&str]) -> Self {
        self.connected_accounts = ids.iter().map(|s| s.to_string()).collect();
        self
    }

    /// Sets the randomised faults.
    pub fn with_faults(mut self, faults: Faults) -> Self {
        self.faults = faults;
        self
    }
}

/// How a corrupt record is broken. Both kinds keep `"id"` intact and brackets balanced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Corruption {
    /// Valid JSON with a wrongly typed value: `"created":"yesterday"` or an amount-like
    /// field (`amount`, `balance`, `unit_amount`, `current_period_end`) set to `"oops"`.
    WrongType,
    /// Invalid JSON that is still bracket-balanced: a missing value (`"created": ,`) or an
    /// unquoted string (`"currency":usd`).
    BrokenJson,
}

/// The deterministic dataset; [`Simulator::start`] serves it over HTTP.
#[derive(Debug, Clone)]
pub struct Simulator {
    config: SimConfig,
    timelines: [Timeline; 6],
    /// Whether the late objects are visible yet (shared by clones, so a running server sees it).
    revealed: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Objects deleted so far ([`SimConfig::deleted_after_listing`]), shared by clones.
    deleted: std::sync::Arc<std::sync::RwLock<std::collections::HashSet<(Resource, u64)>>>,
    /// Changes after creation and their events ([`Simulator::update`]), shared by clones.
    changes: std::sync::Arc<std::sync::RwLock<changes::ChangeLog>>,
    /// Whether any change was made (lets the hot path skip the change log).
    has_changes: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Simulator {
    /// A dataset for `config`. Cheap: nothing is generated up front.
    pub fn new(config: SimConfig) -> Self {
        let timelines = Resource::ALL.map(|r| {
            Timeline::new(
                config.seed,
                namespace(r),
                config.start,
                config.end,
                config.count(r),
                config.per_second,
            )
            .with_skew(config.skew)
        });
        Simulator {
            config,
            timelines,
            revealed: Default::default(),
            deleted: Default::default(),
            changes: Default::default(),
            has_changes: Default::default(),
        }
    }

    /// Makes the late objects ([`SimConfig::with_late`]) visible in lists from now on.
    pub fn reveal_late(&self) {
        self.revealed
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Whether object `i` of `r` is hidden from lists right now (late, or deleted).
    pub(crate) fn hidden(&self, r: Resource, i: u64) -> bool {
        (!self.config.late.is_empty()
            && !self.revealed.load(std::sync::atomic::Ordering::SeqCst)
            && self.config.late.contains(&(r, i)))
            || self.is_deleted(r, i)
    }

    /// Whether object `i` of `r` has been deleted.
    pub(crate) fn is_deleted(&self, r: Resource, i: u64) -> bool {
        self.deleted_by_change(r, i)
            || self.config.deleted_after_listing.contains(&r)
                && self
                    .deleted
                    .read()
                    .unwrap_or_else(|p| p.into_inner())
                    .contains(&(r, i))
    }

    /// Deletes the objects a list just returned, for resources configured so.
    pub(crate) fn delete_listed(&self, r: Resource, indices: &[u64]) {
        if self.config.deleted_after_listing.contains(&r) {
            let mut deleted = self.deleted.write().unwrap_or_else(|p| p.into_inner());
            deleted.extend(indices.iter().map(|&i| (r, i)));
        }
    }

    /// The configuration.
    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    fn timeline(&self, r: Resource) -> &Timeline {
        &self.timelines[r as usize]
    }

    /// Total number of objects of `r` (indices `0..len`).
    pub fn len(&self, r: Resource) -> u64 {
        self.timeline(r).count()
    }

    /// True if the simulator has no objects of `r`.
    pub fn is_empty(&self, r: Resource) -> bool {
        self.len(r) == 0
    }

    /// The `created` second of object `index`.
    pub fn created(&self, r: Resource, index: u64) -> i64 {
        self.timeline(r).created(index)
    }

    /// The id of object `index`, e.g. `ch_1…` (prefix + 24 base62 characters).
    pub fn id(&self, r: Resource, index: u64) -> String {
        let mut buf = Vec::with_capacity(32);
        self.push_id(r, index, &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }

    pub(crate) fn push_id(&self, r: Resource, index: u64, buf: &mut Vec<u8>) {
        self.push_ns_id(r.id_prefix(), namespace(r), index, buf);
    }

    pub(crate) fn push_ns_id(&self, prefix: &str, ns: u64, index: u64, buf: &mut Vec<u8>) {
        buf.extend_from_slice(prefix.as_bytes());
        dataset::encode_id(self.config.seed, ns, index, buf);
    }

    /// The index of the object with this id, if it exists in the dataset.
    pub fn index_of(&self, r: Resource, id: &str) -> Option<u64> {
        let body = id.strip_prefix(r.id_prefix())?;
        dataset::decode_id(self.config.seed, namespace(r), body).filter(|&i| i < self.len(r))
    }

    /// How many objects a full list of `r` with `created[gte]`/`created[lt]` returns
    /// (for subscriptions: with `status=all`).
    pub fn count(&self, r: Resource, gte: Option<i64>, lt: Option<i64>) -> u64 {
        let w = self.timeline(r).window(gte, lt);
        w.end - w.start
    }

    /// The ids of that window in list order (newest first), as a full pagination returns
    /// them. Meant for test expectations on small datasets.
    pub fn ids(&self, r: Resource, gte: Option<i64>, lt: Option<i64>) -> Vec<String> {
        self.timeline(r)
            .window(gte, lt)
            .rev()
            .map(|i| self.id(r, i))
            .collect()
    }

    /// Whether (and how) object `index` is served corrupt; deterministic in
    /// `(seed, resource, index)` and [`Faults::corrupt_rate`].
    pub fn corruption(&self, r: Resource, index: u64) -> Option<Corruption> {
        let rate = self.config.faults.corrupt_rate;
        if rate <= 0.0 {
            return None;
        }
        let h = hash(&[self.config.seed, namespace(r), index, salt::CORRUPT]);
        (unit(h) < rate).then_some(if h & 1 == 0 {
            Corruption::WrongType
        } else {
            Corruption::BrokenJson
        })
    }

    /// The number of corrupt records in a window (linear in the window's size).
    pub fn corrupt_count(&self, r: Resource, gte: Option<i64>, lt: Option<i64>) -> u64 {
        self.timeline(r)
            .window(gte, lt)
            .filter(|&i| self.corruption(r, i).is_some())
            .count() as u64
    }

    /// The `status` of subscription `index` (`active`, `canceled`, `trialing`, …).
    pub fn subscription_status(&self, index: u64) -> &'static str {
        billing::subscription_status(self.config.seed, index)
    }

    /// One object as served to a test-mode key (corruption included).
    pub fn object_json(&self, r: Resource, index: u64) -> String {
        let mut buf = Vec::with_capacity(3072);
        self.write_object(r, index, false, &mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    }

    /// Appends object `index` of `r` to `buf`, corrupt if [`Simulator::corruption`] says so.
    pub fn write_object(&self, r: Resource, index: u64, livemode: bool, buf: &mut Vec<u8>) {
        let from = buf.len();
        self.write_clean(r, index, livemode, buf);
        self.apply_changes(r, index, from, buf);
        if let Some(kind) = self.corruption(r, index) {
            let h = hash(&[self.config.seed, namespace(r), index, salt::CORRUPT, 1]);
            let type_field = match r {
                Resource::Charges | Resource::Refunds | Resource::BalanceTransactions => "amount",
                Resource::Customers => "balance",
                Resource::Prices => "unit_amount",
                Resource::Subscriptions => "current_period_end",
            };
            let (key, value): (&str, &[u8]) = match (kind, h & 1 == 0) {
                (Corruption::WrongType, true) => ("created", b"\"yesterday\""),
                (Corruption::WrongType, false) => (type_field, b"\"oops\""),
                (Corruption::BrokenJson, true) => ("created", b" "),
                (Corruption::BrokenJson, false) => ("currency", b"usd"),
            };
            json::splice_value(buf, from, key, value);
        }
    }

    /// Appends object `index` without corruption (also used for nested copies).
    pub(crate) fn write_clean(&self, r: Resource, index: u64, live: bool, buf: &mut Vec<u8>) {
        match r {
            Resource::Charges => payments::charge(self, index, live, buf),
            Resource::Refunds => payments::refund(self, index, buf),
            Resource::BalanceTransactions => payments::balance_transaction(self, index, buf),
            Resource::Customers => billing::customer(self, index, live, buf),
            Resource::Prices => billing::price(self, index, live, buf),
            Resource::Subscriptions => billing::subscription(self, index, live, buf),
        }
    }

    /// One object's private random stream.
    pub(crate) fn rng(&self, r: Resource, index: u64) -> Rng {
        Rng::new(hash(&[self.config.seed, namespace(r), index, salt::OBJECT]))
    }

    /// A deterministic index of an existing object of `r` created no later than `t`
    /// (any index if there is none), for references between resources.
    pub(crate) fn pick_before(&self, r: Resource, t: i64, rng: &mut Rng) -> u64 {
        let upto = self.timeline(r).lower_bound(t.saturating_add(1));
        match upto {
            0 => rng.below(self.len(r).max(1)),
            n => rng.below(n),
        }
    }

    /// Serves the dataset on `127.0.0.1` on a free port.
    pub async fn start(self) -> std::io::Result<SimHandle> {
        self.start_on(SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Serves the dataset on `addr`, on the caller's tokio runtime.
    pub async fn start_on(self, addr: SocketAddr) -> std::io::Result<SimHandle> {
        server::start(self, addr).await
    }
}

/// The id namespace of a listed resource.
fn namespace(r: Resource) -> u64 {
    1 + r as u64
}
