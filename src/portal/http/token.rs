//! The portal token: a secret that never leaves the process in any output (SPEC §3, §7).

use std::fmt;

/// A bearer token for the portal API. `Debug` and `Display` print `Token(***)`; the secret is
/// reachable only through [`Token::secret`], for the one place that builds the header.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

/// Why a token could not be read. Names the variable, never its value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the environment variable {var} is not set; it must hold the portal token")]
    Missing { var: String },
    #[error("the environment variable {var} is empty; it must hold the portal token")]
    Empty { var: String },
    #[error(
        "the portal token in {var} is not usable: it must be printable ASCII without spaces or line breaks"
    )]
    Malformed { var: String },
}

impl Token {
    /// Wraps a secret. `source` names where it came from (an environment variable), for errors.
    pub fn new(secret: impl Into<String>, source: &str) -> Result<Token, TokenError> {
        let secret = secret.into();
        // Surrounding whitespace is a copy-and-paste accident (a trailing newline from a file).
        let trimmed = secret.trim();
        if trimmed.is_empty() {
            return Err(TokenError::Empty {
                var: source.to_owned(),
            });
        }
        if !trimmed.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(TokenError::Malformed {
                var: source.to_owned(),
            });
        }
        Ok(Token(trimmed.to_owned()))
    }

    /// Reads the token from the environment variable `var` (`ROLECALL_TOKEN` or a Portal's
    /// `tokenEnv`).
    pub fn from_env(var: &str) -> Result<Token, TokenError> {
        match std::env::var(var) {
            Ok(value) => Token::new(value, var),
            Err(std::env::VarError::NotPresent) => Err(TokenError::Missing {
                var: var.to_owned(),
            }),
            Err(std::env::VarError::NotUnicode(_)) => Err(TokenError::Malformed {
                var: var.to_owned(),
            }),
        }
    }

    /// The secret itself. Call it only to build the `Authorization` header.
    pub fn secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(***)")
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_hide_the_secret() {
        let token = Token::new("s3cr3t-value", "ROLECALL_TOKEN").unwrap();
        assert_eq!(format!("{token:?}"), "Token(***)");
        assert_eq!(format!("{token}"), "Token(***)");
        assert_eq!(format!("{token:#?}"), "Token(***)");
        assert_eq!(token.secret(), "s3cr3t-value");
    }

    #[test]
    fn trims_and_rejects_unusable_values_without_echoing_them() {
        assert_eq!(
            Token::new(" abc\n", "T").unwrap().secret(),
            "abc",
            "a trailing newline is trimmed"
        );
        let empty = Token::new("  ", "T").unwrap_err();
        assert_eq!(empty, TokenError::Empty { var: "T".into() });
        let bad = Token::new("ab c-secret", "T").unwrap_err();
        assert!(!bad.to_string().contains("secret"), "{bad}");
        assert!(bad.to_string().contains('T'));
    }

    #[test]
    fn a_missing_variable_is_named() {
        let err = Token::from_env("ROLECALL_TEST_TOKEN_THAT_IS_NEVER_SET").unwrap_err();
        assert!(
            err.to_string()
                .contains("ROLECALL_TEST_TOKEN_THAT_IS_NEVER_SET"),
            "{err}"
        );
    }
}
