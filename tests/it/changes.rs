//! Change capture: objects updated or deleted after a dataflow first read them reach the
//! mirror and the next batch through Stripe's events, hydrated at the pinned API version; a
//! cursor past the 30-day event horizon falls back to a full re-read; a resumed run does not
//! read its events twice.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use arrow::array::{Array, AsArray, RecordBatch};
use stripe_xdm::catalog::{Alerts, Catalog, NewDataflow, NewDataset, RunStatus};
use stripe_xdm::pipeline::DELETES_FILE;
use stripe_xdm::runner::{run_dataflow, RunResult, RunnerConfig, RunnerError};
use stripe_xdm::schedule::{Frequency, Schedule};
use stripe_xdm::sim::{ScriptedFault, SimConfig, SimHandle, Simulator, SIM_API_VERSION, SIM_KEY};
use stripe_xdm::source::{ChangeQuery, ClientConfig, StripeClient};
use stripe_xdm::stage::{read_session, Mirror};
use stripe_xdm::{Resource, Secret};

const HOUR: i64 = 3600;
const DAY: i64 = 86_400;
const CUSTOMERS: u64 = 120;

fn now() -> i64 {
    stripe_xdm::runner::now()
}

async fn start_sim(config: SimConfig) -> SimHandle {
    Simulator::new(config.with_count(Resource::Customers, CUSTOMERS))
        .start()
        .await
        .expect("simulator")
}

/// A catalog with account `main`, dataset `customers` and an hourly dataflow `people` that
/// started at `start`.
fn setup(home: &Path, start: i64) {
    let mut cat = Catalog::open(home).unwrap();
    cat.add_account("main", None, &Secret::new(SIM_KEY))
        .unwrap();
    cat.create_dataset(&NewDataset {
        name: "customers".into(),
        description: None,
        schema_json: stripe_xdm::map::substitute_tenant(
            stripe_xdm::defaults::xdm_schema_json(Resource::Customers),
            "tenant",
        ),
        profile_enabled: false,
        error_diagnostics: true,
        partial_ingestion_percent: Some(50.0),
    })
    .unwrap();
    cat.create_dataflow(
        &NewDataflow {
            name: "people".into(),
            description: None,
            account: "main".into(),
            resource: stripe_xdm::Resource::Customers,
            dataset: "customers".into(),
            mapping_sql: stripe_xdm::map::Mapping::builtin(Resource::Customers, "tenant").sql,
            alerts: Alerts::default(),
            schedule: Schedule::every(1, Frequency::Hour, start),
            alert_webhook: None,
            alert_command: None,
            upload: None,
        },
        start - 1,
    )
    .unwrap();
}

fn runner(home: &Path, sim: &SimHandle) -> RunnerConfig {
    let mut cfg = RunnerConfig::new(home);
    cfg.api_base_url = Some(sim.base_url());
    cfg.requests_per_sec = Some(10_000.0);
    cfg.checkpoint_every = Duration::ZERO;
    cfg.concurrency = 1;
    cfg
}

fn rows(dir: &Path) -> Vec<RecordBatch> {
    stripe_xdm::sink::read_batch_dir(dir).unwrap()
}

/// The accepted rows of a batch as JSON objects, by `_id`.
fn by_id(batches: &[RecordBatch]) -> HashMap<String, serde_json::Value> {
    let mut out = HashMap::new();
    for r in crate::support::json_rows(batches) {
        let id = r["_id"].as_str().unwrap().to_string();
        assert!(
            out.insert(id.clone(), r).is_none(),
            "{id} twice in one batch"
        );
    }
    out
}

/// `id → (email, _deleted_at is set)` for every row of the mirror, tombstones included.
async fn mirror_rows(home: &Path) -> HashMap<String, (Option<String>, bool)> {
    let m = Mirror::open_existing(&home.join("mirror/main/customers"), Resource::Customers)
        .await
        .unwrap();
    let ctx = read_session();
    m.register(&ctx, "m").await.unwrap();
    let batches = ctx
        .sql("SELECT id, email, _deleted_at IS NOT NULL AS deleted FROM m")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let mut out = HashMap::new();
    for b in batches {
        let utf8 = |c: &arrow::array::ArrayRef| {
            arrow::compute::cast(c, &arrow::datatypes::DataType::Utf8).unwrap()
        };
        let (id, email) = (utf8(b.column(0)), utf8(b.column(1)));
        let (id, email, deleted) = (
            id.as_string::<i32>(),
            email.as_string::<i32>(),
            b.column(2).as_boolean(),
        );
        for i in 0..b.num_rows() {
            let email = (!email.is_null(i)).then(|| email.value(i).to_string());
            assert!(
                out.insert(id.value(i).to_string(), (email, deleted.value(i)))
                    .is_none(),
                "the mirror holds each object once"
            );
        }
    }
    out
}

