//! The SQLite catalog: migrations, masked keys, datasets' rules, dataflows with etags and
//! versioned mappings, runs and watermarks, delete semantics, and two writers at once.

use std::collections::BTreeMap;
use std::path::Path;

use stripe_xdm::catalog::{
    AlertDelivery, AlertKind, Alerts, Catalog, CatalogError, DataflowUpdate, NewDataflow,
    NewDataset, RunOutcome, RunStatus, SCHEMA_VERSION,
};
use stripe_xdm::schedule::{Frequency, Schedule, Window};
use stripe_xdm::Secret;

const KEY: &str = "sk_test_51AbCdEfGhIjKlMnOpQrStUvWxYz0123456789ZYXW4242";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn schema(name: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("sql").join(name)).unwrap()
}

fn dataset(name: &str) -> NewDataset {
    NewDataset {
        name: name.into(),
        description: None,
        schema_json: schema("customers.xdm.json"),
        profile_enabled: false,
        error_diagnostics: false,
        partial_ingestion_percent: None,
    }
}

fn flow(name: &str, schedule: Schedule) -> NewDataflow {
    NewDataflow {
        name: name.into(),
        description: Some("customers hourly".into()),
        account: "acme".into(),
        resource: stripe_xdm::Resource::Customers,
        dataset: "customers".into(),
        mapping_sql: "SELECT id FROM customers".into(),
        alerts: Alerts {
            run_start: false,
            run_success: true,
            run_failure: true,
        },
        schedule,
        alert_webhook: None,
        alert_command: None,
        upload: None,
    }
}

/// A catalog with account `acme`, dataset `customers` and an hourly dataflow `flow` starting now.
fn setup(home: &Path) -> (Catalog, i64) {
    let mut c = Catalog::open(home).unwrap();
    c.add_account("acme", Some("test account"), &Secret::new(KEY))
        .unwrap();
    c.create_dataset(&dataset("customers")).unwrap();
    let t = now();
    c.create_dataflow(&flow("flow", Schedule::every(1, Frequency::Hour, t)), t)
        .unwrap();
    (c, t)
}

fn grep_dir(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut hits = vec![];
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            if p.file_name().unwrap() != "secrets" {
                hits.extend(grep_dir(&p, needle));
            }
        } else if std::fs::read(&p)
            .unwrap()
            .windows(needle.len())
            .any(|w| w == needle)
        {
            hits.push(p.display().to_string());
        }
    }
    hits
}

#[test]
fn opens_migrates_and_persists_across_reopen() {
    let home = tempfile::tempdir().unwrap();
    {
        let (c, _) = setup(home.path());
        assert_eq!(c.schema_version().unwrap(), SCHEMA_VERSION);
    }
    let c = Catalog::open(home.path()).unwrap(); // migrations are not re-applied
    assert_eq!(c.schema_version().unwrap(), SCHEMA_VERSION);
    assert_eq!(c.list_accounts().unwrap().len(), 1);
    assert_eq!(c.dataflow("flow").unwrap().mapping_version, 1);
    assert!(home.path().join("catalog.sqlite").exists());
}

