//! The BILLmanager adapter (SPEC §5a): the portal operations rolecall needs, carried out
//! through ISPsystem BILLmanager 6's API (`POST https://host:1500/billmgr`, form-encoded,
//! `func=<name>&out=json&lang=en`, a session from `func=auth` sent as `auth=`).
//!
//! What maps to what:
//! - one portal is one client account: the one the credentials log in to. Its customer number
//!   is the operator's label for it, bound by the front end from the manifests
//!   ([`Portal::bind_accounts`]);
//! - members are the account's users (`func=user`); the main user is reported holding
//!   `full-access` plus the read-only role `owner` and is never changed or removed;
//! - roles are `full-access` (`default_access_allow`) and the function names of the
//!   `rights2.user` tree; `contact` is a user with no right and no full access;
//! - a member is created with `user.edit` and a random password nobody sees; BILLmanager
//!   e-mails the password to a user with access, which is this portal's invitation;
//! - there are no e-mail-only contacts, no per-member notifications and no service scopes
//!   rolecall could set: the catalog's capabilities say so and the planner refuses them.
//!
//! BILLmanager has no ETags: every write is preceded by a read of the user it changes, so an
//! answer that was lost never makes a second user.

mod wire;

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use jiff::{SignedDuration, Timestamp};
use reqwest::Url;
use serde_json::Value;

use super::http::{
    Answer, HttpOptions, HttpSetupError, Place, Retry, build_client, parse_base_url,
};
use super::{
    Account, AccountFilter, AccountPatch, AuditEntry, Capabilities, Catalog, CatalogRole, Contact,
    ContactPut, ErrorCode, Invitation, InvitationStatus, Member, MemberPut, NewAccount, Portal,
    PortalError, PortalResult, PrincipalKind, RoleGrant, Services, Whoami,
};

/// The role of a user with full access (`default_access_allow=on`).
pub const FULL_ACCESS: &str = "full-access";
/// The read-only role of the account's main user.
pub const OWNER_ROLE: &str = "owner";
/// A user with no right and no full access: no login, no password e-mail.
pub const CONTACT_ROLE: &str = "contact";

/// The etag every object carries: BILLmanager has none.
const NO_ETAG: &str = "";

/// How long rolecall reports a creation's password e-mail as a pending invitation in the
/// answer of `invite` (the e-mail itself does not expire; nothing is listed afterwards).
const INVITATION_TTL_DAYS: u32 = 7;

/// A text that must never be shown: `Debug` prints `***`.
#[derive(Clone)]
struct Hidden(String);

impl fmt::Debug for Hidden {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// The username and password rolecall logs in with. `Debug` never prints them.
#[derive(Clone)]
pub struct Credentials {
    username: Hidden,
    password: Hidden,
    /// Where they came from, for error sentences (`ROLECALL_BILLMGR_USERNAME / ...`).
    source: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Credentials(***)")
    }
}

impl Credentials {
    /// The login of a BILLmanager user; `source` says where it came from.
    pub fn new(username: &str, password: &str, source: &str) -> Result<Credentials, String> {
        let username = username.trim();
        if username.is_empty() || password.is_empty() {
            return Err(format!(
                "the BILLmanager username and password are both needed ({source})"
            ));
        }
        if username.chars().any(char::is_control) || password.chars().any(char::is_control) {
            return Err(format!(
                "the BILLmanager username or password ({source}) is not usable: it holds a control character"
            ));
        }
        Ok(Credentials {
            username: Hidden(username.to_owned()),
            password: Hidden(password.to_owned()),
            source: source.to_owned(),
        })
    }

    /// Removes the credentials from a text BILLmanager may have echoed them into.
    fn redact(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for secret in [&self.password.0, &self.username.0] {
            if !secret.is_empty() {
                text = text.replace(secret.as_str(), "***");
            }
        }
        text
    }
}

/// A password generated for a new user: sent once in the creation form, never shown, logged
/// or stored. `Debug` prints nothing of it.
struct GeneratedPassword(Hidden);

impl fmt::Debug for GeneratedPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("GeneratedPassword(***)")
    }
}

