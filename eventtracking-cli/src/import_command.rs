//! `eventtracking import --from FORMAT FILE...`: the logs of another event
//! tracker into the config's backends.
//!
//! Each file is streamed line by line (bounded lines, as `replay`); a line is
//! parsed by the library's `import` module into an event that keeps its time
//! and gets an id derived from the line, so importing twice stores nothing
//! new where the store keys on ids (MongoDB). A line that cannot be read is
//! written to the dead-letter file (the config's `[delivery]
//! dead_letter_path`) as an `eventtracking.import.unreadable` event saying
//! which file and line, with the line's text and why, and the import goes on.
//! A progress bar (on a terminal) shows bytes and events; a summary ends it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use eventtracking::delivery::DeadLetterWriter;
use eventtracking::{Event, Tracker};
use eventtracking_cli::import::{parse_python_eventtracking_line, ImportError};
use eventtracking_cli::input::LineReader;
use serde_json::json;

use crate::bulk::{self, PipelineArgs, Progress};
use crate::{chain, InputArgs};

/// The name of the dead-letter event standing for an unreadable line.
pub(crate) const UNREADABLE_EVENT: &str = "eventtracking.import.unreadable";

/// The formats `import` reads (`--from`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ImportFormat {
    /// The JSON lines of edX's Python `event-tracking` (its LoggerBackend, or
    /// a mongoexport of its MongoBackend): name, timestamp, context, data.
    PythonEventtracking,
}

impl ImportFormat {
    fn parse(self, line: &[u8]) -> Result<Option<Event>, ImportError> {
        match self {
            ImportFormat::PythonEventtracking => parse_python_eventtracking_line(line),
        }
    }
}

#[derive(Debug, clap::Args)]
pub(crate) struct ImportArgs {
    /// The format of the files.
    #[arg(long, value_enum, value_name = "FORMAT")]
    from: ImportFormat,
    /// The JSON-lines files to import, in order.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    #[command(flatten)]
    pipeline: PipelineArgs,
    #[command(flatten)]
    input: InputArgs,
}

/// What the import did, for its summary.
#[derive(Debug, Default)]
struct Summary {
    lines: u64,
    imported: u64,
    unreadable: u64,
    bytes: u64,
}

pub(crate) fn run(args: ImportArgs) -> Result<ExitCode, String> {
    let config =
        eventtracking::load_config(args.pipeline.config.as_deref()).map_err(|e| chain(&e))?;
    let dead_letter_path = config
        .delivery_config()
        .map_err(|e| chain(&e))?
        .dead_letter_path;
    // Every file is checked before anything is imported; each is read up to
    // the size it has now.
    let mut sizes = Vec::with_capacity(args.files.len());
    for path in &args.files {
        let size = std::fs::metadata(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?
            .len();
        sizes.push(size);
    }
    let ImportArgs {
        from,
        files,
        pipeline,
        input,
    } = args;
    let max_line_bytes = input.max_line_bytes();
    bulk::run(&pipeline, None, move |tracker, progress| {
        let total: u64 = sizes.iter().sum();
        let bar = indicatif::ProgressBar::new(total).with_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        let dead_letters = DeadLetterWriter::shared(&dead_letter_path);
        let mut summary = Summary::default();
        let mut result = Ok(());
        for (path, size) in files.iter().zip(sizes) {
            if progress.stopped() {
                break;
            }
            result = import_file(
                tracker,
                from,
                path,
                size,
                max_line_bytes,
                &dead_letters,
                progress,
                &bar,
                &mut summary,
            );
            if result.is_err() {
                break;
            }
        }
        bar.finish_and_clear();
        eprintln!(
            "eventtracking import: {} file(s), {} bytes, {} line(s): {} event(s) imported, {} unreadable{}",
            files.len(),
            summary.bytes,
            summary.lines,
            summary.imported,
            summary.unreadable,
            if summary.unreadable > 0 {
                format!(" (in the dead-letter file {})", dead_letter_path.display())
            } else {
                String::new()
            }
        );
        result
    })
}

#[allow(clippy::too_many_arguments)]
fn import_file(
    tracker: &Tracker,
    format: ImportFormat,
    path: &Path,
    size: u64,
    max_line_bytes: usize,
    dead_letters: &DeadLetterWriter,
    progress: &Progress,
    bar: &indicatif::ProgressBar,
    summary: &mut Summary,
) -> Result<(), String> {
    let file =
        std::fs::File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut reader = LineReader::new(
        std::io::BufReader::new(std::io::Read::take(file, size)),
        max_line_bytes,
    );
    let start = summary.bytes;
    while !progress.stopped() {
        let (number, line) = match reader.next_line() {
            Ok(Some(line)) => line,
            Ok(None) => break,
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        let (outcome, text) = match line {
            Ok(bytes) => (
                format.parse(bytes).map_err(|e| e.to_string()),
                Some(String::from_utf8_lossy(bytes).into_owned()),
            ),
            Err(e) => (Err(e.to_string()), None),
        };
        let outcome = outcome.and_then(|event| match event {
            Some(event) => tracker
                .emit_event(Arc::new(event))
                .map(|()| true)
                .map_err(|e| e.to_string()),
            None => Ok(false),
        });
        summary.lines += 1;
        match outcome {
            Ok(true) => summary.imported += 1,
            Ok(false) => {}
            Err(message) => {
                summary.unreadable += 1;
                progress.refuse();
                let written = dead_letter(dead_letters, path, number, text, &message);
                bar.suspend(|| {
                    eprintln!("{} line {number}: {message}", path.display());
                    if let Err(error) = written {
                        eprintln!("eventtracking import: {error}");
                    }
                });
            }
        }
        summary.bytes = start + reader.bytes_read();
        bar.set_position(summary.bytes);
        bar.set_message(format!("{} events", summary.imported));
    }
    Ok(())
}

/// Writes an unreadable line to the dead-letter file: an
/// `eventtracking.import.unreadable` event with the file, line number, text
/// (absent for a line over the length limit) and error; the reason names the
/// file and line too.
fn dead_letter(
    writer: &DeadLetterWriter,
    path: &Path,
    number: u64,
    text: Option<String>,
    message: &str,
) -> Result<(), String> {
    let file = path.display().to_string();
    let event = Event::new(
        UNREADABLE_EVENT,
        json!({"file": file, "line": number, "text": text, "error": message}),
    )
    .map_err(|e| e.to_string())?;
    let reason = format!("unreadable: {file} line {number}: {message}");
    let outcome = writer.write("import", &reason, 0, &[Arc::new(event)]);
    match outcome.error {
        None => Ok(()),
        Some(error) => Err(format!(
            "{file} line {number} could not be dead-lettered in {}: {error}",
            writer.path().display()
        )),
    }
}
