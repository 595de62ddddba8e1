use super::transport::classify;
use super::*;

#[test]
fn errors_are_classified_by_type_and_object_never_by_text() {
    let e = |kind: &str, object: &str, message: &str| wire::DocError {
        kind: kind.into(),
        object: object.into(),
        message: message.into(),
    };
    assert_eq!(
        classify(&e("access", "", "x")).1,
        ErrorCode::Unauthenticated
    );
    assert_eq!(
        classify(&e("exists", "email", "x")).1,
        ErrorCode::AlreadyLinked
    );
    assert_eq!(classify(&e("missed", "elid", "x")).1, ErrorCode::NotFound);
    assert_eq!(classify(&e("value", "email", "x")).1, ErrorCode::Invalid);
    // The same text under another type means what the type says.
    assert_eq!(
        classify(&e("value", "", "Access denied, not found")).1,
        ErrorCode::Invalid
    );
}

#[test]
fn secrets_never_print() {
    let c = Credentials::new("main@acme.example", "pa55-secret", "env").unwrap();
    let text = format!("{c:?} {c:#?}");
    assert!(
        !text.contains("pa55-secret") && !text.contains("main@acme"),
        "{text}"
    );
    assert_eq!(
        c.redact("bad pa55-secret for main@acme.example"),
        "bad *** for ***"
    );
    assert_eq!(
        Credentials::new(" ", "x", "env").unwrap_err().to_string(),
        "the BILLmanager username and password are both needed (env)"
    );
    let err = Credentials::new("main", "pa\u{7}ss", "env").unwrap_err();
    assert!(matches!(err, CredentialsError::ControlCharacter { .. }));
    assert_eq!(
        err.to_string(),
        "the BILLmanager username or password (env) is not usable: it holds a control character"
    );
    let p = GeneratedPassword::generate().unwrap();
    assert_eq!(p.0.0.chars().count(), 24);
    let shown = format!("{p:?} {:?}", p.0);
    assert!(!shown.contains(&p.0.0), "{shown}");
    let q = GeneratedPassword::generate().unwrap();
    assert_ne!(p.0.0, q.0.0);
    assert!(Credentials::new("", "x", "env").is_err());
    let portal = BillmgrPortal::new(
        "https://billing.example:1500/billmgr",
        c.clone(),
        BillmgrOptions::default(),
    )
    .unwrap();
    let text = format!("{portal:?}");
    assert!(
        !text.contains("pa55-secret") && !text.contains("main@acme"),
        "{text}"
    );
    let err = BillmgrPortal::new(
        "https://u:pw@h.example/billmgr",
        c,
        BillmgrOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(!err.contains("pw"), "{err}");
}
