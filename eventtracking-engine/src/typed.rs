//! Emitting typed events: `my_event.emit()` and `my_event.emit_to(&tracker)`.

use eventtracking_core::TrackedEvent;

use crate::error::EmitError;
use crate::tracker::{default_tracker, Tracker};

/// `emit()` and `emit_to(&tracker)` for every [`TrackedEvent`]. The trait
/// lives in the core, which knows no tracker; this extension brings the
/// tracker's side (`use eventtracking::TrackedEventExt`, or the prelude).
pub trait TrackedEventExt: TrackedEvent + Sized {
    /// Emits this event on the default tracker (see [`default_tracker`]).
    fn emit(&self) -> Result<(), EmitError> {
        default_tracker().emit_typed(self)
    }

    /// Emits this event on `tracker`.
    fn emit_to(&self, tracker: &Tracker) -> Result<(), EmitError> {
        tracker.emit_typed(self)
    }
}

impl<E: TrackedEvent> TrackedEventExt for E {}
