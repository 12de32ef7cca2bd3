//! The `kafka` engine as a config file sees it (an integration test: the
//! crate's registration is linked once here, as in an application).

use eventtracking_kafka::DEFAULT_BATCH_SIZE;

#[test]
fn a_config_without_batch_size_gets_large_kafka_batches() {
    if std::env::var_os("EVENTTRACKING_BATCH_SIZE").is_some() {
        return;
    }
    let base = "[backends.stream]\nengine = \"kafka\"\nbrokers = \"127.0.0.1:1\"\ntopic = \"t\"\n";
    let tracker = eventtracking::Config::from_toml_str(base)
        .unwrap()
        .build()
        .unwrap();
    assert_eq!(
        tracker.delivery_config("stream").unwrap().batch_size,
        DEFAULT_BATCH_SIZE
    );
    let text = format!("[delivery]\nbatch_size = 64\n{base}");
    let tracker = eventtracking::Config::from_toml_str(&text)
        .unwrap()
        .build()
        .unwrap();
    assert_eq!(tracker.delivery_config("stream").unwrap().batch_size, 64);
}
