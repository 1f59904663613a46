//! Pass one of validation: each column converted to its XDM Arrow type, column-wise.
//!
//! A value that cannot be converted becomes null and is recorded as a `MAPPER-3700-400`
//! warning (Data Prep nulls the field, the row goes on). Empty strings, empty lists and
//! maps, and objects whose fields are all absent become null without a warning: they are
//! absent, as Platform accepts no empty values.

use std::sync::Arc;

use arrow::array::{
    new_null_array, Array, ArrayRef, AsArray, BooleanBufferBuilder, Date32Array, ListArray,
    MapArray, StringArray, StructArray, TimestampMillisecondArray,
};
use arrow::buffer::{BooleanBuffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow::compute::{cast_with_options, CastOptions};
use arrow::datatypes::{DataType, Float64Type, Int64Type};
use arrow::error::ArrowError;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use chrono::{DateTime, Datelike, NaiveDate};

use super::check::{is_float, logical};
use super::schema::{XdmField, XdmType};
use super::validate::FieldIssue;
use super::{XdmError, CODE_MAPPER_TRANSFORM};

const SAFE: CastOptions<'static> = CastOptions {
    safe: true,
    format_options: FormatOptions::new(),
};
/// Rendered values are cut to this many characters.
const MAX_VALUE_CHARS: usize = 200;

/// Where elements of nested lists and maps sit, to name a row and a column for an issue.
enum Level {
    List(ScalarBuffer<i32>),
    Map(ScalarBuffer<i32>, StringArray),
}

/// Issues found so far and the list/map levels above the array being worked on.
#[derive(Default)]
pub(crate) struct Ctx {
    /// `(is_error, issue)` in the order found.
    pub issues: Vec<(bool, FieldIssue)>,
    levels: Vec<Level>,
}

impl Ctx {
    /// Records an issue for element `j` of the current array of field `field`.
    pub fn push(
        &mut self,
        error: bool,
        field: &XdmField,
        j: usize,
        code: &str,
        message: String,
        value: Option<String>,
    ) {
        let (row, column) = self.locate(field.path(), j);
        self.issues.push((
            error,
            FieldIssue {
                row,
                column,
                code: code.to_string(),
                message,
                value,
            },
        ));
    }

    /// The batch row of element `j` and the field path with `[]` filled in (`items[3]`, `metadata.k`).
    fn locate(&self, template: &str, mut j: usize) -> (u32, String) {
        let mut segs = Vec::with_capacity(self.levels.len());
        for level in self.levels.iter().rev() {
            let offs = match level {
                Level::List(o) | Level::Map(o, _) => o,
            };
            let p = offs.partition_point(|&o| o as usize <= j).saturating_sub(1);
            segs.push(match level {
                Level::List(_) => format!("[{}]", j - offs[p] as usize),
                Level::Map(_, keys) => format!(".{}", keys.value(j)),
            });
            j = p;
        }
        let mut out = String::with_capacity(template.len() + 8);
        let mut rest = template;
        let mut segs = segs.into_iter().rev();
        while let Some(pos) = rest.find("[]") {
            out.push_str(&rest[..pos]);
            out.push_str(&segs.next().unwrap_or_default());
            rest = &rest[pos + 2..];
        }
        out.push_str(rest);
        (j as u32, out)
    }

    pub fn enter_list(&mut self, offsets: &OffsetBuffer<i32>) {
        self.levels.push(Level::List(offsets.inner().clone()));
    }

    pub fn enter_map(&mut self, offsets: &OffsetBuffer<i32>, keys: &StringArray) {
        self.levels
            .push(Level::Map(offsets.inner().clone(), keys.clone()));
    }

    pub fn leave(&mut self) {
        self.levels.pop();
    }
}

/// Renders element `i` for an issue, cut to about 200 characters.
pub(crate) fn render(array: &dyn Array, i: usize) -> String {
    let text = match ArrayFormatter::try_new(array, &FormatOptions::default()) {
        Ok(f) => f.value(i).to_string(),
        Err(_) => "?".to_string(),
    };
    truncate(text)
}

