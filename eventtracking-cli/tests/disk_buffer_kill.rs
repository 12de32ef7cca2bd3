//! The disk buffer's promise, through the binary and a real MongoDB: an
//! event whose receipt said `Buffered` (with `buffer_fsync = "always"`)
//! survives SIGKILL, however often, and reaches the collection exactly once.

use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use eventtracking::uuid::Uuid;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_eventtracking");
const CYCLES: usize = 20;
const LINES_PER_CYCLE: usize = 300;

/// The whole lines of a receipts file (a SIGKILL may cut the last one).
fn receipts(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let whole = text.rfind('\n').map_or("", |end| &text[..end]);
    whole
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect()
}

#[test]
fn kill_9_loop_with_mongo_paused_then_drain_stores_every_buffered_event_once() {
    let Ok(uri) = std::env::var("EVENTTRACKING_TEST_MONGO_URI") else {
        eprintln!("EVENTTRACKING_TEST_MONGO_URI is not set: skipping the kill -9 loop");
        return;
    };
    let Ok(pid) = std::env::var("EVENTTRACKING_TEST_MONGO_PID") else {
        eprintln!("EVENTTRACKING_TEST_MONGO_PID is not set: skipping the kill -9 loop (it pauses the server)");
        return;
    };
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let seed = nanos as u64;
    eprintln!("kill -9 loop: seed {seed}");
    let mut random = fastrand::Rng::with_seed(seed);
    let dir = tempfile::tempdir().unwrap();
    let dead = dir.path().join("dead.jsonl");
    let collection = format!("kill9_{nanos}");
    let database = "eventtracking_cli_tests";
    let config = dir.path().join("mongo.toml");
    std::fs::write(
        &config,
        format!(
            "[delivery]\nbuffer = \"disk\"\nbuffer_path = {:?}\nbuffer_fsync = \"always\"\n\
             dead_letter_path = {dead:?}\n\
             [backends.store]\nengine = \"mongo\"\nuri = {uri:?}\ndatabase = {database:?}\n\
             collection = {collection:?}\nserver_selection_timeout_ms = 2000\ncreate_indexes = false\n",
            dir.path().join("buffers"),
        ),
    )
    .unwrap();

    let mut sent: HashMap<Uuid, u64> = HashMap::new();
    let mut buffered: BTreeSet<Uuid> = BTreeSet::new();
    {
        let _paused = eventtracking_testkit::PausedProcess::pause(&pid);
        for cycle in 0..CYCLES {
            let receipts_path = dir.path().join(format!("receipts-{cycle}.jsonl"));
            let mut send = Command::new(BIN)
                .args(["send", "-c", config.to_str().unwrap()])
                .arg("--receipts")
                .arg(&receipts_path)
                .env_remove("EVENTTRACKING_CONFIG")
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let input: String = (0..LINES_PER_CYCLE)
                .map(|i| {
                    let id = Uuid::now_v7();
                    let n = (cycle * LINES_PER_CYCLE + i) as u64;
                    sent.insert(id, n);
                    format!("{{\"name\":\"kill.nine\",\"id\":\"{id}\",\"data\":{n}}}\n")
                })
                .collect();
            let mut stdin = send.stdin.take().unwrap();
            // The pipe holds all of it; stdin stays open so `send` never ends by itself.
            stdin.write_all(input.as_bytes()).unwrap();
            // Some receipts said `Buffered`, then a random moment more.
            let wanted = random.usize(1..=LINES_PER_CYCLE / 2);
            let give_up = Instant::now() + Duration::from_secs(60);
            while receipts(&receipts_path).len() < wanted {
                assert!(
                    send.try_wait().unwrap().is_none(),
                    "cycle {cycle}: send exited early"
                );
                assert!(Instant::now() < give_up, "cycle {cycle}: no receipts");
                std::thread::sleep(Duration::from_millis(1));
            }
            std::thread::sleep(Duration::from_micros(random.u64(0..20_000)));
            send.kill().unwrap(); // SIGKILL
            send.wait().unwrap();
            drop(stdin);
            for receipt in receipts(&receipts_path) {
                let id: Uuid = receipt["id"].as_str().unwrap().parse().unwrap();
                assert!(sent.contains_key(&id), "{receipt}");
                assert_eq!(
                    receipt["outcomes"]["store"]["outcome"], "buffered",
                    "cycle {cycle}: {receipt}"
                );
                buffered.insert(id);
            }
        }
    }
    assert!(buffered.len() >= CYCLES, "{}", buffered.len());

    // The server is back: drain delivers what the buffer holds.
    let drain = Command::new(BIN)
        .args(["drain", "-c", config.to_str().unwrap(), "--timeout", "120"])
        .env_remove("EVENTTRACKING_CONFIG")
        .output()
        .unwrap();
    let drain_stderr = String::from_utf8_lossy(&drain.stderr);
    assert!(drain.status.success(), "drain: {drain_stderr}");
    assert!(
        std::fs::read(&dead).map(|d| d.is_empty()).unwrap_or(true),
        "dead letters: {}",
        std::fs::read_to_string(&dead).unwrap_or_default()
    );

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let stored: Vec<Uuid> = runtime.block_on(async {
        let client = mongodb::Client::with_uri_str(&uri).await.unwrap();
        let events = client
            .database(database)
            .collection::<mongodb::bson::Document>(&collection);
        let mut cursor = events.find(mongodb::bson::doc! {}).await.unwrap();
        let mut documents = Vec::new();
        while cursor.advance().await.unwrap() {
            documents.push(cursor.deserialize_current().unwrap());
        }
        events.drop().await.unwrap();
        documents
            .iter()
            .map(|d| {
                let Some(mongodb::bson::Bson::Binary(id)) = d.get("_id") else {
                    panic!("_id is not a binary UUID: {d}");
                };
                Uuid::from_slice(&id.bytes).unwrap()
            })
            .collect()
    });
    eprintln!(
        "kill -9 loop: {} sent, {} said Buffered before SIGKILL, {} stored after drain",
        sent.len(),
        buffered.len(),
        stored.len()
    );
    let stored_set: BTreeSet<Uuid> = stored.iter().copied().collect();
    assert_eq!(stored_set.len(), stored.len(), "an event stored twice");
    let missing: Vec<_> = buffered.difference(&stored_set).collect();
    assert!(
        missing.is_empty(),
        "{} buffered event(s) not stored, e.g. {:?} (seed {seed})",
        missing.len(),
        missing
            .iter()
            .take(3)
            .map(|id| sent[id])
            .collect::<Vec<_>>()
    );
    assert!(
        stored_set.iter().all(|id| sent.contains_key(id)),
        "an event that was never sent"
    );
}
