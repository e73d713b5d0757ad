//! Objective functions `f: R^d → R` with gradient, Hessian-vector product and their
//! (L0, L1)-smoothness constants (MATH.md §2).
//!
//! The constants matter because the step-size conditions of MATH.md §6 are written in `L0`, `L1`:
//! the normalised schedule of §6.3 needs them as inputs. Each built-in documents how its
//! constants were derived; tests/losses.rs checks `‖∇²f(x)‖₂ ≤ L0 + L1‖∇f(x)‖₂` on many random
//! points, large ones included.
//!
//! Hot-path methods write into caller-owned slices and never allocate.

use crate::error::{
    require_each, require_finite, require_len, require_nonempty, require_nonnegative,
    require_positive, ModelError,
};
use crate::network_spec::{LogisticLoss, LogisticSpec, MlpLossSpec, NetworkLoss};
use rand::RngExt;
use rand_distr::StandardNormal;

/// Euclidean norm `‖x‖₂`.
#[inline]
pub fn l2_norm(x: &[f64]) -> f64 {
    x.iter().map(|v| v * v).sum::<f64>().sqrt()
}

/// (L0, L1)-smoothness constants: `‖∇²f(x)‖₂ ≤ l0 + l1 ‖∇f(x)‖₂` for all `x` (MATH.md §2).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Smoothness {
    /// `L0 ≥ 0`.
    pub l0: f64,
    /// `L1 ≥ 0`; 0 for globally smooth functions.
    pub l1: f64,
    /// `Some(L)` when `f` is globally `L`-smooth (`‖∇²f‖₂ ≤ L` everywhere), else `None`.
    pub l_smooth: Option<f64>,
}

impl Smoothness {
    /// The Hessian-norm bound `L0 + L1 · grad_norm` at a point with `‖∇f‖ = grad_norm`
    /// (the `G_t` of MATH.md §6.2 without the expectation).
    pub fn hessian_bound(&self, grad_norm: f64) -> f64 {
        self.l0 + self.l1 * grad_norm
    }
}

crate::registry! {
    family "loss", context usize;
    kinds {
        DiagonalQuadratic(DiagonalQuadratic) = "quadratic" DiagonalQuadraticSpec,
        Quadratic(Quadratic) = "quadratic_full" QuadraticSpec,
        Quartic(Quartic) = "quartic" QuarticSpec,
        MixedQuadraticQuartic(MixedQuadraticQuartic) = "mixed" MixedSpec,
        LeastSquares(LeastSquares) = "least_squares" LeastSquaresSpec,
        Logistic(LogisticLoss) = "logistic" LogisticSpec,
        Mlp(NetworkLoss) = "mlp" MlpLossSpec,
    }
    /// A twice-differentiable objective.
    ///
    /// Slices must have length [`Loss::dim`]; methods panic on a length mismatch (a programming
    /// error, not a user-input error: constructors validate user input).
    pub trait Loss: Send + Sync {
        /// Dimension `d` of `x`.
        fn dim(&self) -> usize;
        /// `f(x)`.
        fn value(&self, x: &[f64]) -> f64;
        /// Writes `∇f(x)` into `g`.
        fn gradient(&self, x: &[f64], g: &mut [f64]);
        /// Writes `∇²f(x) · v` into `out` (needed by the curvature term `J_m m` of SDEs (B), (C)).
        fn hessian_vec(&self, x: &[f64], v: &[f64], out: &mut [f64]);
        /// The (L0, L1) constants, derived in each type's documentation.
        fn smoothness(&self) -> Smoothness;
        /// `f* = inf f` when known.
        fn minimum(&self) -> Option<f64>;
        /// Short identifier for reports.
        fn name(&self) -> &'static str;
        /// Whether `∂_j f` depends on `x_j` alone (a sum of one-coordinate terms). `false` unless
        /// a type says otherwise; the SDE models use it to declare diagonal noise.
        fn is_separable(&self) -> bool {
            false
        }
        /// Mean loss on held-out data, for losses defined by a data set (`None` otherwise).
        fn test_loss(&self, _x: &[f64]) -> Option<f64> {
            None
        }
        /// Held-out classification accuracy, for losses on class data (`None` otherwise).
        fn test_accuracy(&self, _x: &[f64]) -> Option<f64> {
            None
        }
    }
    /// Any built-in loss, for runtime configuration; implements [`Loss`] by `match`.
    #[derive(Debug, Clone, PartialEq)]
    pub enum LossKind;
    /// `[loss]` without `x0`: the objective, built for the dimension `d` (the length of `x0`) by
    /// [`LossSpec::build`].
    pub enum LossSpec;
}

