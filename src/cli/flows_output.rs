//! Printing of the catalog commands (plain tables and text, or JSON with `--json`), and the
//! read-only `runs` and `monitor` commands.

use serde::Serialize;

use stripe_xdm::app::{self, runs::DataflowStatus};
use stripe_xdm::catalog::{Account, Dataflow, Dataset, Run, RunStatus};

use clap::{Args, Subcommand};

use super::flows::{cat_err, HomeArgs};
use super::{table, CliError};
use stripe_xdm::runner::now;

type Result<T> = std::result::Result<T, CliError>;

fn print_json<T: Serialize + ?Sized>(v: &T) {
    println!(
        "{}",
        serde_json::to_string_pretty(v).expect("catalog values serialize")
    );
}

/// Unix seconds as `2026-01-31 12:00:00 UTC`.
pub fn time(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| d.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| t.to_string())
}

fn opt_time(t: Option<i64>) -> String {
    t.map(time).unwrap_or_else(|| "-".into())
}

fn window(w: Option<stripe_xdm::schedule::Window>) -> String {
    match w {
        None => "-".into(),
        Some(w) => format!(
            "[{}, {})",
            w.gte.map(time).unwrap_or_else(|| "-∞".into()),
            time(w.lt)
        ),
    }
}

pub fn accounts(list: &[Account], json: bool) {
    if json {
        return print_json(list);
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|a| {
            vec![
                a.name.clone(),
                a.key_masked.clone(),
                a.description.clone().unwrap_or_default(),
                time(a.created_at),
            ]
        })
        .collect();
    print!(
        "{}",
        table::render(&["name", "key", "description", "created"], &rows)
    );
}

pub fn account(a: &Account, used_by: &[String], json: bool) {
    if json {
        let mut v = serde_json::to_value(a).expect("account serializes");
        v["dataflows"] = serde_json::json!(used_by);
        return print_json(&v);
    }
    println!("Name:         {}", a.name);
    println!("Description:  {}", a.description.as_deref().unwrap_or("-"));
    println!("Key:          {}", a.key_masked);
    println!(
        "API:          {}",
        a.base_url
            .as_deref()
            .unwrap_or(stripe_xdm::source::DEFAULT_BASE_URL)
    );
    let budget =
        |r: Option<f64>, default: &str| r.map_or(default.to_string(), |r| format!("{r}/s"));
    println!(
        "Budget:       {} overall, {} per endpoint",
        budget(a.rate, "Stripe's default for the key's mode"),
        budget(a.endpoint_rate, "25/s")
    );
    println!("Created:      {}", time(a.created_at));
    println!("Updated:      {}", time(a.updated_at));
    let used = if used_by.is_empty() {
        "-".to_string()
    } else {
        used_by.join(", ")
    };
    println!("Dataflows:    {used}");
}

fn dataset_summary(d: &Dataset) -> serde_json::Value {
    let title = d.schema().ok().and_then(|s| s.title().map(str::to_string));
    serde_json::json!({
        "name": d.name,
        "description": d.description,
        "schema_title": title,
        "profile_enabled": d.profile_enabled,
        "error_diagnostics": d.error_diagnostics,
        "partial_ingestion_percent": d.partial_ingestion_percent,
        "platform_schema_id": d.platform_schema_id,
        "platform_dataset_id": d.platform_dataset_id,
        "created_at": d.created_at,
        "updated_at": d.updated_at,
    })
}

pub fn datasets(list: &[Dataset], json: bool) {
    if json {
        let v: Vec<_> = list.iter().map(dataset_summary).collect();
        return print_json(&v);
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|d| {
            let s = dataset_summary(d);
            vec![
                d.name.clone(),
                s["schema_title"].as_str().unwrap_or("-").to_string(),
                yes_no(d.profile_enabled),
                yes_no(d.error_diagnostics),
                partial(d.partial_ingestion_percent),
            ]
        })
        .collect();
    print!(
        "{}",
        table::render(
            &[
                "name",
                "schema",
                "profile",
                "diagnostics",
                "partial ingestion"
            ],
            &rows
        )
    );
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.to_string()
}

fn partial(p: Option<f64>) -> String {
    p.map(|p| format!("on, threshold {p}%"))
        .unwrap_or_else(|| "off".into())
}

pub fn dataset(d: &Dataset, json: bool) {
    if json {
        return print_json(d);
    }
    let s = dataset_summary(d);
    println!("Name:               {}", d.name);
    println!(
        "Description:        {}",
        d.description.as_deref().unwrap_or("-")
    );
    println!(
        "Schema:             {}",
        s["schema_title"].as_str().unwrap_or("-")
    );
    println!("Profile:            {}", yes_no(d.profile_enabled));
    println!("Error diagnostics:  {}", yes_no(d.error_diagnostics));
    println!(
        "Partial ingestion:  {}",
        partial(d.partial_ingestion_percent)
    );
    match (&d.platform_dataset_id, &d.platform_schema_id) {
        (Some(ds), Some(schema)) => {
            println!("Platform dataset:   {ds}");
            println!("Platform schema:    {schema}");
        }
        _ => println!("Platform dataset:   - (`datasets push` makes it)"),
    }
    println!("Created:            {}", time(d.created_at));
}

