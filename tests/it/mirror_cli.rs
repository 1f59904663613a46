//! The mirror from the binary: a dataflow's runs land in `<home>/mirror/<account>/<resource>`,
//! `sql` queries it (and the rejected rows), `dataflows remap` maps it again without Stripe.

use std::path::Path;

use stripe_xdm::catalog::{Alerts, Catalog, NewDataflow, NewDataset};
use stripe_xdm::runner::{run_dataflow, RunnerConfig};
use stripe_xdm::schedule::Schedule;
use stripe_xdm::sim::{Faults, SimConfig, SimHandle, Simulator, SIM_KEY};
use stripe_xdm::{Resource, Secret};

use crate::support::bin::{command, output, text};

fn setup(home: &Path) {
    add_flow(home, "main", "charges", "flow");
}

/// Adds account `account` (the simulator's key), dataset `dataset` (the built-in charges
/// schema) and `flow`, a charges dataflow of them run once.
fn add_flow(home: &Path, account: &str, dataset: &str, flow: &str) {
    Catalog::open(home)
        .unwrap()
        .add_account(account, None, &Secret::new(SIM_KEY))
        .unwrap();
    add_dataflow(home, account, dataset, flow);
}

/// Adds dataset `dataset` (the built-in charges schema) and `flow`, a charges dataflow of
/// account `account` into it, run once.
fn add_dataflow(home: &Path, account: &str, dataset: &str, flow: &str) {
    let mut cat = Catalog::open(home).unwrap();
    cat.create_dataset(&NewDataset {
        name: dataset.into(),
        description: None,
        schema_json: stripe_xdm::map::substitute_tenant(
            stripe_xdm::defaults::xdm_schema_json(Resource::Charges),
            "tenant",
        ),
        profile_enabled: false,
        error_diagnostics: true,
        partial_ingestion_percent: Some(10.0),
    })
    .unwrap();
    let t = stripe_xdm::runner::now();
    cat.create_dataflow(
        &NewDataflow {
            name: flow.into(),
            description: None,
            account: account.into(),
            resource: Resource::Charges,
            dataset: dataset.into(),
            mapping_sql: stripe_xdm::map::Mapping::builtin(Resource::Charges, "tenant").sql,
            alerts: Alerts::default(),
            schedule: Schedule::once(t),
            alert_webhook: None,
            alert_command: None,
            upload: None,
        },
        t,
    )
    .unwrap();
}

