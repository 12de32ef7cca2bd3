//! Write keys: where a client puts its key, and checking it without ever
//! showing it.

use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderName};

/// The header a client may send its key in (besides `Authorization: Bearer`).
pub static KEY_HEADER: HeaderName = HeaderName::from_static("x-eventtracking-key");

/// The query parameter a client may send its key in (beacons cannot set headers).
pub const KEY_PARAMETER: &str = "key";

/// The keys clients may write with. `Debug` shows how many there are,
/// never the keys.
///
/// ```
/// use eventtracking_collector::WriteKeys;
/// let keys = WriteKeys::new(vec!["k-secret".into()]).unwrap();
/// assert_eq!(format!("{keys:?}"), "WriteKeys(1 key)");
/// assert!(WriteKeys::new(vec!["with space".into()]).is_err());
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct WriteKeys(Vec<Box<[u8]>>);

impl std::fmt::Debug for WriteKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.0.len();
        write!(f, "WriteKeys({n} key{})", if n == 1 { "" } else { "s" })
    }
}

impl WriteKeys {
    /// What a key must be.
    pub const RULE: &'static str =
        "a write key must be 1 to 256 visible ASCII characters (it is sent in a header)";

    /// The keys; `Err(index)` of the first that breaks [`RULE`](Self::RULE).
    pub fn new(keys: Vec<String>) -> Result<Self, usize> {
        let mut checked = Vec::with_capacity(keys.len());
        for (index, key) in keys.into_iter().enumerate() {
            let visible = key.bytes().all(|b| b.is_ascii_graphic());
            if key.is_empty() || key.len() > 256 || !visible {
                return Err(index);
            }
            checked.push(key.into_bytes().into_boxed_slice());
        }
        Ok(WriteKeys(checked))
    }

    /// No key configured: every request is let in.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many keys there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The index of the key `presented` matches. Every key is compared in
    /// full, so the time taken does not tell how much of a key was right.
    pub(crate) fn find(&self, presented: &[u8]) -> Option<usize> {
        let mut found = None;
        for (index, key) in self.0.iter().enumerate() {
            if constant_time_eq(key, presented) && found.is_none() {
                found = Some(index);
            }
        }
        found
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The key a request presents: `Authorization: Bearer K`, else
/// `X-Eventtracking-Key: K`, else `?key=K`.
pub(crate) fn presented_key(headers: &HeaderMap, query: Option<&str>) -> Option<Vec<u8>> {
    if let Some(value) = headers.get(AUTHORIZATION) {
        let value = value.as_bytes();
        if value.len() > 7 && value[..7].eq_ignore_ascii_case(b"bearer ") {
            return Some(value[7..].trim_ascii().to_vec());
        }
    }
    if let Some(value) = headers.get(&KEY_HEADER) {
        return Some(value.as_bytes().trim_ascii().to_vec());
    }
    query?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(name, _)| *name == KEY_PARAMETER)
        .map(|(_, value)| percent_decode(value))
}

/// `%XX` escapes and `+` as a space, as a form-encoded query has them.
fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        match bytes[at] {
            b'%' if at + 2 < bytes.len() => {
                let hex = |b: u8| (b as char).to_digit(16);
                match (hex(bytes[at + 1]), hex(bytes[at + 2])) {
                    (Some(high), Some(low)) => {
                        out.push((high * 16 + low) as u8);
                        at += 3;
                        continue;
                    }
                    _ => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            other => out.push(other),
        }
        at += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn keys_are_found_in_each_place() {
        let mut headers = HeaderMap::new();
        assert_eq!(
            presented_key(&headers, Some("key=a%2Db&x=1")),
            Some(b"a-b".to_vec())
        );
        assert_eq!(presented_key(&headers, Some("x=1")), None);
        headers.insert(&KEY_HEADER, HeaderValue::from_static("from-header"));
        assert_eq!(
            presented_key(&headers, Some("key=q")),
            Some(b"from-header".to_vec())
        );
        headers.insert(
            AUTHORIZATION,
            HeaderValue::from_static("Bearer from-bearer"),
        );
        assert_eq!(presented_key(&headers, None), Some(b"from-bearer".to_vec()));
    }

    #[test]
    fn matching_is_exact() {
        let keys = WriteKeys::new(vec!["one".into(), "two".into()]).unwrap();
        assert_eq!(keys.find(b"two"), Some(1));
        assert_eq!(keys.find(b"tw"), None);
        assert_eq!(keys.find(b"twoo"), None);
        assert_eq!(percent_decode("100%"), b"100%");
        assert_eq!(percent_decode("%4"), b"%4");
    }
}
