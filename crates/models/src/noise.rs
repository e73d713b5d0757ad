//! Per-agent gradient noise `Z` with an affine scale (MATH.md §1.2–§1.3).
//!
//! Agent `i` observes `g_i = ∇f + Z_i`. Coordinate `j` of `Z` is `Z_j = s_j(g) ξ_j` with the scale
//! `s_j(g) = scale_j · √(σ0² + σ1² ‖g‖²)`, `g = ∇f(x)`, and `ξ_j` iid standard normal
//! ([`GaussianNoise`]) or standard Student-t with `ν` degrees of freedom ([`StudentTNoise`]).
//!
//! * Gaussian: `Cov Z = diag(s²)`, so `‖Cov Z‖_∞ = max_j scale_j² (σ0² + σ1²‖∇f‖²)`: with
//!   `max_j scale_j = 1` this is exactly the (σ0, σ1)-variance assumption of §1.2, and P1v2's
//!   experiment `Z ~ N(0, σ²‖∇f‖² I)` is `scale = 1, σ0 = 0, σ1 = σ`.
//! * Student-t: coordinates are sampled **independently** (one χ² per coordinate), as §1.3
//!   requires — a shared χ² divisor (the "multivariate t") correlates the signs and breaks the
//!   diagonal diffusion of §5.4. `Var Z_j = ν/(ν−2) s_j²` for `ν > 2`, infinite otherwise.
//!
//! The sign mean `E sign(g_j + Z_j)` is what DSignSGD's drift is made of (§5.4): `erf(g_j/(√2 s_j))`
//! (Gaussian) and `2Ξ_ν(g_j/s_j)` (Student-t, [`crate::special::xi`]). With `s_j = 0` it is
//! `sign(g_j)` (`sign(0) = 0`).

use crate::error::{require_each, require_len, require_nonnegative, require_positive, ModelError};
use crate::special::{
    normal_pdf, student_t_pdf_norm, student_t_pdf_with, xi, xi_integer_nu, XiTable,
    NU_FINITE_SUM_MAX,
};
use rand::RngExt;
use rand_distr::{Distribution, StandardNormal, StudentT};
use sde_core::PathRng;
use statrs::function::erf::erf;
use std::f64::consts::FRAC_1_SQRT_2;

crate::registry! {
    family "noise", context usize;
    kinds {
        Gaussian(GaussianNoise) = "gaussian" GaussianSpec,
        StudentT(StudentTNoise) = "student_t" StudentTSpec,
    }
    /// A gradient-noise model. All slices have length [`GradientNoise::dim`] (panics otherwise: a
    /// programming error). Nothing here allocates.
    pub trait GradientNoise: Send + Sync {
        /// Dimension `d`.
        fn dim(&self) -> usize;
        /// Draws `Z` at gradient `grad = ∇f(x)` into `z`.
        fn sample(&self, grad: &[f64], rng: &mut PathRng, z: &mut [f64]);
        /// Writes the diagonal of `Cov Z` (the covariance is diagonal) and returns `true`; returns
        /// `false` and leaves `out` untouched when the variance is infinite (Student-t, `ν ≤ 2`).
        fn variance(&self, grad: &[f64], out: &mut [f64]) -> bool;
        /// `E sign(g_j + Z_j)` for every `j`, with `g = grad`.
        fn sign_mean(&self, grad: &[f64], out: &mut [f64]);
        /// `(∂ sign_mean / ∂g) · v`, including the dependence of `s` on `‖g‖` through `σ1`.
        /// (Where `s_j = 0` the sign mean is a step function; its derivative is reported as 0.)
        fn sign_mean_jvp(&self, grad: &[f64], v: &[f64], out: &mut [f64]);
        /// The scales `s_j(g)`.
        fn scale(&self, grad: &[f64], out: &mut [f64]);
        /// `true` when the scale depends on `∇f` (`σ1 > 0` and some `scale_j > 0`); `false` means
        /// additive noise whose law is the same at every `x`.
        fn depends_on_gradient(&self) -> bool;
    }
    /// Any noise model, for runtime configuration; implements [`GradientNoise`] by `match`.
    #[derive(Debug, Clone, PartialEq)]
    pub enum NoiseModel;
    /// `[noise]` (or one `[[noise.agents]]` table): the gradient noise of one agent, built for
    /// the dimension `d` by [`NoiseSpec::build`].
    pub enum NoiseSpec;
}

