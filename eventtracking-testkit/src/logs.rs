//! Capturing what `tracing` logs, to check that no secret is in it.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

/// Everything `tracing` logged in this process (every level) since the
/// first [`capture_logs`], as text.
#[derive(Debug, Clone, Default)]
pub struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl CapturedLogs {
    /// The text logged so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }
}

impl Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs (once per process: the first call does it) a global `tracing`
/// subscriber that keeps every line, down to `TRACE`, and returns it.
/// Panics if another global subscriber was installed first.
///
/// ```
/// let logs = eventtracking_testkit::capture_logs();
/// tracing::warn!("cannot reach the server");
/// assert!(logs.text().contains("cannot reach the server"));
/// ```
pub fn capture_logs() -> CapturedLogs {
    static CAPTURED: OnceLock<CapturedLogs> = OnceLock::new();
    CAPTURED
        .get_or_init(|| {
            let captured = CapturedLogs::default();
            let writer = captured.clone();
            let subscriber = tracing_subscriber::fmt()
                .with_writer(move || writer.clone())
                .with_max_level(tracing::Level::TRACE)
                .with_ansi(false)
                .finish();
            tracing::subscriber::set_global_default(subscriber)
                .expect("another global tracing subscriber is installed");
            captured
        })
        .clone()
}
