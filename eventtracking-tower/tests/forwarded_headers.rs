//! The client address: the connection's, unless a trusted proxy forwarded it.

mod common;

use common::{client, delivered, get, memory_tracker, only, probe_app, Server};
use eventtracking_tower::{ForwardedHeader, TrackingContextLayer, TrackingContextLayerBuilder};

/// Serves one `/probe` request (sent from 127.0.0.1) through a layer built
/// by `builder`, and returns the `client_ip` of its event.
async fn client_ip(
    builder: TrackingContextLayerBuilder,
    headers: &[(&str, &str)],
) -> Option<String> {
    let (tracker, memory) = memory_tracker();
    let layer = builder.build().expect("layer");
    let server = Server::start(probe_app(tracker.clone(), layer)).await;
    let reply = get(&client(), &server.url("/probe"), headers).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let events = delivered(&tracker, &memory).await;
    let event = only(&events, "probe");
    event
        .context()
        .get("client_ip")
        .map(|ip| ip.as_str().expect("a string").to_owned())
}

const FORGED: &[(&str, &str)] = &[
    ("x-forwarded-for", "203.0.113.7"),
    ("forwarded", "for=198.51.100.1"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_trusted_proxies_forwarding_headers_are_ignored() {
    let ip = client_ip(TrackingContextLayer::builder(), FORGED).await;
    assert_eq!(ip.as_deref(), Some("127.0.0.1"));
    let ip = client_ip(TrackingContextLayer::builder(), &[]).await;
    assert_eq!(ip.as_deref(), Some("127.0.0.1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_peer_cannot_set_the_client_address() {
    // Only 10.0.0.0/8 is trusted; the test's connection comes from 127.0.0.1.
    let builder = TrackingContextLayer::builder().with_trusted_proxies(["10.0.0.0/8"]);
    assert_eq!(
        client_ip(builder, FORGED).await.as_deref(),
        Some("127.0.0.1")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_proxy_forwards_the_client_address() {
    let trusted = || TrackingContextLayer::builder().with_trusted_proxies(["127.0.0.1"]);
    let ip = client_ip(trusted(), &[("x-forwarded-for", "203.0.113.7")]).await;
    assert_eq!(ip.as_deref(), Some("203.0.113.7"));

    // What the client itself put in front of the chain is not believed.
    let ip = client_ip(trusted(), &[("x-forwarded-for", "6.6.6.6, 203.0.113.7")]).await;
    assert_eq!(ip.as_deref(), Some("203.0.113.7"));

    // Only the configured header counts: the proxy passes `Forwarded` on unchanged.
    let ip = client_ip(trusted(), &[("forwarded", "for=198.51.100.1")]).await;
    assert_eq!(ip.as_deref(), Some("127.0.0.1"));

    // A chain of trusted proxies is walked past.
    let chain = TrackingContextLayer::builder().with_trusted_proxies(["127.0.0.1", "10.0.0.0/8"]);
    let ip = client_ip(chain, &[("x-forwarded-for", "203.0.113.7, 10.1.2.3")]).await;
    assert_eq!(ip.as_deref(), Some("203.0.113.7"));

    // An unknown hop where the client should be: the client is unknown.
    let ip = client_ip(trusted(), &[("x-forwarded-for", "unknown")]).await;
    assert_eq!(ip, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_forwarded_header_when_configured() {
    let forwarded = || {
        TrackingContextLayer::builder()
            .with_trusted_proxies(["127.0.0.1"])
            .with_forwarded_header(ForwardedHeader::Forwarded)
    };
    let ip = client_ip(
        forwarded(),
        &[("forwarded", r#"for="[2001:db8::7]:4711";proto=https"#)],
    )
    .await;
    assert_eq!(ip.as_deref(), Some("2001:db8::7"));
    let ip = client_ip(forwarded(), &[("x-forwarded-for", "203.0.113.7")]).await;
    assert_eq!(ip.as_deref(), Some("127.0.0.1"));
}
