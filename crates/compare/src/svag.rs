//! SVAG (Li, Malladi & Arora 2021, "On the validity of modeling SGD with stochastic differential
//! equations"): a second, independent way to simulate the first-order SDE (A) of any gradient
//! method, without forming its covariance.
//!
//! With two independent draws `u₁, u₂` of the method's direction at the current state and
//! `r_{1,2} = (1 ± √(2l − 1))/2`, the SVAG direction `r₁u₁ + r₂u₂` has the mean `μ` of one draw
//! (`r₁ + r₂ = 1`) and `l` times its covariance (`r₁² + r₂² = l`). Taking `l` steps of size
//! `η/l` per iteration therefore matches, per unit of SDE time, the drift `−μ` and the diffusion
//! `η C` of (A) exactly, while every higher cumulant shrinks with `l`: the SVAG process converges
//! weakly to (A) as `l → ∞` (their Theorem 3.2; `l = 1` is the discrete method itself). Only the
//! sampler is needed, so it checks the SDE's covariance factor (e.g. the minibatch factor of
//! `models::minibatch`) against the law it was derived from.
//!
//! A schedule multiplies each small step by `η_t` at its SDE time `t`.

use crate::error::{CompareError, Setting};
use crate::inference::{weighted_order_fit, OrderFit};
use crate::observable::{evaluate_from, Observable};
use crate::sim::{DiscretePaths, ModelPaths, PathSettings};
use crate::streams::{stream_seed, Role, Stream};
use crate::study::{
    band_point, check_horizon_and_etas, check_paths, check_x0, finish_curve, iterations,
    run_ensemble, side, Progress, Reference, SdeEstimator, StudySettings, WeakErrorCurve,
    WeakErrorPoint, RESOLVED_ORDER_HALF_WIDTH,
};
use crate::study::{RandomNumbers, StudyCost};
use crate::trajectory::{summarize, Trajectory, TrajectorySettings};
use models::loss::Loss;
use models::method::GradientMethod;
use models::optimizer::{norm, Optimizer};
use models::sde::SdeModel;
use models::{expected_weak_order, ExpectedOrder};
use rand::Rng;
use sde_core::stats::Z95;
use sde_core::{Ensemble, EnsembleStats, PathInput, PathRng, PathSimulation};
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};

/// `(r₁, r₂)` of SVAG with parameter `l ≥ 1`.
pub fn svag_weights(l: usize) -> (f64, f64) {
    let s = (2.0 * l as f64 - 1.0).sqrt();
    ((1.0 + s) / 2.0, (1.0 - s) / 2.0)
}

/// The SVAG process of `opt` with parameter `l`, recorded at every iteration `k` (time `kη`).
pub struct SvagPaths<'a, L, M> {
    pub opt: &'a Optimizer<L, M>,
    pub settings: &'a PathSettings,
    pub l: usize,
    /// 64-bit words drawn from the paths' own generators, summed over paths (integer sums: the
    /// same for any thread count; see [`SvagPaths::words_drawn`]).
    words: AtomicU64,
    /// SVAG substeps taken (a diverged path stops counting), summed over paths.
    steps: AtomicU64,
}

/// 64-bit words a generator produced between the states `from` and `to`: every draw of
/// [`PathRng`] (Xoshiro256++), `u32` or `u64`, advances its state by exactly one step, so
/// stepping a copy of `from` until it equals `to` counts the draws whatever the sampler did with
/// them (the optimizer's samplers are behind a trait and report no count of their own). Costs
/// one generator step and a state comparison per word, 21 instructions (callgrind): ~11% of an
/// SVAG path of Gaussian DSGD (d = 2, N = 2), negligible beside minibatch gradients.
fn words_between(from: &PathRng, to: &PathRng) -> u64 {
    let mut r = from.clone();
    let mut n = 0;
    while r != *to {
        r.next_u64();
        n += 1;
    }
    n
}

pub struct SvagWorkspace {
    x: Vec<f64>,
    g: Vec<f64>,
    u1: Vec<f64>,
    u2: Vec<f64>,
    scratch: Vec<f64>,
    rec: Vec<f64>,
}

impl<'a, L: Loss, M: GradientMethod> SvagPaths<'a, L, M> {
    /// `l ≥ 1` (named `sde.svag_l` in errors).
    pub fn new(
        opt: &'a Optimizer<L, M>,
        settings: &'a PathSettings,
        l: usize,
    ) -> Result<Self, CompareError> {
        if l == 0 {
            return Err(CompareError::bad(Setting::SvagL, 0, "must be at least 1"));
        }
        Ok(SvagPaths {
            opt,
            settings,
            l,
            words: AtomicU64::new(0),
            steps: AtomicU64::new(0),
        })
    }

    /// Random numbers drawn so far: the 64-bit words the paths took from their own generators,
    /// summed over paths. Two directions per substep, each whatever the optimizer draws for one
    /// stochastic gradient (Gaussian noise: one word per normal per agent and coordinate, more on
    /// the ziggurat's rare rejections; minibatch noise: the words behind the batch's indices);
    /// a compressor's own stream is seeded by one word of the path's generator, and only that
    /// word is counted.
    pub fn words_drawn(&self) -> u64 {
        self.words.load(Ordering::Relaxed)
    }

    /// SVAG substeps taken so far (`l` per iteration; a diverged path stops counting).
    pub fn steps_taken(&self) -> u64 {
        self.steps.load(Ordering::Relaxed)
    }

    fn record(&self, x: &[f64], g: &mut [f64], out: &mut [f64], s: usize) -> bool {
        let n = self.settings.observables.len();
        let o = &mut out[s * n..(s + 1) * n];
        let f = evaluate_from(
            self.opt.loss(),
            &self.settings.observables,
            &self.settings.x0,
            x,
            g,
            o,
        );
        f.is_finite() && f <= self.settings.diverge_above && o.iter().all(|v| v.is_finite())
    }
}

