//! Tests for xdm: schema parsing, the Arrow shape, output checks and every validation rule.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Date32Array, Float64Array, Int64Array, ListArray,
    MapBuilder, RecordBatch, StringArray, StringBuilder, StructArray, TimestampSecondArray,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{
    DataType, Date32Type, Field, Fields, Int16Type, Int32Type, Int64Type, Int8Type, Schema,
    TimeUnit, TimestampMillisecondType,
};
use stripe_xdm::xdm::{
    validate, Behavior, Format, ProblemKind, Validated, XdmError, XdmSchema, XdmType,
};

const ACME: &str = r#"{
  "$id": "https://ns.adobe.com/acme/schemas/charges",
  "title": "Stripe Charges",
  "type": "object",
  "meta:class": "https://ns.adobe.com/xdm/context/experienceevent",
  "meta:extends": ["https://ns.adobe.com/xdm/data/time-series"],
  "properties": {
    "_id": {"type": "string", "format": "uri-reference"},
    "timestamp": {"type": "string", "format": "date-time"},
    "_acme": {
      "type": "object",
      "required": ["amount", "currency"],
      "properties": {
        "amount": {"type": "integer", "minimum": -9007199254740991, "maximum": 9007199254740991},
        "currency": {"type": "string", "enum": ["usd", "eur", "gbp"]},
        "email": {"type": "string", "format": "email", "pattern": "^[^@]+@[^@]+$"},
        "status": {"type": "string", "enum": ["succeeded", "pending", "failed"]},
        "createdDate": {"type": "string", "format": "date"},
        "metadata": {"type": "object", "meta:xdmType": "map", "additionalProperties": {"type": "string"}},
        "items": {
          "type": "array",
          "items": {
            "type": "object",
            "required": ["sku"],
            "properties": {
              "sku": {"type": "string", "minLength": 3, "maxLength": 8},
              "quantity": {"type": "integer", "meta:xdmType": "int", "minimum": 1, "maximum": 100}
            }
          }
        }
      }
    }
  },
  "descriptors": [
    {"@type": "xdm:descriptorIdentity", "xdm:sourceProperty": "/_acme/email",
     "xdm:namespace": "Email", "xdm:property": "xdm:code", "xdm:isPrimary": true},
    {"@type": "xdm:descriptorIdentity", "xdm:sourceProperty": "/_id",
     "xdm:namespace": "StripeCharge", "xdm:property": "xdm:code"}
  ]
}"#;

fn acme() -> XdmSchema {
    XdmSchema::from_json_str(ACME).expect("schema parses")
}

/// A record schema with one optional field per type (bounds as Platform writes them).
fn types() -> XdmSchema {
    XdmSchema::from_json_str(
        r#"{"title": "types", "meta:behaviorType": "record", "properties": {
        "b": {"type": "integer", "minimum": -128, "maximum": 128},
        "s": {"type": "integer", "minimum": -32768, "maximum": 32768},
        "i": {"type": "integer", "minimum": -2147483648, "maximum": 2147483648},
        "l": {"type": "integer", "minimum": -9007199254740991, "maximum": 9007199254740991},
        "d": {"type": "number", "minimum": -1.5, "maximum": 1000},
        "q": {"type": "integer", "meta:xdmType": "int", "minimum": 1, "maximum": 100},
        "dt": {"type": "string", "format": "date-time"},
        "dd": {"type": "string", "format": "date"},
        "bo": {"type": "boolean"},
        "str": {"type": "string", "minLength": 2, "maxLength": 4},
        "dts": {"type": "string", "meta:xdmType": "string", "format": "date-time"},
        "ds": {"type": "string", "meta:xdmType": "string", "format": "date"},
        "u": {"type": "string", "format": "uri"},
        "ur": {"type": "string", "format": "uri-reference"},
        "e": {"type": "string", "format": "email"},
        "n": {"type": "integer", "enum": [1, 2, 3]}
    }}"#,
    )
    .expect("types schema parses")
}

fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
    RecordBatch::try_from_iter(columns).expect("batch")
}

fn strings(values: &[Option<&str>]) -> ArrayRef {
    Arc::new(StringArray::from(values.to_vec()))
}

fn longs(values: &[Option<i64>]) -> ArrayRef {
    Arc::new(Int64Array::from(values.to_vec()))
}

