//! Backfill planning: roughly how many objects a `created` range holds, how many requests a
//! full walk takes, and how long that is at the client's request budget, from one sample page
//! per window.
//!
//! # Assumptions
//!
//! - **Uniform density inside a window.** Lists are newest first, so a window's first page covers
//!   its most recent seconds `[t, lt)` (`t` = `created` of the page's last record); the rate of
//!   that page (`records / (lt - t)`) is projected over the rest of the window `[gte, t)`. Data
//!   that grows over time is therefore over-estimated and shrinking data under-estimated; more
//!   windows give a finer picture. A window whose sample page has no `has_more` is counted
//!   exactly.
//! - **Requests** = `ceil(objects / page limit)` per window, at least one (an empty window still
//!   costs a request). The sample requests are not extra: they are the walk's first pages, which
//!   the walk re-requests, so count them once more if you add up total traffic. Adaptive
//!   splitting costs about one request more per split; retries are not counted.
//! - **Duration** = requests ÷ the budget the client paces at: the smaller of its global and
//!   per-endpoint budgets (all requests of a backfill go to one endpoint). It assumes enough
//!   windows run at once for the budget, not latency, to be the limit.
//! - The estimate is made once: objects created in the range after sampling are not counted.

use std::fmt;

use futures::stream::{self, StreamExt, TryStreamExt};
use serde::{Serialize, Serializer};

use super::windows::{record_created, WindowPlan, WindowState};
use super::{Page, SourceError, StripeClient, Window};
use crate::Resource;

/// How many sample requests are in flight at once (they still pass the client's budget).
const SAMPLE_CONCURRENCY: usize = 8;

/// How a window's object count was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EstimateBasis {
    /// The sample page was the whole window (no `has_more`): the count is exact.
    Exact,
    /// Projected from the density of the sample page.
    Density,
    /// The sample page's `created` values were unreadable: only its records are counted.
    LowerBound,
}

impl fmt::Display for EstimateBasis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EstimateBasis::Exact => "exact",
            EstimateBasis::Density => "density",
            EstimateBasis::LowerBound => "at least",
        })
    }
}

/// One window of a [`BackfillPlanEstimate`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WindowEstimate {
    /// Inclusive lower `created` bound.
    pub gte: i64,
    /// Exclusive upper `created` bound.
    pub lt: i64,
    /// Records in the sample page.
    pub sampled: usize,
    /// The sample page's `has_more`.
    pub has_more: bool,
    /// Estimated objects in the window.
    pub objects: u64,
    /// Estimated requests to walk the window (at least 1).
    pub requests: u64,
    /// How `objects` was obtained.
    pub basis: EstimateBasis,
}

/// What [`plan_backfill`] found: per-window and total estimates (see the [module
/// docs](self) for the assumptions). `Display` prints a short table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BackfillPlanEstimate {
    /// The resource sampled (serialized as its path, e.g. `charges`).
    #[serde(serialize_with = "resource_path")]
    pub resource: Resource,
    /// Inclusive lower `created` bound of the backfill.
    pub gte: i64,
    /// Exclusive upper `created` bound of the backfill.
    pub lt: i64,
    /// Records per page the client requests.
    pub page_limit: u32,
    /// The request budget the duration assumes (requests per second).
    pub requests_per_sec: f64,
    /// Sample requests made (one per window).
    pub sample_requests: u64,
    /// Estimated objects in `[gte, lt)`.
    pub objects: u64,
    /// Estimated requests for a full walk (sum over the windows).
    pub requests: u64,
    /// Estimated duration of a full walk in seconds, at `requests_per_sec`.
    pub secs: f64,
    /// True when every window was counted exactly.
    pub exact: bool,
    /// The windows sampled, oldest first (those of [`WindowPlan::split`]).
    pub windows: Vec<WindowEstimate>,
}

fn resource_path<S: Serializer>(r: &Resource, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(r.path())
}

