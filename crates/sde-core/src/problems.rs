//! A library of SDEs with known answers, for convergence tests, benchmarks and sanity checks
//! (after Julia's DiffEqProblemLibrary).
//!
//! Every problem is a type implementing [`Sde`] (with [`Sde::diffusion_derivative`] supplied, so
//! Milstein can use its exact correction), plus closed forms:
//!
//! | problem | `d`, noise | [`ExactSolution`] (a function of `W_t`) | [`Moments`] |
//! |---|---|---|---|
//! | [`GeometricBrownianMotion`] `dX = μX dt + σX dW` | 1, scalar | yes | mean, `E X^p`, quantiles |
//! | [`DiagonalLinear`] `dX_i = a_i X_i dt + b_i X_i dW_i` | `d`, diagonal | yes | mean, `E X_i^p` |
//! | [`OrnsteinUhlenbeck`] `dX = −Θ(X − μ) dt + Σ dW` | `d`, additive `d × m` | no (path-dependent) | mean, covariance, stationary covariance |
//! | [`LinearSde`] `dX = AX dt + Σ_j B_j X dW_j` | `d`, general `m` | when `A`, `B_j` commute | mean `e^{At} x0`, `E[X Xᵀ]` |
//! | [`TimeDependentLinear`] `dX = (a₀ + a₁ sin t) X dt + (b₀ + b₁ cos t) X dW` | 1, scalar | when `b₁ = 0` | mean, `E X^p` |
//!
//! [`LinearSde::commutative_2d`] and [`LinearSde::noncommutative_2d`] are ready-made 2-D
//! instances with commuting and non-commuting noise matrices. Every closed form is for `X_0 = x0`
//! at time `0`; integrate from `t0 = 0`.
//!
//! Matrices are nalgebra's [`DMatrix`] ([`Matrix`]); [`matrix`], [`diag`], [`outer`] and
//! [`MatrixExt`] are the few conveniences the closed forms and their tests need. Second moments
//! of linear SDEs solve linear ODEs, which nalgebra's matrix exponential (`DMatrix::exp`, Padé
//! approximation with scaling and squaring) integrates exactly: `vec E[X Xᵀ]` evolves by
//! `A ⊗ I + I ⊗ A + Σ_j B_j ⊗ B_j` (the same matrix for row- and column-major `vec`).
//!
//! ```
//! use sde_core::problems::{GeometricBrownianMotion, Moments};
//! use sde_core::*;
//! let gbm = GeometricBrownianMotion::new(0.05, 0.2).unwrap();
//! let solver = Solver::new(&gbm, EulerMaruyama, Gaussian).unwrap();
//! let grid = Grid::new(0.0, 1.0, 100).unwrap().save_final();
//! let stats = Ensemble::new(10_000, 3).unwrap().run(&SdePaths::new(solver, grid, &[1.0]).unwrap());
//! let s = stats.summary(1, 0);
//! assert!((s.mean - gbm.mean(1.0, &[1.0])[0]).abs() < 4.0 * s.std_err + 1e-3);
//! ```

use crate::error::SdeError;
use crate::noise::NoiseShape;
use crate::problem::Sde;
pub use nalgebra::{DMatrix, DVector};
use statrs::distribution::{ContinuousCDF, Normal};

/// The dense matrices of the closed forms.
pub type Matrix = DMatrix<f64>;

/// A matrix from rows of equal length: `matrix(&[[1.0, 2.0], [3.0, 4.0]])`.
pub fn matrix<const C: usize>(rows: &[[f64; C]]) -> Matrix {
    Matrix::from_row_iterator(rows.len(), C, rows.iter().flatten().copied())
}

/// A matrix from `rows × cols` values in row-major order; an error naming the data length when
/// it is not `rows · cols`.
pub fn matrix_from_row_major(rows: usize, cols: usize, data: &[f64]) -> Result<Matrix, SdeError> {
    SdeError::check_len("matrix data", rows * cols, data.len())?;
    Ok(Matrix::from_row_slice(rows, cols, data))
}

/// The diagonal matrix with diagonal `d`.
pub fn diag(d: &[f64]) -> Matrix {
    Matrix::from_diagonal(&DVector::from_column_slice(d))
}

/// `u vᵀ`.
pub fn outer(u: &[f64], v: &[f64]) -> Matrix {
    DVector::from_column_slice(u) * DVector::from_column_slice(v).transpose()
}

/// Products with plain slices, and the row-major layout of the diffusion buffers.
pub trait MatrixExt {
    /// `self · v`.
    fn mul_vec(&self, v: &[f64]) -> Vec<f64>;
    /// The entries in row-major order.
    fn row_major(&self) -> Vec<f64>;
}

impl MatrixExt for Matrix {
    fn mul_vec(&self, v: &[f64]) -> Vec<f64> {
        (self * DVector::from_column_slice(v)).as_slice().to_vec()
    }
    fn row_major(&self) -> Vec<f64> {
        self.transpose().as_slice().to_vec()
    }
}

/// Largest absolute column sum.
fn norm1(m: &Matrix) -> f64 {
    m.column_iter()
        .map(|c| c.iter().map(|v| v.abs()).sum::<f64>())
        .fold(0.0, f64::max)
}

// ---------------------------------------------------------------------------------------------
// Closed forms
// ---------------------------------------------------------------------------------------------

/// Problems whose solution at time `t` is a closed-form function of `W_t` alone.
pub trait ExactSolution {
    /// `X_t` for `X_0 = x0` on a Brownian path with `W_t = w` (`w` has the noise dimension
    /// `m`), or `None` when this instance has no such closed form.
    fn exact(&self, t: f64, x0: &[f64], w: &[f64]) -> Option<Vec<f64>>;
}

