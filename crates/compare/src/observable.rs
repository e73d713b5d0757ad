//! Observables `g(x)` whose expectations the comparisons track.

use models::loss::Loss;
use serde::{Deserialize, Serialize};

/// A test function `g` of the state (CLI.md: `x` and `x_sq` are summed over coordinates).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Observable {
    /// `f(x)`.
    Loss,
    /// `Σ_j x_j`.
    X,
    /// `Σ_j x_j²`.
    XSq,
    /// `‖∇f(x)‖`.
    GradNorm,
}

impl Observable {
    pub const ALL: [Observable; 4] = [
        Observable::Loss,
        Observable::X,
        Observable::XSq,
        Observable::GradNorm,
    ];

    pub fn name(&self) -> &'static str {
        match self {
            Observable::Loss => "loss",
            Observable::X => "x",
            Observable::XSq => "x_sq",
            Observable::GradNorm => "grad_norm",
        }
    }

    /// Human-readable label for plots.
    pub fn label(&self) -> &'static str {
        match self {
            Observable::Loss => "f(x)",
            Observable::X => "Σ x_j",
            Observable::XSq => "Σ x_j²",
            Observable::GradNorm => "‖∇f(x)‖",
        }
    }
}

/// Evaluates a list of observables at `x`; `g` is a gradient buffer of length `d`.
/// Returns `f(x)`, which the divergence rule needs.
#[inline]
pub fn evaluate<L: Loss + ?Sized>(
    loss: &L,
    list: &[Observable],
    x: &[f64],
    g: &mut [f64],
    out: &mut [f64],
) -> f64 {
    let f = loss.value(x);
    let need_grad = list.contains(&Observable::GradNorm);
    if need_grad {
        loss.gradient(x, g);
    }
    for (o, obs) in out.iter_mut().zip(list) {
        *o = match obs {
            Observable::Loss => f,
            Observable::X => x.iter().sum(),
            Observable::XSq => x.iter().map(|v| v * v).sum(),
            Observable::GradNorm => g.iter().map(|v| v * v).sum::<f64>().sqrt(),
        };
    }
    f
}
