//! `identity_map(namespace, id, primary, …)`: Platform's `identityMap` from (namespace, id,
//! primary) triples.
//!
//! An XDM identity map holds, per identity namespace, the record's identities in it:
//! `{"Email": [{"id": "jo@example.com", "primary": true}], "StripeCustomerId": [{"id": "cus_…",
//! "primary": false}]}`. A Stripe object may lack any of them (a guest charge has no customer),
//! and a map entry must not hold a null id, so a mapping would need a `CASE` over every
//! combination of present ids. This function takes the triples instead:
//!
//! - `namespace` is a non-empty string literal, `primary` a boolean literal (`true` for one
//!   triple at most: a record has one primary identity), `id` an expression of text or integers;
//! - a triple whose id is null adds nothing; triples of the same namespace make one entry whose
//!   list holds their identities in argument order;
//! - a row with no id at all gets a null map.
//!
//! Ids are text or integers (checked when the mapping is planned, so `mapping check` reports
//! another type).
//!
//! It is columnar: one pass over the ids, no per-row arrays. The `CASE` it replaced in the
//! default mappings filtered the source columns for every branch and merged the branches' maps
//! (BENCHMARKS.md §2n: 113 profile samples under `CaseExpr` of a 200 k-charge run, 35 after).

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanBuilder, ListArray, MapArray, StringArray, StringBuilder,
    StructArray,
};
use arrow::buffer::{BooleanBuffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow::datatypes::{DataType, Field, FieldRef, Fields};
use datafusion::common::{exec_err, plan_err, Result, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

/// `identity_map(namespace1, id1, primary1, namespace2, id2, primary2, …)`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(super) struct IdentityMap {
    signature: Signature,
}

impl IdentityMap {
    pub(super) fn new() -> Self {
        IdentityMap {
            signature: Signature::variadic_any(Volatility::Immutable),
        }
    }
}

/// One identity argument triple: its namespace and primary flag (literals), and the position
/// of its id among the arguments.
#[derive(Debug, Clone, PartialEq)]
struct Triple {
    namespace: String,
    primary: bool,
    id_arg: usize,
}

/// The triples from the arguments' literal values (`None` where an argument is not a literal).
fn triples(scalars: &[Option<&ScalarValue>]) -> Result<Vec<Triple>> {
    if scalars.is_empty() || !scalars.len().is_multiple_of(3) {
        return plan_err!(
            "identity_map takes (namespace, id, primary) triples, got {} argument(s)",
            scalars.len()
        );
    }
    let triples = scalars
        .chunks(3)
        .enumerate()
        .map(|(i, t)| {
            let n = 3 * i + 1;
            let namespace = match t[0] {
                Some(
                    ScalarValue::Utf8(Some(s))
                    | ScalarValue::LargeUtf8(Some(s))
                    | ScalarValue::Utf8View(Some(s)),
                ) if !s.is_empty() => s.clone(),
                _ => {
                    return plan_err!(
                        "identity_map: argument {n} (a namespace) must be a non-empty string literal such as 'Email'"
                    )
                }
            };
            let primary = match t[2] {
                Some(ScalarValue::Boolean(Some(b))) => *b,
                _ => {
                    return plan_err!(
                        "identity_map: argument {} (primary) must be true or false",
                        n + 2
                    )
                }
            };
            Ok(Triple {
                namespace,
                primary,
                id_arg: 3 * i + 1,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    // Platform takes one primary identity a record: two `true`s would both be sent whenever
    // both ids are present.
    if triples.iter().filter(|t| t.primary).count() > 1 {
        return plan_err!(
            "identity_map: only one identity can be primary (true), got {}",
            triples
                .iter()
                .filter(|t| t.primary)
                .map(|t| t.namespace.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(triples)
}

/// The type of the map: the shape DataFusion's `map(keys, [[named_struct('id', …, 'primary',
/// true)]])` gives, which the XDM schema's `identityMap` is checked against.
fn map_type() -> DataType {
    DataType::Map(entries_field(), false)
}

fn item_fields() -> Fields {
    Fields::from(vec![
        Field::new("id", DataType::Utf8, true),
        Field::new("primary", DataType::Boolean, true),
    ])
}

fn item_field() -> FieldRef {
    Arc::new(Field::new("item", DataType::Struct(item_fields()), true))
}

fn entry_fields() -> Fields {
    Fields::from(vec![
        Field::new("key", DataType::Utf8, false),
        Field::new("value", DataType::List(item_field()), true),
    ])
}

fn entries_field() -> FieldRef {
    Arc::new(Field::new(
        "entries",
        DataType::Struct(entry_fields()),
        false,
    ))
}

impl ScalarUDFImpl for IdentityMap {
    fn name(&self) -> &str {
        "identity_map"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(map_type())
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        // The literals and the ids' types are checked when the mapping is planned (`mapping
        // check` reports them).
        for t in triples(args.scalar_arguments)? {
            let id_type = args.arg_fields[t.id_arg].data_type();
            if !is_id_type(id_type) {
                return plan_err!(
                    "identity_map: argument {} (an id) is {id_type}; ids are text or integers",
                    t.id_arg + 1
                );
            }
        }
        Ok(Arc::new(Field::new(self.name(), map_type(), true)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let scalars: Vec<Option<&ScalarValue>> = args
            .args
            .iter()
            .map(|a| match a {
                ColumnarValue::Scalar(s) => Some(s),
                ColumnarValue::Array(_) => None,
            })
            .collect();
        let triples = triples(&scalars)?;
        let rows = args.number_rows;
        let ids = triples
            .iter()
            .map(|t| {
                let id = args.args[t.id_arg].to_array(rows)?;
                Ok(match id.data_type() {
                    DataType::Utf8 => id,
                    _ => arrow::compute::cast(&id, &DataType::Utf8)?,
                })
            })
            .collect::<Result<Vec<ArrayRef>>>()?;
        let ids: Vec<&StringArray> = ids.iter().map(|a| a.as_string::<i32>()).collect();
        let bytes: usize = ids
            .iter()
            .map(|a| {
                let o = a.value_offsets();
                (o[a.len()] - o[0]) as usize
            })
            .sum();
        if bytes > i32::MAX as usize {
            return exec_err!("identity_map: the ids of one batch exceed 2 GiB");
        }
        Ok(ColumnarValue::Array(Arc::new(build(&triples, &ids, rows)?)))
    }
}

/// Whether ids of `t` are taken (as text): strings, integers, and NULL.
fn is_id_type(t: &DataType) -> bool {
    match t {
        DataType::Dictionary(_, values) => is_id_type(values),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null => true,
        t => t.is_integer(),
    }
}

/// The identity map of `rows` rows from the triples and their ids (`ids[i]` of `triples[i]`).
fn build(triples: &[Triple], ids: &[&StringArray], rows: usize) -> Result<MapArray> {
    // Namespaces in order of first appearance, each with its triples.
    let mut groups: Vec<(&str, Vec<usize>)> = Vec::new();
    for (i, t) in triples.iter().enumerate() {
        match groups.iter_mut().find(|(ns, _)| *ns == t.namespace) {
            Some((_, members)) => members.push(i),
            None => groups.push((&t.namespace, vec![i])),
        }
    }
    let mut keys = StringBuilder::with_capacity(rows * groups.len(), rows * 16);
    let mut id_values = StringBuilder::with_capacity(rows * triples.len(), rows * 32);
    let mut primary = BooleanBuilder::with_capacity(rows * triples.len());
    let mut list_offsets: Vec<i32> = Vec::with_capacity(rows * groups.len() + 1);
    let mut map_offsets: Vec<i32> = Vec::with_capacity(rows + 1);
    let mut valid = Vec::with_capacity(rows);
    list_offsets.push(0);
    map_offsets.push(0);
    let (mut entries, mut items) = (0i32, 0i32);
    for row in 0..rows {
        let before = entries;
        for (namespace, members) in &groups {
            let present = members.iter().filter(|&&i| ids[i].is_valid(row));
            let mut any = false;
            for &i in present {
                id_values.append_value(ids[i].value(row));
                primary.append_value(triples[i].primary);
                items += 1;
                any = true;
            }
            if any {
                keys.append_value(namespace);
                list_offsets.push(items);
                entries += 1;
            }
        }
        map_offsets.push(entries);
        valid.push(entries > before);
    }
    let item_values = StructArray::try_new(
        item_fields(),
        vec![
            Arc::new(id_values.finish()) as ArrayRef,
            Arc::new(primary.finish()),
        ],
        None,
    )?;
    let lists = ListArray::try_new(
        item_field(),
        OffsetBuffer::new(ScalarBuffer::from(list_offsets)),
        Arc::new(item_values),
        None,
    )?;
    let entries = StructArray::try_new(
        entry_fields(),
        vec![Arc::new(keys.finish()) as ArrayRef, Arc::new(lists)],
        None,
    )?;
    Ok(MapArray::try_new(
        entries_field(),
        OffsetBuffer::new(ScalarBuffer::from(map_offsets)),
        entries,
        Some(NullBuffer::new(BooleanBuffer::from(valid))),
        false,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::SessionContext;

    async fn query(sql: &str) -> Result<Vec<arrow::array::RecordBatch>> {
        let ctx = SessionContext::new();
        ctx.register_udf(datafusion::logical_expr::ScalarUDF::from(IdentityMap::new()));
        ctx.sql(sql).await?.collect().await
    }

    /// Rows with both ids, either, neither; an id of another type.
    const ROWS: &str = "(VALUES ('cus_1', 'a@x.io', 1), (NULL, 'b@x.io', 2), ('cus_3', NULL, 3), \
                        (NULL, NULL, 4)) AS t(c, e, n)";

    #[tokio::test]
    async fn gives_what_the_case_over_every_combination_gives() {
        let ours = query(&format!(
            "SELECT identity_map('StripeCustomerId', c, true, 'Email', e, false) AS m FROM {ROWS}"
        ))
        .await
        .unwrap();
        let case = query(&format!(
            "SELECT CASE
                WHEN c IS NOT NULL AND e IS NOT NULL THEN map(['StripeCustomerId', 'Email'],
                    [[named_struct('id', c, 'primary', true)], [named_struct('id', e, 'primary', false)]])
                WHEN c IS NOT NULL THEN map(['StripeCustomerId'], [[named_struct('id', c, 'primary', true)]])
                WHEN e IS NOT NULL THEN map(['Email'], [[named_struct('id', e, 'primary', false)]])
             END AS m FROM {ROWS}"
        ))
        .await
        .unwrap();
        assert_eq!(ours[0].column(0).data_type(), case[0].column(0).data_type());
        assert_eq!(ours[0].column(0), case[0].column(0));
        assert!(ours[0].column(0).is_null(3), "no id: a null map");
    }

    #[tokio::test]
    async fn one_namespace_twice_is_one_entry_and_integer_ids_become_text() {
        let out = query(&format!(
            "SELECT identity_map('Email', e, true, 'Email', c, false, 'Number', n, false) AS m \
             FROM {ROWS}"
        ))
        .await
        .unwrap();
        let map = out[0].column(0).as_map();
        let first = map.value(0);
        let keys = first.column(0).as_string::<i32>();
        assert_eq!(
            keys.iter().flatten().collect::<Vec<_>>(),
            ["Email", "Number"]
        );
        let emails = first.column(1).as_list::<i32>().value(0);
        let ids = emails.as_struct().column(0).as_string::<i32>();
        assert_eq!(
            ids.iter().flatten().collect::<Vec<_>>(),
            ["a@x.io", "cus_1"]
        );
        let number = first.column(1).as_list::<i32>().value(1);
        assert_eq!(
            number.as_struct().column(0).as_string::<i32>().value(0),
            "1"
        );
        assert_eq!(map.value(3).len(), 1, "the number is an id on its own");
    }

    #[tokio::test]
    async fn arguments_that_are_not_triples_of_literals_are_refused_when_planned() {
        for (args, says) in [
            ("'Email', e", "triples"),
            ("e, e, true", "argument 1 (a namespace)"),
            ("'', e, true", "argument 1 (a namespace)"),
            (
                "'Email', e, n > 1",
                "argument 3 (primary) must be true or false",
            ),
        ] {
            let err = query(&format!("SELECT identity_map({args}) FROM {ROWS}"))
                .await
                .unwrap_err();
            assert!(err.to_string().contains(says), "{args}: {err}");
        }
    }

    #[tokio::test]
    async fn view_and_literal_ids_are_taken_and_other_types_refused() {
        let out = query(&format!(
            "SELECT identity_map('Email', arrow_cast(e, 'Utf8View'), true, 'Fixed', 'lit', false) \
             AS m FROM {ROWS}"
        ))
        .await
        .unwrap();
        let map = out[0].column(0).as_map();
        let row = map.value(2);
        assert_eq!(row.len(), 1, "no e-mail in row 2: the literal alone");
        assert_eq!(row.column(0).as_string::<i32>().value(0), "Fixed");
        let ids = row.column(1).as_list::<i32>().value(0);
        assert_eq!(ids.as_struct().column(0).as_string::<i32>().value(0), "lit");
        for (id, says) in [("1.5", "Float64"), ("named_struct('a', e)", "Struct")] {
            let err = query(&format!(
                "SELECT identity_map('Email', {id}, true) FROM {ROWS}"
            ))
            .await
            .unwrap_err()
            .to_string();
            assert!(
                err.contains("argument 2 (an id) is") && err.contains(says),
                "{id}: {err}"
            );
        }
    }

    #[test]
    fn sliced_ids_give_the_rows_of_the_slice() {
        let first = StringArray::from(vec![Some("a"), None, Some("c"), Some("d")]);
        let second = StringArray::from(vec![None, Some("x"), None, Some("y")]);
        let triples = [
            Triple {
                namespace: "A".into(),
                primary: true,
                id_arg: 1,
            },
            Triple {
                namespace: "B".into(),
                primary: false,
                id_arg: 4,
            },
        ];
        let whole: ArrayRef = Arc::new(build(&triples, &[&first, &second], 4).unwrap());
        let (first, second) = (first.slice(1, 3), second.slice(1, 3));
        let part: ArrayRef = Arc::new(build(&triples, &[&first, &second], 3).unwrap());
        assert_eq!(&part, &whole.slice(1, 3));
        assert!(part.is_valid(0) && part.is_valid(1) && part.is_valid(2));
    }
}
