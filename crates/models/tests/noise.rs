//! Gradient noise: sampling (moments, Kolmogorov–Smirnov, coordinate independence), sign means
//! against Monte Carlo (incl. the table of MATH.md §5.4), the sign-mean Jacobian against finite
//! differences, variances, and validation.
//!
//! All statistical checks use fixed seeds and margins in units of the Monte Carlo standard error
//! (SE), stated at each assertion.

use models::noise::{GaussianNoise, GradientNoise, NoiseModel, StudentTNoise};
use models::special::student_t_cdf;
use models::ModelError;
use sde_core::derive_stream;

fn sample_many(noise: &dyn GradientNoise, grad: &[f64], n: usize, seed: u64) -> Vec<Vec<f64>> {
    let d = noise.dim();
    let mut rng = derive_stream(seed, 0);
    let mut z = vec![0.0; d];
    let mut cols = vec![Vec::with_capacity(n); d];
    for _ in 0..n {
        noise.sample(grad, &mut rng, &mut z);
        for (c, v) in cols.iter_mut().zip(&z) {
            c.push(*v);
        }
    }
    cols
}

fn mean(x: &[f64]) -> f64 {
    x.iter().sum::<f64>() / x.len() as f64
}

fn var(x: &[f64]) -> f64 {
    let m = mean(x);
    x.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / (x.len() - 1) as f64
}

#[test]
fn gaussian_moments() {
    let noise = GaussianNoise::new(3, vec![1.0, 0.5, 2.0], 0.3, 0.7).unwrap();
    let grad = [1.0, -2.0, 0.5];
    let r = (0.09f64 + 0.49 * 5.25).sqrt();
    let mut s = [0.0; 3];
    noise.scale(&grad, &mut s);
    let mut v = [0.0; 3];
    assert!(noise.variance(&grad, &mut v));
    let n = 200_000;
    let cols = sample_many(&noise, &grad, n, 1);
    for j in 0..3 {
        let sj = [1.0, 0.5, 2.0][j] * r;
        assert!((s[j] - sj).abs() <= 1e-14 && (v[j] - sj * sj).abs() <= 1e-13);
        // Mean: SE = s/√n, margin 4 SE. Variance: SE = s²√(2/n) (Gaussian), margin 4 SE.
        let m = mean(&cols[j]);
        let se_m = sj / (n as f64).sqrt();
        assert!(m.abs() <= 4.0 * se_m, "coord {j}: mean {m} (SE {se_m})");
        let sv = var(&cols[j]);
        let se_v = sj * sj * (2.0 / n as f64).sqrt();
        assert!(
            (sv - sj * sj).abs() <= 4.0 * se_v,
            "coord {j}: var {sv} vs {}",
            sj * sj
        );
    }
    // Independent coordinates: sample covariance within 4 SE = 4 s_0 s_1/√n of 0.
    let (m0, m1) = (mean(&cols[0]), mean(&cols[1]));
    let cov = cols[0]
        .iter()
        .zip(&cols[1])
        .map(|(a, b)| (a - m0) * (b - m1))
        .sum::<f64>()
        / n as f64;
    assert!(
        cov.abs() <= 4.0 * s[0] * s[1] / (n as f64).sqrt(),
        "cov {cov}"
    );
}

/// One-sample Kolmogorov–Smirnov statistic of `x` against `cdf`.
fn ks_statistic(mut x: Vec<f64>, cdf: impl Fn(f64) -> f64) -> f64 {
    x.sort_by(f64::total_cmp);
    let n = x.len() as f64;
    x.iter().enumerate().fold(0.0f64, |d, (i, &v)| {
        let f = cdf(v);
        d.max((i as f64 + 1.0) / n - f).max(f - i as f64 / n)
    })
}

/// KS test of `T = Z/s` against `F_ν` at the 1% level: `D < 1.628/√n` (asymptotic critical value).
#[test]
fn student_t_sampling_passes_kolmogorov_smirnov() {
    let n = 20_000;
    let crit = 1.628 / (n as f64).sqrt();
    for (i, nu) in [0.7, 1.0, 2.5, 5.0, 30.0].into_iter().enumerate() {
        // s = scale · σ0 = 1.7 · 1 (σ1 = 0), so T = Z/1.7.
        let noise = StudentTNoise::new(1, nu, vec![1.7], 1.0, 0.0).unwrap();
        let z = sample_many(&noise, &[0.0], n, 10 + i as u64).remove(0);
        let t: Vec<f64> = z.iter().map(|v| v / 1.7).collect();
        let d = ks_statistic(t, |y| student_t_cdf(nu, y));
        println!("nu = {nu}: KS D = {d:.5} (1% critical value {crit:.5})");
        assert!(d < crit, "nu = {nu}: D = {d} >= {crit}");
    }
}

