//! `eventtracking serve`: the collector as a process, over real HTTP, until SIGTERM.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_eventtracking");
const KEY: &str = "wk_cli_5e1d";

struct Serving {
    child: Child,
    stderr: PathBuf,
}

impl Serving {
    fn start(dir: &Path, config: &str) -> Self {
        let path = dir.join("serve.toml");
        std::fs::write(&path, config).unwrap();
        let stderr = dir.join("stderr.txt");
        let child = Command::new(BIN)
            .args([
                "serve",
                "--config",
                path.to_str().unwrap(),
                "--listen",
                "127.0.0.1:0",
            ])
            .env_remove("EVENTTRACKING_CONFIG")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        Serving { child, stderr }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// The address from "listening on http://ADDR".
    fn address(&mut self) -> String {
        let give_up = Instant::now() + Duration::from_secs(60);
        loop {
            let text = self.stderr();
            if let Some(rest) = text.split("listening on http://").nth(1) {
                return rest.split_whitespace().next().unwrap().to_owned();
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("exited ({status}) before listening:\n{text}");
            }
            assert!(Instant::now() < give_up, "never listened:\n{text}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request on its own connection; the status and the body.
fn post(address: &str, path: &str, headers: &[(&str, &str)], body: &str) -> (u16, String) {
    request("POST", address, path, headers, body)
}

/// A request with any method; the status and the body.
fn request(
    method: &str,
    address: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status in {response:?}"));
    let body = response
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    (status, body)
}

#[test]
fn serve_collects_until_sigterm_then_reports() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.jsonl");
    let config = format!(
        "[collector]\nwrite_keys = [\"{KEY}\"]\nsource = \"mobile\"\n\n[delivery]\ndead_letter_path = \"{}\"\n\n[backends.out]\nengine = \"file\"\npath = \"{}\"\n",
        dir.path().join("dead.jsonl").display(),
        events.display()
    );
    let mut serving = Serving::start(dir.path(), &config);
    let address = serving.address();
    let body = r#"{"events": [{"name": "app.open", "data": {"screen": "home"}, "context": {"source": "forged"}}]}"#;
    let (status, reply) = post(
        &address,
        "/v1/events",
        &[("Content-Type", "application/json")],
        body,
    );
    assert_eq!(status, 401, "{reply}");
    let (status, reply) = post(
        &address,
        &format!("/v1/events?key={KEY}"),
        &[("Content-Type", "text/plain"), ("User-Agent", "cli-test")],
        body,
    );
    assert_eq!(status, 202, "{reply}");
    assert!(reply.contains(r#""accepted":1"#), "{reply}");

    let kill = Command::new("kill")
        .args(["-TERM", &serving.child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = serving.child.wait().unwrap();
    let stderr = serving.stderr();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("SIGTERM"), "{stderr}");
    assert!(
        stderr.contains("delivered"),
        "the report is printed: {stderr}"
    );
    assert!(!stderr.contains(KEY), "{stderr}");

    let lines = std::fs::read_to_string(&events).unwrap();
    let stored: Vec<Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(stored.len(), 1, "{lines}");
    assert_eq!(stored[0]["name"], "app.open");
    assert_eq!(stored[0]["context"]["source"], "mobile");
    assert_eq!(stored[0]["context"]["user_agent"], "cli-test");
    assert_eq!(stored[0]["context"]["client_ip"], "127.0.0.1");
}

#[test]
fn the_catalog_page_is_what_catalog_format_html_writes() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[collector]\nwrite_keys = [\"{KEY}\"]\n\n[backends.out]\nengine = \"file\"\npath = \"{}\"\n",
        dir.path().join("events.jsonl").display()
    );
    let mut serving = Serving::start(dir.path(), &config);
    let address = serving.address();
    let (status, served) = request("GET", &address, "/catalog", &[], "");
    assert_eq!(status, 200, "{served}");
    let (status, tracker) = request("GET", &address, "/v1/tracker.js", &[], "");
    assert_eq!(status, 200);
    assert!(tracker.contains("global.eventtracking"), "{tracker}");

    let output = Command::new(BIN)
        .args(["catalog", "--format", "html"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let written = String::from_utf8(output.stdout).unwrap();
    assert_eq!(served, written, "the same page");
    for expected in [
        "<section class=\"event-type\" id=\"address.create@1\"",
        "<code>navigation.request</code> <span class=\"version\">version 1</span>",
        "<td><code>url</code></td><td>data</td><td>string</td><td>yes</td><td>The URL requested, with its query string.</td>",
        "<h3><code>PostalAddress</code></h3>",
        "The postal (ZIP) code.",
        "<input id=\"search\"",
    ] {
        assert!(written.contains(expected), "{expected:?} missing from:\n{written}");
    }
}

#[test]
fn a_bad_collector_key_is_a_usage_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[collector]\nlisen = \"127.0.0.1:1\"\n[backends.x]\nengine = \"discard\"\n",
    )
    .unwrap();
    let output = Command::new(BIN)
        .args(["serve", "--config", path.to_str().unwrap()])
        .env_remove("EVENTTRACKING_CONFIG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("collector.lisen"), "{stderr}");
}