pub(crate) fn truncate(mut text: String) -> String {
    if let Some((cut, _)) = text.char_indices().nth(MAX_VALUE_CHARS) {
        text.truncate(cut);
        text.push('…');
    }
    text
}

fn arrow_err(field: &XdmField) -> impl Fn(ArrowError) -> XdmError + '_ {
    move |source| XdmError::Arrow {
        column: field.path().to_string(),
        source,
    }
}

/// Converts `input` to `field`'s XDM Arrow type, recording a warning per nulled value.
pub(crate) fn convert(
    input: &ArrayRef,
    field: &XdmField,
    ctx: &mut Ctx,
) -> Result<ArrayRef, XdmError> {
    let target = field.xdm_type().arrow_type();
    if *input.data_type() == DataType::Null {
        return Ok(new_null_array(&target, input.len()));
    }
    let input = normalize(input).map_err(arrow_err(field))?;
    match field.xdm_type() {
        XdmType::Object(children) => {
            convert_struct(input.as_struct(), field, children, &target, ctx)
        }
        XdmType::Array(item) => convert_list(input.as_list::<i32>(), item, ctx),
        XdmType::Map(value) => convert_map(input.as_map(), value, &target, ctx),
        _ => convert_leaf(&input, field, ctx),
    }
}

/// Removes physical variants: dictionaries, string views and large offsets.
fn normalize(input: &ArrayRef) -> Result<ArrayRef, ArrowError> {
    let to = match input.data_type() {
        DataType::Dictionary(_, v) => logical(v).clone(),
        DataType::LargeUtf8 | DataType::Utf8View => DataType::Utf8,
        DataType::LargeList(f) | DataType::FixedSizeList(f, _) | DataType::ListView(f) => {
            DataType::List(Arc::clone(f))
        }
        _ => return Ok(Arc::clone(input)),
    };
    let out = cast_with_options(input, &to, &SAFE)?;
    normalize(&out)
}

fn convert_struct(
    input: &StructArray,
    field: &XdmField,
    children: &[XdmField],
    target: &DataType,
    ctx: &mut Ctx,
) -> Result<ArrayRef, XdmError> {
    let DataType::Struct(fields) = target else {
        unreachable!("objects map to structs")
    };
    let mut columns = Vec::with_capacity(children.len());
    // A row holds the object only if at least one of its fields is present.
    let mut any = BooleanBuffer::new_unset(input.len());
    for child in children {
        let col = match input.column_by_name(child.name()) {
            Some(c) => convert(c, child, ctx)?,
            None => new_null_array(&child.xdm_type().arrow_type(), input.len()),
        };
        match col.logical_nulls() {
            None if !col.is_empty() => any = BooleanBuffer::new_set(input.len()),
            None => {}
            Some(n) => any = &any | n.inner(),
        }
        columns.push(col);
    }
    let nulls = NullBuffer::union(input.nulls(), Some(&NullBuffer::new(any)));
    let out = StructArray::try_new(fields.clone(), columns, nulls).map_err(arrow_err(field))?;
    Ok(Arc::new(out))
}

/// The offsets rebased to start at 0 and the matching slice of `values`.
fn rebase(offsets: &OffsetBuffer<i32>, values: &ArrayRef) -> (OffsetBuffer<i32>, ArrayRef) {
    let first = offsets[0];
    let last = offsets[offsets.len() - 1];
    if first == 0 && last as usize == values.len() {
        return (offsets.clone(), Arc::clone(values));
    }
    let rebased = offsets.iter().map(|o| o - first).collect::<Vec<_>>();
    let values = values.slice(first as usize, (last - first) as usize);
    (OffsetBuffer::new(rebased.into()), values)
}

/// Nulls of a list or map with empty rows nulled too.
fn non_empty(nulls: Option<&NullBuffer>, offsets: &OffsetBuffer<i32>) -> Option<NullBuffer> {
    let n = offsets.len() - 1;
    if !offsets.windows(2).any(|w| w[0] == w[1]) {
        return nulls.cloned();
    }
    let filled = NullBuffer::new(BooleanBuffer::collect_bool(n, |i| {
        offsets[i + 1] > offsets[i]
    }));
    NullBuffer::union(nulls, Some(&filled))
}