/// The sign cross-covariance of two coordinates is 0 for independent coordinates and −0.012 for
/// the multivariate t (MATH.md §1.3, ν = 3, ∇f = (0.5, −0.3)). n = 4e5: SE ≤ 1/√n = 0.0016, and
/// the margin 4 SE = 0.0063 excludes −0.012.
#[test]
fn student_t_coordinates_are_independent() {
    let noise = StudentTNoise::isotropic(2, 3.0, 1.0, 0.0).unwrap();
    let grad = [0.5, -0.3];
    let n = 400_000;
    let cols = sample_many(&noise, &grad, n, 99);
    let s0: Vec<f64> = cols[0].iter().map(|z| (grad[0] + z).signum()).collect();
    let s1: Vec<f64> = cols[1].iter().map(|z| (grad[1] + z).signum()).collect();
    let (m0, m1) = (mean(&s0), mean(&s1));
    let cov = s0
        .iter()
        .zip(&s1)
        .map(|(a, b)| (a - m0) * (b - m1))
        .sum::<f64>()
        / n as f64;
    let se = ((1.0 - m0 * m0) * (1.0 - m1 * m1) / n as f64).sqrt();
    println!("sign cross-covariance {cov:.5} (SE {se:.5})");
    assert!(cov.abs() <= 4.0 * se);
}

/// `E sign(g + Z)` against Monte Carlo, margin 4 SE with SE = √((1 − m²)/n), n = 2e5.
fn check_sign_mean_mc(noise: &dyn GradientNoise, grad: &[f64], seed: u64) {
    let n = 200_000;
    let cols = sample_many(noise, grad, n, seed);
    let mut m = vec![0.0; grad.len()];
    noise.sign_mean(grad, &mut m);
    for j in 0..grad.len() {
        let mc = cols[j].iter().map(|z| (grad[j] + z).signum()).sum::<f64>() / n as f64;
        let se = ((1.0 - m[j] * m[j]) / n as f64).sqrt();
        println!(
            "g = {:+.3}: sign mean {:+.5}, MC {:+.5} (SE {se:.5})",
            grad[j], m[j], mc
        );
        assert!(
            (mc - m[j]).abs() <= 4.0 * se,
            "coord {j}: {} vs MC {mc}",
            m[j]
        );
    }
}

#[test]
fn sign_mean_matches_monte_carlo() {
    // The three rows of the table in MATH.md §5.4: (ν, g, s) with s = scale (σ0 = 1, σ1 = 0).
    for (i, (nu, g, s, formula)) in [
        (1.0, 0.3, 2.0, 0.0948),
        (3.0, -1.0, 0.5, -0.8607),
        (2.5, 0.7, 1.3, 0.3656),
    ]
    .into_iter()
    .enumerate()
    {
        let noise = StudentTNoise::new(1, nu, vec![s], 1.0, 0.0).unwrap();
        let mut m = [0.0];
        noise.sign_mean(&[g], &mut m);
        assert!((m[0] - formula).abs() <= 5e-5, "table row {i}");
        check_sign_mean_mc(&noise, &[g], 200 + i as u64);
    }
    // Multi-dimensional with the affine scale (σ1 > 0), both models.
    let grad = [0.8, -0.2, 0.05, -1.5];
    let t = StudentTNoise::new(4, 1.5, vec![1.0, 0.5, 2.0, 1.0], 0.2, 0.6).unwrap();
    check_sign_mean_mc(&t, &grad, 300);
    let g = GaussianNoise::new(4, vec![1.0, 0.5, 2.0, 1.0], 0.2, 0.6).unwrap();
    check_sign_mean_mc(&g, &grad, 301);
}

#[test]
fn sign_mean_jvp_matches_finite_differences() {
    let models: Vec<NoiseModel> = vec![
        GaussianNoise::new(3, vec![1.0, 0.3, 2.0], 0.4, 0.8)
            .unwrap()
            .into(),
        StudentTNoise::new(3, 1.0, vec![1.0, 0.3, 2.0], 0.4, 0.8)
            .unwrap()
            .into(),
        StudentTNoise::new(3, 2.5, vec![1.0, 0.3, 2.0], 0.0, 1.1)
            .unwrap()
            .into(),
    ];
    let grads = [[0.5, -1.0, 0.2], [2.0, 0.01, -3.0], [-0.1, 0.4, 0.0]];
    let v = [0.3, -0.7, 1.1];
    let mut worst = 0.0f64;
    for noise in &models {
        for grad in &grads {
            let mut jv = [0.0; 3];
            noise.sign_mean_jvp(grad, &v, &mut jv);
            let h = 1e-6;
            let gp: Vec<f64> = grad.iter().zip(&v).map(|(g, v)| g + h * v).collect();
            let gm: Vec<f64> = grad.iter().zip(&v).map(|(g, v)| g - h * v).collect();
            let (mut mp, mut mm) = ([0.0; 3], [0.0; 3]);
            noise.sign_mean(&gp, &mut mp);
            noise.sign_mean(&gm, &mut mm);
            for j in 0..3 {
                let fd = (mp[j] - mm[j]) / (2.0 * h);
                let err = (fd - jv[j]).abs();
                worst = worst.max(err);
                assert!(
                    err <= 1e-7 * (1.0 + jv[j].abs()),
                    "j={j}: fd {fd} vs jvp {}",
                    jv[j]
                );
            }
        }
        // The σ1 coupling matters: dropping it would change the answer noticeably.
        let grad = [0.5, -1.0, 0.2];
        let mut jv = [0.0; 3];
        noise.sign_mean_jvp(&grad, &v, &mut jv);
        assert!(jv.iter().any(|x| x.abs() > 1e-3));
    }
    println!("worst |FD - jvp| = {worst:e}");
}

