//! SQL generation: literals and identifiers, and the rendering of the destination tree as a
//! `SELECT` of nested `named_struct(…)`s.

use std::fmt::Write as _;

use super::forms::one_line;
use super::tree::{Node, StructNode};
use super::Untranslated;
use crate::Resource;

/// A string literal in SQL.
pub(super) fn sql_string(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A double-quoted SQL identifier.
pub(super) fn quoted_ident(s: &str) -> String {
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
pub(super) fn ident(s: &str) -> String {
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
// Rendering

const INDENT: &str = "    ";

pub(super) fn render(
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
