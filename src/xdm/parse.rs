//! Parsing Platform's XDM JSON Schema (compatibility mode) into [`XdmSchema`].

use std::sync::Arc;

use arrow::datatypes::Schema;
use regex::Regex;
use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::schema::{
    Behavior, Constraints, Format, Identity, XdmField, XdmSchema, XdmType, LONG_MAXS, LONG_MINS,
};
use super::XdmError;

impl XdmSchema {
    pub(super) fn parse_text(text: &str, origin: &str) -> Result<XdmSchema, XdmError> {
        let json_err = |source| XdmError::Json {
            origin: origin.to_string(),
            source,
        };
        let value: Value = serde_json::from_str(text).map_err(json_err)?;
        // serde_json's map is sorted; a second pass keeps the schema's property order.
        let order: KeyOrder = serde_json::from_str(text).map_err(json_err)?;
        XdmSchema::parse(&value, Some(&order))
    }

    pub(super) fn parse(root: &Value, order: Option<&KeyOrder>) -> Result<XdmSchema, XdmError> {
        let obj = root
            .as_object()
            .ok_or_else(|| err("#", "an XDM schema must be a JSON object"))?;
        let text = |k: &str| obj.get(k).and_then(Value::as_str).map(str::to_string);
        let class = text("meta:class");
        let behavior = behavior_of(obj, class.as_deref())?;
        let mut fields = parse_properties(obj, order, "#", "")?;
        if behavior == Behavior::TimeSeries {
            // ExperienceEvent: `"required": ["@id", "xdm:timestamp"]`.
            for f in fields.iter_mut() {
                if f.name == "_id" || f.name == "timestamp" {
                    f.required = true;
                }
            }
        }
        let arrow = Arc::new(Schema::new(
            fields.iter().map(XdmField::arrow_field).collect::<Vec<_>>(),
        ));
        let mut schema = XdmSchema {
            id: text("$id"),
            title: text("title"),
            class,
            behavior,
            fields,
            identities: Vec::new(),
            arrow,
        };
        schema.identities = parse_descriptors(obj, &schema)?;
        Ok(schema)
    }
}

fn err(pointer: &str, message: impl Into<String>) -> XdmError {
    XdmError::Schema {
        pointer: pointer.to_string(),
        message: message.into(),
    }
}

/// Escapes a property name for a JSON pointer (`~` → `~0`, `/` → `~1`).
fn escape(name: &str) -> String {
    name.replace('~', "~0").replace('/', "~1")
}

fn behavior_of(obj: &Map<String, Value>, class: Option<&str>) -> Result<Behavior, XdmError> {
    for key in ["meta:behaviorType", "meta:behavior"] {
        if let Some(v) = obj.get(key) {
            return match v.as_str() {
                Some("time-series") => Ok(Behavior::TimeSeries),
                Some("record") => Ok(Behavior::Record),
                _ => Err(err(
                    &format!("#/{key}"),
                    format!("unknown behavior {v} (expected \"record\" or \"time-series\")"),
                )),
            };
        }
    }
    let mut refs: Vec<&str> = class.into_iter().collect();
    if let Some(Value::Array(ext)) = obj.get("meta:extends") {
        refs.extend(ext.iter().filter_map(Value::as_str));
    }
    let time_series = refs
        .iter()
        .any(|r| r.ends_with("/time-series") || r.ends_with("/experienceevent"));
    Ok(if time_series {
        Behavior::TimeSeries
    } else {
        Behavior::Record
    })
}

