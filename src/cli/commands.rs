//! The commands: each turns parsed arguments into library calls and prints the result.

use std::path::Path;

use stripe_xdm::app;
use stripe_xdm::pipeline::{self, PipelineError, RunReport};
use stripe_xdm::sim::{Faults, SimConfig, Simulator, SIM_KEY};
use stripe_xdm::sink::BatchStatus;
use stripe_xdm::source::{StripeClient, Window};

use super::dataflows::app_err;
use stripe_xdm::xdm::XdmSchema;
use stripe_xdm::{Resource, Secret};

use super::{table, CliError, DemoArgs, PreviewArgs, RunArgs, SimArgs, SourceArgs};

type Result<T> = std::result::Result<T, CliError>;

fn pipeline_error(e: PipelineError) -> CliError {
    let code = if e.is_usage() {
        super::EXIT_USAGE
    } else {
        super::EXIT_DATA
    };
    CliError::chain(&e, code)
}

pub(super) fn client_from(args: &SourceArgs, key: Secret) -> Result<StripeClient> {
    StripeClient::new(overrides(args).client_config(key, None)).map_err(CliError::usage)
}

/// The source flags as overrides of an account's settings (or of the simulator's client).
fn overrides(args: &SourceArgs) -> app::ApiOverrides {
    app::ApiOverrides {
        base_url: args.base_url.clone(),
        rate: args.rate,
        endpoint_rate: args.endpoint_rate,
        stripe_account: args.stripe_account.clone(),
        stripe_version: Some(args.stripe_version.clone()),
        max_retries: Some(args.max_retries),
    }
}

pub(super) fn key_from(args: &SourceArgs) -> Result<Secret> {
    match &args.api_key_file {
        Some(path) => Secret::from_file(path).map_err(CliError::usage),
        None => Secret::from_env(&args.api_key_env).map_err(CliError::usage),
    }
}

/// Parses a time bound: unix seconds, RFC 3339, or a UTC date.
pub fn parse_time(flag: &str, value: &str) -> Result<i64> {
    stripe_xdm::app::parse_time(flag, value).map_err(CliError::usage)
}

pub(super) fn load_schema(
    path: Option<&Path>,
    resource: Resource,
    tenant: &str,
) -> Result<XdmSchema> {
    app::oneoff::load_schema(path, resource, tenant).map_err(app_err)
}

/// `stripe-xdm run`.
pub async fn run(a: RunArgs) -> Result<u8> {
    let key = key_from(&a.source)?;
    let client = client_from(&a.source, key)?;
    let req = app::oneoff::OneOffRequest {
        resource: Some(a.resource),
        mapping: a.mapping.clone(),
        schema: a.schema.clone(),
        tenant: a.tenant.clone(),
        out: a.out.clone(),
        dataset: a.dataset.clone(),
        created_gte: a.created_gte.clone(),
        created_lt: a.created_lt.clone(),
        error_diagnostics: a.error_diagnostics,
        partial_ingestion: a.partial_ingestion,
        concurrency: a.concurrency,
        stripe_account: a.source.stripe_account.clone(),
    };
    let progress = super::progress::Display::new(a.quiet || a.json);
    let cfg = app::oneoff::one_off_config(&req, Some(progress.clone())).map_err(app_err)?;
    let report = pipeline::run(&client, cfg).await;
    progress.finish();
    let report = report.map_err(pipeline_error)?;
    print_reports(std::slice::from_ref(&report), a.json);
    Ok(exit_code(&[report]))
}

pub(super) fn exit_code(reports: &[RunReport]) -> u8 {
    if reports.iter().all(|r| r.status == BatchStatus::Success) {
        0
    } else {
        super::EXIT_DATA
    }
}

