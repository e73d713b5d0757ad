//! Closed-form expectations, where they exist, to replace Monte Carlo on one side of a
//! comparison (MATH.md §7).

use crate::observable::Observable;
use models::sde::SdeModel;

/// Exact `E g(x_k)` of the discrete process and `E g(X_t)` of an SDE model, when known.
pub trait ExactMoments: Sync {
    fn discrete_mean(&self, obs: Observable, k: usize, eta: f64) -> Option<f64>;
    fn sde_mean(&self, model: SdeModel, obs: Observable, t: f64, eta: f64) -> Option<f64>;
}

/// DSGD on `f = ½ Σ λ_j x_j²` with Gaussian noise of constant covariance and a constant
/// schedule. Each coordinate is an independent linear Gaussian recursion
/// `x_{k+1} = (1 − ηλ) x_k − η c ζ_k` (`c²` the variance of the agents' mean noise), and each
/// SDE model an Ornstein–Uhlenbeck process `dX = −a X dt + sqrt(η) c dW` with `a = λ` (A),
/// `λ(1 + ηλ/2)` (B) or `λ(1 − ηλ/2)` (C) (MATH.md §7):
///
/// - `E x_k = (1−ηλ)^k x0`, `Var x_k = η² c² (1 − (1−ηλ)^{2k}) / (1 − (1−ηλ)²)`;
/// - `E X_t = e^{−at} x0`, `Var X_t = η c² (1 − e^{−2at}) / (2a)`.
///
/// `E f`, `E Σx_j` and `E Σx_j²` follow; `E ‖∇f‖` has no closed form and returns `None`.
#[derive(Clone, Debug)]
pub struct QuadraticDsgdMoments {
    pub lambda: Vec<f64>,
    /// Per-coordinate variance of the mean noise `(1/N) Σ_i Z_i`.
    pub noise_var: Vec<f64>,
    pub x0: Vec<f64>,
}

impl QuadraticDsgdMoments {
    /// Per-coordinate (mean, variance) of the discrete chain after `k` iterations.
    pub fn discrete_moments(&self, j: usize, k: usize, eta: f64) -> (f64, f64) {
        let r = 1.0 - eta * self.lambda[j];
        let rk = r.powi(k as i32);
        let q = r * r;
        let var = if (1.0 - q).abs() < 1e-300 {
            eta * eta * self.noise_var[j] * k as f64
        } else {
            eta * eta * self.noise_var[j] * (1.0 - q.powi(k as i32)) / (1.0 - q)
        };
        (rk * self.x0[j], var)
    }

    /// Per-coordinate (mean, variance) of SDE `model` at time `t`.
    pub fn sde_moments(&self, model: SdeModel, j: usize, t: f64, eta: f64) -> (f64, f64) {
        let l = self.lambda[j];
        let a = match model {
            SdeModel::FirstOrder => l,
            SdeModel::SecondOrder => l * (1.0 + eta * l / 2.0),
            SdeModel::Stability => l * (1.0 - eta * l / 2.0),
        };
        let var = if a.abs() < 1e-300 {
            eta * self.noise_var[j] * t
        } else {
            // −expm1(−2at)/(2a) is (1 − e^{−2at})/(2a) without cancellation for small at.
            eta * self.noise_var[j] * (-(-2.0 * a * t).exp_m1()) / (2.0 * a)
        };
        ((-a * t).exp() * self.x0[j], var)
    }

    fn combine(&self, obs: Observable, moments: impl Fn(usize) -> (f64, f64)) -> Option<f64> {
        let d = self.lambda.len();
        let mut acc = 0.0;
        for j in 0..d {
            let (m, v) = moments(j);
            acc += match obs {
                Observable::Loss => 0.5 * self.lambda[j] * (m * m + v),
                Observable::X => m,
                Observable::XSq => m * m + v,
                Observable::GradNormSq => self.lambda[j] * self.lambda[j] * (m * m + v),
                Observable::GradNorm
                | Observable::TestLoss
                | Observable::TestAccuracy
                | Observable::DistanceFromX0 => return None,
            };
        }
        Some(acc)
    }
}

impl ExactMoments for QuadraticDsgdMoments {
    fn discrete_mean(&self, obs: Observable, k: usize, eta: f64) -> Option<f64> {
        self.combine(obs, |j| self.discrete_moments(j, k, eta))
    }
    fn sde_mean(&self, model: SdeModel, obs: Observable, t: f64, eta: f64) -> Option<f64> {
        self.combine(obs, |j| self.sde_moments(model, j, t, eta))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The two tables of MATH.md §7 ([CHECKED] there with an independent implementation):
    /// |E x_K − E X_T| without noise and |E x_K² − E X_T²| with λ = σ = x0 = T = 1.
    #[test]
    fn reproduces_math_section_7_tables() {
        let mean_table = [
            (0.1, [1.92e-2, 1.26e-3, 3.81e-2]),
            (0.05, [9.39e-3, 3.11e-4, 1.87e-2]),
            (0.025, [4.65e-3, 7.71e-5, 9.27e-3]),
            (0.0125, [2.31e-3, 1.92e-5, 4.62e-3]),
        ];
        let sq_table = [
            (0.1, [1.08e-2, 3.57e-3, 2.65e-2]),
            (0.05, [6.09e-3, 8.73e-4, 1.34e-2]),
            (0.025, [3.22e-3, 2.16e-4, 6.74e-3]),
            (0.0125, [1.65e-3, 5.37e-5, 3.38e-3]),
        ];
        let quiet = QuadraticDsgdMoments {
            lambda: vec![1.0],
            noise_var: vec![0.0],
            x0: vec![1.0],
        };
        let noisy = QuadraticDsgdMoments {
            noise_var: vec![1.0],
            ..quiet.clone()
        };
        for (m, model) in SdeModel::ALL.iter().enumerate() {
            for (eta, row) in mean_table {
                let k = (1.0f64 / eta).round() as usize;
                let e = (quiet.discrete_mean(Observable::X, k, eta).unwrap()
                    - quiet.sde_mean(*model, Observable::X, 1.0, eta).unwrap())
                .abs();
                // The table has three significant digits.
                assert!(
                    (e - row[m]).abs() < 0.006 * row[m],
                    "{model:?} {eta}: {e} vs {}",
                    row[m]
                );
            }
            for (eta, row) in sq_table {
                let k = (1.0f64 / eta).round() as usize;
                let e = (noisy.discrete_mean(Observable::XSq, k, eta).unwrap()
                    - noisy.sde_mean(*model, Observable::XSq, 1.0, eta).unwrap())
                .abs();
                assert!(
                    (e - row[m]).abs() < 0.006 * row[m],
                    "{model:?} {eta}: {e} vs {}",
                    row[m]
                );
            }
        }
    }
}
