//! `stripe-xdm upload`: send a committed batch to a Platform dataset with the Batch Ingestion API.

use std::path::PathBuf;

use clap::Args;
use stripe_xdm::upload::{
    upload_batch, PlatformCredentials, UploadConfig, UploadError, UploadOptions,
};

use super::CliError;

/// Options of `upload`.
#[derive(Debug, Args)]
pub struct UploadArgs {
    /// The committed batch directory (`<out>/<dataset>/batches/<id>`).
    pub batch: PathBuf,
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

/// `stripe-xdm upload`.
pub async fn upload(a: UploadArgs) -> Result<u8, CliError> {
    let credentials = match &a.credentials_file {
        Some(path) => PlatformCredentials::from_file(path),
        None => PlatformCredentials::from_env(),
    }
    .map_err(upload_error)?;
    let mut cfg = UploadConfig::new(a.dataset_id.clone(), credentials);
    cfg.base_url = a.base_url.clone();
    cfg.poll_interval = std::time::Duration::from_secs(a.poll_interval.max(1));
    let opts = UploadOptions {
        dry_run: a.dry_run,
        replay: a.replay,
    };
    let report = upload_batch(&cfg, &a.batch, opts)
        .await
        .map_err(upload_error)?;
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("report serializes")
        );
    } else if report.dry_run {
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
    Ok(if report.dry_run || report.succeeded() {
        0
    } else {
        super::EXIT_DATA
    })
}
