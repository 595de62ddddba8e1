//! The portal API v1 and the sandbox API (SPEC §4, §5) over HTTP against the real server.
//! Every answer is also checked against `/openapi.json` (see `portal_support`).

mod portal_support;

use portal_support::{OP, Server, admin_roles, enc};
use serde_json::{Value, json};

/// A portal with two accounts and people in every position of the authorization matrix.
struct World {
    s: Server,
    admin: String,
    viewer: String,
    expired: String,
}

const NOW: &str = "2026-06-15T12:00:00Z";

async fn world() -> World {
    let s = Server::start(&[]).await;
    s.set_clock(NOW).await;
    s.account("100", "Europe/Zurich").await;
    s.account("200", "America/New_York").await;
    assert_eq!(
        s.put_member("100", "admin@example.com", admin_roles())
            .await
            .status,
        201
    );
    s.user("admin@example.com").await;
    s.put_member(
        "100",
        "viewer@example.com",
        json!([{"name": "cockpit-access"}]),
    )
    .await;
    s.put_member(
        "100",
        "expired@example.com",
        json!([{"name": "cockpit-access", "until": "2026-01-31"}, {"name": "customer-admin", "until": "2026-01-31"}]),
    )
    .await;
    let admin = s.token("admin@example.com").await;
    let viewer = s.token("viewer@example.com").await;
    let expired = s.token("expired@example.com").await;
    World {
        s,
        admin,
        viewer,
        expired,
    }
}

fn emails(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["email"].as_str().unwrap().to_string())
        .collect()
}

// --- identity and catalog --------------------------------------------------------------------

#[tokio::test]
async fn whoami_names_the_operator_and_the_user() {
    let w = world().await;
    let r = w.s.op_get("/v1/whoami").await;
    assert_eq!(r.body, json!({"email": null, "kind": "operator"}));
    let r = w.s.get("/v1/whoami", Some(&w.admin)).await;
    assert_eq!(
        r.body,
        json!({"email": "admin@example.com", "kind": "user"})
    );
}

#[tokio::test]
async fn the_catalog_is_the_reference_catalog() {
    let s = Server::start(&[]).await;
    let c = s.op_get("/v1/catalog").await.body;
    let roles: Vec<&str> = c["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        roles,
        ["cockpit-access", "technical-contact", "customer-admin"]
    );
    assert_eq!(c["roles"][0]["grantsLogin"], json!(true));
    assert_eq!(c["roles"][2]["requires"], json!(["cockpit-access"]));
    assert_eq!(c["invitationTtlDays"], json!(14));
    assert_eq!(
        c["capabilities"],
        json!({"scheduledRevocation": true, "serviceScopes": true, "createAccounts": true})
    );
    assert_eq!(c["notificationKinds"].as_array().unwrap().len(), 7);
}

#[tokio::test]
async fn no_token_or_a_bad_token_is_401_problem_json() {
    let s = Server::start(&[]).await;
    for token in [None, Some("not-a-token")] {
        let r = s.get("/v1/accounts", token).await;
        assert_eq!(r.status, 401);
        assert_eq!(r.code(), "unauthenticated");
        assert_eq!(
            r.header("content-type").unwrap(),
            "application/problem+json"
        );
        assert!(r.body["title"].is_string() && r.body["type"].is_string());
    }
}

// --- authorization ---------------------------------------------------------------------------

