//! Change capture inside a run: objects changed since the dataflow's event cursor are staged
//! at their new version and written to the run's batch like listed records (same `_id`, so
//! Platform updates them in place); deleted objects become tombstones in the mirror and rows of
//! the batch's `deletes.parquet`.
//!
//! The changed objects of a run are read before its list is walked and staged as the run's
//! first checkpoint, so a resume does not read them again. When the event cursor fell out of
//! Stripe's 30-day event horizon the run re-reads the whole list instead ([`Changes::Reread`]);
//! objects of deletable resources the mirror holds that the list no longer returns become
//! tombstones at its end.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use arrow::error::ArrowError;
use bytes::Bytes;
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::chunk::Processed;
use super::drive::Totals;
use super::{PipelineError, RunConfig};
use crate::decode;
use crate::map::Mapper;
use crate::metrics::RecordCounts;
use crate::source::{Change, ChangeKind, ChangeQuery, ChangeSet, Page, StripeClient, Window};
use crate::stage::{self, Mirror, StageError, DELETED_AT_COLUMN};
use crate::Resource;

/// Seconds the event cursor stays behind now: Stripe's events are eventually consistent.
pub const EVENT_LAG_SECS: i64 = 60;
/// A cursor older than this cannot be trusted to find every event (Stripe keeps them 30
/// days): the run re-reads the list in full.
pub const EVENT_HORIZON_SECS: i64 = 29 * 86_400;

/// The file beside a batch's data files that lists the objects deleted in Stripe.
pub const DELETES_FILE: &str = "deletes.parquet";

/// How a run captures changes to objects earlier runs read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Changes {
    /// Read the events created in `(since, upto]` and stage the objects they name.
    Events {
        /// The dataflow's event cursor.
        since: i64,
        /// The end of this run's reading (its window's end, behind now).
        upto: i64,
    },
    /// The cursor is past Stripe's event horizon: the run's window is the whole list, and
    /// objects of deletable resources it does not return become tombstones, deleted at `at`.
    Reread {
        /// When the absent objects count as deleted.
        at: i64,
    },
}

/// One object deleted in Stripe, as recorded in `deletes.parquet`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tombstone {
    /// The Stripe id.
    pub id: String,
    /// The record's XDM `_id` under the run's mapping (when it maps one).
    pub xdm_id: Option<String>,
    /// The event that told of the deletion (`None` for an object absent from a full re-read).
    pub event_id: Option<String>,
    /// The event's type, or `absent_from_list`.
    pub event_type: String,
    /// When it was deleted (unix seconds).
    pub deleted_at: i64,
}

/// The event type recorded for objects a full re-read no longer finds.
pub const ABSENT: &str = "absent_from_list";

/// Reads the changes since the cursor (`Changes::Events`), skipping objects the run's list
/// reads anyway.
pub(super) async fn read(
    client: &StripeClient,
    cfg: &RunConfig,
    since: i64,
    upto: i64,
) -> Result<ChangeSet, PipelineError> {
    let source = decode::source_schema(cfg.resource);
    let q = ChangeQuery {
        resource: cfg.resource,
        since,
        upto,
        listed_from: cfg.window.gte,
        required_fields: source
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .filter(|n| n != decode::RAW_COLUMN)
            .collect(),
    };
    Ok(client.read_changes(&q).await?)
}

/// A page holding raw objects (changed objects, or tombstones' last versions).
fn page_of(resource: Resource, objects: &[&Bytes]) -> Page {
    let (body, records) = decode::join_records(objects.iter().map(|o| o.as_ref()));
    Page {
        resource,
        body,
        records,
        has_more: false,
        request_id: None,
        window: Window::default(),
        starting_after: None,
        next_cursor: None,
    }
}

/// The chunks a change set becomes: updated objects decoded, staged, mapped and validated
/// like listed ones; deleted objects as tombstones (staged only). The first chunk's totals
/// mark the changes read and carry the ids the list must not drop as known.
pub(super) async fn chunks(
    cfg: &RunConfig,
    client: &StripeClient,
    mapper: &Mapper,
    set: ChangeSet,
) -> Result<Vec<Processed>, PipelineError> {
    let mut out = Vec::new();
    let updated: Vec<&Change> = set.of(ChangeKind::Updated).collect();
    for group in updated.chunks(cfg.chunk_records.max(1)) {
        let objects: Vec<&Bytes> = group.iter().map(|c| &c.object).collect();
        let page = page_of(cfg.resource, &objects);
        let mut p = super::chunk::process_pages(cfg, client, mapper, vec![page], false).await?;
        p.totals.counts.pages = 0;
        p.totals.counts.updated = p.totals.counts.fetched;
        out.push(p);
    }
    let deleted: Vec<&Change> = set.of(ChangeKind::Deleted).collect();
    for group in deleted.chunks(cfg.chunk_records.max(1)) {
        out.push(tombstones(cfg, client, mapper, group).await?);
    }
    let mut marker = Totals {
        counts: RecordCounts {
            events_read: set.events,
            ..Default::default()
        },
        changes_read: true,
        listed_changed: set.listed_changed.clone(),
        ..Totals::default()
    };
    match out.first_mut() {
        Some(first) => first.totals.add(&std::mem::take(&mut marker)),
        None => out.push(Processed::empty(marker)),
    }
    Ok(out)
}

