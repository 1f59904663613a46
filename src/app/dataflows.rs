//! Dataflows: creating one (or one per connected account), and updating one, with every rule
//! checked before the catalog changes: Platform's schedule rules, alert targets, and the
//! mapping's output fitting the dataset's schema.

use super::accounts::ApiOverrides;
use super::{AppError, Result};
use crate::alert::AlertTargets;
use crate::catalog::dataset_schema;
use crate::catalog::{
    Alerts, Catalog, Dataflow, DataflowUpdate, NewDataflow, NewDataset, UploadTarget,
};
use crate::map::check::check_mapping;
use crate::map::Mapping;
use crate::schedule::{Frequency, Schedule};
use crate::xdm::XdmSchema;
use crate::Resource;

/// Where a dataflow's alerts and batches go.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Targets {
    /// Webhook receiving the alerts (JSON POST).
    pub alert_webhook: Option<String>,
    /// Local command receiving the alerts (payload on stdin).
    pub alert_command: Option<String>,
    /// Upload each committed batch to Platform.
    pub upload: Option<UploadTarget>,
}

impl Targets {
    fn validate(&self, flow: &str) -> Result<()> {
        let of_flow = |source: Box<dyn std::error::Error + Send + Sync>| AppError::Dataflow {
            dataflow: flow.to_string(),
            source,
        };
        if let Some(upload) = &self.upload {
            super::upload::check_target(upload).map_err(|e| of_flow(Box::new(e)))?;
        }
        AlertTargets {
            webhook: self.alert_webhook.clone(),
            command: self.alert_command.clone(),
        }
        .validate()
        .map_err(|e| of_flow(Box::new(e)))
    }
}

/// A dataflow to create, as the wizard's steps collect it.
#[derive(Debug, Clone)]
pub struct NewDataflowRequest {
    /// The name (default: `Stripe <resource>`, see [`default_name`]).
    pub name: Option<String>,
    /// Optional description.
    pub description: Option<String>,
    /// An existing account.
    pub account: String,
    /// What it reads.
    pub resource: Resource,
    /// The dataset: an existing one's name, or [`NewDataflowRequest::new_dataset`]'s.
    pub dataset: String,
    /// A dataset to create with the dataflow (after every check passed; removed again if the
    /// dataflow cannot be created).
    pub new_dataset: Option<NewDataset>,
    /// The mapping (the resource's built-in one when the caller has none).
    pub mapping: Mapping,
    /// Alerts.
    pub alerts: Alerts,
    /// The schedule.
    pub schedule: Schedule,
    /// Alert and upload targets.
    pub targets: Targets,
    /// Connected accounts to read through: none (the key's own account), one, or several (one
    /// dataflow `<name>.<acct>` each).
    pub stripe_accounts: Vec<String>,
    /// One dataflow per connected account the key can see (`GET /v1/accounts`).
    pub all_connected_accounts: bool,
}

/// The name a dataflow gets when none is given.
pub fn default_name(resource: Resource) -> String {
    format!("Stripe {}", resource.path())
}

/// Checks that `mapping`'s output fits `dataset`'s schema (as every run would).
pub async fn check_fits(
    cat: &Catalog,
    flow: &str,
    mapping: &Mapping,
    resource: Resource,
    dataset: &str,
) -> Result<()> {
    let schema = cat.dataset(dataset)?.schema()?;
    check_fits_schema(flow, mapping, resource, &schema, dataset).await
}

/// Checks that `mapping`'s output fits `schema`, the schema of `dataset`.
pub async fn check_fits_schema(
    flow: &str,
    mapping: &Mapping,
    resource: Resource,
    schema: &XdmSchema,
    dataset: &str,
) -> Result<()> {
    let report = check_mapping(mapping, resource, schema).await;
    if report.is_sound() {
        return Ok(());
    }
    Err(AppError::Misfit {
        dataflow: flow.to_string(),
        origin: mapping.origin.clone(),
        dataset: dataset.to_string(),
        problems: report.errors().map(|p| p.to_string()).collect(),
    })
}

