//! Command-line interface: clap definitions and dispatch. Nothing outside this module knows clap.

mod analyse;
mod backfill;
mod commands;
mod console;
mod dataflows;
mod flows;
mod flows_output;
mod mapping;
mod mirror;
mod platform;
mod progress;
mod serve;
mod signals;
mod table;
mod upload;
mod wizard;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// Exit code: the run failed on data (threshold exceeded).
pub const EXIT_DATA: u8 = 1;
/// Exit code: usage, configuration or authentication error.
pub const EXIT_USAGE: u8 = 2;

/// Stripe payments data into Adobe Experience Platform XDM, locally.
#[derive(Debug, Parser)]
#[command(name = "stripe-xdm", version, about, long_about = None)]
pub struct Cli {
    /// Log more (-v stripe-xdm's info, -vv its debug and the libraries' info, -vvv all debug).
    /// Logs go to stderr and never contain keys.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the built-in Stripe simulator, run every resource through the pipeline, print a summary.
    Demo(DemoArgs),
    /// One run of one resource against Stripe or any Stripe-compatible base URL.
    Run(RunArgs),
    /// Show the first page of a resource: its source structure and first rows.
    Preview(PreviewArgs),
    /// Serve the built-in Stripe simulator on loopback until Ctrl-C.
    Sim(SimArgs),
    /// Write and try mapping rules.
    #[command(subcommand)]
    Mapping(mapping::MappingCommand),
    /// Analyse and replay rejected rows.
    #[command(subcommand)]
    Errors(mapping::ErrorsCommand),
    /// Stripe accounts (keys stored privately, shown masked).
    Accounts(flows::AccountsArgs),
    /// Datasets: XDM schema, Profile, diagnostics and partial ingestion.
    Datasets(flows::DatasetsArgs),
    /// Dataflows: account, resource, mapping, dataset, alerts and schedule.
    Dataflows(flows::DataflowsArgs),
    /// Runs of dataflows and their metrics.
    Runs(flows::RunsArgs),
    /// Every dataflow's last and next run, totals and failed runs.
    Monitor(flows::MonitorArgs),
    /// Run every enabled dataflow on its schedule until SIGINT/SIGTERM.
    Serve(serve::ServeArgs),
    /// The web console on 127.0.0.1: accounts, the dataflow wizard, monitoring, rejected rows.
    Console(console::ConsoleArgs),
    /// A dataflow's next window as a high-volume, resumable run (or --plan: estimate it first).
    Backfill(backfill::BackfillArgs),
    /// Send a committed batch to a Platform dataset with the Batch Ingestion API.
    Upload(upload::UploadArgs),
    /// SQL over the local mirror (tables named after the resources) and the rejected rows.
    Sql(mirror::SqlArgs),
    /// XDM schemas as Platform's Schema Registry takes them.
    #[command(subcommand)]
    Schema(platform::SchemaCommand),
}

/// Options of `demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Output folder.
    #[arg(long, default_value = "stripe-xdm-out")]
    pub out: PathBuf,
    /// Objects per resource in the simulator.
    #[arg(long, default_value_t = 2000)]
    pub count: u64,
    /// Simulator seed.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Fraction of records the simulator corrupts (shows rejected rows at work).
    #[arg(long, default_value_t = 0.01, value_parser = parse_fraction)]
    pub corrupt_rate: f64,
    /// Tenant id: custom fields go under `_<tenant>`.
    #[arg(long, default_value = stripe_xdm::map::DEFAULT_TENANT, value_parser = parse_tenant)]
    pub tenant: String,
    /// Print the reports as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Where the Stripe key and API come from.
#[derive(Debug, Args, Clone)]
pub struct SourceArgs {
    /// Environment variable holding the Stripe secret key (never pass the key itself).
    #[arg(long, default_value = "STRIPE_API_KEY")]
    pub api_key_env: String,
    /// File holding the Stripe secret key (first line); takes precedence over --api-key-env.
    #[arg(long)]
    pub api_key_file: Option<PathBuf>,
    /// API base URL (Stripe, the simulator, or a stub; default: Stripe's, or with --account the
    /// one the account was added with).
    #[arg(long)]
    pub base_url: Option<String>,
    /// Pinned Stripe-Version header.
    #[arg(long, default_value = stripe_xdm::source::DEFAULT_STRIPE_VERSION, value_parser = parse_stripe_version)]
    pub stripe_version: String,
    /// Stripe-Account header, to read a connected account.
    #[arg(long, value_parser = parse_account_id)]
    pub stripe_account: Option<String>,
    /// Request budget per second (default: 25 for test keys, 100 for live keys).
    #[arg(long, value_parser = parse_rate)]
    pub rate: Option<f64>,
    /// Request budget per second and endpoint (default: Stripe's 25; raise it only if Stripe
    /// raised your limits, or against the simulator).
    #[arg(long, value_parser = parse_rate)]
    pub endpoint_rate: Option<f64>,
    /// Retries per request on 429/409/5xx/network errors.
    #[arg(long, default_value_t = 8)]
    pub max_retries: u32,
}

