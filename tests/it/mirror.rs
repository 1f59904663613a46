//! The columnar staging mirror: every record staged in a Delta Lake table (read back with Delta
//! and with plain Parquet readers), upserts by id, batches cut to Platform's limits, remap and
//! SQL without Stripe, fields outside the decoded schema reached through `_raw`.

use std::collections::BTreeSet;
use std::path::Path;

use arrow::array::{Array, AsArray, RecordBatch};
use stripe_xdm::map::{Mapper, Mapping};
use stripe_xdm::pipeline::{self, RunReport};
use stripe_xdm::sim::{Faults, SimConfig};
use stripe_xdm::sink::{read_batch_dir, read_parquet, BatchStatus, Manifest, SinkOptions};
use stripe_xdm::stage::{self, Mirror};
use stripe_xdm::Resource;

use crate::support::{builtin, sim};

fn strings(batches: &[RecordBatch], column: &str) -> Vec<String> {
    let mut out = Vec::new();
    for b in batches {
        let col = b.column_by_name(column).expect("column");
        let col = arrow::compute::cast(col, &arrow::datatypes::DataType::Utf8).unwrap();
        let s = col.as_string::<i32>();
        for i in 0..s.len() {
            if !s.is_null(i) {
                out.push(s.value(i).to_string());
            }
        }
    }
    out
}

fn assert_accounting(r: &RunReport) {
    assert_eq!(
        r.counts.fetched,
        r.counts.ingested + r.counts.rejected,
        "fetched = ingested + rejected"
    );
    assert_eq!(
        r.counts.fetched, r.counts.staged,
        "fetched = staged (records that do not decode included)"
    );
}

/// The number of rows of `batches` (an older mirror's: no `_decode_error`).
fn raw_rows_without_errors(batches: &[RecordBatch]) -> u64 {
    assert!(batches
        .iter()
        .all(|b| b.column_by_name(stage::DECODE_ERROR_COLUMN).is_none()));
    batches.iter().map(|b| b.num_rows() as u64).sum()
}

/// `(id, _raw, _decode_error)` of every mirror row.
fn raw_rows(batches: &[RecordBatch]) -> Vec<(Option<String>, String, Option<String>)> {
    let text = |b: &RecordBatch, c: &str| {
        let col = b.column_by_name(c).expect("column");
        arrow::compute::cast(col, &arrow::datatypes::DataType::Utf8).unwrap()
    };
    let mut out = Vec::new();
    for b in batches {
        let (ids, raw, errors) = (
            text(b, "id"),
            text(b, "_raw"),
            text(b, stage::DECODE_ERROR_COLUMN),
        );
        let (ids, raw, errors) = (
            ids.as_string::<i32>(),
            raw.as_string::<i32>(),
            errors.as_string::<i32>(),
        );
        for i in 0..b.num_rows() {
            let get =
                |a: &arrow::array::StringArray| (!a.is_null(i)).then(|| a.value(i).to_string());
            out.push((get(ids), raw.value(i).to_string(), get(errors)));
        }
    }
    out
}

/// A simulator of `count` objects per resource, `rate` of them served corrupt (records that do
/// not decode), and a client of it.
async fn corrupt_sim(
    count: u64,
    rate: f64,
) -> (stripe_xdm::sim::SimHandle, stripe_xdm::source::StripeClient) {
    let faults = Faults {
        corrupt_rate: rate,
        ..Faults::default()
    };
    sim(SimConfig::default().with_counts(count).with_faults(faults)).await
}

