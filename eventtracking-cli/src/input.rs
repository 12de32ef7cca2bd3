//! The input of `send` and `replay`: JSON lines read with a bounded line
//! length, and parsed by pure functions.
//!
//! A line longer than the limit is skipped without being held in memory; a
//! line that is not UTF-8 or not an event is refused. Either way the caller
//! reports it with its line number and reading goes on.

use std::io::{BufRead, ErrorKind};
use std::time::SystemTime;

use eventtracking::uuid::Uuid;
use eventtracking::{DeadLetterRecord, Event};
use serde::Deserialize;
use serde_json::Value;

/// The default `--max-line-bytes`: 16 MiB.
pub const DEFAULT_MAX_LINE_BYTES: usize = 16 << 20;

/// One line of `send`'s input: `{"name": ..., "data": ..., "context": {...}?,
/// "timestamp": "RFC 3339"?, "id": "UUID"?}`.
///
/// Without `timestamp` the event is stamped when it is sent; with one, it
/// keeps that time (RFC 3339 with any offset, kept to the microsecond, between
/// 1970 and 9999). Without `id` it gets a fresh UUIDv7; with one (any UUID
/// version) it keeps it, so sending a line twice stores one event where the
/// store keys on the id (MongoDB).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SendLine {
    /// The event name.
    pub name: String,
    /// The payload (`null` when absent).
    pub data: Value,
    /// Extra context, merged over the ambient contexts.
    pub context: Option<serde_json::Map<String, Value>>,
    /// The event time, when the line gives one.
    pub timestamp: Option<SystemTime>,
    /// The event id, when the line gives one.
    pub id: Option<Uuid>,
}

/// `SendLine` as read, before `timestamp` and `id` are checked.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSendLine {
    name: String,
    #[serde(default)]
    data: Value,
    #[serde(default)]
    context: Option<serde_json::Map<String, Value>>,
    #[serde(default)]
    timestamp: Option<Value>,
    #[serde(default)]
    id: Option<Value>,
}

/// Why a line was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LineError {
    /// Longer than the limit; skipped without being read into memory.
    #[error("longer than --max-line-bytes ({max} bytes); skipped")]
    TooLong {
        /// The limit.
        max: usize,
    },
    /// Not UTF-8.
    #[error("not UTF-8 (invalid byte at offset {offset})")]
    NotUtf8 {
        /// Where the first invalid byte is.
        offset: usize,
    },
    /// Not a `send` event line.
    #[error("not an event ({0})")]
    NotAnEvent(String),
    /// A key with a value it cannot have.
    #[error("bad {key} {value}: {reason}")]
    BadValue {
        /// The key (`timestamp`, `id`).
        key: &'static str,
        /// The value, as JSON.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Neither a dead-letter record nor an event.
    #[error("neither a dead-letter record ({record}) nor an event ({event})")]
    NotReplayable {
        /// Why it is not a dead-letter record.
        record: String,
        /// Why it is not an event.
        event: String,
    },
}

fn utf8(line: &[u8]) -> Result<&str, LineError> {
    std::str::from_utf8(line).map_err(|e| LineError::NotUtf8 {
        offset: e.valid_up_to(),
    })
}

/// Parses one line of `send`'s input; `None` for a blank line.
///
/// ```
/// use eventtracking_cli::input::{parse_send_line, LineError};
/// let line = parse_send_line(br#"{"name": "a", "data": 1}"#).unwrap().unwrap();
/// assert_eq!(line.name, "a");
/// assert!(parse_send_line(b"  \r").unwrap().is_none());
/// assert!(matches!(parse_send_line(b"\xff"), Err(LineError::NotUtf8 { offset: 0 })));
/// let kept = parse_send_line(br#"{"name": "a", "timestamp": "2026-01-01T01:00:00.5+01:00", "id": "0190c4b4-4f5e-7c3a-8b4e-1a2b3c4d5e6f"}"#).unwrap().unwrap();
/// assert_eq!(kept.id.unwrap().to_string(), "0190c4b4-4f5e-7c3a-8b4e-1a2b3c4d5e6f");
/// assert!(matches!(parse_send_line(br#"{"name": "a", "timestamp": "2026-01-01"}"#), Err(LineError::BadValue { key: "timestamp", .. })));
/// ```
pub fn parse_send_line(line: &[u8]) -> Result<Option<SendLine>, LineError> {
    let text = utf8(line)?;
    if text.trim().is_empty() {
        return Ok(None);
    }
    let raw: RawSendLine =
        serde_json::from_str(text).map_err(|e| LineError::NotAnEvent(e.to_string()))?;
    let bad = |key, value: &Value, reason: String| LineError::BadValue {
        key,
        value: value.to_string(),
        reason,
    };
    let timestamp = match &raw.timestamp {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => Some(
            crate::import::parse_rfc3339(text)
                .map_err(|reason| bad("timestamp", &Value::String(text.clone()), reason))?,
        ),
        Some(other) => return Err(bad("timestamp", other, "not RFC 3339 text".into())),
    };
    let id = match &raw.id {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => Some(
            Uuid::parse_str(text)
                .map_err(|e| bad("id", &Value::String(text.clone()), e.to_string()))?,
        ),
        Some(other) => return Err(bad("id", other, "not UUID text".into())),
    };
    Ok(Some(SendLine {
        name: raw.name,
        data: raw.data,
        context: raw.context,
        timestamp,
        id,
    }))
}

