//! Semantic checks across documents (SPEC §2) and resolution into the domain's desired state.

use std::collections::{BTreeMap, HashMap};

use jiff::Timestamp;

use super::diagnostic::{Diagnostic, closest};
use super::yaml::Path;
use super::{Body, Document, quote_short};
use crate::domain::text;
use crate::domain::{
    self, AccountPolicy, DesiredAccount, DesiredContact, DesiredMember, DesiredPortal, DesiredRole,
    DesiredState, Email, EmailGlob, RemovalLimit, Services, SourceRef, Window,
};
use crate::model::{self, ContactSpec, MaxRemovals, MemberSpec, RoleEntry, ServiceScope};

struct Checker<'a> {
    diags: &'a mut Vec<Diagnostic>,
    now: Timestamp,
}

impl Checker<'_> {
    fn error(&mut self, doc: &Document, path: &Path, msg: impl Into<String>) {
        self.diags.push(Diagnostic::error(
            &doc.file,
            doc.positions.pos_of(path),
            path,
            msg,
        ));
    }
    fn warning(&mut self, doc: &Document, path: &Path, msg: impl Into<String>) {
        self.diags.push(Diagnostic::warning(
            &doc.file,
            doc.positions.pos_of(path),
            path,
            msg,
        ));
    }
}

fn source(doc: &Document, path: &Path) -> SourceRef {
    let pos = doc.positions.pos_of(path);
    SourceRef {
        file: doc.file.clone(),
        line: pos.line,
        column: pos.column,
    }
}

fn spec() -> Path {
    Path::root().key("spec")
}

/// A member or contact as declared, wherever it was declared.
struct Declared<'a> {
    doc: &'a Document,
    path: Path,
}