/// Problems with closed-form first and second moments.
pub trait Moments {
    /// `E X_t` for `X_0 = x0`.
    fn mean(&self, t: f64, x0: &[f64]) -> Vec<f64>;
    /// `E[X_t X_tᵀ]` (`d × d`) for `X_0 = x0`.
    fn second_moment(&self, t: f64, x0: &[f64]) -> Matrix;
    /// `Cov X_t = E[X_t X_tᵀ] − E X_t E X_tᵀ`.
    fn covariance(&self, t: f64, x0: &[f64]) -> Matrix {
        let m = self.mean(t, x0);
        self.second_moment(t, x0) - outer(&m, &m)
    }
}

fn check_finite(name: &'static str, v: f64) -> Result<(), SdeError> {
    if v.is_finite() {
        Ok(())
    } else {
        Err(SdeError::invalid(name, v, "must be finite"))
    }
}

fn check_all_finite(name: &'static str, v: &[f64]) -> Result<(), SdeError> {
    match v.iter().find(|x| !x.is_finite()) {
        Some(x) => Err(SdeError::invalid(name, x, "every entry must be finite")),
        None => Ok(()),
    }
}

/// The coefficients of a problem whose diffusion is linear in the state (`b(t, x)`, column by
/// column, is a matrix of `t` times `x`): the derivative of `b` in direction `v` is `b(t, v)`,
/// so `linear_sde!` writes the [`Sde`] impl, with the exact Milstein correction, once.
trait Linear: Sync {
    fn dim_and_noise(&self) -> (usize, NoiseShape);
    /// `out = a(t, x)`.
    fn linear_drift(&self, t: f64, x: &[f64], out: &mut [f64]);
    /// `out = b(t, x)`, linear in `x`.
    fn linear_diffusion(&self, t: f64, x: &[f64], out: &mut [f64]);
}

macro_rules! linear_sde {
    ($($ty:ty),+) => {$(
        impl Sde for $ty {
            fn dim(&self) -> usize {
                self.dim_and_noise().0
            }
            fn noise(&self) -> NoiseShape {
                self.dim_and_noise().1
            }
            #[inline]
            fn drift(&self, t: f64, x: &[f64], out: &mut [f64], _s: &mut [f64]) {
                self.linear_drift(t, x, out)
            }
            #[inline]
            fn diffusion(&self, t: f64, x: &[f64], out: &mut [f64], _s: &mut [f64]) {
                self.linear_diffusion(t, x, out)
            }
            #[inline]
            fn diffusion_derivative(
                &self,
                t: f64,
                _x: &[f64],
                v: &[f64],
                out: &mut [f64],
                _s: &mut [f64],
            ) -> bool {
                self.linear_diffusion(t, v, out);
                true
            }
            fn has_diffusion_derivative(&self) -> bool {
                true
            }
        }
    )+};
}

linear_sde!(
    GeometricBrownianMotion,
    DiagonalLinear,
    LinearSde,
    TimeDependentLinear
);

// ---------------------------------------------------------------------------------------------
// Geometric Brownian motion
// ---------------------------------------------------------------------------------------------

/// `dX = μ X dt + σ X dW` (scalar noise, `d = 1`):
/// `X_t = x0 exp((μ − σ²/2) t + σ W_t)`, `E X_t^p = x0^p exp(p μ t + p(p − 1) σ² t / 2)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GeometricBrownianMotion {
    pub mu: f64,
    pub sigma: f64,
}

impl GeometricBrownianMotion {
    pub fn new(mu: f64, sigma: f64) -> Result<Self, SdeError> {
        check_finite("mu", mu)?;
        check_finite("sigma", sigma)?;
        Ok(GeometricBrownianMotion { mu, sigma })
    }

    /// `E X_t^p` for `X_0 = x0` (any real `p` when `x0 > 0`).
    pub fn moment(&self, p: f64, t: f64, x0: f64) -> f64 {
        x0.powf(p) * (p * self.mu * t + 0.5 * p * (p - 1.0) * self.sigma * self.sigma * t).exp()
    }

    /// Quantile `q ∈ (0, 1)` of the lognormal law of `X_t` for `x0 > 0` (`sigma ≠ 0`, `t > 0`).
    pub fn quantile(&self, q: f64, t: f64, x0: f64) -> f64 {
        let z = Normal::standard().inverse_cdf(q);
        let s = self.sigma.abs();
        x0 * ((self.mu - 0.5 * s * s) * t + s * t.sqrt() * z).exp()
    }

    /// `P(X_t ≤ x)` for `x0 > 0` (`sigma ≠ 0`, `t > 0`).
    pub fn cdf(&self, x: f64, t: f64, x0: f64) -> f64 {
        if x <= 0.0 {
            return 0.0;
        }
        let s = self.sigma.abs();
        let z = ((x / x0).ln() - (self.mu - 0.5 * s * s) * t) / (s * t.sqrt());
        Normal::standard().cdf(z)
    }
}

impl Linear for GeometricBrownianMotion {
    fn dim_and_noise(&self) -> (usize, NoiseShape) {
        (1, NoiseShape::Scalar)
    }
    #[inline]
    fn linear_drift(&self, _t: f64, x: &[f64], out: &mut [f64]) {
        out[0] = self.mu * x[0];
    }
    #[inline]
    fn linear_diffusion(&self, _t: f64, x: &[f64], out: &mut [f64]) {
        out[0] = self.sigma * x[0];
    }
}

impl ExactSolution for GeometricBrownianMotion {
    fn exact(&self, t: f64, x0: &[f64], w: &[f64]) -> Option<Vec<f64>> {
        let s2 = self.sigma * self.sigma;
        Some(vec![
            x0[0] * ((self.mu - 0.5 * s2) * t + self.sigma * w[0]).exp(),
        ])
    }
}

