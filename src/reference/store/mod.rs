//! The reference portal's store: one SQLite file holding accounts, members, contacts,
//! invitations, user accounts, tokens, the audit log, the outbox and idempotency records.
//!
//! Every rule of SPEC §1 and §4 is enforced here, not in the HTTP layer, so the embedded
//! (`sandbox:`) portal and the server behave the same. The API is synchronous: each call
//! takes the acting [`Principal`] and the portal's `now`, and every write is one transaction.

mod access;
mod accounts;
mod checks;
mod contacts;
mod member_rows;
mod members;
mod paging;
mod rejection;
mod sandbox;
mod schema;

#[cfg(test)]
mod corruption_tests;
#[cfg(test)]
mod idempotency_tests;
#[cfg(test)]
mod open_tests;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use jiff::Timestamp;
use jiff::tz::TimeZone;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::domain::{Email, Window, parse_date, parse_time_zone};
use crate::portal::api::{
    Capabilities, Catalog, CatalogRole, ErrorCode, FieldError, PrincipalKind, RoleGrant, Whoami,
};
use crate::portal::{PortalError, Problem};

pub use access::CorruptRow;
use access::{
    Zones, accounts_of_user, decode_column, grant_effective, holds, is_effective_admin, may_manage,
    may_view, member_label, read_roles, read_strings, stored_zone, to_json,
};
pub use checks::check_limit;
use checks::{check_kinds, check_name, parse_email, refuse_fields};
use paging::{bulk_page, decode_cursor, encode_cursor};
pub use rejection::{Rejection, Result};
pub use sandbox::{Once, Replay, constant_time_eq, random_hex, token_hash};
use schema::{MIGRATIONS, tune};

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

/// Why a store cannot be opened. Each Display is the sentence without its cause; the cause
/// follows as the [`std::error::Error::source`] (`cli::chain` prints `sentence: cause`).
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    // The space before the colon is what users have always read.
    #[error("cannot create the directory {} ", dir.display())]
    CreateDir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open the portal store {}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: SqliteFailure,
    },
    #[error("cannot prepare the portal store {}", path.display())]
    Prepare {
        path: PathBuf,
        #[source]
        source: SqliteFailure,
    },
    #[error("cannot open the portal store {} to read", path.display())]
    Reader {
        path: PathBuf,
        #[source]
        source: SqliteFailure,
    },
    #[error("cannot open a portal store in memory")]
    InMemory(#[source] SqliteFailure),
}

/// A SQLite failure as the cause of another error: rusqlite's message and no cause of its own,
/// because rusqlite's cause (SQLite's numbered error code) would say the same thing again.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SqliteFailure(pub rusqlite::Error);

/// An error and its causes as one line, `sentence: cause: cause of the cause`: the text for
/// places that keep a message rather than the error (a log line, a condition's message).
pub fn with_causes(error: &dyn std::error::Error) -> String {
    let mut line = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        line.push_str(": ");
        line.push_str(&e.to_string());
        cause = e.source();
    }
    line
}

/// The SQLite store. Not `Sync`: callers serialize access (a mutex) and run it off the async
/// runtime's worker threads.
pub struct Store {
    conn: Connection,
    /// Shared with the store's [`Store::reader`], so that both tell the same time.
    clock: Arc<Mutex<Clock>>,
}

impl Store {
    /// Opens (creating it and its parent directories if needed) the store at `path`, runs
    /// pending migrations, and starts the clock at `start` if given, else at the instant a
    /// previous `POST /sandbox/clock` set, else at the real time.
    pub fn open(path: &Path, start: Option<Timestamp>) -> Result<Store, OpenError> {
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(|source| OpenError::CreateDir {
                dir: dir.to_path_buf(),
                source,
            })?;
        }
        let conn = Connection::open(path).map_err(|e| OpenError::Open {
            path: path.to_path_buf(),
            source: SqliteFailure(e),
        })?;
        Store::setup(conn, start, true).map_err(|e| OpenError::Prepare {
            path: path.to_path_buf(),
            source: SqliteFailure(e),
        })
    }

    /// A store that lives in memory only (unit tests).
    pub fn open_in_memory(start: Option<Timestamp>) -> Result<Store, OpenError> {
        let conn =
            Connection::open_in_memory().map_err(|e| OpenError::InMemory(SqliteFailure(e)))?;
        Store::setup(conn, start, false).map_err(|e| OpenError::InMemory(SqliteFailure(e)))
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
    pub fn reader(&self) -> std::result::Result<Option<Store>, OpenError> {
        let Some(path) = self.conn.path().filter(|p| !p.is_empty()) else {
            return Ok(None);
        };
        let fail = |e: rusqlite::Error| OpenError::Reader {
            path: PathBuf::from(path),
            source: SqliteFailure(e),
        };
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
        return Err(Rejection::version_conflict(format!(
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
        Err(Rejection::version_conflict(format!(
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
        return Err(Rejection::not_found(format!(
            "there is no customer account {cn:?}"
        )));
    };
    // A stored zone was checked when written; one that no longer parses is a corrupt row.
    let tz = stored_zone(&time_zone, &customer_number)?;
    Ok(AccountRow {
        customer_number,
        display_name,
        time_zone,
        tz,
        version,
    })
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
