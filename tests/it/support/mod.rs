//! Shared helpers for the integration tests.

pub mod bin;
pub mod stub;
pub mod webdriver;

use std::path::Path;

use stripe_xdm::pipeline::RunConfig;
use stripe_xdm::sim::{SimConfig, SimHandle, Simulator, SIM_KEY};
use stripe_xdm::source::{ClientConfig, StripeClient};
use stripe_xdm::{Resource, Secret};

/// A run of `resource` with the built-in mapping and schema (tenant `acme`) into `out`.
pub fn builtin(resource: Resource, out: &Path) -> RunConfig {
    RunConfig::builtin(resource, "acme", out.to_path_buf()).expect("built-in schema parses")
}

/// Starts the simulator with `config` and a client for it with no rate limit and short
/// backoffs (tests must not wait on real Stripe pacing).
pub async fn sim(config: SimConfig) -> (SimHandle, StripeClient) {
    let handle = Simulator::new(config)
        .start()
        .await
        .expect("simulator starts");
    let mut cfg = ClientConfig::new(handle.base_url(), Secret::new(SIM_KEY));
    cfg.requests_per_sec = Some(10_000.0);
    cfg.endpoint_requests_per_sec = Some(10_000.0);
    cfg.backoff_base = std::time::Duration::from_millis(5);
    cfg.backoff_max = std::time::Duration::from_millis(20);
    (handle, StripeClient::new(cfg).expect("client"))
}

/// The rows of `batches` as JSON objects (nulls left out, as Platform wants them).
pub fn json_rows(batches: &[arrow::array::RecordBatch]) -> Vec<serde_json::Value> {
    let mut w = arrow::json::ArrayWriter::new(Vec::new());
    for b in batches {
        w.write(b).unwrap();
    }
    w.finish().unwrap();
    serde_json::from_slice(&w.into_inner()).unwrap_or_default()
}
