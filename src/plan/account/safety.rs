//! The rules that refuse a whole account: `maxRemovals`, last admin, self-lockout.

use std::collections::BTreeSet;

use jiff::Timestamp;

use super::super::key::JoinKey;
use super::super::{ObservedAccount, Refusal};
use super::{ADMIN_ROLE, AccountPlanner, LOGIN_ROLE};
use crate::domain::email_key;
use crate::portal::PrincipalKind;

impl<K: JoinKey> AccountPlanner<'_, K> {
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
    pub(super) fn safety(&self, o: &ObservedAccount) -> Option<Refusal> {
        let removals = self
            .changes
            .iter()
            .filter(|p| p.counted && p.change.action.removes())
            .count() as u64;
        let current = (o.members.len() + o.contacts.len()) as u64;
        let limit = self.d.policy.max_removals;
        let allowed = limit.allowed(current);
        if removals > allowed {
            return Some(Refusal::MaxRemovals {
                removals,
                current,
                limit,
                allowed,
            });
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
            return Some(Refusal::LastAdmin {
                customer_number: self.d.customer_number.clone(),
            });
        }
        if admins_before > 0
            && let Some(at) = self.first_instant_without_admin(&is_admin)
        {
            let local = self.d.time_zone.to_datetime(at);
            return Some(Refusal::LastAdminLater {
                customer_number: self.d.customer_number.clone(),
                local: format!(
                    "{} {:02}:{:02} {}",
                    local.date(),
                    local.hour(),
                    local.minute(),
                    self.d.time_zone_name
                ),
                at,
            });
        }
        let principal = self.ctx.principal;
        if principal.kind == PrincipalKind::User
            && !self.d.policy.allow_self_revoke
            && let Some(me) = principal.email.as_deref().map(email_key)
            && let Some(m) = o.members.iter().find(|m| email_key(&m.email) == me)
        {
            let me = K::new(me);
            let after = self.after.iter().find(|a| a.key == me);
            for role in [ADMIN_ROLE, LOGIN_ROLE] {
                let had = m.roles.iter().any(|r| r.name == role);
                let keeps = after.is_some_and(|a| a.roles.contains(role));
                if had && !keeps {
                    return Some(Refusal::SelfLockout {
                        role: role.to_string(),
                        email: m.email.clone(),
                        applying: false,
                    });
                }
            }
        }
        None
    }
}
