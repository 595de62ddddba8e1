//! The controller's side of the BILLmanager adapter: the login from the Portal's Secret.
//!
//! Secret layout: the key `tokenSecretRef.key` names holds the password; the same Secret holds
//! the username under `username`. Neither is ever printed: errors name the Secret and its keys.

use std::net::IpAddr;

use k8s_openapi::api::core::v1::Secret;
use reqwest::Url;

use crate::model::SecretKeyRef;
use crate::portal::billmgr::Credentials;

/// The Secret key holding the BILLmanager username.
pub const USERNAME_KEY: &str = "username";

/// Whether the Portal's URL selects the BILLmanager adapter.
/// Why the controller cannot talk to a BILLmanager Portal. The words name URLs and keys, never
/// a Secret's values.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "{}: the controller sends a BILLmanager login only over billmgr+https:// (billmgr+http:// is accepted for loopback addresses only)",
        crate::manifest::quote_short(url)
    )]
    PlainHttp { url: String },
    #[error("the Secret {name:?} key {key:?} is not UTF-8 text")]
    NotText {
        name: String,
        key: String,
        #[source]
        source: std::str::Utf8Error,
    },
    #[error(
        "for a BILLmanager portal, spec.tokenSecretRef.key names the key holding the password; {USERNAME_KEY:?} is the fixed key of the username (use key: password)"
    )]
    FixedKey,
    #[error(
        "the Secret {name:?} needs the BILLmanager username under the key {USERNAME_KEY:?} and the password under {key:?}"
    )]
    Missing { name: String, key: String },
    /// The adapter refused the values (its sentence names where they came from).
    #[error("{0}")]
    Credentials(String),
}

pub fn is_billmgr(url: &str) -> bool {
    url.starts_with("billmgr+")
}

/// `billmgr+http://` only to a loopback address: the login goes in a request body, so plain
/// HTTP to another host would hand it to the network.
pub fn check_transport(url: &str) -> Result<(), Error> {
    let Some(plain) = url.strip_prefix("billmgr+http://") else {
        return Ok(());
    };
    let loopback = Url::parse(&format!("http://{plain}"))
        .ok()
        .and_then(|u| {
            let host = u.host_str()?.trim_start_matches('[').trim_end_matches(']');
            Some(
                host.eq_ignore_ascii_case("localhost")
                    || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback()),
            )
        })
        .unwrap_or(false);
    if loopback {
        Ok(())
    } else {
        Err(Error::PlainHttp {
            url: url.to_string(),
        })
    }
}

fn text(secret: &Secret, name: &str, key: &str) -> Result<Option<String>, Error> {
    let Some(bytes) = secret.data.as_ref().and_then(|d| d.get(key)) else {
        return Ok(None);
    };
    String::from_utf8(bytes.0.clone())
        .map(Some)
        .map_err(|e| Error::NotText {
            name: name.to_string(),
            key: key.to_string(),
            // The UTF-8 error alone: the one from `from_utf8` holds the bytes.
            source: e.utf8_error(),
        })
}

/// The BILLmanager login from the Portal's Secret. The error is a sentence that names keys,
/// never values.
pub fn credentials(
    secret: &Secret,
    r: &SecretKeyRef,
    namespace: &str,
) -> Result<Credentials, Error> {
    if r.key == USERNAME_KEY {
        return Err(Error::FixedKey);
    }
    let (Some(username), Some(password)) = (
        text(secret, &r.name, USERNAME_KEY)?,
        text(secret, &r.name, &r.key)?,
    ) else {
        return Err(Error::Missing {
            name: r.name.clone(),
            key: r.key.clone(),
        });
    };
    let source = format!(
        "Secret {namespace}/{} keys {USERNAME_KEY}, {}",
        r.name, r.key
    );
    Credentials::new(&username, &password, &source).map_err(|e| Error::Credentials(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;

    fn secret(pairs: &[(&str, &str)]) -> Secret {
        Secret {
            data: Some(
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                    .collect(),
            ),
            ..Default::default()
        }
    }

    fn key(k: &str) -> SecretKeyRef {
        SecretKeyRef {
            name: "login".into(),
            key: k.into(),
        }
    }

    #[test]
    fn the_login_comes_from_fixed_keys_and_errors_never_show_values() {
        let s = secret(&[("username", "acme-login"), ("password", "s3cret-pw")]);
        let c = credentials(&s, &key("password"), "team").unwrap();
        assert!(!format!("{c:?}").contains("s3cret-pw"));
        let err = credentials(
            &secret(&[("password", "s3cret-pw")]),
            &key("password"),
            "team",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("\"username\"") && !err.contains("s3cret-pw"),
            "{err}"
        );
        assert!(credentials(&s, &key("username"), "team").is_err());
    }

    #[test]
    fn plain_http_only_to_loopback() {
        assert!(check_transport("billmgr+http://127.0.0.1:1500/billmgr").is_ok());
        assert!(check_transport("billmgr+https://my.example:1500/billmgr").is_ok());
        assert!(check_transport("billmgr+http://my.example:1500/billmgr").is_err());
    }
}