/// The public accessors of the affine scale `s` that both noise types hold.
macro_rules! affine_scale_accessors {
    () => {
        /// Per-coordinate scale factors.
        pub fn scale_factors(&self) -> &[f64] {
            &self.s.scale
        }
        /// `σ0`.
        pub fn sigma0(&self) -> f64 {
            self.s.sigma0
        }
        /// `σ1`.
        pub fn sigma1(&self) -> f64 {
            self.s.sigma1
        }
    };
}

/// The shared affine scale `s_j(g) = scale_j √(σ0² + σ1²‖g‖²)`.
#[derive(Debug, Clone, PartialEq)]
struct AffineScale {
    scale: Vec<f64>,
    sigma0: f64,
    sigma1: f64,
}

impl AffineScale {
    fn new(d: usize, scale: Vec<f64>, sigma0: f64, sigma1: f64) -> Result<Self, ModelError> {
        if d == 0 {
            return Err(ModelError::invalid("d", d, "dimension must be >= 1"));
        }
        require_len("scale", d, scale.len())?;
        require_each("scale", &scale, require_nonnegative)?;
        require_nonnegative("sigma0", sigma0)?;
        require_nonnegative("sigma1", sigma1)?;
        Ok(AffineScale {
            scale,
            sigma0,
            sigma1,
        })
    }

    fn dim(&self) -> usize {
        self.scale.len()
    }

    fn depends_on_gradient(&self) -> bool {
        self.sigma1 > 0.0 && self.scale.iter().any(|&s| s > 0.0)
    }

    /// `r(g)² = σ0² + σ1²‖g‖²`.
    #[inline]
    fn r2(&self, grad: &[f64]) -> f64 {
        let n2: f64 = grad.iter().map(|g| g * g).sum();
        self.sigma0 * self.sigma0 + self.sigma1 * self.sigma1 * n2
    }

    #[inline]
    fn check(&self, a: &[f64], b: &[f64]) {
        let d = self.dim();
        assert_eq!(
            a.len(),
            d,
            "gradient has length {} but the noise has dimension {d}",
            a.len()
        );
        assert_eq!(
            b.len(),
            d,
            "output has length {} but the noise has dimension {d}",
            b.len()
        );
    }

    /// `z_j = s_j(g) ξ_j` with `ξ_j = draw()`, drawn in coordinate order.
    #[inline]
    fn scaled_draws(&self, grad: &[f64], z: &mut [f64], mut draw: impl FnMut() -> f64) {
        self.check(grad, z);
        let r = self.r2(grad).sqrt();
        for (zj, s) in z.iter_mut().zip(&self.scale) {
            *zj = s * r * draw();
        }
    }

    fn scale_into(&self, grad: &[f64], out: &mut [f64]) {
        self.check(grad, out);
        let r = self.r2(grad).sqrt();
        for (o, s) in out.iter_mut().zip(&self.scale) {
            *o = s * r;
        }
    }

    /// Sign mean `φ(g_j/s_j)` for an odd `φ` with `φ(±∞) = ±1`.
    fn sign_mean_with(&self, grad: &[f64], out: &mut [f64], phi: impl Fn(f64) -> f64) {
        self.check(grad, out);
        let r = self.r2(grad).sqrt();
        for ((o, s), g) in out.iter_mut().zip(&self.scale).zip(grad) {
            let sj = s * r;
            *o = if sj > 0.0 {
                phi(g / sj)
            } else if *g > 0.0 {
                1.0
            } else if *g < 0.0 {
                -1.0
            } else {
                0.0
            };
        }
    }

