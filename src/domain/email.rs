//! E-mail addresses: checked for syntax, compared case-insensitively, sent as declared.

use std::fmt;

/// An e-mail address as declared. Equality and ordering ignore case; `as_str` gives the text
/// as written, which is what the portal receives.
#[derive(Debug, Clone)]
pub struct Email {
    text: String,
    key: String,
}

impl Email {
    /// Checks the syntax; the error is a sentence saying what is wrong.
    pub fn parse(text: &str) -> Result<Email, String> {
        check_email(text)?;
        Ok(Email {
            text: text.to_string(),
            key: text.to_lowercase(),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The case-folded form used for comparisons.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The domain part, lower-cased.
    pub fn domain(&self) -> &str {
        self.key.rsplit_once('@').map(|(_, d)| d).unwrap_or("")
    }
}

impl PartialEq for Email {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}
impl Eq for Email {}
impl std::hash::Hash for Email {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.key.hash(state)
    }
}
impl PartialOrd for Email {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Email {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key.cmp(&other.key)
    }
}
impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Checks an address the way portals do: `local@domain.tld`, no spaces, a dotted domain of
/// letters, digits and hyphens.
fn check_email(text: &str) -> Result<(), String> {
    let shown = super::super::manifest::quote_short(text);
    if text.len() > 254 {
        return Err(format!(
            "{shown} is not an e-mail address: it is longer than 254 characters"
        ));
    }
    let Some((local, domain)) = text.rsplit_once('@') else {
        return Err(format!("{shown} is not an e-mail address: it has no \"@\""));
    };
    if local.is_empty() {
        return Err(format!(
            "{shown} is not an e-mail address: nothing before the \"@\""
        ));
    }
    if domain.is_empty() {
        return Err(format!(
            "{shown} is not an e-mail address: no domain after the \"@\""
        ));
    }
    if local.len() > 64 {
        return Err(format!(
            "{shown} is not an e-mail address: the part before \"@\" is longer than 64 characters"
        ));
    }
    let local_ok = local.chars().all(|c| {
        c.is_ascii_alphanumeric()
            || "!#$%&'*+-/=?^_`{|}~.".contains(c)
            || (!c.is_ascii() && !c.is_whitespace() && !c.is_control())
    }) && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..");
    if !local_ok {
        return Err(format!(
            "{shown} is not an e-mail address: the part before \"@\" has a character or dot e-mail does not allow"
        ));
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 {
        return Err(format!(
            "{shown} is not an e-mail address: the domain {domain:?} has no dot"
        ));
    }
    for label in &labels {
        let ok = !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_alphanumeric() || c == '-');
        if !ok {
            return Err(format!(
                "{shown} is not an e-mail address: the domain {domain:?} is not a valid host name"
            ));
        }
    }
    Ok(())
}

/// An e-mail glob of `policy.ignore`: `*` matches any run of characters, `?` one; case-insensitive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailGlob(String);

impl EmailGlob {
    pub fn new(pattern: &str) -> EmailGlob {
        EmailGlob(pattern.to_lowercase())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn matches(&self, email: &str) -> bool {
        let text: Vec<char> = email.to_lowercase().chars().collect();
        let pattern: Vec<char> = self.0.chars().collect();
        // Iterative wildcard matching with one backtrack point: linear in practice.
        let (mut t, mut p) = (0usize, 0usize);
        let (mut star, mut mark) = (None::<usize>, 0usize);
        while t < text.len() {
            if p < pattern.len() && (pattern[p] == '?' || pattern[p] == text[t]) {
                t += 1;
                p += 1;
            } else if p < pattern.len() && pattern[p] == '*' {
                star = Some(p);
                mark = t;
                p += 1;
            } else if let Some(s) = star {
                p = s + 1;
                mark += 1;
                t = mark;
            } else {
                return false;
            }
        }
        while p < pattern.len() && pattern[p] == '*' {
            p += 1;
        }
        p == pattern.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_addresses_and_compares_without_case() {
        let a = Email::parse("Alice.Smith+ops@Acme.example").unwrap();
        let b = Email::parse("alice.smith+ops@acme.EXAMPLE").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.as_str(), "Alice.Smith+ops@Acme.example");
        assert_eq!(a.domain(), "acme.example");
    }

    #[test]
    fn rejects_broken_addresses_with_a_reason() {
        for (text, why) in [
            ("bob@", "no domain"),
            ("bob", "no \"@\""),
            ("@acme.example", "nothing before"),
            ("bob@acme", "no dot"),
            ("bo b@acme.example", "character"),
            ("bob@acme..example", "host name"),
            ("bob@-acme.example", "host name"),
        ] {
            let err = Email::parse(text).unwrap_err();
            assert!(err.contains(why), "{text}: {err}");
        }
    }

    #[test]
    fn globs_match_like_shells() {
        let g = EmailGlob::new("*@Provider.example");
        assert!(g.matches("ops@provider.example"));
        assert!(g.matches("OPS@PROVIDER.EXAMPLE"));
        assert!(!g.matches("ops@provider.example.org"));
        assert!(EmailGlob::new("a?c@*").matches("abc@x.y"));
        assert!(!EmailGlob::new("a?c@*").matches("ac@x.y"));
    }
}
