//! The parallel, adaptively split window fetcher (`source::windows`) and the backfill planner
//! (`source::plan`), against the simulator on loopback.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use stripe_xdm::sim::{ScriptedFault, SimConfig, SimHandle, Simulator, SIM_KEY};
use stripe_xdm::source::plan::{plan_backfill, EstimateBasis};
use stripe_xdm::source::windows::{
    fetch_windows, record_created, FetchSummary, WindowOptions, WindowPlan, WindowState,
    WindowedPage,
};
use stripe_xdm::source::{record_id, ClientConfig, SourceError, StripeClient, Window};
use stripe_xdm::{Resource, Secret};
use tokio::sync::mpsc;

use crate::support::sim;
use crate::support::stub::{Reply, Stub};

const R: Resource = Resource::Charges;

fn opts(concurrency: usize, split_when_pages_left: u32) -> WindowOptions {
    WindowOptions {
        concurrency,
        split_min_secs: 1,
        split_when_pages_left,
    }
}

/// Runs `fetch_windows` from `plan`, receiving at most `stop_after` pages (then dropping the
/// receiver); returns the pages received in channel order and the fetch's result.
async fn fetch(
    client: &StripeClient,
    resource: Resource,
    plan: WindowPlan,
    opts: WindowOptions,
    stop_after: Option<usize>,
) -> (Vec<WindowedPage>, Result<FetchSummary, SourceError>) {
    let (tx, mut rx) = mpsc::channel(1);
    let c = client.clone();
    let task = tokio::spawn(async move { fetch_windows(&c, resource, plan, opts, tx).await });
    let mut pages = Vec::new();
    while stop_after.is_none_or(|k| pages.len() < k) {
        match rx.recv().await {
            Some(p) => pages.push(p),
            None => break,
        }
    }
    drop(rx);
    (pages, task.await.expect("fetch task"))
}

/// Runs `fetch_windows` to the end.
async fn fetch_all(
    client: &StripeClient,
    resource: Resource,
    plan: WindowPlan,
    opts: WindowOptions,
) -> (Vec<WindowedPage>, FetchSummary) {
    let (pages, res) = fetch(client, resource, plan, opts, None).await;
    let summary = res.expect("fetch succeeds");
    assert_eq!(summary.pages, pages.len() as u64);
    assert!(!summary.stopped);
    (pages, summary)
}

/// Applies the pages' events to `plan` in channel order, as a consumer would, checking on the
/// way that every page belongs to a window the plan already knows, was requested with exactly
/// that window's range and cursor, and holds only records inside its range. Returns the ids.
fn consume(plan: &mut WindowPlan, pages: &[WindowedPage]) -> Vec<String> {
    let mut ids = Vec::new();
    for wp in pages {
        let (page, ev) = (&wp.page, &wp.event);
        let known = plan
            .get(ev.window.id)
            .unwrap_or_else(|| panic!("page of window {} before its split event", ev.window.id))
            .clone();
        assert!(!known.done, "page of a done window {}", known.id);
        assert_eq!(
            page.window,
            Window {
                gte: Some(known.gte),
                lt: Some(known.lt)
            }
        );
        assert_eq!(page.starting_after, known.cursor);
        assert_eq!(ev.window.lt, known.lt);
        assert!(ev.window.gte >= known.gte);
        for rec in page.iter() {
            let t = record_created(rec).expect("created");
            assert!((known.gte..known.lt).contains(&t), "{t} outside {known:?}");
            ids.push(record_id(rec).expect("id"));
        }
        if let Some(last) = ids.last().filter(|_| !page.is_empty()) {
            assert_eq!(ev.window.cursor.as_ref(), Some(last));
        }
        assert_eq!(ev.window.done, !page.has_more);
        for s in &ev.spawned {
            assert!(plan.get(s.id).is_none(), "window id {} reused", s.id);
            assert!(s.cursor.is_none() && !s.done);
            assert!(
                s.lt <= ev.window.gte && s.gte >= known.gte,
                "{s:?} vs {known:?}"
            );
        }
        plan.apply(ev);
        plan.check().expect("plan stays consistent");
    }
    ids
}

/// Asserts that a finished plan's windows are done and tile `[gte, lt)` exactly.
fn assert_tiles(plan: &WindowPlan, gte: i64, lt: i64) {
    assert!(plan.is_done());
    assert_eq!(plan.progress(), 1.0);
    let mut ranges: Vec<(i64, i64)> = plan.windows.iter().map(|w| (w.gte, w.lt)).collect();
    ranges.sort();
    assert_eq!(ranges.first().map(|r| r.0), Some(gte));
    assert_eq!(ranges.last().map(|r| r.1), Some(lt));
    assert!(ranges.windows(2).all(|p| p[0].1 == p[1].0), "{ranges:?}");
}

fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

/// The simulator's ids of `[gte, lt)`, sorted.
fn sim_ids(h: &SimHandle, r: Resource, gte: i64, lt: i64) -> Vec<String> {
    sorted(h.simulator().ids(r, Some(gte), Some(lt)))
}

fn assert_exactly(got: Vec<String>, want: &[String]) {
    let n = got.len();
    let unique: HashSet<&String> = got.iter().collect();
    assert_eq!(unique.len(), n, "duplicates");
    assert_eq!(n, want.len(), "count");
    assert_eq!(sorted(got), want);
}

fn range(h: &SimHandle) -> (i64, i64) {
    let c = h.simulator().config();
    (c.start, c.end)
}

#[tokio::test]
async fn window_splitting_with_skewed_data() {
    let (h, client) = sim(SimConfig::default().with_count(R, 6_000).with_skew(4.0)).await;
    let (gte, lt) = range(&h);
    let first_half = h
        .simulator()
        .count(R, Some(gte), Some(gte + (lt - gte) / 2));
    assert!(first_half < 400, "skew packs objects late: {first_half}");
    let plan = WindowPlan::split(gte, lt, 2);
    let (pages, summary) = fetch_all(&client, R, plan.clone(), opts(8, 4)).await;
    assert!(summary.splits > 0, "{summary:?}");
    assert!(summary.windows_spawned >= summary.splits);
    let mut applied = plan;
    let ids = consume(&mut applied, &pages);
    assert_eq!(summary.records, ids.len() as u64);
    assert_exactly(ids, &sim_ids(&h, R, gte, lt));
    // The split windows merge back into the whole range.
    assert_tiles(&applied, gte, lt);
    assert_eq!(
        applied.windows.len() as u32,
        2 + summary.windows_spawned,
        "{applied:?}"
    );
    assert_eq!(summary.windows_done as usize, applied.windows.len());
    h.shutdown().await;
}

#[tokio::test]
async fn same_second_bursts_at_window_edges_are_emitted_once() {
    // 12 bursts of 250 objects, each burst in one second: a second spans 3 pages.
    let cfg = SimConfig::default()
        .with_count(R, 3_000)
        .with_per_second(250)
        .with_window(1_000_000, 1_000_120);
    let (h, client) = sim(cfg).await;
    let (gte, lt) = range(&h);
    let s3 = h.simulator().created(R, 3 * 250);
    let s7 = h.simulator().created(R, 7 * 250 + 100);
    assert_eq!(h.simulator().count(R, Some(s3), Some(s3 + 1)), 250);
    let edges = [gte, s3, s3 + 1, s7, lt];
    let burst_edges = WindowPlan {
        windows: edges
            .windows(2)
            .enumerate()
            .map(|(i, e)| WindowState::new(i as u32, e[0], e[1]))
            .collect(),
        next_id: 4,
    };
    let want = sim_ids(&h, R, gte, lt);
    for plan in [burst_edges, WindowPlan::split(gte, lt, 7)] {
        for (concurrency, pages_left) in [(1, 0), (2, 0), (8, 0), (8, 4)] {
            let (pages, summary) =
                fetch_all(&client, R, plan.clone(), opts(concurrency, pages_left)).await;
            let mut applied = plan.clone();
            assert_exactly(consume(&mut applied, &pages), &want);
            assert_tiles(&applied, gte, lt);
            if concurrency == 8 && pages_left == 0 {
                assert!(summary.splits > 0, "{summary:?}");
            }
        }
    }
    h.shutdown().await;
}

#[tokio::test]
async fn consecutive_dense_seconds_split_down_to_single_seconds() {
    // A 250-object burst in every second: splits cut right next to the partly read second.
    let cfg = SimConfig::default()
        .with_count(R, 3_000)
        .with_per_second(250)
        .with_window(2_000_000, 2_000_012);
    let (h, client) = sim(cfg).await;
    let (gte, lt) = range(&h);
    assert!((gte..lt).all(|t| h.simulator().count(R, Some(t), Some(t + 1)) == 250));
    let want = sim_ids(&h, R, gte, lt);
    for (n, concurrency) in [(1, 3), (1, 8), (2, 8), (5, 12)] {
        let plan = WindowPlan::split(gte, lt, n);
        let (pages, summary) = fetch_all(&client, R, plan.clone(), opts(concurrency, 0)).await;
        assert!(summary.splits > 0, "{summary:?}");
        let mut applied = plan;
        assert_exactly(consume(&mut applied, &pages), &want);
        assert_tiles(&applied, gte, lt);
        if concurrency >= 8 {
            assert!(
                applied.windows.iter().any(|w| w.width() == 1),
                "{applied:?}"
            );
        }
    }
    h.shutdown().await;
}

