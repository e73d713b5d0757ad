//! Convergence orders of the schemes on the problems of `sde_core::problems` (T = 1).
//!
//! **Strong orders.** Each step size gets its own Brownian paths; the exact solution is a
//! function of `W_T`, the sum of the increments the run drew, so run and exact solution follow
//! one path. The error is `sqrt(E |X_T^h − X_T|²)` over `M` paths and the order is the
//! least-squares slope of `log error` on `log h` over six step sizes `h = 2^-4 .. 2^-9`, with the
//! 95% interval of `fit_order`. Independent paths per step size make the Monte Carlo errors of
//! the points independent, so they show in the residuals and hence in the interval.
//!
//! **Weak orders, exactly (no Monte Carlo).** For a linear SDE each step is an affine map
//! `x ↦ M x + c` whose coefficients depend only on the increment (and, for Platen's scheme with
//! several Brownian motions, on the random bits of its auxiliary variables `V`). With increments
//! taking finitely many values (two-point, three-point) the mean and second moment of the chain
//! follow exactly by averaging the step over the increment's support and the `V` bits. Two-point
//! increments match the Gaussian moments of order ≤ 3 and three-point ones those of order ≤ 5;
//! the step is a polynomial of degree 1 (Euler–Maruyama) or 2 (Platen) in `ΔW`, so these are
//! also the expectations of the chain with Gaussian increments.
//!
//! **Weak orders by Monte Carlo.** The weak error of each step size is estimated with its
//! standard error; only points whose error exceeds 10 standard errors enter the fit (at least
//! four must), so the Monte Carlo noise of a fitted `log error` is below 0.1. For geometric
//! Brownian motion (and the time-dependent problem with constant diffusion) the estimator
//! subtracts the control variate `f(X_exact(W_T))` built from the increments the path drew and
//! adds back its exact expectation (known for sums of Gaussian, two-point and three-point
//! increments): unbiased, with the variance of a strong error instead of that of `f(X_T)`.
//! Elsewhere, plain Monte Carlo estimates are compared with the exact expectations of the chain
//! within 4 standard errors.
//!
//! Seeds are fixed; `cargo test -p sde-core --test convergence -- --nocapture` prints every fit.

use rand::Rng;
use sde_core::problems::{
    DiagonalLinear, ExactSolution, GeometricBrownianMotion, LinearSde, Matrix, Moments,
    OrnsteinUhlenbeck, TimeDependentLinear,
};
use sde_core::*;

const T: f64 = 1.0;

// ---------------------------------------------------------------------------------------------
// Problems
// ---------------------------------------------------------------------------------------------

fn ou_2d() -> OrnsteinUhlenbeck {
    // Non-symmetric drift matrix (eigenvalues 1.5 ± 0.5i·√… , both with positive real part) and
    // a full 2 × 2 noise matrix.
    OrnsteinUhlenbeck::new(
        Matrix::from_rows(&[[2.0, 1.0], [-0.5, 1.0]]),
        vec![0.5, -0.5],
        Matrix::from_rows(&[[0.8, 0.3], [-0.2, 0.6]]),
    )
    .unwrap()
}

fn diagonal_3d() -> DiagonalLinear {
    DiagonalLinear::new(vec![0.1, -0.5, 0.3], vec![0.5, 0.8, 0.2]).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Strong errors
// ---------------------------------------------------------------------------------------------

/// Squared errors `|X_T^h − X_T|²` at several step counts, each on its own sub-stream of the
/// path's stream; `W_T` is accumulated from the increments the solver drew
/// (`SolverWorkspace::dw` after each step).
struct StrongErrors<'a, P, Sch> {
    problem: &'a P,
    solver: Solver<&'a P, Sch, Gaussian>,
    steps: Vec<usize>,
    x0: Vec<f64>,
}

struct StrongWs<W> {
    solver: SolverWorkspace<W>,
    x: Vec<f64>,
    w: Vec<f64>,
}

