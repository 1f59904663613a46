//! A real crash: `stripe-xdm dataflows run` killed with SIGKILL at several points of a
//! backfill, then run again: it resumes from its last checkpoint and the committed batch holds
//! exactly the simulator's objects, once each.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use stripe_xdm::catalog::{Catalog, RunStatus};
use stripe_xdm::sim::{Faults, SimConfig, Simulator, SIM_KEY};
use stripe_xdm::Resource;

const BIN: &str = env!("CARGO_BIN_EXE_stripe-xdm");
const KEY_VAR: &str = "STRIPE_XDM_TEST_CRASH_KEY";
const COUNT: u64 = 30_000;

fn xdm(home: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .arg("--home")
        .arg(home)
        .env(KEY_VAR, SIM_KEY)
        .env_remove("STRIPE_XDM_HOME")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

fn ok(home: &Path, args: &[&str]) -> String {
    let out = xdm(home, args).output().expect("binary runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0), "{args:?}: {text}");
    text
}

fn batch_ids(dir: &Path) -> (BTreeSet<String>, usize) {
    let ids = stripe_xdm::inspect::batch_ids(dir).unwrap();
    (ids.ids(), ids.rows())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_dataflow_run_resumes_to_the_same_batch() {
    let faults = Faults {
        slow_rate: 1.0,
        slow_ms: 20,
        corrupt_rate: 0.01,
        ..Faults::default()
    };
    let sim = Simulator::new(
        SimConfig::default()
            .with_count(Resource::Charges, COUNT)
            .with_faults(faults),
    )
    .start()
    .await
    .unwrap();
    let expected: BTreeSet<String> = sim
        .simulator()
        .ids(Resource::Charges, None, None)
        .into_iter()
        .collect();
    let base = sim.base_url();
    for (trial, kill_at) in [0.2f64, 0.6].into_iter().enumerate() {
        let home = tempfile::tempdir().unwrap();
        let h = home.path();
        let schema = h.join("charges.xdm.json");
        std::fs::write(
            &schema,
            stripe_xdm::defaults::xdm_schema_json(Resource::Charges),
        )
        .unwrap();
        ok(
            h,
            &[
                "accounts",
                "add",
                "main",
                "--api-key-env",
                KEY_VAR,
                "--base-url",
                &base,
            ],
        );
        ok(
            h,
            &[
                "datasets",
                "create",
                "charges",
                "--schema",
                schema.to_str().unwrap(),
                "--partial-ingestion",
                "5",
            ],
        );
        ok(
            h,
            &[
                "dataflows",
                "create",
                "backfill",
                "--account",
                "main",
                "--resource",
                "charges",
                "--dataset",
                "charges",
            ],
        );
        let run_args = [
            "dataflows",
            "run",
            "backfill",
            "--base-url",
            &base,
            "--rate",
            "10000",
            "--endpoint-rate",
            "10000",
            "--checkpoint-secs",
            "0",
            "--concurrency",
            "3",
            "--quiet",
        ];
        let mut child = xdm(h, &run_args).spawn().unwrap();
        // Kill it once the checkpointed share of the backfill passes `kill_at`.
        let started = Instant::now();
        loop {
            std::thread::sleep(Duration::from_millis(25));
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "trial {trial}: no progress"
            );
            if child.try_wait().unwrap().is_some() {
                let out = child.wait_with_output().unwrap();
                panic!(
                    "trial {trial}: the run ended before the kill: {}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            let cat = Catalog::open(h).unwrap();
            let Some(run) = cat.active_run("backfill").unwrap() else {
                continue;
            };
            let Some(cp) = cat.checkpoint(run.id).unwrap() else {
                continue;
            };
            let state: serde_json::Value = serde_json::from_str(&cp.state).unwrap();
            let fetched = state["totals"]["fetched"].as_u64().unwrap_or(0);
            if fetched as f64 >= kill_at * COUNT as f64 {
                break;
            }
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let cat = Catalog::open(h).unwrap();
        let run = cat
            .active_run("backfill")
            .unwrap()
            .expect("the killed run is still running");
        assert_eq!(run.status, RunStatus::Running);
        // Run again: the dead owner's run is adopted and resumed.
        let out = ok(h, &run_args);
        assert!(out.contains("resumed run"), "trial {trial}: {out}");
        let done = Catalog::open(h).unwrap().run(run.id).unwrap();
        assert_eq!(done.status, RunStatus::Success, "{done:?}");
        assert_eq!(done.counts.fetched, COUNT);
        assert_eq!(
            done.counts.fetched,
            done.counts.ingested + done.counts.rejected
        );
        let dir = h
            .join("data/charges/batches")
            .join(done.batch_id.as_deref().unwrap());
        let (ids, rows) = batch_ids(&dir);
        assert_eq!(
            rows as u64, COUNT,
            "trial {trial}: each object once (accepted or rejected)"
        );
        assert_eq!(
            ids, expected,
            "trial {trial}: exactly the simulator's objects"
        );
    }
}

/// SIGKILL while a run hydrates the objects its events name: the run starts its changes over
/// and commits each changed object once, at its latest version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_while_reading_events_commits_each_change_once() {
    const CUSTOMERS: u64 = 2_000;
    const CHANGED: u64 = 500;
    let faults = Faults {
        slow_rate: 1.0,
        slow_ms: 10,
        ..Faults::default()
    };
    let sim = Simulator::new(
        SimConfig::default()
            .with_count(Resource::Customers, CUSTOMERS)
            .with_faults(faults),
    )
    .start()
    .await
    .unwrap();
    let base = sim.base_url();
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let schema = h.join("customers.xdm.json");
    std::fs::write(
        &schema,
        stripe_xdm::defaults::xdm_schema_json(Resource::Customers),
    )
    .unwrap();
    ok(
        h,
        &[
            "accounts",
            "add",
            "main",
            "--api-key-env",
            KEY_VAR,
            "--base-url",
            &base,
        ],
    );
    ok(
        h,
        &[
            "datasets",
            "create",
            "customers",
            "--schema",
            schema.to_str().unwrap(),
        ],
    );
    ok(
        h,
        &[
            "dataflows",
            "create",
            "people",
            "--account",
            "main",
            "--resource",
            "customers",
            "--dataset",
            "customers",
        ],
    );
    let run_args = [
        "dataflows",
        "run",
        "people",
        "--rate",
        "10000",
        "--endpoint-rate",
        "10000",
        "--checkpoint-secs",
        "0",
        "--quiet",
    ];
    ok(h, &run_args);
    let first = Catalog::open(h)
        .unwrap()
        .list_runs(Some("people"), None)
        .unwrap();
    let since = first[0].window.unwrap().lt;
    // Every other customer changes just after the first run's window.
    let s = sim.simulator();
    for i in 0..CHANGED {
        s.update(Resource::Customers, i * 2, since + 1).unwrap();
    }
    std::thread::sleep(Duration::from_millis(2100)); // the next window reaches past `since + 1`
    let before = sim.stats().requests;
    let mut child = xdm(h, &run_args).spawn().unwrap();
    let started = Instant::now();
    while sim.stats().requests < before + CHANGED / 3 {
        std::thread::sleep(Duration::from_millis(5));
        assert!(started.elapsed() < Duration::from_secs(60), "no progress");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before the kill"
        );
    }
    child.kill().unwrap(); // SIGKILL, mid-hydration
    child.wait().unwrap();
    let out = ok(h, &run_args);
    assert!(out.contains("resumed run"), "{out}");
    let runs = Catalog::open(h)
        .unwrap()
        .list_runs(Some("people"), None)
        .unwrap();
    let done = runs.iter().find(|r| r.id != first[0].id).unwrap();
    assert_eq!(done.status, RunStatus::Success, "{done:?}");
    assert_eq!(
        (done.counts.updated, done.counts.fetched),
        (CHANGED, CHANGED),
        "{done:?}"
    );
    assert_eq!(
        done.counts.fetched,
        done.counts.ingested + done.counts.rejected
    );
    let dir = h
        .join("data/customers/batches")
        .join(done.batch_id.as_deref().unwrap());
    let (ids, rows) = batch_ids(&dir);
    assert_eq!(rows as u64, CHANGED, "each changed customer once");
    let expected: BTreeSet<String> = (0..CHANGED)
        .map(|i| s.id(Resource::Customers, i * 2))
        .collect();
    assert_eq!(ids, expected);
}