impl GeneratedPassword {
    /// 24 characters drawn uniformly from letters, digits and `-_.!`, from the system's
    /// random source. The installation's password policy has not been checked against a
    /// live BILLmanager (docs/billmanager.md).
    fn generate() -> PortalResult<GeneratedPassword> {
        use ring::rand::{SecureRandom, SystemRandom};
        const ALPHABET: &[u8] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.!";
        // The largest multiple of the alphabet's size below 256: bytes above it are drawn
        // again, so every character is equally likely.
        let limit = (256 / ALPHABET.len() * ALPHABET.len()) as u8;
        let rng = SystemRandom::new();
        let mut out = String::with_capacity(24);
        let mut buf = [0u8; 64];
        while out.len() < 24 {
            rng.fill(&mut buf).map_err(|_| {
                PortalError::problem(
                    500,
                    ErrorCode::Other,
                    "the system's random source failed; no BILLmanager user was created",
                )
            })?;
            for b in buf {
                if b < limit && out.len() < 24 {
                    out.push(char::from(ALPHABET[usize::from(b) % ALPHABET.len()]));
                }
            }
        }
        Ok(GeneratedPassword(Hidden(out)))
    }
}

/// How the adapter talks to BILLmanager.
#[derive(Debug, Clone, Default)]
pub struct BillmgrOptions {
    /// Timeouts, retries, backoff and `--ca-file`, as for the portal API.
    pub http: HttpOptions,
    /// The current instant (`ROLECALL_NOW`); `None` is the clock.
    pub now: Option<Timestamp>,
}

/// A BILLmanager installation, reached through its API as one client account's user.
pub struct BillmgrPortal {
    client: reqwest::Client,
    endpoint: Url,
    origin: String,
    credentials: Credentials,
    options: BillmgrOptions,
    retry: Retry,
    /// The session id of `func=auth`, shared by every call until BILLmanager says `access`.
    session: tokio::sync::Mutex<Option<Hidden>>,
    /// The customer numbers the front end works on (one, on a well-formed run).
    bound: Mutex<Vec<String>>,
    functions: tokio::sync::OnceCell<Vec<String>>,
    requests: AtomicU64,
}

impl fmt::Debug for BillmgrPortal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BillmgrPortal")
            .field("endpoint", &self.endpoint.as_str())
            .field("credentials", &self.credentials)
            .field("session", &"***")
            .field("options", &self.options)
            .finish()
    }
}

/// A user of the client account as `func=user` lists it.
#[derive(Debug, Clone)]
struct User {
    id: String,
    email: String,
    name: String,
    enabled: bool,
    full_access: bool,
    is_self: bool,
}

/// What a member's roles ask of BILLmanager.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Access {
    full: bool,
    /// The `rights2.user` functions allowed; the rest are denied.
    rights: BTreeSet<String>,
}

impl BillmgrPortal {
    /// An adapter for the BILLmanager at `url` (`https://host:1500/billmgr`, without the
    /// `billmgr+` of the portal URL).
    pub fn new(
        url: &str,
        credentials: Credentials,
        options: BillmgrOptions,
    ) -> Result<BillmgrPortal, HttpSetupError> {
        let endpoint = parse_base_url(
            url,
            "billmgr+https:// or billmgr+http://",
            "put them in ROLECALL_BILLMGR_USERNAME and ROLECALL_BILLMGR_PASSWORD",
        )?;
        let client = build_client(&options.http)?;
        Ok(BillmgrPortal {
            client,
            origin: endpoint.origin().ascii_serialization(),
            endpoint,
            credentials,
            retry: Retry::new(&options.http),
            options,
            session: tokio::sync::Mutex::new(None),
            bound: Mutex::new(Vec::new()),
            functions: tokio::sync::OnceCell::new(),
            requests: AtomicU64::new(0),
        })
    }

    /// API requests sent so far, retries and logins included.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// The API endpoint.
    pub fn endpoint(&self) -> &str {
        self.endpoint.as_str()
    }

    fn now(&self) -> Timestamp {
        self.options.now.unwrap_or_else(Timestamp::now)
    }

    /// Posts one form and reads the answer's `doc`; `retrying` retries 429, 5xx and lost
    /// connections (never for a call that must not run twice).
    async fn post(&self, func: &str, form: &[(&str, &str)], retrying: bool) -> PortalResult<Value> {
        let place = Place {
            origin: &self.origin,
            method: "POST",
            path: func,
            options: &self.options.http,
        };
        let attempt = || async {
            self.requests.fetch_add(1, Ordering::Relaxed);
            let request = self.client.post(self.endpoint.clone()).form(form);
            place.exchange(request).await
        };
        let answer = if retrying {
            self.retry.run("POST", func, attempt).await
        } else {
            attempt().await.map_err(|failure| failure.error)
        };
        let answer = answer.map_err(|e| self.scrub(e))?;
        self.doc(func, &answer)
    }

