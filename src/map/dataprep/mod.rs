//! Adobe Data Prep's mapping-function catalogue as DataFusion scalar UDFs.
//!
//! Every function of the Data Prep catalogue (reference `aep-platform.md` §2.5) that makes sense
//! in a SQL projection is registered on the mapping session by [`register`] (called from
//! [`crate::map::new_session`]), so a mapping can write `extract_regex(description, '…')`,
//! `sha256(email)`… in place of Data Prep's expression language. [`catalogue`] lists them.
//!
//! # Naming rule (clashes with DataFusion built-ins)
//!
//! **A DataFusion built-in is never shadowed.** Every Data Prep function is registered as
//! `dp_<name>` (e.g. `dp_extract_regex`, `dp_substr`). When DataFusion has *no* function
//! (scalar, aggregate or window) of the same name, it is also callable under its bare Data Prep
//! name (`extract_regex`). When DataFusion has one (`substr`, `concat`, `lower`, `now`,
//! `date_part`, `md5`, `sha256`, `coalesce`, `uuid`, `min`, `max`, `decode`, …), the bare name
//! keeps DataFusion's semantics (existing mappings and SQL habits keep working) and the Data
//! Prep version is `dp_<name>` only. Each clash is named in the function's
//! [`FunctionDoc::description`] (prefix `[clash]`), with the difference if there is one.
//!
//! # Values
//!
//! * Strings are `Utf8`; any argument is cast to the type the function needs (a number given
//!   to a string function is its decimal text, a string given to a number is parsed).
//! * Dates (Data Prep's `ZonedDateTime`) are `Timestamp(Millisecond, "UTC")` — the XDM
//!   `date-time` type of this project; `zone_date_to_zone` keeps its zone in the Arrow type.
//!   A date argument may be a timestamp, a date, epoch milliseconds, or a string (parsed like
//!   one-argument `date`).
//! * Arrays are Arrow lists, objects are structs (keys must then be literals, as the Arrow
//!   type must be known when the query is planned), maps are `Map<Utf8, _>`.
//!
//! # Nulls and errors
//!
//! As in Data Prep, a null input gives a null output, and a value a function cannot process
//! (unparseable date or number, bad regex, unknown charset, invalid URL…) gives null for that
//! row rather than failing the query ("transformation errors … result in those attributes being
//! set to null"). Only planning errors (wrong number of arguments, non-literal object keys) fail.

use std::cell::OnceCell;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, BooleanBuilder, Float64Array, Float64Builder, Int64Array,
    Int64Builder, StringArray, StringBuilder,
};
use arrow::datatypes::{DataType, Field, FieldRef, TimeUnit};
use datafusion::common::{plan_err, Result, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};
use datafusion::prelude::SessionContext;

mod control;
mod conversion;
mod dates;
mod hashing;
mod hierarchy;
mod javatime;
mod maps;
mod regex;
mod strings;
mod url;
mod useragent;

/// One catalogue entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionDoc {
    /// The SQL name to call it by: the Data Prep name, or `dp_<name>` when it clashes with a
    /// DataFusion built-in (every function is also callable as `dp_<name>`).
    pub name: &'static str,
    /// The Data Prep signature.
    pub signature: &'static str,
    /// One line; `[clash] …` when the bare name is DataFusion's.
    pub description: &'static str,
}

/// Registers every Data Prep function on a session.
pub fn register(ctx: &SessionContext) {
    for def in defs() {
        ctx.register_udf(ScalarUDF::new_from_impl(DpUdf::new(Arc::new(def))));
    }
}

/// The functions registered, with their Data Prep signature and a one-line description.
pub fn catalogue() -> Vec<FunctionDoc> {
    defs()
        .into_iter()
        .map(|d| FunctionDoc {
            name: d.sql_name(),
            signature: d.sig,
            description: d.doc,
        })
        .collect()
}

/// Every definition, by category.
pub(crate) fn defs() -> Vec<Def> {
    let mut v = Vec::new();
    v.extend(strings::defs());
    v.extend(regex::defs());
    v.extend(hashing::defs());
    v.extend(url::defs());
    v.extend(dates::defs());
    v.extend(hierarchy::defs());
    v.extend(maps::defs());
    v.extend(conversion::defs());
    v.extend(control::defs());
    v
}

