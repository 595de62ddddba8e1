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
        let (role, role_ok) = check_role(c, at, &roles_path.index(i), entry, &roles, tz);
        ok &= role_ok;
        roles.extend(role);
    }
    let names: Vec<&str> = m.roles.iter().map(RoleEntry::name).collect();
    if names.contains(&"customer-admin") && !names.contains(&"cockpit-access") {
        c.warning(
            at.doc,
            &roles_path,
            "customer-admin without cockpit-access cannot log in to use the administrative functions",
        );
    }
    let services = check_services(c, at, m.services.as_ref());
    ok &= services.is_ok();
    ok &= check_notifications(c, at, m.notifications.as_deref().unwrap_or_default());
    let email = email?;
    (ok && !m.roles.is_empty()).then(|| DesiredMember {
        email,
        name: m.name.clone(),
        roles,
        services: services.ok().flatten(),
        notifications: m.notifications.clone(),
        source: source(at.doc, &at.path),
    })
}

/// One role entry at `path`, checked against the roles before it. The role, unless it cannot
/// be read (it is then left out of the duplicate check), and whether it is free of errors.
fn check_role(
    c: &mut Checker,
    at: &Declared,
    path: &Path,
    entry: &RoleEntry,
    roles: &[DesiredRole],
    tz: Option<&jiff::tz::TimeZone>,
) -> (Option<DesiredRole>, bool) {
    let name = entry.name();
    if name.trim().is_empty() {
        c.error(at.doc, path, "a role name must not be empty");
        return (None, false);
    }
    let from = parse_opt_date(c, at.doc, &path.key("from"), entry.from());
    let until = parse_opt_date(c, at.doc, &path.key("until"), entry.until());
    let (Ok(from), Ok(until)) = (from, until) else {
        return (None, false);
    };
    let mut ok = true;
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
            path,
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
                format!(
                    "role {name:?} ended on {u}; it will be revoked, and the entry can be removed"
                ),
            );
        }
    }
    let role = DesiredRole {
        name: name.to_string(),
        window: Window { from, until },
        source: source(at.doc, path),
    };
    (Some(role), ok)
}

/// The member's service scope; `Err` when it is a word rolecall does not know (reported).
fn check_services(
    c: &mut Checker,
    at: &Declared,
    services: Option<&ServiceScope>,
) -> Result<Option<Services>, ()> {
    match services {
        None => Ok(None),
        Some(ServiceScope::Word(w)) if w == "all" => Ok(Some(Services::All)),
        Some(ServiceScope::Word(w)) if w == "none" => Ok(Some(Services::None)),
        Some(ServiceScope::Word(w)) => {
            c.error(
                at.doc,
                &at.path.key("services"),
                format!(
                    "{} is not a service scope: use all, none or a list of service ids",
                    quote_short(w)
                ),
            );
            Err(())
        }
        Some(ServiceScope::List(ids)) => Ok(Some(Services::Only(ids.clone()))),
    }
}

/// Each notification kind at most once; `false` when one is listed twice (reported).
fn check_notifications(c: &mut Checker, at: &Declared, kinds: &[String]) -> bool {
    let mut ok = true;
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
    ok
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
