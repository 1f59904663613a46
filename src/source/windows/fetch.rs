//! The concurrent walker of a [`WindowPlan`]: one page request per window at a time, at most
//! `concurrency` windows at once, splitting dense windows into idle slots.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

use futures::stream::{FuturesUnordered, StreamExt};
use tokio::sync::mpsc;

use super::{
    record_created, FetchSummary, WindowEvent, WindowOptions, WindowPlan, WindowState, WindowedPage,
};
use crate::source::{SourceError, StripeClient, Window};
use crate::Resource;

/// A window being walked, with what its walk remembers between pages.
struct Walker {
    state: WindowState,
    /// Cursors already followed in this call (loop detection, as in `fetch_all`).
    seen: HashSet<String>,
    /// `created` of the last record of the previous page, if readable.
    prev_last: Option<i64>,
}

impl Walker {
    fn new(state: WindowState) -> Self {
        Walker {
            state,
            seen: HashSet::new(),
            prev_last: None,
        }
    }
}

/// State shared by the in-flight page steps (never locked across an await).
struct Shared {
    /// Windows not done: in flight or queued.
    live: usize,
    next_id: u32,
}

struct Ctx<'a> {
    client: &'a StripeClient,
    resource: Resource,
    tx: &'a mpsc::Sender<WindowedPage>,
    opts: WindowOptions,
    limit: u32,
    shared: Mutex<Shared>,
}

/// What one page step hands back to the scheduler.
struct Stepped {
    /// The walker, unless its window is done.
    walker: Option<Walker>,
    spawned: Vec<WindowState>,
    records: usize,
}

/// Walks every not-done window of `plan` concurrently and sends each page with its
/// [`WindowEvent`] to `tx`.
///
/// At most `opts.concurrency` windows are walked at once; every request passes the client's
/// rate budget (shared with its clones), and retries happen inside
/// [`StripeClient::list_page`]. `tx` is the backpressure: a full channel holds the walkers. A
/// window with a cursor resumes after it (`starting_after`) within its `[gte, lt)`; done
/// windows are skipped. Pages of one window are sent in order, and a page that spawned windows
/// is sent before any page of those windows is requested.
///
/// Returns when every window is done, or quietly (`Ok`, with `stopped`) when the receiver is
/// dropped. The first error of any window aborts the whole fetch (in-flight requests are
/// dropped); a cursor that a window already followed is a [`SourceError::StuckCursor`].
///
/// # Adaptive splitting
///
/// After a page with `has_more` whose last record was created at `t` (read with
/// [`record_created`]), the window's density is estimated from the seconds that page covered
/// (from the window's `lt`, or the previous page's last `created`, down to `t`) and projected
/// over the unwalked seconds `[gte, t)`. When that exceeds `opts.split_when_pages_left` pages
/// and fewer than `opts.concurrency` windows are live (walking or queued), the unwalked
/// remainder `[gte, t]` is cut into up to `idle + 1` equal parts of at least
/// `opts.split_min_secs` seconds: the walker keeps the top part `[mid, lt)` (with `mid <= t`, so
/// the partly read second `t` stays with it) and its cursor; the lower parts become new windows.
/// No split is made when the last record's `created` is unreadable or outside the window.
pub async fn fetch_windows(
    client: &StripeClient,
    resource: Resource,
    plan: WindowPlan,
    opts: WindowOptions,
    tx: mpsc::Sender<WindowedPage>,
) -> Result<FetchSummary, SourceError> {
    let opts = WindowOptions {
        concurrency: opts.concurrency.max(1),
        split_min_secs: opts.split_min_secs.max(1),
        ..opts
    };
    let max_id = plan.windows.iter().map(|w| w.id.saturating_add(1)).max();
    let next_id = plan.next_id.max(max_id.unwrap_or(0));
    let mut queue: VecDeque<Walker> = plan
        .windows
        .into_iter()
        .filter(|w| !w.done)
        .map(Walker::new)
        .collect();
    let ctx = Ctx {
        client,
        resource,
        tx: &tx,
        opts,
        limit: client.config().page_limit.max(1),
        shared: Mutex::new(Shared {
            live: queue.len(),
            next_id,
        }),
    };
    let mut summary = FetchSummary::default();
    let mut inflight = FuturesUnordered::new();
    loop {
        while inflight.len() < opts.concurrency {
            match queue.pop_front() {
                Some(w) => inflight.push(step(&ctx, w)),
                None => break,
            }
        }
        let Some(outcome) = inflight.next().await else {
            return Ok(summary);
        };
        let Some(stepped) = outcome? else {
            summary.stopped = true;
            return Ok(summary);
        };
        summary.pages += 1;
        summary.records += stepped.records as u64;
        if !stepped.spawned.is_empty() {
            summary.splits += 1;
            summary.windows_spawned += stepped.spawned.len() as u32;
        }
        match stepped.walker {
            // Keep walking windows already started before opening new ones.
            Some(w) => queue.push_front(w),
            None => summary.windows_done += 1,
        }
        queue.extend(stepped.spawned.into_iter().map(Walker::new));
    }
}

