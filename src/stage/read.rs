//! Reading the mirror: registering it with DataFusion, scans (a batch's rows, all of them,
//! other batches' current rows), `_raw` lookups by id, counts, and the write mode a run needs.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{AsArray, RecordBatch, StringArray};
use arrow::datatypes::Schema;
use deltalake::datafusion::execution::SendableRecordBatchStream;
use deltalake::datafusion::prelude::{col, SessionConfig, SessionContext};
use futures::TryStreamExt;

use super::stream::Rows;
use super::{conform, Mirror, StageError, WriteMode, BATCH_COLUMN, DELETED_AT_COLUMN};
use crate::decode::{source_schema, RAW_COLUMN};
use crate::Resource;

impl Mirror {
    /// A session with the mirror registered as `table` (plain strings, not views).
    pub async fn register(&self, ctx: &SessionContext, table: &str) -> Result<(), StageError> {
        let provider = self
            .table
            .table_provider()
            .await
            .map_err(self.query_err("building the table provider"))?;
        ctx.register_table(table, provider)
            .map_err(self.query_err("registering the table"))?;
        Ok(())
    }

    /// Registers the mirror as `<table>_all` (every row, tombstones included) and `<table>`
    /// (the current objects: no tombstones).
    pub async fn register_current(
        &self,
        ctx: &SessionContext,
        table: &str,
    ) -> Result<(), StageError> {
        let all = format!("{table}_all");
        self.register(ctx, &all).await?;
        // A mirror written before change capture has no `_deleted_at` (and no tombstones).
        let current = ctx
            .table(all.as_str())
            .await
            .and_then(
                |df| match df.schema().field_with_unqualified_name(DELETED_AT_COLUMN) {
                    Ok(_) => df.filter(col(DELETED_AT_COLUMN).is_null()),
                    Err(_) => Ok(df),
                },
            )
            .map_err(self.query_err("defining the current rows"))?;
        ctx.register_table(table, current.into_view())
            .map_err(self.query_err("registering the table"))?;
        Ok(())
    }

    pub(super) async fn query(&self, sql: &str) -> Result<SendableRecordBatchStream, StageError> {
        let ctx = read_session();
        self.register(&ctx, "mirror").await?;
        let df = ctx
            .sql(sql)
            .await
            .map_err(self.query_err("planning a scan"))?;
        df.execute_stream()
            .await
            .map_err(self.query_err("starting a scan"))
    }

    /// The decoded records batch `batch` staged (its objects' latest versions), or every
    /// decoded record when `None`, in the mirror's schema; without `_raw` unless `raw`.
    /// Tombstones (deleted objects) and records that did not decode ([`Mirror::undecodable`])
    /// are left out.
    pub async fn scan(
        &self,
        batch: Option<&str>,
        raw: bool,
    ) -> Result<SendableRecordBatchStream, StageError> {
        self.scan_rows(batch, raw, Rows::Decoded)
    }

    /// The records batch `batch` staged (every batch's when `None`) that did not decode, with
    /// `_raw` and `_decode_error`; tombstones left out. Reads only the row groups whose
    /// `_decode_error` null count says they hold one.
    pub async fn undecodable(
        &self,
        batch: Option<&str>,
    ) -> Result<SendableRecordBatchStream, StageError> {
        self.scan_rows(batch, true, Rows::Undecodable)
    }

    fn scan_rows(
        &self,
        batch: Option<&str>,
        raw: bool,
        rows: Rows,
    ) -> Result<SendableRecordBatchStream, StageError> {
        // Read straight from the current version's files (a bounded stream: DataFusion's scan
        // of the table read ahead without bound).
        let full =
            super::writer_schema(&self.table).map_err(self.delta_err("reading the schema"))?;
        let fields: Vec<_> = full
            .fields()
            .iter()
            .filter(|f| raw || f.name() != RAW_COLUMN)
            .cloned()
            .collect();
        let schema = Arc::new(Schema::new(fields));
        Ok(super::stream::scan(
            self.data_files()?,
            schema,
            batch.map(str::to_string),
            rows,
        ))
    }

    /// The current rows (not tombstones) that batches other than `batch` staged, with `_raw`:
    /// after a full re-read by `batch`, the objects Stripe no longer returns.
    pub async fn scan_other(&self, batch: &str) -> Result<SendableRecordBatchStream, StageError> {
        use deltalake::datafusion::prelude::lit;
        let ctx = read_session();
        self.register(&ctx, "mirror").await?;
        ctx.table("mirror")
            .await
            .and_then(|df| {
                df.filter(
                    col(DELETED_AT_COLUMN)
                        .is_null()
                        .and(col(BATCH_COLUMN).not_eq(lit(batch))),
                )
            })
            .map_err(self.query_err("planning a scan"))?
            .execute_stream()
            .await
            .map_err(self.query_err("starting a scan"))
    }

