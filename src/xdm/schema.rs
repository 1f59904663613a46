//! The XDM schema model: parsing Platform's JSON Schema and its Arrow (Parquet) shape.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Fields, SchemaRef, TimeUnit};
use regex::Regex;
use serde_json::Value;

use super::XdmError;

/// Long bounds as the docs write them (±2^53 and ±(2^53 − 1) both occur).
pub(super) const LONG_MINS: [i64; 2] = [-9_007_199_254_740_992, -9_007_199_254_740_991];
pub(super) const LONG_MAXS: [i64; 2] = [9_007_199_254_740_992, 9_007_199_254_740_991];
/// Range of a Long whose schema declares no bounds (the field-constraints table).
const LONG_RANGE: (i64, i64) = (-9_007_199_254_740_991, 9_007_199_254_740_991);

/// Whether records of a schema describe subjects (record) or events (time series).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behavior {
    /// Attributes of a subject (XDM Individual Profile and other record classes).
    Record,
    /// A snapshot at the time of an action (XDM ExperienceEvent): `_id` and `timestamp` required.
    TimeSeries,
}

/// The XDM type of a field; containers carry their sub-fields.
#[derive(Debug, Clone)]
pub enum XdmType {
    /// `string` → Utf8.
    String,
    /// `number` → Float64.
    Double,
    /// 53-bit `integer` → Int64.
    Long,
    /// 32-bit `integer` → Int32.
    Integer,
    /// 16-bit `integer` → Int16.
    Short,
    /// 8-bit `integer` → Int8.
    Byte,
    /// `string` + `format: date` → Date32.
    Date,
    /// `string` + `format: date-time` → Timestamp(Millisecond, "UTC").
    DateTime,
    /// `boolean` → Boolean.
    Boolean,
    /// `object` + `properties` → Struct.
    Object(Vec<XdmField>),
    /// `array` + `items` → List (item field `item`); the item is a field named `item`.
    Array(Box<XdmField>),
    /// `object` + `meta:xdmType: map` → Map<Utf8, value>; the value is a field named `value`.
    Map(Box<XdmField>),
}

impl XdmType {
    /// The XDM name of the type (`long`, `date-time`, `object`, …).
    pub fn name(&self) -> &'static str {
        match self {
            XdmType::String => "string",
            XdmType::Double => "double",
            XdmType::Long => "long",
            XdmType::Integer => "int",
            XdmType::Short => "short",
            XdmType::Byte => "byte",
            XdmType::Date => "date",
            XdmType::DateTime => "date-time",
            XdmType::Boolean => "boolean",
            XdmType::Object(_) => "object",
            XdmType::Array(_) => "array",
            XdmType::Map(_) => "map",
        }
    }

    /// The Arrow type written to Parquet (§4.4 of the Platform notes); every field nullable.
    pub fn arrow_type(&self) -> DataType {
        match self {
            XdmType::String => DataType::Utf8,
            XdmType::Double => DataType::Float64,
            XdmType::Long => DataType::Int64,
            XdmType::Integer => DataType::Int32,
            XdmType::Short => DataType::Int16,
            XdmType::Byte => DataType::Int8,
            XdmType::Date => DataType::Date32,
            XdmType::DateTime => DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            XdmType::Boolean => DataType::Boolean,
            XdmType::Object(children) => {
                DataType::Struct(children.iter().map(XdmField::arrow_field).collect())
            }
            XdmType::Array(item) => DataType::List(Arc::new(item.arrow_field())),
            XdmType::Map(value) => {
                let entries = Fields::from(vec![
                    Field::new("key", DataType::Utf8, false),
                    value.arrow_field(),
                ]);
                DataType::Map(
                    Arc::new(Field::new("entries", DataType::Struct(entries), false)),
                    false,
                )
            }
        }
    }

    /// Whether the type is Long, Integer, Short or Byte.
    pub fn is_integer(&self) -> bool {
        matches!(
            self,
            XdmType::Long | XdmType::Integer | XdmType::Short | XdmType::Byte
        )
    }

    pub(super) fn physical_range(&self) -> Option<(i64, i64)> {
        match self {
            XdmType::Long => Some(LONG_RANGE),
            XdmType::Integer => Some((i32::MIN.into(), i32::MAX.into())),
            XdmType::Short => Some((i16::MIN.into(), i16::MAX.into())),
            XdmType::Byte => Some((i8::MIN.into(), i8::MAX.into())),
            _ => None,
        }
    }
}

