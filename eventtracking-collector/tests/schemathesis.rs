//! `schemathesis` (PyPI, installed into `.services/venv` by `scripts/services
//! start`) against a real collector's `GET /openapi.json`: every operation
//! is called with requests generated from the document, valid and invalid,
//! and no answer may be a 5xx or differ from what the document lists (status,
//! content type, headers, body schema); undocumented methods must get 405
//! with `Allow`. Three runs: the default collector with its write key (every
//! operation), the same without a key (401), and one with tight limits
//! (413, 429 with `Retry-After`). The collector's `/metrics` then shows that
//! each of these statuses was answered, so the runs cannot pass vacuously.
//!
//! Not checked: `positive_data_acceptance` and `negative_data_rejection`.
//! The collector applies limits of its configuration (body size, events per
//! request, string bytes, object keys, depth, name bytes) that a schema
//! cannot state, and it takes the valid events of a batch whose other events
//! are invalid (202, listing those): both are by design.
//!
//! The Python is `EVENTTRACKING_TEST_PYTHON`, else `.services/venv/bin/python`.
//! Without schemathesis there the test is skipped (saying so), unless
//! `EVENTTRACKING_TEST_PYTHON` is set or `CI=true`: then it fails, saying how
//! to install it (`scripts/test` sets the variable, so the suite runs it).

mod common;

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{config, Server, KEY};
use eventtracking::{DiscardBackend, Tracker};
use eventtracking_collector::RateLimit;

/// The version `scripts/services` pins.
const SCHEMATHESIS_VERSION: &str = "4.32.5";

/// The checks: all of schemathesis's that this API can honestly pass.
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
                      response_headers_conformance,response_schema_conformance,\
                      unsupported_method,allow_header_conformance";

/// Never reached unless something hangs.
const RUN_TIMEOUT: Duration = Duration::from_secs(300);

/// The Python with schemathesis, or `None` (after saying why) when the test
/// is to be skipped.
fn schemathesis_python() -> Option<PathBuf> {
    let configured = std::env::var_os("EVENTTRACKING_TEST_PYTHON");
    let required = configured.is_some() || std::env::var("CI").is_ok_and(|v| v == "true");
    let python = match configured {
        Some(path) => PathBuf::from(path),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.services/venv/bin/python"),
    };
    let how = format!(
        "run `scripts/services start` (it installs schemathesis=={SCHEMATHESIS_VERSION} into \
         .services/venv) and `eval \"$(scripts/services env)\"`, or set EVENTTRACKING_TEST_PYTHON \
         to a Python with `pip install schemathesis=={SCHEMATHESIS_VERSION}`"
    );
    let problem = match std::process::Command::new(&python)
        .args(["-m", "schemathesis.cli", "--version"])
        .output()
    {
        Ok(output) if output.status.success() => return Some(python),
        Ok(output) => format!(
            "the Python at {} cannot run schemathesis: {}",
            python.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        ),
        Err(error) => format!("no Python at {}: {error}", python.display()),
    };
    assert!(!required, "{problem}: {how}");
    eprintln!("skipped: {problem} ({how})");
    None
}

/// Runs `schemathesis run` against `server`'s document with `extra`
/// arguments; panics with its output unless it exits 0.
async fn schemathesis(python: &Path, dir: &Path, server: &Server, what: &str, extra: &[&str]) {
    let started = Instant::now();
    let mut command = tokio::process::Command::new(python);
    command
        .args(["-m", "schemathesis.cli", "run"])
        .arg(format!("http://{}/openapi.json", server.addr))
        .args(["--checks", CHECKS])
        // Schemathesis leaves out the document's own path unless asked.
        .args(["--include-path-regex", "^/"])
        .args(["--workers", "1", "--request-timeout", "10"])
        .args(["--generation-database", "none"])
        .args(["--no-color", "--output-truncate", "false"])
        .args(extra)
        // Hypothesis and reports write into the working directory.
        .current_dir(dir)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(RUN_TIMEOUT, command.output())
        .await
        .unwrap_or_else(|_| panic!("schemathesis ({what}) ran longer than {RUN_TIMEOUT:?}"))
        .expect("schemathesis starts");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "schemathesis ({what}) failed ({}) after {:?}:\n{text}",
        output.status,
        started.elapsed()
    );
    eprintln!("schemathesis ({what}): passed in {:?}", started.elapsed());
}

/// How many `POST /v1/events` the collector answered with `status`, from
/// its `/metrics`.
async fn answered(server: &Server, status: u16) -> u64 {
    let text = server.get("/metrics").await.body;
    let text = text.as_str().expect("the metrics text");
    let prefix = format!(
        "eventtracking_collector_http_requests_total{{route=\"/v1/events\",status=\"{status}\"}} "
    );
    text.lines()
        .find_map(|line| line.strip_prefix(prefix.as_str()))
        .map_or(0, |n| n.parse().expect("a count"))
}

fn discard_tracker() -> Tracker {
    Tracker::builder()
        .with_backend("discard", DiscardBackend)
        .build()
        .expect("tracker")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_answer_outside_the_document() {
    let Some(python) = schemathesis_python() else {
        return;
    };
    let dir = tempfile::tempdir().expect("a temporary directory");
    let bearer = format!("Authorization: Bearer {KEY}");
    let events_only = ["--include-path", "/v1/events", "--include-method", "POST"];

    let server = Server::start(discard_tracker(), config()).await;
    schemathesis(
        &python,
        dir.path(),
        &server,
        "defaults, with the key",
        &["--header", &bearer, "--max-examples", "30"],
    )
    .await;
    let mut extra = vec!["--max-examples", "5"];
    extra.extend(events_only);
    schemathesis(&python, dir.path(), &server, "no key", &extra).await;
    for status in [202, 400, 401, 415, 422] {
        assert!(
            answered(&server, status).await > 0,
            "no request was answered {status}: the runs did not reach it"
        );
    }
    server.stop().await;

    let burst = NonZeroU32::new(10).expect("10");
    let tight = config()
        .with_max_body_bytes(1024)
        .with_max_events_per_request(2)
        .with_rate_limit_per_key(RateLimit::new(1.0, burst));
    let server = Server::start(discard_tracker(), tight).await;
    let mut extra = vec!["--header", &bearer, "--max-examples", "30"];
    extra.extend(events_only);
    schemathesis(&python, dir.path(), &server, "tight limits", &extra).await;
    for status in [413, 429] {
        assert!(
            answered(&server, status).await > 0,
            "no request was answered {status}: the run did not reach it"
        );
    }
    server.stop().await;
}
