//! Work spread over the cores, with the results in order: the outcome is the same as doing
//! the work item by item, only sooner.

/// Stack of each worker: the YAML reader recurses once per nesting level.
const STACK_BYTES: usize = 32 * 1024 * 1024;

/// `work(i)` for every `i < len` on up to one thread per core, at least `per_thread` items
/// each; results in index order, so the outcome is the same as one by one.
pub fn on_every_core<T: Send>(
    len: usize,
    per_thread: usize,
    work: impl Fn(usize) -> T + Sync,
) -> Vec<T> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(len / per_thread.max(1))
        .max(1);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let drain = || {
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if i >= len {
                break done;
            }
            done.push((i, work(i)));
        }
    };
    if threads == 1 {
        return drain().into_iter().map(|(_, r)| r).collect();
    }
    let mut results: Vec<(usize, T)> = std::thread::scope(|scope| {
        // The YAML reader recurses once per nesting level (bounded at 64); a roomy stack keeps
        // that safe on any thread, including a runtime's small-stacked ones.
        let workers: Vec<_> = (0..threads)
            .filter_map(|_| {
                std::thread::Builder::new()
                    .stack_size(STACK_BYTES)
                    .spawn_scoped(scope, drain)
                    .ok()
            })
            .collect();
        let mut all: Vec<(usize, T)> = workers
            .into_iter()
            .flat_map(|w| match w.join() {
                Ok(done) => done,
                // A panic in a worker is a bug; raise it here as it would have been raised
                // without the threads.
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect();
        // Should no thread start, what is left is done here.
        all.extend(drain());
        all
    });
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}
