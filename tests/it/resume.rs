//! Checkpoints and resume: a run stopped (cancelled, or its task killed mid-write) at several
//! points and resumed commits exactly what an uninterrupted run commits; the concurrency level
//! does not change the committed output.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use stripe_xdm::inspect::batch_ids;
use stripe_xdm::pipeline::{
    self, MemoryCheckpoints, PipelineError, Progress, ProgressSink, RunConfig, RunReport,
};
use stripe_xdm::sim::{Faults, SimConfig};
use stripe_xdm::sink::BatchStatus;
use stripe_xdm::source::Window;
use stripe_xdm::Resource;
use tokio::sync::watch;

use crate::support::sim;

const COUNT: u64 = 6_000;

/// `_id`s of a committed batch, with the number of rows (duplicates show as rows > ids).
fn committed_ids(report: &RunReport) -> (BTreeSet<String>, usize) {
    let ids = batch_ids(&report.batch_dir).expect("batch reads");
    let accepted = ids.accepted.len();
    (ids.accepted.into_iter().collect(), accepted)
}

fn rejected_rows(report: &RunReport) -> usize {
    batch_ids(&report.batch_dir).unwrap().rejected.len()
}

fn config(out: &Path, concurrency: usize, batch: &str) -> RunConfig {
    let mut cfg = RunConfig::builtin(Resource::Charges, "acme", out.to_path_buf()).unwrap();
    cfg.chunk_records = 500;
    cfg.batch_id = Some(batch.to_string());
    cfg.window = Window {
        gte: Some(1_735_689_600),
        lt: Some(1_767_225_600),
    };
    cfg.control.concurrency = concurrency;
    cfg.control.checkpoint_every = Duration::ZERO;
    cfg
}

fn sim_config() -> SimConfig {
    SimConfig::default()
        .with_count(Resource::Charges, COUNT)
        .with_per_second(40)
        .with_faults(Faults {
            corrupt_rate: 0.01,
            ..Faults::default()
        })
}

/// Asks for cancellation once `after` records went by.
struct CancelAfter {
    after: u64,
    tx: watch::Sender<bool>,
    fired: AtomicBool,
}

