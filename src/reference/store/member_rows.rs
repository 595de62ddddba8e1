//! Member rows as the API's members, and the checks of a member's write.

use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, params};

use super::*;
use crate::domain::parse_date;
use crate::portal::api::{
    ErrorCode, FieldError, Invitation, InvitationStatus, Member, MemberPut, RoleGrant, Services,
};

pub(super) const MEMBER_COLUMNS: &str =
    "m.customer_number, m.email_key, m.email, m.name, m.user_linked,
    m.roles, m.services, m.notifications, m.version, i.id, i.sent_at, i.expires_at";
pub(super) const MEMBER_FROM: &str = "FROM members m LEFT JOIN invitations i
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

pub(super) fn member_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<MemberRow> {
    let customer_number: String = r.get(0)?;
    let email: String = r.get(2)?;
    let label = || member_label(&customer_number, &email);
    let services: String = r.get(6)?;
    let id: Option<String> = r.get(9)?;
    let invitation = match id {
        Some(id) => Some((id, r.get(10)?, r.get(11)?)),
        None => None,
    };
    Ok(MemberRow {
        roles: read_roles(&r.get::<_, String>(5)?, label)?,
        services: decode_column(&services, "services", label)?,
        notifications: read_strings(&r.get::<_, String>(7)?, "notifications", label)?,
        customer_number,
        email_key: r.get(1)?,
        email,
        name: r.get(3)?,
        user_linked: r.get(4)?,
        version: r.get(8)?,
        invitation,
    })
}

pub(super) fn to_invitation(
    id: &str,
    sent_at: &str,
    expires_at: &str,
    now: Timestamp,
) -> Invitation {
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
pub(super) fn to_member(
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
        "SELECT roles, email FROM members WHERE customer_number = ?1 AND email_key <> ?2
         AND user_linked = 1 AND roles LIKE '%\"customer-admin\"%'",
    )?;
    let mut rows = stmt.query(params![acc.customer_number, except])?;
    while let Some(r) = rows.next()? {
        let email: String = r.get(1)?;
        let roles = read_roles(&r.get::<_, String>(0)?, || {
            member_label(&acc.customer_number, &email)
        })?;
        if is_effective_admin(true, &roles, &acc.tz, now) {
            return Ok(true);
        }
    }
    Ok(false)
}

pub(super) fn member_not_found(cn: &str, email: &str) -> Rejection {
    Rejection::not_found(format!("customer account {cn:?} has no member {email:?}"))
}

/// Checks a member's body against the catalog; every problem is listed.
pub(super) fn check_member_put(put: &MemberPut) -> Result<()> {
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

pub(super) fn describe_roles(roles: &[RoleGrant]) -> String {
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
