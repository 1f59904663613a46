//! Reading the mapping-set forms: where the `mappings` array is, each mapping's source type and
//! constant values.

use serde_json::Value;

use super::emit::sql_string;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SourceType {
    Attribute,
    Static,
    Expression,
}

impl SourceType {
    pub(super) fn name(self) -> &'static str {
        match self {
            SourceType::Attribute => "ATTRIBUTE",
            SourceType::Static => "STATIC",
            SourceType::Expression => "EXPRESSION",
        }
    }
}

pub(super) fn find_mappings(root: &Value) -> Option<&Vec<Value>> {
    match root {
        Value::Array(items) => Some(items),
        Value::Object(o) => {
            if let Some(Value::Array(items)) = o.get("mappings") {
                return Some(items);
            }
            // Wrapped forms: {"mappingSet": {...}}, {"data": {...}}, transformations[].params.
            for key in ["mappingSet", "data", "params"] {
                if let Some(found) = o.get(key).and_then(find_mappings) {
                    return Some(found);
                }
            }
            None
        }
        _ => None,
    }
}

pub(super) fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub(super) fn one_line(s: &str) -> String {
    s.replace(['\r', '\n'], " ")
}

pub(super) fn source_type(m: &Value) -> Result<SourceType, String> {
    let Some(st) = m.get("sourceType") else {
        return Ok(SourceType::Attribute);
    };
    let Some(st) = st.as_str() else {
        return Err(format!("`sourceType` {st} is not a string"));
    };
    match st.to_ascii_uppercase().as_str() {
        "ATTRIBUTE" | "TEXT/X.SCHEMA-PATH" => Ok(SourceType::Attribute),
        "STATIC" | "CONSTANT" => Ok(SourceType::Static),
        "EXPRESSION" | "TEXT/X.AEP-XL" => Ok(SourceType::Expression),
        _ => Err(format!(
            "unknown sourceType `{st}` (expected ATTRIBUTE, STATIC or EXPRESSION)"
        )),
    }
}

pub(super) fn static_literal(v: &Value) -> Result<String, String> {
    Ok(match v {
        Value::String(s) => sql_string(s),
        Value::Number(n) => n.to_string(),
        Value::Bool(true) => "TRUE".into(),
        Value::Bool(false) => "FALSE".into(),
        Value::Null => "NULL".into(),
        _ => return Err("a STATIC value must be a string, number, boolean or null".into()),
    })
}
