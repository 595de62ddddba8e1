//! One CustomerAccount: its own fields, then its members and contacts, wherever declared.

use super::*;

pub(super) fn check_account(
    c: &mut Checker,
    doc: &Document,
    a: &model::CustomerAccountSpec,
    portals: &[DesiredPortal],
    extra_members: &[(&Document, MemberSpec)],
    extra_contacts: &[(&Document, ContactSpec)],
) -> Option<DesiredAccount> {
    let before = c.diags.iter().filter(|d| d.is_error()).count();
    check_account_fields(c, doc, a, portals);
    let tz_name = a.time_zone.clone().unwrap_or_else(|| "UTC".to_string());
    let tz = match domain::parse_time_zone(&tz_name) {
        Ok(tz) => Some(tz),
        Err(msg) => {
            c.error(doc, &spec().key("timeZone"), msg.to_string());
            None
        }
    };
    let policy = check_policy(c, doc, a.policy.as_ref());
    let members = check_members(c, doc, &a.members, extra_members, tz.as_ref(), &policy);
    let contacts = check_contacts(c, doc, &a.contacts, extra_contacts, &policy);

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

/// The account's customer number, display name and Portal reference.
fn check_account_fields(
    c: &mut Checker,
    doc: &Document,
    a: &model::CustomerAccountSpec,
    portals: &[DesiredPortal],
) {
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
}

/// Where each entry was declared: inline in the account's `spec.<list>` (at the index the user
/// wrote), then as documents of their own.
fn declared<'a, T>(
    doc: &'a Document,
    list: &'static str,
    index: impl Fn(usize) -> usize + 'a,
    inline: &'a [T],
    separate: &'a [(&'a Document, T)],
) -> impl Iterator<Item = (Declared<'a>, &'a T)> {
    let inline = inline.iter().enumerate().map(move |(i, m)| {
        (
            Declared {
                doc,
                path: spec().key(list).index(index(i)),
            },
            m,
        )
    });
    let separate = separate.iter().map(|(d, m)| {
        (
            Declared {
                doc: d,
                path: spec(),
            },
            m,
        )
    });
    inline.chain(separate)
}

fn check_members(
    c: &mut Checker,
    doc: &Document,
    inline: &[MemberSpec],
    separate: &[(&Document, MemberSpec)],
    tz: Option<&jiff::tz::TimeZone>,
    policy: &AccountPolicy,
) -> Vec<DesiredMember> {
    let mut members = Vec::with_capacity(inline.len() + separate.len());
    let mut first_seen: BTreeMap<String, Declared> = BTreeMap::new();
    let index = |i| doc.kept.member(i);
    for (at, m) in declared(doc, "members", index, inline, separate) {
        if let Some(member) = check_member(c, &at, m, tz, policy, &mut first_seen) {
            members.push(member);
        }
    }
    members
}

fn check_contacts(
    c: &mut Checker,
    doc: &Document,
    inline: &[ContactSpec],
    separate: &[(&Document, ContactSpec)],
    policy: &AccountPolicy,
) -> Vec<DesiredContact> {
    let mut contacts = Vec::with_capacity(inline.len() + separate.len());
    let mut first_contact: BTreeMap<String, Declared> = BTreeMap::new();
    let index = |i| doc.kept.contact(i);
    for (at, contact) in declared(doc, "contacts", index, inline, separate) {
        let email_path = at.path.key("email");
        let Some(email) = check_email(
            c,
            &at,
            &email_path,
            &contact.email,
            policy,
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
    contacts
}