impl Moments for GeometricBrownianMotion {
    fn mean(&self, t: f64, x0: &[f64]) -> Vec<f64> {
        vec![self.moment(1.0, t, x0[0])]
    }
    fn second_moment(&self, t: f64, x0: &[f64]) -> Matrix {
        matrix(&[[self.moment(2.0, t, x0[0])]])
    }
}

// ---------------------------------------------------------------------------------------------
// Diagonal linear noise
// ---------------------------------------------------------------------------------------------

/// `dX_i = a_i X_i dt + b_i X_i dW_i`, `i = 1..d` (diagonal noise, independent components):
/// `X_i(t) = x0_i exp((a_i − b_i²/2) t + b_i W_i(t))`, `E X_i = x0_i e^{a_i t}`,
/// `E X_i² = x0_i² e^{(2 a_i + b_i²) t}`.
#[derive(Clone, Debug, PartialEq)]
pub struct DiagonalLinear {
    a: Vec<f64>,
    b: Vec<f64>,
}

impl DiagonalLinear {
    /// Rejects empty or mismatched coefficient vectors and non-finite entries.
    pub fn new(a: Vec<f64>, b: Vec<f64>) -> Result<Self, SdeError> {
        if a.is_empty() {
            return Err(SdeError::invalid(
                "dim",
                0,
                "the state dimension must be at least 1",
            ));
        }
        SdeError::check_len("b", a.len(), b.len())?;
        check_all_finite("a", &a)?;
        check_all_finite("b", &b)?;
        Ok(DiagonalLinear { a, b })
    }

    pub fn a(&self) -> &[f64] {
        &self.a
    }
    pub fn b(&self) -> &[f64] {
        &self.b
    }

    /// `E X_i(t)^p` for `X_0 = x0`.
    pub fn moment(&self, i: usize, p: f64, t: f64, x0: &[f64]) -> f64 {
        let (a, b) = (self.a[i], self.b[i]);
        x0[i].powf(p) * (p * a * t + 0.5 * p * (p - 1.0) * b * b * t).exp()
    }
}

impl Linear for DiagonalLinear {
    fn dim_and_noise(&self) -> (usize, NoiseShape) {
        (self.a.len(), NoiseShape::Diagonal)
    }
    #[inline]
    fn linear_drift(&self, _t: f64, x: &[f64], out: &mut [f64]) {
        for ((o, a), x) in out.iter_mut().zip(&self.a).zip(x) {
            *o = a * x;
        }
    }
    #[inline]
    fn linear_diffusion(&self, _t: f64, x: &[f64], out: &mut [f64]) {
        for ((o, b), x) in out.iter_mut().zip(&self.b).zip(x) {
            *o = b * x;
        }
    }
}

impl ExactSolution for DiagonalLinear {
    fn exact(&self, t: f64, x0: &[f64], w: &[f64]) -> Option<Vec<f64>> {
        Some(
            (0..self.a.len())
                .map(|i| {
                    let (a, b) = (self.a[i], self.b[i]);
                    x0[i] * ((a - 0.5 * b * b) * t + b * w[i]).exp()
                })
                .collect(),
        )
    }
}

impl Moments for DiagonalLinear {
    fn mean(&self, t: f64, x0: &[f64]) -> Vec<f64> {
        (0..self.a.len())
            .map(|i| self.moment(i, 1.0, t, x0))
            .collect()
    }
    fn second_moment(&self, t: f64, x0: &[f64]) -> Matrix {
        let d = self.a.len();
        let mean = self.mean(t, x0);
        let mut s = outer(&mean, &mean);
        for i in 0..d {
            s[(i, i)] = self.moment(i, 2.0, t, x0);
        }
        s
    }
}

// ---------------------------------------------------------------------------------------------
// Ornstein–Uhlenbeck
// ---------------------------------------------------------------------------------------------

/// `dX = −Θ (X − μ) dt + Σ dW` on `R^d` with `W ∈ R^m` (additive noise, `Σ` is `d × m`).
///
/// `X_t` is Gaussian with mean `μ + e^{−Θt}(x0 − μ)` and covariance
/// `C(t) = ∫_0^t e^{−Θs} Σ Σᵀ e^{−Θᵀs} ds`, the solution of `C' = −ΘC − CΘᵀ + ΣΣᵀ`, computed
/// exactly by one matrix exponential of the vectorised system. `Θ` need not be symmetric or
/// diagonal; when its eigenvalues have positive real parts, `C(t)` tends to the stationary
/// covariance, the solution of the Lyapunov equation `ΘC + CΘᵀ = ΣΣᵀ`.
#[derive(Clone, Debug, PartialEq)]
pub struct OrnsteinUhlenbeck {
    theta: Matrix,
    mu: Vec<f64>,
    sigma: Matrix,
    /// `theta` and `sigma` row-major, the layout of the drift's rows and the diffusion buffer.
    theta_rows: Vec<f64>,
    sigma_rows: Vec<f64>,
}

impl OrnsteinUhlenbeck {
    /// `θ = [[2, 1], [−0.5, 1]]`, `μ = (0.5, −0.5)`, `σ = [[0.8, 0.3], [−0.2, 0.6]]`: a
    /// non-normal drift matrix with complex eigenvalues 1.5 ± 0.5i (the mean spirals in), a
    /// non-zero mean level and a full 2 × 2 noise matrix.
    pub fn spiral_2d() -> Self {
        OrnsteinUhlenbeck::new(
            matrix(&[[2.0, 1.0], [-0.5, 1.0]]),
            vec![0.5, -0.5],
            matrix(&[[0.8, 0.3], [-0.2, 0.6]]),
        )
        .expect("valid preset")
    }

