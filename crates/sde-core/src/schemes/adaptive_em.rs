//! Euler–Maruyama on a state-adapted dyadic mesh inside each step, with Brownian-bridge
//! refinement: convergent where plain Euler–Maruyama blows up spuriously, for drift and diffusion
//! that grow superlinearly (an (L0, L1)-smooth loss with affine-variance noise: diffusion of
//! size `‖∇f‖ ~ |x|³`).
//!
//! A step of length `h` with increment `ΔW` is cut into dyadic pieces `h/2^j`. Before each piece
//! the coefficients at its left state `x` fix the depth the piece needs,
//! `j(x) = ⌈log₂ ρ(x)⌉` (clamped to `0..=max_depth`) with the rate
//! `ρ(x) = max(‖a‖ / (1 + ‖x‖), ‖b‖²_F / (1 + ‖x‖²))` (in the SDE's time unit): the local step
//! `h/2^j ≤ h/ρ(x)` moves the state by at most about `h` times its own size through the drift,
//! and by at most `√h` times its size in root-mean-square through the noise. The local step is
//! `h` times a function of the state, so halving `h` halves every local step: doubling the
//! substeps refines the whole mesh, and the orders below are orders in `h` (the mesh of Kelly &
//! Lord, "Adaptive Euler methods for stochastic systems with non-globally Lipschitz
//! coefficients", Numer. Algorithms 2022, and of Fang & Giles, Ann. Appl. Probab. 2020).
//!
//! A piece that must be refined is split at its midpoint by the Brownian bridge,
//! `ΔW₁ = ΔW/2 + √(H/4) ξ`, `ΔW₂ = ΔW − ΔW₁`, `ξ ~ N(0, I_m)` from the path's stream: the
//! increments on the refined mesh are exactly those of the Brownian path that produced `ΔW`
//! (jointly Gaussian with the right covariance), and the decision to split a piece depends only
//! on the state at its start, so the mesh is a sequence of stopping times. The sub-increments
//! keep mean 0, variance `H/2` each and zero covariance for two-point increments too, which is
//! what weak order 1 needs.
//!
//! Coefficients are evaluated at the piece's midpoint in time (and its starting state): an
//! explicitly time-dependent schedule `η_t` then costs `O(H³ η̈)` per piece instead of
//! `O(H² η̇)`, while the state enters as in Euler–Maruyama.
//!
//! Orders: strong 1/2 and weak 1 in `h` (Euler–Maruyama's, on a mesh proportional to `h`).
//! At `max_depth` the piece is taken as a plain Euler step: only states where `ρ > 2^max_depth`
//! reach it, which for the model SDEs of this project are far past any divergence threshold.
//! Cost: one drift and one diffusion evaluation per piece (the diffusion as a buffer, for its
//! Frobenius norm), one more per refinement; for state-dependent noise that the problem only
//! supplies as a product (`diffusion_mul`), the dense buffer costs `m` products.

use crate::error::SdeError;
use crate::increments::{Gaussian, Increments};
use crate::problem::Sde;
use crate::scheme::{Scheme, SchemeInfo, Step, StepBuffers};

/// Euler–Maruyama with state-adapted dyadic substeps and Brownian-bridge refinement.
#[derive(Clone, Copy, Debug)]
pub struct AdaptiveEm {
    /// Deepest refinement of one step: pieces no shorter than `h / 2^max_depth`.
    pub max_depth: u32,
}

impl Default for AdaptiveEm {
    fn default() -> Self {
        AdaptiveEm { max_depth: 12 }
    }
}

/// Buffers of one adaptive path: coefficients and a stack of pending pieces (at most one per
/// depth, so `max_depth + 1` increments).
pub struct AdaptiveEmWorkspace {
    c: StepBuffers,
    /// Pending pieces: increments, `m` values each, and their depths.
    stack: Vec<f64>,
    depths: Vec<u32>,
    xi: Vec<f64>,
}

