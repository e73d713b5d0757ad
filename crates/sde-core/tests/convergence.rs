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
use sde_core::testing::*;
use sde_core::*;

const T: f64 = 1.0;

// ---------------------------------------------------------------------------------------------
// Problems
// ---------------------------------------------------------------------------------------------

fn diagonal_3d() -> DiagonalLinear {
    DiagonalLinear::new(vec![0.1, -0.5, 0.3], vec![0.5, 0.8, 0.2]).unwrap()
}

#[test]
fn strong_order_euler_maruyama_is_one_half() {
    let gbm = GeometricBrownianMotion::new(0.1, 0.5).unwrap();
    check_strong("EM, GBM", &gbm, EulerMaruyama, &[1.0], 11);
    let diag = diagonal_3d();
    check_strong(
        "EM, diagonal 3-D",
        &diag,
        EulerMaruyama,
        &[1.0, 0.5, 2.0],
        12,
    );
    let com = LinearSde::commutative_2d();
    check_strong("EM, commutative 2-D", &com, EulerMaruyama, &[1.0, 0.5], 13);
}

#[test]
fn strong_order_milstein_is_one_on_gbm() {
    let gbm = GeometricBrownianMotion::new(0.1, 0.5).unwrap();
    check_strong(
        "Milstein (derivative), GBM",
        &gbm,
        Milstein::default(),
        &[1.0],
        21,
    );
    check_strong(
        "Milstein (derivative-free), GBM",
        &gbm,
        Milstein::derivative_free(),
        &[1.0],
        21,
    );
}