fn parse_properties(
    obj: &Map<String, Value>,
    order: Option<&KeyOrder>,
    pointer: &str,
    parent_path: &str,
) -> Result<Vec<XdmField>, XdmError> {
    if obj.contains_key("allOf") && !obj.contains_key("properties") {
        return Err(err(
            pointer,
            "schema uses allOf/$ref: export it resolved (Accept: application/vnd.adobe.xed-full+json)",
        ));
    }
    let props = match obj.get("properties") {
        Some(Value::Object(p)) => p,
        Some(_) => return Err(err(pointer, "\"properties\" must be an object")),
        None => return Err(err(pointer, "object has no \"properties\"")),
    };
    let mut required: Vec<&str> = Vec::new();
    if let Some(r) = obj.get("required") {
        let list = r
            .as_array()
            .ok_or_else(|| err(&format!("{pointer}/required"), "must be an array"))?;
        for (i, name) in list.iter().enumerate() {
            let here = format!("{pointer}/required/{i}");
            let name = name
                .as_str()
                .ok_or_else(|| err(&here, "must be a string"))?;
            if !props.contains_key(name) {
                return Err(err(
                    &here,
                    format!("required property {name:?} is not defined"),
                ));
            }
            required.push(name);
        }
    }
    let props_order = order.and_then(|o| o.child("properties"));
    let ordered: Vec<(&String, &Value)> = match props_order {
        Some(o) => {
            o.0.iter()
                .filter_map(|(k, _)| props.get_key_value(k))
                .collect()
        }
        None => props.iter().collect(),
    };
    ordered
        .into_iter()
        .map(|(name, def)| {
            let order = props_order.and_then(|o| o.child(name));
            let here = format!("{pointer}/properties/{}", escape(name));
            let path = if parent_path.is_empty() {
                name.clone()
            } else {
                format!("{parent_path}.{name}")
            };
            parse_field(
                name,
                def,
                order,
                &here,
                path,
                required.contains(&name.as_str()),
            )
        })
        .collect()
}

fn parse_field(
    name: &str,
    def: &Value,
    order: Option<&KeyOrder>,
    pointer: &str,
    path: String,
    required: bool,
) -> Result<XdmField, XdmError> {
    let def = def
        .as_object()
        .ok_or_else(|| err(pointer, "a property definition must be an object"))?;
    if let Some(r) = def.get("$ref") {
        return Err(err(
            pointer,
            format!(
                "unresolved $ref {r} (export the schema as application/vnd.adobe.xed-full+json)"
            ),
        ));
    }
    let hint = def.get("meta:xdmType").and_then(Value::as_str);
    let ty = match def.get("type") {
        Some(Value::String(t)) => t.as_str(),
        Some(other) => return Err(err(pointer, format!("unknown type {other}"))),
        None if def.contains_key("properties") => "object",
        None => return Err(err(pointer, "missing \"type\"")),
    };
    let format = def.get("format").and_then(Value::as_str).map(Format::parse);
    let bad_hint = |h: &str| {
        err(
            pointer,
            format!("meta:xdmType {h:?} does not fit type {ty:?}"),
        )
    };
    let xdm_type = match ty {
        "string" => match (hint, &format) {
            (Some("date-time"), _) | (None, Some(Format::DateTime)) => XdmType::DateTime,
            (Some("date"), _) | (None, Some(Format::Date)) => XdmType::Date,
            (Some("string") | None, _) => XdmType::String,
            (Some(h), _) => return Err(bad_hint(h)),
        },
        "number" => match hint {
            None | Some("number" | "double") => XdmType::Double,
            Some(h) => return Err(bad_hint(h)),
        },
        "integer" => integer_type(def, hint, pointer)?,
        "boolean" => XdmType::Boolean,
        "object" => {
            let is_map = hint == Some("map")
                || (!def.contains_key("properties") && def.contains_key("additionalProperties"));
            if is_map {
                XdmType::Map(Box::new(map_value(def, order, pointer, &path)?))
            } else {
                XdmType::Object(parse_properties(def, order, pointer, &path)?)
            }
        }
        "array" => {
            let items = def
                .get("items")
                .ok_or_else(|| err(pointer, "array without \"items\""))?;
            let item_order = order.and_then(|o| o.child("items"));
            let here = format!("{pointer}/items");
            let item = parse_field("item", items, item_order, &here, format!("{path}[]"), false)?;
            XdmType::Array(Box::new(item))
        }
        other => return Err(err(pointer, format!("unknown type {other:?}"))),
    };
    let (constraints, range) = parse_constraints(def, pointer, &xdm_type, format)?;
    let enum_strs = constraints
        .enum_values
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    let enum_nums = constraints
        .enum_values
        .iter()
        .filter_map(Value::as_f64)
        .collect();
    Ok(XdmField {
        name: name.to_string(),
        path,
        title: def.get("title").and_then(Value::as_str).map(str::to_string),
        description: def
            .get("description")
            .and_then(Value::as_str)
            .map(str::to_string),
        xdm_type,
        required,
        constraints,
        range,
        enum_strs,
        enum_nums,
        profile_identity: None,
    })
}

/// The standard XDM field for a record's identities by namespace.
pub const IDENTITY_MAP: &str = "identityMap";

