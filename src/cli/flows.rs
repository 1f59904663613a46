//! The catalog commands: `accounts`, `datasets`, `dataflows`, `runs` and `monitor`. Each opens
//! the catalog under `--home` and turns its arguments into [`stripe_xdm::catalog`] calls.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

use stripe_xdm::catalog::{Alerts, Catalog, CatalogError, NewDataflow, NewDataset};
use stripe_xdm::map::check::check_mapping;
use stripe_xdm::map::{substitute_tenant, Mapping};
use stripe_xdm::pipeline::{self, PipelineError, RunConfig};
use stripe_xdm::schedule::{Frequency, Schedule};
use stripe_xdm::source::{ClientConfig, StripeClient, Window};
use stripe_xdm::{Resource, Secret};

use super::flows_output as out;
pub use super::flows_output::{monitor, runs, MonitorArgs, RunsArgs};
use super::CliError;

type Result<T> = std::result::Result<T, CliError>;

/// Seconds kept behind "now" at the end of a run's window, for Stripe's late-visible objects.
pub const SAFETY_LAG_SECS: i64 = 60;

/// Where the catalog lives.
#[derive(Debug, Args, Clone)]
pub struct HomeArgs {
    /// Home folder holding the catalog and account keys (default: $HOME/.stripe-xdm).
    #[arg(long, env = "STRIPE_XDM_HOME", global = true, value_name = "DIR")]
    pub home: Option<PathBuf>,
}

impl HomeArgs {
    pub(super) fn open(&self) -> Result<Catalog> {
        let home = match &self.home {
            Some(h) => h.clone(),
            None => match std::env::var_os("HOME") {
                Some(h) if !h.is_empty() => PathBuf::from(h).join(".stripe-xdm"),
                _ => {
                    return Err(CliError::usage(
                        "no home folder: pass --home DIR or set STRIPE_XDM_HOME",
                    ))
                }
            },
        };
        Catalog::open(&home).map_err(cat_err)
    }
}

pub(super) fn cat_err(e: CatalogError) -> CliError {
    CliError::usage(e)
}

/// Where a command sends its Stripe requests.
#[derive(Debug, Args, Clone)]
pub struct ApiArgs {
    /// API base URL (Stripe, the simulator, or a stub).
    #[arg(long, default_value = stripe_xdm::source::DEFAULT_BASE_URL)]
    pub base_url: String,
    /// Request budget per second (default: 25 for test keys, 100 for live keys).
    #[arg(long)]
    pub rate: Option<f64>,
}

impl ApiArgs {
    fn client(&self, key: Secret) -> Result<StripeClient> {
        let mut cfg = ClientConfig::new(self.base_url.clone(), key);
        cfg.requests_per_sec = self.rate;
        StripeClient::new(cfg).map_err(CliError::usage)
    }
}

// ---------------------------------------------------------------------------------- accounts

/// `accounts …`
#[derive(Debug, Args)]
pub struct AccountsArgs {
    #[command(flatten)]
    home: HomeArgs,
    #[command(subcommand)]
    command: AccountsCommand,
}

#[derive(Debug, Subcommand)]
enum AccountsCommand {
    /// Add an account: the key is tested against Stripe, then stored privately (never printed).
    Add(AccountAddArgs),
    /// List accounts (keys masked).
    List(JsonArgs),
    /// Show one account (key masked).
    Show(NameJsonArgs),
    /// Test an account's key against Stripe.
    Test(AccountTestArgs),
    /// Remove an account (refused while dataflows use it).
    Remove(NameArgs),
}

