//! Semantic checks across documents (SPEC §2) and resolution into the domain's desired state.

use std::collections::{BTreeMap, HashMap};

use jiff::Timestamp;
use rayon::prelude::*;

use super::diagnostic::{Diagnostic, closest};
use super::yaml::Path;
use super::{Body, Document, quote_short};
use crate::domain::text;
use crate::domain::{
    self, AccountPolicy, DesiredAccount, DesiredContact, DesiredMember, DesiredPortal, DesiredRole,
    DesiredState, Email, EmailGlob, RemovalLimit, Services, SourceRef, Window,
};
use crate::model::{self, ContactSpec, MaxRemovals, MemberSpec, RoleEntry, ServiceScope};

mod account;
mod member;
mod policy;

use account::check_account;
use member::check_member;
use policy::{check_email, check_policy};

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

/// The structural checks of one document already read into a tree (the controller's objects
/// arrive as values, not text): apiVersion, kind and the kind's schema, as for a file.
pub(crate) fn check_structure(
    file: &str,
    root: super::yaml::Node,
    validators: &super::schema::Validators,
    diags: &mut Vec<Diagnostic>,
) -> Option<Document> {
    super::structure::check_document(file, root, validators, diags)
}

/// The semantic checks across documents (SPEC §2) and their resolution into the desired state;
/// for files and for the controller's typed objects alike.
/// The documents are consumed: each CustomerAccount's document is dropped as soon as its
/// account is checked, so that a large fleet does not hold every document and the whole desired
/// state at once.
pub(crate) fn check_documents(
    docs: Vec<Document>,
    now: Timestamp,
    diags: &mut Vec<Diagnostic>,
) -> DesiredState {
    let mut c = Checker { diags, now };
    check_names(&mut c, &docs);

    let mut state = DesiredState::default();
    for doc in &docs {
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

    let (accounts, others): (Vec<Document>, Vec<Document>) = docs
        .into_iter()
        .partition(|d| matches!(d.body, Body::Account(_)));
    let extras = {
        let accounts: Vec<&Document> = accounts.iter().collect();
        check_customer_numbers(&mut c, &accounts);
        attach(&mut c, &others, &accounts)
    };
    for (account, mut diags) in check_accounts(now, accounts, &state.portals, &extras) {
        state.accounts.extend(account);
        c.diags.append(&mut diags);
    }
    state
}

/// The members and contacts declared as documents of their own, by the index of the account
/// they point to.
struct Extras<'a> {
    members: Vec<Vec<(&'a Document, MemberSpec)>>,
    contacts: Vec<Vec<(&'a Document, ContactSpec)>>,
}

/// Attaches each AccountMember and NotificationContact to the CustomerAccount it points to,
/// reporting references that leave their namespace or name no account.
fn attach<'a>(c: &mut Checker, docs: &'a [Document], accounts: &[&Document]) -> Extras<'a> {
    // Accounts by (namespace, name), for references.
    let mut by_name: HashMap<(&str, &str), usize> = HashMap::new();
    for (i, d) in accounts.iter().enumerate() {
        by_name
            .entry((d.namespace.as_str(), d.name.as_str()))
            .or_insert(i);
    }
    let mut extras = Extras {
        members: vec![Vec::new(); accounts.len()],
        contacts: vec![Vec::new(); accounts.len()],
    };
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
                Body::Member(m) => extras.members[i].push((doc, m.member())),
                Body::Contact(n) => extras.contacts[i].push((doc, n.contact())),
                _ => {}
            },
            None => unknown_account(c, doc, account_ref, kind, accounts),
        }
    }
    extras
}

/// A member or contact that points to an account not declared in its namespace.
fn unknown_account(
    c: &mut Checker,
    doc: &Document,
    account_ref: &str,
    kind: &str,
    accounts: &[&Document],
) {
    // The member's own fields are still worth checking.
    if let Body::Member(m) = &doc.body {
        let at = Declared { doc, path: spec() };
        let policy = AccountPolicy::default();
        check_member(c, &at, &m.member(), None, &policy, &mut BTreeMap::new());
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

/// A customer number belongs to one CustomerAccount per portal.
fn check_customer_numbers(c: &mut Checker, accounts: &[&Document]) {
    let mut numbers: HashMap<(Option<&str>, &str), &Document> = HashMap::new();
    for doc in accounts {
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
}

/// Each account on its own: independent of the others, so spread over the cores for large
/// fleets. Problems are sorted afterwards, and accounts kept in declaration order, so the
/// outcome is the same as one by one.
fn check_accounts(
    now: Timestamp,
    accounts: Vec<Document>,
    portals: &[DesiredPortal],
    extras: &Extras,
) -> Vec<(Option<DesiredAccount>, Vec<Diagnostic>)> {
    // Each document is dropped when its account is checked (the closure owns it).
    let check_one = |(i, doc): (usize, Document)| {
        let mut diags = Vec::new();
        let Body::Account(a) = &doc.body else {
            return (None, diags);
        };
        let mut c = Checker {
            diags: &mut diags,
            now,
        };
        let account = check_account(
            &mut c,
            &doc,
            a,
            portals,
            &extras.members[i],
            &extras.contacts[i],
        );
        (account, diags)
    };
    // On the reading pool: a problem's place may read its document again (see `yaml`).
    let pool = if accounts.len() >= 2 * PARALLEL_FROM {
        crate::workers::pool()
    } else {
        None
    };
    match pool {
        Some(pool) => pool.install(|| {
            accounts
                .into_par_iter()
                .enumerate()
                .with_min_len(PARALLEL_FROM)
                .map(check_one)
                .collect()
        }),
        None => accounts.into_iter().enumerate().map(check_one).collect(),
    }
}

/// Fewer accounts than this per piece of work cost more to hand to another thread than to
/// check: below twice as many, all are checked on the calling thread.
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

/// The sentence for a reference that leaves its own namespace.
fn cross_namespace(kind: &str, own: &str, target: &str, other: &str) -> String {
    format!(
        "this {kind} is in namespace {own:?} and may not reference a {target} in namespace {other:?}: references across namespaces are refused"
    )
}
