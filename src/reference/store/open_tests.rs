//! Opening the store: migrations, a store from a newer rolecall, the second connection that
//! reads beside the writes.

use super::tests::{admin_roles, op, put, ts};
use super::*;
use crate::portal::AccountFilter;
use crate::portal::api::NewAccount;

#[test]
fn a_store_from_a_newer_rolecall_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    drop(Store::open(&path, None).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    let err = with_causes(&Store::open(&path, None).err().unwrap());
    assert!(err.contains("newer"), "{err}");
}

#[test]
fn the_reader_sees_every_write_and_the_clock_and_cannot_write() {
    let dir = tempfile::tempdir().unwrap();
    let now = ts("2026-12-31T12:00:00Z");
    let mut s = Store::open(&dir.path().join("s.db"), Some(now)).unwrap();
    let reader = s.reader().unwrap().expect("a store on disk has a reader");
    assert!(
        Store::open_in_memory(None)
            .unwrap()
            .reader()
            .unwrap()
            .is_none()
    );

    let new = NewAccount {
        customer_number: "100".into(),
        display_name: "Acme".into(),
        time_zone: "UTC".into(),
    };
    s.create_account(&op(), now, &new).unwrap();
    s.put_member(&op(), now, "100", "a@x.example", &put(admin_roles()), None)
        .unwrap();
    let page = reader
        .read(|r| r.list_members(&op(), now, &AccountFilter::All, None, 100))
        .unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].email, "a@x.example");

    let later = ts("2027-03-01T00:00:00Z");
    s.set_clock(later).unwrap();
    assert_eq!(reader.now(), later);
    s.reset_clock(None).unwrap();
    let real = Timestamp::now();
    let told = reader.now();
    assert!(
        told >= real && told.duration_since(real) < jiff::SignedDuration::from_secs(60),
        "the reader's clock should run with the real time again: {told} vs {real}"
    );

    let mut reader = reader;
    let refused = reader.create_account(
        &op(),
        now,
        &NewAccount {
            customer_number: "200".into(),
            ..new
        },
    );
    assert!(refused.is_err(), "a write through the reader must fail");
    assert_eq!(
        s.list_accounts(&op(), now, None, 100).unwrap().items.len(),
        1
    );
}
