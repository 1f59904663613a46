//! `stripe-xdm serve`: run every enabled dataflow on its schedule until SIGINT/SIGTERM.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use stripe_xdm::runner::serve::{serve as run_scheduler, ServeOptions};
use stripe_xdm::runner::RunnerConfig;

use super::flows::{ApiArgs, HomeArgs};
use super::CliError;

/// Options of `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    home: HomeArgs,
    #[command(flatten)]
    api: ApiArgs,
    /// Output folder (default: <home>/data).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Seconds between two looks at the schedules (0.05 to 3600).
    #[arg(long, default_value_t = 5.0, value_parser = parse_tick)]
    tick_secs: f64,
    /// `created` windows fetched at once per run.
    #[arg(long, default_value_t = 4, value_parser = super::parse_concurrency)]
    concurrency: usize,
    /// Seconds between Platform batch status polls for dataflows that upload.
    #[arg(long, default_value_t = 10)]
    poll_interval: u64,
    /// Stop after this many ticks (for scripts and tests; default: until SIGINT/SIGTERM).
    #[arg(long, hide = true)]
    max_ticks: Option<u64>,
}

/// `stripe-xdm serve`
pub async fn serve(a: ServeArgs) -> Result<u8, CliError> {
    // Schedules what was created before: a home without a catalog is a mistyped one.
    let cat = a.home.open_created()?;
    let mut cfg = RunnerConfig::new(cat.home());
    drop(cat);
    cfg.api_base_url = a.api.base_url.clone();
    cfg.requests_per_sec = a.api.rate;
    cfg.endpoint_requests_per_sec = a.api.endpoint_rate;
    if let Some(out) = &a.out {
        // Checked now: every due run would otherwise fail on it (using up `once` dataflows).
        stripe_xdm::app::output_folder("--out", out).map_err(super::dataflows::app_err)?;
        cfg.out_dir = out.clone();
    }
    cfg.concurrency = a.concurrency;
    cfg.upload_poll_interval = Duration::from_secs(a.poll_interval.max(1));
    let opts = ServeOptions {
        tick: Duration::from_secs_f64(a.tick_secs),
        max_ticks: a.max_ticks,
        ..ServeOptions::default()
    };
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        super::signals::wait_for_shutdown().await;
        eprintln!("stripe-xdm serve: stopping (runs in flight stop at a safe point and resume on the next start)");
        let _ = tx.send(true);
    });
    eprintln!(
        "stripe-xdm serve: scheduling the enabled dataflows of {} (Ctrl-C to stop)",
        cfg.home.display()
    );
    let summary = run_scheduler(cfg, opts, rx)
        .await
        .map_err(CliError::usage)?;
    for r in &summary.runs {
        match &r.outcome {
            Ok(res) => println!(
                "dataflow {:?}: run {} {} ({} received, {} ingested, {} failed{})",
                r.dataflow,
                res.run.id,
                res.run.status,
                res.run.counts.fetched,
                res.run.ingested(),
                res.run.counts.rejected,
                res.run
                    .upload
                    .as_ref()
                    .map(|u| format!(", Platform batch {}", u.status))
                    .unwrap_or_default()
            ),
            Err(e) => println!("dataflow {:?}: {e}", r.dataflow),
        }
    }
    eprintln!(
        "stripe-xdm serve: stopped after {} tick(s), {} run(s)",
        summary.ticks,
        summary.runs.len()
    );
    Ok(0)
}

/// `--tick-secs`: a finite number of seconds from 0.05 to an hour.
fn parse_tick(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(t) if (0.05..=3600.0).contains(&t) => Ok(t),
        _ => Err(format!(
            "{s:?}: seconds between two looks at the schedules, from 0.05 to 3600 (Platform's shortest schedule is every 15 minutes)"
        )),
    }
}
