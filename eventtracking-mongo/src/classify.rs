//! Which driver errors are worth retrying.

use mongodb::error::{
    Error, ErrorKind, WriteConcernError, WriteFailure, RETRYABLE_ERROR, RETRYABLE_WRITE_ERROR,
    SYSTEM_OVERLOADED_ERROR,
};

/// Server error codes after which the same write may succeed: the server or
/// network was unavailable, a primary stepped down or is being elected, an
/// operation was interrupted or timed out, a write conflicted, or the server
/// was overloaded.
///
/// | code | name |
/// |---|---|
/// | 6, 7, 89, 9001 | HostUnreachable, HostNotFound, NetworkTimeout, SocketException |
/// | 91, 11600, 11601, 11602 | ShutdownInProgress, InterruptedAtShutdown, Interrupted, InterruptedDueToReplStateChange |
/// | 189, 10107, 13435, 13436 | PrimarySteppedDown, NotWritablePrimary, NotPrimaryNoSecondaryOk, NotPrimaryOrSecondary |
/// | 50, 262 | MaxTimeMSExpired, ExceededTimeLimit |
/// | 64 | WriteConcernFailed (a `wtimeout` passed) |
/// | 112 | WriteConflict |
/// | 134 | ReadConcernMajorityNotAvailableYet |
/// | 462 | IngressRequestRateLimitExceeded |
pub const RETRYABLE_CODES: &[i32] = &[
    6, 7, 50, 64, 89, 91, 112, 134, 189, 262, 462, 9001, 10107, 11600, 11601, 11602, 13435, 13436,
];

/// Whether a server error code is in [`RETRYABLE_CODES`].
pub fn is_retryable_code(code: i32) -> bool {
    RETRYABLE_CODES.contains(&code)
}

/// Whether a write concern error may go away: every one except an
/// unsatisfiable or unknown write concern (codes 100 and 79), which no retry
/// can meet.
pub(crate) fn is_retryable_write_concern(error: &WriteConcernError) -> bool {
    !matches!(error.code, 79 | 100)
}

/// Whether the same write may succeed when sent again.
///
/// Retryable: errors the driver labels `RetryableWriteError`,
/// `RetryableError` or `SystemOverloadedError`; network and I/O errors;
/// server selection timeouts (no reachable primary); a cleared connection
/// pool; DNS failures; an unreadable server response; server errors with a
/// code in [`RETRYABLE_CODES`]; write concern errors other than codes 79 and 100.
///
/// Not retryable: invalid arguments (a collection name MongoDB refuses, a
/// document over 16 MiB), authentication failures (wrong credentials are a
/// configuration problem: the events go to the dead-letter file, ready for
/// `eventtracking replay`), validation and other server errors, an
/// incompatible server, TLS configuration errors, and anything unknown.
///
/// ```
/// assert!(eventtracking_mongo::is_retryable_code(10107)); // NotWritablePrimary
/// assert!(!eventtracking_mongo::is_retryable_code(121)); // DocumentValidationFailure
/// ```
pub fn is_retryable(error: &Error) -> bool {
    if [
        RETRYABLE_WRITE_ERROR,
        RETRYABLE_ERROR,
        SYSTEM_OVERLOADED_ERROR,
    ]
    .iter()
    .any(|label| error.contains_label(label))
    {
        return true;
    }
    match &*error.kind {
        ErrorKind::Io(_)
        | ErrorKind::ServerSelection { .. }
        | ErrorKind::ConnectionPoolCleared { .. }
        | ErrorKind::DnsResolve { .. }
        | ErrorKind::InvalidResponse { .. } => true,
        ErrorKind::Command(command) => is_retryable_code(command.code),
        ErrorKind::Write(WriteFailure::WriteError(write)) => is_retryable_code(write.code),
        ErrorKind::Write(WriteFailure::WriteConcernError(concern)) => {
            is_retryable_write_concern(concern)
        }
        ErrorKind::InsertMany(insert) => {
            insert
                .write_errors
                .iter()
                .flatten()
                .any(|e| is_retryable_code(e.code))
                || insert
                    .write_concern_error
                    .as_ref()
                    .is_some_and(is_retryable_write_concern)
        }
        _ => false,
    }
}
