//! Writer properties fitted to a file's first rows: dictionaries, compression and statistics
//! per column, decided from what the columns hold.

use std::collections::HashSet;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::DataType;
use parquet::basic::Compression;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

/// `props` for a file whose first rows are `sample`:
///
/// - dictionary encoding is turned off for the string, binary and number columns whose sampled
///   values are mostly distinct (ids, URLs, JSON text, creation times). A dictionary of unique
///   values saves nothing (ZSTD sees the same bytes either way) and costs a hash and a table
///   probe per value, which was the largest part of Parquet encoding for Stripe objects after
///   ZSTD (BENCHMARKS.md §2h). Columns with repeats (statuses, currencies, brands) keep theirs.
/// - columns whose encoded values come to less than [`SMALL_COLUMN_BYTES`] per row group at
///   the sampled density are written uncompressed: fields that are mostly null, flags, and
///   columns that keep a dictionary of a few values (statuses, currencies, countries), whose
///   pages hold the dictionary once and a few bits per row. ZSTD saves little on a chunk of a
///   few kilobytes (often nothing: the bit-packed indices of a dictionary do not compress), and
///   each compressed column chunk creates a ZSTD compressor and decompressor, whose CPU
///   detection alone (three `cpuid`s each, ~4 µs apiece on this virtual machine) costs more
///   than compressing the chunk (BENCHMARKS.md §2j, §2m).
///
/// Columns inside lists and maps are judged the same way, by their items per sampled row.
pub fn fit_to_rows(props: WriterProperties, sample: &RecordBatch) -> WriterProperties {
    let mut builder = props.clone().into_builder();
    let mut leaves = Vec::new();
    for (field, column) in sample.schema().fields().iter().zip(sample.columns()) {
        value_leaves(vec![field.name().clone()], column.as_ref(), &mut leaves);
    }
    let rows = sample.num_rows().max(1);
    let group = props.max_row_group_row_count().unwrap_or(1024 * 1024);
    for (path, array) in leaves {
        let path = ColumnPath::new(path);
        let array = array.as_ref();
        let distinct = distinct_values(array);
        let dictionary = props.dictionary_enabled(&path);
        if dictionary && distinct.mostly_distinct {
            builder = builder.set_column_dictionary_enabled(path.clone(), false);
        }
        let per_group = if dictionary && !distinct.mostly_distinct && distinct.values > 0 {
            dictionary_bytes(array, &distinct, group, rows)
        } else {
            value_bytes(array).saturating_mul(group) / rows
        };
        if rows >= MIN_SAMPLE_ROWS
            && per_group < SMALL_COLUMN_BYTES
            && props.compression(&path) != Compression::UNCOMPRESSED
        {
            builder = builder.set_column_compression(path, Compression::UNCOMPRESSED);
        }
    }
    builder.build()
}

/// The size under which a column chunk is written uncompressed (see [`fit_to_rows`]).
pub const SMALL_COLUMN_BYTES: usize = 8 * 1024;

/// Rows a sample needs before it may turn compression off: a file that starts with a few
/// records (the changed objects of an incremental run) may go on with a long backfill, where a
/// column absent from those few is not.
const MIN_SAMPLE_ROWS: usize = 1024;

/// The bytes of the values of a leaf array as Parquet's plain encoding holds them (a string
/// with its 4-byte length, a boolean as a bit); nulls count nothing.
fn value_bytes(array: &dyn Array) -> usize {
    if let Some(values) = byte_values(array) {
        return values.flatten().map(|v| v.len() + 4).sum();
    }
    let valid = array.len() - array.null_count();
    match array.data_type() {
        DataType::Boolean => valid.div_ceil(8),
        t => valid * t.primitive_width().unwrap_or(8),
    }
}

