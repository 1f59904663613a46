//! Shapes batches to a target schema by column name, casting where the types differ (seconds
//! timestamps to the mirror's microseconds and back, nullability of nested fields, map entry
//! names as Delta spells them).

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, RecordBatchOptions};
use arrow::compute::{cast_with_options, CastOptions};
use arrow::datatypes::{DataType, Field, SchemaRef, TimeUnit};
use arrow::error::ArrowError;

/// `t` with every seconds or milliseconds timestamp (nested ones too) in microseconds.
pub(crate) fn to_micros(t: &DataType) -> DataType {
    let field =
        |f: &Arc<Field>| Arc::new(f.as_ref().clone().with_data_type(to_micros(f.data_type())));
    match t {
        DataType::Timestamp(TimeUnit::Second | TimeUnit::Millisecond, tz) => {
            DataType::Timestamp(TimeUnit::Microsecond, tz.clone())
        }
        DataType::Struct(fields) => DataType::Struct(fields.iter().map(field).collect()),
        DataType::List(f) => DataType::List(field(f)),
        DataType::LargeList(f) => DataType::LargeList(field(f)),
        DataType::Map(f, sorted) => DataType::Map(field(f), *sorted),
        other => other.clone(),
    }
}

/// `batch`'s columns named as `target`'s fields, in `target`'s order and types. Columns of
/// `batch` that `target` does not name are dropped; a missing column is an error naming it.
pub fn conform(batch: &RecordBatch, target: &SchemaRef) -> Result<RecordBatch, ArrowError> {
    if batch.schema().as_ref() == target.as_ref() {
        return Ok(batch.clone());
    }
    let options = CastOptions {
        safe: false,
        ..CastOptions::default()
    };
    let columns = target
        .fields()
        .iter()
        .map(|f| {
            let column = batch.column_by_name(f.name()).ok_or_else(|| {
                ArrowError::SchemaError(format!("the rows have no column `{}`", f.name()))
            })?;
            if column.data_type() == f.data_type() {
                Ok(column.clone())
            } else {
                cast_with_options(column, f.data_type(), &options).map_err(|e| {
                    ArrowError::CastError(format!(
                        "column `{}` ({} to {}): {e}",
                        f.name(),
                        column.data_type(),
                        f.data_type()
                    ))
                })
            }
        })
        .collect::<Result<Vec<ArrayRef>, _>>()?;
    RecordBatch::try_new_with_options(
        target.clone(),
        columns,
        &RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
    )
}

/// A string column as `Utf8` (casting views and large strings), `None` for other types.
pub(crate) fn strings(column: &ArrayRef) -> Option<arrow::array::StringArray> {
    use arrow::array::AsArray;
    let utf8 = cast_with_options(column, &DataType::Utf8, &CastOptions::default()).ok()?;
    Some(utf8.as_string::<i32>().clone())
}
