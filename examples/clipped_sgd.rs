//! A new optimizer in one `impl`: distributed clipped SGD, `u = (1/N) Σ_i clip(g + Z_i, ±τ)`
//! coordinate-wise, `Z_i ~ N(0, σ² I)`. With `X ~ N(μ, σ²)`, `α = (−τ−μ)/σ`, `β = (τ−μ)/σ`:
//! `E clip(X) = τ(1 − Φ(β) − Φ(α)) + μ(Φ(β) − Φ(α)) + σ(φ(α) − φ(β))`,
//! `E clip(X)² = τ²(1 − Φ(β) + Φ(α)) + (μ² + σ²)(Φ(β) − Φ(α)) + 2μσ(φ(α) − φ(β)) + σ²(αφ(α) − βφ(β))`,
//! `∂_μ E clip(X) = Φ(β) − Φ(α)`. `Optimizer::sde` then gives the SDE models (A), (B), (C).
//! Run: `cargo run --release -p models --example clipped_sgd`.
use models::special::normal_pdf;
use models::{GradientMethod, Optimizer, Quartic, Schedule, SdeModel};
use rand::RngExt;
use rand_distr::StandardNormal;
use sde_core::{derive_stream, Ensemble, Gaussian, Grid, PathRng, PlatenWeak2, SdePaths, Solver};
use sde_core::{Summary, Welford};
use statrs::function::erf::erfc;
use std::f64::consts::FRAC_1_SQRT_2;

const AGENTS: usize = 4;
const SIGMA: f64 = 1.0;
const TAU: f64 = 1.0;

/// `N = AGENTS` agents in dimension `self.0`.
struct ClippedSgd(usize);

/// Mean, variance and `∂mean/∂μ` of `clip(μ + σ ξ, ±τ)`, `ξ ~ N(0, 1)`. `Φ` from statrs' `erfc`
/// (~1e-11 accurate, much faster than the full-precision `models::special::normal_cdf`).
fn moments(mu: f64) -> (f64, f64, f64) {
    let (s, t, cdf) = (SIGMA, TAU, |y: f64| 0.5 * erfc(-y * FRAC_1_SQRT_2));
    let (a, b) = ((-t - mu) / s, (t - mu) / s);
    let (pa, pb, fa, fb) = (cdf(a), cdf(b), normal_pdf(a), normal_pdf(b));
    let m = t * (1.0 - pb - pa) + mu * (pb - pa) + s * (fa - fb);
    let m2 = t * t * (1.0 - pb + pa) + (mu * mu + s * s) * (pb - pa);
    let m2 = m2 + 2.0 * mu * s * (fa - fb) + s * s * (a * fa - b * fb);
    (m, (m2 - m * m).max(0.0), pb - pa)
}

impl GradientMethod for ClippedSgd {
    fn name(&self) -> &str {
        "clipped_sgd"
    }
    fn dim(&self) -> usize {
        self.0
    }
    fn sample(&self, g: &[f64], rng: &mut PathRng, u: &mut [f64], _: &mut [f64]) {
        u.fill(0.0);
        for _ in 0..AGENTS {
            for (uj, gj) in u.iter_mut().zip(g) {
                let z: f64 = rng.sample(StandardNormal);
                *uj += (gj + SIGMA * z).clamp(-TAU, TAU) / AGENTS as f64;
            }
        }
    }
    fn mean(&self, g: &[f64], out: &mut [f64], _: &mut [f64]) {
        (0..self.0).for_each(|j| out[j] = moments(g[j]).0);
    }
    fn mean_jvp(&self, g: &[f64], v: &[f64], out: &mut [f64], _: &mut [f64]) {
        (0..self.0).for_each(|j| out[j] = moments(g[j]).2 * v[j]);
    }
    fn cov_sqrt_mul(&self, g: &[f64], xi: &[f64], out: &mut [f64], scratch: &mut [f64]) {
        self.cov_sqrt_diag(g, out, scratch);
        (0..self.0).for_each(|j| out[j] *= xi[j]);
    }
    fn covariance_is_diagonal(&self) -> bool {
        true
    }
    fn cov_sqrt_diag(&self, g: &[f64], out: &mut [f64], _: &mut [f64]) {
        (0..self.0).for_each(|j| out[j] = (moments(g[j]).1 / AGENTS as f64).sqrt());
    }
}

fn show(what: &str, s: impl Iterator<Item = Summary>) {
    let v: Vec<String> = s
        .map(|s| format!("{:+.4} ± {:.4}", s.mean, s.ci95))
        .collect();
    println!("{what:<24} {}", v.join("   "));
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (d, eta, iterations, paths, x0) = (2, 0.05, 40, 20_000u64, [1.5, -1.0]);
    let opt = Optimizer::new(Quartic::standard(d)?, ClippedSgd(d), Schedule::constant())?;
    // Discrete: one stream per path, `iterations` steps each.
    let (mut ws, mut acc) = (opt.workspace(), vec![Welford::default(); d]);
    for p in 0..paths {
        let (mut x, mut rng) = (x0.to_vec(), derive_stream(7, p));
        (0..iterations).for_each(|k| _ = opt.step(k, eta, &mut x, &mut rng, &mut ws));
        acc.iter_mut().zip(&x).for_each(|(a, &xj)| a.push(xj));
    }
    let t_end = eta * iterations as f64;
    println!("E x at T = K eta = {t_end} (K = {iterations}), ± 95% half-widths:");
    show("discrete clipped SGD", acc.iter().map(|a| a.summary()));
    // The SDE models on [0, T], two weak-order-2 steps per iteration.
    let grid = Grid::new(0.0, t_end, 2 * iterations as usize)?.save_final();
    for model in SdeModel::ALL {
        let sde = opt.sde(model, eta)?;
        let sim = SdePaths::new(Solver::new(&sde, PlatenWeak2, Gaussian)?, grid, &x0)?;
        let stats = Ensemble::new(paths, 8)?.run(&sim);
        let name = format!("SDE {}", model.name());
        show(&name, (0..d).map(|j| stats.summary(1, j)));
    }
    Ok(())
}
