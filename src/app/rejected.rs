//! A dataflow's rejected rows: where its batches are, their summary by code and field, SQL
//! over them (and the account's mirror), and a replay with a new mapping.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;

use super::{AppError, Result};
use crate::catalog::{Catalog, Dataflow};
use crate::inspect::{summarize, CodeCount, ErrorSummary};
use crate::map::Mapping;
use crate::replay::ReplayReport;
use crate::Resource;

/// The batch folders of `flow`'s runs under `out` (committed or failed), oldest first.
pub fn batch_dirs(cat: &Catalog, out: &Path, flow: &Dataflow) -> Result<Vec<PathBuf>> {
    let mut runs = cat.list_runs(Some(&flow.name), None)?;
    runs.reverse();
    let root = out.join(&flow.dataset);
    Ok(runs
        .iter()
        .filter_map(|r| r.batch_id.as_deref())
        .flat_map(|id| [root.join("batches").join(id), root.join("failed").join(id)])
        .filter(|d| d.join(crate::sink::MANIFEST_FILE).exists())
        .collect())
}

fn sink_err(e: crate::sink::SinkError) -> AppError {
    AppError::Invalid(format!("reading rejected rows: {e}"))
}

/// The rejected rows of every batch of `flow`, by deciding code and field, most frequent
/// first, with up to `samples` examples each.
pub fn summary(cat: &Catalog, out: &Path, name: &str, samples: usize) -> Result<ErrorSummary> {
    let flow = cat.dataflow(name)?;
    let mut total = ErrorSummary::default();
    let mut groups: BTreeMap<(String, Option<String>), CodeCount> = BTreeMap::new();
    let mut stages: BTreeMap<String, u64> = BTreeMap::new();
    for dir in batch_dirs(cat, out, &flow)? {
        let s = summarize(&dir, samples).map_err(sink_err)?;
        total.total += s.total;
        for c in s.by_code {
            let g = groups
                .entry((c.code.clone(), c.column.clone()))
                .or_insert_with(|| CodeCount {
                    samples: Vec::new(),
                    count: 0,
                    ..c.clone()
                });
            g.count += c.count;
            let room = samples.saturating_sub(g.samples.len());
            g.samples.extend(c.samples.into_iter().take(room));
        }
        for st in s.by_stage {
            *stages.entry(st.stage).or_default() += st.count;
        }
    }
    total.by_code = groups.into_values().collect();
    total
        .by_code
        .sort_by(|a, b| b.count.cmp(&a.count).then(a.code.cmp(&b.code)));
    total.by_stage = stages
        .into_iter()
        .map(|(stage, count)| crate::inspect::StageCount { stage, count })
        .collect();
    total.by_stage.sort_by_key(|s| std::cmp::Reverse(s.count));
    Ok(total)
}

/// Runs read-only `sql` over `flow`'s rejected rows (`rejected`) and its account's mirror
/// (tables named after the resources).
pub async fn query(cat: &Catalog, out: &Path, name: &str, sql: &str) -> Result<Vec<RecordBatch>> {
    let flow = cat.dataflow(name)?;
    let dirs = batch_dirs(cat, out, &flow)?;
    let account = cat.account(&flow.account)?;
    // The folder holding this account's (or connected account's) resource mirrors.
    let connected = crate::runner::connected_account(&flow, &account);
    let resource_mirror = crate::runner::connected_mirror_dir(
        cat.home(),
        &flow.account,
        connected.as_deref(),
        flow.resource,
    );
    let mirror_root = resource_mirror.parent().unwrap_or(cat.home());
    Ok(crate::inspect::sql(mirror_root, &dirs, sql).await?)
}