    /// `theta` is `d × d`, `mu` has length `d`, `sigma` is `d × m` with `m ≥ 1`.
    pub fn new(theta: Matrix, mu: Vec<f64>, sigma: Matrix) -> Result<Self, SdeError> {
        let d = theta.nrows();
        if d == 0 {
            return Err(SdeError::invalid(
                "dim",
                0,
                "the state dimension must be at least 1",
            ));
        }
        SdeError::check_len("theta columns", d, theta.ncols())?;
        SdeError::check_len("mu", d, mu.len())?;
        SdeError::check_len("sigma rows", d, sigma.nrows())?;
        if sigma.ncols() == 0 {
            return Err(SdeError::invalid(
                "m",
                0,
                "the noise dimension must be at least 1",
            ));
        }
        check_all_finite("theta", theta.as_slice())?;
        check_all_finite("mu", &mu)?;
        check_all_finite("sigma", sigma.as_slice())?;
        Ok(OrnsteinUhlenbeck {
            theta_rows: theta.row_major(),
            sigma_rows: sigma.row_major(),
            theta,
            mu,
            sigma,
        })
    }

    pub fn theta(&self) -> &Matrix {
        &self.theta
    }
    pub fn mu(&self) -> &[f64] {
        &self.mu
    }
    pub fn sigma(&self) -> &Matrix {
        &self.sigma
    }

    /// `Σ Σᵀ`.
    pub fn noise_covariance(&self) -> Matrix {
        &self.sigma * self.sigma.transpose()
    }

    /// The covariance of `X_t` (independent of `x0`).
    pub fn covariance_at(&self, t: f64) -> Matrix {
        let d = self.theta.nrows();
        let n = d * d;
        let id = Matrix::identity(d, d);
        let l = -(self.theta.kronecker(&id) + id.kronecker(&self.theta));
        let q = self.noise_covariance();
        // exp(t [[L, q], [0, 0]]) = [[e^{Lt}, ∫_0^t e^{Ls} ds q], [0, 1]].
        let mut aug = Matrix::zeros(n + 1, n + 1);
        aug.view_mut((0, 0), (n, n)).copy_from(&(l * t));
        for (i, qi) in q.iter().enumerate() {
            aug[(i, n)] = t * qi;
        }
        let e = aug.exp();
        symmetrize(Matrix::from_iterator(
            d,
            d,
            e.column(n).iter().take(n).copied(),
        ))
    }

    /// The stationary covariance, solving `ΘC + CΘᵀ = ΣΣᵀ`; `None` when that equation is singular
    /// or its solution is not positive semi-definite (`Θ` is not stable).
    pub fn stationary_covariance(&self) -> Option<Matrix> {
        let d = self.theta.nrows();
        let id = Matrix::identity(d, d);
        let l = self.theta.kronecker(&id) + id.kronecker(&self.theta);
        let scale = l.amax();
        let lu = l.lu();
        // Singular to working precision: a pivot below 1e-14 of the largest entry.
        if lu.u().diagonal().iter().any(|p| !(p.abs() > 1e-14 * scale)) {
            return None;
        }
        let q = self.noise_covariance();
        let c = lu.solve(&DVector::from_column_slice(q.as_slice()))?;
        if c.iter().any(|v| !v.is_finite()) {
            return None;
        }
        let c = symmetrize(Matrix::from_column_slice(d, d, c.as_slice()));
        is_positive_semidefinite(&c).then_some(c)
    }
}

fn symmetrize(m: Matrix) -> Matrix {
    (&m + m.transpose()) * 0.5
}

/// Whether a symmetric matrix is positive semi-definite: its smallest eigenvalue is at least
/// `−1e-12` of its largest entry.
fn is_positive_semidefinite(m: &Matrix) -> bool {
    let tol = 1e-12 * m.amax().max(f64::MIN_POSITIVE);
    m.clone()
        .symmetric_eigen()
        .eigenvalues
        .iter()
        .all(|&e| e >= -tol)
}

impl Sde for OrnsteinUhlenbeck {
    fn dim(&self) -> usize {
        self.theta.nrows()
    }
    fn noise(&self) -> NoiseShape {
        NoiseShape::Additive {
            m: self.sigma.ncols(),
        }
    }
    #[inline]
    fn drift(&self, _t: f64, x: &[f64], out: &mut [f64], _s: &mut [f64]) {
        let d = self.mu.len();
        for (i, o) in out.iter_mut().enumerate() {
            let row = &self.theta_rows[i * d..(i + 1) * d];
            *o = -row
                .iter()
                .zip(x.iter().zip(&self.mu))
                .map(|(t, (x, m))| t * (x - m))
                .sum::<f64>();
        }
    }
    #[inline]
    fn diffusion(&self, _t: f64, _x: &[f64], out: &mut [f64], _s: &mut [f64]) {
        out.copy_from_slice(&self.sigma_rows);
    }
    #[inline]
    fn diffusion_derivative(
        &self,
        _t: f64,
        _x: &[f64],
        _v: &[f64],
        out: &mut [f64],
        _s: &mut [f64],
    ) -> bool {
        out.fill(0.0);
        true
    }
    fn has_diffusion_derivative(&self) -> bool {
        true
    }
}

impl Moments for OrnsteinUhlenbeck {
    fn mean(&self, t: f64, x0: &[f64]) -> Vec<f64> {
        let e = (&self.theta * -t).exp();
        let dx: Vec<f64> = x0.iter().zip(&self.mu).map(|(x, m)| x - m).collect();
        e.mul_vec(&dx)
            .iter()
            .zip(&self.mu)
            .map(|(v, m)| v + m)
            .collect()
    }
    fn second_moment(&self, t: f64, x0: &[f64]) -> Matrix {
        let m = self.mean(t, x0);
        self.covariance_at(t) + outer(&m, &m)
    }
    fn covariance(&self, t: f64, _x0: &[f64]) -> Matrix {
        self.covariance_at(t)
    }
}

