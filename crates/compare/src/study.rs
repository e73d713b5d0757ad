//! Weak-error studies: how far an SDE model is from its discrete optimizer, how fast that
//! distance shrinks with the learning rate, and whether the measurement can say so.
//!
//! For each learning rate `η`, model and observable `g` the **estimand** is the weak error
//! `E = max_{1 ≤ k ≤ K} |E g(x_k) − E g(X_{kη})|`, `K = ⌊T/η⌋` (MATH.md §4). A point reports:
//!
//! - `weak_error`: `max_k |m_k|`, `m_k` the Monte Carlo mean difference at iteration `k` (paired
//!   over coupled paths where both sides are alive, or the difference of two independent means);
//! - `ci95`: a **simultaneous** 95% interval for `E` with the integrator's bias in it: with
//!   Bonferroni's multiplier `z_K` over the `K` iterations, `[max_k (|m_k| − z_K se_k)⁺,
//!   max_k (|m_k| + z_K se_k)]` holds with probability ≥ 95% whatever the correlation between
//!   iterations, so the data-chosen maximum carries no selection bias; its half-width (the larger
//!   distance from `weak_error` to either end) is `ci95_monte_carlo`, and `ci95` adds
//!   `integrator_bias_bound` to it. `ci95_pointwise` is the plain interval at the maximising
//!   iteration;
//! - `integrator_bias`: the Richardson estimate of the SDE side's discretisation bias, from the
//!   same paths integrated at half the step on one Brownian path ([`crate::ladder`]), and a
//!   bound on it over all iterations (`integrator_bias_bound`). By default
//!   (`sde_estimator = "richardson"`) the SDE side is the Richardson extrapolation of three
//!   levels `b, 2b, 4b` on one Brownian path and the bias is the extrapolation's residual,
//!   estimated from the three levels ([`richardson_point`]); the study chooses `b` and the paths
//!   of the finer levels per point, until the bound is below a quarter of the Monte Carlo
//!   interval. With `sde.max_substeps < 4` one level is refined, its bias from a coarse level on
//!   the first paths only (`bias_level_paths`);
//! - per side (discrete, SDE), the diverged paths, their fraction and its Wilson interval.
//!
//! A curve (model × observable) gets the weighted fit of its order, the order theory expects
//! (`models::expected_weak_order`) and a verdict: `diverged` when any path of either side
//! diverged at any point (the weak error of a process that blows up is not defined: the numbers
//! shown are then those of the pairs that survived, the estimand named in the warnings),
//! `resolved` when every point is measured well enough for its order to mean something, and
//! `unresolved` otherwise, with the reasons.

use crate::error::CompareError;
use crate::exact::ExactMoments;
use crate::inference::{
    next_order_fit, paths_for_relative_ci, reduced_chi2_95, simultaneous_z95,
    span_for_order_half_width, weighted_order_fit, wilson95, NextOrderFit,
};
use crate::ladder::{self, alive_index, index, Block, LadderModel, LadderPaths};
use crate::observable::Observable;
use crate::sim::{DiscretePaths, PathSettings};
use crate::solver_choice::{dispatch, SolverVisitor};
use models::loss::Loss;
use models::method::GradientMethod;
use models::optimizer::Optimizer;
use models::sde::SdeModel;
use models::{expected_weak_order, ExpectedOrder};
use sde_core::stats::Z95;
use sde_core::{Ensemble, EnsembleStats, IncrementKind, Increments, Scheme, SchemeKind, Solver};
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};

/// Default cap on the SDE substeps per iteration the automatic refinement may reach.
pub const DEFAULT_MAX_SUBSTEPS: usize = 256;

/// Everything a weak-error study needs besides the optimizer.
#[derive(Clone, Debug, Serialize)]
pub struct StudySettings {
    pub etas: Vec<f64>,
    pub horizon: f64,
    pub paths: u64,
    pub seed: u64,
    pub x0: Vec<f64>,
    pub models: Vec<SdeModel>,
    pub scheme: SchemeKind,
    pub increments: IncrementKind,
    /// SDE steps per iteration; `None`: chosen per point by the study (refined until the
    /// integrator's bias is below a quarter of the point's interval).
    pub substeps: Option<usize>,
    /// Largest number of substeps the automatic refinement may use.
    pub max_substeps: usize,
    pub observables: Vec<Observable>,
    pub diverge_above: f64,
    pub common_random_numbers: bool,
    pub exact_reference: bool,
    /// Grow the ensemble in doubling batches of paths (`0..n`, `n..2n`, …, merged in order) until
    /// every point of a model has `ci95 ≤ target_rel_ci · weak_error`, or `paths` is spent;
    /// `None`: every point runs on `paths` paths. In `(0, 1)`.
    pub target_rel_ci: Option<f64>,
    /// The most paths a point may get in the study's second stage (see [`rerun_plan`]):
    /// a learning rate at which a curve is unresolved only for want of paths (a Monte Carlo
    /// floor, an order interval too wide while the points agree with the fit) runs again, on
    /// fresh streams, with the paths its measured errors ask for, at most `max_paths`. `None`
    /// (or `paths`): one stage. Not with `target_rel_ci`, whose batches already grow the paths.
    pub max_paths: Option<u64>,
}

/// A setting of [`StudySettings`], named in errors (one list for every settings struct of the
/// crate; the CLI maps each to its config key).
pub use crate::error::Setting;

impl StudySettings {
    /// Checks the settings, naming the field ([`Setting`]) of anything out of range.
    pub fn validate(&self, d: usize) -> Result<(), CompareError> {
        check_non_empty(
            &self.etas,
            Setting::Etas,
            "needs at least one learning rate",
        )?;
        check_horizon_and_etas(self.horizon, &self.etas)?;
        check_paths(self.paths)?;
        if let Some(t) = self.target_rel_ci {
            if !(t > 0.0 && t < 1.0) {
                return Err(CompareError::bad(
                    Setting::TargetRelCi,
                    t,
                    "must be in (0, 1) (the largest ci95 / weak_error the paths should reach)",
                ));
            }
        }
        if let Some(m) = self.max_paths {
            if m < self.paths {
                return Err(CompareError::bad(
                    Setting::MaxPaths,
                    m,
                    format!(
                        "must be at least the paths ({}): it caps the paths of the rerun of a point",
                        self.paths
                    ),
                ));
            }
            if m > self.paths && self.target_rel_ci.is_some() {
                return Err(CompareError::bad(
                    Setting::MaxPaths,
                    m,
                    "has no use with target_rel_ci, whose doubling batches already grow the paths \
                     (up to paths): set one of them",
                ));
            }
        }
        if let Some(m) = self.substeps {
            check_substeps(m)?;
        }
        if self.max_substeps < 2 {
            return Err(CompareError::bad(
                Setting::MaxSubsteps,
                self.max_substeps,
                "must be at least 2",
            ));
        }
        check_non_empty(&self.models, Setting::Models, "needs at least one model")?;
        check_non_empty(
            &self.observables,
            Setting::Observables,
            "needs at least one observable",
        )?;
        check_x0(&self.x0, d)?;
        if !(self.diverge_above > 0.0) {
            return Err(CompareError::bad(
                Setting::DivergeAbove,
                self.diverge_above,
                "must be positive",
            ));
        }
        Ok(())
    }

    /// Iterations of the horizon at learning rate `eta`: `⌊T/η⌋` (with a tolerance so that
    /// `T/η` that is an integer up to rounding is not cut short).
    pub fn iterations(&self, eta: f64) -> usize {
        iterations(self.horizon, eta)
    }
}

/// `run.horizon` positive and finite, and every `run.etas[i]` positive, finite and short enough
/// for one iteration: the checks every simulation of this crate shares (one definition).
pub(crate) fn check_horizon_and_etas(horizon: f64, etas: &[f64]) -> Result<(), CompareError> {
    if !(horizon > 0.0) || !horizon.is_finite() {
        return Err(CompareError::bad(
            Setting::Horizon,
            horizon,
            "must be positive and finite",
        ));
    }
    for (i, e) in etas.iter().enumerate() {
        let key = Setting::Etas.at(i);
        if !(*e > 0.0) || !e.is_finite() {
            return Err(CompareError::bad(key, e, "must be positive and finite"));
        }
        if iterations(horizon, *e) < 1 {
            return Err(CompareError::bad(
                key,
                e,
                format!("is longer than the horizon {horizon} (no iteration fits)"),
            ));
        }
    }
    Ok(())
}

/// `run.paths` ≥ 2 (a variance needs two).
pub(crate) fn check_paths(paths: u64) -> Result<(), CompareError> {
    if paths < 2 {
        return Err(CompareError::bad(
            Setting::Paths,
            paths,
            "needs at least 2 paths",
        ));
    }
    Ok(())
}

/// A list setting that needs an entry: `message` says what for.
pub(crate) fn check_non_empty<T>(
    list: &[T],
    setting: Setting,
    message: &str,
) -> Result<(), CompareError> {
    if list.is_empty() {
        return Err(CompareError::bad(setting, "[]", message));
    }
    Ok(())
}

/// `sde.substeps` ≥ 1 (the SDE takes at least one step per iteration).
pub(crate) fn check_substeps(substeps: usize) -> Result<(), CompareError> {
    if substeps == 0 {
        return Err(CompareError::bad(
            Setting::Substeps,
            0,
            "must be at least 1",
        ));
    }
    Ok(())
}

/// `loss.x0` has the problem's dimension `d`.
pub(crate) fn check_x0(x0: &[f64], d: usize) -> Result<(), CompareError> {
    if x0.len() != d {
        return Err(CompareError::bad(
            Setting::X0,
            format!("{x0:?}"),
            format!("has length {} but the problem has dimension {d}", x0.len()),
        ));
    }
    Ok(())
}

/// `⌊T/η⌋`, robust to `T/η` landing a hair below an integer.
pub fn iterations(horizon: f64, eta: f64) -> usize {
    (horizon / eta * (1.0 + 1e-12)).floor() as usize
}

/// How the SDE side of a point was obtained.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reference {
    /// Discrete and SDE paths driven by common random numbers; the interval is that of the
    /// paired difference.
    Coupled,
    /// Two independent ensembles; the interval is that of the difference of two means.
    Independent,
    /// The SDE side is its closed-form expectation (MATH.md §7); only the discrete side is Monte
    /// Carlo.
    Exact,
}

impl Reference {
    /// The serialized name.
    pub fn name(&self) -> &'static str {
        match self {
            Reference::Coupled => "coupled",
            Reference::Independent => "independent",
            Reference::Exact => "exact",
        }
    }
}

/// One side (discrete or SDE) of a point.
#[derive(Clone, Debug, Serialize)]
pub struct SideSummary {
    /// Mean of the observable at the last iteration over the side's surviving paths (`None`
    /// when none survived).
    pub final_mean: Option<f64>,
    pub final_ci95: Option<f64>,
    pub paths: u64,
    /// Paths of this side that diverged at some iteration up to the horizon.
    pub diverged: u64,
    pub diverged_fraction: f64,
    /// Wilson 95% interval of the diverged fraction.
    pub diverged_ci95: [f64; 2],
}

/// Random numbers drawn for one point, per side: standard normals, or 64-bit words for two- and
/// three-point increments. Counted per path and summed (integers: the same for any thread
/// count). A coupled ladder runs every model of a learning rate on one discrete side, and models
/// at the same substeps share their increments: such shared numbers appear in each of their
/// points (the study's total, [`StudyCost`], counts them once). Not counted: the auxiliary bits
/// of the weak-2 scheme and draws of the optimizer beyond its coupling normals (masks,
/// Student-t radii).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RandomNumbers {
    /// The discrete side's coupling normals (`None` for an independent discrete ensemble, whose
    /// draws depend on the method, and for an exact reference).
    pub discrete: Option<u64>,
    /// The SDE side's increments: the Brownian bridges inside the iterations (and, uncoupled,
    /// the iteration totals `ζ`).
    pub sde: u64,
}

/// What a whole study cost, for budgets and benchmarks (machine-independent counts).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StudyCost {
    /// Random numbers of every ladder run, each counted once (see [`RandomNumbers`]).
    pub random_numbers: u64,
    /// Ladder runs (ensembles) the study ran.
    pub ladder_runs: u64,
    /// SDE substeps taken, summed over paths, models and levels (a diverged side stops
    /// counting).
    pub sde_steps: u64,
    /// SDE substeps of the level reported by each point's last run alone: what the same study
    /// costs without any bias level or probe.
    pub reported_sde_steps: u64,
    /// Discrete iterations taken, summed over paths (an independent discrete ensemble is
    /// counted as paths × iterations).
    pub discrete_steps: u64,
}

