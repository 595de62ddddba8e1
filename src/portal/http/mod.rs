//! The portal API v1 over HTTP (SPEC §4): one `reqwest` client per portal, bearer auth,
//! retries with jittered exponential backoff, `If-Match` and `Idempotency-Key`, problem
//! documents turned into [`PortalError`]s, and the bulk reads followed to their last page.

mod decode;
mod paths;
mod retry;
mod setup;
mod token;

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::header::{self, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;

pub use paths::encode_segment;
pub(super) use retry::{Failure, Place, Retry};
pub(super) use setup::{build_client, parse_base_url};
pub use token::{Token, TokenError};

use super::{
    Account, AccountFilter, AccountPatch, AuditEntry, Catalog, Contact, ContactPut, Invitation,
    Member, MemberPut, NewAccount, Portal, PortalError, PortalResult, Whoami,
};

/// The largest page the API serves (SPEC §4).
pub const MAX_PAGE_LIMIT: u32 = 1000;

/// How long to wait before a retry. The default sleeps on the tokio clock; tests inject one
/// that records the delays and returns at once.
#[derive(Clone)]
pub struct Sleeper(Arc<dyn Fn(Duration) -> SleepFuture + Send + Sync>);

type SleepFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

impl Sleeper {
    pub fn new<F, Fut>(sleep: F) -> Sleeper
    where
        F: Fn(Duration) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        Sleeper(Arc::new(move |d| Box::pin(sleep(d))))
    }

    fn sleep(&self, delay: Duration) -> SleepFuture {
        (self.0)(delay)
    }
}

/// Told the outcome of every attempt: the HTTP status, or `None` when no answer came. The
/// controller counts portal requests by status with it.
#[derive(Clone, Default)]
pub struct AnswerHook(Option<Arc<dyn Fn(Option<u16>) + Send + Sync>>);

impl AnswerHook {
    pub fn new(hook: impl Fn(Option<u16>) + Send + Sync + 'static) -> AnswerHook {
        AnswerHook(Some(Arc::new(hook)))
    }

    fn tell(&self, status: Option<u16>) {
        if let Some(hook) = &self.0 {
            hook(status);
        }
    }
}

impl fmt::Debug for AnswerHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AnswerHook(..)")
    }
}

impl Default for Sleeper {
    fn default() -> Self {
        Sleeper::new(tokio::time::sleep)
    }
}

impl fmt::Debug for Sleeper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sleeper(..)")
    }
}

/// How the client talks to a portal.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// An extra trusted CA (PEM) beside the system's roots (`--ca-file`).
    pub ca_file: Option<PathBuf>,
    pub connect_timeout: Duration,
    /// The whole request, answer body included.
    pub request_timeout: Duration,
    /// Retries after the first attempt, on 429, 500, 502, 503, 504 and network failures.
    pub max_retries: u32,
    /// The first backoff step; step n waits a random time up to `backoff_base * 2^n`.
    pub backoff_base: Duration,
    /// The longest backoff step.
    pub backoff_cap: Duration,
    /// The longest `Retry-After` honoured.
    pub retry_after_cap: Duration,
    /// Items per page of the list endpoints (at most [`MAX_PAGE_LIMIT`]).
    pub page_limit: u32,
    /// Customer numbers per bulk read (`account=` parameters), so URLs stay short.
    pub accounts_per_request: usize,
    pub sleeper: Sleeper,
    pub on_answer: AnswerHook,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            ca_file: None,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_retries: 6,
            backoff_base: Duration::from_millis(200),
            backoff_cap: Duration::from_secs(10),
            retry_after_cap: Duration::from_secs(60),
            page_limit: MAX_PAGE_LIMIT,
            accounts_per_request: 200,
            sleeper: Sleeper::default(),
            on_answer: AnswerHook::default(),
        }
    }
}

/// Why an [`HttpPortal`] could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum HttpSetupError {
    #[error("the portal URL {url:?} is not usable: {reason}")]
    Url { url: String, reason: String },
    #[error("the CA file {} cannot be used: {reason}", path.display())]
    CaFile { path: PathBuf, reason: String },
    #[error("the HTTP client cannot be built: {0}")]
    Client(String),
}

/// The portal API v1 over HTTP.
pub struct HttpPortal {
    client: reqwest::Client,
    /// The API root, always ending in `/` (`https://host/portal/`).
    base: Url,
    /// `scheme://host[:port]`, for error sentences.
    origin: String,
    authorization: HeaderValue,
    options: HttpOptions,
    requests: AtomicU64,
    retry: Retry,
}

impl fmt::Debug for HttpPortal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpPortal")
            .field("base", &self.base.as_str())
            .field("token", &"Token(***)")
            .field("options", &self.options)
            .field("requests", &self.requests())
            .finish()
    }
}

/// One request, kept so that it can be sent again.
struct Call<'a> {
    method: Method,
    url: Url,
    body: Option<Vec<u8>>,
    if_match: Option<&'a str>,
    idempotency_key: Option<&'a str>,
}

