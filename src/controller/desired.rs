//! From Kubernetes objects to the planner's desired account, through the very checks `rolecall
//! validate` runs on files: each object is written out as a YAML document and read back by the
//! manifest reader, so the controller and the CLI can never disagree on what is valid.

use jiff::Timestamp;
use kube::ResourceExt;
use serde::Serialize;

use crate::domain::DesiredAccount;
use crate::manifest::{self, Diagnostic, SourceFile};
use crate::model::{AccountMember, CustomerAccount, NotificationContact, Portal};

/// Name under which an object's diagnostics are reported: `kind/namespace/name`.
pub fn source_name(kind: &str, namespace: &str, name: &str) -> String {
    format!("{}/{namespace}/{name}", kind.to_lowercase())
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Doc<'a, S: Serialize> {
    api_version: &'static str,
    kind: &'static str,
    metadata: Meta<'a>,
    spec: &'a S,
}

#[derive(Serialize)]
struct Meta<'a> {
    name: &'a str,
    namespace: &'a str,
}

fn document<S: Serialize>(kind: &'static str, namespace: &str, name: &str, spec: &S) -> SourceFile {
    let doc = Doc {
        api_version: "rolecall.dev/v1alpha1",
        kind,
        metadata: Meta { name, namespace },
        spec,
    };
    SourceFile {
        name: source_name(kind, namespace, name),
        // Serialising plain data to YAML cannot fail; an empty text would only surface as an
        // "empty document" diagnostic rather than a panic.
        text: serde_saphyr::to_string(&doc).unwrap_or_default(),
    }
}

/// What one account's objects declare, checked.
#[derive(Debug)]
pub struct Declared {
    /// The account, when every object that shapes it is valid.
    pub account: Option<DesiredAccount>,
    pub diagnostics: Vec<Diagnostic>,
}

impl Declared {
    /// Errors, as `kind/namespace/name: field: sentence`, one per line.
    pub fn error_text(&self) -> String {
        self.diagnostics
            .iter()
            .filter(|d| d.is_error())
            .map(|d| format!("{}: {}: {}", d.file, d.path, d.message))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Errors of one object, by its source name.
    pub fn errors_of(&self, source: &str) -> Vec<String> {
        self.diagnostics
            .iter()
            .filter(|d| d.is_error() && d.file == source)
            .map(|d| format!("{}: {}", d.path, d.message))
            .collect()
    }
}

/// Checks an account with the members, contacts and portals of its namespace.
pub fn declared(
    account: &CustomerAccount,
    portals: &[&Portal],
    members: &[&AccountMember],
    contacts: &[&NotificationContact],
    now: Timestamp,
) -> Declared {
    let namespace = account.namespace().unwrap_or_default();
    let mut files = Vec::with_capacity(1 + portals.len() + members.len() + contacts.len());
    for p in portals {
        files.push(document("Portal", &namespace, &p.name_any(), &p.spec));
    }
    files.push(document(
        "CustomerAccount",
        &namespace,
        &account.name_any(),
        &account.spec,
    ));
    for m in members {
        files.push(document(
            "AccountMember",
            &namespace,
            &m.name_any(),
            &m.spec,
        ));
    }
    for c in contacts {
        files.push(document(
            "NotificationContact",
            &namespace,
            &c.name_any(),
            &c.spec,
        ));
    }
    let checked = manifest::check_files(&files, now);
    let has_errors = checked.has_errors();
    let account = if has_errors {
        None
    } else {
        checked.desired.accounts.into_iter().next()
    };
    Declared {
        account,
        diagnostics: checked.diagnostics,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AccountMemberSpec, CustomerAccountSpec, LocalRef, MemberSpec, RoleEntry};

    fn account(spec: CustomerAccountSpec) -> CustomerAccount {
        let mut a = CustomerAccount::new("acme", spec);
        a.metadata.namespace = Some("team-a".into());
        a
    }

    fn spec(members: Vec<MemberSpec>) -> CustomerAccountSpec {
        CustomerAccountSpec {
            portal_ref: None,
            customer_number: "10042".into(),
            display_name: None,
            time_zone: Some("Europe/Zurich".into()),
            members,
            contacts: vec![],
            policy: None,
        }
    }

    fn member(email: &str, roles: &[&str]) -> MemberSpec {
        MemberSpec {
            email: email.into(),
            name: None,
            roles: roles
                .iter()
                .map(|r| RoleEntry::Name((*r).to_string()))
                .collect(),
            services: None,
            notifications: None,
        }
    }

    #[test]
    fn a_valid_account_with_a_separate_member_resolves() {
        let a = account(spec(vec![member(
            "alice@acme.example",
            &["cockpit-access", "customer-admin"],
        )]));
        let mut carol = AccountMember::new(
            "carol",
            AccountMemberSpec {
                account_ref: LocalRef {
                    name: "acme".into(),
                    namespace: None,
                },
                email: "carol@acme.example".into(),
                name: None,
                roles: vec![RoleEntry::Name("technical-contact".into())],
                services: None,
                notifications: None,
            },
        );
        carol.metadata.namespace = Some("team-a".into());
        let d = declared(&a, &[], &[&carol], &[], Timestamp::UNIX_EPOCH);
        let account = d.account.expect("valid");
        assert_eq!(account.customer_number, "10042");
        assert_eq!(account.namespace, "team-a");
        let emails: Vec<&str> = account.members.iter().map(|m| m.email.as_str()).collect();
        assert_eq!(emails, ["alice@acme.example", "carol@acme.example"]);
    }

    #[test]
    fn an_invalid_member_is_named_with_its_object_and_field() {
        let a = account(spec(vec![member("bob@", &["cockpit-access"])]));
        let d = declared(&a, &[], &[], &[], Timestamp::UNIX_EPOCH);
        assert!(d.account.is_none());
        let text = d.error_text();
        assert!(
            text.starts_with("customeraccount/team-a/acme: spec.members[0].email:"),
            "{text}"
        );
        assert_eq!(
            d.errors_of("customeraccount/team-a/acme").len(),
            1,
            "{text}"
        );
    }

    #[test]
    fn a_reference_to_another_namespace_is_refused() {
        let mut s = spec(vec![member("alice@acme.example", &["cockpit-access"])]);
        s.portal_ref = Some(LocalRef {
            name: "main".into(),
            namespace: Some("team-b".into()),
        });
        let d = declared(&account(s), &[], &[], &[], Timestamp::UNIX_EPOCH);
        assert!(d.account.is_none());
        assert!(
            d.error_text()
                .contains("references across namespaces are refused"),
            "{}",
            d.error_text()
        );
    }
}
