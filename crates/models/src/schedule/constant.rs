//! `kind = "constant"`: `η_k = 1`.

use super::{LearningRate, Schedule};
use crate::error::ModelError;
use crate::kind::{KeyDoc, KindSpec};
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

/// `kind = "constant"`.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConstantSpec {}

impl KindSpec for ConstantSpec {
    type Output = Constant;
    type Context = Smoothness;
    const SUMMARY: &'static str = "eta_k = 1";
    const KEYS: &'static [KeyDoc] = &[];
    fn build(&self, _: &Smoothness) -> Result<Constant, ModelError> {
        Ok(Constant)
    }
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
