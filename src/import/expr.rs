//! Expressions (Data Prep calculated fields, a JEXL dialect): parsed and translated to SQL.

use super::emit::sql_string;
use super::lex::{tokenize, Tok};
use super::paths::resolve_source;
use crate::decode::schema::Kind;
use crate::Resource;

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
pub(super) fn translate_expression(text: &str, resource: Resource) -> Result<String, String> {
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
