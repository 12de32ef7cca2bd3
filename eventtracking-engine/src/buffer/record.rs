//! One record: a length-prefixed, checksummed payload.
//!
//! ```text
//! offset  size  field
//! 0       4     marker 0xE7B0_F7C5 (LE): where a reader looks for the next record after corruption
//! 4       4     payload length (LE); its top bit marks an event line (below)
//! 8       8     record id (LE)
//! 16      4     CRC-32 (crc32fast) of the length, the id and the payload
//! 20      len   payload (one event's JSON line)
//! ```
//!
//! The checksum covers the length and the id, so that a flipped length is
//! caught like a flipped payload byte (it then points past the record or at
//! bytes whose checksum does not match).
//!
//! The length's top bit ([`EVENT_LINE`]) says that the payload is an
//! event's JSON line exactly as `Event::to_json_bytes` wrote it, appended
//! by `DiskBuffer::append_event`: a reader whose checksum matched can take
//! it as written instead of validating its JSON again. Records without it
//! (appended as bytes, or by a version before the bit) read as before.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::sync::LazyLock;

/// The bytes before the payload.
pub(crate) const FRAME_HEADER: u64 = 20;
/// Marks the start of every record.
pub(crate) const MARKER: u32 = 0xE7B0_F7C5;
/// The length's top bit: the payload is an event's line as written.
pub(crate) const EVENT_LINE: u32 = 1 << 31;
/// The longest payload: the length's other bits.
pub(crate) const MAX_PAYLOAD: usize = (EVENT_LINE - 1) as usize;
/// How much a resynchronising scan reads at once.
const SCAN_CHUNK: usize = 64 * 1024;
/// The read-ahead of a [`Source`]: records are read a buffer at a time, not
/// with two syscalls each.
const READ_AHEAD: usize = 256 * 1024;

/// A segment file read through a buffer, seeking only when a read does not
/// start where the last one ended (a seek discards the buffer).
#[derive(Debug)]
pub(crate) struct Source {
    reader: BufReader<File>,
    /// Where the next buffered byte is from, when known.
    pos: Option<u64>,
}

impl Source {
    pub(crate) fn new(file: File) -> Self {
        Source {
            reader: BufReader::with_capacity(READ_AHEAD, file),
            pos: None,
        }
    }

    /// Forgets the read-ahead: bytes past the readable end of the segment
    /// being written may change (a failed write is cut back and rewritten).
    pub(crate) fn invalidate(&mut self) {
        self.pos = None;
    }

    /// Makes `offset` the next byte read.
    fn move_to(&mut self, offset: u64) -> io::Result<()> {
        if self.pos == Some(offset) {
            return Ok(());
        }
        let delta = self
            .pos
            .and_then(|pos| i64::try_from(i128::from(offset) - i128::from(pos)).ok());
        let moved = match delta {
            Some(delta) => self.reader.seek_relative(delta),
            None => self.reader.seek(SeekFrom::Start(offset)).map(drop),
        };
        if let Err(error) = moved {
            self.pos = None;
            return Err(error);
        }
        self.pos = Some(offset);
        Ok(())
    }

    /// The bytes from `offset` that the read-ahead holds, read from the
    /// file first if it holds none (so at most the rest of its buffer, and
    /// none at the end of the file): a record read where it lies, without
    /// copying. [`consume`](Self::consume) then moves past what was used.
    pub(crate) fn buffered_at(&mut self, offset: u64) -> io::Result<&[u8]> {
        self.move_to(offset)?;
        match self.reader.fill_buf() {
            Ok(bytes) => Ok(bytes),
            Err(error) => {
                self.pos = None;
                Err(error)
            }
        }
    }

    /// Moves past `n` of the bytes [`buffered_at`](Self::buffered_at) returned.
    pub(crate) fn consume(&mut self, n: usize) {
        self.reader.consume(n);
        self.pos = self.pos.map(|pos| pos + n as u64);
    }

    /// Fills `buf` from `offset`; `Ok(false)` if the file ends first.
    pub(crate) fn read_exact_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<bool> {
        self.move_to(offset)?;
        match self.reader.read_exact(buf) {
            Ok(()) => {
                self.pos = Some(offset + buf.len() as u64);
                Ok(true)
            }
            Err(error) => {
                self.pos = None;
                if error.kind() == io::ErrorKind::UnexpectedEof {
                    Ok(false)
                } else {
                    Err(error)
                }
            }
        }
    }
}

/// The CRC-32 of the length, the id and the payload, in that order.
fn checksum(len: u32, id: u64, payload: &[u8]) -> u32 {
    /// A fresh hasher, its CPU features detected once: `Hasher::new`
    /// detects them on every call, and the length and id went through
    /// crc32fast's byte-at-a-time path as two updates (together a fifth
    /// of a record's checksum).
    static FRESH: LazyLock<crc32fast::Hasher> = LazyLock::new(crc32fast::Hasher::new);
    let mut header = [0u8; 12];
    header[..4].copy_from_slice(&len.to_le_bytes());
    header[4..].copy_from_slice(&id.to_le_bytes());
    let mut hasher = FRESH.clone();
    hasher.update(&header);
    hasher.update(payload);
    hasher.finalize()
}

