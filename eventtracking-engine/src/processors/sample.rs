//! `sample`: a fraction of events kept, decided by the event id.

use std::sync::Arc;

use eventtracking_core::{Event, ProcessResult, Processor};

/// Keeps a fraction of events, decided by the random bits of the event id,
/// so the same event is kept or dropped alike everywhere.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    threshold: u64,
    rate: f64,
}

impl Sample {
    /// `rate` in 0.0..=1.0: the fraction kept.
    pub fn new(rate: f64) -> Result<Self, String> {
        if !(0.0..=1.0).contains(&rate) {
            return Err(format!("rate {rate} must be between 0.0 and 1.0"));
        }
        let threshold = (rate * (1u64 << 62) as f64) as u64;
        Ok(Sample { threshold, rate })
    }

    /// The fraction kept.
    pub fn rate(&self) -> f64 {
        self.rate
    }
}

impl Processor for Sample {
    fn name(&self) -> &str {
        "sample"
    }

    fn process(&self, event: Arc<Event>) -> ProcessResult {
        // A UUIDv7 mixes a timestamp and a counter with its random bits, so
        // hash the whole id (splitmix64's finalizer) for an even spread.
        let id = event.id().as_u128();
        let mut x = (id as u64) ^ ((id >> 64) as u64).rotate_left(29);
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^= x >> 31;
        let random = x >> 2;
        Ok((random < self.threshold || self.rate >= 1.0).then_some(event))
    }
}
