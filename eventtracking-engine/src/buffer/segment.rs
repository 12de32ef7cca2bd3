//! Segment files: `segment-NNNNNNNNNNNNNNNNNNNN.etb` (the segment number,
//! 20 digits, so that names sort like numbers), each a 32-byte header and
//! then records (see [`record`](super::record)), appended and never rewritten.
//!
//! ```text
//! offset  size  field
//! 0       8     magic "ETBUFSEG"
//! 8       2     format version (1, LE)
//! 10      2     flags (0)
//! 12      4     CRC-32 of bytes 0..12 and 16..32
//! 16      8     segment number (LE)
//! 24      8     id of the first record written to it (LE)
//! ```

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use super::record::{self, Parsed, Source};

/// Bytes of a segment header.
pub(crate) const SEGMENT_HEADER: u64 = 32;
const MAGIC: &[u8; 8] = b"ETBUFSEG";
const VERSION: u16 = 1;
const PREFIX: &str = "segment-";
const SUFFIX: &str = ".etb";

/// The file name of segment `number`.
pub(crate) fn file_name(number: u64) -> String {
    format!("{PREFIX}{number:020}{SUFFIX}")
}

/// The path of segment `number` in `dir`.
pub(crate) fn path(dir: &Path, number: u64) -> PathBuf {
    dir.join(file_name(number))
}

fn number_of(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The segments in `dir`: number → file length. Other files are ignored.
pub(crate) fn list(dir: &Path) -> io::Result<BTreeMap<u64, u64>> {
    let mut segments = BTreeMap::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let Some(number) = entry.file_name().to_str().and_then(number_of) else {
            continue;
        };
        let metadata = entry.metadata()?;
        if metadata.is_file() {
            segments.insert(number, metadata.len());
        }
    }
    Ok(segments)
}

fn header_crc(bytes: &[u8; SEGMENT_HEADER as usize]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&bytes[..12]);
    hasher.update(&bytes[16..]);
    hasher.finalize()
}

/// The header of segment `number` whose first record is `first_id`.
pub(crate) fn header(number: u64, first_id: u64) -> [u8; SEGMENT_HEADER as usize] {
    let mut bytes = [0u8; SEGMENT_HEADER as usize];
    bytes[..8].copy_from_slice(MAGIC);
    bytes[8..10].copy_from_slice(&VERSION.to_le_bytes());
    bytes[16..24].copy_from_slice(&number.to_le_bytes());
    bytes[24..32].copy_from_slice(&first_id.to_le_bytes());
    let crc = header_crc(&bytes);
    bytes[12..16].copy_from_slice(&crc.to_le_bytes());
    bytes
}

/// A valid header read back.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Header {
    pub(crate) first_id: u64,
}

/// The header of `file` if it is whole, of this format version, checksummed
/// and names segment `number` (a segment renamed by hand is not trusted).
pub(crate) fn read_header(file: &mut Source, number: u64) -> io::Result<Option<Header>> {
    let mut bytes = [0u8; SEGMENT_HEADER as usize];
    if !file.read_exact_at(0, &mut bytes)? {
        return Ok(None);
    }
    let stored = u32::from_le_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]);
    let field = |at: usize| {
        let mut word = [0u8; 8];
        word.copy_from_slice(&bytes[at..at + 8]);
        u64::from_le_bytes(word)
    };
    if &bytes[..8] != MAGIC
        || bytes[8..10] != VERSION.to_le_bytes()
        || stored != header_crc(&bytes)
        || field(16) != number
    {
        return Ok(None);
    }
    Ok(Some(Header {
        first_id: field(24),
    }))
}

/// What a scan of a whole segment found.
#[derive(Debug, Default)]
pub(crate) struct Scan {
    /// The end of the last valid record (or of the header): where a torn
    /// or corrupt tail starts.
    pub(crate) good_end: u64,
    /// The id of the first valid record, if any.
    pub(crate) first_id: Option<u64>,
    /// The id of the last valid record, if any.
    pub(crate) last_id: Option<u64>,
}

/// Walks every record of a segment from `start` to `end`. Corruption
/// followed by a valid record is stepped over (the reader hands it back
/// later); corruption with no valid record after it is the tail.
pub(crate) fn scan(file: &mut Source, start: u64, end: u64) -> io::Result<Scan> {
    let mut scan = Scan {
        good_end: start,
        first_id: None,
        last_id: None,
    };
    let mut offset = start;
    let mut payload = Vec::new();
    loop {
        match record::parse_at(file, offset, end, &mut payload)? {
            Parsed::End => return Ok(scan),
            Parsed::Record { id, next, .. } => {
                scan.first_id = scan.first_id.or(Some(id));
                scan.last_id = Some(scan.last_id.map_or(id, |last| last.max(id)));
                scan.good_end = next;
                offset = next;
            }
            Parsed::Corrupt {
                next,
                resynced: true,
            } => offset = next,
            Parsed::Corrupt {
                resynced: false, ..
            } => return Ok(scan),
        }
    }
}

/// Makes a new file, or a renamed or removed one, durable: fsync of the directory.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        // Directories cannot be opened as files elsewhere; the rename is what there is.
        let _ = dir;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_like_numbers_and_parse_back() {
        assert_eq!(number_of(&file_name(42)), Some(42));
        assert!(file_name(9) < file_name(10));
        assert_eq!(number_of("segment-42.etb"), None);
        assert_eq!(number_of("ledger"), None);
    }

    #[test]
    fn a_header_reads_back_only_under_its_own_number() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h");
        std::fs::write(&path, header(3, 99)).unwrap();
        let mut file = Source::new(File::open(&path).unwrap());
        assert_eq!(
            read_header(&mut file, 3).unwrap().map(|h| h.first_id),
            Some(99)
        );
        assert!(read_header(&mut file, 4).unwrap().is_none());
        let mut bytes = header(3, 99);
        bytes[25] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        let mut file = Source::new(File::open(&path).unwrap());
        assert!(read_header(&mut file, 3).unwrap().is_none());
    }
}
