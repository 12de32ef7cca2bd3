//! Where the test servers are, and their processes (for outage tests).
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `EVENTTRACKING_TEST_MONGO_URI` | `mongodb://127.0.0.1:27117` | the MongoDB server |
//! | `EVENTTRACKING_TEST_KAFKA_BROKERS` | `127.0.0.1:19092` | the Kafka broker |
//! | `EVENTTRACKING_TEST_MONGO_PID` | none | the MongoDB server's process, paused by outage tests |
//! | `EVENTTRACKING_TEST_KAFKA_PID` | none | the broker's process, paused by outage tests |
//!
//! `scripts/services start` starts both servers at the defaults, and
//! `eval "$(scripts/services env)"` sets all four variables.

/// The MongoDB server: `EVENTTRACKING_TEST_MONGO_URI`, else the one `scripts/services` starts.
pub fn mongo_uri() -> String {
    std::env::var("EVENTTRACKING_TEST_MONGO_URI")
        .unwrap_or_else(|_| "mongodb://127.0.0.1:27117".into())
}

/// The Kafka broker: `EVENTTRACKING_TEST_KAFKA_BROKERS`, else the one `scripts/services` starts.
pub fn kafka_brokers() -> String {
    std::env::var("EVENTTRACKING_TEST_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:19092".into())
}

/// The PID of the MongoDB server, which a test may pause; panics, saying
/// how to set it, when `EVENTTRACKING_TEST_MONGO_PID` is not set.
pub fn mongo_pid() -> String {
    pid("EVENTTRACKING_TEST_MONGO_PID", "mongo")
}

/// The PID of the Kafka broker, which a test may pause; panics, saying how
/// to set it, when `EVENTTRACKING_TEST_KAFKA_PID` is not set.
pub fn kafka_pid() -> String {
    pid("EVENTTRACKING_TEST_KAFKA_PID", "kafka")
}

fn pid(variable: &str, service: &str) -> String {
    std::env::var(variable).unwrap_or_else(|_| {
        panic!(
            "{variable} is not set: this test pauses the {service} server with `kill -STOP` \
             and needs its PID. Start it with `scripts/services start {service}` and \
             `eval \"$(scripts/services env)\"`, or give the PID of a server this test may pause"
        )
    })
}
