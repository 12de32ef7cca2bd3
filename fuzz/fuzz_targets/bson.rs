//! The MongoDB document form of events (`eventtracking_mongo`):
//! - bytes that frame a BSON document are read back as an event
//!   (`event_from_document`) or refused, never a panic; an event read back
//!   encodes to a document that reads back to the same event;
//! - other bytes are tried as an event's JSON line: the event encodes
//!   (`event_to_document`) or is refused with a reason, and the document
//!   reads back to an equal event.
#![no_main]

use eventtracking_core::Event;
use eventtracking_mongo::mongodb::bson::RawDocument;
use eventtracking_mongo::{event_from_document, event_to_document, DocumentLayout};
use libfuzzer_sys::fuzz_target;

fn round_trip(event: &Event) {
    for layout in [
        DocumentLayout::default(),
        DocumentLayout {
            rfc3339_timestamp: false,
        },
    ] {
        let document = match layout.encode(event) {
            Ok(document) => document,
            Err(error) => {
                assert!(!error.to_string().is_empty());
                continue;
            }
        };
        let back = event_from_document(&document)
            .unwrap_or_else(|e| panic!("own document does not read back: {e}: {event:?}"));
        if layout.rfc3339_timestamp {
            assert_eq!(&back, event);
        } else {
            // A BSON date holds milliseconds.
            assert_eq!(
                (back.id(), back.name(), back.context(), back.data()),
                (event.id(), event.name(), event.context(), event.data())
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(document) = RawDocument::from_bytes(data) {
        match event_from_document(document) {
            Ok(event) => {
                let _ = event.to_json_bytes();
                if event_to_document(&event).is_ok() {
                    round_trip(&event);
                }
            }
            Err(error) => assert!(!error.to_string().is_empty()),
        }
    } else if let Ok(event) = Event::from_json_slice(data) {
        round_trip(&event);
    }
});
