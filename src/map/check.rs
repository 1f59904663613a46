//! `mapping check`: a mapping held against its source table and target XDM schema before a run.
//!
//! - the SQL must compile against the resource's source table (with the SQL line/column of the
//!   mistake when the parser or planner gives it, or where the unknown name is in the text);
//! - the output must fit the XDM schema ([`XdmSchema::check_output`]: unknown columns, required
//!   fields never produced, types that need a cast);
//! - a required field fed by an expression that can be NULL is a warning: such rows will be
//!   rejected;
//! - a string literal flowing into a field with an `enum` must be one of its values.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::common::ScalarValue;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::{Expr, ExprSchemable, LogicalPlan};
use datafusion::prelude::SessionContext;

use super::{new_session, Mapping};
use crate::xdm::{ProblemKind, XdmField, XdmSchema, XdmType};
use crate::Resource;

/// The class of a [`CheckProblem`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckKind {
    /// The SQL does not parse or plan against the source table.
    Compile,
    /// A required XDM field is never produced.
    MissingRequired,
    /// An output column whose type cannot be converted to the field's XDM type.
    TypeMismatch,
    /// An output column (at any depth) that the XDM schema does not have.
    UnknownColumn,
    /// A required field fed by an expression that can be NULL (a warning: such rows are
    /// rejected at run time, the mapping itself is usable).
    Nullability,
    /// A string literal flowing into an `enum` field that is not one of its values.
    EnumLiteral,
    /// The SQL filters, joins, aggregates, orders, limits or windows: not one row per record.
    NotProjection,
}

impl CheckKind {
    /// Whether problems of this kind are warnings (the mapping still runs).
    pub fn is_warning(self) -> bool {
        matches!(self, CheckKind::Nullability)
    }

    /// A short name: `compile`, `missing-required`, …
    pub fn as_str(self) -> &'static str {
        match self {
            CheckKind::Compile => "compile",
            CheckKind::MissingRequired => "missing-required",
            CheckKind::TypeMismatch => "type-mismatch",
            CheckKind::UnknownColumn => "unknown-column",
            CheckKind::Nullability => "nullability",
            CheckKind::EnumLiteral => "enum-literal",
            CheckKind::NotProjection => "not-projection",
        }
    }
}

