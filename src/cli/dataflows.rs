//! `stripe-xdm dataflows …`: create (flags or the wizard), list, show, review, run, update,
//! enable, disable, delete.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

use stripe_xdm::app;
use stripe_xdm::catalog::{Alerts, Catalog, RunStatus, UploadTarget};
use stripe_xdm::map::Mapping;
use stripe_xdm::runner::{self, RunnerConfig};
use stripe_xdm::schedule::{Frequency, Schedule};
use stripe_xdm::Resource;

use super::flows::{cat_err, ApiArgs, HomeArgs, JsonArgs, NameArgs, NameJsonArgs};
use super::flows_output as out;
use super::CliError;

type Result<T> = std::result::Result<T, CliError>;

/// `dataflows …`
#[derive(Debug, Args)]
pub struct DataflowsArgs {
    #[command(flatten)]
    home: HomeArgs,
    #[command(subcommand)]
    command: DataflowsCommand,
}

#[derive(Debug, Subcommand)]
enum DataflowsCommand {
    /// Create a dataflow (account → resource → mapping → dataset, on a schedule); without
    /// flags, in a terminal, a wizard asks for each step.
    Create(DataflowCreateArgs),
    /// List dataflows.
    List(JsonArgs),
    /// Show one dataflow.
    Show(NameJsonArgs),
    /// Print the Platform's Review page of a dataflow.
    Review(NameArgs),
    /// Run a dataflow now, over the window after its watermark (or resume its interrupted run).
    Run(DataflowRunArgs),
    /// Update a dataflow: name, description, schedule, mapping, alerts, upload, dataset options.
    Update(DataflowUpdateArgs),
    /// Enable a dataflow.
    Enable(NameArgs),
    /// Disable a dataflow.
    Disable(NameArgs),
    /// Delete a dataflow (its dataset's committed batches stay).
    Delete(DataflowDeleteArgs),
    /// Apply the dataflow's current mapping to its whole mirror: new batch(es), no Stripe request.
    Remap(super::mirror::RemapArgs),
}

/// Alerts to subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[allow(clippy::enum_variant_names)]
pub(super) enum AlertArg {
    RunStart,
    RunSuccess,
    RunFailure,
}

/// Where the alerts and the batches go (shared by create and update).
#[derive(Debug, Args, Default, Clone)]
pub(super) struct TargetArgs {
    /// Webhook receiving the alerts as a JSON POST (shown masked: its path may hold a token).
    #[arg(long, value_name = "URL")]
    pub alert_webhook: Option<String>,
    /// Local command receiving the alerts (payload JSON on stdin), run with `sh -c`.
    #[arg(long, value_name = "CMD")]
    pub alert_command: Option<String>,
    /// Upload each committed batch to this Platform dataset id.
    #[arg(long, value_name = "ID")]
    pub upload_dataset_id: Option<String>,
    /// Platform gateway for uploads (default: Platform's production gateway).
    #[arg(long, value_name = "URL")]
    pub platform_url: Option<String>,
    /// Platform credentials file for uploads (default: the AEP_* environment at run time).
    #[arg(long, value_name = "PATH")]
    pub platform_credentials_file: Option<PathBuf>,
}

impl TargetArgs {
    /// The targets of a new dataflow: `--platform-url` and `--platform-credentials-file` belong
    /// to an upload target, so they need `--upload-dataset-id`.
    fn targets(&self) -> Result<app::Targets> {
        if self.upload_dataset_id.is_none()
            && (self.platform_url.is_some() || self.platform_credentials_file.is_some())
        {
            return Err(CliError::usage(
                "--platform-url and --platform-credentials-file set where uploads go: they need --upload-dataset-id",
            ));
        }
        Ok(self.all_targets())
    }

    fn all_targets(&self) -> app::Targets {
        app::Targets {
            alert_webhook: self.alert_webhook.clone(),
            alert_command: self.alert_command.clone(),
            upload: self.upload_dataset_id.as_ref().map(|id| UploadTarget {
                dataset_id: id.clone(),
                base_url: self.platform_url.clone(),
                credentials_file: self
                    .platform_credentials_file
                    .as_ref()
                    .map(|p| absolute(p).display().to_string()),
            }),
        }
    }
}

