//! `kind = "poly_time"`: a decay on SDE time, `η_t = (1 + t/t0)^{−power}`.

use super::{checked, LearningRate, Schedule};
use crate::error::{require_nonnegative, require_positive, ModelError};
use crate::loss::Smoothness;

/// A schedule defined on SDE time, independent of the base learning rate:
/// `η_t = (1 + t/t0)^{−power}`, and iteration `k` (at `t_k = kη`) takes `η_k = η_{t_k}`.
/// Unlike [`super::Polynomial`], whose `η_t = φ(t/η)` varies on the scale of one step
/// (`η̇_t = O(1/η)`), this one is smooth on the SDE time scale, so the second-order model (B)
/// keeps weak order 2 (MATH.md §5.1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PolyTime {
    /// Decay exponent, `≥ 0`.
    pub power: f64,
    /// Time scale `t0 > 0` in SDE time.
    pub t0: f64,
}

impl LearningRate for PolyTime {
    fn validate(&self) -> Result<(), ModelError> {
        require_nonnegative("power", self.power)?;
        require_positive("t0", self.t0).map(|_| ())
    }

    #[inline]
    fn eta_t(&self, t: f64, _eta: f64, _grad_norm: f64) -> f64 {
        (1.0 + t / self.t0).powf(-self.power)
    }

    /// `−(power/t0)(1 + t/t0)^{−power−1}`.
    #[inline]
    fn eta_t_dot(&self, t: f64, _eta: f64, _grad_norm: f64) -> f64 {
        let PolyTime { power, t0 } = *self;
        if power != 0.0 {
            -(power / t0) * (1.0 + t / t0).powf(-power - 1.0)
        } else {
            0.0
        }
    }

    fn label(&self) -> String {
        format!("(1 + t/{})^-{}", self.t0, self.power)
    }
}

impl Schedule {
    /// `η_t = (1 + t/t0)^{−power}` on SDE time (see [`PolyTime`]).
    pub fn poly_time(power: f64, t0: f64) -> Result<Schedule, ModelError> {
        checked(PolyTime { power, t0 })
    }
}

crate::kind_spec! {
    /// `kind = "poly_time"`.
    #[derive(Copy)]
    pub struct PolyTimeSpec: KindSpec<Output = Schedule, Context = Smoothness> {
        /// Decay exponent.
        pub power: f64 => "number >= 0, required: decay exponent",
        /// Time scale in SDE time.
        pub t0: f64 => "number > 0, required: the time scale in SDE time",
    }
    summary "power >= 0, t0 > 0: eta_t = (1 + t/t0)^-power on SDE time, eta_k = eta_{k eta} ((B) keeps weak order 2)";
    build(self, _) { Schedule::poly_time(self.power, self.t0) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// p = 1/2, t0 = 1/4, at t = 3/4: η_t = 4^{-1/2} = 1/2 and
    /// η̇ = −(p/t0)(1 + t/t0)^{-3/2} = −2 · 4^{-3/2} = −1/4, for every η.
    #[test]
    fn values_do_not_depend_on_the_base_rate() {
        let pt = Schedule::poly_time(0.5, 0.25).unwrap();
        for eta in [0.1, 0.025, 1e-4] {
            assert!((pt.eta_t(0.75, eta, 0.0) - 0.5).abs() <= 1e-15);
            assert!((pt.eta_t_dot(0.75, eta, 0.0) + 0.25).abs() <= 1e-15);
        }
        assert!((pt.eta_k(30, 0.025, 0.0) - 0.5).abs() <= 1e-15);
        assert!(pt.smooth_on_sde_time() && !pt.depends_on_gradient());
        assert_eq!(pt.label(), "(1 + t/0.25)^-0.5");
    }

    #[test]
    fn invalid_constants_are_rejected() {
        assert_eq!(Schedule::poly_time(-0.5, 1.0).unwrap_err().name(), "power");
        assert_eq!(Schedule::poly_time(0.5, 0.0).unwrap_err().name(), "t0");
        assert_eq!(Schedule::poly_time(0.5, f64::NAN).unwrap_err().name(), "t0");
    }
}
