//! The library part of the `eventtracking` command: what can be tested (and
//! fuzzed) without running the binary, and the relay (`eventtracking relay`:
//! Kafka → a tracker's backends), which drives the delivery engine and so
//! lives here rather than in the Kafka backend crate.

pub mod import;
pub mod input;
pub mod relay;
