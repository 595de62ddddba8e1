//! A WHMCS API emulator for the tests: an axum server on 127.0.0.1:0 with in-memory state that
//! answers `POST <base>/includes/api.php` the way WHMCS documents it, quirks included: IDs as
//! numbers in one answer and strings in another, wrapped and bare lists, `isOwner` in
//! `GetUsers` but `is_owner` in `GetClientsDetails`, a prefix search in `GetUsers`, paging by
//! `limitstart`/`limitnum` (default 25), `status` instead of `result` in one action, its error
//! strings, and invitations that cannot be listed. Every invitation e-mail lands in an outbox
//! that tests count; `accept` plays the person who follows the link.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Form, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};

pub const IDENTIFIER: &str = "whmcs-ident-4711-test";
pub const SECRET: &str = "whmcs-secret-9c2e7f-test";
pub const ACCESSKEY: &str = "whmcs-accesskey-55aa-test";

// The emulator's own copy, not the adapter's: a name the adapter got wrong must fail here.
pub const PERMISSIONS: [&str; 13] = [
    "profile",
    "contacts",
    "products",
    "manageproducts",
    "productsso",
    "domains",
    "managedomains",
    "invoices",
    "quotes",
    "tickets",
    "affiliates",
    "emails",
    "orders",
];
const PREFS: [&str; 6] = [
    "general",
    "product",
    "domain",
    "invoice",
    "support",
    "affiliate",
];

#[derive(Debug, Clone)]
pub struct Client {
    pub id: u64,
    pub firstname: String,
    pub lastname: String,
    pub companyname: String,
    pub email: String,
    pub owner_user_id: u64,
    /// The client's own address keeps domain e-mails (it counts for the domain rule).
    pub own_domain_emails: bool,
}

#[derive(Debug, Clone)]
pub struct User {
    pub id: u64,
    pub firstname: String,
    pub lastname: String,
    pub email: String,
}

#[derive(Debug, Clone)]
pub struct Link {
    pub user_id: u64,
    pub client_id: u64,
    pub owner: bool,
    pub permissions: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Contact {
    pub id: u64,
    pub client_id: u64,
    pub firstname: String,
    pub lastname: String,
    pub email: String,
    /// general, product, domain, invoice, support, affiliate
    pub prefs: [bool; 6],
}

#[derive(Debug, Clone)]
pub struct Invite {
    pub client_id: u64,
    pub email: String,
    pub permissions: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    pub to: String,
    pub client_id: u64,
}

#[derive(Debug, Default)]
pub struct Data {
    next_id: u64,
    pub clients: Vec<Client>,
    pub users: Vec<User>,
    pub links: Vec<Link>,
    pub contacts: Vec<Contact>,
    /// Sent and not accepted; WHMCS has no API to list these.
    pub invites: Vec<Invite>,
    pub outbox: Vec<Mail>,
    /// Every request: its action and raw form, for assertions about what was sent.
    pub requests: Vec<(String, HashMap<String, String>)>,
    /// Requests that need the access key when set.
    pub accesskey: Option<String>,
    /// The next this many requests answer 503 (an overloaded PHP backend), the first of them
    /// with `Retry-After: 0`.
    pub fail_next: usize,
    /// This action is carried out, then answered with 503: the client never hears that it
    /// happened.
    pub fail_after_commit: Option<String>,
    /// Pages hold at most this many items whatever `limitnum` asks (an installation whose
    /// hook caps it): the client must follow `totalresults`.
    pub page_cap: Option<usize>,
}

impl Data {
    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }
}

/// A running emulator. The server lives as long as the test process.
pub struct Whmcs {
    pub base: String,
    pub data: Arc<Mutex<Data>>,
}

