//! Common random numbers (`models::coupling`, `GradientMethod::sample_coupled`).
//!
//! * The inverse CDFs against the CDFs they invert (round trip), and the Poisson-binomial
//!   quantile against brute-force enumeration.
//! * For every method / noise / compressor: the coupled direction has exactly the law of
//!   `sample`: its mean and covariance against the analytic `μ(g)` and `C = B Bᵀ` (from
//!   `cov_sqrt_mul`), its sign mean against `sample`'s, and a two-sample Kolmogorov–Smirnov test
//!   per coordinate against `sample` draws. `ζ` is `N(0, I)`: moments, a one-sample KS test per
//!   coordinate, and zero cross-correlation.
//! * The coupling strength: the residual fraction `Var(u_j − μ_j − (C^{1/2}ζ)_j) / Var(u_j − μ_j)`,
//!   printed (`cargo test -p models --test coupling -- --nocapture`) and bounded per method.
//!
//! Fixed seeds; margins in units of the Monte Carlo standard error (SE) stated at each assertion.
//! KS tests use the asymptotic critical value at level 1e-4 (`√(ln(2/α)/2) = 2.23`), conservative
//! for the discrete laws (atoms) of sparsified and sign directions.

#![allow(clippy::needless_range_loop)]

mod common;
use common::{agent, gaussian, sign, student};

use models::compress::diag_minus_rank_one_sqrt_mul;
use models::compress::{BernoulliSparsifier, Identity, Qsgd, RandK};
use models::coupling::{
    cholesky_normals, fast_normal_cdf, normal_quantile, poisson_binomial_quantile,
    student_t_quantile, BernoulliAverage, NormalTails, RandKAverage,
};
use models::method::{Agent, Dcsgd, Dsgd, DsignSgd, GradientMethod, Method};
use models::special::{normal_cdf, student_t_cdf};
use rand_distr::{Distribution, StandardNormal};
use sde_core::{derive_stream, PathRng};

/// `√(ln(2/α)/2)` at `α = 1e-4`.
const KS_C: f64 = 2.2255;

// ---------------------------------------------------------------------------------------------
// Building blocks

/// The fast normal CDF (Mills' ratio by Taylor series around tabulated nodes) against
/// `special::normal_cdf` (erf series / continued fraction), relative, over both tails.
#[test]
fn fast_normal_cdf_matches_the_reference() {
    let mut worst = 0.0f64;
    for i in 0..=45_000 {
        let x = -37.0 + i as f64 * 1e-3;
        let (a, b) = (fast_normal_cdf(x), normal_cdf(x));
        let rel = ((a - b) / b).abs();
        worst = worst.max(rel);
        // Φ is ill-conditioned in the tail (relative condition number ≈ x²): rounding of x
        // itself moves both routines by ~1e-16·x².
        let tol = 1e-15 * (30.0 + 2.0 * x * x);
        assert!(rel <= tol, "x = {x}: {a} vs {b} (rel {rel:e})");
        let t = NormalTails::of(x);
        assert_eq!(t.lower, a);
        assert!(
            ((t.upper - normal_cdf(-x)) / normal_cdf(-x)).abs() <= tol,
            "upper at {x}"
        );
    }
    println!("fast_normal_cdf: worst relative difference {worst:e}");
}

#[test]
fn normal_quantile_inverts_the_cdf() {
    for &p in &[
        1e-300,
        1e-100,
        1e-20,
        1e-8,
        1e-3,
        0.02,
        0.2,
        0.4,
        0.5 - 1e-9,
        0.5,
    ] {
        let x = normal_quantile(p);
        let back = normal_cdf(x);
        assert!((back - p).abs() <= 1e-12 * p, "p = {p}: Φ(Φ⁻¹(p)) = {back}");
        // Symmetry, at the p' = 1 − (1 − p) that `1 − p` actually represents.
        let q = 1.0 - p;
        assert_eq!(
            normal_quantile(q),
            -normal_quantile(1.0 - q),
            "symmetry at p = {p}"
        );
    }
    assert_eq!(normal_quantile(0.0), f64::NEG_INFINITY);
    assert_eq!(normal_quantile(1.0), f64::INFINITY);
}

#[test]
fn student_t_quantile_inverts_the_cdf() {
    for &nu in &[0.7, 1.0, 1.5, 2.5, 3.0, 5.0, 40.0] {
        for &p in &[1e-12, 1e-6, 1e-3, 0.05, 0.3, 0.45, 0.4999999] {
            let t = student_t_quantile(nu, p);
            let back = student_t_cdf(nu, t);
            assert!(
                (back - p).abs() <= 1e-11 * p,
                "ν = {nu}, p = {p}: F(F⁻¹(p)) = {back} (t = {t})"
            );
            let q = 1.0 - p;
            assert_eq!(student_t_quantile(nu, q), -student_t_quantile(nu, 1.0 - q));
        }
    }
    // Cauchy closed form: F⁻¹(p) = tan(π(p − 1/2)).
    for &p in &[0.01, 0.2, 0.45] {
        let exact = (std::f64::consts::PI * (p - 0.5)).tan();
        assert!((student_t_quantile(1.0, p) - exact).abs() <= 1e-12 * exact.abs());
    }
}

