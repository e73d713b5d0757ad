//! Gradient methods: what one iteration does with the gradient, as a random direction with a
//! known mean, covariance and mean Jacobian.
//!
//! Every optimizer of the paper has the form `x_{k+1} = x_k − η η_k u_k` where the law of `u_k`
//! depends on `x_k` only through the full gradient `g = ∇f(x_k)` (the agents' data are IID,
//! MATH.md §1). A [`GradientMethod`] describes that law: how to draw `u`, its mean `μ(g)`, the
//! derivative `∂μ/∂g`, and a square root of its covariance `C(g)`. The generic code in
//! [`crate::optimizer`] and [`crate::sde`] turns any method into the discrete process and the
//! three SDE models (A), (B), (C) of MATH.md §5.1, with `m(x) = μ(∇f(x))` and
//! `J_m(x) v = (∂μ/∂g)(∇²f(x) v)`. A new optimizer is one `impl GradientMethod`.
//!
//! Every built-in method also draws its direction from common random numbers shared with the
//! SDE ([`GradientMethod::coupling_dim`], [`GradientMethod::coupling_zeta`],
//! [`GradientMethod::sample_coupled`]; the building blocks and why each law is exact are in
//! [`crate::coupling`]):
//!
//! | method | normals | coupling |
//! |---|---|---|
//! | DSGD, Gaussian agents | `d` | `u = g + C^{1/2} ζ`, exact identity |
//! | DSGD, Student-t agents | `N d` | per agent, `T = F⁻¹(Φ(ν))` |
//! | DCSGD, identical Gaussian agents, Bernoulli | `d` | quantile of the agent average's law (binomial mixture of normals) |
//! | DCSGD, identical Gaussian agents, rand-k (`k < d`, table ≤ 2e5 transitions) | `d` | sequential conditional quantiles of the agent average (pick-count filter), on `L⁻¹Bζ` |
//! | DCSGD, otherwise (identity, Bernoulli, rand-k, QSGD; any finite-variance noise) | `N d` | per agent: quantile of the sparsified law / folded top-k / noise only |
//! | DSignSGD, any noise (Cauchy included) | `d` | quantile of the Poisson-binomial number of `+1` signs |

use crate::compress::{Compressor, CompressorKind, CompressorSpec};
use crate::coupling::{
    cholesky_normals, poisson_binomial_quantile, BernoulliAverage, Fold, MaskedDraw, NormalTails,
    RandKAverage, StandardNoise,
};
use crate::error::ModelError;
use crate::noise::{GradientNoise, NoiseModel};
use rand::{Rng, RngExt, SeedableRng};
use rand_distr::{Distribution, StandardNormal};
use sde_core::PathRng;

/// The law of the update direction `u` given the full gradient `g`.
///
/// All methods write into caller buffers of length `dim()` and may use `scratch` (length
/// [`GradientMethod::scratch_len`]); none allocates.
pub trait GradientMethod: Send + Sync {
    /// Name used in results (e.g. `"dsgd"`).
    fn name(&self) -> &str;
    /// Dimension `d` of `g` and `u`.
    fn dim(&self) -> usize;
    /// Scratch length needed by the methods below.
    fn scratch_len(&self) -> usize {
        0
    }
    /// Draws `u` given `g`.
    fn sample(&self, g: &[f64], rng: &mut PathRng, u: &mut [f64], scratch: &mut [f64]);
    /// `out = μ(g) = E[u | g]`.
    fn mean(&self, g: &[f64], out: &mut [f64], scratch: &mut [f64]);
    /// `out = (∂μ/∂g) v`.
    fn mean_jvp(&self, g: &[f64], v: &[f64], out: &mut [f64], scratch: &mut [f64]);
    /// `out = B ξ` for a matrix `B` with `B Bᵀ = C(g) = Cov[u | g]`, `ξ ∈ R^d`.
    fn cov_sqrt_mul(&self, g: &[f64], xi: &[f64], out: &mut [f64], scratch: &mut [f64]);
    /// Hooks for laws that depend on `x` beyond `g = ∇f(x)` (minibatch noise,
    /// [`crate::minibatch`]): the generic optimizer and SDE models call these `_at` forms, which
    /// default to the `g`-only methods above (so every other method is unchanged, bit for bit).
    #[inline]
    fn sample_at(
        &self,
        _x: &[f64],
        g: &[f64],
        rng: &mut PathRng,
        u: &mut [f64],
        scratch: &mut [f64],
    ) {
        self.sample(g, rng, u, scratch)
    }
    /// `μ` at state `x` (see [`GradientMethod::sample_at`]).
    #[inline]
    fn mean_at(&self, _x: &[f64], g: &[f64], out: &mut [f64], scratch: &mut [f64]) {
        self.mean(g, out, scratch)
    }
    /// `(∂μ/∂g) v` at state `x` (see [`GradientMethod::sample_at`]).
    #[inline]
    fn mean_jvp_at(&self, _x: &[f64], g: &[f64], v: &[f64], out: &mut [f64], scratch: &mut [f64]) {
        self.mean_jvp(g, v, out, scratch)
    }
    /// Columns `m` of the covariance factor `B` (`d × m`, `B Bᵀ = C`); `d` unless a method's
    /// factor is not square (the minibatch factor has one column per training example).
    fn noise_dim(&self) -> usize {
        self.dim()
    }
    /// `out = B ξ` at state `x`, `ξ ∈ R^m` with `m = noise_dim()`.
    #[inline]
    fn cov_sqrt_mul_at(
        &self,
        _x: &[f64],
        g: &[f64],
        xi: &[f64],
        out: &mut [f64],
        scratch: &mut [f64],
    ) {
        self.cov_sqrt_mul(g, xi, out, scratch)
    }
    /// Whether [`GradientMethod::sample_at`] reads `g`; `false` lets the optimizer skip the
    /// full-batch gradient when the schedule does not need it either (a minibatch step costs `B`
    /// examples, the full gradient `n`).
    fn needs_full_gradient(&self) -> bool {
        true
    }
    /// Whether `C(g)` is diagonal for every `g`; then [`GradientMethod::cov_sqrt_diag`] gives
    /// its square root and SDE models declare diagonal noise.
    fn covariance_is_diagonal(&self) -> bool {
        false
    }
    /// The diagonal of `C(g)^{1/2}` when [`GradientMethod::covariance_is_diagonal`].
    fn cov_sqrt_diag(&self, _g: &[f64], _out: &mut [f64], _scratch: &mut [f64]) {}
    /// [`GradientMethod::mean`] and [`GradientMethod::cov_sqrt_diag`] from one pass, for methods
    /// whose two share costly per-coordinate work (DSignSGD's sign means `2Ξ_ν`), so an SDE
    /// model can reuse the diagonal between its drift and its diffusion. Returns `false`, writing
    /// nothing, when the method does not fuse them. When it returns `true` the values are those
    /// of the two calls bit for bit, and `cov_sqrt_mul_at(x, g, ξ)` is `diag_j · ξ_j` (one
    /// rounding per entry).
    fn mean_and_cov_sqrt_diag(
        &self,
        _g: &[f64],
        _mean: &mut [f64],
        _diag: &mut [f64],
        _scratch: &mut [f64],
    ) -> bool {
        false
    }
    /// Whether `μ(g) = g` for every `g` (an unbiased method with exact gradients on average,
    /// `∂μ/∂g = I`): the SDE models then read the gradient as the mean and `∇²f v` as its
    /// Jacobian product instead of copying them.
    fn mean_is_gradient(&self) -> bool {
        false
    }
    /// Whether the covariance is independent of `g` (additive noise in the SDE).
    fn covariance_is_constant(&self) -> bool {
        false
    }
    /// Whether `C(g)` is diagonal with entry `j` a function of `g_j` alone. With a separable
    /// loss the SDE models then have diagonal noise in the Milstein sense (`b_jj` depends on
    /// `x_j` only), which halves the work of the weak-2 scheme's cross terms to nothing.
    fn covariance_is_coordinatewise(&self) -> bool {
        false
    }
    /// Whether [`GradientMethod::cov_sqrt_mul`] is the exact covariance of `u | g` (`false` for a
    /// plug-in approximation, which costs the second-order SDE its order 2: MATH.md §5.1).
    fn covariance_is_exact(&self) -> bool {
        true
    }
    /// Standard normals one coupled iteration consumes; 0 when the method cannot be coupled
    /// (then [`GradientMethod::sample_coupled`] returns `false`). See [`crate::coupling`].
    fn coupling_dim(&self) -> usize {
        0
    }
    /// The `d` standard normals `ζ` (iid `N(0, 1)`, length `dim()`) that drive the SDE's Brownian
    /// increment over the iteration, as a function of `normals` (length
    /// [`GradientMethod::coupling_dim`], iid `N(0, 1)`). Exactly `N(0, I_d)`.
    fn coupling_zeta(&self, _normals: &[f64], _zeta: &mut [f64]) {}
    /// Common random numbers: writes a draw of `u` given `g` whose conditional law is exactly
    /// that of [`GradientMethod::sample`], built from `normals` (length
    /// [`GradientMethod::coupling_dim`], iid `N(0, 1)`; the method takes any further randomness it
    /// needs from `rng`), such that `u − μ(g)` is strongly positively correlated with `C(g)^{1/2} ζ`
    /// (`ζ` from [`GradientMethod::coupling_zeta`], `C^{1/2}` the factor of
    /// [`GradientMethod::cov_sqrt_mul`]). Returns `false`, writing nothing, if not supported.
    fn sample_coupled(
        &self,
        _g: &[f64],
        _normals: &[f64],
        _rng: &mut PathRng,
        _u: &mut [f64],
        _scratch: &mut [f64],
    ) -> bool {
        false
    }
}

