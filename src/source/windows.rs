//! Parallel, adaptively split `created` windows for high-volume backfills.
//!
//! A backfill of `[gte, lt)` is a [`WindowPlan`]: half-open `created` windows, each walked newest
//! first with its own `starting_after` cursor. [`fetch_windows`] walks the pending windows of a
//! plan concurrently and, when a window turns out dense while slots are idle, splits the part of
//! it not yet walked into new windows ([adaptive splitting](fetch_windows#adaptive-splitting)).
//!
//! Every page goes out with a [`WindowEvent`]: the state of its window after the page, and the
//! windows split off it. A consumer that [`applies`](WindowPlan::apply) the events in channel
//! order holds, at every point, a plan that resumes the backfill exactly after the pages it has
//! consumed: restarting [`fetch_windows`] from it yields every remaining object once and nothing
//! already consumed.
//!
//! Why this is exact: a window's walk moves down from `lt`; after a page whose last record `L`
//! was created at `t`, every object of the window created before `t` is still unread, and
//! objects created at `t` may be partly read. A split therefore only cuts `[gte, mid)` off with
//! `mid <= t`; the current walker keeps `[mid, lt)` with its cursor `L`. Windows are half-open,
//! so an object (however many share its second) belongs to exactly one window.

mod created;
mod fetch;

use serde::{Deserialize, Serialize};

pub use created::record_created;
pub use fetch::fetch_windows;

use super::page::Page;

/// One window's resumable state: the half-open `created` range `[gte, lt)`, `cursor` = id of
/// the last record already emitted (`None` = not started), `done` = fully walked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowState {
    /// The window's id, unique within its plan.
    pub id: u32,
    /// Inclusive lower `created` bound (unix seconds); raised when the window is split.
    pub gte: i64,
    /// Exclusive upper `created` bound (unix seconds).
    pub lt: i64,
    /// The id of the last record emitted: the `starting_after` of the window's next page.
    pub cursor: Option<String>,
    /// True once a page without `has_more` was emitted.
    pub done: bool,
    /// The `created` second of the last record emitted: a window is walked newest first, so
    /// `[reached, lt)` is behind it (for progress; `None` before its first page).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reached: Option<i64>,
    /// The ids already emitted whose `created` is `reached`; `None` when not known (before the
    /// first page, or after a page whose last record's `created` could not be read). If the
    /// cursor object is deleted in Stripe, the walk goes on from `[gte, reached + 1)` without a
    /// cursor and leaves these out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edge: Option<Vec<String>>,
}

impl WindowState {
    /// A fresh (not started) window.
    pub fn new(id: u32, gte: i64, lt: i64) -> Self {
        WindowState {
            id,
            gte,
            lt,
            cursor: None,
            done: false,
            reached: None,
            edge: None,
        }
    }

    /// The width of the range in seconds (0 when empty).
    pub fn width(&self) -> i64 {
        self.lt.saturating_sub(self.gte).max(0)
    }

    /// Seconds of the range already walked: all of it once done, else `[reached, lt)`.
    pub fn walked(&self) -> i64 {
        match (self.done, self.reached) {
            (true, _) => self.width(),
            // max/min, not clamp: a range read back from a bad checkpoint may have gte > lt.
            (false, Some(r)) => self.lt.saturating_sub(r.max(self.gte).min(self.lt)).max(0),
            (false, None) => 0,
        }
    }
}

/// The set of windows of a backfill (serializable: it is what a checkpoint stores).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct WindowPlan {
    /// The windows, in no particular order; together they partition the backfill's range.
    pub windows: Vec<WindowState>,
    /// The id the next split-off window gets.
    pub next_id: u32,
}

