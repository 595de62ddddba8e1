//! `GET /openapi.json`: the OpenAPI 3.1 document of the reference portal. Component schemas
//! are generated from the wire types (`portal::api`), so the document follows the code; a test
//! validates real answers against it.

use std::sync::OnceLock;

use schemars::SchemaGenerator;
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

use crate::portal::api::*;

#[derive(Clone, Copy)]
enum Param {
    Cn,
    Email,
    InvitationId,
    Limit,
    Cursor,
    Accounts,
    IfMatch,
    IdempotencyKey,
    Resend,
}

impl Param {
    fn spec(self) -> Value {
        match self {
            Param::Cn => json!({"name": "cn", "in": "path", "required": true,
                "description": "The customer number.", "schema": {"type": "string"}}),
            Param::Email => json!({"name": "email", "in": "path", "required": true,
                "description": "The e-mail, percent-encoded; compared case-insensitively.",
                "schema": {"type": "string"}}),
            Param::InvitationId => json!({"name": "id", "in": "path", "required": true,
                "schema": {"type": "string"}}),
            Param::Limit => json!({"name": "limit", "in": "query", "required": false,
                "description": "Page size, 1 to 1000 (default 100).",
                "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}}),
            Param::Cursor => json!({"name": "cursor", "in": "query", "required": false,
                "description": "The `nextCursor` of the previous page.", "schema": {"type": "string"}}),
            Param::Accounts => json!({"name": "account", "in": "query", "required": false,
                "description": "Only these customer numbers (repeatable); default every account the principal manages.",
                "style": "form", "explode": true,
                "schema": {"type": "array", "items": {"type": "string"}}}),
            Param::IfMatch => json!({"name": "If-Match", "in": "header", "required": false,
                "description": "The etag the change was planned against; 412 when it no longer matches.",
                "schema": {"type": "string"}}),
            Param::IdempotencyKey => {
                json!({"name": "Idempotency-Key", "in": "header", "required": false,
                "description": "Replays the first answer for a repeated key; 422 when reused for another request.",
                "schema": {"type": "string", "maxLength": 255}})
            }
            Param::Resend => json!({"name": "resend", "in": "query", "required": false,
                "description": "Send a new invitation even when one is pending.",
                "schema": {"type": "boolean"}}),
        }
    }
}

struct Op {
    path: &'static str,
    method: &'static str,
    id: &'static str,
    summary: &'static str,
    params: &'static [Param],
    request: Option<&'static str>,
    /// Successful answers: status and schema (none for 204).
    ok: &'static [(u16, Option<&'static str>)],
    authenticated: bool,
}

use Param::*;

