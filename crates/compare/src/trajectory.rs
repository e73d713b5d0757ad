//! Trajectories: mean and quantile bands over time of each observable, for the discrete
//! optimizer and its SDE models side by side, at one learning rate.
//!
//! Means and intervals stream over all paths (memory independent of their number). Quantiles
//! need the values themselves: they are taken over the first `quantile_paths` paths (the same
//! paths, by seed, as the first ones of the mean), which bounds memory by
//! `quantile_paths × (K + 1) × observables` values.

use crate::error::{CompareError, Setting};
use crate::observable::Observable;
use crate::sim::{DiscretePaths, ModelPaths, PathSettings};
use crate::solver_choice::{dispatch, SolverVisitor};
use crate::streams::{Role, Stream};
use crate::study::{
    check_horizon_and_etas, check_paths, check_substeps, check_x0, iterations, Progress,
    ProgressDelta,
};
use models::loss::Loss;
use models::method::GradientMethod;
use models::optimizer::Optimizer;
use models::sde::SdeModel;
use rayon::prelude::*;
use sde_core::{Ensemble, IncrementKind, Increments, PathSimulation, Scheme, SchemeKind, Solver};
use serde::Serialize;

/// Settings of one trajectory run.
#[derive(Clone, Debug, Serialize)]
pub struct TrajectorySettings {
    pub eta: f64,
    pub horizon: f64,
    pub paths: u64,
    pub quantile_paths: u64,
    pub quantiles: Vec<f64>,
    pub seed: u64,
    pub x0: Vec<f64>,
    pub models: Vec<SdeModel>,
    pub scheme: SchemeKind,
    pub increments: IncrementKind,
    pub substeps: usize,
    pub observables: Vec<Observable>,
    pub diverge_above: f64,
}

/// Bands of one observable over time.
#[derive(Clone, Debug, Serialize)]
pub struct Band {
    pub observable: Observable,
    pub mean: Vec<f64>,
    pub ci95: Vec<f64>,
    /// `quantiles[q][k]`, for the levels of [`TrajectorySettings::quantiles`].
    pub quantiles: Vec<Vec<f64>>,
}

/// One process (the discrete optimizer or an SDE model) over time.
#[derive(Clone, Debug, Serialize)]
pub struct Trajectory {
    pub label: String,
    /// `t_k = kη`.
    pub times: Vec<f64>,
    pub bands: Vec<Band>,
    /// Paths diverged at or before iteration `k`.
    pub diverged: Vec<u64>,
    pub paths: u64,
}

impl Trajectory {
    pub fn band(&self, obs: Observable) -> Option<&Band> {
        self.bands.iter().find(|b| b.observable == obs)
    }
}

/// The discrete run and every requested model.
#[derive(Clone, Debug, Serialize)]
pub struct TrajectoryReport {
    pub eta: f64,
    pub iterations: usize,
    pub quantile_levels: Vec<f64>,
    pub discrete: Trajectory,
    pub models: Vec<(SdeModel, Trajectory)>,
    /// SVAG with each requested `l` ([`crate::svag::svag_trajectories`]); absent when none.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub svag: Vec<(usize, Trajectory)>,
}

impl TrajectoryReport {
    /// The discrete run, every SDE model and every SVAG run, in that order.
    pub fn processes(&self) -> impl Iterator<Item = &Trajectory> {
        std::iter::once(&self.discrete)
            .chain(self.models.iter().map(|(_, t)| t))
            .chain(self.svag.iter().map(|(_, t)| t))
    }

    /// [`TrajectoryReport::processes`], mutably.
    pub fn processes_mut(&mut self) -> impl Iterator<Item = &mut Trajectory> {
        std::iter::once(&mut self.discrete)
            .chain(self.models.iter_mut().map(|(_, t)| t))
            .chain(self.svag.iter_mut().map(|(_, t)| t))
    }
}

/// Path simulations a trajectory run performs (for a progress bar).
pub fn trajectory_work(s: &TrajectorySettings) -> u64 {
    let extra = if s.quantile_paths >= s.paths {
        0
    } else {
        s.quantile_paths
    };
    (1 + s.models.len() as u64) * (s.paths + extra)
}

