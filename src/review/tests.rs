//! Unit tests of the pure parts of the review.
