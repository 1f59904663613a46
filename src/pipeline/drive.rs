//! A run's fetch: windowed fetch → chunks → decode → map → validate → the mirror and the batch,
//! with checkpoints.
//!
//! ```text
//! fetch_windows (async, N windows) ──page+event──▶ chunker (async) ──Processed──▶ stage thread
//!        bounded channel (16 pages)          decode on rayon,       rendezvous (no queue)
//!                                            map in DataFusion,     mirror file ∥ batch files,
//!                                            validate               rejects; commit + checkpoint
//! ```
//!
//! Each chunk goes both ways at once: its decoded records (with `_raw`) to the mirror, its
//! mapped and validated rows to the Platform batch; the stage thread writes the two at the same
//! time (the batch on a scoped thread), so one file's slowest column (`_raw` in the mirror's)
//! does not leave a core idle. A checkpoint is taken by the stage thread
//! *after* it has written every chunk before it: it commits the staged records to the mirror
//! (one Delta transaction carrying the run's `txn` sequence number), seals the rejected rows,
//! then saves the window plan as of the last page of those chunks and the totals. The batch's
//! accepted files are not part of a checkpoint: a resume cuts the checkpointed records' rows
//! again from the mirror ([`super::resume`]), so the files grow toward Platform's preferred
//! size whatever the checkpoint interval. Whatever was fetched after the last checkpoint is
//! fetched again by a resume; mirror files written but not committed are invisible to Delta
//! readers.

use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::chunk::{process_pages, Processed};
use super::{primary_code, PipelineError, Progress, RunConfig};
use crate::map::Mapper;
use crate::metrics::RecordCounts;
use crate::sink::{BatchWriter, Rejection, StagedState};
use crate::source::windows::{fetch_windows, WindowEvent, WindowOptions, WindowPlan, WindowedPage};
use crate::source::{Page, StripeClient, Window};
use crate::stage::{self, Mirror, StageWriter};

/// Pages buffered between the fetcher and the chunker.
pub const PAGE_CHANNEL: usize = 16;
/// Processed chunks buffered before the writer thread: none. A processed chunk is handed over
/// when the writer has written the one before, so at most two chunks are in memory (one being
/// processed, one being written): a queued chunk (~36 MiB with `_raw`) bought no speed on two
/// cores (BENCHMARKS.md §2d, §2e).
pub const CHUNK_CHANNEL: usize = 0;
/// The lower bound used for an open `created[gte]`: 2010-01-01, before Stripe's first charge.
/// Anything older (there is nothing) is still covered by one window `[0, EARLIEST_CREATED)`.
pub const EARLIEST_CREATED: i64 = 1_262_304_000;

/// Running totals of a run (persisted in checkpoints): its [`RecordCounts`] and what a resume
/// needs besides.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Totals {
    /// The counts (flattened: a checkpoint's `totals` holds them at its top level).
    #[serde(flatten)]
    pub counts: RecordCounts,
    /// Records dropped as already committed by the previous run (re-read span).
    #[serde(default)]
    pub skipped: u64,
    /// `(id, created)` of objects in the next run's re-read span.
    #[serde(default)]
    pub trailing: Vec<(String, i64)>,
    /// The deletions, for the batch's `deletes.parquet`.
    #[serde(default)]
    pub deletes: Vec<super::changes::Tombstone>,
    /// Whether the run's changes were read and staged (a resume does not read them again).
    #[serde(default)]
    pub changes_read: bool,
    /// Objects with events that the run's list reads (not dropped as known).
    #[serde(default)]
    pub listed_changed: Vec<String>,
}

impl Totals {
    pub(super) fn add(&mut self, other: &Totals) {
        self.counts.add(&other.counts);
        self.skipped += other.skipped;
        self.trailing.extend(other.trailing.iter().cloned());
        self.deletes.extend(other.deletes.iter().cloned());
        self.changes_read |= other.changes_read;
        self.listed_changed
            .extend(other.listed_changed.iter().cloned());
    }

    /// Adds a chunk's rejected rows under their codes.
    pub fn count_rejected(&mut self, rejected: &[Rejection]) {
        for r in rejected {
            self.counts.reject(&primary_code(r), 1);
        }
    }
}

/// What a checkpoint stores: enough to reopen the staging area and the fetch where they were.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct CheckpointState {
    /// Format version of this JSON.
    pub version: u32,
    /// The batch being staged.
    pub batch_id: String,
    /// The run's `created` window, to refuse a checkpoint of another window.
    pub window: (Option<i64>, Option<i64>),
    /// The windows as of the last checkpointed page.
    pub plan: WindowPlan,
    /// Sealed rejected rows (accepted files are cut again from the mirror on resume).
    pub staged: StagedState,
    /// Totals of the checkpointed pages.
    pub totals: Totals,
    /// The mirror commit of this checkpoint: the run's `txn` version in the Delta log.
    pub seq: i64,
    /// True when the run MERGEs into the mirror (it may meet objects already there).
    pub merge: bool,
    /// The mapping's fingerprint ([`mapping_fingerprint`]): a resume with another mapping
    /// starts over, so the batch's rows all come from one mapping.
    pub mapping: u64,
}

