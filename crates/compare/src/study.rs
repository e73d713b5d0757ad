//! Weak-error studies: how far an SDE model is from its discrete optimizer, and how fast that
//! distance shrinks with the learning rate.
//!
//! For each learning rate `η` and observable `g`, the weak error is
//! `max_{k ≤ K} |mean g(x_k) − mean g(X_{kη})|` with `K = ⌊T/η⌋` (MATH.md §4), reported with the
//! 95% half-width of the difference at the maximising iteration; the order is the least-squares
//! slope of `log error` against `log η` with its 95% interval (`sde_core::fit_order`).
//!
//! With common random numbers (Gaussian directions only) the discrete run and the SDE path share
//! their noise, so the interval is that of the paired difference, which is much narrower than
//! that of two independent means.

use crate::error::CompareError;
use crate::exact::ExactMoments;
use crate::observable::Observable;
use crate::sim::{CoupledPaths, DiscretePaths, ModelPaths, PathSettings};
use crate::solver_choice::{dispatch, SolverVisitor};
use models::loss::Loss;
use models::method::GradientMethod;
use models::optimizer::Optimizer;
use models::sde::SdeModel;
use sde_core::stats::Z95;
use sde_core::{
    derive_key, fit_order, Ensemble, EnsembleStats, IncrementKind, Increments, Scheme, SchemeKind,
    Solver,
};
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};

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
    pub substeps: usize,
    pub observables: Vec<Observable>,
    pub diverge_above: f64,
    pub common_random_numbers: bool,
    pub exact_reference: bool,
}

