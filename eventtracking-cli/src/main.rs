//! The `eventtracking` command.
//!
//! | command | does |
//! |---|---|
//! | `eventtracking demo [--config FILE] [--count N]` | runs the seed example N times through the pipeline |
//! | `eventtracking send [--config FILE]` | reads events as JSON lines (`{"name", "data", "context"?}`) from stdin |
//! | `eventtracking replay FILE [--config FILE]` | re-sends a dead-letter file (or a file of events) |
//! | `eventtracking engines` | lists the backend and processor engines linked in |
//! | `eventtracking catalog [--format json\|markdown]` | documents the typed event types linked in (the demo's at least) |
//! | `eventtracking relay --config FILE` | reads events from Kafka (the config's `[source]`) into its backends, committing offsets after delivery; SIGINT/SIGTERM stop it cleanly |
//!
//! Without `--config` (or `EVENTTRACKING_CONFIG`) the pipeline is the
//! embedded default: JSON lines on stdout. The delivery report goes to
//! stderr. Exit codes: 0 success, 1 some input lines were refused or events
//! were dropped or failed, 2 bad usage or config.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use eventtracking::{context, registry, DeadLetterRecord, DeliveryReport, Event, Tracker};
use serde::Deserialize;
use serde_json::Value;

mod output;
mod relay;
mod seed;

#[derive(Debug, Parser)]
#[command(
    name = "eventtracking",
    version,
    about = "Context-aware event tracking: demo, send, replay, engines, relay"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Args)]
struct PipelineArgs {
    /// The pipeline's TOML config (default: $EVENTTRACKING_CONFIG, else JSON lines on stdout).
    #[arg(long, short, value_name = "FILE")]
    config: Option<PathBuf>,
    /// How long to wait for delivery at the end, in seconds.
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    timeout: u64,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the seed example (three events in nested contexts) N times.
    Demo {
        #[command(flatten)]
        pipeline: PipelineArgs,
        /// How many times to run the example.
        #[arg(long, short = 'n', default_value_t = 1)]
        count: u64,
    },
    /// Read events as JSON lines from stdin: {"name": ..., "data": ..., "context": {...}?}.
    Send {
        #[command(flatten)]
        pipeline: PipelineArgs,
    },
    /// Re-send the events of a dead-letter file (or a file of plain events), keeping their ids.
    Replay {
        /// The JSON-lines file to replay.
        file: PathBuf,
        #[command(flatten)]
        pipeline: PipelineArgs,
    },
    /// List the backend and processor engines linked into this binary.
    Engines,
    /// Document the typed event types linked into this binary (name, version,
    /// descriptions, JSON Schema).
    Catalog {
        /// Output format.
        #[arg(long, short, value_enum, default_value_t = CatalogFormat::Json)]
        format: CatalogFormat,
    },
    /// Deliver the events of Kafka topics (the config's [source]) to the config's
    /// backends, committing offsets only after delivery; SIGINT/SIGTERM stop it cleanly.
    Relay(relay::RelayArgs),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("eventtracking: error: {message}");
            ExitCode::from(2)
        }
    }
}

fn run(command: Command) -> Result<ExitCode, String> {
    match command {
        Command::Engines => engines(),
        Command::Catalog { format } => catalog(format),
        Command::Relay(args) => relay::run(args),
        Command::Demo { pipeline, count } => {
            let tracker = build(&pipeline)?;
            for i in 0..count {
                if i % output::CHECK_EVERY == 0 && output::all_closed(&tracker) {
                    break;
                }
                seed::run(&tracker).map_err(|e| e.to_string())?;
            }
            Ok(finish(&tracker, &pipeline, 0))
        }
        Command::Send { pipeline } => {
            let tracker = build(&pipeline)?;
            let refused = send(&tracker, std::io::stdin().lock());
            Ok(finish(&tracker, &pipeline, refused))
        }
        Command::Replay { file, pipeline } => {
            let tracker = build(&pipeline)?;
            let refused = replay(&tracker, &file)?;
            Ok(finish(&tracker, &pipeline, refused))
        }
    }
}

fn build(pipeline: &PipelineArgs) -> Result<Tracker, String> {
    let config = eventtracking::load_config(pipeline.config.as_deref()).map_err(|e| chain(&e))?;
    config.build().map_err(|e| chain(&e))
}

