//! From a validated [`ExperimentConfig`] to the numerical objects of `models` and `compare`.
//! The config layer has already named any bad key; errors here come from the models' own
//! validation and are reported as bad input with the model's message (which names the
//! parameter and value).

use crate::config::ExperimentConfig;
use crate::error::CliError;
use compare::exact::QuadraticDsgdMoments;
use compare::stability::StabilitySettings;
use compare::study::StudySettings;
use compare::trajectory::TrajectorySettings;
use models::loss::Loss;
use models::noise::GradientNoise;
use models::{AgentNoises, LossKind, Method, ModelError, NoiseModel, Optimizer, Schedule};

/// The optimizer every subcommand runs.
pub type Opt = Optimizer<LossKind, Method>;

fn model_err(e: ModelError) -> CliError {
    CliError::BadInput(e.to_string())
}

/// The optimizer described by the config, built by the models specs.
pub fn optimizer(cfg: &ExperimentConfig) -> Result<Opt, CliError> {
    let d = cfg.dim();
    let f = cfg.loss.to_model().map_err(model_err)?;
    let noises = cfg
        .noise
        .per_agent(cfg.agents.n)
        .iter()
        .map(|m| m.build(&d))
        .collect::<Result<Vec<_>, ModelError>>()
        .map_err(model_err)?;
    let method = cfg
        .optimizer
        .build(&AgentNoises { d, noises })
        .map_err(model_err)?;
    let sched = cfg.schedule.build(&f.smoothness()).map_err(model_err)?;
    Optimizer::new(f, method, sched).map_err(model_err)
}

/// Closed-form moments, where the build has them: DSGD on a diagonal quadratic with Gaussian
/// noise of constant covariance and a constant schedule.
pub fn exact_moments(cfg: &ExperimentConfig, opt: &Opt) -> Option<QuadraticDsgdMoments> {
    let LossKind::DiagonalQuadratic(q) = opt.loss() else {
        return None;
    };
    let Method::Dsgd(m) = opt.method() else {
        return None;
    };
    if *opt.schedule() != Schedule::constant() {
        return None;
    }
    let d = opt.dim();
    let n = m.agents().len() as f64;
    let mut noise_var = vec![0.0; d];
    let mut v = vec![0.0; d];
    let g = vec![0.0; d];
    for a in m.agents() {
        if !matches!(a.noise, NoiseModel::Gaussian(_)) || a.noise.depends_on_gradient() {
            return None;
        }
        a.noise.variance(&g, &mut v);
        for (acc, vi) in noise_var.iter_mut().zip(&v) {
            *acc += vi / (n * n);
        }
    }
    Some(QuadraticDsgdMoments {
        lambda: q.lambda().to_vec(),
        noise_var,
        x0: cfg.loss.x0.clone(),
    })
}

/// Settings of `sdelab weak-error`.
pub fn study_settings(cfg: &ExperimentConfig) -> StudySettings {
    StudySettings {
        etas: cfg.run.etas.clone(),
        horizon: cfg.run.horizon,
        paths: cfg.run.paths as u64,
        seed: cfg.seed,
        x0: cfg.loss.x0.clone(),
        models: cfg.sde.models.clone(),
        scheme: cfg.sde.scheme,
        increments: cfg.sde.increments,
        substeps: cfg.sde.substeps,
        max_substeps: cfg.sde.max_substeps,
        observables: cfg.run.observables.clone(),
        diverge_above: cfg.run.diverge_above,
        common_random_numbers: cfg.run.common_random_numbers,
        exact_reference: cfg.run.exact_reference,
        target_rel_ci: cfg.run.target_rel_ci,
    }
}

/// Settings of `sdelab run` (the first learning rate). Quantiles are taken over at most
/// `QUANTILE_PATHS` paths (their values must be kept in memory).
pub fn trajectory_settings(cfg: &ExperimentConfig) -> TrajectorySettings {
    let s = study_settings(cfg);
    TrajectorySettings {
        eta: s.etas[0],
        horizon: s.horizon,
        paths: s.paths,
        quantile_paths: QUANTILE_PATHS.min(s.paths),
        quantiles: cfg.run.quantiles.clone(),
        seed: s.seed,
        x0: s.x0,
        models: s.models,
        scheme: s.scheme,
        increments: s.increments,
        substeps: s.substeps.unwrap_or(crate::config::DEFAULT_RUN_SUBSTEPS),
        observables: s.observables,
        diverge_above: s.diverge_above,
    }
}

/// Settings of `sdelab stability`: `run.etas` is the sweep, `sde.substeps` where the SDE side's
/// substep refinement starts.
pub fn stability_settings(cfg: &ExperimentConfig) -> StabilitySettings {
    StabilitySettings {
        etas: cfg.run.etas.clone(),
        x0_scales: cfg.run.x0_scales.clone(),
        horizon: cfg.run.horizon,
        paths: cfg.run.paths as u64,
        seed: cfg.seed,
        x0: cfg.loss.x0.clone(),
        models: cfg.sde.models.clone(),
        scheme: cfg.sde.scheme,
        increments: cfg.sde.increments,
        // The sweep starts where the drift's own step limit asks (see compare::stability) and
        // doubles until the diverged fraction stops moving.
        substeps: cfg.sde.substeps.unwrap_or(1),
        max_substeps: MAX_STABILITY_SUBSTEPS.max(2 * cfg.sde.substeps.unwrap_or(1)),
        diverge_above: cfg.run.diverge_above,
    }
}

/// The finest SDE step `sdelab stability` refines to: `η / MAX_STABILITY_SUBSTEPS`.
pub const MAX_STABILITY_SUBSTEPS: usize = 4096;

/// Paths whose values are kept for quantile bands in `sdelab run`.
pub const QUANTILE_PATHS: u64 = 4000;
