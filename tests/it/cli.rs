//! The `stripe-xdm` binary: exit codes, key handling, and a killed run leaving no visible batch.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use stripe_xdm::sim::{Faults, SimConfig, SimHandle, Simulator, SIM_KEY};
use stripe_xdm::Resource;

const BIN: &str = env!("CARGO_BIN_EXE_stripe-xdm");

async fn start(config: SimConfig) -> SimHandle {
    Simulator::new(config).start().await.expect("simulator")
}

fn stripe_xdm(args: &[&str], key: Option<&str>) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args).env_remove("STRIPE_API_KEY");
    if let Some(k) = key {
        cmd.env("STRIPE_API_KEY", k);
    }
    cmd
}

/// `stripe-xdm run --resource R --base-url <sim> [--rate 1000] --out OUT EXTRA…` with `key` in
/// `STRIPE_API_KEY`.
fn run_cmd(
    sim: &SimHandle,
    resource: &str,
    out: &Path,
    extra: &[&str],
    key: &str,
    unlimited: bool,
) -> Command {
    let base = sim.base_url();
    let out = out.to_str().expect("utf-8 temp path");
    let mut args = vec!["run", "--resource", resource, "--base-url", &base];
    if unlimited {
        args.extend(["--rate", "1000", "--endpoint-rate", "1000"]);
    }
    args.extend(["--out", out]);
    args.extend_from_slice(extra);
    stripe_xdm(&args, Some(key))
}

async fn output(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().expect("binary runs"))
        .await
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_succeeds_and_reports_json_with_consistent_counts() {
    let sim = start(SimConfig::default().with_count(Resource::Customers, 300)).await;
    let out = tempfile::tempdir().unwrap();
    // The first run creates the mirror, the second upserts into it (MERGE); neither logs an
    // error, nor Delta's own warnings about its table loads and metrics.
    for run in ["first", "second"] {
        let o = output(run_cmd(
            &sim,
            "customers",
            out.path(),
            &["--json"],
            SIM_KEY,
            true,
        ))
        .await;
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        let reports: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let r = &reports[0];
        assert_eq!(r["fetched"], 300);
        assert_eq!(
            r["fetched"].as_u64().unwrap(),
            r["ingested"].as_u64().unwrap() + r["rejected"].as_u64().unwrap()
        );
        assert!(!text(&o).contains(SIM_KEY), "the key is never printed");
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(
            !stderr.contains("ERROR") && !stderr.contains("WARN"),
            "the {run} run logs nothing: {stderr}"
        );
    }
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_exits_2_with_stripes_message_and_no_key() {
    let sim = start(SimConfig::default().with_count(Resource::Charges, 10)).await;
    let out = tempfile::tempdir().unwrap();
    let wrong = "sk_test_wrongwrongwrong9999";
    let o = output(run_cmd(&sim, "charges", out.path(), &[], wrong, false)).await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("401"), "{t}");
    assert!(t.contains("/v1/charges"), "{t}");
    assert!(t.contains("req_"), "names the Request-Id: {t}");
    assert!(!t.contains(wrong), "the key is never printed: {t}");
    // No batch, and no empty folder where one would have been.
    assert!(!out.path().join("charges").exists(), "{t}");
    sim.shutdown().await;
}

#[tokio::test]
async fn a_missing_key_exits_2_naming_the_variable() {
    let o = output(stripe_xdm(
        &[
            "run",
            "--resource",
            "charges",
            "--api-key-env",
            "NO_SUCH_STRIPE_KEY_VAR",
        ],
        None,
    ))
    .await;
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("NO_SUCH_STRIPE_KEY_VAR"), "{}", text(&o));
}

