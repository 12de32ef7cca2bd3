//! The seed workload's own code with no tracker: what `eventtracking demo`
//! builds for each cycle (the two `json!` contexts and the typed events'
//! strings), made and dropped as `demo` makes and drops them, and nothing
//! else. `scripts/bench-instructions` runs it under callgrind beside
//! `demo`: what it costs per event is a floor that no tracker can go under
//! on this workload.
//!
//! ```sh
//! cargo run --release -p eventtracking-cli --example seed_code_alone -- 20000
//! ```

use std::hint::black_box;

use serde_json::json;

// As the `eventtracking` binary (src/allocator.rs).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cycles: u64 = match std::env::args().nth(1).map(|n| n.parse()) {
        None => 20_000,
        Some(Ok(n)) => n,
        Some(Err(error)) => {
            eprintln!("seed_code_alone: the count of cycles: {error}");
            std::process::exit(2);
        }
    };
    for _ in 0..cycles {
        let outer = black_box(json!({"user_id": 10938}));
        // The fields of a `navigation.request`: its url.
        black_box(String::from("http://www.edx.org/some/path/1"));
        let inner = black_box(json!({"user_id": 11111, "session_id": "2987lkjdyoioey"}));
        black_box(String::from("http://www.edx.org/some/path/2"));
        drop(inner);
        // An `address.create`: its name and its address's two fields.
        black_box((
            String::from("foo"),
            String::from("90210"),
            String::from("United States"),
        ));
        drop(outer);
    }
}
