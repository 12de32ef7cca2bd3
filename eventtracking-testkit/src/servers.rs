//! Where the test servers are, and their processes (for outage tests).
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `EVENTTRACKING_TEST_MONGO_URI` | `mongodb://127.0.0.1:27117` | the MongoDB server |
//! | `EVENTTRACKING_TEST_KAFKA_BROKERS` | `127.0.0.1:19092` | the Kafka broker |
//! | `EVENTTRACKING_TEST_MONGO_PID` | none | the MongoDB server's process, paused by outage tests |
//! | `EVENTTRACKING_TEST_KAFKA_PID` | none | the broker's process, paused by outage tests |
//! | `EVENTTRACKING_TEST_PYTHON` | `.services/venv/bin/python` (workspace root) | the Python with the original library (`event-tracking`), for interop tests, and `schemathesis`, for the collector's OpenAPI test |
//!
//! `scripts/services start` starts both servers at the defaults and installs
//! the original library and schemathesis in its venv, and `eval "$(scripts/services env)"`
//! sets all five variables.

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

/// The version of the Python original (`event-tracking` on PyPI) that
/// `scripts/services` installs for interop tests.
pub const ORIGINAL_VERSION: &str = "4.0.2";

/// The Python with the original library (edX `event-tracking`):
/// `EVENTTRACKING_TEST_PYTHON`, else the venv `scripts/services` creates
/// (`.services/venv/bin/python` in the workspace root). Panics, saying how
/// to install it, when that Python is missing or cannot import the library
/// at [`ORIGINAL_VERSION`]: an interop test must fail, not skip.
pub fn original_python() -> std::path::PathBuf {
    let python = match std::env::var_os("EVENTTRACKING_TEST_PYTHON") {
        Some(path) => std::path::PathBuf::from(path),
        None => {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.services/venv/bin/python")
        }
    };
    let how = "run `scripts/services start` (it installs event-tracking into .services/venv) \
               and `eval \"$(scripts/services env)\"`, or set EVENTTRACKING_TEST_PYTHON to a \
               Python with `pip install event-tracking==4.0.2`";
    let check = format!(
        "import importlib.metadata as m, eventtracking.tracker, eventtracking.backends.logger; \
         v = m.version('event-tracking'); assert v == '{ORIGINAL_VERSION}', 'event-tracking ' + v"
    );
    let output = std::process::Command::new(&python)
        .args(["-c", &check])
        .output()
        .unwrap_or_else(|e| panic!("no Python at {}: {e}: {how}", python.display()));
    assert!(
        output.status.success(),
        "the Python at {} has no event-tracking {ORIGINAL_VERSION}: {}: {how}",
        python.display(),
        String::from_utf8_lossy(&output.stderr).trim()
    );
    python
}