/// Options of `run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Resource path: charges, subscriptions, refunds, balance_transactions, customers, prices.
    #[arg(long)]
    pub resource: stripe_xdm::Resource,
    #[command(flatten)]
    pub source: SourceArgs,
    /// Mapping SQL file (default: the built-in sql/<resource>.sql).
    #[arg(long)]
    pub mapping: Option<PathBuf>,
    /// Target XDM schema file (default: the built-in sql/<resource>.xdm.json).
    #[arg(long)]
    pub schema: Option<PathBuf>,
    /// Tenant id substituted for ${tenant} in the mapping and schema.
    #[arg(long, default_value = stripe_xdm::map::DEFAULT_TENANT, value_parser = parse_tenant)]
    pub tenant: String,
    /// Dataset name (output subfolder; default: the resource path).
    #[arg(long)]
    pub dataset: Option<String>,
    /// Only objects created at or after this time (unix seconds, RFC 3339, or YYYY-MM-DD).
    #[arg(long)]
    pub created_gte: Option<String>,
    /// Only objects created before this time (unix seconds, RFC 3339, or YYYY-MM-DD).
    #[arg(long)]
    pub created_lt: Option<String>,
    /// Turn partial ingestion on, with an error threshold in percent (default 5).
    #[arg(long, num_args = 0..=1, default_missing_value = "5", value_name = "PCT")]
    pub partial_ingestion: Option<f64>,
    /// Write Platform-style error diagnostics (forced on by partial ingestion).
    #[arg(long)]
    pub error_diagnostics: bool,
    /// Output folder.
    #[arg(long, default_value = "stripe-xdm-out")]
    pub out: PathBuf,
    /// `created` windows fetched at once (dense windows split while they run).
    #[arg(long, default_value_t = 4, value_parser = parse_concurrency)]
    pub concurrency: usize,
    /// No progress display.
    #[arg(long, short)]
    pub quiet: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Options of `preview`.
#[derive(Debug, Args)]
pub struct PreviewArgs {
    /// Resource path.
    #[arg(long)]
    pub resource: stripe_xdm::Resource,
    /// Read from the built-in simulator instead of Stripe (the default when no key is set).
    #[arg(long)]
    pub sim: bool,
    /// Read with the key of this catalog account (see `accounts add`) instead of --api-key-*.
    #[arg(long, value_name = "NAME", conflicts_with_all = ["sim", "api_key_file"])]
    pub account: Option<String>,
    /// Where the catalog lives (for --account).
    #[command(flatten)]
    pub home: flows::HomeArgs,
    #[command(flatten)]
    pub source: SourceArgs,
    /// Rows to show (at most 100).
    #[arg(long, default_value_t = 10)]
    pub rows: usize,
}

/// Options of `sim`.
#[derive(Debug, Args)]
pub struct SimArgs {
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 12111)]
    pub port: u16,
    /// Seed of the generated data.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Objects per resource.
    #[arg(long, default_value_t = 1000)]
    pub count: u64,
    /// Fraction of corrupt records.
    #[arg(long, default_value_t = 0.0, value_parser = parse_fraction)]
    pub corrupt_rate: f64,
    /// Fraction of responses that are 429.
    #[arg(long, default_value_t = 0.0, value_parser = parse_fraction)]
    pub rate_429: f64,
    /// Fraction of responses that are 5xx.
    #[arg(long, default_value_t = 0.0, value_parser = parse_fraction)]
    pub rate_5xx: f64,
    /// Fraction of slow responses.
    #[arg(long, default_value_t = 0.0, value_parser = parse_fraction)]
    pub slow_rate: f64,
    /// Delay of a slow response, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    pub slow_ms: u64,
    /// Enforce a request rate (requests/s) like Stripe's limiter: faster clients get 429s.
    #[arg(long, value_parser = parse_rate)]
    pub rate_limit: Option<f64>,
    /// A connected account `GET /v1/accounts` lists (Stripe Connect; repeat for more): lists
    /// read through any `Stripe-Account` serve the same objects.
    #[arg(long = "connected-account", value_name = "ACCT")]
    pub connected_accounts: Vec<String>,
    /// A restricted key the simulator accepts, with the resources it may read
    /// (`rk_test_…=charges,customers`; repeat for more): its other list requests get Stripe's
    /// 403.
    #[arg(long = "restricted-key", value_name = "KEY=RESOURCES", value_parser = parse_restricted)]
    pub restricted_keys: Vec<(String, Vec<stripe_xdm::Resource>)>,
}

