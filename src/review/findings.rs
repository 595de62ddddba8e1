//! Rows and their findings, from the declared state, the observed state, the catalog and the
//! planner's changes — never from rendered text.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{InvitationState, ReviewRow, RowKind};
use crate::domain::{
    DesiredAccount, DesiredContact, DesiredMember, ObservedContact, ObservedMember, ReportedDate,
    Window, email_key, last_day_within,
};
use crate::plan::{ADMIN_ROLE, AccountPlan, Action, Change, LOGIN_ROLE, ObservedAccount};
use crate::portal::Catalog;

/// The fixed finding words of SPEC §3a.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Finding {
    /// On the portal, not in the manifests.
    Undeclared,
    /// Declared differently than the portal holds it.
    Drift,
    /// Ends within `--expiring-within` days.
    Expiring,
    /// Its `until` has passed, but the portal still shows it.
    Expired,
    /// Pending past its expiry, or pending longer than the catalog's TTL.
    StaleInvitation,
    /// `customer-admin` without `cockpit-access`.
    AdminWithoutLogin,
    /// The account has exactly one effective admin (on that admin's rows).
    SingleAdmin,
    /// The account has no effective admin (on every member row of it).
    NoAdmin,
    /// Matched by `policy.ignore`.
    Ignored,
}

impl Finding {
    pub const ALL: [Finding; 9] = [
        Finding::Undeclared,
        Finding::Drift,
        Finding::Expiring,
        Finding::Expired,
        Finding::StaleInvitation,
        Finding::AdminWithoutLogin,
        Finding::SingleAdmin,
        Finding::NoAdmin,
        Finding::Ignored,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Finding::Undeclared => "undeclared",
            Finding::Drift => "drift",
            Finding::Expiring => "expiring",
            Finding::Expired => "expired",
            Finding::StaleInvitation => "stale-invitation",
            Finding::AdminWithoutLogin => "admin-without-login",
            Finding::SingleAdmin => "single-admin",
            Finding::NoAdmin => "no-admin",
            Finding::Ignored => "ignored",
        }
    }
}

/// What the rows of one portal are made from.
pub struct Inputs<'a> {
    /// The declared accounts of this portal.
    pub declared: &'a [DesiredAccount],
    /// Every account read from the portal.
    pub observed: &'a BTreeMap<String, ObservedAccount>,
    /// The planner's plans of the declared accounts (what it would change is `drift`).
    pub plans: &'a [AccountPlan],
    pub catalog: &'a Catalog,
    pub now: Timestamp,
    pub expiring_within_days: u32,
}

/// Every row of every observed account, sorted by customer number, kind, e-mail key and role.
pub fn build_rows(inputs: &Inputs) -> Vec<ReviewRow> {
    let declared: BTreeMap<&str, &DesiredAccount> = inputs
        .declared
        .iter()
        .map(|d| (d.customer_number.as_str(), d))
        .collect();
    let plans: BTreeMap<&str, &AccountPlan> = inputs
        .plans
        .iter()
        .map(|p| (p.customer_number.as_str(), p))
        .collect();
    let mut rows = Vec::new();
    for (cn, o) in inputs.observed {
        let Some(account) = &o.account else { continue };
        let d = declared.get(cn.as_str()).copied();
        let tz = match d {
            Some(d) => d.time_zone.clone(),
            None => crate::domain::parse_time_zone(&account.time_zone).unwrap_or(TimeZone::UTC),
        };
        let plan = plans.get(cn.as_str()).copied();
        let mut changes: HashMap<String, Vec<&Change>> = HashMap::new();
        for c in plan.iter().flat_map(|p| &p.changes) {
            if let Some(e) = &c.email {
                changes.entry(email_key(e)).or_default().push(c);
            }
        }
        let ctx = AccountCtx {
            inputs,
            d,
            members: d
                .iter()
                .flat_map(|d| &d.members)
                .map(|m| (m.email.key(), m))
                .collect(),
            contacts: d
                .iter()
                .flat_map(|d| &d.contacts)
                .map(|c| (c.email.key(), c))
                .collect(),
            changes,
            tz,
            name: account.display_name.clone(),
            cn,
            admins: effective_admins(o, inputs.catalog),
        };
        for m in &o.members {
            ctx.member_rows(m, &mut rows);
        }
        for c in &o.contacts {
            ctx.contact_rows(c, &mut rows);
        }
    }
    rows.sort_by_cached_key(ReviewRow::key);
    rows
}