impl WindowPlan {
    /// Splits `[gte, lt)` into `n` equal half-open windows (ids `0..n`, oldest first).
    ///
    /// `n` is raised to 1 and lowered to the range's width in seconds, so no window is empty.
    /// An empty range (`lt <= gte`) gives a plan without windows, which is already done.
    pub fn split(gte: i64, lt: i64, n: usize) -> WindowPlan {
        if lt <= gte {
            return WindowPlan::default();
        }
        let width = i128::from(lt) - i128::from(gte);
        let n = (n.max(1) as i128).min(width).min(i128::from(u32::MAX));
        let at = |i: i128| (i128::from(gte) + width * i / n) as i64;
        let windows = (0..n)
            .map(|i| WindowState::new(i as u32, at(i), at(i + 1)))
            .collect();
        WindowPlan {
            windows,
            next_id: n as u32,
        }
    }

    /// True when every window is done (also for a plan without windows).
    pub fn is_done(&self) -> bool {
        self.windows.iter().all(|w| w.done)
    }

    /// The windows not done yet.
    pub fn pending(&self) -> impl Iterator<Item = &WindowState> {
        self.windows.iter().filter(|w| !w.done)
    }

    /// The window with this id.
    pub fn get(&self, id: u32) -> Option<&WindowState> {
        self.windows.iter().find(|w| w.id == id)
    }

    /// Applies one page's event: replaces the page's window with its new state and adds the
    /// windows split off it. Used by the consumer to keep the plan as of the pages it has
    /// processed; apply events in the order they were received. A window id the plan does not
    /// know is added; a spawned window already present is left as it is.
    pub fn apply(&mut self, event: &WindowEvent) {
        let w = &event.window;
        match self.windows.iter_mut().find(|x| x.id == w.id) {
            Some(x) => *x = w.clone(),
            None => self.windows.push(w.clone()),
        }
        self.next_id = self.next_id.max(w.id.saturating_add(1));
        for s in &event.spawned {
            if self.get(s.id).is_none() {
                self.windows.push(s.clone());
            }
            self.next_id = self.next_id.max(s.id.saturating_add(1));
        }
    }

    /// Fraction of the created range (the windows' total width) already walked, `0.0..=1.0`;
    /// `1.0` for a plan without windows. A done window counts whole; a window in progress counts
    /// the seconds from its top down to the last record emitted. Time stands in for records,
    /// so skewed data makes it uneven, but it moves with every page.
    pub fn progress(&self) -> f64 {
        let total: i128 = self.windows.iter().map(|w| i128::from(w.width())).sum();
        if total == 0 {
            return if self.is_done() { 1.0 } else { 0.0 };
        }
        let done: i128 = self.windows.iter().map(|w| i128::from(w.walked())).sum();
        (done as f64 / total as f64).clamp(0.0, 1.0)
    }

    /// Checks the plan's invariants (for a plan read back from a checkpoint): ids are unique
    /// and below `next_id`, and no two windows overlap. Returns what is wrong.
    pub fn check(&self) -> Result<(), String> {
        let mut ids: Vec<u32> = self.windows.iter().map(|w| w.id).collect();
        ids.sort_unstable();
        if let Some(d) = ids.windows(2).find(|p| p[0] == p[1]) {
            return Err(format!("window id {} appears twice", d[0]));
        }
        if let Some(&max) = ids.last() {
            if max >= self.next_id {
                return Err(format!(
                    "window id {max} is not below next_id {}",
                    self.next_id
                ));
            }
        }
        let mut ranges: Vec<&WindowState> = self.windows.iter().filter(|w| w.width() > 0).collect();
        ranges.sort_by_key(|w| w.gte);
        for p in ranges.windows(2) {
            if p[1].gte < p[0].lt {
                return Err(format!(
                    "windows {} [{}, {}) and {} [{}, {}) overlap",
                    p[0].id, p[0].gte, p[0].lt, p[1].id, p[1].gte, p[1].lt
                ));
            }
        }
        Ok(())
    }
}

/// What the fetcher emits with each page: the page's window state *after* it, and any windows
/// split off that window before the page's successor was requested.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowEvent {
    /// The window the page belongs to, as of after the page (cursor = the page's last id,
    /// `done` when the page had no `has_more`, `gte` raised if it was split).
    pub window: WindowState,
    /// Windows split off `window` at this page (fresh: no cursor), newest first.
    pub spawned: Vec<WindowState>,
}

