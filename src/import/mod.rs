//! `mapping import`: a Platform (Data Prep) mapping set, as JSON, translated into a readable
//! mapping SQL file over the resource table.
//!
//! Both request forms are read: the mapping-set document (`sourceType` / `source` /
//! `destination`, possibly wrapped with `outputSchema`, `version`, …) and the Flow Service sources
//! form (`sourceAttribute` / `destinationXdmPath`).
//!
//! - Source paths drop Stripe's list envelope (`data.`) and are resolved against the resource's
//!   source schema ([`crate::decode::schema`]) into bracket access
//!   (`payment_method_details['card']['brand']`); `[n]` becomes the 1-based `[n+1]`, a trailing
//!   `[*]` copies the whole array, `\.` escapes a dot inside a name, `${…}` wraps odd names.
//! - A source path that is an object copies the whole object; sibling mappings below the same
//!   destination override single fields of the copy (Data Prep's object copy).
//! - `STATIC` becomes a literal; `EXPRESSION` (a calculated field) is translated to SQL when
//!   its syntax has an SQL equivalent. Data Prep functions are called under their own names
//!   (they are registered as UDFs), except `iif` (→ `CASE`), `min`/`max` (→ `least`/`greatest`),
//!   `nullify()` (→ `NULL`) and `contains_key("path")` (→ `path IS NOT NULL`).
//! - Destinations become nested `named_struct(…)`s, siblings merged; `_{TENANT}` becomes the
//!   `_${tenant}` placeholder.
//!
//! Whatever cannot be translated is listed in [`Imported::untranslated`] with the reason (and as a
//! comment at the top of the SQL), never dropped silently.

mod emit;
mod expr;
mod forms;
mod lex;
mod paths;
mod tree;

use serde_json::Value;

use crate::Resource;

use emit::render;
use expr::translate_expression;
use forms::{find_mappings, one_line, source_type, static_literal, value_text, SourceType};
use paths::{parse_destination, resolve_source};
use tree::{insert, Leaf, Node};

/// The result of importing a mapping set.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The mapping SQL (tenant placeholder `${tenant}` kept).
    pub sql: String,
    /// The mappings that could not be translated, in input order.
    pub untranslated: Vec<Untranslated>,
}

/// One mapping of the set that has no SQL translation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Untranslated {
    /// Index in the input `mappings` array (0-based).
    pub index: usize,
    /// The mapping's source (path, constant or expression), as written.
    pub source: String,
    /// The mapping's destination XDM path, as written.
    pub destination: String,
    /// Why it was not translated.
    pub reason: String,
}

/// Why a mapping set could not be imported at all.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The text is not JSON.
    #[error("mapping set is not valid JSON: {0}")]
    Json(String),
    /// The JSON has no `mappings` array.
    #[error("not a mapping set: {0}")]
    Shape(String),
    /// Not a single mapping could be translated.
    #[error("none of the {} mappings could be translated: {}", .untranslated.len(), summarize(.untranslated))]
    NothingTranslated {
        /// Every mapping, with its reason.
        untranslated: Vec<Untranslated>,
    },
}

fn summarize(items: &[Untranslated]) -> String {
    items
        .iter()
        .take(5)
        .map(|u| format!("mappings[{}] {}: {}", u.index, u.source, u.reason))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Maximum length of a calculated field in Data Prep.
const MAX_EXPRESSION_CHARS: usize = 4096;

/// Imports a Platform mapping set (either JSON form) as mapping SQL over `resource`'s table.
pub fn import_mapping_set(json: &str, resource: Resource) -> Result<Imported, ImportError> {
    let root: Value = serde_json::from_str(json).map_err(|e| ImportError::Json(e.to_string()))?;
    let mappings = find_mappings(&root).ok_or_else(|| {
        ImportError::Shape(
            "expected an object with a `mappings` array (or the array itself)".to_string(),
        )
    })?;
    if mappings.is_empty() {
        return Err(ImportError::Shape(
            "its `mappings` array is empty: there is nothing to import".to_string(),
        ));
    }
    let mut untranslated = Vec::new();
    let mut root_fields: Vec<(String, Node)> = Vec::new();
    let mut translated = 0usize;
    for (index, m) in mappings.iter().enumerate() {
        let source_text = m
            .get("source")
            .or_else(|| m.get("sourceAttribute"))
            .map(value_text)
            .unwrap_or_default();
        let dest_text = m
            .get("destination")
            .or_else(|| m.get("destinationXdmPath"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let mut fail = |reason: String| {
            untranslated.push(Untranslated {
                index,
                source: source_text.clone(),
                destination: dest_text.clone(),
                reason,
            })
        };
        if !m.is_object() {
            fail("a mapping must be a JSON object".into());
            continue;
        }
        let st = match source_type(m) {
            Ok(st) => st,
            Err(reason) => {
                fail(reason);
                continue;
            }
        };
        let Some(source) = m.get("source").or_else(|| m.get("sourceAttribute")) else {
            fail("the mapping has no `source` / `sourceAttribute`".into());
            continue;
        };
        if dest_text.is_empty() {
            fail("the mapping has no `destination` / `destinationXdmPath`".into());
            continue;
        }
        let dest = match parse_destination(&dest_text) {
            Ok(d) => d,
            Err(reason) => {
                fail(reason);
                continue;
            }
        };
        let identity = m.get("identity").and_then(Value::as_bool).unwrap_or(false);
        let comment = one_line(&format!(
            "mappings[{index}] {} {} -> {}{}",
            st.name(),
            source_text,
            dest_text,
            if identity { " (identity)" } else { "" }
        ));
        let translated_source = match st {
            SourceType::Attribute => match source.as_str() {
                Some(path) => resolve_source(path, resource).map(|(sql, kind)| (sql, Some(kind))),
                None => Err("an ATTRIBUTE source must be a path string".into()),
            },
            SourceType::Static => static_literal(source).map(|sql| (sql, None)),
            SourceType::Expression => match source.as_str() {
                None => Err("an EXPRESSION source must be a string".into()),
                Some(text) if text.chars().count() > MAX_EXPRESSION_CHARS => Err(format!(
                    "calculated field longer than Data Prep's limit of {MAX_EXPRESSION_CHARS} characters"
                )),
                Some(text) => translate_expression(text, resource)
                    .map(|sql| (sql, None))
                    .map_err(|reason| format!("expression not translated: {reason}")),
            },
        };
        let leaf = match translated_source {
            Ok((sql, kind)) => Leaf {
                sql,
                kind,
                comment: Some(comment),
                implicit: false,
            },
            Err(reason) => {
                fail(reason);
                continue;
            }
        };
        match insert(&mut root_fields, &dest, 0, leaf, index) {
            Ok(()) => translated += 1,
            Err(reason) => fail(reason),
        }
    }
    if translated == 0 {
        return Err(ImportError::NothingTranslated { untranslated });
    }
    let sql = render(
        resource,
        mappings.len(),
        translated,
        &root_fields,
        &untranslated,
    );
    Ok(Imported { sql, untranslated })
}
