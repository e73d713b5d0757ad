//! The SDE models (A) first order, (B) second order, (C) stability-aware of MATH.md §5, as built
//! by `Optimizer::sde`.
//!
//! * Parabola: drift exactly `−a x` with `a = λ`, `λ(1 + ηλ/2)`, `λ(1 − ηλ/2)` and diffusion
//!   `√η c`; both tables of MATH.md §7 reproduced from the discrete recursion and the OU closed
//!   forms with the extracted coefficients, and their orders fitted.
//! * Monte Carlo of each model with `sde_core` against the OU closed forms.
//! * Schedules: the `η̇_t` term of (B) for a polynomial schedule, and the state-dependent
//!   derivative `J_M M` for the gradient-normalized schedules, against finite differences.
//! * DSignSGD (A) against the Student-t formula of MATH.md §5.4.
//! * Noise shapes and which schemes accept them.

// Loops over coordinates index several parallel arrays, as the formulas do.
#![allow(clippy::needless_range_loop)]

mod common;
use common::{gaussian, student, uncompressed};

use models::compress::{BernoulliSparsifier, CompressorKind, RandK};
use models::loss::{DiagonalQuadratic, Loss, MixedQuadraticQuartic, Quadratic};
use models::method::{Agent, Dcsgd, Dsgd, DsignSgd, GradientMethod};
use models::optimizer::Optimizer;
use models::schedule::Schedule;
use models::sde::{ModelSde, SdeModel};
use models::special::xi;
use sde_core::testing::assert_order;
use sde_core::{
    fit_order, Ensemble, EulerMaruyama, Gaussian, Grid, Milstein, NoiseShape, PlatenWeak2, Sde,
    SdePaths, Solver,
};

// ---------------------------------------------------------------------------------------------
// Helpers

/// DSGD on `½ Σ λ_j x_j²` with one Gaussian agent per `σ0_i` (scale `scale`, `σ1 = 0`).
fn dsgd_parabola(
    lambda: &[f64],
    scale: &[f64],
    sigma0: &[f64],
    schedule: Schedule,
) -> Optimizer<DiagonalQuadratic, Dsgd> {
    let agents = sigma0
        .iter()
        .map(|&s0| uncompressed(gaussian(scale, s0, 0.0)))
        .collect();
    Optimizer::new(
        DiagonalQuadratic::new(lambda.to_vec()).unwrap(),
        Dsgd::new(agents).unwrap(),
        schedule,
    )
    .unwrap()
}

fn drift<S: Sde>(sde: &S, t: f64, x: &[f64]) -> Vec<f64> {
    let mut out = vec![0.0; sde.dim()];
    let mut scratch = vec![0.0; sde.scratch_len()];
    sde.drift(t, x, &mut out, &mut scratch);
    out
}

fn diffusion<S: Sde>(sde: &S, t: f64, x: &[f64]) -> Vec<f64> {
    let mut out = vec![0.0; sde.noise().diffusion_len(sde.dim())];
    let mut scratch = vec![0.0; sde.scratch_len()];
    sde.diffusion(t, x, &mut out, &mut scratch);
    out
}

fn rel_close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * a.abs().max(b.abs()).max(1e-300)
}

/// The drift coefficient `a` of the model on the parabola: `a = λ`, `λ(1 + ηλ/2)`,
/// `λ(1 − ηλ/2)` (MATH.md §7).
fn coefficient(model: SdeModel, lambda: f64, eta: f64) -> f64 {
    match model {
        SdeModel::FirstOrder => lambda,
        SdeModel::SecondOrder => lambda * (1.0 + eta * lambda / 2.0),
        SdeModel::Stability => lambda * (1.0 - eta * lambda / 2.0),
    }
}

// ---------------------------------------------------------------------------------------------
// Parabola: exact coefficients