impl<P: Sde + ExactSolution, Sch: Scheme> PathSimulation for StrongErrors<'_, P, Sch> {
    type Workspace = StrongWs<Sch::Workspace>;

    fn workspace(&self) -> Self::Workspace {
        let m = self.problem.noise().noise_dim(self.problem.dim());
        StrongWs {
            solver: self.solver.workspace(),
            x: self.x0.clone(),
            w: vec![0.0; m],
        }
    }
    fn n_save(&self) -> usize {
        1
    }
    fn n_observables(&self) -> usize {
        self.steps.len()
    }
    fn simulate(
        &self,
        _p: u64,
        rng: &mut PathRng,
        ws: &mut Self::Workspace,
        out: &mut [f64],
    ) -> usize {
        let key = rng.next_u64();
        for (l, &n) in self.steps.iter().enumerate() {
            let mut r = derive_stream(key, l as u64);
            let h = T / n as f64;
            ws.x.copy_from_slice(&self.x0);
            ws.w.fill(0.0);
            for i in 0..n {
                self.solver
                    .step(i as f64 * h, h, &mut ws.x, &mut r, &mut ws.solver);
                for (w, d) in ws.w.iter_mut().zip(&ws.solver.dw) {
                    *w += d;
                }
            }
            let exact = self.problem.exact(T, &self.x0, &ws.w).expect("exact");
            out[l] = ws.x.iter().zip(&exact).map(|(a, b)| (a - b).powi(2)).sum();
        }
        usize::from(out.iter().all(|v| v.is_finite()))
    }
}

const STRONG_STEPS: [usize; 6] = [16, 32, 64, 128, 256, 512];
const STRONG_PATHS: u64 = 20_000;

/// Fits and checks the strong order of `scheme` on `problem`: the 95% interval of the slope
/// contains `order` and its half-width is below 0.15. Each mean squared error must be known to
/// 8% (one standard error), i.e. each `log error` to 4%, so the interval reflects a resolved
/// error curve rather than noise.
fn check_strong<P: Sde + ExactSolution, Sch: Scheme>(
    label: &str,
    problem: &P,
    scheme: Sch,
    x0: &[f64],
    order: f64,
    seed: u64,
) -> LineFit {
    let sim = StrongErrors {
        problem,
        solver: Solver::new(problem, scheme, Gaussian).unwrap(),
        steps: STRONG_STEPS.to_vec(),
        x0: x0.to_vec(),
    };
    let stats = Ensemble::new(STRONG_PATHS, seed).unwrap().run(&sim);
    assert_eq!(stats.diverged_total(), 0, "{label}");
    let mut h = Vec::new();
    let mut err = Vec::new();
    for (l, &n) in STRONG_STEPS.iter().enumerate() {
        let s = stats.summary(0, l);
        assert!(
            s.std_err < 0.08 * s.mean,
            "{label}: mean squared error at h = 1/{n} not resolved: {s:?}"
        );
        h.push(T / n as f64);
        err.push(s.mean.sqrt());
    }
    let fit = fit_order(&h, &err).unwrap();
    println!(
        "strong  {label:<44} slope {:.3}  95% CI [{:.3}, {:.3}]  errors {}",
        fit.slope,
        fit.slope_ci95.0,
        fit.slope_ci95.1,
        fmt_list(&err)
    );
    assert!(fit.contains(order), "{label}: order {order} outside {fit:?}");
    let half = 0.5 * (fit.slope_ci95.1 - fit.slope_ci95.0);
    assert!(half < 0.15, "{label}: interval too wide: {fit:?}");
    fit
}

