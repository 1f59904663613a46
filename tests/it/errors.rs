//! `errors`: summaries and SQL over a batch's rejected (and accepted) rows.

use std::collections::BTreeMap;
use std::path::PathBuf;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::Int64Type;
use stripe_xdm::inspect::{query, summarize};
use stripe_xdm::map::Mapping;
use stripe_xdm::pipeline::{self, RunConfig, RunReport};
use stripe_xdm::sim::{Faults, SimConfig, SimHandle};
use stripe_xdm::sink::read_batch_dir;

use stripe_xdm::Resource;

use crate::support::sim;

/// A charges run with corrupt records and, when the built-in mapping has the expected shape,
/// a status that breaks the enum for some rows.
async fn run_with_rejects(out: &std::path::Path) -> (SimHandle, RunReport, bool) {
    let faults = Faults {
        corrupt_rate: 0.05,
        ..Faults::default()
    };
    let (handle, client) = sim(SimConfig::default().with_counts(300).with_faults(faults)).await;
    let mut cfg = RunConfig::builtin(Resource::Charges, "acme", out.to_path_buf()).unwrap();
    cfg.partial_ingestion = Some(50.0);
    let builtin = Mapping::builtin(Resource::Charges, "acme");
    let custom = builtin.sql.contains("'status', status,");
    if custom {
        cfg.mapping = Mapping {
            sql: builtin.sql.replace(
                "'status', status,",
                "'status', CASE WHEN right(id, 1) IN ('a', 'b', 'c', 'd') THEN 'weird' ELSE status END,",
            ),
            origin: "test".into(),
        };
    }
    let report = pipeline::run(&client, cfg).await.expect("run");
    (handle, report, custom)
}

fn strings(b: &RecordBatch, i: usize) -> Vec<Option<String>> {
    let c = arrow::compute::cast(b.column(i), &arrow::datatypes::DataType::Utf8).unwrap();
    let c = c.as_string::<i32>();
    (0..c.len())
        .map(|r| (!c.is_null(r)).then(|| c.value(r).to_string()))
        .collect()
}

