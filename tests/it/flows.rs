//! The catalog commands through the binary: accounts, datasets, dataflows, runs and monitor,
//! against the simulator, with a temporary `--home`.

use std::path::Path;
use std::process::Output;

use stripe_xdm::sim::{Faults, SimConfig, SimHandle, Simulator, SIM_KEY};
use stripe_xdm::Resource;

const KEY_VAR: &str = "STRIPE_XDM_TEST_FLOW_KEY";

async fn start(config: SimConfig) -> SimHandle {
    Simulator::new(config).start().await.expect("simulator")
}

/// Runs the binary with `--home` and the key (if any) in `KEY_VAR`.
async fn xdm(home: &Path, args: &[&str], key: Option<&str>) -> Output {
    let env: Vec<(&str, &str)> = key.map(|k| (KEY_VAR, k)).into_iter().collect();
    bin::output(bin::command(Some(home), args, &env)).await
}

use crate::support::bin::{self, text};

fn ok(o: &Output) -> String {
    assert_eq!(o.status.code(), Some(0), "{}", text(o));
    text(o)
}

/// Every file under `dir`, as lossy text, concatenated.
fn all_files_text(dir: &Path) -> String {
    let mut s = String::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            s += &all_files_text(&p);
        } else {
            s += &String::from_utf8_lossy(&std::fs::read(&p).unwrap());
        }
    }
    s
}

