//! The analogue of the paper's Figure 1 ([P1] Appendix B; its numbers are not public, MATH.md
//! §8.1, so every parameter here is this project's choice and is written into the result).
//!
//! Three columns (DSGD with Gaussian affine-variance noise, DCSGD with Bernoulli random
//! sparsification, DSignSGD with Student-t noise of ν ≤ 2) and two rows (no scheduler; the
//! scheduler each theorem prescribes: the gradient-normalized schedule of MATH.md §6.3 for
//! D(C)SGD, `η_k = (k+1)^{-1/2}` for DSignSGD), on the mixed loss
//! `f(x) = Σ_j (a x_j²/2 + c x_j⁴/4)`, which is (L0, L1)-smooth and not L-smooth (MATH.md §2,
//! §8.3). Each panel holds the discrete runs and the SDE model(s) side by side.

use crate::error::{CompareError, Setting};
use crate::inference::simultaneous_z95;
use crate::observable::Observable;
use crate::sim::{ModelPaths, PathSettings};
use crate::solver_choice::{dispatch, SolverVisitor};
use crate::streams::{Role, Stream};
use crate::study::Progress;
use crate::trajectory::{trajectories, trajectory_work, TrajectoryReport, TrajectorySettings};
use models::loss::{Loss, LossKind, MixedQuadraticQuartic};
use models::method::GradientMethod;
use models::method::{Agent, Dcsgd, Dsgd, DsignSgd, Method};
use models::noise::{GaussianNoise, NoiseModel, StudentTNoise};
use models::optimizer::Optimizer;
use models::schedule::{NormalizationInputs, Polynomial, Schedule};
use models::sde::SdeModel;
use models::{BernoulliSparsifier, CompressorKind, Identity};
use sde_core::stats::Z95;
use sde_core::{Ensemble, EnsembleStats, Increments, Scheme, Solver};
use sde_core::{IncrementKind, SchemeKind};
use serde::{Serialize, Serializer};
use std::fmt;

/// Every parameter of the figure (all written to `result.json`).
#[derive(Clone, Debug, Serialize)]
pub struct Figure1Params {
    /// Dimension `d`.
    pub dim: usize,
    /// Number of agents `N`.
    pub agents: usize,
    /// Quadratic coefficient `a` of every coordinate.
    pub quadratic: f64,
    /// Quartic coefficient `c` of every coordinate.
    pub quartic: f64,
    /// Every coordinate of the starting point.
    pub x0: f64,
    /// Base learning rate `η` (also the SDE time of one iteration).
    pub eta: f64,
    /// Horizon `T` in SDE time; `⌊T/η⌋` iterations.
    pub horizon: f64,
    pub paths: u64,
    /// Paths kept for the quantile bands.
    pub quantile_paths: u64,
    pub seed: u64,
    /// DSGD noise: `Cov Z = (σ0² + σ1²‖∇f‖²) I`.
    pub dsgd_sigma0: f64,
    pub dsgd_sigma1: f64,
    /// DCSGD noise and the keep probability `p` of Bernoulli sparsification (`ω = 1/p − 1`).
    pub dcsgd_sigma0: f64,
    pub dcsgd_sigma1: f64,
    pub dcsgd_keep_probability: f64,
    /// DSignSGD Student-t noise: degrees of freedom and scale.
    pub dsignsgd_nu: f64,
    pub dsignsgd_scale: f64,
    /// DSignSGD base learning rate (the sign update has unit size per coordinate).
    pub dsignsgd_eta: f64,
    /// Constants `c`, `ε` of the §6.3 normalized schedule (L0, L1 come from the loss, A and B
    /// from the noise and compressor as in §6.2).
    pub normalized_c: f64,
    pub normalized_epsilon: f64,
    /// Decay power of the DSignSGD schedule `(k+1)^{-power}`.
    pub sign_decay_power: f64,
    /// Addition: decay power of the pre-scheduled decaying arm of D(C)SGD, `η_k = (k+1)^{-power}`
    /// (the abstract's "pre-scheduled decaying learning rate", which Appendix B does not show).
    pub decaying_power: f64,
    /// Addition: run the SDE side again at twice the substeps and report how far its curves move.
    pub substep_check: bool,
    pub models: Vec<SdeModel>,
    pub scheme: SchemeKind,
    pub substeps: usize,
    /// A path whose loss passes this is counted as diverged.
    pub diverge_above: f64,
}

