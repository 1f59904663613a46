//! One run of a dataflow, from the catalog to the committed batch and back: take (or resume)
//! the run, send the start alert, run the pipeline over the run's window with checkpoints in the
//! catalog, commit the run with its metrics (advancing the watermark), upload the batch to
//! Platform when the dataflow asks for it, and send the end alert. `dataflows run` and the
//! scheduler ([`serve`]) both go through [`run_dataflow`].

mod client;
pub mod serve;

pub use client::ApiOverrides;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use crate::alert::{self, AlertTargets, DeliveryOptions};
use crate::catalog::{AlertKind, Catalog, CatalogError, Dataflow, Run, RunStatus, RunUpload};
use crate::map::Mapping;
use crate::pipeline::{
    self, Changes, CheckpointStore, PipelineError, ProgressSink, RunConfig, RunReport,
};
use crate::source::{StripeClient, Window};
use crate::upload::{self, PlatformCredentials, UploadConfig, UploadOptions, UploadReport};
use crate::Resource;

/// Seconds kept behind the scheduled time at the end of a run's window, for Stripe's
/// late-visible objects.
pub const SAFETY_LAG_SECS: i64 = 60;

/// Seconds before the previous window's end that a run reads again, for objects that became
/// visible in Stripe's list after the previous run read that span (de-duplicated by id).
pub const REREAD_SECS: i64 = 300;

/// How runs are made (shared by every run of a process).
#[derive(Clone)]
pub struct RunnerConfig {
    /// The catalog's home folder (each run opens its own connection).
    pub home: PathBuf,
    /// Stripe (or simulator) base URL for every run; `None`: each account's own (the one it was
    /// added with), else Stripe's.
    pub api_base_url: Option<String>,
    /// Request budget per second (`None`: Stripe's default for the key's mode).
    pub requests_per_sec: Option<f64>,
    /// Per-endpoint request budget (`None`: Stripe's 25/s).
    pub endpoint_requests_per_sec: Option<f64>,
    /// Where batches go (`<out>/<dataset>/batches/<id>`).
    pub out_dir: PathBuf,
    /// See [`SAFETY_LAG_SECS`].
    pub safety_lag_secs: i64,
    /// Alert delivery retries and timeouts.
    pub alert_options: DeliveryOptions,
    /// Platform credentials for uploads (`None`: each dataflow's file, else the environment).
    pub platform_credentials: Option<PlatformCredentials>,
    /// Seconds between Platform batch status polls.
    pub upload_poll_interval: Duration,
    /// `created` windows walked at once.
    pub concurrency: usize,
    /// Minimum time between checkpoints.
    pub checkpoint_every: Duration,
    /// Progress receiver for the pipeline.
    pub progress: Option<Arc<dyn ProgressSink>>,
    /// Records per processing chunk (a checkpoint covers whole chunks).
    pub chunk_records: usize,
    /// See [`REREAD_SECS`] (0 turns the re-read off).
    pub reread_secs: i64,
}

impl std::fmt::Debug for RunnerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunnerConfig")
            .field("home", &self.home)
            .field("api_base_url", &self.api_base_url)
            .field("out_dir", &self.out_dir)
            .finish_non_exhaustive()
    }
}

impl RunnerConfig {
    /// Defaults for `home`: Stripe's API, batches under `<home>/data`, 60 s safety lag,
    /// 4 windows at once, a checkpoint at most every 10 s.
    pub fn new(home: impl Into<PathBuf>) -> Self {
        let home = home.into();
        RunnerConfig {
            out_dir: home.join("data"),
            home,
            api_base_url: None,
            requests_per_sec: None,
            endpoint_requests_per_sec: None,
            safety_lag_secs: SAFETY_LAG_SECS,
            alert_options: DeliveryOptions::default(),
            platform_credentials: None,
            upload_poll_interval: Duration::from_secs(10),
            concurrency: 4,
            checkpoint_every: Duration::from_secs(10),
            progress: None,
            chunk_records: pipeline::DEFAULT_CHUNK_RECORDS,
            reread_secs: REREAD_SECS,
        }
    }
}

