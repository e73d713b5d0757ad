//! `kind = "normalized_sgd"`: plain normalised SGD, `η_k = c / max(‖∇f‖, δ)`.

use super::{checked, LearningRate, Schedule};
use crate::error::{require_positive, ModelError};
use crate::loss::Smoothness;

/// Plain normalised SGD, the baseline P1v2 compares against (§3, §8.2):
/// `η_k = c / max(‖∇f‖, δ)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NormalizedSgd {
    /// Scale `c > 0`.
    pub c: f64,
    /// Floor `δ > 0` on the gradient norm (keeps the step finite at stationary points).
    pub delta: f64,
}

impl LearningRate for NormalizedSgd {
    fn validate(&self) -> Result<(), ModelError> {
        require_positive("c", self.c)?;
        require_positive("delta", self.delta)?;
        Ok(())
    }

    #[inline]
    fn eta_t(&self, _t: f64, _eta: f64, grad_norm: f64) -> f64 {
        self.c / grad_norm.max(self.delta)
    }

    /// `−c/n²` above the floor, 0 below it (where `η` is constant).
    #[inline]
    fn grad_norm_derivative(&self, _t: f64, _eta: f64, grad_norm: f64) -> f64 {
        if grad_norm > self.delta {
            -self.c / (grad_norm * grad_norm)
        } else {
            0.0
        }
    }

    fn depends_on_gradient(&self) -> bool {
        true
    }

    fn label(&self) -> String {
        format!("{} / max(‖∇f‖, {})", self.c, self.delta)
    }
}

impl Schedule {
    /// Plain normalised SGD `c / max(‖∇f‖, δ)`, `c > 0`, `δ > 0`.
    pub fn normalized_sgd(c: f64, delta: f64) -> Result<Schedule, ModelError> {
        checked(NormalizedSgd { c, delta })
    }
}

crate::kind_spec! {
    /// `kind = "normalized_sgd"`.
    #[derive(Copy)]
    pub struct NormalizedSgdSpec: KindSpec<Output = Schedule, Context = Smoothness> {
        /// Scale.
        pub c: f64 => "number > 0, required",
        /// Floor on the gradient norm.
        pub delta: f64 => "number > 0, required: floor on the gradient norm (keeps the step finite at a stationary point)",
    }
    summary "c, delta: eta_k = c / max(|grad f|, delta)";
    build(self, _) { Schedule::normalized_sgd(self.c, self.delta) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values() {
        let s = Schedule::normalized_sgd(0.1, 0.01).unwrap();
        assert!((s.eta_k(0, 0.1, 0.5) - 0.2).abs() <= 1e-16);
        assert!((s.eta_k(0, 0.1, 1e-3) - 10.0).abs() <= 1e-14);
        assert!((s.eta_t(1.0, 0.1, 0.0) - 10.0).abs() <= 1e-14);
        assert!(s.depends_on_gradient() && s.smooth_on_sde_time());
        // d(c/n)/dn = −c/n² above the floor: −0.1/0.25 at n = 0.5.
        assert!((s.grad_norm_derivative(0.0, 0.1, 0.5) + 0.4).abs() <= 1e-16);
        assert_eq!(s.grad_norm_derivative(0.0, 0.1, 1e-3), 0.0);
        assert_eq!(s.label(), "0.1 / max(‖∇f‖, 0.01)");
    }

    #[test]
    fn invalid_constants_are_rejected() {
        assert_eq!(
            Schedule::normalized_sgd(1.0, 0.0).unwrap_err().name(),
            "delta"
        );
        assert_eq!(Schedule::normalized_sgd(-1.0, 0.1).unwrap_err().name(), "c");
        let hand_built = Schedule::NormalizedSgd(NormalizedSgd {
            c: 1.0,
            delta: f64::NAN,
        });
        assert!(hand_built.validate().is_err());
    }
}
