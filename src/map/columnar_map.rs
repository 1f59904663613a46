//! `map(keys, values)` without per-row work.
//!
//! DataFusion's `map` slices every row's key list and value list into arrays of their own,
//! checks each row's keys for uniqueness on those slices, then concatenates them all again. The
//! default mappings built `identityMap` with it, and it was 3 % of a charges run
//! (BENCHMARKS.md §2j; they now use `identity_map`, §2n); mappings written by users still do.
//! [`ColumnarMap`] takes its place under the same name and builds the
//! same map from the lists' own child arrays when the input has the usual shape: `List` keys of
//! strings and `List` values, as many values as keys in every row, no key null, no entries in a
//! row whose key list is null, at most [`SMALL_ROW`] keys a row. Anything else goes to
//! DataFusion's function, so its errors and edge cases stay DataFusion's.

use std::sync::Arc;

use arrow::array::{Array, ArrayAccessor, AsArray, ListArray, MapArray, StructArray};
use arrow::buffer::{OffsetBuffer, ScalarBuffer};
use arrow::datatypes::{DataType, Field, FieldRef, Fields};
use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
};

/// Rows with more keys than this go to DataFusion's function (uniqueness is checked pairwise).
pub const SMALL_ROW: usize = 16;

/// `map(keys, values)`: DataFusion's, with a columnar path for the usual shape.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ColumnarMap {
    inner: Arc<ScalarUDF>,
}

impl Default for ColumnarMap {
    fn default() -> Self {
        ColumnarMap {
            inner: datafusion::functions_nested::map::map_udf(),
        }
    }
}

impl ScalarUDFImpl for ColumnarMap {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }
    fn signature(&self) -> &Signature {
        self.inner.signature()
    }
    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(arg_types)
    }
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        self.inner.return_field_from_args(args)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        match columnar(&args)? {
            Some(map) => Ok(map),
            None => self.inner.invoke_with_args(args),
        }
    }
}

/// The map of `args` built from the lists' child arrays, or `None` when the input is not of
/// the shape this handles (see the module doc).
fn columnar(args: &ScalarFunctionArgs) -> Result<Option<ColumnarValue>> {
    let [keys, values] = args.args.as_slice() else {
        return Ok(None);
    };
    // All constants: DataFusion makes one scalar map of them.
    if matches!(
        (keys, values),
        (ColumnarValue::Scalar(_), ColumnarValue::Scalar(_))
    ) {
        return Ok(None);
    }
    let rows = args.number_rows;
    let keys = keys.to_array(rows)?;
    let values = values.to_array(rows)?;
    let (Some(keys), Some(values)) = (keys.as_list_opt::<i32>(), values.as_list_opt::<i32>())
    else {
        return Ok(None);
    };
    if keys.values().null_count() > 0 || !rows_fit(keys, values) {
        return Ok(None);
    }
    let (k, v) = (keys.offsets(), values.offsets());
    let key_items = keys
        .values()
        .slice(k[0] as usize, (k[rows] - k[0]) as usize);
    let value_items = values
        .values()
        .slice(v[0] as usize, (v[rows] - v[0]) as usize);
    let fields = Fields::from(vec![
        Field::new("key", key_items.data_type().clone(), false),
        Field::new("value", value_items.data_type().clone(), true),
    ]);
    let entries = StructArray::try_new(fields.clone(), vec![key_items, value_items], None)?;
    let offsets = OffsetBuffer::new(ScalarBuffer::from(
        k.iter().map(|o| o - k[0]).collect::<Vec<i32>>(),
    ));
    let map = MapArray::try_new(
        Arc::new(Field::new("entries", DataType::Struct(fields), false)),
        offsets,
        entries,
        keys.nulls().cloned(),
        false,
    )?;
    Ok(Some(ColumnarValue::Array(Arc::new(map))))
}

/// Whether every row has as many values as keys, no entries where the key list is null, a
/// value list where the key list is not, and at most [`SMALL_ROW`] distinct string keys.
fn rows_fit(keys: &ListArray, values: &ListArray) -> bool {
    let items = keys.values();
    match items.data_type() {
        DataType::Utf8 => rows_fit_with(keys, values, items.as_string::<i32>()),
        DataType::LargeUtf8 => rows_fit_with(keys, values, items.as_string::<i64>()),
        DataType::Utf8View => rows_fit_with(keys, values, items.as_string_view()),
        _ => false,
    }
}

