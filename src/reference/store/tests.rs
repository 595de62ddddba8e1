//! The store's rules, without HTTP.

use super::*;
use crate::portal::AccountFilter;
use crate::portal::api::{ContactPut, InvitationStatus, MemberPut, NewAccount};

pub(super) fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

pub(super) fn op() -> Principal {
    Principal::operator("op")
}

fn grant(name: &str, until: Option<&str>) -> RoleGrant {
    RoleGrant {
        name: name.into(),
        until: until.map(str::to_string),
    }
}

pub(super) fn put(roles: Vec<RoleGrant>) -> MemberPut {
    MemberPut {
        name: None,
        roles,
        services: None,
        notifications: None,
    }
}

pub(super) fn admin_roles() -> Vec<RoleGrant> {
    vec![grant(COCKPIT_ACCESS, None), grant(CUSTOMER_ADMIN, None)]
}

fn store_with_account(zone: &str) -> (Store, Timestamp) {
    let now = ts("2026-12-31T12:00:00Z");
    let mut s = Store::open_in_memory(Some(now)).unwrap();
    s.create_account(
        &op(),
        now,
        &NewAccount {
            customer_number: "100".into(),
            display_name: "Acme".into(),
            time_zone: zone.into(),
        },
    )
    .unwrap();
    (s, now)
}

/// Makes `email` a linked admin of account 100.
fn linked_admin(s: &mut Store, now: Timestamp, email: &str) {
    s.put_member(&op(), now, "100", email, &put(admin_roles()), None)
        .unwrap();
    s.create_user(&op(), email).unwrap();
}

#[test]
fn put_sets_exactly_the_roles_and_reports_creation() {
    let (mut s, now) = store_with_account("UTC");
    let (m, created) = s
        .put_member(
            &op(),
            now,
            "100",
            "Bob@Example.com",
            &put(admin_roles()),
            None,
        )
        .unwrap();
    assert!(created);
    assert_eq!(m.email, "Bob@Example.com");
    assert_eq!(m.roles.len(), 2);
    let (m, created) = s
        .put_member(
            &op(),
            now,
            "100",
            "bob@example.com",
            &put(vec![grant(TECHNICAL_CONTACT, None)]),
            None,
        )
        .unwrap();
    assert!(!created, "e-mails compare case-insensitively");
    assert_eq!(m.roles, vec![grant(TECHNICAL_CONTACT, None)]);
}

#[test]
fn unknown_roles_and_kinds_are_refused_with_their_field() {
    let (mut s, now) = store_with_account("UTC");
    let err = s
        .put_member(
            &op(),
            now,
            "100",
            "a@example.com",
            &put(vec![grant("root", None)]),
            None,
        )
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::UnknownRole);
    assert_eq!(err.errors[0].field, "roles[0].name");
    let err = s
        .put_contact(
            &op(),
            now,
            "100",
            "c@example.com",
            &ContactPut {
                name: "C".into(),
                notifications: vec!["spam".into()],
            },
            None,
        )
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::UnknownNotificationKind);
    assert_eq!(err.errors[0].field, "notifications[0]");
    let err = s
        .put_member(
            &op(),
            now,
            "100",
            "a@example.com",
            &put(vec![grant(COCKPIT_ACCESS, Some("2026-02-30"))]),
            None,
        )
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::Invalid);
    assert_eq!(err.errors[0].field, "roles[0].until");
}

#[test]
fn the_last_admin_cannot_be_demoted_or_removed() {
    let (mut s, now) = store_with_account("UTC");
    linked_admin(&mut s, now, "a@example.com");
    let err = s
        .put_member(&op(), now, "100", "a@example.com", &put(vec![]), None)
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::LastAdmin);
    let err = s
        .delete_member(&op(), now, "100", "a@example.com", None)
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::LastAdmin);
    // A second, unlinked admin does not count; a linked one does.
    s.put_member(
        &op(),
        now,
        "100",
        "b@example.com",
        &put(admin_roles()),
        None,
    )
    .unwrap();
    assert!(
        s.delete_member(&op(), now, "100", "a@example.com", None)
            .is_err()
    );
    s.create_user(&op(), "B@example.com").unwrap();
    s.delete_member(&op(), now, "100", "a@example.com", None)
        .unwrap();
}

#[test]
fn an_account_without_admin_may_change_freely() {
    let (mut s, now) = store_with_account("UTC");
    s.put_member(
        &op(),
        now,
        "100",
        "a@example.com",
        &put(admin_roles()),
        None,
    )
    .unwrap();
    s.put_member(&op(), now, "100", "a@example.com", &put(vec![]), None)
        .unwrap();
}

