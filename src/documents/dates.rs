//! The dates and times the page shows: the visit's date in words, the generation time and a
//! clinic visit's time in the summary's own zone, with the zone's short name for that day.

use serde_json::Value;

/// The visit's date, long ("January 1, 2023") and as `YYYY-MM-DD`.
pub(super) struct VisitDate {
    pub long: String,
    pub iso: String,
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

/// `MM/DD/YYYY` → (long form, ISO), as the page writes the visit's date.
fn us_date(raw: &str) -> Option<VisitDate> {
    let mut parts = raw.trim().split('/');
    let (m, d, y) = (parts.next()?, parts.next()?, parts.next()?);
    let (month, day, year): (usize, u32, u32) = (m.parse().ok()?, d.parse().ok()?, y.parse().ok()?);
    let name = MONTHS.get(month.checked_sub(1)?)?;
    (parts.next().is_none() && (1..=31).contains(&day)).then(|| VisitDate {
        long: format!("{name} {day}, {year}"),
        iso: format!("{year:04}-{month:02}-{day:02}"),
    })
}

pub(super) fn visit_date(attributes: &Value) -> Option<VisitDate> {
    attributes["clinicsVisited"]
        .as_array()?
        .first()?
        .get("date")?
        .as_str()
        .and_then(us_date)
}

/// The zone the summary names, or none (times are then shown without a zone).
fn zone(name: Option<&str>) -> Option<jiff::tz::TimeZone> {
    jiff::tz::TimeZone::get(name?).ok()
}

/// `2023-07-12T07:45:11Z` in the summary's zone: "July 12, 2023, 12:45 AM PDT".
pub(super) fn generated(raw: &str, time_zone: Option<&str>) -> Option<String> {
    let at: jiff::Timestamp = raw.trim().parse().ok()?;
    let tz = zone(time_zone).unwrap_or(jiff::tz::TimeZone::UTC);
    let zoned = at.to_zoned(tz);
    let name = MONTHS.get(usize::from(zoned.month().unsigned_abs()).checked_sub(1)?)?;
    let abbreviation = zoned.time_zone().to_offset_info(at).abbreviation().to_string();
    Some(format!(
        "{name} {}, {}, {} {abbreviation}",
        zoned.day(),
        zoned.year(),
        clock(zoned.hour(), zoned.minute())
    ))
}

/// 24-hour time as the page shows it: "8:30 AM".
fn clock(hour: i8, minute: i8) -> String {
    let (h, half) = match hour {
        0 => (12, "AM"),
        1..=11 => (hour, "AM"),
        12 => (12, "PM"),
        _ => (hour - 12, "PM"),
    };
    format!("{h}:{minute:02} {half}")
}

/// A clinic visit's `HH:MM` on its date, with the zone's short name for that day.
pub(super) fn visit_time(date: Option<&str>, time: &str, time_zone: Option<&str>) -> String {
    let Some((h, m)) = time.split_once(':') else {
        return time.to_owned();
    };
    let (Ok(hour), Ok(minute)) = (h.trim().parse::<i8>(), m.trim().parse::<i8>()) else {
        return time.to_owned();
    };
    if !(0..24).contains(&hour) || !(0..60).contains(&minute) {
        return time.to_owned();
    }
    let abbreviation = date
        .and_then(us_date)
        .and_then(|d| d.iso.parse::<jiff::civil::Date>().ok())
        .and_then(|d| d.at(hour, minute, 0, 0).to_zoned(zone(time_zone)?).ok())
        .map(|z| format!(" {}", z.time_zone().to_offset_info(z.timestamp()).abbreviation()));
    format!("{}{}", clock(hour, minute), abbreviation.unwrap_or_default())
}

/// `MM/DD/YYYY` (and a VistA `MM/DD/YYYY@HH:MM`) in words, as the page's `formatDateLong`.
pub(super) fn long_date(raw: &str) -> Option<String> {
    us_date(raw.split('@').next()?).map(|d| d.long)
}

/// A problem's `lastUpdated` ("Sun Jun 11 00:00:00 PDT 2023") in words, as the page reads it.
pub(super) fn problem_date(raw: &str) -> Option<String> {
    let parts: Vec<&str> = raw.split_whitespace().collect();
    let [_, month, day, _, _, year] = parts.as_slice() else {
        return None;
    };
    let month = MONTHS.iter().find(|m| m.get(..3) == Some(*month))?;
    let (day, year): (u32, u32) = (day.parse().ok()?, year.parse().ok()?);
    (1..=31).contains(&day).then(|| format!("{month} {day}, {year}"))
}