/// One agent: its gradient noise and (for DCSGD) its compressor.
#[derive(Clone, Debug, PartialEq)]
pub struct Agent {
    pub noise: NoiseModel,
    pub compressor: CompressorKind,
}

fn check_agents(agents: &[Agent], name: &'static str) -> Result<usize, ModelError> {
    let first = agents.first().ok_or_else(|| ModelError::InvalidParameter {
        name: "agents.n".into(),
        value: "0".into(),
        reason: format!("{name} needs at least one agent"),
    })?;
    let d = first.noise.dim();
    for (i, a) in agents.iter().enumerate() {
        if a.noise.dim() != d {
            return Err(ModelError::DimensionMismatch {
                name: format!("noise of agent {i}"),
                expected: d,
                got: a.noise.dim(),
            });
        }
    }
    Ok(d)
}

// Sampling fast paths (benches/iteration.rs; N = 8, d = 10). Drawing each agent's noise through
// `NoiseModel::sample` cost about 2.2x its 80 normals: the ziggurat was not inlined (one call per
// draw, generator state reloaded and stored each time) and the scale `s_j(g)` (a latency-bound
// ‖g‖² and a sqrt) was recomputed for every agent. Bernoulli sparsification branched on a fair
// coin (≈ 40 mispredictions per iteration at p = 1/2), 3.4x its draws. The paths below draw
// the same random numbers in the same order and give bit-identical directions;
// tests/optimizers.rs checks that against the plain composition of `noise.sample` and
// `compressor.compress`.

/// Fills `z` with iid standard normals. Small and out of line on purpose: through
/// `sample_iter` (generator `&mut PathRng`, a monomorphization with this one caller) the
/// ziggurat inlines into the loop and the generator state stays in registers.
#[inline(never)]
fn standard_normals(rng: &mut PathRng, z: &mut [f64]) {
    for (zj, n) in z.iter_mut().zip(StandardNormal.sample_iter(&mut *rng)) {
        *zj = n;
    }
}

/// Draws one agent's noise as `Z = z ∘ s`: Gaussian noise leaves standard normals in `z` and the
/// scales `s_j(g)` in `s` (computed only if `!reuse_scale`: with identical agents once per
/// iteration), so `z_j s_j = n_j (scale_j r)`, the bits of `GaussianNoise::sample`; other noise
/// leaves `Z` in `z` and ones in `s`.
#[inline]
fn draw_noise(
    noise: &NoiseModel,
    g: &[f64],
    rng: &mut PathRng,
    z: &mut [f64],
    s: &mut [f64],
    reuse_scale: bool,
) {
    match noise {
        NoiseModel::Gaussian(n) => {
            if !reuse_scale {
                n.scale(g, s);
            }
            standard_normals(rng, z);
        }
        _ => {
            noise.sample(g, rng, z);
            s.fill(1.0);
        }
    }
}

/// `u += C(v)` for Bernoulli sparsification with keep probability `p`: the uniforms of
/// `BernoulliSparsifier::compress` (`rng.random::<f64>() < p` per coordinate, in order) and its
/// result bits (`v_j / p` or `+0`), selected by a mask instead of a branch.
#[inline]
fn bernoulli_accumulate(p: f64, v: &[f64], rng: &mut PathRng, u: &mut [f64]) {
    let inv_p = 1.0 / p;
    for (ui, vi) in u.iter_mut().zip(v) {
        let keep = u64::from(rng.random::<f64>() < p).wrapping_neg();
        *ui += f64::from_bits((vi * inv_p).to_bits() & keep);
    }
}

/// The compressors' own random stream for one iteration, seeded by one draw of the path's
/// stream. MATH.md §10 asks for compressor randomness independent of the noise randomness: the
/// noise draws of an iteration are then the same whatever the compressors are (one `u64` is taken
/// either way), and the compressors never consume the noise's numbers.
#[inline]
pub fn compressor_stream(rng: &mut PathRng) -> PathRng {
    PathRng::seed_from_u64(rng.next_u64())
}

/// Whether every agent is identical (then per-agent expectations are computed once).
fn homogeneous(agents: &[Agent]) -> bool {
    agents.windows(2).all(|w| w[0] == w[1])
}

/// The agents of a distributed method, checked once: at least one, equal dimensions, finite
/// covariance where the method's SDE needs it; identical agents are detected so per-agent
/// expectations are computed once.
#[derive(Clone, Debug)]
struct AgentPool {
    agents: Vec<Agent>,
    d: usize,
    homogeneous: bool,
}

impl AgentPool {
    fn new(
        agents: Vec<Agent>,
        method: &'static str,
        finite_variance: bool,
    ) -> Result<Self, ModelError> {
        let d = check_agents(&agents, method)?;
        if finite_variance {
            require_finite_variance(&agents, method)?;
        }
        let homogeneous = homogeneous(&agents);
        Ok(AgentPool {
            agents,
            d,
            homogeneous,
        })
    }

    /// Runs `f(agent, weight)` over the distinct agents: one agent with weight `N` when all are
    /// identical, every agent with weight 1 otherwise.
    #[inline]
    fn for_distinct(&self, mut f: impl FnMut(&Agent, f64)) {
        if self.homogeneous {
            f(&self.agents[0], self.agents.len() as f64);
        } else {
            self.agents.iter().for_each(|a| f(a, 1.0));
        }
    }

    /// `out = Σ_i v_i` over the agents, where `per_agent(a, w, v)` writes agent `a`'s vector
    /// into `v` (`d` values); a distinct agent's vector is computed once and counted with its
    /// multiplicity `w` (see [`AgentPool::for_distinct`]).
    #[inline]
    fn sum_over_agents(
        &self,
        out: &mut [f64],
        v: &mut [f64],
        mut per_agent: impl FnMut(&Agent, f64, &mut [f64]),
    ) {
        out.fill(0.0);
        self.for_distinct(|a, w| {
            per_agent(a, w, v);
            for (o, vi) in out.iter_mut().zip(v.iter()) {
                *o += w * vi;
            }
        });
    }

    /// `out_j = sqrt(Σ_i var_ij) / N`: the square root of the diagonal covariance of the mean
    /// of `N` independent per-agent noises. `scratch` holds at least `d` values.
    fn mean_noise_sqrt(&self, g: &[f64], out: &mut [f64], scratch: &mut [f64]) {
        let n = self.agents.len() as f64;
        // Callers may hand over more scratch than `d`; the noise wants exactly `d` values.
        let var = &mut scratch[..out.len()];
        self.sum_over_agents(out, var, |a, _, var| {
            a.noise.variance(g, var);
        });
        for o in out.iter_mut() {
            *o = o.sqrt() / n;
        }
    }

    /// `1/N`, the weight of one agent in the mean.
    #[inline]
    fn inv_n(&self) -> f64 {
        1.0 / self.agents.len() as f64
    }

    /// `u *= 1/N`: a sum over the agents turned into their mean.
    #[inline]
    fn divide_by_n(&self, u: &mut [f64]) {
        let inv_n = self.inv_n();
        for ui in u.iter_mut() {
            *ui *= inv_n;
        }
    }

    /// `u_j = Σ_i term(g_j, Z_ij)` over one fresh noise draw `Z_i` per agent
    /// ([`AgentPool::for_each_draw`]; `Z_ij = z_j s_j` in the first `2d` values of `scratch`).
    #[inline]
    fn sum_of_draws(
        &self,
        term: impl Fn(f64, f64) -> f64,
        g: &[f64],
        rng: &mut PathRng,
        u: &mut [f64],
        scratch: &mut [f64],
    ) {
        let (z, s) = scratch[..2 * self.d].split_at_mut(self.d);
        u.fill(0.0);
        self.for_each_draw(g, rng, z, s, |_, z, s| {
            for (((ui, zi), si), gi) in u.iter_mut().zip(z.iter()).zip(s).zip(g) {
                *ui += term(*gi, zi * si);
            }
        });
    }

    /// `u = g + u/N`: a sum of the agents' noises turned into the mean of their gradients.
    #[inline]
    fn add_mean_noise(&self, g: &[f64], u: &mut [f64]) {
        let inv_n = self.inv_n();
        for (ui, gi) in u.iter_mut().zip(g) {
            *ui = gi + *ui * inv_n;
        }
    }

    /// Draws every agent's noise in turn into `z ∘ s` ([`draw_noise`]; the scale is computed
    /// once for identical agents) and hands it to `f(agent, z, s)`.
    #[inline]
    fn for_each_draw(
        &self,
        g: &[f64],
        rng: &mut PathRng,
        z: &mut [f64],
        s: &mut [f64],
        mut f: impl FnMut(&Agent, &mut [f64], &[f64]),
    ) {
        for (i, a) in self.agents.iter().enumerate() {
            draw_noise(&a.noise, g, rng, z, s, self.homogeneous && i > 0);
            f(a, z, s);
        }
    }

    /// Per-agent coupling: hands `f(agent, ν_i, s_i, fresh)` every agent's normals `ν_i·`
    /// (agent-major, `d` each) and its scales `s_i(g)` in `s`, computed once for identical
    /// agents (`fresh` says whether they were just computed).
    #[inline]
    fn for_each_coupled(
        &self,
        g: &[f64],
        normals: &[f64],
        s: &mut [f64],
        mut f: impl FnMut(&Agent, &[f64], &[f64], bool),
    ) {
        for (i, (a, nu)) in self
            .agents
            .iter()
            .zip(normals.chunks_exact(self.d))
            .enumerate()
        {
            let fresh = !(self.homogeneous && i > 0);
            if fresh {
                a.noise.scale(g, s);
            }
            f(a, nu, s, fresh);
        }
    }

