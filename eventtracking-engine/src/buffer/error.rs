//! The errors of the disk buffer, each naming the path or value at fault.

use std::io;
use std::path::PathBuf;

/// Why a [`DiskBuffer`](super::DiskBuffer) could not be opened, or an
/// operation on its files failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BufferError {
    /// The directory could not be created (a parent is a file, no permission, ...).
    #[error("cannot create the disk buffer directory {}: {source}", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The directory exists but a file cannot be created in it.
    #[error("the disk buffer directory {} is not writable: {source}", path.display())]
    NotWritable {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Another [`DiskBuffer`](super::DiskBuffer) of this process has the directory open.
    #[error("the disk buffer directory {} is already open in this process", path.display())]
    InUse {
        /// The directory.
        path: PathBuf,
    },
    /// Another process has the directory open (its `lock` file is locked):
    /// two processes on one buffer would cut each other's records.
    #[error("the disk buffer directory {} is in use by another process (stop it, or give this one another buffer_path)", path.display())]
    LockedByAnotherProcess {
        /// The directory.
        path: PathBuf,
    },
    /// Reading or writing a file of the buffer failed.
    #[error("disk buffer I/O error on {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// Why [`DiskBuffer::append`](super::DiskBuffer::append) did not take a record.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppendError {
    /// The record would take the buffer over its `max_bytes`: the caller
    /// applies its overflow policy (wait for space, or drop and count).
    #[error("disk buffer full: {needed} more bytes would exceed max_bytes {max_bytes} ({buffered} buffered)")]
    Full {
        /// The bytes the record needed (frame, and a segment header if it starts a segment).
        needed: u64,
        /// The bytes held now.
        buffered: u64,
        /// The bound.
        max_bytes: u64,
    },
    /// The record can never fit: larger than `max_bytes` (or than 2 GiB) on its own.
    #[error("record of {len} bytes can never fit in a disk buffer of max_bytes {max_bytes}")]
    TooLarge {
        /// The payload length.
        len: usize,
        /// The bound.
        max_bytes: u64,
    },
    /// Writing failed; the record is not in the buffer.
    #[error(transparent)]
    Io(#[from] BufferError),
}
