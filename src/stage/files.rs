//! The mirror's data files, written by the engine itself and committed through the Delta log.
//!
//! deltalake's `RecordBatchWriter` encodes each file on one thread and keeps what it writes
//! between commits in its upload pipeline; at 100k records/s of ~2.5 kB JSON each that cost the
//! run half its throughput and gigabytes of memory (BENCHMARKS.md §2a). The mirror is always a
//! local folder, so files are written here with [`ParallelWriter`] (columns encoded on rayon,
//! one row group in memory) straight into the table folder (around the page cache:
//! [`crate::direct`]), and [`FileSink::finish`] hands
//! back their `add` actions, with the statistics Delta readers prune on, for the commit. A file
//! no commit lists is invisible to every Delta reader, and VACUUM removes it.

use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, SchemaRef};
use deltalake::kernel::Add;
use parquet::basic::{Compression, Encoding};
use parquet::file::metadata::ParquetMetaData;
use parquet::file::properties::{WriterProperties, WriterVersion};
use parquet::file::statistics::Statistics;
use parquet::schema::types::ColumnPath;
use serde_json::{Map, Value};

use super::StageError;
use crate::columnar::ParallelWriter;
use crate::decode::RAW_COLUMN;
use crate::direct::DirectFile;

/// Writes rolling Parquet files into a table folder and collects their `add` actions.
pub(crate) struct FileSink {
    dir: PathBuf,
    schema: SchemaRef,
    props: WriterProperties,
    target_bytes: u64,
    stats_columns: Vec<String>,
    current: Option<(ParallelWriter<DirectFile>, String)>,
    adds: Vec<Add>,
}

impl FileSink {
    /// A sink of `schema` rows into the table folder `dir`, rolling files at `target_bytes`,
    /// with Delta statistics for `stats_columns`.
    pub fn new(
        dir: &Path,
        schema: SchemaRef,
        props: WriterProperties,
        target_bytes: u64,
        stats_columns: &[&str],
    ) -> Self {
        FileSink {
            dir: dir.to_path_buf(),
            schema,
            props,
            target_bytes,
            stats_columns: stats_columns.iter().map(|c| c.to_string()).collect(),
            current: None,
            adds: Vec::new(),
        }
    }

    /// An I/O or Parquet error of `action`, kept as the error's source.
    fn err(&self, action: &'static str, e: impl Into<deltalake::DeltaTableError>) -> StageError {
        StageError::Delta {
            path: self.dir.clone(),
            action,
            source: Box::new(e.into()),
        }
    }

    /// Appends rows (in the sink's schema), closing the file once it reaches the target size.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), StageError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        if self.current.is_none() {
            let props = crate::columnar::fit_to_rows(self.props.clone(), batch);
            let name = format!("part-00000-{}-c000.zstd.parquet", uuid::Uuid::new_v4());
            let path = self.dir.join(&name);
            let file =
                DirectFile::create(&path).map_err(|e| self.err("creating a data file", e))?;
            let writer = ParallelWriter::try_new(file, self.schema.clone(), props)
                .map_err(|e| self.err("starting a data file", e))?;
            self.current = Some((writer, name));
        }
        let (writer, _) = self.current.as_mut().expect("opened above");
        if let Err(e) = writer.write(batch) {
            return Err(self.err("writing staged rows", e));
        }
        if (writer.bytes_written() + writer.in_progress_size()) as u64 >= self.target_bytes {
            self.close_file()?;
        }
        Ok(())
    }

    fn close_file(&mut self) -> Result<(), StageError> {
        let Some((mut writer, name)) = self.current.take() else {
            return Ok(());
        };
        let path = self.dir.join(&name);
        let metadata = writer
            .finish()
            .map_err(|e| self.err("finishing a data file", e))?;
        writer
            .inner_mut()
            .finish()
            .map_err(|e| self.err("syncing a data file", e))?;
        let size = std::fs::metadata(&path)
            .map_err(|e| self.err("reading a data file's size", e))?
            .len();
        let stats = delta_stats(&metadata, &self.schema, &self.stats_columns);
        self.adds.push(Add {
            path: name,
            partition_values: Default::default(),
            size: size as i64,
            modification_time: chrono::Utc::now().timestamp_millis(),
            data_change: true,
            stats: Some(stats.to_string()),
            tags: None,
            deletion_vector: None,
            base_row_id: None,
            default_row_commit_version: None,
            clustering_provider: None,
        });
        Ok(())
    }

    /// Closes the open file and returns the `add` actions of every file since the last call.
    pub fn finish(&mut self) -> Result<Vec<Add>, StageError> {
        self.close_file()?;
        Ok(std::mem::take(&mut self.adds))
    }
}

