//! The ledger: where reading resumes after a restart, in a small file
//! replaced atomically (temp file, fsync, rename, fsync of the directory),
//! so that a crash leaves the old or the new position, never a torn one.
//!
//! ```text
//! offset  size  field
//! 0       8     magic "ETBUFLDG"
//! 8       4     format version (1, LE)
//! 12      4     CRC-32 of bytes 0..12 and 16..40
//! 16      8     segment of the first unacknowledged byte (LE)
//! 24      8     offset in that segment (LE)
//! 32      8     id of the first unacknowledged record (LE)
//! ```

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::segment;

const MAGIC: &[u8; 8] = b"ETBUFLDG";
const VERSION: u32 = 1;
const LEN: usize = 40;
/// The ledger's file name.
pub(crate) const FILE_NAME: &str = "ledger";
const TEMP_NAME: &str = "ledger.tmp";

/// A position in the buffer: a segment and a byte offset in it. Offset 0
/// means "the start of the segment, header not yet checked".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub(crate) struct Position {
    pub(crate) segment: u64,
    pub(crate) offset: u64,
}

/// What the ledger holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ledger {
    /// Everything before it is acknowledged.
    pub(crate) position: Position,
    /// The id after the last acknowledged record.
    pub(crate) next_unacked_id: u64,
}

fn crc(bytes: &[u8; LEN]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&bytes[..12]);
    hasher.update(&bytes[16..]);
    hasher.finalize()
}

impl Ledger {
    fn encode(&self) -> [u8; LEN] {
        let mut bytes = [0u8; LEN];
        bytes[..8].copy_from_slice(MAGIC);
        bytes[8..12].copy_from_slice(&VERSION.to_le_bytes());
        bytes[16..24].copy_from_slice(&self.position.segment.to_le_bytes());
        bytes[24..32].copy_from_slice(&self.position.offset.to_le_bytes());
        bytes[32..40].copy_from_slice(&self.next_unacked_id.to_le_bytes());
        let sum = crc(&bytes);
        bytes[12..16].copy_from_slice(&sum.to_le_bytes());
        bytes
    }

    fn decode(raw: &[u8]) -> Option<Ledger> {
        let bytes: &[u8; LEN] = raw.try_into().ok()?;
        let field = |at: usize| {
            let mut word = [0u8; 8];
            word.copy_from_slice(&bytes[at..at + 8]);
            u64::from_le_bytes(word)
        };
        let stored = u32::from_le_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]);
        if &bytes[..8] != MAGIC || bytes[8..12] != VERSION.to_le_bytes() || stored != crc(bytes) {
            return None;
        }
        Some(Ledger {
            position: Position {
                segment: field(16),
                offset: field(24),
            },
            next_unacked_id: field(32),
        })
    }
}

/// How reading the ledger went.
#[derive(Debug)]
pub(crate) enum Loaded {
    /// No ledger file (a new buffer, or one never acknowledged).
    Missing,
    /// A valid ledger.
    Valid(Ledger),
    /// A ledger that cannot be trusted; why.
    Corrupt(String),
}

/// The ledger of `dir`.
pub(crate) fn load(dir: &Path) -> Loaded {
    match std::fs::read(dir.join(FILE_NAME)) {
        Err(error) if error.kind() == io::ErrorKind::NotFound => Loaded::Missing,
        Err(error) => Loaded::Corrupt(format!("cannot read it: {error}")),
        Ok(bytes) => match Ledger::decode(&bytes) {
            Some(ledger) => Loaded::Valid(ledger),
            None => Loaded::Corrupt(format!("{} bytes that are not a valid ledger", bytes.len())),
        },
    }
}

/// Replaces the ledger of `dir` atomically; `durable` adds the fsyncs.
/// Returns the path that failed with the error.
pub(crate) fn store(
    dir: &Path,
    ledger: &Ledger,
    durable: bool,
) -> Result<(), (PathBuf, io::Error)> {
    let temp = dir.join(TEMP_NAME);
    let write = || -> io::Result<()> {
        let mut file: File = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&temp)?;
        file.write_all(&ledger.encode())?;
        if durable {
            file.sync_all()?;
        }
        Ok(())
    };
    write().map_err(|error| (temp.clone(), error))?;
    let target = dir.join(FILE_NAME);
    std::fs::rename(&temp, &target).map_err(|error| (target.clone(), error))?;
    if durable {
        segment::sync_dir(dir).map_err(|error| (dir.to_owned(), error))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_ledger_loads_back_and_a_flipped_byte_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(load(dir.path()), Loaded::Missing));
        let ledger = Ledger {
            position: Position {
                segment: 3,
                offset: 1234,
            },
            next_unacked_id: 77,
        };
        store(dir.path(), &ledger, true).unwrap();
        assert!(matches!(load(dir.path()), Loaded::Valid(l) if l == ledger));
        let path = dir.path().join(FILE_NAME);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[20] ^= 0x10;
        std::fs::write(&path, bytes).unwrap();
        assert!(matches!(load(dir.path()), Loaded::Corrupt(_)));
    }
}