/// The values of a string or binary array as bytes (`None` for a null); `None` for other types.
fn byte_values(array: &dyn Array) -> Option<Box<dyn Iterator<Item = Option<&[u8]>> + '_>> {
    Some(match array.data_type() {
        DataType::Utf8 => Box::new(
            array
                .as_string::<i32>()
                .iter()
                .map(|v| v.map(str::as_bytes)),
        ),
        DataType::LargeUtf8 => Box::new(
            array
                .as_string::<i64>()
                .iter()
                .map(|v| v.map(str::as_bytes)),
        ),
        DataType::Utf8View => Box::new(array.as_string_view().iter().map(|v| v.map(str::as_bytes))),
        DataType::Binary => Box::new(array.as_binary::<i32>().iter()),
        DataType::LargeBinary => Box::new(array.as_binary::<i64>().iter()),
        DataType::BinaryView => Box::new(array.as_binary_view().iter()),
        _ => return None,
    })
}

/// `builder` with no min/max statistics for the string and binary columns of `schema` (outside
/// lists) other than `keep`: comparing every value of ids, URLs and free text costs time and
/// prunes nothing, since their ranges cover every file. Numbers, timestamps and `keep` keep them.
pub fn byte_statistics_only_for(
    mut builder: parquet::file::properties::WriterPropertiesBuilder,
    schema: &arrow::datatypes::Schema,
    keep: &[&str],
) -> parquet::file::properties::WriterPropertiesBuilder {
    fn walk(path: Vec<String>, data_type: &DataType, out: &mut Vec<Vec<String>>) {
        match data_type {
            DataType::Struct(fields) => {
                for f in fields {
                    let mut p = path.clone();
                    p.push(f.name().clone());
                    walk(p, f.data_type(), out);
                }
            }
            t if is_bytes(t) => out.push(path),
            _ => {}
        }
    }
    let mut paths = Vec::new();
    for f in schema.fields() {
        walk(vec![f.name().clone()], f.data_type(), &mut paths);
    }
    for path in paths {
        if !(path.len() == 1 && keep.contains(&path[0].as_str())) {
            builder = builder
                .set_column_statistics_enabled(ColumnPath::new(path), EnabledStatistics::None);
        }
    }
    builder
}

fn is_bytes(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Utf8
            | DataType::LargeUtf8
            | DataType::Utf8View
            | DataType::Binary
            | DataType::LargeBinary
            | DataType::BinaryView
    )
}

/// The string, binary, fixed-width (number, timestamp) and boolean leaves of `array` (through
/// structs, lists and maps) with their Parquet column paths. A list's leaves are its items'
/// (`<list>.list.<item>…`, as the Arrow writer names them), a map's its entries' keys and values
/// (`<map>.<entries>.key`, `<map>.<entries>.value…`).
fn value_leaves(path: Vec<String>, array: &dyn Array, out: &mut Vec<(Vec<String>, ArrayRef)>) {
    let nested = |mut path: Vec<String>, names: &[&str], child: &dyn Array, out: &mut _| {
        path.extend(names.iter().map(|n| n.to_string()));
        value_leaves(path, child, out);
    };
    match array.data_type() {
        DataType::Struct(fields) => {
            for (f, child) in fields.iter().zip(array.as_struct().columns()) {
                nested(path.clone(), &[f.name()], child.as_ref(), out);
            }
        }
        DataType::List(item) => {
            let list = array.as_list::<i32>();
            let (o, rows) = (list.offsets(), list.len());
            let items = list
                .values()
                .slice(o[0] as usize, (o[rows] - o[0]) as usize);
            nested(path, &["list", item.name()], items.as_ref(), out);
        }
        DataType::LargeList(item) => {
            let list = array.as_list::<i64>();
            let (o, rows) = (list.offsets(), list.len());
            let items = list
                .values()
                .slice(o[0] as usize, (o[rows] - o[0]) as usize);
            nested(path, &["list", item.name()], items.as_ref(), out);
        }
        DataType::Map(entries, _) => {
            let map = array.as_map();
            let (o, rows) = (map.offsets(), map.len());
            let slice = map
                .entries()
                .slice(o[0] as usize, (o[rows] - o[0]) as usize);
            nested(path, &[entries.name()], &slice, out);
        }
        t if is_bytes(t) || t.is_primitive() || *t == DataType::Boolean => {
            out.push((path, arrow::array::make_array(array.to_data())))
        }
        _ => {}
    }
}