/// Creates the dataflow (or, fanning out over connected accounts, one per account) after every
/// check passed; nothing half-made stays when one of several creations fails.
pub async fn create_dataflows(
    cat: &mut Catalog,
    req: NewDataflowRequest,
    now: i64,
) -> Result<Vec<Dataflow>> {
    let name = req
        .name
        .clone()
        .unwrap_or_else(|| default_name(req.resource));
    req.schedule
        .validate(now)
        .map_err(|source| AppError::Schedule {
            dataflow: name.clone(),
            source,
        })?;
    req.targets.validate(&name)?;
    let mut seen = std::collections::HashSet::new();
    if let Some(twice) = req
        .stripe_accounts
        .iter()
        .find(|a| !seen.insert(a.as_str()))
    {
        return Err(AppError::Invalid(format!(
            "dataflow {name:?}: --stripe-account {twice} is given twice (one dataflow per connected account)"
        )));
    }
    match &req.new_dataset {
        Some(new) => {
            if new.name != req.dataset {
                return Err(AppError::Invalid(format!(
                    "dataflow {name:?}: the new dataset is {:?}, the dataflow names {:?}",
                    new.name, req.dataset
                )));
            }
            let schema = dataset_schema(&new.name, &new.schema_json, new.profile_enabled)?;
            check_fits_schema(&name, &req.mapping, req.resource, &schema, &new.name).await?;
        }
        None => check_fits(cat, &name, &req.mapping, req.resource, &req.dataset).await?,
    }
    let connected: Vec<String> = if req.all_connected_accounts {
        // The platform account's own list, not a connected account's.
        let mut own = cat.account(&req.account)?;
        own.stripe_account = None;
        let key = cat.account_key(&req.account)?;
        let client = super::client_for(key, Some(&own), &ApiOverrides::default())?;
        let ids = client.connected_accounts().await.map_err(|source| {
            AppError::stripe(
                format!("account {:?}: listing connected accounts", req.account),
                source,
            )
        })?;
        if ids.is_empty() {
            return Err(AppError::Invalid(format!(
                "account {:?} has no connected accounts (GET /v1/accounts is empty): nothing to fan out over",
                req.account
            )));
        }
        ids
    } else {
        req.stripe_accounts.clone()
    };
    let targets: Vec<(String, Option<String>)> =
        if req.all_connected_accounts || connected.len() > 1 {
            connected
                .iter()
                .map(|a| (format!("{name}.{a}"), Some(a.clone())))
                .collect()
        } else {
            vec![(name.clone(), connected.first().cloned())]
        };
    if let Some(new) = &req.new_dataset {
        cat.create_dataset(new)?;
    }
    let mut made: Vec<Dataflow> = Vec::new();
    for (flow_name, acct) in targets {
        let new = NewDataflow {
            name: flow_name,
            description: req.description.clone(),
            account: req.account.clone(),
            resource: req.resource,
            dataset: req.dataset.clone(),
            mapping_sql: req.mapping.sql.clone(),
            alerts: req.alerts,
            schedule: req.schedule,
            alert_webhook: req.targets.alert_webhook.clone(),
            alert_command: req.targets.alert_command.clone(),
            upload: req.targets.upload.clone(),
        };
        let mut created = cat.create_dataflow(&new, now);
        if let (Ok(flow), Some(a)) = (&created, acct.as_deref()) {
            let flow_name = flow.name.clone();
            created = cat
                .set_dataflow_stripe_account(&flow_name, Some(a))
                .inspect_err(|_| {
                    let _ = cat.delete_dataflow(&flow_name, false);
                });
        }
        match created {
            Ok(flow) => made.push(flow),
            Err(e) => {
                // Nothing half-made stays.
                for f in &made {
                    let _ = cat.delete_dataflow(&f.name, false);
                }
                if let Some(new) = &req.new_dataset {
                    let _ = cat.remove_dataset(&new.name);
                }
                return Err(e.into());
            }
        }
    }
    Ok(made)
}