/// Computes the return type from the argument types and the literal arguments.
pub(crate) type RetFn = fn(&[DataType], &[Option<&ScalarValue>]) -> Result<DataType>;
/// Evaluates over arrays of `args.n` rows.
pub(crate) type EvalFn = fn(&Args) -> Result<ArrayRef>;

/// How argument types are coerced before evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Coerce {
    /// Passed as they are (the function casts what it needs).
    AsIs,
    /// Arguments from this index on are cast to their common type.
    UnionFrom(usize),
}

/// A Data Prep function definition.
pub(crate) struct Def {
    pub name: &'static str,
    pub sig: &'static str,
    pub doc: &'static str,
    /// `Some(dp_name)` when the bare name is a DataFusion built-in (`dp_name` is "dp_" + name).
    pub clash: Option<&'static str>,
    pub min: usize,
    pub max: usize,
    pub volatile: bool,
    pub coerce: Coerce,
    pub ret: RetFn,
    pub eval: EvalFn,
}

impl Def {
    /// A definition with `min..=max` arguments.
    pub fn new(
        name: &'static str,
        sig: &'static str,
        doc: &'static str,
        arity: (usize, usize),
        ret: RetFn,
        eval: EvalFn,
    ) -> Def {
        Def {
            name,
            sig,
            doc,
            clash: None,
            min: arity.0,
            max: arity.1,
            volatile: false,
            coerce: Coerce::AsIs,
            ret,
            eval,
        }
    }
    /// Marks a clash with a DataFusion built-in: registered only as `dp_name`.
    pub fn clash(mut self, dp_name: &'static str) -> Def {
        debug_assert_eq!(dp_name.strip_prefix("dp_"), Some(self.name));
        self.clash = Some(dp_name);
        self
    }
    pub fn volatile(mut self) -> Def {
        self.volatile = true;
        self
    }
    pub fn coerce(mut self, c: Coerce) -> Def {
        self.coerce = c;
        self
    }
    /// The name it is registered under.
    pub fn sql_name(&self) -> &'static str {
        self.clash.unwrap_or(self.name)
    }
}

/// Variadic arity (at least `min`).
pub(crate) const MANY: usize = usize::MAX;

#[derive(Debug)]
struct DpUdf {
    name: String,
    aliases: Vec<String>,
    signature: Signature,
    def: Arc<Def>,
}

impl std::fmt::Debug for Def {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

impl PartialEq for DpUdf {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}
impl Eq for DpUdf {}
impl std::hash::Hash for DpUdf {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state)
    }
}

impl DpUdf {
    fn new(def: Arc<Def>) -> DpUdf {
        let vol = if def.volatile {
            Volatility::Volatile
        } else {
            Volatility::Immutable
        };
        let signature = if def.max == 0 {
            Signature::nullary(vol)
        } else {
            Signature::user_defined(vol)
        };
        let (name, aliases) = match def.clash {
            Some(dp) => (dp.to_string(), vec![]),
            None => (def.name.to_string(), vec![format!("dp_{}", def.name)]),
        };
        DpUdf {
            name,
            aliases,
            signature,
            def,
        }
    }
}

impl ScalarUDFImpl for DpUdf {
    fn name(&self) -> &str {
        &self.name
    }
    fn aliases(&self) -> &[String] {
        &self.aliases
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        (self.def.ret)(arg_types, &vec![None; arg_types.len()])
    }
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let types: Vec<DataType> = args
            .arg_fields
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        let dt = (self.def.ret)(&types, args.scalar_arguments)?;
        Ok(Arc::new(Field::new(self.name(), dt, true)))
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let d = &self.def;
        let n = arg_types.len();
        if n < d.min || n > d.max {
            let want = match (d.min, d.max) {
                (a, b) if a == b => format!("{a}"),
                (a, MANY) => format!("at least {a}"),
                (a, b) => format!("{a} to {b}"),
            };
            return plan_err!("{}: {} takes {want} arguments, got {n}", self.name, d.sig);
        }
        let mut out = arg_types.to_vec();
        match d.coerce {
            Coerce::AsIs => {}
            Coerce::UnionFrom(i) if i < n => {
                let common = union_type(&arg_types[i..]);
                for t in &mut out[i..] {
                    *t = common.clone();
                }
            }
            Coerce::UnionFrom(_) => {}
        }
        Ok(out)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let scalar = !self.def.volatile
            && args
                .args
                .iter()
                .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let n = if scalar { 1 } else { args.number_rows };
        let arrays = args
            .args
            .iter()
            .map(|a| a.to_array(n))
            .collect::<Result<Vec<_>>>()?;
        let ret = args.return_type().clone();
        let mut out = (self.def.eval)(&Args::new(arrays, n, ret.clone()))?;
        if out.data_type() != &ret {
            out = arrow::compute::cast(&out, &ret)?;
        }
        if scalar {
            Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?))
        } else {
            Ok(ColumnarValue::Array(out))
        }
    }
}