/// Closed-form values at one learning rate, when a closed form exists.
#[derive(Clone, Debug, Serialize)]
pub struct ExactPoint {
    /// `max_k |E g(x_k) − E g(X_{kη})|` with both expectations exact.
    pub weak_error: f64,
    pub discrete_final: f64,
    pub sde_final: f64,
}

/// One learning rate of a weak-error curve.
#[derive(Clone, Debug, Serialize)]
pub struct WeakErrorPoint {
    pub eta: f64,
    pub iterations: usize,
    /// SDE steps per iteration behind the reported SDE side (0 for an exact reference).
    pub substeps: usize,
    /// `max_k |m_k|`; `None` when a side diverged on every path.
    pub weak_error: Option<f64>,
    /// Half-width of the 95% interval of the weak error: the simultaneous Monte Carlo half-width
    /// plus the integrator's bias bound, the whole error budget (see the module doc).
    pub ci95: Option<f64>,
    /// The interval itself: the simultaneous Monte Carlo interval widened by the bias bound on
    /// each side (clipped at 0).
    pub ci95_interval: Option<[f64; 2]>,
    /// The Monte Carlo part of `ci95` alone (simultaneous over the iterations).
    pub ci95_monte_carlo: Option<f64>,
    /// Half-width of the pointwise 95% interval at the maximising iteration.
    pub ci95_pointwise: Option<f64>,
    /// Iteration where the maximum is attained.
    pub at_iteration: Option<usize>,
    /// How the SDE side's value was formed from the levels of the ladder (see [`SdeEstimator`]).
    pub sde_estimator: SdeEstimator,
    /// Richardson estimate of the SDE side's integrator bias at the maximising iteration (with
    /// `sde_estimator = "richardson"`: the residual bias of the extrapolated value).
    pub integrator_bias: Option<f64>,
    /// `max_k (|b_k| + z_K se(b_k))`: a 95% bound on the integrator's bias over the horizon.
    pub integrator_bias_bound: Option<f64>,
    /// The levels tried, in order (the first may be a probe on a subset of the paths; the last is
    /// the one reported).
    pub refinement: Vec<Refinement>,
    /// `(Var d + Var s) / Var(d − s)` at the maximising iteration: how much the coupling shrank
    /// the variance of the difference (coupled points only).
    pub variance_reduction: Option<f64>,
    /// Random numbers the simulations behind this point drew (every level tried included).
    pub random_numbers: RandomNumbers,
    pub discrete: SideSummary,
    pub sde: SideSummary,
    pub reference: Reference,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exact: Option<ExactPoint>,
    /// With `run.target_rel_ci`: whether `ci95 ≤ target_rel_ci · weak_error` was reached (the
    /// paths used are `sde.paths`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_rel_ci_met: Option<bool>,
    /// When this point comes from the study's second stage: what the first stage measured, and
    /// why it was run again (the point itself is the second stage's alone).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rerun: Option<Rerun>,
}

/// A point of the study's second stage ([`StudySettings::max_paths`]): its learning rate ran
/// again on more paths, on streams independent of the first run's, and only the second run is
/// reported. Pooling the two would bias the estimate: the first run's numbers decided that the
/// second was needed (a point is rerun when its weak error came out small against its interval).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Rerun {
    /// Paths of the first stage at this learning rate.
    pub first_paths: u64,
    /// The first stage's weak error and 95% half-width at this point (not used in the curve).
    pub first_weak_error: Option<f64>,
    pub first_ci95: Option<f64>,
    /// Random numbers the first stage drew for this point (the point's own `random_numbers`
    /// count the second stage alone).
    pub first_random_numbers: RandomNumbers,
    /// The curves (`<model> <observable>`) whose first-stage verdict asked for the paths, each
    /// with what it lacked.
    pub asked_by: Vec<String>,
    /// Master seed of the second stage's streams ([`crate::streams::rerun_seed`] of the study's
    /// seed): the point's ensembles are seeded from it as the first stage's are from the seed.
    pub seed: u64,
}

/// How a point's SDE value is formed from the levels of its ladder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SdeEstimator {
    /// One level (`substeps`), its bias estimated from a second level on the same Brownian path
    /// (or the closed form, for an exact reference).
    Level,
    /// The Richardson extrapolation `R = E_2 + (E_2 − E_1)/(2^p − 1)` of the levels at `b`, `2b`
    /// and `4b = substeps` substeps on one Brownian path, estimated as a telescoping sum of
    /// per-path differences (level `b` on every path, the finer ones on the first paths); the
    /// residual bias `O(h^{p+1})` of `R` is estimated from the three levels,
    /// `(R' − R)/(2^{p+1} − 1)` with `R'` the extrapolation of the two coarser levels.
    Richardson,
    /// The SVAG process itself ([`crate::svag`]): no integrator and no bias estimate (SVAG(l) is
    /// what is simulated; its distance to (A) is the separate agreement check).
    Svag,
}

impl SdeEstimator {
    /// The name written in result documents and CSV files.
    pub fn name(&self) -> &'static str {
        match self {
            SdeEstimator::Level => "level",
            SdeEstimator::Richardson => "richardson",
            SdeEstimator::Svag => "svag",
        }
    }
}

/// The verdict on a curve.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Every point is resolved (significant, precise, integrator bias controlled) and the order
    /// has a finite interval: the order means what it says.
    Resolved,
    /// The measurement cannot support the order (see `verdict_reasons`).
    Unresolved,
    /// Paths diverged: the weak error is not defined.
    Diverged,
}

impl Verdict {
    /// The serialized name.
    pub fn name(&self) -> &'static str {
        match self {
            Verdict::Resolved => "resolved",
            Verdict::Unresolved => "unresolved",
            Verdict::Diverged => "diverged",
        }
    }
}

/// The weak error of one model and one observable over the learning rates, with its order.
#[derive(Clone, Debug, Serialize)]
pub struct WeakErrorCurve {
    pub model: SdeModel,
    pub observable: Observable,
    pub points: Vec<WeakErrorPoint>,
    /// Weighted least-squares slope of `log weak_error` against `log η`.
    pub order: Option<f64>,
    pub order_ci95: Option<[f64; 2]>,
    /// The order theory predicts for this model, schedule and covariance (MATH.md §5.1).
    pub expected_order: f64,
    pub expected_order_reason: String,
    pub verdict: Verdict,
    pub verdict_reasons: Vec<String>,
    /// Whether the expected order lies in `order_ci95` (only when resolved).
    pub consistent_with_expected: Option<bool>,
    /// Order of the closed-form weak errors, when they exist.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exact_order: Option<f64>,
    /// When a resolved order's interval excludes the expected order `q`: the fit
    /// `E ≈ a η^q + b η^{q+1}` that says whether one next-order term explains the departure
    /// (pre-asymptotic) or not (a warning says which).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_order_fit: Option<NextOrderFit>,
    pub warnings: Vec<String>,
}

/// Progress callback: receives the number of newly finished path simulations.
pub type Progress<'a> = &'a (dyn Fn(u64) + Sync);

/// Path simulations a study runs before any refinement (for a progress bar; refinements add
/// their own work to the bar as they start).
pub fn study_work(s: &StudySettings, coupled: bool) -> u64 {
    let per_eta = if coupled {
        s.models.len() as u64
    } else {
        1 + s.models.len() as u64
    };
    per_eta * s.etas.len() as u64 * s.paths
}

/// Runs `sim` on `paths` paths, reporting progress as increments.
pub(crate) fn run_ensemble<P: sde_core::PathSimulation>(
    paths: u64,
    seed: u64,
    sim: &P,
    progress: Progress,
) -> Result<EnsembleStats, CompareError> {
    let delta = ProgressDelta::new(progress);
    Ok(Ensemble::new(paths, seed)?.run_with_progress(sim, &|done| delta.report(done)))
}

/// Turns an ensemble's cumulative "paths done" into the increments a [`Progress`] callback takes.
pub(crate) struct ProgressDelta<'a> {
    last: AtomicU64,
    progress: Progress<'a>,
}

impl<'a> ProgressDelta<'a> {
    pub(crate) fn new(progress: Progress<'a>) -> Self {
        ProgressDelta {
            last: AtomicU64::new(0),
            progress,
        }
    }

    /// Reports `done` paths of the current ensemble.
    pub(crate) fn report(&self, done: u64) {
        let before = self.last.swap(done, Ordering::Relaxed);
        (self.progress)(done.saturating_sub(before));
    }

    /// Starts counting a new ensemble.
    pub(crate) fn reset(&self) {
        self.last.store(0, Ordering::Relaxed);
    }
}

pub use crate::streams::{stream_seed, Role as StreamRole};

/// A model of a ladder run: its coarse substeps and the paths each level runs on.
#[derive(Clone, Copy)]
struct Rung {
    model: SdeModel,
    coarse: usize,
    coarse_paths: u64,
    fine_paths: u64,
    /// Paths of the third level (`4·coarse`; 0: two levels).
    finer_paths: u64,
}

/// One ladder run over several models (each at its coarse level) on shared paths.
struct RunLadder<'a, L, M> {
    opt: &'a Optimizer<L, M>,
    models: Vec<Rung>,
    settings: &'a PathSettings,
    /// The run covers the paths `from..from + paths` of the ladder's stream.
    from: u64,
    paths: u64,
    seed: u64,
    coupled: bool,
    progress: Progress<'a>,
}

/// What a ladder run returns: the statistics of every model (laid out by [`ladder::model_stats`]),
/// the scheme's weak order and the random numbers drawn.
struct LadderRun {
    stats: EnsembleStats,
    order: f64,
    noise: u64,
    /// Per model: its increments' random numbers (shared within a level).
    increments: Vec<u64>,
    total: u64,
    /// Per model: the SDE substeps it took.
    sde_steps: Vec<u64>,
    discrete_steps: u64,
}

impl<L: Loss, M: GradientMethod> SolverVisitor for RunLadder<'_, L, M> {
    type Output = Result<LadderRun, CompareError>;
    fn visit<Sch: Scheme, I: Increments>(self, scheme: Sch, increments: I) -> Self::Output {
        let order = scheme.weak_order();
        let mut models = Vec::with_capacity(self.models.len());
        for r in &self.models {
            let sde = self.opt.sde(r.model, self.settings.eta)?;
            models.push(LadderModel {
                solver: Solver::new(sde, scheme.clone(), increments.clone())?,
                coarse: r.coarse,
                coarse_paths: r.coarse_paths,
                fine_paths: r.fine_paths,
                finer_paths: r.finer_paths,
                richardson: 1.0 / (2f64.powf(order) - 1.0),
            });
        }
        let sim = LadderPaths::new(models, self.opt, self.settings, self.coupled);
        // The progress bar counts one path simulation per model.
        let k = self.models.len() as u64;
        let progress = |done: u64| (self.progress)(done * k);
        let stats = if self.from == 0 {
            run_ensemble(self.paths, self.seed, &sim, &progress)?
        } else {
            let range = PathRange {
                sim: &sim,
                from: self.from,
                seed: self.seed,
            };
            run_ensemble(self.paths, self.seed, &range, &progress)?
        };
        Ok(LadderRun {
            stats,
            order,
            noise: sim.noise_drawn(),
            increments: (0..self.models.len())
                .map(|i| sim.increments_drawn(i))
                .collect(),
            total: sim.drawn(),
            sde_steps: (0..self.models.len()).map(|i| sim.sde_steps(i)).collect(),
            discrete_steps: sim.discrete_steps(),
        })
    }
}

/// The paths `from..` of `sim`'s ensemble as paths `0..` of another: path `p` gets the stream
/// and the index of path `from + p`, so batches of one stream can be run one after another.
struct PathRange<'a, P> {
    sim: &'a P,
    from: u64,
    seed: u64,
}

