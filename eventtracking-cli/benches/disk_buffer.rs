//! The disk buffer (issue 14) end to end, beside a raw baseline measured in
//! the same run. Prints figures (not criterion, so that one run shows all).
//!
//! ```sh
//! cargo bench -p eventtracking-cli --bench disk_buffer                      # everything
//! cargo bench -p eventtracking-cli --bench disk_buffer -- throughput replay # some parts
//! ```
//!
//! Parts (named after `--`; all of them when none is named):
//! - `throughput`: the seed's three event shapes, made before timing and
//!   given to `Tracker::emit_event`, into the file backend until `flush`
//!   reports them delivered, with a memory buffer, a disk buffer under
//!   `buffer_fsync = "interval"` (100 ms) and under `"always"`; beside the
//!   raw baseline (the same events, `serde_json::to_writer` into a
//!   `BufWriter<File>`), the cases alternated round by round. A second raw
//!   baseline does the rest of what the tracker's cases do: it is handed
//!   the events by value and frees each once written (the first writes
//!   them by reference and frees none while timed), and fsyncs the file at
//!   the end (the file backend's `flush`, which ends a tracker case, does);
//!   the ratios are printed against both, per round and their median. `"always"`
//!   fsyncs every emit, so it runs fewer events; beside it, the raw floor of
//!   a `write` + `fdatasync` per event. Each tracker uses the engine's
//!   delivery defaults (`batch_size` 512, `queue_capacity` 65,536) with
//!   `overflow = "block"` (what the bulk commands get). Each case gets
//!   events of its own, so no case reuses JSON that another cached.
//! - `replay`: a buffer filled with N events (through the library's
//!   `DiskBuffer`, untimed), then the release `eventtracking drain --config
//!   FILE` into the file backend, the whole process timed; beside the raw
//!   baseline writing the same N events (in this process).
//! - `interval` (only when named): the disk buffer under `"interval"`
//!   alone, without its baseline, for a profiler.
//! - `rss`: in a child process (so that the other parts' memory does not
//!   count), typed events emitted as fast as the tracker takes them into a
//!   disk buffer whose backend is slower than the emitter (it sleeps per
//!   batch, then discards); the process RSS (`VmRSS`, and the peak `VmHWM`)
//!   every step, and after shutdown.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `EVENTTRACKING_BENCH_EVENTS` | 1000000 | events per throughput round |
//! | `EVENTTRACKING_BENCH_ALWAYS_EVENTS` | 10000 | events per `"always"` round |
//! | `EVENTTRACKING_BENCH_REPLAY_EVENTS` | 1000000 | events in the buffer drained |
//! | `EVENTTRACKING_BENCH_ROUNDS` | 3 | rounds of each throughput and replay case |
//! | `EVENTTRACKING_BENCH_RSS_EVENTS` | 10000000 | events of the RSS run |
//! | `EVENTTRACKING_BENCH_RSS_STEP` | 1000000 | RSS printed every this many events |
//! | `EVENTTRACKING_BENCH_SLOW_BATCH_MS` | 2 | the slow backend's sleep per batch (512 events) |
//! | `EVENTTRACKING_BENCH_DIR` | the system's temporary directory | where the files and buffers go |
//!
//! Disk use is bounded: each round's files are deleted after it; the
//! buffer deletes segments as they are delivered; the RSS run's backend
//! stores nothing, and its buffer holds at most `buffer_max_bytes` (1 GiB).
//!
//! The bench process uses mimalloc as its global allocator, as the
//! `eventtracking` binary does.

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use eventtracking::buffer::DiskBuffer;
use eventtracking::file::FileBackend;
use eventtracking::{
    async_trait, Backend, BackendResult, BufferFsync, BufferKind, Config, DeliveryConfig, Event,
    Overflow, Tracker,
};
use eventtracking_testkit::rss_mib;
use serde_json::json;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn env_usize(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(text) => text
            .replace('_', "")
            .parse()
            .unwrap_or_else(|_| panic!("{name}={text:?} is not a number")),
        Err(_) => default,
    }
}

/// The raw baseline: the events with serde_json into a `BufWriter<File>`,
/// by reference (none is freed while timed), the file not fsynced.
fn raw_baseline(events: &[Arc<Event>], path: &Path) -> Duration {
    raw_write(events, path, false)
}

