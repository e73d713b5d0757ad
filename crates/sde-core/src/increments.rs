//! Brownian increments: where the randomness of a step comes from.
//!
//! A weak scheme only needs increments whose low moments match the Gaussian ones, and one
//! random bit is far cheaper than one normal variate (WORKLOADS.md: 1.6e9 u64/s against 3.7e8
//! normals/s). [`TwoPoint`] matches moments up to order 3 (enough for weak order 1),
//! [`ThreePoint`] up to order 5 (weak order 2). [`Gaussian`] is exact and the only choice for
//! strong (pathwise) convergence. [`Refined`] replays a path on a coarser grid by summing the
//! increments of a finer one, which is how strong-order tests compare step sizes on one path.

use crate::rng::PathRng;
use rand::{Rng, RngExt};
use rand_distr::StandardNormal;

/// A source of increments `ΔW ∈ R^m` over a step of length `h`.
pub trait Increments: Sync + Send + Clone {
    /// Name used in errors and results.
    const NAME: &'static str;
    /// The distribution of one component (for `sdelab list`).
    const SUMMARY: &'static str;
    /// Highest weak order a scheme can reach with these increments.
    const WEAK_ORDER: f64;
    /// Whether the increments are exact Brownian increments (required for strong convergence).
    const EXACT: bool;
    /// Fills `dw` with one increment over a step of length `h`.
    fn draw(&self, rng: &mut PathRng, h: f64, dw: &mut [f64]);
    /// Random numbers one [`Increments::draw`] of `m` components takes from the generator: normals
    /// for Gaussian increments, 64-bit words for the discrete ones (a study's cost budget).
    fn random_numbers(&self, m: usize) -> u64 {
        m as u64
    }
}

/// Exact Gaussian increments, `ΔW_j ~ N(0, h)` (ziggurat normals).
#[derive(Clone, Copy, Debug, Default)]
pub struct Gaussian;

impl Increments for Gaussian {
    const NAME: &'static str = "gaussian";
    const SUMMARY: &'static str = "N(0, h)";
    const WEAK_ORDER: f64 = f64::INFINITY;
    const EXACT: bool = true;
    #[inline]
    fn draw(&self, rng: &mut PathRng, h: f64, dw: &mut [f64]) {
        let s = h.sqrt();
        // Two normals per iteration (drawn in index order, so the same numbers as one at a
        // time): the loop state is spilled around the ziggurat's rare exp/log calls, and
        // unrolling halves that traffic (about 2% of an EM step for d = 10).
        let mut pairs = dw.chunks_exact_mut(2);
        for pair in &mut pairs {
            let z0: f64 = rng.sample(StandardNormal);
            let z1: f64 = rng.sample(StandardNormal);
            pair[0] = s * z0;
            pair[1] = s * z1;
        }
        for w in pairs.into_remainder() {
            let z: f64 = rng.sample(StandardNormal);
            *w = s * z;
        }
    }
}

/// Two-point increments, `ΔW_j = ±sqrt(h)` with probability 1/2 each: one random bit each.
#[derive(Clone, Copy, Debug, Default)]
pub struct TwoPoint;

impl Increments for TwoPoint {
    const NAME: &'static str = "two_point";
    const SUMMARY: &'static str = "+-sqrt(h) w.p. 1/2 each";
    const WEAK_ORDER: f64 = 1.0;
    const EXACT: bool = false;
    #[inline]
    fn draw(&self, rng: &mut PathRng, h: f64, dw: &mut [f64]) {
        let s = h.sqrt();
        for block in dw.chunks_mut(64) {
            let mut bits = rng.next_u64();
            for w in block.iter_mut() {
                *w = if bits & 1 == 1 { s } else { -s };
                bits >>= 1;
            }
        }
    }
    fn random_numbers(&self, m: usize) -> u64 {
        m.div_ceil(64) as u64
    }
}

/// Three-point increments, `ΔW_j = ±sqrt(3h)` with probability 1/6 each and `0` with
/// probability 2/3: moments match `N(0, h)` up to order 5.
#[derive(Clone, Copy, Debug, Default)]
pub struct ThreePoint;

impl ThreePoint {
    /// Maps 32 uniform bits to {−1, 0, +1} with probabilities 1/6, 2/3, 1/6. The thresholds
    /// are floor(2^32/6) and 2^32 − floor(2^32/6); the bias of that rounding is below 1e-9.
    #[inline]
    fn symbol(u: u32) -> f64 {
        const SIXTH: u32 = (u32::MAX / 6) + 1;
        if u < SIXTH {
            -1.0
        } else if u > u32::MAX - SIXTH {
            1.0
        } else {
            0.0
        }
    }
}

