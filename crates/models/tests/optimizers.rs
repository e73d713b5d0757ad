//! The discrete optimizers (MATH.md §3) and the update laws of `models::method` (§5.2–§5.4).
//!
//! * DSGD on a diagonal quadratic with four heterogeneous Gaussian agents: the mean and second
//!   moment of `x_K` against the exact recursions of MATH.md §7 generalised per coordinate, for
//!   bounded (`σ1 = 0`) and affine (`σ1 > 0`) variance.
//! * One step of DCSGD (Bernoulli, rand-k, mixed) and DSignSGD (Gaussian, Student-t ν = 1.5):
//!   Monte Carlo mean and covariance of `u | g` against `mean` and `C = B Bᵀ` from
//!   `cov_sqrt_mul` (and `cov_sqrt_diag`).
//! * `mean_jvp` against central differences of `mean`.
//! * `step_coupled` (common random numbers) against `step`.
//! * Parameter validation: every error names the parameter and its value.
//!
//! Every statistical check uses a fixed seed and a margin in units of the Monte Carlo standard
//! error (SE) estimated from the same sample, stated at each assertion.

// Loops over coordinates index several parallel arrays, as the formulas do.
#![allow(clippy::needless_range_loop)]

mod common;
use common::{agent, gaussian, sign, student, uncompressed};

use models::compress::{BernoulliSparsifier, CompressorKind, Identity, RandK};
use models::loss::{DiagonalQuadratic, Loss};
use models::method::{Agent, Dcsgd, Dsgd, DsignSgd, GradientMethod};
use models::noise::{GaussianNoise, StudentTNoise};
use models::optimizer::{Optimizer, StepWorkspace};
use models::schedule::Schedule;
use models::sde::SdeModel;
use sde_core::{
    derive_stream, Ensemble, Gaussian, Increments, PathInput, PathRng, PathSimulation, Welford,
};

// ---------------------------------------------------------------------------------------------
// Helpers

/// `C = B Bᵀ` with the columns `B e_j` from `cov_sqrt_mul`, row-major `d × d`.
fn covariance(method: &dyn GradientMethod, g: &[f64]) -> Vec<f64> {
    let d = method.dim();
    let mut scratch = vec![0.0; method.scratch_len()];
    let mut b = vec![0.0; d * d]; // b[i * d + j] = (B e_j)_i
    let mut e = vec![0.0; d];
    let mut col = vec![0.0; d];
    for j in 0..d {
        e.fill(0.0);
        e[j] = 1.0;
        method.cov_sqrt_mul(g, &e, &mut col, &mut scratch);
        for i in 0..d {
            b[i * d + j] = col[i];
        }
    }
    let mut c = vec![0.0; d * d];
    for i in 0..d {
        for k in 0..d {
            c[i * d + k] = (0..d).map(|j| b[i * d + j] * b[k * d + j]).sum();
        }
    }
    c
}

/// Monte Carlo of one direction `u | g`: Welford accumulators of `u_j` and of the centred
/// products `(u_a − μ_a)(u_b − μ_b)` about the *exact* mean `mu` (so the products are iid and
/// their sample mean is an unbiased covariance estimate with an honest SE).
fn one_step_moments(
    method: &dyn GradientMethod,
    g: &[f64],
    mu: &[f64],
    samples: usize,
    seed: u64,
) -> (Vec<Welford>, Vec<Welford>) {
    let d = method.dim();
    let mut rng = derive_stream(seed, 0);
    let mut u = vec![0.0; d];
    let mut scratch = vec![0.0; method.scratch_len()];
    let mut means = vec![Welford::default(); d];
    let mut prods = vec![Welford::default(); d * d];
    for _ in 0..samples {
        method.sample(g, &mut rng, &mut u, &mut scratch);
        for a in 0..d {
            means[a].push(u[a]);
            for b in 0..d {
                prods[a * d + b].push((u[a] - mu[a]) * (u[b] - mu[b]));
            }
        }
    }
    (means, prods)
}

/// `x_K` of the discrete optimizer on an ensemble: observables `x_j` and `x_j²` at save point 1
/// (save point 0 is `x0`). With `coupled`, every iteration is driven by `ζ ~ N(0, I)` through
/// `step_coupled` instead of `step`.
struct Discrete<'a, L, M> {
    opt: &'a Optimizer<L, M>,
    eta: f64,
    iterations: u64,
    x0: Vec<f64>,
    coupled: bool,
}

