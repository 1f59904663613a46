//! Replay: re-map a batch's rejected rows from their stored Stripe records with a corrected
//! mapping (no new Stripe requests), and ingest those that now pass as a new batch.
//!
//! Exactly once: the ids a replay ingested are recorded beside the source batch in
//! `replayed.json`; a second replay skips them, so running replay twice never duplicates rows.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use serde::Serialize;

use crate::decode;
use crate::map::{Mapper, Mapping};
use crate::pipeline::{error_summary, map_and_validate, primary_code, PipelineError};
use crate::sink::{
    self, read_parquet, BatchStatus, BatchWriter, DatasetDir, Manifest, Metrics, SinkError,
    SinkOptions, MANIFEST_FILE, REJECTED_FILE,
};
use crate::xdm::XdmSchema;
use crate::Resource;

/// The file beside a batch that lists the object ids already ingested by replays.
pub const REPLAYED_FILE: &str = "replayed.json";

/// What a replay did.
#[derive(Debug, Clone, Serialize)]
pub struct ReplayReport {
    /// The batch whose rejected rows were replayed.
    pub source_batch: String,
    /// Rejected rows found in it.
    pub rejected_rows: u64,
    /// Rows skipped because an earlier replay already ingested them.
    pub already_replayed: u64,
    /// Rows re-mapped now.
    pub replayed: u64,
    /// Rows that now pass and went into the new batch.
    pub ingested: u64,
    /// Rows that still fail, by code.
    pub still_rejected: BTreeMap<String, u64>,
    /// Rows replayed from the mirror's latest version of their object (the rest from the
    /// record stored with the rejected row).
    pub from_mirror: u64,
    /// The new batch, when any row passed.
    pub new_batch_dir: Option<PathBuf>,
}

