//! Per-path random streams.
//!
//! Every path of an ensemble owns one [`PathRng`], derived from `(seed, stream index)` alone, so a
//! path's numbers do not depend on which thread runs it or in which order. Sub-streams (for
//! example one for the gradient noise and one for a compressor, as MATH.md §10 asks) are derived
//! the same way with [`derive_stream`].

use rand::SeedableRng;

/// The generator every hot loop uses: Xoshiro256++ (rand's `SmallRng` on 64-bit targets).
/// One generator type keeps one code path in the hot loop.
pub type PathRng = rand::rngs::SmallRng;

/// SplitMix64 finaliser: a bijective mix with full avalanche, so neighbouring indices give
/// unrelated seeds.
#[inline]
pub fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The 64-bit key of stream `index` under `seed`. Keys of sub-streams are derived by applying
/// this again: `derive_key(derive_key(seed, path), agent)`.
#[inline]
pub fn derive_key(seed: u64, index: u64) -> u64 {
    splitmix64(splitmix64(seed) ^ splitmix64(index.wrapping_add(0x632B_E59B_D9B4_E019)))
}

/// The generator of stream `index` under `seed`.
#[inline]
pub fn derive_stream(seed: u64, index: u64) -> PathRng {
    PathRng::seed_from_u64(derive_key(seed, index))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let mut r1 = derive_stream(7, 3);
        let mut r2 = derive_stream(7, 3);
        let mut r3 = derive_stream(7, 4);
        let mut r4 = derive_stream(8, 3);
        let x1 = r1.next_u64();
        assert_eq!(x1, r2.next_u64());
        assert_ne!(x1, r3.next_u64());
        assert_ne!(x1, r4.next_u64());
    }
}
