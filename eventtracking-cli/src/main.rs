//! The `eventtracking` command.
//!
//! | command | does |
//! |---|---|
//! | `eventtracking demo [--config FILE] [--count N]` | runs the seed example N times through the pipeline |
//! | `eventtracking send [--config FILE]` | reads events as JSON lines (`{"name", "data", "context"?}`) from stdin |
//! | `eventtracking replay FILE [--config FILE]` | re-sends a dead-letter file (or a file of events) |
//! | `eventtracking import --from FORMAT FILE... [--config FILE]` | imports the logs of another tracker (the Python original's), keeping their times, with deterministic ids |
//! | `eventtracking engines` | lists the backend and processor engines linked in |
//! | `eventtracking catalog [--format json\|markdown\|html]` | documents the typed event types linked in (the demo's at least); `html` is the collector's `GET /catalog` page as one self-contained file |
//! | `eventtracking relay --config FILE` | reads events from Kafka (the config's `[source]`) into its backends, committing offsets after delivery; SIGINT/SIGTERM stop it cleanly |
//! | `eventtracking buffers --config FILE` | what each backend's disk buffer (`buffer = "disk"`) holds: events, bytes, segments, the oldest event's time |
//! | `eventtracking drain --config FILE` | delivers what the disk buffers hold (progress bar: events and bytes left), exits 0 once they are empty |
//! | `eventtracking serve --config FILE` | the HTTP collector (the config's `[collector]`): `POST /v1/events` into its backends until SIGINT/SIGTERM, then the delivery report |
//!
//! Without `--config` (or `EVENTTRACKING_CONFIG`) the pipeline is the
//! embedded default: JSON lines on stdout. The delivery report goes to
//! stderr. Exit codes: 0 success, 1 some input lines were refused or events
//! were dropped or failed, 2 bad usage or config.
//!
//! `demo`, `send`, `replay` and `import` (module `bulk`) default to `overflow =
//! "block"`, stop on SIGINT/SIGTERM (delivering what was accepted within
//! `--timeout`, dead-lettering the rest; a second signal: at once), and read
//! their input through the library's `input` module (bounded lines).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use eventtracking::{context, registry, Event, Receipt, Tracker};
use eventtracking_cli::input::{self, LineReader, DEFAULT_MAX_LINE_BYTES};
// Linked for its `tracing` backend engine (registered at link time).
use eventtracking_tracing as _;

mod allocator;
mod buffers_command;
mod bulk;
mod import_command;
mod output;
mod receipts;
mod relay_command;
mod seed;
mod serve_command;

use bulk::{PipelineArgs, Progress};

#[derive(Debug, Parser)]
#[command(
    name = "eventtracking",
    version,
    about = "Context-aware event tracking: demo, send, replay, import, engines, relay, serve"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Args)]
struct InputArgs {
    /// The longest input line, in bytes; a longer one is refused (with its
    /// line number) without being read into memory, and reading goes on.
    #[arg(long, default_value_t = DEFAULT_MAX_LINE_BYTES as u64, value_name = "BYTES",
          value_parser = clap::value_parser!(u64).range(1..))]
    max_line_bytes: u64,
}

