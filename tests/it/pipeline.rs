//! End-to-end runs against the built-in simulator: every resource, corrupt records, the
//! partial-ingestion threshold, user mappings and schemas, Parquet read back row by row.

use std::collections::BTreeSet;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Int64Type, TimestampMillisecondType};
use stripe_xdm::map::Mapping;
use stripe_xdm::pipeline::{self, threshold_failure, PipelineError, RunReport};
use stripe_xdm::sim::{Faults, SimConfig};
use stripe_xdm::sink::{read_batch_dir, read_parquet, BatchStatus, Manifest, REJECTED_FILE};
use stripe_xdm::source::Window;
use stripe_xdm::xdm::XdmSchema;
use stripe_xdm::Resource;

use crate::support::{builtin, sim};

fn ids_of(batches: &[RecordBatch], column: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for b in batches {
        let col = b.column(b.schema().index_of(column).unwrap());
        let s = col.as_string::<i32>();
        for i in 0..s.len() {
            out.insert(s.value(i).to_string());
        }
    }
    out
}

fn assert_accounting(r: &RunReport) {
    assert_eq!(
        r.counts.fetched,
        r.counts.ingested + r.counts.rejected,
        "{}: fetched = ingested + rejected",
        r.resource
    );
    assert_eq!(
        r.counts.rejected,
        r.counts.rejected_by_code.values().sum::<u64>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_resource_runs_end_to_end_with_nothing_lost() {
    let dir = tempfile::tempdir().unwrap();
    let (handle, client) = sim(SimConfig::default().with_counts(350)).await;
    let simulator = handle.simulator().clone();
    for resource in Resource::ALL {
        let report = pipeline::run(&client, builtin(resource, dir.path()))
            .await
            .unwrap_or_else(|e| panic!("{resource}: {e}"));
        assert_accounting(&report);
        let expected = simulator.count(resource, None, None);
        assert_eq!(
            report.counts.fetched, expected,
            "{resource}: every object fetched"
        );
        assert_eq!(
            report.status,
            BatchStatus::Success,
            "{resource}: {report:?}"
        );
        assert_eq!(
            report.counts.rejected, 0,
            "{resource}: {:?}",
            report.counts.rejected_by_code
        );
        let batches = read_batch_dir(&report.batch_dir).unwrap();
        let got = ids_of(&batches, "_id");
        let want: BTreeSet<String> = simulator.ids(resource, None, None).into_iter().collect();
        assert_eq!(
            got, want,
            "{resource}: the batch holds exactly the simulator's ids"
        );
        let manifest = Manifest::read(&report.batch_dir.join("manifest.json")).unwrap();
        assert_eq!(manifest.metrics.output_record_count, report.counts.ingested);
        assert_eq!(
            manifest.files.iter().map(|f| f.records).sum::<u64>(),
            report.counts.ingested
        );
        assert!(manifest.files.iter().all(|f| f.bytes > 0), "no empty files");
    }
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parquet_rows_match_the_source_objects_row_by_row() {
    let dir = tempfile::tempdir().unwrap();
    let (handle, client) = sim(SimConfig::default().with_count(Resource::Charges, 240)).await;
    let simulator = handle.simulator().clone();
    let report = pipeline::run(&client, builtin(Resource::Charges, dir.path()))
        .await
        .unwrap();
    let batches = read_batch_dir(&report.batch_dir).unwrap();
    let mut seen = 0;
    for b in &batches {
        // DateTime is written as INT64 TIMESTAMP_MILLIS.
        let ts = b.column(b.schema().index_of("timestamp").unwrap());
        let ts = ts.as_primitive::<TimestampMillisecondType>();
        let ids = b
            .column(b.schema().index_of("_id").unwrap())
            .as_string::<i32>()
            .clone();
        let tenant = b
            .column(b.schema().index_of("_acme").unwrap())
            .as_struct()
            .clone();
        let charges = tenant
            .column_by_name("charges")
            .unwrap()
            .as_struct()
            .clone();
        let amount = charges.column_by_name("amount").unwrap();
        let amount = amount.as_primitive::<Int64Type>();
        let currency = charges
            .column_by_name("currency")
            .unwrap()
            .as_string::<i32>()
            .clone();
        for row in 0..b.num_rows() {
            let id = ids.value(row);
            let index = simulator.index_of(Resource::Charges, id).expect("known id");
            let obj: serde_json::Value =
                serde_json::from_str(&simulator.object_json(Resource::Charges, index)).unwrap();
            assert_eq!(
                ts.value(row),
                obj["created"].as_i64().unwrap() * 1000,
                "{id}"
            );
            assert_eq!(amount.value(row), obj["amount"].as_i64().unwrap(), "{id}");
            assert_eq!(
                currency.value(row),
                obj["currency"].as_str().unwrap(),
                "{id}"
            );
            seen += 1;
        }
    }
    assert_eq!(seen, 240);
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_records_become_rejected_rows_with_their_source() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Faults {
        corrupt_rate: 0.05,
        ..Faults::default()
    };
    let (handle, client) = sim(SimConfig::default().with_counts(400).with_faults(faults)).await;
    let simulator = handle.simulator().clone();
    for resource in [
        Resource::Charges,
        Resource::Customers,
        Resource::Subscriptions,
    ] {
        let mut cfg = builtin(resource, dir.path());
        cfg.partial_ingestion = Some(50.0);
        let report = pipeline::run(&client, cfg).await.unwrap();
        assert_accounting(&report);
        let corrupt = simulator.corrupt_count(resource, None, None);
        assert!(corrupt > 0, "the simulator corrupted some {resource}");
        assert_eq!(
            report.counts.rejected, corrupt,
            "{resource}: {:?}",
            report.counts.rejected_by_code
        );
        assert_eq!(
            report.counts.rejected_by_code.get("INGEST-1401-400"),
            Some(&corrupt)
        );
        let rejected = read_parquet(&report.batch_dir.join(REJECTED_FILE)).unwrap();
        let rows: usize = rejected.iter().map(|b| b.num_rows()).sum();
        assert_eq!(rows as u64, corrupt);
        // Each rejected row keeps its Stripe id and raw source record.
        for b in &rejected {
            let ids = b.column_by_name("object_id").unwrap().as_string::<i32>();
            let src = b.column_by_name("source").unwrap().as_string::<i32>();
            for i in 0..b.num_rows() {
                let index = simulator.index_of(resource, ids.value(i)).expect("id kept");
                assert!(simulator.corruption(resource, index).is_some());
                assert!(src.value(i).contains(ids.value(i)));
            }
        }
        let diag = report.batch_dir.join("row_errors/parsing_errors_0.json");
        let lines = std::fs::read_to_string(diag).unwrap().lines().count();
        assert_eq!(lines as u64, corrupt);
    }
    handle.shutdown().await;
}

#[test]
fn threshold_rule_at_and_just_above_the_boundary() {
    assert_eq!(
        threshold_failure(100, 5, Some(5.0)),
        None,
        "exactly at 5% passes"
    );
    assert!(
        threshold_failure(100, 6, Some(5.0)).is_some(),
        "above fails"
    );
    assert!(threshold_failure(1000, 51, Some(5.0)).is_some());
    assert_eq!(threshold_failure(1000, 50, Some(5.0)), None);
    assert!(
        threshold_failure(100, 1, None).is_some(),
        "no partial ingestion: any reject fails"
    );
    assert_eq!(threshold_failure(100, 0, None), None);
    assert_eq!(threshold_failure(0, 0, Some(5.0)), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn threshold_boundary_end_to_end_and_failed_runs_promote_nothing() {
    let faults = Faults {
        corrupt_rate: 0.04,
        ..Faults::default()
    };
    let (handle, client) = sim(SimConfig::default()
        .with_count(Resource::Charges, 500)
        .with_faults(faults))
    .await;
    let simulator = handle.simulator().clone();
    let n = simulator.count(Resource::Charges, None, None);
    let c = simulator.corrupt_count(Resource::Charges, None, None);
    assert!(c > 0);
    let exact = c as f64 * 100.0 / n as f64;

    // Exactly at the threshold: success.
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = builtin(Resource::Charges, dir.path());
    cfg.partial_ingestion = Some(exact);
    let ok = pipeline::run(&client, cfg).await.unwrap();
    assert_eq!(ok.status, BatchStatus::Success);
    assert_eq!(ok.counts.rejected, c);

    // Just above what is allowed: failed, and no batch is promoted.
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = builtin(Resource::Charges, dir.path());
    cfg.partial_ingestion = Some((c - 1) as f64 * 100.0 / n as f64);
    let failed = pipeline::run(&client, cfg).await.unwrap();
    assert_eq!(failed.status, BatchStatus::Failed);
    assert_accounting(&failed);
    assert!(failed
        .failure_reason
        .as_deref()
        .unwrap()
        .contains("threshold"));
    assert!(
        !dir.path().join("charges/batches").exists(),
        "no batch promoted"
    );
    assert!(failed
        .batch_dir
        .starts_with(dir.path().join("charges/failed")));
    let files: Vec<String> = std::fs::read_dir(&failed.batch_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!files.iter().any(|f| f.starts_with("part-")), "{files:?}");
    assert!(files.contains(&REJECTED_FILE.to_string()));

    // Partial ingestion off: any rejected row fails the run.
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = builtin(Resource::Charges, dir.path());
    cfg.partial_ingestion = None;
    let strict = pipeline::run(&client, cfg).await.unwrap();
    assert_eq!(strict.status, BatchStatus::Failed);
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn window_filters_bound_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let (handle, client) = sim(SimConfig::default().with_count(Resource::Refunds, 600)).await;
    let simulator = handle.simulator().clone();
    let lo = simulator.created(Resource::Refunds, 100);
    let hi = simulator.created(Resource::Refunds, 400);
    let mut cfg = builtin(Resource::Refunds, dir.path());
    cfg.window = Window {
        gte: Some(lo),
        lt: Some(hi),
    };
    let report = pipeline::run(&client, cfg).await.unwrap();
    assert_eq!(
        report.counts.fetched,
        simulator.count(Resource::Refunds, Some(lo), Some(hi))
    );
    let got = ids_of(&read_batch_dir(&report.batch_dir).unwrap(), "_id");
    let want: BTreeSet<String> = simulator
        .ids(Resource::Refunds, Some(lo), Some(hi))
        .into_iter()
        .collect();
    assert_eq!(got, want);
    handle.shutdown().await;
}

const USER_SCHEMA: &str = r#"{
  "$id": "https://ns.adobe.com/acme/schemas/charges-lite",
  "title": "Charges lite",
  "type": "object",
  "meta:behaviorType": "time-series",
  "required": ["_id", "timestamp"],
  "properties": {
    "_id": {"type": "string", "format": "uri-reference"},
    "timestamp": {"type": "string", "format": "date-time"},
    "_acme": {"type": "object", "properties": {
      "amount": {"type": "integer", "meta:xdmType": "int", "minimum": 0, "maximum": 2147483647},
      "currency": {"type": "string", "enum": ["usd"]},
      "riskScore": {"type": "integer", "meta:xdmType": "short", "minimum": 0, "maximum": 100},
      "units": {"type": "integer", "meta:xdmType": "long"}
    }}
  }
}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_mapping_and_schema_with_validation_and_transform_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (handle, client) = sim(SimConfig::default().with_count(Resource::Charges, 300)).await;
    let sql_path = dir.path().join("lite.sql");
    // A runtime CAST failure on some rows (MAPPER-3700-400), an enum that only allows usd.
    std::fs::write(
        &sql_path,
        "SELECT id AS \"_id\", created AS \"timestamp\",\n\
         named_struct('amount', amount, 'currency', currency,\n\
           'riskScore', outcome['risk_score'],\n\
           'units', CAST(CASE WHEN amount % 7 = 0 THEN 'seven' ELSE CAST(amount AS VARCHAR) END AS BIGINT)) AS \"_${tenant}\"\n\
         FROM charges",
    )
    .unwrap();
    let mut cfg = builtin(Resource::Charges, dir.path());
    cfg.mapping = Mapping::from_file(&sql_path, "acme").unwrap();
    cfg.schema = XdmSchema::from_json_str(USER_SCHEMA).unwrap();
    cfg.partial_ingestion = Some(100.0);
    let report = pipeline::run(&client, cfg).await.unwrap();
    assert_accounting(&report);
    assert_eq!(report.counts.fetched, 300);
    let by_code = &report.counts.rejected_by_code;
    assert!(
        by_code.get("MAPPER-3700-400").copied().unwrap_or(0) > 0,
        "{by_code:?}"
    );
    assert!(
        by_code.get("XDM-ENUM").copied().unwrap_or(0) > 0,
        "{by_code:?}"
    );
    // The mapping does not read `_raw`, yet every row it or validation rejected keeps its
    // record's JSON exactly as the simulator served it.
    let rejected = read_parquet(&report.batch_dir.join(REJECTED_FILE)).unwrap();
    let mut rows = 0;
    for b in &rejected {
        let ids = b.column_by_name("object_id").unwrap().as_string::<i32>();
        let src = b.column_by_name("source").unwrap().as_string::<i32>();
        for i in 0..b.num_rows() {
            let record: serde_json::Value = serde_json::from_str(src.value(i)).unwrap();
            assert_eq!(record["id"], ids.value(i), "{}", src.value(i));
            assert_eq!(record["object"], "charge");
            rows += 1;
        }
    }
    assert_eq!(rows as u64, report.counts.rejected);
    // Every accepted row satisfies the schema.
    for b in read_batch_dir(&report.batch_dir).unwrap() {
        let t = b
            .column(b.schema().index_of("_acme").unwrap())
            .as_struct()
            .clone();
        let cur = t
            .column_by_name("currency")
            .unwrap()
            .as_string::<i32>()
            .clone();
        for i in 0..b.num_rows() {
            assert!(cur.is_null(i) || cur.value(i) == "usd");
        }
    }
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mapping_that_filters_rows_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (handle, client) = sim(SimConfig::default().with_count(Resource::Prices, 50)).await;
    let mut cfg = builtin(Resource::Prices, dir.path());
    cfg.mapping = Mapping {
        sql: "SELECT id AS \"_id\" FROM prices WHERE active".into(),
        origin: "test.sql".into(),
    };
    cfg.schema = XdmSchema::from_json_str(
        r#"{"type":"object","required":["_id"],"properties":{"_id":{"type":"string"}}}"#,
    )
    .unwrap();
    let err = pipeline::run(&client, cfg).await.unwrap_err();
    assert!(matches!(err, PipelineError::Map(_)), "{err}");
    assert!(err.to_string().contains("one row per record"), "{err}");
    assert!(!dir.path().join("prices/batches").exists());
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mapping_that_does_not_fit_the_schema_is_refused_before_fetching() {
    let dir = tempfile::tempdir().unwrap();
    let (handle, client) = sim(SimConfig::default().with_count(Resource::Prices, 50)).await;
    let mut cfg = builtin(Resource::Prices, dir.path());
    cfg.mapping = Mapping {
        sql: "SELECT id AS \"_id\", nickname AS \"nickName\" FROM prices".into(),
        origin: "test.sql".into(),
    };
    let err = pipeline::run(&client, cfg).await.unwrap_err();
    assert!(matches!(err, PipelineError::Mismatch { .. }), "{err}");
    assert!(err.to_string().contains("nickName"), "{err}");
    assert_eq!(handle.stats().requests, 0, "nothing fetched");
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_chunks_and_file_rollover() {
    let dir = tempfile::tempdir().unwrap();
    let (handle, client) = sim(SimConfig::default().with_count(Resource::Charges, 2500)).await;
    let mut cfg = builtin(Resource::Charges, dir.path());
    cfg.chunk_records = 300;
    cfg.sink.max_file_bytes = 50_000;
    cfg.sink.row_group_rows = 200;
    let report = pipeline::run(&client, cfg).await.unwrap();
    assert_accounting(&report);
    assert_eq!(report.counts.ingested, 2500);
    assert!(report.counts.files > 1, "rolled over into several files");
    let got = ids_of(&read_batch_dir(&report.batch_dir).unwrap(), "_id");
    assert_eq!(got.len(), 2500, "no duplicates across chunks and files");
    handle.shutdown().await;
}
