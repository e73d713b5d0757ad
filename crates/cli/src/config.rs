//! The experiment configuration: typed values parsed and validated from TOML.
//!
//! The file is parsed into an untyped [`toml::Table`] and then validated by hand, section by section,
//! so that **every** error names the full key path and the offending value:
//!
//! ```text
//! run.etas[2] = -0.1: must be positive
//! noise.kind = "cauchy": unknown kind (expected one of gaussian, student_t)
//! loss.x0: missing key
//! run.paths = "many": expected an integer
//! loss.diag has length 3 but loss.x0 has length 2
//! run.pathz = 100: unknown key (expected one of horizon, etas, ...); did you mean "paths"?
//! ```
//!
//! Unknown keys are rejected at every level (a typo must never be silently ignored). Optional keys
//! get their defaults filled in, and [`ExperimentConfig`] serializes (JSON or TOML) to the full
//! configuration as parsed, so a result document can embed it and the TOML form parses back to the
//! same value.
//!
//! The complete key reference (type, default, meaning) is the "Config reference" section of the workspace README; the doc comments
//! below say the same.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use compare::study::iterations;
use models::compress::Compressor;
use models::loss::Loss;
use models::noise::GradientNoise;
use models::{
    BernoulliSparsifier, CompressorKind, DiagonalQuadratic, GaussianNoise, Identity, LeastSquares,
    MixedQuadraticQuartic, ModelError, NormalizationInputs, Qsgd, Quadratic, Quartic, RandK,
    StudentTNoise,
};
use serde::Serialize;
use toml::{Table, Value};

use crate::error::CliError;

// The library enums the configuration uses directly; they serialize to their config names.
pub use compare::Observable;
pub use models::SdeModel;
pub use sde_core::{IncrementKind, SchemeKind};

// ---------------------------------------------------------------------------------------------
// Names the configuration knows (single source of truth for error messages and `sdelab list`).
// ---------------------------------------------------------------------------------------------

/// Values of `loss.kind`.
pub const LOSS_KINDS: &[&str] = &[
    "quadratic",
    "quadratic_full",
    "quartic",
    "mixed",
    "least_squares",
];
/// Values of `noise.kind` (and `noise.agents[i].kind`).
pub const NOISE_KINDS: &[&str] = &["gaussian", "student_t"];
/// Values of `optimizer.kind`.
pub const OPTIMIZER_KINDS: &[&str] = &["dsgd", "dcsgd", "dsignsgd"];
/// Values of `optimizer.compressor.kind`.
pub const COMPRESSOR_KINDS: &[&str] = &["identity", "bernoulli", "rand_k", "qsgd"];
/// Values of `schedule.kind`.
pub const SCHEDULE_KINDS: &[&str] = &[
    "constant",
    "poly",
    "poly_time",
    "normalized",
    "normalized_sgd",
];

/// A library enum that a config key names by value (`sde.models`, `sde.scheme`,
/// `sde.increments`, `run.observables`): its values and their names, which are also the
/// serialized form. The library owns both.
pub trait Named: Copy + PartialEq + 'static {
    /// Every value, in the order the messages list them.
    fn all() -> &'static [Self];
    /// The config name.
    fn config_name(self) -> &'static str;
}

macro_rules! named {
    ($($t:ty),*) => {$(
        impl Named for $t {
            fn all() -> &'static [Self] {
                &<$t>::ALL
            }
            fn config_name(self) -> &'static str {
                self.name()
            }
        }
    )*};
}
named!(SdeModel, SchemeKind, IncrementKind, Observable);

/// The config names of every value of `T` (e.g. `names::<SchemeKind>()`: the values of
/// `sde.scheme`).
pub fn names<T: Named>() -> Vec<&'static str> {
    T::all().iter().map(|t| t.config_name()).collect()
}

const ROOT_KEYS: &[&str] = &[
    "name",
    "seed",
    "loss",
    "agents",
    "noise",
    "optimizer",
    "schedule",
    "sde",
    "run",
];
const AGENTS_KEYS: &[&str] = &["n"];
const SDE_KEYS: &[&str] = &["models", "scheme", "substeps", "max_substeps", "increments"];
const RUN_KEYS: &[&str] = &[
    "horizon",
    "etas",
    "paths",
    "observables",
    "diverge_above",
    "common_random_numbers",
    "exact_reference",
    "quantiles",
    "x0_scales",
];

/// Default `seed`.
pub const DEFAULT_SEED: u64 = 0;
/// Default `agents.n`.
pub const DEFAULT_AGENTS: usize = 1;
/// Substeps of `sdelab run` (trajectories) when `sde.substeps` is not given. Weak-error studies
/// choose their own per point instead (refining until the integrator's bias is negligible).
pub const DEFAULT_RUN_SUBSTEPS: usize = 8;
/// Default `sde.max_substeps`: the cap of the automatic refinement.
pub const DEFAULT_MAX_SUBSTEPS: usize = compare::study::DEFAULT_MAX_SUBSTEPS;
/// Default `run.diverge_above`.
pub const DEFAULT_DIVERGE_ABOVE: f64 = 1e8;
/// Default `run.quantiles`.
pub const DEFAULT_QUANTILES: [f64; 3] = [0.1, 0.5, 0.9];
/// Largest `agents.n` (a guard against typos; every agent draws a gradient per iteration).
pub const MAX_AGENTS: usize = 1_000_000;
/// Largest `loss.samples` of `least_squares` (the design matrix is held in memory).
pub const MAX_SAMPLES: usize = 10_000_000;
/// Largest number of iterations `floor(horizon/eta)` per learning rate (statistics are kept per
/// iteration, so this bounds memory as well as time).
pub const MAX_ITERATIONS: usize = 10_000_000;

// ---------------------------------------------------------------------------------------------
// Typed configuration
// ---------------------------------------------------------------------------------------------

/// One experiment, as read from a TOML file. Every optional key has its default filled in.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExperimentConfig {
    /// `name` (string, required): experiment name, used for the output folder name. Letters,
    /// digits, `-`, `_` and `.`; not starting with `.`; at most 100 characters.
    pub name: String,
    /// `seed` (integer ≥ 0, default 0): master seed; every random stream is derived from it.
    pub seed: u64,
    /// `[loss]` (required): the objective `f` and the starting point `x0`.
    pub loss: LossSpec,
    /// `[agents]` (optional): the number of agents `N`.
    pub agents: AgentsSpec,
    /// `[noise]` (required): gradient noise, shared by all agents or one table per agent.
    pub noise: NoiseSpec,
    /// `[optimizer]` (required): the discrete algorithm and its compressor.
    pub optimizer: OptimizerSpec,
    /// `[schedule]` (optional, default constant): the learning-rate multiplier `η_k`.
    pub schedule: ScheduleSpec,
    /// `[sde]` (optional): which SDE models to compare against and how to integrate them.
    pub sde: SdeSpec,
    /// `[run]` (required): horizon, learning rates, paths, observables.
    pub run: RunSpec,
}

/// `[loss]`: the objective `f` and the starting point. `x0` fixes the dimension `d`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LossSpec {
    /// `loss.x0` (list of numbers, required, non-empty): the starting point `x_0 = X_0`; its length
    /// is the dimension `d`.
    pub x0: Vec<f64>,
    /// `loss.kind` and its parameters.
    #[serde(flatten)]
    pub kind: LossKind,
}

/// `loss.kind` and its parameters.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LossKind {
    /// `kind = "quadratic"`: `f(x) = ½ Σ_j diag_j x_j²`.
    Quadratic {
        /// `loss.diag` (list of d numbers ≥ 0, required): the Hessian diagonal.
        diag: Vec<f64>,
    },
    /// `kind = "quadratic_full"`: `f(x) = ½ xᵀ A x` with a symmetric positive semi-definite `A`.
    QuadraticFull {
        /// `loss.matrix` (list of d lists of d numbers, required): the Hessian `A`, row by row;
        /// symmetric and positive semi-definite.
        matrix: Vec<Vec<f64>>,
    },
    /// `kind = "quartic"`: `f(x) = Σ_j coeffs_j x_j⁴ / 4`, (L0, L1)-smooth but not L-smooth.
    Quartic {
        /// `loss.coeffs` (list of d numbers ≥ 0, default all ones): the quartic coefficients.
        coeffs: Vec<f64>,
    },
    /// `kind = "mixed"`: `f(x) = Σ_j (diag_j x_j²/2 + quartic_j x_j⁴/4)`.
    Mixed {
        /// `loss.diag` (list of d numbers ≥ 0, required): quadratic coefficients.
        diag: Vec<f64>,
        /// `loss.quartic` (list of d numbers ≥ 0, required): quartic coefficients.
        quartic: Vec<f64>,
    },
    /// `kind = "least_squares"`: `f(x) = ‖A x − y‖² / (2 samples)` with a random Gaussian design
    /// `A` (samples × d) and targets `y = A x* + noise·ε`, generated from `loss.seed` by the models
    /// crate.
    LeastSquares {
        /// `loss.samples` (integer ≥ 1, required): number of rows of the design matrix.
        samples: usize,
        /// `loss.seed` (integer ≥ 0, required): seed of the synthetic data (independent of the
        /// experiment seed, so the same data can be reused across experiments).
        seed: u64,
        /// `loss.noise` (number ≥ 0, default 0): standard deviation of the label noise `ε`.
        noise: f64,
    },
}

