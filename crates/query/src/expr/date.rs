//! Date operators: the date parts (`$year` ... `$isoDayOfWeek`), `$dateToParts`,
//! `$dateFromParts`, `$dateToString`, `$dateFromString`, `$dateAdd`, `$dateSubtract`,
//! `$dateDiff`, `$dateTrunc`.
//!
//! Time zones: "UTC"/"GMT" (and their `Etc/` spellings) and fixed offsets
//! (`+hh:mm`, `+hhmm`, `+hh`). Olson names with daylight saving rules need the tz
//! database, which Eddy does not ship: they fail with mongod's 40485
//! "unrecognized time zone identifier" (a documented divergence).

use bson::{doc, Bson};
use eddy_codes::{ErrorCode, MongoError};

use super::num::{self, to_i64};
use super::{null, nullish, type_name_of, value_to_string, Ctx, Named, Node, Parser};
use crate::util;

type R = Result<Option<Bson>, MongoError>;

const MS_PER_DAY: i64 = 86_400_000;

/// The single-value date part operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    Year,
    Month,
    DayOfMonth,
    Hour,
    Minute,
    Second,
    Millisecond,
    DayOfWeek,
    DayOfYear,
    Week,
    IsoWeek,
    IsoWeekYear,
    IsoDayOfWeek,
}

impl Part {
    fn from_name(name: &str) -> Option<Part> {
        use Part::*;
        Some(match name {
            "$year" => Year,
            "$month" => Month,
            "$dayOfMonth" => DayOfMonth,
            "$hour" => Hour,
            "$minute" => Minute,
            "$second" => Second,
            "$millisecond" => Millisecond,
            "$dayOfWeek" => DayOfWeek,
            "$dayOfYear" => DayOfYear,
            "$week" => Week,
            "$isoWeek" => IsoWeek,
            "$isoWeekYear" => IsoWeekYear,
            "$isoDayOfWeek" => IsoDayOfWeek,
            _ => return None,
        })
    }
}

// ---- calendar arithmetic (proleptic Gregorian, Howard Hinnant's algorithms) ----

pub(crate) fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

pub(crate) fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ => {
            if is_leap(y) {
                29
            } else {
                28
            }
        }
    }
}

/// 0 = Sunday ... 6 = Saturday.
fn weekday(days: i64) -> i64 {
    (days + 4).rem_euclid(7)
}

/// The broken-down local time of a date.
#[derive(Debug, Clone, Copy)]
struct Parts {
    year: i64,
    month: i64,
    day: i64,
    hour: i64,
    minute: i64,
    second: i64,
    ms: i64,
    /// days since the epoch (local)
    days: i64,
}

impl Parts {
    fn of(local_ms: i64) -> Parts {
        let days = local_ms.div_euclid(MS_PER_DAY);
        let rem = local_ms.rem_euclid(MS_PER_DAY);
        let (year, month, day) = civil_from_days(days);
        Parts {
            year,
            month,
            day,
            hour: rem / 3_600_000,
            minute: rem / 60_000 % 60,
            second: rem / 1000 % 60,
            ms: rem % 1000,
            days,
        }
    }

    fn day_of_year(&self) -> i64 {
        self.days - days_from_civil(self.year, 1, 1) + 1
    }

    /// 1 = Sunday ... 7 = Saturday.
    fn day_of_week(&self) -> i64 {
        weekday(self.days) + 1
    }

    /// 1 = Monday ... 7 = Sunday.
    fn iso_day_of_week(&self) -> i64 {
        (weekday(self.days) + 6) % 7 + 1
    }

    /// `%U`: weeks starting on Sunday, days before the first Sunday are week 0.
    fn week(&self) -> i64 {
        (self.day_of_year() - 1 + 7 - weekday(self.days)) / 7
    }

    fn iso_week_and_year(&self) -> (i64, i64) {
        let thursday = self.days - (self.iso_day_of_week() - 4);
        let (ty, _, _) = civil_from_days(thursday);
        let week = (thursday - days_from_civil(ty, 1, 1)) / 7 + 1;
        (week, ty)
    }
}

/// A time zone: a fixed offset from UTC in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tz {
    offset_secs: i64,
}

impl Tz {
    const UTC: Tz = Tz { offset_secs: 0 };

    pub(crate) fn utc_zone() -> Tz {
        Tz::UTC
    }

    fn local(self, utc_ms: i64) -> i64 {
        utc_ms + self.offset_secs * 1000
    }

    fn utc(self, local_ms: i64) -> i64 {
        local_ms - self.offset_secs * 1000
    }

    fn parse(s: &str) -> Result<Tz, MongoError> {
        match s {
            "UTC" | "GMT" | "Z" | "Etc/UTC" | "Etc/GMT" | "Etc/Universal" | "Etc/Zulu" | "UCT"
            | "Universal" | "Zulu" | "Etc/UCT" | "GMT0" | "Etc/GMT0" | "Greenwich" => {
                return Ok(Tz::UTC)
            }
            _ => {}
        }
        parse_offset(s)
            .map(|o| Tz { offset_secs: o })
            .ok_or_else(|| {
                MongoError::location(40485, format!("unrecognized time zone identifier: \"{s}\""))
            })
    }
}