/// A simulator of `count` objects per resource (3 % of them corrupt), a home set up as
/// [`setup`] does, and a runner of it against the simulator.
async fn start(count: u64) -> (SimHandle, tempfile::TempDir, RunnerConfig) {
    let faults = Faults {
        corrupt_rate: 0.03,
        ..Faults::default()
    };
    let sim = Simulator::new(SimConfig::default().with_counts(count).with_faults(faults))
        .start()
        .await
        .unwrap();
    let home = tempfile::tempdir().unwrap();
    setup(home.path());
    let mut cfg = RunnerConfig::new(home.path());
    cfg.api_base_url = Some(sim.base_url());
    cfg.requests_per_sec = Some(10_000.0);
    (sim, home, cfg)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_and_remap_work_from_the_binary_on_a_dataflows_mirror() {
    let (sim, home, cfg) = start(700).await;
    let done = run_dataflow(&cfg, "flow", stripe_xdm::runner::now(), None)
        .await
        .unwrap();
    let report = done.report.expect("committed");
    assert!(home.path().join("mirror/main/charges/_delta_log").is_dir());
    assert!(report.counts.rejected > 0);

    // `sql`: the only account's mirror and its batches' rejected rows.
    let o = output(command(
        Some(home.path()),
        &[
            "sql",
            "--json",
            "SELECT (SELECT count(*) FROM charges) AS mirrored, (SELECT count(*) FROM rejected) AS rejected",
        ],
        &[],
    ))
    .await;
    assert!(o.status.success(), "{}", text(&o));
    let rows: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(rows[0]["mirrored"], report.counts.staged, "{rows}");
    assert_eq!(rows[0]["rejected"], report.counts.rejected, "{rows}");
    // --parquet writes the result to a file; a bad query names what is wrong.
    let file = home.path().join("out.parquet");
    let o = output(command(
        Some(home.path()),
        &[
            "sql",
            "--parquet",
            file.to_str().unwrap(),
            "SELECT id, json_as_text(_raw, 'currency') AS c FROM charges",
        ],
        &[],
    ))
    .await;
    assert!(o.status.success(), "{}", text(&o));
    let back: usize = stripe_xdm::sink::read_parquet(&file)
        .unwrap()
        .iter()
        .map(|b| b.num_rows())
        .sum();
    assert_eq!(back as u64, report.counts.staged);
    let o = output(command(
        Some(home.path()),
        &["sql", "--account", "main", "SELECT nope FROM charges"],
        &[],
    ))
    .await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("nope"), "{}", text(&o));

    // `dataflows remap`: Stripe is gone, the mirror is enough.
    sim.shutdown().await;
    let o = output(command(
        Some(home.path()),
        &["dataflows", "remap", "flow", "--json"],
        &[],
    ))
    .await;
    assert!(o.status.success(), "{}", text(&o));
    let remap: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(remap[0]["requests"], 0, "{remap}");
    assert_eq!(remap[0]["fetched"], report.counts.staged, "{remap}");
    assert_eq!(remap[0]["ingested"], report.counts.ingested, "{remap}");
    // Records that did not decode are in the mirror too, and the remap rejects them again.
    assert_eq!(report.counts.staged, report.counts.fetched);
    assert_eq!(remap[0]["rejected"], report.counts.rejected, "{remap}");
    let dir = remap[0]["batch_dir"].as_str().unwrap();
    assert!(Path::new(dir).join("manifest.json").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_reads_the_chosen_accounts_mirror_and_batches_and_names_the_tables_it_has() {
    let (sim, home, cfg) = start(400).await;
    // A second account whose dataflow reads through a connected account into its own dataset.
    add_flow(home.path(), "shop", "shop-charges", "conn");
    Catalog::open(home.path())
        .unwrap()
        .set_dataflow_stripe_account("conn", Some("acct_1Shop"))
        .unwrap();
    let mut counts = Vec::new();
    for flow in ["flow", "conn"] {
        let done = run_dataflow(&cfg, flow, stripe_xdm::runner::now(), None)
            .await
            .unwrap();
        counts.push(done.report.expect("committed").counts);
    }
    assert!(counts.iter().all(|c| c.rejected > 0), "{counts:?}");
    assert!(home
        .path()
        .join("mirror/shop/acct_1Shop/charges/_delta_log")
        .is_dir());
    let sql = |args: &[&str]| {
        let mut all = vec!["sql"];
        all.extend_from_slice(args);
        let all: Vec<String> = all.iter().map(|s| s.to_string()).collect();
        let home = home.path().to_path_buf();
        async move {
            let args: Vec<&str> = all.iter().map(String::as_str).collect();
            output(command(Some(&home), &args, &[])).await
        }
    };
    let counted =
        "SELECT (SELECT count(*) FROM charges) AS m, (SELECT count(*) FROM rejected) AS r, \
         (SELECT count(*) FROM accepted) AS a";

    // Each account's mirror, and the rejected rows of its own dataflows' batches only.
    for (args, c) in [
        (vec!["--account", "main"], &counts[0]),
        (
            vec!["--account", "shop", "--stripe-account", "acct_1Shop"],
            &counts[1],
        ),
    ] {
        let mut args = args.clone();
        args.extend(["--json", counted]);
        let o = sql(&args).await;
        assert!(o.status.success(), "{}", text(&o));
        let rows: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
        assert_eq!(rows[0]["m"], c.staged, "{args:?}: {rows}");
        assert_eq!(rows[0]["r"], c.rejected, "{args:?}: {rows}");
        assert_eq!(rows[0]["a"], c.ingested, "{args:?}: {rows}");
    }
    // shop's own account has no mirror: the error says where it looked.
    let o = sql(&["--account", "shop", counted]).await;
    assert!(!o.status.success());
    assert!(text(&o).contains("mirror/shop"), "{}", text(&o));
    // A connected account shop does not read through: named, with the ones it does.
    let o = sql(&[
        "--account",
        "shop",
        "--stripe-account",
        "acct_Nope",
        counted,
    ])
    .await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("acct_Nope") && text(&o).contains("connected accounts: acct_1Shop"),
        "{}",
        text(&o)
    );

    // A table that is not there: the error lists the ones that are; SHOW TABLES too.
    let o = sql(&["--account", "main", "SELECT * FROM customers"]).await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains(
            "the tables here are: accepted, accepted_charges, charges, charges_all, rejected"
        ),
        "{}",
        text(&o)
    );
    let o = sql(&["--account", "main", "SHOW TABLES"]).await;
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("rejected"), "{}", text(&o));

    // CSV: nested columns as JSON text; an empty result still has its header.
    let o = sql(&[
        "--account",
        "main",
        "--csv",
        "SELECT id, billing_details FROM charges ORDER BY id LIMIT 3",
    ])
    .await;
    assert!(o.status.success(), "{}", text(&o));
    let csv = String::from_utf8(o.stdout.clone()).unwrap();
    assert!(csv.starts_with("id,billing_details\n"), "{csv}");
    assert!(csv.contains("\"{\"\""), "{csv}");
    assert_eq!(csv.lines().count(), 4, "{csv}");
    let o = sql(&[
        "--account",
        "main",
        "--csv",
        "SELECT id FROM charges WHERE false",
    ])
    .await;
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "id\n");
    // A Parquet file that cannot be created: a usage error naming the path.
    let missing = home.path().join("no-such-folder/r.parquet");
    let o = sql(&[
        "--account",
        "main",
        "--parquet",
        missing.to_str().unwrap(),
        "SELECT id FROM charges",
    ])
    .await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("no-such-folder/r.parquet"),
        "{}",
        text(&o)
    );
    // A home with no catalog: said, and none is created by a read-only command.
    let empty = home.path().join("empty-home");
    let o = output(command(Some(&empty), &["sql", "SELECT 1"], &[])).await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("no catalog"), "{}", text(&o));
    assert!(!empty.join("catalog.sqlite").exists());
    // A connected account a dataflow reads through but that has not run yet: said so.
    add_dataflow(home.path(), "shop", "shop-later", "later");
    Catalog::open(home.path())
        .unwrap()
        .set_dataflow_stripe_account("later", Some("acct_2Shop"))
        .unwrap();
    let o = sql(&[
        "--account",
        "shop",
        "--stripe-account",
        "acct_2Shop",
        counted,
    ])
    .await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("acct_2Shop of account \"shop\" has no mirror yet"),
        "{}",
        text(&o)
    );
    sim.shutdown().await;
}

