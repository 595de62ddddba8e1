//! Role windows: `from` and `until` are inclusive dates read in the account's time zone.

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;

use super::text::quote_short;

/// The dates a role holds between, both inclusive, in the account's time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Window {
    pub from: Option<Date>,
    pub until: Option<Date>,
}

/// Where an instant falls relative to a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The window opens at `starts`.
    NotYet { starts: Timestamp },
    /// The window is open; it closes at `ends`, if ever.
    Active { ends: Option<Timestamp> },
    /// The window closed at `ended`.
    Over { ended: Timestamp },
}

/// The first instant of `date` in `tz` (midnight, or the first instant after a DST gap).
pub fn start_of_day(date: Date, tz: &TimeZone) -> Timestamp {
    match date.to_zoned(tz.clone()).and_then(|z| z.start_of_day()) {
        Ok(z) => z.timestamp(),
        // Only reachable at the ends of jiff's range (years -9999 / 9999).
        Err(_) => {
            if date.year() < 0 {
                Timestamp::MIN
            } else {
                Timestamp::MAX
            }
        }
    }
}

impl Window {
    pub fn always() -> Window {
        Window::default()
    }

    /// The instant the window opens: `from` at 00:00 in `tz`.
    pub fn starts_at(&self, tz: &TimeZone) -> Option<Timestamp> {
        self.from.map(|d| start_of_day(d, tz))
    }

    /// The instant the window closes: the day after `until` at 00:00 in `tz`.
    pub fn ends_at(&self, tz: &TimeZone) -> Option<Timestamp> {
        self.until.map(|d| match d.tomorrow() {
            Ok(next) => start_of_day(next, tz),
            Err(_) => Timestamp::MAX,
        })
    }

    pub fn phase(&self, now: Timestamp, tz: &TimeZone) -> Phase {
        if let Some(ended) = self.ends_at(tz)
            && now >= ended
        {
            return Phase::Over { ended };
        }
        if let Some(starts) = self.starts_at(tz)
            && now < starts
        {
            return Phase::NotYet { starts };
        }
        Phase::Active {
            ends: self.ends_at(tz),
        }
    }

    pub fn is_active(&self, now: Timestamp, tz: &TimeZone) -> bool {
        matches!(self.phase(now, tz), Phase::Active { .. })
    }

    /// The next instant after `now` at which the window opens or closes.
    pub fn next_transition(&self, now: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        match self.phase(now, tz) {
            Phase::NotYet { starts } => Some(starts),
            Phase::Active { ends } => ends,
            Phase::Over { .. } => None,
        }
    }
}

/// Why a date or a time zone was refused; each is a sentence quoting the text (shortened).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    #[error("{shown} is not a date: write it as YYYY-MM-DD")]
    DateShape { shown: String },
    #[error("{shown} is not a date")]
    DateNumber { shown: String },
    #[error("{shown} is not a date: there is no month {month}")]
    NoMonth { shown: String, month: i8 },
    #[error("{shown} is not a date: month {month} of {year} has no day {day}")]
    NoDay {
        shown: String,
        year: i16,
        month: i8,
        day: i8,
    },
    #[error("{shown} is not an IANA time zone")]
    ZoneShape { shown: String },
    #[error("{name:?} is not a known IANA time zone (for example \"Europe/Zurich\" or \"UTC\")")]
    UnknownZone { name: String },
}

/// Parses `YYYY-MM-DD`; the error is a sentence.
pub fn parse_date(text: &str) -> Result<Date, WindowError> {
    let shown = || quote_short(text);
    let b = text.as_bytes();
    let shaped = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if !shaped {
        return Err(WindowError::DateShape { shown: shown() });
    }
    let number = |_| WindowError::DateNumber { shown: shown() };
    let year: i16 = text[0..4].parse().map_err(number)?;
    let month: i8 = text[5..7].parse().map_err(number)?;
    let day: i8 = text[8..10].parse().map_err(number)?;
    if !(1..=12).contains(&month) {
        return Err(WindowError::NoMonth {
            shown: shown(),
            month,
        });
    }
    Date::new(year, month, day).map_err(|_| WindowError::NoDay {
        shown: shown(),
        year,
        month,
        day,
    })
}