impl<P: sde_core::PathSimulation> sde_core::PathSimulation for PathRange<'_, P> {
    type Workspace = P::Workspace;
    fn workspace(&self) -> Self::Workspace {
        self.sim.workspace()
    }
    fn n_save(&self) -> usize {
        self.sim.n_save()
    }
    fn n_observables(&self) -> usize {
        self.sim.n_observables()
    }
    fn simulate(
        &self,
        path: sde_core::PathInput<'_>,
        ws: &mut Self::Workspace,
        out: &mut [f64],
    ) -> usize {
        let path = path.index;
        let p = self.from + path;
        let mut rng = sde_core::derive_stream(self.seed, p);
        self.sim
            .simulate(sde_core::PathInput::new(p, &mut rng), ws, out)
    }
}

/// Folds `b` (the later paths) into `a`, accumulator by accumulator: a fixed order, so the result
/// does not depend on the thread count.
fn merge_stats(a: &mut EnsembleStats, b: &EnsembleStats) {
    a.paths += b.paths;
    for (x, y) in a.stats.iter_mut().zip(&b.stats) {
        x.merge(y);
    }
    for (x, y) in a.diverged.iter_mut().zip(&b.diverged) {
        *x += y;
    }
}

/// Whether every point of a model meets `run.target_rel_ci`: `ci95 ≤ t · weak_error`.
fn target_met(pts: &[WeakErrorPoint], t: f64) -> bool {
    pts.iter().all(|p| match (p.weak_error, p.ci95) {
        (Some(e), Some(ci)) => ci <= t * e.abs(),
        _ => false,
    })
}

/// Paths of a study's first full run: every path, or with `run.target_rel_ci` the first batch
/// (twice the probe, a multiple of the ensemble's chunk, at most every path).
fn first_batch(s: &StudySettings) -> u64 {
    match s.target_rel_ci {
        None => s.paths,
        Some(_) => {
            let chunk = sde_core::ensemble::CHUNK as u64;
            (2 * probe_paths(s))
                .div_ceil(chunk)
                .saturating_mul(chunk)
                .min(s.paths)
        }
    }
}

/// The batch after `paths`: twice as many, at most `budget`.
fn next_batch(paths: u64, budget: u64) -> u64 {
    paths.saturating_mul(2).min(budget)
}

/// Checks that the scheme and increments can integrate every requested model, before any
/// simulation starts (so a bad combination fails fast with the scheme's own message).
struct CheckModel<'a, L, M> {
    opt: &'a Optimizer<L, M>,
    model: SdeModel,
    eta: f64,
}

impl<L: Loss, M: GradientMethod> SolverVisitor for CheckModel<'_, L, M> {
    type Output = Result<f64, CompareError>;
    fn visit<Sch: Scheme, I: Increments>(self, scheme: Sch, increments: I) -> Self::Output {
        let order = scheme.weak_order();
        let sde = self.opt.sde(self.model, self.eta)?;
        Solver::new(sde, scheme, increments)?;
        Ok(order)
    }
}

/// Whether the study can couple discrete and SDE paths: the method must support it and the
/// increments must be exact Gaussians (the Brownian bridge pinned to the coupled total needs
/// them).
pub fn can_couple<L: Loss, M: GradientMethod>(opt: &Optimizer<L, M>, s: &StudySettings) -> bool {
    s.common_random_numbers
        && s.increments == IncrementKind::Gaussian
        && ladder::coupling_dim(opt) > 0
}

/// Runs the weak-error study of every requested model and observable.
pub fn weak_error_study<L: Loss, M: GradientMethod>(
    opt: &Optimizer<L, M>,
    s: &StudySettings,
    exact: Option<&dyn ExactMoments>,
    progress: Progress,
) -> Result<Vec<WeakErrorCurve>, CompareError> {
    weak_error_study_with_cost(opt, s, exact, progress).map(|(c, _)| c)
}

/// The refinement state of one model at one learning rate.
struct ModelState {
    coarse: usize,
    /// Paths of the level that only serves the bias estimate in the next run (with three levels:
    /// the finest one, on whose paths every level runs).
    bias_paths: u64,
    /// With three levels: paths of the middle level in the next run.
    mid_paths: u64,
    /// SDE substeps of the reported level in the last run.
    reported_steps: u64,
    /// Whether the next run is the probe.
    probing: bool,
    /// The next run covers the paths `from..goal`.
    from: u64,
    goal: u64,
    /// Statistics of the paths `0..from` at the current level (the batches so far).
    acc: Option<EnsembleStats>,
    tried: Vec<Refinement>,
    drawn: RandomNumbers,
    done: Option<Vec<WeakErrorPoint>>,
}

/// [`weak_error_study`], also returning what the study cost.
pub fn weak_error_study_with_cost<L: Loss, M: GradientMethod>(
    opt: &Optimizer<L, M>,
    s: &StudySettings,
    exact: Option<&dyn ExactMoments>,
    progress: Progress,
) -> Result<(Vec<WeakErrorCurve>, StudyCost), CompareError> {
    let mut cost = StudyCost::default();
    s.validate(opt.dim())?;
    if s.exact_reference && exact.is_none() {
        return Err(CompareError::bad(
            Setting::ExactReference,
            true,
            "no closed form exists for this problem (it needs DSGD on a diagonal quadratic with \
             Gaussian noise of constant covariance and a constant schedule)",
        ));
    }
    let mut expected = Vec::new();
    for &model in &s.models {
        let scheme_order = dispatch(
            s.scheme,
            s.increments,
            CheckModel {
                opt,
                model,
                eta: s.etas[0],
            },
        )?;
        let e = expected_weak_order(opt, model);
        if s.substeps.is_some() && !s.exact_reference && scheme_order < e.order {
            return Err(CompareError::bad(
                Setting::Scheme,
                s.scheme.name(),
                format!(
                    "has weak order {scheme_order}, below the expected order {} of model {} at a fixed \
                     sde.substeps: its bias would be counted as model error. Remove sde.substeps \
                     (the study then refines until the bias is negligible) or use scheme = \"weak2\"",
                    e.order,
                    model.name()
                ),
            ));
        }
        expected.push(e);
    }
    let coupled = can_couple(opt, s) && !s.exact_reference;
    // points[eta][model][observable]
    let mut points: Vec<Vec<Vec<WeakErrorPoint>>> = Vec::with_capacity(s.etas.len());
    for ei in 0..s.etas.len() {
        points.push(study_at_eta(
            opt, s, exact, ei, coupled, progress, &mut cost,
        )?);
    }
    let mut curves = finish_curves(s, &expected, &points);
    if let Some(plan) = rerun_plan(&curves, s) {
        // The second stage: each learning rate whose points need more paths runs again, every
        // model and observable, on streams of their own (a master seed derived from the study's),
        // so the decision to run it, taken on the first stage's numbers, does not bias it.
        let seed = crate::streams::rerun_seed(s.seed);
        for (ei, paths, asked_by) in plan {
            let s2 = StudySettings {
                paths,
                seed,
                max_paths: None,
                ..s.clone()
            };
            let fresh = study_at_eta(opt, &s2, exact, ei, coupled, progress, &mut cost)?;
            for (old_m, new_m) in points[ei].iter_mut().zip(fresh) {
                for (old, mut p) in old_m.iter_mut().zip(new_m) {
                    p.rerun = Some(Rerun {
                        first_paths: old.sde.paths.max(old.discrete.paths),
                        first_weak_error: old.weak_error,
                        first_ci95: old.ci95,
                        first_random_numbers: old.random_numbers,
                        asked_by: asked_by.clone(),
                        seed,
                    });
                    *old = p;
                }
            }
        }
        curves = finish_curves(s, &expected, &points);
    }
    Ok((curves, cost))
}

/// Every model's and observable's curve from the points (`points[eta][model][observable]`).
fn finish_curves(
    s: &StudySettings,
    expected: &[ExpectedOrder],
    points: &[Vec<Vec<WeakErrorPoint>>],
) -> Vec<WeakErrorCurve> {
    let mut curves = Vec::new();
    for (mi, &model) in s.models.iter().enumerate() {
        for (oi, &obs) in s.observables.iter().enumerate() {
            let pts = points.iter().map(|at| at[mi][oi].clone()).collect();
            curves.push(finish_curve(model, obs, pts, &expected[mi], s));
        }
    }
    curves
}