/// The common type of some argument types (nulls ignored; strings if nothing better).
pub(crate) fn union_type(types: &[DataType]) -> DataType {
    let non_null: Vec<DataType> = types.iter().filter(|t| !t.is_null()).cloned().collect();
    if non_null.is_empty() {
        return DataType::Utf8;
    }
    datafusion::logical_expr::type_coercion::binary::type_union_resolution(&non_null)
        .unwrap_or(DataType::Utf8)
}

/// The evaluated arguments of one call, with per-type views cast on demand.
pub(crate) struct Args {
    pub arrays: Vec<ArrayRef>,
    /// Rows.
    pub n: usize,
    /// The planned return type.
    pub ret: DataType,
    strs: Vec<OnceCell<Option<StringArray>>>,
    ints: Vec<OnceCell<Option<Int64Array>>>,
    floats: Vec<OnceCell<Option<Float64Array>>>,
    bools: Vec<OnceCell<Option<BooleanArray>>>,
}

impl Args {
    pub fn new(arrays: Vec<ArrayRef>, n: usize, ret: DataType) -> Args {
        let k = arrays.len();
        Args {
            arrays,
            n,
            ret,
            strs: (0..k).map(|_| OnceCell::new()).collect(),
            ints: (0..k).map(|_| OnceCell::new()).collect(),
            floats: (0..k).map(|_| OnceCell::new()).collect(),
            bools: (0..k).map(|_| OnceCell::new()).collect(),
        }
    }
    /// Number of arguments given.
    pub fn len(&self) -> usize {
        self.arrays.len()
    }
    fn cast<T: Clone + 'static>(
        &self,
        cell: &OnceCell<Option<T>>,
        i: usize,
        to: DataType,
    ) -> Option<T> {
        cell.get_or_init(|| {
            let a = arrow::compute::cast(&self.arrays[i], &to).ok()?;
            a.as_any().downcast_ref::<T>().cloned()
        })
        .clone()
    }
    /// The string array of argument `i` (None when absent or not castable to a string).
    pub fn str_array(&self, i: usize) -> Option<&StringArray> {
        if i >= self.arrays.len() {
            return None;
        }
        self.strs[i]
            .get_or_init(|| {
                let a = arrow::compute::cast(&self.arrays[i], &DataType::Utf8).ok()?;
                a.as_any().downcast_ref::<StringArray>().cloned()
            })
            .as_ref()
    }
    /// Argument `i` of `row` as a string.
    pub fn str(&self, i: usize, row: usize) -> Option<&str> {
        let a = self.str_array(i)?;
        a.is_valid(row).then(|| a.value(row))
    }
    /// Argument `i` of `row` as an integer (strings are parsed; unparseable → None).
    pub fn int(&self, i: usize, row: usize) -> Option<i64> {
        if i >= self.arrays.len() {
            return None;
        }
        let _ = self.cast::<Int64Array>(&self.ints[i], i, DataType::Int64);
        let a = self.ints[i].get()?.as_ref()?;
        a.is_valid(row).then(|| a.value(row))
    }
    /// Argument `i` of `row` as a float.
    pub fn float(&self, i: usize, row: usize) -> Option<f64> {
        if i >= self.arrays.len() {
            return None;
        }
        let _ = self.cast::<Float64Array>(&self.floats[i], i, DataType::Float64);
        let a = self.floats[i].get()?.as_ref()?;
        a.is_valid(row).then(|| a.value(row))
    }
    /// Argument `i` of `row` as a boolean (strings: true/false/yes/no/on/off/y/n, as §2.6).
    pub fn bool(&self, i: usize, row: usize) -> Option<bool> {
        if i >= self.arrays.len() {
            return None;
        }
        if matches!(
            self.arrays[i].data_type(),
            DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8
        ) {
            return self.str(i, row).and_then(parse_bool);
        }
        let _ = self.cast::<BooleanArray>(&self.bools[i], i, DataType::Boolean);
        let a = self.bools[i].get()?.as_ref()?;
        a.is_valid(row).then(|| a.value(row))
    }
    /// Is argument `i` null (or absent) at `row`?
    pub fn is_null(&self, i: usize, row: usize) -> bool {
        i >= self.arrays.len()
            || self.arrays[i].data_type().is_null()
            || self.arrays[i].is_null(row)
    }
}