#[tokio::test]
async fn an_unknown_resource_exits_2_listing_the_valid_ones() {
    let o = output(stripe_xdm(&["run", "--resource", "invoices"], None)).await;
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("balance_transactions"), "{}", text(&o));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_threshold_exceeded_exits_1() {
    let faults = Faults {
        corrupt_rate: 0.2,
        ..Faults::default()
    };
    let sim = start(
        SimConfig::default()
            .with_count(Resource::Charges, 200)
            .with_faults(faults),
    )
    .await;
    let out = tempfile::tempdir().unwrap();
    let o = output(run_cmd(
        &sim,
        "charges",
        out.path(),
        &["--partial-ingestion"],
        SIM_KEY,
        true,
    ))
    .await;
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("threshold"), "{}", text(&o));
    assert!(!out.path().join("charges/batches").exists());
    // In JSON too, the failed batch ingested nothing; what had passed validation is beside it.
    let o = output(run_cmd(
        &sim,
        "charges",
        out.path(),
        &["--partial-ingestion", "--json"],
        SIM_KEY,
        true,
    ))
    .await;
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let r = &report[0];
    assert_eq!(r["status"], "failed", "{r}");
    assert_eq!(r["ingested"], 0, "{r}");
    let passed = r["passed_validation"].as_u64().unwrap();
    assert_eq!(
        r["fetched"].as_u64().unwrap(),
        passed + r["rejected"].as_u64().unwrap(),
        "{r}"
    );
    sim.shutdown().await;
}

fn dir_has_entries(p: &Path) -> bool {
    std::fs::read_dir(p)
        .map(|mut d| d.next().is_some())
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_run_leaves_no_visible_batch() {
    // Every response is slow, so the run is mid-way when it is killed.
    let faults = Faults {
        slow_rate: 1.0,
        slow_ms: 150,
        ..Faults::default()
    };
    let sim = start(
        SimConfig::default()
            .with_count(Resource::Charges, 5000)
            .with_faults(faults),
    )
    .await;
    let out = tempfile::tempdir().unwrap();
    let mut child = run_cmd(&sim, "charges", out.path(), &[], SIM_KEY, true)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let staging = out.path().join("charges/.staging");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !dir_has_entries(&staging) {
        assert!(Instant::now() < deadline, "the run never started staging");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Let it write for a while, then SIGKILL.
    tokio::time::sleep(Duration::from_millis(800)).await;
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(sim.stats().requests > 0);
    assert!(
        !out.path().join("charges/batches").exists(),
        "no batch became visible"
    );
    assert!(!out.path().join("charges/failed").exists());
    sim.shutdown().await;
}

#[tokio::test]
async fn mapping_preview_shows_each_row_with_its_errors() {
    let dir = tempfile::tempdir().unwrap();
    let sql = dir.path().join("m.sql");
    // amount / 0 fails in DataFusion: every row gets a transform error.
    std::fs::write(
        &sql,
        "SELECT id AS \"_id\", created AS \"timestamp\", \
         named_struct('charges', named_struct('amount', CASE WHEN amount % 2 = 0 THEN amount / 0 ELSE amount END)) AS \"_${tenant}\" FROM charges",
    )
    .unwrap();
    let o = output(stripe_xdm(
        &[
            "mapping",
            "preview",
            sql.to_str().unwrap(),
            "--resource",
            "charges",
            "--rows",
            "20",
            "--json",
        ],
        None,
    ))
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let rows: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 20);
    let failed: Vec<_> = rows.iter().filter(|r| r["accepted"] == false).collect();
    assert!(!failed.is_empty() && failed.len() < 20, "{rows:?}");
    for r in failed {
        assert_eq!(r["issues"][0][1], "MAPPER-3700-400");
    }
    let missing = output(stripe_xdm(
        &[
            "mapping",
            "preview",
            "/no/such.sql",
            "--resource",
            "charges",
        ],
        None,
    ))
    .await;
    assert_eq!(missing.status.code(), Some(2));
    assert!(text(&missing).contains("/no/such.sql"));
}

/// `stripe-xdm mapping check FILE --resource charges`.
async fn check_charges_mapping(file: &str) -> Output {
    output(stripe_xdm(
        &["mapping", "check", file, "--resource", "charges"],
        None,
    ))
    .await
}

#[tokio::test]
async fn mapping_check_exits_0_only_for_a_sound_mapping() {
    let o = check_charges_mapping(concat!(env!("CARGO_MANIFEST_DIR"), "/sql/charges.sql")).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.sql");
    std::fs::write(
        &bad,
        "SELECT id AS \"_id\",\n  amout AS \"timestamp\" FROM charges",
    )
    .unwrap();
    let o = check_charges_mapping(bad.to_str().unwrap()).await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("amout"), "{}", text(&o));
    assert!(text(&o).contains("bad.sql: 1 error\n"), "{}", text(&o));
    // identity_map's namespace and primary flag are literals, checked when the SQL is planned.
    std::fs::write(
        &bad,
        "SELECT id AS \"_id\", identity_map('Email', receipt_email, paid) AS \"identityMap\" FROM charges",
    )
    .unwrap();
    let o = check_charges_mapping(bad.to_str().unwrap()).await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("identity_map: argument 3 (primary) must be true or false"),
        "{}",
        text(&o)
    );
}

