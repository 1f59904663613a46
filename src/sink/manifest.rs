//! The manifest of a batch: what it holds, how it was made, and how it ended.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{io_err, SinkError};

/// The manifest's file name inside a batch directory.
pub const MANIFEST_FILE: &str = "manifest.json";

/// How a batch ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BatchStatus {
    /// Committed: its files are ready for upload.
    Success,
    /// The run failed (threshold exceeded or an error); no accepted file is promoted.
    Failed,
}

/// One Parquet file of a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// File name inside the batch directory.
    pub name: String,
    /// Rows in it.
    pub records: u64,
    /// Its size in bytes.
    pub bytes: u64,
}

/// One error summary line, in Platform's batch `errors` shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchError {
    /// Platform-style code (`INGEST-1401-400`, …).
    pub code: String,
    /// Human message.
    pub message: String,
    /// Rows with this code, when counted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record_count: Option<u64>,
}

/// Counts of a batch, named as Platform's batch `metrics`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Metrics {
    /// Records fetched from Stripe.
    pub input_record_count: u64,
    /// Records accepted into the batch.
    pub output_record_count: u64,
    /// Records rejected.
    pub failed_record_count: u64,
    /// Fields nulled by a failed conversion in accepted rows.
    pub warning_count: u64,
    /// Bytes of Stripe responses read.
    pub input_byte_size: u64,
}

/// A batch manifest (`manifest.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// The batch id.
    pub batch_id: String,
    /// The dataset (output folder name).
    pub dataset: String,
    /// The Stripe resource path.
    pub resource: String,
    /// The XDM schema's `$id` or title.
    pub schema: String,
    /// Where the mapping came from.
    pub mapping: String,
    /// How the batch ended.
    pub status: BatchStatus,
    /// Why it failed, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
    /// Start of the run (RFC 3339).
    pub started_at: String,
    /// End of the run (RFC 3339).
    pub completed_at: String,
    /// The `created` window fetched: `[gte, lt)` in unix seconds.
    pub window: (Option<i64>, Option<i64>),
    /// Error diagnostics on.
    pub error_diagnostics: bool,
    /// Partial ingestion threshold in percent, when partial ingestion is on.
    pub partial_ingestion_percent: Option<f64>,
    /// Counts.
    pub metrics: Metrics,
    /// Error summary, Platform-style.
    pub errors: Vec<BatchError>,
    /// The accepted Parquet files (empty for a failed batch).
    pub files: Vec<FileEntry>,
    /// Sum of the files' sizes.
    pub output_bytes: u64,
    /// The rejected-rows Parquet file, when there were rejected rows.
    pub rejected_file: Option<String>,
    /// Platform-style diagnostics files written (`row_errors/…`).
    pub diagnostics: Vec<String>,
    /// For a batch made by `errors replay`: the batch whose rejected rows it re-mapped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay_of: Option<String>,
    /// Records the run staged in the mirror (runs that stage; `None` for replays and older
    /// batches).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staged: Option<u64>,
    /// Records of objects changed since an earlier run (read through Stripe's events).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub updated: u64,
    /// Objects deleted in Stripe, listed in the batch's `deletes.parquet`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub deleted: u64,
    /// The further batches this run's accepted rows were split into to stay within Platform's
    /// per-batch limits (this manifest's `metrics` are the whole run's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<PartEntry>,
    /// For a further batch of a split run: the run's first batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part_of: Option<String>,
}

/// A further batch of a run split to Platform's limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartEntry {
    /// Its batch id (`<run batch id>-<n>`), a folder beside the first batch.
    pub batch_id: String,
    /// Accepted files in it.
    pub files: usize,
    /// Accepted records in it.
    pub records: u64,
    /// Bytes of its files.
    pub bytes: u64,
}

/// A manifest that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("manifest {path} {reason}")]
pub struct ManifestError {
    /// The file.
    pub path: String,
    /// What is wrong, as a predicate ("is not valid: …", "does not exist: …").
    pub reason: String,
}

impl From<ManifestError> for SinkError {
    fn from(e: ManifestError) -> Self {
        SinkError::Io {
            action: "reading",
            path: e.path.into(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, e.reason),
        }
    }
}

impl Manifest {
    /// Writes the manifest as pretty JSON, via a temporary file and a rename.
    pub fn write(&self, path: &Path) -> Result<(), SinkError> {
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_vec_pretty(self).expect("manifest serializes");
        std::fs::write(&tmp, text).map_err(io_err("writing", &tmp))?;
        std::fs::rename(&tmp, path).map_err(io_err("renaming", path))?;
        Ok(())
    }

    /// Reads a manifest.
    pub fn read(path: &Path) -> Result<Manifest, ManifestError> {
        let err = |reason: String| ManifestError {
            path: path.display().to_string(),
            reason,
        };
        let text = std::fs::read(path).map_err(|e| {
            err(match e.kind() {
                std::io::ErrorKind::NotFound => {
                    "does not exist: the folder is not a committed batch".to_string()
                }
                _ => format!("cannot be read: {e}"),
            })
        })?;
        serde_json::from_slice(&text).map_err(|e| err(format!("is not valid: {e}")))
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}
