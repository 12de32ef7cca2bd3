//! The client address: from the connection, or from a forwarding header
//! written by a trusted proxy.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use http::header::{HeaderMap, FORWARDED};
use http::{Extensions, HeaderName};

/// `X-Forwarded-For` (not in `http::header`).
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// An IP network (`10.0.0.0/8`, `2001:db8::/32`) or a single address
/// (`127.0.0.1`, `::1`): a set of proxies whose forwarding headers are trusted.
///
/// ```
/// use eventtracking_tower::IpNetwork;
///
/// let net: IpNetwork = "10.0.0.0/8".parse().unwrap();
/// assert!(net.contains("10.1.2.3".parse().unwrap()));
/// assert!(!net.contains("11.0.0.1".parse().unwrap()));
/// assert!("10.0.0.0/33".parse::<IpNetwork>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpNetwork {
    addr: IpAddr,
    prefix: u8,
}

impl IpNetwork {
    /// The network of `addr` with a prefix of `prefix` bits; `None` if the
    /// prefix is longer than the address (32 bits for IPv4, 128 for IPv6).
    pub fn new(addr: IpAddr, prefix: u8) -> Option<Self> {
        let addr = addr.to_canonical();
        let max = if addr.is_ipv4() { 32 } else { 128 };
        (prefix <= max).then_some(Self { addr, prefix })
    }

    /// Whether `ip` is inside this network. IPv4-mapped IPv6 addresses
    /// (`::ffff:10.0.0.1`) count as their IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => prefix_eq(
                u128::from(net.to_bits()),
                u128::from(ip.to_bits()),
                32,
                self.prefix,
            ),
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_eq(net.to_bits(), ip.to_bits(), 128, self.prefix)
            }
            _ => false,
        }
    }
}

fn prefix_eq(a: u128, b: u128, bits: u8, prefix: u8) -> bool {
    if prefix == 0 {
        return true;
    }
    let shift = u32::from(bits - prefix);
    (a >> shift) == (b >> shift)
}

impl From<IpAddr> for IpNetwork {
    fn from(addr: IpAddr) -> Self {
        let addr = addr.to_canonical();
        let prefix = if addr.is_ipv4() { 32 } else { 128 };
        Self { addr, prefix }
    }
}

impl FromStr for IpNetwork {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("`{addr}` is not an IP address"))?;
        match prefix {
            None => Ok(Self::from(addr)),
            Some(prefix) => {
                let bits: u8 = prefix
                    .parse()
                    .map_err(|_| format!("`{prefix}` is not a prefix length"))?;
                Self::new(addr, bits)
                    .ok_or_else(|| format!("prefix /{bits} is longer than the address `{addr}`"))
            }
        }
    }
}

impl fmt::Display for IpNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Which header a trusted proxy writes the client chain to.
///
/// Only the header your proxy *writes* may be trusted: a proxy passes the
/// other one on unchanged, so a client could forge it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2` (nginx, HAProxy, most load
    /// balancers). The default.
    #[default]
    XForwardedFor,
    /// `Forwarded: for=client, for=proxy1` (RFC 7239).
    Forwarded,
}

/// How the client address is found.
#[derive(Debug, Clone, Default)]
pub(crate) struct ClientAddrPolicy {
    pub(crate) trusted: Vec<IpNetwork>,
    pub(crate) header: ForwardedHeader,
}

impl ClientAddrPolicy {
    /// The client address of a request, if it can be known: see
    /// [`resolve_client_ip`].
    pub(crate) fn client_ip(&self, headers: &HeaderMap, extensions: &Extensions) -> Option<IpAddr> {
        resolve_client_ip(peer_ip(extensions), headers, &self.trusted, self.header)
    }
}

