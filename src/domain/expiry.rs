//! Roles that end soon (SPEC §3a "expiry notices"): the declared roles whose last day (`until`,
//! inclusive, in the account's time zone) falls within the next few days, so that `plan`,
//! `apply` and the controller can warn before access ends rather than after.

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;

use super::{DesiredAccount, Email};

/// The default of `--expiring-within`: two weeks' notice.
pub const DEFAULT_EXPIRING_WITHIN_DAYS: u32 = 14;

/// A declared role that is in force now and whose last day is near.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Expiring {
    pub customer_number: String,
    pub email: Email,
    pub role: String,
    /// The role's last day, inclusive, in the account's time zone.
    pub until: Date,
    /// Whole days from today (in the account's time zone) to `until`: 0 means today is the last.
    pub days_left: i32,
}

impl std::fmt::Display for Expiring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let when = match self.days_left {
            0 => "today is its last day".to_string(),
            1 => "its last day is tomorrow".to_string(),
            n => format!("its last day is in {n} days"),
        };
        write!(
            f,
            "account {}: {}'s role {} ends on {} ({when})",
            self.customer_number, self.email, self.role, self.until
        )
    }
}

/// Every declared role, in force at `now`, whose `until` is at most `within_days` days after
/// today (both read in the account's time zone). Roles not yet started are left out: they will
/// be announced when they hold. Sorted by account, e-mail and role, so output is stable.
pub fn expiring_soon(
    accounts: &[DesiredAccount],
    now: Timestamp,
    within_days: u32,
) -> Vec<Expiring> {
    let mut found = Vec::new();
    for account in accounts {
        for member in &account.members {
            for role in &member.roles {
                let Some(until) = role.window.until else {
                    continue;
                };
                if !role.window.is_active(now, &account.time_zone) {
                    continue;
                }
                if let Some(days_left) =
                    last_day_within(until, &account.time_zone, now, within_days)
                {
                    found.push(Expiring {
                        customer_number: account.customer_number.clone(),
                        email: member.email.clone(),
                        role: role.name.clone(),
                        until,
                        days_left,
                    });
                }
            }
        }
    }
    found.sort();
    found
}