/// `+hh`, `+hhmm`, `+hh:mm` (and `-`).
fn parse_offset(s: &str) -> Option<i64> {
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    let digits: String = rest.chars().filter(|c| *c != ':').collect();
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (h, m) = match (digits.len(), rest.contains(':')) {
        (2, false) => (digits.parse::<i64>().ok()?, 0),
        (4, _) => (
            digits[..2].parse::<i64>().ok()?,
            digits[2..].parse::<i64>().ok()?,
        ),
        _ => return None,
    };
    if rest.contains(':') && rest.len() != 5 {
        return None;
    }
    if m >= 60 {
        return None;
    }
    Some(sign * (h * 3600 + m * 60))
}

/// `makeTimeZone`: `Ok(None)` when the timezone expression is nullish.
/// Evaluates the optional `format` argument of `$dateToString` / `$dateFromString`:
/// `None` when absent, else its value, which must be nullish or a valid format string
/// (otherwise `code`, mongod's error for that operator).
fn eval_format(
    cx: &mut Ctx<'_>,
    arg: &Option<Node>,
    op: &str,
    code: i32,
) -> Result<Option<Option<Bson>>, MongoError> {
    let Some(n) = arg else { return Ok(None) };
    let f = cx.eval(n)?;
    if !nullish(&f) {
        let Some(Bson::String(s)) = &f else {
            return Err(MongoError::location(
                code,
                format!(
                    "{op} requires that 'format' be a string, found: {} with value {}",
                    type_name_of(&f),
                    value_to_string(&f)
                ),
            ));
        };
        validate_format(s)?;
    }
    Ok(Some(f))
}

fn time_zone(cx: &mut Ctx<'_>, tz: &Option<Node>) -> Result<Option<Tz>, MongoError> {
    let Some(n) = tz else {
        return Ok(Some(Tz::UTC));
    };
    let v = cx.eval(n)?;
    if nullish(&v) {
        return Ok(None);
    }
    match v {
        Some(Bson::String(s)) => Tz::parse(&s).map(Some),
        other => Err(MongoError::location(
            40517,
            format!(
                "timezone must evaluate to a string, found {}",
                type_name_of(&other)
            ),
        )),
    }
}

/// `Value::coerceToDate` (millis since the epoch).
fn coerce_to_date(v: &Bson) -> Result<i64, MongoError> {
    date_millis(v).ok_or_else(|| {
        MongoError::location(
            16006,
            format!(
                "can't convert from BSON type {} to Date",
                util::type_name(v)
            ),
        )
    })
}

fn date_millis(v: &Bson) -> Option<i64> {
    match v {
        Bson::DateTime(d) => Some(d.timestamp_millis()),
        Bson::Timestamp(t) => Some(i64::from(t.time) * 1000),
        Bson::ObjectId(o) => Some(
            i64::from(u32::from_be_bytes(
                o.bytes()[..4].try_into().expect("4 bytes"),
            )) * 1000,
        ),
        _ => None,
    }
}

fn date(ms: i64) -> Bson {
    Bson::DateTime(bson::DateTime::from_millis(ms))
}

pub(super) fn parse_named(
    p: &mut Parser,
    name: &str,
    arg: &Bson,
) -> Result<Option<Node>, MongoError> {
    if let Some(part) = Part::from_name(name) {
        return parse_part(p, name, part, arg).map(Some);
    }
    let unknown = |code: i32| {
        move |k: &str| MongoError::location(code, format!("Unrecognized argument to {name}: {k}"))
    };
    let missing = |code: i32, what: &str| {
        MongoError::location(code, format!("Missing '{what}' parameter to {name}"))
    };
    Ok(Some(match name {
        "$dateToString" => {
            let a = p.named_args(
                arg,
                &["date", "format", "timezone", "onNull"],
                || {
                    MongoError::location(
                        18629,
                        "$dateToString only supports an object as its argument",
                    )
                },
                unknown(18534),
            )?;
            if a[0].is_none() {
                return Err(missing(18628, "date"));
            }
            Node::Named(Named::DateToString, a)
        }
        "$dateFromString" => {
            let a = p.named_args(
                arg,
                &["dateString", "timezone", "format", "onNull", "onError"],
                || {
                    MongoError::location(
                        40540,
                        format!(
                            "$dateFromString only supports an object as an argument, found: {}",
                            util::type_name(arg)
                        ),
                    )
                },
                unknown(40541),
            )?;
            if a[0].is_none() {
                return Err(missing(40542, "dateString"));
            }
            Node::Named(Named::DateFromString, a)
        }
        "$dateToParts" => {
            let a = p.named_args(
                arg,
                &["date", "timezone", "iso8601"],
                || {
                    MongoError::location(
                        40524,
                        "$dateToParts only supports an object as its argument",
                    )
                },
                unknown(40520),
            )?;
            if a[0].is_none() {
                return Err(missing(40522, "date"));
            }
            Node::Named(Named::DateToParts, a)
        }
        "$dateFromParts" => {
            let a = p.named_args(
                arg,
                &[
                    "year",
                    "month",
                    "day",
                    "hour",
                    "minute",
                    "second",
                    "millisecond",
                    "isoWeekYear",
                    "isoWeek",
                    "isoDayOfWeek",
                    "timezone",
                ],
                || {
                    MongoError::location(
                        40519,
                        "$dateFromParts only supports an object as its argument",
                    )
                },
                unknown(40518),
            )?;
            let has = |i: usize| a[i].is_some();
            if !has(0) && !has(7) {
                return Err(MongoError::location(
                    40516,
                    "$dateFromParts requires either 'year' or 'isoWeekYear' to be present",
                ));
            }
            if has(0) && (has(7) || has(8) || has(9)) {
                return Err(MongoError::location(
                    40489,
                    "$dateFromParts does not allow mixing natural dates with ISO dates",
                ));
            }
            if has(7) && (has(0) || has(1) || has(2)) {
                return Err(MongoError::location(
                    40525,
                    "$dateFromParts does not allow mixing ISO dates with natural dates",
                ));
            }
            Node::Named(Named::DateFromParts, a)
        }
        "$dateAdd" | "$dateSubtract" => {
            let a = p.named_args(
                arg,
                &["startDate", "unit", "amount", "timezone"],
                || MongoError::location(5166400, format!("{name} expects an object as its argument")),
                |k| {
                    MongoError::location(
                        5166401,
                        format!("Unrecognized argument to {name}: {k}. Expected arguments are startDate, unit, amount, and optionally timezone."),
                    )
                },
            )?;
            if a[0].is_none() || a[1].is_none() || a[2].is_none() {
                return Err(MongoError::location(
                    5166402,
                    format!("{name} requires startDate, unit, and amount to be present"),
                ));
            }
            let op = if name == "$dateAdd" {
                Named::DateAdd
            } else {
                Named::DateSubtract
            };
            Node::Named(op, a)
        }
        "$dateDiff" => {
            let a = p.named_args(
                arg,
                &["startDate", "endDate", "unit", "timezone", "startOfWeek"],
                || {
                    MongoError::location(
                        5166301,
                        "$dateDiff only supports an object as its argument",
                    )
                },
                unknown(5166302),
            )?;
            for (i, (code, what)) in [
                (5166303, "startDate"),
                (5166304, "endDate"),
                (5166305, "unit"),
            ]
            .iter()
            .enumerate()
            {
                if a[i].is_none() {
                    return Err(missing(*code, what));
                }
            }
            Node::Named(Named::DateDiff, a)
        }
        "$dateTrunc" => {
            let a = p.named_args(
                arg,
                &["date", "unit", "binSize", "timezone", "startOfWeek"],
                || MongoError::location(5439007, "$dateTrunc only supports an object as its argument"),
                |k| {
                    MongoError::location(
                        5439008,
                        format!("Unrecognized argument to $dateTrunc: {k}. Expected arguments are date, unit, and optionally, binSize, timezone, startOfWeek"),
                    )
                },
            )?;
            if a[0].is_none() {
                return Err(missing(5439009, "date"));
            }
            if a[1].is_none() {
                return Err(missing(5439010, "unit"));
            }
            Node::Named(Named::DateTrunc, a)
        }
        _ => return Ok(None),
    }))
}

