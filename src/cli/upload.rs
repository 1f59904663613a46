//! `stripe-xdm upload`: send committed batches to a Platform dataset with the Batch Ingestion
//! API — one batch, or every batch of a dataset not yet ingested — and record Platform's status
//! on the catalog run that made each batch.

use std::path::{Path, PathBuf};

use clap::Args;
use stripe_xdm::catalog::{Catalog, RunUpload, CATALOG_FILE};
use stripe_xdm::sink::{Manifest, MANIFEST_FILE};
use stripe_xdm::upload::{
    upload_batch, PlatformCredentials, UploadConfig, UploadError, UploadOptions, UploadReport,
    UploadState,
};

use super::flows::HomeArgs;
use super::CliError;

/// Options of `upload`.
#[derive(Debug, Args)]
pub struct UploadArgs {
    /// A committed batch directory (`<out>/<dataset>/batches/<id>`), or with --all a dataset
    /// directory (`<out>/<dataset>`).
    pub batch: PathBuf,
    /// Upload every committed batch of the dataset directory that Platform has not ingested yet,
    /// oldest first.
    #[arg(long)]
    pub all: bool,
    /// The Platform dataset id to ingest into.
    #[arg(long)]
    pub dataset_id: String,
    /// Credentials file (JSON or KEY=value lines: AEP_ACCESS_TOKEN, AEP_API_KEY, AEP_ORG_ID,
    /// AEP_SANDBOX). Default: those environment variables. Never on the command line.
    #[arg(long)]
    pub credentials_file: Option<PathBuf>,
    /// Platform base URL.
    #[arg(long, default_value = stripe_xdm::upload::DEFAULT_BASE_URL)]
    pub base_url: String,
    /// Print the requests that would be made, send nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Send a batch again on purpose: a new Platform batch replacing the previous one.
    #[arg(long)]
    pub replay: bool,
    /// Seconds between batch status polls.
    #[arg(long, default_value_t = 10)]
    pub poll_interval: u64,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    home: HomeArgs,
}

fn upload_error(e: UploadError) -> CliError {
    match e {
        UploadError::Http { .. }
        | UploadError::RetriesExhausted { .. }
        | UploadError::PollTimeout { .. }
        | UploadError::InvalidResponse { .. }
        | UploadError::Io { .. } => CliError::failed(e),
        other => CliError::usage(other),
    }
}

/// Committed batches of a dataset directory with rows and not yet ingested, oldest first (by
/// manifest time).
fn pending_batches(dataset_dir: &Path) -> Result<Vec<PathBuf>, CliError> {
    let batches = dataset_dir.join("batches");
    let entries = std::fs::read_dir(&batches).map_err(|e| {
        CliError::usage(format!(
            "{} is not a dataset directory (no batches/ folder: {e})",
            dataset_dir.display()
        ))
    })?;
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let dir = entry.path();
        // Only committed batches with rows: Platform refuses a batch without files.
        match Manifest::read(&dir.join(MANIFEST_FILE)) {
            // A further batch of a split run counts only once the run's first batch is
            // committed (a crash in between leaves it to be replaced by the resumed run).
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

/// Records Platform's answer on the catalog run that made the batch, when there is one.
fn record(home: &HomeArgs, report: &UploadReport) {
    let Ok(cat) = home.open_existing() else {
        return;
    };
    let Some(mut cat) = cat else { return };
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
        uploaded_at: stripe_xdm::runner::now(),
    };
    if let Err(e) = cat.record_upload(run.id, &upload) {
        tracing::warn!(run = run.id, error = %e, "cannot record the upload in the catalog");
    }
}

fn print(report: &UploadReport, json: bool) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(report).expect("report serializes")
        );
    } else if report.dry_run {
        println!("batch {}:", report.batch_id);
        for r in &report.planned {
            println!("{r}");
        }
    } else {
        println!(
            "batch {} → Platform batch {}: status {}, {} files sent, {} already acknowledged, {} bytes, {} requests ({} retries)",
            report.batch_id,
            report.platform_batch_id.as_deref().unwrap_or("-"),
            report.status.as_deref().unwrap_or("unknown"),
            report.uploaded.len(),
            report.skipped.len(),
            report.bytes_sent,
            report.requests,
            report.retries
        );
        for e in &report.errors {
            println!(
                "  {} {}",
                e.code.as_deref().unwrap_or(""),
                e.description.as_deref().unwrap_or("")
            );
        }
    }
}

/// `stripe-xdm upload`.
pub async fn upload(a: UploadArgs) -> Result<u8, CliError> {
    let credentials = match &a.credentials_file {
        Some(path) => PlatformCredentials::from_file(path),
        None => PlatformCredentials::from_env(),
    }
    .map_err(upload_error)?;
    let mut cfg = UploadConfig::new(a.dataset_id.clone(), credentials);
    cfg.base_url = a.base_url.trim_end_matches('/').to_string();
    cfg.poll_interval = std::time::Duration::from_secs(a.poll_interval.max(1));
    let opts = UploadOptions {
        dry_run: a.dry_run,
        replay: a.replay,
    };
    let batches = if a.all {
        let list = pending_batches(&a.batch)?;
        if list.is_empty() && !a.json {
            println!(
                "every committed batch of {} is already ingested",
                a.batch.display()
            );
        }
        list
    } else {
        vec![a.batch.clone()]
    };
    let mut all_ok = true;
    let mut reports = Vec::new();
    for dir in &batches {
        let report = upload_batch(&cfg, dir, opts).await.map_err(upload_error)?;
        if !report.dry_run {
            record(&a.home, &report);
        }
        all_ok &= report.dry_run || report.succeeded();
        if a.all && a.json {
            reports.push(report);
        } else {
            print(&report, a.json);
        }
    }
    if a.all && a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&reports).expect("reports serialize")
        );
    }
    Ok(if all_ok { 0 } else { super::EXIT_DATA })
}

impl HomeArgs {
    /// The catalog, only when one exists already (uploads never create one).
    pub(super) fn open_existing(&self) -> Result<Option<Catalog>, CliError> {
        let home = match &self.home {
            Some(h) => h.clone(),
            None => match std::env::var_os("HOME") {
                Some(h) if !h.is_empty() => PathBuf::from(h).join(".stripe-xdm"),
                _ => return Ok(None),
            },
        };
        if !home.join(CATALOG_FILE).exists() {
            return Ok(None);
        }
        self.open().map(Some)
    }
}