/// A request, its body and the status expected as
/// [operator, admin, viewer, expired admin, no token].
type AuthCase = (&'static str, String, Option<Value>, [u16; 5]);

/// Allowed to the operator and the account's admin, forbidden to the others.
fn ok(n: u16) -> [u16; 5] {
    [n, n, 403, 403, 401]
}

/// The `/v1` endpoints; `inv_id` is an invitation of account 100.
fn portal_cases(inv_id: &str) -> Vec<AuthCase> {
    let member = json!({"roles": [{"name": "technical-contact"}]});
    let contact = json!({"name": "Ops", "notifications": ["general"]});
    vec![
        ("GET", "/v1/whoami".into(), None, [200, 200, 200, 200, 401]),
        (
            "POST",
            format!("/sandbox/invitations/{inv_id}/accept"),
            Some(json!({"email": "other@example.com"})),
            [403, 403, 403, 403, 401],
        ),
        ("GET", "/v1/catalog".into(), None, [200, 200, 200, 200, 401]),
        (
            "GET",
            "/v1/accounts".into(),
            None,
            [200, 200, 200, 200, 401],
        ),
        (
            "POST",
            "/v1/accounts".into(),
            Some(json!({"customerNumber": "300", "displayName": "C", "timeZone": "UTC"})),
            [201, 403, 403, 403, 401],
        ),
        (
            "GET",
            "/v1/accounts/100".into(),
            None,
            [200, 200, 200, 403, 401],
        ),
        (
            "PATCH",
            "/v1/accounts/100".into(),
            Some(json!({"displayName": "Acme AG"})),
            ok(200),
        ),
        ("GET", "/v1/accounts/100/members".into(), None, ok(200)),
        ("GET", "/v1/members?account=100".into(), None, ok(200)),
        ("GET", "/v1/members".into(), None, [200, 200, 200, 200, 401]),
        (
            "GET",
            "/v1/accounts/100/members/viewer%40example.com".into(),
            None,
            ok(200),
        ),
        (
            "PUT",
            "/v1/accounts/100/members/m%40example.com".into(),
            Some(member.clone()),
            [200, 201, 403, 403, 401],
        ),
        (
            "POST",
            "/v1/accounts/100/members/invitee%40example.com/invitation".into(),
            None,
            ok(200),
        ),
        (
            "DELETE",
            "/v1/accounts/100/members/invitee%40example.com/invitation".into(),
            None,
            ok(204),
        ),
        (
            "DELETE",
            "/v1/accounts/100/members/m%40example.com".into(),
            None,
            ok(204),
        ),
        ("GET", "/v1/accounts/100/contacts".into(), None, ok(200)),
        ("GET", "/v1/contacts?account=100".into(), None, ok(200)),
        (
            "GET",
            "/v1/contacts".into(),
            None,
            [200, 200, 200, 200, 401],
        ),
        (
            "PUT",
            "/v1/accounts/100/contacts/ops%40example.com".into(),
            Some(contact.clone()),
            [200, 201, 403, 403, 401],
        ),
        (
            "DELETE",
            "/v1/accounts/100/contacts/ops%40example.com".into(),
            None,
            ok(204),
        ),
        ("GET", "/v1/accounts/100/audit".into(), None, ok(200)),
    ]
}

/// The `/sandbox` endpoints and the OpenAPI document; the clock is reset last.
fn sandbox_cases() -> Vec<AuthCase> {
    vec![
        (
            "POST",
            "/sandbox/tokens".into(),
            Some(json!({"email": "x@example.com"})),
            [201, 403, 403, 403, 401],
        ),
        (
            "POST",
            "/sandbox/users".into(),
            Some(json!({"email": "y@example.com"})),
            [201, 403, 403, 403, 401],
        ),
        (
            "GET",
            "/sandbox/outbox".into(),
            None,
            [200, 403, 403, 403, 401],
        ),
        (
            "GET",
            "/sandbox/clock".into(),
            None,
            [200, 200, 200, 200, 401],
        ),
        (
            "POST",
            "/sandbox/clock".into(),
            Some(json!({"now": NOW})),
            [200, 403, 403, 403, 401],
        ),
        (
            "POST",
            "/sandbox/notifications".into(),
            Some(json!({"customerNumber": "100", "kind": "general", "subject": "Hello"})),
            [200, 403, 403, 403, 401],
        ),
        (
            "GET",
            "/openapi.json".into(),
            None,
            [200, 200, 200, 200, 200],
        ),
        // Last: the clock runs with the real time afterwards.
        (
            "DELETE",
            "/sandbox/clock".into(),
            None,
            [200, 403, 403, 403, 401],
        ),
    ]
}

#[tokio::test]
async fn authorization_matrix_of_every_endpoint() {
    let w = world().await;
    let s = &w.s;
    s.put_member(
        "100",
        "invitee@example.com",
        json!([{"name": "cockpit-access"}]),
    )
    .await;
    let invitation = s
        .call(
            "POST",
            "/v1/accounts/100/members/invitee%40example.com/invitation",
            Some(OP),
            None,
            &[],
        )
        .await;
    let inv_id = invitation.body["id"].as_str().unwrap().to_string();
    let cases = [portal_cases(&inv_id), sandbox_cases()].concat();
    let tokens = [
        Some(OP),
        Some(w.admin.as_str()),
        Some(w.viewer.as_str()),
        Some(w.expired.as_str()),
        None,
    ];
    for (method, path, body, expected) in cases {
        // Least privileged first, so that a write by the operator or admin does not change
        // what the others see.
        for i in (0..5).rev() {
            let r = s.call(method, &path, tokens[i], body.clone(), &[]).await;
            let who = ["operator", "admin", "viewer", "expired admin", "no token"][i];
            assert_eq!(
                r.status, expected[i],
                "{method} {path} as {who}: {}",
                r.body
            );
            if r.status == 403 {
                assert_eq!(r.code(), "forbidden");
            }
        }
    }
}

#[tokio::test]
async fn users_list_only_accounts_where_they_hold_an_effective_cockpit_access() {
    let w = world().await;
    let s = &w.s;
    s.put_member(
        "200",
        "viewer@example.com",
        json!([{"name": "technical-contact"}]),
    )
    .await;
    let r = s.get("/v1/accounts", Some(&w.viewer)).await;
    let listed: Vec<&str> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["customerNumber"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["100"]);
    assert!(
        s.get("/v1/accounts", Some(&w.expired)).await.body["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(s.get("/v1/accounts/200", Some(&w.viewer)).await.status, 403);
    // The bulk read covers only managed accounts.
    let r = s.get("/v1/members", Some(&w.admin)).await;
    assert!(
        r.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["customerNumber"] == "100")
    );
    assert_eq!(
        s.get("/v1/members?account=200", Some(&w.admin))
            .await
            .status,
        403
    );
}

#[tokio::test]
async fn an_admin_whose_roles_expire_loses_access_at_that_instant() {
    let w = world().await;
    let s = &w.s;
    s.put_member("100", "temp@example.com", json!([{"name": "cockpit-access", "until": "2026-06-30"}, {"name": "customer-admin", "until": "2026-06-30"}])).await;
    let temp = s.token("temp@example.com").await;
    // 2026-06-30 ends at 2026-07-01T00:00 Zurich summer time = 2026-06-30T22:00Z.
    s.set_clock("2026-06-30T21:59:59Z").await;
    assert_eq!(
        s.get("/v1/accounts/100/members", Some(&temp)).await.status,
        200
    );
    s.set_clock("2026-06-30T22:00:00Z").await;
    assert_eq!(
        s.get("/v1/accounts/100/members", Some(&temp)).await.status,
        403
    );
    assert_eq!(s.get("/v1/accounts/100", Some(&temp)).await.status, 403);
}

// --- accounts --------------------------------------------------------------------------------

#[tokio::test]
async fn creating_an_account_checks_every_field() {
    let s = Server::start(&[]).await;
    let r = s
        .op(
            "POST",
            "/v1/accounts",
            json!({"customerNumber": "a b", "displayName": "", "timeZone": "Mars/Olympus"}),
        )
        .await;
    assert_eq!(r.status, 422);
    assert_eq!(r.code(), "invalid");
    let fields: Vec<&str> = r.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["customerNumber", "displayName", "timeZone"]);
    s.account("100", "UTC").await;
    let again = s
        .op(
            "POST",
            "/v1/accounts",
            json!({"customerNumber": "100", "displayName": "X", "timeZone": "UTC"}),
        )
        .await;
    assert_eq!(again.status, 409);
    let missing = s.op_get("/v1/accounts/999").await;
    assert_eq!((missing.status, missing.code()), (404, "not_found"));
}

#[tokio::test]
async fn patching_an_account_honours_if_match() {
    let s = Server::start(&[]).await;
    s.account("100", "UTC").await;
    let etag = s.op_get("/v1/accounts/100").await.etag();
    let r = s
        .call(
            "PATCH",
            "/v1/accounts/100",
            Some(OP),
            Some(json!({"timeZone": "Europe/Zurich"})),
            &[("if-match", &etag)],
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["timeZone"], "Europe/Zurich");
    assert_ne!(r.etag(), etag);
    let stale = s
        .call(
            "PATCH",
            "/v1/accounts/100",
            Some(OP),
            Some(json!({"displayName": "B"})),
            &[("if-match", &etag)],
        )
        .await;
    assert_eq!((stale.status, stale.code()), (412, "version_conflict"));
    let bad = s
        .op(
            "PATCH",
            "/v1/accounts/100",
            json!({"timeZone": "Nowhere/Else"}),
        )
        .await;
    assert_eq!(bad.body["errors"][0]["field"], "timeZone");
}

// --- members ---------------------------------------------------------------------------------

#[tokio::test]
async fn put_creates_with_201_then_sets_exactly_the_roles() {
    let w = world().await;
    let s = &w.s;
    let r = s.put_member("100", "new@example.com", json!([{"name": "technical-contact"}, {"name": "cockpit-access", "until": "2026-12-31"}])).await;
    assert_eq!(r.status, 201);
    assert_eq!(r.body["roles"].as_array().unwrap().len(), 2);
    assert_eq!(r.body["services"], "all");
    let r = s
        .put_member(
            "100",
            "new@example.com",
            json!([{"name": "cockpit-access"}]),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body["roles"],
        json!([{"name": "cockpit-access", "until": null}])
    );
    let r = s
        .op("PUT", "/v1/accounts/100/members/new%40example.com", json!({"roles": [], "services": ["srv-1"], "notifications": ["invoices"], "name": "New"}))
        .await;
    assert_eq!(r.body["services"], json!(["srv-1"]));
    assert_eq!(r.body["notifications"], json!(["invoices"]));
    assert_eq!(r.body["name"], "New");
}

#[tokio::test]
async fn emails_compare_case_insensitively_and_keep_their_spelling() {
    let w = world().await;
    let s = &w.s;
    assert_eq!(
        s.put_member("100", "Mixed.Case@Example.com", json!([]))
            .await
            .status,
        201
    );
    let r = s
        .put_member(
            "100",
            "mixed.case@example.COM",
            json!([{"name": "technical-contact"}]),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["email"], "Mixed.Case@Example.com");
    let r = s
        .op_get("/v1/accounts/100/members/MIXED.CASE%40EXAMPLE.COM")
        .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn unknown_roles_are_422_naming_the_field() {
    let w = world().await;
    let r =
        w.s.put_member(
            "100",
            "x@example.com",
            json!([{"name": "cockpit-access"}, {"name": "superuser"}]),
        )
        .await;
    assert_eq!((r.status, r.code()), (422, "unknown_role"));
    assert_eq!(r.body["errors"][0]["field"], "roles[1].name");
    assert!(r.body["detail"].as_str().unwrap().contains("superuser"));
}

#[tokio::test]
async fn unknown_notification_kinds_are_422_for_members_and_contacts() {
    let w = world().await;
    let r =
        w.s.op(
            "PUT",
            "/v1/accounts/100/members/x%40example.com",
            json!({"roles": [], "notifications": ["general", "spam"]}),
        )
        .await;
    assert_eq!((r.status, r.code()), (422, "unknown_notification_kind"));
    assert_eq!(r.body["errors"][0]["field"], "notifications[1]");
    let r =
        w.s.op(
            "PUT",
            "/v1/accounts/100/contacts/c%40example.com",
            json!({"name": "C", "notifications": ["spam"]}),
        )
        .await;
    assert_eq!((r.status, r.code()), (422, "unknown_notification_kind"));
}

#[tokio::test]
async fn bad_dates_emails_and_unknown_fields_are_422_invalid() {
    let w = world().await;
    let s = &w.s;
    let r = s
        .put_member(
            "100",
            "x@example.com",
            json!([{"name": "cockpit-access", "until": "2026-02-30"}]),
        )
        .await;
    assert_eq!((r.status, r.code()), (422, "invalid"));
    assert_eq!(r.body["errors"][0]["field"], "roles[0].until");
    let r = s.put_member("100", "not-an-email", json!([])).await;
    assert_eq!((r.status, r.code()), (422, "invalid"));
    assert_eq!(r.body["errors"][0]["field"], "email");
    let r = s
        .op(
            "PUT",
            "/v1/accounts/100/members/x%40example.com",
            json!({"roles": [], "role": "x"}),
        )
        .await;
    assert_eq!((r.status, r.code()), (422, "invalid"));
    assert_eq!(r.body["errors"][0]["field"], "role");
    let r = s
        .put_member(
            "100",
            "x@example.com",
            json!([{"name": "cockpit-access", "from": "2026-01-01"}]),
        )
        .await;
    assert_eq!((r.status, r.code()), (422, "invalid"));
    assert_eq!(r.body["errors"][0]["field"], "roles[0].from");
    let r = s
        .call(
            "PUT",
            "/v1/accounts/100/members/x%40example.com",
            Some(OP),
            None,
            &[],
        )
        .await;
    assert_eq!((r.status, r.code()), (422, "invalid"));
}

#[tokio::test]
async fn two_puts_with_the_same_if_match_exactly_one_wins() {
    let w = world().await;
    let s = &w.s;
    assert_eq!(
        s.put_member("100", "race@example.com", json!([]))
            .await
            .status,
        201
    );
    for round in 0..5 {
        let current = s
            .op_get("/v1/accounts/100/members/race%40example.com")
            .await
            .etag();
        let hdr = [("if-match", current.as_str())];
        let a = s.call(
            "PUT",
            "/v1/accounts/100/members/race%40example.com",
            Some(OP),
            Some(json!({"roles": [{"name": "technical-contact"}], "name": format!("a{round}")})),
            &hdr,
        );
        let b = s.call(
            "PUT",
            "/v1/accounts/100/members/race%40example.com",
            Some(OP),
            Some(json!({"roles": [{"name": "cockpit-access"}], "name": format!("b{round}")})),
            &hdr,
        );
        let (a, b) = tokio::join!(a, b);
        let mut statuses = [a.status, b.status];
        statuses.sort();
        assert_eq!(statuses, [200, 412], "round {round}");
        let loser = if a.status == 412 { &a } else { &b };
        assert_eq!(loser.code(), "version_conflict");
        let winner = if a.status == 200 { &a } else { &b };
        let stored = s
            .op_get("/v1/accounts/100/members/race%40example.com")
            .await;
        assert_eq!(stored.body, winner.body, "the loser changed nothing");
    }
}

#[tokio::test]
async fn delete_honours_if_match_and_is_idempotent() {
    let w = world().await;
    let s = &w.s;
    let first = s
        .put_member("100", "gone@example.com", json!([]))
        .await
        .etag();
    s.put_member(
        "100",
        "gone@example.com",
        json!([{"name": "technical-contact"}]),
    )
    .await;
    let stale = s
        .call(
            "DELETE",
            "/v1/accounts/100/members/gone%40example.com",
            Some(OP),
            None,
            &[("if-match", &first)],
        )
        .await;
    assert_eq!(stale.status, 412);
    let current = s
        .op_get("/v1/accounts/100/members/gone%40example.com")
        .await
        .etag();
    let r = s
        .call(
            "DELETE",
            "/v1/accounts/100/members/gone%40example.com",
            Some(OP),
            None,
            &[("if-match", &current)],
        )
        .await;
    assert_eq!(r.status, 204);
    let again = s
        .call(
            "DELETE",
            "/v1/accounts/100/members/gone%40example.com",
            Some(OP),
            None,
            &[],
        )
        .await;
    assert_eq!(again.status, 204);
    assert_eq!(
        s.op_get("/v1/accounts/100/members/gone%40example.com")
            .await
            .status,
        404
    );
}

// --- last admin ------------------------------------------------------------------------------

#[tokio::test]
async fn the_last_admin_cannot_lose_a_role() {
    let w = world().await;
    let r =
        w.s.put_member(
            "100",
            "admin@example.com",
            json!([{"name": "cockpit-access"}]),
        )
        .await;
    assert_eq!((r.status, r.code()), (422, "last_admin"));
    // Not even by itself.
    let r =
        w.s.call(
            "PUT",
            "/v1/accounts/100/members/admin%40example.com",
            Some(&w.admin),
            Some(json!({"roles": [{"name": "customer-admin"}]})),
            &[],
        )
        .await;
    assert_eq!((r.status, r.code()), (422, "last_admin"));
    // Nor by a scheduled revocation that has already passed.
    let r =
        w.s.put_member(
            "100",
            "admin@example.com",
            json!([{"name": "cockpit-access", "until": "2026-01-01"}, {"name": "customer-admin"}]),
        )
        .await;
    assert_eq!(r.code(), "last_admin");
}

#[tokio::test]
async fn the_last_admin_cannot_be_removed() {
    let w = world().await;
    let r =
        w.s.call(
            "DELETE",
            "/v1/accounts/100/members/admin%40example.com",
            Some(OP),
            None,
            &[],
        )
        .await;
    assert_eq!((r.status, r.code()), (422, "last_admin"));
    assert!(r.body["detail"].as_str().unwrap().contains("last admin"));
}

#[tokio::test]
async fn a_second_linked_admin_allows_the_first_to_go_but_an_unlinked_one_does_not() {
    let w = world().await;
    let s = &w.s;
    s.put_member("100", "second@example.com", admin_roles())
        .await;
    let r = s
        .call(
            "DELETE",
            "/v1/accounts/100/members/admin%40example.com",
            Some(OP),
            None,
            &[],
        )
        .await;
    assert_eq!(r.code(), "last_admin", "an unlinked admin is no admin yet");
    s.user("second@example.com").await;
    let r = s
        .call(
            "DELETE",
            "/v1/accounts/100/members/admin%40example.com",
            Some(OP),
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, 204);
}

#[tokio::test]
async fn an_account_without_an_admin_may_change_freely() {
    let w = world().await;
    let s = &w.s;
    s.put_member("200", "a@example.com", admin_roles()).await;
    assert_eq!(
        s.put_member("200", "a@example.com", json!([])).await.status,
        200
    );
    assert_eq!(
        s.call(
            "DELETE",
            "/v1/accounts/200/members/a%40example.com",
            Some(OP),
            None,
            &[]
        )
        .await
        .status,
        204
    );
}

// --- time ------------------------------------------------------------------------------------

async fn roles_at(s: &Server, cn: &str, email: &str, now: &str) -> usize {
    s.set_clock(now).await;
    let r = s
        .op_get(&format!("/v1/accounts/{cn}/members/{}", enc(email)))
        .await;
    r.body["roles"].as_array().unwrap().len()
}

#[tokio::test]
async fn until_is_inclusive_to_the_end_of_the_day_in_zurich() {
    let w = world().await;
    let s = &w.s;
    s.put_member(
        "100",
        "z@example.com",
        json!([{"name": "technical-contact", "until": "2026-12-31"}]),
    )
    .await;
    // Midnight after 2026-12-31 in Zurich (CET, UTC+1) is 2026-12-31T23:00Z.
    assert_eq!(
        roles_at(s, "100", "z@example.com", "2026-12-31T22:59:59.999Z").await,
        1
    );
    assert_eq!(
        roles_at(s, "100", "z@example.com", "2026-12-31T23:00:00Z").await,
        0
    );
    let page = s.op_get("/v1/members?account=100").await;
    let z = page.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["email"] == "z@example.com")
        .unwrap()
        .clone();
    assert_eq!(z["roles"], json!([]));
}

#[tokio::test]
async fn until_is_inclusive_to_the_end_of_the_day_in_new_york() {
    let w = world().await;
    let s = &w.s;
    s.put_member(
        "200",
        "ny@example.com",
        json!([{"name": "technical-contact", "until": "2026-12-31"}]),
    )
    .await;
    // Midnight after 2026-12-31 in New York (EST, UTC-5) is 2027-01-01T05:00Z.
    assert_eq!(
        roles_at(s, "200", "ny@example.com", "2027-01-01T04:59:59Z").await,
        1
    );
    assert_eq!(
        roles_at(s, "200", "ny@example.com", "2027-01-01T05:00:00Z").await,
        0
    );
}

#[tokio::test]
async fn the_clock_rejects_what_is_not_an_instant() {
    let s = Server::start(&[]).await;
    let r = s
        .op("POST", "/sandbox/clock", json!({"now": "tomorrow"}))
        .await;
    assert_eq!((r.status, r.code()), (422, "invalid"));
    assert_eq!(r.body["errors"][0]["field"], "now");
    s.set_clock("2030-01-01T00:00:00Z").await;
    assert_eq!(
        s.op_get("/sandbox/clock").await.body["now"],
        "2030-01-01T00:00:00Z"
    );
    let r = s
        .call("DELETE", "/sandbox/clock", Some(OP), None, &[])
        .await;
    assert_eq!(r.status, 200);
    assert_ne!(r.body["now"], "2030-01-01T00:00:00Z", "the real time again");
}

// --- invitations and users -------------------------------------------------------------------

async fn invite(s: &Server, cn: &str, email: &str, query: &str) -> portal_support::Resp {
    s.call(
        "POST",
        &format!("/v1/accounts/{cn}/members/{}/invitation{query}", enc(email)),
        Some(OP),
        None,
        &[],
    )
    .await
}

#[tokio::test]
async fn an_invitation_is_sent_once_until_resent() {
    let w = world().await;
    let s = &w.s;
    let first = invite(s, "100", "viewer@example.com", "").await;
    assert_eq!(first.status, 201);
    assert_eq!(first.body["status"], "pending");
    assert_eq!(first.body["expiresAt"], "2026-06-29T12:00:00Z");
    let again = invite(s, "100", "viewer@example.com", "").await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body, first.body);
    let resent = invite(s, "100", "viewer@example.com", "?resend=true").await;
    assert_eq!(resent.status, 201);
    assert_ne!(resent.body["id"], first.body["id"]);
    let mails = invitations_sent(s).await;
    assert_eq!(mails.len(), 2);
    assert!(mails.iter().all(|m| m["kind"] == "invitation"
        && m["to"] == "viewer@example.com"
        && m["customerNumber"] == "100"));
    let m = s
        .op_get("/v1/accounts/100/members/viewer%40example.com")
        .await;
    assert_eq!(m.body["invitation"]["id"], resent.body["id"]);
}

