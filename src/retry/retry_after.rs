//! Parsing `Retry-After` (RFC 9110 §10.2.3): delay-seconds and the three HTTP-date forms.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// Parses a `Retry-After` header value (RFC 9110 §10.2.3) into the wait it
/// asks for, measured from `now`.
///
/// Accepts delta-seconds (ASCII digits; a value too large for `u64` saturates
/// to `u64::MAX` seconds, a wait no caller will honour) and all three
/// HTTP-date forms: IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), RFC 850
/// (`Sunday, 06-Nov-94 08:49:37 GMT`) and asctime (`Sun Nov  6 08:49:37 1994`).
/// As servers are not always strict, it also accepts a one-digit day or hour,
/// a two-digit year in any form, `UTC` for `GMT`, any letter case in names,
/// and a missing weekday; the weekday is not checked against the date. A
/// two-digit year more than 50 years after `now` is taken to be in the
/// previous century (RFC 9110 §5.6.7). Surrounding spaces and tabs are
/// ignored. A date already past gives [`Duration::ZERO`]; anything else
/// unparsable gives `None`.
///
/// # Examples
///
/// ```
/// use http_sentinel::retry::parse_retry_after;
/// use std::time::{Duration, SystemTime, UNIX_EPOCH};
///
/// let now = UNIX_EPOCH + Duration::from_secs(784_111_000);
/// assert_eq!(parse_retry_after("120", now), Some(Duration::from_secs(120)));
/// assert_eq!(
///     parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now),
///     Some(Duration::from_secs(777))
/// );
/// assert_eq!(parse_retry_after("soon", SystemTime::now()), None);
/// ```
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim_matches([' ', '\t']);
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Only overflow can make all-digit input fail to parse.
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let now_nanos = match now.duration_since(UNIX_EPOCH) {
        Ok(since) => i128::try_from(since.as_nanos()).ok()?,
        Err(before) => -i128::try_from(before.duration().as_nanos()).ok()?,
    };
    let now_secs = i64::try_from(now_nanos.div_euclid(NANOS_PER_SEC as i128)).ok()?;
    let date_secs = parse_http_date(value, year_of_day(now_secs.div_euclid(86_400)))?;
    let wait =
        u128::try_from(i128::from(date_secs) * NANOS_PER_SEC as i128 - now_nanos).unwrap_or(0);
    Some(Duration::new(
        u64::try_from(wait / NANOS_PER_SEC).unwrap_or(u64::MAX),
        (wait % NANOS_PER_SEC) as u32,
    ))
}

/// Unix seconds of an HTTP-date; `current_year` resolves two-digit years.
fn parse_http_date(value: &str, current_year: i64) -> Option<i64> {
    let tokens: Vec<&str> = value.split([' ', '\t']).filter(|t| !t.is_empty()).collect();
    let date = match tokens.split_first() {
        Some((first, rest)) if is_weekday(first.strip_suffix(',').unwrap_or(first)) => rest,
        _ => &tokens[..],
    };
    let (day, month, year, time) = match *date {
        [day, month, year, time, zone] if is_utc(zone) => (day, month, year, time),
        [day_month_year, time, zone] if is_utc(zone) => {
            let mut parts = day_month_year.split('-');
            match (parts.next(), parts.next(), parts.next(), parts.next()) {
                (Some(day), Some(month), Some(year), None) => (day, month, year, time),
                _ => return None,
            }
        }
        [month, day, time, year] => (day, month, year, time),
        _ => return None,
    };
    let year = match year.len() {
        4 => i64::from(number(year, 4)?),
        2 => expand_two_digit_year(number(year, 2)?, current_year),
        _ => return None,
    };
    let month = month_number(month)?;
    let day = number(day, 2)?;
    if day == 0 || day > days_in_month(year, month) {
        return None;
    }
    let mut clock = time.split(':');
    let (hour, minute, second) = match (clock.next(), clock.next(), clock.next(), clock.next()) {
        (Some(h), Some(m), Some(s), None) => (number(h, 2)?, number(m, 2)?, number(s, 2)?),
        _ => return None,
    };
    // 60 allows a leap second, as HTTP-date's grammar does.
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let seconds_of_day = i64::from(hour * 3600 + minute * 60 + second);
    Some(days_from_civil(year, month, day) * 86_400 + seconds_of_day)
}

