//! Helpers shared by the integration tests: the binary run as a user would
//! run it, its JSON-lines output, and for the tests that need the Kafka
//! broker, its address, a check that it answers, and unique topic and
//! group names.
#![allow(dead_code, unreachable_pub)]

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

/// Runs the `eventtracking` binary with `args` (no `EVENTTRACKING_CONFIG`
/// from the environment, `RUST_LOG=warn`), `stdin` as its input.
pub fn eventtracking(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_eventtracking"))
        .args(args)
        .env_remove("EVENTTRACKING_CONFIG")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

/// Each line of `text` as JSON; panics naming a line that is not.
pub fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect()
}

/// The broker: `EVENTTRACKING_TEST_KAFKA_BROKERS`, else the one `scripts/services` starts.
pub fn brokers() -> String {
    std::env::var("EVENTTRACKING_TEST_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:19092".into())
}

/// Fails at once, naming the address, when nothing listens there.
pub fn require_broker() {
    let brokers = brokers();
    let first = brokers.split(',').next().unwrap_or_default().trim();
    let reachable = std::net::ToSocketAddrs::to_socket_addrs(first)
        .ok()
        .and_then(|mut addresses| addresses.next())
        .is_some_and(|address| {
            std::net::TcpStream::connect_timeout(&address, Duration::from_secs(5)).is_ok()
        });
    assert!(
        reachable,
        "no Kafka broker answers at {brokers}: run `scripts/services start kafka` \
         or set EVENTTRACKING_TEST_KAFKA_BROKERS"
    );
}

/// A name no other test (or run) uses.
pub fn unique(prefix: &str) -> String {
    format!(
        "et-test-{prefix}-{:x}-{:x}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}
