//! Planning an account's members: roles over time, names, services, notifications and
//! invitations.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;

use super::super::key::JoinKey;
use super::super::{ABSENT, Action, Change, ObservedAccount, Operation};
use super::{
    AccountPlanner, After, grants, observed_window, observed_window_text, revocation,
    same_services, same_set, services_json, sorted,
};
use crate::domain::{
    DesiredMember, DesiredRole, ObservedInvitation, ObservedMember, Phase, Services, Window,
    email_key,
};
use crate::portal::MemberPut;

/// A member's roles, as [`AccountPlanner::member_roles`] finds them.
struct MemberRoles<'d, K> {
    email: String,
    key: K,
    declared: BTreeMap<&'d str, &'d DesiredRole>,
    /// The roles the portal holds, with their `until`.
    observed: BTreeMap<String, Option<String>>,
    /// The roles to hold after the plan, with the `until` sent to the portal.
    target: BTreeMap<String, Option<String>>,
    /// Every role over time, with its window (for the last-admin rule).
    windows: BTreeMap<String, Window>,
}

/// What a member's write changes besides roles (`None`: left as the portal has it).
struct MemberFields {
    name: Option<String>,
    services: Option<Services>,
    notifications: Option<Vec<String>>,
}

impl<K: JoinKey> AccountPlanner<'_, K> {
    pub(super) fn members(&mut self, o: &ObservedAccount) {
        let observed: BTreeMap<K, &ObservedMember> = o
            .members
            .iter()
            .map(|m| (K::new(email_key(&m.email)), m))
            .collect();
        let desired: BTreeMap<K, &DesiredMember> = self
            .d
            .members
            .iter()
            .map(|m| (K::new(m.email.key().to_string()), m))
            .collect();
        let keys: BTreeSet<&K> = observed.keys().chain(desired.keys()).collect();
        for key in keys {
            let obs = observed.get(key).copied();
            let email: &str = desired
                .get(key)
                .map(|m| m.email.as_str())
                .or_else(|| obs.map(|m| m.email.as_str()))
                .unwrap_or_default();
            if self.d.policy.ignores(email) {
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
    fn keep(&mut self, m: &ObservedMember) {
        self.after.push(After {
            key: K::new(email_key(&m.email)),
            user_linked: m.user_linked,
            roles: m.roles.iter().map(|r| r.name.clone()).collect(),
            windows: m
                .roles
                .iter()
                .map(|r| (r.name.clone(), observed_window(r.until.as_ref())))
                .collect(),
        });
        if let Some(inv) = &m.invitation {
            self.transition(inv.expires_at.at);
        }
    }

    pub(super) fn remove_member(&mut self, m: &ObservedMember, reason: &str, counted: bool) {
        let mut c = Change::new(Action::RemoveMember);
        c.email = Some(m.email.clone());
        c.before =
            Some(json!({"roles": m.roles.iter().map(|r| r.name.clone()).collect::<Vec<_>>()}));
        c.reason = Some(reason.into());
        c.precondition = Some(m.etag.clone());
        self.change(c, counted);
        self.step(
            4,
            &K::new(email_key(&m.email)),
            Operation::DeleteMember {
                email: m.email.clone(),
                if_match: Some(m.etag.clone()),
            },
        );
    }

    fn member(&mut self, dm: &DesiredMember, obs: Option<&ObservedMember>) {
        let roles = self.member_roles(dm, obs);
        let Some(m) = obs else {
            self.add_member(dm, roles);
            return;
        };
        if roles.target.is_empty() {
            // Nothing declared holds any more: the link goes, and with it any invitation.
            self.remove_member(m, "every declared role has ended", false);
            return;
        }
        let (grew, shrank) = self.role_changes(m, &roles);
        let (fields, updated) = self.member_fields(dm, m, &roles.email);
        self.member_writes(m, &roles, &fields, grew || updated, shrank);
        let MemberRoles {
            email,
            key,
            target,
            windows,
            ..
        } = roles;
        self.invitation(&email, &key, &target, m.user_linked, m.invitation.as_ref());
        self.after.push(After {
            key,
            user_linked: m.user_linked,
            roles: target.keys().cloned().collect(),
            windows,
        });
    }

    /// The member's roles: those that hold now (with the `until` sent to the portal), the
    /// declared and the observed ones, and the roles over time.
    fn member_roles<'d>(
        &mut self,
        dm: &'d DesiredMember,
        obs: Option<&ObservedMember>,
    ) -> MemberRoles<'d, K> {
        let tz = &self.d.time_zone;
        let now = self.now();
        let scheduled = self.ctx.catalog.capabilities.scheduled_revocation;
        let email = dm.email.as_str().to_string();
        let key = K::new(dm.email.key().to_string());

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
        let declared: BTreeMap<&str, &DesiredRole> =
            dm.roles.iter().map(|r| (r.name.as_str(), r)).collect();
        let observed: BTreeMap<String, Option<String>> = obs
            .map(|m| {
                m.roles
                    .iter()
                    .map(|r| (r.name.clone(), r.until.as_ref().map(ToString::to_string)))
                    .collect()
            })
            .unwrap_or_default();
        let mut target = want;
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
                    windows.insert(name.clone(), observed_window_text(until.as_deref()));
                }
            }
        }
        MemberRoles {
            email,
            key,
            declared,
            observed,
            target,
            windows,
        }
    }

    /// A member the portal does not hold yet: added with the roles that hold now, and invited.
    fn add_member(&mut self, dm: &DesiredMember, roles: MemberRoles<'_, K>) {
        let MemberRoles {
            email,
            key,
            declared,
            target,
            windows,
            ..
        } = roles;
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
    }

    /// Grants, window changes and revocations of a member the portal holds: whether the
    /// roles grow and whether they shrink.
    fn role_changes(&mut self, m: &ObservedMember, roles: &MemberRoles<'_, K>) -> (bool, bool) {
        let tz = &self.d.time_zone;
        let now = self.now();
        let MemberRoles {
            email,
            declared,
            observed,
            target,
            ..
        } = roles;
        let etag = m.etag.clone();
        let mut grew = false;
        let mut shrank = false;
        for (name, until) in target {
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
            let (reason, counted) = revocation(declared.get(name.as_str()).copied(), now, tz);
            let mut c = Change::new(Action::Revoke);
            c.email = Some(email.clone());
            c.role = Some(name.clone());
            c.reason = Some(reason);
            c.precondition = Some(etag.clone());
            self.change(c, counted);
            shrank = true;
        }
        (grew, shrank)
    }

    /// Name, services and notifications, where declared and different: the fields to write,
    /// and whether any changes.
    fn member_fields(
        &mut self,
        dm: &DesiredMember,
        m: &ObservedMember,
        email: &str,
    ) -> (MemberFields, bool) {
        let etag = m.etag.clone();
        let mut grew = false;
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
            && !same_set(kinds, &m.notifications)
        {
            before["notifications"] = json!(sorted(&m.notifications));
            after["notifications"] = json!(sorted(kinds));
            notifications_change = Some(kinds.clone());
        }
        if after != json!({}) {
            let mut c = Change::new(Action::UpdateMember);
            c.email = Some(email.to_string());
            c.before = Some(before);
            c.after = Some(after);
            c.precondition = Some(etag.clone());
            self.change(c, false);
            grew = true;
        }
        (
            MemberFields {
                name: name_change,
                services: services_change,
                notifications: notifications_change,
            },
            grew,
        )
    }

    /// The writes of a member the portal holds.
    fn member_writes(
        &mut self,
        m: &ObservedMember,
        roles: &MemberRoles<'_, K>,
        fields: &MemberFields,
        grew: bool,
        shrank: bool,
    ) {
        let MemberRoles {
            email,
            key,
            observed,
            target,
            ..
        } = roles;
        let etag = m.etag.clone();
        // Only what the changes change, and so only what the manifests declare: a field left
        // out of the write keeps its value on the portal (SPEC §4 PUT). The name, above all, may
        // be the person's own (a WHMCS user is theirs) and is never written back as read; and
        // the body follows from the changes, which a saved plan is checked for.
        let body = |roles: &BTreeMap<String, Option<String>>| MemberPut {
            name: fields.name.clone(),
            roles: grants(roles),
            services: fields.services.clone(),
            notifications: fields.notifications.clone(),
        };
        if grew && shrank {
            // Grants first, revocations last (SPEC §3): two writes, so that an admin handover
            // never passes through a moment without an admin.
            let mut union = observed.clone();
            union.extend(target.iter().map(|(k, v)| (k.clone(), v.clone())));
            self.step(
                1,
                key,
                Operation::PutMember {
                    email: email.clone(),
                    member: body(&union),
                    if_match: Some(etag.clone()),
                },
            );
            self.step(
                4,
                key,
                Operation::PutMember {
                    email: email.clone(),
                    member: body(target),
                    if_match: Some(etag.clone()),
                },
            );
        } else if grew || shrank {
            self.step(
                if grew { 1 } else { 4 },
                key,
                Operation::PutMember {
                    email: email.clone(),
                    member: body(target),
                    if_match: Some(etag.clone()),
                },
            );
        }
    }

    /// Invites members who can log in and have not linked a user account; cancels the
    /// invitation of members who can no longer log in.
    fn invitation(
        &mut self,
        email: &str,
        key: &K,
        roles: &BTreeMap<String, Option<String>>,
        user_linked: bool,
        invitation: Option<&ObservedInvitation>,
    ) {
        let login = roles.keys().any(|r| {
            self.ctx
                .catalog
                .roles
                .iter()
                .any(|c| c.name == *r && c.grants_login)
        });
        let expired = invitation.map(|i| i.expired(self.now()));
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
                    let date = i.expires_at.date_text();
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
                (Some(i), _) => self.transition(i.expires_at.at),
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
}