fn fmt_list(v: &[f64]) -> String {
    v.iter()
        .map(|x| format!("{x:.2e}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn strong_order_euler_maruyama_is_one_half() {
    let gbm = GeometricBrownianMotion::new(0.1, 0.5).unwrap();
    check_strong("EM, GBM", &gbm, EulerMaruyama, &[1.0], 0.5, 11);
    let diag = diagonal_3d();
    check_strong("EM, diagonal 3-D", &diag, EulerMaruyama, &[1.0, 0.5, 2.0], 0.5, 12);
    let com = LinearSde::commutative_2d();
    check_strong("EM, commutative 2-D", &com, EulerMaruyama, &[1.0, 0.5], 0.5, 13);
}

#[test]
fn strong_order_milstein_is_one_on_gbm() {
    let gbm = GeometricBrownianMotion::new(0.1, 0.5).unwrap();
    check_strong("Milstein (derivative), GBM", &gbm, Milstein::default(), &[1.0], 1.0, 21);
    check_strong(
        "Milstein (derivative-free), GBM",
        &gbm,
        Milstein::derivative_free(),
        &[1.0],
        1.0,
        21,
    );
}

#[test]
fn strong_order_milstein_is_one_on_diagonal_noise() {
    let diag = diagonal_3d();
    let x0 = [1.0, 0.5, 2.0];
    check_strong("Milstein (derivative), diagonal 3-D", &diag, Milstein::default(), &x0, 1.0, 31);
    check_strong(
        "Milstein (derivative-free), diagonal 3-D",
        &diag,
        Milstein::derivative_free(),
        &x0,
        1.0,
        31,
    );
}

#[test]
fn strong_order_milstein_is_one_on_commutative_noise() {
    let com = LinearSde::commutative_2d();
    assert!(matches!(
        com.noise(),
        NoiseShape::General {
            m: 2,
            commutative: true
        }
    ));
    let x0 = [1.0, 0.5];
    check_strong("Milstein (derivative), commutative 2-D", &com, Milstein::default(), &x0, 1.0, 41);
    check_strong(
        "Milstein (derivative-free), commutative 2-D",
        &com,
        Milstein::derivative_free(),
        &x0,
        1.0,
        41,
    );
}

// ---------------------------------------------------------------------------------------------
// Exact expectations of the chain
// ---------------------------------------------------------------------------------------------

/// Two-point increments: `±sqrt(h)` with probability 1/2 (values in units of `sqrt(h)`).
const TWO_POINT: [(f64, f64); 2] = [(-1.0, 0.5), (1.0, 0.5)];
/// Three-point increments: `±sqrt(3h)` with probability 1/6, `0` with probability 2/3.
const THREE_POINT: [(f64, f64); 3] = [
    (-1.732_050_807_568_877_2, 1.0 / 6.0),
    (0.0, 2.0 / 3.0),
    (1.732_050_807_568_877_2, 1.0 / 6.0),
];

/// A stream whose next `u64` has `bits` low bits equal to `pattern`; `variant` picks different
/// such streams (different high bits and different later outputs).
fn stream_with_low_bits(pattern: u64, bits: u32, variant: u64) -> PathRng {
    let mask = (1u64 << bits) - 1;
    (0..)
        .map(|i| derive_stream(1_000 + variant, i))
        .find(|r| r.clone().next_u64() & mask == pattern)
        .unwrap()
}

/// Mean and second moment `E[X Xᵀ]` of the chain of `scheme` on `sde` after `n` steps of
/// `h = T / n` from `x0`, exactly.
///
/// Each step is an affine map `x ↦ M x + c` (checked at a generic point) whose coefficients depend
/// on the increment, whose components are independent copies of `support`, and on `aux_bits`
/// random bits the scheme takes from the low bits of the next `u64` of the stream (Platen's `V`
/// variables, one bit each); every bit pattern has probability `2^-aux_bits`. The step is checked
/// to depend on nothing else, by repeating it with a second stream with the same low bits. Then
/// `E X' = E[M] μ + E[c]` and `E[X'X'ᵀ] = E[M S Mᵀ + M μ cᵀ + c μᵀ Mᵀ + c cᵀ]`.
fn chain_moments<P: Sde, Sch: Scheme>(
    sde: &P,
    scheme: &Sch,
    support: &[(f64, f64)],
    aux_bits: u32,
    n: usize,
    x0: &[f64],
) -> (Vec<f64>, Matrix) {
    scheme.check(sde).unwrap();
    let d = sde.dim();
    let m = sde.noise().noise_dim(d);
    let h = T / n as f64;
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
    let mut s2 = Matrix::outer(x0, x0);
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
                    scheme.step(sde, t, h, &mut x, &dw, &mut rng.clone(), &mut ws);
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
                    assert!((a - b - c).abs() <= 1e-12 * (1.0 + a.abs()), "step not affine");
                }
                let m_mu = mm.mul_vec(&mu);
                for (o, (a, b)) in mu_next.iter_mut().zip(m_mu.iter().zip(&offset)) {
                    *o += p * (a + b);
                }
                let msm = &(&mm * &s2) * &mm.transpose();
                let cross = Matrix::outer(&m_mu, &offset);
                let term =
                    &(&(&msm + &cross) + &cross.transpose()) + &Matrix::outer(&offset, &offset);
                s_next = &s_next + &(&term * p);
            }
        }
        mu = mu_next;
        s2 = s_next;
    }
    (mu, s2)
}

/// The functionals of the weak tests: every component of the mean and every entry of the second
/// moment, as one vector (`E X_i`, then `E X_i X_j` for `i ≤ j`).
fn moments_vector(mean: &[f64], s2: &Matrix) -> Vec<f64> {
    let d = mean.len();
    let mut v = mean.to_vec();
    for i in 0..d {
        for j in i..d {
            v.push(s2[(i, j)]);
        }
    }
    v
}

fn exact_moments<P: Moments>(problem: &P, x0: &[f64]) -> Vec<f64> {
    moments_vector(&problem.mean(T, x0), &problem.second_moment(T, x0))
}

