//! The reference portal (SPEC §5): the portal API v1 implemented on SQLite. `store` is the
//! data and every rule the portal enforces (last admin, etags, idempotency, invitations);
//! `server` serves it over HTTP with axum (`rolecall portal serve`) and describes it in
//! OpenAPI; `sandbox` is the same store used in-process behind the `Portal` trait, for
//! `sandbox:FILE` URLs. It depends on `portal` (the trait and the wire types), never the
//! other way round.

pub mod sandbox;
pub mod server;
pub mod store;
