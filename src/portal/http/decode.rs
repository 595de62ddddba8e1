//! Answers turned into values or [`PortalError`]s: 2xx bodies decoded, problem documents
//! read leniently, list endpoints followed to their last page.

use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::{Answer, Call, HttpPortal, MAX_PAGE_LIMIT};
use crate::portal::{ErrorCode, FieldError, Page, PortalError, PortalResult};

/// Only the cursor of a page, read ahead of its items to ask for the next page sooner.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct PageCursor {
    next_cursor: Option<String>,
}

/// A page's `nextCursor`. The reference portal writes it ahead of the items, and then it is
/// read without them: the whole page was scanned for it, on the way of every page to the
/// request for the next. Anywhere else in the page, the page is read for it.
fn cursor_of(body: &[u8]) -> Option<String> {
    let first = body.strip_prefix(b"{\"nextCursor\":").and_then(|rest| {
        Option::<String>::deserialize(&mut serde_json::Deserializer::from_slice(rest)).ok()
    });
    match first {
        Some(cursor) => cursor,
        None => serde_json::from_slice::<PageCursor>(body)
            .ok()
            .and_then(|p| p.next_cursor),
    }
}

impl HttpPortal {
    /// The decoded body of a 2xx answer, or the error the answer stands for.
    pub(super) fn decode<T: DeserializeOwned>(
        &self,
        call: &Call<'_>,
        answer: Answer,
    ) -> PortalResult<T> {
        if !answer.status.is_success() {
            return Err(self.refusal(call, &answer));
        }
        serde_json::from_slice(&answer.body).map_err(|e| self.mismatch(call, answer.status, &e))
    }

    /// An answer whose body does not match the API.
    pub(super) fn mismatch(
        &self,
        call: &Call<'_>,
        status: StatusCode,
        e: &serde_json::Error,
    ) -> PortalError {
        PortalError::Protocol(format!(
            "{} {} on {} answered {} with a body that does not match the API: {e}",
            call.method,
            call.url.path(),
            self.origin,
            status.as_u16()
        ))
    }

    /// A non-2xx answer as a [`PortalError::Problem`].
    pub(super) fn refusal(&self, call: &Call<'_>, answer: &Answer) -> PortalError {
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

    /// Every item of a list endpoint: follows `nextCursor` to the last page. The next page is
    /// asked for as soon as its cursor is known, and this one is decoded on a blocking thread
    /// meanwhile, so that the portal and rolecall work side by side instead of taking turns.
    pub(super) async fn get_all<T: DeserializeOwned + Send + 'static>(
        &self,
        segments: &[&str],
        accounts: &[String],
    ) -> PortalResult<Vec<T>> {
        let mut items = Vec::new();
        self.get_pages(segments, accounts, &mut |page: Vec<T>| {
            if items.is_empty() {
                items = page;
            } else {
                items.extend(page);
            }
        })
        .await?;
        Ok(items)
    }

    /// [`Self::get_all`], each page's items handed to `on_page` as soon as it is decoded
    /// (while the next page is under way).
    pub(super) async fn get_pages<T: DeserializeOwned + Send + 'static>(
        &self,
        segments: &[&str],
        accounts: &[String],
        on_page: &mut (dyn FnMut(Vec<T>) + Send),
    ) -> PortalResult<()> {
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
        let mut cursor: Option<String> = None;
        let mut call = page_call(None);
        let mut answer = self.send(&call).await?;
        loop {
            if !answer.status.is_success() {
                return Err(self.refusal(&call, &answer));
            }
            // A body that does not parse has no cursor here; decoding it reports why.
            let next = cursor_of(&answer.body).filter(|c| !c.is_empty());
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
            // On tokio's blocking threads, not the workers: while a prefetch reads the portal
            // the workers parse the manifests, and a page queued behind them would hold up
            // the next request (reconcile::Prefetch).
            let decoding = async move {
                tokio::task::spawn_blocking(move || serde_json::from_slice::<Page<T>>(&body))
                    .await
                    .ok()
            };
            let (page, following) = match &next {
                Some(next) => {
                    let next_call = page_call(Some(next));
                    let (page, following) = tokio::join!(decoding, self.send(&next_call));
                    (page, Some((next_call, following)))
                }
                None => (decoding.await, None),
            };
            let page = match page {
                Some(Ok(page)) => page,
                Some(Err(e)) => return Err(self.mismatch(&call, status, &e)),
                None => {
                    return Err(PortalError::Protocol(format!(
                        "GET {} on {}: decoding the answer was cancelled",
                        call.url.path(),
                        self.origin
                    )));
                }
            };
            on_page(page.items);
            match following {
                Some((next_call, next_answer)) => {
                    answer = next_answer?;
                    call = next_call;
                    cursor = next;
                }
                None => return Ok(()),
            }
        }
    }
}

/// A problem document as portals really write them: every member optional.
#[derive(Deserialize)]
pub(super) struct LenientProblem {
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    detail: Option<String>,
    #[serde(default)]
    code: Option<ErrorCode>,
    #[serde(default)]
    errors: Vec<FieldError>,
}

pub(super) fn looks_like_json(body: &[u8]) -> bool {
    body.iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{')
}

/// The best machine word for an answer without a problem document.
pub(super) fn code_for(status: StatusCode) -> ErrorCode {
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
pub(super) fn hint(status: StatusCode) -> &'static str {
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

#[cfg(test)]
mod cursor_tests {
    use super::*;

    #[test]
    fn the_cursor_is_read_ahead_of_the_items_or_from_the_whole_page() {
        let page = Page {
            next_cursor: Some("6162".to_string()),
            items: vec![1, 2, 3],
        };
        let written = serde_json::to_vec(&page).unwrap();
        assert!(
            written.starts_with(b"{\"nextCursor\":"),
            "the portal's order"
        );
        assert_eq!(cursor_of(&written).as_deref(), Some("6162"));
        let last: &[u8] = br#"{"items":[{"a":"}"}],"nextCursor":"6163"}"#;
        assert_eq!(cursor_of(last).as_deref(), Some("6163"));
        assert_eq!(cursor_of(br#"{"nextCursor":null,"items":[]}"#), None);
        assert_eq!(cursor_of(br#"{"items":[]}"#), None);
        // A cursor that is no string is no cursor, wherever it stands.
        assert_eq!(cursor_of(br#"{"nextCursor":7,"items":[]}"#), None);
        assert_eq!(cursor_of(b"not json"), None);
    }
}
