//! The test kit (feature `testing`), after Julia's DiffEqDevTools: convergence harnesses that
//! measure a scheme's order on the analytic problems of [`crate::problems`] and assertions that
//! compare the measured order with the order the scheme DECLARES ([`Scheme::strong_order`],
//! [`Scheme::weak_order`]). A new scheme gets its convergence tests from one line per problem:
//!
//! ```
//! use sde_core::testing::*;
//! use sde_core::*;
//! let gbm = GeometricBrownianMotion::new(1.0, 0.8).unwrap();
//! // Exact expectations of the chain (no Monte Carlo): weak order 1 within 0.05.
//! check_chain_order("EM, GBM", &gbm, &EulerMaruyama, &TWO_POINT, 0, &[1.0]);
//! ```
//!
//! - **Strong order** ([`check_strong`], [`strong_errors`]): every step size gets its own
//!   Brownian paths and the exact solution ([`ExactSolution`]) is evaluated at the `W_T` the run
//!   drew, so run and exact solution follow one path; the order is the least-squares slope of
//!   `log sqrt(E |X_T^h − X_T|²)` on `log h` with its 95% interval ([`crate::fit_order`]).
//! - **Weak order, exactly** ([`chain_moments`], [`check_chain_order`]): for a linear SDE each
//!   step is an affine map whose coefficients depend only on the increment (and on the auxiliary
//!   random bits of the scheme); with increments of finite support ([`TWO_POINT`],
//!   [`THREE_POINT`]) the mean and second moment of the chain follow exactly by averaging over
//!   the support, and are compared with the closed forms of [`Moments`].
//! - **Assertions** ([`assert_order`], [`assert_order_ci`], [`assert_local_order`]) take the
//!   declared order and a margin, so a test states how far a fit may be from the declared order.
//!
//! Everything here panics on failure: it is meant for tests.

use crate::ensemble::{Ensemble, EnsembleStats, PathInput, PathSimulation};
use crate::increments::{Gaussian, Increments};
use crate::problem::Sde;
pub use crate::problems::*;
use crate::rng::{derive_stream, PathRng};
use crate::scheme::{Scheme, Step};
use crate::solver::{Solver, SolverWorkspace};
use crate::stats::{fit_order, LineFit};
use rand::Rng;

// ---------------------------------------------------------------------------------------------
// Assertions against the declared order
// ---------------------------------------------------------------------------------------------

/// How far a fitted slope may be from the declared order: `declared − below ≤ slope <
/// declared + above`. A single `f64` is symmetric; a pair is `(below, above)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Margin {
    pub below: f64,
    pub above: f64,
}

impl From<f64> for Margin {
    fn from(m: f64) -> Self {
        Margin { below: m, above: m }
    }
}

impl From<(f64, f64)> for Margin {
    fn from((below, above): (f64, f64)) -> Self {
        Margin { below, above }
    }
}

impl Margin {
    /// Whether `slope` is within this margin of `order`.
    pub fn admits(&self, slope: f64, order: f64) -> bool {
        (order - self.below..order + self.above).contains(&slope)
    }
}

/// The fitted slope is within `margin` of the `declared` order (for noise-free error curves,
/// whose "interval" only measures curvature).
#[track_caller]
pub fn assert_order(label: &str, fit: &LineFit, declared: f64, margin: impl Into<Margin>) {
    let margin = margin.into();
    assert!(
        margin.admits(fit.slope, declared),
        "{label}: slope {} not within {margin:?} of the declared order {declared}: {fit:?}",
        fit.slope
    );
}

/// The 95% interval of the fit contains the `declared` order and its half-width is below
/// `max_half_width` (for Monte Carlo error curves, whose interval measures the noise).
#[track_caller]
pub fn assert_order_ci(label: &str, fit: &LineFit, declared: f64, max_half_width: f64) {
    assert!(
        fit.contains(declared),
        "{label}: declared order {declared} outside {fit:?}"
    );
    let half = 0.5 * (fit.slope_ci95.1 - fit.slope_ci95.0);
    assert!(half < max_half_width, "{label}: interval too wide: {fit:?}");
}