impl Default for Figure1Params {
    fn default() -> Self {
        Figure1Params {
            dim: 10,
            agents: 8,
            quadratic: 1.0,
            quartic: 1.0,
            x0: 2.0,
            eta: 0.1,
            horizon: 50.0,
            // 2000 paths keep the default run near a minute on 2 cores with the additions and
            // the substep check (10 arms, SDE run twice); intervals are in result.json.
            paths: 2000,
            quantile_paths: 2000,
            seed: 1,
            // σ0 > 0: the normalized schedule then converges to a noise floor (the theorems'
            // setting), not linearly to 0.
            dsgd_sigma0: 0.1,
            dsgd_sigma1: 2.0,
            dcsgd_sigma0: 0.1,
            dcsgd_sigma1: 0.5,
            dcsgd_keep_probability: 0.1,
            dsignsgd_nu: 1.0,
            dsignsgd_scale: 0.2,
            dsignsgd_eta: 0.1,
            normalized_c: 8.0,
            normalized_epsilon: 0.5,
            sign_decay_power: 0.5,
            decaying_power: 0.5,
            substep_check: true,
            models: vec![SdeModel::FirstOrder],
            // The SDE of an affine-noise D(C)SGD on this loss has diffusion ~ |x|³ and explodes
            // in finite time with positive probability (d ≥ 3: a time-changed transient
            // Brownian motion); plain Euler–Maruyama overshoots where the coefficients are large
            // (its diverged fraction fell 95.5% → 92.1% from 8 to 16 substeps). `adaptive_em`
            // refines where they are: 8, 16 and 32 substeps give 74.6, 75.8 and 75.1% on the
            // decaying DSGD arm (4000 paths each), and the substep check passes on every arm.
            scheme: SchemeKind::AdaptiveEm,
            substeps: 8,
            diverge_above: 1e8,
        }
    }
}

/// The optimizer of a column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Figure1Optimizer {
    Dsgd,
    Dcsgd,
    Dsignsgd,
}

impl Figure1Optimizer {
    /// The optimizer of column `column` (0, 1, 2).
    pub fn of_column(column: usize) -> Self {
        match column {
            0 => Figure1Optimizer::Dsgd,
            1 => Figure1Optimizer::Dcsgd,
            _ => Figure1Optimizer::Dsignsgd,
        }
    }

    /// The serialized name.
    pub fn name(&self) -> &'static str {
        match self {
            Figure1Optimizer::Dsgd => "dsgd",
            Figure1Optimizer::Dcsgd => "dcsgd",
            Figure1Optimizer::Dsignsgd => "dsignsgd",
        }
    }
}

/// The learning-rate arm of a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Arm {
    /// Row 0: constant η.
    NoScheduler,
    /// Row 1: the scheduler the theorem prescribes.
    Scheduler,
    /// Row 2 (addition): the pre-scheduled decay.
    Decaying,
    /// Row 3 (addition): the step-matched constant control.
    StepMatched,
}

impl Arm {
    /// The arm of row `row` (0 to 3).
    pub fn of_row(row: usize) -> Self {
        match row {
            0 => Arm::NoScheduler,
            1 => Arm::Scheduler,
            2 => Arm::Decaying,
            _ => Arm::StepMatched,
        }
    }

    /// The serialized name.
    pub fn name(&self) -> &'static str {
        match self {
            Arm::NoScheduler => "no_scheduler",
            Arm::Scheduler => "scheduler",
            Arm::Decaying => "decaying",
            Arm::StepMatched => "step_matched",
        }
    }
}

/// One arm of one optimizer, written `optimizer:arm` (`dsgd:no_scheduler`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArmId {
    pub optimizer: Figure1Optimizer,
    pub arm: Arm,
}

impl fmt::Display for ArmId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.optimizer.name(), self.arm.name())
    }
}

impl Serialize for ArmId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// One panel of the figure.
#[derive(Clone, Debug, Serialize)]
pub struct Figure1Panel {
    pub row: usize,
    pub column: usize,
    pub title: String,
    pub optimizer: Figure1Optimizer,
    pub arm: Arm,
    /// The schedule, as used (normalized constants included).
    pub schedule: String,
    pub eta: f64,
    pub report: TrajectoryReport,
}