/// The raw baseline doing what the tracker's case does besides writing:
/// each event handed over by value and freed once written (a tracker frees
/// each event it is given), and the file fsynced at the end (the file
/// backend's `flush`, which ends the timed part of [`pipeline`], fsyncs).
fn raw_like_for_like(events: Vec<Arc<Event>>, path: &Path) -> Duration {
    raw_write(events, path, true)
}

fn raw_write<E: AsRef<Event>>(
    events: impl IntoIterator<Item = E>,
    path: &Path,
    fsync: bool,
) -> Duration {
    let start = Instant::now();
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for event in events {
        serde_json::to_writer(&mut out, event.as_ref()).unwrap();
        out.write_all(b"\n").unwrap();
    }
    out.flush().unwrap();
    if fsync {
        out.get_ref().sync_data().unwrap();
    }
    let elapsed = start.elapsed();
    drop(out);
    std::fs::remove_file(path).unwrap();
    elapsed
}

/// The raw floor of `"always"`: each event written and `fdatasync`ed.
fn raw_fsync_each(events: &[Arc<Event>], path: &Path) -> Duration {
    let start = Instant::now();
    let mut file = std::fs::File::create(path).unwrap();
    let mut line = Vec::with_capacity(512);
    for event in events {
        line.clear();
        serde_json::to_writer(&mut line, &**event).unwrap();
        line.push(b'\n');
        file.write_all(&line).unwrap();
        file.sync_data().unwrap();
    }
    let elapsed = start.elapsed();
    drop(file);
    std::fs::remove_file(path).unwrap();
    elapsed
}

fn delivery(buffer: Option<(BufferFsync, &Path)>) -> DeliveryConfig {
    let config = DeliveryConfig::default()
        .with_overflow(Overflow::Block)
        .with_block_timeout(Duration::from_secs(600));
    match buffer {
        None => config,
        Some((fsync, path)) => config
            .with_buffer(BufferKind::Disk)
            .with_buffer_fsync(fsync)
            .with_buffer_path(path),
    }
}

/// `emit_event` of every event into the file backend, until flushed.
fn pipeline(
    events: Vec<Arc<Event>>,
    dir: &Path,
    buffer: Option<BufferFsync>,
) -> (Duration, eventtracking::BackendStats) {
    let path = dir.join("pipeline.jsonl");
    let buffer_path = dir.join("buffer");
    let backend = FileBackend::builder(&path).build().unwrap();
    let tracker = Tracker::builder()
        .with_delivery(
            delivery(buffer.map(|fsync| (fsync, buffer_path.as_path())))
                .with_dead_letter_path(dir.join("dead-letter.jsonl")),
        )
        .with_backend("file", backend)
        .build()
        .unwrap();
    let n = events.len() as u64;
    let start = Instant::now();
    for event in events {
        tracker.emit_event(event).unwrap();
    }
    let report = tracker.flush(Duration::from_secs(600));
    let elapsed = start.elapsed();
    let stats = report.backends["file"];
    assert_eq!(stats.delivered, n, "{report}");
    tracker.shutdown(Duration::from_secs(60));
    drop(tracker);
    std::fs::remove_file(&path).unwrap();
    let _ = std::fs::remove_dir_all(&buffer_path);
    (elapsed, stats)
}

struct Figures {
    name: &'static str,
    times: Vec<Duration>,
}

impl Figures {
    fn new(name: &'static str) -> Self {
        Figures {
            name,
            times: Vec::new(),
        }
    }

    fn rates(&self, n: usize) -> Vec<f64> {
        self.times
            .iter()
            .map(|t| n as f64 / t.as_secs_f64())
            .collect()
    }
}

fn list(rates: &[f64]) -> String {
    rates
        .iter()
        .map(|r| format!("{r:.0}"))
        .collect::<Vec<_>>()
        .join(" / ")
}

/// The middle value (the mean of the two middle ones for an even count).
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    match values.len() {
        0 => f64::NAN,
        len if len % 2 == 1 => values[mid],
        _ => (values[mid - 1] + values[mid]) / 2.0,
    }
}

