//! Config files: `Config::from_toml_str` never panics, its errors display,
//! and what parses yields delivery settings and processors (built through the
//! registry, as `Config::build` does) or errors, never a panic. The built
//! processors then run on an event.
#![no_main]

use std::sync::Arc;

use eventtracking::registry::build_processor;
use eventtracking::{Config, Event};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let config = match Config::from_toml_str(text) {
        Ok(config) => config,
        Err(error) => {
            assert!(!error.to_string().is_empty());
            return;
        }
    };
    let _ = format!("{config:?}");
    if let Err(error) = config.delivery_config() {
        assert!(!error.to_string().is_empty());
    }
    if let Err(error) = config.source() {
        assert!(!error.to_string().is_empty());
    }
    let event = Arc::new(
        Event::new(
            "navigation.request",
            serde_json::json!({"url": "http://www.edx.org/some/path/1", "password": "x"}),
        )
        .unwrap(),
    );
    let Ok(components) = config.processor_configs() else {
        return;
    };
    for component in components {
        match build_processor(&component) {
            Ok(processor) => {
                let _ = processor.process(event.clone());
            }
            Err(error) => assert!(!error.to_string().is_empty()),
        }
    }
});