/// The local order `log2(e(2h)/e(h))` of the two finest of errors at halving step sizes is
/// within `margin` of the `declared` order.
#[track_caller]
pub fn assert_local_order(label: &str, errors: &[f64], declared: f64, margin: f64) -> f64 {
    let n = errors.len();
    assert!(n >= 2, "{label}: a local order needs two errors");
    let local = (errors[n - 2] / errors[n - 1]).log2();
    assert!(
        (local - declared).abs() < margin,
        "{label}: local order {local} for declared order {declared}: {errors:?}"
    );
    local
}

/// The strong order a scheme declares; panics for schemes that declare none.
#[track_caller]
pub fn declared_strong_order<Sch: Scheme>(scheme: &Sch) -> f64 {
    scheme
        .strong_order()
        .unwrap_or_else(|| panic!("{} declares no strong order", scheme.name()))
}

/// `1.00e-3 2.00e-3 …`, for printing error curves.
pub fn fmt_list(v: &[f64]) -> String {
    v.iter()
        .map(|x| format!("{x:.2e}"))
        .collect::<Vec<_>>()
        .join(" ")
}

// ---------------------------------------------------------------------------------------------
// Strong errors
// ---------------------------------------------------------------------------------------------

/// Squared errors `|X_T^h − X_T|²` at several step counts on `[0, t_end]`, each on its own
/// sub-stream of the path's stream; `W_T` is accumulated from the increments the solver drew
/// (`SolverWorkspace::dw` after each step), so the exact solution follows the path of the run.
pub struct StrongErrors<'a, P, Sch> {
    problem: &'a P,
    solver: Solver<&'a P, Sch, Gaussian>,
    steps: Vec<usize>,
    x0: Vec<f64>,
    t_end: f64,
}

impl<'a, P: Sde + ExactSolution, Sch: Scheme> StrongErrors<'a, P, Sch> {
    /// Panics when the scheme rejects the problem.
    pub fn new(problem: &'a P, scheme: Sch, x0: &[f64], t_end: f64, steps: &[usize]) -> Self {
        StrongErrors {
            problem,
            solver: Solver::new(problem, scheme, Gaussian).expect("scheme accepts the problem"),
            steps: steps.to_vec(),
            x0: x0.to_vec(),
            t_end,
        }
    }
}

/// The buffers of one run of [`PathBuffers::run`]: the solver's, the state `x` and the sum `w`
/// of the increments drawn (`W_T`, for an exact solution or a control variate on the same path).
pub struct PathBuffers<W> {
    pub solver: SolverWorkspace<W>,
    pub x: Vec<f64>,
    pub w: Vec<f64>,
}

impl<W> PathBuffers<W> {
    pub fn new<P: Sde, Sch: Scheme<Workspace = W>, I: Increments>(
        solver: &Solver<P, Sch, I>,
        x0: &[f64],
    ) -> Self {
        let sde = solver.sde();
        PathBuffers {
            solver: solver.workspace(),
            x: x0.to_vec(),
            w: vec![0.0; sde.noise().noise_dim(sde.dim())],
        }
    }

    /// `n` steps of size `h` from `x0` at time 0 on `rng`: `X_{nh}` in `x`, `W_{nh}` in `w`.
    pub fn run<P: Sde, Sch: Scheme<Workspace = W>, I: Increments>(
        &mut self,
        solver: &Solver<P, Sch, I>,
        x0: &[f64],
        n: usize,
        h: f64,
        rng: &mut PathRng,
    ) {
        self.x.copy_from_slice(x0);
        self.w.fill(0.0);
        for i in 0..n {
            solver.step(i as f64 * h, h, &mut self.x, rng, &mut self.solver);
            for (w, d) in self.w.iter_mut().zip(&self.solver.dw) {
                *w += d;
            }
        }
    }
}

impl<P: Sde + ExactSolution, Sch: Scheme> PathSimulation for StrongErrors<'_, P, Sch> {
    type Workspace = PathBuffers<Sch::Workspace>;

    fn workspace(&self) -> Self::Workspace {
        PathBuffers::new(&self.solver, &self.x0)
    }
    fn n_save(&self) -> usize {
        1
    }
    fn n_observables(&self) -> usize {
        self.steps.len()
    }
    fn simulate(&self, path: PathInput<'_>, ws: &mut Self::Workspace, out: &mut [f64]) -> usize {
        let rng = path.rng;
        let key = rng.next_u64();
        for (l, &n) in self.steps.iter().enumerate() {
            let mut r = derive_stream(key, l as u64);
            ws.run(&self.solver, &self.x0, n, self.t_end / n as f64, &mut r);
            let exact = self
                .problem
                .exact(self.t_end, &self.x0, &ws.w)
                .expect("the problem has an exact solution");
            out[l] = ws.x.iter().zip(&exact).map(|(a, b)| (a - b).powi(2)).sum();
        }
        usize::from(out.iter().all(|v| v.is_finite()))
    }
}

