//! The lines `eventtracking send` and `eventtracking replay` read
//! (`eventtracking-cli/src/input.rs`, compiled in through `#[path]` so the
//! fuzz build needs none of the CLI's backends): never panics; a line is
//! refused with an error that displays; a replayed event writes a line that
//! replays to an equal event; and the line reader, over the same bytes with
//! a small limit, numbers lines and never hands out a line over the limit.
#![no_main]

#[allow(dead_code, unreachable_pub)]
#[path = "../../eventtracking-cli/src/input.rs"]
mod input;

// `input` reads `send`'s timestamps with the import module's parser.
#[allow(dead_code, unreachable_pub)]
#[path = "../../eventtracking-cli/src/import.rs"]
mod import;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match input::parse_send_line(data) {
        Ok(_) => {}
        Err(error) => assert!(!error.to_string().is_empty()),
    }
    match input::parse_replay_line(data) {
        Ok(Some(event)) => {
            let line = event.to_json_bytes().to_vec();
            let again = input::parse_replay_line(&line)
                .unwrap_or_else(|e| panic!("a written event replays: {e}"))
                .expect("not blank");
            assert_eq!(again, event);
        }
        Ok(None) => {}
        Err(error) => assert!(!error.to_string().is_empty()),
    }
    const MAX: usize = 64;
    let mut reader = input::LineReader::new(data, MAX);
    let mut expected_number = 0;
    while let Some((number, line)) = reader.next_line().expect("reading a slice cannot fail") {
        expected_number += 1;
        assert_eq!(number, expected_number);
        if let Ok(line) = line {
            assert!(line.len() <= MAX);
            assert!(!line.contains(&b'\n'));
        }
    }
});