impl StudySettings {
    /// Checks the settings, naming the config key of anything out of range.
    pub fn validate(&self, d: usize) -> Result<(), CompareError> {
        if self.etas.is_empty() {
            return Err(CompareError::bad(
                "run.etas",
                "[]",
                "needs at least one learning rate",
            ));
        }
        for (i, e) in self.etas.iter().enumerate() {
            if !(*e > 0.0) || !e.is_finite() {
                return Err(CompareError::bad(
                    format!("run.etas[{i}]"),
                    e,
                    "must be positive and finite",
                ));
            }
            if (self.horizon / e).floor() < 1.0 {
                return Err(CompareError::bad(
                    format!("run.etas[{i}]"),
                    e,
                    format!(
                        "is longer than the horizon {} (no iteration fits)",
                        self.horizon
                    ),
                ));
            }
        }
        if !(self.horizon > 0.0) || !self.horizon.is_finite() {
            return Err(CompareError::bad(
                "run.horizon",
                self.horizon,
                "must be positive and finite",
            ));
        }
        if self.paths < 2 {
            return Err(CompareError::bad(
                "run.paths",
                self.paths,
                "needs at least 2 paths",
            ));
        }
        if self.substeps == 0 {
            return Err(CompareError::bad("sde.substeps", 0, "must be at least 1"));
        }
        if self.models.is_empty() {
            return Err(CompareError::bad(
                "sde.models",
                "[]",
                "needs at least one model",
            ));
        }
        if self.observables.is_empty() {
            return Err(CompareError::bad(
                "run.observables",
                "[]",
                "needs at least one observable",
            ));
        }
        if self.x0.len() != d {
            return Err(CompareError::bad(
                "loss.x0",
                format!("{:?}", self.x0),
                format!(
                    "has length {} but the problem has dimension {d}",
                    self.x0.len()
                ),
            ));
        }
        if !(self.diverge_above > 0.0) {
            return Err(CompareError::bad(
                "run.diverge_above",
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

/// `⌊T/η⌋`, robust to `T/η` landing a hair below an integer.
pub fn iterations(horizon: f64, eta: f64) -> usize {
    (horizon / eta * (1.0 + 1e-12)).floor() as usize
}

/// Mean at the last iteration and the number of diverged paths of one side.
#[derive(Clone, Debug, Serialize)]
pub struct SideSummary {
    pub final_mean: f64,
    pub final_ci95: f64,
    pub diverged: u64,
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
    pub weak_error: f64,
    /// Half-width of the 95% interval of the difference at the maximising iteration.
    pub ci95: f64,
    /// Iteration where the maximum is attained.
    pub at_iteration: usize,
    pub discrete: SideSummary,
    pub sde: SideSummary,
    /// How the SDE side was obtained: `"coupled"`, `"independent"` or `"exact"`.
    pub reference: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exact: Option<ExactPoint>,
}

/// The weak error of one model and one observable over the learning rates, with its order.
#[derive(Clone, Debug, Serialize)]
pub struct WeakErrorCurve {
    pub model: &'static str,
    pub observable: &'static str,
    pub points: Vec<WeakErrorPoint>,
    pub order: Option<f64>,
    pub order_ci95: Option<[f64; 2]>,
    /// The order theory predicts (MATH.md §5.1).
    pub expected_order: f64,
    /// Order of the closed-form weak errors, when they exist.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exact_order: Option<f64>,
    pub warnings: Vec<String>,
}

/// Progress callback: receives the number of newly finished path simulations.
pub type Progress<'a> = &'a (dyn Fn(u64) + Sync);

/// Total path simulations a study runs (for a progress bar).
pub fn study_work(s: &StudySettings, coupled: bool) -> u64 {
    let per_eta = if coupled {
        s.models.len() as u64
    } else {
        1 + s.models.len() as u64
    };
    per_eta * s.etas.len() as u64 * s.paths
}

/// Stable stream index of a model (independent of the order models are listed in).
fn model_index(m: SdeModel) -> u64 {
    match m {
        SdeModel::FirstOrder => 1,
        SdeModel::SecondOrder => 2,
        SdeModel::Stability => 3,
    }
}

/// Runs `sim` on `paths` paths, reporting progress as increments.
fn run_ensemble<P: sde_core::PathSimulation>(
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

struct RunModel<'a, L, M> {
    opt: &'a Optimizer<L, M>,
    model: SdeModel,
    settings: &'a PathSettings,
    substeps: usize,
    paths: u64,
    seed: u64,
    coupled: bool,
    progress: Progress<'a>,
}

impl<L: Loss, M: GradientMethod> SolverVisitor for RunModel<'_, L, M> {
    type Output = Result<EnsembleStats, CompareError>;
    fn visit<Sch: Scheme, I: Increments>(self, scheme: Sch, increments: I) -> Self::Output {
        let sde = self.opt.sde(self.model, self.settings.eta)?;
        let solver = Solver::new(sde, scheme, increments)?;
        let model = ModelPaths {
            solver,
            settings: self.settings,
            substeps: self.substeps,
        };
        if self.coupled {
            let sim = CoupledPaths {
                model,
                opt: self.opt,
            };
            run_ensemble(self.paths, self.seed, &sim, self.progress)
        } else {
            run_ensemble(self.paths, self.seed, &model, self.progress)
        }
    }
}

/// Checks that the scheme and increments can integrate every requested model, before any
/// simulation starts (so a bad combination fails fast with the scheme's own message).
struct CheckModel<'a, L, M> {
    opt: &'a Optimizer<L, M>,
    model: SdeModel,
    eta: f64,
}

impl<L: Loss, M: GradientMethod> SolverVisitor for CheckModel<'_, L, M> {
    type Output = Result<(), CompareError>;
    fn visit<Sch: Scheme, I: Increments>(self, scheme: Sch, increments: I) -> Self::Output {
        let sde = self.opt.sde(self.model, self.eta)?;
        Solver::new(sde, scheme, increments)?;
        Ok(())
    }
}

/// Whether the study can couple discrete and SDE paths: the method must have Gaussian
/// directions and the increments must be exact Gaussians (a sum of three-point increments is
/// not a normal variate, so it would change the discrete law).
pub fn can_couple<L: Loss, M: GradientMethod>(opt: &Optimizer<L, M>, s: &StudySettings) -> bool {
    s.common_random_numbers && s.increments == IncrementKind::Gaussian && opt.supports_coupling()
}

/// Runs the weak-error study of every requested model and observable.
pub fn weak_error_study<L: Loss, M: GradientMethod>(
    opt: &Optimizer<L, M>,
    s: &StudySettings,
    exact: Option<&dyn ExactMoments>,
    progress: Progress,
) -> Result<Vec<WeakErrorCurve>, CompareError> {
    s.validate(opt.dim())?;
    if s.exact_reference && exact.is_none() {
        return Err(CompareError::bad(
            "run.exact_reference",
            true,
            "no closed form exists for this problem (it needs DSGD on a diagonal quadratic with \
             Gaussian noise of constant covariance and a constant schedule)",
        ));
    }
    for &model in &s.models {
        dispatch(
            s.scheme,
            s.increments,
            CheckModel {
                opt,
                model,
                eta: s.etas[0],
            },
        )?;
    }
    let coupled = can_couple(opt, s);
    let n = s.observables.len();
    // curves[model][observable] points
    let mut points: Vec<Vec<Vec<WeakErrorPoint>>> = vec![vec![Vec::new(); n]; s.models.len()];
    for (ei, &eta) in s.etas.iter().enumerate() {
        let iters = s.iterations(eta);
        let settings = PathSettings {
            eta,
            iterations: iters,
            x0: s.x0.clone(),
            observables: s.observables.clone(),
            diverge_above: s.diverge_above,
        };
        let eta_key = derive_key(s.seed, ei as u64);
        let discrete = if coupled {
            None
        } else {
            let sim = DiscretePaths {
                opt,
                settings: &settings,
            };
            Some(run_ensemble(
                s.paths,
                derive_key(eta_key, 0),
                &sim,
                progress,
            )?)
        };
        for (mi, &model) in s.models.iter().enumerate() {
            let role = if coupled { 10 } else { 0 } + model_index(model);
            let stats = dispatch(
                s.scheme,
                s.increments,
                RunModel {
                    opt,
                    model,
                    settings: &settings,
                    substeps: s.substeps,
                    paths: s.paths,
                    seed: derive_key(eta_key, role),
                    coupled,
                    progress,
                },
            )?;
            for (oi, &obs) in s.observables.iter().enumerate() {
                let point = match &discrete {
                    None => point_coupled(&stats, oi, n, eta, iters),
                    Some(d) => point_independent(d, &stats, oi, eta, iters),
                };
                let point = with_exact(
                    point,
                    exact,
                    s.exact_reference,
                    model,
                    obs,
                    eta,
                    iters,
                    &stats,
                    discrete.as_ref(),
                    oi,
                );
                points[mi][oi].push(point);
            }
        }
    }
    let mut curves = Vec::new();
    for (mi, &model) in s.models.iter().enumerate() {
        for (oi, &obs) in s.observables.iter().enumerate() {
            curves.push(finish_curve(
                model,
                obs,
                std::mem::take(&mut points[mi][oi]),
            ));
        }
    }
    Ok(curves)
}

fn side(stats: &EnsembleStats, o: usize) -> SideSummary {
    let last = stats.n_save - 1;
    let s = stats.summary(last, o);
    SideSummary {
        final_mean: s.mean,
        final_ci95: s.ci95,
        diverged: stats.diverged_total(),
    }
}

/// Weak error from paired differences (observable block `2n + o`).
fn point_coupled(
    stats: &EnsembleStats,
    o: usize,
    n: usize,
    eta: f64,
    iters: usize,
) -> WeakErrorPoint {
    let mut best = (f64::NEG_INFINITY, 0.0, 0);
    for k in 0..stats.n_save {
        let s = stats.summary(k, 2 * n + o);
        if s.count >= 2 && s.mean.abs() > best.0 {
            best = (s.mean.abs(), s.ci95, k);
        }
    }
    WeakErrorPoint {
        eta,
        iterations: iters,
        weak_error: best.0.max(0.0),
        ci95: best.1,
        at_iteration: best.2,
        discrete: side(stats, o),
        sde: side(stats, n + o),
        reference: "coupled",
        exact: None,
    }
}

/// Weak error from two independent ensembles.
fn point_independent(
    d: &EnsembleStats,
    m: &EnsembleStats,
    o: usize,
    eta: f64,
    iters: usize,
) -> WeakErrorPoint {
    let mut best = (f64::NEG_INFINITY, 0.0, 0);
    for k in 0..d.n_save.min(m.n_save) {
        let (a, b) = (d.summary(k, o), m.summary(k, o));
        if a.count >= 2 && b.count >= 2 {
            let e = (a.mean - b.mean).abs();
            if e > best.0 {
                best = (e, Z95 * (a.std_err.powi(2) + b.std_err.powi(2)).sqrt(), k);
            }
        }
    }
    WeakErrorPoint {
        eta,
        iterations: iters,
        weak_error: best.0.max(0.0),
        ci95: best.1,
        at_iteration: best.2,
        discrete: side(d, o),
        sde: side(m, o),
        reference: "independent",
        exact: None,
    }
}

/// Adds the closed-form values, and with `exact_reference` replaces the SDE side by its exact
/// expectation (the discrete side stays Monte Carlo).
#[allow(clippy::too_many_arguments)]
fn with_exact(
    mut p: WeakErrorPoint,
    exact: Option<&dyn ExactMoments>,
    replace: bool,
    model: SdeModel,
    obs: Observable,
    eta: f64,
    iters: usize,
    stats: &EnsembleStats,
    discrete: Option<&EnsembleStats>,
    o: usize,
) -> WeakErrorPoint {
    let Some(ex) = exact else { return p };
    let both: Option<Vec<(f64, f64)>> = (0..=iters)
        .map(|k| {
            Some((
                ex.discrete_mean(obs, k, eta)?,
                ex.sde_mean(model, obs, k as f64 * eta, eta)?,
            ))
        })
        .collect();
    let Some(both) = both else { return p };
    let exact_err = both.iter().map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    p.exact = Some(ExactPoint {
        weak_error: exact_err,
        discrete_final: both[iters].0,
        sde_final: both[iters].1,
    });
    if replace {
        // Discrete side: Monte Carlo. In a coupled run the discrete block comes first, so
        // observable `o` sits at the same offset in both layouts.
        let dstats = discrete.unwrap_or(stats);
        let mut best = (f64::NEG_INFINITY, 0.0, 0);
        for (k, (_, sde_k)) in both.iter().enumerate().take(dstats.n_save) {
            let a = dstats.summary(k, o);
            if a.count >= 2 {
                let e = (a.mean - sde_k).abs();
                if e > best.0 {
                    best = (e, a.ci95, k);
                }
            }
        }
        p.weak_error = best.0.max(0.0);
        p.ci95 = best.1;
        p.at_iteration = best.2;
        p.sde = SideSummary {
            final_mean: both[iters].1,
            final_ci95: 0.0,
            diverged: 0,
        };
        p.reference = "exact";
    }
    p
}

fn finish_curve(model: SdeModel, obs: Observable, points: Vec<WeakErrorPoint>) -> WeakErrorCurve {
    let etas: Vec<f64> = points.iter().map(|p| p.eta).collect();
    let errs: Vec<f64> = points.iter().map(|p| p.weak_error).collect();
    let fit = if points.len() >= 2 {
        fit_order(&etas, &errs)
    } else {
        None
    };
    let mut warnings = Vec::new();
    for p in &points {
        if p.ci95 > p.weak_error / 3.0 {
            warnings.push(format!(
                "Monte Carlo floor: at eta = {} the 95% interval (±{:.3e}) is more than a third of the weak error ({:.3e}); the fitted order is not trustworthy: add paths or use larger learning rates",
                p.eta, p.ci95, p.weak_error
            ));
        }
        if p.discrete.diverged > 0 || p.sde.diverged > 0 {
            warnings.push(format!(
                "at eta = {}: {} discrete and {} SDE paths diverged and were left out of the means",
                p.eta, p.discrete.diverged, p.sde.diverged
            ));
        }
    }
    if points.len() < 3 {
        warnings.push(format!(
            "{} learning rate(s): at least 3 are needed for an interval on the order",
            points.len()
        ));
    }
    let exact_order = points
        .iter()
        .map(|p| p.exact.as_ref().map(|e| e.weak_error))
        .collect::<Option<Vec<f64>>>()
        .and_then(|e| fit_order(&etas, &e))
        .map(|f| f.slope);
    WeakErrorCurve {
        model: model.name(),
        observable: obs.name(),
        points,
        order: fit.map(|f| f.slope),
        order_ci95: fit.and_then(|f| {
            f.slope_ci95
                .0
                .is_finite()
                .then_some([f.slope_ci95.0, f.slope_ci95.1])
        }),
        expected_order: model.weak_order(),
        exact_order,
        warnings,
    }
}