/// The client address of a request, as the layer records it (`client_ip`),
/// from the connection's peer address, the request headers, the trusted
/// proxies and the header they write. Public for fuzzing and for
/// applications that want the same answer outside the layer.
///
/// Without trusted proxies: the peer. When the peer is a trusted proxy: the
/// forwarding chain is walked from the right (the hop nearest to us),
/// skipping trusted proxies; the first address that is not trusted is the
/// client (the leftmost if all are trusted). An entry that is not an IP
/// address (`unknown`, an obfuscated name) makes the client unknown. No
/// chain at all: the peer. Addresses are canonical (`::ffff:10.0.0.1` is
/// `10.0.0.1`).
///
/// ```
/// use eventtracking_tower::http::{HeaderMap, HeaderValue};
/// use eventtracking_tower::{resolve_client_ip, ForwardedHeader, IpNetwork};
///
/// let trusted: Vec<IpNetwork> = vec!["10.0.0.0/8".parse().unwrap()];
/// let mut headers = HeaderMap::new();
/// headers.insert("x-forwarded-for", HeaderValue::from_static("6.6.6.6, 203.0.113.5, 10.0.0.2"));
/// let peer = Some("10.0.0.1".parse().unwrap());
/// let client = resolve_client_ip(peer, &headers, &trusted, ForwardedHeader::XForwardedFor);
/// assert_eq!(client, Some("203.0.113.5".parse().unwrap()));
/// ```
pub fn resolve_client_ip(
    peer: Option<IpAddr>,
    headers: &HeaderMap,
    trusted: &[IpNetwork],
    header: ForwardedHeader,
) -> Option<IpAddr> {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|net| net.contains(ip));
    let peer = peer.map(|ip| ip.to_canonical());
    if trusted.is_empty() {
        return peer;
    }
    let peer = peer?;
    if !is_trusted(peer) {
        return Some(peer);
    }
    let chain = match header {
        ForwardedHeader::XForwardedFor => x_forwarded_for(headers),
        ForwardedHeader::Forwarded => forwarded_for(headers),
    };
    if chain.is_empty() {
        return Some(peer);
    }
    let mut client = None;
    for hop in chain.iter().rev() {
        let ip = parse_node(hop)?;
        client = Some(ip);
        if !is_trusted(ip) {
            break;
        }
    }
    client
}

/// The peer address of the connection: axum's `ConnectInfo<SocketAddr>`
/// (feature `axum`) or a plain `SocketAddr` extension.
fn peer_ip(extensions: &Extensions) -> Option<IpAddr> {
    #[cfg(feature = "axum")]
    if let Some(axum::extract::ConnectInfo(addr)) =
        extensions.get::<axum::extract::ConnectInfo<SocketAddr>>()
    {
        return Some(addr.ip().to_canonical());
    }
    extensions
        .get::<SocketAddr>()
        .map(|addr| addr.ip().to_canonical())
}

/// The entries of every `X-Forwarded-For` line, in order.
fn x_forwarded_for(headers: &HeaderMap) -> Vec<&str> {
    headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .flat_map(|value| value.to_str().unwrap_or("\u{0}").split(','))
        .map(str::trim)
        .collect()
}

/// The `for=` parameters of every `Forwarded` element, in order. An element
/// without `for=` is kept as an unknown hop.
fn forwarded_for(headers: &HeaderMap) -> Vec<&str> {
    headers
        .get_all(FORWARDED)
        .iter()
        .flat_map(|value| value.to_str().unwrap_or("\u{0}").split(','))
        .map(|element| {
            element
                .split(';')
                .filter_map(|pair| pair.split_once('='))
                .find(|(key, _)| key.trim().eq_ignore_ascii_case("for"))
                .map_or("", |(_, value)| value.trim().trim_matches('"'))
        })
        .collect()
}

