//! The lines `eventtracking import --from python-eventtracking` reads
//! (`eventtracking-cli/src/import.rs`, compiled in through `#[path]`): never
//! panics; a refused line has an error that displays; an imported event has
//! a UUIDv8 id that the same line always gives, a time in range, and writes
//! a JSON line that reads back to an equal event. The timestamp parser, on
//! the same bytes as text, never panics either.
#![no_main]

#[allow(dead_code, unreachable_pub)]
#[path = "../../eventtracking-cli/src/import.rs"]
mod import;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match import::parse_python_eventtracking_line(data) {
        Ok(Some(event)) => {
            assert_eq!(event.id().get_version_num(), 8);
            let again = import::parse_python_eventtracking_line(data)
                .expect("parsed once")
                .expect("not blank");
            assert_eq!(again, event, "the same line gives the same event and id");
            let line = event.to_json_bytes().to_vec();
            let read = eventtracking::Event::from_json_slice(&line)
                .unwrap_or_else(|e| panic!("an imported event's line reads back: {e}"));
            assert_eq!(read, event);
        }
        Ok(None) => {}
        Err(error) => assert!(!error.to_string().is_empty()),
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(time) = import::parse_iso8601(text) {
            assert!(time >= std::time::SystemTime::UNIX_EPOCH);
        }
        let _ = import::parse_rfc3339(text);
    }
});
