//! The reference portal over HTTP (SPEC §4 and §5): an axum server over the [`Store`].
//!
//! The store enforces every rule; this layer authenticates, parses, pages, replays
//! idempotent POSTs, and adds what operations need: rate limits, injected faults, latency and
//! one log line per request.

/// Crate-visible for the fuzz target, which calls the handlers without a socket.
pub(crate) mod handlers;
pub mod openapi;
mod ops;
mod request;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use jiff::Timestamp;

use crate::reference::store::{Principal, Rejection, Store, constant_time_eq, token_hash};

/// Operational knobs of `rolecall portal serve`.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// Requests per second per token before answering 429.
    pub rate_limit: Option<u32>,
    /// Share (0..=1) of write requests on `/v1` that fail with 503.
    pub fault_rate: f64,
    /// The injected 503 comes after the write committed instead of before it.
    pub fault_after_commit: bool,
    /// Delay of every answer, in milliseconds.
    pub latency_ms: u64,
}

/// Shared state of the server.
#[derive(Clone)]
pub struct App {
    inner: Arc<Inner>,
}

struct Inner {
    /// The store's own thread takes jobs from here, one after another: SQLite calls block, and
    /// one thread that owns the store serializes the writes without a contended lock.
    jobs: std::sync::mpsc::Sender<Job>,
    /// Reads (lists and gets) go to a second thread with a read-only connection of its own, so
    /// that a bulk read does not wait behind writes or other reads; `None` for a store in
    /// memory, whose reads go to the store's thread.
    reads: Option<std::sync::mpsc::Sender<ReadJob>>,
    config: Config,
    buckets: Mutex<ops::Buckets>,
    /// Principals of the tokens already found in the store, by the SHA-256 of the token (never
    /// the token). Tokens are never withdrawn or changed, so a token once valid stays valid for
    /// the same principal, and a request need not wait for the store to authenticate.
    verified: RwLock<HashMap<Vec<u8>, Principal>>,
}

/// Work for the store's thread.
type Job = Box<dyn FnOnce(&mut Store) + Send>;

/// Work for the reading thread.
type ReadJob = Box<dyn FnOnce(&Store) + Send>;

/// At most this many verified tokens are remembered; past it the memory starts again.
const VERIFIED_TOKENS: usize = 10_000;

impl App {
    /// Starts the store's thread and, for a store on disk, the reading thread; they end when
    /// the last clone of the `App` is dropped.
    pub fn new(store: Store, config: Config) -> std::io::Result<App> {
        let reads = match store
            .reader()
            .map_err(|e| std::io::Error::other(crate::reference::store::with_causes(&e)))?
        {
            Some(reader) => {
                let (reads, queue) = std::sync::mpsc::channel::<ReadJob>();
                std::thread::Builder::new()
                    .name("portal-reader".into())
                    .spawn(move || {
                        for job in queue {
                            // As on the store's thread: the request answers 500, the rest go on.
                            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                                reader.read(|store| job(store))
                            }));
                        }
                    })?;
                Some(reads)
            }
            None => None,
        };
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("portal-store".into())
            .spawn(move || {
                let mut store = store;
                for job in queue {
                    // A panic cannot leave a half-made change behind: every write is a
                    // transaction, rolled back when dropped. The request that panicked
                    // answers 500 (its answer channel is dropped); the others go on.
                    let _ =
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&mut store)));
                }
            })?;
        Ok(App {
            inner: Arc::new(Inner {
                jobs,
                reads,
                config,
                buckets: Mutex::new(ops::Buckets::default()),
                verified: RwLock::new(HashMap::new()),
            }),
        })
    }

    /// Runs `f` on the store's thread and waits for its answer.
    async fn run<T, F>(&self, f: F) -> Result<T, Rejection>
    where
        T: Send + 'static,
        F: FnOnce(&mut Store, Timestamp) -> Result<T, Rejection> + Send + 'static,
    {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |store| {
            let now = store.now();
            let _ = answer.send(f(store, now));
        });
        self.inner.jobs.send(job).map_err(|_| store_failed())?;
        answered.await.map_err(|_| store_failed())?
    }

    /// Runs the read `f` on the reading thread (the store's thread for a store in memory) and
    /// waits for its answer.
    async fn read<T, F>(&self, f: F) -> Result<T, Rejection>
    where
        T: Send + 'static,
        F: FnOnce(&Store, Timestamp) -> Result<T, Rejection> + Send + 'static,
    {
        let Some(reads) = &self.inner.reads else {
            return self.run(move |store, now| f(store, now)).await;
        };
        let (answer, answered) = tokio::sync::oneshot::channel();
        let job: ReadJob = Box::new(move |store| {
            let now = store.now();
            let _ = answer.send(f(store, now));
        });
        reads.send(job).map_err(|_| store_failed())?;
        answered.await.map_err(|_| store_failed())?
    }

    /// The principal of the request's bearer token; 401 without a valid one.
    async fn principal(&self, headers: &HeaderMap) -> Result<Principal, Rejection> {
        let Some(token) = bearer(headers) else {
            return Err(Rejection::unauthenticated(
                "send an API token as \"Authorization: Bearer TOKEN\"",
            ));
        };
        let hash = token_hash(token);
        if let Some(p) = self.verified(&hash) {
            return Ok(p);
        }
        let token = token.to_string();
        let p = self
            .run(move |s, _| s.authenticate(&token))
            .await?
            .ok_or_else(|| Rejection::unauthenticated("the API token is not valid"))?;
        if let Ok(mut verified) = self.inner.verified.write() {
            if verified.len() >= VERIFIED_TOKENS {
                verified.clear();
            }
            verified.insert(hash, p.clone());
        }
        Ok(p)
    }

    /// The principal of a token verified before, by its hash. The hash found is compared with
    /// the request's in constant time, as the store does.
    fn verified(&self, hash: &[u8]) -> Option<Principal> {
        let verified = self.inner.verified.read().ok()?;
        let (stored, p) = verified.get_key_value(hash)?;
        constant_time_eq(stored, hash).then(|| p.clone())
    }
}

