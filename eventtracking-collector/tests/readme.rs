//! The README's `[collector]` example is a config the collector accepts,
//! and says what it means.

use eventtracking::Config;
use eventtracking_collector::CollectorConfig;

/// The first ```toml block after the README's `eventtracking serve` heading.
fn readme_example() -> String {
    let readme = include_str!("../../README.md");
    let section = readme
        .split("## Collecting browser and mobile events")
        .nth(1)
        .expect("the README's collector section");
    let block = section
        .split("```toml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a toml block in the collector section");
    block.to_owned()
}

#[test]
fn the_readme_example_is_a_valid_collector_config() {
    let text = readme_example();
    let config = Config::from_toml_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let collector =
        CollectorConfig::from_table(config.collector()).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(collector.listen.to_string(), "0.0.0.0:8080");
    assert_eq!(collector.write_keys.len(), 1);
    assert_eq!(collector.max_events_per_request, 500);
    assert_eq!(collector.source, "browser");
    assert_eq!(collector.trusted_proxies.len(), 1);
    let per_key = collector.rate_limit_per_key.expect("rate_limit_per_key");
    assert_eq!((per_key.per_second, per_key.burst.get()), (1000.0, 2000));
    assert!(
        !format!("{collector:?}").contains("k-frontend-1"),
        "a write key in Debug output"
    );
}
