//! Customer accounts: list, read, create (operators only), change.

use jiff::Timestamp;
use rusqlite::params;

use super::member_rows::other_admin_exists;
use super::{
    AccountRow, Cached, Principal, Rejection, Result, Store, accounts_of_user, audit,
    check_if_match, check_name, decode_cursor, encode_cursor, etag, load_account, may_manage,
    may_view, next_version, refuse_fields,
};
use crate::domain::{check_customer_number, parse_time_zone};
use crate::portal::api::{Account, AccountPatch, ErrorCode, FieldError, NewAccount, Page};

fn to_account(row: &AccountRow) -> Account {
    Account {
        customer_number: row.customer_number.clone(),
        display_name: row.display_name.clone(),
        time_zone: row.time_zone.clone(),
        etag: etag(row.version),
    }
}

impl Store {
    /// Accounts the principal can see: all for the operator, those where a user holds an
    /// effective `cockpit-access` otherwise. Ordered by customer number.
    pub fn list_accounts(
        &self,
        p: &Principal,
        now: Timestamp,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<Account>> {
        let after = decode_cursor(cursor, 1)?
            .and_then(|mut v| v.pop())
            .unwrap_or_default();
        let numbers: Vec<String> = match &p.email_key {
            None => {
                let mut stmt = self.conn.prepare_cached(
                    "SELECT customer_number FROM accounts WHERE customer_number > ?1
                     ORDER BY customer_number LIMIT ?2",
                )?;
                let rows = stmt.query_map(params![after, limit as i64 + 1], |r| r.get(0))?;
                rows.collect::<rusqlite::Result<_>>()?
            }
            Some(key) => accounts_of_user(&self.conn, key, now, false)?
                .into_iter()
                .filter(|cn| cn.as_str() > after.as_str())
                .take(limit + 1)
                .collect(),
        };
        let more = numbers.len() > limit;
        let mut items = Vec::new();
        for cn in numbers.iter().take(limit) {
            items.push(to_account(&load_account(&self.conn, cn)?));
        }
        let next_cursor = if more {
            items
                .last()
                .map(|a| encode_cursor(&[a.customer_number.as_str()]))
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }

    pub fn get_account(&self, p: &Principal, now: Timestamp, cn: &str) -> Result<Account> {
        let acc = load_account(&self.conn, cn)?;
        may_view(&self.conn, p, &acc, now)?;
        Ok(to_account(&acc))
    }

    /// Creates a customer account; operators only (`capabilities.createAccounts`).
    pub fn create_account(
        &mut self,
        p: &Principal,
        now: Timestamp,
        new: &NewAccount,
    ) -> Result<Account> {
        if !p.is_operator() {
            return Err(Rejection::forbidden(
                "only the operator may create customer accounts",
            ));
        }
        let mut errors = Vec::new();
        if let Err(m) = check_customer_number(&new.customer_number) {
            errors.push((
                ErrorCode::Invalid,
                FieldError {
                    field: "customerNumber".into(),
                    message: m.to_string(),
                },
            ));
        }
        check_name("displayName", &new.display_name, &mut errors);
        if let Err(m) = parse_time_zone(&new.time_zone) {
            errors.push((
                ErrorCode::Invalid,
                FieldError {
                    field: "timeZone".into(),
                    message: m.to_string(),
                },
            ));
        }
        refuse_fields(errors)?;
        let tx = self.write()?;
        if load_account(&tx, &new.customer_number).is_ok() {
            return Err(Rejection::new(
                409,
                ErrorCode::Invalid,
                format!("customer account {:?} already exists", new.customer_number),
            ));
        }
        let version = next_version(&tx)?;
        tx.exec(
            "INSERT INTO accounts (customer_number, display_name, time_zone, version)
             VALUES (?1, ?2, ?3, ?4)",
            params![
                new.customer_number,
                new.display_name,
                new.time_zone,
                version
            ],
        )?;
        audit(
            &tx,
            &new.customer_number,
            now,
            p,
            "account.create",
            &new.customer_number,
            &format!(
                "created customer account {:?} ({}, {})",
                new.customer_number, new.display_name, new.time_zone
            ),
        )?;
        let acc = load_account(&tx, &new.customer_number)?;
        tx.commit()?;
        Ok(to_account(&acc))
    }

    /// Changes an account's display name or time zone; operators and the account's admins.
    pub fn update_account(
        &mut self,
        p: &Principal,
        now: Timestamp,
        cn: &str,
        patch: &AccountPatch,
        if_match: Option<&str>,
    ) -> Result<Account> {
        let tx = self.write()?;
        let acc = load_account(&tx, cn)?;
        may_manage(&tx, p, &acc, now)?;
        let mut errors = Vec::new();
        if let Some(name) = &patch.display_name {
            check_name("displayName", name, &mut errors);
        }
        if let Some(zone) = &patch.time_zone
            && let Err(m) = parse_time_zone(zone)
        {
            errors.push((
                ErrorCode::Invalid,
                FieldError {
                    field: "timeZone".into(),
                    message: m.to_string(),
                },
            ));
        }
        refuse_fields(errors)?;
        let current = etag(acc.version);
        check_if_match(
            if_match,
            Some(&current),
            &format!("customer account {cn:?}"),
        )?;
        let name = patch.display_name.as_ref().unwrap_or(&acc.display_name);
        let zone = patch.time_zone.as_ref().unwrap_or(&acc.time_zone);
        if zone != &acc.time_zone {
            // A new time zone moves the end of every `until` day: it must not end the last
            // admin's roles on the spot.
            let mut moved = acc.clone();
            moved.tz = parse_time_zone(zone)
                .map_err(|m| Rejection::invalid_field("timeZone", m.to_string()))?;
            if other_admin_exists(&tx, &acc, "", now)? && !other_admin_exists(&tx, &moved, "", now)?
            {
                return Err(Rejection::new(
                    422,
                    ErrorCode::LastAdmin,
                    format!(
                        "in {zone} the roles of every admin of customer account {cn:?} would already have ended; an account that has an admin must keep one"
                    ),
                ));
            }
        }
        if name != &acc.display_name || zone != &acc.time_zone {
            let version = next_version(&tx)?;
            tx.exec(
                "UPDATE accounts SET display_name = ?2, time_zone = ?3, version = ?4
                 WHERE customer_number = ?1",
                params![cn, name, zone, version],
            )?;
            audit(
                &tx,
                cn,
                now,
                p,
                "account.update",
                cn,
                &format!("display name {name:?}, time zone {zone}"),
            )?;
        }
        let acc = load_account(&tx, cn)?;
        tx.commit()?;
        Ok(to_account(&acc))
    }
}
