//! The behaviour every backend must show, one function per case.
//! [`conformance_tests!`](crate::conformance_tests) makes each a `#[test]`.

mod catalog;
mod concurrent_sends;
mod idempotent_resend;
mod outage;
mod oversized_event;
mod partial_failure;
mod secrets;
mod seed_round_trip;

pub use catalog::catalog;
pub use concurrent_sends::concurrent_sends;
pub use idempotent_resend::idempotent_resend;
pub use outage::outage;
pub use oversized_event::oversized_event;
pub use partial_failure::partial_failure;
pub use secrets::secrets;
pub use seed_round_trip::seed_round_trip;

use crate::target::{Case, Unsupported};

/// Says (on stderr, shown by the test harness) that `case` does not apply.
fn not_applicable(engine: &str, case: Case, Unsupported(reason): Unsupported) {
    assert!(
        !reason.is_empty(),
        "say why {engine} does not support {}",
        case.name()
    );
    eprintln!(
        "conformance: `{}` does not apply to the {engine} backend: {reason}",
        case.name()
    );
}
