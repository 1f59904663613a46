//! What the source hands downstream: pages of raw records, and the counters of a run.

use std::ops::Range;

use bytes::Bytes;

use crate::Resource;

/// A half-open `created` window, `[gte, lt)`, in unix seconds; `None` bounds are open.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Window {
    /// Sent as `created[gte]`.
    pub gte: Option<i64>,
    /// Sent as `created[lt]`.
    pub lt: Option<i64>,
}

impl std::fmt::Display for Window {
    /// `created [1700000000, 1702592000)`, with `-∞` / `+∞` for open bounds.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |b: Option<i64>, open: &str| b.map_or(open.to_string(), |v| v.to_string());
        write!(
            f,
            "created [{}, {})",
            show(self.gte, "-∞"),
            show(self.lt, "+∞")
        )
    }
}

/// One page of a list: the raw body and where each record is in it.
#[derive(Debug, Clone)]
pub struct Page {
    /// The resource listed.
    pub resource: Resource,
    /// The response body, unparsed.
    pub body: Bytes,
    /// Byte ranges of the records in `body`.
    pub records: Vec<Range<usize>>,
    /// The envelope's `has_more`.
    pub has_more: bool,
    /// The `Request-Id` response header.
    pub request_id: Option<String>,
    /// The `created` window requested.
    pub window: Window,
    /// The `starting_after` cursor requested (`None` for a window's first page).
    pub starting_after: Option<String>,
    /// The id of the last record: the cursor for the next page.
    pub next_cursor: Option<String>,
}

impl Page {
    /// The raw bytes of record `i`.
    ///
    /// # Panics
    /// If `i >= self.len()`.
    pub fn record(&self, i: usize) -> &[u8] {
        &self.body[self.records[i].clone()]
    }

    /// The number of records.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// True when the page has no records.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The raw records in order.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.records.iter().map(|r| &self.body[r.clone()])
    }

    /// Keeps only the records for which `keep` (given the raw bytes) returns true. The body and
    /// `next_cursor` stay as Stripe sent them.
    pub fn retain(&mut self, mut keep: impl FnMut(&[u8]) -> bool) {
        let body = &self.body;
        self.records.retain(|r| keep(&body[r.clone()]));
    }
}

/// Counters shared by all clones of a client.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FetchStats {
    /// HTTP attempts sent (retries included).
    pub requests: u64,
    /// List pages received successfully.
    pub pages: u64,
    /// Retries made.
    pub retries: u64,
    /// 429 responses seen.
    pub throttled: u64,
    /// 5xx responses seen.
    pub server_errors: u64,
    /// Response body bytes received (all responses).
    pub bytes_in: u64,
    /// Records received in successful pages.
    pub records: u64,
}