pub(super) fn print_reports(reports: &[RunReport], json: bool) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &reports.iter().map(RunReport::to_json).collect::<Vec<_>>()
            )
            .expect("reports serialize")
        );
        return;
    }
    let rows: Vec<Vec<String>> = reports
        .iter()
        .map(|r| {
            vec![
                r.resource.clone(),
                format!("{:?}", r.status).to_lowercase(),
                r.counts.fetched.to_string(),
                r.counts.staged.to_string(),
                r.counts.ingested.to_string(),
                r.counts.rejected.to_string(),
                r.counts.pages.to_string(),
                r.requests.to_string(),
                r.retries.to_string(),
                format!("{:.1}", r.duration.as_secs_f64()),
                r.batch_dir.display().to_string(),
            ]
        })
        .collect();
    print!(
        "{}",
        table::render(
            &[
                "resource",
                "status",
                ">fetched",
                ">staged",
                ">ingested",
                ">rejected",
                ">pages",
                ">requests",
                ">retries",
                ">secs",
                "written to"
            ],
            &rows
        )
    );
    for r in reports {
        if let Some(reason) = &r.failure_reason {
            println!("{}: FAILED: {reason}", r.resource);
        }
        if !r.counts.rejected_by_code.is_empty() {
            let codes: Vec<String> = r
                .counts
                .rejected_by_code
                .iter()
                .map(|(c, n)| format!("{c} ×{n}"))
                .collect();
            println!("{}: rejected by code: {}", r.resource, codes.join(", "));
        }
    }
}

/// `stripe-xdm demo`.
pub async fn demo(a: DemoArgs) -> Result<u8> {
    let req = app::oneoff::DemoRequest {
        seed: a.seed,
        count: a.count,
        corrupt_rate: a.corrupt_rate,
        tenant: a.tenant.clone(),
        out: a.out.clone(),
    };
    let reports = app::oneoff::demo(&req, |base| {
        eprintln!(
            "simulator listening on {base} (key {})",
            Secret::new(SIM_KEY)
        )
    })
    .await
    .map_err(app_err)?;
    print_reports(&reports, a.json);
    if !a.json {
        let out = a.out.display();
        let rejected = match reports.iter().any(|r| r.counts.rejected > 0) {
            true => {
                "; rejected rows sit beside them in rejected.parquet with row_errors/ diagnostics"
            }
            false => "",
        };
        println!(
            "\nAccepted rows are Parquet batches under {out}/<resource>/batches/{rejected}.\n\
             Every record fetched is in the mirror under {out}/mirror/<resource>/: \
             stripe-xdm sql --out {out} \"SELECT count(*) FROM charges\""
        );
    }
    Ok(exit_code(&reports))
}

/// The first page of `resource`: from the built-in simulator when `use_sim`, otherwise from the
/// account the source arguments name.
pub(super) async fn first_page(
    source: &SourceArgs,
    resource: Resource,
    use_sim: bool,
) -> Result<stripe_xdm::source::Page> {
    if use_sim {
        return app::oneoff::sim_first_page(resource, &overrides(source))
            .await
            .map_err(app_err);
    }
    list_first(&client_from(source, key_from(source)?)?, resource).await
}

async fn list_first(client: &StripeClient, resource: Resource) -> Result<stripe_xdm::source::Page> {
    client
        .list_page(resource, Window::default(), None)
        .await
        .map_err(|e| {
            if e.is_auth() {
                CliError::usage(e)
            } else {
                CliError::failed(e)
            }
        })
}

/// The most rows `preview` shows: one page of a Stripe list.
const MAX_PREVIEW_ROWS: usize = 100;

