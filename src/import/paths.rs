//! Source and destination path resolution: Data Prep paths parsed into segments, source paths
//! resolved against the resource's source schema, destination paths with the tenant placeholder.

use std::fmt::Write as _;

use super::emit::{ident, sql_string};
use crate::decode::schema::{self, Kind};
use crate::Resource;

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

pub(super) fn describe(kind: &Kind) -> &'static str {
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
pub(super) fn resolve_source(path: &str, resource: Resource) -> Result<(String, Kind), String> {
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
    // A field the decoded schema does not hold is read from the record's JSON text (`_raw`)
    // with the JSON functions; its value comes as text (a number or an object as its JSON).
    let from_raw = || -> Result<(String, Kind), String> {
        let mut args = vec![crate::decode::RAW_COLUMN.to_string()];
        for seg in &segs {
            args.push(sql_string(&seg.name));
            for idx in &seg.indexes {
                match idx {
                    Index::At(k) => args.push(k.to_string()),
                    Index::All => {
                        return Err(format!(
                            "`{}[*]` is not in the decoded source schema: a whole array outside it has no SQL translation; address one element (`[0]`)",
                            seg.name
                        ))
                    }
                }
            }
        }
        Ok((format!("json_as_text({})", args.join(", ")), Kind::Str))
    };
    let mut sql = String::new();
    let mut walked = String::new();
    let mut cur: Option<Kind> = None;
    let n = segs.len();
    for (i, seg) in segs.iter().enumerate() {
        let next = match cur {
            None => {
                let Some((name, kind)) = top.iter().find(|(name, _)| *name == seg.name) else {
                    if let Some(typo) = typo_of(&seg.name, top) {
                        return Err(format!(
                            "`{}` is not a field of the {} source schema (did you mean {typo}?)",
                            seg.name,
                            resource.object_name()
                        ));
                    }
                    return from_raw();
                };
                sql = ident(name);
                *kind
            }
            Some(Kind::Obj(children)) => {
                let Some((name, kind)) = children.iter().find(|(name, _)| *name == seg.name)
                else {
                    if let Some(typo) = typo_of(&seg.name, children) {
                        return Err(format!(
                            "`{walked}` has no field `{}` in the {} source schema (did you mean {typo}?)",
                            seg.name,
                            resource.object_name()
                        ));
                    }
                    return from_raw();
                };
                write!(sql, "[{}]", sql_string(name)).unwrap();
                *kind
            }
            Some(Kind::Meta) => {
                write!(sql, "[{}]", sql_string(&seg.name)).unwrap();
                Kind::Str
            }
            Some(Kind::Json) => return from_raw(),
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

/// A field whose name differs from `name` only in case, `-`, ` ` or `_`: a typo rather than a
/// field outside the decoded schema.
fn typo_of<'a>(name: &str, fields: &[(&'a str, Kind)]) -> Option<&'a str> {
    let norm = |s: &str| s.to_ascii_lowercase().replace(['-', ' ', '_'], "");
    let wanted = norm(name);
    fields.iter().map(|(n, _)| *n).find(|n| norm(n) == wanted)
}

/// Destination path segments, with the tenant placeholder substituted.
pub(super) fn parse_destination(dest: &str) -> Result<Vec<String>, String> {
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
        // Outside the decoded schema: read from the record's JSON text.
        assert_eq!(
            resolve_source("data.nope.deeper[2]", r).unwrap().0,
            "json_as_text(_raw, 'nope', 'deeper', 2)"
        );
        assert!(resolve_source("data.Amount", r)
            .unwrap_err()
            .contains("did you mean amount"));
        assert!(resolve_source("data.amount.nope", r).is_err());
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
}