/// Prints each case's events/s per round and, per round, its ratio to the
/// baseline of the same round, then the median of those ratios: on a
/// machine whose speed moves between rounds (a shared VM: the baseline
/// alone moved by 1.7x within one run), a round's ratio compares two
/// neighbouring measurements, and the median of several is the figure.
fn print_table(title: &str, n: usize, baseline: &Figures, cases: &[&Figures]) {
    println!("{title}");
    println!(
        "  {:<52} {} events/s",
        baseline.name,
        list(&baseline.rates(n))
    );
    for case in cases {
        let ratios: Vec<f64> = case
            .times
            .iter()
            .zip(&baseline.times)
            .map(|(t, b)| b.as_secs_f64() / t.as_secs_f64())
            .collect();
        let each: Vec<String> = ratios.iter().map(|r| format!("{r:.2}")).collect();
        println!(
            "  {:<52} {} events/s = {}x baseline (per round), median {:.2}x",
            case.name,
            list(&case.rates(n)),
            each.join(" / "),
            median(ratios)
        );
    }
}

fn throughput(dir: &Path, rounds: usize) {
    let n = env_usize("EVENTTRACKING_BENCH_EVENTS", 1_000_000);
    let n_always = env_usize("EVENTTRACKING_BENCH_ALWAYS_EVENTS", 10_000);
    let mut baseline = Figures::new("raw: serde_json -> BufWriter<File>");
    let mut like_for_like = Figures::new("raw, events freed as written, fsync at the end");
    let mut memory = Figures::new("file backend, memory buffer");
    let mut interval = Figures::new("file backend, disk buffer, fsync interval 100 ms");
    let mut always_baseline = Figures::new("raw: serde_json -> BufWriter<File>");
    let mut always_floor = Figures::new("raw: serde_json, write + fdatasync per event");
    let mut always = Figures::new("file backend, disk buffer, fsync always, batch 512");
    for round in 1..=rounds {
        eprintln!("throughput round {round}/{rounds}");
        let events = eventtracking_testkit::seed_example_stream(n);
        baseline
            .times
            .push(raw_baseline(&events, &dir.join("raw.jsonl")));
        drop(events);
        like_for_like.times.push(raw_like_for_like(
            eventtracking_testkit::seed_example_stream(n),
            &dir.join("raw.jsonl"),
        ));
        memory
            .times
            .push(pipeline(eventtracking_testkit::seed_example_stream(n), dir, None).0);
        interval.times.push(
            pipeline(
                eventtracking_testkit::seed_example_stream(n),
                dir,
                Some(BufferFsync::Interval),
            )
            .0,
        );

        let events = eventtracking_testkit::seed_example_stream(n_always);
        always_baseline
            .times
            .push(raw_baseline(&events, &dir.join("raw.jsonl")));
        always_floor
            .times
            .push(raw_fsync_each(&events, &dir.join("raw-fsync.jsonl")));
        drop(events);
        always.times.push(
            pipeline(
                eventtracking_testkit::seed_example_stream(n_always),
                dir,
                Some(BufferFsync::Always),
            )
            .0,
        );
    }
    print_table(
        &format!("throughput, {n} events, {rounds} rounds (cases alternated):"),
        n,
        &baseline,
        &[&like_for_like, &memory, &interval],
    );
    print_table(
        "the same, against the raw baseline doing the tracker's other work too (freeing each event, fsync at the end):",
        n,
        &like_for_like,
        &[&memory, &interval],
    );
    print_table(
        &format!("fsync always, {n_always} events, {rounds} rounds:"),
        n_always,
        &always_baseline,
        &[&always_floor, &always],
    );
}

/// This process's user and system CPU time, in clock ticks (1/100 s).
fn cpu_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command's closing parenthesis; utime and stime
    // are the 14th and 15th of the line.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let field = |n: usize| {
        after
            .split_whitespace()
            .nth(n)
            .and_then(|f| f.parse().ok())
            .unwrap_or(0)
    };
    (field(11), field(12))
}