impl<L: Loss, M: GradientMethod> PathSimulation for SvagPaths<'_, L, M> {
    type Workspace = SvagWorkspace;
    fn workspace(&self) -> SvagWorkspace {
        let d = self.opt.dim();
        SvagWorkspace {
            x: self.settings.x0.clone(),
            g: vec![0.0; d],
            u1: vec![0.0; d],
            u2: vec![0.0; d],
            scratch: vec![0.0; self.opt.method().scratch_len()],
            rec: vec![0.0; d],
        }
    }
    fn n_save(&self) -> usize {
        self.settings.iterations + 1
    }
    fn n_observables(&self) -> usize {
        self.settings.observables.len()
    }
    fn counters(&self) -> Vec<u64> {
        vec![self.words_drawn(), self.steps_taken()]
    }

    fn set_counters(&self, totals: &[u64]) {
        for (c, &t) in [&self.words, &self.steps].into_iter().zip(totals) {
            c.store(t, Ordering::Relaxed);
        }
    }

    fn simulate(&self, path: PathInput<'_>, ws: &mut SvagWorkspace, out: &mut [f64]) -> usize {
        let start = path.rng.clone();
        let (valid, iterations) = self.simulate_path(path.rng, ws, out);
        self.words
            .fetch_add(words_between(&start, path.rng), Ordering::Relaxed);
        self.steps
            .fetch_add((iterations * self.l) as u64, Ordering::Relaxed);
        valid
    }
}

impl<L: Loss, M: GradientMethod> SvagPaths<'_, L, M> {
    /// One path: (save points valid, iterations taken).
    fn simulate_path(
        &self,
        rng: &mut PathRng,
        ws: &mut SvagWorkspace,
        out: &mut [f64],
    ) -> (usize, usize) {
        let st = self.settings;
        let (method, schedule, loss) = (self.opt.method(), self.opt.schedule(), self.opt.loss());
        let (r1, r2) = svag_weights(self.l);
        let h = st.eta / self.l as f64;
        let needs_g = method.needs_full_gradient() || schedule.depends_on_gradient();
        ws.x.copy_from_slice(&st.x0);
        if !self.record(&ws.x, &mut ws.rec, out, 0) {
            return (0, 0);
        }
        for k in 0..st.iterations {
            for j in 0..self.l {
                if needs_g {
                    loss.gradient(&ws.x, &mut ws.g);
                }
                let t = (k * self.l + j) as f64 * h;
                let et = schedule.eta_t(t, st.eta, norm(&ws.g));
                method.sample_at(&ws.x, &ws.g, rng, &mut ws.u1, &mut ws.scratch);
                method.sample_at(&ws.x, &ws.g, rng, &mut ws.u2, &mut ws.scratch);
                let s = h * et;
                for ((x, a), b) in ws.x.iter_mut().zip(&ws.u1).zip(&ws.u2) {
                    *x -= s * (r1 * a + r2 * b);
                }
            }
            if !self.record(&ws.x, &mut ws.rec, out, k + 1) {
                return (k + 1, k + 1);
            }
        }
        (st.iterations + 1, st.iterations)
    }
}

/// The first step of the SVAG runs' stream path ([`crate::streams::Stream::at`]), then `l`:
/// a grid index no study, trajectory or stability run reaches, so SVAG's noise is independent of
/// every other ensemble of the same master seed.
pub(crate) const SVAG_STREAM: usize = 0x5fa6;

/// Path simulations [`svag_trajectories`] performs (for a progress bar).
pub fn svag_work(s: &TrajectorySettings, ls: &[usize]) -> u64 {
    let extra = if s.quantile_paths >= s.paths {
        0
    } else {
        s.quantile_paths
    };
    ls.len() as u64 * (s.paths + extra)
}

/// Trajectories of SVAG(`l`) for every `l` in `ls`, at the settings of
/// [`crate::trajectory::trajectories`] (same learning rate, paths, observables and quantiles),
/// labelled `SVAG l=<l>`; each `l` on its own stream (`SVAG_STREAM`, then `l`).
pub fn svag_trajectories<L: Loss, M: GradientMethod>(
    opt: &Optimizer<L, M>,
    s: &TrajectorySettings,
    ls: &[usize],
    progress: Progress,
) -> Result<Vec<(usize, Trajectory)>, CompareError> {
    check_horizon_and_etas(s.horizon, &[s.eta])?;
    check_paths(s.paths)?;
    check_x0(&s.x0, opt.dim())?;
    let settings = PathSettings {
        eta: s.eta,
        iterations: iterations(s.horizon, s.eta),
        x0: s.x0.clone(),
        observables: s.observables.clone(),
        diverge_above: s.diverge_above,
    };
    ls.iter()
        .map(|&l| {
            let sim = SvagPaths::new(opt, &settings, l)?;
            let seed = Stream::master(s.seed).at(SVAG_STREAM).at(l).seed();
            summarize(format!("SVAG l={l}"), &sim, s, seed, progress).map(|t| (l, t))
        })
        .collect()
}

/// `E g(X_T)` at the last iteration by SVAG(`l`) and by Euler–Maruyama on (A) with `substeps`
/// steps per iteration, with 95% intervals (independent ensembles).
#[derive(Clone, Debug, PartialEq)]
pub struct SvagAgreement {
    pub l: usize,
    pub observable: usize,
    pub svag_mean: f64,
    pub svag_ci95: f64,
    pub sde_mean: f64,
    pub sde_ci95: f64,
}

impl SvagAgreement {
    /// `|difference| ≤` the 95% interval of the difference (`√(ci₁² + ci₂²)`).
    pub fn agrees(&self) -> bool {
        (self.svag_mean - self.sde_mean).abs() <= self.svag_ci95.hypot(self.sde_ci95)
    }
}

fn last_point(stats: &EnsembleStats, s: usize, o: usize) -> (f64, f64) {
    let sum = stats.summary(s, o);
    (sum.mean, sum.ci95)
}

