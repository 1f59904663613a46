//! `errors replay`: rejected rows re-mapped from their stored sources into a new batch, once.

use std::collections::BTreeSet;

use arrow::array::{Array, AsArray};
use stripe_xdm::map::Mapping;
use stripe_xdm::pipeline::{self, RunConfig};
use stripe_xdm::replay::replay;
use stripe_xdm::sim::{SimConfig, Simulator, SIM_KEY};
use stripe_xdm::sink::{read_batch_dir, BatchStatus, Manifest};
use stripe_xdm::source::{ClientConfig, StripeClient};
use stripe_xdm::xdm::XdmSchema;
use stripe_xdm::{Resource, Secret};

const SCHEMA: &str = r#"{
  "title": "Charges, USD only", "type": "object", "meta:behaviorType": "time-series",
  "required": ["_id", "timestamp"],
  "properties": {
    "_id": {"type": "string"}, "timestamp": {"type": "string", "format": "date-time"},
    "_acme": {"type": "object", "properties": {
      "amount": {"type": "integer", "meta:xdmType": "long"},
      "currency": {"type": "string", "enum": ["usd"]}
    }}
  }
}"#;

fn mapping(currency_expr: &str) -> Mapping {
    Mapping {
        sql: format!(
            "SELECT id AS \"_id\", created AS \"timestamp\", \
             named_struct('amount', amount, 'currency', {currency_expr}) AS \"_acme\" FROM charges"
        ),
        origin: "test mapping".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_moves_fixed_rows_into_a_new_batch_exactly_once() {
    let handle = Simulator::new(SimConfig::default().with_count(Resource::Charges, 300))
        .start()
        .await
        .unwrap();
    let mut cc = ClientConfig::new(handle.base_url(), Secret::new(SIM_KEY));
    cc.requests_per_sec = Some(10_000.0);
    cc.endpoint_requests_per_sec = Some(10_000.0);
    let client = StripeClient::new(cc).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let schema = XdmSchema::from_json_str(SCHEMA).unwrap();
    let mut cfg = RunConfig::builtin(Resource::Charges, "acme", dir.path().to_path_buf()).unwrap();
    cfg.mapping = mapping("currency");
    cfg.schema = schema.clone();
    cfg.partial_ingestion = Some(100.0);
    let run = pipeline::run(&client, cfg).await.unwrap();
    let enum_rejects = run
        .counts
        .rejected_by_code
        .get("XDM-ENUM")
        .copied()
        .unwrap_or(0);
    assert!(enum_rejects > 0, "non-usd charges were rejected: {run:?}");
    assert_eq!(run.status, BatchStatus::Success);

    // The fixed mapping drops non-USD currencies instead of failing the row.
    let fixed = mapping("CASE WHEN currency = 'usd' THEN currency END");
    // From the mirror: each row's object at its latest version there.
    let mirror = dir.path().join("mirror/charges");
    let first = replay(&run.batch_dir, fixed.clone(), &schema, Some(&mirror))
        .await
        .unwrap();
    assert_eq!(first.rejected_rows, run.counts.rejected);
    assert_eq!(
        first.from_mirror, first.replayed,
        "every object is in the mirror"
    );
    assert_eq!(first.ingested, enum_rejects);
    assert!(
        first.still_rejected.is_empty(),
        "{:?}",
        first.still_rejected
    );
    let new_dir = first.new_batch_dir.clone().expect("a new batch");
    let manifest = Manifest::read(&new_dir.join("manifest.json")).unwrap();
    assert_eq!(manifest.replay_of.as_deref(), Some(run.batch_id.as_str()));

    // The union of both batches is every charge, each once.
    let mut ids = BTreeSet::new();
    let mut total = 0;
    for d in [&run.batch_dir, &new_dir] {
        for b in read_batch_dir(d).unwrap() {
            let col = b.column_by_name("_id").unwrap().as_string::<i32>().clone();
            for i in 0..col.len() {
                ids.insert(col.value(i).to_string());
                total += 1;
            }
        }
    }
    assert_eq!(total, 300);
    assert_eq!(ids.len(), 300);

    // A second replay ingests nothing again.
    let second = replay(&run.batch_dir, fixed, &schema, None).await.unwrap();
    assert_eq!(second.already_replayed, enum_rejects);
    assert_eq!(second.ingested, 0);
    assert!(second.new_batch_dir.is_none());
    handle.shutdown().await;
}
