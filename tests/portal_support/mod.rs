//! Starts the real `rolecall portal serve` on a loopback ephemeral port and talks HTTP to it.
//! Every answer is checked against the server's own `/openapi.json`, so the document cannot
//! drift from what the server sends.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

pub const OP: &str = "operator-test-token";

pub struct Server {
    child: Child,
    _stdout: BufReader<ChildStdout>,
    pub base: String,
    pub db: PathBuf,
    pub log: PathBuf,
    _dir: Option<tempfile::TempDir>,
    client: reqwest::Client,
    doc: Arc<Value>,
    validators: Mutex<HashMap<String, Arc<jsonschema::Validator>>>,
}

#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Resp {
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
    pub fn etag(&self) -> String {
        self.body["etag"].as_str().unwrap_or("").to_string()
    }
}

fn spawn(db: &Path, log: &Path, args: &[&str]) -> (Child, BufReader<ChildStdout>, String) {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_rolecall"))
        .args(["portal", "serve", "--db"])
        .arg(db)
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .env("ROLECALL_SANDBOX_TOKEN", OP)
        .env_remove("ROLECALL_NOW")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let base = line
        .trim()
        .strip_prefix("rolecall portal listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");
    (child, stdout, base)
}

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().build().unwrap()
}

impl Server {
    /// A fresh portal on a new database.
    pub async fn start(args: &[&str]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("p.db");
        let mut s = Server::start_on(&db, args).await;
        s._dir = Some(dir);
        s
    }