impl Increments for ThreePoint {
    const NAME: &'static str = "three_point";
    const SUMMARY: &'static str = "+-sqrt(3h) w.p. 1/6 each, 0 w.p. 2/3";
    const WEAK_ORDER: f64 = 2.0;
    const EXACT: bool = false;
    #[inline]
    fn draw(&self, rng: &mut PathRng, h: f64, dw: &mut [f64]) {
        let s = (3.0 * h).sqrt();
        for pair in dw.chunks_mut(2) {
            let u = rng.next_u64();
            pair[0] = s * Self::symbol(u as u32);
            if let Some(w) = pair.get_mut(1) {
                *w = s * Self::symbol((u >> 32) as u32);
            }
        }
    }
    fn random_numbers(&self, m: usize) -> u64 {
        m.div_ceil(2) as u64
    }
}

/// Replays the path of `inner` drawn on a grid `factor` times finer: each increment over `h`
/// is the sum of `factor` consecutive increments over `h / factor`, drawn in the same order as
/// a run at the fine step would draw them. Running a scheme at step `h` with `Refined { factor }`
/// and at step `h / factor` with `inner` therefore follows the same Brownian path.
#[derive(Clone, Copy, Debug)]
pub struct Refined<I> {
    pub inner: I,
    pub factor: usize,
}

impl<I: Increments> Refined<I> {
    pub fn new(inner: I, factor: usize) -> Self {
        Refined {
            inner,
            factor: factor.max(1),
        }
    }
}

impl<I: Increments> Increments for Refined<I> {
    const NAME: &'static str = I::NAME;
    const SUMMARY: &'static str = I::SUMMARY;
    const WEAK_ORDER: f64 = I::WEAK_ORDER;
    const EXACT: bool = I::EXACT;
    #[inline]
    fn draw(&self, rng: &mut PathRng, h: f64, dw: &mut [f64]) {
        let hf = h / self.factor as f64;
        // The first sub-increment lands in dw; the others are added component by component,
        // drawing them into a small stack block so no allocation is needed for m ≤ 64.
        self.inner.draw(rng, hf, dw);
        let mut block = [0.0f64; 64];
        for _ in 1..self.factor {
            for chunk in dw.chunks_mut(64) {
                let tmp = &mut block[..chunk.len()];
                self.inner.draw(rng, hf, tmp);
                for (w, t) in chunk.iter_mut().zip(tmp.iter()) {
                    *w += t;
                }
            }
        }
    }
    fn random_numbers(&self, m: usize) -> u64 {
        let blocks: u64 = (0..m)
            .step_by(64)
            .map(|s| self.inner.random_numbers((m - s).min(64)))
            .sum();
        self.inner.random_numbers(m) + (self.factor as u64 - 1) * blocks
    }
}

/// Code generic over the increments, run by [`IncrementKind::visit`] with the concrete type.
pub trait IncrementVisitor {
    type Output;
    fn visit<I: Increments>(self, increments: I) -> Self::Output;
}

kind_registry! {
    /// The increment kinds, for choosing at run time (configuration files).
    IncrementKind visited by IncrementVisitor {
        /// Exact Gaussian increments ([`Gaussian`]).
        Gaussian = "gaussian" => Gaussian;
        /// `±sqrt(h)` ([`TwoPoint`]).
        TwoPoint = "two_point" => TwoPoint;
        /// `±sqrt(3h)` or 0 ([`ThreePoint`]).
        ThreePoint = "three_point" => ThreePoint;
    }
}

impl IncrementKind {
    /// [`Increments::WEAK_ORDER`] of the kind's type.
    pub fn weak_order(self) -> f64 {
        self.visit(Constants).0
    }

    /// [`Increments::EXACT`] of the kind's type.
    pub fn exact(self) -> bool {
        self.visit(Constants).1
    }

    /// [`Increments::SUMMARY`] of the kind's type, for `sdelab list`.
    pub fn summary(&self) -> &'static str {
        self.visit(Constants).2
    }
}

/// Reads a kind's [`Increments`] constants.
struct Constants;

