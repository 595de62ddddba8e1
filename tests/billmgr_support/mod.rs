//! A BILLmanager 6 API emulator for the tests, written from the public sources (ISPsystem's
//! API description and a production client area, see docs/billmanager.md): an axum server on
//! 127.0.0.1:0 with one client account in memory, answering form POSTs to `/billmgr` with
//! `out=json`. Its quirks are the real API's as far as the sources show them: errors with
//! HTTP 200 as `doc.error` (`$type`, `$object`, `msg.$`), messages in Russian whatever `lang`
//! says (and echoing the login name), values wrapped as `{"$": v}`, a list of one sent as the
//! one object, sessions that can be made to end in the middle of a run, and rights that
//! cannot change while full access is on. Every password e-mail lands in an outbox: sent once,
//! the first time a user has access.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use axum::extract::{Form, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};

/// The login of the account's main user (not its e-mail: both must stay out of outputs).
pub const USERNAME: &str = "acme-login-7731";
pub const PASSWORD: &str = "billmgr-pass-5e1f9-test";
pub const OWNER_EMAIL: &str = "owner@acme.example";

/// The rights tree: categories and the functions under them (the emulator's own copy).
pub const TREE: [(&str, &[&str]); 3] = [
    ("services", &["vds", "dedic", "domain"]),
    ("finance", &["payment", "expense"]),
    ("support", &["clientticket"]),
];

#[derive(Debug, Clone)]
pub struct User {
    pub id: u64,
    pub email: String,
    pub realname: String,
    pub enabled: bool,
    pub full: bool,
    pub main: bool,
    pub rights: BTreeMap<String, bool>,
    /// The password e-mail went out (once, the first time the user had access).
    pub mailed: bool,
    /// The password the user was created with (to check it never shows).
    pub password: String,
}

impl User {
    fn has_access(&self) -> bool {
        self.full || self.rights.values().any(|a| *a)
    }
}

#[derive(Debug, Default)]
pub struct Data {
    next_id: u64,
    pub users: Vec<User>,
    sessions: HashMap<String, u64>,
    /// Every password e-mail, by recipient.
    pub outbox: Vec<String>,
    /// Every request: its func and raw form.
    pub requests: Vec<(String, HashMap<String, String>)>,
    /// The session ends when a request for this func arrives (answered `access`).
    pub expire_on: Option<String>,
    /// Every session is refused at once, fresh or not.
    pub refuse_sessions: bool,
    /// This func is carried out, then answered with 503: the client never hears of it.
    pub fail_after_commit: Option<String>,
}

impl Data {
    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn mail_if_first_access(&mut self, idx: usize) {
        let u = &mut self.users[idx];
        if !u.mailed && u.has_access() {
            u.mailed = true;
            let to = u.email.clone();
            self.outbox.push(to);
        }
    }

    /// Funcs that change something, called so far.
    pub fn writes(&self) -> Vec<String> {
        self.requests
            .iter()
            .filter(|(func, form)| is_write(func, form))
            .map(|(func, _)| func.clone())
            .collect()
    }

    pub fn count(&self, func: &str) -> usize {
        self.requests.iter().filter(|(f, _)| f == func).count()
    }
}

fn is_write(func: &str, form: &HashMap<String, String>) -> bool {
    match func {
        "user.edit" => form.get("sok").is_some_and(|s| s == "ok"),
        "user.delete"
        | "user.suspend"
        | "user.resume"
        | "rights2.user.resume"
        | "rights2.user.suspend" => true,
        _ => false,
    }
}

fn empty_rights() -> BTreeMap<String, bool> {
    TREE.iter()
        .flat_map(|(_, fs)| fs.iter().map(|f| (f.to_string(), false)))
        .collect()
}

/// A running emulator. The server lives as long as the test process.
pub struct Billmgr {
    pub addr: std::net::SocketAddr,
    pub data: Arc<Mutex<Data>>,
}

