//! An account's policy and the e-mail rules it sets (`allowedEmailDomains`, `ignore`).

use super::*;

pub(super) fn check_policy(
    c: &mut Checker,
    doc: &Document,
    p: Option<&model::Policy>,
) -> AccountPolicy {
    let mut policy = AccountPolicy::default();
    let Some(p) = p else { return policy };
    let path = spec().key("policy");
    policy.prune = p.prune.unwrap_or(true);
    policy.allow_self_revoke = p.allow_self_revoke.unwrap_or(false);
    policy.resend_expired_invitations = p.resend_expired_invitations.unwrap_or(true);
    policy.mode = match p.mode.unwrap_or_default() {
        model::Mode::Apply => domain::Mode::Apply,
        model::Mode::Observe => domain::Mode::Observe,
    };
    policy.deletion_policy = match p.deletion_policy.unwrap_or_default() {
        model::DeletionPolicy::Orphan => domain::DeletionPolicy::Orphan,
        model::DeletionPolicy::Revoke => domain::DeletionPolicy::Revoke,
    };
    if let Some(m) = &p.max_removals {
        match parse_max_removals(m) {
            Ok(limit) => policy.max_removals = limit,
            Err(msg) => c.error(doc, &path.key("maxRemovals"), msg.to_string()),
        }
    }
    for (i, glob) in p.ignore.iter().enumerate() {
        if glob.trim().is_empty() {
            c.error(
                doc,
                &path.key("ignore").index(i),
                "an ignore pattern must not be empty",
            );
        }
        policy.ignore.push(EmailGlob::new(glob));
    }
    if let Some(domains) = &p.allowed_email_domains {
        let mut list = Vec::new();
        for (i, d) in domains.iter().enumerate() {
            let probe = format!("x@{d}");
            if d.contains('@') || Email::parse(&probe).is_err() {
                c.error(
                    doc,
                    &path.key("allowedEmailDomains").index(i),
                    format!(
                        "{} is not a domain name (for example \"acme.example\")",
                        quote_short(d)
                    ),
                );
            }
            list.push(d.to_lowercase());
        }
        policy.allowed_email_domains = Some(list);
    }
    policy
}

/// Why a `maxRemovals` was refused; the text is quoted and shortened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MaxRemovalsError {
    #[error("{shown} is not a valid maxRemovals: a percentage is a whole number from 0% to 100%")]
    Percentage { shown: String },
    #[error("{shown} is not a valid maxRemovals: write a count (5) or a percentage (\"25%\")")]
    Neither { shown: String },
}

/// `maxRemovals`: a count, or a percentage from 0% to 100%.
pub fn parse_max_removals(m: &MaxRemovals) -> Result<RemovalLimit, MaxRemovalsError> {
    match m {
        MaxRemovals::Count(n) => Ok(RemovalLimit::Count(*n)),
        MaxRemovals::Text(t) => {
            let t = t.trim();
            if let Some(p) = t.strip_suffix('%') {
                match p.trim().parse::<u32>() {
                    Ok(p) if p <= 100 => Ok(RemovalLimit::Percent(p)),
                    _ => Err(MaxRemovalsError::Percentage {
                        shown: quote_short(t),
                    }),
                }
            } else if let Ok(n) = t.parse::<u64>() {
                Ok(RemovalLimit::Count(n))
            } else {
                Err(MaxRemovalsError::Neither {
                    shown: quote_short(t),
                })
            }
        }
    }
}

/// Checks an e-mail's syntax, its uniqueness in the account and its domain.
pub(super) fn check_email<'a>(
    c: &mut Checker,
    at: &Declared<'a>,
    email_path: &Path,
    text: &str,
    policy: &AccountPolicy,
    first_seen: &mut BTreeMap<String, Declared<'a>>,
    what: &str,
) -> Option<Email> {
    let email = match Email::parse(text) {
        Ok(e) => e,
        Err(msg) => {
            c.error(at.doc, email_path, msg.to_string());
            return None;
        }
    };
    if let Some(first) = first_seen.get(email.key()) {
        c.error(
            at.doc,
            email_path,
            format!(
                "{:?} is declared twice as a {what} of this account (e-mails ignore case): also at {}",
                text,
                place(first.doc, &first.path.key("email"))
            ),
        );
    } else {
        first_seen.insert(
            email.key().to_string(),
            Declared {
                doc: at.doc,
                path: at.path.clone(),
            },
        );
    }
    if let Some(domains) = &policy.allowed_email_domains
        && !policy.allows(&email)
    {
        c.error(
            at.doc,
            email_path,
            format!(
                "{:?} is outside the account's allowedEmailDomains ({})",
                text,
                domains.join(", ")
            ),
        );
    }
    if policy.ignores(email.as_str()) {
        c.warning(
            at.doc,
            email_path,
            format!("{text:?} matches policy.ignore, so rolecall will never change it"),
        );
    }
    Some(email)
}

#[cfg(test)]
mod max_removals_tests {
    use super::*;

    #[test]
    fn max_removals_are_counts_or_percentages_and_refusals_are_typed_sentences() {
        let parse = |t: &str| parse_max_removals(&MaxRemovals::Text(t.into()));
        assert_eq!(parse(" 25% "), Ok(RemovalLimit::Percent(25)));
        assert_eq!(parse("7"), Ok(RemovalLimit::Count(7)));
        assert_eq!(
            parse_max_removals(&MaxRemovals::Count(3)),
            Ok(RemovalLimit::Count(3))
        );
        assert_eq!(
            parse("101%").unwrap_err().to_string(),
            "\"101%\" is not a valid maxRemovals: a percentage is a whole number from 0% to 100%"
        );
        assert_eq!(
            parse("many"),
            Err(MaxRemovalsError::Neither {
                shown: "\"many\"".into()
            })
        );
        assert_eq!(
            parse("many").unwrap_err().to_string(),
            "\"many\" is not a valid maxRemovals: write a count (5) or a percentage (\"25%\")"
        );
    }
}
