//! The tower layer's client address (`eventtracking_tower::resolve_client_ip`)
//! from `Forwarded` / `X-Forwarded-For` headers and trusted networks.
//!
//! Input, one item per line: `peer ADDR`, `trust NET[,NET...]`, or a header
//! line `NAME: VALUE` (bytes as given). Never panics; with no trusted proxy,
//! or an untrusted peer, the client is the peer.
#![no_main]

use std::net::IpAddr;

use eventtracking_tower::http::{HeaderMap, HeaderName, HeaderValue};
use eventtracking_tower::{resolve_client_ip, ForwardedHeader, IpNetwork};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut peer: Option<IpAddr> = None;
    let mut trusted: Vec<IpNetwork> = Vec::new();
    let mut headers = HeaderMap::new();
    for line in data.split(|&b| b == b'\n') {
        if let Some(rest) = line.strip_prefix(b"peer ") {
            peer = std::str::from_utf8(rest)
                .ok()
                .and_then(|s| s.trim().parse().ok());
        } else if let Some(rest) = line.strip_prefix(b"trust ") {
            let Ok(text) = std::str::from_utf8(rest) else {
                continue;
            };
            for net in text.split(',') {
                match net.parse::<IpNetwork>() {
                    Ok(net) => {
                        // Display and parse agree.
                        assert_eq!(net.to_string().parse::<IpNetwork>(), Ok(net));
                        trusted.push(net);
                    }
                    Err(error) => assert!(!error.is_empty()),
                }
            }
        } else if let Some(colon) = line.iter().position(|&b| b == b':') {
            let (name, value) = (&line[..colon], &line[colon + 1..]);
            let value = value.strip_prefix(b" ").unwrap_or(value);
            if let (Ok(name), Ok(value)) =
                (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
            {
                headers.append(name, value);
            }
        }
    }
    for header in [ForwardedHeader::XForwardedFor, ForwardedHeader::Forwarded] {
        let client = resolve_client_ip(peer, &headers, &trusted, header);
        let peer_trusted = peer.is_some_and(|p| trusted.iter().any(|net| net.contains(p)));
        if !peer_trusted {
            assert_eq!(client, peer.map(|p| p.to_canonical()), "{header:?}");
        }
        // Addresses come out canonical (IPv4-mapped IPv6 as IPv4).
        if let Some(ip) = client {
            assert_eq!(ip, ip.to_canonical());
        }
    }
});
