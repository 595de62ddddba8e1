//! One handler per endpoint: authenticate, parse, call the store, answer JSON.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use jiff::Timestamp;
use serde::Serialize;

use super::{ApiError, App};
use crate::portal::ErrorCode;
use crate::portal::api::{
    AccountPatch, ClockSetting, ContactPut, EmailRequest, IssuedToken, MemberPut, NewAccount,
    NotificationRequest, TokenRequest,
};
use crate::reference::store::{Once, Principal, Rejection, Store, token_hash};

pub use super::request::PathParams;
use super::request::{Query, body, check_role_fields, if_match, json, json_text, no_content};

type Reply = Result<Response, ApiError>;

/// Answers a POST once per `Idempotency-Key`: a repeated key with the same request replays
/// the first answer (no second e-mail); with a different request it is refused. Only
/// successful answers are remembered, so a refused request can be corrected and retried.
async fn idempotent<F>(
    app: &App,
    p: &Principal,
    headers: &HeaderMap,
    method: &Method,
    uri: &Uri,
    bytes: &[u8],
    f: F,
) -> Reply
where
    F: FnOnce(&mut Store, Timestamp) -> Result<(StatusCode, String), Rejection> + Send + 'static,
{
    let key = match headers.get("idempotency-key") {
        None => None,
        Some(v) => match v.to_str() {
            Ok(k) if !k.is_empty() && k.len() <= 255 => Some(k.to_string()),
            _ => {
                return Err(ApiError(Rejection::invalid_field(
                    "Idempotency-Key",
                    "must be 1 to 255 visible ASCII characters",
                )));
            }
        },
    };
    let mut request = format!("{method} {uri}\n").into_bytes();
    request.extend_from_slice(bytes);
    let fingerprint = token_hash(&String::from_utf8_lossy(&request));
    let token_id = p.token_id.clone();
    let (status, body) = app
        .run(move |s, now| {
            let once = s.answer_once(
                &token_id,
                key.as_deref(),
                &fingerprint,
                |s| f(s, now),
                |(status, body)| (status.as_u16(), body.clone()),
            )?;
            Ok(match once {
                Once::Fresh(answer) => answer,
                Once::Replayed(status, body) => {
                    (StatusCode::from_u16(status).unwrap_or(StatusCode::OK), body)
                }
            })
        })
        .await?;
    Ok(json_text(status, body))
}

fn to_text<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

// --- /v1 -------------------------------------------------------------------------------------

pub async fn whoami(State(app): State<App>, headers: HeaderMap) -> Reply {
    let p = app.principal(&headers).await?;
    Ok(json(StatusCode::OK, &p.whoami()))
}

pub async fn catalog(State(app): State<App>, headers: HeaderMap) -> Reply {
    app.principal(&headers).await?;
    Ok(json(
        StatusCode::OK,
        &crate::reference::store::reference_catalog(),
    ))
}