/// `[agents]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AgentsSpec {
    /// `agents.n` (integer ≥ 1, default 1): the number of agents `N`.
    pub n: usize,
}

/// `[noise]`: either one noise model for every agent (keys directly in `[noise]`), or one
/// `[[noise.agents]]` table per agent (exactly `agents.n` of them, and no other key in `[noise]`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum NoiseSpec {
    /// The same noise model for every agent: `[noise] kind = ...`.
    Shared(NoiseModel),
    /// One noise model per agent: `[[noise.agents]]`, repeated `agents.n` times.
    PerAgent {
        /// `noise.agents` (list of `agents.n` tables, each like a shared `[noise]`).
        agents: Vec<NoiseModel>,
    },
}

/// The gradient noise `Z_i(x)` of one agent (MATH.md §1).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum NoiseModel {
    /// `kind = "gaussian"`: `Z_j = s_j N_j`, `N_j ~ N(0, 1)` iid, with the scale
    /// `s_j = scale_j √(sigma0² + sigma1² ‖∇f(x)‖²)`, i.e. `Cov Z = (sigma0² + sigma1² ‖∇f‖²)
    /// diag(scale²)` (affine variance, MATH.md §1.2).
    Gaussian {
        /// `sigma0` (number ≥ 0, required): the constant part of the standard deviation.
        sigma0: f64,
        /// `sigma1` (number ≥ 0, default 0): the gradient-proportional part.
        sigma1: f64,
        /// `scale` (list of d numbers ≥ 0, default all ones): per-coordinate multiplier of the
        /// standard deviation.
        scale: Vec<f64>,
    },
    /// `kind = "student_t"`: `Z_j = s_j T_j` with independent `T_j ~ t_nu` (MATH.md §1.3) and the
    /// same scale as the Gaussian, `s_j = scale_j √(sigma0² + sigma1² ‖∇f(x)‖²)`.
    StudentT {
        /// `nu` (number > 0, required): degrees of freedom; `nu = 1` is Cauchy. D(C)SGD needs
        /// `nu > 2` (finite covariance); DSignSGD accepts any `nu > 0`.
        nu: f64,
        /// `scale` (number > 0 or list of d numbers > 0, required): per-coordinate scale factors;
        /// a single number is used for every coordinate (stored expanded to d entries).
        scale: Vec<f64>,
        /// `sigma0` (number ≥ 0, default 1): constant part of the scale.
        sigma0: f64,
        /// `sigma1` (number ≥ 0, default 0): gradient-proportional part of the scale (`σ_{1,i}`
        /// of MATH.md §1.3/§6.4, [RECONSTRUCTED]; 0 = fixed scale).
        sigma1: f64,
    },
}

/// `[optimizer]`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OptimizerSpec {
    /// `optimizer.kind` (required): `dsgd`, `dcsgd` or `dsignsgd` (MATH.md §3).
    pub kind: OptimizerKind,
    /// `optimizer.compressor` (table; required for `dcsgd`; for `dsgd`/`dsignsgd` only
    /// `{ kind = "identity" }` is allowed, and it is the default).
    pub compressor: CompressorSpec,
}

/// `optimizer.kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerKind {
    /// Distributed SGD: `x_{k+1} = x_k − η η_k (1/N) Σ_i g_i(x_k)`.
    Dsgd,
    /// Distributed compressed SGD: each agent sends `C(g_i)`.
    Dcsgd,
    /// Distributed SignSGD: each agent sends `sign(g_i)`.
    Dsignsgd,
}

/// `optimizer.compressor` (DCSGD), MATH.md §3.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CompressorSpec {
    /// `kind = "identity"`: no compression, `ω = 0`.
    Identity,
    /// `kind = "bernoulli"`: keep each coordinate with probability `p`, rescaled by `1/p`;
    /// `ω = 1/p − 1`.
    Bernoulli {
        /// `p` (number in (0, 1], required): keep probability.
        p: f64,
    },
    /// `kind = "rand_k"`: keep a uniform random subset of `k` coordinates, rescaled by `d/k`;
    /// `ω = d/k − 1`.
    RandK {
        /// `k` (integer in [1, d], required): coordinates kept.
        k: usize,
    },
    /// `kind = "qsgd"`: unbiased stochastic quantization to `levels` levels per sign (Alistarh et
    /// al. 2017); `ω = min(d/levels², √d/levels)`.
    Qsgd {
        /// `levels` (integer ≥ 1, required): quantization levels `s`.
        levels: usize,
    },
}

/// `[schedule]`: the multiplier `η_k` of the base learning rate `η` (MATH.md §3); the step taken
/// is `η·η_k`, and the SDEs use `η_t = η_{t/η}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ScheduleSpec {
    /// `kind = "constant"`: `η_k = 1`.
    Constant,
    /// `kind = "poly"`: `η_k = (k + 1)^(−power)`; `power = 0.5` is P1v2's Robbins–Monro choice.
    Poly {
        /// `power` (number ≥ 0, required).
        power: f64,
    },
    /// `kind = "poly_time"`: `η_t = (1 + t/t0)^(−power)` on SDE time (independent of `η`), and
    /// `η_k = η_{kη}`: smooth on the SDE time scale, so (B) keeps weak order 2 (MATH.md §5.1).
    PolyTime {
        /// `power` (number ≥ 0, required).
        power: f64,
        /// `t0` (number > 0, required): the time scale in SDE time.
        t0: f64,
    },
    /// `kind = "normalized"`: the adaptive, gradient-norm schedule of MATH.md §6.3
    /// ([RECONSTRUCTED]): `η_k = c · 2ε / [(L0 + L1 ‖∇f(x_k)‖)(1 + A) + L1 B]`.
    Normalized {
        /// `c` (number > 0, required): overall multiplier.
        c: f64,
        /// `epsilon` (number in (0, 1), required): the `ε` of the condition.
        epsilon: f64,
        /// `l0` (number ≥ 0, default from the loss): `L0` of (L0, L1)-smoothness. `None` only for
        /// `least_squares`, whose constant depends on generated data (filled in by the run).
        /// `L0 (1 + A) + L1 B` must be positive (else `η_k` is infinite at a stationary point).
        #[serde(skip_serializing_if = "Option::is_none")]
        l0: Option<f64>,
        /// `l1` (number ≥ 0, default from the loss): `L1`; `None` as for `l0`.
        #[serde(skip_serializing_if = "Option::is_none")]
        l1: Option<f64>,
        /// `a` (number ≥ 0, default computed): `A = (ω + d (σ1²ω + σ1²)‾)/N`.
        a: f64,
        /// `b` (number ≥ 0, default computed): `B = d (σ0² + σ0²ω)‾/N`.
        b: f64,
    },
    /// `kind = "normalized_sgd"`: plain normalized SGD baseline, `η_k = c / max(‖∇f(x_k)‖, δ)`.
    NormalizedSgd {
        /// `c` (number > 0, required).
        c: f64,
        /// `delta` (number > 0, required): floor on the gradient norm; keeps the step finite at a
        /// stationary point.
        delta: f64,
    },
}

/// `[sde]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SdeSpec {
    /// `sde.models` (list, default all three, no repeats): which SDE models to compare with.
    pub models: Vec<SdeModel>,
    /// `sde.scheme` (default `weak2`): the integrator.
    pub scheme: SchemeKind,
    /// `sde.substeps` (integer ≥ 1, optional): SDE steps per learning-rate step (`Δ = η/substeps`).
    /// Unset: `weak-error` chooses them per point (refining until the integrator's bias is below a
    /// quarter of the point's interval) and `run` uses 8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub substeps: Option<usize>,
    /// `sde.max_substeps` (integer ≥ 2, default 256): the cap of that refinement.
    pub max_substeps: usize,
    /// `sde.increments` (default `gaussian`): distribution of the Brownian increments.
    pub increments: IncrementKind,
}

