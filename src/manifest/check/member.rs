//! A member of an account: its e-mail, name, services and roles with their windows.

use super::*;

pub(super) fn check_member<'a>(
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
