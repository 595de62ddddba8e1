//! The embedded reference portal (`--portal sandbox:FILE`): the same store as `rolecall
//! portal serve`, used in-process with the operator principal.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use jiff::Timestamp;

use super::store::{MAX_LIMIT, Once, OpenError, Principal, Rejection, Store};
use crate::portal::{
    Account, AccountFilter, AccountPatch, AuditEntry, Catalog, Contact, ContactPut, ErrorCode,
    Invitation, Member, MemberPut, NewAccount, Page, Portal, PortalError, PortalResult, Whoami,
};

/// The default embedded portal of the CLI.
pub const DEFAULT_SANDBOX_URL: &str = "sandbox:.rolecall/sandbox.db";

/// The reference portal's store, in-process, acting as the operator.
#[derive(Clone)]
pub struct SandboxPortal {
    store: Arc<Mutex<Store>>,
    principal: Principal,
}

/// Why the embedded portal cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error(
        "{url:?} is not a sandbox portal URL: write it as sandbox:FILE, for example {DEFAULT_SANDBOX_URL}"
    )]
    NotASandboxUrl { url: String },
    #[error("sandbox: needs a file, for example {DEFAULT_SANDBOX_URL}")]
    NoFile,
}

/// A `sandbox:FILE` portal URL. Everything after `sandbox:` is the file, exactly as written:
/// relative to the working directory unless it starts with `/`; `//` and `?` have no meaning
/// of their own (`sandbox://x.db` is the file `//x.db`, that is `/x.db`; `sandbox:a.db?x=1` is
/// the file `a.db?x=1`), as the command line has always read them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxUrl {
    pub path: PathBuf,
}

impl SandboxUrl {
    /// Reads a `sandbox:FILE` URL; `sandbox:` alone names no file.
    pub fn parse(url: &str) -> Result<SandboxUrl, SandboxError> {
        let file = url
            .strip_prefix("sandbox:")
            .ok_or_else(|| SandboxError::NotASandboxUrl {
                url: crate::domain::text::redact_url(url).into_owned(),
            })?;
        if file.is_empty() {
            return Err(SandboxError::NoFile);
        }
        Ok(SandboxUrl {
            path: PathBuf::from(file),
        })
    }
}

impl SandboxPortal {
    /// Opens (creating it and its directories if needed) the store at `path`. The clock starts
    /// at `now` when given (`ROLECALL_NOW`), else where the sandbox clock was last set, else at
    /// the real time.
    pub fn open(path: &Path, now: Option<Timestamp>) -> Result<SandboxPortal, SandboxError> {
        let store = Store::open(path, now)?;
        Ok(SandboxPortal {
            store: Arc::new(Mutex::new(store)),
            principal: Principal::operator("sandbox"),
        })
    }

    /// Opens a `sandbox:FILE` URL (read by [`SandboxUrl::parse`]).
    pub fn open_url(url: &str, now: Option<Timestamp>) -> Result<SandboxPortal, SandboxError> {
        SandboxPortal::open(&SandboxUrl::parse(url)?.path, now)
    }