#[tokio::test]
async fn emitted_ids_do_not_depend_on_concurrency() {
    let (h, client) = sim(SimConfig::default().with_counts(2_500)).await;
    let (gte, lt) = range(&h);
    for r in [Resource::Charges, Resource::Subscriptions] {
        let want = sim_ids(&h, r, gte, lt);
        for concurrency in [1, 2, 8] {
            let plan = WindowPlan::split(gte, lt, 3);
            let (pages, summary) = fetch_all(&client, r, plan.clone(), opts(concurrency, 2)).await;
            let mut applied = plan;
            assert_exactly(consume(&mut applied, &pages), &want);
            assert_tiles(&applied, gte, lt);
            if concurrency == 1 {
                assert_eq!(summary.splits, 0, "no idle slot to split into");
            }
        }
    }
    h.shutdown().await;
}

#[tokio::test]
async fn resuming_from_the_applied_plan_yields_exactly_the_rest() {
    let cfg = SimConfig::default()
        .with_count(R, 3_000)
        .with_per_second(5)
        .with_skew(3.0);
    let (h, client) = sim(cfg).await;
    let (gte, lt) = range(&h);
    let want = sim_ids(&h, R, gte, lt);
    let initial = WindowPlan::split(gte, lt, 2);
    for k in [0, 1, 2, 3, 5, 8, 13, 21] {
        let mut plan = initial.clone();
        let (prefix, res) = fetch(&client, R, plan.clone(), opts(4, 2), Some(k)).await;
        let summary = res.expect("a dropped receiver stops the fetch quietly");
        assert_eq!(prefix.len(), k);
        let mut ids = consume(&mut plan, &prefix);
        assert!(summary.stopped || plan.is_done(), "{summary:?}");
        let done_before: HashSet<u32> = plan
            .windows
            .iter()
            .filter(|w| w.done)
            .map(|w| w.id)
            .collect();
        // Restarted from the checkpointed plan.
        let (rest, _) = fetch_all(&client, R, plan.clone(), opts(4, 2)).await;
        assert!(rest
            .iter()
            .all(|p| !done_before.contains(&p.event.window.id)));
        ids.extend(consume(&mut plan, &rest));
        assert_exactly(ids, &want);
        assert_tiles(&plan, gte, lt);
    }
    // Interrupted again and again: three pages per run until done.
    let mut plan = initial;
    let mut ids = Vec::new();
    let mut runs = 0;
    while !plan.is_done() {
        let (pages, res) = fetch(&client, R, plan.clone(), opts(3, 1), Some(3)).await;
        res.expect("quiet stop");
        ids.extend(consume(&mut plan, &pages));
        runs += 1;
        assert!(runs < 200, "no progress");
    }
    assert!(runs > 5);
    assert_exactly(ids, &want);
    h.shutdown().await;
}

#[tokio::test]
async fn window_plan_serde_round_trip() {
    let (h, client) = sim(SimConfig::default().with_count(R, 2_000).with_skew(2.0)).await;
    let (gte, lt) = range(&h);
    let mut plan = WindowPlan::split(gte, lt, 2);
    let (pages, _) = fetch(&client, R, plan.clone(), opts(4, 1), Some(6)).await;
    consume(&mut plan, &pages);
    assert!(plan.windows.iter().any(|w| w.cursor.is_some()));
    let json = serde_json::to_string(&plan).unwrap();
    let back: WindowPlan = serde_json::from_str(&json).unwrap();
    assert_eq!(back, plan);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(v["next_id"].is_u64());
    let w = &v["windows"][0];
    for key in ["id", "gte", "lt", "cursor", "done"] {
        assert!(w.get(key).is_some(), "{key} missing in {w}");
    }
    let ev = serde_json::to_string(&pages[0].event).unwrap();
    assert_eq!(
        serde_json::from_str::<stripe_xdm::source::WindowEvent>(&ev).unwrap(),
        pages[0].event
    );
    h.shutdown().await;
}

