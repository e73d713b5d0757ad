//! The experiment configuration: typed values parsed and validated from TOML.
//!
//! The kinds a file names (`loss.kind`, `noise.kind`, `optimizer.kind`,
//! `optimizer.compressor.kind`, `schedule.kind`) are defined once, in `models`, as serde specs
//! next to their implementations (`docs/ADDING_A_KIND.md`); this layer knows none of them by
//! name. The top level, `[agents]`, `[sde]`, `[run]` and minibatch noise are specs of the same
//! kind defined here ([`TopLevelKeys`], [`AgentsKeys`], [`SdeKeys`], [`RunKeys`],
//! [`MinibatchKeys`]): a serde struct whose fields are the keys, each documented beside it. Every
//! section, kinded or not, is read the same way:
//!
//! 1. keys that are not the spec's serde fields are refused with "did you mean";
//! 2. the spec is deserialized with serde, tracking the key path (`serde_path_to_error`), so a
//!    type error names the key and value;
//! 3. the spec's `build` checks the values (for the kinds, the models constructor), and its
//!    [`ModelError`] names the key: the section is prefixed and the value is shown as written;
//! 4. the rules that involve several sections are applied in one place ([`validate`]).
//!
//! ```text
//! run.etas[2] = -0.1: must be positive
//! noise.kind = "cauchy": unknown kind (expected one of gaussian, student_t, minibatch)
//! loss.x0: missing key
//! run.paths = "many": expected an integer
//! loss.diag has length 3 but loss.x0 has length 2
//! run.pathz = 100: unknown key (expected one of horizon, etas, ...); did you mean "paths"?
//! ```
//!
//! Optional keys get their defaults filled in, and [`ExperimentConfig`] serializes (JSON or
//! TOML) to the full configuration as parsed, so a result document can embed it and the TOML
//! form parses back to the same value.
//!
//! The complete key reference is the "Config reference" section of the workspace README; its
//! tables of kinds and keys are generated from the definitions ([`key_tables_markdown`]).

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use compare::study::iterations;
use models::compress::Compressor;
use models::kind::{serde_fields, KeyDoc, KindInfo, KindSpec};
use models::loss::Loss;
use models::noise::GradientNoise;
use models::{AgentNoises, ModelError, NormalizationInputs, Smoothness};
use serde::{Deserialize, Serialize};
use toml::{Table, Value};

use crate::error::CliError;

// The library enums the configuration uses directly; they serialize to their config names.
pub use compare::Observable;
pub use models::{CompressorSpec, OptimizerSpec, ScheduleSpec, SdeModel};
pub use sde_core::{IncrementKind, SchemeKind};

/// `loss.kind` and its keys (the models spec).
pub type LossKind = models::LossSpec;
/// One agent's noise, `[noise]` or `[[noise.agents]]` (the models spec).
pub type NoiseModel = models::NoiseSpec;

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

/// The entry of `sde.models` that asks for SVAG runs (not an [`SdeModel`]).
pub const SVAG_MODEL: &str = "svag";
/// `sde.svag_l` when `sde.models` lists `"svag"` and `sde.svag_l` is not given.
pub const DEFAULT_SVAG_L: usize = 16;
/// Default `seed`.
pub const DEFAULT_SEED: u64 = 0;
/// Default `agents.n`.
pub const DEFAULT_AGENTS: usize = 1;
/// Substeps of `sdelab run` (trajectories) when `sde.substeps` is not given. Weak-error studies
/// choose their own per point instead (refining until the integrator's bias is negligible).
pub const DEFAULT_RUN_SUBSTEPS: usize = 8;
/// Default `run.max_paths` in multiples of `run.paths`: the second stage of a study may run a
/// learning rate again on up to this many times the paths (the first stage's Monte Carlo floors
/// on the committed studies asked for 1.5–4.4×; the cost of a rerun grows with it)...
pub const DEFAULT_MAX_PATHS_FACTOR: usize = 4;
/// ... and at least this many: studies of a few hundred paths (the network examples) hit their
/// floors at 1.5–5× their paths (README, "Configs a reviewer might write"), and a few thousand
/// paths cost little on every shipped problem.
pub const DEFAULT_MAX_PATHS_FLOOR: usize = 2000;

/// Default `sde.max_substeps`: the cap of the automatic refinement.
pub const DEFAULT_MAX_SUBSTEPS: usize = compare::study::DEFAULT_MAX_SUBSTEPS;
/// Default `run.diverge_above`.
pub const DEFAULT_DIVERGE_ABOVE: f64 = 1e8;
/// Default `run.quantiles`.
pub const DEFAULT_QUANTILES: [f64; 3] = [0.1, 0.5, 0.9];
/// Largest `agents.n` (a guard against typos; every agent draws a gradient per iteration).
pub const MAX_AGENTS: usize = 1_000_000;
/// Largest number of iterations `floor(horizon/eta)` per learning rate (statistics are kept per
/// iteration, so this bounds memory as well as time).
pub const MAX_ITERATIONS: usize = 10_000_000;

// ---------------------------------------------------------------------------------------------
// Typed configuration
// ---------------------------------------------------------------------------------------------

/// One experiment, as read from a TOML file. Every optional key has its default filled in.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExperimentConfig {
    /// `name` (documented and checked by [`TopLevelKeys`], as `seed`).
    pub name: String,
    /// `seed`.
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
    /// `loss.kind` and its keys.
    #[serde(flatten)]
    pub kind: LossKind,
}

/// `[agents]`, checked ([`AgentsKeys`] documents and checks the keys).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AgentsSpec {
    /// `agents.n`.
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
    /// Minibatch gradients of a data-set loss: `[noise] kind = "minibatch"`.
    Minibatch(MinibatchNoise),
}

/// `noise.kind = "minibatch"`: every agent's gradient is the gradient of `noise.batch` training
/// rows drawn at random, instead of the full gradient plus injected noise (`models::minibatch`).
/// Needs a data-set loss (`loss.kind = "logistic" | "mlp"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MinibatchNoise {
    /// Always `"minibatch"` (the tag of the serialized table).
    pub kind: MinibatchTag,
    /// `noise.batch` (documented and checked by [`MinibatchKeys`], as `noise.replacement`).
    pub batch: usize,
    /// `noise.replacement`.
    pub replacement: bool,
}

/// The value `"minibatch"` of `noise.kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum MinibatchTag {
    #[serde(rename = "minibatch")]
    Minibatch,
}

/// The `noise.kind` of minibatch noise (the injected kinds come from `models::NoiseSpec`).
pub const MINIBATCH_KIND: &str = "minibatch";

/// `[sde]`, checked, defaults filled in ([`SdeKeys`] documents and checks the keys).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SdeSpec {
    /// `sde.models`.
    pub models: Vec<SdeModel>,
    /// `sde.scheme`.
    pub scheme: SchemeKind,
    /// `sde.substeps`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub substeps: Option<usize>,
    /// `sde.max_substeps`.
    pub max_substeps: usize,
    /// `sde.increments`.
    pub increments: IncrementKind,
    /// `sde.svag_l`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub svag_l: Vec<usize>,
}