    /// Whether no agent's noise depends on the gradient (additive noise, the same law at
    /// every `x`).
    fn noise_is_additive(&self) -> bool {
        self.agents.iter().all(|a| !a.noise.depends_on_gradient())
    }
}

/// `sign(v)` with `sign(0) = 0`, a null event for continuous noise (MATH.md §3).
#[inline]
fn sign(v: f64) -> f64 {
    f64::from(i8::from(v > 0.0) - i8::from(v < 0.0))
}

impl AgentPool {
    /// Whether every agent's noise is Gaussian.
    fn all_gaussian(&self) -> bool {
        self.agents
            .iter()
            .all(|a| matches!(a.noise, NoiseModel::Gaussian(_)))
    }

    /// Per-agent coupling: one normal `ν_ij` per (agent, coordinate), laid out agent-major
    /// (`normals[i d + j]`), and `ζ_j = Σ_i ν_ij / √N`, a sum of `N` iid standard normals scaled
    /// to unit variance: exactly `N(0, 1)`, independent across `j`.
    fn per_agent_zeta(&self, normals: &[f64], zeta: &mut [f64]) {
        let d = self.d;
        zeta.fill(0.0);
        for nu in normals.chunks_exact(d).take(self.agents.len()) {
            for (z, v) in zeta.iter_mut().zip(nu) {
                *z += v;
            }
        }
        let scale = 1.0 / (self.agents.len() as f64).sqrt();
        zeta.iter_mut().for_each(|z| *z *= scale);
    }

    /// Normals of one coupled iteration: `d` when one normal per coordinate drives the whole
    /// agent average (`aggregate`), one per (agent, coordinate) otherwise.
    fn coupling_dim(&self, aggregate: bool) -> usize {
        if aggregate {
            self.d
        } else {
            self.agents.len() * self.d
        }
    }

    /// `ζ` of a coupled iteration: the normals themselves (`aggregate`), or
    /// [`AgentPool::per_agent_zeta`].
    fn coupling_zeta(&self, aggregate: bool, normals: &[f64], zeta: &mut [f64]) {
        if aggregate {
            zeta.copy_from_slice(&normals[..self.d]);
        } else {
            self.per_agent_zeta(normals, zeta);
        }
    }
}

fn require_finite_variance(agents: &[Agent], method: &'static str) -> Result<(), ModelError> {
    let d = agents[0].noise.dim();
    let probe = vec![1.0; d];
    let mut var = vec![0.0; d];
    for (i, a) in agents.iter().enumerate() {
        if !a.noise.variance(&probe, &mut var) {
            return Err(ModelError::InvalidParameter {
                name: format!("noise (agent {i})"),
                value: format!("{:?}", a.noise),
                reason: format!(
                    "{method} needs gradient noise with finite covariance (Student-t needs nu > 2): \
                     its SDE does not exist otherwise (MATH.md §1.3)"
                ),
            });
        }
    }
    Ok(())
}

/// Distributed SGD: `u = (1/N) Σ_i (g + Z_i)`. Mean `g`, covariance `Σ̄/N` (MATH.md §5.2).
#[derive(Clone, Debug)]
pub struct Dsgd {
    pool: AgentPool,
}

impl Dsgd {
    /// Every agent's noise must have finite covariance.
    pub fn new(agents: Vec<Agent>) -> Result<Self, ModelError> {
        AgentPool::new(agents, "dsgd", true).map(|pool| Dsgd { pool })
    }

    pub fn agents(&self) -> &[Agent] {
        &self.pool.agents
    }
}

impl GradientMethod for Dsgd {
    fn name(&self) -> &str {
        "dsgd"
    }
    fn dim(&self) -> usize {
        self.pool.d
    }
    fn scratch_len(&self) -> usize {
        2 * self.pool.d
    }
    #[inline]
    fn sample(&self, g: &[f64], rng: &mut PathRng, u: &mut [f64], scratch: &mut [f64]) {
        self.pool.sum_of_draws(|_, z| z, g, rng, u, scratch);
        self.pool.add_mean_noise(g, u);
    }
    fn mean(&self, g: &[f64], out: &mut [f64], _scratch: &mut [f64]) {
        out.copy_from_slice(g);
    }
    fn mean_jvp(&self, _g: &[f64], v: &[f64], out: &mut [f64], _scratch: &mut [f64]) {
        out.copy_from_slice(v);
    }
    fn mean_is_gradient(&self) -> bool {
        true
    }
    fn cov_sqrt_mul(&self, g: &[f64], xi: &[f64], out: &mut [f64], scratch: &mut [f64]) {
        let (s, rest) = scratch.split_at_mut(self.pool.d);
        self.pool.mean_noise_sqrt(g, s, rest);
        for ((o, si), x) in out.iter_mut().zip(s.iter()).zip(xi) {
            *o = si * x;
        }
    }
    fn covariance_is_diagonal(&self) -> bool {
        true
    }
    fn cov_sqrt_diag(&self, g: &[f64], out: &mut [f64], scratch: &mut [f64]) {
        self.pool
            .mean_noise_sqrt(g, out, &mut scratch[..self.pool.d]);
    }
    fn covariance_is_constant(&self) -> bool {
        self.pool.noise_is_additive()
    }
    /// `σ1 > 0` couples the coordinates through `‖g‖`.
    fn covariance_is_coordinatewise(&self) -> bool {
        self.covariance_is_constant()
    }
    /// Gaussian agents: `d` normals, `ζ` = the normals, `u = g + C^{1/2} ζ` exactly (the mean of
    /// independent Gaussians is Gaussian with covariance `C`, so the law is exact and the
    /// residual `u − μ − C^{1/2}ζ` is zero). Otherwise (Student-t agents, `ν > 2`): one normal
    /// per (agent, coordinate), see [`Dsgd::sample_coupled`].
    fn coupling_dim(&self) -> usize {
        self.pool.coupling_dim(self.pool.all_gaussian())
    }
    fn coupling_zeta(&self, normals: &[f64], zeta: &mut [f64]) {
        self.pool
            .coupling_zeta(self.pool.all_gaussian(), normals, zeta)
    }
    /// Non-Gaussian agents: agent `i`'s noise coordinate is `Z_ij = s_ij F⁻¹(Φ(ν_ij))` (the
    /// probability integral transform, exact law `F`, comonotone with `ν_ij`; a Gaussian agent
    /// uses `ν_ij` itself), so `u = g + (1/N) Σ_i Z_i` has the law of [`GradientMethod::sample`],
    /// and `ζ_j = Σ_i ν_ij/√N` ([`GradientMethod::coupling_zeta`]).
    fn sample_coupled(
        &self,
        g: &[f64],
        normals: &[f64],
        _rng: &mut PathRng,
        u: &mut [f64],
        scratch: &mut [f64],
    ) -> bool {
        let d = self.pool.d;
        let (s, rest) = scratch.split_at_mut(d);
        if self.pool.all_gaussian() {
            self.pool.mean_noise_sqrt(g, s, rest);
            for (((ui, gi), si), z) in u.iter_mut().zip(g).zip(s.iter()).zip(normals) {
                *ui = gi + si * z;
            }
            return true;
        }
        u.fill(0.0);
        self.pool.for_each_coupled(g, normals, s, |a, nu, s, _| {
            let law = StandardNoise::of(&a.noise);
            for ((ui, si), v) in u.iter_mut().zip(s).zip(nu) {
                *ui += si * law.from_normal(*v);
            }
        });
        self.pool.add_mean_noise(g, u);
        true
    }
}

/// Distributed compressed SGD: `u = (1/N) Σ_i C_i(g + Z_i)`. Mean `g` (unbiased compressors),
/// covariance `Σ̄_C/N` (MATH.md §5.3), diagonal minus a rank-one term in `g gᵀ` for rand-k.
#[derive(Clone, Debug)]
pub struct Dcsgd {
    pool: AgentPool,
    /// Identical agents with Gaussian noise and Bernoulli sparsification: the law of the agent
    /// average per coordinate, for the aggregate coupling (see [`Dcsgd::sample_coupled`]).
    average: Option<BernoulliAverage>,
    /// Identical agents with Gaussian noise and rand-k, `k < d`: the pick-count filter of the
    /// aggregate coupling (see [`Dcsgd::sample_coupled`]).
    /// Shared: the table is built once and read by every clone.
    rand_k: Option<std::sync::Arc<RandKAverage>>,
    /// Gradient-free noise with identity or Bernoulli compressors: the per-agent parts of the
    /// covariance that do not change with `g` (see [`FixedNoiseCovariance`]).
    fixed: Option<FixedNoiseCovariance>,
}

/// What [`Dcsgd::covariance_parts`] needs besides `g` when every agent's noise has `σ1 = 0` and
/// its compressor is the identity or Bernoulli: the noise variances and `ω` of each distinct
/// agent, computed once per model. The covariance was recomputed from the agents' noise at every
/// diffusion evaluation (three per weak-2 step): half of a DCSGD study.
#[derive(Clone, Debug)]
struct FixedNoiseCovariance {
    /// Coordinate-major, `K` distinct agents per coordinate (`entries[j K + i]`): agent `i`'s
    /// multiplicity, `ω` (0 for the identity, whose part `s` is `s + 0 · (g² + s)` bit for bit
    /// at finite `g` and `s`, so one formula serves both without a branch per entry) and noise
    /// variance `s_ij`; one coordinate's sum reads one contiguous run.
    entries: Vec<[f64; 3]>,
    /// `K`.
    distinct: usize,
    /// `N²`, the divisor of the agents' sum.
    n2: f64,
}