    /// The `doc` of an answer, or the problem an answer without one stands for.
    fn doc(&self, func: &str, answer: &Answer) -> PortalResult<Value> {
        let status = answer.status.as_u16();
        let body: Option<Value> = serde_json::from_slice(&answer.body).ok();
        if answer.status.is_success()
            && let Some(doc) = body.as_ref().and_then(|b| b.get("doc"))
            && doc.is_object()
        {
            return Ok(doc.clone());
        }
        let what = if answer.status.is_success() {
            "with something that is not a BILLmanager answer (is the URL https://host:1500/billmgr?)"
                .to_owned()
        } else if status == 404 {
            "404: there is no BILLmanager API at this address (is the URL https://host:1500/billmgr?)"
                .to_owned()
        } else {
            format!("HTTP {status}")
        };
        Err(PortalError::Problem {
            status: if answer.status.is_success() {
                502
            } else {
                status
            },
            code: match status {
                401 | 403 => ErrorCode::Unauthenticated,
                429 => ErrorCode::RateLimited,
                500..=599 => ErrorCode::Unavailable,
                _ => ErrorCode::Other,
            },
            detail: format!("BILLmanager {func} on {} answered {what}", self.origin),
            errors: Vec::new(),
        })
    }

    fn scrub(&self, e: PortalError) -> PortalError {
        match e {
            PortalError::Unreachable(s) => PortalError::Unreachable(self.credentials.redact(&s)),
            PortalError::Protocol(s) => PortalError::Protocol(self.credentials.redact(&s)),
            PortalError::Unaddressable(s) => {
                PortalError::Unaddressable(self.credentials.redact(&s))
            }
            PortalError::Problem {
                status,
                code,
                detail,
                errors,
            } => PortalError::Problem {
                status,
                code,
                detail: self.credentials.redact(&detail),
                errors,
            },
        }
    }

    /// The session id, logging in when there is none.
    async fn session(&self) -> PortalResult<Hidden> {
        let mut session = self.session.lock().await;
        if let Some(id) = session.as_ref() {
            return Ok(id.clone());
        }
        let form = [
            ("func", "auth"),
            ("username", self.credentials.username.0.as_str()),
            ("password", self.credentials.password.0.as_str()),
            ("out", "json"),
            ("lang", "en"),
        ];
        let doc = self.post("auth", &form, true).await?;
        if let Some(e) = wire::error(&doc) {
            // Whatever the type, a refused login is a refused login; the message (which may
            // echo the username) is not repeated.
            return Err(PortalError::problem(
                401,
                ErrorCode::Unauthenticated,
                format!(
                    "BILLmanager on {} refused the login (error type {:?}); check {}",
                    self.origin, e.kind, self.credentials.source
                ),
            ));
        }
        let id = doc
            .get("auth")
            .and_then(|a| a.get("$id"))
            .and_then(|v| wire::value(Some(v)))
            .filter(|id| !id.trim().is_empty())
            .ok_or_else(|| {
                PortalError::Protocol(format!(
                    "BILLmanager on {} answered func=auth without a session id (doc.auth.$id)",
                    self.origin
                ))
            })?;
        let id = Hidden(id);
        *session = Some(id.clone());
        Ok(id)
    }

    /// Forgets the session `old` (unless another task has renewed it already).
    async fn forget(&self, old: &Hidden) {
        let mut session = self.session.lock().await;
        if session.as_ref().is_some_and(|s| s.0 == old.0) {
            *session = None;
        }
    }

    /// Calls a function that may run twice (a read, or a write that sets a state).
    async fn call(&self, func: &str, params: &[(&str, String)]) -> PortalResult<Value> {
        self.send(func, params, true).await
    }

    /// Calls a function that must not run twice (it creates a user): one attempt, because a
    /// retry after a lost answer would create a second one. The caller reads first.
    async fn call_once(&self, func: &str, params: &[(&str, String)]) -> PortalResult<Value> {
        self.send(func, params, false).await
    }

    async fn send(
        &self,
        func: &str,
        params: &[(&str, String)],
        retrying: bool,
    ) -> PortalResult<Value> {
        let mut renewed = false;
        loop {
            let session = self.session().await?;
            let mut form: Vec<(&str, &str)> = vec![
                ("func", func),
                ("auth", session.0.as_str()),
                ("out", "json"),
                ("lang", "en"),
            ];
            form.extend(params.iter().map(|(k, v)| (*k, v.as_str())));
            let doc = self.post(func, &form, retrying).await?;
            match wire::error(&doc) {
                None => return Ok(doc),
                // The session has idled out (or was ended): log in again, once. A call that
                // was refused for `access` did not run, so sending it again is safe.
                Some(e) if e.kind == "access" && !renewed => {
                    tracing::debug!(func, "BILLmanager session ended; logging in again");
                    self.forget(&session).await;
                    renewed = true;
                }
                Some(e) => return Err(self.refusal(func, &e, renewed)),
            }
        }
    }

