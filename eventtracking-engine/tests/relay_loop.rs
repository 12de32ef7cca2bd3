//! The engine's relay loop over a source of its own (no broker): it
//! acknowledges each item by what the backends did, and the source commits
//! only the contiguous settled run.

mod common;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Action, Recorder};
use eventtracking::relay::{RelayLoop, RelayStopReason};
use eventtracking::{
    AckStatus, Event, EventFailure, ProcessorError, Source, SourceAck, SourceError, SourceItem,
    Tracker,
};
use serde_json::json;

/// A source of `n` events numbered by `i`, committing like a single
/// partition: up to the first item not settled.
struct Numbered {
    unread: VecDeque<u64>,
    /// Status of each item handed out, by number (`None`: not answered yet).
    statuses: Arc<Mutex<Vec<Option<AckStatus>>>>,
    committed: u64,
    created: std::time::Instant,
}

impl Numbered {
    fn new(n: u64) -> Self {
        Numbered {
            unread: (0..n).collect(),
            statuses: Arc::default(),
            committed: 0,
            created: std::time::Instant::now(),
        }
    }
}

impl Source for Numbered {
    fn next(&mut self, _timeout: Duration) -> Result<Option<SourceItem>, SourceError> {
        let Some(i) = self.unread.pop_front() else {
            std::thread::sleep(Duration::from_millis(5));
            return Ok(None);
        };
        self.statuses.lock().unwrap().push(None);
        let statuses = self.statuses.clone();
        let event = Event::new("numbered", json!({"i": i})).unwrap();
        Ok(Some(SourceItem::Event {
            event: Arc::new(event),
            ack: SourceAck::new(move |status| {
                statuses.lock().unwrap()[i as usize] = Some(status);
            }),
        }))
    }

    fn commit(&mut self) -> Result<u64, SourceError> {
        let statuses = self.statuses.lock().unwrap();
        let settled = statuses[self.committed as usize..]
            .iter()
            .take_while(|s| **s == Some(AckStatus::Settled))
            .count() as u64;
        self.committed += settled;
        Ok(settled)
    }

    fn uncommitted(&self) -> u64 {
        self.statuses.lock().unwrap().len() as u64 - self.committed
    }

    fn last_assignment(&self) -> Option<std::time::Instant> {
        Some(self.created)
    }
}

#[test]
fn a_dead_lettered_item_is_settled_and_committed_past() {
    let dir = tempfile::tempdir().unwrap();
    let backend =
        Recorder::scripted(
            |_, batch| match batch.iter().position(|e| e.data()["i"] == 3) {
                Some(index) => Action::Partial(vec![EventFailure::permanent(index, "refused")]),
                None => Action::Store,
            },
        );
    let tracker = Tracker::builder()
        .with_delivery(common::delivery(dir.path()))
        .with_backend("store", backend.clone())
        .build()
        .unwrap();
    let source = Numbered::new(10);
    let statuses = source.statuses.clone();
    let report = RelayLoop::new(source, tracker)
        .with_commit_interval(Duration::from_millis(10))
        .with_exit_when_idle(Duration::from_millis(500))
        .run();
    assert_eq!(report.stop, RelayStopReason::Idle, "{report:?}");
    assert!(report.error.is_none(), "{report:?}");
    assert_eq!(report.stats.committed, 10, "{report:?}");
    assert_eq!(report.stats.dead_lettered, 1, "{report:?}");
    assert_eq!(report.stats.uncommitted, 0, "{report:?}");
    assert!(statuses
        .lock()
        .unwrap()
        .iter()
        .all(|s| *s == Some(AckStatus::Settled)));
    assert_eq!(common::dead_letters(dir.path()).len(), 1);
}

#[test]
fn a_lost_item_stops_the_loop_and_holds_the_commit_before_it() {
    let dir = tempfile::tempdir().unwrap();
    // Event 6 is lost at the backend: its processor fails on it.
    let fails_on_six = eventtracking::processor_fn("fails-on-six", |event: Arc<Event>| {
        if event.data()["i"] == 6 {
            return Err(ProcessorError::new("fails-on-six", event.name(), "test"));
        }
        Ok(Some(event))
    });
    let tracker = Tracker::builder()
        .with_delivery(common::delivery(dir.path()))
        .with_route("store", Recorder::new(), vec![Arc::new(fails_on_six)], None)
        .build()
        .unwrap();
    let source = Numbered::new(10);
    let statuses = source.statuses.clone();
    let report = RelayLoop::new(source, tracker)
        .with_commit_interval(Duration::from_millis(10))
        .with_exit_when_idle(Duration::from_secs(5))
        .run();
    assert_eq!(report.stop, RelayStopReason::Failed, "{report:?}");
    assert_eq!(report.stats.lost, 1, "{report:?}");
    assert_eq!(report.stats.committed, 6, "{report:?}");
    let error = report.error.unwrap();
    assert!(error.contains("lost") && error.contains("store"), "{error}");
    assert_eq!(statuses.lock().unwrap()[6], Some(AckStatus::Lost));
}

#[test]
fn a_full_window_does_not_wait_out_the_backends_linger() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = Recorder::new();
    // Batches that never fill, and a linger longer than the test: only a
    // loop that asks for what it waits on gets past its window.
    let delivery = common::delivery(dir.path())
        .with_batch_size(1000)
        .with_linger(Duration::from_secs(3600));
    let tracker = Tracker::builder()
        .with_delivery(delivery)
        .with_backend("store", recorder.clone())
        .build()
        .unwrap();
    let source = Numbered::new(12);
    let relay = RelayLoop::new(source, tracker)
        .with_max_uncommitted(4)
        .with_commit_interval(Duration::from_millis(10))
        .with_exit_when_idle(Duration::from_millis(300));
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(Box::new(relay.run()));
    });
    let report = finished
        .recv_timeout(common::DEADLINE)
        .expect("the relay got past its full window");
    assert_eq!(report.stop, RelayStopReason::Idle, "{report:?}");
    assert_eq!(report.stats.committed, 12, "{report:?}");
    assert_eq!(recorder.events().len(), 12);
}