    /// `(J v)_j = φ'(y_j) [v_j/s_j − y_j σ1² (g·v)/r²]`, `y_j = g_j/s_j`, `r² = σ0² + σ1²‖g‖²`:
    /// from `∂y_j/∂g_k = δ_jk/s_j − (g_j/s_j²) ∂s_j/∂g_k` and `∂s_j/∂g_k = scale_j σ1² g_k / r`.
    fn sign_mean_jvp_with(
        &self,
        grad: &[f64],
        v: &[f64],
        out: &mut [f64],
        dphi: impl Fn(f64) -> f64,
    ) {
        self.check(grad, out);
        self.check(v, out);
        let r2 = self.r2(grad);
        let r = r2.sqrt();
        let gv: f64 = grad.iter().zip(v).map(|(a, b)| a * b).sum();
        let coupling = if r2 > 0.0 {
            self.sigma1 * self.sigma1 * gv / r2
        } else {
            0.0
        };
        for (((o, s), g), vj) in out.iter_mut().zip(&self.scale).zip(grad).zip(v) {
            let sj = s * r;
            *o = if sj > 0.0 {
                let y = g / sj;
                dphi(y) * (vj / sj - y * coupling)
            } else {
                0.0
            };
        }
    }
}

// ---------------------------------------------------------------------------------------------

/// Gaussian noise `Z_j = s_j(g) N_j`, `N_j ~ N(0,1)` iid (MATH.md §1.2; §5.4 Gaussian case).
#[derive(Debug, Clone, PartialEq)]
pub struct GaussianNoise {
    s: AffineScale,
}

impl GaussianNoise {
    /// Dimension `d ≥ 1`, per-coordinate `scale` (length `d`, entries `≥ 0`), `σ0 ≥ 0`, `σ1 ≥ 0`,
    /// all finite.
    pub fn new(d: usize, scale: Vec<f64>, sigma0: f64, sigma1: f64) -> Result<Self, ModelError> {
        Ok(GaussianNoise {
            s: AffineScale::new(d, scale, sigma0, sigma1)?,
        })
    }

    /// `scale_j = 1` in dimension `d`: `Z ~ N(0, (σ0² + σ1²‖∇f‖²) I_d)`.
    pub fn isotropic(d: usize, sigma0: f64, sigma1: f64) -> Result<Self, ModelError> {
        Self::new(d, vec![1.0; d], sigma0, sigma1)
    }

    affine_scale_accessors!();
}

fn gaussian_sign(y: f64) -> f64 {
    erf(y * FRAC_1_SQRT_2)
}

fn gaussian_sign_derivative(y: f64) -> f64 {
    2.0 * normal_pdf(y)
}

impl GradientNoise for GaussianNoise {
    fn dim(&self) -> usize {
        self.s.dim()
    }
    fn sample(&self, grad: &[f64], rng: &mut PathRng, z: &mut [f64]) {
        self.s.scaled_draws(grad, z, || rng.sample(StandardNormal));
    }
    fn variance(&self, grad: &[f64], out: &mut [f64]) -> bool {
        self.s.scale_into(grad, out);
        for o in out.iter_mut() {
            *o *= *o;
        }
        true
    }
    fn sign_mean(&self, grad: &[f64], out: &mut [f64]) {
        self.s.sign_mean_with(grad, out, gaussian_sign);
    }
    fn sign_mean_jvp(&self, grad: &[f64], v: &[f64], out: &mut [f64]) {
        self.s
            .sign_mean_jvp_with(grad, v, out, gaussian_sign_derivative);
    }
    fn scale(&self, grad: &[f64], out: &mut [f64]) {
        self.s.scale_into(grad, out);
    }
    fn depends_on_gradient(&self) -> bool {
        self.s.depends_on_gradient()
    }
}

crate::kind_spec! {
    /// `kind = "gaussian"`.
    pub struct GaussianSpec: KindSpec<Output = GaussianNoise, Context = usize> {
        /// The constant part of the standard deviation.
        pub sigma0: f64 => "number >= 0, required: the constant part of the standard deviation",
        /// The gradient-proportional part.
        #[serde(default)]
        pub sigma1: f64 => "number >= 0, default 0: the gradient-proportional part",
        /// Per-coordinate multiplier of the standard deviation (default all ones).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub scale: Option<Vec<f64>> => "list of d numbers >= 0, default all ones: per-coordinate multiplier of the standard deviation",
    }
    summary "sigma0, sigma1 = 0, scale = ones: Cov = (sigma0^2 + sigma1^2 |grad f|^2) diag(scale^2)";
    build(self, d) {
        let scale = self.scale.clone().unwrap_or_else(|| vec![1.0; *d]);
        require_len("scale", *d, scale.len())?;
        GaussianNoise::new(*d, scale, self.sigma0, self.sigma1)
    }
    fn fill_defaults(&mut self, d: &usize) {
        self.scale.get_or_insert_with(|| vec![1.0; *d]);
    }
}

