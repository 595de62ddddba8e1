//! What people do outside the reconciler (SPEC §5): tokens, user accounts, accepting
//! invitations, the outbox; and the audit log and idempotency records.

use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, params};

use super::{
    Cached, Principal, Rejection, Result, Store, audit, decode_cursor, encode_cursor, load_account,
    may_manage, next_version, parse_email,
};
use crate::portal::api::{
    AuditEntry, ErrorCode, Member, Outbox, OutboxEntry, OutboxKind, Page, PrincipalKind,
    UserAccount,
};

/// SHA-256 of a token: only this is stored.
pub fn token_hash(token: &str) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, token.as_bytes())
        .as_ref()
        .to_vec()
}

/// Compares two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// `n` random bytes from the system's generator, as hex.
pub fn random_hex(n: usize) -> String {
    use ring::rand::SecureRandom;
    let mut bytes = vec![0u8; n];
    // The system generator does not fail on supported platforms; if it ever did, a token of
    // zeros would be guessable, so fall back to the clock's nanoseconds mixed through SHA-256.
    if ring::rand::SystemRandom::new().fill(&mut bytes).is_err() {
        let seed = format!("{:?}{:?}", Timestamp::now(), std::thread::current().id());
        let d = ring::digest::digest(&ring::digest::SHA256, seed.as_bytes());
        for (b, s) in bytes.iter_mut().zip(d.as_ref().iter().cycle()) {
            *b = *s;
        }
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A short, non-secret name of a token: the first 8 bytes of its hash.
fn token_id(hash: &[u8]) -> String {
    hash.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// Records that the portal "sent" an e-mail.
pub(super) fn send(
    conn: &Connection,
    now: Timestamp,
    to: &str,
    kind: OutboxKind,
    subject: &str,
    cn: Option<&str>,
) -> Result<()> {
    let kind = match kind {
        OutboxKind::Invitation => "invitation",
        OutboxKind::Password => "password",
        OutboxKind::Notification => "notification",
    };
    conn.exec(
        "INSERT INTO outbox (at, to_addr, kind, subject, customer_number)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![now.to_string(), to, kind, subject, cn],
    )?;
    Ok(())
}

/// Whether a replayed POST matches the first one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replay {
    /// The first answer to this key: status and JSON body.
    Answer(u16, String),
    /// The key was used for a different request.
    Mismatch,
}

/// What [`Store::answer_once`] gives: the answer of this call, or the one remembered for the
/// key (status and JSON body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Once<T> {
    Fresh(T),
    Replayed(u16, String),
}

impl Store {
    /// Stores the hash of a token (idempotent: storing it again changes nothing).
    pub fn add_token(
        &mut self,
        token: &str,
        kind: PrincipalKind,
        email: Option<&str>,
    ) -> Result<()> {
        let kind = match kind {
            PrincipalKind::Operator => "operator",
            PrincipalKind::User => "user",
        };
        self.conn.exec(
            "INSERT INTO tokens (hash, kind, email, created_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (hash) DO NOTHING",
            params![token_hash(token), kind, email, Timestamp::now().to_string()],
        )?;
        Ok(())
    }

    /// Issues a new token for a person or the operator; only the operator may.
    pub fn issue_token(
        &mut self,
        p: &Principal,
        email: Option<&str>,
        operator: bool,
    ) -> Result<String> {
        if !p.is_operator() {
            return Err(Rejection::forbidden("only the operator may issue tokens"));
        }
        let token = format!("rc_{}", random_hex(32));
        match (email, operator) {
            (Some(e), false) => {
                let e = parse_email("email", e)?;
                self.add_token(&token, PrincipalKind::User, Some(e.as_str()))?;
            }
            (None, true) => self.add_token(&token, PrincipalKind::Operator, None)?,
            _ => {
                return Err(Rejection::invalid(
                    "give either \"email\" (a person's token) or \"operator\": true, not both and not neither",
                ));
            }
        }
        Ok(token)
    }

    /// The principal a bearer token stands for, if the portal issued it.
    pub fn authenticate(&self, token: &str) -> Result<Option<Principal>> {
        let hash = token_hash(token);
        // Looking up by the SHA-256 of the token leaks nothing usable about the token; the
        // final comparison is constant-time anyway.
        let row: Option<(Vec<u8>, String, Option<String>)> = self
            .conn
            .row(
                "SELECT hash, kind, email FROM tokens WHERE hash = ?1",
                params![hash],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let Some((stored, kind, email)) = row else {
            return Ok(None);
        };
        if !constant_time_eq(&stored, &hash) {
            return Ok(None);
        }
        let id = token_id(&hash);
        Ok(match (kind.as_str(), email) {
            ("operator", _) => Some(Principal::operator(id)),
            ("user", Some(e)) => Some(Principal::user(&e, id)),
            _ => None,
        })
    }

    /// A person creates a user account: every member with that e-mail, in every account,
    /// becomes `userLinked`. Returns the account and whether it is new.
    pub fn create_user(&mut self, p: &Principal, email: &str) -> Result<(UserAccount, bool)> {
        if !p.is_operator() {
            return Err(Rejection::forbidden(
                "only the operator may use the sandbox API",
            ));
        }
        let now = self.now();
        let email = parse_email("email", email)?;
        let tx = self.write()?;
        // The person chose a password while signing up: no password e-mail.
        let created = link_user(&tx, now, p, email.as_str(), email.key(), false)?;
        let user = load_user(&tx, email.key())?;
        tx.commit()?;
        Ok((user, created))
    }

    /// A person accepts an invitation, which only the invited e-mail may do. The user account
    /// is created if needed and linked to every member with that e-mail.
    pub fn accept_invitation(&mut self, p: &Principal, id: &str, email: &str) -> Result<Member> {
        if !p.is_operator() {
            return Err(Rejection::forbidden(
                "only the operator may use the sandbox API",
            ));
        }
        let now = self.now();
        let email = parse_email("email", email)?;
        let tx = self.write()?;
        let row: Option<(String, String, String, String)> = tx
            .row(
                "SELECT customer_number, email_key, email, expires_at FROM invitations WHERE id = ?1",
                params![id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()?;
        let Some((cn, key, invited, expires_at)) = row else {
            return Err(Rejection::not_found(format!(
                "there is no invitation {id:?}; it may have been cancelled or replaced by a newer one"
            )));
        };
        if key != email.key() {
            return Err(Rejection::forbidden(format!(
                "the invitation was sent to {invited}, but {} tried to accept it: the e-mails differ, and only the invited e-mail may accept",
                email.as_str()
            )));
        }
        let expired = expires_at
            .parse::<Timestamp>()
            .map(|t| now >= t)
            .unwrap_or(true);
        if expired {
            return Err(Rejection::new(
                410,
                ErrorCode::Invalid,
                format!(
                    "the invitation {id} expired at {expires_at}; ask for a new one to be sent"
                ),
            ));
        }
        // Invitations go only to members with a login role, so the password e-mail does too.
        link_user(&tx, now, p, &invited, &key, true)?;
        audit(
            &tx,
            &cn,
            now,
            p,
            "invitation.accept",
            &invited,
            &format!("{} accepted invitation {id}", email.as_str()),
        )?;
        tx.commit()?;
        let operator = Principal::operator("sandbox");
        let mut member = self.get_member(&operator, now, &cn, &invited)?;
        member.customer_number = Some(cn);
        Ok(member)
    }

    /// The provider sends a notification of `kind`: one e-mail to every contact and member of
    /// the account subscribed to it. Returns the e-mails sent.
    pub fn send_notification(
        &mut self,
        p: &Principal,
        cn: &str,
        kind: &str,
        subject: &str,
    ) -> Result<Outbox> {
        if !p.is_operator() {
            return Err(Rejection::forbidden(
                "only the operator may use the sandbox API",
            ));
        }
        let now = self.now();
        let mut errors = Vec::new();
        super::check_kinds("kind", &[kind.to_string()], &mut errors);
        super::check_name("subject", subject, &mut errors);
        for (_, e) in errors.iter_mut() {
            // A single value, not a list: name the field itself.
            e.field = e.field.trim_end_matches("[0]").to_string();
        }
        super::refuse_fields(errors)?;
        let tx = self.write()?;
        load_account(&tx, cn)?;
        let recipients: Vec<String> = {
            let mut stmt = tx.prepare_cached(
                "SELECT email FROM contacts WHERE customer_number = ?1
                   AND EXISTS (SELECT 1 FROM json_each(contacts.notifications) WHERE value = ?2)
                 UNION
                 SELECT email FROM members WHERE customer_number = ?1
                   AND EXISTS (SELECT 1 FROM json_each(members.notifications) WHERE value = ?2)",
            )?;
            stmt.query_map(params![cn, kind], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?
        };
        let mut items = Vec::new();
        for to in recipients {
            send(&tx, now, &to, OutboxKind::Notification, subject, Some(cn))?;
            items.push(OutboxEntry {
                at: now.to_string(),
                to,
                kind: OutboxKind::Notification,
                subject: subject.to_string(),
                customer_number: Some(cn.to_string()),
            });
        }
        tx.commit()?;
        Ok(Outbox { items })
    }

    /// Every e-mail the portal has "sent", oldest first.
    pub fn outbox(&self, p: &Principal) -> Result<Outbox> {
        if !p.is_operator() {
            return Err(Rejection::forbidden(
                "only the operator may use the sandbox API",
            ));
        }
        let mut stmt = self.conn.prepare_cached(
            "SELECT at, to_addr, kind, subject, customer_number FROM outbox ORDER BY id",
        )?;
        let rows = stmt.query_map([], |r| {
            let kind: String = r.get(2)?;
            Ok(OutboxEntry {
                at: r.get(0)?,
                to: r.get(1)?,
                kind: match kind.as_str() {
                    "invitation" => OutboxKind::Invitation,
                    "password" => OutboxKind::Password,
                    _ => OutboxKind::Notification,
                },
                subject: r.get(3)?,
                customer_number: r.get(4)?,
            })
        })?;
        Ok(Outbox {
            items: rows.collect::<rusqlite::Result<_>>()?,
        })
    }

    /// The account's audit log, oldest first.
    pub fn audit_log(
        &self,
        p: &Principal,
        now: Timestamp,
        cn: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<AuditEntry>> {
        let acc = load_account(&self.conn, cn)?;
        may_manage(&self.conn, p, &acc, now)?;
        let after: i64 = match decode_cursor(cursor, 1)? {
            Some(v) => v[0].parse().map_err(|_| {
                Rejection::invalid_field("cursor", "is not a cursor this portal gave out")
            })?,
            None => 0,
        };
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, at, actor, action, target, detail FROM audit
             WHERE customer_number = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
        )?;
        let rows = stmt
            .query_map(params![cn, after, limit as i64 + 1], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    AuditEntry {
                        at: r.get(1)?,
                        actor: r.get(2)?,
                        action: r.get(3)?,
                        target: r.get(4)?,
                        detail: r.get(5)?,
                    },
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let more = rows.len() > limit;
        let rows = &rows[..rows.len().min(limit)];
        let next_cursor = if more {
            rows.last().map(|(id, _)| encode_cursor(&[&id.to_string()]))
        } else {
            None
        };
        Ok(Page {
            items: rows.iter().map(|(_, e)| e.clone()).collect(),
            next_cursor,
        })
    }

    /// The first answer to an idempotency key of this token, if the key was used before.
    pub fn idempotent_replay(
        &self,
        token_id: &str,
        key: &str,
        fingerprint: &[u8],
    ) -> Result<Option<Replay>> {
        let row: Option<(Vec<u8>, u16, String)> = self
            .conn
            .row(
                "SELECT fingerprint, status, body FROM idempotency WHERE token_id = ?1 AND key = ?2",
                params![token_id, key],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        Ok(row.map(|(f, status, body)| {
            if f == fingerprint {
                Replay::Answer(status, body)
            } else {
                Replay::Mismatch
            }
        }))
    }

    /// Runs a request once per idempotency key of this token (SPEC §4): the first time `f`
    /// runs and its answer, as `record` writes it (status, JSON body), is remembered; a repeat
    /// with the same `fingerprint` gets the remembered answer back without running `f` (no
    /// second e-mail), one with a different request is refused (422 on `Idempotency-Key`).
    /// Only answers are remembered, not refusals, so a refused request can be corrected and
    /// retried under the same key. Without a key, `f` just runs.
    pub fn answer_once<T>(
        &mut self,
        token_id: &str,
        key: Option<&str>,
        fingerprint: &[u8],
        f: impl FnOnce(&mut Store) -> Result<T>,
        record: impl FnOnce(&T) -> (u16, String),
    ) -> Result<Once<T>> {
        let Some(key) = key else {
            return f(self).map(Once::Fresh);
        };
        match self.idempotent_replay(token_id, key, fingerprint)? {
            Some(Replay::Answer(status, body)) => return Ok(Once::Replayed(status, body)),
            Some(Replay::Mismatch) => {
                return Err(Rejection::invalid_field(
                    "Idempotency-Key",
                    format!("{key:?} was already used for a different request; use a new key"),
                ));
            }
            None => {}
        }
        let answer = f(self)?;
        let (status, body) = record(&answer);
        self.idempotent_record(token_id, key, fingerprint, status, &body)?;
        Ok(Once::Fresh(answer))
    }

    /// Remembers the answer to an idempotency key.
    pub fn idempotent_record(
        &mut self,
        token_id: &str,
        key: &str,
        fingerprint: &[u8],
        status: u16,
        body: &str,
    ) -> Result<()> {
        self.conn.exec(
            "INSERT INTO idempotency (token_id, key, fingerprint, status, body, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (token_id, key) DO NOTHING",
            params![
                token_id,
                key,
                fingerprint,
                status,
                body,
                Timestamp::now().to_string()
            ],
        )?;
        Ok(())
    }
}

/// Creates the user account if needed (sending the password e-mail when `password_mail`) and
/// links every member with its e-mail. Returns whether the account is new.
fn link_user(
    conn: &Connection,
    now: Timestamp,
    p: &Principal,
    email: &str,
    key: &str,
    password_mail: bool,
) -> Result<bool> {
    let created = conn.exec(
        "INSERT INTO users (email_key, email, created_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (email_key) DO NOTHING",
        params![key, email, now.to_string()],
    )? > 0;
    if created && password_mail {
        send(
            conn,
            now,
            email,
            OutboxKind::Password,
            "Set the password of your new user account",
            None,
        )?;
    }
    let unlinked: Vec<(String, String)> = {
        let mut stmt = conn.prepare_cached(
            "SELECT customer_number, email FROM members WHERE email_key = ?1 AND user_linked = 0",
        )?;
        stmt.query_map(params![key], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?
    };
    for (cn, member_email) in unlinked {
        let version = next_version(conn)?;
        conn.exec(
            "UPDATE members SET user_linked = 1, version = ?3
             WHERE customer_number = ?1 AND email_key = ?2",
            params![cn, key, version],
        )?;
        // A linked member needs no invitation any more.
        conn.exec(
            "DELETE FROM invitations WHERE customer_number = ?1 AND email_key = ?2",
            params![cn, key],
        )?;
        audit(
            conn,
            &cn,
            now,
            p,
            "member.link",
            &member_email,
            "the user account with this e-mail is now linked",
        )?;
    }
    Ok(created)
}

fn load_user(conn: &Connection, key: &str) -> Result<UserAccount> {
    let (email, created_at): (String, String) = conn.row(
        "SELECT email, created_at FROM users WHERE email_key = ?1",
        params![key],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let mut stmt = conn.prepare_cached(
        "SELECT customer_number FROM members WHERE email_key = ?1 AND user_linked = 1
         ORDER BY customer_number",
    )?;
    let linked = stmt
        .query_map(params![key], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(UserAccount {
        email,
        created_at,
        linked_accounts: linked,
    })
}
