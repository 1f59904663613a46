//! Remap: a mapping applied to the whole mirror, with no Stripe request.

use std::time::Instant;

use super::{
    checked_mapper, commit, cut, new_manifest, threshold_failure, PipelineError, RunConfig,
    RunReport,
};
use crate::metrics::RecordCounts;
use crate::sink::{self, BatchStatus, BatchWriter, DatasetDir};
use crate::stage::Mirror;

/// Maps and validates every object in `cfg`'s mirror (its latest version) and commits the
/// result as new batch(es) under `<out_dir>/<dataset>/batches/`, exactly as a run would; no
/// request reaches Stripe (`cfg.control` is not used). Only the objects created in `cfg.window`
/// or staged by one of `cfg.remap_batches` are mapped (a dataflow's remap: the span its runs
/// ingested and the rows they staged; objects without `created` are kept).
pub async fn remap(cfg: RunConfig) -> Result<RunReport, PipelineError> {
    let started = Instant::now();
    let started_at = chrono::Utc::now();
    let mapper = checked_mapper(&cfg).await?;
    // No mirror, nothing to remap: said before a lock file is left beside the missing table.
    Mirror::open_existing(&cfg.mirror_dir(), cfg.resource).await?;
    let _lock = crate::stage::lock(&cfg.mirror_dir()).await?;
    let mirror = Mirror::open_existing(&cfg.mirror_dir(), cfg.resource).await?;
    let batch_id = cfg.batch_id.clone().unwrap_or_else(sink::new_batch_id);
    let dirs = DatasetDir::new(&cfg.out_dir, &cfg.dataset);
    let writer = BatchWriter::create(dirs, &batch_id, cfg.schema.arrow_schema(), cfg.sink)?;
    let staging = writer.staging_dir().to_path_buf();
    let (writer, totals) = match cut::cut(&cfg, &mapper, &mirror, None, writer, true).await {
        Ok(ok) => ok,
        Err(e) => {
            super::discard_staging(&staging);
            return Err(e);
        }
    };
    let read = totals.counts.staged;
    let rejected = totals.counts.rejected;
    if read != totals.counts.ingested + rejected {
        super::discard_staging(&staging);
        return Err(PipelineError::Internal(format!(
            "record accounting broke: read {read} != ingested {} + rejected {rejected}",
            totals.counts.ingested
        )));
    }
    let failure_reason = threshold_failure(read, rejected, cfg.partial_ingestion);
    let status = if failure_reason.is_some() {
        BatchStatus::Failed
    } else {
        BatchStatus::Success
    };
    let diagnostics = cfg.error_diagnostics || cfg.partial_ingestion.is_some();
    let mut totals = totals;
    totals.counts.fetched = read;
    let manifest = new_manifest(
        &cfg,
        &batch_id,
        (status, failure_reason.clone()),
        started_at,
        (None, None),
        &totals,
    );
    let (batch_dir, manifest) = commit(writer, manifest, diagnostics).await?;
    Ok(RunReport {
        batch_id,
        resource: cfg.resource.path().to_string(),
        dataset: cfg.dataset.clone(),
        status,
        failure_reason,
        counts: RecordCounts {
            fetched: read,
            staged: read,
            ingested: totals.counts.ingested,
            rejected,
            rejected_by_code: totals.counts.rejected_by_code,
            warnings: totals.counts.warnings,
            bytes_out: manifest.output_bytes + manifest.parts.iter().map(|p| p.bytes).sum::<u64>(),
            files: (manifest.files.len() + manifest.parts.iter().map(|p| p.files).sum::<usize>())
                as u64,
            ..Default::default()
        },
        requests: 0,
        retries: 0,
        throttled: 0,
        checkpoints: 0,
        duplicates_skipped: 0,
        trailing: Vec::new(),
        duration: started.elapsed(),
        parts: manifest.parts.iter().map(|p| p.batch_id.clone()).collect(),
        mirror_version: mirror.version(),
        batch_dir,
    })
}