/// Runs (A) by Euler–Maruyama and SVAG for every `l` in `ls` on `paths` paths each, seeds derived
/// from `seed`; one [`SvagAgreement`] per `l` and observable, at the last iteration.
pub fn svag_versus_sde<L: Loss, M: GradientMethod>(
    opt: &Optimizer<L, M>,
    settings: &PathSettings,
    ls: &[usize],
    substeps: usize,
    paths: u64,
    seed: u64,
) -> Result<Vec<SvagAgreement>, CompareError> {
    let sde = opt.sde(SdeModel::FirstOrder, settings.eta)?;
    let solver = sde_core::Solver::new(sde, sde_core::EulerMaruyama, sde_core::Gaussian)?;
    let sim = ModelPaths {
        solver,
        settings,
        substeps,
    };
    let last = settings.iterations;
    let sde_stats = Ensemble::new(paths, sde_core::derive_key(seed, 1))?.run(&sim);
    let mut out = Vec::new();
    for (i, &l) in ls.iter().enumerate() {
        let svag = SvagPaths::new(opt, settings, l)?;
        let stats = Ensemble::new(paths, sde_core::derive_key(seed, 100 + i as u64))?.run(&svag);
        for o in 0..settings.observables.len() {
            let (svag_mean, svag_ci95) = last_point(&stats, last, o);
            let (sde_mean, sde_ci95) = last_point(&sde_stats, last, o);
            out.push(SvagAgreement {
                l,
                observable: o,
                svag_mean,
                svag_ci95,
                sde_mean,
                sde_ci95,
            });
        }
    }
    Ok(out)
}

/// What the SVAG rows of a weak-error study estimate, written into its result document.
pub const SVAG_ESTIMAND: &str = "Rows \"svag l=<l>\": max over iterations 1 <= k <= K of \
|E g(x_k) - E g(Y_k)|, x the discrete method, Y the SVAG(l) process (l steps of eta/l per \
iteration, recorded at every iteration k, time k eta), from two independent ensembles of run.paths \
paths each: the discrete one on the study's discrete stream of that learning rate (the very paths \
of the model rows when the study is not coupled; an extra independent ensemble when it is) and \
SVAG on its own stream per learning rate and l (independent of every SDE path). Interval: \
simultaneous 95% over the K iterations (Bonferroni), Monte Carlo only (SVAG is simulated \
exactly, so there is no integrator bias); the order is fitted and judged like the models'. \
Agreement with (A): d = E g(Y_K) - E g(X_{K eta}) at the horizon, X model (A) as the study \
reports it (its SDE side: the Richardson-extrapolated or refined integrator value, or the closed \
form), on paths independent of SVAG's; 95% interval d +- (sqrt(ci_svag^2 + ci_A^2) + (A)'s \
integrator-bias bound). SVAG(l) tends weakly to (A) with an error O(eta/l) (Li, Malladi & Arora \
2021): the interval should contain 0 at large l, and |d| shrink like 1/l (order in 1/l fitted on \
the l whose interval excludes 0).";

/// SVAG as a weak-error reference: its rows of a study ([`svag_weak_error`]).
#[derive(Clone, Debug, Serialize)]
pub struct SvagStudy {
    /// What is estimated, from which paths ([`SVAG_ESTIMAND`]).
    pub estimand: &'static str,
    /// One curve per `l` and observable: SVAG(l) against the discrete method.
    pub curves: Vec<SvagCurve>,
    /// Per `l`, learning rate and observable: SVAG(l) against (A) at the horizon.
    pub agreement: Vec<SvagAgreementPoint>,
    /// Per learning rate and observable: how the disagreement with (A) falls with `l`.
    pub agreement_in_l: Vec<SvagOrderInL>,
    /// Why an agreement is missing, if one is.
    pub notes: Vec<String>,
    /// Random numbers every SVAG ensemble drew, summed (each `l` and learning rate once; see
    /// [`SvagPaths::words_drawn`]): the total of the rows' `random_numbers.sde`, each counted
    /// once, not once per observable. The discrete ensembles are not counted (their draws are
    /// the method's, as for the study's independent discrete side).
    pub random_numbers: u64,
}

/// The weak error of SVAG(l) against the discrete method over the learning rates.
#[derive(Clone, Debug, Serialize)]
pub struct SvagCurve {
    pub l: usize,
    /// `svag l=<l>`, the model column of the result files.
    pub label: String,
    /// `curve.model` is (A), the model SVAG(l) converges to (its expected order is (A)'s); the
    /// points' SDE side (`sde`, `substeps` = l) is SVAG(l), `sde_estimator` = "svag".
    pub curve: WeakErrorCurve,
}

/// `E g(Y_K) − E g(X_{Kη})` at the horizon, SVAG(l) against (A) (see [`SVAG_ESTIMAND`]).
#[derive(Clone, Debug, Serialize)]
pub struct SvagAgreementPoint {
    pub l: usize,
    pub eta: f64,
    pub iterations: usize,
    pub observable: Observable,
    pub svag_mean: Option<f64>,
    pub svag_ci95: Option<f64>,
    /// (A) at the horizon, from the study's point of model `first_order`.
    pub sde_mean: Option<f64>,
    pub sde_ci95: Option<f64>,
    pub sde_integrator_bias_bound: Option<f64>,
    /// How (A)'s side was obtained (coupled or independent integrator paths, or closed form).
    pub sde_reference: Reference,
    pub difference: Option<f64>,
    /// Half-width of the 95% interval of the difference.
    pub ci95: Option<f64>,
    pub ci95_interval: Option<[f64; 2]>,
    /// Whether the interval contains 0: SVAG(l) and (A) agree within it.
    pub contains_zero: Option<bool>,
    pub svag_diverged: u64,
}