/// The points of every model and observable at learning rate `s.etas[ei]` on `s.paths` paths
/// (`[model][observable]`), their streams seeded from `s.seed`.
#[allow(clippy::too_many_arguments)]
fn study_at_eta<L: Loss, M: GradientMethod>(
    opt: &Optimizer<L, M>,
    s: &StudySettings,
    exact: Option<&dyn ExactMoments>,
    ei: usize,
    coupled: bool,
    progress: Progress,
    cost: &mut StudyCost,
) -> Result<Vec<Vec<WeakErrorPoint>>, CompareError> {
    let eta = s.etas[ei];
    let n = s.observables.len();
    let mut out: Vec<Vec<WeakErrorPoint>> = vec![Vec::with_capacity(n); s.models.len()];
    let iters = s.iterations(eta);
    let settings = PathSettings {
        eta,
        iterations: iters,
        x0: s.x0.clone(),
        observables: s.observables.clone(),
        diverge_above: s.diverge_above,
    };
    let discrete = if coupled {
        None
    } else {
        let sim = DiscretePaths {
            opt,
            settings: &settings,
        };
        cost.discrete_steps += s.paths * iters as u64;
        Some(run_ensemble(
            s.paths,
            stream_seed(s.seed, ei, StreamRole::Discrete),
            &sim,
            progress,
        )?)
    };
    if s.exact_reference {
        let d = discrete.as_ref().ok_or_else(|| {
            CompareError::bad(
                Setting::CommonRandomNumbers,
                true,
                "internal: the exact reference runs an independent discrete ensemble",
            )
        })?;
        let ex = exact
            .ok_or_else(|| CompareError::bad(Setting::ExactReference, true, "no closed form"))?;
        for (mi, &model) in s.models.iter().enumerate() {
            for (oi, &obs) in s.observables.iter().enumerate() {
                out[mi].push(exact_reference_point(
                    d, ex, model, obs, oi, eta, iters, s.paths,
                ));
            }
        }
        return Ok(out);
    }
    let ladder_seed = stream_seed(s.seed, ei, StreamRole::Ladder);
    let report = if s.substeps.is_some() {
        Report::Coarse
    } else if s.max_substeps >= 4 {
        Report::Richardson
    } else {
        Report::Fine
    };
    let three = report == Report::Richardson;
    let mut states: Vec<ModelState> = s
        .models
        .iter()
        .map(|_| ModelState {
            coarse: s.substeps.unwrap_or(1),
            bias_paths: u64::MAX,
            mid_paths: u64::MAX,
            reported_steps: 0,
            probing: false,
            from: 0,
            goal: s.paths,
            acc: None,
            tried: Vec::new(),
            drawn: RandomNumbers {
                discrete: coupled.then_some(0),
                sde: 0,
            },
            done: None,
        })
        .collect();
    // With the substeps left to the study, a probe on the first paths (the same paths as
    // the full run's first ones) measures the bias at the coarsest level; the full run
    // then starts at the level the probe predicts, so the rejected level costs a
    // sixteenth of a run. Every model still refining runs in one ladder per path range, on
    // one discrete side: a model's numbers are those of a ladder of it alone.
    let probe = probe_paths(s);
    let first = first_batch(s);
    for st in states.iter_mut() {
        st.probing = s.substeps.is_none() && probe < first;
        st.goal = if st.probing { probe } else { first };
    }
    loop {
        let active: Vec<usize> = (0..states.len())
            .filter(|&i| states[i].done.is_none())
            .collect();
        if active.is_empty() {
            break;
        }
        // Models on the same path range share one ladder run (in the order of the models).
        let mut ranges: Vec<(u64, u64)> = Vec::new();
        for &i in &active {
            let r = (states[i].from, states[i].goal);
            if !ranges.contains(&r) {
                ranges.push(r);
            }
        }
        for (from, goal) in ranges {
            let group: Vec<usize> = active
                .iter()
                .copied()
                .filter(|&i| (states[i].from, states[i].goal) == (from, goal))
                .collect();
            let run = dispatch(
                s.scheme,
                s.increments,
                RunLadder {
                    opt,
                    models: group
                        .iter()
                        .map(|&i| {
                            let st = &states[i];
                            let (coarse_paths, fine_paths, finer_paths) = match report {
                                Report::Fine => (st.bias_paths, u64::MAX, 0),
                                Report::Coarse => (u64::MAX, st.bias_paths, 0),
                                Report::Richardson => (u64::MAX, st.mid_paths, st.bias_paths),
                            };
                            Rung {
                                model: s.models[i],
                                coarse: st.coarse,
                                coarse_paths,
                                fine_paths,
                                finer_paths,
                            }
                        })
                        .collect(),
                    settings: &settings,
                    from,
                    paths: goal - from,
                    seed: ladder_seed,
                    coupled,
                    progress,
                },
            )?;
            cost.random_numbers += run.total;
            cost.ladder_runs += 1;
            cost.discrete_steps += run.discrete_steps;
            cost.sde_steps += run.sde_steps.iter().sum::<u64>();
            let order = run.order;
            for (ai, &mi) in group.iter().enumerate() {
                let st = &mut states[mi];
                let coarse = st.coarse;
                if coupled {
                    st.drawn.discrete = st.drawn.discrete.map(|d| d + run.noise);
                    st.drawn.sde += run.increments[ai];
                } else {
                    st.drawn.sde += run.noise + run.increments[ai];
                }
                let batch = ladder::model_stats(&run.stats, ai, n, three);
                // A batch extends the paths before it at the same level: merged after them.
                let stats = match st.acc.take() {
                    Some(mut acc) if from > 0 => {
                        merge_stats(&mut acc, &batch);
                        acc
                    }
                    _ => batch,
                };
                let run_paths = goal;
                let pts: Vec<WeakErrorPoint> = (0..n)
                    .map(|o| {
                        let input = PointInput {
                            stats: &stats,
                            discrete: discrete.as_ref(),
                            o,
                            n,
                            eta,
                            iters,
                            coarse,
                            scheme_order: order,
                            paths: run_paths,
                        };
                        if three {
                            richardson_point(&input, st.bias_paths >= run_paths)
                        } else {
                            ladder_point(&input, report)
                        }
                    })
                    .collect();
                let reported = match report {
                    Report::Fine => 2 * coarse,
                    Report::Coarse => coarse,
                    Report::Richardson => 4 * coarse,
                };
                // The level is chosen for the interval of the study's whole path budget,
                // which shrinks as 1/sqrt(paths) from this run's: growing batches then
                // rarely need a finer level.
                let shrink = (run_paths as f64 / s.paths as f64).sqrt();
                // The worst ratio of bias bound to its target over the observables.
                let worst = pts
                    .iter()
                    .enumerate()
                    .filter_map(|(oi, p)| {
                        let target = (p.ci95_monte_carlo? * shrink / 4.0).max(1e-3 * p.weak_error?);
                        // The residual's own Monte Carlo error shrinks with the paths too
                        // (the next run puts enough on the finest level for that): on a
                        // probe, its bound is predicted for the study's paths. A full run
                        // is judged on its own bound.
                        let bound = if three && st.probing {
                            residual_bound(&stats, oi, n, order, shrink)?
                        } else {
                            p.integrator_bias_bound?
                        };
                        Some(bound / target)
                    })
                    .fold(0.0f64, |a, r| if r.is_nan() { a } else { a.max(r) });
                let bound = pts
                    .iter()
                    .filter_map(|p| p.integrator_bias_bound)
                    .fold(0.0f64, f64::max);
                st.tried.push(Refinement {
                    substeps: reported,
                    paths: run_paths,
                    bias_paths: st.bias_paths.min(run_paths),
                    bias_bound: bound,
                    levels: three.then(|| {
                        [
                            (coarse, run_paths),
                            (2 * coarse, st.mid_paths.min(run_paths)),
                            (4 * coarse, st.bias_paths.min(run_paths)),
                        ]
                        .map(|(substeps, paths)| LevelRun { substeps, paths })
                    }),
                });
                // Only the reported level runs on every path of a run.
                st.reported_steps = run_paths * iters as u64 * reported as u64;
                let is_probe = st.probing;
                st.probing = false;
                let fixed = s.substeps.is_some();
                let good = worst <= 1.0 || !worst.is_finite();
                // With three levels the finest, 4b, must stay within the cap.
                let capped = if three {
                    coarse >= s.max_substeps / 4
                } else {
                    2 * coarse >= s.max_substeps
                };
                if !is_probe && (fixed || good || capped) {
                    match s.target_rel_ci {
                        Some(t) if run_paths < s.paths && !target_met(&pts, t) => {
                            // Grow: the next batch doubles the paths, at the same level.
                            st.from = run_paths;
                            st.goal = next_batch(run_paths, s.paths);
                            st.acc = Some(stats);
                        }
                        _ => st.done = Some(pts),
                    }
                    continue;
                }
                if !good && !capped && three {
                    // The extrapolation's residual falls as h^{p+1}: jump to the level the
                    // estimate asks for (×1.5 margin).
                    let factor = (1.5 * worst).powf(1.0 / (order + 1.0)).max(2.0);
                    st.coarse = ((coarse as f64 * factor).ceil() as usize)
                        .next_power_of_two()
                        .min(s.max_substeps / 4)
                        .max(coarse + 1);
                } else if !good && !capped {
                    // The bias falls as h^p: jump to the level the estimate asks for (×1.5
                    // margin).
                    let factor = (1.5 * worst).powf(1.0 / order).max(2.0);
                    let fine = (((2 * coarse) as f64 * factor).ceil() as usize)
                        .next_power_of_two()
                        .min(s.max_substeps);
                    st.coarse = (fine / 2).max(coarse + 1);
                }
                if report == Report::Fine {
                    st.bias_paths = bias_level_paths(
                        &stats, &pts, n, order, coarse, st.coarse, run_paths, s.paths,
                    );
                } else if three {
                    // The cheapest of the level the residual asks for and two doublings:
                    // finer levels shrink the levels' differences, so their subsets can
                    // more than pay for the longer integration (substeps of the run).
                    let mut best: Option<(f64, usize, (u64, u64))> = None;
                    let mut b = st.coarse;
                    for _ in 0..3 {
                        if b > (s.max_substeps / 4).max(st.coarse) {
                            break;
                        }
                        let lp = richardson_level_paths(
                            &stats,
                            discrete.as_ref(),
                            &pts,
                            n,
                            order,
                            coarse,
                            b,
                            run_paths,
                            s.paths,
                        );
                        let work = (s.paths + 2 * lp.0 + 4 * lp.1) as f64 * b as f64;
                        if best.is_none_or(|(w, _, _)| work < w) {
                            best = Some((work, b, lp));
                        }
                        b *= 2;
                    }
                    if let Some((_, b, lp)) = best {
                        st.coarse = b;
                        (st.mid_paths, st.bias_paths) = lp;
                    }
                }
                // A new level starts again from the first path.
                st.from = 0;
                st.goal = if is_probe { first } else { run_paths };
            }
        }
    }
    for (mi, (&model, st)) in s.models.iter().zip(states).enumerate() {
        cost.reported_sde_steps += st.reported_steps;
        let final_points = st.done.unwrap_or_default();
        for (&obs, mut p) in s.observables.iter().zip(final_points) {
            p.refinement = st.tried.clone();
            p.random_numbers = st.drawn;
            if let Some(ex) = exact {
                p.exact = exact_point(ex, model, obs, eta, iters);
            }
            out[mi].push(p);
        }
    }
    Ok(out)
}

/// The integrator bias a point tolerates: a quarter of its interval, and never less than 0.1% of
/// the weak error (without noise the interval is zero, and the bias need only be small against
/// the error itself).
pub fn bias_target(p: &WeakErrorPoint) -> Option<f64> {
    Some((p.ci95_monte_carlo? / 4.0).max(1e-3 * p.weak_error?))
}

/// Paths the bias level (the coarse one, when the fine level is reported) needs in the next run,
/// from a run at `coarse_was` substeps on `run_paths` paths, for a next run on `paths` paths at
/// `coarse_next`.
///
/// The bias estimate is the mean of a paired coarse − fine difference, whose spread `σ_b` is far
/// below that of the discrete − SDE difference behind the interval: `M` paths give it a
/// simultaneous half-width `z_K σ_b / √M` (times the Richardson factor), which must stay below a
/// quarter of the bias target (itself a quarter of the next run's Monte Carlo interval, predicted
/// as this run's shrunk by `√(run_paths/paths)`). `σ_b` is the largest over the iterations, and is
/// scaled to the next level as `√(h_next/h)`, the slowest its variance can fall (strong order ½).
/// Never fewer than the probe's paths, never more than `paths`; a multiple of the ensemble's
/// chunk.
#[allow(clippy::too_many_arguments)]
fn bias_level_paths(
    stats: &EnsembleStats,
    pts: &[WeakErrorPoint],
    n: usize,
    scheme_order: f64,
    coarse_was: usize,
    coarse_next: usize,
    run_paths: u64,
    paths: u64,
) -> u64 {
    let factor = 1.0 / (2f64.powf(scheme_order) - 1.0);
    let scale = (coarse_was as f64 / coarse_next as f64).sqrt();
    let shrink = (run_paths as f64 / paths as f64).sqrt();
    let mut need = 0.0f64;
    for (o, p) in pts.iter().enumerate() {
        let (Some(mc), Some(e)) = (p.ci95_monte_carlo, p.weak_error) else {
            return paths;
        };
        let target = (mc * shrink / 4.0).max(1e-3 * e);
        let mut sd = 0.0f64;
        let mut k_used = 0usize;
        for k in 1..stats.n_save {
            let w = stats.summary(k, index(Block::CoarseMinusFine, o, n));
            if w.count >= 2 {
                sd = sd.max(w.variance.sqrt());
                k_used += 1;
            }
        }
        let half = simultaneous_z95(k_used.max(1)) * sd * factor * scale;
        if half == 0.0 {
            continue;
        }
        if !(target > 0.0) || !half.is_finite() {
            return paths;
        }
        need = need.max((4.0 * half / target).powi(2));
    }
    let chunk = sde_core::ensemble::CHUNK as u64;
    let m = (need.ceil() as u64).div_ceil(chunk).saturating_mul(chunk);
    m.max(probe_paths_of(paths)).min(paths)
}

/// Paths of the probe that measures the integrator's bias before a study's full run: a
/// sixteenth of the paths, at least 2000; no probe (the full path count) when that would be more
/// than a quarter of them.
fn probe_paths(s: &StudySettings) -> u64 {
    probe_paths_of(s.paths)
}

fn probe_paths_of(paths: u64) -> u64 {
    let p = (paths / 16).max(2000);
    if 4 * p > paths {
        paths
    } else {
        p
    }
}

/// One level the study tried for a point.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Refinement {
    /// SDE steps per iteration of the reported level.
    pub substeps: usize,
    /// Paths of that run (fewer than the study's for the probe).
    pub paths: u64,
    /// Paths of that run on which the level that only serves the bias estimate ran (the first
    /// ones by index; the coarse level when the fine one is reported).
    pub bias_paths: u64,
    /// The integrator-bias bound it measured (largest over the observables).
    pub bias_bound: f64,
    /// With `sde_estimator = "richardson"`: the three levels (coarsest first) and the paths each
    /// ran on (the first ones by index; `bias_paths` is the finest level's, where all three ran).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub levels: Option<[LevelRun; 3]>,
}

/// One level of a three-level run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct LevelRun {
    pub substeps: usize,
    pub paths: u64,
}

/// Which level of the ladder a point reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Report {
    /// The fine level (the study chose the substeps); its bias is `(m_c − m_f)/(2^p − 1)`.
    Fine,
    /// The coarse level (the user fixed `sde.substeps`); its bias is `(m_c − m_f) 2^p/(2^p − 1)`.
    Coarse,
    /// The Richardson extrapolation of three levels ([`richardson_point`]).
    Richardson,
}

/// Summary of one side from its alive indicator and its own observable block.
fn side_from_ladder(stats: &EnsembleStats, value: usize, alive: usize, paths: u64) -> SideSummary {
    let last = stats.n_save - 1;
    let a = stats.get(last, alive);
    let diverged = if a.count == 0 {
        0
    } else {
        ((1.0 - a.mean) * a.count as f64).round() as u64
    };
    let v = stats.summary(last, value);
    side(v.count, v.mean, v.ci95, diverged, paths)
}

pub(crate) fn side(count: u64, mean: f64, ci: f64, diverged: u64, paths: u64) -> SideSummary {
    SideSummary {
        final_mean: (count > 0).then_some(mean),
        final_ci95: (count > 1).then_some(ci),
        paths,
        diverged,
        diverged_fraction: diverged as f64 / paths.max(1) as f64,
        diverged_ci95: wilson95(diverged, paths),
    }
}

