//! The reference portal's store: one SQLite file holding accounts, members, contacts,
//! invitations, user accounts, tokens, the audit log, the outbox and idempotency records.
//!
//! Every rule of SPEC §1 and §4 is enforced here, not in the HTTP layer, so the embedded
//! (`sandbox:`) portal and the server behave the same. The API is synchronous: each call
//! takes the acting [`Principal`] and the portal's `now`, and every write is one transaction.

mod accounts;
mod contacts;
mod members;
mod sandbox;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use jiff::Timestamp;
use jiff::tz::TimeZone;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::domain::{Email, Window, parse_date, parse_time_zone};
use crate::portal::api::{
    Capabilities, Catalog, CatalogRole, ErrorCode, FieldError, PrincipalKind, RoleGrant, Whoami,
};
use crate::portal::{PortalError, Problem};

pub use sandbox::{Replay, constant_time_eq, random_hex, token_hash};

/// Roles of the reference catalog (SPEC §1).
pub const COCKPIT_ACCESS: &str = "cockpit-access";
pub const CUSTOMER_ADMIN: &str = "customer-admin";
pub const TECHNICAL_CONTACT: &str = "technical-contact";
/// Notification kinds of the reference catalog.
pub const NOTIFICATION_KINDS: [&str; 7] = [
    "general",
    "invoices",
    "renewals",
    "support",
    "maintenance",
    "products",
    "domains",
];
/// How long an invitation stays valid.
pub const INVITATION_TTL_DAYS: u32 = 14;
/// Paging bounds of every list endpoint.
pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 1000;

/// The reference portal's role catalog and capabilities.
pub fn reference_catalog() -> Catalog {
    Catalog {
        roles: vec![
            CatalogRole {
                name: COCKPIT_ACCESS.into(),
                description: "May log in and act on the account's resources; the only role that grants login.".into(),
                grants_login: true,
                requires: vec![],
                read_only: false,
            },
            CatalogRole {
                name: TECHNICAL_CONTACT.into(),
                description: "May open tickets and receives technical information.".into(),
                grants_login: false,
                requires: vec![],
                read_only: false,
            },
            CatalogRole {
                name: CUSTOMER_ADMIN.into(),
                description: "Main contact; receives all important e-mail. The administrative functions (invoices, contacts, addresses) need cockpit-access as well.".into(),
                grants_login: false,
                requires: vec![COCKPIT_ACCESS.into()],
                read_only: false,
            },
        ],
        notification_kinds: NOTIFICATION_KINDS.iter().map(|k| k.to_string()).collect(),
        capabilities: Capabilities {
            scheduled_revocation: true,
            service_scopes: true,
            create_accounts: true,
            etags: true,
            ..Capabilities::default()
        },
        invitation_ttl_days: INVITATION_TTL_DAYS,
    }
}

/// A refused request: what the HTTP layer sends as `application/problem+json` and the
/// embedded portal returns as [`PortalError::Problem`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub code: ErrorCode,
    pub detail: String,
    pub errors: Vec<FieldError>,
}

pub type Result<T, E = Refusal> = std::result::Result<T, E>;

impl Refusal {
    pub fn new(status: u16, code: ErrorCode, detail: impl Into<String>) -> Refusal {
        Refusal {
            status,
            code,
            detail: detail.into(),
            errors: Vec::new(),
        }
    }
    pub fn not_found(detail: impl Into<String>) -> Refusal {
        Refusal::new(404, ErrorCode::NotFound, detail)
    }
    pub fn forbidden(detail: impl Into<String>) -> Refusal {
        Refusal::new(403, ErrorCode::Forbidden, detail)
    }
    pub fn unauthenticated(detail: impl Into<String>) -> Refusal {
        Refusal::new(401, ErrorCode::Unauthenticated, detail)
    }
    pub fn invalid(detail: impl Into<String>) -> Refusal {
        Refusal::new(422, ErrorCode::Invalid, detail)
    }
    /// A 422 `invalid` naming one field.
    pub fn invalid_field(field: &str, message: impl Into<String>) -> Refusal {
        let message = message.into();
        Refusal {
            status: 422,
            code: ErrorCode::Invalid,
            detail: format!("{field}: {message}"),
            errors: vec![FieldError {
                field: field.into(),
                message,
            }],
        }
    }
    pub fn version_conflict(detail: impl Into<String>) -> Refusal {
        Refusal::new(412, ErrorCode::VersionConflict, detail)
    }