#[tokio::test]
async fn members_without_a_login_role_get_no_invitation_and_no_email() {
    let w = world().await;
    let s = &w.s;
    s.put_member(
        "100",
        "tech@example.com",
        json!([{"name": "technical-contact"}]),
    )
    .await;
    let r = invite(s, "100", "tech@example.com", "").await;
    assert_eq!((r.status, r.code()), (422, "invalid"));
    assert!(
        s.outbox()
            .await
            .iter()
            .all(|m| m["to"] != "tech@example.com")
    );
}

#[tokio::test]
async fn a_linked_member_needs_no_invitation() {
    let w = world().await;
    let r = invite(&w.s, "100", "admin@example.com", "").await;
    assert_eq!((r.status, r.code()), (409, "already_linked"));
}

#[tokio::test]
async fn an_invitation_expires_after_the_catalogs_ttl_and_can_be_sent_again() {
    let w = world().await;
    let s = &w.s;
    let first = invite(s, "100", "viewer@example.com", "").await;
    s.set_clock("2026-06-29T11:59:59Z").await;
    assert_eq!(
        s.op_get("/v1/accounts/100/members/viewer%40example.com")
            .await
            .body["invitation"]["status"],
        "pending"
    );
    s.set_clock("2026-06-29T12:00:00Z").await;
    assert_eq!(
        s.op_get("/v1/accounts/100/members/viewer%40example.com")
            .await
            .body["invitation"]["status"],
        "expired"
    );
    let accept = s
        .op(
            "POST",
            &format!(
                "/sandbox/invitations/{}/accept",
                first.body["id"].as_str().unwrap()
            ),
            json!({"email": "viewer@example.com"}),
        )
        .await;
    assert_eq!(accept.status, 410);
    assert!(accept.body["detail"].as_str().unwrap().contains("expired"));
    let again = invite(s, "100", "viewer@example.com", "").await;
    assert_eq!(
        again.status, 201,
        "an expired invitation is sent again without resend"
    );
}