    /// Runs `f` on the store off the async workers.
    async fn run<T, F>(&self, f: F) -> PortalResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Store, &Principal, Timestamp) -> Result<T, Rejection> + Send + 'static,
    {
        let store = self.store.clone();
        let principal = self.principal.clone();
        // On the process's worker threads rather than tokio's blocking pool: the objects read
        // here live until the plan is made, and each further thread that allocates them adds a
        // malloc arena (see `crate::workers`). A panic becomes this call's error, as before.
        let done = crate::workers::run(move || {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                // A panic while holding the lock cannot leave a half-made change behind: every
                // write is a transaction, rolled back when dropped. So a poisoned lock is usable.
                let mut guard = store
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let now = guard.now();
                f(&mut guard, &principal, now)
            }))
        })
        .await;
        match done {
            Some(Ok(answer)) => answer.map_err(PortalError::from),
            Some(Err(_)) | None => Err(PortalError::Unreachable(
                "the sandbox portal failed: a call on its store panicked".to_string(),
            )),
        }
    }

    /// Like `run`, but replays the first answer of a repeated idempotency key.
    async fn idempotent<T, F>(&self, key: &str, request: String, f: F) -> PortalResult<T>
    where
        T: serde::Serialize + serde::de::DeserializeOwned + Send + 'static,
        F: FnOnce(&mut Store, &Principal, Timestamp) -> Result<T, Rejection> + Send + 'static,
    {
        let key = (!key.is_empty()).then(|| key.to_string());
        self.run(move |s, p, now| {
            let fingerprint = super::store::token_hash(&request);
            let once = s.answer_once(
                &p.token_id,
                key.as_deref(),
                &fingerprint,
                |s| f(s, p, now),
                |answer| (200, serde_json::to_string(answer).unwrap_or_default()),
            )?;
            match once {
                Once::Fresh(answer) => Ok(answer),
                Once::Replayed(_, body) => serde_json::from_str(&body).map_err(|e| {
                    Rejection::new(
                        500,
                        ErrorCode::Unavailable,
                        format!("a stored answer cannot be read: {e}"),
                    )
                }),
            }
        })
        .await
    }

    /// Moves the sandbox clock (what `POST /sandbox/clock` does).
    pub async fn set_clock(&self, now: Timestamp) -> PortalResult<()> {
        self.run(move |s, _, _| s.set_clock(now)).await
    }
}

/// Collects every page of a list.
fn all_pages<T>(
    mut page: impl FnMut(Option<&str>) -> Result<Page<T>, Rejection>,
) -> Result<Vec<T>, Rejection> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let p = page(cursor.as_deref())?;
        items.extend(p.items);
        match p.next_cursor {
            Some(c) => cursor = Some(c),
            None => return Ok(items),
        }
    }
}

impl Portal for SandboxPortal {
    async fn whoami(&self) -> PortalResult<Whoami> {
        Ok(self.principal.whoami())
    }

    async fn catalog(&self) -> PortalResult<Catalog> {
        self.run(|s, _, _| Ok(s.catalog())).await
    }

    async fn list_accounts(&self) -> PortalResult<Vec<Account>> {
        self.run(|s, p, now| all_pages(|c| s.list_accounts(p, now, c, MAX_LIMIT)))
            .await
    }

    async fn get_account(&self, customer_number: &str) -> PortalResult<Account> {
        let cn = customer_number.to_string();
        self.run(move |s, p, now| s.get_account(p, now, &cn)).await
    }

    async fn create_account(
        &self,
        account: &NewAccount,
        idempotency_key: &str,
    ) -> PortalResult<Account> {
        let account = account.clone();
        let request = format!(
            "create_account {}",
            serde_json::to_string(&account).unwrap_or_default()
        );
        self.idempotent(idempotency_key, request, move |s, p, now| {
            s.create_account(p, now, &account)
        })
        .await
    }

    async fn update_account(
        &self,
        customer_number: &str,
        patch: &AccountPatch,
        if_match: Option<&str>,
    ) -> PortalResult<Account> {
        let (cn, patch, if_match) = (
            customer_number.to_string(),
            patch.clone(),
            if_match.map(str::to_string),
        );
        self.run(move |s, p, now| s.update_account(p, now, &cn, &patch, if_match.as_deref()))
            .await
    }

    async fn list_members(&self, accounts: &AccountFilter) -> PortalResult<Vec<Member>> {
        let filter = accounts.clone();
        self.run(move |s, p, now| all_pages(|c| s.list_members(p, now, &filter, c, MAX_LIMIT)))
            .await
    }

    async fn put_member(
        &self,
        customer_number: &str,
        email: &str,
        member: &MemberPut,
        if_match: Option<&str>,
    ) -> PortalResult<Member> {
        let (cn, email, member, if_match) = (
            customer_number.to_string(),
            email.to_string(),
            member.clone(),
            if_match.map(str::to_string),
        );
        self.run(move |s, p, now| {
            s.put_member(p, now, &cn, &email, &member, if_match.as_deref())
                .map(|(m, _)| m)
        })
        .await
    }

    async fn delete_member(
        &self,
        customer_number: &str,
        email: &str,
        if_match: Option<&str>,
    ) -> PortalResult<()> {
        let (cn, email, if_match) = (
            customer_number.to_string(),
            email.to_string(),
            if_match.map(str::to_string),
        );
        self.run(move |s, p, now| s.delete_member(p, now, &cn, &email, if_match.as_deref()))
            .await
    }