/// The simultaneous interval of `max_k |μ_k|` from per-iteration means and standard errors:
/// returns (estimate, half-width, [low, high], pointwise half-width, argmax).
fn max_with_band(m: &[(usize, f64, f64)]) -> Option<(f64, f64, [f64; 2], f64, usize)> {
    let usable: Vec<&(usize, f64, f64)> = m.iter().filter(|(_, mk, _)| mk.is_finite()).collect();
    if usable.is_empty() {
        return None;
    }
    let z = simultaneous_z95(usable.len());
    let mut best = (f64::NEG_INFINITY, 0.0, 0usize);
    let (mut lo, mut hi) = (0.0f64, 0.0f64);
    for &&(k, mk, se) in &usable {
        let se = if se.is_finite() { se } else { 0.0 };
        if mk.abs() > best.0 {
            best = (mk.abs(), se, k);
        }
        lo = lo.max(mk.abs() - z * se);
        hi = hi.max(mk.abs() + z * se);
    }
    let e = best.0;
    let half = (e - lo).max(hi - e);
    Some((e, half, [lo, hi], Z95 * best.1, best.2))
}

/// What a point of either ladder is computed from: the statistics of one model's run at one
/// learning rate, and where observable `o` of `n` stands in them.
#[derive(Clone, Copy)]
struct PointInput<'a> {
    stats: &'a EnsembleStats,
    /// The discrete side's own statistics, when it ran apart from the SDE (not coupled).
    discrete: Option<&'a EnsembleStats>,
    o: usize,
    n: usize,
    eta: f64,
    iters: usize,
    /// Substeps of the coarsest level.
    coarse: usize,
    scheme_order: f64,
    /// Paths the statistics hold.
    paths: u64,
}

fn ladder_point(input: &PointInput, report: Report) -> WeakErrorPoint {
    let &PointInput { stats, o, n, .. } = input;
    let (discrete, coarse, paths) = (input.discrete, input.coarse, input.paths);
    let (rep, rep_diff) = match report {
        Report::Coarse => (Block::Coarse, Block::DiscreteMinusCoarse),
        _ => (Block::Fine, Block::DiscreteMinusFine),
    };
    let p2 = 2f64.powf(input.scheme_order);
    let bias_factor = match report {
        Report::Coarse => p2 / (p2 - 1.0),
        _ => 1.0 / (p2 - 1.0),
    };
    // Per iteration k ≥ 1 (at k = 0 both sides sit at x0): mean difference and its standard error.
    let mut diffs = Vec::with_capacity(input.iters);
    for k in 1..stats.n_save {
        let (m, se) = match discrete {
            None => {
                let w = stats.summary(k, index(rep_diff, o, n));
                if w.count < 2 {
                    (f64::NAN, f64::NAN)
                } else {
                    (w.mean, w.std_err)
                }
            }
            Some(d) => {
                let a = d.summary(k, o);
                let b = stats.summary(k, index(rep, o, n));
                if a.count < 2 || b.count < 2 {
                    (f64::NAN, f64::NAN)
                } else {
                    (
                        a.mean - b.mean,
                        (a.std_err.powi(2) + b.std_err.powi(2)).sqrt(),
                    )
                }
            }
        };
        diffs.push((k, m, se));
    }
    // Integrator bias: Richardson on the coarse − fine differences of the same paths.
    let mut biases = Vec::with_capacity(input.iters);
    for k in 1..stats.n_save {
        let w = stats.summary(k, index(Block::CoarseMinusFine, o, n));
        if w.count >= 2 {
            biases.push((k, w.mean * bias_factor, w.std_err * bias_factor));
        }
    }
    let alive_rep = match report {
        Report::Coarse => alive_index(Block::Coarse, n, false),
        _ => alive_index(Block::Fine, n, false),
    };
    assemble_point(
        PointParts {
            substeps: match report {
                Report::Coarse => coarse,
                _ => 2 * coarse,
            },
            sde_estimator: SdeEstimator::Level,
            diffs: &diffs,
            biases: &biases,
            variance_blocks: (rep, rep_diff),
            alive_discrete: alive_index(Block::Discrete, n, false),
            sde: side_from_ladder(stats, index(rep, o, n), alive_rep, paths),
        },
        input,
    )
}

/// What distinguishes the points of the two ladders; [`assemble_point`] builds the rest alike.
struct PointParts<'a> {
    substeps: usize,
    sde_estimator: SdeEstimator,
    /// Per iteration `k ≥ 1`: the mean difference and its standard error.
    diffs: &'a [(usize, f64, f64)],
    /// Per iteration: the integrator-bias estimate and its standard error.
    biases: &'a [(usize, f64, f64)],
    /// The reported SDE block and the discrete − SDE block behind `variance_reduction`.
    variance_blocks: (Block, Block),
    /// Where the ladder records the discrete side's alive indicator.
    alive_discrete: usize,
    sde: SideSummary,
}

/// A ladder point: the weak error with its simultaneous band, the bias bound over the iterations
/// (added to the band), the variance reduction at the maximising iteration and the discrete side.
fn assemble_point(parts: PointParts, input: &PointInput) -> WeakErrorPoint {
    let &PointInput { stats, o, n, .. } = input;
    let (discrete, eta, iters, paths) = (input.discrete, input.eta, input.iters, input.paths);
    let band = max_with_band(parts.diffs);
    let biases = parts.biases;
    let zb = simultaneous_z95(biases.len());
    let bias_bound = (!biases.is_empty()).then(|| {
        biases
            .iter()
            .map(|(_, b, se)| b.abs() + zb * se)
            .fold(0.0, f64::max)
    });
    let at = band.map(|b| b.4);
    let bias_at = at.and_then(|k| biases.iter().find(|b| b.0 == k).map(|b| b.1));
    let (rep, rep_diff) = parts.variance_blocks;
    let variance_reduction = match (discrete, at) {
        (None, Some(k)) => {
            let vd = stats.summary(k, index(Block::Discrete, o, n)).variance;
            let vs = stats.summary(k, index(rep, o, n)).variance;
            let vdiff = stats.summary(k, index(rep_diff, o, n)).variance;
            let r = (vd + vs) / vdiff;
            r.is_finite().then_some(r)
        }
        _ => None,
    };
    let discrete_side = match discrete {
        None => side_from_ladder(
            stats,
            index(Block::Discrete, o, n),
            parts.alive_discrete,
            paths,
        ),
        Some(d) => {
            let last = d.n_save - 1;
            let v = d.summary(last, o);
            side(v.count, v.mean, v.ci95, d.diverged_total(), paths)
        }
    };
    WeakErrorPoint {
        eta,
        iterations: iters,
        substeps: parts.substeps,
        weak_error: band.map(|b| b.0),
        ci95: band.map(|b| b.1 + bias_bound.unwrap_or(0.0)),
        ci95_interval: band.map(|b| {
            let w = bias_bound.unwrap_or(0.0);
            [(b.2[0] - w).max(0.0), b.2[1] + w]
        }),
        ci95_monte_carlo: band.map(|b| b.1),
        ci95_pointwise: band.map(|b| b.3),
        at_iteration: at,
        sde_estimator: parts.sde_estimator,
        integrator_bias: bias_at,
        integrator_bias_bound: bias_bound,
        refinement: Vec::new(),
        variance_reduction,
        random_numbers: RandomNumbers::default(),
        discrete: discrete_side,
        sde: parts.sde,
        reference: if discrete.is_none() {
            Reference::Coupled
        } else {
            Reference::Independent
        },
        exact: None,
        target_rel_ci_met: None,
        rerun: None,
    }
}

/// One iteration of a three-level point.
struct RichTerms {
    /// The weak error's estimate at the iteration, `E[d − x_0] + E[x_0 − x_1] + (1 + ρ) E[x_1 −
    /// x_2]`, each term averaged over the paths where both of its sides ran and are alive.
    m: f64,
    /// Its standard error: the sum of the terms' (the terms share paths, so their covariance is
    /// not zero; the sum bounds the standard error of the sum whatever it is). When every level
    /// ran on every path, the estimate is instead the mean of the per-path `d − R` and this its
    /// own standard error (covariances included).
    se: f64,
    /// The first term's standard error alone.
    se_primary: f64,
    /// Per-path standard deviations of `x_0 − x_1` and `x_1 − x_2`.
    sd_b: f64,
    sd_c: f64,
    /// The residual bias of the extrapolation and its standard error, and the per-path standard
    /// deviation behind it.
    r: f64,
    se_r: f64,
    sd_r: f64,
}

/// The terms of a three-level point at iteration `k`; `None` when a term has fewer than two
/// paths (a level that diverged everywhere it ran).
#[allow(clippy::too_many_arguments)]
fn rich_terms(
    stats: &EnsembleStats,
    discrete: Option<&EnsembleStats>,
    o: usize,
    n: usize,
    k: usize,
    rho: f64,
    residual_factor: f64,
    full: bool,
) -> Option<RichTerms> {
    let (ma, sea) = match discrete {
        None => {
            let w = stats.summary(k, index(Block::DiscreteMinusCoarse, o, n));
            (w.count >= 2).then_some((w.mean, w.std_err))?
        }
        Some(d) => {
            let a = d.summary(k, o);
            let b = stats.summary(k, index(Block::Coarse, o, n));
            (a.count >= 2 && b.count >= 2).then_some((
                a.mean - b.mean,
                (a.std_err.powi(2) + b.std_err.powi(2)).sqrt(),
            ))?
        }
    };
    let b = stats.summary(k, index(Block::CoarseMinusFine, o, n));
    let c = stats.summary(k, index(Block::FineMinusFiner, o, n));
    let r = stats.summary(k, index(Block::Residual, o, n));
    if b.count < 2 || c.count < 2 || r.count < 2 {
        return None;
    }
    let (m, se) = if full {
        let x = stats.summary(k, index(Block::Extrapolated, o, n));
        match discrete {
            None => {
                let w = stats.summary(k, index(Block::DiscreteMinusExtrapolated, o, n));
                (w.count >= 2).then_some((w.mean, w.std_err))?
            }
            Some(d) => {
                let a = d.summary(k, o);
                (x.count >= 2).then_some((
                    a.mean - x.mean,
                    (a.std_err.powi(2) + x.std_err.powi(2)).sqrt(),
                ))?
            }
        }
    } else {
        (
            ma + b.mean + (1.0 + rho) * c.mean,
            sea + b.std_err + (1.0 + rho) * c.std_err,
        )
    };
    Some(RichTerms {
        m,
        se,
        se_primary: sea,
        sd_b: b.variance.sqrt(),
        sd_c: c.variance.sqrt(),
        r: r.mean * residual_factor,
        se_r: r.std_err * residual_factor,
        sd_r: r.variance.sqrt(),
    })
}

/// `max_k (|r_k| + z_K se(r_k) · se_scale)` of the residual of a three-level point's extrapolation.
fn residual_bound(
    stats: &EnsembleStats,
    o: usize,
    n: usize,
    scheme_order: f64,
    se_scale: f64,
) -> Option<f64> {
    let (_, rf) = richardson_weights(scheme_order);
    let r: Vec<(f64, f64)> = (1..stats.n_save)
        .map(|k| stats.summary(k, index(Block::Residual, o, n)))
        .filter(|w| w.count >= 2)
        .map(|w| (w.mean * rf, w.std_err * rf))
        .collect();
    let z = simultaneous_z95(r.len());
    (!r.is_empty()).then(|| {
        r.iter()
            .map(|(m, se)| m.abs() + z * se * se_scale)
            .fold(0.0, f64::max)
    })
}

/// `(ρ, 1/(2^{p+1} − 1))` of a scheme of weak order `p`.
fn richardson_weights(scheme_order: f64) -> (f64, f64) {
    (
        1.0 / (2f64.powf(scheme_order) - 1.0),
        1.0 / (2f64.powf(scheme_order + 1.0) - 1.0),
    )
}