fn map_value(
    def: &Map<String, Value>,
    order: Option<&KeyOrder>,
    pointer: &str,
    path: &str,
) -> Result<XdmField, XdmError> {
    let here = format!("{pointer}/additionalProperties");
    let ap = def
        .get("additionalProperties")
        .ok_or_else(|| err(pointer, "map without \"additionalProperties\""))?;
    let ap_order = order.and_then(|o| o.child("additionalProperties"));
    let field = parse_field("value", ap, ap_order, &here, format!("{path}[]"), false)?;
    match field.xdm_type {
        XdmType::String | XdmType::Long => Ok(field),
        // The standard `identityMap` (namespace code → identities) is the one map whose values
        // are arrays of objects.
        XdmType::Array(_) if path == IDENTITY_MAP => Ok(field),
        ref t => Err(err(
            &here,
            format!("map values must be string or integer, not {}", t.name()),
        )),
    }
}

/// The standard integer type whose documented bounds are exactly `min`/`max`.
fn standard_integer(min: i64, max: i64) -> Option<XdmType> {
    match (min, max) {
        (-128, 127 | 128) => Some(XdmType::Byte),
        (-32_768, 32_767 | 32_768) => Some(XdmType::Short),
        (-2_147_483_648, 2_147_483_647 | 2_147_483_648) => Some(XdmType::Integer),
        _ if LONG_MINS.contains(&min) && LONG_MAXS.contains(&max) => Some(XdmType::Long),
        _ => None,
    }
}

fn integer_type(
    def: &Map<String, Value>,
    hint: Option<&str>,
    pointer: &str,
) -> Result<XdmType, XdmError> {
    let bounds = (
        def.get("minimum").and_then(Value::as_i64),
        def.get("maximum").and_then(Value::as_i64),
    );
    Ok(match hint {
        Some("long") => XdmType::Long,
        Some("int" | "integer") => XdmType::Integer,
        Some("short") => XdmType::Short,
        Some("byte") => XdmType::Byte,
        Some(h) => {
            return Err(err(
                pointer,
                format!("meta:xdmType {h:?} does not fit type \"integer\""),
            ))
        }
        None => match bounds {
            (Some(min), Some(max)) => standard_integer(min, max).unwrap_or(XdmType::Long),
            _ => XdmType::Long,
        },
    })
}

type Parsed = (Constraints, Option<(i64, i64)>);

fn parse_constraints(
    def: &Map<String, Value>,
    pointer: &str,
    ty: &XdmType,
    format: Option<Format>,
) -> Result<Parsed, XdmError> {
    let at = |k: &str| format!("{pointer}/{k}");
    let uint = |k: &str| -> Result<Option<u64>, XdmError> {
        def.get(k)
            .map(|v| {
                v.as_u64()
                    .ok_or_else(|| err(&at(k), "must be a non-negative integer"))
            })
            .transpose()
    };
    let num = |k: &str| -> Result<Option<f64>, XdmError> {
        def.get(k)
            .map(|v| v.as_f64().ok_or_else(|| err(&at(k), "must be a number")))
            .transpose()
    };
    let mut c = Constraints {
        min_length: uint("minLength")?,
        max_length: uint("maxLength")?,
        minimum: num("minimum")?,
        maximum: num("maximum")?,
        // Date and DateTime values are converted, so their format is intrinsic.
        format: format.filter(|_| matches!(ty, XdmType::String)),
        default: def.get("default").cloned(),
        ..Constraints::default()
    };
    if let Some(p) = def.get("pattern") {
        let p = p
            .as_str()
            .ok_or_else(|| err(&at("pattern"), "must be a string"))?;
        let re = Regex::new(p)
            .map_err(|e| err(&at("pattern"), format!("invalid pattern {p:?}: {e}")))?;
        c.pattern = Some(re);
    }
    if let Some(e) = def.get("enum") {
        let values = e
            .as_array()
            .ok_or_else(|| err(&at("enum"), "must be an array"))?;
        let fits = |v: &Value| match ty {
            XdmType::String | XdmType::Date | XdmType::DateTime => v.is_string(),
            XdmType::Double => v.is_number(),
            t if t.is_integer() => v.is_i64() || v.is_u64(),
            XdmType::Boolean => v.is_boolean(),
            _ => false,
        };
        if let Some(bad) = values.iter().position(|v| !fits(v)) {
            return Err(err(
                &format!("{pointer}/enum/{bad}"),
                format!("enum value {} does not fit type {}", values[bad], ty.name()),
            ));
        }
        c.enum_values = values.clone();
    }
    let mut range = ty.physical_range();
    if let (Some((lo, hi)), Some(min), Some(max)) = (range, c.minimum, c.maximum) {
        let type_bounds = standard_integer(min as i64, max as i64)
            .is_some_and(|t| t.name() == ty.name())
            && min.fract() == 0.0
            && max.fract() == 0.0;
        if type_bounds {
            // The bounds define the type; conversion enforces them (within the physical type).
            range = Some(match ty {
                XdmType::Long => (min as i64, max as i64),
                _ => ((min as i64).max(lo), (max as i64).min(hi)),
            });
            c.minimum = None;
            c.maximum = None;
        }
    }
    Ok((c, range))
}

