//! String functions (§2.5 "String").

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, ListBuilder, StringBuilder};
use arrow::datatypes::DataType;
use datafusion::common::Result;

use super::{boolean, bools, int64, ints, strings, utf8, utf8_list, Args, Def, MANY};

pub(crate) fn defs() -> Vec<Def> {
    vec![
        Def::new("concat", "concat(STRING_1, STRING_2, ...)",
            "[clash] Concatenates the strings; null if any argument is null (DataFusion's `concat` skips nulls). SQL: dp_concat",
            (1, MANY), utf8, concat).clash("dp_concat"),
        Def::new("explode", "explode(STRING, REGEX)",
            "Splits on a regex (default \",\") into an array; like Java String.split: empty parts kept except trailing ones",
            (1, 2), utf8_list, explode),
        Def::new("instr", "instr(INPUT, SUBSTRING, START_POSITION, OCCURRENCE)",
            "[clash] 0-based index of the OCCURRENCE-th (default 1) SUBSTRING at or after START_POSITION (default 0), -1 if absent (DataFusion's `instr` is 1-based). SQL: dp_instr",
            (2, 4), int64, instr).clash("dp_instr"),
        Def::new("replacestr", "replacestr(INPUT, TO_FIND, TO_REPLACE)",
            "Replaces every occurrence of TO_FIND by TO_REPLACE", (3, 3), utf8, replacestr),
        Def::new("substr", "substr(INPUT, START_INDEX, LENGTH)",
            "[clash] Substring of LENGTH chars (default: to the end) from the 0-based START_INDEX; negative START counts from the end; out of range is clamped (DataFusion's `substr` is 1-based). SQL: dp_substr",
            (2, 3), utf8, substr).clash("dp_substr"),
        Def::new("lower", "lower(INPUT)",
            "[clash] Lower case (identical to DataFusion's `lower`). SQL: dp_lower (or lower, lcase)",
            (1, 1), utf8, lower).clash("dp_lower"),
        Def::new("lcase", "lcase(INPUT)", "Lower case (alias of lower)", (1, 1), utf8, lower),
        Def::new("upper", "upper(INPUT)",
            "[clash] Upper case (identical to DataFusion's `upper`). SQL: dp_upper (or upper, ucase)",
            (1, 1), utf8, upper).clash("dp_upper"),
        Def::new("ucase", "ucase(INPUT)", "Upper case (alias of upper)", (1, 1), utf8, upper),
        Def::new("split", "split(INPUT, SEPARATOR)",
            "Splits on ANY of the SEPARATOR characters (default whitespace); empty parts are dropped (use explode to keep them)",
            (1, 2), utf8_list, split),
        Def::new("join", "join(SEPARATOR, [OBJECTS])",
            "Joins an array (or the remaining arguments) with SEPARATOR; null elements are empty",
            (2, MANY), utf8, join),
        Def::new("lpad", "lpad(INPUT, COUNT, PADDING)",
            "[clash] Left-pads to COUNT chars with PADDING (null/empty: space); never truncates (DataFusion's `lpad` truncates). SQL: dp_lpad",
            (2, 3), utf8, lpad).clash("dp_lpad"),
        Def::new("rpad", "rpad(INPUT, COUNT, PADDING)",
            "[clash] Right-pads to COUNT chars with PADDING (null/empty: space); never truncates (DataFusion's `rpad` truncates). SQL: dp_rpad",
            (2, 3), utf8, rpad).clash("dp_rpad"),
        Def::new("left", "left(STRING, COUNT)",
            "[clash] First COUNT chars; negative COUNT gives \"\" (DataFusion's `left` drops the last |COUNT|). SQL: dp_left",
            (2, 2), utf8, left).clash("dp_left"),
        Def::new("right", "right(STRING, COUNT)",
            "[clash] Last COUNT chars; negative COUNT gives \"\" (DataFusion's `right` drops the first |COUNT|). SQL: dp_right",
            (2, 2), utf8, right).clash("dp_right"),
        Def::new("ltrim", "ltrim(STRING)",
            "[clash] Strips leading whitespace (DataFusion's `ltrim` strips spaces only). SQL: dp_ltrim",
            (1, 1), utf8, ltrim).clash("dp_ltrim"),
        Def::new("rtrim", "rtrim(STRING)",
            "[clash] Strips trailing whitespace (DataFusion's `rtrim` strips spaces only). SQL: dp_rtrim",
            (1, 1), utf8, rtrim).clash("dp_rtrim"),
        Def::new("trim", "trim(STRING)",
            "[clash] Strips leading and trailing whitespace (DataFusion's `trim` strips spaces only). SQL: dp_trim",
            (1, 1), utf8, trim).clash("dp_trim"),
        Def::new("equals", "STRING1.equals(STRING2)", "Case-sensitive equality: equals(STRING1, STRING2)",
            (2, 2), boolean, equals),
        Def::new("equalsignorecase", "STRING1.equalsIgnoreCase(STRING2)",
            "Case-insensitive equality: equalsIgnoreCase(STRING1, STRING2)", (2, 2), boolean, equals_ignore_case),
    ]
}

