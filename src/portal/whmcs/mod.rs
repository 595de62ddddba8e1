//! The WHMCS adapter (SPEC §5a): the portal operations rolecall needs, carried out through the
//! WHMCS API (`POST <base>/includes/api.php`, form-encoded, `action=<Name>`).
//!
//! What maps to what:
//! - a customer account is a WHMCS client; its `customerNumber` is the client id;
//! - roles are WHMCS permission names, verbatim; every permission lets its holder log in;
//! - the client's owner user is a member holding every permission plus the read-only role
//!   `owner`: the planner never touches it and this adapter refuses to change or remove it;
//! - members are the users associated with the client, plus the invitations rolecall has sent
//!   and recorded (WHMCS cannot list them): a member is added by inviting them
//!   (`CreateClientInvite`), changed with `UpdateUserPermissions` (the whole set) and removed with
//!   `DeleteUserClient`;
//! - contacts are WHMCS contacts; notification kinds are their six e-mail preferences.
//!
//! WHMCS has no ETags: rolecall reads, compares and writes, so a change made in WHMCS between
//! `plan` and `apply` is overwritten. It has no scheduled revocation either: rolecall revokes on
//! the date itself.

mod invitations;
mod mapping;
mod operations;
mod reads;
mod transport;
mod wire;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use reqwest::Url;
use serde_json::Value;

pub use invitations::{
    FileInvitations, INVITATION_TTL_DAYS, InvitationRecord, InvitationStore, InvitationStoreError,
    MemoryInvitations,
};

use super::http::{Answer, HttpOptions, HttpSetupError, Retry, build_client, parse_base_url};
use super::{
    Account, AccountFilter, AccountPatch, AuditEntry, Capabilities, Catalog, CatalogRole, Contact,
    ContactPut, ErrorCode, Invitation, InvitationStatus, Member, MemberPut, NewAccount, Portal,
    PortalError, PortalResult, PrincipalKind, RoleGrant, Services, Whoami,
};
use crate::domain::{email_key, same_email};
use mapping::{account_of, contact_of, domain_rule, grants, preferences};

/// The read-only role of a client's owner user.
pub const OWNER_ROLE: &str = "owner";

/// WHMCS's permissions (`GetPermissionsList`), used when the installation does not list them.
pub const PERMISSIONS: [&str; 13] = [
    "profile",
    "contacts",
    "products",
    "manageproducts",
    "productsso",
    "domains",
    "managedomains",
    "invoices",
    "quotes",
    "tickets",
    "affiliates",
    "emails",
    "orders",
];

/// rolecall's notification kinds and the WHMCS e-mail preference each one is.
pub const NOTIFICATION_PREFERENCES: [(&str, &str); 6] = [
    ("general", "general"),
    ("products", "product"),
    ("domains", "domain"),
    ("invoices", "invoice"),
    ("support", "support"),
    ("affiliates", "affiliate"),
];

/// The etag every WHMCS object carries: WHMCS has none, so nothing can go stale by it.
const NO_ETAG: &str = "";

/// The WHMCS API credentials. `Debug` never prints them.
#[derive(Clone)]
pub struct Credentials {
    identifier: String,
    secret: String,
    accesskey: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Credentials(***)")
    }
}

/// Why API credentials cannot be used. The sentences name where the credentials came from,
/// never a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialsError {
    /// The identifier or the secret is empty.
    #[error("the WHMCS API identifier and secret are both needed ({origin})")]
    Missing { origin: String },
    /// The identifier or the secret holds a space or a character that is not printable ASCII.
    #[error(
        "the WHMCS API identifier or secret ({origin}) is not usable: it must be printable ASCII without spaces"
    )]
    Unusable { origin: String },
    /// The access key holds a space or a character that is not printable ASCII.
    #[error(
        "the WHMCS API access key ({origin}) is not usable: it must be printable ASCII without spaces"
    )]
    UnusableAccessKey { origin: String },
}

