//! A writer killed with SIGKILL mid-stream leaves only complete lines once the
//! file is opened again, and a restart appends cleanly after them.

use std::collections::HashSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use eventtracking::Event;

#[test]
fn kill_9_mid_stream_then_restart_leaves_only_whole_lines() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.jsonl");
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[delivery]\noverflow = \"block\"\nbatch_size = 64\ndead_letter_path = \"{}\"\n[backends.local]\nengine = \"file\"\npath = \"{}\"\n",
            dir.path().join("dead.jsonl").display(),
            events.display()
        ),
    )
    .unwrap();
    let run = |count: &str| {
        Command::new(env!("CARGO_BIN_EXE_eventtracking"))
            .args([
                "demo",
                "--config",
                config.to_str().unwrap(),
                "--count",
                count,
            ])
            .env_remove("EVENTTRACKING_CONFIG")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };

    let mut writer = run("100000000");
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::metadata(&events).map(|m| m.len()).unwrap_or(0) < 2_000_000 {
        assert!(Instant::now() < deadline, "the writer wrote too little");
        assert!(
            writer.try_wait().unwrap().is_none(),
            "the writer exited early"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    writer.kill().unwrap(); // SIGKILL
    writer.wait().unwrap();
    let killed_at = std::fs::metadata(&events).unwrap().len();

    let restarted = run("10").wait().unwrap();
    assert!(restarted.success());

    let text = std::fs::read_to_string(&events).unwrap();
    assert!(text.ends_with('\n'));
    assert!(
        text.len() as u64 >= killed_at - 4096,
        "the repair cut at most the torn line"
    );
    let events: Vec<Event> = text
        .lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("torn line: {e}: {line:?}"))
        })
        .collect();
    let ids: HashSet<_> = events.iter().map(Event::id).collect();
    assert_eq!(ids.len(), events.len(), "duplicate ids");
    assert!(events.len() > 5_000, "{}", events.len());
    // The restart's 30 events follow every event of the killed writer.
    let (before, after) = events.split_at(events.len() - 30);
    let killed_last = before.iter().map(Event::timestamp).max().unwrap();
    assert!(after.iter().all(|e| e.timestamp() > killed_last));
    assert_eq!(
        after
            .iter()
            .filter(|e| e.name() == "address.create")
            .count(),
        10
    );
}