impl Whmcs {
    /// Starts an emulator under `/whmcs/` on an ephemeral loopback port.
    pub fn start() -> Whmcs {
        let data = Arc::new(Mutex::new(Data::default()));
        let state = data.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let app = Router::new()
                    .route("/whmcs/includes/api.php", post(api))
                    .with_state(state);
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(listener.local_addr().unwrap()).unwrap();
                axum::serve(listener, app).await.unwrap();
            });
        });
        let addr = rx.recv().unwrap();
        Whmcs {
            base: format!("http://{addr}/whmcs/"),
            data,
        }
    }

    /// The portal URL for `--portal`.
    pub fn portal_url(&self) -> String {
        format!("whmcs+{}", self.base)
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, Data> {
        self.data.lock().unwrap()
    }

    /// A client and its owner user; returns the client id.
    pub fn add_client(&self, company: &str, owner_email: &str) -> u64 {
        let mut d = self.lock();
        let owner = d.id();
        d.users.push(User {
            id: owner,
            firstname: "Owner".into(),
            lastname: company.into(),
            email: owner_email.into(),
        });
        let id = d.id();
        d.clients.push(Client {
            id,
            firstname: "Owner".into(),
            lastname: company.into(),
            companyname: company.into(),
            email: owner_email.into(),
            owner_user_id: owner,
            own_domain_emails: true,
        });
        d.links.push(Link {
            user_id: owner,
            client_id: id,
            owner: true,
            permissions: Vec::new(),
        });
        id
    }

    /// A user (created if new) associated with the client with these permissions.
    pub fn add_user(&self, client_id: u64, email: &str, permissions: &[&str]) -> u64 {
        let mut d = self.lock();
        let user_id = match d.users.iter().find(|u| u.email.eq_ignore_ascii_case(email)) {
            Some(u) => u.id,
            None => {
                let id = d.id();
                let local = email.split('@').next().unwrap_or("").to_string();
                d.users.push(User {
                    id,
                    firstname: local,
                    lastname: "User".into(),
                    email: email.into(),
                });
                id
            }
        };
        d.links.push(Link {
            user_id,
            client_id,
            owner: false,
            permissions: permissions.iter().map(|p| p.to_string()).collect(),
        });
        user_id
    }

    /// The person follows the invitation link: their user (created if new) is associated with
    /// the client with the invitation's permissions. False when there is no such invitation.
    pub fn accept(&self, client_id: u64, email: &str) -> bool {
        let invite = {
            let mut d = self.lock();
            let Some(i) = d
                .invites
                .iter()
                .position(|i| i.client_id == client_id && i.email.eq_ignore_ascii_case(email))
            else {
                return false;
            };
            d.invites.remove(i)
        };
        let perms: Vec<&str> = invite.permissions.iter().map(String::as_str).collect();
        self.add_user(client_id, email, &perms);
        true
    }

    pub fn invitations_to(&self, email: &str) -> usize {
        self.lock()
            .outbox
            .iter()
            .filter(|m| m.to.eq_ignore_ascii_case(email))
            .count()
    }

    /// The permissions of the user with this e-mail on the client, if associated.
    pub fn permissions(&self, client_id: u64, email: &str) -> Option<Vec<String>> {
        let d = self.lock();
        let user = d
            .users
            .iter()
            .find(|u| u.email.eq_ignore_ascii_case(email))?;
        let link = d
            .links
            .iter()
            .find(|l| l.user_id == user.id && l.client_id == client_id)?;
        let mut p = link.permissions.clone();
        p.sort();
        Some(p)
    }

    pub fn is_owner(&self, client_id: u64, email: &str) -> bool {
        let d = self.lock();
        let Some(user) = d.users.iter().find(|u| u.email.eq_ignore_ascii_case(email)) else {
            return false;
        };
        d.links
            .iter()
            .any(|l| l.user_id == user.id && l.client_id == client_id && l.owner)
    }

    pub fn contact(&self, client_id: u64, email: &str) -> Option<Contact> {
        self.lock()
            .contacts
            .iter()
            .find(|c| c.client_id == client_id && c.email.eq_ignore_ascii_case(email))
            .cloned()
    }

    pub fn add_contact(&self, client_id: u64, email: &str, prefs: [bool; 6]) {
        let mut d = self.lock();
        let id = d.id();
        d.contacts.push(Contact {
            id,
            client_id,
            firstname: "Contact".into(),
            lastname: String::new(),
            email: email.into(),
            prefs,
        });
    }

    /// `clients` clients, each with its owner, 3 users (`tickets`, `invoices`, `domains`) and a
    /// contact (general and domain e-mails); gives the manifests (one YAML stream) that
    /// declare exactly that, so that a plan of them changes nothing.
    pub fn fleet(&self, clients: usize) -> String {
        let mut yaml = String::new();
        for i in 0..clients {
            let id = self.add_client(&format!("Fleet {i}"), &format!("owner{i}@fleet.example"));
            yaml.push_str(&format!(
                "---\napiVersion: rolecall.dev/v1alpha1\nkind: CustomerAccount\nmetadata: {{name: fleet-{id}}}\nspec:\n  customerNumber: \"{id}\"\n  timeZone: Europe/Zurich\n  members:\n"
            ));
            for (u, role) in ["tickets", "invoices", "domains"].iter().enumerate() {
                let email = format!("u{u}-{i}@fleet.example");
                self.add_user(id, &email, &[role]);
                yaml.push_str(&format!("    - email: {email}\n      roles: [{role}]\n"));
            }
            let contact = format!("noc-{i}@fleet.example");
            self.add_contact(id, &contact, [true, false, true, false, false, false]);
            yaml.push_str(&format!(
                "  contacts:\n    - email: {contact}\n      name: Contact\n      notifications: [general, domains]\n"
            ));
        }
        yaml
    }

    /// How many requests named this action so far.
    pub fn count(&self, action: &str) -> usize {
        self.lock()
            .requests
            .iter()
            .filter(|(a, _)| a == action)
            .count()
    }

    /// The actions sent so far that are not reads (every WHMCS read action is `Get…`).
    pub fn writes(&self) -> Vec<String> {
        self.actions()
            .into_iter()
            .filter(|a| !a.starts_with("Get"))
            .collect()
    }

    /// Forgets the requests seen so far, so that a test counts only what follows.
    pub fn clear_requests(&self) {
        self.lock().requests.clear();
    }

    pub fn actions(&self) -> Vec<String> {
        self.lock()
            .requests
            .iter()
            .map(|(a, _)| a.clone())
            .collect()
    }
}

