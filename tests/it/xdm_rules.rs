//! Tests for xdm: every validation rule (types and ranges, constraints, the Acme schema end to
//! end). Schemas and helpers are shared with `xdm`.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Date32Array, Float64Array, ListArray, MapBuilder, RecordBatch,
    StringBuilder, StructArray, TimestampSecondArray,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{
    DataType, Date32Type, Field, Fields, Int16Type, Int32Type, Int64Type, Int8Type,
    TimestampMillisecondType,
};
use stripe_xdm::xdm::XdmSchema;

use super::xdm::{acme, batch, codes, longs, rejected_rows, run, strings, types, warned};

// ---------------------------------------------------------------- types and ranges

/// Feeds `values` into integer column `name` and returns (accepted values as i64, warned rows).
fn integer_case(name: &str, values: &[i64]) -> (Vec<Option<i64>>, Vec<u32>) {
    let b = batch(vec![(
        name,
        longs(&values.iter().map(|v| Some(*v)).collect::<Vec<_>>()),
    )]);
    let v = run(&b, &types());
    assert!(v.rejected.is_empty(), "optional fields never reject");
    let col = v.accepted.column_by_name(name).unwrap();
    let out: Vec<Option<i64>> = match col.data_type() {
        DataType::Int8 => col
            .as_primitive::<Int8Type>()
            .iter()
            .map(|x| x.map(i64::from))
            .collect(),
        DataType::Int16 => col
            .as_primitive::<Int16Type>()
            .iter()
            .map(|x| x.map(i64::from))
            .collect(),
        DataType::Int32 => col
            .as_primitive::<Int32Type>()
            .iter()
            .map(|x| x.map(i64::from))
            .collect(),
        _ => col.as_primitive::<Int64Type>().iter().collect(),
    };
    assert!(v.warnings.iter().all(|w| w.code == "MAPPER-3700-400"));
    (out, v.warnings.iter().map(|w| w.row).collect())
}

#[test]
fn integer_ranges_at_and_past_the_bounds() {
    let cases: [(&str, i64, i64); 4] = [
        ("b", -128, 127),
        ("s", -32768, 32767),
        ("i", -2147483648, 2147483647),
        ("l", -9007199254740991, 9007199254740991),
    ];
    for (name, lo, hi) in cases {
        let (out, warned) = integer_case(name, &[lo, hi, lo - 1, hi + 1, 0]);
        assert_eq!(out, [Some(lo), Some(hi), None, None, Some(0)], "{name}");
        assert_eq!(warned, [2, 3], "{name}");
    }
}

#[test]
fn floats_convert_to_integers_only_when_integral() {
    let b = batch(vec![(
        "l",
        Arc::new(Float64Array::from(vec![
            Some(3.0),
            Some(3.5),
            None,
            Some(-0.0),
        ])) as ArrayRef,
    )]);
    let v = run(&b, &types());
    let l = v
        .accepted
        .column_by_name("l")
        .unwrap()
        .as_primitive::<Int64Type>();
    assert_eq!(l.iter().collect::<Vec<_>>(), [Some(3), None, None, Some(0)]);
    assert_eq!(warned(&v), [(1, "l".to_string())]);
    assert_eq!(v.warnings[0].value.as_deref(), Some("3.5"));
}

#[test]
fn strings_convert_to_numbers_and_booleans() {
    let b = batch(vec![
        ("i", strings(&[Some("42"), Some("x"), Some("")])),
        ("d", strings(&[Some("1.25"), Some("NaN"), None])),
        ("bo", strings(&[Some("true"), Some("false"), Some("maybe")])),
    ]);
    let v = run(&b, &types());
    let i = v
        .accepted
        .column_by_name("i")
        .unwrap()
        .as_primitive::<Int32Type>();
    assert_eq!(i.iter().collect::<Vec<_>>(), [Some(42), None, None]);
    let d = v
        .accepted
        .column_by_name("d")
        .unwrap()
        .as_primitive::<arrow::datatypes::Float64Type>();
    assert_eq!(d.iter().collect::<Vec<_>>(), [Some(1.25), None, None]);
    let bo = v.accepted.column_by_name("bo").unwrap().as_boolean();
    assert_eq!(
        bo.iter().collect::<Vec<_>>(),
        [Some(true), Some(false), None]
    );
    // The empty string is absent, not a conversion failure.
    assert_eq!(
        warned(&v),
        [
            (1, "i".to_string()),
            (1, "d".to_string()),
            (2, "bo".to_string())
        ]
    );
}

