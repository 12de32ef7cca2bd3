//! Soak (issue 13): many events through a file backend and through the
//! MongoDB backend, with the MongoDB server paused (`kill -STOP`) for a few
//! seconds every step. Prints RSS (from /proc/self/status) at every step and,
//! at the end, the events lost and duplicated, counted by reading back what
//! was stored (the file's lines; the collection's `_id`s) against the
//! sequence numbers emitted.
//!
//! ```sh
//! cargo bench -p eventtracking-tests --bench soak            # file and mongo
//! cargo bench -p eventtracking-tests --bench soak -- file    # one of them
//! ```
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `EVENTTRACKING_SOAK_EVENTS` | 10000000 | events per backend |
//! | `EVENTTRACKING_SOAK_MONGO_EVENTS` | `EVENTTRACKING_SOAK_EVENTS` | events for MongoDB |
//! | `EVENTTRACKING_SOAK_STEP` | 1000000 | RSS printed (and MongoDB paused) every this many events |
//! | `EVENTTRACKING_SOAK_PAUSE_SECS` | 5 | length of each pause |
//! | `EVENTTRACKING_TEST_MONGO_URI` | required for `mongo` | the server |
//! | `EVENTTRACKING_TEST_MONGO_PID` | required for `mongo` | its process, to pause |
//!
//! Exits non-zero if any event is lost or duplicated. The file run needs
//! about 250 bytes of disk per event (in the temporary directory).

use std::io::BufRead;
use std::path::Path;
use std::time::{Duration, Instant};

use eventtracking::mongo::mongodb;
use eventtracking::{Config, Tracker};
use eventtracking_testkit::rss_mib;
use eventtracking_testkit::PausedProcess;
use mongodb::bson::{doc, RawBsonRef};

fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(text) => text
            .replace('_', "")
            .parse()
            .unwrap_or_else(|_| panic!("{name}={text:?} is not a number")),
        Err(_) => default,
    }
}

/// What was read back: sequence numbers seen and how often each id was stored.
#[derive(Default)]
struct Tally {
    seen: Vec<bool>,
    stored: u64,
    ids: Vec<u128>,
    foreign: u64,
}

impl Tally {
    fn new(events: u64) -> Self {
        Tally {
            seen: vec![false; events as usize],
            ..Tally::default()
        }
    }

    fn add(&mut self, id: u128, seq: Option<u64>) {
        self.stored += 1;
        self.ids.push(id);
        match seq.and_then(|s| self.seen.get_mut(s as usize)) {
            Some(seen) => *seen = true,
            None => self.foreign += 1,
        }
    }

    /// (lost, duplicated) events.
    fn finish(mut self) -> (u64, u64) {
        let lost = self.seen.iter().filter(|s| !**s).count() as u64;
        self.ids.sort_unstable();
        self.ids.dedup();
        let duplicated = self.stored - self.ids.len() as u64;
        assert_eq!(self.foreign, 0, "stored events that were not emitted");
        (lost, duplicated)
    }
}

/// Emits `events` seed-like events (three kinds, each with its sequence
/// number), calling `at_step` every `step` events; returns the final report.
fn emit_all(
    label: &str,
    tracker: &Tracker,
    events: u64,
    step: u64,
    mut at_step: impl FnMut(u64),
) -> eventtracking::DeliveryReport {
    let started = Instant::now();
    tracker
        .enter_context("outer", serde_json::json!({"user_id": 10938}))
        .unwrap();
    for seq in 0..events {
        if seq > 0 && seq % step == 0 {
            let (rss, _) = rss_mib();
            let stats = tracker.report().backends["soak"];
            println!(
                "{label}: {seq:>11} emitted, {:>11} delivered, rss {rss:7.1} MiB, {:6.1} s",
                stats.delivered,
                started.elapsed().as_secs_f64()
            );
            at_step(seq);
        }
        let result = eventtracking_testkit::emit_seed_shape(tracker, seq);
        if let Err(error) = result {
            eprintln!("{label}: emit {seq}: {error}");
        }
    }
    tracker.exit_context("outer").unwrap();
    let report = tracker
        .shutdown(Duration::from_secs(600))
        .expect("first shutdown");
    let (rss, peak) = rss_mib();
    let stats = report.backends["soak"];
    println!(
        "{label}: {events:>11} emitted, {:>11} delivered, rss {rss:7.1} MiB (peak {peak:.1}), {:.1} s, {:.0} events/s; retried {}, dead-lettered {}, dropped {}, complete {}",
        stats.delivered,
        started.elapsed().as_secs_f64(),
        events as f64 / started.elapsed().as_secs_f64(),
        stats.retried,
        stats.dead_lettered,
        stats.dropped,
        report.complete,
    );
    report
}

