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
    /// Mean loss on the held-out rows of a data-set loss ([`Loss::test_loss`]); `NaN` (so the
    /// path counts as diverged) for losses without data.
    TestLoss,
    /// Fraction of held-out rows classified correctly ([`Loss::test_accuracy`]); `NaN` for
    /// losses without class data.
    TestAccuracy,
    /// `‖x − x0‖₂`, the distance travelled from the start (`NaN` when no `x0` is passed).
    DistanceFromX0,
}

impl Observable {
    pub const ALL: [Observable; 8] = [
        Observable::Loss,
        Observable::X,
        Observable::XSq,
        Observable::GradNorm,
        Observable::GradNormSq,
        Observable::TestLoss,
        Observable::TestAccuracy,
        Observable::DistanceFromX0,
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
            Observable::TestLoss => "test_loss",
            Observable::TestAccuracy => "test_accuracy",
            Observable::DistanceFromX0 => "distance_from_x0",
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
            Observable::TestLoss => "test loss",
            Observable::TestAccuracy => "test accuracy",
            Observable::DistanceFromX0 => "‖x − x0‖",
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
    evaluate_from(loss, list, &[], x, g, out)
}

/// [`evaluate`] with the start `x0` of the path, which [`Observable::DistanceFromX0`] needs.
#[inline]
pub fn evaluate_from<L: Loss + ?Sized>(
    loss: &L,
    list: &[Observable],
    x0: &[f64],
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
            Observable::TestLoss => loss.test_loss(x).unwrap_or(f64::NAN),
            Observable::TestAccuracy => loss.test_accuracy(x).unwrap_or(f64::NAN),
            Observable::DistanceFromX0 if x0.len() == x.len() => x
                .iter()
                .zip(x0)
                .map(|(a, b)| (a - b) * (a - b))
                .sum::<f64>()
                .sqrt(),
            Observable::DistanceFromX0 => f64::NAN,
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

    /// The network observables against the loss's own methods and a hand-computed distance.
    #[test]
    fn network_observables() {
        use models::data::DatasetName;
        use models::mlp::{Mlp, MlpSpec};
        let net = Mlp::new(MlpSpec::logistic(DatasetName::Iris, 1)).unwrap();
        let x0 = net.x0().to_vec();
        let x: Vec<f64> = x0.iter().map(|v| v + 0.5).collect();
        let list = [
            Observable::TestLoss,
            Observable::TestAccuracy,
            Observable::DistanceFromX0,
        ];
        let mut g = vec![0.0; x.len()];
        let mut out = [0.0; 3];
        evaluate_from(&net, &list, &x0, &x, &mut g, &mut out);
        assert_eq!(Some(out[0]), net.test_loss(&x));
        assert_eq!(Some(out[1]), net.test_accuracy(&x));
        let want = 0.5 * (x.len() as f64).sqrt();
        assert!((out[2] - want).abs() < 1e-12, "{} vs {want}", out[2]);
        // Without data (or without x0) the values are NaN, so such paths count as diverged.
        let q = Quartic::new(vec![1.0]).unwrap();
        let mut g = [0.0];
        let mut out = [0.0; 3];
        evaluate(&q, &list, &[1.0], &mut g, &mut out);
        assert!(out.iter().all(|v| v.is_nan()));
    }
}
