//! The mirror's columns: the decoded ones and `_raw`, then the staging columns a run adds
//! (when and at which API version a record was fetched, the run and checkpoint that staged it,
//! its deletion, why it did not decode), and the rows a run stages.

use std::sync::Arc;

use arrow::array::{RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use deltalake::{DeltaTable, DeltaTableError};

use super::conform;
use crate::decode::{source_schema, RejectedRecord, RAW_COLUMN};
use crate::Resource;

/// When the record was fetched (microseconds, UTC).
pub const FETCHED_AT_COLUMN: &str = "_fetched_at";
/// The Stripe API version the record was rendered at.
pub const API_VERSION_COLUMN: &str = "_api_version";
/// The batch (run) that staged this version of the record.
pub const BATCH_COLUMN: &str = "_batch";
/// When the object was deleted in Stripe (null for objects that exist): a tombstone keeps the
/// object's last known version, queryable, but out of the mirror's current state.
pub const DELETED_AT_COLUMN: &str = "_deleted_at";
/// The run's checkpoint whose commit staged this version (the Delta `txn` version).
pub const SEQ_COLUMN: &str = "_seq";
/// Why the record could not be decoded (null for records that decoded): such a row keeps its
/// `_raw`, `id` and `created` (when they can be read), and no other decoded column.
pub const DECODE_ERROR_COLUMN: &str = "_decode_error";

/// The mirror table's Arrow schema: the resource's decoded columns and `_raw`, then
/// `_fetched_at`, `_api_version`, `_batch`, `_deleted_at`, `_decode_error` and `_seq`.
/// Timestamps are microseconds (Delta's unit).
pub fn mirror_schema(resource: Resource) -> SchemaRef {
    let source = source_schema(resource);
    let mut fields: Vec<Field> = source
        .fields()
        .iter()
        .map(|f| {
            f.as_ref()
                .clone()
                .with_data_type(conform::to_micros(f.data_type()))
        })
        .collect();
    fields.extend(stage_fields());
    fields.push(Field::new(SEQ_COLUMN, DataType::Int64, false));
    Arc::new(Schema::new(fields))
}

/// `_fetched_at`, `_api_version`, `_batch`, `_deleted_at`, `_decode_error`: the columns
/// [`stage_columns`] adds.
fn stage_fields() -> [Field; 5] {
    [
        Field::new(
            FETCHED_AT_COLUMN,
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new(API_VERSION_COLUMN, DataType::Utf8, true),
        Field::new(BATCH_COLUMN, DataType::Utf8, false),
        deleted_at_field(),
        decode_error_field(),
    ]
}

fn decode_error_field() -> Field {
    Field::new(DECODE_ERROR_COLUMN, DataType::Utf8, true)
}

fn deleted_at_field() -> Field {
    Field::new(
        DELETED_AT_COLUMN,
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        true,
    )
}

/// Adds the staging columns to a batch of decoded records (the source schema, with `_raw`);
/// `deleted_at` (unix seconds) makes the rows tombstones. `_decode_error` is null: see
/// [`undecodable_rows`] for records that did not decode.
pub fn stage_columns(
    source: &RecordBatch,
    fetched_at: chrono::DateTime<chrono::Utc>,
    api_version: &str,
    batch_id: &str,
    deleted_at: Option<i64>,
) -> RecordBatch {
    let n = source.num_rows();
    let mut columns = source.columns().to_vec();
    columns.push(Arc::new(
        TimestampMicrosecondArray::from(vec![fetched_at.timestamp_micros(); n])
            .with_timezone("UTC"),
    ));
    columns.push(Arc::new(StringArray::from(vec![api_version; n])));
    columns.push(Arc::new(StringArray::from(vec![batch_id; n])));
    columns.push(Arc::new(
        TimestampMicrosecondArray::from(vec![deleted_at.map(|s| s * 1_000_000); n])
            .with_timezone("UTC"),
    ));
    columns.push(arrow::array::new_null_array(&DataType::Utf8, n));
    let mut fields: Vec<Field> = source
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.extend(stage_fields());
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
        .expect("columns follow their fields")
}

/// Rows for records that did not decode: `id` and `created` where the JSON lets them be read,
/// `_raw` exactly as received (invalid UTF-8 replaced), every other decoded column null, the
/// reason in `_decode_error`, and the staging columns as [`stage_columns`] adds them. Staged
/// like any record, so the mirror holds everything a run fetched; a cut (a remap, a resume)
/// decodes their `_raw` again instead of mapping their empty columns.
pub fn undecodable_rows(
    resource: Resource,
    records: &[RejectedRecord],
    fetched_at: chrono::DateTime<chrono::Utc>,
    api_version: &str,
    batch_id: &str,
) -> Result<RecordBatch, arrow::error::ArrowError> {
    use arrow::array::{ArrayRef, Int64Array, StringViewArray};
    let n = records.len();
    let source = source_schema(resource);
    let mut fields = Vec::with_capacity(source.fields().len());
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(source.fields().len());
    for f in source.fields() {
        let column: ArrayRef = match f.name().as_str() {
            "id" => Arc::new(StringArray::from_iter(
                records.iter().map(|r| r.id.as_deref()),
            )),
            "created" => arrow::compute::cast(
                &Int64Array::from_iter(records.iter().map(|r| r.created)),
                f.data_type(),
            )?,
            RAW_COLUMN => Arc::new(StringViewArray::from_iter_values(
                records.iter().map(|r| r.raw.as_str()),
            )),
            _ => arrow::array::new_null_array(f.data_type(), n),
        };
        fields.push(
            f.as_ref()
                .clone()
                .with_data_type(column.data_type().clone()),
        );
        columns.push(column);
    }
    let source = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?;
    let staged = stage_columns(&source, fetched_at, api_version, batch_id, None);
    let errors = StringArray::from_iter_values(records.iter().map(|r| r.reason.as_str()));
    with_decode_errors(&staged, Arc::new(errors))
}

/// `staged` (rows with the staging columns) with `errors` as its `_decode_error` column.
pub fn with_decode_errors(
    staged: &RecordBatch,
    errors: arrow::array::ArrayRef,
) -> Result<RecordBatch, arrow::error::ArrowError> {
    let schema = staged.schema();
    let (i, _) = schema
        .column_with_name(DECODE_ERROR_COLUMN)
        .ok_or_else(|| arrow::error::ArrowError::SchemaError("no `_decode_error` column".into()))?;
    let mut columns = staged.columns().to_vec();
    columns[i] = arrow::compute::cast(&errors, &DataType::Utf8)?;
    RecordBatch::try_new(schema, columns)
}

/// Adds the staging columns a table written by an earlier version lacks (`_deleted_at` before
/// change capture, `_decode_error` before undecodable records were staged); a no-op when it
/// has them. Files written before read them as null.
pub(super) async fn add_missing_columns(table: DeltaTable) -> Result<DeltaTable, DeltaTableError> {
    use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;
    let missing: Vec<deltalake::kernel::StructField> = {
        let snapshot = table.snapshot()?;
        let schema = snapshot.schema();
        [deleted_at_field(), decode_error_field()]
            .iter()
            .filter(|f| !schema.fields().any(|have| have.name() == f.name()))
            .map(|f| f.try_into_kernel())
            .collect::<Result<_, _>>()?
    };
    if missing.is_empty() {
        return Ok(table);
    }
    table.add_columns().with_fields(missing).await
}
