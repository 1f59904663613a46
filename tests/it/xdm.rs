//! Tests for xdm: schema parsing, the Arrow shape and output checks. The validation rules are
//! tested in `xdm_rules`, with the shared helpers below.

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Fields, Schema, TimeUnit};
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

pub(crate) fn acme() -> XdmSchema {
    XdmSchema::from_json_str(ACME).expect("schema parses")
}

/// A record schema with one optional field per type (bounds as Platform writes them).
pub(crate) fn types() -> XdmSchema {
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

pub(crate) fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
    RecordBatch::try_from_iter(columns).expect("batch")
}

pub(crate) fn strings(values: &[Option<&str>]) -> ArrayRef {
    Arc::new(StringArray::from(values.to_vec()))
}

pub(crate) fn longs(values: &[Option<i64>]) -> ArrayRef {
    Arc::new(Int64Array::from(values.to_vec()))
}

/// Checks the invariants of every outcome and returns it.
pub(crate) fn run(batch: &RecordBatch, schema: &XdmSchema) -> Validated {
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
pub(crate) fn codes(v: &Validated, row: u32) -> Vec<(String, String)> {
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

pub(crate) fn warned(v: &Validated) -> Vec<(u32, String)> {
    v.warnings
        .iter()
        .map(|w| (w.row, w.column.clone()))
        .collect()
}

pub(crate) fn rejected_rows(v: &Validated) -> Vec<u32> {
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
