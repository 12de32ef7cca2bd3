//! `eventtracking relay --config FILE`: Kafka → the config's backends, with
//! progress on stderr and a clean stop on SIGINT/SIGTERM. The work is done by
//! [`eventtracking_cli::relay`]; this is the command-line wrapper.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use eventtracking_cli::relay::{RelayBuilder, RelayMonitor, RelayStats, StopHandle};

use crate::chain;

#[derive(Debug, clap::Args)]
pub(crate) struct RelayArgs {
    /// The TOML config: a [source] table (engine = "kafka", brokers, topics,
    /// group) and the backends to deliver to (default: $EVENTTRACKING_CONFIG).
    #[arg(long, short, value_name = "FILE")]
    config: Option<PathBuf>,
    /// How long the end of the run (and a rebalance) waits for the backends to
    /// acknowledge what was read, in seconds.
    #[arg(long, default_value_t = 30, value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(0..=365 * 86_400))]
    timeout: u64,
    /// How often acknowledged messages have their offsets committed, in milliseconds.
    #[arg(long, default_value_t = 1000, value_name = "MS")]
    commit_interval_ms: u64,
    /// The most messages read and not yet committed; reading pauses above it
    /// (at most the smallest queue_capacity of the backends). Default 10000.
    #[arg(long, value_name = "N")]
    max_uncommitted: Option<usize>,
    /// Stop (wait for acknowledgements, commit, report) once no message arrived for this many seconds.
    #[arg(long, value_name = "SECS")]
    exit_when_idle: Option<f64>,
    /// Read at most this many messages per second.
    #[arg(long, value_name = "N")]
    max_rate: Option<u64>,
    /// Without a terminal: seconds between progress lines on stderr.
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    progress_interval: u64,
}

/// Runs the relay; exit code 0 when everything handled was delivered (or
/// dead-lettered) and committed, 1 otherwise.
pub(crate) fn run(args: RelayArgs) -> Result<ExitCode, String> {
    let config = eventtracking::load_config(args.config.as_deref()).map_err(|e| chain(&e))?;
    let mut builder = RelayBuilder::from_config(&config)
        .map_err(|e| chain(&e))?
        .with_commit_interval(Duration::from_millis(args.commit_interval_ms.max(1)))
        .with_flush_timeout(Duration::from_secs(args.timeout));
    if let Some(max) = args.max_uncommitted {
        builder = builder.with_max_uncommitted(max);
    }
    if let Some(secs) = args.exit_when_idle {
        let idle = Duration::try_from_secs_f64(secs)
            .map_err(|_| format!("--exit-when-idle {secs}: not a number of seconds"))?;
        builder = builder.with_exit_when_idle(idle);
    }
    if let Some(rate) = args.max_rate {
        builder = builder.with_max_rate(rate);
    }
    let relay = builder.build().map_err(|e| chain(&e))?;
    watch_signals(relay.stop_handle())?;

    let options = relay.options();
    eprintln!(
        "eventtracking relay: group {:?}, topics {}, brokers {} -> backends {} (commit every {} ms, at most {} uncommitted)",
        options.group,
        options.topics.join(","),
        options.brokers,
        relay.tracker().backend_names().join(","),
        args.commit_interval_ms,
        relay.max_uncommitted(),
    );
    let done = Arc::new(AtomicBool::new(false));
    let progress = {
        let monitor = relay.monitor();
        let done = done.clone();
        let interval = Duration::from_secs(args.progress_interval.max(1));
        std::thread::Builder::new()
            .name("eventtracking-progress".into())
            .spawn(move || show_progress(&monitor, &done, interval))
            .map_err(|e| format!("cannot start the progress thread: {e}"))?
    };

    let report = relay.run();
    done.store(true, Ordering::Relaxed);
    let _ = progress.join();
    eprint!("{report}");
    Ok(if report.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// SIGINT/SIGTERM stop the relay cleanly; a second one exits at once
/// (nothing uncommitted is lost: a restart reads it again).
fn watch_signals(stop: StopHandle) -> Result<(), String> {
    use tokio::signal::unix::{signal, SignalKind};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the signal handler: {e}"))?;
    // Registered here, before the relay starts, so that no signal is missed.
    let (mut terminate, mut interrupt) = {
        let _entered = runtime.enter();
        let terminate = signal(SignalKind::terminate());
        let interrupt = signal(SignalKind::interrupt());
        match (terminate, interrupt) {
            (Ok(t), Ok(i)) => (t, i),
            (Err(e), _) | (_, Err(e)) => return Err(format!("cannot handle signals: {e}")),
        }
    };
    std::thread::Builder::new()
        .name("eventtracking-signals".into())
        .spawn(move || {
            runtime.block_on(async move {
                let mut received = 0;
                loop {
                    let name = tokio::select! {
                        _ = terminate.recv() => "SIGTERM",
                        _ = interrupt.recv() => "SIGINT",
                    };
                    received += 1;
                    if received == 1 {
                        eprintln!(
                            "eventtracking relay: {name}: stopping (delivering and committing what was read; again to quit at once)"
                        );
                        stop.stop();
                    } else {
                        eprintln!(
                            "eventtracking relay: {name} again: quitting without waiting; uncommitted messages will be read again by the next relay"
                        );
                        std::process::exit(130);
                    }
                }
            })
        })
        .map_err(|e| format!("cannot start the signal handler: {e}"))?;
    Ok(())
}

fn partitions_text(stats: &RelayStats) -> String {
    if stats.partitions.is_empty() {
        return "none".into();
    }
    stats
        .partitions
        .iter()
        .map(|(topic, partition)| format!("{topic}/{partition}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn progress_text(stats: &RelayStats, rate: f64) -> String {
    format!(
        "partitions {}, read {} ({rate:.0}/s), events {}, malformed {}, committed {}, uncommitted {}",
        stats.partitions.len(),
        stats.messages,
        stats.events,
        stats.malformed,
        stats.committed,
        stats.uncommitted
    )
}

/// A spinner on a terminal; otherwise a line every `interval`, and one
/// whenever the partition assignment changes.
fn show_progress(monitor: &RelayMonitor, done: &AtomicBool, interval: Duration) {
    let terminal = std::io::stderr().is_terminal();
    let spinner = terminal.then(|| {
        let spinner = indicatif::ProgressBar::new_spinner().with_style(
            indicatif::ProgressStyle::with_template("{spinner} relay {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        spinner.enable_steady_tick(Duration::from_millis(100));
        spinner
    });
    let mut partitions = Vec::new();
    let mut last_line = Instant::now();
    let mut last_sample = (Instant::now(), 0u64);
    let mut rate = 0.0;
    while !done.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
        let stats = monitor.snapshot();
        let (at, messages) = last_sample;
        let elapsed = at.elapsed().as_secs_f64();
        if elapsed >= 1.0 {
            rate = (stats.messages - messages) as f64 / elapsed;
            last_sample = (Instant::now(), stats.messages);
        }
        if stats.partitions != partitions {
            partitions = stats.partitions.clone();
            let line = format!(
                "eventtracking relay: assigned partitions: {}",
                partitions_text(&stats)
            );
            match &spinner {
                Some(spinner) => spinner.println(line),
                None => eprintln!("{line}"),
            }
        }
        match &spinner {
            Some(spinner) => spinner.set_message(progress_text(&stats, rate)),
            None => {
                if last_line.elapsed() >= interval {
                    last_line = Instant::now();
                    eprintln!("eventtracking relay: {}", progress_text(&stats, rate));
                }
            }
        }
    }
    if let Some(spinner) = spinner {
        spinner.finish_and_clear();
    }
}