impl BackfillPlanEstimate {
    /// The windows as a fresh [`WindowPlan`] to start the backfill with.
    pub fn plan(&self) -> WindowPlan {
        WindowPlan {
            windows: self
                .windows
                .iter()
                .enumerate()
                .map(|(i, w)| WindowState::new(i as u32, w.gte, w.lt))
                .collect(),
            next_id: self.windows.len() as u32,
        }
    }
}

/// Samples the first page of each of `windows` equal windows of `[gte, lt)` (at the client's
/// page limit, through its rate budget) and estimates the objects per window, the requests a
/// full walk takes and how long it takes at the client's budget. See the [module docs](self)
/// for the assumptions. An empty range (`lt <= gte`) makes no request.
pub async fn plan_backfill(
    client: &StripeClient,
    resource: Resource,
    gte: i64,
    lt: i64,
    windows: usize,
) -> Result<BackfillPlanEstimate, SourceError> {
    let cfg = client.config();
    let limit = cfg.page_limit.max(1);
    let rate = cfg
        .effective_requests_per_sec()
        .min(cfg.effective_endpoint_requests_per_sec());
    let plan = WindowPlan::split(gte, lt, windows);
    let estimates: Vec<WindowEstimate> = stream::iter(plan.windows.iter())
        .map(|w| async move {
            let window = Window {
                gte: Some(w.gte),
                lt: Some(w.lt),
            };
            let page = client.list_page(resource, window, None).await?;
            Ok::<_, SourceError>(estimate_window(w.gte, w.lt, &page, limit))
        })
        .buffered(SAMPLE_CONCURRENCY)
        .try_collect()
        .await?;
    let objects = estimates.iter().map(|w| w.objects).sum();
    let requests = estimates.iter().map(|w| w.requests).sum::<u64>();
    Ok(BackfillPlanEstimate {
        resource,
        gte,
        lt,
        page_limit: limit,
        requests_per_sec: rate,
        sample_requests: estimates.len() as u64,
        objects,
        requests,
        secs: if rate > 0.0 {
            requests as f64 / rate
        } else {
            f64::INFINITY
        },
        exact: estimates.iter().all(|w| w.basis == EstimateBasis::Exact),
        windows: estimates,
    })
}

/// The estimate for window `[gte, lt)` from its first page.
pub(crate) fn estimate_window(gte: i64, lt: i64, page: &Page, limit: u32) -> WindowEstimate {
    let n = page.len();
    let (objects, basis) = if !page.has_more {
        (n as u64, EstimateBasis::Exact)
    } else {
        // The last record whose `created` is readable and inside the window.
        let last = (0..n)
            .rev()
            .find_map(|i| record_created(page.record(i)).filter(|t| (gte..lt).contains(t)));
        match last {
            Some(t) => {
                let per_sec = n as f64 / lt.saturating_sub(t).max(1) as f64;
                let rest = per_sec * t.saturating_sub(gte) as f64;
                (n as u64 + rest.round() as u64, EstimateBasis::Density)
            }
            None => (n as u64, EstimateBasis::LowerBound),
        }
    };
    WindowEstimate {
        gte,
        lt,
        sampled: n,
        has_more: page.has_more,
        objects,
        requests: objects.div_ceil(u64::from(limit.max(1))).max(1),
        basis,
    }
}

fn date(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| d.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| t.to_string())
}

/// `42.0 s`, `12 min`, `3.5 h`, `2.1 days`.
fn duration(secs: f64) -> String {
    match secs {
        s if !s.is_finite() => "∞".to_string(),
        s if s < 120.0 => format!("{s:.1} s"),
        s if s < 7_200.0 => format!("{:.0} min", s / 60.0),
        s if s < 172_800.0 => format!("{:.1} h", s / 3_600.0),
        s => format!("{:.1} days", s / 86_400.0),
    }
}