#[tokio::test]
async fn plan_backfill_estimates_uniform_data_closely() {
    let (h, client) = sim(SimConfig::default().with_count(R, 20_000)).await;
    let (gte, lt) = range(&h);
    let before = client.stats().requests;
    let est = plan_backfill(&client, R, gte, lt, 8).await.unwrap();
    assert_eq!(client.stats().requests - before, 8, "one sample per window");
    assert_eq!(est.sample_requests, 8);
    assert!(!est.exact);
    let err = (est.objects as f64 - 20_000.0).abs() / 20_000.0;
    assert!(err < 0.08, "estimated {} of 20000", est.objects);
    for w in &est.windows {
        assert_eq!(w.basis, EstimateBasis::Density);
        let truth = h.simulator().count(R, Some(w.gte), Some(w.lt)) as f64;
        assert!(
            (w.objects as f64 - truth).abs() / truth < 0.15,
            "{w:?} vs {truth}"
        );
    }
    let by_window: u64 = est.windows.iter().map(|w| w.objects.div_ceil(100)).sum();
    assert_eq!(est.requests, by_window);
    assert!(est.requests.abs_diff(200) <= 16 + 8, "{}", est.requests);
    let rate = client.config().effective_requests_per_sec();
    assert!((est.secs - est.requests as f64 / rate).abs() < 1e-9);
    assert_eq!(est.plan(), WindowPlan::split(gte, lt, 8));
    let shown = est.to_string();
    assert!(
        shown.starts_with("charges created [2025-01-01 00:00:00, 2026-01-01 00:00:00)"),
        "{shown}"
    );
    assert_eq!(shown.lines().count(), 10, "{shown}");

    // Small windows are counted exactly; an empty range costs nothing.
    let exact = plan_backfill(&client, R, gte, gte + 86_400, 4)
        .await
        .unwrap();
    assert!(exact.exact);
    assert_eq!(
        exact.objects,
        h.simulator().count(R, Some(gte), Some(gte + 86_400))
    );
    let before = client.stats().requests;
    let empty = plan_backfill(&client, R, lt, lt, 4).await.unwrap();
    assert_eq!(
        (empty.objects, empty.requests, empty.windows.len()),
        (0, 0, 0)
    );
    assert_eq!(client.stats().requests, before);
    h.shutdown().await;
}

