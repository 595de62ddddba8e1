//! Members, their roles and invitations; the last-admin rule.

use jiff::{SignedDuration, Timestamp};
use rusqlite::{Connection, OptionalExtension, params};

use super::{
    AccountRow, Cached, INVITATION_TTL_DAYS, Principal, Refusal, Result, Store, Zones,
    accounts_of_user, audit, bulk_page, check_if_match, check_kinds, check_name, decode_cursor,
    encode_cursor, etag, grant_effective, holds, is_effective_admin, load_account, may_manage,
    next_version, parse_email, read_roles, read_strings, reference_catalog, refuse_fields, to_json,
};
use crate::domain::parse_date;
use crate::portal::AccountFilter;
use crate::portal::api::{
    ErrorCode, FieldError, Invitation, InvitationStatus, Member, MemberPut, OutboxKind, Page,
    RoleGrant, Services,
};

const MEMBER_COLUMNS: &str = "m.customer_number, m.email_key, m.email, m.name, m.user_linked,
    m.roles, m.services, m.notifications, m.version, i.id, i.sent_at, i.expires_at";
const MEMBER_FROM: &str = "FROM members m LEFT JOIN invitations i
    ON i.customer_number = m.customer_number AND i.email_key = m.email_key";

/// A member as stored, before roles past their `until` are hidden.
#[derive(Debug, Clone)]
pub(super) struct MemberRow {
    pub customer_number: String,
    pub email_key: String,
    pub email: String,
    pub name: Option<String>,
    pub user_linked: bool,
    pub roles: Vec<RoleGrant>,
    pub services: Services,
    pub notifications: Vec<String>,
    pub version: i64,
    pub invitation: Option<(String, String, String)>,
}

fn member_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<MemberRow> {
    let services: String = r.get(6)?;
    let id: Option<String> = r.get(9)?;
    let invitation = match id {
        Some(id) => Some((id, r.get(10)?, r.get(11)?)),
        None => None,
    };
    Ok(MemberRow {
        customer_number: r.get(0)?,
        email_key: r.get(1)?,
        email: r.get(2)?,
        name: r.get(3)?,
        user_linked: r.get(4)?,
        roles: read_roles(&r.get::<_, String>(5)?),
        services: serde_json::from_str(&services).unwrap_or_default(),
        notifications: read_strings(&r.get::<_, String>(7)?),
        version: r.get(8)?,
        invitation,
    })
}

fn to_invitation(id: &str, sent_at: &str, expires_at: &str, now: Timestamp) -> Invitation {
    let expired = expires_at
        .parse::<Timestamp>()
        .map(|t| now >= t)
        .unwrap_or(true);
    Invitation {
        id: id.into(),
        status: if expired {
            InvitationStatus::Expired
        } else {
            InvitationStatus::Pending
        },
        sent_at: sent_at.into(),
        expires_at: expires_at.into(),
    }
}

/// The member as the API shows it: roles past their `until` are not listed.
fn to_member(
    row: MemberRow,
    tz: &jiff::tz::TimeZone,
    now: Timestamp,
    with_account: bool,
) -> Member {
    // The row is taken, not borrowed: a bulk page moves a thousand members' text into the
    // answer rather than copying it.
    Member {
        customer_number: with_account.then_some(row.customer_number),
        email: row.email,
        name: row.name,
        user_linked: row.user_linked,
        roles: row
            .roles
            .into_iter()
            .filter(|g| grant_effective(g, tz, now))
            .collect(),
        services: row.services,
        notifications: row.notifications,
        invitation: row
            .invitation
            .as_ref()
            .map(|(id, s, e)| to_invitation(id, s, e, now)),
        etag: etag(row.version),
    }
}

