//! Java `DateTimeFormatter`-style patterns (`yyyy-MM-dd'T'HH:mm:ss.SSSX`): a small parser and
//! formatter over chrono, plus Data Prep's date auto-detection (§2.6).
//!
//! Parsing rules: a numeric field directly followed by another numeric field takes exactly its
//! letter count of digits (`yyyyMMdd`); otherwise `yy` is exactly two digits (20yy), `yyyy` four
//! or more, other fields one or two digits, and `S…` one to nine fraction digits. `MMM`/`MMMM`
//! are English month names, `E` day names, `a` AM/PM, `X`/`x`/`Z` an offset (`Z`, `±HH`,
//! `±HHMM`, `±HH:MM`), `z`/`V`/`O` a zone (IANA id, `UTC`/`GMT±h`, or a common abbreviation
//! such as `PST`). Text in quotes is literal. Without a zone the value is UTC.

use std::str::FromStr;

use arrow::array::timezone::Tz;
use chrono::{
    DateTime, Datelike, FixedOffset, NaiveDate, NaiveDateTime, Offset, TimeZone, Timelike, Utc,
};

/// Data Prep's auto-detected patterns, in order (§2.6).
pub(crate) const AUTO_PATTERNS: [&str; 18] = [
    "yyyy-MM-dd HH:mm:ssZ",
    "yyyy-MM-dd HH:mm:ss.SSSZ",
    "yyyy-MM-dd HH:mm:ss.SSS",
    "yyyy-MM-dd'T'HH:mm:ss.SSSX",
    "yyyy-MM-dd'T'HH:mm:ss'Z'",
    "yyyy-MM-dd",
    "yyyy/MM/dd",
    "yyyy.MM.dd",
    "yyyy-MMM-dd",
    "yyyyMMdd",
    "MM-dd-yyyy",
    "MMddyyyy",
    "M/dd/yyyy",
    "dd.M.yyyy",
    "M/dd/yyyy hh:mm:ss a",
    "dd.M.yyyy hh:mm:ss a",
    "dd.MMM.yyyy",
    "dd-MMM-yyyy",
];

/// Tried after the 18 documented patterns: ISO-8601 forms the docs' own examples rely on
/// (`date("2019-10-23 11:24")`, `date("2016-11-09T11:44:44.797")`, `2019-10-17T11:55:12 PST`).
const FALLBACK_PATTERNS: [&str; 14] = [
    "yyyy-MM-dd'T'HH:mm:ss.SX",
    "yyyy-MM-dd'T'HH:mm:ssX",
    "yyyy-MM-dd'T'HH:mm:ss.S",
    "yyyy-MM-dd'T'HH:mm:ss",
    "yyyy-MM-dd'T'HH:mm",
    "yyyy-MM-dd HH:mm:ss.SX",
    "yyyy-MM-dd HH:mm:ssX",
    "yyyy-MM-dd HH:mm:ss",
    "yyyy-MM-dd HH:mm",
    "yyyy-MM-dd'T'HH:mm:ss z",
    "yyyy-MM-dd'T'HH:mm:ss.S z",
    "yyyy-MM-dd HH:mm:ss z",
    "yyyy-MM-dd'T'HH:mm:ssz",
    "EEE MMM dd HH:mm:ss z yyyy",
];

/// Auto-detects a date string: the 18 documented patterns in order, then ISO-8601 fallbacks.
pub(crate) fn parse_auto(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    AUTO_PATTERNS
        .iter()
        .chain(FALLBACK_PATTERNS.iter())
        .find_map(|p| parse(s, p))
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Field(char, usize),
    Lit(String),
}

fn tokenize(p: &str) -> Vec<Tok> {
    let chars: Vec<char> = p.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let push_lit = |out: &mut Vec<Tok>, s: String| match out.last_mut() {
        Some(Tok::Lit(l)) => l.push_str(&s),
        _ => out.push(Tok::Lit(s)),
    };
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            if chars.get(i + 1) == Some(&'\'') {
                push_lit(&mut out, "'".into());
                i += 2;
                continue;
            }
            let mut lit = String::new();
            i += 1;
            while i < chars.len() {
                if chars[i] == '\'' {
                    if chars.get(i + 1) == Some(&'\'') {
                        lit.push('\'');
                        i += 2;
                        continue;
                    }
                    break;
                }
                lit.push(chars[i]);
                i += 1;
            }
            i += 1;
            push_lit(&mut out, lit);
        } else if c.is_ascii_alphabetic() {
            let mut n = 1;
            while chars.get(i + n) == Some(&c) {
                n += 1;
            }
            out.push(Tok::Field(c, n));
            i += n;
        } else {
            push_lit(&mut out, c.to_string());
            i += 1;
        }
    }
    out
}