/// Fetches one page of a window, decides on a split, sends the page. `Ok(None)`: the receiver
/// is gone.
async fn step(ctx: &Ctx<'_>, mut w: Walker) -> Result<Option<Stepped>, SourceError> {
    if ctx.tx.is_closed() {
        return Ok(None);
    }
    let mut window = Window {
        gte: Some(w.state.gte),
        lt: Some(w.state.lt),
    };
    let mut page = match ctx
        .client
        .list_page(ctx.resource, window, w.state.cursor.as_deref())
        .await
    {
        Ok(page) => page,
        Err(e) if cursor_missing(&e) && resumable_by_time(&w.state) => {
            // The cursor object was deleted in Stripe (a customer, say) since it was listed:
            // go on by time, from the second of the last record emitted, without a cursor.
            let reached = w.state.reached.expect("checked by resumable_by_time");
            tracing::warn!(
                window = w.state.id,
                cursor = w.state.cursor.as_deref().unwrap_or(""),
                created_lt = reached + 1,
                "the cursor object no longer exists; walking on from its second"
            );
            w.state.lt = reached + 1;
            w.state.cursor = None;
            w.prev_last = None;
            window.lt = Some(w.state.lt);
            ctx.client.list_page(ctx.resource, window, None).await?
        }
        Err(e) => return Err(e),
    };
    let first = page.starting_after.is_none();
    if first {
        leave_out_emitted(&mut page, &w.state);
    }
    if let Some(next) = &page.next_cursor {
        if page.has_more && !w.seen.insert(next.clone()) {
            return Err(SourceError::StuckCursor {
                endpoint: StripeClient::endpoint(ctx.resource),
                cursor: Some(next.clone()),
                window,
                reason: "the cursor was already visited (pagination loops)".to_string(),
            });
        }
        w.state.cursor = Some(next.clone());
    }
    let t_last = page
        .records
        .last()
        .and_then(|r| record_created(&page.body[r.clone()]));
    let top = if first {
        Some(w.state.lt)
    } else {
        w.prev_last
            .or_else(|| page.iter().next().and_then(record_created))
    };
    w.prev_last = t_last;
    remember_edge(&mut w.state, &page, t_last);

    let mut spawned = Vec::new();
    {
        let mut sh = ctx.shared.lock().unwrap_or_else(|p| p.into_inner());
        if !page.has_more {
            w.state.done = true;
            sh.live = sh.live.saturating_sub(1);
        } else if let (Some(t), Some(top)) = (t_last, top) {
            let idle = ctx.opts.concurrency.saturating_sub(sh.live);
            let cuts = plan_split(&w.state, page.len(), top, t, idle, ctx.limit, &ctx.opts);
            // The walker keeps [last cut, lt); the parts below become windows, newest first.
            if let Some(&keep_from) = cuts.last() {
                let mut edges = vec![w.state.gte];
                edges.extend(&cuts);
                for pair in edges.windows(2).rev() {
                    spawned.push(WindowState::new(sh.next_id, pair[0], pair[1]));
                    sh.next_id += 1;
                    sh.live += 1;
                }
                w.state.gte = keep_from;
            }
        }
    }
    let records = page.len();
    let event = WindowEvent {
        window: w.state.clone(),
        spawned: spawned.clone(),
    };
    if !spawned.is_empty() {
        tracing::debug!(
            window = w.state.id,
            gte = w.state.gte,
            lt = w.state.lt,
            spawned = spawned.len(),
            "window split"
        );
    }
    if ctx.tx.send(WindowedPage { page, event }).await.is_err() {
        return Ok(None);
    }
    // Only now may the spawned windows be walked: their first page comes after this one.
    Ok(Some(Stepped {
        walker: (!w.state.done).then_some(w),
        spawned,
        records,
    }))
}