impl fmt::Display for BackfillPlanEstimate {
    /// A summary line, then one row per window.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let approx = if self.exact { "" } else { "≈" };
        writeln!(
            f,
            "{} created [{}, {}): {approx}{} objects, {approx}{} requests, {approx}{} at {} req/s ({} windows sampled)",
            self.resource.path(),
            date(self.gte),
            date(self.lt),
            self.objects,
            self.requests,
            duration(self.secs),
            self.requests_per_sec,
            self.windows.len()
        )?;
        writeln!(
            f,
            "{:>6}  {:<19}  {:<19}  {:>7}  {:<8}  {:>10}  {:>8}",
            "window", "created from", "created to", "sampled", "basis", "objects", "requests"
        )?;
        for (i, w) in self.windows.iter().enumerate() {
            writeln!(
                f,
                "{:>6}  {:<19}  {:<19}  {:>7}  {:<8}  {:>10}  {:>8}",
                i,
                date(w.gte),
                date(w.lt),
                format!("{}{}", w.sampled, if w.has_more { "+" } else { "" }),
                w.basis.to_string(),
                w.objects,
                w.requests
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn page(created: &[&str], has_more: bool) -> Page {
        let recs: Vec<String> = created
            .iter()
            .enumerate()
            .map(|(i, c)| format!(r#"{{"id":"ch_{i}","created":{c}}}"#))
            .collect();
        let body = format!(r#"{{"data":[{}],"has_more":{has_more}}}"#, recs.join(","));
        let env = crate::source::scan(body.as_bytes()).unwrap();
        Page {
            resource: Resource::Charges,
            body: Bytes::from(body),
            records: env.records,
            has_more,
            request_id: None,
            window: Window::default(),
            starting_after: None,
            next_cursor: None,
        }
    }

    #[test]
    fn exact_density_and_lower_bound() {
        let e = estimate_window(0, 100, &page(&["90", "80"], false), 2);
        assert_eq!(
            (e.objects, e.requests, e.basis),
            (2, 1, EstimateBasis::Exact)
        );
        let e = estimate_window(0, 100, &page(&[], false), 2);
        assert_eq!((e.objects, e.requests), (0, 1));
        // 2 records over [90, 100): 0.2/s; 90 s left: 18 more.
        let e = estimate_window(0, 100, &page(&["95", "90"], true), 2);
        assert_eq!(
            (e.objects, e.requests, e.basis),
            (20, 10, EstimateBasis::Density)
        );
        // The unreadable last record falls back on the one before it.
        let e = estimate_window(0, 100, &page(&["90", "\"x\""], true), 2);
        assert_eq!((e.objects, e.basis), (20, EstimateBasis::Density));
        let e = estimate_window(0, 100, &page(&["\"x\""], true), 2);
        assert_eq!((e.objects, e.basis), (1, EstimateBasis::LowerBound));
    }

    #[test]
    fn display_is_a_short_table() {
        let est = BackfillPlanEstimate {
            resource: Resource::Charges,
            gte: 0,
            lt: 100,
            page_limit: 2,
            requests_per_sec: 25.0,
            sample_requests: 1,
            objects: 20,
            requests: 10,
            secs: 0.4,
            exact: false,
            windows: vec![estimate_window(0, 100, &page(&["95", "90"], true), 2)],
        };
        let s = est.to_string();
        assert!(s.starts_with("charges created [1970-01-01 00:00:00, 1970-01-01 00:01:40): ≈20 objects, ≈10 requests, ≈0.4 s at 25 req/s"), "{s}");
        assert_eq!(s.lines().count(), 3, "{s}");
        assert!(s.lines().nth(2).unwrap().contains("2+"), "{s}");
        assert_eq!(duration(7_200.0), "2.0 h");
        assert_eq!(est.plan(), WindowPlan::split(0, 100, 1));
        let json = serde_json::to_value(&est).unwrap();
        assert_eq!(json["resource"], "charges");
        assert_eq!(json["windows"][0]["basis"], "density");
    }
}
