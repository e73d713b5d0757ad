//! From a validated [`ExperimentConfig`] to the numerical objects of `models` and `compare`.
//! The config layer has already named any bad key; errors here come from the models' own
//! validation and are reported as bad input with the model's message (which names the
//! parameter and value).

use crate::config::{ExperimentConfig, MinibatchNoise, NoiseSpec};
use crate::error::CliError;
use compare::exact::QuadraticDsgdMoments;
use compare::stability::StabilitySettings;
use compare::study::StudySettings;
use compare::trajectory::TrajectorySettings;
use models::loss::Loss;
use models::minibatch::{AnyMethod, Minibatch, MinibatchRule};
use models::noise::GradientNoise;
use models::{
    AgentNoises, CompressorSpec, LossKind, Method, ModelError, NoiseModel, Optimizer,
    OptimizerSpec, Schedule,
};

/// The optimizer every subcommand runs: injected noise on the full gradient, or minibatch noise
/// of a data-set loss.
pub type Opt = Optimizer<LossKind, AnyMethod>;

fn model_err(e: ModelError) -> CliError {
    CliError::BadInput(e.to_string())
}

/// The optimizer described by the config, built by the models specs.
pub fn optimizer(cfg: &ExperimentConfig) -> Result<Opt, CliError> {
    let d = cfg.dim();
    let f = cfg.loss.to_model().map_err(model_err)?;
    let method: AnyMethod = if let NoiseSpec::Minibatch(mb) = &cfg.noise {
        minibatch(&f, mb, &cfg.optimizer, cfg.agents.n)
            .map_err(model_err)?
            .into()
    } else {
        let noises = cfg
            .noise
            .per_agent(cfg.agents.n)
            .iter()
            .map(|m| m.build(&d))
            .collect::<Result<Vec<_>, ModelError>>()
            .map_err(model_err)?;
        cfg.optimizer
            .build(&AgentNoises { d, noises })
            .map_err(model_err)?
            .into()
    };
    let sched = cfg.schedule.build(&f.smoothness()).map_err(model_err)?;
    Optimizer::new(f, method, sched).map_err(model_err)
}

/// The minibatch method of `noise.kind = "minibatch"` on the network of `loss` (the same `Arc`,
/// so the batches are rows of the loss's own training split): DSGD, DCSGD (each agent compresses
/// its minibatch gradient) or DSignSGD (each agent sends the sign of its minibatch gradient).
/// Errors name `noise.kind`, `noise.batch`, `agents.n` or `compressor.kind`.
pub fn minibatch(
    loss: &LossKind,
    noise: &MinibatchNoise,
    optimizer: &OptimizerSpec,
    agents: usize,
) -> Result<Minibatch, ModelError> {
    let net = match loss {
        LossKind::Logistic(l) => l.0.clone(),
        LossKind::Mlp(l) => l.0.clone(),
        other => {
            return Err(ModelError::invalid(
                "noise.kind",
                "\"minibatch\"",
                format!(
                    "needs loss.kind = \"logistic\" | \"mlp\" (loss \"{}\" has no training rows)",
                    other.name()
                ),
            ))
        }
    };
    let rule = match optimizer {
        OptimizerSpec::Dsgd(_) => MinibatchRule::Sgd,
        OptimizerSpec::Dcsgd(s) => MinibatchRule::Compressed(
            s.compressor
                .build(&net.dim())
                .map_err(|e| e.renamed("", "compressor."))?,
        ),
        OptimizerSpec::DsignSgd(_) => MinibatchRule::Sign,
    };
    if !matches!(optimizer, OptimizerSpec::Dcsgd(_))
        && *optimizer.compressor() != CompressorSpec::default()
    {
        return Err(ModelError::invalid(
            "compressor.kind",
            format!("\"{}\"", optimizer.compressor().kind_name()),
            "compression needs optimizer.kind = \"dcsgd\"",
        ));
    }
    Minibatch::new(net, rule, agents, noise.batch, noise.replacement)
}

/// The stability theory of `sdelab stability` (`compare::stability::theory`): known only for
/// injected noise.
pub fn stability_theory(opt: &Opt, x0: &[f64]) -> compare::stability::ProcessTheories {
    match opt.method() {
        AnyMethod::Injected(m) => {
            match Optimizer::new(opt.loss().clone(), m.clone(), *opt.schedule()) {
                Ok(o) => compare::stability::theory(&o, x0),
                Err(_) => Vec::new(),
            }
        }
        AnyMethod::Minibatch(_) => Vec::new(),
    }
}

/// Closed-form moments, where the build has them: DSGD on a diagonal quadratic with Gaussian
/// noise of constant covariance and a constant schedule.
pub fn exact_moments(cfg: &ExperimentConfig, opt: &Opt) -> Option<QuadraticDsgdMoments> {
    let LossKind::DiagonalQuadratic(q) = opt.loss() else {
        return None;
    };
    let AnyMethod::Injected(Method::Dsgd(m)) = opt.method() else {
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
        max_paths: Some(cfg.run.max_paths as u64),
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
    let s = study_settings(cfg);
    // The sweep starts where the drift's own step limit asks (see compare::stability) and
    // doubles until the diverged fraction stops moving.
    let substeps = s.substeps.unwrap_or(1);
    StabilitySettings {
        etas: s.etas,
        x0_scales: cfg.run.x0_scales.clone(),
        horizon: s.horizon,
        paths: s.paths,
        seed: s.seed,
        x0: s.x0,
        models: s.models,
        scheme: s.scheme,
        increments: s.increments,
        substeps,
        max_substeps: MAX_STABILITY_SUBSTEPS.max(2 * substeps),
        diverge_above: s.diverge_above,
    }
}

/// The finest SDE step `sdelab stability` refines to: `η / MAX_STABILITY_SUBSTEPS`.
pub const MAX_STABILITY_SUBSTEPS: usize = 4096;

/// Paths whose values are kept for quantile bands in `sdelab run`.
pub const QUANTILE_PATHS: u64 = 4000;
