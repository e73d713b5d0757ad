//! The SDE models (A), (B), (C) of MATH.md §5.1, built generically from an [`Optimizer`].
//!
//! With the effective mean `M(t, x) = η_t(x) m(x)` (the schedule may depend on `‖∇f(x)‖`),
//! base learning rate `η` and covariance `C(x)` of one direction:
//!
//! | model | drift | diffusion |
//! |---|---|---|
//! | (A) first order | `−M` | `η_t sqrt(η) C^{1/2}` |
//! | (B) second order | `−M − (η/2) J_M M + (η/2) ∂_t M` | `η_t sqrt(η) C^{1/2}` |
//! | (C) stability-aware | `−M + (η/2) J_M M` | `η_t sqrt(η) C^{1/2}` |
//!
//! where `J_M M = η_t² J_m m + η_t (∇_x η_t · m) m`. For a time-only schedule the last term
//! vanishes and the table is exactly MATH.md §5.1 (with its [DERIVED] `η̇_t` term in (B)); for a
//! gradient-normalized schedule `∇_x η_t · m = η_t'(‖g‖) gᵀ∇²f m / ‖g‖` (with `g = ∇f(x)`), the
//! derivative of the effective mean that the second-order expansion needs. That extension is
//! this project's derivation (MATH.md marks the scheduled (B)/(C) forms [DERIVED]/[RECONSTRUCTED]).
//! `J_m v = (∂μ/∂g) ∇²f v` needs only Hessian-vector products.

use crate::error::ModelError;
use crate::loss::Loss;
use crate::method::GradientMethod;
use crate::optimizer::{dot, norm, Optimizer};
use crate::schedule::Schedule;
use sde_core::{NoiseShape, Sde};
use serde::{Deserialize, Serialize};

/// Which SDE model of MATH.md §5.1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SdeModel {
    /// (A) `dX = −η_t m dt + η_t sqrt(η) C^{1/2} dW`: weak order 1.
    FirstOrder,
    /// (B) the second-order (LTE) model: weak order 2.
    SecondOrder,
    /// (C) the stability-aware first-order model: weak order 1, curvature sign of (B) flipped.
    Stability,
}

impl SdeModel {
    pub const ALL: [SdeModel; 3] = [
        SdeModel::FirstOrder,
        SdeModel::SecondOrder,
        SdeModel::Stability,
    ];

    /// The weak order the model approximates the discrete process with.
    pub fn weak_order(&self) -> f64 {
        match self {
            SdeModel::SecondOrder => 2.0,
            _ => 1.0,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            SdeModel::FirstOrder => "first_order",
            SdeModel::SecondOrder => "second_order",
            SdeModel::Stability => "stability",
        }
    }
}

/// `dη_t/d‖g‖` at fixed `t`: non-zero only for the gradient-normalized schedules.
pub fn schedule_grad_norm_derivative(schedule: &Schedule, t: f64, eta: f64, grad_norm: f64) -> f64 {
    schedule.grad_norm_derivative(t, eta, grad_norm)
}

/// An SDE model of an optimizer at base learning rate `η`, as an `sde_core` problem. Time is
/// SDE time: iteration `k` sits at `t = kη`.
#[derive(Clone, Debug)]
pub struct ModelSde<'a, L, M> {
    opt: &'a Optimizer<L, M>,
    model: SdeModel,
    eta: f64,
    noise: NoiseShape,
    /// The diffusion depends on `t` only (constant covariance, time-only schedule).
    state_independent: bool,
}

impl<L: Loss, M: GradientMethod> Optimizer<L, M> {
    /// The SDE `model` of this optimizer at base learning rate `eta`.
    pub fn sde(&self, model: SdeModel, eta: f64) -> Result<ModelSde<'_, L, M>, ModelError> {
        if !(eta > 0.0) || !eta.is_finite() {
            return Err(ModelError::InvalidParameter {
                name: "eta".into(),
                value: eta.to_string(),
                reason: "the learning rate must be positive and finite".into(),
            });
        }
        let method = self.method();
        let time_only = !self.schedule().depends_on_gradient();
        // The diffusion η_t √η C(∇f(x))^{1/2} is free of x when C is constant and η_t depends
        // on t only; its diagonal entry j depends on x_j only when moreover (or instead) C_jj
        // is a function of g_j and g_j of x_j. That is diagonal noise in the Milstein sense;
        // anything else (a diagonal b_jj that depends on the whole state, rand-k's rank-one
        // part) is declared general and non-commutative, so Milstein refuses it instead of
        // returning wrong numbers.
        let state_independent = method.covariance_is_constant() && time_only;
        let diagonal = method.covariance_is_diagonal()
            && time_only
            && (method.covariance_is_constant()
                || (method.covariance_is_coordinatewise() && self.loss().is_separable()));
        let noise = if diagonal {
            NoiseShape::Diagonal
        } else {
            NoiseShape::General {
                m: method.noise_dim(),
                commutative: false,
            }
        };
        Ok(ModelSde {
            opt: self,
            model,
            eta,
            noise,
            state_independent,
        })
    }
}

