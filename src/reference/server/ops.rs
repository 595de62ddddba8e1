//! Operational layers: the request log, latency, rate limits and injected faults.

use std::collections::HashMap;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::Response;

use super::{App, bearer, problem_response};
use crate::portal::ErrorCode;
use crate::reference::store::{Rejection, token_hash};

/// One line per request on stderr: method, path, status, duration. The path never carries a
/// token, and the query string (which could) is left out.
pub async fn log(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let started = Instant::now();
    let response = next.run(req).await;
    // Formatted first and written with one call: stderr is unbuffered, and the line must not
    // interleave with another request's.
    let line = format!(
        "{method} {path} {} {}ms\n",
        response.status().as_u16(),
        started.elapsed().as_millis()
    );
    let _ = std::io::Write::write_all(&mut std::io::stderr().lock(), line.as_bytes());
    response
}

/// Every error answer is `application/problem+json`: rejections produced by axum itself (a body
/// over the size limit, say) are rewritten into a problem with the matching code.
pub async fn problems(req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == b"application/problem+json");
    if !(status.is_client_error() || status.is_server_error()) || is_problem {
        return response;
    }
    let code = match status.as_u16() {
        401 => ErrorCode::Unauthenticated,
        403 => ErrorCode::Forbidden,
        404 => ErrorCode::NotFound,
        429 => ErrorCode::RateLimited,
        500..=599 => ErrorCode::Unavailable,
        _ => ErrorCode::Invalid,
    };
    let text = axum::body::to_bytes(response.into_body(), 64 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let detail = if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("the request failed")
            .to_string()
    } else {
        text
    };
    problem_response(&Rejection::new(status.as_u16(), code, detail))
}

/// `--latency MS`: every answer waits this long.
pub async fn latency(State(app): State<App>, req: Request, next: Next) -> Response {
    let ms = app.inner.config.latency_ms;
    let response = next.run(req).await;
    if ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
    response
}

/// A token bucket per API token.
#[derive(Default)]
pub struct Buckets(HashMap<Vec<u8>, Bucket>);

struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Buckets {
    /// Takes one request from the bucket of `key`; `Err(seconds)` to wait when it is empty.
    fn take(&mut self, key: Vec<u8>, per_second: u32) -> Result<(), u64> {
        let rate = f64::from(per_second.max(1));
        let now = Instant::now();
        let bucket = self.0.entry(key).or_insert(Bucket {
            tokens: rate,
            last: now,
        });
        let elapsed = now.duration_since(bucket.last).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(rate);
        bucket.last = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - bucket.tokens) / rate).ceil().max(1.0) as u64)
        }
    }
}

/// `--rate-limit N`: past N requests per second per token, 429 with `Retry-After`.
pub async fn rate_limit(State(app): State<App>, req: Request, next: Next) -> Response {
    if let Some(n) = app.inner.config.rate_limit {
        // Keyed by the token's hash, never the token; requests without one share a bucket.
        let key = bearer(req.headers()).map(token_hash).unwrap_or_default();
        let verdict = match app.inner.buckets.lock() {
            Ok(mut b) => b.take(key, n),
            Err(_) => Ok(()),
        };
        if let Err(wait) = verdict {
            let mut response = problem_response(&Rejection::new(
                429,
                ErrorCode::RateLimited,
                format!("more than {n} requests per second with this token; retry after {wait} s"),
            ));
            if let Ok(v) = HeaderValue::from_str(&wait.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return response;
        }
    }
    next.run(req).await
}

fn is_write(method: &Method, path: &str) -> bool {
    path.starts_with("/v1/")
        && matches!(
            *method,
            Method::POST | Method::PUT | Method::PATCH | Method::DELETE
        )
}

/// Whether this request draws a fault, with probability `rate`.
fn roll(rate: f64) -> bool {
    use ring::rand::SecureRandom;
    if rate <= 0.0 {
        return false;
    }
    if rate >= 1.0 {
        return true;
    }
    let mut b = [0u8; 4];
    if ring::rand::SystemRandom::new().fill(&mut b).is_err() {
        return false;
    }
    f64::from(u32::from_le_bytes(b)) / f64::from(u32::MAX) < rate
}

fn unavailable(after_commit: bool) -> Response {
    let detail = if after_commit {
        "the portal is unavailable (injected fault after the change was made)"
    } else {
        "the portal is unavailable (injected fault); nothing was changed, retry later"
    };
    problem_response(&Rejection::new(503, ErrorCode::Unavailable, detail))
}

/// `--fault-rate P`: a share P of writes answer 503, before the write or, with
/// `--fault-after-commit`, after it committed (the client never hears of the change).
pub async fn faults(State(app): State<App>, req: Request, next: Next) -> Response {
    let config = &app.inner.config;
    if !is_write(req.method(), req.uri().path()) || !roll(config.fault_rate) {
        return next.run(req).await;
    }
    if !config.fault_after_commit {
        return unavailable(false);
    }
    let response = next.run(req).await;
    if response.status().is_success() {
        unavailable(true)
    } else {
        response
    }
}
