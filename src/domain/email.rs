//! E-mail addresses: checked for syntax, compared by identity, sent as declared.
//!
//! Identity (SPEC §2 "compared case-insensitively", made precise): two spellings are one
//! address when they agree after Unicode NFC, lower-casing, and with the domain in its IDNA
//! ASCII form — `Müller@Bücher.example` (composed or decomposed) and
//! `müller@xn--bcher-kva.example` are one person. [`email_key`] computes that comparison key;
//! every comparison of e-mails in rolecall (the planner's matching, duplicate detection,
//! `policy.ignore`, `allowedEmailDomains`, the reference portal's identities) goes through it.
//! Invisible characters (zero-width, soft hyphen, …) and bidirectional controls are refused,
//! so that no two addresses look alike and differ.

use std::borrow::Cow;
use std::fmt;

use icu_normalizer::ComposingNormalizerBorrowed;
use icu_properties::CodePointSetData;
use icu_properties::props::{BidiControl, DefaultIgnorableCodePoint};

/// Why a text is not an e-mail address: `{shown} is not an e-mail address: {problem}`, with
/// the text quoted and shortened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{shown} is not an e-mail address: {problem}")]
pub struct EmailError {
    pub shown: String,
    pub problem: EmailProblem,
}

/// What is wrong with an address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailProblem {
    #[error("it is longer than 254 characters")]
    TooLong,
    #[error("it contains U+{code:04X}, {what}, so it could look like another address")]
    Hidden { code: u32, what: &'static str },
    #[error("it has no \"@\"")]
    NoAt,
    #[error("nothing before the \"@\"")]
    NoLocalPart,
    #[error("no domain after the \"@\"")]
    NoDomain,
    #[error("the part before \"@\" is longer than 64 characters")]
    LocalPartTooLong,
    #[error("the part before \"@\" has a character or dot e-mail does not allow")]
    LocalPartCharacter,
    #[error("the domain {domain:?} has no dot")]
    NoDot { domain: String },
    #[error("the domain {domain:?} is not a valid host name")]
    HostName { domain: String },
    #[error("the domain {domain:?} is not a valid internationalised host name")]
    InternationalHostName { domain: String },
}

/// An e-mail address as declared. Equality and ordering use [`email_key`]; `as_str` gives the
/// text as written, which is what the portal receives.
#[derive(Debug, Clone)]
pub struct Email {
    text: String,
    key: String,
}

