//! Sending committed batches to Platform: which batches of a dataset are still to send, and
//! Platform's answer recorded on the catalog run that made each batch.

use std::path::{Path, PathBuf};

use super::{AppError, Result};
use crate::catalog::{Catalog, RunUpload};
use crate::sink::{Manifest, MANIFEST_FILE};
use crate::upload::{upload_batch, UploadConfig, UploadOptions, UploadReport, UploadState};

/// The batch id of `dir` when it is a committed, successful batch without records (a run whose
/// window held nothing): there is nothing to send, and Platform fails a batch without files.
pub fn without_records(dir: &Path) -> Option<String> {
    let m = Manifest::read(&dir.join(MANIFEST_FILE)).ok()?;
    let empty = m.files.is_empty() && m.parts.is_empty();
    (empty && m.status == crate::sink::BatchStatus::Success).then_some(m.batch_id)
}

/// Committed batches of a dataset directory (`<out>/<dataset>`) with rows that Platform has not
/// ingested yet, oldest first (by manifest time). A further batch of a split run counts only
/// once the run's first batch is committed (a crash in between leaves it to the resumed run).
pub fn pending_batches(dataset_dir: &Path) -> Result<Vec<PathBuf>> {
    let batches = dataset_dir.join("batches");
    let entries = std::fs::read_dir(&batches).map_err(|e| {
        AppError::Invalid(format!(
            "{} is not a dataset directory (no batches/ folder: {e})",
            dataset_dir.display()
        ))
    })?;
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let dir = entry.path();
        // Only committed batches with rows: Platform refuses a batch without files.
        match Manifest::read(&dir.join(MANIFEST_FILE)) {
            Ok(m)
                if m.part_of
                    .as_ref()
                    .is_some_and(|p| !batches.join(p).join(MANIFEST_FILE).exists()) =>
            {
                continue
            }
            Ok(m) if !m.files.is_empty() => {}
            _ => continue,
        }
        let done = UploadState::load(&dir)
            .ok()
            .flatten()
            .is_some_and(|s| s.succeeded());
        if !done {
            let modified = std::fs::metadata(dir.join(MANIFEST_FILE))
                .and_then(|m| m.modified())
                .ok();
            found.push((modified, dir));
        }
    }
    found.sort();
    Ok(found.into_iter().map(|(_, d)| d).collect())
}

/// Sends each batch directory in turn (stopping at the first that cannot be sent), records
/// Platform's answer on the catalog run that made it when `cat` is given and knows the batch,
/// and hands each report to `sent` as soon as it is there.
pub async fn upload_batches(
    cfg: &UploadConfig,
    dirs: &[PathBuf],
    opts: UploadOptions,
    mut cat: Option<&mut Catalog>,
    mut sent: impl FnMut(&UploadReport),
) -> Result<Vec<UploadReport>> {
    let mut reports = Vec::with_capacity(dirs.len());
    for dir in dirs {
        let report = upload_batch(cfg, dir, opts).await?;
        if let (false, Some(cat)) = (report.dry_run, cat.as_deref_mut()) {
            record(cat, &report);
        }
        sent(&report);
        reports.push(report);
    }
    Ok(reports)
}

/// Records Platform's answer on the catalog run that made the batch, when there is one. A
/// catalog that cannot take it is logged, not fatal: the batch's own upload state is the record.
pub fn record(cat: &mut Catalog, report: &UploadReport) {
    let Ok(Some(run)) = cat.run_by_batch(&report.batch_id) else {
        return;
    };
    let upload = RunUpload {
        platform_batch_id: report.platform_batch_id.clone(),
        status: report.status.clone().unwrap_or_else(|| "unknown".into()),
        errors: report
            .errors
            .iter()
            .map(|e| {
                format!(
                    "{}: {}",
                    e.code.as_deref().unwrap_or("?"),
                    e.description.as_deref().unwrap_or("")
                )
            })
            .collect(),
        uploaded_at: crate::runner::now(),
    };
    if let Err(e) = cat.record_upload(run.id, &upload) {
        tracing::warn!(run = run.id, error = %e, "cannot record the upload in the catalog");
    }
}
