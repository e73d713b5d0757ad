//! The discrete process `x_{k+1} = x_k − η η_k u_k` of any [`GradientMethod`] on a [`Loss`],
//! with a [`Schedule`] (MATH.md §3).

use crate::error::ModelError;
use crate::loss::Loss;
use crate::method::GradientMethod;
use crate::schedule::Schedule;
use sde_core::PathRng;

/// A loss, a gradient method and a learning-rate schedule: everything that defines both the
/// discrete optimizer and its SDE models (see [`crate::sde::ModelSde`]).
///
/// The schedule multiplier `η_k` of a gradient-dependent schedule (the normalized ones) is
/// evaluated at the full-gradient norm `‖∇f(x_k)‖`, the quantity the theorems' conditions
/// involve (MATH.md §6.3); the SDE uses `‖∇f(X_t)‖` likewise.
#[derive(Clone, Debug)]
pub struct Optimizer<L, M> {
    loss: L,
    method: M,
    schedule: Schedule,
}

/// Buffers of one discrete path.
#[derive(Clone, Debug)]
pub struct StepWorkspace {
    g: Vec<f64>,
    u: Vec<f64>,
    scratch: Vec<f64>,
}

impl StepWorkspace {
    /// The full gradient at the state of the last step (before the update), for methods that
    /// read it ([`GradientMethod::needs_full_gradient`]) or gradient-dependent schedules.
    pub fn gradient(&self) -> &[f64] {
        &self.g
    }
}

impl<L: Loss, M: GradientMethod> Optimizer<L, M> {
    /// Rejects a method whose dimension differs from the loss's.
    pub fn new(loss: L, method: M, schedule: Schedule) -> Result<Self, ModelError> {
        if loss.dim() != method.dim() {
            return Err(ModelError::DimensionMismatch {
                name: format!(
                    "{} gradient noise (dimension of the loss: {})",
                    method.name(),
                    loss.dim()
                ),
                expected: loss.dim(),
                got: method.dim(),
            });
        }
        Ok(Optimizer {
            loss,
            method,
            schedule,
        })
    }

    pub fn loss(&self) -> &L {
        &self.loss
    }
    pub fn method(&self) -> &M {
        &self.method
    }
    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }
    pub fn dim(&self) -> usize {
        self.loss.dim()
    }

    /// Buffers for one path.
    pub fn workspace(&self) -> StepWorkspace {
        let d = self.dim();
        StepWorkspace {
            g: vec![0.0; d],
            u: vec![0.0; d],
            scratch: vec![0.0; self.method.scratch_len()],
        }
    }

    /// One iteration `k` with base learning rate `eta`; returns the multiplier `η_k` used.
    #[inline]
    pub fn step(
        &self,
        k: u64,
        eta: f64,
        x: &mut [f64],
        rng: &mut PathRng,
        ws: &mut StepWorkspace,
    ) -> f64 {
        // Without a reader of the full gradient (a minibatch method under a time-only schedule)
        // `ws.g` keeps its previous value and `η_k` does not look at it.
        if self.method.needs_full_gradient() || self.schedule.depends_on_gradient() {
            self.loss.gradient(x, &mut ws.g);
        }
        let eta_k = self.schedule.eta_k(k, eta, norm(&ws.g));
        self.method
            .sample_at(x, &ws.g, rng, &mut ws.u, &mut ws.scratch);
        let s = eta * eta_k;
        for (xi, ui) in x.iter_mut().zip(&ws.u) {
            *xi -= s * ui;
        }
        eta_k
    }

    /// One iteration with common random numbers (see [`crate::coupling`]): the direction is
    /// [`GradientMethod::sample_coupled`] from `normals` (length [`Optimizer::coupling_dim`],
    /// iid `N(0, 1)`) and `rng`, with the law of [`Optimizer::step`]'s direction. The SDE path to
    /// pair it with has Brownian increment `−√η ζ` over the iteration, `ζ` from
    /// [`Optimizer::coupling_zeta`] (the minus sign because the step subtracts `η η_k u`).
    /// Returns `false`, and leaves `x` untouched, when the method cannot be coupled.
    #[inline]
    pub fn step_coupled(
        &self,
        k: u64,
        eta: f64,
        x: &mut [f64],
        normals: &[f64],
        rng: &mut PathRng,
        ws: &mut StepWorkspace,
    ) -> bool {
        self.loss.gradient(x, &mut ws.g);
        if !self
            .method
            .sample_coupled(&ws.g, normals, rng, &mut ws.u, &mut ws.scratch)
        {
            return false;
        }
        let s = eta * self.schedule.eta_k(k, eta, norm(&ws.g));
        for (xi, ui) in x.iter_mut().zip(&ws.u) {
            *xi -= s * ui;
        }
        true
    }

    /// Standard normals one [`Optimizer::step_coupled`] consumes; 0 when it is unavailable.
    pub fn coupling_dim(&self) -> usize {
        self.method.coupling_dim()
    }

    /// `ζ` (length `dim()`) of the iteration driven by `normals`: see
    /// [`GradientMethod::coupling_zeta`].
    pub fn coupling_zeta(&self, normals: &[f64], zeta: &mut [f64]) {
        self.method.coupling_zeta(normals, zeta)
    }

    /// Whether [`Optimizer::step_coupled`] is available.
    pub fn supports_coupling(&self) -> bool {
        self.coupling_dim() > 0
    }
}

/// Euclidean norm.
#[inline]
pub fn norm(v: &[f64]) -> f64 {
    v.iter().map(|a| a * a).sum::<f64>().sqrt()
}

/// Dot product.
#[inline]
pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}