/// Data Prep's string → boolean rule (§2.6).
pub(crate) fn parse_bool(s: &str) -> Option<bool> {
    match s.trim() {
        "y" | "yes" | "Y" | "YES" | "on" | "ON" | "true" | "TRUE" | "True" | "Yes" | "On" => {
            Some(true)
        }
        "n" | "N" | "no" | "NO" | "off" | "OFF" | "false" | "FALSE" | "False" | "No" | "Off" => {
            Some(false)
        }
        _ => None,
    }
}

/// A string column from a per-row function.
pub(crate) fn strings(n: usize, mut f: impl FnMut(usize) -> Option<String>) -> Result<ArrayRef> {
    let mut b = StringBuilder::with_capacity(n, n * 8);
    for r in 0..n {
        b.append_option(f(r));
    }
    Ok(Arc::new(b.finish()))
}

/// An Int64 column from a per-row function.
pub(crate) fn ints(n: usize, mut f: impl FnMut(usize) -> Option<i64>) -> Result<ArrayRef> {
    let mut b = Int64Builder::with_capacity(n);
    for r in 0..n {
        b.append_option(f(r));
    }
    Ok(Arc::new(b.finish()))
}

/// A Float64 column from a per-row function.
pub(crate) fn floats(n: usize, mut f: impl FnMut(usize) -> Option<f64>) -> Result<ArrayRef> {
    let mut b = Float64Builder::with_capacity(n);
    for r in 0..n {
        b.append_option(f(r));
    }
    Ok(Arc::new(b.finish()))
}

/// A Boolean column from a per-row function.
pub(crate) fn bools(n: usize, mut f: impl FnMut(usize) -> Option<bool>) -> Result<ArrayRef> {
    let mut b = BooleanBuilder::with_capacity(n);
    for r in 0..n {
        b.append_option(f(r));
    }
    Ok(Arc::new(b.finish()))
}

// Return-type helpers.
pub(crate) fn utf8(_: &[DataType], _: &[Option<&ScalarValue>]) -> Result<DataType> {
    Ok(DataType::Utf8)
}
pub(crate) fn int64(_: &[DataType], _: &[Option<&ScalarValue>]) -> Result<DataType> {
    Ok(DataType::Int64)
}
pub(crate) fn float64(_: &[DataType], _: &[Option<&ScalarValue>]) -> Result<DataType> {
    Ok(DataType::Float64)
}
pub(crate) fn boolean(_: &[DataType], _: &[Option<&ScalarValue>]) -> Result<DataType> {
    Ok(DataType::Boolean)
}
pub(crate) fn utf8_list(_: &[DataType], _: &[Option<&ScalarValue>]) -> Result<DataType> {
    Ok(list_of(DataType::Utf8))
}
pub(crate) fn timestamp_utc(_: &[DataType], _: &[Option<&ScalarValue>]) -> Result<DataType> {
    Ok(ts_type())
}
/// The type of the first argument.
pub(crate) fn same_as_first(t: &[DataType], _: &[Option<&ScalarValue>]) -> Result<DataType> {
    Ok(t.first().cloned().unwrap_or(DataType::Null))
}
/// The common type of all arguments.
pub(crate) fn union_of_all(t: &[DataType], _: &[Option<&ScalarValue>]) -> Result<DataType> {
    Ok(union_type(t))
}

/// `Timestamp(Millisecond, "UTC")`.
pub(crate) fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

/// `List<item>` (nullable items).
pub(crate) fn list_of(item: DataType) -> DataType {
    DataType::List(Arc::new(Field::new_list_field(item, true)))
}

/// A string literal argument at planning time.
pub(crate) fn literal_str<'a>(s: &'a Option<&ScalarValue>) -> Option<&'a str> {
    match s {
        Some(ScalarValue::Utf8(Some(v)))
        | Some(ScalarValue::Utf8View(Some(v)))
        | Some(ScalarValue::LargeUtf8(Some(v))) => Some(v.as_str()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique() {
        let mut names: Vec<&str> = defs().iter().map(|d| d.name).collect();
        names.sort();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len());
    }
}