/// The one rule for "ends soon", shared by `plan`, `apply`, the controller and `review`: the
/// whole days from today (read at `now` in `tz`) to the last day `until`, when that is between
/// 0 (today is the last day) and `within_days`; `None` when the last day is further off or past.
pub fn last_day_within(
    until: Date,
    tz: &TimeZone,
    now: Timestamp,
    within_days: u32,
) -> Option<i32> {
    let today = tz.to_datetime(now).date();
    let days_left = today.until(until).ok()?.get_days();
    (days_left >= 0 && i64::from(days_left) <= i64::from(within_days)).then_some(days_left)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{AccountPolicy, DesiredMember, DesiredRole, SourceRef, Window};

    fn account(tz: &str, roles: &[(&str, Option<&str>, Option<&str>)]) -> DesiredAccount {
        let date = |d: Option<&str>| d.map(|d| d.parse::<Date>().expect("test date"));
        DesiredAccount {
            name: "acme".into(),
            namespace: "default".into(),
            portal_ref: None,
            customer_number: "10042".into(),
            display_name: None,
            time_zone_name: tz.into(),
            time_zone_declared: true,
            time_zone: jiff::tz::TimeZone::get(tz).expect("test zone"),
            members: vec![DesiredMember {
                email: Email::parse("alice@acme.example").expect("test e-mail"),
                name: None,
                roles: roles
                    .iter()
                    .map(|(name, from, until)| DesiredRole {
                        name: (*name).into(),
                        window: Window {
                            from: date(*from),
                            until: date(*until),
                        },
                        source: SourceRef::default(),
                    })
                    .collect(),
                services: None,
                notifications: None,
                source: SourceRef::default(),
            }],
            contacts: Vec::new(),
            policy: AccountPolicy::default(),
            source: SourceRef::default(),
        }
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("test instant")
    }

    #[test]
    fn a_role_is_expiring_from_fourteen_days_before_its_last_day_through_that_day() {
        let a = account(
            "UTC",
            &[
                ("cockpit-access", None, Some("2026-12-15")),
                ("technical-contact", None, Some("2026-12-16")),
                ("customer-admin", None, None),
            ],
        );
        let found = expiring_soon(std::slice::from_ref(&a), ts("2026-12-01T09:00:00Z"), 14);
        let roles: Vec<(&str, i32)> = found
            .iter()
            .map(|e| (e.role.as_str(), e.days_left))
            .collect();
        assert_eq!(roles, [("cockpit-access", 14)]);
        assert_eq!(
            found[0].to_string(),
            "account 10042: alice@acme.example's role cockpit-access ends on 2026-12-15 \
             (its last day is in 14 days)"
        );
        let last_day = expiring_soon(std::slice::from_ref(&a), ts("2026-12-15T23:59:00Z"), 14);
        let left: Vec<(&str, i32)> = last_day
            .iter()
            .map(|e| (e.role.as_str(), e.days_left))
            .collect();
        assert_eq!(left, [("cockpit-access", 0), ("technical-contact", 1)]);
        assert!(last_day[0].to_string().contains("today is its last day"));
        assert!(last_day[1].to_string().contains("its last day is tomorrow"));
        // The day after its last day the role is over: no longer announced as expiring.
        let after: Vec<String> = expiring_soon(&[a], ts("2026-12-16T00:00:00Z"), 14)
            .into_iter()
            .map(|e| e.role)
            .collect();
        assert_eq!(after, ["technical-contact"]);
    }

    #[test]
    fn today_is_read_in_the_accounts_time_zone() {
        // 2026-12-01 23:30 UTC is already 2026-12-02 in Tokyo: one day less is left there.
        let now = ts("2026-12-01T23:30:00Z");
        let utc = expiring_soon(
            &[account("UTC", &[("r", None, Some("2026-12-10"))])],
            now,
            14,
        );
        let tokyo = expiring_soon(
            &[account("Asia/Tokyo", &[("r", None, Some("2026-12-10"))])],
            now,
            14,
        );
        assert_eq!(utc[0].days_left, 9);
        assert_eq!(tokyo[0].days_left, 8);
    }

    #[test]
    fn roles_not_yet_started_and_a_zero_day_notice() {
        let a = account("UTC", &[("r", Some("2026-12-05"), Some("2026-12-06"))]);
        assert!(expiring_soon(std::slice::from_ref(&a), ts("2026-12-01T00:00:00Z"), 14).is_empty());
        assert_eq!(
            expiring_soon(std::slice::from_ref(&a), ts("2026-12-05T00:00:00Z"), 14).len(),
            1
        );
        assert!(expiring_soon(std::slice::from_ref(&a), ts("2026-12-05T00:00:00Z"), 0).is_empty());
        assert_eq!(expiring_soon(&[a], ts("2026-12-06T12:00:00Z"), 0).len(), 1);
    }

    #[test]
    fn the_last_day_counts_calendar_days_not_hours() {
        // At 09:00 on 2026-11-26 a role ending on 2026-12-10 has 14 days left: it is within a
        // 14-day notice, although its end (2026-12-11T00:00) is more than 14×24 h away.
        let now = ts("2026-11-26T09:00:00Z");
        let date = |d: &str| d.parse::<Date>().expect("test date");
        assert_eq!(
            last_day_within(date("2026-12-10"), &TimeZone::UTC, now, 14),
            Some(14)
        );
        assert_eq!(
            last_day_within(date("2026-12-11"), &TimeZone::UTC, now, 14),
            None
        );
        assert_eq!(
            last_day_within(date("2026-11-26"), &TimeZone::UTC, now, 0),
            Some(0)
        );
        assert_eq!(
            last_day_within(date("2026-11-25"), &TimeZone::UTC, now, 14),
            None
        );
    }
}