fn config(dir: &Path, backend: &str) -> Config {
    let text = format!(
        r#"
        [delivery]
        overflow = "block"
        block_timeout_ms = 600000
        dead_letter_path = {dead:?}

        [backends.soak]
        {backend}
        "#,
        dead = dir.join("dead-letter.jsonl").display().to_string(),
    );
    Config::from_toml_str(&text).unwrap()
}

fn dead_letters(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("dead-letter.jsonl")).map_or(0, |t| t.lines().count())
}

fn soak_file(events: u64, step: u64) -> bool {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    let backend = format!("engine = \"file\"\npath = {:?}", path.display().to_string());
    let tracker = config(dir.path(), &backend).build().unwrap();
    emit_all("file", &tracker, events, step, |_| {});
    drop(tracker);

    let mut tally = Tally::new(events);
    let file = std::io::BufReader::new(std::fs::File::open(&path).unwrap());
    for line in file.split(b'\n') {
        let event = eventtracking::Event::from_json_slice(&line.unwrap()).unwrap();
        tally.add(event.id().as_u128(), event.data()["seq"].as_u64());
    }
    verdict("file", tally, dead_letters(dir.path()))
}

fn soak_mongo(events: u64, step: u64, pause: Duration) -> bool {
    let uri = std::env::var("EVENTTRACKING_TEST_MONGO_URI")
        .expect("mongo: set EVENTTRACKING_TEST_MONGO_URI (and EVENTTRACKING_TEST_MONGO_PID)");
    let pid = std::env::var("EVENTTRACKING_TEST_MONGO_PID")
        .expect("mongo: set EVENTTRACKING_TEST_MONGO_PID, the server process to pause");
    let database = format!("et_soak_{:012x}", fastrand_u64() >> 16);
    let dir = tempfile::tempdir().unwrap();
    let backend = format!(
        "engine = \"mongo\"\nuri = {uri:?}\ndatabase = {database:?}\ncollection = \"events\""
    );
    let tracker = config(dir.path(), &backend).build().unwrap();
    let mut pauses = Vec::new();
    emit_all("mongo", &tracker, events, step, |_| {
        let pid = pid.clone();
        pauses.push(std::thread::spawn(move || {
            let _paused = PausedProcess::pause(&pid);
            std::thread::sleep(pause);
        }));
    });
    for pause in pauses {
        pause.join().unwrap();
    }
    drop(tracker);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let tally = runtime.block_on(async {
        let client = mongodb::Client::with_uri_str(&uri).await.unwrap();
        let db = client.database(&database);
        let collection = db.collection::<mongodb::bson::RawDocumentBuf>("events");
        let mut cursor = collection
            .find(doc! {})
            .projection(doc! {"_id": 1, "data.seq": 1})
            .await
            .unwrap();
        let mut tally = Tally::new(events);
        while cursor.advance().await.unwrap() {
            let document = cursor.current();
            let id = match document.get("_id").unwrap() {
                Some(RawBsonRef::Binary(binary)) => {
                    u128::from_be_bytes(binary.bytes.try_into().unwrap())
                }
                other => panic!("_id {other:?}"),
            };
            let seq = document
                .get_document("data")
                .ok()
                .and_then(|data| data.get_i64("seq").ok())
                .map(|seq| seq as u64);
            tally.add(id, seq);
        }
        db.drop().await.unwrap();
        tally
    });
    verdict("mongo", tally, dead_letters(dir.path()))
}

fn fastrand_u64() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::process::id())
}

fn verdict(label: &str, tally: Tally, dead_letters: usize) -> bool {
    let stored = tally.stored;
    let (lost, duplicated) = tally.finish();
    println!(
        "{label}: stored {stored}, lost {lost}, duplicated {duplicated}, dead letters {dead_letters}"
    );
    lost == 0 && duplicated == 0
}

fn main() {
    // `cargo bench` passes `--bench`; anything else names a backend.
    let chosen: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let wants = |name: &str| chosen.is_empty() || chosen.iter().any(|c| c == name);
    let events = env_number("EVENTTRACKING_SOAK_EVENTS", 10_000_000);
    let step = env_number("EVENTTRACKING_SOAK_STEP", 1_000_000).max(1);
    let pause = Duration::from_secs(env_number("EVENTTRACKING_SOAK_PAUSE_SECS", 5));
    let mut ok = true;
    if wants("file") {
        ok &= soak_file(events, step);
    }
    if wants("mongo") {
        let events = env_number("EVENTTRACKING_SOAK_MONGO_EVENTS", events);
        ok &= soak_mongo(events, step, pause);
    }
    if !ok {
        std::process::exit(1);
    }
}
