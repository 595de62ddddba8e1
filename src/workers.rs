//! The process's one set of worker threads for CPU-bound work: reading and checking manifests
//! and planning a large fleet.
//!
//! One set, because every thread that allocates used to get a glibc malloc arena of its own,
//! whose freed memory no other thread reuses (a second pool had the fleet benchmark's
//! zero-drift plan peak at 276 MiB RSS for the 162 MiB of peak heap that 216 MiB had held). The
//! binary now uses mimalloc (src/main.rs), which does not keep memory per thread that way; the
//! portal's pages are decoded on tokio's blocking threads (`portal::http`), so that they are
//! not queued behind the manifests when the portal is read while those are parsed.

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};

/// Stack of each worker. The YAML readers recurse once per nesting level and stop at 64 levels
/// (the simple reader at 48), but in a debug build those 64 levels of a block mapping take more
/// than rayon's default 2 MiB: `deeply_nested_files_are_read_on_the_worker_threads`.
const STACK_BYTES: usize = 32 * 1024 * 1024;

/// The worker threads (one per core), built once per process when first used: their stacks are
/// address space, which a process under `ulimit -v` may not have to spare. `None` should no
/// thread start: the work is then done on the calling thread.
pub fn pool() -> Option<&'static rayon::ThreadPool> {
    static POOL: std::sync::OnceLock<Option<rayon::ThreadPool>> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .thread_name(|i| format!("rolecall-worker-{i}"))
            .stack_size(STACK_BYTES)
            .build()
            .ok()
    })
    .as_ref()
}

/// Runs `work` inside the pool, so that its `par_iter`s use the workers; on the calling
/// thread when there is no pool.
pub fn install<R: Send>(work: impl FnOnce() -> R + Send) -> R {
    match pool() {
        Some(pool) => pool.install(work),
        None => work(),
    }
}

/// Runs `work` on a worker without holding up the async runtime's thread, and gives its
/// result; `None` only if the worker went away before answering. A panic in `work` is resumed
/// in the caller, as `spawn_blocking` would.
pub async fn run<R: Send + 'static>(work: impl FnOnce() -> R + Send + 'static) -> Option<R> {
    let Some(pool) = pool() else {
        return Some(work());
    };
    let (done, answer) = tokio::sync::oneshot::channel();
    pool.spawn(move || {
        // The receiver may have been dropped (the caller was cancelled): nothing to tell.
        let _ = done.send(catch_unwind(AssertUnwindSafe(work)));
    });
    match answer.await {
        Ok(Ok(result)) => Some(result),
        Ok(Err(panic)) => resume_unwind(panic),
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn work_runs_on_a_worker_and_its_panic_reaches_the_caller() {
        let name = run(|| std::thread::current().name().map(str::to_owned)).await;
        assert!(
            name.flatten()
                .is_some_and(|n| n.starts_with("rolecall-worker-"))
        );
        let caught = tokio::spawn(run(|| -> u8 { panic!("boom") })).await;
        assert!(caught.is_err_and(|e| e.is_panic()));
        assert_eq!(install(|| 2 + 2), 4);
    }
}
