//! `send --receipts FILE`: what happened to each input line's event, one JSON
//! line per event once its receipt is answered, in input order:
//! `{"line": 3, "id": "…", "outcomes": {"mongo": {"outcome": "buffered"}}}`.
//!
//! A thread of its own waits on the receipts, so reading the input never
//! waits on delivery. Each line is written with one `write` call, unbuffered:
//! what the file holds survives the process being killed.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::{mpsc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use eventtracking::Receipt;
use serde_json::{json, Map, Value};

enum Message {
    Receipt { line: u64, receipt: Receipt },
    End,
}

/// The writer of a receipts file.
pub(crate) struct ReceiptLog {
    sender: mpsc::Sender<Message>,
    writer: Mutex<Option<JoinHandle<Result<(), String>>>>,
}

impl ReceiptLog {
    /// Creates (or truncates) `path` and starts the thread that fills it.
    pub(crate) fn create(path: &Path) -> Result<Self, String> {
        let file = File::create(path)
            .map_err(|e| format!("cannot create the receipts file {}: {e}", path.display()))?;
        let (sender, messages) = mpsc::channel();
        let path = path.to_owned();
        let writer = std::thread::Builder::new()
            .name("eventtracking-receipts".into())
            .spawn(move || write_receipts(file, &path, &messages))
            .map_err(|e| format!("cannot start the receipts thread: {e}"))?;
        Ok(ReceiptLog {
            sender,
            writer: Mutex::new(Some(writer)),
        })
    }

    /// Records the receipt of the event of input line `line`.
    pub(crate) fn add(&self, line: u64, receipt: Receipt) {
        // The writer only stops after `finish` or on a write error (already reported).
        let _ = self.sender.send(Message::Receipt { line, receipt });
    }

    /// After the tracker shut down (every receipt is answered): writes what
    /// is left and waits for the writer.
    pub(crate) fn finish(&self) -> Result<(), String> {
        let _ = self.sender.send(Message::End);
        let writer = self
            .writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        match writer.map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err("the receipts thread panicked".to_owned()),
            None => Ok(()),
        }
    }
}

fn write_receipts(
    mut file: File,
    path: &Path,
    messages: &mpsc::Receiver<Message>,
) -> Result<(), String> {
    while let Ok(Message::Receipt { line, mut receipt }) = messages.recv() {
        // Unhurried: following every event must not cut batches short.
        let ack = loop {
            if let Some(ack) = receipt.wait_timeout_unhurried(Duration::from_secs(3600)) {
                break ack;
            }
        };
        let outcomes: Map<String, Value> = ack
            .outcomes()
            .map(|(backend, outcome)| {
                let outcome = serde_json::to_value(outcome).unwrap_or(Value::Null);
                (backend.to_owned(), outcome)
            })
            .collect();
        let mut text =
            json!({"line": line, "id": ack.event_id(), "outcomes": outcomes}).to_string();
        text.push('\n');
        file.write_all(text.as_bytes())
            .map_err(|e| format!("cannot write the receipts file {}: {e}", path.display()))?;
    }
    Ok(())
}
