//! Checking a mapping's output schema against the XDM schema before a run.

use std::fmt;

use arrow::datatypes::{DataType, Fields, Schema};

use super::schema::{XdmField, XdmSchema, XdmType};

/// What kind of mismatch a [`SchemaProblem`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    /// The mapping produces a column (at any nesting level) the XDM schema does not have.
    UnknownColumn,
    /// A required field the mapping never produces.
    MissingRequired,
    /// A column whose type cannot be converted to the field's XDM type.
    IncompatibleType,
}

/// One mismatch between a mapping's output and the XDM schema, with a suggested fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaProblem {
    /// Dotted path of the column or field (`_acme.items[].sku`).
    pub path: String,
    /// The kind of problem.
    pub kind: ProblemKind,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl fmt::Display for SchemaProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

impl XdmSchema {
    /// Compares a mapping's output schema with this schema: columns the schema lacks,
    /// required fields never produced, and types that cannot be converted. Types that
    /// convert value by value (a string into a date-time, Int64 into Integer with a range
    /// check, an integral float into Long) are fine here; bad values surface in
    /// [`validate`](super::validate) as warnings.
    pub fn check_output(&self, mapped: &Schema) -> Vec<SchemaProblem> {
        let mut out = Vec::new();
        check_fields(mapped.fields(), self.fields(), "", &mut out);
        out
    }
}

fn check_fields(columns: &Fields, fields: &[XdmField], parent: &str, out: &mut Vec<SchemaProblem>) {
    for col in columns {
        match fields.iter().find(|f| f.name() == col.name()) {
            Some(f) => check_type(col.data_type(), f, out),
            None => out.push(unknown_column(col.name(), fields, parent)),
        }
    }
    for f in fields.iter().filter(|f| f.required()) {
        if !columns.iter().any(|c| c.name() == f.name()) {
            out.push(SchemaProblem {
                path: f.path().to_string(),
                kind: ProblemKind::MissingRequired,
                message: format!(
                    "required field is never produced; add it to the SELECT (… AS \"{}\")",
                    f.name()
                ),
            });
        }
    }
}

fn unknown_column(name: &str, fields: &[XdmField], parent: &str) -> SchemaProblem {
    let path = if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}.{name}")
    };
    let hint = match fields.iter().find(|f| f.name().eq_ignore_ascii_case(name)) {
        Some(f) => format!(
            "; did you mean \"{}\"? SQL folds unquoted identifiers to lower case, quote the alias",
            f.name()
        ),
        None => "; drop it from the SELECT or add the field to the XDM schema".to_string(),
    };
    SchemaProblem {
        path,
        kind: ProblemKind::UnknownColumn,
        message: format!("column is not in the XDM schema{hint}"),
    }
}

fn incompatible(f: &XdmField, found: &DataType, fix: String) -> SchemaProblem {
    SchemaProblem {
        path: f.path().to_string(),
        kind: ProblemKind::IncompatibleType,
        message: format!(
            "{found} cannot be converted to XDM {} ({}); {fix}",
            f.xdm_type().name(),
            f.xdm_type().arrow_type()
        ),
    }
}

/// Strips encodings that do not change the logical type (dictionaries).
pub(crate) fn logical(dt: &DataType) -> &DataType {
    match dt {
        DataType::Dictionary(_, v) => logical(v),
        other => other,
    }
}

fn check_type(found: &DataType, f: &XdmField, out: &mut Vec<SchemaProblem>) {
    let found = logical(found);
    match (found, f.xdm_type()) {
        (DataType::Null, _) => {}
        (DataType::Struct(cols), XdmType::Object(children)) => {
            check_fields(cols, children, f.path(), out)
        }
        (
            DataType::List(item) | DataType::LargeList(item) | DataType::FixedSizeList(item, _),
            XdmType::Array(item_f),
        ) => check_type(item.data_type(), item_f, out),
        (DataType::Map(entries, _), XdmType::Map(value_f)) => match entries.data_type() {
            DataType::Struct(kv) if kv.len() == 2 => {
                if !is_string(logical(kv[0].data_type())) {
                    let fix = "map keys must be strings: CAST the keys AS VARCHAR".to_string();
                    out.push(incompatible(f, found, fix));
                }
                check_type(kv[1].data_type(), value_f, out)
            }
            _ => out.push(incompatible(f, found, "malformed map".into())),
        },
        (_, XdmType::Object(_)) => {
            let fix = "build it with named_struct('field', value, …) or struct(…)".into();
            out.push(incompatible(f, found, fix))
        }
        (_, XdmType::Array(_)) => out.push(incompatible(
            f,
            found,
            "build it with make_array(…) or array_agg".into(),
        )),
        (_, XdmType::Map(_)) => out.push(incompatible(
            f,
            found,
            "build it with map([keys], [values])".into(),
        )),
        (found, target) => {
            if let Err(fix) = leaf_compat(found, target) {
                out.push(incompatible(f, found, fix))
            }
        }
    }
}