const OPS: &[Op] = &[
    Op {
        path: "/v1/whoami",
        method: "get",
        id: "whoami",
        summary: "Who the token belongs to.",
        params: &[],
        request: None,
        ok: &[(200, Some("Whoami"))],
        authenticated: true,
    },
    Op {
        path: "/v1/catalog",
        method: "get",
        id: "catalog",
        summary: "The role catalog and capabilities.",
        params: &[],
        request: None,
        ok: &[(200, Some("Catalog"))],
        authenticated: true,
    },
    Op {
        path: "/v1/accounts",
        method: "get",
        id: "listAccounts",
        summary: "Accounts the principal can see.",
        params: &[Limit, Cursor],
        request: None,
        ok: &[(200, Some("AccountPage"))],
        authenticated: true,
    },
    Op {
        path: "/v1/accounts",
        method: "post",
        id: "createAccount",
        summary: "Create a customer account (operators only).",
        params: &[IdempotencyKey],
        request: Some("NewAccount"),
        ok: &[(201, Some("Account"))],
        authenticated: true,
    },
    Op {
        path: "/v1/accounts/{cn}",
        method: "get",
        id: "getAccount",
        summary: "One customer account.",
        params: &[Cn],
        request: None,
        ok: &[(200, Some("Account"))],
        authenticated: true,
    },
    Op {
        path: "/v1/accounts/{cn}",
        method: "patch",
        id: "updateAccount",
        summary: "Change the display name or time zone.",
        params: &[Cn, IfMatch],
        request: Some("AccountPatch"),
        ok: &[(200, Some("Account"))],
        authenticated: true,
    },
    Op {
        path: "/v1/accounts/{cn}/members",
        method: "get",
        id: "listAccountMembers",
        summary: "Members of one account.",
        params: &[Cn, Limit, Cursor],
        request: None,
        ok: &[(200, Some("MemberPage"))],
        authenticated: true,
    },
    Op {
        path: "/v1/members",
        method: "get",
        id: "listMembers",
        summary: "Members across the accounts the principal manages; each carries customerNumber.",
        params: &[Accounts, Limit, Cursor],
        request: None,
        ok: &[(200, Some("MemberPage"))],
        authenticated: true,
    },
    Op {
        path: "/v1/accounts/{cn}/members/{email}",
        method: "get",
        id: "getMember",
        summary: "One member.",
        params: &[Cn, Email],
        request: None,
        ok: &[(200, Some("Member"))],
        authenticated: true,
    },
    Op {
        path: "/v1/accounts/{cn}/members/{email}",
        method: "put",
        id: "putMember",
        summary: "Create or replace a member; its roles become exactly the given list.",
        params: &[Cn, Email, IfMatch],
        request: Some("MemberPut"),
        ok: &[(200, Some("Member")), (201, Some("Member"))],
        authenticated: true,
    },
    Op {
        path: "/v1/accounts/{cn}/members/{email}",
        method: "delete",
        id: "deleteMember",
        summary: "Remove the member, its roles and pending invitation; the user account stays.",
        params: &[Cn, Email, IfMatch],
        request: None,
        ok: &[(204, None)],
        authenticated: true,
    },
    Op {
        path: "/v1/accounts/{cn}/members/{email}/invitation",
        method: "post",
        id: "invite",
        summary: "Send the member's invitation (201), or return the pending one (200).",
        params: &[Cn, Email, Resend, IdempotencyKey],
        request: None,
        ok: &[(200, Some("Invitation")), (201, Some("Invitation"))],
        authenticated: true,
    },
    Op {
        path: "/v1/accounts/{cn}/members/{email}/invitation",
        method: "delete",
        id: "cancelInvitation",
        summary: "Cancel the member's invitation.",
        params: &[Cn, Email],
        request: None,
        ok: &[(204, None)],
        authenticated: true,
    },
    Op {
        path: "/v1/accounts/{cn}/contacts",
        method: "get",
        id: "listAccountContacts",
        summary: "Notification contacts of one account.",
        params: &[Cn, Limit, Cursor],
        request: None,
        ok: &[(200, Some("ContactPage"))],
        authenticated: true,
    },
    Op {
        path: "/v1/contacts",
        method: "get",
        id: "listContacts",
        summary: "Contacts across the accounts the principal manages; each carries customerNumber.",
        params: &[Accounts, Limit, Cursor],
        request: None,
        ok: &[(200, Some("ContactPage"))],
        authenticated: true,
    },
    Op {
        path: "/v1/accounts/{cn}/contacts/{email}",
        method: "put",
        id: "putContact",
        summary: "Create or replace a contact.",
        params: &[Cn, Email, IfMatch],
        request: Some("ContactPut"),
        ok: &[(200, Some("Contact")), (201, Some("Contact"))],
        authenticated: true,
    },
    Op {
        path: "/v1/accounts/{cn}/contacts/{email}",
        method: "delete",
        id: "deleteContact",
        summary: "Remove a contact.",
        params: &[Cn, Email, IfMatch],
        request: None,
        ok: &[(204, None)],
        authenticated: true,
    },
    Op {
        path: "/v1/accounts/{cn}/audit",
        method: "get",
        id: "audit",
        summary: "Every change of the account, who made it, oldest first.",
        params: &[Cn, Limit, Cursor],
        request: None,
        ok: &[(200, Some("AuditPage"))],
        authenticated: true,
    },
    Op {
        path: "/sandbox/tokens",
        method: "post",
        id: "issueToken",
        summary: "Issue an API token for a person or the operator (operator only).",
        params: &[IdempotencyKey],
        request: Some("TokenRequest"),
        ok: &[(201, Some("IssuedToken"))],
        authenticated: true,
    },
    Op {
        path: "/sandbox/users",
        method: "post",
        id: "createUser",
        summary: "A person creates a user account; members with that e-mail become userLinked (operator only).",
        params: &[IdempotencyKey],
        request: Some("EmailRequest"),
        ok: &[(200, Some("UserAccount")), (201, Some("UserAccount"))],
        authenticated: true,
    },
    Op {
        path: "/sandbox/invitations/{id}/accept",
        method: "post",
        id: "acceptInvitation",
        summary: "A person accepts an invitation; only the invited e-mail may (operator only).",
        params: &[InvitationId, IdempotencyKey],
        request: Some("EmailRequest"),
        ok: &[(200, Some("Member"))],
        authenticated: true,
    },
    Op {
        path: "/sandbox/outbox",
        method: "get",
        id: "outbox",
        summary: "Every e-mail the portal has sent, oldest first (operator only).",
        params: &[],
        request: None,
        ok: &[(200, Some("Outbox"))],
        authenticated: true,
    },
    Op {
        path: "/sandbox/clock",
        method: "get",
        id: "getClock",
        summary: "The portal's clock.",
        params: &[],
        request: None,
        ok: &[(200, Some("ClockSetting"))],
        authenticated: true,
    },
    Op {
        path: "/sandbox/clock",
        method: "post",
        id: "setClock",
        summary: "Move the portal's clock; it then stands still at that instant (operator only).",
        params: &[],
        request: Some("ClockSetting"),
        ok: &[(200, Some("ClockSetting"))],
        authenticated: true,
    },
    Op {
        path: "/sandbox/notifications",
        method: "post",
        id: "sendNotification",
        summary: "The provider sends a notification of one kind to every contact and member of the account subscribed to it; answers the e-mails sent (operator only).",
        params: &[IdempotencyKey],
        request: Some("NotificationRequest"),
        ok: &[(200, Some("Outbox"))],
        authenticated: true,
    },
    Op {
        path: "/sandbox/clock",
        method: "delete",
        id: "resetClock",
        summary: "Let the portal's clock run with the real time again (operator only).",
        params: &[],
        request: None,
        ok: &[(200, Some("ClockSetting"))],
        authenticated: true,
    },
    Op {
        path: "/openapi.json",
        method: "get",
        id: "openapi",
        summary: "This document.",
        params: &[],
        request: None,
        ok: &[(200, None)],
        authenticated: false,
    },
];

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn page_schema(item: &str) -> Value {
    json!({
        "type": "object",
        "required": ["items", "nextCursor"],
        "additionalProperties": false,
        "properties": {
            "items": {"type": "array", "items": schema_ref(item)},
            "nextCursor": {"type": ["string", "null"], "description": "Opaque; null on the last page."}
        }
    })
}

