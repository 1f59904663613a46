//! One run: fetch → decode → map → validate → sink, wired with bounded channels, and its report.
//!
//! The fetcher runs as its own task and hands pages over a bounded channel (backpressure: the
//! API is never read faster than the engine writes). Pages are grouped into chunks; a chunk is
//! decoded on the rayon pool, mapped with DataFusion and validated, then handed to a writer
//! thread (a rendezvous: when it has written the chunk before), so Parquet encoding overlaps the
//! next chunk's decoding. Memory is bounded by the channel capacities and the chunk size, not by
//! the run's size.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::map::{MapError, Mapper, Mapping};
use crate::metrics::RecordCounts;
use crate::sink::{self, BatchStatus, DatasetDir, Manifest, Metrics, SinkError, SinkOptions};

use crate::source::{SourceError, StripeClient, Window};
use crate::stage::{CompactPolicy, Mirror, StageError};

mod changes;
mod chunk;
mod control;
mod cut;
mod drive;
mod outcome;
mod remap;
mod resume;
use crate::xdm::{SchemaProblem, XdmError, XdmSchema};
use crate::Resource;
pub use changes::{Changes, Tombstone, ABSENT, DELETES_FILE, EVENT_HORIZON_SECS, EVENT_LAG_SECS};
pub use control::{
    CheckpointStore, Dedup, MemoryCheckpoints, Progress, ProgressSink, RunControl, MAX_CONCURRENCY,
};
pub use drive::{
    checkpoint_totals, CheckpointTotals, CHUNK_CHANNEL, EARLIEST_CREATED, PAGE_CHANNEL,
};
pub use outcome::{code_message, threshold_failure};
pub(crate) use outcome::{
    decode_rejections, error_summary, map_and_validate, map_and_validate_rows, primary_code,
    Outcome,
};
pub use remap::remap;

/// The file of a batch holding the `(id, created)` of its objects in the next run's re-read
/// span (dataflow runs only).
pub const TRAILING_FILE: &str = "trailing.json";

/// Records per chunk handed to DataFusion: large enough to amortise planning, small enough to
/// keep memory flat.
pub const DEFAULT_CHUNK_RECORDS: usize = 8192;

/// What one run does.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// The resource path to fetch.
    pub resource: Resource,
    /// The mapping SQL.
    pub mapping: Mapping,
    /// The target XDM schema.
    pub schema: XdmSchema,
    /// Output folder; the batch goes to `<out>/<dataset>/batches/<batch id>/`.
    pub out_dir: PathBuf,
    /// Dataset name (defaults to the resource path).
    pub dataset: String,
    /// The `created` window.
    pub window: Window,
    /// Write Platform-style diagnostics for rejected rows.
    pub error_diagnostics: bool,
    /// Partial ingestion threshold in percent; `None` means partial ingestion is off and any
    /// rejected row fails the run.
    pub partial_ingestion: Option<f64>,
    /// Records per processing chunk.
    pub chunk_records: usize,
    /// File size settings.
    pub sink: SinkOptions,
    /// A batch id to use (a fresh one when `None`).
    pub batch_id: Option<String>,
    /// Cancellation, checkpoints, concurrency and progress.
    pub control: RunControl,
    /// The mirror table (`None`: `<out_dir>/mirror/<resource>`).
    pub mirror: Option<PathBuf>,
    /// When the mirror is compacted after the run.
    pub compaction: CompactPolicy,
    /// Change capture (dataflow runs after the first): events since the cursor, or a full
    /// re-read past the event horizon. `None` reads the window's list only.
    pub changes: Option<Changes>,
    /// The Stripe connected account the records are read through (`Stripe-Account`), for the
    /// mapping's `connected_account()`; `None` for the platform's own.
    pub stripe_account: Option<String>,
    /// A remap's batches: rows they staged are mapped even when created outside `window`
    /// (objects change capture took after they were first read).
    pub remap_batches: Vec<String>,
}

