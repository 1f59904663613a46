//! Runs, watermarks and alert deliveries.
//!
//! A run's life: `scheduled` → `running` (its window is fixed from the watermark) → `success` or
//! `failed`. The watermark moves to the window's end only in the transaction that marks the run
//! `success`, so a failed run leaves it where it was and the next run covers the same window.

use std::fmt;
use std::str::FromStr;

use rusqlite::types::Type;
use rusqlite::{OptionalExtension, Row, Transaction};
use serde::Serialize;

use super::dataflows::find;
use super::{unix_now, AlertKind, Catalog, CatalogError, SqlContext};
use crate::metrics::RecordCounts;
use crate::schedule::{window_for_run, Window};

/// A run's status, as Platform's run `statusSummary.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Created, not started.
    Scheduled,
    /// In progress.
    Running,
    /// Batch committed (possibly with rejected records).
    Success,
    /// No batch committed.
    Failed,
}

impl RunStatus {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Scheduled => "scheduled",
            RunStatus::Running => "running",
            RunStatus::Success => "success",
            RunStatus::Failed => "failed",
        }
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RunStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        [
            RunStatus::Scheduled,
            RunStatus::Running,
            RunStatus::Success,
            RunStatus::Failed,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
        .ok_or_else(|| format!("unknown run status {s:?}"))
    }
}

/// A run with its metrics.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Run {
    /// Run id.
    pub id: i64,
    /// Dataflow name.
    pub dataflow: String,
    /// Status.
    pub status: RunStatus,
    /// The scheduled time it serves (unix seconds).
    pub scheduled_time: i64,
    /// When the record was created.
    pub created_at: i64,
    /// When it started.
    pub started_at: Option<i64>,
    /// When it ended.
    pub ended_at: Option<i64>,
    /// Its `created` window (set when it starts).
    pub window: Option<Window>,
    /// What the run received and where the records went (as of its end; for a running run,
    /// as of its last checkpoint once [`crate::app::runs::with_checkpoint`] filled them in).
    /// `rejected` is Platform's "records failed".
    #[serde(flatten)]
    pub counts: RecordCounts,
    /// The batch id.
    pub batch_id: Option<String>,
    /// The mapping version it used.
    pub mapping_version: u32,
    /// Why it failed.
    pub failure_reason: Option<String>,
    /// The process running it (`None` once it ended, or while an interrupted run waits to be
    /// resumed).
    pub owner_pid: Option<u32>,
    /// Its batch's upload to Platform, when one was made.
    pub upload: Option<RunUpload>,
    /// For a run still in progress whose counts were taken from its last checkpoint (as
    /// `runs list|show` and `monitor` do): when that checkpoint was written. `None` as read
    /// from the catalog.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress_as_of: Option<i64>,
}

/// A run's batch as Platform saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct RunUpload {
    /// Platform's batch id.
    pub platform_batch_id: Option<String>,
    /// Platform's final status (`success`, `failed`, …) or the local reason it did not get one.
    pub status: String,
    /// Platform's errors (`code: description (n records)`), or the upload's own error.
    pub errors: Vec<String>,
    /// Unix seconds.
    pub uploaded_at: i64,
}

impl Run {
    /// Ingested / received, in percent (100 when nothing was received, 0 for a failed run).
    pub fn ingested_rate(&self) -> f64 {
        if self.status == RunStatus::Failed {
            0.0
        } else if self.counts.fetched == 0 {
            100.0
        } else {
            self.ingested() as f64 * 100.0 / self.counts.fetched as f64
        }
    }

