use super::decode::*;
use super::paths::*;
use super::retry::*;
use super::*;
use crate::portal::ErrorCode;

fn portal(base: &str) -> HttpPortal {
    HttpPortal::new(
        base,
        Token::new("tok", "T").unwrap(),
        HttpOptions::default(),
    )
    .unwrap()
}

#[test]
fn encodes_everything_but_unreserved() {
    assert_eq!(encode_segment("a+b@x.example"), "a%2Bb%40x.example");
    assert_eq!(encode_segment("A-z_0.9~"), "A-z_0.9~");
    assert_eq!(encode_segment("a/b c?%#"), "a%2Fb%20c%3F%25%23");
    assert_eq!(encode_segment("ü"), "%C3%BC");
    assert_eq!(encode_segment(".."), "..");
}

#[test]
fn builds_urls_under_a_path_prefix() {
    for base in ["https://h.example/portal", "https://h.example/portal/"] {
        let p = portal(base);
        assert_eq!(
            p.url(&["accounts", "10 01", "members", "a+b@x.example"])
                .unwrap()
                .as_str(),
            "https://h.example/portal/v1/accounts/10%2001/members/a%2Bb%40x.example"
        );
    }
    assert_eq!(
        portal("http://127.0.0.1:8080")
            .url(&["whoami"])
            .unwrap()
            .as_str(),
        "http://127.0.0.1:8080/v1/whoami"
    );
}

#[test]
fn no_segment_changes_the_path() {
    let p = portal("https://h.example/portal/");
    for cn in [
        ".", "..", "a/b", "a/../b", "?x", "#x", "%2e%2e", "a\\b", " ",
    ] {
        match p.url(&["accounts", cn, "members", "a@x.example"]) {
            Ok(url) => {
                let segments: Vec<&str> = url.path_segments().unwrap().collect();
                assert_eq!(segments.len(), 6, "{cn:?} → {url}");
                assert_eq!(
                    segments[..3],
                    ["portal", "v1", "accounts"],
                    "{cn:?} → {url}"
                );
                assert_eq!(
                    segments[4..],
                    ["members", "a%40x.example"],
                    "{cn:?} → {url}"
                );
                assert!(url.query().is_none() && url.fragment().is_none(), "{url}");
            }
            Err(e) => {
                assert!(matches!(cn, "." | ".."), "{cn:?}: {e}");
                assert!(matches!(e, PortalError::Unaddressable(_)), "{e:?}");
                assert!(e.to_string().contains("no request was sent"), "{e}");
            }
        }
    }
}

#[test]
fn rejects_unusable_base_urls_without_echoing_credentials() {
    let token = || Token::new("tok", "T").unwrap();
    for (url, needle) in [
        ("ftp://h.example", "https://"),
        ("not a url", "not usable"),
        ("https://h.example/?x=1", "query"),
    ] {
        let err = HttpPortal::new(url, token(), HttpOptions::default()).unwrap_err();
        assert!(err.to_string().contains(needle), "{err}");
    }
    let err = HttpPortal::new("https://u:pw@h.example", token(), HttpOptions::default())
        .unwrap_err()
        .to_string();
    assert!(!err.contains("pw"), "{err}");
    assert!(err.contains("credentials"), "{err}");
}

#[test]
fn a_bad_ca_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").unwrap();
    for path in [missing, garbage] {
        let options = HttpOptions {
            ca_file: Some(path.clone()),
            ..HttpOptions::default()
        };
        let err = HttpPortal::new(
            "https://h.example",
            Token::new("tok", "T").unwrap(),
            options,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.starts_with("the CA file"), "{err}");
    }
}

#[test]
fn backoff_is_capped_full_jitter() {
    let p = HttpPortal::new(
        "https://h.example",
        Token::new("tok", "T").unwrap(),
        HttpOptions {
            backoff_base: Duration::from_millis(200),
            backoff_cap: Duration::from_secs(10),
            ..HttpOptions::default()
        },
    )
    .unwrap();
    for attempt in 0..40 {
        let ceiling =
            (Duration::from_millis(200) * 2u32.pow(attempt.min(20))).min(Duration::from_secs(10));
        for _ in 0..20 {
            assert!(p.backoff(attempt) <= ceiling);
        }
    }
    let spread: std::collections::HashSet<_> = (0..50).map(|_| p.backoff(5)).collect();
    assert!(spread.len() > 10, "the delays are jittered");
}

#[test]
fn reads_retry_after_as_seconds_or_http_date() {
    let now: jiff::Timestamp = "2026-11-26T10:00:00Z".parse().unwrap();
    let secs = Duration::from_secs;
    assert_eq!(parse_retry_after("1", now), Some(secs(1)));
    assert_eq!(parse_retry_after(" 120 ", now), Some(secs(120)));
    assert_eq!(
        parse_retry_after("Thu, 26 Nov 2026 10:00:30 GMT", now),
        Some(secs(30))
    );
    assert_eq!(
        parse_retry_after("Thu, 26 Nov 2026 09:00:00 GMT", now),
        Some(Duration::ZERO)
    );
    assert_eq!(parse_retry_after("soon", now), None);
    assert_eq!(parse_retry_after("-5", now), None);
}

#[test]
fn codes_for_bare_statuses() {
    assert_eq!(
        code_for(StatusCode::UNAUTHORIZED),
        ErrorCode::Unauthenticated
    );
    assert_eq!(code_for(StatusCode::FORBIDDEN), ErrorCode::Forbidden);
    assert_eq!(code_for(StatusCode::NOT_FOUND), ErrorCode::NotFound);
    assert_eq!(
        code_for(StatusCode::PRECONDITION_FAILED),
        ErrorCode::VersionConflict
    );
    assert_eq!(
        code_for(StatusCode::TOO_MANY_REQUESTS),
        ErrorCode::RateLimited
    );
    assert_eq!(
        code_for(StatusCode::SERVICE_UNAVAILABLE),
        ErrorCode::Unavailable
    );
    assert_eq!(code_for(StatusCode::IM_A_TEAPOT), ErrorCode::Other);
}

#[test]
fn debug_hides_the_token() {
    let p = HttpPortal::new(
        "https://h.example",
        Token::new("very-secret-token", "T").unwrap(),
        HttpOptions::default(),
    )
    .unwrap();
    let text = format!("{p:?} {p:#?}");
    assert!(!text.contains("very-secret-token"), "{text}");
    assert!(text.contains("Token(***)"));
}