/// A JSON Schema `format` a string field may declare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Format {
    /// RFC 3339 §5.6 date-time (`datetime` is read as this too).
    DateTime,
    /// `yyyy-MM-dd`.
    Date,
    /// An absolute URI (has a scheme).
    Uri,
    /// A URI or relative reference (RFC 3986).
    UriReference,
    /// An e-mail address.
    Email,
    /// Any other format: kept, not checked.
    Other(String),
}

impl Format {
    pub(super) fn parse(s: &str) -> Format {
        match s {
            "date-time" | "datetime" => Format::DateTime,
            "date" => Format::Date,
            "uri" => Format::Uri,
            "uri-reference" => Format::UriReference,
            "email" => Format::Email,
            other => Format::Other(other.to_string()),
        }
    }
}

/// The validation keywords of one field. Integer bounds that only define the type
/// (Long/Integer/Short/Byte) are not constraints: they are enforced by conversion.
#[derive(Debug, Clone, Default)]
pub struct Constraints {
    /// `enum`: allowed values (empty = any).
    pub enum_values: Vec<Value>,
    /// `pattern`, compiled once (unanchored, as in JSON Schema).
    pub pattern: Option<Regex>,
    /// `minLength` in characters.
    pub min_length: Option<u64>,
    /// `maxLength` in characters.
    pub max_length: Option<u64>,
    /// `minimum` (inclusive).
    pub minimum: Option<f64>,
    /// `maximum` (inclusive).
    pub maximum: Option<f64>,
    /// `format`.
    pub format: Option<Format>,
    /// `default` (informative; not filled in).
    pub default: Option<Value>,
}

impl Constraints {
    /// Whether any row-level keyword is set (`default` does not count).
    pub fn is_empty(&self) -> bool {
        self.enum_values.is_empty()
            && self.pattern.is_none()
            && self.min_length.is_none()
            && self.max_length.is_none()
            && self.minimum.is_none()
            && self.maximum.is_none()
            && self.format.is_none()
    }
}

/// One field of an XDM schema, with its sub-fields for objects, arrays and maps.
#[derive(Debug, Clone)]
pub struct XdmField {
    pub(super) name: String,
    pub(super) path: String,
    pub(super) title: Option<String>,
    pub(super) description: Option<String>,
    pub(super) xdm_type: XdmType,
    pub(super) required: bool,
    pub(super) constraints: Constraints,
    pub(super) range: Option<(i64, i64)>,
    pub(super) enum_strs: HashSet<String>,
    pub(super) enum_nums: Vec<f64>,
    /// The identity namespace when this field is the primary identity a Profile-enabled
    /// dataset requires ([`XdmSchema::for_profile`]).
    pub(super) profile_identity: Option<String>,
}

impl XdmField {
    /// The property name (`item` for array items, `value` for map values).
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Dotted path from the root (`_acme.amount`); array items and map values add `[]`
    /// (`_acme.items[].sku`).
    pub fn path(&self) -> &str {
        &self.path
    }
    /// `title`, if any.
    pub fn title(&self) -> Option<&str> {
        self.title.as_deref()
    }
    /// `description`, if any.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }
    /// The XDM type (with sub-fields for containers).
    pub fn xdm_type(&self) -> &XdmType {
        &self.xdm_type
    }
    /// Whether the enclosing object's `required` lists this field.
    pub fn required(&self) -> bool {
        self.required
    }
    /// The validation keywords.
    pub fn constraints(&self) -> &Constraints {
        &self.constraints
    }
    /// For integer types, the inclusive range a value must fit to convert
    /// (Integer: −2147483648..=2147483647; Long: as the schema declares, else ±(2^53 − 1)).
    pub fn value_range(&self) -> Option<(i64, i64)> {
        self.range
    }
    /// Sub-fields of an object (empty otherwise).
    pub fn children(&self) -> &[XdmField] {
        match &self.xdm_type {
            XdmType::Object(c) => c,
            _ => &[],
        }
    }
    /// The Arrow field of this XDM field (always nullable).
    pub fn arrow_field(&self) -> Field {
        Field::new(&self.name, self.xdm_type.arrow_type(), true)
    }

