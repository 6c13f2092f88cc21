//! The core's only source of randomness: a SplitMix64 generator seeded from
//! `Config::seed` and the node id.
//!
//! Invariant: the sequence depends on nothing but `(seed, id)`, so a run is replayable
//! from its seed. Mixing in the id means nodes configured with the same seed still draw
//! different election timeouts (identical timeouts would split every vote forever).

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, fast, and good enough for timeouts.
#[derive(Clone, Debug)]
pub(crate) struct SplitMix64 {
    state: u64,
}

const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

impl SplitMix64 {
    /// A generator for node `id` from the configured `seed`.
    pub(crate) fn new(seed: u64, id: u64) -> SplitMix64 {
        SplitMix64 {
            state: seed ^ id.wrapping_mul(GOLDEN_GAMMA).rotate_left(17),
        }
    }

    /// The next 64 random bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN_GAMMA);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `[0, bound)`; `bound` must be at least 1.
    pub(crate) fn below(&mut self, bound: u32) -> u32 {
        debug_assert!(bound > 0, "below(0)");
        // Lemire's multiply-shift: the high 32 bits of a 32x32 product are < bound.
        let x = self.next_u64() >> 32;
        u32::try_from((x * u64::from(bound)) >> 32).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_and_id_give_the_same_sequence() {
        let mut a = SplitMix64::new(7, 1);
        let mut b = SplitMix64::new(7, 1);
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
    }

    #[test]
    fn same_seed_different_ids_differ() {
        let mut a = SplitMix64::new(7, 1);
        let mut b = SplitMix64::new(7, 2);
        let xs: Vec<u64> = (0..8).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..8).map(|_| b.next_u64()).collect();
        assert_ne!(xs, ys);
    }

    #[test]
    fn below_stays_in_range_and_covers_it() {
        let mut rng = SplitMix64::new(42, 3);
        let mut seen = [false; 10];
        for _ in 0..1000 {
            let x = rng.below(10);
            assert!(x < 10);
            seen[x as usize] = true;
        }
        assert!(
            seen.iter().all(|s| *s),
            "all values of [0, 10) drawn: {seen:?}"
        );
    }
}
