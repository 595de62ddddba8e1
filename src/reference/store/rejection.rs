//! A refused request: what the HTTP layer sends as a problem document and the embedded
//! portal returns as [`PortalError::Problem`].

use super::*;

/// A refused request: what the HTTP layer sends as `application/problem+json` and the
/// embedded portal returns as [`PortalError::Problem`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub status: u16,
    pub code: ErrorCode,
    pub detail: String,
    pub errors: Vec<FieldError>,
}

pub type Result<T, E = Rejection> = std::result::Result<T, E>;

impl Rejection {
    pub fn new(status: u16, code: ErrorCode, detail: impl Into<String>) -> Rejection {
        Rejection {
            status,
            code,
            detail: detail.into(),
            errors: Vec::new(),
        }
    }
    pub fn not_found(detail: impl Into<String>) -> Rejection {
        Rejection::new(404, ErrorCode::NotFound, detail)
    }
    pub fn forbidden(detail: impl Into<String>) -> Rejection {
        Rejection::new(403, ErrorCode::Forbidden, detail)
    }
    pub fn unauthenticated(detail: impl Into<String>) -> Rejection {
        Rejection::new(401, ErrorCode::Unauthenticated, detail)
    }
    pub fn invalid(detail: impl Into<String>) -> Rejection {
        Rejection::new(422, ErrorCode::Invalid, detail)
    }
    /// A 422 `invalid` naming one field.
    pub fn invalid_field(field: &str, message: impl Into<String>) -> Rejection {
        let message = message.into();
        Rejection {
            status: 422,
            code: ErrorCode::Invalid,
            detail: format!("{field}: {message}"),
            errors: vec![FieldError {
                field: field.into(),
                message,
            }],
        }
    }
    pub fn version_conflict(detail: impl Into<String>) -> Rejection {
        Rejection::new(412, ErrorCode::VersionConflict, detail)
    }

    /// The short title of the problem document, one per code.
    pub fn title(&self) -> &'static str {
        match self.code {
            ErrorCode::NotFound => "Not found",
            ErrorCode::Forbidden => "Forbidden",
            ErrorCode::Unauthenticated => "Unauthenticated",
            ErrorCode::Invalid => "Invalid request",
            ErrorCode::UnknownRole => "Unknown role",
            ErrorCode::UnknownNotificationKind => "Unknown notification kind",
            ErrorCode::VersionConflict => "Version conflict",
            ErrorCode::LastAdmin => "Last admin",
            ErrorCode::AlreadyLinked => "Already linked",
            ErrorCode::RateLimited => "Rate limited",
            ErrorCode::Unavailable => "Unavailable",
            ErrorCode::Other => "Error",
        }
    }

    pub fn to_problem(&self) -> Problem {
        let code = serde_json::to_value(self.code)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_else(|| "error".into());
        Problem {
            type_: format!("https://rolecall.dev/problems/{}", code.replace('_', "-")),
            title: self.title().into(),
            status: self.status,
            detail: self.detail.clone(),
            code: self.code,
            errors: self.errors.clone(),
        }
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.detail)
    }
}

impl From<rusqlite::Error> for Rejection {
    fn from(e: rusqlite::Error) -> Rejection {
        if let rusqlite::Error::FromSqlConversionFailure(_, _, inner) = &e
            && let Some(row) = inner.downcast_ref::<super::CorruptRow>()
        {
            return Rejection::new(
                500,
                ErrorCode::Unavailable,
                format!("the portal's store is damaged: {row}; repair or restore it"),
            );
        }
        Rejection::new(
            500,
            ErrorCode::Unavailable,
            format!("the portal's store failed: {e}"),
        )
    }
}

impl From<Rejection> for PortalError {
    fn from(r: Rejection) -> PortalError {
        PortalError::Problem {
            status: r.status,
            code: r.code,
            detail: r.detail,
            errors: r.errors,
        }
    }
}