/// The `"interval"` case alone, no baseline: for a profiler.
fn interval_only(dir: &Path, rounds: usize) {
    let n = env_usize("EVENTTRACKING_BENCH_EVENTS", 1_000_000);
    for _ in 0..rounds {
        let events = eventtracking_testkit::seed_example_stream(n);
        // CLOCK_MONOTONIC, for `perf record -k mono` and `perf report --time`.
        eprintln!("interval only: starts at {:?}", Instant::now());
        let cpu = cpu_ticks();
        let (elapsed, stats) = pipeline(events, dir, Some(BufferFsync::Interval));
        let (user, sys) = cpu_ticks();
        eprintln!("interval only: ends at {:?}", Instant::now());
        println!(
            "interval only: {n} events in {:.3} s, {:.0} events/s; CPU {:.2} user {:.2} sys (s, shutdown included); {} batches",
            elapsed.as_secs_f64(),
            n as f64 / elapsed.as_secs_f64(),
            (user - cpu.0) as f64 / 100.0,
            (sys - cpu.1) as f64 / 100.0,
            stats.batches,
        );
    }
}

fn replay(dir: &Path, rounds: usize) {
    let n = env_usize("EVENTTRACKING_BENCH_REPLAY_EVENTS", 1_000_000);
    let buffer_path = dir.join("replay-buffer");
    let out = dir.join("replay.jsonl");
    let config_path = dir.join("replay.toml");
    std::fs::write(
        &config_path,
        format!(
            r#"
            [delivery]
            buffer = "disk"
            buffer_path = {buffer:?}
            dead_letter_path = {dead:?}

            [backends.file]
            engine = "file"
            path = {out:?}
            "#,
            buffer = buffer_path.display().to_string(),
            dead = dir.join("dead-letter.jsonl").display().to_string(),
            out = out.display().to_string(),
        ),
    )
    .unwrap();
    let config = Config::from_toml_str(&std::fs::read_to_string(&config_path).unwrap()).unwrap();
    let delivery = config.backend_delivery_config("file").unwrap().unwrap();

    let mut baseline = Figures::new("raw: serde_json -> BufWriter<File> (in process)");
    let mut drain = Figures::new("eventtracking drain --config FILE (whole process)");
    let mut buffered_bytes = 0;
    for round in 1..=rounds {
        eprintln!("replay round {round}/{rounds}");
        let events = eventtracking_testkit::seed_example_stream(n);
        baseline
            .times
            .push(raw_baseline(&events, &dir.join("raw.jsonl")));

        // Fill the buffer (untimed), as a tracker whose store was down would.
        let buffer =
            DiskBuffer::open(delivery.buffer_dir("file"), delivery.disk_buffer_options()).unwrap();
        for chunk in events.chunks(4096) {
            let payloads: Vec<&[u8]> = chunk.iter().map(|e| e.to_json_bytes()).collect();
            let outcome = buffer.append_many(&payloads);
            assert!(outcome.error.is_none(), "{:?}", outcome.error);
        }
        let stats = buffer.stats();
        assert_eq!(stats.records, n as u64);
        buffered_bytes = stats.bytes;
        buffer.close().unwrap();
        drop(events);

        let start = Instant::now();
        let output = Command::new(env!("CARGO_BIN_EXE_eventtracking"))
            .args(["drain", "--config"])
            .arg(&config_path)
            .output()
            .unwrap();
        let elapsed = start.elapsed();
        assert!(
            output.status.success(),
            "drain failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let lines =
            std::io::BufRead::lines(std::io::BufReader::new(std::fs::File::open(&out).unwrap()))
                .count();
        assert_eq!(lines, n, "lines written by drain");
        drain.times.push(elapsed);
        std::fs::remove_file(&out).unwrap();
        let _ = std::fs::remove_dir_all(&buffer_path);
    }
    print_table(
        &format!(
            "replay, a buffer of {n} events ({:.0} MB on disk), {rounds} rounds:",
            buffered_bytes as f64 / 1e6
        ),
        n,
        &baseline,
        &[&drain],
    );
}

/// A backend slower than the emitter: sleeps per batch, then discards.
#[derive(Debug)]
struct SlowBackend {
    per_batch: Duration,
    events: AtomicU64,
}

#[async_trait]
impl Backend for SlowBackend {
    async fn send_batch(&self, batch: &[Arc<Event>]) -> BackendResult {
        tokio::time::sleep(self.per_batch).await;
        self.events.fetch_add(batch.len() as u64, Relaxed);
        Ok(())
    }
}

fn rss(dir: &Path) {
    let n = env_usize("EVENTTRACKING_BENCH_RSS_EVENTS", 10_000_000) as u64;
    let step = env_usize("EVENTTRACKING_BENCH_RSS_STEP", 1_000_000).max(1) as u64;
    let per_batch = Duration::from_millis(env_usize("EVENTTRACKING_BENCH_SLOW_BATCH_MS", 2) as u64);
    let backend = SlowBackend {
        per_batch,
        events: AtomicU64::new(0),
    };
    let tracker = Tracker::builder()
        .with_delivery(
            delivery(Some((BufferFsync::Interval, &dir.join("rss-buffer"))))
                .with_dead_letter_path(dir.join("dead-letter.jsonl")),
        )
        .with_backend("slow", backend)
        .build()
        .unwrap();
    let (rss, peak) = rss_mib();
    println!(
        "rss: {n} typed events into a disk buffer (fsync interval) whose backend sleeps {} ms per batch of 512, then discards",
        per_batch.as_millis()
    );
    println!(
        "rss: {:>11} emitted, rss {rss:7.1} MiB (peak {peak:.1}), before emitting",
        0
    );
    let started = Instant::now();
    tracker
        .enter_context("outer", json!({"user_id": 10938}))
        .unwrap();
    for seq in 0..n {
        if seq > 0 && seq % step == 0 {
            print_progress(&tracker, seq, started.elapsed());
        }
        eventtracking_testkit::emit_seed_shape(&tracker, seq).unwrap();
    }
    tracker.exit_context("outer").unwrap();
    let emitted = started.elapsed();
    print_progress(&tracker, n, emitted);
    let report = tracker
        .shutdown(Duration::from_secs(3600))
        .expect("first shutdown");
    let (rss, peak) = rss_mib();
    let stats = report.backends["slow"];
    println!(
        "rss: after shutdown: {} delivered, {} buffered, dropped {}, dead-lettered {}, rss {rss:.1} MiB (peak {peak:.1}), {:.1} s; emitter {:.0} events/s, backend {:.0} events/s overall",
        stats.delivered,
        stats.buffered_events,
        stats.dropped,
        stats.dead_lettered,
        started.elapsed().as_secs_f64(),
        n as f64 / emitted.as_secs_f64(),
        stats.delivered as f64 / started.elapsed().as_secs_f64(),
    );
    assert_eq!(stats.delivered, n, "{report}");
}

fn main() {
    // `cargo bench` passes `--bench`; anything else names a part.
    let chosen: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let wants = |name: &str| chosen.is_empty() || chosen.iter().any(|c| c == name);
    let rounds = env_usize("EVENTTRACKING_BENCH_ROUNDS", 3).max(1);
    let base = std::env::var_os("EVENTTRACKING_BENCH_DIR")
        .map_or_else(std::env::temp_dir, std::path::PathBuf::from);
    let dir = tempfile::tempdir_in(base).unwrap();
    if wants("throughput") {
        throughput(dir.path(), rounds);
    }
    if chosen.iter().any(|c| c == "interval") {
        interval_only(dir.path(), rounds);
    }
    if wants("replay") {
        replay(dir.path(), rounds);
    }
    if chosen.iter().any(|c| c == "rss") {
        rss(dir.path());
    } else if chosen.is_empty() {
        // In a process of its own: the other parts' memory does not count.
        let status = Command::new(std::env::current_exe().unwrap())
            .args(["--bench", "rss"])
            .status()
            .unwrap();
        assert!(status.success(), "the rss run failed");
    }
}

/// One line of the `rss` part: emitted, delivered, buffered, memory, time.
fn print_progress(tracker: &Tracker, emitted: u64, elapsed: Duration) {
    let (rss, peak) = rss_mib();
    let stats = tracker.report().backends["slow"];
    println!(
        "rss: {emitted:>11} emitted, {:>11} delivered, {:>9} buffered ({:6.0} MiB on disk), rss {rss:7.1} MiB (peak {peak:.1}), {:6.1} s",
        stats.delivered,
        stats.buffered_events,
        stats.buffered_bytes as f64 / (1 << 20) as f64,
        elapsed.as_secs_f64()
    );
}
