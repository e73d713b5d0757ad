//! `kind = "poly"`: the iteration-indexed decay `η_k = (k+1)^{−power}`.

use super::{checked, LearningRate, Schedule};
use crate::error::{require_nonnegative, ModelError};
use crate::loss::Smoothness;

/// `η_k = (k+1)^{−power}`, `η_t = (t/η + 1)^{−power}`. `power = 1/2` is P1v2's Robbins–Monro
/// choice `1/√(k+1)` (§3, §8.2).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Polynomial {
    /// Decay exponent, `≥ 0`.
    pub power: f64,
}

impl LearningRate for Polynomial {
    fn validate(&self) -> Result<(), ModelError> {
        require_nonnegative("power", self.power).map(|_| ())
    }

    #[inline]
    fn eta_t(&self, t: f64, eta: f64, _grad_norm: f64) -> f64 {
        (t / eta + 1.0).powf(-self.power)
    }

    /// `φ(k)` itself: `(kη)/η` need not round back to `k`.
    #[inline]
    fn eta_k(&self, k: u64, _eta: f64, _grad_norm: f64) -> f64 {
        ((k as f64) + 1.0).powf(-self.power)
    }

    /// `−(power/η)(t/η + 1)^{−power−1}`.
    #[inline]
    fn eta_t_dot(&self, t: f64, eta: f64, _grad_norm: f64) -> f64 {
        let power = self.power;
        if power != 0.0 {
            -(power / eta) * (t / eta + 1.0).powf(-power - 1.0)
        } else {
            0.0
        }
    }

    fn smooth_on_sde_time(&self) -> bool {
        self.power == 0.0
    }

    fn label(&self) -> String {
        format!("(k+1)^-{}", self.power)
    }
}

impl Schedule {
    /// `η_k = (k+1)^{−power}`, `power ≥ 0` finite.
    pub fn polynomial(power: f64) -> Result<Schedule, ModelError> {
        checked(Polynomial { power })
    }
}

crate::kind_spec! {
    /// `kind = "poly"`.
    #[derive(Copy)]
    pub struct PolySpec: KindSpec<Output = Schedule, Context = Smoothness> {
        /// Decay exponent.
        pub power: f64 => "number >= 0, required: decay exponent (0.5 is P1v2's Robbins-Monro choice)",
    }
    summary "power >= 0: eta_k = (k+1)^-power (iteration-indexed: (B) is weak order 1 under it)";
    build(self, _) { Schedule::polynomial(self.power) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn robbins_monro_values() {
        let rm = Schedule::polynomial(0.5).unwrap();
        assert_eq!(rm.eta_k(0, 0.1, 9.0), 1.0);
        assert_eq!(rm.eta_k(3, 0.1, 9.0), 0.5);
        assert!((rm.eta_k(99, 0.1, 0.0) - 0.1).abs() <= 1e-15);
        assert!((rm.eta_t(0.3, 0.1, 0.0) - 0.5).abs() <= 1e-15);
        // η_t = (t/η+1)^{-1/2}, η̇ = −(1/(2η))(t/η+1)^{-3/2}; at t = 3η: −1/(16η).
        assert!((rm.eta_t_dot(0.3, 0.1, 0.0) + 1.0 / 1.6).abs() <= 1e-14);
        assert!(!rm.smooth_on_sde_time() && !rm.depends_on_gradient());
        assert_eq!(rm.label(), "(k+1)^-0.5");
        // power = 0 is the constant schedule, smooth on SDE time.
        let flat = Schedule::polynomial(0.0).unwrap();
        assert!(flat.smooth_on_sde_time());
        assert_eq!(flat.eta_t_dot(1.0, 0.1, 2.0), 0.0);
    }

    #[test]
    fn invalid_power_is_rejected() {
        for p in [-0.5, f64::NAN, f64::INFINITY] {
            assert_eq!(Schedule::polynomial(p).unwrap_err().name(), "power");
        }
        assert!(Schedule::Poly(Polynomial { power: -1.0 })
            .validate()
            .is_err());
    }
}