impl FixedNoiseCovariance {
    fn of(pool: &AgentPool) -> Option<Self> {
        let fixed = pool.agents.iter().all(|a| {
            let sigma1 = match &a.noise {
                NoiseModel::Gaussian(n) => n.sigma1(),
                NoiseModel::StudentT(n) => n.sigma1(),
            };
            sigma1 == 0.0
                && matches!(
                    a.compressor,
                    CompressorKind::Identity(_) | CompressorKind::Bernoulli(_)
                )
        });
        if !fixed {
            return None;
        }
        let d = pool.d;
        // With σ1 = 0 the variance is the same at every gradient of finite norm (g = 0 is one).
        let zero = vec![0.0; d];
        let mut part = vec![0.0; d];
        // Per distinct agent: (multiplicity, ω, variances).
        let mut agents = Vec::new();
        pool.for_distinct(|a, w| {
            a.noise.variance(&zero, &mut part);
            let omega = match a.compressor {
                CompressorKind::Bernoulli(b) => b.omega(d),
                _ => 0.0,
            };
            agents.push((w, omega, part.clone()));
        });
        // An infinite variance would make the identity's `0 · (g² + s)` a NaN.
        if agents.iter().flat_map(|a| &a.2).any(|s| !s.is_finite()) {
            return None;
        }
        let entries = (0..d)
            .flat_map(|j| agents.iter().map(move |(w, om, s)| [*w, *om, s[j]]))
            .collect();
        let n = pool.agents.len() as f64;
        Some(FixedNoiseCovariance {
            entries,
            distinct: agents.len(),
            n2: n * n,
        })
    }

    /// `out_j = f(C_jj, g_j, xi_j)` with `C_jj = (Σ_i w_i (s_ij + ω_i (g_j² + s_ij))) / N²`
    /// over the distinct agents: the operations of the agents' `variance` and
    /// `covariance_parts` summed in the order of [`AgentPool::sum_over_agents`], then divided,
    /// so the same bits, with the constant variances read from the table, and `f` applied in the
    /// same pass. `false` (with `out` overwritten) when `‖g‖²` is not finite: there `σ1² ‖g‖²`
    /// is not 0 (0 · ∞) and the agents' own calls decide.
    #[inline]
    fn map_diag(
        &self,
        g: &[f64],
        xi: &[f64],
        out: &mut [f64],
        f: impl Fn(f64, f64, f64) -> f64,
    ) -> bool {
        let mut norm2 = 0.0;
        for (((o, gj), x), run) in out
            .iter_mut()
            .zip(g)
            .zip(xi)
            .zip(self.entries.chunks_exact(self.distinct))
        {
            let g2 = gj * gj;
            norm2 += g2;
            let mut acc = 0.0;
            for [w, om, s] in run {
                acc += w * (s + om * (g2 + s));
            }
            *o = f(acc / self.n2, *gj, *x);
        }
        norm2.is_finite()
    }
}

impl Dcsgd {
    /// Every agent's noise must have finite covariance.
    pub fn new(agents: Vec<Agent>) -> Result<Self, ModelError> {
        let pool = AgentPool::new(agents, "dcsgd", true)?;
        let first = &pool.agents[0];
        let average = match (&first.noise, first.compressor) {
            (NoiseModel::Gaussian(_), CompressorKind::Bernoulli(b))
                if pool.homogeneous && b.p() < 1.0 =>
            {
                Some(BernoulliAverage::new(pool.agents.len(), b.p()))
            }
            _ => None,
        };
        let rand_k = match (&first.noise, first.compressor) {
            (NoiseModel::Gaussian(_), CompressorKind::RandK(r)) if pool.homogeneous => {
                RandKAverage::new(pool.agents.len(), pool.d, r.k()).map(std::sync::Arc::new)
            }
            _ => None,
        };
        let fixed = FixedNoiseCovariance::of(&pool);
        Ok(Dcsgd {
            pool,
            average,
            rand_k,
            fixed,
        })
    }

    /// Uses the per-agent coupling even where the aggregate one applies (to compare the two:
    /// examples/coupling_variance.rs). The law of the direction is the same.
    pub fn with_per_agent_coupling(mut self) -> Self {
        self.average = None;
        self.rand_k = None;
        self
    }

    pub fn agents(&self) -> &[Agent] {
        &self.pool.agents
    }

    /// Whether one normal per coordinate drives the whole agent average.
    fn aggregate(&self) -> bool {
        self.average.is_some() || self.rand_k.is_some()
    }

    /// `diag` and `coef` of `C(g) = diag − coef · g gᵀ` (the mean over agents divided by N).
    /// `scratch` holds `2d` values.
    fn covariance_parts(&self, g: &[f64], diag: &mut [f64], scratch: &mut [f64]) -> f64 {
        if (self.fixed.as_ref()).is_some_and(|f| f.map_diag(g, g, diag, |c, _, _| c)) {
            // Every part is diagonal: the general path's `coef` is +0 / n².
            return 0.0;
        }
        self.covariance_parts_of_agents(g, diag, scratch)
    }

    /// [`Dcsgd::covariance_parts`] from every agent's own calls. Kept out of line so the
    /// table's path above stays a small function.
    #[inline(never)]
    fn covariance_parts_of_agents(&self, g: &[f64], diag: &mut [f64], scratch: &mut [f64]) -> f64 {
        let d = self.pool.d;
        let n = self.pool.agents.len() as f64;
        let n2 = n * n;
        let (var, part) = scratch.split_at_mut(d);
        let mut coef = 0.0;
        self.pool
            .sum_over_agents(diag, &mut part[..d], |a, weight, part| {
                a.noise.variance(g, var);
                coef += weight * a.compressor.covariance_parts(g, var, part);
            });
        for o in diag.iter_mut() {
            *o /= n2;
        }
        coef / n2
    }
}