/// Checks the invariants of every outcome and returns it.
fn run(batch: &RecordBatch, schema: &XdmSchema) -> Validated {
    let v = validate(batch, schema).expect("validate");
    assert_eq!(v.accepted.num_rows() + v.rejected.len(), batch.num_rows());
    assert_eq!(v.accepted.num_rows(), v.accepted_rows.len());
    assert_eq!(v.accepted.schema(), schema.arrow_schema());
    assert!(v.accepted_rows.windows(2).all(|w| w[0] < w[1]));
    let mut all: Vec<u32> = v.accepted_rows.clone();
    all.extend(v.rejected.iter().map(|r| r.row));
    all.sort();
    assert_eq!(all, (0..batch.num_rows() as u32).collect::<Vec<_>>());
    v
}

/// (column, code) of a rejected row's issues, sorted.
/// (column, code) of a rejected row's issues, sorted.
fn codes(v: &Validated, row: u32) -> Vec<(String, String)> {
    v.rejected
        .iter()
        .find(|r| r.row == row)
        .map(|r| {
            let mut c: Vec<_> = r
                .errors
                .iter()
                .map(|e| (e.column.clone(), e.code.clone()))
                .collect();
            c.sort();
            c
        })
        .unwrap_or_default()
}

fn warned(v: &Validated) -> Vec<(u32, String)> {
    v.warnings
        .iter()
        .map(|w| (w.row, w.column.clone()))
        .collect()
}

fn rejected_rows(v: &Validated) -> Vec<u32> {
    v.rejected.iter().map(|r| r.row).collect()
}

// ---------------------------------------------------------------- parsing

#[test]
fn parses_a_realistic_schema() {
    let s = acme();
    assert_eq!(s.title(), Some("Stripe Charges"));
    assert_eq!(s.id(), Some("https://ns.adobe.com/acme/schemas/charges"));
    assert_eq!(s.behavior(), Behavior::TimeSeries);
    assert_eq!(s.tenant(), Some("acme"));
    let names: Vec<_> = s.fields().iter().map(|f| f.name()).collect();
    assert_eq!(names, ["_id", "timestamp", "_acme"], "schema order is kept");
    // time-series: `_id` and `timestamp` are required even without a `required` array.
    assert!(s.fields()[0].required() && s.fields()[1].required());
    let acme = &s.fields()[2];
    let children: Vec<_> = acme.children().iter().map(|f| f.name()).collect();
    assert_eq!(
        children,
        [
            "amount",
            "currency",
            "email",
            "status",
            "createdDate",
            "metadata",
            "items"
        ]
    );
    let amount = s.field("_acme.amount").unwrap();
    assert!(matches!(amount.xdm_type(), XdmType::Long));
    assert!(amount.required());
    assert_eq!(
        amount.value_range(),
        Some((-9007199254740991, 9007199254740991))
    );
    assert!(
        amount.constraints().is_empty(),
        "type bounds are not constraints"
    );
    let email = s.field("_acme.email").unwrap();
    assert!(!email.required());
    assert_eq!(email.constraints().format, Some(Format::Email));
    assert!(email.constraints().pattern.is_some());
    assert_eq!(
        s.field("_acme.currency")
            .unwrap()
            .constraints()
            .enum_values
            .len(),
        3
    );
    assert!(matches!(
        s.field("_acme.createdDate").unwrap().xdm_type(),
        XdmType::Date
    ));
    assert!(matches!(
        s.field("timestamp").unwrap().xdm_type(),
        XdmType::DateTime
    ));
    assert!(
        matches!(s.field("_acme.metadata").unwrap().xdm_type(), XdmType::Map(v) if matches!(v.xdm_type(), XdmType::String))
    );
    let sku = s.field("_acme.items[].sku").unwrap();
    assert!(sku.required());
    assert_eq!(sku.constraints().min_length, Some(3));
    let quantity = s.field("_acme.items[].quantity").unwrap();
    assert!(matches!(quantity.xdm_type(), XdmType::Integer));
    assert_eq!(quantity.constraints().minimum, Some(1.0));

    assert_eq!(s.identities().len(), 2);
    let primary = s.primary_identity().unwrap();
    assert_eq!(primary.path, "_acme.email");
    assert_eq!(primary.namespace, "Email");
    assert!(!s.identities()[1].primary);

    let tree = s.schema_tree();
    assert!(tree.contains("amount: long (required)"), "{tree}");
    assert!(
        tree.contains("identity primary: _acme.email (Email)"),
        "{tree}"
    );
}