#[inline]
fn check_dims(d: usize, x: &[f64], out: &[f64]) {
    assert_eq!(
        x.len(),
        d,
        "input has length {} but the loss has dimension {d}",
        x.len()
    );
    assert_eq!(
        out.len(),
        d,
        "output has length {} but the loss has dimension {d}",
        out.len()
    );
}

// A separable loss is `Σ_j φ(c_j, x_j)` with per-coordinate coefficients `c_j`: its value,
// gradient and Hessian-vector product are one loop each, written once here and inlined with
// the kind's `φ`, `φ'`, `φ''`.

/// `Σ_j phi(c_j, x_j)`.
#[inline]
fn separable_value<C>(
    coeffs: impl Iterator<Item = C>,
    d: usize,
    x: &[f64],
    phi: impl Fn(C, f64) -> f64,
) -> f64 {
    assert_eq!(x.len(), d);
    coeffs.zip(x).map(|(c, &x)| phi(c, x)).sum::<f64>()
}

/// `g_j = dphi(c_j, x_j)`.
#[inline]
fn separable_gradient<C>(
    coeffs: impl Iterator<Item = C>,
    d: usize,
    x: &[f64],
    g: &mut [f64],
    dphi: impl Fn(C, f64) -> f64,
) {
    check_dims(d, x, g);
    for ((g, c), &x) in g.iter_mut().zip(coeffs).zip(x) {
        *g = dphi(c, x);
    }
}

/// `out_j = ddphi(c_j, x_j) v_j`.
#[inline]
fn separable_hessian_vec<C>(
    coeffs: impl Iterator<Item = C>,
    (x, v): (&[f64], &[f64]),
    out: &mut [f64],
    ddphi: impl Fn(C, f64) -> f64,
) {
    check_dims(out.len(), x, out);
    check_dims(out.len(), v, out);
    for (((o, c), &x), v) in out.iter_mut().zip(coeffs).zip(x).zip(v) {
        *o = ddphi(c, x) * v;
    }
}

// ---------------------------------------------------------------------------------------------

/// `f(x) = ½ Σ_j λ_j x_j²`: the parabola of MATH.md §7, one curvature per coordinate.
///
/// `∇f = λ∘x`, `∇²f = diag(λ)`, so `‖∇²f‖₂ = max_j |λ_j| =: L` everywhere: globally `L`-smooth,
/// `(L0, L1) = (L, 0)`. `f* = 0` when every `λ_j ≥ 0`; with a negative `λ_j` it is unbounded
/// below (`minimum() = None`).
#[derive(Debug, Clone, PartialEq)]
pub struct DiagonalQuadratic {
    lambda: Vec<f64>,
}

impl DiagonalQuadratic {
    /// Validates: at least one coordinate, every `λ_j` finite.
    pub fn new(lambda: Vec<f64>) -> Result<Self, ModelError> {
        require_nonempty("lambda", lambda.len())?;
        require_each("lambda", &lambda, require_finite)?;
        Ok(DiagonalQuadratic { lambda })
    }

    /// The curvatures `λ`.
    pub fn lambda(&self) -> &[f64] {
        &self.lambda
    }
}

impl Loss for DiagonalQuadratic {
    fn is_separable(&self) -> bool {
        true
    }
    fn dim(&self) -> usize {
        self.lambda.len()
    }
    fn value(&self, x: &[f64]) -> f64 {
        0.5 * separable_value(self.lambda.iter(), self.dim(), x, |l, x| l * x * x)
    }
    fn gradient(&self, x: &[f64], g: &mut [f64]) {
        separable_gradient(self.lambda.iter(), self.dim(), x, g, |l, x| l * x);
    }
    fn hessian_vec(&self, x: &[f64], v: &[f64], out: &mut [f64]) {
        check_dims(self.dim(), x, out);
        separable_hessian_vec(self.lambda.iter(), (x, v), out, |&l, _| l);
    }
    fn smoothness(&self) -> Smoothness {
        let l = self.lambda.iter().fold(0.0f64, |m, l| m.max(l.abs()));
        Smoothness {
            l0: l,
            l1: 0.0,
            l_smooth: Some(l),
        }
    }
    fn minimum(&self) -> Option<f64> {
        self.lambda.iter().all(|&l| l >= 0.0).then_some(0.0)
    }
    fn name(&self) -> &'static str {
        "diagonal_quadratic"
    }
}