impl GradientMethod for Dcsgd {
    fn name(&self) -> &str {
        "dcsgd"
    }
    fn dim(&self) -> usize {
        self.pool.d
    }
    fn scratch_len(&self) -> usize {
        let rand_k = self
            .rand_k
            .as_ref()
            .map_or(0, |r| 6 * self.pool.d + r.scratch_len());
        (6 * self.pool.d)
            .max(self.pool.d + self.pool.agents.len() + 1)
            .max(rand_k)
    }
    #[inline]
    fn sample(&self, g: &[f64], rng: &mut PathRng, u: &mut [f64], scratch: &mut [f64]) {
        let (z, rest) = scratch[..3 * self.pool.d].split_at_mut(self.pool.d);
        let (c, s) = rest.split_at_mut(self.pool.d);
        let mut crng = compressor_stream(rng);
        let rng_c = &mut crng;
        u.fill(0.0);
        self.pool.for_each_draw(g, rng, z, s, |a, z, s| {
            for ((zi, si), gi) in z.iter_mut().zip(s).zip(g) {
                *zi = *zi * si + gi;
            }
            if let CompressorKind::Bernoulli(b) = a.compressor {
                bernoulli_accumulate(b.p(), z, rng_c, u);
            } else {
                a.compressor.compress(z, rng_c, c);
                for (ui, ci) in u.iter_mut().zip(c.iter()) {
                    *ui += ci;
                }
            }
        });
        self.pool.divide_by_n(u);
    }
    fn mean(&self, g: &[f64], out: &mut [f64], _scratch: &mut [f64]) {
        out.copy_from_slice(g);
    }
    fn mean_jvp(&self, _g: &[f64], v: &[f64], out: &mut [f64], _scratch: &mut [f64]) {
        out.copy_from_slice(v);
    }
    fn mean_is_gradient(&self) -> bool {
        true
    }
    fn cov_sqrt_mul(&self, g: &[f64], xi: &[f64], out: &mut [f64], scratch: &mut [f64]) {
        // The table's diagonal (coef = 0) in the same pass as the product: the operations of
        // `diag_minus_rank_one_sqrt_mul` with `α/q = p = 0`, `−0·g_j` included (it turns a −0
        // into +0 where g_j < 0).
        let sqrt_mul = |c: f64, gj: f64, x: f64| {
            if c > 0.0 {
                c.sqrt() * x - 0.0 * gj
            } else {
                0.0
            }
        };
        if (self.fixed.as_ref()).is_some_and(|f| f.map_diag(g, xi, out, sqrt_mul)) {
            return;
        }
        let d = self.pool.d;
        let (diag, rest) = scratch.split_at_mut(d);
        let coef = self.covariance_parts(g, diag, &mut rest[..2 * d]);
        crate::compress::diag_minus_rank_one_sqrt_mul(diag, coef, g, xi, out);
    }
    fn covariance_is_diagonal(&self) -> bool {
        self.pool
            .agents
            .iter()
            .all(|a| a.compressor.covariance_is_diagonal())
    }
    fn covariance_is_exact(&self) -> bool {
        crate::order::covariance_is_exact_for(&self.pool.agents)
    }
    /// Entry `j` is `s_j + ω(g_j² + s_j)` for the identity, Bernoulli and rand-`d` compressors
    /// with `g`-independent noise; QSGD's variance depends on `‖g + Z‖`.
    fn covariance_is_coordinatewise(&self) -> bool {
        self.pool.agents.iter().all(|a| {
            !a.noise.depends_on_gradient()
                && match a.compressor {
                    CompressorKind::Identity(_) | CompressorKind::Bernoulli(_) => true,
                    CompressorKind::RandK(r) => r.covariance_is_diagonal(),
                    // QSGD's variance depends on |g + Z|; a new compressor is assumed not to be
                    // coordinatewise until it says so here.
                    _ => false,
                }
        })
    }
    fn cov_sqrt_diag(&self, g: &[f64], out: &mut [f64], scratch: &mut [f64]) {
        let sqrt = |c: f64, _, _| c.max(0.0).sqrt();
        if (self.fixed.as_ref()).is_some_and(|f| f.map_diag(g, g, out, sqrt)) {
            return;
        }
        let d = self.pool.d;
        self.covariance_parts(g, out, &mut scratch[..2 * d]);
        for o in out.iter_mut() {
            *o = o.max(0.0).sqrt();
        }
    }
    /// Aggregate coupling (identical Gaussian agents, Bernoulli sparsification or rand-k): `d` normals,
    /// `ζ` = the normals. Otherwise one normal `ν_ij` per (agent, coordinate), agent-major, and
    /// `ζ_j = Σ_i ν_ij / √N`.
    fn coupling_dim(&self) -> usize {
        self.pool.coupling_dim(self.aggregate())
    }
    fn coupling_zeta(&self, normals: &[f64], zeta: &mut [f64]) {
        self.pool.coupling_zeta(self.aggregate(), normals, zeta)
    }
    /// **Aggregate coupling** (identical agents, Gaussian noise, Bernoulli-`p` with `p < 1`):
    /// coordinates of `u` are independent given `g`, and each is the quantile of its exact law
    /// (a binomial mixture of normals, [`BernoulliAverage`]) at `Φ(ζ_j)`: the comonotone draw,
    /// maximal correlation with `ζ_j`. Where `s_j = 0` the law is `K g_j/(pN)`,
    /// `K ~ Bin(N, p)`, drawn by [`poisson_binomial_quantile`] (for `g_j < 0` at `Φ(−ζ_j)`, so
    /// that `u_j` still increases with `ζ_j`).
    ///
    /// **Aggregate rand-k coupling** (identical agents, Gaussian noise, rand-`k` with `k < d`):
    /// `u_j` is the quantile of its exact law given `u_1, …, u_{j−1}` at `Φ(ζ'_j)`
    /// ([`RandKAverage`]: the agents' pick counts are a hidden Markov chain over the
    /// coordinates), with `ζ' = L⁻¹Bζ` ([`cholesky_normals`]), `B` the SDE's factor of
    /// [`GradientMethod::cov_sqrt_mul`] and `L` the Cholesky factor of `C`: `L⁻¹B` is
    /// orthogonal, so `ζ'` is `N(0, I)`, and in the normal limit the sequential quantiles are
    /// `Lζ' = Bζ`, the SDE's own increment. Exact law; no `rng`.
    ///
    /// **Per-agent quantile coupling** (everything else): agent `i`'s compressed gradient is
    /// drawn from `ν_i·` and
    /// the agents are averaged, so the law is that of [`GradientMethod::sample`] as soon as each
    /// agent's draw has its own exact law (agents are independent in both).
    ///
    /// * identity: `C_i = g + s_i∘T_i`, `T_ij = F⁻¹(Φ(ν_ij))` (`ν_ij` itself for Gaussian noise).
    /// * Bernoulli-`p`: `C_ij = b_ij (g_j + s_ij T_ij)/p` with `(b_ij, T_ij)` from
    ///   [`MaskedDraw`]: the quantile of the law of `C_ij` (an atom `1 − p` at 0 plus `p` times
    ///   the noisy gradient's law) at `Φ(ν_ij)`, exact and comonotone with `ν_ij`. Coordinates
    ///   are independent given `g`, as in `sample`.
    /// * rand-`k`: each coordinate's `Φ(ν_ij)` is folded ([`Fold`]) into a side and a distance
    ///   `δ_j ~ U(0, 1)`, independent, iid over `j`; the kept set `S` is the `k` smallest `δ`
    ///   (the most extreme draws: a uniform `k`-subset, since the `δ_j` are iid continuous), and
    ///   with `c` the `(k+1)`-th smallest `δ`, a kept coordinate's noise is rebuilt on its side
    ///   at position `δ_j / c`. Given `S` and `c`, the kept `δ_j` are iid `U(0, c)` (order
    ///   statistics), so the positions are iid uniform and independent of `S` and of the
    ///   sides: the kept noises are iid `F`, independent of `S`, exactly as in rand-`k` of
    ///   `g + s∘T`. When exactly `k` coordinates have `δ < k/d` this is nearly the Bernoulli
    ///   coupling with `p = k/d`; no `rng` is used.
    /// * QSGD: the noisy gradient `g + s∘T` as for the identity, then the stochastic rounding
    ///   of [`Compressor::compress`] with uniforms from `rng` (its level is a function of all
    ///   coordinates through `‖v‖`, so the noise carries the coupling).
    fn sample_coupled(
        &self,
        g: &[f64],
        normals: &[f64],
        rng: &mut PathRng,
        u: &mut [f64],
        scratch: &mut [f64],
    ) -> bool {
        let d = self.pool.d;
        if let Some(rk) = &self.rand_k {
            // ζ' = L⁻¹Bζ (orthogonal in ζ, so N(0, I)): the normals for which the sequential
            // conditional quantiles tend to the SDE's own increment Bζ.
            let (s, rest) = scratch.split_at_mut(d);
            let (diag, rest) = rest.split_at_mut(d);
            let (y, rest) = rest.split_at_mut(d);
            let (rotated, rest) = rest.split_at_mut(d);
            let (cov, rest) = rest.split_at_mut(2 * d);
            let zeta = &normals[..d];
            let coef = self.covariance_parts(g, diag, cov);
            crate::compress::diag_minus_rank_one_sqrt_mul(diag, coef, g, zeta, y);
            cholesky_normals(diag, coef, g, y, zeta, rotated);
            self.pool.agents[0].noise.scale(g, s);
            rk.sample(g, s, rotated, u, rest);
            return true;
        }
        if let Some(avg) = &self.average {
            let n = self.pool.agents.len();
            let (s, pmf) = scratch[..d + n + 1].split_at_mut(d);
            self.pool.agents[0].noise.scale(g, s);
            let p = avg.keep_probability();
            for (((uj, gj), sj), z) in u.iter_mut().zip(g).zip(s.iter()).zip(normals) {
                *uj = if *sj > 0.0 {
                    avg.quantile(*gj, *sj, *z)
                } else {
                    let z = if *gj < 0.0 { -z } else { *z };
                    let trials = std::iter::repeat_n((p, 1.0 - p), n);
                    let k = poisson_binomial_quantile(trials, NormalTails::of(z), pmf);
                    k as f64 * gj / (p * n as f64)
                };
            }
            return true;
        }
        let (s, rest) = scratch[..6 * d].split_at_mut(d);
        let (t, rest) = rest.split_at_mut(d);
        let (mask, rest) = rest.split_at_mut(d);
        let (c, rest) = rest.split_at_mut(d);
        // Side masses (a_j, 1 − a_j) of the folds: functions of g_j/s_j only, so computed once
        // per coordinate for identical agents (they were most of the per-agent cost).
        let (mass_low, mass_high) = rest.split_at_mut(d);
        u.fill(0.0);
        self.pool
            .for_each_coupled(g, normals, s, |a, nu, s, fresh| {
                let law = StandardNoise::of(&a.noise);
                if fresh
                    && matches!(
                        a.compressor,
                        CompressorKind::Bernoulli(_) | CompressorKind::RandK(_)
                    )
                {
                    for (((lo, hi), gj), sj) in mass_low
                        .iter_mut()
                        .zip(mass_high.iter_mut())
                        .zip(g)
                        .zip(s.iter())
                    {
                        (*lo, *hi) = Fold::masses(*gj, *sj, law);
                    }
                }
                match a.compressor {
                    CompressorKind::Identity(_) => {
                        for (((ui, gj), sj), v) in u.iter_mut().zip(g).zip(s.iter()).zip(nu) {
                            *ui += gj + sj * law.from_normal(*v);
                        }
                    }
                    CompressorKind::Bernoulli(b) => {
                        let p = b.p();
                        let inv_p = 1.0 / p;
                        for ((((ui, gj), sj), v), masses) in u
                            .iter_mut()
                            .zip(g)
                            .zip(s.iter())
                            .zip(nu)
                            .zip(mass_low.iter().zip(mass_high.iter()))
                        {
                            let m = MaskedDraw::draw_at(p, (*masses.0, *masses.1), *sj, law, *v);
                            if m.kept {
                                *ui += (gj + sj * m.t) * inv_p;
                            }
                        }
                    }
                    CompressorKind::RandK(rk) => {
                        let k = rk.k();
                        // δ_j (signed by the side) of every coordinate, then the threshold
                        // c = the (k+1)-th smallest δ: the kept set is {δ_j < c}.
                        for (((tj, mj), (lo, hi)), v) in t
                            .iter_mut()
                            .zip(mask.iter_mut())
                            .zip(mass_low.iter().zip(mass_high.iter()))
                            .zip(nu)
                        {
                            let f = Fold::at(*lo, *hi, *v);
                            *tj = f.delta;
                            // The side's mass, signed by the side (negative: low), so a kept
                            // coordinate's noise needs no second CDF evaluation. A low side has
                            // a > 0 (U < a); a high side of mass 0 stores +0, still "high".
                            *mj = if f.low { -f.a } else { f.a_c };
                        }
                        let (threshold, width) = if k < d {
                            c.copy_from_slice(t);
                            let th = *c.select_nth_unstable_by(k, f64::total_cmp).1;
                            (th, th)
                        } else {
                            (f64::INFINITY, 1.0)
                        };
                        let factor = d as f64 / k as f64;
                        for ((((ui, tj), mj), gj), sj) in u
                            .iter_mut()
                            .zip(t.iter())
                            .zip(mask.iter())
                            .zip(g)
                            .zip(s.iter())
                        {
                            if *tj < threshold {
                                let noise = if *sj > 0.0 {
                                    let f = Fold {
                                        low: *mj < 0.0,
                                        delta: *tj,
                                        a: -*mj,
                                        a_c: *mj,
                                    };
                                    f.noise((*tj / width).min(1.0), law)
                                } else {
                                    0.0
                                };
                                *ui += factor * (gj + sj * noise);
                            }
                        }
                    }
                    // QSGD and any other compressor: the agent's coupled gradient, then the
                    // compressor's own draw.
                    other => {
                        for (((tj, gj), sj), v) in t.iter_mut().zip(g).zip(s.iter()).zip(nu) {
                            *tj = gj + sj * law.from_normal(*v);
                        }
                        other.compress(t, rng, c);
                        for (ui, ci) in u.iter_mut().zip(c.iter()) {
                            *ui += ci;
                        }
                    }
                }
            });
        self.pool.divide_by_n(u);
        true
    }
}