/// The error and its causes, `: `-separated, skipping a cause whose text the
/// message already holds.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
/// Shuts the tracker down, prints the report to stderr, and picks the exit code.
fn finish(tracker: &Tracker, pipeline: &PipelineArgs, refused_lines: u64) -> ExitCode {
    let report = tracker
        .shutdown(Duration::from_secs(pipeline.timeout))
        .unwrap_or_else(|| tracker.report());
    let _ = std::io::stdout().flush();
    eprint!("{report}");
    if refused_lines > 0 {
        eprintln!("eventtracking: {refused_lines} input line(s) refused");
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

/// The formats of `eventtracking catalog`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum CatalogFormat {
    /// `{"event_types": [...]}` with each type's JSON Schema.
    Json,
    /// A document with one section per event type.
    Markdown,
}

fn catalog(format: CatalogFormat) -> Result<ExitCode, String> {
    let catalog = eventtracking::catalog().map_err(|e| e.to_string())?;
    match format {
        CatalogFormat::Json => {
            let text =
                serde_json::to_string_pretty(&catalog.to_json()).map_err(|e| e.to_string())?;
            println!("{text}");
        }
        CatalogFormat::Markdown => print!("{}", catalog.to_markdown()),
    }
    Ok(ExitCode::SUCCESS)
}

fn engines() -> Result<ExitCode, String> {
    let backends = registry::backend_engines().map_err(|e| e.to_string())?;
    let processors = registry::processor_engines().map_err(|e| e.to_string())?;
    println!("backend engines:");
    for r in backends {
        match r.batch_size {
            Some(n) => println!(
                "  {:<10} {} (batch_size {n} unless configured)",
                r.name, r.description
            ),
            None => println!("  {:<10} {}", r.name, r.description),
        }
    }
    println!("processor engines:");
    for r in processors {
        println!("  {:<10} {}", r.name, r.description);
    }
    Ok(ExitCode::SUCCESS)
}

/// One line of `send`'s input.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InputLine {
    name: String,
    #[serde(default)]
    data: Value,
    #[serde(default)]
    context: Option<serde_json::Map<String, Value>>,
}

/// Emits each line; returns how many lines were refused (each reported with its number).
fn send(tracker: &Tracker, input: impl BufRead) -> u64 {
    let mut refused = 0;
    for (index, line) in input.lines().enumerate() {
        let number = index + 1;
        let line = match line {
            Ok(line) => line,
            Err(e) => {
                eprintln!("line {number}: cannot read: {e}");
                refused += 1;
                break;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        let result = serde_json::from_str::<InputLine>(&line)
            .map_err(|e| format!("not an event ({e})"))
            .and_then(|input| {
                let emit = || tracker.emit_value(&input.name, input.data.clone());
                match &input.context {
                    Some(ctx) => {
                        context::with_context("send", ctx, emit).map_err(|e| e.to_string())?
                    }
                    None => emit(),
                }
                .map_err(|e| e.to_string())
            });
        if let Err(message) = result {
            eprintln!("line {number}: {message}");
            refused += 1;
        }
    }
    refused
}

/// Re-emits every event of `path`; returns how many lines were refused.
fn replay(tracker: &Tracker, path: &Path) -> Result<u64, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let lines: Vec<&str> = text.lines().collect();
    let progress = indicatif::ProgressBar::new(lines.len() as u64).with_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} events {per_sec} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut refused = 0;
    for (index, line) in lines.iter().enumerate() {
        progress.inc(1);
        if line.trim().is_empty() {
            continue;
        }
        let event = match serde_json::from_str::<DeadLetterRecord>(line) {
            Ok(record) => Ok(record.event),
            Err(dead_letter_error) => serde_json::from_str::<Event>(line).map_err(|event_error| {
                format!("neither a dead-letter record ({dead_letter_error}) nor an event ({event_error})")
            }),
        };
        let result = event.and_then(|event| {
            tracker
                .emit_event(Arc::new(event))
                .map_err(|e| e.to_string())
        });
        if let Err(message) = result {
            progress.suspend(|| eprintln!("line {}: {message}", index + 1));
            refused += 1;
        }
    }
    progress.finish_and_clear();
    Ok(refused)
}