fn parse_descriptors(
    obj: &Map<String, Value>,
    schema: &XdmSchema,
) -> Result<Vec<Identity>, XdmError> {
    let Some(list) = obj.get("descriptors") else {
        return Ok(Vec::new());
    };
    let list = list
        .as_array()
        .ok_or_else(|| err("#/descriptors", "must be an array"))?;
    let mut out: Vec<Identity> = Vec::new();
    for (i, d) in list.iter().enumerate() {
        let here = format!("#/descriptors/{i}");
        if d.get("@type").and_then(Value::as_str) != Some("xdm:descriptorIdentity") {
            continue;
        }
        let get = |k: &str| {
            d.get(k)
                .and_then(Value::as_str)
                .ok_or_else(|| err(&here, format!("identity descriptor without {k:?}")))
        };
        let source = get("xdm:sourceProperty")?;
        let namespace = get("xdm:namespace")?;
        let path = source
            .trim_start_matches('/')
            .split('/')
            .map(|s| s.replace("~1", "/").replace("~0", "~"))
            .collect::<Vec<_>>()
            .join(".");
        match schema.field(&path).map(XdmField::xdm_type) {
            None => {
                return Err(err(
                    &here,
                    format!("identity field {source} is not in the schema"),
                ))
            }
            Some(XdmType::Object(_) | XdmType::Array(_) | XdmType::Map(_)) => {
                return Err(err(
                    &here,
                    format!("identity field {source} is not a scalar"),
                ))
            }
            Some(_) => {}
        }
        let primary = d
            .get("xdm:isPrimary")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if primary {
            if let Some(p) = out.iter().find(|p| p.primary) {
                return Err(err(
                    &here,
                    format!(
                        "a second primary identity ({source}; {} is primary already)",
                        p.source_property
                    ),
                ));
            }
        }
        out.push(Identity {
            path,
            source_property: source.to_string(),
            namespace: namespace.to_string(),
            primary,
        });
    }
    Ok(out)
}

/// The key order of every JSON object in a document (arrays and scalars are skipped),
/// deserialized next to the `Value` because `serde_json::Map` sorts its keys.
#[derive(Debug, Default)]
pub(super) struct KeyOrder(Vec<(String, KeyOrder)>);

impl KeyOrder {
    fn child(&self, key: &str) -> Option<&KeyOrder> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, o)| o)
    }
}

impl<'de> Deserialize<'de> for KeyOrder {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(KeyOrderVisitor)
    }
}

struct KeyOrderVisitor;

impl<'de> Visitor<'de> for KeyOrderVisitor {
    type Value = KeyOrder;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<KeyOrder, A::Error> {
        let mut keys = Vec::new();
        while let Some(entry) = map.next_entry::<String, KeyOrder>()? {
            keys.push(entry);
        }
        Ok(KeyOrder(keys))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<KeyOrder, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(KeyOrder::default())
    }
    fn visit_bool<E>(self, _: bool) -> Result<KeyOrder, E> {
        Ok(KeyOrder::default())
    }
    fn visit_i64<E>(self, _: i64) -> Result<KeyOrder, E> {
        Ok(KeyOrder::default())
    }
    fn visit_u64<E>(self, _: u64) -> Result<KeyOrder, E> {
        Ok(KeyOrder::default())
    }
    fn visit_f64<E>(self, _: f64) -> Result<KeyOrder, E> {
        Ok(KeyOrder::default())
    }
    fn visit_str<E>(self, _: &str) -> Result<KeyOrder, E> {
        Ok(KeyOrder::default())
    }
    fn visit_unit<E>(self) -> Result<KeyOrder, E> {
        Ok(KeyOrder::default())
    }
}