/// The Parquet settings of mirror files of `schema`: ZSTD level 1 and 8k-row groups (a remap
/// reads 1 M charges ~12 % faster than with 64k-row groups: BENCHMARKS.md §2a); `_raw`, unique per
/// row, without a dictionary; min/max statistics of string columns only for the columns Delta
/// readers prune on (`STATS_COLUMNS`: `id`, `_batch`, and `_decode_error`, whose null counts
/// tell which row groups hold records that did not decode), as no other string range prunes a
/// file; version 2 data pages, with the encodings of version 1 (plain values, dictionaries where
/// they are kept). A version 1 page is assembled by copying levels and values into one buffer
/// and compressed into another that grows past the page's size, two copies of every page of
/// `_raw` (the JSON of every record) that a version 2 page, which compresses its values where
/// they were encoded, does not make (BENCHMARKS.md §2l). Every Parquet reader of the last years
/// reads version 2 pages (arrow-rs, DuckDB, Spark, polars, pyarrow); Platform's batches stay
/// version 1.
/// [`crate::columnar::fit_to_rows`] then drops the dictionaries of mostly distinct columns and
/// the compression of columns of a few bytes per row group.
pub(crate) fn writer_props(
    schema: &arrow::datatypes::Schema,
    stats_columns: &[&str],
) -> WriterProperties {
    let raw = ColumnPath::from(RAW_COLUMN);
    let builder = WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            parquet::basic::ZstdLevel::try_new(1).expect("valid level"),
        ))
        .set_max_row_group_row_count(Some(8 * 1024))
        .set_writer_version(WriterVersion::PARQUET_2_0)
        // Version 2's own default for values without a dictionary is DELTA_BYTE_ARRAY and
        // DELTA_BINARY_PACKED, slower to write and to read.
        .set_encoding(Encoding::PLAIN)
        .set_column_dictionary_enabled(raw, false)
        .set_created_by(format!("stripe-xdm {}", env!("CARGO_PKG_VERSION")));
    crate::columnar::byte_statistics_only_for(builder, schema, stats_columns).build()
}

/// A file's Delta statistics (`numRecords`, and `minValues`, `maxValues`, `nullCount` of the
/// top-level `columns`) from its Parquet footer. Timestamps are written at millisecond
/// precision as the protocol asks, minimums rounded down and maximums up, so pruning on them
/// never skips a file that holds a match.
pub(crate) fn delta_stats(meta: &ParquetMetaData, schema: &SchemaRef, columns: &[String]) -> Value {
    let mut min = Map::new();
    let mut max = Map::new();
    let mut nulls = Map::new();
    let descr = meta.file_metadata().schema_descr();
    for name in columns {
        let Some(leaf) =
            (0..descr.num_columns()).find(|&i| descr.column(i).path().string() == *name)
        else {
            continue;
        };
        let timestamp = matches!(
            schema.field_with_name(name).map(|f| f.data_type()),
            Ok(DataType::Timestamp(..))
        );
        let mut lo: Option<Value> = None;
        let mut hi: Option<Value> = None;
        let mut null_count = 0u64;
        let mut complete = true;
        for rg in meta.row_groups() {
            let Some(stats) = rg.column(leaf).statistics() else {
                complete = false;
                continue;
            };
            null_count += stats.null_count_opt().unwrap_or(0);
            let (a, b) = match stats {
                Statistics::Int64(s) => match (s.min_opt(), s.max_opt()) {
                    (Some(a), Some(b)) if timestamp => (micros_floor(*a), micros_ceil(*b)),
                    (Some(a), Some(b)) => (Value::from(*a), Value::from(*b)),
                    _ => continue,
                },
                Statistics::Int32(s) => match (s.min_opt(), s.max_opt()) {
                    (Some(a), Some(b)) => (Value::from(*a), Value::from(*b)),
                    _ => continue,
                },
                Statistics::ByteArray(s) => match (
                    s.min_opt().and_then(|v| v.as_utf8().ok()),
                    s.max_opt().and_then(|v| v.as_utf8().ok()),
                ) {
                    (Some(a), Some(b)) if s.min_is_exact() && s.max_is_exact() => {
                        (Value::from(a), Value::from(b))
                    }
                    _ => {
                        complete = false;
                        continue;
                    }
                },
                _ => {
                    complete = false;
                    continue;
                }
            };
            lo = Some(match lo {
                Some(cur) if less(&cur, &a) => cur,
                _ => a,
            });
            hi = Some(match hi {
                Some(cur) if less(&b, &cur) => cur,
                _ => b,
            });
        }
        nulls.insert(name.clone(), Value::from(null_count));
        if complete {
            if let (Some(lo), Some(hi)) = (lo, hi) {
                min.insert(name.clone(), lo);
                max.insert(name.clone(), hi);
            }
        }
    }
    serde_json::json!({
        "numRecords": meta.file_metadata().num_rows(),
        "minValues": min,
        "maxValues": max,
        "nullCount": nulls,
    })
}

