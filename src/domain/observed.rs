//! Observed state: what a portal holds for an account, as plain values with real dates. The
//! portal adapters turn their wire types into these (`portal::api`'s `From` impls) once, where
//! they read; the planner, the review and the controller work on these.

use std::fmt;

use jiff::Timestamp;
use jiff::civil::Date;

use super::{Services, parse_date};

/// What the portal holds for one account (`account` is `None` when it does not exist there).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ObservedAccount {
    pub account: Option<AccountSettings>,
    pub members: Vec<ObservedMember>,
    pub contacts: Vec<ObservedContact>,
}

/// A customer account's own settings as the portal shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountSettings {
    pub customer_number: String,
    pub display_name: String,
    /// Empty when the portal keeps no time zone (WHMCS).
    pub time_zone: String,
    pub etag: String,
}

/// A person linked to a customer account by roles, as the portal holds them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedMember {
    pub email: String,
    pub name: Option<String>,
    pub user_linked: bool,
    pub roles: Vec<ObservedRole>,
    pub services: Services,
    pub notifications: Vec<String>,
    pub invitation: Option<ObservedInvitation>,
    pub etag: String,
}

/// One role a member holds, until the end of `until` (in the account's time zone) if set.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObservedRole {
    pub name: String,
    pub until: Option<ReportedDate>,
}

/// A date as a portal reported it.
///
/// A text that is no `YYYY-MM-DD` date is kept as it came rather than dropped or refused: the
/// planner has always compared it as text (so a declared date differs from it, and the plan
/// shows it), written it back as read for a role it leaves alone, and counted it as no end
/// date for the windows. Keeping the text keeps that behaviour, and a portal's odd value never
/// stops a plan.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ReportedDate {
    Date(Date),
    Unreadable(String),
}

impl ReportedDate {
    /// Reads a portal's date text; a text that is no date is kept as it is.
    pub fn from_text(text: String) -> ReportedDate {
        match parse_date(&text) {
            Ok(date) => ReportedDate::Date(date),
            Err(_) => ReportedDate::Unreadable(text),
        }
    }

    /// The date, if the portal's text is one.
    pub fn date(&self) -> Option<Date> {
        match self {
            ReportedDate::Date(d) => Some(*d),
            ReportedDate::Unreadable(_) => None,
        }
    }
}

/// The text the portal reported (a read date is `YYYY-MM-DD`, the only form that reads).
impl fmt::Display for ReportedDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReportedDate::Date(d) => write!(f, "{d}"),
            ReportedDate::Unreadable(text) => f.write_str(text),
        }
    }
}

/// An instant as a portal reported it: read (`at`, `None` when the text is no RFC 3339
/// instant), with the text it came as, which is what people are shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportedInstant {
    pub at: Option<Timestamp>,
    pub text: String,
}

impl ReportedInstant {
    pub fn from_text(text: String) -> ReportedInstant {
        ReportedInstant {
            at: text.parse().ok(),
            text,
        }
    }

    /// The date as the portal wrote it (the text's first ten characters, or all of a shorter
    /// text): the day in the portal's own offset, as people read it.
    pub fn date_text(&self) -> &str {
        self.text.get(..10).unwrap_or(&self.text)
    }
}

/// A pending or expired invitation of a member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedInvitation {
    pub id: String,
    pub status: InvitationState,
    pub sent_at: ReportedInstant,
    pub expires_at: ReportedInstant,
}

impl ObservedInvitation {
    /// Expired by the portal's word or by its date. An expiry that does not read is not
    /// passed (the planner has always read it so): the invitation stands until the portal
    /// says otherwise.
    pub fn expired(&self, now: Timestamp) -> bool {
        self.status == InvitationState::Expired || self.expires_at.at.is_some_and(|at| at <= now)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvitationState {
    Pending,
    Expired,
}

/// An e-mail-only entity of an account that receives notifications.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedContact {
    pub email: String,
    pub name: String,
    pub notifications: Vec<String>,
    pub etag: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_date_that_does_not_read_is_kept_as_its_text() {
        let read = ReportedDate::from_text("2026-12-31".into());
        assert_eq!(
            read.date().map(|d| d.to_string()).as_deref(),
            Some("2026-12-31")
        );
        assert_eq!(read.to_string(), "2026-12-31");
        let odd = ReportedDate::from_text("31.12.2026".into());
        assert_eq!(odd.date(), None);
        assert_eq!(odd.to_string(), "31.12.2026");
    }

    #[test]
    fn an_instant_keeps_its_text_and_an_unreadable_expiry_is_not_passed() {
        let now: Timestamp = "2026-11-26T00:00:00Z".parse().unwrap();
        let inv = |status, expires: &str| ObservedInvitation {
            id: "i".into(),
            status,
            sent_at: ReportedInstant::from_text("2026-11-01T00:00:00Z".into()),
            expires_at: ReportedInstant::from_text(expires.into()),
        };
        let past = inv(InvitationState::Pending, "2026-11-25T23:00:00-02:00");
        assert!(past.expires_at.at.is_some());
        assert_eq!(past.expires_at.date_text(), "2026-11-25");
        assert!(!past.expired(now), "that is 01:00 on the 26th, UTC");
        assert!(inv(InvitationState::Pending, "2026-11-25T00:00:00Z").expired(now));
        let odd = inv(InvitationState::Pending, "soon");
        assert_eq!(odd.expires_at.at, None);
        assert_eq!(odd.expires_at.date_text(), "soon");
        assert!(!odd.expired(now));
        assert!(inv(InvitationState::Expired, "soon").expired(now));
    }
}
