//! Validation with Data Prep semantics: convert, null what fails, reject what breaks a rule.

use arrow::array::{
    new_null_array, Array, ArrayRef, AsArray, BooleanArray, RecordBatch, RecordBatchOptions,
};
use arrow::buffer::NullBuffer;
use arrow::compute::{cast, filter_record_batch};
use arrow::datatypes::{DataType, Float64Type};

use super::check::ProblemKind;
use super::convert::{
    convert, expand_presence, parse_date_days, parse_date_time_millis, truncate, Ctx,
};
use super::schema::{Format, XdmField, XdmSchema, XdmType};
use super::{
    XdmError, CODE_ENUM, CODE_FORMAT, CODE_MAXIMUM, CODE_MAX_LENGTH, CODE_MINIMUM, CODE_MIN_LENGTH,
    CODE_PATTERN, CODE_REQUIRED,
};

/// One problem with one field of one row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldIssue {
    /// Index of the row in the input batch.
    pub row: u32,
    /// Dotted path of the field, with list indices and map keys (`_acme.items[3].sku`).
    pub column: String,
    /// `MAPPER-3700-400` (conversion nulled the field), `INGEST-1555-400` (required) or `XDM-*`.
    pub code: String,
    /// What is wrong, for people.
    pub message: String,
    /// The offending value, rendered and cut to about 200 characters (none for a missing value).
    pub value: Option<String>,
}

/// A row that breaks a rule of the schema, with all its issues (warnings included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedRow {
    /// Index of the row in the input batch.
    pub row: u32,
    /// Every issue of the row, conversions first.
    pub errors: Vec<FieldIssue>,
}

/// The outcome of [`validate`]: accepted rows + rejected rows = input rows.
#[derive(Debug, Clone)]
pub struct Validated {
    /// Rows that pass, converted to [`XdmSchema::arrow_schema`] exactly (XDM field order;
    /// fields the mapping does not produce are all null).
    pub accepted: RecordBatch,
    /// Their indices in the input batch, ascending.
    pub accepted_rows: Vec<u32>,
    /// Rows that fail, with all their issues, by ascending row.
    pub rejected: Vec<RejectedRow>,
    /// Fields nulled by a failed conversion in rows that were still accepted.
    pub warnings: Vec<FieldIssue>,
}

/// Validates a mapped batch against `schema` with Data Prep semantics.
///
/// Columns are matched to fields by name (nested structs recursively) and converted to the
/// field's XDM Arrow type. A value that cannot be converted becomes null and yields a
/// `MAPPER-3700-400` warning; rows are then checked against `required`, `enum`, `pattern`,
/// `minLength`/`maxLength`, `minimum`/`maximum` and `format`. A row that breaks a rule is
/// rejected with all its issues; a row with warnings only is accepted.
///
/// Returns [`XdmError::Mismatch`] when the batch has columns the schema lacks or types that
/// cannot be converted (what [`XdmSchema::check_output`] reports).
pub fn validate(batch: &RecordBatch, schema: &XdmSchema) -> Result<Validated, XdmError> {
    let problems: Vec<_> = schema
        .check_output(&batch.schema())
        .into_iter()
        .filter(|p| p.kind != ProblemKind::MissingRequired)
        .collect();
    if !problems.is_empty() {
        return Err(XdmError::Mismatch { problems });
    }
    let rows = batch.num_rows();
    let mut ctx = Ctx::default();
    let mut columns = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        columns.push(match batch.column_by_name(field.name()) {
            Some(c) => convert(c, field, &mut ctx)?,
            None => new_null_array(&field.xdm_type().arrow_type(), rows),
        });
    }
    for (field, column) in schema.fields().iter().zip(&columns) {
        if field.needs_check() {
            check(column, field, None, &mut ctx);
        }
    }
    let options = RecordBatchOptions::new().with_row_count(Some(rows));
    let converted = RecordBatch::try_new_with_options(schema.arrow_schema(), columns, &options)
        .map_err(|source| XdmError::Arrow {
            column: "<batch>".into(),
            source,
        })?;
    split(converted, ctx.issues)
}