fn ok(mut body: Value) -> Response {
    body["result"] = json!("success");
    Json(body).into_response()
}

fn error(message: &str) -> Response {
    Json(json!({"result": "error", "message": message})).into_response()
}

/// The page `limitstart`/`limitnum` ask for (25 items when `limitnum` is not sent), and
/// where it starts.
fn page<'a, T>(
    form: &HashMap<String, String>,
    cap: Option<usize>,
    all: &'a [T],
) -> (usize, &'a [T]) {
    let start: usize = form
        .get("limitstart")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let num: usize = form
        .get("limitnum")
        .and_then(|s| s.parse().ok())
        .unwrap_or(25)
        .min(cap.unwrap_or(usize::MAX));
    let from = start.min(all.len());
    let to = from.saturating_add(num).min(all.len());
    (start, &all[from..to])
}

fn lowercase(form: &HashMap<String, String>, key: &str) -> String {
    form.get(key).map(|v| v.to_lowercase()).unwrap_or_default()
}

fn num(form: &HashMap<String, String>, key: &str) -> Option<u64> {
    form.get(key).and_then(|v| v.trim().parse().ok())
}

/// The link named by `user_id` and `client_id`, or the WHMCS message why there is none.
fn link(d: &Data, form: &HashMap<String, String>) -> Result<usize, &'static str> {
    let (Some(user), Some(client)) = (num(form, "user_id"), num(form, "client_id")) else {
        return Err("User ID and Client ID are required");
    };
    d.links
        .iter()
        .position(|l| l.user_id == user && l.client_id == client)
        .ok_or("User not associated with client")
}

fn domain_rule_holds(d: &Data, client_id: u64) -> bool {
    d.clients
        .iter()
        .any(|c| c.id == client_id && c.own_domain_emails)
        || d.contacts
            .iter()
            .any(|c| c.client_id == client_id && c.prefs[2])
}

fn read_prefs(form: &HashMap<String, String>, into: &mut [bool; 6]) {
    for (i, p) in PREFS.iter().enumerate() {
        if let Some(v) = form.get(&format!("email_preferences[{p}]")) {
            into[i] = matches!(v.as_str(), "1" | "true" | "on");
        }
    }
}

/// The permissions of a request, or the WHMCS error message about them.
fn check_permissions(form: &HashMap<String, String>) -> Result<Vec<String>, String> {
    let Some(list) = form.get("permissions").filter(|p| !p.trim().is_empty()) else {
        return Err("Permissions are required".into());
    };
    let mut perms = Vec::new();
    for p in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if !PERMISSIONS.contains(&p) {
            return Err(format!("Invalid Permission: {p}"));
        }
        perms.push(p.to_string());
    }
    Ok(perms)
}

