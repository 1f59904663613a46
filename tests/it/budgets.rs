//! Stripe limits requests per account: every client of one key in a process shares one budget
//! (concurrent dataflow runs in `serve` take turns), and the budgets an account was added with
//! apply to every later command.

use std::time::{Duration, Instant};

use stripe_xdm::catalog::{Alerts, Catalog, NewDataflow, NewDataset};
use stripe_xdm::runner::{run_dataflow, RunnerConfig};
use stripe_xdm::schedule::Schedule;
use stripe_xdm::sim::{Faults, SimConfig, Simulator, SIM_KEY};
use stripe_xdm::source::{ClientConfig, StripeClient, Window};
use stripe_xdm::{Resource, Secret};

use crate::support::bin::{command, output, text};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_of_one_key_share_its_budget() {
    const RATE: f64 = 20.0;
    let sim = Simulator::new(
        SimConfig::default()
            .with_count(Resource::Charges, 1500)
            .with_count(Resource::Customers, 1500)
            .with_faults(Faults {
                rate_limit: Some(RATE),
                ..Faults::default()
            }),
    )
    .start()
    .await
    .unwrap();
    let client = || {
        let mut cfg = ClientConfig::new(sim.base_url(), Secret::new(SIM_KEY));
        cfg.requests_per_sec = Some(RATE);
        cfg.endpoint_requests_per_sec = Some(RATE);
        StripeClient::new(cfg).unwrap()
    };
    // Two runs' clients, built apart, reading two resources at once: together they stay within
    // the account's limit.
    let (a, b) = (client(), client());
    let started = Instant::now();
    let walk = |c: StripeClient, r: Resource| async move {
        let (tx, mut rx) = tokio::sync::mpsc::channel(4);
        let task = tokio::spawn(async move { c.fetch_all(r, Window::default(), tx).await });
        let mut n = 0;
        while let Some(p) = rx.recv().await {
            n += p.len();
        }
        task.await.unwrap().unwrap();
        n
    };
    let (na, nb) = tokio::join!(walk(a, Resource::Charges), walk(b, Resource::Customers));
    assert_eq!((na, nb), (1500, 1500));
    let stats = sim.stats();
    assert_eq!(
        stats.limited_429, 0,
        "one budget, never over the limit: {stats:?}"
    );
    // 30 requests at 20/s after a burst of 3 cannot take less than (30 - 3) / 20 s.
    assert!(
        started.elapsed() >= Duration::from_secs_f64(27.0 / RATE * 0.95),
        "{:?}",
        started.elapsed()
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accounts_budgets_are_remembered() {
    let sim = Simulator::new(SimConfig::default().with_count(Resource::Charges, 1200))
        .start()
        .await
        .unwrap();
    let home = tempfile::tempdir().unwrap();
    let add = command(
        Some(home.path()),
        &[
            "accounts",
            "add",
            "main",
            "--api-key-env",
            "SIM_KEY_VAR",
            "--base-url",
            &sim.base_url(),
            "--rate",
            "6",
            "--endpoint-rate",
            "5",
        ],
        &[("SIM_KEY_VAR", SIM_KEY)],
    );
    let o = output(add).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let show = output(command(
        Some(home.path()),
        &["accounts", "show", "main", "--json"],
        &[],
    ))
    .await;
    let v: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(
        (v["rate"].as_f64(), v["endpoint_rate"].as_f64()),
        (Some(6.0), Some(5.0))
    );

    // A later dataflow run (no budget given) keeps to the account's 5 requests/s per endpoint.
    let mut cat = Catalog::open(home.path()).unwrap();
    cat.create_dataset(&NewDataset {
        name: "charges".into(),
        description: None,
        schema_json: stripe_xdm::map::substitute_tenant(
            stripe_xdm::defaults::xdm_schema_json(Resource::Charges),
            "tenant",
        ),
        profile_enabled: false,
        error_diagnostics: false,
        partial_ingestion_percent: None,
    })
    .unwrap();
    let t = stripe_xdm::runner::now();
    cat.create_dataflow(
        &NewDataflow {
            name: "flow".into(),
            description: None,
            account: "main".into(),
            resource: stripe_xdm::Resource::Charges,
            dataset: "charges".into(),
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
    let cfg = RunnerConfig::new(home.path());
    let done = run_dataflow(&cfg, "flow", t, None).await.unwrap();
    assert_eq!(done.run.counts.fetched, 1200);
    let peak = sim.stats().peak_rps;
    assert!(
        peak <= 5 + 3,
        "at most the budget plus its burst in any second: {peak}"
    );
    sim.shutdown().await;
}
