//! From Kubernetes objects to the planner's desired account, through the very checks `rolecall
//! validate` runs on files: each typed object becomes a manifest document directly (no YAML
//! text), is held against its kind's schema — compiled once per process — and then goes
//! through the same semantic checks, so the controller and the CLI can never disagree on what
//! is valid.

use std::sync::LazyLock;

use jiff::Timestamp;
use kube::ResourceExt;
use serde_json::{Value as Json, json};

use crate::domain::DesiredAccount;
use crate::manifest::check;
use crate::manifest::schema::Validators;
use crate::manifest::yaml::{Entry, Node, Path, Pos, Positions, Value};
use crate::manifest::{self, Body, Diagnostic, Document, Kept};
use crate::model::{API_VERSION, AccountMember, CustomerAccount, NotificationContact, Portal};

/// The kinds' schemas, compiled on first use and kept for the life of the process.
static VALIDATORS: LazyLock<Validators> = LazyLock::new(Validators::new);

/// Name under which an object's diagnostics are reported: `kind/namespace/name`.
pub fn source_name(kind: &str, namespace: &str, name: &str) -> String {
    format!("{}/{namespace}/{name}", kind.to_lowercase())
}

/// The spec of a typed object as the schema sees it.
fn spec_json(body: &Body) -> Result<Json, serde_json::Error> {
    match body {
        Body::Portal(s) => serde_json::to_value(s),
        Body::Account(s) => serde_json::to_value(s),
        Body::Member(s) => serde_json::to_value(s),
        Body::Contact(s) => serde_json::to_value(s),
    }
}

/// A tree of a value, its parts numbered in the order a manifest would list them, so that an
/// object's problems keep a stable order.
fn tree(value: &Json, next: &mut u32) -> Node {
    *next += 1;
    let pos = Pos {
        line: *next,
        column: 1,
    };
    let value = match value {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().unwrap_or_default()),
        },
        Json::String(s) => Value::Str(s.clone()),
        Json::Array(items) => Value::Seq(items.iter().map(|v| tree(v, next)).collect()),
        Json::Object(map) => Value::Map(
            map.iter()
                .map(|(k, v)| {
                    let key_pos = Pos {
                        line: *next + 1,
                        column: 1,
                    };
                    Entry {
                        key: k.clone(),
                        key_pos,
                        value: tree(v, next),
                    }
                })
                .collect(),
        ),
    };
    Node { pos, value }
}