#[tokio::test]
async fn acceptance_with_another_email_is_refused() {
    let w = world().await;
    let s = &w.s;
    let inv = invite(s, "100", "viewer@example.com", "").await;
    let id = inv.body["id"].as_str().unwrap();
    let r = s
        .op(
            "POST",
            &format!("/sandbox/invitations/{id}/accept"),
            json!({"email": "mallory@example.com"}),
        )
        .await;
    assert_eq!((r.status, r.code()), (403, "forbidden"));
    assert!(
        r.body["detail"]
            .as_str()
            .unwrap()
            .contains("e-mails differ")
    );
    assert_eq!(
        s.op_get("/v1/accounts/100/members/viewer%40example.com")
            .await
            .body["userLinked"],
        false
    );
}

#[tokio::test]
async fn acceptance_with_the_same_email_in_any_case_links_the_user() {
    let w = world().await;
    let s = &w.s;
    s.put_member(
        "200",
        "viewer@example.com",
        json!([{"name": "technical-contact"}]),
    )
    .await;
    let inv = invite(s, "100", "viewer@example.com", "").await;
    let id = inv.body["id"].as_str().unwrap();
    let r = s
        .op(
            "POST",
            &format!("/sandbox/invitations/{id}/accept"),
            json!({"email": "VIEWER@Example.com"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["userLinked"], true);
    assert_eq!(r.body["invitation"], Value::Null);
    // The new user account links every member with that e-mail.
    assert_eq!(
        s.op_get("/v1/accounts/200/members/viewer%40example.com")
            .await
            .body["userLinked"],
        true
    );
    assert!(
        s.outbox()
            .await
            .iter()
            .any(|m| m["kind"] == "password" && m["to"] == "viewer@example.com")
    );
    let twice = s
        .op(
            "POST",
            &format!("/sandbox/invitations/{id}/accept"),
            json!({"email": "viewer@example.com"}),
        )
        .await;
    assert_eq!(twice.status, 404);
}

#[tokio::test]
async fn a_new_user_account_links_every_member_with_that_email() {
    let w = world().await;
    let s = &w.s;
    s.put_member("100", "p@example.com", json!([])).await;
    s.put_member("200", "P@example.com", json!([])).await;
    let r = s
        .op("POST", "/sandbox/users", json!({"email": "p@EXAMPLE.com"}))
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(r.body["linkedAccounts"], json!(["100", "200"]));
    // Signing up is not an invitation: no e-mail, whatever roles the members hold.
    assert!(
        s.outbox()
            .await
            .iter()
            .all(|m| m["to"] != "p@EXAMPLE.com" && m["to"] != "p@example.com")
    );
    for cn in ["100", "200"] {
        assert_eq!(
            s.op_get(&format!("/v1/accounts/{cn}/members/p%40example.com"))
                .await
                .body["userLinked"],
            true
        );
    }
    // A member added later for an existing user account is linked at once.
    let r = s
        .put_member("100", "admin@example.com", admin_roles())
        .await;
    assert_eq!(r.body["userLinked"], true);
    let r = s.put_member("200", "admin@example.com", json!([])).await;
    assert_eq!((r.status, r.body["userLinked"].clone()), (201, json!(true)));
}

#[tokio::test]
async fn removing_a_member_cancels_its_invitation_and_keeps_the_user_account() {
    let w = world().await;
    let s = &w.s;
    let inv = invite(s, "100", "viewer@example.com", "").await;
    let id = inv.body["id"].as_str().unwrap().to_string();
    assert_eq!(
        s.call(
            "DELETE",
            "/v1/accounts/100/members/viewer%40example.com",
            Some(OP),
            None,
            &[]
        )
        .await
        .status,
        204
    );
    let r = s
        .op(
            "POST",
            &format!("/sandbox/invitations/{id}/accept"),
            json!({"email": "viewer@example.com"}),
        )
        .await;
    assert_eq!(r.status, 404, "the invitation went with the member");
    // The admin's user account survives its member being removed elsewhere.
    s.put_member("200", "admin@example.com", json!([])).await;
    s.call(
        "DELETE",
        "/v1/accounts/200/members/admin%40example.com",
        Some(OP),
        None,
        &[],
    )
    .await;
    let again = s.put_member("200", "admin@example.com", json!([])).await;
    assert_eq!(again.body["userLinked"], true);
    assert_eq!(s.get("/v1/whoami", Some(&w.admin)).await.status, 200);
}

#[tokio::test]
async fn cancelling_an_invitation_removes_it() {
    let w = world().await;
    let s = &w.s;
    invite(s, "100", "viewer@example.com", "").await;
    let r = s
        .call(
            "DELETE",
            "/v1/accounts/100/members/viewer%40example.com/invitation",
            Some(OP),
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(
        s.op_get("/v1/accounts/100/members/viewer%40example.com")
            .await
            .body["invitation"],
        Value::Null
    );
    let r = s
        .call(
            "DELETE",
            "/v1/accounts/100/members/nobody%40example.com/invitation",
            Some(OP),
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn notifications_reach_every_subscribed_contact_and_member() {
    let w = world().await;
    let s = &w.s;
    s.op(
        "PUT",
        "/v1/accounts/100/contacts/billing%40example.com",
        json!({"name": "Billing", "notifications": ["invoices"]}),
    )
    .await;
    s.op(
        "PUT",
        "/v1/accounts/100/contacts/noc%40example.com",
        json!({"name": "NOC", "notifications": ["maintenance"]}),
    )
    .await;
    s.op(
        "PUT",
        "/v1/accounts/100/members/cfo%40example.com",
        json!({"roles": [], "notifications": ["invoices", "general"]}),
    )
    .await;
    s.op(
        "PUT",
        "/v1/accounts/200/contacts/other%40example.com",
        json!({"name": "Other", "notifications": ["invoices"]}),
    )
    .await;
    let r = s
        .op(
            "POST",
            "/sandbox/notifications",
            json!({"customerNumber": "100", "kind": "invoices", "subject": "Invoice 2026-06"}),
        )
        .await;
    assert_eq!(r.status, 200);
    let mut to: Vec<&str> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["to"].as_str().unwrap())
        .collect();
    to.sort();
    assert_eq!(to, ["billing@example.com", "cfo@example.com"]);
    let sent: Vec<_> = s
        .outbox()
        .await
        .into_iter()
        .filter(|m| m["kind"] == "notification")
        .collect();
    assert_eq!(sent.len(), 2);
    assert!(
        sent.iter()
            .all(|m| m["customerNumber"] == "100" && m["subject"] == "Invoice 2026-06")
    );
    let r = s
        .op(
            "POST",
            "/sandbox/notifications",
            json!({"customerNumber": "100", "kind": "gossip", "subject": "x"}),
        )
        .await;
    assert_eq!((r.status, r.code()), (422, "unknown_notification_kind"));
    assert_eq!(r.body["errors"][0]["field"], "kind");
    let r = s
        .call(
            "POST",
            "/sandbox/notifications",
            Some(&w.admin),
            Some(json!({"customerNumber": "100", "kind": "general", "subject": "x"})),
            &[],
        )
        .await;
    assert_eq!(r.status, 403);
}

// --- idempotency -----------------------------------------------------------------------------

#[tokio::test]
async fn a_repeated_idempotency_key_replays_the_first_answer_and_sends_no_second_email() {
    let w = world().await;
    let s = &w.s;
    let path = "/v1/accounts/100/members/viewer%40example.com/invitation?resend=true";
    let a = s
        .call("POST", path, Some(OP), None, &[("idempotency-key", "k-1")])
        .await;
    let b = s
        .call("POST", path, Some(OP), None, &[("idempotency-key", "k-1")])
        .await;
    assert_eq!((a.status, b.status), (201, 201));
    assert_eq!(a.body, b.body);
    assert_eq!(invitations_sent(s).await.len(), 1);
    let body = json!({"customerNumber": "300", "displayName": "C", "timeZone": "UTC"});
    let a = s
        .call(
            "POST",
            "/v1/accounts",
            Some(OP),
            Some(body.clone()),
            &[("idempotency-key", "acc")],
        )
        .await;
    let b = s
        .call(
            "POST",
            "/v1/accounts",
            Some(OP),
            Some(body),
            &[("idempotency-key", "acc")],
        )
        .await;
    assert_eq!((a.status, b.status), (201, 201));
    assert_eq!(a.body, b.body);
}

#[tokio::test]
async fn an_idempotency_key_reused_for_another_request_is_422() {
    let s = Server::start(&[]).await;
    let a = s
        .call(
            "POST",
            "/v1/accounts",
            Some(OP),
            Some(json!({"customerNumber": "1", "displayName": "A", "timeZone": "UTC"})),
            &[("idempotency-key", "same")],
        )
        .await;
    assert_eq!(a.status, 201);
    let b = s
        .call(
            "POST",
            "/v1/accounts",
            Some(OP),
            Some(json!({"customerNumber": "2", "displayName": "B", "timeZone": "UTC"})),
            &[("idempotency-key", "same")],
        )
        .await;
    assert_eq!((b.status, b.code()), (422, "invalid"));
    assert_eq!(s.op_get("/v1/accounts/2").await.status, 404);
}

// --- paging ----------------------------------------------------------------------------------

#[tokio::test]
async fn limits_default_to_100_and_stop_at_1000() {
    let w = world().await;
    let s = &w.s;
    for bad in ["0", "1001", "x"] {
        let r = s.op_get(&format!("/v1/members?limit={bad}")).await;
        assert_eq!((r.status, r.code()), (422, "invalid"), "limit={bad}");
        assert_eq!(r.body["errors"][0]["field"], "limit");
    }
    let r = s.op_get("/v1/members?cursor=nonsense").await;
    assert_eq!(r.status, 422);
    let r = s.op_get("/v1/members?limit=1000").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["nextCursor"], Value::Null);
}

#[tokio::test]
async fn paging_while_writing_returns_every_untouched_member_exactly_once() {
    let w = world().await;
    let s = &w.s;
    for i in 0..30 {
        s.put_member("200", &format!("m{i:02}@example.com"), json!([]))
            .await;
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut round = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/members?account=200&limit=7&cursor={c}"),
            None => "/v1/members?account=200&limit=7".to_string(),
        };
        let page = s.op_get(&path).await;
        assert_eq!(page.status, 200);
        seen.extend(emails(&page.body));
        // Writes between pages: an insert before the cursor, one after it, a deletion ahead.
        s.put_member("200", &format!("a{round}@example.com"), json!([]))
            .await;
        s.put_member("200", &format!("z{round}@example.com"), json!([]))
            .await;
        s.call(
            "DELETE",
            &format!("/v1/accounts/200/members/m{:02}%40example.com", 29 - round),
            Some(OP),
            None,
            &[],
        )
        .await;
        round += 1;
        match page.body["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), seen.len(), "no member twice");
    // Every member that existed throughout and was not deleted was seen.
    for i in 0..(30 - round) {
        assert!(
            seen.contains(&format!("m{i:02}@example.com")),
            "m{i:02} missing"
        );
    }
}

#[tokio::test]
async fn bulk_reads_filter_by_account_and_carry_the_customer_number() {
    let w = world().await;
    let s = &w.s;
    s.put_member("200", "b@example.com", json!([])).await;
    s.op(
        "PUT",
        "/v1/accounts/100/contacts/c1%40example.com",
        json!({"name": "C1", "notifications": ["general"]}),
    )
    .await;
    s.op(
        "PUT",
        "/v1/accounts/200/contacts/c2%40example.com",
        json!({"name": "C2", "notifications": []}),
    )
    .await;
    let all = s.op_get("/v1/members").await;
    assert_eq!(all.body["items"].as_array().unwrap().len(), 4);
    let only = s.op_get("/v1/members?account=200").await;
    assert_eq!(emails(&only.body), ["b@example.com"]);
    assert_eq!(only.body["items"][0]["customerNumber"], "200");
    let both = s.op_get("/v1/members?account=100&account=200").await;
    assert_eq!(both.body["items"].as_array().unwrap().len(), 4);
    let contacts = s.op_get("/v1/contacts?account=200").await;
    assert_eq!(
        contacts.body["items"],
        json!([{"customerNumber": "200", "email": "c2@example.com", "name": "C2", "notifications": [], "etag": contacts.body["items"][0]["etag"]}])
    );
    let per_account = s.op_get("/v1/accounts/100/members").await;
    assert!(per_account.body["items"][0].get("customerNumber").is_none());
    assert_eq!(s.op_get("/v1/members?account=999").await.status, 404);
}

// --- contacts and audit ----------------------------------------------------------------------

#[tokio::test]
async fn contacts_are_put_and_deleted_with_etags() {
    let w = world().await;
    let s = &w.s;
    // A role mailbox needs no name (manifests may omit it); a blank one is still refused.
    let r = s
        .op(
            "PUT",
            "/v1/accounts/100/contacts/noc%40example.com",
            json!({"name": "", "notifications": ["maintenance"]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = s
        .op(
            "PUT",
            "/v1/accounts/100/contacts/noc%40example.com",
            json!({"name": "  ", "notifications": ["maintenance"]}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    let r = s
        .call(
            "DELETE",
            "/v1/accounts/100/contacts/noc%40example.com",
            Some(OP),
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, 204);
    let r = s
        .op(
            "PUT",
            "/v1/accounts/100/contacts/Billing%40example.com",
            json!({"name": "Billing", "notifications": ["invoices", "renewals"]}),
        )
        .await;
    assert_eq!(r.status, 201);
    let etag = r.etag();
    let r = s
        .call(
            "PUT",
            "/v1/accounts/100/contacts/billing%40example.com",
            Some(&w.admin),
            Some(json!({"name": "Billing", "notifications": ["invoices"]})),
            &[("if-match", &etag)],
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["email"], "Billing@example.com");
    let stale = s
        .call(
            "DELETE",
            "/v1/accounts/100/contacts/billing%40example.com",
            Some(OP),
            None,
            &[("if-match", &etag)],
        )
        .await;
    assert_eq!(stale.status, 412);
    let r = s
        .call(
            "DELETE",
            "/v1/accounts/100/contacts/billing%40example.com",
            Some(OP),
            None,
            &[("if-match", &r.etag())],
        )
        .await;
    assert_eq!(r.status, 204);
    assert!(
        s.op_get("/v1/accounts/100/contacts").await.body["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let r = s
        .op(
            "PUT",
            "/v1/accounts/100/contacts/x%40example.com",
            json!({"notifications": []}),
        )
        .await;
    assert_eq!((r.status, r.code()), (422, "invalid"));
}

#[tokio::test]
async fn the_audit_log_records_every_change_and_who_made_it() {
    let w = world().await;
    let s = &w.s;
    s.call(
        "PUT",
        "/v1/accounts/100/members/n%40example.com",
        Some(&w.admin),
        Some(json!({"roles": []})),
        &[],
    )
    .await;
    let log = s.op_get("/v1/accounts/100/audit?limit=1000").await;
    let items = log.body["items"].as_array().unwrap();
    assert_eq!(items[0]["action"], "account.create");
    let last = items.last().unwrap();
    assert_eq!(last["actor"], "admin@example.com");
    assert_eq!(last["action"], "member.create");
    assert_eq!(last["target"], "n@example.com");
    let page = s.op_get("/v1/accounts/100/audit?limit=2").await;
    assert_eq!(page.body["items"].as_array().unwrap().len(), 2);
    assert!(page.body["nextCursor"].is_string());
}

// --- the document ----------------------------------------------------------------------------

#[tokio::test]
async fn the_openapi_document_lists_every_endpoint_and_unknown_paths_are_404() {
    let s = Server::start(&[]).await;
    let doc = s.doc();
    assert_eq!(doc["openapi"], "3.1.0");
    for path in [
        "/v1/whoami",
        "/v1/catalog",
        "/v1/accounts",
        "/v1/accounts/{cn}",
        "/v1/accounts/{cn}/members",
        "/v1/members",
        "/v1/accounts/{cn}/members/{email}",
        "/v1/accounts/{cn}/members/{email}/invitation",
        "/v1/accounts/{cn}/contacts",
        "/v1/contacts",
        "/v1/accounts/{cn}/contacts/{email}",
        "/v1/accounts/{cn}/audit",
        "/sandbox/tokens",
        "/sandbox/users",
        "/sandbox/invitations/{id}/accept",
        "/sandbox/outbox",
        "/sandbox/clock",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} missing");
    }
    for name in [
        "Account",
        "Member",
        "Contact",
        "Invitation",
        "Problem",
        "Catalog",
        "Whoami",
        "AuditEntry",
        "MemberPage",
    ] {
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "{name} missing"
        );
    }
    let r = s.op_get("/v1/nothing-here").await;
    assert_eq!((r.status, r.code()), (404, "not_found"));
    let r = s
        .call(
            "PUT",
            "/v1/accounts/100/members/a%40example.com",
            Some(OP),
            None,
            &[("content-type", "text/plain")],
        )
        .await;
    assert_eq!(
        r.header("content-type").unwrap(),
        "application/problem+json"
    );
}

async fn invitations_sent(s: &Server) -> Vec<Value> {
    s.outbox()
        .await
        .into_iter()
        .filter(|m| m["kind"] == "invitation")
        .collect()
}