fn ints(b: &RecordBatch, i: usize) -> Vec<i64> {
    let c = arrow::compute::cast(b.column(i), &arrow::datatypes::DataType::Int64).unwrap();
    c.as_primitive::<Int64Type>().values().to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn summary_and_queries_over_a_run_with_rejected_rows() {
    let dir = tempfile::tempdir().unwrap();
    let (handle, report, custom) = run_with_rejects(dir.path()).await;
    assert_eq!(
        custom,
        report.counts.rejected_by_code.contains_key("XDM-ENUM"),
        "{report:?}"
    );
    assert!(report.counts.rejected > 0, "{report:?}");
    assert_eq!(
        report.status,
        stripe_xdm::sink::BatchStatus::Success,
        "{report:?}"
    );
    assert!(report
        .counts
        .rejected_by_code
        .contains_key("INGEST-1401-400"));

    // summarize: the same counts as the run report.
    let summary = summarize(&report.batch_dir, 3).unwrap();
    assert_eq!(summary.total, report.counts.rejected);
    assert_eq!(summary.counts_by_code(), report.counts.rejected_by_code);
    for c in &summary.by_code {
        assert!(!c.samples.is_empty() && c.samples.len() <= 3, "{c:?}");
        assert_eq!(c.samples.len() as u64, c.count.min(3));
        for s in &c.samples {
            assert!(
                s.object_id
                    .as_deref()
                    .is_some_and(|id| id.starts_with("ch_")),
                "{s:?}"
            );
            assert!(!s.message.is_empty(), "{s:?}");
        }
    }
    let counts: Vec<u64> = summary.by_code.iter().map(|c| c.count).collect();
    assert!(
        counts.windows(2).all(|w| w[0] >= w[1]),
        "most frequent first"
    );
    assert_eq!(
        summary.by_stage.iter().map(|s| s.count).sum::<u64>(),
        report.counts.rejected
    );
    if let Some(enum_rows) = summary.by_code.iter().find(|c| c.code == "XDM-ENUM") {
        assert_eq!(enum_rows.column.as_deref(), Some("_acme.charges.status"));
        assert_eq!(enum_rows.samples[0].value.as_deref(), Some("weird"));
    }

    // query: rejected rows by code.
    let dirs = vec![report.batch_dir.clone()];
    let out = query(
        &dirs,
        "SELECT code, count(*) AS n FROM rejected GROUP BY code ORDER BY code",
    )
    .await
    .unwrap();
    let mut by_code = BTreeMap::new();
    for b in &out {
        for (code, n) in strings(b, 0).into_iter().zip(ints(b, 1)) {
            by_code.insert(code.unwrap(), n as u64);
        }
    }
    assert_eq!(by_code, report.counts.rejected_by_code);

    // query: accepted rows by currency (inside the tenant struct), against the Parquet files.
    let out = query(
        &dirs,
        "SELECT \"_acme\"['charges']['currency'] AS currency, count(*) AS n \
         FROM accepted GROUP BY 1 ORDER BY 1",
    )
    .await
    .unwrap();
    let mut got = BTreeMap::new();
    for b in &out {
        for (c, n) in strings(b, 0).into_iter().zip(ints(b, 1)) {
            got.insert(c.unwrap_or_default(), n as u64);
        }
    }
    let mut want = BTreeMap::new();
    for b in read_batch_dir(&report.batch_dir).unwrap() {
        let tenant = b.column_by_name("_acme").unwrap().as_struct().clone();
        let charges = tenant
            .column_by_name("charges")
            .unwrap()
            .as_struct()
            .clone();
        let cur = charges
            .column_by_name("currency")
            .unwrap()
            .as_string::<i32>()
            .clone();
        for i in 0..cur.len() {
            *want.entry(cur.value(i).to_string()).or_insert(0u64) += 1;
        }
    }
    assert_eq!(got, want);
    assert_eq!(got.values().sum::<u64>(), report.counts.ingested);

    // query: joining both tables; a rejected record is never also accepted.
    let out = query(
        &dirs,
        "SELECT count(*) FROM rejected r JOIN accepted a ON r.object_id = a.\"_id\"",
    )
    .await
    .unwrap();
    assert_eq!(ints(&out[0], 0), vec![0]);
    // A bad query is an error, not a panic.
    assert!(query(&dirs, "SELECT * FROM nowhere").await.is_err());
    // The error list and the batch id are queryable too.
    let batch_id = report.batch_id.clone();
    let out = query(
        &dirs,
        &format!("SELECT count(*) FROM rejected WHERE array_length(errors) >= 1 AND batch_id = '{batch_id}'"),
    )
    .await
    .unwrap();
    assert_eq!(ints(&out[0], 0), vec![report.counts.rejected as i64]);
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_batch_has_an_empty_summary() {
    let dir = tempfile::tempdir().unwrap();
    let (handle, client) = sim(SimConfig::default().with_count(Resource::Prices, 40)).await;
    let cfg = RunConfig::builtin(Resource::Prices, "acme", dir.path().to_path_buf()).unwrap();
    let report = pipeline::run(&client, cfg).await.unwrap();
    assert_eq!(report.counts.rejected, 0);
    let summary = summarize(&report.batch_dir, 5).unwrap();
    assert_eq!(summary.total, 0);
    assert!(summary.by_code.is_empty());
    let dirs: Vec<PathBuf> = vec![report.batch_dir.clone()];
    let out = query(&dirs, "SELECT count(*) FROM rejected").await.unwrap();
    assert_eq!(ints(&out[0], 0), vec![0]);
    let out = query(&dirs, "SELECT count(*) FROM accepted").await.unwrap();
    assert_eq!(ints(&out[0], 0), vec![report.counts.ingested as i64]);
    assert!(summarize(&dir.path().join("nope"), 1).is_err());
    // A folder that is no batch is said to be so, not summarised as clean.
    let e = summarize(dir.path(), 1).unwrap_err().to_string();
    assert!(e.contains("not a batch"), "{e}");
    handle.shutdown().await;
}