/// The answer when the store's thread dropped a request (it panicked).
fn store_failed() -> Rejection {
    Rejection::new(
        500,
        crate::portal::ErrorCode::Unavailable,
        "the portal failed while handling the request",
    )
}

/// The bearer token of a request, if it has one.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// A refusal as `application/problem+json`.
pub struct ApiError(pub Rejection);

impl From<Rejection> for ApiError {
    fn from(r: Rejection) -> ApiError {
        ApiError(r)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        problem_response(&self.0)
    }
}

pub fn problem_response(r: &Rejection) -> Response {
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::to_string(&r.to_problem()).unwrap_or_else(|_| "{}".into());
    (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        body,
    )
        .into_response()
}

/// The router with every endpoint and the operational layers.
pub fn router(app: App) -> Router {
    use handlers as h;
    let routes = Router::new()
        .route("/v1/whoami", get(h::whoami))
        .route("/v1/catalog", get(h::catalog))
        .route(
            "/v1/accounts",
            get(h::list_accounts).post(h::create_account),
        )
        .route(
            "/v1/accounts/{cn}",
            get(h::get_account).patch(h::update_account),
        )
        .route("/v1/accounts/{cn}/members", get(h::list_account_members))
        .route(
            "/v1/accounts/{cn}/members/{email}",
            get(h::get_member)
                .put(h::put_member)
                .delete(h::delete_member),
        )
        .route(
            "/v1/accounts/{cn}/members/{email}/invitation",
            post(h::invite).delete(h::cancel_invitation),
        )
        .route("/v1/members", get(h::list_members))
        .route("/v1/accounts/{cn}/contacts", get(h::list_account_contacts))
        .route(
            "/v1/accounts/{cn}/contacts/{email}",
            put(h::put_contact).delete(h::delete_contact),
        )
        .route("/v1/contacts", get(h::list_contacts))
        .route("/v1/accounts/{cn}/audit", get(h::audit))
        .route("/sandbox/tokens", post(h::issue_token))
        .route("/sandbox/users", post(h::create_user))
        .route("/sandbox/invitations/{id}/accept", post(h::accept))
        .route("/sandbox/outbox", get(h::outbox))
        .route("/sandbox/notifications", post(h::send_notification))
        .route(
            "/sandbox/clock",
            get(h::get_clock).post(h::set_clock).delete(h::reset_clock),
        )
        .route("/openapi.json", get(h::openapi))
        .fallback(h::not_found)
        .method_not_allowed_fallback(h::method_not_allowed)
        .with_state(app.clone());
    routes
        .layer(axum::middleware::from_fn(ops::problems))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            ops::faults,
        ))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            ops::rate_limit,
        ))
        .layer(axum::middleware::from_fn_with_state(app, ops::latency))
        .layer(axum::middleware::from_fn(ops::log))
}

/// Serves until SIGTERM or ctrl-c, then finishes the requests in flight.
pub async fn serve(listener: tokio::net::TcpListener, app: App) -> std::io::Result<()> {
    axum::serve(listener, router(app))
        .with_graceful_shutdown(shutdown_signal())
        .await
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
