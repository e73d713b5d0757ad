//! Stability thresholds: the probability that a path diverges by the horizon, as a function of
//! the learning rate η (and of the scale of the starting point), for the discrete optimizer and
//! each SDE model side by side (MATH.md §5.1, §6.3, §7).
//!
//! A path is diverged when its loss passes `diverge_above` (or a value turns non-finite) at any
//! iteration up to the horizon. Fractions carry Wilson score 95% intervals.
//!
//! The SDE side must show the model's threshold, not its integrator's: an explicit scheme has a
//! stability limit of its own in `h·(curvature)`, which would add divergence the model does not
//! have. Every SDE point is therefore run at `m` and `2m` substeps; while the two diverged
//! fractions disagree (two-proportion test at 95%, or any difference when both counts are 0 or
//! all paths), `m` doubles, up to `max_substeps`. The check is part of every point.

use crate::error::{CompareError, Setting};
use crate::sim::{DiscretePaths, ModelPaths, PathSettings};
use crate::solver_choice::{dispatch, SolverVisitor};
use crate::streams::{Role, Stream};
use crate::svag::{SvagPaths, SVAG_STREAM};
use models::loss::{Loss, LossKind};
use models::method::{GradientMethod, Method};
use models::noise::NoiseModel;
use models::optimizer::Optimizer;
use models::schedule::Schedule;
use models::sde::SdeModel;
use models::CompressorKind;
use sde_core::{
    derive_stream, Ensemble, Gaussian, IncrementKind, Increments, PathSimulation, Scheme,
    SchemeKind, Solver,
};
use serde::{Serialize, Serializer};
use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::study::{
    check_horizon_and_etas, check_non_empty, check_paths, check_substeps, check_x0, iterations,
};
use sde_core::stats::Z95;

/// Settings of a stability sweep.
#[derive(Clone, Debug, Serialize)]
pub struct StabilitySettings {
    /// The sweep of base learning rates (config `run.etas`).
    pub etas: Vec<f64>,
    /// Factors applied to `x0` (config `run.x0_scales`, default `[1]`).
    pub x0_scales: Vec<f64>,
    pub horizon: f64,
    pub paths: u64,
    pub seed: u64,
    pub x0: Vec<f64>,
    pub models: Vec<SdeModel>,
    pub scheme: SchemeKind,
    pub increments: IncrementKind,
    /// Substeps per iteration the SDE side starts from (config `sde.substeps`).
    pub substeps: usize,
    /// Largest number of substeps the refinement may reach.
    pub max_substeps: usize,
    pub diverge_above: f64,
}

/// The substep-doubling check of one SDE point.
#[derive(Clone, Debug, Serialize)]
pub struct SubstepCheck {
    /// Substeps of the reported (finer) run.
    pub substeps: usize,
    pub diverged: u64,
    /// Substeps of the run it was compared with (half as many).
    pub substeps_coarse: usize,
    pub diverged_coarse: u64,
    /// Whether the two fractions agree (see the module documentation).
    pub agrees: bool,
}

/// One learning rate of one curve.
#[derive(Clone, Debug, Serialize)]
pub struct StabilityPoint {
    pub eta: f64,
    pub iterations: usize,
    pub diverged: u64,
    pub paths: u64,
    pub diverged_fraction: f64,
    /// Wilson score 95% interval of the diverged fraction.
    pub ci95: [f64; 2],
    /// SDE points only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub substep_check: Option<SubstepCheck>,
}

/// The measured threshold: where the diverged fraction first reaches one half on the grid.
#[derive(Clone, Debug, Serialize)]
pub struct MeasuredThreshold {
    /// The largest grid η below the crossing (`None`: the first grid point already diverges).
    pub last_stable_eta: Option<f64>,
    /// The first grid η whose diverged fraction is at least 1/2 (`None`: no point does).
    pub first_diverging_eta: Option<f64>,
}

/// In what sense a predicted threshold is one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ThresholdKind {
    /// Noise-free: a closed form.
    Exact,
    /// Almost-sure growth: the long-horizon limit of the diverged fraction.
    Pathwise,
    /// Growth of `E‖x‖²`.
    MeanSquare,
}

