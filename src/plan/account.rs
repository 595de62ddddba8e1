//! Planning one customer account.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use serde_json::json;

use super::key::Key;
use super::{ABSENT, AccountPlan, Action, Change, Context, ObservedAccount, Operation, PlanError};
use crate::domain::{
    DesiredAccount, DesiredContact, DesiredMember, Phase, Services, Window, email_key,
};
use crate::portal::{
    AccountPatch, ContactPut, Invitation, InvitationStatus, Member, MemberPut, NewAccount,
    PrincipalKind, RoleGrant,
};

/// The roles that make an effective admin (SPEC §1): both, on a `userLinked` member.
pub const ADMIN_ROLE: &str = "customer-admin";
pub const LOGIN_ROLE: &str = "cockpit-access";

/// A change under construction, with what the safety rules need to know of it.
struct Planned {
    change: Change,
    /// Counted against `maxRemovals`: removals the manifests did not ask for by date.
    counted: bool,
}

/// An operation and where in the order of SPEC §3 it runs.
struct Step {
    phase: u8,
    key: Key<String>,
    op: Operation,
}

/// A member as it will be once the plan is applied.
struct After {
    key: Key<String>,
    user_linked: bool,
    roles: BTreeSet<String>,
    /// Every role the declared state gives the member over time (including windows yet to
    /// open), with its window: what the last-admin rule checks at each future `until`.
    windows: BTreeMap<String, Window>,
}