/// `DateExpressionAcceptingTimeZone::parse`: `<date>`, `[<date>]` or
/// `{date: <date>, timezone: <tz>}`.
fn parse_part(p: &mut Parser, name: &str, part: Part, arg: &Bson) -> Result<Node, MongoError> {
    let (date, tz) = match arg {
        Bson::Document(d) if d.keys().next().is_some_and(|k| !k.starts_with('$')) => {
            let (mut date, mut tz) = (None, None);
            for (k, v) in d {
                match k.as_str() {
                    "date" => date = Some(p.operand(v)?),
                    "timezone" => tz = Some(p.operand(v)?),
                    _ => {
                        return Err(MongoError::location(
                            40535,
                            format!("unrecognized option to {name}: \"{k}\""),
                        ))
                    }
                }
            }
            let date = date.ok_or_else(|| {
                MongoError::location(
                    40539,
                    format!(
                        "missing 'date' argument to {name}, provided: {}",
                        util::elem_to_string(name, arg)
                    ),
                )
            })?;
            (date, tz)
        }
        Bson::Array(items) => {
            if items.len() != 1 {
                return Err(MongoError::location(
                    40536,
                    format!(
                        "{name} accepts exactly one argument if given an array, but was given {}",
                        items.len()
                    ),
                ));
            }
            (p.operand(&items[0])?, None)
        }
        other => (p.operand(other)?, None),
    };
    Ok(Node::Named(Named::DatePart(part), vec![Some(date), tz]))
}

/// The ISO format `$dateToString` uses by default.
const ISO_FORMAT: &str = "%Y-%m-%dT%H:%M:%S.%LZ";

/// A date as `$toString` and `$dateToString` print it by default.
pub(crate) fn iso_string(ms: i64) -> Result<String, MongoError> {
    format_date(ISO_FORMAT, ms, Tz::UTC)
}

