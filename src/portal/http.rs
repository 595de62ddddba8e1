//! The portal API v1 over HTTP (SPEC §4): one `reqwest` client per portal, bearer auth,
//! retries with jittered exponential backoff, `If-Match` and `Idempotency-Key`, problem
//! documents turned into [`PortalError`]s, and the bulk reads followed to their last page.

mod token;

use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;
use serde::de::DeserializeOwned;

pub use token::{Token, TokenError};

use super::{
    Account, AccountFilter, AccountPatch, AuditEntry, Catalog, Contact, ContactPut, ErrorCode,
    FieldError, Invitation, Member, MemberPut, NewAccount, Page, Portal, PortalError, PortalResult,
    Whoami,
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

/// Only the cursor of a page, read ahead of its items to ask for the next page sooner.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PageCursor {
    next_cursor: Option<String>,
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

    /// `base` + `v1/` + the percent-encoded segments. A segment that is `.` or `..` (even
    /// percent-encoded, URLs treat it as a step: `/v1/accounts/../members` is `/v1/members`)
    /// is refused before anything is sent, so that no name can change which resource a request
    /// reaches.
    fn url(&self, segments: &[&str]) -> PortalResult<Url> {
        let mut path = format!("{}v1", self.base.path());
        for segment in segments {
            if matches!(*segment, "." | "..") {
                return Err(PortalError::Unaddressable(format!(
                    "{segment:?} cannot be sent as a part of a URL path: \".\" and \"..\" are steps in a path, not names, so no request was sent for it"
                )));
            }
            path.push('/');
            path.push_str(&encode_segment(segment));
        }
        let mut url = self.base.clone();
        url.set_path(&path);
        if url.path() != path {
            return Err(PortalError::Unaddressable(format!(
                "the request path {path:?} would be sent as {:?}, so no request was sent",
                url.path()
            )));
        }
        Ok(url)
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

    /// The decoded body of a 2xx answer, or the error the answer stands for.
    fn decode<T: DeserializeOwned>(&self, call: &Call<'_>, answer: Answer) -> PortalResult<T> {
        if !answer.status.is_success() {
            return Err(self.refusal(call, &answer));
        }
        serde_json::from_slice(&answer.body).map_err(|e| self.mismatch(call, answer.status, &e))
    }

    /// An answer whose body does not match the API.
    fn mismatch(&self, call: &Call<'_>, status: StatusCode, e: &serde_json::Error) -> PortalError {
        PortalError::Protocol(format!(
            "{} {} on {} answered {} with a body that does not match the API: {e}",
            call.method,
            call.url.path(),
            self.origin,
            status.as_u16()
        ))
    }

    /// A non-2xx answer as a [`PortalError::Problem`].
    fn refusal(&self, call: &Call<'_>, answer: &Answer) -> PortalError {
        let status = answer.status.as_u16();
        let document = serde_json::from_slice::<LenientProblem>(&answer.body).ok();
        let document = document.filter(|_| answer.problem_json || looks_like_json(&answer.body));
        let fallback = || {
            let reason = answer.status.canonical_reason().unwrap_or("");
            format!(
                "{} {} on {} answered {status} {reason}{}",
                call.method,
                call.url.path(),
                self.origin,
                hint(answer.status)
            )
        };
        match document {
            Some(doc) => PortalError::Problem {
                status,
                code: doc.code.unwrap_or_else(|| code_for(answer.status)),
                detail: doc
                    .detail
                    .or(doc.title)
                    .filter(|d| !d.trim().is_empty())
                    .unwrap_or_else(fallback),
                errors: doc.errors,
            },
            None => PortalError::Problem {
                status,
                code: code_for(answer.status),
                detail: fallback(),
                errors: Vec::new(),
            },
        }
    }

    async fn get<T: DeserializeOwned>(&self, url: Url) -> PortalResult<T> {
        self.exchange(Method::GET, url, None, None, None).await
    }

    /// Every item of a list endpoint: follows `nextCursor` to the last page. The next page is
    /// asked for as soon as its cursor is known, and this one is decoded on a blocking thread
    /// meanwhile, so that the portal and rolecall work side by side instead of taking turns.
    async fn get_all<T: DeserializeOwned + Send + 'static>(
        &self,
        segments: &[&str],
        accounts: &[String],
    ) -> PortalResult<Vec<T>> {
        let first_url = self.url(segments)?;
        let page_call = |cursor: Option<&str>| {
            let mut url = first_url.clone();
            {
                let mut query = url.query_pairs_mut();
                let limit = self.options.page_limit.clamp(1, MAX_PAGE_LIMIT);
                query.append_pair("limit", &limit.to_string());
                for account in accounts {
                    query.append_pair("account", account);
                }
                if let Some(cursor) = cursor {
                    query.append_pair("cursor", cursor);
                }
            }
            Call {
                method: Method::GET,
                url,
                body: None,
                if_match: None,
                idempotency_key: None,
            }
        };
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        let mut call = page_call(None);
        let mut answer = self.send(&call).await?;
        loop {
            if !answer.status.is_success() {
                return Err(self.refusal(&call, &answer));
            }
            // A body that does not parse has no cursor here; decoding it reports why.
            let next = serde_json::from_slice::<PageCursor>(&answer.body)
                .ok()
                .and_then(|p| p.next_cursor)
                .filter(|c| !c.is_empty());
            if let (Some(next), Some(current)) = (&next, &cursor)
                && next == current
            {
                return Err(PortalError::Protocol(format!(
                    "GET {} on {} answered the same page cursor twice",
                    call.url.path(),
                    self.origin
                )));
            }
            let status = answer.status;
            let body = answer.body;
            let decoding =
                tokio::task::spawn_blocking(move || serde_json::from_slice::<Page<T>>(&body));
            let (page, following) = match &next {
                Some(next) => {
                    let next_call = page_call(Some(next));
                    let (page, following) = tokio::join!(decoding, self.send(&next_call));
                    (page, Some((next_call, following)))
                }
                None => (decoding.await, None),
            };
            let page = match page {
                Ok(Ok(page)) => page,
                Ok(Err(e)) => return Err(self.mismatch(&call, status, &e)),
                Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
                Err(_) => {
                    return Err(PortalError::Protocol(format!(
                        "GET {} on {}: decoding the answer was cancelled",
                        call.url.path(),
                        self.origin
                    )));
                }
            };
            if items.is_empty() {
                items = page.items;
            } else {
                items.extend(page.items);
            }
            match following {
                Some((next_call, next_answer)) => {
                    answer = next_answer?;
                    call = next_call;
                    cursor = next;
                }
                None => return Ok(items),
            }
        }
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

/// A portal's base URL: http(s), no credentials (never echoed), no query or fragment.
/// `schemes` and `credentials_hint` finish the error sentences.
pub(super) fn parse_base_url(
    base_url: &str,
    schemes: &str,
    credentials_hint: &str,
) -> Result<Url, HttpSetupError> {
    let url_error = |reason: &str| HttpSetupError::Url {
        url: crate::domain::text::redact_url(base_url).into_owned(),
        reason: reason.to_owned(),
    };
    let base = Url::parse(base_url).map_err(|e| url_error(&e.to_string()))?;
    if !matches!(base.scheme(), "http" | "https") {
        return Err(url_error(&format!("it must start with {schemes}")));
    }
    if !base.username().is_empty() || base.password().is_some() {
        // Never echo a URL that carries credentials.
        return Err(HttpSetupError::Url {
            url: "(redacted)".to_owned(),
            reason: format!("it must not carry credentials; {credentials_hint}"),
        });
    }
    if base.query().is_some() || base.fragment().is_some() {
        return Err(url_error("it must not have a query or a fragment"));
    }
    Ok(base)
}

/// The `reqwest` client every HTTP-speaking adapter uses: rustls with the system roots plus
/// `--ca-file`, the timeouts of `options`, and no redirects.
pub(super) fn build_client(options: &HttpOptions) -> Result<reqwest::Client, HttpSetupError> {
    // reqwest is built without a default provider; several clients may race to install it.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut default_headers = HeaderMap::new();
    default_headers.insert(
        header::ACCEPT,
        HeaderValue::from_static("application/json, application/problem+json"),
    );
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("rolecall/", env!("CARGO_PKG_VERSION")))
        .default_headers(default_headers)
        .connect_timeout(options.connect_timeout)
        .timeout(options.request_timeout)
        .pool_max_idle_per_host(64)
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_nodelay(true)
        // A redirect could carry the request elsewhere; the portal URL must be the API's.
        .redirect(reqwest::redirect::Policy::none());
    if let Some(path) = &options.ca_file {
        let ca_error = |reason: String| HttpSetupError::CaFile {
            path: path.clone(),
            reason,
        };
        let pem = std::fs::read(path).map_err(|e| ca_error(e.to_string()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|_| ca_error("it is not a PEM certificate file".into()))?;
        if certs.is_empty() {
            return Err(ca_error(
                "it holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into(),
            ));
        }
        builder = builder.tls_certs_merge(certs);
    }
    let client = builder.build().map_err(|e| match &options.ca_file {
        Some(path) => HttpSetupError::CaFile {
            path: path.clone(),
            reason: error_chain(&e),
        },
        None => HttpSetupError::Client(error_chain(&e)),
    })?;

    Ok(client)
}

/// Retries with full-jitter exponential backoff, honouring `Retry-After`: shared by every
/// adapter that speaks HTTP, so they all back off alike.
pub(super) struct Retry {
    max_retries: u32,
    backoff_base: Duration,
    backoff_cap: Duration,
    retry_after_cap: Duration,
    sleeper: Sleeper,
    jitter: AtomicU64,
}

impl Retry {
    pub(super) fn new(options: &HttpOptions) -> Retry {
        let seed = RandomState::new().hash_one(Instant::now()) | 1;
        Retry {
            max_retries: options.max_retries,
            backoff_base: options.backoff_base,
            backoff_cap: options.backoff_cap,
            retry_after_cap: options.retry_after_cap,
            sleeper: options.sleeper.clone(),
            jitter: AtomicU64::new(seed),
        }
    }

    /// Runs `attempt` until it gives an answer that is not 429 or 5xx, a failure that cannot
    /// be retried, or the retries run out.
    pub(super) async fn run<F, Fut>(
        &self,
        method: &str,
        path: &str,
        mut attempt: F,
    ) -> PortalResult<Answer>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Answer, Failure>>,
    {
        let mut n = 0;
        loop {
            let retries_left = n < self.max_retries;
            let delay = match attempt().await {
                Ok(answer) if retries_left && is_retryable_status(answer.status) => {
                    match answer.retry_after {
                        Some(delay) => delay.min(self.retry_after_cap),
                        None => self.backoff(n),
                    }
                }
                Ok(answer) => return Ok(answer),
                Err(failure) if retries_left && failure.retryable => self.backoff(n),
                Err(failure) => return Err(failure.error),
            };
            tracing::debug!(
                method,
                path,
                attempt = n,
                delay_ms = delay.as_millis() as u64,
                "retrying portal request"
            );
            self.sleeper.sleep(delay).await;
            n += 1;
        }
    }

    /// Full jitter: a random delay up to `base * 2^attempt`, at most the cap.
    fn backoff(&self, attempt: u32) -> Duration {
        let ceiling = self
            .backoff_base
            .saturating_mul(1u32.checked_shl(attempt.min(30)).unwrap_or(u32::MAX))
            .min(self.backoff_cap);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        if nanos == 0 {
            return Duration::ZERO;
        }
        Duration::from_nanos(self.random() % (nanos + 1))
    }

    /// xorshift64: enough to spread retries; not for secrets.
    fn random(&self) -> u64 {
        let mut x = self.jitter.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.jitter.store(x, Ordering::Relaxed);
        x
    }
}

/// Where a request goes, for error sentences that name the portal and never a secret.
pub(super) struct Place<'a> {
    pub origin: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    pub options: &'a HttpOptions,
}

impl Place<'_> {
    /// Sends one prepared request and reads the whole answer.
    pub(super) async fn exchange(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<Answer, Failure> {
        let started = Instant::now();
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) => {
                self.options.on_answer.tell(None);
                return Err(self.failure(&e));
            }
        };
        let status = response.status();
        self.options.on_answer.tell(Some(status.as_u16()));
        let headers = response.headers();
        let problem_json = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim_start().starts_with("application/problem+json"));
        let retry_after = headers
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, jiff::Timestamp::now()));
        let body = response.bytes().await.map_err(|e| self.failure(&e))?;
        tracing::debug!(
            method = self.method,
            path = self.path,
            status = status.as_u16(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "portal request"
        );
        Ok(Answer {
            status,
            problem_json,
            retry_after,
            body,
        })
    }

    /// Turns a reqwest failure into a sentence that names the portal, never the token.
    fn failure(&self, error: &reqwest::Error) -> Failure {
        let Place {
            origin,
            method,
            path,
            options,
        } = self;
        if let Some(tls) = tls_problem(error) {
            return Failure {
                retryable: false,
                error: PortalError::Unreachable(match tls {
                    TlsProblem::Certificate(reason) => format!(
                        "cannot connect to {origin}: its TLS certificate could not be verified \
                         ({reason}); if the portal uses a private CA, pass it with --ca-file"
                    ),
                    TlsProblem::Other(reason) => {
                        format!("cannot connect to {origin}: the TLS handshake failed ({reason})")
                    }
                }),
            };
        }
        let sentence = if error.is_timeout() && error.is_connect() {
            format!(
                "cannot connect to {origin}: no answer within {}",
                seconds(options.connect_timeout)
            )
        } else if error.is_timeout() {
            format!(
                "{method} {path} on {origin} got no complete answer within {}",
                seconds(options.request_timeout)
            )
        } else if error.is_connect() {
            format!("cannot connect to {origin}: {}", root_cause(error))
        } else {
            format!("{method} {path} on {origin} failed: {}", root_cause(error))
        };
        Failure {
            retryable: !error.is_builder() && !error.is_redirect() && !error.is_decode(),
            error: PortalError::Unreachable(sentence),
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

/// A network failure of one attempt.
pub(super) struct Failure {
    pub retryable: bool,
    pub error: PortalError,
}

/// A problem document as portals really write them: every member optional.
#[derive(Deserialize)]
struct LenientProblem {
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    detail: Option<String>,
    #[serde(default)]
    code: Option<ErrorCode>,
    #[serde(default)]
    errors: Vec<FieldError>,
}

/// `Retry-After` as delay-seconds or as an HTTP-date (RFC 9110 §10.2.3); a date in the past
/// means now.
fn parse_retry_after(value: &str, now: jiff::Timestamp) -> Option<Duration> {
    static HTTP_DATE: jiff::fmt::rfc2822::DateTimeParser =
        jiff::fmt::rfc2822::DateTimeParser::new();
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = HTTP_DATE.parse_timestamp(value).ok()?;
    Some(Duration::try_from(at.duration_since(now)).unwrap_or(Duration::ZERO))
}

fn looks_like_json(body: &[u8]) -> bool {
    body.iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{')
}

fn is_retryable_status(status: StatusCode) -> bool {
    matches!(status.as_u16(), 429 | 500 | 502 | 503 | 504)
}

/// The best machine word for an answer without a problem document.
fn code_for(status: StatusCode) -> ErrorCode {
    match status.as_u16() {
        400 | 422 => ErrorCode::Invalid,
        401 => ErrorCode::Unauthenticated,
        403 => ErrorCode::Forbidden,
        404 | 410 => ErrorCode::NotFound,
        // The API answers 409 only for an invitation to a member who already has a login.
        409 => ErrorCode::AlreadyLinked,
        412 => ErrorCode::VersionConflict,
        429 => ErrorCode::RateLimited,
        500..=599 => ErrorCode::Unavailable,
        _ => ErrorCode::Other,
    }
}

/// What to do about a bare status, as the end of a sentence.
fn hint(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => " (the token was not accepted; check ROLECALL_TOKEN or the Portal's tokenEnv)",
        403 => " (the token's principal may not do this)",
        412 => " (the object changed since it was read; plan again)",
        429 => " (rate limited, retries exhausted)",
        300..=399 => " (a redirect, which rolecall does not follow; check the portal URL)",
        500..=599 => " (retries exhausted)",
        _ => "",
    }
}

fn seconds(d: Duration) -> String {
    format!("{} s", d.as_secs_f64())
}

enum TlsProblem {
    Certificate(String),
    Other(String),
}

/// The rustls error behind a failed connection, if any. `io::Error` hides its payload from
/// `source()` (and connectors nest them), so each level is also unwrapped as an `io::Error`.
fn tls_problem(error: &reqwest::Error) -> Option<TlsProblem> {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = next {
        let mut inner: &(dyn std::error::Error + 'static) = e;
        while let Some(payload) = inner
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            inner = payload;
        }
        match inner.downcast_ref::<rustls::Error>() {
            Some(rustls::Error::InvalidCertificate(reason)) => {
                return Some(TlsProblem::Certificate(format!("{reason:?}")));
            }
            Some(other) => return Some(TlsProblem::Other(other.to_string())),
            None => {}
        }
        next = e.source();
    }
    None
}

/// The innermost cause, in words: "connection refused", "dns error: ...".
fn root_cause(error: &reqwest::Error) -> String {
    let mut last: &(dyn std::error::Error + 'static) = error;
    while let Some(source) = last.source() {
        last = source;
    }
    if let Some(io) = last.downcast_ref::<std::io::Error>() {
        match io.kind() {
            std::io::ErrorKind::ConnectionRefused => return "connection refused".into(),
            std::io::ErrorKind::ConnectionReset => return "connection reset".into(),
            std::io::ErrorKind::ConnectionAborted => return "connection aborted".into(),
            _ => {}
        }
    }
    last.to_string()
}

/// Every message of an error's chain, joined.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    while let Some(e) = next {
        text.push_str(": ");
        text.push_str(&e.to_string());
        next = e.source();
    }
    text
}

/// Percent-encodes one path segment: everything but the unreserved `A-Za-z0-9-._~`.
pub fn encode_segment(segment: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(segment.len());
    for &b in segment.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn portal(base: &str) -> HttpPortal {
        HttpPortal::new(
            base,
            Token::new("tok", "T").unwrap(),
            HttpOptions::default(),
        )
        .unwrap()
    }

    #[test]
    fn encodes_everything_but_unreserved() {
        assert_eq!(encode_segment("a+b@x.example"), "a%2Bb%40x.example");
        assert_eq!(encode_segment("A-z_0.9~"), "A-z_0.9~");
        assert_eq!(encode_segment("a/b c?%#"), "a%2Fb%20c%3F%25%23");
        assert_eq!(encode_segment("ü"), "%C3%BC");
        assert_eq!(encode_segment(".."), "..");
    }

    #[test]
    fn builds_urls_under_a_path_prefix() {
        for base in ["https://h.example/portal", "https://h.example/portal/"] {
            let p = portal(base);
            assert_eq!(
                p.url(&["accounts", "10 01", "members", "a+b@x.example"])
                    .unwrap()
                    .as_str(),
                "https://h.example/portal/v1/accounts/10%2001/members/a%2Bb%40x.example"
            );
        }
        assert_eq!(
            portal("http://127.0.0.1:8080")
                .url(&["whoami"])
                .unwrap()
                .as_str(),
            "http://127.0.0.1:8080/v1/whoami"
        );
    }

    #[test]
    fn no_segment_changes_the_path() {
        let p = portal("https://h.example/portal/");
        for cn in [
            ".", "..", "a/b", "a/../b", "?x", "#x", "%2e%2e", "a\\b", " ",
        ] {
            match p.url(&["accounts", cn, "members", "a@x.example"]) {
                Ok(url) => {
                    let segments: Vec<&str> = url.path_segments().unwrap().collect();
                    assert_eq!(segments.len(), 6, "{cn:?} → {url}");
                    assert_eq!(
                        segments[..3],
                        ["portal", "v1", "accounts"],
                        "{cn:?} → {url}"
                    );
                    assert_eq!(
                        segments[4..],
                        ["members", "a%40x.example"],
                        "{cn:?} → {url}"
                    );
                    assert!(url.query().is_none() && url.fragment().is_none(), "{url}");
                }
                Err(e) => {
                    assert!(matches!(cn, "." | ".."), "{cn:?}: {e}");
                    assert!(matches!(e, PortalError::Unaddressable(_)), "{e:?}");
                    assert!(e.to_string().contains("no request was sent"), "{e}");
                }
            }
        }
    }

    #[test]
    fn rejects_unusable_base_urls_without_echoing_credentials() {
        let token = || Token::new("tok", "T").unwrap();
        for (url, needle) in [
            ("ftp://h.example", "https://"),
            ("not a url", "not usable"),
            ("https://h.example/?x=1", "query"),
        ] {
            let err = HttpPortal::new(url, token(), HttpOptions::default()).unwrap_err();
            assert!(err.to_string().contains(needle), "{err}");
        }
        let err = HttpPortal::new("https://u:pw@h.example", token(), HttpOptions::default())
            .unwrap_err()
            .to_string();
        assert!(!err.contains("pw"), "{err}");
        assert!(err.contains("credentials"), "{err}");
    }

    #[test]
    fn a_bad_ca_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "not a certificate\n").unwrap();
        for path in [missing, garbage] {
            let options = HttpOptions {
                ca_file: Some(path.clone()),
                ..HttpOptions::default()
            };
            let err = HttpPortal::new(
                "https://h.example",
                Token::new("tok", "T").unwrap(),
                options,
            )
            .unwrap_err()
            .to_string();
            assert!(err.contains(&path.display().to_string()), "{err}");
            assert!(err.starts_with("the CA file"), "{err}");
        }
    }

    #[test]
    fn backoff_is_capped_full_jitter() {
        let p = HttpPortal::new(
            "https://h.example",
            Token::new("tok", "T").unwrap(),
            HttpOptions {
                backoff_base: Duration::from_millis(200),
                backoff_cap: Duration::from_secs(10),
                ..HttpOptions::default()
            },
        )
        .unwrap();
        for attempt in 0..40 {
            let ceiling = (Duration::from_millis(200) * 2u32.pow(attempt.min(20)))
                .min(Duration::from_secs(10));
            for _ in 0..20 {
                assert!(p.backoff(attempt) <= ceiling);
            }
        }
        let spread: std::collections::HashSet<_> = (0..50).map(|_| p.backoff(5)).collect();
        assert!(spread.len() > 10, "the delays are jittered");
    }

    #[test]
    fn reads_retry_after_as_seconds_or_http_date() {
        let now: jiff::Timestamp = "2026-11-26T10:00:00Z".parse().unwrap();
        let secs = Duration::from_secs;
        assert_eq!(parse_retry_after("1", now), Some(secs(1)));
        assert_eq!(parse_retry_after(" 120 ", now), Some(secs(120)));
        assert_eq!(
            parse_retry_after("Thu, 26 Nov 2026 10:00:30 GMT", now),
            Some(secs(30))
        );
        assert_eq!(
            parse_retry_after("Thu, 26 Nov 2026 09:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }

    #[test]
    fn codes_for_bare_statuses() {
        assert_eq!(
            code_for(StatusCode::UNAUTHORIZED),
            ErrorCode::Unauthenticated
        );
        assert_eq!(code_for(StatusCode::FORBIDDEN), ErrorCode::Forbidden);
        assert_eq!(code_for(StatusCode::NOT_FOUND), ErrorCode::NotFound);
        assert_eq!(
            code_for(StatusCode::PRECONDITION_FAILED),
            ErrorCode::VersionConflict
        );
        assert_eq!(
            code_for(StatusCode::TOO_MANY_REQUESTS),
            ErrorCode::RateLimited
        );
        assert_eq!(
            code_for(StatusCode::SERVICE_UNAVAILABLE),
            ErrorCode::Unavailable
        );
        assert_eq!(code_for(StatusCode::IM_A_TEAPOT), ErrorCode::Other);
    }

    #[test]
    fn debug_hides_the_token() {
        let p = HttpPortal::new(
            "https://h.example",
            Token::new("very-secret-token", "T").unwrap(),
            HttpOptions::default(),
        )
        .unwrap();
        let text = format!("{p:?} {p:#?}");
        assert!(!text.contains("very-secret-token"), "{text}");
        assert!(text.contains("Token(***)"));
    }
}