#[cfg(test)]
mod dcsgd_tests {
    use super::*;
    use crate::compress::{BernoulliSparsifier, Identity, RandK};
    use crate::noise::{GaussianNoise, StudentTNoise};

    fn agents(
        d: usize,
        n: usize,
        same: bool,
        student: bool,
        compressor: impl Fn(usize) -> CompressorKind,
    ) -> Vec<Agent> {
        (0..n)
            .map(|i| {
                let s = if same { 0.7 } else { 0.5 + 0.25 * i as f64 };
                let noise = if student {
                    StudentTNoise::isotropic(d, 3.0 + i as f64, s, 0.0)
                        .unwrap()
                        .into()
                } else {
                    GaussianNoise::isotropic(d, s, 0.0).unwrap().into()
                };
                Agent {
                    noise,
                    compressor: compressor(i),
                }
            })
            .collect()
    }

    /// The table of constant variances against the agents' own calls, bit for bit, at finite
    /// gradients and at gradients where `0 · ‖g‖²` is not 0 (overflow, ∞, NaN).
    #[test]
    fn fixed_noise_covariance_has_the_bits_of_the_agents_calls() {
        let d = 4;
        let bern = |p: f64| CompressorKind::Bernoulli(BernoulliSparsifier::new(p).unwrap());
        let mixed = |i: usize| {
            if i.is_multiple_of(2) {
                Identity.into()
            } else {
                bern(0.3 + 0.1 * i as f64)
            }
        };
        let grads = [
            vec![0.0; d],
            vec![0.4, -1.3, 2.7e-3, 9.0],
            vec![1e200, 1.0, -2.0, 3.0],
            vec![f64::INFINITY, 1.0, 0.5, 0.0],
            vec![0.1, f64::NAN, 0.5, 0.0],
        ];
        // −0 against a negative g_j: the general product's `− 0 · g_j` makes it +0.
        let xi = [0.3, -0.0, -1.1, 2.0];
        let mut cases = Vec::new();
        for student in [false, true] {
            for same in [false, true] {
                cases.push(agents(d, 4, same, student, |_| bern(0.5)));
                cases.push(agents(d, 3, same, student, |_| Identity.into()));
                cases.push(agents(d, 5, same, student, mixed));
            }
        }
        for agents in cases {
            let fast = Dcsgd::new(agents).unwrap();
            assert!(fast.fixed.is_some());
            let general = Dcsgd {
                fixed: None,
                ..fast.clone()
            };
            let mut scratch = vec![0.0; fast.scratch_len()];
            for g in &grads {
                let mut want = [vec![0.0; d], vec![0.0; d]];
                let mut got = [vec![0.0; d], vec![0.0; d]];
                for (m, out) in [(&general, &mut want), (&fast, &mut got)] {
                    m.cov_sqrt_diag(g, &mut out[0], &mut scratch);
                    m.cov_sqrt_mul(g, &xi, &mut out[1], &mut scratch);
                }
                for (w, o) in want.iter().flatten().zip(got.iter().flatten()) {
                    assert_eq!(w.to_bits(), o.to_bits(), "g = {g:?}: {want:?} vs {got:?}");
                }
            }
        }
        // Gradient-dependent noise and rand-k keep the general path.
        let affine = vec![Agent {
            noise: GaussianNoise::isotropic(d, 0.5, 0.2).unwrap().into(),
            compressor: bern(0.5),
        }];
        assert!(Dcsgd::new(affine).unwrap().fixed.is_none());
        let rand_k = agents(d, 2, false, false, |_| RandK::new(2, d).unwrap().into());
        assert!(Dcsgd::new(rand_k).unwrap().fixed.is_none());
        // An infinite variance, where the identity's part is not `s + 0 · (g² + s)`.
        let huge = vec![Agent {
            noise: GaussianNoise::isotropic(d, 1e200, 0.0).unwrap().into(),
            compressor: Identity.into(),
        }];
        assert!(Dcsgd::new(huge).unwrap().fixed.is_none());
    }
}

#[cfg(test)]
mod dsignsgd_tests {
    use super::*;
    use crate::compress::Identity;
    use crate::noise::{GaussianNoise, StudentTNoise};

    fn student(d: usize, nu: f64, scale: Vec<f64>, sigma0: f64, sigma1: f64) -> Agent {
        Agent {
            noise: StudentTNoise::new(d, nu, scale, sigma0, sigma1)
                .unwrap()
                .into(),
            compressor: Identity.into(),
        }
    }

    /// The table of fixed scales against the agents' own `sign_mean` calls, bit for bit: the
    /// diagonal factor, the product and the fused mean, for ν = 1..=4, heterogeneous and
    /// identical agents, a zero scale and σ0 = 0 (the sign branches), and gradients where
    /// `0 · ‖g‖²` is not 0 (overflow, ∞, NaN).
    #[test]
    fn fixed_sign_scales_have_the_bits_of_the_agents_calls() {
        let d = 4;
        let grads = [
            vec![0.0; d],
            vec![0.4, -1.3, 2.7e-3, 9.0],
            vec![-0.0, 1e-300, -7e5, 3.0],
            vec![1e200, 1.0, -2.0, 3.0],
            vec![f64::INFINITY, 1.0, 0.5, 0.0],
            vec![0.1, f64::NAN, -0.5, 0.0],
        ];
        let xi = [0.3, -0.0, -1.1, 2.0];
        let scale = vec![1.0, 0.0, 2.5, 0.3];
        let mut cases = Vec::new();
        for nu in [1.0, 2.0, 3.0, 4.0] {
            let hetero = (0..4)
                .map(|i| student(d, nu, scale.clone(), 0.5 + 0.25 * f64::from(i), 0.0))
                .collect::<Vec<_>>();
            cases.push(hetero);
            cases.push(vec![student(d, nu, scale.clone(), 0.7, 0.0); 3]);
            cases.push(vec![
                student(d, nu, scale.clone(), 0.0, 0.0),
                student(d, nu, vec![1.0; d], 1.5, 0.0),
            ]);
        }
        for agents in cases {
            let fast = DsignSgd::new(agents).unwrap();
            assert!(fast.fixed.is_some());
            let general = DsignSgd {
                fixed: None,
                ..fast.clone()
            };
            let mut scratch = vec![0.0; fast.scratch_len()];
            for g in &grads {
                let mut want = [vec![0.0; d], vec![0.0; d], vec![0.0; d], vec![0.0; d]];
                let mut got = want.clone();
                for (m, out) in [(&general, &mut want), (&fast, &mut got)] {
                    let [diag, prod, mean, diag2] = out;
                    m.cov_sqrt_diag(g, diag, &mut scratch);
                    m.cov_sqrt_mul(g, &xi, prod, &mut scratch);
                    assert!(m.mean_and_cov_sqrt_diag(g, mean, diag2, &mut scratch));
                }
                // The general fused mean against the agents' `mean` too.
                let mut mean = vec![0.0; d];
                general.mean(g, &mut mean, &mut scratch);
                for (w, o) in want.iter().flatten().zip(got.iter().flatten()) {
                    assert_eq!(w.to_bits(), o.to_bits(), "g = {g:?}: {want:?} vs {got:?}");
                }
                for (w, o) in mean.iter().zip(&got[2]) {
                    assert_eq!(w.to_bits(), o.to_bits(), "g = {g:?}: {mean:?} vs {got:?}");
                }
            }
        }
        // Gradient-dependent scales, mixed or other ν and Gaussian agents keep the agents' calls.
        let none = [
            vec![student(d, 3.0, vec![1.0; d], 0.5, 0.2)],
            vec![
                student(d, 3.0, vec![1.0; d], 0.5, 0.0),
                student(d, 4.0, vec![1.0; d], 0.5, 0.0),
            ],
            vec![student(d, 5.0, vec![1.0; d], 0.5, 0.0)],
            vec![student(d, 2.5, vec![1.0; d], 0.5, 0.0)],
            vec![Agent {
                noise: GaussianNoise::isotropic(d, 0.5, 0.0).unwrap().into(),
                compressor: Identity.into(),
            }],
        ];
        for agents in none {
            assert!(DsignSgd::new(agents).unwrap().fixed.is_none());
        }
    }
}

/// Distributed SignSGD: `u = (1/N) Σ_i sign(g + Z_i)`. Mean `(1/N) Σ_i E sign(g + Z_i)`,
/// covariance `(1/N²) Σ_i diag(1 − m_i²)` with independent noise coordinates (MATH.md §5.4).
#[derive(Clone, Debug)]
pub struct DsignSgd {
    pool: AgentPool,
    /// The agents' scales, tabulated when they are fixed ([`FixedSignScales::of`]).
    fixed: Option<FixedSignScales>,
}

