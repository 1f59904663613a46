//! `stripe-xdm mapping …` and `stripe-xdm errors …`: writing mapping rules and analysing
//! rejected rows locally.

use clap::builder::TypedValueParser as _;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use stripe_xdm::app;
use stripe_xdm::decode::decode_records;
use stripe_xdm::map::{Mapper, Mapping};
use stripe_xdm::source::envelope;
use stripe_xdm::Resource;

use super::commands::{first_page, load_schema};
use super::dataflows::app_err;
use super::{CliError, SourceArgs};

type Result<T> = std::result::Result<T, CliError>;

/// `mapping` subcommands.
#[derive(Debug, Subcommand)]
pub enum MappingCommand {
    /// Run a mapping on sample records and show each mapped row with its errors.
    Preview(MappingPreviewArgs),
    /// Compile a mapping against the resource and compare its output with the XDM schema
    /// (exit 0 only when sound).
    Check(super::analyse::CheckArgs),
    /// Translate a Platform mapping set (JSON) into an equivalent SQL mapping.
    Import(super::analyse::ImportArgs),
}

/// Options of `mapping preview`.
#[derive(Debug, Args)]
pub struct MappingPreviewArgs {
    /// The mapping SQL file.
    pub file: PathBuf,
    /// Resource path.
    #[arg(long)]
    pub resource: Resource,
    /// Target XDM schema (default: the built-in one of the resource).
    #[arg(long)]
    pub schema: Option<PathBuf>,
    /// Tenant id substituted for ${tenant}.
    #[arg(long, default_value = stripe_xdm::map::DEFAULT_TENANT, value_parser = super::parse_tenant)]
    pub tenant: String,
    /// Rows to show (1 to 100).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=100).map(usize::from))]
    pub rows: usize,
    /// A recorded list page (a Stripe list envelope in a JSON file) as sample data.
    #[arg(long, conflicts_with = "account")]
    pub page: Option<PathBuf>,
    /// Sample a real account with the key from --api-key-env / --api-key-file (default: the
    /// built-in simulator).
    #[arg(long)]
    pub account: bool,
    #[command(flatten)]
    pub source: SourceArgs,
    /// Print rows as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `errors` subcommands.
#[derive(Debug, Subcommand)]
pub enum ErrorsCommand {
    /// Re-map a batch's rejected rows with a corrected mapping into a new batch (no new Stripe
    /// requests); rows already replayed are skipped.
    Replay(ReplayArgs),
    /// Summarise a batch's rejected rows: counts by code and column, with sample rows.
    Summary(super::analyse::SummaryArgs),
    /// DataFusion SQL over the rejected (and accepted) rows of a batch or a whole dataset.
    Query(super::analyse::QueryArgs),
}

/// Options of `errors replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The batch directory (`<out>/<dataset>/batches/<id>` or `…/failed/<id>`).
    pub batch: PathBuf,
    /// The corrected mapping SQL file.
    #[arg(long)]
    pub mapping: PathBuf,
    /// Target XDM schema (default: for a batch of a dataset of the catalog, the dataset's, with
    /// its primary identity required when it is Profile-enabled; else the resource's built-in one).
    #[arg(long)]
    pub schema: Option<PathBuf>,
    /// Tenant id substituted for ${tenant}.
    #[arg(long, default_value = stripe_xdm::map::DEFAULT_TENANT, value_parser = super::parse_tenant)]
    pub tenant: String,
    /// Replay each row from its object's latest version in this mirror table
    /// (`<home>/mirror/<account>/<resource>`); a one-off run's `<out>/mirror/<resource>` is found
    /// by itself. Rows whose object it does not hold use their stored record.
    #[arg(long, value_name = "DIR")]
    pub mirror: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub home: super::flows::HomeArgs,
}

async fn sample_page(
    a: &MappingPreviewArgs,
) -> Result<(bytes::Bytes, Vec<std::ops::Range<usize>>)> {
    if let Some(path) = &a.page {
        let body = std::fs::read(path).map_err(|e| {
            CliError::usage(format!("cannot read page file {}: {e}", path.display()))
        })?;
        let body = bytes::Bytes::from(body);
        let env = envelope::scan(&body).map_err(|e| {
            CliError::usage(format!("{} is not a Stripe list page: {e}", path.display()))
        })?;
        return Ok((body, env.records));
    }
    let page = first_page(&a.source, a.resource, !a.account).await?;
    Ok((page.body, page.records))
}

/// `stripe-xdm mapping preview`.
pub async fn mapping_preview(a: MappingPreviewArgs) -> Result<u8> {
    let mapping = Mapping::from_file(&a.file, &a.tenant).map_err(CliError::usage)?;
    let schema = load_schema(a.schema.as_deref(), a.resource, &a.tenant)?;
    let mapper = Mapper::new(a.resource, mapping)
        .await
        .map_err(CliError::usage)?;
    let (body, mut ranges) = sample_page(&a).await?;
    ranges.truncate(a.rows.clamp(1, 100));
    let decoded = decode_records(a.resource, &body, &ranges);
    let rows = stripe_xdm::app::preview::preview(&mapper, &schema, &decoded)
        .await
        .map_err(CliError::usage)?;
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&rows).expect("rows serialize")
        );
        return Ok(0);
    }
    let accepted = rows.iter().filter(|r| r.accepted).count();
    for r in &rows {
        println!(
            "{} {}",
            if r.accepted { "✓" } else { "✗" },
            r.object_id.as_deref().unwrap_or("(no id)")
        );
        if !r.mapped.is_null() {
            println!("    {}", r.mapped);
        }
        for (column, code, message) in &r.issues {
            let at = if column.is_empty() {
                String::new()
            } else {
                format!("{column}: ")
            };
            println!("    {code} {at}{message}");
        }
    }
    println!(
        "{accepted} of {} rows pass {}",
        rows.len(),
        schema_label(&schema)
    );
    Ok(0)
}

fn schema_label(schema: &stripe_xdm::xdm::XdmSchema) -> String {
    schema
        .title()
        .or(schema.id())
        .unwrap_or("the XDM schema")
        .to_string()
}

/// `stripe-xdm errors replay`.
pub async fn errors_replay(a: ReplayArgs) -> Result<u8> {
    // A batch of a catalog dataset is validated as its runs are (Profile's primary identity),
    // with the dataset's tenant.
    let cat = a.home.open_existing()?;
    let tenant = app::rejected::replay_tenant(&a.batch, cat.as_ref(), &a.tenant);
    let mapping = Mapping::from_file(&a.mapping, &tenant).map_err(CliError::usage)?;
    let report = app::rejected::replay_batch(
        &a.batch,
        mapping,
        a.schema.as_deref(),
        &tenant,
        a.mirror.clone(),
        cat.as_ref(),
    )
    .await
    .map_err(app_err)?;
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("report serializes")
        );
    } else {
        println!(
            "batch {}: {} rejected rows, {} already replayed, {} re-mapped, {} now pass",
            report.source_batch,
            report.rejected_rows,
            report.already_replayed,
            report.replayed,
            report.ingested
        );
        if let Some(dir) = &report.new_batch_dir {
            println!("new batch: {}", dir.display());
        }
        for (code, n) in &report.still_rejected {
            println!("still failing: {code} ×{n}");
        }
    }
    Ok(0)
}