// ---------------------------------------------------------------------------------------------

/// Student-t noise with independent coordinates: `Z_j = s_j(g) T_j`, `T_j ~ t_ν` iid
/// (MATH.md §1.3). `ν = 1` is Cauchy (P1v2's experiment). Sampling uses
/// `rand_distr::StudentT` (`N / √(χ²_ν/ν)`, one χ² per coordinate), built once at construction.
#[derive(Debug, Clone, PartialEq)]
pub struct StudentTNoise {
    nu: f64,
    s: AffineScale,
    dist: StudentT<f64>,
    /// `Ξ_ν` tabulated, where [`xi`] would take the incomplete beta (non-integer `ν`, or
    /// `ν > 64`); `None` for integer `ν ≤ 64`, whose exact finite sums are already fast (and keep
    /// their bits).
    table: Option<XiTable>,
    /// `p_ν(0)`, the density's constant, for the exact route's Jacobian.
    pdf_norm: f64,
}

impl StudentTNoise {
    /// `ν > 0` finite, plus the dimension and scale parameters of [`GaussianNoise::new`].
    pub fn new(
        d: usize,
        nu: f64,
        scale: Vec<f64>,
        sigma0: f64,
        sigma1: f64,
    ) -> Result<Self, ModelError> {
        if !(nu.is_finite() && nu > 0.0) {
            return Err(ModelError::invalid(
                "nu",
                nu,
                "degrees of freedom must be finite and > 0 (use Gaussian noise for nu = inf)",
            ));
        }
        let s = AffineScale::new(d, scale, sigma0, sigma1)?;
        let dist = StudentT::new(nu)
            .map_err(|e| ModelError::invalid("nu", nu, format!("rejected by rand_distr: {e}")))?;
        let table = if nu <= NU_FINITE_SUM_MAX && nu == nu.floor() {
            None
        } else {
            Some(XiTable::new(nu)?)
        };
        let pdf_norm = student_t_pdf_norm(nu);
        Ok(StudentTNoise {
            nu,
            s,
            dist,
            table,
            pdf_norm,
        })
    }

    /// `scale_j = 1` in dimension `d`.
    pub fn isotropic(d: usize, nu: f64, sigma0: f64, sigma1: f64) -> Result<Self, ModelError> {
        Self::new(d, nu, vec![1.0; d], sigma0, sigma1)
    }

    /// Degrees of freedom `ν`.
    pub fn nu(&self) -> f64 {
        self.nu
    }
    affine_scale_accessors!();
    /// The table of `Ξ_ν` the sign mean uses; `None` for integer `ν ≤ 64` (exact finite sums).
    pub fn xi_table(&self) -> Option<&XiTable> {
        self.table.as_ref()
    }
}