impl Credentials {
    /// The API credential pair, and the access key where the installation requires one.
    /// `source` says where they came from, for the error sentence.
    pub fn new(
        identifier: &str,
        secret: &str,
        accesskey: Option<&str>,
        source: &str,
    ) -> Result<Credentials, CredentialsError> {
        let usable = |v: &str| !v.is_empty() && v.bytes().all(|b| b.is_ascii_graphic());
        let source = || source.to_owned();
        let (identifier, secret) = (identifier.trim(), secret.trim());
        if identifier.is_empty() || secret.is_empty() {
            return Err(CredentialsError::Missing { origin: source() });
        }
        if !usable(identifier) || !usable(secret) {
            return Err(CredentialsError::Unusable { origin: source() });
        }
        let accesskey = accesskey.map(str::trim).filter(|k| !k.is_empty());
        if accesskey.is_some_and(|k| !usable(k)) {
            return Err(CredentialsError::UnusableAccessKey { origin: source() });
        }
        Ok(Credentials {
            identifier: identifier.to_owned(),
            secret: secret.to_owned(),
            accesskey: accesskey.map(str::to_owned),
        })
    }

    /// Removes the credentials from a text that an installation may have echoed them into.
    fn redact(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for secret in [
            Some(&self.secret),
            Some(&self.identifier),
            self.accesskey.as_ref(),
        ]
        .into_iter()
        .flatten()
        {
            text = text.replace(secret.as_str(), "***");
        }
        text
    }
}

/// How the adapter talks to WHMCS.
#[derive(Debug, Clone)]
pub struct WhmcsOptions {
    /// Timeouts, retries, backoff and `--ca-file`, as for the portal API.
    pub http: HttpOptions,
    /// Requests per second at most; `None` sends as fast as WHMCS answers.
    pub rate_limit: Option<f64>,
    /// Items per page (`limitnum`); WHMCS answers 25 when it is not sent, rolecall asks for
    /// [`reads::BULK_PAGE`].
    pub page_size: u32,
    /// The current instant for invitation records (`ROLECALL_NOW`); `None` is the clock.
    pub now: Option<Timestamp>,
}

impl Default for WhmcsOptions {
    fn default() -> Self {
        WhmcsOptions {
            http: HttpOptions::default(),
            rate_limit: None,
            page_size: reads::BULK_PAGE,
            now: None,
        }
    }
}

/// Spaces requests out to at most `rate` per second, across every task of the adapter.
struct Throttle {
    interval: Option<Duration>,
    next: tokio::sync::Mutex<tokio::time::Instant>,
}

impl Throttle {
    fn new(rate: Option<f64>) -> Throttle {
        let interval = rate
            .filter(|r| r.is_finite() && *r > 0.0)
            .map(|r| Duration::from_secs_f64(1.0 / r));
        Throttle {
            interval,
            next: tokio::sync::Mutex::new(tokio::time::Instant::now()),
        }
    }

    async fn wait(&self) {
        let Some(interval) = self.interval else {
            return;
        };
        let at = {
            let mut next = self.next.lock().await;
            let at = (*next).max(tokio::time::Instant::now());
            *next = at + interval;
            at
        };
        tokio::time::sleep_until(at).await;
    }
}

/// A WHMCS installation, reached through its API.
pub struct WhmcsPortal {
    client: reqwest::Client,
    endpoint: Url,
    origin: String,
    credentials: Credentials,
    options: WhmcsOptions,
    retry: Retry,
    throttle: Throttle,
    invitations: Arc<dyn InvitationStore>,
    /// Permissions of members written but not invited yet (`put_member`, then `invite`):
    /// WHMCS creates the link only with the invitation.
    planned: Mutex<HashMap<(String, String), PlannedMember>>,
    permissions: tokio::sync::OnceCell<Vec<String>>,
    /// The client ids of the last `GetClients` listing: a read of all clients needs them
    /// again, and a read of some tells by them whether the bulk lists cost less.
    clients: Mutex<Option<Vec<String>>>,
    requests: AtomicU64,
}

impl fmt::Debug for WhmcsPortal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WhmcsPortal")
            .field("endpoint", &self.endpoint.as_str())
            .field("credentials", &self.credentials)
            .field("options", &self.options)
            .finish()
    }
}

/// The declared name and permissions of a member not invited yet.
type PlannedMember = (Option<String>, Vec<String>);

/// A user of WHMCS as `GetUsers` shows it, with its link to one client.
struct UserLink {
    id: String,
    email: String,
    name: String,
    associated: bool,
    owner: bool,
}