// ---------------------------------------------------------------------------------------------
// Linear SDE with general multiplicative noise
// ---------------------------------------------------------------------------------------------

/// `dX = A X dt + Σ_{j=1}^m B_j X dW_j` on `R^d` (general noise, column `j` of the diffusion is
/// `B_j x`).
///
/// `E X_t = e^{At} x0` and `vec E[X_t X_tᵀ] = e^{Lt} vec(x0 x0ᵀ)` with
/// `L = A ⊗ I + I ⊗ A + Σ_j B_j ⊗ B_j`, for any matrices. The noise is commutative exactly when
/// the `B_j` commute (`L^{j1}(B_{j2} x) = B_{j2} B_{j1} x`); the noise shape declares it. When
/// `A` and all `B_j` commute, `X_t = exp((A − ½ Σ_j B_j²) t + Σ_j B_j W_j(t)) x0`.
#[derive(Clone, Debug, PartialEq)]
pub struct LinearSde {
    a: Matrix,
    b: Vec<Matrix>,
    /// `a` and the `b_j` row-major, for the drift and the diffusion columns.
    a_rows: Vec<f64>,
    b_rows: Vec<Vec<f64>>,
    noise_commutative: bool,
    all_commute: bool,
}

impl LinearSde {
    /// `a` is `d × d`, each of the `m ≥ 1` matrices in `b` is `d × d`.
    pub fn new(a: Matrix, b: Vec<Matrix>) -> Result<Self, SdeError> {
        let d = a.nrows();
        if d == 0 {
            return Err(SdeError::invalid(
                "dim",
                0,
                "the state dimension must be at least 1",
            ));
        }
        SdeError::check_len("A columns", d, a.ncols())?;
        if b.is_empty() {
            return Err(SdeError::invalid(
                "m",
                0,
                "the noise dimension must be at least 1",
            ));
        }
        for bj in &b {
            SdeError::check_len("B_j rows", d, bj.nrows())?;
            SdeError::check_len("B_j columns", d, bj.ncols())?;
            check_all_finite("B_j", bj.as_slice())?;
        }
        check_all_finite("A", a.as_slice())?;
        let commute = |x: &Matrix, y: &Matrix| {
            let scale = norm1(x) * norm1(y);
            (x * y - y * x).amax() <= 1e-12 * scale.max(f64::MIN_POSITIVE)
        };
        let noise_commutative = b
            .iter()
            .enumerate()
            .all(|(i, x)| b[i + 1..].iter().all(|y| commute(x, y)));
        let all_commute = noise_commutative && b.iter().all(|y| commute(&a, y));
        Ok(LinearSde {
            a_rows: a.row_major(),
            b_rows: b.iter().map(MatrixExt::row_major).collect(),
            a,
            b,
            noise_commutative,
            all_commute,
        })
    }

    /// `A = [[−0.5, 0.25], [0.25, −0.5]]`, `B_1 = [[0.3, 0.2], [0.2, 0.3]]`,
    /// `B_2 = [[0.2, −0.1], [−0.1, 0.2]]`: symmetric circulant matrices, which commute, so the
    /// noise is commutative, mixes the components, and the exact solution is known.
    pub fn commutative_2d() -> Self {
        LinearSde::new(
            matrix(&[[-0.5, 0.25], [0.25, -0.5]]),
            vec![
                matrix(&[[0.3, 0.2], [0.2, 0.3]]),
                matrix(&[[0.2, -0.1], [-0.1, 0.2]]),
            ],
        )
        .expect("valid preset")
    }

    /// `A = [[−1, 0.5], [−0.5, −0.5]]`, `B_1 = [[0.5, 0], [0, −0.3]]`,
    /// `B_2 = [[0, 0.6], [0.4, 0]]`: `B_1 B_2 ≠ B_2 B_1`, so the noise is non-commutative
    /// (Milstein needs Lévy areas); only the moments are known.
    pub fn noncommutative_2d() -> Self {
        LinearSde::new(
            matrix(&[[-1.0, 0.5], [-0.5, -0.5]]),
            vec![
                matrix(&[[0.5, 0.0], [0.0, -0.3]]),
                matrix(&[[0.0, 0.6], [0.4, 0.0]]),
            ],
        )
        .expect("valid preset")
    }

    pub fn a(&self) -> &Matrix {
        &self.a
    }
    pub fn b(&self) -> &[Matrix] {
        &self.b
    }
    /// Whether the `B_j` commute (the noise is commutative).
    pub fn is_commutative(&self) -> bool {
        self.noise_commutative
    }
    /// Whether `A` and every `B_j` commute (the exact solution is known).
    pub fn has_exact_solution(&self) -> bool {
        self.all_commute
    }

    /// The generator `L = A ⊗ I + I ⊗ A + Σ_j B_j ⊗ B_j` of `vec E[X Xᵀ]` (row-major `vec`).
    pub fn second_moment_generator(&self) -> Matrix {
        let d = self.a.nrows();
        let id = Matrix::identity(d, d);
        let mut l = self.a.kronecker(&id) + id.kronecker(&self.a);
        for bj in &self.b {
            l += bj.kronecker(bj);
        }
        l
    }

    #[inline]
    fn apply_columns(&self, x: &[f64], out: &mut [f64]) {
        let d = self.a.nrows();
        let m = self.b.len();
        for (j, bs) in self.b_rows.iter().enumerate() {
            for i in 0..d {
                out[i * m + j] = bs[i * d..(i + 1) * d]
                    .iter()
                    .zip(x)
                    .map(|(p, q)| p * q)
                    .sum();
            }
        }
    }
}

