//! Tests of [`super::fit_to_rows`] and [`super::byte_statistics_only_for`].

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
        RecordBatch::try_from_iter(vec![("status", status), ("description", description)]).unwrap();
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
    let builder = byte_statistics_only_for(WriterProperties::builder(), &batch.schema(), &["id"]);
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
    // Parquet's own names for lists and maps (`coerce_types`) or the Arrow fields'.
    for (coerce, key, id, primary, item) in [
        (
            false,
            "identityMap.entries.key",
            "identityMap.entries.value.list.item.id",
            "identityMap.entries.value.list.item.primary",
            "tags.list.item",
        ),
        (
            true,
            "identityMap.key_value.key",
            "identityMap.key_value.value.list.element.id",
            "identityMap.key_value.value.list.element.primary",
            "tags.list.element",
        ),
    ] {
        let props = WriterProperties::builder()
            .set_compression(zstd)
            .set_max_row_group_row_count(Some(8192))
            .set_coerce_types(coerce)
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
        assert!(!fitted.dictionary_enabled(&path(item)));
        assert!(chunk(item).compression() == zstd);
        let back: Vec<RecordBatch> = reader.build().unwrap().map(|b| b.unwrap()).collect();
        if coerce {
            // Read back under Parquet's names (`element`, `key_value`).
            assert_eq!(back.iter().map(|b| b.num_rows()).sum::<usize>(), n);
        } else {
            assert_eq!(
                arrow::compute::concat_batches(&batch.schema(), &back).unwrap(),
                batch
            );
        }
    }
}
