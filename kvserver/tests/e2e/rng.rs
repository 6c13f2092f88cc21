//! A tiny seeded PRNG (xorshift64*) for workloads and fault schedules, so a failing run
//! can be repeated with the same schedule (`RAFTKV_E2E_SEED=<n>`).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

/// xorshift64*: not cryptographic, just reproducible.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator started from `seed` (any value; zero is remapped).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    /// The seed of this run: `RAFTKV_E2E_SEED` if set, else a fresh random one.
    pub fn seed_from_env() -> u64 {
        match std::env::var("RAFTKV_E2E_SEED") {
            Ok(s) => s.trim().parse().expect("RAFTKV_E2E_SEED must be a u64"),
            Err(_) => {
                let mut h = RandomState::new().build_hasher();
                h.write_u32(std::process::id());
                h.finish()
            }
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Uniform in `lo..=hi`.
    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// A child generator with its own stream.
    pub fn fork(&mut self) -> Rng {
        Rng::new(self.next_u64() ^ 0x9E37_79B9_7F4A_7C15)
    }
}
