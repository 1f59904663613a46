//! `mapping check|import` and `errors summary|query`.

use std::path::PathBuf;

use clap::Args;
use stripe_xdm::import::import_mapping_set;
use stripe_xdm::inspect::{batch_dirs_of, output, query, summarize};
use stripe_xdm::map::check::check_mapping;
use stripe_xdm::map::Mapping;
use stripe_xdm::Resource;

use super::commands::load_schema;
use super::CliError;

type Result<T> = std::result::Result<T, CliError>;

/// Options of `mapping check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The mapping SQL file.
    pub file: PathBuf,
    /// Resource path whose table the SQL reads.
    #[arg(long)]
    pub resource: Resource,
    /// Target XDM schema (default: the built-in one of the resource).
    #[arg(long)]
    pub schema: Option<PathBuf>,
    /// Tenant id substituted for ${tenant}.
    #[arg(long, default_value = stripe_xdm::map::DEFAULT_TENANT, value_parser = super::parse_tenant)]
    pub tenant: String,
}

/// Options of `mapping import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The Platform mapping set (JSON: a mapping-set document or a Flow Service mappings list).
    pub file: PathBuf,
    /// Resource path the mappings read from.
    #[arg(long)]
    pub resource: Resource,
    /// Write the SQL here instead of stdout.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

/// Options of `errors summary`.
#[derive(Debug, Args)]
pub struct SummaryArgs {
    /// The batch directory (`<out>/<dataset>/batches/<id>` or `…/failed/<id>`).
    pub batch: PathBuf,
    /// Sample rows per code.
    #[arg(long, default_value_t = 3)]
    pub samples: usize,
    /// Print as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Options of `errors query`.
#[derive(Debug, Args)]
pub struct QueryArgs {
    /// A batch directory, or a dataset directory (`<out>/<dataset>`: all its batches).
    pub target: PathBuf,
    /// SQL over the tables `rejected` and `accepted`.
    pub sql: String,
    /// Print rows as JSON.
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// Print rows as CSV.
    #[arg(long)]
    pub csv: bool,
}

/// `stripe-xdm mapping check`: exit 0 only when the mapping is sound.
pub async fn mapping_check(a: CheckArgs) -> Result<u8> {
    let mapping = Mapping::from_file(&a.file, &a.tenant).map_err(CliError::usage)?;
    let schema = load_schema(a.schema.as_deref(), a.resource, &a.tenant)?;
    let report = check_mapping(&mapping, a.resource, &schema).await;
    for p in &report.problems {
        println!("{}: {p}", a.file.display());
    }
    if report.is_sound() {
        println!(
            "{}: sound ({})",
            a.file.display(),
            count(report.warnings().count(), "warning")
        );
        Ok(0)
    } else {
        Err(CliError::usage(format!(
            "{}: {}",
            a.file.display(),
            count(report.errors().count(), "error")
        )))
    }
}

/// `n` and `noun`, plural unless `n` is 1 ("1 error", "2 warnings").
fn count(n: usize, noun: &str) -> String {
    format!("{n} {noun}{}", if n == 1 { "" } else { "s" })
}

/// `stripe-xdm mapping import`.
pub fn mapping_import(a: ImportArgs) -> Result<u8> {
    let text = std::fs::read_to_string(&a.file)
        .map_err(|e| CliError::usage(format!("cannot read {}: {e}", a.file.display())))?;
    let imported = import_mapping_set(&text, a.resource)
        .map_err(|e| CliError::usage(format!("{}: {e}", a.file.display())))?;
    match &a.output {
        // A path that cannot be written (a folder, a missing parent) is the caller's to fix.
        Some(path) => std::fs::write(path, &imported.sql).map_err(|e| {
            CliError::usage(format!(
                "-o {}: cannot write the mapping: {e}",
                path.display()
            ))
        })?,
        None => print!("{}", imported.sql),
    }
    for u in &imported.untranslated {
        eprintln!(
            "not translated: mappings[{}] {} → {}: {}",
            u.index, u.source, u.destination, u.reason
        );
    }
    Ok(if imported.untranslated.is_empty() {
        0
    } else {
        super::EXIT_DATA
    })
}

/// `stripe-xdm errors summary`.
pub fn errors_summary(a: SummaryArgs) -> Result<u8> {
    let summary = summarize(&a.batch, a.samples).map_err(CliError::usage)?;
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&summary).expect("summary serializes")
        );
        return Ok(0);
    }
    println!("{} rejected rows in {}", summary.total, a.batch.display());
    for c in &summary.by_code {
        println!(
            "{:>8}  {}  {}",
            c.count,
            c.code,
            c.column.as_deref().unwrap_or("(whole row)")
        );
        for s in &c.samples {
            println!(
                "          {}  {}{}",
                s.object_id.as_deref().unwrap_or("(no id)"),
                s.value
                    .as_deref()
                    .map(|v| format!("value {v:?}: "))
                    .unwrap_or_default(),
                s.message
            );
        }
    }
    Ok(0)
}

/// `stripe-xdm errors query`.
pub async fn errors_query(a: QueryArgs) -> Result<u8> {
    let dirs = batch_dirs_of(&a.target).map_err(CliError::usage)?;
    let batches = query(&dirs, &a.sql).await.map_err(CliError::usage)?;
    let format = match (a.json, a.csv) {
        (true, _) => output::Format::Json,
        (_, true) => output::Format::Csv,
        _ => output::Format::Table,
    };
    output::write(format, &batches, &mut std::io::stdout().lock())
        .map_err(|e| CliError::chain(&e, super::EXIT_DATA))?;
    Ok(0)
}
