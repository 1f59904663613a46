//! The Platform tutorial's steps one by one with `stripe-xdm` commands, against the simulator,
//! a loopback webhook and a loopback Platform: account, preview, dataset, dataflow with alerts
//! and upload, review, run, runs and monitor, update (with an etag conflict), a second run on
//! the new mapping version, `serve`, `upload --all`, and delete. Secrets never show.

use std::path::Path;
use std::process::Output;

use stripe_xdm::alert::loopback::WebhookReceiver;
use stripe_xdm::sim::{Faults, SimConfig, Simulator, SIM_KEY};
use stripe_xdm::upload::loopback::{LoopbackConfig, LoopbackPlatform};
use stripe_xdm::Resource;

const KEY_VAR: &str = "STRIPE_XDM_TEST_WORKFLOW_KEY";

async fn xdm(home: &Path, args: &[&str]) -> Output {
    bin::output(bin::command(Some(home), args, &[(KEY_VAR, SIM_KEY)])).await
}

use crate::support::bin::{self, text};

async fn ok(home: &Path, args: &[&str]) -> String {
    let o = xdm(home, args).await;
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{args:?}: {t}");
    assert!(!t.contains(SIM_KEY), "the key is never printed: {args:?}");
    t
}

async fn json(home: &Path, args: &[&str]) -> serde_json::Value {
    let o = xdm(home, args).await;
    assert_eq!(o.status.code(), Some(0), "{args:?}: {}", text(&o));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}: {}", text(&o)))
}

