//! Object and map hierarchy functions (§2.5 "Hierarchies": objects, maps). Objects are structs
//! (keys must be literals: the struct type is fixed at planning), maps `Map<Utf8, V>` (entries
//! `key`/`value`).

use std::sync::Arc;

use arrow::array::{
    new_null_array, Array, ArrayRef, AsArray, ListArray, MapArray, StringArray, StructArray,
    UInt32Array,
};
use arrow::buffer::OffsetBuffer;
use arrow::compute::{cast, take};
use arrow::datatypes::{DataType, Field};
use datafusion::common::{plan_err, Result, ScalarValue};

use super::hierarchy::{as_list, build_map, item_type, map_type, range};
use super::strings::{list_strings, string_lists};
use super::{
    boolean, bools, list_of, literal_str, same_as_first, strings, union_type, utf8, utf8_list,
    Args, Coerce, Def, MANY,
};

pub(crate) fn defs() -> Vec<Def> {
    vec![
        Def::new("arrays_to_objects", "arrays_to_objects(KEY, ARRAY, KEY, ARRAY, ...)",
            "Zips arrays into an array of objects {KEY: element} (literal keys); shorter arrays give nulls",
            (2, MANY), arrays_to_objects_ret, arrays_to_objects),
        Def::new("to_object", "to_object(KEY, VALUE, KEY, VALUE, ...)", "An object from literal keys and values",
            (2, MANY), to_object_ret, to_object),
        Def::new("to_map", "to_map(KEY, VALUE, KEY, VALUE, ...)", "A map from keys and values (null keys skipped; first key wins)",
            (2, MANY), object_to_map_ret, object_to_map),
        Def::new("object_to_map", "object_to_map(KEY, VALUE, ...) | object_to_map(OBJECT) | object_to_map(OBJECT_ARRAY, KEY)",
            "A map from key/value pairs, from an object's fields, or from an array of objects keyed by a field",
            (1, MANY), object_to_map_ret, object_to_map),
        Def::new("array_to_map", "array_to_map(OBJECT[] INPUTS, KEY)",
            "Map from the value of field KEY of each object to the object (null input → null; later duplicates win)",
            (2, 2), object_to_map_ret, object_to_map),
        Def::new("str_to_object", "str_to_object(STRING, VALUE_DELIMITER, FIELD_DELIMITER)",
            "Map parsed from \"k:v,k:v\" (delimiters default ':' and ','; keys and values trimmed); read a key with ['key']",
            (1, 3), str_map_ret, str_to_object),
        Def::new("get_keys", "get_keys(OBJECT)", "Keys of a map, or names of an object's non-null fields",
            (1, 1), utf8_list, get_keys),
        Def::new("get_values", "get_values(STRING, KEY, VALUE_DELIMITER, FIELD_DELIMITER)",
            "The value of KEY in a delimited string (delimiters default ':' and ','); null if absent",
            (2, 4), utf8, get_values),
        Def::new("map_get_values", "map_get_values(MAP, KEY)",
            "The value of KEY in MAP; with an array of keys, the map restricted to those keys",
            (2, 2), map_get_values_ret, map_get_values),
        Def::new("map_has_keys", "map_has_keys(MAP, KEY)", "Whether MAP has KEY (or the first key of an array of keys)",
            (2, 2), boolean, map_has_keys),
        Def::new("add_to_map", "add_to_map(MAP 1, MAP 2, MAP 3, ...)", "Merged maps; on duplicate keys the first one passed wins",
            (1, MANY), same_as_first, add_to_map).coerce(Coerce::UnionFrom(0)),
        Def::new("nullify", "nullify()", "A null value (to leave a field out)", (0, 0), null_ret, nullify),
    ]
}

// ---- builders -------------------------------------------------------------------------------

/// Map entries of row `r`: (keys as strings, values array, range).
fn map_row(m: &MapArray, keys: &StringArray, r: usize) -> Option<Vec<(String, usize)>> {
    if m.is_null(r) {
        return None;
    }
    let o = m.value_offsets();
    Some(
        (o[r] as usize..o[r + 1] as usize)
            .map(|i| (keys.value(i).to_string(), i))
            .collect(),
    )
}

fn map_keys(m: &MapArray) -> Result<StringArray> {
    Ok(cast(m.keys(), &DataType::Utf8)?.as_string::<i32>().clone())
}

// ---- return types ---------------------------------------------------------------------------

