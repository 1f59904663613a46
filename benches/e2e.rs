//! End-to-end bench: the simulator (no rate limit) → the whole pipeline (fetch, decode, stage in
//! the Delta mirror, cut the batch from it) → Parquet on disk; then a remap of the whole mirror.
//! Prints records/s, peak RSS, the mirror's size next to the raw JSON's, and remap records/s.
//!
//! Run: `cargo bench --bench e2e` (defaults: 200,000 charges), or
//! `E2E_RECORDS=1000000 E2E_CONCURRENCY=4 cargo bench --bench e2e`.

#[path = "support/mod.rs"]
mod support;
use support::env;

use std::time::Instant;

use stripe_xdm::pipeline::{self, RunConfig};
use stripe_xdm::sim::{SimConfig, Simulator, SIM_KEY};
use stripe_xdm::source::{ClientConfig, StripeClient};
use stripe_xdm::{Resource, Secret};

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Bytes of the files under `dir`, recursively.
fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_bytes(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

fn main() {
    // `cargo bench` passes `--bench`; accept and ignore harness flags.
    let records: u64 = env("E2E_RECORDS", 200_000);
    let resource: Resource = env("E2E_RESOURCE", Resource::Charges);
    let concurrency: usize = env("E2E_CONCURRENCY", 4);
    let rt = support::runtime();
    rt.block_on(async {
        // Objects spread over ~5 years so windows stay realistic at millions of records.
        let config = SimConfig::default()
            .with_count(resource, records)
            .with_window(1_600_000_000, 1_760_000_000);
        let handle = Simulator::new(config).start().await.expect("simulator");
        let mut cfg = ClientConfig::new(handle.base_url(), Secret::new(SIM_KEY));
        cfg.requests_per_sec = Some(1e9);
        cfg.endpoint_requests_per_sec = Some(1e9);
        let client = StripeClient::new(cfg).expect("client");
        let out = tempfile::tempdir().expect("temp dir");
        let mut run = RunConfig::builtin(resource, "acme", out.path().to_path_buf()).unwrap();
        run.control.concurrency = concurrency;
        run.chunk_records = env("E2E_CHUNK", pipeline::DEFAULT_CHUNK_RECORDS);
        let started = Instant::now();
        let report = pipeline::run(&client, run).await.expect("run");
        let secs = started.elapsed().as_secs_f64();
        assert_eq!(report.counts.fetched, report.counts.ingested + report.counts.rejected);
        println!(
            "e2e {resource} ({concurrency} windows): {} records in {secs:.2} s = {:.0} records/s, {:.1} MB/s in, {} pages, {} files, {:.1} MiB Parquet, peak RSS {:.1} MiB",
            report.counts.fetched,
            report.counts.fetched as f64 / secs,
            report.counts.bytes_in as f64 / secs / 1e6,
            report.counts.pages,
            report.counts.files,
            report.counts.bytes_out as f64 / (1024.0 * 1024.0),
            peak_rss_mib()
        );
        let mirror_bytes = dir_bytes(&out.path().join("mirror").join(resource.path()));
        println!(
            "mirror: {:.1} MiB on disk for {:.1} MiB of JSON received ({:.2}x), {:.1} MiB per 1 M records",
            mirror_bytes as f64 / (1024.0 * 1024.0),
            report.counts.bytes_in as f64 / (1024.0 * 1024.0),
            report.counts.bytes_in as f64 / mirror_bytes.max(1) as f64,
            mirror_bytes as f64 / (1024.0 * 1024.0) * 1e6 / report.counts.fetched.max(1) as f64
        );
        handle.shutdown().await;
        let remap_cfg = RunConfig::builtin(resource, "acme", out.path().to_path_buf()).unwrap();
        let started = Instant::now();
        let remapped = pipeline::remap(remap_cfg).await.expect("remap");
        let secs = started.elapsed().as_secs_f64();
        assert_eq!(remapped.counts.fetched, report.counts.staged);
        println!(
            "remap {resource}: {} records in {secs:.2} s = {:.0} records/s (0 Stripe requests), peak RSS {:.1} MiB",
            remapped.counts.fetched,
            remapped.counts.fetched as f64 / secs,
            peak_rss_mib()
        );
        println!("reproduce: E2E_RECORDS={records} E2E_RESOURCE={resource} E2E_CONCURRENCY={concurrency} cargo bench --bench e2e");
    });
}