fn concat(a: &Args) -> Result<ArrayRef> {
    strings(a.n, |r| {
        let mut out = String::new();
        for i in 0..a.len() {
            out.push_str(a.str(i, r)?);
        }
        Some(out)
    })
}

/// Java's `String.split(regex)`: trailing empty strings removed.
pub(crate) fn java_split(s: &str, re: &regex::Regex) -> Vec<String> {
    if s.is_empty() {
        return vec![String::new()];
    }
    let mut parts: Vec<String> = re.split(s).map(str::to_string).collect();
    // Java drops a leading empty string produced by a zero-width match at 0 only; keep simple.
    while parts.len() > 1 && parts.last().is_some_and(|p| p.is_empty()) {
        parts.pop();
    }
    if parts.len() == 1 && parts[0].is_empty() {
        parts.clear();
    }
    parts
}

/// A List<Utf8> column from a per-row function.
pub(crate) fn string_lists(
    n: usize,
    mut f: impl FnMut(usize) -> Option<Vec<String>>,
) -> Result<ArrayRef> {
    let mut b = ListBuilder::new(StringBuilder::new());
    for r in 0..n {
        match f(r) {
            Some(v) => {
                for s in v {
                    b.values().append_value(s);
                }
                b.append(true);
            }
            None => b.append(false),
        }
    }
    Ok(Arc::new(b.finish()))
}

fn explode(a: &Args) -> Result<ArrayRef> {
    let mut cache = super::regex::RegexCache::default();
    string_lists(a.n, |r| {
        let s = a.str(0, r)?;
        let pat = if a.len() > 1 { a.str(1, r)? } else { "," };
        let re = cache.get(pat)?;
        Some(java_split(s, &re))
    })
}

fn char_index(s: &str, byte: usize) -> i64 {
    s[..byte].chars().count() as i64
}

fn instr(a: &Args) -> Result<ArrayRef> {
    ints(a.n, |r| {
        let s = a.str(0, r)?;
        let sub = a.str(1, r)?;
        let start = if a.len() > 2 { a.int(2, r)? } else { 0 }.max(0) as usize;
        let occurrence = if a.len() > 3 { a.int(3, r)? } else { 1 };
        if occurrence < 1 {
            return None;
        }
        let mut from = match s.char_indices().nth(start) {
            Some((b, _)) => b,
            None if start == s.chars().count() => s.len(),
            None => return Some(-1),
        };
        let mut found = -1;
        for _ in 0..occurrence {
            match s[from..].find(sub) {
                Some(p) => {
                    found = char_index(s, from + p);
                    from += p + sub.len().max(1);
                    if from > s.len() {
                        from = s.len();
                    }
                }
                None => return Some(-1),
            }
        }
        Some(found)
    })
}

fn replacestr(a: &Args) -> Result<ArrayRef> {
    strings(a.n, |r| {
        let s = a.str(0, r)?;
        let find = a.str(1, r);
        let rep = a.str(2, r).unwrap_or("");
        match find {
            Some(f) if !f.is_empty() => Some(s.replace(f, rep)),
            _ => Some(s.to_string()),
        }
    })
}

/// Apache Commons `StringUtils.substring(str, start, end)` over chars.
fn substring(chars: &[char], start: i64, end: i64) -> String {
    let len = chars.len() as i64;
    let fix = |i: i64| if i < 0 { (len + i).max(0) } else { i.min(len) };
    let (s, e) = (fix(start), fix(end));
    if s >= e {
        return String::new();
    }
    chars[s as usize..e as usize].iter().collect()
}

fn substr(a: &Args) -> Result<ArrayRef> {
    strings(a.n, |r| {
        let chars: Vec<char> = a.str(0, r)?.chars().collect();
        let start = a.int(1, r)?;
        let len = chars.len() as i64;
        let abs_start = if start < 0 {
            (len + start).max(0)
        } else {
            start
        };
        let end = if a.len() > 2 {
            let l = a.int(2, r)?;
            if l < 0 {
                return Some(String::new());
            }
            abs_start.saturating_add(l)
        } else {
            len
        };
        Some(substring(&chars, abs_start, end))
    })
}