/// Literal keys at the even positions.
fn literal_keys(lits: &[Option<&ScalarValue>], n: usize, what: &str) -> Result<Vec<String>> {
    let mut keys: Vec<String> = Vec::new();
    for i in (0..n).step_by(2) {
        match lits.get(i).and_then(literal_str) {
            Some(k) if !keys.iter().any(|x| x == k) => keys.push(k.to_string()),
            Some(k) => return plan_err!("{what}: duplicate key {k:?}"),
            None => return plan_err!("{what}: keys must be string literals (argument {})", i + 1),
        }
    }
    Ok(keys)
}

fn to_object_ret(t: &[DataType], lits: &[Option<&ScalarValue>]) -> Result<DataType> {
    if !t.len().is_multiple_of(2) {
        return plan_err!("to_object: expects KEY, VALUE pairs");
    }
    let keys = literal_keys(lits, t.len(), "to_object")?;
    Ok(DataType::Struct(
        keys.into_iter()
            .zip(t.iter().skip(1).step_by(2))
            .map(|(k, v)| Field::new(k, v.clone(), true))
            .collect(),
    ))
}

fn arrays_to_objects_ret(t: &[DataType], lits: &[Option<&ScalarValue>]) -> Result<DataType> {
    if !t.len().is_multiple_of(2) {
        return plan_err!("arrays_to_objects: expects KEY, ARRAY pairs");
    }
    let keys = literal_keys(lits, t.len(), "arrays_to_objects")?;
    let mut fields = Vec::new();
    for (k, v) in keys.into_iter().zip(t.iter().skip(1).step_by(2)) {
        let Some(item) = item_type(v) else {
            return plan_err!("arrays_to_objects: {k:?} is not given an array");
        };
        fields.push(Field::new(k, item.clone(), true));
    }
    Ok(list_of(DataType::Struct(fields.into())))
}

fn object_to_map_ret(t: &[DataType], _: &[Option<&ScalarValue>]) -> Result<DataType> {
    match t {
        [DataType::Struct(fields)] => {
            let types: Vec<DataType> = fields.iter().map(|f| f.data_type().clone()).collect();
            Ok(map_type(union_type(&types)))
        }
        [list, _] if item_type(list).is_some() => Ok(map_type(item_type(list).cloned().unwrap_or(DataType::Null))),
        _ if t.len().is_multiple_of(2) => {
            let values: Vec<DataType> = t.iter().skip(1).step_by(2).cloned().collect();
            Ok(map_type(union_type(&values)))
        }
        _ => plan_err!("object_to_map/to_map: expects KEY, VALUE pairs, an object, or an array of objects and a key"),
    }
}

fn str_map_ret(_: &[DataType], _: &[Option<&ScalarValue>]) -> Result<DataType> {
    Ok(map_type(DataType::Utf8))
}

fn map_get_values_ret(t: &[DataType], _: &[Option<&ScalarValue>]) -> Result<DataType> {
    let DataType::Map(entries, _) = &t[0] else {
        return plan_err!("map_get_values: the first argument must be a map");
    };
    let DataType::Struct(f) = entries.data_type() else {
        return plan_err!("map_get_values: bad map type");
    };
    if item_type(&t[1]).is_some() {
        Ok(map_type(f[1].data_type().clone()))
    } else {
        Ok(f[1].data_type().clone())
    }
}

fn null_ret(_: &[DataType], _: &[Option<&ScalarValue>]) -> Result<DataType> {
    Ok(DataType::Null)
}

// ---- functions ------------------------------------------------------------------------------

fn arrays_to_objects(a: &Args) -> Result<ArrayRef> {
    let Some(DataType::Struct(fields)) = item_type(&a.ret).cloned() else {
        return plan_err!("arrays_to_objects: bad type");
    };
    let lists: Vec<Option<ListArray>> = a.arrays.iter().skip(1).step_by(2).map(as_list).collect();
    let mut lens = Vec::with_capacity(a.n);
    let mut indices: Vec<Vec<Option<u32>>> = vec![Vec::new(); lists.len()];
    for r in 0..a.n {
        let ranges: Vec<Option<std::ops::Range<usize>>> = lists
            .iter()
            .map(|l| l.as_ref().and_then(|l| range(l, r)))
            .collect();
        let len = ranges.iter().flatten().map(|x| x.len()).max().unwrap_or(0);
        for (j, rg) in ranges.iter().enumerate() {
            for k in 0..len {
                indices[j].push(
                    rg.as_ref()
                        .filter(|x| k < x.len())
                        .map(|x| (x.start + k) as u32),
                );
            }
        }
        lens.push(len);
    }
    let mut columns = Vec::new();
    for (j, l) in lists.iter().enumerate() {
        let idx = UInt32Array::from(indices[j].clone());
        columns.push(match l {
            Some(l) => take(l.values(), &idx, None)?,
            None => new_null_array(fields[j].data_type(), idx.len()),
        });
    }
    let total: usize = lens.iter().sum();
    let values = StructArray::try_new_with_length(fields.clone(), columns, None, total)?;
    Ok(Arc::new(ListArray::try_new(
        Arc::new(Field::new_list_field(DataType::Struct(fields), true)),
        OffsetBuffer::from_lengths(lens),
        Arc::new(values),
        None,
    )?))
}