impl Email {
    /// Checks the syntax; the error is a sentence saying what is wrong.
    pub fn parse(text: &str) -> Result<Email, EmailError> {
        check_email(text).map_err(|problem| EmailError {
            shown: super::text::quote_short(text),
            problem,
        })?;
        Ok(Email {
            text: text.to_string(),
            key: email_key(text),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The comparison key ([`email_key`]).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The domain part as compared: lower-cased, in its IDNA ASCII form.
    pub fn domain(&self) -> &str {
        self.key.rsplit_once('@').map(|(_, d)| d).unwrap_or("")
    }
}

/// The comparison key of an e-mail address: Unicode NFC and lower case, with the domain in
/// its IDNA ASCII form (`bücher.example` → `xn--bcher-kva.example`). Defined for any text, so
/// that what a portal answers can be compared even when it is not a valid address.
pub fn email_key(text: &str) -> String {
    if text.is_ascii() {
        // The common case, and the same answer the full path gives for ASCII.
        return text.to_ascii_lowercase();
    }
    match text.rsplit_once('@') {
        Some((local, domain)) => format!("{}@{}", text_key(local), domain_key(domain)),
        None => text_key(text),
    }
}

/// Whether two texts are one e-mail address ([`email_key`]).
pub fn same_email(a: &str, b: &str) -> bool {
    a == b || email_key(a) == email_key(b)
}

/// A domain as compared: its IDNA ASCII form (UTS #46, which also lower-cases and normalises);
/// the NFC lower-cased text when it has none.
pub fn domain_key(domain: &str) -> String {
    if domain.is_ascii() {
        return domain.to_ascii_lowercase();
    }
    idna::domain_to_ascii(domain).unwrap_or_else(|_| text_key(domain))
}

/// NFC, lower-cased, NFC again (lower-casing can undo a composition).
fn text_key(text: &str) -> String {
    let nfc = ComposingNormalizerBorrowed::new_nfc();
    let lower = nfc.normalize(text).to_lowercase();
    match nfc.normalize(&lower) {
        Cow::Borrowed(_) => lower,
        Cow::Owned(again) => again,
    }
}

/// The first character that does not show, or that reorders what is shown: Unicode's
/// default-ignorable code points (zero-width space and joiners, soft hyphen, word joiner,
/// variation selectors, …) and the bidirectional controls.
fn hidden_character(text: &str) -> Option<(char, &'static str)> {
    let ignorable = CodePointSetData::new::<DefaultIgnorableCodePoint>();
    let bidi = CodePointSetData::new::<BidiControl>();
    text.chars().find_map(|c| {
        if c.is_ascii() {
            None
        } else if bidi.contains(c) {
            Some((c, "a bidirectional control character"))
        } else if ignorable.contains(c) {
            Some((c, "an invisible character"))
        } else {
            None
        }
    })
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
fn check_email(text: &str) -> Result<(), EmailProblem> {
    if text.len() > 254 {
        return Err(EmailProblem::TooLong);
    }
    if let Some((c, what)) = hidden_character(text) {
        return Err(EmailProblem::Hidden {
            code: u32::from(c),
            what,
        });
    }
    let Some((local, domain)) = text.rsplit_once('@') else {
        return Err(EmailProblem::NoAt);
    };
    if local.is_empty() {
        return Err(EmailProblem::NoLocalPart);
    }
    if domain.is_empty() {
        return Err(EmailProblem::NoDomain);
    }
    if local.len() > 64 {
        return Err(EmailProblem::LocalPartTooLong);
    }
    let local_ok = local.chars().all(|c| {
        c.is_ascii_alphanumeric()
            || "!#$%&'*+-/=?^_`{|}~.".contains(c)
            || (!c.is_ascii() && !c.is_whitespace() && !c.is_control())
    }) && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..");
    if !local_ok {
        return Err(EmailProblem::LocalPartCharacter);
    }
    let domain_problem = |make: fn(String) -> EmailProblem| Err(make(domain.to_string()));
    // Labels are checked composed: a decomposed `bu\u{308}cher` is the host name `bücher`.
    let composed = ComposingNormalizerBorrowed::new_nfc().normalize(domain);
    let labels: Vec<&str> = composed.split('.').collect();
    if labels.len() < 2 {
        return domain_problem(|domain| EmailProblem::NoDot { domain });
    }
    for label in &labels {
        let ok = !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_alphanumeric() || c == '-');
        if !ok {
            return domain_problem(|domain| EmailProblem::HostName { domain });
        }
    }
    if !domain.is_ascii() && idna::domain_to_ascii(domain).is_err() {
        return domain_problem(|domain| EmailProblem::InternationalHostName { domain });
    }
    Ok(())
}

/// An e-mail glob of `policy.ignore`: `*` matches any run of characters, `?` one, and `\`
/// takes the next character as it is (`\*` matches a `*`). It matches an address's
/// [`email_key`]: case, Unicode normal form and the IDNA spelling of the domain do not matter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailGlob {
    /// The pattern as normalised: NFC, lower case, literal domain labels in IDNA ASCII.
    text: String,
    tokens: Vec<GlobToken>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GlobToken {
    Any,
    One,
    Char(char),
}

impl EmailGlob {
    pub fn new(pattern: &str) -> EmailGlob {
        let text = glob_key(pattern);
        let mut tokens = Vec::new();
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            tokens.push(match c {
                '*' => GlobToken::Any,
                '?' => GlobToken::One,
                '\\' => GlobToken::Char(chars.next().unwrap_or('\\')),
                c => GlobToken::Char(c),
            });
        }
        EmailGlob { text, tokens }
    }

    /// The pattern that matches exactly this address and no other.
    pub fn exact(email: &str) -> String {
        let mut out = String::with_capacity(email.len());
        for c in email.chars() {
            if matches!(c, '*' | '?' | '\\') {
                out.push('\\');
            }
            out.push(c);
        }
        out
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn matches(&self, email: &str) -> bool {
        let text: Vec<char> = email_key(email).chars().collect();
        let pattern = &self.tokens;
        // Iterative wildcard matching with one backtrack point: linear in practice.
        let (mut t, mut p) = (0usize, 0usize);
        let (mut star, mut mark) = (None::<usize>, 0usize);
        while t < text.len() {
            let step = match pattern.get(p) {
                Some(GlobToken::One) => true,
                Some(GlobToken::Char(c)) => *c == text[t],
                _ => false,
            };
            if step {
                t += 1;
                p += 1;
            } else if pattern.get(p) == Some(&GlobToken::Any) {
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
        while pattern.get(p) == Some(&GlobToken::Any) {
            p += 1;
        }
        p == pattern.len()
    }
}

/// A pattern in the form of [`email_key`]: the labels of its domain that hold no wildcard or
/// escape take their IDNA ASCII form, so `*@bücher.example` matches `u@xn--bcher-kva.example`.
fn glob_key(pattern: &str) -> String {
    if pattern.is_ascii() {
        return pattern.to_ascii_lowercase();
    }
    let special = |s: &str| s.contains(['*', '?', '\\']);
    // The last `@` that is not escaped separates the domain.
    let mut at = None;
    let mut escaped = false;
    for (i, c) in pattern.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '@' => at = Some(i),
            _ => {}
        }
    }
    let Some(at) = at else {
        return text_key(pattern);
    };
    let (local, domain) = (&pattern[..at], &pattern[at + 1..]);
    let labels: Vec<String> = domain
        .split('.')
        .map(|label| {
            if special(label) {
                text_key(label)
            } else {
                domain_key(label)
            }
        })
        .collect();
    format!("{}@{}", text_key(local), labels.join("."))
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
            let err = Email::parse(text).unwrap_err().to_string();
            assert!(err.contains(why), "{text}: {err}");
        }
    }

    #[test]
    fn refusals_are_typed_and_say_the_sentences_users_read() {
        let err = Email::parse("bob@acme").unwrap_err();
        assert_eq!(
            err.problem,
            EmailProblem::NoDot {
                domain: "acme".into()
            }
        );
        assert_eq!(
            err.to_string(),
            "\"bob@acme\" is not an e-mail address: the domain \"acme\" has no dot"
        );
        let said = |t: &str| Email::parse(t).unwrap_err().to_string();
        assert_eq!(
            said("bob"),
            "\"bob\" is not an e-mail address: it has no \"@\""
        );
        assert_eq!(
            said("@a.b"),
            "\"@a.b\" is not an e-mail address: nothing before the \"@\""
        );
        assert_eq!(
            said("a b@c.d"),
            "\"a b@c.d\" is not an e-mail address: the part before \"@\" has a character or dot e-mail does not allow"
        );
        assert_eq!(
            said("a@-c.d"),
            "\"a@-c.d\" is not an e-mail address: the domain \"-c.d\" is not a valid host name"
        );
        let long = format!("{}@c.d", "a".repeat(300));
        assert!(said(&long).ends_with(
            "… (304 characters) is not an e-mail address: it is longer than 254 characters"
        ));
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

    #[test]
    fn one_address_in_composed_decomposed_unicode_and_ascii_domain_spellings_is_one_person() {
        let forms = [
            "u@bücher.example",
            "u@xn--bcher-kva.example",
            "U@BÜCHER.example",
            "u@bu\u{308}cher.example",
        ];
        let keys: Vec<Email> = forms.iter().map(|f| Email::parse(f).unwrap()).collect();
        for (f, k) in forms.iter().zip(&keys) {
            assert_eq!(k, &keys[0], "{f}");
            assert_eq!(k.domain(), "xn--bcher-kva.example", "{f}");
            assert_eq!(k.as_str(), *f, "sent to the portal as declared");
        }
        let nfc = Email::parse("m\u{fc}ller@acme.example").unwrap();
        let nfd = Email::parse("mu\u{308}ller@acme.example").unwrap();
        assert_eq!(nfc, nfd);
        assert_eq!(nfd.key(), "m\u{fc}ller@acme.example");
        assert_eq!(email_key("MU\u{308}LLER@Acme.example"), nfc.key());
        assert_ne!(email_key("muller@acme.example"), nfc.key());
        assert_eq!(email_key("no at sign"), "no at sign");
    }

    #[test]
    fn invisible_and_bidirectional_characters_are_refused_with_their_code_point() {
        for (text, code, what) in [
            ("u\u{200b}@acme.example", "U+200B", "invisible"),
            ("u\u{ad}x@acme.example", "U+00AD", "invisible"),
            ("\u{feff}u@acme.example", "U+FEFF", "invisible"),
            ("u\u{2060}@acme.example", "U+2060", "invisible"),
            ("u\u{200d}@acme.example", "U+200D", "invisible"),
            ("u\u{202e}moc.evil@acme.example", "U+202E", "bidirectional"),
            ("u\u{2066}@acme.example", "U+2066", "bidirectional"),
            ("u@acme\u{200e}.example", "U+200E", "bidirectional"),
        ] {
            let err = Email::parse(text).unwrap_err().to_string();
            assert!(err.contains(code) && err.contains(what), "{text:?}: {err}");
            assert!(
                !err.chars()
                    .any(|c| hidden_character(&c.to_string()).is_some()),
                "the message shows the character escaped: {err}"
            );
        }
        assert!(Email::parse("j\u{f6}rg@b\u{fc}cher.example").is_ok());
        let err = Email::parse("u@xn--zz\u{fc}.example")
            .unwrap_err()
            .to_string();
        assert!(err.contains("host name"), "{err}");
    }

    #[test]
    fn globs_compare_like_addresses_and_escape_their_wildcards() {
        let idn = EmailGlob::new("*@B\u{dc}cher.example");
        assert!(idn.matches("u@xn--bcher-kva.example"));
        assert!(idn.matches("u@bu\u{308}cher.example"));
        assert!(EmailGlob::new("*@xn--bcher-kva.example").matches("u@b\u{fc}cher.example"));
        assert!(EmailGlob::new("mu\u{308}ller@*").matches("M\u{dc}LLER@x.example"));
        let exact = EmailGlob::exact("a*b?c@x.example");
        assert_eq!(exact, "a\\*b\\?c@x.example");
        let g = EmailGlob::new(&exact);
        assert!(g.matches("A*B?C@x.example"));
        assert!(!g.matches("aXXbYc@x.example"));
        assert!(!g.matches("a*bYc@x.example"));
        assert!(
            EmailGlob::new(&EmailGlob::exact("j\u{f6}rg@b\u{fc}cher.example"))
                .matches("jo\u{308}rg@xn--bcher-kva.example")
        );
    }
}