/// Stripe's answer to a `starting_after` that names an object that no longer exists.
fn cursor_missing(e: &SourceError) -> bool {
    matches!(e, SourceError::Stripe { status: 400 | 404, code: Some(code), param: Some(param), .. }
        if code == "resource_missing" && param == "starting_after")
}

/// Whether a window whose cursor is gone can go on by time: it knows the second it reached and
/// the ids it emitted in that second.
fn resumable_by_time(w: &WindowState) -> bool {
    w.cursor.is_some() && w.reached.is_some_and(|r| r >= w.gte && r < w.lt) && w.edge.is_some()
}

/// On a page listed without a cursor after a walk by time resumed (see `step`), the records of
/// the reached second that were emitted before are left out. The cursor for the next page
/// stays the page's own last id.
fn leave_out_emitted(page: &mut crate::source::Page, w: &WindowState) {
    let (Some(reached), Some(edge)) = (w.reached, w.edge.as_ref()) else {
        return;
    };
    if edge.is_empty() {
        return;
    }
    page.retain(|raw| {
        record_created(raw) != Some(reached)
            || !crate::source::envelope::record_id(raw).is_some_and(|id| edge.contains(&id))
    });
}

/// Updates the window's `reached` second and the ids emitted in it after `page`, whose last
/// record was created at `t_last` (records come newest first, so only the page's tail is read).
fn remember_edge(w: &mut WindowState, page: &crate::source::Page, t_last: Option<i64>) {
    let Some(t) = t_last else {
        if !page.is_empty() {
            // The second reached is unknown: a deleted cursor cannot be walked around.
            w.edge = None;
        }
        return;
    };
    let tail = page
        .records
        .iter()
        .rev()
        .map(|r| &page.body[r.clone()])
        .take_while(|raw| record_created(raw) == Some(t))
        .filter_map(crate::source::envelope::record_id);
    match (&mut w.edge, w.reached == Some(t)) {
        (Some(edge), true) => {
            for id in tail {
                if !edge.contains(&id) {
                    edge.push(id);
                }
            }
        }
        (edge, _) => *edge = Some(tail.collect()),
    }
    w.reached = Some(t);
}

/// Estimated pages left in window `w` after a page of `n` records that covered the seconds
/// from `top` down to `t` (the `created` of its last record).
pub(super) fn pages_left(w: &WindowState, n: usize, top: i64, t: i64, limit: u32) -> f64 {
    let covered = top.saturating_sub(t).max(1) as f64;
    let per_sec = n as f64 / covered;
    let unwalked = t.saturating_sub(w.gte).max(0) as f64;
    per_sec * unwalked / f64::from(limit.max(1))
}