crate::kind_spec! {
    /// `kind = "quadratic"`.
    pub struct DiagonalQuadraticSpec: KindSpec<Output = DiagonalQuadratic, Context = usize> {
        /// The Hessian diagonal.
        pub diag: Vec<f64> => "list of d numbers >= 0, required: the Hessian diagonal",
    }
    summary "diag = [d numbers >= 0]: f = 1/2 sum diag_j x_j^2";
    build(self, d) {
        require_len("diag", *d, self.diag.len())?;
        require_each("diag", &self.diag, require_nonnegative)?;
        DiagonalQuadratic::new(self.diag.clone()).map_err(|e| e.renamed("lambda", "diag"))
    }
}

// ---------------------------------------------------------------------------------------------

/// `f(x) = ½ xᵀ H x` with a full symmetric `H`.
///
/// `∇f = Hx`, `∇²f = H`: globally `L`-smooth with `L = ‖H‖₂ = max_i |eig_i(H)|` (eigenvalues by
/// the cyclic Jacobi method at construction), `(L0, L1) = (‖H‖₂, 0)`. `f* = 0` when `H` is positive
/// semi-definite (smallest eigenvalue ≥ `−1e-12 ‖H‖₂`), else `None`.
#[derive(Debug, Clone, PartialEq)]
pub struct Quadratic {
    d: usize,
    h: Vec<f64>,
    eigenvalues: Vec<f64>,
}

impl Quadratic {
    /// `H` given by rows. Validates: square, `d ≥ 1`, finite, symmetric up to
    /// `1e-12 · max(1, max|H_ij|)` (then symmetrised exactly).
    pub fn new(rows: Vec<Vec<f64>>) -> Result<Self, ModelError> {
        let d = rows.len();
        require_nonempty("h", d)?;
        let mut flat = Vec::with_capacity(d * d);
        for (i, row) in rows.iter().enumerate() {
            require_len(&format!("h[{i}]"), d, row.len())?;
            flat.extend_from_slice(row);
        }
        Self::from_row_major(d, flat)
    }

    /// `H` as a row-major `d × d` slice.
    pub fn from_row_major(d: usize, mut h: Vec<f64>) -> Result<Self, ModelError> {
        require_nonempty("h", d)?;
        require_len("h", d * d, h.len())?;
        for (k, &v) in h.iter().enumerate() {
            require_finite(&format!("h[{}][{}]", k / d, k % d), v)?;
        }
        let scale = h.iter().fold(1.0f64, |m, v| m.max(v.abs()));
        for i in 0..d {
            for j in (i + 1)..d {
                let (a, b) = (h[i * d + j], h[j * d + i]);
                if (a - b).abs() > 1e-12 * scale {
                    return Err(ModelError::invalid(
                        format!("h[{i}][{j}]"),
                        a,
                        format!("H must be symmetric, but h[{j}][{i}] = {b}"),
                    ));
                }
                let m = 0.5 * (a + b);
                h[i * d + j] = m;
                h[j * d + i] = m;
            }
        }
        let eigenvalues = symmetric_eigenvalues(d, &h);
        Ok(Quadratic { d, h, eigenvalues })
    }

    /// Eigenvalues of `H`, ascending.
    pub fn eigenvalues(&self) -> &[f64] {
        &self.eigenvalues
    }

    /// `H`, row-major.
    pub fn matrix(&self) -> &[f64] {
        &self.h
    }

    fn mat_vec(&self, v: &[f64], out: &mut [f64]) {
        for (i, o) in out.iter_mut().enumerate() {
            let row = &self.h[i * self.d..(i + 1) * self.d];
            *o = row.iter().zip(v).map(|(a, b)| a * b).sum();
        }
    }
}

