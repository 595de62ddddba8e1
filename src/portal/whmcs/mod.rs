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

use super::http::{
    Answer, HttpOptions, HttpSetupError, Place, Retry, build_client, parse_base_url,
};
use super::{
    Account, AccountFilter, AccountPatch, AuditEntry, Capabilities, Catalog, CatalogRole, Contact,
    ContactPut, ErrorCode, Invitation, InvitationStatus, Member, MemberPut, NewAccount, Portal,
    PortalError, PortalResult, PrincipalKind, RoleGrant, Services, Whoami,
};
use crate::domain::{email_key, same_email};

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

impl Credentials {
    /// The API credential pair, and the access key where the installation requires one.
    /// `source` says where they came from, for the error sentence.
    pub fn new(
        identifier: &str,
        secret: &str,
        accesskey: Option<&str>,
        source: &str,
    ) -> Result<Credentials, String> {
        let usable = |v: &str| !v.is_empty() && v.bytes().all(|b| b.is_ascii_graphic());
        let (identifier, secret) = (identifier.trim(), secret.trim());
        if identifier.is_empty() || secret.is_empty() {
            return Err(format!(
                "the WHMCS API identifier and secret are both needed ({source})"
            ));
        }
        if !usable(identifier) || !usable(secret) {
            return Err(format!(
                "the WHMCS API identifier or secret ({source}) is not usable: it must be printable ASCII without spaces"
            ));
        }
        let accesskey = accesskey.map(str::trim).filter(|k| !k.is_empty());
        if accesskey.is_some_and(|k| !usable(k)) {
            return Err(format!(
                "the WHMCS API access key ({source}) is not usable: it must be printable ASCII without spaces"
            ));
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
    /// Items per page (`limitnum`); WHMCS answers 25 when it is not sent.
    pub page_size: u32,
    /// The current instant for invitation records (`ROLECALL_NOW`); `None` is the clock.
    pub now: Option<Timestamp>,
}

impl Default for WhmcsOptions {
    fn default() -> Self {
        WhmcsOptions {
            http: HttpOptions::default(),
            rate_limit: None,
            page_size: 25,
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

    /// Calls one API action and returns its answer when WHMCS says it succeeded.
    async fn call(&self, action: &str, params: &[(&str, String)]) -> PortalResult<Value> {
        self.send(action, params, true).await
    }

    /// Calls an action that must not run twice (it sends an e-mail or creates an object) and
    /// that WHMCS gives no idempotency key for: one attempt, because a retry after an answer
    /// that was lost would do it again.
    async fn call_once(&self, action: &str, params: &[(&str, String)]) -> PortalResult<Value> {
        self.send(action, params, false).await
    }

    async fn send(
        &self,
        action: &str,
        params: &[(&str, String)],
        retrying: bool,
    ) -> PortalResult<Value> {
        let mut form: Vec<(&str, &str)> = vec![
            ("action", action),
            ("identifier", &self.credentials.identifier),
            ("secret", &self.credentials.secret),
            ("responsetype", "json"),
        ];
        if let Some(key) = &self.credentials.accesskey {
            form.push(("accesskey", key));
        }
        form.extend(params.iter().map(|(k, v)| (*k, v.as_str())));
        let place = Place {
            origin: &self.origin,
            method: "POST",
            path: action,
            options: &self.options.http,
        };
        let attempt = || async {
            self.throttle.wait().await;
            self.requests.fetch_add(1, Ordering::Relaxed);
            let request = self.client.post(self.endpoint.clone()).form(&form);
            place.exchange(request).await
        };
        let answer = if retrying {
            self.retry.run("POST", action, attempt).await
        } else {
            attempt().await.map_err(|failure| failure.error)
        };
        let answer = answer.map_err(|e| self.scrub(e))?;
        self.read(action, &answer)
    }

    /// The answer of `action` as JSON, or the error it stands for.
    fn read(&self, action: &str, answer: &Answer) -> PortalResult<Value> {
        let status = answer.status.as_u16();
        let body: Option<Value> = serde_json::from_slice(&answer.body).ok();
        match body.as_ref().map(wire::outcome) {
            Some(wire::Outcome::Success) if answer.status.is_success() => {
                Ok(body.unwrap_or(Value::Null))
            }
            Some(wire::Outcome::Error(message)) if !message.is_empty() => {
                Err(self.refusal(action, message))
            }
            _ => {
                let what = if answer.status.is_success() {
                    "with something that is not a WHMCS API answer (is the URL the WHMCS root?)"
                        .to_owned()
                } else if status == 404 {
                    // Not an object that is gone: there is no API here at all.
                    "404: there is no WHMCS API at this address (is the URL the WHMCS root?)"
                        .to_owned()
                } else {
                    format!("HTTP {status} without a WHMCS message")
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
                    detail: format!("WHMCS {action} on {} answered {what}", self.origin),
                    errors: Vec::new(),
                })
            }
        }
    }

    /// A WHMCS error message as a problem of SPEC §4.
    fn refusal(&self, action: &str, message: &str) -> PortalError {
        let message = self.credentials.redact(message);
        let (status, code) = classify(&message);
        let detail = match code {
            ErrorCode::Unauthenticated => format!(
                "WHMCS on {} refused the API credentials ({message}); check ROLECALL_WHMCS_IDENTIFIER, ROLECALL_WHMCS_SECRET, ROLECALL_WHMCS_ACCESSKEY and the API IP allow-list",
                self.origin
            ),
            _ => format!("WHMCS {action}: {message}"),
        };
        PortalError::problem(status, code, detail)
    }

    fn scrub(&self, e: PortalError) -> PortalError {
        match e {
            PortalError::Unreachable(s) => PortalError::Unreachable(self.credentials.redact(&s)),
            PortalError::Protocol(s) => PortalError::Protocol(self.credentials.redact(&s)),
            other => other,
        }
    }

    /// Every item of a paged action: follows `limitstart` through `totalresults`.
    async fn all_pages(
        &self,
        action: &str,
        params: &[(&str, String)],
        list: &str,
        item: &str,
    ) -> PortalResult<Vec<Value>> {
        let mut items = Vec::new();
        let mut start: u64 = 0;
        loop {
            let mut page_params = params.to_vec();
            page_params.push(("limitstart", start.to_string()));
            page_params.push(("limitnum", self.options.page_size.max(1).to_string()));
            let mut answer = self.call(action, &page_params).await?;
            let total = wire::count(answer.get("totalresults"));
            let page: Vec<Value> = wire::list(answer.get(list), item)
                .into_iter()
                .cloned()
                .collect();
            if let Some(obj) = answer.as_object_mut() {
                obj.remove(list);
            }
            let returned = page.len() as u64;
            items.extend(page);
            start += returned;
            // A page that brings nothing ends the read even if `totalresults` says more: an
            // installation that miscounts must not loop forever.
            match total {
                Some(total) if start < total && returned > 0 => {}
                _ => return Ok(items),
            }
        }
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
            AccountFilter::All => Ok(self
                .list_accounts()
                .await?
                .into_iter()
                .map(|a| a.customer_number)
                .collect()),
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

    /// The members of one client: its users, then the invitations still outstanding. A user
    /// now associated ends the record of their invitation.
    async fn client_members(&self, client_id: &str) -> PortalResult<Vec<Member>> {
        let answer = self
            .call("GetClientsDetails", &[("clientid", client_id.to_owned())])
            .await?;
        let client = answer.get("client").unwrap_or(&answer);
        let owner_id = wire::id(client.get("owner_user_id"));
        let all = self.permission_names().await?.clone();
        let mut members = Vec::new();
        for user in wire::list(client.get("users"), "user") {
            let email = wire::text(user, "email").to_owned();
            let Some(id) = wire::id(user.get("id")) else {
                continue;
            };
            if email.is_empty() {
                continue;
            }
            let owner = wire::is_owner(user) || owner_id.as_deref() == Some(id.as_str());
            let mut roles = if owner {
                // The owner holds everything; WHMCS does not keep permissions for it.
                let mut r = all.clone();
                r.push(OWNER_ROLE.to_owned());
                r
            } else {
                let p = self
                    .call(
                        "GetUserPermissions",
                        &[("user_id", id.clone()), ("client_id", client_id.to_owned())],
                    )
                    .await?;
                wire::permissions(p.get("permissions"))
            };
            roles.sort();
            let name = wire::person_name(user);
            members.push(Member {
                customer_number: Some(client_id.to_owned()),
                email,
                name: (!name.is_empty()).then_some(name),
                user_linked: true,
                roles: grants(&roles),
                services: Services::All,
                notifications: Vec::new(),
                invitation: None,
                etag: NO_ETAG.into(),
            });
        }
        let records = self
            .invitations
            .list(client_id)
            .map_err(Self::store_error)?;
        for record in records {
            let joined = members.iter().any(|m| same_email(&m.email, &record.email));
            if joined {
                self.invitations
                    .remove(client_id, &record.email)
                    .map_err(Self::store_error)?;
            } else {
                members.push(self.pending_member(client_id, &record));
            }
        }
        Ok(members)
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

/// The SPEC §4 problem a WHMCS error message stands for.
fn classify(message: &str) -> (u16, ErrorCode) {
    let m = message.to_ascii_lowercase();
    if m.contains("authentication failed")
        || m.contains("invalid or missing credentials")
        || m.contains("invalid ip")
        || m.contains("invalid access key")
    {
        (401, ErrorCode::Unauthenticated)
    } else if m.contains("already associated") {
        (409, ErrorCode::AlreadyLinked)
    } else if m.contains("cannot remove the account owner") {
        (422, ErrorCode::LastAdmin)
    } else if m.contains("client owner") {
        (403, ErrorCode::Forbidden)
    } else if m.contains("not found") || m.contains("not associated") {
        (404, ErrorCode::NotFound)
    } else if m.contains("permission") && m.contains("invalid") {
        (422, ErrorCode::UnknownRole)
    } else if m.contains("rate limit") || m.contains("too many requests") {
        (429, ErrorCode::RateLimited)
    } else if m.contains("not allowed") || m.contains("access denied") {
        (403, ErrorCode::Forbidden)
    } else {
        (422, ErrorCode::Invalid)
    }
}

fn grants(names: &[String]) -> Vec<RoleGrant> {
    names
        .iter()
        .map(|n| RoleGrant {
            name: n.clone(),
            until: None,
        })
        .collect()
}

fn account_of(client: &Value) -> Option<Account> {
    let id = wire::id(client.get("id").or_else(|| client.get("userid")))?;
    let company = wire::text(client, "companyname").trim();
    let display_name = if company.is_empty() {
        wire::person_name(client)
    } else {
        company.to_owned()
    };
    Some(Account {
        customer_number: id,
        display_name,
        // WHMCS keeps no time zone per client: none is reported, and the planner reads the
        // account's dates in the declared one.
        time_zone: String::new(),
        etag: NO_ETAG.into(),
    })
}

fn contact_of(client_id: &str, c: &Value) -> Contact {
    let notifications = NOTIFICATION_PREFERENCES
        .iter()
        .filter(|(_, pref)| wire::flag(c.get(format!("{pref}emails").as_str())))
        .map(|(kind, _)| kind.to_string())
        .collect();
    Contact {
        customer_number: Some(client_id.to_owned()),
        email: wire::text(c, "email").to_owned(),
        name: wire::person_name(c),
        notifications,
        etag: NO_ETAG.into(),
    }
}

fn preferences(notifications: &[String]) -> PortalResult<Vec<(&'static str, String)>> {
    for n in notifications {
        if !NOTIFICATION_PREFERENCES.iter().any(|(kind, _)| kind == n) {
            return Err(PortalError::problem(
                422,
                ErrorCode::UnknownNotificationKind,
                format!(
                    "{n:?} is not a notification kind WHMCS has; it has {}",
                    NOTIFICATION_PREFERENCES.map(|(k, _)| k).join(", ")
                ),
            ));
        }
    }
    Ok(NOTIFICATION_PREFERENCES
        .iter()
        .map(|(kind, pref)| {
            let on = notifications.iter().any(|n| n == kind);
            (
                preference_field(pref),
                if on { "1" } else { "0" }.to_owned(),
            )
        })
        .collect())
}

fn preference_field(pref: &str) -> &'static str {
    match pref {
        "general" => "email_preferences[general]",
        "product" => "email_preferences[product]",
        "domain" => "email_preferences[domain]",
        "invoice" => "email_preferences[invoice]",
        "support" => "email_preferences[support]",
        _ => "email_preferences[affiliate]",
    }
}

/// What WHMCS answers when no address of a client would keep domain e-mails.
fn domain_rule(client_id: &str, e: PortalError) -> PortalError {
    match &e {
        PortalError::Problem { detail, .. } if detail.to_ascii_lowercase().contains("domain") => {
            PortalError::problem(
                422,
                ErrorCode::Invalid,
                format!(
                    "WHMCS requires at least one address of client {client_id} to receive domain e-mails; keep the notification kind domains on one of its contacts ({detail})"
                ),
            )
        }
        _ => e,
    }
}

impl Portal for WhmcsPortal {
    async fn whoami(&self) -> PortalResult<Whoami> {
        // The API credentials are an administrator's: they reach every client. Reading the
        // permission list checks that they work.
        self.permission_names().await?;
        Ok(Whoami {
            email: None,
            kind: PrincipalKind::Operator,
        })
    }

    async fn catalog(&self) -> PortalResult<Catalog> {
        let mut roles: Vec<CatalogRole> = self
            .permission_names()
            .await?
            .iter()
            .map(|p| CatalogRole {
                name: p.clone(),
                description: format!("The WHMCS permission {p}; every WHMCS user may log in."),
                grants_login: true,
                requires: Vec::new(),
                read_only: false,
            })
            .collect();
        roles.push(CatalogRole {
            name: OWNER_ROLE.into(),
            description: "The client's owner user: holds every permission; WHMCS sets it, rolecall never changes or removes it.".into(),
            grants_login: true,
            requires: Vec::new(),
            read_only: true,
        });
        Ok(Catalog {
            roles,
            notification_kinds: NOTIFICATION_PREFERENCES
                .iter()
                .map(|(k, _)| k.to_string())
                .collect(),
            capabilities: Capabilities {
                scheduled_revocation: false,
                service_scopes: false,
                create_accounts: false,
                etags: false,
                ..Capabilities::default()
            },
            invitation_ttl_days: INVITATION_TTL_DAYS,
        })
    }

    async fn list_accounts(&self) -> PortalResult<Vec<Account>> {
        let clients = self
            .all_pages("GetClients", &[], "clients", "client")
            .await?;
        Ok(clients.iter().filter_map(account_of).collect())
    }

    async fn get_account(&self, customer_number: &str) -> PortalResult<Account> {
        let answer = self
            .call(
                "GetClientsDetails",
                &[("clientid", customer_number.to_owned())],
            )
            .await?;
        account_of(answer.get("client").unwrap_or(&answer)).ok_or_else(|| {
            PortalError::Protocol(format!(
                "WHMCS GetClientsDetails answered no client id for client {customer_number}"
            ))
        })
    }

    async fn create_account(&self, account: &NewAccount, _: &str) -> PortalResult<Account> {
        Err(PortalError::problem(
            403,
            ErrorCode::Forbidden,
            format!(
                "rolecall does not create WHMCS clients; create client {} in WHMCS first",
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
                "rolecall does not change WHMCS client details; remove displayName from customer account {customer_number} or make it match the client's company name in WHMCS"
            ),
        ))
    }

    async fn list_members(&self, accounts: &AccountFilter) -> PortalResult<Vec<Member>> {
        let mut members = Vec::new();
        for client_id in self.client_ids(accounts).await? {
            members.extend(self.client_members(&client_id).await?);
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
        if member.notifications.as_ref().is_some_and(|n| !n.is_empty()) {
            return Err(PortalError::problem(
                422,
                ErrorCode::Invalid,
                format!(
                    "{email}: WHMCS users have no notification subscriptions; declare the address as a contact instead"
                ),
            ));
        }
        let permissions = self.permissions_to_set(email, &member.roles).await?;
        let answer = |linked: bool, invitation: Option<Invitation>, name: Option<String>| Member {
            customer_number: Some(customer_number.to_owned()),
            email: email.to_owned(),
            name,
            user_linked: linked,
            roles: grants(&permissions),
            services: Services::All,
            notifications: Vec::new(),
            invitation,
            etag: NO_ETAG.into(),
        };
        match self.user(customer_number, email).await? {
            Some(user) if user.associated && user.owner => Err(PortalError::problem(
                403,
                ErrorCode::Forbidden,
                format!(
                    "{} is the owner of client {customer_number}; WHMCS does not let its permissions change",
                    user.email
                ),
            )),
            Some(user) if user.associated => {
                if let Some(name) = member.name.as_deref().map(str::trim)
                    && !name.is_empty()
                    && name != user.name
                {
                    // The name belongs to the user, which may reach other clients too: it
                    // changes everywhere (documented).
                    let (first, last) = wire::split_name(name);
                    self.call(
                        "UpdateUser",
                        &[
                            ("user_id", user.id.clone()),
                            ("firstname", first),
                            ("lastname", last),
                        ],
                    )
                    .await?;
                }
                self.call(
                    "UpdateUserPermissions",
                    &[
                        ("user_id", user.id),
                        ("client_id", customer_number.to_owned()),
                        ("permissions", permissions.join(",")),
                    ],
                )
                .await?;
                Ok(answer(true, None, member.name.clone()))
            }
            _ => {
                // Not linked yet: the permissions go with the invitation. An invitation already
                // sent cannot change in WHMCS; the record keeps the new set, which rolecall
                // sets once the person has joined.
                if let Some(mut record) = self.record(customer_number, email)? {
                    record.permissions = permissions.clone();
                    if member.name.is_some() {
                        record.name = member.name.clone();
                    }
                    let invitation = self.invitation_of(&record);
                    self.invitations.put(record).map_err(Self::store_error)?;
                    return Ok(answer(false, Some(invitation), member.name.clone()));
                }
                if let Ok(mut planned) = self.planned.lock() {
                    planned.insert(
                        Self::planned_key(customer_number, email),
                        (member.name.clone(), permissions.clone()),
                    );
                }
                Ok(answer(false, None, member.name.clone()))
            }
        }
    }

    async fn delete_member(
        &self,
        customer_number: &str,
        email: &str,
        _: Option<&str>,
    ) -> PortalResult<()> {
        if let Ok(mut planned) = self.planned.lock() {
            planned.remove(&Self::planned_key(customer_number, email));
        }
        match self.user(customer_number, email).await? {
            Some(user) if user.associated && user.owner => Err(PortalError::problem(
                422,
                ErrorCode::LastAdmin,
                format!(
                    "{} is the owner of client {customer_number}; rolecall never removes it",
                    user.email
                ),
            )),
            Some(user) if user.associated => {
                let deleted = self
                    .call(
                        "DeleteUserClient",
                        &[
                            ("user_id", user.id),
                            ("client_id", customer_number.to_owned()),
                        ],
                    )
                    .await;
                match deleted {
                    // A retry whose first attempt went through: the link is gone.
                    Err(e) if e.code() == Some(ErrorCode::NotFound) => {}
                    other => {
                        other?;
                    }
                }
                self.invitations
                    .remove(customer_number, email)
                    .map_err(Self::store_error)
            }
            _ => self.cancel_invitation(customer_number, email).await,
        }
    }

    async fn invite(
        &self,
        customer_number: &str,
        email: &str,
        resend: bool,
        _: &str,
    ) -> PortalResult<Invitation> {
        let now = self.now();
        let existing = self.record(customer_number, email)?;
        if let Some(record) = &existing
            && !resend
            && !record.expired(now)
        {
            // Sent already: WHMCS would send a second e-mail.
            return Ok(self.invitation_of(record));
        }
        let planned = self
            .planned
            .lock()
            .ok()
            .and_then(|p| p.get(&Self::planned_key(customer_number, email)).cloned());
        let (name, permissions) = match (planned, &existing) {
            (Some(p), _) => p,
            (None, Some(r)) => (r.name.clone(), r.permissions.clone()),
            (None, None) => {
                return Err(PortalError::problem(
                    422,
                    ErrorCode::Invalid,
                    format!(
                        "{email}: WHMCS invitations carry the permissions they grant, and none were written for this member; plan again"
                    ),
                ));
            }
        };
        if permissions.is_empty() {
            return Err(PortalError::problem(
                422,
                ErrorCode::Invalid,
                format!("{email}: WHMCS invites only with at least one permission"),
            ));
        }
        let record = InvitationRecord {
            client_id: customer_number.to_owned(),
            email: email.to_owned(),
            name,
            permissions: permissions.clone(),
            sent_at: now,
            expires_at: now + SignedDuration::from_hours(24 * i64::from(INVITATION_TTL_DAYS)),
        };
        // Recorded before it is sent: if rolecall dies between the two, the worst case is an
        // invitation recorded but not sent (sent again when the record expires), never two.
        self.invitations
            .put(record.clone())
            .map_err(Self::store_error)?;
        let sent = self
            .call_once(
                "CreateClientInvite",
                &[
                    ("client_id", customer_number.to_owned()),
                    ("email", email.to_owned()),
                    ("permissions", permissions.join(",")),
                ],
            )
            .await;
        match sent {
            Ok(_) => {
                if let Ok(mut planned) = self.planned.lock() {
                    planned.remove(&Self::planned_key(customer_number, email));
                }
                Ok(self.invitation_of(&record))
            }
            // WHMCS said no: nothing was sent, so nothing is recorded (or the record of the
            // earlier invitation stays). A network failure or a 5xx leaves the record: the
            // invitation may have gone out.
            Err(e @ PortalError::Problem { .. }) if e.code() != Some(ErrorCode::Unavailable) => {
                match existing {
                    Some(old) if e.code() != Some(ErrorCode::AlreadyLinked) => {
                        self.invitations.put(old).map_err(Self::store_error)?
                    }
                    _ => self
                        .invitations
                        .remove(customer_number, email)
                        .map_err(Self::store_error)?,
                }
                if e.code() == Some(ErrorCode::AlreadyLinked) {
                    return Err(PortalError::problem(
                        409,
                        ErrorCode::AlreadyLinked,
                        format!(
                            "{email} has joined client {customer_number} since the plan was made (WHMCS: User already associated with client); the next plan sets their permissions"
                        ),
                    ));
                }
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    async fn cancel_invitation(&self, customer_number: &str, email: &str) -> PortalResult<()> {
        // WHMCS cannot cancel an invitation: the link in the e-mail stays valid until it
        // expires. Ending the record stops rolecall from treating the person as invited; if
        // they accept anyway, the next plan removes them (with prune).
        tracing::info!(
            customer_number,
            "WHMCS cannot cancel a sent invitation; rolecall forgets it"
        );
        self.invitations
            .remove(customer_number, email)
            .map_err(Self::store_error)
    }

    async fn list_contacts(&self, accounts: &AccountFilter) -> PortalResult<Vec<Contact>> {
        let mut contacts = Vec::new();
        for client_id in self.client_ids(accounts).await? {
            let items = self
                .all_pages(
                    "GetContacts",
                    &[("userid", client_id.clone())],
                    "contacts",
                    "contact",
                )
                .await?;
            contacts.extend(items.iter().map(|c| contact_of(&client_id, c)));
        }
        Ok(contacts)
    }

    async fn put_contact(
        &self,
        customer_number: &str,
        email: &str,
        contact: &ContactPut,
        _: Option<&str>,
    ) -> PortalResult<Contact> {
        let mut params: Vec<(&str, String)> = preferences(&contact.notifications)?;
        let name = |params: &mut Vec<(&str, String)>| {
            let (first, last) = wire::split_name(&contact.name);
            params.push(("firstname", first));
            params.push(("lastname", last));
        };
        match self.find_contact(customer_number, email).await? {
            Some(existing) => {
                let id = wire::id(existing.get("id")).ok_or_else(|| {
                    PortalError::Protocol(format!(
                        "WHMCS GetContacts answered a contact without an id for {email}"
                    ))
                })?;
                // The name is written only when it changes: splitting it again at the first
                // space would move a two-word first name ("Mary Ann") into the last name.
                if contact.name.trim() != wire::person_name(&existing) {
                    name(&mut params);
                }
                params.push(("contactid", id));
                self.call("UpdateContact", &params)
                    .await
                    .map_err(|e| domain_rule(customer_number, e))?;
            }
            None => {
                name(&mut params);
                params.push(("clientid", customer_number.to_owned()));
                params.push(("email", email.to_owned()));
                self.call_once("AddContact", &params)
                    .await
                    .map_err(|e| domain_rule(customer_number, e))?;
            }
        }
        Ok(Contact {
            customer_number: Some(customer_number.to_owned()),
            email: email.to_owned(),
            name: contact.name.trim().to_owned(),
            notifications: contact.notifications.clone(),
            etag: NO_ETAG.into(),
        })
    }

    async fn delete_contact(
        &self,
        customer_number: &str,
        email: &str,
        _: Option<&str>,
    ) -> PortalResult<()> {
        let Some(existing) = self.find_contact(customer_number, email).await? else {
            return Ok(());
        };
        let Some(id) = wire::id(existing.get("id")) else {
            return Err(PortalError::Protocol(format!(
                "WHMCS GetContacts answered a contact without an id for {email}"
            )));
        };
        match self.call("DeleteContact", &[("contactid", id)]).await {
            // A retry whose first attempt went through finds nothing: that is success.
            Err(e) if e.code() == Some(ErrorCode::NotFound) => Ok(()),
            other => other
                .map(|_| ())
                .map_err(|e| domain_rule(customer_number, e)),
        }
    }

    async fn audit(&self, customer_number: &str) -> PortalResult<Vec<AuditEntry>> {
        Err(PortalError::problem(
            404,
            ErrorCode::NotFound,
            format!(
                "WHMCS has no per-client audit log rolecall can read (client {customer_number}); see the WHMCS activity log"
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages_map_to_problem_codes() {
        for (message, code) in [
            ("Authentication Failed", ErrorCode::Unauthenticated),
            ("Invalid IP 10.0.0.1", ErrorCode::Unauthenticated),
            (
                "User already associated with client",
                ErrorCode::AlreadyLinked,
            ),
            (
                "Permissions cannot be set on a client owner",
                ErrorCode::Forbidden,
            ),
            ("You cannot remove the account owner", ErrorCode::LastAdmin),
            ("Client Not Found", ErrorCode::NotFound),
            ("Invalid Permission: foo", ErrorCode::UnknownRole),
            ("Something else", ErrorCode::Invalid),
        ] {
            assert_eq!(classify(message).1, code, "{message}");
        }
    }

    #[test]
    fn credentials_never_print_and_are_scrubbed_from_messages() {
        let c = Credentials::new("ident-123", "very-secret", Some("acc-key"), "test").unwrap();
        let text = format!("{c:?} {c:#?}");
        assert!(
            !text.contains("very-secret") && !text.contains("ident-123"),
            "{text}"
        );
        assert_eq!(
            c.redact("bad secret very-secret for ident-123 / acc-key"),
            "bad secret *** for *** / ***"
        );
        assert!(Credentials::new("", "s", None, "env").is_err());
        let err = Credentials::new("id", "has space", None, "env").unwrap_err();
        assert!(!err.contains("has space"), "{err}");
    }

    #[test]
    fn notification_kinds_map_to_the_six_preferences() {
        let prefs = preferences(&["domains".into(), "invoices".into()]).unwrap();
        let on: Vec<_> = prefs
            .iter()
            .filter(|(_, v)| v == "1")
            .map(|(k, _)| *k)
            .collect();
        assert_eq!(
            on,
            ["email_preferences[domain]", "email_preferences[invoice]"]
        );
        assert_eq!(prefs.len(), 6);
        let err = preferences(&["renewals".into()]).unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::UnknownNotificationKind));
        let contact = contact_of(
            "7",
            &serde_json::json!({"id": "3", "email": "b@x.example", "firstname": "Bill",
                "lastname": "Ing", "generalemails": "0", "productemails": 1,
                "domainemails": true, "invoiceemails": "1", "supportemails": false,
                "affiliateemails": "on"}),
        );
        assert_eq!(
            contact.notifications,
            ["products", "domains", "invoices", "affiliates"]
        );
        assert_eq!(contact.name, "Bill Ing");
    }

    #[test]
    fn the_endpoint_is_under_the_base_path_and_credentials_stay_out_of_debug() {
        let creds = Credentials::new("ident", "sekrit", None, "test").unwrap();
        let store: Arc<dyn InvitationStore> = Arc::new(MemoryInvitations::default());
        let p = WhmcsPortal::new(
            "https://billing.example/whmcs/",
            creds.clone(),
            store.clone(),
            WhmcsOptions::default(),
        )
        .unwrap();
        assert_eq!(
            p.endpoint(),
            "https://billing.example/whmcs/includes/api.php"
        );
        let text = format!("{p:?}");
        assert!(
            !text.contains("sekrit") && !text.contains("ident\""),
            "{text}"
        );
        let err = WhmcsPortal::new(
            "https://u:pw@h.example",
            creds,
            store,
            WhmcsOptions::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(!err.contains("pw"), "{err}");
    }
}