#[test]
fn strong_order_milstein_is_one_on_diagonal_noise() {
    let diag = diagonal_3d();
    let x0 = [1.0, 0.5, 2.0];
    check_strong(
        "Milstein (derivative), diagonal 3-D",
        &diag,
        Milstein::default(),
        &x0,
        31,
    );
    check_strong(
        "Milstein (derivative-free), diagonal 3-D",
        &diag,
        Milstein::derivative_free(),
        &x0,
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
    check_strong(
        "Milstein (derivative), commutative 2-D",
        &com,
        Milstein::default(),
        &x0,
        41,
    );
    check_strong(
        "Milstein (derivative-free), commutative 2-D",
        &com,
        Milstein::derivative_free(),
        &x0,
        41,
    );
}

/// The exact strong error of a scheme on GBM, without Monte Carlo: one step maps `x` to
/// `x F(ΔW)` with `F` a polynomial of degree ≤ 2 (read off the scheme's own step at three
/// increments and checked at a fourth), and the exact solution multiplies by
/// `G = exp((μ − σ²/2) h + σ ΔW)`. Over `n` independent steps
/// `E (X_n − X(T))² = x0² [(E F²)^n − 2 (E F G)^n + (E G²)^n]`, with
/// `E F² = Σ c_i c_j E ΔW^{i+j}`, `E F G = e^{μh} (c0 + c1 σh + c2 (h + σ²h²))` and
/// `E G² = e^{(2μ + σ²) h}`.
fn gbm_exact_strong_error<Sch: Scheme>(g: &GeometricBrownianMotion, scheme: &Sch, n: usize) -> f64 {
    let h = T / n as f64;
    let sh = h.sqrt();
    let mut ws = scheme.workspace(g);
    let mut rng = derive_stream(0, 0);
    let mut f = |w: f64| {
        let mut x = [1.0];
        scheme.step(g, &mut x, Step::new(0.0, h, &[w], &mut rng), &mut ws);
        x[0]
    };
    let (fm, f0, fp) = (f(-sh), f(0.0), f(sh));
    let c = [f0, (fp - fm) / (2.0 * sh), (fp + fm - 2.0 * f0) / (2.0 * h)];
    let w2 = 2.0 * sh;
    let poly = c[0] + c[1] * w2 + c[2] * w2 * w2;
    assert!(
        (f(w2) - poly).abs() < 1e-12,
        "the step is not quadratic in ΔW"
    );
    let (mu, sig) = (g.mu, g.sigma);
    let e_f2 = c[0] * c[0] + (2.0 * c[0] * c[2] + c[1] * c[1]) * h + 3.0 * c[2] * c[2] * h * h;
    let e_fg = (mu * h).exp() * (c[0] + c[1] * sig * h + c[2] * (h + sig * sig * h * h));
    let e_g2 = ((2.0 * mu + sig * sig) * h).exp();
    // Relative to (E G²)^n, with expm1/ln_1p: the three terms nearly cancel.
    let a = n as f64 * ((e_f2 - e_g2) / e_g2).ln_1p();
    let b = n as f64 * ((e_fg - e_g2) / e_g2).ln_1p();
    let mse = (a.exp_m1() - 2.0 * b.exp_m1()) * (n as f64 * e_g2.ln()).exp();
    mse.sqrt()
}

#[test]
fn strong_order_exact_on_gbm() {
    // No Monte Carlo: the root-mean-square error of the chain, exactly, for h = 2^-4 .. 2^-12.
    // The fitted slope over the six finest steps is within 0.02 of the order, and the local order
    // log2(e(2h)/e(h)) of the two finest within 0.01. (The derivative-free Milstein approaches
    // order 1 more slowly than the derivative form: local orders 0.979, 0.987, 0.992, ... from
    // h = 1/16, which is why its Monte Carlo tests start there.)
    let g = GeometricBrownianMotion::new(0.1, 0.5).unwrap();
    let steps: Vec<usize> = (4..=12).map(|k| 1usize << k).collect();
    type ErrorCurve<'a> = Box<dyn Fn(usize) -> f64 + 'a>;
    let cases: [(&str, f64, ErrorCurve); 3] = [
        (
            "EM",
            0.5,
            Box::new(|n| gbm_exact_strong_error(&g, &EulerMaruyama, n)),
        ),
        (
            "Milstein (derivative)",
            1.0,
            Box::new(|n| gbm_exact_strong_error(&g, &Milstein::default(), n)),
        ),
        (
            "Milstein (derivative-free)",
            1.0,
            Box::new(|n| gbm_exact_strong_error(&g, &Milstein::derivative_free(), n)),
        ),
    ];
    for (label, order, err) in cases {
        let e: Vec<f64> = steps.iter().map(|&n| err(n)).collect();
        let local: Vec<f64> = e.windows(2).map(|w| (w[0] / w[1]).log2()).collect();
        let h: Vec<f64> = steps.iter().map(|&n| T / n as f64).collect();
        let fit = fit_order(&h[3..], &e[3..]).unwrap();
        println!(
            "exact strong {label:<28} slope (h ≤ 2^-7) {:.4}  95% CI [{:.4}, {:.4}]  local orders {}",
            fit.slope,
            fit.slope_ci95.0,
            fit.slope_ci95.1,
            local.iter().map(|v| format!("{v:.4}")).collect::<Vec<_>>().join(" ")
        );
        assert!((fit.slope - order).abs() < 0.02, "{label}: {fit:?}");
        assert!(
            (local[local.len() - 1] - order).abs() < 0.01,
            "{label}: {local:?}"
        );
    }
    // The Monte Carlo estimate agrees: at h = 1/16, e = 5.52e-2 (EM), 5.99e-3 (Milstein).
    assert!((gbm_exact_strong_error(&g, &EulerMaruyama, 16) - 5.521e-2).abs() < 1e-5);
    assert!((gbm_exact_strong_error(&g, &Milstein::default(), 16) - 5.988e-3).abs() < 1e-6);
}

// ---------------------------------------------------------------------------------------------
// Exact expectations of the chain
// ---------------------------------------------------------------------------------------------
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
        let (m, s2) = chain_moments(&gbm, &EulerMaruyama, &TWO_POINT, 0, T, n, &[x0]);
        let em_mean = (1.0 + z).powi(n as i32) * x0;
        let em_second = ((1.0 + z).powi(2) + sigma * sigma * h).powi(n as i32) * x0 * x0;
        assert!(
            (m[0] / em_mean - 1.0).abs() < 1e-13,
            "{} vs {em_mean}",
            m[0]
        );
        assert!((s2[(0, 0)] / em_second - 1.0).abs() < 1e-13);
        let f = 1.0 + z + 0.5 * z * z;
        let (m, s2) = chain_moments(&gbm, &PlatenWeak2, &THREE_POINT, 0, T, n, &[x0]);
        let p_mean = f.powi(n as i32) * x0;
        let p_second =
            (f * f + sigma * sigma * h * (1.0 + z).powi(2) + 0.5 * sigma.powi(4) * h * h)
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
    let (m, s2) = chain_moments(&td, &EulerMaruyama, &TWO_POINT, 0, T, n, &[1.0]);
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
    let step = &Matrix::identity(2, 2) + &(nc.a() * h);
    let mut want = vec![1.0, 0.5];
    for _ in 0..n {
        want = step.mul_vec(&want);
    }
    let (m, _) = chain_moments(&nc, &EulerMaruyama, &TWO_POINT, 0, T, n, &[1.0, 0.5]);
    assert!((m[0] - want[0]).abs() < 1e-14 && (m[1] - want[1]).abs() < 1e-14);
}