impl Loss for Quadratic {
    fn dim(&self) -> usize {
        self.d
    }
    fn value(&self, x: &[f64]) -> f64 {
        assert_eq!(x.len(), self.d);
        let mut s = 0.0;
        for i in 0..self.d {
            let row = &self.h[i * self.d..(i + 1) * self.d];
            s += x[i] * row.iter().zip(x).map(|(a, b)| a * b).sum::<f64>();
        }
        0.5 * s
    }
    fn gradient(&self, x: &[f64], g: &mut [f64]) {
        check_dims(self.d, x, g);
        self.mat_vec(x, g);
    }
    fn hessian_vec(&self, x: &[f64], v: &[f64], out: &mut [f64]) {
        check_dims(self.d, x, out);
        check_dims(self.d, v, out);
        self.mat_vec(v, out);
    }
    fn smoothness(&self) -> Smoothness {
        let l = self.eigenvalues.iter().fold(0.0f64, |m, e| m.max(e.abs()));
        Smoothness {
            l0: l,
            l1: 0.0,
            l_smooth: Some(l),
        }
    }
    fn minimum(&self) -> Option<f64> {
        let l = self.eigenvalues.iter().fold(0.0f64, |m, e| m.max(e.abs()));
        (self.eigenvalues[0] >= -1e-12 * l).then_some(0.0)
    }
    fn name(&self) -> &'static str {
        "quadratic"
    }
}

crate::kind_spec! {
    /// `kind = "quadratic_full"`.
    pub struct QuadraticSpec: KindSpec<Output = Quadratic, Context = usize> {
        /// The Hessian, row by row.
        pub matrix: Vec<Vec<f64>> => "list of d lists of d numbers, required: the Hessian A, row by row; symmetric and positive semi-definite",
    }
    summary "matrix = [[d x d]], symmetric PSD: f = 1/2 x^T A x";
    build(self, d) {
        require_len("matrix", *d, self.matrix.len())?;
        let q = Quadratic::new(self.matrix.clone()).map_err(|e| e.renamed("h", "matrix"))?;
        // A Hessian with a negative eigenvalue makes f unbounded below: no minimum to approach.
        let scale = self
            .matrix
            .iter()
            .flatten()
            .fold(1.0f64, |a, x| a.max(x.abs()));
        let min = q.eigenvalues().first().copied().unwrap_or(0.0);
        if min < -1e-10 * scale {
            return Err(ModelError::invalid(
                "matrix",
                "(the matrix)",
                format!(
                    "not positive semi-definite (smallest eigenvalue {min:.5e}), so f is unbounded below"
                ),
            ));
        }
        Ok(q)
    }
}

// ---------------------------------------------------------------------------------------------

/// `f(x) = Σ_j c_j x_j⁴ / 4` (default `c_j = 1`): the (L0, L1)-smooth, not L-smooth, sanity check
/// of MATH.md §2 and §8.3.
///
/// `∂_j f = c_j x_j³`, `∇²f = diag(3 c_j x_j²)`, so `‖∇²f‖₂ = max_j 3c_j x_j²` is unbounded: not
/// L-smooth. For each coordinate, `max_u (3cu² − c|u|³) = 4c` (at `|u| = 2`), hence
/// `3c_j x_j² ≤ 4c_j + |∂_j f| ≤ 4 max_j c_j + ‖∇f‖₂`: **(L0, L1) = (4 max_j c_j, 1)** in every
/// dimension, tight at `x = 2e_j` for the largest `c_j`. (Any `L1 > 0` works with `L0 = 4c/L1²`;
/// we report `L1 = 1`.) `f* = 0`.
#[derive(Debug, Clone, PartialEq)]
pub struct Quartic {
    c: Vec<f64>,
}

impl Quartic {
    /// Validates: at least one coordinate, every `c_j` finite and `> 0`.
    pub fn new(c: Vec<f64>) -> Result<Self, ModelError> {
        require_nonempty("c", c.len())?;
        require_each("c", &c, require_positive)?;
        Ok(Quartic { c })
    }

    /// `Σ x_j⁴/4` in dimension `d ≥ 1`.
    pub fn standard(d: usize) -> Result<Self, ModelError> {
        if d == 0 {
            return Err(ModelError::invalid("d", d, "dimension must be >= 1"));
        }
        Quartic::new(vec![1.0; d])
    }

    /// The coefficients `c`.
    pub fn coefficients(&self) -> &[f64] {
        &self.c
    }
}

