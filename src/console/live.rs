//! Runs started from the console, and their progress while they go.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::pipeline::{Progress, ProgressSink};

/// One run started here: its progress, and how it ended.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LiveRun {
    /// The dataflow.
    pub dataflow: String,
    /// Unix seconds when it was started.
    pub started_at: i64,
    /// Its counts so far (`fetched`, `rejected`, `pages`, …), flattened into the JSON.
    #[serde(flatten)]
    pub counts: crate::metrics::RecordCounts,
    /// Fraction of the `created` range walked, 0..=1.
    pub fraction: f64,
    /// Records per second so far.
    pub rate: f64,
    /// Whether it has ended.
    pub done: bool,
    /// The run's id once recorded.
    pub run_id: Option<i64>,
    /// Its final status (`success`, `failed`, …) or why it could not run.
    pub outcome: Option<String>,
    /// For a run of another process (`serve`, `backfill`, `dataflows run`): the time of the
    /// checkpoint its counts come from.
    pub as_of: Option<i64>,
}

impl LiveRun {
    /// A run another process is making, as of its last checkpoint.
    pub fn elsewhere(r: &crate::catalog::Run, now: i64) -> LiveRun {
        let started = r.started_at.unwrap_or(now);
        LiveRun {
            dataflow: r.dataflow.clone(),
            started_at: started,
            counts: r.counts.clone(),
            rate: r.counts.fetched as f64 / (now - started).max(1) as f64,
            run_id: Some(r.id),
            as_of: r.progress_as_of.or(Some(started)),
            ..LiveRun::default()
        }
    }
}

/// The console's runs by dataflow (the latest run of each).
#[derive(Debug, Clone, Default)]
pub struct LiveRuns(Arc<Mutex<BTreeMap<String, LiveRun>>>);

impl LiveRuns {
    /// Starts tracking a run of `dataflow`; `false` if one is still going.
    pub fn begin(&self, dataflow: &str, now: i64) -> bool {
        let mut runs = self.0.lock().expect("live runs lock");
        if runs.get(dataflow).is_some_and(|r| !r.done) {
            return false;
        }
        runs.insert(
            dataflow.to_string(),
            LiveRun {
                dataflow: dataflow.to_string(),
                started_at: now,
                ..LiveRun::default()
            },
        );
        true
    }

    /// Records how the run of `dataflow` ended: its final counts (the files and bytes written
    /// are known only once it committed) when it was recorded.
    pub fn end(&self, dataflow: &str, run: Option<&crate::catalog::Run>, outcome: String) {
        if let Some(r) = self.0.lock().expect("live runs lock").get_mut(dataflow) {
            r.done = true;
            r.run_id = run.map(|run| run.id);
            if let Some(run) = run {
                r.counts = run.counts.clone();
                // A failed run ingested nothing (Run::ingested), as runs show says.
                r.counts.ingested = run.ingested();
            }
            r.outcome = Some(outcome);
        }
    }

    /// Every tracked run.
    pub fn snapshot(&self) -> Vec<LiveRun> {
        self.0
            .lock()
            .expect("live runs lock")
            .values()
            .cloned()
            .collect()
    }

    /// A progress sink feeding `dataflow`'s entry.
    pub fn sink(&self, dataflow: &str) -> Arc<dyn ProgressSink> {
        Arc::new(Sink {
            runs: self.clone(),
            dataflow: dataflow.to_string(),
        })
    }
}

struct Sink {
    runs: LiveRuns,
    dataflow: String,
}

impl ProgressSink for Sink {
    fn update(&self, p: &Progress) {
        if let Some(r) = self
            .runs
            .0
            .lock()
            .expect("live runs lock")
            .get_mut(&self.dataflow)
        {
            r.counts = p.counts.clone();
            r.fraction = p.fraction;
            r.rate = if p.elapsed_secs > 0.0 {
                p.counts.fetched as f64 / p.elapsed_secs
            } else {
                0.0
            };
        }
    }
}