impl Linear for LinearSde {
    fn dim_and_noise(&self) -> (usize, NoiseShape) {
        (
            self.a.nrows(),
            NoiseShape::General {
                m: self.b.len(),
                commutative: self.noise_commutative,
            },
        )
    }
    #[inline]
    fn linear_drift(&self, _t: f64, x: &[f64], out: &mut [f64]) {
        let d = self.a.nrows();
        for (i, o) in out.iter_mut().enumerate() {
            *o = self.a_rows[i * d..(i + 1) * d]
                .iter()
                .zip(x)
                .map(|(p, q)| p * q)
                .sum();
        }
    }
    #[inline]
    fn linear_diffusion(&self, _t: f64, x: &[f64], out: &mut [f64]) {
        self.apply_columns(x, out);
    }
}

impl ExactSolution for LinearSde {
    fn exact(&self, t: f64, x0: &[f64], w: &[f64]) -> Option<Vec<f64>> {
        if !self.all_commute {
            return None;
        }
        let mut g = &self.a * t;
        for (bj, wj) in self.b.iter().zip(w) {
            g = g - (bj * bj) * (0.5 * t) + bj * *wj;
        }
        Some(g.exp().mul_vec(x0))
    }
}

impl Moments for LinearSde {
    fn mean(&self, t: f64, x0: &[f64]) -> Vec<f64> {
        (&self.a * t).exp().mul_vec(x0)
    }
    fn second_moment(&self, t: f64, x0: &[f64]) -> Matrix {
        let d = self.a.nrows();
        let s0 = outer(x0, x0);
        let v = (self.second_moment_generator() * t)
            .exp()
            .mul_vec(s0.as_slice());
        symmetrize(Matrix::from_column_slice(d, d, &v))
    }
}

// ---------------------------------------------------------------------------------------------
// Time-dependent coefficients
// ---------------------------------------------------------------------------------------------

/// `dX = (a₀ + a₁ sin t) X dt + (b₀ + b₁ cos t) X dW` (scalar noise, `d = 1`), with
/// `E X_t^p = x0^p exp(p ∫_0^t a + p(p − 1)/2 ∫_0^t b²)`, where `∫_0^t a = a₀ t + a₁(1 − cos t)`
/// and `∫_0^t b² = b₀² t + 2 b₀ b₁ sin t + b₁² (t/2 + sin(2t)/4)`. When `b₁ = 0`,
/// `X_t = x0 exp(∫_0^t a − b₀² t/2 + b₀ W_t)`; otherwise the solution depends on the whole path.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TimeDependentLinear {
    pub a0: f64,
    pub a1: f64,
    pub b0: f64,
    pub b1: f64,
}

impl TimeDependentLinear {
    pub fn new(a0: f64, a1: f64, b0: f64, b1: f64) -> Result<Self, SdeError> {
        check_finite("a0", a0)?;
        check_finite("a1", a1)?;
        check_finite("b0", b0)?;
        check_finite("b1", b1)?;
        Ok(TimeDependentLinear { a0, a1, b0, b1 })
    }

    /// `a(t) = a₀ + a₁ sin t`.
    #[inline]
    pub fn a(&self, t: f64) -> f64 {
        self.a0 + self.a1 * t.sin()
    }
    /// `b(t) = b₀ + b₁ cos t`.
    #[inline]
    pub fn b(&self, t: f64) -> f64 {
        self.b0 + self.b1 * t.cos()
    }
    /// `∫_0^t a(s) ds`.
    pub fn int_a(&self, t: f64) -> f64 {
        self.a0 * t + self.a1 * (1.0 - t.cos())
    }
    /// `∫_0^t b(s)² ds`.
    pub fn int_b2(&self, t: f64) -> f64 {
        let (b0, b1) = (self.b0, self.b1);
        b0 * b0 * t + 2.0 * b0 * b1 * t.sin() + b1 * b1 * (0.5 * t + 0.25 * (2.0 * t).sin())
    }
    /// `E X_t^p` for `X_0 = x0`.
    pub fn moment(&self, p: f64, t: f64, x0: f64) -> f64 {
        x0.powf(p) * (p * self.int_a(t) + 0.5 * p * (p - 1.0) * self.int_b2(t)).exp()
    }
}

impl Linear for TimeDependentLinear {
    fn dim_and_noise(&self) -> (usize, NoiseShape) {
        (1, NoiseShape::Scalar)
    }
    #[inline]
    fn linear_drift(&self, t: f64, x: &[f64], out: &mut [f64]) {
        out[0] = self.a(t) * x[0];
    }
    #[inline]
    fn linear_diffusion(&self, t: f64, x: &[f64], out: &mut [f64]) {
        out[0] = self.b(t) * x[0];
    }
}

impl ExactSolution for TimeDependentLinear {
    fn exact(&self, t: f64, x0: &[f64], w: &[f64]) -> Option<Vec<f64>> {
        (self.b1 == 0.0).then(|| {
            vec![x0[0] * (self.int_a(t) - 0.5 * self.b0 * self.b0 * t + self.b0 * w[0]).exp()]
        })
    }
}

impl Moments for TimeDependentLinear {
    fn mean(&self, t: f64, x0: &[f64]) -> Vec<f64> {
        vec![self.moment(1.0, t, x0[0])]
    }
    fn second_moment(&self, t: f64, x0: &[f64]) -> Matrix {
        matrix(&[[self.moment(2.0, t, x0[0])]])
    }
}