impl Loss for Quartic {
    fn is_separable(&self) -> bool {
        true
    }
    fn dim(&self) -> usize {
        self.c.len()
    }
    fn value(&self, x: &[f64]) -> f64 {
        0.25 * separable_value(self.c.iter(), self.dim(), x, |c, x| {
            let x2 = x * x;
            c * x2 * x2
        })
    }
    fn gradient(&self, x: &[f64], g: &mut [f64]) {
        separable_gradient(self.c.iter(), self.dim(), x, g, |c, x| c * x * x * x);
    }
    fn hessian_vec(&self, x: &[f64], v: &[f64], out: &mut [f64]) {
        check_dims(self.dim(), x, out);
        separable_hessian_vec(self.c.iter(), (x, v), out, |c, x| 3.0 * c * x * x);
    }
    fn smoothness(&self) -> Smoothness {
        let cmax = self.c.iter().fold(0.0f64, |m, &c| m.max(c));
        Smoothness {
            l0: 4.0 * cmax,
            l1: 1.0,
            l_smooth: None,
        }
    }
    fn minimum(&self) -> Option<f64> {
        Some(0.0)
    }
    fn name(&self) -> &'static str {
        "quartic"
    }
}

crate::kind_spec! {
    /// `kind = "quartic"`.
    pub struct QuarticSpec: KindSpec<Output = Quartic, Context = usize> {
        /// The quartic coefficients (default all ones).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub coeffs: Option<Vec<f64>> => "list of d numbers > 0, default all ones: the quartic coefficients",
    }
    summary "coeffs = [d numbers > 0] (default ones): f = sum c_j x_j^4 / 4";
    build(self, d) {
        let c = self.coeffs.clone().unwrap_or_else(|| vec![1.0; *d]);
        require_len("coeffs", *d, c.len())?;
        Quartic::new(c).map_err(|e| e.renamed("c", "coeffs"))
    }
    fn fill_defaults(&mut self, d: &usize) {
        self.coeffs.get_or_insert_with(|| vec![1.0; *d]);
    }
}

// ---------------------------------------------------------------------------------------------

/// `f(x) = Σ_j (a_j x_j²/2 + c_j x_j⁴/4)` with `a_j ≥ 0`, `c_j ≥ 0` (MATH.md §8.3's mixed proxy).
///
/// `∂_j f = a_j x_j + c_j x_j³`, `∇²f = diag(a_j + 3c_j x_j²) ⪰ 0`, `‖∇²f‖₂ = max_j (a_j + 3c_j x_j²)`.
/// Per coordinate, with `u = |x_j| ≥ 0` and `|∂_j f| = a u + c u³` (same signs):
/// `a + 3cu² ≤ L0_j + |∂_j f|` holds for all `u` iff `L0_j ≥ sup_u h(u)`,
/// `h(u) = a + 3cu² − au − cu³`. `h'(u) = −3c(u² − 2u + a/(3c))` vanishes at
/// `u± = 1 ± √(1 − a/(3c))`; `u+` is the local maximum when `a ≤ 3c`, otherwise `h` decreases.
/// So `L0_j = max(a, h(u+))` (`= a` when `a > 3c` or `c = 0`), and `L0 = max_j L0_j`, `L1 = 1`:
/// `‖∇²f‖ ≤ max_j (L0_j + |∂_j f|) ≤ L0 + ‖∇f‖₂`. `a = 0` recovers `4c` of [`Quartic`]; the simpler
/// bound `L0 ≤ max_j (a_j + 4c_j)` also holds (`−au ≤ 0`). Globally `L`-smooth only when every
/// `c_j = 0` (then `L = max a_j`, `L1 = 0`). `f* = 0`.
#[derive(Debug, Clone, PartialEq)]
pub struct MixedQuadraticQuartic {
    a: Vec<f64>,
    c: Vec<f64>,
}

impl MixedQuadraticQuartic {
    /// Validates: same non-zero length, all entries finite and `≥ 0`.
    pub fn new(a: Vec<f64>, c: Vec<f64>) -> Result<Self, ModelError> {
        require_nonempty("a", a.len())?;
        require_len("c", a.len(), c.len())?;
        require_each("a", &a, require_nonnegative)?;
        require_each("c", &c, require_nonnegative)?;
        Ok(MixedQuadraticQuartic { a, c })
    }

    /// Quadratic coefficients `a`.
    pub fn quadratic_coefficients(&self) -> &[f64] {
        &self.a
    }

    /// Quartic coefficients `c`.
    pub fn quartic_coefficients(&self) -> &[f64] {
        &self.c
    }

    /// `L0_j` of one coordinate (see the type documentation).
    fn coordinate_l0(a: f64, c: f64) -> f64 {
        if c == 0.0 || a > 3.0 * c {
            return a;
        }
        let u = 1.0 + (1.0 - a / (3.0 * c)).sqrt();
        let h = a + 3.0 * c * u * u - a * u - c * u * u * u;
        h.max(a)
    }
}

