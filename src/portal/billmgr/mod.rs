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

mod operations;
mod transport;
mod wire;

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use jiff::{SignedDuration, Timestamp};
use reqwest::Url;
use serde_json::Value;

use super::http::{Answer, HttpOptions, HttpSetupError, Retry, build_client, parse_base_url};
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

/// Why a BILLmanager login cannot be used. The sentences name where it came from, never a
/// value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialsError {
    /// The username or the password is empty.
    #[error("the BILLmanager username and password are both needed ({origin})")]
    Missing { origin: String },
    /// The username or the password holds a control character.
    #[error(
        "the BILLmanager username or password ({origin}) is not usable: it holds a control character"
    )]
    ControlCharacter { origin: String },
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Credentials(***)")
    }
}

impl Credentials {
    /// The login of a BILLmanager user; `source` says where it came from.
    pub fn new(
        username: &str,
        password: &str,
        source: &str,
    ) -> Result<Credentials, CredentialsError> {
        let username = username.trim();
        if username.is_empty() || password.is_empty() {
            return Err(CredentialsError::Missing {
                origin: source.to_owned(),
            });
        }
        if username.chars().any(char::is_control) || password.chars().any(char::is_control) {
            return Err(CredentialsError::ControlCharacter {
                origin: source.to_owned(),
            });
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

#[cfg(test)]
mod tests;