impl<L: Loss, M: GradientMethod> ModelSde<'_, L, M> {
    pub fn model(&self) -> SdeModel {
        self.model
    }
    pub fn eta(&self) -> f64 {
        self.eta
    }
    pub fn optimizer(&self) -> &Optimizer<L, M> {
        self.opt
    }

    /// Splits scratch into five d-vectors and the method's scratch.
    #[inline]
    #[allow(clippy::type_complexity)]
    fn split<'s>(
        &self,
        scratch: &'s mut [f64],
    ) -> (
        &'s mut [f64],
        &'s mut [f64],
        &'s mut [f64],
        &'s mut [f64],
        &'s mut [f64],
        &'s mut [f64],
    ) {
        let d = self.opt.dim();
        let (g, rest) = scratch.split_at_mut(d);
        let (m, rest) = rest.split_at_mut(d);
        let (hv, rest) = rest.split_at_mut(d);
        let (jm, rest) = rest.split_at_mut(d);
        let (col, rest) = rest.split_at_mut(d);
        (g, m, hv, jm, col, rest)
    }

    /// Extra scratch (after the method's) for a unit vector of a non-square factor; 0 for
    /// square factors, so their scratch layout is unchanged.
    fn wide_noise_len(&self) -> usize {
        let m = self.opt.method().noise_dim();
        if m == self.opt.dim() {
            0
        } else {
            m
        }
    }

    #[inline]
    fn diffusion_factor(&self, t: f64, grad_norm: f64) -> f64 {
        self.opt.schedule().eta_t(t, self.eta, grad_norm) * self.eta.sqrt()
    }
}

impl<L: Loss, M: GradientMethod> Sde for ModelSde<'_, L, M> {
    fn dim(&self) -> usize {
        self.opt.dim()
    }
    fn noise(&self) -> NoiseShape {
        self.noise
    }
    fn scratch_len(&self) -> usize {
        5 * self.opt.dim() + self.opt.method().scratch_len() + self.wide_noise_len()
    }

    fn drift(&self, t: f64, x: &[f64], out: &mut [f64], scratch: &mut [f64]) {
        let (g, m, hv, jm, _, ms) = self.split(scratch);
        let (loss, method, schedule) = (self.opt.loss(), self.opt.method(), self.opt.schedule());
        loss.gradient(x, g);
        let gn = norm(g);
        let et = schedule.eta_t(t, self.eta, gn);
        method.mean_at(x, g, m, ms);
        if self.model == SdeModel::FirstOrder {
            for (o, mi) in out.iter_mut().zip(m.iter()) {
                *o = -et * mi;
            }
            return;
        }
        loss.hessian_vec(x, m, hv);
        method.mean_jvp_at(x, g, hv, jm, ms);
        // ∇_x η_t · m, for gradient-dependent schedules.
        let grad_term = if schedule.depends_on_gradient() && gn > 0.0 {
            schedule_grad_norm_derivative(schedule, t, self.eta, gn) * dot(g, hv) / gn
        } else {
            0.0
        };
        let half = 0.5 * self.eta;
        match self.model {
            SdeModel::SecondOrder => {
                let et_dot = schedule.eta_t_dot(t, self.eta, gn);
                for ((o, mi), ji) in out.iter_mut().zip(m.iter()).zip(jm.iter()) {
                    let jmm = et * et * ji + et * grad_term * mi;
                    *o = -et * mi - half * jmm + half * et_dot * mi;
                }
            }
            _ => {
                for ((o, mi), ji) in out.iter_mut().zip(m.iter()).zip(jm.iter()) {
                    let jmm = et * et * ji + et * grad_term * mi;
                    *o = -et * mi + half * jmm;
                }
            }
        }
    }

    fn diffusion(&self, t: f64, x: &[f64], out: &mut [f64], scratch: &mut [f64]) {
        let d = self.opt.dim();
        let (g, _, _, e, col, ms) = self.split(scratch);
        let method = self.opt.method();
        self.opt.loss().gradient(x, g);
        let f = self.diffusion_factor(t, norm(g));
        match self.noise {
            NoiseShape::Diagonal => {
                method.cov_sqrt_diag(g, out, ms);
                out.iter_mut().for_each(|o| *o *= f);
            }
            _ if method.covariance_is_diagonal() => {
                method.cov_sqrt_diag(g, col, ms);
                out.fill(0.0);
                for i in 0..d {
                    out[i * d + i] = f * col[i];
                }
            }
            _ if method.noise_dim() != d => {
                let m = method.noise_dim();
                let ms_len = method.scratch_len();
                let (ms, unit) = ms.split_at_mut(ms_len);
                let unit = &mut unit[..m];
                for j in 0..m {
                    unit.fill(0.0);
                    unit[j] = 1.0;
                    method.cov_sqrt_mul_at(x, g, unit, col, ms);
                    for i in 0..d {
                        out[i * m + j] = f * col[i];
                    }
                }
            }
            _ => {
                // Dense columns B e_j: only for schemes that need columns (weak order 2).
                for j in 0..d {
                    e.fill(0.0);
                    e[j] = 1.0;
                    method.cov_sqrt_mul(g, e, col, ms);
                    for i in 0..d {
                        out[i * d + j] = f * col[i];
                    }
                }
            }
        }
    }

    fn diffusion_is_state_independent(&self) -> bool {
        self.state_independent
    }

    #[inline]
    fn diffusion_mul(
        &self,
        t: f64,
        x: &[f64],
        dw: &[f64],
        out: &mut [f64],
        _b: &mut [f64],
        scratch: &mut [f64],
    ) {
        let (g, _, _, _, _, ms) = self.split(scratch);
        self.opt.loss().gradient(x, g);
        let f = self.diffusion_factor(t, norm(g));
        self.opt.method().cov_sqrt_mul_at(x, g, dw, out, ms);
        out.iter_mut().for_each(|o| *o *= f);
    }
}