/// `--rate` and `--endpoint-rate`: requests per second, as the client accepts them.
fn parse_rate(s: &str) -> Result<f64, String> {
    let r: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number of requests per second"))?;
    stripe_xdm::source::rate::check_rate_flag(r)
}

/// A fraction of the simulator's (`--corrupt-rate`, `--rate-429`, …): a number from 0 to 1.
fn parse_fraction(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(f) if (0.0..=1.0).contains(&f) => Ok(f),
        _ => Err(format!("{s:?}: a fraction of the responses, from 0 to 1")),
    }
}

/// `--stripe-account`: a Stripe account id (`acct_` and letters or digits).
fn parse_account_id(s: &str) -> Result<String, String> {
    if stripe_xdm::catalog::is_account_id(s) {
        Ok(s.to_string())
    } else {
        Err(format!(
            "{s:?}: a Stripe account id is acct_ followed by letters and digits"
        ))
    }
}

/// `--stripe-version`: an API version, as Stripe names them (`2024-06-20`, `2025-03-31.basil`).
fn parse_stripe_version(s: &str) -> Result<String, String> {
    let t = s.trim();
    if t.len() >= 10
        && t.as_bytes()[..10].iter().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                *b == b'-'
            } else {
                b.is_ascii_digit()
            }
        })
        && !t.contains(char::is_whitespace)
    {
        Ok(t.to_string())
    } else {
        Err(format!(
            "{s:?}: a Stripe API version is a date, like {} (optionally with its name, 2025-03-31.basil)",
            stripe_xdm::source::DEFAULT_STRIPE_VERSION
        ))
    }
}

/// `--tenant`: a Platform tenant id (letters, digits, underscores).
fn parse_tenant(s: &str) -> Result<String, String> {
    stripe_xdm::map::check_tenant(s).map(|()| s.to_string())
}

/// `--concurrency`: `created` windows fetched at once, 1 to the pipeline's `MAX_CONCURRENCY`.
fn parse_concurrency(s: &str) -> Result<usize, String> {
    let max = stripe_xdm::pipeline::MAX_CONCURRENCY;
    match s.trim().parse::<usize>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(format!(
            "windows fetched at once: a whole number from 1 to {max} (Stripe's 25 requests a second per endpoint are filled by a few)"
        )),
    }
}

/// `KEY=resource,resource` of `sim --restricted-key`.
fn parse_restricted(s: &str) -> Result<(String, Vec<stripe_xdm::Resource>), String> {
    let (key, list) = s
        .split_once('=')
        .ok_or_else(|| "expected KEY=RESOURCES, e.g. rk_test_x=charges,customers".to_string())?;
    if key.trim().is_empty() {
        return Err("the key before `=` is empty".into());
    }
    let resources = list
        .split(',')
        .filter(|r| !r.trim().is_empty())
        .map(|r| {
            r.trim()
                .parse::<stripe_xdm::Resource>()
                .map_err(|e| e.to_string())
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((key.trim().to_string(), resources))
}

/// Parses the command line, runs it, and returns the exit code.
pub fn main() -> ExitCode {
    restore_sigpipe();
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Demo(a) => commands::demo(a).await,
            Command::Run(a) => commands::run(a).await,
            Command::Preview(a) => commands::preview(a).await,
            Command::Sim(a) => commands::sim(a).await,
            Command::Mapping(mapping::MappingCommand::Preview(a)) => {
                mapping::mapping_preview(a).await
            }
            Command::Mapping(mapping::MappingCommand::Check(a)) => analyse::mapping_check(a).await,
            Command::Mapping(mapping::MappingCommand::Import(a)) => analyse::mapping_import(a),
            Command::Errors(mapping::ErrorsCommand::Replay(a)) => mapping::errors_replay(a).await,
            Command::Errors(mapping::ErrorsCommand::Summary(a)) => analyse::errors_summary(a),
            Command::Errors(mapping::ErrorsCommand::Query(a)) => analyse::errors_query(a).await,
            Command::Accounts(a) => flows::accounts(a).await,
            Command::Datasets(a) => flows::datasets(a).await,
            Command::Dataflows(a) => flows::dataflows(a).await,
            Command::Runs(a) => flows::runs(a).await,
            Command::Monitor(a) => flows::monitor(a).await,
            Command::Serve(a) => serve::serve(a).await,
            Command::Console(a) => console::console(a).await,
            Command::Backfill(a) => backfill::backfill(a).await,
            Command::Upload(a) => upload::upload(a).await,
            Command::Sql(a) => mirror::sql(a).await,
            Command::Schema(platform::SchemaCommand::Export(a)) => platform::schema_export(a),
        }
    });
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {}", e.message);
            ExitCode::from(e.code)
        }
    }
}

