//! What a handler reads from a request: path parameters, JSON bodies, the query string and
//! `If-Match`; and the JSON answers it writes.

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::ApiError;
use crate::portal::AccountFilter;
use crate::reference::store::{Rejection, check_limit};

/// Path parameters, percent-decoded by axum; a malformed one is a 422, not a plain-text 400.
pub struct PathParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for PathParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(t)| PathParams(t))
            .map_err(|e| ApiError(Rejection::invalid(format!("the path cannot be read: {e}"))))
    }
}

pub(super) fn json<T: Serialize>(status: StatusCode, value: &T) -> Response {
    json_text(
        status,
        serde_json::to_string(value).unwrap_or_else(|_| "null".into()),
    )
}

pub(super) fn json_text(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

pub(super) fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

/// Reads a JSON body; unknown fields and wrong types are 422 `invalid` naming the field.
pub(super) fn body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Rejection> {
    serde_json::from_slice(bytes).map_err(|e| {
        let message = e.to_string();
        let field = message
            .split('`')
            .nth(1)
            .filter(|_| {
                message.starts_with("unknown field") || message.starts_with("missing field")
            })
            .unwrap_or("body")
            .to_string();
        let mut r =
            Rejection::invalid_field(&field, format!("the JSON body cannot be read: {message}"));
        r.detail = format!("the JSON body cannot be read: {message}");
        r
    })
}

/// Role grants are read leniently by clients (a newer portal may add fields), so the server
/// checks for unknown fields in them itself.
pub(super) fn check_role_fields(bytes: &[u8]) -> Result<(), Rejection> {
    let value: serde_json::Value = serde_json::from_slice(bytes).unwrap_or_default();
    let roles = value
        .get("roles")
        .and_then(|r| r.as_array())
        .cloned()
        .unwrap_or_default();
    for (i, role) in roles.iter().enumerate() {
        if let Some(unknown) = role
            .as_object()
            .and_then(|o| o.keys().find(|k| !matches!(k.as_str(), "name" | "until")))
        {
            return Err(Rejection::invalid_field(
                &format!("roles[{i}].{unknown}"),
                format!("unknown field {unknown:?}: a role has only \"name\" and \"until\""),
            ));
        }
    }
    Ok(())
}

pub(super) struct Query(Vec<(String, String)>);

impl Query {
    pub(super) fn parse(raw: Option<String>) -> Query {
        // `application/x-www-form-urlencoded`: `+` is a space, `%XX` a byte, a pair without
        // `=` has an empty value.
        let raw = raw.unwrap_or_default();
        Query(
            form_urlencoded::parse(raw.as_bytes())
                .into_owned()
                .collect(),
        )
    }

    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub(super) fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }

    pub(super) fn paging(&self) -> Result<(Option<String>, usize), Rejection> {
        let limit = match self.get("limit") {
            None => None,
            Some(text) => Some(text.parse::<usize>().map_err(|_| {
                Rejection::invalid_field("limit", format!("{text:?} is not a whole number"))
            })?),
        };
        Ok((self.get("cursor").map(str::to_string), check_limit(limit)?))
    }

    pub(super) fn accounts(&self) -> AccountFilter {
        let list = self.all("account");
        if list.is_empty() {
            AccountFilter::All
        } else {
            AccountFilter::Only(list)
        }
    }

    pub(super) fn flag(&self, name: &str) -> Result<bool, Rejection> {
        match self.get(name) {
            None | Some("false") => Ok(false),
            Some("true") | Some("") => Ok(true),
            Some(other) => Err(Rejection::invalid_field(
                name,
                format!("{other:?} is neither true nor false"),
            )),
        }
    }
}

pub(super) fn if_match(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::IF_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_string_decodes_plus_percent_and_bare_names() {
        let q = Query::parse(Some(
            "account=a%2Bb%40x&account=c+d&resend&&limit=%zz&n=%C3%BC&bad=%FF&%3D=%25".into(),
        ));
        let pairs: Vec<(&str, &str)> = q.0.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            pairs,
            [
                ("account", "a+b@x"),
                ("account", "c d"),
                ("resend", ""),
                ("limit", "%zz"),
                ("n", "ü"),
                ("bad", "\u{FFFD}"),
                ("=", "%"),
            ]
        );
        assert_eq!(q.all("account"), ["a+b@x", "c d"]);
        assert!(q.flag("resend").unwrap());
        assert!(Query::parse(None).0.is_empty());
    }
}