impl Loss for MixedQuadraticQuartic {
    fn is_separable(&self) -> bool {
        true
    }
    fn dim(&self) -> usize {
        self.a.len()
    }
    fn value(&self, x: &[f64]) -> f64 {
        let coeffs = self.a.iter().zip(&self.c);
        separable_value(coeffs, self.dim(), x, |(a, c), x| {
            let x2 = x * x;
            0.5 * a * x2 + 0.25 * c * x2 * x2
        })
    }
    fn gradient(&self, x: &[f64], g: &mut [f64]) {
        let coeffs = self.a.iter().zip(&self.c);
        separable_gradient(coeffs, self.dim(), x, g, |(a, c), x| a * x + c * x * x * x);
    }
    fn hessian_vec(&self, x: &[f64], v: &[f64], out: &mut [f64]) {
        check_dims(self.dim(), x, out);
        let coeffs = self.a.iter().zip(&self.c);
        separable_hessian_vec(coeffs, (x, v), out, |(a, c), x| a + 3.0 * c * x * x);
    }
    fn smoothness(&self) -> Smoothness {
        let l0 = self
            .a
            .iter()
            .zip(&self.c)
            .fold(0.0f64, |m, (&a, &c)| m.max(Self::coordinate_l0(a, c)));
        if self.c.iter().all(|&c| c == 0.0) {
            Smoothness {
                l0,
                l1: 0.0,
                l_smooth: Some(l0),
            }
        } else {
            Smoothness {
                l0,
                l1: 1.0,
                l_smooth: None,
            }
        }
    }
    fn minimum(&self) -> Option<f64> {
        Some(0.0)
    }
    fn name(&self) -> &'static str {
        "mixed_quadratic_quartic"
    }
}

crate::kind_spec! {
    /// `kind = "mixed"`.
    pub struct MixedSpec: KindSpec<Output = MixedQuadraticQuartic, Context = usize> {
        /// Quadratic coefficients.
        pub diag: Vec<f64> => "list of d numbers >= 0, required: quadratic coefficients",
        /// Quartic coefficients.
        pub quartic: Vec<f64> => "list of d numbers >= 0, required: quartic coefficients",
    }
    summary "diag = [..], quartic = [..]: f = sum (a_j x_j^2/2 + b_j x_j^4/4)";
    build(self, d) {
        require_len("diag", *d, self.diag.len())?;
        require_len("quartic", *d, self.quartic.len())?;
        MixedQuadraticQuartic::new(self.diag.clone(), self.quartic.clone())
            .map_err(|e| e.renamed("a", "diag").renamed("c", "quartic"))
    }
}

// ---------------------------------------------------------------------------------------------

/// Linear least squares `f(x) = (1/2n) ‖Ax − b‖²`, `A ∈ R^{n×d}`.
///
/// `∇f = Hx − Aᵀb/n` and `∇²f = H := AᵀA/n` (both precomputed, so a gradient costs `O(d²)`), hence
/// globally `L`-smooth with `L = λ_max(H)`, `(L0, L1) = (L, 0)`. `f*` is computed at construction
/// from the normal equations (Cholesky); `None` when `AᵀA` is singular (e.g. `n < d`).
///
/// [`LeastSquares::synthetic`] recipe (all draws from `sde_core::derive_stream(seed, 0)`, in this
/// order): `A_ij ~ N(0,1)` row by row; `x_true ~ N(0, I_d)`; `ε_i ~ N(0,1)`;
/// `b = A x_true + noise_std · ε`.
#[derive(Debug, Clone, PartialEq)]
pub struct LeastSquares {
    n: usize,
    d: usize,
    a: Vec<f64>,
    b: Vec<f64>,
    h: Vec<f64>,
    atb: Vec<f64>,
    l: f64,
    solution: Option<Vec<f64>>,
    f_star: Option<f64>,
}