/// Looks an IANA time zone up by name; the error is a sentence naming it.
pub fn parse_time_zone(name: &str) -> Result<TimeZone, WindowError> {
    if name.is_empty() || name.len() > 64 {
        return Err(WindowError::ZoneShape {
            shown: quote_short(name),
        });
    }
    TimeZone::get(name).map_err(|_| WindowError::UnknownZone {
        name: name.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn until_is_inclusive_to_the_end_of_the_day_in_the_accounts_zone() {
        let zurich = parse_time_zone("Europe/Zurich").unwrap();
        let w = Window {
            from: None,
            until: Some(parse_date("2026-12-31").unwrap()),
        };
        assert_eq!(w.ends_at(&zurich), Some(ts("2026-12-31T23:00:00Z")));
        assert!(w.is_active(ts("2026-12-31T22:59:59Z"), &zurich));
        assert!(!w.is_active(ts("2026-12-31T23:00:00Z"), &zurich));
        let ny = parse_time_zone("America/New_York").unwrap();
        assert_eq!(w.ends_at(&ny), Some(ts("2027-01-01T05:00:00Z")));
        assert!(w.is_active(ts("2027-01-01T04:59:59Z"), &ny));
    }

    #[test]
    fn from_starts_at_local_midnight_including_dst_days() {
        let zurich = parse_time_zone("Europe/Zurich").unwrap();
        // 2026-03-29 is the day Zurich moves to summer time; midnight is still CET.
        let w = Window {
            from: Some(parse_date("2026-03-29").unwrap()),
            until: Some(parse_date("2026-03-29").unwrap()),
        };
        assert_eq!(w.starts_at(&zurich), Some(ts("2026-03-28T23:00:00Z")));
        // The day is 23 hours long: it ends at midnight CEST.
        assert_eq!(w.ends_at(&zurich), Some(ts("2026-03-29T22:00:00Z")));
        assert_eq!(
            w.phase(ts("2026-03-28T22:59:59Z"), &zurich),
            Phase::NotYet {
                starts: ts("2026-03-28T23:00:00Z")
            }
        );
    }

    #[test]
    fn windows_on_new_yorks_and_sydneys_dst_days() {
        // New York falls back on 2026-11-01: that day has 25 hours.
        let ny = parse_time_zone("America/New_York").unwrap();
        let w = Window {
            from: Some(parse_date("2026-11-01").unwrap()),
            until: Some(parse_date("2026-11-01").unwrap()),
        };
        assert_eq!(w.starts_at(&ny), Some(ts("2026-11-01T04:00:00Z")));
        assert_eq!(w.ends_at(&ny), Some(ts("2026-11-02T05:00:00Z")));
        // Sydney springs forward on 2026-10-04 (02:00 → 03:00); the day starts at AEST midnight.
        let sydney = parse_time_zone("Australia/Sydney").unwrap();
        let w = Window {
            from: Some(parse_date("2026-10-04").unwrap()),
            until: Some(parse_date("2026-10-04").unwrap()),
        };
        assert_eq!(w.starts_at(&sydney), Some(ts("2026-10-03T14:00:00Z")));
        assert_eq!(w.ends_at(&sydney), Some(ts("2026-10-04T13:00:00Z")));
        assert!(w.is_active(ts("2026-10-04T12:59:59Z"), &sydney));
        assert!(!w.is_active(ts("2026-10-04T13:00:00Z"), &sydney));
        assert_eq!(
            w.next_transition(ts("2026-10-01T00:00:00Z"), &sydney),
            Some(ts("2026-10-03T14:00:00Z"))
        );
    }

    #[test]
    fn dates_are_checked_for_real_days() {
        let said = |r: Result<Date, WindowError>| r.unwrap_err().to_string();
        assert_eq!(
            said(parse_date("2026-02-30")),
            "\"2026-02-30\" is not a date: month 2 of 2026 has no day 30"
        );
        assert!(parse_date("2028-02-29").is_ok());
        assert_eq!(
            said(parse_date("2026-13-01")),
            "\"2026-13-01\" is not a date: there is no month 13"
        );
        assert_eq!(
            said(parse_date("26-1-1")),
            "\"26-1-1\" is not a date: write it as YYYY-MM-DD"
        );
        assert_eq!(
            said(parse_date("+026-01-01")),
            "\"+026-01-01\" is not a date: write it as YYYY-MM-DD"
        );
        assert_eq!(
            parse_time_zone("Europe/Zurch").unwrap_err().to_string(),
            "\"Europe/Zurch\" is not a known IANA time zone (for example \"Europe/Zurich\" or \"UTC\")"
        );
        assert_eq!(
            parse_time_zone("").unwrap_err().to_string(),
            "\"\" is not an IANA time zone"
        );
    }
}
