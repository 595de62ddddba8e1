//! The store's schema: its migrations, and what every connection needs.

use super::*;

/// What every connection to the store needs: a wait for a lock instead of an error, and room
/// for every statement of the store, the bulk reads' variants included.
pub(super) fn tune(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.set_prepared_statement_cache_capacity(128);
    Ok(())
}

/// Schema migrations; `PRAGMA user_version` counts how many have run.
pub(super) const MIGRATIONS: &[&str] = &[r#"
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
