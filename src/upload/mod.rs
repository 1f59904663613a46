//! Upload: committed batches into a Platform dataset with the Batch Ingestion API.
//!
//! ```text
//! <out>/<dataset>/batches/<id>/manifest.json + part-*.parquet
//!    │  limits::check_batch — Platform's limits, locally, before any request
//!    ▼
//! POST /data/foundation/import/batches                       → Platform batch id (loading)
//! PUT  …/batches/{id}/datasets/{dataset}/files/{name}         (≤ chunk_threshold)
//! POST …/files/{name}?action=INITIALIZE, PATCH chunks with Content-Range, POST ?action=COMPLETE
//! POST …/batches/{id}?action=COMPLETE
//! GET  /data/foundation/catalog/batches/{id}                  until a final status
//! ```
//!
//! Every acknowledged step is recorded in `<batch_dir>/upload.json` ([`UploadState`]) before the
//! next one starts, so an interrupted upload resumes with the files not yet acknowledged, and a
//! batch ingested successfully is refused unless it is replayed on purpose (a new Platform batch
//! with `replay.predecessors`). `loopback` (feature `test-support`) is a local Platform for tests.

mod client;
mod credentials;
mod error;
pub mod ims;
pub mod limits;
#[cfg(feature = "test-support")]
pub mod loopback;
pub mod registry;
mod run;
mod state;

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use client::{Content, PlatformClient};
pub use credentials::{
    PlatformCredentials, ENV_ACCESS_TOKEN, ENV_API_KEY, ENV_CLIENT_SECRET, ENV_IMS_URL, ENV_ORG_ID,
    ENV_SANDBOX, ENV_SCOPES,
};
pub use error::UploadError;
pub use limits::{check_batch, CheckedBatch, CheckedFile};
pub use state::{
    is_final, is_success, PreviousUpload, UploadState, FINAL_STATUSES, UPLOAD_STATE_FILE,
};

/// Platform's production gateway.
pub const DEFAULT_BASE_URL: &str = "https://platform.adobe.io";
/// Files above this size use the large-file (chunked) upload: 256 MB.
pub const DEFAULT_CHUNK_THRESHOLD: u64 = 256 * 1024 * 1024;
/// Chunk size of the large-file upload.
pub const DEFAULT_CHUNK_SIZE: u64 = 64 * 1024 * 1024;
/// The import API's path prefix.
pub const IMPORT_PATH: &str = "/data/foundation/import";
/// The catalog API's path prefix.
pub const CATALOG_PATH: &str = "/data/foundation/catalog";

/// Where and how to upload.
#[derive(Debug, Clone)]
pub struct UploadConfig {
    /// Gateway base URL, without a trailing slash (default [`DEFAULT_BASE_URL`]).
    pub base_url: String,
    /// The Platform dataset id to ingest into.
    pub dataset_id: String,
    /// Gateway credentials.
    pub credentials: PlatformCredentials,
    /// Files larger than this use the chunked large-file upload.
    pub chunk_threshold: u64,
    /// Bytes per `PATCH` of the large-file upload.
    pub chunk_size: u64,
    /// Retries after the first attempt of each request (429, 5xx, network errors).
    pub max_retries: u32,
    /// First backoff, and the floor of every backoff.
    pub backoff_base: Duration,
    /// Cap of the exponential backoff.
    pub backoff_max: Duration,
    /// Timeout of one request (uploads of large files included).
    pub request_timeout: Duration,
    /// Wait between two status polls.
    pub poll_interval: Duration,
    /// Give up polling after this long (the state keeps the batch; a rerun polls again).
    pub poll_timeout: Duration,
}

impl UploadConfig {
    /// Defaults: production gateway, 256 MB threshold, 64 MB chunks, 6 retries from 1 s to 60 s,
    /// 10 min per request, polls every 10 s for up to 2 h.
    pub fn new(dataset_id: impl Into<String>, credentials: PlatformCredentials) -> Self {
        UploadConfig {
            base_url: DEFAULT_BASE_URL.to_string(),
            dataset_id: dataset_id.into(),
            credentials,
            chunk_threshold: DEFAULT_CHUNK_THRESHOLD,
            chunk_size: DEFAULT_CHUNK_SIZE,
            max_retries: 6,
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            request_timeout: Duration::from_secs(600),
            poll_interval: Duration::from_secs(10),
            poll_timeout: Duration::from_secs(2 * 3600),
        }
    }
}

