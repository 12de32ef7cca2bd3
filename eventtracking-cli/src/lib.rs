//! The library part of the `eventtracking` command: what can be tested (and
//! fuzzed) without running the binary.

pub mod input;
