//! Array hierarchy functions (§2.5 "Hierarchies": arrays) and the list/map builders shared with
//! [`super::maps`]. Arrays are Arrow lists, maps `Map<Utf8, V>` (entries `key`/`value`).

use std::sync::Arc;

use arrow::array::{
    new_empty_array, Array, ArrayRef, AsArray, ListArray, MapArray, StringArray, StructArray,
    UInt32Array,
};
use arrow::buffer::{NullBuffer, OffsetBuffer};
use arrow::compute::{cast, interleave, take};
use arrow::datatypes::{DataType, Field, Fields};
use datafusion::common::{plan_err, Result, ScalarValue};

use super::strings::list_strings;
use super::{
    boolean, bools, int64, ints, list_of, same_as_first, strings, union_type, utf8, Args, Coerce,
    Def, MANY,
};

pub(crate) fn defs() -> Vec<Def> {
    vec![
        Def::new("size_of", "size_of(INPUT)", "Elements of an array, entries of a map, non-null fields of an object, chars of a string",
            (1, 1), int64, size_of),
        Def::new("is_empty", "is_empty(INPUT)", "Whether an array/map/string/object is empty (a null input is empty)",
            (1, 1), boolean, is_empty),
        Def::new("to_array", "to_array(INCLUDE_NULLS, VALUES)", "The VALUES as an array; null values dropped unless INCLUDE_NULLS",
            (1, MANY), to_array_ret, to_array).coerce(Coerce::UnionFrom(1)),
        Def::new("add_to_array", "add_to_array(ARRAY, VALUES)", "ARRAY with the VALUES appended (array VALUES are appended element by element)",
            (1, MANY), same_as_first, append),
        Def::new("join_arrays", "join_arrays(ARRAY, VALUES)", "The arrays concatenated (non-array VALUES are appended as elements)",
            (1, MANY), same_as_first, append),
        Def::new("upsert_array_append", "upsert_array_append(ARRAY)",
            "Profile-update helper: on insert (the only case here) returns ARRAY as is", (1, 1), same_as_first, first_arg),
        Def::new("upsert_array_replace", "upsert_array_replace(ARRAY, INDEX)",
            "Profile-update helper: on insert (the only case here) returns ARRAY as is", (1, 2), same_as_first, first_arg),
        Def::new("first", "first(INPUT)", "The first argument, or the first element of a single array argument",
            (1, MANY), first_last_ret, first).coerce(Coerce::UnionFrom(0)),
        Def::new("last", "last(INPUT)", "The last argument, or the last element of a single array argument",
            (1, MANY), first_last_ret, last).coerce(Coerce::UnionFrom(0)),
        Def::new("flattenarray", "flattenArray(ARRAY)", "Flattens nested arrays into one array (Destinations function, provided here too)",
            (1, 1), flatten_ret, flatten_array),
        Def::new("array_to_string", "array_to_string(SEPARATOR, ARRAY)",
            "[clash] Flattens then joins ARRAY with SEPARATOR (DataFusion's `array_to_string` takes (ARRAY, SEPARATOR)). SQL: dp_array_to_string",
            (2, 2), utf8, array_to_string).clash("dp_array_to_string"),
    ]
}

// ---- builders -------------------------------------------------------------------------------

/// `Map<Utf8, value>` as built here.
pub(crate) fn map_type(value: DataType) -> DataType {
    DataType::Map(
        Arc::new(Field::new(
            "entries",
            DataType::Struct(entry_fields(value)),
            false,
        )),
        false,
    )
}

fn entry_fields(value: DataType) -> Fields {
    Fields::from(vec![
        Field::new("key", DataType::Utf8, false),
        Field::new("value", value, true),
    ])
}

/// A list column whose row `r` holds the elements `rows[r]` (source index, row in source), or null.
pub(crate) fn build_list(
    item: &DataType,
    sources: &[ArrayRef],
    rows: &[Option<Vec<(usize, usize)>>],
) -> Result<ArrayRef> {
    let values = gather(
        item,
        sources,
        rows.iter().flatten().flatten().copied().collect(),
    )?;
    let offsets = OffsetBuffer::from_lengths(rows.iter().map(|r| r.as_ref().map_or(0, Vec::len)));
    let nulls = NullBuffer::from(rows.iter().map(Option::is_some).collect::<Vec<_>>());
    Ok(Arc::new(ListArray::try_new(
        Arc::new(Field::new_list_field(item.clone(), true)),
        offsets,
        values,
        Some(nulls),
    )?))
}

