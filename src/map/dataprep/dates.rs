//! Date and time functions (§2.5 "Date and time", §2.6). Dates are
//! `Timestamp(Millisecond, "UTC")`; patterns are Java-style (see [`super::javatime`]).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, TimestampMillisecondArray};
use arrow::datatypes::{DataType, TimeUnit, TimestampMillisecondType};
use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Timelike, Utc};
use datafusion::common::{plan_err, Result, ScalarValue};

use super::javatime::{self, parse_zone, Zone};
use super::{int64, ints, literal_str, strings, timestamp_utc, ts_type, utf8, Args, Def};

pub(crate) fn defs() -> Vec<Def> {
    vec![
        Def::new("now", "now()",
            "[clash] Current time as Timestamp(ms, UTC), per row (DataFusion's `now` is the query start in ns, +00:00). SQL: dp_now",
            (0, 0), timestamp_utc, now).clash("dp_now").volatile(),
        Def::new("timestamp", "timestamp()", "Current Unix time in milliseconds", (0, 0), int64, timestamp).volatile(),
        Def::new("date", "date(DATE, FORMAT, DEFAULT_DATE)",
            "Parses DATE with the Java FORMAT of the source (omitted: the 18 auto-detected patterns of §2.6, then ISO-8601); DEFAULT_DATE when DATE is null",
            (1, 3), timestamp_utc, date),
        Def::new("format", "format(DATE, FORMAT)", "Formats a date with a Java pattern (in the date's zone, UTC by default)",
            (2, 2), utf8, format),
        Def::new("dformat", "dformat(TIMESTAMP, FORMAT)", "Formats epoch milliseconds with a Java pattern (UTC)",
            (2, 2), utf8, dformat),
        Def::new("date_part", "date_part(COMPONENT, DATE)",
            "[clash] Component of a date: year/yyyy/yy, quarter/qq/q, month/mm/m, dayofyear/dy/y, day/dd/d, week/ww/w (ISO), weekday/dw (1=Monday), hour/hh/hh24, hh12, minute/mi/n, second/ss/s, millisecond/SSS (DataFusion's `date_part` uses SQL part names). SQL: dp_date_part",
            (2, 2), int64, date_part).clash("dp_date_part"),
        Def::new("set_date_part", "set_date_part(COMPONENT, VALUE, DATE)",
            "Sets year/yyyy/yy, month/mm/m, day/dd/d, hour/hh, minute/mi/n or second/ss/s of a date (milliseconds are dropped); invalid result → null",
            (3, 3), timestamp_utc, set_date_part),
        Def::new("make_date_time", "make_date_time(YEAR, MONTH, DAY, HOUR, MINUTE, SECOND, NANOSECOND, TIMEZONE)",
            "The instant of that local date-time in TIMEZONE (IANA id or offset), truncated to ms; out-of-range parts → null",
            (8, 8), timestamp_utc, make_date_time),
        Def::new("make_timestamp", "make_timestamp(YEAR, MONTH, DAY, HOUR, MINUTE, SECOND, NANOSECOND, TIMEZONE)",
            "Alias of make_date_time", (8, 8), timestamp_utc, make_date_time),
        Def::new("zone_date_to_utc", "zone_date_to_utc(DATE)",
            "The date in UTC (a string may carry an offset or zone: \"2019-10-17T11:55:12 PST\")",
            (1, 1), timestamp_utc, zone_date_to_utc),
        Def::new("zone_date_to_zone", "zone_date_to_zone(DATE, ZONE)",
            "The same instant in ZONE (a literal IANA id or offset): Timestamp(ms, ZONE), which format() renders in that zone",
            (2, 2), zone_ret, zone_date_to_zone),
    ]
}

/// Epoch milliseconds of each row of a date argument (timestamps, dates, epoch ms, strings).
pub(crate) fn date_arg(a: &Args, i: usize) -> Vec<Option<i64>> {
    let arr = &a.arrays[i];
    match arr.data_type() {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => (0..a.n)
            .map(|r| javatime::parse_auto(a.str(i, r)?).map(|d| d.timestamp_millis()))
            .collect(),
        DataType::Timestamp(..) | DataType::Date32 | DataType::Date64 => {
            match arrow::compute::cast(arr, &ts_type()) {
                Ok(c) => c
                    .as_primitive::<TimestampMillisecondType>()
                    .iter()
                    .collect(),
                Err(_) => vec![None; a.n],
            }
        }
        DataType::Null => vec![None; a.n],
        _ => (0..a.n).map(|r| a.int(i, r)).collect(),
    }
}

/// The zone of a date argument's type (None: UTC).
fn zone_of(t: &DataType) -> (Option<Zone>, String) {
    match t {
        DataType::Timestamp(_, Some(tz)) if !matches!(tz.as_ref(), "UTC" | "+00:00" | "Z") => {
            (parse_zone(tz), tz.to_string())
        }
        _ => (None, "UTC".to_string()),
    }
}

fn from_ms(ms: i64) -> Option<DateTime<Utc>> {
    Utc.timestamp_millis_opt(ms).single()
}

fn timestamps(v: Vec<Option<i64>>) -> Result<ArrayRef> {
    Ok(Arc::new(
        TimestampMillisecondArray::from(v).with_timezone("UTC"),
    ))
}

fn now(a: &Args) -> Result<ArrayRef> {
    let ms = Utc::now().timestamp_millis();
    timestamps(vec![Some(ms); a.n])
}

fn timestamp(a: &Args) -> Result<ArrayRef> {
    let ms = Utc::now().timestamp_millis();
    ints(a.n, |_| Some(ms))
}