async fn mirror_rows(path: &Path, resource: Resource) -> Vec<RecordBatch> {
    use futures::TryStreamExt;
    let mirror = Mirror::open_existing(path, resource).await.unwrap();
    mirror
        .scan_all()
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_resource_is_staged_in_a_delta_table_readable_by_delta_and_plain_parquet() {
    let dir = tempfile::tempdir().unwrap();
    let (handle, client) = corrupt_sim(400, 0.02).await;
    for resource in Resource::ALL {
        let report = pipeline::run(&client, builtin(resource, dir.path()))
            .await
            .unwrap_or_else(|e| panic!("{resource}: {e}"));
        assert_accounting(&report);
        assert_eq!(
            report.counts.fetched,
            handle.simulator().count(resource, None, None),
            "{resource}"
        );
        let path = dir.path().join("mirror").join(resource.path());
        // Delta's own reader: one row per staged record, each `_raw` the record's JSON.
        let rows = mirror_rows(&path, resource).await;
        let ids = strings(&rows, "id");
        assert_eq!(
            ids.len() as u64,
            report.counts.staged,
            "{resource}: staged rows"
        );
        let raws = strings(&rows, stage::BATCH_COLUMN);
        assert!(
            raws.iter().all(|b| *b == report.batch_id),
            "{resource}: _batch"
        );
        let rejected = report.counts.rejected_by_code.get("INGEST-1401-400");
        let mut undecodable = 0;
        for (id, raw, error) in raw_rows(&rows) {
            let id = id.expect("every simulated record has an id");
            match error {
                // A record that did not decode is staged as received, with its reason.
                Some(reason) => {
                    undecodable += 1;
                    assert!(!reason.is_empty());
                    let raw_id = stripe_xdm::source::record_id(raw.as_bytes());
                    assert_eq!(raw_id.as_deref(), Some(id.as_str()), "{raw}");
                }
                None => {
                    let v: serde_json::Value = serde_json::from_str(&raw).expect("_raw is JSON");
                    assert_eq!(v["id"].as_str(), Some(id.as_str()), "{resource}: _raw");
                }
            }
        }
        assert_eq!(undecodable, rejected.copied().unwrap_or(0), "{resource}");
        assert!(strings(&rows, stage::API_VERSION_COLUMN)
            .iter()
            .all(|v| v == stripe_xdm::source::DEFAULT_STRIPE_VERSION));
        // Plain Parquet readers of the listed files see the same rows.
        let mirror = Mirror::open_existing(&path, resource).await.unwrap();
        let mut plain = BTreeSet::new();
        for f in mirror.data_files().unwrap() {
            for b in read_parquet(&f).unwrap() {
                plain.extend(strings(&[b], "id"));
            }
        }
        assert_eq!(
            plain,
            ids.iter().cloned().collect::<BTreeSet<_>>(),
            "{resource}"
        );
        // The batch holds exactly the staged objects that mapped and validated.
        let accepted = strings(&read_batch_dir(&report.batch_dir).unwrap(), "_id");
        assert_eq!(accepted.len() as u64, report.counts.ingested);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_fetched_again_replaces_its_older_version() {
    let dir = tempfile::tempdir().unwrap();
    let (handle, client) = sim(SimConfig::default().with_counts(1500)).await;
    let first = pipeline::run(&client, builtin(Resource::Customers, dir.path()))
        .await
        .unwrap();
    let second = pipeline::run(&client, builtin(Resource::Customers, dir.path()))
        .await
        .unwrap();
    assert_accounting(&second);
    let n = handle.simulator().count(Resource::Customers, None, None);
    assert_eq!(first.counts.staged, n);
    assert_eq!(second.counts.staged, n);
    let rows = mirror_rows(&dir.path().join("mirror/customers"), Resource::Customers).await;
    let ids = strings(&rows, "id");
    let unique: BTreeSet<_> = ids.iter().cloned().collect();
    assert_eq!(ids.len() as u64, n, "each object once");
    assert_eq!(unique.len() as u64, n);
    assert!(
        strings(&rows, stage::BATCH_COLUMN)
            .iter()
            .all(|b| *b == second.batch_id),
        "every row is the second run's version"
    );
    // Every row has its `created`: a run of a window holding no row appends.
    let mirror = Mirror::open_existing(&dir.path().join("mirror/customers"), Resource::Customers)
        .await
        .unwrap();
    let future = stripe_xdm::runner::now() + 365 * 86_400;
    assert_eq!(
        mirror
            .mode_for(Some(future), None, "another")
            .await
            .unwrap(),
        stage::WriteMode::Append
    );
    // The second run's batch carries every object again (same `_id`: an upsert downstream).
    let accepted: BTreeSet<_> = strings(&read_batch_dir(&second.batch_dir).unwrap(), "_id")
        .into_iter()
        .collect();
    assert_eq!(accepted.len() as u64, n);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tiny_file_limit_splits_the_output_into_several_batches_with_nothing_lost() {
    let dir = tempfile::tempdir().unwrap();
    let (handle, client) = sim(SimConfig::default().with_counts(2600)).await;
    let mut cfg = builtin(Resource::Charges, dir.path());
    cfg.chunk_records = 400;
    cfg.sink = SinkOptions {
        max_file_bytes: 1,
        row_group_rows: 100,
        max_files_per_batch: 2,
        ..SinkOptions::default()
    };
    let report = pipeline::run(&client, cfg).await.unwrap();
    assert_accounting(&report);
    assert_eq!(report.status, BatchStatus::Success);
    assert!(
        report.parts.len() >= 2,
        "several batches: {:?}",
        report.parts
    );
    let mut all = Vec::new();
    let first = Manifest::read(&report.batch_dir.join("manifest.json")).unwrap();
    assert!(first.files.len() <= 2);
    all.extend(strings(&read_batch_dir(&report.batch_dir).unwrap(), "_id"));
    for part in &report.parts {
        let dir = report.batch_dir.parent().unwrap().join(part);
        let m = Manifest::read(&dir.join("manifest.json")).unwrap();
        assert!(m.files.len() <= 2, "{part}: {} files", m.files.len());
        assert_eq!(m.part_of.as_deref(), Some(report.batch_id.as_str()));
        all.extend(strings(&read_batch_dir(&dir).unwrap(), "_id"));
    }
    let unique: BTreeSet<_> = all.iter().cloned().collect();
    assert_eq!(all.len(), unique.len(), "no object in two batches");
    let want: BTreeSet<String> = handle
        .simulator()
        .ids(Resource::Charges, None, None)
        .into_iter()
        .collect();
    assert_eq!(unique, want, "every object in exactly one batch");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remap_maps_the_whole_mirror_with_no_stripe_request() {
    let dir = tempfile::tempdir().unwrap();
    let (handle, client) = sim(SimConfig::default().with_counts(900)).await;
    let run = pipeline::run(&client, builtin(Resource::Charges, dir.path()))
        .await
        .unwrap();
    // Stripe is gone: a remap needs only the mirror.
    drop(handle);
    let before = client.stats().requests;
    let mut cfg = builtin(Resource::Charges, dir.path());
    cfg.batch_id = Some("remap-1".into());
    let remap = pipeline::remap(cfg).await.unwrap();
    assert_eq!(client.stats().requests, before, "no request reached Stripe");
    assert_eq!(remap.requests, 0);
    assert_eq!(remap.counts.fetched, run.counts.staged);
    assert_eq!(
        remap.counts.fetched,
        remap.counts.ingested + remap.counts.rejected
    );
    let a: BTreeSet<_> = strings(&read_batch_dir(&run.batch_dir).unwrap(), "_id")
        .into_iter()
        .collect();
    let b: BTreeSet<_> = strings(&read_batch_dir(&remap.batch_dir).unwrap(), "_id")
        .into_iter()
        .collect();
    assert_eq!(a, b, "the remap holds the same objects");
    // A mapping that rejects some rows and does not read `_raw`: the remap reads the mirror
    // without it, and the rejected rows still carry their records' JSON, looked up by id.
    let mut cfg = builtin(Resource::Charges, dir.path());
    let sql = cfg.mapping.sql.replace(
        "created AS \"timestamp\"",
        "CASE WHEN amount % 7 = 0 THEN NULL ELSE created END AS \"timestamp\"",
    );
    assert_ne!(sql, cfg.mapping.sql);
    cfg.mapping = Mapping {
        sql,
        origin: "test".into(),
    };
    cfg.partial_ingestion = Some(100.0);
    cfg.batch_id = Some("remap-2".into());
    let mapper = Mapper::new(Resource::Charges, cfg.mapping.clone())
        .await
        .unwrap();
    assert!(!mapper.reads_raw());
    let remap = pipeline::remap(cfg).await.unwrap();
    assert_eq!(remap.counts.fetched, run.counts.staged);
    assert_eq!(
        remap.counts.fetched,
        remap.counts.ingested + remap.counts.rejected
    );
    assert!(
        remap.counts.rejected > 0 && remap.counts.ingested > 0,
        "{remap:?}"
    );
    assert_eq!(
        remap.counts.rejected_by_code.get("INGEST-1555-400"),
        Some(&remap.counts.rejected)
    );
    let rejected = read_parquet(&remap.batch_dir.join(stripe_xdm::sink::REJECTED_FILE)).unwrap();
    let mut n = 0;
    for b in &rejected {
        let ids = b.column_by_name("object_id").unwrap().as_string::<i32>();
        let src = b.column_by_name("source").unwrap().as_string::<i32>();
        for i in 0..b.num_rows() {
            let raw: serde_json::Value = serde_json::from_str(src.value(i)).expect("JSON source");
            assert_eq!(raw["id"], ids.value(i));
            assert_eq!(raw["amount"].as_i64().unwrap() % 7, 0);
            n += 1;
        }
    }
    assert_eq!(n, remap.counts.rejected);
    // Without a mirror there is nothing to remap, and the error says where it looked.
    let mut cfg = builtin(Resource::Prices, dir.path());
    cfg.mirror = Some(dir.path().join("nowhere"));
    let err = pipeline::remap(cfg).await.unwrap_err().to_string();
    assert!(err.contains("nowhere"), "{err}");
    assert!(
        !dir.path().join("nowhere.lock").exists(),
        "no lock file is left beside a mirror that is not there"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fields_outside_the_decoded_schema_survive_in_raw_and_a_mapping_reads_them() {
    let dir = tempfile::tempdir().unwrap();
    let (_handle, client) = sim(SimConfig::default().with_counts(300)).await;
    let run = pipeline::run(&client, builtin(Resource::Charges, dir.path()))
        .await
        .unwrap();
    assert!(run.counts.staged > 0);
    // `extended_authorization` is not in the decoded card schema.
    let card = stripe_xdm::decode::arrow_schema(Resource::Charges);
    let pmd = card.field_with_name("payment_method_details").unwrap();
    assert!(!format!("{pmd:?}").contains("extended_authorization"));
    let rows = mirror_rows(&dir.path().join("mirror/charges"), Resource::Charges).await;
    let sql = "SELECT id, \
        json_as_text(_raw, 'payment_method_details', 'card', 'extended_authorization', 'status') AS ext, \
        json_get_int(_raw, 'amount') AS amount_from_raw, amount FROM charges";
    let mapper = Mapper::new(
        Resource::Charges,
        Mapping {
            sql: sql.into(),
            origin: "test".into(),
        },
    )
    .await
    .unwrap();
    assert!(mapper.reads_raw(), "a remap with it reads `_raw`");
    let mut seen = 0;
    for b in &rows {
        let source = stage::to_source(b, Resource::Charges).unwrap();
        let out = mapper.map(source).await.unwrap().batch;
        let ext = out
            .column_by_name("ext")
            .unwrap()
            .as_string::<i32>()
            .clone();
        seen += (0..ext.len()).filter(|&i| !ext.is_null(i)).count();
        let a = out.column_by_name("amount_from_raw").unwrap();
        let b = out.column_by_name("amount").unwrap();
        assert_eq!(
            arrow::compute::cast(a, b.data_type()).unwrap().as_ref(),
            b.as_ref(),
            "JSON functions read the same values as the decoded columns"
        );
    }
    assert!(seen > 0, "extended_authorization.status read from _raw");
}

/// The first row of `sql` over a one-off run's folder (its mirror and batches), integer
/// columns by name.
async fn query_row(root: &Path, sql: &str) -> std::collections::HashMap<String, u64> {
    let dirs = stripe_xdm::inspect::batch_dirs_under(root);
    let out = stripe_xdm::inspect::sql(&root.join("mirror"), &dirs, sql)
        .await
        .unwrap();
    let schema = out[0].schema();
    schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let v = out[0]
                .column(i)
                .as_primitive::<arrow::datatypes::Int64Type>()
                .value(0);
            (f.name().clone(), v as u64)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_runs_over_the_mirror_and_the_rejected_rows() {
    let tmp = tempfile::tempdir().unwrap();
    // Brackets in the path are no glob: the accepted files are found as they are.
    let root = tmp.path().join("out [x]");
    let dir = &root;
    let (_handle, client) = corrupt_sim(500, 0.05).await;
    let run = pipeline::run(&client, builtin(Resource::Refunds, dir.as_path()))
        .await
        .unwrap();
    assert!(run.counts.rejected > 0);
    let get = query_row(
        dir,
        "SELECT (SELECT count(*) FROM refunds) AS mirrored, (SELECT count(*) FROM rejected) AS rejected, \
         (SELECT count(*) FROM accepted) AS accepted, (SELECT count(*) FROM accepted_refunds) AS refunds",
    )
    .await;
    let get = |c: &str| get[c];
    assert_eq!(get("mirrored"), run.counts.staged);
    assert_eq!(get("rejected"), run.counts.rejected);
    assert_eq!(get("accepted"), run.counts.ingested);
    assert_eq!(get("refunds"), run.counts.ingested);
    let dirs = stripe_xdm::inspect::batch_dirs_under(dir.as_path());
    let err = stripe_xdm::inspect::sql(&dir.as_path().join("mirror"), &dirs, "SELECT * FROM nope")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("nope"), "{err}");
    // Two datasets (two XDM schemas): one accepted table each, and no `accepted`.
    let charges = pipeline::run(&client, builtin(Resource::Charges, dir.as_path()))
        .await
        .unwrap();
    let count = query_row(
        dir,
        "SELECT (SELECT count(*) FROM accepted_charges) AS c, (SELECT count(*) FROM accepted_refunds) AS r",
    )
    .await;
    let count = |c: &str| count[c];
    assert_eq!(count("c"), charges.counts.ingested);
    assert_eq!(count("r"), run.counts.ingested);
    let dirs = stripe_xdm::inspect::batch_dirs_under(dir.as_path());
    let err = stripe_xdm::inspect::sql(
        &dir.as_path().join("mirror"),
        &dirs,
        "SELECT * FROM accepted",
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("accepted_charges, accepted_refunds"), "{err}");
    // A batch whose files have a column the earlier ones lack (the dataset's schema grew):
    // the table has both, the older rows read it as null.
    let refunds_dir = dirs
        .iter()
        .find(|d| d.starts_with(dir.join("refunds")))
        .unwrap()
        .clone();
    let newer = refunds_dir.with_file_name("zz-newer");
    std::fs::create_dir_all(&newer).unwrap();
    for e in std::fs::read_dir(&refunds_dir).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !(name.starts_with("part-") && name.ends_with(".parquet")) {
            continue;
        }
        let mut out = Vec::new();
        for b in read_parquet(&e.path()).unwrap() {
            let extra = arrow::array::Int64Array::from(vec![7; b.num_rows()]);
            let mut fields: Vec<_> = b.schema().fields().iter().cloned().collect();
            fields.push(std::sync::Arc::new(arrow::datatypes::Field::new(
                "extra",
                arrow::datatypes::DataType::Int64,
                false,
            )));
            let mut columns = b.columns().to_vec();
            columns.push(std::sync::Arc::new(extra));
            let schema = std::sync::Arc::new(arrow::datatypes::Schema::new(fields));
            out.push(RecordBatch::try_new(schema, columns).unwrap());
        }
        let file = std::fs::File::create(newer.join(&name)).unwrap();
        let mut w = parquet::arrow::ArrowWriter::try_new(file, out[0].schema(), None).unwrap();
        for b in &out {
            w.write(b).unwrap();
        }
        w.close().unwrap();
    }
    std::fs::copy(
        refunds_dir.join("manifest.json"),
        newer.join("manifest.json"),
    )
    .unwrap();
    let count = query_row(
        dir,
        "SELECT count(*) AS n, count(extra) AS e FROM accepted_refunds",
    )
    .await;
    let count = |c: &str| count[c];
    assert_eq!(count("n"), 2 * run.counts.ingested);
    assert_eq!(count("e"), run.counts.ingested);
}

#[test]
fn preview_lists_the_fields_beyond_the_decoded_schema() {
    use stripe_xdm::sim::{ListParams, Simulator};
    let body = Simulator::new(SimConfig::default())
        .page_json(
            Resource::Charges,
            &ListParams {
                limit: 50,
                ..Default::default()
            },
        )
        .unwrap();
    let page: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let records: Vec<Vec<u8>> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| serde_json::to_vec(r).unwrap())
        .collect();
    let extra = stripe_xdm::decode::schema::undecoded_fields(
        Resource::Charges,
        records.iter().map(|r| r.as_slice()),
    );
    assert!(
        extra.contains_key("payment_method_details.card.extended_authorization"),
        "{extra:?}"
    );
    assert!(
        !extra.contains_key("amount"),
        "decoded fields are not listed"
    );
    assert!(
        !extra.keys().any(|k| k.starts_with("metadata.")),
        "maps are kept whole"
    );
}

/// Keeps every saved state, so a test can put an older one back: the process "died" after the
/// mirror committed a checkpoint and before the catalog heard of it.
#[derive(Default)]
struct History(std::sync::Mutex<Vec<String>>);

impl stripe_xdm::pipeline::CheckpointStore for History {
    fn load(&self) -> Result<Option<String>, String> {
        Ok(self.0.lock().unwrap().last().cloned())
    }
    fn save(&self, state: &str) -> Result<(), String> {
        self.0.lock().unwrap().push(state.to_string());
        Ok(())
    }
}

struct CancelAfter(u64, tokio::sync::watch::Sender<bool>);

impl stripe_xdm::pipeline::ProgressSink for CancelAfter {
    fn update(&self, p: &stripe_xdm::pipeline::Progress) {
        if p.counts.fetched >= self.0 {
            let _ = self.1.send(true);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_behind_the_mirrors_last_commit_stages_nothing_twice() {
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let (handle, client) = corrupt_sim(4000, 0.03).await;
    let store = Arc::new(History::default());
    let (tx, rx) = tokio::sync::watch::channel(false);
    let mut cfg = builtin(Resource::Charges, dir.path());
    cfg.chunk_records = 300;
    cfg.batch_id = Some("b1".into());
    cfg.control.checkpoint_every = std::time::Duration::ZERO;
    cfg.control.checkpoints = Some(store.clone());
    cfg.control.cancel = Some(rx);
    cfg.control.progress = Some(Arc::new(CancelAfter(1500, tx)));
    let err = pipeline::run(&client, cfg.clone()).await.unwrap_err();
    assert!(
        matches!(err, stripe_xdm::pipeline::PipelineError::Cancelled),
        "{err}"
    );
    // Forget the last checkpoint: the mirror is now one commit ahead of the catalog.
    let saved = store.0.lock().unwrap().len();
    assert!(saved >= 3, "{saved} checkpoints");
    store.0.lock().unwrap().pop();
    let mirror_path = dir.path().join("mirror/charges");
    let mirror = Mirror::open_existing(&mirror_path, Resource::Charges)
        .await
        .unwrap();
    assert_eq!(
        mirror.committed_seq("b1").await.unwrap(),
        Some(saved as i64)
    );
    drop(mirror);
    // The resume fetches again from the older checkpoint and MERGEs: each object once.
    cfg.control.cancel = None;
    cfg.control.progress = None;
    let report = pipeline::run(&client, cfg).await.unwrap();
    assert_accounting(&report);
    let want: BTreeSet<String> = handle
        .simulator()
        .ids(Resource::Charges, None, None)
        .into_iter()
        .collect();
    assert_eq!(report.counts.fetched, want.len() as u64);
    let ids = strings(&mirror_rows(&mirror_path, Resource::Charges).await, "id");
    assert_eq!(ids.len(), want.len(), "each object staged once");
    assert_eq!(ids.into_iter().collect::<BTreeSet<_>>(), want);
    let accepted = strings(&read_batch_dir(&report.batch_dir).unwrap(), "_id");
    let corrupt = handle
        .simulator()
        .corrupt_count(Resource::Charges, None, None);
    assert!(corrupt > 0);
    assert_eq!(report.counts.rejected, corrupt);
    assert_eq!(
        accepted.len() as u64,
        want.len() as u64 - corrupt,
        "each decoded object in the batch once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_that_do_not_decode_are_staged_as_received_and_rejected_again_by_a_remap() {
    let dir = tempfile::tempdir().unwrap();
    let (handle, client) = corrupt_sim(1200, 0.05).await;
    let simulator = handle.simulator().clone();
    let resource = Resource::Charges;
    let n = simulator.count(resource, None, None);
    let corrupt = simulator.corrupt_count(resource, None, None);
    assert!(corrupt > 0);
    let mut cfg = builtin(resource, dir.path());
    cfg.partial_ingestion = Some(50.0);
    let path = dir.path().join("mirror").join(resource.path());
    // Twice: the first run appends, the second MERGEs over the same objects (some of the
    // undecodable ones have no readable `created`, so objects are matched by id alone).
    for round in 0..2 {
        let report = pipeline::run(&client, cfg.clone()).await.unwrap();
        assert_accounting(&report);
        assert_eq!(report.counts.staged, n, "round {round}");
        assert_eq!(
            report.counts.rejected_by_code.get("INGEST-1401-400"),
            Some(&corrupt),
            "round {round}"
        );
        let rows = raw_rows(&mirror_rows(&path, resource).await);
        assert_eq!(rows.len() as u64, n, "round {round}: each object once");
        let ids: BTreeSet<_> = rows.iter().filter_map(|r| r.0.clone()).collect();
        assert_eq!(ids.len() as u64, n, "round {round}");
        let mut undecodable = 0;
        for (id, raw, error) in &rows {
            let Some(reason) = error else { continue };
            undecodable += 1;
            let id = id.as_deref().unwrap();
            let index = simulator.index_of(resource, id).expect("a simulated id");
            assert_eq!(
                raw,
                &simulator.object_json(resource, index),
                "`_raw` is the record exactly as served"
            );
            assert!(simulator.corruption(resource, index).is_some(), "{id}");
            assert!(!reason.is_empty());
        }
        assert_eq!(undecodable, corrupt, "round {round}");
    }
    // `sql` finds them by their reason.
    let ctx = stripe_xdm::stage::read_session();
    let mirror = Mirror::open_existing(&path, resource).await.unwrap();
    mirror.register_current(&ctx, "charges").await.unwrap();
    let count = |sql: &'static str| {
        let ctx = ctx.clone();
        async move {
            let rows = ctx.sql(sql).await.unwrap().collect().await.unwrap();
            rows[0]
                .column(0)
                .as_primitive::<arrow::datatypes::Int64Type>()
                .value(0) as u64
        }
    };
    let counted =
        count("SELECT count(*) FROM charges WHERE _decode_error IS NOT NULL AND amount IS NULL")
            .await;
    assert_eq!(counted, corrupt);
    // Some have no readable `created`: such a row may be of any window, so a run of a window
    // that holds no other row still MERGEs (it may meet that object again).
    let nulls =
        count("SELECT count(*) FROM charges WHERE _decode_error IS NOT NULL AND created IS NULL")
            .await;
    assert!(nulls > 0 && nulls < corrupt, "{nulls} of {corrupt}");
    let future = stripe_xdm::runner::now() + 365 * 86_400;
    assert_eq!(
        mirror
            .mode_for(Some(future), None, "another")
            .await
            .unwrap(),
        stage::WriteMode::Merge
    );
    // A remap decodes their `_raw` again and rejects them with the decoder's reason and the
    // record as source; every object is accounted for.
    drop(handle);
    let mut cfg = cfg.clone();
    cfg.batch_id = Some("remap-undecodable".into());
    let remap = pipeline::remap(cfg).await.unwrap();
    assert_eq!(remap.counts.fetched, n);
    assert_eq!(remap.counts.staged, n);
    assert_eq!(remap.counts.ingested + remap.counts.rejected, n);
    assert_eq!(
        remap.counts.rejected_by_code.get("INGEST-1401-400"),
        Some(&corrupt)
    );
    let rejected = read_parquet(&remap.batch_dir.join(stripe_xdm::sink::REJECTED_FILE)).unwrap();
    let mut seen = 0;
    for b in &rejected {
        let ids = b.column_by_name("object_id").unwrap().as_string::<i32>();
        let src = b.column_by_name("source").unwrap().as_string::<i32>();
        for i in 0..b.num_rows() {
            let index = simulator.index_of(resource, ids.value(i)).unwrap();
            assert_eq!(src.value(i), simulator.object_json(resource, index));
            seen += 1;
        }
    }
    assert_eq!(seen, corrupt);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_merges_small_files_and_vacuum_deletes_the_replaced_ones() {
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let (_handle, client) = sim(SimConfig::default().with_counts(2000)).await;
    let mut cfg = builtin(Resource::Prices, dir.path());
    // A commit per chunk: many small files, and no compaction after the run.
    cfg.chunk_records = 200;
    cfg.control.checkpoint_every = std::time::Duration::ZERO;
    cfg.control.checkpoints = Some(Arc::new(stripe_xdm::pipeline::MemoryCheckpoints::default()));
    cfg.compaction.min_small_files = usize::MAX;
    let run = pipeline::run(&client, cfg).await.unwrap();
    let path = dir.path().join("mirror/prices");
    let mut mirror = Mirror::open_existing(&path, Resource::Prices)
        .await
        .unwrap();
    let before = mirror.data_files().unwrap().len();
    assert!(before >= 5, "{before} files");
    let report = mirror
        .compact(&stage::CompactPolicy {
            retention: chrono::Duration::zero(),
            force: true,
            ..stage::CompactPolicy::default()
        })
        .await
        .unwrap();
    assert_eq!(report.files_before, before);
    assert_eq!(report.files_removed as usize, before);
    assert_eq!(mirror.data_files().unwrap().len(), 1);
    assert!(report.files_vacuumed >= before, "{report:?}");
    // Same rows, readable by Delta and as plain Parquet, and nothing else on disk.
    let ids = strings(&mirror_rows(&path, Resource::Prices).await, "id");
    assert_eq!(ids.len() as u64, run.counts.staged);
    let parquet_on_disk = std::fs::read_dir(&path)
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "parquet"))
        .count();
    assert_eq!(parquet_on_disk, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunks_larger_than_a_row_group_are_encoded_as_several_with_every_record_intact() {
    // A 20,000-record chunk (with `_raw` viewing its page bodies) spans three of the mirror's
    // 8,192-row groups.
    let dir = tempfile::tempdir().unwrap();
    let (handle, client) = sim(SimConfig::default().with_count(Resource::Charges, 17_500)).await;
    let mut cfg = builtin(Resource::Charges, dir.path());
    cfg.chunk_records = 20_000;
    let report = pipeline::run(&client, cfg).await.unwrap();
    assert_accounting(&report);
    assert_eq!(report.counts.staged, 17_500);
    let path = dir.path().join("mirror/charges");
    let mirror = Mirror::open_existing(&path, Resource::Charges)
        .await
        .unwrap();
    let mut groups = Vec::new();
    for f in mirror.data_files().unwrap() {
        let file = std::fs::File::open(&f).unwrap();
        let reader = parquet::file::reader::SerializedFileReader::new(file).unwrap();
        use parquet::file::reader::FileReader;
        groups.extend(reader.metadata().row_groups().iter().map(|g| g.num_rows()));
    }
    groups.sort_unstable();
    assert_eq!(
        groups,
        [1_116, 8_192, 8_192],
        "row groups of the mirror's size"
    );
    let rows = mirror_rows(&path, Resource::Charges).await;
    let ids = strings(&rows, "id");
    let want: BTreeSet<String> = handle
        .simulator()
        .ids(Resource::Charges, None, None)
        .into_iter()
        .collect();
    assert_eq!(ids.iter().cloned().collect::<BTreeSet<_>>(), want);
    assert_eq!(ids.len(), want.len());
    let commit = mirror
        .committed_seq(&report.batch_id)
        .await
        .unwrap()
        .expect("the run's commit");
    for b in &rows {
        let seq = b
            .column_by_name(stage::SEQ_COLUMN)
            .unwrap()
            .as_primitive::<arrow::datatypes::Int64Type>();
        assert!(seq.iter().all(|s| s.is_some_and(|s| s >= 1 && s <= commit)));
    }
    for (id, raw) in ids.iter().zip(strings(&rows, "_raw")) {
        let v: serde_json::Value = serde_json::from_str(&raw).expect("_raw is JSON");
        assert_eq!(v["id"].as_str(), Some(id.as_str()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirror_written_before_decode_errors_were_staged_gains_the_column_and_keeps_its_rows() {
    use arrow::datatypes::Schema;
    use std::sync::Arc;
    let (handle, client) = corrupt_sim(600, 0.05).await;
    let resource = Resource::Charges;
    let n = handle.simulator().count(resource, None, None);
    let corrupt = handle.simulator().corrupt_count(resource, None, None);
    // An older mirror: the decoded records only, without `_deleted_at` and `_decode_error`.
    let fresh = tempfile::tempdir().unwrap();
    pipeline::run(&client, builtin(resource, fresh.path()))
        .await
        .unwrap();
    let rows = mirror_rows(&fresh.path().join("mirror/charges"), resource).await;
    let old: Vec<RecordBatch> = rows
        .iter()
        .map(|b| {
            let errors = b.column_by_name(stage::DECODE_ERROR_COLUMN).unwrap();
            let b =
                arrow::compute::filter_record_batch(b, &arrow::compute::is_null(errors).unwrap())
                    .unwrap();
            let keep: Vec<usize> = (0..b.num_columns())
                .filter(|&i| {
                    let name = b.schema().field(i).name().clone();
                    name != stage::DECODE_ERROR_COLUMN && name != stage::DELETED_AT_COLUMN
                })
                .collect();
            b.project(&keep).unwrap()
        })
        .collect();
    let old_schema: Arc<Schema> = old[0].schema();
    assert_eq!(
        old.iter().map(|b| b.num_rows() as u64).sum::<u64>(),
        n - corrupt
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mirror/charges");
    std::fs::create_dir_all(&path).unwrap();
    let url = deltalake::ensure_table_uri(path.to_string_lossy()).unwrap();
    deltalake::DeltaTable::try_from_url(url)
        .await
        .unwrap()
        .write(old)
        .await
        .unwrap();
    // Reading it (`sql`, `errors replay`, a remap) writes nothing: it stays as it was.
    let version = {
        let url = deltalake::ensure_table_uri(path.to_string_lossy()).unwrap();
        let mut table = deltalake::DeltaTable::try_from_url(url).await.unwrap();
        table.load().await.unwrap();
        table.version()
    };
    let out = stripe_xdm::inspect::sql(
        &dir.path().join("mirror"),
        &[],
        "SELECT count(*) FROM charges",
    )
    .await
    .unwrap();
    let counted = out[0]
        .column(0)
        .as_primitive::<arrow::datatypes::Int64Type>()
        .value(0) as u64;
    assert_eq!(
        counted,
        n - corrupt,
        "`sql` reads a mirror without `_deleted_at`"
    );
    let again = Mirror::open_existing(&path, resource).await.unwrap();
    assert_eq!(
        Some(again.version()),
        version,
        "opening to read commits nothing"
    );
    let schema = again.table().snapshot().unwrap().schema();
    assert!(!schema
        .fields()
        .any(|f| f.name() == stage::DECODE_ERROR_COLUMN));
    assert_eq!(
        raw_rows_without_errors(&mirror_rows(&path, resource).await),
        n - corrupt
    );
    // A run into it: the columns are added, the objects MERGEd, each staged once.
    let report = pipeline::run(&client, builtin(resource, dir.path()))
        .await
        .unwrap();
    assert_accounting(&report);
    let mirror = Mirror::open_existing(&path, resource).await.unwrap();
    let schema = mirror.table().snapshot().unwrap().schema();
    for column in [stage::DECODE_ERROR_COLUMN, stage::DELETED_AT_COLUMN] {
        assert!(schema.fields().any(|f| f.name() == column), "{column}");
    }
    assert!(old_schema
        .column_with_name(stage::DECODE_ERROR_COLUMN)
        .is_none());
    let rows = raw_rows(&mirror_rows(&path, resource).await);
    assert_eq!(rows.len() as u64, n, "each object once");
    assert_eq!(
        rows.iter().filter(|r| r.2.is_some()).count() as u64,
        corrupt,
        "the undecodable records staged with their reason"
    );
}