/// The README's first command: every resource through the pipeline, nothing lost (fetched =
/// staged = ingested + rejected), and the closing lines point at the batches and the mirror.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_runs_every_resource_with_nothing_lost_and_points_at_the_mirror() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let args = ["demo", "--count", "400", "--corrupt-rate", "0.03", "--out"];
    let mut json_args = args.to_vec();
    let json_out = dir.path().join("json");
    json_args.extend([json_out.to_str().unwrap(), "--json"]);
    let o = output(command(None, &json_args, &[])).await;
    assert!(o.status.success(), "{}", text(&o));
    let reports: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    let reports = reports.as_array().unwrap();
    assert_eq!(reports.len(), Resource::ALL.len());
    for r in reports {
        let n = |k: &str| r[k].as_u64().unwrap();
        assert_eq!(n("fetched"), 400, "{r}");
        assert_eq!(n("staged"), n("fetched"), "{r}");
        assert_eq!(n("ingested") + n("rejected"), n("fetched"), "{r}");
    }
    assert!(reports.iter().any(|r| r["rejected"].as_u64() > Some(0)));
    let mut text_args = args.to_vec();
    text_args.push(out.to_str().unwrap());
    let o = output(command(None, &text_args, &[])).await;
    assert!(o.status.success(), "{}", text(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    for r in Resource::ALL {
        assert!(stdout.contains(r.path()), "{stdout}");
    }
    assert!(stdout.contains("rejected.parquet"), "{stdout}");
    assert!(
        stdout.contains(&format!("{}/mirror/<resource>/", out.display())),
        "{stdout}"
    );
    assert!(out.join("mirror/charges/_delta_log").is_dir());
}