    /// A `doc.error` as a problem of SPEC §4, classified by `$type` and `$object` only.
    fn refusal(&self, func: &str, e: &wire::DocError, renewed: bool) -> PortalError {
        let (status, code) = classify(e);
        let message = self.credentials.redact(&e.message);
        let about = if e.object.is_empty() {
            String::new()
        } else {
            format!(" about {:?}", e.object)
        };
        let detail = match code {
            ErrorCode::Unauthenticated if renewed => format!(
                "BILLmanager {func} on {} refused a fresh session (error type access{about}): the user of {} may not do this",
                self.origin, self.credentials.source
            ),
            _ => format!(
                "BILLmanager {func} refused (error type {:?}{about}): {message}",
                e.kind
            ),
        };
        PortalError::problem(status, code, detail)
    }

    /// The one customer number this portal serves, or why there is none.
    fn label(&self) -> PortalResult<String> {
        let bound = self.bound.lock().map(|b| b.clone()).unwrap_or_default();
        match bound.as_slice() {
            [one] => Ok(one.clone()),
            [] => Err(PortalError::problem(
                422,
                ErrorCode::Invalid,
                format!(
                    "a BILLmanager portal ({}) serves one client account whose customer number only the manifests know; pass --account NUMBER",
                    self.origin
                ),
            )),
            many => Err(PortalError::problem(
                422,
                ErrorCode::Invalid,
                format!(
                    "a BILLmanager portal ({}) serves one client account, and {} customer accounts are declared on it ({}); give each its own Portal",
                    self.origin,
                    many.len(),
                    many.join(", ")
                ),
            )),
        }
    }

    /// Checks that `customer_number` is this portal's account.
    fn check_account(&self, customer_number: &str) -> PortalResult<()> {
        {
            let mut bound = self.bound.lock().map_err(|_| {
                PortalError::problem(
                    500,
                    ErrorCode::Other,
                    "the BILLmanager adapter's state is poisoned",
                )
            })?;
            if bound.is_empty() {
                // The controller reads one account per connection.
                bound.push(customer_number.to_owned());
            }
        }
        let label = self.label()?;
        if label == customer_number {
            Ok(())
        } else {
            Err(PortalError::problem(
                404,
                ErrorCode::NotFound,
                format!(
                    "this BILLmanager portal serves customer account {label}, not {customer_number}"
                ),
            ))
        }
    }

    /// Every user of the client account (`func=user`).
    async fn users(&self) -> PortalResult<Vec<User>> {
        let doc = self.call("user", &[]).await?;
        let mut users = Vec::new();
        for item in wire::list(doc.get("elem")) {
            let id = wire::text(item, "id");
            let email = wire::text(item, "email");
            if id.is_empty() || email.is_empty() {
                continue;
            }
            users.push(User {
                id,
                email,
                name: wire::text(item, "realname"),
                enabled: wire::flag(item, "enabled"),
                full_access: wire::flag(item, "default_access_allow"),
                is_self: wire::flag(item, "self"),
            });
        }
        Ok(users)
    }

    /// The user with this e-mail (case-insensitive), read fresh.
    async fn user(&self, email: &str) -> PortalResult<Option<User>> {
        Ok(self
            .users()
            .await?
            .into_iter()
            .find(|u| u.email.eq_ignore_ascii_case(email)))
    }

    /// Whether the user is the account's main user: its `user.edit` form shows the e-mail
    /// read-only. NB: sources say the main user's e-mail and name are read-only in its form;
    /// how the JSON form marks it (`"$readonly": "yes"` on the field) is not shown by any
    /// source and has not been checked against a live BILLmanager (docs/billmanager.md).
    async fn is_main(&self, user: &User) -> PortalResult<bool> {
        let doc = self.call("user.edit", &[("elid", user.id.clone())]).await?;
        Ok(wire::attribute(&doc, "email", "readonly")
            .is_some_and(|r| matches!(r.as_str(), "yes" | "on" | "true")))
    }

    /// The user's functions and whether each is allowed (`rights2.user&elid=USER`): rows with
    /// `active` are functions; rows without are categories.
    async fn rights(&self, user_id: &str) -> PortalResult<Vec<(String, bool)>> {
        let doc = self
            .call("rights2.user", &[("elid", user_id.to_owned())])
            .await?;
        Ok(wire::list(doc.get("elem"))
            .into_iter()
            .filter(|row| row.get("active").is_some())
            .map(|row| (wire::text(row, "name"), wire::flag(row, "active")))
            .filter(|(name, _)| !name.is_empty())
            .collect())
    }