#[test]
fn date_times_parse_rfc3339_and_timestamps_become_utc_millis() {
    let inputs = [
        Some("2019-05-15T20:20:39+00:00"),
        Some("2019-05-15T20:20:39Z"),
        Some("2019-05-15T20:20:39.123Z"),
        Some("2019-05-15T22:20:39+0200"),
        Some("2019-05-15"),
        Some("2019-05-15T20:20:39"),
        Some("yesterday"),
        Some("2999-01-01T00:00:00Z"),
    ];
    let b = batch(vec![("dt", strings(&inputs))]);
    let v = run(&b, &types());
    let dt = v
        .accepted
        .column_by_name("dt")
        .unwrap()
        .as_primitive::<TimestampMillisecondType>();
    let base = 1_557_951_639_000;
    assert_eq!(dt.value(0), base);
    assert_eq!(dt.value(1), base);
    assert_eq!(dt.value(2), base + 123);
    assert_eq!(dt.value(3), base);
    assert!(dt.is_null(4) && dt.is_null(5) && dt.is_null(6));
    assert!(dt.is_valid(7), "future date-times are not rejected");
    assert_eq!(
        v.warnings.iter().map(|w| w.row).collect::<Vec<_>>(),
        [4, 5, 6]
    );

    let secs = TimestampSecondArray::from(vec![Some(1_557_951_639)]).with_timezone("+02:00");
    let v = run(&batch(vec![("dt", Arc::new(secs) as ArrayRef)]), &types());
    let dt = v
        .accepted
        .column_by_name("dt")
        .unwrap()
        .as_primitive::<TimestampMillisecondType>();
    assert_eq!(dt.value(0), base);
    assert_eq!(dt.timezone(), Some("UTC"));
}

#[test]
fn dates_parse_yyyy_mm_dd() {
    let b = batch(vec![(
        "dd",
        strings(&[
            Some("2019-05-15"),
            Some("2019-5-15"),
            Some("2019-02-30"),
            Some("1970-01-01"),
        ]),
    )]);
    let v = run(&b, &types());
    let dd = v
        .accepted
        .column_by_name("dd")
        .unwrap()
        .as_primitive::<Date32Type>();
    assert_eq!(
        dd.iter().collect::<Vec<_>>(),
        [Some(18031), None, None, Some(0)]
    );
    assert_eq!(v.warnings.len(), 2);
    let days = Date32Array::from(vec![Some(7)]);
    let v = run(&batch(vec![("dd", Arc::new(days) as ArrayRef)]), &types());
    assert_eq!(
        v.accepted
            .column_by_name("dd")
            .unwrap()
            .as_primitive::<Date32Type>()
            .value(0),
        7
    );
}

#[test]
fn a_null_or_empty_optional_field_passes_as_absent() {
    let b = batch(vec![
        ("str", strings(&[None, Some("")])),
        ("l", longs(&[None, None])),
    ]);
    let v = run(&b, &types());
    assert!(v.rejected.is_empty() && v.warnings.is_empty());
    assert_eq!(v.accepted.column_by_name("str").unwrap().null_count(), 2);
    // Fields the mapping does not produce are all null.
    assert_eq!(v.accepted.column_by_name("dt").unwrap().null_count(), 2);
}

// ---------------------------------------------------------------- constraints