impl GradientNoise for StudentTNoise {
    fn dim(&self) -> usize {
        self.s.dim()
    }
    fn sample(&self, grad: &[f64], rng: &mut PathRng, z: &mut [f64]) {
        self.s.scaled_draws(grad, z, || self.dist.sample(rng));
    }
    fn variance(&self, grad: &[f64], out: &mut [f64]) -> bool {
        self.s.check(grad, out);
        if self.nu <= 2.0 {
            return false;
        }
        let factor = self.nu / (self.nu - 2.0);
        self.s.scale_into(grad, out);
        for o in out.iter_mut() {
            *o = factor * *o * *o;
        }
        true
    }
    fn sign_mean(&self, grad: &[f64], out: &mut [f64]) {
        match &self.table {
            Some(table) => self.s.sign_mean_with(grad, out, |y| 2.0 * table.xi(y)),
            // ν = 1..=4 (MATH.md §8's values) with ν a constant of the closure: the closed
            // forms inline into the loop, without `xi`'s per-call dispatch on ν (same bits).
            None => match self.nu as u32 {
                1 => self
                    .s
                    .sign_mean_with(grad, out, |y| 2.0 * xi_integer_nu(1, y)),
                2 => self
                    .s
                    .sign_mean_with(grad, out, |y| 2.0 * xi_integer_nu(2, y)),
                3 => self
                    .s
                    .sign_mean_with(grad, out, |y| 2.0 * xi_integer_nu(3, y)),
                4 => self
                    .s
                    .sign_mean_with(grad, out, |y| 2.0 * xi_integer_nu(4, y)),
                _ => {
                    let nu = self.nu;
                    self.s.sign_mean_with(grad, out, |y| 2.0 * xi(nu, y));
                }
            },
        }
    }
    fn sign_mean_jvp(&self, grad: &[f64], v: &[f64], out: &mut [f64]) {
        match &self.table {
            Some(table) => self
                .s
                .sign_mean_jvp_with(grad, v, out, |y| 2.0 * table.pdf(y)),
            None => {
                let (nu, k) = (self.nu, self.pdf_norm);
                self.s
                    .sign_mean_jvp_with(grad, v, out, |y| 2.0 * student_t_pdf_with(k, nu, y));
            }
        }
    }
    fn scale(&self, grad: &[f64], out: &mut [f64]) {
        self.s.scale_into(grad, out);
    }
    fn depends_on_gradient(&self) -> bool {
        self.s.depends_on_gradient()
    }
}

/// `scale` of [`StudentTSpec`]: one number for every coordinate, or one per coordinate.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum Scale {
    /// The same factor for every coordinate.
    All(f64),
    /// One factor per coordinate.
    Each(Vec<f64>),
}

impl Scale {
    /// The factors in dimension `d`.
    pub fn expand(&self, d: usize) -> Vec<f64> {
        match self {
            Scale::All(x) => vec![*x; d],
            Scale::Each(v) => v.clone(),
        }
    }
}

fn default_sigma0() -> f64 {
    1.0
}

crate::kind_spec! {
    /// `kind = "student_t"`.
    pub struct StudentTSpec: KindSpec<Output = StudentTNoise, Context = usize> {
        /// Degrees of freedom.
        pub nu: f64 => "number > 0, required: degrees of freedom (1 = Cauchy); D(C)SGD needs nu > 2",
        /// Per-coordinate scale factors.
        pub scale: Scale => "number > 0 or list of d numbers > 0, required: per-coordinate scale factors",
        /// Constant part of the scale.
        #[serde(default = "default_sigma0")]
        pub sigma0: f64 => "number >= 0, default 1: constant part of the scale",
        /// Gradient-proportional part of the scale.
        #[serde(default)]
        pub sigma1: f64 => "number >= 0, default 0: gradient-proportional part of the scale (0 = fixed scale)",
    }
    summary "nu, scale (number or list), sigma0 = 1, sigma1 = 0: Z_j = scale_j sqrt(sigma0^2 + sigma1^2 |grad f|^2) T_j, T_j iid t_nu";
    build(self, d) {
        if let Scale::All(x) = self.scale {
            require_positive("scale", x)?;
        }
        let scale = self.scale.expand(*d);
        require_len("scale", *d, scale.len())?;
        require_each("scale", &scale, require_positive)?;
        StudentTNoise::new(*d, self.nu, scale, self.sigma0, self.sigma1)
    }
    fn fill_defaults(&mut self, d: &usize) {
        self.scale = Scale::Each(self.scale.expand(*d));
    }
}

impl NoiseModel {
    /// `true` when `Cov Z` is finite (always for Gaussian; `ν > 2` for Student-t). DSGD/DCSGD
    /// SDEs need it (MATH.md §1.3).
    pub fn has_finite_variance(&self) -> bool {
        match self {
            NoiseModel::Gaussian(_) => true,
            NoiseModel::StudentT(t) => t.nu > 2.0,
        }
    }
}