    /// The function names of the rights tree, read once from the logged-in user's tree.
    async fn functions(&self) -> PortalResult<&Vec<String>> {
        self.functions
            .get_or_try_init(|| async {
                let users = self.users().await?;
                let Some(me) = users.iter().find(|u| u.is_self).or(users.first()) else {
                    return Err(PortalError::Protocol(format!(
                        "BILLmanager on {} lists no user for the login",
                        self.origin
                    )));
                };
                let mut names: Vec<String> = self
                    .rights(&me.id)
                    .await?
                    .into_iter()
                    .map(|(n, _)| n)
                    .collect();
                names.sort();
                names.dedup();
                names.retain(|n| n != FULL_ACCESS && n != OWNER_ROLE && n != CONTACT_ROLE);
                Ok(names)
            })
            .await
    }

    /// The roles of one user as rolecall reports them.
    async fn roles_of(&self, user: &User) -> PortalResult<Vec<String>> {
        if self.is_main(user).await? {
            return Ok(vec![FULL_ACCESS.to_owned(), OWNER_ROLE.to_owned()]);
        }
        if !user.enabled {
            // Suspended: it holds nothing until it is resumed; a declared user is resumed
            // (the plan shows its roles granted).
            return Ok(Vec::new());
        }
        let mut roles: Vec<String> = self
            .rights(&user.id)
            .await?
            .into_iter()
            .filter(|(_, active)| *active)
            .map(|(n, _)| n)
            .collect();
        if user.full_access {
            roles.push(FULL_ACCESS.to_owned());
        }
        if roles.is_empty() {
            roles.push(CONTACT_ROLE.to_owned());
        }
        roles.sort();
        roles.dedup();
        Ok(roles)
    }

    fn member(&self, customer_number: &str, user: &User, roles: Vec<String>) -> Member {
        Member {
            customer_number: Some(customer_number.to_owned()),
            email: user.email.clone(),
            name: (!user.name.is_empty()).then(|| user.name.clone()),
            // Every BILLmanager user is a login of its own.
            user_linked: true,
            roles: roles
                .into_iter()
                .map(|name| RoleGrant { name, until: None })
                .collect(),
            services: Services::All,
            notifications: Vec::new(),
            invitation: None,
            etag: NO_ETAG.into(),
        }
    }

    /// Checks the declared roles and says what they ask of BILLmanager.
    async fn access(&self, email: &str, roles: &[RoleGrant]) -> PortalResult<Access> {
        let functions = self.functions().await?;
        let mut access = Access {
            full: false,
            rights: BTreeSet::new(),
        };
        for role in roles {
            match role.name.as_str() {
                OWNER_ROLE => {
                    return Err(PortalError::problem(
                        403,
                        ErrorCode::Forbidden,
                        format!(
                            "{email}: the role owner is read-only; it is BILLmanager's main user"
                        ),
                    ));
                }
                FULL_ACCESS => access.full = true,
                // What a user holds when it holds nothing else: beside other roles (the
                // planner's grants-before-revocations step sends both) it asks for nothing.
                CONTACT_ROLE => {}
                name if functions.iter().any(|f| f == name) => {
                    access.rights.insert(name.to_owned());
                }
                name => {
                    return Err(PortalError::problem(
                        422,
                        ErrorCode::UnknownRole,
                        format!(
                            "{email}: {name:?} is not a function of BILLmanager's rights tree; the roles are {FULL_ACCESS}, {CONTACT_ROLE}, {}",
                            functions.join(", ")
                        ),
                    ));
                }
            }
        }
        Ok(access)
    }