fn lower(a: &Args) -> Result<ArrayRef> {
    strings(a.n, |r| Some(a.str(0, r)?.to_lowercase()))
}

fn upper(a: &Args) -> Result<ArrayRef> {
    strings(a.n, |r| Some(a.str(0, r)?.to_uppercase()))
}

fn split(a: &Args) -> Result<ArrayRef> {
    string_lists(a.n, |r| {
        let s = a.str(0, r)?;
        let seps: Option<Vec<char>> = if a.len() > 1 {
            Some(a.str(1, r)?.chars().collect())
        } else {
            None
        };
        let is_sep = |c: char| match &seps {
            Some(v) if !v.is_empty() => v.contains(&c),
            _ => c.is_whitespace(),
        };
        Some(
            s.split(is_sep)
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect(),
        )
    })
}

/// The elements of a list argument at `row` as strings (None for a null list).
pub(crate) fn list_strings(arr: &ArrayRef, row: usize) -> Option<Vec<Option<String>>> {
    let values = match arr.data_type() {
        DataType::List(_) => {
            let l = arr.as_list::<i32>();
            if l.is_null(row) {
                return None;
            }
            l.value(row)
        }
        DataType::LargeList(_) => {
            let l = arr.as_list::<i64>();
            if l.is_null(row) {
                return None;
            }
            l.value(row)
        }
        DataType::FixedSizeList(..) => {
            let l = arr.as_fixed_size_list();
            if l.is_null(row) {
                return None;
            }
            l.value(row)
        }
        _ => return None,
    };
    let s = arrow::compute::cast(&values, &DataType::Utf8).ok()?;
    let s = s.as_string::<i32>();
    Some(
        (0..s.len())
            .map(|i| s.is_valid(i).then(|| s.value(i).to_string()))
            .collect(),
    )
}

fn is_list(t: &DataType) -> bool {
    matches!(
        t,
        DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..)
    )
}

fn join(a: &Args) -> Result<ArrayRef> {
    strings(a.n, |r| {
        let sep = a.str(0, r).unwrap_or("");
        let mut items: Vec<String> = Vec::new();
        for i in 1..a.len() {
            if is_list(a.arrays[i].data_type()) {
                items.extend(
                    list_strings(&a.arrays[i], r)?
                        .into_iter()
                        .map(Option::unwrap_or_default),
                );
            } else {
                items.push(a.str(i, r).unwrap_or("").to_string());
            }
        }
        Some(items.join(sep))
    })
}

fn pad(a: &Args, left: bool) -> Result<ArrayRef> {
    strings(a.n, |r| {
        let s = a.str(0, r)?;
        let size = a.int(1, r)?;
        let padding = match a.str(2, r) {
            Some(p) if !p.is_empty() => p,
            _ => " ",
        };
        let len = s.chars().count() as i64;
        if size <= len {
            return Some(s.to_string());
        }
        let fill: String = padding
            .chars()
            .cycle()
            .take((size - len) as usize)
            .collect();
        Some(if left {
            fill + s
        } else {
            s.to_string() + &fill
        })
    })
}

fn lpad(a: &Args) -> Result<ArrayRef> {
    pad(a, true)
}

fn rpad(a: &Args) -> Result<ArrayRef> {
    pad(a, false)
}

fn left(a: &Args) -> Result<ArrayRef> {
    strings(a.n, |r| {
        let s = a.str(0, r)?;
        let k = a.int(1, r)?.max(0) as usize;
        Some(s.chars().take(k).collect())
    })
}

fn right(a: &Args) -> Result<ArrayRef> {
    strings(a.n, |r| {
        let s = a.str(0, r)?;
        let k = a.int(1, r)?.max(0) as usize;
        let len = s.chars().count();
        Some(s.chars().skip(len.saturating_sub(k)).collect())
    })
}

fn ltrim(a: &Args) -> Result<ArrayRef> {
    strings(a.n, |r| Some(a.str(0, r)?.trim_start().to_string()))
}

fn rtrim(a: &Args) -> Result<ArrayRef> {
    strings(a.n, |r| Some(a.str(0, r)?.trim_end().to_string()))
}

fn trim(a: &Args) -> Result<ArrayRef> {
    strings(a.n, |r| Some(a.str(0, r)?.trim().to_string()))
}

fn equals(a: &Args) -> Result<ArrayRef> {
    bools(a.n, |r| Some(a.str(0, r)? == a.str(1, r)?))
}

fn equals_ignore_case(a: &Args) -> Result<ArrayRef> {
    bools(a.n, |r| {
        Some(a.str(0, r)?.to_lowercase() == a.str(1, r)?.to_lowercase())
    })
}