pub(super) fn check_documents(
    docs: &[Document],
    now: Timestamp,
    diags: &mut Vec<Diagnostic>,
) -> DesiredState {
    let mut c = Checker { diags, now };
    check_names(&mut c, docs);

    let mut state = DesiredState::default();
    for doc in docs {
        if let Body::Portal(p) = &doc.body {
            check_portal(&mut c, doc, p);
            state.portals.push(DesiredPortal {
                name: doc.name.clone(),
                namespace: doc.namespace.clone(),
                url: p.url.clone(),
                token_env: p.token_env.clone(),
                source: source(doc, &Path::root()),
            });
        }
    }

    // Accounts by (namespace, name), for references.
    let accounts: Vec<&Document> = docs
        .iter()
        .filter(|d| matches!(d.body, Body::Account(_)))
        .collect();
    let mut by_name: HashMap<(&str, &str), usize> = HashMap::new();
    for (i, d) in accounts.iter().enumerate() {
        by_name
            .entry((d.namespace.as_str(), d.name.as_str()))
            .or_insert(i);
    }
    let mut extra_members: Vec<Vec<(&Document, MemberSpec)>> = vec![Vec::new(); accounts.len()];
    let mut extra_contacts: Vec<Vec<(&Document, ContactSpec)>> = vec![Vec::new(); accounts.len()];
    for doc in docs {
        let (account_ref, kind, ref_ns) = match &doc.body {
            Body::Member(m) => (
                &m.account_ref.name,
                "AccountMember",
                &m.account_ref.namespace,
            ),
            Body::Contact(n) => (
                &n.account_ref.name,
                "NotificationContact",
                &n.account_ref.namespace,
            ),
            _ => continue,
        };
        if let Some(ns) = ref_ns.as_ref().filter(|ns| **ns != doc.namespace) {
            c.error(
                doc,
                &spec().key("accountRef").key("namespace"),
                cross_namespace(kind, &doc.namespace, "CustomerAccount", ns),
            );
            continue;
        }
        match by_name.get(&(doc.namespace.as_str(), account_ref.as_str())) {
            Some(&i) => match &doc.body {
                Body::Member(m) => extra_members[i].push((doc, m.member())),
                Body::Contact(n) => extra_contacts[i].push((doc, n.contact())),
                _ => {}
            },
            None => {
                // The member's own fields are still worth checking.
                if let Body::Member(m) = &doc.body {
                    let at = Declared { doc, path: spec() };
                    let policy = AccountPolicy::default();
                    check_member(
                        &mut c,
                        &at,
                        &m.member(),
                        None,
                        &policy,
                        &mut BTreeMap::new(),
                    );
                }
                let names = accounts
                    .iter()
                    .filter(|a| a.namespace == doc.namespace)
                    .map(|a| a.name.as_str());
                let hint = closest(account_ref, names)
                    .map(|s| format!("; did you mean {s:?}?"))
                    .unwrap_or_default();
                c.error(
                    doc,
                    &spec().key("accountRef").key("name"),
                    format!(
                        "this {kind} points to CustomerAccount {account_ref:?}, but no CustomerAccount of that name is declared in namespace {:?}{hint}",
                        doc.namespace
                    ),
                );
            }
        }
    }

    // A customer number belongs to one CustomerAccount per portal.
    let mut numbers: HashMap<(Option<&str>, &str), &Document> = HashMap::new();
    for doc in &accounts {
        let Body::Account(a) = &doc.body else {
            continue;
        };
        let portal = a.portal_ref.as_ref().map(|r| r.name.as_str());
        let key = (portal, a.customer_number.as_str());
        if let Some(first) = numbers.get(&key) {
            c.error(
                doc,
                &spec().key("customerNumber"),
                format!(
                    "customer number {:?} is already claimed by CustomerAccount {:?} at {}",
                    a.customer_number,
                    first.name,
                    place(first, &spec().key("customerNumber"))
                ),
            );
        } else {
            numbers.insert(key, doc);
        }
    }

    // Each account on its own: independent of the others, so spread over the cores for large
    // fleets. Problems are sorted afterwards, and accounts kept in declaration order, so the
    // outcome is the same as one by one.
    let now = c.now;
    let portals = &state.portals;
    let checked = crate::parallel::on_every_core(accounts.len(), PARALLEL_FROM, |i| {
        let mut diags = Vec::new();
        let Body::Account(a) = &accounts[i].body else {
            return (None, diags);
        };
        let mut c = Checker {
            diags: &mut diags,
            now,
        };
        let account = check_account(
            &mut c,
            accounts[i],
            a,
            portals,
            &extra_members[i],
            &extra_contacts[i],
        );
        (account, diags)
    });
    for (account, mut diags) in checked {
        state.accounts.extend(account);
        c.diags.append(&mut diags);
    }
    state
}

/// Below this many accounts per core, checking them on one thread is cheaper than starting
/// more.
const PARALLEL_FROM: usize = 500;

fn place(doc: &Document, path: &Path) -> String {
    let pos = doc.positions.pos_of(path);
    format!("{}:{}:{}", doc.file, pos.line, pos.column)
}

/// Names are unique per kind and namespace, and valid Kubernetes names.
fn check_names(c: &mut Checker, docs: &[Document]) {
    let mut seen: HashMap<(&str, &str, &str), &Document> = HashMap::new();
    let name_path = Path::root().key("metadata").key("name");
    for doc in docs {
        // A missing name was already reported by the schema.
        let reported = doc.name.is_empty() && !doc.complete;
        if !reported && !is_dns_subdomain(&doc.name) {
            c.error(
                doc,
                &name_path,
                format!(
                    "{} is not a valid object name: use lower-case letters, digits, '-' and '.', starting and ending with a letter or digit",
                    quote_short(&doc.name)
                ),
            );
        }
        let key = (doc.body.kind(), doc.namespace.as_str(), doc.name.as_str());
        if let Some(first) = seen.get(&key) {
            c.error(
                doc,
                &name_path,
                format!(
                    "{} {:?} is declared twice in namespace {:?}: also at {}",
                    doc.body.kind(),
                    doc.name,
                    doc.namespace,
                    place(first, &name_path)
                ),
            );
        } else {
            seen.insert(key, doc);
        }
    }
}