    /// Creates the user with a random password nobody sees. The caller has read that no
    /// user has this e-mail.
    async fn create(&self, email: &str, name: Option<&str>) -> PortalResult<()> {
        let password = GeneratedPassword::generate()?;
        // NB: BILLmanager's form needs a name; when none is declared the e-mail's local part
        // is used (not checked against a live BILLmanager).
        let realname = name
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_owned)
            .unwrap_or_else(|| email.split('@').next().unwrap_or(email).to_owned());
        let answer = self
            .call_once(
                "user.edit",
                &[
                    ("email", email.to_owned()),
                    ("realname", realname),
                    ("passwd", password.0.0.clone()),
                    ("confirm", password.0.0.clone()),
                    ("sok", "ok".to_owned()),
                ],
            )
            .await;
        drop(password);
        answer.map(|_| ())
    }

    /// Sets full access and the rights to exactly `want`. Rights cannot change while full
    /// access is on, so it is switched off first and, where wanted, on again last.
    async fn set_access(&self, user: &User, want: &Access) -> PortalResult<()> {
        let rights = self.rights(&user.id).await?;
        let to_change: Vec<(&str, bool)> = rights
            .iter()
            .filter(|(name, active)| want.rights.contains(name) != *active)
            .map(|(name, active)| (name.as_str(), !*active))
            .collect();
        let mut full = user.full_access;
        if !to_change.is_empty() && full {
            self.full_access(user, false).await?;
            full = false;
        }
        for (name, allow) in to_change {
            let func = if allow {
                "rights2.user.resume"
            } else {
                "rights2.user.suspend"
            };
            self.call(
                func,
                &[
                    ("elid", name.to_owned()),
                    ("plid", format!("{}/{name}", user.id)),
                ],
            )
            .await?;
        }
        if full != want.full {
            self.full_access(user, want.full).await?;
        }
        Ok(())
    }

    async fn full_access(&self, user: &User, on: bool) -> PortalResult<()> {
        self.call(
            "user.edit",
            &[
                ("elid", user.id.clone()),
                (
                    "default_access_allow",
                    if on { "on" } else { "off" }.to_owned(),
                ),
                ("sok", "ok".to_owned()),
            ],
        )
        .await
        .map(|_| ())
    }

    fn not_offered(what: &str) -> PortalError {
        PortalError::problem(
            422,
            ErrorCode::Invalid,
            format!("BILLmanager's API does not offer {what}"),
        )
    }
}

/// The SPEC §4 problem a `doc.error` stands for, by its `$type` and `$object` alone — never
/// by the localized message. NB: only `access` is shown by the sources; the other types are
/// ISPsystem's documented error types and have not been checked against a live BILLmanager.
fn classify(e: &wire::DocError) -> (u16, ErrorCode) {
    match e.kind.as_str() {
        "access" | "auth" => (401, ErrorCode::Unauthenticated),
        "perm" | "permission" | "license" => (403, ErrorCode::Forbidden),
        "exists" => (409, ErrorCode::AlreadyLinked),
        "missed" if matches!(e.object.as_str(), "elid" | "user") => (404, ErrorCode::NotFound),
        "notfound" | "not_found" => (404, ErrorCode::NotFound),
        "missed" | "value" | "empty" | "invalid" => (422, ErrorCode::Invalid),
        _ => (422, ErrorCode::Other),
    }
}

impl Portal for BillmgrPortal {
    fn bind_accounts(&self, customer_numbers: &[String]) {
        if let Ok(mut bound) = self.bound.lock() {
            let mut cns = customer_numbers.to_vec();
            cns.sort();
            cns.dedup();
            *bound = cns;
        }
    }

    async fn whoami(&self) -> PortalResult<Whoami> {
        let users = self.users().await?;
        Ok(Whoami {
            email: users.iter().find(|u| u.is_self).map(|u| u.email.clone()),
            kind: PrincipalKind::User,
        })
    }

    async fn catalog(&self) -> PortalResult<Catalog> {
        let mut roles: Vec<CatalogRole> = self
            .functions()
            .await?
            .iter()
            .map(|f| CatalogRole {
                name: f.clone(),
                description: format!(
                    "The BILLmanager function {f} and what its rights tree holds under it."
                ),
                grants_login: true,
                requires: Vec::new(),
                read_only: false,
            })
            .collect();
        roles.push(CatalogRole {
            name: FULL_ACCESS.into(),
            description: "Full access to the client account (default_access_allow).".into(),
            grants_login: true,
            requires: Vec::new(),
            read_only: false,
        });
        roles.push(CatalogRole {
            name: CONTACT_ROLE.into(),
            description:
                "A user with no right and no full access: BILLmanager sends it no password e-mail."
                    .into(),
            grants_login: false,
            requires: Vec::new(),
            read_only: false,
        });
        roles.push(CatalogRole {
            name: OWNER_ROLE.into(),
            description:
                "The account's main user: BILLmanager's own; rolecall never changes or removes it."
                    .into(),
            grants_login: true,
            requires: Vec::new(),
            read_only: true,
        });
        Ok(Catalog {
            roles,
            notification_kinds: Vec::new(),
            capabilities: Capabilities {
                scheduled_revocation: false,
                service_scopes: false,
                create_accounts: false,
                etags: false,
                contacts: false,
                member_notifications: false,
                refuse_services: true,
            },
            invitation_ttl_days: INVITATION_TTL_DAYS,
        })
    }

