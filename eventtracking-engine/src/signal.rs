//! Shutting a tracker down on SIGINT and SIGTERM (Unix), the way the
//! `eventtracking` command does.
//!
//! [`ShutdownSignals::install`] takes over SIGINT and SIGTERM (they no
//! longer kill the process) and watches them on a thread of its own:
//!
//! 1. the first one is reported by [`ShutdownSignals::wait`] /
//!    [`received`](ShutdownSignals::received) (and an optional callback): the
//!    application stops emitting and calls [`Tracker::shutdown`], which
//!    delivers what was accepted until its deadline and writes what is left
//!    to the dead-letter file (reason `shutdown`);
//! 2. a second one calls [`Tracker::cut_shutdown_short`]: the shutdown stops
//!    waiting, dead-letters what is undelivered and returns at once;
//! 3. a third one exits the process (status 130) in case the application
//!    itself is stuck.
//!
//! ```no_run
//! use std::time::Duration;
//! use eventtracking::{signal::ShutdownSignals, Tracker};
//!
//! let tracker = Tracker::builder().build().unwrap(); // e.g. Config::from_env()?...build()?
//! let signals = ShutdownSignals::install(&tracker).unwrap();
//! // ... the application runs, emitting events, until:
//! let signal = signals.wait();
//! eprintln!("{signal}: shutting down");
//! let report = tracker.shutdown(Duration::from_secs(30)).unwrap();
//! eprint!("{report}");
//! std::process::exit(if report.total_dropped() + report.total_failed() == 0 { 0 } else { 1 });
//! ```
//!
//! Async applications can do the same with `tokio::signal` and
//! [`Tracker::shutdown`] on a blocking thread.

use eventtracking_core::sync::lock;
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::Duration;

use crate::tracker::{Inner, Tracker};

/// A shutdown signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Signal {
    /// SIGINT (Ctrl-C).
    Interrupt,
    /// SIGTERM (`kill`, service managers).
    Terminate,
}

impl std::fmt::Display for Signal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Signal::Interrupt => "SIGINT",
            Signal::Terminate => "SIGTERM",
        })
    }
}

#[derive(Debug, Default)]
struct State {
    first: Mutex<Option<Signal>>,
    arrived: Condvar,
}

/// SIGINT and SIGTERM, watched for a tracker's shutdown (see the [module docs](self)).
#[derive(Debug, Clone)]
pub struct ShutdownSignals {
    state: Arc<State>,
}

type Callback = Box<dyn FnOnce(Signal) + Send>;

impl ShutdownSignals {
    /// Starts watching SIGINT and SIGTERM for `tracker` (which it does not keep alive).
    pub fn install(tracker: &Tracker) -> std::io::Result<Self> {
        Self::start(tracker, None)
    }

    /// Like [`install`](Self::install), and calls `on_first` (on the signal
    /// thread) when the first signal arrives.
    pub fn install_with(
        tracker: &Tracker,
        on_first: impl FnOnce(Signal) + Send + 'static,
    ) -> std::io::Result<Self> {
        Self::start(tracker, Some(Box::new(on_first)))
    }

    fn start(tracker: &Tracker, on_first: Option<Callback>) -> std::io::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        // Registered before this returns, so that no signal is missed.
        let (mut terminate, mut interrupt) = {
            let _entered = runtime.enter();
            (
                signal(SignalKind::terminate())?,
                signal(SignalKind::interrupt())?,
            )
        };
        let state = Arc::new(State::default());
        let watched = state.clone();
        let tracker = tracker.downgrade();
        std::thread::Builder::new()
            .name("eventtracking-signals".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let mut on_first = on_first;
                    for received in 1u32.. {
                        let signal = tokio::select! {
                            _ = terminate.recv() => Signal::Terminate,
                            _ = interrupt.recv() => Signal::Interrupt,
                        };
                        on_signal(&watched, &tracker, signal, received, &mut on_first);
                    }
                })
            })?;
        Ok(ShutdownSignals { state })
    }

    /// The first signal, if one arrived.
    pub fn received(&self) -> Option<Signal> {
        *lock(&self.state.first)
    }

    /// Blocks until the first signal arrives.
    pub fn wait(&self) -> Signal {
        let mut first = lock(&self.state.first);
        loop {
            if let Some(signal) = *first {
                return signal;
            }
            first = self
                .state
                .arrived
                .wait(first)
                .unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Blocks until the first signal arrives, at most `timeout`.
    pub fn wait_timeout(&self, timeout: Duration) -> Option<Signal> {
        let first = lock(&self.state.first);
        let (first, _) = self
            .state
            .arrived
            .wait_timeout_while(first, timeout, |first| first.is_none())
            .unwrap_or_else(|p| p.into_inner());
        *first
    }
}

fn on_signal(
    state: &State,
    tracker: &Weak<Inner>,
    signal: Signal,
    received: u32,
    on_first: &mut Option<Callback>,
) {
    match received {
        1 => {
            tracing::info!(%signal, "eventtracking: shutdown signal");
            *lock(&state.first) = Some(signal);
            state.arrived.notify_all();
            if let Some(callback) = on_first.take() {
                callback(signal);
            }
        }
        2 => {
            tracing::warn!(%signal, "eventtracking: second shutdown signal: dead-lettering what is undelivered and stopping now");
            if let Some(inner) = tracker.upgrade() {
                Tracker::from_inner(inner).cut_shutdown_short();
            }
        }
        _ => {
            tracing::error!(%signal, "eventtracking: third shutdown signal: exiting");
            std::process::exit(130);
        }
    }
}