/// The sign means of additive Student-t noise (`σ1 = 0` for every agent, one integer
/// `ν ∈ 1..=4`), coordinate-major, for the diagonal factor and the mean without a call per agent.
///
/// An agent's `sign_mean` takes `‖g‖²` and a square root, then per coordinate `s_j r` and the
/// closed form of its `ν` (through the noise enum's dispatch); with `σ1 = 0` the scale
/// `s_j r = scale_j · sqrt(σ0² + 0·‖g‖²)` is the same at every gradient of finite norm, so it is
/// computed once here (at `g = 0`, with the agent's own `scale`), and the sums over the agents
/// are taken per coordinate with the operations and in the order of [`AgentPool::for_distinct`]
/// (`Σ_i w_i m_ij`, `Σ_i w_i (1 − m_ij²)`, from `0.0`): the same bits. At a gradient whose
/// `‖g‖²` is not finite (`0 · ∞` is NaN there) the agents' own calls decide. A weak-order-2 step
/// takes four sets of sign means (the drift at `X` and `Ῡ`, the diffusion at `R̄±`) where
/// Euler–Maruyama takes one: the calls per agent were a third of a set at `d = 3`.
#[derive(Clone, Debug)]
struct FixedSignScales {
    /// For coordinate `j`, `[w_i, s_ij]` per distinct agent `i` (multiplicity, scale).
    entries: Vec<[f64; 2]>,
    /// Distinct agents.
    distinct: usize,
    /// The agents' `ν`.
    nu: u32,
}

impl FixedSignScales {
    fn of(pool: &AgentPool) -> Option<Self> {
        let mut nu = None;
        for a in &pool.agents {
            let NoiseModel::StudentT(t) = &a.noise else {
                return None;
            };
            let k = t.nu();
            // ν = 1..=4: the closed forms `StudentTNoise::sign_mean` dispatches to.
            if !(t.sigma1() == 0.0 && k == k.floor() && (1.0..=4.0).contains(&k)) {
                return None;
            }
            if *nu.get_or_insert(k as u32) != k as u32 {
                return None;
            }
        }
        let nu = nu?;
        let d = pool.d;
        let zero = vec![0.0; d];
        let mut scale = vec![0.0; d];
        let mut agents = Vec::new();
        pool.for_distinct(|a, w| {
            a.noise.scale(&zero, &mut scale);
            agents.push((w, scale.clone()));
        });
        let entries = (0..d)
            .flat_map(|j| agents.iter().map(move |(w, s)| [*w, s[j]]))
            .collect();
        Some(FixedSignScales {
            entries,
            distinct: agents.len(),
            nu,
        })
    }

    /// `f(j, Σ_i w_i m_ij, Σ_i w_i (1 − m_ij²))` for every coordinate `j` of `g`; `false` when
    /// `‖g‖²` is not finite (the caller then takes the agents' own calls).
    #[inline]
    fn sums(&self, g: &[f64], f: impl FnMut(usize, f64, f64)) -> bool {
        match self.nu {
            1 => self.sums_nu::<1>(g, f),
            2 => self.sums_nu::<2>(g, f),
            3 => self.sums_nu::<3>(g, f),
            _ => self.sums_nu::<4>(g, f),
        }
    }

    #[inline(always)]
    fn sums_nu<const NU: u32>(&self, g: &[f64], mut f: impl FnMut(usize, f64, f64)) -> bool {
        debug_assert_eq!(g.len() * self.distinct, self.entries.len());
        let mut norm2 = 0.0;
        for (j, (&gj, run)) in g
            .iter()
            .zip(self.entries.chunks_exact(self.distinct))
            .enumerate()
        {
            norm2 += gj * gj;
            let (mut mean, mut var) = (0.0, 0.0);
            for &[w, sj] in run {
                // `StudentTNoise::sign_mean` for one coordinate.
                let m = if sj > 0.0 {
                    2.0 * crate::special::xi_integer_nu(NU, gj / sj)
                } else if gj > 0.0 {
                    1.0
                } else if gj < 0.0 {
                    -1.0
                } else {
                    0.0
                };
                mean += w * m;
                var += w * (1.0 - m * m);
            }
            f(j, mean, var);
        }
        norm2.is_finite()
    }
}

impl DsignSgd {
    pub fn new(agents: Vec<Agent>) -> Result<Self, ModelError> {
        AgentPool::new(agents, "dsignsgd", false).map(|pool| DsignSgd {
            fixed: FixedSignScales::of(&pool),
            pool,
        })
    }

    pub fn agents(&self) -> &[Agent] {
        &self.pool.agents
    }

    /// [`GradientMethod::cov_sqrt_diag`] from every agent's own `sign_mean`.
    fn cov_sqrt_diag_of_agents(&self, g: &[f64], out: &mut [f64], scratch: &mut [f64]) {
        let m = &mut scratch[..self.pool.d];
        self.pool.sum_over_agents(out, m, |a, _, m| {
            a.noise.sign_mean(g, m);
            m.iter_mut().for_each(|mi| *mi = 1.0 - *mi * *mi);
        });
        let n = self.pool.agents.len() as f64;
        // Rounding can push 1 − m² a hair below zero when |m| ≈ 1 (MATH.md §10).
        out.iter_mut().for_each(|o| *o = o.max(0.0).sqrt() / n);
    }
}

impl GradientMethod for DsignSgd {
    fn name(&self) -> &str {
        "dsignsgd"
    }
    fn dim(&self) -> usize {
        self.pool.d
    }
    fn scratch_len(&self) -> usize {
        let n = self.pool.agents.len();
        (2 * self.pool.d).max(n * self.pool.d + n + 1)
    }
    #[inline]
    fn sample(&self, g: &[f64], rng: &mut PathRng, u: &mut [f64], scratch: &mut [f64]) {
        self.pool
            .sum_of_draws(|g, z| sign(g + z), g, rng, u, scratch);
        self.pool.divide_by_n(u);
    }
    fn mean(&self, g: &[f64], out: &mut [f64], scratch: &mut [f64]) {
        let m = &mut scratch[..self.pool.d];
        self.pool
            .sum_over_agents(out, m, |a, _, m| a.noise.sign_mean(g, m));
        self.pool.divide_by_n(out);
    }
    fn mean_jvp(&self, g: &[f64], v: &[f64], out: &mut [f64], scratch: &mut [f64]) {
        let m = &mut scratch[..self.pool.d];
        self.pool
            .sum_over_agents(out, m, |a, _, m| a.noise.sign_mean_jvp(g, v, m));
        self.pool.divide_by_n(out);
    }
    fn cov_sqrt_mul(&self, g: &[f64], xi: &[f64], out: &mut [f64], scratch: &mut [f64]) {
        let n = self.pool.agents.len() as f64;
        if let Some(fixed) = &self.fixed {
            // The diagonal square root and the product in one pass, the operations below.
            if fixed.sums(g, |j, _, var| out[j] = (var.max(0.0).sqrt() / n) * xi[j]) {
                return;
            }
        }
        // out holds the diagonal square root first, then is scaled by ξ in place.
        self.cov_sqrt_diag_of_agents(g, out, scratch);
        for (o, x) in out.iter_mut().zip(xi) {
            *o *= x;
        }
    }
    fn covariance_is_diagonal(&self) -> bool {
        true
    }
    /// Entry `j` is `Σ_i (1 − m_i(g_j/s_ij)²)/N²`; `σ1 > 0` couples through `‖g‖`.
    fn covariance_is_coordinatewise(&self) -> bool {
        self.pool.noise_is_additive()
    }
    fn cov_sqrt_diag(&self, g: &[f64], out: &mut [f64], scratch: &mut [f64]) {
        let n = self.pool.agents.len() as f64;
        if let Some(fixed) = &self.fixed {
            if fixed.sums(g, |j, _, var| out[j] = var.max(0.0).sqrt() / n) {
                return;
            }
        }
        self.cov_sqrt_diag_of_agents(g, out, scratch);
    }
    /// One sign mean per (distinct agent, coordinate) for both: the same sums as
    /// [`DsignSgd::mean`] and [`DsignSgd::cov_sqrt_diag`], in the same order.
    fn mean_and_cov_sqrt_diag(
        &self,
        g: &[f64],
        mean: &mut [f64],
        diag: &mut [f64],
        scratch: &mut [f64],
    ) -> bool {
        let n = self.pool.agents.len() as f64;
        let inv_n = 1.0 / n;
        if let Some(fixed) = &self.fixed {
            let done = fixed.sums(g, |j, m, var| {
                mean[j] = m * inv_n;
                diag[j] = var.max(0.0).sqrt() / n;
            });
            if done {
                return true;
            }
        }
        let m = &mut scratch[..self.pool.d];
        mean.fill(0.0);
        diag.fill(0.0);
        self.pool.for_distinct(|a, w| {
            a.noise.sign_mean(g, m);
            for ((o, q), mi) in mean.iter_mut().zip(diag.iter_mut()).zip(m.iter()) {
                *o += w * mi;
                *q += w * (1.0 - mi * mi);
            }
        });
        mean.iter_mut().for_each(|o| *o *= inv_n);
        diag.iter_mut().for_each(|o| *o = o.max(0.0).sqrt() / n);
        true
    }
    /// `d` normals, `ζ` = the normals: the coupling is on the agent average itself.
    fn coupling_dim(&self) -> usize {
        self.pool.d
    }
    fn coupling_zeta(&self, normals: &[f64], zeta: &mut [f64]) {
        zeta.copy_from_slice(&normals[..self.pool.d]);
    }
    /// Aggregate quantile coupling, per coordinate `j`. Given `g`, the agents' signs at `j` are
    /// independent, `+1` with probability `q_ij = P(g_j + Z_ij > 0) = F_i(g_j/s_ij)` and `−1`
    /// with `r_ij = F_i(−g_j/s_ij)` (agents with `s_ij = 0` give the constant `sign(g_j)`), and
    /// independent across `j` (independent noise coordinates, MATH.md §1.3). So
    /// `u_j = (Σ_const + 2K_j − n_random)/N` with `K_j` Poisson-binomial (binomial for identical
    /// agents), and `u` has the law of [`GradientMethod::sample`] when each `K_j` is drawn by its
    /// inverse CDF at `Φ(ζ_j)` ([`poisson_binomial_quantile`]): exact, and `u_j` is the
    /// comonotone (maximal-correlation) partner of `ζ_j`, whatever `ν` (Cauchy included: only
    /// the CDF of the noise is needed). Needs no `rng`.
    fn sample_coupled(
        &self,
        g: &[f64],
        normals: &[f64],
        _rng: &mut PathRng,
        u: &mut [f64],
        scratch: &mut [f64],
    ) -> bool {
        let d = self.pool.d;
        let n = self.pool.agents.len();
        let distinct = if self.pool.homogeneous { 1 } else { n };
        let (scales, pmf) = scratch[..n * d + n + 1].split_at_mut(distinct * d);
        for (a, s) in self.pool.agents.iter().zip(scales.chunks_exact_mut(d)) {
            a.noise.scale(g, s);
        }
        let inv_n = 1.0 / n as f64;
        for (j, (uj, gj)) in u.iter_mut().zip(g).enumerate() {
            let u_tails = NormalTails::of(normals[j]);
            let sign_g = sign(*gj);
            if self.pool.homogeneous {
                // One pair of sign probabilities for all N agents.
                let s = scales[j];
                *uj = if s > 0.0 {
                    let law = StandardNoise::of(&self.pool.agents[0].noise);
                    let (r, q) = law.cdf_pair(gj / s);
                    let q = (q, r);
                    let k = poisson_binomial_quantile(std::iter::repeat_n(q, n), u_tails, pmf);
                    (2.0 * k as f64 - n as f64) * inv_n
                } else {
                    sign_g
                };
                continue;
            }
            let mut constant = 0.0;
            let mut random = 0usize;
            let trials = (0..n).filter_map(|i| {
                let s = scales[i * d + j];
                if s > 0.0 {
                    let law = StandardNoise::of(&self.pool.agents[i].noise);
                    random += 1;
                    let (r, q) = law.cdf_pair(gj / s);
                    Some((q, r))
                } else {
                    constant += sign_g;
                    None
                }
            });
            let k = poisson_binomial_quantile(trials, u_tails, pmf);
            *uj = (constant + 2.0 * k as f64 - random as f64) * inv_n;
        }
        true
    }
}