async fn api(
    State(data): State<Arc<Mutex<Data>>>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let mut d = data.lock().unwrap();
    let action = form.get("action").cloned().unwrap_or_default();
    d.requests.push((action.clone(), form.clone()));
    if d.fail_next > 0 {
        d.fail_next -= 1;
        let mut answer = (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable").into_response();
        if d.fail_next % 2 == 1 {
            answer
                .headers_mut()
                .insert("retry-after", axum::http::HeaderValue::from_static("0"));
        }
        return answer;
    }
    let authentic = form.get("identifier").map(String::as_str) == Some(IDENTIFIER)
        && form.get("secret").map(String::as_str) == Some(SECRET)
        && d.accesskey
            .as_ref()
            .is_none_or(|k| form.get("accesskey") == Some(k));
    if !authentic {
        return (
            StatusCode::FORBIDDEN,
            Json(json!({"result": "error", "message": "Authentication Failed"})),
        )
            .into_response();
    }
    if form.get("responsetype").map(String::as_str) != Some("json") {
        return "result=error;message=responsetype must be json".into_response();
    }
    let answer = match dispatch(&mut d, &action, &form) {
        Ok(answer) => answer,
        // Refused before any change: the failure after commit does not apply.
        Err(Refused(message)) => return error(&message),
    };
    if d.fail_after_commit.as_deref() == Some(action.as_str()) {
        return (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable").into_response();
    }
    answer
}

/// An API action refused before it changed anything: the message of its error answer.
struct Refused(String);

fn refused(message: &str) -> Refused {
    Refused(message.to_string())
}

/// The answer to one API action: `Err` for a refusal before anything changed.
fn dispatch(
    d: &mut Data,
    action: &str,
    form: &HashMap<String, String>,
) -> Result<Response, Refused> {
    Ok(match action {
        "GetPermissionsList" => ok(json!({"permissions": {"permission": PERMISSIONS}})),
        "GetClients" => get_clients(d, form),
        "GetClientsDetails" => get_clients_details(d, form)?,
        "GetUsers" => get_users(d, form),
        "GetUserPermissions" => get_user_permissions(d, form),
        "UpdateUserPermissions" => update_user_permissions(d, form)?,
        "DeleteUserClient" => delete_user_client(d, form),
        "UpdateUser" => update_user(d, form)?,
        "CreateClientInvite" => create_client_invite(d, form)?,
        "GetContacts" => get_contacts(d, form),
        "AddContact" => add_contact(d, form)?,
        "UpdateContact" => update_contact(d, form)?,
        "DeleteContact" => delete_contact(d, form)?,
        _ => error("Command Not Found"),
    })
}

/// `GetClients`: one page of the clients whose e-mail starts with `search`.
fn get_clients(d: &Data, form: &HashMap<String, String>) -> Response {
    let search = lowercase(form, "search");
    let all: Vec<&Client> = d
        .clients
        .iter()
        .filter(|c| search.is_empty() || c.email.to_lowercase().starts_with(&search))
        .collect();
    let (start, shown) = page(form, d.page_cap, &all);
    let items: Vec<Value> = shown
        .iter()
        .map(|c| {
            json!({"id": c.id, "firstname": c.firstname, "lastname": c.lastname,
                "companyname": c.companyname, "email": c.email, "status": "Active"})
        })
        .collect();
    ok(json!({"totalresults": all.len(), "startnumber": start,
        "numreturned": items.len(), "clients": {"client": items}}))
}

/// `GetClientsDetails`: a client and the users linked to it.
fn get_clients_details(d: &Data, form: &HashMap<String, String>) -> Result<Response, Refused> {
    let Some(c) = num(form, "clientid").and_then(|id| d.clients.iter().find(|c| c.id == id)) else {
        return Err(refused("Client Not Found"));
    };
    let users: Vec<Value> = d
        .links
        .iter()
        .filter(|l| l.client_id == c.id)
        .filter_map(|l| d.users.iter().find(|u| u.id == l.user_id).map(|u| (u, l)))
        .map(|(u, l)| {
            json!({"id": u.id, "name": format!("{} {}", u.firstname, u.lastname),
                "email": u.email, "is_owner": l.owner})
        })
        .collect();
    Ok(ok(json!({"userid": c.id.to_string(), "client": {
        "id": c.id.to_string(), "userid": c.id, "firstname": c.firstname,
        "lastname": c.lastname, "companyname": c.companyname, "email": c.email,
        "owner_user_id": c.owner_user_id.to_string(),
        "users": {"user": users}}})))
}

/// `GetUsers`: one page of the users matching `search`.
fn get_users(d: &Data, form: &HashMap<String, String>) -> Response {
    let search = lowercase(form, "search");
    // As WHMCS documents it: the search matches the start of the e-mail, the first
    // name, the last name or the full name. Without one, every user, in id order.
    let all: Vec<&User> = d
        .users
        .iter()
        .filter(|u| {
            search.is_empty()
                || [
                    &u.email,
                    &u.firstname,
                    &u.lastname,
                    &format!("{} {}", u.firstname, u.lastname),
                ]
                .iter()
                .any(|f| f.to_lowercase().starts_with(&search))
        })
        .collect();
    let (start, shown) = page(form, d.page_cap, &all);
    let items: Vec<Value> = shown
        .iter()
        .map(|u| {
            let clients: Vec<Value> = d
                .links
                .iter()
                .filter(|l| l.user_id == u.id)
                .map(|l| json!({"id": l.client_id.to_string(), "isOwner": l.owner}))
                .collect();
            json!({"id": u.id.to_string(), "firstname": u.firstname,
                "lastname": u.lastname, "email": u.email, "clients": clients})
        })
        .collect();
    ok(
        json!({"totalresults": all.len().to_string(), "startnumber": start,
        "numreturned": items.len(), "users": items}),
    )
}

/// `GetUserPermissions`: what a user may do for a client.
fn get_user_permissions(d: &Data, form: &HashMap<String, String>) -> Response {
    match link(d, form).map(|i| &d.links[i]) {
        Err(message) => error(message),
        Ok(l) if l.owner => ok(json!({"permissions": PERMISSIONS.join(",")})),
        Ok(l) => ok(json!({"permissions": l.permissions.join(",")})),
    }
}

/// `UpdateUserPermissions`: sets what a user may do for a client.
fn update_user_permissions(
    d: &mut Data,
    form: &HashMap<String, String>,
) -> Result<Response, Refused> {
    let perms = match check_permissions(form) {
        Ok(p) => p,
        Err(message) => return Err(Refused(message)),
    };
    Ok(match link(d, form) {
        Err(message) => error(message),
        Ok(i) if d.links[i].owner => error("Permissions cannot be set on a client owner"),
        Ok(i) => {
            d.links[i].permissions = perms;
            ok(json!({"user_id": d.links[i].user_id}))
        }
    })
}

/// `DeleteUserClient`: unlinks a user from a client.
fn delete_user_client(d: &mut Data, form: &HashMap<String, String>) -> Response {
    match link(d, form) {
        Err(message) => error(message),
        Ok(i) if d.links[i].owner => error("You cannot remove the account owner"),
        Ok(i) => {
            d.links.remove(i);
            // The one action that answers `status` instead of `result`.
            Json(json!({"status": "success"})).into_response()
        }
    }
}

/// `UpdateUser`: renames a user.
fn update_user(d: &mut Data, form: &HashMap<String, String>) -> Result<Response, Refused> {
    let Some(u) = num(form, "user_id").and_then(|id| d.users.iter_mut().find(|u| u.id == id))
    else {
        return Err(refused("User Not Found"));
    };
    if let Some(v) = form.get("firstname") {
        u.firstname = v.clone();
    }
    if let Some(v) = form.get("lastname") {
        u.lastname = v.clone();
    }
    Ok(ok(json!({"userid": u.id})))
}

/// `CreateClientInvite`: mails an invitation to join a client.
fn create_client_invite(d: &mut Data, form: &HashMap<String, String>) -> Result<Response, Refused> {
    let Some(client) = num(form, "client_id").filter(|id| d.clients.iter().any(|c| c.id == *id))
    else {
        return Err(refused("Client Not Found"));
    };
    let Some(email) = form.get("email").filter(|e| e.contains('@')).cloned() else {
        return Err(refused("A valid email address is required"));
    };
    let perms = match check_permissions(form) {
        Ok(p) => p,
        Err(message) => return Err(Refused(message)),
    };
    let associated = d
        .users
        .iter()
        .find(|u| u.email.eq_ignore_ascii_case(&email))
        .is_some_and(|u| {
            d.links
                .iter()
                .any(|l| l.user_id == u.id && l.client_id == client)
        });
    if associated {
        return Err(refused("User already associated with client"));
    }
    // WHMCS sends a new e-mail for every call: it keeps no idea of a pending invitation
    // that an API client could see.
    d.invites.push(Invite {
        client_id: client,
        email: email.clone(),
        permissions: perms,
    });
    d.outbox.push(Mail {
        to: email,
        client_id: client,
    });
    Ok(ok(json!({})))
}

/// `GetContacts`: one page of the contacts of a client.
fn get_contacts(d: &Data, form: &HashMap<String, String>) -> Response {
    let client = num(form, "userid");
    let email = lowercase(form, "email");
    let all: Vec<&Contact> = d
        .contacts
        .iter()
        .filter(|c| client.is_none_or(|id| c.client_id == id))
        .filter(|c| email.is_empty() || c.email.to_lowercase().starts_with(&email))
        .collect();
    let (start, shown) = page(form, d.page_cap, &all);
    let items: Vec<Value> = shown
        .iter()
        .map(|c| {
            // Each preference in another spelling, as real answers mix them.
            json!({"id": c.id.to_string(), "userid": c.client_id.to_string(),
                "firstname": c.firstname, "lastname": c.lastname, "email": c.email,
                "generalemails": if c.prefs[0] { "1" } else { "0" },
                "productemails": c.prefs[1],
                "domainemails": if c.prefs[2] { 1 } else { 0 },
                "invoiceemails": if c.prefs[3] { "true" } else { "" },
                "supportemails": c.prefs[4],
                "affiliateemails": if c.prefs[5] { "on" } else { "0" }})
        })
        .collect();
    ok(json!({"totalresults": all.len(), "startnumber": start,
        "numreturned": items.len(), "contacts": {"contact": items}}))
}

/// `AddContact`: adds a contact to a client.
fn add_contact(d: &mut Data, form: &HashMap<String, String>) -> Result<Response, Refused> {
    let Some(client) = num(form, "clientid").filter(|id| d.clients.iter().any(|c| c.id == *id))
    else {
        return Err(refused("Client ID Not Found"));
    };
    let Some(email) = form.get("email").filter(|e| e.contains('@')).cloned() else {
        return Err(refused("A valid email address is required"));
    };
    let mut prefs = [false; 6];
    read_prefs(form, &mut prefs);
    let id = d.id();
    d.contacts.push(Contact {
        id,
        client_id: client,
        firstname: form.get("firstname").cloned().unwrap_or_default(),
        lastname: form.get("lastname").cloned().unwrap_or_default(),
        email,
        prefs,
    });
    Ok(ok(json!({"contactid": id})))
}

/// `UpdateContact`: changes a contact, unless that breaks the domain e-mail rule.
fn update_contact(d: &mut Data, form: &HashMap<String, String>) -> Result<Response, Refused> {
    let Some(i) = num(form, "contactid").and_then(|id| d.contacts.iter().position(|c| c.id == id))
    else {
        return Err(refused("Contact ID Not Found"));
    };
    let before = d.contacts[i].clone();
    let c = &mut d.contacts[i];
    if let Some(v) = form.get("firstname") {
        c.firstname = v.clone();
    }
    if let Some(v) = form.get("lastname") {
        c.lastname = v.clone();
    }
    read_prefs(form, &mut c.prefs);
    let client = c.client_id;
    if !domain_rule_holds(d, client) {
        d.contacts[i] = before;
        return Err(refused(
            "You must have at least one email address enabled to receive domain related emails",
        ));
    }
    Ok(ok(json!({"contactid": d.contacts[i].id})))
}

/// `DeleteContact`: removes a contact, unless that breaks the domain e-mail rule.
fn delete_contact(d: &mut Data, form: &HashMap<String, String>) -> Result<Response, Refused> {
    let Some(i) = num(form, "contactid").and_then(|id| d.contacts.iter().position(|c| c.id == id))
    else {
        return Err(refused("Contact ID Not Found"));
    };
    let removed = d.contacts.remove(i);
    if !domain_rule_holds(d, removed.client_id) {
        d.contacts.insert(i, removed);
        return Err(refused(
            "You must have at least one email address enabled to receive domain related emails",
        ));
    }
    Ok(ok(json!({})))
}