fn schedule_text(f: &Dataflow) -> String {
    match f.schedule.interval {
        Some(i) => format!("every {i} {}", f.schedule.frequency),
        None => f.schedule.frequency.to_string(),
    }
}

fn alerts_text(f: &Dataflow) -> String {
    let mut v = Vec::new();
    if f.alerts.run_start {
        v.push("run-start");
    }
    if f.alerts.run_success {
        v.push("run-success");
    }
    if f.alerts.run_failure {
        v.push("run-failure");
    }
    if v.is_empty() {
        "-".into()
    } else {
        v.join(", ")
    }
}

pub fn dataflows(list: &[Dataflow], json: bool) {
    if json {
        return print_json(list);
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|f| {
            vec![
                f.name.clone(),
                f.account.clone(),
                f.resource.to_string(),
                f.dataset.clone(),
                schedule_text(f),
                if f.enabled { "enabled" } else { "disabled" }.to_string(),
                format!("v{}", f.mapping_version),
            ]
        })
        .collect();
    print!(
        "{}",
        table::render(
            &["name", "account", "resource", "dataset", "schedule", "state", "mapping"],
            &rows
        )
    );
}

pub fn dataflow(f: &Dataflow, json: bool) {
    if json {
        return print_json(f);
    }
    println!("Name:          {}", f.name);
    println!("Description:   {}", f.description.as_deref().unwrap_or("-"));
    println!("Account:       {}", f.account);
    println!("Resource:      {}", f.resource);
    println!("Dataset:       {}", f.dataset);
    println!("Mapping:       v{}", f.mapping_version);
    println!("Schedule:      {}", schedule_text(f));
    println!("Start time:    {}", time(f.schedule.start_time));
    println!("Backfill:      {}", yes_no(f.schedule.backfill()));
    println!("Alerts:        {}", alerts_text(f));
    if let Some(w) = &f.alert_webhook {
        println!("Alert webhook: {}", stripe_xdm::catalog::mask_url(w));
    }
    if let Some(c) = &f.alert_command {
        println!("Alert command: {c}");
    }
    match &f.upload {
        Some(u) => println!(
            "Upload:        Platform dataset {} at {}{}",
            u.dataset_id,
            u.base_url
                .as_deref()
                .unwrap_or(stripe_xdm::upload::DEFAULT_BASE_URL),
            u.credentials_file
                .as_deref()
                .map(|p| format!(" (credentials {p})"))
                .unwrap_or_default()
        ),
        None => println!("Upload:        off (batches stay local)"),
    }
    println!(
        "State:         {}",
        if f.enabled { "enabled" } else { "disabled" }
    );
    println!("Etag:          {}", f.etag);
}

/// The Platform's Review page.
pub fn review(f: &Dataflow, d: &Dataset, schema_title: Option<&str>, columns: Option<usize>) {
    println!("Review: {}", f.name);
    println!();
    println!("Connection");
    println!("  Source type:      Stripe");
    println!("  Account:          {}", f.account);
    println!("  Resource path:    {}", f.resource);
    println!(
        "  Columns:          {}",
        columns.map(|c| c.to_string()).unwrap_or_else(|| "-".into())
    );
    println!();
    println!("Assign dataset & map fields");
    println!("  Target dataset:   {}", d.name);
    println!("  Schema:           {}", schema_title.unwrap_or("-"));
    println!("  Mapping:          v{}", f.mapping_version);
    println!();
    println!("Scheduling");
    println!("  Active period:    from {}", time(f.schedule.start_time));
    println!("  Frequency:        {}", f.schedule.frequency);
    println!(
        "  Interval:         {}",
        f.schedule
            .interval
            .map(|i| i.to_string())
            .unwrap_or_else(|| "-".into())
    );
    println!("  Backfill:         {}", yes_no(f.schedule.backfill()));
}

pub fn print_runs(list: &[Run], json: bool) {
    if json {
        return print_json(&list.iter().map(Run::to_json).collect::<Vec<_>>());
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|r| {
            vec![
                r.id.to_string(),
                r.dataflow.clone(),
                r.status.to_string(),
                opt_time(r.started_at),
                window(r.window),
                r.counts.fetched.to_string(),
                r.ingested().to_string(),
                r.counts.rejected.to_string(),
                format!("{:.1}%", r.ingested_rate()),
                format!("v{}", r.mapping_version),
            ]
        })
        .collect();
    print!(
        "{}",
        table::render(
            &[
                ">id",
                "dataflow",
                "status",
                "started",
                "window",
                ">received",
                ">ingested",
                ">failed",
                ">rate",
                "mapping"
            ],
            &rows
        )
    );
}

