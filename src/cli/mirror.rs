//! `stripe-xdm sql` (SQL over the mirror and the batches) and `dataflows remap`.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use stripe_xdm::inspect;
use stripe_xdm::runner::{self, RunnerConfig};

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
    /// object, latest version, with `_raw` JSON) and `rejected` (every batch's rejected rows).
    pub sql: String,
    /// The account whose mirror to query (`<home>/mirror/<account>`); default: the only
    /// account in the catalog.
    #[arg(long, conflicts_with = "out")]
    pub account: Option<String>,
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
    #[arg(long, value_name = "FILE")]
    pub parquet: Option<PathBuf>,
}

/// `stripe-xdm sql`.
pub async fn sql(a: SqlArgs) -> Result<u8> {
    let (mirror_root, out) = match &a.out {
        Some(out) => (out.join("mirror"), out.clone()),
        None => {
            let cat = a.home.open()?;
            let account = match &a.account {
                Some(name) => cat.account(name).map_err(CliError::usage)?.name,
                None => {
                    let accounts = cat.list_accounts().map_err(CliError::usage)?;
                    match accounts.as_slice() {
                        [one] => one.name.clone(),
                        [] => return Err(CliError::usage("no account in the catalog: add one (`accounts add`) and run a dataflow, or pass --out DIR of a one-off run")),
                        many => return Err(CliError::usage(format!(
                            "several accounts ({}): choose one with --account",
                            many.iter().map(|a| a.name.as_str()).collect::<Vec<_>>().join(", ")
                        ))),
                    }
                }
            };
            let cfg = RunnerConfig::new(cat.home());
            (cat.home().join("mirror").join(account), cfg.out_dir)
        }
    };
    let dirs = inspect::batch_dirs_under(&out);
    let batches = inspect::sql(&mirror_root, &dirs, &a.sql)
        .await
        .map_err(CliError::usage)?;
    if let Some(path) = &a.parquet {
        let schema = match batches.first() {
            Some(b) => b.schema(),
            None => return Err(CliError::usage("the query returned no batch to write")),
        };
        let file = std::fs::File::create(path)
            .map_err(|e| CliError::usage(format!("cannot create {}: {e}", path.display())))?;
        let mut w =
            parquet::arrow::ArrowWriter::try_new(file, schema, None).map_err(CliError::failed)?;
        let mut rows = 0;
        for b in &batches {
            w.write(b).map_err(CliError::failed)?;
            rows += b.num_rows();
        }
        w.close().map_err(CliError::failed)?;
        println!("{rows} rows written to {}", path.display());
        return Ok(0);
    }
    let format = match (a.json, a.csv) {
        (true, _) => Format::Json,
        (_, true) => Format::Csv,
        _ => a.format,
    };
    let mut buf = Vec::new();
    match format {
        Format::Json => {
            let mut w = arrow::json::ArrayWriter::new(&mut buf);
            for b in &batches {
                w.write(b).map_err(CliError::failed)?;
            }
            w.finish().map_err(CliError::failed)?;
            buf.push(b'\n');
        }
        Format::Csv => {
            let mut w = arrow::csv::Writer::new(&mut buf);
            for b in &batches {
                w.write(b).map_err(CliError::failed)?;
            }
        }
        Format::Table => {
            let text =
                arrow::util::pretty::pretty_format_batches(&batches).map_err(CliError::failed)?;
            buf = format!("{text}\n").into_bytes();
        }
    }
    print!("{}", String::from_utf8_lossy(&buf));
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