impl InputArgs {
    fn max_line_bytes(&self) -> usize {
        usize::try_from(self.max_line_bytes).unwrap_or(usize::MAX)
    }
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
    /// Read events as JSON lines from stdin: {"name": ..., "data": ..., "context": {...}?,
    /// "timestamp": RFC 3339?, "id": UUID?}. Without timestamp the event is stamped now;
    /// without id it gets a fresh UUIDv7.
    Send {
        #[command(flatten)]
        pipeline: PipelineArgs,
        #[command(flatten)]
        input: InputArgs,
        /// Write what happened to each event to FILE, one JSON line per event
        /// once every backend has answered, in input order: {"line": N,
        /// "id": UUID, "outcomes": {"BACKEND": {"outcome": "delivered" |
        /// "buffered" | "dead_lettered" | "dropped" | "filtered", "reason"?}}}.
        #[arg(long, value_name = "FILE")]
        receipts: Option<PathBuf>,
    },
    /// Re-send the events of a dead-letter file (or a file of plain events), keeping their ids.
    Replay {
        /// The JSON-lines file to replay.
        file: PathBuf,
        #[command(flatten)]
        pipeline: PipelineArgs,
        #[command(flatten)]
        input: InputArgs,
    },
    /// Import the logs of another event tracker (--from), keeping each event's
    /// time and giving it an id derived from its line (importing twice stores
    /// nothing new where the store keys on ids, as MongoDB does).
    Import(import_command::ImportArgs),
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
    Relay(relay_command::RelayArgs),
    /// Collect events over HTTP (POST /v1/events; the config's [collector])
    /// into the config's backends until SIGINT/SIGTERM, then print the report.
    Serve(serve_command::ServeArgs),
    /// Show what each backend's disk buffer (buffer = "disk") holds: events,
    /// bytes, segments and the oldest event's time.
    Buffers(buffers_command::BuffersArgs),
    /// Deliver what the backends' disk buffers hold, with a progress bar of
    /// events and bytes left; exit 0 once every buffer is empty.
    Drain(buffers_command::DrainArgs),
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
        Command::Relay(args) => relay_command::run(args),
        Command::Serve(args) => serve_command::run(args),
        Command::Buffers(args) => buffers_command::buffers(args),
        Command::Drain(args) => buffers_command::drain(args),
        Command::Import(args) => import_command::run(args),
        Command::Demo { pipeline, count } => {
            bulk::run(&pipeline, None, move |tracker, progress| {
                for i in 0..count {
                    if progress.stopped()
                        || (i % output::CHECK_EVERY == 0 && output::all_closed(tracker))
                    {
                        break;
                    }
                    seed::run(tracker).map_err(|e| e.to_string())?;
                }
                Ok(())
            })
        }
        Command::Send {
            pipeline,
            input,
            receipts,
        } => bulk::run(&pipeline, receipts.as_deref(), move |tracker, progress| {
            send(
                tracker,
                std::io::stdin().lock(),
                input.max_line_bytes(),
                progress,
            )
        }),
        Command::Replay {
            file,
            pipeline,
            input,
        } => bulk::run(&pipeline, None, move |tracker, progress| {
            replay(tracker, &file, input.max_line_bytes(), progress)
        }),
    }
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
/// The formats of `eventtracking catalog`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum CatalogFormat {
    /// `{"event_types": [...]}` with each type's JSON Schema.
    Json,
    /// A document with one section per event type.
    Markdown,
    /// One self-contained web page with a search box: what the collector
    /// serves at `GET /catalog`.
    Html,
}

fn catalog(format: CatalogFormat) -> Result<ExitCode, String> {
    let catalog = eventtracking::catalog().map_err(|e| e.to_string())?;
    let text = match format {
        CatalogFormat::Json => {
            let mut text =
                serde_json::to_string_pretty(&catalog.to_json()).map_err(|e| e.to_string())?;
            text.push('\n');
            text
        }
        CatalogFormat::Markdown => catalog.to_markdown(),
        CatalogFormat::Html => eventtracking_collector::catalog_html(catalog),
    };
    print_stdout(&text)
}

fn engines() -> Result<ExitCode, String> {
    use std::fmt::Write as _;
    let backends = registry::backend_engines().map_err(|e| e.to_string())?;
    let processors = registry::processor_engines().map_err(|e| e.to_string())?;
    let mut text = String::from("backend engines:\n");
    for r in backends {
        let _ = match r.batch_size() {
            Some(n) => writeln!(
                text,
                "  {:<10} {} (batch_size {n} unless configured)",
                r.name(),
                r.description()
            ),
            None => writeln!(text, "  {:<10} {}", r.name(), r.description()),
        };
    }
    text.push_str("processor engines:\n");
    for r in processors {
        let _ = writeln!(text, "  {:<10} {}", r.name(), r.description());
    }
    print_stdout(&text)
}