#[tokio::test]
async fn mapping_import_writes_sql_and_reports_what_it_cannot_translate() {
    let dir = tempfile::tempdir().unwrap();
    let set = dir.path().join("set.json");
    std::fs::write(
        &set,
        r#"{"mappings":[
            {"sourceType":"ATTRIBUTE","source":"data.id","destination":"_id"},
            {"sourceType":"ATTRIBUTE","source":"data.amount","destination":"_{TENANT}.charges_data.amount"},
            {"sourceType":"ATTRIBUTE","source":"data.Amount_Refunded","destination":"_{TENANT}.charges_data.x"}
        ]}"#,
    )
    .unwrap();
    let out = dir.path().join("out.sql");
    let o = output(stripe_xdm(
        &[
            "mapping",
            "import",
            set.to_str().unwrap(),
            "--resource",
            "charges",
            "-o",
            out.to_str().unwrap(),
        ],
        None,
    ))
    .await;
    assert_eq!(
        o.status.code(),
        Some(1),
        "untranslated items give exit 1: {}",
        text(&o)
    );
    assert!(
        text(&o).contains("did you mean amount_refunded"),
        "{}",
        text(&o)
    );
    let sql = std::fs::read_to_string(&out).unwrap();
    assert!(sql.contains("amount"), "{sql}");
    // A folder as -o is the caller's to fix: exit 2, naming it.
    let o = output(stripe_xdm(
        &[
            "mapping",
            "import",
            set.to_str().unwrap(),
            "--resource",
            "charges",
            "-o",
            dir.path().to_str().unwrap(),
        ],
        None,
    ))
    .await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("cannot write the mapping"),
        "{}",
        text(&o)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_summary_and_query_over_a_run() {
    let faults = Faults {
        corrupt_rate: 0.05,
        ..Faults::default()
    };
    let sim = start(
        SimConfig::default()
            .with_count(Resource::Charges, 400)
            .with_faults(faults),
    )
    .await;
    let corrupt = sim.simulator().corrupt_count(Resource::Charges, None, None);
    let out = tempfile::tempdir().unwrap();
    let o = output(run_cmd(
        &sim,
        "charges",
        out.path(),
        &["--partial-ingestion", "50", "--json"],
        SIM_KEY,
        true,
    ))
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let batch = report[0]["batch_dir"].as_str().unwrap().to_string();
    let s = output(stripe_xdm(&["errors", "summary", &batch, "--json"], None)).await;
    assert_eq!(s.status.code(), Some(0), "{}", text(&s));
    let summary: serde_json::Value = serde_json::from_slice(&s.stdout).unwrap();
    assert_eq!(summary["total"].as_u64(), Some(corrupt));
    let dataset = out.path().join("charges");
    let q = output(stripe_xdm(
        &[
            "errors",
            "query",
            dataset.to_str().unwrap(),
            "SELECT code, count(*) AS n FROM rejected GROUP BY code",
            "--csv",
        ],
        None,
    ))
    .await;
    assert_eq!(q.status.code(), Some(0), "{}", text(&q));
    assert!(
        String::from_utf8_lossy(&q.stdout).contains(&format!("INGEST-1401-400,{corrupt}")),
        "{}",
        text(&q)
    );
    // Queries only read: no COPY … TO a file, no table over an arbitrary file.
    let copied = out.path().join("copied.csv");
    let copy = format!("COPY (SELECT 1) TO '{}'", copied.display());
    let external = "CREATE EXTERNAL TABLE p STORED AS CSV LOCATION '/etc/passwd'";
    for sql in [copy.as_str(), external] {
        let o = output(stripe_xdm(
            &["errors", "query", dataset.to_str().unwrap(), sql],
            None,
        ))
        .await;
        assert_eq!(o.status.code(), Some(2), "{sql}: {}", text(&o));
        assert!(text(&o).contains("not supported"), "{sql}: {}", text(&o));
    }
    assert!(!copied.exists());
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_sends_a_committed_batch_and_refuses_a_second_time() {
    use stripe_xdm::upload::loopback::{LoopbackConfig, LoopbackPlatform};
    let sim = start(SimConfig::default().with_count(Resource::Prices, 150)).await;
    let out = tempfile::tempdir().unwrap();
    let o = output(run_cmd(
        &sim,
        "prices",
        out.path(),
        &["--json"],
        SIM_KEY,
        true,
    ))
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let batch = report[0]["batch_dir"].as_str().unwrap().to_string();

    let cfg = LoopbackConfig::default();
    let creds = out.path().join("aep.env");
    std::fs::write(
        &creds,
        format!(
            "AEP_ACCESS_TOKEN={}\nAEP_API_KEY={}\nAEP_ORG_ID={}\nAEP_SANDBOX={}\n",
            cfg.access_token, cfg.api_key, cfg.org_id, cfg.sandbox
        ),
    )
    .unwrap();
    let token = cfg.access_token.clone();
    let platform = LoopbackPlatform::start(cfg).await.unwrap();
    let args = |extra: &[&str]| {
        let mut v: Vec<String> = vec![
            "upload".into(),
            batch.clone(),
            "--dataset-id".into(),
            "ds1".into(),
            "--credentials-file".into(),
            creds.to_str().unwrap().into(),
            "--base-url".into(),
            platform.base_url(),
            "--poll-interval".into(),
            "1".into(),
        ];
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let run = |a: Vec<String>| {
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        stripe_xdm(&refs, None)
    };
    let dry = output(run(args(&["--dry-run"]))).await;
    assert_eq!(dry.status.code(), Some(0), "{}", text(&dry));
    assert!(text(&dry).contains("POST"), "{}", text(&dry));
    assert_eq!(platform.request_count(), 0, "a dry run sends nothing");
    // A dry run needs no credentials, and says an upload does.
    let mut bare = stripe_xdm(
        &["upload", &batch, "--dataset-id", "ds1", "--dry-run"],
        None,
    );
    for var in [
        "AEP_ACCESS_TOKEN",
        "AEP_API_KEY",
        "AEP_ORG_ID",
        "AEP_SANDBOX",
    ] {
        bare.env_remove(var);
    }
    let dry = output(bare).await;
    assert_eq!(dry.status.code(), Some(0), "{}", text(&dry));
    assert!(text(&dry).contains("POST"), "{}", text(&dry));
    assert!(
        text(&dry).contains("an upload needs them"),
        "{}",
        text(&dry)
    );
    // What the command line says is refused before credentials are read (none are set here).
    let missing = out.path().join("prices/batches/no-such-batch");
    for (args, named) in [
        (
            vec!["upload", missing.to_str().unwrap(), "--dataset-id", "ds1"],
            "no-such-batch",
        ),
        (
            vec!["upload", &batch, "--dataset-id", "ds 1"],
            "--dataset-id \"ds 1\"",
        ),
        (
            vec!["upload", &batch, "--dataset-id", ""],
            "--dataset-id is empty",
        ),
        (
            vec![
                "upload",
                &batch,
                "--dataset-id",
                "ds1",
                "--base-url",
                "platform.adobe.io",
            ],
            "--base-url \"platform.adobe.io\"",
        ),
    ] {
        let mut cmd = stripe_xdm(&args, None);
        cmd.env_remove("AEP_ACCESS_TOKEN");
        let o = output(cmd).await;
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        assert!(text(&o).contains(named), "{args:?}: {}", text(&o));
        assert!(
            !text(&o).contains("AEP_ACCESS_TOKEN"),
            "{args:?}: {}",
            text(&o)
        );
    }
    let up = output(run(args(&["--json"]))).await;
    assert_eq!(up.status.code(), Some(0), "{}", text(&up));
    let rep: serde_json::Value = serde_json::from_slice(&up.stdout).unwrap();
    assert_eq!(rep["status"], "success", "{rep}");
    assert!(!text(&up).contains(&token), "the token is never printed");
    let again = output(run(args(&[]))).await;
    assert_eq!(again.status.code(), Some(2), "{}", text(&again));
    platform.shutdown().await;
    sim.shutdown().await;
}

// ------------------------------------------------ key prompt, wizard and preview --account

/// Runs the binary with `--home` and `input` piped on its stdin.
async fn with_stdin(home: &Path, args: &[&str], input: &str) -> Output {
    use std::io::Write;
    let mut cmd = stripe_xdm(args, None);
    cmd.arg("--home")
        .arg(home)
        .env_remove("STRIPE_XDM_HOME")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let input = input.to_string();
    tokio::task::spawn_blocking(move || {
        let mut child = cmd.spawn().expect("binary runs");
        let mut stdin = child.stdin.take().expect("stdin");
        // The child may exit before reading everything: a broken pipe is its answer.
        let _ = stdin.write_all(input.as_bytes());
        drop(stdin);
        child.wait_with_output().expect("binary ends")
    })
    .await
    .unwrap()
}

/// Every file under `dir` but the private key files, as lossy text.
fn files_but_secrets(dir: &Path) -> String {
    let mut s = String::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n != "secrets") {
                s += &files_but_secrets(&p);
            }
        } else {
            s += &String::from_utf8_lossy(&std::fs::read(&p).unwrap());
        }
    }
    s
}