/// Identifiers and names are shown in plans and logs: a control character (an escape
/// sequence, a carriage return, a line feed, a bidirectional override) could make them erase or
/// forge what a reviewer reads.
fn no_control(c: &mut Checker, doc: &Document, path: &Path, value: &str) {
    if let Some(ch) = value.chars().find(|ch| text::is_control(*ch)) {
        c.error(
            doc,
            path,
            format!(
                "{} holds the control character {}; write it without control characters",
                quote_short(value),
                ch.escape_unicode()
            ),
        );
    }
}

fn is_dns_subdomain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .chars()
            .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-' || ch == '.')
        && name.starts_with(|ch: char| ch.is_ascii_alphanumeric())
        && name.ends_with(|ch: char| ch.is_ascii_alphanumeric())
}

fn check_portal(c: &mut Checker, doc: &Document, p: &model::PortalSpec) {
    let url = p.url.trim();
    let ok = [
        "https://",
        "http://",
        "sandbox:",
        "whmcs+https://",
        "whmcs+http://",
        "billmgr+https://",
        "billmgr+http://",
    ]
    .iter()
    .any(|s| url.starts_with(s) && url.len() > s.len());
    if !ok {
        c.error(
            doc,
            &spec().key("url"),
            format!(
                "{} is not a portal URL: use https://host/…, http://host/… or sandbox:FILE",
                quote_short(&text::redact_url(&p.url))
            ),
        );
    }
    if text::has_userinfo(url) {
        c.error(
            doc,
            &spec().key("url"),
            format!(
                "{} carries credentials in the URL; remove them and give the token in the environment variable named by tokenEnv (default ROLECALL_TOKEN)",
                quote_short(&text::redact_url(&p.url))
            ),
        );
    }
    if let Some(env) = &p.token_env
        && (env.is_empty()
            || env.starts_with(|ch: char| ch.is_ascii_digit())
            || !env
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '_'))
    {
        c.error(
            doc,
            &spec().key("tokenEnv"),
            format!(
                "{} is not an environment variable name: use letters, digits and '_'",
                quote_short(env)
            ),
        );
    }
}