impl<'a, L, M> Discrete<'a, L, M> {
    /// From `X0`, uncoupled.
    fn from_x0(opt: &'a Optimizer<L, M>, eta: f64, iterations: u64) -> Self {
        Discrete {
            opt,
            eta,
            iterations,
            x0: X0.to_vec(),
            coupled: false,
        }
    }
}

struct DiscreteWs {
    x: Vec<f64>,
    zeta: Vec<f64>,
    step: StepWorkspace,
}

impl<L: Loss, M: GradientMethod> PathSimulation for Discrete<'_, L, M> {
    type Workspace = DiscreteWs;
    fn workspace(&self) -> DiscreteWs {
        DiscreteWs {
            x: self.x0.clone(),
            zeta: vec![0.0; self.opt.coupling_dim()],
            step: self.opt.workspace(),
        }
    }
    fn n_save(&self) -> usize {
        2
    }
    fn n_observables(&self) -> usize {
        2 * self.x0.len()
    }
    fn simulate(&self, path: PathInput<'_>, ws: &mut DiscreteWs, out: &mut [f64]) -> usize {
        let rng = path.rng;
        let d = self.x0.len();
        ws.x.copy_from_slice(&self.x0);
        for j in 0..d {
            out[j] = ws.x[j];
            out[d + j] = ws.x[j] * ws.x[j];
        }
        for k in 0..self.iterations {
            if self.coupled {
                Gaussian.draw(rng, 1.0, &mut ws.zeta);
                assert!(self
                    .opt
                    .step_coupled(k, self.eta, &mut ws.x, &ws.zeta, rng, &mut ws.step));
            } else {
                self.opt.step(k, self.eta, &mut ws.x, rng, &mut ws.step);
            }
        }
        let o = &mut out[2 * d..];
        for j in 0..d {
            o[j] = ws.x[j];
            o[d + j] = ws.x[j] * ws.x[j];
        }
        2
    }
}

// ---------------------------------------------------------------------------------------------
// DSGD on a diagonal quadratic: exact moment recursions

const LAMBDA: [f64; 3] = [0.5, 1.0, 2.0];
const SCALE: [f64; 3] = [1.0, 0.5, 2.0];
const SIGMA0: [f64; 4] = [0.2, 0.5, 1.0, 1.5];
const X0: [f64; 3] = [1.0, -1.0, 0.5];

/// Four agents with scale `SCALE`, per-agent `σ0_i = SIGMA0[i]` and `σ1_i = sigma1[i]`.
fn dsgd_quadratic(sigma1: [f64; 4]) -> Optimizer<DiagonalQuadratic, Dsgd> {
    let agents = SIGMA0
        .iter()
        .zip(sigma1)
        .map(|(&s0, s1)| uncompressed(gaussian(&SCALE, s0, s1)))
        .collect();
    Optimizer::new(
        DiagonalQuadratic::new(LAMBDA.to_vec()).unwrap(),
        Dsgd::new(agents).unwrap(),
        Schedule::constant(),
    )
    .unwrap()
}

/// Runs `paths` discrete paths of `iterations` steps and checks `E x_K` and `E x_K²` against
/// `(mean, second)` within 4 SE (SE from the sample standard deviation of `x_K` resp. `x_K²`).
fn check_moments<L: Loss, M: GradientMethod>(
    sim: &Discrete<'_, L, M>,
    paths: u64,
    seed: u64,
    mean: &[f64],
    second: &[f64],
) {
    let d = mean.len();
    let stats = Ensemble::new(paths, seed).unwrap().run(sim);
    assert_eq!(stats.diverged_total(), 0);
    for j in 0..d {
        for (what, offset, exact) in [("E x_K", 0, mean), ("E x_K²", d, second)] {
            let m = stats.summary(1, offset + j);
            assert!(
                (m.mean - exact[j]).abs() <= 4.0 * m.std_err,
                "coord {j}: {what} = {} ± {} vs exact {}",
                m.mean,
                m.std_err,
                exact[j]
            );
        }
    }
}

