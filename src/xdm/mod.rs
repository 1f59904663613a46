//! XDM schema model and validation.
//!
//! The last stage before Parquet: the SQL mapping's output is held against the target
//! XDM schema with Adobe Experience Platform's Data Prep semantics.
//!
//! - [`XdmSchema`] parses an XDM JSON Schema as Platform exports it (compatibility mode:
//!   `_id`, `timestamp`, tenant object `_<tenant>`, objects, arrays, maps, `required`,
//!   `enum`, `pattern`, length and range bounds, `format`, identity descriptors) and
//!   yields the Arrow schema of the Parquet files ([`XdmSchema::arrow_schema`]).
//! - [`XdmSchema::check_output`] compares a mapping's output schema with the XDM schema
//!   before a run: unknown columns, required fields never produced, unconvertible types.
//! - [`validate`] converts every column to its XDM Arrow type. A value that cannot be
//!   converted nulls that field in that row and is recorded as a warning
//!   (`MAPPER-3700-400`); a row that then breaks a rule of the schema (required, enum,
//!   pattern, length, range, format) is rejected with all of its issues.
//!
//! Nulls are absence: an empty string, an empty array or map and an object whose fields
//! are all absent count as absent, as Platform accepts no null or empty values.

mod check;
mod convert;
mod parse;
mod schema;
mod validate;

pub use check::{ProblemKind, SchemaProblem};
pub use schema::{Behavior, Constraints, Format, Identity, XdmField, XdmSchema, XdmType};
pub use validate::{validate, FieldIssue, RejectedRow, Validated};

use std::path::PathBuf;

use arrow::error::ArrowError;

/// Data Prep's code for a transformation error that nulled a field ("Mapper Transform Error").
pub const CODE_MAPPER_TRANSFORM: &str = "MAPPER-3700-400";
/// Platform's code for a required field that is missing or null.
pub const CODE_REQUIRED: &str = "INGEST-1555-400";
/// A string value outside the field's `enum`.
pub const CODE_ENUM: &str = "XDM-ENUM";
/// A string value that does not match the field's `pattern`.
pub const CODE_PATTERN: &str = "XDM-PATTERN";
/// A string shorter than `minLength` characters.
pub const CODE_MIN_LENGTH: &str = "XDM-MINLENGTH";
/// A string longer than `maxLength` characters.
pub const CODE_MAX_LENGTH: &str = "XDM-MAXLENGTH";
/// A number below `minimum`.
pub const CODE_MINIMUM: &str = "XDM-MINIMUM";
/// A number above `maximum`.
pub const CODE_MAXIMUM: &str = "XDM-MAXIMUM";
/// A string that does not have the field's `format` (date-time, date, uri, uri-reference, email).
pub const CODE_FORMAT: &str = "XDM-FORMAT";

/// Errors of the XDM stage. Rows that fail validation are not errors: see [`Validated`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum XdmError {
    /// The schema file could not be read.
    #[error("reading XDM schema {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The schema text is not JSON.
    #[error("{}not valid JSON: {source}", if .origin.is_empty() { String::new() } else { format!("XDM schema {} is ", .origin) })]
    Json {
        /// Where the text came from (a path; empty for text given as such).
        origin: String,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// The schema is JSON but not an XDM schema this engine understands.
    #[error("{pointer}: {message}")]
    Schema {
        /// JSON pointer (as a URI fragment, `#/properties/_acme/...`) of the offending part.
        pointer: String,
        /// What is wrong with it.
        message: String,
    },
    /// The batch handed to [`validate`] has columns the schema lacks or types that cannot be
    /// converted ([`XdmSchema::check_output`] reports the same problems before a run).
    #[error("mapped batch does not fit the XDM schema: {}", join_problems(.problems))]
    Mismatch {
        /// Every problem found.
        problems: Vec<SchemaProblem>,
    },
    /// An Arrow kernel failed while converting a column.
    #[error("converting column {column} to its XDM type")]
    Arrow {
        /// Dotted path of the column.
        column: String,
        /// The Arrow error.
        #[source]
        source: ArrowError,
    },
}

fn join_problems(problems: &[SchemaProblem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}