/// The SDE side of one panel rerun at twice the substeps (an independent run), compared with the
/// first at every iteration. Both comparisons hold simultaneously over the iterations
/// (Bonferroni's multiplier `z_simultaneous = Φ⁻¹(1 − 0.025/K)` for `K` iterations), so a run
/// whose integrator bias is negligible passes with probability ≥ 95% whatever the correlation
/// between iterations, and a maximum over hundreds of iterations is not read as a 1-in-20 event.
#[derive(Clone, Debug, Serialize)]
pub struct SubstepCheck {
    pub substeps: usize,
    pub substeps_doubled: usize,
    /// Paths diverged by the horizon at `substeps` and at `substeps_doubled`.
    pub diverged: u64,
    pub diverged_doubled: u64,
    pub paths: u64,
    /// Largest difference over iterations of the diverged fractions.
    pub max_diverged_fraction_gap: f64,
    /// Largest over iterations of that difference divided by its standard error (pooled
    /// two-proportion test).
    pub max_diverged_fraction_gap_z: f64,
    /// Largest difference over iterations of the mean loss of surviving paths, divided by the
    /// 95% half-width of that difference; only iterations where fewer than half of the paths
    /// diverged on both sides count (`None`: no such iteration).
    pub max_mean_loss_gap_in_ci95: Option<f64>,
    /// The same gap divided by its standard error.
    pub max_mean_loss_gap_z: Option<f64>,
    /// The multiplier both `_z` gaps are compared with.
    pub z_simultaneous: f64,
    /// Both maxima within `z_simultaneous`: the SDE's curves do not move, at the resolution of
    /// `paths` paths, when the substeps double.
    pub agrees: bool,
}

/// The six panels, row-major (row 0: no scheduler; row 1: the prescribed scheduler), and the
/// additions: row 2 the pre-scheduled decaying arm `(k+1)^{-1/2}` of DSGD and DCSGD, row 3 the
/// step-matched constant control (constant η equal to the normalized schedule's largest step).
#[derive(Clone, Debug, Serialize)]
pub struct Figure1Result {
    pub params: Figure1Params,
    pub panels: Vec<Figure1Panel>,
    pub additions: Vec<Figure1Panel>,
    /// One per panel and addition, in order (empty when `params.substep_check` is off).
    pub substep_checks: Vec<(ArmId, SubstepCheck)>,
}

type Opt = Optimizer<LossKind, Method>;

fn loss(p: &Figure1Params) -> Result<LossKind, CompareError> {
    Ok(MixedQuadraticQuartic::new(vec![p.quadratic; p.dim], vec![p.quartic; p.dim])?.into())
}

fn gaussian_agents(
    p: &Figure1Params,
    sigma0: f64,
    sigma1: f64,
    compressor: CompressorKind,
) -> Result<Vec<Agent>, CompareError> {
    let noise = NoiseModel::Gaussian(GaussianNoise::isotropic(p.dim, sigma0, sigma1)?);
    Ok(vec![Agent { noise, compressor }; p.agents])
}

/// The §6.3 schedule for agents with common `σ0`, `σ1`, `ω`.
fn normalized(
    p: &Figure1Params,
    loss: &LossKind,
    omega: f64,
    sigma0: f64,
    sigma1: f64,
) -> Result<Schedule, CompareError> {
    let s = loss.smoothness();
    let n = p.agents;
    let inputs = NormalizationInputs::from_agents(
        p.dim,
        &vec![omega; n],
        &vec![sigma0; n],
        &vec![sigma1; n],
    )?;
    Ok(Schedule::normalized_for(
        p.normalized_c,
        p.normalized_epsilon,
        s.l0,
        s.l1,
        &inputs,
    )?)
}

/// Schedule and base learning rate of a D(C)SGD arm: row 0 constant, row 1 the normalized
/// schedule, row 2 the pre-scheduled decay, row 3 the constant step equal to the normalized
/// schedule's largest step `η · η_k(‖∇f‖ = 0)` (its supremum over x).
fn d_c_sgd_arm(
    p: &Figure1Params,
    row: usize,
    norm: Schedule,
) -> Result<(Schedule, f64), CompareError> {
    Ok(match row {
        0 => (Schedule::constant(), p.eta),
        1 => (norm, p.eta),
        2 => (Schedule::polynomial(p.decaying_power)?, p.eta),
        _ => (Schedule::constant(), p.eta * norm.eta_k(0, p.eta, 0.0)),
    })
}