const CHAIN_STEPS: [usize; 6] = [32, 64, 128, 256, 512, 1024];

/// Weak order from the exact chain expectations: for the mean (largest error over components)
/// and the second moment (largest over entries), the least-squares slope over `CHAIN_STEPS` is
/// within 0.05 of `order` and the local order `log2(e(2h)/e(h))` of the two finest steps within
/// 0.02. The errors carry no noise, so the 95% interval printed only measures how straight the
/// curve is (the remaining `O(h^{order+1})` terms), and the check is on the slope itself.
fn check_chain_order<P: Sde + Moments, Sch: Scheme>(
    label: &str,
    problem: &P,
    scheme: &Sch,
    support: &[(f64, f64)],
    aux_bits: u32,
    x0: &[f64],
    order: f64,
) {
    let d = problem.dim();
    let exact = exact_moments(problem, x0);
    let mut e_mean = Vec::new();
    let mut e_second = Vec::new();
    let h: Vec<f64> = CHAIN_STEPS.iter().map(|&n| T / n as f64).collect();
    for &n in &CHAIN_STEPS {
        let (mu, s2) = chain_moments(problem, scheme, support, aux_bits, n, x0);
        let v = moments_vector(&mu, &s2);
        let err: Vec<f64> = v.iter().zip(&exact).map(|(a, b)| (a - b).abs()).collect();
        e_mean.push(err[..d].iter().copied().fold(0.0, f64::max));
        e_second.push(err[d..].iter().copied().fold(0.0, f64::max));
    }
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
        assert!(
            (fit.slope - order).abs() < 0.05,
            "{label}, {what}: slope {} for order {order}: {e:?}",
            fit.slope
        );
        assert!(
            (local - order).abs() < 0.02,
            "{label}, {what}: local order {local} for order {order}: {e:?}"
        );
    }
}

#[test]
fn exact_chain_expectations_match_closed_forms() {
    // E of the Euler–Maruyama chain for GBM: E X_n = (1 + μh)^n x0 and
    // E X_n² = ((1 + μh)² + σ²h)^n x0². Platen's step for dX = μX dt + σX dW is
    // X (1 + z + z²/2 + σΔW (1 + μh) + σ²(ΔW² − h)/2) with z = μh, so
    // E X_n = (1 + z + z²/2)^n x0 and E X_n² = ((1 + z + z²/2)² + σ²h(1 + z)² + σ⁴h²/2)^n x0².
    let (mu, sigma) = (1.0, 0.8);
    let gbm = GeometricBrownianMotion::new(mu, sigma).unwrap();
    let x0 = 1.3;
    for n in [1usize, 4, 32] {
        let h = T / n as f64;
        let z = mu * h;
        let (m, s2) = chain_moments(&gbm, &EulerMaruyama, &TWO_POINT, 0, n, &[x0]);
        let em_mean = (1.0 + z).powi(n as i32) * x0;
        let em_second = ((1.0 + z).powi(2) + sigma * sigma * h).powi(n as i32) * x0 * x0;
        assert!((m[0] / em_mean - 1.0).abs() < 1e-13, "{} vs {em_mean}", m[0]);
        assert!((s2[(0, 0)] / em_second - 1.0).abs() < 1e-13);
        let f = 1.0 + z + 0.5 * z * z;
        let (m, s2) = chain_moments(&gbm, &PlatenWeak2, &THREE_POINT, 0, n, &[x0]);
        let p_mean = f.powi(n as i32) * x0;
        let p_second = (f * f + sigma * sigma * h * (1.0 + z).powi(2) + 0.5 * sigma.powi(4) * h * h)
            .powi(n as i32)
            * x0
            * x0;
        assert!((m[0] / p_mean - 1.0).abs() < 1e-13, "{} vs {p_mean}", m[0]);
        assert!((s2[(0, 0)] / p_second - 1.0).abs() < 1e-13);
    }
    // Time-dependent coefficients: E of the EM chain is Π (1 + a(t_i) h) x0, and its second
    // moment Π ((1 + a(t_i) h)² + b(t_i)² h) x0².
    let td = TimeDependentLinear::new(0.5, 1.0, 0.4, 0.3).unwrap();
    let n = 16;
    let h = T / n as f64;
    let (m, s2) = chain_moments(&td, &EulerMaruyama, &TWO_POINT, 0, n, &[1.0]);
    let (mut pm, mut ps) = (1.0, 1.0);
    for i in 0..n {
        let t = i as f64 * h;
        pm *= 1.0 + td.a(t) * h;
        ps *= (1.0 + td.a(t) * h).powi(2) + td.b(t).powi(2) * h;
    }
    assert!((m[0] / pm - 1.0).abs() < 1e-13 && (s2[(0, 0)] / ps - 1.0).abs() < 1e-13);
    // Linear systems: E of the EM chain is (I + Ah)^n x0.
    let nc = LinearSde::noncommutative_2d();
    let n = 8;
    let h = T / n as f64;
    let step = &Matrix::identity(2) + &(nc.a() * h);
    let mut want = vec![1.0, 0.5];
    for _ in 0..n {
        want = step.mul_vec(&want);
    }
    let (m, _) = chain_moments(&nc, &EulerMaruyama, &TWO_POINT, 0, n, &[1.0, 0.5]);
    assert!((m[0] - want[0]).abs() < 1e-14 && (m[1] - want[1]).abs() < 1e-14);
}