/// The exact-chain weak order of `scheme` (against its declared order) on every analytic
/// problem but the non-commutative one, with `bits` auxiliary bits enumerated on the diagonal
/// 3-D and the commutative 2-D problems.
fn check_chain_orders<Sch: Scheme>(
    name: &str,
    scheme: &Sch,
    support: &[(f64, f64)],
    bits: [u32; 2],
) {
    let gbm = GeometricBrownianMotion::new(1.0, 0.8).unwrap();
    check_chain_order(&format!("{name}, GBM"), &gbm, scheme, support, 0, &[1.0]);
    // Time-dependent drift and diffusion.
    let td = TimeDependentLinear::new(0.5, 1.0, 0.4, 0.3).unwrap();
    let label = format!("{name}, time-dependent");
    check_chain_order(&label, &td, scheme, support, 0, &[1.0]);
    let ou = OrnsteinUhlenbeck::spiral_2d();
    let label = format!("{name}, OU 2-D");
    check_chain_order(&label, &ou, scheme, support, 0, &[2.0, -1.0]);
    let diag = diagonal_3d();
    let label = format!("{name}, diagonal 3-D");
    check_chain_order(&label, &diag, scheme, support, bits[0], &[1.0, 0.5, 2.0]);
    let com = LinearSde::commutative_2d();
    let label = format!("{name}, commutative 2-D");
    check_chain_order(&label, &com, scheme, support, bits[1], &[1.0, 0.5]);
}

#[test]
fn weak_order_euler_maruyama_is_one_exactly() {
    let em = EulerMaruyama;
    check_chain_orders("EM", &em, &TWO_POINT, [0, 0]);
    let nc = LinearSde::noncommutative_2d();
    check_chain_order(
        "EM, non-commutative 2-D",
        &nc,
        &em,
        &TWO_POINT,
        0,
        &[1.0, 0.5],
    );
}

#[test]
fn weak_order_platen_is_two_exactly() {
    let p = PlatenWeak2;
    // Diagonal noise: d(d − 1)/2 = 3 auxiliary bits, which must not matter here. General noise
    // with m = 2: one auxiliary bit, V_{2,1} = ±h.
    check_chain_orders("Platen", &p, &THREE_POINT, [3, 1]);
    let nc = LinearSde::noncommutative_2d();
    // There the auxiliary bit matters (its two values give different steps), so the enumeration
    // over it is what makes these expectations exact; without the V terms the second moment
    // would converge with order 1 only.
    let mut ws = p.workspace(&nc);
    let mut step_with_bit = |bit: u64| {
        let mut x = [1.0, 0.5];
        let mut rng = stream_with_low_bits(bit, 1, 0);
        let st = Step::new(0.0, 0.1, &[0.3, -0.2], &mut rng);
        p.step(&nc, &mut x, st, &mut ws);
        x
    };
    assert_ne!(step_with_bit(0), step_with_bit(1));
    check_chain_order(
        "Platen, non-commutative 2-D",
        &nc,
        &p,
        &THREE_POINT,
        1,
        &[1.0, 0.5],
    );
}

// ---------------------------------------------------------------------------------------------
// Monte Carlo weak errors
// ---------------------------------------------------------------------------------------------

/// A control variate: `f(X_exact(W_T))` computed from the increments the path drew, with its
/// exact expectation per step count and functional.
struct ControlVariate<'a> {
    exact: &'a (dyn Fn(&[f64]) -> Vec<f64> + Sync),
    /// `means[l][k]`: `E f_k(X_exact(W_T))` when `W_T` is the sum of the increments of level `l`.
    means: Vec<Vec<f64>>,
}

type Functionals<'a> = &'a (dyn Fn(&[f64], &mut [f64]) + Sync);

