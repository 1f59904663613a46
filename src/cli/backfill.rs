//! `stripe-xdm backfill DATAFLOW`: the dataflow's next window as a high-volume run — parallel
//! windows, checkpoints in the catalog, progress — or with `--plan`, an estimate of its requests
//! and duration under the current budget, from one sampled page per window, before it starts.

use clap::builder::TypedValueParser as _;
use clap::Args;
use stripe_xdm::app;
use stripe_xdm::catalog::Catalog;

use super::dataflows::{app_err, run_dataflow, DataflowRunArgs};
use super::flows::HomeArgs;
use super::CliError;

/// Options of `backfill`.
#[derive(Debug, Args)]
pub struct BackfillArgs {
    #[command(flatten)]
    home: HomeArgs,
    #[command(flatten)]
    run: DataflowRunArgs,
    /// Only estimate: sample the first page of each window and print the requests and the time
    /// the backfill needs at the request budget; nothing is written.
    #[arg(long)]
    plan: bool,
    /// Windows sampled by --plan (1 to 256).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=256).map(usize::from))]
    sample_windows: usize,
}

/// `stripe-xdm backfill`
pub async fn backfill(a: BackfillArgs) -> Result<u8, CliError> {
    let cat = a.home.open_created()?;
    if !a.plan {
        return run_dataflow(&cat, a.run).await;
    }
    plan(&cat, &a).await
}

async fn plan(cat: &Catalog, a: &BackfillArgs) -> Result<u8, CliError> {
    let (flow, estimate) =
        app::runs::backfill_plan(cat, &a.run.name, &a.run.api.overrides(), a.sample_windows)
            .await
            .map_err(app_err)?;
    if a.run.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&estimate).expect("estimate serializes")
        );
    } else {
        println!(
            "Backfill plan of dataflow {:?} ({})",
            flow.name, flow.resource
        );
        print!("{estimate}");
        println!(
            "Run it with: stripe-xdm backfill {}{} --concurrency {} (resumable: Ctrl-C or a crash continues from the last checkpoint)",
            super::flows::shell_word(&flow.name),
            a.run.api.as_flags(),
            a.run.concurrency
        );
    }
    Ok(0)
}