/// Bounded variance (`σ1 = 0`). The mean of the agents' noises has independent coordinates with
/// variance `c_j = Σ_i σ0_i² s_j² / N²`, so per coordinate (MATH.md §7, `σ² → c_j`)
/// `E x_k = (1 − ηλ_j)^k x0` and `E x_{k+1}² = (1 − ηλ_j)² E x_k² + η² c_j`.
#[test]
fn dsgd_quadratic_bounded_variance_moments() {
    let opt = dsgd_quadratic([0.0; 4]);
    let (eta, iterations) = (0.1, 25u64);
    let n = SIGMA0.len() as f64;
    let sum_s0: f64 = SIGMA0.iter().map(|s| s * s).sum();
    let mut mean = X0.to_vec();
    let mut second: Vec<f64> = X0.iter().map(|x| x * x).collect();
    for _ in 0..iterations {
        for j in 0..3 {
            let q = 1.0 - eta * LAMBDA[j];
            let c = sum_s0 * SCALE[j] * SCALE[j] / (n * n);
            mean[j] *= q;
            second[j] = q * q * second[j] + eta * eta * c;
        }
    }
    // Closed form of the mean as well: (1 − ηλ)^K x0.
    for j in 0..3 {
        let closed = (1.0 - eta * LAMBDA[j]).powi(iterations as i32) * X0[j];
        assert!((mean[j] - closed).abs() <= 1e-15);
    }
    let sim = Discrete::from_x0(&opt, eta, iterations);
    check_moments(&sim, 200_000, 11, &mean, &second);
}

/// Affine variance (`σ1 > 0`, per agent). Given `x_k`, the mean noise `ζ` has independent
/// centred coordinates with `E[ζ_j² | x_k] = (s_j²/N²) Σ_i (σ0_i² + σ1_i² ‖∇f(x_k)‖²)` and
/// `‖∇f‖² = Σ_l λ_l² x_l²`. From `x_{k+1,j} = (1 − ηλ_j) x_{k,j} − η ζ_j` and `E[ζ | x_k] = 0`:
///
/// `E x_{k+1,j} = (1 − ηλ_j) E x_{k,j}`,
/// `E x_{k+1,j}² = (1 − ηλ_j)² E x_{k,j}² + η² (s_j²/N²) (S0 + S1 Σ_l λ_l² E x_{k,l}²)`,
///
/// with `S0 = Σ_i σ0_i²`, `S1 = Σ_i σ1_i²`: a linear recursion in the vector of second moments
/// (the cross term `E[x_{k,j} ζ_j]` vanishes), iterated exactly below.
#[test]
fn dsgd_quadratic_affine_variance_moments() {
    let sigma1 = [0.3, 0.0, 0.5, 0.2];
    let opt = dsgd_quadratic(sigma1);
    let (eta, iterations) = (0.1, 25u64);
    let n = SIGMA0.len() as f64;
    let s0: f64 = SIGMA0.iter().map(|s| s * s).sum();
    let s1: f64 = sigma1.iter().map(|s| s * s).sum();
    let mut mean = X0.to_vec();
    let mut second: Vec<f64> = X0.iter().map(|x| x * x).collect();
    for _ in 0..iterations {
        let grad2: f64 = (0..3).map(|l| LAMBDA[l] * LAMBDA[l] * second[l]).sum();
        for j in 0..3 {
            let q = 1.0 - eta * LAMBDA[j];
            mean[j] *= q;
            second[j] =
                q * q * second[j] + eta * eta * SCALE[j] * SCALE[j] / (n * n) * (s0 + s1 * grad2);
        }
    }
    let sim = Discrete::from_x0(&opt, eta, iterations);
    check_moments(&sim, 200_000, 12, &mean, &second);
}

// ---------------------------------------------------------------------------------------------
// One step of DCSGD and DSignSGD

/// Mean within `k` SE of `mu`, and the centred products within `k` SE of `c` (entrywise).
fn check_one_step(method: &dyn GradientMethod, g: &[f64], mu: &[f64], c: &[f64], k: f64) {
    let d = method.dim();
    let (means, prods) = one_step_moments(method, g, mu, 400_000, 21);
    for a in 0..d {
        let m = means[a].summary();
        assert!(
            (m.mean - mu[a]).abs() <= k * m.std_err,
            "{}: E u_{a} = {} ± {} vs {}",
            method.name(),
            m.mean,
            m.std_err,
            mu[a]
        );
        for b in 0..d {
            let p = prods[a * d + b].summary();
            assert!(
                (p.mean - c[a * d + b]).abs() <= k * p.std_err,
                "{}: Cov[u]_{a}{b} = {} ± {} vs {}",
                method.name(),
                p.mean,
                p.std_err,
                c[a * d + b]
            );
        }
    }
}