impl ThresholdKind {
    /// The serialized name.
    pub fn name(&self) -> &'static str {
        match self {
            ThresholdKind::Exact => "exact",
            ThresholdKind::Pathwise => "pathwise",
            ThresholdKind::MeanSquare => "mean_square",
        }
    }
}

/// A threshold in η predicted by theory, where the build knows one (see [`theory`]).
#[derive(Clone, Debug, Serialize)]
pub struct TheoryThreshold {
    pub kind: ThresholdKind,
    /// The critical η (`None`: the process never diverges in this sense).
    pub eta: Option<f64>,
    pub formula: String,
}

/// The discrete optimizer, one of its SDE models, or its SVAG process with parameter `l`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Process {
    Discrete,
    Model(SdeModel),
    /// SVAG(l) ([`crate::svag`]): `l` steps of `η/l` per iteration, two draws per step; no
    /// integrator, so no substep check.
    Svag(usize),
}

impl Process {
    /// `"discrete"`, the model's name, or `svag l=<l>` (how results name the process).
    pub fn name(&self) -> Cow<'static, str> {
        match self {
            Process::Discrete => Cow::Borrowed("discrete"),
            Process::Model(m) => Cow::Borrowed(m.name()),
            Process::Svag(l) => Cow::Owned(format!("svag l={l}")),
        }
    }
}

impl Serialize for Process {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.name())
    }
}

/// Predicted thresholds per process.
pub type ProcessTheories = Vec<(Process, Vec<TheoryThreshold>)>;

/// One process at one x0 scale.
#[derive(Clone, Debug, Serialize)]
pub struct StabilityCurve {
    pub process: Process,
    pub x0_scale: f64,
    pub points: Vec<StabilityPoint>,
    pub measured_threshold: MeasuredThreshold,
    pub theory: Vec<TheoryThreshold>,
}

/// The Wilson score 95% interval (one definition, in [`crate::inference`]).
pub use crate::inference::wilson95;

/// Whether two diverged counts out of `n` paths each are compatible: a pooled two-proportion
/// z-test at 95% (so 0 against `n` never agrees, and equal counts always do).
pub fn counts_agree(a: u64, b: u64, n: u64) -> bool {
    if a == b {
        return true;
    }
    let nf = n as f64;
    let pooled = (a + b) as f64 / (2.0 * nf);
    let se = (pooled * (1.0 - pooled) * 2.0 / nf).sqrt();
    ((a as f64 - b as f64) / nf).abs() <= Z95 * se
}

fn measured_threshold(points: &[StabilityPoint]) -> MeasuredThreshold {
    let mut sorted: Vec<&StabilityPoint> = points.iter().collect();
    sorted.sort_by(|a, b| a.eta.total_cmp(&b.eta));
    let first = sorted.iter().position(|p| 2 * p.diverged >= p.paths);
    MeasuredThreshold {
        last_stable_eta: match first {
            Some(0) => None,
            Some(i) => Some(sorted[i - 1].eta),
            None => sorted.last().map(|p| p.eta),
        },
        first_diverging_eta: first.map(|i| sorted[i].eta),
    }
}

/// Path simulations a sweep runs at least (each SDE point twice; refinements add more).
pub fn stability_work(s: &StabilitySettings) -> u64 {
    (s.x0_scales.len() * s.etas.len()) as u64 * (1 + 2 * s.models.len() as u64) * s.paths
}

/// Path simulations the SVAG curves of [`stability_sweep_with_svag`] add (one run per point).
pub fn svag_stability_work(s: &StabilitySettings, ls: &[usize]) -> u64 {
    (s.x0_scales.len() * s.etas.len() * ls.len()) as u64 * s.paths
}

/// Turns the ensemble's cumulative "paths done" into increments for a shared progress sink.
struct Delta<'a> {
    sink: &'a (dyn Fn(u64) + Sync),
    last: AtomicU64,
}

impl Delta<'_> {
    fn report(&self, done: u64) {
        let prev = self.last.swap(done, Ordering::Relaxed);
        if done > prev {
            (self.sink)(done - prev);
        }
    }
}