/// `K = min{k : P(K ≤ k) ≥ U}` against the pmf enumerated over all `2ⁿ` outcomes: just below
/// each CDF breakpoint the quantile is `k`, just above it `k + 1`, from either tail's formula.
#[test]
fn poisson_binomial_quantile_matches_enumeration() {
    let q = [0.2, 0.7, 0.5, 0.95];
    let n = q.len();
    let mut pmf_exact = vec![0.0; n + 1];
    for outcome in 0u32..(1 << n) {
        let mut p = 1.0;
        for (i, qi) in q.iter().enumerate() {
            p *= if outcome >> i & 1 == 1 { *qi } else { 1.0 - qi };
        }
        pmf_exact[outcome.count_ones() as usize] += p;
    }
    let mut pmf = vec![0.0; n + 1];
    let trials = || q.iter().map(|&qi| (qi, 1.0 - qi));
    let mut cdf = 0.0;
    for k in 0..n {
        cdf += pmf_exact[k];
        for (u, expect) in [(cdf - 1e-9, k), (cdf + 1e-9, k + 1)] {
            let tails = NormalTails {
                lower: u,
                upper: 1.0 - u,
            };
            let got = poisson_binomial_quantile(trials(), tails, &mut pmf);
            assert_eq!(got, expect, "U = {u}");
        }
    }
    for k in 0..=n {
        assert!((pmf[k] - pmf_exact[k]).abs() <= 1e-15, "pmf[{k}]");
    }
}