impl WhmcsPortal {
    /// An adapter for the WHMCS installation at `base_url` (`https://host/whmcs/`, without the
    /// `whmcs+` of the portal URL), keeping its invitation record in `invitations`.
    pub fn new(
        base_url: &str,
        credentials: Credentials,
        invitations: Arc<dyn InvitationStore>,
        options: WhmcsOptions,
    ) -> Result<WhmcsPortal, HttpSetupError> {
        let mut base = parse_base_url(
            base_url,
            "whmcs+https:// or whmcs+http://",
            "put them in ROLECALL_WHMCS_IDENTIFIER and ROLECALL_WHMCS_SECRET",
        )?;
        let mut path = base.path().trim_end_matches('/').to_owned();
        path.push_str("/includes/api.php");
        base.set_path(&path);
        let client = build_client(&options.http)?;
        Ok(WhmcsPortal {
            client,
            origin: base.origin().ascii_serialization(),
            endpoint: base,
            credentials,
            retry: Retry::new(&options.http),
            throttle: Throttle::new(options.rate_limit),
            options,
            invitations,
            planned: Mutex::new(HashMap::new()),
            permissions: tokio::sync::OnceCell::new(),
            clients: Mutex::new(None),
            requests: AtomicU64::new(0),
        })
    }

    /// API requests sent so far, retries included.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// The API endpoint (`…/includes/api.php`).
    pub fn endpoint(&self) -> &str {
        self.endpoint.as_str()
    }

    fn now(&self) -> Timestamp {
        self.options.now.unwrap_or_else(Timestamp::now)
    }

    async fn permission_names(&self) -> PortalResult<&Vec<String>> {
        self.permissions
            .get_or_try_init(|| async {
                let answer = self.call("GetPermissionsList", &[]).await?;
                let mut names = wire::permissions(answer.get("permissions"));
                if names.is_empty() {
                    names = PERMISSIONS.iter().map(|p| p.to_string()).collect();
                }
                Ok(names)
            })
            .await
    }

    async fn client_ids(&self, filter: &AccountFilter) -> PortalResult<Vec<String>> {
        match filter {
            AccountFilter::Only(ids) => Ok(ids.clone()),
            AccountFilter::All => match self.known_clients() {
                Some(ids) => Ok(ids),
                None => Ok(self
                    .list_accounts()
                    .await?
                    .into_iter()
                    .map(|a| a.customer_number)
                    .collect()),
            },
        }
    }

    /// The user with exactly this e-mail (`GetUsers` searches by prefix) and its link to the
    /// client, if the user exists.
    async fn user(&self, client_id: &str, email: &str) -> PortalResult<Option<UserLink>> {
        let users = self
            .all_pages("GetUsers", &[("search", email.to_owned())], "users", "user")
            .await?;
        let Some(user) = users
            .iter()
            .find(|u| same_email(wire::text(u, "email"), email))
        else {
            return Ok(None);
        };
        let id = wire::id(user.get("id")).ok_or_else(|| {
            PortalError::Protocol(format!(
                "WHMCS GetUsers answered a user without an id for {email}"
            ))
        })?;
        let link = wire::list(user.get("clients"), "client")
            .into_iter()
            .find(|c| wire::id(c.get("id")).as_deref() == Some(client_id));
        Ok(Some(UserLink {
            id,
            email: wire::text(user, "email").to_owned(),
            name: wire::person_name(user),
            associated: link.is_some(),
            owner: link.is_some_and(wire::is_owner),
        }))
    }

    fn store_error(e: InvitationStoreError) -> PortalError {
        PortalError::problem(500, ErrorCode::Other, e.to_string())
    }

    fn invitation_of(&self, record: &InvitationRecord) -> Invitation {
        Invitation {
            id: record.id(),
            status: if record.expired(self.now()) {
                InvitationStatus::Expired
            } else {
                InvitationStatus::Pending
            },
            sent_at: record.sent_at.to_string(),
            expires_at: record.expires_at.to_string(),
        }
    }

    fn pending_member(&self, client_id: &str, record: &InvitationRecord) -> Member {
        Member {
            customer_number: Some(client_id.to_owned()),
            email: record.email.clone(),
            name: record.name.clone(),
            user_linked: false,
            roles: grants(&record.permissions),
            services: Services::All,
            notifications: Vec::new(),
            invitation: Some(self.invitation_of(record)),
            etag: NO_ETAG.into(),
        }
    }

