//! Learning-rate schedules: the multiplier `η_k` of MATH.md §3 and its continuous form `η_t`.
//!
//! The step actually taken at iteration `k` is `η · η_k` (`η` the base learning rate, also the
//! SDE time step, `t_k = kη`). In continuous time `η_t = φ(t/η)` when `η_k = φ(k)`, so
//! `η_{t_k} = η_k` (§3). Gradient-dependent schedules (§6.3's normalisation, plain normalised
//! SGD) are evaluated at the current state: `η_k` at `‖∇f(x_k)‖`, `η_t` at `‖∇f(X_t)‖`.
//! For SDE (B) with a time-dependent schedule the drift gains `(η/2) η̇_t m` (§5.1), hence
//! [`LearningRate::eta_t_dot`]: the time derivative **at fixed state** (zero unless `η_t`
//! depends on `t` explicitly).
//!
//! Each schedule is one file of this folder: its type, its [`LearningRate`] implementation, its
//! configuration spec and its own tests. The [`registry!`](crate::registry) list below makes
//! [`Schedule`] (the runtime enum, with every [`LearningRate`] method dispatched statically) and
//! [`ScheduleSpec`] (the `[schedule]` section) from one line per schedule.

use crate::error::ModelError;
use crate::loss::Smoothness;

pub mod constant;
pub mod normalized;
pub mod normalized_sgd;
pub mod poly;
pub mod poly_time;

pub use constant::{Constant, ConstantSpec};
pub use normalized::{NormalizationInputs, Normalized, NormalizedSpec};
pub use normalized_sgd::{NormalizedSgd, NormalizedSgdSpec};
pub use poly::{PolySpec, Polynomial};
pub use poly_time::{PolyTime, PolyTimeSpec};

crate::registry! {
    family "schedule", context Smoothness, inherent;
    kinds {
        Constant(Constant) = "constant" ConstantSpec,
        Poly(Polynomial) = "poly" PolySpec,
        PolyTime(PolyTime) = "poly_time" PolyTimeSpec,
        Normalized(Normalized) = "normalized" NormalizedSpec,
        NormalizedSgd(NormalizedSgd) = "normalized_sgd" NormalizedSgdSpec,
    }
    /// A learning-rate schedule: `η_k`, `η_t` and the derivatives the SDE models need. Every method
    /// is also an inherent method of [`Schedule`].
    pub trait LearningRate {
        /// Checks the constants (everything finite, in range). Every valid schedule is finite and
        /// `> 0` for every finite gradient norm (the polynomial one until `(k+1)^{−power}`
        /// underflows).
        fn validate(&self) -> Result<(), ModelError> {
            Ok(())
        }

        /// The continuous multiplier `η_t = φ(t/η)` (base learning rate `eta > 0`), at gradient
        /// norm `grad_norm`. `η_{kη} = η_k`.
        fn eta_t(&self, t: f64, eta: f64, grad_norm: f64) -> f64;

        /// The multiplier `η_k` at iteration `k`, base learning rate `eta` (iteration `k` sits at
        /// SDE time `kη`, which schedules on SDE time need) and gradient norm `‖∇f(x_k)‖ =
        /// grad_norm`. Override it where `η_t(kη)` would round differently from the exact `φ(k)`.
        #[inline]
        fn eta_k(&self, k: u64, eta: f64, grad_norm: f64) -> f64 {
            self.eta_t(k as f64 * eta, eta, grad_norm)
        }

        /// `∂η_t/∂t` at fixed state (zero for schedules that depend on `t` only through `X_t`).
        #[inline]
        fn eta_t_dot(&self, _t: f64, _eta: f64, _grad_norm: f64) -> f64 {
            0.0
        }

        /// `∂η_t/∂‖g‖` at fixed `t`: non-zero only for the gradient-normalized schedules (the
        /// `∇_x η_t · m` term of the SDE models (B) and (C), see [`crate::sde`]).
        #[inline]
        fn grad_norm_derivative(&self, _t: f64, _eta: f64, _grad_norm: f64) -> f64 {
            0.0
        }

        /// Whether `η_t` is smooth on the SDE time scale, with derivatives bounded independently
        /// of `η`: then the second-order model (B) keeps weak order 2. An iteration-indexed decay
        /// `η_k = φ(k)` read as `η_t = φ(t/η)` is not (`η̇_t = O(1/η)`): (B) is then weak order 1
        /// (MATH.md §5.1, measured slope 1.01–1.08).
        fn smooth_on_sde_time(&self) -> bool {
            true
        }

        /// `true` for the normalised schedules, whose `η_k` depends on `‖∇f‖`.
        fn depends_on_gradient(&self) -> bool {
            false
        }

        /// A short formula for reports.
        fn label(&self) -> String;
    }
    /// A scheduler. Build it with the validated constructors ([`Schedule::polynomial`],
    /// [`Schedule::normalized`], …), or check a hand-built value with [`Schedule::validate`].
    /// Every [`LearningRate`] method is also an inherent method.
    #[derive(Debug, Clone, Copy, PartialEq)]
    pub enum Schedule;
    /// `[schedule]`: the multiplier `η_k` of the base learning rate, built by
    /// [`ScheduleSpec::build`] (the context is the loss's (L0, L1) constants, the defaults of the
    /// normalized schedule's `l0`, `l1`).
    pub enum ScheduleSpec;
}

impl Default for ScheduleSpec {
    fn default() -> Self {
        ScheduleSpec::Constant(ConstantSpec {})
    }
}

/// `s` as a [`Schedule`] once its constants pass [`LearningRate::validate`]: the body of every
/// validated constructor.
fn checked(s: impl Into<Schedule>) -> Result<Schedule, ModelError> {
    let s = s.into();
    s.validate()?;
    Ok(s)
}