pub fn plan_account(d: &DesiredAccount, o: &ObservedAccount, ctx: &Context) -> AccountPlan {
    let mut plan = AccountPlan {
        customer_number: d.customer_number.clone(),
        source: d.source.to_string(),
        mode: d.policy.mode,
        changes: Vec::new(),
        operations: Vec::new(),
        refused: None,
        errors: check_catalog(d, ctx),
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
    let mut planner = AccountPlanner {
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
            Key(change_email_key(&a.change)),
            a.change.action,
            &a.change.role,
        );
        let kb = (
            b.change.action.phase(),
            Key(change_email_key(&b.change)),
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

/// Roles and notification kinds must be in the portal's catalog.
fn check_catalog(d: &DesiredAccount, ctx: &Context) -> Vec<PlanError> {
    let roles: Vec<&str> = ctx.catalog.roles.iter().map(|r| r.name.as_str()).collect();
    let kinds: Vec<&str> = ctx
        .catalog
        .notification_kinds
        .iter()
        .map(String::as_str)
        .collect();
    let mut errors = Vec::new();
    let mut kind_check = |source: &crate::domain::SourceRef, list: &[String]| {
        for k in list {
            if !kinds.contains(&k.as_str()) {
                errors.push(PlanError {
                    source: source.clone(),
                    field: "notifications".into(),
                    message: format!(
                        "unknown notification kind {k:?}; the portal's catalog has {}",
                        kinds.join(", ")
                    ),
                });
            }
        }
    };
    let caps = &ctx.catalog.capabilities;
    for m in &d.members {
        if let Some(n) = &m.notifications
            && caps.member_notifications
        {
            kind_check(&m.source, n);
        }
    }
    if caps.contacts {
        for c in &d.contacts {
            kind_check(&c.source, &c.notifications);
        }
    }
    errors.extend(not_offered(d, caps));
    for m in &d.members {
        for r in &m.roles {
            if !roles.contains(&r.name.as_str()) {
                errors.push(PlanError {
                    source: r.source.clone(),
                    field: "role".into(),
                    message: format!(
                        "unknown role {:?}; the portal's catalog has {}",
                        r.name,
                        roles.join(", ")
                    ),
                });
            }
        }
    }
    errors.sort_by(|a, b| (&a.source, &a.message).cmp(&(&b.source, &b.message)));
    errors
}

/// What the portal's API does not offer at all (BILLmanager): refused at plan time, before
/// anything is written, with a sentence that says so.
fn not_offered(d: &DesiredAccount, caps: &crate::portal::Capabilities) -> Vec<PlanError> {
    let mut errors = Vec::new();
    let refuse = |source: &crate::domain::SourceRef, field: &str, message: &str| PlanError {
        source: source.clone(),
        field: field.into(),
        message: message.into(),
    };
    for m in &d.members {
        if !caps.member_notifications && m.notifications.as_ref().is_some_and(|n| !n.is_empty()) {
            errors.push(refuse(
                &m.source,
                "notifications",
                "the portal's API does not offer setting a member's notifications; remove notifications from this member",
            ));
        }
        if caps.refuse_services && m.services.is_some() {
            errors.push(refuse(
                &m.source,
                "services",
                "the portal's API does not offer setting a member's service access; remove services from this member",
            ));
        }
    }
    if !caps.contacts {
        for c in &d.contacts {
            errors.push(refuse(
                &c.source,
                "contacts",
                "the portal's API does not offer e-mail-only contacts; remove this contact (a member without login may stand in for it where the portal has such a role)",
            ));
        }
    }
    errors
}

struct AccountPlanner<'a> {
    d: &'a DesiredAccount,
    ctx: &'a Context<'a>,
    changes: Vec<Planned>,
    steps: Vec<Step>,
    notes: Vec<String>,
    next: Option<Timestamp>,
    after: Vec<After>,
}

impl AccountPlanner<'_> {
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
        self.changes.push(Planned { change, counted });
    }

    fn step(&mut self, phase: u8, key: &Key<String>, op: Operation) {
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
    fn account(&mut self, o: &ObservedAccount) -> Result<(), String> {
        let d = self.d;
        match &o.account {
            None => {
                let may_create = self.ctx.catalog.capabilities.create_accounts
                    && self.ctx.principal.kind == PrincipalKind::Operator;
                if !may_create {
                    return Err(format!(
                        "customer account {} does not exist on the portal or this token cannot reach it; rolecall creates accounts only as an operator on a portal that allows it",
                        d.customer_number
                    ));
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
                    &Key(String::new()),
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
                        &Key(String::new()),
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

    fn members(&mut self, o: &ObservedAccount) {
        let observed: BTreeMap<Key<String>, &Member> = o
            .members
            .iter()
            .map(|m| (Key(email_key(&m.email)), m))
            .collect();
        let desired: BTreeMap<Key<String>, &DesiredMember> = self
            .d
            .members
            .iter()
            .map(|m| (Key(m.email.key().to_string()), m))
            .collect();
        let keys: BTreeSet<&Key<String>> = observed.keys().chain(desired.keys()).collect();
        for key in keys {
            let obs = observed.get(key).copied();
            let email = desired
                .get(key)
                .map(|m| m.email.as_str().to_string())
                .or_else(|| obs.map(|m| m.email.clone()))
                .unwrap_or_default();
            if self.d.policy.ignores(&email) {
                if let Some(m) = obs {
                    self.keep(m);
                }
                continue;
            }
            if let Some(m) = obs
                && let Some(role) = m.roles.iter().find(|r| self.read_only(&r.name))
            {
                // The portal's own (a WHMCS client's owner): never changed, never removed.
                let declared = desired.get(key).map(|dm| {
                    dm.roles
                        .iter()
                        .map(|r| r.name.clone())
                        .collect::<BTreeSet<_>>()
                });
                let held: BTreeSet<String> = m.roles.iter().map(|r| r.name.clone()).collect();
                if declared.is_some_and(|d| d != held) {
                    self.notes.push(format!(
                        "{email} holds the read-only role {}: the portal manages this member; rolecall leaves it as it is",
                        role.name
                    ));
                }
                self.keep(m);
                continue;
            }
            match (desired.get(key).copied(), obs) {
                (Some(dm), obs) => self.member(dm, obs),
                (None, Some(m)) if self.d.policy.prune => {
                    self.remove_member(m, "not declared (prune)", true)
                }
                (None, Some(m)) => self.keep(m),
                (None, None) => {}
            }
        }
    }

    /// A member left as the portal has it.
    fn keep(&mut self, m: &Member) {
        self.after.push(After {
            key: Key(email_key(&m.email)),
            user_linked: m.user_linked,
            roles: m.roles.iter().map(|r| r.name.clone()).collect(),
            windows: m
                .roles
                .iter()
                .map(|r| (r.name.clone(), observed_window(r.until.as_deref())))
                .collect(),
        });
        if let Some(inv) = &m.invitation {
            self.transition(parse_instant(&inv.expires_at));
        }
    }

    fn remove_member(&mut self, m: &Member, reason: &str, counted: bool) {
        let mut c = Change::new(Action::RemoveMember);
        c.email = Some(m.email.clone());
        c.before =
            Some(json!({"roles": m.roles.iter().map(|r| r.name.clone()).collect::<Vec<_>>()}));
        c.reason = Some(reason.into());
        c.precondition = Some(m.etag.clone());
        self.change(c, counted);
        self.step(
            4,
            &Key(email_key(&m.email)),
            Operation::DeleteMember {
                email: m.email.clone(),
                if_match: Some(m.etag.clone()),
            },
        );
    }

    fn member(&mut self, dm: &DesiredMember, obs: Option<&Member>) {
        let tz = &self.d.time_zone;
        let now = self.now();
        let scheduled = self.ctx.catalog.capabilities.scheduled_revocation;
        let email = dm.email.as_str().to_string();
        let key = Key(dm.email.key().to_string());

        // The roles that hold now, with the `until` sent to the portal.
        let mut want: BTreeMap<String, Option<String>> = BTreeMap::new();
        for r in &dm.roles {
            if self.read_only(&r.name) {
                self.notes.push(format!(
                    "{email}: {} is a read-only role the portal assigns itself; rolecall does not grant it",
                    r.name
                ));
                continue;
            }
            match r.window.phase(now, tz) {
                Phase::Active { ends } => {
                    let until = if scheduled {
                        r.window.until.map(|u| u.to_string())
                    } else {
                        None
                    };
                    want.insert(r.name.clone(), until);
                    self.transition(ends);
                }
                Phase::NotYet { starts } => {
                    if let Some(from) = r.window.from {
                        self.notes.push(format!(
                            "{email}: {} will be granted from {from} ({starts})",
                            r.name
                        ));
                    }
                    self.transition(Some(starts));
                }
                Phase::Over { .. } => {}
            }
        }
        let declared: BTreeMap<&str, &crate::domain::DesiredRole> =
            dm.roles.iter().map(|r| (r.name.as_str(), r)).collect();
        let observed: BTreeMap<String, Option<String>> = obs
            .map(|m| {
                m.roles
                    .iter()
                    .map(|r| (r.name.clone(), r.until.clone()))
                    .collect()
            })
            .unwrap_or_default();
        let mut target = want.clone();
        // The roles over time: declared windows that have not closed, and what prune keeps.
        let mut windows: BTreeMap<String, Window> = dm
            .roles
            .iter()
            .filter(|r| !self.read_only(&r.name))
            .filter(|r| !matches!(r.window.phase(now, tz), Phase::Over { .. }))
            .map(|r| (r.name.clone(), r.window))
            .collect();
        if !self.d.policy.prune {
            for (name, until) in &observed {
                if !declared.contains_key(name.as_str()) {
                    target.insert(name.clone(), until.clone());
                    windows.insert(name.clone(), observed_window(until.as_deref()));
                }
            }
        }

        let Some(m) = obs else {
            if target.is_empty() {
                // Every declared window is yet to open: the member is added with its first role.
                return;
            }
            let mut c = Change::new(Action::AddMember);
            c.email = Some(email.clone());
            let mut after = json!({"name": dm.name, "roles": target.keys().collect::<Vec<_>>()});
            // Everything the member is created with is in the change, so that a saved plan's
            // operations can be checked against its changes.
            if let Some(services) = &dm.services {
                after["services"] = services_json(services);
            }
            if let Some(kinds) = &dm.notifications {
                after["notifications"] = json!(sorted(kinds));
            }
            c.after = Some(after);
            c.precondition = Some(ABSENT.into());
            self.change(c, false);
            for name in target.keys() {
                let mut g = Change::new(Action::Grant);
                g.email = Some(email.clone());
                g.role = Some(name.clone());
                g.from = declared
                    .get(name.as_str())
                    .and_then(|r| r.window.from)
                    .map(|f| f.to_string());
                g.until = declared
                    .get(name.as_str())
                    .and_then(|r| r.window.until)
                    .map(|u| u.to_string());
                g.precondition = Some(ABSENT.into());
                self.change(g, false);
            }
            let body = MemberPut {
                name: dm.name.clone(),
                roles: grants(&target),
                services: dm.services.clone(),
                notifications: dm.notifications.clone(),
            };
            self.step(
                1,
                &key,
                Operation::PutMember {
                    email: email.clone(),
                    member: body,
                    if_match: None,
                },
            );
            self.invitation(&email, &key, &target, false, None);
            self.after.push(After {
                key,
                user_linked: false,
                roles: target.keys().cloned().collect(),
                windows,
            });
            return;
        };

        if target.is_empty() {
            // Nothing declared holds any more: the link goes, and with it any invitation.
            self.remove_member(m, "every declared role has ended", false);
            return;
        }

        let etag = m.etag.clone();
        let mut grew = false;
        let mut shrank = false;
        for (name, until) in &target {
            match observed.get(name) {
                None => {
                    let r = declared.get(name.as_str());
                    let mut g = Change::new(Action::Grant);
                    g.email = Some(email.clone());
                    g.role = Some(name.clone());
                    g.from = r.and_then(|r| r.window.from).map(|f| f.to_string());
                    g.until = r.and_then(|r| r.window.until).map(|u| u.to_string());
                    if let Some(from) = &g.from {
                        g.reason = Some(format!("window opened {from}"));
                    }
                    g.precondition = Some(etag.clone());
                    self.change(g, false);
                    grew = true;
                }
                Some(old) if old != until => {
                    let mut c = Change::new(Action::ChangeWindow);
                    c.email = Some(email.clone());
                    c.role = Some(name.clone());
                    c.until = until.clone();
                    c.before = Some(json!({"until": old}));
                    c.after = Some(json!({"until": until}));
                    c.precondition = Some(etag.clone());
                    self.change(c, false);
                    grew = true;
                }
                Some(_) => {}
            }
        }
        for name in observed.keys() {
            if target.contains_key(name) {
                continue;
            }
            let (reason, counted) = match declared.get(name.as_str()) {
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
            };
            let mut c = Change::new(Action::Revoke);
            c.email = Some(email.clone());
            c.role = Some(name.clone());
            c.reason = Some(reason);
            c.precondition = Some(etag.clone());
            self.change(c, counted);
            shrank = true;
        }

        // Name, services and notifications, where declared.
        let mut before = json!({});
        let mut after = json!({});
        let mut name_change = None;
        let mut services_change = None;
        let mut notifications_change = None;
        if let Some(name) = &dm.name
            && Some(name) != m.name.as_ref()
        {
            before["name"] = json!(m.name);
            after["name"] = json!(name);
            name_change = Some(name.clone());
        }
        if let Some(services) = &dm.services
            && self.ctx.catalog.capabilities.service_scopes
            && !same_services(services, &m.services)
        {
            before["services"] = services_json(&m.services);
            after["services"] = services_json(services);
            services_change = Some(services.clone());
        }
        if let Some(kinds) = &dm.notifications
            && sorted(kinds) != sorted(&m.notifications)
        {
            before["notifications"] = json!(sorted(&m.notifications));
            after["notifications"] = json!(sorted(kinds));
            notifications_change = Some(kinds.clone());
        }
        if after != json!({}) {
            let mut c = Change::new(Action::UpdateMember);
            c.email = Some(email.clone());
            c.before = Some(before);
            c.after = Some(after);
            c.precondition = Some(etag.clone());
            self.change(c, false);
            grew = true;
        }

        // Only what the changes change, and so only what the manifests declare: a field left
        // out of the write keeps its value on the portal (SPEC §4 PUT). The name, above all, may
        // be the person's own (a WHMCS user is theirs) and is never written back as read; and
        // the body follows from the changes, which a saved plan is checked for.
        let body = |roles: &BTreeMap<String, Option<String>>| MemberPut {
            name: name_change.clone(),
            roles: grants(roles),
            services: services_change.clone(),
            notifications: notifications_change.clone(),
        };
        if grew && shrank {
            // Grants first, revocations last (SPEC §3): two writes, so that an admin handover
            // never passes through a moment without an admin.
            let mut union = observed.clone();
            union.extend(target.iter().map(|(k, v)| (k.clone(), v.clone())));
            self.step(
                1,
                &key,
                Operation::PutMember {
                    email: email.clone(),
                    member: body(&union),
                    if_match: Some(etag.clone()),
                },
            );
            self.step(
                4,
                &key,
                Operation::PutMember {
                    email: email.clone(),
                    member: body(&target),
                    if_match: Some(etag.clone()),
                },
            );
        } else if grew || shrank {
            self.step(
                if grew { 1 } else { 4 },
                &key,
                Operation::PutMember {
                    email: email.clone(),
                    member: body(&target),
                    if_match: Some(etag.clone()),
                },
            );
        }
        self.invitation(&email, &key, &target, m.user_linked, m.invitation.as_ref());
        self.after.push(After {
            key,
            user_linked: m.user_linked,
            roles: target.keys().cloned().collect(),
            windows,
        });
    }

    /// Invites members who can log in and have not linked a user account; cancels the
    /// invitation of members who can no longer log in.
    fn invitation(
        &mut self,
        email: &str,
        key: &Key<String>,
        roles: &BTreeMap<String, Option<String>>,
        user_linked: bool,
        invitation: Option<&Invitation>,
    ) {
        let login = roles.keys().any(|r| {
            self.ctx
                .catalog
                .roles
                .iter()
                .any(|c| c.name == *r && c.grants_login)
        });
        let expired = invitation.map(|i| {
            i.status == InvitationStatus::Expired
                || parse_instant(&i.expires_at).is_some_and(|at| at <= self.now())
        });
        if login && !user_linked {
            match (invitation, expired) {
                (None, _) => {
                    let mut c = Change::new(Action::Invite);
                    c.email = Some(email.to_string());
                    c.precondition = Some(ABSENT.into());
                    self.change(c, false);
                    let idempotency_key = self.idempotency_key(Action::Invite, email);
                    self.step(
                        3,
                        key,
                        Operation::Invite {
                            email: email.to_string(),
                            resend: false,
                            idempotency_key,
                        },
                    );
                }
                (Some(i), Some(true)) => {
                    let date = i.expires_at.get(..10).unwrap_or(&i.expires_at).to_string();
                    if self.d.policy.resend_expired_invitations {
                        let mut c = Change::new(Action::ResendInvitation);
                        c.email = Some(email.to_string());
                        c.reason = Some(format!("invitation expired {date}"));
                        c.precondition = Some(i.id.clone());
                        self.change(c, false);
                        let idempotency_key = self.idempotency_key(Action::ResendInvitation, email);
                        self.step(
                            3,
                            key,
                            Operation::Invite {
                                email: email.to_string(),
                                resend: true,
                                idempotency_key,
                            },
                        );
                    } else {
                        self.notes.push(format!(
                            "{email}: invitation expired {date}; resendExpiredInvitations is false"
                        ));
                    }
                }
                (Some(i), _) => self.transition(parse_instant(&i.expires_at)),
            }
        } else if !login
            && let Some(i) = invitation
            && expired == Some(false)
        {
            let mut c = Change::new(Action::CancelInvitation);
            c.email = Some(email.to_string());
            c.reason = Some("no login role".into());
            c.precondition = Some(i.id.clone());
            self.change(c, false);
            self.step(
                4,
                key,
                Operation::CancelInvitation {
                    email: email.to_string(),
                },
            );
        }
    }

    fn contacts(&mut self, o: &ObservedAccount) {
        let observed: BTreeMap<Key<String>, &crate::portal::Contact> = o
            .contacts
            .iter()
            .map(|c| (Key(email_key(&c.email)), c))
            .collect();
        let desired: BTreeMap<Key<String>, &DesiredContact> = self
            .d
            .contacts
            .iter()
            .map(|c| (Key(c.email.key().to_string()), c))
            .collect();
        let keys: BTreeSet<&Key<String>> = observed.keys().chain(desired.keys()).collect();
        for key in keys {
            let obs = observed.get(key).copied();
            let dc = desired.get(key).copied();
            let email = dc
                .map(|c| c.email.as_str().to_string())
                .or_else(|| obs.map(|c| c.email.clone()))
                .unwrap_or_default();
            if self.d.policy.ignores(&email) {
                continue;
            }
            match (dc, obs) {
                (Some(dc), None) => {
                    let body = ContactPut {
                        name: dc.name.clone().unwrap_or_default(),
                        notifications: dc.notifications.clone(),
                    };
                    let mut c = Change::new(Action::AddContact);
                    c.email = Some(email.clone());
                    c.after = Some(
                        json!({"name": body.name, "notifications": sorted(&body.notifications)}),
                    );
                    c.precondition = Some(ABSENT.into());
                    self.change(c, false);
                    self.step(
                        2,
                        key,
                        Operation::PutContact {
                            email,
                            contact: body,
                            if_match: None,
                        },
                    );
                }
                (Some(dc), Some(oc)) => {
                    let name = dc.name.clone().unwrap_or_else(|| oc.name.clone());
                    let same =
                        name == oc.name && sorted(&dc.notifications) == sorted(&oc.notifications);
                    if same {
                        continue;
                    }
                    let mut c = Change::new(Action::UpdateContact);
                    c.email = Some(email.clone());
                    c.before =
                        Some(json!({"name": oc.name, "notifications": sorted(&oc.notifications)}));
                    c.after =
                        Some(json!({"name": name, "notifications": sorted(&dc.notifications)}));
                    c.precondition = Some(oc.etag.clone());
                    self.change(c, false);
                    self.step(
                        2,
                        key,
                        Operation::PutContact {
                            email,
                            contact: ContactPut {
                                name,
                                notifications: dc.notifications.clone(),
                            },
                            if_match: Some(oc.etag.clone()),
                        },
                    );
                }
                (None, Some(oc)) if self.d.policy.prune => {
                    let mut c = Change::new(Action::RemoveContact);
                    c.email = Some(oc.email.clone());
                    c.before =
                        Some(json!({"name": oc.name, "notifications": sorted(&oc.notifications)}));
                    c.reason = Some("not declared (prune)".into());
                    c.precondition = Some(oc.etag.clone());
                    self.change(c, true);
                    self.step(
                        4,
                        key,
                        Operation::DeleteContact {
                            email: oc.email.clone(),
                            if_match: Some(oc.etag.clone()),
                        },
                    );
                }
                _ => {}
            }
        }
    }

    /// The first future instant at which a declared `until` leaves the account without an
    /// effective admin, evaluated in the account's time zone at every scheduled `until`.
    fn first_instant_without_admin(
        &self,
        is_admin: &dyn Fn(bool, &BTreeSet<String>) -> bool,
    ) -> Option<Timestamp> {
        let tz = &self.d.time_zone;
        let now = self.now();
        let ends: BTreeSet<Timestamp> = self
            .after
            .iter()
            .flat_map(|a| a.windows.values().filter_map(|w| w.ends_at(tz)))
            .filter(|t| *t > now)
            .collect();
        ends.into_iter().find(|t| {
            !self.after.iter().any(|a| {
                let roles: BTreeSet<String> = a
                    .windows
                    .iter()
                    .filter(|(_, w)| w.is_active(*t, tz))
                    .map(|(name, _)| name.clone())
                    .collect();
                is_admin(a.user_linked, &roles)
            })
        })
    }

    /// The rules that refuse a whole account: `maxRemovals`, last admin, self-lockout.
    fn safety(&self, o: &ObservedAccount) -> Option<String> {
        let removals = self
            .changes
            .iter()
            .filter(|p| p.counted && p.change.action.removes())
            .count() as u64;
        let current = (o.members.len() + o.contacts.len()) as u64;
        let limit = self.d.policy.max_removals;
        let allowed = limit.allowed(current);
        if removals > allowed {
            return Some(format!(
                "the plan would remove or revoke {removals} of {current} members and contacts, more than maxRemovals {limit} allows ({allowed}); raise policy.maxRemovals if this is intended"
            ));
        }
        // A read-only role is the portal's own owner (WHMCS): its holder is the admin.
        let is_admin = |linked: bool, roles: &BTreeSet<String>| {
            linked
                && ((roles.contains(ADMIN_ROLE) && roles.contains(LOGIN_ROLE))
                    || roles.iter().any(|r| self.read_only(r)))
        };
        let admins_before = o
            .members
            .iter()
            .filter(|m| {
                let roles: BTreeSet<String> = m.roles.iter().map(|r| r.name.clone()).collect();
                is_admin(m.user_linked, &roles)
            })
            .count();
        let admins_after = self
            .after
            .iter()
            .filter(|a| is_admin(a.user_linked, &a.roles))
            .count();
        if admins_before > 0 && admins_after == 0 {
            return Some(format!(
                "the plan would leave customer account {} without an effective admin (a linked member holding both {ADMIN_ROLE} and {LOGIN_ROLE}); grant the role to a member who has accepted their invitation first",
                self.d.customer_number
            ));
        }
        if admins_before > 0
            && let Some(at) = self.first_instant_without_admin(&is_admin)
        {
            return Some(format!(
                "the declared roles would leave customer account {} without an effective admin (a linked member holding both {ADMIN_ROLE} and {LOGIN_ROLE}) from {} ({}), when the last admin's role ends by its until date; declare an admin who stays past that date, or extend the until",
                self.d.customer_number,
                {
                    let local = self.d.time_zone.to_datetime(at);
                    format!(
                        "{} {:02}:{:02} {}",
                        local.date(),
                        local.hour(),
                        local.minute(),
                        self.d.time_zone_name
                    )
                },
                at
            ));
        }
        let principal = self.ctx.principal;
        if principal.kind == PrincipalKind::User
            && !self.d.policy.allow_self_revoke
            && let Some(me) = principal.email.as_deref().map(email_key)
            && let Some(m) = o.members.iter().find(|m| email_key(&m.email) == me)
        {
            let me = Key(me);
            let after = self.after.iter().find(|a| a.key == me);
            for role in [ADMIN_ROLE, LOGIN_ROLE] {
                let had = m.roles.iter().any(|r| r.name == role);
                let keeps = after.is_some_and(|a| a.roles.contains(role));
                if had && !keeps {
                    return Some(format!(
                        "the plan would revoke {role} from {}, the principal rolecall acts as; set policy.allowSelfRevoke to allow it",
                        m.email
                    ));
                }
            }
        }
        None
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

fn same_services(a: &Services, b: &Services) -> bool {
    match (a, b) {
        (Services::Only(x), Services::Only(y)) => sorted(x) == sorted(y),
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

/// A role as the portal holds it: until its `until` date (in the account's time zone), if any.
fn observed_window(until: Option<&str>) -> Window {
    Window {
        from: None,
        until: until.and_then(|u| crate::domain::parse_date(u).ok()),
    }
}

fn parse_instant(text: &str) -> Option<Timestamp> {
    text.parse().ok()
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