/// Whether a member is an effective admin (SPEC §1), the way the planner's last-admin rule
/// counts one: linked and holding both admin roles, or a read-only role of the portal's own.
pub fn is_effective_admin(m: &ObservedMember, catalog: &Catalog) -> bool {
    let holds = |name: &str| m.roles.iter().any(|r| r.name == name);
    let read_only = m.roles.iter().any(|r| {
        catalog
            .roles
            .iter()
            .any(|c| c.read_only && c.name == r.name)
    });
    m.user_linked && ((holds(ADMIN_ROLE) && holds(LOGIN_ROLE)) || read_only)
}

/// The e-mail keys of the account's effective admins.
fn effective_admins(o: &ObservedAccount, catalog: &Catalog) -> BTreeSet<String> {
    o.members
        .iter()
        .filter(|m| is_effective_admin(m, catalog))
        .map(|m| email_key(&m.email))
        .collect()
}

struct AccountCtx<'a> {
    inputs: &'a Inputs<'a>,
    d: Option<&'a DesiredAccount>,
    /// The declared members and contacts by e-mail key, and the planner's changes by the
    /// e-mail key they concern: a large account is looked up, not scanned, row by row.
    members: HashMap<&'a str, &'a DesiredMember>,
    contacts: HashMap<&'a str, &'a DesiredContact>,
    changes: HashMap<String, Vec<&'a Change>>,
    tz: TimeZone,
    name: String,
    cn: &'a str,
    admins: BTreeSet<String>,
}

