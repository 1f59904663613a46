//! Who owns a running run, how an interrupted one is taken over and resumed, its per-page
//! checkpoints, and its batch's upload record.
//!
//! A running run records the pid of the process running it. When that process dies (kill -9,
//! power loss) or lets go of it (Ctrl-C, `serve` shutting down), the run stays `running` with
//! its window fixed; the next `dataflows run` or `serve` tick *adopts* it and resumes from its
//! last checkpoint, so the committed batch equals that of an uninterrupted run.

use rusqlite::OptionalExtension;
use serde::Serialize;

use super::dataflows::find;
use super::runs::{expect_status, run_in};
use super::{unix_now, Catalog, CatalogError, Run, RunStatus, RunUpload, SqlContext};

/// A running run's last checkpoint: an opaque state (the pipeline's JSON: windows with their
/// cursors, the staged files it covers, the totals) for a batch id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Checkpoint {
    /// The run.
    pub run_id: i64,
    /// 1, 2, … in the order they were written.
    pub seq: u64,
    /// The batch being staged.
    pub batch_id: String,
    /// The pipeline's state, JSON.
    pub state: String,
    /// Unix seconds.
    pub updated_at: i64,
}

/// Whether process `pid` is alive: `Some` on systems with `/proc`, `None` where it cannot be told.
pub fn process_alive(pid: u32) -> Option<bool> {
    let proc = std::path::Path::new("/proc");
    if !proc.join("self").exists() {
        return None;
    }
    Some(proc.join(pid.to_string()).exists())
}

/// A run whose owner is gone: no owner, or an owner that is not alive (and not us).
pub(super) fn abandoned(run: &Run) -> bool {
    match run.owner_pid {
        None => true,
        Some(pid) if pid == std::process::id() => false,
        Some(pid) => process_alive(pid) == Some(false),
    }
}

impl Catalog {
    /// Starts a run of `dataflow` for `scheduled_time`, or takes over the dataflow's interrupted
    /// run (running, with its owner gone) so it resumes over its own window. Refused while a
    /// live process runs the dataflow. Returns the run and whether it was adopted.
    pub fn begin_or_resume_run(
        &mut self,
        dataflow: &str,
        scheduled_time: i64,
        safety_lag_secs: i64,
        now: i64,
    ) -> Result<(Run, bool), CatalogError> {
        if let Some(run) = self.adopt_run(dataflow, now)? {
            return Ok((run, true));
        }
        self.begin_run(dataflow, scheduled_time, safety_lag_secs, now)
            .map(|r| (r, false))
    }

    /// Takes over the dataflow's interrupted run, if it has one: its owner becomes this process.
    /// `Err(RunInProgress)` when a live process owns it; `Ok(None)` when there is none.
    pub fn adopt_run(&mut self, dataflow: &str, now: i64) -> Result<Option<Run>, CatalogError> {
        let tx = self.write_tx()?;
        let flow = find(&tx, dataflow)?;
        let active: Option<i64> = tx
            .query_row(
                "SELECT id FROM runs WHERE dataflow_id = ?1 AND status IN ('scheduled','running')",
                [flow.id],
                |r| r.get(0),
            )
            .optional()
            .ctx(format!("look up the active run of dataflow {dataflow:?}"))?;
        let Some(id) = active else { return Ok(None) };
        let run = run_in(&tx, id)?;
        if run.status == RunStatus::Scheduled {
            // A requested run nobody started yet: start it here.
            drop(tx);
            return self.start_run(id, 0, now).map(Some);
        }
        if !abandoned(&run) {
            let owner = run.owner_pid.map(|p| format!(" (process {p} runs it)"));
            return Err(CatalogError::RunInProgress {
                dataflow: dataflow.to_string(),
                run_id: id,
                status: run.status,
                interrupted: false,
                remedy: format!("wait for it to end{}", owner.unwrap_or_default()),
            });
        }
        tx.execute(
            "UPDATE runs SET owner_pid = ?2, heartbeat_at = ?3 WHERE id = ?1",
            (id, std::process::id(), now),
        )
        .ctx(format!("adopt run {id}"))?;
        let run = run_in(&tx, id)?;
        tx.commit()
            .ctx(format!("commit the adoption of run {id}"))?;
        tracing::info!(run = id, dataflow, "resuming an interrupted run");
        Ok(Some(run))
    }

