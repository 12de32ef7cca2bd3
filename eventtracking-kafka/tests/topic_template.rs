//! A topic template routes each event name to its own topic.

mod common;

use common::*;
use eventtracking::Tracker;
use serde_json::json;

#[test]
fn names_are_routed_to_templated_topics_with_safe_characters() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = unique("tpl");
    let tracker = Tracker::builder()
        .with_delivery(delivery(dir.path()))
        .with_backend(
            "stream",
            kafka_backend(json!({"topic": format!("{prefix}.{{name}}")})),
        )
        .build()
        .unwrap();
    for i in 0..3 {
        tracker.emit("page.view", json!({"i": i})).unwrap();
    }
    tracker.emit("user/signup:ok", json!({"i": 10})).unwrap();
    tracker.emit("Ünïcode-name", json!({"i": 20})).unwrap();
    let report = tracker.shutdown(WAIT).unwrap();
    assert_eq!(report.backends["stream"].delivered, 5, "{report:?}");

    let page = format!("{prefix}.page.view");
    let signup = format!("{prefix}.user_signup_ok");
    let unicode = format!("{prefix}._n_code-name");
    let received = consume(&consumer(&[&page, &signup, &unicode]), 5);
    assert_eq!(received.len(), 5);
    for message in &received {
        let name = message.json()["name"].as_str().unwrap().to_owned();
        let expected = match name.as_str() {
            "page.view" => &page,
            "user/signup:ok" => &signup,
            "Ünïcode-name" => &unicode,
            other => panic!("unexpected {other}"),
        };
        assert_eq!(&message.topic, expected, "{name}");
        assert_eq!(message.headers["event-name"], name);
    }
    assert_eq!(received.iter().filter(|m| m.topic == page).count(), 3);
}