/// The step counts and paths of [`check_strong`] on `[0, 1]`: `h = 2^-4 .. 2^-9`.
pub const STRONG_STEPS: [usize; 6] = [16, 32, 64, 128, 256, 512];
pub const STRONG_PATHS: u64 = 8_000;

/// Root-mean-square strong errors of `scheme` on `problem` from `x0` over `[0, 1]` at
/// [`STRONG_STEPS`] with [`STRONG_PATHS`] independent paths per step size (seed `seed`), with
/// their step sizes. Each mean squared error must be known to 15% (one standard error), i.e.
/// each `log error` to 7.5%, and no path may diverge.
pub fn strong_errors<P: Sde + ExactSolution, Sch: Scheme>(
    label: &str,
    problem: &P,
    scheme: Sch,
    x0: &[f64],
    seed: u64,
) -> (Vec<f64>, Vec<f64>) {
    let sim = StrongErrors::new(problem, scheme, x0, 1.0, &STRONG_STEPS);
    let stats = Ensemble::new(STRONG_PATHS, seed).unwrap().run(&sim);
    assert_eq!(stats.diverged_total(), 0, "{label}");
    let mut h = Vec::new();
    let mut err = Vec::new();
    for (l, &n) in STRONG_STEPS.iter().enumerate() {
        let s = stats.summary(0, l);
        assert!(
            s.std_err < 0.15 * s.mean,
            "{label}: mean squared error at h = 1/{n} not resolved: {s:?}"
        );
        h.push(1.0 / n as f64);
        err.push(s.mean.sqrt());
    }
    (h, err)
}

/// Fits the strong order of `scheme` on `problem` ([`strong_errors`]) and checks it against the
/// scheme's declared strong order: the 95% interval of the slope contains it and its half-width
/// is below 0.15. The points are independent, so their Monte Carlo noise is what the residuals,
/// hence the interval, measure (typical half-widths 0.01-0.04). The interval is a 95% one: about
/// one fit in twenty misses by construction, which is why the seeds are fixed. The remaining
/// pre-asymptotic bias on this range is below 0.011 for the schemes of this crate on GBM (exact
/// computation in the convergence tests: derivative-free Milstein is the slowest).
pub fn check_strong<P: Sde + ExactSolution, Sch: Scheme>(
    label: &str,
    problem: &P,
    scheme: Sch,
    x0: &[f64],
    seed: u64,
) -> LineFit {
    let order = declared_strong_order(&scheme);
    let (h, err) = strong_errors(label, problem, scheme, x0, seed);
    let fit = fit_order(&h, &err).unwrap();
    println!(
        "strong  {label:<44} slope {:.3}  95% CI [{:.3}, {:.3}]  errors {}",
        fit.slope,
        fit.slope_ci95.0,
        fit.slope_ci95.1,
        fmt_list(&err)
    );
    assert_order_ci(label, &fit, order, 0.15);
    fit
}

// ---------------------------------------------------------------------------------------------
// Exact expectations of the chain
// ---------------------------------------------------------------------------------------------

/// Two-point increments: `±sqrt(h)` with probability 1/2 (values in units of `sqrt(h)`); they
/// match the Gaussian moments of order ≤ 3.
pub const TWO_POINT: [(f64, f64); 2] = [(-1.0, 0.5), (1.0, 0.5)];
/// Three-point increments: `±sqrt(3h)` with probability 1/6, `0` with probability 2/3 (values
/// in units of `sqrt(h)`); they match the Gaussian moments of order ≤ 5.
pub const THREE_POINT: [(f64, f64); 3] = [
    (-1.732_050_807_568_877_2, 1.0 / 6.0),
    (0.0, 2.0 / 3.0),
    (1.732_050_807_568_877_2, 1.0 / 6.0),
];

