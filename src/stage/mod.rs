//! Stage: the local mirror of Stripe, one Delta Lake table per account and resource.
//!
//! Every fetched record lands here before anything is mapped: its decoded columns, its JSON
//! exactly as received (`_raw`), when it was fetched (`_fetched_at`), the API version it was
//! rendered at (`_api_version`) and the batch (run) that staged it last (`_batch`); a record
//! that did not decode keeps its `_raw`, `id` and `created` and the reason (`_decode_error`).
//! The table is keyed by `id`: a record staged again replaces its older version, so the mirror
//! holds each object once, at its latest version.
//!
//! Writes are Delta transactions. A run commits at each checkpoint; each commit carries an
//! application transaction (`txn`: app id = the run's batch id, version = the checkpoint's
//! sequence number), so a resume can tell whether the commit of a checkpoint it did not hear
//! back from landed. Records are appended when the run cannot meet an object already in the
//! mirror (its `created` range holds no row of another run), and MERGEd by `id` otherwise.
//!
//! A run maps the records it stages as it goes; a resumed run cuts the rows of its checkpointed
//! records from the mirror again, and a remap reads all of it ([`Mirror::scan`] for the records
//! that decoded, without `_raw` when the mapping does not read it; [`Mirror::undecodable`] for
//! the others, decoded again); `stripe-xdm sql` registers it as a table.

mod columns;
mod compact;
mod conform;
mod files;
mod lock;
mod read;
mod stream;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use deltalake::datafusion::common::Column;
use deltalake::datafusion::prelude::{col, SessionContext};
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::kernel::{Action, Transaction};
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::{DeltaTable, DeltaTableError, TableProperty};

pub use compact::{CompactPolicy, CompactReport};
pub use conform::conform;
pub use lock::{lock, MirrorLock};
pub use read::{raw_column, read_session, to_source, RawColumn};

pub use columns::{
    mirror_schema, stage_columns, undecodable_rows, with_decode_errors, API_VERSION_COLUMN,
    BATCH_COLUMN, DECODE_ERROR_COLUMN, DELETED_AT_COLUMN, FETCHED_AT_COLUMN, SEQ_COLUMN,
};

use crate::decode::RAW_COLUMN;
use crate::Resource;

/// Rows buffered for one MERGE commit: a run in merge mode commits at least this often, which
/// bounds its memory.
pub const MERGE_ROWS: usize = 50_000;

/// The columns with min/max statistics in the Delta log (file pruning for a run's rows and for
/// `created` ranges; `_decode_error`'s null counts let a cut skip the files and row groups
/// holding no undecodable record).
const STATS_COLUMNS: &str = "id,created,_batch,_seq,_fetched_at,_decode_error";

/// Why the mirror could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    /// A Delta Lake operation failed.
    #[error("mirror {}: {action}: {source}", path.display())]
    Delta {
        /// The table.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// Delta's error.
        #[source]
        source: Box<DeltaTableError>,
    },
    /// A query over the mirror failed.
    #[error("mirror {}: {action}: {source}", path.display())]
    Query {
        /// The table.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// DataFusion's error.
        #[source]
        source: Box<deltalake::datafusion::error::DataFusionError>,
    },
    /// Staged rows do not fit the mirror's columns.
    #[error("mirror {}: {action}: {source}", path.display())]
    Arrow {
        /// The table.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// Arrow's error.
        #[source]
        source: Box<arrow::error::ArrowError>,
    },
    /// The folder is not a mirror (no Delta log) where one was expected.
    #[error("no mirror at {}: run a dataflow or `stripe-xdm run` first", .0.display())]
    Missing(PathBuf),
}

/// How a run writes its records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// None of the run's objects can be in the mirror yet: files are appended.
    Append,
    /// Some may be: each commit MERGEs by `id` (update the match, insert the rest).
    Merge,
}

/// One resource's mirror: a Delta Lake table in a folder.
pub struct Mirror {
    path: PathBuf,
    resource: Resource,
    table: DeltaTable,
}

impl std::fmt::Debug for Mirror {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mirror")
            .field("path", &self.path)
            .field("version", &self.table.version())
            .finish()
    }
}

