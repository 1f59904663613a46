//! The upload state of one local batch, `<batch_dir>/upload.json`, rewritten atomically (temporary
//! file + rename) after every acknowledged step, so an interrupted upload resumes where it stopped
//! and a batch is never ingested twice by accident.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::{io_err, UploadError};

/// The state file's name inside a batch directory.
pub const UPLOAD_STATE_FILE: &str = "upload.json";

/// Statuses after which Platform does nothing more with a batch (§4.3, lower-case as in payloads).
pub const FINAL_STATUSES: [&str; 9] = [
    "success",
    "active",
    "failed",
    "failure",
    "aborted",
    "abandoned",
    "inactive",
    "deleted",
    "archived",
];

/// True for a final status (case-insensitive).
pub fn is_final(status: &str) -> bool {
    FINAL_STATUSES
        .iter()
        .any(|s| s.eq_ignore_ascii_case(status))
}

/// True for the statuses meaning the data was ingested (`success`, `active`).
pub fn is_success(status: &str) -> bool {
    status.eq_ignore_ascii_case("success") || status.eq_ignore_ascii_case("active")
}

/// An earlier Platform batch of the same local batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviousUpload {
    /// Its Platform batch id.
    pub platform_batch_id: String,
    /// Its last known status (`None` if it was abandoned before completion).
    pub status: Option<String>,
}

/// What has been done for one local batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UploadState {
    /// The local batch id (the manifest's).
    pub batch_id: String,
    /// The Platform dataset id.
    pub dataset_id: String,
    /// The current Platform batch, once created.
    pub platform_batch_id: Option<String>,
    /// Platform batches this one replaces (`replay.predecessors`).
    #[serde(default)]
    pub predecessors: Vec<String>,
    /// Files Platform acknowledged in the current Platform batch.
    #[serde(default)]
    pub acknowledged: Vec<String>,
    /// `action=COMPLETE` acknowledged for the current Platform batch.
    #[serde(default)]
    pub completed: bool,
    /// The last status polled.
    pub status: Option<String>,
    /// The final status, once reached.
    pub final_status: Option<String>,
    /// The batch's `metrics` from the catalog, once final.
    #[serde(default)]
    pub metrics: Option<serde_json::Value>,
    /// The batch's `errors` from the catalog, once final.
    #[serde(default)]
    pub errors: Vec<serde_json::Value>,
    /// Earlier Platform batches of this local batch (replayed, failed or abandoned).
    #[serde(default)]
    pub previous: Vec<PreviousUpload>,
    /// Last write (RFC 3339).
    pub updated_at: String,
}

impl UploadState {
    /// A fresh state: nothing sent yet.
    pub fn new(batch_id: &str, dataset_id: &str) -> Self {
        UploadState {
            batch_id: batch_id.to_string(),
            dataset_id: dataset_id.to_string(),
            platform_batch_id: None,
            predecessors: Vec::new(),
            acknowledged: Vec::new(),
            completed: false,
            status: None,
            final_status: None,
            metrics: None,
            errors: Vec::new(),
            previous: Vec::new(),
            updated_at: now(),
        }
    }

    /// The state file of a batch directory.
    pub fn path(batch_dir: &Path) -> PathBuf {
        batch_dir.join(UPLOAD_STATE_FILE)
    }

    /// Reads the state, `None` if the batch was never uploaded.
    pub fn load(batch_dir: &Path) -> Result<Option<Self>, UploadError> {
        let path = Self::path(batch_dir);
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err("reading", &path)(e)),
        };
        serde_json::from_slice(&text)
            .map(Some)
            .map_err(|e| UploadError::Batch {
                dir: batch_dir.display().to_string(),
                reason: format!("{UPLOAD_STATE_FILE} is not valid ({e}); it records what was sent to Platform, so fix it rather than deleting it"),
            })
    }

    /// Writes the state atomically.
    pub fn save(&mut self, batch_dir: &Path) -> Result<(), UploadError> {
        self.updated_at = now();
        let path = Self::path(batch_dir);
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_vec_pretty(self).expect("state serializes");
        std::fs::write(&tmp, text).map_err(io_err("writing", &tmp))?;
        std::fs::rename(&tmp, &path).map_err(io_err("renaming", &path))?;
        Ok(())
    }

    /// True if the current Platform batch ingested the data.
    pub fn succeeded(&self) -> bool {
        self.final_status.as_deref().is_some_and(is_success)
    }

    /// Moves the current Platform batch to [`UploadState::previous`] and starts over with
    /// `predecessors`.
    pub fn restart(&mut self, predecessors: Vec<String>) {
        if let Some(id) = self.platform_batch_id.take() {
            self.previous.push(PreviousUpload {
                platform_batch_id: id,
                status: self.final_status.clone().or(self.status.clone()),
            });
        }
        self.predecessors = predecessors;
        self.acknowledged.clear();
        self.completed = false;
        self.status = None;
        self.final_status = None;
        self.metrics = None;
        self.errors.clear();
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