/// An unsigned decimal of 1 to `max_digits` ASCII digits.
fn number(s: &str, max_digits: usize) -> Option<u32> {
    if s.is_empty() || s.len() > max_digits || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn is_weekday(name: &str) -> bool {
    const DAYS: [&str; 7] = [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ];
    DAYS.iter()
        .any(|day| name.eq_ignore_ascii_case(day) || name.eq_ignore_ascii_case(&day[..3]))
}

fn is_utc(zone: &str) -> bool {
    zone.eq_ignore_ascii_case("GMT") || zone.eq_ignore_ascii_case("UTC")
}

fn month_number(name: &str) -> Option<u32> {
    const MONTHS: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    let index = MONTHS
        .iter()
        .position(|month| name.eq_ignore_ascii_case(month))?;
    u32::try_from(index + 1).ok()
}

/// RFC 9110 §5.6.7: the most recent year with these last two digits that is
/// not more than 50 years in the future.
fn expand_two_digit_year(two_digits: u32, current_year: i64) -> i64 {
    let year = current_year - current_year.rem_euclid(100) + i64::from(two_digits);
    if year > current_year + 50 {
        year - 100
    } else if year + 100 <= current_year + 50 {
        year + 100
    } else {
        year
    }
}

const fn is_leap_year(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

const fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`): the year is shifted to start in March so that the leap
/// day falls at its end.
pub(crate) const fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = (month as i64 + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day as i64 - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The year of a day counted from 1970-01-01 (the year part of Hinnant's
/// `civil_from_days`).
const fn year_of_day(days: i64) -> i64 {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    // January and February belong to the next calendar year.
    era * 400 + year_of_era + if month_from_march >= 10 { 1 } else { 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    /// 2019-06-03 11:00:00 UTC.
    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_559_559_600)
    }

    fn parse(value: &str) -> Option<u64> {
        parse_retry_after(value, now()).map(|d| d.as_secs())
    }

    #[test]
    fn retry_after_vectors() {
        assert_eq!(parse("3600"), Some(3600));
        assert_eq!(parse("Mon, 3 Jun 2019 12:00:00 UTC"), Some(3600));
        assert_eq!(parse("Mon, 03 Jun 2019 11:30:12 GMT"), Some(1812));
        assert_eq!(parse("Monday, 03-Jun-19 11:30:12 GMT"), Some(1812));
        assert_eq!(parse("Mon Jun  3 11:30:12 2019"), Some(1812));
        assert_eq!(parse("Mon, 03 Jun 2019 10:59:59 GMT"), Some(0));
        assert_eq!(parse("\t42 "), Some(42));
        for garbage in ["-1", "+1", "1.0", "²", "", "abc"] {
            assert_eq!(parse(garbage), None, "{garbage:?}");
        }
    }

    #[test]
    fn retry_after_delta_seconds_edges() {
        assert_eq!(parse("0"), Some(0));
        assert_eq!(parse("007"), Some(7));
        assert_eq!(parse(" \t "), None);
        assert_eq!(parse("1 2"), None);
        assert_eq!(parse("18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse("99999999999999999999999999"), Some(u64::MAX));
    }

    #[test]
    fn all_date_forms_give_the_same_instant() {
        // The example date of RFC 9110 §5.6.7, 784111777 s after the epoch.
        for value in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
            "Sun Nov 06 08:49:37 1994",
            "06 Nov 1994 08:49:37 GMT",
            "sun, 6 nov 1994 8:49:37 utc",
        ] {
            assert_eq!(
                parse_retry_after(value, UNIX_EPOCH),
                Some(Duration::from_secs(784_111_777)),
                "{value:?}"
            );
        }
    }

    #[test]
    fn retry_after_keeps_sub_second_precision_of_now() {
        let now = now() + ms(250);
        assert_eq!(
            parse_retry_after("Mon, 03 Jun 2019 11:00:01 GMT", now),
            Some(ms(750))
        );
    }

    #[test]
    fn retry_after_calendar_validation() {
        assert_eq!(parse("Sat, 29 Feb 2020 12:00:00 GMT"), Some(23_418_000));
        assert_eq!(parse("Tue, 29 Feb 2000 12:00:00 GMT"), Some(0));
        assert_eq!(parse("Fri, 29 Feb 2019 12:00:00 GMT"), None);
        assert_eq!(parse("Thu, 29 Feb 1900 12:00:00 GMT"), None);
        assert_eq!(parse("Thu, 31 Apr 2020 12:00:00 GMT"), None);
        assert_eq!(parse("Thu, 00 Apr 2020 12:00:00 GMT"), None);
        assert_eq!(parse("Thu, 30 Apr 2020 24:00:00 GMT"), None);
        assert_eq!(parse("Thu, 30 Apr 2020 23:60:00 GMT"), None);
        assert_eq!(parse("Thu, 30 Apr 2020 23:59:61 GMT"), None);
        assert_eq!(
            parse("Thu, 31 Dec 2019 23:59:60 GMT"),
            parse("Wed, 01 Jan 2020 00:00:00 GMT")
        );
    }

    #[test]
    fn retry_after_rejects_malformed_dates() {
        for value in [
            "Mon, 03 Jun 2019 11:30:12",
            "Mon, 03 Jun 2019 11:30:12 PST",
            "Mon, 03 Jun 2019 11:30:12 +0000",
            "Mon, 03 Foo 2019 11:30:12 GMT",
            "Mon, 03 Jun 219 11:30:12 GMT",
            "Mon, 003 Jun 2019 11:30:12 GMT",
            "Mon, 03 Jun 2019 11:30 GMT",
            "Mon, 03 Jun 2019 11:30:12:00 GMT",
            "Mon, 03 Jun 2019 11:+3:12 GMT",
            "Monday, 03-Jun-19-1 11:30:12 GMT",
            "Monday, 03-Jun 11:30:12 GMT",
            "Funday, 03 Jun 2019 11:30:12 GMT",
            "Mon, 03 Jun 2019 11:30:12 GMT extra",
            "Mon Jun  3 11:30:12",
        ] {
            assert_eq!(parse(value), None, "{value:?}");
        }
    }

    #[test]
    fn two_digit_years_stay_within_fifty_years_ahead() {
        // From 2019, "69" is 2069 (50 years on) but "70" is 1970.
        assert_eq!(
            parse("Tuesday, 01-Jan-69 00:00:00 GMT"),
            Some(1_564_664_400)
        );
        assert_eq!(parse("Thursday, 01-Jan-70 00:00:00 GMT"), Some(0));
        assert_eq!(expand_two_digit_year(1, 2099), 2101);
        assert_eq!(expand_two_digit_year(50, 2099), 2050);
        assert_eq!(expand_two_digit_year(49, 2099), 2149);
        assert_eq!(expand_two_digit_year(99, 2000), 1999);
        assert_eq!(expand_two_digit_year(50, 2000), 2050);
        assert_eq!(expand_two_digit_year(51, 2000), 1951);
    }

    #[test]
    fn civil_date_arithmetic() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
        assert_eq!(days_from_civil(2019, 6, 3), 18_050);
        for (year, month, day) in [
            (1970, 1, 1),
            (1969, 12, 31),
            (2000, 2, 29),
            (2019, 12, 31),
            (2020, 1, 1),
            (1600, 3, 1),
        ] {
            assert_eq!(year_of_day(days_from_civil(year, month, day)), year);
        }
    }

    #[test]
    fn retry_after_before_the_epoch() {
        let before = UNIX_EPOCH - Duration::from_secs(86_400);
        assert_eq!(
            parse_retry_after("Thu, 01 Jan 1970 00:00:10 GMT", before),
            Some(Duration::from_secs(86_410))
        );
    }
}