impl Mirror {
    /// Opens the mirror at `path`, creating the folder and an empty table when there is none.
    pub async fn open(path: &Path, resource: Resource) -> Result<Mirror, StageError> {
        let err = |action| delta_err(path, action);
        std::fs::create_dir_all(path).map_err(|e| StageError::Delta {
            path: path.to_path_buf(),
            action: "creating the folder",
            source: Box::new(DeltaTableError::Io { source: e }),
        })?;
        let table = load(path).await?;
        let table = if table.version().is_some() {
            columns::add_missing_columns(table)
                .await
                .map_err(err("adding the columns of a newer version"))?
        } else {
            let schema = mirror_schema(resource);
            let kernel: deltalake::kernel::StructType =
                deltalake::kernel::engine::arrow_conversion::TryIntoKernel::try_into_kernel(
                    schema.as_ref(),
                )
                .map_err(|e: arrow::error::ArrowError| StageError::Arrow {
                    path: path.to_path_buf(),
                    action: "converting the schema",
                    source: Box::new(e),
                })?;
            table
                .create()
                .with_columns(kernel.fields().cloned())
                .with_table_name(resource.path())
                .with_comment(format!(
                    "stripe-xdm mirror of Stripe {} (one row per object, latest version)",
                    resource.path()
                ))
                .with_configuration_property(
                    TableProperty::DataSkippingStatsColumns,
                    Some(STATS_COLUMNS),
                )
                .with_save_mode(SaveMode::Ignore)
                .await
                .map_err(err("creating the table"))?
        };
        Ok(Mirror {
            path: path.to_path_buf(),
            resource,
            table,
        })
    }

    /// Opens an existing mirror to read it; fails with [`StageError::Missing`] when there is
    /// none. Nothing is written: a table of an earlier version is read as it is (its missing
    /// columns are added by the next run).
    pub async fn open_existing(path: &Path, resource: Resource) -> Result<Mirror, StageError> {
        if !path.join("_delta_log").is_dir() {
            return Err(StageError::Missing(path.to_path_buf()));
        }
        let table = load(path).await?;
        if table.version().is_none() {
            return Err(StageError::Missing(path.to_path_buf()));
        }
        Ok(Mirror {
            path: path.to_path_buf(),
            resource,
            table,
        })
    }

    /// The table's folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The resource mirrored.
    pub fn resource(&self) -> Resource {
        self.resource
    }

    /// The current table version.
    pub fn version(&self) -> u64 {
        self.table.version().unwrap_or(0)
    }

    /// The underlying Delta table.
    pub fn table(&self) -> &DeltaTable {
        &self.table
    }

    fn delta_err(&self, action: &'static str) -> impl FnOnce(DeltaTableError) -> StageError {
        delta_err(&self.path, action)
    }

    fn query_err(
        &self,
        action: &'static str,
    ) -> impl FnOnce(deltalake::datafusion::error::DataFusionError) -> StageError {
        let path = self.path.clone();
        move |source| StageError::Query {
            path,
            action,
            source: Box::new(source),
        }
    }

    /// Reloads the table's latest version (after another process committed).
    pub async fn refresh(&mut self) -> Result<(), StageError> {
        self.table
            .update_state()
            .await
            .map_err(self.delta_err("reading the log"))
    }

    /// The last checkpoint sequence number committed by run `app_id` (the Delta `txn`).
    pub async fn committed_seq(&self, app_id: &str) -> Result<Option<i64>, StageError> {
        let snapshot = self
            .table
            .snapshot()
            .map_err(self.delta_err("reading the log"))?;
        snapshot
            .transaction_version(self.table.log_store().as_ref(), app_id)
            .await
            .map_err(self.delta_err("reading the application transactions"))
    }

    /// Deletes the rows batch `batch_id` staged in commits after its checkpoint `after_seq` (a
    /// run resuming behind the mirror, or starting over in place, fetches them again). Returns
    /// the rows deleted when Delta knows it.
    pub async fn discard(
        &mut self,
        batch_id: &str,
        after_seq: i64,
    ) -> Result<Option<u64>, StageError> {
        use deltalake::datafusion::prelude::lit;
        let predicate = col(BATCH_COLUMN)
            .eq(lit(batch_id))
            .and(col(SEQ_COLUMN).gt(lit(after_seq)));
        let (table, metrics) = self
            .table
            .clone()
            .delete()
            .with_predicate(predicate)
            .await
            .map_err(self.delta_err("discarding records staged after the checkpoint"))?;
        self.table = table;
        Ok(metrics.num_deleted_rows.map(|n| n as u64))
    }

    /// The Parquet files of the current version (absolute paths), for readers that do not
    /// speak Delta.
    pub fn data_files(&self) -> Result<Vec<PathBuf>, StageError> {
        Ok(self
            .table
            .get_file_uris()
            .map_err(self.delta_err("listing files"))?
            .map(PathBuf::from)
            .collect())
    }