/// A point of a three-level ladder (levels `b`, `2b`, `4b`): the SDE side is the Richardson
/// extrapolation `R = E_2 + ρ (E_2 − E_1)`, written as the telescoping sum
/// `E_0 + E[x_1 − x_0] + (1 + ρ) E[x_2 − x_1]` so that each term is a mean over the paths where its levels ran
/// (level 0 on all paths, levels 1 and 2 on the first ones). Its residual bias is estimated by
/// `(R' − R)/(2^{p+1} − 1)`, the mean of the per-path [`Block::Residual`], and bounded over the
/// iterations like the two-level bias.
fn richardson_point(input: &PointInput, full: bool) -> WeakErrorPoint {
    let &PointInput { stats, o, n, .. } = input;
    let (rho, rf) = richardson_weights(input.scheme_order);
    let terms: Vec<(usize, Option<RichTerms>)> = (1..stats.n_save)
        .map(|k| (k, rich_terms(stats, input.discrete, o, n, k, rho, rf, full)))
        .collect();
    let diffs: Vec<(usize, f64, f64)> = terms
        .iter()
        .map(|(k, t)| match t {
            Some(t) => (*k, t.m, t.se),
            None => (*k, f64::NAN, f64::NAN),
        })
        .collect();
    let biases: Vec<(usize, f64, f64)> = terms
        .iter()
        .filter_map(|(k, t)| t.as_ref().map(|t| (*k, t.r, t.se_r)))
        .collect();
    // The SDE side: the extrapolated final value; a path counts as diverged when any level that
    // ran on it diverged.
    let last = stats.n_save - 1;
    let alive = stats.get(last, alive_index(Block::Residual, n, true));
    let diverged = if alive.count == 0 {
        0
    } else {
        ((1.0 - alive.mean) * alive.count as f64).round() as u64
    };
    let v0 = stats.summary(last, index(Block::Coarse, o, n));
    let vb = stats.summary(last, index(Block::CoarseMinusFine, o, n));
    let vc = stats.summary(last, index(Block::FineMinusFiner, o, n));
    let vx = stats.summary(last, index(Block::Extrapolated, o, n));
    let (mean, ci) = if full && vx.count >= 2 {
        (vx.mean, vx.ci95)
    } else if vb.count >= 2 && vc.count >= 2 {
        (
            v0.mean - vb.mean - (1.0 + rho) * vc.mean,
            Z95 * (v0.std_err + vb.std_err + (1.0 + rho) * vc.std_err),
        )
    } else {
        (v0.mean, v0.ci95)
    };
    assemble_point(
        PointParts {
            substeps: 4 * input.coarse,
            sde_estimator: SdeEstimator::Richardson,
            diffs: &diffs,
            biases: &biases,
            variance_blocks: (Block::Coarse, Block::DiscreteMinusCoarse),
            alive_discrete: alive_index(Block::Discrete, n, true),
            sde: side(v0.count, mean, ci, diverged, input.paths),
        },
        input,
    )
}

/// Together, the correction terms of a three-level point may add this share of the first
/// term's standard error to the point's (their standard errors add, see [`RichTerms::se`]).
const CORRECTION_SHARE: f64 = 0.2;

/// Paths of the middle and finest levels of the next three-level run (the finest runs on the
/// first `M_2` paths, the middle one on the first `M_1 ≥ M_2`), from a run at `b_was` on
/// `run_paths` paths, for a run at `b_next` on `paths`.
///
/// Per iteration, the correction terms `x_0 − x_1` and `(1 + ρ)(x_1 − x_2)` have standard errors
/// `a_ℓ/√M_ℓ`; their sum may be [`CORRECTION_SHARE`] of the first term's (predicted for `paths`
/// paths). The cheapest split of that allowance, for levels costing `w_ℓ = 2, 4` substeps per
/// `b`, gives term `ℓ` the share `∝ a_ℓ^{2/3} w_ℓ^{1/3}` (Lagrange). The residual estimate on the
/// `M_2` paths must also have a simultaneous half-width below a quarter of the bias target, as
/// the two-level bias has. Per-path spreads are scaled to the next level as `(b_was/b_next)^γ`,
/// `γ` measured from the ratio of the two differences' spreads, within `[½, 1]`. Never fewer than the probe's paths, a multiple of
/// the ensemble's chunk, at most `paths`.
#[allow(clippy::too_many_arguments)]
fn richardson_level_paths(
    stats: &EnsembleStats,
    discrete: Option<&EnsembleStats>,
    pts: &[WeakErrorPoint],
    n: usize,
    scheme_order: f64,
    b_was: usize,
    b_next: usize,
    run_paths: u64,
    paths: u64,
) -> (u64, u64) {
    let (rho, rf) = richardson_weights(scheme_order);
    let shrink = (run_paths as f64 / paths as f64).sqrt();
    let (w1, w2) = (2f64.cbrt(), 4f64.cbrt());
    let (mut need1, mut need2) = (0.0f64, 0.0f64);
    for (o, p) in pts.iter().enumerate() {
        let (Some(mc), Some(e)) = (p.ci95_monte_carlo, p.weak_error) else {
            return (paths, paths);
        };
        let terms: Vec<RichTerms> = (1..stats.n_save)
            .filter_map(|k| rich_terms(stats, discrete, o, n, k, rho, rf, false))
            .collect();
        if terms.is_empty() {
            return (paths, paths);
        }
        // The spreads fall as h^γ: γ from the two differences of this run (x_b − x_2b against
        // x_2b − x_4b), within [½, 1] (strong order ½ is the slowest, and more is not trusted).
        let sd_b = terms.iter().map(|t| t.sd_b).fold(0.0, f64::max);
        let sd_c = terms.iter().map(|t| t.sd_c).fold(0.0, f64::max);
        let gamma = (sd_b / sd_c).log2();
        let gamma = if gamma.is_finite() {
            gamma.clamp(0.5, 1.0)
        } else {
            0.5
        };
        let scale = (b_was as f64 / b_next as f64).powf(gamma);
        let se_max = terms.iter().map(|t| t.se_primary).fold(0.0, f64::max) * shrink;
        let mut sd_r = 0.0f64;
        for t in &terms {
            sd_r = sd_r.max(t.sd_r);
            let a1 = t.sd_b * scale;
            let a2 = (1.0 + rho) * t.sd_c * scale;
            let (u1, u2) = (a1.powf(2.0 / 3.0) * w1, a2.powf(2.0 / 3.0) * w2);
            if !(u1 + u2 > 0.0) {
                continue;
            }
            // An iteration where the first term is nearly exact (the first steps) would ask for
            // every path: its allowance is floored at a tenth of the largest.
            let budget = CORRECTION_SHARE * (t.se_primary * shrink).max(0.1 * se_max);
            if !(budget > 0.0) || !(u1 + u2).is_finite() {
                return (paths, paths);
            }
            let (s1, s2) = (budget * u1 / (u1 + u2), budget * u2 / (u1 + u2));
            if a1 > 0.0 {
                need1 = need1.max((a1 / s1).powi(2));
            }
            if a2 > 0.0 {
                need2 = need2.max((a2 / s2).powi(2));
            }
        }
        let target = (mc * shrink / 4.0).max(1e-3 * e);
        let half = simultaneous_z95(terms.len()) * sd_r * rf * scale;
        if half > 0.0 {
            if !(target > 0.0) || !half.is_finite() {
                return (paths, paths);
            }
            need2 = need2.max((4.0 * half / target).powi(2));
        }
    }
    let chunk = sde_core::ensemble::CHUNK as u64;
    let round = |need: f64| {
        let m = if need.is_finite() {
            (need.ceil() as u64).div_ceil(chunk).saturating_mul(chunk)
        } else {
            paths
        };
        m.max(probe_paths_of(paths)).min(paths)
    };
    let m2 = round(need2);
    let m1 = round(need1).max(m2);
    // Past half the paths the subset saves little, and every level on every path gives the
    // point its exact standard error instead of the sum of the terms'.
    if 2 * m1 > paths {
        (paths, paths)
    } else {
        (m1, m2)
    }
}

/// Closed-form weak error at one learning rate, when a closed form exists.
fn exact_point(
    ex: &dyn ExactMoments,
    model: SdeModel,
    obs: Observable,
    eta: f64,
    iters: usize,
) -> Option<ExactPoint> {
    let both: Vec<(f64, f64)> = (0..=iters)
        .map(|k| {
            Some((
                ex.discrete_mean(obs, k, eta)?,
                ex.sde_mean(model, obs, k as f64 * eta, eta)?,
            ))
        })
        .collect::<Option<Vec<_>>>()?;
    Some(ExactPoint {
        weak_error: both.iter().map(|(a, b)| (a - b).abs()).fold(0.0, f64::max),
        discrete_final: both[iters].0,
        sde_final: both[iters].1,
    })
}

/// The SDE side replaced by its closed-form expectation; the discrete side stays Monte Carlo.
#[allow(clippy::too_many_arguments)]
fn exact_reference_point(
    d: &EnsembleStats,
    ex: &dyn ExactMoments,
    model: SdeModel,
    obs: Observable,
    o: usize,
    eta: f64,
    iters: usize,
    paths: u64,
) -> WeakErrorPoint {
    let mut diffs = Vec::new();
    for k in 1..d.n_save {
        let a = d.summary(k, o);
        let sde = ex.sde_mean(model, obs, k as f64 * eta, eta);
        match sde {
            Some(v) if a.count >= 2 => diffs.push((k, a.mean - v, a.std_err)),
            _ => diffs.push((k, f64::NAN, f64::NAN)),
        }
    }
    let last = d.n_save - 1;
    let v = d.summary(last, o);
    let sde_final = ex.sde_mean(model, obs, iters as f64 * eta, eta);
    WeakErrorPoint {
        exact: exact_point(ex, model, obs, eta, iters),
        ..band_point(
            (eta, iters, 0),
            &diffs,
            SdeEstimator::Level,
            Some(0.0),
            side(v.count, v.mean, v.ci95, d.diverged_total(), paths),
            SideSummary {
                final_mean: sde_final,
                final_ci95: Some(0.0),
                paths,
                diverged: 0,
                diverged_fraction: 0.0,
                diverged_ci95: [0.0, 0.0],
            },
            Reference::Exact,
        )
    }
}

/// A point whose SDE side is not integrated (a closed form, or SVAG): its interval is the
/// simultaneous band of the per-iteration differences `diffs` alone, and the integrator's bias
/// (and its bound) is `bias` (zero for a closed form, none for SVAG). `(eta, iterations,
/// substeps)` as in [`WeakErrorPoint`].
pub(crate) fn band_point(
    (eta, iters, substeps): (f64, usize, usize),
    diffs: &[(usize, f64, f64)],
    sde_estimator: SdeEstimator,
    bias: Option<f64>,
    discrete: SideSummary,
    sde: SideSummary,
    reference: Reference,
) -> WeakErrorPoint {
    let band = max_with_band(diffs);
    WeakErrorPoint {
        eta,
        iterations: iters,
        substeps,
        weak_error: band.map(|b| b.0),
        ci95: band.map(|b| b.1),
        ci95_interval: band.map(|b| b.2),
        ci95_monte_carlo: band.map(|b| b.1),
        ci95_pointwise: band.map(|b| b.3),
        at_iteration: band.map(|b| b.4),
        sde_estimator,
        integrator_bias: bias,
        integrator_bias_bound: bias,
        refinement: Vec::new(),
        variance_reduction: None,
        random_numbers: RandomNumbers::default(),
        discrete,
        sde,
        reference,
        exact: None,
        target_rel_ci_met: None,
        rerun: None,
    }
}

/// The config key that sets a study's paths: with `run.target_rel_ci` the paths are a budget.
fn paths_key(budget: bool) -> &'static str {
    if budget {
        "the budget run.paths"
    } else {
        "run.paths"
    }
}

/// What would lift a point above the Monte Carlo floor, computed from its measured errors: the
/// paths at which its interval reaches [`RESOLVED_RELATIVE_CI`] of its weak error (the Monte
/// Carlo half-width shrinks as `1/sqrt(paths)`, the bias bound does not).
fn floor_advice(p: &WeakErrorPoint, e: f64, budget: bool) -> String {
    let paths = p.sde.paths.max(p.discrete.paths);
    let mc = p.ci95_monte_carlo.unwrap_or(f64::NAN);
    let bias = p.integrator_bias_bound.unwrap_or(0.0);
    match paths_for_relative_ci(paths, mc, bias, e, RESOLVED_RELATIVE_CI) {
        Some(m) => format!(
            "{} = {m} would bring it to {RESOLVED_RELATIVE_CI} of the weak error (now {paths}; the interval shrinks as 1/sqrt(paths)), or drop this learning rate and add a larger one",
            paths_key(budget)
        ),
        None => format!(
            "the integrator's bias bound ({bias:.3e}) alone is above {RESOLVED_RELATIVE_CI} of the weak error: more paths cannot help; raise sde.max_substeps or drop this learning rate"
        ),
    }
}

