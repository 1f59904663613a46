//! The application layer: the rules of accounts, dataflows and inspection, shared by every
//! front end (the CLI, the web console). A front end parses, calls one of these functions and
//! shows the result; it holds no rule of its own.
//!
//! ```text
//! cli/ ─┐                       ┌─▶ catalog (accounts, datasets, dataflows, runs)
//!       ├─▶ app (this module) ──┼─▶ source (the Stripe client), map (checks, previews)
//! console/ ┘                    └─▶ runner (runs), inspect (SQL over mirror and rejects)
//! ```

pub mod accounts;
pub mod dataflows;
pub mod oneoff;
pub mod platform;
pub mod preview;
pub mod rejected;
pub mod runs;
pub mod sql;
pub mod upload;

pub use accounts::{add_account, client_for, test_account, ApiOverrides, NewAccount};
pub use dataflows::{
    create_dataflows, update_dataflow, DataflowChanges, NewDataflowRequest, Targets, Updated,
};
pub use preview::{first_page, mapping_rows, page_rows, PagePreview};

use crate::catalog::CatalogError;
use crate::schedule::ScheduleError;

/// Why an application call refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The catalog refused (unknown name, conflict, stale etag, bad option) or failed.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// A schedule breaks one of Platform's rules.
    #[error("dataflow {dataflow:?}: {source}")]
    Schedule {
        /// The dataflow.
        dataflow: String,
        /// The rule broken.
        #[source]
        source: ScheduleError,
    },
    /// A mapping's output does not fit the dataset's schema.
    #[error("dataflow {dataflow:?}: mapping {origin} does not fit dataset {dataset:?}'s schema ({} error(s)):\n  {}", problems.len(), problems.join("\n  "))]
    Misfit {
        /// The dataflow.
        dataflow: String,
        /// Where the mapping came from.
        origin: String,
        /// The dataset.
        dataset: String,
        /// What does not fit, one line each.
        problems: Vec<String>,
    },
    /// Stripe (or the simulator) refused or could not be reached.
    #[error("{what}: {source}")]
    Stripe {
        /// What was being done, naming the account.
        what: String,
        /// Stripe's answer.
        #[source]
        source: Box<crate::source::SourceError>,
    },
    /// A run of a dataflow could not start or was interrupted.
    #[error(transparent)]
    Runner(#[from] crate::runner::RunnerError),
    /// A mapping file could not be read or compiled.
    #[error(transparent)]
    Mapping(#[from] crate::map::MapError),
    /// A replay of rejected rows failed.
    #[error("{what}: {source}")]
    Replay {
        /// The batch or dataflow replayed.
        what: String,
        /// Why.
        #[source]
        source: crate::pipeline::PipelineError,
    },
    /// A one-off run or a remap failed.
    #[error(transparent)]
    Pipeline(#[from] crate::pipeline::PipelineError),
    /// Platform refused or could not be reached.
    #[error(transparent)]
    Upload(#[from] crate::upload::UploadError),
    /// A query over the mirror or the batches failed.
    #[error(transparent)]
    Inspect(#[from] crate::inspect::InspectError),
    /// A local file could not be read or written.
    #[error("{what}: {source}")]
    Io {
        /// What was being done, naming the file.
        what: String,
        /// The operating system's answer.
        #[source]
        source: std::io::Error,
    },
    /// An XDM schema (a file, or a built-in one) that does not parse.
    #[error("XDM schema {origin}: {source}")]
    Schema {
        /// The file, or `built-in sql/<resource>.xdm.json`.
        origin: String,
        /// The parser's answer (with line and column for JSON that does not parse).
        #[source]
        source: crate::xdm::XdmError,
    },
    /// A dataflow's setting that is refused (an upload or alert target), with the reason as
    /// its source.
    #[error("dataflow {dataflow:?}: {source}")]
    Dataflow {
        /// The dataflow.
        dataflow: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A flag's value that is refused (a credentials file that cannot be read), with the reason.
    #[error("{flag}: {source}")]
    Flag {
        /// The flag, e.g. `--platform-credentials-file`.
        flag: &'static str,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Bad input, with a message naming it.
    #[error("{0}")]
    Invalid(String),
}

impl AppError {
    /// Whether the caller should fix its input or configuration (rather than retry later).
    pub fn is_usage(&self) -> bool {
        match self {
            // The same rule as a run's (a 404 or a refused key is usage in `preview` and
            // `accounts test` as in `run`; an outage is not).
            AppError::Stripe { source, .. } => source.is_usage(),
            AppError::Runner(e) => !matches!(e, crate::runner::RunnerError::Interrupted { .. }),
            AppError::Pipeline(e) | AppError::Replay { source: e, .. } => e.is_usage(),
            AppError::Upload(e) => e.is_usage(),
            AppError::Io { .. } => false,
            _ => true,
        }
    }
}

impl AppError {
    /// Stripe's `source` while doing `what`.
    pub fn stripe(what: impl Into<String>, source: crate::source::SourceError) -> Self {
        AppError::Stripe {
            what: what.into(),
            source: Box::new(source),
        }
    }
}

/// Makes sure `path`, given as `flag` (`--out`), is a folder this process can write to,
/// creating it (and its parents) when missing: a file in its place, or a folder that cannot be
/// created, is refused naming the flag and the path, before anything is fetched.
pub fn output_folder(flag: &str, path: &std::path::Path) -> Result<()> {
    let refuse = |reason: String| AppError::Invalid(format!("{flag} {}: {reason}", path.display()));
    if path.exists() && !path.is_dir() {
        return Err(refuse("not a folder".into()));
    }
    std::fs::create_dir_all(path).map_err(|e| refuse(format!("cannot create the folder ({e})")))?;
    let probe = path.join(format!(".stripe-xdm-write-test-{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(|e| refuse(format!("cannot write in the folder ({e})")))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// The application layer's result.
pub type Result<T, E = AppError> = std::result::Result<T, E>;

/// Parses a time given as unix seconds, RFC 3339, or a UTC date (`YYYY-MM-DD`); `what` names
/// the input in the error.
pub fn parse_time(what: &str, value: &str) -> Result<i64> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<i64>() {
        return Ok(secs);
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(value) {
        return Ok(t.timestamp());
    }
    // A browser's datetime-local field: minutes, no zone (taken as UTC).
    if let Ok(t) = chrono::NaiveDateTime::parse_from_str(value, "%Y-%m-%dT%H:%M") {
        return Ok(t.and_utc().timestamp());
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        return Ok(d
            .and_hms_opt(0, 0, 0)
            .expect("midnight")
            .and_utc()
            .timestamp());
    }
    Err(AppError::Invalid(format!(
        "{what} {value:?} is not a time: use unix seconds, RFC 3339 (2026-01-31T00:00:00Z) or YYYY-MM-DD"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::SourceError;

    fn stripe(status: u16) -> SourceError {
        SourceError::refused(status)
    }

    #[test]
    fn stripe_errors_are_usage_by_the_same_rule_as_a_run() {
        // A 404 (a resource or account that does not exist) is fixed by the caller, in
        // `preview` and `accounts test` as in `run`.
        assert!(AppError::stripe("previewing charges", stripe(404)).is_usage());
        assert!(AppError::stripe("testing account", stripe(401)).is_usage());
        // Retries that ran out (an outage) are tried again later.
        let outage = SourceError::RetriesExhausted {
            endpoint: "GET /v1/charges".into(),
            attempts: 5,
            last_status: Some(503),
            request_id: None,
            last_error: "503".into(),
        };
        assert!(!AppError::stripe("previewing charges", outage).is_usage());
        assert!(!AppError::stripe("previewing charges", stripe(429)).is_usage());
    }

    #[test]
    fn an_output_folder_must_be_a_writable_folder() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("passwd");
        std::fs::write(&file, "root:x:0:0").unwrap();
        let e = output_folder("--out", &file).unwrap_err();
        assert!(e.is_usage());
        assert_eq!(
            e.to_string(),
            format!("--out {}: not a folder", file.display())
        );
        let e = output_folder("--out", &file.join("below")).unwrap_err();
        assert!(e.to_string().contains("cannot create the folder"), "{e}");
        // A new folder is created, with its parents, and left empty.
        let new = tmp.path().join("a/b");
        output_folder("--out", &new).unwrap();
        assert_eq!(std::fs::read_dir(&new).unwrap().count(), 0);
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "root:x:0:0");
    }
}