pub(super) fn load_member(conn: &Connection, cn: &str, key: &str) -> Result<Option<MemberRow>> {
    // Two lookups by primary key rather than the join of the lists: SQLite prepares the join
    // again whenever its parameters change, which cost more than the lookups themselves.
    let member = conn
        .row(
            "SELECT customer_number, email_key, email, name, user_linked, roles, services,
                 notifications, version, NULL, NULL, NULL
             FROM members m WHERE customer_number = ?1 AND email_key = ?2",
            params![cn, key],
            member_row,
        )
        .optional()?;
    let Some(mut member) = member else {
        return Ok(None);
    };
    member.invitation = conn
        .row(
            "SELECT id, sent_at, expires_at FROM invitations
             WHERE customer_number = ?1 AND email_key = ?2",
            params![cn, key],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    Ok(Some(member))
}

/// Whether an effective admin other than `except` remains in the account.
pub(super) fn other_admin_exists(
    conn: &Connection,
    acc: &AccountRow,
    except: &str,
    now: Timestamp,
) -> Result<bool> {
    // Only linked members naming customer-admin can be admins; stop at the first one found.
    let mut stmt = conn.prepare_cached(
        "SELECT roles FROM members WHERE customer_number = ?1 AND email_key <> ?2
         AND user_linked = 1 AND roles LIKE '%\"customer-admin\"%'",
    )?;
    let mut rows = stmt.query(params![acc.customer_number, except])?;
    while let Some(r) = rows.next()? {
        let roles = read_roles(&r.get::<_, String>(0)?);
        if is_effective_admin(true, &roles, &acc.tz, now) {
            return Ok(true);
        }
    }
    Ok(false)
}

fn member_not_found(cn: &str, email: &str) -> Refusal {
    Refusal::not_found(format!("customer account {cn:?} has no member {email:?}"))
}

/// Checks a member's body against the catalog; every problem is listed.
fn check_member_put(put: &MemberPut) -> Result<()> {
    let catalog = reference_catalog();
    let mut errors = Vec::new();
    if let Some(name) = &put.name {
        check_name("name", name, &mut errors);
    }
    let mut seen = std::collections::HashSet::new();
    for (i, g) in put.roles.iter().enumerate() {
        if !catalog.roles.iter().any(|r| r.name == g.name) {
            let known: Vec<&str> = catalog.roles.iter().map(|r| r.name.as_str()).collect();
            errors.push((
                ErrorCode::UnknownRole,
                FieldError {
                    field: format!("roles[{i}].name"),
                    message: format!(
                        "{:?} is not a role of this portal's catalog (known: {})",
                        g.name,
                        known.join(", ")
                    ),
                },
            ));
        } else if !seen.insert(g.name.as_str()) {
            errors.push((
                ErrorCode::Invalid,
                FieldError {
                    field: format!("roles[{i}].name"),
                    message: format!("{:?} is listed twice", g.name),
                },
            ));
        }
        if let Some(d) = &g.until
            && let Err(m) = parse_date(d)
        {
            errors.push((
                ErrorCode::Invalid,
                FieldError {
                    field: format!("roles[{i}].until"),
                    message: m.to_string(),
                },
            ));
        }
    }
    if let Some(kinds) = &put.notifications {
        check_kinds("notifications", kinds, &mut errors);
    }
    if let Some(Services::Only(ids)) = &put.services {
        for (i, id) in ids.iter().enumerate() {
            if id.trim().is_empty() || id.len() > 100 {
                errors.push((
                    ErrorCode::Invalid,
                    FieldError {
                        field: format!("services[{i}]"),
                        message: "a service id is 1 to 100 characters long".into(),
                    },
                ));
            }
        }
    }
    refuse_fields(errors)
}

fn describe_roles(roles: &[RoleGrant]) -> String {
    if roles.is_empty() {
        return "no roles".into();
    }
    roles
        .iter()
        .map(|g| match &g.until {
            Some(u) => format!("{} until {u}", g.name),
            None => g.name.clone(),
        })
        .collect::<Vec<_>>()
        .join(", ")
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
        let was_admin = existing
            .as_ref()
            .is_some_and(|m| is_effective_admin(m.user_linked, &m.roles, &acc.tz, now));
        let will_be_admin = is_effective_admin(user_linked, &put.roles, &acc.tz, now);
        if was_admin && !will_be_admin && !other_admin_exists(&tx, &acc, email.key(), now)? {
            return Err(Refusal::new(
                422,
                ErrorCode::LastAdmin,
                format!(
                    "{} is the last admin of customer account {cn:?}: an account that has an admin (a linked member with customer-admin and cockpit-access) must keep one",
                    email.as_str()
                ),
            ));
        }
        let name = match (&put.name, &existing) {
            (Some(n), _) => Some(n.clone()),
            (None, Some(m)) => m.name.clone(),
            (None, None) => None,
        };
        let services = match (&put.services, &existing) {
            (Some(s), _) => s.clone(),
            (None, Some(m)) => m.services.clone(),
            (None, None) => Services::All,
        };
        let notifications = match (&put.notifications, &existing) {
            (Some(n), _) => n.clone(),
            (None, Some(m)) => m.notifications.clone(),
            (None, None) => Vec::new(),
        };
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
            return Err(Refusal::new(
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
            return Err(Refusal::new(
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
            return Err(Refusal::invalid(format!(
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