#[test]
fn arrow_schema_follows_the_parquet_mapping() {
    let s = acme();
    let a = s.arrow_schema();
    assert_eq!(a.field(0), &Field::new("_id", DataType::Utf8, true));
    let ts = DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
    assert_eq!(a.field(1), &Field::new("timestamp", ts, true));
    let DataType::Struct(acme) = a.field(2).data_type() else {
        panic!("_acme is a struct")
    };
    assert_eq!(acme[0].data_type(), &DataType::Int64);
    assert_eq!(acme[4].data_type(), &DataType::Date32);
    let map = DataType::Map(
        Arc::new(Field::new(
            "entries",
            DataType::Struct(Fields::from(vec![
                Field::new("key", DataType::Utf8, false),
                Field::new("value", DataType::Utf8, true),
            ])),
            false,
        )),
        false,
    );
    assert_eq!(acme[5].data_type(), &map);
    let item = DataType::Struct(Fields::from(vec![
        Field::new("sku", DataType::Utf8, true),
        Field::new("quantity", DataType::Int32, true),
    ]));
    let list = DataType::List(Arc::new(Field::new("item", item, true)));
    assert_eq!(acme[6].data_type(), &list);
    assert!(a.fields().iter().all(|f| f.is_nullable()));

    let t = types().arrow_schema();
    let ty = |n: &str| t.field_with_name(n).unwrap().data_type().clone();
    assert_eq!(ty("b"), DataType::Int8);
    assert_eq!(ty("s"), DataType::Int16);
    assert_eq!(ty("i"), DataType::Int32);
    assert_eq!(ty("l"), DataType::Int64);
    assert_eq!(ty("d"), DataType::Float64);
    assert_eq!(ty("bo"), DataType::Boolean);
    assert_eq!(ty("dts"), DataType::Utf8);
}

fn parse_error(json: &str) -> String {
    match XdmSchema::from_json_str(json) {
        Err(e @ XdmError::Schema { .. }) => e.to_string(),
        other => panic!("expected a schema error, got {other:?}"),
    }
}