pub(crate) fn is_string(dt: &DataType) -> bool {
    matches!(
        dt,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    )
}

fn is_int(dt: &DataType) -> bool {
    dt.is_integer()
}

pub(crate) fn is_float(dt: &DataType) -> bool {
    matches!(
        dt,
        DataType::Float16
            | DataType::Float32
            | DataType::Float64
            | DataType::Decimal32(..)
            | DataType::Decimal64(..)
            | DataType::Decimal128(..)
            | DataType::Decimal256(..)
    )
}

/// Whether a scalar column type converts to a scalar XDM type (Platform's conversion
/// matrix, §2.7); the error is the suggested fix.
pub(crate) fn leaf_compat(found: &DataType, target: &XdmType) -> Result<(), String> {
    let numeric = is_int(found) || is_float(found);
    let ok = match target {
        XdmType::String => is_string(found) || numeric,
        XdmType::Double => is_string(found) || numeric,
        t if t.is_integer() => is_string(found) || numeric,
        XdmType::Boolean => is_string(found) || matches!(found, DataType::Boolean),
        XdmType::Date => is_string(found) || matches!(found, DataType::Date32 | DataType::Date64),
        XdmType::DateTime => is_string(found) || matches!(found, DataType::Timestamp(..)),
        _ => false,
    };
    if ok {
        return Ok(());
    }
    Err(match (target, found) {
        (XdmType::DateTime, f) if is_int(f) => "epoch numbers are ambiguous: use to_timestamp_seconds(x) \
             or to_timestamp_millis(x)"
            .into(),
        (XdmType::DateTime, DataType::Date32 | DataType::Date64) => "cast with CAST(x AS TIMESTAMP)".into(),
        (XdmType::Date, f) if is_int(f) => {
            "epoch numbers are ambiguous: use CAST(to_timestamp_seconds(x) AS DATE)".into()
        }
        (XdmType::Date, DataType::Timestamp(..)) => "cast with CAST(x AS DATE)".into(),
        (XdmType::String, DataType::Date32 | DataType::Date64 | DataType::Timestamp(..)) => {
            "format it with to_char(x, '%Y-%m-%dT%H:%M:%S%.3fZ') or map it to a date/date-time field".into()
        }
        (XdmType::String, DataType::Boolean) => {
            "booleans do not convert: use CASE WHEN x THEN 'true' ELSE 'false' END".into()
        }
        (XdmType::Boolean, f) if numeric_like(f) => "use x <> 0".into(),
        (t, DataType::Struct(_)) => format!(
            "a struct where a {} is expected: select one of its fields (x['field'])",
            t.name()
        ),
        (t, DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..)) => format!(
            "a list where a {} is expected: pick an element (x[1]) or make the field an array",
            t.name()
        ),
        (t, _) => format!("cast with CAST(x AS {})", sql_type(t)),
    })
}

fn numeric_like(dt: &DataType) -> bool {
    is_int(dt) || is_float(dt)
}

/// The SQL type name that yields a type's Arrow type in DataFusion.
pub(crate) fn sql_type(t: &XdmType) -> &'static str {
    match t {
        XdmType::String => "VARCHAR",
        XdmType::Double => "DOUBLE",
        XdmType::Long => "BIGINT",
        XdmType::Integer => "INT",
        XdmType::Short => "SMALLINT",
        XdmType::Byte => "TINYINT",
        XdmType::Date => "DATE",
        XdmType::DateTime => "TIMESTAMP",
        XdmType::Boolean => "BOOLEAN",
        _ => "…",
    }
}