fn check_account(
    c: &mut Checker,
    doc: &Document,
    a: &model::CustomerAccountSpec,
    portals: &[DesiredPortal],
    extra_members: &[(&Document, MemberSpec)],
    extra_contacts: &[(&Document, ContactSpec)],
) -> Option<DesiredAccount> {
    let before = c.diags.iter().filter(|d| d.is_error()).count();
    // The reference portal's own rule (SPEC §4 paths): what passes here, the portal takes.
    if let Err(msg) = domain::check_customer_number(&a.customer_number) {
        c.error(doc, &spec().key("customerNumber"), msg.to_string());
    }
    no_control(c, doc, &spec().key("customerNumber"), &a.customer_number);
    if let Some(name) = &a.display_name {
        no_control(c, doc, &spec().key("displayName"), name);
    }
    if let Some(ns) = a
        .portal_ref
        .as_ref()
        .and_then(|r| r.namespace.as_ref())
        .filter(|ns| **ns != doc.namespace)
    {
        c.error(
            doc,
            &spec().key("portalRef").key("namespace"),
            cross_namespace("CustomerAccount", &doc.namespace, "Portal", ns),
        );
    } else if let Some(r) = &a.portal_ref
        && !portals
            .iter()
            .any(|p| p.namespace == doc.namespace && p.name == r.name)
    {
        c.error(
            doc,
            &spec().key("portalRef").key("name"),
            format!(
                "this CustomerAccount points to Portal {:?}, but no Portal of that name is declared in namespace {:?}",
                r.name, doc.namespace
            ),
        );
    }
    let tz_name = a.time_zone.clone().unwrap_or_else(|| "UTC".to_string());
    let tz = match domain::parse_time_zone(&tz_name) {
        Ok(tz) => Some(tz),
        Err(msg) => {
            c.error(doc, &spec().key("timeZone"), msg.to_string());
            None
        }
    };
    let policy = check_policy(c, doc, a.policy.as_ref());

    let mut members = Vec::with_capacity(a.members.len() + extra_members.len());
    let mut first_seen: BTreeMap<String, Declared> = BTreeMap::new();
    let inline = a.members.iter().enumerate().map(|(i, m)| {
        (
            Declared {
                doc,
                path: spec().key("members").index(doc.kept.member(i)),
            },
            m,
        )
    });
    let separate = extra_members.iter().map(|(d, m)| {
        (
            Declared {
                doc: d,
                path: spec(),
            },
            m,
        )
    });
    for (at, m) in inline.chain(separate) {
        if let Some(member) = check_member(c, &at, m, tz.as_ref(), &policy, &mut first_seen) {
            members.push(member);
        }
    }

    let mut contacts = Vec::with_capacity(a.contacts.len() + extra_contacts.len());
    let mut first_contact: BTreeMap<String, Declared> = BTreeMap::new();
    let inline = a.contacts.iter().enumerate().map(|(i, m)| {
        (
            Declared {
                doc,
                path: spec().key("contacts").index(doc.kept.contact(i)),
            },
            m,
        )
    });
    let separate = extra_contacts.iter().map(|(d, m)| {
        (
            Declared {
                doc: d,
                path: spec(),
            },
            m,
        )
    });
    for (at, contact) in inline.chain(separate) {
        let email_path = at.path.key("email");
        let Some(email) = check_email(
            c,
            &at,
            &email_path,
            &contact.email,
            &policy,
            &mut first_contact,
            "contact",
        ) else {
            continue;
        };
        if let Some(name) = &contact.name {
            no_control(c, at.doc, &at.path.key("name"), name);
        }
        let mut seen_kinds = Vec::new();
        for (k, kind) in contact.notifications.iter().enumerate() {
            if seen_kinds.contains(&kind) {
                c.error(
                    at.doc,
                    &at.path.key("notifications").index(k),
                    format!("notification kind {kind:?} is listed twice"),
                );
            }
            seen_kinds.push(kind);
        }
        contacts.push(DesiredContact {
            email,
            name: contact.name.clone(),
            notifications: contact.notifications.clone(),
            source: source(at.doc, &at.path),
        });
    }

    let after = c.diags.iter().filter(|d| d.is_error()).count();
    let tz = tz?;
    (after == before).then(|| DesiredAccount {
        name: doc.name.clone(),
        namespace: doc.namespace.clone(),
        portal_ref: a.portal_ref.as_ref().map(|r| r.name.clone()),
        customer_number: a.customer_number.clone(),
        display_name: a.display_name.clone(),
        time_zone_name: tz_name,
        time_zone_declared: a.time_zone.is_some(),
        time_zone: tz,
        members,
        contacts,
        policy,
        source: source(doc, &Path::root()),
    })
}