/// Groups issues by row and splits the converted batch into accepted and rejected rows.
fn split(
    converted: RecordBatch,
    mut issues: Vec<(bool, FieldIssue)>,
) -> Result<Validated, XdmError> {
    let rows = converted.num_rows();
    issues.sort_by_key(|(_, i)| i.row);
    let mut rejected = Vec::new();
    let mut warnings = Vec::new();
    let mut keep = vec![true; rows];
    let mut rest = issues.as_slice();
    while let Some((_, first)) = rest.first() {
        let n = rest.iter().take_while(|(_, i)| i.row == first.row).count();
        let (group, tail) = rest.split_at(n);
        let row_issues = group.iter().map(|(_, i)| i.clone()).collect();
        if group.iter().any(|(error, _)| *error) {
            keep[first.row as usize] = false;
            rejected.push(RejectedRow {
                row: first.row,
                errors: row_issues,
            });
        } else {
            warnings.extend::<Vec<_>>(row_issues);
        }
        rest = tail;
    }
    let accepted_rows: Vec<u32> = (0..rows as u32).filter(|&r| keep[r as usize]).collect();
    let accepted = if rejected.is_empty() {
        converted
    } else {
        filter_record_batch(&converted, &BooleanArray::from(keep)).map_err(|source| {
            XdmError::Arrow {
                column: "<batch>".into(),
                source,
            }
        })?
    };
    Ok(Validated {
        accepted,
        accepted_rows,
        rejected,
        warnings,
    })
}

/// Pass two: rules of `field` over its converted column. `parent` is the presence of the
/// enclosing object (None: every element's parent is present).
fn check(array: &ArrayRef, field: &XdmField, parent: Option<&NullBuffer>, ctx: &mut Ctx) {
    if field.required() && array.null_count() > 0 {
        for i in 0..array.len() {
            if array.is_null(i) && parent.is_none_or(|p| p.is_valid(i)) {
                let message = match &field.profile_identity {
                    Some(ns) => format!(
                        "primary identity {} ({ns}) is missing or null: a Profile-enabled dataset rejects records without their primary identity",
                        field.path()
                    ),
                    None => format!(
                        "required field {} is missing or null (a required field is either missing or has a value of null)",
                        field.name()
                    ),
                };
                ctx.push(true, field, i, CODE_REQUIRED, message, None);
            }
        }
    }
    let present = NullBuffer::union(parent, array.logical_nulls().as_ref());
    match field.xdm_type() {
        XdmType::Object(children) => {
            let s = array.as_struct();
            for (child, column) in children.iter().zip(s.columns()) {
                if child.needs_check() {
                    check(column, child, present.as_ref(), ctx);
                }
            }
        }
        XdmType::Array(item) => {
            let list = array.as_list::<i32>();
            if item.needs_check() {
                let item_present = expand_presence(present.as_ref(), list.offsets());
                ctx.enter_list(list.offsets());
                check(list.values(), item, item_present.as_ref(), ctx);
                ctx.leave();
            }
        }
        XdmType::Map(value) => {
            let map = array.as_map();
            if value.needs_check() {
                let value_present = expand_presence(present.as_ref(), map.offsets());
                ctx.enter_map(map.offsets(), map.keys().as_string::<i32>());
                check(map.values(), value, value_present.as_ref(), ctx);
                ctx.leave();
            }
        }
        _ if field.constraints().is_empty() => {}
        XdmType::String => check_strings(array, field, present.as_ref(), ctx),
        t if t.is_integer() || matches!(t, XdmType::Double) => {
            check_numbers(array, field, present.as_ref(), ctx)
        }
        _ => {}
    }
}

fn issue(ctx: &mut Ctx, field: &XdmField, i: usize, code: &str, message: String, value: &str) {
    ctx.push(
        true,
        field,
        i,
        code,
        message,
        Some(truncate(value.to_string())),
    );
}