/// One problem found by [`check_mapping`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckProblem {
    /// The class of problem.
    pub kind: CheckKind,
    /// Dotted XDM path concerned (`_acme.charges.status`), when there is one.
    pub path: Option<String>,
    /// 1-based line in the SQL text, when known.
    pub line: Option<u64>,
    /// 1-based column in the SQL text, when known.
    pub column: Option<u64>,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl std::fmt::Display for CheckProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let level = if self.kind.is_warning() {
            "warning"
        } else {
            "error"
        };
        write!(f, "{level}[{}]", self.kind.as_str())?;
        if let (Some(l), Some(c)) = (self.line, self.column) {
            write!(f, " at line {l}, column {c}")?;
        } else if let Some(l) = self.line {
            write!(f, " at line {l}")?;
        }
        if let Some(p) = &self.path {
            write!(f, " {p}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// The outcome of [`check_mapping`].
#[derive(Debug, Clone)]
pub struct CheckReport {
    /// Every problem found, errors and warnings.
    pub problems: Vec<CheckProblem>,
    /// The mapping's output schema, when the SQL compiled.
    pub output_schema: Option<SchemaRef>,
}

impl CheckReport {
    /// True when the mapping compiles and nothing but warnings was found.
    pub fn is_sound(&self) -> bool {
        self.output_schema.is_some() && self.problems.iter().all(|p| p.kind.is_warning())
    }

    /// The problems that are errors.
    pub fn errors(&self) -> impl Iterator<Item = &CheckProblem> {
        self.problems.iter().filter(|p| !p.kind.is_warning())
    }

    /// The problems that are warnings.
    pub fn warnings(&self) -> impl Iterator<Item = &CheckProblem> {
        self.problems.iter().filter(|p| p.kind.is_warning())
    }
}

/// Checks `mapping` against `resource`'s source table and the XDM `schema`.
pub async fn check_mapping(
    mapping: &Mapping,
    resource: Resource,
    schema: &XdmSchema,
) -> CheckReport {
    check_mapping_with_session(mapping, resource, schema, new_session()).await
}

/// Like [`check_mapping`] with a caller-provided session (e.g. one with the Data Prep UDFs).
pub async fn check_mapping_with_session(
    mapping: &Mapping,
    resource: Resource,
    schema: &XdmSchema,
    ctx: SessionContext,
) -> CheckReport {
    let sql = &mapping.sql;
    // Source spans make the planner's errors point into the SQL text.
    let _ = ctx
        .sql("SET datafusion.sql_parser.collect_spans = true")
        .await;
    let table = resource.path();
    let compile_problem = |e: &DataFusionError| {
        let (line, column) = locate_error(e, sql);
        CheckProblem {
            kind: CheckKind::Compile,
            path: None,
            line,
            column,
            message: format!(
                "does not compile against table `{table}`: {}",
                e.message_text()
            ),
        }
    };
    if let Err(e) = ctx.register_batch(
        table,
        RecordBatch::new_empty(crate::decode::source_schema(resource)),
    ) {
        return CheckReport {
            problems: vec![compile_problem(&e)],
            output_schema: None,
        };
    }
    let df = match ctx.sql(sql).await {
        Ok(df) => df,
        Err(e) => {
            return CheckReport {
                problems: vec![compile_problem(&e)],
                output_schema: None,
            }
        }
    };
    let output: SchemaRef = Arc::new(df.schema().as_arrow().clone());
    let mut problems = Vec::new();
    // What every run would refuse when it compiles the mapping (`MapError::NotProjection`).
    if let Some(what) = super::not_projection(df.logical_plan()) {
        problems.push(CheckProblem {
            kind: CheckKind::NotProjection,
            path: None,
            line: None,
            column: None,
            message: format!(
                "is not a projection of `{table}`: it has {what}; a mapping returns one row per record, in order (use CASE/TRY_CAST/NULL instead of WHERE, joins, aggregates, DISTINCT, ORDER BY, LIMIT or window functions)"
            ),
        });
    }
    for p in schema.check_output(&output) {
        let kind = match p.kind {
            ProblemKind::UnknownColumn => CheckKind::UnknownColumn,
            ProblemKind::MissingRequired => CheckKind::MissingRequired,
            ProblemKind::IncompatibleType => CheckKind::TypeMismatch,
        };
        let (line, column) = match kind {
            CheckKind::MissingRequired => (None, None),
            _ => locate_name(sql, p.path.rsplit('.').next().unwrap_or(&p.path)),
        };
        problems.push(CheckProblem {
            kind,
            path: Some(p.path.clone()),
            line,
            column,
            message: p.message.clone(),
        });
    }
    let plan = df.logical_plan().clone();
    if let Some((exprs, input)) = top_projection(&plan) {
        let mut walker = Walker {
            input,
            sql,
            out: &mut problems,
        };
        for e in exprs {
            let name = e.schema_name().to_string();
            let name = match e {
                Expr::Alias(a) => a.name.clone(),
                _ => name,
            };
            if let Some(f) = schema.fields().iter().find(|f| f.name() == name) {
                walker.enter(e, f);
            }
        }
    }
    CheckReport {
        problems,
        output_schema: Some(output),
    }
}

trait MessageText {
    fn message_text(&self) -> String;
}

impl MessageText for DataFusionError {
    fn message_text(&self) -> String {
        // The innermost error's text, without DataFusion's nesting prefixes.
        let s = self.to_string();
        s.trim().to_string()
    }
}

fn top_projection(plan: &LogicalPlan) -> Option<(&[Expr], &LogicalPlan)> {
    match plan {
        LogicalPlan::Projection(p) => Some((&p.expr, p.input.as_ref())),
        other => {
            let inputs = other.inputs();
            if inputs.len() == 1 {
                top_projection(inputs[0])
            } else {
                None
            }
        }
    }
}

/// True when `expr` is never NULL whatever the row: a non-null literal, a timestamp or date
/// made of such constants (`to_timestamp(0)`, `now()`), or a COALESCE with such an argument.
/// DataFusion's own nullability calls a function nullable when any argument may be, so
/// `COALESCE(created, to_timestamp(0))` was warned about.
fn never_null(expr: &Expr) -> bool {
    const CONSTRUCTORS: [&str; 9] = [
        "to_timestamp",
        "to_timestamp_seconds",
        "to_timestamp_millis",
        "to_timestamp_micros",
        "to_date",
        "make_date",
        "now",
        "current_date",
        "arrow_cast",
    ];
    let constant = |a: &Expr| matches!(a, Expr::Literal(v, _) if !v.is_null());
    match expr {
        Expr::Literal(v, _) => !v.is_null(),
        Expr::Alias(a) => never_null(&a.expr),
        Expr::Cast(c) => never_null(&c.expr),
        Expr::ScalarFunction(sf) => match sf.func.name() {
            "coalesce" | "nvl" | "ifnull" => sf.args.iter().any(never_null),
            name if CONSTRUCTORS.contains(&name) => sf.args.iter().all(constant),
            _ => false,
        },
        _ => false,
    }
}

struct Walker<'a> {
    input: &'a LogicalPlan,
    sql: &'a str,
    out: &'a mut Vec<CheckProblem>,
}

impl Walker<'_> {
    /// `expr` is what the mapping puts into XDM field `f`.
    fn enter(&mut self, expr: &Expr, f: &XdmField) {
        if f.required() {
            let nullable =
                !never_null(expr) && expr.nullable(self.input.schema().as_ref()).unwrap_or(true);
            if nullable {
                let (line, column) = locate_name(self.sql, f.name());
                self.out.push(CheckProblem {
                    kind: CheckKind::Nullability,
                    path: Some(f.path().to_string()),
                    line,
                    column,
                    message: format!(
                        "required field is fed by `{}`, which can be NULL: rows where it is NULL will be rejected (INGEST-1555-400); use COALESCE(…, <default>) if a default is acceptable",
                        short(&strip_alias(expr).to_string())
                    ),
                });
            }
        }
        self.values(expr, f);
    }

    /// Looks through the expression for the values that end up in `f`.
    fn values(&mut self, expr: &Expr, f: &XdmField) {
        match expr {
            Expr::Alias(a) => self.values(&a.expr, f),
            Expr::Cast(c) => self.values(&c.expr, f),
            Expr::TryCast(c) => self.values(&c.expr, f),
            Expr::Case(c) => {
                for (_, then) in &c.when_then_expr {
                    self.values(then, f);
                }
                if let Some(e) = &c.else_expr {
                    self.values(e, f);
                }
            }
            Expr::ScalarFunction(sf) => {
                let name = sf.func.name();
                match (name, f.xdm_type()) {
                    ("named_struct", XdmType::Object(children)) => {
                        for pair in sf.args.chunks(2) {
                            let [k, v] = pair else { continue };
                            let Some(key) = string_literal(k) else {
                                continue;
                            };
                            if let Some(child) = children.iter().find(|c| c.name() == key) {
                                self.enter(v, child);
                            }
                        }
                    }
                    ("coalesce" | "nvl" | "ifnull" | "nvl2", _) => {
                        for a in &sf.args {
                            self.values(a, f);
                        }
                    }
                    ("nullif", _) => {
                        if let Some(a) = sf.args.first() {
                            self.values(a, f);
                        }
                    }
                    ("make_array" | "make_list", XdmType::Array(item)) => {
                        for a in &sf.args {
                            self.values(a, item);
                        }
                    }
                    _ => {}
                }
            }
            Expr::Literal(..) => {
                let Some(value) = string_literal(expr) else {
                    return;
                };
                let allowed = &f.constraints().enum_values;
                if allowed.is_empty() {
                    return;
                }
                if allowed.iter().any(|v| v.as_str() == Some(value)) {
                    return;
                }
                let list = allowed
                    .iter()
                    .map(|v| v.to_string())
                    .collect::<Vec<_>>()
                    .join(", ");
                let (line, column) = locate_literal(self.sql, value);
                self.out.push(CheckProblem {
                    kind: CheckKind::EnumLiteral,
                    path: Some(f.path().to_string()),
                    line,
                    column,
                    message: format!(
                        "the literal '{value}' is not one of the field's enum values ({list}): every row taking this branch will be rejected (XDM-ENUM)"
                    ),
                });
            }
            _ => {}
        }
    }
}

