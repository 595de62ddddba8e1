//! Members, their roles and invitations; the last-admin rule.

use jiff::{SignedDuration, Timestamp};
use rusqlite::{Connection, params};

use super::member_rows::{
    MEMBER_COLUMNS, MEMBER_FROM, MemberRow, check_member_put, describe_roles, load_member,
    member_not_found, member_row, other_admin_exists, to_invitation, to_member,
};
use super::{
    AccountRow, Cached, INVITATION_TTL_DAYS, Principal, Rejection, Result, Store, Zones,
    accounts_of_user, audit, bulk_page, check_if_match, decode_cursor, encode_cursor, etag, holds,
    is_effective_admin, load_account, may_manage, next_version, parse_email, reference_catalog,
    to_json,
};
use crate::domain::Email;
use crate::portal::AccountFilter;
use crate::portal::api::{
    ErrorCode, Invitation, InvitationStatus, Member, MemberPut, OutboxKind, Page, Services,
};

/// Refuses a write that would take the last admin's admin away: an account that has an admin
/// (a linked member with customer-admin and cockpit-access) must keep one.
fn check_keeps_an_admin(
    tx: &Connection,
    acc: &AccountRow,
    existing: Option<&MemberRow>,
    user_linked: bool,
    put: &MemberPut,
    email: &Email,
    now: Timestamp,
) -> Result<()> {
    let was_admin =
        existing.is_some_and(|m| is_effective_admin(m.user_linked, &m.roles, &acc.tz, now));
    let will_be_admin = is_effective_admin(user_linked, &put.roles, &acc.tz, now);
    if was_admin && !will_be_admin && !other_admin_exists(tx, acc, email.key(), now)? {
        return Err(Rejection::new(
            422,
            ErrorCode::LastAdmin,
            format!(
                "{} is the last admin of customer account {:?}: an account that has an admin (a linked member with customer-admin and cockpit-access) must keep one",
                email.as_str(),
                acc.customer_number
            ),
        ));
    }
    Ok(())
}

/// A PUT's name, services and notifications: what it gives, else what the member had, else
/// the defaults of a new member (no name, all services, no notifications).
fn merged(
    put: &MemberPut,
    existing: Option<&MemberRow>,
) -> (Option<String>, Services, Vec<String>) {
    let name = match (&put.name, existing) {
        (Some(n), _) => Some(n.clone()),
        (None, Some(m)) => m.name.clone(),
        (None, None) => None,
    };
    let services = match (&put.services, existing) {
        (Some(s), _) => s.clone(),
        (None, Some(m)) => m.services.clone(),
        (None, None) => Services::All,
    };
    let notifications = match (&put.notifications, existing) {
        (Some(n), _) => n.clone(),
        (None, Some(m)) => m.notifications.clone(),
        (None, None) => Vec::new(),
    };
    (name, services, notifications)
}