/// The version of [`CheckpointState`] written here.
pub(crate) const CHECKPOINT_VERSION: u32 = 4;

/// A stable fingerprint of a mapping's SQL (64-bit FNV-1a).
pub(crate) fn mapping_fingerprint(sql: &str) -> u64 {
    crate::fingerprint(sql.bytes())
}

/// The first plan of a run's window: `n` equal windows over `[gte, lt)`; an open `gte` starts
/// at [`EARLIEST_CREATED`] with one extra window below it, an open `lt` ends at `now + 1`.
pub(crate) fn initial_plan(window: Window, n: usize, now: i64) -> WindowPlan {
    let lt = window.lt.unwrap_or(now + 1);
    match window.gte {
        Some(gte) => WindowPlan::split(gte, lt, n),
        None if lt <= EARLIEST_CREATED => WindowPlan::split(0, lt, 1),
        None => {
            let mut plan = WindowPlan::split(EARLIEST_CREATED, lt, n);
            let id = plan.next_id;
            plan.windows.push(crate::source::windows::WindowState::new(
                id,
                0,
                EARLIEST_CREATED,
            ));
            plan.next_id += 1;
            plan
        }
    }
}

enum ToWriter {
    Chunk(Box<Processed>),
    /// Seal and checkpoint now (before a cancelled run lets go, or once changes are staged).
    Checkpoint,
    /// Checkpoint now and say so when the commit is done.
    Barrier(tokio::sync::oneshot::Sender<()>),
}

/// What the stage thread hands back.
pub(crate) struct Written {
    pub writer: BatchWriter,
    pub mirror: Mirror,
    pub checkpoints: u64,
}

/// Where the fetch starts: the window plan and totals, the mirror and how the run writes to it,
/// and the last committed sequence number.
pub(crate) struct Start {
    pub plan: WindowPlan,
    pub totals: Totals,
    pub mirror: Mirror,
    pub stage: StageWriter,
    pub seq: i64,
    /// Changes to stage before the list is walked (`None`: none, or already staged).
    pub changes: Option<crate::source::ChangeSet>,
}