    async fn list_accounts(&self) -> PortalResult<Vec<Account>> {
        let label = self.label()?;
        Ok(vec![self.get_account(&label).await?])
    }

    async fn get_account(&self, customer_number: &str) -> PortalResult<Account> {
        self.check_account(customer_number)?;
        // Logging in proves the credentials and that the account is there.
        self.session().await?;
        Ok(Account {
            customer_number: customer_number.to_owned(),
            // BILLmanager's client account details are not read: none is reported, and a
            // declared displayName is refused by update_account.
            display_name: String::new(),
            time_zone: String::new(),
            etag: NO_ETAG.into(),
        })
    }

    async fn create_account(&self, account: &NewAccount, _: &str) -> PortalResult<Account> {
        Err(PortalError::problem(
            403,
            ErrorCode::Forbidden,
            format!(
                "rolecall does not create BILLmanager client accounts; customer account {} is the one the credentials log in to",
                account.customer_number
            ),
        ))
    }

    async fn update_account(
        &self,
        customer_number: &str,
        _: &AccountPatch,
        _: Option<&str>,
    ) -> PortalResult<Account> {
        Err(PortalError::problem(
            422,
            ErrorCode::Invalid,
            format!(
                "rolecall does not change BILLmanager client account details; remove displayName from customer account {customer_number}"
            ),
        ))
    }

    async fn list_members(&self, accounts: &AccountFilter) -> PortalResult<Vec<Member>> {
        let label = self.label()?;
        if let AccountFilter::Only(cns) = accounts
            && !cns.contains(&label)
        {
            return Ok(Vec::new());
        }
        let mut members = Vec::new();
        for user in self.users().await? {
            let roles = self.roles_of(&user).await?;
            members.push(self.member(&label, &user, roles));
        }
        Ok(members)
    }

