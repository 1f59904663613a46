//! Runs without the catalog: a one-off run of one resource (`stripe-xdm run`), the demo over
//! the built-in simulator (`stripe-xdm demo`), and the simulator's first page for previews.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{parse_time, ApiOverrides, AppError, Result};
use crate::map::{substitute_tenant, Mapping};
use crate::pipeline::{self, ProgressSink, RunConfig, RunControl, RunReport};
use crate::sim::{Faults, SimConfig, Simulator, SIM_KEY};
use crate::source::{ClientConfig, Page, StripeClient, Window};
use crate::xdm::XdmSchema;
use crate::{Resource, Secret};

/// What a one-off run is asked for, as a front end received it.
#[derive(Debug, Clone, Default)]
pub struct OneOffRequest {
    /// The resource path.
    pub resource: Option<Resource>,
    /// A mapping SQL file (default: the resource's built-in mapping).
    pub mapping: Option<PathBuf>,
    /// An XDM schema file (default: the resource's built-in schema).
    pub schema: Option<PathBuf>,
    /// The tenant id substituted for `${tenant}`.
    pub tenant: String,
    /// The output folder.
    pub out: PathBuf,
    /// The dataset folder's name (default: the resource path).
    pub dataset: Option<String>,
    /// `created[gte]`, as given (unix seconds, RFC 3339 or a date).
    pub created_gte: Option<String>,
    /// `created[lt]`, as given.
    pub created_lt: Option<String>,
    /// Error diagnostics on.
    pub error_diagnostics: bool,
    /// Partial ingestion's threshold in percent.
    pub partial_ingestion: Option<f64>,
    /// `created` windows fetched at once.
    pub concurrency: usize,
    /// Read through this connected account.
    pub stripe_account: Option<String>,
}

/// Checks a one-off run's request (the window's order, the threshold's range, the mapping and
/// schema files) and builds its pipeline configuration.
pub fn one_off_config(
    req: &OneOffRequest,
    progress: Option<Arc<dyn ProgressSink>>,
) -> Result<RunConfig> {
    let resource = req
        .resource
        .ok_or_else(|| AppError::Invalid("a run needs a resource".into()))?;
    let mapping = match &req.mapping {
        Some(p) => Mapping::from_file(p, &req.tenant)?,
        None => Mapping::builtin(resource, &req.tenant),
    };
    let window = Window {
        gte: req
            .created_gte
            .as_deref()
            .map(|v| parse_time("--created-gte", v))
            .transpose()?,
        lt: req
            .created_lt
            .as_deref()
            .map(|v| parse_time("--created-lt", v))
            .transpose()?,
    };
    if let (Some(g), Some(l)) = (window.gte, window.lt) {
        if g >= l {
            return Err(AppError::Invalid(format!(
                "--created-gte ({g}) must be before --created-lt ({l})"
            )));
        }
    }
    super::output_folder("--out", &req.out)?;
    if let Some(name) = &req.dataset {
        crate::sink::check_dataset_name(name)
            .map_err(|reason| AppError::Invalid(format!("--dataset {name:?}: {reason}")))?;
    }
    if let Some(p) = req.partial_ingestion {
        if !(p > 0.0 && p <= 100.0) {
            return Err(AppError::Invalid(format!(
                "--partial-ingestion {p}: the threshold is a percentage above 0 and at most 100"
            )));
        }
    }
    Ok(RunConfig {
        resource,
        mapping,
        schema: load_schema(req.schema.as_deref(), resource, &req.tenant)?,
        out_dir: req.out.clone(),
        dataset: req
            .dataset
            .clone()
            .unwrap_or_else(|| resource.path().to_string()),
        window,
        error_diagnostics: req.error_diagnostics,
        partial_ingestion: req.partial_ingestion,
        chunk_records: pipeline::DEFAULT_CHUNK_RECORDS,
        sink: Default::default(),
        batch_id: None,
        control: RunControl {
            concurrency: req.concurrency.max(1),
            progress,
            ..Default::default()
        },
        mirror: None,
        compaction: Default::default(),
        changes: None,
        stripe_account: req.stripe_account.clone(),
        remap_batches: Vec::new(),
    })
}