    async fn invite(
        &self,
        customer_number: &str,
        email: &str,
        resend: bool,
        idempotency_key: &str,
    ) -> PortalResult<Invitation> {
        let (cn, email) = (customer_number.to_string(), email.to_string());
        let request = format!("invite {cn} {} {resend}", crate::domain::email_key(&email));
        self.idempotent(idempotency_key, request, move |s, p, now| {
            s.invite(p, now, &cn, &email, resend).map(|(i, _)| i)
        })
        .await
    }

    async fn cancel_invitation(&self, customer_number: &str, email: &str) -> PortalResult<()> {
        let (cn, email) = (customer_number.to_string(), email.to_string());
        self.run(move |s, p, now| s.cancel_invitation(p, now, &cn, &email))
            .await
    }

    async fn list_contacts(&self, accounts: &AccountFilter) -> PortalResult<Vec<Contact>> {
        let filter = accounts.clone();
        self.run(move |s, p, now| all_pages(|c| s.list_contacts(p, now, &filter, c, MAX_LIMIT)))
            .await
    }

    async fn put_contact(
        &self,
        customer_number: &str,
        email: &str,
        contact: &ContactPut,
        if_match: Option<&str>,
    ) -> PortalResult<Contact> {
        let (cn, email, contact, if_match) = (
            customer_number.to_string(),
            email.to_string(),
            contact.clone(),
            if_match.map(str::to_string),
        );
        self.run(move |s, p, now| {
            s.put_contact(p, now, &cn, &email, &contact, if_match.as_deref())
                .map(|(c, _)| c)
        })
        .await
    }

    async fn delete_contact(
        &self,
        customer_number: &str,
        email: &str,
        if_match: Option<&str>,
    ) -> PortalResult<()> {
        let (cn, email, if_match) = (
            customer_number.to_string(),
            email.to_string(),
            if_match.map(str::to_string),
        );
        self.run(move |s, p, now| s.delete_contact(p, now, &cn, &email, if_match.as_deref()))
            .await
    }