/// `[run]`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunSpec {
    /// `run.horizon` (number > 0, required): the horizon `T` in SDE time. The discrete run has
    /// `floor(T/η)` iterations (`compare::study::iterations`, which tolerates a quotient a
    /// rounding error below an integer); `T/η` need not be an integer.
    pub horizon: f64,
    /// `run.etas` (list of numbers in (0, horizon], required, non-empty, no repeats): base learning
    /// rates. `weak-error` uses all of them (at least 2); `run` uses the first.
    pub etas: Vec<f64>,
    /// `run.paths` (integer ≥ 2, required): Monte Carlo paths per learning rate and model.
    pub paths: usize,
    /// `run.observables` (list, default all four, no repeats): the test functions `g`.
    pub observables: Vec<Observable>,
    /// `run.diverge_above` (number > 0, default 1e8): a path whose loss exceeds this (or becomes
    /// non-finite) is counted as diverged and kept out of the statistics.
    pub diverge_above: f64,
    /// `run.common_random_numbers` (bool, default true): drive the discrete algorithm and the SDEs
    /// with the same random numbers where the noise allows it (variance reduction).
    pub common_random_numbers: bool,
    /// `run.exact_reference` (bool, default false): use closed-form expectations for the SDE side
    /// where the build has them (e.g. the quadratic/Gaussian cases of MATH.md §7) instead of
    /// simulating it.
    pub exact_reference: bool,
    /// `run.quantiles` (list of numbers in (0, 1), default [0.1, 0.5, 0.9], no repeats, may be
    /// empty): quantile trajectories reported by `sdelab run`.
    pub quantiles: Vec<f64>,
    /// `run.x0_scales` (list of numbers > 0, default [1], no repeats): `sdelab stability` runs its
    /// sweep once per factor, from `x0_scale · loss.x0`; the other subcommands ignore it.
    pub x0_scales: Vec<f64>,
}

// ---------------------------------------------------------------------------------------------
// Names and small helpers on the typed values
// ---------------------------------------------------------------------------------------------

impl OptimizerKind {
    /// The config name (`dsgd`, `dcsgd`, `dsignsgd`).
    pub fn name(self) -> &'static str {
        match self {
            OptimizerKind::Dsgd => "dsgd",
            OptimizerKind::Dcsgd => "dcsgd",
            OptimizerKind::Dsignsgd => "dsignsgd",
        }
    }
}

impl fmt::Display for OptimizerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

// ---------------------------------------------------------------------------------------------
// The `models` objects the typed values describe. Their constructors validate again and name the
// parameter in their errors; the numbers the configuration derives (the (L0, L1) constants, ω, the
// effective noise constants, A and B) are computed by them, never re-implemented here.
// ---------------------------------------------------------------------------------------------

impl LossSpec {
    /// The dimension `d` (the length of `x0`).
    pub fn dim(&self) -> usize {
        self.x0.len()
    }

    /// The config name of the kind.
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            LossKind::Quadratic { .. } => "quadratic",
            LossKind::QuadraticFull { .. } => "quadratic_full",
            LossKind::Quartic { .. } => "quartic",
            LossKind::Mixed { .. } => "mixed",
            LossKind::LeastSquares { .. } => "least_squares",
        }
    }

    /// The `models` loss (`least_squares` generates its data here: `O(samples · d²)`).
    pub fn to_model(&self) -> Result<models::LossKind, ModelError> {
        Ok(match &self.kind {
            LossKind::Quadratic { diag } => DiagonalQuadratic::new(diag.clone())?.into(),
            LossKind::QuadraticFull { matrix } => Quadratic::new(matrix.clone())?.into(),
            LossKind::Quartic { coeffs } => Quartic::new(coeffs.clone())?.into(),
            LossKind::Mixed { diag, quartic } => {
                MixedQuadraticQuartic::new(diag.clone(), quartic.clone())?.into()
            }
            LossKind::LeastSquares {
                samples,
                seed,
                noise,
            } => LeastSquares::synthetic(*samples, self.dim(), *noise, *seed)?.into(),
        })
    }

    /// The (L0, L1)-smoothness constants `‖∇²f(x)‖₂ ≤ L0 + L1 ‖∇f(x)‖₂` (MATH.md §2) of the models
    /// loss ([`Loss::smoothness`]), where they follow from the parameters alone; `None` for
    /// `least_squares`, whose constants depend on the generated data (the run takes them from the
    /// loss it builds).
    pub fn smoothness(&self) -> Result<Option<(f64, f64)>, ModelError> {
        if let LossKind::LeastSquares { .. } = self.kind {
            return Ok(None);
        }
        let s = self.to_model()?.smoothness();
        Ok(Some((s.l0, s.l1)))
    }
}

impl NoiseSpec {
    /// The noise models of agents `0..n`, expanded (a shared spec is repeated `n` times).
    pub fn per_agent(&self, n: usize) -> Vec<NoiseModel> {
        match self {
            NoiseSpec::Shared(m) => vec![m.clone(); n],
            NoiseSpec::PerAgent { agents } => agents.clone(),
        }
    }

    /// The distinct models with their key prefix (`noise` or `noise.agents[i]`).
    fn models_with_keys(&self) -> Vec<(String, &NoiseModel)> {
        match self {
            NoiseSpec::Shared(m) => vec![("noise".to_string(), m)],
            NoiseSpec::PerAgent { agents } => agents
                .iter()
                .enumerate()
                .map(|(i, m)| (format!("noise.agents[{i}]"), m))
                .collect(),
        }
    }
}

impl NoiseModel {
    /// The `models` noise, in dimension `d = scale.len()` (the parser stores `scale` expanded to
    /// `d` entries).
    pub fn to_model(&self) -> Result<models::NoiseModel, ModelError> {
        let (sigma0, sigma1) = self.sigmas();
        self.with_sigmas(sigma0, sigma1)
    }

    /// `(sigma0, sigma1)`.
    fn sigmas(&self) -> (f64, f64) {
        match *self {
            NoiseModel::Gaussian { sigma0, sigma1, .. }
            | NoiseModel::StudentT { sigma0, sigma1, .. } => (sigma0, sigma1),
        }
    }

    /// The `models` noise with this kind and scale but the given `sigma0`, `sigma1`.
    fn with_sigmas(&self, sigma0: f64, sigma1: f64) -> Result<models::NoiseModel, ModelError> {
        Ok(match self {
            NoiseModel::Gaussian { scale, .. } => {
                GaussianNoise::new(scale.len(), scale.clone(), sigma0, sigma1)?.into()
            }
            NoiseModel::StudentT { nu, scale, .. } => {
                StudentTNoise::new(scale.len(), *nu, scale.clone(), sigma0, sigma1)?.into()
            }
        })
    }

    /// Whether the noise has a finite covariance: Gaussian, or Student-t with `nu > 2` (the rule
    /// of `models::NoiseModel::has_finite_variance`, read off the parameters: building a
    /// Student-t sampler needs more of `nu` than being positive).
    pub fn has_finite_covariance(&self) -> bool {
        match self {
            NoiseModel::Gaussian { .. } => true,
            NoiseModel::StudentT { nu, .. } => *nu > 2.0,
        }
    }

    /// The effective constants `(σ0, σ1)` of the affine variance bound
    /// `‖Cov Z(x)‖_∞ ≤ σ0² + σ1² ‖∇f(x)‖²` (MATH.md §1.2), the tightest one; they enter the
    /// default `a`, `b` of the normalized schedule. `None` when the variance is infinite
    /// (Student-t, `nu ≤ 2`).
    ///
    /// `Var Z_j = κ_j (sigma0² + sigma1² ‖∇f‖²)`, where `κ_j` is the variance of the models noise
    /// with `sigma0 = 1`, `sigma1 = 0` (`scale_j²`, times `ν/(ν−2)` for Student-t), so
    /// `σk = sigmak · √(max_j κ_j)`. With Gaussian noise and the default `scale = 1` these are
    /// `sigma0`, `sigma1`.
    pub fn variance_bound(&self) -> Result<Option<(f64, f64)>, ModelError> {
        if !self.has_finite_covariance() {
            return Ok(None);
        }
        let unit = self.with_sigmas(1.0, 0.0)?;
        let d = unit.dim();
        let mut kappa = vec![0.0; d];
        if !unit.variance(&vec![0.0; d], &mut kappa) {
            return Ok(None);
        }
        let k = kappa.iter().fold(0.0f64, |m, &v| m.max(v)).sqrt();
        let (sigma0, sigma1) = self.sigmas();
        Ok(Some((sigma0 * k, sigma1 * k)))
    }
}

impl CompressorSpec {
    /// The config name of the kind.
    pub fn kind_name(&self) -> &'static str {
        match self {
            CompressorSpec::Identity => "identity",
            CompressorSpec::Bernoulli { .. } => "bernoulli",
            CompressorSpec::RandK { .. } => "rand_k",
            CompressorSpec::Qsgd { .. } => "qsgd",
        }
    }

    /// The `models` compressor for dimension `d`.
    pub fn to_model(&self, d: usize) -> Result<CompressorKind, ModelError> {
        Ok(match *self {
            CompressorSpec::Identity => CompressorKind::Identity(Identity),
            CompressorSpec::Bernoulli { p } => {
                CompressorKind::Bernoulli(BernoulliSparsifier::new(p)?)
            }
            CompressorSpec::RandK { k } => CompressorKind::RandK(RandK::new(k, d)?),
            CompressorSpec::Qsgd { levels } => {
                let levels = u32::try_from(levels).map_err(|_| {
                    ModelError::invalid("optimizer.compressor.levels", levels, "too large")
                })?;
                CompressorKind::Qsgd(Qsgd::new(levels)?)
            }
        })
    }

    /// The variance parameter `ω` in `E‖C(v) − v‖² ≤ ω ‖v‖²` for dimension `d`
    /// ([`Compressor::omega`] of the models compressor).
    pub fn omega(&self, d: usize) -> Result<f64, ModelError> {
        Ok(self.to_model(d)?.omega(d))
    }
}