/// What the first (up to 8,192) non-null values of a leaf array hold: how many were sampled,
/// and whether more than half are distinct; for a column that is not mostly distinct, how many
/// distinct values and their bytes (as a dictionary page holds them).
#[derive(Debug, Default, PartialEq, Eq)]
struct Distinct {
    values: usize,
    mostly_distinct: bool,
    distinct: usize,
    distinct_bytes: usize,
}

/// The [`Distinct`] of a string, binary or fixed-width array; too few values (under 64) to tell
/// are not mostly distinct; other types are all zero.
fn distinct_values(array: &dyn Array) -> Distinct {
    const SAMPLE: usize = 8192;
    fn count<'a>(values: impl Iterator<Item = Option<&'a [u8]>>, prefix: usize) -> Distinct {
        let values: Vec<&[u8]> = values.flatten().take(SAMPLE).collect();
        let mut seen = HashSet::with_capacity(values.len());
        let mut out = Distinct {
            values: values.len(),
            ..Distinct::default()
        };
        for v in &values {
            if seen.insert(*v) {
                out.distinct += 1;
                out.distinct_bytes += v.len() + prefix;
                if values.len() >= 64 && out.distinct * 2 > values.len() {
                    out.mostly_distinct = true;
                    return out;
                }
            }
        }
        out
    }
    if let Some(values) = byte_values(array) {
        // A dictionary page holds each string with its 4-byte length.
        return count(values, 4);
    }
    let t = array.data_type();
    match t.primitive_width() {
        // Fixed-width values compared by their bytes (a float's bits).
        Some(width) if t.is_primitive() => {
            let data = array.to_data();
            let Some(buffer) = data.buffers().first() else {
                return Distinct::default();
            };
            let values = &buffer.as_slice()[data.offset() * width..][..data.len() * width];
            count(
                values
                    .chunks_exact(width)
                    .enumerate()
                    .map(|(i, v)| array.is_valid(i).then_some(v)),
                0,
            )
        }
        _ => Distinct::default(),
    }
}