/// The XDM schema of a file, or the resource's built-in one, with `${tenant}` substituted.
pub fn load_schema(path: Option<&Path>, resource: Resource, tenant: &str) -> Result<XdmSchema> {
    match path {
        Some(p) => schema_file(p, tenant).map(|(schema, _)| schema),
        None => XdmSchema::from_json_str(&substitute_tenant(
            crate::defaults::xdm_schema_json(resource),
            tenant,
        ))
        .map_err(|source| AppError::Schema {
            origin: format!("built-in sql/{resource}.xdm.json"),
            source,
        }),
    }
}

/// The XDM schema file at `path` with `${tenant}` replaced: parsed, and as text (what a
/// dataset stores). Errors name the file.
pub fn schema_file(path: &Path, tenant: &str) -> Result<(XdmSchema, String)> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        AppError::Invalid(format!(
            "cannot read XDM schema file {}: {e}",
            path.display()
        ))
    })?;
    let text = substitute_tenant(&text, tenant);
    let schema = XdmSchema::from_json_str(&text).map_err(|source| AppError::Schema {
        origin: path.display().to_string(),
        source,
    })?;
    Ok((schema, text))
}

/// What the demo runs.
#[derive(Debug, Clone)]
pub struct DemoRequest {
    /// The simulator's seed.
    pub seed: u64,
    /// Objects per resource.
    pub count: u64,
    /// Share of records the simulator corrupts (they become rejected rows).
    pub corrupt_rate: f64,
    /// The tenant id.
    pub tenant: String,
    /// The output folder.
    pub out: PathBuf,
}

/// Starts the built-in simulator, runs all six resources through the pipeline with their
/// built-in mappings, stops it, and returns the reports in [`Resource::ALL`]'s order.
/// `started` hears the simulator's address once it listens.
pub async fn demo(req: &DemoRequest, started: impl FnOnce(&str)) -> Result<Vec<RunReport>> {
    super::output_folder("--out", &req.out)?;
    let config = SimConfig::default()
        .with_seed(req.seed)
        .with_counts(req.count)
        .with_faults(Faults {
            corrupt_rate: req.corrupt_rate,
            ..Faults::default()
        });
    let handle = start_simulator(config).await?;
    let base = handle.base_url();
    started(&base);
    let result = demo_runs(&base, req).await;
    handle.shutdown().await;
    result
}

async fn demo_runs(base: &str, req: &DemoRequest) -> Result<Vec<RunReport>> {
    let mut cfg = ClientConfig::new(base.to_string(), Secret::new(SIM_KEY));
    // The simulator has no rate limit: let the engine run at its own speed.
    cfg.requests_per_sec = Some(100_000.0);
    cfg.endpoint_requests_per_sec = Some(100_000.0);
    let client =
        StripeClient::new(cfg).map_err(|e| AppError::stripe("the simulator's client", e))?;
    let mut reports = Vec::new();
    for resource in Resource::ALL {
        let cfg = RunConfig::builtin(resource, &req.tenant, req.out.clone())
            .map_err(|e| AppError::Invalid(format!("built-in schema of {resource}: {e}")))?;
        reports.push(pipeline::run(&client, cfg).await?);
    }
    Ok(reports)
}

/// The first page of `resource` from a built-in simulator started for it (default objects),
/// read with `api`'s settings but the simulator's address and key.
pub async fn sim_first_page(resource: Resource, api: &ApiOverrides) -> Result<Page> {
    let handle = start_simulator(SimConfig::default()).await?;
    let page = async {
        let api = ApiOverrides {
            base_url: Some(handle.base_url()),
            ..api.clone()
        };
        let client = StripeClient::new(api.client_config(Secret::new(SIM_KEY), None))
            .map_err(|e| AppError::stripe("the simulator's client", e))?;
        client
            .list_page(resource, Window::default(), None)
            .await
            .map_err(|e| AppError::stripe(format!("the simulator: listing {resource}"), e))
    }
    .await;
    handle.shutdown().await;
    page
}

/// The built-in simulator with `config`, listening on a loopback port.
async fn start_simulator(config: SimConfig) -> Result<crate::sim::SimHandle> {
    Simulator::new(config)
        .start()
        .await
        .map_err(|source| AppError::Io {
            what: "cannot start the simulator".into(),
            source,
        })
}