    /// A writer for one run's records.
    pub fn writer(&self, mode: WriteMode) -> Result<StageWriter, StageError> {
        let schema = writer_schema(&self.table).map_err(self.delta_err("reading the schema"))?;
        let writer = match mode {
            WriteMode::Append => Some(files::FileSink::new(
                &self.path,
                schema.clone(),
                files::writer_props(&schema, &STATS_COLUMNS.split(',').collect::<Vec<_>>()),
                compact::TARGET_FILE_BYTES,
                &STATS_COLUMNS.split(',').collect::<Vec<_>>(),
            )),
            WriteMode::Merge => None,
        };
        Ok(StageWriter {
            path: self.path.clone(),
            view_schema: Arc::new(with_raw_type(&schema, DataType::Utf8View)),
            schema,
            writer,
            merge: Vec::new(),
            null_created: None,
            pending: 0,
        })
    }

    /// Commits what `writer` staged since its last commit, tagged with the run's `txn`
    /// (`app_id`, `seq`) and `metadata`. Returns the new table version (the current one, and no
    /// transaction, when nothing was staged since the last commit).
    pub async fn commit(
        &mut self,
        writer: &mut StageWriter,
        app_id: &str,
        seq: i64,
        metadata: serde_json::Map<String, serde_json::Value>,
    ) -> Result<u64, StageError> {
        if writer.pending == 0 {
            // Nothing staged since the last commit (a segment whose records were all dropped as
            // committed by the previous run): no transaction, so the log's txn stays at the last
            // checkpoint that staged rows.
            return Ok(self.version());
        }
        let props = CommitProperties::default()
            .with_metadata(metadata)
            .with_application_transaction(Transaction::new(app_id, seq));
        writer.pending = 0;
        if let Some(files) = writer.writer.as_mut() {
            let actions = files.finish()?.into_iter().map(Action::Add).collect();
            let snapshot = self
                .table
                .snapshot()
                .map_err(self.delta_err("reading the log"))?;
            let operation = DeltaOperation::Write {
                mode: SaveMode::Append,
                partition_by: None,
                predicate: None,
            };
            let finalized = CommitBuilder::from(props)
                .with_actions(actions)
                .build(Some(snapshot), self.table.log_store(), operation)
                .await
                .map_err(self.delta_err("committing staged records"))?;
            self.table.state = Some(finalized.snapshot());
            return Ok(self.version());
        }
        let batches = std::mem::take(&mut writer.merge);
        let known = match writer.null_created.take() {
            Some(known) => known,
            None => self.null_created_ids().await?,
        };
        let (by_id, known) = match_by_id(&batches, known);
        writer.null_created = Some(known);
        let ctx = SessionContext::new();
        let source = ctx
            .read_batches(batches)
            .map_err(self.query_err("reading staged records"))?;
        let columns: Vec<String> = writer
            .schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let source_col =
            |c: &str| deltalake::datafusion::prelude::Expr::Column(Column::new(Some("source"), c));
        // `created` never changes for an object: it lets the merge skip the files whose
        // `created` range the staged rows do not reach. A record that did not decode may have
        // no readable `created`: when a staged row has none, or its object's row in the table
        // has none, the commit matches objects by `id` alone (no file skipped by `created`).
        let predicate = match by_id {
            true => "target.id = source.id",
            false => "target.id = source.id AND target.created = source.created",
        };
        let (table, _metrics) = self
            .table
            .clone()
            .merge(source, predicate)
            .with_source_alias("source")
            .with_target_alias("target")
            .when_matched_update(|u| {
                columns.iter().fold(u, |u, c| {
                    u.update(Column::new_unqualified(c.as_str()), source_col(c))
                })
            })
            .and_then(|m| {
                m.when_not_matched_insert(|i| {
                    columns.iter().fold(i, |i, c| {
                        i.set(Column::new_unqualified(c.as_str()), source_col(c))
                    })
                })
            })
            .map_err(self.delta_err("planning the merge"))?
            // The mirror's own file settings (ZSTD, row groups, statistics): Delta's default
            // writer would write Snappy files unlike every other file of the table.
            .with_writer_properties(files::writer_props(
                &writer.schema,
                &STATS_COLUMNS.split(',').collect::<Vec<_>>(),
            ))
            .with_commit_properties(props)
            .await
            .map_err(self.delta_err("merging staged records"))?;
        self.table = table;
        Ok(self.version())
    }

