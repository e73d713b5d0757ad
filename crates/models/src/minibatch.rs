//! Minibatch gradient noise: each of `N` agents computes the gradient of `B` training examples
//! drawn at random (with or without replacement), so the noise is state-dependent and
//! non-Gaussian, the real thing the injected noises of [`crate::noise`] stand in for.
//!
//! With `ℓ_i` the per-example losses of a network [`Mlp`] (`f = (1/n) Σ ℓ_i + (λ/2)‖θ‖²`), one
//! agent's minibatch gradient `g_B = (1/B) Σ_{i∈batch} ∇ℓ_i + λθ` has mean `∇f` and covariance
//! `c_B Σ(θ)`, `Σ = (1/n) Σ_i (∇ℓ_i − ∇f̄)(∇ℓ_i − ∇f̄)ᵀ` (the per-example gradient covariance,
//! population form), `c_B = 1/B` with replacement and `c_B = (n − B)/((n − 1) B)` without (the
//! finite-population factor). The SDE's covariance factor is never a dense `d × d` matrix: with
//! `G_c` the `n × d` matrix of centred per-example gradients, `Σ = G_cᵀ G_c / n`, so
//! `B = √(c_B/n) G_cᵀ` (`d × n`) is a square root, and `B ξ` is one weighted backward pass
//! ([`Mlp::centred_gradient_mul`]), `O(n d)`.
//!
//! | rule | direction `u` | mean | covariance factor (columns) |
//! |---|---|---|---|
//! | DSGD | `(1/N) Σ_a g_{B_a}` | `∇f` | `B/√N` (`n`), exact |
//! | DCSGD, identity or Bernoulli(`p`) | `(1/N) Σ_a C_a(g_{B_a})` | `∇f` | `[B, D^{1/2}]/√N` (`n + d`), `D = diag((1−p)/p (∇f² + c_B Σ_jj))`, exact |
//! | DSignSGD | `(1/N) Σ_a sign(g_{B_a})` | `erf(∇f_j / √(2 c_B Σ_jj))` | `diag(√(1 − m_j²))/√N` (`d`) |
//!
//! The DSignSGD row is an approximation, stated: the central-limit (Gaussian) form of each
//! coordinate of `g_B` (MATH.md §5.4's Gaussian sign mean with `s_j² = c_B Σ_jj`), and the signs
//! of different coordinates treated as uncorrelated although one batch drives them all.
//! tests/minibatch.rs measures the error of the mean against Monte Carlo. DCSGD with Bernoulli
//! sparsification is exact because `Cov_ξ C(v) = ((1−p)/p) diag(v²)` needs only the diagonal of
//! `E v vᵀ`; rand-k and QSGD need more than that and are refused.

use crate::compress::{Compressor, CompressorKind};
use crate::error::ModelError;
use crate::loss::Loss;
use crate::method::{compressor_stream, GradientMethod};
use crate::mlp::Mlp;
use rand::RngExt;
use sde_core::PathRng;
use statrs::function::erf::erf;
use std::cell::RefCell;
use std::f64::consts::FRAC_1_SQRT_2;
use std::sync::Arc;

/// What each agent does with its minibatch gradient.
#[derive(Clone, Debug, PartialEq)]
pub enum MinibatchRule {
    /// DSGD.
    Sgd,
    /// DCSGD with an identity or Bernoulli compressor.
    Compressed(CompressorKind),
    /// DSignSGD.
    Sign,
}

/// `N` agents with minibatch gradients of a network loss (see the module documentation).
#[derive(Clone, Debug)]
pub struct Minibatch {
    net: Arc<Mlp>,
    rule: MinibatchRule,
    agents: usize,
    batch: usize,
    replacement: bool,
}