/// `BernoulliAverage::quantile` inverts the mixture CDF it claims to: at `x = F⁻¹(Φ(ζ))`,
/// `F(x)` recomputed independently (binomial weights by `C(N, k)`, components by
/// `special::normal_cdf`) equals `Φ(ζ)` to 1e-11 of the smaller tail, and `x = 0` exactly when
/// `Φ(ζ)` falls in the atom. Over a grid of `ζ ∈ [−6, 6]` (tails the Halley stopping rule's
/// step prediction must get right) and laws from narrow to wide components and large atoms.
#[test]
fn bernoulli_average_quantile_inverts_the_mixture_cdf() {
    for &(n, p, g, s) in &[
        (8usize, 0.5, 0.6, 0.5),
        (8, 0.5, -0.3, 0.5),
        (8, 0.1, 2.0, 0.05),
        (3, 0.9, 0.0, 1.0),
        (20, 0.3, -1.5, 3.0),
    ] {
        let avg = BernoulliAverage::new(n, p);
        let binom = |k: usize| {
            let mut c = 1.0;
            for i in 0..k {
                c *= (n - i) as f64 / (i + 1) as f64;
            }
            c * p.powi(k as i32) * (1.0 - p).powi((n - k) as i32)
        };
        let scale = p * n as f64;
        // (F(x−), F(x)) and the same for the upper tail, from the components' own tails.
        let lower = |x: f64| -> f64 {
            let atom = if x >= 0.0 { binom(0) } else { 0.0 };
            atom + (1..=n)
                .map(|k| {
                    let (m, sd) = (k as f64 * g / scale, s * (k as f64).sqrt() / scale);
                    binom(k) * normal_cdf((x - m) / sd)
                })
                .sum::<f64>()
        };
        let upper = |x: f64| -> f64 {
            let atom = if x < 0.0 { binom(0) } else { 0.0 };
            atom + (1..=n)
                .map(|k| {
                    let (m, sd) = (k as f64 * g / scale, s * (k as f64).sqrt() / scale);
                    binom(k) * normal_cdf((m - x) / sd)
                })
                .sum::<f64>()
        };
        for i in 0..=1200 {
            let zeta = -6.0 + i as f64 * 0.01;
            let x = avg.quantile(g, s, zeta);
            let (u, u_c) = (normal_cdf(zeta), normal_cdf(-zeta));
            if x == 0.0 {
                // In the atom: F(0−) ≤ U ≤ F(0).
                assert!(
                    lower(-1e-300) <= u * (1.0 + 1e-12) && u <= lower(0.0) * (1.0 + 1e-12),
                    "n {n} p {p} g {g} s {s} ζ {zeta}: 0 outside the atom"
                );
                continue;
            }
            let err = if u <= 0.5 {
                (lower(x) - u).abs() / u
            } else {
                (upper(x) - u_c).abs() / u_c
            };
            assert!(
                err <= 1e-11,
                "n {n} p {p} g {g} s {s} ζ {zeta}: x {x}, relative CDF error {err:e}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The law of the coupled direction, per method

const G: [f64; 3] = [0.8, -0.3, 0.05];

struct Draws {
    coupled: Vec<Vec<f64>>,
    plain: Vec<Vec<f64>>,
    zeta: Vec<Vec<f64>>,
}

fn draw(method: &Method, n: usize, seed: u64) -> Draws {
    let d = method.dim();
    let mut scratch = vec![0.0; method.scratch_len()];
    let mut normals = vec![0.0; method.coupling_dim()];
    let mut zeta = vec![0.0; d];
    let mut u = vec![0.0; d];
    let mut rng: PathRng = derive_stream(seed, 0);
    let mut plain_rng: PathRng = derive_stream(seed, 1);
    let mut out = Draws {
        coupled: vec![Vec::with_capacity(n); d],
        plain: vec![Vec::with_capacity(n); d],
        zeta: vec![Vec::with_capacity(n); d],
    };
    for _ in 0..n {
        for v in normals.iter_mut() {
            *v = StandardNormal.sample(&mut rng);
        }
        method.coupling_zeta(&normals, &mut zeta);
        assert!(method.sample_coupled(&G, &normals, &mut rng, &mut u, &mut scratch));
        for j in 0..d {
            out.coupled[j].push(u[j]);
            out.zeta[j].push(zeta[j]);
        }
        method.sample(&G, &mut plain_rng, &mut u, &mut scratch);
        for j in 0..d {
            out.plain[j].push(u[j]);
        }
    }
    out
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// Sample mean and its SE.
fn mean_se(v: &[f64]) -> (f64, f64) {
    let m = mean(v);
    let var = v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (v.len() - 1) as f64;
    (m, (var / v.len() as f64).sqrt())
}

/// Two-sample KS statistic `sup |F_a − F_b|`. Values are rounded to 1e-12 first: the atoms of
/// sparsified and sign directions are computed in a different order on the two paths (e.g.
/// `3 (g/p) / 8` against `3 g / (8p)`) and must still count as the same atom.
fn ks_two_sample(a: &[f64], b: &[f64]) -> f64 {
    let round = |v: &[f64]| -> Vec<f64> { v.iter().map(|x| (x * 1e12).round() / 1e12).collect() };
    let mut a = round(a);
    let mut b = round(b);
    a.sort_by(f64::total_cmp);
    b.sort_by(f64::total_cmp);
    let (na, nb) = (a.len() as f64, b.len() as f64);
    let (mut i, mut j, mut dmax) = (0, 0, 0.0f64);
    while i < a.len() && j < b.len() {
        // Step past every copy of the smaller value in both samples (atoms).
        let x = a[i].min(b[j]);
        while i < a.len() && a[i] <= x {
            i += 1;
        }
        while j < b.len() && b[j] <= x {
            j += 1;
        }
        dmax = dmax.max((i as f64 / na - j as f64 / nb).abs());
    }
    dmax
}

/// One-sample KS statistic against `Φ`.
fn ks_normal(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len() as f64;
    v.iter()
        .enumerate()
        .map(|(i, x)| {
            let f = normal_cdf(*x);
            (f - i as f64 / n).abs().max(((i + 1) as f64 / n - f).abs())
        })
        .fold(0.0, f64::max)
}

/// All the law checks for one method, plus the residual fraction per coordinate (returned).
/// `moments`: whether `u` has a finite fourth moment, so that the covariance's SE exists.
fn check_law(label: &str, method: &Method, n: usize, seed: u64, moments: bool) -> Vec<f64> {
    let d = method.dim();
    let s = draw(method, n, seed);
    let mut scratch = vec![0.0; method.scratch_len()];
    let mut mu = vec![0.0; d];
    method.mean(&G, &mut mu, &mut scratch);
    // C = B Bᵀ, columns from cov_sqrt_mul.
    let mut b = vec![vec![0.0; d]; d];
    for k in 0..d {
        let mut e = vec![0.0; d];
        e[k] = 1.0;
        let mut col = vec![0.0; d];
        method.cov_sqrt_mul(&G, &e, &mut col, &mut scratch);
        for j in 0..d {
            b[j][k] = col[j];
        }
    }
    let c = |i: usize, j: usize| (0..d).map(|k| b[i][k] * b[j][k]).sum::<f64>();
    let ks_crit = KS_C * (2.0 / n as f64).sqrt();
    let mut residual_fraction = vec![0.0; d];
    for j in 0..d {
        let (m, se) = mean_se(&s.coupled[j]);
        // Mean within 4.5 SE of μ(g) (SE from the sample).
        assert!(
            (m - mu[j]).abs() <= 4.5 * se + 1e-14,
            "{label}: mean[{j}] {m} vs μ {} (SE {se})",
            mu[j]
        );
        if moments {
            for i in 0..=j {
                let prods: Vec<f64> = s.coupled[i]
                    .iter()
                    .zip(&s.coupled[j])
                    .map(|(a, bb)| (a - mu[i]) * (bb - mu[j]))
                    .collect();
                let (cov, se) = mean_se(&prods);
                // Covariance within 4.5 SE of the analytic C (SE of the mean of the products).
                assert!(
                    (cov - c(i, j)).abs() <= 4.5 * se + 1e-14,
                    "{label}: cov[{i},{j}] {cov} vs C {} (SE {se})",
                    c(i, j)
                );
            }
        }
        // Sign means of the two samples: difference within 4.5 SE of the difference.
        let sc: Vec<f64> = s.coupled[j].iter().map(|x| sign(*x)).collect();
        let sp: Vec<f64> = s.plain[j].iter().map(|x| sign(*x)).collect();
        let ((mc, sec), (mp, sep)) = (mean_se(&sc), mean_se(&sp));
        let se = (sec * sec + sep * sep).sqrt();
        assert!(
            (mc - mp).abs() <= 4.5 * se + 1e-14,
            "{label}: sign mean[{j}] coupled {mc} vs sample {mp} (SE {se})"
        );
        let ks = ks_two_sample(&s.coupled[j], &s.plain[j]);
        assert!(
            ks <= ks_crit,
            "{label}: KS[{j}] = {ks} > {ks_crit} (coupled vs sample)"
        );
        // ζ ~ N(0, 1): KS, mean within 4.5/√n, variance within 4.5·√(2/n).
        let ksz = ks_normal(&s.zeta[j]);
        assert!(
            ksz <= KS_C / (n as f64).sqrt(),
            "{label}: KS(ζ_{j}) = {ksz}"
        );
        let (mz, sez) = mean_se(&s.zeta[j]);
        assert!(mz.abs() <= 4.5 * sez, "{label}: E ζ_{j} = {mz}");
        let vz = s.zeta[j].iter().map(|z| z * z).sum::<f64>() / n as f64;
        assert!(
            (vz - 1.0).abs() <= 4.5 * (2.0 / n as f64).sqrt(),
            "{label}: E ζ_{j}² = {vz}"
        );
        for i in 0..j {
            let cz = s.zeta[i]
                .iter()
                .zip(&s.zeta[j])
                .map(|(a, bb)| a * bb)
                .sum::<f64>()
                / n as f64;
            // Independent unit normals: E ζ_i ζ_j = 0 with SE 1/√n.
            assert!(
                cz.abs() <= 4.5 / (n as f64).sqrt(),
                "{label}: E ζ_{i} ζ_{j} = {cz}"
            );
        }
        // Residual of u − μ after removing the SDE's noise C^{1/2} ζ over the iteration.
        let mut num = 0.0;
        let mut den = 0.0;
        for p in 0..n {
            let bz: f64 = (0..d).map(|k| b[j][k] * s.zeta[k][p]).sum();
            let dev = s.coupled[j][p] - mu[j];
            num += (dev - bz) * (dev - bz);
            den += dev * dev;
        }
        residual_fraction[j] = num / den;
    }
    println!("{label:<40} residual fraction {residual_fraction:.4?}");
    residual_fraction
}

fn assert_residual(label: &str, r: &[f64], bound: f64) {
    for (j, rj) in r.iter().enumerate() {
        assert!(
            *rj <= bound,
            "{label}: residual fraction[{j}] = {rj} > {bound}"
        );
    }
}

const N_DRAWS: usize = 25_000;
const SCALE: [f64; 3] = [1.0, 0.6, 1.4];

#[test]
fn dsgd_gaussian_coupling_is_exact_and_residual_free() {
    let agents = vec![
        agent(gaussian(&SCALE, 0.3, 0.2), Identity),
        agent(gaussian(&SCALE, 0.7, 0.0), Identity),
        agent(gaussian(&SCALE, 1.0, 0.4), Identity),
    ];
    let m = Method::Dsgd(Dsgd::new(agents).unwrap());
    assert_eq!(m.coupling_dim(), 3);
    let r = check_law("dsgd gaussian (hetero)", &m, N_DRAWS, 1, true);
    assert_residual("dsgd gaussian", &r, 1e-24);
}

#[test]
fn dsgd_student_t_coupling_has_the_law_of_sample() {
    let agents = vec![agent(student(5.0, &SCALE, 0.5, 0.3), Identity); 4];
    let m = Method::Dsgd(Dsgd::new(agents).unwrap());
    assert_eq!(m.coupling_dim(), 12);
    let r = check_law("dsgd student-t nu=5", &m, N_DRAWS, 2, true);
    // Measured 0.06; an uncoupled draw would give 2.
    assert_residual("dsgd student-t nu=5", &r, 0.15);
    let agents = vec![
        agent(student(3.0, &SCALE, 0.5, 0.3), Identity),
        agent(gaussian(&SCALE, 0.5, 0.3), Identity),
    ];
    let m = Method::Dsgd(Dsgd::new(agents).unwrap());
    let r = check_law("dsgd student-t nu=3 + gaussian", &m, N_DRAWS, 3, false);
    assert_residual("dsgd student-t nu=3 + gaussian", &r, 0.3);
}

#[test]
fn dcsgd_identity_and_bernoulli_coupling_have_the_law_of_sample() {
    let bern = BernoulliSparsifier::new(0.5).unwrap();
    let cases: Vec<(&str, Vec<Agent>, bool, f64)> = vec![
        (
            "dcsgd identity gaussian",
            vec![agent(gaussian(&SCALE, 0.5, 0.2), Identity); 4],
            true,
            1e-24,
        ),
        (
            "dcsgd bernoulli p=0.5 gaussian (aggregate)",
            vec![agent(gaussian(&SCALE, 0.5, 0.2), bern); 8],
            true,
            0.1,
        ),
        (
            "dcsgd bernoulli p=0.3 noise-free (aggregate)",
            vec![
                agent(
                    gaussian(&SCALE, 0.0, 0.0),
                    BernoulliSparsifier::new(0.3).unwrap()
                );
                8
            ],
            true,
            0.3,
        ),
        (
            "dcsgd bernoulli p=0.2 gaussian hetero",
            vec![
                agent(
                    gaussian(&SCALE, 0.5, 0.2),
                    BernoulliSparsifier::new(0.2).unwrap(),
                ),
                agent(gaussian(&SCALE, 0.1, 0.0), bern),
                agent(gaussian(&SCALE, 0.0, 0.0), bern),
            ],
            true,
            // The agents' variances differ by ~100x but ζ weighs their normals equally
            // (`coupling_zeta` cannot see g): coordinate 2 (g ≈ 0) is dominated by agent 0.
            1.1,
        ),
        (
            "dcsgd bernoulli p=0.5 student-t nu=5",
            vec![agent(student(5.0, &SCALE, 0.5, 0.2), bern); 4],
            true,
            0.5,
        ),
        (
            "dcsgd bernoulli p=0.5 student-t nu=3",
            vec![agent(student(3.0, &SCALE, 0.5, 0.2), bern); 4],
            false,
            0.5,
        ),
    ];
    for (i, (label, agents, moments, bound)) in cases.into_iter().enumerate() {
        let m = Method::Dcsgd(Dcsgd::new(agents).unwrap());
        let r = check_law(label, &m, N_DRAWS, 10 + i as u64, moments);
        assert_residual(label, &r, bound);
    }
    // The per-agent coupling where the aggregate one applies: same law, weaker coupling.
    let agents = vec![agent(gaussian(&SCALE, 0.5, 0.2), bern); 8];
    let per_agent = Dcsgd::new(agents.clone())
        .unwrap()
        .with_per_agent_coupling();
    assert_eq!(per_agent.coupling_dim(), 8 * SCALE.len());
    assert_eq!(Dcsgd::new(agents).unwrap().coupling_dim(), SCALE.len());
    let label = "dcsgd bernoulli p=0.5 gaussian (per agent)";
    let r = check_law(label, &Method::Dcsgd(per_agent), N_DRAWS, 19, true);
    assert_residual(label, &r, 0.3);
}

#[test]
fn dcsgd_rand_k_and_qsgd_coupling_have_the_law_of_sample() {
    let d = SCALE.len();
    let cases: Vec<(&str, Vec<Agent>, bool, f64)> = vec![
        (
            "dcsgd rand-1 gaussian",
            vec![agent(gaussian(&SCALE, 0.5, 0.2), RandK::new(1, d).unwrap()); 8],
            true,
            // Aggregate since the pick-count filter (measured 0.024–0.031; per agent ~0.5).
            0.06,
        ),
        (
            "dcsgd rand-2 gaussian",
            vec![agent(gaussian(&SCALE, 0.5, 0.2), RandK::new(2, d).unwrap()); 4],
            true,
            // Aggregate (measured 0.007–0.010).
            0.03,
        ),
        (
            "dcsgd rand-2 student-t nu=5",
            vec![agent(student(5.0, &SCALE, 0.5, 0.2), RandK::new(2, d).unwrap()); 4],
            true,
            0.7,
        ),
        (
            "dcsgd qsgd s=2 gaussian",
            vec![agent(gaussian(&SCALE, 0.5, 0.2), Qsgd::new(2).unwrap()); 4],
            true,
            0.9,
        ),
        (
            "dcsgd mixed compressors",
            vec![
                agent(gaussian(&SCALE, 0.5, 0.2), Identity),
                agent(
                    gaussian(&SCALE, 0.3, 0.0),
                    BernoulliSparsifier::new(0.3).unwrap(),
                ),
                agent(student(5.0, &SCALE, 0.5, 0.1), RandK::new(2, d).unwrap()),
                agent(gaussian(&SCALE, 0.2, 0.2), Qsgd::new(4).unwrap()),
            ],
            true,
            0.9,
        ),
    ];
    for (i, (label, agents, moments, bound)) in cases.into_iter().enumerate() {
        let m = Method::Dcsgd(Dcsgd::new(agents).unwrap());
        let r = check_law(label, &m, N_DRAWS, 20 + i as u64, moments);
        assert_residual(label, &r, bound);
    }
}

#[test]
fn dsignsgd_coupling_has_the_law_of_sample() {
    let cases: Vec<(&str, Vec<Agent>, f64)> = vec![
        (
            "dsignsgd gaussian",
            vec![agent(gaussian(&SCALE, 0.5, 0.2), Identity); 8],
            0.45,
        ),
        (
            "dsignsgd student-t nu=3",
            vec![agent(student(3.0, &SCALE, 0.5, 0.2), Identity); 8],
            0.45,
        ),
        (
            "dsignsgd student-t nu=1.5",
            vec![agent(student(1.5, &SCALE, 0.5, 0.2), Identity); 8],
            0.45,
        ),
        (
            "dsignsgd cauchy hetero",
            vec![
                agent(student(1.0, &SCALE, 0.5, 0.2), Identity),
                agent(student(1.0, &SCALE, 1.5, 0.0), Identity),
                agent(gaussian(&SCALE, 0.3, 0.0), Identity),
                agent(gaussian(&SCALE, 0.0, 0.0), Identity),
            ],
            0.6,
        ),
    ];
    for (i, (label, agents, bound)) in cases.into_iter().enumerate() {
        let m = Method::DsignSgd(DsignSgd::new(agents).unwrap());
        assert_eq!(m.coupling_dim(), 3);
        // Bounded directions: every moment exists.
        let r = check_law(label, &m, N_DRAWS, 30 + i as u64, true);
        assert_residual(label, &r, bound);
    }
}

/// Same normals and same `rng` state → same direction, bit for bit.
#[test]
fn coupled_draws_are_deterministic() {
    let d = SCALE.len();
    let m = Method::Dcsgd(
        Dcsgd::new(vec![
            agent(
                gaussian(&SCALE, 0.5, 0.2),
                RandK::new(2, d).unwrap()
            );
            4
        ])
        .unwrap(),
    );
    let normals: Vec<f64> = (0..m.coupling_dim())
        .map(|i| (i as f64 * 0.7).sin() * 2.0)
        .collect();
    let run = || {
        let mut rng: PathRng = derive_stream(99, 3);
        let mut u = vec![0.0; d];
        let mut scratch = vec![0.0; m.scratch_len()];
        assert!(m.sample_coupled(&G, &normals, &mut rng, &mut u, &mut scratch));
        u
    };
    assert_eq!(run(), run());
}

/// The quantile couplings are comonotone: with the other normals fixed, `u_j` is a
/// non-decreasing function of the normal that drives coordinate `j` (ζ_j for the aggregate
/// couplings, ν_0j for the per-agent ones), from −8 to 8 (far tails included, so the
/// tail-accurate branches run), and takes finite values throughout.
#[test]
fn quantile_couplings_are_monotone_in_their_normal() {
    let bern = BernoulliSparsifier::new(0.5).unwrap();
    let methods = vec![
        (
            "dcsgd bernoulli aggregate",
            Method::Dcsgd(Dcsgd::new(vec![agent(gaussian(&SCALE, 0.5, 0.2), bern); 8]).unwrap()),
        ),
        (
            "dcsgd bernoulli per agent, student-t",
            Method::Dcsgd(
                Dcsgd::new(vec![agent(student(3.0, &SCALE, 0.5, 0.2), bern); 3]).unwrap(),
            ),
        ),
        (
            "dsignsgd cauchy",
            Method::DsignSgd(
                DsignSgd::new(vec![agent(student(1.0, &SCALE, 0.5, 0.2), Identity); 8]).unwrap(),
            ),
        ),
        (
            "dsgd student-t",
            Method::Dsgd(
                Dsgd::new(vec![agent(student(4.0, &SCALE, 0.5, 0.2), Identity); 2]).unwrap(),
            ),
        ),
    ];
    for (label, m) in methods {
        let d = m.dim();
        let mut scratch = vec![0.0; m.scratch_len()];
        let mut normals: Vec<f64> = (0..m.coupling_dim()).map(|i| (i as f64).cos()).collect();
        let mut u = vec![0.0; d];
        for j in 0..d {
            let mut prev = f64::NEG_INFINITY;
            for step in 0..=320 {
                normals[j] = -8.0 + 0.05 * step as f64;
                let mut rng: PathRng = derive_stream(7, 0);
                assert!(m.sample_coupled(&G, &normals, &mut rng, &mut u, &mut scratch));
                assert!(
                    u[j].is_finite(),
                    "{label}: u[{j}] = {} at {}",
                    u[j],
                    normals[j]
                );
                assert!(
                    u[j] >= prev - 1e-12 * prev.abs().max(1.0),
                    "{label}: u[{j}] fell from {prev} to {} at normal {}",
                    u[j],
                    normals[j]
                );
                prev = u[j];
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// rand-k: the aggregate coupling (pick-count filter on L⁻¹Bζ)

/// Two-sample KS of a linear combination `Σ_j c_j u_j` of the coupled and the `sample` draws:
/// the per-coordinate tests above do not see the dependence between coordinates.
fn ks_combination(s: &Draws, c: &[f64]) -> f64 {
    let comb = |v: &[Vec<f64>]| -> Vec<f64> {
        (0..v[0].len())
            .map(|p| c.iter().zip(v).map(|(cj, vj)| cj * vj[p]).sum())
            .collect()
    };
    ks_two_sample(&comb(&s.coupled), &comb(&s.plain))
}

/// Identical Gaussian agents with rand-k, `k < d`, take the aggregate coupling (`d` normals):
/// mean, covariance (the exact diagonal-minus-rank-one `C`), sign means and KS per coordinate
/// against `sample`, KS of two linear combinations (the dependence between coordinates: every
/// agent keeps exactly `k`), and `ζ ~ N(0, I)`. Includes well-separated count components
/// (`σ0 = 0.02`, sharp likelihoods in the filter) and affine noise.
#[test]
fn dcsgd_rand_k_aggregate_coupling_has_the_law_of_sample() {
    let d = SCALE.len();
    let cases: Vec<(&str, Vec<Agent>, f64)> = vec![
        (
            "rand-1 aggregate N=8",
            vec![agent(gaussian(&SCALE, 0.5, 0.0), RandK::new(1, d).unwrap()); 8],
            // Measured 0.023–0.029 (per agent: ~0.2–0.5); margins ~2x.
            0.06,
        ),
        (
            "rand-2 aggregate N=8 affine",
            vec![agent(gaussian(&SCALE, 0.5, 0.2), RandK::new(2, d).unwrap()); 8],
            // Measured 0.003–0.004.
            0.01,
        ),
        (
            "rand-2 aggregate N=3",
            vec![agent(gaussian(&SCALE, 0.5, 0.0), RandK::new(2, d).unwrap()); 3],
            // Measured 0.011–0.018.
            0.04,
        ),
        (
            "rand-1 aggregate N=5 separated",
            vec![agent(gaussian(&SCALE, 0.02, 0.0), RandK::new(1, d).unwrap()); 5],
            // Measured 0.08–0.15: nearly discrete, far from its normal limit.
            0.3,
        ),
    ];
    let ks_crit = KS_C * (2.0 / N_DRAWS as f64).sqrt();
    for (i, (label, agents, bound)) in cases.into_iter().enumerate() {
        let m = Method::Dcsgd(Dcsgd::new(agents).unwrap());
        assert_eq!(m.coupling_dim(), d, "{label}: aggregate coupling expected");
        let r = check_law(label, &m, N_DRAWS, 40 + i as u64, true);
        assert_residual(label, &r, bound);
        let s = draw(&m, N_DRAWS, 50 + i as u64);
        for c in [[1.0, 1.0, 1.0], [1.0, -2.0, 0.5]] {
            let ks = ks_combination(&s, &c);
            assert!(ks <= ks_crit, "{label}: KS of {c:?}·u = {ks} > {ks_crit}");
        }
    }
    // Heterogeneous or non-Gaussian agents keep the per-agent coupling.
    let mixed = vec![
        agent(gaussian(&SCALE, 0.5, 0.0), RandK::new(1, d).unwrap()),
        agent(gaussian(&SCALE, 0.3, 0.0), RandK::new(1, d).unwrap()),
    ];
    assert_eq!(Dcsgd::new(mixed).unwrap().coupling_dim(), 2 * d);
}

/// All `N`-tuples of `k`-subsets of `0..d`, enumerated: the exact law of the pick-count vector
/// `K_j = #{agents keeping j}` as a map from `K` to its probability.
fn exact_count_law(n: usize, d: usize, k: usize) -> std::collections::BTreeMap<Vec<usize>, f64> {
    let subsets: Vec<Vec<usize>> = (0u32..1 << d)
        .filter(|m| m.count_ones() as usize == k)
        .map(|m| (0..d).filter(|j| m >> j & 1 == 1).collect())
        .collect();
    let total = (subsets.len() as f64).powi(n as i32);
    let mut law = std::collections::BTreeMap::new();
    let mut idx = vec![0usize; n];
    loop {
        let mut counts = vec![0usize; d];
        for &i in &idx {
            for &j in &subsets[i] {
                counts[j] += 1;
            }
        }
        *law.entry(counts).or_insert(0.0) += 1.0 / total;
        let mut a = 0;
        while a < n && idx[a] + 1 == subsets.len() {
            idx[a] = 0;
            a += 1;
        }
        if a == n {
            break;
        }
        idx[a] += 1;
    }
    law
}

/// Upper `α = 1e-4` point of χ² with `df` degrees of freedom (Wilson–Hilferty; within 1% of
/// the exact quantile for `df ≥ 3`).
fn chi2_crit(df: usize) -> f64 {
    let (df, z) = (df as f64, 3.719);
    let h = 2.0 / (9.0 * df);
    df * (1.0 - h + z * h.sqrt()).powi(3)
}

/// Noise-free agents: the coupled direction is `u_j = K_j g_j d/(kN)`, so the pick counts are
/// read off each draw. Their joint law against the exact enumeration of all agents' subsets,
/// by a χ² test at level 1e-4 (every expected cell count ≥ 200). With `N = 1` this is the mask
/// law itself: every `k`-subset equally likely. Every draw keeps exactly `N k` picks. Both
/// signs of `g_j` (`Φ(−ζ)` branch) and `g_j ≈ 0` occur.
#[test]
fn rand_k_aggregate_count_law_is_exact() {
    let g4 = [0.8, -0.3, 0.05, 1.2];
    let n_draws = 60_000;
    for (n, d, k, seed) in [
        (1usize, 4usize, 2usize, 60u64),
        (3, 4, 2, 61),
        (4, 3, 1, 62),
    ] {
        let g = &g4[..d];
        let m = Dcsgd::new(vec![
            agent(
                gaussian(&vec![1.0; d], 0.0, 0.0),
                RandK::new(k, d).unwrap()
            );
            n
        ])
        .unwrap();
        assert_eq!(m.coupling_dim(), d);
        let law = exact_count_law(n, d, k);
        let mut seen: std::collections::BTreeMap<Vec<usize>, usize> = Default::default();
        let mut scratch = vec![0.0; m.scratch_len()];
        let mut normals = vec![0.0; d];
        let mut u = vec![0.0; d];
        let mut rng: PathRng = derive_stream(seed, 0);
        let unit = d as f64 / (k * n) as f64;
        for _ in 0..n_draws {
            for v in normals.iter_mut() {
                *v = StandardNormal.sample(&mut rng);
            }
            assert!(m.sample_coupled(g, &normals, &mut rng, &mut u, &mut scratch));
            let counts: Vec<usize> = u
                .iter()
                .zip(g)
                .map(|(uj, gj)| {
                    let c = uj / (gj * unit);
                    assert!((c - c.round()).abs() < 1e-9 && c >= -1e-9, "count {c}");
                    c.round() as usize
                })
                .collect();
            assert_eq!(counts.iter().sum::<usize>(), n * k, "{counts:?}");
            *seen.entry(counts).or_insert(0) += 1;
        }
        let mut chi2 = 0.0;
        for (cell, p) in &law {
            let expected = p * n_draws as f64;
            assert!(expected >= 200.0);
            let o = *seen.get(cell).unwrap_or(&0) as f64;
            chi2 += (o - expected) * (o - expected) / expected;
        }
        assert!(
            seen.keys().all(|c| law.contains_key(c)),
            "impossible count vector drawn"
        );
        let df = law.len() - 1;
        println!(
            "rand-{k} N={n} d={d}: {} count vectors, chi2 = {chi2:.1} (df {df}, crit {:.1})",
            law.len(),
            chi2_crit(df)
        );
        assert!(chi2 <= chi2_crit(df), "N={n} d={d} k={k}: chi2 {chi2}");
    }
}

/// `cholesky_normals` against a dense Cholesky factorisation: `out = L⁻¹Bζ` to 1e-12, `L⁻¹B`
/// orthogonal, and the singular fallback (`out = ζ`, `false`).
#[test]
fn cholesky_normals_inverts_the_cholesky_factor() {
    let diag = [1.3, 0.7, 2.0, 0.9];
    let v = [0.8, -0.5, 0.3, 1.1];
    let q: f64 = diag.iter().zip(&v).map(|(d, u)| u * u / d).sum();
    let d = diag.len();
    for coef in [0.0, 0.3 / q, 0.95 / q, -0.4] {
        // B column by column, C = BBᵀ, dense Cholesky L.
        let mut b = vec![vec![0.0; d]; d];
        for c in 0..d {
            let mut e = vec![0.0; d];
            e[c] = 1.0;
            let mut col = vec![0.0; d];
            diag_minus_rank_one_sqrt_mul(&diag, coef, &v, &e, &mut col);
            for r in 0..d {
                b[r][c] = col[r];
            }
        }
        let cmat = |i: usize, j: usize| (if i == j { diag[i] } else { 0.0 }) - coef * v[i] * v[j];
        let mut l = vec![vec![0.0; d]; d];
        for i in 0..d {
            for j in 0..=i {
                let s: f64 = (0..j).map(|t| l[i][t] * l[j][t]).sum();
                l[i][j] = if i == j {
                    (cmat(i, i) - s).sqrt()
                } else {
                    (cmat(i, j) - s) / l[j][j]
                };
            }
        }
        // Q = L⁻¹B by forward substitution per column; QQᵀ = I.
        let mut qm = vec![vec![0.0; d]; d];
        for c in 0..d {
            for i in 0..d {
                let s: f64 = (0..i).map(|t| l[i][t] * qm[t][c]).sum();
                qm[i][c] = (b[i][c] - s) / l[i][i];
            }
        }
        for i in 0..d {
            for j in 0..d {
                let dot: f64 = (0..d).map(|t| qm[i][t] * qm[j][t]).sum();
                let want = if i == j { 1.0 } else { 0.0 };
                assert!(
                    (dot - want).abs() < 1e-12,
                    "coef {coef}: QQᵀ[{i}][{j}] = {dot}"
                );
            }
        }
        let zeta = [0.3, -1.2, 2.1, 0.05];
        let mut y = vec![0.0; d];
        diag_minus_rank_one_sqrt_mul(&diag, coef, &v, &zeta, &mut y);
        let mut out = vec![0.0; d];
        assert!(cholesky_normals(&diag, coef, &v, &y, &zeta, &mut out));
        for i in 0..d {
            let want: f64 = (0..d).map(|t| qm[i][t] * zeta[t]).sum();
            assert!(
                (out[i] - want).abs() < 1e-12,
                "coef {coef}: out[{i}] {} vs {want}",
                out[i]
            );
        }
    }
    // Singular C (coef = 1/q): the fallback passes ζ through.
    let zeta = [0.3, -1.2, 2.1, 0.05];
    let mut y = vec![0.0; d];
    diag_minus_rank_one_sqrt_mul(&diag, 1.0 / q, &v, &zeta, &mut y);
    let mut out = vec![0.0; d];
    assert!(!cholesky_normals(&diag, 1.0 / q, &v, &y, &zeta, &mut out));
    assert_eq!(out, zeta);
    // A zero-variance coordinate (D_j = 0, v_j = 0) passes its own ζ_j through.
    let diag0 = [1.3, 0.0, 2.0];
    let v0 = [0.8, 0.0, 0.3];
    let zeta0 = [0.3, -1.2, 2.1];
    let mut y0 = vec![0.0; 3];
    diag_minus_rank_one_sqrt_mul(&diag0, 0.2, &v0, &zeta0, &mut y0);
    let mut out0 = vec![0.0; 3];
    assert!(cholesky_normals(&diag0, 0.2, &v0, &y0, &zeta0, &mut out0));
    assert_eq!(out0[1], zeta0[1]);
}

/// Given the earlier normals, `u_j` of [`RandKAverage::sample`] is a non-decreasing function of
/// its own normal from −8 to 8 (tails included) and finite, also with well-separated
/// components, a noise-free coordinate of either sign, and a coordinate that is identically 0.
#[test]
fn rand_k_average_is_monotone_in_its_normal() {
    for (n, d, k, g, s) in [
        (
            8usize,
            3usize,
            2usize,
            vec![0.8, -0.3, 0.05],
            vec![0.5, 0.5, 0.5],
        ),
        (
            5,
            4,
            1,
            vec![0.8, -0.3, 0.0, 1.0],
            vec![0.01, 0.0, 0.0, 0.2],
        ),
        (
            8,
            10,
            2,
            (0..10).map(|j| 0.3 * j as f64 - 1.0).collect(),
            vec![0.3; 10],
        ),
    ] {
        let rk = RandKAverage::new(n, d, k).unwrap();
        let mut scratch = vec![0.0; rk.scratch_len()];
        let mut zeta: Vec<f64> = (0..d).map(|i| (i as f64).cos()).collect();
        let mut u = vec![0.0; d];
        for j in 0..d {
            let mut prev = f64::NEG_INFINITY;
            for step in 0..=320 {
                zeta[j] = -8.0 + 0.05 * step as f64;
                rk.sample(&g, &s, &zeta, &mut u, &mut scratch);
                assert!(u.iter().all(|x| x.is_finite()), "N={n} d={d}: {u:?}");
                assert!(
                    u[j] >= prev - 1e-12 * prev.abs().max(1.0),
                    "N={n} d={d}: u[{j}] fell from {prev} to {} at {}",
                    u[j],
                    zeta[j]
                );
                prev = u[j];
            }
            zeta[j] = (j as f64).cos();
        }
    }
    // Too large a table (or no compression): no aggregate coupling.
    assert!(RandKAverage::new(8, 3, 3).is_none());
    assert!(RandKAverage::new(1000, 50, 10).is_none());
}