fn strip_alias(e: &Expr) -> &Expr {
    match e {
        Expr::Alias(a) => strip_alias(&a.expr),
        other => other,
    }
}

fn short(s: &str) -> String {
    if s.chars().count() > 80 {
        let mut t: String = s.chars().take(77).collect();
        t.push('…');
        t
    } else {
        s.to_string()
    }
}

fn string_literal(e: &Expr) -> Option<&str> {
    match e {
        Expr::Literal(
            ScalarValue::Utf8(Some(s))
            | ScalarValue::LargeUtf8(Some(s))
            | ScalarValue::Utf8View(Some(s)),
            _,
        ) => Some(s.as_str()),
        Expr::Alias(a) => string_literal(&a.expr),
        Expr::Cast(c) => string_literal(&c.expr),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Locating mistakes in the SQL text

/// The line/column of a compile error: the diagnostic's span, the parser's "at Line: X,
/// Column: Y", or where the unknown name occurs in the text.
fn locate_error(e: &DataFusionError, sql: &str) -> (Option<u64>, Option<u64>) {
    if let Some(span) = e.diagnostic().and_then(|d| d.span) {
        if span.start.line > 0 {
            return (Some(span.start.line), Some(span.start.column));
        }
    }
    let text = e.to_string();
    let at = regex::Regex::new(r"at Line: (\d+), Column: (\d+)").expect("valid regex");
    if let Some(c) = at.captures(&text) {
        return (c[1].parse().ok(), c[2].parse().ok());
    }
    let patterns = [
        r#"No field named "?([^\s".]+(?:\.[^\s".]+)?)"?"#,
        r"Invalid function '([^']+)'",
        r#"field (?:named )?['"]?([A-Za-z_][A-Za-z0-9_]*)['"]? (?:not found|does not exist)"#,
        r#"Table '?([A-Za-z_][A-Za-z0-9_.]*)'? not found"#,
        r#"table '?(?:[a-z]+\.)*([A-Za-z_][A-Za-z0-9_]*)'? not found"#,
    ];
    for p in patterns {
        let re = regex::Regex::new(p).expect("valid regex");
        if let Some(c) = re.captures(&text) {
            let name = c[1].rsplit('.').next().unwrap_or(&c[1]).to_string();
            let found = locate_name(sql, &name);
            if found.0.is_some() {
                return found;
            }
        }
    }
    (None, None)
}

/// Byte offset → 1-based (line, column in characters).
fn line_col(sql: &str, offset: usize) -> (u64, u64) {
    let before = &sql[..offset];
    let line = before.matches('\n').count() as u64 + 1;
    let col = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0) as u64
        + 1;
    (line, col)
}

/// Where `name` occurs in the SQL outside comments, as an identifier (bare or quoted) or a
/// `named_struct` key: the first such occurrence.
pub(crate) fn locate_name(sql: &str, name: &str) -> (Option<u64>, Option<u64>) {
    if name.is_empty() {
        return (None, None);
    }
    let code = mask_comments(sql);
    let bytes = code.as_bytes();
    let is_word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut best: Option<usize> = None;
    let mut consider = |i: usize| {
        if best.is_none_or(|b| i < b) {
            best = Some(i);
        }
    };
    for quoted in [format!("\"{name}\""), format!("'{name}'")] {
        if let Some(i) = code.find(&quoted) {
            consider(i);
        }
    }
    let lower = code.to_ascii_lowercase();
    let needle = name.to_ascii_lowercase();
    let mut from = 0;
    while let Some(rel) = lower[from..].find(&needle) {
        let i = from + rel;
        let end = i + needle.len();
        let left_ok = i == 0 || !is_word(bytes[i - 1]);
        let right_ok = end >= bytes.len() || !is_word(bytes[end]);
        if left_ok && right_ok {
            consider(i);
            break;
        }
        from = i + 1;
    }
    match best {
        Some(i) => {
            let (l, c) = line_col(sql, i);
            (Some(l), Some(c))
        }
        None => (None, None),
    }
}

fn locate_literal(sql: &str, value: &str) -> (Option<u64>, Option<u64>) {
    let code = mask_comments(sql);
    let lit = format!("'{}'", value.replace('\'', "''"));
    match code.find(&lit) {
        Some(i) => {
            let (l, c) = line_col(sql, i);
            (Some(l), Some(c))
        }
        None => (None, None),
    }
}

/// The SQL with `--` and `/* */` comments replaced by spaces (same byte offsets).
fn mask_comments(sql: &str) -> String {
    let b = sql.as_bytes();
    let mut out = b.to_vec();
    let mut i = 0;
    let mut in_str = false;
    while i < b.len() {
        if in_str {
            if b[i] == b'\'' {
                in_str = false;
            }
            i += 1;
        } else if b[i] == b'\'' {
            in_str = true;
            i += 1;
        } else if b[i] == b'-' && b.get(i + 1) == Some(&b'-') {
            while i < b.len() && b[i] != b'\n' {
                out[i] = b' ';
                i += 1;
            }
        } else if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
            while i < b.len() && !(b[i] == b'*' && b.get(i + 1) == Some(&b'/')) {
                if b[i] != b'\n' {
                    out[i] = b' ';
                }
                i += 1;
            }
            for _ in 0..2 {
                if i < b.len() {
                    out[i] = b' ';
                    i += 1;
                }
            }
        } else {
            i += 1;
        }
    }
    // Only ASCII bytes were replaced by ASCII spaces, but a comment may hold multi-byte
    // characters: blank every byte of them so the result stays valid UTF-8 with equal offsets.
    String::from_utf8(out).unwrap_or_else(|e| {
        e.into_bytes()
            .into_iter()
            .map(|b| if b >= 0x80 { b' ' } else { b })
            .map(char::from)
            .collect()
    })
}