    /// The short title of the problem document, one per code.
    pub fn title(&self) -> &'static str {
        match self.code {
            ErrorCode::NotFound => "Not found",
            ErrorCode::Forbidden => "Forbidden",
            ErrorCode::Unauthenticated => "Unauthenticated",
            ErrorCode::Invalid => "Invalid request",
            ErrorCode::UnknownRole => "Unknown role",
            ErrorCode::UnknownNotificationKind => "Unknown notification kind",
            ErrorCode::VersionConflict => "Version conflict",
            ErrorCode::LastAdmin => "Last admin",
            ErrorCode::AlreadyLinked => "Already linked",
            ErrorCode::RateLimited => "Rate limited",
            ErrorCode::Unavailable => "Unavailable",
            ErrorCode::Other => "Error",
        }
    }

    pub fn to_problem(&self) -> Problem {
        let code = serde_json::to_value(self.code)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_else(|| "error".into());
        Problem {
            type_: format!("https://rolecall.dev/problems/{}", code.replace('_', "-")),
            title: self.title().into(),
            status: self.status,
            detail: self.detail.clone(),
            code: self.code,
            errors: self.errors.clone(),
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.detail)
    }
}

impl From<rusqlite::Error> for Refusal {
    fn from(e: rusqlite::Error) -> Refusal {
        Refusal::new(
            500,
            ErrorCode::Unavailable,
            format!("the portal's store failed: {e}"),
        )
    }
}

impl From<Refusal> for PortalError {
    fn from(r: Refusal) -> PortalError {
        PortalError::Problem {
            status: r.status,
            code: r.code,
            detail: r.detail,
            errors: r.errors,
        }
    }
}

/// Who is acting: the operator, or a person's user account (by e-mail).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub kind: PrincipalKind,
    /// The user's e-mail as the token names it; `None` for the operator.
    pub email: Option<String>,
    email_key: Option<String>,
    /// A stable, non-secret name of the token (a prefix of its hash), for idempotency keys and
    /// rate limits; never the token itself.
    pub token_id: String,
}

impl Principal {
    pub fn operator(token_id: impl Into<String>) -> Principal {
        Principal {
            kind: PrincipalKind::Operator,
            email: None,
            email_key: None,
            token_id: token_id.into(),
        }
    }

    pub fn user(email: &str, token_id: impl Into<String>) -> Principal {
        Principal {
            kind: PrincipalKind::User,
            email: Some(email.to_string()),
            email_key: Some(crate::domain::email_key(email)),
            token_id: token_id.into(),
        }
    }

    pub fn is_operator(&self) -> bool {
        self.kind == PrincipalKind::Operator
    }

    /// How the audit log names the principal.
    pub fn actor(&self) -> String {
        match &self.email {
            Some(e) => e.clone(),
            None => "operator".into(),
        }
    }

    pub fn whoami(&self) -> Whoami {
        Whoami {
            email: self.email.clone(),
            kind: self.kind,
        }
    }
}

/// The portal's clock: the real time, or an instant set by `ROLECALL_NOW` or `POST
/// /sandbox/clock`. A set clock stands still, so that expiry at an exact instant is testable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    Real,
    Fixed(Timestamp),
}

/// What every connection to the store needs: a wait for a lock instead of an error, and room
/// for every statement of the store, the bulk reads' variants included.
fn tune(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.set_prepared_statement_cache_capacity(128);
    Ok(())
}

/// The SQLite store. Not `Sync`: callers serialize access (a mutex) and run it off the async
/// runtime's worker threads.
pub struct Store {
    conn: Connection,
    /// Shared with the store's [`Store::reader`], so that both tell the same time.
    clock: Arc<Mutex<Clock>>,
}

