//! Query results written out: an aligned text table, a JSON array of objects, CSV with a
//! header (nested values as JSON text), or a Parquet file.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::error::ArrowError;
use arrow::json::writer::{make_encoder, EncoderOptions};

/// How a query's result is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// An aligned text table.
    #[default]
    Table,
    /// A JSON array of objects.
    Json,
    /// CSV with a header; structs, lists and maps as JSON text.
    Csv,
}

/// Why a result could not be written.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// Arrow could not encode the batches.
    #[error("encoding the result")]
    Encode(#[source] ArrowError),
    /// The Parquet file could not be written.
    #[error("writing {path}")]
    Parquet {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: parquet::errors::ParquetError,
    },
    /// The output could not be written.
    #[error("writing {what}")]
    Io {
        /// The file or stream.
        what: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A Parquet file needs a schema, and the query returned no batch to take it from.
    #[error("the query returned no batch to write to {0}")]
    NoBatch(String),
}

/// Writes `batches` to `out` in `format`.
pub fn write(
    format: Format,
    batches: &[RecordBatch],
    out: &mut impl Write,
) -> Result<(), OutputError> {
    match format {
        Format::Json => {
            let mut w = arrow::json::ArrayWriter::new(&mut *out);
            for b in batches {
                w.write(b).map_err(OutputError::Encode)?;
            }
            w.finish().map_err(OutputError::Encode)?;
            writeln!(out).map_err(|source| OutputError::Io {
                what: "the output".into(),
                source,
            })
        }
        Format::Csv => {
            let mut w = arrow::csv::Writer::new(&mut *out);
            for b in batches {
                w.write(&nested_as_json(b).map_err(OutputError::Encode)?)
                    .map_err(OutputError::Encode)?;
            }
            Ok(())
        }
        Format::Table => {
            let text =
                arrow::util::pretty::pretty_format_batches(batches).map_err(OutputError::Encode)?;
            writeln!(out, "{text}").map_err(|source| OutputError::Io {
                what: "the output".into(),
                source,
            })
        }
    }
}

/// `batch` with each nested column (struct, list, map) as its JSON text, which a CSV cell can
/// hold (`{"city":"Köln"}`, `[1,2]`); other columns as they are.
fn nested_as_json(batch: &RecordBatch) -> Result<RecordBatch, ArrowError> {
    let schema = batch.schema();
    if !schema.fields().iter().any(|f| f.data_type().is_nested()) {
        return Ok(batch.clone());
    }
    let options = EncoderOptions::default();
    let mut fields = Vec::with_capacity(batch.num_columns());
    let mut columns = Vec::with_capacity(batch.num_columns());
    for (field, column) in schema.fields().iter().zip(batch.columns()) {
        if !field.data_type().is_nested() {
            fields.push(Arc::clone(field));
            columns.push(Arc::clone(column));
            continue;
        }
        let mut encoder = make_encoder(field, column.as_ref(), &options)?;
        let mut text = StringBuilder::new();
        let mut buf = Vec::new();
        for row in 0..column.len() {
            if column.is_null(row) {
                text.append_null();
            } else {
                buf.clear();
                encoder.encode(row, &mut buf);
                text.append_value(String::from_utf8_lossy(&buf));
            }
        }
        fields.push(Arc::new(Field::new(field.name(), DataType::Utf8, true)));
        columns.push(Arc::new(text.finish()) as ArrayRef);
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
}

/// Writes `batches` to a new Parquet file at `path`; the rows written.
pub fn write_parquet(path: &Path, batches: &[RecordBatch]) -> Result<usize, OutputError> {
    let shown = path.display().to_string();
    let schema = match batches.first() {
        Some(b) => b.schema(),
        None => return Err(OutputError::NoBatch(shown)),
    };
    let file = std::fs::File::create(path).map_err(|source| OutputError::Io {
        what: shown.clone(),
        source,
    })?;
    let parquet_err = |source| OutputError::Parquet {
        path: shown.clone(),
        source,
    };
    let mut w = parquet::arrow::ArrowWriter::try_new(file, schema, None).map_err(parquet_err)?;
    let mut rows = 0;
    for b in batches {
        w.write(b).map_err(parquet_err)?;
        rows += b.num_rows();
    }
    w.close().map_err(parquet_err)?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    fn batch() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("amount", DataType::Int64, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec!["ch_1", "ch_2"])),
                Arc::new(Int64Array::from(vec![Some(100), None])),
            ],
        )
        .unwrap()
    }

    #[test]
    fn formats() {
        let mut json = Vec::new();
        write(Format::Json, &[batch()], &mut json).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(v[0]["id"], "ch_1");
        assert_eq!(v[0]["amount"], 100);
        let mut csv = Vec::new();
        write(Format::Csv, &[batch()], &mut csv).unwrap();
        assert_eq!(
            String::from_utf8(csv).unwrap(),
            "id,amount\nch_1,100\nch_2,\n"
        );
        let mut table = Vec::new();
        write(Format::Table, &[batch()], &mut table).unwrap();
        assert!(String::from_utf8(table).unwrap().contains("| ch_2 |"));
    }

    #[test]
    fn csv_writes_nested_values_as_json_text() {
        use arrow::array::{ListArray, StructArray};
        use arrow::datatypes::Int64Type;
        let city: ArrayRef = Arc::new(StringArray::from(vec![Some("Köln"), None]));
        let address = StructArray::new(
            vec![Field::new("city", DataType::Utf8, true)].into(),
            vec![city],
            Some(vec![true, false].into()),
        );
        let tiers: ArrayRef = Arc::new(ListArray::from_iter_primitive::<Int64Type, _, _>(vec![
            Some(vec![Some(1), Some(2)]),
            Some(vec![]),
        ]));
        let nested = RecordBatch::try_from_iter(vec![
            (
                "id",
                Arc::new(StringArray::from(vec!["ch_1", "ch_2"])) as ArrayRef,
            ),
            ("address", Arc::new(address) as ArrayRef),
            ("tiers", tiers),
        ])
        .unwrap();
        let mut csv = Vec::new();
        write(Format::Csv, &[nested], &mut csv).unwrap();
        assert_eq!(
            String::from_utf8(csv).unwrap(),
            "id,address,tiers\nch_1,\"{\"\"city\"\":\"\"Köln\"\"}\",\"[1,2]\"\nch_2,,[]\n"
        );
    }

    #[test]
    fn parquet_needs_a_batch() {
        let dir = std::env::temp_dir().join(format!("sx-out-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("r.parquet");
        assert_eq!(write_parquet(&path, &[batch()]).unwrap(), 2);
        let err = write_parquet(&path, &[]).unwrap_err();
        assert!(err.to_string().contains("no batch"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
