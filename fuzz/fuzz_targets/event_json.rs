//! `Event::from_json_slice`, what the relay and `replay` read: never panics,
//! and an event that parses round-trips: its JSON line parses again (through
//! `from_json_slice` and through `Deserialize`) to an equal event, whose own
//! line is the same bytes.
#![no_main]

use eventtracking_core::Event;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let event = match Event::from_json_slice(data) {
        Ok(event) => event,
        Err(error) => {
            assert!(!error.to_string().is_empty());
            return;
        }
    };
    let line = event.to_json_bytes().to_vec();
    assert!(!line.contains(&b'\n'), "an event is one line: {line:?}");
    let again = Event::from_json_slice(&line).unwrap_or_else(|e| {
        panic!(
            "own line does not parse: {e}: {}",
            String::from_utf8_lossy(&line)
        )
    });
    assert_eq!(again, event);
    assert_eq!(again.to_json_bytes(), &line[..]);
    let owned: Event = serde_json::from_slice(&line).unwrap_or_else(|e| {
        panic!(
            "Deserialize refuses the line: {e}: {}",
            String::from_utf8_lossy(&line)
        )
    });
    assert_eq!(owned, event);
    // The payload as a value is the payload as text.
    if let Some(raw) = event.raw_data() {
        let parsed: serde_json::Value = serde_json::from_str(raw).expect("raw data parses");
        assert_eq!(&parsed, event.data());
    }
});