    async fn audit(&self, customer_number: &str) -> PortalResult<Vec<AuditEntry>> {
        let cn = customer_number.to_string();
        self.run(move |s, p, now| all_pages(|c| s.audit_log(p, now, &cn, c, MAX_LIMIT)))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::portal::RoleGrant;

    #[tokio::test]
    async fn the_embedded_portal_persists_and_enforces_the_rules() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sandbox:{}/nested/sandbox.db", dir.path().display());
        let now: Timestamp = "2026-06-01T00:00:00Z".parse().unwrap();
        let portal = SandboxPortal::open_url(&url, Some(now)).unwrap();
        let account = NewAccount {
            customer_number: "100".into(),
            display_name: "Acme".into(),
            time_zone: "Europe/Zurich".into(),
        };
        let first = portal.create_account(&account, "k1").await.unwrap();
        let again = portal.create_account(&account, "k1").await.unwrap();
        assert_eq!(
            first, again,
            "a repeated idempotency key replays the answer"
        );
        let put = MemberPut {
            name: None,
            roles: vec![RoleGrant {
                name: "nope".into(),
                until: None,
            }],
            services: None,
            notifications: None,
        };
        let err = portal
            .put_member("100", "a@example.com", &put, None)
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::UnknownRole));
        let put = MemberPut {
            roles: vec![RoleGrant {
                name: "cockpit-access".into(),
                until: None,
            }],
            ..put
        };
        portal
            .put_member("100", "a@example.com", &put, None)
            .await
            .unwrap();
        drop(portal);
        let portal = SandboxPortal::open_url(&url, Some(now)).unwrap();
        let members = portal.list_members(&AccountFilter::All).await.unwrap();
        assert_eq!(members.len(), 1);
        assert_eq!(members[0].customer_number.as_deref(), Some("100"));
        assert_eq!(portal.whoami().await.unwrap().email, None);
    }

    #[test]
    fn a_sandbox_url_is_the_file_after_the_colon_as_the_command_line_reads_it() {
        // What `rolecall plan --portal URL` did with each before there was one parser.
        let path = |url: &str| SandboxUrl::parse(url).map(|u| u.path);
        assert_eq!(path("sandbox:/abs/path").unwrap(), Path::new("/abs/path"));
        assert_eq!(path("sandbox:rel").unwrap(), Path::new("rel"));
        assert_eq!(path("sandbox://").unwrap(), Path::new("//"));
        assert_eq!(path("sandbox://x.db").unwrap(), Path::new("//x.db"));
        assert_eq!(
            path("sandbox:a.db?mode=ro").unwrap(),
            Path::new("a.db?mode=ro")
        );
        assert_eq!(path("sandbox:?foo=1").unwrap(), Path::new("?foo=1"));
        let none = path("sandbox:").unwrap_err();
        assert!(matches!(none, SandboxError::NoFile));
        assert_eq!(
            none.to_string(),
            "sandbox: needs a file, for example sandbox:.rolecall/sandbox.db"
        );
        let other = path("https://u:p@x/").unwrap_err();
        assert_eq!(
            other.to_string(),
            "\"https://(redacted)@x/\" is not a sandbox portal URL: write it as sandbox:FILE, for example sandbox:.rolecall/sandbox.db"
        );
        assert!(matches!(
            SandboxPortal::open_url("sandbox:", None),
            Err(SandboxError::NoFile)
        ));
    }

    /// Members and invitations through the `Portal` trait, on account "7".
    async fn members_and_invitations(portal: &SandboxPortal) {
        let login = MemberPut {
            name: Some("Ann".into()),
            roles: vec![RoleGrant {
                name: "cockpit-access".into(),
                until: None,
            }],
            services: None,
            notifications: None,
        };
        portal
            .put_member("7", "ann@example.com", &login, None)
            .await
            .unwrap();
        let first = portal
            .invite("7", "ann@example.com", true, "i1")
            .await
            .unwrap();
        let replay = portal
            .invite("7", "ann@example.com", true, "i1")
            .await
            .unwrap();
        assert_eq!(first, replay, "the key replays; no second e-mail");
        portal
            .cancel_invitation("7", "ann@example.com")
            .await
            .unwrap();
        let members = portal
            .list_members(&AccountFilter::Only(vec!["7".into()]))
            .await
            .unwrap();
        assert!(members[0].invitation.is_none());
        portal
            .delete_member("7", "ann@example.com", None)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn every_operation_of_the_portal_trait_works_in_process() {
        let dir = tempfile::tempdir().unwrap();
        let now: Timestamp = "2026-06-01T00:00:00Z".parse().unwrap();
        let portal = SandboxPortal::open(&dir.path().join("s.db"), Some(now)).unwrap();
        let account = portal
            .create_account(
                &NewAccount {
                    customer_number: "7".into(),
                    display_name: "Seven".into(),
                    time_zone: "UTC".into(),
                },
                "",
            )
            .await
            .unwrap();
        assert_eq!(portal.catalog().await.unwrap().invitation_ttl_days, 14);
        let patch = AccountPatch {
            display_name: Some("Seven AG".into()),
            time_zone: None,
        };
        let changed = portal
            .update_account("7", &patch, Some(&account.etag))
            .await
            .unwrap();
        let stale = portal
            .update_account("7", &patch, Some(&account.etag))
            .await
            .unwrap_err();
        assert_eq!(stale.code(), Some(ErrorCode::VersionConflict));
        assert_eq!(portal.get_account("7").await.unwrap(), changed);
        assert_eq!(portal.list_accounts().await.unwrap(), vec![changed]);

        members_and_invitations(&portal).await;

        let contact = ContactPut {
            name: "Billing".into(),
            notifications: vec!["invoices".into()],
        };
        let c = portal
            .put_contact("7", "b@example.com", &contact, None)
            .await
            .unwrap();
        assert_eq!(
            portal
                .list_contacts(&AccountFilter::All)
                .await
                .unwrap()
                .len(),
            1
        );
        portal
            .delete_contact("7", "b@example.com", Some(&c.etag))
            .await
            .unwrap();
        let actions: Vec<String> = portal
            .audit("7")
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.action)
            .collect();
        assert_eq!(
            actions,
            [
                "account.create",
                "account.update",
                "member.create",
                "invitation.send",
                "invitation.cancel",
                "member.delete",
                "contact.create",
                "contact.delete"
            ]
        );
    }
}
