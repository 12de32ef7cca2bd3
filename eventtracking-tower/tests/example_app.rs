//! The example application (`cargo run -p eventtracking-tower --example
//! axum_app`): its router served for real, and the built binary's
//! interface (environment variables, stdout, graceful SIGTERM).

#[path = "../examples/axum_app/app.rs"]
#[allow(dead_code)]
mod app;
mod common;

use common::{client, delivered, get, memory_tracker, send, Server};
use http::{HeaderMap, HeaderValue};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_course_view_emits_start_and_end_in_the_request_context() {
    let (tracker, memory) = memory_tracker();
    let layer = app::tracking_layer();
    let server = Server::start(app::router(tracker.clone(), layer.clone())).await;
    let client = client();

    let reply = get(
        &client,
        &server.url("/courses/42"),
        &[("x-user-id", "u-42"), ("user-agent", "tests/1")],
    )
    .await;
    assert_eq!(reply.status, 200);
    let request_id = reply.header("x-request-id").to_owned();

    let events = delivered(&tracker, &memory).await;
    let phases: Vec<_> = events
        .iter()
        .map(|e| e.data()["phase"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(phases, ["start", "end"]);
    for event in &events {
        assert_eq!(event.name(), "course.view");
        assert_eq!(event.data()["course_id"], "42");
        let context = event.context();
        assert_eq!(context["user_id"], "u-42");
        assert_eq!(context["request_id"], request_id.as_str());
        assert_eq!(context["method"], "GET");
        assert_eq!(context["path"], "/courses/42");
        assert_eq!(context["client_ip"], "127.0.0.1");
        assert_eq!(context["host"], server.addr.to_string());
        assert_eq!(context["user_agent"], "tests/1");
    }

    // Anonymous: no user id.
    memory.clear();
    get(&client, &server.url("/courses/7"), &[]).await;
    let events = delivered(&tracker, &memory).await;
    assert_eq!(events.len(), 2);
    assert!(events.iter().all(|e| e.context().get("user_id").is_none()));

    // A header that is not ASCII: the extractor fails, the request does not.
    memory.clear();
    let mut headers = HeaderMap::new();
    headers.insert("x-user-id", HeaderValue::from_bytes(b"\xff\xfe").unwrap());
    let reply = send(&client, &server.url("/courses/8"), headers).await;
    assert_eq!(reply.status, 200);
    let events = delivered(&tracker, &memory).await;
    assert_eq!(events.len(), 2);
    assert!(events.iter().all(|e| e.context().get("user_id").is_none()));
    assert_eq!(layer.stats().extractor_errors, 1);

    // Other paths: 404, no events, still a request id.
    memory.clear();
    let reply = get(&client, &server.url("/nope"), &[]).await;
    assert_eq!(reply.status, 404);
    assert!(!reply.header("x-request-id").is_empty());
    assert!(delivered(&tracker, &memory).await.is_empty());
}

#[test]
fn the_listen_address_comes_from_eventtracking_addr() {
    assert_eq!(
        app::listen_addr(None).unwrap().to_string(),
        "127.0.0.1:3000"
    );
    assert_eq!(
        app::listen_addr(Some("")).unwrap().to_string(),
        "127.0.0.1:3000"
    );
    assert_eq!(
        app::listen_addr(Some("0.0.0.0:8080")).unwrap().to_string(),
        "0.0.0.0:8080"
    );
    let err = app::listen_addr(Some("localhost")).unwrap_err();
    assert!(
        err.contains("EVENTTRACKING_ADDR") && err.contains("localhost"),
        "{err}"
    );
}

/// The binary itself: `cargo test` builds examples before it runs tests.
#[cfg(unix)]
mod binary {
    use std::io::{BufRead, BufReader, Read};
    use std::path::PathBuf;
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    use super::common::{client, get};

    fn example_path() -> PathBuf {
        // target/<profile>/deps/example_app-<hash> -> target/<profile>/examples/axum_app
        let exe = std::env::current_exe().expect("current exe");
        let path = exe
            .parent()
            .and_then(|deps| deps.parent())
            .expect("target dir")
            .join("examples")
            .join("axum_app");
        assert!(
            path.exists(),
            "{} is missing: run `cargo test -p eventtracking-tower` (it builds the examples) \
             or `cargo build -p eventtracking-tower --example axum_app` first",
            path.display()
        );
        path
    }

    /// Starts the example on an ephemeral port; returns it and its base URL.
    fn start(config: Option<&std::path::Path>) -> (Child, String) {
        let mut command = Command::new(example_path());
        command
            .env("EVENTTRACKING_ADDR", "127.0.0.1:0")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        match config {
            Some(path) => command.env("EVENTTRACKING_CONFIG", path),
            None => command.env_remove("EVENTTRACKING_CONFIG"),
        };
        let mut child = command.spawn().expect("spawn the example");
        let stderr = child.stderr.take().expect("stderr");
        let mut lines = BufReader::new(stderr).lines();
        let url = loop {
            let line = lines
                .next()
                .expect("the example exited before listening")
                .expect("stderr line");
            if let Some(url) = line.strip_prefix("axum_app: listening on ") {
                break url.to_owned();
            }
        };
        // Keep draining stderr so the child never blocks on it.
        std::thread::spawn(move || lines.for_each(drop));
        (child, url)
    }

    /// SIGTERM, then the exit status (waiting at most 30 s).
    fn terminate(mut child: Child) -> (std::process::ExitStatus, String) {
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("the example did not exit within 30 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut stdout = String::new();
        child
            .stdout
            .take()
            .expect("stdout")
            .read_to_string(&mut stdout)
            .expect("read stdout");
        (status, stdout)
    }

    fn course_views(jsonl: &str) -> Vec<serde_json::Value> {
        jsonl
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}")))
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn default_config_writes_json_lines_to_stdout_and_sigterm_flushes() {
        let (child, url) = start(None);
        let reply = get(
            &client(),
            &format!("{url}/courses/5"),
            &[("x-user-id", "u-5")],
        )
        .await;
        assert_eq!(reply.status, 200);
        let request_id = reply.header("x-request-id").to_owned();

        let (status, stdout) = tokio::task::spawn_blocking(move || terminate(child))
            .await
            .unwrap();
        assert!(status.success(), "{status}");
        let events = course_views(&stdout);
        assert_eq!(events.len(), 2, "{stdout}");
        for (event, phase) in events.iter().zip(["start", "end"]) {
            assert_eq!(event["name"], "course.view");
            assert_eq!(
                event["data"],
                serde_json::json!({"course_id": "5", "phase": phase})
            );
            assert_eq!(event["context"]["user_id"], "u-5");
            assert_eq!(event["context"]["request_id"], request_id.as_str());
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn eventtracking_config_names_the_pipeline() {
        let dir = std::env::temp_dir().join(format!(
            "eventtracking-tower-example-{}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let events_path = dir.join("events.jsonl");
        let config_path = dir.join("eventtracking.toml");
        std::fs::write(
            &config_path,
            format!(
                "[delivery]\ndead_letter_path = {:?}\n[backends.local]\nengine = \"file\"\npath = {:?}\n",
                dir.join("dead.jsonl"),
                events_path
            ),
        )
        .unwrap();

        let (child, url) = start(Some(&config_path));
        let client = client();
        for user in ["a", "b"] {
            let reply = get(
                &client,
                &format!("{url}/courses/{user}"),
                &[("x-user-id", user)],
            )
            .await;
            assert_eq!(reply.status, 200);
        }
        let (status, stdout) = tokio::task::spawn_blocking(move || terminate(child))
            .await
            .unwrap();
        assert!(status.success(), "{status}");
        assert!(stdout.is_empty(), "events went to stdout: {stdout}");
        let written = std::fs::read_to_string(&events_path).unwrap();
        let events = course_views(&written);
        assert_eq!(events.len(), 4, "{written}");
        for event in &events {
            assert_eq!(event["context"]["user_id"], event["data"]["course_id"]);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