/// `accounts add main --api-key-stdin` with the simulator's key piped in.
async fn add_account_from_stdin(home: &Path, base: &str) -> Output {
    let args = [
        "accounts",
        "add",
        "main",
        "--api-key-stdin",
        "--base-url",
        base,
    ];
    with_stdin(home, &args, &format!("{SIM_KEY}\n")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_add_reads_the_key_from_stdin_and_never_shows_it() {
    let sim = start(SimConfig::default().with_count(Resource::Customers, 5)).await;
    let home = tempfile::tempdir().unwrap();
    let o = add_account_from_stdin(home.path(), &sim.base_url()).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("added"), "{}", text(&o));
    assert!(!text(&o).contains(SIM_KEY), "the key is never printed");
    let list = with_stdin(home.path(), &["accounts", "list", "--json"], "").await;
    let v: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(v[0]["name"], "main", "{v}");
    assert!(!text(&list).contains(SIM_KEY));
    assert!(
        !files_but_secrets(home.path()).contains(SIM_KEY),
        "the key is only in its private file, not in the catalog"
    );

    // No key source and stdin not a terminal: refused, naming the three ways.
    let o = output(stripe_xdm(
        &["accounts", "add", "other", "--base-url", &sim.base_url()],
        None,
    ))
    .await;
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    for way in ["--api-key-env", "--api-key-file", "--api-key-stdin"] {
        assert!(t.contains(way), "names {way}: {t}");
    }
    // An empty stdin is no key.
    let args = ["accounts", "add", "other", "--api-key-stdin"];
    let o = with_stdin(home.path(), &args, "\n").await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dataflows_create_interactive_takes_piped_answers_and_re_asks_bad_ones() {
    let sim = start(SimConfig::default().with_count(Resource::Customers, 5)).await;
    let home = tempfile::tempdir().unwrap();
    let added = add_account_from_stdin(home.path(), &sim.base_url()).await;
    assert_eq!(added.status.code(), Some(0), "{}", text(&added));
    // One answer per line, in the wizard's order ("" takes the default).
    let answers = [
        "1",               // account
        "customers",       // resource path
        "",                // new dataset's name: "customers"
        "",                // its description
        "",                // its XDM schema: the built-in one
        "y",               // Profile
        "n",               // error diagnostics
        "y",               // partial ingestion
        "10",              // its threshold
        "Wizard flow",     // dataflow name
        "from the wizard", // description
        "run-start, 3",    // alerts
        "",                // webhook
        "",                // command
        "",                // mapping: the built-in one
        "minute",          // frequency
        "5",               // interval: refused, minute needs ≥ 15
        "30",              // interval
        "",                // start time: now
        "n",               // backfill
        "y",               // create it
    ];
    let o = with_stdin(
        home.path(),
        &["dataflows", "create", "--interactive"],
        &(answers.join("\n") + "\n"),
    )
    .await;
    let stderr = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        stderr.contains("minute interval ≥ 15"),
        "names the rule: {stderr}"
    );
    assert_eq!(
        stderr.matches("Interval, minutes between runs").count(),
        2,
        "{stderr}"
    );
    assert!(
        stderr.contains("Assign dataset & map fields"),
        "the review: {stderr}"
    );
    let show = with_stdin(
        home.path(),
        &["dataflows", "show", "Wizard flow", "--json"],
        "",
    )
    .await;
    assert_eq!(show.status.code(), Some(0), "{}", text(&show));
    let f: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(f["resource"], "customers", "{f}");
    assert_eq!(f["dataset"], "customers", "{f}");
    assert_eq!(f["description"], "from the wizard", "{f}");
    assert_eq!(f["schedule"]["frequency"], "minute", "{f}");
    assert_eq!(f["schedule"]["interval"], 30, "{f}");
    assert_eq!(f["schedule"]["backfill"], false, "{f}");
    assert_eq!(f["alerts"]["run_start"], true, "{f}");
    assert_eq!(f["alerts"]["run_success"], false, "{f}");
    assert_eq!(f["alerts"]["run_failure"], true, "{f}");
    let ds = with_stdin(
        home.path(),
        &["datasets", "show", "customers", "--json"],
        "",
    )
    .await;
    let d: serde_json::Value = serde_json::from_slice(&ds.stdout).unwrap();
    assert_eq!(d["profile_enabled"], true, "{d}");
    assert_eq!(d["partial_ingestion_percent"], 10.0, "{d}");

    // Running out of answers is a usage error that says why.
    let o = with_stdin(
        home.path(),
        &["dataflows", "create", "--interactive"],
        "1\n",
    )
    .await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("the wizard needs answers on stdin"),
        "{}",
        text(&o)
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preview_with_an_account_reads_its_stored_key() {
    let sim = start(SimConfig::default().with_count(Resource::Charges, 20)).await;
    let home = tempfile::tempdir().unwrap();
    let base = sim.base_url();
    let added = add_account_from_stdin(home.path(), &base).await;
    assert_eq!(added.status.code(), Some(0), "{}", text(&added));
    let preview = |rows: &'static str| {
        let args: Vec<String> = [
            "preview",
            "--account",
            "main",
            "--resource",
            "charges",
            "--rows",
            rows,
            "--base-url",
            &base,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let home = home.path().to_path_buf();
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            with_stdin(&home, &args, "").await
        }
    };
    let o = preview("3").await;
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(!t.contains(SIM_KEY), "{t}");
    let stdout = String::from_utf8_lossy(&o.stdout);
    let table = stdout.split("first 3 of").nth(1).expect("the sample rows");
    let rows = table.lines().filter(|l| l.starts_with("| ch_")).count();
    assert_eq!(rows, 3, "{stdout}");

    let o = preview("101").await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("1 to 100"), "{}", text(&o));
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_refuses_a_non_positive_endpoint_rate() {
    let sim = start(SimConfig::default().with_count(Resource::Charges, 10)).await;
    let out = tempfile::tempdir().unwrap();
    let o = output(run_cmd(
        &sim,
        "charges",
        out.path(),
        &["--endpoint-rate", "0"],
        SIM_KEY,
        false,
    ))
    .await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("--endpoint-rate") && text(&o).contains("from 0.01"),
        "{}",
        text(&o)
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_command_that_creates_something_leaves_a_home() {
    let tmp = tempfile::tempdir().unwrap();
    let typo = tmp.path().join("stripe-xmd");
    let home = typo.to_str().unwrap();
    for args in [
        vec!["dataflows", "list", "--home", home],
        vec!["accounts", "list", "--home", home],
        vec!["datasets", "show", "payments", "--home", home],
        vec!["runs", "list", "--home", home],
        vec!["backfill", "charges-daily", "--plan", "--home", home],
    ] {
        let o = output(stripe_xdm(&args, None)).await;
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        assert!(
            text(&o).contains(&format!("no catalog in {home}")),
            "{args:?}: {}",
            text(&o)
        );
        assert!(!typo.exists(), "{args:?} created {home}");
    }
    // A refused command that would have created the home leaves none: no folder, or, in a
    // folder that existed, no catalog.
    for args in [
        vec![
            "datasets",
            "create",
            "x",
            "--schema",
            "/no/such/schema.json",
            "--home",
            home,
        ],
        vec![
            "dataflows",
            "create",
            "f",
            "--account",
            "a",
            "--resource",
            "charges",
            "--dataset",
            "d",
            "--home",
            home,
        ],
    ] {
        let o = output(stripe_xdm(&args, None)).await;
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        assert!(!typo.exists(), "{args:?} left {home}");
    }
    // A new home several folders deep: every folder it made goes.
    let deep = tmp.path().join("new/deeper/home");
    let o = output(stripe_xdm(
        &[
            "datasets",
            "create",
            "x",
            "--schema",
            "/no/such/schema.json",
            "--home",
            deep.to_str().unwrap(),
        ],
        None,
    ))
    .await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(!tmp.path().join("new").exists(), "{}", text(&o));
    std::fs::create_dir(&typo).unwrap();
    std::fs::write(typo.join("notes.txt"), "mine").unwrap();
    let o = output(stripe_xdm(
        &[
            "datasets",
            "create",
            "x",
            "--schema",
            "/no/such/schema.json",
            "--home",
            home,
        ],
        None,
    ))
    .await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let left: Vec<String> = std::fs::read_dir(&typo)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, vec!["notes.txt".to_string()]);
    // A command that creates something creates the home.
    let schema = concat!(env!("CARGO_MANIFEST_DIR"), "/sql/charges.xdm.json");
    let o = output(stripe_xdm(
        &[
            "datasets", "create", "payments", "--schema", schema, "--home", home,
        ],
        None,
    ))
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = output(stripe_xdm(&["datasets", "list", "--home", home], None)).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("payments"), "{}", text(&o));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_checks_its_flags_before_it_schedules_anything() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let file = tmp.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    // serve schedules what exists: without a catalog it stops, creating nothing.
    let o = output(stripe_xdm(
        &[
            "serve",
            "--home",
            home.to_str().unwrap(),
            "--max-ticks",
            "1",
        ],
        None,
    ))
    .await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("no catalog in"), "{}", text(&o));
    assert!(!home.exists());
    drop(stripe_xdm::catalog::Catalog::open(&home).unwrap());
    let home = home.to_str().unwrap();
    for (args, named) in [
        (vec!["--tick-secs", "1e30"], "from 0.05 to 3600"),
        (vec!["--tick-secs", "0"], "from 0.05 to 3600"),
        (vec!["--concurrency", "0"], "from 1 to"),
        (vec!["--out", file.to_str().unwrap()], "not a folder"),
    ] {
        let mut all = vec!["serve", "--home", home, "--max-ticks", "1"];
        all.extend(&args);
        let o = output(stripe_xdm(&all, None)).await;
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        assert!(text(&o).contains(named), "{args:?}: {}", text(&o));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_range_flags_are_refused_naming_the_flag() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let home = home.to_str().unwrap();
    let schema = concat!(env!("CARGO_MANIFEST_DIR"), "/sql/charges.xdm.json");
    let mapping = concat!(env!("CARGO_MANIFEST_DIR"), "/sql/charges.sql");
    for (args, named) in [
        (vec!["demo", "--corrupt-rate", "2"], "from 0 to 1"),
        (vec!["sim", "--rate-429", "1.5"], "from 0 to 1"),
        (vec!["sim", "--corrupt-rate", "NaN"], "from 0 to 1"),
        (vec!["sim", "--rate-limit", "0"], "requests per second"),
        (
            vec![
                "preview",
                "--resource",
                "charges",
                "--sim",
                "--stripe-account",
                "bogus",
            ],
            "acct_ followed by letters and digits",
        ),
        (
            vec!["run", "--resource", "charges", "--stripe-version", ""],
            "a Stripe API version is a date",
        ),
        (
            vec!["run", "--resource", "charges", "--rate", "1e308"],
            "to 100000",
        ),
        (
            vec![
                "mapping",
                "preview",
                mapping,
                "--resource",
                "charges",
                "--rows",
                "0",
            ],
            "--rows",
        ),
        (
            vec![
                "backfill",
                "x",
                "--plan",
                "--sample-windows",
                "0",
                "--home",
                home,
            ],
            "--sample-windows",
        ),
        (
            vec![
                "datasets", "create", "x", "--schema", schema, "--tenant", "a/b", "--home", home,
            ],
            "letters, digits and underscores",
        ),
        (vec!["demo", "--tenant", ""], "the tenant id is empty"),
    ] {
        let o = output(stripe_xdm(&args, None)).await;
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        assert!(text(&o).contains(named), "{args:?}: {}", text(&o));
    }
    assert!(!Path::new(home).exists(), "nothing was created");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_add_against_an_unreachable_api_says_so_and_stores_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let mut cmd = stripe_xdm(
        &[
            "accounts",
            "add",
            "shop",
            "--base-url",
            &base,
            "--api-key-env",
            "STRIPE_API_KEY",
            "--home",
            home.to_str().unwrap(),
        ],
        Some(SIM_KEY),
    );
    cmd.stdin(Stdio::null());
    let o = output(cmd).await;
    // An outage: retry later (exit 1), after a short connection test, naming the server.
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains(&base), "{}", text(&o));
    assert!(
        !home.exists(),
        "nothing stored for an account that was not added"
    );
}
