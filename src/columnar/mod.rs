//! Parquet encoding shared by the mirror and the batch writer: a writer that encodes the columns
//! of a row group in parallel.
//!
//! Encoding (levels, dictionaries, statistics, ZSTD) is the largest cost after decoding for
//! small Stripe objects, and arrow-rs's `ArrowWriter` encodes one column after another on the
//! calling thread. [`ParallelWriter`] keeps one [`ArrowColumnWriter`] per leaf column and runs
//! them on rayon, as arrow-rs documents for parallel encoding: the leaves of each top-level
//! field are computed in parallel, then every leaf column is written in parallel. The bytes of
//! a row group are appended to the file in column order, so the file is identical in layout to
//! one `ArrowWriter` writes with the same properties. [`fit_to_rows`] fits a file's properties
//! (dictionaries, compression, statistics per column) to its first rows.

use std::io::Write;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Fields, SchemaRef};
use parquet::arrow::arrow_writer::{
    compute_leaves, ArrowColumnWriter, ArrowLeafColumn, ArrowRowGroupWriterFactory,
};
use parquet::arrow::ArrowSchemaConverter;
use parquet::errors::{ParquetError, Result};
use parquet::file::metadata::ParquetMetaData;
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use rayon::prelude::*;

mod fit;

pub use fit::{byte_statistics_only_for, fit_to_rows, SMALL_COLUMN_BYTES};

/// Writes record batches to one Parquet file, encoding the columns of each row group on rayon.
pub struct ParallelWriter<W: Write + Send> {
    writer: SerializedFileWriter<W>,
    factory: ArrowRowGroupWriterFactory,
    schema: SchemaRef,
    max_rows: usize,
    /// The open row group: its column writers and rows so far.
    open: Option<(Vec<ArrowColumnWriter>, usize)>,
}

impl<W: Write + Send> std::fmt::Debug for ParallelWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParallelWriter")
            .field("schema", &self.schema)
            .field("max_rows", &self.max_rows)
            .finish_non_exhaustive()
    }
}

impl<W: Write + Send> ParallelWriter<W> {
    /// A writer of `schema` to `out`; row groups hold at most
    /// [`WriterProperties::max_row_group_row_count`] rows (1 Mi when unset).
    pub fn try_new(out: W, schema: SchemaRef, mut props: WriterProperties) -> Result<Self> {
        let max_rows = props
            .max_row_group_row_count()
            .unwrap_or(1024 * 1024)
            .max(1);
        let parquet_schema = ArrowSchemaConverter::new()
            .with_coerce_types(props.coerce_types())
            .convert(&schema)?;
        // Arrow readers use the embedded Arrow schema to restore types such as timezone-aware
        // timestamps, as with ArrowWriter.
        parquet::arrow::add_encoded_arrow_schema_to_metadata(&schema, &mut props);
        let writer =
            SerializedFileWriter::new(out, parquet_schema.root_schema_ptr(), Arc::new(props))?;
        let factory = ArrowRowGroupWriterFactory::new(&writer, Arc::clone(&schema));
        Ok(ParallelWriter {
            writer,
            factory,
            schema,
            max_rows,
            open: None,
        })
    }

    /// Encodes `batch`, starting new row groups at the row limit.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if !encodes_as(batch.schema().fields(), self.schema.fields()) {
            return Err(ParquetError::General(format!(
                "record batch schema does not match the writer's: {:?}",
                batch.schema()
            )));
        }
        let mut offset = 0;
        while offset < batch.num_rows() {
            if self.open.is_none() {
                let index = self.writer.flushed_row_groups().len();
                self.open = Some((self.factory.create_column_writers(index)?, 0));
            }
            let (writers, rows) = self.open.as_mut().expect("opened above");
            let take = (self.max_rows - *rows).min(batch.num_rows() - offset);
            encode(writers, &self.schema, &batch.slice(offset, take))?;
            *rows += take;
            offset += take;
            if *rows >= self.max_rows {
                self.flush()?;
            }
        }
        Ok(())
    }

    /// Closes the open row group (if any) and appends it to the file.
    pub fn flush(&mut self) -> Result<()> {
        let Some((writers, _)) = self.open.take() else {
            return Ok(());
        };
        let chunks = writers
            .into_par_iter()
            .map(ArrowColumnWriter::close)
            .collect::<Result<Vec<_>>>()?;
        let mut row_group = self.writer.next_row_group()?;
        for chunk in chunks {
            chunk.append_to_row_group(&mut row_group)?;
        }
        row_group.close()?;
        Ok(())
    }

    /// Bytes written to the output so far (closed row groups).
    pub fn bytes_written(&self) -> usize {
        self.writer.bytes_written()
    }

    /// The estimated encoded size of the open row group.
    pub fn in_progress_size(&self) -> usize {
        self.open.as_ref().map_or(0, |(writers, _)| {
            writers
                .iter()
                .map(ArrowColumnWriter::get_estimated_total_bytes)
                .sum()
        })
    }

    /// Writes the open row group and the footer.
    pub fn close(mut self) -> Result<ParquetMetaData> {
        self.flush()?;
        self.writer.close()
    }

    /// Writes the open row group and the footer; the output stays reachable through
    /// [`ParallelWriter::inner_mut`] (to sync it).
    pub fn finish(&mut self) -> Result<ParquetMetaData> {
        self.flush()?;
        self.writer.finish()
    }

    /// The output.
    pub fn inner_mut(&mut self) -> &mut W {
        self.writer.inner_mut()
    }

    /// Writes the open row group and the footer and returns the output.
    pub fn into_inner(mut self) -> Result<W> {
        self.flush()?;
        self.writer.into_inner()
    }
}

