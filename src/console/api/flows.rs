//! The console's JSON API for dataflows, monitoring and rejected rows.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::{
    blank, mapping_of, own_thread, resource, tenant_for, to_json, ApiError, ApiResult,
    DatasetChoice, ScheduleForm, Shared,
};
use crate::app;
use crate::catalog::Alerts;

// -------------------------------------------------------------------------------- dataflows

pub(crate) async fn dataflows(State(c): Shared) -> ApiResult {
    to_json(c.catalog()?.list_dataflows()?)
}

pub(crate) async fn dataflow(State(c): Shared, Path(name): Path<String>) -> ApiResult {
    to_json(c.catalog()?.dataflow(&name)?)
}

/// Alerts as checkboxes.
#[derive(Deserialize, Default)]
pub(crate) struct AlertsForm {
    #[serde(default)]
    run_start: bool,
    #[serde(default)]
    run_success: bool,
    #[serde(default)]
    run_failure: bool,
}

impl From<AlertsForm> for Alerts {
    fn from(a: AlertsForm) -> Alerts {
        Alerts {
            run_start: a.run_start,
            run_success: a.run_success,
            run_failure: a.run_failure,
        }
    }
}

/// The wizard's review: everything the steps collected.
#[derive(Deserialize)]
pub(crate) struct CreateDataflow {
    name: Option<String>,
    description: Option<String>,
    account: String,
    resource: String,
    #[serde(flatten)]
    dataset: DatasetChoice,
    sql: Option<String>,
    /// Replaces `${tenant}` in `sql` (default: the dataset schema's tenant, else `tenant`).
    tenant: Option<String>,
    #[serde(default)]
    alerts: AlertsForm,
    #[serde(flatten)]
    schedule: ScheduleForm,
    alert_webhook: Option<String>,
}

pub(crate) async fn create_dataflow(State(c): Shared, Json(d): Json<CreateDataflow>) -> ApiResult {
    own_thread(move || async move {
        let r = resource(&d.resource)?;
        let now = crate::runner::now();
        let name = blank(d.name);
        let label = name
            .clone()
            .unwrap_or_else(|| app::dataflows::default_name(r));
        let schedule = d.schedule.schedule(&label, now)?;
        let mut cat = c.catalog()?;
        let new_dataset = d.dataset.new_dataset.as_ref().map(|f| f.dataset(r));
        let dataset = match (&new_dataset, &d.dataset.dataset) {
            (Some(n), _) => n.name.clone(),
            (None, Some(name)) => name.clone(),
            (None, None) => {
                return Err(ApiError::bad(
                    "choose a dataset: an existing one or a new one",
                ))
            }
        };
        let tenant = tenant_for(&cat, d.tenant.as_deref(), &dataset)?;
        let made = app::create_dataflows(
            &mut cat,
            app::NewDataflowRequest {
                name,
                description: blank(d.description),
                account: d.account,
                resource: r,
                dataset,
                new_dataset,
                mapping: mapping_of(d.sql, r, &tenant),
                alerts: d.alerts.into(),
                schedule,
                targets: app::Targets {
                    alert_webhook: blank(d.alert_webhook),
                    ..app::Targets::default()
                },
                stripe_accounts: Vec::new(),
                all_connected_accounts: false,
            },
            now,
        )
        .await?;
        to_json(made)
    })
    .await
}

/// Changes from the dataflows page; `etag` is the version the user saw.
#[derive(Deserialize)]
pub(crate) struct UpdateDataflow {
    etag: i64,
    rename: Option<String>,
    description: Option<String>,
    frequency: Option<String>,
    interval: Option<u32>,
    start_time: Option<String>,
    sql: Option<String>,
    /// Replaces `${tenant}` in `sql` (default: the dataset schema's tenant, else `tenant`).
    tenant: Option<String>,
    alerts: Option<AlertsForm>,
}

pub(crate) async fn update_dataflow(
    State(c): Shared,
    Path(name): Path<String>,
    Json(u): Json<UpdateDataflow>,
) -> ApiResult {
    own_thread(move || async move {
        let mut cat = c.catalog()?;
        let current = cat.dataflow(&name)?;
        let r = current.resource;
        let tenant = tenant_for(&cat, u.tenant.as_deref(), &current.dataset)?;
        let mut changes = app::DataflowChanges {
            rename: blank(u.rename),
            description: u.description.map(|d| blank(Some(d))),
            interval: u.interval,
            mapping: u
                .sql
                .filter(|s| !s.trim().is_empty())
                .map(|sql| mapping_of(Some(sql), r, &tenant)),
            alerts: u.alerts.map(Alerts::from),
            ..Default::default()
        };
        if let Some(f) = blank(u.frequency) {
            changes.frequency = Some(
                f.parse()
                    .map_err(|e| ApiError::bad(format!("dataflow {name:?}: {e}")))?,
            );
        }
        if let Some(t) = blank(u.start_time) {
            changes.start_time = Some(app::parse_time("start time", &t)?);
        }
        let updated =
            app::update_dataflow(&mut cat, &name, Some(u.etag), changes, crate::runner::now())
                .await?;
        to_json(updated.dataflow)
    })
    .await
}

#[derive(Deserialize)]
pub(crate) struct DeleteQuery {
    #[serde(default)]
    cancel: bool,
}

pub(crate) async fn delete_dataflow(
    State(c): Shared,
    Path(name): Path<String>,
    Query(q): Query<DeleteQuery>,
) -> ApiResult {
    let deleted = c.catalog()?.delete_dataflow(&name, q.cancel)?;
    to_json(json!({ "deleted": deleted.name }))
}