/// DCSGD: `E[u | g] = g` (unbiased compressors) and `Cov[u | g] = B Bᵀ`, entrywise within 4.5 SE
/// (9 means and 9 covariance entries per case, 4.5 SE keeps the family-wise false-alarm rate
/// of one case below 1e-4). Heterogeneous agents with affine noise, Bernoulli with per-agent `p`,
/// rand-k (the rank-one off-diagonal part is non-zero), and a mix of both.
#[test]
fn dcsgd_one_step_mean_and_covariance() {
    let d = 3;
    let g = [1.0, -2.0, 0.5];
    let noises = [
        gaussian(&[1.0, 0.5, 2.0], 0.3, 0.2),
        gaussian(&[0.5, 1.0, 1.0], 0.8, 0.0),
        gaussian(&[1.0, 1.0, 0.3], 0.1, 0.4),
    ];
    let bern = |p| BernoulliSparsifier::new(p).unwrap();
    let randk = |k| RandK::new(k, d).unwrap();
    let cases: Vec<Vec<Agent>> = vec![
        vec![
            agent(noises[0].clone(), bern(0.5)),
            agent(noises[1].clone(), bern(0.25)),
            agent(noises[2].clone(), bern(0.8)),
        ],
        vec![
            agent(noises[0].clone(), randk(1)),
            agent(noises[1].clone(), randk(2)),
            agent(noises[2].clone(), randk(1)),
        ],
        // Homogeneous rand-k (the `weight = N` branch).
        vec![agent(noises[0].clone(), randk(1)); 3],
        vec![
            agent(noises[0].clone(), bern(0.5)),
            agent(noises[1].clone(), randk(2)),
            agent(noises[2].clone(), Identity),
        ],
    ];
    for agents in cases {
        let method = Dcsgd::new(agents).unwrap();
        let mut mu = vec![0.0; d];
        method.mean(&g, &mut mu, &mut vec![0.0; method.scratch_len()]);
        assert_eq!(mu, g);
        let c = covariance(&method, &g);
        check_one_step(&method, &g, &mu, &c, 4.5);
        if method.covariance_is_diagonal() {
            let mut diag = vec![0.0; d];
            method.cov_sqrt_diag(&g, &mut diag, &mut vec![0.0; method.scratch_len()]);
            for i in 0..d {
                assert!((diag[i] * diag[i] - c[i * d + i]).abs() <= 1e-14 * c[i * d + i]);
                for k in 0..d {
                    if k != i {
                        assert_eq!(c[i * d + k], 0.0);
                    }
                }
            }
        }
    }
}

/// DSignSGD: `E[u | g] = mean(g)` and `Var[u_j | g] = cov_sqrt_diag(g)_j²` within 4 SE, with
/// heterogeneous Gaussian and Student-t (ν = 1.5: infinite variance, finite sign moments)
/// agents; off-diagonal covariances (independent coordinates) within 4 SE of 0. A homogeneous
/// case exercises the one-agent-times-N shortcut.
#[test]
fn dsignsgd_one_step_mean_and_variance() {
    let d = 3;
    let g = [0.3, -0.8, 1.5];
    let scales = [[1.0, 0.5, 2.0], [0.5, 1.0, 1.0], [2.0, 0.7, 0.3]];
    let cases: Vec<Vec<Agent>> = vec![
        scales
            .iter()
            .map(|s| uncompressed(gaussian(s, 1.0, 0.0)))
            .collect(),
        scales
            .iter()
            .map(|s| uncompressed(student(1.5, s, 1.0, 0.0)))
            .collect(),
        scales
            .iter()
            .map(|s| uncompressed(student(1.5, s, 0.2, 0.5)))
            .collect(),
        vec![uncompressed(student(1.5, &scales[0], 1.0, 0.0)); 4],
    ];
    for agents in cases {
        let method = DsignSgd::new(agents).unwrap();
        let mut scratch = vec![0.0; method.scratch_len()];
        let mut mu = vec![0.0; d];
        method.mean(&g, &mut mu, &mut scratch);
        let mut diag = vec![0.0; d];
        method.cov_sqrt_diag(&g, &mut diag, &mut scratch);
        let mut c = vec![0.0; d * d];
        for j in 0..d {
            c[j * d + j] = diag[j] * diag[j];
        }
        // cov_sqrt_mul agrees with the diagonal.
        let cm = covariance(&method, &g);
        for (a, b) in c.iter().zip(&cm) {
            assert!((a - b).abs() <= 1e-15);
        }
        check_one_step(&method, &g, &mu, &c, 4.0);
    }
}

// ---------------------------------------------------------------------------------------------
// Sampling fast paths