fn is_numeric(t: &Tok) -> bool {
    match t {
        Tok::Field(c, n) => match c {
            'M' | 'L' | 'Q' | 'q' => *n < 3,
            'y' | 'Y' | 'd' | 'D' | 'H' | 'k' | 'K' | 'h' | 'm' | 's' | 'S' | 'u' | 'w' | 'W'
            | 'F' => true,
            _ => false,
        },
        Tok::Lit(_) => false,
    }
}

const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];
const DAYS: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

/// Matches a full or 3-letter English name at the start of `s` (case-insensitive).
fn name_at(s: &str, names: &[&str]) -> Option<(usize, usize)> {
    let lower = s.to_ascii_lowercase();
    for (i, n) in names.iter().enumerate() {
        if lower.starts_with(n) {
            return Some((i, n.len()));
        }
    }
    for (i, n) in names.iter().enumerate() {
        if lower.starts_with(&n[..3]) {
            return Some((i, 3));
        }
    }
    None
}

/// Zone abbreviations Java still resolves (fixed offsets, in seconds).
fn abbreviation(z: &str) -> Option<i32> {
    Some(
        3600 * match z.to_ascii_uppercase().as_str() {
            "UTC" | "GMT" | "UT" | "Z" | "WET" => 0,
            "PST" => -8,
            "PDT" | "MST" => -7,
            "MDT" | "CST" => -6,
            "CDT" | "EST" => -5,
            "EDT" => -4,
            "AKST" => -9,
            "AKDT" => -8,
            "HST" => -10,
            "BST" | "CET" | "WEST" => 1,
            "CEST" | "EET" => 2,
            "EEST" | "MSK" => 3,
            "IST" => return Some(5 * 3600 + 1800),
            "JST" | "KST" => 9,
            "AEST" => 10,
            "AEDT" => 11,
            _ => return None,
        },
    )
}

/// A parsed zone: a fixed offset or a named zone.
#[derive(Clone)]
pub(crate) enum Zone {
    Fixed(i32),
    Named(Tz),
}

/// A zone id: IANA name, `UTC`, `GMT+8`, `+02:00`, or an abbreviation.
pub(crate) fn parse_zone(z: &str) -> Option<Zone> {
    let z = z.trim();
    if let Some(secs) = abbreviation(z) {
        return Some(Zone::Fixed(secs));
    }
    for prefix in ["GMT", "UTC", "UT"] {
        if let Some(rest) = z.strip_prefix(prefix) {
            if let Some((secs, used)) = offset_at(rest) {
                if used == rest.len() {
                    return Some(Zone::Fixed(secs));
                }
            }
        }
    }
    if let Some((secs, used)) = offset_at(z) {
        if used == z.len() {
            return Some(Zone::Fixed(secs));
        }
    }
    Tz::from_str(z).ok().map(Zone::Named)
}

/// `Z`, `±H`, `±HH`, `±HHMM`, `±HH:MM` at the start of `s`: (seconds, bytes used).
fn offset_at(s: &str) -> Option<(i32, usize)> {
    let b = s.as_bytes();
    if b.first() == Some(&b'Z') {
        return Some((0, 1));
    }
    let sign = match b.first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let digits = |from: usize, max: usize| {
        let n = b[from..]
            .iter()
            .take(max)
            .take_while(|c| c.is_ascii_digit())
            .count();
        (
            n,
            std::str::from_utf8(&b[from..from + n])
                .ok()
                .and_then(|t| t.parse::<i32>().ok()),
        )
    };
    let (hn, h) = digits(1, 2);
    let h = h?;
    let mut used = 1 + hn;
    let mut m = 0;
    if hn == 2 {
        let colon = b.get(used) == Some(&b':');
        let start = used + colon as usize;
        let (mn, mv) = digits(start, 2);
        if mn == 2 {
            m = mv?;
            used = start + 2;
        }
    }
    if h > 18 || m > 59 {
        return None;
    }
    Some((sign * (h * 3600 + m * 60), used))
}

