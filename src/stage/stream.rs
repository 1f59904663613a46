//! A streaming scan of the mirror's current Parquet files, for the cuts (a remap, a resume):
//! file after file, row group after row group, on a blocking thread that hands batches over a
//! channel of two, so memory stays at a few row groups whatever the mirror's size. Row groups
//! whose `_batch` statistics cannot hold the batch asked for are skipped; tombstones are
//! filtered out; `_raw` is not read unless asked for. A scan reads the rows that decoded, the
//! rows that did not (`_decode_error`: row groups without one are skipped by their null
//! count, so looking for them in a mirror that has none reads footers only), or both.

use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::{new_null_array, Array, BooleanArray, RecordBatch, StringArray};
use arrow::compute::kernels::cmp::eq;
use arrow::compute::{and, filter_record_batch, is_not_null, is_null};
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use deltalake::datafusion::error::DataFusionError;
use deltalake::datafusion::execution::SendableRecordBatchStream;
use deltalake::datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;
use parquet::file::statistics::Statistics;

use super::{conform, BATCH_COLUMN, DECODE_ERROR_COLUMN, DELETED_AT_COLUMN};

/// Which of the current rows a scan yields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rows {
    /// Every row.
    All,
    /// The records that decoded (`_decode_error` null).
    Decoded,
    /// The records that did not (`_decode_error` set).
    Undecodable,
}

/// Rows per batch read.
const BATCH_ROWS: usize = 8192;

/// Streams the current rows of `files` in `schema` (the mirror's columns wanted), those of
/// `batch` only when given, `rows` of them.
pub(super) fn scan(
    files: Vec<PathBuf>,
    schema: SchemaRef,
    batch: Option<String>,
    rows: Rows,
) -> SendableRecordBatchStream {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<RecordBatch, DataFusionError>>(2);
    let out = Arc::clone(&schema);
    std::thread::spawn(move || {
        for f in files {
            if let Err(e) = read_file(&f, &out, batch.as_deref(), rows, &tx) {
                let _ = tx.blocking_send(Err(DataFusionError::Context(
                    f.display().to_string(),
                    Box::new(DataFusionError::External(e)),
                )));
                return;
            }
            if tx.is_closed() {
                return;
            }
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Box::pin(RecordBatchStreamAdapter::new(schema, stream))
}

/// Whether a row group's `_batch` statistics allow `batch` (no statistics: it may).
fn may_hold(stats: Option<&Statistics>, batch: &str) -> bool {
    match stats {
        Some(Statistics::ByteArray(s)) => match (s.min_opt(), s.max_opt()) {
            (Some(min), Some(max)) => {
                min.data() <= batch.as_bytes() && batch.as_bytes() <= max.data()
            }
            _ => true,
        },
        _ => true,
    }
}

fn read_file(
    path: &std::path::Path,
    out: &SchemaRef,
    batch: Option<&str>,
    which: Rows,
    tx: &tokio::sync::mpsc::Sender<Result<RecordBatch, DataFusionError>>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let file = std::fs::File::open(path)?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)?;
    let file_schema = Arc::clone(builder.schema());
    // The wanted columns, plus the three the filter reads.
    let wanted: Vec<usize> = file_schema
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| {
            out.field_with_name(f.name()).is_ok()
                || f.name() == DELETED_AT_COLUMN
                || f.name() == BATCH_COLUMN
                || f.name() == DECODE_ERROR_COLUMN
        })
        .map(|(i, _)| i)
        .collect();
    let mask = ProjectionMask::roots(builder.parquet_schema(), wanted);
    let mut row_groups: Vec<usize> = (0..builder.metadata().num_row_groups()).collect();
    if let Some(b) = batch {
        let column = builder
            .parquet_schema()
            .columns()
            .iter()
            .position(|c| c.path().string() == BATCH_COLUMN);
        if let Some(c) = column {
            row_groups
                .retain(|&rg| may_hold(builder.metadata().row_group(rg).column(c).statistics(), b));
        }
    }
    if which == Rows::Undecodable {
        let column = builder
            .parquet_schema()
            .columns()
            .iter()
            .position(|c| c.path().string() == DECODE_ERROR_COLUMN);
        // A file written before `_decode_error` existed holds decoded records only.
        let Some(c) = column else { return Ok(()) };
        let meta = builder.metadata();
        row_groups.retain(|&rg| {
            let group = meta.row_group(rg);
            let nulls = group
                .column(c)
                .statistics()
                .and_then(|s| s.null_count_opt());
            nulls.is_none_or(|n| n < group.num_rows() as u64)
        });
    }
    if row_groups.is_empty() {
        return Ok(());
    }
    let reader = builder
        .with_projection(mask)
        .with_row_groups(row_groups)
        .with_batch_size(BATCH_ROWS)
        .build()?;
    for rows in reader {
        let rows = rows?;
        let keep = keep_mask(&rows, batch, which)?;
        let rows = match keep {
            Some(k) => filter_record_batch(&rows, &k)?,
            None => rows,
        };
        if rows.num_rows() == 0 {
            continue;
        }
        let rows = with_missing(&rows, out)?;
        if tx.blocking_send(Ok(conform(&rows, out)?)).is_err() {
            return Ok(());
        }
    }
    Ok(())
}

/// The rows to keep: current (no `_deleted_at`), `which` of them and, when asked, of `batch`.
/// `None`: all.
fn keep_mask(
    rows: &RecordBatch,
    batch: Option<&str>,
    which: Rows,
) -> Result<Option<BooleanArray>, ArrowError> {
    let mut keep = match rows.column_by_name(DELETED_AT_COLUMN) {
        Some(d) if d.null_count() < d.len() => Some(is_null(d)?),
        _ => None,
    };
    let errors = rows.column_by_name(DECODE_ERROR_COLUMN);
    let decoded = match (which, errors) {
        (Rows::All, _) | (Rows::Decoded, None) => None,
        (Rows::Decoded, Some(e)) if e.null_count() == e.len() => None,
        (Rows::Decoded, Some(e)) => Some(is_null(e)?),
        (Rows::Undecodable, Some(e)) => Some(is_not_null(e)?),
        (Rows::Undecodable, None) => Some(BooleanArray::from(vec![false; rows.num_rows()])),
    };
    if let Some(d) = decoded {
        keep = Some(match keep {
            Some(k) => and(&k, &d)?,
            None => d,
        });
    }
    if let (Some(b), Some(col)) = (batch, rows.column_by_name(BATCH_COLUMN)) {
        let col = arrow::compute::cast(col, &arrow::datatypes::DataType::Utf8)?;
        let same = eq(&col, &StringArray::new_scalar(b))?;
        keep = Some(match keep {
            Some(k) => and(&k, &same)?,
            None => same,
        });
    }
    Ok(keep)
}

/// `rows` with the nullable columns of `out` it lacks (files written before the column was
/// added) as nulls.
fn with_missing(rows: &RecordBatch, out: &SchemaRef) -> Result<RecordBatch, ArrowError> {
    if out
        .fields()
        .iter()
        .all(|f| rows.column_by_name(f.name()).is_some())
    {
        return Ok(rows.clone());
    }
    let mut fields: Vec<_> = rows.schema().fields().iter().cloned().collect();
    let mut columns = rows.columns().to_vec();
    for f in out.fields() {
        if rows.column_by_name(f.name()).is_none() && f.is_nullable() {
            fields.push(Arc::clone(f));
            columns.push(new_null_array(f.data_type(), rows.num_rows()));
        }
    }
    RecordBatch::try_new(Arc::new(arrow::datatypes::Schema::new(fields)), columns)
}