/// Answers must not carry fields the document does not name: every object schema of the
/// components gets `additionalProperties: false` unless it says otherwise.
fn close_objects(value: &mut Value) {
    match value {
        Value::Object(map) => {
            let is_object = map.get("type") == Some(&Value::String("object".into()));
            if is_object
                && map.contains_key("properties")
                && !map.contains_key("additionalProperties")
            {
                map.insert("additionalProperties".into(), Value::Bool(false));
            }
            for v in map.values_mut() {
                close_objects(v);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(close_objects),
        _ => {}
    }
}

fn generator(serialize: bool) -> SchemaGenerator {
    let settings = SchemaSettings::draft2020_12().with(|s| {
        s.definitions_path = "/components/schemas".into();
        s.meta_schema = None;
    });
    let settings = if serialize {
        settings.for_serialize()
    } else {
        settings.for_deserialize()
    };
    SchemaGenerator::new(settings)
}

/// Renames `$ref`s to `from` into `to`.
fn rename_refs(value: &mut Value, from: &str, to: &str) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get_mut("$ref")
                && r.as_str() == format!("#/components/schemas/{from}")
            {
                *r = format!("#/components/schemas/{to}");
            }
            map.values_mut().for_each(|v| rename_refs(v, from, to));
        }
        Value::Array(items) => items.iter_mut().for_each(|v| rename_refs(v, from, to)),
        _ => {}
    }
}

