//! The simulator's only source of randomness: a seeded xoshiro256** generator whose state
//! is expanded from one `u64` with splitmix64.
//!
//! Invariant: the same seed yields the same sequence on every platform and every run, so a
//! failing simulation replays exactly from `RAFTKV_SIM_SEED=<n>`. Nothing in the simulator
//! reads ambient randomness or clocks.

/// One step of splitmix64: a good 64-bit mixer, used to expand seeds.
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Mixes several numbers into one seed (for per-node, per-incarnation core seeds).
pub fn mix_seed(parts: &[u64]) -> u64 {
    let mut state = 0x5EED_5EED_5EED_5EED_u64;
    let mut out = 0;
    for part in parts {
        state ^= *part;
        out ^= splitmix64(&mut state);
    }
    out
}

/// A seeded pseudo-random generator (xoshiro256**).
#[derive(Clone, Debug)]
pub struct SimRng {
    state: [u64; 4],
}

impl SimRng {
    /// A generator whose whole future is decided by `seed`.
    pub fn new(seed: u64) -> SimRng {
        let mut sm = seed;
        let state = [
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
        ];
        SimRng { state }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.state;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// A uniform number in `0..n` (`n` must be positive).
    ///
    /// # Panics
    /// When `n == 0` (a bug in the caller).
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "SimRng::below(0)");
        // Lemire's multiply-shift; the bias is below 2^-64 * n, irrelevant here.
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// A uniform index in `0..len` (`len` must be positive).
    pub fn index(&mut self, len: usize) -> usize {
        self.below(len as u64) as usize
    }

    /// A uniform number in `lo..=hi`.
    pub fn range_inclusive(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `per_mille / 1000`.
    pub fn chance(&mut self, per_mille: u32) -> bool {
        self.below(1000) < u64::from(per_mille)
    }

    /// An independent generator split off from this one.
    pub fn fork(&mut self) -> SimRng {
        SimRng::new(self.next_u64())
    }

    /// Shuffles `items` in place (Fisher-Yates).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.index(i + 1);
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence() {
        let mut a = SimRng::new(42);
        let mut b = SimRng::new(42);
        for _ in 0..1000 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        let mut c = SimRng::new(43);
        assert_ne!(SimRng::new(42).next_u64(), c.next_u64());
    }

    #[test]
    fn below_stays_in_range_and_covers_it() {
        let mut rng = SimRng::new(7);
        let mut seen = [false; 10];
        for _ in 0..10_000 {
            let x = rng.below(10);
            assert!(x < 10);
            seen[x as usize] = true;
        }
        assert!(seen.iter().all(|s| *s));
        for _ in 0..1000 {
            let x = rng.range_inclusive(5, 8);
            assert!((5..=8).contains(&x));
        }
        assert_eq!(rng.range_inclusive(9, 3), 9);
    }

    #[test]
    fn chance_matches_its_probability_roughly() {
        let mut rng = SimRng::new(1);
        let hits = (0..100_000).filter(|_| rng.chance(100)).count();
        assert!((9_000..11_000).contains(&hits), "hits {hits}");
        assert!(!(0..1000).any(|_| rng.chance(0)));
        assert!((0..1000).all(|_| rng.chance(1000)));
    }

    #[test]
    fn mix_seed_depends_on_every_part() {
        let a = mix_seed(&[1, 2, 3]);
        assert_ne!(a, mix_seed(&[1, 2, 4]));
        assert_ne!(a, mix_seed(&[0, 2, 3]));
        assert_eq!(a, mix_seed(&[1, 2, 3]));
    }
}
