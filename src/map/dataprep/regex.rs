//! Regular-expression functions (§2.5 "Regular expression"). Patterns are Rust `regex` syntax,
//! which covers Java's except look-around and back-references; an invalid pattern gives null.

use std::collections::HashMap;

use arrow::array::ArrayRef;
use datafusion::common::Result;

use super::{boolean, bools, utf8_list, Args, Def};

pub(crate) fn defs() -> Vec<Def> {
    vec![
        Def::new("extract_regex", "extract_regex(STRING, REGEX)",
            "Groups of the first match of REGEX in STRING (group 0, the whole match, first; unmatched groups null); null if no match",
            (2, 2), utf8_list, extract_regex),
        Def::new("matches_regex", "matches_regex(STRING, REGEX)",
            "Whether the WHOLE string matches REGEX (Java String.matches)", (2, 2), boolean, matches_regex),
    ]
}

/// Compiled patterns by source text (the pattern is usually a literal: compiled once per batch).
#[derive(Default)]
pub(crate) struct RegexCache {
    map: HashMap<String, Option<regex::Regex>>,
}

impl RegexCache {
    /// The compiled pattern, None if invalid.
    pub fn get(&mut self, pat: &str) -> Option<regex::Regex> {
        if let Some(r) = self.map.get(pat) {
            return r.clone();
        }
        if self.map.len() > 256 {
            self.map.clear();
        }
        let r = regex::Regex::new(pat).ok();
        self.map.insert(pat.to_string(), r.clone());
        r
    }
}

fn extract_regex(a: &Args) -> Result<ArrayRef> {
    let mut cache = RegexCache::default();
    let mut b = arrow::array::ListBuilder::new(arrow::array::StringBuilder::new());
    for r in 0..a.n {
        let caps = (|| {
            let s = a.str(0, r)?;
            let re = cache.get(a.str(1, r)?)?;
            let c = re.captures(s)?;
            Some(
                c.iter()
                    .map(|m| m.map(|m| m.as_str().to_string()))
                    .collect::<Vec<_>>(),
            )
        })();
        match caps {
            Some(v) => {
                for g in v {
                    b.values().append_option(g);
                }
                b.append(true);
            }
            None => b.append(false),
        }
    }
    Ok(std::sync::Arc::new(b.finish()))
}

fn matches_regex(a: &Args) -> Result<ArrayRef> {
    let mut cache = RegexCache::default();
    bools(a.n, |r| {
        let s = a.str(0, r)?;
        let re = cache.get(&format!("^(?:{})$", a.str(1, r)?))?;
        Some(re.is_match(s))
    })
}
