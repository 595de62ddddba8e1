//! Planning one customer account.

mod catalog;
mod contacts;
mod members;
mod safety;

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use serde_json::json;

use super::key::JoinKey;
use super::{ABSENT, AccountPlan, Action, Change, Context, ObservedAccount, Operation, Refusal};
use crate::domain::{DesiredAccount, Phase, ReportedDate, Services, Window, email_key};
use crate::portal::{AccountPatch, NewAccount, PrincipalKind, RoleGrant};

/// The roles that make an effective admin (SPEC §1): both, on a `userLinked` member.
pub const ADMIN_ROLE: &str = "customer-admin";
pub const LOGIN_ROLE: &str = "cockpit-access";

/// A change under construction, with what the safety rules need to know of it.
struct PendingChange {
    change: Change,
    /// Counted against `maxRemovals`: removals the manifests did not ask for by date.
    counted: bool,
}

/// An operation and where in the order of SPEC §3 it runs.
struct Step<K> {
    phase: u8,
    key: K,
    op: Operation,
}

/// A member as it will be once the plan is applied.
struct After<K> {
    key: K,
    user_linked: bool,
    roles: BTreeSet<String>,
    /// Every role the declared state gives the member over time (including windows yet to
    /// open), with its window: what the last-admin rule checks at each future `until`.
    windows: BTreeMap<String, Window>,
}

pub fn plan_account(d: &DesiredAccount, o: &ObservedAccount, ctx: &Context) -> AccountPlan {
    plan_account_keyed::<String>(d, o, ctx)
}

/// [`plan_account`], joining on `K` (see `key`).
pub(super) fn plan_account_keyed<K: JoinKey>(
    d: &DesiredAccount,
    o: &ObservedAccount,
    ctx: &Context,
) -> AccountPlan {
    let mut plan = AccountPlan {
        customer_number: d.customer_number.clone(),
        source: d.source.to_string(),
        mode: d.policy.mode,
        changes: Vec::new(),
        operations: Vec::new(),
        refused: None,
        errors: catalog::check_catalog(d, ctx),
        notes: Vec::new(),
        next_transition: None,
        safety: super::SafetyPolicy {
            max_removals: d.policy.max_removals,
            allow_self_revoke: d.policy.allow_self_revoke,
        },
    };
    if !plan.errors.is_empty() {
        return plan;
    }
    let mut planner = AccountPlanner::<K> {
        d,
        ctx,
        changes: Vec::new(),
        steps: Vec::new(),
        notes: Vec::new(),
        next: None,
        after: Vec::new(),
    };
    if let Err(refusal) = planner.account(o) {
        plan.refused = Some(refusal);
        return plan;
    }
    planner.members(o);
    planner.contacts(o);
    let refusal = planner.safety(o);
    if !ctx.catalog.capabilities.etags && !planner.changes.is_empty() {
        planner.notes.push(
            "the portal has no ETags: apply writes what this plan read and compared, so a change made on the portal in between is overwritten".into(),
        );
    }

    let AccountPlanner {
        mut changes,
        mut steps,
        notes,
        next,
        ..
    } = planner;
    changes.sort_by(|a, b| {
        let ka = (
            a.change.action.phase(),
            K::new(change_email_key(&a.change)),
            a.change.action,
            &a.change.role,
        );
        let kb = (
            b.change.action.phase(),
            K::new(change_email_key(&b.change)),
            b.change.action,
            &b.change.role,
        );
        ka.cmp(&kb)
    });
    steps.sort_by(|a, b| (a.phase, &a.key).cmp(&(b.phase, &b.key)));
    plan.changes = changes.into_iter().map(|p| p.change).collect();
    plan.notes = notes;
    plan.next_transition = next;
    match refusal {
        Some(reason) => plan.refused = Some(reason),
        None => plan.operations = steps.into_iter().map(|s| s.op).collect(),
    }
    plan
}

fn change_email_key(c: &Change) -> String {
    email_key(c.email.as_deref().unwrap_or(""))
}

struct AccountPlanner<'a, K> {
    d: &'a DesiredAccount,
    ctx: &'a Context<'a>,
    changes: Vec<PendingChange>,
    steps: Vec<Step<K>>,
    notes: Vec<String>,
    next: Option<Timestamp>,
    after: Vec<After<K>>,
}

