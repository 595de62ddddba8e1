//! The controller's side of the WHMCS adapter: the API credentials from the Portal's Secret,
//! and the record of sent invitations kept in the CustomerAccount's status (WHMCS cannot list
//! its invitations, so without the record every reconcile would invite again).
//!
//! Secret layout: the key `tokenSecretRef.key` names holds the API secret; the same Secret
//! holds the API identifier under `identifier` and, where the installation needs one, the
//! access key under `accesskey`. None of them is ever printed: errors name the Secret and its
//! keys only.

use std::net::IpAddr;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use reqwest::Url;

use crate::model::{SecretKeyRef, WhmcsInvitation};
use crate::portal::whmcs::{Credentials, InvitationRecord};

/// The Secret key holding the WHMCS API identifier.
pub const IDENTIFIER_KEY: &str = "identifier";
/// The Secret key holding the optional WHMCS API access key.
pub const ACCESSKEY_KEY: &str = "accesskey";

/// Why the controller cannot talk to a WHMCS Portal. The words name URLs and keys, never a
/// Secret's values.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "{}: the controller sends WHMCS credentials only over whmcs+https:// (whmcs+http:// is accepted for loopback addresses only)",
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
        "for a WHMCS portal, spec.tokenSecretRef.key names the key holding the API secret; {IDENTIFIER_KEY:?} and {ACCESSKEY_KEY:?} are the fixed keys of the identifier and access key (use key: secret)"
    )]
    FixedKey,
    #[error(
        "the Secret {name:?} needs the WHMCS API identifier under the key {IDENTIFIER_KEY:?} and its secret under {key:?} (and the access key under {ACCESSKEY_KEY:?} where the installation needs one)"
    )]
    Missing { name: String, key: String },
    /// The adapter refused the values (its sentence names where they came from).
    #[error("{0}")]
    Credentials(String),
}

/// Whether the Portal's URL selects the WHMCS adapter.
pub fn is_whmcs(url: &str) -> bool {
    url.starts_with("whmcs+")
}