/// What would narrow a too-wide order interval, from the fit itself. When the points scatter
/// more than their Monte Carlo errors allow (reduced χ² significantly above 1, the interval
/// widened by it) the curve bends — pre-asymptotic terms, usually at the largest `η` — and more
/// paths do not help: the fit without the largest `η` is shown. Otherwise the interval shrinks as
/// `1/sqrt(paths)` and as `1/log(span)`: both remedies are sized.
fn order_advice(
    f: &crate::inference::OrderFit,
    etas: &[f64],
    errs: &[f64],
    ses: &[f64],
    points: &[WeakErrorPoint],
    budget: bool,
) -> String {
    let half = (f.ci95[1] - f.ci95[0]) / 2.0;
    let chi2_crit = reduced_chi2_95(f.points.saturating_sub(2));
    if fit_scatters(f) {
        let largest = etas
            .iter()
            .enumerate()
            .filter(|(_, e)| e.is_finite())
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, _)| i);
        let without = largest.and_then(|i| {
            let keep = |v: &[f64]| -> Vec<f64> {
                v.iter()
                    .enumerate()
                    .filter(|&(j, _)| j != i)
                    .map(|(_, x)| *x)
                    .collect()
            };
            weighted_order_fit(&keep(etas), &keep(errs), &keep(ses)).map(|g| (etas[i], g))
        });
        let tail = match without {
            Some((eta, g)) if g.points >= 2 => format!(
                "; without eta = {eta} the order is {:.3} [{:.3}, {:.3}] (reduced chi2 {:.2}): drop the largest learning rate, or add a smaller one",
                g.slope, g.ci95[0], g.ci95[1], g.reduced_chi2
            ),
            _ => ": add a smaller learning rate".into(),
        };
        return format!(
            "the points scatter beyond their Monte Carlo errors (reduced chi2 {:.2} > {:.2}, the 95% point): the curve bends (pre-asymptotic terms), more paths will not narrow it{tail}",
            f.reduced_chi2, chi2_crit
        );
    }
    let paths = points
        .iter()
        .map(|p| p.sde.paths.max(p.discrete.paths))
        .min()
        .unwrap_or(0);
    let factor = (half / RESOLVED_ORDER_HALF_WIDTH).powi(2);
    let more = (paths as f64 * factor).ceil() as u64;
    let (lo, hi) = etas
        .iter()
        .filter(|e| e.is_finite() && **e > 0.0)
        .fold((f64::INFINITY, 0.0f64), |(lo, hi), &e| {
            (lo.min(e), hi.max(e))
        });
    let span = hi / lo;
    match span_for_order_half_width(span, half, RESOLVED_ORDER_HALF_WIDTH) {
        Some(wider) => format!(
            "{} = {} (now {paths}; the interval shrinks as 1/sqrt(paths)) or a learning-rate span of {wider:.2}x instead of {span:.2}x (the interval shrinks as 1/log(span)) would bring it to ±{RESOLVED_ORDER_HALF_WIDTH}",
            paths_key(budget),
            more.div_ceil(100) * 100
        ),
        None => format!(
            "{} = {} (now {paths}) would bring it to ±{RESOLVED_ORDER_HALF_WIDTH}",
            paths_key(budget),
            more.div_ceil(100) * 100
        ),
    }
}

/// The largest relative half-width `ci95 / weak_error` at which a point counts as resolved.
pub const RESOLVED_RELATIVE_CI: f64 = 0.5;
/// The largest half-width of the order's interval at which a curve counts as resolved.
pub const RESOLVED_ORDER_HALF_WIDTH: f64 = 0.5;

/// The integrator's bias bound of a simulated point when it is above its target ([`bias_target`]),
/// with that target: the verdict's reason, and a cause more paths cannot fix.
fn bias_above_target(p: &WeakErrorPoint) -> Option<(f64, f64)> {
    let (b, target) = (p.integrator_bias_bound?, bias_target(p)?);
    (b > target && p.reference != Reference::Exact).then_some((b, target))
}

/// Whether the order fit's points scatter beyond their Monte Carlo errors (reduced χ² above its
/// 95% point): the curve bends, and more paths will not narrow it.
fn fit_scatters(f: &crate::inference::OrderFit) -> bool {
    let dof = f.points.saturating_sub(2);
    dof > 0 && f.reduced_chi2 > reduced_chi2_95(dof)
}

/// The order fit's inputs: learning rates, weak errors and their standard errors.
fn fit_inputs(points: &[WeakErrorPoint]) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let etas: Vec<f64> = points.iter().map(|p| p.eta).collect();
    let errs: Vec<f64> = points
        .iter()
        .map(|p| p.weak_error.unwrap_or(f64::NAN))
        .collect();
    // A noise-free study has zero standard errors: a floor far below any Monte Carlo error gives
    // its points equal weights (the fit is then ordinary least squares, its interval from the
    // residuals).
    let ses: Vec<f64> = points
        .iter()
        .map(|p| {
            let se = p.ci95_pointwise.unwrap_or(f64::NAN) / Z95;
            se.max(1e-9 * p.weak_error.unwrap_or(0.0))
        })
        .collect();
    (etas, errs, ses)
}

/// The relative half-width `ci95 / weak_error` a rerun aims at: below the verdict's
/// [`RESOLVED_RELATIVE_CI`], because the weak error that sizes the rerun is itself an estimate
/// (aiming at the threshold would miss it about half the time).
pub const RERUN_RELATIVE_CI: f64 = 0.4;
/// The order half-width a rerun aims at, below [`RESOLVED_ORDER_HALF_WIDTH`] for the same reason.
pub const RERUN_ORDER_HALF_WIDTH: f64 = 0.4;

/// The paths each point of an unresolved curve needs, from its measured errors, when paths alone
/// can resolve it; `None` when a reason is not a lack of paths (a diverged side, fewer than three
/// learning rates, an integrator bias at its cap, points that scatter beyond their errors) or
/// when what is needed to reach the verdict's thresholds, at the measured weak error, exceeds
/// `max_paths`. An entry of 0: the point needs nothing. The paths aim at [`RERUN_RELATIVE_CI`]
/// of a weak error one standard error below the measured one (a maximum of noisy values is
/// biased upwards) and at [`RERUN_ORDER_HALF_WIDTH`], capped at `max_paths`.
pub fn paths_needed(c: &WeakErrorCurve, max_paths: u64) -> Option<(Vec<u64>, Vec<String>)> {
    if c.verdict != Verdict::Unresolved || c.points.len() < 3 {
        return None;
    }
    let mut need = vec![0u64; c.points.len()];
    let mut why = Vec::new();
    for (i, p) in c.points.iter().enumerate() {
        let (e, ci) = (p.weak_error?, p.ci95?);
        let paths = p.sde.paths.max(p.discrete.paths);
        let mc = p.ci95_monte_carlo?;
        let bias = p.integrator_bias_bound.unwrap_or(0.0);
        if bias_above_target(p).is_some() {
            return None;
        }
        if ci > RESOLVED_RELATIVE_CI * e {
            let at_threshold = paths_for_relative_ci(paths, mc, bias, e, RESOLVED_RELATIVE_CI)?;
            if at_threshold > max_paths {
                return None;
            }
            // The weak error is a maximum over iterations of noisy differences, biased upwards
            // when its interval is as wide as it is here: the rerun is sized for the error one
            // standard error lower (at least a quarter of it), so that it does not fall short
            // when the fresh estimate comes out smaller.
            let lower = (e - p.ci95_pointwise.unwrap_or(0.0) / Z95).max(e / 4.0);
            let aim = paths_for_relative_ci(paths, mc, bias, lower, RERUN_RELATIVE_CI)
                .unwrap_or(max_paths)
                .max(at_threshold)
                .min(max_paths);
            need[i] = need[i].max(aim);
            why.push(format!(
                "Monte Carlo floor at eta = {}: ci95 {:.2} of the weak error on {paths} paths",
                p.eta,
                ci / e
            ));
        }
    }
    let (etas, errs, ses) = fit_inputs(&c.points);
    let f = weighted_order_fit(&etas, &errs, &ses)?;
    let half = (f.ci95[1] - f.ci95[0]) / 2.0;
    if !half.is_finite() {
        return None;
    }
    if half > RESOLVED_ORDER_HALF_WIDTH {
        if fit_scatters(&f) {
            return None;
        }
        for (i, p) in c.points.iter().enumerate() {
            let paths = p.sde.paths.max(p.discrete.paths) as f64;
            let at_threshold = (paths * (half / RESOLVED_ORDER_HALF_WIDTH).powi(2)).ceil();
            if at_threshold > max_paths as f64 {
                return None;
            }
            let aim = (paths * (half / RERUN_ORDER_HALF_WIDTH).powi(2)).ceil() as u64;
            need[i] = need[i].max(aim.div_ceil(100).saturating_mul(100).min(max_paths));
        }
        why.push(format!(
            "order interval ±{half:.2} wider than ±{RESOLVED_ORDER_HALF_WIDTH}"
        ));
    }
    if need.iter().all(|&m| m == 0) {
        return None;
    }
    Some((need, why))
}

/// The study's second stage: the learning rates (by index) to run again, with their paths and the
/// curves that asked, from the first stage's curves. Empty unless `max_paths` exceeds `paths`
/// (and never with `target_rel_ci`). A learning rate gets the most paths any curve asks of it.
pub fn rerun_plan(
    curves: &[WeakErrorCurve],
    s: &StudySettings,
) -> Option<Vec<(usize, u64, Vec<String>)>> {
    let max = s
        .max_paths
        .filter(|&m| m > s.paths && s.target_rel_ci.is_none())?;
    let mut plan: Vec<(usize, u64, Vec<String>)> = Vec::new();
    for c in curves {
        let Some((need, why)) = paths_needed(c, max) else {
            continue;
        };
        let label = format!(
            "{} {}: {}",
            c.model.name(),
            c.observable.name(),
            why.join("; ")
        );
        for (ei, &m) in need.iter().enumerate() {
            if m <= s.paths {
                continue;
            }
            match plan.iter_mut().find(|(e, _, _)| *e == ei) {
                Some(entry) => {
                    entry.1 = entry.1.max(m);
                    entry.2.push(label.clone());
                }
                None => plan.push((ei, m, vec![label.clone()])),
            }
        }
    }
    plan.sort_by_key(|(ei, _, _)| *ei);
    (!plan.is_empty()).then_some(plan)
}

