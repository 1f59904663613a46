//! Writer properties fitted to a file's first rows: dictionaries, compression and statistics
//! per column, decided from what the columns hold.

use std::collections::HashSet;

use arrow::array::{Array, ArrayRef, AsArray, OffsetSizeTrait, RecordBatch};
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
        value_leaves(
            vec![field.name().clone()],
            column.as_ref(),
            props.coerce_types(),
            &mut leaves,
        );
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
/// (`<list>.list.<item>…`), a map's its entries' keys and values (`<map>.<entries>.key`,
/// `<map>.<entries>.value…`), named as the Arrow writer names them: after the Arrow fields, or
/// with `coerce` (`WriterProperties::coerce_types`) `element`, `key_value`, `key` and `value`.
fn value_leaves(
    path: Vec<String>,
    array: &dyn Array,
    coerce: bool,
    out: &mut Vec<(Vec<String>, ArrayRef)>,
) {
    let nested = |mut path: Vec<String>, names: &[&str], child: &dyn Array, out: &mut _| {
        path.extend(names.iter().map(|n| n.to_string()));
        value_leaves(path, child, coerce, out);
    };
    match array.data_type() {
        DataType::Struct(fields) => {
            for (f, child) in fields.iter().zip(array.as_struct().columns()) {
                nested(path.clone(), &[f.name()], child.as_ref(), out);
            }
        }
        DataType::List(item) | DataType::LargeList(item) => {
            let items = match array.data_type() {
                DataType::List(_) => list_items::<i32>(array),
                _ => list_items::<i64>(array),
            };
            let item = if coerce { "element" } else { item.name() };
            nested(path, &["list", item], items.as_ref(), out);
        }
        DataType::Map(entries, _) => {
            let map = array.as_map();
            let (o, rows) = (map.offsets(), map.len());
            let (start, len) = (o[0] as usize, (o[rows] - o[0]) as usize);
            let names: [&str; 2] = match (coerce, entries.data_type()) {
                (false, DataType::Struct(f)) if f.len() == 2 => [f[0].name(), f[1].name()],
                _ => ["key", "value"],
            };
            let entries_name = if coerce { "key_value" } else { entries.name() };
            for (name, child) in names.iter().zip([map.keys(), map.values()]) {
                let child = child.slice(start, len);
                nested(path.clone(), &[entries_name, name], child.as_ref(), out);
            }
        }
        t if is_bytes(t) || t.is_primitive() || *t == DataType::Boolean => {
            out.push((path, arrow::array::make_array(array.to_data())))
        }
        _ => {}
    }
}

/// The items of a list array's rows (its values from the first row's start to the last row's end).
fn list_items<O: OffsetSizeTrait>(array: &dyn Array) -> ArrayRef {
    let list = array.as_list::<O>();
    let offsets = list.offsets();
    let (start, end) = (offsets[0].as_usize(), offsets[list.len()].as_usize());
    list.values().slice(start, end - start)
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
#[path = "fit_tests.rs"]
mod tests;
