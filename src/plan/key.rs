//! The keys the planner joins desired and observed state on: customer numbers and case-folded
//! e-mails.
//!
//! Every join and every sort on a join key goes through a [`JoinKey`], a type parameter of
//! the planner. The planner itself joins on plain `String`s; `complexity_tests` plans with a
//! key that counts its comparisons, to catch a join that has turned quadratic — a linear
//! search of the observed members for each desired one — without timing anything. A count is
//! the same on every machine and in every build profile, which a stopwatch is not.

/// What the planner joins and orders on: compares and orders exactly like the text it is made
/// from.
pub(super) trait JoinKey: Ord + Clone + Send + Sync {
    fn new(text: String) -> Self;
}

impl JoinKey for String {
    fn new(text: String) -> Self {
        text
    }
}
