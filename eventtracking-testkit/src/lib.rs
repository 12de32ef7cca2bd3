//! # eventtracking-testkit
//!
//! Test infrastructure of the eventtracking workspace (`publish = false`,
//! a dev-dependency only):
//!
//! - the seed example and what it must produce ([`emit_seed_example`],
//!   [`seed_example_events`], [`seed_example_stream`]);
//! - the backend conformance suite: the [`ConformanceTarget`] trait a
//!   backend's test implements, the [`cases`], and
//!   [`conformance_tests!`], which makes one `#[test]` per case;
//! - [`capture_logs`], to check that no secret is logged;
//! - the test servers' addresses ([`servers`]) and [`PausedProcess`], the
//!   `kill -STOP` guard that simulates a server outage;
//! - small helpers: [`fast_delivery`], [`unique_name`], [`WAIT`].
//!
//! It depends on the `eventtracking` facade without backends (features
//! `testing` and `derive` only) and never on a backend crate: a backend's
//! tests would otherwise link the backend twice and register its engine
//! twice.
//!
//! # The conformance suite
//!
//! Every backend passes the same cases, each a function of [`cases`] and a
//! test named after it:
//!
//! | case | what it checks |
//! |---|---|
//! | `seed_round_trip` | the seed example emitted through a tracker reads back from the store equal to what was sent |
//! | `idempotent_resend` | the same event ids sent twice are delivered; the store ends with each id once, or, for append-only stores ([`Idempotence::ReadersDeduplicate`]), with copies equal to the event that de-duplicate to the events sent |
//! | `partial_failure` | one event of a batch refused by the store is dead-lettered (not retried) and the others are stored |
//! | `oversized_event` | an event over the size limit is dead-lettered whole, its batch neighbours stored |
//! | `outage` | the store down for 10 s (a paused server, a directory gone) while 1,000 events are emitted: all delivered, each stored once |
//! | `secrets` | a secret in the options shows in no build error, `Debug` output, report, dead letter or log line |
//! | `catalog` | a `#[derive(TrackedEvent)]` type's catalog entry reaches the backend's catalog store, equal to the registered one |
//!
//! A case a backend cannot take part in (its [`ConformanceTarget`] method
//! returns [`Unsupported`]) prints why and checks nothing. The `outage`
//! case runs alone: the other cases of the binary wait for it.
//!
//! ## Giving a new backend the suite
//!
//! 1. Add `eventtracking-testkit = { workspace = true }` to the backend
//!    crate's `[dev-dependencies]` (never to `[dependencies]`).
//! 2. Write `tests/conformance.rs`: a type implementing
//!    [`ConformanceTarget`] (how to build the backend's options for a
//!    fresh namespace, read back stored events and catalog entries, cause
//!    an outage, its size limit, …), the line that keeps the backend's
//!    registration linked, and the macro (which makes the tests):
//!
//! ```no_run
//! use eventtracking::{CatalogEntry, Event, JsonMap};
//! use eventtracking_testkit::{
//!     Case, ConformanceTarget, Idempotence, Outage, RefusedEvent, SecretOptions, SizeLimit,
//!     Unsupported,
//! };
//! // A real backend's test keeps the backend's registration linked:
//! // use eventtracking_mybackend as _;
//!
//! /// The shape only: core's `discard` engine stores nothing, so it would
//! /// fail the round trip. A real target reads its store back.
//! struct DiscardTarget;
//!
//! impl ConformanceTarget for DiscardTarget {
//!     const ENGINE: &'static str = "discard";
//!     type Namespace = ();
//!
//!     fn connect() -> Self {
//!         DiscardTarget
//!     }
//!     fn namespace(&self, _case: Case) {}
//!     fn options(&self, _namespace: &(), _case: Case) -> JsonMap {
//!         JsonMap::new()
//!     }
//!     fn stored_events(&self, _namespace: &()) -> Vec<Event> {
//!         Vec::new()
//!     }
//!     fn stored_catalog(&self, _namespace: &()) -> Vec<CatalogEntry> {
//!         Vec::new()
//!     }
//!     fn idempotence(&self) -> Idempotence {
//!         Idempotence::Store
//!     }
//!     fn refused_event(&self) -> Result<RefusedEvent, Unsupported> {
//!         Err(Unsupported("it refuses nothing"))
//!     }
//!     fn size_limit(&self) -> SizeLimit {
//!         SizeLimit::Engine { bytes: 1 << 20 }
//!     }
//!     fn outage(&self, _namespace: &()) -> Result<Outage, Unsupported> {
//!         Err(Unsupported("there is no store to take down"))
//!     }
//!     fn secret_options(&self, _namespace: &(), _secret: &str) -> SecretOptions {
//!         SecretOptions::default()
//!     }
//! }
//!
//! eventtracking_testkit::conformance_tests!(DiscardTarget);
//! ```
//!
//! 3. Run it from the backend's crate, against the test servers:
//!    `eval "$(scripts/services env)"; cargo test -p eventtracking-mybackend --test conformance`.
//!
//! The file, MongoDB and Kafka backends' `tests/conformance.rs` are the
//! examples.

pub mod cases;
mod harness;
mod load;
mod logs;
mod paused;
mod seed;
pub mod servers;
mod target;

pub use harness::{fast_delivery, unique_name, WAIT};
pub use load::{emit_seed_shape, rss_mib};
pub use logs::{capture_logs, CapturedLogs};
pub use paused::PausedProcess;
pub use seed::{emit_seed_example, seed_example_events, seed_example_stream};
pub use target::{
    Case, ConformanceTarget, Idempotence, Outage, RefusedEvent, SecretOptions, SizeLimit,
    Unsupported,
};

/// One `#[test]` per conformance case for a [`ConformanceTarget`], named
/// after the case (`seed_round_trip`, `outage`, …; see the crate docs), so
/// that a failure names its case. Use it once per test file, at its top
/// level (the crate docs show a whole target).
///
/// ```ignore
/// eventtracking_testkit::conformance_tests!(FileTarget);
/// ```
#[macro_export]
macro_rules! conformance_tests {
    ($target:ty) => {
        $crate::conformance_tests!(@cases $target:
            seed_round_trip
            idempotent_resend
            partial_failure
            oversized_event
            outage
            secrets
            catalog
            concurrent_sends
        );
    };
    (@cases $target:ty: $($case:ident)*) => {
        $(
            #[test]
            fn $case() {
                $crate::cases::$case::<$target>();
            }
        )*
    };
}
