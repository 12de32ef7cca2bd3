//! `signal::ShutdownSignals`: SIGTERM to this very process (a test binary of
//! its own, since the handlers stay installed for the process).

mod common;

use std::time::Duration;

use common::{dead_letters, Recorder};
use eventtracking::signal::{ShutdownSignals, Signal};
use eventtracking::Tracker;
use serde_json::json;

fn kill(signal: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn the_first_signal_asks_to_stop_and_the_second_cuts_the_shutdown_short() {
    let dir = tempfile::tempdir().unwrap();
    // A backend that never finishes a send.
    let (recorder, _gate) = Recorder::new().gated();
    let tracker = Tracker::builder()
        .with_delivery(common::delivery(dir.path()))
        .with_backend("stuck", recorder)
        .build()
        .unwrap();
    let (sender, first) = std::sync::mpsc::channel();
    let signals = ShutdownSignals::install_with(&tracker, move |signal| {
        let _ = sender.send(signal);
    })
    .unwrap();
    assert_eq!(signals.received(), None);
    for i in 0..10 {
        tracker.emit("test.event", json!({"i": i})).unwrap();
    }

    kill("TERM");
    assert_eq!(signals.wait(), Signal::Terminate);
    assert_eq!(first.recv().unwrap(), Signal::Terminate);
    assert_eq!(
        signals.wait_timeout(Duration::ZERO),
        Some(Signal::Terminate)
    );

    // The application shuts down with an hour's deadline; a second signal ends it.
    let second = std::thread::spawn(|| {
        std::thread::sleep(Duration::from_millis(200));
        kill("INT");
    });
    let report = tracker.shutdown(Duration::from_secs(3_600)).unwrap();
    second.join().unwrap();
    let stats = &report.backends["stuck"];
    assert_eq!(stats.accepted, 10);
    assert_eq!(stats.failed_shutdown, 10, "{stats:?}");
    assert_eq!(stats.dead_lettered, 10, "{stats:?}");
    assert!(report.deadline_passed);
    assert_eq!(dead_letters(dir.path()).len(), 10);
}
