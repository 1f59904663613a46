//! Logical, aggregation-style and special functions (§2.5 "Logical operators",
//! "Aggregation", "Special operations", "User agent").

use std::cmp::Ordering;

use arrow::array::{make_comparator, new_null_array, Array, ArrayRef};
use arrow::compute::{cast, interleave, SortOptions};
use arrow::datatypes::DataType;
use datafusion::common::{Result, ScalarValue};

use super::{strings, union_of_all, union_type, utf8, Args, Coerce, Def, MANY};

pub(crate) fn defs() -> Vec<Def> {
    let mut v = vec![
        Def::new("decode", "decode(KEY, OPTIONS)",
            "[clash] The value paired with KEY in (key, value, …) OPTIONS, else the trailing default, else null (DataFusion's `decode` decodes binary). SQL: dp_decode",
            (3, MANY), decode_ret, decode).clash("dp_decode"),
        Def::new("iif", "iif(EXPRESSION, TRUE_VALUE, FALSE_VALUE)",
            "TRUE_VALUE if EXPRESSION is true (strings: true/yes/on/y…), else FALSE_VALUE", (3, 3), iif_ret, iif)
            .coerce(Coerce::UnionFrom(1)),
        Def::new("coalesce", "coalesce(INPUT)",
            "[clash] First non-null argument (identical to DataFusion's `coalesce`). SQL: dp_coalesce (or coalesce)",
            (1, MANY), union_of_all, coalesce).clash("dp_coalesce").coerce(Coerce::UnionFrom(0)),
        Def::new("min", "min(OPTIONS)",
            "[clash] Smallest argument in natural order, nulls ignored (DataFusion's `min` is the aggregate; `least` is equivalent). SQL: dp_min",
            (1, MANY), union_of_all, min).clash("dp_min").coerce(Coerce::UnionFrom(0)),
        Def::new("max", "max(OPTIONS)",
            "[clash] Largest argument in natural order, nulls ignored (DataFusion's `max` is the aggregate; `greatest` is equivalent). SQL: dp_max",
            (1, MANY), union_of_all, max).clash("dp_max").coerce(Coerce::UnionFrom(0)),
        Def::new("uuid", "uuid()",
            "[clash] A random (v4) UUID per row (DataFusion's `uuid` is the same). SQL: dp_uuid (or uuid, guid)",
            (0, 0), utf8, uuid).clash("dp_uuid").volatile(),
        Def::new("guid", "guid()", "A random (v4) UUID per row (alias of uuid)", (0, 0), utf8, uuid).volatile(),
    ];
    v.extend(super::useragent::defs());
    v
}

fn decode_ret(t: &[DataType], _: &[Option<&ScalarValue>]) -> Result<DataType> {
    Ok(union_type(
        &value_positions(t.len())
            .map(|i| t[i].clone())
            .collect::<Vec<_>>(),
    ))
}

/// Indices of the values (and the default) in decode's arguments.
fn value_positions(n: usize) -> impl Iterator<Item = usize> {
    let pairs = (n - 1) / 2;
    (0..pairs)
        .map(|p| 2 + 2 * p)
        .chain(((n - 1) % 2 == 1).then_some(n - 1))
}

/// Picks, per row, argument `choice(r)` (None → null), all cast to the return type.
fn choose(a: &Args, mut choice: impl FnMut(usize) -> Option<usize>) -> Result<ArrayRef> {
    let mut sources: Vec<ArrayRef> = a
        .arrays
        .iter()
        .map(|x| cast(x, &a.ret))
        .collect::<std::result::Result<_, _>>()?;
    sources.push(new_null_array(&a.ret, 1));
    let null = sources.len() - 1;
    let idx: Vec<(usize, usize)> = (0..a.n)
        .map(|r| choice(r).map_or((null, 0), |i| (i, r)))
        .collect();
    let srcs: Vec<&dyn Array> = sources.iter().map(|x| x.as_ref()).collect();
    Ok(interleave(&srcs, &idx)?)
}

fn decode(a: &Args) -> Result<ArrayRef> {
    let n = a.len();
    let pairs = (n - 1) / 2;
    let default = ((n - 1) % 2 == 1).then_some(n - 1);
    choose(a, |r| match a.str(0, r) {
        Some(key) => (0..pairs)
            .find(|p| a.str(1 + 2 * p, r) == Some(key))
            .map(|p| 2 + 2 * p)
            .or(default),
        None => default,
    })
}

fn iif_ret(t: &[DataType], _: &[Option<&ScalarValue>]) -> Result<DataType> {
    Ok(union_type(&t[1..]))
}

fn iif(a: &Args) -> Result<ArrayRef> {
    choose(a, |r| {
        Some(if a.bool(0, r).unwrap_or(false) { 1 } else { 2 })
    })
}

fn coalesce(a: &Args) -> Result<ArrayRef> {
    choose(a, |r| (0..a.len()).find(|&i| !a.is_null(i, r)))
}

#[allow(clippy::needless_range_loop)] // `i` indexes both the arguments and their comparators
fn extreme(a: &Args, want: Ordering) -> Result<ArrayRef> {
    let arrays: Vec<ArrayRef> = a
        .arrays
        .iter()
        .map(|x| cast(x, &a.ret))
        .collect::<std::result::Result<_, _>>()?;
    let mut cmps = Vec::new();
    for i in 0..arrays.len() {
        let row: Vec<_> = (0..arrays.len())
            .map(|j| {
                make_comparator(
                    arrays[i].as_ref(),
                    arrays[j].as_ref(),
                    SortOptions::default(),
                )
            })
            .collect::<std::result::Result<_, _>>()?;
        cmps.push(row);
    }
    choose(a, |r| {
        let mut best: Option<usize> = None;
        for i in 0..arrays.len() {
            if a.is_null(i, r) {
                continue;
            }
            best = match best {
                Some(b) if cmps[i][b](r, r) != want => Some(b),
                _ => Some(i),
            };
        }
        best
    })
}

fn min(a: &Args) -> Result<ArrayRef> {
    extreme(a, Ordering::Less)
}

fn max(a: &Args) -> Result<ArrayRef> {
    extreme(a, Ordering::Greater)
}

fn uuid(a: &Args) -> Result<ArrayRef> {
    strings(a.n, |_| Some(uuid::Uuid::new_v4().to_string()))
}