/// Runs fetch → decode → stage from `start` to the end of the run's window.
pub(crate) async fn drive(
    client: &StripeClient,
    cfg: &RunConfig,
    mapper: &Mapper,
    writer: BatchWriter,
    start: Start,
) -> Result<(Written, Totals), PipelineError> {
    let Start {
        plan,
        totals: base_totals,
        mirror,
        stage,
        seq,
        changes,
    } = start;
    let started = Instant::now();
    let (page_tx, mut page_rx) = mpsc::channel::<WindowedPage>(PAGE_CHANNEL);
    let fetcher = {
        let client = client.clone();
        let resource = cfg.resource;
        let opts = WindowOptions {
            concurrency: cfg.control.windows_at_once(),
            ..WindowOptions::default()
        };
        let plan = plan.clone();
        tokio::spawn(async move { fetch_windows(&client, resource, plan, opts, page_tx).await })
    };

    let writer_thread = {
        let store = cfg.control.checkpoints.clone();
        let every = cfg.control.checkpoint_every;
        let header = CheckpointState {
            version: CHECKPOINT_VERSION,
            batch_id: writer.batch_id().to_string(),
            window: (cfg.window.gte, cfg.window.lt),
            plan: plan.clone(),
            staged: StagedState::default(),
            totals: base_totals.clone(),
            seq,
            merge: stage.mode() == stage::WriteMode::Merge,
            mapping: mapping_fingerprint(&cfg.mapping.sql),
        };
        let (out_tx, out_rx) = std_mpsc::sync_channel::<ToWriter>(CHUNK_CHANNEL);
        let stager = Stager {
            writer,
            mirror,
            stage,
            rt: tokio::runtime::Handle::current(),
        };
        let handle = std::thread::spawn(move || write_loop(stager, out_rx, store, every, header));
        (out_tx, handle)
    };
    let (out_tx, writer_handle) = writer_thread;

    let mut totals = base_totals;
    let mut progress_plan = plan;
    let before = client.stats();
    let mut pending: Vec<Page> = Vec::new();
    let mut events: Vec<WindowEvent> = Vec::new();
    let mut pending_records = 0usize;
    // A chunk is cut at `chunk_records`, or when its first page has waited a checkpoint
    // interval (at least a second): at a low request rate a chunk of 8,192 records takes
    // minutes to fill, and nothing is checkpointed (or shown) before it is processed.
    let flush_after = cfg.control.checkpoint_every.max(Duration::from_secs(1));
    let mut pending_since: Option<Instant> = None;
    let mut cancel = cfg.control.cancel.clone();
    let mut failure: Option<PipelineError> = None;
    if let Some(set) = changes {
        // Changed objects first, as their own checkpoint: a resume does not read them again.
        match super::changes::chunks(cfg, client, mapper, set).await {
            Ok(chunks) => {
                for p in chunks {
                    totals.add(&p.totals);
                    if out_tx.send(ToWriter::Chunk(Box::new(p))).is_err() {
                        failure = Some(PipelineError::Internal("writer stopped".into()));
                        break;
                    }
                }
                let _ = out_tx.send(ToWriter::Checkpoint);
            }
            Err(e) => failure = Some(e),
        }
    }
    while failure.is_none() {
        let wait = pending_since.map(|t| flush_after.saturating_sub(t.elapsed()));
        // `None`: the pending pages have waited long enough, with no page since.
        let next = tokio::select! {
            next = page_rx.recv() => Some(next),
            _ = tokio::time::sleep(wait.unwrap_or_default()), if wait.is_some() => None,
            _ = cancelled(&mut cancel) => {
                failure = Some(PipelineError::Cancelled);
                break;
            }
        };
        let done = matches!(next, Some(None));
        if let Some(Some(wp)) = next {
            pending_records += wp.page.len();
            progress_plan.apply(&wp.event);
            events.push(wp.event);
            pending.push(wp.page);
            pending_since.get_or_insert_with(Instant::now);
        }
        let waited = pending_since.is_some_and(|t| t.elapsed() >= flush_after);
        if !pending.is_empty() && (done || waited || pending_records >= cfg.chunk_records) {
            let pages = std::mem::take(&mut pending);
            pending_records = 0;
            pending_since = None;
            let processed = match process_pages(cfg, client, mapper, pages, true).await {
                Ok(p) => p,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            };
            totals.add(&processed.totals);
            let processed = Processed {
                events: std::mem::take(&mut events),
                ..processed
            };
            if out_tx.send(ToWriter::Chunk(Box::new(processed))).is_err() {
                failure = Some(PipelineError::Internal("writer stopped".into()));
                break;
            }
            if let Some(p) = &cfg.control.progress {
                let stats = client.stats();
                p.update(&Progress {
                    counts: totals.counts.clone(),
                    windows_done: progress_plan.windows.iter().filter(|w| w.done).count(),
                    windows_total: progress_plan.windows.len(),
                    fraction: progress_plan.progress(),
                    retries: stats.retries - before.retries,
                    throttled: stats.throttled - before.throttled,
                    elapsed_secs: started.elapsed().as_secs_f64(),
                });
            }
        }
        if done {
            break;
        }
    }
    if failure.is_none() {
        if let Some(super::changes::Changes::Reread { at }) = cfg.changes {
            // Everything the list returned is committed first: what the mirror then holds of
            // other runs, the list no longer returns.
            let (ack, acked) = tokio::sync::oneshot::channel();
            let _ = out_tx.send(ToWriter::Barrier(ack));
            if acked.await.is_ok() {
                match super::changes::absent(cfg, client, mapper, at).await {
                    Ok(chunks) => {
                        for p in chunks {
                            totals.add(&p.totals);
                            let _ = out_tx.send(ToWriter::Chunk(Box::new(p)));
                        }
                    }
                    Err(e) => failure = Some(e),
                }
            }
        }
    }
    if matches!(failure, Some(PipelineError::Cancelled)) {
        // Keep what was written: one last checkpoint, so a resume refetches as little as possible.
        let _ = out_tx.send(ToWriter::Checkpoint);
    }
    drop(out_tx);
    drop(page_rx);
    let written = writer_handle
        .join()
        .map_err(|_| PipelineError::Internal("writer thread panicked".into()))?;
    if let Some(e) = failure {
        fetcher.abort();
        // The stage thread's own error says why it stopped taking chunks.
        return Err(match (e, written) {
            (PipelineError::Internal(_), Err(cause)) => cause,
            (e, _) => e,
        });
    }
    fetcher.await.map_err(|source| PipelineError::Task {
        what: "fetch",
        source,
    })??;
    Ok((written?, totals))
}

/// The stage thread's outputs: the mirror and its writer, and the batch (its rejects).
struct Stager {
    writer: BatchWriter,
    mirror: Mirror,
    stage: StageWriter,
    rt: tokio::runtime::Handle,
}