/// `TimeZone::validateToStringFormat`.
fn validate_format(f: &str) -> Result<(), MongoError> {
    let mut it = f.chars();
    while let Some(c) = it.next() {
        if c != '%' {
            continue;
        }
        match it.next() {
            None => {
                return Err(MongoError::location(
                    18535,
                    "Unmatched '%' at end of format string",
                ))
            }
            Some(
                'd' | 'G' | 'H' | 'j' | 'L' | 'm' | 'M' | 'S' | 'u' | 'U' | 'V' | 'w' | 'Y' | 'z'
                | 'Z' | '%' | 'b' | 'B',
            ) => {}
            Some(o) => {
                return Err(MongoError::location(
                    18536,
                    format!("Invalid format character '%{o}' in format string"),
                ))
            }
        }
    }
    Ok(())
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

fn format_date(f: &str, utc_ms: i64, tz: Tz) -> Result<String, MongoError> {
    let p = Parts::of(tz.local(utc_ms));
    let mut out = String::new();
    let mut it = f.chars();
    let year_check = |y: i64| {
        if (0..=9999).contains(&y) {
            Ok(())
        } else {
            Err(MongoError::location(
                18537,
                format!(
                    "Could not convert date to string: date component was outside the supported range of 0-9999: {y}"
                ),
            ))
        }
    };
    while let Some(c) = it.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let Some(s) = it.next() else { break };
        let (iso_week, iso_year) = p.iso_week_and_year();
        match s {
            'd' => out.push_str(&format!("{:02}", p.day)),
            'G' => {
                year_check(iso_year)?;
                out.push_str(&format!("{iso_year:04}"))
            }
            'H' => out.push_str(&format!("{:02}", p.hour)),
            'j' => out.push_str(&format!("{:03}", p.day_of_year())),
            'L' => out.push_str(&format!("{:03}", p.ms)),
            'm' => out.push_str(&format!("{:02}", p.month)),
            'M' => out.push_str(&format!("{:02}", p.minute)),
            'S' => out.push_str(&format!("{:02}", p.second)),
            'u' => out.push_str(&p.iso_day_of_week().to_string()),
            'U' => out.push_str(&format!("{:02}", p.week())),
            'V' => out.push_str(&format!("{iso_week:02}")),
            'w' => out.push_str(&p.day_of_week().to_string()),
            'Y' => {
                year_check(p.year)?;
                out.push_str(&format!("{:04}", p.year))
            }
            'z' => {
                let o = tz.offset_secs / 60;
                let sign = if o < 0 { '-' } else { '+' };
                out.push_str(&format!("{sign}{:02}{:02}", o.abs() / 60, o.abs() % 60));
            }
            'Z' => {
                let o = tz.offset_secs / 60;
                out.push_str(&format!("{}{}", if o < 0 { "-" } else { "+" }, o.abs()));
            }
            'b' => out.push_str(&MONTHS[(p.month - 1) as usize][..3]),
            'B' => out.push_str(MONTHS[(p.month - 1) as usize]),
            '%' => out.push('%'),
            o => {
                return Err(MongoError::location(
                    18536,
                    format!("Invalid format character '%{o}' in format string"),
                ))
            }
        }
    }
    Ok(out)
}

fn conversion_error(s: &str, why: &str) -> MongoError {
    MongoError::new(
        ErrorCode::ConversionFailure,
        format!("Error parsing date string '{s}'; {why}"),
    )
}

/// Parses a date string (ISO 8601 forms, or `format`). Returns UTC millis.
pub(crate) fn parse_date_string(s: &str, tz: Tz, format: Option<&str>) -> Result<i64, MongoError> {
    let mut c = Cursor {
        s: s.as_bytes(),
        i: 0,
    };
    let (mut y, mut mo, mut d, mut h, mut mi, mut sec, mut ms) = (None, 1, 1, 0, 0, 0, 0);
    let mut offset: Option<i64> = None;
    let err = |why: &str| conversion_error(s, why);
    match format {
        Some(f) => {
            let mut fi = f.chars();
            while let Some(fc) = fi.next() {
                if fc != '%' {
                    if !c.eat(fc as u8) {
                        return Err(err("Format literal not found"));
                    }
                    continue;
                }
                match fi.next() {
                    Some('Y') | Some('G') => {
                        y = Some(c.num(4, 4).ok_or_else(|| err("Unexpected data found."))?)
                    }
                    Some('m') => mo = c.num(1, 2).ok_or_else(|| err("Unexpected data found."))?,
                    Some('d') => d = c.num(1, 2).ok_or_else(|| err("Unexpected data found."))?,
                    Some('H') => h = c.num(1, 2).ok_or_else(|| err("Unexpected data found."))?,
                    Some('M') => mi = c.num(1, 2).ok_or_else(|| err("Unexpected data found."))?,
                    Some('S') => sec = c.num(1, 2).ok_or_else(|| err("Unexpected data found."))?,
                    Some('L') => {
                        ms = c
                            .fraction_ms()
                            .ok_or_else(|| err("Unexpected data found."))?
                    }
                    Some('j') => {
                        let doy = c.num(1, 3).ok_or_else(|| err("Unexpected data found."))?;
                        mo = 1;
                        d = doy;
                    }
                    Some('z') | Some('Z') => {
                        offset = Some(c.offset().ok_or_else(|| err("Unexpected data found."))?)
                    }
                    Some('%') => {
                        if !c.eat(b'%') {
                            return Err(err("Format literal not found"));
                        }
                    }
                    _ => return Err(err("Unsupported format character")),
                }
            }
            if c.i != c.s.len() {
                return Err(err("Trailing data"));
            }
        }
        None => {
            y = Some(c.num(4, 4).ok_or_else(|| err("Unexpected data found."))?);
            let sep_dash = c.eat(b'-') || c.eat(b'/');
            if !sep_dash {
                return Err(err("Unexpected data found."));
            }
            mo = c.num(1, 2).ok_or_else(|| err("Unexpected data found."))?;
            if !(c.eat(b'-') || c.eat(b'/')) {
                return Err(err("Unexpected data found."));
            }
            d = c.num(1, 2).ok_or_else(|| err("Unexpected data found."))?;
            if c.eat(b'T') || c.eat(b't') || c.eat(b' ') {
                h = c.num(1, 2).ok_or_else(|| err("Unexpected data found."))?;
                if !c.eat(b':') {
                    return Err(err("Unexpected data found."));
                }
                mi = c.num(2, 2).ok_or_else(|| err("Unexpected data found."))?;
                if c.eat(b':') {
                    sec = c.num(2, 2).ok_or_else(|| err("Unexpected data found."))?;
                    if c.eat(b'.') || c.eat(b',') {
                        ms = c
                            .fraction_ms()
                            .ok_or_else(|| err("Unexpected data found."))?;
                    }
                }
            }
            while c.eat(b' ') {}
            if c.i < c.s.len() {
                if c.eat(b'Z') || c.eat(b'z') {
                    offset = Some(0);
                } else {
                    offset = Some(c.offset().ok_or_else(|| err("Unexpected data found."))?);
                }
            }
            if c.i != c.s.len() {
                return Err(err("Trailing data"));
            }
        }
    }
    let y = y.ok_or_else(|| err("The parsed date was invalid"))?;
    if !(1..=12).contains(&mo)
        || d < 1
        || (format.is_none() && d > days_in_month(y, mo))
        || h > 24
        || mi > 59
        || sec > 60
    {
        return Err(err("The parsed date was invalid"));
    }
    let local = (days_from_civil(y, mo, 1) + d - 1) * MS_PER_DAY
        + h * 3_600_000
        + mi * 60_000
        + sec * 1000
        + ms;
    Ok(match offset {
        Some(o) => {
            if tz != Tz::UTC {
                return Err(MongoError::location(
                    40554,
                    "you cannot pass in a date/time string with GMT offset together with a timezone argument",
                ));
            }
            local - o * 1000
        }
        None => tz.utc(local),
    })
}

struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn eat(&mut self, b: u8) -> bool {
        if self.s.get(self.i) == Some(&b) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn num(&mut self, min: usize, max: usize) -> Option<i64> {
        let start = self.i;
        while self.i < self.s.len() && self.i - start < max && self.s[self.i].is_ascii_digit() {
            self.i += 1;
        }
        if self.i - start < min {
            return None;
        }
        std::str::from_utf8(&self.s[start..self.i])
            .ok()?
            .parse()
            .ok()
    }

    fn fraction_ms(&mut self) -> Option<i64> {
        let start = self.i;
        while self.i < self.s.len() && self.s[self.i].is_ascii_digit() {
            self.i += 1;
        }
        let digits = std::str::from_utf8(&self.s[start..self.i]).ok()?;
        if digits.is_empty() {
            return None;
        }
        let padded: String = digits
            .chars()
            .chain(std::iter::repeat('0'))
            .take(3)
            .collect();
        padded.parse().ok()
    }

    fn offset(&mut self) -> Option<i64> {
        let rest = std::str::from_utf8(&self.s[self.i..]).ok()?;
        if rest == "Z" || rest == "UTC" || rest == "GMT" {
            self.i = self.s.len();
            return Some(0);
        }
        let o = parse_offset(rest)?;
        self.i = self.s.len();
        Some(o)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unit {
    Year,
    Quarter,
    Month,
    Week,
    Day,
    Hour,
    Minute,
    Second,
    Millisecond,
}

fn parse_unit(v: &Option<Bson>, op: &str) -> Result<Unit, MongoError> {
    let Some(Bson::String(s)) = v else {
        return Err(MongoError::location(
            5439013,
            format!(
                "{op} requires 'unit' to be a string, but got {}",
                type_name_of(v)
            ),
        ));
    };
    time_unit(s).ok_or_else(|| {
        MongoError::location(
            5439014,
            format!("{op} parameter 'unit' value cannot be recognized as a time unit: {s}"),
        )
    })
}

/// 0 = Sunday ... 6 = Saturday.
fn parse_day_of_week(v: &Option<Bson>, op: &str) -> Result<i64, MongoError> {
    let Some(Bson::String(s)) = v else {
        return Err(MongoError::location(
            5439015,
            format!(
                "{op} requires 'startOfWeek' to be a string, but got {}",
                type_name_of(v)
            ),
        ));
    };
    let l = s.to_ascii_lowercase();
    let days = [
        "sunday",
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
    ];
    days.iter()
        .position(|d| *d == l || (l.len() == 3 && d.starts_with(&l)))
        .map(|p| p as i64)
        .ok_or_else(|| {
            MongoError::location(
                5439016,
                format!("{op} parameter 'startOfWeek' value cannot be recognized as a day of a week: {s}"),
            )
        })
}

fn unit_ms(u: Unit) -> Option<i64> {
    Some(match u {
        Unit::Week => 7 * MS_PER_DAY,
        Unit::Day => MS_PER_DAY,
        Unit::Hour => 3_600_000,
        Unit::Minute => 60_000,
        Unit::Second => 1000,
        Unit::Millisecond => 1,
        _ => return None,
    })
}

fn add_months(local_ms: i64, months: i64) -> Option<i64> {
    let p = Parts::of(local_ms);
    let total = (p.year * 12 + p.month - 1).checked_add(months)?;
    let (y, m) = (total.div_euclid(12), total.rem_euclid(12) + 1);
    let d = p.day.min(days_in_month(y, m));
    let tod = local_ms.rem_euclid(MS_PER_DAY);
    (days_from_civil(y, m, d))
        .checked_mul(MS_PER_DAY)?
        .checked_add(tod)
}

fn date_add(utc: i64, unit: Unit, amount: i64, tz: Tz) -> Option<i64> {
    match unit {
        Unit::Year => add_months(tz.local(utc), amount.checked_mul(12)?).map(|l| tz.utc(l)),
        Unit::Quarter => add_months(tz.local(utc), amount.checked_mul(3)?).map(|l| tz.utc(l)),
        Unit::Month => add_months(tz.local(utc), amount).map(|l| tz.utc(l)),
        u => utc.checked_add(amount.checked_mul(unit_ms(u)?)?),
    }
}

/// A time unit's name (`$setWindowFields` range windows, `$densify`): `None` when
/// mongod does not know it.
pub(crate) fn time_unit(name: &str) -> Option<Unit> {
    Some(match name {
        "year" => Unit::Year,
        "quarter" => Unit::Quarter,
        "month" => Unit::Month,
        "week" => Unit::Week,
        "day" => Unit::Day,
        "hour" => Unit::Hour,
        "minute" => Unit::Minute,
        "second" => Unit::Second,
        "millisecond" => Unit::Millisecond,
        _ => return None,
    })
}

/// `$dateAdd` in UTC: `utc` plus `amount` of `unit` (`None` on overflow).
pub(crate) fn add_in_utc(utc: i64, unit: Unit, amount: i64) -> Option<i64> {
    date_add(utc, unit, amount, Tz::utc_zone())
}

/// The fixed length of a unit of a week or less, in milliseconds.
pub(crate) fn fixed_unit_ms(unit: Unit) -> Option<i64> {
    unit_ms(unit)
}

fn date_diff(start: i64, end: i64, unit: Unit, tz: Tz, sow: i64) -> i64 {
    let (a, b) = (tz.local(start), tz.local(end));
    let (pa, pb) = (Parts::of(a), Parts::of(b));
    match unit {
        Unit::Year => pb.year - pa.year,
        Unit::Quarter => (pb.year * 4 + (pb.month - 1) / 3) - (pa.year * 4 + (pa.month - 1) / 3),
        Unit::Month => (pb.year * 12 + pb.month) - (pa.year * 12 + pa.month),
        Unit::Week => {
            // Weeks start on `sow`: shift so that day boundaries of the week align.
            let wa = (pa.days - (sow - 4)).div_euclid(7);
            let wb = (pb.days - (sow - 4)).div_euclid(7);
            wb - wa
        }
        u => {
            let m = unit_ms(u).unwrap_or(1);
            b.div_euclid(m) - a.div_euclid(m)
        }
    }
}

fn date_trunc(utc: i64, unit: Unit, bin: i64, tz: Tz, sow: i64) -> Option<i64> {
    let local = tz.local(utc);
    let reference = days_from_civil(2000, 1, 1) * MS_PER_DAY;
    let out = match unit {
        Unit::Year | Unit::Quarter | Unit::Month => {
            let per: i64 = match unit {
                Unit::Year => 12,
                Unit::Quarter => 3,
                _ => 1,
            };
            let p = Parts::of(local);
            let months = (p.year - 2000) * 12 + p.month - 1;
            let size = per.checked_mul(bin)?;
            let start = months.div_euclid(size) * size;
            let (y, m) = (2000 + start.div_euclid(12), start.rem_euclid(12) + 1);
            days_from_civil(y, m, 1) * MS_PER_DAY
        }
        Unit::Week => {
            // The first `sow` day on or after 2000-01-01 (a Saturday).
            let ref_days = days_from_civil(2000, 1, 1);
            let shift = (sow - weekday(ref_days)).rem_euclid(7);
            let r = (ref_days + shift) * MS_PER_DAY;
            let size = (7 * MS_PER_DAY).checked_mul(bin)?;
            r + (local - r).div_euclid(size) * size
        }
        u => {
            let size = unit_ms(u)?.checked_mul(bin)?;
            reference + (local - reference).div_euclid(size) * size
        }
    };
    Some(tz.utc(out))
}

fn coercible_date(v: &Option<Bson>) -> Option<i64> {
    v.as_ref().and_then(date_millis)
}

pub(super) fn eval_named(cx: &mut Ctx<'_>, op: Named, args: &[Option<Node>]) -> R {
    match op {
        Named::DatePart(part) => {
            let d = cx.eval_opt(&args[0])?;
            if nullish(&d) {
                return null();
            }
            let Some(tz) = time_zone(cx, &args[1])? else {
                return null();
            };
            let ms = coerce_to_date(d.as_ref().expect("not nullish"))?;
            let p = Parts::of(tz.local(ms));
            let v = match part {
                Part::Year => p.year,
                Part::Month => p.month,
                Part::DayOfMonth => p.day,
                Part::Hour => p.hour,
                Part::Minute => p.minute,
                Part::Second => p.second,
                Part::Millisecond => p.ms,
                Part::DayOfWeek => p.day_of_week(),
                Part::DayOfYear => p.day_of_year(),
                Part::Week => p.week(),
                Part::IsoWeek => p.iso_week_and_year().0,
                Part::IsoWeekYear => p.iso_week_and_year().1,
                Part::IsoDayOfWeek => p.iso_day_of_week(),
            };
            Ok(Some(if part == Part::IsoWeekYear {
                Bson::Int64(v)
            } else {
                Bson::Int32(v as i32)
            }))
        }
        Named::DateToString => {
            let d = cx.eval_opt(&args[0])?;
            let format = eval_format(cx, &args[1], "$dateToString", 18533)?;
            let tz = time_zone(cx, &args[2])?;
            if nullish(&d) {
                return match &args[3] {
                    Some(n) => cx.eval(n),
                    None => null(),
                };
            }
            let Some(tz) = tz else { return null() };
            let ms = coerce_to_date(d.as_ref().expect("not nullish"))?;
            let f = match &format {
                Some(Some(Bson::String(s))) => s.clone(),
                Some(_) => return null(),
                None => ISO_FORMAT.to_owned(),
            };
            Ok(Some(Bson::String(format_date(&f, ms, tz)?)))
        }
        Named::DateFromString => {
            let s = cx.eval_opt(&args[0])?;
            let format = eval_format(cx, &args[2], "$dateFromString", 40684)?;
            let tz = time_zone(cx, &args[1])?;
            if nullish(&s) {
                return match &args[3] {
                    Some(n) => cx.eval(n),
                    None => null(),
                };
            }
            let attempt = (|| -> R {
                let Some(Bson::String(text)) = &s else {
                    return Err(MongoError::new(
                        ErrorCode::ConversionFailure,
                        format!(
                            "$dateFromString requires that 'dateString' be a string, found: {} with value {}",
                            type_name_of(&s),
                            value_to_string(&s)
                        ),
                    ));
                };
                let Some(tz) = tz else { return null() };
                let f = match &format {
                    Some(Some(Bson::String(fs))) => Some(fs.as_str()),
                    Some(_) => return null(),
                    None => None,
                };
                Ok(Some(date(parse_date_string(text, tz, f)?)))
            })();
            match attempt {
                Err(e) if e.is(ErrorCode::ConversionFailure) && args[4].is_some() => {
                    cx.eval_opt(&args[4])
                }
                r => r,
            }
        }
        Named::DateToParts => {
            let d = cx.eval_opt(&args[0])?;
            let Some(tz) = time_zone(cx, &args[1])? else {
                return null();
            };
            let iso = match &args[2] {
                Some(n) => {
                    let v = cx.eval(n)?;
                    if nullish(&v) {
                        return null();
                    }
                    match v {
                        Some(Bson::Boolean(b)) => b,
                        other => {
                            return Err(MongoError::location(
                                40521,
                                format!(
                                    "iso8601 must evaluate to a bool, found {}",
                                    type_name_of(&other)
                                ),
                            ))
                        }
                    }
                }
                None => false,
            };
            if nullish(&d) {
                return null();
            }
            let ms = coerce_to_date(d.as_ref().expect("not nullish"))?;
            let p = Parts::of(tz.local(ms));
            let i = |x: i64| Bson::Int32(x as i32);
            Ok(Some(Bson::Document(if iso {
                let (w, y) = p.iso_week_and_year();
                doc! {
                    "isoWeekYear": i(y), "isoWeek": i(w), "isoDayOfWeek": i(p.iso_day_of_week()),
                    "hour": i(p.hour), "minute": i(p.minute), "second": i(p.second), "millisecond": i(p.ms),
                }
            } else {
                doc! {
                    "year": i(p.year), "month": i(p.month), "day": i(p.day),
                    "hour": i(p.hour), "minute": i(p.minute), "second": i(p.second), "millisecond": i(p.ms),
                }
            })))
        }
        Named::DateFromParts => date_from_parts(cx, args),
        Named::DateAdd | Named::DateSubtract => {
            let name = if op == Named::DateAdd {
                "$dateAdd"
            } else {
                "$dateSubtract"
            };
            let start = cx.eval_opt(&args[0])?;
            if nullish(&start) {
                return null();
            }
            let unit = cx.eval_opt(&args[1])?;
            if nullish(&unit) {
                return null();
            }
            let amount = cx.eval_opt(&args[2])?;
            if nullish(&amount) {
                return null();
            }
            let Some(tz) = time_zone(cx, &args[3])? else {
                return null();
            };
            let Some(start) = coercible_date(&start) else {
                return Err(MongoError::location(
                    5166403,
                    format!("{name} requires startDate to be convertible to a date"),
                ));
            };
            if !matches!(unit, Some(Bson::String(_))) {
                return Err(MongoError::location(
                    5166404,
                    format!("{name} expects string defining the time unit"),
                ));
            }
            let unit = parse_unit(&unit, name)?;
            let Some(a) = amount.as_ref().filter(|a| num::is_integral64(a)) else {
                return Err(MongoError::location(
                    5166405,
                    format!("{name} expects integer amount of time units"),
                ));
            };
            let mut n = to_i64(a);
            if op == Named::DateSubtract {
                if n == i64::MIN {
                    return Err(MongoError::location(
                        6045000,
                        format!("invalid $dateSubtract 'amount' parameter value: {n}"),
                    ));
                }
                n = -n;
            }
            match date_add(start, unit, n, tz) {
                Some(ms) => Ok(Some(date(ms))),
                None => Err(MongoError::location(5166406, format!("{name} overflowed"))),
            }
        }
        Named::DateDiff => {
            let start = cx.eval_opt(&args[0])?;
            if nullish(&start) {
                return null();
            }
            let end = cx.eval_opt(&args[1])?;
            if nullish(&end) {
                return null();
            }
            let unit = cx.eval_opt(&args[2])?;
            if nullish(&unit) {
                return null();
            }
            let is_week = matches!(&unit, Some(Bson::String(s)) if s == "week");
            let mut sow_v = None;
            if is_week && args[4].is_some() {
                sow_v = cx.eval_opt(&args[4])?;
                if nullish(&sow_v) {
                    return null();
                }
            }
            let Some(tz) = time_zone(cx, &args[3])? else {
                return null();
            };
            let to_date = |v: &Option<Bson>, what: &str| {
                coercible_date(v).ok_or_else(|| {
                    MongoError::location(
                        5166307,
                        format!(
                            "$dateDiff requires '{what}' to be a date, but got {}",
                            type_name_of(v)
                        ),
                    )
                })
            };
            let s = to_date(&start, "startDate")?;
            let e = to_date(&end, "endDate")?;
            let unit = parse_unit(&unit, "$dateDiff")?;
            let sow = if is_week && args[4].is_some() {
                parse_day_of_week(&sow_v, "$dateDiff")?
            } else {
                0
            };
            Ok(Some(Bson::Int64(date_diff(s, e, unit, tz, sow))))
        }
        Named::DateTrunc => {
            let d = cx.eval_opt(&args[0])?;
            if nullish(&d) {
                return null();
            }
            let unit = cx.eval_opt(&args[1])?;
            if nullish(&unit) {
                return null();
            }
            let bin = match &args[2] {
                Some(n) => {
                    let b = cx.eval(n)?;
                    if nullish(&b) {
                        return null();
                    }
                    Some(b)
                }
                None => None,
            };
            let is_week = matches!(&unit, Some(Bson::String(s)) if s == "week");
            let mut sow_v = None;
            if is_week && args[4].is_some() {
                sow_v = cx.eval_opt(&args[4])?;
                if nullish(&sow_v) {
                    return null();
                }
            }
            let Some(tz) = time_zone(cx, &args[3])? else {
                return null();
            };
            let Some(ms) = coercible_date(&d) else {
                return Err(MongoError::location(
                    5439012,
                    format!(
                        "$dateTrunc requires 'date' to be a date, but got {}",
                        type_name_of(&d)
                    ),
                ));
            };
            let unit = parse_unit(&unit, "$dateTrunc")?;
            let bin = match bin {
                Some(b) => {
                    let Some(x) = b.as_ref().filter(|x| num::is_integral64(x)) else {
                        return Err(MongoError::location(
                            5439017,
                            format!(
                                "$dateTrunc requires 'binSize' to be a 64-bit integer, but got value '{}' of type {}",
                                value_to_string(&b),
                                type_name_of(&b)
                            ),
                        ));
                    };
                    let n = to_i64(x);
                    if n <= 0 {
                        return Err(MongoError::location(
                            5439018,
                            format!("$dateTrunc requires 'binSize' to be greater than 0, but got value {n}"),
                        ));
                    }
                    n
                }
                None => 1,
            };
            let sow = if is_week && args[4].is_some() {
                parse_day_of_week(&sow_v, "$dateTrunc")?
            } else {
                0
            };
            match date_trunc(ms, unit, bin, tz, sow) {
                Some(t) => Ok(Some(date(t))),
                None => Err(MongoError::location(5439019, "$dateTrunc overflowed")),
            }
        }
        _ => Err(MongoError::internal(format!(
            "no date evaluator for {op:?}"
        ))),
    }
}

fn date_from_parts(cx: &mut Ctx<'_>, args: &[Option<Node>]) -> R {
    const NAMES: [&str; 10] = [
        "year",
        "month",
        "day",
        "hour",
        "minute",
        "second",
        "millisecond",
        "isoWeekYear",
        "isoWeek",
        "isoDayOfWeek",
    ];
    const BOUNDED: [bool; 10] = [
        false, true, true, true, true, false, false, false, true, true,
    ];
    let defaults: [i64; 10] = [1970, 1, 1, 0, 0, 0, 0, 1970, 1, 1];
    // Evaluation order as mongod: hour, minute, second, millisecond, then the date.
    let order: &[usize] = if args[0].is_some() {
        &[3, 4, 5, 6, 0, 1, 2]
    } else {
        &[3, 4, 5, 6, 7, 8, 9]
    };
    let mut vals = defaults;
    let mut tz_done = false;
    let mut tz = Tz::UTC;
    for &i in order {
        if i == 0 || i == 7 {
            // The time zone is evaluated between the time and the date parts.
            match time_zone(cx, &args[10])? {
                Some(t) => tz = t,
                None => return null(),
            }
            tz_done = true;
        }
        let Some(n) = &args[i] else { continue };
        let v = cx.eval(n)?;
        if nullish(&v) {
            return null();
        }
        let x = v.as_ref().expect("not nullish");
        if !num::is_integral64(x) {
            return Err(MongoError::location(
                40515,
                format!(
                    "'{}' must evaluate to an integer, found {} with value {}",
                    NAMES[i],
                    util::type_name(x),
                    util::bson_to_string(x)
                ),
            ));
        }
        let x = to_i64(x);
        if BOUNDED[i] && !(-32768..=32767).contains(&x) {
            return Err(MongoError::location(
                31034,
                format!(
                    "'{}' must evaluate to a value in the range [-32768, 32767]; value {x} is not in range",
                    NAMES[i]
                ),
            ));
        }
        vals[i] = x;
    }
    debug_assert!(tz_done);
    let time = vals[3] * 3_600_000 + vals[4] * 60_000 + vals[5] * 1000 + vals[6];
    let days = if args[0].is_some() {
        let y = vals[0];
        if !(1..=9999).contains(&y) {
            return Err(MongoError::location(
                40523,
                format!("'year' must evaluate to an integer in the range 1 to 9999, found {y}"),
            ));
        }
        let months = y * 12 + vals[1] - 1;
        let (y, m) = (months.div_euclid(12), months.rem_euclid(12) + 1);
        days_from_civil(y, m, 1) + vals[2] - 1
    } else {
        let y = vals[7];
        if !(1..=9999).contains(&y) {
            return Err(MongoError::location(
                31095,
                format!(
                    "'isoWeekYear' must evaluate to an integer in the range 1 to 9999, found {y}"
                ),
            ));
        }
        let jan4 = days_from_civil(y, 1, 4);
        let week1_monday = jan4 - (weekday(jan4) + 6) % 7;
        week1_monday + (vals[8] - 1) * 7 + (vals[9] - 1)
    };
    Ok(Some(date(tz.utc(days * MS_PER_DAY + time))))
}