/// The bytes per row group of a column written with a dictionary: the dictionary (the sample's
/// distinct values, scaled up when a row group holds more rows than the sample, which can only
/// overstate it) and one bit-packed index per non-null value.
fn dictionary_bytes(array: &dyn Array, distinct: &Distinct, group: usize, rows: usize) -> usize {
    let scale = group.div_ceil(rows).max(1);
    let dictionary = distinct.distinct_bytes.saturating_mul(scale);
    let bits = (usize::BITS - (distinct.distinct * scale).leading_zeros()) as usize;
    let valid = array.len() - array.null_count();
    let indices = (valid.saturating_mul(group) / rows)
        .saturating_mul(bits)
        .div_ceil(8);
    dictionary.saturating_add(indices)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Int64Array, StringArray, StructArray};
    use arrow::datatypes::{Field, Schema};
    use bytes::Bytes;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    use crate::columnar::ParallelWriter;

    fn read(bytes: Vec<u8>) -> Vec<RecordBatch> {
        let builder = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(bytes)).unwrap();
        builder.build().unwrap().map(|b| b.unwrap()).collect()
    }

    /// Rows with a unique id, a repeating status, a struct holding a unique and a repeating
    /// string, and a number.
    fn mixed(n: usize) -> RecordBatch {
        let ids: ArrayRef = Arc::new(StringArray::from_iter_values(
            (0..n).map(|i| format!("ch_{i}")),
        ));
        let status: ArrayRef = Arc::new(StringArray::from_iter_values(
            (0..n).map(|i| ["succeeded", "failed", "pending"][i % 3]),
        ));
        let card = StructArray::from(vec![
            (
                Arc::new(Field::new("fingerprint", DataType::Utf8, true)),
                Arc::new(StringArray::from_iter_values(
                    (0..n).map(|i| format!("fp{i}")),
                )) as ArrayRef,
            ),
            (
                Arc::new(Field::new("brand", DataType::Utf8, true)),
                Arc::new(StringArray::from_iter_values(
                    (0..n).map(|i| ["visa", "amex"][i % 2]),
                )) as ArrayRef,
            ),
        ]);
        let amount: ArrayRef = Arc::new(Int64Array::from_iter_values((0..n as i64).map(|i| i * 7)));
        let tier: ArrayRef = Arc::new(Int64Array::from_iter(
            (0..n as i64).map(|i| (i % 5 != 0).then_some(i % 4)),
        ));
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("status", DataType::Utf8, false),
            Field::new("card", card.data_type().clone(), true),
            Field::new("amount", DataType::Int64, false),
            Field::new("tier", DataType::Int64, true),
        ]));
        RecordBatch::try_new(schema, vec![ids, status, Arc::new(card), amount, tier]).unwrap()
    }

    #[test]
    fn dictionaries_are_dropped_only_for_mostly_distinct_strings() {
        let props = fit_to_rows(WriterProperties::builder().build(), &mixed(1000));
        let dict = |p: &[&str]| {
            props.dictionary_enabled(&ColumnPath::from(
                p.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            ))
        };
        assert!(!dict(&["id"]));
        assert!(!dict(&["card", "fingerprint"]));
        assert!(dict(&["status"]));
        assert!(dict(&["card", "brand"]));
        assert!(!dict(&["amount"]), "distinct numbers");
        assert!(dict(&["tier"]), "repeating numbers");
        // Too few rows to tell: the defaults stand.
        let props = fit_to_rows(WriterProperties::builder().build(), &mixed(10));
        assert!(props.dictionary_enabled(&ColumnPath::from("id")));
    }

    #[test]
    fn columns_of_a_few_bytes_per_row_group_are_written_uncompressed() {
        let n = 2000;
        let ids: ArrayRef = Arc::new(StringArray::from_iter_values(
            (0..n).map(|i| format!("ch_{i}")),
        ));
        let never: ArrayRef = Arc::new(StringArray::from(vec![None::<&str>; n]));
        let rare: ArrayRef = Arc::new(StringArray::from_iter(
            (0..n).map(|i| (i == 7).then_some("tracking_1")),
        ));
        let flag: ArrayRef = Arc::new(arrow::array::BooleanArray::from_iter(
            (0..n).map(|i| Some(i % 3 == 0)),
        ));
        let batch = RecordBatch::try_from_iter(vec![
            ("id", ids),
            ("never", never),
            ("rare", rare),
            ("flag", flag),
        ])
        .unwrap();
        let zstd = Compression::ZSTD(parquet::basic::ZstdLevel::try_new(1).unwrap());
        let props_zstd = || {
            WriterProperties::builder()
                .set_compression(zstd)
                .set_max_row_group_row_count(Some(8192))
                .build()
        };
        let props = fit_to_rows(props_zstd(), &batch);
        let mut w = ParallelWriter::try_new(Vec::new(), batch.schema(), props).unwrap();
        w.write(&batch).unwrap();
        let bytes = w.into_inner().unwrap();
        let read_back = arrow::compute::concat_batches(&batch.schema(), &read(bytes.clone()));
        assert_eq!(read_back.unwrap(), batch);
        let reader = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(bytes)).unwrap();
        let rg = reader.metadata().row_group(0);
        let codecs: Vec<(String, Compression)> = (0..rg.num_columns())
            .map(|i| {
                (
                    rg.column(i).column_path().string(),
                    rg.column(i).compression(),
                )
            })
            .collect();
        assert_eq!(
            codecs,
            vec![
                ("id".to_string(), zstd),
                ("never".to_string(), Compression::UNCOMPRESSED),
                ("rare".to_string(), Compression::UNCOMPRESSED),
                // 2,000 rows of flags are 250 bytes, a row group of 8,192 about 1 KiB.
                ("flag".to_string(), Compression::UNCOMPRESSED),
            ]
        );
        // Too few rows to tell: every column keeps the file's codec.
        let few = fit_to_rows(props_zstd(), &batch.slice(0, 100));
        for column in ["id", "never", "rare", "flag"] {
            assert_eq!(few.compression(&ColumnPath::from(column)), zstd, "{column}");
        }
    }

    #[test]
    fn columns_with_a_dictionary_of_a_few_values_are_written_uncompressed() {
        let n = 4096;
        // Three statuses over every row: a dictionary of ~30 bytes and 2 bits a row, ~2 KiB
        // per row group of 8,192, although the plain values would be ~100 KiB.
        let status: ArrayRef =
            Arc::new(StringArray::from_iter_values((0..n).map(|i| {
                ["requires_payment_method", "succeeded", "failed"][i % 3]
            })));
        // 1,000 distinct descriptions of ~60 bytes repeating: not mostly distinct, but the
        // dictionary alone is ~64 KiB, which ZSTD shrinks.
        let description: ArrayRef = Arc::new(StringArray::from_iter_values((0..n).map(|i| {
            format!(
                "Order {:04} of the spring catalogue, shipped by ground",
                i % 1000
            )
        })));
        let batch =
            RecordBatch::try_from_iter(vec![("status", status), ("description", description)])
                .unwrap();
        let zstd = Compression::ZSTD(parquet::basic::ZstdLevel::try_new(1).unwrap());
        let props = WriterProperties::builder()
            .set_compression(zstd)
            .set_max_row_group_row_count(Some(8192))
            .build();
        let fitted = fit_to_rows(props, &batch);
        let status = ColumnPath::from("status");
        let description = ColumnPath::from("description");
        assert!(fitted.dictionary_enabled(&status));
        assert!(fitted.dictionary_enabled(&description));
        assert_eq!(fitted.compression(&status), Compression::UNCOMPRESSED);
        assert_eq!(fitted.compression(&description), zstd);
        // Written and read back unchanged.
        let mut w = ParallelWriter::try_new(Vec::new(), batch.schema(), fitted).unwrap();
        w.write(&batch).unwrap();
        let back = read(w.into_inner().unwrap());
        assert_eq!(
            arrow::compute::concat_batches(&batch.schema(), &back).unwrap(),
            batch
        );
    }

    #[test]
    fn string_statistics_are_kept_only_for_the_named_columns() {
        let batch = mixed(500);
        let builder =
            byte_statistics_only_for(WriterProperties::builder(), &batch.schema(), &["id"]);
        let props = fit_to_rows(builder.build(), &batch);
        let mut w = ParallelWriter::try_new(Vec::new(), batch.schema(), props).unwrap();
        w.write(&batch).unwrap();
        let bytes = w.into_inner().unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(bytes)).unwrap();
        let rg = reader.metadata().row_group(0);
        let has_range = |i: usize| {
            rg.column(i)
                .statistics()
                .is_some_and(|s| s.min_bytes_opt().is_some())
        };
        let names: Vec<String> = (0..rg.num_columns())
            .map(|i| rg.column(i).column_path().string())
            .collect();
        assert_eq!(
            names,
            [
                "id",
                "status",
                "card.fingerprint",
                "card.brand",
                "amount",
                "tier"
            ]
        );
        assert!(has_range(0), "id keeps its range");
        assert!(
            !has_range(1) && !has_range(2) && !has_range(3),
            "other strings do not"
        );
        assert!(has_range(4) && has_range(5), "numbers keep theirs");
        let back: Vec<RecordBatch> = reader.build().unwrap().map(|b| b.unwrap()).collect();
        assert_eq!(back, vec![batch]);
    }

    #[test]
    fn columns_inside_lists_and_maps_are_fitted_under_the_paths_the_file_gives_them() {
        let n: usize = 8192;
        // A map of two namespaces to lists of {id, primary}, as identityMap, and a list of
        // unique strings.
        let mut ids = arrow::array::StringBuilder::new();
        let mut keys = arrow::array::StringBuilder::new();
        let (mut items, mut entries) = (vec![0i32], vec![0i32]);
        for i in 0..n {
            for ns in ["StripeCustomerId", "Email"] {
                keys.append_value(ns);
                ids.append_value(format!("{ns}-{i}"));
                items.push(items.len() as i32);
            }
            entries.push(2 * (i as i32 + 1));
        }
        let item_fields = arrow::datatypes::Fields::from(vec![
            Field::new("id", DataType::Utf8, true),
            Field::new("primary", DataType::Boolean, true),
        ]);
        let item = Arc::new(Field::new(
            "item",
            DataType::Struct(item_fields.clone()),
            true,
        ));
        let primary = arrow::array::BooleanArray::from_iter((0..2 * n).map(|i| Some(i % 2 == 0)));
        let values = arrow::array::ListArray::new(
            item.clone(),
            arrow::buffer::OffsetBuffer::new(items.into()),
            Arc::new(StructArray::new(
                item_fields,
                vec![Arc::new(ids.finish()), Arc::new(primary)],
                None,
            )),
            None,
        );
        let entry_fields = arrow::datatypes::Fields::from(vec![
            Field::new("key", DataType::Utf8, false),
            Field::new("value", values.data_type().clone(), true),
        ]);
        let map: ArrayRef = Arc::new(arrow::array::MapArray::new(
            Arc::new(Field::new(
                "entries",
                DataType::Struct(entry_fields.clone()),
                false,
            )),
            arrow::buffer::OffsetBuffer::new(entries.into()),
            StructArray::new(
                entry_fields,
                vec![Arc::new(keys.finish()), Arc::new(values)],
                None,
            ),
            None,
            false,
        ));
        let tags: ArrayRef = Arc::new(arrow::array::ListArray::from_iter_primitive::<
            arrow::datatypes::Int64Type,
            _,
            _,
        >(
            (0..n as i64).map(|i| Some(vec![Some(i), Some(i + 1)]))
        ));
        let batch = RecordBatch::try_from_iter(vec![("identityMap", map), ("tags", tags)]).unwrap();
        let zstd = Compression::ZSTD(parquet::basic::ZstdLevel::try_new(1).unwrap());
        let props = WriterProperties::builder()
            .set_compression(zstd)
            .set_max_row_group_row_count(Some(8192))
            .build();
        let fitted = fit_to_rows(props, &batch);
        let mut w = ParallelWriter::try_new(Vec::new(), batch.schema(), fitted.clone()).unwrap();
        w.write(&batch).unwrap();
        let bytes = w.into_inner().unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(bytes)).unwrap();
        let rg = reader.metadata().row_group(0);
        let chunk = |path: &str| {
            (0..rg.num_columns())
                .map(|i| rg.column(i))
                .find(|c| c.column_path().string() == path)
                .unwrap_or_else(|| panic!("no column {path}"))
        };
        let path = |p: &str| ColumnPath::new(p.split('.').map(str::to_string).collect());
        let key = "identityMap.entries.key";
        let id = "identityMap.entries.value.list.item.id";
        let primary = "identityMap.entries.value.list.item.primary";
        // Two namespaces: a dictionary of two values, written uncompressed.
        assert!(fitted.dictionary_enabled(&path(key)));
        assert_eq!(chunk(key).compression(), Compression::UNCOMPRESSED);
        assert_eq!(chunk(primary).compression(), Compression::UNCOMPRESSED);
        // Unique ids: no dictionary, compressed.
        assert!(!fitted.dictionary_enabled(&path(id)));
        assert!(!chunk(id)
            .encodings()
            .any(|e| e == parquet::basic::Encoding::RLE_DICTIONARY));
        assert_eq!(chunk(id).compression(), zstd);
        assert!(!fitted.dictionary_enabled(&path("tags.list.item")));
        let back: Vec<RecordBatch> = reader.build().unwrap().map(|b| b.unwrap()).collect();
        assert_eq!(
            arrow::compute::concat_batches(&batch.schema(), &back).unwrap(),
            batch
        );
    }
}