/// 1-D and 2-D diagonal parabolas, four heterogeneous Gaussian agents (`σ1 = 0`), constant
/// schedule: the drift is `−a_j x_j` at every `x` (relative 1e-14), the noise is declared
/// `Diagonal`, and the diffusion is `√η c_j` with `c_j² = s_j² Σ_i σ0_i² / N²` at every `(t, x)`.
#[test]
fn parabola_drift_and_diffusion_are_exact() {
    let sigma0 = [0.5, 1.0, 1.5, 2.0];
    let sum_s0: f64 = sigma0.iter().map(|s| s * s).sum();
    let eta = 0.1;
    for (lambda, scale) in [(vec![1.7], vec![1.0]), (vec![1.0, 3.0], vec![1.0, 0.5])] {
        let opt = dsgd_parabola(&lambda, &scale, &sigma0, Schedule::constant());
        let d = lambda.len();
        for model in SdeModel::ALL {
            let sde = opt.sde(model, eta).unwrap();
            assert_eq!(sde.noise(), NoiseShape::Diagonal);
            for (t, x) in [(0.0, [1.0, -2.0]), (0.37, [-0.3, 0.25]), (5.0, [3.0, 1e-3])] {
                let x = &x[..d];
                let b = drift(&sde, t, x);
                let s = diffusion(&sde, t, x);
                for j in 0..d {
                    let a = coefficient(model, lambda[j], eta);
                    assert!(
                        rel_close(b[j], -a * x[j], 1e-14),
                        "{model:?}: drift {} vs {}",
                        b[j],
                        -a * x[j]
                    );
                    let c = scale[j] * sum_s0.sqrt() / sigma0.len() as f64;
                    assert!(rel_close(s[j], eta.sqrt() * c, 1e-14), "{model:?}");
                }
            }
        }
    }
}

/// `a` and `c` read off the built SDE (`a = −b(1)`, `c = σ(1)/√η`) and the discrete one-step
/// standard deviation from the method's `cov_sqrt_diag`.
fn extracted(model: SdeModel, eta: f64, sigma0: &[f64]) -> (f64, f64, f64) {
    let opt = dsgd_parabola(&[1.0], &[1.0], sigma0, Schedule::constant());
    let sde = opt.sde(model, eta).unwrap();
    let a = -drift(&sde, 0.0, &[1.0])[0];
    let c = diffusion(&sde, 0.0, &[1.0])[0] / eta.sqrt();
    let mut sd = [0.0];
    let m = opt.method();
    m.cov_sqrt_diag(&[1.0], &mut sd, &mut vec![0.0; m.scratch_len()]);
    (a, c, sd[0])
}

/// `|v − table| ≤` half a unit in the third significant digit of the table entry.
fn three_digits(v: f64, table: f64) -> bool {
    let unit = 10f64.powf(table.abs().log10().floor() - 2.0);
    (v - table).abs() <= 0.5 * unit * (1.0 + 1e-9)
}

/// The weak errors of MATH.md §7 on `f = x²/2` (`λ = x0 = T = 1`), for (A), (B), (C):
/// `|E x_K − E X_T|` without noise, and `|E x_K² − E X_T²|` with `σ = 1`.
fn parabola_errors(model: SdeModel, eta: f64) -> (f64, f64) {
    let (x0, t_end) = (1.0, 1.0);
    let k = (t_end / eta).round() as usize;
    // No noise: a single agent with σ0 = 0.
    let (a, c0, sd0) = extracted(model, eta, &[0.0]);
    assert_eq!((c0, sd0), (0.0, 0.0));
    // σ = 1 as the mean of four heterogeneous agents: Σ σ0_i² / N² = (1 + 1 + 7 + 7)/16 = 1.
    let (a_noisy, c, sd) = extracted(model, eta, &[1.0, 1.0, 7f64.sqrt(), 7f64.sqrt()]);
    assert_eq!(a, a_noisy);
    // Discrete recursion: x ← (1 − ηλ) x, E x² ← (1 − ηλ)² E x² + η² σ².
    let q = 1.0 - eta; // 1 − ηλ with λ = 1
    let (mut m, mut m2) = (x0, x0 * x0);
    for _ in 0..k {
        m *= q;
        m2 = q * q * m2 + eta * eta * sd * sd;
    }
    assert!(rel_close(m, q.powi(k as i32) * x0, 1e-13));
    // OU closed forms of dX = −aX dt + √η c dW.
    let e = (-a * t_end).exp();
    let mean_sde = e * x0;
    let second_sde = e * e * x0 * x0 + eta * c * c * (1.0 - e * e) / (2.0 * a);
    ((m - mean_sde).abs(), (m2 - second_sde).abs())
}

