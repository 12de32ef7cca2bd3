//! In a real browser (headless Chromium, `scripts/services install-browser`):
//! the demo page and `eventtracking.js` deliver every event once with both
//! contexts, events emitted while the collector is down are retried from
//! localStorage, and the catalog page filters as you type. Without Chromium
//! these tests fail, saying how to install it, unless
//! `EVENTTRACKING_TEST_SKIP_BROWSER=1` is set.

mod common;
#[path = "browser/webdriver.rs"]
mod webdriver;

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{config, file_tracker, memory_tracker, read_events, Server, DEADLINE, KEY};
use eventtracking::{TrackedEvent, Tracker};
use eventtracking_collector::RateLimit;
use serde_json::{json, Value};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use webdriver::Browser;

/// One browser at a time: two cores run these.
static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Waits until every id in `ids` is in the file (beacons land after the page
/// is gone), then returns the file's events by id, each id's copies.
async fn wait_for(tracker: &Tracker, path: &Path, ids: &[String]) -> HashMap<String, Vec<Value>> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let mut by_id: HashMap<String, Vec<Value>> = HashMap::new();
        for event in read_events(tracker, path).await {
            let id = event["id"].as_str().expect("an id").to_owned();
            by_id.entry(id).or_default().push(event);
        }
        let missing: Vec<&String> = ids.iter().filter(|id| !by_id.contains_key(*id)).collect();
        if missing.is_empty() {
            return by_id;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} events never arrived: {missing:?}",
            missing.len(),
            ids.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {value}"))
        .iter()
        .map(|v| v.as_str().expect("a string").to_owned())
        .collect()
}