/// Changes to a dataflow; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct DataflowChanges {
    /// New name.
    pub rename: Option<String>,
    /// New description (`Some(None)` clears it).
    pub description: Option<Option<String>>,
    /// New frequency (`once` clears the interval and the backfill choice).
    pub frequency: Option<Frequency>,
    /// New interval.
    pub interval: Option<u32>,
    /// New start time (only while it has not passed).
    pub start_time: Option<i64>,
    /// New mapping: checked against the dataset's schema, adds a mapping version.
    pub mapping: Option<Mapping>,
    /// New alerts.
    pub alerts: Option<Alerts>,
    /// New alert webhook (`Some(None)` removes it).
    pub alert_webhook: Option<Option<String>>,
    /// New alert command (`Some(None)` removes it).
    pub alert_command: Option<Option<String>>,
    /// New upload target (`Some(None)` turns uploads off).
    pub upload: Option<Option<UploadTarget>>,
    /// The dataset's partial ingestion threshold in percent (`Some(None)` turns it off).
    pub partial_ingestion: Option<Option<f64>>,
    /// The dataset's error diagnostics on or off.
    pub error_diagnostics: Option<bool>,
}

/// What [`update_dataflow`] changed.
#[derive(Debug, Clone)]
pub struct Updated {
    /// The dataflow as updated.
    pub dataflow: Dataflow,
    /// Its dataset, when its options changed.
    pub dataset: Option<crate::catalog::Dataset>,
}

/// Updates dataflow `name` if its etag is still `etag` (`None`: the current one); the catalog
/// refuses a stale etag. Dataset options change after the dataflow did (options not given stay).
pub async fn update_dataflow(
    cat: &mut Catalog,
    name: &str,
    etag: Option<i64>,
    changes: DataflowChanges,
    now: i64,
) -> Result<Updated> {
    let current = cat.dataflow(name)?;
    let etag = etag.unwrap_or(current.etag);
    if changes.error_diagnostics == Some(false) {
        // Platform keeps error diagnostics on while partial ingestion is on; said before
        // anything is changed rather than ignored.
        let ds = cat.dataset(&current.dataset)?;
        let partial = changes
            .partial_ingestion
            .unwrap_or(ds.partial_ingestion_percent);
        if let Some(p) = partial {
            return Err(AppError::Invalid(format!(
                "--error-diagnostics false: dataset {:?} has partial ingestion on ({p}%), which keeps error diagnostics on; add --no-partial-ingestion to turn both off",
                ds.name
            )));
        }
    }
    if let Some(Some(upload)) = &changes.upload {
        super::upload::check_target(upload).map_err(|source| AppError::Dataflow {
            dataflow: name.to_string(),
            source: Box::new(source),
        })?;
    }
    let mut update = DataflowUpdate {
        name: changes.rename,
        description: changes.description,
        alerts: changes.alerts,
        alert_webhook: changes.alert_webhook.clone(),
        alert_command: changes.alert_command.clone(),
        upload: changes.upload,
        ..DataflowUpdate::default()
    };
    if changes.frequency.is_some() || changes.interval.is_some() || changes.start_time.is_some() {
        let mut s = current.schedule;
        if let Some(f) = changes.frequency {
            s.frequency = f;
            if f == Frequency::Once {
                // Platform: a one-time dataflow has neither an interval nor a backfill choice.
                s.interval = None;
                s.backfill = None;
            }
        }
        if changes.interval.is_some() {
            s.interval = changes.interval;
        }
        if let Some(t) = changes.start_time {
            s.start_time = t;
        }
        update.schedule = Some(s);
    }
    if let Some(mapping) = &changes.mapping {
        check_fits(cat, name, mapping, current.resource, &current.dataset).await?;
        update.mapping_sql = Some(mapping.sql.clone());
    }
    let webhook = match &changes.alert_webhook {
        Some(w) => w.clone(),
        None => current.alert_webhook.clone(),
    };
    let command = match &changes.alert_command {
        Some(c) => c.clone(),
        None => current.alert_command.clone(),
    };
    Targets {
        alert_webhook: webhook,
        alert_command: command,
        upload: None,
    }
    .validate(name)?;
    let options = changes.partial_ingestion.is_some() || changes.error_diagnostics.is_some();
    if options {
        update.dataset_options = Some(crate::catalog::DatasetOptions {
            error_diagnostics: changes.error_diagnostics,
            partial_ingestion_percent: changes.partial_ingestion,
        });
    }
    // One transaction: a refused dataset option leaves the dataflow unchanged as well.
    let dataflow = cat.update_dataflow(name, etag, &update, now)?;
    let dataset = if options {
        Some(cat.dataset(&dataflow.dataset)?)
    } else {
        None
    };
    Ok(Updated { dataflow, dataset })
}

