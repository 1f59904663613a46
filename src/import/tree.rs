//! The destination tree: mapped values placed under their (merged) destination paths, with
//! object copies expanded into the fields they copy.

use super::emit::sql_string;
use super::paths::describe;
use crate::decode::schema::Kind;

#[derive(Debug, Clone)]
pub(super) struct Leaf {
    pub(super) sql: String,
    /// The source kind, for ATTRIBUTE mappings.
    pub(super) kind: Option<Kind>,
    pub(super) comment: Option<String>,
    /// Part of an object copy: explicit mappings replace it.
    pub(super) implicit: bool,
}

#[derive(Debug, Clone, Default)]
pub(super) struct StructNode {
    pub(super) children: Vec<(String, Node)>,
    /// An object copy this struct was expanded from (source SQL, comment).
    pub(super) copy_of: Option<(String, Option<String>)>,
}

#[derive(Debug, Clone)]
pub(super) enum Node {
    Leaf(Leaf),
    Struct(StructNode),
}

fn path_text(path: &[String], upto: usize) -> String {
    path[..=upto].join(".")
}

pub(super) fn insert(
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
