//! Observables `g(x)` whose expectations the comparisons track.

use models::loss::Loss;
use serde::{Deserialize, Serialize};

/// One line per observable writes [`Observable`]: its variant (serialized by the config name),
/// `ALL`, `name`, `label` (plots) and `summary` (`sdelab list`). Its value is one arm of
/// [`evaluate_from`].
macro_rules! observable_registry {
    ($($(#[$doc:meta])* $variant:ident = $name:literal, $label:literal, $summary:literal;)+) => {
        /// A test function `g` of the state (CLI.md: `x` and `x_sq` are summed over coordinates).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum Observable {
            $($(#[$doc])* #[serde(rename = $name)] $variant,)+
        }

        impl Observable {
            pub const ALL: &'static [Observable] = &[$(Observable::$variant,)+];

            /// The name used in configuration files and results (the serialized form).
            pub fn name(&self) -> &'static str {
                match self {
                    $(Observable::$variant => $name,)+
                }
            }

            /// Human-readable label for plots.
            pub fn label(&self) -> &'static str {
                match self {
                    $(Observable::$variant => $label,)+
                }
            }

            /// The formula, for `sdelab list`.
            pub fn summary(&self) -> &'static str {
                match self {
                    $(Observable::$variant => $summary,)+
                }
            }
        }
    };
}

observable_registry! {
    /// `f(x)`.
    Loss = "loss", "f(x)", "f(x)";
    /// `Σ_j x_j`.
    X = "x", "Σ x_j", "sum_j x_j";
    /// `Σ_j x_j²`.
    XSq = "x_sq", "Σ x_j²", "sum_j x_j^2";
    /// `‖∇f(x)‖`.
    GradNorm = "grad_norm", "‖∇f(x)‖", "|grad f(x)|_2";
    /// `‖∇f(x)‖²`: the quantity the convergence bounds of MATH.md §6 are stated for.
    GradNormSq = "grad_norm_sq", "‖∇f(x)‖²", "|grad f(x)|_2^2 (the quantity the bounds are stated for)";
    /// Mean loss on the held-out rows of a data-set loss ([`Loss::test_loss`]); `NaN` (so the
    /// path counts as diverged) for losses without data.
    TestLoss = "test_loss", "test loss", "mean loss on the held-out rows (data-set losses)";
    /// Fraction of held-out rows classified correctly ([`Loss::test_accuracy`]); `NaN` for
    /// losses without class data.
    TestAccuracy = "test_accuracy", "test accuracy", "held-out classification accuracy (class data)";
    /// `‖x − x0‖₂`, the distance travelled from the start (`NaN` when no `x0` is passed).
    DistanceFromX0 = "distance_from_x0", "‖x − x0‖", "|x - x0|_2";
}

impl Observable {
    /// What `run.observables` defaults to (the four of CLI.md; `grad_norm_sq` is opt-in).
    pub const DEFAULT: [Observable; 4] = [
        Observable::Loss,
        Observable::X,
        Observable::XSq,
        Observable::GradNorm,
    ];
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