fn gather(item: &DataType, sources: &[ArrayRef], idx: Vec<(usize, usize)>) -> Result<ArrayRef> {
    if idx.is_empty() {
        return Ok(new_empty_array(item));
    }
    let srcs: Vec<&dyn Array> = sources.iter().map(|a| a.as_ref()).collect();
    Ok(interleave(&srcs, &idx)?)
}

/// One map row to build: (key, source index, row in source) per entry.
pub(crate) type MapRow = Vec<(String, usize, usize)>;

/// A map column whose row `r` holds `rows[r]` (key, source index, row in source), or null.
pub(crate) fn build_map(
    value: &DataType,
    sources: &[ArrayRef],
    rows: &[Option<MapRow>],
) -> Result<ArrayRef> {
    let keys: StringArray = rows
        .iter()
        .flatten()
        .flatten()
        .map(|(k, _, _)| Some(k.as_str()))
        .collect();
    let values = gather(
        value,
        sources,
        rows.iter()
            .flatten()
            .flatten()
            .map(|(_, s, i)| (*s, *i))
            .collect(),
    )?;
    let entries = StructArray::try_new(
        entry_fields(value.clone()),
        vec![Arc::new(keys), values],
        None,
    )?;
    let offsets = OffsetBuffer::from_lengths(rows.iter().map(|r| r.as_ref().map_or(0, Vec::len)));
    let nulls = NullBuffer::from(rows.iter().map(Option::is_some).collect::<Vec<_>>());
    let DataType::Map(field, _) = map_type(value.clone()) else {
        unreachable!()
    };
    Ok(Arc::new(MapArray::try_new(
        field,
        offsets,
        entries,
        Some(nulls),
        false,
    )?))
}

/// A list argument as a `ListArray` (large and fixed-size lists are cast).
pub(super) fn as_list(arr: &ArrayRef) -> Option<ListArray> {
    match arr.data_type() {
        DataType::List(_) => Some(arr.as_list::<i32>().clone()),
        DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
            cast(arr, &DataType::List(f.clone()))
                .ok()
                .map(|a| a.as_list::<i32>().clone())
        }
        _ => None,
    }
}

pub(super) fn item_type(t: &DataType) -> Option<&DataType> {
    match t {
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
            Some(f.data_type())
        }
        _ => None,
    }
}

/// The element range of row `r` of a list (None if null).
pub(super) fn range(l: &ListArray, r: usize) -> Option<std::ops::Range<usize>> {
    if l.is_null(r) {
        return None;
    }
    let o = l.value_offsets();
    Some(o[r] as usize..o[r + 1] as usize)
}

// ---- return types ---------------------------------------------------------------------------

fn to_array_ret(t: &[DataType], _: &[Option<&ScalarValue>]) -> Result<DataType> {
    Ok(list_of(if t.len() > 1 {
        union_type(&t[1..])
    } else {
        DataType::Utf8
    }))
}

fn first_last_ret(t: &[DataType], _: &[Option<&ScalarValue>]) -> Result<DataType> {
    match (t.len(), t.first().and_then(item_type)) {
        (1, Some(item)) => Ok(item.clone()),
        _ => Ok(union_type(t)),
    }
}

fn flatten_ret(t: &[DataType], _: &[Option<&ScalarValue>]) -> Result<DataType> {
    let mut cur = t[0].clone();
    while let Some(inner) = item_type(&cur).and_then(|i| item_type(i).cloned()) {
        cur = list_of(inner);
    }
    Ok(cur)
}

// ---- functions ------------------------------------------------------------------------------

fn size_of(a: &Args) -> Result<ArrayRef> {
    let arr = &a.arrays[0];
    match arr.data_type() {
        DataType::Map(..) => {
            let m = arr.as_map();
            ints(a.n, |r| m.is_valid(r).then(|| m.value_length(r) as i64))
        }
        DataType::Struct(_) => {
            let s = arr.as_struct();
            ints(a.n, |r| {
                s.is_valid(r)
                    .then(|| s.columns().iter().filter(|c| c.is_valid(r)).count() as i64)
            })
        }
        t if item_type(t).is_some() => {
            let l = as_list(arr).expect("list");
            ints(a.n, |r| range(&l, r).map(|x| x.len() as i64))
        }
        _ => ints(a.n, |r| Some(a.str(0, r)?.chars().count() as i64)),
    }
}

fn is_empty(a: &Args) -> Result<ArrayRef> {
    let sizes = size_of(a)?;
    let sizes = sizes.as_primitive::<arrow::datatypes::Int64Type>();
    bools(a.n, |r| Some(sizes.is_null(r) || sizes.value(r) == 0))
}