/// `whmcs+http://` only to a loopback address: WHMCS sends the identifier and secret in
/// every request body, so plain HTTP to another host would hand them to the network.
pub fn check_transport(url: &str) -> Result<(), Error> {
    let Some(plain) = url.strip_prefix("whmcs+http://") else {
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

/// One key of the Secret as text: `Ok(None)` when absent, an error naming the key (never its
/// value) when it is not UTF-8.
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

/// The WHMCS credentials from the Portal's Secret (see the module documentation for the
/// layout). The error is a sentence that names keys, never values.
pub fn credentials(
    secret: &Secret,
    r: &SecretKeyRef,
    namespace: &str,
) -> Result<Credentials, Error> {
    if r.key == IDENTIFIER_KEY || r.key == ACCESSKEY_KEY {
        return Err(Error::FixedKey);
    }
    let secret_value = text(secret, &r.name, &r.key)?;
    let identifier = text(secret, &r.name, IDENTIFIER_KEY)?;
    let accesskey = text(secret, &r.name, ACCESSKEY_KEY)?;
    let (Some(identifier), Some(secret_value)) = (identifier, secret_value) else {
        return Err(Error::Missing {
            name: r.name.clone(),
            key: r.key.clone(),
        });
    };
    let source = format!(
        "Secret {namespace}/{} keys {IDENTIFIER_KEY}, {}, {ACCESSKEY_KEY}",
        r.name, r.key
    );
    Credentials::new(&identifier, &secret_value, accesskey.as_deref(), &source)
        .map_err(|e| Error::Credentials(e.to_string()))
}

/// The adapter's records from the status entries. An entry whose times cannot be read (the
/// CRD requires RFC 3339, so only a hand edit gets here) is dropped with a warning: the cost
/// is one more invitation to that person, as when the record is lost.
pub fn records_of(account: &str, entries: &[WhmcsInvitation]) -> Vec<InvitationRecord> {
    entries
        .iter()
        .enumerate()
        .filter_map(|(i, e)| {
            let times = e
                .sent_at
                .parse::<Timestamp>()
                .and_then(|s| Ok((s, e.expires_at.parse::<Timestamp>()?)));
            match times {
                Ok((sent_at, expires_at)) => Some(InvitationRecord {
                    client_id: e.client_id.clone(),
                    email: e.email.clone(),
                    name: e.name.clone(),
                    permissions: e.permissions.clone(),
                    sent_at,
                    expires_at,
                }),
                Err(_) => {
                    tracing::warn!(
                        account,
                        entry = i,
                        "status.whmcsInvitations entry has unreadable times; it is ignored"
                    );
                    None
                }
            }
        })
        .collect()
}

/// The status entries for the adapter's records. Records of another client (the customer
/// number was changed) are kept until they expire, in case it is changed back, then dropped:
/// nothing else would ever end them.
pub fn entries_of(
    records: &[InvitationRecord],
    client_id: &str,
    now: Timestamp,
) -> Vec<WhmcsInvitation> {
    records
        .iter()
        .filter(|r| r.client_id == client_id || !r.expired(now))
        .map(|r| WhmcsInvitation {
            client_id: r.client_id.clone(),
            email: r.email.clone(),
            name: r.name.clone(),
            permissions: r.permissions.clone(),
            sent_at: r.sent_at.to_string(),
            expires_at: r.expires_at.to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use std::collections::BTreeMap;

    fn secret(pairs: &[(&str, &str)]) -> Secret {
        Secret {
            data: Some(
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                    .collect::<BTreeMap<_, _>>(),
            ),
            ..Default::default()
        }
    }

    fn key(k: &str) -> SecretKeyRef {
        SecretKeyRef {
            name: "whmcs-api".into(),
            key: k.into(),
        }
    }

    #[test]
    fn credentials_come_from_fixed_keys_and_errors_never_show_values() {
        let s = secret(&[
            ("identifier", "ID-1"),
            ("secret", "S3CR3T"),
            ("accesskey", "AK-9"),
        ]);
        let c = credentials(&s, &key("secret"), "ns").unwrap();
        assert_eq!(format!("{c:?}"), "Credentials(***)");

        let missing = secret(&[("secret", "S3CR3T")]);
        let err = credentials(&missing, &key("secret"), "ns")
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"identifier\""), "{err}");
        assert!(!err.contains("S3CR3T"), "{err}");

        let bad = secret(&[("identifier", "ID 1"), ("secret", "S3CR3T")]);
        let err = credentials(&bad, &key("secret"), "ns")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("ID 1") && !err.contains("S3CR3T"), "{err}");

        let err = credentials(&s, &key("identifier"), "ns")
            .unwrap_err()
            .to_string();
        assert!(err.contains("API secret"), "{err}");
        assert!(!err.contains("ID-1"), "{err}");
    }

    /// The typed errors say what the sentences said, and neither their words nor their
    /// debug form carry a value of the Secret.
    #[test]
    fn the_errors_keep_their_words_and_hide_the_values() {
        let err = check_transport("whmcs+http://billing.example.net/").unwrap_err();
        assert_eq!(
            err.to_string(),
            "\"whmcs+http://billing.example.net/\": the controller sends WHMCS credentials only over whmcs+https:// (whmcs+http:// is accepted for loopback addresses only)"
        );
        let mut s = secret(&[("identifier", "ID-1")]);
        if let Some(d) = s.data.as_mut() {
            d.insert("secret".into(), ByteString(b"S3CR3T\xff".to_vec()));
        }
        let err = credentials(&s, &key("secret"), "ns").unwrap_err();
        assert_eq!(
            err.to_string(),
            "the Secret \"whmcs-api\" key \"secret\" is not UTF-8 text"
        );
        assert!(std::error::Error::source(&err).is_some());
        assert!(!format!("{err:?}").contains("83, 51"), "{err:?}");
        let err = credentials(&secret(&[]), &key("secret"), "ns").unwrap_err();
        assert_eq!(
            err.to_string(),
            "the Secret \"whmcs-api\" needs the WHMCS API identifier under the key \"identifier\" and its secret under \"secret\" (and the access key under \"accesskey\" where the installation needs one)"
        );
    }

    #[test]
    fn plain_http_only_to_loopback() {
        assert!(check_transport("whmcs+https://billing.example.net/").is_ok());
        assert!(check_transport("whmcs+http://127.0.0.1:8080/whmcs/").is_ok());
        assert!(check_transport("whmcs+http://[::1]:8080/").is_ok());
        assert!(check_transport("whmcs+http://localhost/").is_ok());
        assert!(check_transport("whmcs+http://billing.example.net/").is_err());
        assert!(check_transport("whmcs+http://10.0.0.1/").is_err());
        assert!(check_transport("whmcs+http://127.0.0.1.example.net/").is_err());
    }

    #[test]
    fn records_round_trip_and_other_clients_end_at_expiry() {
        let sent: Timestamp = "2026-11-26T09:00:00Z".parse().unwrap();
        let record = |client: &str| InvitationRecord {
            client_id: client.into(),
            email: "Ann@acme.example".into(),
            name: Some("Ann".into()),
            permissions: vec!["invoices".into()],
            sent_at: sent,
            expires_at: sent + jiff::SignedDuration::from_hours(24 * 7),
        };
        let records = vec![record("42"), record("7")];
        let entries = entries_of(&records, "42", sent);
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].sent_at, "2026-11-26T09:00:00Z");
        assert_eq!(records_of("ns/a", &entries), records);

        let later: Timestamp = "2026-12-04T00:00:00Z".parse().unwrap();
        let kept = entries_of(&records, "42", later);
        assert_eq!(kept.len(), 1, "the expired record of client 7 ends");
        assert_eq!(
            kept[0].client_id, "42",
            "this client's expired record stays for the plan"
        );

        let mut broken = entries.clone();
        broken[1].expires_at = "next week".into();
        assert_eq!(records_of("ns/a", &broken), vec![record("42")]);
    }
}