    /// The ids of the rows without a `created`; only the files whose statistics say they may
    /// hold one are read (none, usually).
    async fn null_created_ids(&self) -> Result<HashSet<String>, StageError> {
        use futures::TryStreamExt;
        if !self.holds_null_created()? {
            return Ok(HashSet::new());
        }
        let batches: Vec<RecordBatch> = self
            .query("SELECT id FROM mirror WHERE created IS NULL AND id IS NOT NULL")
            .await?
            .try_collect()
            .await
            .map_err(self.query_err("reading the rows without `created`"))?;
        Ok(batches
            .iter()
            .filter_map(|b| conform::strings(b.column(0)))
            .flat_map(|ids| ids.iter().flatten().map(str::to_string).collect::<Vec<_>>())
            .collect())
    }

    /// Whether a file of the current version may hold a row whose `created` is null (its
    /// statistics say so, or it has none).
    fn holds_null_created(&self) -> Result<bool, StageError> {
        let actions = self
            .table
            .snapshot()
            .and_then(|s| s.add_actions_table(true))
            .map_err(self.delta_err("reading the file statistics"))?;
        Ok(match actions.column_by_name("null_count.created") {
            Some(nulls) => {
                let nulls = arrow::compute::cast(nulls, &DataType::Int64).map_err(|e| {
                    StageError::Arrow {
                        path: self.path.clone(),
                        action: "reading the file statistics",
                        source: Box::new(e),
                    }
                })?;
                use arrow::array::AsArray;
                let nulls = nulls.as_primitive::<arrow::datatypes::Int64Type>();
                nulls.iter().any(|n| n.is_none_or(|n| n > 0))
            }
            None => actions.num_rows() > 0,
        })
    }

    /// Compacts small files and removes files no version references any more, as `policy`
    /// says.
    pub async fn compact(&mut self, policy: &CompactPolicy) -> Result<CompactReport, StageError> {
        compact::run(self, policy).await
    }
}

fn writer_schema(table: &DeltaTable) -> Result<SchemaRef, DeltaTableError> {
    use deltalake::kernel::engine::arrow_conversion::TryIntoArrow;
    let schema: Schema = (&table.snapshot()?.metadata().parse_schema()?).try_into_arrow()?;
    Ok(Arc::new(schema))
}

/// One run's writes to the mirror between commits.
pub struct StageWriter {
    path: PathBuf,
    schema: SchemaRef,
    /// `schema` with `_raw` as `Utf8View`: how appended files take a run's staged rows.
    view_schema: SchemaRef,
    /// Append mode: files written into the table folder, committed by [`Mirror::commit`].
    writer: Option<files::FileSink>,
    /// Merge mode: rows buffered for the next MERGE.
    merge: Vec<RecordBatch>,
    /// Merge mode: the ids of the table's rows without a `created` (records that did not
    /// decode), read at the first MERGE and kept up to date by each one.
    null_created: Option<HashSet<String>>,
    pending: usize,
}

impl StageWriter {
    /// Stages rows (the source schema plus [`stage_columns`]) for the commit of checkpoint
    /// `seq` (recorded in `_seq`).
    pub async fn write(&mut self, batch: RecordBatch, seq: i64) -> Result<(), StageError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let mut columns = batch.columns().to_vec();
        columns.push(Arc::new(arrow::array::Int64Array::from(vec![
            seq;
            batch
                .num_rows(
                )
        ])));
        let mut fields: Vec<Field> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields.push(Field::new(SEQ_COLUMN, DataType::Int64, false));
        let arrow_err = |e| StageError::Arrow {
            path: self.path.clone(),
            action: "conforming staged rows",
            source: Box::new(e),
        };
        // Appended files take `_raw` as staged (views of the page bodies, encoded like text);
        // a MERGE's source rows are text.
        let raw_view = fields
            .iter()
            .any(|f| f.name() == RAW_COLUMN && f.data_type() == &DataType::Utf8View);
        let target = if raw_view && self.writer.is_some() {
            self.view_schema.clone()
        } else {
            self.schema.clone()
        };
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
            .and_then(|b| conform(&b, &target))
            .map_err(arrow_err)?;
        self.pending += batch.num_rows();
        match &mut self.writer {
            Some(files) => files.write(&batch),
            None => {
                self.merge.push(batch);
                Ok(())
            }
        }
    }

    /// Rows staged since the last commit.
    pub fn pending(&self) -> usize {
        self.pending
    }

    /// True when the rows buffered for a MERGE should be committed now.
    pub fn wants_commit(&self) -> bool {
        self.writer.is_none() && self.pending >= MERGE_ROWS
    }

    /// The write mode.
    pub fn mode(&self) -> WriteMode {
        if self.writer.is_some() {
            WriteMode::Append
        } else {
            WriteMode::Merge
        }
    }
}