fn to_object(a: &Args) -> Result<ArrayRef> {
    let DataType::Struct(fields) = &a.ret else {
        return plan_err!("to_object: bad type");
    };
    let cols: Vec<ArrayRef> = a.arrays.iter().skip(1).step_by(2).cloned().collect();
    Ok(Arc::new(StructArray::try_new_with_length(
        fields.clone(),
        cols,
        None,
        a.n,
    )?))
}

fn object_to_map(a: &Args) -> Result<ArrayRef> {
    let DataType::Map(entries, _) = &a.ret else {
        return plan_err!("object_to_map: bad type");
    };
    let DataType::Struct(ef) = entries.data_type() else {
        return plan_err!("object_to_map: bad type");
    };
    let value = ef[1].data_type().clone();
    match a.arrays[0].data_type() {
        DataType::Struct(fields) if a.len() == 1 => {
            let s = a.arrays[0].as_struct();
            let sources: Vec<ArrayRef> = s
                .columns()
                .iter()
                .map(|c| cast(c, &value))
                .collect::<std::result::Result<_, _>>()?;
            let rows: Vec<_> = (0..a.n)
                .map(|r| {
                    s.is_valid(r).then(|| {
                        fields
                            .iter()
                            .enumerate()
                            .filter(|(j, _)| sources[*j].is_valid(r))
                            .map(|(j, f)| (f.name().clone(), j, r))
                            .collect()
                    })
                })
                .collect();
            build_map(&value, &sources, &rows)
        }
        t if a.len() == 2 && item_type(t).is_some() => {
            let l = as_list(&a.arrays[0]).expect("list");
            let objects = l.values().clone();
            let DataType::Struct(ofs) = objects.data_type().clone() else {
                return plan_err!("array_to_map: the array must hold objects");
            };
            let s = objects.as_struct();
            let rows: Vec<_> = (0..a.n)
                .map(|r| {
                    let key = a.str(1, r)?;
                    let col = ofs.iter().position(|f| f.name() == key)?;
                    let keys = cast(s.column(col), &DataType::Utf8).ok()?;
                    let keys = keys.as_string::<i32>();
                    let mut out: Vec<(String, usize, usize)> = Vec::new();
                    for i in range(&l, r)? {
                        if s.is_valid(i) && keys.is_valid(i) {
                            let k = keys.value(i).to_string();
                            out.retain(|(x, _, _)| *x != k);
                            out.push((k, 0, i));
                        }
                    }
                    Some(out)
                })
                .collect();
            build_map(&value, &[cast(&objects, &value)?], &rows)
        }
        _ => {
            let sources: Vec<ArrayRef> = a
                .arrays
                .iter()
                .skip(1)
                .step_by(2)
                .map(|c| cast(c, &value))
                .collect::<std::result::Result<_, _>>()?;
            let rows: Vec<_> = (0..a.n)
                .map(|r| {
                    let mut out: Vec<(String, usize, usize)> = Vec::new();
                    for j in 0..sources.len() {
                        if let Some(k) = a.str(2 * j, r) {
                            if !out.iter().any(|(x, _, _)| x == k) {
                                out.push((k.to_string(), j, r));
                            }
                        }
                    }
                    Some(out)
                })
                .collect();
            build_map(&value, &sources, &rows)
        }
    }
}

/// `k<vd>v<fd>k<vd>v` → pairs (trimmed), defaults ':' and ','.
fn parse_pairs<'s>(s: &'s str, vd: Option<&str>, fd: Option<&str>) -> Vec<(&'s str, &'s str)> {
    let vd = vd.filter(|d| !d.is_empty()).unwrap_or(":").to_string();
    let fd = fd.filter(|d| !d.is_empty()).unwrap_or(",").to_string();
    s.split(fd.as_str())
        .filter_map(|f| f.split_once(vd.as_str()).map(|(k, v)| (k.trim(), v.trim())))
        .filter(|(k, _)| !k.is_empty())
        .collect()
}

