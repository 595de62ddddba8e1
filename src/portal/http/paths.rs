//! Request URLs: the API root plus percent-encoded segments, never a `.` or `..` step.

use reqwest::Url;

use super::HttpPortal;
use crate::portal::{PortalError, PortalResult};

impl HttpPortal {
    /// `base` + `v1/` + the percent-encoded segments. A segment that is `.` or `..` (even
    /// percent-encoded, URLs treat it as a step: `/v1/accounts/../members` is `/v1/members`)
    /// is refused before anything is sent, so that no name can change which resource a request
    /// reaches.
    pub(super) fn url(&self, segments: &[&str]) -> PortalResult<Url> {
        let mut path = format!("{}v1", self.base.path());
        for segment in segments {
            if matches!(*segment, "." | "..") {
                return Err(PortalError::Unaddressable(format!(
                    "{segment:?} cannot be sent as a part of a URL path: \".\" and \"..\" are steps in a path, not names, so no request was sent for it"
                )));
            }
            path.push('/');
            path.push_str(&encode_segment(segment));
        }
        let mut url = self.base.clone();
        url.set_path(&path);
        if url.path() != path {
            return Err(PortalError::Unaddressable(format!(
                "the request path {path:?} would be sent as {:?}, so no request was sent",
                url.path()
            )));
        }
        Ok(url)
    }
}

/// What a path segment keeps as it is: the unreserved `A-Za-z0-9-._~` (RFC 3986); every other
/// byte is percent-encoded (`@`, `+` and `/` of e-mails too).
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes one path segment: everything but the unreserved `A-Za-z0-9-._~`.
pub fn encode_segment(segment: &str) -> String {
    percent_encoding::utf8_percent_encode(segment, SEGMENT).to_string()
}