fn deletes(dir: &Path) -> Vec<(String, Option<String>, String)> {
    let path = dir.join(DELETES_FILE);
    if !path.exists() {
        return Vec::new();
    }
    let file = std::fs::File::open(path).unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let mut out = Vec::new();
    for b in reader {
        let b = b.unwrap();
        let id = b.column_by_name("id").unwrap().as_string::<i32>().clone();
        let ev = b
            .column_by_name("event_id")
            .unwrap()
            .as_string::<i32>()
            .clone();
        let ty = b
            .column_by_name("event_type")
            .unwrap()
            .as_string::<i32>()
            .clone();
        for i in 0..b.num_rows() {
            let e = (!ev.is_null(i)).then(|| ev.value(i).to_string());
            out.push((id.value(i).to_string(), e, ty.value(i).to_string()));
        }
    }
    out
}

fn check_accounting(r: &RunResult) {
    let run = &r.run;
    assert_eq!(run.status, RunStatus::Success, "{run:?} {:?}", r.error);
    assert_eq!(
        run.counts.fetched,
        run.counts.ingested + run.counts.rejected,
        "{run:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_and_deletions_reach_the_mirror_and_the_next_batch() {
    let sim = start_sim(SimConfig::default()).await;
    let home = tempfile::tempdir().unwrap();
    let t = now();
    setup(home.path(), t - 3 * HOUR);
    let cfg = runner(home.path(), &sim);
    let first = run_dataflow(&cfg, "people", t - 2 * HOUR, None)
        .await
        .unwrap();
    check_accounting(&first);
    assert_eq!(first.run.counts.fetched, CUSTOMERS);
    assert_eq!((first.run.counts.updated, first.run.counts.deleted), (0, 0));

    // After the first run: customer 5 changes twice, customer 7 is deleted, customer 9 changes.
    let s = sim.simulator();
    let (c5, c7, c9) = (
        s.id(Resource::Customers, 5),
        s.id(Resource::Customers, 7),
        s.id(Resource::Customers, 9),
    );
    s.update(Resource::Customers, 5, t - 90 * 60).unwrap();
    s.update(Resource::Customers, 5, t - HOUR).unwrap();
    s.update(Resource::Customers, 9, t - HOUR).unwrap();
    let deleted_event = s.delete(Resource::Customers, 7, t - 30 * 60).unwrap();
    assert!(
        s.update(Resource::Customers, 7, t - 20 * 60).is_err(),
        "a deleted customer does not change"
    );

    let second = run_dataflow(&cfg, "people", t, None).await.unwrap();
    check_accounting(&second);
    let report = second.report.as_ref().unwrap();
    assert_eq!(second.run.counts.updated, 2, "customers 5 and 9, once each");
    assert_eq!(second.run.counts.deleted, 1);
    assert_eq!(second.run.counts.events_read, 4);
    assert_eq!(
        second.run.counts.fetched, 2,
        "no new customers, two changed ones"
    );
    // Event payloads are rendered at another API version: each changed object was fetched
    // again by id (one events page + two retrieves + the window's list page).
    assert_eq!(report.requests, 4, "{report:?}");

    // The batch carries the new versions, under the same `_id`.
    let batch = by_id(&rows(&report.batch_dir));
    assert_eq!(batch.len(), 2);
    let text = batch[&c5].to_string();
    assert!(text.contains("updated2.5@example.com"), "{text}");
    assert!(batch[&c9].to_string().contains("updated1.9@example.com"));
    // The deletion is beside it.
    assert_eq!(
        deletes(&report.batch_dir),
        vec![(
            c7.clone(),
            Some(deleted_event),
            "customer.deleted".to_string()
        )]
    );

    // The mirror: the latest version of each object, the deleted one as a tombstone.
    let mirror = mirror_rows(home.path()).await;
    assert_eq!(mirror.len() as u64, CUSTOMERS);
    assert_eq!(mirror[&c5].0.as_deref(), Some("updated2.5@example.com"));
    assert!(!mirror[&c5].1);
    assert!(mirror[&c7].1, "customer 7 is a tombstone");
    assert!(mirror[&c7].0.is_some(), "its last known version is kept");
    // Files the MERGE wrote have the mirror's settings (ZSTD), as every other file.
    let table = home.path().join("mirror/main/customers");
    let names: Vec<String> = std::fs::read_dir(&table)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".parquet"))
        .collect();
    assert!(names.len() >= 2, "{names:?}");
    for n in &names {
        let file = std::fs::File::open(table.join(n)).unwrap();
        let meta = parquet::file::reader::SerializedFileReader::new(file).unwrap();
        let meta = parquet::file::reader::FileReader::metadata(&meta);
        let codecs: Vec<_> = meta.row_groups()[0]
            .columns()
            .iter()
            .map(|c| c.compression())
            .collect();
        assert!(
            codecs.iter().all(|c| matches!(
                c,
                parquet::basic::Compression::ZSTD(_) | parquet::basic::Compression::UNCOMPRESSED
            )),
            "{n}: {codecs:?}"
        );
    }
    // A remap maps the current state only: the deleted customer is not in it.
    let remapped = stripe_xdm::runner::remap_dataflow(&cfg, "people")
        .await
        .unwrap();
    assert_eq!(remapped.counts.fetched, CUSTOMERS - 1);
    assert!(!by_id(&rows(&remapped.batch_dir)).contains_key(&c7));

    // `sql`: `customers` is the current state, `customers_all` keeps the tombstone.
    let sql = |q: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_stripe-xdm"))
            .args(["sql", "--home"])
            .arg(home.path())
            .args([q, "--json"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let current = sql("SELECT count(*) AS n FROM customers");
    assert_eq!(current[0]["n"], CUSTOMERS - 1, "{current}");
    let all = sql("SELECT count(*) AS n FROM customers_all WHERE _deleted_at IS NOT NULL");
    assert_eq!(all[0]["n"], 1, "{all}");

    // `runs show --json` reports the counts.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_stripe-xdm"))
        .args(["runs", "--home"])
        .arg(home.path())
        .arg("show")
        .arg(second.run.id.to_string())
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["updated"], 2, "{shown}");
    assert_eq!(shown["deleted"], 1, "{shown}");
    assert_eq!(shown["created"], 0, "{shown}");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payloads_at_the_pinned_version_need_no_refetch_and_others_do() {
    for (version, retrieved) in [(SIM_API_VERSION, 0), ("2020-08-27", 3)] {
        let sim = start_sim(SimConfig::default().with_events_api_version(version)).await;
        let s = sim.simulator();
        let t = now();
        for i in [1, 2, 3] {
            s.update(Resource::Customers, i, t - 600).unwrap();
        }
        s.update(Resource::Customers, 2, t - 300).unwrap();
        let client =
            StripeClient::new(ClientConfig::new(sim.base_url(), Secret::new(SIM_KEY))).unwrap();
        let fields: Vec<String> = stripe_xdm::decode::source_schema(Resource::Customers)
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .filter(|n| n != "_raw")
            .collect();
        let q = ChangeQuery {
            resource: Resource::Customers,
            since: t - HOUR,
            upto: t - 60,
            listed_from: None,
            required_fields: fields,
        };
        let set = client.read_changes(&q).await.unwrap();
        assert_eq!(set.events, 4, "{version}");
        assert_eq!(set.changes.len(), 3, "one change per object: {version}");
        assert_eq!(set.retrieved, retrieved, "{version}");
        assert_eq!(set.from_payload, 3 - retrieved, "{version}");
        let two = set
            .changes
            .iter()
            .find(|c| c.id == s.id(Resource::Customers, 2))
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&two.object).unwrap();
        assert_eq!(v["email"], "updated2.2@example.com", "the newest version");
        assert_eq!(two.api_version, SIM_API_VERSION);
        // Objects the run's list reads anyway are left to it.
        let listed = client
            .read_changes(&ChangeQuery {
                listed_from: Some(0),
                ..q.clone()
            })
            .await
            .unwrap();
        assert!(listed.changes.is_empty());
        assert_eq!(listed.listed_changed.len(), 4);
        sim.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_past_the_event_horizon_rereads_everything_and_marks_the_absent_deleted() {
    let sim = start_sim(SimConfig::default()).await;
    let home = tempfile::tempdir().unwrap();
    let t = now();
    setup(home.path(), t - 41 * DAY);
    let cfg = runner(home.path(), &sim);
    let first = run_dataflow(&cfg, "people", t - 40 * DAY, None)
        .await
        .unwrap();
    check_accounting(&first);
    // Deleted 35 days ago: its event is gone (Stripe keeps 30 days).
    let s = sim.simulator();
    s.delete(Resource::Customers, 11, t - 35 * DAY).unwrap();
    let gone = s.id(Resource::Customers, 11);
    let second = run_dataflow(&cfg, "people", t, None).await.unwrap();
    check_accounting(&second);
    assert_eq!(
        second.run.counts.fetched,
        CUSTOMERS - 1,
        "the whole list again"
    );
    assert_eq!(second.run.counts.deleted, 1);
    assert_eq!(second.run.counts.events_read, 0);
    let dir = &second.report.as_ref().unwrap().batch_dir;
    assert_eq!(
        deletes(dir),
        vec![(gone.clone(), None, stripe_xdm::pipeline::ABSENT.to_string())]
    );
    let mirror = mirror_rows(home.path()).await;
    assert!(mirror[&gone].1, "a tombstone");
    assert_eq!(mirror.values().filter(|(_, d)| *d).count(), 1);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_run_does_not_read_its_events_twice() {
    let sim = start_sim(SimConfig::default().with_count(Resource::Customers, CUSTOMERS)).await;
    let home = tempfile::tempdir().unwrap();
    let t = now();
    setup(home.path(), t - 3 * HOUR);
    let cfg = runner(home.path(), &sim);
    let first = run_dataflow(&cfg, "people", t - 2 * HOUR, None)
        .await
        .unwrap();
    check_accounting(&first);
    let s = sim.simulator();
    s.update(Resource::Customers, 4, t - HOUR).unwrap();
    s.delete(Resource::Customers, 6, t - HOUR).unwrap();

    // The events page and the retrieve are answered at once, the list is slow: the run is
    // cancelled while it waits for the list, after its changes' checkpoint.
    sim.inject(ScriptedFault::delay(Duration::from_millis(1)).times(2));
    sim.inject(ScriptedFault::delay(Duration::from_secs(3)));
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let _ = tx.send(true);
    });
    let before = sim.stats().requests;
    let cut = run_dataflow(&cfg, "people", t, Some(rx)).await;
    assert!(
        matches!(cut, Err(RunnerError::Interrupted { .. })),
        "{cut:?}"
    );
    let events_requests = sim.stats().requests - before;
    assert!(events_requests >= 2, "events and a retrieve were read");

    let before = sim.stats().requests;
    let resumed = run_dataflow(&cfg, "people", t, None).await.unwrap();
    assert!(resumed.resumed);
    check_accounting(&resumed);
    assert_eq!(
        (resumed.run.counts.updated, resumed.run.counts.deleted),
        (1, 1)
    );
    // The resume read the window's list at most: no events, no retrieves.
    assert!(sim.stats().requests - before <= 1);
    let dir = &resumed.report.as_ref().unwrap().batch_dir;
    let batch = by_id(&rows(dir));
    assert_eq!(batch.len(), 1, "customer 4 once");
    assert!(batch.contains_key(&s.id(Resource::Customers, 4)));
    assert_eq!(deletes(dir).len(), 1);
    let mirror = mirror_rows(home.path()).await;
    assert_eq!(mirror.len() as u64, CUSTOMERS);
    assert!(mirror[&s.id(Resource::Customers, 6)].1);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ended_subscription_is_fetched_again_not_deleted() {
    let sim = start_sim(SimConfig::default().with_count(Resource::Subscriptions, 40)).await;
    let s = sim.simulator();
    let t = now();
    let event = s.delete(Resource::Subscriptions, 3, t - 600).unwrap();
    assert!(
        s.delete(Resource::Charges, 3, t - 600).is_err(),
        "charges are never deleted"
    );
    assert!(s.update(Resource::BalanceTransactions, 3, t - 600).is_err());
    let client =
        StripeClient::new(ClientConfig::new(sim.base_url(), Secret::new(SIM_KEY))).unwrap();
    let set = client
        .read_changes(&ChangeQuery {
            resource: Resource::Subscriptions,
            since: t - HOUR,
            upto: t - 60,
            listed_from: None,
            required_fields: vec!["id".into()],
        })
        .await
        .unwrap();
    assert_eq!(set.changes.len(), 1);
    let c = &set.changes[0];
    assert_eq!(c.event_id, event);
    assert_eq!(c.event_type, "customer.subscription.deleted");
    assert_eq!(c.kind, stripe_xdm::source::ChangeKind::Updated);
    assert_eq!(
        set.retrieved, 1,
        "rendered at another version: fetched again"
    );
    let v: serde_json::Value = serde_json::from_slice(&c.object).unwrap();
    assert_eq!(v["status"], "canceled");
    assert_eq!(v["ended_at"], t - 600);
    // Events outside the window, or of other types, are not read.
    let none = client
        .read_changes(&ChangeQuery {
            resource: Resource::Customers,
            since: t - HOUR,
            upto: t - 60,
            listed_from: None,
            required_fields: vec![],
        })
        .await
        .unwrap();
    assert_eq!(none.events, 0);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remap_maps_only_what_the_dataflow_ingested() {
    let sim = start_sim(SimConfig::default()).await;
    let home = tempfile::tempdir().unwrap();
    let t = now();
    setup(home.path(), t - 3 * HOUR);
    // A second dataflow of the same account and resource, without backfill: it shares the
    // mirror `people` fills, but ingests only what is created after it started.
    let mut cat = Catalog::open(home.path()).unwrap();
    let people = cat.dataflow("people").unwrap();
    cat.create_dataflow(
        &NewDataflow {
            name: "recent".into(),
            description: None,
            account: "main".into(),
            resource: Resource::Customers,
            dataset: "customers".into(),
            mapping_sql: stripe_xdm::map::Mapping::builtin(Resource::Customers, "tenant").sql,
            alerts: Alerts::default(),
            schedule: Schedule::every(1, Frequency::Hour, t - 3 * HOUR).with_backfill(false),
            alert_webhook: None,
            alert_command: None,
            upload: None,
        },
        t - 3 * HOUR - 1,
    )
    .unwrap();
    drop((cat, people));
    let cfg = runner(home.path(), &sim);
    // Nothing committed yet: nothing to remap.
    let e = stripe_xdm::runner::remap_dataflow(&cfg, "recent")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("has no committed run"), "{e}");

    let full = run_dataflow(&cfg, "people", t - 2 * HOUR, None)
        .await
        .unwrap();
    assert_eq!(full.run.counts.fetched, CUSTOMERS);
    let recent = run_dataflow(&cfg, "recent", t - 2 * HOUR, None)
        .await
        .unwrap();
    assert_eq!(recent.run.status, RunStatus::Success);
    let ingested = recent.run.counts.fetched;
    assert!(ingested < CUSTOMERS, "the history is older than its start");

    let remapped = stripe_xdm::runner::remap_dataflow(&cfg, "recent")
        .await
        .unwrap();
    assert_eq!(remapped.counts.fetched, ingested, "only its own span");
    assert_eq!(
        remapped.counts.fetched,
        remapped.counts.ingested + remapped.counts.rejected
    );
    let all = stripe_xdm::runner::remap_dataflow(&cfg, "people")
        .await
        .unwrap();
    assert_eq!(all.counts.fetched, CUSTOMERS);

    // An object created before `recent` started, then updated: change capture ingests it, and
    // the remap keeps it although its `created` is outside the span.
    sim.simulator()
        .update(Resource::Customers, 5, t - 90 * 60)
        .unwrap();
    let second = run_dataflow(&cfg, "recent", t - HOUR, None).await.unwrap();
    assert_eq!(second.run.status, RunStatus::Success);
    assert_eq!(second.run.counts.updated, 1, "{:?}", second.run.counts);
    let remapped = stripe_xdm::runner::remap_dataflow(&cfg, "recent")
        .await
        .unwrap();
    assert_eq!(
        remapped.counts.fetched,
        ingested + second.run.counts.fetched,
        "its own span and the object it took through change capture"
    );
}