/// A stream whose next `u64` has `bits` low bits equal to `pattern`; `variant` picks different
/// such streams (different high bits and different later outputs).
pub fn stream_with_low_bits(pattern: u64, bits: u32, variant: u64) -> PathRng {
    let mask = (1u64 << bits) - 1;
    (0..)
        .map(|i| derive_stream(1_000 + variant, i))
        .find(|r| r.clone().next_u64() & mask == pattern)
        .unwrap()
}

/// Mean and second moment `E[X Xᵀ]` of the chain of `scheme` on `sde` after `n` steps of
/// `h = t_end / n` from `x0`, exactly.
///
/// Each step is an affine map `x ↦ M x + c` (checked at a generic point) whose coefficients depend
/// on the increment, whose components are independent copies of `support` (values in units of
/// `sqrt(h)`), and on `aux_bits` random bits the scheme takes from the low bits of the next `u64`
/// of the stream (Platen's `V` variables, one bit each); every bit pattern has probability
/// `2^-aux_bits`. The step is checked to depend on nothing else, by repeating it with a second
/// stream with the same low bits. Then `E X' = E[M] μ + E[c]` and
/// `E[X'X'ᵀ] = E[M S Mᵀ + M μ cᵀ + c μᵀ Mᵀ + c cᵀ]`.
pub fn chain_moments<P: Sde, Sch: Scheme>(
    sde: &P,
    scheme: &Sch,
    support: &[(f64, f64)],
    aux_bits: u32,
    t_end: f64,
    n: usize,
    x0: &[f64],
) -> (Vec<f64>, Matrix) {
    scheme.check(sde).unwrap();
    let d = sde.dim();
    let m = sde.noise().noise_dim(d);
    let h = t_end / n as f64;
    let sh = h.sqrt();
    let k = support.len();
    let combos = k.pow(m as u32);
    let patterns = 1u64 << aux_bits;
    let streams: Vec<(PathRng, PathRng)> = (0..patterns)
        .map(|p| {
            (
                stream_with_low_bits(p, aux_bits, 0),
                stream_with_low_bits(p, aux_bits, 1),
            )
        })
        .collect();
    let mut ws = scheme.workspace(sde);
    let generic: Vec<f64> = (0..d).map(|i| 0.7 - 0.45 * i as f64).collect();
    let zero = vec![0.0; d];
    let mut mu = x0.to_vec();
    let mut s2 = outer(x0, x0);
    let mut dw = vec![0.0; m];
    for i in 0..n {
        let t = i as f64 * h;
        let mut mu_next = vec![0.0; d];
        let mut s_next = Matrix::zeros(d, d);
        for c in 0..combos {
            let mut p = 1.0 / patterns as f64;
            let mut code = c;
            for w in dw.iter_mut() {
                let (v, q) = support[code % k];
                *w = v * sh;
                p *= q;
                code /= k;
            }
            for (r1, r2) in &streams {
                let mut step = |from: &[f64], rng: &PathRng| {
                    let mut x = from.to_vec();
                    scheme.step(sde, &mut x, Step::new(t, h, &dw, &mut rng.clone()), &mut ws);
                    x
                };
                let offset = step(&zero, r1);
                let mut mm = Matrix::zeros(d, d);
                for col in 0..d {
                    let mut e = zero.clone();
                    e[col] = 1.0;
                    let y = step(&e, r1);
                    for row in 0..d {
                        mm[(row, col)] = y[row] - offset[row];
                    }
                }
                let y1 = step(&generic, r1);
                assert_eq!(
                    y1,
                    step(&generic, r2),
                    "the step uses randomness beyond {aux_bits} bits"
                );
                let m_generic = mm.mul_vec(&generic);
                for ((a, b), c) in y1.iter().zip(&m_generic).zip(&offset) {
                    assert!(
                        (a - b - c).abs() <= 1e-12 * (1.0 + a.abs()),
                        "step not affine"
                    );
                }
                let m_mu = mm.mul_vec(&mu);
                for (o, (a, b)) in mu_next.iter_mut().zip(m_mu.iter().zip(&offset)) {
                    *o += p * (a + b);
                }
                let msm = &mm * &s2 * mm.transpose();
                let cross = outer(&m_mu, &offset);
                let term = msm + &cross + cross.transpose() + outer(&offset, &offset);
                s_next += term * p;
            }
        }
        mu = mu_next;
        s2 = s_next;
    }
    (mu, s2)
}