fn customers_schema(dir: &Path, primary: bool) -> String {
    let mut text = stripe_xdm::defaults::xdm_schema_json(Resource::Customers).to_string();
    if !primary {
        text = text.replace("\"xdm:isPrimary\": true", "\"xdm:isPrimary\": false");
    }
    let path = dir.join(if primary { "with.json" } else { "without.json" });
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

async fn add_account(home: &Path, base: &str) {
    ok(&xdm(
        home,
        &[
            "accounts",
            "add",
            "main",
            "--api-key-env",
            KEY_VAR,
            "--base-url",
            base,
        ],
        Some(SIM_KEY),
    )
    .await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_are_tested_stored_masked_and_bad_keys_refused() {
    let sim = start(SimConfig::default().with_count(Resource::Customers, 10)).await;
    let home = tempfile::tempdir().unwrap();
    let base = sim.base_url();
    let o = xdm(
        home.path(),
        &[
            "accounts",
            "add",
            "main",
            "--description",
            "test account",
            "--api-key-env",
            KEY_VAR,
            "--base-url",
            &base,
        ],
        Some(SIM_KEY),
    )
    .await;
    assert!(!ok(&o).contains(SIM_KEY), "the key is never printed");

    let o = xdm(home.path(), &["accounts", "list", "--json"], None).await;
    let t = ok(&o);
    assert!(!t.contains(SIM_KEY), "{t}");
    let list: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(list[0]["name"], "main");
    let masked = list[0]["key_masked"].as_str().unwrap();
    assert!(masked.contains('…'), "masked: {masked}");
    for args in [
        &["accounts", "list"][..],
        &["accounts", "show", "main"][..],
        &["accounts", "show", "main", "--json"][..],
    ] {
        let t = ok(&xdm(home.path(), args, None).await);
        assert!(t.contains(masked) && !t.contains(SIM_KEY), "{t}");
    }
    let t = ok(&xdm(
        home.path(),
        &["accounts", "test", "main", "--base-url", &base],
        None,
    )
    .await);
    assert!(t.contains("OK"), "{t}");
    assert!(
        !std::fs::read(home.path().join("catalog.sqlite"))
            .map(|b| String::from_utf8_lossy(&b).contains(SIM_KEY))
            .unwrap(),
        "the key is not in the catalog file"
    );

    let wrong = "sk_test_wrongwrongwrong9999";
    let o = xdm(
        home.path(),
        &[
            "accounts",
            "add",
            "other",
            "--api-key-env",
            KEY_VAR,
            "--base-url",
            &base,
        ],
        Some(wrong),
    )
    .await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("connection test") && t.contains("401"), "{t}");
    assert!(!t.contains(wrong), "{t}");
    let t = ok(&xdm(home.path(), &["accounts", "list"], None).await);
    assert!(!t.contains("other"), "a refused account is not stored: {t}");
    assert!(!all_files_text(home.path()).contains(wrong));
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datasets_and_schedules_are_checked_and_used_accounts_kept() {
    let sim = start(SimConfig::default().with_count(Resource::Customers, 10)).await;
    let home = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    add_account(home.path(), &sim.base_url()).await;

    let without = customers_schema(files.path(), false);
    let o = xdm(
        home.path(),
        &[
            "datasets",
            "create",
            "np",
            "--schema",
            &without,
            "--profile",
        ],
        None,
    )
    .await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("exactly one primary identity"),
        "{}",
        text(&o)
    );

    let with = customers_schema(files.path(), true);
    ok(&xdm(
        home.path(),
        &[
            "datasets",
            "create",
            "cust",
            "--schema",
            &with,
            "--profile",
            "--partial-ingestion",
        ],
        None,
    )
    .await);
    let o = xdm(home.path(), &["datasets", "show", "cust", "--json"], None).await;
    ok(&o);
    let ds: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(ds["partial_ingestion_percent"], 5.0);
    assert_eq!(
        ds["error_diagnostics"], true,
        "forced on by partial ingestion"
    );

    let flow = |name: &'static str, extra: &'static [&'static str]| {
        let mut v = vec![
            "dataflows",
            "create",
            name,
            "--account",
            "main",
            "--resource",
            "customers",
            "--dataset",
            "cust",
        ];
        v.extend_from_slice(extra);
        v
    };
    let o = xdm(
        home.path(),
        &flow("bad", &["--frequency", "minute", "--interval", "5"]),
        None,
    )
    .await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("minute interval ≥ 15"), "{}", text(&o));

    let o = xdm(
        home.path(),
        &[
            "dataflows",
            "create",
            "mismatch",
            "--account",
            "main",
            "--resource",
            "charges",
            "--dataset",
            "cust",
        ],
        None,
    )
    .await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("does not fit"), "{}", text(&o));

    ok(&xdm(
        home.path(),
        &flow(
            "good",
            &[
                "--frequency",
                "hour",
                "--interval",
                "1",
                "--alert",
                "run-failure",
            ],
        ),
        None,
    )
    .await);
    let t = ok(&xdm(home.path(), &["dataflows", "review", "good"], None).await);
    assert!(t.contains("Stripe") && t.contains("customers"), "{t}");
    assert!(t.contains("Stripe Customers"), "schema title: {t}");
    assert!(t.contains("hour"), "{t}");

    let o = xdm(home.path(), &["accounts", "remove", "main"], None).await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("good"),
        "names the dataflow: {}",
        text(&o)
    );
    ok(&xdm(home.path(), &["dataflows", "delete", "good"], None).await);
    ok(&xdm(home.path(), &["accounts", "remove", "main"], None).await);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_starts_where_the_first_ended() {
    let faults = Faults {
        corrupt_rate: 0.05,
        ..Faults::default()
    };
    let sim = start(
        SimConfig::default()
            .with_count(Resource::Customers, 150)
            .with_faults(faults),
    )
    .await;
    let base = sim.base_url();
    let home = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let out = files.path().join("out");
    add_account(home.path(), &base).await;
    let schema = customers_schema(files.path(), true);
    ok(&xdm(
        home.path(),
        &[
            "datasets",
            "create",
            "cust",
            "--schema",
            &schema,
            "--partial-ingestion",
            "50",
        ],
        None,
    )
    .await);
    ok(&xdm(
        home.path(),
        &[
            "dataflows",
            "create",
            "flow",
            "--account",
            "main",
            "--resource",
            "customers",
            "--dataset",
            "cust",
        ],
        None,
    )
    .await);
    let run = [
        "dataflows",
        "run",
        "flow",
        "--base-url",
        &base,
        "--rate",
        "1000",
        "--out",
        out.to_str().unwrap(),
    ];
    for _ in 0..2 {
        let t = ok(&xdm(home.path(), &run, None).await);
        assert!(!t.contains(SIM_KEY), "{t}");
    }
    let o = xdm(
        home.path(),
        &["runs", "list", "--dataflow", "flow", "--json"],
        None,
    )
    .await;
    ok(&o);
    let runs: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let runs = runs.as_array().unwrap();
    assert_eq!(runs.len(), 2);
    let (second, first) = (&runs[0], &runs[1]);
    for r in runs {
        assert_eq!(r["status"], "success", "{r}");
        assert_eq!(
            r["fetched"].as_u64().unwrap(),
            r["ingested"].as_u64().unwrap() + r["rejected"].as_u64().unwrap(),
            "{r}"
        );
    }
    assert!(
        first["window"]["gte"].is_null(),
        "the first run backfills: {first}"
    );
    assert_eq!(
        second["window"]["gte"], first["window"]["lt"],
        "the second window starts at the first one's end"
    );
    assert!(first["fetched"].as_u64().unwrap() > 0, "{first}");

    let o = xdm(home.path(), &["monitor", "--json"], None).await;
    ok(&o);
    let m: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(m[0]["dataflow"], "flow");
    assert_eq!(m[0]["runs"], 2);
    assert_eq!(m[0]["failed_runs"], 0);
    let id = first["id"].to_string();
    let t = ok(&xdm(home.path(), &["runs", "show", &id], None).await);
    assert!(t.contains("success"), "{t}");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_into_a_profile_dataset_still_requires_the_primary_identity() {
    let sim = start(SimConfig::default().with_count(Resource::Customers, 200)).await;
    let home = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let h = home.path();
    add_account(h, &sim.base_url()).await;
    let schema = customers_schema(files.path(), true);
    ok(&xdm(
        h,
        &[
            "datasets",
            "create",
            "cust",
            "--schema",
            &schema,
            "--profile",
            "--partial-ingestion",
            "100",
            "--tenant",
            "acme",
        ],
        None,
    )
    .await);
    // No --tenant: the built-in mapping takes the dataset's (`_acme`); with `_tenant` it would
    // not fit the dataset's schema and the create would be refused.
    ok(&xdm(
        h,
        &[
            "dataflows",
            "create",
            "c",
            "--account",
            "main",
            "--resource",
            "customers",
            "--dataset",
            "cust",
            "--frequency",
            "hour",
            "--interval",
            "1",
        ],
        None,
    )
    .await);
    let o = xdm(
        h,
        &["dataflows", "run", "c", "--rate", "1000", "--json"],
        None,
    )
    .await;
    ok(&o);
    let run: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    // Customers without an email lack the primary identity: rejected by the run.
    let missing = run["rejected_by_code"]["INGEST-1555-400"]
        .as_u64()
        .unwrap_or(0);
    assert!(missing > 0, "{run}");

    // The same mapping replayed over the batch's rejected rows lets none of them in. No
    // --tenant: the replay takes the dataset's, as the dataflow did.
    let mapping = files.path().join("same.sql");
    std::fs::write(
        &mapping,
        stripe_xdm::defaults::mapping_sql(Resource::Customers),
    )
    .unwrap();
    let batch = h
        .join("data")
        .join("cust")
        .join("batches")
        .join(run["batch_id"].as_str().unwrap());
    let o = xdm(
        h,
        &[
            "errors",
            "replay",
            batch.to_str().unwrap(),
            "--mapping",
            mapping.to_str().unwrap(),
            "--json",
        ],
        None,
    )
    .await;
    ok(&o);
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["ingested"], 0, "{report}");
    assert_eq!(
        report["still_rejected"]["INGEST-1555-400"].as_u64(),
        Some(missing),
        "{report}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn a_schema_file_that_is_not_json_is_named_with_where_it_breaks() {
    let home = tempfile::tempdir().unwrap();
    let bad = home.path().join("bad.xdm.json");
    std::fs::write(&bad, "{\n  \"title\": \"x\",\n  \"type\": \n}\n").unwrap();
    let o = xdm(
        home.path(),
        &["datasets", "create", "d", "--schema", bad.to_str().unwrap()],
        None,
    )
    .await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains("bad.xdm.json") && t.contains("not valid JSON") && t.contains("line 4"),
        "{t}"
    );
    assert!(!t.contains("<string>"), "{t}");
}
