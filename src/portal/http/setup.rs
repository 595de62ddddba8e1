//! The parts every HTTP-speaking adapter is built from: its base URL and its `reqwest` client.

use std::time::Duration;

use reqwest::Url;
use reqwest::header::{self, HeaderMap, HeaderValue};

use super::retry::error_chain;
use super::{HttpOptions, HttpSetupError};

/// A portal's base URL: http(s), no credentials (never echoed), no query or fragment.
/// `schemes` and `credentials_hint` finish the error sentences.
pub(in crate::portal) fn parse_base_url(
    base_url: &str,
    schemes: &str,
    credentials_hint: &str,
) -> Result<Url, HttpSetupError> {
    let url_error = |reason: &str| HttpSetupError::Url {
        url: crate::domain::text::redact_url(base_url).into_owned(),
        reason: reason.to_owned(),
    };
    let base = Url::parse(base_url).map_err(|e| url_error(&e.to_string()))?;
    if !matches!(base.scheme(), "http" | "https") {
        return Err(url_error(&format!("it must start with {schemes}")));
    }
    if !base.username().is_empty() || base.password().is_some() {
        // Never echo a URL that carries credentials.
        return Err(HttpSetupError::Url {
            url: "(redacted)".to_owned(),
            reason: format!("it must not carry credentials; {credentials_hint}"),
        });
    }
    if base.query().is_some() || base.fragment().is_some() {
        return Err(url_error("it must not have a query or a fragment"));
    }
    Ok(base)
}

/// The `reqwest` client every HTTP-speaking adapter uses: rustls with the system roots plus
/// `--ca-file`, the timeouts of `options`, and no redirects.
pub(in crate::portal) fn build_client(
    options: &HttpOptions,
) -> Result<reqwest::Client, HttpSetupError> {
    // reqwest is built without a default provider; several clients may race to install it.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut default_headers = HeaderMap::new();
    default_headers.insert(
        header::ACCEPT,
        HeaderValue::from_static("application/json, application/problem+json"),
    );
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("rolecall/", env!("CARGO_PKG_VERSION")))
        .default_headers(default_headers)
        .connect_timeout(options.connect_timeout)
        .timeout(options.request_timeout)
        .pool_max_idle_per_host(64)
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_nodelay(true)
        // A redirect could carry the request elsewhere; the portal URL must be the API's.
        .redirect(reqwest::redirect::Policy::none());
    if let Some(path) = &options.ca_file {
        let ca_error = |reason: String| HttpSetupError::CaFile {
            path: path.clone(),
            reason,
        };
        let pem = std::fs::read(path).map_err(|e| ca_error(e.to_string()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|_| ca_error("it is not a PEM certificate file".into()))?;
        if certs.is_empty() {
            return Err(ca_error(
                "it holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into(),
            ));
        }
        builder = builder.tls_certs_merge(certs);
    }
    let client = builder.build().map_err(|e| match &options.ca_file {
        Some(path) => HttpSetupError::CaFile {
            path: path.clone(),
            reason: error_chain(&e),
        },
        None => HttpSetupError::Client(error_chain(&e)),
    })?;

    Ok(client)
}