impl ProgressSink for CancelAfter {
    fn update(&self, p: &Progress) {
        if p.counts.fetched >= self.after && !self.fired.swap(true, Ordering::SeqCst) {
            let _ = self.tx.send(true);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_runs_resume_to_the_uninterrupted_batch() {
    let (handle, client) = sim(sim_config()).await;
    let dir = tempfile::tempdir().unwrap();
    let reference = pipeline::run(&client, config(&dir.path().join("ref"), 1, "reference"))
        .await
        .unwrap();
    let (ref_ids, ref_rows) = committed_ids(&reference);
    assert_eq!(ref_rows, ref_ids.len(), "no duplicates in the reference");
    assert_eq!(reference.counts.fetched, COUNT);
    assert_eq!(
        reference.counts.fetched,
        reference.counts.ingested + reference.counts.rejected,
        "accounting"
    );
    let expected: BTreeSet<String> = handle
        .simulator()
        .ids(Resource::Charges, Some(1_735_689_600), Some(1_767_225_600))
        .into_iter()
        .collect();
    assert_eq!(
        ref_ids.len() as u64 + reference.counts.rejected,
        expected.len() as u64
    );

    for (trial, stop_after) in [500u64, 2_000, 4_500].into_iter().enumerate() {
        let out = dir.path().join(format!("trial-{trial}"));
        let store = Arc::new(MemoryCheckpoints::default());
        // First attempt: cancelled part-way; nothing committed, the checkpoint stays.
        let (tx, rx) = watch::channel(false);
        let mut cfg = config(&out, 4, "b1");
        cfg.control.checkpoints = Some(store.clone());
        cfg.control.cancel = Some(rx);
        cfg.control.progress = Some(Arc::new(CancelAfter {
            after: stop_after,
            tx,
            fired: AtomicBool::new(false),
        }));
        match pipeline::run(&client, cfg).await {
            Err(PipelineError::Cancelled) => {}
            other => panic!("trial {trial}: expected a cancelled run, got {other:?}"),
        }
        assert!(store.saves() > 0, "trial {trial}: checkpoints were saved");
        assert!(
            !out.join("charges/batches/b1").exists(),
            "nothing committed"
        );
        // Resume: same batch id and store, another concurrency level.
        let mut cfg = config(&out, 2, "b1");
        cfg.control.checkpoints = Some(store.clone());
        let resumed = pipeline::run(&client, cfg).await.unwrap();
        let (ids, rows) = committed_ids(&resumed);
        assert_eq!(rows, ids.len(), "trial {trial}: no duplicate rows");
        assert_eq!(
            ids, ref_ids,
            "trial {trial}: same ids as the uninterrupted run"
        );
        assert_eq!(
            resumed.counts.fetched, reference.counts.fetched,
            "trial {trial}"
        );
        assert_eq!(
            resumed.counts.ingested, reference.counts.ingested,
            "trial {trial}"
        );
        assert_eq!(
            resumed.counts.rejected, reference.counts.rejected,
            "trial {trial}"
        );
        assert_eq!(
            rejected_rows(&resumed) as u64,
            reference.counts.rejected,
            "trial {trial}"
        );
        assert_eq!(resumed.status, BatchStatus::Success);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_run_resumes_past_files_written_after_its_checkpoint() {
    let (_handle, client) = sim(sim_config()).await;
    let dir = tempfile::tempdir().unwrap();
    let reference = pipeline::run(&client, config(&dir.path().join("ref"), 1, "reference"))
        .await
        .unwrap();
    let (ref_ids, _) = committed_ids(&reference);
    for (trial, kill_after) in [700u64, 3_100].into_iter().enumerate() {
        let out = dir.path().join(format!("kill-{trial}"));
        let store = Arc::new(MemoryCheckpoints::default());
        // The task is aborted (like a kill -9 of the async side) once records went by; its
        // writer thread may have written past the last checkpoint.
        let (tx, mut rx) = watch::channel(false);
        let mut cfg = config(&out, 3, "b1");
        cfg.control.checkpoints = Some(store.clone());
        cfg.control.progress = Some(Arc::new(CancelAfter {
            after: kill_after,
            tx,
            fired: AtomicBool::new(false),
        }));
        let c2 = client.clone();
        let task = tokio::spawn(async move { pipeline::run(&c2, cfg).await });
        let _ = rx.wait_for(|v| *v).await;
        task.abort();
        let _ = task.await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut cfg = config(&out, 1, "b1");
        cfg.control.checkpoints = Some(store.clone());
        let resumed = pipeline::run(&client, cfg).await.unwrap();
        let (ids, rows) = committed_ids(&resumed);
        assert_eq!(rows, ids.len(), "kill {trial}: no duplicate rows");
        assert_eq!(ids, ref_ids, "kill {trial}: same ids");
        assert_eq!(resumed.counts.fetched, reference.counts.fetched);
        assert_eq!(resumed.counts.rejected, reference.counts.rejected);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_levels_commit_the_same_records() {
    let (_handle, client) = sim(sim_config().with_skew(3.0)).await;
    let dir = tempfile::tempdir().unwrap();
    let mut sets = Vec::new();
    for c in [1usize, 2, 8] {
        let report = pipeline::run(&client, config(&dir.path().join(c.to_string()), c, "b"))
            .await
            .unwrap();
        let (ids, rows) = committed_ids(&report);
        assert_eq!(rows, ids.len(), "concurrency {c}: no duplicates");
        assert_eq!(
            report.counts.fetched, COUNT,
            "concurrency {c}: every object"
        );
        sets.push((ids, report.counts.ingested, report.counts.rejected));
    }
    assert_eq!(sets[0], sets[1]);
    assert_eq!(sets[0], sets[2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_committed_before_a_crash_is_not_redone() {
    let (_handle, client) = sim(sim_config()).await;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(MemoryCheckpoints::default());
    let mut cfg = config(dir.path(), 2, "b1");
    cfg.control.checkpoints = Some(store.clone());
    let first = pipeline::run(&client, cfg.clone()).await.unwrap();
    let requests = client.stats().requests;
    // The catalog never heard of the commit (crash right after the rename): running again
    // finds the committed batch and reports it without fetching anything.
    let again = pipeline::run(&client, cfg).await.unwrap();
    assert_eq!(client.stats().requests, requests, "nothing fetched again");
    assert_eq!(again.batch_dir, first.batch_dir);
    assert_eq!(again.counts.fetched, first.counts.fetched);
    assert_eq!(again.counts.ingested, first.counts.ingested);
    assert_eq!(again.counts.rejected, first.counts.rejected);
}

/// Blocks the pipeline once, after the first chunk, and records what it had processed then.
struct Stall {
    pages_at_stall: std::sync::Mutex<Option<u64>>,
}

impl ProgressSink for Stall {
    fn update(&self, p: &Progress) {
        let mut first = self.pages_at_stall.lock().unwrap();
        if first.is_none() {
            *first = Some(p.counts.pages);
            drop(first);
            std::thread::sleep(Duration::from_millis(700));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_engine_stops_the_fetch_at_the_channel_bound() {
    let (handle, client) = sim(sim_config()).await;
    let dir = tempfile::tempdir().unwrap();
    let stall = Arc::new(Stall {
        pages_at_stall: Default::default(),
    });
    let mut cfg = config(dir.path(), 4, "b");
    cfg.control.progress = Some(stall.clone());
    let c2 = client.clone();
    let run = tokio::spawn(async move { pipeline::run(&c2, cfg).await });
    // While the engine is stalled, the fetcher may only fill the page channel (plus one page
    // held and one request in flight per window); it must not read the whole backfill ahead.
    let pages_at_stall = loop {
        tokio::time::sleep(Duration::from_millis(10)).await;
        if let Some(p) = *stall.pages_at_stall.lock().unwrap() {
            break p;
        }
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let requested = handle.stats().requests;
    let bound = pages_at_stall + pipeline::PAGE_CHANNEL as u64 + 2 * 4;
    assert!(
        requested <= bound,
        "{requested} requests while stalled after {pages_at_stall} pages (bound {bound})"
    );
    assert!(
        requested < COUNT / 100,
        "the fetch did not run ahead to the end"
    );
    let report = run.await.unwrap().unwrap();
    assert_eq!(report.counts.fetched, COUNT);
}

/// Injects a burst of faults into the simulator once the run is under way.
struct MidWalkFaults {
    sim: Arc<stripe_xdm::sim::SimHandle>,
    after: u64,
    fired: AtomicBool,
}

impl ProgressSink for MidWalkFaults {
    fn update(&self, p: &Progress) {
        use stripe_xdm::sim::ScriptedFault;
        if p.counts.fetched >= self.after && !self.fired.swap(true, Ordering::SeqCst) {
            // A 429 burst without Retry-After, then 5xx and a dropped connection.
            self.sim.inject(ScriptedFault::rate_limit(None).times(6));
            self.sim
                .inject(ScriptedFault::server_error(503, None).times(2));
            self.sim
                .inject(ScriptedFault::server_error(500, Some(true)));
            self.sim.inject(ScriptedFault::disconnect());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_burst_and_5xx_in_the_middle_of_deep_cursor_walks_lose_nothing() {
    let (handle, client) = sim(sim_config()).await;
    let handle = Arc::new(handle);
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), 3, "b");
    cfg.control.progress = Some(Arc::new(MidWalkFaults {
        sim: handle.clone(),
        after: 1_000,
        fired: AtomicBool::new(false),
    }));
    let report = pipeline::run(&client, cfg).await.unwrap();
    let (ids, rows) = committed_ids(&report);
    assert_eq!(rows, ids.len(), "no duplicates");
    assert_eq!(report.counts.fetched, COUNT, "every object");
    assert_eq!(
        report.counts.fetched,
        report.counts.ingested + report.counts.rejected
    );
    assert!(report.throttled >= 6, "the burst was seen: {report:?}");
    assert!(report.retries >= 10, "every fault was retried: {report:?}");
    let stats = handle.stats();
    assert!(
        stats.injected_429 >= 6 && stats.injected_5xx >= 3,
        "{stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_fetch_is_checkpointed_before_a_chunk_fills() {
    use stripe_xdm::sim::SIM_KEY;
    use stripe_xdm::source::{ClientConfig, StripeClient};
    const RECORDS: u64 = 2_000;
    let (handle, fast) = sim(SimConfig::default().with_count(Resource::Charges, RECORDS)).await;
    // Five requests a second: the run's 20 pages take four seconds, far from a chunk of 8,192.
    let mut slow = ClientConfig::new(handle.base_url(), stripe_xdm::Secret::new(SIM_KEY));
    slow.requests_per_sec = Some(5.0);
    slow.endpoint_requests_per_sec = Some(5.0);
    let slow = StripeClient::new(slow).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(MemoryCheckpoints::default());
    let config = |cancel| {
        let mut cfg =
            RunConfig::builtin(Resource::Charges, "acme", dir.path().to_path_buf()).unwrap();
        cfg.batch_id = Some("slow".into());
        cfg.control.concurrency = 1;
        cfg.control.checkpoint_every = Duration::from_secs(1);
        cfg.control.checkpoints = Some(store.clone());
        cfg.control.cancel = cancel;
        cfg
    };
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(2_500)).await;
        let _ = tx.send(true);
    });
    match pipeline::run(&slow, config(Some(rx))).await {
        Err(PipelineError::Cancelled) => {}
        other => panic!("expected a cancelled run, got {other:?}"),
    }
    assert!(store.saves() > 0, "a checkpoint within the first seconds");
    // The resumed run reads only the pages after the checkpoint, and loses nothing.
    let resumed = pipeline::run(&fast, config(None)).await.unwrap();
    assert_eq!(resumed.counts.fetched, RECORDS);
    assert_eq!(
        resumed.counts.fetched,
        resumed.counts.ingested + resumed.counts.rejected
    );
    assert!(resumed.requests < 20, "{} requests", resumed.requests);
    let (ids, rows) = committed_ids(&resumed);
    assert_eq!((ids.len(), rows), (RECORDS as usize, RECORDS as usize));
}
