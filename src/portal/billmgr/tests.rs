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

#[test]
fn an_answer_without_a_doc_is_named_with_its_status() {
    let c = Credentials::new("main@acme.example", "pa55-secret", "env").unwrap();
    let portal = BillmgrPortal::new(
        "https://billing.example:1500/billmgr",
        c,
        BillmgrOptions::default(),
    )
    .unwrap();
    let answer = |status: u16, body: &str| Answer {
        status: reqwest::StatusCode::from_u16(status).unwrap(),
        problem_json: false,
        retry_after: None,
        body: axum::body::Bytes::copy_from_slice(body.as_bytes()),
    };
    for (status, body, want_status, code, what) in [
        (
            200,
            r#"{"doc": "x"}"#,
            502,
            ErrorCode::Other,
            "with something that is not a BILLmanager answer (is the URL https://host:1500/billmgr?)",
        ),
        (
            404,
            "",
            404,
            ErrorCode::Other,
            "404: there is no BILLmanager API at this address (is the URL https://host:1500/billmgr?)",
        ),
        (429, "", 429, ErrorCode::RateLimited, "HTTP 429"),
    ] {
        let e = portal.doc("user", &answer(status, body)).unwrap_err();
        assert_eq!(e.code(), Some(code), "{e}");
        let PortalError::Problem { status, detail, .. } = e else {
            panic!("not a problem");
        };
        assert_eq!(status, want_status);
        assert_eq!(
            detail,
            format!("BILLmanager user on https://billing.example:1500 answered {what}")
        );
    }
}