#[test]
fn parse_errors_name_the_json_pointer() {
    let e = parse_error(
        r#"{"properties": {"_acme": {"type": "object", "properties": {"amount": {"type": "integr"}}}}}"#,
    );
    assert_eq!(
        e,
        r#"#/properties/_acme/properties/amount: unknown type "integr""#
    );
    let e = parse_error(r#"{"properties": {"a": {"type": "string", "pattern": "(("}}}"#);
    assert!(
        e.starts_with("#/properties/a/pattern: invalid pattern"),
        "{e}"
    );
    let e = parse_error(r#"{"required": ["b"], "properties": {"a": {"type": "string"}}}"#);
    assert!(e.starts_with("#/required/0:"), "{e}");
    let e = parse_error(
        r#"{"properties": {"m": {"type": "object", "meta:xdmType": "map", "additionalProperties": {"type": "boolean"}}}}"#,
    );
    assert!(e.starts_with("#/properties/m/additionalProperties:"), "{e}");
    let e = parse_error(r#"{"properties": {"a": {"$ref": "https://ns.adobe.com/xdm/common/x"}}}"#);
    assert!(e.contains("unresolved $ref"), "{e}");
    let two_primaries = r#"{"properties": {"a": {"type": "string"}, "b": {"type": "string"}},
      "descriptors": [
        {"@type": "xdm:descriptorIdentity", "xdm:sourceProperty": "/a", "xdm:namespace": "Email", "xdm:isPrimary": true},
        {"@type": "xdm:descriptorIdentity", "xdm:sourceProperty": "/b", "xdm:namespace": "Phone", "xdm:isPrimary": true}]}"#;
    assert!(parse_error(two_primaries).starts_with("#/descriptors/1:"));
    let unknown = r#"{"properties": {"a": {"type": "string"}}, "descriptors": [
        {"@type": "xdm:descriptorIdentity", "xdm:sourceProperty": "/_acme/nope", "xdm:namespace": "Email"}]}"#;
    assert!(parse_error(unknown).contains("not in the schema"));
    let e = parse_error(r#"{"properties": {"a": {"type": "string", "enum": ["x", 1]}}}"#);
    assert!(e.starts_with("#/properties/a/enum/1:"), "{e}");
}

#[test]
fn integer_types_come_from_bounds_or_meta_xdm_type() {
    let s = types();
    let ty = |p: &str| s.field(p).unwrap().xdm_type().name();
    assert_eq!(
        ["b", "s", "i", "l", "q"].map(ty),
        ["byte", "short", "int", "long", "int"]
    );
    // Integer bounds as the docs write them (2147483648) stop at what Int32 holds.
    assert_eq!(
        s.field("i").unwrap().value_range(),
        Some((-2147483648, 2147483647))
    );
    assert_eq!(s.field("b").unwrap().value_range(), Some((-128, 127)));
    // Custom bounds without meta:xdmType: a Long with constraints.
    let c = XdmSchema::from_json_str(
        r#"{"properties": {"x": {"type": "integer", "minimum": 0, "maximum": 10}, "y": {"type": "integer"}}}"#,
    )
    .unwrap();
    let x = c.field("x").unwrap();
    assert!(matches!(x.xdm_type(), XdmType::Long));
    assert_eq!(
        (x.constraints().minimum, x.constraints().maximum),
        (Some(0.0), Some(10.0))
    );
    assert!(matches!(c.field("y").unwrap().xdm_type(), XdmType::Long));
    assert_eq!(c.behavior(), Behavior::Record);
}

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

// ---------------------------------------------------------------- output checks

#[test]
fn check_output_reports_unknown_missing_and_incompatible_columns() {
    let mapped = Schema::new(vec![
        Field::new("timestamp", DataType::Int64, true),
        Field::new(
            "_acme",
            DataType::Struct(Fields::from(vec![
                Field::new("amount", DataType::Utf8, true),
                Field::new("createddate", DataType::Utf8, true),
                Field::new(
                    "email",
                    DataType::Struct(Fields::from(vec![Field::new("a", DataType::Utf8, true)])),
                    true,
                ),
            ])),
            true,
        ),
        Field::new("extra", DataType::Boolean, true),
    ]);
    let problems = acme().check_output(&mapped);
    let found: Vec<_> = problems.iter().map(|p| (p.path.as_str(), p.kind)).collect();
    assert_eq!(
        found,
        [
            ("timestamp", ProblemKind::IncompatibleType),
            ("_acme.createddate", ProblemKind::UnknownColumn),
            ("_acme.email", ProblemKind::IncompatibleType),
            ("_acme.currency", ProblemKind::MissingRequired),
            ("extra", ProblemKind::UnknownColumn),
            ("_id", ProblemKind::MissingRequired),
        ]
    );
    let msg = |path: &str| &problems.iter().find(|p| p.path == path).unwrap().message;
    assert!(
        msg("timestamp").contains("to_timestamp_seconds"),
        "{}",
        msg("timestamp")
    );
    assert!(msg("_acme.createddate").contains("\"createdDate\""));
    assert!(msg("_acme.email").contains("struct"));

    // Row-by-row conversions are fine here.
    let fine = Schema::new(vec![
        Field::new("_id", DataType::Utf8View, true),
        Field::new(
            "timestamp",
            DataType::Timestamp(TimeUnit::Second, None),
            true,
        ),
    ]);
    assert!(acme().check_output(&fine).is_empty());
    let narrow = Schema::new(vec![Field::new("i", DataType::Float64, true)]);
    assert!(types().check_output(&narrow).is_empty());
    let cast_hint = Schema::new(vec![Field::new("i", DataType::Boolean, true)]);
    assert!(types().check_output(&cast_hint)[0]
        .message
        .contains("CAST(x AS INT)"));
}

#[test]
fn validate_refuses_columns_the_schema_lacks() {
    let b = batch(vec![("nope", strings(&[Some("x")]))]);
    match validate(&b, &types()) {
        Err(XdmError::Mismatch { problems }) => assert_eq!(problems[0].path, "nope"),
        other => panic!("expected a mismatch, got {other:?}"),
    }
    let b = batch(vec![("bo", longs(&[Some(1)]))]);
    assert!(matches!(
        validate(&b, &types()),
        Err(XdmError::Mismatch { .. })
    ));
    let ok = batch(vec![(
        "bo",
        Arc::new(BooleanArray::from(vec![true])) as ArrayRef,
    )]);
    assert!(validate(&ok, &types()).is_ok());
}