pub(crate) fn summarize<P: PathSimulation>(
    label: String,
    sim: &P,
    s: &TrajectorySettings,
    seed: u64,
    progress: Progress,
) -> Result<Trajectory, CompareError> {
    let delta = ProgressDelta::new(progress);
    let report = |done: u64| delta.report(done);
    let qp = s.quantile_paths.clamp(2, s.paths);
    let (stats, values) = if qp == s.paths {
        Ensemble::new(s.paths, seed)?.run_collect(sim, &report)
    } else {
        let stats = Ensemble::new(s.paths, seed)?.run_with_progress(sim, &report);
        delta.reset();
        // The first `qp` paths again (same seeds, same paths), this time keeping their values.
        (stats, Ensemble::new(qp, seed)?.run_collect(sim, &report).1)
    };
    let n_save = stats.n_save;
    let bands = s
        .observables
        .iter()
        .enumerate()
        .map(|(o, obs)| {
            // quantiles_at[k][q], sorted once per save point, save points in parallel.
            let quantiles_at: Vec<Vec<f64>> = (0..n_save)
                .into_par_iter()
                .map(|k| values.quantiles(k, o, &s.quantiles))
                .collect();
            Band {
                observable: *obs,
                mean: (0..n_save).map(|k| stats.summary(k, o).mean).collect(),
                ci95: (0..n_save).map(|k| stats.summary(k, o).ci95).collect(),
                quantiles: (0..s.quantiles.len())
                    .map(|q| quantiles_at.iter().map(|row| row[q]).collect())
                    .collect(),
            }
        })
        .collect();
    Ok(Trajectory {
        label,
        times: (0..n_save).map(|k| k as f64 * s.eta).collect(),
        bands,
        diverged: stats.diverged.clone(),
        paths: s.paths,
    })
}

struct ModelTrajectory<'a, L, M> {
    opt: &'a Optimizer<L, M>,
    model: SdeModel,
    settings: &'a PathSettings,
    s: &'a TrajectorySettings,
    seed: u64,
    progress: Progress<'a>,
}

impl<L: Loss, M: GradientMethod> SolverVisitor for ModelTrajectory<'_, L, M> {
    type Output = Result<Trajectory, CompareError>;
    fn visit<Sch: Scheme, I: Increments>(self, scheme: Sch, increments: I) -> Self::Output {
        let sde = self.opt.sde(self.model, self.s.eta)?;
        let sim = ModelPaths {
            solver: Solver::new(sde, scheme, increments)?,
            settings: self.settings,
            substeps: self.s.substeps,
        };
        summarize(
            format!("SDE {}", self.model.name()),
            &sim,
            self.s,
            self.seed,
            self.progress,
        )
    }
}

/// Runs the discrete optimizer and each model at one learning rate.
pub fn trajectories<L: Loss, M: GradientMethod>(
    opt: &Optimizer<L, M>,
    s: &TrajectorySettings,
    progress: Progress,
) -> Result<TrajectoryReport, CompareError> {
    check_horizon_and_etas(s.horizon, &[s.eta])?;
    let iters = iterations(s.horizon, s.eta);
    check_paths(s.paths)?;
    check_substeps(s.substeps)?;
    check_x0(&s.x0, opt.dim())?;
    for (i, q) in s.quantiles.iter().enumerate() {
        if !(0.0..=1.0).contains(q) {
            return Err(CompareError::bad(
                Setting::Quantiles.at(i),
                q,
                "must lie in [0, 1]",
            ));
        }
    }
    let settings = PathSettings {
        eta: s.eta,
        iterations: iters,
        x0: s.x0.clone(),
        observables: s.observables.clone(),
        diverge_above: s.diverge_above,
    };
    let discrete = summarize(
        "discrete".into(),
        &DiscretePaths {
            opt,
            settings: &settings,
        },
        s,
        Stream::master(s.seed).role(Role::Discrete).seed(),
        progress,
    )?;
    let mut models = Vec::new();
    for &model in &s.models {
        let t = dispatch(
            s.scheme,
            s.increments,
            ModelTrajectory {
                opt,
                model,
                settings: &settings,
                s,
                seed: Stream::master(s.seed).role(Role::Model(model)).seed(),
                progress,
            },
        )?;
        models.push((model, t));
    }
    Ok(TrajectoryReport {
        eta: s.eta,
        iterations: iters,
        quantile_levels: s.quantiles.clone(),
        discrete,
        models,
        svag: Vec::new(),
    })
}
