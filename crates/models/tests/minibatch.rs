//! Minibatch gradient noise: covariance of the direction against Monte Carlo (margins from the
//! standard error), the `d × n` factor against the per-example gradients, the CLT sign mean's
//! error measured, and the wiring into the generic optimizer and SDE models.

use models::compress::{BernoulliSparsifier, CompressorKind, Identity};
use models::loss::Loss;
use models::method::GradientMethod;
use models::minibatch::{Minibatch, MinibatchRule};
use models::mlp::Mlp;
use models::optimizer::Optimizer;
use models::schedule::Schedule;
use models::sde::SdeModel;
use rand::RngExt;
use rand_distr::StandardNormal;
use sde_core::{NoiseShape, Sde};
use std::sync::Arc;

mod common;

fn net() -> Arc<Mlp> {
    Arc::new(Mlp::new(common::iris_mlp(11)).unwrap())
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// `vᵀ C w` from the factor: `Σ_k (vᵀ B e_k)(wᵀ B e_k)` over the `m` columns.
fn factor_form(mb: &Minibatch, x: &[f64], g: &[f64], v: &[f64], w: &[f64]) -> f64 {
    let m = mb.noise_dim();
    let d = mb.dim();
    let mut scratch = vec![0.0; mb.scratch_len()];
    let mut e = vec![0.0; m];
    let mut col = vec![0.0; d];
    let mut s = 0.0;
    for k in 0..m {
        e.fill(0.0);
        e[k] = 1.0;
        mb.cov_sqrt_mul_at(x, g, &e, &mut col, &mut scratch);
        s += dot(v, &col) * dot(w, &col);
    }
    s
}

/// `vᵀ Σ w` straight from the per-example gradients (the definition).
fn per_example_form(net: &Mlp, x: &[f64], v: &[f64], w: &[f64]) -> f64 {
    let (n, d) = (net.train_rows(), net.dim());
    let mut grads = vec![vec![0.0; d]; n];
    let mut mean = vec![0.0; d];
    for (i, gi) in grads.iter_mut().enumerate() {
        net.example_gradient(x, i, gi);
        mean.iter_mut()
            .zip(gi.iter())
            .for_each(|(m, a)| *m += a / n as f64);
    }
    grads
        .iter()
        .map(|gi| {
            let c: Vec<f64> = gi.iter().zip(&mean).map(|(a, b)| a - b).collect();
            dot(v, &c) * dot(w, &c)
        })
        .sum::<f64>()
        / n as f64
}

/// Monte Carlo of `E[(vᵀ(u − g))(wᵀ(u − g))]` with its standard error, and of `E[vᵀ(u − g)]`.
fn monte_carlo(
    mb: &Minibatch,
    x: &[f64],
    g: &[f64],
    v: &[f64],
    w: &[f64],
    m: usize,
    seed: u64,
) -> (f64, f64, f64, f64) {
    let mut rng = sde_core::derive_stream(seed, 0);
    let mut scratch = vec![0.0; mb.scratch_len()];
    let mut u = vec![0.0; mb.dim()];
    let (mut s1, mut s2, mut m1, mut m2) = (0.0, 0.0, 0.0, 0.0);
    for _ in 0..m {
        mb.sample_at(x, g, &mut rng, &mut u, &mut scratch);
        let a: f64 = v
            .iter()
            .zip(&u)
            .zip(g)
            .map(|((vi, ui), gi)| vi * (ui - gi))
            .sum();
        let b: f64 = w
            .iter()
            .zip(&u)
            .zip(g)
            .map(|((wi, ui), gi)| wi * (ui - gi))
            .sum();
        let t = a * b;
        s1 += t;
        s2 += t * t;
        m1 += a;
        m2 += a * a;
    }
    let mf = m as f64;
    let mean_t = s1 / mf;
    let se_t = ((s2 / mf - mean_t * mean_t) / mf).sqrt();
    let mean_a = m1 / mf;
    let se_a = ((m2 / mf - mean_a * mean_a) / mf).sqrt();
    (mean_t, se_t, mean_a, se_a)
}

fn directions(d: usize, seed: u64) -> (Vec<f64>, Vec<f64>) {
    let mut rng = sde_core::derive_stream(seed, 5);
    let v = (0..d).map(|_| rng.sample(StandardNormal)).collect();
    let w = (0..d).map(|_| rng.sample(StandardNormal)).collect();
    (v, w)
}

#[test]
fn dsgd_minibatch_covariance_matches_monte_carlo_with_and_without_replacement() {
    let net = net();
    let x = net.x0().to_vec();
    let d = net.dim();
    let mut g = vec![0.0; d];
    net.gradient(&x, &mut g);
    let (v, w) = directions(d, 1);
    let sigma_vv = per_example_form(&net, &x, &v, &v);
    let sigma_vw = per_example_form(&net, &x, &v, &w);
    let (agents, batch) = (2, 16);
    for replacement in [true, false] {
        let mb =
            Minibatch::new(net.clone(), MinibatchRule::Sgd, agents, batch, replacement).unwrap();
        let c = mb.batch_factor() / agents as f64;
        // The factor reproduces the per-example definition (an identity, up to rounding).
        let fvv = factor_form(&mb, &x, &g, &v, &v);
        let fvw = factor_form(&mb, &x, &g, &v, &w);
        assert!(
            (fvv - c * sigma_vv).abs() < 1e-10 * fvv.abs(),
            "{fvv} vs {}",
            c * sigma_vv
        );
        assert!(
            (fvw - c * sigma_vw).abs() < 1e-10 * fvv.abs(),
            "{fvw} vs {}",
            c * sigma_vw
        );
        for (ww, want) in [(&v, c * sigma_vv), (&w, c * sigma_vw)] {
            let (mc, se, mean, se_mean) = monte_carlo(&mb, &x, &g, &v, ww, 40_000, 3);
            assert!(
                (mc - want).abs() < 4.0 * se,
                "replacement={replacement}: {mc} ± {se} vs {want}"
            );
            assert!(mean.abs() < 4.0 * se_mean, "unbiased: {mean} ± {se_mean}");
        }
        if !replacement {
            // The finite-population factor (n − B)/(n − 1) = 104/119 is resolved: the
            // with-replacement formula is rejected by the same data.
            let wrong = sigma_vv / (batch * agents) as f64;
            let (mc, se, _, _) = monte_carlo(&mb, &x, &g, &v, &v, 40_000, 3);
            assert!((mc - wrong).abs() > 4.0 * se, "{mc} ± {se} vs {wrong}");
        }
    }
}

#[test]
fn dcsgd_bernoulli_minibatch_covariance_matches_monte_carlo() {
    let net = net();
    let x = net.x0().to_vec();
    let d = net.dim();
    let mut g = vec![0.0; d];
    net.gradient(&x, &mut g);
    let (v, w) = directions(d, 2);
    for comp in [
        CompressorKind::Bernoulli(BernoulliSparsifier::new(0.5).unwrap()),
        CompressorKind::Identity(Identity),
    ] {
        let mb = Minibatch::new(net.clone(), MinibatchRule::Compressed(comp), 3, 8, false).unwrap();
        for ww in [&v, &w] {
            let want = factor_form(&mb, &x, &g, &v, ww);
            let (mc, se, mean, se_mean) = monte_carlo(&mb, &x, &g, &v, ww, 40_000, 4);
            assert!(
                (mc - want).abs() < 4.0 * se,
                "{comp:?}: {mc} ± {se} vs {want}"
            );
            assert!(mean.abs() < 4.0 * se_mean);
        }
    }
    let qsgd = CompressorKind::RandK(models::compress::RandK::new(3, d).unwrap());
    let e = Minibatch::new(net, MinibatchRule::Compressed(qsgd), 1, 4, true).unwrap_err();
    assert!(e.to_string().contains("compressor.kind"), "{e}");
}

/// The CLT sign mean against Monte Carlo: prints the error (the README states it) and checks
/// that it is small where the Gaussian form should hold (the mean over coordinates of the
/// absolute error below 0.05 at B = 16) while the Monte Carlo itself is resolved.
#[test]
fn dsignsgd_minibatch_sign_mean_error_is_measured() {
    let net = net();
    let x = net.x0().to_vec();
    let d = net.dim();
    let mut g = vec![0.0; d];
    net.gradient(&x, &mut g);
    for batch in [4, 16, 64] {
        let mb = Minibatch::new(net.clone(), MinibatchRule::Sign, 1, batch, true).unwrap();
        let mut scratch = vec![0.0; mb.scratch_len()];
        let mut clt = vec![0.0; d];
        mb.mean_at(&x, &g, &mut clt, &mut scratch);
        let m = 20_000;
        let mut rng = sde_core::derive_stream(9, batch as u64);
        let mut acc = vec![0.0; d];
        let mut u = vec![0.0; d];
        for _ in 0..m {
            mb.sample_at(&x, &g, &mut rng, &mut u, &mut scratch);
            acc.iter_mut().zip(&u).for_each(|(a, b)| *a += b / m as f64);
        }
        let errs: Vec<f64> = acc.iter().zip(&clt).map(|(a, b)| (a - b).abs()).collect();
        let max = errs.iter().fold(0.0f64, |a, b| a.max(*b));
        let mean = errs.iter().sum::<f64>() / d as f64;
        // Monte Carlo standard error of one coordinate is at most 1/√m = 0.007.
        eprintln!(
            "sign mean, B = {batch}: mean |MC − CLT| = {mean:.4}, max = {max:.4} (MC se ≤ {:.4})",
            1.0 / (m as f64).sqrt()
        );
        if batch >= 16 {
            assert!(mean < 0.05, "B = {batch}: mean error {mean}");
        }
    }
}

#[test]
fn generic_optimizer_and_sde_use_the_state_dependent_law() {
    let net = net();
    let d = net.dim();
    let n = net.train_rows();
    let mb = Minibatch::new(net.clone(), MinibatchRule::Sgd, 2, 8, true).unwrap();
    let opt = Optimizer::new(net.clone(), mb.clone(), Schedule::constant()).unwrap();
    // One discrete step is x − η u with u from sample_at on the same stream.
    let x0 = net.x0().to_vec();
    let mut x = x0.clone();
    let mut ws = opt.workspace();
    let mut rng = sde_core::derive_stream(1, 1);
    opt.step(0, 0.1, &mut x, &mut rng, &mut ws);
    let mut rng = sde_core::derive_stream(1, 1);
    let mut u = vec![0.0; d];
    let mut scratch = vec![0.0; mb.scratch_len()];
    mb.sample_at(&x0, &vec![0.0; d], &mut rng, &mut u, &mut scratch);
    for j in 0..d {
        assert!((x[j] - (x0[j] - 0.1 * u[j])).abs() < 1e-15);
    }
    // The SDE has one Brownian motion per training example, and its diffusion is √η B ξ.
    let eta = 0.05;
    let sde = opt.sde(SdeModel::FirstOrder, eta).unwrap();
    assert_eq!(
        sde.noise(),
        NoiseShape::General {
            m: n,
            commutative: false
        }
    );
    let mut rng = sde_core::derive_stream(2, 2);
    let xi: Vec<f64> = (0..n).map(|_| rng.sample(StandardNormal)).collect();
    let mut out = vec![0.0; d];
    let mut b = vec![];
    let mut sc = vec![0.0; sde.scratch_len()];
    sde.diffusion_mul(0.0, &x0, &xi, &mut out, &mut b, &mut sc);
    let mut g = vec![0.0; d];
    net.gradient(&x0, &mut g);
    let mut want = vec![0.0; d];
    mb.cov_sqrt_mul_at(&x0, &g, &xi, &mut want, &mut scratch);
    for j in 0..d {
        assert!((out[j] - eta.sqrt() * want[j]).abs() < 1e-14 * (1.0 + want[j].abs()));
    }
    // Dense columns (schemes of weak order 2) agree with the product form.
    let mut dense = vec![0.0; d * n];
    sde.diffusion(0.0, &x0, &mut dense, &mut sc);
    for j in 0..d {
        let row: f64 = (0..n).map(|k| dense[j * n + k] * xi[k]).sum();
        assert!((row - out[j]).abs() < 1e-12 * (1.0 + out[j].abs()));
    }
    // Drift of (A) is −∇f.
    let mut drift = vec![0.0; d];
    sde.drift(0.0, &x0, &mut drift, &mut sc);
    for j in 0..d {
        assert!((drift[j] + g[j]).abs() < 1e-15);
    }
    let e = Minibatch::new(net, MinibatchRule::Sgd, 1, 1000, false).unwrap_err();
    assert!(e.to_string().contains("noise.batch"), "{e}");
}

/// `AnyMethod` answers every `GradientMethod` call as the method it wraps, including the hooks
/// with default bodies (a forgotten one would fall back to the default silently).
#[test]
fn any_method_forwards_the_fused_hooks() {
    use models::method::{Agent, DsignSgd, Method};
    use models::minibatch::AnyMethod;
    use models::noise::GaussianNoise;
    let noise = GaussianNoise::new(3, vec![1.0, 0.5, 2.0], 0.3, 0.1).unwrap();
    let agents = vec![
        Agent {
            noise: noise.into(),
            compressor: CompressorKind::Identity(Identity),
        };
        4
    ];
    let bare = Method::from(DsignSgd::new(agents).unwrap());
    let any = AnyMethod::from(bare.clone());
    let g = [0.3, -1.2, 0.05];
    let run = |m: &dyn GradientMethod| {
        let mut s = vec![0.0; m.scratch_len()];
        let (mut mean, mut diag) = ([0.0; 3], [0.0; 3]);
        let fused = m.mean_and_cov_sqrt_diag(&g, &mut mean, &mut diag, &mut s);
        (
            fused,
            mean,
            diag,
            m.covariance_is_coordinatewise(),
            m.coupling_dim(),
        )
    };
    let (a, b) = (run(&bare), run(&any));
    assert!(a.0, "DSignSGD fuses its mean and diagonal");
    assert_eq!(a, b);
}