    /// Lets go of a running run without ending it (Ctrl-C, shutdown): it stays `running` with its
    /// checkpoint, and the next run of the dataflow resumes it.
    pub fn release_run(&mut self, run_id: i64) -> Result<(), CatalogError> {
        self.conn
            .execute(
                "UPDATE runs SET owner_pid = NULL WHERE id = ?1 AND status = 'running'",
                [run_id],
            )
            .ctx(format!("release run {run_id}"))
            .map(|_| ())
    }

    /// Records the run's checkpoint (replacing the previous one) and its heartbeat. Refused when
    /// the run is no longer running (deleted with its dataflow, or ended).
    pub fn save_checkpoint(
        &mut self,
        run_id: i64,
        batch_id: &str,
        state: &str,
    ) -> Result<u64, CatalogError> {
        let tx = self.write_tx()?;
        let run = run_in(&tx, run_id)?;
        expect_status(&run, RunStatus::Running)?;
        let now = unix_now();
        tx.execute(
            "INSERT INTO checkpoints (run_id, seq, batch_id, state, updated_at)
             VALUES (?1, 1, ?2, ?3, ?4)
             ON CONFLICT (run_id) DO UPDATE SET seq = seq + 1, batch_id = excluded.batch_id,
                 state = excluded.state, updated_at = excluded.updated_at",
            (run_id, batch_id, state, now),
        )
        .ctx(format!("save the checkpoint of run {run_id}"))?;
        tx.execute(
            "UPDATE runs SET heartbeat_at = ?2 WHERE id = ?1",
            (run_id, now),
        )
        .ctx(format!("record the heartbeat of run {run_id}"))?;
        let seq: i64 = tx
            .query_row(
                "SELECT seq FROM checkpoints WHERE run_id = ?1",
                [run_id],
                |r| r.get(0),
            )
            .ctx("read the checkpoint sequence")?;
        tx.commit()
            .ctx(format!("commit the checkpoint of run {run_id}"))?;
        Ok(seq as u64)
    }

    /// The run's last checkpoint.
    pub fn checkpoint(&self, run_id: i64) -> Result<Option<Checkpoint>, CatalogError> {
        self.conn
            .query_row(
                "SELECT run_id, seq, batch_id, state, updated_at FROM checkpoints WHERE run_id = ?1",
                [run_id],
                |r| {
                    Ok(Checkpoint {
                        run_id: r.get(0)?,
                        seq: r.get::<_, i64>(1)? as u64,
                        batch_id: r.get(2)?,
                        state: r.get(3)?,
                        updated_at: r.get(4)?,
                    })
                },
            )
            .optional()
            .ctx(format!("read the checkpoint of run {run_id}"))
    }

    /// Records what Platform said of the run's batch.
    pub fn record_upload(&mut self, run_id: i64, upload: &RunUpload) -> Result<Run, CatalogError> {
        let tx = self.write_tx()?;
        run_in(&tx, run_id)?;
        let errors = serde_json::to_string(&upload.errors).unwrap_or_else(|_| "[]".into());
        tx.execute(
            "UPDATE runs SET platform_batch_id = ?2, platform_status = ?3, platform_errors = ?4,
                             uploaded_at = ?5 WHERE id = ?1",
            (
                run_id,
                &upload.platform_batch_id,
                &upload.status,
                errors,
                upload.uploaded_at,
            ),
        )
        .ctx(format!("record the upload of run {run_id}"))?;
        let run = run_in(&tx, run_id)?;
        tx.commit()
            .ctx(format!("commit the upload of run {run_id}"))?;
        Ok(run)
    }

    /// The run that produced local batch `batch_id`, if the catalog knows it.
    pub fn run_by_batch(&self, batch_id: &str) -> Result<Option<Run>, CatalogError> {
        let id: Option<i64> = self
            .conn
            .query_row(
                "SELECT id FROM runs WHERE batch_id = ?1 ORDER BY id DESC LIMIT 1",
                [batch_id],
                |r| r.get(0),
            )
            .optional()
            .ctx(format!("look up the run of batch {batch_id}"))?;
        id.map(|id| run_in(&self.conn, id)).transpose()
    }
}