/// The Delta table at `path` (no version when there is none yet).
async fn load(path: &Path) -> Result<DeltaTable, StageError> {
    let url = deltalake::ensure_table_uri(path.to_string_lossy())
        .map_err(delta_err(path, "resolving the path"))?;
    DeltaTable::try_from_url(url)
        .await
        .map_err(delta_err(path, "opening the table"))
}

/// A Delta error of the table at `path` while doing `action`.
fn delta_err(path: &Path, action: &'static str) -> impl FnOnce(DeltaTableError) -> StageError {
    let path = path.to_path_buf();
    move |source| StageError::Delta {
        path,
        action,
        source: Box::new(source),
    }
}

/// Whether a MERGE of `batches` must match objects by `id` alone: a staged row has no
/// `created`, or its object's row in the table has none (`known`: those rows' ids). Returns
/// `known` as it is once the MERGE is done (ids staged without `created` in, the others out).
fn match_by_id(batches: &[RecordBatch], mut known: HashSet<String>) -> (bool, HashSet<String>) {
    use arrow::array::Array;
    let mut by_id = false;
    for b in batches {
        let (Some(ids), Some(created)) = (
            b.column_by_name("id").and_then(conform::strings),
            b.column_by_name("created"),
        ) else {
            continue;
        };
        if created.null_count() == 0 && known.is_empty() {
            continue;
        }
        for row in 0..b.num_rows() {
            if ids.is_null(row) {
                continue;
            }
            let id = ids.value(row);
            if created.is_null(row) {
                by_id = true;
                known.insert(id.to_string());
            } else if known.remove(id) {
                by_id = true;
            }
        }
    }
    (by_id, known)
}

/// `schema` with `_raw` of type `data_type`.
fn with_raw_type(schema: &Schema, data_type: DataType) -> Schema {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match f.name() == RAW_COLUMN {
            true => f.as_ref().clone().with_data_type(data_type.clone()),
            false => f.as_ref().clone(),
        })
        .collect();
    Schema::new_with_metadata(fields, schema.metadata().clone())
}

/// Metadata for a run's commit (shown by `DESCRIBE HISTORY` in Spark/DuckDB).
pub fn commit_metadata(
    batch_id: &str,
    seq: i64,
    extra: HashMap<&str, serde_json::Value>,
) -> serde_json::Map<String, serde_json::Value> {
    let mut m = serde_json::Map::new();
    m.insert("stripe_xdm.batch".into(), batch_id.into());
    m.insert("stripe_xdm.checkpoint".into(), seq.into());
    for (k, v) in extra {
        m.insert(format!("stripe_xdm.{k}"), v);
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{StringArray, TimestampSecondArray};

    fn rows(ids: &[Option<&str>], created: &[Option<i64>]) -> RecordBatch {
        let schema = Schema::new(vec![
            Field::new("id", DataType::Utf8, true),
            Field::new(
                "created",
                DataType::Timestamp(arrow::datatypes::TimeUnit::Second, None),
                true,
            ),
        ]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(StringArray::from(ids.to_vec())),
                Arc::new(TimestampSecondArray::from(created.to_vec())),
            ],
        )
        .unwrap()
    }

    #[test]
    fn a_merge_matches_by_id_alone_only_where_created_is_missing_on_either_side() {
        let set = |ids: &[&str]| ids.iter().map(|s| s.to_string()).collect::<HashSet<_>>();
        // Every row has `created` and the table has no row without: by id and created.
        let b = rows(&[Some("a"), Some("b")], &[Some(1), Some(2)]);
        let (by_id, known) = match_by_id(std::slice::from_ref(&b), HashSet::new());
        assert!(!by_id);
        assert!(known.is_empty());
        // A staged row without `created`: by id alone, and the table will hold it.
        let b = rows(&[Some("a"), Some("c"), None], &[Some(1), None, None]);
        let (by_id, known) = match_by_id(std::slice::from_ref(&b), HashSet::new());
        assert!(by_id);
        assert_eq!(known, set(&["c"]));
        // A new version of it with `created`: by id alone (its row in the table has none),
        // after which the table holds none.
        let b = rows(&[Some("c")], &[Some(3)]);
        let (by_id, known) = match_by_id(std::slice::from_ref(&b), known);
        assert!(by_id);
        assert!(known.is_empty());
        // Rows of other objects do not need it, whatever the table holds.
        let b = rows(&[Some("d")], &[Some(4)]);
        let (by_id, known) = match_by_id(std::slice::from_ref(&b), set(&["x"]));
        assert!(!by_id);
        assert_eq!(known, set(&["x"]));
    }
}