/// `f_k(X_T^h)` (minus the control variate plus its mean, if any) for several step counts, each
/// on its own sub-stream of the path's stream.
struct WeakRun<'a, P, Sch, I> {
    solver: Solver<&'a P, Sch, I>,
    steps: Vec<usize>,
    x0: Vec<f64>,
    n_f: usize,
    f: Functionals<'a>,
    cv: Option<ControlVariate<'a>>,
}

struct WeakWs<W> {
    path: PathBuffers<W>,
    fe: Vec<f64>,
}

impl<P: Sde, Sch: Scheme, I: Increments> PathSimulation for WeakRun<'_, P, Sch, I> {
    type Workspace = WeakWs<Sch::Workspace>;

    fn workspace(&self) -> Self::Workspace {
        WeakWs {
            path: PathBuffers::new(&self.solver, &self.x0),
            fe: vec![0.0; self.n_f],
        }
    }
    fn n_save(&self) -> usize {
        1
    }
    fn n_observables(&self) -> usize {
        self.steps.len() * self.n_f
    }
    fn simulate(&self, path: PathInput<'_>, ws: &mut Self::Workspace, out: &mut [f64]) -> usize {
        let rng = path.rng;
        let key = rng.next_u64();
        for (l, &n) in self.steps.iter().enumerate() {
            let mut r = derive_stream(key, l as u64);
            ws.path.run(&self.solver, &self.x0, n, T / n as f64, &mut r);
            let o = &mut out[l * self.n_f..(l + 1) * self.n_f];
            (self.f)(&ws.path.x, o);
            if let Some(cv) = &self.cv {
                (self.f)(&(cv.exact)(&ws.path.w), &mut ws.fe);
                for ((o, fe), mean) in o.iter_mut().zip(&ws.fe).zip(&cv.means[l]) {
                    *o += mean - fe;
                }
            }
        }
        usize::from(out.iter().all(|v| v.is_finite()))
    }
}

/// Monte Carlo estimates `(mean, standard error)` of `E f_k(X_T^h)`, `[k][level]`.
#[allow(clippy::too_many_arguments)]
fn weak_estimates<P: Sde, Sch: Scheme, I: Increments>(
    sde: &P,
    scheme: Sch,
    inc: I,
    steps: &[usize],
    x0: &[f64],
    n_f: usize,
    f: Functionals<'_>,
    cv: Option<ControlVariate<'_>>,
    paths: u64,
    seed: u64,
) -> Vec<Vec<(f64, f64)>> {
    let run = WeakRun {
        solver: Solver::new(sde, scheme, inc).unwrap(),
        steps: steps.to_vec(),
        x0: x0.to_vec(),
        n_f,
        f,
        cv,
    };
    let stats = Ensemble::new(paths, seed).unwrap().run(&run);
    assert_eq!(stats.diverged_total(), 0);
    (0..n_f)
        .map(|k| {
            (0..steps.len())
                .map(|l| {
                    let s = stats.summary(0, l * n_f + k);
                    (s.mean, s.std_err)
                })
                .collect()
        })
        .collect()
}

/// `E e^{s ξ}` for one increment `ξ` over a step `h`.
fn mgf<I: Increments>(s: f64, h: f64) -> f64 {
    match I::NAME {
        "gaussian" => (0.5 * s * s * h).exp(),
        "two_point" => (s * h.sqrt()).cosh(),
        "three_point" => (2.0 + (s * (3.0 * h).sqrt()).cosh()) / 3.0,
        other => panic!("no moment generating function for {other}"),
    }
}

/// The control variate of GBM for `f = (x, x²)`: `X_exact = x0 exp((μ − σ²/2) T + σ W_T)`, with
/// `E X_exact^p = x0^p e^{p(μ − σ²/2)T} (E e^{pσξ})^n` when `W_T` is a sum of `n` increments `ξ`.
fn gbm_control<'a, I: Increments>(
    g: &GeometricBrownianMotion,
    x0: f64,
    steps: &[usize],
    exact: &'a (dyn Fn(&[f64]) -> Vec<f64> + Sync),
) -> ControlVariate<'a> {
    let means = steps
        .iter()
        .map(|&n| {
            let h = T / n as f64;
            [1.0, 2.0]
                .iter()
                .map(|&p| {
                    x0.powf(p)
                        * (p * (g.mu - 0.5 * g.sigma * g.sigma) * T).exp()
                        * mgf::<I>(p * g.sigma, h).powi(n as i32)
                })
                .collect()
        })
        .collect();
    ControlVariate { exact, means }
}