    /// Whether validation has anything to check at or below this field.
    pub(crate) fn needs_check(&self) -> bool {
        self.required
            || !self.constraints.is_empty()
            || match &self.xdm_type {
                XdmType::Object(c) => c.iter().any(XdmField::needs_check),
                XdmType::Array(f) | XdmType::Map(f) => f.needs_check(),
                _ => false,
            }
    }

    fn visit<'a>(&'a self, out: &mut Vec<&'a XdmField>) {
        out.push(self);
        match &self.xdm_type {
            XdmType::Object(c) => c.iter().for_each(|f| f.visit(out)),
            XdmType::Array(f) | XdmType::Map(f) => f.visit(out),
            _ => {}
        }
    }
}

/// An identity field declared by an `xdm:descriptorIdentity` descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Dotted path of the field (`_acme.email`).
    pub path: String,
    /// The descriptor's `xdm:sourceProperty` (`/_acme/email`).
    pub source_property: String,
    /// Identity namespace code (`Email`, `ECID`, a custom code).
    pub namespace: String,
    /// `xdm:isPrimary` (defaults to false).
    pub primary: bool,
}

/// A parsed XDM schema: fields, behavior, identities and the Arrow schema of its Parquet files.
#[derive(Debug, Clone)]
pub struct XdmSchema {
    pub(super) id: Option<String>,
    pub(super) title: Option<String>,
    pub(super) class: Option<String>,
    pub(super) behavior: Behavior,
    pub(super) fields: Vec<XdmField>,
    pub(super) identities: Vec<Identity>,
    pub(super) arrow: SchemaRef,
}

impl XdmSchema {
    /// Parses a schema from JSON text (Platform's compatibility-mode, fully resolved form).
    pub fn from_json_str(text: &str) -> Result<XdmSchema, XdmError> {
        XdmSchema::parse_text(text, "")
    }

    /// Reads and parses a schema file.
    pub fn from_file(path: &Path) -> Result<XdmSchema, XdmError> {
        let text = std::fs::read_to_string(path).map_err(|source| XdmError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        XdmSchema::parse_text(&text, &path.display().to_string())
    }

    /// Parses a schema from an already parsed JSON value. `serde_json::Value` does not keep
    /// key order, so fields come out sorted by name; prefer [`XdmSchema::from_json_str`].
    pub fn from_json_value(root: &Value) -> Result<XdmSchema, XdmError> {
        XdmSchema::parse(root, None)
    }

    /// `$id`, if any.
    pub fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }
    /// `title`, if any.
    pub fn title(&self) -> Option<&str> {
        self.title.as_deref()
    }
    /// `meta:class`, if any.
    pub fn class(&self) -> Option<&str> {
        self.class.as_deref()
    }
    /// Record or time series.
    pub fn behavior(&self) -> Behavior {
        self.behavior
    }
    /// The tenant id: the name of the one top-level object field `_<tenant>` (without `_`) other
    /// than Adobe's own (`_repo`, `_experience`, …); `None` when there is none, or several.
    pub fn tenant(&self) -> Option<&str> {
        // Adobe's own underscore fields; a tenant's is the one object left.
        const ADOBE: [&str; 5] = ["_id", "_repo", "_experience", "_dc", "_acp_system_metadata"];
        let mut tenants = self.fields.iter().filter(|f| {
            f.name.starts_with('_')
                && !ADOBE.contains(&f.name.as_str())
                && matches!(f.xdm_type, XdmType::Object(_))
        });
        let tenant = tenants.next()?;
        tenants.next().is_none().then(|| &tenant.name[1..])
    }
    /// The top-level fields, in schema order; sub-fields hang below them.
    pub fn fields(&self) -> &[XdmField] {
        &self.fields
    }
    /// Every field depth-first (containers before their sub-fields, items/values included).
    pub fn all_fields(&self) -> Vec<&XdmField> {
        let mut out = Vec::new();
        self.fields.iter().for_each(|f| f.visit(&mut out));
        out
    }
    /// The field at a dotted path (`_acme.amount`, `_acme.items[].sku`).
    pub fn field(&self, path: &str) -> Option<&XdmField> {
        self.all_fields().into_iter().find(|f| f.path == path)
    }
    /// All identity descriptors.
    pub fn identities(&self) -> &[Identity] {
        &self.identities
    }
    /// The primary identity, if one is declared.
    pub fn primary_identity(&self) -> Option<&Identity> {
        self.identities.iter().find(|i| i.primary)
    }