fn absolute(p: &std::path::Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// Options of `dataflows create`; the wizard fills the same fields.
#[derive(Debug, Args, Default)]
pub(super) struct DataflowCreateArgs {
    /// Dataflow name (default: derived from the resource, e.g. "Stripe charges").
    pub name: Option<String>,
    /// Account name.
    #[arg(long)]
    pub account: Option<String>,
    /// Resource path: charges, subscriptions, refunds, balance_transactions, customers, prices.
    #[arg(long)]
    pub resource: Option<Resource>,
    /// Dataset name (created with `datasets create`).
    #[arg(long)]
    pub dataset: Option<String>,
    /// Mapping SQL file (default: the built-in sql/<resource>.sql).
    #[arg(long)]
    pub mapping: Option<PathBuf>,
    /// Tenant id substituted for ${tenant} in the mapping (default: the tenant of the dataset's
    /// schema, its one `_<tenant>` field, else `tenant`).
    #[arg(long, default_value = stripe_xdm::map::DEFAULT_TENANT, value_parser = super::parse_tenant)]
    pub tenant: String,
    /// Description.
    #[arg(long)]
    pub description: Option<String>,
    /// Alerts (repeatable).
    #[arg(long, value_enum)]
    pub alert: Vec<AlertArg>,
    #[command(flatten)]
    pub targets: TargetArgs,
    /// Frequency: once, minute, hour, day, week.
    #[arg(long, default_value = "once")]
    pub frequency: String,
    /// Units of frequency between runs (not with once; minute needs ≥ 15).
    #[arg(long)]
    pub interval: Option<u32>,
    /// First scheduled time, UTC (unix seconds, RFC 3339 or YYYY-MM-DD; default now).
    #[arg(long)]
    pub start_time: Option<String>,
    /// Do not backfill: the first run fetches only objects created from the start time on.
    #[arg(long)]
    pub no_backfill: bool,
    /// Read through this Stripe connected account (`Stripe-Account: acct_…`), recorded with the
    /// dataflow (default: the account's, else the key's own account). Its mirror is
    /// `<home>/mirror/<account>/<acct_…>/<resource>`. Repeat it to fan out: one dataflow
    /// `<name>.<acct_…>` per connected account, each with its own watermark and mirror.
    #[arg(long, value_name = "ACCT", value_parser = super::parse_account_id)]
    pub stripe_account: Vec<String>,
    /// Fan out over every connected account of the platform (`GET /v1/accounts`, read now):
    /// one dataflow `<name>.<acct_…>` each.
    #[arg(long, conflicts_with = "stripe_account")]
    pub all_connected_accounts: bool,
    /// Ask for every step with prompts, as the Platform wizard does (the default in a terminal
    /// when --account, --resource or --dataset is missing).
    #[arg(long)]
    pub interactive: bool,
}

/// Options of `dataflows run` (and `backfill`).
#[derive(Debug, Args, Clone)]
pub(super) struct DataflowRunArgs {
    /// Dataflow name.
    pub name: String,
    #[command(flatten)]
    pub api: ApiArgs,
    /// Output folder (default: <home>/data).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// `created` windows fetched at once (dense windows split while they run).
    #[arg(long, default_value_t = 4, value_parser = super::parse_concurrency)]
    pub concurrency: usize,
    /// Minimum seconds between checkpoints (each commits the staged records to the mirror and
    /// saves the window cursors; a kill -9 resumes from the last one).
    #[arg(long, default_value_t = 10)]
    pub checkpoint_secs: u64,
    /// Seconds between Platform batch status polls when the dataflow uploads.
    #[arg(long, default_value_t = 10)]
    pub poll_interval: u64,
    /// No progress display.
    #[arg(long, short)]
    pub quiet: bool,
    /// Print the run as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
struct DataflowUpdateArgs {
    /// Dataflow name.
    name: String,
    /// Refuse the update unless the dataflow's etag is still this (from `dataflows show`).
    #[arg(long)]
    if_match: Option<i64>,
    /// New name.
    #[arg(long)]
    rename: Option<String>,
    /// New description ("" clears it).
    #[arg(long)]
    description: Option<String>,
    /// New mapping SQL file: adds a mapping version; later runs use it.
    #[arg(long)]
    mapping: Option<PathBuf>,
    /// Tenant id substituted for ${tenant} in the new mapping (default: the tenant of the
    /// dataset's schema, its one `_<tenant>` field, else `tenant`).
    #[arg(long, default_value = stripe_xdm::map::DEFAULT_TENANT, value_parser = super::parse_tenant)]
    tenant: String,
    /// New alerts (repeatable; replaces the set).
    #[arg(long, value_enum)]
    alert: Vec<AlertArg>,
    /// Turn every alert off.
    #[arg(long, conflicts_with = "alert")]
    no_alerts: bool,
    #[command(flatten)]
    targets: TargetArgs,
    /// Remove the alert webhook.
    #[arg(long, conflicts_with = "alert_webhook")]
    no_alert_webhook: bool,
    /// Remove the alert command.
    #[arg(long, conflicts_with = "alert_command")]
    no_alert_command: bool,
    /// Stop uploading batches to Platform.
    #[arg(long, conflicts_with = "upload_dataset_id")]
    no_upload: bool,
    /// New frequency.
    #[arg(long)]
    frequency: Option<String>,
    /// New interval.
    #[arg(long)]
    interval: Option<u32>,
    /// New start time (only while the current one has not passed).
    #[arg(long)]
    start_time: Option<String>,
    /// The dataset's partial ingestion threshold in percent (turns partial ingestion on).
    #[arg(long, value_name = "PCT")]
    partial_ingestion: Option<f64>,
    /// Turn partial ingestion off on the dataset.
    #[arg(long, conflicts_with = "partial_ingestion")]
    no_partial_ingestion: bool,
    /// Turn error diagnostics on or off on the dataset.
    #[arg(long, value_name = "BOOL")]
    error_diagnostics: Option<bool>,
}

#[derive(Debug, Args)]
struct DataflowDeleteArgs {
    /// Dataflow name.
    name: String,
    /// Cancel a scheduled or running run instead of refusing.
    #[arg(long)]
    cancel: bool,
}

fn alerts_of(list: &[AlertArg]) -> Alerts {
    Alerts {
        run_start: list.contains(&AlertArg::RunStart),
        run_success: list.contains(&AlertArg::RunSuccess),
        run_failure: list.contains(&AlertArg::RunFailure),
    }
}

/// An application error as the CLI reports it.
pub(super) fn app_err(e: app::AppError) -> CliError {
    let code = if e.is_usage() {
        super::EXIT_USAGE
    } else {
        super::EXIT_DATA
    };
    CliError::chain(&e, code)
}

/// The name a dataflow gets when none is given.
pub(super) fn default_name(resource: Resource) -> String {
    app::dataflows::default_name(resource)
}

async fn create_dataflow(cat: &mut Catalog, mut x: DataflowCreateArgs) -> Result<()> {
    let missing = x.account.is_none() || x.resource.is_none() || x.dataset.is_none();
    if x.interactive || (missing && super::wizard::is_terminal()) {
        x = super::wizard::create(cat, x)?;
    }
    let (Some(account), Some(resource), Some(dataset_name)) =
        (x.account.clone(), x.resource, x.dataset.clone())
    else {
        return Err(CliError::usage(
            "dataflows create needs --account, --resource and --dataset (or run it in a terminal for the wizard)",
        ));
    };
    let frequency: Frequency = x.frequency.parse().map_err(|e| {
        let name = x.name.clone().unwrap_or_else(|| default_name(resource));
        CliError::usage(format!("dataflow {name:?}: {e}"))
    })?;
    let now = runner::now();
    let start_time = match &x.start_time {
        Some(t) => super::commands::parse_time("--start-time", t)?,
        None => now,
    };
    let tenant = app::dataflows::mapping_tenant(cat, &x.tenant, &dataset_name);
    let mapping = match &x.mapping {
        Some(p) => Mapping::from_file(p, &tenant).map_err(CliError::usage)?,
        None => Mapping::builtin(resource, &tenant),
    };
    let request = app::NewDataflowRequest {
        name: x.name.clone(),
        description: x.description.clone(),
        account,
        resource,
        dataset: dataset_name,
        new_dataset: None,
        mapping,
        alerts: alerts_of(&x.alert),
        schedule: Schedule {
            frequency,
            interval: x.interval,
            start_time,
            backfill: x.no_backfill.then_some(false),
        },
        targets: x.targets.targets()?,
        stripe_accounts: x.stripe_account.clone(),
        all_connected_accounts: x.all_connected_accounts,
    };
    let made = app::create_dataflows(cat, request, now)
        .await
        .map_err(app_err)?;
    for flow in &made {
        println!("dataflow {:?} created", flow.name);
    }
    Ok(())
}

async fn update_dataflow(cat: &mut Catalog, x: DataflowUpdateArgs) -> Result<()> {
    let mut changes = app::DataflowChanges {
        rename: x.rename.clone(),
        description: x
            .description
            .as_ref()
            .map(|d| (!d.is_empty()).then(|| d.clone())),
        interval: x.interval,
        ..Default::default()
    };
    if let Some(f) = &x.frequency {
        changes.frequency = Some(
            f.parse()
                .map_err(|e| CliError::usage(format!("dataflow {:?}: {e}", x.name)))?,
        );
    }
    if let Some(t) = &x.start_time {
        changes.start_time = Some(super::commands::parse_time("--start-time", t)?);
    }
    if let Some(p) = &x.mapping {
        let dataset = cat.dataflow(&x.name).map_err(cat_err)?.dataset;
        let tenant = app::dataflows::mapping_tenant(cat, &x.tenant, &dataset);
        changes.mapping = Some(Mapping::from_file(p, &tenant).map_err(CliError::usage)?);
    }
    if x.no_alerts {
        changes.alerts = Some(Alerts::default());
    } else if !x.alert.is_empty() {
        changes.alerts = Some(alerts_of(&x.alert));
    }
    if x.no_alert_webhook {
        changes.alert_webhook = Some(None);
    } else if let Some(w) = &x.targets.alert_webhook {
        changes.alert_webhook = Some(Some(w.clone()));
    }
    if x.no_alert_command {
        changes.alert_command = Some(None);
    } else if let Some(c) = &x.targets.alert_command {
        changes.alert_command = Some(Some(c.clone()));
    }
    if x.no_upload {
        changes.upload = Some(None);
    } else if x.targets.upload_dataset_id.is_some() {
        changes.upload = Some(x.targets.all_targets().upload);
    } else if x.targets.platform_url.is_some() || x.targets.platform_credentials_file.is_some() {
        let credentials = x.targets.platform_credentials_file.as_deref().map(absolute);
        let upload = app::dataflows::upload_settings(
            cat,
            &x.name,
            x.targets.platform_url.clone(),
            credentials.map(|p| p.display().to_string()),
        )
        .map_err(app_err)?;
        changes.upload = Some(Some(upload));
    }
    if x.no_partial_ingestion {
        changes.partial_ingestion = Some(None);
    } else if let Some(p) = x.partial_ingestion {
        changes.partial_ingestion = Some(Some(p));
    }
    changes.error_diagnostics = x.error_diagnostics;
    let new_mapping = changes.mapping.is_some();
    let app::Updated { dataflow, dataset } =
        app::update_dataflow(cat, &x.name, x.if_match, changes, runner::now())
            .await
            .map_err(app_err)?;
    let mut changed = vec![format!("etag {}", dataflow.etag)];
    if new_mapping {
        changed.push(format!("mapping v{}", dataflow.mapping_version));
    }
    if let Some(ds) = dataset {
        changed.push(format!(
            "dataset {:?}: partial ingestion {}, error diagnostics {}",
            ds.name,
            ds.partial_ingestion_percent
                .map_or("off".to_string(), |p| format!("{p}%")),
            if ds.error_diagnostics { "on" } else { "off" }
        ));
    }
    println!(
        "dataflow {:?} updated ({})",
        dataflow.name,
        changed.join(", ")
    );
    Ok(())
}

/// `dataflows run` (and `backfill`): the dataflow, or a fan-out's dataflows in turn.
pub(super) async fn run_dataflow(cat: &Catalog, x: DataflowRunArgs) -> Result<u8> {
    let names = app::runs::dataflows_to_run(cat, &x.name).map_err(app_err)?;
    if names == [x.name.as_str()] {
        return run_one(cat, &x.name, &x).await;
    }
    let mut code = 0;
    for name in names {
        match run_one(cat, &name, &x).await {
            Ok(c) => code = code.max(c),
            Err(e) => {
                eprintln!("dataflow {name:?}: {}", e.message);
                code = code.max(e.code);
            }
        }
    }
    Ok(code)
}

/// `dataflows run` of one dataflow.
async fn run_one(cat: &Catalog, name: &str, x: &DataflowRunArgs) -> Result<u8> {
    let mut cfg = RunnerConfig::new(cat.home());
    cfg.api_base_url = x.api.base_url.clone();
    cfg.requests_per_sec = x.api.rate;
    cfg.endpoint_requests_per_sec = x.api.endpoint_rate;
    if let Some(out) = &x.out {
        app::output_folder("--out", out).map_err(app_err)?;
        cfg.out_dir = out.clone();
    }
    cfg.concurrency = x.concurrency.max(1);
    cfg.checkpoint_every = std::time::Duration::from_secs(x.checkpoint_secs);
    cfg.upload_poll_interval = std::time::Duration::from_secs(x.poll_interval.max(1));
    let progress = super::progress::Display::new(x.quiet || x.json);
    cfg.progress = Some(progress.clone());
    // Ctrl-C stops the run at its next safe point; it stays resumable.
    let (cancel_tx, cancel_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        super::signals::wait_for_shutdown().await;
        let _ = cancel_tx.send(true);
    });
    let stripe_account = x.api.stripe_account.as_deref();
    let result = app::runs::run_now(cat, &cfg, name, stripe_account, Some(cancel_rx)).await;
    progress.finish();
    let result = result.map_err(app_err)?;
    out::run(&result.run, x.json);
    if !x.json {
        if result.resumed {
            println!("(resumed run {} from its last checkpoint)", result.run.id);
        }
        if let Some(rep) = &result.report {
            println!("written to {}", rep.batch_dir.display());
        }
    }
    if let Some(e) = result.error {
        return Err(if result.usage_error {
            CliError::usage(e)
        } else {
            CliError::failed(e)
        });
    }
    let uploaded_ok = result.run.upload.as_ref().is_none_or(runner::upload_ok);
    Ok(if result.run.status == RunStatus::Success && uploaded_ok {
        0
    } else {
        super::EXIT_DATA
    })
}

/// `stripe-xdm dataflows …`
pub async fn dataflows(a: DataflowsArgs) -> Result<u8> {
    let creates = matches!(a.command, DataflowsCommand::Create(_));
    let fresh = a.home.fresh().filter(|_| creates);
    super::flows::undone_if_refused(fresh, dataflows_in(a, creates)).await
}

async fn dataflows_in(a: DataflowsArgs, creates: bool) -> Result<u8> {
    let mut cat = a.home.open_for(creates)?;
    match a.command {
        DataflowsCommand::Create(x) => create_dataflow(&mut cat, x).await?,
        DataflowsCommand::List(j) => {
            let list = cat.list_dataflows().map_err(cat_err)?;
            out::dataflows(&list, j.json);
        }
        DataflowsCommand::Show(x) => {
            let flow = cat.dataflow(&x.name).map_err(cat_err)?;
            out::dataflow(&flow, x.json);
        }
        DataflowsCommand::Review(x) => {
            let flow = cat.dataflow(&x.name).map_err(cat_err)?;
            let dataset = cat.dataset(&flow.dataset).map_err(cat_err)?;
            let title = dataset
                .schema()
                .ok()
                .and_then(|s| s.title().map(str::to_string));
            let columns = Some(
                stripe_xdm::decode::arrow_schema(flow.resource)
                    .fields()
                    .len(),
            );
            out::review(&flow, &dataset, title.as_deref(), columns);
        }
        DataflowsCommand::Run(x) => return run_dataflow(&cat, x).await,
        DataflowsCommand::Remap(x) => return super::mirror::remap(cat.home(), x).await,
        DataflowsCommand::Update(x) => update_dataflow(&mut cat, x).await?,
        DataflowsCommand::Enable(x) => {
            cat.set_dataflow_enabled(&x.name, true).map_err(cat_err)?;
            println!("dataflow {:?} enabled", x.name);
        }
        DataflowsCommand::Disable(x) => {
            cat.set_dataflow_enabled(&x.name, false).map_err(cat_err)?;
            println!("dataflow {:?} disabled", x.name);
        }
        DataflowsCommand::Delete(x) => {
            let data = cat.home().join("data");
            let d = app::dataflows::delete_dataflow(&mut cat, &x.name, x.cancel, &data)
                .map_err(app_err)?;
            print!(
                "dataflow {:?} deleted ({} run record(s) removed",
                d.name, d.runs_removed
            );
            match d.cancelled_run {
                Some(id) => println!(", run {id} cancelled); its dataset's batches are kept"),
                None => println!("); its dataset's batches are kept"),
            }
        }
    }
    Ok(0)
}