/// One page of a windowed fetch, with its [`WindowEvent`].
#[derive(Debug, Clone)]
pub struct WindowedPage {
    /// The page; `page.window` is the `created` range requested.
    pub page: Page,
    /// The plan change this page brings.
    pub event: WindowEvent,
}

/// How [`fetch_windows`] walks and splits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowOptions {
    /// Windows walked at once (at least 1; 0 counts as 1). Requests still pass the client's
    /// rate budget, shared by all windows.
    pub concurrency: usize,
    /// Never split a window into parts narrower than this many seconds (at least 1).
    pub split_min_secs: i64,
    /// Split a window when its estimated remaining pages exceed this.
    pub split_when_pages_left: u32,
}

impl Default for WindowOptions {
    /// 4 windows at once, splits down to 1 s, when more than 4 pages are left.
    fn default() -> Self {
        WindowOptions {
            concurrency: 4,
            split_min_secs: 1,
            split_when_pages_left: 4,
        }
    }
}

/// What a [`fetch_windows`] call did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchSummary {
    /// Pages sent to the channel.
    pub pages: u64,
    /// Records in those pages.
    pub records: u64,
    /// Splits made (pages whose event spawned windows).
    pub splits: u32,
    /// Windows split off (an event may spawn several).
    pub windows_spawned: u32,
    /// Windows walked to the end by this call.
    pub windows_done: u32,
    /// True when the receiver was dropped before the plan was done.
    pub stopped: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_equal_half_open_and_never_empty() {
        let p = WindowPlan::split(0, 10, 3);
        let r: Vec<(i64, i64)> = p.windows.iter().map(|w| (w.gte, w.lt)).collect();
        assert_eq!(r, vec![(0, 3), (3, 6), (6, 10)]);
        assert_eq!(p.next_id, 3);
        assert_eq!(WindowPlan::split(0, 2, 5).windows.len(), 2);
        assert_eq!(WindowPlan::split(0, 2, 0).windows.len(), 1);
        assert!(WindowPlan::split(5, 5, 3).windows.is_empty());
        assert!(WindowPlan::split(5, 5, 3).is_done());
        let wide = WindowPlan::split(i64::MIN, i64::MAX, 4);
        assert_eq!(wide.windows[0].gte, i64::MIN);
        assert_eq!(wide.windows[3].lt, i64::MAX);
        assert!(wide.check().is_ok());
    }

    #[test]
    fn apply_progress_and_check() {
        let mut p = WindowPlan::split(0, 100, 2);
        assert_eq!(p.progress(), 0.0);
        let mut w0 = p.windows[0].clone();
        w0.cursor = Some("ch_9".into());
        w0.gte = 20;
        p.apply(&WindowEvent {
            window: w0,
            spawned: vec![WindowState::new(7, 0, 20)],
        });
        assert_eq!(p.next_id, 8);
        assert_eq!(p.windows.len(), 3);
        assert!(p.check().is_ok());
        let mut w1 = p.windows[1].clone();
        w1.done = true;
        p.apply(&WindowEvent {
            window: w1,
            spawned: vec![],
        });
        assert_eq!(p.progress(), 0.5);
        // Window 0 ([20, 50) after its split) walked down to second 35: 15 of 100 seconds more.
        let mut w0 = p.windows[0].clone();
        w0.reached = Some(35);
        p.apply(&WindowEvent {
            window: w0,
            spawned: vec![],
        });
        assert!((p.progress() - 0.65).abs() < 1e-9, "{}", p.progress());
        assert_eq!(p.pending().count(), 2);
        p.windows.push(WindowState::new(8, 10, 30));
        assert!(p.check().unwrap_err().contains("next_id"));
        p.next_id = 9;
        assert!(p.check().unwrap_err().contains("overlap"));
    }
}
