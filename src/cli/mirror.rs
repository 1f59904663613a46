//! `stripe-xdm sql` (SQL over the mirror and the batches) and `dataflows remap`.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use stripe_xdm::app;
use stripe_xdm::inspect::output;
use stripe_xdm::runner::{self, RunnerConfig};

use super::dataflows::app_err;

use super::flows::HomeArgs;
use super::CliError;

type Result<T> = std::result::Result<T, CliError>;

/// How `sql` prints its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Format {
    /// An aligned text table.
    #[default]
    Table,
    /// A JSON array of objects.
    Json,
    /// CSV with a header.
    Csv,
}

/// Options of `sql`.
#[derive(Debug, Args)]
pub struct SqlArgs {
    #[command(flatten)]
    home: HomeArgs,
    /// The query: tables are the resources (`charges`, `customers`, …: the mirror, one row per
    /// object, latest version, with `_raw` JSON), `rejected` (the batches' rejected rows) and
    /// `accepted_<dataset>` (each dataset's accepted rows; `accepted` too when there is one
    /// dataset); `SHOW TABLES` lists them.
    pub sql: String,
    /// The account whose mirror to query (`<home>/mirror/<account>`) and whose dataflows'
    /// batches hold `rejected`; default: the only account in the catalog.
    #[arg(long, conflicts_with = "out")]
    pub account: Option<String>,
    /// The connected account (`acct_…`) whose mirror to query
    /// (`<home>/mirror/<account>/<acct_…>`); default: the account's own, as its runs use.
    #[arg(long, value_name = "ACCT", conflicts_with = "out", value_parser = super::parse_account_id)]
    pub stripe_account: Option<String>,
    /// A one-off run's output folder instead (`DIR/mirror/<resource>`, `DIR/<dataset>/batches`).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
    /// Shorthand for `--format json`.
    #[arg(long, conflicts_with_all = ["csv", "format"])]
    pub json: bool,
    /// Shorthand for `--format csv`.
    #[arg(long, conflicts_with = "format")]
    pub csv: bool,
    /// Write the result to this Parquet file instead of printing it.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["json", "csv", "format"])]
    pub parquet: Option<PathBuf>,
}

/// `stripe-xdm sql`.
pub async fn sql(a: SqlArgs) -> Result<u8> {
    // Read-only: a home without a catalog is an error, not a new catalog.
    let cat = match &a.out {
        Some(_) => None,
        None => {
            let home = a.home.path()?;
            Some(a.home.open_existing()?.ok_or_else(|| {
                CliError::usage(format!(
                    "no catalog in {}: add an account (`accounts add`) and run a dataflow, or \
                     pass --out DIR of a one-off run",
                    home.display()
                ))
            })?)
        }
    };
    let batches = app::sql::query(
        cat.as_ref(),
        a.account.as_deref(),
        a.stripe_account.as_deref(),
        a.out.as_deref(),
        &a.sql,
    )
    .await
    .map_err(app_err)?;
    let out_err = |e: output::OutputError| {
        // A path that cannot be written is the caller's to fix, as a bad flag is.
        let usage = matches!(
            e,
            output::OutputError::NoBatch(_) | output::OutputError::Io { .. }
        );
        CliError::chain(
            &e,
            if usage {
                super::EXIT_USAGE
            } else {
                super::EXIT_DATA
            },
        )
    };
    if let Some(path) = &a.parquet {
        let rows = output::write_parquet(path, &batches).map_err(out_err)?;
        println!("{rows} rows written to {}", path.display());
        return Ok(0);
    }
    let format = match (a.json, a.csv, a.format) {
        (true, _, _) => output::Format::Json,
        (_, true, _) => output::Format::Csv,
        (_, _, Format::Json) => output::Format::Json,
        (_, _, Format::Csv) => output::Format::Csv,
        (_, _, Format::Table) => output::Format::Table,
    };
    output::write(format, &batches, &mut std::io::stdout().lock()).map_err(out_err)?;
    Ok(0)
}

/// Options of `dataflows remap`.
#[derive(Debug, Args)]
pub struct RemapArgs {
    /// The dataflow.
    pub name: String,
    /// Output root for the batches (default: `<home>/data`).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `stripe-xdm dataflows remap`: the current mapping over the whole mirror, no Stripe request.
pub async fn remap(home: &std::path::Path, a: RemapArgs) -> Result<u8> {
    let mut cfg = RunnerConfig::new(home);
    if let Some(out) = &a.out {
        stripe_xdm::app::output_folder("--out", out).map_err(super::dataflows::app_err)?;
        cfg.out_dir = out.clone();
    }
    let report = runner::remap_dataflow(&cfg, &a.name)
        .await
        .map_err(CliError::usage)?;
    super::commands::print_reports(std::slice::from_ref(&report), a.json);
    if !a.json && !report.parts.is_empty() {
        println!("further batches: {}", report.parts.join(", "));
    }
    Ok(super::commands::exit_code(&[report]))
}
