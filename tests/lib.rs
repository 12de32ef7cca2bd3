//! Cross-crate integration tests of eventtracking (see `tests/*.rs`).
//!
//! The README's Rust examples run here as doctests.

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
