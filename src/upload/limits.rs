//! Platform's limits, checked locally before any request: a batch that would be refused is
//! refused here, with the file and the limit named.

use std::path::{Path, PathBuf};

use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::error::UploadError;
use crate::sink::{BatchStatus, Manifest, MANIFEST_FILE, MAX_BATCH_BYTES, MAX_FILES_PER_BATCH};

/// One file that passed the checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedFile {
    /// The name in the manifest (and on Platform).
    pub name: String,
    /// Its path on disk.
    pub path: PathBuf,
    /// Its size.
    pub bytes: u64,
    /// Rows in its Parquet footer.
    pub records: u64,
}

/// A batch that may be sent.
#[derive(Debug, Clone)]
pub struct CheckedBatch {
    /// The manifest.
    pub manifest: Manifest,
    /// The files, in manifest order.
    pub files: Vec<CheckedFile>,
    /// Their total size.
    pub total_bytes: u64,
}

/// Reads `<batch_dir>/manifest.json` and checks everything Platform would refuse: the batch
/// committed successfully, 1 ≤ files ≤ 1500, ≤ 100 GB, names usable in a URL path, each file
/// present, non-empty, of the size in the manifest, readable Parquet with the manifest's row
/// count, and all files with one schema. The checks run in that order (the cheap, manifest-only
/// ones first), and the first failure is returned.
pub fn check_batch(batch_dir: &Path) -> Result<CheckedBatch, UploadError> {
    let manifest_path = batch_dir.join(MANIFEST_FILE);
    let manifest = Manifest::read(&manifest_path).map_err(|e| UploadError::Batch {
        dir: batch_dir.display().to_string(),
        reason: e.to_string(),
    })?;
    let id = manifest.batch_id.clone();
    let limit = |file: Option<&str>, limit: String| UploadError::Limit {
        batch_id: id.clone(),
        file: file.map(str::to_string),
        limit,
    };
    if manifest.status != BatchStatus::Success {
        return Err(limit(
            None,
            format!(
                "its run failed{} and a failed batch is never uploaded",
                manifest
                    .failure_reason
                    .as_deref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            ),
        ));
    }
    let n = manifest.files.len();
    if n == 0 {
        return Err(limit(
            None,
            "it has no files (Platform fails a batch without files, error 133)".into(),
        ));
    }
    if n > MAX_FILES_PER_BATCH {
        return Err(limit(
            None,
            format!(
                "it has {n} files; Platform accepts at most {MAX_FILES_PER_BATCH} files per batch"
            ),
        ));
    }
    let declared: u64 = manifest.files.iter().map(|f| f.bytes).sum();
    if declared > MAX_BATCH_BYTES {
        return Err(limit(
            None,
            format!("its files total {declared} bytes; Platform accepts at most {MAX_BATCH_BYTES} bytes (100 GB) per batch"),
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    for f in &manifest.files {
        let bad = f.name.is_empty()
            || f.name.starts_with('/')
            || f.name.contains('\\')
            || f.name
                .split('/')
                .any(|s| s.is_empty() || s == "." || s == "..")
            || f.name
                .chars()
                .any(|c| c.is_control() || c == '?' || c == '#' || c == '%');
        if bad {
            return Err(limit(
                Some(&f.name),
                "the file name cannot be used in Platform's upload path".into(),
            ));
        }
        if !seen.insert(f.name.as_str()) {
            return Err(limit(
                Some(&f.name),
                "the file is listed twice in the manifest".into(),
            ));
        }
        if f.name == MANIFEST_FILE || manifest.rejected_file.as_deref() == Some(f.name.as_str()) {
            return Err(limit(
                Some(&f.name),
                "only accepted Parquet files may be uploaded".into(),
            ));
        }
    }

    let mut files = Vec::with_capacity(n);
    let mut schema: Option<(String, arrow::datatypes::SchemaRef)> = None;
    for f in &manifest.files {
        let path = batch_dir.join(&f.name);
        let meta = std::fs::metadata(&path)
            .map_err(|e| limit(Some(&f.name), format!("the file cannot be read: {e}")))?;
        let size = meta.len();
        if size == 0 {
            return Err(limit(
                Some(&f.name),
                "the file is empty (0 bytes); Platform does not ingest empty files".into(),
            ));
        }
        if size != f.bytes {
            return Err(limit(
                Some(&f.name),
                format!("the file has {size} bytes but the manifest says {}; the batch was changed after it was committed", f.bytes),
            ));
        }
        let file = std::fs::File::open(&path)
            .map_err(|e| limit(Some(&f.name), format!("the file cannot be opened: {e}")))?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| {
            limit(
                Some(&f.name),
                format!("the file is not readable Parquet: {e}"),
            )
        })?;
        let rows = builder.metadata().file_metadata().num_rows().max(0) as u64;
        if rows != f.records {
            return Err(limit(
                Some(&f.name),
                format!(
                    "the file holds {rows} rows but the manifest says {}",
                    f.records
                ),
            ));
        }
        let s = builder.schema().clone();
        match &schema {
            None => schema = Some((f.name.clone(), s)),
            Some((first, s0)) if s0.fields() != s.fields() => {
                return Err(limit(
                    Some(&f.name),
                    format!("its schema differs from {first}'s; all files of a batch must share the dataset's schema"),
                ));
            }
            Some(_) => {}
        }
        files.push(CheckedFile {
            name: f.name.clone(),
            path,
            bytes: size,
            records: rows,
        });
    }
    Ok(CheckedBatch {
        manifest,
        total_bytes: declared,
        files,
    })
}
