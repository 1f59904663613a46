//! How a run is steered from outside: cancellation at safe points, checkpoints for resume,
//! concurrency of the window walk, and progress reporting.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

/// Where a run keeps its checkpoints: the catalog in production, memory in tests.
///
/// `save` is called after every sealed segment of staged data, with the pipeline's state as
/// JSON; `load` is called once at the start of a run. An error from `save` aborts the run (a
/// run that cannot checkpoint would not be resumable).
pub trait CheckpointStore: Send + Sync {
    /// The last saved state, if any.
    fn load(&self) -> Result<Option<String>, String>;
    /// Saves `state` (replacing the previous one).
    fn save(&self, state: &str) -> Result<(), String>;
}

/// Receives progress while a run goes (the CLI's progress bar or log lines).
pub trait ProgressSink: Send + Sync {
    /// Called after each processed chunk with the running totals.
    fn update(&self, p: &Progress);
}

/// A run's progress so far.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Progress {
    /// The run's counts so far (`fetched`, `pages`, `rejected`, …; `files` and `bytes_out` stay
    /// 0 while it runs: the report has them).
    pub counts: crate::metrics::RecordCounts,
    /// Windows fully walked.
    pub windows_done: usize,
    /// Windows in all (grows when dense windows split).
    pub windows_total: usize,
    /// Fraction of the `created` range done, 0..=1 (for an ETA).
    pub fraction: f64,
    /// Retries so far.
    pub retries: u64,
    /// 429 responses so far.
    pub throttled: u64,
    /// Seconds since the run started.
    pub elapsed_secs: f64,
}

/// Re-reading the end of the previous window for Stripe's late-visible objects: objects already
/// committed by the previous run (`known`) are dropped before decoding, and the ids of every
/// object created at or after `trailing_from` are collected for the next run.
#[derive(Debug, Clone, Default)]
pub struct Dedup {
    /// Ids committed by the previous run in the re-read span.
    pub known: Arc<std::collections::HashSet<String>>,
    /// Collect `(id, created)` of objects created at or after this (the next run's re-read span).
    pub trailing_from: Option<i64>,
    /// Known ids that changed since (they have events): the list's version is kept.
    pub changed: Arc<std::collections::HashSet<String>>,
}

/// The most `created` windows a run fetches at once. Stripe allows 25 list requests a second
/// per endpoint, which a few windows already fill; more only split the range finer.
pub const MAX_CONCURRENCY: usize = 64;

impl RunControl {
    /// The windows fetched at once: `concurrency` within 1 to [`MAX_CONCURRENCY`], whoever set
    /// it (the command line refuses other values; a library caller gets the nearest).
    pub fn windows_at_once(&self) -> usize {
        self.concurrency.clamp(1, MAX_CONCURRENCY)
    }
}

/// Outside controls of a run; the default is a plain run (one window, no checkpoints, no
/// cancellation, no progress).
#[derive(Clone)]
pub struct RunControl {
    /// When it turns `true`, the run stops at the next safe point with
    /// [`super::PipelineError::Cancelled`]; nothing is committed, and the staged data with its
    /// checkpoint stays for a resume.
    pub cancel: Option<watch::Receiver<bool>>,
    /// Where checkpoints go; `None` runs without them (a failed run starts over).
    pub checkpoints: Option<Arc<dyn CheckpointStore>>,
    /// Minimum time between two checkpoints (each seals a Parquet file; `ZERO` seals every chunk).
    pub checkpoint_every: Duration,
    /// `created` windows walked at once (1 = one sequential cursor walk).
    pub concurrency: usize,
    /// Progress receiver.
    pub progress: Option<Arc<dyn ProgressSink>>,
    /// De-duplication of a re-read span (dataflow runs after the first).
    pub dedup: Option<Dedup>,
}

impl Default for RunControl {
    fn default() -> Self {
        RunControl {
            cancel: None,
            checkpoints: None,
            checkpoint_every: Duration::from_secs(10),
            concurrency: 1,
            progress: None,
            dedup: None,
        }
    }
}

impl std::fmt::Debug for RunControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunControl")
            .field("cancellable", &self.cancel.is_some())
            .field("checkpoints", &self.checkpoints.is_some())
            .field("checkpoint_every", &self.checkpoint_every)
            .field("concurrency", &self.concurrency)
            .finish()
    }
}

impl RunControl {
    /// True once cancellation was asked for.
    pub fn cancelled(&self) -> bool {
        self.cancel.as_ref().is_some_and(|rx| *rx.borrow())
    }
}

/// A checkpoint store in memory (tests, and runs that only need crash-safety within a process).
#[derive(Debug, Default)]
pub struct MemoryCheckpoints {
    state: std::sync::Mutex<Option<String>>,
    saves: std::sync::atomic::AtomicU64,
}

impl MemoryCheckpoints {
    /// How many times a state was saved.
    pub fn saves(&self) -> u64 {
        self.saves.load(std::sync::atomic::Ordering::Relaxed)
    }
    /// The last saved state.
    pub fn state(&self) -> Option<String> {
        self.state.lock().expect("not poisoned").clone()
    }
}

impl CheckpointStore for MemoryCheckpoints {
    fn load(&self) -> Result<Option<String>, String> {
        Ok(self.state())
    }
    fn save(&self, state: &str) -> Result<(), String> {
        *self.state.lock().expect("not poisoned") = Some(state.to_string());
        self.saves
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_at_once_stay_within_what_a_run_can_use() {
        let at = |concurrency| {
            RunControl {
                concurrency,
                ..RunControl::default()
            }
            .windows_at_once()
        };
        assert_eq!((at(0), at(4), at(100_000)), (1, 4, MAX_CONCURRENCY));
    }
}
