//! What the form-encoded `POST` APIs (WHMCS, BILLmanager) share: one form sent to one
//! endpoint with the portal API's retries (or once, for a call that must not run twice), and
//! the problem that an answer which is not the API's own stands for.

use std::sync::atomic::{AtomicU64, Ordering};

use reqwest::Url;

use super::http::{Answer, HttpOptions, Place, Retry};
use super::{ErrorCode, PortalError, PortalResult};

/// One form API endpoint and what every call to it shares.
pub(super) struct FormPost<'a> {
    pub client: &'a reqwest::Client,
    pub endpoint: &'a Url,
    pub origin: &'a str,
    pub options: &'a HttpOptions,
    pub retry: &'a Retry,
    /// Counts every attempt, retries included.
    pub requests: &'a AtomicU64,
}

impl FormPost<'_> {
    /// Posts `form`; `name` (the action) names the call in error sentences. `retrying`
    /// retries 429, 5xx and lost connections; `before` runs before every attempt (a rate
    /// limit's wait).
    pub(super) async fn send<B>(
        &self,
        name: &str,
        form: &[(&str, &str)],
        retrying: bool,
        before: impl Fn() -> B,
    ) -> PortalResult<Answer>
    where
        B: Future<Output = ()>,
    {
        let place = Place {
            origin: self.origin,
            method: "POST",
            path: name,
            options: self.options,
        };
        let attempt = || async {
            before().await;
            self.requests.fetch_add(1, Ordering::Relaxed);
            let request = self.client.post(self.endpoint.clone()).form(form);
            place.exchange(request).await
        };
        if retrying {
            self.retry.run("POST", name, attempt).await
        } else {
            attempt().await.map_err(|failure| failure.error)
        }
    }
}

/// How an adapter's error sentences name its API.
pub(super) struct Product {
    /// `WHMCS`, `BILLmanager`.
    pub name: &'static str,
    /// What its answers are called: `WHMCS API`, `BILLmanager`.
    pub answer: &'static str,
    /// What to check when something else answers: `is the URL the WHMCS root?`.
    pub hint: &'static str,
    /// After `HTTP <status>` when the answer says nothing of its own.
    pub silent: &'static str,
}

/// The problem that an answer which is not the API's own stands for: a 2xx with another body
/// is a 502, a 404 means no API at that address, 401/403 unauthenticated, 429 rate limited,
/// 5xx unavailable.
pub(super) fn foreign_answer(
    product: &Product,
    name: &str,
    origin: &str,
    answer: &Answer,
) -> PortalError {
    let status = answer.status.as_u16();
    let what = if answer.status.is_success() {
        format!(
            "with something that is not a {} answer ({})",
            product.answer, product.hint
        )
    } else if status == 404 {
        // Not an object that is gone: there is no API here at all.
        format!(
            "404: there is no {} API at this address ({})",
            product.name, product.hint
        )
    } else {
        format!("HTTP {status}{}", product.silent)
    };
    PortalError::Problem {
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
        detail: format!("{} {name} on {origin} answered {what}", product.name),
        errors: Vec::new(),
    }
}