/// The stage thread: stages chunks in order, commits to the mirror (and checkpoints) at most
/// every `every`, sooner when a MERGE buffer is full, and always at the end.
fn write_loop(
    mut s: Stager,
    rx: std_mpsc::Receiver<ToWriter>,
    store: Option<Arc<dyn super::CheckpointStore>>,
    every: Duration,
    mut state: CheckpointState,
) -> Result<Written, PipelineError> {
    let mut last = Instant::now();
    let mut checkpoints = 0;
    let mut dirty = false;
    let mut messages = rx.into_iter();
    loop {
        let msg = messages.next();
        let done = msg.is_none();
        let mut ack = None;
        let force = match msg {
            Some(ToWriter::Chunk(p)) => {
                // The mirror's file here, the batch's on a scoped thread (see the module doc).
                let Processed {
                    staged,
                    rejected,
                    outcome,
                    events,
                    totals,
                } = *p;
                let (rt, stage, writer) = (&s.rt, &mut s.stage, &mut s.writer);
                let seq = state.seq + 1;
                let (staged, cut) = std::thread::scope(|scope| {
                    let cut = scope.spawn(move || -> Result<(), PipelineError> {
                        writer.reject(&rejected)?;
                        if let Some(outcome) = &outcome {
                            writer.write(&outcome.accepted)?;
                            writer.reject(&outcome.rejected)?;
                        }
                        Ok(())
                    });
                    let staged = staged
                        .into_iter()
                        .try_for_each(|rows| rt.block_on(stage.write(rows, seq)));
                    (staged, cut.join())
                });
                staged?;
                match cut {
                    Ok(result) => result?,
                    Err(panic) => std::panic::resume_unwind(panic),
                }
                for e in &events {
                    state.plan.apply(e);
                }
                state.totals.add(&totals);
                dirty = true;
                false
            }
            Some(ToWriter::Barrier(tx)) => {
                ack = Some(tx);
                true
            }
            Some(ToWriter::Checkpoint) | None => true,
        };
        if dirty && (force || last.elapsed() >= every || s.stage.wants_commit()) {
            state.seq += 1;
            let metadata = stage::commit_metadata(
                &state.batch_id,
                state.seq,
                [("records", state.totals.counts.staged.into())]
                    .into_iter()
                    .collect(),
            );
            s.rt.block_on(
                s.mirror
                    .commit(&mut s.stage, &state.batch_id, state.seq, metadata),
            )?;
            state.staged = s.writer.seal_rejects()?;
            if let Some(store) = &store {
                let json = serde_json::to_string(&state)
                    .map_err(|e| PipelineError::Checkpoint(e.to_string()))?;
                store.save(&json).map_err(PipelineError::Checkpoint)?;
                checkpoints += 1;
            }
            last = Instant::now();
            dirty = false;
        }
        if let Some(tx) = ack {
            let _ = tx.send(());
        }
        if done {
            break;
        }
    }
    Ok(Written {
        writer: s.writer,
        mirror: s.mirror,
        checkpoints,
    })
}

/// Resolves when cancellation is asked for (never without a receiver).
async fn cancelled(rx: &mut Option<tokio::sync::watch::Receiver<bool>>) {
    match rx {
        Some(rx) => {
            if rx.wait_for(|c| *c).await.is_err() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}

/// What a running run has committed to its last checkpoint, for monitoring while it runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CheckpointTotals {
    /// The batch being staged.
    pub batch_id: String,
    /// The counts up to the checkpoint (`files` and `bytes_out`: the Parquet files sealed so far).
    #[serde(flatten)]
    pub counts: RecordCounts,
}

impl CheckpointState {
    /// Reads a stored checkpoint state.
    pub fn parse(text: &str) -> serde_json::Result<CheckpointState> {
        let mut state: CheckpointState = serde_json::from_str(text)?;
        // Checkpoints before `rejected` was stored kept only the codes.
        state.totals.counts = std::mem::take(&mut state.totals.counts).with_rejected_from_codes();
        Ok(state)
    }
}

/// Reads the totals of a checkpoint's state (as stored in the catalog); `None` when it is not
/// a state this version wrote.
pub fn checkpoint_totals(state: &str) -> Option<CheckpointTotals> {
    let state = CheckpointState::parse(state).ok()?;
    (state.version == CHECKPOINT_VERSION).then(|| {
        let mut counts = state.totals.counts;
        counts.files = state.staged.files.len() as u64;
        counts.bytes_out = state.staged.files.iter().map(|f| f.bytes).sum();
        CheckpointTotals {
            batch_id: state.batch_id,
            counts,
        }
    })
}