/// One run: its counts, window, batch and upload.
pub fn run(r: &Run, json: bool) {
    if json {
        return print_json(&r.to_json());
    }
    println!("Run:              {}", r.id);
    println!("Dataflow:         {}", r.dataflow);
    println!("Status:           {}", r.status);
    println!("Scheduled:        {}", time(r.scheduled_time));
    println!("Started:          {}", opt_time(r.started_at));
    println!("Ended:            {}", opt_time(r.ended_at));
    println!("Window:           {}", window(r.window));
    if let Some(at) = r.progress_as_of {
        println!("Progress:         as of the checkpoint at {}", time(at));
    }
    println!("Records received: {}", r.counts.fetched);
    println!("Records staged:   {} (in the mirror)", r.counts.staged);
    if r.counts.events_read > 0 || r.counts.updated > 0 || r.counts.deleted > 0 {
        println!(
            "Objects:          {} created, {} updated, {} deleted ({} events read)",
            r.counts.created(),
            r.counts.updated,
            r.counts.deleted,
            r.counts.events_read
        );
    }
    println!("Records ingested: {}", r.ingested());
    if r.ingested() != r.counts.ingested {
        println!(
            "                  ({} passed validation, not ingested: the run failed)",
            r.counts.ingested
        );
    }
    println!("Records failed:   {}", r.counts.rejected);
    println!("Ingested rate:    {:.1}%", r.ingested_rate());
    println!(
        "Bytes in / out:   {} / {}",
        r.counts.bytes_in, r.counts.bytes_out
    );
    println!("Files:            {}", r.counts.files);
    println!("Batch:            {}", r.batch_id.as_deref().unwrap_or("-"));
    println!("Mapping:          v{}", r.mapping_version);
    if let Some(reason) = &r.failure_reason {
        println!("Failure:          {reason}");
    }
    for (code, n) in &r.counts.rejected_by_code {
        println!("Error {code}: {n}");
    }
    if r.status == RunStatus::Running {
        match r.owner_pid {
            Some(pid) if stripe_xdm::catalog::process_alive(pid) == Some(false) => println!(
                "Owner:            process {pid}, which has ended (interrupted: the next run resumes it)"
            ),
            Some(pid) => println!("Owner:            process {pid}"),
            None => println!("Owner:            none (interrupted: the next run resumes it)"),
        }
    }
    if let Some(u) = &r.upload {
        println!(
            "Platform batch:   {} ({}, {})",
            u.platform_batch_id.as_deref().unwrap_or("-"),
            u.status,
            time(u.uploaded_at)
        );
        for e in &u.errors {
            println!("Platform error:   {e}");
        }
    }
}

pub fn print_monitor(rows: &[DataflowStatus], json: bool) {
    if json {
        return print_json(rows);
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|m| {
            vec![
                m.dataflow.clone(),
                if m.enabled { "enabled" } else { "disabled" }.to_string(),
                m.last_run_status
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "-".into()),
                opt_time(m.last_run_time),
                opt_time(m.next_run_time),
                m.runs.to_string(),
                m.failed_runs.to_string(),
                m.received.to_string(),
                m.ingested.to_string(),
                m.failed.to_string(),
                format!("{:.1}%", m.ingested_rate),
            ]
        })
        .collect();
    print!(
        "{}",
        table::render(
            &[
                "dataflow",
                "state",
                "last run",
                "last run time",
                "next run",
                ">runs",
                ">failed runs",
                ">received",
                ">ingested",
                ">failed",
                ">rate"
            ],
            &cells
        )
    );
}

// ---------------------------------------------------------------------------------------------
// runs and monitor

/// `runs …`
#[derive(Debug, Args)]
pub struct RunsArgs {
    #[command(flatten)]
    home: HomeArgs,
    #[command(subcommand)]
    command: RunsCommand,
}

#[derive(Debug, Subcommand)]
enum RunsCommand {
    /// List runs, newest first.
    List(RunsListArgs),
    /// Show one run.
    Show(RunShowArgs),
}

#[derive(Debug, Args)]
struct RunsListArgs {
    /// Only this dataflow's runs.
    #[arg(long)]
    dataflow: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct RunShowArgs {
    /// Run id.
    id: i64,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// `stripe-xdm runs …`
pub async fn runs(a: RunsArgs) -> Result<u8> {
    let cat = a.home.open_created()?;
    match a.command {
        RunsCommand::List(x) => {
            if let Some(name) = &x.dataflow {
                cat.dataflow(name).map_err(cat_err)?;
            }
            let list = app::runs::list(&cat, x.dataflow.as_deref(), None)
                .map_err(super::dataflows::app_err)?;
            print_runs(&list, x.json);
        }
        RunsCommand::Show(x) => {
            let mut found = cat.run(x.id).map_err(cat_err)?;
            app::runs::with_checkpoint(&cat, &mut found);
            run(&found, x.json);
        }
    }
    Ok(0)
}

/// `monitor`
#[derive(Debug, Args)]
pub struct MonitorArgs {
    #[command(flatten)]
    home: HomeArgs,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// `stripe-xdm monitor`
pub async fn monitor(a: MonitorArgs) -> Result<u8> {
    let cat = a.home.open_created()?;
    let rows = app::runs::monitor(&cat, now()).map_err(super::dataflows::app_err)?;
    print_monitor(&rows, a.json);
    Ok(0)
}