/// Schema migrations; `PRAGMA user_version` counts how many have run.
const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
-- One counter for every etag, so that a deleted and re-created row never reuses an old etag.
CREATE TABLE counters (name TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID;
INSERT INTO counters (name, n) VALUES ('version', 0);
CREATE TABLE tokens (
    hash BLOB PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('operator', 'user')),
    email TEXT,
    created_at TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE accounts (
    customer_number TEXT PRIMARY KEY,
    display_name TEXT NOT NULL,
    time_zone TEXT NOT NULL,
    version INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE users (
    email_key TEXT PRIMARY KEY,
    email TEXT NOT NULL,
    created_at TEXT NOT NULL
) WITHOUT ROWID;
-- Keyset paging walks (customer_number, email_key): the primary key is that index.
CREATE TABLE members (
    customer_number TEXT NOT NULL REFERENCES accounts (customer_number),
    email_key TEXT NOT NULL,
    email TEXT NOT NULL,
    name TEXT,
    user_linked INTEGER NOT NULL,
    roles TEXT NOT NULL,
    services TEXT NOT NULL,
    notifications TEXT NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (customer_number, email_key)
) WITHOUT ROWID;
-- A user principal's accounts, and linking a new user account to every member.
CREATE INDEX members_by_email ON members (email_key);
CREATE TABLE invitations (
    id TEXT PRIMARY KEY,
    customer_number TEXT NOT NULL,
    email_key TEXT NOT NULL,
    email TEXT NOT NULL,
    sent_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    UNIQUE (customer_number, email_key),
    -- Removing a member cancels its invitation.
    FOREIGN KEY (customer_number, email_key) REFERENCES members (customer_number, email_key)
        ON DELETE CASCADE
);
CREATE TABLE contacts (
    customer_number TEXT NOT NULL REFERENCES accounts (customer_number),
    email_key TEXT NOT NULL,
    email TEXT NOT NULL,
    name TEXT NOT NULL,
    notifications TEXT NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (customer_number, email_key)
) WITHOUT ROWID;
CREATE TABLE audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    customer_number TEXT NOT NULL,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX audit_by_account ON audit (customer_number, id);
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    to_addr TEXT NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    customer_number TEXT
);
CREATE TABLE idempotency (
    token_id TEXT NOT NULL,
    key TEXT NOT NULL,
    fingerprint BLOB NOT NULL,
    status INTEGER NOT NULL,
    body TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (token_id, key)
) WITHOUT ROWID;
"#];

impl Store {
    /// Opens (creating it and its parent directories if needed) the store at `path`, runs
    /// pending migrations, and starts the clock at `start` if given, else at the instant a
    /// previous `POST /sandbox/clock` set, else at the real time.
    pub fn open(path: &Path, start: Option<Timestamp>) -> Result<Store, String> {
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create the directory {} : {e}", dir.display()))?;
        }
        let conn = Connection::open(path)
            .map_err(|e| format!("cannot open the portal store {}: {e}", path.display()))?;
        Store::setup(conn, start, true)
            .map_err(|e| format!("cannot prepare the portal store {}: {e}", path.display()))
    }

    /// A store that lives in memory only (unit tests).
    pub fn open_in_memory(start: Option<Timestamp>) -> Result<Store, String> {
        let conn = Connection::open_in_memory().map_err(|e| e.to_string())?;
        Store::setup(conn, start, false).map_err(|e| e.to_string())
    }

    fn setup(
        mut conn: Connection,
        start: Option<Timestamp>,
        on_disk: bool,
    ) -> rusqlite::Result<Store> {
        tune(&conn)?;
        if on_disk {
            // WAL with synchronous=NORMAL: a transaction is in the WAL file (written with
            // write(2)) before COMMIT returns, so killing the process (-9) loses nothing that
            // was acknowledged; only an OS crash or power loss could drop the last commits.
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.pragma_update(None, "synchronous", "NORMAL")?;
            // Checkpoint every ~40 MB of WAL rather than every ~4 MB: a page written by many
            // transactions is copied into the database file once, and the file is synced less
            // often. Durability is the WAL's, as before.
            conn.pragma_update(None, "wal_autocheckpoint", 10_000)?;
        }
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let done: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if done > MIGRATIONS.len() as i64 {
            // Never touch a store written by a newer rolecall: its schema is unknown here.
            return Err(rusqlite::Error::InvalidParameterName(format!(
                "the store has schema version {done}, newer than this rolecall knows ({}); use a newer rolecall",
                MIGRATIONS.len()
            )));
        }
        for (i, migration) in MIGRATIONS.iter().enumerate() {
            let number = i as i64 + 1;
            if number <= done {
                continue;
            }
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute_batch(migration)?;
            tx.pragma_update(None, "user_version", number)?;
            tx.commit()?;
        }
        let stored: Option<String> = conn
            .row("SELECT value FROM meta WHERE key = 'clock'", [], |r| {
                r.get(0)
            })
            .optional()?;
        let clock = match (start, stored.and_then(|s| s.parse::<Timestamp>().ok())) {
            (Some(t), _) => Clock::Fixed(t),
            (None, Some(t)) => Clock::Fixed(t),
            (None, None) => Clock::Real,
        };
        Ok(Store {
            conn,
            clock: Arc::new(Mutex::new(clock)),
        })
    }

    /// A second connection to the same database, for reads only, telling the same time: lists
    /// and gets run on it beside the writes (WAL lets one writer and readers work at once).
    /// `None` for a store in memory, which no second connection can see.
    pub fn reader(&self) -> std::result::Result<Option<Store>, String> {
        let Some(path) = self.conn.path().filter(|p| !p.is_empty()) else {
            return Ok(None);
        };
        let fail = |e: rusqlite::Error| format!("cannot open the portal store {path} to read: {e}");
        let conn = Connection::open(path).map_err(fail)?;
        tune(&conn).map_err(fail)?;
        // A write through this connection would be a bug: SQLite refuses it.
        conn.pragma_update(None, "query_only", "ON").map_err(fail)?;
        Ok(Some(Store {
            conn,
            clock: Arc::clone(&self.clock),
        }))
    }

    /// Runs `f` in one read transaction, so that a read of several statements (a page and the
    /// time zones of its accounts) sees one state of the store, whatever is written meanwhile.
    pub fn read<T>(&self, f: impl FnOnce(&Store) -> T) -> T {
        // Dropped at the end, also on a panic: rolled back, which for a read only ends it.
        let _snapshot = self.conn.unchecked_transaction();
        f(self)
    }

    /// The portal's current instant.
    pub fn now(&self) -> Timestamp {
        match *self.clock.lock().unwrap_or_else(PoisonError::into_inner) {
            Clock::Real => Timestamp::now(),
            Clock::Fixed(t) => t,
        }
    }

    fn set_clock_to(&self, clock: Clock) {
        *self.clock.lock().unwrap_or_else(PoisonError::into_inner) = clock;
    }

    /// Moves the clock to `now` and keeps it there, across restarts too.
    pub fn set_clock(&mut self, now: Timestamp) -> Result<()> {
        self.conn.exec(
            "INSERT INTO meta (key, value) VALUES ('clock', ?1)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![now.to_string()],
        )?;
        self.set_clock_to(Clock::Fixed(now));
        Ok(())
    }

    /// Forgets the instant set by `POST /sandbox/clock`: the clock runs with the real time
    /// again, or stands at `start` when given.
    pub fn reset_clock(&mut self, start: Option<Timestamp>) -> Result<()> {
        self.conn.exec("DELETE FROM meta WHERE key = 'clock'", [])?;
        self.set_clock_to(match start {
            Some(t) => Clock::Fixed(t),
            None => Clock::Real,
        });
        Ok(())
    }

    /// The reference catalog.
    pub fn catalog(&self) -> Catalog {
        reference_catalog()
    }

    fn write(&mut self) -> Result<rusqlite::Transaction<'_>> {
        Ok(self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?)
    }
}

