//! [`Store::answer_once`]: the one idempotency replay of the server and the embedded portal.

use super::*;

fn store() -> Store {
    let now: Timestamp = "2026-06-01T00:00:00Z".parse().unwrap();
    Store::open_in_memory(Some(now)).unwrap()
}

/// Runs `answer_once` with an answer that counts its runs.
fn once(s: &mut Store, key: Option<&str>, request: &str, runs: &mut u32) -> Result<Once<String>> {
    *runs += 1;
    let n = *runs;
    s.answer_once(
        "token",
        key,
        &token_hash(request),
        |_| Ok(format!("answer {n}")),
        |a| (201, format!("{a:?}")),
    )
}

#[test]
fn a_repeated_key_replays_the_first_answer_and_a_different_request_is_refused() {
    let mut s = store();
    let mut runs = 0;
    let first = once(&mut s, Some("k"), "POST /a", &mut runs).unwrap();
    assert_eq!(first, Once::Fresh("answer 1".into()));
    let again = once(&mut s, Some("k"), "POST /a", &mut runs).unwrap();
    assert_eq!(again, Once::Replayed(201, "\"answer 1\"".into()));
    let other = once(&mut s, Some("k"), "POST /b", &mut runs).unwrap_err();
    assert_eq!((other.status, other.code), (422, ErrorCode::Invalid));
    assert_eq!(
        other.detail,
        "Idempotency-Key: \"k\" was already used for a different request; use a new key"
    );
    assert_eq!(other.errors[0].field, "Idempotency-Key");
    // Keys belong to a token: another token's "k" is a new key.
    let mine = s
        .answer_once(
            "other token",
            Some("k"),
            &token_hash("POST /b"),
            |_| Ok(7),
            |n| (200, n.to_string()),
        )
        .unwrap();
    assert_eq!(mine, Once::Fresh(7));
}

#[test]
fn without_a_key_every_call_runs_and_a_refusal_is_not_remembered() {
    let mut s = store();
    let mut runs = 0;
    for n in 1..=2 {
        let fresh = once(&mut s, None, "POST /a", &mut runs).unwrap();
        assert_eq!(fresh, Once::Fresh(format!("answer {n}")));
    }
    let refused = s
        .answer_once(
            "token",
            Some("k"),
            &token_hash("POST /a"),
            |_| Err::<String, _>(Rejection::invalid("no")),
            |a| (200, a.clone()),
        )
        .unwrap_err();
    assert_eq!(refused.detail, "no");
    let retried = once(&mut s, Some("k"), "POST /a", &mut runs).unwrap();
    assert_eq!(retried, Once::Fresh("answer 3".into()));
}
