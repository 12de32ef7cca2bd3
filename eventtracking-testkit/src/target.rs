//! What a backend's test provides to run the conformance suite.

use eventtracking::{CatalogEntry, DeliveryConfig, Event, JsonMap};
use serde_json::Value;

/// One case of the conformance suite (see the crate docs for what each
/// checks). Targets get it to tune their options or delivery settings for
/// a case, and to name namespaces after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Case {
    /// The seed example through a tracker and back.
    SeedRoundTrip,
    /// The same event ids sent twice.
    IdempotentResend,
    /// A batch in which the store refuses one event.
    PartialFailure,
    /// An event too large for the store between two small ones.
    OversizedEvent,
    /// The store down for 10 s while events are emitted.
    Outage,
    /// A secret in the options, errors provoked.
    Secrets,
    /// A typed event's catalog entry published.
    Catalog,
    /// Batches sent at once (or refused, for a backend that keeps order).
    ConcurrentSends,
}

impl Case {
    /// The case's name, as its test is named: `seed_round_trip`, `outage`…
    pub fn name(self) -> &'static str {
        match self {
            Case::SeedRoundTrip => "seed_round_trip",
            Case::IdempotentResend => "idempotent_resend",
            Case::PartialFailure => "partial_failure",
            Case::OversizedEvent => "oversized_event",
            Case::Outage => "outage",
            Case::Secrets => "secrets",
            Case::Catalog => "catalog",
            Case::ConcurrentSends => "concurrent_sends",
        }
    }
}

/// Why a backend cannot take part in a case (a capability it does not
/// have). The case then prints the reason and checks nothing: say it
/// plainly, it is what readers of the test output see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unsupported(pub &'static str);

/// What storing an event whose id is stored already leaves in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idempotence {
    /// Nothing changes: the store keeps each event id once (e.g. a unique
    /// key on the id). The case checks that the store ends with each id once.
    Store,
    /// The store keeps every copy (an append-only file, a log): delivery is
    /// at least once and readers de-duplicate by event id. The case checks
    /// that the re-send is reported delivered, that every copy equals the
    /// event sent, and that the stored events de-duplicated by id are
    /// exactly the events sent.
    ReadersDeduplicate,
}

/// An event the store refuses on its own (a permanent, per-event failure)
/// while it stores the other events of the same batch.
#[derive(Debug, Clone, PartialEq)]
pub struct RefusedEvent {
    /// The event's name.
    pub name: String,
    /// The event's data.
    pub data: Value,
    /// Text the dead-letter reason must contain.
    pub reason: &'static str,
}

/// Above what size an event is not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeLimit {
    /// The store refuses an event whose JSON is larger than about `bytes`
    /// (with the target's options for [`Case::OversizedEvent`]); the backend
    /// reports it as a permanent failure whose reason contains `reason`.
    Store {
        /// The limit.
        bytes: usize,
        /// Text the dead-letter reason must contain.
        reason: &'static str,
    },
    /// The store takes events of any size: the limit is the delivery
    /// engine's `max_event_bytes`, which the case sets to `bytes`.
    Engine {
        /// The limit.
        bytes: usize,
    },
}

/// A store made unreachable by [`ConformanceTarget::outage`]; it is
/// reachable again when this is dropped.
pub struct Outage(#[allow(dead_code)] Box<dyn Send>);

impl Outage {
    /// The outage that `guard` ends when it is dropped (e.g. a
    /// [`PausedProcess`](crate::PausedProcess)).
    pub fn new(guard: impl Send + 'static) -> Self {
        Outage(Box::new(guard))
    }
}

impl std::fmt::Debug for Outage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Outage")
    }
}

/// Backend options holding a secret, for [`Case::Secrets`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SecretOptions {
    /// Options with the secret in a secret-looking place (a password, a
    /// URI's credentials) that must not build (a bad value or an unknown key
    /// next to it): neither the error nor the options' `Debug` output may
    /// show the secret.
    pub refused: Vec<JsonMap>,
    /// Options with the secret that build, and whose deliveries may fail
    /// (an unreachable server, refused credentials): one event is sent
    /// through each; the options' `Debug` output, the report, the
    /// dead-letter file and the logs may not show the secret.
    pub built: Vec<JsonMap>,
    /// Text the logs must contain once the `built` backends ran, proving
    /// that what they log was captured; `None` when nothing is bound to be
    /// logged.
    pub logged: Option<&'static str>,
}

/// A backend under test: how the conformance suite builds it, reads back
/// what it stored, and provokes its failures.
///
/// The suite builds the backend through the registry from
/// [`options`](Self::options), as a config file would, so the backend's
/// crate must be linked into the test binary (`use eventtracking_file as _;`).
pub trait ConformanceTarget: Sized {
    /// The engine name the backend registers (`file`, `mongo`, `kafka`).
    const ENGINE: &'static str;

    /// A place in the store that only one case writes to (a file, a
    /// database, a topic prefix), cleaned up when dropped.
    type Namespace;

    /// Connects to the store, failing (not skipping) with advice when its
    /// server does not answer.
    fn connect() -> Self;

    /// A fresh namespace for `case`.
    fn namespace(&self, case: Case) -> Self::Namespace;

    /// The backend's options (the keys of `[backends.NAME]` but `engine`)
    /// writing into `namespace` (events and catalog entries), tuned for
    /// `case` where needed.
    fn options(&self, namespace: &Self::Namespace, case: Case) -> JsonMap;

    /// The delivery settings for `case`; the default keeps the suite's.
    fn delivery(&self, case: Case, delivery: DeliveryConfig) -> DeliveryConfig {
        let _ = case;
        delivery
    }

    /// Every event stored in `namespace`, in any order, each copy of an
    /// event stored more than once included.
    fn stored_events(&self, namespace: &Self::Namespace) -> Vec<Event>;

    /// Every catalog entry stored for `namespace`, each copy included.
    fn stored_catalog(&self, namespace: &Self::Namespace) -> Vec<CatalogEntry>;

    /// What storing an event twice leaves.
    fn idempotence(&self) -> Idempotence;

    /// An event the store refuses on its own while it stores its
    /// neighbours, for [`Case::PartialFailure`].
    fn refused_event(&self) -> Result<RefusedEvent, Unsupported>;

    /// The size above which an event is not stored, for [`Case::OversizedEvent`].
    fn size_limit(&self) -> SizeLimit;

    /// Makes the store that `namespace` is in unreachable (a paused server,
    /// a directory gone) until the returned guard is dropped, for
    /// [`Case::Outage`]. While it lasts no other case of the binary runs.
    fn outage(&self, namespace: &Self::Namespace) -> Result<Outage, Unsupported>;

    /// Options holding `secret`, for [`Case::Secrets`].
    fn secret_options(&self, namespace: &Self::Namespace, secret: &str) -> SecretOptions;
}
