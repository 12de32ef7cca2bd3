//! The command's global allocator: mimalloc.
//!
//! Events are allocated on the emitting thread and freed on the delivery
//! thread. glibc's malloc handles that pattern slowly (a lock and a
//! consolidation per remote free); mimalloc frees into the owning thread's
//! page with one atomic push. The workspace builds mimalloc's v2 line (the
//! crate's `v2` feature): Rust's `GlobalAlloc` always makes aligned
//! requests, and v2 served the seed workload with 3–5% fewer instructions
//! per event than the default v3. Measured on the seed workload in
//! BENCHMARKS.md. The libraries never choose an allocator: an application
//! picks its own (README, "Performance").

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
