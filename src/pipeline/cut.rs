//! Batches cut from the mirror (a remap, and a resumed run's checkpointed rows): mirror rows →
//! chunks → map → validate → the Platform batch.
//!
//! ```text
//! mirror scan (DataFusion over Delta) ──▶ chunks of source rows ──Outcome──▶ writer thread
//!                                          map in DataFusion,      bounded (1 chunk)
//!                                          validate on a blocking   Parquet + rejects
//!                                          task
//! ```
//!
//! Nothing here talks to Stripe: a resumed run cuts what it staged before its checkpoint, a
//! remap cuts the whole mirror. Cutting keeps no checkpoint: it is local and fast, and an
//! interrupted cut simply runs again.

use std::sync::mpsc as std_mpsc;

use arrow::array::RecordBatch;
use futures::StreamExt;

use super::drive::Totals;
use super::{map_and_validate_rows, Outcome, PipelineError, RunConfig};
use crate::map::Mapper;
use crate::sink::{BatchWriter, Rejection};
use crate::stage;
use crate::xdm::XdmSchema;
use crate::Resource;

/// Rejected rows held for one lookup of their `_raw` in the mirror (when the scan left `_raw`
/// out): bounds both the memory they take and the number of lookups.
const SOURCE_LOOKUP_ROWS: usize = 10_000;

/// Mapped chunks queued for the writer thread: one. A cut's chunks carry mapped rows only (no
/// `_raw` unless the mapping reads it), so the queue is small and keeps the writer busy.
const OUTCOME_CHANNEL: usize = 1;