impl IncrementVisitor for Constants {
    type Output = (f64, bool, &'static str);
    fn visit<I: Increments>(self, _: I) -> Self::Output {
        (I::WEAK_ORDER, I::EXACT, I::SUMMARY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::derive_stream;

    fn moments<I: Increments>(inc: I, n: usize) -> [f64; 4] {
        let mut rng = derive_stream(11, 0);
        let mut dw = [0.0; 3];
        let mut m = [0.0; 4];
        for _ in 0..n {
            inc.draw(&mut rng, 1.0, &mut dw);
            for w in dw {
                m[0] += w;
                m[1] += w * w;
                m[2] += w * w * w;
                m[3] += w * w * w * w;
            }
        }
        m.map(|v| v / (3 * n) as f64)
    }

    #[test]
    fn simplified_increments_match_gaussian_moments() {
        // With n = 2e5 draws × 3 components the standard error of the k-th sample moment is
        // sqrt(E w^{2k} / N): 1.3e-3 for the mean, 1.8e-3 for the second, 5e-3 for the
        // fourth (E w^8 = 105 for N(0,1), 9 for ThreePoint). Margins are 5 SE.
        let n = 200_000;
        for m in [moments(Gaussian, n), moments(ThreePoint, n)] {
            assert!(m[0].abs() < 6.5e-3, "{m:?}");
            assert!((m[1] - 1.0).abs() < 9e-3, "{m:?}");
            assert!(m[2].abs() < 2.5e-2, "{m:?}");
            assert!((m[3] - 3.0).abs() < 0.1, "{m:?}");
        }
        let m = moments(TwoPoint, n);
        assert!(m[0].abs() < 6.5e-3);
        assert_eq!(m[1], 1.0);
        assert!(m[2].abs() < 6.5e-3);
    }

    #[test]
    fn gaussian_draws_normals_in_index_order() {
        // The unrolled loop must give the numbers of one `StandardNormal` per component.
        for m in [1, 2, 5, 10] {
            let mut rng = derive_stream(4, 2);
            let mut reference = derive_stream(4, 2);
            let mut dw = vec![0.0; m];
            for _ in 0..50 {
                Gaussian.draw(&mut rng, 0.25, &mut dw);
                for w in &dw {
                    let z: f64 = reference.sample(StandardNormal);
                    assert_eq!(w.to_bits(), (0.5 * z).to_bits());
                }
            }
        }
    }

    #[test]
    fn refined_replays_the_fine_path() {
        let inner = Gaussian;
        let mut fine = derive_stream(3, 9);
        let mut coarse = derive_stream(3, 9);
        let mut total_fine = [0.0; 2];
        let mut dw = [0.0; 2];
        for _ in 0..8 {
            inner.draw(&mut fine, 0.125, &mut dw);
            total_fine[0] += dw[0];
            total_fine[1] += dw[1];
        }
        let refined = Refined::new(inner, 4);
        let mut total_coarse = [0.0; 2];
        for _ in 0..2 {
            refined.draw(&mut coarse, 0.5, &mut dw);
            total_coarse[0] += dw[0];
            total_coarse[1] += dw[1];
        }
        for j in 0..2 {
            assert!((total_fine[j] - total_coarse[j]).abs() < 1e-12);
        }
    }

    /// The words the discrete increments report are the words they take from the generator:
    /// after a draw the stream continues where `random_numbers` raw draws would leave it.
    #[test]
    fn discrete_increments_count_the_words_they_draw() {
        fn check<I: Increments>(inc: I, m: usize) {
            let mut a = derive_stream(5, m as u64);
            let mut b = a.clone();
            let mut dw = vec![0.0; m];
            inc.draw(&mut a, 0.1, &mut dw);
            for _ in 0..inc.random_numbers(m) {
                b.next_u64();
            }
            assert_eq!(a.next_u64(), b.next_u64(), "{} with m = {m}", I::NAME);
        }
        for m in [1, 2, 3, 10, 63, 64, 65, 130] {
            check(TwoPoint, m);
            check(ThreePoint, m);
            check(Refined::new(TwoPoint, 3), m);
            check(Refined::new(ThreePoint, 2), m);
        }
        assert_eq!(Gaussian.random_numbers(7), 7);
        assert_eq!(Refined::new(Gaussian, 4).random_numbers(70), 280);
    }

    #[test]
    fn registry_names_are_the_types_names() {
        struct Name;
        impl IncrementVisitor for Name {
            type Output = &'static str;
            fn visit<I: Increments>(self, _: I) -> &'static str {
                I::NAME
            }
        }
        for k in IncrementKind::ALL {
            assert_eq!(k.visit(Name), k.name());
        }
        assert_eq!(IncrementKind::TwoPoint.weak_order(), TwoPoint::WEAK_ORDER);
        assert!(IncrementKind::Gaussian.exact() && !IncrementKind::ThreePoint.exact());
    }
}
