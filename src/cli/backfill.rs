//! `stripe-xdm backfill DATAFLOW`: the dataflow's next window as a high-volume run — parallel
//! windows, checkpoints in the catalog, progress — or with `--plan`, an estimate of its requests
//! and duration under the current budget, from one sampled page per window, before it starts.

use clap::Args;
use stripe_xdm::catalog::Catalog;
use stripe_xdm::pipeline::EARLIEST_CREATED;
use stripe_xdm::runner::{self, SAFETY_LAG_SECS};
use stripe_xdm::schedule::window_for_run;
use stripe_xdm::source::plan::plan_backfill;
use stripe_xdm::Resource;

use super::dataflows::{run_dataflow, DataflowRunArgs};
use super::flows::{cat_err, HomeArgs};
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
    /// Windows sampled by --plan.
    #[arg(long, default_value_t = 16)]
    sample_windows: usize,
}

/// `stripe-xdm backfill`
pub async fn backfill(a: BackfillArgs) -> Result<u8, CliError> {
    let cat = a.home.open()?;
    if !a.plan {
        return run_dataflow(&cat, a.run).await;
    }
    plan(&cat, &a).await
}

async fn plan(cat: &Catalog, a: &BackfillArgs) -> Result<u8, CliError> {
    let flow = cat.dataflow(&a.run.name).map_err(cat_err)?;
    let resource: Resource = flow.resource;
    let key = cat.account_key(&flow.account).map_err(cat_err)?;
    let account = cat.account(&flow.account).map_err(cat_err)?;
    let client = a.run.api.client(key, Some(&account))?;
    // The window the next run would take (an interrupted run keeps its own).
    let window = match cat
        .active_run(&flow.name)
        .map_err(cat_err)?
        .and_then(|r| r.window)
    {
        Some(w) => w,
        None => window_for_run(
            &flow.schedule,
            cat.watermark(&flow.name).map_err(cat_err)?,
            runner::now(),
            SAFETY_LAG_SECS,
        ),
    };
    let gte = window.gte.unwrap_or(EARLIEST_CREATED);
    let estimate = plan_backfill(&client, resource, gte, window.lt, a.sample_windows.max(1))
        .await
        .map_err(CliError::usage)?;
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
            "Run it with: stripe-xdm backfill {:?} --concurrency {} (resumable: Ctrl-C or a crash continues from the last checkpoint)",
            flow.name, a.run.concurrency
        );
    }
    Ok(0)
}