/// Tombstones for deleted objects: their last known version, staged with `_deleted_at`.
async fn tombstones(
    cfg: &RunConfig,
    client: &StripeClient,
    mapper: &Mapper,
    group: &[&Change],
) -> Result<Processed, PipelineError> {
    let objects: Vec<&Bytes> = group.iter().map(|c| &c.object).collect();
    let page = page_of(cfg.resource, &objects);
    let mut decoded = decode::decode_pages(cfg.resource, &[(&page.body, &page.records[..])]);
    let at: HashMap<&str, i64> = group.iter().map(|c| (c.id.as_str(), c.at)).collect();
    let (now, api_version) = (chrono::Utc::now(), &client.config().stripe_version);
    let batch_id = cfg.batch_id.as_deref().unwrap_or_default();
    let source = decoded.source_batch();
    let mut staged = vec![stamp_deleted(
        &stage::stage_columns(&source, now, api_version, batch_id, None),
        |id| at.get(id).copied(),
    )?];
    let rejected = std::mem::take(&mut decoded.rejected);
    let (known, unknown): (Vec<_>, Vec<_>) = rejected
        .into_iter()
        .partition(|r| r.id.as_deref().is_some_and(|id| at.contains_key(id)));
    for r in unknown {
        tracing::warn!(id = r.id.as_deref().unwrap_or("?"), reason = %r.reason, "a deleted object's payload has no id of the change set; it is listed in deletes.parquet only");
    }
    let mut source = source;
    if !known.is_empty() {
        // A payload that does not decode (another API version can differ in types) still
        // deletes the object: its tombstone is the payload as received, with its reason, like
        // a listed record that did not decode. Its XDM id comes from a stub of the id alone.
        let rows = stage::undecodable_rows(cfg.resource, &known, now, api_version, batch_id)
            .map_err(arrow_err("staging tombstones that did not decode"))?;
        staged.push(stamp_deleted(&rows, |id| at.get(id).copied())?);
        let stubs: Vec<Bytes> = known
            .iter()
            .filter_map(|r| r.id.as_deref())
            .map(|id| stub(cfg.resource, id, at[id]))
            .collect();
        let refs: Vec<&Bytes> = stubs.iter().collect();
        let page = page_of(cfg.resource, &refs);
        let again = decode::decode_pages(cfg.resource, &[(&page.body, &page.records[..])]);
        source = decode::concat(cfg.resource, vec![decoded, again]).source_batch();
    }
    let xdm_ids = xdm_ids(mapper, source).await;
    let mut totals = Totals::default();
    for c in group {
        totals.counts.deleted += 1;
        totals.deletes.push(Tombstone {
            id: c.id.clone(),
            xdm_id: xdm_ids.get(&c.id).cloned(),
            event_id: Some(c.event_id.clone()),
            event_type: c.event_type.clone(),
            deleted_at: c.at,
        });
    }
    Ok(Processed::tombstones(staged, totals))
}

/// The smallest object that decodes (id, object name and `created`), to map a deleted object's
/// XDM id when its payload did not decode.
fn stub(resource: Resource, id: &str, at: i64) -> Bytes {
    Bytes::from(
        serde_json::json!({"id": id, "object": resource.object_name(), "created": at}).to_string(),
    )
}

/// Sets `_deleted_at` of each staged row from its id.
fn stamp_deleted(
    staged: &RecordBatch,
    at: impl Fn(&str) -> Option<i64>,
) -> Result<RecordBatch, PipelineError> {
    let schema = staged.schema();
    let (Some(ids), Some((pos, _))) = (
        staged.column(0).as_string_opt::<i32>(),
        schema.column_with_name(DELETED_AT_COLUMN),
    ) else {
        return Err(PipelineError::Internal(
            "staged rows without id or _deleted_at".into(),
        ));
    };
    let values: TimestampMicrosecondArray = ids
        .iter()
        .map(|id| id.and_then(&at).map(|s| s * 1_000_000))
        .collect::<TimestampMicrosecondArray>()
        .with_timezone("UTC");
    let mut columns = staged.columns().to_vec();
    columns[pos] = Arc::new(values);
    RecordBatch::try_new(schema, columns).map_err(arrow_err("stamping tombstones"))
}

