//! `POST /v1/events` over real HTTP: the accepted shapes, each status code,
//! the server-side context, ids, gzip and beacons.

mod common;

use std::io::Write;

use common::{config, delivered, file_tracker, memory_tracker, read_events, Server, DEADLINE, KEY};
use eventtracking::uuid::Uuid;
use eventtracking_collector::IpNetwork;
use http::{Method, StatusCode};
use serde_json::{json, Value};

fn event(name: &str) -> Value {
    json!({"name": name, "data": {"url": "/home"}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_three_shapes_are_accepted() {
    let (tracker, memory) = memory_tracker();
    let server = Server::start(tracker.clone(), config()).await;

    let reply = server.post(&event("page.view")).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{reply:?}");
    assert_eq!(reply.body, json!({"accepted": 1, "rejected": []}));

    let reply = server.post(&json!([event("a.one"), event("a.two")])).await;
    assert_eq!(reply.body, json!({"accepted": 2, "rejected": []}));

    let reply = server
        .post(&json!({"events": [event("b.one"), event("b.two"), event("b.three")]}))
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    assert_eq!(reply.body["accepted"], 3);

    let names: Vec<String> = delivered(&tracker, &memory)
        .await
        .iter()
        .map(|e| e.name().to_owned())
        .collect();
    assert_eq!(
        names,
        ["page.view", "a.one", "a.two", "b.one", "b.two", "b.three"]
    );
    assert_eq!(memory.events()[0].data(), &json!({"url": "/home"}));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_is_400_naming_line_and_column() {
    let (tracker, memory) = memory_tracker();
    let server = Server::start(tracker.clone(), config()).await;
    let bearer = format!("Bearer {KEY}");
    let headers = [
        ("content-type", "application/json"),
        ("authorization", bearer.as_str()),
    ];
    let reply = server
        .send(
            Method::POST,
            "/v1/events",
            &headers,
            "{\"name\": \"a\",\n  \"data\": {\"x\": tru}\n}",
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        (reply.body["line"].as_u64(), reply.body["column"].as_u64()),
        (Some(2), Some(20))
    );
    let message = reply.body["error"].as_str().unwrap();
    assert!(message.contains("line 2, column 20"), "{message}");

    // Bytes that are not UTF-8, inside a string: 400, naming where.
    let mut invalid = b"{\"name\": \"a\",\n \"data\": {\"x\": \"ab".to_vec();
    invalid.extend_from_slice(&[0xff, 0xfe]);
    invalid.extend_from_slice(b"\"}}");
    let reply = server
        .send(Method::POST, "/v1/events", &headers, invalid)
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{reply:?}");
    assert_eq!(reply.body["line"].as_u64(), Some(2), "{reply:?}");
    let message = reply.body["error"].as_str().unwrap();
    assert!(message.contains("invalid unicode"), "{message}");

    // Valid JSON of the wrong shape.
    let reply = server
        .send(Method::POST, "/v1/events", &headers, "42")
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(reply.body["error"]
        .as_str()
        .unwrap()
        .contains("event object"));
    assert!(delivered(&tracker, &memory).await.is_empty());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_wrong_key_is_401_and_each_place_for_a_key_works() {
    let (tracker, memory) = memory_tracker();
    let server = Server::start(tracker.clone(), config()).await;
    let body = event("page.view").to_string();
    let json = ("content-type", "application/json");

    let reply = server
        .send(Method::POST, "/v1/events", &[json], body.clone())
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
    let reply = server
        .send(
            Method::POST,
            "/v1/events",
            &[json, ("authorization", "Bearer wrong")],
            body.clone(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    // A prefix of the key is not the key.
    let prefix = format!("Bearer {}", &KEY[..KEY.len() - 1]);
    let reply = server
        .send(
            Method::POST,
            "/v1/events",
            &[json, ("authorization", prefix.as_str())],
            body.clone(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert!(delivered(&tracker, &memory).await.is_empty());

    let bearer = format!("Bearer {KEY}");
    for (path, headers) in [
        (
            "/v1/events".to_owned(),
            vec![json, ("authorization", bearer.as_str())],
        ),
        (
            "/v1/events".to_owned(),
            vec![json, ("x-eventtracking-key", KEY)],
        ),
        (format!("/v1/events?key={KEY}"), vec![json]),
    ] {
        let reply = server
            .send(Method::POST, &path, &headers, body.clone())
            .await;
        assert_eq!(
            reply.status,
            StatusCode::ACCEPTED,
            "{path} {headers:?}: {reply:?}"
        );
    }
    assert_eq!(delivered(&tracker, &memory).await.len(), 3);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_large_is_413_and_other_media_types_are_415() {
    let (tracker, memory) = memory_tracker();
    let server = Server::start(
        tracker.clone(),
        config()
            .with_max_body_bytes(2_000)
            .with_max_events_per_request(3),
    )
    .await;
    let big = json!({"name": "big", "data": {"text": "x".repeat(3_000)}});
    let reply = server.post(&big).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE, "{reply:?}");
    assert!(reply.body["error"]
        .as_str()
        .unwrap()
        .contains("max_body_bytes"));

    let reply = server
        .post(&json!([event("a"), event("b"), event("c"), event("d")]))
        .await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(reply.body["error"]
        .as_str()
        .unwrap()
        .contains("max_events_per_request"));

    let bearer = format!("Bearer {KEY}");
    for headers in [
        vec![("content-type", "application/x-www-form-urlencoded")],
        vec![],
        vec![
            ("content-type", "application/json"),
            ("content-encoding", "br"),
        ],
        vec![("content-type", "text/plain; charset=latin1")],
    ] {
        let mut headers = headers;
        headers.push(("authorization", bearer.as_str()));
        let reply = server
            .send(Method::POST, "/v1/events", &headers, event("a").to_string())
            .await;
        assert_eq!(
            reply.status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{headers:?}"
        );
    }
    assert!(delivered(&tracker, &memory).await.is_empty());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_invalid_is_422_with_pointers_and_some_invalid_is_202() {
    let (tracker, memory) = memory_tracker();
    let server = Server::start(tracker.clone(), config()).await;
    let reply = server
        .post(&json!({"events": [
            {"name": "has space", "data": {}},
            {"data": {}},
            {"name": "x", "data": {}, "context": "not an object"},
            {"name": "x", "data": {}, "id": "not-a-uuid"},
            {"name": "x", "data": {}, "timestamp": "yesterday"},
            {"name": "x"},
            {"name": "x", "data": {}, "nmae": 1},
            "just a string",
        ]}))
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{reply:?}");
    let pointers: Vec<&str> = reply.body["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["pointer"].as_str().unwrap())
        .collect();
    assert_eq!(
        pointers,
        [
            "/events/0/name",
            "/events/1/name",
            "/events/2/context",
            "/events/3/id",
            "/events/4/timestamp",
            "/events/5/data",
            "/events/6/nmae",
            "/events/7",
        ]
    );
    assert!(reply.body["rejected"][0]["error"]
        .as_str()
        .unwrap()
        .contains("whitespace"));

    // An array body: pointers from the root; one good event makes it a 202.
    let reply = server
        .post(&json!([{"name": "bad name"}, event("good.one")]))
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    assert_eq!(reply.body["accepted"], 1);
    assert_eq!(reply.body["rejected"][0]["index"], 0);
    assert_eq!(reply.body["rejected"][0]["pointer"], "/0/name");

    // A single event: pointers from the root too.
    let reply = server.post(&json!({"name": "", "data": 1})).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reply.body["rejected"][0]["pointer"], "/name");

    // An unknown key is pointed at with its `~` and `/` escaped.
    let reply = server
        .post(&json!({"name": "a.b", "data": {}, "a/b~c": 1}))
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reply.body["rejected"][0]["pointer"], "/a~1b~0c");

    // A body with "events" holds nothing else: 400 naming the other key,
    // escaped in the body's text or not.
    for (body, named) in [
        (r#"{"events": [], "sent_at": 1}"#, r#""sent_at""#),
        (r#"{"s\u0065nt": 1, "events": []}"#, r#""sent""#),
    ] {
        let reply = post_text(&server, body).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{reply:?}");
        let message = reply.body["error"].as_str().unwrap();
        assert!(message.contains("holds nothing else"), "{message}");
        assert!(message.contains(named), "{message}");
    }

    let events = delivered(&tracker, &memory).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].name(), "good.one");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_on_depth_strings_and_keys_are_refused_with_their_pointer() {
    let (tracker, memory) = memory_tracker();
    let server = Server::start(
        tracker.clone(),
        config().with_max_string_bytes(10).with_max_object_keys(3),
    )
    .await;
    let mut deep = json!(1);
    for _ in 0..65 {
        deep = json!([deep]);
    }
    let reply = server
        .post(&json!([
            {"name": "x", "data": {"s": "01234567890"}},
            {"name": "x", "data": {"o": {"a": 1, "b": 2, "c": 3, "d": 4}}},
            {"name": "x", "data": deep},
            {"name": "x", "data": {}, "context": {"page": {"title": "a very long title"}}},
            {"name": "x", "data": {"ok": "short"}},
        ]))
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{reply:?}");
    assert_eq!(reply.body["accepted"], 1);
    let rejected = reply.body["rejected"].as_array().unwrap();
    assert_eq!(rejected[0]["pointer"], "/0/data/s");
    assert!(rejected[0]["error"]
        .as_str()
        .unwrap()
        .contains("max_string_bytes"));
    assert_eq!(rejected[1]["pointer"], "/1/data/o");
    assert!(rejected[1]["error"]
        .as_str()
        .unwrap()
        .contains("max_object_keys"));
    assert!(rejected[2]["pointer"]
        .as_str()
        .unwrap()
        .starts_with("/2/data/0/0"));
    assert!(rejected[2]["error"]
        .as_str()
        .unwrap()
        .contains("deeper than 64"));
    assert_eq!(rejected[3]["pointer"], "/3/context/page/title");
    assert_eq!(delivered(&tracker, &memory).await.len(), 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_side_context_cannot_be_overridden() {
    let (tracker, memory) = memory_tracker();
    let config = config()
        .with_source("mobile")
        .with_trusted_proxies(["127.0.0.1".parse::<IpNetwork>().unwrap()]);
    let server = Server::start(tracker.clone(), config).await;
    let forged = json!({
        "received_at": "1999-01-01T00:00:00Z",
        "client_ip": "6.6.6.6",
        "user_agent": "forged",
        "referer": "https://forged.example",
        "source": "server",
        "request_id": "forged",
        "client_timestamp": "forged",
        "page": "/checkout",
    });
    let reply = server
        .post_with(
            &[
                ("user-agent", "TestBrowser/1.0"),
                ("x-forwarded-for", "203.0.113.9"),
                ("x-request-id", "req-42"),
            ],
            &json!([
                {"name": "a", "data": {}, "context": forged, "timestamp": "2026-01-02T03:04:05.678Z"},
                {"name": "b", "data": {}, "context": forged},
            ]),
        )
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{reply:?}");
    let events = delivered(&tracker, &memory).await;
    assert_eq!(events.len(), 2);
    for event in &events {
        let context = event.context();
        assert_eq!(context["client_ip"], "203.0.113.9", "{context:?}");
        assert_eq!(context["user_agent"], "TestBrowser/1.0");
        assert_eq!(context["request_id"], "req-42");
        assert_eq!(context["source"], "mobile");
        assert_eq!(
            context["page"], "/checkout",
            "the client's own keys are kept"
        );
        assert!(
            context.get("referer").is_none(),
            "no Referer header: the client's is removed"
        );
        // The event's time is the receive time, and `received_at` says it.
        assert_eq!(context["received_at"], event.timestamp_rfc3339().as_str());
        assert_ne!(context["received_at"], "1999-01-01T00:00:00Z");
    }
    assert_eq!(
        events[0].context()["client_timestamp"],
        "2026-01-02T03:04:05.678Z"
    );
    assert!(events[1].context().get("client_timestamp").is_none());
    assert!(
        events[0].timestamp()
            > std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_767_000_000)
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_for_is_ignored_without_trusted_proxies() {
    let (tracker, memory) = memory_tracker();
    let server = Server::start(tracker.clone(), config()).await;
    let reply = server
        .post_with(
            &[
                ("x-forwarded-for", "203.0.113.9"),
                ("referer", "https://shop.example/cart"),
            ],
            &event("a"),
        )
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    let events = delivered(&tracker, &memory).await;
    assert_eq!(events[0].context()["client_ip"], "127.0.0.1");
    assert_eq!(events[0].context()["referer"], "https://shop.example/cart");
    assert_eq!(events[0].context()["source"], "browser");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_id_is_kept_and_otherwise_a_uuidv7_is_made() {
    let (tracker, memory) = memory_tracker();
    let server = Server::start(tracker.clone(), config()).await;
    let id = "0190f3a2-7b1c-7d4e-8f00-123456789abc";
    let reply = server
        .post(&json!([{"name": "a", "data": {}, "id": id}, {"name": "b", "data": {}}]))
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    // The same beacon again: the same id (a backend writing by id stores it once).
    server
        .post(&json!({"name": "a", "data": {}, "id": id}))
        .await;
    let events = delivered(&tracker, &memory).await;
    assert_eq!(events[0].id(), Uuid::parse_str(id).unwrap());
    assert_eq!(events[2].id(), events[0].id());
    assert_eq!(events[1].id().get_version_num(), 7);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_and_text_plain_beacons_are_read() {
    let (tracker, memory) = memory_tracker();
    let server = Server::start(tracker.clone(), config().with_max_body_bytes(4_096)).await;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder
        .write_all(
            json!([event("zipped.one"), event("zipped.two")])
                .to_string()
                .as_bytes(),
        )
        .unwrap();
    let gzipped = encoder.finish().unwrap();
    let bearer = format!("Bearer {KEY}");
    let reply = server
        .send(
            Method::POST,
            "/v1/events",
            &[
                ("content-type", "application/json"),
                ("content-encoding", "gzip"),
                ("authorization", bearer.as_str()),
            ],
            gzipped,
        )
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{reply:?}");
    assert_eq!(reply.body["accepted"], 2);

    // What sendBeacon sends: a string as text/plain, the key in the query.
    let reply = server
        .send(
            Method::POST,
            &format!("/v1/events?key={KEY}"),
            &[("content-type", "text/plain;charset=UTF-8")],
            json!({"events": [event("beacon.one")]}).to_string(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{reply:?}");

    // A gzip bomb: small on the wire, over the limit once decoded.
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let padded = json!({"name": "bomb", "data": {"pad": " ".repeat(100_000)}}).to_string();
    encoder.write_all(padded.as_bytes()).unwrap();
    let bomb = encoder.finish().unwrap();
    assert!(bomb.len() < 4_096);
    let reply = server
        .send(
            Method::POST,
            "/v1/events",
            &[
                ("content-type", "application/json"),
                ("content-encoding", "gzip"),
                ("authorization", bearer.as_str()),
            ],
            bomb,
        )
        .await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    // Not gzip at all.
    let reply = server
        .send(
            Method::POST,
            "/v1/events",
            &[
                ("content-type", "application/json"),
                ("content-encoding", "gzip"),
                ("authorization", bearer.as_str()),
            ],
            event("plain").to_string(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);

    let names: Vec<String> = delivered(&tracker, &memory)
        .await
        .iter()
        .map(|e| e.name().to_owned())
        .collect();
    assert_eq!(names, ["zipped.one", "zipped.two", "beacon.one"]);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_readiness() {
    let (tracker, _memory) = memory_tracker();
    let server = Server::start(tracker.clone(), config()).await;
    let reply = server.get("/healthz").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["status"], "ok");
    let reply = server.get("/readyz").await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.body["backends"]["memory"]["ready"], true);
    server.collector.start_draining();
    let reply = server.get("/readyz").await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.body["shutting_down"], true);
    let reply = server.post(&event("late")).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(reply.header("retry-after").is_some());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_never_arrives_is_408() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (tracker, _memory) = memory_tracker();
    let server = Server::start(
        tracker,
        config().with_body_timeout(std::time::Duration::from_millis(200)),
    )
    .await;
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"name\""
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut response = vec![0; 1024];
    let n = stream.read(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response[..n]);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("body_timeout_ms"), "{text}");
    drop(stream);
    server.stop().await;
}

/// POSTs `body` as it is written (no re-serializing) with the test key.
async fn post_text(server: &Server, body: &'static str) -> common::Reply {
    let bearer = format!("Bearer {KEY}");
    server
        .send(
            Method::POST,
            "/v1/events",
            &[
                ("content-type", "application/json"),
                ("authorization", bearer.as_str()),
            ],
            body,
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_is_kept_as_the_client_wrote_it_and_each_event_is_one_line() {
    let (tracker, memory) = memory_tracker();
    let server = Server::start(tracker.clone(), config()).await;
    let reply = post_text(
        &server,
        r#"[{"name": "a.kept", "data": {"z": 1e2, "a": [1.50, "\u00e9"]}},
            {"name": "a.pretty", "data": {
                "b": 2,
                "a": 1
            }}]"#,
    )
    .await;
    assert_eq!(
        reply.body,
        json!({"accepted": 2, "rejected": []}),
        "{reply:?}"
    );
    let events = delivered(&tracker, &memory).await;
    // Key order, number forms and escapes as sent: JSON backends write this text.
    assert_eq!(
        events[0].raw_data(),
        Some(r#"{"z": 1e2, "a": [1.50, "\u00e9"]}"#)
    );
    assert_eq!(events[0].data(), &json!({"z": 100.0, "a": [1.5, "é"]}));
    assert_eq!(events[1].data(), &json!({"b": 2, "a": 1}));
    for event in &events {
        let line = std::str::from_utf8(event.to_json_bytes()).unwrap();
        assert!(!line.contains('\n'), "one line: {line}");
        let parsed: Value = serde_json::from_str(line).unwrap();
        assert_eq!(&parsed["data"], event.data());
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_number_too_large_for_json_is_refused_with_its_pointer() {
    let (tracker, memory) = memory_tracker();
    let server = Server::start(tracker.clone(), config()).await;
    let reply = post_text(
        &server,
        r#"[{"name": "a.b", "data": {"n": [1, 1e400]}}, {"name": "a.b", "data": {}, "context": {"x": -1e999}}]"#,
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{reply:?}");
    let rejected = reply.body["rejected"].as_array().unwrap();
    assert_eq!(rejected[0]["pointer"], "/0/data/n/1");
    assert!(
        rejected[0]["error"]
            .as_str()
            .unwrap()
            .contains("out of range"),
        "{reply:?}"
    );
    assert_eq!(rejected[1]["pointer"], "/1/context/x");
    assert!(delivered(&tracker, &memory).await.is_empty());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_event_of_a_batch_gets_its_own_context() {
    let (tracker, memory) = memory_tracker();
    let server = Server::start(tracker.clone(), config().with_max_string_bytes(20)).await;
    let page_a = json!({"page": "a", "user_id": 1});
    let page_b = json!({"page": "b"});
    let reply = server
        .post(&json!([
            {"name": "x.one", "data": {}, "context": page_a},
            {"name": "x.two", "data": {}, "context": page_a},
            {"name": "x.three", "data": {}, "context": page_b},
            {"name": "x.four", "data": {}, "context": page_a, "timestamp": "2026-01-02T03:04:05Z"},
            {"name": "x.five", "data": {}, "context": page_a, "timestamp": "2026-01-02T03:04:06Z"},
            {"name": "x.six", "data": {}},
            {"name": "x.seven", "data": {}, "context": {"page": {"title": "far too long for the limit"}}},
            {"name": "x.eight", "data": {}, "context": page_a},
        ]))
        .await;
    assert_eq!(reply.body["accepted"], 7, "{reply:?}");
    assert_eq!(reply.body["rejected"][0]["index"], 6);
    let events = delivered(&tracker, &memory).await;
    let field = |i: usize, key: &str| events[i].context().get(key).cloned();
    for (i, page, user, timestamp) in [
        (0, Some("a"), Some(1), None),
        (1, Some("a"), Some(1), None),
        (2, Some("b"), None, None),
        (3, Some("a"), Some(1), Some("2026-01-02T03:04:05Z")),
        (4, Some("a"), Some(1), Some("2026-01-02T03:04:06Z")),
        (5, None, None, None),
        (6, Some("a"), Some(1), None),
    ] {
        assert_eq!(field(i, "page"), page.map(Value::from), "event {i}");
        assert_eq!(field(i, "user_id"), user.map(Value::from), "event {i}");
        assert_eq!(
            field(i, "client_timestamp"),
            timestamp.map(Value::from),
            "event {i}"
        );
        assert_eq!(field(i, "source"), Some(json!("browser")), "event {i}");
    }
    server.stop().await;
}

/// Contexts are rewritten in place once their events are delivered (the
/// file backend drops them after writing): each request's events must
/// still carry that request's values and keys only, whether the next
/// request sends the same keys, another order, another key, a longer
/// value, a timestamp, or no context at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contexts_reused_after_delivery_never_mix_requests() {
    let dir = tempfile::tempdir().unwrap();
    let (tracker, path) = file_tracker(dir.path());
    let server = Server::start(tracker.clone(), config()).await;
    // First the same keys again and again (the usual case: rewritten in
    // place), then shapes that change from one request to the next.
    let context = |i: usize| match i % 5 {
        _ if i < 30 && i % 3 == 2 => {
            json!({"page": format!("p{i}"), "session_id": format!("a longer session id {i}")})
        }
        _ if i < 30 => json!({"page": format!("p{i}"), "session_id": format!("s{i}")}),
        0 | 1 => json!({"page": format!("p{i}"), "session_id": format!("s{i}")}),
        2 => json!({"session_id": format!("s{i}"), "page": format!("p{i}")}),
        3 => json!({"page": format!("p{i}"), "session_id": format!("s{i}"), "ab": i}),
        _ => {
            json!({"page": format!("p{i}"), "session_id": format!("a much longer session id {i}")})
        }
    };
    // A run of requests with a timestamp too, then now and then.
    let timestamp = |i: usize| {
        ((20..30).contains(&i) || (i >= 30 && i % 7 == 0))
            .then(|| format!("2026-01-02T03:04:{:02}Z", i % 60))
    };
    for i in 0..60 {
        let mut event = json!({"name": "page.view", "data": {"i": i}, "context": context(i)});
        if let Some(timestamp) = timestamp(i) {
            event["timestamp"] = json!(timestamp);
        }
        let body = if i >= 30 && i % 11 == 0 {
            // Two events: the first copies the request's fields, the last moves them.
            json!([event, {"name": "page.view", "data": {"i": i + 1000}}])
        } else {
            event
        };
        let reply = server.post(&body).await;
        assert_eq!(reply.status, StatusCode::ACCEPTED, "{reply:?}");
        // Delivered (and dropped) before the next request, so its map is free.
        assert!(tracker.flush_async(DEADLINE).await.complete);
    }
    let events = read_events(&tracker, &path).await;
    assert_eq!(events.len(), 60 + 3);
    let server_keys = ["client_ip", "received_at", "request_id", "source"];
    let mut request_ids = std::collections::HashSet::new();
    for event in &events {
        let i = event["data"]["i"].as_u64().unwrap() as usize;
        let got = event["context"].as_object().unwrap();
        let mut keys: Vec<String> = got.keys().cloned().collect();
        keys.sort_unstable();
        let mut expected: Vec<String> = server_keys.map(String::from).to_vec();
        if i < 1000 {
            let sent = context(i);
            for (key, value) in sent.as_object().unwrap() {
                assert_eq!(&got[key], value, "{event}");
                expected.push(key.clone());
            }
            if let Some(timestamp) = timestamp(i) {
                assert_eq!(got["client_timestamp"], json!(timestamp), "{event}");
                expected.push("client_timestamp".into());
            }
            assert!(request_ids.insert(got["request_id"].as_str().unwrap().to_owned()));
        }
        expected.sort_unstable();
        assert_eq!(keys, expected, "{event}");
        assert_eq!(got["source"], "browser");
    }
    server.stop().await;
}