impl LeastSquares {
    /// From data: `a` row-major `n × d`, `b` of length `n`. Validates sizes and finiteness.
    pub fn new(n: usize, d: usize, a: Vec<f64>, b: Vec<f64>) -> Result<Self, ModelError> {
        if d == 0 {
            return Err(ModelError::invalid("d", d, "dimension must be >= 1"));
        }
        if n == 0 {
            return Err(ModelError::invalid("n", n, "need at least one sample"));
        }
        require_len("a", n * d, a.len())?;
        require_len("b", n, b.len())?;
        require_each("a", &a, require_finite)?;
        require_each("b", &b, require_finite)?;
        let inv_n = 1.0 / n as f64;
        let mut h = vec![0.0; d * d];
        let mut atb = vec![0.0; d];
        for (row, &bi) in a.chunks_exact(d).zip(&b) {
            for i in 0..d {
                atb[i] += row[i] * bi * inv_n;
                for j in 0..d {
                    h[i * d + j] += row[i] * row[j] * inv_n;
                }
            }
        }
        let eig = symmetric_eigenvalues(d, &h);
        let l = eig.iter().fold(0.0f64, |m, e| m.max(e.abs()));
        let mut ls = LeastSquares {
            n,
            d,
            a,
            b,
            h,
            atb,
            l,
            solution: None,
            f_star: None,
        };
        if let Some(x) = cholesky_solve(d, &ls.h, &ls.atb) {
            ls.f_star = Some(ls.value(&x));
            ls.solution = Some(x);
        }
        Ok(ls)
    }

    /// Synthetic problem with `n` samples in dimension `d` (recipe in the type documentation).
    pub fn synthetic(n: usize, d: usize, noise_std: f64, seed: u64) -> Result<Self, ModelError> {
        require_nonnegative("noise_std", noise_std)?;
        if n == 0 || d == 0 {
            // Same messages as `new`.
            return LeastSquares::new(n, d, Vec::new(), Vec::new());
        }
        let mut rng = sde_core::derive_stream(seed, 0);
        let a: Vec<f64> = (0..n * d).map(|_| rng.sample(StandardNormal)).collect();
        let x_true: Vec<f64> = (0..d).map(|_| rng.sample(StandardNormal)).collect();
        let b = a
            .chunks_exact(d)
            .map(|row| {
                let eps: f64 = rng.sample(StandardNormal);
                row.iter().zip(&x_true).map(|(a, x)| a * x).sum::<f64>() + noise_std * eps
            })
            .collect();
        LeastSquares::new(n, d, a, b)
    }

    /// Number of samples `n`.
    pub fn samples(&self) -> usize {
        self.n
    }

    /// The minimiser `x̂` when `AᵀA` is invertible.
    pub fn solution(&self) -> Option<&[f64]> {
        self.solution.as_deref()
    }
}

impl Loss for LeastSquares {
    fn dim(&self) -> usize {
        self.d
    }
    fn value(&self, x: &[f64]) -> f64 {
        assert_eq!(x.len(), self.d);
        // Row by row (not through H), so f stays accurate near its minimum.
        let s: f64 = self
            .a
            .chunks_exact(self.d)
            .zip(&self.b)
            .map(|(row, bi)| {
                let r = row.iter().zip(x).map(|(a, x)| a * x).sum::<f64>() - bi;
                r * r
            })
            .sum();
        0.5 * s / self.n as f64
    }
    fn gradient(&self, x: &[f64], g: &mut [f64]) {
        check_dims(self.d, x, g);
        for (i, gi) in g.iter_mut().enumerate() {
            let row = &self.h[i * self.d..(i + 1) * self.d];
            *gi = row.iter().zip(x).map(|(a, b)| a * b).sum::<f64>() - self.atb[i];
        }
    }
    fn hessian_vec(&self, x: &[f64], v: &[f64], out: &mut [f64]) {
        check_dims(self.d, x, out);
        check_dims(self.d, v, out);
        for (i, o) in out.iter_mut().enumerate() {
            let row = &self.h[i * self.d..(i + 1) * self.d];
            *o = row.iter().zip(v).map(|(a, b)| a * b).sum();
        }
    }
    fn smoothness(&self) -> Smoothness {
        Smoothness {
            l0: self.l,
            l1: 0.0,
            l_smooth: Some(self.l),
        }
    }
    fn minimum(&self) -> Option<f64> {
        self.f_star
    }
    fn name(&self) -> &'static str {
        "least_squares"
    }
}

/// Largest `samples` of [`LeastSquaresSpec`] (the design matrix is held in memory).
pub const MAX_SAMPLES: usize = 10_000_000;

