//! Crash-safe resume under fire: `stripe-xdm dataflows run` of a backfill is killed with SIGKILL
//! at a random moment, run again until it completes, and its committed batch compared with an
//! uninterrupted run's: the same object ids (accepted + rejected), each exactly once, every time.
//!
//! Run: `cargo bench --bench resume` (defaults: 1,000,000 charges, 10 trials), or
//! `RESUME_RECORDS=200000 RESUME_TRIALS=3 cargo bench --bench resume`.

#[path = "support/mod.rs"]
mod support;
use support::env;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use stripe_xdm::sim::{Faults, SimConfig, Simulator, SIM_KEY};
use stripe_xdm::Resource;

const BIN: &str = env!("CARGO_BIN_EXE_stripe-xdm");
const KEY_VAR: &str = "STRIPE_XDM_BENCH_KEY";

fn xdm(home: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .arg("--home")
        .arg(home)
        .env(KEY_VAR, SIM_KEY)
        .env_remove("STRIPE_XDM_HOME")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

fn ok(home: &Path, args: &[&str]) {
    let status = xdm(home, args).status().expect("binary runs");
    assert!(status.success(), "{args:?} failed: {status}");
}

/// Every object id of a committed batch (accepted rows and rejected rows), and the row count.
fn batch_ids(dir: &Path) -> (BTreeSet<String>, u64) {
    let ids = stripe_xdm::inspect::batch_ids(dir).unwrap();
    (ids.ids(), ids.rows() as u64)
}

fn committed_dir(home: &Path) -> std::path::PathBuf {
    let batches = home.join("data/charges/batches");
    let mut dirs: Vec<_> = std::fs::read_dir(&batches)
        .expect("a committed batch")
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(dirs.len(), 1, "exactly one committed batch: {dirs:?}");
    dirs.pop().unwrap()
}

fn setup(home: &Path, base: &str) {
    let schema = home.join("charges.xdm.json");
    std::fs::create_dir_all(home).unwrap();
    std::fs::write(
        &schema,
        stripe_xdm::defaults::xdm_schema_json(Resource::Charges),
    )
    .unwrap();
    ok(
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
    );
    ok(
        home,
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
        home,
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
}

fn main() {
    let records: u64 = env("RESUME_RECORDS", 1_000_000);
    let trials: u32 = env("RESUME_TRIALS", 10);
    let seed: u64 = env("RESUME_SEED", 7);
    let rt = support::runtime();
    let sim = rt.block_on(async {
        let config = SimConfig::default()
            .with_count(Resource::Charges, records)
            .with_window(1_600_000_000, 1_760_000_000)
            .with_faults(Faults {
                corrupt_rate: 0.001,
                ..Faults::default()
            });
        Simulator::new(config).start().await.expect("simulator")
    });
    let base = sim.base_url();
    let run_args = [
        "dataflows",
        "run",
        "backfill",
        "--base-url",
        &base,
        "--rate",
        "1000000000",
        "--endpoint-rate",
        "1000000000",
        "--checkpoint-secs",
        "2",
        "--concurrency",
        "4",
        "--quiet",
    ];
    let root = tempfile::tempdir().unwrap();

    // The uninterrupted reference.
    let reference_home = root.path().join("reference");
    setup(&reference_home, &base);
    let started = Instant::now();
    ok(&reference_home, &run_args);
    let full_secs = started.elapsed().as_secs_f64();
    let (reference, ref_rows) = batch_ids(&committed_dir(&reference_home));
    assert_eq!(ref_rows, records, "the reference holds every object once");
    assert_eq!(reference.len() as u64, records);
    println!("reference: {records} objects in {full_secs:.1} s");

    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut identical = 0;
    for trial in 1..=trials {
        let home = root.path().join(format!("trial-{trial}"));
        setup(&home, &base);
        let kill_after = rng.random_range(0.05..0.95) * full_secs;
        let mut child = xdm(&home, &run_args).spawn().unwrap();
        std::thread::sleep(Duration::from_secs_f64(kill_after));
        let killed = child.try_wait().unwrap().is_none();
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        let resumed_at = Instant::now();
        ok(&home, &run_args);
        let (ids, rows) = batch_ids(&committed_dir(&home));
        let same = ids == reference && rows == records;
        identical += u32::from(same);
        println!(
            "trial {trial}: killed after {kill_after:.1} s{}; resumed to completion in {:.1} s; {} ids, {} rows: {}",
            if killed { "" } else { " (it had already finished)" },
            resumed_at.elapsed().as_secs_f64(),
            ids.len(),
            rows,
            if same { "identical" } else { "DIFFERENT" }
        );
        std::fs::remove_dir_all(&home).ok();
    }
    println!("{identical}/{trials} resumed batches identical to the uninterrupted run");
    println!("reproduce: RESUME_RECORDS={records} RESUME_TRIALS={trials} RESUME_SEED={seed} cargo bench --bench resume");
    assert_eq!(
        identical, trials,
        "every resumed batch must equal the reference"
    );
}