/// The order in `1/l` of `|E g(Y_K) − E g(X_{Kη})|` at one learning rate (expected 1).
#[derive(Clone, Debug, Serialize)]
pub struct SvagOrderInL {
    pub eta: f64,
    pub observable: Observable,
    /// The `l` the fit used: those whose difference's interval excludes 0 (below them the
    /// difference is not measured, only bounded).
    pub fitted_l: Vec<usize>,
    /// The weighted fit (slope = the order, with its 95% interval).
    pub fit: Option<OrderFit>,
    pub expected_order: f64,
    /// At least two `l` fitted and the interval no wider than ±0.5.
    pub resolved: bool,
}

/// Path simulations [`svag_weak_error`] performs (for a progress bar).
pub fn svag_study_work(s: &StudySettings, ls: &[usize]) -> u64 {
    s.etas.len() as u64 * s.paths * (1 + ls.len() as u64)
}

/// SVAG(l) for every `l` in `ls` as a weak-error reference of the study `s` whose curves are
/// `curves` (see [`SVAG_ESTIMAND`]). The agreement with (A) needs `first_order` among
/// `s.models`; without it [`SvagStudy::notes`] says so. The study's own numbers are untouched.
pub fn svag_weak_error<L: Loss, M: GradientMethod>(
    opt: &Optimizer<L, M>,
    s: &StudySettings,
    ls: &[usize],
    curves: &[WeakErrorCurve],
    progress: Progress,
) -> Result<SvagStudy, CompareError> {
    svag_weak_error_with_cost(opt, s, ls, curves, progress).map(|(sv, _)| sv)
}

/// [`svag_weak_error`], and what it cost: `random_numbers` the SVAG paths' words
/// ([`SvagPaths::words_drawn`]), `ladder_runs` the ensembles (per learning rate one discrete,
/// one per `l`), `sde_steps` = `reported_sde_steps` the SVAG substeps taken, `discrete_steps`
/// the discrete ensembles' paths × iterations (as [`StudyCost`] counts an independent one).
pub fn svag_weak_error_with_cost<L: Loss, M: GradientMethod>(
    opt: &Optimizer<L, M>,
    s: &StudySettings,
    ls: &[usize],
    curves: &[WeakErrorCurve],
    progress: Progress,
) -> Result<(SvagStudy, StudyCost), CompareError> {
    s.validate(opt.dim())?;
    if ls.is_empty() {
        return Err(CompareError::bad(
            Setting::SvagL,
            "[]",
            "needs at least one l",
        ));
    }
    let a = expected_weak_order(opt, SdeModel::FirstOrder);
    let expected = ExpectedOrder {
        order: a.order,
        reason: format!(
            "SVAG(l) tends weakly to (A) as l grows, so its weak error against the discrete \
             method tends to (A)'s: {}",
            a.reason
        ),
    };
    let n = s.observables.len();
    let mut points: Vec<Vec<Vec<WeakErrorPoint>>> = vec![vec![Vec::new(); n]; ls.len()];
    let mut agreement = Vec::new();
    let mut notes = Vec::new();
    let mut cost = StudyCost::default();
    if !s.models.contains(&SdeModel::FirstOrder) {
        notes.push(
            "no agreement with (A): sde.models does not list \"first_order\", so the study has \
             no (A) to compare SVAG with"
                .to_string(),
        );
    }
    for (ei, &eta) in s.etas.iter().enumerate() {
        let iters = s.iterations(eta);
        let settings = PathSettings {
            eta,
            iterations: iters,
            x0: s.x0.clone(),
            observables: s.observables.clone(),
            diverge_above: s.diverge_above,
        };
        let sim = DiscretePaths {
            opt,
            settings: &settings,
        };
        let seed = stream_seed(s.seed, ei, Role::Discrete);
        let discrete = run_ensemble(s.paths, seed, &sim, progress)?;
        cost.ladder_runs += 1;
        cost.discrete_steps += s.paths * iters as u64;
        for (li, &l) in ls.iter().enumerate() {
            let sim = SvagPaths::new(opt, &settings, l)?;
            let seed = Stream::master(s.seed).at(ei).at(SVAG_STREAM).at(l).seed();
            let svag = run_ensemble(s.paths, seed, &sim, progress)?;
            // Read after the run: a distributed ensemble has written back every process's totals.
            let drawn = RandomNumbers {
                discrete: None,
                sde: sim.words_drawn(),
            };
            cost.ladder_runs += 1;
            cost.random_numbers += drawn.sde;
            cost.sde_steps += sim.steps_taken();
            cost.reported_sde_steps += sim.steps_taken();
            for (oi, &obs) in s.observables.iter().enumerate() {
                let mut p = svag_point(&discrete, &svag, oi, eta, iters, l, s.paths);
                p.random_numbers = drawn;
                points[li][oi].push(p);
                let a = curves
                    .iter()
                    .find(|c| c.model == SdeModel::FirstOrder && c.observable == obs)
                    .and_then(|c| c.points.get(ei))
                    .filter(|p| p.eta == eta);
                if let Some(a) = a {
                    agreement.push(agreement_point(&svag, a, l, obs, oi));
                }
            }
        }
    }
    let mut out = Vec::new();
    for (li, &l) in ls.iter().enumerate() {
        for (oi, &obs) in s.observables.iter().enumerate() {
            let pts = std::mem::take(&mut points[li][oi]);
            out.push(SvagCurve {
                l,
                label: format!("svag l={l}"),
                curve: finish_curve(SdeModel::FirstOrder, obs, pts, &expected, s),
            });
        }
    }
    let agreement_in_l = orders_in_l(s, &agreement);
    let study = SvagStudy {
        estimand: SVAG_ESTIMAND,
        curves: out,
        agreement,
        agreement_in_l,
        notes,
        random_numbers: cost.random_numbers,
    };
    Ok((study, cost))
}