fn rows_fit_with<'a>(
    keys: &ListArray,
    values: &ListArray,
    items: impl ArrayAccessor<Item = &'a str>,
) -> bool {
    let (k, v) = (keys.offsets(), values.offsets());
    (0..keys.len()).all(|row| {
        let (start, len) = (k[row] as usize, (k[row + 1] - k[row]) as usize);
        if len != (v[row + 1] - v[row]) as usize {
            return false;
        }
        if keys.is_null(row) {
            return len == 0;
        }
        values.is_valid(row)
            && len <= SMALL_ROW
            && (0..len)
                .all(|a| (a + 1..len).all(|b| items.value(start + a) != items.value(start + b)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{ArrayRef, Int64Array, StringArray};
    use arrow::buffer::NullBuffer;
    use datafusion::common::ScalarValue;

    fn list(values: ArrayRef, offsets: &[i32], nulls: Option<Vec<bool>>) -> ArrayRef {
        let item = Arc::new(Field::new("item", values.data_type().clone(), true));
        Arc::new(
            ListArray::try_new(
                item,
                OffsetBuffer::new(ScalarBuffer::from(offsets.to_vec())),
                values,
                nulls.map(NullBuffer::from),
            )
            .unwrap(),
        )
    }

    fn strings(v: &[&str]) -> ArrayRef {
        Arc::new(StringArray::from(v.to_vec()))
    }

    fn ints(v: &[Option<i64>]) -> ArrayRef {
        Arc::new(Int64Array::from(v.to_vec()))
    }

    /// Ours and DataFusion's on the same arguments (both results, or both errors), and whether
    /// ours took the columnar path.
    fn both(args: Vec<ColumnarValue>, rows: usize) -> (Result<ArrayRef>, Result<ArrayRef>, bool) {
        let arg_fields: Vec<FieldRef> = args
            .iter()
            .enumerate()
            .map(|(i, a)| Arc::new(Field::new(format!("a{i}"), a.data_type(), true)))
            .collect();
        let types: Vec<DataType> = args.iter().map(|a| a.data_type()).collect();
        let inner = datafusion::functions_nested::map::map_udf();
        let return_field = Arc::new(Field::new("map", inner.return_type(&types).unwrap(), true));
        let function_args = || ScalarFunctionArgs {
            args: args.clone(),
            arg_fields: arg_fields.clone(),
            number_rows: rows,
            return_field: Arc::clone(&return_field),
            config_options: Default::default(),
        };
        let call = |udf: &ScalarUDF| {
            udf.invoke_with_args(function_args())
                .and_then(|v| v.to_array(rows))
        };
        let columnar_path = matches!(columnar(&function_args()), Ok(Some(_)));
        let ours = ScalarUDF::new_from_impl(ColumnarMap::default());
        (call(&ours), call(&inner), columnar_path)
    }

    #[test]
    fn builds_the_same_maps_as_datafusion() {
        // Constant keys (as the default mappings write them), a value list per row.
        let keys = ScalarValue::List(Arc::new(
            list(strings(&["StripeCustomerId", "Email"]), &[0, 2], None)
                .as_list::<i32>()
                .clone(),
        ));
        let values = list(
            ints(&[Some(1), Some(2), None, Some(4), Some(5), Some(6)]),
            &[0, 2, 4, 6],
            None,
        );
        let (ours, theirs, columnar_path) = both(
            vec![ColumnarValue::Scalar(keys), ColumnarValue::Array(values)],
            3,
        );
        assert!(columnar_path);
        assert_eq!(ours.unwrap().to_data(), theirs.unwrap().to_data());

        // Key lists per row, one of them null (a null map), one empty, values sliced.
        let keys = list(
            strings(&["a", "b", "c", "d"]),
            &[0, 2, 2, 2, 4],
            Some(vec![true, false, true, true]),
        );
        let values = list(
            ints(&[Some(9), Some(1), Some(2), Some(3), Some(4)]),
            &[1, 3, 3, 3, 5],
            None,
        );
        let (ours, theirs, columnar_path) = both(
            vec![ColumnarValue::Array(keys), ColumnarValue::Array(values)],
            4,
        );
        assert!(columnar_path);
        assert_eq!(ours.unwrap().to_data(), theirs.unwrap().to_data());
    }

    #[test]
    fn other_shapes_get_datafusions_answer() {
        let cases: Vec<(ArrayRef, ArrayRef)> = vec![
            // A key twice in a row.
            (
                list(strings(&["a", "a"]), &[0, 2], None),
                list(ints(&[Some(1), Some(2)]), &[0, 2], None),
            ),
            // A null key.
            (
                list(
                    Arc::new(StringArray::from(vec![Some("a"), None])),
                    &[0, 2],
                    None,
                ),
                list(ints(&[Some(1), Some(2)]), &[0, 2], None),
            ),
            // Fewer values than keys in a row.
            (
                list(strings(&["a", "b", "c"]), &[0, 2, 3], None),
                list(ints(&[Some(1), Some(2), Some(3)]), &[0, 1, 3], None),
            ),
            // Keys that are not strings.
            (
                list(ints(&[Some(1), Some(2)]), &[0, 2], None),
                list(strings(&["x", "y"]), &[0, 2], None),
            ),
        ];
        for (keys, values) in cases {
            let rows = keys.len();
            let (ours, theirs, columnar_path) = both(
                vec![ColumnarValue::Array(keys), ColumnarValue::Array(values)],
                rows,
            );
            assert!(!columnar_path);
            match (ours, theirs) {
                (Ok(a), Ok(b)) => assert_eq!(a.to_data(), b.to_data()),
                (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
                (a, b) => panic!("ours {a:?}, DataFusion's {b:?}"),
            }
        }
    }
}