    /// The run as JSON, with its records ingested as Platform counts them ([`Run::ingested`]):
    /// a failed run's `ingested` is 0, and `passed_validation` says how many had passed.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        platform_counts(&mut v, self.ingested(), self.counts.ingested);
        v
    }

    /// Records ingested as Platform counts them: the accepted rows of a committed run; none
    /// for a run that failed (its batch was never committed, whatever passed validation) or
    /// has not ended (as of its last checkpoint, the rows accepted so far).
    pub fn ingested(&self) -> u64 {
        match self.status {
            RunStatus::Failed => 0,
            _ => self.counts.ingested,
        }
    }

    /// Which end-of-run alert applies: success only when it ended without errors.
    pub fn end_alert(&self) -> Option<AlertKind> {
        match self.status {
            RunStatus::Success
                if self.counts.rejected == 0 && self.counts.rejected_by_code.is_empty() =>
            {
                Some(AlertKind::RunSuccess)
            }
            RunStatus::Success | RunStatus::Failed => Some(AlertKind::RunFailure),
            _ => None,
        }
    }

    fn from_row(r: &Row<'_>) -> rusqlite::Result<Run> {
        let conv =
            |i, e: String| rusqlite::Error::FromSqlConversionFailure(i, Type::Text, e.into());
        let status: String = r.get("status")?;
        let errors: String = r.get("errors")?;
        let gte: Option<i64> = r.get("window_gte")?;
        let lt: Option<i64> = r.get("window_lt")?;
        let n = |c: &str| r.get::<_, i64>(c).map(|v| v.max(0) as u64);
        Ok(Run {
            id: r.get("id")?,
            dataflow: r.get("dataflow")?,
            status: status.parse().map_err(|e| conv(2, e))?,
            scheduled_time: r.get("scheduled_time")?,
            created_at: r.get("created_at")?,
            started_at: r.get("started_at")?,
            ended_at: r.get("ended_at")?,
            window: lt.map(|lt| Window { gte, lt }),
            counts: RecordCounts {
                fetched: n("fetched")?,
                staged: n("staged")?,
                ingested: n("ingested")?,
                rejected: n("failed")?,
                rejected_by_code: serde_json::from_str(&errors)
                    .map_err(|e| conv(17, e.to_string()))?,
                warnings: n("warnings")?,
                updated: n("updated")?,
                deleted: n("deleted")?,
                events_read: n("events_read")?,
                pages: n("pages")?,
                bytes_in: n("bytes_in")?,
                bytes_out: n("bytes_out")?,
                files: n("files")?,
            },
            batch_id: r.get("batch_id")?,
            mapping_version: r.get("mapping_version")?,
            failure_reason: r.get("failure_reason")?,
            owner_pid: r.get("owner_pid")?,
            upload: match r.get::<_, Option<String>>("platform_status")? {
                None => None,
                Some(status) => Some(RunUpload {
                    platform_batch_id: r.get("platform_batch_id")?,
                    status,
                    errors: serde_json::from_str(
                        &r.get::<_, Option<String>>("platform_errors")?
                            .unwrap_or_else(|| "[]".into()),
                    )
                    .map_err(|e| conv(26, e.to_string()))?,
                    uploaded_at: r.get::<_, Option<i64>>("uploaded_at")?.unwrap_or(0),
                }),
            },
            progress_as_of: None,
        })
    }
}

/// How a run ended, as recorded by [`Catalog::finish_run`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunOutcome {
    /// Batch committed.
    pub success: bool,
    /// Why it failed.
    pub failure_reason: Option<String>,
    /// What the run received and where the records went.
    pub counts: RecordCounts,
    /// Batch id.
    pub batch_id: Option<String>,
    /// `(id, created)` of the objects in the next run's re-read span; replaces the dataflow's
    /// set when the run succeeds.
    pub trailing: Vec<(String, i64)>,
}

const SELECT: &str =
    "SELECT r.*, d.name AS dataflow FROM runs r JOIN dataflows d ON d.id = r.dataflow_id";

/// Refuses an operation on a run that is not in the `expected` status.
pub(super) fn expect_status(run: &Run, expected: RunStatus) -> Result<(), CatalogError> {
    if run.status == expected {
        return Ok(());
    }
    Err(CatalogError::RunState {
        run_id: run.id,
        status: run.status,
        expected,
    })
}