/// Every file under `dir` except the private key folder, as lossy text.
fn files_text(dir: &Path) -> String {
    let mut s = String::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.file_name().is_some_and(|n| n == "secrets") {
            continue;
        }
        if p.is_dir() {
            s += &files_text(&p);
        } else {
            s += &String::from_utf8_lossy(&std::fs::read(&p).unwrap());
        }
    }
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tutorial_end_to_end() {
    let sim = Simulator::new(
        SimConfig::default()
            .with_count(Resource::Charges, 400)
            .with_faults(Faults {
                corrupt_rate: 0.03,
                ..Faults::default()
            }),
    )
    .start()
    .await
    .unwrap();
    let base = sim.base_url();
    let hook = WebhookReceiver::start(vec![]).await.unwrap();
    let pcfg = LoopbackConfig::default();
    let secret = pcfg.client_secret.clone();
    let work = tempfile::tempdir().unwrap();
    let platform = LoopbackPlatform::start(pcfg.clone()).await.unwrap();
    // OAuth Server-to-Server credentials: tokens are exchanged at IMS (the loopback's).
    let creds = work.path().join("aep.env");
    std::fs::write(
        &creds,
        format!(
            "AEP_CLIENT_SECRET={}\nAEP_IMS_URL={}\nAEP_API_KEY={}\nAEP_ORG_ID={}\nAEP_SANDBOX={}\n",
            pcfg.client_secret,
            platform.base_url(),
            pcfg.api_key,
            pcfg.org_id,
            pcfg.sandbox
        ),
    )
    .unwrap();
    let home = work.path().join("home");
    let h = home.as_path();

    // 1. Connect the account (tested with a real request).
    let t = ok(
        h,
        &[
            "accounts",
            "add",
            "stripe-main",
            "--api-key-env",
            KEY_VAR,
            "--base-url",
            &base,
        ],
    )
    .await;
    assert!(t.contains("sk_test_…4242"), "{t}");
    // 2. Select data: preview the resource through the account (which remembers its API).
    let t = ok(
        h,
        &[
            "preview",
            "--account",
            "stripe-main",
            "--resource",
            "charges",
            "--rows",
            "5",
        ],
    )
    .await;
    assert!(t.contains("ch_"), "{t}");
    // 3. Dataset with error diagnostics and partial ingestion.
    let schema = work.path().join("charges.xdm.json");
    std::fs::write(
        &schema,
        stripe_xdm::defaults::xdm_schema_json(Resource::Charges),
    )
    .unwrap();
    ok(
        h,
        &[
            "datasets",
            "create",
            "Stripe charges",
            "--schema",
            schema.to_str().unwrap(),
            "--partial-ingestion",
            "5",
        ],
    )
    .await;
    // …and made in Platform: schema, field group, descriptors, dataset (once).
    let push = [
        "datasets",
        "push",
        "Stripe charges",
        "--credentials-file",
        creds.to_str().unwrap(),
        "--base-url",
        &platform.base_url(),
        "--json",
    ];
    let pushed = json(h, &push).await;
    let dataset_id = pushed["dataset_id"].as_str().unwrap().to_string();
    assert_eq!(
        pushed["created"],
        serde_json::json!([
            "field group",
            "schema",
            "descriptor",
            "descriptor",
            "dataset"
        ]),
        "{pushed}"
    );
    let again = json(h, &push).await;
    assert_eq!(again["dataset_id"], dataset_id.as_str(), "{again}");
    assert_eq!(
        again["created"],
        serde_json::json!([]),
        "a second push makes nothing"
    );
    assert_eq!(platform.datasets().len(), 1);
    let shown = json(h, &["datasets", "show", "Stripe charges", "--json"]).await;
    assert_eq!(shown["platform_dataset_id"], dataset_id.as_str(), "{shown}");
    // 4.–6. Dataflow: alerts to a webhook, hourly, uploads to Platform.
    ok(
        h,
        &[
            "dataflows",
            "create",
            "charges-hourly",
            "--account",
            "stripe-main",
            "--resource",
            "charges",
            "--dataset",
            "Stripe charges",
            "--alert",
            "run-start",
            "--alert",
            "run-success",
            "--alert",
            "run-failure",
            "--alert-webhook",
            &hook.url(),
            "--frequency",
            "hour",
            "--interval",
            "1",
            "--upload-dataset-id",
            &dataset_id,
            "--platform-url",
            &platform.base_url(),
            "--platform-credentials-file",
            creds.to_str().unwrap(),
        ],
    )
    .await;
    // 7. Review.
    let t = ok(h, &["dataflows", "review", "charges-hourly"]).await;
    for part in ["Connection", "charges", "Stripe charges", "hour"] {
        assert!(t.contains(part), "review lacks {part}: {t}");
    }
    // Run now: the batch is committed, uploaded and recorded; alerts went out.
    let run_args = [
        "dataflows",
        "run",
        "charges-hourly",
        "--rate",
        "1000",
        "--poll-interval",
        "1",
        "--json",
    ];
    let run = json(h, &run_args).await;
    assert_eq!(run["status"], "success", "{run}");
    assert_eq!(run["fetched"], 400);
    assert_eq!(
        run["fetched"].as_u64().unwrap(),
        run["ingested"].as_u64().unwrap() + run["rejected"].as_u64().unwrap()
    );
    assert_eq!(run["mapping_version"], 1);
    assert_eq!(run["upload"]["status"], "success", "{run}");
    let pid = run["upload"]["platform_batch_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(platform.batch(&pid).unwrap().dataset_id, dataset_id);
    // One token exchange per process that talked to Platform: two pushes and this run.
    assert_eq!(platform.tokens_issued(), 3);
    let kinds: Vec<String> = hook
        .received()
        .iter()
        .map(|b| b["kind"].as_str().unwrap_or("").to_string())
        .collect();
    // Rejected rows under partial ingestion: the run ended with errors.
    assert!(run["rejected"].as_u64().unwrap() > 0, "{run}");
    assert_eq!(kinds, ["run_start", "run_failure"], "{kinds:?}");

    // Monitoring.
    let runs = json(
        h,
        &["runs", "list", "--dataflow", "charges-hourly", "--json"],
    )
    .await;
    assert_eq!(runs.as_array().unwrap().len(), 1);
    let m = json(h, &["monitor", "--json"]).await;
    assert_eq!(m[0]["dataflow"], "charges-hourly");
    assert_eq!(m[0]["runs"], 1);

    // Update: a stale etag is refused, a current one adds mapping v2.
    let flow = json(h, &["dataflows", "show", "charges-hourly", "--json"]).await;
    let etag = flow["etag"].as_i64().unwrap();
    assert!(
        flow["alert_webhook"].as_str().unwrap().ends_with("/…"),
        "{flow}"
    );
    let mapping = work.path().join("v2.sql");
    std::fs::write(
        &mapping,
        stripe_xdm::defaults::mapping_sql(Resource::Charges),
    )
    .unwrap();
    let stale = (etag - 1).to_string();
    let o = xdm(
        h,
        &[
            "dataflows",
            "update",
            "charges-hourly",
            "--if-match",
            &stale,
            "--description",
            "x",
        ],
    )
    .await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("changed by someone else"), "{}", text(&o));
    let t = ok(
        h,
        &[
            "dataflows",
            "update",
            "charges-hourly",
            "--if-match",
            &etag.to_string(),
            "--mapping",
            mapping.to_str().unwrap(),
            "--partial-ingestion",
            "10",
        ],
    )
    .await;
    assert!(t.contains("mapping v2"), "{t}");
    // Error diagnostics cannot go off while partial ingestion keeps them on: refused, unchanged.
    let before = json(h, &["dataflows", "show", "charges-hourly", "--json"]).await;
    let o = xdm(
        h,
        &[
            "dataflows",
            "update",
            "charges-hourly",
            "--description",
            "y",
            "--error-diagnostics",
            "false",
        ],
    )
    .await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("partial ingestion on (10%)")
            && text(&o).contains("--no-partial-ingestion"),
        "{}",
        text(&o)
    );
    let after = json(h, &["dataflows", "show", "charges-hourly", "--json"]).await;
    assert_eq!(after["etag"], before["etag"]);
    // The credentials file alone can be swapped; the upload keeps its dataset and gateway.
    let creds2 = work.path().join("aep-rotated.env");
    std::fs::copy(&creds, &creds2).unwrap();
    ok(
        h,
        &[
            "dataflows",
            "update",
            "charges-hourly",
            "--platform-credentials-file",
            creds2.to_str().unwrap(),
        ],
    )
    .await;
    let after = json(h, &["dataflows", "show", "charges-hourly", "--json"]).await;
    let upload = &after["upload"];
    assert_eq!(upload["dataset_id"], dataset_id.as_str(), "{after}");
    assert_eq!(upload["base_url"], before["upload"]["base_url"], "{after}");
    assert!(
        upload["credentials_file"]
            .as_str()
            .unwrap()
            .ends_with("aep-rotated.env"),
        "{after}"
    );
    let run2 = json(h, &run_args).await;
    assert_eq!(run2["mapping_version"], 2, "{run2}");
    assert_eq!(
        run2["window"]["gte"], run["window"]["lt"],
        "the next window"
    );

    // serve: nothing is due within the hour; it stops after its ticks.
    let t = ok(h, &["serve", "--tick-secs", "0.1", "--max-ticks", "2"]).await;
    assert!(t.contains("0 run(s)"), "{t}");

    // upload --all: every batch of the dataset is already ingested.
    let dataset_dir = home.join("data").join("Stripe charges");
    let (creds_path, platform_url) = (creds.to_str().unwrap(), platform.base_url());
    let upload = |target: &Path, all: bool| {
        let mut args = vec!["upload", target.to_str().unwrap()];
        if all {
            args.push("--all");
        }
        args.extend([
            "--dataset-id",
            &dataset_id,
            "--credentials-file",
            creds_path,
            "--base-url",
            &platform_url,
        ]);
        args.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let args = upload(&dataset_dir, true);
    let t = ok(h, &args.iter().map(String::as_str).collect::<Vec<_>>()).await;
    assert!(t.contains("already ingested"), "{t}");
    // The next window held nothing: its batch is not sent, and that is not a failure.
    assert_eq!(run2["fetched"], 0, "{run2}");
    let empty = dataset_dir
        .join("batches")
        .join(run2["batch_id"].as_str().unwrap());
    let args = upload(&empty, false);
    let t = ok(h, &args.iter().map(String::as_str).collect::<Vec<_>>()).await;
    assert!(t.contains("no records, nothing to send"), "{t}");

    // Delete: the dataflow goes, its batches stay.
    ok(h, &["dataflows", "delete", "charges-hourly"]).await;
    let o = xdm(h, &["dataflows", "show", "charges-hourly"]).await;
    assert_eq!(o.status.code(), Some(2));
    assert!(
        std::fs::read_dir(dataset_dir.join("batches"))
            .unwrap()
            .count()
            >= 2
    );

    // No secret anywhere in the home folder but its private key file.
    let all = files_text(h);
    assert!(!all.contains(SIM_KEY), "the Stripe key leaked into a file");
    assert!(
        !all.contains(&secret),
        "the Platform client secret leaked into a file"
    );
    hook.shutdown().await;
    platform.shutdown().await;
    sim.shutdown().await;
}
