//! Ending a bulk command early once nobody reads its output: when every
//! backend's destination closed for good (stdout's reader left, as in
//! `eventtracking demo | head -1`), emitting more only counts more drops.

use eventtracking::Tracker;

/// How many iterations of a bulk command run between two checks.
pub(crate) const CHECK_EVERY: u64 = 256;

/// Whether every backend's destination is closed (see `BackendError::Closed`).
pub(crate) fn all_closed(tracker: &Tracker) -> bool {
    let report = tracker.report();
    !report.backends.is_empty()
        && report
            .backends
            .values()
            .all(|backend| backend.dropped_by_reason.closed > 0)
}