/// Where the key comes from: exactly one of the two.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
struct KeySource {
    /// Environment variable holding the Stripe secret key.
    #[arg(long, value_name = "VAR")]
    api_key_env: Option<String>,
    /// File holding the Stripe secret key (first line).
    #[arg(long, value_name = "PATH")]
    api_key_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct AccountAddArgs {
    /// Account name (letters, digits, '_', '-', '.').
    name: String,
    /// Description.
    #[arg(long)]
    description: Option<String>,
    #[command(flatten)]
    key: KeySource,
    #[command(flatten)]
    api: ApiArgs,
}

#[derive(Debug, Args)]
struct AccountTestArgs {
    /// Account name.
    name: String,
    #[command(flatten)]
    api: ApiArgs,
}

#[derive(Debug, Args)]
struct JsonArgs {
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct NameArgs {
    /// Name.
    name: String,
}

#[derive(Debug, Args)]
struct NameJsonArgs {
    /// Name.
    name: String,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

async fn test_key(api: &ApiArgs, key: Secret, account: &str) -> Result<serde_json::Value> {
    let client = api.client(key)?;
    client.get_account().await.map_err(|e| {
        CliError::usage(format!(
            "account {account:?}: the connection test (GET /v1/account at {}) failed: {e}",
            api.base_url
        ))
    })
}

/// `stripe-xdm accounts …`
pub async fn accounts(a: AccountsArgs) -> Result<u8> {
    let mut cat = a.home.open()?;
    match a.command {
        AccountsCommand::Add(x) => {
            let key = match (&x.key.api_key_file, &x.key.api_key_env) {
                (Some(p), _) => Secret::from_file(p).map_err(CliError::usage)?,
                (None, Some(v)) => Secret::from_env(v).map_err(CliError::usage)?,
                (None, None) => {
                    return Err(CliError::usage(
                        "give the key with --api-key-env VAR or --api-key-file PATH",
                    ))
                }
            };
            if cat.account(&x.name).is_ok() {
                return Err(CliError::usage(format!(
                    "account {:?} already exists",
                    x.name
                )));
            }
            let info = test_key(&x.api, key.clone(), &x.name).await?;
            let acct = cat
                .add_account(&x.name, x.description.as_deref(), &key)
                .map_err(cat_err)?;
            let stripe_id = info.get("id").and_then(|v| v.as_str()).unwrap_or("?");
            println!(
                "account {:?} added (Stripe account {stripe_id}, key {})",
                acct.name, acct.key_masked
            );
        }
        AccountsCommand::List(j) => {
            let list = cat.list_accounts().map_err(cat_err)?;
            out::accounts(&list, j.json);
        }
        AccountsCommand::Show(x) => {
            let acct = cat.account(&x.name).map_err(cat_err)?;
            let used = cat.dataflows_using_account(&x.name).map_err(cat_err)?;
            out::account(&acct, &used, x.json);
        }
        AccountsCommand::Test(x) => {
            let key = cat.account_key(&x.name).map_err(cat_err)?;
            let info = test_key(&x.api, key, &x.name).await?;
            let stripe_id = info.get("id").and_then(|v| v.as_str()).unwrap_or("?");
            println!(
                "account {:?}: connection OK (Stripe account {stripe_id})",
                x.name
            );
        }
        AccountsCommand::Remove(x) => {
            cat.remove_account(&x.name).map_err(cat_err)?;
            println!("account {:?} removed", x.name);
        }
    }
    Ok(0)
}

// ---------------------------------------------------------------------------------- datasets

/// `datasets …`
#[derive(Debug, Args)]
pub struct DatasetsArgs {
    #[command(flatten)]
    home: HomeArgs,
    #[command(subcommand)]
    command: DatasetsCommand,
}

#[derive(Debug, Subcommand)]
enum DatasetsCommand {
    /// Create a dataset from an XDM schema file.
    Create(DatasetCreateArgs),
    /// List datasets.
    List(JsonArgs),
    /// Show one dataset.
    Show(NameJsonArgs),
}

#[derive(Debug, Args)]
struct DatasetCreateArgs {
    /// Dataset name.
    name: String,
    /// XDM schema file (JSON).
    #[arg(long)]
    schema: PathBuf,
    /// Description.
    #[arg(long)]
    description: Option<String>,
    /// Enable the dataset for Profile (needs exactly one primary identity in the schema).
    #[arg(long)]
    profile: bool,
    /// Error diagnostics (forced on by partial ingestion).
    #[arg(long)]
    error_diagnostics: bool,
    /// Partial ingestion, with its error threshold in percent (default 5).
    #[arg(long, num_args = 0..=1, default_missing_value = "5", value_name = "PCT")]
    partial_ingestion: Option<f64>,
    /// Tenant id substituted for ${tenant} in the schema.
    #[arg(long, default_value = stripe_xdm::map::DEFAULT_TENANT)]
    tenant: String,
}

/// `stripe-xdm datasets …`
pub async fn datasets(a: DatasetsArgs) -> Result<u8> {
    let mut cat = a.home.open()?;
    match a.command {
        DatasetsCommand::Create(x) => {
            let text = std::fs::read_to_string(&x.schema).map_err(|e| {
                CliError::usage(format!(
                    "cannot read XDM schema file {}: {e}",
                    x.schema.display()
                ))
            })?;
            let ds = cat
                .create_dataset(&NewDataset {
                    name: x.name,
                    description: x.description,
                    schema_json: substitute_tenant(&text, &x.tenant),
                    profile_enabled: x.profile,
                    error_diagnostics: x.error_diagnostics,
                    partial_ingestion_percent: x.partial_ingestion,
                })
                .map_err(cat_err)?;
            println!("dataset {:?} created", ds.name);
            out::dataset(&ds, false);
        }
        DatasetsCommand::List(j) => {
            let list = cat.list_datasets().map_err(cat_err)?;
            out::datasets(&list, j.json);
        }
        DatasetsCommand::Show(x) => {
            let ds = cat.dataset(&x.name).map_err(cat_err)?;
            out::dataset(&ds, x.json);
        }
    }
    Ok(0)
}

// --------------------------------------------------------------------------------- dataflows

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
    /// Create a dataflow (account → resource → mapping → dataset, on a schedule).
    Create(DataflowCreateArgs),
    /// List dataflows.
    List(JsonArgs),
    /// Show one dataflow.
    Show(NameJsonArgs),
    /// Print the Platform's Review page of a dataflow.
    Review(NameArgs),
    /// Run a dataflow now, over the window after its watermark.
    Run(DataflowRunArgs),
    /// Enable a dataflow.
    Enable(NameArgs),
    /// Disable a dataflow.
    Disable(NameArgs),
    /// Delete a dataflow (its dataset's committed batches stay).
    Delete(DataflowDeleteArgs),
}

/// Alerts to subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[allow(clippy::enum_variant_names)]
enum AlertArg {
    RunStart,
    RunSuccess,
    RunFailure,
}

#[derive(Debug, Args)]
struct DataflowCreateArgs {
    /// Dataflow name.
    name: String,
    /// Account name.
    #[arg(long)]
    account: String,
    /// Resource path: charges, subscriptions, refunds, balance_transactions, customers, prices.
    #[arg(long)]
    resource: Resource,
    /// Dataset name (created with `datasets create`).
    #[arg(long)]
    dataset: String,
    /// Mapping SQL file (default: the built-in sql/<resource>.sql).
    #[arg(long)]
    mapping: Option<PathBuf>,
    /// Tenant id substituted for ${tenant} in the mapping.
    #[arg(long, default_value = stripe_xdm::map::DEFAULT_TENANT)]
    tenant: String,
    /// Description.
    #[arg(long)]
    description: Option<String>,
    /// Alerts (repeatable).
    #[arg(long, value_enum)]
    alert: Vec<AlertArg>,
    /// Frequency: once, minute, hour, day, week.
    #[arg(long, default_value = "once")]
    frequency: String,
    /// Units of frequency between runs (not with once; minute needs ≥ 15).
    #[arg(long)]
    interval: Option<u32>,
    /// First scheduled time, UTC (unix seconds, RFC 3339 or YYYY-MM-DD; default now).
    #[arg(long)]
    start_time: Option<String>,
    /// Do not backfill: the first run fetches only objects created from the start time on.
    #[arg(long)]
    no_backfill: bool,
}

#[derive(Debug, Args)]
struct DataflowRunArgs {
    /// Dataflow name.
    name: String,
    #[command(flatten)]
    api: ApiArgs,
    /// Output folder (default: <home>/data).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Print the run as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct DataflowDeleteArgs {
    /// Dataflow name.
    name: String,
    /// Cancel a scheduled or running run instead of refusing.
    #[arg(long)]
    cancel: bool,
}

pub(super) fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

async fn create_dataflow(cat: &mut Catalog, x: DataflowCreateArgs) -> Result<()> {
    let frequency: Frequency = x
        .frequency
        .parse()
        .map_err(|e| CliError::usage(format!("dataflow {:?}: {e}", x.name)))?;
    let now = now();
    let start_time = match &x.start_time {
        Some(t) => super::commands::parse_time("--start-time", t)?,
        None => now,
    };
    let schedule = Schedule {
        frequency,
        interval: x.interval,
        start_time,
        backfill: x.no_backfill.then_some(false),
    };
    schedule.validate(now).map_err(|source| {
        cat_err(CatalogError::Schedule {
            dataflow: x.name.clone(),
            source,
        })
    })?;
    let mapping = match &x.mapping {
        Some(p) => Mapping::from_file(p, &x.tenant).map_err(CliError::usage)?,
        None => Mapping::builtin(x.resource, &x.tenant),
    };
    // Using an existing dataset: the mapping's output must fit its schema before anything runs.
    let dataset = cat.dataset(&x.dataset).map_err(cat_err)?;
    let schema = dataset.schema().map_err(cat_err)?;
    let report = check_mapping(&mapping, x.resource, &schema).await;
    if !report.is_sound() {
        let errors: Vec<String> = report.errors().map(|p| format!("  {p}")).collect();
        return Err(CliError::usage(format!(
            "dataflow {:?}: mapping {} does not fit dataset {:?}'s schema ({} error(s)):\n{}",
            x.name,
            mapping.origin,
            x.dataset,
            errors.len(),
            errors.join("\n")
        )));
    }
    let mapping_sql = mapping.sql;
    let alerts = Alerts {
        run_start: x.alert.contains(&AlertArg::RunStart),
        run_success: x.alert.contains(&AlertArg::RunSuccess),
        run_failure: x.alert.contains(&AlertArg::RunFailure),
    };
    let flow = cat
        .create_dataflow(
            &NewDataflow {
                name: x.name,
                description: x.description,
                account: x.account,
                resource: x.resource.path().to_string(),
                dataset: x.dataset,
                mapping_sql,
                alerts,
                schedule,
            },
            now,
        )
        .map_err(cat_err)?;
    println!("dataflow {:?} created", flow.name);
    Ok(())
}

fn pipeline_error(e: PipelineError) -> CliError {
    if e.is_usage() {
        CliError::usage(e)
    } else {
        CliError::failed(e)
    }
}

async fn run_dataflow(cat: &mut Catalog, x: DataflowRunArgs) -> Result<u8> {
    let flow = cat.dataflow(&x.name).map_err(cat_err)?;
    let resource: Resource = flow.resource.parse().map_err(|e| {
        CliError::usage(format!(
            "dataflow {:?}: resource {:?}: {e}",
            flow.name, flow.resource
        ))
    })?;
    let dataset = cat.dataset(&flow.dataset).map_err(cat_err)?;
    let schema = dataset.schema().map_err(cat_err)?;
    let key = cat.account_key(&flow.account).map_err(cat_err)?;
    let client = x.api.client(key)?;
    let out_dir = x.out.clone().unwrap_or_else(|| cat.home().join("data"));
    let t = now();
    let run = cat
        .begin_run(&flow.name, t, SAFETY_LAG_SECS, t)
        .map_err(cat_err)?;
    let mapping = match cat.mapping(&flow.name, Some(run.mapping_version)) {
        Ok(m) => m,
        Err(e) => {
            let _ = cat.fail_run(run.id, &e.to_string(), now());
            return Err(cat_err(e));
        }
    };
    let w = run.window.expect("a started run has a window");
    let cfg = RunConfig {
        resource,
        mapping: Mapping {
            sql: mapping.sql,
            origin: format!("dataflow {:?} mapping v{}", flow.name, mapping.version),
        },
        schema,
        out_dir,
        dataset: flow.dataset.clone(),
        window: Window {
            gte: w.gte,
            lt: Some(w.lt),
        },
        error_diagnostics: dataset.error_diagnostics,
        partial_ingestion: dataset.partial_ingestion_percent,
        chunk_records: pipeline::DEFAULT_CHUNK_RECORDS,
        sink: Default::default(),
        batch_id: None,
    };
    match pipeline::run(&client, cfg).await {
        Ok(report) => {
            let done = cat.commit_run(run.id, &report, now()).map_err(cat_err)?;
            out::run(&done, x.json);
            if !x.json {
                println!("written to {}", report.batch_dir.display());
            }
            Ok(if done.status == stripe_xdm::catalog::RunStatus::Success {
                0
            } else {
                super::EXIT_DATA
            })
        }
        Err(e) => {
            let failed = cat
                .fail_run(run.id, &e.to_string(), now())
                .map_err(cat_err)?;
            if x.json {
                out::run(&failed, true);
            }
            Err(pipeline_error(e))
        }
    }
}

/// `stripe-xdm dataflows …`
pub async fn dataflows(a: DataflowsArgs) -> Result<u8> {
    let mut cat = a.home.open()?;
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
            let columns = flow
                .resource
                .parse::<Resource>()
                .ok()
                .map(|r| stripe_xdm::decode::arrow_schema(r).fields().len());
            out::review(&flow, &dataset, title.as_deref(), columns);
        }
        DataflowsCommand::Run(x) => return run_dataflow(&mut cat, x).await,
        DataflowsCommand::Enable(x) => {
            cat.set_dataflow_enabled(&x.name, true).map_err(cat_err)?;
            println!("dataflow {:?} enabled", x.name);
        }
        DataflowsCommand::Disable(x) => {
            cat.set_dataflow_enabled(&x.name, false).map_err(cat_err)?;
            println!("dataflow {:?} disabled", x.name);
        }
        DataflowsCommand::Delete(x) => {
            let d = cat.delete_dataflow(&x.name, x.cancel).map_err(cat_err)?;
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
