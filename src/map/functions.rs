//! stripe-xdm's own SQL functions for mappings (beside Data Prep's catalogue).
//!
//! `identity_map(namespace, id, primary, …)` builds Platform's `identityMap` from the ids a row
//! has (see `src/map/identity.rs`).
//!
//! `connected_account()` is the Stripe connected account (`acct_…`) a run reads through, NULL
//! for the platform account's own data.
//!
//! `list_project(list, 'outName', 'path.in.element', …)` turns a list of structs into a list of
//! new structs whose fields are taken from each element by dotted path, renamed. It is how a
//! mapping reshapes nested Stripe lists (`subscription.items.data[]`) without lambdas, and it is
//! columnar: no per-row work, the children are reused and only their null masks are combined.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, ListArray, StructArray};
use arrow::buffer::NullBuffer;
use arrow::datatypes::{DataType, Field, FieldRef, Fields};
use datafusion::common::{exec_err, plan_err, Result, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};
use datafusion::prelude::SessionContext;

/// Registers stripe-xdm's own functions on a session.
pub fn register(ctx: &SessionContext) {
    ctx.register_udf(ScalarUDF::from(ListProject::new()));
    ctx.register_udf(ScalarUDF::from(super::identity::IdentityMap::new()));
    set_connected_account(ctx, None);
}

/// Sets what `connected_account()` returns in `ctx`'s mappings: the Stripe connected account
/// (`acct_…`) the records were read through (`Stripe-Account`), NULL for the platform's own.
pub fn set_connected_account(ctx: &SessionContext, account: Option<&str>) {
    ctx.register_udf(ScalarUDF::from(ConnectedAccount {
        account: account.map(str::to_string),
        signature: Signature::nullary(Volatility::Immutable),
    }));
}

/// `connected_account()`: a constant of the run.
#[derive(Debug, PartialEq, Eq, Hash)]
struct ConnectedAccount {
    account: Option<String>,
    signature: Signature,
}

impl ScalarUDFImpl for ConnectedAccount {
    fn name(&self) -> &str {
        "connected_account"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        Ok(ColumnarValue::Scalar(ScalarValue::Utf8(
            self.account.clone(),
        )))
    }
}

/// `list_project(list, name1, path1, name2, path2, …)`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct ListProject {
    signature: Signature,
}

impl ListProject {
    fn new() -> Self {
        ListProject {
            signature: Signature::variadic_any(Volatility::Immutable),
        }
    }
}

/// The (name, path) pairs from the literal arguments.
fn pairs(scalars: &[Option<&ScalarValue>]) -> Result<Vec<(String, Vec<String>)>> {
    if scalars.len() < 3 || scalars.len().is_multiple_of(2) {
        return plan_err!(
            "list_project(list, 'name', 'path', …) takes a list and pairs of string literals"
        );
    }
    scalars[1..]
        .chunks(2)
        .map(|pair| {
            let lit = |v: Option<&ScalarValue>| match v {
                Some(ScalarValue::Utf8(Some(s)))
                | Some(ScalarValue::LargeUtf8(Some(s)))
                | Some(ScalarValue::Utf8View(Some(s))) => Ok(s.clone()),
                _ => plan_err!("list_project: names and paths must be string literals"),
            };
            let name = lit(pair[0])?;
            let path = lit(pair[1])?;
            Ok((name, path.split('.').map(str::to_string).collect()))
        })
        .collect()
}

fn element_fields(list: &DataType) -> Result<&Fields> {
    match list {
        DataType::List(item) | DataType::LargeList(item) => match item.data_type() {
            DataType::Struct(fields) => Ok(fields),
            other => plan_err!("list_project: list items must be structs, found {other}"),
        },
        DataType::Null => plan_err!("list_project: the list argument is NULL"),
        other => plan_err!("list_project: the first argument must be a list, found {other}"),
    }
}

fn resolve_type(fields: &Fields, path: &[String]) -> Result<DataType> {
    let Some((name, rest)) = path.split_first() else {
        return plan_err!("list_project: empty path");
    };
    let Some(field) = fields.iter().find(|f| f.name() == name) else {
        let known: Vec<&str> = fields.iter().map(|f| f.name().as_str()).collect();
        return plan_err!(
            "list_project: no field '{name}' (fields: {})",
            known.join(", ")
        );
    };
    match (rest.is_empty(), field.data_type()) {
        (true, dt) => Ok(dt.clone()),
        (false, DataType::Struct(children)) => resolve_type(children, rest),
        (false, other) => plan_err!("list_project: '{name}' is {other}, not a struct"),
    }
}

fn output_fields(list: &DataType, pairs: &[(String, Vec<String>)]) -> Result<Fields> {
    let fields = element_fields(list)?;
    pairs
        .iter()
        .map(|(name, path)| Ok(Field::new(name, resolve_type(fields, path)?, true)))
        .collect()
}

/// The column at `path` inside `array`, null wherever an ancestor struct is null.
fn resolve(array: &StructArray, path: &[String]) -> Result<ArrayRef> {
    let mut current: ArrayRef = Arc::new(array.clone());
    let mut ancestors: Option<NullBuffer> = None;
    for name in path {
        let s = current.as_struct();
        ancestors = NullBuffer::union(ancestors.as_ref(), s.nulls());
        current = match s.column_by_name(name) {
            Some(c) => c.clone(),
            None => return exec_err!("list_project: no field '{name}'"),
        };
    }
    match ancestors {
        Some(mask) if mask.null_count() > 0 => {
            let is_null = BooleanArray::from(!mask.inner());
            Ok(arrow::compute::nullif(&current, &is_null)?)
        }
        _ => Ok(current),
    }
}

impl ScalarUDFImpl for ListProject {
    fn name(&self) -> &str {
        "list_project"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        plan_err!("list_project's type depends on its literal arguments")
    }
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let pairs = pairs(args.scalar_arguments)?;
        let fields = output_fields(args.arg_fields[0].data_type(), &pairs)?;
        let item = Field::new("item", DataType::Struct(fields), true);
        Ok(Arc::new(Field::new(
            "list_project",
            DataType::List(Arc::new(item)),
            true,
        )))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let DataType::List(item) = args.return_field.data_type() else {
            return exec_err!("list_project: unexpected return type");
        };
        let DataType::Struct(out_fields) = item.data_type() else {
            return exec_err!("list_project: unexpected item type");
        };
        let names: Vec<Option<&ScalarValue>> = args.args[1..]
            .iter()
            .map(|a| match a {
                ColumnarValue::Scalar(s) => Some(s),
                ColumnarValue::Array(_) => None,
            })
            .collect();
        let mut scalars = vec![None];
        scalars.extend(names);
        let pairs = pairs(&scalars)?;
        let list = args.args[0].to_array(args.number_rows)?;
        let list = list.as_list::<i32>();
        let values = list.values().as_struct();
        let columns = pairs
            .iter()
            .map(|(_, path)| resolve(values, path))
            .collect::<Result<Vec<_>>>()?;
        let items = StructArray::try_new(out_fields.clone(), columns, values.nulls().cloned())?;
        let out = ListArray::try_new(
            item.clone(),
            list.offsets().clone(),
            Arc::new(items),
            list.nulls().cloned(),
        )?;
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}