/// `method.sample` draws exactly what the plain composition of the public pieces draws:
/// per agent `Z = noise.sample(g)`, then `C(g + Z)` for DCSGD (compressors on their own
/// per-iteration stream, `compressor_stream`), averaged, with the same stream —
/// bit for bit. Guards the fast paths of method.rs (shared Gaussian scales, inlined normals,
/// branch-free Bernoulli) against drifting from noise.rs and compress.rs.
#[test]
fn sample_matches_the_plain_composition_bit_for_bit() {
    use models::compress::Compressor;
    use models::noise::GradientNoise;
    let d = 3;
    let g = [0.4, -1.1, 0.05];
    let noises = [
        gaussian(&[1.0, 0.5, 2.0], 0.3, 0.2),
        student(3.0, &[0.5, 1.0, 1.0], 0.8, 0.1),
        gaussian(&[1.0, 0.0, 0.3], 0.1, 0.4),
    ];
    let compressors: [CompressorKind; 3] = [
        BernoulliSparsifier::new(0.3).unwrap().into(),
        RandK::new(2, d).unwrap().into(),
        Identity.into(),
    ];
    let hetero: Vec<Agent> = noises
        .iter()
        .zip(compressors)
        .map(|(n, c)| agent(n.clone(), c))
        .collect();
    let homo = vec![agent(noises[0].clone(), compressors[0]); 4];
    let homo_t = vec![agent(noises[1].clone(), compressors[1]); 2];
    for agents in [hetero, homo, homo_t] {
        let n = agents.len() as f64;
        let methods: Vec<Box<dyn GradientMethod>> = vec![
            Box::new(Dsgd::new(agents.clone()).unwrap()),
            Box::new(Dcsgd::new(agents.clone()).unwrap()),
            Box::new(DsignSgd::new(agents.clone()).unwrap()),
        ];
        for (kind, method) in methods.iter().enumerate() {
            let mut rng = derive_stream(5, kind as u64);
            let mut reference = derive_stream(5, kind as u64);
            let mut scratch = vec![0.0; method.scratch_len()];
            let (mut u, mut r, mut z, mut c) = (vec![0.0; d], vec![0.0; d], [0.0; 3], [0.0; 3]);
            for _ in 0..500 {
                method.sample(&g, &mut rng, &mut u, &mut scratch);
                r.fill(0.0);
                // DCSGD's compressors draw from their own per-iteration stream (MATH.md §10).
                let mut cref = if kind == 1 {
                    Some(models::method::compressor_stream(&mut reference))
                } else {
                    None
                };
                for a in &agents {
                    a.noise.sample(&g, &mut reference, &mut z);
                    for j in 0..d {
                        match kind {
                            0 => r[j] += z[j],
                            1 => z[j] += g[j],
                            _ => r[j] += sign(g[j] + z[j]),
                        }
                    }
                    if let Some(cref) = cref.as_mut() {
                        a.compressor.compress(&z, cref, &mut c);
                        (0..d).for_each(|j| r[j] += c[j]);
                    }
                }
                for j in 0..d {
                    r[j] = if kind == 0 {
                        g[j] + r[j] * (1.0 / n)
                    } else {
                        r[j] * (1.0 / n)
                    };
                    assert_eq!(
                        u[j].to_bits(),
                        r[j].to_bits(),
                        "{}: {u:?} vs {r:?}",
                        method.name()
                    );
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// mean_jvp

/// `(∂μ/∂g) v` against the central difference `(μ(g + hv) − μ(g − hv)) / 2h`, `h = 1e-5`
/// (truncation `O(h²) ≈ 1e-10`, rounding `≈ 1e-16/h = 1e-11`), tolerance `1e-7 (1 + |jvp|)`.
fn check_jvp(method: &dyn GradientMethod, g: &[f64]) {
    let d = method.dim();
    let h = 1e-5;
    let mut scratch = vec![0.0; method.scratch_len()];
    let dirs: Vec<Vec<f64>> = (0..d)
        .map(|k| (0..d).map(|j| if j == k { 1.0 } else { 0.0 }).collect())
        .chain(std::iter::once(vec![0.7, -1.3, 0.4]))
        .collect();
    let (mut jvp, mut mp, mut mm) = (vec![0.0; d], vec![0.0; d], vec![0.0; d]);
    for v in &dirs {
        method.mean_jvp(g, v, &mut jvp, &mut scratch);
        let gp: Vec<f64> = g.iter().zip(v).map(|(a, b)| a + h * b).collect();
        let gm: Vec<f64> = g.iter().zip(v).map(|(a, b)| a - h * b).collect();
        method.mean(&gp, &mut mp, &mut scratch);
        method.mean(&gm, &mut mm, &mut scratch);
        for j in 0..d {
            let fd = (mp[j] - mm[j]) / (2.0 * h);
            assert!(
                (jvp[j] - fd).abs() <= 1e-7 * (1.0 + jvp[j].abs()),
                "{}: v = {v:?}, component {j}: jvp {} vs fd {fd}",
                method.name(),
                jvp[j]
            );
        }
    }
}

#[test]
fn mean_jvp_matches_finite_differences() {
    let g = [0.3, -0.8, 1.5];
    let scales = [[1.0, 0.5, 2.0], [0.5, 1.0, 1.0], [2.0, 0.7, 0.3]];
    let gauss: Vec<Agent> = scales
        .iter()
        .map(|s| uncompressed(gaussian(s, 0.4, 0.6)))
        .collect();
    check_jvp(&Dsgd::new(gauss.clone()).unwrap(), &g);
    let compressed: Vec<Agent> = gauss
        .iter()
        .map(|a| agent(a.noise.clone(), BernoulliSparsifier::new(0.5).unwrap()))
        .collect();
    check_jvp(&Dcsgd::new(compressed).unwrap(), &g);
    // The sign method with σ1 > 0: the scale depends on ‖g‖, so the Jacobian is not diagonal.
    check_jvp(&DsignSgd::new(gauss).unwrap(), &g);
    let t: Vec<Agent> = scales
        .iter()
        .zip([1.0, 1.5, 3.0])
        .map(|(s, nu)| uncompressed(student(nu, s, 0.4, 0.6)))
        .collect();
    check_jvp(&DsignSgd::new(t).unwrap(), &g);
    check_jvp(
        &DsignSgd::new(vec![uncompressed(student(1.5, &scales[1], 0.4, 0.6)); 3]).unwrap(),
        &g,
    );
}

// ---------------------------------------------------------------------------------------------
// step_coupled

fn hetero_dsgd_agents() -> Vec<Agent> {
    vec![
        uncompressed(gaussian(&SCALE, 0.2, 0.3)),
        uncompressed(gaussian(&SCALE, 0.5, 0.0)),
        uncompressed(gaussian(&SCALE, 1.0, 0.5)),
        uncompressed(gaussian(&SCALE, 1.5, 0.2)),
    ]
}

/// One coupled step is `x − η η_k (g + B ζ)` with `B = diag(s_j √(Σ_i (σ0_i² + σ1_i²‖g‖²)) / N)`.
#[test]
fn step_coupled_is_gradient_plus_b_zeta() {
    let loss = DiagonalQuadratic::new(LAMBDA.to_vec()).unwrap();
    let opt = Optimizer::new(
        loss,
        Dsgd::new(hetero_dsgd_agents()).unwrap(),
        Schedule::polynomial(0.5).unwrap(),
    )
    .unwrap();
    assert!(opt.supports_coupling());
    let (eta, k) = (0.1, 3u64); // η_3 = 4^{-1/2} = 1/2
    let zeta = [0.3, -1.2, 0.7];
    let mut x = X0.to_vec();
    let mut ws = opt.workspace();
    assert_eq!(opt.coupling_dim(), 3);
    let mut rng = derive_stream(5, 0);
    assert!(opt.step_coupled(k, eta, &mut x, &zeta, &mut rng, &mut ws));
    let g: Vec<f64> = X0.iter().zip(&LAMBDA).map(|(x, l)| x * l).collect();
    let g2: f64 = g.iter().map(|v| v * v).sum();
    let var_sum: f64 = [(0.2, 0.3), (0.5, 0.0), (1.0, 0.5), (1.5, 0.2)]
        .iter()
        .map(|(s0, s1): &(f64, f64)| s0 * s0 + s1 * s1 * g2)
        .sum();
    let mut bz = vec![0.0; 3];
    // Scratch longer than `scratch_len` (6 here) must be accepted too.
    let long_scratch = opt.method().scratch_len() + 5;
    opt.method()
        .cov_sqrt_mul(&g, &zeta, &mut bz, &mut vec![0.0; long_scratch]);
    for j in 0..3 {
        let b = SCALE[j] * var_sum.sqrt() / 4.0;
        assert!((bz[j] - b * zeta[j]).abs() <= 1e-15);
        let expected = X0[j] - eta * 0.5 * (g[j] + b * zeta[j]);
        assert!(
            (x[j] - expected).abs() <= 1e-15,
            "{j}: {} vs {expected}",
            x[j]
        );
    }
    assert_eq!(ws.gradient(), &g[..]);
}

/// With `ζ ~ N(0, I)` the coupled chain has the law of `step`'s chain: `E x_K` and `E x_K²` of
/// two independent ensembles (200k paths each) agree within 4 SE of the difference,
/// `√(SE_1² + SE_2²)`. Affine, heterogeneous noise, so `B` depends on the state.
#[test]
fn step_coupled_has_the_law_of_step() {
    let opt = Optimizer::new(
        DiagonalQuadratic::new(LAMBDA.to_vec()).unwrap(),
        Dsgd::new(hetero_dsgd_agents()).unwrap(),
        Schedule::polynomial(0.5).unwrap(),
    )
    .unwrap();
    let mut sim = Discrete::from_x0(&opt, 0.1, 25);
    let plain = Ensemble::new(200_000, 31).unwrap().run(&sim);
    sim.coupled = true;
    let coupled = Ensemble::new(200_000, 32).unwrap().run(&sim);
    for o in 0..6 {
        let (a, b) = (plain.summary(1, o), coupled.summary(1, o));
        let se = (a.std_err.powi(2) + b.std_err.powi(2)).sqrt();
        assert!(
            (a.mean - b.mean).abs() <= 4.0 * se,
            "observable {o}: step {} vs coupled {} (SE of the difference {se})",
            a.mean,
            b.mean
        );
    }
}

/// A method that does not implement coupling (the trait's defaults) refuses it and leaves `x`
/// untouched. (The built-in methods all couple: tests/coupling.rs.)
#[test]
fn step_coupled_refused_without_coupling() {
    struct Uncoupled(Dsgd);
    impl GradientMethod for Uncoupled {
        fn name(&self) -> &str {
            "uncoupled"
        }
        fn dim(&self) -> usize {
            self.0.dim()
        }
        fn scratch_len(&self) -> usize {
            self.0.scratch_len()
        }
        fn sample(&self, g: &[f64], rng: &mut PathRng, u: &mut [f64], scratch: &mut [f64]) {
            self.0.sample(g, rng, u, scratch)
        }
        fn mean(&self, g: &[f64], out: &mut [f64], scratch: &mut [f64]) {
            self.0.mean(g, out, scratch)
        }
        fn mean_jvp(&self, g: &[f64], v: &[f64], out: &mut [f64], scratch: &mut [f64]) {
            self.0.mean_jvp(g, v, out, scratch)
        }
        fn cov_sqrt_mul(&self, g: &[f64], xi: &[f64], out: &mut [f64], scratch: &mut [f64]) {
            self.0.cov_sqrt_mul(g, xi, out, scratch)
        }
    }
    let opt = Optimizer::new(
        DiagonalQuadratic::new(LAMBDA.to_vec()).unwrap(),
        Uncoupled(Dsgd::new(vec![uncompressed(gaussian(&SCALE, 1.0, 0.0)); 2]).unwrap()),
        Schedule::constant(),
    )
    .unwrap();
    assert!(!opt.supports_coupling());
    assert_eq!(opt.coupling_dim(), 0);
    let mut x = X0.to_vec();
    let mut ws = opt.workspace();
    let mut rng = derive_stream(5, 0);
    assert!(!opt.step_coupled(0, 0.1, &mut x, &[0.3, -1.2, 0.7], &mut rng, &mut ws));
    assert_eq!(x, X0.to_vec());
}

// ---------------------------------------------------------------------------------------------
// Validation

fn assert_mentions<T: std::fmt::Debug>(r: Result<T, models::ModelError>, parts: &[&str]) {
    let msg = r.expect_err("expected a parameter error").to_string();
    for p in parts {
        assert!(msg.contains(p), "error {msg:?} does not mention {p:?}");
    }
}

#[test]
fn bad_parameters_are_rejected_with_name_and_value() {
    // No agents.
    assert_mentions(Dsgd::new(vec![]), &["agents.n", "= 0", "dsgd"]);
    assert_mentions(Dcsgd::new(vec![]), &["agents.n", "= 0", "dcsgd"]);
    assert_mentions(DsignSgd::new(vec![]), &["agents.n", "= 0", "dsignsgd"]);
    // Agents of different dimensions.
    assert_mentions(
        Dsgd::new(vec![
            uncompressed(gaussian(&[1.0; 3], 1.0, 0.0)),
            uncompressed(gaussian(&[1.0; 2], 1.0, 0.0)),
        ]),
        &["agent 1", "expected 3", "got 2"],
    );
    // Loss of dimension 2, noise of dimension 3.
    assert_mentions(
        Optimizer::new(
            DiagonalQuadratic::new(vec![1.0, 2.0]).unwrap(),
            Dsgd::new(vec![uncompressed(gaussian(&[1.0; 3], 1.0, 0.0))]).unwrap(),
            Schedule::constant(),
        ),
        &["dsgd", "expected 2", "got 3"],
    );
    // Student-t with ν ≤ 2 has infinite covariance: no DSGD/DCSGD SDE (MATH.md §1.3) ...
    for nu in [2.0, 1.5, 1.0] {
        let agents = vec![
            uncompressed(gaussian(&[1.0; 2], 1.0, 0.0)),
            uncompressed(student(nu, &[1.0; 2], 1.0, 0.0)),
        ];
        let value = format!("nu: {nu:?}");
        assert_mentions(Dsgd::new(agents.clone()), &["agent 1", &value, "nu > 2"]);
        assert_mentions(Dcsgd::new(agents.clone()), &["agent 1", &value, "nu > 2"]);
        // ... while DSignSGD needs no moments.
        assert!(DsignSgd::new(agents).is_ok());
    }
    assert!(Dsgd::new(vec![uncompressed(student(2.5, &[1.0; 2], 1.0, 0.0))]).is_ok());
    // Noise constructors.
    for (nu, shown) in [
        (0.0, "`nu` = 0"),
        (-1.0, "`nu` = -1"),
        (f64::NAN, "`nu` = NaN"),
    ] {
        assert_mentions(StudentTNoise::new(2, nu, vec![1.0; 2], 1.0, 0.0), &[shown]);
    }
    assert_mentions(
        GaussianNoise::new(3, vec![1.0; 2], 1.0, 0.0),
        &["scale", "expected 3", "got 2"],
    );
    assert_mentions(
        GaussianNoise::new(2, vec![1.0; 2], -1.0, 0.0),
        &["`sigma0` = -1"],
    );
    assert_mentions(
        GaussianNoise::new(2, vec![1.0, -0.5], 1.0, 0.0),
        &["`scale[1]` = -0.5"],
    );
    // Compressors: p ∈ (0, 1], k ∈ 1..=d.
    for (p, shown) in [(0.0, "`p` = 0"), (1.5, "`p` = 1.5"), (-0.1, "`p` = -0.1")] {
        assert_mentions(BernoulliSparsifier::new(p), &[shown]);
    }
    assert!(BernoulliSparsifier::new(1.0).is_ok());
    assert_mentions(RandK::new(0, 3), &["`k` = 0", "1..=3"]);
    assert_mentions(RandK::new(4, 3), &["`k` = 4", "1..=3"]);
    assert!(RandK::new(3, 3).is_ok());
    // Schedules that would make the step non-positive (or infinite).
    assert_mentions(Schedule::normalized_sgd(0.0, 1.0), &["`c` = 0"]);
    assert_mentions(Schedule::normalized_sgd(-1.0, 1.0), &["`c` = -1"]);
    assert_mentions(Schedule::normalized_sgd(1.0, 0.0), &["`delta` = 0"]);
    assert_mentions(
        Schedule::normalized(-2.0, 0.5, 1.0, 1.0, 0.0, 0.0),
        &["`c` = -2"],
    );
    assert_mentions(
        Schedule::normalized(1.0, 1.0, 1.0, 1.0, 0.0, 0.0),
        &["`epsilon` = 1"],
    );
    assert_mentions(
        Schedule::normalized(1.0, 0.5, 1.0, -1.0, 0.0, 0.0),
        &["`l1` = -1"],
    );
    // L0 = 0 and B = 0: the denominator vanishes at ∇f = 0 (an infinite step).
    assert_mentions(
        Schedule::normalized(1.0, 0.5, 0.0, 1.0, 0.3, 0.0),
        &["`l0` = 0"],
    );
    assert_mentions(Schedule::polynomial(-0.5), &["`power` = -0.5"]);
    // The SDE needs a positive base learning rate.
    let opt = dsgd_quadratic([0.0; 4]);
    for eta in [0.0, -0.1, f64::INFINITY] {
        assert_mentions(
            opt.sde(SdeModel::FirstOrder, eta),
            &["`eta`", &format!("= {eta}")],
        );
    }
}
