//! The command's global allocator: mimalloc.
//!
//! Events are allocated on the emitting thread and freed on the delivery
//! thread. glibc's malloc handles that pattern slowly (a lock and a
//! consolidation per remote free); mimalloc frees into the owning thread's
//! page with one atomic push. Measured on the seed workload in
//! BENCHMARKS.md. The libraries never choose an allocator: an application
//! picks its own (README, "Performance").

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
