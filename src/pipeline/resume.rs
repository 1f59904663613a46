//! Where a run starts: at its last checkpoint when it has a usable one, fresh otherwise, or not
//! at all when an earlier attempt already committed its batch.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{drive, PipelineError, RunConfig, RunReport, TRAILING_FILE};
use crate::sink::{self, BatchWriter, DatasetDir, Manifest};
use crate::source::windows::WindowPlan;

/// Opens the batch writer: at the run's last checkpoint when there is a usable one, else fresh.
pub(super) fn open_writer(
    cfg: &RunConfig,
    dirs: DatasetDir,
    batch_id: &str,
) -> Result<(BatchWriter, (WindowPlan, drive::Totals), bool), PipelineError> {
    let schema = cfg.schema.arrow_schema();
    if let Some(store) = &cfg.control.checkpoints {
        let loaded = store.load().map_err(PipelineError::Checkpoint)?;
        if let Some(text) = loaded {
            match serde_json::from_str::<drive::CheckpointState>(&text) {
                Ok(st)
                    if st.version == drive::CHECKPOINT_VERSION
                        && st.batch_id == batch_id
                        && st.window == (cfg.window.gte, cfg.window.lt)
                        && st.plan.check().is_ok() =>
                {
                    match BatchWriter::resume(
                        dirs.clone(),
                        batch_id,
                        schema.clone(),
                        cfg.sink,
                        &st.staged,
                    ) {
                        Ok(w) => return Ok((w, (st.plan, st.totals), true)),
                        Err(e) => tracing::warn!(
                            batch = batch_id,
                            error = %e,
                            "the checkpoint's staged data is unusable; starting the run over"
                        ),
                    }
                }
                Ok(_) => tracing::warn!(
                    batch = batch_id,
                    "the checkpoint belongs to another batch or window; starting over"
                ),
                Err(e) => tracing::warn!(
                    batch = batch_id,
                    error = %e,
                    "the checkpoint does not parse; starting over"
                ),
            }
        }
    }
    let plan = drive::initial_plan(
        cfg.window,
        cfg.control.concurrency.max(1),
        chrono::Utc::now().timestamp(),
    );
    let writer = BatchWriter::create(dirs, batch_id, schema, cfg.sink)?;
    Ok((writer, (plan, drive::Totals::default()), false))
}

/// The report of a batch an earlier attempt already committed (under `batches/` or `failed/`).
pub(super) fn committed_report(
    dirs: &DatasetDir,
    batch_id: &str,
    cfg: &RunConfig,
) -> Result<Option<RunReport>, PipelineError> {
    for dir in [dirs.committed(batch_id), dirs.failed(batch_id)] {
        let path = dir.join(sink::MANIFEST_FILE);
        if !path.exists() {
            continue;
        }
        let m = Manifest::read(&path).map_err(|e| PipelineError::Internal(e.to_string()))?;
        let mut by_code = BTreeMap::new();
        for e in &m.errors {
            if let Some(n) = e.record_count {
                by_code.insert(e.code.clone(), n);
            }
        }
        return Ok(Some(RunReport {
            batch_id: batch_id.to_string(),
            resource: cfg.resource.path().to_string(),
            dataset: cfg.dataset.clone(),
            status: m.status,
            failure_reason: m.failure_reason.clone(),
            fetched: m.metrics.input_record_count,
            ingested: m.metrics.output_record_count,
            rejected: m.metrics.failed_record_count,
            rejected_by_code: by_code,
            warnings: m.metrics.warning_count,
            pages: 0,
            requests: 0,
            retries: 0,
            throttled: 0,
            bytes_in: m.metrics.input_byte_size,
            bytes_out: m.output_bytes,
            files: m.files.len(),
            checkpoints: 0,
            duplicates_skipped: 0,
            trailing: std::fs::read(dir.join(TRAILING_FILE))
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or_default(),
            duration: Duration::ZERO,
            batch_dir: dir,
        }));
    }
    Ok(None)
}