/// `stripe-xdm preview`.
pub async fn preview(a: PreviewArgs) -> Result<u8> {
    if a.rows == 0 || a.rows > MAX_PREVIEW_ROWS {
        return Err(CliError::usage(format!(
            "--rows {}: preview shows 1 to {MAX_PREVIEW_ROWS} rows (the first page of the list)",
            a.rows
        )));
    }
    let page = match &a.account {
        Some(name) => {
            // The account's key, from the catalog: never from the environment or the command line.
            app::first_page(
                &a.home.open_created()?,
                name,
                a.resource,
                &overrides(&a.source),
            )
            .await
            .map_err(app_err)?
        }
        None => {
            let use_sim = a.sim
                || (a.source.api_key_file.is_none()
                    && std::env::var(&a.source.api_key_env).is_err());
            if use_sim && !a.sim {
                eprintln!(
                    "(no key in {}: previewing the built-in simulator)",
                    a.source.api_key_env
                );
            }
            first_page(&a.source, a.resource, use_sim).await?
        }
    };
    let decoded = stripe_xdm::decode::decode_records(a.resource, &page.body, &page.records);
    println!("{}", stripe_xdm::decode::schema::schema_tree(a.resource));
    let n = a.rows.min(decoded.batch.num_rows());
    let shown = decoded.batch.slice(0, n);
    // Keep the table readable: the first columns that fit a terminal, strings shortened.
    let cols: Vec<usize> = (0..shown.num_columns().min(8)).collect();
    let shown = shown.project(&cols).map_err(CliError::failed)?;
    let text = arrow::util::pretty::pretty_format_batches(&[shown]).map_err(CliError::failed)?;
    println!(
        "first {n} of {} records on the first page (has_more: {}):\n{text}",
        page.len(),
        page.has_more
    );
    let extra = stripe_xdm::decode::schema::undecoded_fields(a.resource, decoded.sources());
    if !extra.is_empty() {
        println!(
            "fields in the records beyond the decoded schema (kept in `_raw`; map them with json_as_text(_raw, 'a', 'b', …)):"
        );
        for (path, n) in &extra {
            println!("  {path}  ({n} of {} records)", decoded.batch.num_rows());
        }
    }
    for r in &decoded.rejected {
        println!(
            "undecodable record {}: {}",
            r.id.as_deref().unwrap_or("(no id)"),
            r.reason
        );
    }
    Ok(0)
}

/// `stripe-xdm sim`.
pub async fn sim(a: SimArgs) -> Result<u8> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], a.port));
    let handle = Simulator::new(sim_config(&a))
        .start_on(addr)
        .await
        .map_err(|e| CliError::usage(format!("cannot listen on {addr}: {e}")))?;
    println!("Stripe simulator on {}", handle.base_url());
    println!("test key: {SIM_KEY}");
    println!(
        "try: STRIPE_API_KEY={SIM_KEY} stripe-xdm run --resource charges --base-url {}",
        handle.base_url()
    );
    tokio::signal::ctrl_c()
        .await
        .map_err(|e| CliError::failed(format!("waiting for Ctrl-C: {e}")))?;
    let stats = handle.stats();
    handle.shutdown().await;
    println!("served {} requests", stats.requests);
    Ok(0)
}

/// The simulator `sim`'s flags describe.
fn sim_config(a: &SimArgs) -> SimConfig {
    let accounts: Vec<&str> = a.connected_accounts.iter().map(String::as_str).collect();
    let config = a
        .restricted_keys
        .iter()
        .fold(SimConfig::default(), |c, (key, resources)| {
            c.with_restricted_key(key.clone(), resources)
        });
    config
        .with_seed(a.seed)
        .with_counts(a.count)
        .with_connected_accounts(&accounts)
        .with_faults(Faults {
            rate_429: a.rate_429,
            rate_5xx: a.rate_5xx,
            slow_rate: a.slow_rate,
            slow_ms: a.slow_ms,
            corrupt_rate: a.corrupt_rate,
            rate_limit: a.rate_limit,
            ..Faults::default()
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Sim {
        #[command(flatten)]
        args: SimArgs,
    }

    #[test]
    fn sim_takes_connected_accounts_and_restricted_keys() {
        let parsed = Sim::try_parse_from([
            "sim",
            "--connected-account",
            "acct_1A",
            "--connected-account",
            "acct_1B",
            "--count",
            "5",
            "--restricted-key",
            "rk_test_x=charges,refunds",
        ])
        .unwrap();
        let config = sim_config(&parsed.args);
        assert_eq!(config.connected_accounts, ["acct_1A", "acct_1B"]);
        assert_eq!(
            config.restricted,
            [(
                "rk_test_x".to_string(),
                vec![Resource::Charges, Resource::Refunds]
            )]
        );
        let bad = Sim::try_parse_from(["sim", "--restricted-key", "rk_test_x=charge5"]);
        assert!(bad.is_err());
        let none = sim_config(&Sim::try_parse_from(["sim"]).unwrap().args);
        assert!(none.connected_accounts.is_empty());
    }
}