// --- shared helpers -------------------------------------------------------------------------

/// Statements through the connection's cache of prepared statements: every request runs the
/// same few statements, and preparing one again costs more than running it.
trait Cached {
    fn exec<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize>;
    fn row<T, P, F>(&self, sql: &str, params: P, f: F) -> rusqlite::Result<T>
    where
        P: rusqlite::Params,
        F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>;
}

impl Cached for Connection {
    fn exec<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }

    fn row<T, P, F>(&self, sql: &str, params: P, f: F) -> rusqlite::Result<T>
    where
        P: rusqlite::Params,
        F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    {
        self.prepare_cached(sql)?.query_row(params, f)
    }
}

/// The next etag version; one counter for the whole store.
fn next_version(conn: &Connection) -> Result<i64> {
    Ok(conn.row(
        "UPDATE counters SET n = n + 1 WHERE name = 'version' RETURNING n",
        [],
        |r| r.get(0),
    )?)
}

/// An etag as sent on the wire: the quoted version.
fn etag(version: i64) -> String {
    format!("\"{version}\"")
}

/// Checks an `If-Match` precondition against the current etag (`None` when the thing does not
/// exist). `*` matches anything that exists; weak and unquoted forms are accepted.
fn check_if_match(if_match: Option<&str>, current: Option<&str>, what: &str) -> Result<()> {
    let Some(wanted) = if_match else {
        return Ok(());
    };
    let Some(current) = current else {
        return Err(Refusal::version_conflict(format!(
            "{what} does not exist, so If-Match: {wanted} cannot match"
        )));
    };
    let bare = |s: &str| {
        s.trim()
            .trim_start_matches("W/")
            .trim_matches('"')
            .to_string()
    };
    let matches = wanted
        .split(',')
        .any(|w| w.trim() == "*" || bare(w) == bare(current));
    if matches {
        Ok(())
    } else {
        Err(Refusal::version_conflict(format!(
            "{what} has changed: its etag is now {current}, not {wanted}; read it again"
        )))
    }
}