fn date(a: &Args) -> Result<ArrayRef> {
    let parsed: Vec<Option<i64>> = if a.len() > 1
        && matches!(
            a.arrays[0].data_type(),
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
        ) {
        (0..a.n)
            .map(|r| {
                javatime::parse(a.str(0, r)?.trim(), a.str(1, r)?).map(|d| d.timestamp_millis())
            })
            .collect()
    } else {
        date_arg(a, 0)
    };
    if a.len() < 3 {
        return timestamps(parsed);
    }
    let defaults = date_arg(a, 2);
    timestamps(
        parsed
            .into_iter()
            .enumerate()
            .map(|(r, v)| if a.is_null(0, r) { defaults[r] } else { v })
            .collect(),
    )
}

fn format(a: &Args) -> Result<ArrayRef> {
    let dates = date_arg(a, 0);
    let (zone, id) = zone_of(a.arrays[0].data_type());
    strings(a.n, |r| {
        Some(javatime::format(
            from_ms(dates[r]?)?,
            a.str(1, r)?,
            zone.as_ref(),
            &id,
        ))
    })
}

fn dformat(a: &Args) -> Result<ArrayRef> {
    strings(a.n, |r| {
        Some(javatime::format(
            from_ms(a.int(0, r)?)?,
            a.str(1, r)?,
            None,
            "UTC",
        ))
    })
}

fn date_part(a: &Args) -> Result<ArrayRef> {
    let dates = date_arg(a, 1);
    let (zone, _) = zone_of(a.arrays[1].data_type());
    ints(a.n, |r| {
        let t = javatime::in_zone(from_ms(dates[r]?)?, zone.as_ref());
        let c = a.str(0, r)?.trim();
        Some(match c {
            "SSS" | "ms" => (t.nanosecond() / 1_000_000) as i64,
            _ => match c.to_ascii_lowercase().as_str() {
                "year" | "yyyy" | "yy" => t.year() as i64,
                "quarter" | "qq" | "q" => (t.month0() / 3 + 1) as i64,
                "month" | "mm" | "m" => t.month() as i64,
                "dayofyear" | "dy" | "y" => t.ordinal() as i64,
                "day" | "dd" | "d" => t.day() as i64,
                "week" | "ww" | "w" => t.iso_week().week() as i64,
                "weekday" | "dw" => t.weekday().number_from_monday() as i64,
                "hour" | "hh" | "hh24" => t.hour() as i64,
                "hh12" => {
                    (if t.hour().is_multiple_of(12) {
                        12
                    } else {
                        t.hour() % 12
                    }) as i64
                }
                "minute" | "mi" | "n" => t.minute() as i64,
                "second" | "ss" | "s" => t.second() as i64,
                "millisecond" => (t.nanosecond() / 1_000_000) as i64,
                _ => return None,
            },
        })
    })
}

fn set_date_part(a: &Args) -> Result<ArrayRef> {
    let dates = date_arg(a, 2);
    let v: Vec<Option<i64>> = (0..a.n)
        .map(|r| {
            let t = from_ms(dates[r]?)?.naive_utc().with_nanosecond(0)?;
            let value = a.int(1, r)?;
            let v32 = u32::try_from(value).ok();
            let t = match a.str(0, r)?.trim().to_ascii_lowercase().as_str() {
                "year" | "yyyy" | "yy" => t.with_year(i32::try_from(value).ok()?)?,
                "month" | "mm" | "m" => t.with_month(v32?)?,
                "day" | "dd" | "d" => t.with_day(v32?)?,
                "hour" | "hh" => t.with_hour(v32?)?,
                "minute" | "mi" | "n" => t.with_minute(v32?)?,
                "second" | "ss" | "s" => t.with_second(v32?)?,
                _ => return None,
            };
            Some(t.and_utc().timestamp_millis())
        })
        .collect();
    timestamps(v)
}

fn make_date_time(a: &Args) -> Result<ArrayRef> {
    let v: Vec<Option<i64>> = (0..a.n)
        .map(|r| {
            let p = |i| a.int(i, r).and_then(|x| u32::try_from(x).ok());
            let year = i32::try_from(a.int(0, r)?).ok()?;
            let nano = p(6)?;
            if nano > 999_999_999 {
                return None;
            }
            let ndt = NaiveDate::from_ymd_opt(year, p(1)?, p(2)?)?.and_hms_nano_opt(
                p(3)?,
                p(4)?,
                p(5)?,
                nano,
            )?;
            let zone = parse_zone(a.str(7, r)?)?;
            javatime::to_utc(ndt, Some(&zone)).map(|d| d.timestamp_millis())
        })
        .collect();
    timestamps(v)
}

fn zone_date_to_utc(a: &Args) -> Result<ArrayRef> {
    timestamps(date_arg(a, 0))
}

fn zone_ret(_: &[DataType], lits: &[Option<&ScalarValue>]) -> Result<DataType> {
    let Some(zone) = lits.get(1).and_then(literal_str) else {
        return plan_err!("zone_date_to_zone(DATE, ZONE): ZONE must be a string literal");
    };
    let zone = zone.trim();
    if zone.parse::<arrow::array::timezone::Tz>().is_err() {
        return plan_err!("zone_date_to_zone: unknown zone {zone:?} (use an IANA id such as \"Europe/Paris\" or an offset such as \"+02:00\")");
    }
    Ok(DataType::Timestamp(
        TimeUnit::Millisecond,
        Some(zone.into()),
    ))
}

fn zone_date_to_zone(a: &Args) -> Result<ArrayRef> {
    let DataType::Timestamp(_, Some(tz)) = &a.ret else {
        return plan_err!("zone_date_to_zone: unexpected return type");
    };
    Ok(Arc::new(
        TimestampMillisecondArray::from(date_arg(a, 0)).with_timezone(tz.clone()),
    ))
}
