//! Where a run starts: at its last checkpoint when it has a usable one (its accepted rows cut
//! again from the mirror), fresh otherwise, or not at all when an earlier attempt already
//! committed its batch.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{drive, PipelineError, RunConfig, RunReport, TRAILING_FILE};
use crate::map::Mapper;
use crate::metrics::RecordCounts;
use crate::sink::{self, BatchWriter, DatasetDir, Manifest};
use crate::stage::{Mirror, WriteMode};

/// Opens the batch writer and the mirror writer: at the run's last checkpoint when there is a
/// usable one, else fresh. A run MERGEs into the mirror when its `created` window holds rows of
/// other runs. Rows this run committed after the checkpoint it resumes from (the process died
/// between the mirror's commit and the checkpoint's save), or at all when it starts over, are
/// deleted first: they are fetched again, so nothing is staged twice and nothing of an earlier
/// attempt lingers in the batch. A resume then cuts the batch's accepted rows of the
/// checkpointed records again from the mirror (their rejected rows are sealed already).
pub(super) async fn open(
    cfg: &RunConfig,
    mapper: &Mapper,
    dirs: DatasetDir,
    batch_id: &str,
    mut mirror: Mirror,
) -> Result<(BatchWriter, drive::Start, bool), PipelineError> {
    let schema = cfg.schema.arrow_schema();
    let committed = mirror.committed_seq(batch_id).await?;
    if let Some(st) = checkpoint(cfg, batch_id)? {
        match BatchWriter::resume(dirs.clone(), batch_id, schema.clone(), cfg.sink, &st.staged) {
            Ok(w) => {
                if committed.is_some_and(|c| c > st.seq) {
                    let n = mirror.discard(batch_id, st.seq).await?;
                    tracing::info!(batch = batch_id, rows = ?n, "the mirror was ahead of the checkpoint: its later rows are fetched again");
                }
                match recut(cfg, mapper, &mirror, w, &st.totals).await? {
                    Ok(w) => {
                        let mode = if st.merge {
                            WriteMode::Merge
                        } else {
                            WriteMode::Append
                        };
                        let stage = mirror.writer(mode)?;
                        let start = drive::Start {
                            plan: st.plan,
                            totals: st.totals,
                            mirror,
                            stage,
                            seq: st.seq,
                            changes: None,
                        };
                        return Ok((w, start, true));
                    }
                    Err(reason) => tracing::warn!(
                        batch = batch_id,
                        reason,
                        "the checkpointed records do not map as before; starting the run over"
                    ),
                }
            }
            Err(e) => tracing::warn!(
                batch = batch_id,
                error = %e,
                "the checkpoint's staged data is unusable; starting the run over"
            ),
        }
    }
    let plan = drive::initial_plan(
        cfg.window,
        cfg.control.windows_at_once(),
        chrono::Utc::now().timestamp(),
    );
    if committed.is_some() {
        // This run committed to the mirror before and its checkpoint is gone (or unusable):
        // start over, in place, without what the earlier attempt staged.
        mirror.discard(batch_id, 0).await?;
    }
    let mode = mirror
        .mode_for(cfg.window.gte, cfg.window.lt, batch_id)
        .await?;
    let stage = mirror.writer(mode)?;
    let writer = BatchWriter::create(dirs, batch_id, schema, cfg.sink)?;
    let start = drive::Start {
        plan,
        totals: drive::Totals::default(),
        mirror,
        stage,
        seq: 0,
        changes: None,
    };
    Ok((writer, start, false))
}

/// The run's checkpoint, when it has one this run can resume from: same format version, batch,
/// window and mapping, and a consistent window plan.
fn checkpoint(
    cfg: &RunConfig,
    batch_id: &str,
) -> Result<Option<drive::CheckpointState>, PipelineError> {
    let Some(store) = &cfg.control.checkpoints else {
        return Ok(None);
    };
    let Some(text) = store.load().map_err(PipelineError::Checkpoint)? else {
        return Ok(None);
    };
    match drive::CheckpointState::parse(&text) {
        Ok(st)
            if st.version == drive::CHECKPOINT_VERSION
                && st.batch_id == batch_id
                && st.window == (cfg.window.gte, cfg.window.lt)
                && st.plan.check().is_ok() =>
        {
            if st.mapping == drive::mapping_fingerprint(&cfg.mapping.sql) {
                return Ok(Some(st));
            }
            tracing::warn!(
                batch = batch_id,
                "the mapping changed since the checkpoint; starting over"
            );
        }
        Ok(_) => tracing::warn!(
            batch = batch_id,
            "the checkpoint belongs to another version, batch or window; starting over"
        ),
        Err(e) => tracing::warn!(
            batch = batch_id,
            error = %e,
            "the checkpoint does not parse; starting over"
        ),
    }
    Ok(None)
}

/// Cuts the accepted rows of the records a checkpoint staged (`totals`) from the mirror into
/// `writer`. `Ok(Err(reason))` when they do not come out as the checkpoint counted them (a
/// mapping whose result depends on the time, say): the run must start over.
async fn recut(
    cfg: &RunConfig,
    mapper: &Mapper,
    mirror: &Mirror,
    writer: BatchWriter,
    totals: &drive::Totals,
) -> Result<Result<BatchWriter, String>, PipelineError> {
    if totals.counts.staged == 0 {
        return Ok(Ok(writer));
    }
    let batch = writer.batch_id().to_string();
    let (writer, cut) = super::cut::cut(cfg, mapper, mirror, Some(&batch), writer, false).await?;
    if cut.counts.staged != totals.counts.staged || cut.counts.ingested != totals.counts.ingested {
        return Ok(Err(format!(
            "{} records staged and {} accepted at the checkpoint; the mirror holds {} of them and {} map and validate",
            totals.counts.staged, totals.counts.ingested, cut.counts.staged, cut.counts.ingested
        )));
    }
    tracing::info!(
        batch = writer.batch_id(),
        rows = cut.counts.ingested,
        "the checkpoint's accepted rows were cut again from the mirror"
    );
    Ok(Ok(writer))
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
        let m = Manifest::read(&path).map_err(crate::sink::SinkError::from)?;
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
            counts: RecordCounts {
                fetched: m.metrics.input_record_count,
                staged: m.staged.unwrap_or(m.metrics.input_record_count),
                ingested: m.metrics.output_record_count,
                rejected: m.metrics.failed_record_count,
                rejected_by_code: by_code,
                warnings: m.metrics.warning_count,
                updated: m.updated,
                deleted: m.deleted,
                bytes_in: m.metrics.input_byte_size,
                bytes_out: m.output_bytes + m.parts.iter().map(|p| p.bytes).sum::<u64>(),
                files: (m.files.len() + m.parts.iter().map(|p| p.files).sum::<usize>()) as u64,
                ..Default::default()
            },
            requests: 0,
            retries: 0,
            throttled: 0,
            checkpoints: 0,
            duplicates_skipped: 0,
            trailing: std::fs::read(dir.join(TRAILING_FILE))
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or_default(),
            duration: Duration::ZERO,
            parts: m.parts.iter().map(|p| p.batch_id.clone()).collect(),
            mirror_version: 0,
            batch_dir: dir,
        }));
    }
    Ok(None)
}