    fn record(&self, client_id: &str, email: &str) -> PortalResult<Option<InvitationRecord>> {
        Ok(self
            .invitations
            .list(client_id)
            .map_err(Self::store_error)?
            .into_iter()
            .find(|r| r.is_for(client_id, email)))
    }

    fn planned_key(client_id: &str, email: &str) -> (String, String) {
        (client_id.to_owned(), email_key(email))
    }

    /// Checks that every role is a WHMCS permission rolecall may set.
    async fn permissions_to_set(
        &self,
        email: &str,
        roles: &[RoleGrant],
    ) -> PortalResult<Vec<String>> {
        let all = self.permission_names().await?;
        let mut set = Vec::new();
        for role in roles {
            if role.name == OWNER_ROLE {
                return Err(PortalError::problem(
                    422,
                    ErrorCode::Forbidden,
                    format!(
                        "{email}: the role owner is read-only; WHMCS sets a client's owner itself"
                    ),
                ));
            }
            if !all.contains(&role.name) {
                return Err(PortalError::problem(
                    422,
                    ErrorCode::UnknownRole,
                    format!(
                        "{email}: {:?} is not a WHMCS permission; the permissions are {}",
                        role.name,
                        all.join(", ")
                    ),
                ));
            }
            set.push(role.name.clone());
        }
        set.sort();
        set.dedup();
        Ok(set)
    }

    async fn find_contact(&self, client_id: &str, email: &str) -> PortalResult<Option<Value>> {
        let contacts = self
            .all_pages(
                "GetContacts",
                &[
                    ("userid", client_id.to_owned()),
                    ("email", email.to_owned()),
                ],
                "contacts",
                "contact",
            )
            .await?;
        Ok(contacts
            .into_iter()
            .find(|c| same_email(wire::text(c, "email"), email)))
    }
}

impl WhmcsPortal {
    /// What the adapter makes of one API answer, without the network: the outcome or error
    /// sentence of [`WhmcsPortal::read`], then, for an answer that succeeded, what each
    /// action's reading takes out of it (clients, client details and their users, users and
    /// their clients, contacts, permissions, counts): every value made, or the error sentence,
    /// for the fuzz target (`rolecall::fuzzing::whmcs_response`) to check.
    pub(crate) fn read_for_fuzzing(&self, status: u16, body: &[u8]) -> Result<Vec<String>, String> {
        let answer = Answer {
            status: reqwest::StatusCode::from_u16(status).unwrap_or(reqwest::StatusCode::OK),
            problem_json: false,
            retry_after: None,
            body: axum::body::Bytes::copy_from_slice(body),
        };
        let value = match self.read("GetClients", &answer) {
            Ok(value) => value,
            Err(e) => return Err(self.scrub(e).to_string()),
        };
        let mut seen = Vec::new();
        seen.extend(wire::count(value.get("totalresults")).map(|n| n.to_string()));
        seen.extend(wire::count(value.get("numreturned")).map(|n| n.to_string()));
        for client in wire::list(value.get("clients"), "client") {
            seen.extend(account_of(client).map(|a| format!("{a:?}")));
        }
        let client = value.get("client").unwrap_or(&value);
        seen.extend(account_of(client).map(|a| format!("{a:?}")));
        seen.extend(wire::id(client.get("owner_user_id")));
        for user in wire::list(client.get("users"), "user")
            .into_iter()
            .chain(wire::list(value.get("users"), "user"))
        {
            seen.extend(wire::id(user.get("id")));
            seen.push(wire::text(user, "email").to_owned());
            seen.push(wire::is_owner(user).to_string());
            let name = wire::person_name(user);
            let (first, last) = wire::split_name(&name);
            seen.extend([name, first, last]);
            for link in wire::list(user.get("clients"), "client") {
                seen.extend(wire::id(link.get("id")));
                seen.push(wire::is_owner(link).to_string());
            }
        }
        for contact in wire::list(value.get("contacts"), "contact") {
            seen.extend(wire::id(contact.get("id")));
            seen.push(format!("{:?}", contact_of("1", contact)));
        }
        seen.extend(wire::permissions(value.get("permissions")));
        Ok(seen)
    }
}

#[cfg(test)]
mod tests;