/// Parses `s` with a Java pattern; the whole input must be consumed.
pub(crate) fn parse(s: &str, pattern: &str) -> Option<DateTime<Utc>> {
    let toks = tokenize(pattern);
    let mut pos = 0usize;
    let (mut year, mut month, mut day, mut doy) =
        (None::<i32>, None::<u32>, None::<u32>, None::<u32>);
    let (mut hour, mut hour12, mut pm) = (None::<u32>, None::<u32>, None::<bool>);
    let (mut minute, mut second, mut nano) = (0u32, 0u32, 0u32);
    let mut zone: Option<Zone> = None;
    for (i, t) in toks.iter().enumerate() {
        let rest = &s[pos..];
        match t {
            Tok::Lit(l) => {
                pos += rest.strip_prefix(l.as_str()).map(|_| l.len())?;
            }
            Tok::Field(c, n) if is_numeric(t) => {
                let adjacent = toks.get(i + 1).is_some_and(is_numeric);
                let (min, max) = match (c, *n) {
                    _ if adjacent => (*n, *n),
                    ('y' | 'Y', 2) => (2, 2),
                    ('y' | 'Y', 1) => (1, 9),
                    ('y' | 'Y', k) => (k, 9),
                    ('S', _) => (1, 9),
                    ('D', k) => (k.min(3), 3),
                    (_, k) => (1, k.max(2)),
                };
                let len = rest
                    .bytes()
                    .take(max)
                    .take_while(|b| b.is_ascii_digit())
                    .count();
                if len < min {
                    return None;
                }
                let text = &rest[..len];
                let v: u64 = text.parse().ok()?;
                pos += len;
                match c {
                    'y' | 'Y' => year = Some(if *n == 2 { 2000 + v as i32 } else { v as i32 }),
                    'M' | 'L' => month = Some(v as u32),
                    'd' => day = Some(v as u32),
                    'D' => doy = Some(v as u32),
                    'H' => hour = Some(v as u32),
                    'k' => hour = Some((v % 24) as u32),
                    'K' | 'h' => hour12 = Some(v as u32),
                    'm' => minute = v as u32,
                    's' => second = v as u32,
                    'S' => nano = (v * 10u64.pow(9 - len as u32)) as u32,
                    _ => {}
                }
            }
            Tok::Field('M' | 'L', _) => {
                let (m, used) = name_at(rest, &MONTHS)?;
                month = Some(m as u32 + 1);
                pos += used;
            }
            Tok::Field('E', _) => {
                let (_, used) = name_at(rest, &DAYS)?;
                pos += used;
            }
            Tok::Field('a', _) => {
                let up = rest.get(..2)?.to_ascii_uppercase();
                pm = Some(match up.as_str() {
                    "AM" => false,
                    "PM" => true,
                    _ => return None,
                });
                pos += 2;
            }
            Tok::Field('G', _) => {
                let up = rest.get(..2)?.to_ascii_uppercase();
                if up != "AD" {
                    return None;
                }
                pos += 2;
            }
            Tok::Field('X' | 'x' | 'Z', _) => {
                let (secs, used) = offset_at(rest)?;
                zone = Some(Zone::Fixed(secs));
                pos += used;
            }
            Tok::Field('z' | 'V' | 'O', _) => {
                let len = rest
                    .find(|c: char| {
                        !(c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '+' | '-' | ':'))
                    })
                    .unwrap_or(rest.len());
                zone = Some(parse_zone(&rest[..len])?);
                pos += len;
            }
            Tok::Field(..) => return None,
        }
    }
    if pos != s.len() {
        return None;
    }
    let year = year.unwrap_or(1970);
    let date = match doy {
        Some(d) if month.is_none() => NaiveDate::from_yo_opt(year, d)?,
        _ => NaiveDate::from_ymd_opt(year, month.unwrap_or(1), day.unwrap_or(1))?,
    };
    let hour = match (hour, hour12) {
        (Some(h), _) => h,
        (None, Some(h)) if (1..=12).contains(&h) || h == 0 => {
            (h % 12) + if pm == Some(true) { 12 } else { 0 }
        }
        (None, Some(_)) => return None,
        (None, None) => 0,
    };
    let ndt = date.and_hms_nano_opt(hour, minute, second, nano)?;
    to_utc(ndt, zone.as_ref())
}

/// A local date-time in a zone (UTC when None) as an instant.
pub(crate) fn to_utc(ndt: NaiveDateTime, zone: Option<&Zone>) -> Option<DateTime<Utc>> {
    Some(match zone {
        None => Utc.from_utc_datetime(&ndt),
        Some(Zone::Fixed(secs)) => FixedOffset::east_opt(*secs)?
            .from_local_datetime(&ndt)
            .single()?
            .to_utc(),
        Some(Zone::Named(tz)) => tz.from_local_datetime(&ndt).earliest()?.to_utc(),
    })
}

/// An instant in a zone: its fixed offset there.
pub(crate) fn in_zone(dt: DateTime<Utc>, zone: Option<&Zone>) -> DateTime<FixedOffset> {
    match zone {
        None => dt.fixed_offset(),
        Some(Zone::Fixed(secs)) => {
            dt.with_timezone(&FixedOffset::east_opt(*secs).unwrap_or(Utc.fix()))
        }
        Some(Zone::Named(tz)) => dt.with_timezone(tz).fixed_offset(),
    }
}