/// A final answer: the status and the whole body.
pub(super) struct Answer {
    pub status: StatusCode,
    pub problem_json: bool,
    pub retry_after: Option<Duration>,
    // reqwest answers `bytes::Bytes`; axum re-exports the same type.
    pub body: axum::body::Bytes,
}

impl HttpPortal {
    /// A client for the portal API at `base_url` (`https://host` or `https://host/prefix/`).
    pub fn new(
        base_url: &str,
        token: Token,
        options: HttpOptions,
    ) -> Result<HttpPortal, HttpSetupError> {
        let mut base = parse_base_url(
            base_url,
            "https:// or http://",
            "put the token in ROLECALL_TOKEN",
        )?;
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let origin = base.origin().ascii_serialization();

        let mut authorization = HeaderValue::from_str(&format!("Bearer {}", token.secret()))
            .map_err(|_| {
                HttpSetupError::Client("the portal token is not a valid header value".into())
            })?;
        authorization.set_sensitive(true);

        let client = build_client(&options)?;

        Ok(HttpPortal {
            client,
            base,
            origin,
            authorization,
            retry: Retry::new(&options),
            options,
            requests: AtomicU64::new(0),
        })
    }

    /// HTTP requests sent so far, retries included.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// The API root this client talks to, ending in `/`.
    pub fn base_url(&self) -> &str {
        self.base.as_str()
    }

    /// Sends `call`, retrying 429, 5xx and network failures, and returns the final answer.
    async fn send(&self, call: &Call<'_>) -> PortalResult<Answer> {
        let path = call.url.path();
        self.retry
            .run(call.method.as_str(), path, || self.attempt(call))
            .await
    }

    /// One attempt: the answer (any status) or a network failure.
    async fn attempt(&self, call: &Call<'_>) -> Result<Answer, Failure> {
        let mut request = self
            .client
            .request(call.method.clone(), call.url.clone())
            .header(header::AUTHORIZATION, self.authorization.clone());
        if let Some(etag) = call.if_match {
            let value = HeaderValue::from_str(etag).map_err(|_| Failure {
                retryable: false,
                error: PortalError::Protocol(format!("the etag {etag:?} is not a valid header")),
            })?;
            request = request.header(header::IF_MATCH, value);
        }
        if let Some(key) = call.idempotency_key {
            let value = HeaderValue::from_str(key).map_err(|_| Failure {
                retryable: false,
                error: PortalError::Protocol(format!(
                    "the idempotency key {key:?} is not a valid header"
                )),
            })?;
            request = request.header("idempotency-key", value);
        }
        if let Some(body) = &call.body {
            request = request
                .header(header::CONTENT_TYPE, "application/json")
                .body(body.clone());
        }
        self.requests.fetch_add(1, Ordering::Relaxed);
        let place = Place {
            origin: &self.origin,
            method: call.method.as_str(),
            path: call.url.path(),
            options: &self.options,
        };
        place.exchange(request).await
    }

    /// Full jitter: a random delay up to `base * 2^attempt`, at most the cap.
    #[cfg(test)]
    fn backoff(&self, attempt: u32) -> Duration {
        self.retry.backoff(attempt)
    }

    async fn get<T: DeserializeOwned>(&self, url: Url) -> PortalResult<T> {
        self.exchange(Method::GET, url, None, None, None).await
    }

    /// A bulk read (`/v1/members`, `/v1/contacts`), chunked by account.
    async fn get_bulk<T: DeserializeOwned + Send + 'static>(
        &self,
        collection: &str,
        filter: &AccountFilter,
    ) -> PortalResult<Vec<T>> {
        match filter {
            AccountFilter::All => self.get_all(&[collection], &[]).await,
            AccountFilter::Only(accounts) => {
                let mut items = Vec::new();
                for chunk in accounts.chunks(self.options.accounts_per_request.max(1)) {
                    items.extend(self.get_all(&[collection], chunk).await?);
                }
                Ok(items)
            }
        }
    }

    /// [`Self::get_bulk`] a page at a time.
    async fn get_bulk_pages<T: DeserializeOwned + Send + 'static>(
        &self,
        collection: &str,
        filter: &AccountFilter,
        on_page: &mut (dyn FnMut(Vec<T>) + Send),
    ) -> PortalResult<()> {
        match filter {
            AccountFilter::All => self.get_pages(&[collection], &[], on_page).await,
            AccountFilter::Only(accounts) => {
                for chunk in accounts.chunks(self.options.accounts_per_request.max(1)) {
                    self.get_pages(&[collection], chunk, on_page).await?;
                }
                Ok(())
            }
        }
    }

    /// Sends one request (with its retries) and decodes the answer.
    async fn exchange<T: DeserializeOwned>(
        &self,
        method: Method,
        url: Url,
        body: Option<Vec<u8>>,
        if_match: Option<&str>,
        idempotency_key: Option<&str>,
    ) -> PortalResult<T> {
        let call = Call {
            method,
            url,
            body,
            if_match,
            idempotency_key,
        };
        let answer = self.send(&call).await?;
        self.decode(&call, answer)
    }

    async fn delete(&self, url: Url, if_match: Option<&str>) -> PortalResult<()> {
        let call = Call {
            method: Method::DELETE,
            url,
            body: None,
            if_match,
            idempotency_key: None,
        };
        let answer = self.send(&call).await?;
        // A retried delete whose first answer was lost finds nothing: that is success.
        if answer.status.is_success() || answer.status == StatusCode::NOT_FOUND {
            Ok(())
        } else {
            Err(self.refusal(&call, &answer))
        }
    }
}

