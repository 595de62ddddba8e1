//! One BILLmanager call: the form post, its session, its retries, and `doc.error` read as the
//! SPEC §4 problem it stands for, with the credentials and session scrubbed.

use super::*;
use crate::portal::form_api::{FormPost, Product, foreign_answer};

/// How error sentences name the BILLmanager API.
const BILLMANAGER: Product = Product {
    name: "BILLmanager",
    answer: "BILLmanager",
    hint: "is the URL https://host:1500/billmgr?",
    silent: "",
};

impl BillmgrPortal {
    /// Posts one form and reads the answer's `doc`; `retrying` retries 429, 5xx and lost
    /// connections (never for a call that must not run twice).
    pub(super) async fn post(
        &self,
        func: &str,
        form: &[(&str, &str)],
        retrying: bool,
    ) -> PortalResult<Value> {
        let post = FormPost {
            client: &self.client,
            endpoint: &self.endpoint,
            origin: &self.origin,
            options: &self.options.http,
            retry: &self.retry,
            requests: &self.requests,
        };
        let answer = post
            .send(func, form, retrying, || std::future::ready(()))
            .await
            .map_err(|e| self.scrub(e))?;
        self.doc(func, &answer)
    }

    /// The `doc` of an answer, or the problem an answer without one stands for.
    pub(super) fn doc(&self, func: &str, answer: &Answer) -> PortalResult<Value> {
        let body: Option<Value> = serde_json::from_slice(&answer.body).ok();
        if answer.status.is_success()
            && let Some(doc) = body.as_ref().and_then(|b| b.get("doc"))
            && doc.is_object()
        {
            return Ok(doc.clone());
        }
        Err(foreign_answer(&BILLMANAGER, func, &self.origin, answer))
    }

    pub(super) fn scrub(&self, e: PortalError) -> PortalError {
        match e {
            PortalError::Unreachable(s) => PortalError::Unreachable(self.credentials.redact(&s)),
            PortalError::Protocol(s) => PortalError::Protocol(self.credentials.redact(&s)),
            PortalError::Unaddressable(s) => {
                PortalError::Unaddressable(self.credentials.redact(&s))
            }
            PortalError::Problem {
                status,
                code,
                detail,
                errors,
            } => PortalError::Problem {
                status,
                code,
                detail: self.credentials.redact(&detail),
                errors,
            },
        }
    }

    /// The session id, logging in when there is none.
    pub(super) async fn session(&self) -> PortalResult<Hidden> {
        let mut session = self.session.lock().await;
        if let Some(id) = session.as_ref() {
            return Ok(id.clone());
        }
        let form = [
            ("func", "auth"),
            ("username", self.credentials.username.0.as_str()),
            ("password", self.credentials.password.0.as_str()),
            ("out", "json"),
            ("lang", "en"),
        ];
        let doc = self.post("auth", &form, true).await?;
        if let Some(e) = wire::error(&doc) {
            // Whatever the type, a refused login is a refused login; the message (which may
            // echo the username) is not repeated.
            return Err(PortalError::problem(
                401,
                ErrorCode::Unauthenticated,
                format!(
                    "BILLmanager on {} refused the login (error type {:?}); check {}",
                    self.origin, e.kind, self.credentials.source
                ),
            ));
        }
        let id = doc
            .get("auth")
            .and_then(|a| a.get("$id"))
            .and_then(|v| wire::value(Some(v)))
            .filter(|id| !id.trim().is_empty())
            .ok_or_else(|| {
                PortalError::Protocol(format!(
                    "BILLmanager on {} answered func=auth without a session id (doc.auth.$id)",
                    self.origin
                ))
            })?;
        let id = Hidden(id);
        *session = Some(id.clone());
        Ok(id)
    }

    /// Forgets the session `old` (unless another task has renewed it already).
    pub(super) async fn forget(&self, old: &Hidden) {
        let mut session = self.session.lock().await;
        if session.as_ref().is_some_and(|s| s.0 == old.0) {
            *session = None;
        }
    }

    /// Calls a function that may run twice (a read, or a write that sets a state).
    pub(super) async fn call(&self, func: &str, params: &[(&str, String)]) -> PortalResult<Value> {
        self.send(func, params, true).await
    }

    /// Calls a function that must not run twice (it creates a user): one attempt, because a
    /// retry after a lost answer would create a second one. The caller reads first.
    pub(super) async fn call_once(
        &self,
        func: &str,
        params: &[(&str, String)],
    ) -> PortalResult<Value> {
        self.send(func, params, false).await
    }

    pub(super) async fn send(
        &self,
        func: &str,
        params: &[(&str, String)],
        retrying: bool,
    ) -> PortalResult<Value> {
        let mut renewed = false;
        loop {
            let session = self.session().await?;
            let mut form: Vec<(&str, &str)> = vec![
                ("func", func),
                ("auth", session.0.as_str()),
                ("out", "json"),
                ("lang", "en"),
            ];
            form.extend(params.iter().map(|(k, v)| (*k, v.as_str())));
            let doc = self.post(func, &form, retrying).await?;
            match wire::error(&doc) {
                None => return Ok(doc),
                // The session has idled out (or was ended): log in again, once. A call that
                // was refused for `access` did not run, so sending it again is safe.
                Some(e) if e.kind == "access" && !renewed => {
                    tracing::debug!(func, "BILLmanager session ended; logging in again");
                    self.forget(&session).await;
                    renewed = true;
                }
                Some(e) => return Err(self.refusal(func, &e, renewed)),
            }
        }
    }

    /// A `doc.error` as a problem of SPEC §4, classified by `$type` and `$object` only.
    pub(super) fn refusal(&self, func: &str, e: &wire::DocError, renewed: bool) -> PortalError {
        let (status, code) = classify(e);
        let message = self.credentials.redact(&e.message);
        let about = if e.object.is_empty() {
            String::new()
        } else {
            format!(" about {:?}", e.object)
        };
        let detail = match code {
            ErrorCode::Unauthenticated if renewed => format!(
                "BILLmanager {func} on {} refused a fresh session (error type access{about}): the user of {} may not do this",
                self.origin, self.credentials.source
            ),
            _ => format!(
                "BILLmanager {func} refused (error type {:?}{about}): {message}",
                e.kind
            ),
        };
        PortalError::problem(status, code, detail)
    }
}

/// The SPEC §4 problem a `doc.error` stands for, by its `$type` and `$object` alone — never
/// by the localized message. NB: only `access` is shown by the sources; the other types are
/// ISPsystem's documented error types and have not been checked against a live BILLmanager.
pub(super) fn classify(e: &wire::DocError) -> (u16, ErrorCode) {
    match e.kind.as_str() {
        "access" | "auth" => (401, ErrorCode::Unauthenticated),
        "perm" | "permission" | "license" => (403, ErrorCode::Forbidden),
        "exists" => (409, ErrorCode::AlreadyLinked),
        "missed" if matches!(e.object.as_str(), "elid" | "user") => (404, ErrorCode::NotFound),
        "notfound" | "not_found" => (404, ErrorCode::NotFound),
        "missed" | "value" | "empty" | "invalid" => (422, ErrorCode::Invalid),
        _ => (422, ErrorCode::Other),
    }
}