fn diverged_count<P: PathSimulation>(
    sim: &P,
    paths: u64,
    seed: u64,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<u64, CompareError> {
    let delta = Delta {
        sink: progress,
        last: AtomicU64::new(0),
    };
    let stats = Ensemble::new(paths, seed)?.run_with_progress(sim, &|n| delta.report(n));
    Ok(stats.diverged.last().copied().unwrap_or(0))
}

/// An upper bound on the decay rate of the drift at `x`: the ∞-norm of its Jacobian by forward
/// differences (it bounds the spectral radius). Euler-type schemes need `h · rate` of order one.
fn drift_rate<S: sde_core::Sde>(sde: &S, x: &[f64]) -> f64 {
    let d = x.len();
    let mut scratch = vec![0.0; sde.scratch_len()];
    let mut b0 = vec![0.0; d];
    let mut b1 = vec![0.0; d];
    let mut xs = x.to_vec();
    sde.drift(0.0, x, &mut b0, &mut scratch);
    let mut row_sums = vec![0.0f64; d];
    for j in 0..d {
        let delta = 1e-6 * x[j].abs().max(1.0);
        xs[j] = x[j] + delta;
        sde.drift(0.0, &xs, &mut b1, &mut scratch);
        xs[j] = x[j];
        for (r, (a, b)) in row_sums.iter_mut().zip(b1.iter().zip(&b0)) {
            *r += ((a - b) / delta).abs();
        }
    }
    row_sums.into_iter().fold(0.0, f64::max)
}

/// One SDE point: the substep refinement of the module documentation.
struct ModelPoint<'a, L, M> {
    opt: &'a Optimizer<L, M>,
    model: SdeModel,
    settings: &'a PathSettings,
    s: &'a StabilitySettings,
    seed: Stream,
    progress: &'a (dyn Fn(u64) + Sync),
}

impl<L: Loss, M: GradientMethod> SolverVisitor for ModelPoint<'_, L, M> {
    type Output = Result<SubstepCheck, CompareError>;
    fn visit<Sch: Scheme, I: Increments>(self, scheme: Sch, increments: I) -> Self::Output {
        let eta = self.settings.eta;
        let count = |substeps: usize| -> Result<u64, CompareError> {
            let sde = self.opt.sde(self.model, eta)?;
            let sim = ModelPaths {
                solver: Solver::new(sde, scheme.clone(), increments.clone())?,
                settings: self.settings,
                substeps,
            };
            diverged_count(
                &sim,
                self.s.paths,
                self.seed.at(substeps).seed(),
                self.progress,
            )
        };
        // Start where the explicit step is stable at x0 (h · rate ≤ 1): two runs that are both
        // unstable would agree with each other and pass the check.
        let rate = drift_rate(&self.opt.sde(self.model, eta)?, &self.settings.x0);
        let needed = if rate.is_finite() {
            (eta * rate).ceil().min(1e9) as usize
        } else {
            usize::MAX
        };
        let mut coarse_m = self.s.substeps.max(needed).min(self.s.max_substeps / 2);
        let mut coarse = count(coarse_m)?;
        loop {
            let fine_m = 2 * coarse_m;
            let fine = count(fine_m)?;
            let agrees = counts_agree(coarse, fine, self.s.paths);
            if agrees || 2 * fine_m > self.s.max_substeps {
                return Ok(SubstepCheck {
                    substeps: fine_m,
                    diverged: fine,
                    substeps_coarse: coarse_m,
                    diverged_coarse: coarse,
                    agrees,
                });
            }
            coarse_m = fine_m;
            coarse = fine;
        }
    }
}

fn validate<L: Loss, M: GradientMethod>(
    opt: &Optimizer<L, M>,
    s: &StabilitySettings,
) -> Result<(), CompareError> {
    check_non_empty(
        &s.etas,
        Setting::Etas,
        "stability needs at least one learning rate",
    )?;
    check_horizon_and_etas(s.horizon, &s.etas)?;
    for (i, &c) in s.x0_scales.iter().enumerate() {
        if !(c > 0.0) || !c.is_finite() {
            return Err(CompareError::bad(
                Setting::X0Scales.at(i),
                c,
                "must be positive and finite",
            ));
        }
    }
    check_non_empty(&s.x0_scales, Setting::X0Scales, "needs at least one scale")?;
    check_paths(s.paths)?;
    check_substeps(s.substeps)?;
    if s.max_substeps < 2 * s.substeps {
        return Err(CompareError::bad(
            Setting::MaxSubsteps,
            s.max_substeps,
            format!(
                "must allow at least one doubling of sde.substeps = {}",
                s.substeps
            ),
        ));
    }
    check_x0(&s.x0, opt.dim())?;
    Ok(())
}

