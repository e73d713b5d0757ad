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
use sde_core::{Increments, PathRng, PathSimulation, Scheme, Solver, SolverWorkspace};

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

/// The discrete optimizer alone.
pub struct DiscretePaths<'a, L, M> {
    pub opt: &'a Optimizer<L, M>,
    pub settings: &'a PathSettings,
}

pub struct DiscreteWorkspace {
    x: Vec<f64>,
    g: Vec<f64>,
    step: StepWorkspace,
}

impl<L: Loss, M: GradientMethod> PathSimulation for DiscretePaths<'_, L, M> {
    type Workspace = DiscreteWorkspace;
    fn workspace(&self) -> DiscreteWorkspace {
        DiscreteWorkspace {
            x: self.settings.x0.clone(),
            g: vec![0.0; self.opt.dim()],
            step: self.opt.workspace(),
        }
    }
    fn n_save(&self) -> usize {
        self.settings.iterations + 1
    }
    fn n_observables(&self) -> usize {
        self.settings.n_obs()
    }
    fn simulate(
        &self,
        _p: u64,
        rng: &mut PathRng,
        ws: &mut DiscreteWorkspace,
        out: &mut [f64],
    ) -> usize {
        let st = self.settings;
        let n = st.n_obs();
        ws.x.copy_from_slice(&st.x0);
        let loss = self.opt.loss();
        if !st.record(loss, &ws.x, &mut ws.g, out, 0, n, 0) {
            return 0;
        }
        for k in 0..st.iterations {
            self.opt
                .step(k as u64, st.eta, &mut ws.x, rng, &mut ws.step);
            if !st.record(loss, &ws.x, &mut ws.g, out, k + 1, n, 0) {
                return k + 1;
            }
        }
        st.iterations + 1
    }
}

/// One SDE model, integrated with `substeps` steps of `η / substeps` per iteration.
pub struct ModelPaths<'a, L, M, Sch, I> {
    pub solver: Solver<ModelSde<'a, L, M>, Sch, I>,
    pub settings: &'a PathSettings,
    pub substeps: usize,
}

pub struct ModelWorkspace<W> {
    x: Vec<f64>,
    g: Vec<f64>,
    solver: SolverWorkspace<W>,
}

impl<L: Loss, M: GradientMethod, Sch: Scheme, I: Increments> PathSimulation
    for ModelPaths<'_, L, M, Sch, I>
{
    type Workspace = ModelWorkspace<Sch::Workspace>;
    fn workspace(&self) -> Self::Workspace {
        ModelWorkspace {
            x: self.settings.x0.clone(),
            g: vec![0.0; self.settings.x0.len()],
            solver: self.solver.workspace(),
        }
    }
    fn n_save(&self) -> usize {
        self.settings.iterations + 1
    }
    fn n_observables(&self) -> usize {
        self.settings.n_obs()
    }
    fn simulate(
        &self,
        _p: u64,
        rng: &mut PathRng,
        ws: &mut Self::Workspace,
        out: &mut [f64],
    ) -> usize {
        let st = self.settings;
        let n = st.n_obs();
        let loss = self.solver.sde().optimizer().loss();
        let h = st.eta / self.substeps as f64;
        ws.x.copy_from_slice(&st.x0);
        if !st.record(loss, &ws.x, &mut ws.g, out, 0, n, 0) {
            return 0;
        }
        for k in 0..st.iterations {
            for j in 0..self.substeps {
                let t = (k * self.substeps + j) as f64 * h;
                self.solver.step(t, h, &mut ws.x, rng, &mut ws.solver);
            }
            if !st.record(loss, &ws.x, &mut ws.g, out, k + 1, n, 0) {
                return k + 1;
            }
        }
        st.iterations + 1
    }
}