/// The methods of [`GradientMethod`] that an enum over methods forwards to its variants
/// (`Method` here, `crate::minibatch::AnyMethod`), written once for both: `gradient_methods!(args)`
/// is `registry!(args { methods })`. Keep it complete: a trait method with a default body left
/// out would silently skip the variants' own versions (as `mean_and_cov_sqrt_diag` once was in
/// one of two hand-kept lists).
#[macro_export]
macro_rules! gradient_methods {
    ($($args:tt)*) => {
        $crate::registry!($($args)* {
            fn name(&self) -> &str;
            fn dim(&self) -> usize;
            fn scratch_len(&self) -> usize;
            #[inline]
            fn sample(&self, g: &[f64], rng: &mut PathRng, u: &mut [f64], scratch: &mut [f64]);
            fn mean(&self, g: &[f64], out: &mut [f64], scratch: &mut [f64]);
            fn mean_jvp(&self, g: &[f64], v: &[f64], out: &mut [f64], scratch: &mut [f64]);
            fn cov_sqrt_mul(&self, g: &[f64], xi: &[f64], out: &mut [f64], scratch: &mut [f64]);
            fn covariance_is_diagonal(&self) -> bool;
            fn cov_sqrt_diag(&self, g: &[f64], out: &mut [f64], scratch: &mut [f64]);
            fn mean_and_cov_sqrt_diag(&self, g: &[f64], mean: &mut [f64], diag: &mut [f64], scratch: &mut [f64]) -> bool;
            fn mean_is_gradient(&self) -> bool;
            fn covariance_is_constant(&self) -> bool;
            fn covariance_is_coordinatewise(&self) -> bool;
            fn covariance_is_exact(&self) -> bool;
            fn coupling_dim(&self) -> usize;
            fn coupling_zeta(&self, normals: &[f64], zeta: &mut [f64]);
            #[inline]
            fn sample_coupled(&self, g: &[f64], normals: &[f64], rng: &mut PathRng, u: &mut [f64], scratch: &mut [f64]) -> bool;
            #[inline]
            fn sample_at(&self, x: &[f64], g: &[f64], rng: &mut PathRng, u: &mut [f64], scratch: &mut [f64]);
            fn mean_at(&self, x: &[f64], g: &[f64], out: &mut [f64], scratch: &mut [f64]);
            fn mean_jvp_at(&self, x: &[f64], g: &[f64], v: &[f64], out: &mut [f64], scratch: &mut [f64]);
            fn noise_dim(&self) -> usize;
            #[inline]
            fn cov_sqrt_mul_at(&self, x: &[f64], g: &[f64], xi: &[f64], out: &mut [f64], scratch: &mut [f64]);
            fn needs_full_gradient(&self) -> bool;
        });
    };
}

crate::registry! {
    family "optimizer", context AgentNoises;
    /// The three methods of the paper, for choosing at run time; implements [`GradientMethod`]
    /// by `match`.
    #[derive(Clone, Debug)]
    pub enum Method: GradientMethod [gradient_methods]
    /// `[optimizer]`: the discrete algorithm and its compressor, built from the agents' noise by
    /// [`OptimizerSpec::build`].
    pub enum OptimizerSpec;
    kinds {
        Dsgd(Dsgd) = "dsgd" DsgdSpec,
        Dcsgd(Dcsgd) = "dcsgd" DcsgdSpec,
        DsignSgd(DsignSgd) = "dsignsgd" DsignSgdSpec,
    }
}

impl OptimizerSpec {
    /// The compressor every agent uses (the identity for DSGD and DSignSGD).
    pub fn compressor(&self) -> &CompressorSpec {
        match self {
            OptimizerSpec::Dsgd(s) => &s.compressor,
            OptimizerSpec::Dcsgd(s) => &s.compressor,
            OptimizerSpec::DsignSgd(s) => &s.compressor,
        }
    }
}

/// What an [`OptimizerSpec`] is built from: the dimension and each agent's noise.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentNoises {
    /// The dimension `d`.
    pub d: usize,
    /// One noise model per agent.
    pub noises: Vec<NoiseModel>,
}

impl AgentNoises {
    fn agents(&self, compressor: &CompressorSpec) -> Result<Vec<Agent>, ModelError> {
        let compressor = compressor
            .build(&self.d)
            .map_err(|e| e.renamed("", "compressor."))?;
        Ok(self
            .noises
            .iter()
            .map(|noise| Agent {
                noise: noise.clone(),
                compressor,
            })
            .collect())
    }

    /// The agents of a method that sends uncompressed messages (DSGD, DSignSGD): only the
    /// identity compressor is accepted.
    fn uncompressed_agents(
        &self,
        kind: &str,
        compressor: &CompressorSpec,
    ) -> Result<Vec<Agent>, ModelError> {
        if *compressor != CompressorSpec::default() {
            return Err(ModelError::invalid(
                "compressor.kind",
                format!("\"{}\"", compressor.kind_name()),
                format!(
                    "compression needs optimizer.kind = \"dcsgd\" (optimizer.kind = \"{kind}\" allows only the identity compressor)"
                ),
            ));
        }
        self.agents(compressor)
    }
}

const COMPRESSOR_IDENTITY_DOC: &str =
    "table, default { kind = \"identity\" }: only the identity is allowed";

crate::kind_spec! {
    /// `kind = "dsgd"`.
    #[derive(Default)]
    pub struct DsgdSpec: KindSpec<Output = Dsgd, Context = AgentNoises> {
        /// Only the identity.
        #[serde(default)]
        pub compressor: CompressorSpec => COMPRESSOR_IDENTITY_DOC,
    }
    summary "distributed SGD";
    build(self, ctx) { Dsgd::new(ctx.uncompressed_agents("dsgd", &self.compressor)?) }
}

crate::kind_spec! {
    /// `kind = "dcsgd"`.
    pub struct DcsgdSpec: KindSpec<Output = Dcsgd, Context = AgentNoises> {
        /// Every agent's compressor.
        pub compressor: CompressorSpec => "table, required: every agent's compressor, e.g. compressor = { kind = \"bernoulli\", p = 0.5 }",
    }
    summary "distributed compressed SGD; needs optimizer.compressor";
    build(self, ctx) { Dcsgd::new(ctx.agents(&self.compressor)?) }
}

crate::kind_spec! {
    /// `kind = "dsignsgd"`.
    #[derive(Default)]
    pub struct DsignSgdSpec: KindSpec<Output = DsignSgd, Context = AgentNoises> {
        /// Only the identity.
        #[serde(default)]
        pub compressor: CompressorSpec => COMPRESSOR_IDENTITY_DOC,
    }
    summary "distributed SignSGD";
    build(self, ctx) { DsignSgd::new(ctx.uncompressed_agents("dsignsgd", &self.compressor)?) }
}