impl RunConfig {
    /// The mirror table's folder.
    pub fn mirror_dir(&self) -> PathBuf {
        self.mirror
            .clone()
            .unwrap_or_else(|| self.out_dir.join("mirror").join(self.resource.path()))
    }
}

impl RunConfig {
    /// A run of `resource` with its built-in mapping and schema, partial ingestion at 5%.
    pub fn builtin(resource: Resource, tenant: &str, out_dir: PathBuf) -> Result<Self, XdmError> {
        let schema_text =
            crate::map::substitute_tenant(crate::defaults::xdm_schema_json(resource), tenant);
        Ok(RunConfig {
            resource,
            mapping: Mapping::builtin(resource, tenant),
            schema: XdmSchema::from_json_str(&schema_text)?,
            out_dir,
            dataset: resource.path().to_string(),
            window: Window::default(),
            error_diagnostics: true,
            partial_ingestion: Some(5.0),
            chunk_records: DEFAULT_CHUNK_RECORDS,
            sink: SinkOptions::default(),
            batch_id: None,
            control: RunControl::default(),
            mirror: None,
            compaction: CompactPolicy::default(),
            changes: None,
            stripe_account: None,
            remap_batches: Vec::new(),
        })
    }
}

/// Why a run could not complete (data problems are not errors: they are rejected rows).
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// Fetching from Stripe failed.
    #[error(transparent)]
    Source(Box<SourceError>),
    /// The mapping cannot be used.
    #[error(transparent)]
    Map(#[from] MapError),
    /// The schema or validation failed.
    #[error(transparent)]
    Xdm(#[from] XdmError),
    /// Writing the batch failed.
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// The mapping's output does not fit the XDM schema.
    #[error("mapping {mapping} does not fit XDM schema {schema}:\n{}", problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Mismatch {
        /// The mapping's origin.
        mapping: String,
        /// The schema's name.
        schema: String,
        /// Every problem found.
        problems: Vec<SchemaProblem>,
    },
    /// A processing task died.
    #[error("internal error: {0}")]
    Internal(String),
    /// A task of the run (decoding, validating, committing, fetching) panicked or was
    /// cancelled.
    #[error("internal error: the {what} task failed: {source}")]
    Task {
        /// Which task.
        what: &'static str,
        /// Why it ended.
        #[source]
        source: tokio::task::JoinError,
    },
    /// The run was stopped from outside (Ctrl-C, shutdown) before it committed; its staged data
    /// and checkpoint stay for a resume.
    #[error("the run was interrupted before it committed; it resumes from its last checkpoint")]
    Cancelled,
    /// A checkpoint could not be saved or read.
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    /// The mirror could not be read or written.
    #[error(transparent)]
    Stage(#[from] StageError),
}

impl From<SourceError> for PipelineError {
    fn from(e: SourceError) -> Self {
        PipelineError::Source(Box::new(e))
    }
}

impl PipelineError {
    /// True for errors caused by configuration or credentials (exit code 2); for Stripe's,
    /// [`SourceError::is_usage`] decides.
    pub fn is_usage(&self) -> bool {
        match self {
            PipelineError::Source(e) => e.is_usage(),
            PipelineError::Map(_) | PipelineError::Xdm(_) | PipelineError::Mismatch { .. } => true,
            _ => false,
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// The batch id.
    pub batch_id: String,
    /// The resource path.
    pub resource: String,
    /// The dataset.
    pub dataset: String,
    /// Success or failed.
    pub status: BatchStatus,
    /// Why the run failed.
    pub failure_reason: Option<String>,
    /// What the run received and where the records went (`files`, `bytes_out`: the accepted
    /// Parquet files of all its batches).
    #[serde(flatten)]
    pub counts: RecordCounts,
    /// HTTP requests sent (retries included).
    pub requests: u64,
    /// Retries.
    pub retries: u64,
    /// 429 responses seen.
    pub throttled: u64,
    /// Checkpoints saved by this attempt (0 without a checkpoint store).
    pub checkpoints: u64,
    /// Records of the re-read span dropped as already committed by the previous run.
    pub duplicates_skipped: u64,
    /// `(id, created)` of the objects in the next run's re-read span ([`Dedup::trailing_from`]).
    #[serde(skip)]
    pub trailing: Vec<(String, i64)>,
    /// Wall time.
    pub duration: Duration,
    /// The ids of further batches the output was split into (Platform's per-batch limits),
    /// beside `batch_dir`.
    pub parts: Vec<String>,
    /// The mirror's table version after the run.
    pub mirror_version: u64,
    /// Where the batch (or the failed run's rejects) went.
    pub batch_dir: PathBuf,
}

impl RunReport {
    /// The report as JSON, with its records ingested as Platform counts them: none for a
    /// failed batch (Platform ingests nothing of it), and `passed_validation` saying how many
    /// had passed.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        let ingested = match self.status {
            sink::BatchStatus::Failed => 0,
            _ => self.counts.ingested,
        };
        crate::catalog::platform_counts(&mut v, ingested, self.counts.ingested);
        v
    }

    /// Ingested records per second of wall time.
    pub fn records_per_sec(&self) -> f64 {
        self.counts.fetched as f64 / self.duration.as_secs_f64().max(1e-9)
    }
}

/// Runs one resource through the whole pipeline: fetch, decode, then both stage into the mirror
/// and map and validate into the batch (with checkpoints); commit the batch(es).
pub async fn run(client: &StripeClient, cfg: RunConfig) -> Result<RunReport, PipelineError> {
    let started = Instant::now();
    let started_at = chrono::Utc::now();
    let mapper = checked_mapper(&cfg).await?;
    let before = client.stats();
    let mut cfg = cfg;
    let batch_id = cfg.batch_id.clone().unwrap_or_else(sink::new_batch_id);
    cfg.batch_id = Some(batch_id.clone());
    let dirs = DatasetDir::new(&cfg.out_dir, &cfg.dataset);
    if cfg.control.checkpoints.is_some() {
        // An earlier attempt of this run may have committed its batch and died before the
        // catalog heard of it: the batch is the run's outcome, not something to redo.
        if let Some(report) = resume::committed_report(&dirs, &batch_id, &cfg)? {
            return Ok(report);
        }
    }
    // Held until the batch is committed: another run on this mirror waits.
    let _lock = crate::stage::lock(&cfg.mirror_dir()).await?;
    let mirror = Mirror::open(&cfg.mirror_dir(), cfg.resource).await?;
    let (writer, mut start, resumed) = resume::open(&cfg, &mapper, dirs, &batch_id, mirror).await?;
    let staging = writer.staging_dir().to_path_buf();
    if let Some(Changes::Events { since, upto }) = cfg.changes {
        if !start.totals.changes_read {
            let set = match changes::read(client, &cfg, since, upto).await {
                Ok(set) => set,
                Err(e) => {
                    // Nothing of this attempt is staged yet: the run starts over next time.
                    if !resumed {
                        discard_staging(&staging);
                    }
                    return Err(e);
                }
            };
            if !set.changes.is_empty() && start.stage.mode() == crate::stage::WriteMode::Append {
                // Changed objects are in the mirror already: upsert them.
                start.stage = start.mirror.writer(crate::stage::WriteMode::Merge)?;
            }
            start.changes = Some(set);
        }
    }
    let changed: std::collections::HashSet<String> = start
        .totals
        .listed_changed
        .iter()
        .chain(start.changes.iter().flat_map(|s| s.listed_changed.iter()))
        .cloned()
        .collect();
    if let Some(dedup) = cfg.control.dedup.as_mut() {
        dedup.changed = std::sync::Arc::new(changed);
    }
    if resumed {
        tracing::info!(batch = %batch_id, "resuming from a checkpoint");
    }

    let result = drive::drive(client, &cfg, &mapper, writer, start).await;
    let (written, totals) = match result {
        Ok(ok) => ok,
        Err(PipelineError::Cancelled) if cfg.control.checkpoints.is_some() => {
            // Staged data and its checkpoint stay for the resume.
            return Err(PipelineError::Cancelled);
        }
        Err(e) => {
            // No batch from a run that did not finish: drop its staging area.
            discard_staging(&staging);
            return Err(e);
        }
    };
    let (writer, mut mirror, checkpoints) = (written.writer, written.mirror, written.checkpoints);
    let stats = client.stats();
    let fetched = totals.counts.fetched;
    let rejected: u64 = totals.counts.rejected;
    let ingested = totals.counts.ingested;
    if fetched != ingested + rejected || fetched != totals.counts.staged {
        discard_staging(&staging);
        return Err(PipelineError::Internal(format!(
            "record accounting broke: fetched {fetched} != ingested {ingested} + rejected {rejected}, or != staged {}",
            totals.counts.staged
        )));
    }
    let failure_reason = threshold_failure(fetched, rejected, cfg.partial_ingestion);
    let status = if failure_reason.is_some() {
        BatchStatus::Failed
    } else {
        BatchStatus::Success
    };
    let manifest = new_manifest(
        &cfg,
        &batch_id,
        (status, failure_reason.clone()),
        started_at,
        (cfg.window.gte, cfg.window.lt),
        &totals,
    );
    if cfg.control.dedup.is_some() {
        // Kept with the batch, so a batch committed just before a crash still tells the next
        // run which objects of its re-read span are known.
        let path = staging.join(TRAILING_FILE);
        let json = serde_json::to_vec(&totals.trailing).expect("ids serialize");
        std::fs::write(&path, json).map_err(crate::sink::io_err("writing", &path))?;
    }
    changes::write_deletes(&staging, cfg.resource, &totals.deletes)?;
    let diagnostics = manifest.error_diagnostics;
    let (batch_dir, manifest) = commit(writer, manifest, diagnostics).await?;
    // Compaction is housekeeping: the batch is committed whatever it says.
    if let Err(e) = mirror.compact(&cfg.compaction).await {
        tracing::warn!(mirror = %mirror.path().display(), error = %e, "compacting the mirror failed; the next run tries again");
    }
    Ok(RunReport {
        batch_id,
        resource: cfg.resource.path().to_string(),
        dataset: cfg.dataset.clone(),
        status,
        failure_reason,
        counts: RecordCounts {
            fetched,
            ingested,
            rejected,
            bytes_out: manifest.output_bytes + manifest.parts.iter().map(|p| p.bytes).sum::<u64>(),
            files: (manifest.files.len() + manifest.parts.iter().map(|p| p.files).sum::<usize>())
                as u64,
            ..totals.counts
        },
        requests: stats.requests - before.requests,
        retries: stats.retries - before.retries,
        throttled: stats.throttled - before.throttled,
        checkpoints,
        duplicates_skipped: totals.skipped,
        trailing: totals.trailing,
        duration: started.elapsed(),
        parts: manifest.parts.iter().map(|p| p.batch_id.clone()).collect(),
        mirror_version: mirror.version(),
        batch_dir,
    })
}

/// Commits a batch off the async threads (file renames and the reject join block).
pub(crate) async fn commit(
    writer: sink::BatchWriter,
    manifest: Manifest,
    diagnostics: bool,
) -> Result<(PathBuf, Manifest), PipelineError> {
    tokio::task::spawn_blocking(move || writer.commit(manifest, diagnostics))
        .await
        .map_err(|source| PipelineError::Task {
            what: "batch commit",
            source,
        })?
        .map_err(PipelineError::from)
}

/// The mapping compiled against the resource, refused when its output does not fit the schema.
pub(crate) async fn checked_mapper(cfg: &RunConfig) -> Result<Mapper, PipelineError> {
    let mapper = Mapper::for_account(
        cfg.resource,
        cfg.mapping.clone(),
        cfg.stripe_account.as_deref(),
    )
    .await?;
    let problems = cfg.schema.check_output(&mapper.output_schema());
    if !problems.is_empty() {
        return Err(PipelineError::Mismatch {
            mapping: cfg.mapping.origin.clone(),
            schema: schema_name(&cfg.schema),
            problems,
        });
    }
    Ok(mapper)
}

/// The manifest of a run's (or a remap's) batch before the sink fills in its files: `totals`
/// give the counts (`fetched` = records in, `staged` = records staged).
pub(crate) fn new_manifest(
    cfg: &RunConfig,
    batch_id: &str,
    (status, failure_reason): (BatchStatus, Option<String>),
    started_at: chrono::DateTime<chrono::Utc>,
    window: (Option<i64>, Option<i64>),
    totals: &drive::Totals,
) -> Manifest {
    let diagnostics = cfg.error_diagnostics || cfg.partial_ingestion.is_some();
    Manifest {
        batch_id: batch_id.to_string(),
        dataset: cfg.dataset.clone(),
        resource: cfg.resource.path().to_string(),
        schema: schema_name(&cfg.schema),
        mapping: cfg.mapping.origin.clone(),
        status,
        failure_reason,
        started_at: started_at.to_rfc3339(),
        completed_at: chrono::Utc::now().to_rfc3339(),
        window,
        error_diagnostics: diagnostics,
        partial_ingestion_percent: cfg.partial_ingestion,
        metrics: Metrics {
            input_record_count: totals.counts.fetched,
            output_record_count: totals.counts.ingested,
            failed_record_count: totals.counts.rejected,
            warning_count: totals.counts.warnings,
            input_byte_size: totals.counts.bytes_in,
        },
        errors: error_summary(
            totals.counts.ingested,
            &totals.counts.rejected_by_code,
            diagnostics,
        ),
        files: Vec::new(),
        output_bytes: 0,
        rejected_file: None,
        diagnostics: Vec::new(),
        replay_of: None,
        staged: Some(totals.counts.staged),
        updated: totals.counts.updated,
        deleted: totals.counts.deleted,
        parts: Vec::new(),
        part_of: None,
    }
}

fn schema_name(schema: &XdmSchema) -> String {
    schema
        .id()
        .or(schema.title())
        .unwrap_or("(untitled XDM schema)")
        .to_string()
}

/// Drops the staging area of a run that leaves no batch, and the folders above it that it
/// leaves empty (`.staging`, the dataset's folder of a first run): a refused run (a wrong key)
/// leaves no empty folders behind.
pub(crate) fn discard_staging(staging: &std::path::Path) {
    let _ = std::fs::remove_dir_all(staging);
    // `remove_dir` removes only empty folders: a dataset's batches or another run's staging
    // stay.
    for dir in staging.ancestors().skip(1).take(2) {
        if std::fs::remove_dir(dir).is_err() {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stripe(status: u16) -> SourceError {
        SourceError::refused(status)
    }

    fn exhausted(last_status: Option<u16>) -> SourceError {
        SourceError::RetriesExhausted {
            endpoint: "GET /v1/charges".into(),
            attempts: 4,
            last_status,
            request_id: None,
            last_error: "connection refused".into(),
        }
    }

    #[test]
    fn refusals_are_usage_errors_and_outages_are_not() {
        let usage = |e: SourceError| PipelineError::from(e).is_usage();
        for status in [400, 401, 403, 404] {
            assert!(usage(stripe(status)), "{status}");
        }
        assert!(usage(SourceError::Config("bad base URL".into())));
        assert!(usage(SourceError::Network {
            endpoint: "GET /v1/charges".into(),
            message: "builder error".into(),
        }));
        for status in [429, 500, 503] {
            assert!(!usage(stripe(status)), "{status}");
        }
        for last in [None, Some(429), Some(502)] {
            assert!(!usage(exhausted(last)), "{last:?}");
        }
        assert!(!usage(SourceError::InvalidResponse {
            endpoint: "GET /v1/account".into(),
            request_id: None,
            message: "not an object".into(),
        }));
    }
}