#[test]
fn zero_scale_gives_sign_and_zero_derivative() {
    let noise = GaussianNoise::isotropic(3, 0.0, 0.0).unwrap();
    let grad = [0.5, 0.0, -2.0];
    let mut m = [9.0; 3];
    noise.sign_mean(&grad, &mut m);
    assert_eq!(m, [1.0, 0.0, -1.0]);
    noise.sign_mean_jvp(&grad, &[1.0, 1.0, 1.0], &mut m);
    assert_eq!(m, [0.0, 0.0, 0.0]);
    let t = StudentTNoise::new(3, 1.0, vec![0.0, 1.0, 1.0], 1.0, 0.0).unwrap();
    t.sign_mean(&grad, &mut m);
    assert_eq!(m[0], 1.0);
    assert_eq!(m[1], 0.0);
    let mut z = [1.0; 3];
    let mut rng = derive_stream(1, 1);
    noise.sample(&grad, &mut rng, &mut z);
    assert_eq!(z, [0.0; 3]);
}

#[test]
fn variance_matches_sample_variance() {
    // ν = 10: Var = ν/(ν−2) s²; kurtosis 3 + 6/(ν−4) = 4, so SE of the sample variance is
    // σ²√(3/n). n = 4e5, margin 4 SE.
    let noise = StudentTNoise::new(2, 10.0, vec![1.0, 3.0], 0.5, 0.5).unwrap();
    let grad = [1.0, 1.0];
    let mut v = [0.0; 2];
    assert!(noise.variance(&grad, &mut v));
    let n = 400_000;
    let cols = sample_many(&noise, &grad, n, 7);
    for j in 0..2 {
        let sv = var(&cols[j]);
        let se = v[j] * (3.0 / n as f64).sqrt();
        println!(
            "coord {j}: variance {:.5}, sample {sv:.5} (SE {se:.5})",
            v[j]
        );
        assert!((sv - v[j]).abs() <= 4.0 * se);
    }
    // Infinite variance for ν ≤ 2: false, output untouched.
    for nu in [1.0, 2.0] {
        let t = StudentTNoise::isotropic(2, nu, 1.0, 0.0).unwrap();
        let mut out = [-7.0, -7.0];
        assert!(!t.variance(&grad, &mut out));
        assert_eq!(out, [-7.0, -7.0]);
        assert!(!NoiseModel::from(t).has_finite_variance());
    }
    assert!(NoiseModel::from(GaussianNoise::isotropic(1, 1.0, 0.0).unwrap()).has_finite_variance());
}

#[test]
fn gradient_dependence_flag() {
    assert!(!GaussianNoise::isotropic(2, 1.0, 0.0)
        .unwrap()
        .depends_on_gradient());
    assert!(GaussianNoise::isotropic(2, 0.0, 0.5)
        .unwrap()
        .depends_on_gradient());
    assert!(!GaussianNoise::new(2, vec![0.0, 0.0], 1.0, 0.5)
        .unwrap()
        .depends_on_gradient());
    let t: NoiseModel = StudentTNoise::isotropic(2, 1.0, 0.1, 0.3).unwrap().into();
    assert!(t.depends_on_gradient());
}

#[test]
fn invalid_parameters_are_rejected() {
    for nu in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let e = StudentTNoise::isotropic(2, nu, 1.0, 0.0).unwrap_err();
        assert!(matches!(e, ModelError::InvalidParameter { ref name, .. } if name == "nu"));
    }
    assert_eq!(
        GaussianNoise::isotropic(2, -0.1, 0.0)
            .unwrap_err()
            .to_string(),
        "invalid parameter `sigma0` = -0.1: must be finite and >= 0"
    );
    assert!(GaussianNoise::isotropic(2, 0.1, -1.0).is_err());
    assert!(StudentTNoise::isotropic(2, 3.0, 0.1, f64::NAN).is_err());
    assert_eq!(
        GaussianNoise::new(3, vec![1.0, 1.0], 1.0, 0.0).unwrap_err(),
        ModelError::DimensionMismatch {
            name: "scale".into(),
            expected: 3,
            got: 2
        }
    );
    assert!(StudentTNoise::new(3, 2.0, vec![1.0; 4], 1.0, 0.0).is_err());
    let e = GaussianNoise::new(2, vec![1.0, -2.0], 1.0, 0.0).unwrap_err();
    assert!(e.to_string().contains("scale[1]"));
    assert!(GaussianNoise::isotropic(0, 1.0, 0.0).is_err());
}