fn check_strings(array: &ArrayRef, field: &XdmField, present: Option<&NullBuffer>, ctx: &mut Ctx) {
    let c = field.constraints();
    let strings = array.as_string::<i32>();
    for (i, v) in strings.iter().enumerate() {
        let Some(v) = v else { continue };
        if present.is_some_and(|p| p.is_null(i)) {
            continue;
        }
        if !c.enum_values.is_empty() && !field.enum_strs.contains(v) {
            let allowed: Vec<_> = c.enum_values.iter().map(|e| e.to_string()).collect();
            let message = format!(
                "{v:?} is not one of the allowed values [{}]",
                allowed.join(", ")
            );
            issue(ctx, field, i, CODE_ENUM, message, v);
        }
        if c.min_length.is_some() || c.max_length.is_some() {
            let chars = v.chars().count() as u64;
            if let Some(min) = c.min_length.filter(|&m| chars < m) {
                let message = format!("{chars} characters, fewer than minLength {min}");
                issue(ctx, field, i, CODE_MIN_LENGTH, message, v);
            }
            if let Some(max) = c.max_length.filter(|&m| chars > m) {
                let message = format!("{chars} characters, more than maxLength {max}");
                issue(ctx, field, i, CODE_MAX_LENGTH, message, v);
            }
        }
        if let Some(re) = c.pattern.as_ref().filter(|re| !re.is_match(v)) {
            let message = format!("does not match the pattern /{re}/");
            issue(ctx, field, i, CODE_PATTERN, message, v);
        }
        if let Some(format) = &c.format {
            if let Some(expected) = format_error(format, v) {
                let message = format!("not a valid {expected}");
                issue(ctx, field, i, CODE_FORMAT, message, v);
            }
        }
    }
}

fn check_numbers(array: &ArrayRef, field: &XdmField, present: Option<&NullBuffer>, ctx: &mut Ctx) {
    let c = field.constraints();
    let Ok(numbers) = cast(array, &DataType::Float64) else {
        return;
    };
    for (i, v) in numbers.as_primitive::<Float64Type>().iter().enumerate() {
        let Some(v) = v else { continue };
        if present.is_some_and(|p| p.is_null(i)) {
            continue;
        }
        let shown = || super::convert::render(array, i);
        if let Some(min) = c.minimum.filter(|&m| v < m) {
            let value = shown();
            let message = format!("{value} is less than the minimum {min}");
            issue(ctx, field, i, CODE_MINIMUM, message, &value);
        }
        if let Some(max) = c.maximum.filter(|&m| v > m) {
            let value = shown();
            let message = format!("{value} is greater than the maximum {max}");
            issue(ctx, field, i, CODE_MAXIMUM, message, &value);
        }
        if !field.enum_nums.is_empty() && !field.enum_nums.contains(&v) {
            let value = shown();
            let allowed: Vec<_> = c.enum_values.iter().map(|e| e.to_string()).collect();
            let message = format!(
                "{value} is not one of the allowed values [{}]",
                allowed.join(", ")
            );
            issue(ctx, field, i, CODE_ENUM, message, &value);
        }
    }
}

/// What a value should have been, if it does not have `format`.
fn format_error(format: &Format, v: &str) -> Option<&'static str> {
    let ok = match format {
        Format::DateTime => parse_date_time_millis(v).is_some(),
        Format::Date => parse_date_days(v).is_some(),
        Format::UriReference => is_uri_reference(v),
        Format::Uri => is_uri(v),
        Format::Email => is_email(v),
        Format::Other(_) => true,
    };
    if ok {
        return None;
    }
    Some(match format {
        Format::DateTime => "RFC 3339 date-time (2019-05-15T20:20:39Z)",
        Format::Date => "date (yyyy-MM-dd)",
        Format::UriReference => "URI reference (RFC 3986)",
        Format::Uri => "absolute URI (scheme:…)",
        _ => "e-mail address",
    })
}

/// RFC 3986 URI-reference, leniently: no spaces, controls or excluded ASCII characters,
/// and every `%` starts a two-digit hex escape. Non-ASCII (IRI) characters pass.
fn is_uri_reference(v: &str) -> bool {
    let b = v.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = |j: usize| b.get(j).is_some_and(u8::is_ascii_hexdigit);
                if !(hex(i + 1) && hex(i + 2)) {
                    return false;
                }
                i += 3;
                continue;
            }
            c if c.is_ascii_control() || c == b' ' => return false,
            b'"' | b'<' | b'>' | b'\\' | b'^' | b'`' | b'{' | b'|' | b'}' => return false,
            _ => {}
        }
        i += 1;
    }
    true
}

/// An absolute URI: a scheme (`[A-Za-z][A-Za-z0-9+.-]*`), `:`, then a URI reference.
fn is_uri(v: &str) -> bool {
    let Some((scheme, _)) = v.split_once(':') else {
        return false;
    };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '.' | '-'))
        && is_uri_reference(v)
}

/// A plausible e-mail address: `local@domain`, one `@`, a dot in the domain, no spaces.
fn is_email(v: &str) -> bool {
    let Some((local, domain)) = v.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !v.chars().any(char::is_whitespace)
}
