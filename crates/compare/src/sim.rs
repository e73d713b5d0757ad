//! Path simulations of a discrete optimizer and of one of its SDE models, as
//! `sde_core::PathSimulation`s so they run on the seeded, thread-count-independent ensemble
//! engine (the coupled pair of a weak-error study is [`crate::ladder`]).
//!
//! Save point `k` is iteration `k` (time `kη`), `k = 0..=K`. A path is diverged from the first
//! save point where its loss exceeds the threshold or any value is not finite.

use crate::observable::{evaluate_from, Observable};
use models::loss::Loss;
use models::method::GradientMethod;
use models::optimizer::{Optimizer, StepWorkspace};
use models::sde::ModelSde;
use sde_core::{Increments, PathInput, PathSimulation, Scheme, Solver, SolverWorkspace};

/// Horizon and recording settings shared by all simulations of one learning rate.
#[derive(Clone, Debug)]
pub struct PathSettings {
    pub eta: f64,
    pub iterations: usize,
    pub x0: Vec<f64>,
    pub observables: Vec<Observable>,
    pub diverge_above: f64,
}

impl PathSettings {
    fn n_obs(&self) -> usize {
        self.observables.len()
    }

    /// Records the observables of `x` at save point `s` into `out` (offset `off` within the
    /// save point's block of `stride` values); `false` if the path is diverged there.
    #[inline]
    #[allow(clippy::too_many_arguments)]
    fn record<L: Loss>(
        &self,
        loss: &L,
        x: &[f64],
        g: &mut [f64],
        out: &mut [f64],
        s: usize,
        stride: usize,
        off: usize,
    ) -> bool {
        let n = self.n_obs();
        let o = &mut out[s * stride + off..s * stride + off + n];
        let f = evaluate_from(loss, &self.observables, &self.x0, x, g, o);
        f.is_finite() && f <= self.diverge_above && o.iter().all(|v| v.is_finite())
    }
}

/// The buffers of one path: its state `x`, a gradient `g` for the observables, and the buffers
/// `inner` of what advances it (the optimizer's or the solver's).
pub struct PathWorkspace<W> {
    x: Vec<f64>,
    g: Vec<f64>,
    inner: W,
}

impl PathSettings {
    fn workspace<W>(&self, inner: W) -> PathWorkspace<W> {
        PathWorkspace {
            x: self.x0.clone(),
            g: vec![0.0; self.x0.len()],
            inner,
        }
    }

    /// One path from `x0`: records save point 0, then for each iteration `k` lets
    /// `advance(k, x, inner)` move the state to iteration `k + 1` and records it. Returns the
    /// number of valid save points.
    #[inline]
    fn run<L: Loss, W>(
        &self,
        loss: &L,
        ws: &mut PathWorkspace<W>,
        out: &mut [f64],
        mut advance: impl FnMut(usize, &mut [f64], &mut W),
    ) -> usize {
        let n = self.n_obs();
        ws.x.copy_from_slice(&self.x0);
        if !self.record(loss, &ws.x, &mut ws.g, out, 0, n, 0) {
            return 0;
        }
        for k in 0..self.iterations {
            advance(k, &mut ws.x, &mut ws.inner);
            if !self.record(loss, &ws.x, &mut ws.g, out, k + 1, n, 0) {
                return k + 1;
            }
        }
        self.iterations + 1
    }
}

/// The discrete optimizer alone.
pub struct DiscretePaths<'a, L, M> {
    pub opt: &'a Optimizer<L, M>,
    pub settings: &'a PathSettings,
}

impl<L: Loss, M: GradientMethod> PathSimulation for DiscretePaths<'_, L, M> {
    type Workspace = PathWorkspace<StepWorkspace>;
    fn workspace(&self) -> Self::Workspace {
        self.settings.workspace(self.opt.workspace())
    }
    fn n_save(&self) -> usize {
        self.settings.iterations + 1
    }
    fn n_observables(&self) -> usize {
        self.settings.n_obs()
    }
    fn simulate(&self, path: PathInput<'_>, ws: &mut Self::Workspace, out: &mut [f64]) -> usize {
        let eta = self.settings.eta;
        self.settings.run(self.opt.loss(), ws, out, |k, x, step| {
            self.opt.step(k as u64, eta, x, path.rng, step);
        })
    }
}

/// One SDE model, integrated with `substeps` steps of `η / substeps` per iteration.
pub struct ModelPaths<'a, L, M, Sch, I> {
    pub solver: Solver<ModelSde<'a, L, M>, Sch, I>,
    pub settings: &'a PathSettings,
    pub substeps: usize,
}

impl<L: Loss, M: GradientMethod, Sch: Scheme, I: Increments> PathSimulation
    for ModelPaths<'_, L, M, Sch, I>
{
    type Workspace = PathWorkspace<SolverWorkspace<Sch::Workspace>>;
    fn workspace(&self) -> Self::Workspace {
        self.settings.workspace(self.solver.workspace())
    }
    fn n_save(&self) -> usize {
        self.settings.iterations + 1
    }
    fn n_observables(&self) -> usize {
        self.settings.n_obs()
    }
    fn simulate(&self, path: PathInput<'_>, ws: &mut Self::Workspace, out: &mut [f64]) -> usize {
        let loss = self.solver.sde().optimizer().loss();
        let h = self.settings.eta / self.substeps as f64;
        self.settings.run(loss, ws, out, |k, x, sw| {
            for j in 0..self.substeps {
                let t = (k * self.substeps + j) as f64 * h;
                self.solver.step(t, h, x, path.rng, sw);
            }
        })
    }
}