/// Rust ignores SIGPIPE, so `stripe-xdm … | head` would panic on the closed pipe; a command-line
/// tool should end quietly instead, as `cat` does.
fn restore_sigpipe() {
    #[cfg(unix)]
    // SAFETY: called first thing in main, before any thread exists; SIG_DFL is a valid handler.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Log targets left out unless `STRIPE_XDM_LOG` asks for them: Delta's kernel reports every
/// snapshot load that fails as an `ERROR` event, including the expected one when a run creates
/// a mirror's table (there is no table to load yet), and Delta's MERGE warns on every upsert
/// that its scan reported no skipped-file metric (it derives the count for its commit
/// statistics). A failure that matters reaches stripe-xdm as an error and is reported with its
/// context.
const QUIET: &str = "buoyant_kernel::snapshot::builder=off,deltalake_core::operations::merge=error";

/// The log filter of `-v` given `verbose` times: warnings; stripe-xdm's own info (the libraries'
/// info lines, Delta's a dozen per commit, would bury them); stripe-xdm's debug with the
/// libraries' info; everything's debug.
fn log_filter(verbose: u8) -> String {
    let levels = match verbose {
        0 => "warn",
        1 => "warn,stripe_xdm=info",
        2 => "info,stripe_xdm=debug",
        _ => "debug",
    };
    format!("{levels},{QUIET}")
}

fn init_logging(verbose: u8) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("STRIPE_XDM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(log_filter(verbose)));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// An error on its way out: the message and the exit code.
#[derive(Debug)]
pub struct CliError {
    pub(crate) message: String,
    pub(crate) code: u8,
}

impl CliError {
    fn usage(message: impl std::fmt::Display) -> Self {
        CliError {
            message: message.to_string(),
            code: EXIT_USAGE,
        }
    }
    fn failed(message: impl std::fmt::Display) -> Self {
        CliError {
            message: message.to_string(),
            code: EXIT_DATA,
        }
    }

    /// An error with its chain of causes: each cause whose text the message does not already
    /// carry is added on a `caused by:` line.
    fn chain(e: &(dyn std::error::Error + 'static), code: u8) -> Self {
        let mut message = e.to_string();
        let mut cause = e.source();
        while let Some(c) = cause {
            let text = c.to_string();
            if !message.contains(&text) {
                message.push_str("\n  caused by: ");
                message.push_str(&text);
            }
            cause = c.source();
        }
        CliError { message, code }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("reading {0}")]
    struct Outer(&'static str, #[source] std::io::Error);

    #[test]
    fn rates_and_concurrency_are_refused_outside_what_a_run_can_use() {
        assert_eq!(parse_rate("20"), Ok(20.0));
        assert_eq!(parse_rate("0.01"), Ok(0.01));
        for bad in ["1e-300", "0", "-5", "inf", "NaN", "fast"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_concurrency("4"), Ok(4));
        assert_eq!(parse_concurrency("64"), Ok(64));
        for bad in ["0", "65", "100000", "-1", "four"] {
            assert!(parse_concurrency(bad).is_err(), "{bad}");
        }
        let e = Cli::try_parse_from([
            "stripe-xdm",
            "run",
            "--resource",
            "charges",
            "--rate",
            "1e-300",
        ])
        .unwrap_err()
        .to_string();
        assert!(e.contains("--rate") && e.contains("from 0.01"), "{e}");
        assert!(e.contains("got 1e-300"), "{e}");
    }

    #[test]
    fn one_v_logs_stripe_xdms_info_and_only_the_libraries_warnings() {
        assert!(log_filter(1).starts_with("warn,stripe_xdm=info,"));
        assert!(log_filter(2).starts_with("info,stripe_xdm=debug,"));
        for v in 0..4 {
            tracing_subscriber::EnvFilter::try_new(log_filter(v)).expect("a valid filter");
        }
    }

    #[test]
    fn the_chain_adds_causes_the_message_lacks() {
        let e = Outer("a.json", std::io::Error::other("disk on fire"));
        let c = CliError::chain(&e, EXIT_USAGE);
        assert_eq!(c.message, "reading a.json\n  caused by: disk on fire");
        assert_eq!(c.code, EXIT_USAGE);
    }
}