    /// The schema as a Profile-enabled dataset applies it: the primary identity field (and
    /// the objects holding it) required, so a row without it is rejected
    /// (`INGEST-1555-400`, naming the identity) instead of failing in Profile on Platform.
    /// Fails when the schema declares no primary identity (Profile needs one).
    pub fn for_profile(&self) -> Result<XdmSchema, XdmError> {
        let Some(id) = self.primary_identity().cloned() else {
            return Err(XdmError::Schema {
                pointer: "#/descriptors".into(),
                message: format!(
                    "schema {:?} declares no primary identity (an xdm:descriptorIdentity with xdm:isPrimary true): a Profile-enabled dataset needs one",
                    self.title().or(self.id.as_deref()).unwrap_or("?")
                ),
            });
        };
        let mut out = self.clone();
        let parts: Vec<&str> = id.path.split('.').collect();
        let mut fields = &mut out.fields;
        for (k, part) in parts.iter().enumerate() {
            let Some(f) = fields.iter_mut().find(|f| f.name == *part) else {
                return Err(XdmError::Schema {
                    pointer: "#/descriptors".into(),
                    message: format!(
                        "the primary identity {} is not a field of the schema",
                        id.path
                    ),
                });
            };
            f.required = true;
            if k + 1 == parts.len() {
                f.profile_identity = Some(id.namespace.clone());
                break;
            }
            match &mut f.xdm_type {
                XdmType::Object(children) => fields = children,
                _ => {
                    return Err(XdmError::Schema {
                        pointer: "#/descriptors".into(),
                        message: format!(
                            "the primary identity {} is not reachable through objects",
                            id.path
                        ),
                    })
                }
            }
        }
        Ok(out)
    }
    /// The Arrow schema of accepted batches and Parquet files (XDM field order, all nullable).
    pub fn arrow_schema(&self) -> SchemaRef {
        Arc::clone(&self.arrow)
    }

    /// A readable tree of the fields and their types, for the CLI.
    pub fn schema_tree(&self) -> String {
        let mut out = String::new();
        let behavior = match self.behavior {
            Behavior::Record => "record",
            Behavior::TimeSeries => "time-series",
        };
        let _ = writeln!(
            out,
            "{} ({behavior}{})",
            self.title.as_deref().unwrap_or("XDM schema"),
            self.id
                .as_deref()
                .map(|i| format!(", {i}"))
                .unwrap_or_default()
        );
        tree_lines(&self.fields, "", &mut out);
        for id in &self.identities {
            let primary = if id.primary { " primary" } else { "" };
            let _ = writeln!(out, "identity{primary}: {} ({})", id.path, id.namespace);
        }
        out
    }
}

fn tree_lines(fields: &[XdmField], indent: &str, out: &mut String) {
    for (i, f) in fields.iter().enumerate() {
        let last = i + 1 == fields.len();
        let (branch, next) = if last {
            ("└── ", "    ")
        } else {
            ("├── ", "│   ")
        };
        let _ = write!(out, "{indent}{branch}{}: {}", f.name, f.xdm_type.name());
        if f.required {
            out.push_str(" (required)");
        }
        let c = &f.constraints;
        if !c.enum_values.is_empty() {
            let vals: Vec<String> = c.enum_values.iter().map(Value::to_string).collect();
            let _ = write!(out, " enum[{}]", vals.join(", "));
        }
        if let Some(p) = &c.pattern {
            let _ = write!(out, " pattern /{p}/");
        }
        if let Some(f) = &c.format {
            let _ = write!(out, " format {f:?}");
        }
        for (k, v) in [("minLength", c.min_length), ("maxLength", c.max_length)] {
            if let Some(v) = v {
                let _ = write!(out, " {k} {v}");
            }
        }
        for (k, v) in [("minimum", c.minimum), ("maximum", c.maximum)] {
            if let Some(v) = v {
                let _ = write!(out, " {k} {v}");
            }
        }
        out.push('\n');
        let sub = format!("{indent}{next}");
        match &f.xdm_type {
            XdmType::Object(c) => tree_lines(c, &sub, out),
            XdmType::Array(item) | XdmType::Map(item) => {
                tree_lines(std::slice::from_ref(item.as_ref()), &sub, out)
            }
            _ => {}
        }
    }
}
