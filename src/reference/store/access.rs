//! Who may see and manage what: effective roles at an instant in the account's time zone.

use super::*;

/// Time zones of accounts, looked up once per call.
#[derive(Default)]
pub(super) struct Zones(HashMap<String, TimeZone>);

impl Zones {
    pub(super) fn get(&mut self, conn: &Connection, cn: &str) -> Result<TimeZone> {
        if let Some(tz) = self.0.get(cn) {
            return Ok(tz.clone());
        }
        let tz = load_account(conn, cn)?.tz;
        self.0.insert(cn.to_string(), tz.clone());
        Ok(tz)
    }
}

/// Whether a role grant still holds at `now`: `until` is inclusive to the end of that day in
/// the account's time zone.
pub(super) fn grant_effective(grant: &RoleGrant, tz: &TimeZone, now: Timestamp) -> bool {
    match &grant.until {
        None => true,
        Some(d) => match parse_date(d) {
            Ok(until) => Window {
                from: None,
                until: Some(until),
            }
            .is_active(now, tz),
            // Dates are checked on write; an unreadable one grants nothing.
            Err(_) => false,
        },
    }
}

pub(super) fn holds(roles: &[RoleGrant], role: &str, tz: &TimeZone, now: Timestamp) -> bool {
    roles
        .iter()
        .any(|g| g.name == role && grant_effective(g, tz, now))
}

/// An effective admin holds both `customer-admin` and `cockpit-access` and is `userLinked`.
pub(super) fn is_effective_admin(
    user_linked: bool,
    roles: &[RoleGrant],
    tz: &TimeZone,
    now: Timestamp,
) -> bool {
    user_linked && holds(roles, CUSTOMER_ADMIN, tz, now) && holds(roles, COCKPIT_ACCESS, tz, now)
}

/// A stored column that does not decode. Reading it as empty or as a default would change
/// what a member may do (a `services` column read as `all` widens access), so the row is
/// refused instead and the request answers 500.
#[derive(Debug, thiserror::Error)]
#[error("the stored {column} of {row} is corrupt ({reason})")]
pub struct CorruptRow {
    /// The column, e.g. `roles`.
    pub column: &'static str,
    /// The row in the domain's words, e.g. `member "a@x.example" of account "10001"`.
    pub row: String,
    /// Why it does not decode.
    pub reason: String,
}

/// Decodes a JSON column; a value that does not decode is a [`CorruptRow`] naming `row`.
pub(super) fn decode_column<T: serde::de::DeserializeOwned>(
    text: &str,
    column: &'static str,
    row: impl FnOnce() -> String,
) -> rusqlite::Result<T> {
    serde_json::from_str(text).map_err(|e| corrupt(column, row(), e.to_string()))
}

/// A [`CorruptRow`] as the error of a row read.
pub(super) fn corrupt(column: &'static str, row: String, reason: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        0,
        rusqlite::types::Type::Text,
        Box::new(CorruptRow {
            column,
            row,
            reason,
        }),
    )
}

/// A stored time zone; one that no longer parses is a [`CorruptRow`] of its account.
pub(super) fn stored_zone(zone: &str, cn: &str) -> rusqlite::Result<TimeZone> {
    parse_time_zone(zone)
        .map_err(|e| corrupt("time zone", format!("account {cn:?}"), e.to_string()))
}

/// The words for a member's row in a [`CorruptRow`].
pub(super) fn member_label(cn: &str, email: &str) -> String {
    format!("member {email:?} of account {cn:?}")
}

pub(super) fn read_roles(
    text: &str,
    row: impl FnOnce() -> String,
) -> rusqlite::Result<Vec<RoleGrant>> {
    decode_column(text, "roles", row)
}

pub(super) fn read_strings(
    text: &str,
    column: &'static str,
    row: impl FnOnce() -> String,
) -> rusqlite::Result<Vec<String>> {
    decode_column(text, column, row)
}

pub(super) fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

/// The roles a user holds in an account, if it is a member there.
pub(super) fn roles_of(
    conn: &Connection,
    cn: &str,
    email_key: &str,
) -> Result<Option<Vec<RoleGrant>>> {
    let text: Option<String> = conn
        .row(
            "SELECT roles FROM members WHERE customer_number = ?1 AND email_key = ?2",
            params![cn, email_key],
            |r| r.get(0),
        )
        .optional()?;
    match text {
        Some(t) => Ok(Some(read_roles(&t, || member_label(cn, email_key))?)),
        None => Ok(None),
    }
}

/// A user sees an account where it holds an effective `cockpit-access`.
pub(super) fn may_view(
    conn: &Connection,
    p: &Principal,
    acc: &AccountRow,
    now: Timestamp,
) -> Result<()> {
    let Some(key) = &p.email_key else {
        return Ok(());
    };
    let roles = roles_of(conn, &acc.customer_number, key)?.unwrap_or_default();
    if holds(&roles, COCKPIT_ACCESS, &acc.tz, now) {
        Ok(())
    } else {
        Err(Rejection::forbidden(format!(
            "{} holds no effective cockpit-access on customer account {:?}",
            p.actor(),
            acc.customer_number
        )))
    }
}

/// A user manages members and contacts where it holds both an effective `cockpit-access` and
/// an effective `customer-admin`.
pub(super) fn may_manage(
    conn: &Connection,
    p: &Principal,
    acc: &AccountRow,
    now: Timestamp,
) -> Result<()> {
    let Some(key) = &p.email_key else {
        return Ok(());
    };
    let roles = roles_of(conn, &acc.customer_number, key)?.unwrap_or_default();
    if holds(&roles, COCKPIT_ACCESS, &acc.tz, now) && holds(&roles, CUSTOMER_ADMIN, &acc.tz, now) {
        Ok(())
    } else {
        Err(Rejection::forbidden(format!(
            "{} does not hold both cockpit-access and customer-admin on customer account {:?}, so it may not manage its members and contacts",
            p.actor(),
            acc.customer_number
        )))
    }
}

/// Every customer number a user manages (effective `cockpit-access` and `customer-admin`), or
/// sees (effective `cockpit-access`) when `manage` is false.
pub(super) fn accounts_of_user(
    conn: &Connection,
    email_key: &str,
    now: Timestamp,
    manage: bool,
) -> Result<Vec<String>> {
    let mut stmt = conn.prepare_cached(
        "SELECT m.customer_number, m.roles, a.time_zone FROM members m
         JOIN accounts a ON a.customer_number = m.customer_number
         WHERE m.email_key = ?1 ORDER BY m.customer_number",
    )?;
    let rows = stmt.query_map(params![email_key], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (cn, roles, zone) = row?;
        let tz = stored_zone(&zone, &cn)?;
        let roles = read_roles(&roles, || member_label(&cn, email_key))?;
        let ok = holds(&roles, COCKPIT_ACCESS, &tz, now)
            && (!manage || holds(&roles, CUSTOMER_ADMIN, &tz, now));
        if ok {
            out.push(cn);
        }
    }
    Ok(out)
}