/// Asserts the server-side context the collector adds.
fn assert_server_context(event: &Value, origin: &str) {
    let context = &event["context"];
    assert_eq!(context["source"], "browser", "{event}");
    assert_eq!(context["client_ip"], "127.0.0.1", "{event}");
    let agent = context["user_agent"].as_str().unwrap_or_default();
    assert!(agent.contains("Chrome"), "user agent {agent:?}: {event}");
    assert!(context["received_at"].is_string(), "{event}");
    assert!(context["client_timestamp"].is_string(), "{event}");
    // The demo page sends only its origin as Referer: never its key.
    assert_eq!(context["referer"], format!("{origin}/"), "{event}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_page_delivers_every_event_once_with_both_contexts() {
    let _one = ONE_BROWSER.lock().await;
    let Some(browser) = Browser::start() else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let (tracker, path) = file_tracker(dir.path());
    let server = Server::start(tracker.clone(), config().with_demo(true)).await;
    let origin = format!("http://{}", server.addr);

    browser.goto(&format!("{origin}/demo?key={KEY}"));
    let button = browser.find("#emit");
    for _ in 0..3 {
        browser.click(&button);
    }
    // Nested contexts; the page's `source` is overridden by the server's.
    // 25 events: a full batch goes at once, the rest wait for the linger,
    // which the page leaves before: they go by beacon.
    let scripted = strings(&browser.execute(
        r#"
        var ids = [];
        var outer = {level: "outer", outer_only: 1, source: "spoofed"};
        eventtracking.enterContext("test.outer", outer);
        outer.level = "changed later"; // the context is a copy
        ids.push(eventtracking.emit("test.outer", {n: 1}));
        eventtracking.enterContext("test.inner", {level: "inner", inner_only: true});
        ids.push(eventtracking.emit("test.inner", {n: 2}));
        eventtracking.exitContext("test.inner");
        ids.push(eventtracking.emit("test.after", {n: 3}));
        eventtracking.exitContext("test.outer");
        for (var i = 0; i < 22; i++) ids.push(eventtracking.emit("test.bulk", {i: i}));
        return ids;
        "#,
        json!([]),
    ));
    let log = browser.execute(
        "return document.getElementById('log').textContent;",
        json!([]),
    );
    let clicks: Vec<String> = log
        .as_str()
        .expect("the log")
        .lines()
        .filter_map(|line| line.strip_prefix("emitted demo.clicked "))
        .map(str::to_owned)
        .collect();
    assert_eq!(clicks.len(), 3, "{log}");
    // Closing the page: pagehide beacons what is still queued.
    browser.goto("about:blank");

    let ids: Vec<String> = clicks.iter().chain(&scripted).cloned().collect();
    let by_id = wait_for(&tracker, &path, &ids).await;
    for (id, copies) in &by_id {
        assert_eq!(
            copies.len(),
            1,
            "event {id} arrived {} times: {copies:?}",
            copies.len()
        );
        assert!(ids.contains(id), "an event nobody emitted: {copies:?}");
    }
    assert_eq!(by_id.len(), 28);
    let event = |id: &String| &by_id[id][0];

    for (n, id) in clicks.iter().enumerate() {
        let click = event(id);
        assert_eq!(click["name"], "demo.clicked");
        assert_eq!(click["data"]["count"], n + 1);
        assert_eq!(click["context"]["button"], "emit", "{click}");
        assert_eq!(click["context"]["clicks"], n + 1, "{click}");
    }
    for id in &ids {
        let e = event(id);
        assert_eq!(e["context"]["page"], "/demo", "{e}");
        assert_eq!(e["context"]["title"], "eventtracking demo", "{e}");
        assert_server_context(e, &origin);
    }
    let (outer, inner, after) = (
        event(&scripted[0]),
        event(&scripted[1]),
        event(&scripted[2]),
    );
    assert_eq!(outer["context"]["level"], "outer");
    assert_eq!(
        inner["context"]["level"], "inner",
        "the inner context wins: {inner}"
    );
    assert_eq!(inner["context"]["outer_only"], 1, "contexts merge: {inner}");
    assert_eq!(inner["context"]["inner_only"], true);
    assert_eq!(after["context"]["level"], "outer", "{after}");
    assert!(
        after["context"].get("inner_only").is_none(),
        "exited: {after}"
    );
    let bulk = event(&scripted[3]);
    assert!(bulk["context"].get("level").is_none(), "exited: {bulk}");
    assert!(bulk["context"].get("button").is_none(), "{bulk}");

    drop(browser);
    server.stop().await;
}

/// A collector that is down: it takes connections and closes them without
/// an answer, noting each request line, until told to stop; then it hands
/// its socket back, so the real collector comes up on the same port.
async fn down_collector(
    listener: TcpListener,
    stop: tokio::sync::oneshot::Receiver<()>,
    seen: Arc<Mutex<Vec<String>>>,
) -> TcpListener {
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return listener,
            accepted = listener.accept() => {
                let Ok((mut socket, _)) = accepted else { continue };
                let mut head = vec![0; 4096];
                let n = socket.read(&mut head).await.unwrap_or(0);
                let text = String::from_utf8_lossy(&head[..n]);
                if let Some(line) = text.lines().next() {
                    seen.lock().unwrap().push(line.to_owned());
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_emitted_while_the_collector_is_down_are_retried_from_local_storage() {
    let _one = ONE_BROWSER.lock().await;
    let Some(browser) = Browser::start() else {
        return;
    };
    // The page comes from one collector; its events go to another, on
    // another origin (so through CORS), down for now.
    let (page_tracker, _memory) = memory_tracker();
    let pages = Server::start(page_tracker.clone(), config().with_demo(true)).await;
    let origin = format!("http://{}", pages.addr);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let endpoint = format!("http://{}", listener.local_addr().expect("address"));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let down = tokio::spawn(down_collector(listener, stopped, seen.clone()));

    let demo = format!("{origin}/demo?key={KEY}&endpoint={endpoint}");
    browser.goto(&demo);
    let ids = strings(&browser.execute(
        r#"
        eventtracking.enterContext("test.offline", {offline: true});
        var ids = [];
        for (var i = 0; i < 5; i++) ids.push(eventtracking.emit("test.offline", {i: i}));
        eventtracking.exitContext("test.offline");
        return ids;
        "#,
        json!([]),
    ));
    let flushed = browser.execute_async(
        "eventtracking.flush().then(arguments[arguments.length - 1]);",
        json!([]),
    );
    assert_eq!(
        flushed,
        json!({"delivered": 0, "dropped": 0, "pending": 5}),
        "the collector is down"
    );
    let store_key = format!("eventtracking:{endpoint}");
    let stored = browser.execute(
        "return JSON.parse(localStorage.getItem(arguments[0])).map(function (e) { return e.id; });",
        json!([store_key]),
    );
    assert_eq!(strings(&stored), ids, "queued in localStorage");

    // Leaving beacons the queue, to the collector that is still down; wait
    // until it got there, so it cannot reach the collector once it is up.
    browser.goto("about:blank");
    let deadline = Instant::now() + DEADLINE;
    while !seen
        .lock()
        .unwrap()
        .iter()
        .any(|line| line.starts_with("POST /v1/events?key="))
    {
        assert!(
            Instant::now() < deadline,
            "no beacon reached the down collector: {:?}",
            seen.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The collector comes up on the same port; the page is opened again.
    stop.send(()).expect("the down collector runs");
    let listener = down.await.expect("the down collector");
    let dir = tempfile::tempdir().expect("temp dir");
    let (tracker, path) = file_tracker(dir.path());
    let server = Server::start_on(
        listener,
        tracker.clone(),
        config().with_allowed_origins([origin.clone()]),
    )
    .await;
    browser.goto(&demo);
    let flushed = browser.execute_async(
        "eventtracking.flush().then(arguments[arguments.length - 1]);",
        json!([]),
    );
    // The page sends its stored events as it loads: they may be answered
    // before flush() is called (then it has nothing to wait for).
    assert_eq!(flushed["pending"], 0, "{flushed}");
    assert_eq!(flushed["dropped"], 0, "{flushed}");
    let stored = browser.execute(
        "return JSON.parse(localStorage.getItem(arguments[0]));",
        json!([store_key]),
    );
    assert_eq!(stored, json!([]), "delivered events leave localStorage");
    browser.goto("about:blank");

    let by_id = wait_for(&tracker, &path, &ids).await;
    assert_eq!(by_id.len(), 5, "{by_id:?}");
    for (i, id) in ids.iter().enumerate() {
        let copies = &by_id[id];
        assert_eq!(copies.len(), 1, "event {id} arrived {} times", copies.len());
        let event = &copies[0];
        assert_eq!(event["name"], "test.offline");
        assert_eq!(event["data"]["i"], i);
        assert_eq!(event["context"]["offline"], true, "{event}");
        assert_eq!(event["context"]["page"], "/demo", "{event}");
        assert_server_context(event, &origin);
    }

    drop(browser);
    server.stop().await;
    pages.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_is_retried_after_its_retry_after_and_a_401_is_dropped() {
    let _one = ONE_BROWSER.lock().await;
    let Some(browser) = Browser::start() else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let (tracker, path) = file_tracker(dir.path());
    // A bucket of 20 events refilled at 2 a second: the second batch waits
    // (5 s; only a stall that long before it is sent would let it through).
    let limit = RateLimit::new(2.0, NonZeroU32::new(20).expect("20")).expect("a limit");
    let settings = config()
        .with_demo(true)
        .with_rate_limit_per_key(Some(limit));
    let server = Server::start(tracker.clone(), settings).await;
    let origin = format!("http://{}", server.addr);

    browser.goto(&format!("{origin}/demo?key={KEY}"));
    let ids = strings(&browser.execute(
        "var ids = []; for (var i = 0; i < 30; i++) ids.push(eventtracking.emit('test.limited', {i: i})); return ids;",
        json!([]),
    ));
    let flush = "eventtracking.flush().then(arguments[arguments.length - 1]);";
    // Each flush() settles once what it found queued was answered; a 429
    // leaves events pending, and the next flush() waits out Retry-After.
    let mut results = Vec::new();
    loop {
        let result = browser.execute_async(flush, json!([]));
        results.push(result.clone());
        if result["pending"] == 0 {
            break;
        }
        assert!(results.len() < 5, "never delivered: {results:?}");
    }
    assert!(results.iter().all(|r| r["dropped"] == 0), "{results:?}");
    let metrics = server.get("/metrics").await;
    let metrics = metrics.body.as_str().expect("text");
    assert!(
        metrics.contains("route=\"/v1/events\",status=\"429\"} 1\n"),
        "one batch was answered 429, and retried only after its Retry-After: {metrics}"
    );
    let by_id = wait_for(&tracker, &path, &ids).await;
    assert_eq!(by_id.len(), 30);
    assert!(by_id.values().all(|copies| copies.len() == 1), "{by_id:?}");

    // A key the collector does not know: 401, dropped (not retried, not kept).
    browser.goto(&format!("{origin}/demo?key=wk_unknown_0000"));
    browser.execute("eventtracking.emit('test.unauthorized', {});", json!([]));
    let dropped = browser.execute_async(flush, json!([]));
    assert_eq!(dropped, json!({"delivered": 0, "dropped": 1, "pending": 0}));
    let stored = browser.execute(
        "return localStorage.getItem(arguments[0]);",
        json!([format!("eventtracking:{origin}")]),
    );
    assert_eq!(stored, "[]", "nothing left to retry");

    drop(browser);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_too_large_is_sent_in_halves_and_an_event_too_large_is_dropped() {
    let _one = ONE_BROWSER.lock().await;
    let Some(browser) = Browser::start() else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let (tracker, path) = file_tracker(dir.path());
    // 20 events of ~400 bytes do not fit in 4000 bytes; 5 do. One of 6000
    // bytes never fits.
    let settings = config().with_demo(true).with_max_body_bytes(4000);
    let server = Server::start(tracker.clone(), settings).await;
    browser.goto(&format!("http://{}/demo?key={KEY}", server.addr));
    let ids = strings(&browser.execute(
        r#"
        var ids = [], pad = new Array(301).join("x");
        for (var i = 0; i < 19; i++) ids.push(eventtracking.emit("test.padded", {i: i, pad: pad}));
        eventtracking.emit("test.huge", {pad: new Array(6001).join("y")});
        return ids;
        "#,
        json!([]),
    ));
    let flush = "eventtracking.flush().then(arguments[arguments.length - 1]);";
    let mut results = Vec::new();
    loop {
        let result = browser.execute_async(flush, json!([]));
        results.push(result.clone());
        if result["pending"] == 0 {
            break;
        }
        assert!(results.len() < 10, "never settled: {results:?}");
    }
    // The huge event was dropped (maybe before the first flush()): nothing
    // is left to retry, and it never arrived.
    let stored = browser.execute(
        "return localStorage.getItem(arguments[0]);",
        json!([format!("eventtracking:http://{}", server.addr)]),
    );
    assert_eq!(stored, "[]", "nothing left to retry: {results:?}");
    let by_id = wait_for(&tracker, &path, &ids).await;
    assert_eq!(by_id.len(), 19, "only the 19 that fit: {:?}", by_id.keys());
    assert!(by_id.values().all(|copies| copies.len() == 1));
    assert!(by_id
        .values()
        .all(|copies| copies[0]["name"] == "test.padded"));

    drop(browser);
    server.stop().await;
}

/// A new account was made (for the catalog page).
#[derive(TrackedEvent)]
#[tracked_event(crate = "eventtracking", name = "test.catalog.signup", version = 1)]
#[allow(dead_code)]
struct Signup {
    /// The address the account was made with.
    email: String,
    /// The plan chosen.
    plan: Option<String>,
}

/// An order was paid, on the way back from Zanzibar.
#[derive(TrackedEvent)]
#[tracked_event(crate = "eventtracking", name = "test.catalog.checkout", version = 3)]
#[allow(dead_code)]
struct Checkout {
    /// The cart paid for.
    cart_id: String,
    /// The total, in cents.
    total: u64,
}

/// A search was run.
#[derive(TrackedEvent)]
#[tracked_event(crate = "eventtracking", name = "test.catalog.search", version = 1)]
#[allow(dead_code)]
struct Search {
    /// What was typed.
    query: String,
    /// A voucher code typed into the search box.
    voucher_code: Option<String>,
}

/// The event types the page shows (`NAME@VERSION`), in page order.
fn shown(browser: &Browser) -> Vec<String> {
    strings(&browser.execute(
        r#"
        return Array.prototype.slice.call(document.querySelectorAll(".event-type"))
            .filter(function (s) { return s.offsetParent !== null; })
            .map(function (s) { return s.id; });
        "#,
        json!([]),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalog_page_shows_every_type_and_filters_as_you_type() {
    let _one = ONE_BROWSER.lock().await;
    let Some(browser) = Browser::start() else {
        return;
    };
    let (tracker, _memory) = memory_tracker();
    let server = Server::start(tracker.clone(), config()).await;
    let every: Vec<String> = eventtracking::catalog()
        .expect("the catalog")
        .iter()
        .map(|entry| entry.key.clone())
        .collect();
    for key in [
        "test.catalog.signup@1",
        "test.catalog.checkout@3",
        "test.catalog.search@1",
    ] {
        assert!(every.contains(&key.to_owned()), "{key} not in {every:?}");
    }

    browser.goto(&format!("http://{}/catalog", server.addr));
    assert_eq!(shown(&browser), every, "every type, in catalog order");
    let table = browser.execute(
        "return document.getElementById(arguments[0]).innerText;",
        json!(["test.catalog.checkout@3"]),
    );
    let table = table.as_str().expect("text");
    for text in [
        "version 3",
        "on the way back from Zanzibar",
        "cart_id",
        "total",
        "integer",
        "The total, in cents.",
    ] {
        assert!(table.contains(text), "{text:?} not in {table:?}");
    }

    let search = browser.find("#search");
    browser.type_into(&search, "zanzibar");
    assert_eq!(
        shown(&browser),
        ["test.catalog.checkout@3"],
        "by description"
    );
    browser.execute("document.getElementById('search').value = '';", json!([]));
    browser.type_into(&search, "VOUCHER");
    assert_eq!(
        shown(&browser),
        ["test.catalog.search@1"],
        "by field, any case"
    );
    browser.execute("document.getElementById('search').value = '';", json!([]));
    browser.type_into(&search, "test.catalog");
    assert_eq!(
        shown(&browser),
        [
            "test.catalog.checkout@3",
            "test.catalog.search@1",
            "test.catalog.signup@1"
        ]
    );
    browser.type_into(&search, " query");
    assert_eq!(
        shown(&browser),
        ["test.catalog.search@1"],
        "every word must match"
    );
    browser.type_into(&search, "qqq-nothing");
    assert!(shown(&browser).is_empty());
    let none = browser.execute(
        "return document.getElementById('none').offsetParent !== null;",
        json!([]),
    );
    assert_eq!(none, true, "says nothing matches");
    browser.execute("var s = document.getElementById('search'); s.value = ''; s.dispatchEvent(new Event('input'));", json!([]));
    assert_eq!(shown(&browser), every, "cleared: every type again");

    drop(browser);
    server.stop().await;
}
