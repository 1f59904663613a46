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

use std::fmt::Write as _;

use serde_json::Value;

use crate::decode::schema::{self, Kind};
use crate::Resource;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SourceType {
    Attribute,
    Static,
    Expression,
}

impl SourceType {
    fn name(self) -> &'static str {
        match self {
            SourceType::Attribute => "ATTRIBUTE",
            SourceType::Static => "STATIC",
            SourceType::Expression => "EXPRESSION",
        }
    }
}

/// Imports a Platform mapping set (either JSON form) as mapping SQL over `resource`'s table.
pub fn import_mapping_set(json: &str, resource: Resource) -> Result<Imported, ImportError> {
    let root: Value = serde_json::from_str(json).map_err(|e| ImportError::Json(e.to_string()))?;
    let mappings = find_mappings(&root).ok_or_else(|| {
        ImportError::Shape(
            "expected an object with a `mappings` array (or the array itself)".to_string(),
        )
    })?;
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
        let leaf = match st {
            SourceType::Attribute => {
                let Some(path) = source.as_str() else {
                    fail("an ATTRIBUTE source must be a path string".into());
                    continue;
                };
                match resolve_source(path, resource) {
                    Ok((sql, kind)) => Leaf {
                        sql,
                        kind: Some(kind),
                        comment: Some(comment),
                        implicit: false,
                    },
                    Err(reason) => {
                        fail(reason);
                        continue;
                    }
                }
            }
            SourceType::Static => match static_literal(source) {
                Ok(sql) => Leaf {
                    sql,
                    kind: None,
                    comment: Some(comment),
                    implicit: false,
                },
                Err(reason) => {
                    fail(reason);
                    continue;
                }
            },
            SourceType::Expression => {
                let Some(text) = source.as_str() else {
                    fail("an EXPRESSION source must be a string".into());
                    continue;
                };
                if text.chars().count() > MAX_EXPRESSION_CHARS {
                    fail(format!(
                        "calculated field longer than Data Prep's limit of {MAX_EXPRESSION_CHARS} characters"
                    ));
                    continue;
                }
                match translate_expression(text, resource) {
                    Ok(sql) => Leaf {
                        sql,
                        kind: None,
                        comment: Some(comment),
                        implicit: false,
                    },
                    Err(reason) => {
                        fail(format!("expression not translated: {reason}"));
                        continue;
                    }
                }
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

fn find_mappings(root: &Value) -> Option<&Vec<Value>> {
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

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn one_line(s: &str) -> String {
    s.replace(['\r', '\n'], " ")
}

fn source_type(m: &Value) -> Result<SourceType, String> {
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

fn static_literal(v: &Value) -> Result<String, String> {
    Ok(match v {
        Value::String(s) => sql_string(s),
        Value::Number(n) => n.to_string(),
        Value::Bool(true) => "TRUE".into(),
        Value::Bool(false) => "FALSE".into(),
        Value::Null => "NULL".into(),
        _ => return Err("a STATIC value must be a string, number, boolean or null".into()),
    })
}

/// A string literal in SQL.
fn sql_string(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A double-quoted SQL identifier.
fn quoted_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Words that cannot be bare identifiers (or bare function names) in DataFusion's SQL dialect.
const RESERVED: &[&str] = &[
    "ALL",
    "ALTER",
    "AND",
    "ANY",
    "ARRAY",
    "AS",
    "ASC",
    "BETWEEN",
    "BY",
    "CASE",
    "CAST",
    "CHECK",
    "COLLATE",
    "CREATE",
    "CROSS",
    "CURRENT_DATE",
    "CURRENT_TIME",
    "CURRENT_TIMESTAMP",
    "DATE",
    "DEFAULT",
    "DELETE",
    "DESC",
    "DISTINCT",
    "DROP",
    "ELSE",
    "END",
    "ESCAPE",
    "EXCEPT",
    "EXISTS",
    "FALSE",
    "FETCH",
    "FILTER",
    "FOR",
    "FORMAT",
    "FROM",
    "FULL",
    "GROUP",
    "HAVING",
    "IN",
    "INNER",
    "INSERT",
    "INTERSECT",
    "INTERVAL",
    "INTO",
    "IS",
    "JOIN",
    "KEY",
    "LATERAL",
    "LEFT",
    "LIKE",
    "LIMIT",
    "MAP",
    "NATURAL",
    "NOT",
    "NULL",
    "NULLS",
    "OFFSET",
    "ON",
    "OR",
    "ORDER",
    "OUTER",
    "OVER",
    "PARTITION",
    "PRIMARY",
    "QUALIFY",
    "RIGHT",
    "ROW",
    "ROWS",
    "SELECT",
    "SET",
    "SOME",
    "STRUCT",
    "TABLE",
    "THEN",
    "TIME",
    "TIMESTAMP",
    "TO",
    "TRUE",
    "UNION",
    "UPDATE",
    "USER",
    "USING",
    "VALUES",
    "WHEN",
    "WHERE",
    "WINDOW",
    "WITH",
];

/// An identifier, quoted only when it is not a plain lower-case name or is a keyword.
fn ident(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    let upper = s.to_ascii_uppercase();
    let keyword = RESERVED.contains(&upper.as_str());
    if plain && !keyword {
        s.to_string()
    } else {
        quoted_ident(s)
    }
}

// ---------------------------------------------------------------------------------------------
// Paths

#[derive(Debug, Clone, PartialEq, Eq)]
enum Index {
    At(usize),
    All,
}

#[derive(Debug, Clone)]
struct Segment {
    name: String,
    indexes: Vec<Index>,
}

/// Splits a Data Prep path on unescaped dots: `a.b\.c[0].d[*]`, `${First Name}.x`.
fn parse_path(path: &str) -> Result<Vec<Segment>, String> {
    let chars: Vec<char> = path.chars().collect();
    let mut segs = Vec::new();
    let mut i = 0;
    loop {
        let mut name = String::new();
        let mut indexes = Vec::new();
        if chars.get(i) == Some(&'$') && chars.get(i + 1) == Some(&'{') {
            i += 2;
            loop {
                match chars.get(i) {
                    None => return Err(format!("unclosed `${{` in path `{path}`")),
                    Some('}') => {
                        i += 1;
                        break;
                    }
                    Some('\\') if i + 1 < chars.len() => {
                        name.push(chars[i + 1]);
                        i += 2;
                    }
                    Some(c) => {
                        name.push(*c);
                        i += 1;
                    }
                }
            }
        }
        while let Some(&c) = chars.get(i) {
            match c {
                '\\' if i + 1 < chars.len() => {
                    name.push(chars[i + 1]);
                    i += 2;
                }
                '.' => break,
                '[' => {
                    let close = chars[i..]
                        .iter()
                        .position(|&c| c == ']')
                        .ok_or_else(|| format!("unclosed `[` in path `{path}`"))?;
                    let inner: String = chars[i + 1..i + close].iter().collect();
                    let inner = inner.trim();
                    if inner == "*" {
                        indexes.push(Index::All);
                    } else if let Ok(n) = inner.parse::<usize>() {
                        indexes.push(Index::At(n));
                    } else {
                        return Err(format!(
                            "unsupported index `[{inner}]` in path `{path}` (only [n] and [*])"
                        ));
                    }
                    i += close + 1;
                }
                _ if !indexes.is_empty() => {
                    return Err(format!("unexpected `{c}` after an index in path `{path}`"))
                }
                _ => {
                    name.push(c);
                    i += 1;
                }
            }
        }
        if name.is_empty() {
            return Err(format!("empty field name in path `{path}`"));
        }
        segs.push(Segment { name, indexes });
        if i >= chars.len() {
            break;
        }
        i += 1; // the dot
        if i >= chars.len() {
            return Err(format!("path `{path}` ends with a dot"));
        }
    }
    Ok(segs)
}

fn describe(kind: &Kind) -> &'static str {
    match kind {
        Kind::Int => "an integer",
        Kind::Float => "a number",
        Kind::Bool => "a boolean",
        Kind::Str => "a string",
        Kind::Ts => "a timestamp",
        Kind::Id => "an id string",
        Kind::Meta => "a map",
        Kind::Json => "JSON text",
        Kind::Obj(_) => "an object",
        Kind::List(_) => "an array",
    }
}

/// Resolves a source path (`data.payment_method_details.card.brand`) against the resource's
/// source schema: the SQL expression that reads it and its kind.
fn resolve_source(path: &str, resource: Resource) -> Result<(String, Kind), String> {
    let mut segs = parse_path(path.trim())?;
    let top = schema::fields(resource);
    if segs.first().is_some_and(|s| {
        s.name == "data" && s.indexes.is_empty() && !top.iter().any(|(n, _)| *n == "data")
    }) {
        segs.remove(0);
        if segs.is_empty() {
            return Err(
                "`data` is the whole Stripe record; map its fields (or objects) instead".into(),
            );
        }
    }
    let mut sql = String::new();
    let mut walked = String::new();
    let mut cur: Option<Kind> = None;
    let n = segs.len();
    for (i, seg) in segs.iter().enumerate() {
        let next = match cur {
            None => {
                let Some((name, kind)) = top.iter().find(|(name, _)| *name == seg.name) else {
                    return Err(format!(
                        "`{}` is not a field of the {} source schema{}",
                        seg.name,
                        resource.object_name(),
                        close_names(&seg.name, top)
                    ));
                };
                sql = ident(name);
                *kind
            }
            Some(Kind::Obj(children)) => {
                let Some((name, kind)) = children.iter().find(|(name, _)| *name == seg.name)
                else {
                    return Err(format!(
                        "`{walked}` has no field `{}` in the {} source schema{}",
                        seg.name,
                        resource.object_name(),
                        close_names(&seg.name, children)
                    ));
                };
                write!(sql, "[{}]", sql_string(name)).unwrap();
                *kind
            }
            Some(Kind::Meta) => {
                write!(sql, "[{}]", sql_string(&seg.name)).unwrap();
                Kind::Str
            }
            Some(Kind::Json) => {
                return Err(format!(
                    "`{walked}` is kept as JSON text (a polymorphic Stripe object), so `{}` cannot be addressed",
                    seg.name
                ))
            }
            Some(Kind::List(_)) => {
                return Err(format!(
                    "`{walked}` is an array: address an element (`{walked}[0].{}`) or the whole array (`{walked}[*]`)",
                    seg.name
                ))
            }
            Some(other) => {
                return Err(format!(
                    "`{walked}` is {}, it has no field `{}`",
                    describe(&other),
                    seg.name
                ))
            }
        };
        if !walked.is_empty() {
            walked.push('.');
        }
        walked.push_str(&seg.name);
        let mut kind = next;
        for (j, idx) in seg.indexes.iter().enumerate() {
            let Kind::List(item) = kind else {
                return Err(format!("`{walked}` is {}, not an array", describe(&kind)));
            };
            match idx {
                Index::At(k) => {
                    write!(sql, "[{}]", k + 1).unwrap();
                    walked.push_str(&format!("[{k}]"));
                    kind = *item;
                }
                Index::All => {
                    if i + 1 != n || j + 1 != seg.indexes.len() {
                        return Err(format!(
                            "`{walked}[*]` followed by more path: per-element iteration has no SQL translation here; map the whole array (`{walked}[*]`) or one element (`{walked}[0]…`)"
                        ));
                    }
                    walked.push_str("[*]");
                }
            }
        }
        cur = Some(kind);
    }
    Ok((sql, cur.expect("a path has at least one segment")))
}

fn close_names(name: &str, fields: &[(&str, Kind)]) -> String {
    let lower = name.to_ascii_lowercase().replace(['-', ' '], "_");
    let hits: Vec<&str> = fields
        .iter()
        .map(|(n, _)| *n)
        .filter(|n| {
            *n == lower
                || n.contains(&lower as &str)
                || (lower.len() > 3 && lower.contains(n))
                || n.replace('_', "") == lower.replace('_', "")
        })
        .take(3)
        .collect();
    if hits.is_empty() {
        String::new()
    } else {
        format!(" (did you mean {}?)", hits.join(", "))
    }
}

/// Destination path segments, with the tenant placeholder substituted.
fn parse_destination(dest: &str) -> Result<Vec<String>, String> {
    let mut text = dest.trim().to_string();
    for token in ["{TENANT_ID}", "{TENANT}", "{ORG_ID}", "{tenant_id}"] {
        text = text.replace(token, "${tenant}");
    }
    // A bare `{tenant}` (not already the `${tenant}` placeholder).
    text = text
        .replace("${tenant}", "\u{2}")
        .replace("{tenant}", "${tenant}")
        .replace('\u{2}', "${tenant}");
    // `${tenant}` contains `{…}`, not a `${…}` name wrapper: protect it while parsing.
    let protected = text.replace("${tenant}", "\u{1}");
    let segs = parse_path(&protected)?;
    let mut out = Vec::new();
    for s in segs {
        if !s.indexes.is_empty() {
            return Err(format!(
                "array destination `{}[…]` in `{dest}`: building arrays element by element (`[n]`, `[*]` iteration) is not translated; map a whole source array to the array field instead",
                s.name.replace('\u{1}', "${tenant}")
            ));
        }
        out.push(s.name.replace('\u{1}', "${tenant}"));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Destination tree

#[derive(Debug, Clone)]
struct Leaf {
    sql: String,
    /// The source kind, for ATTRIBUTE mappings.
    kind: Option<Kind>,
    comment: Option<String>,
    /// Part of an object copy: explicit mappings replace it.
    implicit: bool,
}

#[derive(Debug, Clone, Default)]
struct StructNode {
    children: Vec<(String, Node)>,
    /// An object copy this struct was expanded from (source SQL, comment).
    copy_of: Option<(String, Option<String>)>,
}

#[derive(Debug, Clone)]
enum Node {
    Leaf(Leaf),
    Struct(StructNode),
}

fn path_text(path: &[String], upto: usize) -> String {
    path[..=upto].join(".")
}

fn insert(
    fields: &mut Vec<(String, Node)>,
    path: &[String],
    depth: usize,
    leaf: Leaf,
    index: usize,
) -> Result<(), String> {
    let name = &path[depth];
    let here = path_text(path, depth);
    let pos = fields.iter().position(|(n, _)| n == name);
    if depth + 1 == path.len() {
        match pos {
            None => fields.push((name.clone(), Node::Leaf(leaf))),
            Some(p) => match &mut fields[p].1 {
                Node::Leaf(existing) if existing.implicit => fields[p].1 = Node::Leaf(leaf),
                Node::Leaf(existing) => {
                    return Err(format!(
                        "destination `{here}` is already mapped ({})",
                        existing.comment.as_deref().unwrap_or("another mapping")
                    ))
                }
                Node::Struct(s) => match leaf.kind {
                    Some(Kind::Obj(children)) if s.copy_of.is_none() => {
                        merge_copy(s, &leaf.sql, children, leaf.comment);
                    }
                    _ => {
                        return Err(format!(
                            "destination `{here}` is an object built from other mappings; mappings[{index}] would replace it with {}",
                            leaf.kind.as_ref().map(describe).unwrap_or("a value")
                        ))
                    }
                },
            },
        }
        return Ok(());
    }
    let p = match pos {
        Some(p) => p,
        None => {
            fields.push((name.clone(), Node::Struct(StructNode::default())));
            fields.len() - 1
        }
    };
    if let Node::Leaf(existing) = &fields[p].1 {
        let existing = existing.clone();
        match existing.kind {
            Some(Kind::Obj(children)) => {
                let mut s = StructNode::default();
                merge_copy(&mut s, &existing.sql, children, existing.comment.clone());
                fields[p].1 = Node::Struct(s);
            }
            _ if existing.implicit => fields[p].1 = Node::Struct(StructNode::default()),
            _ => {
                return Err(format!(
                    "destination `{here}` is mapped to {} ({}), so `{}` cannot be placed under it",
                    existing.kind.as_ref().map(describe).unwrap_or("a value"),
                    existing.comment.as_deref().unwrap_or("another mapping"),
                    path.join(".")
                ))
            }
        }
    }
    let Node::Struct(s) = &mut fields[p].1 else {
        unreachable!("made a struct above")
    };
    insert(&mut s.children, path, depth + 1, leaf, index)
}

/// Merges an object copy of `src` (an object with `children`) into a struct: fields not mapped
/// explicitly are copied from the source, recursively into sub-objects built by other mappings.
fn merge_copy(
    s: &mut StructNode,
    src: &str,
    children: &'static [(&'static str, Kind)],
    comment: Option<String>,
) {
    if s.copy_of.is_none() {
        s.copy_of = Some((src.to_string(), comment));
    }
    for (name, kind) in children {
        let child_sql = format!("{src}[{}]", sql_string(name));
        match s.children.iter_mut().find(|(n, _)| n == name) {
            None => s.children.push((
                name.to_string(),
                Node::Leaf(Leaf {
                    sql: child_sql,
                    kind: Some(*kind),
                    comment: None,
                    implicit: true,
                }),
            )),
            Some((_, Node::Struct(sub))) => {
                if let Kind::Obj(grand) = kind {
                    merge_copy(sub, &child_sql, grand, None);
                }
            }
            Some(_) => {}
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Rendering

const INDENT: &str = "    ";

fn render(
    resource: Resource,
    total: usize,
    translated: usize,
    fields: &[(String, Node)],
    untranslated: &[Untranslated],
) -> String {
    let mut out = String::new();
    writeln!(
        out,
        "-- Imported from a Platform mapping set for `{}` by `stripe-xdm mapping import`:",
        resource.path()
    )
    .unwrap();
    writeln!(
        out,
        "-- {translated} of {total} mappings translated. Each field is preceded by the mapping it comes from."
    )
    .unwrap();
    writeln!(
        out,
        "-- Object copies list every field of the source object; fields mapped explicitly override them."
    )
    .unwrap();
    if !untranslated.is_empty() {
        writeln!(out, "--").unwrap();
        writeln!(out, "-- NOT TRANSLATED ({}):", untranslated.len()).unwrap();
        for u in untranslated {
            writeln!(
                out,
                "{}",
                one_line(&format!(
                    "--   mappings[{}] {} -> {}: {}",
                    u.index, u.source, u.destination, u.reason
                ))
            )
            .unwrap();
        }
    }
    out.push_str("SELECT\n");
    let items: Vec<Vec<String>> = fields
        .iter()
        .map(|(name, node)| {
            let mut lines = render_node(node, 1);
            let last = lines.last_mut().expect("a node renders at least one line");
            last.push_str(&format!(" AS {}", quoted_ident(name)));
            lines
        })
        .collect();
    push_items(&mut out, items);
    writeln!(out, "FROM {}", ident(resource.path())).unwrap();
    out
}

/// Joins field renderings with commas after each but the last.
fn push_items(out: &mut String, items: Vec<Vec<String>>) {
    let n = items.len();
    for (i, lines) in items.into_iter().enumerate() {
        let m = lines.len();
        for (j, line) in lines.into_iter().enumerate() {
            out.push_str(&line);
            if j + 1 == m && i + 1 < n {
                out.push(',');
            }
            out.push('\n');
        }
    }
}

/// Renders a node at `depth` (indentation level): comment lines, then the expression, whose
/// first line is indented and whose last line is where a caller appends ` AS …`.
fn render_node(node: &Node, depth: usize) -> Vec<String> {
    let pad = INDENT.repeat(depth);
    match node {
        Node::Leaf(leaf) => {
            let mut lines = Vec::new();
            if let Some(c) = &leaf.comment {
                lines.push(format!("{pad}-- {c}"));
            }
            lines.push(format!("{pad}{}", leaf.sql));
            lines
        }
        Node::Struct(s) => {
            let mut lines = Vec::new();
            if let Some((_, Some(c))) = &s.copy_of {
                lines.push(format!("{pad}-- {c} (object copy)"));
            }
            let wrap = s
                .copy_of
                .as_ref()
                .filter(|(src, _)| all_under(s, src))
                .map(|(src, _)| src.clone());
            match &wrap {
                Some(src) => lines.push(format!(
                    "{pad}CASE WHEN {src} IS NULL THEN NULL ELSE named_struct("
                )),
                None => lines.push(format!("{pad}named_struct(")),
            }
            let inner_pad = INDENT.repeat(depth + 1);
            let items: Vec<Vec<String>> = s
                .children
                .iter()
                .map(|(name, child)| {
                    let mut child_lines = render_node(child, depth + 1);
                    // Put `'name', ` in front of the first expression line (after comments).
                    let first = child_lines
                        .iter()
                        .position(|l| !l.trim_start().starts_with("--"))
                        .expect("an expression line");
                    let expr = child_lines[first].trim_start().to_string();
                    child_lines[first] = format!("{inner_pad}{}, {expr}", sql_string(name));
                    child_lines
                })
                .collect();
            let mut body = String::new();
            push_items(&mut body, items);
            lines.extend(body.lines().map(str::to_string));
            match wrap {
                Some(_) => lines.push(format!("{pad}) END")),
                None => lines.push(format!("{pad})")),
            }
            lines
        }
    }
}

/// Whether every leaf of the struct reads from below `src` (so a NULL source object means a
/// NULL result and the copy can be wrapped in `CASE WHEN src IS NULL`).
fn all_under(s: &StructNode, src: &str) -> bool {
    s.children.iter().all(|(_, n)| match n {
        Node::Leaf(l) => l.kind.is_some() && l.sql.starts_with(src),
        Node::Struct(sub) => all_under(sub, src),
    })
}

// ---------------------------------------------------------------------------------------------
// Expressions (Data Prep calculated fields, a JEXL dialect)

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Str(String),
    Num(String),
    /// A name or a path (`a.b[0].c`), kept raw (escapes intact).
    Path(String),
    Op(&'static str),
    LParen,
    RParen,
    Comma,
    Dot,
}

fn tokenize(text: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c == '"' || c == '\'' {
            let mut s = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err("unterminated string literal".into()),
                    Some('\\') => {
                        let e = *chars.get(i + 1).ok_or("unterminated string literal")?;
                        s.push(match e {
                            'n' => '\n',
                            't' => '\t',
                            'r' => '\r',
                            other => other,
                        });
                        i += 2;
                    }
                    Some(&q) if q == c => {
                        i += 1;
                        break;
                    }
                    Some(&other) => {
                        s.push(other);
                        i += 1;
                    }
                }
            }
            toks.push(Tok::Str(s));
            continue;
        }
        if c.is_ascii_digit() {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            toks.push(Tok::Num(chars[start..i].iter().collect()));
            continue;
        }
        let path_start = c.is_alphabetic() || c == '_' || c == '$';
        if path_start {
            let start = i;
            let mut depth_brace = false;
            while i < chars.len() {
                let d = chars[i];
                if depth_brace {
                    if d == '}' {
                        depth_brace = false;
                    }
                    i += 1;
                } else if d == '$' && chars.get(i + 1) == Some(&'{') {
                    depth_brace = true;
                    i += 2;
                } else if d == '\\' && i + 1 < chars.len() {
                    i += 2;
                } else if d.is_alphanumeric()
                    || d == '_'
                    || d == '$'
                    || (d == '.'
                        && chars
                            .get(i + 1)
                            .is_some_and(|n| n.is_alphabetic() || *n == '_' || *n == '$'))
                {
                    i += 1;
                } else if d == '[' {
                    match chars[i..].iter().position(|&x| x == ']') {
                        Some(close) => i += close + 1,
                        None => return Err("unclosed `[`".into()),
                    }
                } else {
                    break;
                }
            }
            toks.push(Tok::Path(chars[start..i].iter().collect()));
            continue;
        }
        let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
        let op2 = ["==", "!=", "<=", ">=", "&&", "||", "->", "=~", "!~"]
            .into_iter()
            .find(|o| *o == two);
        if let Some(op) = op2 {
            toks.push(Tok::Op(op));
            i += 2;
            continue;
        }
        let tok = match c {
            '(' => Tok::LParen,
            ')' => Tok::RParen,
            ',' => Tok::Comma,
            '.' => Tok::Dot,
            '+' => Tok::Op("+"),
            '-' => Tok::Op("-"),
            '*' => Tok::Op("*"),
            '/' => Tok::Op("/"),
            '%' => Tok::Op("%"),
            '<' => Tok::Op("<"),
            '>' => Tok::Op(">"),
            '!' => Tok::Op("!"),
            '?' => Tok::Op("?"),
            ':' => Tok::Op(":"),
            '[' | '{' | ']' | '}' => {
                return Err(format!(
                    "`{c}`: array/object literals have no SQL translation here"
                ))
            }
            other => return Err(format!("unexpected character `{other}`")),
        };
        toks.push(tok);
        i += 1;
    }
    Ok(toks)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    Str,
    Num,
    Bool,
    Other,
    Unknown,
}

fn kind_ty(k: &Kind) -> Ty {
    match k {
        Kind::Str | Kind::Id | Kind::Json => Ty::Str,
        Kind::Int | Kind::Float => Ty::Num,
        Kind::Bool => Ty::Bool,
        _ => Ty::Other,
    }
}

struct ExprParser<'a> {
    toks: Vec<Tok>,
    pos: usize,
    resource: Resource,
    _text: &'a str,
}

/// Data Prep functions (the catalogue), called in SQL as `dp_<name>`, with their result type.
const PASS_THROUGH: &[(&str, Ty)] = &[
    ("concat", Ty::Str),
    ("explode", Ty::Other),
    ("instr", Ty::Num),
    ("replacestr", Ty::Str),
    ("substr", Ty::Str),
    ("lower", Ty::Str),
    ("lcase", Ty::Str),
    ("upper", Ty::Str),
    ("ucase", Ty::Str),
    ("split", Ty::Other),
    ("join", Ty::Str),
    ("lpad", Ty::Str),
    ("rpad", Ty::Str),
    ("left", Ty::Str),
    ("right", Ty::Str),
    ("ltrim", Ty::Str),
    ("rtrim", Ty::Str),
    ("trim", Ty::Str),
    ("extract_regex", Ty::Other),
    ("matches_regex", Ty::Bool),
    ("sha1", Ty::Str),
    ("sha256", Ty::Str),
    ("sha512", Ty::Str),
    ("md5", Ty::Str),
    ("crc32", Ty::Str),
    ("get_url_protocol", Ty::Str),
    ("get_url_host", Ty::Str),
    ("get_url_port", Ty::Num),
    ("get_url_path", Ty::Str),
    ("get_url_query_str", Ty::Other),
    ("get_url_encoded", Ty::Str),
    ("get_url_decoded", Ty::Str),
    ("now", Ty::Other),
    ("timestamp", Ty::Num),
    ("format", Ty::Str),
    ("dformat", Ty::Str),
    ("date", Ty::Other),
    ("date_part", Ty::Num),
    ("set_date_part", Ty::Other),
    ("make_date_time", Ty::Other),
    ("make_timestamp", Ty::Other),
    ("zone_date_to_utc", Ty::Other),
    ("zone_date_to_zone", Ty::Other),
    ("is_empty", Ty::Bool),
    ("arrays_to_object", Ty::Other),
    ("arrays_to_objects", Ty::Other),
    ("to_object", Ty::Other),
    ("str_to_object", Ty::Other),
    ("get_keys", Ty::Other),
    ("get_values", Ty::Unknown),
    ("map_get_values", Ty::Unknown),
    ("map_has_keys", Ty::Bool),
    ("add_to_map", Ty::Other),
    ("object_to_map", Ty::Other),
    ("coalesce", Ty::Unknown),
    ("first", Ty::Unknown),
    ("last", Ty::Unknown),
    ("add_to_array", Ty::Other),
    ("join_arrays", Ty::Other),
    ("to_array", Ty::Other),
    ("size_of", Ty::Num),
    ("array_to_map", Ty::Other),
    ("to_map", Ty::Other),
    ("decode", Ty::Unknown),
    ("to_bigint", Ty::Num),
    ("to_decimal", Ty::Num),
    ("to_float", Ty::Num),
    ("to_integer", Ty::Num),
    ("json_to_object", Ty::Other),
    ("uuid", Ty::Str),
    ("guid", Ty::Str),
    ("fpid_to_ecid", Ty::Str),
    ("ua_os_name", Ty::Str),
    ("ua_os_version_major", Ty::Str),
    ("ua_os_version", Ty::Str),
    ("ua_os_name_version", Ty::Str),
    ("ua_agent_version", Ty::Str),
    ("ua_agent_version_major", Ty::Str),
    ("ua_agent_name", Ty::Str),
    ("ua_device_class", Ty::Str),
];

fn untranslatable_function(name: &str) -> Option<&'static str> {
    Some(match name {
        "array_to_string" | "filterarray" | "transformarray" | "flattenarray" => {
            "is a Destinations-only function"
        }
        "upsert_array_append" | "upsert_array_replace" => {
            "only applies to Profile updates, not to batch ingestion"
        }
        n if n.starts_with("aa_") => "is an Adobe Analytics function, not available for Stripe",
        "is_set" | "empty" | "size" => "is a JEXL built-in with no SQL equivalent here",
        _ => return None,
    })
}

impl<'a> ExprParser<'a> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn eat_op(&mut self, ops: &[&str]) -> Option<&'static str> {
        match self.peek() {
            Some(Tok::Op(o)) if ops.contains(o) => {
                let o = *o;
                self.pos += 1;
                Some(o)
            }
            Some(Tok::Path(w)) => {
                let w = w.to_ascii_lowercase();
                let mapped = match w.as_str() {
                    "and" => "&&",
                    "or" => "||",
                    "eq" => "==",
                    "ne" => "!=",
                    "lt" => "<",
                    "le" => "<=",
                    "gt" => ">",
                    "ge" => ">=",
                    "div" => "/",
                    "mod" => "%",
                    "not" => "!",
                    _ => return None,
                };
                if ops.contains(&mapped) {
                    self.pos += 1;
                    Some(mapped)
                } else {
                    None
                }
            }
            _ => None,
        }
    }

    fn expect(&mut self, t: Tok, what: &str) -> Result<(), String> {
        match self.next() {
            Some(got) if got == t => Ok(()),
            Some(got) => Err(format!("expected {what}, found {got:?}")),
            None => Err(format!("expected {what}, found the end")),
        }
    }

    fn ternary(&mut self) -> Result<(String, Ty), String> {
        let cond = self.or()?;
        if self.eat_op(&["?"]).is_some() {
            let (a, ta) = self.ternary()?;
            self.expect(Tok::Op(":"), "`:` of `?:`")?;
            let (b, tb) = self.ternary()?;
            let ty = if ta == tb { ta } else { Ty::Unknown };
            return Ok((format!("CASE WHEN {} THEN {a} ELSE {b} END", cond.0), ty));
        }
        Ok(cond)
    }

    fn or(&mut self) -> Result<(String, Ty), String> {
        let mut left = self.and()?;
        while self.eat_op(&["||"]).is_some() {
            let right = self.and()?;
            left = (format!("({} OR {})", left.0, right.0), Ty::Bool);
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<(String, Ty), String> {
        let mut left = self.cmp()?;
        while self.eat_op(&["&&"]).is_some() {
            let right = self.cmp()?;
            left = (format!("({} AND {})", left.0, right.0), Ty::Bool);
        }
        Ok(left)
    }

    fn cmp(&mut self) -> Result<(String, Ty), String> {
        let mut left = self.add()?;
        while let Some(op) = self.eat_op(&["==", "!=", "<", "<=", ">", ">=", "=~", "!~"]) {
            let right = self.add()?;
            let sql_op = match op {
                "==" => "=",
                "!=" => "<>",
                "=~" | "!~" => {
                    return Err(format!(
                        "the JEXL operator `{op}` has no SQL translation here"
                    ))
                }
                o => o,
            };
            left = (format!("({} {sql_op} {})", left.0, right.0), Ty::Bool);
        }
        Ok(left)
    }

    fn add(&mut self) -> Result<(String, Ty), String> {
        let mut left = self.mul()?;
        while let Some(op) = self.eat_op(&["+", "-"]) {
            let right = self.mul()?;
            left = match (op, left.1, right.1) {
                ("+", Ty::Num, Ty::Num) => (format!("({} + {})", left.0, right.0), Ty::Num),
                ("+", Ty::Str, _) | ("+", _, Ty::Str) => {
                    (format!("({} || {})", left.0, right.0), Ty::Str)
                }
                ("+", a, b) => {
                    return Err(format!(
                        "`+` between {a:?} and {b:?} values is ambiguous (addition or concatenation); use concat() or convert the operands"
                    ))
                }
                (_, Ty::Num | Ty::Unknown, Ty::Num | Ty::Unknown) => {
                    (format!("({} - {})", left.0, right.0), Ty::Num)
                }
                (_, a, b) => return Err(format!("`-` between {a:?} and {b:?} values")),
            };
        }
        Ok(left)
    }

    fn mul(&mut self) -> Result<(String, Ty), String> {
        let mut left = self.unary()?;
        while let Some(op) = self.eat_op(&["*", "/", "%"]) {
            let right = self.unary()?;
            for (side, ty) in [(&left.0, left.1), (&right.0, right.1)] {
                if !matches!(ty, Ty::Num | Ty::Unknown) {
                    return Err(format!("`{op}` on a non-numeric operand `{side}`"));
                }
            }
            left = (format!("({} {op} {})", left.0, right.0), Ty::Num);
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<(String, Ty), String> {
        if self.eat_op(&["!"]).is_some() {
            let (e, _) = self.unary()?;
            return Ok((format!("(NOT {e})"), Ty::Bool));
        }
        if self.eat_op(&["-"]).is_some() {
            let (e, t) = self.unary()?;
            return Ok((format!("(-{e})"), t));
        }
        self.postfix()
    }

    fn postfix(&mut self) -> Result<(String, Ty), String> {
        let mut value = self.primary()?;
        while self.peek() == Some(&Tok::Dot) {
            self.pos += 1;
            let Some(Tok::Path(method)) = self.next() else {
                return Err("expected a method name after `.`".into());
            };
            value = self.method(value, &method)?;
        }
        Ok(value)
    }

    fn method(&mut self, recv: (String, Ty), method: &str) -> Result<(String, Ty), String> {
        self.expect(Tok::LParen, "`(` of a method call")?;
        let args = self.args()?;
        match (method, args.as_slice()) {
            ("equals", [a]) => Ok((format!("({} = {})", recv.0, a.0), Ty::Bool)),
            ("equalsIgnoreCase", [a]) => {
                Ok((format!("(lower({}) = lower({}))", recv.0, a.0), Ty::Bool))
            }
            _ => Err(format!(
                "the method call `.{method}(…)` has no SQL translation"
            )),
        }
    }

    fn args(&mut self) -> Result<Vec<(String, Ty)>, String> {
        let mut args = Vec::new();
        if self.peek() == Some(&Tok::RParen) {
            self.pos += 1;
            return Ok(args);
        }
        loop {
            args.push(self.ternary()?);
            match self.next() {
                Some(Tok::Comma) => continue,
                Some(Tok::RParen) => return Ok(args),
                Some(Tok::Op("->")) => {
                    return Err("lambda expressions (`x -> …`) have no SQL translation".into())
                }
                other => return Err(format!("expected `,` or `)`, found {other:?}")),
            }
        }
    }

    fn primary(&mut self) -> Result<(String, Ty), String> {
        match self.next() {
            Some(Tok::Str(s)) => Ok((sql_string(&s), Ty::Str)),
            Some(Tok::Num(n)) => Ok((n, Ty::Num)),
            Some(Tok::LParen) => {
                let e = self.ternary()?;
                self.expect(Tok::RParen, "`)`")?;
                Ok(e)
            }
            Some(Tok::Path(p)) => {
                if self.peek() == Some(&Tok::LParen) {
                    // A function call, or `path.method(…)`.
                    if let Some(dot) = last_unescaped_dot(&p) {
                        let (recv, method) = (&p[..dot], &p[dot + 1..]);
                        let (sql, kind) = resolve_source(recv, self.resource)?;
                        return self.method((sql, kind_ty(&kind)), method);
                    }
                    self.pos += 1;
                    return self.call(&p);
                }
                match p.to_ascii_lowercase().as_str() {
                    "true" => return Ok(("TRUE".into(), Ty::Bool)),
                    "false" => return Ok(("FALSE".into(), Ty::Bool)),
                    "null" => return Ok(("NULL".into(), Ty::Unknown)),
                    _ => {}
                }
                let (sql, kind) = resolve_source(&p, self.resource)?;
                Ok((sql, kind_ty(&kind)))
            }
            Some(Tok::Op(o)) => Err(format!("unexpected operator `{o}`")),
            Some(other) => Err(format!("unexpected {other:?}")),
            None => Err("unexpected end of expression".into()),
        }
    }

    fn call(&mut self, name: &str) -> Result<(String, Ty), String> {
        let lower = name.to_ascii_lowercase();
        if let Some(why) = untranslatable_function(&lower) {
            return Err(format!("`{name}` {why}"));
        }
        match lower.as_str() {
            "iif" => {
                let args = self.args()?;
                let [c, a, b] = args.as_slice() else {
                    return Err(format!("iif takes 3 arguments, got {}", args.len()));
                };
                let ty = if a.1 == b.1 { a.1 } else { Ty::Unknown };
                Ok((
                    format!("CASE WHEN {} THEN {} ELSE {} END", c.0, a.0, b.0),
                    ty,
                ))
            }
            "nullify" => {
                let args = self.args()?;
                if !args.is_empty() {
                    return Err("nullify() takes no arguments".into());
                }
                Ok(("NULL".into(), Ty::Unknown))
            }
            "contains_key" => {
                // The argument is a path string, resolved here.
                let path = match self.next() {
                    Some(Tok::Str(s)) => s,
                    _ => return Err("contains_key takes a path string".into()),
                };
                self.expect(Tok::RParen, "`)`")?;
                let (sql, _) = resolve_source(&path, self.resource)?;
                Ok((format!("({sql} IS NOT NULL)"), Ty::Bool))
            }
            "min" | "max" => {
                let args = self.args()?;
                let f = if lower == "min" { "least" } else { "greatest" };
                let ty = args.first().map(|a| a.1).unwrap_or(Ty::Unknown);
                Ok((format!("{f}({})", join_args(&args)), ty))
            }
            _ => {
                let Some((fname, ty)) = PASS_THROUGH.iter().find(|(n, _)| *n == lower) else {
                    return Err(format!(
                        "`{name}` is not a Data Prep function this importer knows"
                    ));
                };
                let args = self.args()?;
                let ty = if *ty == Ty::Unknown {
                    args.first().map(|a| a.1).unwrap_or(Ty::Unknown)
                } else {
                    *ty
                };
                // Every Data Prep function answers to `dp_<name>`, which keeps Data Prep's
                // semantics even where DataFusion has a built-in of the same name.
                Ok((format!("dp_{}({})", fname, join_args(&args)), ty))
            }
        }
    }
}

fn join_args(args: &[(String, Ty)]) -> String {
    args.iter()
        .map(|a| a.0.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn last_unescaped_dot(p: &str) -> Option<usize> {
    let bytes = p.as_bytes();
    let mut found = None;
    let mut i = 0;
    let mut brace = false;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 1,
            b'$' if bytes.get(i + 1) == Some(&b'{') => brace = true,
            b'}' => brace = false,
            b'.' if !brace => found = Some(i),
            _ => {}
        }
        i += 1;
    }
    found
}

fn strip_parens(s: String) -> String {
    let b = s.as_bytes();
    if b.first() != Some(&b'(') || b.last() != Some(&b')') {
        return s;
    }
    // Only when the outer pair encloses everything.
    let mut depth = 0i32;
    let mut in_str = false;
    for (i, c) in s.char_indices() {
        match c {
            '\'' => in_str = !in_str,
            '(' if !in_str => depth += 1,
            ')' if !in_str => {
                depth -= 1;
                if depth == 0 && i + 1 != s.len() {
                    return s;
                }
            }
            _ => {}
        }
    }
    s[1..s.len() - 1].to_string()
}

/// Translates a Data Prep calculated field into an SQL expression.
fn translate_expression(text: &str, resource: Resource) -> Result<String, String> {
    let toks = tokenize(text)?;
    if toks.is_empty() {
        return Err("empty expression".into());
    }
    let mut p = ExprParser {
        toks,
        pos: 0,
        resource,
        _text: text,
    };
    let (sql, _) = p.ternary()?;
    if let Some(t) = p.peek() {
        return Err(format!("unexpected {t:?} after the expression"));
    }
    Ok(strip_parens(sql))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let r = Resource::Charges;
        assert_eq!(
            resolve_source("data.payment_method_details.card.brand", r)
                .unwrap()
                .0,
            "payment_method_details['card']['brand']"
        );
        assert_eq!(
            resolve_source("data.metadata.order\\.id", r).unwrap().0,
            "metadata['order.id']"
        );
        assert!(resolve_source("data.nope", r).is_err());
        let s = Resource::Subscriptions;
        assert_eq!(
            resolve_source("data.items.data[0].price.id", s).unwrap().0,
            "items['data'][1]['price']['id']"
        );
        assert_eq!(
            resolve_source("items.data[*]", s).unwrap().0,
            "items['data']"
        );
        assert!(resolve_source("items.data[*].id", s).is_err());
    }

    #[test]
    fn expressions() {
        let r = Resource::Charges;
        assert_eq!(
            translate_expression("concat(data.currency, \" \", data.status)", r).unwrap(),
            "dp_concat(currency, ' ', status)"
        );
        assert_eq!(
            translate_expression("iif(data.paid, \"yes\", 'no')", r).unwrap(),
            "CASE WHEN paid THEN 'yes' ELSE 'no' END"
        );
        assert_eq!(
            translate_expression("data.amount / 100", r).unwrap(),
            "amount / 100"
        );
        assert_eq!(
            translate_expression("data.status.equalsIgnoreCase(\"SUCCEEDED\")", r).unwrap(),
            "lower(status) = lower('SUCCEEDED')"
        );
        assert!(translate_expression("filterArray(x, y -> y > 0)", r).is_err());
    }
}
