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

use crate::compress::{Compressor, CompressorKind};
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
    /// Whether `C(g)` is diagonal for every `g`; then [`GradientMethod::cov_sqrt_diag`] gives
    /// its square root and SDE models declare diagonal noise.
    fn covariance_is_diagonal(&self) -> bool {
        false
    }
    /// The diagonal of `C(g)^{1/2}` when [`GradientMethod::covariance_is_diagonal`].
    fn cov_sqrt_diag(&self, _g: &[f64], _out: &mut [f64], _scratch: &mut [f64]) {}
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
    /// Common random numbers: if `u | g` is exactly Gaussian, writes `u = μ(g) + B ζ` for the
    /// given standard normal `ζ ∈ R^d` and returns `true`; otherwise returns `false`.
    fn sample_coupled(
        &self,
        _g: &[f64],
        _zeta: &[f64],
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

    /// `out_j = sqrt(Σ_i var_ij) / N`: the square root of the diagonal covariance of the mean
    /// of `N` independent per-agent noises. `scratch` holds at least `d` values.
    fn mean_noise_sqrt(&self, g: &[f64], out: &mut [f64], scratch: &mut [f64]) {
        let n = self.agents.len() as f64;
        // Callers may hand over more scratch than `d`; the noise wants exactly `d` values.
        let var = &mut scratch[..out.len()];
        out.fill(0.0);
        self.for_distinct(|a, w| {
            a.noise.variance(g, var);
            for (o, v) in out.iter_mut().zip(var.iter()) {
                *o += w * v;
            }
        });
        for o in out.iter_mut() {
            *o = o.sqrt() / n;
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
        Ok(Dsgd {
            pool: AgentPool::new(agents, "dsgd", true)?,
        })
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
        let (z, s) = scratch[..2 * self.pool.d].split_at_mut(self.pool.d);
        u.fill(0.0);
        for (i, a) in self.pool.agents.iter().enumerate() {
            draw_noise(&a.noise, g, rng, z, s, self.pool.homogeneous && i > 0);
            for ((ui, zi), si) in u.iter_mut().zip(z.iter()).zip(s.iter()) {
                *ui += zi * si;
            }
        }
        let inv_n = 1.0 / self.pool.agents.len() as f64;
        for (ui, gi) in u.iter_mut().zip(g) {
            *ui = gi + *ui * inv_n;
        }
    }
    fn mean(&self, g: &[f64], out: &mut [f64], _scratch: &mut [f64]) {
        out.copy_from_slice(g);
    }
    fn mean_jvp(&self, _g: &[f64], v: &[f64], out: &mut [f64], _scratch: &mut [f64]) {
        out.copy_from_slice(v);
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
        self.pool
            .agents
            .iter()
            .all(|a| !a.noise.depends_on_gradient())
    }
    /// `σ1 > 0` couples the coordinates through `‖g‖`.
    fn covariance_is_coordinatewise(&self) -> bool {
        self.covariance_is_constant()
    }
    fn sample_coupled(&self, g: &[f64], zeta: &[f64], u: &mut [f64], scratch: &mut [f64]) -> bool {
        if !self
            .pool
            .agents
            .iter()
            .all(|a| matches!(a.noise, NoiseModel::Gaussian(_)))
        {
            return false;
        }
        let (s, rest) = scratch.split_at_mut(self.pool.d);
        self.pool.mean_noise_sqrt(g, s, rest);
        for (((ui, gi), si), z) in u.iter_mut().zip(g).zip(s.iter()).zip(zeta) {
            *ui = gi + si * z;
        }
        true
    }
}

/// Distributed compressed SGD: `u = (1/N) Σ_i C_i(g + Z_i)`. Mean `g` (unbiased compressors),
/// covariance `Σ̄_C/N` (MATH.md §5.3), diagonal minus a rank-one term in `g gᵀ` for rand-k.
#[derive(Clone, Debug)]
pub struct Dcsgd {
    pool: AgentPool,
}

impl Dcsgd {
    /// Every agent's noise must have finite covariance.
    pub fn new(agents: Vec<Agent>) -> Result<Self, ModelError> {
        Ok(Dcsgd {
            pool: AgentPool::new(agents, "dcsgd", true)?,
        })
    }

    pub fn agents(&self) -> &[Agent] {
        &self.pool.agents
    }

    /// `diag` and `coef` of `C(g) = diag − coef · g gᵀ` (the mean over agents divided by N).
    /// `scratch` holds `2d` values.
    fn covariance_parts(&self, g: &[f64], diag: &mut [f64], scratch: &mut [f64]) -> f64 {
        let d = self.pool.d;
        let (var, part) = scratch.split_at_mut(d);
        let n = self.pool.agents.len() as f64;
        diag.fill(0.0);
        let mut coef = 0.0;
        self.pool.for_distinct(|a, weight| {
            a.noise.variance(g, var);
            coef += weight * a.compressor.covariance_parts(g, var, &mut part[..d]);
            for (o, p) in diag.iter_mut().zip(part.iter()) {
                *o += weight * p;
            }
        });
        let n2 = n * n;
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
        4 * self.pool.d
    }
    #[inline]
    fn sample(&self, g: &[f64], rng: &mut PathRng, u: &mut [f64], scratch: &mut [f64]) {
        let (z, rest) = scratch[..3 * self.pool.d].split_at_mut(self.pool.d);
        let (c, s) = rest.split_at_mut(self.pool.d);
        let mut crng = compressor_stream(rng);
        let rng_c = &mut crng;
        u.fill(0.0);
        for (i, a) in self.pool.agents.iter().enumerate() {
            draw_noise(&a.noise, g, rng, z, s, self.pool.homogeneous && i > 0);
            for ((zi, si), gi) in z.iter_mut().zip(s.iter()).zip(g) {
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
        }
        let inv_n = 1.0 / self.pool.agents.len() as f64;
        for ui in u.iter_mut() {
            *ui *= inv_n;
        }
    }
    fn mean(&self, g: &[f64], out: &mut [f64], _scratch: &mut [f64]) {
        out.copy_from_slice(g);
    }
    fn mean_jvp(&self, _g: &[f64], v: &[f64], out: &mut [f64], _scratch: &mut [f64]) {
        out.copy_from_slice(v);
    }
    fn cov_sqrt_mul(&self, g: &[f64], xi: &[f64], out: &mut [f64], scratch: &mut [f64]) {
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
    /// Entry `j` is `s_j + ω(g_j² + s_j)` for the identity, Bernoulli and rand-`d` compressors
    /// with `g`-independent noise; QSGD's variance depends on `‖g + Z‖`.
    fn covariance_is_coordinatewise(&self) -> bool {
        self.pool.agents.iter().all(|a| {
            !a.noise.depends_on_gradient()
                && match a.compressor {
                    CompressorKind::Identity(_) | CompressorKind::Bernoulli(_) => true,
                    CompressorKind::RandK(r) => r.covariance_is_diagonal(),
                    CompressorKind::Qsgd(_) => false,
                }
        })
    }
    fn cov_sqrt_diag(&self, g: &[f64], out: &mut [f64], scratch: &mut [f64]) {
        let d = self.pool.d;
        self.covariance_parts(g, out, &mut scratch[..2 * d]);
        for o in out.iter_mut() {
            *o = o.max(0.0).sqrt();
        }
    }
}

/// Distributed SignSGD: `u = (1/N) Σ_i sign(g + Z_i)`. Mean `(1/N) Σ_i E sign(g + Z_i)`,
/// covariance `(1/N²) Σ_i diag(1 − m_i²)` with independent noise coordinates (MATH.md §5.4).
#[derive(Clone, Debug)]
pub struct DsignSgd {
    pool: AgentPool,
}

impl DsignSgd {
    pub fn new(agents: Vec<Agent>) -> Result<Self, ModelError> {
        Ok(DsignSgd {
            pool: AgentPool::new(agents, "dsignsgd", false)?,
        })
    }

    pub fn agents(&self) -> &[Agent] {
        &self.pool.agents
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
        2 * self.pool.d
    }
    #[inline]
    fn sample(&self, g: &[f64], rng: &mut PathRng, u: &mut [f64], scratch: &mut [f64]) {
        let (z, s) = scratch[..2 * self.pool.d].split_at_mut(self.pool.d);
        u.fill(0.0);
        for (i, a) in self.pool.agents.iter().enumerate() {
            draw_noise(&a.noise, g, rng, z, s, self.pool.homogeneous && i > 0);
            for (((ui, zi), si), gi) in u.iter_mut().zip(z.iter()).zip(s.iter()).zip(g) {
                let v = gi + zi * si;
                // sign(0) = 0, a null event for continuous noise (MATH.md §3).
                *ui += if v > 0.0 {
                    1.0
                } else if v < 0.0 {
                    -1.0
                } else {
                    0.0
                };
            }
        }
        let inv_n = 1.0 / self.pool.agents.len() as f64;
        for ui in u.iter_mut() {
            *ui *= inv_n;
        }
    }
    fn mean(&self, g: &[f64], out: &mut [f64], scratch: &mut [f64]) {
        let m = &mut scratch[..self.pool.d];
        out.fill(0.0);
        self.pool.for_distinct(|a, w| {
            a.noise.sign_mean(g, m);
            for (o, mi) in out.iter_mut().zip(m.iter()) {
                *o += w * mi;
            }
        });
        let inv_n = 1.0 / self.pool.agents.len() as f64;
        out.iter_mut().for_each(|o| *o *= inv_n);
    }
    fn mean_jvp(&self, g: &[f64], v: &[f64], out: &mut [f64], scratch: &mut [f64]) {
        let m = &mut scratch[..self.pool.d];
        out.fill(0.0);
        self.pool.for_distinct(|a, w| {
            a.noise.sign_mean_jvp(g, v, m);
            for (o, mi) in out.iter_mut().zip(m.iter()) {
                *o += w * mi;
            }
        });
        let inv_n = 1.0 / self.pool.agents.len() as f64;
        out.iter_mut().for_each(|o| *o *= inv_n);
    }
    fn cov_sqrt_mul(&self, g: &[f64], xi: &[f64], out: &mut [f64], scratch: &mut [f64]) {
        // out holds the diagonal square root first, then is scaled by ξ in place.
        self.cov_sqrt_diag(g, out, scratch);
        for (o, x) in out.iter_mut().zip(xi) {
            *o *= x;
        }
    }
    fn covariance_is_diagonal(&self) -> bool {
        true
    }
    /// Entry `j` is `Σ_i (1 − m_i(g_j/s_ij)²)/N²`; `σ1 > 0` couples through `‖g‖`.
    fn covariance_is_coordinatewise(&self) -> bool {
        self.pool
            .agents
            .iter()
            .all(|a| !a.noise.depends_on_gradient())
    }
    fn cov_sqrt_diag(&self, g: &[f64], out: &mut [f64], scratch: &mut [f64]) {
        let m = &mut scratch[..self.pool.d];
        out.fill(0.0);
        self.pool.for_distinct(|a, w| {
            a.noise.sign_mean(g, m);
            for (o, mi) in out.iter_mut().zip(m.iter()) {
                *o += w * (1.0 - mi * mi);
            }
        });
        let n = self.pool.agents.len() as f64;
        // Rounding can push 1 − m² a hair below zero when |m| ≈ 1 (MATH.md §10).
        out.iter_mut().for_each(|o| *o = o.max(0.0).sqrt() / n);
    }
}

/// The three methods of the paper, for choosing at run time.
#[derive(Clone, Debug)]
pub enum Method {
    Dsgd(Dsgd),
    Dcsgd(Dcsgd),
    DsignSgd(DsignSgd),
}

macro_rules! dispatch {
    ($self:ident, $m:ident => $e:expr) => {
        match $self {
            Method::Dsgd($m) => $e,
            Method::Dcsgd($m) => $e,
            Method::DsignSgd($m) => $e,
        }
    };
}

impl GradientMethod for Method {
    fn name(&self) -> &str {
        dispatch!(self, m => m.name())
    }
    fn dim(&self) -> usize {
        dispatch!(self, m => m.dim())
    }
    fn scratch_len(&self) -> usize {
        dispatch!(self, m => m.scratch_len())
    }
    #[inline]
    fn sample(&self, g: &[f64], rng: &mut PathRng, u: &mut [f64], scratch: &mut [f64]) {
        dispatch!(self, m => m.sample(g, rng, u, scratch))
    }
    fn mean(&self, g: &[f64], out: &mut [f64], scratch: &mut [f64]) {
        dispatch!(self, m => m.mean(g, out, scratch))
    }
    fn mean_jvp(&self, g: &[f64], v: &[f64], out: &mut [f64], scratch: &mut [f64]) {
        dispatch!(self, m => m.mean_jvp(g, v, out, scratch))
    }
    fn cov_sqrt_mul(&self, g: &[f64], xi: &[f64], out: &mut [f64], scratch: &mut [f64]) {
        dispatch!(self, m => m.cov_sqrt_mul(g, xi, out, scratch))
    }
    fn covariance_is_diagonal(&self) -> bool {
        dispatch!(self, m => m.covariance_is_diagonal())
    }
    fn cov_sqrt_diag(&self, g: &[f64], out: &mut [f64], scratch: &mut [f64]) {
        dispatch!(self, m => m.cov_sqrt_diag(g, out, scratch))
    }
    fn covariance_is_constant(&self) -> bool {
        dispatch!(self, m => m.covariance_is_constant())
    }
    fn covariance_is_coordinatewise(&self) -> bool {
        dispatch!(self, m => m.covariance_is_coordinatewise())
    }
    fn sample_coupled(&self, g: &[f64], zeta: &[f64], u: &mut [f64], scratch: &mut [f64]) -> bool {
        dispatch!(self, m => m.sample_coupled(g, zeta, u, scratch))
    }
}
