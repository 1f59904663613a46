//! Type conversions and JSON (§2.5 "Type conversions", "JSON"). An unparseable value gives null.

use std::sync::Arc;

use arrow::array::{ArrayRef, Float32Array, Int32Array, StringArray};
use arrow::datatypes::DataType;
use datafusion::common::{Result, ScalarValue};

use super::hierarchy::{build_map, map_type};
use super::{float64, floats, int64, ints, Args, Def};

pub(crate) fn defs() -> Vec<Def> {
    vec![
        Def::new("to_bigint", "to_bigint(STRING)",
            "Integer text → Int64 (Java BigInteger: \"1000000.34\" is not an integer → null; the docs' output 1000000.34 is a doc bug)",
            (1, 1), int64, to_bigint),
        Def::new("to_decimal", "to_decimal(STRING)", "Number text → Float64 (Data Prep's Double)", (1, 1), float64, to_decimal),
        Def::new("to_float", "to_float(STRING)", "Number text → Float32", (1, 1), float32, to_float),
        Def::new("to_integer", "to_integer(STRING)", "Integer text → Int32 (out of range or not an integer → null)", (1, 1), int32, to_integer),
        Def::new("json_to_object", "json_to_object(STRING)",
            "A JSON object's top-level members as a Map<Utf8, Utf8> (strings unquoted, other values as JSON text); not an object → null",
            (1, 1), json_ret, json_to_object),
    ]
}

fn float32(_: &[DataType], _: &[Option<&ScalarValue>]) -> Result<DataType> {
    Ok(DataType::Float32)
}
fn int32(_: &[DataType], _: &[Option<&ScalarValue>]) -> Result<DataType> {
    Ok(DataType::Int32)
}
fn json_ret(_: &[DataType], _: &[Option<&ScalarValue>]) -> Result<DataType> {
    Ok(map_type(DataType::Utf8))
}

fn is_text(a: &Args) -> bool {
    matches!(
        a.arrays[0].data_type(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    )
}

fn to_bigint(a: &Args) -> Result<ArrayRef> {
    if !is_text(a) {
        return ints(a.n, |r| a.int(0, r));
    }
    ints(a.n, |r| a.str(0, r)?.trim().parse::<i64>().ok())
}

fn parse_f64(s: &str) -> Option<f64> {
    let v: f64 = s
        .trim()
        .trim_end_matches(['d', 'D', 'f', 'F'])
        .parse()
        .ok()?;
    v.is_finite().then_some(v)
}

fn to_decimal(a: &Args) -> Result<ArrayRef> {
    if !is_text(a) {
        return floats(a.n, |r| a.float(0, r));
    }
    floats(a.n, |r| parse_f64(a.str(0, r)?))
}

fn to_float(a: &Args) -> Result<ArrayRef> {
    let v: Float32Array = (0..a.n)
        .map(|r| {
            if is_text(a) {
                parse_f64(a.str(0, r)?)
            } else {
                a.float(0, r)
            }
            .map(|x| x as f32)
        })
        .collect();
    Ok(Arc::new(v))
}

fn to_integer(a: &Args) -> Result<ArrayRef> {
    let v: Int32Array = (0..a.n)
        .map(|r| {
            let x = if is_text(a) {
                a.str(0, r)?.trim().parse::<i64>().ok()?
            } else {
                a.int(0, r)?
            };
            i32::try_from(x).ok()
        })
        .collect();
    Ok(Arc::new(v))
}

fn json_to_object(a: &Args) -> Result<ArrayRef> {
    let mut values: Vec<Option<String>> = Vec::new();
    let rows: Vec<_> = (0..a.n)
        .map(|r| {
            let v: serde_json::Value = serde_json::from_str(a.str(0, r)?).ok()?;
            let obj = v.as_object()?;
            Some(
                obj.iter()
                    .map(|(k, v)| {
                        values.push(match v {
                            serde_json::Value::Null => None,
                            serde_json::Value::String(s) => Some(s.clone()),
                            other => Some(other.to_string()),
                        });
                        (k.clone(), 0, values.len() - 1)
                    })
                    .collect::<Vec<_>>(),
            )
        })
        .collect();
    build_map(
        &DataType::Utf8,
        &[Arc::new(StringArray::from(values))],
        &rows,
    )
}