    /// A portal on an existing database file (restarts).
    pub async fn start_on(db: &Path, args: &[&str]) -> Server {
        let log = db.with_extension("log");
        let (child, stdout, base) = spawn(db, &log, args);
        let client = client();
        let doc: Value = client
            .get(format!("{base}/openapi.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        Server {
            child,
            _stdout: stdout,
            base,
            db: db.to_path_buf(),
            log,
            _dir: None,
            client,
            doc: Arc::new(doc),
            validators: Mutex::new(HashMap::new()),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, like `kill -9`.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn wait(&mut self) -> std::process::ExitStatus {
        self.child.wait().unwrap()
    }

    pub fn doc(&self) -> &Value {
        &self.doc
    }

    /// Sends a request and checks the answer against the OpenAPI document.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self
            .client
            .request(method.clone(), format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let sent = body.clone();
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
        };
        let resp = Resp {
            status,
            headers,
            body,
        };
        self.conforms(method.as_str(), path, &resp);
        if let Some(sent) = sent
            && (200..300).contains(&resp.status)
        {
            self.request_conforms(method.as_str(), path, &sent);
        }
        resp
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Resp {
        self.call("GET", path, token, None, &[]).await
    }
    pub async fn op_get(&self, path: &str) -> Resp {
        self.get(path, Some(OP)).await
    }
    pub async fn op(&self, method: &str, path: &str, body: Value) -> Resp {
        self.call(method, path, Some(OP), Some(body), &[]).await
    }

    /// Which path template of the document a concrete path matches.
    fn template(&self, path: &str) -> Option<String> {
        let path = path.split('?').next().unwrap_or(path);
        let parts: Vec<&str> = path.split('/').collect();
        let paths = self.doc["paths"].as_object()?;
        paths
            .keys()
            .find(|t| {
                let tp: Vec<&str> = t.split('/').collect();
                tp.len() == parts.len()
                    && tp
                        .iter()
                        .zip(&parts)
                        .all(|(a, b)| a == b || (a.starts_with('{') && !b.is_empty()))
            })
            .cloned()
    }

    fn validator(&self, key: String, schema: &Value) -> Arc<jsonschema::Validator> {
        let mut cache = self.validators.lock().unwrap();
        cache
            .entry(key)
            .or_insert_with(|| {
                let root = json!({
                    "$schema": "https://json-schema.org/draft/2020-12/schema",
                    "allOf": [schema.clone()],
                    "components": self.doc["components"].clone(),
                });
                Arc::new(jsonschema::validator_for(&root).unwrap())
            })
            .clone()
    }

    /// A request the server accepted must match the document's request schema too.
    fn request_conforms(&self, method: &str, path: &str, sent: &Value) {
        let Some(template) = self.template(path) else {
            return;
        };
        let m = method.to_lowercase();
        let schema = &self.doc["paths"][&template][&m]["requestBody"]["content"]["application/json"]
            ["schema"];
        assert!(
            !schema.is_null(),
            "{method} {template} takes no body in the document"
        );
        let validator = self.validator(format!("request {m} {template}"), schema);
        let errors: Vec<String> = validator.iter_errors(sent).map(|e| e.to_string()).collect();
        assert!(
            errors.is_empty(),
            "{method} {template}: the accepted body {sent} does not match /openapi.json: {errors:?}"
        );
    }

    fn conforms(&self, method: &str, path: &str, resp: &Resp) {
        let Some(template) = self.template(path) else {
            assert_eq!(resp.status, 404, "{method} {path} is not in the document");
            assert_eq!(resp.code(), "not_found");
            return;
        };
        let m = method.to_lowercase();
        let op = &self.doc["paths"][&template][&m];
        if op.is_null() {
            assert_eq!(
                resp.status, 405,
                "{method} {template} is not in the document"
            );
            return;
        }
        let status = resp.status.to_string();
        let response = if op["responses"][&status].is_null() {
            assert!(
                resp.status >= 400,
                "{method} {path} answered {} which the document does not list",
                resp.status
            );
            &op["responses"]["default"]
        } else {
            &op["responses"][&status]
        };
        let content = response["content"].as_object();
        let Some(content) = content else {
            assert!(resp.body.is_null(), "{method} {path}: unexpected body");
            return;
        };
        let (ct, media) = content.iter().next().unwrap();
        let got_ct = resp.header("content-type").unwrap_or_default();
        assert_eq!(&got_ct, ct, "{method} {path} {status}: content type");
        let key = format!("{m} {template} {status}");
        let validator = self.validator(key.clone(), &media["schema"]);
        let errors: Vec<String> = validator
            .iter_errors(&resp.body)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{key}: the answer does not match /openapi.json: {errors:?}\n{}",
            resp.body
        );
    }

    // --- set-up helpers ------------------------------------------------------------------

    pub async fn set_clock(&self, now: &str) {
        let r = self.op("POST", "/sandbox/clock", json!({"now": now})).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
    }

    pub async fn account(&self, cn: &str, zone: &str) {
        let r = self
            .op(
                "POST",
                "/v1/accounts",
                json!({"customerNumber": cn, "displayName": format!("Account {cn}"), "timeZone": zone}),
            )
            .await;
        assert_eq!(r.status, 201, "{:?}", r.body);
    }

    pub async fn put_member(&self, cn: &str, email: &str, roles: Value) -> Resp {
        self.op(
            "PUT",
            &format!("/v1/accounts/{cn}/members/{}", enc(email)),
            json!({ "roles": roles }),
        )
        .await
    }

    pub async fn user(&self, email: &str) {
        let r = self
            .op("POST", "/sandbox/users", json!({ "email": email }))
            .await;
        assert!(r.status == 200 || r.status == 201, "{:?}", r.body);
    }

    pub async fn token(&self, email: &str) -> String {
        let r = self
            .op("POST", "/sandbox/tokens", json!({ "email": email }))
            .await;
        assert_eq!(r.status, 201, "{:?}", r.body);
        r.body["token"].as_str().unwrap().to_string()
    }

    pub async fn outbox(&self) -> Vec<Value> {
        let r = self.op_get("/sandbox/outbox").await;
        r.body["items"].as_array().cloned().unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Percent-encodes an e-mail for a path.
pub fn enc(email: &str) -> String {
    email
        .replace('%', "%25")
        .replace('@', "%40")
        .replace('+', "%2B")
}

pub fn admin_roles() -> Value {
    json!([{"name": "cockpit-access"}, {"name": "customer-admin"}])
}