impl ScheduleSpec {
    /// The config name of the kind.
    pub fn kind_name(&self) -> &'static str {
        match self {
            ScheduleSpec::Constant => "constant",
            ScheduleSpec::Poly { .. } => "poly",
            ScheduleSpec::PolyTime { .. } => "poly_time",
            ScheduleSpec::Normalized { .. } => "normalized",
            ScheduleSpec::NormalizedSgd { .. } => "normalized_sgd",
        }
    }
}

impl ExperimentConfig {
    /// Parse and validate a configuration from TOML text (a leading UTF-8 byte-order mark is
    /// ignored).
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let table: Table = text.parse().map_err(|e: toml::de::Error| ConfigError {
            key: String::new(),
            message: format!("invalid TOML: {}", e.to_string().trim_end()),
        })?;
        Self::from_table(&table)
    }

    /// Validate an already parsed TOML table.
    pub fn from_table(table: &Table) -> Result<Self, ConfigError> {
        parse_root(table)
    }

    /// Read, parse and validate a configuration file. Every error is [`CliError::BadInput`] and
    /// starts with the path: `cannot read config file "x.toml": No such file or directory (os
    /// error 2)`, `x.toml: run.etas[2] = -0.1: must be positive`.
    pub fn from_path(path: &Path) -> Result<Self, CliError> {
        let bytes = std::fs::read(path).map_err(|e| {
            CliError::BadInput(format!(
                "cannot read config file {:?}: {e}",
                path.display().to_string()
            ))
        })?;
        let text = String::from_utf8(bytes).map_err(|e| {
            CliError::BadInput(format!(
                "{}: not UTF-8 text (invalid byte at offset {})",
                path.display(),
                e.utf8_error().valid_up_to()
            ))
        })?;
        Self::from_toml_str(&text)
            .map_err(|e| CliError::BadInput(format!("{}: {}", path.display(), e.message)))
    }

    /// The dimension `d`.
    pub fn dim(&self) -> usize {
        self.loss.dim()
    }

    /// Extra checks for `sdelab weak-error`: at least two learning rates (an order is a slope).
    pub fn check_for_weak_error(&self) -> Result<(), ConfigError> {
        if self.run.etas.len() < 2 {
            return Err(ConfigError {
                key: "run.etas".into(),
                message: format!(
                    "run.etas = {}: weak-error needs at least 2 learning rates to fit an order",
                    show_f64_list(&self.run.etas)
                ),
            });
        }
        Ok(())
    }

    /// Extra checks for `sdelab run` (it uses `run.etas[0]`); currently nothing beyond parsing.
    pub fn check_for_run(&self) -> Result<(), ConfigError> {
        Ok(())
    }

    /// The configuration as TOML text (parses back to an equal value).
    pub fn to_toml_string(&self) -> Result<String, CliError> {
        toml::to_string(self)
            .map_err(|e| CliError::Failure(format!("cannot write config as TOML: {e}")))
    }
}

impl FromStr for ExperimentConfig {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_toml_str(s)
    }
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// A configuration error: the key path it concerns and the complete, user-facing message (which
/// starts with that key path and, where there is one, the offending value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The key path, e.g. `run.etas[2]`; empty for a TOML syntax error.
    pub key: String,
    /// The message, e.g. `run.etas[2] = -0.1: must be positive`.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

impl From<ConfigError> for CliError {
    fn from(e: ConfigError) -> Self {
        CliError::BadInput(e.message)
    }
}

type Res<T> = Result<T, ConfigError>;

fn err_missing(key: &str, hint: &str) -> ConfigError {
    ConfigError {
        key: key.to_string(),
        message: format!("{key}: missing key{hint}"),
    }
}

fn err_msg(key: &str, message: String) -> ConfigError {
    ConfigError {
        key: key.to_string(),
        message,
    }
}

const SHOW_MAX: usize = 60;

/// A short TOML-like rendering of a value for error messages.
fn show(v: &Value) -> String {
    let mut s = String::new();
    render(v, &mut s);
    if s.chars().count() > SHOW_MAX {
        let mut t: String = s.chars().take(SHOW_MAX).collect();
        t.push_str("...");
        t
    } else {
        s
    }
}

fn render(v: &Value, out: &mut String) {
    // Stop early on huge values; the result is truncated anyway.
    if out.len() > 4 * SHOW_MAX {
        return;
    }
    match v {
        Value::String(s) => render_str(s, out),
        Value::Integer(i) => out.push_str(&i.to_string()),
        Value::Float(x) => out.push_str(&show_f64(*x)),
        Value::Boolean(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Datetime(d) => out.push_str(&d.to_string()),
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                render(x, out);
                if out.len() > 4 * SHOW_MAX {
                    break;
                }
            }
            out.push(']');
        }
        Value::Table(t) => {
            if t.is_empty() {
                out.push_str("{}");
                return;
            }
            out.push_str("{ ");
            for (i, (k, x)) in t.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&show_key(k));
                out.push_str(" = ");
                render(x, out);
                if out.len() > 4 * SHOW_MAX {
                    break;
                }
            }
            out.push_str(" }");
        }
    }
}

fn render_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A key as it would be written in TOML: bare if possible, quoted otherwise.
fn show_key(k: &str) -> String {
    if !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        k.to_string()
    } else {
        let mut s = String::new();
        render_str(k, &mut s);
        s
    }
}

fn show_f64(x: f64) -> String {
    if x.is_nan() {
        "nan".into()
    } else if x.is_infinite() {
        if x > 0.0 { "inf" } else { "-inf" }.into()
    } else {
        format!("{x:?}")
    }
}

/// `x` rounded to 6 significant digits (for computed values in messages).
fn round_sig(x: f64) -> f64 {
    format!("{x:.5e}").parse().unwrap_or(x)
}

fn show_f64_list(xs: &[f64]) -> String {
    let v = Value::Array(xs.iter().map(|x| Value::Float(*x)).collect());
    show(&v)
}

fn one_of(options: &[&str]) -> String {
    options.join(", ")
}

/// Levenshtein distance, for "did you mean" hints.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

fn did_you_mean(word: &str, options: &[&str]) -> String {
    if word.chars().count() > 64 {
        return String::new();
    }
    let lower = word.to_ascii_lowercase();
    options
        .iter()
        .map(|o| (edit_distance(&lower, o), *o))
        .filter(|(dist, o)| *dist <= 2.min(o.len() / 2).max(1))
        .min_by_key(|(dist, _)| *dist)
        .map(|(_, o)| format!("; did you mean \"{o}\"?"))
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Untyped access with key paths
// ---------------------------------------------------------------------------------------------

/// A table at a key path.
struct Section<'a> {
    path: String,
    table: &'a Table,
}

/// A value at a key path.
struct Field<'a> {
    key: String,
    value: &'a Value,
}

impl<'a> Section<'a> {
    fn key(&self, k: &str) -> String {
        let k = show_key(k);
        if self.path.is_empty() {
            k
        } else {
            format!("{}.{k}", self.path)
        }
    }

