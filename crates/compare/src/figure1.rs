//! The analogue of the paper's Figure 1 ([P1] Appendix B; its numbers are not public, MATH.md
//! §8.1, so every parameter here is this project's choice and is written into the result).
//!
//! Three columns (DSGD with Gaussian affine-variance noise, DCSGD with Bernoulli random
//! sparsification, DSignSGD with Student-t noise of ν ≤ 2) and two rows (no scheduler; the
//! scheduler each theorem prescribes: the gradient-normalized schedule of MATH.md §6.3 for
//! D(C)SGD, `η_k = (k+1)^{-1/2}` for DSignSGD), on the mixed loss
//! `f(x) = Σ_j (a x_j²/2 + c x_j⁴/4)`, which is (L0, L1)-smooth and not L-smooth (MATH.md §2,
//! §8.3). Each panel holds the discrete runs and the SDE model(s) side by side.

use crate::error::CompareError;
use crate::observable::Observable;
use crate::study::Progress;
use crate::trajectory::{trajectories, trajectory_work, TrajectoryReport, TrajectorySettings};
use models::loss::{Loss, LossKind, MixedQuadraticQuartic};
use models::method::{Agent, Dcsgd, Dsgd, DsignSgd, Method};
use models::noise::{GaussianNoise, NoiseModel, StudentTNoise};
use models::optimizer::Optimizer;
use models::schedule::{NormalizationInputs, Schedule};
use models::sde::SdeModel;
use models::{BernoulliSparsifier, CompressorKind, Identity};
use sde_core::{IncrementKind, SchemeKind};
use serde::Serialize;

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
            paths: 5000,
            quantile_paths: 5000,
            seed: 1,
            dsgd_sigma0: 0.0,
            dsgd_sigma1: 2.0,
            dcsgd_sigma0: 0.0,
            dcsgd_sigma1: 0.5,
            dcsgd_keep_probability: 0.1,
            dsignsgd_nu: 1.0,
            dsignsgd_scale: 0.2,
            dsignsgd_eta: 0.1,
            normalized_c: 8.0,
            normalized_epsilon: 0.5,
            sign_decay_power: 0.5,
            models: vec![SdeModel::FirstOrder],
            scheme: SchemeKind::EulerMaruyama,
            substeps: 2,
            diverge_above: 1e8,
        }
    }
}

/// One panel of the figure.
#[derive(Clone, Debug, Serialize)]
pub struct Figure1Panel {
    pub row: usize,
    pub column: usize,
    pub title: String,
    pub optimizer: &'static str,
    /// The schedule, as used (normalized constants included).
    pub schedule: String,
    pub eta: f64,
    pub report: TrajectoryReport,
}

/// The six panels, row-major (row 0: no scheduler; row 1: the prescribed scheduler).
#[derive(Clone, Debug, Serialize)]
pub struct Figure1Result {
    pub params: Figure1Params,
    pub panels: Vec<Figure1Panel>,
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
            let schedule = if row == 0 {
                Schedule::constant()
            } else {
                normalized(p, &f, 0.0, p.dsgd_sigma0, p.dsgd_sigma1)?
            };
            Ok((
                Optimizer::new(f, Method::Dsgd(Dsgd::new(agents)?), schedule)?,
                p.eta,
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
            let schedule = if row == 0 {
                Schedule::constant()
            } else {
                normalized(p, &f, omega, p.dcsgd_sigma0, p.dcsgd_sigma1)?
            };
            Ok((
                Optimizer::new(f, Method::Dcsgd(Dcsgd::new(agents)?), schedule)?,
                p.eta,
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
    6 * trajectory_work(&settings(p, p.eta))
}

/// Runs the six panels.
pub fn figure1(p: &Figure1Params, progress: Progress) -> Result<Figure1Result, CompareError> {
    if p.dim == 0 {
        return Err(CompareError::bad("dim", 0, "must be at least 1"));
    }
    let mut panels = Vec::new();
    for row in 0..2 {
        for column in 0..3 {
            let (opt, eta, name) = panel_optimizer(p, row, column)?;
            let report = trajectories(&opt, &settings(p, eta), progress)?;
            let schedule = schedule_label(opt.schedule());
            let short = match opt.schedule() {
                Schedule::Constant => "constant η".to_string(),
                Schedule::Polynomial { power } => format!("η_k = (k+1)^-{power}"),
                _ => "normalized η_k (§6.3)".to_string(),
            };
            panels.push(Figure1Panel {
                row,
                column,
                title: format!("{name}: {short}"),
                optimizer: match column {
                    0 => "dsgd",
                    1 => "dcsgd",
                    _ => "dsignsgd",
                },
                schedule,
                eta,
                report,
            });
        }
    }
    Ok(Figure1Result {
        params: p.clone(),
        panels,
    })
}