impl Store {
    /// Members of one account, ordered by e-mail.
    pub fn list_account_members(
        &self,
        p: &Principal,
        now: Timestamp,
        cn: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<Member>> {
        let acc = load_account(&self.conn, cn)?;
        may_manage(&self.conn, p, &acc, now)?;
        let after = decode_cursor(cursor, 1)?
            .and_then(|mut v| v.pop())
            .unwrap_or_default();
        let sql = format!(
            "SELECT {MEMBER_COLUMNS} {MEMBER_FROM}
             WHERE m.customer_number = ?1 AND m.email_key > ?2
             ORDER BY m.email_key LIMIT ?3"
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt
            .query_map(params![cn, after, limit as i64 + 1], member_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let more = rows.len() > limit;
        let mut rows = rows;
        rows.truncate(limit);
        let next_cursor = if more {
            rows.last().map(|r| encode_cursor(&[r.email_key.as_str()]))
        } else {
            None
        };
        Ok(Page {
            items: rows
                .into_iter()
                .map(|r| to_member(r, &acc.tz, now, false))
                .collect(),
            next_cursor,
        })
    }

    /// The customer numbers a bulk read covers: checked to exist and to be managed.
    pub(super) fn bulk_scope(
        &self,
        p: &Principal,
        now: Timestamp,
        filter: &AccountFilter,
    ) -> Result<Option<Vec<String>>> {
        match (filter, &p.email_key) {
            (AccountFilter::All, None) => Ok(None),
            (AccountFilter::All, Some(key)) => {
                Ok(Some(accounts_of_user(&self.conn, key, now, true)?))
            }
            (AccountFilter::Only(list), _) => {
                for cn in list {
                    let acc = load_account(&self.conn, cn)?;
                    may_manage(&self.conn, p, &acc, now)?;
                }
                Ok(Some(list.clone()))
            }
        }
    }

    /// Members across every account the principal manages (or the listed ones), ordered by
    /// (customer number, e-mail); each carries its customer number.
    pub fn list_members(
        &self,
        p: &Principal,
        now: Timestamp,
        filter: &AccountFilter,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<Member>> {
        let scope = self.bulk_scope(p, now, filter)?;
        let (rows, next_cursor) = bulk_page(
            &self.conn,
            &format!("SELECT {MEMBER_COLUMNS} {MEMBER_FROM}"),
            ("m.customer_number", "m.email_key"),
            scope.as_deref(),
            cursor,
            limit,
            member_row,
            |r| (r.customer_number.as_str(), r.email_key.as_str()),
        )?;
        let mut zones = Zones::default();
        let mut items = Vec::with_capacity(rows.len());
        for r in rows {
            let tz = zones.get(&self.conn, &r.customer_number)?;
            items.push(to_member(r, &tz, now, true));
        }
        Ok(Page { items, next_cursor })
    }

    pub fn get_member(
        &self,
        p: &Principal,
        now: Timestamp,
        cn: &str,
        email: &str,
    ) -> Result<Member> {
        let acc = load_account(&self.conn, cn)?;
        may_manage(&self.conn, p, &acc, now)?;
        let email = parse_email("email", email)?;
        match load_member(&self.conn, cn, email.key())? {
            Some(row) => Ok(to_member(row, &acc.tz, now, false)),
            None => Err(member_not_found(cn, email.as_str())),
        }
    }

    /// Creates or replaces a member: its roles become exactly `put.roles`; `name`, `services`
    /// and `notifications` change only when given. Returns the member and whether it is new.
    pub fn put_member(
        &mut self,
        p: &Principal,
        now: Timestamp,
        cn: &str,
        email: &str,
        put: &MemberPut,
        if_match: Option<&str>,
    ) -> Result<(Member, bool)> {
        let tx = self.write()?;
        let acc = load_account(&tx, cn)?;
        may_manage(&tx, p, &acc, now)?;
        let email = parse_email("email", email)?;
        check_member_put(put)?;
        let existing = load_member(&tx, cn, email.key())?;
        check_if_match(
            if_match,
            existing.as_ref().map(|m| etag(m.version)).as_deref(),
            &format!("member {:?} of customer account {cn:?}", email.as_str()),
        )?;
        let user_exists: bool = tx.row(
            "SELECT EXISTS (SELECT 1 FROM users WHERE email_key = ?1)",
            params![email.key()],
            |r| r.get(0),
        )?;
        let user_linked = existing.as_ref().map(|m| m.user_linked).unwrap_or(false) || user_exists;
        check_keeps_an_admin(&tx, &acc, existing.as_ref(), user_linked, put, &email, now)?;
        let (name, services, notifications) = merged(put, existing.as_ref());
        let changed = match &existing {
            None => true,
            Some(m) => {
                m.roles != put.roles
                    || m.name != name
                    || m.services != services
                    || m.notifications != notifications
                    || m.user_linked != user_linked
            }
        };
        // The e-mail keeps the spelling it was first declared with.
        let shown = existing
            .as_ref()
            .map(|m| m.email.clone())
            .unwrap_or_else(|| email.as_str().to_string());
        let mut version = existing.as_ref().map(|m| m.version).unwrap_or_default();
        if changed {
            version = next_version(&tx)?;
            tx.exec(
                "INSERT INTO members (customer_number, email_key, email, name, user_linked, roles,
                     services, notifications, version)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT (customer_number, email_key) DO UPDATE SET
                     name = excluded.name, user_linked = excluded.user_linked,
                     roles = excluded.roles, services = excluded.services,
                     notifications = excluded.notifications, version = excluded.version",
                params![
                    cn,
                    email.key(),
                    shown,
                    name,
                    user_linked,
                    to_json(&put.roles),
                    to_json(&services),
                    to_json(&notifications),
                    version
                ],
            )?;
            let action = if existing.is_some() {
                "member.update"
            } else {
                "member.create"
            };
            audit(
                &tx,
                cn,
                now,
                p,
                action,
                email.as_str(),
                &format!("roles: {}", describe_roles(&put.roles)),
            )?;
        }
        tx.commit()?;
        // The member as written: no need to read it back.
        let created = existing.is_none();
        let row = MemberRow {
            customer_number: cn.to_string(),
            email_key: email.key().to_string(),
            email: shown,
            name,
            user_linked,
            roles: put.roles.clone(),
            services,
            notifications,
            version,
            invitation: existing.and_then(|m| m.invitation),
        };
        Ok((to_member(row, &acc.tz, now, false), created))
    }

    /// Removes a member: its link, roles and invitation go; the user account stays. Removing a
    /// member that is not there succeeds (DELETE is idempotent).
    pub fn delete_member(
        &mut self,
        p: &Principal,
        now: Timestamp,
        cn: &str,
        email: &str,
        if_match: Option<&str>,
    ) -> Result<()> {
        let tx = self.write()?;
        let acc = load_account(&tx, cn)?;
        may_manage(&tx, p, &acc, now)?;
        let email = parse_email("email", email)?;
        let existing = load_member(&tx, cn, email.key())?;
        check_if_match(
            if_match,
            existing.as_ref().map(|m| etag(m.version)).as_deref(),
            &format!("member {:?} of customer account {cn:?}", email.as_str()),
        )?;
        let Some(m) = existing else {
            return Ok(());
        };
        if is_effective_admin(m.user_linked, &m.roles, &acc.tz, now)
            && !other_admin_exists(&tx, &acc, email.key(), now)?
        {
            return Err(Rejection::new(
                422,
                ErrorCode::LastAdmin,
                format!(
                    "{} is the last admin of customer account {cn:?} and cannot be removed: grant another linked member customer-admin and cockpit-access first",
                    m.email
                ),
            ));
        }
        // The invitation goes with the member (ON DELETE CASCADE).
        tx.exec(
            "DELETE FROM members WHERE customer_number = ?1 AND email_key = ?2",
            params![cn, email.key()],
        )?;
        audit(
            &tx,
            cn,
            now,
            p,
            "member.delete",
            &m.email,
            "removed the member, its roles and any pending invitation; the user account stays",
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Sends the member's invitation. An unexpired pending one is returned as it is unless
    /// `resend`. Returns the invitation and whether a new one was sent.
    pub fn invite(
        &mut self,
        p: &Principal,
        now: Timestamp,
        cn: &str,
        email: &str,
        resend: bool,
    ) -> Result<(Invitation, bool)> {
        let tx = self.write()?;
        let acc = load_account(&tx, cn)?;
        may_manage(&tx, p, &acc, now)?;
        let email = parse_email("email", email)?;
        let m = load_member(&tx, cn, email.key())?
            .ok_or_else(|| member_not_found(cn, email.as_str()))?;
        if m.user_linked {
            return Err(Rejection::new(
                409,
                ErrorCode::AlreadyLinked,
                format!(
                    "{} is already linked to a user account on customer account {cn:?}; it needs no invitation",
                    m.email
                ),
            ));
        }
        let catalog = reference_catalog();
        let has_login = catalog
            .roles
            .iter()
            .filter(|r| r.grants_login)
            .any(|r| holds(&m.roles, &r.name, &acc.tz, now));
        if !has_login {
            return Err(Rejection::invalid(format!(
                "{} holds no role that grants login (cockpit-access), so it gets no invitation",
                m.email
            )));
        }
        if let Some((id, sent, expires)) = &m.invitation {
            let current = to_invitation(id, sent, expires, now);
            if current.status == InvitationStatus::Pending && !resend {
                return Ok((current, false));
            }
        }
        let id = super::sandbox::random_hex(16);
        let expires = now
            .checked_add(SignedDuration::from_hours(
                24 * i64::from(INVITATION_TTL_DAYS),
            ))
            .unwrap_or(now);
        tx.exec(
            "DELETE FROM invitations WHERE customer_number = ?1 AND email_key = ?2",
            params![cn, email.key()],
        )?;
        tx.exec(
            "INSERT INTO invitations (id, customer_number, email_key, email, sent_at, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                id,
                cn,
                email.key(),
                m.email,
                now.to_string(),
                expires.to_string()
            ],
        )?;
        let version = next_version(&tx)?;
        tx.exec(
            "UPDATE members SET version = ?3 WHERE customer_number = ?1 AND email_key = ?2",
            params![cn, email.key(), version],
        )?;
        super::sandbox::send(
            &tx,
            now,
            &m.email,
            OutboxKind::Invitation,
            &format!(
                "You are invited to customer account {} ({})",
                acc.customer_number, acc.display_name
            ),
            Some(cn),
        )?;
        audit(
            &tx,
            cn,
            now,
            p,
            if m.invitation.is_some() {
                "invitation.resend"
            } else {
                "invitation.send"
            },
            &m.email,
            &format!("invitation {id} valid until {expires}"),
        )?;
        tx.commit()?;
        Ok((
            to_invitation(&id, &now.to_string(), &expires.to_string(), now),
            true,
        ))
    }

    /// Cancels the member's invitation, if it has one.
    pub fn cancel_invitation(
        &mut self,
        p: &Principal,
        now: Timestamp,
        cn: &str,
        email: &str,
    ) -> Result<()> {
        let tx = self.write()?;
        let acc = load_account(&tx, cn)?;
        may_manage(&tx, p, &acc, now)?;
        let email = parse_email("email", email)?;
        let m = load_member(&tx, cn, email.key())?
            .ok_or_else(|| member_not_found(cn, email.as_str()))?;
        let gone = tx.exec(
            "DELETE FROM invitations WHERE customer_number = ?1 AND email_key = ?2",
            params![cn, email.key()],
        )?;
        if gone > 0 {
            let version = next_version(&tx)?;
            tx.exec(
                "UPDATE members SET version = ?3 WHERE customer_number = ?1 AND email_key = ?2",
                params![cn, email.key(), version],
            )?;
            audit(
                &tx,
                cn,
                now,
                p,
                "invitation.cancel",
                &m.email,
                "cancelled the pending invitation",
            )?;
        }
        tx.commit()?;
        Ok(())
    }
}