/// The optimizer, its base learning rate and schedule name of panel (row, column).
fn panel_optimizer(
    p: &Figure1Params,
    row: usize,
    column: usize,
) -> Result<(Opt, f64, &'static str), CompareError> {
    let f = loss(p)?;
    match column {
        0 => {
            let agents = gaussian_agents(
                p,
                p.dsgd_sigma0,
                p.dsgd_sigma1,
                CompressorKind::Identity(Identity),
            )?;
            let norm = normalized(p, &f, 0.0, p.dsgd_sigma0, p.dsgd_sigma1)?;
            let (schedule, eta) = d_c_sgd_arm(p, row, norm)?;
            Ok((
                Optimizer::new(f, Method::Dsgd(Dsgd::new(agents)?), schedule)?,
                eta,
                "DSGD, Gaussian noise",
            ))
        }
        1 => {
            let bern = BernoulliSparsifier::new(p.dcsgd_keep_probability)?;
            let omega = 1.0 / p.dcsgd_keep_probability - 1.0;
            let agents = gaussian_agents(
                p,
                p.dcsgd_sigma0,
                p.dcsgd_sigma1,
                CompressorKind::Bernoulli(bern),
            )?;
            let norm = normalized(p, &f, omega, p.dcsgd_sigma0, p.dcsgd_sigma1)?;
            let (schedule, eta) = d_c_sgd_arm(p, row, norm)?;
            Ok((
                Optimizer::new(f, Method::Dcsgd(Dcsgd::new(agents)?), schedule)?,
                eta,
                "DCSGD, random sparsification",
            ))
        }
        _ => {
            let noise = NoiseModel::StudentT(StudentTNoise::isotropic(
                p.dim,
                p.dsignsgd_nu,
                p.dsignsgd_scale,
                0.0,
            )?);
            let agents = vec![
                Agent {
                    noise,
                    compressor: CompressorKind::Identity(Identity),
                };
                p.agents
            ];
            let schedule = if row == 0 {
                Schedule::constant()
            } else {
                Schedule::polynomial(p.sign_decay_power)?
            };
            Ok((
                Optimizer::new(f, Method::DsignSgd(DsignSgd::new(agents)?), schedule)?,
                p.dsignsgd_eta,
                "DSignSGD, Student-t noise",
            ))
        }
    }
}

fn schedule_label(s: &Schedule) -> String {
    s.label()
}

fn settings(p: &Figure1Params, eta: f64) -> TrajectorySettings {
    TrajectorySettings {
        eta,
        horizon: p.horizon,
        paths: p.paths,
        quantile_paths: p.quantile_paths,
        quantiles: vec![0.1, 0.5, 0.9],
        seed: p.seed,
        x0: vec![p.x0; p.dim],
        models: p.models.clone(),
        scheme: p.scheme,
        increments: IncrementKind::Gaussian,
        substeps: p.substeps,
        observables: vec![Observable::Loss, Observable::GradNorm],
        diverge_above: p.diverge_above,
    }
}

/// Path simulations the figure runs (for a progress bar).
pub fn figure1_work(p: &Figure1Params) -> u64 {
    let per_arm = trajectory_work(&settings(p, p.eta));
    let check = if p.substep_check {
        p.models.len() as u64 * p.paths
    } else {
        0
    };
    10 * (per_arm + check)
}

struct DoubledStats<'a, L, M> {
    opt: &'a Optimizer<L, M>,
    model: SdeModel,
    settings: &'a PathSettings,
    substeps: usize,
    paths: u64,
    seed: u64,
    progress: Progress<'a>,
}

impl<L: Loss, M: GradientMethod> SolverVisitor for DoubledStats<'_, L, M> {
    type Output = Result<EnsembleStats, CompareError>;
    fn visit<Sch: Scheme, I: Increments>(self, scheme: Sch, increments: I) -> Self::Output {
        let sim = ModelPaths {
            solver: Solver::new(
                self.opt.sde(self.model, self.settings.eta)?,
                scheme,
                increments,
            )?,
            settings: self.settings,
            substeps: self.substeps,
        };
        let last = std::sync::atomic::AtomicU64::new(0);
        let report = |done: u64| {
            let prev = last.swap(done, std::sync::atomic::Ordering::Relaxed);
            if done > prev {
                (self.progress)(done - prev);
            }
        };
        Ok(Ensemble::new(self.paths, self.seed)?.run_with_progress(&sim, &report))
    }
}