    /// The `_raw` JSON of the latest version of each of `ids` the mirror holds. The ids are
    /// pushed down into the Parquet scan, so only the pages holding them are decoded.
    pub async fn raw_of(
        &self,
        ids: &std::collections::HashSet<String>,
    ) -> Result<HashMap<String, String>, StageError> {
        use deltalake::datafusion::prelude::lit;
        use futures::StreamExt;
        let mut out = HashMap::new();
        if ids.is_empty() {
            return Ok(out);
        }
        let mut config = SessionConfig::new().with_batch_size(8192);
        let parquet = &mut config.options_mut().execution.parquet;
        parquet.schema_force_view_types = false;
        parquet.pushdown_filters = true;
        parquet.reorder_filters = true;
        let ctx = SessionContext::new_with_config(config);
        self.register(&ctx, "mirror").await?;
        let list = ids.iter().map(|id| lit(id.as_str())).collect();
        let mut rows = ctx
            .table("mirror")
            .await
            .and_then(|df| df.filter(col("id").in_list(list, false)))
            .and_then(|df| df.select_columns(&["id", RAW_COLUMN]))
            .map_err(self.query_err("planning a lookup"))?
            .execute_stream()
            .await
            .map_err(self.query_err("starting a lookup"))?;
        while let Some(b) = rows.next().await {
            let b = b.map_err(self.query_err("reading records"))?;
            let (Some(id), Some(raw)) =
                (conform::strings(b.column(0)), conform::strings(b.column(1)))
            else {
                continue;
            };
            for (id, raw) in id.iter().zip(raw.iter()) {
                if let (Some(id), Some(raw)) = (id, raw) {
                    out.insert(id.to_string(), raw.to_string());
                }
            }
        }
        Ok(out)
    }

    /// Every current row of the mirror (tombstones left out), undecodable records included.
    pub async fn scan_all(&self) -> Result<SendableRecordBatchStream, StageError> {
        self.scan_rows(None, true, Rows::All)
    }

    /// Rows in the mirror, and rows of batch `batch_id`.
    pub async fn count(&self, batch_id: Option<&str>) -> Result<u64, StageError> {
        let sql = match batch_id {
            Some(b) => format!(
                "SELECT count(*) FROM mirror WHERE {BATCH_COLUMN} = '{}'",
                b.replace('\'', "''")
            ),
            None => "SELECT count(*) FROM mirror".to_string(),
        };
        let batches: Vec<RecordBatch> = self
            .query(&sql)
            .await?
            .try_collect()
            .await
            .map_err(self.query_err("counting rows"))?;
        Ok(batches
            .first()
            .and_then(|b| {
                b.column(0)
                    .as_primitive_opt::<arrow::datatypes::Int64Type>()
            })
            .map(|a| a.value(0) as u64)
            .unwrap_or(0))
    }

    /// How a run staging objects created in `[gte, lt)` must write: [`WriteMode::Merge`] when
    /// the mirror holds a row of another batch in that range, or one without `created` (the
    /// run may meet it again).
    pub async fn mode_for(
        &self,
        gte: Option<i64>,
        lt: Option<i64>,
        batch_id: &str,
    ) -> Result<WriteMode, StageError> {
        if self
            .table
            .get_file_uris()
            .map(|mut f| f.next().is_none())
            .unwrap_or(true)
        {
            return Ok(WriteMode::Append);
        }
        let mut sql = format!(
            "SELECT id FROM mirror WHERE {BATCH_COLUMN} <> '{}'",
            batch_id.replace('\'', "''")
        );
        let mut range = Vec::new();
        if let Some(gte) = gte {
            range.push(format!("created >= to_timestamp_seconds({gte})"));
        }
        if let Some(lt) = lt {
            range.push(format!("created < to_timestamp_seconds({lt})"));
        }
        if !range.is_empty() {
            // A row without `created` (a record that did not decode) may be of any window.
            sql += &format!(" AND (created IS NULL OR ({}))", range.join(" AND "));
        }
        sql += " LIMIT 1";
        let batches: Vec<RecordBatch> = self
            .query(&sql)
            .await?
            .try_collect()
            .await
            .map_err(self.query_err("looking for staged objects"))?;
        Ok(if batches.iter().any(|b| b.num_rows() > 0) {
            WriteMode::Merge
        } else {
            WriteMode::Append
        })
    }
}

/// A session for reading the mirror: strings come back as `Utf8` (not views), so rows keep the
/// types the mapping was planned for.
pub fn read_session() -> SessionContext {
    let mut config = SessionConfig::new().with_batch_size(8192);
    config
        .options_mut()
        .execution
        .parquet
        .schema_force_view_types = false;
    SessionContext::new_with_config(config)
}

/// The mirror rows of a batch, back in the mapping's source schema (decoded columns and
/// `_raw`, when the rows have it; seconds timestamps).
pub fn to_source(
    batch: &RecordBatch,
    resource: Resource,
) -> Result<RecordBatch, arrow::error::ArrowError> {
    let source = source_schema(resource);
    if batch.schema().column_with_name(RAW_COLUMN).is_some() {
        return conform(batch, &source);
    }
    let fields: Vec<_> = source
        .fields()
        .iter()
        .filter(|f| f.name() != RAW_COLUMN)
        .cloned()
        .collect();
    conform(batch, &Arc::new(Schema::new(fields)))
}

/// The `_raw` column of a source or mirror batch: `Utf8` as read from the mirror, or
/// `Utf8View` as a run stages it (views of the page bodies).
#[derive(Debug, Clone, Copy)]
pub enum RawColumn<'a> {
    /// Text with offsets.
    Text(&'a StringArray),
    /// Views into shared buffers.
    View(&'a arrow::array::StringViewArray),
}

impl<'a> RawColumn<'a> {
    /// The JSON text of `row` (`None` when it is NULL).
    pub fn value(self, row: usize) -> Option<&'a str> {
        use arrow::array::Array;
        match self {
            RawColumn::Text(a) => (!a.is_null(row)).then(|| a.value(row)),
            RawColumn::View(a) => (!a.is_null(row)).then(|| a.value(row)),
        }
    }
}

/// The `_raw` column of a source or mirror batch.
pub fn raw_column(batch: &RecordBatch) -> Option<RawColumn<'_>> {
    let column = batch.column_by_name(RAW_COLUMN)?;
    column
        .as_string_opt::<i32>()
        .map(RawColumn::Text)
        .or_else(|| column.as_string_view_opt().map(RawColumn::View))
}
