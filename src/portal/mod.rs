//! The `Portal` interface: every operation rolecall needs from a customer portal (SPEC §4),
//! and its implementations — the HTTP client, the embedded reference portal (`sandbox:`) and
//! adapters for other portal APIs. The planner never sees this trait: it works on the plain
//! observed state that these operations return.

pub mod api;
pub mod billmgr;
mod form_api;
pub mod http;
pub mod whmcs;

use std::future::Future;

pub use api::*;

/// What went wrong talking to a portal. Never carries a token.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PortalError {
    /// The portal answered with a problem document.
    #[error("the portal refused the request ({status} {code:?}): {detail}")]
    Problem {
        status: u16,
        code: ErrorCode,
        detail: String,
        errors: Vec<FieldError>,
    },
    /// The portal could not be reached or answered something that is not the API.
    #[error("the portal could not be reached: {0}")]
    Unreachable(String),
    /// The portal answered something this client cannot read.
    #[error("the portal sent an answer rolecall cannot read: {0}")]
    Protocol(String),
    /// The request cannot be written without changing what it names (a `..` customer number
    /// in a URL path); nothing was sent.
    #[error("{0}")]
    Unaddressable(String),
}

impl PortalError {
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            PortalError::Problem { code, .. } => Some(*code),
            _ => None,
        }
    }

    pub fn problem(status: u16, code: ErrorCode, detail: impl Into<String>) -> Self {
        PortalError::Problem {
            status,
            code,
            detail: detail.into(),
            errors: Vec::new(),
        }
    }
}

pub type PortalResult<T> = Result<T, PortalError>;

/// Which accounts a bulk read covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountFilter {
    /// Every account the principal manages.
    All,
    /// Only these customer numbers.
    Only(Vec<String>),
}

/// The operations of the portal API v1. Writes carry the precondition they were planned
/// against (`if_match`, an etag) and POSTs an idempotency key, so that a retried or
/// replayed change never happens twice.
pub trait Portal: Send + Sync {
    /// Tells the portal which customer accounts this run works on. Most portals know their
    /// accounts and ignore it; a BILLmanager portal serves one client account whose customer
    /// number only the manifests (or `--account`) give.
    fn bind_accounts(&self, customer_numbers: &[String]) {
        let _ = customer_numbers;
    }

    fn whoami(&self) -> impl Future<Output = PortalResult<Whoami>> + Send;
    fn catalog(&self) -> impl Future<Output = PortalResult<Catalog>> + Send;

    /// Every account the principal can see, all pages.
    fn list_accounts(&self) -> impl Future<Output = PortalResult<Vec<Account>>> + Send;
    fn get_account(
        &self,
        customer_number: &str,
    ) -> impl Future<Output = PortalResult<Account>> + Send;
    fn create_account(
        &self,
        account: &NewAccount,
        idempotency_key: &str,
    ) -> impl Future<Output = PortalResult<Account>> + Send;
    fn update_account(
        &self,
        customer_number: &str,
        patch: &AccountPatch,
        if_match: Option<&str>,
    ) -> impl Future<Output = PortalResult<Account>> + Send;

    /// Members of the given accounts (bulk read), all pages; each carries `customer_number`.
    fn list_members(
        &self,
        accounts: &AccountFilter,
    ) -> impl Future<Output = PortalResult<Vec<Member>>> + Send;
    /// [`Portal::list_members`] handed to `on_page` a page at a time, as the portal answers:
    /// a large fleet's plan files each page under its accounts at once and never holds the
    /// whole fleet's members as one list. A portal without pages hands over one.
    fn list_members_by_page<F: FnMut(Vec<Member>) + Send>(
        &self,
        accounts: &AccountFilter,
        mut on_page: F,
    ) -> impl Future<Output = PortalResult<()>> + Send {
        async move {
            on_page(self.list_members(accounts).await?);
            Ok(())
        }
    }
    fn put_member(
        &self,
        customer_number: &str,
        email: &str,
        member: &MemberPut,
        if_match: Option<&str>,
    ) -> impl Future<Output = PortalResult<Member>> + Send;
    fn delete_member(
        &self,
        customer_number: &str,
        email: &str,
        if_match: Option<&str>,
    ) -> impl Future<Output = PortalResult<()>> + Send;
    /// Sends (or with `resend`, sends again) the member's invitation.
    fn invite(
        &self,
        customer_number: &str,
        email: &str,
        resend: bool,
        idempotency_key: &str,
    ) -> impl Future<Output = PortalResult<Invitation>> + Send;
    fn cancel_invitation(
        &self,
        customer_number: &str,
        email: &str,
    ) -> impl Future<Output = PortalResult<()>> + Send;

    /// Contacts of the given accounts (bulk read), all pages; each carries `customer_number`.
    fn list_contacts(
        &self,
        accounts: &AccountFilter,
    ) -> impl Future<Output = PortalResult<Vec<Contact>>> + Send;
    /// [`Portal::list_contacts`] a page at a time (see [`Portal::list_members_by_page`]).
    fn list_contacts_by_page<F: FnMut(Vec<Contact>) + Send>(
        &self,
        accounts: &AccountFilter,
        mut on_page: F,
    ) -> impl Future<Output = PortalResult<()>> + Send {
        async move {
            on_page(self.list_contacts(accounts).await?);
            Ok(())
        }
    }
    fn put_contact(
        &self,
        customer_number: &str,
        email: &str,
        contact: &ContactPut,
        if_match: Option<&str>,
    ) -> impl Future<Output = PortalResult<Contact>> + Send;
    fn delete_contact(
        &self,
        customer_number: &str,
        email: &str,
        if_match: Option<&str>,
    ) -> impl Future<Output = PortalResult<()>> + Send;

    /// The account's audit log, oldest first, all pages.
    fn audit(
        &self,
        customer_number: &str,
    ) -> impl Future<Output = PortalResult<Vec<AuditEntry>>> + Send;
}
