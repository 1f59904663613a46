//! Dataflow runs through the runner and the scheduler: catch-up after downtime, one run per
//! dataflow at a time, clean shutdown with resume, alerts to a loopback webhook, and a run that
//! uploads its batch to a loopback Platform and records Platform's status.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use stripe_xdm::alert::loopback::WebhookReceiver;
use stripe_xdm::catalog::{
    AlertKind, Alerts, Catalog, NewDataflow, NewDataset, RunStatus, UploadTarget,
};
use stripe_xdm::runner::serve::{serve, ServeOptions};
use stripe_xdm::runner::{run_dataflow, RunnerConfig, RunnerError};
use stripe_xdm::schedule::{Frequency, Schedule};
use stripe_xdm::sim::{Faults, SimConfig, SimHandle, Simulator, SIM_KEY};
use stripe_xdm::sink::read_batch_dir;
use stripe_xdm::upload::loopback::{LoopbackConfig, LoopbackPlatform};
use stripe_xdm::{Resource, Secret};
use tokio::sync::watch;

const HOUR: i64 = 3600;

async fn start_sim(config: SimConfig) -> SimHandle {
    Simulator::new(config).start().await.expect("simulator")
}

fn now() -> i64 {
    stripe_xdm::runner::now()
}

/// A catalog with account `main` (the simulator's key) and dataset `charges`.
fn setup(home: &Path) -> Catalog {
    let mut cat = Catalog::open(home).unwrap();
    cat.add_account("main", None, &Secret::new(SIM_KEY))
        .unwrap();
    cat.create_dataset(&NewDataset {
        name: "charges".into(),
        description: None,
        schema_json: stripe_xdm::map::substitute_tenant(
            stripe_xdm::defaults::xdm_schema_json(Resource::Charges),
            "tenant",
        ),
        profile_enabled: false,
        error_diagnostics: true,
        partial_ingestion_percent: Some(5.0),
    })
    .unwrap();
    cat
}

fn new_flow(name: &str, schedule: Schedule) -> NewDataflow {
    NewDataflow {
        name: name.into(),
        description: None,
        account: "main".into(),
        resource: stripe_xdm::Resource::Charges,
        dataset: "charges".into(),
        mapping_sql: stripe_xdm::map::Mapping::builtin(Resource::Charges, "tenant").sql,
        alerts: Alerts::default(),
        schedule,
        alert_webhook: None,
        alert_command: None,
        upload: None,
    }
}