/// Writes `text` to stdout. A reader that went away (`eventtracking engines
/// | head -1`) is not an error: the command's output was simply not wanted.
fn print_stdout(text: &str) -> Result<ExitCode, String> {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        Err(error) => Err(format!("cannot write to stdout: {error}")),
    }
}

/// Emits each line of `input`; a refused line is reported with its number.
fn send(
    tracker: &Tracker,
    input: impl std::io::BufRead,
    max_line_bytes: usize,
    progress: &Progress,
) -> Result<(), String> {
    let mut reader = LineReader::new(input, max_line_bytes);
    while !progress.stopped() {
        let (number, line) = match reader.next_line() {
            Ok(Some(line)) => line,
            Ok(None) => break,
            Err(e) => return Err(format!("cannot read the input: {e}")),
        };
        let acked = progress.receipts.is_some();
        let result = line
            .and_then(input::parse_send_line)
            .map_err(|e| e.to_string())
            .and_then(|line| {
                let Some(line) = line else { return Ok(None) };
                if line.id.is_some() || line.timestamp.is_some() {
                    return emit_kept(tracker, line, acked);
                }
                let emit = || {
                    if acked {
                        tracker.emit_acked(&line.name, &line.data).map(Some)
                    } else {
                        tracker
                            .emit_value(&line.name, line.data.clone())
                            .map(|()| None)
                    }
                };
                match &line.context {
                    Some(ctx) => {
                        context::with_context("send", ctx, emit).map_err(|e| e.to_string())?
                    }
                    None => emit(),
                }
                .map_err(|e| e.to_string())
            });
        match result {
            Ok(Some(receipt)) => {
                if let Some(receipts) = &progress.receipts {
                    receipts.add(number, receipt);
                }
            }
            Ok(None) => {}
            Err(message) => {
                eprintln!("line {number}: {message}");
                progress.refuse();
            }
        }
    }
    Ok(())
}

/// Emits a `send` line that gives its own `id` and/or `timestamp`: the event
/// keeps them (a missing one is made as `emit` makes it), in the current
/// contexts with the line's `context` over them.
fn emit_kept(
    tracker: &Tracker,
    line: input::SendLine,
    acked: bool,
) -> Result<Option<Receipt>, String> {
    eventtracking::validate_event_name(&line.name).map_err(|e| e.to_string())?;
    let mut context = context::current();
    if let Some(extra) = line.context {
        Arc::make_mut(&mut context).extend(extra);
    }
    let event = Event::from_parts(
        line.id.unwrap_or_else(Event::new_id),
        line.name.as_str().into(),
        line.timestamp.unwrap_or_else(std::time::SystemTime::now),
        context,
        line.data,
    );
    let event = Arc::new(event);
    if acked {
        tracker.emit_event_acked(event).map(Some)
    } else {
        tracker.emit_event(event).map(|()| None)
    }
    .map_err(|e| e.to_string())
}

/// Re-emits every event of `path`, streaming it (progress by bytes).
fn replay(
    tracker: &Tracker,
    path: &Path,
    max_line_bytes: usize,
    progress: &Progress,
) -> Result<(), String> {
    let file =
        std::fs::File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    // Only what the file holds now: replaying a dead-letter file into a
    // pipeline whose dead letters go to the same file must not read its own output.
    let size = file
        .metadata()
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?
        .len();
    let bar = indicatif::ProgressBar::new(size).with_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut reader = LineReader::new(
        std::io::BufReader::new(std::io::Read::take(file, size)),
        max_line_bytes,
    );
    while !progress.stopped() {
        let (number, line) = match reader.next_line() {
            Ok(Some(line)) => line,
            Ok(None) => break,
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        let result = line
            .and_then(input::parse_replay_line)
            .map_err(|e| e.to_string())
            .and_then(|event| match event {
                Some(event) => tracker
                    .emit_event(Arc::new(event))
                    .map_err(|e| e.to_string()),
                None => Ok(()),
            });
        bar.set_position(reader.bytes_read());
        if let Err(message) = result {
            bar.suspend(|| eprintln!("line {number}: {message}"));
            progress.refuse();
        }
    }
    bar.finish_and_clear();
    Ok(())
}