/// An account as the rules need it.
#[derive(Debug, Clone)]
struct AccountRow {
    customer_number: String,
    display_name: String,
    time_zone: String,
    tz: TimeZone,
    version: i64,
}

fn load_account(conn: &Connection, cn: &str) -> Result<AccountRow> {
    let row: Option<(String, String, String, i64)> = conn
        .row(
            "SELECT customer_number, display_name, time_zone, version
             FROM accounts WHERE customer_number = ?1",
            params![cn],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()?;
    let Some((customer_number, display_name, time_zone, version)) = row else {
        return Err(Refusal::not_found(format!(
            "there is no customer account {cn:?}"
        )));
    };
    // A stored zone was checked when written; fall back to UTC rather than fail a read.
    let tz = parse_time_zone(&time_zone).unwrap_or(TimeZone::UTC);
    Ok(AccountRow {
        customer_number,
        display_name,
        time_zone,
        tz,
        version,
    })
}

/// Time zones of accounts, looked up once per call.
#[derive(Default)]
struct Zones(HashMap<String, TimeZone>);

impl Zones {
    fn get(&mut self, conn: &Connection, cn: &str) -> Result<TimeZone> {
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
fn grant_effective(grant: &RoleGrant, tz: &TimeZone, now: Timestamp) -> bool {
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

fn holds(roles: &[RoleGrant], role: &str, tz: &TimeZone, now: Timestamp) -> bool {
    roles
        .iter()
        .any(|g| g.name == role && grant_effective(g, tz, now))
}

/// An effective admin holds both `customer-admin` and `cockpit-access` and is `userLinked`.
fn is_effective_admin(
    user_linked: bool,
    roles: &[RoleGrant],
    tz: &TimeZone,
    now: Timestamp,
) -> bool {
    user_linked && holds(roles, CUSTOMER_ADMIN, tz, now) && holds(roles, COCKPIT_ACCESS, tz, now)
}

fn read_roles(text: &str) -> Vec<RoleGrant> {
    serde_json::from_str(text).unwrap_or_default()
}

fn read_strings(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_default()
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

/// The roles a user holds in an account, if it is a member there.
fn roles_of(conn: &Connection, cn: &str, email_key: &str) -> Result<Option<Vec<RoleGrant>>> {
    let text: Option<String> = conn
        .row(
            "SELECT roles FROM members WHERE customer_number = ?1 AND email_key = ?2",
            params![cn, email_key],
            |r| r.get(0),
        )
        .optional()?;
    Ok(text.map(|t| read_roles(&t)))
}

/// A user sees an account where it holds an effective `cockpit-access`.
fn may_view(conn: &Connection, p: &Principal, acc: &AccountRow, now: Timestamp) -> Result<()> {
    let Some(key) = &p.email_key else {
        return Ok(());
    };
    let roles = roles_of(conn, &acc.customer_number, key)?.unwrap_or_default();
    if holds(&roles, COCKPIT_ACCESS, &acc.tz, now) {
        Ok(())
    } else {
        Err(Refusal::forbidden(format!(
            "{} holds no effective cockpit-access on customer account {:?}",
            p.actor(),
            acc.customer_number
        )))
    }
}

/// A user manages members and contacts where it holds both an effective `cockpit-access` and
/// an effective `customer-admin`.
fn may_manage(conn: &Connection, p: &Principal, acc: &AccountRow, now: Timestamp) -> Result<()> {
    let Some(key) = &p.email_key else {
        return Ok(());
    };
    let roles = roles_of(conn, &acc.customer_number, key)?.unwrap_or_default();
    if holds(&roles, COCKPIT_ACCESS, &acc.tz, now) && holds(&roles, CUSTOMER_ADMIN, &acc.tz, now) {
        Ok(())
    } else {
        Err(Refusal::forbidden(format!(
            "{} does not hold both cockpit-access and customer-admin on customer account {:?}, so it may not manage its members and contacts",
            p.actor(),
            acc.customer_number
        )))
    }
}

/// Every customer number a user manages (effective `cockpit-access` and `customer-admin`), or
/// sees (effective `cockpit-access`) when `manage` is false.
fn accounts_of_user(
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
        let tz = parse_time_zone(&zone).unwrap_or(TimeZone::UTC);
        let roles = read_roles(&roles);
        let ok = holds(&roles, COCKPIT_ACCESS, &tz, now)
            && (!manage || holds(&roles, CUSTOMER_ADMIN, &tz, now));
        if ok {
            out.push(cn);
        }
    }
    Ok(out)
}

fn audit(
    conn: &Connection,
    cn: &str,
    now: Timestamp,
    p: &Principal,
    action: &str,
    target: &str,
    detail: &str,
) -> Result<()> {
    conn.exec(
        "INSERT INTO audit (customer_number, at, actor, action, target, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![cn, now.to_string(), p.actor(), action, target, detail],
    )?;
    Ok(())
}

/// Parses an e-mail of a path or body; the refusal names the field.
fn parse_email(field: &str, text: &str) -> Result<Email> {
    Email::parse(text).map_err(|m| Refusal::invalid_field(field, m.to_string()))
}

/// Checks notification kinds against the catalog.
fn check_kinds(field: &str, kinds: &[String], errors: &mut Vec<(ErrorCode, FieldError)>) {
    let mut seen = std::collections::HashSet::new();
    for (i, k) in kinds.iter().enumerate() {
        if !NOTIFICATION_KINDS.contains(&k.as_str()) {
            errors.push((
                ErrorCode::UnknownNotificationKind,
                FieldError {
                    field: format!("{field}[{i}]"),
                    message: format!(
                        "{k:?} is not a notification kind of this portal (known: {})",
                        NOTIFICATION_KINDS.join(", ")
                    ),
                },
            ));
        } else if !seen.insert(k.as_str()) {
            errors.push((
                ErrorCode::Invalid,
                FieldError {
                    field: format!("{field}[{i}]"),
                    message: format!("{k:?} is listed twice"),
                },
            ));
        }
    }
}

/// Checks a display name or person's name: not blank, not too long, no control characters.
fn check_name(field: &str, name: &str, errors: &mut Vec<(ErrorCode, FieldError)>) {
    let message = if name.trim().is_empty() {
        Some("must not be empty".to_string())
    } else if name.chars().count() > 200 {
        Some("is longer than 200 characters".to_string())
    } else if name.chars().any(char::is_control) {
        Some("must not contain control characters".to_string())
    } else {
        None
    };
    if let Some(message) = message {
        errors.push((
            ErrorCode::Invalid,
            FieldError {
                field: field.into(),
                message,
            },
        ));
    }
}

/// Turns collected field errors into one refusal: `invalid` wins over `unknown_role`, which
/// wins over `unknown_notification_kind`; every field error is listed.
fn refuse_fields(errors: Vec<(ErrorCode, FieldError)>) -> Result<()> {
    if errors.is_empty() {
        return Ok(());
    }
    let code = [
        ErrorCode::Invalid,
        ErrorCode::UnknownRole,
        ErrorCode::UnknownNotificationKind,
    ]
    .into_iter()
    .find(|c| errors.iter().any(|(e, _)| e == c))
    .unwrap_or(ErrorCode::Invalid);
    let detail = errors
        .iter()
        .map(|(_, f)| format!("{}: {}", f.field, f.message))
        .collect::<Vec<_>>()
        .join("; ");
    Err(Refusal {
        status: 422,
        code,
        detail,
        errors: errors.into_iter().map(|(_, f)| f).collect(),
    })
}

/// Paging: `limit` defaults to 100 and may be at most 1000.
pub fn check_limit(limit: Option<usize>) -> Result<usize> {
    match limit {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(n) => Err(Refusal::invalid_field(
            "limit",
            format!("{n} is out of range: a page holds 1 to {MAX_LIMIT} items"),
        )),
    }
}

/// Cursors are the hex of the last key on the page: opaque to clients, and correct while
/// writes happen because the next page starts strictly after that key.
fn encode_cursor(parts: &[&str]) -> String {
    let joined = parts.join("\u{1f}");
    joined.bytes().map(|b| format!("{b:02x}")).collect()
}

fn decode_cursor(cursor: Option<&str>, parts: usize) -> Result<Option<Vec<String>>> {
    let Some(text) = cursor else {
        return Ok(None);
    };
    let bad = || Refusal::invalid_field("cursor", "is not a cursor this portal gave out");
    if text.len() % 2 != 0 || text.len() > 4096 {
        return Err(bad());
    }
    let bytes = (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2).unwrap_or("zz"), 16))
        .collect::<Result<Vec<u8>, _>>()
        .map_err(|_| bad())?;
    let joined = String::from_utf8(bytes).map_err(|_| bad())?;
    let split: Vec<String> = joined.split('\u{1f}').map(str::to_string).collect();
    if split.len() != parts {
        return Err(bad());
    }
    Ok(Some(split))
}

/// One page of a bulk list after `cursor`, and the cursor of the next page when there is one.
#[allow(clippy::too_many_arguments)]
fn bulk_page<T>(
    conn: &Connection,
    select: &str,
    columns: (&str, &str),
    scope: Option<&[String]>,
    cursor: Option<&str>,
    limit: usize,
    map: impl Fn(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    key: impl Fn(&T) -> (&str, &str),
) -> Result<(Vec<T>, Option<String>)> {
    let (after_cn, after_key) = match decode_cursor(cursor, 2)? {
        Some(v) => (v[0].clone(), v[1].clone()),
        None => (String::new(), String::new()),
    };
    // One row more than the page tells whether another page follows.
    let mut rows = walk_bulk(
        conn,
        select,
        columns,
        scope,
        (&after_cn, &after_key),
        limit + 1,
        map,
    )?;
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next = if more {
        rows.last().map(|r| {
            let (cn, email) = key(r);
            encode_cursor(&[cn, email])
        })
    } else {
        None
    };
    Ok((rows, next))
}

/// Reads up to `limit` rows of a bulk list ordered by (customer number, e-mail key), strictly
/// after the cursor's key. With a scope, each account is a range of the primary key of its
/// own, so a page costs the same on page 1 and page 100 however large the account.
fn walk_bulk<T>(
    conn: &Connection,
    select: &str,
    (cn_col, key_col): (&str, &str),
    scope: Option<&[String]>,
    (after_cn, after_key): (&str, &str),
    limit: usize,
    map: impl Fn(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>> {
    let Some(scope) = scope else {
        let sql = format!(
            "{select} WHERE ({cn_col}, {key_col}) > (?1, ?2)
             ORDER BY {cn_col}, {key_col} LIMIT ?3"
        );
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt
            .query_map(params![after_cn, after_key, limit as i64], &map)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        return Ok(rows);
    };
    let mut accounts: Vec<&str> = scope
        .iter()
        .map(String::as_str)
        .filter(|cn| *cn >= after_cn)
        .collect();
    accounts.sort_unstable();
    accounts.dedup();
    let sql =
        format!("{select} WHERE {cn_col} = ?1 AND {key_col} > ?2 ORDER BY {key_col} LIMIT ?3");
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = Vec::new();
    for cn in accounts {
        let after = if cn == after_cn { after_key } else { "" };
        let want = limit.saturating_sub(rows.len());
        if want == 0 {
            break;
        }
        let more = stmt
            .query_map(params![cn, after, want as i64], &map)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.extend(more);
    }
    Ok(rows)
}