#[test]
fn until_is_inclusive_in_the_accounts_zone() {
    let (mut s, now) = store_with_account("Europe/Zurich");
    s.put_member(
        &op(),
        now,
        "100",
        "a@example.com",
        &put(vec![grant(COCKPIT_ACCESS, Some("2026-12-31"))]),
        None,
    )
    .unwrap();
    let before = ts("2026-12-31T22:59:59Z");
    let at = ts("2026-12-31T23:00:00Z");
    let m = s.get_member(&op(), before, "100", "a@example.com").unwrap();
    assert_eq!(m.roles.len(), 1);
    let m = s.get_member(&op(), at, "100", "a@example.com").unwrap();
    assert!(m.roles.is_empty());
    let user = Principal::user("a@example.com", "u");
    assert_eq!(
        s.list_accounts(&user, before, None, 10)
            .unwrap()
            .items
            .len(),
        1
    );
    assert!(
        s.list_accounts(&user, at, None, 10)
            .unwrap()
            .items
            .is_empty()
    );
}

#[test]
fn users_see_with_cockpit_access_and_manage_with_admin() {
    let (mut s, now) = store_with_account("UTC");
    s.put_member(
        &op(),
        now,
        "100",
        "viewer@example.com",
        &put(vec![grant(COCKPIT_ACCESS, None)]),
        None,
    )
    .unwrap();
    s.put_member(
        &op(),
        now,
        "100",
        "admin@example.com",
        &put(admin_roles()),
        None,
    )
    .unwrap();
    let viewer = Principal::user("viewer@example.com", "v");
    let admin = Principal::user("ADMIN@example.com", "a");
    let stranger = Principal::user("x@example.com", "x");
    assert!(s.get_account(&viewer, now, "100").is_ok());
    assert_eq!(
        s.list_account_members(&viewer, now, "100", None, 10)
            .unwrap_err()
            .code,
        ErrorCode::Forbidden
    );
    assert_eq!(
        s.list_account_members(&admin, now, "100", None, 10)
            .unwrap()
            .items
            .len(),
        2
    );
    assert_eq!(
        s.get_account(&stranger, now, "100").unwrap_err().code,
        ErrorCode::Forbidden
    );
    assert_eq!(
        s.create_account(
            &admin,
            now,
            &NewAccount {
                customer_number: "200".into(),
                display_name: "B".into(),
                time_zone: "UTC".into()
            }
        )
        .unwrap_err()
        .code,
        ErrorCode::Forbidden
    );
    let bulk = s
        .list_members(&admin, now, &AccountFilter::All, None, 10)
        .unwrap();
    assert_eq!(bulk.items.len(), 2);
    assert_eq!(bulk.items[0].customer_number.as_deref(), Some("100"));
}

#[test]
fn if_match_must_match_the_current_etag() {
    let (mut s, now) = store_with_account("UTC");
    let (m, _) = s
        .put_member(&op(), now, "100", "a@example.com", &put(vec![]), None)
        .unwrap();
    let roles = put(vec![grant(TECHNICAL_CONTACT, None)]);
    s.put_member(&op(), now, "100", "a@example.com", &roles, Some(&m.etag))
        .unwrap();
    let err = s
        .put_member(
            &op(),
            now,
            "100",
            "a@example.com",
            &put(vec![]),
            Some(&m.etag),
        )
        .unwrap_err();
    assert_eq!(err.status, 412);
    assert_eq!(err.code, ErrorCode::VersionConflict);
}

#[test]
fn invitations_need_a_login_role_and_respect_pending_and_resend() {
    let (mut s, now) = store_with_account("UTC");
    s.put_member(
        &op(),
        now,
        "100",
        "tech@example.com",
        &put(vec![grant(TECHNICAL_CONTACT, None)]),
        None,
    )
    .unwrap();
    let err = s
        .invite(&op(), now, "100", "tech@example.com", false)
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::Invalid);
    assert!(s.outbox(&op()).unwrap().items.is_empty());

    s.put_member(
        &op(),
        now,
        "100",
        "a@example.com",
        &put(vec![grant(COCKPIT_ACCESS, None)]),
        None,
    )
    .unwrap();
    let (first, sent) = s.invite(&op(), now, "100", "a@example.com", false).unwrap();
    assert!(sent);
    let (again, sent) = s.invite(&op(), now, "100", "a@example.com", false).unwrap();
    assert!(!sent);
    assert_eq!(first, again);
    let (third, sent) = s.invite(&op(), now, "100", "a@example.com", true).unwrap();
    assert!(sent);
    assert_ne!(first.id, third.id);
    assert_eq!(s.outbox(&op()).unwrap().items.len(), 2);
    // Expired after 14 days.
    let later = now
        .checked_add(jiff::SignedDuration::from_hours(24 * 14))
        .unwrap();
    let m = s.get_member(&op(), later, "100", "a@example.com").unwrap();
    assert_eq!(m.invitation.unwrap().status, InvitationStatus::Expired);
}