/// `a < b` for two statistics of one column (numbers, or strings, which also order ISO
/// timestamps).
fn less(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_i64() < y.as_i64(),
        (Value::String(x), Value::String(y)) => x < y,
        _ => false,
    }
}

fn iso_millis(ms: i64) -> Value {
    let t = chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default();
    Value::from(t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
}

fn micros_floor(us: i64) -> Value {
    iso_millis(us.div_euclid(1000))
}

fn micros_ceil(us: i64) -> Value {
    iso_millis(us.div_euclid(1000) + i64::from(us.rem_euclid(1000) != 0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn timestamps_round_outward_to_milliseconds() {
        assert_eq!(micros_floor(1_500), Value::from("1970-01-01T00:00:00.001Z"));
        assert_eq!(micros_ceil(1_500), Value::from("1970-01-01T00:00:00.002Z"));
        assert_eq!(micros_ceil(2_000), Value::from("1970-01-01T00:00:00.002Z"));
        assert_eq!(micros_floor(-1), Value::from("1969-12-31T23:59:59.999Z"));
    }

    #[test]
    fn stats_fold_row_groups() {
        use arrow::array::{Int64Array, StringArray};
        use arrow::datatypes::{Field, Schema};
        let schema: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, true),
            Field::new("n", DataType::Int64, false),
        ]));
        let props = WriterProperties::builder()
            .set_max_row_group_row_count(Some(2))
            .build();
        let mut w = ParallelWriter::try_new(Vec::new(), schema.clone(), props).unwrap();
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(vec![
                    Some("b"),
                    None,
                    Some("a"),
                    Some("c"),
                ])),
                Arc::new(Int64Array::from(vec![5, 3, 9, 4])),
            ],
        )
        .unwrap();
        w.write(&batch).unwrap();
        let meta = w.finish().unwrap();
        let stats = delta_stats(&meta, &schema, &["id".into(), "n".into(), "x".into()]);
        assert_eq!(
            stats,
            serde_json::json!({
                "numRecords": 4,
                "minValues": {"id": "a", "n": 3},
                "maxValues": {"id": "c", "n": 9},
                "nullCount": {"id": 1, "n": 0},
            })
        );
    }

    #[test]
    fn mirror_files_hold_version_2_pages_with_version_1_encodings() {
        use arrow::array::{Int64Array, StringArray};
        use arrow::datatypes::{Field, Schema};
        use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
        use parquet::basic::PageType;
        use parquet::file::reader::{FileReader, SerializedFileReader};
        let schema: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("amount", DataType::Int64, true),
            Field::new(RAW_COLUMN, DataType::Utf8, false),
        ]));
        let rows = 3000;
        let ids: Vec<String> = (0..rows).map(|i| format!("ch_{i:024}")).collect();
        let raws: Vec<String> = ids
            .iter()
            .map(|id| format!(r#"{{"id":"{id}","object":"charge"}}"#))
            .collect();
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(ids)),
                Arc::new(Int64Array::from_iter((0..rows).map(|i| Some(i * 7)))),
                Arc::new(StringArray::from(raws)),
            ],
        )
        .unwrap();
        let props = writer_props(&schema, &["id"]);
        let mut w = ParallelWriter::try_new(Vec::new(), schema.clone(), props).unwrap();
        w.write(&batch).unwrap();
        let file = bytes::Bytes::from(w.into_inner().unwrap());

        let reader = SerializedFileReader::new(file.clone()).unwrap();
        let row_group = reader.get_row_group(0).unwrap();
        for (leaf, chunk) in row_group.metadata().columns().iter().enumerate() {
            let encodings = chunk.encodings().collect::<Vec<_>>();
            assert!(
                encodings.iter().all(|e| matches!(
                    e,
                    Encoding::PLAIN | Encoding::RLE | Encoding::RLE_DICTIONARY
                )),
                "{}: {encodings:?}",
                chunk.column_path()
            );
            let mut pages = row_group.get_column_page_reader(leaf).unwrap();
            let mut data_pages = 0;
            while let Some(page) = pages.get_next_page().unwrap() {
                if page.page_type() != PageType::DICTIONARY_PAGE {
                    assert_eq!(page.page_type(), PageType::DATA_PAGE_V2);
                    data_pages += 1;
                }
            }
            assert!(data_pages > 0, "{}", chunk.column_path());
        }
        let read = ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        assert_eq!(
            arrow::compute::concat_batches(&schema, &read).unwrap(),
            batch
        );
    }
}