thread_local! {
    /// Row indices of one iteration's batches (grow-only: no allocation after the first step).
    static ROWS: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

impl Minibatch {
    /// `agents ≥ 1`, `1 ≤ batch` (`≤ n` without replacement). Pass the same `Arc<Mlp>` as the
    /// optimizer's loss: the direction is a function of the state through it.
    pub fn new(
        net: Arc<Mlp>,
        rule: MinibatchRule,
        agents: usize,
        batch: usize,
        replacement: bool,
    ) -> Result<Self, ModelError> {
        if agents == 0 {
            return Err(ModelError::invalid(
                "agents.n",
                0,
                "needs at least one agent",
            ));
        }
        let n = net.train_rows();
        if batch == 0 || (!replacement && batch > n) {
            return Err(ModelError::invalid(
                "noise.batch",
                batch,
                format!(
                    "must be in 1..={n} (training rows{})",
                    if replacement {
                        ""
                    } else {
                        "; without replacement"
                    }
                ),
            ));
        }
        if let MinibatchRule::Compressed(c) = &rule {
            if !matches!(
                c,
                CompressorKind::Identity(_) | CompressorKind::Bernoulli(_)
            ) {
                return Err(ModelError::invalid(
                    "compressor.kind",
                    c.name(),
                    "with minibatch noise only identity and bernoulli have an exact SDE \
                     covariance (rand-k and QSGD need the full second moment of the batch gradient)",
                ));
            }
        }
        Ok(Minibatch {
            net,
            rule,
            agents,
            batch,
            replacement,
        })
    }

    pub fn net(&self) -> &Mlp {
        &self.net
    }
    pub fn batch(&self) -> usize {
        self.batch
    }
    pub fn agents(&self) -> usize {
        self.agents
    }
    pub fn replacement(&self) -> bool {
        self.replacement
    }
    pub fn rule(&self) -> &MinibatchRule {
        &self.rule
    }

    /// `c_B`: `Cov g_B = c_B Σ`.
    pub fn batch_factor(&self) -> f64 {
        let (n, b) = (self.net.train_rows() as f64, self.batch as f64);
        if self.replacement {
            1.0 / b
        } else if n > 1.0 {
            (n - b) / ((n - 1.0) * b)
        } else {
            0.0
        }
    }

    /// Appends one agent's batch to `rows`: `B` uniform draws, or a uniform `B`-subset by
    /// Floyd's algorithm (`O(B²)` membership checks, no buffer of size `n`).
    fn draw_batch(&self, rng: &mut PathRng, rows: &mut Vec<usize>) {
        let n = self.net.train_rows();
        let start = rows.len();
        if self.replacement {
            for _ in 0..self.batch {
                rows.push(rng.random_range(0..n));
            }
        } else {
            for j in (n - self.batch)..n {
                let t = rng.random_range(0..=j);
                let pick = if rows[start..].contains(&t) { j } else { t };
                rows.push(pick);
            }
        }
    }

    /// `out = g_B` of one batch `rows` (with the L2 term).
    fn batch_gradient(&self, x: &[f64], rows: &[usize], w: &mut [f64], out: &mut [f64]) {
        let wt = 1.0 / rows.len() as f64;
        let w = &mut w[..rows.len()];
        w.fill(wt);
        self.net.weighted_gradient(x, rows, w, out);
        let l2 = self.net.spec().l2;
        if l2 != 0.0 {
            out.iter_mut().zip(x).for_each(|(o, xi)| *o += l2 * xi);
        }
    }

    /// `s_j = √(c_B Σ_jj(x))` into `s` (and the per-example mean into `tmp`).
    fn batch_sd(&self, x: &[f64], s: &mut [f64], tmp: &mut [f64]) {
        self.net.gradient_moments(x, tmp, s);
        let c = self.batch_factor();
        s.iter_mut().for_each(|v| *v = (c * *v).sqrt());
    }
}

fn sign(v: f64) -> f64 {
    if v > 0.0 {
        1.0
    } else if v < 0.0 {
        -1.0
    } else {
        0.0
    }
}

impl GradientMethod for Minibatch {
    fn name(&self) -> &str {
        match self.rule {
            MinibatchRule::Sgd => "dsgd",
            MinibatchRule::Compressed(_) => "dcsgd",
            MinibatchRule::Sign => "dsignsgd",
        }
    }
    fn dim(&self) -> usize {
        self.net.dim()
    }
    fn scratch_len(&self) -> usize {
        // Weights of one pass (N·B), and three d-vectors.
        self.agents * self.batch + 3 * self.net.dim()
    }
    fn needs_full_gradient(&self) -> bool {
        false
    }
    /// Without `x` the law is undefined: the generic code calls [`GradientMethod::sample_at`].
    fn sample(&self, _g: &[f64], _rng: &mut PathRng, _u: &mut [f64], _scratch: &mut [f64]) {
        unreachable!("minibatch noise needs the state: use sample_at")
    }
    fn sample_at(
        &self,
        x: &[f64],
        _g: &[f64],
        rng: &mut PathRng,
        u: &mut [f64],
        scratch: &mut [f64],
    ) {
        let d = self.dim();
        let nb = self.agents * self.batch;
        let (w, rest) = scratch.split_at_mut(nb);
        let (ga, rest) = rest.split_at_mut(d);
        let c = &mut rest[..d];
        ROWS.with(|cell| {
            let mut rows = cell.borrow_mut();
            rows.clear();
            for _ in 0..self.agents {
                self.draw_batch(rng, &mut rows);
            }
            let inv_n = 1.0 / self.agents as f64;
            match &self.rule {
                MinibatchRule::Sgd => {
                    // The agents' average is one weighted pass over all N·B rows.
                    self.batch_gradient(x, &rows, w, u);
                }
                MinibatchRule::Compressed(comp) => {
                    let mut crng = compressor_stream(rng);
                    u.fill(0.0);
                    for batch in rows.chunks_exact(self.batch) {
                        self.batch_gradient(x, batch, w, ga);
                        comp.compress(ga, &mut crng, c);
                        u.iter_mut()
                            .zip(c.iter())
                            .for_each(|(a, b)| *a += inv_n * b);
                    }
                }
                MinibatchRule::Sign => {
                    u.fill(0.0);
                    for batch in rows.chunks_exact(self.batch) {
                        self.batch_gradient(x, batch, w, ga);
                        u.iter_mut()
                            .zip(ga.iter())
                            .for_each(|(a, b)| *a += inv_n * sign(*b));
                    }
                }
            }
        });
    }
    fn mean(&self, _g: &[f64], _out: &mut [f64], _scratch: &mut [f64]) {
        unreachable!("minibatch noise needs the state: use mean_at")
    }
    fn mean_at(&self, x: &[f64], g: &[f64], out: &mut [f64], scratch: &mut [f64]) {
        match self.rule {
            MinibatchRule::Sgd | MinibatchRule::Compressed(_) => out.copy_from_slice(g),
            MinibatchRule::Sign => {
                let d = self.dim();
                let (s, rest) = scratch[self.agents * self.batch..].split_at_mut(d);
                self.batch_sd(x, s, &mut rest[..d]);
                for ((o, gj), sj) in out.iter_mut().zip(g).zip(s.iter()) {
                    *o = if *sj > 0.0 {
                        erf(gj / sj * FRAC_1_SQRT_2)
                    } else {
                        sign(*gj)
                    };
                }
            }
        }
    }
    fn mean_jvp(&self, _g: &[f64], _v: &[f64], _out: &mut [f64], _scratch: &mut [f64]) {
        unreachable!("minibatch noise needs the state: use mean_jvp_at")
    }
    /// DSGD and DCSGD: `∂μ/∂g = I`. DSignSGD: the derivative at fixed `s` (the dependence of
    /// `Σ_jj` on `x` is left out; the second-order model of minibatch DSignSGD is not exact).
    fn mean_jvp_at(&self, x: &[f64], g: &[f64], v: &[f64], out: &mut [f64], scratch: &mut [f64]) {
        match self.rule {
            MinibatchRule::Sgd | MinibatchRule::Compressed(_) => out.copy_from_slice(v),
            MinibatchRule::Sign => {
                let d = self.dim();
                let (s, rest) = scratch[self.agents * self.batch..].split_at_mut(d);
                self.batch_sd(x, s, &mut rest[..d]);
                for (((o, gj), sj), vj) in out.iter_mut().zip(g).zip(s.iter()).zip(v) {
                    *o = if *sj > 0.0 {
                        let y = gj / sj;
                        2.0 * crate::special::normal_pdf(y) * vj / sj
                    } else {
                        0.0
                    };
                }
            }
        }
    }
    fn noise_dim(&self) -> usize {
        match self.rule {
            MinibatchRule::Sgd => self.net.train_rows(),
            MinibatchRule::Compressed(_) => self.net.train_rows() + self.dim(),
            MinibatchRule::Sign => self.dim(),
        }
    }
    fn cov_sqrt_mul(&self, _g: &[f64], _xi: &[f64], _out: &mut [f64], _scratch: &mut [f64]) {
        unreachable!("minibatch noise needs the state: use cov_sqrt_mul_at")
    }
    fn cov_sqrt_mul_at(
        &self,
        x: &[f64],
        g: &[f64],
        xi: &[f64],
        out: &mut [f64],
        scratch: &mut [f64],
    ) {
        let n = self.net.train_rows();
        let d = self.dim();
        let inv_sqrt_agents = 1.0 / (self.agents as f64).sqrt();
        let c_b = self.batch_factor();
        match &self.rule {
            MinibatchRule::Sgd | MinibatchRule::Compressed(_) => {
                self.net.centred_gradient_mul(x, &xi[..n], out);
                let f = (c_b / n as f64).sqrt() * inv_sqrt_agents;
                out.iter_mut().for_each(|o| *o *= f);
                if let MinibatchRule::Compressed(CompressorKind::Bernoulli(b)) = &self.rule {
                    let p = b.p();
                    let (var, rest) = scratch[self.agents * self.batch..].split_at_mut(d);
                    self.net.gradient_moments(x, &mut rest[..d], var);
                    for ((o, (gj, vj)), z) in
                        out.iter_mut().zip(g.iter().zip(var.iter())).zip(&xi[n..])
                    {
                        let dj = (1.0 - p) / p * (gj * gj + c_b * vj);
                        *o += dj.sqrt() * inv_sqrt_agents * z;
                    }
                }
            }
            MinibatchRule::Sign => {
                let (s, rest) = scratch[self.agents * self.batch..].split_at_mut(d);
                self.batch_sd(x, s, &mut rest[..d]);
                for ((o, (gj, sj)), z) in out.iter_mut().zip(g.iter().zip(s.iter())).zip(xi) {
                    let mj = if *sj > 0.0 {
                        erf(gj / sj * FRAC_1_SQRT_2)
                    } else {
                        sign(*gj)
                    };
                    *o = (1.0 - mj * mj).max(0.0).sqrt() * inv_sqrt_agents * z;
                }
            }
        }
    }
    fn covariance_is_exact(&self) -> bool {
        !matches!(self.rule, MinibatchRule::Sign)
    }
}

/// A configured method: injected noise on the full gradient ([`crate::method::Method`]) or
/// minibatch noise of a network loss ([`Minibatch`]). The configuration layer builds one of the
/// two from `noise.kind`; every call is forwarded unchanged, so an injected-noise run gives the
/// bits of the bare [`crate::method::Method`].
#[derive(Clone, Debug)]
pub enum AnyMethod {
    /// Today's noise kinds on the full gradient.
    Injected(crate::method::Method),
    /// `noise.kind = "minibatch"`.
    Minibatch(Minibatch),
}

impl From<crate::method::Method> for AnyMethod {
    fn from(m: crate::method::Method) -> Self {
        AnyMethod::Injected(m)
    }
}

impl From<Minibatch> for AnyMethod {
    fn from(m: Minibatch) -> Self {
        AnyMethod::Minibatch(m)
    }
}

// One `match` per method, with `Method`'s list of the trait's methods (`gradient_methods!`).
crate::gradient_methods!(@trait AnyMethod, GradientMethod, {
    Injected(crate::method::Method) = "injected" (),
    Minibatch(Minibatch) = "minibatch" (),
},);