pub(crate) async fn enable_dataflow(State(c): Shared, Path(name): Path<String>) -> ApiResult {
    to_json(c.catalog()?.set_dataflow_enabled(&name, true)?)
}

pub(crate) async fn disable_dataflow(State(c): Shared, Path(name): Path<String>) -> ApiResult {
    to_json(c.catalog()?.set_dataflow_enabled(&name, false)?)
}

/// Starts a run of the dataflow now, in the background; its progress is at `/api/live`.
pub(crate) async fn run_dataflow(
    State(c): Shared,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let cat = c.catalog()?;
    let flow = cat.dataflow(&name)?;
    let now = crate::runner::now();
    if !c.live.begin(&flow.name, now) {
        return Err(ApiError {
            status: StatusCode::CONFLICT,
            message: format!("dataflow {name:?} is already running from this console"),
        });
    }
    let mut cfg = c.runner.clone();
    cfg.progress = Some(c.live.sink(&flow.name));
    let live = c.live.clone();
    let flow_name = flow.name.clone();
    tokio::spawn(async move {
        match crate::runner::run_dataflow(&cfg, &flow_name, now, None).await {
            Ok(r) => {
                let outcome = match &r.error {
                    Some(e) => format!("{}: {e}", r.run.status.as_str()),
                    None => r.run.status.as_str().to_string(),
                };
                live.end(&flow_name, Some(&r.run), outcome);
            }
            Err(e) => live.end(&flow_name, None, format!("could not run: {e}")),
        }
    });
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "started": flow.name, "progress": "/api/live" })),
    )
        .into_response())
}

// ------------------------------------------------------------------------------- monitoring

#[derive(Deserialize)]
pub(crate) struct RunsQuery {
    dataflow: Option<String>,
    limit: Option<usize>,
}

pub(crate) async fn runs(State(c): Shared, Query(q): Query<RunsQuery>) -> ApiResult {
    let runs = app::runs::list(
        &c.catalog()?,
        q.dataflow.as_deref(),
        Some(q.limit.unwrap_or(100)),
    )?;
    to_json(
        runs.iter()
            .map(|r| {
                json!({
                    "id": r.id,
                    "dataflow": r.dataflow,
                    "status": r.status.as_str(),
                    "scheduled_time": r.scheduled_time,
                    "received": r.counts.fetched,
                    "ingested": r.ingested(),
                    "failed": r.counts.rejected,
                    "records_per_sec": crate::console::pages::rate_of(r),
                    "ingested_rate": r.ingested_rate(),
                    "errors": r.counts.rejected_by_code,
                    "batch_id": r.batch_id,
                })
            })
            .collect::<Vec<_>>(),
    )
}

/// Runs in progress: the console's own (live), and those of other processes (`serve`,
/// `backfill`, `dataflows run`) as of their last checkpoint.
pub(crate) async fn live(State(c): Shared) -> ApiResult {
    let mut live = c.live.snapshot();
    let cat = c.catalog()?;
    let now = crate::runner::now();
    for r in app::runs::list(&cat, None, Some(100))? {
        let here = live.iter().any(|l| l.dataflow == r.dataflow && !l.done);
        if r.status == crate::catalog::RunStatus::Running && !here {
            live.push(crate::console::live::LiveRun::elsewhere(&r, now));
        }
    }
    to_json(live)
}

// ------------------------------------------------------------------------------ rejected rows

#[derive(Deserialize)]
pub(crate) struct FlowQuery {
    dataflow: String,
}

pub(crate) async fn rejected_summary(State(c): Shared, Query(q): Query<FlowQuery>) -> ApiResult {
    let cat = c.catalog()?;
    to_json(app::rejected::summary(
        &cat,
        &c.runner.out_dir,
        &q.dataflow,
        3,
    )?)
}

#[derive(Deserialize)]
pub(crate) struct SqlRequest {
    dataflow: String,
    sql: String,
    /// Replaces `${tenant}` in a replay's mapping (default: the dataset schema's tenant, else `tenant`).
    tenant: Option<String>,
}

/// The most rows a console query returns.
const MAX_QUERY_ROWS: usize = 1000;

pub(crate) async fn rejected_query(State(c): Shared, Json(q): Json<SqlRequest>) -> ApiResult {
    own_thread(move || async move {
        let cat = c.catalog()?;
        let batches = app::rejected::query(&cat, &c.runner.out_dir, &q.dataflow, &q.sql).await?;
        let columns: Vec<String> = batches
            .first()
            .map(|b| b.schema().fields().iter().map(|f| f.name().clone()).collect())
            .unwrap_or_default();
        let mut rows = Vec::new();
        let mut total = 0;
        for b in &batches {
            total += b.num_rows();
            if rows.len() < MAX_QUERY_ROWS {
                let take = (MAX_QUERY_ROWS - rows.len()).min(b.num_rows());
                rows.extend(app::preview::batch_rows(&b.slice(0, take))?);
            }
        }
        to_json(json!({ "columns": columns, "rows": rows, "total": total, "truncated": total > rows.len() }))
    })
    .await
}

pub(crate) async fn rejected_replay(State(c): Shared, Json(q): Json<SqlRequest>) -> ApiResult {
    own_thread(move || async move {
        let cat = c.catalog()?;
        let flow = cat.dataflow(&q.dataflow)?;
        let r = flow.resource;
        let tenant = tenant_for(&cat, q.tenant.as_deref(), &flow.dataset)?;
        let report = app::rejected::replay_latest(
            &cat,
            &c.runner.out_dir,
            &q.dataflow,
            mapping_of(Some(q.sql), r, &tenant),
        )
        .await?;
        to_json(report)
    })
    .await
}