/// Both tables of MATH.md §7 to three significant digits, and the fitted orders.
///
/// The errors are deterministic, so the "95% interval" of `fit_order` measures the curvature of
/// `log err` against `log η` left by the next-order terms (`err = Cη^p (1 + Dη + …)`), not noise.
/// On the table's four step sizes that pre-asymptotic bias of the slope (≈ 0.01–0.1) is larger
/// than the interval for four of the six fits, so the intervals do not all contain p; the slopes
/// are within 0.1 of p there. On η = 2⁻⁸…2⁻¹¹ the slopes are within 0.01 of p (the bias is
/// O(η)), which is the asymptotic statement the orders make.
#[test]
fn parabola_tables_and_orders() {
    let etas = [0.1, 0.05, 0.025, 0.0125];
    let mean_table = [
        [1.92e-2, 1.26e-3, 3.81e-2],
        [9.39e-3, 3.11e-4, 1.87e-2],
        [4.65e-3, 7.71e-5, 9.27e-3],
        [2.31e-3, 1.92e-5, 4.62e-3],
    ];
    let second_table = [
        [1.08e-2, 3.57e-3, 2.65e-2],
        [6.09e-3, 8.73e-4, 1.34e-2],
        [3.22e-3, 2.16e-4, 6.74e-3],
        [1.65e-3, 5.37e-5, 3.38e-3],
    ];
    let fine = [2f64.powi(-8), 2f64.powi(-9), 2f64.powi(-10), 2f64.powi(-11)];
    for (col, model) in SdeModel::ALL.into_iter().enumerate() {
        let p = model.weak_order();
        let (mut e1, mut e2) = (vec![], vec![]);
        for (row, &eta) in etas.iter().enumerate() {
            let (m, s) = parabola_errors(model, eta);
            assert!(
                three_digits(m, mean_table[row][col]),
                "{model:?} η = {eta}: mean error {m:.4e} vs table {:.2e}",
                mean_table[row][col]
            );
            assert!(
                three_digits(s, second_table[row][col]),
                "{model:?} η = {eta}: E x² error {s:.4e} vs table {:.2e}",
                second_table[row][col]
            );
            e1.push(m);
            e2.push(s);
        }
        for (what, errs) in [("E x", &e1), ("E x²", &e2)] {
            let fit = fit_order(&etas, errs).unwrap();
            println!(
                "{:>12} {what:>4}: order {:.4}, 95% [{:.4}, {:.4}] (table η), contains {p}: {}",
                model.name(),
                fit.slope,
                fit.slope_ci95.0,
                fit.slope_ci95.1,
                fit.contains(p)
            );
            assert_order(&format!("{model:?} {what}"), &fit, p, 0.1);
        }
        let (f1, f2): (Vec<f64>, Vec<f64>) =
            fine.iter().map(|&e| parabola_errors(model, e)).unzip();
        for (what, errs) in [("E x", &f1), ("E x²", &f2)] {
            let fit = fit_order(&fine, errs).unwrap();
            println!(
                "{:>12} {what:>4}: order {:.4}, 95% [{:.4}, {:.4}] (η = 2^-8..2^-11)",
                model.name(),
                fit.slope,
                fit.slope_ci95.0,
                fit.slope_ci95.1
            );
            assert_order(&format!("{model:?} {what}"), &fit, p, 0.01);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Monte Carlo against the OU closed forms

/// Exact moments after `n` steps of Platen's weak-2 scheme on `dX = −αX dt + β dW` (constant
/// `β`): the step is `X' = R X + (1 − αh/2) β ΔW` with `R = 1 − αh + α²h²/2` (additive noise,
/// linear drift), so `E X_n = Rⁿ x0` and
/// `E X_n² = R²ⁿ x0² + (1 − αh/2)² β² h (1 − R²ⁿ)/(1 − R²)`.
fn weak2_moments(alpha: f64, beta: f64, h: f64, n: i32, x0: f64) -> (f64, f64) {
    let r = 1.0 - alpha * h + 0.5 * alpha * alpha * h * h;
    let g = 1.0 - 0.5 * alpha * h;
    let rn = r.powi(n);
    let noise = g * g * beta * beta * h * (1.0 - rn * rn) / (1.0 - r * r);
    (rn * x0, rn * rn * x0 * x0 + noise)
}

/// Each model on a 2-D diagonal parabola with four heterogeneous Gaussian agents, integrated by
/// `PlatenWeak2` with Gaussian increments and 20 steps over `T = 1` (100k paths): `E X_T` and
/// `E X_T²` against the OU closed forms `e^{−aT} x0` and
/// `e^{−2aT} x0² + η c² (1 − e^{−2aT})/(2a)` within 4 SE plus the scheme's bias.
///
/// The bias bound is the scheme's bias itself, computed exactly for this linear problem by
/// [`weak2_moments`] (it is `O(h²)`: at most 6e-4 here, comparable to the SE, so the check is
/// sharp).
#[test]
fn models_match_ou_moments_by_monte_carlo() {
    let lambda = [1.0, 2.0];
    let scale = [1.0, 0.5];
    let sigma0 = [0.5, 1.0, 1.5, 2.0];
    let (eta, t_end, steps, x0) = (0.1, 1.0, 20, [1.0, -1.0]);
    let h = t_end / steps as f64;
    let opt = dsgd_parabola(&lambda, &scale, &sigma0, Schedule::constant());
    let c2 = sigma0.iter().map(|s| s * s).sum::<f64>() / 16.0;
    for (seed, model) in SdeModel::ALL.into_iter().enumerate() {
        let sde = opt.sde(model, eta).unwrap();
        let solver = Solver::new(&sde, PlatenWeak2, Gaussian).unwrap();
        let grid = Grid::new(0.0, t_end, steps).unwrap().save_final();
        let paths = SdePaths::new(solver, grid, &x0).unwrap().observe_with(
            4,
            |_t, x: &[f64], o: &mut [f64]| {
                o[0] = x[0];
                o[1] = x[1];
                o[2] = x[0] * x[0];
                o[3] = x[1] * x[1];
            },
        );
        let stats = Ensemble::new(100_000, 40 + seed as u64)
            .unwrap()
            .run(&paths);
        for j in 0..2 {
            let a = coefficient(model, lambda[j], eta);
            let beta2 = eta * scale[j] * scale[j] * c2;
            let e = (-a * t_end).exp();
            let exact_mean = e * x0[j];
            let exact_second = e * e * x0[j] * x0[j] + beta2 * (1.0 - e * e) / (2.0 * a);
            let (s_mean, s_second) = weak2_moments(a, beta2.sqrt(), h, steps as i32, x0[j]);
            let (bias_m, bias_s) = (s_mean - exact_mean, s_second - exact_second);
            println!(
                "{model:?} coord {j}: weak-2 bias of E X_T {bias_m:.2e}, of E X_T² {bias_s:.2e}"
            );
            assert!(
                bias_m.abs() < 1e-3 && bias_s.abs() < 1e-3,
                "{bias_m} {bias_s}"
            );
            let m = stats.summary(1, j);
            let s = stats.summary(1, 2 + j);
            assert!(
                (m.mean - exact_mean).abs() <= 4.0 * m.std_err + bias_m.abs(),
                "{model:?} coord {j}: E X_T = {} ± {} vs OU {exact_mean} (bias {bias_m:.2e})",
                m.mean,
                m.std_err
            );
            assert!(
                (s.mean - exact_second).abs() <= 4.0 * s.std_err + bias_s.abs(),
                "{model:?} coord {j}: E X_T² = {} ± {} vs OU {exact_second} (bias {bias_s:.2e})",
                s.mean,
                s.std_err
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Schedules

fn mixed_loss() -> MixedQuadraticQuartic {
    MixedQuadraticQuartic::new(vec![1.0, 0.5, 2.0], vec![1.0, 1.0, 0.5]).unwrap()
}

fn hetero_gaussian_agents(sigma1: f64) -> Vec<Agent> {
    [[1.0, 0.5, 2.0], [0.5, 1.0, 1.0], [2.0, 0.7, 0.3]]
        .iter()
        .map(|s| uncompressed(gaussian(s, 1.0, sigma1)))
        .collect()
}

/// `x ↦ m(x) = μ(∇f(x))` of an optimizer.
fn mean_at<L: Loss, M: GradientMethod>(opt: &Optimizer<L, M>, x: &[f64]) -> Vec<f64> {
    let d = opt.dim();
    let mut g = vec![0.0; d];
    opt.loss().gradient(x, &mut g);
    let mut m = vec![0.0; d];
    opt.method()
        .mean(&g, &mut m, &mut vec![0.0; opt.method().scratch_len()]);
    m
}

/// `(F(x + h v) − F(x − h v)) / 2h`, `h = 1e-6`.
fn directional(f: impl Fn(&[f64]) -> Vec<f64>, x: &[f64], v: &[f64]) -> Vec<f64> {
    let h = 1e-6;
    let xp: Vec<f64> = x.iter().zip(v).map(|(a, b)| a + h * b).collect();
    let xm: Vec<f64> = x.iter().zip(v).map(|(a, b)| a - h * b).collect();
    f(&xp)
        .iter()
        .zip(f(&xm))
        .map(|(p, m)| (p - m) / (2.0 * h))
        .collect()
}

/// Polynomial schedule `η_t = (t/η + 1)^{−1/2}` (MATH.md §3) on a mixed quadratic–quartic loss,
/// DSGD and DSignSGD:
/// * (A) drift `= −η_t m` (relative 1e-14);
/// * (B) drift `= −η_t m − (η/2) η_t² J_m m + (η/2) η̇_t m` (MATH.md §5.1), with `η̇_t` and
///   `J_m m` by central differences (relative 1e-7 on the correction terms);
/// * (C) drift `= −η_t m + (η/2) η_t² J_m m`;
/// * DSGD's diffusion `η_t √η c` (time-only schedule, constant covariance: still `Diagonal`).
#[test]
fn polynomial_schedule_drifts() {
    let eta = 0.05;
    let schedule = Schedule::polynomial(0.5).unwrap();
    let eta_t = |t: f64| (t / eta + 1.0).powf(-0.5);
    let x = [0.7, -1.2, 0.4];
    let dsgd = Optimizer::new(
        mixed_loss(),
        Dsgd::new(hetero_gaussian_agents(0.0)).unwrap(),
        schedule,
    )
    .unwrap();
    let sign = Optimizer::new(
        mixed_loss(),
        DsignSgd::new(hetero_gaussian_agents(0.3)).unwrap(),
        schedule,
    )
    .unwrap();
    fn check<L: Loss, M: GradientMethod>(
        opt: &Optimizer<L, M>,
        eta: f64,
        eta_t: &dyn Fn(f64) -> f64,
        x: &[f64],
    ) {
        let m = mean_at(opt, x);
        let jmm = directional(|y| mean_at(opt, y), x, &m);
        for t in [0.0, 0.13, 1.7] {
            let et = eta_t(t);
            let dt = 1e-6;
            let et_dot = (eta_t(t + dt) - eta_t((t - dt).max(0.0))) / (t + dt - (t - dt).max(0.0));
            let a = drift(&opt.sde(SdeModel::FirstOrder, eta).unwrap(), t, x);
            let b = drift(&opt.sde(SdeModel::SecondOrder, eta).unwrap(), t, x);
            let c = drift(&opt.sde(SdeModel::Stability, eta).unwrap(), t, x);
            for j in 0..x.len() {
                assert!(rel_close(a[j], -et * m[j], 1e-14), "(A) t = {t}");
                let curvature = 0.5 * eta * et * et * jmm[j];
                let time_term = 0.5 * eta * et_dot * m[j];
                // The correction of (B) over (A): −(η/2)η_t² J_m m + (η/2) η̇_t m.
                let tol = 1e-7 * (curvature.abs() + time_term.abs());
                // At t = 0 η̇ comes from a one-sided difference: O(dt) truncation.
                let tol = if t == 0.0 {
                    1e-4 * time_term.abs() + tol
                } else {
                    tol
                };
                assert!(
                    ((b[j] - a[j]) - (-curvature + time_term)).abs() <= tol,
                    "{} (B) t = {t}, {j}: {} vs {}",
                    opt.method().name(),
                    b[j] - a[j],
                    -curvature + time_term
                );
                assert!(
                    ((c[j] - a[j]) - curvature).abs() <= 1e-7 * curvature.abs(),
                    "(C) t = {t}"
                );
            }
        }
    }
    check(&dsgd, eta, &eta_t, &x);
    check(&sign, eta, &eta_t, &x);
    // DSGD with a time-only schedule keeps diagonal noise; the diffusion scales with η_t.
    let sde = dsgd.sde(SdeModel::SecondOrder, eta).unwrap();
    assert_eq!(sde.noise(), NoiseShape::Diagonal);
    let scales = [[1.0, 0.5, 2.0], [0.5, 1.0, 1.0], [2.0, 0.7, 0.3]];
    for t in [0.0, 0.7] {
        let s = diffusion(&sde, t, &x);
        for j in 0..3 {
            let c = scales.iter().map(|s| s[j] * s[j]).sum::<f64>().sqrt() / 3.0;
            assert!(rel_close(s[j], eta_t(t) * eta.sqrt() * c, 1e-14));
        }
    }
}

/// Gradient-normalized schedules (MATH.md §6.3's normalisation and plain normalised SGD):
/// with the effective mean `M(x) = η_t(‖∇f(x)‖) m(x)`, (A) is `−M`, (B) is `−M − (η/2) J_M M`
/// and (C) is `−M + (η/2) J_M M`, with `J_M M` by central differences of `M` along `M`
/// (relative 1e-6 on the correction). This checks the state-dependent schedule derivative
/// `∇_x η_t · m` of sde.rs, which a time-only `η̇_t` would miss.
#[test]
fn normalized_schedule_drift_matches_finite_differences() {
    let eta = 0.05;
    let x = [0.7, -1.2, 0.4];
    let schedules = [
        Schedule::normalized(1.0, 0.5, 4.0, 1.0, 0.3, 0.2).unwrap(),
        Schedule::normalized_sgd(0.5, 0.1).unwrap(),
    ];
    fn check<L: Loss, M: GradientMethod>(opt: &Optimizer<L, M>, eta: f64, x: &[f64]) {
        let big_m = |y: &[f64]| {
            let mut g = vec![0.0; y.len()];
            opt.loss().gradient(y, &mut g);
            let n = g.iter().map(|v| v * v).sum::<f64>().sqrt();
            let et = opt.schedule().eta_t(0.0, eta, n);
            mean_at(opt, y).iter().map(|m| et * m).collect::<Vec<f64>>()
        };
        let m = big_m(x);
        let jmm = directional(big_m, x, &m);
        let t = 0.4; // the schedules do not depend on t
        let a = drift(&opt.sde(SdeModel::FirstOrder, eta).unwrap(), t, x);
        let b = drift(&opt.sde(SdeModel::SecondOrder, eta).unwrap(), t, x);
        let c = drift(&opt.sde(SdeModel::Stability, eta).unwrap(), t, x);
        // The schedule factor alone must not be what J_M M reduces to: the ∇η term is non-zero.
        let m_only = directional(|y| mean_at(opt, y), x, &m);
        let mut differs = false;
        for j in 0..x.len() {
            let corr = 0.5 * eta * jmm[j];
            assert!(rel_close(a[j], -m[j], 1e-14));
            assert!(
                ((b[j] - a[j]) + corr).abs() <= 1e-6 * corr.abs(),
                "{} (B), {j}: {} vs {}",
                opt.method().name(),
                b[j] - a[j],
                -corr
            );
            assert!(((c[j] - a[j]) - corr).abs() <= 1e-6 * corr.abs(), "(C) {j}");
            let et = m[j] / mean_at(opt, x)[j];
            differs |= (jmm[j] - et * m_only[j]).abs() > 1e-3 * jmm[j].abs();
        }
        assert!(
            differs,
            "the schedule's state dependence should change J_M M"
        );
    }
    for schedule in schedules {
        let dsgd = Optimizer::new(
            mixed_loss(),
            Dsgd::new(hetero_gaussian_agents(0.3)).unwrap(),
            schedule,
        )
        .unwrap();
        check(&dsgd, eta, &x);
        let sign = Optimizer::new(
            mixed_loss(),
            DsignSgd::new(hetero_gaussian_agents(0.3)).unwrap(),
            schedule,
        )
        .unwrap();
        check(&sign, eta, &x);
    }
}

// ---------------------------------------------------------------------------------------------
// DSignSGD against MATH.md §5.4

/// `Ξ_ν` in closed form for ν = 1, 3 (MATH.md §5.5), else `models::special::xi`.
fn xi_ref(nu: f64, y: f64) -> f64 {
    use std::f64::consts::PI;
    if nu == 1.0 {
        y.atan() / PI
    } else if nu == 3.0 {
        let z = y / 3f64.sqrt();
        (z.atan() + z / (1.0 + y * y / 3.0)) / PI
    } else {
        xi(nu, y)
    }
}

/// DSignSGD (A) with Student-t agents of heterogeneous diagonal scales `S_i = diag(s_i²)`:
/// drift `−η_t (2/N) Σ_i Ξ_ν(g/s_i)` and diffusion `η_t √(η/N) √(I − (4/N) Σ_i diag(Ξ_ν(g/s_i)²))`
/// (MATH.md §5.4, `C = Σ̄_s/N`). The loss is separable and `σ1 = 0`, so `b_jj` depends on `x_j`
/// only: `Diagonal` noise (the diagonal layout). Polynomial schedule at `t = 0.3`.
#[test]
fn dsignsgd_first_order_matches_student_t_formula() {
    let eta = 0.05;
    let t = 0.3;
    let et = (t / eta + 1.0f64).powf(-0.5);
    let scales = [[0.5, 1.0, 2.0], [1.0, 1.0, 1.0], [2.0, 0.3, 0.7]];
    let x = [0.7, -1.2, 0.4];
    let loss = mixed_loss();
    let mut g = [0.0; 3];
    loss.gradient(&x, &mut g);
    for nu in [1.0, 1.5, 3.0] {
        let agents: Vec<Agent> = scales
            .iter()
            .map(|s| uncompressed(student(nu, s, 1.0, 0.0)))
            .collect();
        let n = agents.len() as f64;
        let opt = Optimizer::new(
            mixed_loss(),
            DsignSgd::new(agents).unwrap(),
            Schedule::polynomial(0.5).unwrap(),
        )
        .unwrap();
        let sde = opt.sde(SdeModel::FirstOrder, eta).unwrap();
        assert_eq!(sde.noise(), NoiseShape::Diagonal);
        assert!(!sde.diffusion_is_state_independent());
        let b = drift(&sde, t, &x);
        let s = diffusion(&sde, t, &x);
        for j in 0..3 {
            let xis: Vec<f64> = scales.iter().map(|sc| xi_ref(nu, g[j] / sc[j])).collect();
            let mean = 2.0 / n * xis.iter().sum::<f64>();
            assert!(rel_close(b[j], -et * mean, 1e-13), "ν = {nu}, {j}");
            let sigma_s = 1.0 - 4.0 / n * xis.iter().map(|v| v * v).sum::<f64>();
            let expected = et * (eta / n).sqrt() * sigma_s.sqrt();
            assert!(rel_close(s[j], expected, 1e-13), "ν = {nu}, {j}");
        }
        // diffusion_mul agrees with the diagonal.
        let dw = [0.3, -1.1, 0.8];
        let mut out = [0.0; 3];
        let mut buf = vec![0.0; 3];
        let mut scratch = vec![0.0; sde.scratch_len()];
        sde.diffusion_mul(t, &x, &dw, &mut out, &mut buf, &mut scratch);
        for j in 0..3 {
            assert!(rel_close(out[j], s[j] * dw[j], 1e-14));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Noise shapes

/// `Diagonal` exactly when the schedule is time-only and the covariance is diagonal and either
/// constant or coordinatewise (`C_jj` a function of `g_j`) on a separable loss; state-independent
/// exactly when the covariance is constant and the schedule time-only. Otherwise
/// `General { m: d, commutative: false }`, which Milstein rejects (d ≥ 2) while Euler–Maruyama
/// and the weak-2 scheme accept it.
#[test]
fn noise_shapes_and_milstein() {
    let d = 3;
    let eta = 0.1;
    let general = NoiseShape::General {
        m: d,
        commutative: false,
    };
    let loss = || MixedQuadraticQuartic::new(vec![1.0; 3], vec![1.0; 3]).unwrap();
    let normalized = Schedule::normalized_sgd(0.5, 0.1).unwrap();
    let poly = Schedule::polynomial(0.5).unwrap();
    fn shape_of<L: Loss, M: GradientMethod>(opt: &Optimizer<L, M>, eta: f64) -> NoiseShape {
        let shapes: Vec<NoiseShape> = SdeModel::ALL
            .iter()
            .map(|&m| opt.sde(m, eta).unwrap().noise())
            .collect();
        assert!(shapes.iter().all(|s| *s == shapes[0]));
        let sde: ModelSde<'_, _, _> = opt.sde(SdeModel::SecondOrder, eta).unwrap();
        let milstein = Solver::new(&sde, Milstein::default(), Gaussian).is_ok();
        assert_eq!(milstein, shapes[0].is_commutative());
        assert!(Solver::new(&sde, EulerMaruyama, Gaussian).is_ok());
        assert!(Solver::new(&sde, PlatenWeak2, Gaussian).is_ok());
        shapes[0]
    }
    let dsgd = |s1, schedule| {
        Optimizer::new(
            loss(),
            Dsgd::new(hetero_gaussian_agents(s1)).unwrap(),
            schedule,
        )
        .unwrap()
    };
    let independent = |opt: &Optimizer<MixedQuadraticQuartic, Dsgd>| {
        opt.sde(SdeModel::SecondOrder, eta)
            .unwrap()
            .diffusion_is_state_independent()
    };
    // Constant covariance, time-only schedule: diagonal, state-independent, Milstein accepted.
    assert_eq!(
        shape_of(&dsgd(0.0, Schedule::constant()), eta),
        NoiseShape::Diagonal
    );
    assert_eq!(shape_of(&dsgd(0.0, poly), eta), NoiseShape::Diagonal);
    assert!(independent(&dsgd(0.0, poly)));
    assert!(!independent(&dsgd(0.3, poly)));
    assert!(!independent(&dsgd(0.0, normalized)));
    // State-dependent: through the noise (σ1 > 0) or through the schedule.
    assert_eq!(shape_of(&dsgd(0.3, Schedule::constant()), eta), general);
    assert_eq!(shape_of(&dsgd(0.0, normalized), eta), general);
    let sdsgd = dsgd(0.3, Schedule::constant());
    let sde = sdsgd.sde(SdeModel::FirstOrder, eta).unwrap();
    assert!(Solver::new(&sde, Milstein::default(), Gaussian).is_err());
    // DCSGD and DSignSGD covariances depend on ∇f: coordinatewise for Bernoulli (and the
    // identity) with σ1 = 0 on this separable loss, so diagonal noise; rand-k's rank-one part
    // and σ1 > 0 couple the coordinates.
    let bern = BernoulliSparsifier::new(0.5).unwrap();
    let randk = RandK::new(1, d).unwrap();
    let dcsgd = |s1, compressor: CompressorKind| {
        let agents = hetero_gaussian_agents(s1)
            .into_iter()
            .map(|a| Agent {
                noise: a.noise,
                compressor,
            })
            .collect();
        Optimizer::new(loss(), Dcsgd::new(agents).unwrap(), Schedule::constant()).unwrap()
    };
    assert_eq!(
        shape_of(&dcsgd(0.0, bern.into()), eta),
        NoiseShape::Diagonal
    );
    assert_eq!(shape_of(&dcsgd(0.3, bern.into()), eta), general);
    assert_eq!(shape_of(&dcsgd(0.0, randk.into()), eta), general);
    let sign = |s1, schedule| {
        Optimizer::new(
            loss(),
            DsignSgd::new(hetero_gaussian_agents(s1)).unwrap(),
            schedule,
        )
        .unwrap()
    };
    assert_eq!(
        shape_of(&sign(0.0, Schedule::constant()), eta),
        NoiseShape::Diagonal
    );
    assert_eq!(shape_of(&sign(0.3, Schedule::constant()), eta), general);
    assert_eq!(shape_of(&sign(0.0, normalized), eta), general);
    // A non-separable loss couples b_jj to every coordinate through ∇f.
    let coupled = Optimizer::new(
        Quadratic::new(vec![
            vec![1.0, 0.3, 0.0],
            vec![0.3, 1.0, 0.2],
            vec![0.0, 0.2, 2.0],
        ])
        .unwrap(),
        DsignSgd::new(hetero_gaussian_agents(0.0)).unwrap(),
        Schedule::constant(),
    )
    .unwrap();
    assert_eq!(shape_of(&coupled, eta), general);
    // In one dimension a single Brownian motion is always commutative: Milstein accepts it.
    let one = Optimizer::new(
        MixedQuadraticQuartic::new(vec![1.0], vec![1.0]).unwrap(),
        Dsgd::new(vec![uncompressed(gaussian(&[1.0], 1.0, 0.3))]).unwrap(),
        Schedule::constant(),
    )
    .unwrap();
    let sde = one.sde(SdeModel::FirstOrder, eta).unwrap();
    assert_eq!(
        sde.noise(),
        NoiseShape::General {
            m: 1,
            commutative: false
        }
    );
    assert!(Solver::new(&sde, Milstein::default(), Gaussian).is_ok());
}
