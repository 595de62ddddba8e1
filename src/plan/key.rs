//! The keys the planner joins desired and observed state on: customer numbers and case-folded
//! e-mails.
//!
//! Every comparison and every hash of a join key goes through [`Key`], so that a test can count
//! them and catch a join that has turned quadratic — a linear search of the observed members
//! for each desired one — without timing anything (`complexity_tests`). A count is the same on
//! every machine and in every build profile, which a stopwatch is not. Outside tests the
//! counter does not exist and `Key` compiles to the comparison of the text it wraps.

use std::cmp::Ordering;
use std::hash::{Hash, Hasher};

/// A join key: compares, orders and hashes exactly like the value it wraps, and is counted
/// doing so in tests.
#[derive(Debug, Clone)]
pub(super) struct Key<T>(pub(super) T);

impl<T: PartialEq> PartialEq for Key<T> {
    fn eq(&self, other: &Self) -> bool {
        counted();
        self.0 == other.0
    }
}

impl<T: Eq> Eq for Key<T> {}

impl<T: Ord> PartialOrd for Key<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<T: Ord> Ord for Key<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        counted();
        self.0.cmp(&other.0)
    }
}

impl<T: Hash> Hash for Key<T> {
    /// A hash map finds a key with one hash and about one comparison: the hash is counted like
    /// a comparison, so that a hash join counts as linear, as it is.
    fn hash<H: Hasher>(&self, state: &mut H) {
        counted();
        self.0.hash(state);
    }
}

#[cfg(test)]
thread_local! {
    /// Per thread, because the test harness runs tests side by side and the planner is
    /// single-threaded: one test's planning never shows in another's count.
    static COMPARISONS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

#[inline(always)]
fn counted() {
    #[cfg(test)]
    COMPARISONS.with(|c| c.set(c.get() + 1));
}

/// Runs `f` and returns what it returns with the number of join-key comparisons and hashes it
/// made on this thread.
#[cfg(test)]
pub(super) fn comparisons_in<R>(f: impl FnOnce() -> R) -> (R, u64) {
    let before = COMPARISONS.with(std::cell::Cell::get);
    let result = f();
    let after = COMPARISONS.with(std::cell::Cell::get);
    (result, after - before)
}

/// The comparisons a piece of planning made, taken out of the count of the thread it ran on
/// and added to the count of the thread that collects its result: planning spread over
/// worker threads counts exactly as planning on one. Empty outside tests.
pub(super) struct Carried(#[cfg(test)] u64);

/// Runs `f`, taking the comparisons it makes out of this thread's count to be
/// [`Carried::land`]ed where its result is collected (on this thread or another).
pub(super) fn carried<R>(f: impl FnOnce() -> R) -> (R, Carried) {
    #[cfg(test)]
    {
        let (result, n) = comparisons_in(f);
        COMPARISONS.with(|c| c.set(c.get() - n));
        (result, Carried(n))
    }
    #[cfg(not(test))]
    (f(), Carried())
}

impl Carried {
    /// Adds the comparisons to this thread's count.
    pub(super) fn land(self) {
        #[cfg(test)]
        COMPARISONS.with(|c| c.set(c.get() + self.0));
    }
}