#[test]
fn keys_are_masked_and_never_in_the_catalog() {
    let home = tempfile::tempdir().unwrap();
    let (mut c, _) = setup(home.path());
    let a = c.account("acme").unwrap();
    assert_eq!(a.key_masked, "sk_test_…4242");
    assert!(!format!("{a:?}").contains(KEY));
    assert!(!serde_json::to_string(&c.list_accounts().unwrap())
        .unwrap()
        .contains(KEY));
    assert_eq!(c.account_key("acme").unwrap().expose(), KEY);
    drop(c);
    assert!(
        grep_dir(home.path(), KEY.as_bytes()).is_empty(),
        "key found outside secrets/"
    );
    let key_file = home.path().join("secrets/acme.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    c = Catalog::open(home.path()).unwrap();
    assert!(matches!(
        c.add_account("acme", None, &Secret::new(KEY)),
        Err(CatalogError::Exists { .. })
    ));
    assert!(matches!(
        c.add_account("../evil", None, &Secret::new(KEY)),
        Err(CatalogError::InvalidName { .. })
    ));
}

#[test]
fn removing_a_used_account_names_the_dataflows() {
    let home = tempfile::tempdir().unwrap();
    let (mut c, t) = setup(home.path());
    c.create_dataflow(&flow("another", Schedule::once(t + 10)), t)
        .unwrap();
    let e = c.remove_account("acme").unwrap_err();
    assert!(
        matches!(&e, CatalogError::AccountInUse { dataflows, .. } if dataflows == &["another", "flow"])
    );
    assert!(e.to_string().contains("another, flow"), "{e}");
    c.delete_dataflow("flow", false).unwrap();
    c.delete_dataflow("another", false).unwrap();
    c.remove_account("acme").unwrap();
    assert!(!home.path().join("secrets/acme.key").exists());
    assert!(matches!(
        c.account("acme"),
        Err(CatalogError::NotFound { .. })
    ));
}

#[test]
fn dataset_rules() {
    let home = tempfile::tempdir().unwrap();
    let mut c = Catalog::open(home.path()).unwrap();
    // A dataset's name is its folder under `<home>/data`: one folder, never outside.
    for bad in ["../../escape", "..", ".", "a/b", "a\\b"] {
        let e = c.create_dataset(&dataset(bad)).unwrap_err();
        assert!(
            matches!(
                e,
                CatalogError::InvalidName {
                    what: "dataset",
                    ..
                }
            ),
            "{bad}: {e}"
        );
    }
    assert!(c.list_datasets().unwrap().is_empty());
    // Exactly one primary identity: Profile allowed.
    let d = c
        .create_dataset(&NewDataset {
            profile_enabled: true,
            ..dataset("profiles")
        })
        .unwrap();
    assert!(d.profile_enabled && !d.error_diagnostics);
    // No identity: refused.
    let no_id = NewDataset {
        profile_enabled: true,
        schema_json: schema("prices.xdm.json"),
        ..dataset("p")
    };
    assert!(matches!(
        c.create_dataset(&no_id),
        Err(CatalogError::ProfileIdentity { found: 0, .. })
    ));
    // Two primaries: refused (already by the schema parser).
    let two =
        schema("customers.xdm.json").replace("\"xdm:isPrimary\": false", "\"xdm:isPrimary\": true");
    let two = NewDataset {
        profile_enabled: true,
        schema_json: two,
        ..dataset("two")
    };
    let e = c.create_dataset(&two).unwrap_err();
    assert!(e.to_string().contains("primary identity"), "{e}");
    // Partial ingestion forces diagnostics on; the threshold is a percentage.
    let d = c
        .create_dataset(&NewDataset {
            partial_ingestion_percent: Some(5.0),
            ..dataset("partial")
        })
        .unwrap();
    assert!(d.error_diagnostics);
    // Platform's rule: a percentage with exclusiveMinimum 0.
    for percent in [101.0, 0.0, -1.0, f64::NAN] {
        let bad = NewDataset {
            partial_ingestion_percent: Some(percent),
            ..dataset("bad")
        };
        let err = c.create_dataset(&bad).unwrap_err();
        assert!(
            matches!(err, CatalogError::Threshold { .. }),
            "{percent}: {err}"
        );
        assert!(err.to_string().contains("above 0"), "{err}");
    }
    let broken = NewDataset {
        schema_json: "{".into(),
        ..dataset("broken")
    };
    assert!(matches!(
        c.create_dataset(&broken),
        Err(CatalogError::Schema { .. })
    ));
    let d = c
        .update_dataset_options("profiles", false, Some(10.0))
        .unwrap();
    assert!(d.error_diagnostics && d.partial_ingestion_percent == Some(10.0));
    assert_eq!(c.list_datasets().unwrap().len(), 2);
}

#[test]
fn dataflow_creation_checks_references_and_schedule() {
    let home = tempfile::tempdir().unwrap();
    let (mut c, t) = setup(home.path());
    let e = c
        .create_dataflow(&flow("x", Schedule::every(5, Frequency::Minute, t)), t)
        .unwrap_err();
    assert!(e.to_string().contains("minute interval ≥ 15"), "{e}");
    assert!(matches!(
        c.create_dataflow(
            &NewDataflow {
                account: "nobody".into(),
                ..flow("x", Schedule::once(t))
            },
            t
        ),
        Err(CatalogError::NotFound {
            what: "account",
            ..
        })
    ));
    assert!(matches!(
        c.create_dataflow(&flow("flow", Schedule::once(t)), t),
        Err(CatalogError::Exists { .. })
    ));
    let f = c.dataflow("flow").unwrap();
    assert_eq!((f.enabled, f.etag, f.schedule.backfill()), (true, 1, true));
    assert_eq!(
        f.alerts,
        Alerts {
            run_start: false,
            run_success: true,
            run_failure: true
        }
    );
}

#[test]
fn updates_are_guarded_by_etag_and_version_mappings() {
    let home = tempfile::tempdir().unwrap();
    let (mut c, t) = setup(home.path());
    let f = c.dataflow("flow").unwrap();
    let upd = DataflowUpdate {
        name: Some("flow2".into()),
        description: Some(None),
        mapping_sql: Some("SELECT id, email FROM customers".into()),
        ..Default::default()
    };
    let g = c.update_dataflow("flow", f.etag, &upd, t).unwrap();
    assert_eq!(
        (
            g.name.as_str(),
            g.etag,
            g.mapping_version,
            g.description.clone()
        ),
        ("flow2", 2, 2, None)
    );
    // A stale etag is refused, not lost.
    let stale = DataflowUpdate {
        description: Some(Some("stale".into())),
        ..Default::default()
    };
    assert!(matches!(
        c.update_dataflow("flow2", f.etag, &stale, t),
        Err(CatalogError::Conflict {
            expected: 1,
            actual: 2,
            ..
        })
    ));
    // Start time cannot change once passed.
    let moved = DataflowUpdate {
        schedule: Some(Schedule::every(1, Frequency::Hour, t + 7200)),
        ..Default::default()
    };
    let e = c
        .update_dataflow("flow2", g.etag, &moved, t + 10)
        .unwrap_err();
    assert!(e.to_string().contains("1366-400"), "{e}");
    let versions = c.mapping_versions("flow2").unwrap();
    assert_eq!(
        versions.iter().map(|v| v.version).collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert_eq!(
        c.mapping("flow2", Some(1)).unwrap().sql,
        "SELECT id FROM customers"
    );
    let h = c.set_dataflow_enabled("flow2", false).unwrap();
    assert!(!h.enabled && h.etag == 3);

    // A refused dataset option refuses the whole update: nothing else is changed.
    let mixed = DataflowUpdate {
        name: Some("flow3".into()),
        description: Some(Some("new".into())),
        mapping_sql: Some("SELECT id, email, name FROM customers".into()),
        dataset_options: Some(stripe_xdm::catalog::DatasetOptions {
            error_diagnostics: None,
            partial_ingestion_percent: Some(Some(0.0)),
        }),
        ..Default::default()
    };
    let e = c.update_dataflow("flow2", h.etag, &mixed, t).unwrap_err();
    assert!(
        e.to_string().contains("partial ingestion threshold 0"),
        "{e}"
    );
    let after = c.dataflow("flow2").unwrap();
    assert_eq!(
        (after.etag, after.mapping_version, after.description.clone()),
        (3, 2, None)
    );
    assert!(c.dataflow("flow3").is_err());
    // Accepted, it changes both in one go.
    let both = DataflowUpdate {
        description: Some(Some("new".into())),
        dataset_options: Some(stripe_xdm::catalog::DatasetOptions {
            error_diagnostics: None,
            partial_ingestion_percent: Some(Some(2.5)),
        }),
        ..Default::default()
    };
    let k = c.update_dataflow("flow2", h.etag, &both, t).unwrap();
    assert_eq!(k.etag, 4);
    let ds = c.dataset(&k.dataset).unwrap();
    assert_eq!(ds.partial_ingestion_percent, Some(2.5));
    assert!(
        ds.error_diagnostics,
        "partial ingestion keeps diagnostics on"
    );
}

#[test]
fn watermark_advances_only_on_success() {
    let home = tempfile::tempdir().unwrap();
    let (mut c, t) = setup(home.path());
    // First run: backfill, all history up to the scheduled time minus the lag.
    let r1 = c.begin_run("flow", t, 30, t).unwrap();
    assert_eq!(
        (r1.status, r1.window),
        (
            RunStatus::Running,
            Some(Window {
                gte: None,
                lt: t - 30
            })
        )
    );
    assert!(matches!(
        c.begin_run("flow", t, 30, t),
        Err(CatalogError::RunInProgress { .. })
    ));
    let errors = BTreeMap::from([("INGEST-1401-400".to_string(), 1u64)]);
    let ok = RunOutcome {
        success: true,
        counts: stripe_xdm::metrics::RecordCounts {
            fetched: 10,
            staged: 10,
            ingested: 9,
            rejected: 1,
            rejected_by_code: errors,
            pages: 1,
            bytes_in: 1000,
            bytes_out: 500,
            files: 1,
            ..Default::default()
        },
        batch_id: Some("b1".into()),
        ..Default::default()
    };
    let r1 = c.finish_run(r1.id, &ok, t + 5).unwrap();
    assert_eq!(r1.status, RunStatus::Success);
    assert_eq!(
        r1.counts, ok.counts,
        "the catalog keeps every count of the run"
    );
    assert!(r1.counts.balanced());
    assert_eq!(
        r1.end_alert(),
        Some(AlertKind::RunFailure),
        "success with errors alerts failure"
    );
    assert_eq!(c.watermark("flow").unwrap(), Some(t - 30));
    assert!(matches!(
        c.finish_run(r1.id, &ok, t + 6),
        Err(CatalogError::RunState { .. })
    ));
    // Second run fails: the watermark stays, the retry covers the same window.
    let r2 = c.begin_run("flow", t + 3600, 30, t + 3600).unwrap();
    assert_eq!(
        r2.window,
        Some(Window {
            gte: Some(t - 30),
            lt: t + 3570
        })
    );
    let r2 = c.fail_run(r2.id, "stripe down", t + 3601).unwrap();
    assert_eq!(
        (r2.status, r2.failure_reason.as_deref()),
        (RunStatus::Failed, Some("stripe down"))
    );
    // A failed run ingested nothing, whatever passed validation before it failed.
    let mut over = r2.clone();
    over.counts.fetched = 500;
    over.counts.ingested = 431;
    over.counts.rejected = 69;
    assert_eq!((over.ingested(), over.ingested_rate()), (0, 0.0));
    let json = over.to_json();
    assert_eq!(
        (
            json["ingested"].as_u64(),
            json["passed_validation"].as_u64()
        ),
        (Some(0), Some(431))
    );
    over.status = RunStatus::Success;
    assert!(over.to_json().get("passed_validation").is_none());
    assert_eq!(over.ingested(), 431);
    assert!((over.ingested_rate() - 86.2).abs() < 1e-9);
    assert_eq!(c.watermark("flow").unwrap(), Some(t - 30));
    let r3 = c.begin_run("flow", t + 3600, 30, t + 3700).unwrap();
    assert_eq!(r3.window, r2.window);
    let r3 = c
        .finish_run(
            r3.id,
            &RunOutcome {
                success: true,
                ..Default::default()
            },
            t + 3701,
        )
        .unwrap();
    assert_eq!(r3.end_alert(), Some(AlertKind::RunSuccess));
    assert_eq!(c.watermark("flow").unwrap(), Some(t + 3570));
    assert_eq!(c.last_scheduled_time("flow").unwrap(), Some(t + 3600));
    let runs = c.list_runs(Some("flow"), None).unwrap();
    assert_eq!(runs.len(), 3);
    assert_eq!(c.list_runs(None, Some(1)).unwrap()[0].id, r3.id);
    assert_eq!(
        c.run(r1.id)
            .unwrap()
            .counts
            .rejected_by_code
            .get("INGEST-1401-400"),
        Some(&1)
    );
    // A run uses the newest mapping version when it starts.
    c.add_mapping_version("flow", "SELECT 1").unwrap();
    let r4 = c.schedule_run("flow", t + 7200).unwrap();
    assert_eq!(r4.status, RunStatus::Scheduled);
    assert_eq!(c.start_run(r4.id, 30, t + 7200).unwrap().mapping_version, 2);
}

#[test]
fn delete_removes_runs_and_refuses_while_running() {
    let home = tempfile::tempdir().unwrap();
    let (mut c, t) = setup(home.path());
    let r = c.begin_run("flow", t, 0, t).unwrap();
    let d = AlertDelivery {
        id: 0,
        run_id: r.id,
        kind: AlertKind::RunStart,
        target: "http://127.0.0.1:9/hook".into(),
        attempts: 1,
        ok: true,
        delivered_at: t,
        payload: "{}".into(),
        error: None,
    };
    c.record_alert(&d).unwrap();
    assert_eq!(c.alert_deliveries(r.id).unwrap().len(), 1);
    let refused = c.delete_dataflow("flow", false).unwrap_err().to_string();
    assert!(
        refused.contains(&format!("has run {} running", r.id)) && refused.contains("--cancel"),
        "{refused}"
    );
    // Interrupted (its process let go of it): the message says so and how to resume it.
    c.release_run(r.id).unwrap();
    let refused = c.delete_dataflow("flow", false).unwrap_err().to_string();
    assert!(
        refused.contains("interrupted")
            && refused.contains("`stripe-xdm dataflows run flow` resumes it")
            && refused.contains("--cancel"),
        "{refused}"
    );
    // The cancelled run's staging area (what it wrote before it was interrupted) goes with it.
    let data = home.path().join("data");
    let staging = data
        .join("customers/.staging")
        .join(stripe_xdm::runner::batch_id_for(&r));
    std::fs::create_dir_all(&staging).unwrap();
    std::fs::write(staging.join("part-00000.parquet"), b"PAR1").unwrap();
    let del = stripe_xdm::app::dataflows::delete_dataflow(&mut c, "flow", true, &data).unwrap();
    assert_eq!((del.runs_removed, del.cancelled_run), (1, Some(r.id)));
    assert!(!staging.exists());
    assert!(!data.join("customers").exists(), "nothing else was there");
    assert!(matches!(
        c.dataflow("flow"),
        Err(CatalogError::NotFound { .. })
    ));
    assert!(matches!(c.run(r.id), Err(CatalogError::NotFound { .. })));
    assert!(c.alert_deliveries(r.id).unwrap().is_empty());
    // The dataset stays; a new dataflow of the same name starts fresh.
    assert!(c.dataset("customers").is_ok());
    c.create_dataflow(&flow("flow", Schedule::once(t)), t)
        .unwrap();
    assert_eq!(c.watermark("flow").unwrap(), None);
    assert_eq!(c.mapping_versions("flow").unwrap().len(), 1);
}

#[test]
fn two_connections_interleave_without_losing_updates() {
    let home = tempfile::tempdir().unwrap();
    drop(setup(home.path()).0);
    let per_thread = 25;
    let handles: Vec<_> = (0..2)
        .map(|i| {
            let home = home.path().to_path_buf();
            std::thread::spawn(move || {
                let mut c = Catalog::open(&home).unwrap();
                for n in 0..per_thread {
                    c.add_mapping_version("flow", &format!("SELECT {i} AS t, {n} AS n"))
                        .unwrap();
                    let name = format!("acct{i}_{n}");
                    c.add_account(&name, None, &Secret::new(KEY)).unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let c = Catalog::open(home.path()).unwrap();
    let versions: Vec<u32> = c
        .mapping_versions("flow")
        .unwrap()
        .iter()
        .map(|v| v.version)
        .collect();
    assert_eq!(versions, (1..=1 + 2 * per_thread).collect::<Vec<u32>>());
    let f = c.dataflow("flow").unwrap();
    assert_eq!(f.etag, 1 + 2 * per_thread as i64);
    assert_eq!(
        c.list_accounts().unwrap().len(),
        1 + 2 * per_thread as usize
    );
}

#[cfg(unix)]
#[test]
fn a_new_home_and_its_catalog_are_readable_by_their_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let (c, _) = setup(&home);
    drop(c);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&home), 0o700);
    for entry in std::fs::read_dir(&home).unwrap() {
        let p = entry.unwrap().path();
        if p.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("catalog.sqlite")
        {
            assert_eq!(mode(&p), 0o600, "{}", p.display());
        }
    }
}

#[test]
fn a_catalog_is_empty_until_something_is_added() {
    let home = tempfile::tempdir().unwrap();
    let mut c = Catalog::open(home.path()).unwrap();
    assert!(c.is_empty().unwrap());
    c.add_account("acme", None, &Secret::new(KEY)).unwrap();
    assert!(!c.is_empty().unwrap());
    // A second open of a new home's catalog (another process) finds the same one.
    let other = Catalog::open(home.path()).unwrap();
    assert!(!other.is_empty().unwrap());
}
