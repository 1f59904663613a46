//! `stripe-xdm upload`: send committed batches to a Platform dataset with the Batch Ingestion
//! API — one batch, or every batch of a dataset not yet ingested — and record Platform's status
//! on the catalog run that made each batch.

use std::path::PathBuf;

use clap::Args;
use stripe_xdm::app;
use stripe_xdm::catalog::Catalog;
use stripe_xdm::upload::{
    PlatformCredentials, UploadConfig, UploadError, UploadOptions, UploadReport,
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
    if e.is_usage() {
        CliError::usage(e)
    } else {
        CliError::failed(e)
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
    // What the command line says is checked before any credential is read.
    app::upload::check_dataset_id("--dataset-id", &a.dataset_id)
        .and_then(|()| app::upload::check_base_url("--base-url", &a.base_url))
        .map_err(super::dataflows::app_err)?;
    if !a.all && app::upload::without_records(&a.batch).is_none() {
        stripe_xdm::upload::check_batch(&a.batch).map_err(upload_error)?;
    }
    let opts = UploadOptions {
        dry_run: a.dry_run,
        replay: a.replay,
    };
    let batches = if a.all {
        let list = app::upload::pending_batches(&a.batch).map_err(super::dataflows::app_err)?;
        if list.is_empty() && !a.json {
            println!(
                "nothing to upload: every committed batch of {} with records is already ingested (a batch without records is never sent: Platform fails a batch without files)",
                a.batch.display()
            );
        }
        list
    } else {
        if let Some(batch_id) = app::upload::without_records(&a.batch) {
            // What a dataflow run records for such a batch: skipped, nothing to send.
            let report = UploadReport {
                batch_id,
                dataset_id: a.dataset_id.clone(),
                dry_run: a.dry_run,
                status: Some(stripe_xdm::runner::UPLOAD_SKIPPED.into()),
                ..UploadReport::default()
            };
            if a.json {
                print(&report, true);
            } else {
                println!(
                    "batch {}: no records, nothing to send (Platform fails a batch without files)",
                    report.batch_id
                );
            }
            return Ok(0);
        }
        vec![a.batch.clone()]
    };
    let credentials = match &a.credentials_file {
        Some(path) => PlatformCredentials::from_file(path),
        None => PlatformCredentials::from_env(),
    };
    let credentials = match credentials {
        Ok(c) => c,
        // Nothing to send: nothing needs them.
        Err(_) if batches.is_empty() => PlatformCredentials::none(),
        // A dry run sends nothing: it shows the requests without credentials, and says so.
        Err(e) if a.dry_run => {
            eprintln!("note: {e}; a dry run sends nothing, but an upload needs them");
            PlatformCredentials::none()
        }
        Err(e) => return Err(upload_error(e)),
    };
    let mut cfg = UploadConfig::new(a.dataset_id.clone(), credentials);
    cfg.base_url = a.base_url.trim_end_matches('/').to_string();
    cfg.poll_interval = std::time::Duration::from_secs(a.poll_interval.max(1));
    // Recording uploads in the catalog is best effort: the batch's own upload state is the record.
    let mut cat = a.home.open_existing().ok().flatten();
    let one_json = a.all && a.json;
    let reports = app::upload::upload_batches(&cfg, &batches, opts, cat.as_mut(), |r| {
        if !one_json {
            print(r, a.json);
        }
    })
    .await
    .map_err(super::dataflows::app_err)?;
    let all_ok = reports.iter().all(|r| r.dry_run || r.succeeded());
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
        let Ok(home) = self.path() else {
            return Ok(None);
        };
        Catalog::open_existing(&home).map_err(super::flows::cat_err)
    }
}