crate::kind_spec! {
    /// `kind = "least_squares"`: a synthetic problem (see [`LeastSquares::synthetic`]).
    pub struct LeastSquaresSpec: KindSpec<Output = LeastSquares, Context = usize> {
        /// Rows of the design matrix.
        pub samples: usize => "integer in [1, 10000000], required: rows of the design matrix",
        /// Seed of the synthetic data.
        pub seed: u64 => "integer >= 0, required: seed of the synthetic data (independent of the experiment seed)",
        /// Standard deviation of the label noise.
        #[serde(default)]
        pub noise: f64 => "number >= 0, default 0: standard deviation of the label noise",
    }
    summary "samples, seed, noise = 0: f = |A x - y|^2 / (2 samples), random Gaussian A";
    build(self, d) {
        self.validate(d)?;
        LeastSquares::synthetic(self.samples, *d, self.noise, self.seed)
            .map_err(|e| e.renamed("noise_std", "noise").renamed("n", "samples"))
    }
    /// Without generating the data (`O(samples · d²)`).
    fn validate(&self, _d: &usize) -> Result<(), ModelError> {
        if self.samples == 0 || self.samples > MAX_SAMPLES {
            return Err(ModelError::invalid(
                "samples",
                self.samples,
                format!("must be in [1, {MAX_SAMPLES}]"),
            ));
        }
        require_nonnegative("noise", self.noise).map(|_| ())
    }
}

// ---------------------------------------------------------------------------------------------
// Small dense linear algebra (construction time only)
// ---------------------------------------------------------------------------------------------

/// Eigenvalues (ascending) of the symmetric row-major `d × d` matrix `a`, by the cyclic Jacobi
/// method (robust and accurate to a few ulps of `‖A‖`; `O(d³)` per sweep, construction time only).
/// Only the upper triangle's mirror image is assumed equal; pass a symmetric matrix.
pub fn symmetric_eigenvalues(d: usize, a: &[f64]) -> Vec<f64> {
    assert_eq!(a.len(), d * d, "matrix must be d × d");
    let mut m = a.to_vec();
    let frob = m.iter().map(|v| v * v).sum::<f64>().sqrt();
    for _sweep in 0..100 {
        let off: f64 = (0..d)
            .flat_map(|i| (0..d).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| m[i * d + j] * m[i * d + j])
            .sum::<f64>()
            .sqrt();
        if off <= 1e-15 * frob || off == 0.0 {
            break;
        }
        for p in 0..d {
            for q in (p + 1)..d {
                let apq = m[p * d + q];
                if apq == 0.0 {
                    continue;
                }
                let app = m[p * d + p];
                let aqq = m[q * d + q];
                let theta = (aqq - app) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..d {
                    let akp = m[k * d + p];
                    let akq = m[k * d + q];
                    m[k * d + p] = c * akp - s * akq;
                    m[k * d + q] = s * akp + c * akq;
                }
                for k in 0..d {
                    let apk = m[p * d + k];
                    let aqk = m[q * d + k];
                    m[p * d + k] = c * apk - s * aqk;
                    m[q * d + k] = s * apk + c * aqk;
                }
            }
        }
    }
    let mut eig: Vec<f64> = (0..d).map(|i| m[i * d + i]).collect();
    eig.sort_by(f64::total_cmp);
    eig
}

/// Solves `H x = r` for symmetric positive-definite `H` (row-major); `None` if the Cholesky
/// factorisation meets a pivot `≤ 1e-12 · max diag`.
fn cholesky_solve(d: usize, h: &[f64], r: &[f64]) -> Option<Vec<f64>> {
    let mut l = vec![0.0; d * d];
    let max_diag = (0..d).fold(0.0f64, |m, i| m.max(h[i * d + i]));
    for i in 0..d {
        for j in 0..=i {
            let s = h[i * d + j] - (0..j).map(|k| l[i * d + k] * l[j * d + k]).sum::<f64>();
            if i == j {
                if s <= 1e-12 * max_diag || s <= 0.0 {
                    return None;
                }
                l[i * d + i] = s.sqrt();
            } else {
                l[i * d + j] = s / l[j * d + j];
            }
        }
    }
    let mut y = vec![0.0; d];
    for i in 0..d {
        y[i] = (r[i] - (0..i).map(|k| l[i * d + k] * y[k]).sum::<f64>()) / l[i * d + i];
    }
    let mut x = vec![0.0; d];
    for i in (0..d).rev() {
        x[i] = (y[i] - ((i + 1)..d).map(|k| l[k * d + i] * x[k]).sum::<f64>()) / l[i * d + i];
    }
    Some(x)
}