pub async fn list_accounts(
    State(app): State<App>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Reply {
    let p = app.principal(&headers).await?;
    let (cursor, limit) = Query::parse(q).paging()?;
    let page = app
        .read(move |s, now| s.list_accounts(&p, now, cursor.as_deref(), limit))
        .await?;
    Ok(json(StatusCode::OK, &page))
}

pub async fn create_account(
    State(app): State<App>,
    headers: HeaderMap,
    method: Method,
    uri: Uri,
    bytes: Bytes,
) -> Reply {
    let p = app.principal(&headers).await?;
    let new: NewAccount = body(&bytes)?;
    let actor = p.clone();
    idempotent(&app, &p, &headers, &method, &uri, &bytes, move |s, now| {
        let account = s.create_account(&actor, now, &new)?;
        Ok((StatusCode::CREATED, to_text(&account)))
    })
    .await
}

pub async fn get_account(
    State(app): State<App>,
    headers: HeaderMap,
    PathParams(cn): PathParams<String>,
) -> Reply {
    let p = app.principal(&headers).await?;
    let account = app.read(move |s, now| s.get_account(&p, now, &cn)).await?;
    Ok(json(StatusCode::OK, &account))
}

pub async fn update_account(
    State(app): State<App>,
    headers: HeaderMap,
    PathParams(cn): PathParams<String>,
    bytes: Bytes,
) -> Reply {
    let p = app.principal(&headers).await?;
    let patch: AccountPatch = body(&bytes)?;
    let precondition = if_match(&headers);
    let account = app
        .run(move |s, now| s.update_account(&p, now, &cn, &patch, precondition.as_deref()))
        .await?;
    Ok(json(StatusCode::OK, &account))
}

pub async fn list_account_members(
    State(app): State<App>,
    headers: HeaderMap,
    PathParams(cn): PathParams<String>,
    RawQuery(q): RawQuery,
) -> Reply {
    let p = app.principal(&headers).await?;
    let (cursor, limit) = Query::parse(q).paging()?;
    let page = app
        .read(move |s, now| s.list_account_members(&p, now, &cn, cursor.as_deref(), limit))
        .await?;
    Ok(json(StatusCode::OK, &page))
}

pub async fn list_members(
    State(app): State<App>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Reply {
    let p = app.principal(&headers).await?;
    let q = Query::parse(q);
    let (cursor, limit) = q.paging()?;
    let filter = q.accounts();
    let page = app
        .read(move |s, now| s.list_members(&p, now, &filter, cursor.as_deref(), limit))
        .await?;
    Ok(json(StatusCode::OK, &page))
}

pub async fn get_member(
    State(app): State<App>,
    headers: HeaderMap,
    PathParams((cn, email)): PathParams<(String, String)>,
) -> Reply {
    let p = app.principal(&headers).await?;
    let member = app
        .read(move |s, now| s.get_member(&p, now, &cn, &email))
        .await?;
    Ok(json(StatusCode::OK, &member))
}

pub async fn put_member(
    State(app): State<App>,
    headers: HeaderMap,
    PathParams((cn, email)): PathParams<(String, String)>,
    bytes: Bytes,
) -> Reply {
    let p = app.principal(&headers).await?;
    let put: MemberPut = body(&bytes)?;
    check_role_fields(&bytes)?;
    let precondition = if_match(&headers);
    let (member, created) = app
        .run(move |s, now| s.put_member(&p, now, &cn, &email, &put, precondition.as_deref()))
        .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(json(status, &member))
}

pub async fn delete_member(
    State(app): State<App>,
    headers: HeaderMap,
    PathParams((cn, email)): PathParams<(String, String)>,
) -> Reply {
    let p = app.principal(&headers).await?;
    let precondition = if_match(&headers);
    app.run(move |s, now| s.delete_member(&p, now, &cn, &email, precondition.as_deref()))
        .await?;
    Ok(no_content())
}

pub async fn invite(
    State(app): State<App>,
    headers: HeaderMap,
    method: Method,
    uri: Uri,
    PathParams((cn, email)): PathParams<(String, String)>,
    RawQuery(q): RawQuery,
    bytes: Bytes,
) -> Reply {
    let p = app.principal(&headers).await?;
    let resend = Query::parse(q).flag("resend")?;
    let actor = p.clone();
    idempotent(&app, &p, &headers, &method, &uri, &bytes, move |s, now| {
        let (invitation, sent) = s.invite(&actor, now, &cn, &email, resend)?;
        let status = if sent {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        Ok((status, to_text(&invitation)))
    })
    .await
}

pub async fn cancel_invitation(
    State(app): State<App>,
    headers: HeaderMap,
    PathParams((cn, email)): PathParams<(String, String)>,
) -> Reply {
    let p = app.principal(&headers).await?;
    app.run(move |s, now| s.cancel_invitation(&p, now, &cn, &email))
        .await?;
    Ok(no_content())
}

pub async fn list_account_contacts(
    State(app): State<App>,
    headers: HeaderMap,
    PathParams(cn): PathParams<String>,
    RawQuery(q): RawQuery,
) -> Reply {
    let p = app.principal(&headers).await?;
    let (cursor, limit) = Query::parse(q).paging()?;
    let page = app
        .read(move |s, now| s.list_account_contacts(&p, now, &cn, cursor.as_deref(), limit))
        .await?;
    Ok(json(StatusCode::OK, &page))
}

pub async fn list_contacts(
    State(app): State<App>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Reply {
    let p = app.principal(&headers).await?;
    let q = Query::parse(q);
    let (cursor, limit) = q.paging()?;
    let filter = q.accounts();
    let page = app
        .read(move |s, now| s.list_contacts(&p, now, &filter, cursor.as_deref(), limit))
        .await?;
    Ok(json(StatusCode::OK, &page))
}

pub async fn put_contact(
    State(app): State<App>,
    headers: HeaderMap,
    PathParams((cn, email)): PathParams<(String, String)>,
    bytes: Bytes,
) -> Reply {
    let p = app.principal(&headers).await?;
    let put: ContactPut = body(&bytes)?;
    let precondition = if_match(&headers);
    let (contact, created) = app
        .run(move |s, now| s.put_contact(&p, now, &cn, &email, &put, precondition.as_deref()))
        .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(json(status, &contact))
}

pub async fn delete_contact(
    State(app): State<App>,
    headers: HeaderMap,
    PathParams((cn, email)): PathParams<(String, String)>,
) -> Reply {
    let p = app.principal(&headers).await?;
    let precondition = if_match(&headers);
    app.run(move |s, now| s.delete_contact(&p, now, &cn, &email, precondition.as_deref()))
        .await?;
    Ok(no_content())
}

pub async fn audit(
    State(app): State<App>,
    headers: HeaderMap,
    PathParams(cn): PathParams<String>,
    RawQuery(q): RawQuery,
) -> Reply {
    let p = app.principal(&headers).await?;
    let (cursor, limit) = Query::parse(q).paging()?;
    let page = app
        .read(move |s, now| s.audit_log(&p, now, &cn, cursor.as_deref(), limit))
        .await?;
    Ok(json(StatusCode::OK, &page))
}

// --- /sandbox --------------------------------------------------------------------------------

pub async fn issue_token(
    State(app): State<App>,
    headers: HeaderMap,
    method: Method,
    uri: Uri,
    bytes: Bytes,
) -> Reply {
    let p = app.principal(&headers).await?;
    let request: TokenRequest = body(&bytes)?;
    let actor = p.clone();
    idempotent(&app, &p, &headers, &method, &uri, &bytes, move |s, _| {
        let token = s.issue_token(&actor, request.email.as_deref(), request.operator)?;
        Ok((StatusCode::CREATED, to_text(&IssuedToken { token })))
    })
    .await
}

pub async fn create_user(
    State(app): State<App>,
    headers: HeaderMap,
    method: Method,
    uri: Uri,
    bytes: Bytes,
) -> Reply {
    let p = app.principal(&headers).await?;
    let request: EmailRequest = body(&bytes)?;
    let actor = p.clone();
    idempotent(&app, &p, &headers, &method, &uri, &bytes, move |s, _| {
        let (user, created) = s.create_user(&actor, &request.email)?;
        let status = if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        Ok((status, to_text(&user)))
    })
    .await
}

pub async fn accept(
    State(app): State<App>,
    headers: HeaderMap,
    method: Method,
    uri: Uri,
    PathParams(id): PathParams<String>,
    bytes: Bytes,
) -> Reply {
    let p = app.principal(&headers).await?;
    let request: EmailRequest = body(&bytes)?;
    let actor = p.clone();
    idempotent(&app, &p, &headers, &method, &uri, &bytes, move |s, _| {
        let member = s.accept_invitation(&actor, &id, &request.email)?;
        Ok((StatusCode::OK, to_text(&member)))
    })
    .await
}

pub async fn send_notification(
    State(app): State<App>,
    headers: HeaderMap,
    method: Method,
    uri: Uri,
    bytes: Bytes,
) -> Reply {
    let p = app.principal(&headers).await?;
    let request: NotificationRequest = body(&bytes)?;
    let actor = p.clone();
    idempotent(&app, &p, &headers, &method, &uri, &bytes, move |s, _| {
        let sent = s.send_notification(
            &actor,
            &request.customer_number,
            &request.kind,
            &request.subject,
        )?;
        Ok((StatusCode::OK, to_text(&sent)))
    })
    .await
}

pub async fn outbox(State(app): State<App>, headers: HeaderMap) -> Reply {
    let p = app.principal(&headers).await?;
    let outbox = app.run(move |s, _| s.outbox(&p)).await?;
    Ok(json(StatusCode::OK, &outbox))
}

pub async fn get_clock(State(app): State<App>, headers: HeaderMap) -> Reply {
    app.principal(&headers).await?;
    let now = app.run(|_, now| Ok(now)).await?;
    Ok(json(
        StatusCode::OK,
        &ClockSetting {
            now: now.to_string(),
        },
    ))
}

pub async fn set_clock(State(app): State<App>, headers: HeaderMap, bytes: Bytes) -> Reply {
    let p = app.principal(&headers).await?;
    if !p.is_operator() {
        return Err(ApiError(Rejection::forbidden(
            "only the operator may use the sandbox API",
        )));
    }
    let request: ClockSetting = body(&bytes)?;
    let now: Timestamp = request.now.parse().map_err(|_| {
        Rejection::invalid_field(
            "now",
            format!(
                "{:?} is not an RFC 3339 instant (for example 2026-12-31T23:00:00Z)",
                request.now
            ),
        )
    })?;
    app.run(move |s, _| s.set_clock(now)).await?;
    Ok(json(
        StatusCode::OK,
        &ClockSetting {
            now: now.to_string(),
        },
    ))
}

pub async fn reset_clock(State(app): State<App>, headers: HeaderMap) -> Reply {
    let p = app.principal(&headers).await?;
    if !p.is_operator() {
        return Err(ApiError(Rejection::forbidden(
            "only the operator may use the sandbox API",
        )));
    }
    let now = app
        .run(|s, _| {
            s.reset_clock(None)?;
            Ok(s.now())
        })
        .await?;
    Ok(json(
        StatusCode::OK,
        &ClockSetting {
            now: now.to_string(),
        },
    ))
}

pub async fn openapi() -> Response {
    json(StatusCode::OK, super::openapi::document())
}

pub async fn not_found(uri: Uri) -> ApiError {
    ApiError(Rejection::not_found(format!(
        "there is no endpoint {}; see /openapi.json",
        uri.path()
    )))
}

pub async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError(Rejection::new(
        405,
        ErrorCode::Invalid,
        format!("{} does not answer {method}; see /openapi.json", uri.path()),
    ))
}