fn first_two(x: &[f64], o: &mut [f64]) {
    o[0] = x[0];
    o[1] = x[0] * x[0];
}

const WEAK_MC_STEPS: [usize; 6] = [16, 32, 64, 128, 256, 512];

/// Checks a Monte Carlo weak-order fit for GBM with `f = (x, x²)`:
/// - every estimate is within 4 standard errors of the exact expectation of the chain (the chain
///   enumerated with `support`), which ties the Monte Carlo machinery to the exact numbers;
/// - the fit uses the points whose weak error exceeds 10 standard errors (so each `log error`
///   carries at most 10% noise), at least 4 of them; its 95% interval contains `order` and has a
///   half-width below 0.25 (an order off by one half would fail).
#[allow(clippy::too_many_arguments)]
fn check_weak_mc<Sch: Scheme, I: Increments>(
    label: &str,
    g: &GeometricBrownianMotion,
    scheme: Sch,
    inc: I,
    support: &[(f64, f64)],
    paths: u64,
    seed: u64,
    order: f64,
) {
    let x0 = [1.0];
    let exact = |w: &[f64]| g.exact(T, &x0, w).unwrap();
    let cv = gbm_control::<I>(g, 1.0, &WEAK_MC_STEPS, &exact);
    let est = weak_estimates(
        g,
        scheme.clone(),
        inc,
        &WEAK_MC_STEPS,
        &x0,
        2,
        &first_two,
        Some(cv),
        paths,
        seed,
    );
    let truth = [g.moment(1.0, T, 1.0), g.moment(2.0, T, 1.0)];
    let chain: Vec<[f64; 2]> = WEAK_MC_STEPS
        .iter()
        .map(|&n| {
            let (m, s2) = chain_moments(g, &scheme, support, 0, T, n, &x0);
            [m[0], s2[(0, 0)]]
        })
        .collect();
    for (k, name) in ["E X", "E X^2"].iter().enumerate() {
        let mut h = Vec::new();
        let mut e = Vec::new();
        for (l, &n) in WEAK_MC_STEPS.iter().enumerate() {
            let (mean, se) = est[k][l];
            assert!(
                (mean - chain[l][k]).abs() < 4.0 * se,
                "{label}, {name}, h = 1/{n}: Monte Carlo {mean} ± {se} vs chain {}",
                chain[l][k]
            );
            let err = (mean - truth[k]).abs();
            if err > 10.0 * se {
                h.push(T / n as f64);
                e.push(err);
            }
        }
        assert!(
            h.len() >= 4,
            "{label}, {name}: only {} points resolved",
            h.len()
        );
        let fit = fit_order(&h, &e).unwrap();
        println!(
            "weak MC {label:<30} {name:<6} slope {:.3}  95% CI [{:.3}, {:.3}]  {} points  errors {}  (SE ≤ {:.1e})",
            fit.slope,
            fit.slope_ci95.0,
            fit.slope_ci95.1,
            h.len(),
            fmt_list(&e),
            est[k].iter().map(|p| p.1).fold(0.0, f64::max)
        );
        assert!(fit.contains(order), "{label}, {name}: {fit:?}");
        assert!(
            fit.slope_ci95.1 - fit.slope_ci95.0 < 0.5,
            "{label}, {name}: {fit:?}"
        );
    }
}

#[test]
fn weak_order_euler_maruyama_monte_carlo() {
    // μ < 0 keeps the O(h²) terms of the error small on h = 2^-4 .. 2^-9: the exact chain
    // expectations give local slopes within 0.007 of 1 for both functionals.
    let g = GeometricBrownianMotion::new(-1.0, 0.5).unwrap();
    check_weak_mc(
        "EM, Gaussian, GBM",
        &g,
        EulerMaruyama,
        Gaussian,
        &TWO_POINT,
        20_000,
        1,
        1.0,
    );
    check_weak_mc(
        "EM, two-point, GBM",
        &g,
        EulerMaruyama,
        TwoPoint,
        &TWO_POINT,
        5_000,
        1,
        1.0,
    );
}