/// An Arrow error while building tombstones, with its cause.
fn arrow_err(action: &'static str) -> impl FnOnce(ArrowError) -> PipelineError {
    move |source| {
        PipelineError::Stage(StageError::Arrow {
            path: Default::default(),
            action,
            source: Box::new(source),
        })
    }
}

/// The XDM `_id` the mapping gives each row (by Stripe id), when it maps one.
async fn xdm_ids(mapper: &Mapper, source: RecordBatch) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let Some(ids) = source.column(0).as_string_opt::<i32>().cloned() else {
        return out;
    };
    let Ok(mapped) = mapper.map(source).await else {
        return out;
    };
    let Some(xdm) = mapped
        .batch
        .column_by_name("_id")
        .and_then(|c| c.as_string_opt::<i32>())
    else {
        return out;
    };
    for (k, &row) in mapped.rows.iter().enumerate() {
        if !ids.is_null(row as usize) && !xdm.is_null(k) {
            out.insert(
                ids.value(row as usize).to_string(),
                xdm.value(k).to_string(),
            );
        }
    }
    out
}

/// Tombstones for the objects of a deletable resource that a full re-read (batch `batch_id`)
/// did not return: the mirror's current rows of other batches, restamped as deleted at `at`.
pub(super) async fn absent(
    cfg: &RunConfig,
    client: &StripeClient,
    mapper: &Mapper,
    at: i64,
) -> Result<Vec<Processed>, PipelineError> {
    if cfg.resource.deleted_event().is_none() {
        return Ok(Vec::new());
    }
    let batch_id = cfg.batch_id.clone().unwrap_or_default();
    let mirror = Mirror::open(&cfg.mirror_dir(), cfg.resource).await?;
    let mut rows = mirror.scan_other(&batch_id).await?;
    let mut out = Vec::new();
    while let Some(b) = rows.next().await {
        let b = b.map_err(|source| StageError::Query {
            path: mirror.path().to_path_buf(),
            action: "reading the rows a full re-read did not meet",
            source: Box::new(source),
        })?;
        // A row without an id (a record that did not decode) names no object to delete.
        let b = match b.column_by_name("id") {
            Some(ids) if ids.null_count() > 0 => {
                let keep =
                    arrow::compute::is_not_null(ids).map_err(arrow_err("reading tombstones"))?;
                arrow::compute::filter_record_batch(&b, &keep)
                    .map_err(arrow_err("reading tombstones"))?
            }
            _ => b,
        };
        if b.num_rows() == 0 {
            continue;
        }
        let source = stage::to_source(&b, cfg.resource).map_err(arrow_err("reading tombstones"))?;
        let staged = stage::stage_columns(
            &source,
            chrono::Utc::now(),
            &client.config().stripe_version,
            &batch_id,
            Some(at),
        );
        // A record that did not decode stays one in its tombstone.
        let staged = match b.column_by_name(stage::DECODE_ERROR_COLUMN) {
            Some(errors) => stage::with_decode_errors(&staged, errors.clone())
                .map_err(arrow_err("reading tombstones"))?,
            None => staged,
        };
        let xdm_ids = xdm_ids(mapper, source.clone()).await;
        let mut totals = Totals::default();
        if let Some(ids) = source.column(0).as_string_opt::<i32>() {
            for id in ids.iter().flatten() {
                totals.counts.deleted += 1;
                totals.deletes.push(Tombstone {
                    id: id.to_string(),
                    xdm_id: xdm_ids.get(id).cloned(),
                    event_id: None,
                    event_type: ABSENT.to_string(),
                    deleted_at: at,
                });
            }
        }
        out.push(Processed::tombstones(vec![staged], totals));
    }
    Ok(out)
}