/// Why a run could not be made or recorded (a run that fails on data is not an error: it is a
/// `failed` run).
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    /// The catalog refused or failed.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// The dataflow's configuration cannot run (bad resource, key, mapping, schema).
    #[error("dataflow {dataflow:?}: {reason}")]
    Config {
        /// The dataflow.
        dataflow: String,
        /// What is wrong.
        reason: String,
    },
    /// The run was interrupted before it committed; it stays resumable.
    #[error("dataflow {dataflow:?}: run {run_id} was interrupted before it committed; the next run resumes it from its last checkpoint")]
    Interrupted {
        /// The dataflow.
        dataflow: String,
        /// The run.
        run_id: i64,
    },
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct RunResult {
    /// The run as recorded at its end.
    pub run: Run,
    /// Whether it resumed an interrupted run.
    pub resumed: bool,
    /// The pipeline's report (`None` when the pipeline failed before committing).
    pub report: Option<RunReport>,
    /// The pipeline's error, when it failed.
    pub error: Option<String>,
    /// Whether the error is a configuration / credentials problem.
    pub usage_error: bool,
    /// The upload, when the dataflow uploads.
    pub upload: Option<UploadReport>,
}

/// Checkpoints of one run in the catalog.
struct CatalogCheckpoints {
    catalog: Mutex<Catalog>,
    run_id: i64,
    batch_id: String,
}

impl CheckpointStore for CatalogCheckpoints {
    fn load(&self) -> Result<Option<String>, String> {
        let cat = self.catalog.lock().map_err(|e| e.to_string())?;
        Ok(cat
            .checkpoint(self.run_id)
            .map_err(|e| e.to_string())?
            .filter(|c| c.batch_id == self.batch_id)
            .map(|c| c.state))
    }