/// Deletes dataflow `name` ([`Catalog::delete_dataflow`]). With `cancel`, its active run is
/// dropped with it, and that run's staging area under `data_dir` (`<home>/data`, where runs
/// write by default) goes too: the run can never commit it.
pub fn delete_dataflow(
    cat: &mut Catalog,
    name: &str,
    cancel: bool,
    data_dir: &std::path::Path,
) -> Result<crate::catalog::DeletedDataflow> {
    let active = if cancel { cat.active_run(name)? } else { None };
    let dataset = cat.dataflow(name)?.dataset;
    let deleted = cat.delete_dataflow(name, cancel)?;
    if let Some(run) = active.filter(|r| deleted.cancelled_run == Some(r.id)) {
        let dirs = crate::sink::DatasetDir::new(data_dir, &dataset);
        let staging = dirs.staging(&crate::runner::batch_id_for(&run));
        crate::pipeline::discard_staging(&staging);
    }
    Ok(deleted)
}

/// The upload target of dataflow `name` with its gateway and/or credentials file replaced by
/// those given (`None` keeps the current one); refused when the dataflow uploads nowhere.
pub fn upload_settings(
    cat: &Catalog,
    name: &str,
    base_url: Option<String>,
    credentials_file: Option<String>,
) -> Result<crate::catalog::UploadTarget> {
    let Some(mut upload) = cat.dataflow(name)?.upload else {
        return Err(AppError::Invalid(format!(
            "dataflow {name:?} uploads nowhere: give --upload-dataset-id with --platform-url or --platform-credentials-file"
        )));
    };
    upload.base_url = base_url.or(upload.base_url);
    upload.credentials_file = credentials_file.or(upload.credentials_file);
    Ok(upload)
}

/// The tenant `${tenant}` stands for in a mapping of a dataflow writing to `dataset`: `given`
/// (`--tenant`) unless it is the default, else the tenant of the dataset's schema when it names
/// one (a dataset made with `datasets create --tenant acme` holds `_acme`).
pub fn mapping_tenant(cat: &Catalog, given: &str, dataset: &str) -> String {
    if given != crate::map::DEFAULT_TENANT {
        return given.to_string();
    }
    cat.dataset(dataset)
        .ok()
        .and_then(|ds| schema_tenant(&ds.schema_json))
        .unwrap_or_else(|| given.to_string())
}

/// The tenant of an XDM schema: its one top-level `_<tenant>` object, leaving out Adobe's own
/// underscore fields (`_id`, `_repo`, `_experience`, `_dc`, `_acp_system_metadata`).
pub fn schema_tenant(schema_json: &str) -> Option<String> {
    crate::xdm::XdmSchema::from_json_str(schema_json)
        .ok()?
        .tenant()
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_schemas_tenant_is_its_one_underscore_object() {
        let schema = |props: &str| format!(r#"{{"type": "object", "properties": {{{props}}}}}"#);
        let tenant = r#""_acme": {"type": "object", "properties": {"a": {"type": "string"}}}"#;
        let id = r#""_id": {"type": "string"}"#;
        let repo = r#""_repo": {"type": "object", "properties": {"b": {"type": "string"}}}"#;
        assert_eq!(
            schema_tenant(&schema(&format!("{id}, {repo}, {tenant}"))).as_deref(),
            Some("acme")
        );
        assert_eq!(schema_tenant(&schema(&format!("{id}, {repo}"))), None);
        let other = r#""_beta": {"type": "object", "properties": {}}"#;
        assert_eq!(schema_tenant(&schema(&format!("{tenant}, {other}"))), None);
        assert_eq!(schema_tenant("not json"), None);
    }
}
