//! Checks of request fields, each refusal naming its field.

use super::*;

/// Parses an e-mail of a path or body; the refusal names the field.
pub(super) fn parse_email(field: &str, text: &str) -> Result<Email> {
    Email::parse(text).map_err(|m| Rejection::invalid_field(field, m.to_string()))
}

/// Checks notification kinds against the catalog.
pub(super) fn check_kinds(
    field: &str,
    kinds: &[String],
    errors: &mut Vec<(ErrorCode, FieldError)>,
) {
    let mut seen = std::collections::HashSet::new();
    for (i, k) in kinds.iter().enumerate() {
        if !NOTIFICATION_KINDS.contains(&k.as_str()) {
            errors.push((
                ErrorCode::UnknownNotificationKind,
                FieldError {
                    field: format!("{field}[{i}]"),
                    message: format!(
                        "{k:?} is not a notification kind of this portal (known: {})",
                        NOTIFICATION_KINDS.join(", ")
                    ),
                },
            ));
        } else if !seen.insert(k.as_str()) {
            errors.push((
                ErrorCode::Invalid,
                FieldError {
                    field: format!("{field}[{i}]"),
                    message: format!("{k:?} is listed twice"),
                },
            ));
        }
    }
}

/// Checks a display name or person's name: not blank, not too long, no control characters.
pub(super) fn check_name(field: &str, name: &str, errors: &mut Vec<(ErrorCode, FieldError)>) {
    let message = if name.trim().is_empty() {
        Some("must not be empty".to_string())
    } else if name.chars().count() > 200 {
        Some("is longer than 200 characters".to_string())
    } else if name.chars().any(char::is_control) {
        Some("must not contain control characters".to_string())
    } else {
        None
    };
    if let Some(message) = message {
        errors.push((
            ErrorCode::Invalid,
            FieldError {
                field: field.into(),
                message,
            },
        ));
    }
}

/// Turns collected field errors into one refusal: `invalid` wins over `unknown_role`, which
/// wins over `unknown_notification_kind`; every field error is listed.
pub(super) fn refuse_fields(errors: Vec<(ErrorCode, FieldError)>) -> Result<()> {
    if errors.is_empty() {
        return Ok(());
    }
    let code = [
        ErrorCode::Invalid,
        ErrorCode::UnknownRole,
        ErrorCode::UnknownNotificationKind,
    ]
    .into_iter()
    .find(|c| errors.iter().any(|(e, _)| e == c))
    .unwrap_or(ErrorCode::Invalid);
    let detail = errors
        .iter()
        .map(|(_, f)| format!("{}: {}", f.field, f.message))
        .collect::<Vec<_>>()
        .join("; ");
    Err(Rejection {
        status: 422,
        code,
        detail,
        errors: errors.into_iter().map(|(_, f)| f).collect(),
    })
}

/// Paging: `limit` defaults to 100 and may be at most 1000.
pub fn check_limit(limit: Option<usize>) -> Result<usize> {
    match limit {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(n) => Err(Rejection::invalid_field(
            "limit",
            format!("{n} is out of range: a page holds 1 to {MAX_LIMIT} items"),
        )),
    }
}