fn substep_check(
    p: &Figure1Params,
    opt: &Opt,
    eta: f64,
    report: &TrajectoryReport,
    progress: Progress,
) -> Result<Vec<SubstepCheck>, CompareError> {
    let s = settings(p, eta);
    let path_settings = PathSettings {
        eta,
        iterations: report.iterations,
        x0: s.x0.clone(),
        observables: vec![Observable::Loss],
        diverge_above: p.diverge_above,
    };
    let mut out = Vec::new();
    for (model, t) in &report.models {
        let doubled = dispatch(
            s.scheme,
            s.increments,
            DoubledStats {
                opt,
                model: *model,
                settings: &path_settings,
                substeps: 2 * p.substeps,
                paths: p.paths,
                // Independent of the first run: the two fractions are compared as independent
                // binomials.
                seed: Stream::master(p.seed)
                    .role(Role::SubstepCheck(*model))
                    .seed(),
                progress,
            },
        )?;
        let n = p.paths;
        let nf = n as f64;
        let band = t.band(Observable::Loss);
        let z_k = simultaneous_z95(report.iterations);
        let mut frac_gap = 0.0f64;
        let mut frac_z = 0.0f64;
        let mut mean_z: Option<f64> = None;
        for k in 0..doubled.n_save {
            let (d1, d2) = (t.diverged[k], doubled.diverged[k]);
            let gap = (d1 as f64 - d2 as f64).abs() / nf;
            frac_gap = frac_gap.max(gap);
            if d1 != d2 {
                let pooled = (d1 + d2) as f64 / (2.0 * nf);
                let se = (pooled * (1.0 - pooled) * 2.0 / nf).sqrt();
                frac_z = frac_z.max(gap / se);
            }
            if 2 * d1 < n && 2 * d2 < n {
                if let Some(b) = band {
                    let sm = doubled.summary(k, 0);
                    let se = (b.ci95[k].powi(2) + sm.ci95.powi(2)).sqrt() / Z95;
                    let gap = (b.mean[k] - sm.mean).abs();
                    // Identical curves (iteration 0, or no noise) carry no information.
                    let r = if se > 0.0 && gap.is_finite() {
                        Some(gap / se)
                    } else if gap > 0.0 {
                        Some(f64::INFINITY)
                    } else {
                        None
                    };
                    if let Some(r) = r {
                        mean_z = Some(mean_z.map_or(r, |m: f64| m.max(r)));
                    }
                }
            }
        }
        let last = doubled.n_save - 1;
        let (d1, d2) = (t.diverged[last], doubled.diverged[last]);
        out.push(SubstepCheck {
            substeps: p.substeps,
            substeps_doubled: 2 * p.substeps,
            diverged: d1,
            diverged_doubled: d2,
            paths: n,
            max_diverged_fraction_gap: frac_gap,
            max_diverged_fraction_gap_z: frac_z,
            max_mean_loss_gap_in_ci95: mean_z.map(|z| z / Z95).filter(|g| g.is_finite()),
            max_mean_loss_gap_z: mean_z.filter(|g| g.is_finite()),
            z_simultaneous: z_k,
            agrees: frac_z <= z_k && mean_z.is_none_or(|z| z <= z_k),
        });
    }
    Ok(out)
}

/// Runs the six panels and the additions.
pub fn figure1(p: &Figure1Params, progress: Progress) -> Result<Figure1Result, CompareError> {
    if p.dim == 0 {
        return Err(CompareError::bad(Setting::Dim, 0, "must be at least 1"));
    }
    let mut panels = Vec::new();
    let mut additions = Vec::new();
    let mut checks = Vec::new();
    let arms = (0..2)
        .flat_map(|row| (0..3).map(move |column| (row, column)))
        .chain((2..4).flat_map(|row| (0..2).map(move |column| (row, column))));
    for (row, column) in arms {
        let (opt, eta, name) = panel_optimizer(p, row, column)?;
        let report = trajectories(&opt, &settings(p, eta), progress)?;
        let schedule = schedule_label(opt.schedule());
        let short = match (row, opt.schedule()) {
            (3, _) => format!("constant η = {eta:.3} (addition: step-matched control)"),
            (2, Schedule::Poly(Polynomial { power })) => {
                format!("η_k = (k+1)^-{power} (addition: pre-scheduled decay)")
            }
            (_, Schedule::Constant(_)) => "constant η".to_string(),
            (_, Schedule::Poly(Polynomial { power })) => format!("η_k = (k+1)^-{power}"),
            _ => "normalized η_k (§6.3)".to_string(),
        };
        let optimizer = Figure1Optimizer::of_column(column);
        let arm = Arm::of_row(row);
        if p.substep_check {
            for c in substep_check(p, &opt, eta, &report, progress)? {
                checks.push((ArmId { optimizer, arm }, c));
            }
        }
        let panel = Figure1Panel {
            row,
            column,
            title: format!("{name}: {short}"),
            optimizer,
            arm,
            schedule,
            eta,
            report,
        };
        if row < 2 {
            panels.push(panel);
        } else {
            additions.push(panel);
        }
    }
    Ok(Figure1Result {
        params: p.clone(),
        panels,
        additions,
        substep_checks: checks,
    })
}

/// Short name of a row: `no_scheduler`, `scheduler`, `decaying`, `step_matched`.
pub fn arm_name(row: usize) -> &'static str {
    Arm::of_row(row).name()
}
