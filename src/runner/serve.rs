//! The scheduler behind `stripe-xdm serve`: every tick it looks at each enabled dataflow and
//! starts a run when one is due, at most one run per dataflow at a time.
//!
//! - **Catch-up, not a storm.** After downtime a dataflow gets one run, for the latest scheduled
//!   time that has passed; its window starts at the watermark, so it covers everything missed.
//! - **Interrupted runs resume first.** A run left `running` by a process that died or shut
//!   down is adopted and resumed from its checkpoint before anything new starts.
//! - **Clean shutdown.** When `shutdown` turns true, no new run starts; runs in flight stop at
//!   their next safe point (nothing half-committed: a batch is committed by one rename) and stay
//!   resumable; `serve` returns when they have all let go.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{run_dataflow, RunResult, RunnerConfig, RunnerError};
use crate::catalog::{process_alive, Catalog, RunStatus};

/// Runs in flight, by dataflow: the scheduled time served and the task.
type InFlight = HashMap<String, (i64, JoinHandle<Result<RunResult, RunnerError>>)>;

/// The scheduler's clock (unix seconds); tests pass a fixed or stepped one.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// How `serve` runs.
#[derive(Clone)]
pub struct ServeOptions {
    /// Time between two looks at the catalog.
    pub tick: Duration,
    /// Stop after this many ticks (tests); `None` runs until shutdown.
    pub max_ticks: Option<u64>,
    /// The clock.
    pub clock: Clock,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            tick: Duration::from_secs(5),
            max_ticks: None,
            clock: Arc::new(super::now),
        }
    }
}

impl std::fmt::Debug for ServeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeOptions")
            .field("tick", &self.tick)
            .field("max_ticks", &self.max_ticks)
            .finish_non_exhaustive()
    }
}

/// One finished run as `serve` saw it.
#[derive(Debug, Clone)]
pub struct ServedRun {
    /// The dataflow.
    pub dataflow: String,
    /// The scheduled time it served.
    pub scheduled_time: i64,
    /// What happened.
    pub outcome: Result<RunResult, String>,
}

/// What a `serve` session did.
#[derive(Debug, Default)]
pub struct ServeSummary {
    /// Ticks made.
    pub ticks: u64,
    /// Runs finished (successful, failed or interrupted), in the order they ended.
    pub runs: Vec<ServedRun>,
}

/// What a dataflow needs now.
fn due(cat: &Catalog, name: &str, now: i64) -> Result<Option<i64>, RunnerError> {
    let flow = cat.dataflow(name)?;
    if !flow.enabled {
        return Ok(None);
    }
    if let Some(active) = cat.active_run(name)? {
        let abandoned = match (active.status, active.owner_pid) {
            (RunStatus::Scheduled, _) => true,
            (_, None) => true,
            (_, Some(pid)) => pid != std::process::id() && process_alive(pid) == Some(false),
        };
        return Ok(abandoned.then_some(active.scheduled_time));
    }
    let last = cat.last_scheduled_time(name)?;
    Ok(flow.schedule.due_runs(last, now))
}

/// Runs the scheduler until `shutdown` turns true (or `opts.max_ticks`).
pub async fn serve(
    cfg: RunnerConfig,
    opts: ServeOptions,
    mut shutdown: watch::Receiver<bool>,
) -> Result<ServeSummary, RunnerError> {
    let (cancel_tx, cancel_rx) = watch::channel(false);
    let mut in_flight: InFlight = HashMap::new();
    let mut summary = ServeSummary::default();
    let cfg = Arc::new(cfg);
    loop {
        reap(&mut in_flight, &mut summary, false).await;
        if *shutdown.borrow() {
            break;
        }
        let now = (opts.clock)();
        let cat = Catalog::open(&cfg.home)?;
        for flow in cat.list_dataflows()? {
            if in_flight.contains_key(&flow.name) {
                continue;
            }
            let when = match due(&cat, &flow.name, now) {
                Ok(w) => w,
                Err(e) => {
                    tracing::warn!(dataflow = %flow.name, error = %e, "cannot schedule");
                    continue;
                }
            };
            let Some(scheduled_time) = when else { continue };
            tracing::info!(dataflow = %flow.name, scheduled_time, "starting a run");
            let (cfg, name, cancel) = (cfg.clone(), flow.name.clone(), cancel_rx.clone());
            let handle = tokio::spawn(async move {
                run_dataflow(&cfg, &name, scheduled_time, Some(cancel)).await
            });
            in_flight.insert(flow.name.clone(), (scheduled_time, handle));
        }
        drop(cat);
        summary.ticks += 1;
        if opts.max_ticks.is_some_and(|m| summary.ticks >= m) {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(opts.tick) => {}
            _ = shutdown.wait_for(|s| *s) => {}
        }
    }
    if *shutdown.borrow() {
        // Stop runs in flight at their next safe point; they stay resumable.
        let _ = cancel_tx.send(true);
    }
    reap(&mut in_flight, &mut summary, true).await;
    Ok(summary)
}

/// Collects finished runs (all of them when `wait`).
async fn reap(in_flight: &mut InFlight, summary: &mut ServeSummary, wait: bool) {
    let names: Vec<String> = in_flight
        .iter()
        .filter(|(_, (_, h))| wait || h.is_finished())
        .map(|(n, _)| n.clone())
        .collect();
    for name in names {
        let (scheduled_time, handle) = in_flight.remove(&name).expect("listed above");
        let outcome = match handle.await {
            Ok(Ok(r)) => {
                tracing::info!(dataflow = %name, run = r.run.id, status = %r.run.status, "run ended");
                Ok(r)
            }
            Ok(Err(e)) => {
                tracing::warn!(dataflow = %name, error = %e, "run did not finish");
                Err(e.to_string())
            }
            Err(e) => Err(format!("the run's task failed: {e}")),
        };
        summary.runs.push(ServedRun {
            dataflow: name,
            scheduled_time,
            outcome,
        });
    }
}