fn components() -> Map<String, Value> {
    // Answers are described as the server writes them (every field present), request bodies
    // as it reads them (defaults may be left out); where the two differ for one type, the
    // request form is named `…Input`.
    let mut answers = generator(true);
    macro_rules! add {
        ($g:ident: $($t:ty),*) => {$( let _ = $g.subschema_for::<$t>(); )*};
    }
    add!(answers: Whoami, Catalog, Account, Member, Invitation, Contact, AuditEntry, Problem,
        IssuedToken, UserAccount, Outbox, ClockSetting);
    let mut requests = generator(false);
    add!(requests: NewAccount, AccountPatch, MemberPut, ContactPut, TokenRequest, EmailRequest,
        ClockSetting, NotificationRequest);
    let mut defs = answers.take_definitions(true);
    let mut inputs = Value::Object(requests.take_definitions(true));
    let clashes: Vec<String> = inputs
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(name, schema)| defs.get(*name).is_some_and(|d| d != *schema))
                .map(|(name, _)| name.clone())
                .collect()
        })
        .unwrap_or_default();
    for name in &clashes {
        rename_refs(&mut inputs, name, &format!("{name}Input"));
    }
    if let Value::Object(inputs) = inputs {
        for (name, schema) in inputs {
            let name = if clashes.contains(&name) {
                format!("{name}Input")
            } else {
                name
            };
            defs.entry(name).or_insert(schema);
        }
    }
    for (name, item) in [
        ("AccountPage", "Account"),
        ("MemberPage", "Member"),
        ("ContactPage", "Contact"),
        ("AuditPage", "AuditEntry"),
    ] {
        defs.insert(name.into(), page_schema(item));
    }
    let mut value = Value::Object(defs);
    close_objects(&mut value);
    match value {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn operation(op: &Op) -> Value {
    let mut responses = Map::new();
    for (status, schema) in op.ok {
        let mut r = json!({"description": "Success."});
        if let Some(name) = schema {
            r["content"] = json!({"application/json": {"schema": schema_ref(name)}});
        } else if *status == 200 {
            r["content"] = json!({"application/json": {"schema": {"type": "object"}}});
        }
        responses.insert(status.to_string(), r);
    }
    responses.insert(
        "default".into(),
        json!({
            "description": "A problem: 401 unauthenticated, 403 forbidden, 404 not_found, 409 already_linked, 410 an expired invitation, 412 version_conflict, 422 invalid / unknown_role / unknown_notification_kind / last_admin, 429 rate_limited (with Retry-After), 503 unavailable.",
            "headers": {"Retry-After": {"description": "Seconds to wait (429).", "schema": {"type": "integer"}}},
            "content": {"application/problem+json": {"schema": schema_ref("Problem")}}
        }),
    );
    let mut o = json!({
        "operationId": op.id,
        "summary": op.summary,
        "parameters": op.params.iter().map(|p| p.spec()).collect::<Vec<_>>(),
        "responses": responses,
    });
    if let Some(name) = op.request {
        o["requestBody"] = json!({
            "required": true,
            "content": {"application/json": {"schema": schema_ref(name)}}
        });
    }
    if !op.authenticated {
        o["security"] = json!([]);
    }
    o
}

fn build() -> Value {
    let mut paths = Map::new();
    for op in OPS {
        let entry = paths
            .entry(op.path.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        entry[op.method] = operation(op);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "rolecall reference portal",
            "version": "1",
            "description": "The portal API v1 (customer accounts, members, roles, invitations, notification contacts) and the sandbox API of the reference portal."
        },
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": components(),
        }
    })
}

/// The document, built once.
pub fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(build)
}