/// SVAG(l) against the discrete method at one learning rate, from two independent ensembles.
fn svag_point(
    d: &EnsembleStats,
    svag: &EnsembleStats,
    o: usize,
    eta: f64,
    iters: usize,
    l: usize,
    paths: u64,
) -> WeakErrorPoint {
    let diffs: Vec<(usize, f64, f64)> = (1..d.n_save)
        .map(|k| {
            let (a, b) = (d.summary(k, o), svag.summary(k, o));
            if a.count < 2 || b.count < 2 {
                (k, f64::NAN, f64::NAN)
            } else {
                (k, a.mean - b.mean, a.std_err.hypot(b.std_err))
            }
        })
        .collect();
    let last = d.n_save - 1;
    let (a, b) = (d.summary(last, o), svag.summary(last, o));
    band_point(
        (eta, iters, l),
        &diffs,
        SdeEstimator::Svag,
        None,
        side(a.count, a.mean, a.ci95, d.diverged_total(), paths),
        side(b.count, b.mean, b.ci95, svag.diverged_total(), paths),
        Reference::Independent,
    )
}

/// SVAG(l) at the horizon against the study's (A) point `a`.
fn agreement_point(
    svag: &EnsembleStats,
    a: &WeakErrorPoint,
    l: usize,
    obs: Observable,
    o: usize,
) -> SvagAgreementPoint {
    let last = svag.n_save - 1;
    let v = svag.summary(last, o);
    let svag_mean = (v.count > 0).then_some(v.mean);
    let svag_ci95 = (v.count > 1).then_some(v.ci95);
    let bias = a.integrator_bias_bound.unwrap_or(0.0);
    let difference = svag_mean.zip(a.sde.final_mean).map(|(s, m)| s - m);
    let ci95 = svag_ci95
        .zip(a.sde.final_ci95)
        .map(|(x, y)| x.hypot(y) + bias);
    let ci95_interval = difference.zip(ci95).map(|(d, c)| [d - c, d + c]);
    SvagAgreementPoint {
        l,
        eta: a.eta,
        iterations: a.iterations,
        observable: obs,
        svag_mean,
        svag_ci95,
        sde_mean: a.sde.final_mean,
        sde_ci95: a.sde.final_ci95,
        sde_integrator_bias_bound: a.integrator_bias_bound,
        sde_reference: a.reference,
        difference,
        ci95,
        ci95_interval,
        contains_zero: ci95_interval.map(|[lo, hi]| lo <= 0.0 && 0.0 <= hi),
        svag_diverged: svag.diverged_total(),
    }
}