fn to_array(a: &Args) -> Result<ArrayRef> {
    let item = item_type(&a.ret).cloned().unwrap_or(DataType::Utf8);
    let sources: Vec<ArrayRef> = a.arrays[1..]
        .iter()
        .map(|x| cast(x, &item))
        .collect::<std::result::Result<_, _>>()?;
    let rows: Vec<_> = (0..a.n)
        .map(|r| {
            let keep_nulls = a.bool(0, r).unwrap_or(false);
            Some(
                (0..sources.len())
                    .filter(|&j| keep_nulls || sources[j].is_valid(r))
                    .map(|j| (j, r))
                    .collect(),
            )
        })
        .collect();
    build_list(&item, &sources, &rows)
}

fn append(a: &Args) -> Result<ArrayRef> {
    let Some(item) = item_type(&a.ret).cloned() else {
        return plan_err!("add_to_array/join_arrays: the first argument must be an array");
    };
    // Every argument as (source, optional list view): lists contribute elements, others themselves.
    let mut sources: Vec<ArrayRef> = Vec::new();
    let mut views: Vec<(usize, Option<ListArray>)> = Vec::new();
    for x in &a.arrays {
        if let Some(l) = as_list(x) {
            let l = ListArray::try_new(
                Arc::new(Field::new_list_field(item.clone(), true)),
                l.offsets().clone(),
                cast(l.values(), &item)?,
                l.nulls().cloned(),
            )?;
            sources.push(l.values().clone());
            views.push((sources.len() - 1, Some(l)));
        } else {
            sources.push(cast(x, &item)?);
            views.push((sources.len() - 1, None));
        }
    }
    let rows: Vec<_> = (0..a.n)
        .map(|r| {
            let (s0, l0) = &views[0];
            let mut out: Vec<(usize, usize)> = range(l0.as_ref()?, r)?.map(|i| (*s0, i)).collect();
            for (s, l) in &views[1..] {
                match l {
                    Some(l) => out.extend(range(l, r).into_iter().flatten().map(|i| (*s, i))),
                    None if sources[*s].is_valid(r) => out.push((*s, r)),
                    None => {}
                }
            }
            Some(out)
        })
        .collect();
    build_list(&item, &sources, &rows)
}

fn first_arg(a: &Args) -> Result<ArrayRef> {
    Ok(a.arrays[0].clone())
}

fn pick(a: &Args, last: bool) -> Result<ArrayRef> {
    if a.len() == 1 {
        if let Some(l) = as_list(&a.arrays[0]) {
            let idx: UInt32Array = (0..a.n)
                .map(|r| {
                    range(&l, r)
                        .filter(|x| !x.is_empty())
                        .map(|x| if last { x.end - 1 } else { x.start } as u32)
                })
                .collect();
            return Ok(take(l.values(), &idx, None)?);
        }
    }
    let i = if last { a.len() - 1 } else { 0 };
    Ok(cast(&a.arrays[i], &a.ret)?)
}

fn first(a: &Args) -> Result<ArrayRef> {
    pick(a, false)
}

fn last(a: &Args) -> Result<ArrayRef> {
    pick(a, true)
}

fn flatten_once(l: &ListArray) -> Option<ListArray> {
    let inner = as_list(l.values())?;
    let outer = l.value_offsets();
    let io = inner.value_offsets();
    let offsets: Vec<i32> = outer.iter().map(|&o| io[o as usize]).collect();
    let field = match inner.data_type() {
        DataType::List(f) => f.clone(),
        _ => return None,
    };
    ListArray::try_new(
        field,
        OffsetBuffer::new(offsets.into()),
        inner.values().clone(),
        l.nulls().cloned(),
    )
    .ok()
}

fn flatten_array(a: &Args) -> Result<ArrayRef> {
    let Some(mut l) = as_list(&a.arrays[0]) else {
        return Ok(a.arrays[0].clone());
    };
    while let Some(f) = flatten_once(&l) {
        l = f;
    }
    Ok(Arc::new(l))
}

fn array_to_string(a: &Args) -> Result<ArrayRef> {
    let flat = match as_list(&a.arrays[1]) {
        Some(mut l) => {
            while let Some(f) = flatten_once(&l) {
                l = f;
            }
            Arc::new(l) as ArrayRef
        }
        None => return strings(a.n, |r| a.str(1, r).map(str::to_string)),
    };
    strings(a.n, |r| {
        let sep = a.str(0, r).unwrap_or("");
        Some(
            list_strings(&flat, r)?
                .into_iter()
                .map(Option::unwrap_or_default)
                .collect::<Vec<_>>()
                .join(sep),
        )
    })
}
