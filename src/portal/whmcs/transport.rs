//! One WHMCS API call: the form-encoded request, its retries, and the answer read as success
//! or as the SPEC §4 problem it stands for, with the credentials scrubbed.

use super::*;
use crate::portal::form_api::{FormPost, Product, foreign_answer};

/// How error sentences name the WHMCS API.
const WHMCS: Product = Product {
    name: "WHMCS",
    answer: "WHMCS API",
    hint: "is the URL the WHMCS root?",
    silent: " without a WHMCS message",
};

impl WhmcsPortal {
    /// Calls one API action and returns its answer when WHMCS says it succeeded.
    pub(super) async fn call(
        &self,
        action: &str,
        params: &[(&str, String)],
    ) -> PortalResult<Value> {
        self.send(action, params, true).await
    }

    /// Calls an action that must not run twice (it sends an e-mail or creates an object) and
    /// that WHMCS gives no idempotency key for: one attempt, because a retry after an answer
    /// that was lost would do it again.
    pub(super) async fn call_once(
        &self,
        action: &str,
        params: &[(&str, String)],
    ) -> PortalResult<Value> {
        self.send(action, params, false).await
    }

    pub(super) async fn send(
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
        let answer = self
            .form_post()
            .send(action, &form, retrying, || self.throttle.wait())
            .await
            .map_err(|e| self.scrub(e))?;
        self.read(action, &answer)
    }

    fn form_post(&self) -> FormPost<'_> {
        FormPost {
            client: &self.client,
            endpoint: &self.endpoint,
            origin: &self.origin,
            options: &self.options.http,
            retry: &self.retry,
            requests: &self.requests,
        }
    }

    /// The answer of `action` as JSON, or the error it stands for.
    pub(super) fn read(&self, action: &str, answer: &Answer) -> PortalResult<Value> {
        let body: Option<Value> = serde_json::from_slice(&answer.body).ok();
        match body.as_ref().map(wire::outcome) {
            Some(wire::Outcome::Success) if answer.status.is_success() => {
                Ok(body.unwrap_or(Value::Null))
            }
            Some(wire::Outcome::Error(message)) if !message.is_empty() => {
                Err(self.refusal(action, message))
            }
            _ => Err(foreign_answer(&WHMCS, action, &self.origin, answer)),
        }
    }

    /// A WHMCS error message as a problem of SPEC §4.
    pub(super) fn refusal(&self, action: &str, message: &str) -> PortalError {
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

    pub(super) fn scrub(&self, e: PortalError) -> PortalError {
        match e {
            PortalError::Unreachable(s) => PortalError::Unreachable(self.credentials.redact(&s)),
            PortalError::Protocol(s) => PortalError::Protocol(self.credentials.redact(&s)),
            other => other,
        }
    }

    /// Every item of a paged action: follows `limitstart` through `totalresults`.
    pub(super) async fn all_pages(
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
}

/// The SPEC §4 problem a WHMCS error message stands for.
pub(super) fn classify(message: &str) -> (u16, ErrorCode) {
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