impl Billmgr {
    /// Starts an emulator whose account has its main user, with full access.
    pub fn start() -> Billmgr {
        let data = Arc::new(Mutex::new(Data::default()));
        let state = data.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let app = Router::new().route("/billmgr", post(api)).with_state(state);
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(listener.local_addr().unwrap()).unwrap();
                axum::serve(listener, app).await.unwrap();
            });
        });
        let addr = rx.recv().unwrap();
        let b = Billmgr { addr, data };
        {
            let mut d = b.lock();
            let id = d.id();
            d.users.push(User {
                id,
                email: OWNER_EMAIL.into(),
                realname: "Acme Owner".into(),
                enabled: true,
                full: true,
                main: true,
                rights: empty_rights(),
                mailed: true,
                password: PASSWORD.into(),
            });
        }
        b
    }

    /// The portal URL for `--portal`.
    pub fn portal_url(&self) -> String {
        format!("billmgr+http://{}/billmgr", self.addr)
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, Data> {
        self.data.lock().unwrap()
    }

    /// An additional user made in BILLmanager by hand; its password e-mail counts as sent.
    pub fn add_user(&self, email: &str, rights: &[&str], full: bool) -> u64 {
        let mut d = self.lock();
        let id = d.id();
        let mut r = empty_rights();
        for f in rights {
            r.insert(f.to_string(), true);
        }
        d.users.push(User {
            id,
            email: email.into(),
            realname: email.split('@').next().unwrap_or("").into(),
            enabled: true,
            full,
            main: false,
            rights: r,
            mailed: true,
            password: String::new(),
        });
        id
    }

    pub fn user(&self, email: &str) -> Option<User> {
        self.lock()
            .users
            .iter()
            .find(|u| u.email.eq_ignore_ascii_case(email))
            .cloned()
    }

    /// The functions the user is allowed, sorted.
    pub fn rights(&self, email: &str) -> Vec<String> {
        self.user(email)
            .map(|u| {
                u.rights
                    .iter()
                    .filter(|(_, a)| **a)
                    .map(|(f, _)| f.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn mails_to(&self, email: &str) -> usize {
        self.lock().outbox.iter().filter(|t| *t == email).count()
    }

    pub fn suspend(&self, email: &str) {
        let mut d = self.lock();
        if let Some(u) = d.users.iter_mut().find(|u| u.email == email) {
            u.enabled = false;
        }
    }

    /// Every password rolecall generated (to check that none shows anywhere).
    pub fn generated_passwords(&self) -> Vec<String> {
        self.lock()
            .users
            .iter()
            .filter(|u| !u.main && !u.password.is_empty())
            .map(|u| u.password.clone())
            .collect()
    }

    /// Every session id handed out.
    pub fn session_ids(&self) -> Vec<String> {
        self.lock()
            .requests
            .iter()
            .filter_map(|(_, f)| f.get("auth").cloned())
            .collect()
    }
}

fn v(s: impl Into<String>) -> Value {
    json!({"$": s.into()})
}

fn on(b: bool) -> Value {
    v(if b { "on" } else { "off" })
}

fn doc(body: Value) -> Response {
    Json(json!({"doc": body})).into_response()
}

fn error(kind: &str, object: &str, msg: &str) -> Response {
    doc(json!({"error": {"$type": kind, "$object": object, "msg": {"$": msg}}}))
}

/// A list as BILLmanager sends it: an array, but one item alone as the object.
fn elems(items: Vec<Value>) -> Value {
    match items.len() {
        0 => json!({}),
        1 => json!({"elem": items.into_iter().next().unwrap_or(Value::Null)}),
        _ => json!({"elem": items}),
    }
}

fn ids(form: &HashMap<String, String>) -> Vec<u64> {
    form.get("elid")
        .map(|e| {
            e.split(", ")
                .filter_map(|i| i.trim().parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

async fn api(
    State(data): State<Arc<Mutex<Data>>>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let func = form.get("func").cloned().unwrap_or_default();
    let mut d = data.lock().unwrap();
    d.requests.push((func.clone(), form.clone()));
    if form.get("out").map(String::as_str) != Some("json") {
        return (StatusCode::OK, "<doc/>").into_response();
    }
    if func == "auth" {
        let user = form.get("username").cloned().unwrap_or_default();
        if user != USERNAME || form.get("password").map(String::as_str) != Some(PASSWORD) {
            // Localized, and echoing the login name: the client must show neither.
            return error(
                "auth",
                "",
                &format!("Неверное имя пользователя {user} или пароль"),
            );
        }
        let main = d.users.iter().find(|u| u.main).map(|u| u.id).unwrap_or(0);
        let sid = format!(
            "sess{:016x}",
            d.next_id * 7919 + d.requests.len() as u64 * 104729
        );
        d.sessions.insert(sid.clone(), main);
        return doc(json!({"auth": {"$id": sid, "$": sid}}));
    }
    let session_ok = form.get("auth").is_some_and(|a| d.sessions.contains_key(a));
    if !session_ok || d.refuse_sessions {
        return error("access", "", "Сеанс завершён, войдите снова");
    }
    if d.expire_on.as_deref() == Some(func.as_str()) {
        d.expire_on = None;
        d.sessions.clear();
        return error("access", "", "Сеанс завершён, войдите снова");
    }
    let answer = handle(&mut d, &func, &form);
    if d.fail_after_commit.as_deref() == Some(func.as_str()) && is_write(&func, &form) {
        d.fail_after_commit = None;
        return (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable").into_response();
    }
    answer
}

fn handle(d: &mut Data, func: &str, form: &HashMap<String, String>) -> Response {
    match func {
        "user" => user_list(d),
        "user.edit" if !form.contains_key("elid") => user_create(d, form),
        "user.edit" => user_edit(d, form),
        "user.delete" | "user.suspend" | "user.resume" => user_state(d, func, form),
        "rights2.user" => rights_list(d, form),
        "rights2.user.resume" | "rights2.user.suspend" => rights_toggle(d, func, form),
        _ => error("missed", "func", "Функция не найдена"),
    }
}

/// `user`: the list of users.
fn user_list(d: &Data) -> Response {
    let items = d
        .users
        .iter()
        .map(|u| {
            json!({"id": v(u.id.to_string()), "email": v(u.email.clone()),
                "realname": v(u.realname.clone()), "enabled": on(u.enabled),
                "default_access_allow": on(u.full), "self": on(u.main)})
        })
        .collect();
    doc(elems(items))
}

/// `user.edit` without `elid`: creates a user.
fn user_create(d: &mut Data, form: &HashMap<String, String>) -> Response {
    let get = |k: &str| form.get(k).cloned().unwrap_or_default();
    let sok = get("sok") == "ok";
    if !sok {
        return doc(json!({"email": v(""), "realname": v("")}));
    }
    let email = get("email");
    if email.is_empty() {
        return error("missed", "email", "Поле не заполнено");
    }
    if get("realname").is_empty() {
        return error("missed", "realname", "Поле не заполнено");
    }
    if get("passwd").is_empty() || get("passwd") != get("confirm") {
        return error("value", "confirm", "Пароли не совпадают");
    }
    if d.users.iter().any(|u| u.email.eq_ignore_ascii_case(&email)) {
        return error(
            "exists",
            "email",
            "Пользователь с таким адресом уже существует",
        );
    }
    let id = d.id();
    d.users.push(User {
        id,
        email,
        realname: get("realname"),
        enabled: true,
        full: false,
        main: false,
        rights: empty_rights(),
        mailed: false,
        password: get("passwd"),
    });
    doc(json!({"id": v(id.to_string()), "ok": {}}))
}

/// `user.edit` with `elid`: shows or changes a user.
fn user_edit(d: &mut Data, form: &HashMap<String, String>) -> Response {
    let sok = form.get("sok").cloned().unwrap_or_default() == "ok";
    let Some(idx) = ids(form)
        .first()
        .and_then(|id| d.users.iter().position(|u| u.id == *id))
    else {
        return error("missed", "elid", "Объект не найден");
    };
    if !sok {
        let u = &d.users[idx];
        let mut email = v(u.email.clone());
        let mut realname = v(u.realname.clone());
        if u.main {
            email["$readonly"] = json!("yes");
            realname["$readonly"] = json!("yes");
        }
        return doc(json!({"elid": v(u.id.to_string()), "email": email,
            "realname": realname, "default_access_allow": on(u.full)}));
    }
    if d.users[idx].main {
        return error("value", "elid", "Главного пользователя изменить нельзя");
    }
    if let Some(flag) = form.get("default_access_allow") {
        d.users[idx].full = flag == "on";
    }
    if let Some(name) = form.get("realname") {
        d.users[idx].realname = name.clone();
    }
    d.mail_if_first_access(idx);
    doc(json!({"ok": {}}))
}

/// `user.delete`, `user.suspend`, `user.resume`.
fn user_state(d: &mut Data, func: &str, form: &HashMap<String, String>) -> Response {
    let wanted = ids(form);
    if wanted.is_empty() {
        return error("missed", "elid", "Объект не найден");
    }
    for id in &wanted {
        match d.users.iter().find(|u| u.id == *id) {
            None => return error("missed", "elid", "Объект не найден"),
            Some(u) if u.main => {
                return error("value", "elid", "Главного пользователя изменить нельзя");
            }
            Some(_) => {}
        }
    }
    match func {
        "user.delete" => d.users.retain(|u| !wanted.contains(&u.id)),
        _ => {
            for u in d.users.iter_mut().filter(|u| wanted.contains(&u.id)) {
                u.enabled = func == "user.resume";
            }
        }
    }
    doc(json!({"ok": {}}))
}

/// `rights2.user`: the rights tree of a user.
fn rights_list(d: &Data, form: &HashMap<String, String>) -> Response {
    let Some(u) = ids(form)
        .first()
        .and_then(|id| d.users.iter().find(|u| u.id == *id))
    else {
        return error("missed", "elid", "Объект не найден");
    };
    let mut rows = Vec::new();
    for (cat, funcs) in TREE {
        rows.push(json!({"name": v(cat), "caption": v(format!("Раздел {cat}"))}));
        for f in funcs {
            let active = u.rights.get(*f).copied().unwrap_or(false);
            rows.push(json!({"name": v(*f), "caption": v(format!("Функция {f}")),
                "active": on(active), "hassubitems": on(true)}));
        }
    }
    doc(elems(rows))
}

/// `rights2.user.resume`, `rights2.user.suspend`: grants or withdraws one function.
fn rights_toggle(d: &mut Data, func: &str, form: &HashMap<String, String>) -> Response {
    let get = |k: &str| form.get(k).cloned().unwrap_or_default();
    let name = get("elid");
    let plid = get("plid");
    let Some((user, kind)) = plid.split_once('/') else {
        return error("missed", "plid", "Объект не найден");
    };
    if name.split('.').next() != Some(kind) {
        return error("value", "plid", "Неверный параметр");
    }
    let Some(idx) = user
        .parse::<u64>()
        .ok()
        .and_then(|id| d.users.iter().position(|u| u.id == id))
    else {
        return error("missed", "plid", "Объект не найден");
    };
    if !d.users[idx].rights.contains_key(&name) {
        return error("missed", "elid", "Функция не найдена");
    }
    if d.users[idx].full {
        return error(
            "value",
            "default_access_allow",
            "Права нельзя менять при полном доступе",
        );
    }
    d.users[idx]
        .rights
        .insert(name, func == "rights2.user.resume");
    d.mail_if_first_access(idx);
    doc(json!({"ok": {}}))
}