/// Writes `deletes.parquet` (id, resource, XDM `_id`, event id and type, deletion time) into
/// a batch folder. Nothing is written when there are no deletions.
pub(super) fn write_deletes(
    dir: &Path,
    resource: Resource,
    deletes: &[Tombstone],
) -> Result<(), PipelineError> {
    if deletes.is_empty() {
        return Ok(());
    }
    let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("resource", DataType::Utf8, false),
        Field::new("_id", DataType::Utf8, true),
        Field::new("event_id", DataType::Utf8, true),
        Field::new("event_type", DataType::Utf8, false),
        Field::new("deleted_at", ts, false),
    ]));
    let strings = |f: &dyn Fn(&Tombstone) -> Option<&str>| -> Arc<dyn Array> {
        Arc::new(deletes.iter().map(f).collect::<StringArray>())
    };
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            strings(&|t| Some(t.id.as_str())),
            strings(&|_| Some(resource.path())),
            strings(&|t| t.xdm_id.as_deref()),
            strings(&|t| t.event_id.as_deref()),
            strings(&|t| Some(t.event_type.as_str())),
            Arc::new(
                deletes
                    .iter()
                    .map(|t| Some(t.deleted_at * 1_000_000))
                    .collect::<TimestampMicrosecondArray>()
                    .with_timezone("UTC"),
            ),
        ],
    )
    .map_err(arrow_err("building deletes.parquet"))?;
    let path = dir.join(DELETES_FILE);
    let file = std::fs::File::create(&path).map_err(crate::sink::io_err("creating", &path))?;
    let parquet_err = |e: parquet::errors::ParquetError| crate::sink::SinkError::Parquet {
        path: path.clone(),
        source: e.into(),
    };
    let mut w = parquet::arrow::ArrowWriter::try_new(file, schema, None).map_err(parquet_err)?;
    w.write(&batch)
        .and_then(|_| w.close().map(|_| ()))
        .map_err(parquet_err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{ChangeKind, ClientConfig};

    /// A deleted object whose payload does not decode: its tombstone is the payload as
    /// received, with its `created`, its reason and `_deleted_at`; its XDM id still comes out.
    #[tokio::test]
    async fn a_deleted_payload_that_does_not_decode_is_a_tombstone_of_itself() {
        let dir = tempfile::tempdir().unwrap();
        let resource = Resource::Customers;
        let cfg = RunConfig::builtin(resource, "tenant", dir.path().to_path_buf()).unwrap();
        let client = StripeClient::new(ClientConfig::new(
            "http://127.0.0.1:9",
            crate::secret::Secret::new("sk_test_x"),
        ))
        .unwrap();
        let mapper = Mapper::new(resource, cfg.mapping.clone()).await.unwrap();
        let change = |id: &str, object: &str| Change {
            id: id.into(),
            kind: ChangeKind::Deleted,
            event_id: format!("evt_{id}"),
            event_type: "customer.deleted".into(),
            at: 1_700_000_500,
            object: Bytes::from(object.to_string()),
            api_version: "2020-08-27".into(),
        };
        let broken = r#"{"id":"cus_b","object":"customer","created":1700000000,"balance":"oops"}"#;
        let fine = r#"{"id":"cus_f","object":"customer","created":1700000100}"#;
        let (a, b) = (change("cus_b", broken), change("cus_f", fine));
        let p = tombstones(&cfg, &client, &mapper, &[&a, &b]).await.unwrap();
        // The decoded rows' `_raw` is text, the others' views of their payloads.
        let schema = p.staged[0].schema();
        let staged: Vec<RecordBatch> = p
            .staged
            .iter()
            .map(|b| stage::conform(b, &schema).unwrap())
            .collect();
        let rows = arrow::compute::concat_batches(&schema, &staged).unwrap();
        assert_eq!(rows.num_rows(), 2);
        let text = |c: &str| {
            let c = arrow::compute::cast(rows.column_by_name(c).unwrap(), &DataType::Utf8);
            c.unwrap().as_string::<i32>().clone()
        };
        let (ids, raw, errors) = (text("id"), text("_raw"), text(stage::DECODE_ERROR_COLUMN));
        let created = rows.column_by_name("created").unwrap();
        let deleted = rows.column_by_name(DELETED_AT_COLUMN).unwrap();
        for row in 0..2 {
            assert!(!created.is_null(row) && !deleted.is_null(row), "row {row}");
            match ids.value(row) {
                "cus_b" => {
                    assert_eq!(raw.value(row), broken);
                    assert!(
                        errors.value(row).contains("balance"),
                        "{}",
                        errors.value(row)
                    );
                }
                id => {
                    assert_eq!(id, "cus_f");
                    assert!(errors.is_null(row));
                }
            }
        }
        assert_eq!(p.totals.deletes.len(), 2);
        assert!(
            p.totals.deletes.iter().all(|d| d.xdm_id.is_some()),
            "{:?}",
            p.totals.deletes
        );
    }
}