/// The refusal of an operation because run `run_id` of dataflow `name` is scheduled or running;
/// `remedy` says what to do, given whether the run is interrupted (running, with the process that
/// ran it gone).
pub(super) fn in_progress(
    conn: &rusqlite::Connection,
    name: &str,
    run_id: i64,
    remedy: impl FnOnce(bool) -> String,
) -> CatalogError {
    match run_in(conn, run_id) {
        Ok(run) => {
            let interrupted = run.status == RunStatus::Running && super::recovery::abandoned(&run);
            CatalogError::RunInProgress {
                dataflow: name.to_string(),
                run_id,
                status: run.status,
                interrupted,
                remedy: remedy(interrupted),
            }
        }
        Err(e) => e,
    }
}

pub(super) fn run_in(conn: &rusqlite::Connection, id: i64) -> Result<Run, CatalogError> {
    conn.query_row(&format!("{SELECT} WHERE r.id = ?1"), [id], Run::from_row)
        .optional()
        .ctx(format!("read run {id}"))?
        .ok_or_else(|| CatalogError::NotFound {
            what: "run",
            name: id.to_string(),
        })
}

fn refuse_active(tx: &Transaction<'_>, dataflow_id: i64, name: &str) -> Result<(), CatalogError> {
    let active: Option<(i64, String)> = tx
        .query_row(
            "SELECT id, status FROM runs WHERE dataflow_id = ?1 AND status IN ('scheduled','running')",
            [dataflow_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .ctx(format!("look up the active run of dataflow {name:?}"))?;
    match active {
        Some((run_id, _)) => Err(in_progress(tx, name, run_id, |interrupted| {
            if interrupted {
                format!("`stripe-xdm dataflows run {name}` resumes it")
            } else {
                "wait for it to end".into()
            }
        })),
        None => Ok(()),
    }
}

fn watermark_in(
    conn: &rusqlite::Connection,
    dataflow_id: i64,
) -> Result<Option<i64>, CatalogError> {
    conn.query_row(
        "SELECT window_end FROM watermarks WHERE dataflow_id = ?1",
        [dataflow_id],
        |r| r.get(0),
    )
    .optional()
    .ctx("read the watermark")
}

fn as_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Catalog {
    /// Records a run for `scheduled_time` in status `scheduled` (an ad hoc run request). Refused
    /// while the dataflow has a scheduled or running run.
    pub fn schedule_run(
        &mut self,
        dataflow: &str,
        scheduled_time: i64,
    ) -> Result<Run, CatalogError> {
        let tx = self.write_tx()?;
        let flow = find(&tx, dataflow)?;
        refuse_active(&tx, flow.id, dataflow)?;
        tx.execute(
            "INSERT INTO runs (dataflow_id, status, scheduled_time, created_at, mapping_version)
             VALUES (?1, 'scheduled', ?2, ?3, ?4)",
            (flow.id, scheduled_time, unix_now(), flow.mapping_version),
        )
        .ctx(format!("insert a run of dataflow {dataflow:?}"))?;
        let run = run_in(&tx, tx.last_insert_rowid())?;
        tx.commit().ctx("commit the new run")?;
        Ok(run)
    }

    /// Moves a scheduled run to `running`, fixing its window from the dataflow's watermark
    /// ([`window_for_run`]) and its mapping version to the newest.
    pub fn start_run(
        &mut self,
        run_id: i64,
        safety_lag_secs: i64,
        now: i64,
    ) -> Result<Run, CatalogError> {
        let tx = self.write_tx()?;
        let run = run_in(&tx, run_id)?;
        expect_status(&run, RunStatus::Scheduled)?;
        let flow = find(&tx, &run.dataflow)?;
        let w = window_for_run(
            &flow.schedule,
            watermark_in(&tx, flow.id)?,
            run.scheduled_time,
            safety_lag_secs,
        );
        tx.execute(
            "UPDATE runs SET status = 'running', started_at = ?2, window_gte = ?3, window_lt = ?4,
                             mapping_version = ?5, owner_pid = ?6, heartbeat_at = ?2 WHERE id = ?1",
            (
                run_id,
                now,
                w.gte,
                w.lt,
                flow.mapping_version,
                std::process::id(),
            ),
        )
        .ctx(format!("start run {run_id}"))?;
        let run = run_in(&tx, run_id)?;
        tx.commit()
            .ctx(format!("commit the start of run {run_id}"))?;
        Ok(run)
    }

    /// Creates and starts a run in one step (the scheduler's path): refused while another run
    /// of the dataflow is active, so at most one runs at a time even across processes.
    pub fn begin_run(
        &mut self,
        dataflow: &str,
        scheduled_time: i64,
        safety_lag_secs: i64,
        now: i64,
    ) -> Result<Run, CatalogError> {
        let run = self.schedule_run(dataflow, scheduled_time)?;
        self.start_run(run.id, safety_lag_secs, now)
    }

    /// Marks a running run failed without a report (the pipeline returned an error).
    pub fn fail_run(
        &mut self,
        run_id: i64,
        reason: &str,
        ended_at: i64,
    ) -> Result<Run, CatalogError> {
        let outcome = RunOutcome {
            failure_reason: Some(reason.to_string()),
            ..RunOutcome::default()
        };
        self.finish_run(run_id, &outcome, ended_at)
    }

    /// Ends a running run with `outcome`, atomically with the watermark when it succeeded.
    pub fn finish_run(
        &mut self,
        run_id: i64,
        outcome: &RunOutcome,
        ended_at: i64,
    ) -> Result<Run, CatalogError> {
        let tx = self.write_tx()?;
        let run = run_in(&tx, run_id)?;
        expect_status(&run, RunStatus::Running)?;
        let c = &outcome.counts;
        let errors = serde_json::to_string(&c.rejected_by_code).unwrap_or_else(|_| "{}".into());
        let status = if outcome.success {
            RunStatus::Success
        } else {
            RunStatus::Failed
        };
        tx.execute(
            "UPDATE runs SET status = ?2, ended_at = ?3, fetched = ?4, ingested = ?5, failed = ?6,
                 bytes_in = ?7, bytes_out = ?8, files = ?9, batch_id = ?10, errors = ?11, failure_reason = ?12,
                 updated = ?13, deleted = ?14, events_read = ?15, staged = ?16, warnings = ?17,
                 pages = ?18, owner_pid = NULL
             WHERE id = ?1",
            rusqlite::params![
                run_id, status.as_str(), ended_at, as_i64(c.fetched), as_i64(c.ingested),
                as_i64(c.rejected), as_i64(c.bytes_in), as_i64(c.bytes_out),
                as_i64(c.files), outcome.batch_id, errors, outcome.failure_reason,
                as_i64(c.updated), as_i64(c.deleted), as_i64(c.events_read),
                as_i64(c.staged), as_i64(c.warnings), as_i64(c.pages),
            ],
        )
        .ctx(format!("record the end of run {run_id}"))?;
        if outcome.success {
            let lt = run
                .window
                .map(|w| w.lt)
                .ok_or_else(|| CatalogError::Corrupt {
                    context: format!("run {run_id}"),
                    reason: "a running run without a window".into(),
                })?;
            tx.execute(
                "INSERT INTO watermarks (dataflow_id, window_end, run_id, updated_at)
                 SELECT dataflow_id, ?2, id, ?3 FROM runs WHERE id = ?1
                 ON CONFLICT (dataflow_id) DO UPDATE SET
                     window_end = MAX(window_end, excluded.window_end),
                     run_id = excluded.run_id, updated_at = excluded.updated_at",
                (run_id, lt, unix_now()),
            )
            .ctx(format!("advance the watermark for run {run_id}"))?;
            tx.execute(
                "DELETE FROM trailing_ids WHERE dataflow_id = (SELECT dataflow_id FROM runs WHERE id = ?1)",
                [run_id],
            )
            .ctx(format!("replace the re-read ids for run {run_id}"))?;
            let mut insert = tx
                .prepare(
                    "INSERT OR REPLACE INTO trailing_ids (dataflow_id, object_id, created)
                     SELECT dataflow_id, ?2, ?3 FROM runs WHERE id = ?1",
                )
                .ctx("prepare the re-read ids")?;
            for (id, created) in &outcome.trailing {
                insert
                    .execute((run_id, id, created))
                    .ctx(format!("record the re-read ids of run {run_id}"))?;
            }
        }
        tx.execute("DELETE FROM checkpoints WHERE run_id = ?1", [run_id])
            .ctx(format!("drop the checkpoint of run {run_id}"))?;
        let run = run_in(&tx, run_id)?;
        tx.commit().ctx(format!("commit the end of run {run_id}"))?;
        Ok(run)
    }

    /// One run.
    pub fn run(&self, run_id: i64) -> Result<Run, CatalogError> {
        run_in(&self.conn, run_id)
    }

    /// Runs, newest first, of one dataflow or all, at most `limit`.
    pub fn list_runs(
        &self,
        dataflow: Option<&str>,
        limit: Option<usize>,
    ) -> Result<Vec<Run>, CatalogError> {
        let limit = limit.map(|l| l as i64).unwrap_or(-1);
        let ctx = "list runs";
        let mut stmt = self
            .conn
            .prepare(&format!(
                "{SELECT} WHERE (?1 IS NULL OR d.name = ?1) ORDER BY r.scheduled_time DESC, r.id DESC LIMIT ?2"
            ))
            .ctx(ctx)?;
        let rows = stmt.query_map((dataflow, limit), Run::from_row).ctx(ctx)?;
        rows.collect::<Result<_, _>>().ctx(ctx)
    }

    /// The dataflow's scheduled-or-running run, if any.
    pub fn active_run(&self, dataflow: &str) -> Result<Option<Run>, CatalogError> {
        self.conn
            .query_row(
                &format!("{SELECT} WHERE d.name = ?1 AND r.status IN ('scheduled','running')"),
                [dataflow],
                Run::from_row,
            )
            .optional()
            .ctx(format!("look up the active run of dataflow {dataflow:?}"))
    }

    /// The ids the dataflow's last committed run saw in its re-read span.
    pub fn trailing_ids(
        &self,
        dataflow: &str,
    ) -> Result<std::collections::HashSet<String>, CatalogError> {
        let flow = self.dataflow(dataflow)?;
        let ctx = format!("read the re-read ids of dataflow {dataflow:?}");
        let mut stmt = self
            .conn
            .prepare("SELECT object_id FROM trailing_ids WHERE dataflow_id = ?1")
            .ctx(ctx.clone())?;
        let rows = stmt
            .query_map([flow.id], |r| r.get::<_, String>(0))
            .ctx(ctx.clone())?;
        rows.collect::<Result<_, _>>().ctx(ctx)
    }

    /// The dataflow's watermark: the end of the last committed window (`None` before the first
    /// successful run).
    pub fn watermark(&self, dataflow: &str) -> Result<Option<i64>, CatalogError> {
        let flow = self.dataflow(dataflow)?;
        watermark_in(&self.conn, flow.id)
    }

    /// The latest scheduled time any run of the dataflow served (for
    /// [`crate::schedule::Schedule::due_runs`]).
    pub fn last_scheduled_time(&self, dataflow: &str) -> Result<Option<i64>, CatalogError> {
        let flow = self.dataflow(dataflow)?;
        self.conn
            .query_row(
                "SELECT MAX(scheduled_time) FROM runs WHERE dataflow_id = ?1",
                [flow.id],
                |r| r.get(0),
            )
            .ctx(format!(
                "read the last scheduled time of dataflow {dataflow:?}"
            ))
    }
}

/// Sets a report's `ingested` (JSON) to what Platform ingested, and adds `passed_validation`
/// when that differs from the rows that passed (a failed run or batch).
pub fn platform_counts(v: &mut serde_json::Value, ingested: u64, passed: u64) {
    if let Some(o) = v.as_object_mut() {
        o.insert("ingested".into(), ingested.into());
        if ingested != passed {
            o.insert("passed_validation".into(), passed.into());
        }
    }
}