/// Maps, validates and writes the mirror's rows (those of batch `batch` when given, else all)
/// into `writer`, in chunks of `chunk_records`; rejected rows are written too when `rejects` is
/// true (a resume has them sealed already). A mapping that does not read `_raw` gets rows
/// without it (most of the mirror's bytes), and the rejected rows' sources are looked up by id
/// afterwards. Returns the writer and the totals (`staged` = rows read, each of them accepted
/// or rejected).
pub(crate) async fn cut(
    cfg: &RunConfig,
    mapper: &Mapper,
    mirror: &stage::Mirror,
    batch: Option<&str>,
    writer: BatchWriter,
    rejects: bool,
) -> Result<(BatchWriter, Totals), PipelineError> {
    let (resource, schema, chunk_records) = (cfg.resource, &cfg.schema, cfg.chunk_records.max(1));
    let raw = mapper.reads_raw();
    let mut rows = mirror.scan(batch, raw).await?;
    let (tx, rx) = std_mpsc::sync_channel::<Outcome>(OUTCOME_CHANNEL);
    let handle = std::thread::spawn(move || -> Result<BatchWriter, PipelineError> {
        let mut writer = writer;
        for outcome in rx {
            writer.write(&outcome.accepted)?;
            if rejects {
                writer.reject(&outcome.rejected)?;
            }
        }
        Ok(writer)
    });
    let mut totals = Totals::default();
    let mut pending: Vec<RecordBatch> = Vec::new();
    let mut pending_rows = 0usize;
    let mut read = 0u64;
    let mut sourceless: Vec<Rejection> = Vec::new();
    let mut failure = None;
    loop {
        let next = rows.next().await;
        let done = next.is_none();
        match next {
            Some(Ok(b)) => {
                // A remap reads the whole mirror and keeps the dataflow's own span.
                let b = match batch {
                    None => match within(b, &cfg.window, &cfg.remap_batches) {
                        Ok(b) => b,
                        Err(e) => {
                            failure = Some(e);
                            break;
                        }
                    },
                    Some(_) => b,
                };
                read += b.num_rows() as u64;
                pending_rows += b.num_rows();
                pending.push(b);
            }
            Some(Err(e)) => {
                failure = Some(PipelineError::Stage(stage::StageError::Query {
                    path: mirror.path().to_path_buf(),
                    action: "reading staged records",
                    source: Box::new(e),
                }));
                break;
            }
            None => {}
        }
        while pending_rows >= chunk_records || (done && pending_rows > 0) {
            // Exactly `chunk_records` rows per chunk (the rest waits for the next batch).
            let all = match pending.as_slice() {
                [one] => one.clone(),
                many => match arrow::compute::concat_batches(&many[0].schema(), many) {
                    Ok(b) => b,
                    Err(e) => {
                        failure = Some(arrow_err(e));
                        break;
                    }
                },
            };
            let take = chunk_records.min(all.num_rows());
            let chunk = vec![all.slice(0, take)];
            pending = if take < all.num_rows() {
                vec![all.slice(take, all.num_rows() - take)]
            } else {
                Vec::new()
            };
            pending_rows -= take;
            match process(resource, schema, mapper, chunk).await {
                Ok(mut outcome) => {
                    totals.counts.staged +=
                        outcome.accepted.num_rows() as u64 + outcome.rejected.len() as u64;
                    totals.counts.ingested += outcome.accepted.num_rows() as u64;
                    totals.counts.warnings += outcome.warnings;
                    totals.count_rejected(&outcome.rejected);
                    if rejects && !raw {
                        sourceless.append(&mut outcome.rejected);
                        if sourceless.len() >= SOURCE_LOOKUP_ROWS {
                            outcome.rejected = with_sources(mirror, &mut sourceless).await?;
                        }
                    }
                    if tx.send(outcome).is_err() {
                        failure = Some(PipelineError::Internal("batch writer stopped".into()));
                        break;
                    }
                }
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        if failure.is_some() || done {
            break;
        }
    }
    if failure.is_none() {
        match undecodable(cfg, mapper, mirror, batch, &tx, &mut totals).await {
            Ok(n) => read += n,
            Err(e) => failure = Some(e),
        }
    }
    if failure.is_none() && !sourceless.is_empty() {
        match with_sources(mirror, &mut sourceless).await {
            Ok(rejected) => {
                let accepted = RecordBatch::new_empty(cfg.schema.arrow_schema());
                let outcome = Outcome {
                    accepted,
                    rejected,
                    warnings: 0,
                };
                if tx.send(outcome).is_err() {
                    failure = Some(PipelineError::Internal("batch writer stopped".into()));
                }
            }
            Err(e) => failure = Some(e),
        }
    }
    drop(tx);
    let writer = handle
        .join()
        .map_err(|_| PipelineError::Internal("batch writer panicked".into()))?;
    if let Some(e) = failure {
        // The writer's own error says why it stopped taking chunks.
        return Err(match (e, writer) {
            (PipelineError::Internal(_), Err(cause)) => cause,
            (e, _) => e,
        });
    }
    if totals.counts.staged != read {
        return Err(PipelineError::Internal(format!(
            "record accounting broke: {read} rows read from the mirror, {} mapped or rejected",
            totals.counts.staged
        )));
    }
    Ok((writer?, totals))
}

/// The records staged without decoding (batch `batch`'s, or all), decoded again from their
/// `_raw` (a newer decoder may read them now) and mapped and validated; those that still do
/// not decode are rejected under `INGEST-1401-400` with the decoder's reason. Sends the
/// outcomes to the writer and adds them to `totals`; returns the rows read.
async fn undecodable(
    cfg: &RunConfig,
    mapper: &Mapper,
    mirror: &stage::Mirror,
    batch: Option<&str>,
    tx: &std_mpsc::SyncSender<Outcome>,
    totals: &mut Totals,
) -> Result<u64, PipelineError> {
    let mut rows = mirror.undecodable(batch).await?;
    let mut read = 0u64;
    while let Some(b) = rows.next().await {
        let b = b.map_err(|source| {
            PipelineError::Stage(stage::StageError::Query {
                path: mirror.path().to_path_buf(),
                action: "reading records that did not decode",
                source: Box::new(source),
            })
        })?;
        read += b.num_rows() as u64;
        let raw = stage::raw_column(&b);
        let (body, records) = crate::decode::join_records(
            (0..b.num_rows()).map(|row| raw.and_then(|r| r.value(row)).unwrap_or("").as_bytes()),
        );
        let decoded = crate::decode::decode_records(cfg.resource, &body, &records);
        let outcome = super::map_and_validate(&cfg.schema, mapper, decoded).await?;
        totals.counts.staged += b.num_rows() as u64;
        totals.counts.ingested += outcome.accepted.num_rows() as u64;
        totals.counts.warnings += outcome.warnings;
        totals.count_rejected(&outcome.rejected);
        if tx.send(outcome).is_err() {
            return Err(PipelineError::Internal("batch writer stopped".into()));
        }
    }
    Ok(read)
}

/// Takes `rows` and fills in each one's source: its object's `_raw` in the mirror.
async fn with_sources(
    mirror: &stage::Mirror,
    rows: &mut Vec<Rejection>,
) -> Result<Vec<Rejection>, PipelineError> {
    let mut rows = std::mem::take(rows);
    let ids: std::collections::HashSet<String> =
        rows.iter().filter_map(|r| r.object_id.clone()).collect();
    let raw = mirror.raw_of(&ids).await?;
    for r in &mut rows {
        if let Some(text) = r.object_id.as_ref().and_then(|id| raw.get(id)) {
            r.source = text.clone();
        }
    }
    Ok(rows)
}

/// One chunk of mirror rows, mapped and validated.
async fn process(
    resource: Resource,
    schema: &XdmSchema,
    mapper: &Mapper,
    chunk: Vec<RecordBatch>,
) -> Result<Outcome, PipelineError> {
    let source =
        tokio::task::spawn_blocking(move || -> Result<RecordBatch, arrow::error::ArrowError> {
            let parts = chunk
                .iter()
                .map(|b| stage::to_source(b, resource))
                .collect::<Result<Vec<_>, _>>()?;
            match parts.first() {
                Some(first) => arrow::compute::concat_batches(&first.schema(), &parts),
                None => Ok(RecordBatch::new_empty(crate::decode::source_schema(
                    resource,
                ))),
            }
        })
        .await
        .map_err(|source| PipelineError::Task {
            what: "cut",
            source,
        })?
        .map_err(arrow_err)?;
    map_and_validate_rows(schema, mapper, source).await
}

fn arrow_err(e: arrow::error::ArrowError) -> PipelineError {
    PipelineError::Stage(stage::StageError::Arrow {
        path: Default::default(),
        action: "reading staged records back",
        source: Box::new(e),
    })
}

/// The rows of `b` whose `created` falls in `window` or that one of `batches` staged (all of
/// them for an unbounded window); rows without `created` are kept, as no window can place them.
fn within(
    b: RecordBatch,
    window: &crate::source::Window,
    batches: &[String],
) -> Result<RecordBatch, PipelineError> {
    use arrow::array::{Array, AsArray, BooleanArray};
    use arrow::datatypes::TimestampSecondType;
    if window.gte.is_none() && window.lt.is_none() {
        return Ok(b);
    }
    let Some(created) = b.column_by_name("created") else {
        return Ok(b);
    };
    // The mirror keeps Delta's microseconds; the window is in seconds.
    let seconds = arrow::datatypes::DataType::Timestamp(arrow::datatypes::TimeUnit::Second, None);
    let created = arrow::compute::cast(created, &seconds).map_err(arrow_err)?;
    let Some(created) = created.as_primitive_opt::<TimestampSecondType>() else {
        return Err(PipelineError::Internal(format!(
            "the mirror's `created` is {}, not a timestamp",
            created.data_type()
        )));
    };
    let staged_by = match b.column_by_name(stage::BATCH_COLUMN) {
        Some(c) => {
            Some(arrow::compute::cast(c, &arrow::datatypes::DataType::Utf8).map_err(arrow_err)?)
        }
        None => None,
    };
    let staged_by = staged_by.as_ref().map(|c| c.as_string::<i32>());
    let batches: std::collections::HashSet<&str> = batches.iter().map(String::as_str).collect();
    let keep: BooleanArray = (0..created.len())
        .map(|i| {
            let in_window = created.is_null(i) || {
                let t = created.value(i);
                window.gte.is_none_or(|g| t >= g) && window.lt.is_none_or(|l| t < l)
            };
            let ours = || staged_by.is_some_and(|s| s.is_valid(i) && batches.contains(s.value(i)));
            Some(in_window || ours())
        })
        .collect();
    arrow::compute::filter_record_batch(&b, &keep).map_err(arrow_err)
}