/// `[run]`, checked, defaults filled in ([`RunKeys`] documents and checks the keys).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunSpec {
    /// `run.horizon`.
    pub horizon: f64,
    /// `run.etas`.
    pub etas: Vec<f64>,
    /// `run.paths`.
    pub paths: usize,
    /// `run.observables`.
    pub observables: Vec<Observable>,
    /// `run.diverge_above`.
    pub diverge_above: f64,
    /// `run.common_random_numbers`.
    pub common_random_numbers: bool,
    /// `run.exact_reference`.
    pub exact_reference: bool,
    /// `run.quantiles`.
    pub quantiles: Vec<f64>,
    /// `run.x0_scales`.
    pub x0_scales: Vec<f64>,
    /// `run.target_rel_ci`.
    pub target_rel_ci: Option<f64>,
    /// `run.max_paths`: filled in (the larger of 4 × `run.paths` and 2000, or `run.paths` with
    /// `run.target_rel_ci`).
    pub max_paths: usize,
}

// ---------------------------------------------------------------------------------------------
// The `models` objects the typed values describe. Their constructors validate and name the
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
        self.kind.kind_name()
    }

    /// The `models` loss (`least_squares` generates its data here: `O(samples · d²)`).
    pub fn to_model(&self) -> Result<models::LossKind, ModelError> {
        self.kind.build(&self.dim())
    }

    /// The (L0, L1)-smoothness constants `‖∇²f(x)‖₂ ≤ L0 + L1 ‖∇f(x)‖₂` (MATH.md §2) of the models
    /// loss ([`Loss::smoothness`]), where they follow from the parameters alone; `None` for
    /// `least_squares`, whose constants depend on the generated data (the run takes them from the
    /// loss it builds).
    pub fn smoothness(&self) -> Result<Option<(f64, f64)>, ModelError> {
        if let LossKind::LeastSquares(_) = self.kind {
            return Ok(None);
        }
        let s = self.to_model()?.smoothness();
        Ok(Some((s.l0, s.l1)))
    }
}

impl NoiseSpec {
    /// The noise specs of agents `0..n`, expanded (a shared spec is repeated `n` times).
    pub fn per_agent(&self, n: usize) -> Vec<NoiseModel> {
        match self {
            NoiseSpec::Shared(m) => vec![m.clone(); n],
            NoiseSpec::PerAgent { agents } => agents.clone(),
            // No injected noise: the batches are the noise.
            NoiseSpec::Minibatch(_) => Vec::new(),
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
            NoiseSpec::Minibatch(_) => Vec::new(),
        }
    }
}

/// `(sigma0, sigma1)` of a noise spec.
fn sigmas(m: &NoiseModel) -> (f64, f64) {
    match m {
        NoiseModel::Gaussian(g) => (g.sigma0, g.sigma1),
        NoiseModel::StudentT(t) => (t.sigma0, t.sigma1),
    }
}

/// The same spec with other `sigma0`, `sigma1`.
fn with_sigmas(m: &NoiseModel, sigma0: f64, sigma1: f64) -> NoiseModel {
    let mut m = m.clone();
    match &mut m {
        NoiseModel::Gaussian(g) => (g.sigma0, g.sigma1) = (sigma0, sigma1),
        NoiseModel::StudentT(t) => (t.sigma0, t.sigma1) = (sigma0, sigma1),
    }
    m
}

/// Whether the noise has a finite covariance: Gaussian, or Student-t with `nu > 2` (the rule
/// of `models::NoiseModel::has_finite_variance`, read off the parameters).
pub fn has_finite_covariance(m: &NoiseModel) -> bool {
    match m {
        NoiseModel::StudentT(t) => t.nu > 2.0,
        _ => true,
    }
}