fn json<T: serde::Serialize>(value: &T) -> PortalResult<Option<Vec<u8>>> {
    serde_json::to_vec(value)
        .map(Some)
        .map_err(|e| PortalError::Protocol(format!("the request body cannot be written: {e}")))
}

impl Portal for HttpPortal {
    async fn whoami(&self) -> PortalResult<Whoami> {
        self.get(self.url(&["whoami"])?).await
    }

    async fn catalog(&self) -> PortalResult<Catalog> {
        self.get(self.url(&["catalog"])?).await
    }

    async fn list_accounts(&self) -> PortalResult<Vec<Account>> {
        self.get_all(&["accounts"], &[]).await
    }

    async fn get_account(&self, customer_number: &str) -> PortalResult<Account> {
        self.get(self.url(&["accounts", customer_number])?).await
    }

    async fn create_account(
        &self,
        account: &NewAccount,
        idempotency_key: &str,
    ) -> PortalResult<Account> {
        let url = self.url(&["accounts"])?;
        self.exchange(
            Method::POST,
            url,
            json(account)?,
            None,
            Some(idempotency_key),
        )
        .await
    }

    async fn update_account(
        &self,
        customer_number: &str,
        patch: &AccountPatch,
        if_match: Option<&str>,
    ) -> PortalResult<Account> {
        let url = self.url(&["accounts", customer_number])?;
        self.exchange(Method::PATCH, url, json(patch)?, if_match, None)
            .await
    }

    async fn list_members(&self, accounts: &AccountFilter) -> PortalResult<Vec<Member>> {
        self.get_bulk("members", accounts).await
    }

    async fn list_members_by_page<F: FnMut(Vec<Member>) + Send>(
        &self,
        accounts: &AccountFilter,
        mut on_page: F,
    ) -> PortalResult<()> {
        self.get_bulk_pages("members", accounts, &mut on_page).await
    }

    async fn put_member(
        &self,
        customer_number: &str,
        email: &str,
        member: &MemberPut,
        if_match: Option<&str>,
    ) -> PortalResult<Member> {
        let url = self.url(&["accounts", customer_number, "members", email])?;
        self.exchange(Method::PUT, url, json(member)?, if_match, None)
            .await
    }

    async fn delete_member(
        &self,
        customer_number: &str,
        email: &str,
        if_match: Option<&str>,
    ) -> PortalResult<()> {
        let url = self.url(&["accounts", customer_number, "members", email])?;
        self.delete(url, if_match).await
    }

    async fn invite(
        &self,
        customer_number: &str,
        email: &str,
        resend: bool,
        idempotency_key: &str,
    ) -> PortalResult<Invitation> {
        let mut url = self.url(&["accounts", customer_number, "members", email, "invitation"])?;
        if resend {
            url.query_pairs_mut().append_pair("resend", "true");
        }
        self.exchange(Method::POST, url, None, None, Some(idempotency_key))
            .await
    }

    async fn cancel_invitation(&self, customer_number: &str, email: &str) -> PortalResult<()> {
        let url = self.url(&["accounts", customer_number, "members", email, "invitation"])?;
        self.delete(url, None).await
    }

    async fn list_contacts(&self, accounts: &AccountFilter) -> PortalResult<Vec<Contact>> {
        self.get_bulk("contacts", accounts).await
    }

    async fn list_contacts_by_page<F: FnMut(Vec<Contact>) + Send>(
        &self,
        accounts: &AccountFilter,
        mut on_page: F,
    ) -> PortalResult<()> {
        self.get_bulk_pages("contacts", accounts, &mut on_page)
            .await
    }

    async fn put_contact(
        &self,
        customer_number: &str,
        email: &str,
        contact: &ContactPut,
        if_match: Option<&str>,
    ) -> PortalResult<Contact> {
        let url = self.url(&["accounts", customer_number, "contacts", email])?;
        self.exchange(Method::PUT, url, json(contact)?, if_match, None)
            .await
    }

    async fn delete_contact(
        &self,
        customer_number: &str,
        email: &str,
        if_match: Option<&str>,
    ) -> PortalResult<()> {
        let url = self.url(&["accounts", customer_number, "contacts", email])?;
        self.delete(url, if_match).await
    }

    async fn audit(&self, customer_number: &str) -> PortalResult<Vec<AuditEntry>> {
        self.get_all(&["accounts", customer_number, "audit"], &[])
            .await
    }
}

#[cfg(test)]
mod tests;
