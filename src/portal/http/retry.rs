//! Retries with jittered exponential backoff and one attempt's exchange: shared by every
//! adapter that speaks HTTP, so they all back off alike and name failures alike.

use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::header;

use super::{Answer, HttpOptions, Sleeper};
use crate::portal::{PortalError, PortalResult};

/// Retries with full-jitter exponential backoff, honouring `Retry-After`: shared by every
/// adapter that speaks HTTP, so they all back off alike.
pub(in crate::portal) struct Retry {
    max_retries: u32,
    backoff_base: Duration,
    backoff_cap: Duration,
    retry_after_cap: Duration,
    sleeper: Sleeper,
    jitter: AtomicU64,
}

impl Retry {
    pub(in crate::portal) fn new(options: &HttpOptions) -> Retry {
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
    pub(in crate::portal) async fn run<F, Fut>(
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
    pub(super) fn backoff(&self, attempt: u32) -> Duration {
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
pub(in crate::portal) struct Place<'a> {
    pub origin: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    pub options: &'a HttpOptions,
}

impl Place<'_> {
    /// Sends one prepared request and reads the whole answer.
    pub(in crate::portal) async fn exchange(
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

/// A network failure of one attempt.
pub(in crate::portal) struct Failure {
    pub retryable: bool,
    pub error: PortalError,
}

/// `Retry-After` as delay-seconds or as an HTTP-date (RFC 9110 §10.2.3); a date in the past
/// means now.
pub(super) fn parse_retry_after(value: &str, now: jiff::Timestamp) -> Option<Duration> {
    static HTTP_DATE: jiff::fmt::rfc2822::DateTimeParser =
        jiff::fmt::rfc2822::DateTimeParser::new();
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = HTTP_DATE.parse_timestamp(value).ok()?;
    Some(Duration::try_from(at.duration_since(now)).unwrap_or(Duration::ZERO))
}

pub(super) fn is_retryable_status(status: StatusCode) -> bool {
    matches!(status.as_u16(), 429 | 500 | 502 | 503 | 504)
}

pub(super) fn seconds(d: Duration) -> String {
    format!("{} s", d.as_secs_f64())
}

pub(super) enum TlsProblem {
    Certificate(String),
    Other(String),
}

/// The rustls error behind a failed connection, if any. `io::Error` hides its payload from
/// `source()` (and connectors nest them), so each level is also unwrapped as an `io::Error`.
pub(super) fn tls_problem(error: &reqwest::Error) -> Option<TlsProblem> {
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
pub(super) fn root_cause(error: &reqwest::Error) -> String {
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
pub(super) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    while let Some(e) = next {
        text.push_str(": ");
        text.push_str(&e.to_string());
        next = e.source();
    }
    text
}