/// Every component of the mean and every entry of the second moment, as one vector (`E X_i`,
/// then `E X_i X_j` for `i ≤ j`).
pub fn moments_vector(mean: &[f64], s2: &Matrix) -> Vec<f64> {
    let d = mean.len();
    let mut v = mean.to_vec();
    for i in 0..d {
        for j in i..d {
            v.push(s2[(i, j)]);
        }
    }
    v
}

/// [`moments_vector`] of the closed forms at `t`.
pub fn exact_moments<P: Moments>(problem: &P, t: f64, x0: &[f64]) -> Vec<f64> {
    moments_vector(&problem.mean(t, x0), &problem.second_moment(t, x0))
}

/// The step counts of [`check_chain_order`] on `[0, 1]`: `h = 2^-5 .. 2^-10`.
pub const CHAIN_STEPS: [usize; 6] = [32, 64, 128, 256, 512, 1024];

/// Weak errors of the chain at [`CHAIN_STEPS`] on `[0, 1]`, exactly: for each step size, the
/// largest error over the components of the mean, and over the entries of the second moment.
pub fn chain_weak_errors<P: Sde + Moments, Sch: Scheme>(
    problem: &P,
    scheme: &Sch,
    support: &[(f64, f64)],
    aux_bits: u32,
    x0: &[f64],
) -> (Vec<f64>, Vec<f64>) {
    let d = problem.dim();
    let exact = exact_moments(problem, 1.0, x0);
    let mut e_mean = Vec::new();
    let mut e_second = Vec::new();
    for &n in &CHAIN_STEPS {
        let (mu, s2) = chain_moments(problem, scheme, support, aux_bits, 1.0, n, x0);
        let v = moments_vector(&mu, &s2);
        let err: Vec<f64> = v.iter().zip(&exact).map(|(a, b)| (a - b).abs()).collect();
        e_mean.push(err[..d].iter().copied().fold(0.0, f64::max));
        e_second.push(err[d..].iter().copied().fold(0.0, f64::max));
    }
    (e_mean, e_second)
}

/// Weak order from the exact chain expectations ([`chain_weak_errors`]) against the scheme's
/// declared weak order: for the mean and the second moment, the least-squares slope over
/// [`CHAIN_STEPS`] is within 0.05 of it and the local order of the two finest steps within
/// 0.02. The errors carry no noise, so the 95% interval printed only measures how straight the
/// curve is (the remaining `O(h^{order+1})` terms), and the check is on the slope itself.
pub fn check_chain_order<P: Sde + Moments, Sch: Scheme>(
    label: &str,
    problem: &P,
    scheme: &Sch,
    support: &[(f64, f64)],
    aux_bits: u32,
    x0: &[f64],
) {
    let order = scheme.weak_order();
    let (e_mean, e_second) = chain_weak_errors(problem, scheme, support, aux_bits, x0);
    let h: Vec<f64> = CHAIN_STEPS.iter().map(|&n| 1.0 / n as f64).collect();
    for (what, e) in [("mean", &e_mean), ("second moment", &e_second)] {
        let fit = fit_order(&h, e).unwrap();
        let local = (e[e.len() - 2] / e[e.len() - 1]).log2();
        println!(
            "chain   {label:<36} {what:<14} slope {:.3}  95% CI [{:.3}, {:.3}]  finest local {local:.3}  errors {}",
            fit.slope,
            fit.slope_ci95.0,
            fit.slope_ci95.1,
            fmt_list(e)
        );
        assert_order(&format!("{label}, {what}"), &fit, order, 0.05);
        assert_local_order(&format!("{label}, {what}"), e, order, 0.02);
    }
}

/// Every field of two ensemble results, compared bit for bit (same seed, any thread count or
/// distribution of the chunks).
pub fn assert_same_bits(a: &EnsembleStats, b: &EnsembleStats) {
    assert_eq!(a.paths, b.paths);
    assert_eq!(a.n_save, b.n_save);
    assert_eq!(a.n_observables, b.n_observables);
    assert_eq!(a.diverged, b.diverged);
    assert_eq!(a.stats.len(), b.stats.len());
    for (i, (x, y)) in a.stats.iter().zip(&b.stats).enumerate() {
        assert_eq!(x.count, y.count, "accumulator {i}");
        assert_eq!(x.mean.to_bits(), y.mean.to_bits(), "accumulator {i}: mean");
        assert_eq!(x.m2.to_bits(), y.m2.to_bits(), "accumulator {i}: m2");
    }
}