/// An address as proxies write it: `192.0.2.1`, `192.0.2.1:4711`, `::1`,
/// `[2001:db8::1]`, `[2001:db8::1]:4711`.
fn parse_node(text: &str) -> Option<IpAddr> {
    let text = text.trim();
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Some(addr.ip().to_canonical());
    }
    let inner = text.strip_prefix('[')?.strip_suffix(']')?;
    inner.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn policy(trusted: &[&str], header: ForwardedHeader) -> ClientAddrPolicy {
        ClientAddrPolicy {
            trusted: trusted.iter().map(|t| t.parse().unwrap()).collect(),
            header,
        }
    }

    fn request(peer: Option<&str>, headers: &[(&str, &str)]) -> (HeaderMap, Extensions) {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        let mut extensions = Extensions::new();
        if let Some(peer) = peer {
            extensions.insert(peer.parse::<SocketAddr>().unwrap());
        }
        (map, extensions)
    }

    fn client(
        policy: &ClientAddrPolicy,
        peer: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Option<String> {
        let (headers, extensions) = request(peer, headers);
        policy
            .client_ip(&headers, &extensions)
            .map(|ip| ip.to_string())
    }

    #[test]
    fn networks_contain_their_addresses_only() {
        let net: IpNetwork = "192.168.0.0/16".parse().unwrap();
        assert!(net.contains(ip("192.168.255.1")));
        assert!(!net.contains(ip("192.169.0.1")));
        assert!(net.contains(ip("::ffff:192.168.1.1")), "IPv4-mapped IPv6");
        assert!(!net.contains(ip("::1")));
        let v6: IpNetwork = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains(ip("2001:db8:1::5")));
        assert!(!v6.contains(ip("2001:db9::5")));
        let single: IpNetwork = "127.0.0.1".parse().unwrap();
        assert!(single.contains(ip("127.0.0.1")) && !single.contains(ip("127.0.0.2")));
        let all: IpNetwork = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("8.8.8.8")) && !all.contains(ip("::2")));
        assert_eq!(single.to_string(), "127.0.0.1/32");
        for bad in ["10.0.0.0/33", "::/129", "nope", "10.0.0.0/x", "10.0.0/8"] {
            assert!(bad.parse::<IpNetwork>().is_err(), "{bad}");
        }
    }

    #[test]
    fn proxy_notations_parse() {
        assert_eq!(parse_node("192.0.2.1"), Some(ip("192.0.2.1")));
        assert_eq!(parse_node(" 192.0.2.1:4711 "), Some(ip("192.0.2.1")));
        assert_eq!(parse_node("2001:db8::1"), Some(ip("2001:db8::1")));
        assert_eq!(parse_node("[2001:db8::1]"), Some(ip("2001:db8::1")));
        assert_eq!(parse_node("[2001:db8::1]:4711"), Some(ip("2001:db8::1")));
        assert_eq!(parse_node("::ffff:10.0.0.1"), Some(ip("10.0.0.1")));
        assert_eq!(parse_node("unknown"), None);
        assert_eq!(parse_node("_hidden"), None);
        assert_eq!(parse_node(""), None);
    }

    #[test]
    fn without_trusted_proxies_the_peer_is_the_client() {
        let p = policy(&[], ForwardedHeader::XForwardedFor);
        let forged = [("x-forwarded-for", "1.2.3.4"), ("forwarded", "for=1.2.3.4")];
        assert_eq!(
            client(&p, Some("10.0.0.9:5000"), &forged).as_deref(),
            Some("10.0.0.9")
        );
        assert_eq!(client(&p, None, &forged), None);
    }

    #[test]
    fn an_untrusted_peer_cannot_forward() {
        let p = policy(&["10.0.0.0/8"], ForwardedHeader::XForwardedFor);
        let forged = [("x-forwarded-for", "1.2.3.4")];
        assert_eq!(
            client(&p, Some("192.0.2.7:5000"), &forged).as_deref(),
            Some("192.0.2.7")
        );
        // Unknown peer: nothing can be verified.
        assert_eq!(client(&p, None, &forged), None);
    }

    #[test]
    fn the_chain_is_walked_from_the_right_past_trusted_hops() {
        let p = policy(&["10.0.0.0/8"], ForwardedHeader::XForwardedFor);
        let peer = Some("10.0.0.1:443");
        let xff = |v| [("x-forwarded-for", v)];
        assert_eq!(
            client(&p, peer, &xff("203.0.113.5")).as_deref(),
            Some("203.0.113.5")
        );
        // The client may prepend anything; the hop our proxy saw wins.
        assert_eq!(
            client(&p, peer, &xff("6.6.6.6, 203.0.113.5, 10.0.0.2")).as_deref(),
            Some("203.0.113.5")
        );
        // Every hop trusted: the leftmost.
        assert_eq!(
            client(&p, peer, &xff("10.1.1.1, 10.0.0.2")).as_deref(),
            Some("10.1.1.1")
        );
        // Garbage in the untrusted part is not reached...
        assert_eq!(
            client(&p, peer, &xff("junk, 203.0.113.5")).as_deref(),
            Some("203.0.113.5")
        );
        // ...but an unknown hop where the client should be makes it unknown.
        assert_eq!(client(&p, peer, &xff("203.0.113.5, unknown")), None);
        // No header: the proxy itself.
        assert_eq!(client(&p, peer, &[]).as_deref(), Some("10.0.0.1"));
        // Several header lines are one list.
        let two = [
            ("x-forwarded-for", "203.0.113.5"),
            ("x-forwarded-for", "10.0.0.3"),
        ];
        assert_eq!(client(&p, peer, &two).as_deref(), Some("203.0.113.5"));
        // The other header is ignored (a proxy passes it on unchanged).
        assert_eq!(
            client(&p, peer, &[("forwarded", "for=1.2.3.4")]).as_deref(),
            Some("10.0.0.1")
        );
    }

    #[test]
    fn forwarded_header_elements() {
        let p = policy(&["10.0.0.0/8"], ForwardedHeader::Forwarded);
        let peer = Some("10.0.0.1:443");
        let fwd = |v| [("forwarded", v)];
        assert_eq!(
            client(&p, peer, &fwd("for=192.0.2.60;proto=http;by=203.0.113.43")).as_deref(),
            Some("192.0.2.60")
        );
        assert_eq!(
            client(
                &p,
                peer,
                &fwd(r#"for="[2001:db8:cafe::17]:4711", For=10.0.0.2"#)
            )
            .as_deref(),
            Some("2001:db8:cafe::17")
        );
        assert_eq!(client(&p, peer, &fwd("for=unknown")), None);
        assert_eq!(client(&p, peer, &fwd("proto=https")), None);
        assert_eq!(
            client(&p, peer, &[("x-forwarded-for", "1.2.3.4")]).as_deref(),
            Some("10.0.0.1")
        );
    }
}