#[test]
fn record_created_reads_the_simulators_objects() {
    let sim = Simulator::new(SimConfig::default().with_counts(300));
    for r in Resource::ALL {
        for i in (0..sim.len(r)).step_by(7) {
            let json = sim.object_json(r, i);
            assert_eq!(
                record_created(json.as_bytes()),
                Some(sim.created(r, i)),
                "{r:?} {i}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_windows_stay_within_the_clients_rate_budget() {
    let h = Simulator::new(SimConfig::default().with_count(R, 20_000))
        .start()
        .await
        .unwrap();
    let (rate, burst) = (50.0, 3);
    let mut cfg = ClientConfig::new(h.base_url(), Secret::new(SIM_KEY));
    cfg.requests_per_sec = Some(rate);
    cfg.endpoint_requests_per_sec = Some(10_000.0);
    cfg.burst = burst;
    cfg.page_limit = 10;
    let client = StripeClient::new(cfg).unwrap();
    let (gte, lt) = range(&h);
    let (tx, mut rx) = mpsc::channel(4);
    let started = Instant::now();
    let c = client.clone();
    let task = tokio::spawn(async move {
        let r = fetch_windows(&c, R, WindowPlan::split(gte, lt, 8), opts(8, 4), tx).await;
        (r, Instant::now())
    });
    let mut windows_seen = HashSet::new();
    while started.elapsed() < Duration::from_millis(1_200) {
        match tokio::time::timeout(Duration::from_millis(50), rx.recv()).await {
            Ok(Some(p)) => {
                windows_seen.insert(p.event.window.id);
            }
            Ok(None) => panic!("the fetch should outlast the measurement"),
            Err(_) => {}
        }
    }
    drop(rx);
    let (res, ended) = task.await.unwrap();
    assert!(res.unwrap().stopped);
    let secs = (ended - started).as_secs_f64();
    let requests = client.stats().requests as f64;
    let ceiling = rate * secs * 1.1 + f64::from(burst);
    assert!(requests <= ceiling, "{requests} requests in {secs:.2} s");
    assert!(
        requests >= 0.5 * rate * 1.2,
        "{requests} requests in {secs:.2} s: budget unused"
    );
    assert!(h.stats().peak_rps as f64 <= rate * 1.1 + f64::from(burst));
    assert_eq!(windows_seen.len(), 8, "all windows walked at once");
    h.shutdown().await;
}

#[tokio::test]
async fn an_error_in_one_window_aborts_the_fetch() {
    let (h, client) = sim(SimConfig::default().with_count(R, 3_000)).await;
    let (gte, lt) = range(&h);
    let (tx, mut rx) = mpsc::channel(1);
    let c = client.clone();
    let task = tokio::spawn(async move {
        fetch_windows(&c, R, WindowPlan::split(gte, lt, 4), opts(4, 4), tx).await
    });
    for _ in 0..3 {
        rx.recv().await.expect("a page");
    }
    h.inject(ScriptedFault::status(400));
    while rx.recv().await.is_some() {}
    let err = task.await.unwrap().expect_err("the 400 aborts the fetch");
    assert_eq!(err.status(), Some(400), "{err}");
    h.shutdown().await;
}

#[tokio::test]
async fn a_cursor_loop_in_a_window_is_a_stuck_cursor() {
    let stub = Stub::with_handler(|r| {
        let (ids, more): (&[&str], bool) = match r.param("starting_after") {
            None => (&["ch_a", "ch_b"], true),
            Some("ch_b") => (&["ch_c", "ch_a"], true),
            Some(_) => (&["ch_b"], true),
        };
        let data: Vec<serde_json::Value> = ids
            .iter()
            .map(|id| serde_json::json!({"id": id, "object": "charge", "created": 50}))
            .collect();
        Reply::json(
            200,
            serde_json::json!({"object": "list", "data": data, "has_more": more}).to_string(),
        )
        .into()
    })
    .await;
    let client = crate::source::client(&stub);
    let (_, res) = fetch(
        &client,
        R,
        WindowPlan::split(0, 100, 1),
        opts(2, 1000),
        None,
    )
    .await;
    match res {
        Err(SourceError::StuckCursor { cursor, reason, .. }) => {
            assert_eq!(cursor.as_deref(), Some("ch_b"));
            assert!(reason.contains("already visited"), "{reason}");
        }
        other => panic!("expected a stuck cursor, got {other:?}"),
    }
}

#[tokio::test]
async fn a_deleted_cursor_object_is_walked_around_by_time_without_loss_or_duplicates() {
    // Every customer is deleted right after a list returns it, so every page's cursor is gone
    // when the next page is requested: each window goes on by time from the second it reached,
    // leaving out the ids it already emitted there. With 250 objects a second, those seconds
    // span several pages.
    let c = Resource::Customers;
    for (per_second, window) in [(3, None), (250, Some((4_000_000, 4_000_010)))] {
        for concurrency in [1, 3] {
            let mut cfg = SimConfig::default()
                .with_count(c, 2_000)
                .with_per_second(per_second)
                .with_deleted_after_listing(c);
            if let Some((a, b)) = window {
                cfg = cfg.with_window(a, b);
            }
            let (h, client) = sim(cfg).await;
            let (gte, lt) = range(&h);
            let want = sim_ids(&h, c, gte, lt);
            assert_eq!(want.len(), 2_000);
            let plan = WindowPlan::split(gte, lt, 2);
            let (pages, res) = fetch(&client, c, plan.clone(), opts(concurrency, 2), None).await;
            let summary = res.unwrap_or_else(|e| panic!("{per_second}/s, {concurrency}: {e}"));
            let mut applied = plan;
            let mut ids = Vec::new();
            for wp in &pages {
                ids.extend(wp.page.iter().map(|r| record_id(r).expect("id")));
                applied.apply(&wp.event);
                applied.check().expect("plan stays consistent");
            }
            assert!(applied.is_done());
            assert_eq!(summary.records, ids.len() as u64);
            assert_exactly(ids, &want);
            let stats = client.stats();
            assert!(
                stats.requests >= stats.pages + summary.pages / 2,
                "a failed request per deleted cursor: {stats:?}, {summary:?}"
            );
            h.shutdown().await;
        }
    }
}

#[tokio::test]
async fn without_the_reached_second_a_deleted_cursor_is_an_error_naming_it() {
    let c = Resource::Customers;
    let (h, client) = sim(SimConfig::default()
        .with_count(c, 300)
        .with_deleted_after_listing(c))
    .await;
    let (gte, lt) = range(&h);
    // A window state from an older checkpoint: a cursor, but no reached second or edge ids.
    let first = h.simulator().ids(c, Some(gte), Some(lt))[0].clone();
    let (_, _) = fetch(
        &client,
        c,
        WindowPlan::split(gte, lt, 1),
        opts(1, 0),
        Some(1),
    )
    .await;
    let mut w = WindowState::new(0, gte, lt);
    w.cursor = Some(first.clone());
    let plan = WindowPlan {
        windows: vec![w],
        next_id: 1,
    };
    let (_, res) = fetch(&client, c, plan, opts(1, 0), None).await;
    let err = res.unwrap_err().to_string();
    assert!(
        err.contains("resource_missing") && err.contains(&first),
        "{err}"
    );
    h.shutdown().await;
}
