//! The bulk commands (`demo`, `send`, `replay`): their pipeline, the work
//! on a thread of its own, SIGINT/SIGTERM, and the final report.
//!
//! The main thread waits for the work to end or for a signal. On a signal
//! it stops the work (which may be blocked reading stdin: it is left
//! behind), shuts the tracker down within `--timeout` (what is left is
//! dead-lettered with reason `shutdown`), prints the report and exits; a
//! second signal cuts that shutdown short (see `eventtracking::signal`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use eventtracking::signal::{ShutdownSignals, Signal};
use eventtracking::{DeliveryReport, Overflow, Tracker};

use crate::chain;
use crate::receipts::ReceiptLog;

/// The longest `--timeout`: a year (larger values are refused, not clamped silently).
const MAX_TIMEOUT_SECS: u64 = 365 * 86_400;

#[derive(Debug, clap::Args)]
pub(crate) struct PipelineArgs {
    /// The pipeline's TOML config (default: $EVENTTRACKING_CONFIG, else JSON lines on stdout).
    #[arg(long, short, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// How long to wait for delivery at the end (or after SIGINT/SIGTERM), in
    /// seconds; what is undelivered then is dead-lettered (reason shutdown).
    /// The default matches the default retry budget (retry_budget_ms).
    #[arg(long, default_value_t = 30, value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(0..=MAX_TIMEOUT_SECS))]
    pub(crate) timeout: u64,
}

/// What the work reports while it runs.
#[derive(Default)]
pub(crate) struct Progress {
    /// Set on a signal: the work stops at the next event.
    pub(crate) stop: AtomicBool,
    /// Input lines refused so far.
    pub(crate) refused: AtomicU64,
    /// `send --receipts FILE`: where each event's receipt goes.
    pub(crate) receipts: Option<ReceiptLog>,
}

impl Progress {
    pub(crate) fn stopped(&self) -> bool {
        self.stop.load(Relaxed)
    }

    pub(crate) fn refuse(&self) {
        self.refused.fetch_add(1, Relaxed);
    }
}

enum Outcome {
    Done(Result<(), String>),
    Signal(Signal),
}

/// Builds the pipeline for a bulk command: `overflow = "block"` unless the
/// config (file, backend table or `EVENTTRACKING_OVERFLOW`) sets `overflow`,
/// so that a command asked to deliver a stream never drops for a full queue.
pub(crate) fn build(pipeline: &PipelineArgs) -> Result<Tracker, String> {
    eventtracking::load_config(pipeline.config.as_deref())
        .map_err(|e| chain(&e))?
        .with_default_overflow(Overflow::Block)
        .build()
        .map_err(|e| chain(&e))
}

/// Runs `work` on its own thread until it ends or a signal arrives, then
/// shuts down and reports.
pub(crate) fn run(
    pipeline: &PipelineArgs,
    receipts: Option<&Path>,
    work: impl FnOnce(&Tracker, &Progress) -> Result<(), String> + Send + 'static,
) -> Result<ExitCode, String> {
    let timeout = Duration::from_secs(pipeline.timeout);
    let receipts = receipts.map(ReceiptLog::create).transpose()?;
    let tracker = build(pipeline)?;
    let (sender, outcomes) = mpsc::channel();
    let on_signal = sender.clone();
    ShutdownSignals::install_with(&tracker, move |signal| {
        let _ = on_signal.send(Outcome::Signal(signal));
    })
    .map_err(|e| format!("cannot handle signals: {e}"))?;
    let progress = Arc::new(Progress {
        receipts,
        ..Progress::default()
    });
    {
        let tracker = tracker.clone();
        let progress = progress.clone();
        std::thread::Builder::new()
            .name("eventtracking-input".into())
            .spawn(move || {
                let result = work(&tracker, &progress);
                let _ = sender.send(Outcome::Done(result));
            })
            .map_err(|e| format!("cannot start the input thread: {e}"))?;
    }
    let interrupted = match outcomes.recv() {
        Ok(Outcome::Done(Ok(()))) => None,
        Ok(Outcome::Done(Err(message))) => {
            tracker.shutdown(timeout);
            if let Some(receipts) = &progress.receipts {
                // The receipts of what was sent before the error still count.
                receipts.finish()?;
            }
            return Err(message);
        }
        Ok(Outcome::Signal(signal)) => {
            progress.stop.store(true, Relaxed);
            eprintln!(
                "eventtracking: {signal}: stopping; delivering what was accepted (up to {}s), then dead-lettering the rest ({signal} again: at once)",
                pipeline.timeout
            );
            Some(signal)
        }
        Err(_) => None,
    };
    let code = finish(
        &tracker,
        timeout,
        progress.refused.load(Relaxed),
        interrupted,
    );
    // Every receipt is answered once the tracker has shut down.
    if let Some(receipts) = &progress.receipts {
        receipts.finish()?;
    }
    Ok(code)
}

/// Shuts the tracker down, prints the report to stderr, and picks the exit code.
fn finish(
    tracker: &Tracker,
    timeout: Duration,
    refused_lines: u64,
    interrupted: Option<Signal>,
) -> ExitCode {
    let report = tracker
        .shutdown(timeout)
        .unwrap_or_else(|| tracker.report());
    let _ = std::io::stdout().flush();
    eprint!("{report}");
    if refused_lines > 0 {
        eprintln!("eventtracking: {refused_lines} input line(s) refused");
    }
    for (name, stats) in &report.backends {
        if stats.dead_lettered > 0 {
            let path = tracker
                .delivery_config(name)
                .map(|c| c.dead_letter_path.display().to_string())
                .unwrap_or_default();
            eprintln!(
                "eventtracking: {name}: {} event(s) in the dead-letter file {path} ({} at the shutdown deadline); `eventtracking replay {path}` re-sends them",
                stats.dead_lettered, stats.failed_shutdown
            );
        }
        let lost = stats.dropped_by_reason;
        if lost.dead_letter_full > 0 {
            eprintln!(
                "eventtracking: {name}: {} event(s) lost: the dead-letter file is full (disk or file-size limit)",
                lost.dead_letter_full
            );
        }
    }
    if let Some(signal) = interrupted {
        eprintln!("eventtracking: stopped by {signal}");
    }
    if refused_lines > 0 || lost_anything(&report) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn lost_anything(report: &DeliveryReport) -> bool {
    !report.complete
        || report.total_dropped() > 0
        || report.total_failed() > 0
        || report.tracker.processor_errors > 0
        || report.tracker.no_backend > 0
}
