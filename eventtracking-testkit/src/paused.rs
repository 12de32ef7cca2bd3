//! The `kill -STOP` guard: a test server paused to simulate an outage.

/// A process paused with `kill -STOP` (a test server, to simulate an
/// outage), resumed with `kill -CONT` when this is dropped, however the test
/// ends (panics included).
///
/// Pausing a server shared by the tests of one binary disturbs them: the
/// conformance suite's outage case holds an exclusive lock meanwhile (see
/// [`conformance_tests!`](crate::conformance_tests)).
#[derive(Debug)]
pub struct PausedProcess(String);

impl PausedProcess {
    /// Pauses the process `pid`; panics if `kill -STOP` fails.
    pub fn pause(pid: &str) -> Self {
        let status = std::process::Command::new("kill")
            .args(["-STOP", pid])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -STOP {pid} failed");
        PausedProcess(pid.to_owned())
    }
}

impl Drop for PausedProcess {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-CONT", &self.0])
            .status();
    }
}
