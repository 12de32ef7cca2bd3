//! A small WebDriver client for the real-browser tests: Debian's headless
//! Chromium driven through `chromedriver`. WebDriver is JSON over HTTP: the
//! few commands the tests use are written here over hyper's client (a
//! dependency of the tests already), so the tests need no WebDriver crate
//! (fantoccini would add some forty crates, ICU's among them, to the cold
//! build for six commands). Blocking, so `Drop` can end the session: each
//! request runs on a small runtime of the client's own and is waited for.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};

/// Set to skip the browser tests (loudly) where no Chromium can be had.
pub(crate) const SKIP_VAR: &str = "EVENTTRACKING_TEST_SKIP_BROWSER";
const CHROMIUM_VAR: &str = "EVENTTRACKING_TEST_CHROMIUM";
const CHROMEDRIVER_VAR: &str = "EVENTTRACKING_TEST_CHROMEDRIVER";

/// The longest one WebDriver command may take; only reached when broken.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);
/// The longest chromedriver may take to answer `/status`.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The flags Chromium needs on this machine (shared/SERVICES.md): without
/// them it stalls on connections the machine refuses.
const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
];

/// The WebDriver name of an element reference.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A headless Chromium session; ended (and chromedriver stopped) on drop.
pub(crate) struct Browser {
    driver: Child,
    port: u16,
    session: String,
    profile: tempfile::TempDir,
    http: Http,
}

/// HTTP to chromedriver: hyper's client on a one-thread runtime of its own,
/// so that a request can be waited for from anywhere (a test's runtime
/// included, and `Drop`).
struct Http {
    /// `None` once shut down (in `Drop`).
    runtime: Option<tokio::runtime::Runtime>,
    client: Client<HttpConnector, Full<Bytes>>,
}

/// An element found on the page.
pub(crate) struct Element(String);

