//! A stored row that no longer decodes is an error naming its row, never a default: a
//! `services` column read as `all` would widen a member's access, corrupt roles read as none
//! would hide an admin.

use super::*;
use crate::portal::api::{MemberPut, NewAccount};

fn store_with_member() -> (Store, Timestamp) {
    let now: Timestamp = "2026-12-31T12:00:00Z".parse().unwrap();
    let mut s = Store::open_in_memory(Some(now)).unwrap();
    let op = Principal::operator("op");
    let account = NewAccount {
        customer_number: "100".into(),
        display_name: "Acme".into(),
        time_zone: "UTC".into(),
    };
    s.create_account(&op, now, &account).unwrap();
    let put = MemberPut {
        name: None,
        roles: vec![RoleGrant {
            name: COCKPIT_ACCESS.into(),
            until: None,
        }],
        services: None,
        notifications: None,
    };
    s.put_member(&op, now, "100", "a@example.com", &put, None)
        .unwrap();
    (s, now)
}

fn corrupt_column(s: &Store, column: &str) {
    let changed = s
        .conn
        .execute(&format!("UPDATE members SET {column} = '{{not json'"), [])
        .unwrap();
    assert_eq!(changed, 1);
}

fn assert_corrupt(r: Rejection, column: &str) {
    assert_eq!((r.status, r.code), (500, ErrorCode::Unavailable), "{r:?}");
    let want =
        format!("the stored {column} of member \"a@example.com\" of account \"100\" is corrupt");
    assert!(r.detail.contains(&want), "{}", r.detail);
}

#[test]
fn corrupt_services_are_an_error_not_all_services() {
    let (s, now) = store_with_member();
    corrupt_column(&s, "services");
    let op = Principal::operator("op");
    let r = s.get_member(&op, now, "100", "a@example.com").unwrap_err();
    assert_corrupt(r, "services");
}

#[test]
fn corrupt_roles_are_an_error_not_no_roles() {
    let (s, now) = store_with_member();
    corrupt_column(&s, "roles");
    let op = Principal::operator("op");
    let r = s.get_member(&op, now, "100", "a@example.com").unwrap_err();
    assert_corrupt(r, "roles");
    // A user's own access is decided from the same column: also an error, not "no access".
    let user = Principal::user("a@example.com", "t");
    let r = s
        .get_member(&user, now, "100", "a@example.com")
        .unwrap_err();
    assert_corrupt(r, "roles");
}

#[test]
fn corrupt_notifications_are_an_error() {
    let (s, now) = store_with_member();
    corrupt_column(&s, "notifications");
    let op = Principal::operator("op");
    let r = s.get_member(&op, now, "100", "a@example.com").unwrap_err();
    assert_corrupt(r, "notifications");
}

#[test]
fn a_corrupt_time_zone_is_an_error_not_utc() {
    let (s, now) = store_with_member();
    s.conn
        .execute("UPDATE accounts SET time_zone = 'Not/AZone'", [])
        .unwrap();
    let op = Principal::operator("op");
    let r = s.get_member(&op, now, "100", "a@example.com").unwrap_err();
    assert_eq!((r.status, r.code), (500, ErrorCode::Unavailable), "{r:?}");
    assert!(
        r.detail
            .contains("the stored time zone of account \"100\" is corrupt"),
        "{}",
        r.detail
    );
}

#[test]
fn the_sandbox_portal_answers_a_corrupt_row_with_a_clear_error() {
    let (s, _) = store_with_member();
    corrupt_column(&s, "services");
    let e = PortalError::from(
        s.get_member(&Principal::operator("op"), s.now(), "100", "a@example.com")
            .unwrap_err(),
    );
    let text = e.to_string();
    assert!(
        text.contains("services of member \"a@example.com\""),
        "{text}"
    );
    assert!(
        matches!(e, PortalError::Problem { status: 500, .. }),
        "{e:?}"
    );
}