#[test]
fn string_lengths_count_characters() {
    let b = batch(vec![(
        "str",
        strings(&[
            Some("ab"),
            Some("abcd"),
            Some("a"),
            Some("abcde"),
            Some("żółw"),
        ]),
    )]);
    let v = run(&b, &types());
    assert_eq!(rejected_rows(&v), [2, 3]);
    assert_eq!(
        codes(&v, 2),
        [("str".to_string(), "XDM-MINLENGTH".to_string())]
    );
    assert_eq!(
        codes(&v, 3),
        [("str".to_string(), "XDM-MAXLENGTH".to_string())]
    );
    assert_eq!(v.rejected[1].errors[0].value.as_deref(), Some("abcde"));
}

#[test]
fn minimum_and_maximum_are_inclusive() {
    let b = batch(vec![
        ("q", longs(&[Some(1), Some(100), Some(0), Some(101), None])),
        (
            "d",
            Arc::new(Float64Array::from(vec![
                Some(-1.5),
                Some(1000.0),
                Some(-1.6),
                Some(1000.5),
                None,
            ])) as ArrayRef,
        ),
    ]);
    let v = run(&b, &types());
    assert_eq!(rejected_rows(&v), [2, 3]);
    let c = |code: &str| code.to_string();
    assert_eq!(
        codes(&v, 2),
        [
            ("d".into(), c("XDM-MINIMUM")),
            ("q".into(), c("XDM-MINIMUM"))
        ]
    );
    assert_eq!(
        codes(&v, 3),
        [
            ("d".into(), c("XDM-MAXIMUM")),
            ("q".into(), c("XDM-MAXIMUM"))
        ]
    );
}

#[test]
fn integer_enums() {
    let v = run(&batch(vec![("n", longs(&[Some(2), Some(4)]))]), &types());
    assert_eq!(codes(&v, 1), [("n".to_string(), "XDM-ENUM".to_string())]);
}

#[test]
fn string_formats() {
    let b = batch(vec![
        (
            "dts",
            strings(&[Some("2019-05-15T20:20:39Z"), Some("2019-05-15 20:20")]),
        ),
        ("ds", strings(&[Some("2019-05-15"), Some("15/05/2019")])),
        (
            "u",
            strings(&[Some("https://stripe.com/x?y=1"), Some("/relative/path")]),
        ),
        ("ur", strings(&[Some("ch_3Mtw#a"), Some("has space")])),
        (
            "e",
            strings(&[Some("jenny@example.com"), Some("not-an-email")]),
        ),
    ]);
    let v = run(&b, &types());
    assert_eq!(rejected_rows(&v), [1]);
    let cols: Vec<_> = codes(&v, 1)
        .into_iter()
        .map(|(c, code)| {
            assert_eq!(code, "XDM-FORMAT");
            c
        })
        .collect();
    assert_eq!(cols, ["ds", "dts", "e", "u", "ur"]);
    // A string-typed date-time keeps its text.
    assert_eq!(
        v.accepted
            .column_by_name("dts")
            .unwrap()
            .as_string::<i32>()
            .value(0),
        "2019-05-15T20:20:39Z"
    );
}

// ---------------------------------------------------------------- the Acme schema end to end

