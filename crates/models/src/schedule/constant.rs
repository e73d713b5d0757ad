//! `kind = "constant"`: `η_k = 1`.

use super::{LearningRate, Schedule};
use crate::loss::Smoothness;

/// `η_k = 1`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Constant;

impl LearningRate for Constant {
    #[inline]
    fn eta_t(&self, _t: f64, _eta: f64, _grad_norm: f64) -> f64 {
        1.0
    }

    fn label(&self) -> String {
        "constant".into()
    }
}

impl Schedule {
    /// `η_k = 1`.
    pub fn constant() -> Schedule {
        Schedule::Constant(Constant)
    }
}

crate::kind_spec! {
    /// `kind = "constant"`.
    #[derive(Copy, Default)]
    pub struct ConstantSpec: KindSpec<Output = Constant, Context = Smoothness> {}
    summary "eta_k = 1";
    build(self, _) { Ok(Constant) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_everywhere() {
        let s = Schedule::constant();
        for (k, g) in [(0u64, 0.0), (17, 3.0), (u64::MAX / 2, 1e300)] {
            assert_eq!(s.eta_k(k, 0.1, g), 1.0);
            assert_eq!(s.eta_t(k as f64, 0.1, g), 1.0);
            assert_eq!(s.eta_t_dot(k as f64, 0.1, g), 0.0);
        }
        assert!(s.smooth_on_sde_time() && !s.depends_on_gradient());
        assert_eq!(s.label(), "constant");
    }
}