/// Re-maps the rejected rows of the batch at `batch_dir` with `mapping` against `schema`.
///
/// With `mirror` (the resource's mirror table), a row whose object the mirror holds is
/// replayed from the object's latest version there (Stripe may have changed it since, and the
/// mirror may have been refreshed by later runs); the others from the record stored with the
/// rejected row.
pub async fn replay(
    batch_dir: &Path,
    mapping: Mapping,
    schema: &XdmSchema,
    mirror: Option<&Path>,
) -> Result<ReplayReport, PipelineError> {
    let manifest = Manifest::read(&batch_dir.join(MANIFEST_FILE)).map_err(SinkError::from)?;
    let resource: Resource = manifest.resource.parse().map_err(|e| {
        PipelineError::Internal(format!("manifest of {}: {e}", batch_dir.display()))
    })?;
    // <out>/<dataset>/{batches|failed}/<batch id>
    let dataset_root = batch_dir.parent().and_then(Path::parent).ok_or_else(|| {
        PipelineError::Internal(format!("{} is not a batch directory", batch_dir.display()))
    })?;
    let out = dataset_root.parent().unwrap_or(Path::new("."));
    let dataset = dataset_root
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| manifest.dataset.clone());

    let done = read_replayed(batch_dir)?;
    let rejected_path = batch_dir.join(REJECTED_FILE);
    let rows = if rejected_path.exists() {
        read_parquet(&rejected_path)?
    } else {
        Vec::new()
    };
    let latest = match mirror {
        Some(path) => {
            let mirror = crate::stage::Mirror::open_existing(path, resource).await?;
            let ids: std::collections::HashSet<String> = rejected_ids(&rows).collect();
            mirror.raw_of(&ids).await?
        }
        None => Default::default(),
    };
    let mut from_mirror = 0u64;
    let mut body = Vec::new();
    let mut ranges = Vec::new();
    let mut total = 0u64;
    let mut skipped = 0u64;
    for b in &rows {
        let ids = b.column_by_name("object_id").cloned();
        let sources = b.column_by_name("source").cloned();
        let (Some(ids), Some(sources)) = (ids, sources) else {
            return Err(PipelineError::Internal(format!(
                "{} lacks object_id/source columns",
                rejected_path.display()
            )));
        };
        use arrow::array::{Array, AsArray};
        let ids = ids.as_string::<i32>();
        let sources = sources.as_string::<i32>();
        for i in 0..b.num_rows() {
            total += 1;
            if !ids.is_null(i) && done.contains(ids.value(i)) {
                skipped += 1;
                continue;
            }
            let start = body.len();
            let newer = (!ids.is_null(i))
                .then(|| latest.get(ids.value(i)))
                .flatten();
            from_mirror += u64::from(newer.is_some());
            body.extend_from_slice(newer.map_or(sources.value(i), |s| s.as_str()).as_bytes());
            ranges.push(start..body.len());
            body.push(b'\n');
        }
    }
    let body = Bytes::from(body);
    let decoded = decode::decode_records(resource, &body, &ranges);
    let replayed = decoded.records() as u64;
    let mapper = Mapper::new(resource, mapping.clone()).await?;
    let problems = schema.check_output(&mapper.output_schema());
    if !problems.is_empty() {
        return Err(PipelineError::Mismatch {
            mapping: mapping.origin.clone(),
            schema: schema.title().unwrap_or("XDM schema").to_string(),
            problems,
        });
    }
    let outcome = map_and_validate(schema, &mapper, decoded).await?;
    let mut still: BTreeMap<String, u64> = BTreeMap::new();
    for r in &outcome.rejected {
        *still.entry(primary_code(r)).or_default() += 1;
    }
    let ingested = outcome.accepted.num_rows() as u64;
    let mut report = ReplayReport {
        source_batch: manifest.batch_id.clone(),
        rejected_rows: total,
        already_replayed: skipped,
        replayed,
        ingested,
        still_rejected: still.clone(),
        from_mirror,
        new_batch_dir: None,
    };
    if ingested == 0 {
        return Ok(report);
    }
    let accepted_ids: Vec<String> = {
        use arrow::array::{Array, AsArray};
        let ids = outcome
            .accepted
            .column_by_name("_id")
            .map(|c| c.as_string::<i32>().clone());
        match ids {
            Some(ids) => (0..ids.len())
                .filter(|i| !ids.is_null(*i))
                .map(|i| ids.value(i).to_string())
                .collect(),
            None => Vec::new(),
        }
    };
    let batch_id = sink::new_batch_id();
    let mut writer = BatchWriter::create(
        DatasetDir::new(out, &dataset),
        &batch_id,
        schema.arrow_schema(),
        SinkOptions::default(),
    )?;
    writer.write(&outcome.accepted)?;
    writer.reject(&outcome.rejected)?;
    let now = chrono::Utc::now().to_rfc3339();
    let new_manifest = Manifest {
        batch_id: batch_id.clone(),
        dataset: dataset.clone(),
        resource: manifest.resource.clone(),
        schema: schema
            .id()
            .or(schema.title())
            .unwrap_or("XDM schema")
            .to_string(),
        mapping: mapping.origin.clone(),
        status: BatchStatus::Success,
        failure_reason: None,
        started_at: now.clone(),
        completed_at: now,
        window: manifest.window,
        error_diagnostics: manifest.error_diagnostics,
        partial_ingestion_percent: manifest.partial_ingestion_percent,
        metrics: Metrics {
            input_record_count: replayed,
            output_record_count: ingested,
            failed_record_count: replayed - ingested,
            warning_count: outcome.warnings,
            input_byte_size: body.len() as u64,
        },
        errors: error_summary(ingested, &still, manifest.error_diagnostics),
        files: Vec::new(),
        output_bytes: 0,
        rejected_file: None,
        diagnostics: Vec::new(),
        replay_of: Some(manifest.batch_id.clone()),
        staged: None,
        updated: 0,
        deleted: 0,
        parts: Vec::new(),
        part_of: None,
    };
    let diagnostics = new_manifest.error_diagnostics;
    let (dir, _) = writer.commit(new_manifest, diagnostics)?;
    // Record the ingested ids only after the new batch is committed: a crash in between
    // leaves them replayable (the new batch is then a duplicate only of itself, never lost).
    let mut all = done;
    all.extend(accepted_ids);
    write_replayed(batch_dir, &all)?;
    report.new_batch_dir = Some(dir);
    Ok(report)
}

/// The object ids of rejected rows.
fn rejected_ids(rows: &[arrow::array::RecordBatch]) -> impl Iterator<Item = String> + '_ {
    use arrow::array::{Array, AsArray};
    rows.iter()
        .filter_map(|b| b.column_by_name("object_id"))
        .flat_map(|c| {
            let ids = c.as_string::<i32>();
            (0..ids.len())
                .filter(|&i| !ids.is_null(i))
                .map(|i| ids.value(i).to_string())
                .collect::<Vec<_>>()
        })
}

fn read_replayed(batch_dir: &Path) -> Result<BTreeSet<String>, PipelineError> {
    let path = batch_dir.join(REPLAYED_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| PipelineError::Internal(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeSet::new()),
        Err(e) => Err(PipelineError::Internal(format!("{}: {e}", path.display()))),
    }
}

fn write_replayed(batch_dir: &Path, ids: &BTreeSet<String>) -> Result<(), PipelineError> {
    let path = batch_dir.join(REPLAYED_FILE);
    let tmp = batch_dir.join(format!("{REPLAYED_FILE}.tmp"));
    let text = serde_json::to_vec_pretty(ids).expect("ids serialize");
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|e| PipelineError::Internal(format!("{}: {e}", path.display())))
}