fn convert_list(input: &ListArray, item: &XdmField, ctx: &mut Ctx) -> Result<ArrayRef, XdmError> {
    let (offsets, values) = rebase(input.offsets(), input.values());
    ctx.enter_list(&offsets);
    let converted = convert(&values, item, ctx);
    ctx.leave();
    let nulls = non_empty(input.nulls(), &offsets);
    let out = ListArray::try_new(Arc::new(item.arrow_field()), offsets, converted?, nulls)
        .map_err(arrow_err(item))?;
    Ok(Arc::new(out))
}

fn convert_map(
    input: &MapArray,
    value: &XdmField,
    target: &DataType,
    ctx: &mut Ctx,
) -> Result<ArrayRef, XdmError> {
    let DataType::Map(entries_field, _) = target else {
        unreachable!("maps map to maps")
    };
    let DataType::Struct(kv) = entries_field.data_type() else {
        unreachable!("map entries are structs")
    };
    let (offsets, keys) = rebase(input.offsets(), input.keys());
    let (_, values) = rebase(input.offsets(), input.values());
    let keys = normalize(&keys).map_err(arrow_err(value))?;
    let keys = keys.as_string::<i32>().clone();
    ctx.enter_map(&offsets, &keys);
    let converted = convert(&values, value, ctx);
    ctx.leave();
    let entries = StructArray::try_new(kv.clone(), vec![Arc::new(keys), converted?], None)
        .map_err(arrow_err(value))?;
    let nulls = non_empty(input.nulls(), &offsets);
    let out = MapArray::try_new(Arc::clone(entries_field), offsets, entries, nulls, false)
        .map_err(arrow_err(value))?;
    Ok(Arc::new(out))
}

/// Empty strings are absent: they become null without a warning.
fn null_empty_strings(a: &StringArray) -> StringArray {
    let offs = a.value_offsets();
    if !offs.windows(2).any(|w| w[0] == w[1]) {
        return a.clone();
    }
    let filled = NullBuffer::new(BooleanBuffer::collect_bool(a.len(), |i| {
        offs[i + 1] > offs[i]
    }));
    let nulls = NullBuffer::union(a.nulls(), Some(&filled));
    // SAFETY: the offsets and values of `a`, a valid array (UTF-8, offsets in bounds), and a
    // null buffer of its length: only which rows are null changes, so nothing to check again.
    unsafe { StringArray::new_unchecked(a.offsets().clone(), a.values().clone(), nulls) }
}

fn convert_leaf(input: &ArrayRef, field: &XdmField, ctx: &mut Ctx) -> Result<ArrayRef, XdmError> {
    let input: ArrayRef = match input.as_string_opt::<i32>() {
        Some(s) => Arc::new(null_empty_strings(s)),
        None => Arc::clone(input),
    };
    let ty = field.xdm_type();
    let out: ArrayRef = match ty {
        XdmType::DateTime => to_date_time(&input).map_err(arrow_err(field))?,
        XdmType::Date => to_date(&input).map_err(arrow_err(field))?,
        XdmType::Double => to_double(&input).map_err(arrow_err(field))?,
        t if t.is_integer() => {
            let range = field.value_range().unwrap_or((i64::MIN, i64::MAX));
            to_integer(&input, &ty.arrow_type(), range).map_err(arrow_err(field))?
        }
        _ => cast_with_options(&input, &ty.arrow_type(), &SAFE).map_err(arrow_err(field))?,
    };
    if out.null_count() > input.null_count() {
        for i in (0..input.len()).filter(|&i| input.is_valid(i) && out.is_null(i)) {
            let value = render(&input, i);
            let message = format!(
                "cannot convert {value:?} to XDM {} ({}); the field is nulled",
                ty.name(),
                conversion_hint(field)
            );
            ctx.push(false, field, i, CODE_MAPPER_TRANSFORM, message, Some(value));
        }
    }
    Ok(out)
}