#[test]
fn weak_order_euler_maruyama_is_one_exactly() {
    let em = EulerMaruyama;
    let gbm = GeometricBrownianMotion::new(1.0, 0.8).unwrap();
    check_chain_order("EM, GBM", &gbm, &em, &TWO_POINT, 0, &[1.0], 1.0);
    let td = TimeDependentLinear::new(0.5, 1.0, 0.4, 0.3).unwrap();
    check_chain_order("EM, time-dependent", &td, &em, &TWO_POINT, 0, &[1.0], 1.0);
    check_chain_order("EM, OU 2-D", &ou_2d(), &em, &TWO_POINT, 0, &[2.0, -1.0], 1.0);
    let diag = diagonal_3d();
    check_chain_order("EM, diagonal 3-D", &diag, &em, &TWO_POINT, 0, &[1.0, 0.5, 2.0], 1.0);
    let com = LinearSde::commutative_2d();
    check_chain_order("EM, commutative 2-D", &com, &em, &TWO_POINT, 0, &[1.0, 0.5], 1.0);
    let nc = LinearSde::noncommutative_2d();
    check_chain_order("EM, non-commutative 2-D", &nc, &em, &TWO_POINT, 0, &[1.0, 0.5], 1.0);
}

#[test]
fn weak_order_platen_is_two_exactly() {
    let p = PlatenWeak2;
    let gbm = GeometricBrownianMotion::new(1.0, 0.8).unwrap();
    check_chain_order("Platen, GBM", &gbm, &p, &THREE_POINT, 0, &[1.0], 2.0);
    // Time-dependent drift and diffusion.
    let td = TimeDependentLinear::new(0.5, 1.0, 0.4, 0.3).unwrap();
    check_chain_order("Platen, time-dependent", &td, &p, &THREE_POINT, 0, &[1.0], 2.0);
    check_chain_order("Platen, OU 2-D", &ou_2d(), &p, &THREE_POINT, 0, &[2.0, -1.0], 2.0);
    // Diagonal noise: d(d − 1)/2 = 3 auxiliary bits, which must not matter here.
    let diag = diagonal_3d();
    check_chain_order("Platen, diagonal 3-D", &diag, &p, &THREE_POINT, 3, &[1.0, 0.5, 2.0], 2.0);
    // General noise with m = 2: one auxiliary bit, V_{2,1} = ±h.
    let com = LinearSde::commutative_2d();
    check_chain_order("Platen, commutative 2-D", &com, &p, &THREE_POINT, 1, &[1.0, 0.5], 2.0);
    let nc = LinearSde::noncommutative_2d();
    check_chain_order("Platen, non-commutative 2-D", &nc, &p, &THREE_POINT, 1, &[1.0, 0.5], 2.0);
}

#[test]
fn explore() {
    for (a, b) in [([0.1, -0.2, 0.3], [0.5, 0.8, 0.2]), ([0.1, -0.5, 0.3], [0.5, 0.8, 0.2]), ([0.2, -0.1, 0.1], [0.6, 0.4, 0.3])] {
        let diag = DiagonalLinear::new(a.to_vec(), b.to_vec()).unwrap();
        for seed in 1..=4 {
            let r = std::panic::catch_unwind(|| {
                check_strong(&format!("DF {a:?} {seed}"), &diag, Milstein::derivative_free(), &[1.0, 0.5, 2.0], 1.0, seed);
                check_strong(&format!("M {a:?} {seed}"), &diag, Milstein::default(), &[1.0, 0.5, 2.0], 1.0, seed);
            });
            if r.is_err() { println!("FAILED"); }
        }
    }
}