/// How to upload.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UploadOptions {
    /// Only list the requests that would be made; no network, no state written.
    pub dry_run: bool,
    /// Re-send a batch already ingested: a new Platform batch replacing the previous one.
    pub replay: bool,
}

/// One request of a dry run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedRequest {
    /// `GET`, `POST`, `PUT`, `PATCH`.
    pub method: String,
    /// Path and query; `{BATCH_ID}` stands for the Platform batch id not yet known.
    pub path: String,
    /// Body bytes.
    pub bytes: u64,
    /// `Content-Range` of a chunk.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_range: Option<String>,
}

impl std::fmt::Display for PlannedRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:<5} {} ({} bytes", self.method, self.path, self.bytes)?;
        if let Some(r) = &self.content_range {
            write!(f, ", Content-Range: {r}")?;
        }
        f.write_str(")")
    }
}

/// The catalog's `metrics` of a batch (§3.5); absent ones are `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PlatformMetrics {
    /// Bytes of the files.
    pub input_byte_size: Option<u64>,
    /// Files.
    pub input_file_count: Option<u64>,
    /// Rows read.
    pub input_record_count: Option<u64>,
    /// Rows ingested.
    pub output_record_count: Option<u64>,
    /// Rows that failed.
    pub failed_record_count: Option<u64>,
}

/// One of the catalog's batch `errors`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PlatformError {
    /// `INGEST-1212-400`, `106`, …
    pub code: Option<String>,
    /// The text (`description`, or `message` in some payloads).
    #[serde(alias = "message")]
    pub description: Option<String>,
    /// Rows with this error, when counted.
    pub record_count: Option<u64>,
}

/// What an upload did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct UploadReport {
    /// The local batch id.
    pub batch_id: String,
    /// The Platform dataset.
    pub dataset_id: String,
    /// The Platform batch (`None` in a dry run that would create one).
    pub platform_batch_id: Option<String>,
    /// Platform batches replaced (`replay.predecessors`).
    pub predecessors: Vec<String>,
    /// A dry run: nothing was sent.
    pub dry_run: bool,
    /// The requests a dry run would make, in order.
    pub planned: Vec<PlannedRequest>,
    /// Files sent by this call.
    pub uploaded: Vec<String>,
    /// Files acknowledged by an earlier, interrupted call and not sent again.
    pub skipped: Vec<String>,
    /// File bytes sent by this call.
    pub bytes_sent: u64,
    /// The final status (`success`, `failed`, …); `None` in a dry run.
    pub status: Option<String>,
    /// The catalog's metrics.
    pub metrics: Option<PlatformMetrics>,
    /// The catalog's errors.
    pub errors: Vec<PlatformError>,
    /// HTTP requests sent (attempts).
    pub requests: u64,
    /// Retries among them.
    pub retries: u64,
}

impl UploadReport {
    /// True when Platform ingested the batch (`success` / `active`).
    pub fn succeeded(&self) -> bool {
        self.status.as_deref().is_some_and(is_success)
    }
}

/// Uploads the committed batch in `batch_dir` into `cfg.dataset_id`: checks the limits locally,
/// creates (or resumes) the Platform batch, sends the files not yet acknowledged, completes it and
/// polls until a final status, recording every step in `<batch_dir>/upload.json`.
///
/// A final status of `failed` is not an error: it is in the report (with Platform's errors), and
/// the next call starts a new Platform batch. A batch already ingested is refused with
/// [`UploadError::AlreadyUploaded`] unless `opts.replay`.
pub async fn upload_batch(
    cfg: &UploadConfig,
    batch_dir: &Path,
    opts: UploadOptions,
) -> Result<UploadReport, UploadError> {
    run::upload_batch(cfg, batch_dir, opts).await
}

/// Percent-encodes a path segment list (`/` kept), for file names and ids in URLs.
pub fn encode_path(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' | b'=' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