/// Per learning rate and observable, the weighted fit of `log |d|` against `log(1/l)` over the
/// `l` whose difference is resolved from 0.
fn orders_in_l(s: &StudySettings, agreement: &[SvagAgreementPoint]) -> Vec<SvagOrderInL> {
    let mut out = Vec::new();
    for &eta in &s.etas {
        for &obs in &s.observables {
            let rows: Vec<&SvagAgreementPoint> = agreement
                .iter()
                .filter(|a| a.eta == eta && a.observable == obs && a.contains_zero == Some(false))
                .collect();
            if agreement
                .iter()
                .all(|a| a.eta != eta || a.observable != obs)
            {
                continue;
            }
            let x: Vec<f64> = rows.iter().map(|a| 1.0 / a.l as f64).collect();
            let err: Vec<f64> = rows
                .iter()
                .filter_map(|a| a.difference.map(f64::abs))
                .collect();
            let se: Vec<f64> = rows
                .iter()
                .filter_map(|a| {
                    a.ci95
                        .map(|c| (c - a.sde_integrator_bias_bound.unwrap_or(0.0)) / Z95)
                })
                .collect();
            let fit = (err.len() == x.len() && se.len() == x.len())
                .then(|| weighted_order_fit(&x, &err, &se))
                .flatten();
            let resolved = fit.is_some_and(|f| {
                let half = (f.ci95[1] - f.ci95[0]) / 2.0;
                half.is_finite() && half <= RESOLVED_ORDER_HALF_WIDTH
            });
            out.push(SvagOrderInL {
                eta,
                observable: obs,
                fitted_l: rows.iter().map(|a| a.l).collect(),
                fit,
                expected_order: 1.0,
                resolved,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observable::Observable;
    use models::loss::DiagonalQuadratic;
    use models::method::{Agent, Dsgd};
    use models::noise::GaussianNoise;
    use models::schedule::Schedule;
    use models::{CompressorKind, Identity};

    #[test]
    fn svag_weights_keep_the_mean_and_scale_the_variance_by_l() {
        for l in [1, 2, 5, 64] {
            let (a, b) = svag_weights(l);
            assert!((a + b - 1.0).abs() < 1e-15);
            assert!((a * a + b * b - l as f64).abs() < 1e-12 * l as f64);
        }
    }

    /// DSGD on `λx²/2` with additive noise `σ`: (A) is an Ornstein–Uhlenbeck process with
    /// `E X_T² = x0² e^{−2λT} + ησ²(1 − e^{−2λT})/(2λ)`, the discrete method (`l = 1`) is not
    /// (its stationary variance is `ησ²/(λ(2 − ηλ))`), and SVAG approaches (A) as `l` grows.
    #[test]
    fn svag_converges_to_the_first_order_sde_and_agrees_with_euler_maruyama() {
        let (lambda, sigma, eta, x0) = (2.0, 1.0, 0.2, 1.0);
        let opt = dsgd_on_quadratic(lambda, sigma);
        let horizon = 2.0;
        let settings = PathSettings {
            eta,
            iterations: (horizon / eta) as usize,
            x0: vec![x0],
            observables: vec![Observable::XSq],
            diverge_above: 1e12,
        };
        let e = (-2.0 * lambda * horizon).exp();
        let exact = x0 * x0 * e + eta * sigma * sigma * (1.0 - e) / (2.0 * lambda);
        let res = svag_versus_sde(&opt, &settings, &[1, 4, 32], 32, 50_000, 7).unwrap();
        let (l1, l4, l32) = (&res[0], &res[1], &res[2]);
        // EM with 32 substeps is within its interval (plus its O(h) bias, ≈ 3e-4 here) of (A).
        assert!(
            (l1.sde_mean - exact).abs() < l1.sde_ci95 + 5e-4,
            "{l1:?} vs {exact}"
        );
        // The discrete method (l = 1) and SVAG(4) are resolved away from (A): their stationary
        // variances are ησ²/(λ(2 − ηλ/l)), 25% and 5% above (A)'s.
        assert!(!l1.agrees(), "{l1:?}");
        assert!(!l4.agrees(), "{l4:?}");
        assert!(l4.svag_mean < l1.svag_mean);
        // SVAG with l = 32 agrees with Euler–Maruyama within the intervals, and with (A).
        assert!(l32.agrees(), "{l32:?}");
        assert!(
            (l32.svag_mean - exact).abs() < l32.svag_ci95 + 5e-4,
            "{l32:?} vs {exact}"
        );
    }

    /// Minibatch noise on a real network (logistic regression on iris, one agent, B = 8):
    /// non-Gaussian and state-dependent. SVAG, which only samples minibatches, and Euler–Maruyama
    /// on (A), which uses the `d × n` per-example factor, agree within intervals on the training
    /// loss and ‖x‖²: an independent check of the factor.
    #[test]
    fn svag_agrees_with_euler_maruyama_under_minibatch_noise() {
        use models::data::DatasetName;
        use models::minibatch::{Minibatch, MinibatchRule};
        use models::mlp::{Mlp, MlpSpec};
        use std::sync::Arc;
        let net = Arc::new(Mlp::new(MlpSpec::logistic(DatasetName::Iris, 3)).unwrap());
        let mb = Minibatch::new(net.clone(), MinibatchRule::Sgd, 1, 8, true).unwrap();
        let x0 = net.x0().to_vec();
        let opt = Optimizer::new(net, mb, Schedule::constant()).unwrap();
        let settings = PathSettings {
            eta: 0.5,
            iterations: 4,
            x0,
            observables: vec![Observable::Loss, Observable::XSq],
            diverge_above: 1e12,
        };
        let res = svag_versus_sde(&opt, &settings, &[1, 16], 16, 10_000, 11).unwrap();
        for r in &res {
            eprintln!("{r:?}");
        }
        for r in res.iter().filter(|r| r.l == 16) {
            assert!(r.agrees(), "{r:?}");
        }
    }

    /// SVAG(l) of DSGD on `λx²/2` with additive Gaussian noise `σ` (one agent) is linear with
    /// Gaussian increments: per small step `h = η/l`, `m ← (1 − hλ) m` and
    /// `v ← (1 − hλ)² v + h² l σ²` (the SVAG direction's variance is `(r₁² + r₂²) σ² = l σ²`).
    /// `(E x, E x²)` of SVAG(l) at every iteration `k = 0..=K`; `l = 1` is the discrete method.
    fn svag_moments(
        lambda: f64,
        sigma: f64,
        x0: f64,
        eta: f64,
        l: usize,
        k: usize,
    ) -> Vec<[f64; 2]> {
        let h = eta / l as f64;
        let (mut m, mut v) = (x0, 0.0);
        let mut out = vec![[m, m * m]];
        for _ in 0..k {
            for _ in 0..l {
                m *= 1.0 - h * lambda;
                v = (1.0 - h * lambda).powi(2) * v + h * h * l as f64 * sigma * sigma;
            }
            out.push([m, m * m + v]);
        }
        out
    }

    /// (A) of the same problem, an Ornstein–Uhlenbeck process: `(E X_t, E X_t²)`.
    fn ou_moments(lambda: f64, sigma: f64, x0: f64, eta: f64, t: f64) -> [f64; 2] {
        let (e, e2) = ((-lambda * t).exp(), (-2.0 * lambda * t).exp());
        [
            x0 * e,
            x0 * x0 * e2 + eta * sigma * sigma * (1.0 - e2) / (2.0 * lambda),
        ]
    }

    /// DSGD with one agent on `λx²/2` with additive Gaussian noise `σ`, constant schedule.
    fn dsgd_on_quadratic(
        lambda: f64,
        sigma: f64,
    ) -> Optimizer<DiagonalQuadratic, models::method::Dsgd> {
        let loss = DiagonalQuadratic::new(vec![lambda]).unwrap();
        let agent = Agent {
            noise: GaussianNoise::isotropic(1, sigma, 0.0).unwrap().into(),
            compressor: CompressorKind::Identity(Identity),
        };
        Optimizer::new(loss, Dsgd::new(vec![agent]).unwrap(), Schedule::constant()).unwrap()
    }

    /// A study of (A) from `x0 = 1` over `T = 1`, observables `x` and `x²`.
    fn quadratic_settings(
        exact_reference: bool,
        substeps: Option<usize>,
        etas: Vec<f64>,
        paths: u64,
    ) -> StudySettings {
        StudySettings {
            etas,
            horizon: 1.0,
            paths,
            seed: 21,
            x0: vec![1.0],
            models: vec![SdeModel::FirstOrder],
            scheme: sde_core::SchemeKind::EulerMaruyama,
            increments: sde_core::IncrementKind::Gaussian,
            substeps,
            max_substeps: 256,
            observables: vec![Observable::X, Observable::XSq],
            diverge_above: 1e12,
            common_random_numbers: true,
            exact_reference,
            target_rel_ci: None,
            max_paths: None,
        }
    }

    fn quadratic_study(
        exact_reference: bool,
        substeps: Option<usize>,
        etas: Vec<f64>,
        ls: &[usize],
        paths: u64,
    ) -> (StudySettings, Vec<WeakErrorCurve>, SvagStudy) {
        use crate::exact::QuadraticDsgdMoments;
        use crate::study::weak_error_study;
        let opt = dsgd_on_quadratic(2.0, 1.0);
        let s = quadratic_settings(exact_reference, substeps, etas, paths);
        let exact = QuadraticDsgdMoments {
            lambda: vec![2.0],
            noise_var: vec![1.0],
            x0: vec![1.0],
        };
        let curves = weak_error_study(&opt, &s, Some(&exact), &|_| {}).unwrap();
        let svag = svag_weak_error(&opt, &s, ls, &curves, &|_| {}).unwrap();
        (s, curves, svag)
    }

    /// The ratio that turns a 95% interval, simultaneous over `k` iterations, into one
    /// simultaneous over `checks` such intervals as well (Bonferroni): the margin of a test that
    /// makes `checks` comparisons with the closed form.
    fn widen(k: usize, checks: usize) -> f64 {
        use crate::inference::simultaneous_z95;
        simultaneous_z95(k * checks) / simultaneous_z95(k)
    }

    /// The SVAG rows of a study against their closed forms: each weak error (SVAG(l) against the
    /// discrete method) and each horizon difference from (A) lies within its interval (widened for
    /// the number of comparisons), the fitted orders' intervals contain the order of the exact
    /// weak errors, the difference from (A) is resolved at l = 2 and shrinks like 1/l.
    #[test]
    fn svag_rows_of_a_study_match_the_closed_form_of_dsgd_on_a_quadratic() {
        let (lambda, sigma, x0) = (2.0, 1.0, 1.0);
        let ls = [2, 8, 64];
        let (s, _, svag) = quadratic_study(true, None, vec![0.2, 0.1, 0.05], &ls, 40_000);
        assert_eq!(svag.curves.len(), ls.len() * 2);
        assert!(svag.notes.is_empty(), "{:?}", svag.notes);
        let checks = svag.curves.len() * s.etas.len();
        for c in &svag.curves {
            let o = if c.curve.observable == Observable::X {
                0
            } else {
                1
            };
            let mut exact_we = Vec::new();
            for p in &c.curve.points {
                let k = p.iterations;
                let d = svag_moments(lambda, sigma, x0, p.eta, 1, k);
                let y = svag_moments(lambda, sigma, x0, p.eta, c.l, k);
                let w = (1..=k)
                    .map(|i| (d[i][o] - y[i][o]).abs())
                    .fold(0.0, f64::max);
                exact_we.push(w);
                let (e, ci) = (p.weak_error.unwrap(), p.ci95.unwrap());
                assert!(
                    (e - w).abs() <= ci * widen(k, checks),
                    "{} {:?} eta {}: {e} ± {ci} against the exact {w}",
                    c.label,
                    c.curve.observable,
                    p.eta
                );
                assert_eq!(p.sde_estimator, SdeEstimator::Svag);
                assert_eq!(p.substeps, c.l);
            }
            // The order the weighted fit estimates: the same fit, with the same weights, of the
            // exact weak errors.
            let etas: Vec<f64> = c.curve.points.iter().map(|p| p.eta).collect();
            let ses: Vec<f64> = c
                .curve
                .points
                .iter()
                .map(|p| p.ci95_pointwise.unwrap() / Z95)
                .collect();
            let exact_order = weighted_order_fit(&etas, &exact_we, &ses).unwrap().slope;
            let [lo, hi] = c.curve.order_ci95.unwrap();
            assert!(
                lo <= exact_order && exact_order <= hi,
                "{} {:?}: order interval [{lo}, {hi}] misses the exact {exact_order}",
                c.label,
                c.curve.observable
            );
        }
        assert_eq!(svag.agreement.len(), ls.len() * 2 * s.etas.len());
        for a in &svag.agreement {
            let o = if a.observable == Observable::X { 0 } else { 1 };
            let y = svag_moments(lambda, sigma, x0, a.eta, a.l, a.iterations);
            let exact = ou_moments(lambda, sigma, x0, a.eta, a.iterations as f64 * a.eta);
            let d = y[a.iterations][o] - exact[o];
            let ci = a.ci95.unwrap();
            assert_eq!(a.sde_reference, Reference::Exact);
            assert!(
                (a.difference.unwrap() - d).abs() <= ci * widen(1, svag.agreement.len()),
                "{a:?} against the exact difference {d}"
            );
            // Where the exact difference is far above the interval, SVAG and (A) are resolved
            // apart; where it is far below, the interval contains 0.
            if d.abs() > 3.0 * ci * widen(1, svag.agreement.len()) {
                assert_eq!(a.contains_zero, Some(false), "{a:?}");
            }
        }
        // E x at l = 2 is resolved from (A) at every learning rate (|d| ≥ 6 intervals).
        for a in svag
            .agreement
            .iter()
            .filter(|a| a.l == 2 && a.observable == Observable::X)
        {
            assert_eq!(a.contains_zero, Some(false), "{a:?}");
        }
        // The order in 1/l of the difference on E x: the fit over the resolved l contains the
        // order of the exact differences over the same l, and that is close to 1.
        for f in svag
            .agreement_in_l
            .iter()
            .filter(|f| f.observable == Observable::X)
        {
            let exact: Vec<f64> = f
                .fitted_l
                .iter()
                .map(|&l| {
                    let k = s.iterations(f.eta);
                    let y = svag_moments(lambda, sigma, x0, f.eta, l, k);
                    (y[k][0] - ou_moments(lambda, sigma, x0, f.eta, k as f64 * f.eta)[0]).abs()
                })
                .collect();
            let inv: Vec<f64> = f.fitted_l.iter().map(|&l| 1.0 / l as f64).collect();
            let ses: Vec<f64> = svag
                .agreement
                .iter()
                .filter(|a| {
                    a.eta == f.eta && a.observable == f.observable && f.fitted_l.contains(&a.l)
                })
                .map(|a| a.ci95.unwrap() / Z95)
                .collect();
            let want = weighted_order_fit(&inv, &exact, &ses).unwrap().slope;
            assert!((want - 1.0).abs() < 0.1, "{want}");
            let [lo, hi] = f.fit.unwrap().ci95;
            assert!(lo <= want && want <= hi, "{f:?} against {want}");
        }
    }

    /// With (A) integrated (Euler–Maruyama at 16 substeps, coupled to the discrete method) instead
    /// of its closed form, the agreement's interval carries (A)'s Monte Carlo error and
    /// integrator bias bound, and still contains the exact difference.
    #[test]
    fn svag_agreement_with_integrated_first_order_sde_contains_the_exact_difference() {
        let (lambda, sigma, x0) = (2.0, 1.0, 1.0);
        let (_, curves, svag) = quadratic_study(false, Some(16), vec![0.2, 0.1], &[2, 64], 20_000);
        assert_eq!(curves[0].points[0].reference, Reference::Coupled);
        let m = svag.agreement.len();
        for a in &svag.agreement {
            let o = if a.observable == Observable::X { 0 } else { 1 };
            let y = svag_moments(lambda, sigma, x0, a.eta, a.l, a.iterations);
            let exact = ou_moments(lambda, sigma, x0, a.eta, a.iterations as f64 * a.eta);
            let d = y[a.iterations][o] - exact[o];
            assert_eq!(a.sde_reference, Reference::Coupled);
            assert!(a.sde_ci95.unwrap() > 0.0 && a.sde_integrator_bias_bound.is_some());
            assert!(
                (a.difference.unwrap() - d).abs() <= a.ci95.unwrap() * widen(1, m),
                "{a:?} against the exact difference {d}"
            );
            if a.l == 2 && a.observable == Observable::X {
                assert_eq!(a.contains_zero, Some(false), "{a:?}");
            }
        }
    }

    #[test]
    fn words_between_counts_every_draw_of_the_generator() {
        use rand::RngExt;
        let mut rng = sde_core::derive_stream(3, 0);
        let start = rng.clone();
        assert_eq!(words_between(&start, &rng), 0);
        let _ = rng.next_u32();
        let _: f64 = rng.random();
        let _ = rng.next_u64();
        assert_eq!(words_between(&start, &rng), 3);
    }

    /// SVAG rows carry the random numbers their paths drew, the study's total counts each
    /// ensemble once, both are the same for one and two threads, and the work the progress bar
    /// is told ([`svag_study_work`]) is the path simulations run.
    #[test]
    fn svag_rows_count_their_random_numbers_the_same_for_any_thread_count() {
        let opt = dsgd_on_quadratic(2.0, 1.0);
        let s = quadratic_settings(true, None, vec![0.2, 0.1], 700);
        let ls = [1, 4];
        let run = |threads: usize| {
            let done = AtomicU64::new(0);
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let (sv, cost) = pool
                .install(|| {
                    svag_weak_error_with_cost(&opt, &s, &ls, &[], &|n| {
                        done.fetch_add(n, Ordering::Relaxed);
                    })
                })
                .unwrap();
            (sv, cost, done.load(Ordering::Relaxed))
        };
        let (sv, cost, done) = run(1);
        let (sv2, cost2, done2) = run(2);
        assert_eq!(cost, cost2);
        assert_eq!((done, done2), (svag_study_work(&s, &ls), done));
        let k: Vec<u64> = s.etas.iter().map(|&e| s.iterations(e) as u64).collect();
        let kl: u64 = k.iter().map(|k| k * 5).sum();
        assert_eq!(cost.sde_steps, s.paths * kl);
        assert_eq!(cost.reported_sde_steps, cost.sde_steps);
        assert_eq!(cost.discrete_steps, s.paths * k.iter().sum::<u64>());
        assert_eq!(cost.ladder_runs, 2 * 3);
        assert_eq!(sv.random_numbers, cost.random_numbers);
        let mut total = 0;
        for (c, c2) in sv.curves.iter().zip(&sv2.curves) {
            for ((p, p2), &k) in c.curve.points.iter().zip(&c2.curve.points).zip(&k) {
                assert_eq!(p.random_numbers, p2.random_numbers);
                assert_eq!(p.random_numbers.discrete, None);
                // One agent in d = 1, no divergence: one normal per direction, two directions
                // per substep. A normal takes one word, about two more on the ziggurat's
                // rejections (~1.2% of draws): ~2.4% extra words expected, with a standard
                // deviation below 2·sqrt(0.012/n) ≤ 0.3% for the n ≥ 7000 normals of a row, so
                // 5% is more than 5 standard deviations above the expectation.
                let normals = 2 * c.l as u64 * k * s.paths;
                let w = p.random_numbers.sde;
                assert!(
                    normals <= w && w <= normals + normals / 20,
                    "{w} against {normals}"
                );
                if c.curve.observable == Observable::X {
                    total += w;
                }
            }
        }
        assert_eq!(total, cost.random_numbers);
    }

    #[test]
    fn svag_rows_without_first_order_say_why_there_is_no_agreement() {
        let opt = dsgd_on_quadratic(1.0, 1.0);
        let s = StudySettings {
            models: vec![SdeModel::Stability],
            observables: vec![Observable::X],
            ..quadratic_settings(false, Some(2), vec![0.2], 100)
        };
        let res = svag_weak_error(&opt, &s, &[4], &[], &|_| {}).unwrap();
        assert!(res.agreement.is_empty() && res.agreement_in_l.is_empty());
        assert!(res.notes[0].contains("first_order"), "{:?}", res.notes);
        assert_eq!(res.curves.len(), 1);
        let e = svag_weak_error(&opt, &s, &[], &[], &|_| {}).unwrap_err();
        assert!(e.to_string().contains("svag_l"), "{e}");
    }

    #[test]
    fn svag_l_zero_is_refused_with_its_key() {
        let opt = dsgd_on_quadratic(1.0, 1.0);
        let settings = PathSettings {
            eta: 0.1,
            iterations: 1,
            x0: vec![1.0],
            observables: vec![Observable::X],
            diverge_above: 1e12,
        };
        let e = SvagPaths::new(&opt, &settings, 0).err().unwrap();
        assert!(
            matches!(&e, CompareError::BadSetting { field, .. } if field.setting == Setting::SvagL),
            "{e}"
        );
        assert!(e.to_string().contains("svag_l"), "{e}");
    }
}
