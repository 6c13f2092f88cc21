//! The key space of a load run: `keys` distinct keys of exactly `key_bytes` bytes each,
//! `k` followed by the zero-padded decimal key index (`k0000042`), so that both systems
//! see the same keys byte for byte. Also the run's value bytes and the client PRNG.

use super::LoadError;

/// `keys` fixed-size keys: `k` + the index in decimal, zero-padded to `key_bytes`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeySpace {
    keys: u64,
    key_bytes: usize,
}

impl KeySpace {
    /// A key space of `keys` keys of `key_bytes` bytes.
    ///
    /// # Errors
    /// [`LoadError::InvalidSpec`] when `keys` is 0 or the largest index does not fit
    /// in `key_bytes - 1` digits.
    pub fn new(keys: u64, key_bytes: usize) -> Result<KeySpace, LoadError> {
        if keys == 0 {
            return Err(LoadError::InvalidSpec(
                "the key space must hold at least one key".into(),
            ));
        }
        let digits = (keys - 1).to_string().len();
        if key_bytes < digits + 1 {
            return Err(LoadError::InvalidSpec(format!(
                "{keys} keys need keys of at least {} bytes, not {key_bytes}",
                digits + 1
            )));
        }
        Ok(KeySpace { keys, key_bytes })
    }

    /// Number of keys.
    pub fn len(&self) -> u64 {
        self.keys
    }

    /// Always false: a key space holds at least one key.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Writes key number `index % len()` into `out` (cleared first).
    pub fn write_key(&self, index: u64, out: &mut Vec<u8>) {
        out.clear();
        out.push(b'k');
        let digits = (index % self.keys).to_string();
        out.resize(self.key_bytes - digits.len(), b'0');
        out.extend_from_slice(digits.as_bytes());
    }
}

/// `value_bytes` printable pseudo-random bytes derived from `seed` (the same for every
/// client and both systems; incompressible enough that neither side gains from it).
pub(crate) fn value_bytes(value_bytes: usize, seed: u64) -> Vec<u8> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut rng = SplitMix64::new(seed);
    (0..value_bytes)
        .map(|_| ALPHABET[(rng.next_u64() % 64) as usize])
        .collect()
}

/// SplitMix64: a small, fast, seedable PRNG (any seed is fine, including 0).
#[derive(Clone, Debug)]
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub(crate) fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_the_requested_size_and_are_distinct() {
        let space = KeySpace::new(1000, 8).unwrap();
        let mut seen = std::collections::BTreeSet::new();
        let mut key = Vec::new();
        for i in 0..1000 {
            space.write_key(i, &mut key);
            assert_eq!(key.len(), 8);
            assert!(seen.insert(key.clone()));
        }
        space.write_key(42, &mut key);
        assert_eq!(key, b"k0000042");
        space.write_key(1042, &mut key);
        assert_eq!(key, b"k0000042", "indexes wrap around the key space");
    }

    #[test]
    fn key_space_rejects_keys_too_short_for_the_count() {
        assert!(KeySpace::new(0, 8).is_err());
        assert!(KeySpace::new(10_000, 4).is_err());
        assert!(KeySpace::new(10_000, 5).is_ok());
        assert!(KeySpace::new(1, 1).is_err());
        assert!(KeySpace::new(1, 2).is_ok());
    }

    #[test]
    fn value_bytes_are_deterministic_per_seed() {
        assert_eq!(value_bytes(256, 7), value_bytes(256, 7));
        assert_ne!(value_bytes(256, 7), value_bytes(256, 8));
        assert_eq!(value_bytes(256, 7).len(), 256);
    }

    #[test]
    fn next_f64_stays_in_the_unit_interval() {
        let mut rng = SplitMix64::new(0);
        for _ in 0..10_000 {
            let x = rng.next_f64();
            assert!((0.0..1.0).contains(&x));
        }
    }
}
