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
//! Second moments of linear SDEs solve linear ODEs, which [`Matrix::expm`] (scaling and squaring
//! with a Taylor series) integrates exactly: `vec E[X Xᵀ]` evolves by
//! `A ⊗ I + I ⊗ A + Σ_j B_j ⊗ B_j`.
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
use statrs::distribution::{ContinuousCDF, Normal};
use std::ops::{Add, Index, IndexMut, Mul, Sub};

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
        &self.second_moment(t, x0) - &Matrix::outer(&m, &m)
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

impl Sde for GeometricBrownianMotion {
    fn dim(&self) -> usize {
        1
    }
    fn noise(&self) -> NoiseShape {
        NoiseShape::Scalar
    }
    #[inline]
    fn drift(&self, _t: f64, x: &[f64], out: &mut [f64], _s: &mut [f64]) {
        out[0] = self.mu * x[0];
    }
    #[inline]
    fn diffusion(&self, _t: f64, x: &[f64], out: &mut [f64], _s: &mut [f64]) {
        out[0] = self.sigma * x[0];
    }
    #[inline]
    fn diffusion_derivative(
        &self,
        _t: f64,
        _x: &[f64],
        v: &[f64],
        out: &mut [f64],
        _s: &mut [f64],
    ) -> bool {
        out[0] = self.sigma * v[0];
        true
    }
    fn has_diffusion_derivative(&self) -> bool {
        true
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
        Matrix::from_rows(&[[self.moment(2.0, t, x0[0])]])
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

impl Sde for DiagonalLinear {
    fn dim(&self) -> usize {
        self.a.len()
    }
    fn noise(&self) -> NoiseShape {
        NoiseShape::Diagonal
    }
    #[inline]
    fn drift(&self, _t: f64, x: &[f64], out: &mut [f64], _s: &mut [f64]) {
        for ((o, a), x) in out.iter_mut().zip(&self.a).zip(x) {
            *o = a * x;
        }
    }
    #[inline]
    fn diffusion(&self, _t: f64, x: &[f64], out: &mut [f64], _s: &mut [f64]) {
        for ((o, b), x) in out.iter_mut().zip(&self.b).zip(x) {
            *o = b * x;
        }
    }
    #[inline]
    fn diffusion_derivative(
        &self,
        _t: f64,
        _x: &[f64],
        v: &[f64],
        out: &mut [f64],
        _s: &mut [f64],
    ) -> bool {
        for ((o, b), v) in out.iter_mut().zip(&self.b).zip(v) {
            *o = b * v;
        }
        true
    }
    fn has_diffusion_derivative(&self) -> bool {
        true
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
        let mut s = Matrix::outer(&mean, &mean);
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
}

impl OrnsteinUhlenbeck {
    /// `theta` is `d × d`, `mu` has length `d`, `sigma` is `d × m` with `m ≥ 1`.
    pub fn new(theta: Matrix, mu: Vec<f64>, sigma: Matrix) -> Result<Self, SdeError> {
        let d = theta.rows();
        if d == 0 {
            return Err(SdeError::invalid(
                "dim",
                0,
                "the state dimension must be at least 1",
            ));
        }
        SdeError::check_len("theta columns", d, theta.cols())?;
        SdeError::check_len("mu", d, mu.len())?;
        SdeError::check_len("sigma rows", d, sigma.rows())?;
        if sigma.cols() == 0 {
            return Err(SdeError::invalid(
                "m",
                0,
                "the noise dimension must be at least 1",
            ));
        }
        check_all_finite("theta", theta.as_slice())?;
        check_all_finite("mu", &mu)?;
        check_all_finite("sigma", sigma.as_slice())?;
        Ok(OrnsteinUhlenbeck { theta, mu, sigma })
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
        &self.sigma * &self.sigma.transpose()
    }

    /// The covariance of `X_t` (independent of `x0`).
    pub fn covariance_at(&self, t: f64) -> Matrix {
        let d = self.theta.rows();
        let n = d * d;
        let id = Matrix::identity(d);
        let l = &(&self.theta.kron(&id) + &id.kron(&self.theta)) * -1.0;
        let q = self.noise_covariance();
        // exp(t [[L, q], [0, 0]]) = [[e^{Lt}, ∫_0^t e^{Ls} ds q], [0, 1]].
        let mut aug = Matrix::zeros(n + 1, n + 1);
        for i in 0..n {
            for j in 0..n {
                aug[(i, j)] = t * l[(i, j)];
            }
            aug[(i, n)] = t * q.as_slice()[i];
        }
        let e = aug.expm();
        let c: Vec<f64> = (0..n).map(|i| e[(i, n)]).collect();
        symmetrize(Matrix::from_row_major(d, d, c).expect("d × d"))
    }

    /// The stationary covariance, solving `ΘC + CΘᵀ = ΣΣᵀ`; `None` when that equation is singular
    /// or its solution is not positive semi-definite (`Θ` is not stable).
    pub fn stationary_covariance(&self) -> Option<Matrix> {
        let d = self.theta.rows();
        let id = Matrix::identity(d);
        let l = &self.theta.kron(&id) + &id.kron(&self.theta);
        let c = l.solve(self.noise_covariance().as_slice())?;
        let c = symmetrize(Matrix::from_row_major(d, d, c).ok()?);
        c.is_positive_semidefinite().then_some(c)
    }
}

fn symmetrize(m: Matrix) -> Matrix {
    let mt = m.transpose();
    &(&m + &mt) * 0.5
}

impl Sde for OrnsteinUhlenbeck {
    fn dim(&self) -> usize {
        self.theta.rows()
    }
    fn noise(&self) -> NoiseShape {
        NoiseShape::Additive {
            m: self.sigma.cols(),
        }
    }
    #[inline]
    fn drift(&self, _t: f64, x: &[f64], out: &mut [f64], _s: &mut [f64]) {
        let d = self.mu.len();
        for (i, o) in out.iter_mut().enumerate() {
            let row = &self.theta.as_slice()[i * d..(i + 1) * d];
            *o = -row
                .iter()
                .zip(x.iter().zip(&self.mu))
                .map(|(t, (x, m))| t * (x - m))
                .sum::<f64>();
        }
    }
    #[inline]
    fn diffusion(&self, _t: f64, _x: &[f64], out: &mut [f64], _s: &mut [f64]) {
        out.copy_from_slice(self.sigma.as_slice());
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
        let e = (&self.theta * -t).expm();
        let dx: Vec<f64> = x0.iter().zip(&self.mu).map(|(x, m)| x - m).collect();
        e.mul_vec(&dx)
            .iter()
            .zip(&self.mu)
            .map(|(v, m)| v + m)
            .collect()
    }
    fn second_moment(&self, t: f64, x0: &[f64]) -> Matrix {
        let m = self.mean(t, x0);
        &self.covariance_at(t) + &Matrix::outer(&m, &m)
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
    noise_commutative: bool,
    all_commute: bool,
}

impl LinearSde {
    /// `a` is `d × d`, each of the `m ≥ 1` matrices in `b` is `d × d`.
    pub fn new(a: Matrix, b: Vec<Matrix>) -> Result<Self, SdeError> {
        let d = a.rows();
        if d == 0 {
            return Err(SdeError::invalid(
                "dim",
                0,
                "the state dimension must be at least 1",
            ));
        }
        SdeError::check_len("A columns", d, a.cols())?;
        if b.is_empty() {
            return Err(SdeError::invalid(
                "m",
                0,
                "the noise dimension must be at least 1",
            ));
        }
        for bj in &b {
            SdeError::check_len("B_j rows", d, bj.rows())?;
            SdeError::check_len("B_j columns", d, bj.cols())?;
            check_all_finite("B_j", bj.as_slice())?;
        }
        check_all_finite("A", a.as_slice())?;
        let commute = |x: &Matrix, y: &Matrix| {
            let scale = x.norm1() * y.norm1();
            x.commutator(y).max_abs() <= 1e-12 * scale.max(f64::MIN_POSITIVE)
        };
        let noise_commutative = b
            .iter()
            .enumerate()
            .all(|(i, x)| b[i + 1..].iter().all(|y| commute(x, y)));
        let all_commute = noise_commutative && b.iter().all(|y| commute(&a, y));
        Ok(LinearSde {
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
            Matrix::from_rows(&[[-0.5, 0.25], [0.25, -0.5]]),
            vec![
                Matrix::from_rows(&[[0.3, 0.2], [0.2, 0.3]]),
                Matrix::from_rows(&[[0.2, -0.1], [-0.1, 0.2]]),
            ],
        )
        .expect("valid preset")
    }

    /// `A = [[−1, 0.5], [−0.5, −0.5]]`, `B_1 = [[0.5, 0], [0, −0.3]]`,
    /// `B_2 = [[0, 0.6], [0.4, 0]]`: `B_1 B_2 ≠ B_2 B_1`, so the noise is non-commutative
    /// (Milstein needs Lévy areas); only the moments are known.
    pub fn noncommutative_2d() -> Self {
        LinearSde::new(
            Matrix::from_rows(&[[-1.0, 0.5], [-0.5, -0.5]]),
            vec![
                Matrix::from_rows(&[[0.5, 0.0], [0.0, -0.3]]),
                Matrix::from_rows(&[[0.0, 0.6], [0.4, 0.0]]),
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
        let id = Matrix::identity(self.a.rows());
        let mut l = &self.a.kron(&id) + &id.kron(&self.a);
        for bj in &self.b {
            l = &l + &bj.kron(bj);
        }
        l
    }

    #[inline]
    fn apply_columns(&self, x: &[f64], out: &mut [f64]) {
        let d = self.a.rows();
        let m = self.b.len();
        for (j, bj) in self.b.iter().enumerate() {
            let bs = bj.as_slice();
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

impl Sde for LinearSde {
    fn dim(&self) -> usize {
        self.a.rows()
    }
    fn noise(&self) -> NoiseShape {
        NoiseShape::General {
            m: self.b.len(),
            commutative: self.noise_commutative,
        }
    }
    #[inline]
    fn drift(&self, _t: f64, x: &[f64], out: &mut [f64], _s: &mut [f64]) {
        let d = self.a.rows();
        for (i, o) in out.iter_mut().enumerate() {
            *o = self.a.as_slice()[i * d..(i + 1) * d]
                .iter()
                .zip(x)
                .map(|(p, q)| p * q)
                .sum();
        }
    }
    #[inline]
    fn diffusion(&self, _t: f64, x: &[f64], out: &mut [f64], _s: &mut [f64]) {
        self.apply_columns(x, out);
    }
    #[inline]
    fn diffusion_derivative(
        &self,
        _t: f64,
        _x: &[f64],
        v: &[f64],
        out: &mut [f64],
        _s: &mut [f64],
    ) -> bool {
        // The diffusion is linear in x: its derivative in direction v is the diffusion at v.
        self.apply_columns(v, out);
        true
    }
    fn has_diffusion_derivative(&self) -> bool {
        true
    }
}

impl ExactSolution for LinearSde {
    fn exact(&self, t: f64, x0: &[f64], w: &[f64]) -> Option<Vec<f64>> {
        if !self.all_commute {
            return None;
        }
        let mut g = &self.a * t;
        for (bj, wj) in self.b.iter().zip(w) {
            g = &(&g - &(&(bj * bj) * (0.5 * t))) + &(bj * *wj);
        }
        Some(g.expm().mul_vec(x0))
    }
}

impl Moments for LinearSde {
    fn mean(&self, t: f64, x0: &[f64]) -> Vec<f64> {
        (&self.a * t).expm().mul_vec(x0)
    }
    fn second_moment(&self, t: f64, x0: &[f64]) -> Matrix {
        let d = self.a.rows();
        let s0 = Matrix::outer(x0, x0);
        let v = (&self.second_moment_generator() * t)
            .expm()
            .mul_vec(s0.as_slice());
        symmetrize(Matrix::from_row_major(d, d, v).expect("d × d"))
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

impl Sde for TimeDependentLinear {
    fn dim(&self) -> usize {
        1
    }
    fn noise(&self) -> NoiseShape {
        NoiseShape::Scalar
    }
    #[inline]
    fn drift(&self, t: f64, x: &[f64], out: &mut [f64], _s: &mut [f64]) {
        out[0] = self.a(t) * x[0];
    }
    #[inline]
    fn diffusion(&self, t: f64, x: &[f64], out: &mut [f64], _s: &mut [f64]) {
        out[0] = self.b(t) * x[0];
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
        out[0] = self.b(t) * v[0];
        true
    }
    fn has_diffusion_derivative(&self) -> bool {
        true
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
        Matrix::from_rows(&[[self.moment(2.0, t, x0[0])]])
    }
}

// ---------------------------------------------------------------------------------------------
// Small dense matrices
// ---------------------------------------------------------------------------------------------

/// A small dense row-major matrix, enough for the closed forms above (matrix exponential,
/// Kronecker products, linear solves). Arithmetic operators are defined on references and panic
/// on mismatched shapes.
#[derive(Clone, Debug, PartialEq)]
pub struct Matrix {
    rows: usize,
    cols: usize,
    data: Vec<f64>,
}

impl Matrix {
    pub fn zeros(rows: usize, cols: usize) -> Self {
        Matrix {
            rows,
            cols,
            data: vec![0.0; rows * cols],
        }
    }

    pub fn identity(n: usize) -> Self {
        let mut m = Matrix::zeros(n, n);
        for i in 0..n {
            m[(i, i)] = 1.0;
        }
        m
    }

    pub fn diag(d: &[f64]) -> Self {
        let mut m = Matrix::zeros(d.len(), d.len());
        for (i, v) in d.iter().enumerate() {
            m[(i, i)] = *v;
        }
        m
    }

    /// From `rows × cols` values in row-major order.
    pub fn from_row_major(rows: usize, cols: usize, data: Vec<f64>) -> Result<Self, SdeError> {
        SdeError::check_len("matrix data", rows * cols, data.len())?;
        Ok(Matrix { rows, cols, data })
    }

    /// From rows of equal length: `Matrix::from_rows(&[[1.0, 2.0], [3.0, 4.0]])`.
    pub fn from_rows<const C: usize>(rows: &[[f64; C]]) -> Self {
        Matrix {
            rows: rows.len(),
            cols: C,
            data: rows.iter().flatten().copied().collect(),
        }
    }

    /// `u vᵀ`.
    pub fn outer(u: &[f64], v: &[f64]) -> Self {
        Matrix {
            rows: u.len(),
            cols: v.len(),
            data: u
                .iter()
                .flat_map(|a| v.iter().map(move |b| a * b))
                .collect(),
        }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }
    pub fn cols(&self) -> usize {
        self.cols
    }
    pub fn is_square(&self) -> bool {
        self.rows == self.cols
    }
    /// The entries in row-major order (this is `vec` in every formula of this module).
    pub fn as_slice(&self) -> &[f64] {
        &self.data
    }

    pub fn transpose(&self) -> Self {
        let mut t = Matrix::zeros(self.cols, self.rows);
        for i in 0..self.rows {
            for j in 0..self.cols {
                t[(j, i)] = self[(i, j)];
            }
        }
        t
    }

    /// `self · v`.
    pub fn mul_vec(&self, v: &[f64]) -> Vec<f64> {
        assert_eq!(v.len(), self.cols, "matrix-vector product: shapes differ");
        self.data
            .chunks_exact(self.cols.max(1))
            .take(self.rows)
            .map(|row| row.iter().zip(v).map(|(a, b)| a * b).sum())
            .collect()
    }

    /// The Kronecker product `self ⊗ other`; with row-major `vec`,
    /// `vec(P S Qᵀ) = (P ⊗ Q) vec(S)`.
    pub fn kron(&self, other: &Matrix) -> Matrix {
        let (r, c) = (self.rows * other.rows, self.cols * other.cols);
        let mut k = Matrix::zeros(r, c);
        for i in 0..self.rows {
            for j in 0..self.cols {
                let a = self[(i, j)];
                for p in 0..other.rows {
                    for q in 0..other.cols {
                        k[(i * other.rows + p, j * other.cols + q)] = a * other[(p, q)];
                    }
                }
            }
        }
        k
    }

    /// `self · other − other · self`.
    pub fn commutator(&self, other: &Matrix) -> Matrix {
        &(self * other) - &(other * self)
    }

    /// Largest absolute column sum.
    pub fn norm1(&self) -> f64 {
        (0..self.cols)
            .map(|j| (0..self.rows).map(|i| self[(i, j)].abs()).sum::<f64>())
            .fold(0.0, f64::max)
    }

    /// Largest absolute entry.
    pub fn max_abs(&self) -> f64 {
        self.data.iter().fold(0.0, |m, v| m.max(v.abs()))
    }

    pub fn trace(&self) -> f64 {
        (0..self.rows.min(self.cols)).map(|i| self[(i, i)]).sum()
    }

    /// The matrix exponential `e^self` (square matrices), by scaling and squaring: with
    /// `s = ⌈log2(2‖A‖₁)⌉`, `‖A/2^s‖₁ ≤ 1/2`, so a Taylor series stopped once a term is below
    /// `1e-3 ε` of the sum (at most 40 terms; the remainder after `k` terms is at most
    /// `2 · 2^{-k}/k!`) gives `e^{A/2^s}` to rounding, and `s` squarings give `e^A`.
    /// Non-finite entries give a matrix of NaN.
    pub fn expm(&self) -> Matrix {
        assert!(self.is_square(), "expm of a non-square matrix");
        let n = self.rows;
        let norm = self.norm1();
        if !norm.is_finite() {
            return Matrix::from_row_major(n, n, vec![f64::NAN; n * n]).expect("n × n");
        }
        let s = if norm > 0.5 {
            (2.0 * norm).log2().ceil() as i32
        } else {
            0
        };
        let b = self * 2f64.powi(-s);
        let mut sum = Matrix::identity(n);
        let mut term = Matrix::identity(n);
        for k in 1..=40 {
            term = &(&term * &b) * (1.0 / k as f64);
            sum = &sum + &term;
            if term.max_abs() <= 1e-3 * f64::EPSILON * sum.max_abs() {
                break;
            }
        }
        for _ in 0..s {
            sum = &sum * &sum;
        }
        sum
    }

    /// Solves `self · x = b` by Gaussian elimination with partial pivoting; `None` if the matrix
    /// is not square, `b` has the wrong length, or a pivot vanishes (singular to working
    /// precision).
    pub fn solve(&self, b: &[f64]) -> Option<Vec<f64>> {
        let n = self.rows;
        if !self.is_square() || b.len() != n {
            return None;
        }
        let mut a = self.data.clone();
        let mut x = b.to_vec();
        let scale = self.max_abs();
        for col in 0..n {
            let piv =
                (col..n).max_by(|&i, &j| a[i * n + col].abs().total_cmp(&a[j * n + col].abs()))?;
            let p = a[piv * n + col];
            if !(p.abs() > 1e-14 * scale) || !p.is_finite() {
                return None;
            }
            if piv != col {
                for k in 0..n {
                    a.swap(piv * n + k, col * n + k);
                }
                x.swap(piv, col);
            }
            for r in col + 1..n {
                let f = a[r * n + col] / p;
                if f != 0.0 {
                    for k in col..n {
                        a[r * n + k] -= f * a[col * n + k];
                    }
                    x[r] -= f * x[col];
                }
            }
        }
        for col in (0..n).rev() {
            let s: f64 = (col + 1..n).map(|k| a[col * n + k] * x[k]).sum();
            x[col] = (x[col] - s) / a[col * n + col];
        }
        x.iter().all(|v| v.is_finite()).then_some(x)
    }

    /// Whether a symmetric matrix is positive semi-definite (Cholesky with a relative
    /// tolerance of `1e-12` on the pivots).
    pub fn is_positive_semidefinite(&self) -> bool {
        if !self.is_square() {
            return false;
        }
        let n = self.rows;
        let tol = 1e-12 * self.max_abs().max(f64::MIN_POSITIVE);
        let mut l = vec![0.0; n * n];
        for j in 0..n {
            let mut diag = self[(j, j)];
            for k in 0..j {
                diag -= l[j * n + k] * l[j * n + k];
            }
            if diag < -tol {
                return false;
            }
            let dj = diag.max(0.0).sqrt();
            l[j * n + j] = dj;
            for i in j + 1..n {
                let mut v = self[(i, j)];
                for k in 0..j {
                    v -= l[i * n + k] * l[j * n + k];
                }
                l[i * n + j] = if dj > tol.sqrt() { v / dj } else { 0.0 };
            }
        }
        true
    }
}

impl Index<(usize, usize)> for Matrix {
    type Output = f64;
    #[inline]
    fn index(&self, (i, j): (usize, usize)) -> &f64 {
        assert!(i < self.rows && j < self.cols, "matrix index out of range");
        &self.data[i * self.cols + j]
    }
}

impl IndexMut<(usize, usize)> for Matrix {
    #[inline]
    fn index_mut(&mut self, (i, j): (usize, usize)) -> &mut f64 {
        assert!(i < self.rows && j < self.cols, "matrix index out of range");
        &mut self.data[i * self.cols + j]
    }
}

impl Add for &Matrix {
    type Output = Matrix;
    fn add(self, rhs: &Matrix) -> Matrix {
        assert!(
            self.rows == rhs.rows && self.cols == rhs.cols,
            "matrix sum: shapes differ"
        );
        Matrix {
            rows: self.rows,
            cols: self.cols,
            data: self
                .data
                .iter()
                .zip(&rhs.data)
                .map(|(a, b)| a + b)
                .collect(),
        }
    }
}

impl Sub for &Matrix {
    type Output = Matrix;
    fn sub(self, rhs: &Matrix) -> Matrix {
        assert!(
            self.rows == rhs.rows && self.cols == rhs.cols,
            "matrix difference: shapes differ"
        );
        Matrix {
            rows: self.rows,
            cols: self.cols,
            data: self
                .data
                .iter()
                .zip(&rhs.data)
                .map(|(a, b)| a - b)
                .collect(),
        }
    }
}

impl Mul for &Matrix {
    type Output = Matrix;
    fn mul(self, rhs: &Matrix) -> Matrix {
        assert_eq!(self.cols, rhs.rows, "matrix product: shapes differ");
        let mut p = Matrix::zeros(self.rows, rhs.cols);
        for i in 0..self.rows {
            for k in 0..self.cols {
                let a = self.data[i * self.cols + k];
                if a == 0.0 {
                    continue;
                }
                let row = &rhs.data[k * rhs.cols..(k + 1) * rhs.cols];
                for (o, b) in p.data[i * rhs.cols..(i + 1) * rhs.cols].iter_mut().zip(row) {
                    *o += a * b;
                }
            }
        }
        p
    }
}

impl Mul<f64> for &Matrix {
    type Output = Matrix;
    fn mul(self, s: f64) -> Matrix {
        Matrix {
            rows: self.rows,
            cols: self.cols,
            data: self.data.iter().map(|a| a * s).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &Matrix, b: &Matrix, tol: f64) -> bool {
        (a - b).max_abs() <= tol * b.max_abs().max(1.0)
    }

    #[test]
    fn expm_matches_closed_forms() {
        // Zero, diagonal, nilpotent.
        assert_eq!(Matrix::zeros(3, 3).expm(), Matrix::identity(3));
        let d = Matrix::diag(&[1.0, -2.0, 0.5, -30.0]).expm();
        for (i, v) in [1.0f64, -2.0, 0.5, -30.0].iter().enumerate() {
            assert!((d[(i, i)] / v.exp() - 1.0).abs() < 1e-14, "{d:?}");
        }
        let n = Matrix::from_rows(&[[0.0, 3.0], [0.0, 0.0]]).expm();
        assert!(close(
            &n,
            &Matrix::from_rows(&[[1.0, 3.0], [0.0, 1.0]]),
            1e-15
        ));
        // Rotations, with a norm that needs many squarings.
        for th in [0.3, 2.0, 10.0, 50.0] {
            let r = Matrix::from_rows(&[[0.0, th], [-th, 0.0]]).expm();
            let (s, c) = f64::sin_cos(th);
            let want = Matrix::from_rows(&[[c, s], [-s, c]]);
            assert!(close(&r, &want, 1e-13 * th.max(1.0)), "θ = {th}: {r:?}");
        }
        // Upper triangular with distinct eigenvalues.
        let (a, b, c) = (-1.3, 0.7, 2.5);
        let e = Matrix::from_rows(&[[a, c], [0.0, b]]).expm();
        let want =
            Matrix::from_rows(&[[a.exp(), c * (a.exp() - b.exp()) / (a - b)], [0.0, b.exp()]]);
        assert!(close(&e, &want, 1e-14), "{e:?}");
        // Symmetric circulant [[p, q], [q, p]]: e^p [[cosh q, sinh q], [sinh q, cosh q]].
        let (p, q) = (-0.4, 1.7);
        let e = Matrix::from_rows(&[[p, q], [q, p]]).expm();
        let want = &Matrix::from_rows(&[[q.cosh(), q.sinh()], [q.sinh(), q.cosh()]]) * p.exp();
        assert!(close(&e, &want, 1e-14), "{e:?}");
    }

    #[test]
    fn expm_similarity_and_group_laws() {
        // A = V D V⁻¹ with V unit upper triangular and an explicit inverse.
        let v = Matrix::from_rows(&[[1.0, 2.0, -1.0], [0.0, 1.0, 3.0], [0.0, 0.0, 1.0]]);
        let vinv = Matrix::from_rows(&[[1.0, -2.0, 7.0], [0.0, 1.0, -3.0], [0.0, 0.0, 1.0]]);
        assert!(close(&(&v * &vinv), &Matrix::identity(3), 0.0));
        let dvals = [0.9, -1.7, 3.1];
        let a = &(&v * &Matrix::diag(&dvals)) * &vinv;
        let want = &(&v * &Matrix::diag(&dvals.map(f64::exp))) * &vinv;
        assert!(close(&a.expm(), &want, 1e-13), "{:?}", a.expm());
        // e^{A} e^{-A} = I and e^{(s+t)A} = e^{sA} e^{tA} for a dense non-normal matrix.
        let m = Matrix::from_rows(&[
            [0.3, -1.2, 0.5, 2.0],
            [1.1, -0.4, 0.0, -0.7],
            [-0.6, 0.9, 0.2, 0.3],
            [0.0, 1.5, -2.2, -0.1],
        ]);
        let prod = &m.expm() * &(&m * -1.0).expm();
        assert!(close(&prod, &Matrix::identity(4), 1e-13), "{prod:?}");
        let st = &(&m * 0.7).expm() * &(&m * 1.6).expm();
        assert!(close(&(&m * 2.3).expm(), &st, 1e-13));
        // det e^A = e^{tr A}, via the 2 × 2 case.
        let m2 = Matrix::from_rows(&[[0.4, -3.0], [1.2, -0.9]]);
        let e2 = m2.expm();
        let det = e2[(0, 0)] * e2[(1, 1)] - e2[(0, 1)] * e2[(1, 0)];
        assert!((det / m2.trace().exp() - 1.0).abs() < 1e-13);
    }

    #[test]
    fn solve_and_kron() {
        let a = Matrix::from_rows(&[[0.0, 2.0, 1.0], [1.0, 1.0, 0.0], [3.0, 0.0, -1.0]]);
        let x = [1.0, -2.0, 0.5];
        let b = a.mul_vec(&x);
        let got = a.solve(&b).unwrap();
        for (g, w) in got.iter().zip(x) {
            assert!((g - w).abs() < 1e-14);
        }
        assert!(Matrix::from_rows(&[[1.0, 2.0], [2.0, 4.0]])
            .solve(&[1.0, 1.0])
            .is_none());
        // vec(P S Qᵀ) = (P ⊗ Q) vec(S), row-major vec.
        let p = Matrix::from_rows(&[[1.0, 2.0], [-1.0, 0.5]]);
        let q = Matrix::from_rows(&[[0.0, 3.0], [1.0, 1.0]]);
        let s = Matrix::from_rows(&[[2.0, -1.0], [0.5, 4.0]]);
        let lhs = &(&p * &s) * &q.transpose();
        let rhs = p.kron(&q).mul_vec(s.as_slice());
        assert_eq!(lhs.as_slice(), &rhs[..]);
    }

    #[test]
    fn ou_covariance_matches_eigen_closed_form() {
        // Θ = V Λ V⁻¹ upper triangular; C(t) = V [G_ij (1 − e^{−(λi+λj)t})/(λi+λj)] Vᵀ with
        // G = V⁻¹ Q V⁻ᵀ.
        let (l1, l2, c) = (1.0, 2.5, 0.8);
        let theta = Matrix::from_rows(&[[l1, c], [0.0, l2]]);
        let v = Matrix::from_rows(&[[1.0, c / (l2 - l1)], [0.0, 1.0]]);
        let vinv = Matrix::from_rows(&[[1.0, -c / (l2 - l1)], [0.0, 1.0]]);
        let sigma = Matrix::from_rows(&[[0.7, 0.2, -0.1], [0.3, 0.5, 0.4]]);
        let ou = OrnsteinUhlenbeck::new(theta.clone(), vec![0.2, -0.3], sigma).unwrap();
        let g = &(&vinv * &ou.noise_covariance()) * &vinv.transpose();
        let lam = [l1, l2];
        for t in [0.1, 1.0, 3.0] {
            let mut inner = Matrix::zeros(2, 2);
            for i in 0..2 {
                for j in 0..2 {
                    let s = lam[i] + lam[j];
                    inner[(i, j)] = g[(i, j)] * (1.0 - (-s * t).exp()) / s;
                }
            }
            let want = &(&v * &inner) * &v.transpose();
            assert!(close(&ou.covariance_at(t), &want, 1e-13), "t = {t}");
        }
        let stat = ou.stationary_covariance().unwrap();
        let mut inner = Matrix::zeros(2, 2);
        for i in 0..2 {
            for j in 0..2 {
                inner[(i, j)] = g[(i, j)] / (lam[i] + lam[j]);
            }
        }
        assert!(close(&stat, &(&(&v * &inner) * &v.transpose()), 1e-13));
        assert!(close(&ou.covariance_at(40.0), &stat, 1e-12));
        // Mean: e^{−Θt} (x0 − μ) + μ.
        let m = ou.mean(1.0, &[1.0, 1.0]);
        let e = (&theta * -1.0).expm().mul_vec(&[0.8, 1.3]);
        assert!((m[0] - e[0] - 0.2).abs() < 1e-15 && (m[1] - e[1] + 0.3).abs() < 1e-15);
        // An unstable Θ has no stationary law.
        let bad = OrnsteinUhlenbeck::new(
            Matrix::diag(&[-1.0, 1.0]),
            vec![0.0; 2],
            Matrix::identity(2),
        )
        .unwrap();
        assert!(bad.stationary_covariance().is_none());
    }

    #[test]
    fn linear_sde_moments_match_diagonal_closed_forms() {
        // Diagonal A and B_j: E X_i X_j = x_i x_j exp((a_i + a_j + Σ_k b_ki b_kj) t).
        let (a, b1, b2) = ([0.3, -0.5], [0.4, 0.2], [-0.1, 0.6]);
        let lin =
            LinearSde::new(Matrix::diag(&a), vec![Matrix::diag(&b1), Matrix::diag(&b2)]).unwrap();
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
