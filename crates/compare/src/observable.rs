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
    /// `‖∇f(x)‖²`: the quantity the convergence bounds of MATH.md §6 are stated for.
    GradNormSq,
}

impl Observable {
    pub const ALL: [Observable; 5] = [
        Observable::Loss,
        Observable::X,
        Observable::XSq,
        Observable::GradNorm,
        Observable::GradNormSq,
    ];

    /// What `run.observables` defaults to (the four of CLI.md; `grad_norm_sq` is opt-in).
    pub const DEFAULT: [Observable; 4] = [
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
            Observable::GradNormSq => "grad_norm_sq",
        }
    }

    /// Human-readable label for plots.
    pub fn label(&self) -> &'static str {
        match self {
            Observable::Loss => "f(x)",
            Observable::X => "Σ x_j",
            Observable::XSq => "Σ x_j²",
            Observable::GradNorm => "‖∇f(x)‖",
            Observable::GradNormSq => "‖∇f(x)‖²",
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
    let need_grad = list
        .iter()
        .any(|o| matches!(o, Observable::GradNorm | Observable::GradNormSq));
    if need_grad {
        loss.gradient(x, g);
    }
    for (o, obs) in out.iter_mut().zip(list) {
        *o = match obs {
            Observable::Loss => f,
            Observable::X => x.iter().sum(),
            Observable::XSq => x.iter().map(|v| v * v).sum(),
            Observable::GradNorm => g.iter().map(|v| v * v).sum::<f64>().sqrt(),
            Observable::GradNormSq => g.iter().map(|v| v * v).sum::<f64>(),
        };
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use models::loss::Quartic;

    /// On f = Σ c_j x_j⁴/4, ∇f_j = c_j x_j³: ‖∇f‖² by hand, and the square of `grad_norm`.
    #[test]
    fn grad_norm_sq_is_the_squared_gradient_norm() {
        let f = Quartic::new(vec![1.0, 2.0]).unwrap();
        let x = [1.5, -0.5];
        let by_hand = (1.5f64.powi(3)).powi(2) + (2.0 * (-0.5f64).powi(3)).powi(2);
        let mut g = [0.0; 2];
        let mut out = [0.0; 2];
        let list = [Observable::GradNormSq, Observable::GradNorm];
        evaluate(&f, &list, &x, &mut g, &mut out);
        assert!((out[0] - by_hand).abs() < 1e-12 * by_hand, "{out:?}");
        assert!((out[1] * out[1] - out[0]).abs() < 1e-12 * by_hand);
        // Alone in the list, the gradient must still be computed.
        let mut g = [f64::NAN; 2];
        let mut one = [0.0];
        evaluate(&f, &[Observable::GradNormSq], &x, &mut g, &mut one);
        assert!((one[0] - by_hand).abs() < 1e-12 * by_hand);
    }
}