impl Browser {
    /// Starts chromedriver and a headless Chromium with a fresh profile.
    /// `None` (after a loud message) when [`SKIP_VAR`] is set; panics with
    /// how to install them when Chromium or chromedriver is missing.
    pub(crate) fn start() -> Option<Browser> {
        if std::env::var_os(SKIP_VAR).is_some_and(|v| !v.is_empty()) {
            eprintln!(
                "\n!!!!!!!!!! SKIPPED: real-browser test ({SKIP_VAR} is set): nothing was tested in a browser !!!!!!!!!!\n"
            );
            return None;
        }
        let chromium = find(CHROMIUM_VAR, "chromium");
        let chromedriver = find(CHROMEDRIVER_VAR, "chromedriver");
        let profile = tempfile::tempdir().expect("a profile directory");
        let log = profile.path().join("chromedriver.log");
        let port = free_port();
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("could not run {}: {e}", chromedriver.display()));
        let mut browser = Browser {
            driver,
            port,
            session: String::new(),
            profile,
            http: Http::new(),
        };
        browser.wait_ready();
        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|f| f.to_string()).collect();
        args.push(format!(
            "--user-data-dir={}",
            browser.profile.path().join("chromium").display()
        ));
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": args},
        }}});
        let session = browser
            .request("POST", "/session", Some(&capabilities))
            .unwrap_or_else(|e| panic!("no Chromium session: {e}{}", browser.log_tail()));
        browser.session = session["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no sessionId in {session}"))
            .to_owned();
        browser.command(
            "POST",
            "timeouts",
            json!({"script": 60_000, "pageLoad": 60_000}),
        );
        Some(browser)
    }

    /// Opens `url` and waits for it to load.
    pub(crate) fn goto(&self, url: &str) {
        self.command("POST", "url", json!({ "url": url }));
    }

    /// Runs `script` (a function body; `arguments` holds `args`) and returns
    /// what it returns.
    pub(crate) fn execute(&self, script: &str, args: Value) -> Value {
        self.command(
            "POST",
            "execute/sync",
            json!({"script": script, "args": args}),
        )
    }

    /// Runs `script`, which calls its last argument with the result.
    pub(crate) fn execute_async(&self, script: &str, args: Value) -> Value {
        self.command(
            "POST",
            "execute/async",
            json!({"script": script, "args": args}),
        )
    }

    /// The first element matching the CSS `selector`.
    pub(crate) fn find(&self, selector: &str) -> Element {
        let found = self.command(
            "POST",
            "element",
            json!({"using": "css selector", "value": selector}),
        );
        Element(
            found[ELEMENT_KEY]
                .as_str()
                .unwrap_or_else(|| panic!("no element for {selector:?}: {found}"))
                .to_owned(),
        )
    }

    /// Clicks `element` as a user would.
    pub(crate) fn click(&self, element: &Element) {
        self.command("POST", &format!("element/{}/click", element.0), json!({}));
    }

    /// Types `text` into `element`, key by key.
    pub(crate) fn type_into(&self, element: &Element, text: &str) {
        self.command(
            "POST",
            &format!("element/{}/value", element.0),
            json!({ "text": text }),
        );
    }

    /// A session command; panics (with the driver's log) on an error.
    fn command(&self, method: &str, path: &str, body: Value) -> Value {
        let path = format!("/session/{}/{path}", self.session);
        // The collector under test runs on this runtime: let it go on.
        let answer = match tokio::runtime::Handle::try_current() {
            Ok(_) => tokio::task::block_in_place(|| self.request(method, &path, Some(&body))),
            Err(_) => self.request(method, &path, Some(&body)),
        };
        answer.unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}{}", self.log_tail()))
    }

    /// One HTTP request to chromedriver; the `value` of its answer.
    fn request(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, String> {
        let (status, answer) = self.http.exchange(self.port, method, path, body)?;
        let value = answer.get("value").cloned().unwrap_or(Value::Null);
        if status == 200 {
            Ok(value)
        } else {
            Err(format!(
                "{status} {}: {}",
                value["error"].as_str().unwrap_or("?"),
                value["message"].as_str().unwrap_or_default()
            ))
        }
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.driver.try_wait() {
                panic!("chromedriver exited ({status}){}", self.log_tail());
            }
            if let Ok(value) = self.request("GET", "/status", None) {
                if value["ready"] == true {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver not ready on port {} after {START_TIMEOUT:?}{}",
                self.port,
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The end of chromedriver's log, for failure messages.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.profile.path().join("chromedriver.log"))
            .unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(30)..].join("\n");
        format!("\n--- last lines of chromedriver's log ---\n{tail}")
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            // Ends Chromium too; chromedriver alone would leave it running.
            let _ = self.request("DELETE", &format!("/session/{}", self.session), None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        if let Some(runtime) = self.http.runtime.take() {
            // Dropping a runtime where a test's runtime runs would panic.
            runtime.shutdown_background();
        }
    }
}

/// The binary named by `var`, else `name` on `PATH`, else `/usr/bin/NAME`;
/// panics with how to install it.
fn find(var: &str, name: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(var).filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "{var}={} is not a file: point it at {name} (Debian's: `scripts/services install-browser`), or unset it",
            path.display()
        );
        return path;
    }
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|dir| dir.join(name))
        .chain([Path::new("/usr/bin").join(name)])
        .find(|p| p.is_file());
    on_path.unwrap_or_else(|| {
        panic!(
            "{name} not found (on PATH, in /usr/bin, or in {var}): the real-browser tests need Debian's \
             Chromium and its driver. Install them with `scripts/services install-browser` (or \
             `apt-get install -y chromium chromium-driver`), point {CHROMIUM_VAR} and \
             {CHROMEDRIVER_VAR} at your own, or set {SKIP_VAR}=1 to skip these tests"
        )
    })
}

/// A port nothing listens on now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

impl Http {
    fn new() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("webdriver-http")
            .enable_all()
            .build()
            .expect("a runtime for the WebDriver client");
        Http {
            runtime: Some(runtime),
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// One request to chromedriver on 127.0.0.1:`port`, waited for up to
    /// [`COMMAND_TIMEOUT`]: the status and the JSON body.
    fn exchange(
        &self,
        port: u16,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), String> {
        let runtime = self
            .runtime
            .as_ref()
            .ok_or("the WebDriver client is shut down")?;
        let request = hyper::Request::builder()
            .method(method)
            .uri(format!("http://127.0.0.1:{port}{path}"))
            .header("content-type", "application/json; charset=utf-8")
            .body(Full::new(Bytes::from(
                body.map(Value::to_string).unwrap_or_default(),
            )))
            .map_err(|e| format!("request: {e}"))?;
        let answer = self.client.request(request);
        let (done, result) = std::sync::mpsc::sync_channel(1);
        runtime.spawn(async move {
            let exchanged = async {
                let response = answer.await.map_err(|e| format!("send: {e}"))?;
                let status = response.status().as_u16();
                let bytes = response
                    .into_body()
                    .collect()
                    .await
                    .map_err(|e| format!("read: {e}"))?
                    .to_bytes();
                let value = serde_json::from_slice(&bytes)
                    .map_err(|e| format!("{e}: {:?}", String::from_utf8_lossy(&bytes)))?;
                Ok((status, value))
            };
            let _ = done.send(exchanged.await);
        });
        result
            .recv_timeout(COMMAND_TIMEOUT)
            .map_err(|e| format!("no answer in {COMMAND_TIMEOUT:?}: {e}"))?
    }
}
