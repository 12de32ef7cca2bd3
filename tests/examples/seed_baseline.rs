//! The raw baseline of the seed workload: what a program without
//! eventtracking does to write the same events as JSON lines, with
//! serde_json and a `BufWriter`: for every event it makes a UUIDv7 and an
//! RFC 3339 timestamp, builds the record with the context of the moment and
//! the payload, and serializes it. It keeps no contexts, queue or delivery
//! thread. `scripts/bench-seed` runs it beside `eventtracking demo`.
//!
//! Run: `cargo run --release -p eventtracking-tests --example seed_baseline -- COUNT FILE`
//! (`-` for stdout; COUNT seed cycles of three events).

use std::io::Write;

use serde::Serialize;
use serde_json::json;

#[derive(Serialize)]
struct Record<'a, D: Serialize> {
    id: uuid::Uuid,
    name: &'a str,
    timestamp: String,
    context: &'a serde_json::Value,
    data: D,
}

#[derive(Serialize)]
struct Navigation<'a> {
    url: &'a str,
}

#[derive(Serialize)]
struct Address<'a> {
    postal_code: &'a str,
    country: &'a str,
}

#[derive(Serialize)]
struct AddressCreate<'a> {
    name: &'a str,
    address: Address<'a>,
}

fn write<D: Serialize>(
    out: &mut impl Write,
    name: &str,
    context: &serde_json::Value,
    data: D,
) -> std::io::Result<()> {
    let record = Record {
        id: uuid::Uuid::now_v7(),
        name,
        timestamp: humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string(),
        context,
        data,
    };
    serde_json::to_writer(&mut *out, &record)?;
    out.write_all(b"\n")
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let count: u64 = args.next().and_then(|n| n.parse().ok()).unwrap_or(200_000);
    let path = args.next().unwrap_or_else(|| "-".into());
    let sink: Box<dyn Write> = if path == "-" {
        Box::new(std::io::stdout().lock())
    } else {
        Box::new(std::fs::File::create(&path)?)
    };
    let mut out = std::io::BufWriter::with_capacity(1 << 16, sink);
    for _ in 0..count {
        let outer = json!({"user_id": 10938});
        write(
            &mut out,
            "navigation.request",
            &outer,
            Navigation {
                url: "http://www.edx.org/some/path/1",
            },
        )?;
        let inner = json!({"user_id": 11111, "session_id": "2987lkjdyoioey"});
        write(
            &mut out,
            "navigation.request",
            &inner,
            Navigation {
                url: "http://www.edx.org/some/path/2",
            },
        )?;
        write(
            &mut out,
            "address.create",
            &outer,
            AddressCreate {
                name: "foo",
                address: Address {
                    postal_code: "90210",
                    country: "United States",
                },
            },
        )?;
    }
    out.flush()
}