fn conversion_hint(field: &XdmField) -> String {
    match (field.xdm_type(), field.value_range()) {
        (XdmType::DateTime, _) => {
            "expected an RFC 3339 date-time such as 2019-05-15T20:20:39Z".into()
        }
        (XdmType::Date, _) => "expected yyyy-MM-dd".into(),
        (XdmType::Double, _) => "expected a finite number".into(),
        (XdmType::Boolean, _) => "expected true or false".into(),
        (_, Some((lo, hi))) => format!("expected an integer in {lo}..={hi}"),
        _ => "unsupported value".into(),
    }
}

fn to_double(input: &ArrayRef) -> Result<ArrayRef, ArrowError> {
    let out = cast_with_options(input, &DataType::Float64, &SAFE)?;
    let f = out.as_primitive::<Float64Type>();
    if f.values().iter().all(|v| v.is_finite()) {
        return Ok(out);
    }
    Ok(Arc::new(f.unary_opt::<_, Float64Type>(|v| {
        v.is_finite().then_some(v)
    })))
}

fn to_integer(
    input: &ArrayRef,
    target: &DataType,
    (lo, hi): (i64, i64),
) -> Result<ArrayRef, ArrowError> {
    let longs = if is_float(input.data_type()) {
        let f = cast_with_options(input, &DataType::Float64, &SAFE)?;
        // Only integral values convert; 2^63 as f64 is exclusive.
        let limit = 9_223_372_036_854_775_808.0_f64;
        f.as_primitive::<Float64Type>()
            .unary_opt::<_, Int64Type>(|v| {
                (v.fract() == 0.0 && v >= -limit && v < limit).then_some(v as i64)
            })
    } else {
        cast_with_options(input, &DataType::Int64, &SAFE)?
            .as_primitive::<Int64Type>()
            .clone()
    };
    let in_range = match (arrow::compute::min(&longs), arrow::compute::max(&longs)) {
        (Some(min), Some(max)) => min >= lo && max <= hi,
        _ => true,
    };
    let longs = if in_range {
        longs
    } else {
        longs.unary_opt::<_, Int64Type>(|v| (lo..=hi).contains(&v).then_some(v))
    };
    cast_with_options(&longs, target, &SAFE)
}

fn to_date_time(input: &ArrayRef) -> Result<ArrayRef, ArrowError> {
    match input.as_string_opt::<i32>() {
        Some(s) => {
            let out: TimestampMillisecondArray = s
                .iter()
                .map(|v| v.and_then(parse_date_time_millis))
                .collect();
            Ok(Arc::new(out.with_timezone("UTC")))
        }
        None => cast_with_options(input, &XdmType::DateTime.arrow_type(), &SAFE),
    }
}

fn to_date(input: &ArrayRef) -> Result<ArrayRef, ArrowError> {
    match input.as_string_opt::<i32>() {
        Some(s) => {
            let out: Date32Array = s.iter().map(|v| v.and_then(parse_date_days)).collect();
            Ok(Arc::new(out))
        }
        None => cast_with_options(input, &DataType::Date32, &SAFE),
    }
}

/// Parses an RFC 3339 / ISO 8601 date-time with an offset (`Z`, `+00:00` or `+0000`;
/// fractional seconds allowed) into milliseconds since the epoch, UTC.
pub(crate) fn parse_date_time_millis(s: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(s)
        .or_else(|_| DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .ok()
        .map(|d| d.timestamp_millis())
}

/// Parses a `yyyy-MM-dd` date into days since the epoch.
pub(crate) fn parse_date_days(s: &str) -> Option<i32> {
    let b = s.as_bytes();
    let shape = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if !shape {
        return None;
    }
    let d = NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
    // 719_163 = days from 0001-01-01 (CE day 1) to 1970-01-01.
    Some(d.num_days_from_ce() - 719_163)
}

/// Presence of list/map elements: an element is present when its row is present.
pub(crate) fn expand_presence(
    present: Option<&NullBuffer>,
    offsets: &OffsetBuffer<i32>,
) -> Option<NullBuffer> {
    let present = present?;
    let len = offsets[offsets.len() - 1] as usize;
    let mut b = BooleanBufferBuilder::new(len);
    for (r, w) in offsets.windows(2).enumerate() {
        b.append_n((w[1] - w[0]) as usize, present.is_valid(r));
    }
    Some(NullBuffer::new(b.finish()))
}