impl AccountCtx<'_> {
    fn row(&self, email: &str, kind: RowKind, role: &str) -> ReviewRow {
        ReviewRow {
            customer_number: self.cn.to_string(),
            account: self.name.clone(),
            email: email.to_string(),
            kind,
            role: role.to_string(),
            from: None,
            until: None,
            user_linked: None,
            invitation: InvitationState::None,
            invitation_sent_at: None,
            declared_at: None,
            granted_by: None,
            granted_commit: None,
            granted_at: None,
            findings: Vec::new(),
            decision: None,
            reviewer: None,
            source: None,
        }
    }

    fn ignored(&self, email: &str) -> bool {
        self.d.is_some_and(|d| d.policy.ignores(email))
    }

    /// Whether the planner would change something of this e-mail: a window or a revocation of
    /// `role`, or the member's or contact's own fields.
    fn planner_changes(&self, email: &str, role: Option<&str>, actions: &[Action]) -> bool {
        self.changes.get(&email_key(email)).is_some_and(|list| {
            list.iter().any(|c| {
                actions.contains(&c.action) && (c.role.is_none() || c.role.as_deref() == role)
            })
        })
    }

    fn declared_member(&self, email: &str) -> Option<&DesiredMember> {
        self.members.get(email_key(email).as_str()).copied()
    }

    fn declared_contact(&self, email: &str) -> Option<&DesiredContact> {
        self.contacts.get(email_key(email).as_str()).copied()
    }

    fn member_rows(&self, m: &ObservedMember, rows: &mut Vec<ReviewRow>) {
        let dm = self.declared_member(&m.email);
        let ignored = self.ignored(&m.email);
        let (invitation, sent_at, stale) = self.invitation(m);
        let is_admin = self.admins.contains(&email_key(&m.email));
        let holds_login = m.roles.iter().any(|r| r.name == LOGIN_ROLE);
        let mut roles: Vec<(&str, Option<&ReportedDate>)> = m
            .roles
            .iter()
            .map(|r| (r.name.as_str(), r.until.as_ref()))
            .collect();
        if roles.is_empty() {
            roles.push(("", None));
        }
        for (role, observed_until) in roles {
            let mut row = self.row(&m.email, RowKind::Member, role);
            row.user_linked = Some(m.user_linked);
            row.invitation = invitation;
            row.invitation_sent_at = sent_at.clone();
            let dr = dm.and_then(|dm| dm.roles.iter().find(|r| r.name == role));
            row.source = dr.map(|r| r.source.clone()).or_else(|| {
                dm.filter(|dm| role.is_empty() && dm.roles.is_empty())
                    .map(|dm| dm.source.clone())
            });
            row.declared_at = row.source.as_ref().map(ToString::to_string);
            let declared_window = dr.map(|r| r.window).unwrap_or_default();
            // An `until` of the portal's that is no date is read as none: the declared one shows.
            let until = observed_until
                .and_then(ReportedDate::date)
                .or(declared_window.until);
            let window = Window {
                from: declared_window.from,
                until,
            };
            row.from = window.from.map(|d| d.to_string());
            row.until = window.until.map(|d| d.to_string());
            let mut f = BTreeSet::new();
            let expired = self.expiry(&window, &mut f);
            if ignored {
                f.insert(Finding::Ignored);
            } else if row.source.is_none() {
                f.insert(Finding::Undeclared);
            } else if !expired
                && self.planner_changes(
                    &m.email,
                    Some(role),
                    &[Action::ChangeWindow, Action::Revoke, Action::UpdateMember],
                )
            {
                f.insert(Finding::Drift);
            }
            if stale {
                f.insert(Finding::StaleInvitation);
            }
            if role == ADMIN_ROLE && !holds_login {
                f.insert(Finding::AdminWithoutLogin);
            }
            match self.admins.len() {
                0 => {
                    f.insert(Finding::NoAdmin);
                }
                1 if is_admin => {
                    f.insert(Finding::SingleAdmin);
                }
                _ => {}
            }
            row.findings = f.into_iter().collect();
            rows.push(row);
        }
    }

    /// `expired` or `expiring`, from the window's end in the account's time zone; whether it
    /// is expired.
    fn expiry(&self, window: &Window, f: &mut BTreeSet<Finding>) -> bool {
        let now = self.inputs.now;
        let Some(ends) = window.ends_at(&self.tz) else {
            return false;
        };
        if ends <= now {
            f.insert(Finding::Expired);
            return true;
        }
        // The same rule as `plan`'s notices: the last day within N calendar days of today.
        let within = self.inputs.expiring_within_days;
        if window
            .until
            .and_then(|until| last_day_within(until, &self.tz, now, within))
            .is_some()
        {
            f.insert(Finding::Expiring);
        }
        false
    }

    /// The member's invitation state, when it was sent, and whether it is stale.
    fn invitation(&self, m: &ObservedMember) -> (InvitationState, Option<String>, bool) {
        let Some(inv) = &m.invitation else {
            return (InvitationState::None, None, false);
        };
        let now = self.inputs.now;
        let pending = inv.status == crate::domain::InvitationState::Pending;
        let state = if pending {
            InvitationState::Pending
        } else {
            InvitationState::Expired
        };
        let past_expiry = inv.expires_at.at.is_some_and(|t| t <= now);
        let ttl =
            SignedDuration::from_hours(i64::from(self.inputs.catalog.invitation_ttl_days) * 24);
        let past_ttl = self.inputs.catalog.invitation_ttl_days > 0
            && inv
                .sent_at
                .at
                .and_then(|t| t.checked_add(ttl).ok())
                .is_some_and(|t| t <= now);
        let sent = (!inv.sent_at.text.is_empty()).then(|| inv.sent_at.text.clone());
        (state, sent, pending && (past_expiry || past_ttl))
    }

    fn contact_rows(&self, c: &ObservedContact, rows: &mut Vec<ReviewRow>) {
        let dc = self.declared_contact(&c.email);
        let ignored = self.ignored(&c.email);
        let drift = dc.is_some() && self.planner_changes(&c.email, None, &[Action::UpdateContact]);
        let mut kinds: Vec<&str> = c.notifications.iter().map(String::as_str).collect();
        if kinds.is_empty() {
            kinds.push("");
        }
        for kind in kinds {
            let mut row = self.row(&c.email, RowKind::Contact, kind);
            let declared = dc.is_some_and(|dc| {
                if kind.is_empty() {
                    dc.notifications.is_empty()
                } else {
                    dc.notifications.iter().any(|n| n == kind)
                }
            });
            if declared {
                row.source = dc.map(|dc| dc.source.clone());
                row.declared_at = row.source.as_ref().map(ToString::to_string);
            }
            let mut f = BTreeSet::new();
            if ignored {
                f.insert(Finding::Ignored);
            } else if !declared {
                f.insert(Finding::Undeclared);
            } else if drift {
                f.insert(Finding::Drift);
            }
            row.findings = f.into_iter().collect();
            rows.push(row);
        }
    }
}