fn runner(home: &Path, sim: &SimHandle) -> RunnerConfig {
    let mut cfg = RunnerConfig::new(home);
    cfg.api_base_url = Some(sim.base_url());
    cfg.requests_per_sec = Some(10_000.0);
    cfg.checkpoint_every = Duration::ZERO;
    cfg.alert_options.backoff_base = Duration::from_millis(5);
    cfg.alert_options.backoff_max = Duration::from_millis(20);
    cfg.upload_poll_interval = Duration::from_millis(20);
    cfg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_downtime_serve_catches_up_with_one_run() {
    let sim = start_sim(SimConfig::default().with_count(Resource::Charges, 300)).await;
    let home = tempfile::tempdir().unwrap();
    let mut cat = setup(home.path());
    let t = now();
    // Hourly from five hours ago (created then, as if the scheduler had been down since).
    let start = t - 5 * HOUR - 30;
    cat.create_dataflow(
        &new_flow("hourly", Schedule::every(1, Frequency::Hour, start)),
        start - 1,
    )
    .unwrap();
    let opts = ServeOptions {
        tick: Duration::from_millis(20),
        max_ticks: Some(3),
        ..ServeOptions::default()
    };
    let (_tx, rx) = watch::channel(false);
    let summary = serve(runner(home.path(), &sim), opts.clone(), rx.clone())
        .await
        .unwrap();
    assert_eq!(summary.runs.len(), 1, "one catch-up run, not five");
    let runs = cat.list_runs(Some("hourly"), None).unwrap();
    assert_eq!(runs.len(), 1);
    let run = &runs[0];
    assert_eq!(run.status, RunStatus::Success, "{run:?}");
    // The latest scheduled time that has passed, and a window over all history up to it.
    assert_eq!(run.scheduled_time, start + 5 * HOUR);
    let w = run.window.unwrap();
    assert_eq!(w.gte, None, "backfill: all history");
    assert_eq!(
        w.lt,
        run.scheduled_time - stripe_xdm::runner::SAFETY_LAG_SECS
    );
    assert_eq!(run.counts.fetched, 300);
    assert_eq!(
        run.counts.fetched,
        run.counts.ingested + run.counts.rejected
    );
    // Nothing more is due until the next hour.
    let again = serve(runner(home.path(), &sim), opts, rx).await.unwrap();
    assert!(again.runs.is_empty(), "{:?}", again.runs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_skips_a_dataflow_whose_run_is_in_progress() {
    let sim = start_sim(SimConfig::default().with_count(Resource::Charges, 10)).await;
    let home = tempfile::tempdir().unwrap();
    let mut cat = setup(home.path());
    let t = now();
    cat.create_dataflow(&new_flow("busy", Schedule::once(t)), t)
        .unwrap();
    // This process holds a running run of the dataflow (as `dataflows run` would).
    let run = cat.begin_run("busy", t, 60, t).unwrap();
    let opts = ServeOptions {
        tick: Duration::from_millis(10),
        max_ticks: Some(2),
        ..ServeOptions::default()
    };
    let (_tx, rx) = watch::channel(false);
    let summary = serve(runner(home.path(), &sim), opts, rx).await.unwrap();
    assert!(summary.runs.is_empty(), "no second run: {:?}", summary.runs);
    assert_eq!(cat.list_runs(Some("busy"), None).unwrap().len(), 1);
    assert_eq!(cat.run(run.id).unwrap().status, RunStatus::Running);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_leaves_a_resumable_run_that_finishes_the_same_batch() {
    // Slow pages, so the shutdown lands in the middle of the run.
    let faults = Faults {
        slow_rate: 1.0,
        slow_ms: 15,
        ..Faults::default()
    };
    let sim = start_sim(
        SimConfig::default()
            .with_count(Resource::Charges, 4_000)
            .with_faults(faults),
    )
    .await;
    let home = tempfile::tempdir().unwrap();
    let mut cat = setup(home.path());
    let t = now();
    cat.create_dataflow(&new_flow("big", Schedule::once(t)), t)
        .unwrap();
    let (tx, rx) = watch::channel(false);
    let opts = ServeOptions {
        tick: Duration::from_millis(10),
        ..ServeOptions::default()
    };
    let mut cfg = runner(home.path(), &sim);
    cfg.concurrency = 2;
    cfg.chunk_records = 300;
    let task = tokio::spawn(serve(cfg.clone(), opts, rx));
    // Stop once a checkpoint exists.
    let waiting = std::time::Instant::now();
    let run_id = loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            waiting.elapsed() < Duration::from_secs(60),
            "no checkpoint while the run went"
        );
        if let Some(r) = cat.active_run("big").unwrap() {
            if cat.checkpoint(r.id).unwrap().is_some() {
                break r.id;
            }
        }
    };
    tx.send(true).unwrap();
    let summary = tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .expect("serve stops")
        .unwrap()
        .unwrap();
    assert_eq!(summary.runs.len(), 1);
    assert!(
        summary.runs[0]
            .outcome
            .as_ref()
            .unwrap_err()
            .contains("interrupted"),
        "{:?}",
        summary.runs[0].outcome
    );
    let run = cat.run(run_id).unwrap();
    assert_eq!(run.status, RunStatus::Running, "resumable, not failed");
    assert_eq!(run.owner_pid, None, "let go of");
    assert_eq!(cat.watermark("big").unwrap(), None, "nothing committed");
    // While it waits to be resumed, its counters come from its checkpoint.
    let cp = cat.checkpoint(run_id).unwrap().unwrap();
    let live = stripe_xdm::pipeline::checkpoint_totals(&cp.state).expect("totals");
    assert!(
        live.counts.fetched > 0 && live.counts.fetched < 4_000,
        "{live:?}"
    );
    // Every record fetched so far is accepted or rejected, and each accepted one is staged.
    assert_eq!(
        live.counts.fetched,
        live.counts.ingested + live.counts.rejected
    );
    assert!(
        live.counts.staged >= live.counts.ingested && live.counts.ingested > 0,
        "{live:?}"
    );
    let shown = crate::support::bin::output(crate::support::bin::command(
        Some(home.path()),
        &["runs", "show", &run_id.to_string()],
        &[],
    ))
    .await;
    let text = crate::support::bin::text(&shown);
    assert!(text.contains("as of the checkpoint"), "{text}");
    assert!(
        text.contains(&format!("Records received: {}", live.counts.fetched)),
        "{text}"
    );
    let listed = crate::support::bin::output(crate::support::bin::command(
        Some(home.path()),
        &["runs", "list", "--json"],
        &[],
    ))
    .await;
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).expect("JSON");
    assert_eq!(listed[0]["fetched"], live.counts.fetched, "{listed}");
    assert_eq!(listed[0]["progress_as_of"], cp.updated_at, "{listed}");
    // The next run resumes it and commits the whole window once.
    let done = run_dataflow(&cfg, "big", now(), None).await.unwrap();
    assert!(done.resumed);
    assert_eq!(done.run.id, run_id);
    assert_eq!(done.run.status, RunStatus::Success);
    assert_eq!(done.run.counts.fetched, 4_000);
    let batches = read_batch_dir(&done.report.unwrap().batch_dir).unwrap();
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows as u64, done.run.counts.ingested);
    assert_eq!(done.run.counts.ingested + done.run.counts.rejected, 4_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_reach_the_webhook_and_are_recorded() {
    let sim = start_sim(SimConfig::default().with_count(Resource::Charges, 50)).await;
    let hook = WebhookReceiver::start(vec![503]).await.unwrap();
    let home = tempfile::tempdir().unwrap();
    let mut cat = setup(home.path());
    let t = now();
    let mut flow = new_flow("alerted", Schedule::once(t));
    flow.alerts = Alerts {
        run_start: true,
        run_success: true,
        run_failure: true,
    };
    flow.alert_webhook = Some(hook.url());
    cat.create_dataflow(&flow, t).unwrap();
    let r = run_dataflow(&runner(home.path(), &sim), "alerted", t, None)
        .await
        .unwrap();
    assert_eq!(r.run.status, RunStatus::Success);
    let bodies = hook.received();
    assert_eq!(bodies.len(), 2, "start and success: {bodies:?}");
    let text = serde_json::to_string(&bodies).unwrap();
    assert!(!text.contains(SIM_KEY), "no key in alerts");
    let deliveries = cat.alert_deliveries(r.run.id).unwrap();
    assert_eq!(deliveries.len(), 2);
    assert_eq!(deliveries[0].kind, AlertKind::RunStart);
    assert_eq!(deliveries[0].attempts, 2, "the 503 was retried");
    assert!(deliveries.iter().all(|d| d.ok));
    assert_eq!(deliveries[1].kind, AlertKind::RunSuccess);
    hook.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dataflow_run_uploads_its_batch_and_records_platforms_status() {
    let sim = start_sim(SimConfig::default().with_count(Resource::Charges, 120)).await;
    let platform = LoopbackPlatform::start(LoopbackConfig::default())
        .await
        .unwrap();
    let home = tempfile::tempdir().unwrap();
    let mut cat = setup(home.path());
    let t = now();
    let mut flow = new_flow("uploaded", Schedule::once(t));
    flow.upload = Some(UploadTarget {
        dataset_id: "5f0c1e2d3b4a5968".into(),
        base_url: Some(platform.base_url()),
        credentials_file: None,
    });
    cat.create_dataflow(&flow, t).unwrap();
    let mut cfg = runner(home.path(), &sim);
    cfg.platform_credentials = Some(platform.credentials());
    let r = run_dataflow(&cfg, "uploaded", t, None).await.unwrap();
    assert_eq!(r.run.status, RunStatus::Success);
    let up = r.run.upload.clone().expect("upload recorded");
    assert_eq!(up.status, "success", "{up:?}");
    let pid = up.platform_batch_id.clone().expect("Platform batch id");
    let batch = platform.batch(&pid).expect("Platform has the batch");
    assert_eq!(batch.dataset_id, "5f0c1e2d3b4a5968");
    // Persisted: a new catalog connection reads the same record.
    let reread = Catalog::open(home.path()).unwrap().run(r.run.id).unwrap();
    assert_eq!(reread.upload, Some(up));
    assert_eq!(
        r.upload.unwrap().uploaded.len() as u64,
        reread.counts.files,
        "every file sent"
    );
    // Without credentials the run still commits, and the upload's failure is recorded.
    let mut cfg = runner(home.path(), &sim);
    cfg.platform_credentials = None;
    std::env::remove_var("AEP_ACCESS_TOKEN");
    let mut flow2 = new_flow("no-creds", Schedule::once(t));
    flow2.upload = Some(UploadTarget {
        dataset_id: "x".into(),
        base_url: Some(platform.base_url()),
        credentials_file: Some(home.path().join("missing.json").display().to_string()),
    });
    cat.create_dataflow(&flow2, t).unwrap();
    let r = run_dataflow(&cfg, "no-creds", t, None).await.unwrap();
    assert_eq!(r.run.status, RunStatus::Success);
    let up = r.run.upload.unwrap();
    assert_eq!(up.status, "not uploaded");
    assert!(up.errors[0].contains("missing.json"), "{:?}", up.errors);
    platform.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_in_progress_elsewhere_is_refused() {
    let sim = start_sim(SimConfig::default().with_count(Resource::Charges, 10)).await;
    let home = tempfile::tempdir().unwrap();
    let mut cat = setup(home.path());
    let t = now();
    cat.create_dataflow(&new_flow("x", Schedule::once(t)), t)
        .unwrap();
    cat.begin_run("x", t, 60, t).unwrap();
    let cfg = Arc::new(runner(home.path(), &sim));
    match run_dataflow(&cfg, "x", t, None).await {
        Err(RunnerError::Catalog(e)) => assert!(e.to_string().contains("has run"), "{e}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_visible_objects_are_caught_by_the_next_runs_reread_without_duplicates() {
    let t = now();
    // 400 charges created over the last hour, the newest 70 s ago (inside the first window).
    let config = SimConfig::default()
        .with_count(Resource::Charges, 400)
        .with_window(t - 3_600, t - 70);
    let probe = Simulator::new(config.clone());
    // Hide a few objects created in the last 5 minutes of the first window.
    let lt1 = t - stripe_xdm::runner::SAFETY_LAG_SECS;
    let late: Vec<u64> = (0..400)
        .filter(|&i| probe.created(Resource::Charges, i) >= lt1 - 250)
        .step_by(4)
        .take(5)
        .collect();
    assert_eq!(late.len(), 5, "the test needs late objects in the span");
    let sim = start_sim(config.with_late(Resource::Charges, late.clone())).await;
    let home = tempfile::tempdir().unwrap();
    let mut cat = setup(home.path());
    cat.create_dataflow(&new_flow("late", Schedule::once(t)), t)
        .unwrap();
    let cfg = runner(home.path(), &sim);
    let first = run_dataflow(&cfg, "late", t, None).await.unwrap();
    assert_eq!(
        first.run.counts.fetched,
        400 - 5,
        "the late ones are not visible yet"
    );
    // They show up; the next run re-reads the end of the first window.
    sim.simulator().reveal_late();
    let second = run_dataflow(&cfg, "late", t + 1, None).await.unwrap();
    assert_eq!(second.run.status, RunStatus::Success);
    assert_eq!(
        second.run.counts.fetched, 5,
        "only the late objects are new"
    );
    let report = second.report.unwrap();
    assert!(report.duplicates_skipped > 0, "{report:?}");
    // Together the two batches hold every object exactly once.
    let mut seen = std::collections::BTreeMap::<String, u32>::new();
    for dir in [first.report.unwrap().batch_dir, report.batch_dir] {
        for b in read_batch_dir(&dir).unwrap() {
            use arrow::array::{Array, AsArray};
            let ids = b
                .column(b.schema().index_of("_id").unwrap())
                .as_string::<i32>()
                .clone();
            for i in 0..ids.len() {
                *seen.entry(ids.value(i).to_string()).or_default() += 1;
            }
        }
    }
    assert!(seen.values().all(|&n| n == 1), "no duplicates");
    let all: std::collections::BTreeSet<String> = sim
        .simulator()
        .ids(Resource::Charges, None, None)
        .into_iter()
        .collect();
    let got: std::collections::BTreeSet<String> = seen.into_keys().collect();
    assert_eq!(got, all);
}