/// True when columns of `fields` are written as the writer's `schema` says: the same fields,
/// where a top-level string or binary column may come as its view type (Parquet encodes both
/// the same; the file's schema says text).
fn encodes_as(fields: &Fields, schema: &Fields) -> bool {
    fields.len() == schema.len()
        && fields.iter().zip(schema.iter()).all(|(a, b)| {
            a == b
                || (a.name() == b.name()
                    && a.is_nullable() == b.is_nullable()
                    && matches!(
                        (a.data_type(), b.data_type()),
                        (DataType::Utf8View, DataType::Utf8)
                            | (DataType::BinaryView, DataType::Binary)
                    ))
        })
}

/// Computes the leaf columns of `batch` (per top-level field, in parallel) and writes each to
/// its column writer (in parallel).
fn encode(
    writers: &mut [ArrowColumnWriter],
    schema: &SchemaRef,
    batch: &RecordBatch,
) -> Result<()> {
    let leaves: Vec<Vec<ArrowLeafColumn>> = schema
        .fields()
        .par_iter()
        .zip(batch.columns().par_iter())
        .map(|(field, column)| compute_leaves(field, column))
        .collect::<Result<_>>()?;
    let leaves: Vec<ArrowLeafColumn> = leaves.into_iter().flatten().collect();
    if leaves.len() != writers.len() {
        return Err(ParquetError::General(format!(
            "{} leaf columns for {} column writers",
            leaves.len(),
            writers.len()
        )));
    }
    writers
        .par_iter_mut()
        .zip(leaves.par_iter())
        .try_for_each(|(writer, leaf)| writer.write(leaf))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, ArrayRef, Int64Array, ListArray, StringArray, StructArray};
    use arrow::datatypes::{DataType, Field, Int64Type, Schema};
    use bytes::Bytes;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::arrow::ArrowWriter;

    fn batch(from: i64, n: i64) -> RecordBatch {
        let ids: ArrayRef = Arc::new(StringArray::from_iter(
            (from..from + n).map(|i| (i % 7 != 0).then(|| format!("id_{i}"))),
        ));
        let amounts: ArrayRef = Arc::new(Int64Array::from_iter_values(from..from + n));
        let inner = StructArray::from(vec![(
            Arc::new(Field::new("amount", DataType::Int64, true)),
            Arc::clone(&amounts),
        )]);
        let list: ArrayRef = Arc::new(ListArray::from_iter_primitive::<Int64Type, _, _>(
            (from..from + n)
                .map(|i| (i % 3 != 0).then(|| (0..i % 4).map(Some).collect::<Vec<_>>())),
        ));
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, true),
            Field::new("obj", inner.data_type().clone(), true),
            Field::new("list", list.data_type().clone(), true),
        ]));
        RecordBatch::try_new(schema, vec![ids, Arc::new(inner), list]).unwrap()
    }

    fn read(bytes: Vec<u8>) -> (Vec<RecordBatch>, usize) {
        let builder = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(bytes)).unwrap();
        let groups = builder.metadata().num_row_groups();
        (
            builder.build().unwrap().map(|b| b.unwrap()).collect(),
            groups,
        )
    }

    #[test]
    fn reads_back_what_arrow_writer_would_write_with_row_groups_at_the_limit() {
        let props = || {
            WriterProperties::builder()
                .set_max_row_group_row_count(Some(1000))
                .build()
        };
        let input = [batch(0, 700), batch(700, 900), batch(1600, 450)];
        let schema = input[0].schema();
        let mut ours = ParallelWriter::try_new(Vec::new(), schema.clone(), props()).unwrap();
        let mut theirs = ArrowWriter::try_new(Vec::new(), schema.clone(), Some(props())).unwrap();
        for b in &input {
            ours.write(b).unwrap();
            theirs.write(b).unwrap();
        }
        let (ours, our_groups) = read(ours.into_inner().unwrap());
        let (theirs, their_groups) = read(theirs.into_inner().unwrap());
        assert_eq!(our_groups, 3);
        assert_eq!(our_groups, their_groups);
        let all = arrow::compute::concat_batches(&schema, &input).unwrap();
        let ours = arrow::compute::concat_batches(&schema, &ours).unwrap();
        let theirs = arrow::compute::concat_batches(&schema, &theirs).unwrap();
        assert_eq!(ours, all);
        assert_eq!(ours, theirs);
    }

    #[test]
    fn refuses_a_batch_of_another_schema() {
        let schema = batch(0, 1).schema();
        let mut w =
            ParallelWriter::try_new(Vec::new(), schema, WriterProperties::default()).unwrap();
        let other = RecordBatch::try_from_iter(vec![(
            "x",
            Arc::new(Int64Array::from(vec![1])) as ArrayRef,
        )])
        .unwrap();
        let err = w.write(&other).unwrap_err().to_string();
        assert!(err.contains("does not match"), "{err}");
    }
}