/// Parses one line of a file to replay: a dead-letter record (its event) or
/// a plain event; `None` for a blank line.
///
/// ```
/// use eventtracking_cli::input::parse_replay_line;
/// let line = br#"{"id":"0190c4b4-4f5e-7c3a-8b4e-1a2b3c4d5e6f","name":"a","timestamp":"2026-01-01T00:00:00.000000Z","context":{},"data":1}"#;
/// assert_eq!(parse_replay_line(line).unwrap().unwrap().name(), "a");
/// assert!(parse_replay_line(b"{}").is_err());
/// ```
pub fn parse_replay_line(line: &[u8]) -> Result<Option<Event>, LineError> {
    let text = utf8(line)?;
    if text.trim().is_empty() {
        return Ok(None);
    }
    match serde_json::from_str::<DeadLetterRecord>(text) {
        Ok(record) => Ok(Some(record.event)),
        Err(record) => serde_json::from_str::<Event>(text)
            .map(Some)
            .map_err(|event| LineError::NotReplayable {
                record: record.to_string(),
                event: event.to_string(),
            }),
    }
}

/// One line read by [`LineReader::next_line`]: its 1-based number, and its
/// bytes (without the `\n`) or why it was skipped.
pub type NumberedLine<'a> = (u64, Result<&'a [u8], LineError>);

/// Reads lines (bytes, split on `\n`) holding at most `max` bytes of one line.
#[derive(Debug)]
pub struct LineReader<R> {
    inner: R,
    max: usize,
    line: Vec<u8>,
    number: u64,
    bytes: u64,
}

impl<R: BufRead> LineReader<R> {
    /// Reads `inner`, refusing lines longer than `max` bytes.
    pub fn new(inner: R, max: usize) -> Self {
        LineReader {
            inner,
            max,
            line: Vec::new(),
            number: 0,
            bytes: 0,
        }
    }

    /// Bytes consumed so far (for progress).
    pub fn bytes_read(&self) -> u64 {
        self.bytes
    }

    /// The next line (without its `\n`) and its 1-based number; `Ok(None)`
    /// at the end. A line over the limit is consumed and comes back as
    /// [`LineError::TooLong`].
    pub fn next_line(&mut self) -> std::io::Result<Option<NumberedLine<'_>>> {
        self.line.clear();
        let mut too_long = false;
        let mut any = false;
        loop {
            let available = match self.inner.fill_buf() {
                Ok(available) => available,
                Err(error) if error.kind() == ErrorKind::Interrupted => continue,
                Err(error) => return Err(error),
            };
            if available.is_empty() {
                if !any {
                    return Ok(None);
                }
                break;
            }
            any = true;
            let newline = available.iter().position(|&b| b == b'\n');
            let chunk = &available[..newline.unwrap_or(available.len())];
            if !too_long {
                if self.line.len() + chunk.len() > self.max {
                    too_long = true;
                    self.line = Vec::new();
                } else {
                    self.line.extend_from_slice(chunk);
                }
            }
            let used = newline.map_or(available.len(), |at| at + 1);
            self.inner.consume(used);
            self.bytes += used as u64;
            if newline.is_some() {
                break;
            }
        }
        self.number += 1;
        let line = if too_long {
            Err(LineError::TooLong { max: self.max })
        } else {
            Ok(self.line.as_slice())
        };
        Ok(Some((self.number, line)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_and_bad_lines_are_refused_and_reading_goes_on() {
        let mut input = Vec::new();
        input.extend_from_slice(b"abc\n");
        input.extend(std::iter::repeat_n(b'x', 100));
        input.extend_from_slice(b"\n\xff\xfe\nlast");
        let mut reader = LineReader::new(std::io::BufReader::with_capacity(7, &input[..]), 10);
        let mut lines = Vec::new();
        while let Some((number, line)) = reader.next_line().unwrap() {
            lines.push((number, line.map(<[u8]>::to_vec)));
        }
        assert_eq!(
            lines,
            [
                (1, Ok(b"abc".to_vec())),
                (2, Err(LineError::TooLong { max: 10 })),
                (3, Ok(b"\xff\xfe".to_vec())),
                (4, Ok(b"last".to_vec())),
            ]
        );
        assert_eq!(reader.bytes_read(), input.len() as u64);
        assert!(matches!(
            parse_send_line(b"\xff\xfe"),
            Err(LineError::NotUtf8 { offset: 0 })
        ));
    }
}
