//! The weak order each SDE model is expected to reach against its discrete method, as a function
//! of the model, the schedule and the method's covariance (MATH.md §5.1), with the reason.
//!
//! | model | expected order | when it drops, and why |
//! |---|---|---|
//! | (A) first order | 1 | — |
//! | (C) stability-aware | 1 | — (the curvature term has the wrong sign for order 2) |
//! | (B) second order | 2 | 1 under an iteration-indexed schedule `η_k = φ(k)` read as `η_t = φ(t/η)` (it varies on the scale of one step, `η̇_t = O(1/η)`); 1 when the SDE's covariance is an approximation (QSGD's plug-in `Σ_C` with noise): an O(1) error in `C` costs the O(η) diffusion correction order 2 needs |
//!
//! The integrator is not part of this: a study measures its bias and refines the substeps until
//! the bias is negligible, so the scheme changes the cost, not the expected order.

use crate::compress::CompressorKind;
use crate::loss::Loss;
use crate::method::{Agent, GradientMethod};
use crate::noise::GradientNoise;
use crate::optimizer::Optimizer;
use crate::sde::SdeModel;
use serde::Serialize;

/// An expected weak order and why.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ExpectedOrder {
    pub order: f64,
    /// Why the order is what it is (one sentence, for reports).
    pub reason: String,
}

/// Whether the agents' compressed-gradient covariance `Σ_C` is exact: `false` when an agent
/// uses QSGD with gradient noise (its `Σ_C` is a Gaussian-smoothed plug-in approximation; exact
/// without noise).
pub fn covariance_is_exact_for(agents: &[Agent]) -> bool {
    agents.iter().all(|a| {
        if !matches!(a.compressor, CompressorKind::Qsgd(_)) {
            return true;
        }
        let d = a.noise.dim();
        let mut var = vec![0.0; d];
        let mut quiet_at =
            |g: &[f64]| a.noise.variance(g, &mut var) && var.iter().all(|v| *v == 0.0);
        quiet_at(&vec![0.0; d]) && quiet_at(&vec![1.0; d])
    })
}

/// The weak order `model` approximates the discrete method `opt` with (MATH.md §5.1).
pub fn expected_weak_order<L: Loss, M: GradientMethod>(
    opt: &Optimizer<L, M>,
    model: SdeModel,
) -> ExpectedOrder {
    match model {
        SdeModel::FirstOrder => ExpectedOrder {
            order: 1.0,
            reason: "first-order model (A): weak order 1".into(),
        },
        SdeModel::Stability => ExpectedOrder {
            order: 1.0,
            reason: "stability-aware model (C): weak order 1 (its curvature term has the opposite sign of (B)'s)".into(),
        },
        SdeModel::SecondOrder => {
            if !opt.schedule().smooth_on_sde_time() {
                ExpectedOrder {
                    order: 1.0,
                    reason: format!(
                        "second-order model (B) under the iteration-indexed schedule {}: η_t = φ(t/η) varies on the scale of one step (η̇_t = O(1/η)), so (B) is weak order 1 (MATH.md §5.1); use schedule.kind = \"poly_time\" for a schedule on SDE time",
                        opt.schedule().label()
                    ),
                }
            } else if !opt.method().covariance_is_exact() {
                ExpectedOrder {
                    order: 1.0,
                    reason: "second-order model (B) with an approximate covariance (QSGD's plug-in Σ_C under gradient noise): an O(1) error in C makes (B) weak order 1 (MATH.md §5.1)".into(),
                }
            } else {
                ExpectedOrder {
                    order: 2.0,
                    reason: "second-order model (B): weak order 2 (schedule smooth on SDE time, exact covariance)".into(),
                }
            }
        }
    }
}