    fn opt(&self, k: &str) -> Option<Field<'a>> {
        self.table.get(k).map(|value| Field {
            key: self.key(k),
            value,
        })
    }

    fn req(&self, k: &str) -> Res<Field<'a>> {
        self.req_hint(k, "")
    }

    fn req_hint(&self, k: &str, hint: &str) -> Res<Field<'a>> {
        self.opt(k).ok_or_else(|| err_missing(&self.key(k), hint))
    }

    /// Reject any key not in `allowed`. `context` is appended to "unknown key", e.g.
    /// ` for loss.kind = "quadratic"`.
    fn check_keys(&self, allowed: &[&str], context: &str) -> Res<()> {
        for (k, v) in self.table {
            if !allowed.contains(&k.as_str()) {
                let key = self.key(k);
                return Err(err_msg(
                    &key,
                    format!(
                        "{key} = {}: unknown key{context} (expected one of {}){}",
                        show(v),
                        one_of(allowed),
                        did_you_mean(k, allowed)
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The `kind` key, checked against `options`.
    fn kind(&self, options: &'static [&'static str]) -> Res<&'static str> {
        let hint = format!(" (expected one of {})", one_of(options));
        let f = self.req_hint("kind", &hint)?;
        f.choice(options, "kind")
    }

    fn opt_section(&self, k: &str) -> Res<Option<Section<'a>>> {
        self.opt(k).map(|f| f.table()).transpose()
    }

    fn req_section(&self, k: &str) -> Res<Section<'a>> {
        self.req(k)?.table()
    }
}

impl<'a> Field<'a> {
    fn err(&self, problem: impl fmt::Display) -> ConfigError {
        err_msg(
            &self.key,
            format!("{} = {}: {problem}", self.key, show(self.value)),
        )
    }

    fn number(&self) -> Res<f64> {
        match self.value {
            Value::Float(x) => Ok(*x),
            Value::Integer(i) => Ok(*i as f64),
            _ => Err(self.err("expected a number")),
        }
    }

    fn finite(&self) -> Res<f64> {
        let x = self.number()?;
        if x.is_finite() {
            Ok(x)
        } else {
            Err(self.err("must be a finite number"))
        }
    }

    fn positive(&self) -> Res<f64> {
        let x = self.finite()?;
        if x > 0.0 {
            Ok(x)
        } else {
            Err(self.err("must be positive"))
        }
    }

    fn non_negative(&self) -> Res<f64> {
        let x = self.finite()?;
        if x >= 0.0 {
            Ok(x)
        } else {
            Err(self.err("must not be negative"))
        }
    }

    fn integer(&self) -> Res<i64> {
        // 2^53: beyond this a float no longer represents every integer.
        const EXACT: f64 = 9_007_199_254_740_992.0;
        match self.value {
            Value::Integer(i) => Ok(*i),
            Value::Float(x) if x.is_finite() && x.fract() == 0.0 && x.abs() <= EXACT => {
                Ok(*x as i64)
            }
            _ => Err(self.err("expected an integer")),
        }
    }

    /// An integer ≥ `min` that fits in `usize`.
    fn count(&self, min: u64) -> Res<usize> {
        let i = self.integer()?;
        if i < 0 || (i as u64) < min {
            return Err(self.err(format!("must be at least {min}")));
        }
        usize::try_from(i).map_err(|_| self.err("too large"))
    }

    /// An integer in `[min, max]`.
    fn count_at_most(&self, min: u64, max: usize) -> Res<usize> {
        let n = self.count(min)?;
        if n > max {
            return Err(self.err(format!("must be at most {max}")));
        }
        Ok(n)
    }

    fn seed(&self) -> Res<u64> {
        let i = self.integer()?;
        u64::try_from(i).map_err(|_| self.err("must not be negative"))
    }

    fn string(&self) -> Res<&'a str> {
        match self.value {
            Value::String(s) => Ok(s),
            _ => Err(self.err("expected a string")),
        }
    }

    fn boolean(&self) -> Res<bool> {
        match self.value {
            Value::Boolean(b) => Ok(*b),
            _ => Err(self.err("expected a boolean (true or false)")),
        }
    }

    fn list(&self) -> Res<Vec<Field<'a>>> {
        match self.value {
            Value::Array(a) => Ok(a
                .iter()
                .enumerate()
                .map(|(i, value)| Field {
                    key: format!("{}[{i}]", self.key),
                    value,
                })
                .collect()),
            _ => Err(self.err("expected a list")),
        }
    }

    fn nonempty_list(&self) -> Res<Vec<Field<'a>>> {
        let l = self.list()?;
        if l.is_empty() {
            Err(self.err("must not be empty"))
        } else {
            Ok(l)
        }
    }

    /// A non-empty list of numbers, each checked by `each`.
    fn numbers(&self, each: impl Fn(&Field<'a>) -> Res<f64>) -> Res<Vec<f64>> {
        self.nonempty_list()?.iter().map(each).collect()
    }

    /// A non-empty list of numbers of length `d` (the length of `loss.x0`).
    fn numbers_d(&self, d: usize, each: impl Fn(&Field<'a>) -> Res<f64>) -> Res<Vec<f64>> {
        let xs = self.numbers(each)?;
        if xs.len() != d {
            return Err(err_msg(
                &self.key,
                format!(
                    "{} has length {} but loss.x0 has length {d}",
                    self.key,
                    xs.len()
                ),
            ));
        }
        Ok(xs)
    }

    fn table(&self) -> Res<Section<'a>> {
        match self.value {
            Value::Table(t) => Ok(Section {
                path: self.key.clone(),
                table: t,
            }),
            _ => Err(self.err("expected a table")),
        }
    }

    /// A string that must be one of `options`; `what` names the category in the message.
    fn choice(&self, options: &'static [&'static str], what: &str) -> Res<&'static str> {
        let s = self.string()?;
        options
            .iter()
            .find(|o| **o == s)
            .copied()
            .ok_or_else(|| self.unknown(s, options, what))
    }

    /// A string naming a value of the library enum `T`.
    fn named<T: Named>(&self, what: &str) -> Res<T> {
        let s = self.string()?;
        T::all()
            .iter()
            .copied()
            .find(|t| t.config_name() == s)
            .ok_or_else(|| self.unknown(s, &names::<T>(), what))
    }

    fn unknown(&self, s: &str, options: &[&str], what: &str) -> ConfigError {
        self.err(format!(
            "unknown {what} (expected one of {}){}",
            one_of(options),
            did_you_mean(s, options)
        ))
    }

    /// A non-empty list of distinct values of the library enum `T`.
    fn named_list<T: Named>(&self, what: &str) -> Res<Vec<T>> {
        let items = self.nonempty_list()?;
        let mut out: Vec<T> = Vec::with_capacity(items.len());
        for f in &items {
            let t = f.named(what)?;
            if out.contains(&t) {
                return Err(f.err("listed twice"));
            }
            out.push(t);
        }
        Ok(out)
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing, section by section
// ---------------------------------------------------------------------------------------------

fn parse_root(table: &Table) -> Res<ExperimentConfig> {
    let root = Section {
        path: String::new(),
        table,
    };
    root.check_keys(ROOT_KEYS, "")?;

    let name = parse_name(&root.req("name")?)?;
    let seed = match root.opt("seed") {
        Some(f) => f.seed()?,
        None => DEFAULT_SEED,
    };
    let loss = parse_loss(&root.req_section("loss")?)?;
    let d = loss.dim();
    let agents = match root.opt_section("agents")? {
        Some(s) => {
            s.check_keys(AGENTS_KEYS, "")?;
            AgentsSpec {
                n: s.req("n")?.count_at_most(1, MAX_AGENTS)?,
            }
        }
        None => AgentsSpec { n: DEFAULT_AGENTS },
    };
    let noise = parse_noise(&root.req_section("noise")?, d, agents.n)?;
    let optimizer = parse_optimizer(&root.req_section("optimizer")?, d)?;
    check_noise_for_optimizer(&noise, optimizer.kind)?;
    let schedule = match root.opt_section("schedule")? {
        Some(s) => parse_schedule(&s, &loss, &noise, &optimizer, agents.n)?,
        None => ScheduleSpec::Constant,
    };
    let sde = match root.opt_section("sde")? {
        Some(s) => parse_sde(&s)?,
        None => default_sde(),
    };
    let run = parse_run(&root.req_section("run")?)?;
    if run.exact_reference {
        check_exact_reference(&loss, &noise, &optimizer, &schedule)?;
    }
    Ok(ExperimentConfig {
        name,
        seed,
        loss,
        agents,
        noise,
        optimizer,
        schedule,
        sde,
        run,
    })
}

fn parse_name(f: &Field) -> Res<String> {
    let s = f.string()?;
    let ok_chars = s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if s.is_empty() || !ok_chars || s.starts_with('.') || s.len() > 100 {
        return Err(f.err(
            "must be a plain folder name: 1 to 100 letters, digits, '-', '_' or '.', not starting with '.'",
        ));
    }
    Ok(s.to_string())
}

fn parse_loss(s: &Section) -> Res<LossSpec> {
    let kind = s.kind(LOSS_KINDS)?;
    let allowed: &[&str] = match kind {
        "quadratic" => &["kind", "x0", "diag"],
        "quadratic_full" => &["kind", "x0", "matrix"],
        "quartic" => &["kind", "x0", "coeffs"],
        "mixed" => &["kind", "x0", "diag", "quartic"],
        _ => &["kind", "x0", "samples", "seed", "noise"],
    };
    s.check_keys(allowed, &format!(" for loss.kind = \"{kind}\""))?;
    let x0 = s.req("x0")?.numbers(Field::finite)?;
    let d = x0.len();
    let kind = match kind {
        "quadratic" => LossKind::Quadratic {
            diag: s.req("diag")?.numbers_d(d, Field::non_negative)?,
        },
        "quadratic_full" => LossKind::QuadraticFull {
            matrix: parse_matrix(&s.req("matrix")?, d)?,
        },
        "quartic" => LossKind::Quartic {
            coeffs: match s.opt("coeffs") {
                Some(f) => f.numbers_d(d, Field::non_negative)?,
                None => vec![1.0; d],
            },
        },
        "mixed" => LossKind::Mixed {
            diag: s.req("diag")?.numbers_d(d, Field::non_negative)?,
            quartic: s.req("quartic")?.numbers_d(d, Field::non_negative)?,
        },
        _ => LossKind::LeastSquares {
            samples: s.req("samples")?.count_at_most(1, MAX_SAMPLES)?,
            seed: s.req("seed")?.seed()?,
            noise: match s.opt("noise") {
                Some(f) => f.non_negative()?,
                None => 0.0,
            },
        },
    };
    Ok(LossSpec { x0, kind })
}

fn parse_matrix(f: &Field, d: usize) -> Res<Vec<Vec<f64>>> {
    let rows = f.nonempty_list()?;
    if rows.len() != d {
        return Err(err_msg(
            &f.key,
            format!(
                "{} has {} rows but loss.x0 has length {d} (the matrix must be d x d)",
                f.key,
                rows.len()
            ),
        ));
    }
    let mut m = Vec::with_capacity(d);
    for row in &rows {
        m.push(row.numbers_d(d, Field::finite)?);
    }
    let scale = m.iter().flatten().fold(1.0f64, |a, x| a.max(x.abs()));
    for (i, row) in m.iter().enumerate() {
        for (j, &x) in row.iter().enumerate().skip(i + 1) {
            let y = m[j][i];
            if (x - y).abs() > 1e-12 * scale {
                return Err(err_msg(
                    &f.key,
                    format!(
                        "{k}[{i}][{j}] = {} but {k}[{j}][{i}] = {}: the matrix must be symmetric",
                        show_f64(x),
                        show_f64(y),
                        k = f.key
                    ),
                ));
            }
        }
    }
    let min = smallest_eigenvalue(&m);
    if min < -1e-10 * scale {
        return Err(err_msg(
            &f.key,
            format!(
                "{}: not positive semi-definite (smallest eigenvalue {}), so f is unbounded below",
                f.key,
                show_f64(round_sig(min))
            ),
        ));
    }
    Ok(m)
}

fn parse_noise(s: &Section, d: usize, n: usize) -> Res<NoiseSpec> {
    if let Some(f) = s.opt("agents") {
        if let Some((k, _)) = s.table.iter().find(|(k, _)| k.as_str() != "agents") {
            let key = s.key(k);
            return Err(err_msg(
                &key,
                format!(
                    "{key}: not allowed together with noise.agents (give either one shared noise in [noise], \
                     or one [[noise.agents]] table per agent)"
                ),
            ));
        }
        let items = f.nonempty_list()?;
        if items.len() != n {
            return Err(err_msg(
                &f.key,
                format!(
                    "noise.agents has {} entries but agents.n = {n} (give one per agent)",
                    items.len()
                ),
            ));
        }
        let agents = items
            .iter()
            .map(|it| parse_noise_model(&it.table()?, d))
            .collect::<Res<Vec<_>>>()?;
        Ok(NoiseSpec::PerAgent { agents })
    } else {
        Ok(NoiseSpec::Shared(parse_noise_model(s, d)?))
    }
}

fn parse_noise_model(s: &Section, d: usize) -> Res<NoiseModel> {
    let kind = s.kind(NOISE_KINDS)?;
    let context = format!(" for {} = \"{kind}\"", s.key("kind"));
    if kind == "gaussian" {
        s.check_keys(&["kind", "sigma0", "sigma1", "scale"], &context)?;
        Ok(NoiseModel::Gaussian {
            sigma0: s.req("sigma0")?.non_negative()?,
            sigma1: match s.opt("sigma1") {
                Some(f) => f.non_negative()?,
                None => 0.0,
            },
            scale: match s.opt("scale") {
                Some(f) => f.numbers_d(d, Field::non_negative)?,
                None => vec![1.0; d],
            },
        })
    } else {
        s.check_keys(&["kind", "nu", "scale", "sigma0", "sigma1"], &context)?;
        let nu = s.req("nu")?.positive()?;
        let f = s.req("scale")?;
        let scale = match f.value {
            Value::Array(_) => f.numbers_d(d, Field::positive)?,
            Value::Integer(_) | Value::Float(_) => vec![f.positive()?; d],
            _ => return Err(f.err("expected a number or a list of numbers")),
        };
        let sigma0 = match s.opt("sigma0") {
            Some(f) => f.non_negative()?,
            None => 1.0,
        };
        let sigma1 = match s.opt("sigma1") {
            Some(f) => f.non_negative()?,
            None => 0.0,
        };
        Ok(NoiseModel::StudentT {
            nu,
            scale,
            sigma0,
            sigma1,
        })
    }
}

fn parse_optimizer(s: &Section, d: usize) -> Res<OptimizerSpec> {
    let kind = match s.kind(OPTIMIZER_KINDS)? {
        "dsgd" => OptimizerKind::Dsgd,
        "dcsgd" => OptimizerKind::Dcsgd,
        _ => OptimizerKind::Dsignsgd,
    };
    s.check_keys(&["kind", "compressor"], "")?;
    let compressor =
        match s.opt("compressor") {
            Some(f) => parse_compressor(&f.table()?, d)?,
            None if kind == OptimizerKind::Dcsgd => return Err(err_missing(
                "optimizer.compressor",
                " (dcsgd needs a compressor, e.g. compressor = { kind = \"bernoulli\", p = 0.5 })",
            )),
            None => CompressorSpec::Identity,
        };
    if kind != OptimizerKind::Dcsgd && compressor != CompressorSpec::Identity {
        return Err(err_msg(
            "optimizer.compressor.kind",
            format!(
                "optimizer.compressor.kind = \"{}\": compression needs optimizer.kind = \"dcsgd\" \
                 (optimizer.kind = \"{kind}\" allows only the identity compressor)",
                compressor.kind_name()
            ),
        ));
    }
    Ok(OptimizerSpec { kind, compressor })
}

fn parse_compressor(s: &Section, d: usize) -> Res<CompressorSpec> {
    let kind = s.kind(COMPRESSOR_KINDS)?;
    let context = format!(" for optimizer.compressor.kind = \"{kind}\"");
    Ok(match kind {
        "identity" => {
            s.check_keys(&["kind"], &context)?;
            CompressorSpec::Identity
        }
        "bernoulli" => {
            s.check_keys(&["kind", "p"], &context)?;
            let f = s.req("p")?;
            let p = f.finite()?;
            if !(p > 0.0 && p <= 1.0) {
                return Err(f.err("must be in (0, 1] (a keep probability)"));
            }
            CompressorSpec::Bernoulli { p }
        }
        "rand_k" => {
            s.check_keys(&["kind", "k"], &context)?;
            let f = s.req("k")?;
            let k = f.count(1)?;
            if k > d {
                return Err(f.err(format!("must be at most d = {d} (the length of loss.x0)")));
            }
            CompressorSpec::RandK { k }
        }
        _ => {
            s.check_keys(&["kind", "levels"], &context)?;
            CompressorSpec::Qsgd {
                levels: s.req("levels")?.count_at_most(1, u32::MAX as usize)?,
            }
        }
    })
}

/// DSGD and DCSGD need finite noise covariance: their SDEs do not exist for Student-t `nu ≤ 2`.
fn check_noise_for_optimizer(noise: &NoiseSpec, kind: OptimizerKind) -> Res<()> {
    if kind == OptimizerKind::Dsignsgd {
        return Ok(());
    }
    for (prefix, m) in noise.models_with_keys() {
        if let NoiseModel::StudentT { nu, .. } = m {
            if !m.has_finite_covariance() {
                let key = format!("{prefix}.nu");
                return Err(err_msg(
                    &key,
                    format!(
                        "{key} = {}: optimizer.kind = \"{kind}\" needs noise with finite covariance, but \
                         Student-t noise with nu <= 2 has infinite variance, so the SDE does not exist \
                         (MATH.md §1.3); use nu > 2, or optimizer.kind = \"dsignsgd\"",
                        show_f64(*nu)
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn parse_schedule(
    s: &Section,
    loss: &LossSpec,
    noise: &NoiseSpec,
    optimizer: &OptimizerSpec,
    n: usize,
) -> Res<ScheduleSpec> {
    let kind = s.kind(SCHEDULE_KINDS)?;
    let context = format!(" for schedule.kind = \"{kind}\"");
    Ok(match kind {
        "constant" => {
            s.check_keys(&["kind"], &context)?;
            ScheduleSpec::Constant
        }
        "poly" => {
            s.check_keys(&["kind", "power"], &context)?;
            ScheduleSpec::Poly {
                power: s.req("power")?.non_negative()?,
            }
        }
        "poly_time" => {
            s.check_keys(&["kind", "power", "t0"], &context)?;
            ScheduleSpec::PolyTime {
                power: s.req("power")?.non_negative()?,
                t0: s.req("t0")?.positive()?,
            }
        }
        "normalized" => {
            s.check_keys(&["kind", "c", "epsilon", "l0", "l1", "a", "b"], &context)?;
            let c = s.req("c")?.positive()?;
            let f = s.req("epsilon")?;
            let epsilon = f.finite()?;
            if !(epsilon > 0.0 && epsilon < 1.0) {
                return Err(f.err("must be in (0, 1)"));
            }
            let smooth = loss.smoothness().map_err(|e| model_err("loss", e))?;
            let l0 = match s.opt("l0") {
                Some(f) => Some(f.non_negative()?),
                None => match smooth {
                    Some((l0, _)) => Some(computed_finite("schedule.l0", l0, "the loss")?),
                    None => None,
                },
            };
            let l1 = match s.opt("l1") {
                Some(f) => Some(f.non_negative()?),
                None => match smooth {
                    Some((_, l1)) => Some(computed_finite("schedule.l1", l1, "the loss")?),
                    None => None,
                },
            };
            let (a, b) = (s.opt("a"), s.opt("b"));
            // The inputs of the defaults, only if one is needed (`None`: infinite variance).
            let agents = match (&a, &b) {
                (Some(_), Some(_)) => None,
                _ => agent_constants(loss.dim(), noise, &optimizer.compressor, n)?,
            };
            let a = match a {
                Some(f) => f.non_negative()?,
                None => {
                    normalized_default("schedule.a", agents.as_ref(), noise, AgentConstants::a)?
                }
            };
            let b = match b {
                Some(f) => f.non_negative()?,
                None => {
                    normalized_default("schedule.b", agents.as_ref(), noise, AgentConstants::b)?
                }
            };
            if let (Some(l0), Some(l1)) = (l0, l1) {
                let denominator = l0 * (1.0 + a) + l1 * b;
                if !(denominator > 0.0 && denominator.is_finite()) {
                    return Err(err_msg(
                        "schedule.l0",
                        format!(
                            "schedule.l0 = {}, schedule.l1 = {}, schedule.a = {}, schedule.b = {}: the normalized \
                             schedule needs a finite, positive l0 (1 + a) + l1 b (else eta_k is infinite at a \
                             stationary point); give schedule.l0 explicitly",
                            show_f64(l0),
                            show_f64(l1),
                            show_f64(round_sig(a)),
                            show_f64(round_sig(b))
                        ),
                    ));
                }
            }
            ScheduleSpec::Normalized {
                c,
                epsilon,
                l0,
                l1,
                a,
                b,
            }
        }
        _ => {
            s.check_keys(&["kind", "c", "delta"], &context)?;
            ScheduleSpec::NormalizedSgd {
                c: s.req("c")?.positive()?,
                delta: s.req("delta")?.positive()?,
            }
        }
    })
}

/// A default computed from other keys must be finite (huge inputs can overflow it).
fn computed_finite(key: &str, x: f64, from: &str) -> Res<f64> {
    if x.is_finite() {
        Ok(x)
    } else {
        Err(err_msg(
            key,
            format!(
                "{key} = {} (computed from {from}): not finite; give {key} explicitly",
                show_f64(x)
            ),
        ))
    }
}

fn infinite_variance_missing(key: &str, noise: &NoiseSpec) -> ConfigError {
    let culprit = noise
        .models_with_keys()
        .into_iter()
        .find_map(|(p, m)| match m {
            NoiseModel::StudentT { nu, .. } if !m.has_finite_covariance() => {
                Some(format!("{p}.nu = {}", show_f64(*nu)))
            }
            _ => None,
        })
        .unwrap_or_else(|| "the noise".to_string());
    err_missing(
        key,
        &format!(
            " (its default cannot be computed: {culprit} has infinite variance; give schedule.a and schedule.b \
             explicitly)"
        ),
    )
}

/// A `models` constructor rejected a section the parser accepted: the error at that section.
fn model_err(key: &str, e: ModelError) -> ConfigError {
    err_msg(key, format!("{key}: {e}"))
}

/// The per-agent inputs of `models::NormalizationInputs` (MATH.md §6.2), one entry per agent:
/// the compressor's `ω` and the effective `(σ0, σ1)` of the agent's noise
/// ([`NoiseModel::variance_bound`]).
struct AgentConstants {
    d: usize,
    omega: Vec<f64>,
    sigma0: Vec<f64>,
    sigma1: Vec<f64>,
}

impl AgentConstants {
    /// `A = (ω̄ + d (σ1²ω + σ1²)‾)/N` by [`NormalizationInputs::a`]. `A` does not involve σ0, so
    /// it is passed as 0: an overflow in it (a huge `sigma0`) does not block this default.
    fn a(&self) -> Result<f64, ModelError> {
        let zeros = vec![0.0; self.omega.len()];
        NormalizationInputs::from_agents(self.d, &self.omega, &zeros, &self.sigma1).map(|i| i.a())
    }

    /// `B = d (σ0² + σ0²ω)‾/N` by [`NormalizationInputs::b`]; σ1 is passed as 0, as σ0 for `A`.
    fn b(&self) -> Result<f64, ModelError> {
        let zeros = vec![0.0; self.omega.len()];
        NormalizationInputs::from_agents(self.d, &self.omega, &self.sigma0, &zeros).map(|i| i.b())
    }
}

/// The [`AgentConstants`] of `n` agents in dimension `d`; `None` if some agent's noise has
/// infinite variance.
fn agent_constants(
    d: usize,
    noise: &NoiseSpec,
    compressor: &CompressorSpec,
    n: usize,
) -> Res<Option<AgentConstants>> {
    let omega = compressor
        .omega(d)
        .map_err(|e| model_err("optimizer.compressor", e))?;
    let mut bounds = Vec::new();
    for (key, m) in noise.models_with_keys() {
        match m.variance_bound().map_err(|e| model_err(&key, e))? {
            Some(bound) => bounds.push(bound),
            None => return Ok(None),
        }
    }
    // A shared model stands for every agent.
    if let NoiseSpec::Shared(_) = noise {
        bounds = bounds.repeat(n);
    }
    Ok(Some(AgentConstants {
        d,
        omega: vec![omega; bounds.len()],
        sigma0: bounds.iter().map(|b| b.0).collect(),
        sigma1: bounds.iter().map(|b| b.1).collect(),
    }))
}

/// The default of `schedule.a` or `schedule.b` (`key`), computed by `value` from the agents'
/// constants (`None`: some agent's noise has infinite variance).
fn normalized_default(
    key: &str,
    agents: Option<&AgentConstants>,
    noise: &NoiseSpec,
    value: fn(&AgentConstants) -> Result<f64, ModelError>,
) -> Res<f64> {
    let agents = agents.ok_or_else(|| infinite_variance_missing(key, noise))?;
    match value(agents) {
        Ok(x) => computed_finite(key, x, "the noise and compressor"),
        // Only non-finite inputs are rejected: the default overflows.
        Err(e) => Err(err_msg(
            key,
            format!(
                "{key}: not finite when computed from the noise and compressor ({e}); give {key} \
                 explicitly"
            ),
        )),
    }
}

fn default_sde() -> SdeSpec {
    SdeSpec {
        models: SdeModel::ALL.to_vec(),
        scheme: SchemeKind::Weak2,
        substeps: None,
        max_substeps: DEFAULT_MAX_SUBSTEPS,
        increments: IncrementKind::Gaussian,
    }
}

fn parse_sde(s: &Section) -> Res<SdeSpec> {
    s.check_keys(SDE_KEYS, "")?;
    let mut out = default_sde();
    if let Some(f) = s.opt("models") {
        out.models = f.named_list("model")?;
    }
    if let Some(f) = s.opt("scheme") {
        out.scheme = f.named("scheme")?;
    }
    if let Some(f) = s.opt("substeps") {
        out.substeps = Some(f.count(1)?);
    }
    if let Some(f) = s.opt("max_substeps") {
        out.max_substeps = f.count(2)?;
    }
    if let Some(f) = s.opt("increments") {
        out.increments = f.named("increment kind")?;
        if out.scheme == SchemeKind::Weak2 && out.increments == IncrementKind::TwoPoint {
            return Err(f.err(
                "sde.scheme = \"weak2\" needs increments matching Gaussian moments up to order 5; \
                 two-point increments limit it to weak order 1 (use \"gaussian\" or \"three_point\")",
            ));
        }
    }
    Ok(out)
}

/// `run.exact_reference = true` needs a closed form (MATH.md §7): DSGD on a diagonal quadratic with
/// Gaussian noise of constant covariance (`sigma1 = 0`) and a constant schedule. The same rule as
/// `compare::exact`.
fn check_exact_reference(
    loss: &LossSpec,
    noise: &NoiseSpec,
    optimizer: &OptimizerSpec,
    schedule: &ScheduleSpec,
) -> Res<()> {
    let mut why = None;
    if !matches!(loss.kind, LossKind::Quadratic { .. }) {
        why = Some(format!("loss.kind = \"{}\"", loss.kind_name()));
    } else if optimizer.kind != OptimizerKind::Dsgd {
        why = Some(format!("optimizer.kind = \"{}\"", optimizer.kind));
    } else if *schedule != ScheduleSpec::Constant {
        why = Some(format!("schedule.kind = \"{}\"", schedule.kind_name()));
    } else {
        for (prefix, m) in noise.models_with_keys() {
            match m {
                NoiseModel::Gaussian { sigma1, .. } if *sigma1 != 0.0 => {
                    why = Some(format!("{prefix}.sigma1 = {}", show_f64(*sigma1)));
                }
                NoiseModel::StudentT { .. } => {
                    why = Some(format!("{prefix}.kind = \"student_t\""));
                }
                NoiseModel::Gaussian { .. } => continue,
            }
            break;
        }
    }
    match why {
        None => Ok(()),
        Some(why) => Err(err_msg(
            "run.exact_reference",
            format!(
                "run.exact_reference = true: no closed form for this experiment, which needs loss.kind = \
                 \"quadratic\", optimizer.kind = \"dsgd\", schedule.kind = \"constant\" and Gaussian noise \
                 with sigma1 = 0, but {why} (set run.exact_reference = false)"
            ),
        )),
    }
}

fn parse_run(s: &Section) -> Res<RunSpec> {
    s.check_keys(RUN_KEYS, "")?;
    let horizon = s.req("horizon")?.positive()?;
    let etas_field = s.req("etas")?;
    let mut etas: Vec<f64> = Vec::new();
    for f in etas_field.nonempty_list()? {
        let eta = f.positive()?;
        if etas.contains(&eta) {
            return Err(f.err("listed twice"));
        }
        let k = iterations(horizon, eta);
        if k == 0 {
            return Err(f.err(format!(
                "larger than run.horizon = {}, so there would be no iteration (iterations = floor(horizon/eta))",
                show_f64(horizon)
            )));
        }
        if k > MAX_ITERATIONS {
            return Err(f.err(format!(
                "run.horizon / eta = {} iterations, more than the limit of {MAX_ITERATIONS}",
                show_f64(round_sig(horizon / eta))
            )));
        }
        etas.push(eta);
    }
    let paths = s.req("paths")?.count(2)?;
    let observables = match s.opt("observables") {
        Some(f) => f.named_list("observable")?,
        None => Observable::DEFAULT.to_vec(),
    };
    let diverge_above = match s.opt("diverge_above") {
        Some(f) => f.positive()?,
        None => DEFAULT_DIVERGE_ABOVE,
    };
    let common_random_numbers = match s.opt("common_random_numbers") {
        Some(f) => f.boolean()?,
        None => true,
    };
    let exact_reference = match s.opt("exact_reference") {
        Some(f) => f.boolean()?,
        None => false,
    };
    let quantiles = match s.opt("quantiles") {
        Some(f) => {
            let mut qs: Vec<f64> = Vec::new();
            for q in f.list()? {
                let x = q.finite()?;
                if !(x > 0.0 && x < 1.0) {
                    return Err(q.err("must be in (0, 1)"));
                }
                if qs.contains(&x) {
                    return Err(q.err("listed twice"));
                }
                qs.push(x);
            }
            qs
        }
        None => DEFAULT_QUANTILES.to_vec(),
    };
    let x0_scales = match s.opt("x0_scales") {
        Some(f) => {
            let mut xs: Vec<f64> = Vec::new();
            for q in f.nonempty_list()? {
                let x = q.positive()?;
                if xs.contains(&x) {
                    return Err(q.err("listed twice"));
                }
                xs.push(x);
            }
            xs
        }
        None => vec![1.0],
    };
    Ok(RunSpec {
        horizon,
        etas,
        paths,
        observables,
        diverge_above,
        common_random_numbers,
        exact_reference,
        quantiles,
        x0_scales,
    })
}

/// The smallest eigenvalue of the symmetric matrix `m`, by `models::loss::symmetric_eigenvalues`
/// on `m / max|m_ij|` (so that squares cannot overflow), scaled back.
fn smallest_eigenvalue(m: &[Vec<f64>]) -> f64 {
    let scale = m.iter().flatten().fold(0.0f64, |s, x| s.max(x.abs()));
    if scale == 0.0 {
        return 0.0;
    }
    let scaled: Vec<f64> = m.iter().flatten().map(|x| x / scale).collect();
    models::loss::symmetric_eigenvalues(m.len(), &scaled)
        .into_iter()
        .fold(f64::INFINITY, f64::min)
        * scale
}

/// A short description of every kind the configuration defines and its parameters:
/// `(section, kind, parameters)`. The library enums follow in [`catalog`].
const CATALOG: &[(&str, &str, &str)] = &[
    (
        "loss",
        "quadratic",
        "diag = [d numbers >= 0]: f = 1/2 sum diag_j x_j^2",
    ),
    (
        "loss",
        "quadratic_full",
        "matrix = [[d x d]], symmetric PSD: f = 1/2 x^T A x",
    ),
    (
        "loss",
        "quartic",
        "coeffs = [d numbers >= 0] (default ones): f = sum c_j x_j^4 / 4",
    ),
    (
        "loss",
        "mixed",
        "diag = [..], quartic = [..]: f = sum (a_j x_j^2/2 + b_j x_j^4/4)",
    ),
    (
        "loss",
        "least_squares",
        "samples, seed, noise = 0: f = |A x - y|^2 / (2 samples), random Gaussian A",
    ),
    (
        "noise",
        "gaussian",
        "sigma0, sigma1 = 0, scale = ones: Cov = (sigma0^2 + sigma1^2 |grad f|^2) diag(scale^2)",
    ),
    (
        "noise",
        "student_t",
        "nu, scale (number or list), sigma0 = 1, sigma1 = 0: Z_j = scale_j sqrt(sigma0^2 + sigma1^2 |grad f|^2) T_j, T_j iid t_nu",
    ),
    ("optimizer", "dsgd", "distributed SGD"),
    (
        "optimizer",
        "dcsgd",
        "distributed compressed SGD; needs optimizer.compressor",
    ),
    ("optimizer", "dsignsgd", "distributed SignSGD"),
    ("compressor", "identity", "no compression, omega = 0"),
    ("compressor", "bernoulli", "p in (0, 1]: omega = 1/p - 1"),
    ("compressor", "rand_k", "k in [1, d]: omega = d/k - 1"),
    (
        "compressor",
        "qsgd",
        "levels >= 1: omega = min(d/s^2, sqrt(d)/s)",
    ),
    ("schedule", "constant", "eta_k = 1"),
    ("schedule", "poly", "power >= 0: eta_k = (k+1)^-power (iteration-indexed: (B) is weak order 1 under it)"),
    (
        "schedule",
        "poly_time",
        "power >= 0, t0 > 0: eta_t = (1 + t/t0)^-power on SDE time, eta_k = eta_{k eta} ((B) keeps weak order 2)",
    ),
    (
        "schedule",
        "normalized",
        "c, epsilon, l0?, l1?, a?, b?: eta_k = c 2 eps / ((L0 + L1 |grad f|)(1 + A) + L1 B)",
    ),
    (
        "schedule",
        "normalized_sgd",
        "c, delta: eta_k = c / max(|grad f|, delta)",
    ),
];

/// Every kind and its parameters, for `sdelab list`: `(section, kind, parameters)`. The names of
/// the SDE models, schemes, increments and observables come from the library enums, and each of
/// their values must be described here (the matches are exhaustive).
pub fn catalog() -> Vec<(&'static str, &'static str, String)> {
    fn entries<T: Named>(
        section: &'static str,
        describe: fn(T) -> String,
    ) -> impl Iterator<Item = (&'static str, &'static str, String)> {
        T::all()
            .iter()
            .map(move |&t| (section, t.config_name(), describe(t)))
    }
    let mut out: Vec<_> = CATALOG
        .iter()
        .map(|&(section, kind, params)| (section, kind, params.to_string()))
        .collect();
    out.extend(entries("sde.models", |m: SdeModel| {
        let what = match m {
            SdeModel::FirstOrder => "(A) classic first-order SDE",
            SdeModel::SecondOrder => "(B) classic second-order SDE",
            SdeModel::Stability => "(C) stability-aware first-order SDE (P1v2)",
        };
        format!("{what}, weak order {}", m.weak_order())
    }));
    out.extend(entries("sde.scheme", |s: SchemeKind| {
        match s {
            SchemeKind::EulerMaruyama => "weak order 1",
            SchemeKind::Milstein => "strong order 1, weak order 1",
            SchemeKind::Weak2 => "weak order 2",
        }
        .to_string()
    }));
    out.extend(entries("sde.increments", |i: IncrementKind| {
        match i {
            IncrementKind::Gaussian => "N(0, h)",
            IncrementKind::TwoPoint => "+-sqrt(h), weak order 1",
            IncrementKind::ThreePoint => "+-sqrt(3h) w.p. 1/6 each, 0 w.p. 2/3, weak order 2",
        }
        .to_string()
    }));
    out.extend(entries("run.observables", |o: Observable| {
        match o {
            Observable::Loss => "f(x)",
            Observable::X => "sum_j x_j",
            Observable::XSq => "sum_j x_j^2",
            Observable::GradNorm => "|grad f(x)|_2",
            Observable::GradNormSq => "|grad f(x)|_2^2 (the quantity the bounds are stated for)",
            Observable::TestLoss => "mean loss on the held-out rows (data-set losses)",
            Observable::TestAccuracy => "held-out classification accuracy (class data)",
            Observable::DistanceFromX0 => "|x - x0|_2",
        }
        .to_string()
    }));
    out
}
