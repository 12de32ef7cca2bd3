//! Long runs of the seed's events, and the process's memory, for load and
//! memory benchmarks.

use eventtracking::{EmitError, Tracker};
use serde::Serialize;

#[derive(Serialize)]
struct Navigation {
    seq: u64,
    url: &'static str,
}

#[derive(Serialize)]
struct Address {
    postal_code: &'static str,
    country: &'static str,
}

#[derive(Serialize)]
struct AddressCreate {
    seq: u64,
    name: &'static str,
    address: Address,
}

/// Emits event number `seq` of a stream that cycles through the seed
/// example's three payloads (`navigation.request` to path 1, then path 2,
/// then `address.create`), each with `seq` in its data, as typed payloads.
///
/// ```
/// use eventtracking::{InMemoryBackend, Tracker};
///
/// let memory = InMemoryBackend::new();
/// let tracker = Tracker::builder().with_backend("memory", memory.clone()).build().unwrap();
/// for seq in 0..3 {
///     eventtracking_testkit::emit_seed_shape(&tracker, seq).unwrap();
/// }
/// tracker.flush(std::time::Duration::from_secs(5));
/// let events = memory.events();
/// assert_eq!(events[1].data()["url"], "http://www.edx.org/some/path/2");
/// assert_eq!(events[2].data()["address"]["country"], "United States");
/// assert_eq!(events[2].data()["seq"], 2);
/// ```
pub fn emit_seed_shape(tracker: &Tracker, seq: u64) -> Result<(), EmitError> {
    let navigation = |url| Navigation { seq, url };
    match seq % 3 {
        0 => tracker.emit(
            "navigation.request",
            navigation("http://www.edx.org/some/path/1"),
        ),
        1 => tracker.emit(
            "navigation.request",
            navigation("http://www.edx.org/some/path/2"),
        ),
        _ => tracker.emit(
            "address.create",
            AddressCreate {
                seq,
                name: "foo",
                address: Address {
                    postal_code: "90210",
                    country: "United States",
                },
            },
        ),
    }
}

/// This process's resident set size and its peak (`VmRSS`, `VmHWM` from
/// `/proc/self/status`), in MiB; NaN where that file is missing (not Linux).
pub fn rss_mib() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |key: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(key))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<f64>()
                    .ok()
            })
            .map_or(f64::NAN, |kib| kib / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}
