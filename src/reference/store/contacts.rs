//! Notification contacts: e-mail-only entities of an account.

use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, params};

use super::{
    Cached, Principal, Result, Store, audit, bulk_page, check_if_match, check_kinds, check_name,
    decode_cursor, encode_cursor, etag, load_account, may_manage, next_version, parse_email,
    read_strings, refuse_fields, to_json,
};
use crate::portal::AccountFilter;
use crate::portal::api::{Contact, ContactPut, Page};

const CONTACT_COLUMNS: &str = "customer_number, email_key, email, name, notifications, version";

struct ContactRow {
    customer_number: String,
    email_key: String,
    contact: Contact,
}

fn contact_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ContactRow> {
    let customer_number: String = r.get(0)?;
    let email: String = r.get(2)?;
    let notifications = read_strings(&r.get::<_, String>(4)?, "notifications", || {
        format!("contact {email:?} of account {customer_number:?}")
    })?;
    Ok(ContactRow {
        email_key: r.get(1)?,
        contact: Contact {
            customer_number: Some(customer_number.clone()),
            email,
            name: r.get(3)?,
            notifications,
            etag: etag(r.get(5)?),
        },
        customer_number,
    })
}

fn load_contact(conn: &Connection, cn: &str, key: &str) -> Result<Option<Contact>> {
    let sql = format!(
        "SELECT {CONTACT_COLUMNS} FROM contacts WHERE customer_number = ?1 AND email_key = ?2"
    );
    Ok(conn
        .row(&sql, params![cn, key], contact_row)
        .optional()?
        .map(|r| Contact {
            customer_number: None,
            ..r.contact
        }))
}

impl Store {
    /// Contacts of one account, ordered by e-mail.
    pub fn list_account_contacts(
        &self,
        p: &Principal,
        now: Timestamp,
        cn: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<Contact>> {
        let acc = load_account(&self.conn, cn)?;
        may_manage(&self.conn, p, &acc, now)?;
        let after = decode_cursor(cursor, 1)?
            .and_then(|mut v| v.pop())
            .unwrap_or_default();
        let sql = format!(
            "SELECT {CONTACT_COLUMNS} FROM contacts WHERE customer_number = ?1 AND email_key > ?2
             ORDER BY email_key LIMIT ?3"
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt
            .query_map(params![cn, after, limit as i64 + 1], contact_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let more = rows.len() > limit;
        let rows = &rows[..rows.len().min(limit)];
        let next_cursor = if more {
            rows.last().map(|r| encode_cursor(&[r.email_key.as_str()]))
        } else {
            None
        };
        Ok(Page {
            items: rows
                .iter()
                .map(|r| Contact {
                    customer_number: None,
                    ..r.contact.clone()
                })
                .collect(),
            next_cursor,
        })
    }

    /// Contacts across every account the principal manages (or the listed ones).
    pub fn list_contacts(
        &self,
        p: &Principal,
        now: Timestamp,
        filter: &AccountFilter,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<Contact>> {
        let scope = self.bulk_scope(p, now, filter)?;
        let (rows, next_cursor) = bulk_page(
            &self.conn,
            &format!("SELECT {CONTACT_COLUMNS} FROM contacts"),
            ("customer_number", "email_key"),
            scope.as_deref(),
            cursor,
            limit,
            contact_row,
            |r| (r.customer_number.as_str(), r.email_key.as_str()),
        )?;
        let rows = &rows[..];
        Ok(Page {
            items: rows.iter().map(|r| r.contact.clone()).collect(),
            next_cursor,
        })
    }

    /// Creates or replaces a contact. Returns it and whether it is new.
    pub fn put_contact(
        &mut self,
        p: &Principal,
        now: Timestamp,
        cn: &str,
        email: &str,
        put: &ContactPut,
        if_match: Option<&str>,
    ) -> Result<(Contact, bool)> {
        let tx = self.write()?;
        let acc = load_account(&tx, cn)?;
        may_manage(&tx, p, &acc, now)?;
        let email = parse_email("email", email)?;
        let mut errors = Vec::new();
        // A contact's name is optional in manifests (a role mailbox needs none); when given,
        // it is held to the rules of every name.
        if !put.name.is_empty() {
            check_name("name", &put.name, &mut errors);
        }
        check_kinds("notifications", &put.notifications, &mut errors);
        refuse_fields(errors)?;
        let existing = load_contact(&tx, cn, email.key())?;
        check_if_match(
            if_match,
            existing.as_ref().map(|c| c.etag.as_str()),
            &format!("contact {:?} of customer account {cn:?}", email.as_str()),
        )?;
        let changed = existing
            .as_ref()
            .is_none_or(|c| c.name != put.name || c.notifications != put.notifications);
        let mut contact = match &existing {
            Some(c) => c.clone(),
            None => Contact {
                customer_number: None,
                email: email.as_str().to_string(),
                name: String::new(),
                notifications: Vec::new(),
                etag: String::new(),
            },
        };
        if changed {
            let version = next_version(&tx)?;
            contact.name = put.name.clone();
            contact.notifications = put.notifications.clone();
            contact.etag = etag(version);
            tx.exec(
                "INSERT INTO contacts (customer_number, email_key, email, name, notifications, version)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (customer_number, email_key) DO UPDATE SET
                     name = excluded.name, notifications = excluded.notifications,
                     version = excluded.version",
                params![
                    cn,
                    email.key(),
                    email.as_str(),
                    put.name,
                    to_json(&put.notifications),
                    version
                ],
            )?;
            audit(
                &tx,
                cn,
                now,
                p,
                if existing.is_some() {
                    "contact.update"
                } else {
                    "contact.create"
                },
                email.as_str(),
                &format!("notifications: {}", put.notifications.join(", ")),
            )?;
        }
        tx.commit()?;
        // The contact as written: no need to read it back.
        Ok((contact, existing.is_none()))
    }

    /// Removes a contact; removing one that is not there succeeds.
    pub fn delete_contact(
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
        let existing = load_contact(&tx, cn, email.key())?;
        check_if_match(
            if_match,
            existing.as_ref().map(|c| c.etag.as_str()),
            &format!("contact {:?} of customer account {cn:?}", email.as_str()),
        )?;
        if let Some(c) = existing {
            tx.exec(
                "DELETE FROM contacts WHERE customer_number = ?1 AND email_key = ?2",
                params![cn, email.key()],
            )?;
            audit(
                &tx,
                cn,
                now,
                p,
                "contact.delete",
                &c.email,
                "removed the contact",
            )?;
        }
        tx.commit()?;
        Ok(())
    }
}