pub(crate) fn finish_curve(
    model: SdeModel,
    obs: Observable,
    points: Vec<WeakErrorPoint>,
    expected: &ExpectedOrder,
    s: &StudySettings,
) -> WeakErrorCurve {
    let mut warnings = Vec::new();
    let mut reasons = Vec::new();
    let mut diverged = false;
    let mut points = points;
    if let Some(t) = s.target_rel_ci {
        for p in points.iter_mut() {
            let met = target_met(std::slice::from_ref(p), t);
            p.target_rel_ci_met = Some(met);
            if !met {
                warnings.push(format!(
                    "run.target_rel_ci = {t} not reached at eta = {} with {} paths (run.paths = {}): ci95 = {}, weak error = {}",
                    p.eta,
                    p.sde.paths,
                    s.paths,
                    p.ci95.map_or("none".into(), |c| format!("{c:.3e}")),
                    p.weak_error.map_or("none".into(), |e| format!("{e:.3e}")),
                ));
            }
        }
    }
    for p in &points {
        for (name, side) in [("discrete", &p.discrete), ("SDE", &p.sde)] {
            if side.diverged > 0 {
                diverged = true;
                reasons.push(format!(
                    "at eta = {}: {} of {} {name} paths diverged ({:.3}%, 95% interval [{:.3}%, {:.3}%])",
                    p.eta,
                    side.diverged,
                    side.paths,
                    100.0 * side.diverged_fraction,
                    100.0 * side.diverged_ci95[0],
                    100.0 * side.diverged_ci95[1]
                ));
            }
        }
        if p.weak_error.is_none() {
            reasons.push(format!(
                "at eta = {}: a side diverged on every path, no weak error exists",
                p.eta
            ));
        }
    }
    if diverged {
        warnings.push(
            "paths diverged: the weak errors shown are those of the paths (pairs, when coupled) that had not diverged by each iteration, an estimand conditioned on survival, not the weak error of the processes".into(),
        );
    }
    let (etas, errs, ses) = fit_inputs(&points);
    let fit = weighted_order_fit(&etas, &errs, &ses);
    let mut unresolved = Vec::new();
    if points.len() < 3 {
        unresolved.push(format!(
            "{} learning rate(s): at least 3 are needed for an interval on the order",
            points.len()
        ));
    }
    for p in &points {
        if let (Some(e), Some(ci)) = (p.weak_error, p.ci95) {
            if ci > RESOLVED_RELATIVE_CI * e {
                unresolved.push(format!(
                    "Monte Carlo floor at eta = {}: the simultaneous 95% interval (±{:.3e}) is more than {} of the weak error ({:.3e}): {}",
                    p.eta,
                    ci,
                    RESOLVED_RELATIVE_CI,
                    e,
                    floor_advice(p, e, s.target_rel_ci.is_some())
                ));
            }
            if let Some((b, target)) = bias_above_target(p) {
                let msg = if s.substeps.is_none() {
                    format!(
                        "integrator bias at eta = {}: {:.3e} is above its target ({:.3e}, a quarter of the Monte Carlo interval) at the cap sde.max_substeps = {}: raise the cap or use a higher-order scheme",
                        p.eta, b, target, s.max_substeps
                    )
                } else {
                    format!(
                        "integrator bias at eta = {}: {:.3e} is above its target ({:.3e}, a quarter of the Monte Carlo interval) with sde.substeps = {}: remove sde.substeps to let the study refine",
                        p.eta, b, target, p.substeps
                    )
                };
                unresolved.push(msg);
            }
        }
    }
    match fit {
        None => {
            unresolved.push("no order could be fitted (a weak error is zero or missing)".into())
        }
        Some(f)
            if !(f.ci95[1] - f.ci95[0]).is_finite()
                || (f.ci95[1] - f.ci95[0]) / 2.0 > RESOLVED_ORDER_HALF_WIDTH =>
        {
            unresolved.push(format!(
                "the order's 95% interval [{:.3}, {:.3}] is wider than ±{}: {}",
                f.ci95[0],
                f.ci95[1],
                RESOLVED_ORDER_HALF_WIDTH,
                order_advice(&f, &etas, &errs, &ses, &points, s.target_rel_ci.is_some())
            ))
        }
        _ => {}
    }
    let verdict = if diverged || points.iter().any(|p| p.weak_error.is_none()) {
        Verdict::Diverged
    } else if unresolved.is_empty() {
        Verdict::Resolved
    } else {
        Verdict::Unresolved
    };
    reasons.extend(unresolved);
    let exact_order = points
        .iter()
        .map(|p| p.exact.as_ref().map(|e| e.weak_error))
        .collect::<Option<Vec<f64>>>()
        .and_then(|e| sde_core::fit_order(&etas, &e))
        .map(|f| f.slope);
    let consistent = (verdict == Verdict::Resolved)
        .then(|| fit.map(|f| f.ci95[0] <= expected.order && expected.order <= f.ci95[1]))
        .flatten();
    let next_order = (consistent == Some(false))
        .then(|| next_order_fit(&etas, &errs, &ses, expected.order))
        .flatten();
    if let Some(n) = &next_order {
        let q = expected.order;
        let terms = format!(
            "E = a eta^{q} + b eta^{} (reduced chi2 {:.2}, 95% point {:.2}; a = {:.3e} [{:.3e}, {:.3e}], b = {:.3e} [{:.3e}, {:.3e}])",
            q + 1.0,
            n.reduced_chi2,
            n.chi2_95,
            n.leading,
            n.leading_ci95[0],
            n.leading_ci95[1],
            n.next,
            n.next_ci95[0],
            n.next_ci95[1]
        );
        warnings.push(if n.fits {
            format!(
                "the order's interval excludes the expected {q}, but {terms} fits the points within their Monte Carlo errors: a next-order term at these learning rates (pre-asymptotic), not evidence against order {q}; smaller learning rates move the fitted order towards {q}"
            )
        } else {
            format!(
                "the order's interval excludes the expected {q}, and {terms} does not fit the points within their Monte Carlo errors: the departure is not explained by one next-order term (model error, or more than one pre-asymptotic term)"
            )
        });
    }
    WeakErrorCurve {
        model,
        observable: obs,
        points,
        order: fit.map(|f| f.slope),
        order_ci95: fit.map(|f| f.ci95),
        expected_order: expected.order,
        expected_order_reason: expected.reason.clone(),
        verdict,
        verdict_reasons: reasons,
        consistent_with_expected: consistent,
        exact_order,
        next_order_fit: next_order,
        warnings,
    }
}

#[cfg(test)]
mod advice_tests {
    use super::*;

    /// Settings for [`finish_curve`]: only `target_rel_ci` and `substeps` matter to it.
    fn settings(etas: &[f64], paths: u64) -> StudySettings {
        StudySettings {
            etas: etas.to_vec(),
            horizon: 1.0,
            paths,
            seed: 1,
            x0: vec![0.0],
            models: vec![SdeModel::FirstOrder],
            scheme: SchemeKind::EulerMaruyama,
            increments: IncrementKind::Gaussian,
            substeps: None,
            max_substeps: 128,
            observables: vec![Observable::Loss],
            diverge_above: 1e6,
            common_random_numbers: false,
            exact_reference: false,
            target_rel_ci: None,
            max_paths: None,
        }
    }

    /// A one-iteration point with weak error `e` and Monte Carlo standard error `se` (so
    /// `ci95 = 1.96 se`), on `paths` paths per side, no bias.
    fn point(eta: f64, e: f64, se: f64, paths: u64) -> WeakErrorPoint {
        let sd = side(paths, 0.0, 0.0, 0, paths);
        band_point(
            (eta, 1, 4),
            &[(1, e, se)],
            SdeEstimator::Level,
            Some(0.0),
            sd.clone(),
            sd,
            Reference::Independent,
        )
    }

    fn curve(pts: Vec<WeakErrorPoint>, s: &StudySettings) -> WeakErrorCurve {
        let expected = ExpectedOrder {
            order: 1.0,
            reason: "test".into(),
        };
        finish_curve(SdeModel::FirstOrder, Observable::Loss, pts, &expected, s)
    }

    #[test]
    fn a_monte_carlo_floor_names_the_paths_that_would_lift_it() {
        let etas = [0.4, 0.2, 0.1, 0.05];
        let s = settings(&etas, 1000);
        // The smallest η: ci95 = 0.8 e, so (0.8/0.5)^2 = 2.56 times the paths: 2560 -> 2600.
        let pts = etas
            .iter()
            .map(|&eta| {
                let e = 0.1 * eta;
                let rel = if eta == 0.05 { 0.8 } else { 0.1 };
                point(eta, e, rel * e / Z95, 1000)
            })
            .collect();
        let c = curve(pts, &s);
        assert_eq!(c.verdict, Verdict::Unresolved);
        let r = c.verdict_reasons.join("\n");
        assert!(
            r.contains("eta = 0.05") && r.contains("run.paths = 2600") && r.contains("now 1000"),
            "{r}"
        );
        // With a precision target the paths are a budget, and the advice says so.
        let mut t = s.clone();
        t.target_rel_ci = Some(0.25);
        let pts = c.points.clone();
        let r = curve(pts, &t).verdict_reasons.join("\n");
        assert!(r.contains("the budget run.paths = 2600"), "{r}");
    }

    #[test]
    fn paths_needed_follows_the_floor_and_refuses_what_paths_cannot_fix() {
        let etas = [0.4, 0.2, 0.1, 0.05];
        let s = settings(&etas, 1000);
        let floor = |rel: f64| -> WeakErrorCurve {
            let pts = etas
                .iter()
                .map(|&eta| {
                    let e = 0.1 * eta;
                    let r = if eta == 0.05 { rel } else { 0.1 };
                    point(eta, e, r * e / Z95, 1000)
                })
                .collect();
            curve(pts, &s)
        };
        // ci95 = 0.8 e at η = 0.05: the threshold needs 2600 paths (the advice), the rerun aims
        // at 0.4 of a weak error one standard error lower: 1000·(0.8 e/(0.4·(e − 0.8e/1.96)))²
        // = 11.43·1000, rounded up to 11500.
        let c = floor(0.8);
        let (need, why) = paths_needed(&c, 100_000).expect("a floor alone");
        assert_eq!(need, vec![0, 0, 0, 11500]);
        assert!(
            why[0].contains("eta = 0.05") && why[0].contains("0.80"),
            "{why:?}"
        );
        // Capped: the cap is spent when the threshold is within it.
        assert_eq!(
            paths_needed(&c, 3000).expect("within").0,
            vec![0, 0, 0, 3000]
        );
        // A threshold above the cap: not rerun.
        assert!(paths_needed(&c, 2500).is_none());
        let plan = rerun_plan(
            std::slice::from_ref(&c),
            &StudySettings {
                max_paths: Some(4000),
                ..s.clone()
            },
        )
        .expect("one learning rate");
        assert_eq!(plan.len(), 1);
        assert_eq!((plan[0].0, plan[0].1), (3, 4000));
        // One stage unless max_paths exceeds paths.
        assert!(rerun_plan(std::slice::from_ref(&c), &s).is_none());
        // A resolved curve needs nothing.
        assert!(paths_needed(&floor(0.1), 100_000).is_none());
        // An integrator bias above its target at some point: more paths make its target smaller.
        let mut biased = c.points.clone();
        biased[0].integrator_bias_bound = Some(1.0);
        assert!(paths_needed(&curve(biased, &s), 100_000).is_none());
        // Points that scatter beyond their errors: the curve bends, paths will not help.
        let bent = etas
            .iter()
            .map(|&eta| {
                let e = if eta == 0.4 { 0.1 * 0.25 } else { 0.1 * eta };
                let r = if eta == 0.05 { 0.8 } else { 0.005 };
                point(eta, e, r * e / Z95, 1000)
            })
            .collect();
        assert!(paths_needed(&curve(bent, &s), 100_000).is_none());
    }

    #[test]
    fn a_bent_curve_is_named_and_fitted_without_its_largest_learning_rate() {
        // Order 1 below η = 0.2, saturated at 0.4 (pre-asymptotic), with 1% errors: the line
        // through all four points misses them by far more than their errors.
        let etas = [0.4, 0.2, 0.1, 0.05];
        let s = settings(&etas, 1000);
        let pts = etas
            .iter()
            .map(|&eta| {
                let e = if eta == 0.4 { 0.1 * 0.25 } else { 0.1 * eta };
                point(eta, e, 0.005 * e, 1000)
            })
            .collect();
        let c = curve(pts, &s);
        assert_eq!(c.verdict, Verdict::Unresolved);
        let r = c.verdict_reasons.join("\n");
        assert!(
            r.contains("pre-asymptotic") && r.contains("without eta = 0.4 the order is 1.000"),
            "{r}"
        );
    }

    #[test]
    fn a_wide_order_interval_names_the_paths_and_the_span_that_would_narrow_it() {
        // Three points over a span of 2 with 40% intervals: the fit is exact (χ² = 0), so the
        // half-width is the Monte Carlo one and shrinks as 1/sqrt(paths) and 1/log(span).
        let etas = [0.2, 0.14, 0.1];
        let s = settings(&etas, 500);
        let pts: Vec<WeakErrorPoint> = etas
            .iter()
            .map(|&eta| point(eta, 0.1 * eta, 0.4 * 0.1 * eta / Z95, 500))
            .collect();
        let c = curve(pts, &s);
        let [lo, hi] = c.order_ci95.unwrap();
        let half = (hi - lo) / 2.0;
        assert!(half > RESOLVED_ORDER_HALF_WIDTH, "{half}");
        let paths = (500.0 * (half / RESOLVED_ORDER_HALF_WIDTH).powi(2)).ceil() as u64;
        let want = format!("run.paths = {}", paths.div_ceil(100) * 100);
        let span = 2f64.powf(half / RESOLVED_ORDER_HALF_WIDTH);
        let r = c.verdict_reasons.join("\n");
        assert!(
            r.contains(&want) && r.contains(&format!("span of {span:.2}x instead of 2.00x")),
            "{r}\n{want}"
        );
    }
}