/// Replays the rejected rows of `flow`'s latest batch that has any with `mapping`, against the
/// dataset's schema, from the mirror's latest version of each object where it has one.
pub async fn replay_latest(
    cat: &Catalog,
    out: &Path,
    name: &str,
    mapping: Mapping,
) -> Result<ReplayReport> {
    let flow = cat.dataflow(name)?;
    let resource = flow.resource;
    let batch = batch_dirs(cat, out, &flow)?
        .into_iter()
        .rev()
        .find(|d| d.join(crate::sink::REJECTED_FILE).exists())
        .ok_or_else(|| {
            AppError::Invalid(format!(
                "dataflow {name:?} has no batch with rejected rows to replay"
            ))
        })?;
    let schema = cat.dataset(&flow.dataset)?.schema()?;
    let account = cat.account(&flow.account)?;
    let connected = crate::runner::connected_account(&flow, &account);
    let mirror = crate::runner::connected_mirror_dir(
        cat.home(),
        &flow.account,
        connected.as_deref(),
        resource,
    );
    let mirror = mirror.join("_delta_log").is_dir().then_some(mirror);
    crate::replay::replay(&batch, mapping, &schema, mirror.as_deref())
        .await
        .map_err(|source| AppError::Replay {
            what: format!("dataflow {name:?}: replaying {}", batch.display()),
            source,
        })
}

/// The dataset of `cat` named `name` when `batch` lies in its folder (`<home>/data/…`).
fn catalog_dataset(
    cat: &Catalog,
    batch: &Path,
    name: &str,
) -> Result<Option<crate::catalog::Dataset>> {
    let data = cat.home().join("data");
    let inside = match (std::fs::canonicalize(batch), std::fs::canonicalize(&data)) {
        (Ok(b), Ok(d)) => b.starts_with(d),
        _ => false,
    };
    if !inside {
        return Ok(None);
    }
    match cat.dataset(name) {
        Ok(ds) => Ok(Some(ds)),
        Err(crate::catalog::CatalogError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The tenant `${tenant}` stands for when replaying `batch`: `given` (`--tenant`) unless it is
/// the default, else the tenant of the batch's catalog dataset's schema (a dataset made with
/// `--tenant acme`), as `dataflows create` decides it.
pub fn replay_tenant(batch: &Path, cat: Option<&Catalog>, given: &str) -> String {
    let dataset = crate::sink::Manifest::read(&batch.join(crate::sink::MANIFEST_FILE))
        .ok()
        .map(|m| m.dataset);
    match (cat, dataset) {
        (Some(cat), Some(dataset))
            if matches!(catalog_dataset(cat, batch, &dataset), Ok(Some(_))) =>
        {
            super::dataflows::mapping_tenant(cat, given, &dataset)
        }
        _ => given.to_string(),
    }
}

/// Replays the rejected rows of the batch at `batch` (`<out>/<dataset>/{batches,failed}/<id>`)
/// with `mapping` against `schema`, from `mirror`, or else the mirror beside the batch
/// (`<out>/mirror/<resource>`) when there is one. Without `schema`, a batch of a dataset of
/// `cat` (under `<home>/data/`) is validated as that dataset's runs are (its schema, its primary
/// identity required when it is Profile-enabled), any other against the resource's built-in
/// schema.
pub async fn replay_batch(
    batch: &Path,
    mapping: Mapping,
    schema: Option<&Path>,
    tenant: &str,
    mirror: Option<PathBuf>,
    cat: Option<&Catalog>,
) -> Result<ReplayReport> {
    let manifest = crate::sink::Manifest::read(&batch.join(crate::sink::MANIFEST_FILE))
        .map_err(|e| AppError::Invalid(format!("{}: not a batch: {e}", batch.display())))?;
    let resource: Resource = manifest
        .resource
        .parse()
        .map_err(|e| AppError::Invalid(format!("{}: {e}", batch.display())))?;
    let of_dataset = match (schema, cat) {
        (None, Some(cat)) => catalog_dataset(cat, batch, &manifest.dataset)?,
        _ => None,
    };
    let schema = match of_dataset {
        Some(dataset) => dataset.schema()?,
        None => super::oneoff::load_schema(schema, resource, tenant)?,
    };
    let beside = batch
        .ancestors()
        .nth(3)
        .map(|out| out.join("mirror").join(resource.path()))
        .filter(|p| p.join("_delta_log").is_dir());
    let mirror = mirror.or(beside);
    crate::replay::replay(batch, mapping, &schema, mirror.as_deref())
        .await
        .map_err(|source| AppError::Replay {
            what: format!("replaying {}", batch.display()),
            source,
        })
}
