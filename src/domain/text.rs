//! Text that is shown to people: URLs without their credentials, and strings from manifests or
//! portals that cannot drive a terminal.

use std::borrow::Cow;

/// What stands where a URL's userinfo (`user:password@`) was.
pub const REDACTED: &str = "(redacted)";

/// `url` with any userinfo replaced by `(redacted)`: `http://u:pw@host/` → `http://(redacted)@host/`.
/// Works on text that is not a valid URL too (it never parses), and on `whmcs+https://…`.
pub fn redact_url(url: &str) -> Cow<'_, str> {
    let Some(scheme_end) = url.find("://") else {
        return Cow::Borrowed(url);
    };
    let authority_start = scheme_end + 3;
    let rest = &url[authority_start..];
    let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_len];
    match authority.rfind('@') {
        Some(at) => Cow::Owned(format!(
            "{}{REDACTED}{}",
            &url[..authority_start],
            &url[authority_start + at..]
        )),
        None => Cow::Borrowed(url),
    }
}

/// Whether `url` carries userinfo (a user name or a password before the host).
pub fn has_userinfo(url: &str) -> bool {
    matches!(redact_url(url), Cow::Owned(_))
}

/// Quotes a user's string for a message, shortened so a 10 MB value cannot flood the terminal.
pub fn quote_short(s: &str) -> String {
    const MAX: usize = 60;
    if s.chars().count() <= MAX {
        format!("{s:?}")
    } else {
        let head: String = s.chars().take(MAX).collect();
        format!("{:?}… ({} characters)", head, s.chars().count())
    }
}

/// Whether `c` could move a terminal's cursor, erase, recolour or reorder what it shows:
/// C0 and C1 control characters, DEL, and the bidirectional overrides and isolates.
pub fn is_control(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` with every control character written as an escape (`\u{1b}`, `\n`, `\r`), so that a
/// string from a manifest or a portal shows as what it is, on one line, and cannot erase lines
/// or forge output.
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            // `\n`, `\r`, `\t`, or `\u{1b}`.
            out.extend(c.escape_debug());
        } else if is_control(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_is_redacted_wherever_it_is() {
        assert_eq!(
            redact_url("http://user:s3cr3tpw@127.0.0.1:8443/v1"),
            "http://(redacted)@127.0.0.1:8443/v1"
        );
        assert_eq!(
            redact_url("whmcs+https://a:b@host/path/"),
            "whmcs+https://(redacted)@host/path/"
        );
        assert_eq!(
            redact_url("http://u:p@h:notaport"),
            "http://(redacted)@h:notaport"
        );
        assert_eq!(redact_url("http://u@p@h"), "http://(redacted)@h");
        assert_eq!(redact_url("https://host/a@b"), "https://host/a@b");
        assert_eq!(redact_url("sandbox:a@b.db"), "sandbox:a@b.db");
        assert!(has_userinfo("https://tok@host"));
        assert!(!has_userinfo("https://host"));
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(printable("10042"), "10042");
        assert_eq!(printable("a\x1b[2Kb"), "a\\u{1b}[2Kb");
        assert_eq!(printable("x\r\n- remove"), "x\\r\\n- remove");
        assert_eq!(printable("\u{202e}abc"), "\\u{202e}abc");
        assert_eq!(printable("\u{9b}"), "\\u{9b}");
        assert_eq!(printable("Zürich"), "Zürich");
    }
}
