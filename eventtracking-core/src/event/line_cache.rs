//! Per-thread caches for writing event lines: consecutive events usually
//! share their context (one `Arc` per stack change) and their second, so a
//! delivery thread serializes each context once and formats each second's
//! date once, instead of once per event.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::JsonMap;

/// A context written on this thread and its JSON; holding the `Arc` keeps
/// its address from being reused by another map.
struct CachedContext {
    context: Arc<JsonMap>,
    json: Vec<u8>,
}

/// The last few contexts written (events interleave a few contexts, e.g. an
/// outer and an inner one), replaced round robin.
#[derive(Default)]
struct ContextCache {
    entries: [Option<CachedContext>; CACHED_CONTEXTS],
    next: usize,
}

const CACHED_CONTEXTS: usize = 4;

/// The last second formatted on this thread: `YYYY-MM-DDTHH:MM:SS`.
struct SecondCache {
    second: u64,
    text: [u8; 19],
}

thread_local! {
    static CONTEXT: RefCell<ContextCache> = RefCell::new(ContextCache::default());
    static SECOND: RefCell<Option<SecondCache>> = const { RefCell::new(None) };
}

/// The largest context kept: a bigger one is written directly each time.
const MAX_CACHED_CONTEXT_BYTES: usize = 4096;

/// Appends the context's JSON object to `out`.
pub(super) fn write_context(context: &Arc<JsonMap>, out: &mut Vec<u8>) -> std::io::Result<()> {
    if context.is_empty() {
        out.extend_from_slice(b"{}");
        return Ok(());
    }
    let cached = CONTEXT.try_with(|cell| {
        let Ok(mut cache) = cell.try_borrow_mut() else {
            return false;
        };
        let hit = cache
            .entries
            .iter()
            .flatten()
            .find(|cached| Arc::ptr_eq(&cached.context, context));
        if let Some(cached) = hit {
            out.extend_from_slice(&cached.json);
            return true;
        }
        let start = out.len();
        if crate::json_text::write_json_object(out, context).is_err() {
            out.truncate(start);
            return false;
        }
        let json = &out[start..];
        if json.len() <= MAX_CACHED_CONTEXT_BYTES {
            let slot = cache.next;
            cache.next = (slot + 1) % CACHED_CONTEXTS;
            cache.entries[slot] = Some(CachedContext {
                context: context.clone(),
                json: json.to_vec(),
            });
        }
        true
    });
    match cached {
        Ok(true) => Ok(()),
        // No cache on this thread (exiting, or re-entered): write it directly.
        _ => crate::json_text::write_json_object(out, context).map_err(Into::into),
    }
}

/// Appends the RFC 3339 UTC timestamp with microseconds (without quotes),
/// e.g. `2026-11-29T01:52:39.123456Z`.
pub(super) fn write_timestamp(timestamp: SystemTime, out: &mut Vec<u8>) -> std::io::Result<()> {
    use std::io::Write as _;
    let Ok(since) = timestamp.duration_since(SystemTime::UNIX_EPOCH) else {
        // Before 1970: rare enough to format the slow way.
        return write!(out, "{}", humantime::format_rfc3339_micros(timestamp));
    };
    let second = since.as_secs();
    let written = SECOND.try_with(|cell| {
        let Ok(mut slot) = cell.try_borrow_mut() else {
            return false;
        };
        let cache = match slot.as_mut() {
            Some(cache) if cache.second == second => cache,
            _ => match format_second(second) {
                Some(text) => slot.insert(SecondCache { second, text }),
                None => return false,
            },
        };
        out.extend_from_slice(&cache.text);
        true
    });
    if written != Ok(true) {
        return write!(out, "{}", humantime::format_rfc3339_micros(timestamp));
    }
    let micros = since.subsec_micros();
    let mut fraction = *b".000000Z";
    // Two digits at a time from a table: three divisions instead of six.
    for (at, pair) in [micros / 10_000, micros / 100 % 100, micros % 100]
        .into_iter()
        .enumerate()
    {
        let pair = 2 * pair as usize;
        fraction[1 + 2 * at..3 + 2 * at].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
    }
    out.extend_from_slice(&fraction);
    Ok(())
}

/// `00`, `01`, ... `99`: the two digits of `n` at `2 * n`.
const DIGIT_PAIRS: &[u8; 200] = b"\
    0001020304050607080910111213141516171819\
    2021222324252627282930313233343536373839\
    4041424344454647484950515253545556575859\
    6061626364656667686970717273747576777879\
    8081828384858687888990919293949596979899";

/// `YYYY-MM-DDTHH:MM:SS` of a second since the epoch, as humantime writes
/// it; `None` past year 9999 (humantime's range).
fn format_second(second: u64) -> Option<[u8; 19]> {
    let time = SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(second))?;
    let text = humantime::format_rfc3339_seconds(time).to_string();
    text.as_bytes().get(..19)?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn timestamps_match_humantime_across_seconds_and_micros() {
        // Every digit of the fraction takes each value at each position.
        let micros = (0..1_000_000)
            .step_by(9_973)
            .chain([999_999, 100_000, 10_001, 99]);
        let cases = [
            (0, 0),
            (1_764_000_000, 1_000),
            (1_764_000_000, 999_999_000),
            (1_764_000_001, 5_000),
            (253_402_300_799, 123_456_000),
        ]
        .into_iter()
        .chain(micros.map(|micros| (1_764_000_002, micros * 1_000 + 999)));
        for (secs, nanos) in cases {
            let time = SystemTime::UNIX_EPOCH + Duration::new(secs, nanos);
            let mut out = Vec::new();
            write_timestamp(time, &mut out).unwrap();
            assert_eq!(
                String::from_utf8(out).unwrap(),
                humantime::format_rfc3339_micros(time).to_string()
            );
        }
    }

    #[test]
    fn a_context_is_written_from_the_cache_only_for_the_same_map() {
        let first = Arc::new(json!({"user_id": 1}).as_object().unwrap().clone());
        let second = Arc::new(json!({"user_id": 2}).as_object().unwrap().clone());
        let mut out = Vec::new();
        for context in [&first, &first, &second, &first] {
            write_context(context, &mut out).unwrap();
            out.push(b' ');
        }
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"user_id":1} {"user_id":1} {"user_id":2} {"user_id":1} "#
        );
    }
}