// ---------------------------------------------------------------------------------------------
// Tests of the closed forms (and of the matrix exponential they rely on)
// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &Matrix, b: &Matrix, tol: f64) -> bool {
        (a - b).amax() <= tol * b.amax().max(1.0)
    }

    fn id(n: usize) -> Matrix {
        Matrix::identity(n, n)
    }

    #[test]
    fn expm_matches_closed_forms() {
        // Zero, diagonal, nilpotent.
        assert_eq!(Matrix::zeros(3, 3).exp(), id(3));
        // nalgebra's Padé approximant with scaling and squaring is accurate relative to the
        // largest entry of each squaring: e^{-30} ≈ 9.4e-14 comes out 3.5e-14 relative
        // (3e-27 absolute) off, so that entry gets 1e-13; the closed forms only need accuracy
        // relative to the norm.
        let d = diag(&[1.0, -2.0, 0.5, -30.0]).exp();
        for (i, (v, tol)) in [(1.0f64, 1e-14), (-2.0, 1e-14), (0.5, 1e-14), (-30.0, 1e-13)]
            .iter()
            .enumerate()
        {
            assert!((d[(i, i)] / v.exp() - 1.0).abs() < *tol, "{d:?}");
        }
        let n = matrix(&[[0.0, 3.0], [0.0, 0.0]]).exp();
        assert!(close(&n, &matrix(&[[1.0, 3.0], [0.0, 1.0]]), 1e-15));
        // Rotations, with a norm that needs many squarings.
        for th in [0.3, 2.0, 10.0, 50.0] {
            let r = matrix(&[[0.0, th], [-th, 0.0]]).exp();
            let (s, c) = f64::sin_cos(th);
            let want = matrix(&[[c, s], [-s, c]]);
            assert!(close(&r, &want, 1e-13 * th.max(1.0)), "θ = {th}: {r:?}");
        }
        // Upper triangular with distinct eigenvalues.
        let (a, b, c) = (-1.3, 0.7, 2.5);
        let e = matrix(&[[a, c], [0.0, b]]).exp();
        let want = matrix(&[[a.exp(), c * (a.exp() - b.exp()) / (a - b)], [0.0, b.exp()]]);
        assert!(close(&e, &want, 1e-14), "{e:?}");
        // Symmetric circulant [[p, q], [q, p]]: e^p [[cosh q, sinh q], [sinh q, cosh q]].
        let (p, q) = (-0.4, 1.7);
        let e = matrix(&[[p, q], [q, p]]).exp();
        let want = matrix(&[[q.cosh(), q.sinh()], [q.sinh(), q.cosh()]]) * p.exp();
        assert!(close(&e, &want, 1e-14), "{e:?}");
    }

    #[test]
    fn expm_similarity_and_group_laws() {
        // A = V D V⁻¹ with V unit upper triangular and an explicit inverse.
        let v = matrix(&[[1.0, 2.0, -1.0], [0.0, 1.0, 3.0], [0.0, 0.0, 1.0]]);
        let vinv = matrix(&[[1.0, -2.0, 7.0], [0.0, 1.0, -3.0], [0.0, 0.0, 1.0]]);
        assert!(close(&(&v * &vinv), &id(3), 0.0));
        let dvals = [0.9, -1.7, 3.1];
        let a = &v * diag(&dvals) * &vinv;
        let want = &v * diag(&dvals.map(f64::exp)) * &vinv;
        assert!(close(&a.exp(), &want, 1e-13), "{:?}", a.exp());
        // e^{A} e^{-A} = I and e^{(s+t)A} = e^{sA} e^{tA} for a dense non-normal matrix.
        let m = matrix(&[
            [0.3, -1.2, 0.5, 2.0],
            [1.1, -0.4, 0.0, -0.7],
            [-0.6, 0.9, 0.2, 0.3],
            [0.0, 1.5, -2.2, -0.1],
        ]);
        let prod = m.exp() * (&m * -1.0).exp();
        assert!(close(&prod, &id(4), 1e-13), "{prod:?}");
        let st = (&m * 0.7).exp() * (&m * 1.6).exp();
        assert!(close(&(&m * 2.3).exp(), &st, 1e-13));
        // det e^A = e^{tr A}, via the 2 × 2 case.
        let m2 = matrix(&[[0.4, -3.0], [1.2, -0.9]]);
        let e2 = m2.exp();
        let det = e2[(0, 0)] * e2[(1, 1)] - e2[(0, 1)] * e2[(1, 0)];
        assert!((det / m2.trace().exp() - 1.0).abs() < 1e-13);
    }

    #[test]
    fn vec_convention_and_row_major_helpers() {
        // vec(P S Qᵀ) = (Q ⊗ P) vec(S) with column-major vec, and the second-moment generators
        // A ⊗ I + I ⊗ A + Σ B ⊗ B are symmetric under the swap, so either vec gives them.
        let p = matrix(&[[1.0, 2.0], [-1.0, 0.5]]);
        let q = matrix(&[[0.0, 3.0], [1.0, 1.0]]);
        let s = matrix(&[[2.0, -1.0], [0.5, 4.0]]);
        let lhs = &p * &s * q.transpose();
        let rhs = q.kronecker(&p).mul_vec(s.as_slice());
        assert_eq!(lhs.as_slice(), &rhs[..]);
        let rm = p.kronecker(&q).mul_vec(&s.row_major());
        assert_eq!(lhs.row_major(), rm);
        assert_eq!(s.row_major(), vec![2.0, -1.0, 0.5, 4.0]);
        assert_eq!(
            matrix_from_row_major(2, 2, &[2.0, -1.0, 0.5, 4.0]).unwrap(),
            s
        );
        assert!(matrix_from_row_major(2, 2, &[1.0; 3]).is_err());
        assert_eq!(outer(&[1.0, 2.0], &[3.0]), matrix(&[[3.0], [6.0]]));
        assert_eq!(s.mul_vec(&[1.0, 2.0]), vec![0.0, 8.5]);
        // A singular Lyapunov operator has no stationary covariance.
        let psd = matrix(&[[1.0, 1.0], [1.0, 1.0]]);
        assert!(is_positive_semidefinite(&psd));
        assert!(!is_positive_semidefinite(&matrix(&[
            [1.0, 2.0],
            [2.0, 1.0]
        ])));
    }

    #[test]
    fn ou_covariance_matches_eigen_closed_form() {
        // Θ = V Λ V⁻¹ upper triangular; C(t) = V [G_ij (1 − e^{−(λi+λj)t})/(λi+λj)] Vᵀ with
        // G = V⁻¹ Q V⁻ᵀ.
        let (l1, l2, c) = (1.0, 2.5, 0.8);
        let theta = matrix(&[[l1, c], [0.0, l2]]);
        let v = matrix(&[[1.0, c / (l2 - l1)], [0.0, 1.0]]);
        let vinv = matrix(&[[1.0, -c / (l2 - l1)], [0.0, 1.0]]);
        let sigma = matrix(&[[0.7, 0.2, -0.1], [0.3, 0.5, 0.4]]);
        let ou = OrnsteinUhlenbeck::new(theta.clone(), vec![0.2, -0.3], sigma).unwrap();
        let g = &vinv * ou.noise_covariance() * vinv.transpose();
        let lam = [l1, l2];
        for t in [0.1, 1.0, 3.0] {
            let mut inner = Matrix::zeros(2, 2);
            for i in 0..2 {
                for j in 0..2 {
                    let s = lam[i] + lam[j];
                    inner[(i, j)] = g[(i, j)] * (1.0 - (-s * t).exp()) / s;
                }
            }
            let want = &v * inner * v.transpose();
            assert!(close(&ou.covariance_at(t), &want, 1e-13), "t = {t}");
        }
        let stat = ou.stationary_covariance().unwrap();
        let mut inner = Matrix::zeros(2, 2);
        for i in 0..2 {
            for j in 0..2 {
                inner[(i, j)] = g[(i, j)] / (lam[i] + lam[j]);
            }
        }
        assert!(close(&stat, &(&v * inner * v.transpose()), 1e-13));
        assert!(close(&ou.covariance_at(40.0), &stat, 1e-12));
        // Mean: e^{−Θt} (x0 − μ) + μ.
        let m = ou.mean(1.0, &[1.0, 1.0]);
        let e = (&theta * -1.0).exp().mul_vec(&[0.8, 1.3]);
        assert!((m[0] - e[0] - 0.2).abs() < 1e-15 && (m[1] - e[1] + 0.3).abs() < 1e-15);
        // An unstable Θ has no stationary law.
        let bad = OrnsteinUhlenbeck::new(diag(&[-1.0, 1.0]), vec![0.0; 2], id(2)).unwrap();
        assert!(bad.stationary_covariance().is_none());
    }

    #[test]
    fn linear_sde_moments_match_diagonal_closed_forms() {
        // Diagonal A and B_j: E X_i X_j = x_i x_j exp((a_i + a_j + Σ_k b_ki b_kj) t).
        let (a, b1, b2) = ([0.3, -0.5], [0.4, 0.2], [-0.1, 0.6]);
        let lin = LinearSde::new(diag(&a), vec![diag(&b1), diag(&b2)]).unwrap();
        assert!(lin.is_commutative() && lin.has_exact_solution());
        let x0 = [1.5, -0.7];
        let t = 1.3;
        let s = lin.second_moment(t, &x0);
        for i in 0..2 {
            for j in 0..2 {
                let e = x0[i] * x0[j] * ((a[i] + a[j] + b1[i] * b1[j] + b2[i] * b2[j]) * t).exp();
                assert!((s[(i, j)] / e - 1.0).abs() < 1e-13);
            }
        }
        let w = [0.4, -1.1];
        let x = lin.exact(t, &x0, &w).unwrap();
        for i in 0..2 {
            let e = x0[i]
                * ((a[i] - 0.5 * (b1[i] * b1[i] + b2[i] * b2[i])) * t
                    + b1[i] * w[0]
                    + b2[i] * w[1])
                    .exp();
            assert!((x[i] / e - 1.0).abs() < 1e-14);
        }
        assert!(LinearSde::commutative_2d().is_commutative());
        assert!(LinearSde::commutative_2d().has_exact_solution());
        assert!(!LinearSde::noncommutative_2d().is_commutative());
        assert!(LinearSde::noncommutative_2d().exact(1.0, &x0, &w).is_none());
    }

    #[test]
    fn time_dependent_moments_integrate_the_coefficients() {
        // ∫ a and ∫ b² against a fine midpoint rule.
        let p = TimeDependentLinear::new(0.3, 1.2, 0.5, -0.4).unwrap();
        let n = 200_000;
        let t = 2.0;
        let h = t / n as f64;
        let (mut ia, mut ib) = (0.0, 0.0);
        for k in 0..n {
            let s = (k as f64 + 0.5) * h;
            ia += p.a(s) * h;
            ib += p.b(s).powi(2) * h;
        }
        assert!((ia - p.int_a(t)).abs() < 1e-9 && (ib - p.int_b2(t)).abs() < 1e-9);
        assert!(p.exact(1.0, &[1.0], &[0.0]).is_none());
        let q = TimeDependentLinear { b1: 0.0, ..p };
        assert!(q.exact(1.0, &[1.0], &[0.0]).is_some());
    }

    #[test]
    fn gbm_quantiles_invert_the_cdf() {
        let g = GeometricBrownianMotion::new(0.1, 0.4).unwrap();
        for q in [0.01, 0.25, 0.5, 0.9] {
            let err = (g.cdf(g.quantile(q, 2.0, 1.5), 2.0, 1.5) - q).abs();
            assert!(err < 1e-10, "q = {q}: {err:e}");
        }
        assert!((g.moment(0.0, 1.0, 2.0) - 1.0).abs() < 1e-15);
    }
}