    async fn put_member(
        &self,
        customer_number: &str,
        email: &str,
        member: &MemberPut,
        _: Option<&str>,
    ) -> PortalResult<Member> {
        self.check_account(customer_number)?;
        if member.notifications.as_ref().is_some_and(|n| !n.is_empty()) {
            return Err(Self::not_offered("setting another user's notifications"));
        }
        if member
            .services
            .as_ref()
            .is_some_and(|s| *s != Services::All)
        {
            return Err(Self::not_offered("setting a user's service access"));
        }
        let want = self.access(email, &member.roles).await?;
        // Read before every write: a user created by an earlier attempt whose answer was lost
        // is found here, not created again.
        let user = match self.user(email).await? {
            Some(user) => user,
            None => {
                self.create(email, member.name.as_deref()).await?;
                self.user(email).await?.ok_or_else(|| {
                    PortalError::Protocol(format!(
                        "BILLmanager accepted user.edit for {email} but does not list the user"
                    ))
                })?
            }
        };
        if self.is_main(&user).await? {
            return Err(PortalError::problem(
                403,
                ErrorCode::Forbidden,
                format!(
                    "{} is the main user of the BILLmanager account; rolecall never changes it",
                    user.email
                ),
            ));
        }
        if !user.enabled {
            self.call(
                "user.resume",
                &[("elid", wire::elids(&[&user.id])), ("sok", "ok".to_owned())],
            )
            .await?;
        }
        if let Some(name) = member.name.as_deref().map(str::trim)
            && !name.is_empty()
            && name != user.name
        {
            // NB: a partial user.edit with `elid` keeps the fields it does not name (the
            // sources send only default_access_allow this way); not checked for realname.
            self.call(
                "user.edit",
                &[
                    ("elid", user.id.clone()),
                    ("realname", name.to_owned()),
                    ("sok", "ok".to_owned()),
                ],
            )
            .await?;
        }
        self.set_access(&user, &want).await?;
        let mut roles: Vec<String> = want.rights.iter().cloned().collect();
        if want.full {
            roles.push(FULL_ACCESS.to_owned());
        }
        if roles.is_empty() {
            roles.push(CONTACT_ROLE.to_owned());
        }
        roles.sort();
        let mut after = user.clone();
        if let Some(name) = member
            .name
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty())
        {
            after.name = name.to_owned();
        }
        Ok(self.member(customer_number, &after, roles))
    }

    async fn delete_member(
        &self,
        customer_number: &str,
        email: &str,
        _: Option<&str>,
    ) -> PortalResult<()> {
        self.check_account(customer_number)?;
        let Some(user) = self.user(email).await? else {
            // Gone already (a retry whose first attempt went through).
            return Ok(());
        };
        if self.is_main(&user).await? {
            return Err(PortalError::problem(
                422,
                ErrorCode::LastAdmin,
                format!(
                    "{} is the main user of the BILLmanager account; rolecall never removes it",
                    user.email
                ),
            ));
        }
        match self
            .call(
                "user.delete",
                &[("elid", wire::elids(&[&user.id])), ("sok", "ok".to_owned())],
            )
            .await
        {
            Err(e) if e.code() == Some(ErrorCode::NotFound) => Ok(()),
            other => other.map(|_| ()),
        }
    }

    async fn invite(
        &self,
        customer_number: &str,
        email: &str,
        _resend: bool,
        _: &str,
    ) -> PortalResult<Invitation> {
        self.check_account(customer_number)?;
        // Creating the user was the invitation: BILLmanager e-mailed the password when the
        // user got access. Nothing is sent here, so nothing can be sent twice.
        let Some(user) = self.user(email).await? else {
            return Err(PortalError::problem(
                422,
                ErrorCode::Invalid,
                format!(
                    "{email}: BILLmanager has no such user; its creation is the invitation, so plan again"
                ),
            ));
        };
        let now = self.now();
        Ok(Invitation {
            id: format!("billmgr-user-{}", user.id),
            status: InvitationStatus::Pending,
            sent_at: now.to_string(),
            expires_at: (now + SignedDuration::from_hours(24 * i64::from(INVITATION_TTL_DAYS)))
                .to_string(),
        })
    }

    async fn cancel_invitation(&self, customer_number: &str, _: &str) -> PortalResult<()> {
        // No invitation is ever pending on BILLmanager (a created user is a user).
        self.check_account(customer_number)
    }

    async fn list_contacts(&self, _: &AccountFilter) -> PortalResult<Vec<Contact>> {
        Ok(Vec::new())
    }

    async fn put_contact(
        &self,
        _: &str,
        _: &str,
        _: &ContactPut,
        _: Option<&str>,
    ) -> PortalResult<Contact> {
        Err(Self::not_offered("e-mail-only contacts"))
    }

    async fn delete_contact(&self, _: &str, _: &str, _: Option<&str>) -> PortalResult<()> {
        Err(Self::not_offered("e-mail-only contacts"))
    }

    async fn audit(&self, customer_number: &str) -> PortalResult<Vec<AuditEntry>> {
        Err(PortalError::problem(
            404,
            ErrorCode::NotFound,
            format!(
                "rolecall reads no audit log from BILLmanager (customer account {customer_number}); see BILLmanager's own logs"
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_classified_by_type_and_object_never_by_text() {
        let e = |kind: &str, object: &str, message: &str| wire::DocError {
            kind: kind.into(),
            object: object.into(),
            message: message.into(),
        };
        assert_eq!(
            classify(&e("access", "", "x")).1,
            ErrorCode::Unauthenticated
        );
        assert_eq!(
            classify(&e("exists", "email", "x")).1,
            ErrorCode::AlreadyLinked
        );
        assert_eq!(classify(&e("missed", "elid", "x")).1, ErrorCode::NotFound);
        assert_eq!(classify(&e("value", "email", "x")).1, ErrorCode::Invalid);
        // The same text under another type means what the type says.
        assert_eq!(
            classify(&e("value", "", "Access denied, not found")).1,
            ErrorCode::Invalid
        );
    }

    #[test]
    fn secrets_never_print() {
        let c = Credentials::new("main@acme.example", "pa55-secret", "env").unwrap();
        let text = format!("{c:?} {c:#?}");
        assert!(
            !text.contains("pa55-secret") && !text.contains("main@acme"),
            "{text}"
        );
        assert_eq!(
            c.redact("bad pa55-secret for main@acme.example"),
            "bad *** for ***"
        );
        let p = GeneratedPassword::generate().unwrap();
        assert_eq!(p.0.0.chars().count(), 24);
        let shown = format!("{p:?} {:?}", p.0);
        assert!(!shown.contains(&p.0.0), "{shown}");
        let q = GeneratedPassword::generate().unwrap();
        assert_ne!(p.0.0, q.0.0);
        assert!(Credentials::new("", "x", "env").is_err());
        let portal = BillmgrPortal::new(
            "https://billing.example:1500/billmgr",
            c.clone(),
            BillmgrOptions::default(),
        )
        .unwrap();
        let text = format!("{portal:?}");
        assert!(
            !text.contains("pa55-secret") && !text.contains("main@acme"),
            "{text}"
        );
        let err = BillmgrPortal::new(
            "https://u:pw@h.example/billmgr",
            c,
            BillmgrOptions::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(!err.contains("pw"), "{err}");
    }
}