fn offset_text(secs: i32, colon: bool, minutes_optional: bool) -> String {
    let sign = if secs < 0 { '-' } else { '+' };
    let (h, m) = (secs.abs() / 3600, (secs.abs() % 3600) / 60);
    match (minutes_optional && m == 0, colon) {
        (true, _) => format!("{sign}{h:02}"),
        (false, true) => format!("{sign}{h:02}:{m:02}"),
        (false, false) => format!("{sign}{h:02}{m:02}"),
    }
}

/// Formats an instant with a Java pattern, in `zone` (UTC when None); `zone_id` names it for
/// `z`/`V`.
pub(crate) fn format(
    dt: DateTime<Utc>,
    pattern: &str,
    zone: Option<&Zone>,
    zone_id: &str,
) -> String {
    let t = in_zone(dt, zone);
    let off = t.offset().local_minus_utc();
    let mut out = String::new();
    for tok in tokenize(pattern) {
        let (c, n) = match tok {
            Tok::Lit(l) => {
                out.push_str(&l);
                continue;
            }
            Tok::Field(c, n) => (c, n),
        };
        let num = |v: i64| format!("{v:0width$}", width = n);
        let s = match c {
            'y' | 'Y' => {
                if n == 2 {
                    format!("{:02}", t.year().rem_euclid(100))
                } else {
                    num(t.year() as i64)
                }
            }
            'M' | 'L' => match n {
                1 | 2 => num(t.month() as i64),
                3 => cap(&MONTHS[t.month0() as usize][..3]),
                _ => cap(MONTHS[t.month0() as usize]),
            },
            'd' => num(t.day() as i64),
            'D' => num(t.ordinal() as i64),
            'H' => num(t.hour() as i64),
            'k' => num(if t.hour() == 0 { 24 } else { t.hour() as i64 }),
            'K' => num((t.hour() % 12) as i64),
            'h' => num(if t.hour().is_multiple_of(12) {
                12
            } else {
                (t.hour() % 12) as i64
            }),
            'm' => num(t.minute() as i64),
            's' => num(t.second() as i64),
            'S' => {
                let frac = format!("{:09}", t.nanosecond() % 1_000_000_000);
                if n <= 9 {
                    frac[..n].to_string()
                } else {
                    format!("{frac:0<n$}")
                }
            }
            'a' => {
                if t.hour() < 12 {
                    "AM".into()
                } else {
                    "PM".into()
                }
            }
            'E' => {
                let d = DAYS[t.weekday().num_days_from_monday() as usize];
                if n >= 4 {
                    cap(d)
                } else {
                    cap(&d[..3])
                }
            }
            'u' | 'e' | 'c' => num(t.weekday().number_from_monday() as i64),
            'w' => num(t.iso_week().week() as i64),
            'W' => num(((t.day() - 1) / 7 + 1) as i64),
            'F' => num(((t.day() - 1) / 7 + 1) as i64),
            'Q' | 'q' => {
                let q = t.month0() / 3 + 1;
                if n >= 3 {
                    format!("Q{q}")
                } else {
                    num(q as i64)
                }
            }
            'G' => "AD".into(),
            'X' if off == 0 => "Z".into(),
            'X' | 'x' => offset_text(off, n >= 3, n == 1),
            'Z' => match n {
                1..=3 => offset_text(off, false, false),
                4 => {
                    if off == 0 {
                        "GMT".into()
                    } else {
                        format!("GMT{}", offset_text(off, true, false))
                    }
                }
                _ => {
                    if off == 0 {
                        "Z".into()
                    } else {
                        offset_text(off, true, false)
                    }
                }
            },
            'O' => {
                if off == 0 {
                    "GMT".into()
                } else {
                    format!("GMT{}", offset_text(off, true, true))
                }
            }
            'z' | 'V' => zone_id.to_string(),
            other => other.to_string().repeat(n),
        };
        out.push_str(&s);
    }
    out
}

fn cap(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_round_trip() {
        let dt = parse("2019-10-23 11:24", "yyyy-MM-dd HH:mm").unwrap();
        assert_eq!(
            format(dt, "yyyy-MM-dd'T'HH:mm:ss.SSSX", None, "UTC"),
            "2019-10-23T11:24:00.000Z"
        );
        assert!(parse("12112020", "yyyyMMdd").is_none());
        assert_eq!(
            parse("12112020", "MMddyyyy").unwrap().to_rfc3339(),
            "2020-12-11T00:00:00+00:00"
        );
        assert_eq!(
            parse_auto("2019-10-17T11:55:12 PST").unwrap().to_rfc3339(),
            "2019-10-17T19:55:12+00:00"
        );
    }
}