fn check_policy(c: &mut Checker, doc: &Document, p: Option<&model::Policy>) -> AccountPolicy {
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
fn check_email<'a>(
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

fn check_member<'a>(
    c: &mut Checker,
    at: &Declared<'a>,
    m: &MemberSpec,
    tz: Option<&jiff::tz::TimeZone>,
    policy: &AccountPolicy,
    first_seen: &mut BTreeMap<String, Declared<'a>>,
) -> Option<DesiredMember> {
    let email = check_email(
        c,
        at,
        &at.path.key("email"),
        &m.email,
        policy,
        first_seen,
        "member",
    );
    if let Some(name) = &m.name {
        no_control(c, at.doc, &at.path.key("name"), name);
    }
    let roles_path = at.path.key("roles");
    if m.roles.is_empty() {
        c.error(
            at.doc,
            &roles_path,
            "a member needs at least one role; declare one or remove the member",
        );
    }
    let mut roles: Vec<DesiredRole> = Vec::with_capacity(m.roles.len());
    let mut ok = email.is_some();
    for (i, entry) in m.roles.iter().enumerate() {
        let path = roles_path.index(i);
        let name = entry.name();
        if name.trim().is_empty() {
            c.error(at.doc, &path, "a role name must not be empty");
            ok = false;
            continue;
        }
        let from = parse_opt_date(c, at.doc, &path.key("from"), entry.from());
        let until = parse_opt_date(c, at.doc, &path.key("until"), entry.until());
        let (Ok(from), Ok(until)) = (from, until) else {
            ok = false;
            continue;
        };
        if let (Some(f), Some(u)) = (from, until)
            && f > u
        {
            c.error(
                at.doc,
                &path.key("from"),
                format!(
                    "role {name:?} starts on {f} after it ends on {u}: from must not be after until"
                ),
            );
            ok = false;
        }
        if let Some(first) = roles.iter().position(|r| r.name == name) {
            c.error(
                at.doc,
                &path,
                format!("role {name:?} is listed twice for this member (also at roles[{first}]); give it one window"),
            );
            ok = false;
        }
        if let (Some(u), Some(tz)) = (until, tz) {
            let window = Window {
                from: None,
                until: Some(u),
            };
            if let Some(end) = window.ends_at(tz)
                && end <= c.now
            {
                c.warning(
                    at.doc,
                    &path.key("until"),
                    format!("role {name:?} ended on {u}; it will be revoked, and the entry can be removed"),
                );
            }
        }
        roles.push(DesiredRole {
            name: name.to_string(),
            window: Window { from, until },
            source: source(at.doc, &path),
        });
    }
    let names: Vec<&str> = m.roles.iter().map(RoleEntry::name).collect();
    if names.contains(&"customer-admin") && !names.contains(&"cockpit-access") {
        c.warning(
            at.doc,
            &roles_path,
            "customer-admin without cockpit-access cannot log in to use the administrative functions",
        );
    }
    let services = match &m.services {
        None => None,
        Some(ServiceScope::Word(w)) if w == "all" => Some(Services::All),
        Some(ServiceScope::Word(w)) if w == "none" => Some(Services::None),
        Some(ServiceScope::Word(w)) => {
            c.error(
                at.doc,
                &at.path.key("services"),
                format!(
                    "{} is not a service scope: use all, none or a list of service ids",
                    quote_short(w)
                ),
            );
            ok = false;
            None
        }
        Some(ServiceScope::List(ids)) => Some(Services::Only(ids.clone())),
    };
    if let Some(kinds) = &m.notifications {
        for (k, kind) in kinds.iter().enumerate() {
            if kinds[..k].contains(kind) {
                c.error(
                    at.doc,
                    &at.path.key("notifications").index(k),
                    format!("notification kind {kind:?} is listed twice"),
                );
                ok = false;
            }
        }
    }
    let email = email?;
    (ok && !m.roles.is_empty()).then(|| DesiredMember {
        email,
        name: m.name.clone(),
        roles,
        services,
        notifications: m.notifications.clone(),
        source: source(at.doc, &at.path),
    })
}

fn parse_opt_date(
    c: &mut Checker,
    doc: &Document,
    path: &Path,
    text: Option<&str>,
) -> Result<Option<jiff::civil::Date>, ()> {
    match text {
        None => Ok(None),
        Some(t) => domain::parse_date(t).map(Some).map_err(|msg| {
            c.error(doc, path, msg.to_string());
        }),
    }
}

/// The sentence for a reference that leaves its own namespace.
fn cross_namespace(kind: &str, own: &str, target: &str, other: &str) -> String {
    format!(
        "this {kind} is in namespace {own:?} and may not reference a {target} in namespace {other:?}: references across namespaces are refused"
    )
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
