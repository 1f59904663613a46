//! Runs: starting one now (a fan-out's dataflows in turn), a backfill's estimate before it
//! starts, and runs as a user sees them (a running run's counts come from its last checkpoint;
//! they are written to the run itself only at its end).

use super::accounts::{stored_client, ApiOverrides};
use super::{AppError, Result};
use serde::Serialize;

use crate::catalog::{Catalog, Dataflow, Run, RunStatus};
use crate::metrics::RecordCounts;
use crate::pipeline::EARLIEST_CREATED;
use crate::runner::{self, RunResult, RunnerConfig};
use crate::schedule::window_for_run;
use crate::source::plan::{plan_backfill, BackfillPlanEstimate};

/// Fills a running run's counts from its last checkpoint, and `progress_as_of` with when that
/// checkpoint was written; other runs are left as they are.
pub fn with_checkpoint(cat: &Catalog, r: &mut Run) {
    if r.status != RunStatus::Running {
        return;
    }
    let Some(cp) = cat.checkpoint(r.id).ok().flatten() else {
        return;
    };
    let Some(t) = crate::pipeline::checkpoint_totals(&cp.state) else {
        return;
    };
    r.counts = t.counts;
    r.batch_id = Some(t.batch_id);
    r.progress_as_of = Some(cp.updated_at);
}

/// Runs, newest first, of one dataflow or all, at most `limit`, running ones as of their last
/// checkpoint.
pub fn list(cat: &Catalog, dataflow: Option<&str>, limit: Option<usize>) -> Result<Vec<Run>> {
    let mut runs = cat.list_runs(dataflow, limit)?;
    for r in &mut runs {
        with_checkpoint(cat, r);
    }
    Ok(runs)
}

/// The counts of `runs` added up.
pub fn total(runs: &[Run]) -> RecordCounts {
    let mut t = RecordCounts::default();
    for r in runs {
        t.add(&r.counts);
    }
    t
}

/// One dataflow as monitoring shows it: its last and next run, and its runs' counts added up
/// (Platform's words: records received, ingested, failed).
#[derive(Debug, Clone, Serialize)]
pub struct DataflowStatus {
    /// The dataflow.
    pub dataflow: String,
    /// Whether it is enabled.
    pub enabled: bool,
    /// Its latest run.
    pub last_run_id: Option<i64>,
    /// That run's status.
    pub last_run_status: Option<RunStatus>,
    /// When that run started (or was scheduled).
    pub last_run_time: Option<i64>,
    /// When it runs next (`None`: disabled or nothing left to run).
    pub next_run_time: Option<i64>,
    /// Its runs.
    pub runs: usize,
    /// Its failed runs.
    pub failed_runs: usize,
    /// Records received by its runs.
    pub received: u64,
    /// Records ingested.
    pub ingested: u64,
    /// Records failed (rejected).
    pub failed: u64,
    /// Ingested records in percent of received (100 without any).
    pub ingested_rate: f64,
}

impl DataflowStatus {
    /// Summarises a dataflow's runs (`runs` newest first).
    fn new(flow: Dataflow, runs: &[Run], next_run_time: Option<i64>) -> DataflowStatus {
        let last = runs.first();
        let total = total(runs);
        // A failed run ingested nothing, whatever passed validation.
        let (received, ingested) = (total.fetched, runs.iter().map(Run::ingested).sum::<u64>());
        DataflowStatus {
            dataflow: flow.name,
            enabled: flow.enabled,
            last_run_id: last.map(|r| r.id),
            last_run_status: last.map(|r| r.status),
            last_run_time: last.map(|r| r.started_at.unwrap_or(r.scheduled_time)),
            next_run_time,
            runs: runs.len(),
            failed_runs: runs
                .iter()
                .filter(|r| r.status == RunStatus::Failed)
                .count(),
            received,
            ingested,
            failed: total.rejected,
            ingested_rate: if received == 0 {
                100.0
            } else {
                ingested as f64 * 100.0 / received as f64
            },
        }
    }
}

/// Every dataflow as monitoring shows it at `now`, running runs as of their last checkpoint.
pub fn monitor(cat: &Catalog, now: i64) -> Result<Vec<DataflowStatus>> {
    let mut rows = Vec::new();
    for flow in cat.list_dataflows()? {
        let runs = list(cat, Some(&flow.name), None)?;
        let last_scheduled = runs.iter().map(|r| r.scheduled_time).max();
        let next_run = if !flow.enabled {
            None
        } else {
            match flow.schedule.due_runs(last_scheduled, now) {
                Some(_) => Some(now),
                None => flow
                    .schedule
                    .next_run_after(last_scheduled.unwrap_or(now).max(now)),
            }
        };
        rows.push(DataflowStatus::new(flow, &runs, next_run));
    }
    Ok(rows)
}

/// The dataflows a run of `name` covers: `name` itself, or, when `name` is the name a fan-out
/// over connected accounts was created with, its dataflows `<name>.acct_…` in turn.
pub fn dataflows_to_run(cat: &Catalog, name: &str) -> Result<Vec<String>> {
    if cat.dataflow(name).is_err() {
        let children: Vec<String> = cat.fan_out(name)?.into_iter().map(|f| f.name).collect();
        if !children.is_empty() {
            return Ok(children);
        }
    }
    // An unknown name fails here with the catalog's message naming it.
    Ok(vec![cat.dataflow(name)?.name])
}

/// Runs dataflow `name` now (or resumes its interrupted run) with `cfg`. `stripe_account`, when
/// given, must be the connected account the dataflow reads through: its windows, watermark and
/// mirror belong to that account. `cancel` stops the run at its next safe point (it stays
/// resumable).
pub async fn run_now(
    cat: &Catalog,
    cfg: &RunnerConfig,
    name: &str,
    stripe_account: Option<&str>,
    cancel: Option<tokio::sync::watch::Receiver<bool>>,
) -> Result<RunResult> {
    let flow = cat.dataflow(name)?;
    if let Some(acct) = stripe_account {
        let account = cat.account(&flow.account)?;
        let recorded = runner::connected_account(&flow, &account);
        if recorded.as_deref() != Some(acct) {
            return Err(AppError::Invalid(format!(
                "dataflow {:?} reads through {}; --stripe-account {acct} would mix another account's objects into its windows and mirror: create a dataflow with --stripe-account {acct} instead",
                flow.name,
                recorded.as_deref().unwrap_or("the key's own account")
            )));
        }
    }
    Ok(runner::run_dataflow(cfg, &flow.name, runner::now(), cancel).await?)
}

/// The estimate of dataflow `name`'s next window (an interrupted run keeps its own): one
/// sampled first page per window of `samples`, requests and time at the client's budget.
pub async fn backfill_plan(
    cat: &Catalog,
    name: &str,
    api: &ApiOverrides,
    samples: usize,
) -> Result<(Dataflow, BackfillPlanEstimate)> {
    let flow = cat.dataflow(name)?;
    let (_, client) = stored_client(cat, &flow.account, api)?;
    let window = match cat.active_run(&flow.name)?.and_then(|r| r.window) {
        Some(w) => w,
        None => window_for_run(
            &flow.schedule,
            cat.watermark(&flow.name)?,
            runner::now(),
            runner::SAFETY_LAG_SECS,
        ),
    };
    let gte = window.gte.unwrap_or(EARLIEST_CREATED);
    let estimate = plan_backfill(&client, flow.resource, gte, window.lt, samples.max(1))
        .await
        .map_err(|source| {
            AppError::stripe(
                format!("dataflow {:?}: sampling its backfill", flow.name),
                source,
            )
        })?;
    Ok((flow, estimate))
}
