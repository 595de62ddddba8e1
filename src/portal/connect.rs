//! Choosing the portal implementation from a URL: `http(s)://` is the portal API over HTTP,
//! `sandbox:FILE` the embedded reference portal.

use std::path::PathBuf;

use super::http::{HttpOptions, HttpPortal, Token};
use super::sandbox::SandboxPortal;
use super::*;

/// Every portal implementation rolecall can talk to.
pub enum AnyPortal {
    Http(Box<HttpPortal>),
    Sandbox(SandboxPortal),
}

/// Connects to the portal at `url`; for HTTP the token comes from the environment variable
/// `token_env` and never from anywhere a shell history or a manifest would keep it.
pub fn connect(url: &str, token_env: &str) -> Result<AnyPortal, String> {
    connect_with(url, token_env, HttpOptions::default())
}

pub fn connect_with(url: &str, token_env: &str, options: HttpOptions) -> Result<AnyPortal, String> {
    if let Some(file) = url.strip_prefix("sandbox:") {
        if file.is_empty() {
            return Err("sandbox: needs a file, for example sandbox:.rolecall/sandbox.db".into());
        }
        let now = crate::cli::clock_now()?;
        return SandboxPortal::open(&PathBuf::from(file), Some(now))
            .map(AnyPortal::Sandbox)
            .map_err(|e| format!("{url}: the embedded portal cannot be opened: {e}"));
    }
    if is_http(url) {
        if std::env::var(token_env).map_or(true, |t| t.trim().is_empty()) {
            return Err(format!(
                "{url}: no token: set the environment variable {token_env} to the portal's API token"
            ));
        }
        let token = Token::from_env(token_env).map_err(|e| format!("{url}: {e}"))?;
        return connect_token(url, token, options);
    }
    Err(not_a_portal_url(url))
}

/// Connects to the portal at `url` with a token already in hand (the controller reads it from
/// a Secret). `sandbox:` URLs need no token.
pub fn connect_token(url: &str, token: Token, options: HttpOptions) -> Result<AnyPortal, String> {
    if url.starts_with("sandbox:") {
        return connect_with(url, "", options);
    }
    if !is_http(url) {
        return Err(not_a_portal_url(url));
    }
    HttpPortal::new(url, token, options)
        .map(|p| AnyPortal::Http(Box::new(p)))
        .map_err(|e| format!("{url}: {e}"))
}

fn is_http(url: &str) -> bool {
    url.starts_with("https://") || url.starts_with("http://")
}

fn not_a_portal_url(url: &str) -> String {
    format!(
        "{} is not a portal URL: use https://host/…, http://host/… or sandbox:FILE",
        crate::manifest::quote_short(url)
    )
}

macro_rules! both {
    ($self:ident, $p:ident => $e:expr) => {
        match $self {
            AnyPortal::Http($p) => $e.await,
            AnyPortal::Sandbox($p) => $e.await,
        }
    };
}

impl Portal for AnyPortal {
    async fn whoami(&self) -> PortalResult<Whoami> {
        both!(self, p => p.whoami())
    }
    async fn catalog(&self) -> PortalResult<Catalog> {
        both!(self, p => p.catalog())
    }
    async fn list_accounts(&self) -> PortalResult<Vec<Account>> {
        both!(self, p => p.list_accounts())
    }
    async fn get_account(&self, cn: &str) -> PortalResult<Account> {
        both!(self, p => p.get_account(cn))
    }
    async fn create_account(&self, account: &NewAccount, key: &str) -> PortalResult<Account> {
        both!(self, p => p.create_account(account, key))
    }
    async fn update_account(
        &self,
        cn: &str,
        patch: &AccountPatch,
        if_match: Option<&str>,
    ) -> PortalResult<Account> {
        both!(self, p => p.update_account(cn, patch, if_match))
    }
    async fn list_members(&self, accounts: &AccountFilter) -> PortalResult<Vec<Member>> {
        both!(self, p => p.list_members(accounts))
    }
    async fn put_member(
        &self,
        cn: &str,
        email: &str,
        member: &MemberPut,
        if_match: Option<&str>,
    ) -> PortalResult<Member> {
        both!(self, p => p.put_member(cn, email, member, if_match))
    }
    async fn delete_member(
        &self,
        cn: &str,
        email: &str,
        if_match: Option<&str>,
    ) -> PortalResult<()> {
        both!(self, p => p.delete_member(cn, email, if_match))
    }
    async fn invite(
        &self,
        cn: &str,
        email: &str,
        resend: bool,
        key: &str,
    ) -> PortalResult<Invitation> {
        both!(self, p => p.invite(cn, email, resend, key))
    }
    async fn cancel_invitation(&self, cn: &str, email: &str) -> PortalResult<()> {
        both!(self, p => p.cancel_invitation(cn, email))
    }
    async fn list_contacts(&self, accounts: &AccountFilter) -> PortalResult<Vec<Contact>> {
        both!(self, p => p.list_contacts(accounts))
    }
    async fn put_contact(
        &self,
        cn: &str,
        email: &str,
        contact: &ContactPut,
        if_match: Option<&str>,
    ) -> PortalResult<Contact> {
        both!(self, p => p.put_contact(cn, email, contact, if_match))
    }
    async fn delete_contact(
        &self,
        cn: &str,
        email: &str,
        if_match: Option<&str>,
    ) -> PortalResult<()> {
        both!(self, p => p.delete_contact(cn, email, if_match))
    }
    async fn audit(&self, cn: &str) -> PortalResult<Vec<AuditEntry>> {
        both!(self, p => p.audit(cn))
    }
}