#[test]
fn weak_order_platen_monte_carlo() {
    // On h = 2^-4 .. 2^-9 the exact chain expectations give slopes 1.988 (E X) and 1.986 (E X²).
    let g = GeometricBrownianMotion::new(1.0, 0.3).unwrap();
    check_weak_mc(
        "Platen, Gaussian, GBM",
        &g,
        PlatenWeak2,
        Gaussian,
        &THREE_POINT,
        50_000,
        1,
        2.0,
    );
    check_weak_mc(
        "Platen, three-point, GBM",
        &g,
        PlatenWeak2,
        ThreePoint,
        &THREE_POINT,
        10_000,
        1,
        2.0,
    );
}

/// Plain Monte Carlo (no control variate) of `E X_i` and `E X_i X_j` at coarse steps, compared with
/// the exact expectations of the chain within 4 standard errors; the weak errors themselves (in
/// standard errors) are printed.
#[allow(clippy::too_many_arguments)]
fn check_plain_mc<P: Sde + Moments, Sch: Scheme, I: Increments>(
    label: &str,
    sde: &P,
    scheme: Sch,
    inc: I,
    support: &[(f64, f64)],
    aux_bits: u32,
    x0: &[f64],
    paths: u64,
    seed: u64,
) {
    let steps = [2usize, 4, 8];
    let d = sde.dim();
    let n_f = d + d * (d + 1) / 2;
    let f = move |x: &[f64], o: &mut [f64]| {
        let s = outer(x, x);
        o.copy_from_slice(&moments_vector(x, &s));
    };
    let est = weak_estimates(
        sde,
        scheme.clone(),
        inc,
        &steps,
        x0,
        n_f,
        &f,
        None,
        paths,
        seed,
    );
    let truth = exact_moments(sde, T, x0);
    for (l, &n) in steps.iter().enumerate() {
        let (m, s2) = chain_moments(sde, &scheme, support, aux_bits, T, n, x0);
        let chain = moments_vector(&m, &s2);
        let mut z_err = Vec::new();
        for k in 0..n_f {
            let (mean, se) = est[k][l];
            assert!(
                (mean - chain[k]).abs() < 4.0 * se,
                "{label}, functional {k}, h = 1/{n}: Monte Carlo {mean} ± {se} vs chain {}",
                chain[k]
            );
            z_err.push(format!("{:.1}", (mean - truth[k]) / se));
        }
        println!(
            "plain MC {label:<40} h = 1/{n}: weak errors in SE [{}]",
            z_err.join(", ")
        );
    }
}

#[test]
fn plain_monte_carlo_matches_exact_chain_expectations() {
    let nc = LinearSde::noncommutative_2d();
    let x0 = [1.0, 0.5];
    let p = 200_000;
    check_plain_mc(
        "Platen, three-point, non-commutative",
        &nc,
        PlatenWeak2,
        ThreePoint,
        &THREE_POINT,
        1,
        &x0,
        p,
        7,
    );
    check_plain_mc(
        "Platen, Gaussian, non-commutative",
        &nc,
        PlatenWeak2,
        Gaussian,
        &THREE_POINT,
        1,
        &x0,
        p,
        7,
    );
    check_plain_mc(
        "EM, two-point, non-commutative",
        &nc,
        EulerMaruyama,
        TwoPoint,
        &TWO_POINT,
        0,
        &x0,
        p,
        7,
    );
    check_plain_mc(
        "EM, Gaussian, non-commutative",
        &nc,
        EulerMaruyama,
        Gaussian,
        &TWO_POINT,
        0,
        &x0,
        p,
        7,
    );
    let ou = OrnsteinUhlenbeck::spiral_2d();
    let x0 = [2.0, -1.0];
    check_plain_mc(
        "Platen, three-point, OU 2-D",
        &ou,
        PlatenWeak2,
        ThreePoint,
        &THREE_POINT,
        0,
        &x0,
        p,
        8,
    );
    check_plain_mc(
        "EM, two-point, OU 2-D",
        &ou,
        EulerMaruyama,
        TwoPoint,
        &TWO_POINT,
        0,
        &x0,
        p,
        8,
    );
    let td = TimeDependentLinear::new(0.5, 1.0, 0.4, 0.3).unwrap();
    check_plain_mc(
        "Platen, three-point, time-dependent",
        &td,
        PlatenWeak2,
        ThreePoint,
        &THREE_POINT,
        0,
        &[1.0],
        p,
        9,
    );
    check_plain_mc(
        "Platen, Gaussian, time-dependent",
        &td,
        PlatenWeak2,
        Gaussian,
        &THREE_POINT,
        0,
        &[1.0],
        p,
        9,
    );
}