impl<K: JoinKey> AccountPlanner<'_, K> {
    fn now(&self) -> Timestamp {
        self.ctx.now
    }

    /// A role the portal assigns itself (catalog `readOnly`).
    fn read_only(&self, role: &str) -> bool {
        self.ctx
            .catalog
            .roles
            .iter()
            .any(|c| c.read_only && c.name == role)
    }

    fn change(&mut self, change: Change, counted: bool) {
        self.changes.push(PendingChange { change, counted });
    }

    fn step(&mut self, phase: u8, key: &K, op: Operation) {
        self.steps.push(Step {
            phase,
            key: key.clone(),
            op,
        });
    }

    fn transition(&mut self, at: Option<Timestamp>) {
        if let Some(at) = at
            && at > self.now()
        {
            self.next = Some(self.next.map_or(at, |n| n.min(at)));
        }
    }

    /// A key for a POST that every retry of it shares, and no other plan does.
    fn idempotency_key(&self, action: Action, email: &str) -> String {
        idempotency_key(self.ctx.plan_id, &self.d.customer_number, action, email)
    }

    /// Creates or updates the account itself.
    fn account(&mut self, o: &ObservedAccount) -> Result<(), Refusal> {
        let d = self.d;
        match &o.account {
            None => {
                let may_create = self.ctx.catalog.capabilities.create_accounts
                    && self.ctx.principal.kind == PrincipalKind::Operator;
                if !may_create {
                    return Err(Refusal::MayNotCreate {
                        customer_number: d.customer_number.clone(),
                    });
                }
                let display_name = d
                    .display_name
                    .clone()
                    .unwrap_or_else(|| d.customer_number.clone());
                let mut c = Change::new(Action::CreateAccount);
                c.after = Some(json!({"displayName": display_name, "timeZone": d.time_zone_name}));
                c.precondition = Some(ABSENT.into());
                self.change(c, false);
                let key = self.idempotency_key(Action::CreateAccount, "");
                self.step(
                    0,
                    &K::new(String::new()),
                    Operation::CreateAccount {
                        account: NewAccount {
                            customer_number: d.customer_number.clone(),
                            display_name,
                            time_zone: d.time_zone_name.clone(),
                        },
                        idempotency_key: key,
                    },
                );
            }
            Some(a) => {
                let mut patch = AccountPatch::default();
                let (mut before, mut after) = (json!({}), json!({}));
                if let Some(name) = &d.display_name
                    && *name != a.display_name
                {
                    patch.display_name = Some(name.clone());
                    before["displayName"] = json!(a.display_name);
                    after["displayName"] = json!(name);
                }
                // A portal that keeps no time zone (WHMCS) reports none: the declared one is
                // rolecall's alone, for reading the account's dates.
                if d.time_zone_declared
                    && !a.time_zone.is_empty()
                    && d.time_zone_name != a.time_zone
                {
                    patch.time_zone = Some(d.time_zone_name.clone());
                    before["timeZone"] = json!(a.time_zone);
                    after["timeZone"] = json!(d.time_zone_name);
                }
                if patch != AccountPatch::default() {
                    let mut c = Change::new(Action::UpdateAccount);
                    c.before = Some(before);
                    c.after = Some(after);
                    c.precondition = Some(a.etag.clone());
                    self.change(c, false);
                    self.step(
                        0,
                        &K::new(String::new()),
                        Operation::UpdateAccount {
                            patch,
                            if_match: Some(a.etag.clone()),
                        },
                    );
                }
            }
        }
        Ok(())
    }
}

pub(super) fn grants(roles: &BTreeMap<String, Option<String>>) -> Vec<RoleGrant> {
    roles
        .iter()
        .map(|(name, until)| RoleGrant {
            name: name.clone(),
            until: until.clone(),
        })
        .collect()
}

fn sorted(list: &[String]) -> Vec<String> {
    let mut v = list.to_vec();
    v.sort();
    v.dedup();
    v
}

/// Whether two lists hold the same names, in any order and however often: `sorted(a) ==
/// sorted(b)` without copying a name (a zero-drift plan compares every member's lists).
fn same_set(a: &[String], b: &[String]) -> bool {
    if a == b {
        return true;
    }
    fn set(list: &[String]) -> Vec<&str> {
        let mut v: Vec<&str> = list.iter().map(String::as_str).collect();
        v.sort_unstable();
        v.dedup();
        v
    }
    set(a) == set(b)
}

fn same_services(a: &Services, b: &Services) -> bool {
    match (a, b) {
        (Services::Only(x), Services::Only(y)) => same_set(x, y),
        _ => a == b,
    }
}

fn services_json(s: &Services) -> serde_json::Value {
    match s {
        Services::All => json!("all"),
        Services::None => json!("none"),
        Services::Only(ids) => json!(sorted(ids)),
    }
}

/// A role as the portal holds it: until its `until` date (in the account's time zone), if
/// any. An `until` that is no date bounds nothing (see `ReportedDate`).
fn observed_window(until: Option<&ReportedDate>) -> Window {
    Window {
        from: None,
        until: until.and_then(ReportedDate::date),
    }
}

/// [`observed_window`] of an `until` as the portal's text.
fn observed_window_text(until: Option<&str>) -> Window {
    Window {
        from: None,
        until: until.and_then(|u| crate::domain::parse_date(u).ok()),
    }
}

/// Why a role the portal holds is revoked, and whether that counts against `maxRemovals`
/// (a removal the manifests asked for by date does not).
pub(super) fn revocation(
    declared: Option<&crate::domain::DesiredRole>,
    now: jiff::Timestamp,
    tz: &jiff::tz::TimeZone,
) -> (String, bool) {
    match declared {
        Some(r) => match r.window.phase(now, tz) {
            Phase::Over { .. } => (
                format!(
                    "expired {}",
                    r.window.until.map(|u| u.to_string()).unwrap_or_default()
                ),
                false,
            ),
            Phase::NotYet { .. } => (
                format!(
                    "window starts {}",
                    r.window.from.map(|f| f.to_string()).unwrap_or_default()
                ),
                true,
            ),
            Phase::Active { .. } => ("not declared".to_string(), true),
        },
        None => ("not declared (prune)".to_string(), true),
    }
}

/// The idempotency key of a POST: every retry of it shares it, and no other plan has it.
pub(super) fn idempotency_key(plan_id: &str, cn: &str, action: Action, email: &str) -> String {
    let text = format!(
        "{plan_id}\u{0}{cn}\u{0}{}\u{0}{}",
        email_key(email),
        action.as_str()
    );
    format!("rc-{:032x}", fnv1a_128(text.as_bytes()))
}

/// FNV-1a, 128 bits: stable across runs and platforms, enough to keep keys distinct.
fn fnv1a_128(bytes: &[u8]) -> u128 {
    let mut hash: u128 = 0x6c62272e07bb014262b821756295c58d;
    for b in bytes {
        hash ^= u128::from(*b);
        hash = hash.wrapping_mul(0x0000000001000000000000000000013B);
    }
    hash
}
