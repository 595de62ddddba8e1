//! Customer numbers: the one rule that the manifest checks and the reference portal both
//! enforce, so that what `validate` accepts is what the portal takes.

/// Why a customer number was refused: a sentence that never repeats a long value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CustomerNumberError {
    #[error("the customer number must not be empty")]
    Empty,
    #[error(
        "the customer number is {length} characters long; at most {CUSTOMER_NUMBER_MAX} are allowed"
    )]
    TooLong { length: usize },
    #[error("the customer number {number:?} begins or ends with a space; remove it")]
    Space { number: String },
    #[error(
        "the customer number {number:?} holds {what}; use only letters, digits, \".\", \"_\" and \"-\""
    )]
    Character { number: String, what: String },
    #[error(
        "{number:?} is not a customer number: in a URL path it names no account but a step to another path"
    )]
    Step { number: String },
}

/// The longest customer number, in characters.
pub const CUSTOMER_NUMBER_MAX: usize = 64;

/// Checks a customer number: 1 to 64 ASCII letters, digits, `.`, `_` and `-`, and neither `.`
/// nor `..` (in a URL path those are steps, not names: `/v1/accounts/../members` is
/// `/v1/members`). The error is a sentence saying what is wrong; it never repeats a long value.
pub fn check_customer_number(cn: &str) -> Result<(), CustomerNumberError> {
    let length = cn.chars().count();
    if cn.is_empty() {
        return Err(CustomerNumberError::Empty);
    }
    if length > CUSTOMER_NUMBER_MAX {
        return Err(CustomerNumberError::TooLong { length });
    }
    if cn.trim() != cn {
        return Err(CustomerNumberError::Space {
            number: cn.to_string(),
        });
    }
    if let Some(bad) = cn
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        let what = if bad.is_control() {
            format!("the control character {:?}", bad)
        } else {
            format!("\"{bad}\"")
        };
        return Err(CustomerNumberError::Character {
            number: cn.to_string(),
            what,
        });
    }
    if cn == "." || cn == ".." {
        return Err(CustomerNumberError::Step {
            number: cn.to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_short_words() {
        for cn in ["10042", "K-100", "K_100", "a.b", "...", ".x", "x.", "A"] {
            assert_eq!(check_customer_number(cn), Ok(()), "{cn}");
        }
        assert!(check_customer_number(&"9".repeat(64)).is_ok());
    }

    #[test]
    fn refuses_what_would_break_a_path_or_a_terminal() {
        let cases: &[(&str, &str)] = &[
            ("", "must not be empty"),
            (".", "not a customer number"),
            ("..", "not a customer number"),
            ("a/b", "\"/\""),
            (" 10042", "begins or ends with a space"),
            ("10042 ", "begins or ends with a space"),
            ("100 42", "\" \""),
            ("10\u{1b}42", "control character"),
            ("10\n42", "control character"),
            ("10%2F42", "\"%\""),
            ("kündig", "\"ü\""),
            ("a?b", "\"?\""),
        ];
        for (cn, expected) in cases {
            let err = check_customer_number(cn).expect_err(cn).to_string();
            assert!(err.contains(expected), "{cn:?}: {err}");
            assert!(!err.contains('\u{1b}') && !err.contains('\n'), "{err:?}");
        }
        let long = "1".repeat(1000);
        let err = check_customer_number(&long).expect_err("long").to_string();
        assert!(err.contains("1000 characters"), "{err}");
        assert!(err.len() < 200, "the long value is not repeated: {err}");
        assert!(check_customer_number(&"9".repeat(65)).is_err());
        assert_eq!(
            check_customer_number("a/b").unwrap_err().to_string(),
            "the customer number \"a/b\" holds \"/\"; use only letters, digits, \".\", \"_\" and \"-\""
        );
        assert_eq!(
            check_customer_number("..").unwrap_err().to_string(),
            "\"..\" is not a customer number: in a URL path it names no account but a step to another path"
        );
        assert_eq!(
            check_customer_number(" 1").unwrap_err().to_string(),
            "the customer number \" 1\" begins or ends with a space; remove it"
        );
    }
}