#[test]
fn acceptance_needs_the_same_email_and_links_the_user() {
    let (mut s, now) = store_with_account("UTC");
    s.put_member(
        &op(),
        now,
        "100",
        "a@example.com",
        &put(vec![grant(COCKPIT_ACCESS, None)]),
        None,
    )
    .unwrap();
    let (inv, _) = s.invite(&op(), now, "100", "a@example.com", false).unwrap();
    let err = s
        .accept_invitation(&op(), &inv.id, "b@example.com")
        .unwrap_err();
    assert_eq!(err.status, 403);
    assert!(err.detail.contains("differ"));
    let m = s
        .accept_invitation(&op(), &inv.id, "A@EXAMPLE.com")
        .unwrap();
    assert!(m.user_linked);
    assert!(m.invitation.is_none());
    let err = s
        .invite(&op(), now, "100", "a@example.com", false)
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::AlreadyLinked);
    // Removing the member keeps the user account: a new member is linked at once.
    s.delete_member(&op(), now, "100", "a@example.com", None)
        .unwrap();
    let (m, _) = s
        .put_member(&op(), now, "100", "a@example.com", &put(vec![]), None)
        .unwrap();
    assert!(m.user_linked);
}

#[test]
fn cursors_walk_every_member_once() {
    let (mut s, now) = store_with_account("UTC");
    for i in 0..25 {
        s.put_member(
            &op(),
            now,
            "100",
            &format!("m{i:02}@example.com"),
            &put(vec![]),
            None,
        )
        .unwrap();
    }
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = s
            .list_members(&op(), now, &AccountFilter::All, cursor.as_deref(), 7)
            .unwrap();
        seen.extend(page.items.into_iter().map(|m| m.email));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen.len(), 25);
    assert!(seen.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(
        s.list_members(&op(), now, &AccountFilter::All, Some("zz"), 7)
            .unwrap_err()
            .code,
        ErrorCode::Invalid
    );
}

/// Bulk reads over 100,000 members walk the primary key: no full scan, no sort.
#[test]
fn bulk_paging_over_100_000_members_uses_the_primary_key() {
    let (mut s, now) = store_with_account("UTC");
    s.create_account(
        &op(),
        now,
        &NewAccount {
            customer_number: "200".into(),
            display_name: "B".into(),
            time_zone: "UTC".into(),
        },
    )
    .unwrap();
    {
        let tx = s.conn.transaction().unwrap();
        {
            let mut insert = tx
                .prepare(
                    "INSERT INTO members (customer_number, email_key, email, name, user_linked,
                         roles, services, notifications, version)
                     VALUES (?1, ?2, ?2, NULL, 0, '[]', '\"all\"', '[]', 1)",
                )
                .unwrap();
            for i in 0..100_000 {
                let cn = if i % 2 == 0 { "100" } else { "200" };
                insert
                    .execute(rusqlite::params![cn, format!("m{i:06}@example.com")])
                    .unwrap();
            }
        }
        tx.commit().unwrap();
    }
    let from = "SELECT m.email, i.id FROM members m LEFT JOIN invitations i
        ON i.customer_number = m.customer_number AND i.email_key = m.email_key";
    for (sql, range) in [
        (
            format!(
                "{from} WHERE (m.customer_number, m.email_key) > (?1, ?2)
                 ORDER BY m.customer_number, m.email_key LIMIT ?3"
            ),
            "((customer_number,email_key)>(?,?))",
        ),
        (
            format!(
                "{from} WHERE m.customer_number = ?1 AND m.email_key > ?2
                 ORDER BY m.email_key LIMIT ?3"
            ),
            "(customer_number=? AND email_key>?)",
        ),
    ] {
        let plan: Vec<String> = s
            .conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap()
            .query_map(rusqlite::params!["100", "m050000@example.com", 101], |r| {
                r.get::<_, String>(3)
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let plan = plan.join("\n");
        assert!(!plan.contains("TEMP B-TREE"), "sorts:\n{plan}");
        assert!(
            plan.contains(&format!("SEARCH m USING PRIMARY KEY {range}")),
            "does not seek:\n{plan}"
        );
    }
    // A walk through both accounts in pages of 1000 sees every member once.
    let mut cursor: Option<String> = None;
    let mut total = 0;
    loop {
        let page = s
            .list_members(
                &op(),
                now,
                &AccountFilter::Only(vec!["200".into()]),
                cursor.as_deref(),
                1000,
            )
            .unwrap();
        total += page.items.len();
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(total, 50_000);
}

#[test]
fn a_new_time_zone_must_not_end_the_last_admins_roles() {
    // 2026-12-31T23:30Z is still 2026-12-31 in New York but already 2027 in Zurich.
    let (mut s, _) = store_with_account("America/New_York");
    let now = ts("2026-12-31T23:30:00Z");
    s.put_member(
        &op(),
        now,
        "100",
        "a@example.com",
        &put(vec![
            grant(COCKPIT_ACCESS, Some("2026-12-31")),
            grant(CUSTOMER_ADMIN, None),
        ]),
        None,
    )
    .unwrap();
    s.create_user(&op(), "a@example.com").unwrap();
    let to_zurich = crate::portal::api::AccountPatch {
        display_name: None,
        time_zone: Some("Europe/Zurich".into()),
    };
    let err = s
        .update_account(&op(), now, "100", &to_zurich, None)
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::LastAdmin);
    let to_la = crate::portal::api::AccountPatch {
        display_name: None,
        time_zone: Some("America/Los_Angeles".into()),
    };
    s.update_account(&op(), now, "100", &to_la, None).unwrap();
}
