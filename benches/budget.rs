//! At the API's budget: a backfill against the simulator enforcing Stripe's test-mode limit
//! (25 requests/s, 429 beyond it) with the client's budget set to the same 25 requests/s.
//! Prints achieved requests/s ÷ budget and the 429s our own pacing caused (target: ≥ 0.95 and 0).
//!
//! Run: `cargo bench --bench budget` (defaults: budget 25/s, 20 s of requests, 4 windows), or
//! `BUDGET_RPS=100 BUDGET_SECS=30 BUDGET_CONCURRENCY=8 cargo bench --bench budget`.

#[path = "support/mod.rs"]
mod support;
use support::env;

use std::time::Instant;

use stripe_xdm::pipeline::{self, RunConfig};
use stripe_xdm::sim::{Faults, SimConfig, Simulator, SIM_KEY};
use stripe_xdm::source::{ClientConfig, StripeClient, Window};
use stripe_xdm::{Resource, Secret};

fn main() {
    let rps: f64 = env("BUDGET_RPS", 25.0);
    let secs: f64 = env("BUDGET_SECS", 20.0);
    let concurrency: usize = env("BUDGET_CONCURRENCY", 4);
    // Enough objects for `secs` of full pages at the budget.
    let records = (rps * secs * 100.0) as u64;
    let rt = support::runtime();
    rt.block_on(async {
        let config = SimConfig::default()
            .with_count(Resource::Charges, records)
            .with_window(1_600_000_000, 1_760_000_000)
            .with_faults(Faults {
                rate_limit: Some(rps),
                ..Faults::default()
            });
        let handle = Simulator::new(config).start().await.expect("simulator");
        let mut cfg = ClientConfig::new(handle.base_url(), Secret::new(SIM_KEY));
        cfg.requests_per_sec = Some(rps);
        cfg.endpoint_requests_per_sec = Some(rps);
        let client = StripeClient::new(cfg).expect("client");
        let out = tempfile::tempdir().expect("temp dir");
        let mut run = RunConfig::builtin(Resource::Charges, "acme", out.path().to_path_buf())
            .expect("built-in schema");
        run.window = Window {
            gte: Some(1_600_000_000),
            lt: Some(1_760_000_000),
        };
        run.control.concurrency = concurrency;
        let started = Instant::now();
        let report = pipeline::run(&client, run).await.expect("run");
        let wall = started.elapsed().as_secs_f64();
        assert_eq!(report.fetched, records, "every object");
        let stats = handle.stats();
        let achieved = report.requests as f64 / wall;
        println!(
            "budget {rps} req/s, {concurrency} windows: {} requests ({} pages) in {wall:.2} s = {achieved:.2} req/s, ratio {:.3}; 429s from the limiter: {}, retries {}, {} records",
            report.requests,
            report.pages,
            achieved / rps,
            stats.limited_429,
            report.retries,
            report.fetched
        );
        println!(
            "reproduce: BUDGET_RPS={rps} BUDGET_SECS={secs} BUDGET_CONCURRENCY={concurrency} cargo bench --bench budget"
        );
        handle.shutdown().await;
    });
}
