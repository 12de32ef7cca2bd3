//! Config files: `Config::from_toml_str` never panics, its errors display,
//! and what parses yields delivery settings and processors (built through the
//! registry, as `Config::build` does) or errors, never a panic. The built
//! processors then run on an event.
#![no_main]

use std::sync::Arc;

use eventtracking_core::registry::{build_processor, ComponentConfig};
use eventtracking_core::{Config, Event, JsonMap};
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
    for (index, table) in config.processors.iter().enumerate() {
        let Some(toml::Value::String(engine)) = table.get("engine") else {
            continue;
        };
        let mut options = JsonMap::new();
        for (key, value) in table.iter().filter(|(key, _)| *key != "engine") {
            match serde_json::to_value(value) {
                Ok(json) => {
                    options.insert(key.clone(), json);
                }
                Err(_) => return,
            }
        }
        let component =
            ComponentConfig::new(format!("processors[{index}]"), engine.clone(), options);
        match build_processor(&component) {
            Ok(processor) => {
                let _ = processor.process(event.clone());
            }
            Err(error) => assert!(!error.to_string().is_empty()),
        }
    }
});