/// One Acme row; `None` leaves a value null.
#[derive(Clone, Default)]
struct Row {
    id: Option<&'static str>,
    ts: Option<&'static str>,
    amount: Option<i64>,
    currency: Option<&'static str>,
    email: Option<&'static str>,
    status: Option<&'static str>,
    created: Option<&'static str>,
    metadata: Vec<(&'static str, &'static str)>,
    items: Vec<(Option<&'static str>, Option<i64>)>,
}

fn good() -> Row {
    Row {
        id: Some("ch_1"),
        ts: Some("2024-01-02T03:04:05Z"),
        amount: Some(1999),
        currency: Some("usd"),
        email: Some("jenny@example.com"),
        status: Some("succeeded"),
        created: Some("2024-01-02"),
        metadata: vec![("order", "42")],
        items: vec![(Some("sku-1"), Some(2))],
    }
}

fn acme_batch(rows: &[Row]) -> RecordBatch {
    let col =
        |f: fn(&Row) -> Option<&'static str>| strings(&rows.iter().map(f).collect::<Vec<_>>());
    let mut meta = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
    for r in rows {
        for (k, v) in &r.metadata {
            meta.keys().append_value(k);
            meta.values().append_value(v);
        }
        meta.append(true).unwrap();
    }
    let all: Vec<_> = rows.iter().flat_map(|r| r.items.clone()).collect();
    let item_fields = Fields::from(vec![
        Field::new("sku", DataType::Utf8, true),
        Field::new("quantity", DataType::Int64, true),
    ]);
    let items = StructArray::new(
        item_fields.clone(),
        vec![
            strings(&all.iter().map(|i| i.0).collect::<Vec<_>>()),
            longs(&all.iter().map(|i| i.1).collect::<Vec<_>>()),
        ],
        None,
    );
    let items = ListArray::new(
        Arc::new(Field::new("item", DataType::Struct(item_fields), true)),
        OffsetBuffer::from_lengths(rows.iter().map(|r| r.items.len())),
        Arc::new(items),
        None,
    );
    let children: Vec<(&str, ArrayRef)> = vec![
        (
            "amount",
            longs(&rows.iter().map(|r| r.amount).collect::<Vec<_>>()),
        ),
        ("currency", col(|r| r.currency)),
        ("email", col(|r| r.email)),
        ("status", col(|r| r.status)),
        ("createdDate", col(|r| r.created)),
        ("metadata", Arc::new(meta.finish())),
        ("items", Arc::new(items)),
    ];
    let fields: Fields = children
        .iter()
        .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
        .collect();
    let acme = StructArray::new(fields, children.into_iter().map(|(_, a)| a).collect(), None);
    batch(vec![
        ("_id", col(|r| r.id)),
        ("timestamp", col(|r| r.ts)),
        ("_acme", Arc::new(acme)),
    ])
}

#[test]
fn good_rows_are_accepted_and_converted() {
    let b = acme_batch(&[good(), good()]);
    assert!(acme().check_output(&b.schema()).is_empty());
    let v = run(&b, &acme());
    assert!(v.rejected.is_empty() && v.warnings.is_empty());
    assert_eq!(v.accepted_rows, [0, 1]);
    let acme = v.accepted.column(2).as_struct();
    let items = acme.column_by_name("items").unwrap().as_list::<i32>();
    let q = items.value(0);
    assert_eq!(
        q.as_struct().column(1).as_primitive::<Int32Type>().value(0),
        2
    );
    let meta = acme.column_by_name("metadata").unwrap().as_map();
    assert_eq!(meta.value(1).column(1).as_string::<i32>().value(0), "42");
}

#[test]
fn required_top_level_fields() {
    let rows = [
        good(),
        Row { id: None, ..good() },
        Row {
            ts: Some(""),
            ..good()
        },
    ];
    let v = run(&acme_batch(&rows), &acme());
    assert_eq!(v.accepted_rows, [0]);
    assert_eq!(
        codes(&v, 1),
        [("_id".to_string(), "INGEST-1555-400".to_string())]
    );
    assert_eq!(
        codes(&v, 2),
        [("timestamp".to_string(), "INGEST-1555-400".to_string())]
    );
}

#[test]
fn required_nested_fields_only_when_the_object_is_present() {
    let absent = Row {
        amount: None,
        currency: None,
        email: None,
        status: None,
        created: None,
        metadata: vec![],
        items: vec![],
        ..good()
    };
    let rows = [
        Row {
            amount: None,
            ..good()
        },
        absent,
    ];
    let v = run(&acme_batch(&rows), &acme());
    assert_eq!(
        codes(&v, 0),
        [("_acme.amount".to_string(), "INGEST-1555-400".to_string())]
    );
    // An object with no present field is absent: its required fields are not checked.
    assert_eq!(v.accepted_rows, [1]);
    assert!(v.accepted.column(2).is_null(0));
}

#[test]
fn enum_pattern_and_array_items() {
    let rows = [
        Row {
            currency: Some("btc"),
            ..good()
        },
        Row {
            email: Some("jenny.example.com"),
            ..good()
        },
        Row {
            status: Some("Succeeded"),
            ..good()
        },
        Row {
            items: vec![
                (Some("sku-1"), Some(1)),
                (Some("x"), Some(0)),
                (None, Some(5)),
            ],
            ..good()
        },
    ];
    let v = run(&acme_batch(&rows), &acme());
    assert!(v.accepted_rows.is_empty());
    let s = |a: &str, b: &str| (a.to_string(), b.to_string());
    assert_eq!(codes(&v, 0), [s("_acme.currency", "XDM-ENUM")]);
    assert_eq!(
        codes(&v, 1),
        [
            s("_acme.email", "XDM-FORMAT"),
            s("_acme.email", "XDM-PATTERN")
        ]
    );
    assert_eq!(codes(&v, 2), [s("_acme.status", "XDM-ENUM")]);
    assert_eq!(
        codes(&v, 3),
        [
            s("_acme.items[1].quantity", "XDM-MINIMUM"),
            s("_acme.items[1].sku", "XDM-MINLENGTH"),
            s("_acme.items[2].sku", "INGEST-1555-400"),
        ]
    );
}

#[test]
fn a_failed_conversion_nulls_the_field_and_keeps_or_rejects_the_row() {
    let rows = [
        Row {
            created: Some("2024-13-01"),
            ..good()
        },
        Row {
            ts: Some("not a time"),
            ..good()
        },
        good(),
    ];
    let v = run(&acme_batch(&rows), &acme());
    // Optional field: nulled, warned, row accepted.
    assert_eq!(v.accepted_rows, [0, 2]);
    assert_eq!(warned(&v), [(0, "_acme.createdDate".to_string())]);
    assert_eq!(v.warnings[0].value.as_deref(), Some("2024-13-01"));
    let acme = v.accepted.column(2).as_struct();
    assert!(acme.column_by_name("createdDate").unwrap().is_null(0));
    // Required field: rejected with the conversion warning and the required error.
    let s = |a: &str, b: &str| (a.to_string(), b.to_string());
    assert_eq!(
        codes(&v, 1),
        [
            s("timestamp", "INGEST-1555-400"),
            s("timestamp", "MAPPER-3700-400")
        ]
    );
    // Conversions come first in a row's issues.
    assert_eq!(v.rejected[0].errors[0].code, "MAPPER-3700-400");
}

#[test]
fn map_values_convert_to_the_value_type() {
    let schema = XdmSchema::from_json_str(
        r#"{"properties": {"m": {"type": "object", "meta:xdmType": "map", "additionalProperties": {"type": "integer"}}}}"#,
    )
    .unwrap();
    let mut meta = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
    for (k, v) in [("a", "1"), ("b", "two")] {
        meta.keys().append_value(k);
        meta.values().append_value(v);
    }
    meta.append(true).unwrap();
    let v = run(
        &batch(vec![("m", Arc::new(meta.finish()) as ArrayRef)]),
        &schema,
    );
    assert_eq!(warned(&v), [(0, "m.b".to_string())]);
    let m = v.accepted.column(0).as_map();
    let values = m.values().as_primitive::<Int64Type>();
    assert_eq!(values.iter().collect::<Vec<_>>(), [Some(1), None]);
}

#[test]
fn values_in_messages_are_truncated() {
    let long = "x".repeat(500);
    let v = run(&batch(vec![("i", strings(&[Some(&long)]))]), &types());
    let shown = v.warnings[0].value.as_ref().unwrap();
    assert!(shown.chars().count() <= 201, "{}", shown.len());
}
