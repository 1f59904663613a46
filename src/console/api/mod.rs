//! The console's JSON API: thin handlers over [`crate::app`] and the catalog. Accounts,
//! select data, datasets, mapping and schedule checks here; dataflows, monitoring and rejected
//! rows in [`flows`].

mod flows;

pub(crate) use flows::*;

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::Console;
use crate::app::{self, ApiOverrides, AppError};
use crate::catalog::{CatalogError, NewDataset};
use crate::map::{substitute_tenant, Mapping, DEFAULT_TENANT};
use crate::schedule::{Frequency, Schedule};
use crate::{Resource, Secret};

/// An error as the API answers it: a status and `{"error": message}`.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn bad(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }
}

impl From<CatalogError> for ApiError {
    fn from(e: CatalogError) -> Self {
        let status = match &e {
            CatalogError::NotFound { .. } => StatusCode::NOT_FOUND,
            CatalogError::Exists { .. }
            | CatalogError::RunInProgress { .. }
            | CatalogError::AccountInUse { .. }
            | CatalogError::DatasetInUse { .. } => StatusCode::CONFLICT,
            CatalogError::Conflict { .. } => StatusCode::PRECONDITION_FAILED,
            CatalogError::Open { .. }
            | CatalogError::Sql { .. }
            | CatalogError::Io { .. }
            | CatalogError::Migration { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError {
            status,
            message: e.to_string(),
        }
    }
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        match e {
            AppError::Catalog(c) => c.into(),
            AppError::Stripe { .. } if !e.is_usage() => ApiError {
                status: StatusCode::BAD_GATEWAY,
                message: e.to_string(),
            },
            e => ApiError::bad(e.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

type ApiResult = Result<Json<Value>, ApiError>;
/// Runs a handler's body on a blocking thread of its own: the catalog's SQLite connection is
/// not `Sync`, so a future holding it across an `.await` cannot run on the server's workers.
async fn own_thread<T, Fut>(make: impl FnOnce() -> Fut + Send + 'static) -> Result<T, ApiError>
where
    Fut: std::future::Future<Output = Result<T, ApiError>>,
    T: Send + 'static,
{
    let rt = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || rt.block_on(make()))
        .await
        .map_err(|e| ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: format!("the request's task failed: {e}"),
        })?
}

type Shared = State<Arc<Console>>;

fn to_json(v: impl serde::Serialize) -> ApiResult {
    serde_json::to_value(v)
        .map(Json)
        .map_err(|e| ApiError::bad(e.to_string()))
}

fn resource(name: &str) -> Result<Resource, ApiError> {
    name.parse()
        .map_err(|e| ApiError::bad(format!("resource {name:?}: {e}")))
}

// ------------------------------------------------------------------------------- accounts

pub(crate) async fn accounts(State(c): Shared) -> ApiResult {
    to_json(c.catalog()?.list_accounts()?)
}

/// An account to add (the key never comes back).
#[derive(Deserialize)]
pub(crate) struct AddAccount {
    name: String,
    key: String,
    description: Option<String>,
    base_url: Option<String>,
    stripe_account: Option<String>,
}

fn blank(s: Option<String>) -> Option<String> {
    s.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

pub(crate) async fn add_account(State(c): Shared, Json(a): Json<AddAccount>) -> ApiResult {
    let mut cat = c.catalog()?;
    let new = app::NewAccount {
        name: a.name.trim().to_string(),
        description: blank(a.description),
        key: Secret::new(a.key.trim()),
        api: ApiOverrides {
            base_url: blank(a.base_url),
            stripe_account: blank(a.stripe_account),
            ..ApiOverrides::default()
        },
    };
    let (account, stripe_id) = app::add_account(&mut cat, new).await?;
    to_json(json!({ "account": account, "stripe_account": stripe_id }))
}

pub(crate) async fn test_account(State(c): Shared, Path(name): Path<String>) -> ApiResult {
    own_thread(move || async move {
        let cat = c.catalog()?;
        let id = app::test_account(&cat, &name, &ApiOverrides::default()).await?;
        to_json(json!({ "account": name, "stripe_account": id, "ok": true }))
    })
    .await
}

pub(crate) async fn remove_account(State(c): Shared, Path(name): Path<String>) -> ApiResult {
    c.catalog()?.remove_account(&name)?;
    to_json(json!({ "removed": name }))
}

// --------------------------------------------------------------------- select data, dataset

pub(crate) async fn resources() -> ApiResult {
    to_json(Resource::ALL.iter().map(|r| r.path()).collect::<Vec<_>>())
}

#[derive(Deserialize)]
pub(crate) struct PreviewQuery {
    account: String,
    resource: String,
    rows: Option<usize>,
}

pub(crate) async fn preview(State(c): Shared, Query(q): Query<PreviewQuery>) -> ApiResult {
    own_thread(move || async move {
        let cat = c.catalog()?;
        let r = resource(&q.resource)?;
        let page = app::first_page(&cat, &q.account, r, &ApiOverrides::default()).await?;
        to_json(app::page_rows(
            r,
            &page,
            q.rows.unwrap_or(10).clamp(1, 100),
        )?)
    })
    .await
}

pub(crate) async fn datasets(State(c): Shared) -> ApiResult {
    let list = c.catalog()?.list_datasets()?;
    to_json(
        list.iter()
            .map(|d| {
                let schema = d.schema().ok();
                json!({
                    "name": d.name,
                    "description": d.description,
                    "schema": schema.as_ref().and_then(|s| s.title().map(str::to_string)),
                    "profile_enabled": d.profile_enabled,
                    "error_diagnostics": d.error_diagnostics,
                    "partial_ingestion_percent": d.partial_ingestion_percent,
                })
            })
            .collect::<Vec<_>>(),
    )
}

/// A new dataset on the resource's built-in XDM schema, as the wizard's dataset step has it.
#[derive(Deserialize, Clone)]
pub(crate) struct NewDatasetForm {
    name: String,
    description: Option<String>,
    #[serde(default)]
    profile: bool,
    #[serde(default)]
    error_diagnostics: bool,
    partial_ingestion_percent: Option<f64>,
}

impl NewDatasetForm {
    fn dataset(&self, r: Resource) -> NewDataset {
        NewDataset {
            name: self.name.trim().to_string(),
            description: blank(self.description.clone()),
            schema_json: substitute_tenant(crate::defaults::xdm_schema_json(r), DEFAULT_TENANT),
            profile_enabled: self.profile,
            // The catalog turns error diagnostics on with partial ingestion, as Platform does.
            error_diagnostics: self.error_diagnostics,
            partial_ingestion_percent: self.partial_ingestion_percent,
        }
    }
}

/// `POST /api/datasets`: a new dataset on a resource's built-in schema.
#[derive(Deserialize)]
pub(crate) struct CreateDataset {
    resource: String,
    #[serde(flatten)]
    form: NewDatasetForm,
}

pub(crate) async fn create_dataset(State(c): Shared, Json(d): Json<CreateDataset>) -> ApiResult {
    let r = resource(&d.resource)?;
    let made = c.catalog()?.create_dataset(&d.form.dataset(r))?;
    to_json(json!({ "name": made.name }))
}

/// The dataset a wizard step names: an existing one, or the new one it will create.
#[derive(Deserialize)]
pub(crate) struct DatasetChoice {
    dataset: Option<String>,
    new_dataset: Option<NewDatasetForm>,
}

impl DatasetChoice {
    /// The dataset's name and schema.
    fn schema(
        &self,
        cat: &crate::catalog::Catalog,
        r: Resource,
    ) -> Result<(String, crate::xdm::XdmSchema), ApiError> {
        match (&self.new_dataset, &self.dataset) {
            (Some(form), _) => {
                let d = form.dataset(r);
                let schema =
                    crate::catalog::dataset_schema(&d.name, &d.schema_json, d.profile_enabled)?;
                Ok((d.name, schema))
            }
            (None, Some(name)) => Ok((name.clone(), cat.dataset(name)?.schema()?)),
            (None, None) => Err(ApiError::bad(
                "choose a dataset: an existing one or a new one",
            )),
        }
    }
}

// ---------------------------------------------------------------------------------- mapping

#[derive(Deserialize)]
pub(crate) struct DefaultMapping {
    resource: String,
    tenant: Option<String>,
}

pub(crate) async fn default_mapping(Query(q): Query<DefaultMapping>) -> ApiResult {
    let r = resource(&q.resource)?;
    let m = Mapping::builtin(r, q.tenant.as_deref().unwrap_or(DEFAULT_TENANT));
    to_json(json!({ "sql": m.sql, "origin": m.origin }))
}

/// The tenant `${tenant}` stands for in a mapping writing to `dataset`: the request's `tenant`,
/// else the one the dataset's schema names (a dataset made with `--tenant acme`), as the command
/// line decides it ([`app::dataflows::mapping_tenant`]).
fn tenant_for(
    cat: &crate::catalog::Catalog,
    given: Option<&str>,
    dataset: &str,
) -> Result<String, ApiError> {
    if let Some(t) = given {
        crate::map::check_tenant(t).map_err(ApiError::bad)?;
    }
    Ok(app::dataflows::mapping_tenant(
        cat,
        given.unwrap_or(DEFAULT_TENANT),
        dataset,
    ))
}

/// The mapping a request sends (`${tenant}` replaced by `tenant`, as `--tenant` does), or the
/// resource's built-in one.
fn mapping_of(sql: Option<String>, r: Resource, tenant: &str) -> Mapping {
    match sql.filter(|s| !s.trim().is_empty()) {
        Some(sql) => Mapping {
            sql: substitute_tenant(&sql, tenant),
            origin: "from the console".into(),
        },
        None => Mapping::builtin(r, tenant),
    }
}

#[derive(Deserialize)]
pub(crate) struct CheckMapping {
    resource: String,
    #[serde(flatten)]
    dataset: DatasetChoice,
    sql: Option<String>,
    /// Replaces `${tenant}` in `sql` (default: the dataset schema's tenant, else `tenant`).
    tenant: Option<String>,
}

pub(crate) async fn check_mapping(State(c): Shared, Json(m): Json<CheckMapping>) -> ApiResult {
    let r = resource(&m.resource)?;
    let cat = c.catalog()?;
    let (dataset, schema) = m.dataset.schema(&cat, r)?;
    let mapping = mapping_of(m.sql, r, &tenant_for(&cat, m.tenant.as_deref(), &dataset)?);
    match app::dataflows::check_fits_schema("(new)", &mapping, r, &schema, &dataset).await {
        Ok(()) => to_json(json!({ "sound": true, "errors": [] })),
        Err(AppError::Misfit { problems, .. }) => {
            to_json(json!({ "sound": false, "errors": problems }))
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
pub(crate) struct MappingPreview {
    account: String,
    resource: String,
    #[serde(flatten)]
    dataset: DatasetChoice,
    sql: Option<String>,
    rows: Option<usize>,
    /// Replaces `${tenant}` in `sql` (default: the dataset schema's tenant, else `tenant`).
    tenant: Option<String>,
}

pub(crate) async fn mapping_preview(State(c): Shared, Json(m): Json<MappingPreview>) -> ApiResult {
    own_thread(move || async move {
        let r = resource(&m.resource)?;
        let cat = c.catalog()?;
        let (dataset, schema) = m.dataset.schema(&cat, r)?;
        let tenant = tenant_for(&cat, m.tenant.as_deref(), &dataset)?;
        let page = app::first_page(&cat, &m.account, r, &ApiOverrides::default()).await?;
        let rows = app::mapping_rows(
            r,
            &page,
            mapping_of(m.sql, r, &tenant),
            &schema,
            m.rows.unwrap_or(5).clamp(1, 100),
        )
        .await?;
        to_json(rows)
    })
    .await
}

// --------------------------------------------------------------------------------- schedule

/// A schedule as the wizard's form sends it.
#[derive(Deserialize)]
pub(crate) struct ScheduleForm {
    frequency: String,
    interval: Option<u32>,
    start_time: Option<String>,
    backfill: Option<bool>,
}

impl ScheduleForm {
    fn schedule(&self, flow: &str, now: i64) -> Result<Schedule, ApiError> {
        let frequency: Frequency = self
            .frequency
            .parse()
            .map_err(|e| ApiError::bad(format!("dataflow {flow:?}: {e}")))?;
        let start_time = match self.start_time.as_deref().map(str::trim) {
            Some(t) if !t.is_empty() => app::parse_time("start time", t)?,
            _ => now,
        };
        // As given: the schedule rules refuse an interval or a backfill choice on a one-time
        // dataflow (1361-400, 1364-400) here as on the command line, rather than dropping them.
        Ok(Schedule {
            frequency,
            interval: self.interval,
            start_time,
            backfill: self.backfill,
        })
    }
}

pub(crate) async fn check_schedule(Json(f): Json<ScheduleForm>) -> ApiResult {
    let now = crate::runner::now();
    let s = f.schedule("(new)", now)?;
    s.validate(now).map_err(|e| ApiError::bad(e.to_string()))?;
    to_json(json!({ "ok": true, "schedule": s }))
}
