use super::transport::classify;
use super::*;

#[test]
fn error_messages_map_to_problem_codes() {
    for (message, code) in [
        ("Authentication Failed", ErrorCode::Unauthenticated),
        ("Invalid IP 10.0.0.1", ErrorCode::Unauthenticated),
        (
            "User already associated with client",
            ErrorCode::AlreadyLinked,
        ),
        (
            "Permissions cannot be set on a client owner",
            ErrorCode::Forbidden,
        ),
        ("You cannot remove the account owner", ErrorCode::LastAdmin),
        ("Client Not Found", ErrorCode::NotFound),
        ("Invalid Permission: foo", ErrorCode::UnknownRole),
        ("Something else", ErrorCode::Invalid),
    ] {
        assert_eq!(classify(message).1, code, "{message}");
    }
}

#[test]
fn credentials_never_print_and_are_scrubbed_from_messages() {
    let c = Credentials::new("ident-123", "very-secret", Some("acc-key"), "test").unwrap();
    let text = format!("{c:?} {c:#?}");
    assert!(
        !text.contains("very-secret") && !text.contains("ident-123"),
        "{text}"
    );
    assert_eq!(
        c.redact("bad secret very-secret for ident-123 / acc-key"),
        "bad secret *** for *** / ***"
    );
    assert_eq!(
        Credentials::new("", "s", None, "env").unwrap_err(),
        CredentialsError::Missing {
            origin: "env".into()
        }
    );
    let err = Credentials::new("id", "has space", None, "env")
        .unwrap_err()
        .to_string();
    assert!(!err.contains("has space"), "{err}");
    assert_eq!(
        err,
        "the WHMCS API identifier or secret (env) is not usable: it must be printable ASCII without spaces"
    );
    assert_eq!(
        Credentials::new("id", "s", Some("a b"), "env")
            .unwrap_err()
            .to_string(),
        "the WHMCS API access key (env) is not usable: it must be printable ASCII without spaces"
    );
}

#[test]
fn notification_kinds_map_to_the_six_preferences() {
    let prefs = preferences(&["domains".into(), "invoices".into()]).unwrap();
    let on: Vec<_> = prefs
        .iter()
        .filter(|(_, v)| v == "1")
        .map(|(k, _)| *k)
        .collect();
    assert_eq!(
        on,
        ["email_preferences[domain]", "email_preferences[invoice]"]
    );
    assert_eq!(prefs.len(), 6);
    let err = preferences(&["renewals".into()]).unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::UnknownNotificationKind));
    let contact = contact_of(
        "7",
        &serde_json::json!({"id": "3", "email": "b@x.example", "firstname": "Bill",
            "lastname": "Ing", "generalemails": "0", "productemails": 1,
            "domainemails": true, "invoiceemails": "1", "supportemails": false,
            "affiliateemails": "on"}),
    );
    assert_eq!(
        contact.notifications,
        ["products", "domains", "invoices", "affiliates"]
    );
    assert_eq!(contact.name, "Bill Ing");
}

#[test]
fn the_endpoint_is_under_the_base_path_and_credentials_stay_out_of_debug() {
    let creds = Credentials::new("ident", "sekrit", None, "test").unwrap();
    let store: Arc<dyn InvitationStore> = Arc::new(MemoryInvitations::default());
    let p = WhmcsPortal::new(
        "https://billing.example/whmcs/",
        creds.clone(),
        store.clone(),
        WhmcsOptions::default(),
    )
    .unwrap();
    assert_eq!(
        p.endpoint(),
        "https://billing.example/whmcs/includes/api.php"
    );
    let text = format!("{p:?}");
    assert!(
        !text.contains("sekrit") && !text.contains("ident\""),
        "{text}"
    );
    let err = WhmcsPortal::new(
        "https://u:pw@h.example",
        creds,
        store,
        WhmcsOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(!err.contains("pw"), "{err}");
}

#[test]
fn an_answer_that_is_not_the_apis_own_is_named_with_its_status() {
    let creds = Credentials::new("ident", "sekrit", None, "test").unwrap();
    let p = WhmcsPortal::new(
        "https://billing.example/whmcs/",
        creds,
        Arc::new(MemoryInvitations::default()),
        WhmcsOptions::default(),
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
            "<html>",
            502,
            ErrorCode::Other,
            "with something that is not a WHMCS API answer (is the URL the WHMCS root?)",
        ),
        (
            404,
            "",
            404,
            ErrorCode::Other,
            "404: there is no WHMCS API at this address (is the URL the WHMCS root?)",
        ),
        (
            503,
            "busy",
            503,
            ErrorCode::Unavailable,
            "HTTP 503 without a WHMCS message",
        ),
        (
            403,
            "",
            403,
            ErrorCode::Unauthenticated,
            "HTTP 403 without a WHMCS message",
        ),
    ] {
        let e = p.read("GetClients", &answer(status, body)).unwrap_err();
        assert_eq!(e.code(), Some(code), "{e}");
        let PortalError::Problem { status, detail, .. } = e else {
            panic!("not a problem");
        };
        assert_eq!(status, want_status);
        assert_eq!(
            detail,
            format!("WHMCS GetClients on https://billing.example answered {what}")
        );
    }
}