/// Appends the frame of one record to `out`, marked as an event line if
/// `event_line`. The caller checked that the payload is at most
/// [`MAX_PAYLOAD`] bytes.
pub(crate) fn encode(id: u64, payload: &[u8], event_line: bool, out: &mut Vec<u8>) {
    let len = u32::try_from(payload.len().min(MAX_PAYLOAD)).unwrap_or(EVENT_LINE - 1)
        | if event_line { EVENT_LINE } else { 0 };
    out.reserve(FRAME_HEADER as usize + payload.len());
    out.extend_from_slice(&MARKER.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(&checksum(len, id, payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// What is at an offset of a segment.
#[derive(Debug)]
pub(crate) enum Parsed {
    /// A whole record whose checksum matches, its payload in the caller's
    /// buffer; `next` is where the following one starts; `event_line` if it
    /// was marked as an event's line as written.
    Record {
        id: u64,
        next: u64,
        event_line: bool,
    },
    /// Bytes that are not a whole, valid record, up to `next`: the start of
    /// the next valid record (`resynced`), or `end` when there is none.
    Corrupt { next: u64, resynced: bool },
    /// `offset` is at (or past) `end`.
    End,
}

/// The id of the record at `offset`, and whether it is marked as an event
/// line, if one whole, valid record starts there and ends at or before
/// `end`; its payload is then in `payload` (a buffer reused record after
/// record: no allocation per record).
pub(crate) fn record_at(
    file: &mut Source,
    offset: u64,
    end: u64,
    payload: &mut Vec<u8>,
) -> io::Result<Option<(u64, bool)>> {
    if end.saturating_sub(offset) < FRAME_HEADER {
        return Ok(None);
    }
    let mut header = [0u8; FRAME_HEADER as usize];
    // A file shorter than `end` (cut by someone else) holds no record there.
    if !file.read_exact_at(offset, &mut header)? {
        return Ok(None);
    }
    // Checked before allocating: a garbage length never allocates more
    // than the file holds.
    let Some(frame) = Frame::of_header(&header, end - offset) else {
        return Ok(None);
    };
    payload.clear();
    payload.resize(frame.len, 0);
    if !file.read_exact_at(offset + FRAME_HEADER, payload)? || !frame.matches(payload) {
        return Ok(None);
    }
    Ok(Some((frame.id, frame.event_line)))
}

/// A record's header, read.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Frame {
    pub(crate) id: u64,
    /// The payload's length.
    pub(crate) len: usize,
    pub(crate) event_line: bool,
    marked_len: u32,
    crc: u32,
}

impl Frame {
    /// The header at the start of `bytes`, if it is one whose record fits
    /// in the `room` bytes left before the segment's end.
    fn of_header(bytes: &[u8], room: u64) -> Option<Frame> {
        let word = |at: usize| bytes[at..].first_chunk().map(|&b| u32::from_le_bytes(b));
        if word(0)? != MARKER {
            return None;
        }
        let marked_len = word(4)?;
        let len = marked_len & !EVENT_LINE;
        if u64::from(len) > room.checked_sub(FRAME_HEADER)? {
            return None;
        }
        Some(Frame {
            id: u64::from_le_bytes(*bytes[8..].first_chunk()?),
            len: len as usize,
            event_line: marked_len & EVENT_LINE != 0,
            marked_len,
            crc: word(16)?,
        })
    }

    /// Whether `payload` is this record's: its checksum matches.
    fn matches(&self, payload: &[u8]) -> bool {
        checksum(self.marked_len, self.id, payload) == self.crc
    }
}

/// The whole, valid record at the start of `bytes` (read from a record's
/// offset, `room` bytes before the segment's end), and its payload, where
/// it lies. `None` when `bytes` hold no such record, because it goes on
/// past them or is not valid: [`parse_at`] then reads it, or tells what
/// is there instead.
pub(crate) fn whole_record(bytes: &[u8], room: u64) -> Option<(Frame, &[u8])> {
    let frame = Frame::of_header(bytes, room)?;
    let payload = bytes.get(FRAME_HEADER as usize..)?.get(..frame.len)?;
    frame.matches(payload).then_some((frame, payload))
}

/// The first offset after `from` (exclusive) and before `end` where a valid
/// record starts, if any.
pub(crate) fn resync(file: &mut Source, from: u64, end: u64) -> io::Result<Option<u64>> {
    let marker = MARKER.to_le_bytes();
    let mut start = from.saturating_add(1);
    let mut chunk = vec![0u8; SCAN_CHUNK];
    let mut payload = Vec::new();
    while end.saturating_sub(start) >= FRAME_HEADER {
        let want = usize::try_from((end - start).min(SCAN_CHUNK as u64)).unwrap_or(SCAN_CHUNK);
        if !file.read_exact_at(start, &mut chunk[..want])? {
            return Ok(None);
        }
        let window = &chunk[..want];
        for at in 0..want.saturating_sub(marker.len() - 1) {
            if window[at..at + marker.len()] == marker {
                let candidate = start + at as u64;
                if record_at(file, candidate, end, &mut payload)?.is_some() {
                    return Ok(Some(candidate));
                }
            }
        }
        // Overlap by the marker's length less one, so that a marker across
        // two chunks is still seen.
        start += (want - (marker.len() - 1)) as u64;
    }
    Ok(None)
}

/// What starts at `offset` (before `end`); a record's payload goes to `payload`.
pub(crate) fn parse_at(
    file: &mut Source,
    offset: u64,
    end: u64,
    payload: &mut Vec<u8>,
) -> io::Result<Parsed> {
    if offset >= end {
        return Ok(Parsed::End);
    }
    if let Some((id, event_line)) = record_at(file, offset, end, payload)? {
        let next = offset + FRAME_HEADER + payload.len() as u64;
        return Ok(Parsed::Record {
            id,
            next,
            event_line,
        });
    }
    Ok(match resync(file, offset, end)? {
        Some(next) => Parsed::Corrupt {
            next,
            resynced: true,
        },
        None => Parsed::Corrupt {
            next: end,
            resynced: false,
        },
    })
}

/// The bytes of `[from, to)`, fewer if the file ends first.
pub(crate) fn read_range(file: &mut Source, from: u64, to: u64) -> io::Result<Vec<u8>> {
    let len = usize::try_from(to.saturating_sub(from))
        .map_err(|_| io::Error::from(io::ErrorKind::OutOfMemory))?;
    let mut bytes = vec![0u8; len];
    if file.read_exact_at(from, &mut bytes)? {
        return Ok(bytes);
    }
    // Short: what there is, a byte at a time through the read-ahead.
    bytes.clear();
    let mut byte = [0u8; 1];
    while bytes.len() < len && file.read_exact_at(from + bytes.len() as u64, &mut byte)? {
        bytes.push(byte[0]);
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file_of(bytes: &[u8]) -> (tempfile::NamedTempFile, Source) {
        let mut named = tempfile::NamedTempFile::new().unwrap();
        named.write_all(bytes).unwrap();
        let file = Source::new(File::open(named.path()).unwrap());
        (named, file)
    }

    /// One record's frame and payload.
    fn record(id: u64, payload: &[u8], event_line: bool) -> Vec<u8> {
        let mut bytes = Vec::new();
        encode(id, payload, event_line, &mut bytes);
        bytes
    }

    /// `parse_at` over the whole of `bytes`, written to a file: what it
    /// found, and the payload it read.
    fn parse_whole(bytes: &[u8]) -> (Parsed, Vec<u8>) {
        let (_keep, mut file) = file_of(bytes);
        let mut payload = Vec::new();
        let parsed = parse_at(&mut file, 0, bytes.len() as u64, &mut payload).unwrap();
        (parsed, payload)
    }

    #[test]
    fn a_record_reads_back_and_a_flipped_length_is_caught() {
        let mut bytes = record(7, b"{\"a\":1}", false);
        let end = bytes.len() as u64;
        let (parsed, payload) = parse_whole(&bytes);
        match parsed {
            Parsed::Record {
                id,
                next,
                event_line,
            } => assert_eq!(
                (id, payload.as_slice(), next, event_line),
                (7, &b"{\"a\":1}"[..], end, false)
            ),
            other => panic!("{other:?}"),
        }
        // A shorter length still fits in the file: only the checksum catches it.
        bytes[4] -= 1;
        assert!(
            matches!(parse_whole(&bytes).0, Parsed::Corrupt { next, resynced: false } if next == end)
        );
    }

    #[test]
    fn resync_finds_the_record_after_garbage_across_a_chunk_boundary() {
        let mut bytes = vec![0xAB; SCAN_CHUNK - 2];
        let at = bytes.len() as u64;
        encode(1, b"x", false, &mut bytes);
        let (_keep, mut file) = file_of(&bytes);
        assert_eq!(resync(&mut file, 0, bytes.len() as u64).unwrap(), Some(at));
    }

    #[test]
    fn a_file_shorter_than_believed_is_no_record_and_no_error() {
        let bytes = record(1, b"payload", false);
        let (_keep, mut file) = file_of(&bytes[..10]);
        let end = bytes.len() as u64;
        let mut payload = Vec::new();
        assert!(
            matches!(parse_at(&mut file, 0, end, &mut payload).unwrap(), Parsed::Corrupt { next, resynced: false } if next == end)
        );
        assert_eq!(read_range(&mut file, 0, end).unwrap(), &bytes[..10]);
    }

    #[test]
    fn the_event_line_mark_reads_back_and_is_under_the_checksum() {
        let mut bytes = record(3, b"line", true);
        let end = bytes.len() as u64;
        let (parsed, payload) = parse_whole(&bytes);
        assert!(matches!(
            parsed,
            Parsed::Record { id: 3, event_line: true, next } if next == end && payload == b"line"
        ));
        // The mark flipped off (or on) is a corrupt record, not a change of kind.
        bytes[7] ^= 0x80;
        assert!(matches!(parse_whole(&bytes).0, Parsed::Corrupt { .. }));
    }
}