/// Runs the sweep: one curve per (x0 scale, process), the discrete optimizer first, then the
/// models in the order given. `theory_of(scale)` supplies the predicted thresholds per process
/// (see [`theory`]); pass `|_| Vec::new()` for none.
pub fn stability_sweep<L: Loss, M: GradientMethod>(
    opt: &Optimizer<L, M>,
    s: &StabilitySettings,
    theory_of: &dyn Fn(&[f64]) -> ProcessTheories,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Vec<StabilityCurve>, CompareError> {
    stability_sweep_with_svag(opt, s, &[], theory_of, progress)
}

/// [`stability_sweep`] with one more curve per `l` in `ls` at each x0 scale, after the models:
/// SVAG(l) (`svag l=<l>`), whose diverged fraction moves from the discrete method's (`l = 1`)
/// towards (A)'s as `l` grows. Each point runs once on its own stream (the SVAG stream of
/// [`crate::svag`], then `l`, under the point's scale and learning rate), so the other curves
/// keep their bits; SVAG has no integrator, hence no substep check and no theory.
pub fn stability_sweep_with_svag<L: Loss, M: GradientMethod>(
    opt: &Optimizer<L, M>,
    s: &StabilitySettings,
    ls: &[usize],
    theory_of: &dyn Fn(&[f64]) -> ProcessTheories,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Vec<StabilityCurve>, CompareError> {
    validate(opt, s)?;
    if let Some(&l) = ls.iter().find(|&&l| l == 0) {
        return Err(CompareError::bad(Setting::SvagL, l, "must be at least 1"));
    }
    let mut curves = Vec::new();
    for (si, &scale) in s.x0_scales.iter().enumerate() {
        let x0: Vec<f64> = s.x0.iter().map(|v| v * scale).collect();
        let theory = theory_of(&x0);
        let theory_for = |process: Process| {
            theory
                .iter()
                .find(|(p, _)| *p == process)
                .map(|(_, t)| t.clone())
                .unwrap_or_default()
        };
        let at_scale = Stream::master(s.seed).at(si);
        let mut discrete = Vec::new();
        let mut per_model: Vec<Vec<StabilityPoint>> = vec![Vec::new(); s.models.len()];
        let mut per_l: Vec<Vec<StabilityPoint>> = vec![Vec::new(); ls.len()];
        for (ei, &eta) in s.etas.iter().enumerate() {
            let iters = iterations(s.horizon, eta);
            let settings = PathSettings {
                eta,
                iterations: iters,
                x0: x0.clone(),
                observables: vec![crate::observable::Observable::Loss],
                diverge_above: s.diverge_above,
            };
            let at_eta = at_scale.at(ei);
            let d = diverged_count(
                &DiscretePaths {
                    opt,
                    settings: &settings,
                },
                s.paths,
                at_eta.role(Role::Discrete).seed(),
                progress,
            )?;
            discrete.push(point(eta, iters, d, s.paths, None));
            for (mi, &model) in s.models.iter().enumerate() {
                let check = dispatch(
                    s.scheme,
                    s.increments,
                    ModelPoint {
                        opt,
                        model,
                        settings: &settings,
                        s,
                        seed: at_eta.role(Role::Model(model)),
                        progress,
                    },
                )?;
                per_model[mi].push(point(eta, iters, check.diverged, s.paths, Some(check)));
            }
            for (li, &l) in ls.iter().enumerate() {
                let d = diverged_count(
                    &SvagPaths::new(opt, &settings, l)?,
                    s.paths,
                    at_eta.at(SVAG_STREAM).at(l).seed(),
                    progress,
                )?;
                per_l[li].push(point(eta, iters, d, s.paths, None));
            }
        }
        curves.push(StabilityCurve {
            process: Process::Discrete,
            x0_scale: scale,
            measured_threshold: measured_threshold(&discrete),
            points: discrete,
            theory: theory_for(Process::Discrete),
        });
        for (model, points) in s.models.iter().zip(per_model) {
            curves.push(StabilityCurve {
                process: Process::Model(*model),
                x0_scale: scale,
                measured_threshold: measured_threshold(&points),
                points,
                theory: theory_for(Process::Model(*model)),
            });
        }
        for (&l, points) in ls.iter().zip(per_l) {
            curves.push(StabilityCurve {
                process: Process::Svag(l),
                x0_scale: scale,
                measured_threshold: measured_threshold(&points),
                points,
                theory: Vec::new(),
            });
        }
    }
    Ok(curves)
}

fn point(
    eta: f64,
    iterations: usize,
    diverged: u64,
    paths: u64,
    substep_check: Option<SubstepCheck>,
) -> StabilityPoint {
    StabilityPoint {
        eta,
        iterations,
        diverged,
        paths,
        diverged_fraction: diverged as f64 / paths as f64,
        ci95: wilson95(diverged, paths),
        substep_check,
    }
}

// ---------------------------------------------------------------------------------------------
// Theory
// ---------------------------------------------------------------------------------------------

/// Samples of the discrete Lyapunov exponent's expectation (fixed seed: the root is a smooth
/// function of η because every η reuses the same samples).
const LYAPUNOV_SAMPLES: usize = 200_000;

/// `γ(u) = ½ E log[(1 − u − u s z)² + u² s² χ²_{d−1}]`, the almost-sure growth rate per iteration
/// of `‖x‖` for DSGD on `f = λ‖x‖²/2` with noise `N(0, σ1²‖∇f‖² I)` averaged over N agents
/// (`s² = σ1²/N`, `u = ηλ`): one step maps `x` to `(1 − u) x − u s ‖x‖ ξ`, whose norm ratio has
/// this law whatever the direction of `x`.
fn lyapunov_samples(d: usize, seed: u64) -> Vec<(f64, f64)> {
    let mut rng = derive_stream(seed, 0);
    let mut buf = vec![0.0; d];
    (0..LYAPUNOV_SAMPLES)
        .map(|_| {
            Gaussian.draw(&mut rng, 1.0, &mut buf);
            let chi2: f64 = buf[1..].iter().map(|v| v * v).sum();
            (buf[0], chi2)
        })
        .collect()
}

fn discrete_lyapunov(u: f64, s: f64, samples: &[(f64, f64)]) -> f64 {
    samples
        .iter()
        .map(|&(z, chi2)| {
            let a = 1.0 - u - u * s * z;
            0.5 * (a * a + u * u * s * s * chi2).ln()
        })
        .sum::<f64>()
        / samples.len() as f64
}

/// The `u = ηλ > 1` where the discrete Lyapunov exponent turns positive (bisection on a
/// common-random-number estimate; its Monte Carlo SE at the root is about
/// `sd(log ratio)/sqrt(2e5)/|γ'| ≈ 0.003` in `u` for `s ≤ 0.5`).
pub fn discrete_pathwise_critical_u(d: usize, s: f64) -> f64 {
    if s == 0.0 {
        return 2.0;
    }
    let samples = lyapunov_samples(d, 0x005a_b1e5);
    let (mut lo, mut hi) = (1.0, 2.0);
    while discrete_lyapunov(hi, s, &samples) < 0.0 && hi < 1e6 {
        lo = hi;
        hi *= 2.0;
    }
    for _ in 0..60 {
        let mid = 0.5 * (lo + hi);
        if discrete_lyapunov(mid, s, &samples) < 0.0 {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

fn threshold(kind: ThresholdKind, eta: Option<f64>, formula: impl Into<String>) -> TheoryThreshold {
    TheoryThreshold {
        kind,
        eta: eta.filter(|e| e.is_finite() && *e > 0.0),
        formula: formula.into(),
    }
}

/// Every agent's Gaussian noise as `(σ0, σ1 · scale)` when all agents share it and its scale is
/// isotropic; `None` otherwise.
fn shared_isotropic_gaussian(agents: &[models::method::Agent]) -> Option<(f64, f64)> {
    let mut out: Option<(f64, f64)> = None;
    for a in agents {
        if !matches!(a.compressor, CompressorKind::Identity(_)) {
            return None;
        }
        let NoiseModel::Gaussian(g) = &a.noise else {
            return None;
        };
        let sc = g.scale_factors();
        let s0 = sc.first().copied()?;
        if sc.iter().any(|v| *v != s0) {
            return None;
        }
        let pair = (g.sigma0() * s0, g.sigma1() * s0);
        match out {
            None => out = Some(pair),
            Some(p) if p == pair => {}
            Some(_) => return None,
        }
    }
    out
}

/// Predicted thresholds in η at starting point `x0`, per process, for the cases with a known
/// answer; an empty list where the build has none:
///
/// * DSGD (or DCSGD with the identity compressor) with a constant schedule on an isotropic
///   quadratic `f = λ‖x‖²/2`, Gaussian isotropic noise with `(σ0, σ1)` shared by the `N` agents.
///   With `s² = σ1²/N` and `A = d s²` (MATH.md §6.2): mean-square thresholds from
///   `d E‖X‖²/dt = (−2a + ηλ²A) E‖X‖²` (`a = λ`, `λ(1 + ηλ/2)`, `λ(1 − ηλ/2)` for (A), (B), (C))
///   and `E‖x_{k+1}‖² = ((1 − ηλ)² + η²λ²A)‖x_k‖²`; pathwise thresholds from the Lyapunov exponent
///   `−a + ½ηλ²s²(d − 2)` of the models (Itô on `log‖X‖`) and [`discrete_pathwise_critical_u`].
///   `σ0` adds a bounded forcing that does not move the growth rates.
/// * Gradient descent (no noise, one agent or many) on the quartic `Σ c_j x_j⁴/4` with a
///   constant schedule: the map `x → x(1 − ηc x²)` diverges iff `η c x0² > 2` (at `ηcx² = 2` it
///   has the 2-cycle `x → −x`), and (C)'s drift `−cx³ + (3η/2)c²x⁵` turns repulsive (finite-time
///   blow-up) iff `η c x0² > 2/3` (MATH.md §2, §7); (A) and (B) never diverge.
pub fn theory(opt: &Optimizer<LossKind, Method>, x0: &[f64]) -> ProcessTheories {
    if *opt.schedule() != Schedule::constant() {
        return Vec::new();
    }
    let agents = match opt.method() {
        Method::Dsgd(m) => m.agents(),
        Method::Dcsgd(m) => m.agents(),
        Method::DsignSgd(_) => return Vec::new(),
    };
    let n = agents.len() as f64;
    let Some((sigma0, sigma1)) = shared_isotropic_gaussian(agents) else {
        return Vec::new();
    };
    match opt.loss() {
        LossKind::DiagonalQuadratic(q) => {
            let lam = q.lambda();
            let l = lam[0];
            if lam.iter().any(|v| *v != l) || !(l > 0.0) {
                return Vec::new();
            }
            if sigma1 == 0.0 {
                let note = if sigma0 > 0.0 {
                    " (σ0 > 0 adds bounded forcing; it does not move the threshold)"
                } else {
                    ""
                };
                let never = |m: SdeModel, law: &str| {
                    (
                        Process::Model(m),
                        vec![threshold(
                            ThresholdKind::Exact,
                            None,
                            format!("{law}: never diverges{note}"),
                        )],
                    )
                };
                return vec![
                    (
                        Process::Discrete,
                        vec![threshold(
                            ThresholdKind::Exact,
                            Some(2.0 / l),
                            format!("x_(k+1) = (1 − ηλ) x_k: diverges iff η > 2/λ{note}"),
                        )],
                    ),
                    never(SdeModel::FirstOrder, "drift −λx"),
                    never(SdeModel::SecondOrder, "drift −λ(1 + ηλ/2)x"),
                    (
                        Process::Model(SdeModel::Stability),
                        vec![threshold(
                            ThresholdKind::Exact,
                            Some(2.0 / l),
                            format!("drift −λ(1 − ηλ/2)x: diverges iff η > 2/λ{note}"),
                        )],
                    ),
                ];
            }
            let d = lam.len() as f64;
            let s2 = sigma1 * sigma1 / n;
            let a = d * s2;
            let dm2 = d - 2.0;
            let u_path = discrete_pathwise_critical_u(lam.len(), s2.sqrt());
            let forcing = if sigma0 > 0.0 {
                " (σ0 > 0 adds bounded forcing; it does not move the threshold)"
            } else {
                ""
            };
            let pos = |x: f64| (x > 0.0).then_some(x);
            vec![
                (
                    Process::Discrete,
                    vec![
                        threshold(
                            ThresholdKind::Pathwise,
                            Some(u_path / l),
                            format!(
                                "η = u*/λ with ½E log[(1−u−u s z)² + u²s²χ²_(d−1)] = 0 at u*, s² = σ1²/N = {s2:.4}{forcing}"
                            ),
                        ),
                        threshold(
                            ThresholdKind::MeanSquare,
                            Some(2.0 / (l * (1.0 + a))),
                            format!("η = 2/(λ(1 + A)), A = dσ1²/N = {a:.4}"),
                        ),
                    ],
                ),
                (
                    Process::Model(SdeModel::FirstOrder),
                    vec![
                        threshold(
                            ThresholdKind::Pathwise,
                            pos(dm2 * s2).map(|x| 2.0 / (l * x)),
                            "−λ + ½ηλ²s²(d−2) > 0: η > 2/(λ s²(d−2)); never for d ≤ 2 or s = 0",
                        ),
                        threshold(
                            ThresholdKind::MeanSquare,
                            pos(a).map(|x| 2.0 / (l * x)),
                            "−2λ + ηλ²A > 0: η > 2/(λA); never for A = 0",
                        ),
                    ],
                ),
                (
                    Process::Model(SdeModel::SecondOrder),
                    vec![
                        threshold(
                            ThresholdKind::Pathwise,
                            pos(dm2 * s2 - 1.0).map(|x| 2.0 / (l * x)),
                            "−λ(1+ηλ/2) + ½ηλ²s²(d−2) > 0: η > 2/(λ(s²(d−2) − 1)); never if s²(d−2) ≤ 1",
                        ),
                        threshold(
                            ThresholdKind::MeanSquare,
                            pos(a - 1.0).map(|x| 2.0 / (l * x)),
                            "−2λ − ηλ² + ηλ²A > 0: η > 2/(λ(A − 1)); never if A ≤ 1",
                        ),
                    ],
                ),
                (
                    Process::Model(SdeModel::Stability),
                    vec![
                        threshold(
                            ThresholdKind::Pathwise,
                            pos(1.0 + dm2 * s2).map(|x| 2.0 / (l * x)),
                            "−λ(1−ηλ/2) + ½ηλ²s²(d−2) > 0: η > 2/(λ(1 + s²(d−2)))",
                        ),
                        threshold(
                            ThresholdKind::MeanSquare,
                            Some(2.0 / (l * (1.0 + a))),
                            "−2λ(1−ηλ/2) + ηλ²A > 0: η > 2/(λ(1 + A)), the discrete one",
                        ),
                    ],
                ),
            ]
        }
        LossKind::Quartic(qt) if sigma0 == 0.0 && sigma1 == 0.0 => {
            let peak = qt
                .coefficients()
                .iter()
                .zip(x0)
                .map(|(c, x)| c * x * x)
                .fold(0.0f64, f64::max);
            if !(peak > 0.0) {
                return Vec::new();
            }
            let never = |m: SdeModel| {
                (
                    Process::Model(m),
                    vec![threshold(
                        ThresholdKind::Exact,
                        None,
                        "gradient flow (A) / −∇(f + (η/4)‖∇f‖²) flow (B): f decreases, never diverges",
                    )],
                )
            };
            vec![
                (
                    Process::Discrete,
                    vec![threshold(
                        ThresholdKind::Exact,
                        Some(2.0 / peak),
                        format!("x → x(1 − ηc x²) diverges iff η max_j c_j x0_j² > 2; max_j c_j x0_j² = {peak:.4}"),
                    )],
                ),
                never(SdeModel::FirstOrder),
                never(SdeModel::SecondOrder),
                (
                    Process::Model(SdeModel::Stability),
                    vec![threshold(
                        ThresholdKind::Exact,
                        Some(2.0 / (3.0 * peak)),
                        "drift −cx³ + (3η/2)c²x⁵ repulsive iff η c x0² > 2/3",
                    )],
                ),
            ]
        }
        _ => Vec::new(),
    }
}