fn str_to_object(a: &Args) -> Result<ArrayRef> {
    let mut values: Vec<String> = Vec::new();
    let rows: Vec<_> = (0..a.n)
        .map(|r| {
            let pairs = parse_pairs(a.str(0, r)?, a.str(1, r), a.str(2, r));
            let mut out: Vec<(String, usize, usize)> = Vec::new();
            for (k, v) in pairs {
                if !out.iter().any(|(x, _, _)| x == k) {
                    values.push(v.to_string());
                    out.push((k.to_string(), 0, values.len() - 1));
                }
            }
            Some(out)
        })
        .collect();
    build_map(
        &DataType::Utf8,
        &[Arc::new(StringArray::from(values))],
        &rows,
    )
}

fn get_keys(a: &Args) -> Result<ArrayRef> {
    let arr = &a.arrays[0];
    match arr.data_type() {
        DataType::Map(..) => {
            let m = arr.as_map();
            let keys = map_keys(m)?;
            string_lists(a.n, |r| {
                Some(map_row(m, &keys, r)?.into_iter().map(|(k, _)| k).collect())
            })
        }
        DataType::Struct(fields) => {
            let s = arr.as_struct();
            string_lists(a.n, |r| {
                s.is_valid(r).then(|| {
                    fields
                        .iter()
                        .zip(s.columns())
                        .filter(|(_, c)| c.is_valid(r))
                        .map(|(f, _)| f.name().clone())
                        .collect()
                })
            })
        }
        _ => string_lists(a.n, |_| None),
    }
}

fn get_values(a: &Args) -> Result<ArrayRef> {
    strings(a.n, |r| {
        let key = a.str(1, r)?;
        parse_pairs(a.str(0, r)?, a.str(2, r), a.str(3, r))
            .into_iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.to_string())
    })
}

/// The keys asked for in argument 1 at row `r` (a string or an array of strings).
fn wanted(a: &Args, r: usize) -> Option<Vec<String>> {
    if item_type(a.arrays[1].data_type()).is_some() {
        Some(
            list_strings(&a.arrays[1], r)?
                .into_iter()
                .flatten()
                .collect(),
        )
    } else {
        Some(vec![a.str(1, r)?.to_string()])
    }
}

fn map_get_values(a: &Args) -> Result<ArrayRef> {
    let m = a.arrays[0].as_map();
    let keys = map_keys(m)?;
    let values = m.values().clone();
    if item_type(a.arrays[1].data_type()).is_some() {
        let rows: Vec<_> = (0..a.n)
            .map(|r| {
                let want = wanted(a, r)?;
                Some(
                    map_row(m, &keys, r)?
                        .into_iter()
                        .filter(|(k, _)| want.contains(k))
                        .map(|(k, i)| (k, 0, i))
                        .collect(),
                )
            })
            .collect();
        let vt = values.data_type().clone();
        return build_map(&vt, &[values], &rows);
    }
    let idx: UInt32Array = (0..a.n)
        .map(|r| {
            let key = a.str(1, r)?;
            map_row(m, &keys, r)?
                .into_iter()
                .find(|(k, _)| k == key)
                .map(|(_, i)| i as u32)
        })
        .collect();
    Ok(take(&values, &idx, None)?)
}

fn map_has_keys(a: &Args) -> Result<ArrayRef> {
    let m = a.arrays[0].as_map();
    let keys = map_keys(m)?;
    bools(a.n, |r| {
        let key = wanted(a, r)?.into_iter().next()?;
        Some(map_row(m, &keys, r)?.iter().any(|(k, _)| *k == key))
    })
}

fn add_to_map(a: &Args) -> Result<ArrayRef> {
    let DataType::Map(entries, _) = &a.ret else {
        return plan_err!("add_to_map: arguments must be maps");
    };
    let DataType::Struct(ef) = entries.data_type() else {
        return plan_err!("add_to_map: bad type");
    };
    let value = ef[1].data_type().clone();
    let maps: Vec<&MapArray> = a.arrays.iter().map(|x| x.as_map()).collect();
    let keys: Vec<StringArray> = maps.iter().map(|m| map_keys(m)).collect::<Result<_>>()?;
    let sources: Vec<ArrayRef> = maps
        .iter()
        .map(|m| cast(m.values(), &value))
        .collect::<std::result::Result<_, _>>()?;
    let rows: Vec<_> = (0..a.n)
        .map(|r| {
            let mut out: Vec<(String, usize, usize)> = Vec::new();
            let mut any = false;
            for (j, m) in maps.iter().enumerate() {
                for (k, i) in map_row(m, &keys[j], r).into_iter().flatten() {
                    any = true;
                    if !out.iter().any(|(x, _, _)| *x == k) {
                        out.push((k, j, i));
                    }
                }
                any |= m.is_valid(r);
            }
            any.then_some(out)
        })
        .collect();
    build_map(&value, &sources, &rows)
}

fn nullify(a: &Args) -> Result<ArrayRef> {
    Ok(new_null_array(&DataType::Null, a.n))
}