impl AdaptiveEm {
    /// Depth a piece starting at `x` with coefficients `a`, `b` needs.
    #[inline]
    fn needed_depth(&self, x: &[f64], a: &[f64], b: &[f64]) -> u32 {
        let x2: f64 = x.iter().map(|v| v * v).sum();
        let a2: f64 = a.iter().map(|v| v * v).sum();
        let b2: f64 = b.iter().map(|v| v * v).sum();
        let rho = (a2.sqrt() / (1.0 + x2.sqrt())).max(b2 / (1.0 + x2));
        if !(rho > 1.0) {
            // Also NaN: a non-finite state is left to the caller's divergence check.
            return 0;
        }
        let j = rho.log2().ceil();
        if j >= self.max_depth as f64 {
            self.max_depth
        } else {
            j as u32
        }
    }
}

impl Scheme for AdaptiveEm {
    type Workspace = AdaptiveEmWorkspace;

    fn info(&self) -> SchemeInfo {
        SchemeInfo {
            name: "adaptive_em",
            strong_order: Some(0.5),
            weak_order: 1.0,
        }
    }
    fn validate(&self) -> Result<(), SdeError> {
        if self.max_depth > 30 {
            return Err(SdeError::invalid(
                "max_depth",
                self.max_depth,
                "at most 30 (a step cut into more than 2^30 pieces)",
            ));
        }
        Ok(())
    }
    fn workspace<S: Sde + ?Sized>(&self, sde: &S) -> AdaptiveEmWorkspace {
        let m = sde.noise().noise_dim(sde.dim());
        let levels = self.max_depth as usize + 1;
        AdaptiveEmWorkspace {
            c: StepBuffers::new(sde),
            stack: vec![0.0; levels * m],
            depths: vec![0; levels],
            xi: vec![0.0; m],
        }
    }
    fn step<S: Sde + ?Sized>(
        &self,
        sde: &S,
        x: &mut [f64],
        st: Step<'_>,
        ws: &mut AdaptiveEmWorkspace,
    ) {
        let Step { t, h, dw, rng } = st;
        let c = &mut ws.c;
        let m = dw.len();
        let noise = sde.noise();
        ws.stack[..m].copy_from_slice(dw);
        ws.depths[0] = 0;
        let mut top = 1usize;
        let mut s = t;
        while top > 0 {
            top -= 1;
            let j = ws.depths[top];
            let piece = h / f64::from(1u32 << j);
            let mid = s + 0.5 * piece;
            sde.drift(mid, x, &mut c.a, &mut c.scratch);
            sde.diffusion(mid, x, &mut c.b, &mut c.scratch);
            let need = self.needed_depth(x, &c.a, &c.b);
            if need > j {
                // Split [s, s + piece] at its midpoint: the second half goes to slot `top`,
                // the first above it (processed next).
                Gaussian.draw(rng, 0.25 * piece, &mut ws.xi);
                let (lower, upper) = ws.stack.split_at_mut((top + 1) * m);
                let slot = &mut lower[top * m..];
                let above = &mut upper[..m];
                for ((w, first), z) in slot.iter_mut().zip(above.iter_mut()).zip(&ws.xi) {
                    *first = 0.5 * *w + z;
                    *w -= *first;
                }
                ws.depths[top] = j + 1;
                ws.depths[top + 1] = j + 1;
                top += 2;
                continue;
            }
            let inc = &ws.stack[top * m..(top + 1) * m];
            noise.apply(&c.b, inc, &mut c.bdw);
            for ((xi, ai), gi) in x.iter_mut().zip(&c.a).zip(&c.bdw) {
                *xi += ai * piece + gi;
            }
            s += piece;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::noise::NoiseShape;
    use crate::problem::SdeFn;
    use crate::rng::derive_stream;
    use crate::schemes::EulerMaruyama;
    use crate::stats::{fit_order, Welford};

    /// `X_t = tan(ε W_t)` solves `dX = ε²X(1 + X²) dt + ε(1 + X²) dW` (Itô) until `|ε W|`
    /// reaches π/2: cubic drift and quadratic diffusion, with the exact solution a function of
    /// `W_T` alone (so the bridge points the scheme draws inside a step do not enter the
    /// reference). With `ε² T = 0.09` the exact process explodes before T with probability
    /// `≤ 4 P(N > π/(2·0.3)) < 1e-6`; `ε = 1.2` puts `ρ ≥ 1.44`, so every step is refined.
    fn tan_bm(eps: f64) -> impl Sde {
        SdeFn::new(
            1,
            NoiseShape::Scalar,
            move |_t, x: &[f64], a: &mut [f64]| a[0] = eps * eps * x[0] * (1.0 + x[0] * x[0]),
            move |_t, x: &[f64], b: &mut [f64]| b[0] = eps * (1.0 + x[0] * x[0]),
        )
        .unwrap()
    }

    /// Per path: `|arctan X_T^h − ε W_T|` capped at 1 (strong, in probability; a blown-up path
    /// counts 1) and `arctan(X_T^h)² − ε² W_T²` (weak: `E arctan(X_T)² = ε² T`, paired with its
    /// own `W_T` so the difference has a small variance).
    fn errors<Sch: Scheme>(
        scheme: &Sch,
        eps: f64,
        horizon: f64,
        steps: usize,
        paths: u64,
    ) -> (Welford, Welford) {
        let sde = tan_bm(eps);
        let mut ws = scheme.workspace(&sde);
        let h = horizon / steps as f64;
        let (mut strong, mut weak) = (Welford::default(), Welford::default());
        let mut dw = [0.0];
        for p in 0..paths {
            let mut rng = derive_stream(2026, p);
            let mut x = [0.0];
            let mut w = 0.0;
            for i in 0..steps {
                Gaussian.draw(&mut rng, h, &mut dw);
                w += dw[0];
                scheme.step(
                    &sde,
                    &mut x,
                    Step::new(i as f64 * h, h, &dw, &mut rng),
                    &mut ws,
                );
            }
            let y = if x[0].is_finite() {
                x[0].atan()
            } else {
                f64::NAN
            };
            strong.push(if y.is_finite() {
                (y - eps * w).abs().min(1.0)
            } else {
                1.0
            });
            weak.push(if y.is_finite() {
                y * y - eps * eps * w * w
            } else {
                // Counted as the largest possible difference, so a blow-up cannot hide.
                std::f64::consts::FRAC_PI_2.powi(2)
            });
        }
        (strong, weak)
    }

    #[test]
    fn strong_order_one_half_and_weak_order_one_on_tan_of_brownian_motion() {
        let (eps, horizon) = (1.2, 1.0 / 16.0);
        let steps = [4usize, 8, 16, 32, 64];
        let paths = 20_000;
        let mut hs = Vec::new();
        let (mut se, mut we, mut we_se) = (Vec::new(), Vec::new(), Vec::new());
        for &n in &steps {
            let (s, w) = errors(&AdaptiveEm::default(), eps, horizon, n, paths);
            hs.push(horizon / n as f64);
            se.push(s.mean);
            we.push(w.mean.abs());
            we_se.push(w.std_err());
        }
        // The weak errors are resolved: each at least 5 standard errors from 0, so their slope
        // is the bias's, not the Monte Carlo noise's.
        for (e, s) in we.iter().zip(&we_se) {
            assert!(*e > 5.0 * s, "weak error {e} not resolved (SE {s})");
        }
        let strong = fit_order(&hs, &se).expect("five finite errors");
        let weak = fit_order(&hs, &we).expect("five finite errors");
        assert!(
            (strong.slope - 0.5).abs() < 0.1,
            "strong order {} (errors {se:?})",
            strong.slope
        );
        assert!(
            (weak.slope - 1.0).abs() < 0.2,
            "weak order {} (errors {we:?})",
            weak.slope
        );
    }

    #[test]
    fn converges_with_order_one_where_euler_maruyama_overflows_on_the_cubic_ode() {
        // x' = −x³ from x0 = 10: x(1) = 10/√201. Euler's step overshoots once h x² > 2, so at
        // h ≥ 1/32 plain Euler–Maruyama leaves every bound; the adaptive mesh (ρ = |x|³/(1+|x|)
        // ≈ 91 at the start) converges, and its error halves with h (order 1; h = 1/2 is
        // still pre-asymptotic, so the fit starts at 1/4).
        let sde = SdeFn::new(
            1,
            NoiseShape::Scalar,
            |_t, x: &[f64], a: &mut [f64]| a[0] = -x[0] * x[0] * x[0],
            |_t, _x: &[f64], b: &mut [f64]| b[0] = 0.0,
        )
        .unwrap();
        let exact = 10.0 / 201f64.sqrt();
        fn solve<Sch: Scheme, S: Sde>(scheme: &Sch, sde: &S, n: usize) -> f64 {
            let mut ws = scheme.workspace(sde);
            let mut rng = derive_stream(1, 1);
            let mut x = [10.0];
            let h = 1.0 / n as f64;
            for i in 0..n {
                scheme.step(
                    sde,
                    &mut x,
                    Step::new(i as f64 * h, h, &[0.0], &mut rng),
                    &mut ws,
                );
            }
            x[0]
        }
        let (mut hs, mut errs) = (Vec::new(), Vec::new());
        for n in [4usize, 8, 16, 32, 64] {
            let x_em = solve(&EulerMaruyama, &sde, n);
            // h x0² = 100/n > 2 up to n = 32.
            assert!(
                n > 32 || !x_em.is_finite() || (x_em - exact).abs() > 1e3,
                "Euler at n = {n}: {x_em}"
            );
            hs.push(1.0 / n as f64);
            errs.push((solve(&AdaptiveEm::default(), &sde, n) - exact).abs());
        }
        let fit = fit_order(&hs, &errs).expect("five finite errors");
        assert!(
            (fit.slope - 1.0).abs() < 0.1 && errs[4] < 1e-2,
            "order {} (errors {errs:?})",
            fit.slope
        );
    }

    #[test]
    fn refined_increments_sum_to_the_step_increment() {
        // Additive noise with a huge coefficient forces every step to max depth; X_T − X_0 must
        // then be σ times the sum of the given increments (the bridge splits, never adds).
        let sigma = 1e3;
        let sde = SdeFn::new(
            2,
            NoiseShape::Diagonal,
            |_t, _x: &[f64], a: &mut [f64]| a.fill(0.0),
            move |_t, _x: &[f64], b: &mut [f64]| b.fill(sigma),
        )
        .unwrap();
        let scheme = AdaptiveEm { max_depth: 6 };
        let mut ws = scheme.workspace(&sde);
        let mut rng = derive_stream(5, 0);
        let mut x = [0.0, 0.0];
        let mut total = [0.0, 0.0];
        let mut dw = [0.0, 0.0];
        for i in 0..10 {
            Gaussian.draw(&mut rng, 0.1, &mut dw);
            total[0] += dw[0];
            total[1] += dw[1];
            scheme.step(
                &sde,
                &mut x,
                Step::new(i as f64 * 0.1, 0.1, &dw, &mut rng),
                &mut ws,
            );
        }
        for k in 0..2 {
            assert!(
                (x[k] - sigma * total[k]).abs() < 1e-9 * sigma,
                "{} vs {}",
                x[k],
                sigma * total[k]
            );
        }
    }

    #[test]
    fn bridge_increments_have_the_brownian_law() {
        // b(t) = 30 on the first half of one step of h = 1 and 0 on the second (ρ = 900, so
        // the step is refined to depth 10 and the coefficient is read at each piece's
        // midpoint): X_1 = 30 W_(1/2), whose second moment is 900/2 only if the bridge
        // points have the Brownian law.
        let sde = SdeFn::new(
            1,
            NoiseShape::Scalar,
            |_t, _x: &[f64], a: &mut [f64]| a[0] = 0.0,
            |t, _x: &[f64], b: &mut [f64]| b[0] = if t <= 0.5 { 30.0 } else { 0.0 },
        )
        .unwrap();
        let scheme = AdaptiveEm::default();
        let mut ws = scheme.workspace(&sde);
        let mut var = Welford::default();
        let mut dw = [0.0];
        let paths = 40_000;
        for p in 0..paths {
            let mut rng = derive_stream(77, p);
            let mut x = [0.0];
            Gaussian.draw(&mut rng, 1.0, &mut dw);
            scheme.step(&sde, &mut x, Step::new(0.0, 1.0, &dw, &mut rng), &mut ws);
            var.push(x[0] * x[0] / 900.0);
        }
        // E = 1/2; the SE of a mean of χ²₁/2 variables is sqrt(2/paths)/2.
        let se = (2.0 / paths as f64).sqrt() / 2.0;
        assert!(
            (var.mean - 0.5).abs() < 4.0 * se,
            "E W_(1/2)^2 = {} (SE {se})",
            var.mean
        );
    }
}
