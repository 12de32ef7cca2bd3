//! [`Relay`]: the engine's relay loop ([`RelayLoop`]) over a
//! [`KafkaSource`], with the CLI's report.

use std::fmt;

use eventtracking::kafka::{KafkaSource, KafkaSourceMonitor};
use eventtracking::relay::{RelayLoop, StopHandle};
use eventtracking::Tracker;

#[cfg(doc)]
use super::RelayBuilder;
use super::{RelayMonitor, RelayOptions, RelayReport};

/// A Kafka consumer delivering events to a tracker's backends; see the
/// [module docs](super). Made by [`RelayBuilder`]; [`run`](Self::run) does the work.
pub struct Relay {
    pub(super) relay: RelayLoop<KafkaSource>,
    pub(super) source_monitor: KafkaSourceMonitor,
    pub(super) options: RelayOptions,
}

impl fmt::Debug for Relay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Relay")
            .field("options", &self.options)
            .field("relay", &self.relay)
            .field("source", &self.source_monitor)
            .finish()
    }
}

impl Relay {
    /// A handle that stops [`run`](Self::run).
    pub fn stop_handle(&self) -> StopHandle {
        self.relay.stop_handle()
    }

    /// A handle reading the counters while [`run`](Self::run) runs.
    pub fn monitor(&self) -> RelayMonitor {
        RelayMonitor {
            relay: self.relay.monitor(),
            source: self.source_monitor.clone(),
        }
    }

    /// The tracker the events go to.
    pub fn tracker(&self) -> &Tracker {
        self.relay.tracker()
    }

    /// The `[source]` options.
    pub fn options(&self) -> &RelayOptions {
        &self.options
    }

    /// The effective most messages handed to the tracker and not committed.
    pub fn max_uncommitted(&self) -> usize {
        self.relay.max_uncommitted()
    }

    /// Reads, delivers and commits until stopped ([`StopHandle::stop`], idle
    /// time, or a loss); then waits for the outstanding acknowledgements,
    /// commits, leaves the group and shuts the tracker down. Blocks the
    /// calling thread (librdkafka's rebalance callbacks run on it).
    pub fn run(self) -> RelayReport {
        let monitor = self.monitor();
        let report = self.relay.run();
        let stats = monitor.snapshot();
        let committed_offsets = monitor.source.snapshot().committed_offsets;
        RelayReport {
            stop: report.stop,
            error: report.error,
            lost: report.stats.lost,
            stats,
            committed_offsets,
            delivery: report.delivery,
        }
    }
}
