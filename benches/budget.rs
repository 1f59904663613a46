//! At the API's budget: a backfill against the simulator enforcing Stripe's test-mode limit
//! (25 requests/s, 429 beyond it) with the client's budget set to the same 25 requests/s.
//! Prints achieved requests/s ÷ budget and the 429s our own pacing caused (target: ≥ 0.95 and 0).
//!
//! Run: `cargo bench --bench budget` (defaults: budget 25/s, 20 s of requests, 4 windows), or
//! `BUDGET_RPS=100 BUDGET_SECS=30 BUDGET_CONCURRENCY=8 cargo bench --bench budget`.
//!
//! With `BUDGET_CHANGES=N` it measures change capture instead: N customers changed after
//! creation (events rendered at another API version, so each is re-fetched by id), read
//! through `/v1/events` at the budget; prints requests per changed object and the time per
//! 10k changes.

#[path = "support/mod.rs"]
mod support;
use support::env;

use std::time::Instant;

use stripe_xdm::pipeline::{self, RunConfig};
use stripe_xdm::sim::{Faults, SimConfig, Simulator, SIM_KEY};
use stripe_xdm::source::{ClientConfig, StripeClient, Window};
use stripe_xdm::{Resource, Secret};

fn main() {
    let changes: u64 = env("BUDGET_CHANGES", 0);
    if changes > 0 {
        return hydration(changes, env("BUDGET_RPS", 25.0));
    }
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
        assert_eq!(report.counts.fetched, records, "every object");
        let stats = handle.stats();
        let achieved = report.requests as f64 / wall;
        println!(
            "budget {rps} req/s, {concurrency} windows: {} requests ({} pages) in {wall:.2} s = {achieved:.2} req/s, ratio {:.3}; 429s from the limiter: {}, retries {}, {} records",
            report.requests,
            report.counts.pages,
            achieved / rps,
            stats.limited_429,
            report.retries,
            report.counts.fetched
        );
        println!(
            "reproduce: BUDGET_RPS={rps} BUDGET_SECS={secs} BUDGET_CONCURRENCY={concurrency} cargo bench --bench budget"
        );
        handle.shutdown().await;
    });
}

/// Change capture at the budget: `n` changed customers hydrated through events.
fn hydration(n: u64, rps: f64) {
    let rt = support::runtime();
    rt.block_on(async {
        let now = chrono::Utc::now().timestamp();
        let config = SimConfig::default()
            .with_count(Resource::Customers, n * 2)
            .with_faults(Faults {
                rate_limit: Some(rps),
                ..Faults::default()
            });
        let handle = Simulator::new(config).start().await.expect("simulator");
        // Distinct objects (so every change is one object to hydrate): one update each.
        let sim = handle.simulator();
        for i in 0..n {
            sim.update(Resource::Customers, i * 2, now - 3600 + (i % 3000) as i64)
                .expect("update");
        }
        let mut cfg = ClientConfig::new(handle.base_url(), Secret::new(SIM_KEY));
        cfg.requests_per_sec = Some(rps);
        cfg.endpoint_requests_per_sec = Some(rps);
        let client = StripeClient::new(cfg).expect("client");
        let fields = stripe_xdm::decode::source_schema(Resource::Customers)
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .filter(|f| f != "_raw")
            .collect();
        let q = stripe_xdm::source::ChangeQuery {
            resource: Resource::Customers,
            since: now - 7200,
            upto: now,
            listed_from: None,
            required_fields: fields,
        };
        let started = Instant::now();
        let set = client.read_changes(&q).await.expect("changes");
        let wall = started.elapsed().as_secs_f64();
        assert_eq!(set.changes.len() as u64, n, "every changed object");
        let requests = client.stats().requests;
        println!(
            "change capture at {rps} req/s: {n} changed customers, {} events in {} pages, {} retrieves, {requests} requests in {wall:.2} s = {:.3} requests per changed object, {:.0} s per 10k changes; 429s from the limiter: {}",
            set.events,
            set.pages,
            set.retrieved,
            requests as f64 / n as f64,
            wall * 10_000.0 / n as f64,
            handle.stats().limited_429,
        );
        println!("reproduce: BUDGET_CHANGES={n} BUDGET_RPS={rps} cargo bench --bench budget");
        handle.shutdown().await;
    });
}