/// The effective constants `(σ0, σ1)` of the affine variance bound
/// `‖Cov Z(x)‖_∞ ≤ σ0² + σ1² ‖∇f(x)‖²` (MATH.md §1.2), the tightest one; they enter the
/// default `a`, `b` of the normalized schedule. `None` when the variance is infinite
/// (Student-t, `nu ≤ 2`).
///
/// `Var Z_j = κ_j (sigma0² + sigma1² ‖∇f‖²)`, where `κ_j` is the variance of the models noise
/// with `sigma0 = 1`, `sigma1 = 0`, so `σk = sigmak · √(max_j κ_j)`.
pub fn variance_bound(m: &NoiseModel, d: usize) -> Result<Option<(f64, f64)>, ModelError> {
    if !has_finite_covariance(m) {
        return Ok(None);
    }
    let unit = with_sigmas(m, 1.0, 0.0).build(&d)?;
    let mut kappa = vec![0.0; d];
    if !unit.variance(&vec![0.0; d], &mut kappa) {
        return Ok(None);
    }
    let k = kappa.iter().fold(0.0f64, |m, &v| m.max(v)).sqrt();
    let (sigma0, sigma1) = sigmas(m);
    Ok(Some((sigma0 * k, sigma1 * k)))
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
        if self.sde.models.is_empty() {
            return Err(ConfigError {
                key: "sde.models".into(),
                message: format!(
                    "sde.models = [\"{SVAG_MODEL}\"]: weak-error needs at least one SDE model ({}); \
                     SVAG runs in `sdelab run`",
                    names::<SdeModel>().join(", ")
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

    fn string(&self) -> Res<&'a str> {
        match self.value {
            Value::String(s) => Ok(s),
            _ => Err(self.err("expected a string")),
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

    fn unknown(&self, s: &str, options: &[&str], what: &str) -> ConfigError {
        self.err(format!(
            "unknown {what} (expected one of {}){}",
            one_of(options),
            did_you_mean(s, options)
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// Kinds: one generic parser for every family defined in `models`
// ---------------------------------------------------------------------------------------------

/// A family of kinds defined in `models` (a spec enum generated by its registry).
trait Family: Sized {
    /// The config names of the kinds.
    fn kinds() -> &'static [&'static str];
    /// The keys of a kind (besides `kind`).
    fn keys(kind: &str) -> Option<&'static [&'static str]>;
    /// Every kind with its documented keys.
    fn catalog() -> Vec<KindInfo>;
    /// The spec of `kind` from the other keys of its table.
    fn deserialize_kind(kind: &str, v: Value) -> Result<Self, DeError>;
}

type DeError = serde_path_to_error::Error<toml::de::Error>;

macro_rules! family {
    ($($t:ty),*) => {$(
        impl Family for $t {
            fn kinds() -> &'static [&'static str] {
                <$t>::KINDS
            }
            fn keys(kind: &str) -> Option<&'static [&'static str]> {
                <$t>::keys(kind)
            }
            fn catalog() -> Vec<KindInfo> {
                <$t>::catalog()
            }
            fn deserialize_kind(kind: &str, v: Value) -> Result<Self, DeError> {
                let mut track = serde_path_to_error::Track::new();
                let de = serde_path_to_error::Deserializer::new(v, &mut track);
                match <$t>::deserialize_kind(kind, de) {
                    Ok(spec) => Ok(spec),
                    Err(e) => Err(serde_path_to_error::Error::new(track.path(), e)),
                }
            }
        }
    )*};
}
family!(
    LossKind,
    NoiseModel,
    OptimizerSpec,
    CompressorSpec,
    ScheduleSpec
);

/// Parses the kinded section `s` of family `F`: `kind`, then exactly that kind's keys (and
/// `extra`, which the caller reads), deserialized with their key paths; nested kinded tables
/// (`nested`) are parsed first by the caller and skipped here.
fn parse_kind<F: Family>(s: &Section, extra: &[&str]) -> Res<(&'static str, F)> {
    let kind = s.kind(F::kinds())?;
    let keys = F::keys(kind).unwrap_or(&[]);
    let mut allowed: Vec<&str> = vec!["kind"];
    allowed.extend(extra);
    allowed.extend(keys);
    s.check_keys(&allowed, &format!(" for {} = \"{kind}\"", s.key("kind")))?;
    let own: Table = s
        .table
        .iter()
        .filter(|(k, _)| k.as_str() != "kind" && !extra.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let spec = F::deserialize_kind(kind, Value::Table(own)).map_err(|e| {
        let catalog = F::catalog();
        let docs = catalog
            .iter()
            .find(|k| k.kind == kind)
            .map_or(&[][..], |k| k.keys);
        de_err(s, e, docs)
    })?;
    Ok((kind, spec))
}

/// A serde error inside section `s` as a config error at its key path.
fn de_err(s: &Section, e: DeError, docs: &[KeyDoc]) -> ConfigError {
    let inner = e.inner().message().to_string();
    let doc_of = |key: &str| docs.iter().find(|d| d.key == key).map(|d| d.doc);
    // `missing field `p``: the path is the struct's, the field is in the message.
    if let Some(field) = inner
        .strip_prefix("missing field `")
        .and_then(|r| r.strip_suffix('`'))
    {
        let key = s.key(field);
        let hint = doc_of(field).map(|d| format!(" ({d})")).unwrap_or_default();
        return err_missing(&key, &hint);
    }
    let path = e.path().to_string();
    let rel = if path == "." { String::new() } else { path };
    let key = join_key(&s.path, &rel);
    let top = rel.split(['.', '[']).next().unwrap_or("");
    let value = lookup(s.table, &rel);
    let shown = value.map(show).unwrap_or_else(|| "?".into());
    let reason = serde_reason(&inner, value, doc_of(top));
    err_msg(&key, format!("{key} = {shown}: {reason}"))
}

/// What a serde type error means, in the words of the rest of the messages.
fn serde_reason(inner: &str, value: Option<&Value>, doc: Option<&str>) -> String {
    let expected = inner.rsplit("expected ").next().unwrap_or("");
    if inner.starts_with("invalid type") {
        return match expected {
            "f64" | "f32" => "expected a number".into(),
            "usize" | "u64" | "u32" | "i64" => "expected an integer".into(),
            "a sequence" => "expected a list".into(),
            "a boolean" => "expected a boolean (true or false)".into(),
            e if e.starts_with("struct") || e == "a map" => "expected a table".into(),
            e => format!("expected {e}"),
        };
    }
    if inner.starts_with("invalid value: integer") {
        return match value {
            Some(Value::Integer(i)) if *i < 0 => "must not be negative".into(),
            _ => "too large".into(),
        };
    }
    if inner.starts_with("data did not match any variant") {
        if let Some(d) = doc {
            let ty = d.split(',').next().unwrap_or(d);
            return format!("expected {ty}");
        }
    }
    inner.to_string()
}

/// The value at `rel` (`p`, `diag[2]`, `matrix[1][0]`, `compressor.p`) under `table`.
fn lookup<'a>(table: &'a Table, rel: &str) -> Option<&'a Value> {
    if rel.is_empty() {
        return None;
    }
    let mut cur: Option<&Value> = None;
    for (n, part) in rel.split('.').enumerate() {
        let (name, idx) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        let t = if n == 0 { table } else { cur?.as_table()? };
        cur = t.get(name);
        for i in idx
            .split(['[', ']'])
            .filter(|x| !x.is_empty())
            .map(|x| x.parse::<usize>().ok())
        {
            cur = cur?.as_array()?.get(i?);
        }
    }
    cur
}

/// The key `rel` (`p`, `etas[2]`; empty: the section itself) of the section at `path` (empty:
/// the top level).
fn join_key(path: &str, rel: &str) -> String {
    match (path.is_empty(), rel.is_empty()) {
        (_, true) => path.to_string(),
        (true, false) => rel.to_string(),
        (false, false) => format!("{path}.{rel}"),
    }
}

/// A `models` constructor (or spec) rejected a value of section `section` (a [`Section`] of
/// the file, for showing the value as written).
fn model_err_in(section: &Section, e: ModelError) -> ConfigError {
    match &e {
        ModelError::InvalidParameter {
            name,
            value,
            reason,
        } => {
            let key = join_key(&section.path, name);
            let shown = lookup(section.table, name)
                .map(show)
                .unwrap_or_else(|| value.clone());
            err_msg(&key, format!("{key} = {shown}: {reason}"))
        }
        ModelError::DimensionMismatch {
            name,
            expected,
            got,
        } => {
            let key = format!("{}.{name}", section.path);
            err_msg(
                &key,
                format!("{key} has length {got} but loss.x0 has length {expected}"),
            )
        }
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
    let (name, seed) = parse_section::<TopLevelKeys>(&root, &[], "")?;
    let loss_section = root.req_section("loss")?;
    let loss = parse_loss(&loss_section)?;
    let d = loss.dim();
    let agents = match root.opt_section("agents")? {
        Some(s) => parse_section::<AgentsKeys>(&s, &[], "")?,
        None => AgentsSpec { n: DEFAULT_AGENTS },
    };
    let noise = parse_noise(&root.req_section("noise")?, d, agents.n)?;
    let optimizer_section = root.req_section("optimizer")?;
    let optimizer = parse_optimizer(&optimizer_section, d)?;
    let schedule_section = root.opt_section("schedule")?;
    let schedule = match &schedule_section {
        Some(s) => parse_kind::<ScheduleSpec>(s, &[])?.1,
        None => ScheduleSpec::default(),
    };
    let sde = match root.opt_section("sde")? {
        Some(s) => parse_section::<SdeKeys>(&s, &[], "")?,
        None => default_sde(),
    };
    let run = parse_section::<RunKeys>(&root.req_section("run")?, &[], "")?;
    let mut cfg = ExperimentConfig {
        name,
        seed,
        loss,
        agents,
        noise,
        optimizer,
        schedule,
        sde,
        run,
    };
    validate(&mut cfg, &optimizer_section, schedule_section.as_ref())?;
    Ok(cfg)
}

/// The rules that involve several sections, in one place (each section has been checked on its
/// own by then): the noise against the optimizer, the optimizer built from the agents' noise,
/// the normalized schedule's defaults computed from the loss, noise and compressor, and the
/// closed form `run.exact_reference` asks for.
fn validate(
    cfg: &mut ExperimentConfig,
    optimizer_section: &Section,
    schedule_section: Option<&Section>,
) -> Res<()> {
    let d = cfg.dim();
    let n = cfg.agents.n;
    check_noise_for_optimizer(&cfg.noise, &cfg.optimizer)?;
    if let NoiseSpec::Minibatch(mb) = &cfg.noise {
        check_minibatch(cfg, mb)?;
    } else if cfg
        .noise
        .models_with_keys()
        .iter()
        .all(|(_, m)| has_finite_covariance(m))
    {
        // Built once here so that a rule of the optimizer's constructor is reported at parse time.
        let noises = cfg
            .noise
            .per_agent(n)
            .iter()
            .map(|m| m.build(&d))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| model_err("noise", e))?;
        cfg.optimizer
            .validate(&AgentNoises { d, noises })
            .map_err(|e| model_err_in(optimizer_section, e))?;
    }
    if let (ScheduleSpec::Normalized(spec), Some(s)) = (&mut cfg.schedule, schedule_section) {
        fill_normalized(spec, &cfg.loss, &cfg.noise, cfg.optimizer.compressor(), n)?;
        if let (Some(l0), Some(l1)) = (spec.l0, spec.l1) {
            let smooth = Smoothness {
                l0,
                l1,
                l_smooth: None,
            };
            cfg.schedule
                .validate(&smooth)
                .map_err(|e| model_err_in(s, e))?;
        }
    } else if let Some(s) = schedule_section {
        cfg.schedule
            .validate(&Smoothness {
                l0: 0.0,
                l1: 0.0,
                l_smooth: None,
            })
            .map_err(|e| model_err_in(s, e))?;
    }
    if cfg.run.exact_reference {
        check_exact_reference(&cfg.loss, &cfg.noise, &cfg.optimizer, &cfg.schedule)?;
    }
    Ok(())
}

fn parse_loss(s: &Section) -> Res<LossSpec> {
    let (_, mut kind) = parse_kind::<LossKind>(s, &["x0"])?;
    let x0 = match (s.opt("x0"), &kind) {
        (Some(f), _) => f.numbers(Field::finite)?,
        // A data-set loss initialises its parameters from `loss.seed` (`d = 0`: no x0 given).
        (None, LossKind::Logistic(_) | LossKind::Mlp(_)) => {
            match kind.build(&0).map_err(|e| model_err_in(s, e))? {
                models::LossKind::Logistic(l) => l.0.x0().to_vec(),
                models::LossKind::Mlp(l) => l.0.x0().to_vec(),
                _ => Vec::new(),
            }
        }
        (None, _) => s.req("x0")?.numbers(Field::finite)?,
    };
    let d = x0.len();
    kind.validate(&d).map_err(|e| model_err_in(s, e))?;
    kind.fill_defaults(&d);
    Ok(LossSpec { x0, kind })
}

fn parse_noise(s: &Section, d: usize, n: usize) -> Res<NoiseSpec> {
    if let Some(f) = s.opt("kind") {
        if let Value::String(k) = f.value {
            if k == MINIBATCH_KIND {
                let context = format!(" for {} = \"{MINIBATCH_KIND}\"", s.key("kind"));
                return parse_section::<MinibatchKeys>(s, &["kind"], &context)
                    .map(NoiseSpec::Minibatch);
            }
            if !NoiseModel::KINDS.contains(&k.as_str()) {
                let mut all = NoiseModel::KINDS.to_vec();
                all.push(MINIBATCH_KIND);
                return Err(f.unknown(k, &all, "kind"));
            }
        }
    }
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

/// Minibatch noise against the rest: a data-set loss, a batch that fits its training rows, an
/// optimizer whose minibatch SDE is known (`models::minibatch`), and a normalized schedule's
/// `a`, `b` given (their defaults are injected-noise constants).
fn check_minibatch(cfg: &ExperimentConfig, mb: &MinibatchNoise) -> Res<()> {
    if !matches!(cfg.loss.kind, LossKind::Logistic(_) | LossKind::Mlp(_)) {
        return Err(err_msg(
            "noise.kind",
            format!(
                "noise.kind = \"minibatch\": needs loss.kind = \"logistic\" | \"mlp\" (a data-set \
                 loss with training rows to sample; loss.kind = \"{}\" has none)",
                cfg.loss.kind_name()
            ),
        ));
    }
    let loss = cfg.loss.to_model().map_err(|e| model_err("loss", e))?;
    if let Err(e) = crate::build::minibatch(&loss, mb, &cfg.optimizer, cfg.agents.n) {
        return Err(match e {
            ModelError::InvalidParameter {
                name,
                value,
                reason,
            } => {
                let key = match name.as_str() {
                    "compressor.kind" => "optimizer.compressor.kind".to_string(),
                    _ => name,
                };
                err_msg(&key, format!("{key} = {value}: {reason}"))
            }
            other => model_err("noise", other),
        });
    }
    if let ScheduleSpec::Normalized(spec) = &cfg.schedule {
        for (key, v) in [("schedule.a", spec.a), ("schedule.b", spec.b)] {
            if v.is_none() {
                return Err(err_missing(
                    key,
                    " (with noise.kind = \"minibatch\" there are no injected-noise constants to \
                     compute its default from: give it explicitly)",
                ));
            }
        }
    }
    Ok(())
}

fn parse_noise_model(s: &Section, d: usize) -> Res<NoiseModel> {
    if let Some(f) = s.opt("kind") {
        if f.value.as_str() == Some(MINIBATCH_KIND) {
            return Err(f.err(
                "minibatch noise is one law for every agent: give it in [noise], not per agent",
            ));
        }
    }
    let (_, mut m) = parse_kind::<NoiseModel>(s, &[])?;
    m.validate(&d).map_err(|e| model_err_in(s, e))?;
    m.fill_defaults(&d);
    Ok(m)
}

fn parse_optimizer(s: &Section, d: usize) -> Res<OptimizerSpec> {
    // The compressor is a kinded table of its own: checked first, with its own key paths.
    if let Some(c) = s.opt_section("compressor")? {
        let (_, spec) = parse_kind::<CompressorSpec>(&c, &[])?;
        spec.validate(&d).map_err(|e| model_err_in(&c, e))?;
    }
    Ok(parse_kind::<OptimizerSpec>(s, &[])?.1)
}

/// DSGD and DCSGD need finite noise covariance: their SDEs do not exist for Student-t `nu ≤ 2`.
fn check_noise_for_optimizer(noise: &NoiseSpec, optimizer: &OptimizerSpec) -> Res<()> {
    let kind = optimizer.kind_name();
    if let OptimizerSpec::DsignSgd(_) = optimizer {
        return Ok(());
    }
    for (prefix, m) in noise.models_with_keys() {
        if let NoiseModel::StudentT(t) = m {
            if !has_finite_covariance(m) {
                let key = format!("{prefix}.nu");
                return Err(err_msg(
                    &key,
                    format!(
                        "{key} = {}: optimizer.kind = \"{kind}\" needs noise with finite covariance, but \
                         Student-t noise with nu <= 2 has infinite variance, so the SDE does not exist \
                         (MATH.md §1.3); use nu > 2, or optimizer.kind = \"dsignsgd\"",
                        show_f64(t.nu)
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// The defaults of the normalized schedule: `l0`, `l1` from the loss, `a`, `b` from the noise and
/// compressor (MATH.md §6.2), each only where the file does not give it.
fn fill_normalized(
    spec: &mut models::schedule::NormalizedSpec,
    loss: &LossSpec,
    noise: &NoiseSpec,
    compressor: &CompressorSpec,
    n: usize,
) -> Res<()> {
    let smooth = loss.smoothness().map_err(|e| model_err("loss", e))?;
    if spec.l0.is_none() {
        if let Some((l0, _)) = smooth {
            spec.l0 = Some(computed_finite("schedule.l0", l0, "the loss")?);
        }
    }
    if spec.l1.is_none() {
        if let Some((_, l1)) = smooth {
            spec.l1 = Some(computed_finite("schedule.l1", l1, "the loss")?);
        }
    }
    // The inputs of the defaults, only if one is needed (`None`: infinite variance).
    let agents = match (spec.a, spec.b) {
        (Some(_), Some(_)) => None,
        _ => agent_constants(loss.dim(), noise, compressor, n)?,
    };
    if spec.a.is_none() {
        spec.a = Some(normalized_default(
            "schedule.a",
            agents.as_ref(),
            noise,
            AgentConstants::a,
        )?);
    }
    if spec.b.is_none() {
        spec.b = Some(normalized_default(
            "schedule.b",
            agents.as_ref(),
            noise,
            AgentConstants::b,
        )?);
    }
    Ok(())
}

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
            NoiseModel::StudentT(t) if !has_finite_covariance(m) => {
                Some(format!("{p}.nu = {}", show_f64(t.nu)))
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
/// ([`variance_bound`]).
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
        .build(&d)
        .map_err(|e| model_err("optimizer.compressor", e))?
        .omega(d);
    let mut bounds = Vec::new();
    for (key, m) in noise.models_with_keys() {
        match variance_bound(m, d).map_err(|e| model_err(&key, e))? {
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

// ---------------------------------------------------------------------------------------------
// The top level, `[agents]`, `[sde]`, `[run]` and minibatch noise: one spec each, by the same
// mechanism as the kinds (`models::kind_spec!`). A spec's serde struct is the section as the file
// writes it: its fields are the allowed keys (read off serde for "unknown key" and "did you
// mean"), each with its doc (type, default: meaning) beside it, which `sdelab list` and the
// README's generated tables print. Its `build` is the one place that checks the values and turns
// them into the typed section above; errors name the key as `ModelError`s do for the kinds.
// ---------------------------------------------------------------------------------------------

/// An integer as a file may write it: a TOML integer (always an `i64`), or a float that is exactly one (`2e5`) and
/// at most 2^53 (beyond that a float no longer represents every integer). Ranges are checked by
/// the section's `build`, so that the message can name the bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Int(pub i64);

struct IntVisitor;

impl<'de> serde::de::Visitor<'de> for IntVisitor {
    type Value = Int;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an integer")
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Int, E> {
        Ok(Int(v))
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Int, E> {
        const EXACT: f64 = 9_007_199_254_740_992.0;
        if v.is_finite() && v.fract() == 0.0 && v.abs() <= EXACT {
            Ok(Int(v as i64))
        } else {
            Err(E::invalid_type(serde::de::Unexpected::Float(v), &self))
        }
    }
}

impl<'de> Deserialize<'de> for Int {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Int, D::Error> {
        d.deserialize_any(IntVisitor)
    }
}

/// An integer or a list of them (`sde.svag_l = 16` or `[4, 16]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum IntOrList {
    /// One integer.
    One(Int),
    /// A list (each entry's errors name its index).
    List(Vec<Int>),
}

struct IntOrListVisitor;

impl<'de> serde::de::Visitor<'de> for IntOrListVisitor {
    type Value = IntOrList;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an integer")
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<IntOrList, E> {
        IntVisitor.visit_i64(v).map(IntOrList::One)
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<IntOrList, E> {
        IntVisitor.visit_f64(v).map(IntOrList::One)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<IntOrList, A::Error> {
        let mut out = Vec::new();
        while let Some(i) = seq.next_element::<Int>()? {
            out.push(i);
        }
        Ok(IntOrList::List(out))
    }
}

impl<'de> Deserialize<'de> for IntOrList {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<IntOrList, D::Error> {
        d.deserialize_any(IntOrListVisitor)
    }
}

fn invalid(
    key: impl Into<String>,
    value: impl fmt::Display,
    reason: impl Into<String>,
) -> ModelError {
    ModelError::invalid(key, value, reason)
}

/// `key`, an integer ≥ `min` that fits in `usize`.
fn count(key: &str, i: Int, min: u64) -> Result<usize, ModelError> {
    if i.0 < 0 || (i.0 as u64) < min {
        return Err(invalid(key, i.0, format!("must be at least {min}")));
    }
    usize::try_from(i.0).map_err(|_| invalid(key, i.0, "too large"))
}

fn finite(key: &str, x: f64) -> Result<f64, ModelError> {
    if x.is_finite() {
        Ok(x)
    } else {
        Err(invalid(key, show_f64(x), "must be a finite number"))
    }
}

fn positive(key: &str, x: f64) -> Result<f64, ModelError> {
    if finite(key, x)? > 0.0 {
        Ok(x)
    } else {
        Err(invalid(key, show_f64(x), "must be positive"))
    }
}

/// `key[i]` for the entries of a list.
fn entry(key: &str, i: usize) -> String {
    format!("{key}[{i}]")
}

/// The value of the library enum `T` that `s` names; `what` names the category in the message.
fn named<T: Named>(key: &str, s: &str, what: &str) -> Result<T, ModelError> {
    T::all()
        .iter()
        .copied()
        .find(|t| t.config_name() == s)
        .ok_or_else(|| unknown_name(key, s, &names::<T>(), what))
}

fn unknown_name(key: &str, s: &str, options: &[&str], what: &str) -> ModelError {
    invalid(
        key,
        format!("{s:?}"),
        format!(
            "unknown {what} (expected one of {}){}",
            one_of(options),
            did_you_mean(s, options)
        ),
    )
}

/// A list whose entries must be distinct: the key of the first repeat.
fn first_repeat<T: PartialEq>(key: &str, xs: &[T]) -> Option<String> {
    (0..xs.len())
        .find(|&i| xs[..i].contains(&xs[i]))
        .map(|i| entry(key, i))
}

fn listed_twice(key: String) -> ModelError {
    invalid(key, "", "listed twice")
}

/// The context of the section specs: nothing (each section is checked on its own; the rules
/// across sections are in [`validate`]).
type NoContext = ();

models::kind_spec! {
    /// The top level of a config file: its own keys, and the sections, each parsed by its spec.
    pub struct TopLevelKeys: KindSpec<Output = (String, u64), Context = NoContext> {
        name: String => "string, required: experiment name, used for the output folder \
            (`results/<name>/weak-error`, `results/<name>/run` unless `--out`). 1 to 100 characters \
            from letters, digits, `-`, `_`, `.`; not starting with `.`",
        seed: Option<Int> => "integer >= 0, default 0: master seed; every random stream is derived \
            from it: each learning rate, process and path gets its own stream keyed by (seed, index), \
            and DCSGD's compressors a per-iteration stream drawn from the path's",
        loss: Table => "table, required: the objective f and the starting point x0 (`loss.kind`)",
        agents: Option<Table> => "table, optional (without it, n = 1): the number of agents",
        noise: Table => "table, required: the gradient noise (`noise.kind`), shared or one \
            `[[noise.agents]]` table per agent",
        optimizer: Table => "table, required: the discrete algorithm (`optimizer.kind`) and its \
            compressor",
        schedule: Option<Table> => "table, default kind = \"constant\": the learning-rate \
            multiplier eta_k (`schedule.kind`)",
        sde: Option<Table> => "table, optional (every key has a default): the SDE models and how \
            to integrate them",
        run: Table => "table, required: horizon, learning rates, paths, observables",
    }
    summary "the top level of a config file";
    build(self, _) {
        let ok_chars = self
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if self.name.is_empty() || !ok_chars || self.name.starts_with('.') || self.name.len() > 100 {
            return Err(invalid(
                "name",
                format!("{:?}", self.name),
                "must be a plain folder name: 1 to 100 letters, digits, '-', '_' or '.', not starting with '.'",
            ));
        }
        let seed = match self.seed {
            Some(Int(i)) => u64::try_from(i).map_err(|_| invalid("seed", i, "must not be negative"))?,
            None => DEFAULT_SEED,
        };
        Ok((self.name.clone(), seed))
    }
}

models::kind_spec! {
    /// `[agents]` as written.
    pub struct AgentsKeys: KindSpec<Output = AgentsSpec, Context = NoContext> {
        n: Int => "integer in [1, 1000000], required in `[agents]` (no `[agents]`: 1): the number of \
            agents N; each draws an independent stochastic gradient per iteration",
    }
    summary "the number of agents";
    build(self, _) {
        let n = count("n", self.n, 1)?;
        if n > MAX_AGENTS {
            return Err(invalid("n", n, format!("must be at most {MAX_AGENTS}")));
        }
        Ok(AgentsSpec { n })
    }
}

models::kind_spec! {
    /// `[sde]` as written.
    pub struct SdeKeys: KindSpec<Output = SdeSpec, Context = NoContext> {
        models: Option<Vec<String>> => "list of strings, non-empty, no repeats, default \
            [\"first_order\", \"second_order\", \"stability\"]: the SDE models to compare with (the \
            `sde.models` values below; MATH.md §5.1), plus \"svag\" for SVAG runs (see `sde.svag_l`)",
        scheme: Option<String> => "string, default \"weak2\": the integrator (the `sde.scheme` values \
            below)",
        substeps: Option<Int> => "integer >= 1, default unset: SDE steps per learning-rate step \
            (Delta = eta/substeps). Unset: `weak-error` chooses them per point, refining until its \
            Richardson estimate of the integrator's bias is below a quarter of the point's interval, \
            and `run` uses 8. Set: that many (the bias is still estimated and reported), and a scheme \
            whose weak order is below a model's expected order is refused for that model",
        max_substeps: Option<Int> => "integer >= 2, default 256: the cap of that refinement; a point \
            that reaches it unresolved says so in its verdict",
        increments: Option<String> => "string, default \"gaussian\": the Brownian increments (the \
            `sde.increments` values below); `two_point` is not allowed with `weak2`",
        svag_l: Option<IntOrList> => "integer >= 1 or list of them, no repeats, default [16] when \
            `sde.models` lists \"svag\": SVAG (Li-Malladi-Arora 2021): `sdelab run` adds one \
            trajectory `SVAG l=<l>` per value, a covariance-free simulation of (A) (l steps of eta/l \
            per iteration, two draws of the direction, weights (1 +- sqrt(2l - 1))/2; l = 1 is the \
            discrete method). Giving it turns SVAG on by itself, and `sde.models` may then list only \
            \"svag\" (`run`; `weak-error` needs a model besides it). `weak-error` adds, per value, \
            rows `svag l=<l>` (SVAG(l) against the discrete method, independent ensembles) and the \
            agreement of SVAG(l) with (A) at the horizon (`svag_agreement.csv`); `stability` adds, \
            per value, a curve `svag l=<l>` (diverged fraction against eta)",
    }
    summary "the SDE models and their integration";
    build(self, _) {
        let mut out = default_sde();
        // Checked first: whether it is given decides whether `models` may be empty.
        let svag_l = match &self.svag_l {
            None => None,
            Some(IntOrList::One(l)) => Some(vec![count("svag_l", *l, 1)?]),
            Some(IntOrList::List(ls)) if ls.is_empty() => {
                return Err(invalid("svag_l", "[]", "must not be empty"))
            }
            Some(IntOrList::List(ls)) => Some(
                ls.iter()
                    .enumerate()
                    .map(|(i, l)| count(&entry("svag_l", i), *l, 1))
                    .collect::<Result<Vec<_>, _>>()?,
            ),
        };
        if let Some(ls) = &svag_l {
            if let Some(i) = (0..ls.len()).find(|&i| ls[..i].contains(&ls[i])) {
                return Err(invalid("svag_l", "", format!("{} listed twice", ls[i])));
            }
        }
        let mut svag = false;
        if let Some(list) = &self.models {
            if list.is_empty() && svag_l.is_none() {
                return Err(invalid("models", "[]", "must not be empty"));
            }
            out.models.clear();
            for (i, name) in list.iter().enumerate() {
                let key = entry("models", i);
                if name == SVAG_MODEL {
                    if svag {
                        return Err(listed_twice(key));
                    }
                    svag = true;
                    continue;
                }
                let Some(m) = SdeModel::ALL.iter().copied().find(|m| m.name() == name) else {
                    let mut all = names::<SdeModel>();
                    all.push(SVAG_MODEL);
                    return Err(unknown_name(&key, name, &all, "model"));
                };
                if out.models.contains(&m) {
                    return Err(listed_twice(key));
                }
                out.models.push(m);
            }
        }
        out.svag_l = match svag_l {
            Some(ls) => ls,
            None if svag => vec![DEFAULT_SVAG_L],
            None => Vec::new(),
        };
        if let Some(s) = &self.scheme {
            out.scheme = named("scheme", s, "scheme")?;
        }
        if let Some(i) = self.substeps {
            out.substeps = Some(count("substeps", i, 1)?);
        }
        if let Some(i) = self.max_substeps {
            out.max_substeps = count("max_substeps", i, 2)?;
        }
        if let Some(s) = &self.increments {
            out.increments = named("increments", s, "increment kind")?;
            if out.scheme == SchemeKind::Weak2 && out.increments == IncrementKind::TwoPoint {
                return Err(invalid(
                    "increments",
                    format!("{s:?}"),
                    "sde.scheme = \"weak2\" needs increments matching Gaussian moments up to order 5; \
                     two-point increments limit it to weak order 1 (use \"gaussian\" or \"three_point\")",
                ));
            }
        }
        Ok(out)
    }
}

models::kind_spec! {
    /// `[run]` as written.
    pub struct RunKeys: KindSpec<Output = RunSpec, Context = NoContext> {
        horizon: f64 => "number > 0, required: the horizon T in SDE time; a run at base learning \
            rate eta has K = floor(T/eta) iterations (see Rules: T/eta need not be an integer)",
        etas: Vec<f64> => "list of numbers in (0, T], required, non-empty, no repeats, at most 10^7 \
            iterations each: base learning rates eta. `weak-error` uses all of them (at least 2, to \
            fit an order); `run` uses the first",
        paths: Int => "integer >= 2, required: Monte Carlo paths per learning rate and per model",
        observables: Option<Vec<String>> => "list of strings, non-empty, no repeats, default \
            [\"loss\", \"x\", \"x_sq\", \"grad_norm\"]: the test functions g (the `run.observables` \
            values below)",
        diverge_above: Option<f64> => "number > 0, default 1e8: a path whose loss exceeds this (or \
            becomes non-finite) is counted as diverged and kept out of the statistics",
        common_random_numbers: Option<bool> => "bool, default true: drive the discrete algorithm and \
            the SDEs with the same random numbers where the noise allows (Gaussian noise); a large \
            variance reduction for weak errors",
        exact_reference: Option<bool> => "bool, default false: replace the simulated SDE side by its \
            closed-form expectations (MATH.md §7). Only where a closed form exists: loss.kind = \
            \"quadratic\", optimizer.kind = \"dsgd\", schedule.kind = \"constant\", Gaussian noise with \
            sigma1 = 0 (otherwise an error). The discrete side stays Monte Carlo, without coupling",
        quantiles: Option<Vec<f64>> => "list of numbers in (0, 1), no repeats, may be empty, default \
            [0.1, 0.5, 0.9]: quantile trajectories reported by `sdelab run` (empty: none)",
        x0_scales: Option<Vec<f64>> => "list of numbers > 0, non-empty, no repeats, default [1]: \
            `sdelab stability` only: the sweep is run once from each x0_scale * loss.x0",
        target_rel_ci: Option<f64> => "number in (0, 1), default unset: `weak-error` only: grow the \
            paths of each model and eta in doubling batches (paths 0..n, n..2n, ... of one stream, \
            merged in order: the same bits for any thread count), starting at twice the probe, until \
            every observable's ci95 <= target_rel_ci * weak_error or `run.paths` is spent (then a \
            warning). Each point reports `target_rel_ci_met`, and its paths as `sde.paths`; an \
            independent discrete ensemble (and `run.exact_reference`) always uses `run.paths`",
        max_paths: Option<Int> => "integer >= run.paths, default max(4 * run.paths, 2000) (run.paths with \
            run.target_rel_ci, which it cannot be combined with): `weak-error` only: the second \
            stage of a study. A learning rate at which a curve is unresolved only for want of paths \
            (a Monte Carlo floor, or an order interval too wide while the points agree with the fit) \
            runs again, every model, on fresh streams (seed derived from `seed`), on the paths its \
            measured errors ask for (aiming at ci95 <= 0.4 * weak_error, order +-0.4), at most \
            max_paths; only the rerun is reported (each such point carries `rerun`: the first \
            stage's paths, weak error and interval, and why). A curve that would need more than \
            max_paths, or that fails for another reason, is not rerun. Set it to run.paths for one \
            stage (needed by --shard)",
    }
    summary "horizon, learning rates, paths, observables";
    build(self, _) {
        let horizon = positive("horizon", self.horizon)?;
        if self.etas.is_empty() {
            return Err(invalid("etas", "[]", "must not be empty"));
        }
        for (i, &eta) in self.etas.iter().enumerate() {
            let key = entry("etas", i);
            positive(&key, eta)?;
            if self.etas[..i].contains(&eta) {
                return Err(listed_twice(key));
            }
            let k = iterations(horizon, eta);
            if k == 0 {
                return Err(invalid(key, show_f64(eta), format!(
                    "larger than run.horizon = {}, so there would be no iteration (iterations = floor(horizon/eta))",
                    show_f64(horizon)
                )));
            }
            if k > MAX_ITERATIONS {
                return Err(invalid(key, show_f64(eta), format!(
                    "run.horizon / eta = {} iterations, more than the limit of {MAX_ITERATIONS}",
                    show_f64(round_sig(horizon / eta))
                )));
            }
        }
        let paths = count("paths", self.paths, 2)?;
        let observables = match &self.observables {
            Some(list) if list.is_empty() => {
                return Err(invalid("observables", "[]", "must not be empty"))
            }
            Some(list) => list
                .iter()
                .enumerate()
                .map(|(i, s)| named::<Observable>(&entry("observables", i), s, "observable"))
                .collect::<Result<Vec<_>, _>>()?,
            None => Observable::DEFAULT.to_vec(),
        };
        if let Some(key) = first_repeat("observables", &observables) {
            return Err(listed_twice(key));
        }
        let diverge_above = match self.diverge_above {
            Some(x) => positive("diverge_above", x)?,
            None => DEFAULT_DIVERGE_ABOVE,
        };
        let quantiles = match &self.quantiles {
            Some(qs) => {
                for (i, &q) in qs.iter().enumerate() {
                    let key = entry("quantiles", i);
                    if !(finite(&key, q)? > 0.0 && q < 1.0) {
                        return Err(invalid(key, show_f64(q), "must be in (0, 1)"));
                    }
                    if qs[..i].contains(&q) {
                        return Err(listed_twice(key));
                    }
                }
                qs.clone()
            }
            None => DEFAULT_QUANTILES.to_vec(),
        };
        let x0_scales = match &self.x0_scales {
            Some(xs) if xs.is_empty() => {
                return Err(invalid("x0_scales", "[]", "must not be empty"))
            }
            Some(xs) => {
                for (i, &x) in xs.iter().enumerate() {
                    let key = entry("x0_scales", i);
                    positive(&key, x)?;
                    if xs[..i].contains(&x) {
                        return Err(listed_twice(key));
                    }
                }
                xs.clone()
            }
            None => vec![1.0],
        };
        let target_rel_ci = match self.target_rel_ci {
            Some(x) if !(finite("target_rel_ci", x)? > 0.0 && x < 1.0) => {
                return Err(invalid(
                    "target_rel_ci",
                    show_f64(x),
                    "must be in (0, 1): the largest ci95 / weak_error the paths are grown to",
                ))
            }
            t => t,
        };
        let max_paths = match self.max_paths {
            Some(i) => {
                let m = count("max_paths", i, 2)?;
                if m < paths {
                    return Err(invalid(
                        "max_paths",
                        m.to_string(),
                        format!("must be at least run.paths = {paths} (it caps the paths of a rerun point)"),
                    ));
                }
                if m > paths && target_rel_ci.is_some() {
                    return Err(invalid(
                        "max_paths",
                        m.to_string(),
                        "cannot be combined with run.target_rel_ci, whose doubling batches already \
                         grow the paths up to run.paths: remove one of them",
                    ));
                }
                m
            }
            None if target_rel_ci.is_some() => paths,
            // Within what a TOML integer holds, so the filled-in config parses back.
            None => paths
                .saturating_mul(DEFAULT_MAX_PATHS_FACTOR)
                .max(DEFAULT_MAX_PATHS_FLOOR)
                .min(i64::MAX as usize),
        };
        Ok(RunSpec {
            horizon,
            etas: self.etas.clone(),
            paths,
            observables,
            diverge_above,
            common_random_numbers: self.common_random_numbers.unwrap_or(true),
            exact_reference: self.exact_reference.unwrap_or(false),
            quantiles,
            x0_scales,
            target_rel_ci,
            max_paths,
        })
    }
}

models::kind_spec! {
    /// `noise.kind = "minibatch"` as written (besides `kind`).
    pub struct MinibatchKeys: KindSpec<Output = MinibatchNoise, Context = NoContext> {
        batch: Int => "integer >= 1, required: training rows each agent draws per iteration (B); at \
            most the training rows without replacement",
        replacement: Option<bool> => "bool, default true: draw the rows with replacement (covariance \
            Sigma/B) or as a uniform subset (Sigma/B times (n - B)/(n - 1))",
    }
    summary "batch, replacement = true: each agent's gradient is the mean gradient of `batch` \
        training rows of a data-set loss (logistic, mlp); shared by all agents; dsgd, dcsgd \
        (identity, bernoulli), dsignsgd";
    build(self, _) {
        Ok(MinibatchNoise {
            kind: MinibatchTag::Minibatch,
            batch: count("batch", self.batch, 1)?,
            replacement: self.replacement.unwrap_or(true),
        })
    }
}

/// A section spec: the specs above, whose documented keys are the section's keys.
trait SectionKeys: KindSpec<Context = NoContext> + serde::de::DeserializeOwned {}
impl<T: KindSpec<Context = NoContext> + serde::de::DeserializeOwned> SectionKeys for T {}

/// Parses section `s` with the spec `K`: keys that are not `K`'s fields (nor in `skip`, which the
/// caller reads) are refused with "did you mean" (`context` is appended to "unknown key"), the
/// rest deserialized with their key paths, then checked and built by `K::build`.
fn parse_section<K: SectionKeys>(s: &Section, skip: &[&str], context: &str) -> Res<K::Output> {
    let mut allowed: Vec<&str> = skip.to_vec();
    allowed.extend(serde_fields::<K>());
    s.check_keys(&allowed, context)?;
    let own: Table = s
        .table
        .iter()
        .filter(|(k, _)| !skip.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let spec: K =
        serde_path_to_error::deserialize(Value::Table(own)).map_err(|e| de_err(s, e, K::KEYS))?;
    spec.build(&()).map_err(|e| model_err_in(s, e))
}

/// The documented sections: `(key prefix, keys)`, in file order (the top level has no prefix).
pub fn sections() -> Vec<(&'static str, &'static [KeyDoc])> {
    vec![
        ("", TopLevelKeys::KEYS),
        ("agents", AgentsKeys::KEYS),
        ("sde", SdeKeys::KEYS),
        ("run", RunKeys::KEYS),
    ]
}

fn default_sde() -> SdeSpec {
    SdeSpec {
        models: SdeModel::ALL.to_vec(),
        scheme: SchemeKind::Weak2,
        substeps: None,
        max_substeps: DEFAULT_MAX_SUBSTEPS,
        increments: IncrementKind::Gaussian,
        svag_l: Vec::new(),
    }
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
    if !matches!(loss.kind, LossKind::DiagonalQuadratic(_)) {
        why = Some(format!("loss.kind = \"{}\"", loss.kind_name()));
    } else if !matches!(optimizer, OptimizerSpec::Dsgd(_)) {
        why = Some(format!("optimizer.kind = \"{}\"", optimizer.kind_name()));
    } else if *schedule != ScheduleSpec::default() {
        why = Some(format!("schedule.kind = \"{}\"", schedule.kind_name()));
    } else {
        for (prefix, m) in noise.models_with_keys() {
            match m {
                NoiseModel::Gaussian(g) if g.sigma1 != 0.0 => {
                    why = Some(format!("{prefix}.sigma1 = {}", show_f64(g.sigma1)));
                }
                NoiseModel::Gaussian(_) => continue,
                _ => {
                    why = Some(format!("{prefix}.kind = \"{}\"", m.kind_name()));
                }
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

// ---------------------------------------------------------------------------------------------
// The catalog of kinds: `sdelab list` and the README's key tables, generated from the definitions
// ---------------------------------------------------------------------------------------------

/// Orders of a scheme, read off the scheme itself ([`sde_core::Scheme`]).
struct Orders;

impl compare::solver_choice::SolverVisitor for Orders {
    type Output = (Option<f64>, f64);
    fn visit<Sch: sde_core::Scheme, I: sde_core::Increments>(
        self,
        scheme: Sch,
        _increments: I,
    ) -> Self::Output {
        (scheme.strong_order(), scheme.weak_order())
    }
}

/// Every kind of the families defined in `models`, with the key prefix of its section.
fn model_kinds() -> Vec<(&'static str, KindInfo)> {
    let mut out = Vec::new();
    for (section, kinds) in [
        ("loss", LossKind::catalog()),
        ("noise", NoiseModel::catalog()),
        ("optimizer", OptimizerSpec::catalog()),
        ("optimizer.compressor", CompressorSpec::catalog()),
        ("schedule", ScheduleSpec::catalog()),
    ] {
        out.extend(kinds.into_iter().map(|k| (section, k)));
        if section == "noise" {
            // Minibatch noise is not injected noise: it is defined here, not in `models`.
            out.push((
                section,
                KindInfo {
                    family: "noise",
                    kind: MINIBATCH_KIND,
                    summary: MinibatchKeys::SUMMARY,
                    keys: MinibatchKeys::KEYS,
                    fields: serde_fields::<MinibatchKeys>(),
                },
            ));
        }
    }
    out
}

/// The heading of a section's keys in `sdelab list`.
fn section_label(prefix: &str) -> &'static str {
    match prefix {
        "" => "top-level keys",
        "agents" => "[agents] keys",
        "sde" => "[sde] keys",
        _ => "[run] keys",
    }
}

/// Every kind and key, for `sdelab list`: `(section, name, description)`. The kinds (those
/// defined in `models` and minibatch noise) come with their summaries, the keys of the top level,
/// `[agents]`, `[sde]` and `[run]` last, with their docs; the SDE models, schemes, increments and
/// observables are the library enums, with the orders the library declares.
pub fn catalog() -> Vec<(&'static str, &'static str, String)> {
    fn entries<T: Named>(
        section: &'static str,
        describe: fn(T) -> String,
    ) -> impl Iterator<Item = (&'static str, &'static str, String)> {
        T::all()
            .iter()
            .map(move |&t| (section, t.config_name(), describe(t)))
    }
    let mut out: Vec<_> = model_kinds()
        .into_iter()
        .map(|(_, k)| (k.family, k.kind, k.summary.to_string()))
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
        let (strong, weak) = compare::solver_choice::dispatch(s, IncrementKind::Gaussian, Orders);
        match strong {
            Some(o) => format!("strong order {o}, weak order {weak}"),
            None => format!("weak order {weak}"),
        }
    }));
    out.extend(entries("sde.increments", |i: IncrementKind| {
        format!("{}, up to weak order {}", i.summary(), i.weak_order())
    }));
    out.extend(entries("run.observables", |o: Observable| {
        o.summary().to_string()
    }));
    out.extend(sections().into_iter().flat_map(|(prefix, keys)| {
        keys.iter()
            .map(move |d| (section_label(prefix), d.key, d.doc.to_string()))
    }));
    out
}

/// First line of the generated key tables in README.md and docs/CLI.md.
pub const KEY_TABLES_BEGIN: &str = "<!-- BEGIN GENERATED KEY TABLES: regenerate with \
    `SDELAB_WRITE_KEY_TABLES=1 cargo test --release -p sdelab --test config key_tables` -->";
/// Last line of the generated key tables.
pub const KEY_TABLES_END: &str = "<!-- END GENERATED KEY TABLES -->";

/// The tables of the sections' keys, of the kinds and their keys, and of the named values, in
/// Markdown, generated from the definitions (the section specs' key docs, the kinds' summaries
/// and key docs, the library enums' names and orders), between
/// [`KEY_TABLES_BEGIN`] and [`KEY_TABLES_END`].
pub fn key_tables_markdown() -> String {
    let mut s = String::new();
    s.push_str(KEY_TABLES_BEGIN);
    s.push_str("\n\n| key | type, default: meaning |\n| --- | --- |\n");
    for (prefix, keys) in sections() {
        for d in keys {
            s.push_str(&format!(
                "| `{}` | {} |\n",
                join_key(prefix, d.key),
                d.doc.replace('|', "\\|")
            ));
        }
    }
    s.push_str("\n| key | kind | type, default: meaning |\n| --- | --- | --- |\n");
    for (section, k) in model_kinds() {
        s.push_str(&format!(
            "| `{section}.kind` | `{}` | {} |\n",
            k.kind,
            k.summary.replace('|', "\\|")
        ));
        for d in k.keys {
            s.push_str(&format!(
                "| `{section}.{}` | `{}` | {} |\n",
                d.key,
                k.kind,
                d.doc.replace('|', "\\|")
            ));
        }
    }
    s.push_str("\n| key | value | meaning |\n| --- | --- | --- |\n");
    for (section, name, what) in catalog().into_iter().filter(|(s, _, _)| {
        matches!(
            *s,
            "sde.models" | "sde.scheme" | "sde.increments" | "run.observables"
        )
    }) {
        s.push_str(&format!(
            "| `{section}` | `{name}` | {} |\n",
            what.replace('|', "\\|")
        ));
    }
    s.push('\n');
    s.push_str(KEY_TABLES_END);
    s.push('\n');
    s
}