/// One object as a checked document: the schema's fast answer for a valid one, its located
/// problems for one that is not.
fn document(
    namespace: &str,
    name: &str,
    body: Body,
    diags: &mut Vec<Diagnostic>,
) -> Option<Document> {
    let file = source_name(body.kind(), namespace, name);
    let spec = match spec_json(&body) {
        Ok(spec) => spec,
        Err(e) => {
            diags.push(Diagnostic::error(
                &file,
                Pos { line: 1, column: 1 },
                &Path::root().key("spec"),
                format!("cannot be read: {e}"),
            ));
            return None;
        }
    };
    let instance = json!({
        "apiVersion": API_VERSION,
        "kind": body.kind(),
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    });
    let root = tree(&instance, &mut 0);
    let valid = VALIDATORS
        .get(body.kind())
        .is_some_and(|(_, v)| v.is_valid(&instance));
    if !valid {
        return check::check_structure(&file, root, &VALIDATORS, diags);
    }
    Some(Document {
        file: file.into(),
        positions: Positions::Tree(Box::new(root)),
        name: name.to_string(),
        namespace: namespace.to_string(),
        body,
        complete: true,
        kept: Kept::default(),
    })
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
    let mut diagnostics = Vec::new();
    let mut docs = Vec::with_capacity(1 + portals.len() + members.len() + contacts.len());
    let objects = portals
        .iter()
        .map(|p| (p.name_any(), Body::Portal(p.spec.clone())))
        .chain([(account.name_any(), Body::Account(account.spec.clone()))])
        .chain(
            members
                .iter()
                .map(|m| (m.name_any(), Body::Member(m.spec.clone()))),
        )
        .chain(
            contacts
                .iter()
                .map(|c| (c.name_any(), Body::Contact(c.spec.clone()))),
        );
    for (name, body) in objects {
        docs.extend(document(&namespace, &name, body, &mut diagnostics));
    }
    let desired = check::check_documents(docs, now, &mut diagnostics);
    manifest::diagnostic::sort(&mut diagnostics);
    let has_errors = diagnostics.iter().any(Diagnostic::is_error);
    let account = if has_errors {
        None
    } else {
        desired.accounts.into_iter().next()
    };
    Declared {
        account,
        diagnostics,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::SourceFile;
    use crate::model::{
        AccountMemberSpec, CustomerAccountSpec, LocalRef, MaxRemovals, MemberSpec, Policy,
        RoleEntry, RoleWindow, ServiceScope,
    };

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

    /// What the controller read before it built documents from its typed objects: each object
    /// written out as YAML and read back by the file reader. The typed path must say the same.
    fn through_yaml_text(
        account: &CustomerAccount,
        members: &[&AccountMember],
    ) -> Vec<(String, String, String)> {
        #[derive(serde::Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Doc<'a, S> {
            api_version: &'a str,
            kind: &'a str,
            metadata: serde_json::Value,
            spec: &'a S,
        }
        fn text<S: serde::Serialize>(kind: &str, name: &str, spec: &S) -> SourceFile {
            let doc = Doc {
                api_version: API_VERSION,
                kind,
                metadata: json!({"name": name, "namespace": "team-a"}),
                spec,
            };
            SourceFile {
                name: source_name(kind, "team-a", name),
                text: serde_saphyr::to_string(&doc).unwrap().into(),
            }
        }
        let mut files = vec![text("CustomerAccount", &account.name_any(), &account.spec)];
        for m in members {
            files.push(text("AccountMember", &m.name_any(), &m.spec));
        }
        let checked = manifest::check_files(&files, Timestamp::UNIX_EPOCH);
        words(&checked.diagnostics)
    }

    /// File, field and sentence of each problem; the line and column a sentence may cite
    /// ("also at kind/namespace/name:10:12") were the generated text's and are left out.
    fn words(diags: &[Diagnostic]) -> Vec<(String, String, String)> {
        let place = |m: &str| match m.rfind(" at ") {
            Some(i) if m[i..].chars().last().is_some_and(|c| c.is_ascii_digit()) => {
                let cited = &m[i + 4..];
                let object = cited.split(':').next().unwrap_or(cited);
                format!("{} at {object}", &m[..i])
            }
            _ => m.to_string(),
        };
        let mut w: Vec<_> = diags
            .iter()
            .map(|d| (d.file.to_string(), d.path.to_string(), place(&d.message)))
            .collect();
        w.sort();
        w
    }

    fn separate(name: &str, email: &str, roles: Vec<RoleEntry>) -> AccountMember {
        let mut m = AccountMember::new(
            name,
            AccountMemberSpec {
                account_ref: LocalRef {
                    name: "acme".into(),
                    namespace: None,
                },
                email: email.into(),
                name: None,
                roles,
                services: None,
                notifications: None,
            },
        );
        m.metadata.namespace = Some("team-a".into());
        m
    }

    /// Problems only the schema sees (an empty role name, a service word it does not know)
    /// and the semantic ones read as they did through the file reader, word for word.
    #[test]
    fn typed_objects_get_the_file_readers_diagnostics() {
        let mut odd = member("bob@acme.example", &["", "cockpit-access"]);
        odd.services = Some(ServiceScope::Word("some".into()));
        let mut s = spec(vec![
            member("alice@acme.example", &["customer-admin"]),
            odd,
            member("ALICE@acme.example", &["cockpit-access", "cockpit-access"]),
        ]);
        s.time_zone = Some("Mars/Olympus".into());
        s.customer_number = "10 42".into();
        s.policy = Some(Policy {
            max_removals: Some(MaxRemovals::Text("lots".into())),
            ..Policy::default()
        });
        let a = account(s);
        let window = RoleEntry::Window(RoleWindow {
            name: "technical-contact".into(),
            from: Some("2026-13-01".into()),
            until: Some("2026-01-01".into()),
        });
        let carol = separate("carol", "carol@", vec![window]);
        let dave = separate("dave", "dave@acme.example", vec![]);
        let d = declared(&a, &[], &[&carol, &dave], &[], Timestamp::UNIX_EPOCH);
        assert!(d.account.is_none());
        let expected = through_yaml_text(&a, &[&carol, &dave]);
        assert!(expected.len() >= 8, "{expected:#?}");
        assert_eq!(words(&d.diagnostics), expected);
    }

    /// A valid account resolves to what the file reader resolved it to.
    #[test]
    fn a_valid_account_equals_the_file_readers() {
        let mut s = spec(vec![member("alice@acme.example", &["cockpit-access"])]);
        s.members[0].services = Some(ServiceScope::List(vec!["svc-1".into()]));
        let a = account(s);
        let d = declared(&a, &[], &[], &[], Timestamp::UNIX_EPOCH);
        assert!(d.diagnostics.is_empty(), "{:?}", d.diagnostics);
        let account = d.account.expect("valid");
        assert_eq!(account.members[0].roles[0].name, "cockpit-access");
        assert_eq!(
            account.members[0].services,
            Some(crate::domain::Services::Only(vec!["svc-1".into()]))
        );
        assert!(through_yaml_text(&a, &[]).is_empty());
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
