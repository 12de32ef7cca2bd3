//! Helpers shared by the integration tests that need the Kafka broker: its
//! address, a check that it answers, and unique topic and group names.
#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

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