/// The cut points of a split of `w` after a page ending at `created` second `t`, ascending;
/// empty for no split. With cuts `c1 < … < ck`, the parent keeps `[ck, lt)` and the new windows
/// are `[gte, c1)`, `[c1, c2)`, … Every part is at least `split_min_secs` wide and `ck <= t`.
pub(super) fn plan_split(
    w: &WindowState,
    n: usize,
    top: i64,
    t: i64,
    idle: usize,
    limit: u32,
    opts: &WindowOptions,
) -> Vec<i64> {
    if idle == 0 || t < w.gte || t >= w.lt {
        return Vec::new();
    }
    let left = pages_left(w, n, top, t, limit);
    if left <= f64::from(opts.split_when_pages_left) {
        return Vec::new();
    }
    // The unwalked seconds [gte, t], t included: it may hold unread records.
    let width = i128::from(t) - i128::from(w.gte) + 1;
    let min = i128::from(opts.split_min_secs.max(1));
    let by_pages = (left.ceil() as i128).max(2);
    let parts = (idle as i128 + 1).min(width / min).min(by_pages);
    if parts < 2 {
        return Vec::new();
    }
    (1..parts)
        .map(|j| (i128::from(w.gte) + width * j / parts) as i64)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::Page;

    /// A page of customers `(id, created)`, newest first.
    fn page(records: &[(&str, i64)], starting_after: Option<&str>) -> Page {
        let data: Vec<String> = records
            .iter()
            .map(|(id, t)| format!(r#"{{"id":"{id}","object":"customer","created":{t}}}"#))
            .collect();
        let body = bytes::Bytes::from(format!(
            r#"{{"object":"list","data":[{}],"has_more":true}}"#,
            data.join(",")
        ));
        let env = crate::source::envelope::scan(&body).unwrap();
        Page {
            resource: Resource::Customers,
            next_cursor: records.last().map(|(id, _)| id.to_string()),
            body,
            records: env.records,
            has_more: true,
            request_id: None,
            window: Window::default(),
            starting_after: starting_after.map(str::to_string),
        }
    }

    fn ids(p: &Page) -> Vec<String> {
        p.iter()
            .map(|r| crate::source::envelope::record_id(r).unwrap())
            .collect()
    }

    #[test]
    fn the_edge_holds_the_ids_of_the_reached_second_across_pages() {
        let mut w = WindowState::new(0, 0, 100);
        let p1 = page(&[("c9", 90), ("c8", 80), ("c7", 80)], None);
        remember_edge(&mut w, &p1, Some(80));
        assert_eq!(
            (w.reached, w.edge.clone()),
            (Some(80), Some(vec!["c7".into(), "c8".into()]))
        );
        // The same second goes on in the next page: the ids add up.
        let p2 = page(&[("c6", 80), ("c5", 80)], Some("c7"));
        remember_edge(&mut w, &p2, Some(80));
        assert_eq!(w.edge.as_ref().unwrap().len(), 4);
        // A page ending in a new second starts over.
        let p3 = page(&[("c4", 80), ("c3", 70)], Some("c5"));
        remember_edge(&mut w, &p3, Some(70));
        assert_eq!(
            (w.reached, w.edge.clone()),
            (Some(70), Some(vec!["c3".into()]))
        );
        // A last record without a readable `created`: the edge is unknown.
        remember_edge(&mut w, &p3, None);
        assert_eq!(w.edge, None);
        w.cursor = Some("c3".into());
        assert!(!resumable_by_time(&w));
    }

    #[test]
    fn after_a_deleted_cursor_the_first_page_leaves_out_what_was_emitted() {
        // Emitted so far: down to c6 at second 80 (c8, c7, c6 at 80); c6 was then deleted.
        let mut w = WindowState::new(0, 0, 100);
        w.reached = Some(80);
        w.edge = Some(vec!["c8".into(), "c7".into(), "c6".into()]);
        w.cursor = Some("c6".into());
        assert!(resumable_by_time(&w));
        // Walking on from [0, 81) lists c8, c7 again (c6 is gone), then c5 at 80 and older.
        let mut p = page(&[("c8", 80), ("c7", 80), ("c5", 80), ("c4", 75)], None);
        leave_out_emitted(&mut p, &w);
        assert_eq!(ids(&p), ["c5", "c4"]);
        assert_eq!(p.next_cursor.as_deref(), Some("c4"));
        // An id of the edge at another second is not left out (ids are unique; belt and braces).
        let mut q = page(&[("c8", 79)], None);
        leave_out_emitted(&mut q, &w);
        assert_eq!(ids(&q), ["c8"]);
        // Only a page listed without a cursor is filtered by the caller; with no edge, nothing is.
        w.edge = None;
        let mut r = page(&[("c8", 80)], None);
        leave_out_emitted(&mut r, &w);
        assert_eq!(ids(&r), ["c8"]);
    }

    fn opts(pages: u32, min: i64) -> WindowOptions {
        WindowOptions {
            concurrency: 8,
            split_min_secs: min,
            split_when_pages_left: pages,
        }
    }

    #[test]
    fn estimate_projects_the_page_density() {
        let w = WindowState::new(0, 0, 1_000);
        // 100 records over [900, 1000): 1/s, 900 s left: 9 pages.
        assert!((pages_left(&w, 100, 1_000, 900, 100) - 9.0).abs() < 1e-9);
        // All in one second: at least 100/s.
        assert!(pages_left(&w, 100, 900, 900, 100) >= 900.0);
    }

    #[test]
    fn cuts_leave_the_last_second_with_the_walker() {
        let w = WindowState::new(0, 0, 1_000);
        let cuts = plan_split(&w, 100, 1_000, 900, 1, 100, &opts(4, 1));
        assert_eq!(cuts, vec![450]);
        let cuts = plan_split(&w, 100, 1_000, 900, 3, 100, &opts(4, 1));
        assert_eq!(cuts.len(), 3);
        assert!(cuts.windows(2).all(|p| p[0] < p[1]) && *cuts.last().unwrap() <= 900);
        // Two seconds [0, 1] left: one cut at 1, the walker keeps second 1.
        let cuts = plan_split(&w, 100, 2, 1, 7, 100, &opts(0, 1));
        assert_eq!(cuts, vec![1]);
        // One second left: nothing to split.
        assert!(plan_split(&w, 100, 1, 0, 7, 100, &opts(0, 1)).is_empty());
    }

    #[test]
    fn no_cut_without_idle_slots_density_width_or_a_sane_created() {
        let w = WindowState::new(0, 0, 1_000);
        assert!(plan_split(&w, 100, 1_000, 900, 0, 100, &opts(4, 1)).is_empty());
        assert!(plan_split(&w, 100, 1_000, 900, 3, 100, &opts(9, 1)).is_empty());
        assert!(plan_split(&w, 100, 1_000, 900, 3, 100, &opts(4, 500)).is_empty());
        assert_eq!(
            plan_split(&w, 100, 1_000, 900, 3, 100, &opts(4, 300)),
            vec![300, 600]
        );
        assert!(plan_split(&w, 100, 1_000, 1_000, 3, 100, &opts(0, 1)).is_empty());
        assert!(plan_split(&w, 100, 1_000, -1, 3, 100, &opts(0, 1)).is_empty());
    }

    #[test]
    fn cuts_respect_the_minimum_width() {
        let w = WindowState::new(0, 100, 10_000);
        for idle in 1..12 {
            for min in [1, 7, 60] {
                let cuts = plan_split(&w, 100, 9_000, 8_000, idle, 100, &opts(0, min));
                let mut edges = vec![100];
                edges.extend(&cuts);
                edges.push(8_001);
                assert!(edges.windows(2).all(|p| p[1] - p[0] >= min), "{edges:?}");
                assert!(cuts.len() <= idle);
            }
        }
    }
}