    fn save(&self, state: &str) -> Result<(), String> {
        let mut cat = self.catalog.lock().map_err(|e| e.to_string())?;
        cat.save_checkpoint(self.run_id, &self.batch_id, state)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// The batch id of a run: stable across resumes, so a resumed run finishes the same batch.
pub fn batch_id_for(run: &Run) -> String {
    format!("run-{:06}-{}", run.id, run.scheduled_time)
}

fn targets(flow: &Dataflow) -> AlertTargets {
    AlertTargets {
        webhook: flow.alert_webhook.clone(),
        command: flow.alert_command.clone(),
    }
}

/// Sends `kind` for `run` if the dataflow subscribed to it and has a target; records each
/// delivery in the catalog.
pub async fn send_alert(
    cat: &mut Catalog,
    flow: &Dataflow,
    run: &Run,
    kind: AlertKind,
    opts: &DeliveryOptions,
) -> Result<(), CatalogError> {
    let targets = targets(flow);
    if !alert::enabled(&flow.alerts, kind) || targets.is_empty() {
        return Ok(());
    }
    let payload = alert::notification(kind, flow, run);
    for d in alert::deliver(&targets, kind, &payload, run.id, opts).await {
        if !d.ok {
            tracing::warn!(run = run.id, target = %d.target, error = d.error.as_deref().unwrap_or(""), "alert not delivered");
        }
        cat.record_alert(&d)?;
    }
    Ok(())
}

fn config_err(flow: &str, reason: impl std::fmt::Display) -> RunnerError {
    RunnerError::Config {
        dataflow: flow.to_string(),
        reason: reason.to_string(),
    }
}

/// Dataflow `name`, its resource, its dataset and the dataset's XDM schema.
fn load_flow(
    cat: &Catalog,
    name: &str,
) -> Result<
    (
        Dataflow,
        Resource,
        crate::catalog::Dataset,
        crate::xdm::XdmSchema,
    ),
    RunnerError,
> {
    let flow = cat.dataflow(name)?;
    let resource = flow.resource;
    let dataset = cat.dataset(&flow.dataset)?;
    let schema = dataset.schema()?;
    Ok((flow, resource, dataset, schema))
}

/// Applies dataflow `name`'s current mapping version to every object in its mirror and commits
/// the result as new batch(es) of its dataset, with no Stripe request (`dataflows remap`).
pub async fn remap_dataflow(cfg: &RunnerConfig, name: &str) -> Result<RunReport, RunnerError> {
    let cat = Catalog::open(&cfg.home)?;
    let (flow, resource, dataset, schema) = load_flow(&cat, name)?;
    let (window, batches) = ingested_span(&cat, &flow.name)?;
    let mapping = cat.mapping(&flow.name, None)?;
    let connected = connected_account(&flow, &cat.account(&flow.account)?);
    let run_cfg = RunConfig {
        resource,
        mapping: Mapping {
            sql: mapping.sql,
            origin: format!(
                "dataflow {:?} mapping v{} (remap)",
                flow.name, mapping.version
            ),
        },
        schema,
        out_dir: cfg.out_dir.clone(),
        dataset: flow.dataset.clone(),
        window,
        error_diagnostics: dataset.error_diagnostics,
        partial_ingestion: dataset.partial_ingestion_percent,
        chunk_records: cfg.chunk_records.max(1),
        sink: Default::default(),
        batch_id: Some(format!("remap-{}", crate::sink::new_batch_id())),
        control: Default::default(),
        mirror: Some(connected_mirror_dir(
            &cfg.home,
            &flow.account,
            connected.as_deref(),
            resource,
        )),
        compaction: Default::default(),
        changes: None,
        stripe_account: connected,
        remap_batches: batches,
    };
    pipeline::remap(run_cfg)
        .await
        .map_err(|e| config_err(name, e))
}

/// What dataflow `name` ingested, as a remap selects it from the mirror: the `created` span of
/// its committed runs (from the first one's lower bound, none for a backfill, to the last one's
/// upper bound) and the batches they committed, whose staged rows count whatever their
/// `created` (objects change capture took after they were first read). The mirror it shares
/// with other dataflows of the account may hold more (history a dataflow without backfill never
/// read, objects created after its last run): a remap reproduces the dataflow's own rows.
fn ingested_span(cat: &Catalog, name: &str) -> Result<(Window, Vec<String>), RunnerError> {
    let committed: Vec<_> = cat
        .list_runs(Some(name), None)?
        .into_iter()
        .filter(|r| r.status == crate::catalog::RunStatus::Success)
        .collect();
    let batches = committed
        .iter()
        .filter_map(|r| r.batch_id.clone())
        .collect();
    let runs: Vec<_> = committed.iter().filter_map(|r| r.window).collect();
    let (Some(first), Some(last)) = (
        runs.iter().map(|w| w.gte).min(),
        runs.iter().map(|w| w.lt).max(),
    ) else {
        return Err(RunnerError::Config {
            dataflow: name.to_string(),
            reason: "has no committed run: nothing was ingested to remap (run it first: stripe-xdm dataflows run NAME)".into(),
        });
    };
    let window = Window {
        gte: first,
        lt: Some(last),
    };
    Ok((window, batches))
}

/// Runs dataflow `name` for `scheduled_time` (or resumes its interrupted run), end to end.
/// `cancel` turning true stops the pipeline at its next safe point and leaves the run resumable
/// ([`RunnerError::Interrupted`]).
pub async fn run_dataflow(
    cfg: &RunnerConfig,
    name: &str,
    scheduled_time: i64,
    cancel: Option<watch::Receiver<bool>>,
) -> Result<RunResult, RunnerError> {
    let mut cat = Catalog::open(&cfg.home)?;
    let (flow, resource, dataset, schema) = load_flow(&cat, name)?;
    let key = cat.account_key(&flow.account)?;
    let account = cat.account(&flow.account)?;
    // The process's settings, else the ones the account was added with; the connected account
    // the dataflow was created for.
    let connected = connected_account(&flow, &account);
    let overrides = ApiOverrides {
        base_url: cfg.api_base_url.clone(),
        rate: cfg.requests_per_sec,
        endpoint_rate: cfg.endpoint_requests_per_sec,
        stripe_account: connected.clone(),
        ..ApiOverrides::default()
    };
    let client = StripeClient::new(overrides.client_config(key, Some(&account)))
        .map_err(|e| config_err(name, e))?;

    let (run, resumed) =
        cat.begin_or_resume_run(name, scheduled_time, cfg.safety_lag_secs, now())?;
    if !resumed {
        send_alert(
            &mut cat,
            &flow,
            &run,
            AlertKind::RunStart,
            &cfg.alert_options,
        )
        .await?;
    }
    let mapping = match cat.mapping(&flow.name, Some(run.mapping_version)) {
        Ok(m) => m,
        Err(e) => return fail(&mut cat, cfg, &flow, run.id, resumed, e.to_string(), true).await,
    };
    let w = run.window.expect("a started run has a window");
    let batch_id = batch_id_for(&run);
    // Runs after the first read the end of the previous window again (late-visible objects),
    // dropping what the previous run committed.
    let reread = cfg.reread_secs.max(0);
    let watermark = cat.watermark(name)?;
    let changes = change_capture(resource, watermark, w.lt, now());
    let (fetch_gte, known) = match w.gte {
        _ if matches!(changes, Some(Changes::Reread { .. })) => {
            tracing::warn!(
                dataflow = name,
                cursor = watermark.unwrap_or_default(),
                "the event cursor is older than Stripe's 30-day event horizon: re-reading the whole {} list (objects it no longer returns are marked deleted)",
                resource.path()
            );
            (None, Default::default())
        }
        Some(gte) if reread > 0 && watermark == Some(gte) => {
            (Some(gte - reread), cat.trailing_ids(name)?)
        }
        gte => (gte, Default::default()),
    };
    let dedup = (reread > 0).then(|| pipeline::Dedup {
        known: Arc::new(known),
        trailing_from: Some(w.lt - reread),
        changed: Default::default(),
    });
    let checkpoints: Arc<dyn CheckpointStore> = Arc::new(CatalogCheckpoints {
        catalog: Mutex::new(Catalog::open(&cfg.home)?),
        run_id: run.id,
        batch_id: batch_id.clone(),
    });
    let run_cfg = RunConfig {
        resource,
        mapping: Mapping {
            sql: mapping.sql,
            origin: format!("dataflow {:?} mapping v{}", flow.name, mapping.version),
        },
        schema,
        out_dir: cfg.out_dir.clone(),
        dataset: flow.dataset.clone(),
        window: Window {
            gte: fetch_gte,
            lt: Some(w.lt),
        },
        error_diagnostics: dataset.error_diagnostics,
        partial_ingestion: dataset.partial_ingestion_percent,
        chunk_records: cfg.chunk_records.max(1),
        sink: Default::default(),
        batch_id: Some(batch_id),
        control: pipeline::RunControl {
            cancel,
            checkpoints: Some(checkpoints),
            checkpoint_every: cfg.checkpoint_every,
            concurrency: cfg.concurrency.max(1),
            progress: cfg.progress.clone(),
            dedup,
        },
        mirror: Some(connected_mirror_dir(
            &cfg.home,
            &flow.account,
            connected.as_deref(),
            resource,
        )),
        compaction: Default::default(),
        changes,
        stripe_account: connected.clone(),
        remap_batches: Vec::new(),
    };
    match pipeline::run(&client, run_cfg).await {
        Ok(report) => {
            let done = cat.finish_run(run.id, &outcome_of(&report), now())?;
            finish(&mut cat, cfg, &flow, done, resumed, Some(report), None).await
        }
        Err(PipelineError::Cancelled) => {
            cat.release_run(run.id)?;
            Err(RunnerError::Interrupted {
                dataflow: name.to_string(),
                run_id: run.id,
            })
        }
        Err(e) => {
            let usage = e.is_usage();
            fail(&mut cat, cfg, &flow, run.id, resumed, e.to_string(), usage).await
        }
    }
}

/// How a run of a dataflow on `resource` captures changes: none on its first run (no cursor
/// yet) or for balance transactions (immutable); events since the cursor (the previous run's
/// window end) up to this run's window end `upto`; or a full re-read when the cursor is past
/// Stripe's event horizon ([`pipeline::EVENT_HORIZON_SECS`]).
pub fn change_capture(
    resource: Resource,
    cursor: Option<i64>,
    upto: i64,
    now: i64,
) -> Option<Changes> {
    let since = cursor?;
    if resource.event_types().is_empty() {
        return None;
    }
    if now - since > pipeline::EVENT_HORIZON_SECS {
        return Some(Changes::Reread { at: now });
    }
    Some(Changes::Events {
        since,
        upto: upto.min(now - pipeline::EVENT_LAG_SECS),
    })
}

/// Records the run as failed with `reason`, then sends the end alert.
async fn fail(
    cat: &mut Catalog,
    cfg: &RunnerConfig,
    flow: &Dataflow,
    run_id: i64,
    resumed: bool,
    reason: String,
    usage: bool,
) -> Result<RunResult, RunnerError> {
    let failed = cat.fail_run(run_id, &reason, now())?;
    finish(cat, cfg, flow, failed, resumed, None, Some((reason, usage))).await
}

/// Uploads a successful run's batch when the dataflow asks for it, then sends the end alert.
async fn finish(
    cat: &mut Catalog,
    cfg: &RunnerConfig,
    flow: &Dataflow,
    mut run: Run,
    resumed: bool,
    report: Option<RunReport>,
    error: Option<(String, bool)>,
) -> Result<RunResult, RunnerError> {
    let mut upload_report = None;
    if let (Some(target), Some(rep), RunStatus::Success) = (&flow.upload, &report, run.status) {
        let record = if rep.counts.files == 0 {
            // Nothing new in the window: Platform refuses a batch without files.
            RunUpload {
                platform_batch_id: None,
                status: UPLOAD_SKIPPED.into(),
                errors: vec!["no records in the window: nothing to ingest".into()],
                uploaded_at: now(),
            }
        } else {
            let (record, up) = upload_run(cfg, target, rep).await;
            upload_report = up;
            record
        };
        run = cat.record_upload(run.id, &record)?;
    }
    let mut kind = alert::end_kind(&run);
    if run.upload.as_ref().is_some_and(|u| !upload_ok(u)) {
        kind = AlertKind::RunFailure;
    }
    send_alert(cat, flow, &run, kind, &cfg.alert_options).await?;
    let (error, usage_error) = match error {
        Some((e, usage)) => (Some(e), usage),
        None => (None, false),
    };
    Ok(RunResult {
        run,
        resumed,
        report,
        error,
        usage_error,
        upload: upload_report,
    })
}

/// What the catalog records of a pipeline report: `success` advances the dataflow's watermark
/// to the run's window end (in the same transaction); `failed` leaves it.
fn outcome_of(r: &RunReport) -> crate::catalog::RunOutcome {
    crate::catalog::RunOutcome {
        success: r.status == crate::sink::BatchStatus::Success,
        failure_reason: r.failure_reason.clone(),
        counts: r.counts.clone(),
        batch_id: Some(r.batch_id.clone()),
        trailing: r.trailing.clone(),
    }
}

/// The mirror of one account's resource under the home folder:
/// `<home>/mirror/<account>/<resource>`.
pub fn mirror_dir(home: &std::path::Path, account: &str, resource: crate::Resource) -> PathBuf {
    mirror_root(home, account, None).join(resource.path())
}

/// The connected account a dataflow reads through: its own, else its account's default, else
/// none (the key's own account).
pub fn connected_account(flow: &Dataflow, account: &crate::catalog::Account) -> Option<String> {
    flow.stripe_account
        .clone()
        .or_else(|| account.stripe_account.clone())
}

/// The mirror of the records read through connected account `connected` (`None`: the key's
/// own account, [`mirror_dir`]): `<home>/mirror/<account>/<acct_…>/<resource>`.
pub fn connected_mirror_dir(
    home: &std::path::Path,
    account: &str,
    connected: Option<&str>,
    resource: crate::Resource,
) -> PathBuf {
    mirror_root(home, account, connected).join(resource.path())
}

/// The folder holding the mirrors of every resource read through `connected` (`None`: the
/// key's own account): `<home>/mirror/<account>[/<acct_…>]`.
pub fn mirror_root(home: &std::path::Path, account: &str, connected: Option<&str>) -> PathBuf {
    let root = home.join("mirror").join(account);
    match connected {
        Some(acct) => root.join(acct),
        None => root,
    }
}

/// Uploads a committed batch, and the further batches it was split into; every outcome
/// (including a local error) becomes a [`RunUpload`] (the first failing batch's, else the
/// first batch's).
async fn upload_run(
    cfg: &RunnerConfig,
    target: &crate::catalog::UploadTarget,
    report: &RunReport,
) -> (RunUpload, Option<UploadReport>) {
    let (first, up) = upload_one(cfg, target, &report.batch_dir).await;
    if !upload_ok(&first) {
        return (first, up);
    }
    for part in &report.parts {
        let dir = report
            .batch_dir
            .parent()
            .map(|p| p.join(part))
            .unwrap_or_else(|| PathBuf::from(part));
        let (record, part_up) = upload_one(cfg, target, &dir).await;
        if !upload_ok(&record) {
            let mut record = record;
            record
                .errors
                .insert(0, format!("batch {part} (part of the run's output)"));
            return (record, part_up);
        }
    }
    (first, up)
}

/// Uploads one committed batch folder.
async fn upload_one(
    cfg: &RunnerConfig,
    target: &crate::catalog::UploadTarget,
    batch_dir: &std::path::Path,
) -> (RunUpload, Option<UploadReport>) {
    let failed = |reason: String| RunUpload {
        platform_batch_id: None,
        status: "not uploaded".into(),
        errors: vec![reason],
        uploaded_at: now(),
    };
    let creds = match (&cfg.platform_credentials, &target.credentials_file) {
        (Some(c), _) => Ok(c.clone()),
        (None, Some(path)) => PlatformCredentials::from_file(std::path::Path::new(path)),
        (None, None) => PlatformCredentials::from_env(),
    };
    let creds = match creds {
        Ok(c) => c,
        Err(e) => return (failed(e.to_string()), None),
    };
    let mut ucfg = UploadConfig::new(target.dataset_id.clone(), creds);
    if let Some(url) = &target.base_url {
        ucfg.base_url = url.trim_end_matches('/').to_string();
    }
    ucfg.poll_interval = cfg.upload_poll_interval;
    match upload::upload_batch(&ucfg, batch_dir, UploadOptions::default()).await {
        Ok(up) => (
            RunUpload {
                platform_batch_id: up.platform_batch_id.clone(),
                status: up.status.clone().unwrap_or_else(|| "unknown".into()),
                errors: up
                    .errors
                    .iter()
                    .map(|e| {
                        let mut s = format!(
                            "{}: {}",
                            e.code.as_deref().unwrap_or("?"),
                            e.description.as_deref().unwrap_or("")
                        );
                        if let Some(n) = e.record_count {
                            s.push_str(&format!(" ({n} records)"));
                        }
                        s
                    })
                    .collect(),
                uploaded_at: now(),
            },
            Some(up),
        ),
        Err(e) => (failed(e.to_string()), None),
    }
}

/// The upload status of a run whose window held no records (nothing was sent).
pub const UPLOAD_SKIPPED: &str = "skipped";

/// True when a run's upload ended well: Platform ingested the batch, or there was nothing to send.
pub fn upload_ok(u: &RunUpload) -> bool {
    upload::is_success(&u.status) || u.status == UPLOAD_SKIPPED
}

/// Unix seconds now.
pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}
