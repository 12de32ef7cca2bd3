//! `eventtracking buffers --config FILE` (what each backend's disk buffer
//! holds) and `eventtracking drain --config FILE` (deliver it, then exit).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use eventtracking::buffer::DiskBuffer;
use eventtracking::{BufferKind, Config, DeliveryConfig, Event};

use crate::chain;

#[derive(Debug, clap::Args)]
pub(crate) struct BuffersArgs {
    /// The TOML config (default: $EVENTTRACKING_CONFIG).
    #[arg(long, short, value_name = "FILE")]
    config: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub(crate) struct DrainArgs {
    /// The TOML config (default: $EVENTTRACKING_CONFIG): its backends with
    /// `buffer = "disk"` are drained into their stores.
    #[arg(long, short, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Give up after this many seconds (exit 1; what is left stays buffered).
    #[arg(long, default_value_t = 600, value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(0..=365 * 86_400))]
    timeout: u64,
}

/// The backends of `config` with a disk buffer, and their delivery settings.
fn disk_backends(config: &Config) -> Result<Vec<(String, DeliveryConfig)>, String> {
    let mut found = Vec::new();
    for name in config.backend_names() {
        let delivery = config
            .backend_delivery_config(name)
            .map_err(|e| chain(&e))?
            .ok_or_else(|| format!("backend {name:?} vanished from the config"))?;
        if delivery.buffer == BufferKind::Disk {
            found.push((name.to_owned(), delivery));
        }
    }
    Ok(found)
}

/// One backend's buffer, as `buffers` prints it.
struct Held {
    events: u64,
    bytes: u64,
    segments: u64,
    oldest: Option<String>,
}

fn inspect(name: &str, delivery: &DeliveryConfig) -> Result<Held, String> {
    let dir = delivery.buffer_dir(name);
    if !dir.exists() {
        return Ok(Held {
            events: 0,
            bytes: 0,
            segments: 0,
            oldest: None,
        });
    }
    let buffer = DiskBuffer::open(&dir, delivery.disk_buffer_options()).map_err(|e| chain(&e))?;
    let stats = buffer.stats();
    let oldest = buffer
        .oldest_unacknowledged()
        .map_err(|e| chain(&e))?
        .map(|record| match Event::from_json_slice(&record.payload) {
            Ok(event) => event.timestamp_rfc3339(),
            Err(_) => "(unreadable record)".to_owned(),
        });
    Ok(Held {
        events: stats.records,
        bytes: stats.bytes,
        segments: stats.segments,
        oldest,
    })
}

/// `eventtracking buffers`: one line per backend with a disk buffer.
pub(crate) fn buffers(args: BuffersArgs) -> Result<ExitCode, String> {
    let config = eventtracking::load_config(args.config.as_deref()).map_err(|e| chain(&e))?;
    let backends = disk_backends(&config)?;
    if backends.is_empty() {
        println!("no backend uses a disk buffer (buffer = \"disk\")");
        return Ok(ExitCode::SUCCESS);
    }
    println!("backend\tevents\tbytes\tsegments\toldest event\tpath");
    for (name, delivery) in &backends {
        let held = inspect(name, delivery)?;
        println!(
            "{name}\t{}\t{}\t{}\t{}\t{}",
            held.events,
            held.bytes,
            held.segments,
            held.oldest.as_deref().unwrap_or("-"),
            delivery.buffer_dir(name).display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `eventtracking drain`: builds the pipeline (which delivers what the
/// buffers hold first), waits until every disk buffer is empty, shuts down.
pub(crate) fn drain(args: DrainArgs) -> Result<ExitCode, String> {
    let config = eventtracking::load_config(args.config.as_deref()).map_err(|e| chain(&e))?;
    let backends = disk_backends(&config)?;
    if backends.is_empty() {
        eprintln!("eventtracking drain: no backend uses a disk buffer (buffer = \"disk\"); nothing to drain");
        return Ok(ExitCode::SUCCESS);
    }
    let tracker = config.build().map_err(|e| chain(&e))?;
    let left = || {
        let report = tracker.report();
        backends
            .iter()
            .filter_map(|(name, _)| report.backends.get(name))
            .fold((0u64, 0u64), |(events, bytes), stats| {
                (events + stats.buffered_events, bytes + stats.buffered_bytes)
            })
    };
    let (start_events, _) = left();
    let progress = indicatif::ProgressBar::new(start_events).with_style(
        indicatif::ProgressStyle::with_template(
            "{bar:30} {pos}/{len} events delivered, {msg} [{elapsed_precise}]",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    let drained = loop {
        let (events, bytes) = left();
        progress.set_length(start_events.max(events));
        progress.set_position(start_events.saturating_sub(events));
        progress.set_message(format!("{events} events ({bytes} bytes) left"));
        if events == 0 {
            break true;
        }
        if Instant::now() >= deadline {
            break false;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    progress.finish();
    let report = tracker
        .shutdown(Duration::from_secs(args.timeout.max(1)))
        .unwrap_or_else(|| tracker.report());
    eprintln!("{report}");
    if !drained {
        let (events, bytes) = left();
        eprintln!(
            "eventtracking drain: gave up after {}s with {events} events ({bytes} bytes) still buffered",
            args.timeout
        );
        return Ok(ExitCode::from(1));
    }
    Ok(if report.complete {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
