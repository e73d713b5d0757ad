//! Unbiased compressors for DCSGD (MATH.md §3) and the covariance they add (§5.3).
//!
//! A compressor `C_ξ` is unbiased, `E_ξ C(v) = v`, with variance parameter `ω`:
//! `E_ξ‖C(v) − v‖² ≤ ω‖v‖²`. DCSGD's SDEs need, per agent, the covariance
//! `Σ_C = Σ + E_Z Cov_ξ C(∇f + Z)` of one compressed stochastic gradient (§5.3). For diagonal noise
//! covariance `Σ = diag(noise_var)` all built-ins give a matrix of the form `diag − coef · u uᵀ`
//! ([`DiagMinusRankOne`]), whose square root can be applied in `O(d)` without a dense matrix
//! (MATH.md §10).
//!
//! The compressor's randomness must be independent of the gradient noise (§3, §10): pass it its
//! own stream (e.g. `sde_core::derive_stream(key, 1)`).

use crate::error::ModelError;
use crate::loss::l2_norm;
use rand::RngExt;
use sde_core::PathRng;

/// A symmetric matrix `diag(diag) − coef · u uᵀ` (`coef = 0`: diagonal; `coef < 0` is allowed,
/// i.e. diagonal plus rank one).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DiagMinusRankOne {
    /// Diagonal part `D`.
    pub diag: Vec<f64>,
    /// Coefficient `c` of the rank-one part.
    pub coef: f64,
    /// Vector `u` of the rank-one part (ignored when `coef = 0`).
    pub u: Vec<f64>,
}

impl DiagMinusRankOne {
    /// The zero `d × d` matrix (allocate once, then let [`Compressor::covariance`] overwrite it).
    pub fn zeros(d: usize) -> Self {
        DiagMinusRankOne {
            diag: vec![0.0; d],
            coef: 0.0,
            u: vec![0.0; d],
        }
    }

    /// Dimension `d`.
    pub fn dim(&self) -> usize {
        self.diag.len()
    }

    /// Resizes to `d` (no allocation once the capacity is there) and makes it diagonal with
    /// `diag = 0`, `coef = 0`, `u = 0`.
    pub fn reset(&mut self, d: usize) {
        self.diag.clear();
        self.diag.resize(d, 0.0);
        self.u.clear();
        self.u.resize(d, 0.0);
        self.coef = 0.0;
    }

    /// Trace `Σ D_j − c‖u‖²`.
    pub fn trace(&self) -> f64 {
        let tr: f64 = self.diag.iter().sum();
        if self.coef == 0.0 {
            tr
        } else {
            tr - self.coef * self.u.iter().map(|u| u * u).sum::<f64>()
        }
    }

    /// `out = (D − c uuᵀ) v`.
    pub fn mul_vec(&self, v: &[f64], out: &mut [f64]) {
        self.check(v, out);
        let uv: f64 = if self.coef == 0.0 {
            0.0
        } else {
            self.u.iter().zip(v).map(|(a, b)| a * b).sum()
        };
        for j in 0..self.dim() {
            out[j] = self.diag[j] * v[j] - self.coef * uv * self.u[j];
        }
    }

    fn check(&self, a: &[f64], b: &[f64]) {
        let d = self.dim();
        assert_eq!(
            self.u.len(),
            d,
            "u has length {} but diag has {d}",
            self.u.len()
        );
        assert_eq!(
            a.len(),
            d,
            "input has length {} but the matrix is {d} x {d}",
            a.len()
        );
        assert_eq!(
            b.len(),
            d,
            "output has length {} but the matrix is {d} x {d}",
            b.len()
        );
    }

    /// `out = B ξ` for a square root `B` with `B Bᵀ = D − c uuᵀ`, in `O(d)`, no allocation
    /// (see [`diag_minus_rank_one_sqrt_mul`] for the construction).
    pub fn apply_sqrt(&self, xi: &[f64], out: &mut [f64]) {
        self.check(xi, out);
        diag_minus_rank_one_sqrt_mul(&self.diag, self.coef, &self.u, xi, out);
    }

    /// The dense matrix, row by row (tests and diagnostics).
    pub fn to_dense(&self) -> Vec<Vec<f64>> {
        let d = self.dim();
        (0..d)
            .map(|i| {
                (0..d)
                    .map(|j| {
                        let diag = if i == j { self.diag[i] } else { 0.0 };
                        diag - self.coef * self.u[i] * self.u[j]
                    })
                    .collect()
            })
            .collect()
    }
}

/// `out = B ξ` for a square root `B` of `Σ = diag(diag) − coef · u uᵀ` (`B Bᵀ = Σ`), in `O(d)`
/// without forming a matrix — the slice form of [`DiagMinusRankOne::apply_sqrt`].
///
/// `B = D^{1/2}(I − α w wᵀ)` with `w = D^{−1/2}u / √q`, `q = ‖D^{−1/2}u‖²`. Then
/// `B Bᵀ = D − (2α − α²)/q · uuᵀ`, so `2α − α² = β := coef · q`, solved stably as
/// `α = β / (1 + √(1 − β))` (any `β ≤ 1`, negative `coef` included). `Σ` is PSD iff `β ≤ 1`; a
/// `β` above 1 by rounding is clamped to 1, and tiny negative `D_j` count as 0 (an entry with
/// `D_j ≤ 0` is dropped from `w`; a PSD matrix has `u_j = 0` there). Computed as
/// `out_j = √D_j ξ_j − α (p/q) u_j` with `p = Σ_j u_j ξ_j / √D_j`: two passes.
///
/// Panics if the slices differ in length.
pub fn diag_minus_rank_one_sqrt_mul(
    diag: &[f64],
    coef: f64,
    u: &[f64],
    xi: &[f64],
    out: &mut [f64],
) {
    let d = diag.len();
    assert!(
        u.len() == d && xi.len() == d && out.len() == d,
        "diag, u, xi, out must have equal lengths ({d}, {}, {}, {})",
        u.len(),
        xi.len(),
        out.len()
    );
    let mut q = 0.0;
    let mut p = 0.0;
    if coef != 0.0 {
        for ((&dj, &uj), &x) in diag.iter().zip(u).zip(xi) {
            if dj > 0.0 {
                q += uj * uj / dj;
                p += uj * x / dj.sqrt();
            }
        }
    }
    let alpha_over_q = if q > 0.0 {
        let beta = (coef * q).min(1.0);
        beta / (1.0 + (1.0 - beta).sqrt()) / q
    } else {
        0.0
    };
    for (((o, &dj), &uj), &x) in out.iter_mut().zip(diag).zip(u).zip(xi) {
        *o = if dj > 0.0 {
            dj.sqrt() * x - alpha_over_q * p * uj
        } else {
            0.0
        };
    }
}

pub mod rand_k_replace;

crate::registry! {
    family "compressor", context usize;
    kinds {
        Identity(Identity) = "identity" IdentitySpec,
        Bernoulli(BernoulliSparsifier) = "bernoulli" BernoulliSpec,
        RandK(RandK) = "rand_k" RandKSpec,
        Qsgd(Qsgd) = "qsgd" QsgdSpec,
        RandKReplace(rand_k_replace::RandKReplace) = "rand_k_replace" rand_k_replace::RandKReplaceSpec,
    }
    /// An unbiased compressor `C_ξ` (MATH.md §3).
    pub trait Compressor: Send + Sync {
        /// Writes `C_ξ(v)` into `out` (`out.len() == v.len()`), drawing `ξ` from `rng`.
        fn compress(&self, v: &[f64], rng: &mut PathRng, out: &mut [f64]);
        /// The variance parameter `ω` in dimension `d`: `E‖C(v) − v‖² ≤ ω‖v‖²`.
        fn omega(&self, d: usize) -> f64;
        /// `Σ_C = Σ + E_Z Cov_ξ C(∇f + Z)` (MATH.md §5.3) for `∇f = grad` and diagonal noise
        /// covariance `Σ = diag(noise_var)`, in the form `Σ_C = diag(diag) − coef · ∇f ∇fᵀ`: writes
        /// `diag` and returns `coef`. For every unbiased compressor here the only off-diagonal part is
        /// along `∇f` (rand-k), so sums over agents stay of this form — DCSGD's `Σ̄_C/N` too.
        fn covariance_parts(&self, grad: &[f64], noise_var: &[f64], diag: &mut [f64]) -> f64;
        /// `true` when [`Compressor::covariance_parts`] always returns `coef = 0`.
        fn covariance_is_diagonal(&self) -> bool;
        /// [`Compressor::covariance_parts`] as a [`DiagMinusRankOne`] (`u = grad`), written into
        /// `out` (resized to `d` if needed; no allocation once it has the capacity).
        fn covariance(&self, grad: &[f64], noise_var: &[f64], out: &mut DiagMinusRankOne) {
            check_pair(grad, noise_var);
            out.reset(grad.len());
            out.coef = self.covariance_parts(grad, noise_var, &mut out.diag);
            if out.coef != 0.0 {
                out.u.copy_from_slice(grad);
            }
        }
        /// Short identifier for reports.
        fn name(&self) -> &'static str;
    }
    /// Any built-in compressor, for runtime configuration; implements [`Compressor`] by `match`.
    #[derive(Debug, Clone, Copy, PartialEq)]
    pub enum CompressorKind;
    /// `optimizer.compressor`: the configuration of a compressor (MATH.md §3), built for the
    /// dimension `d` by [`CompressorSpec::build`].
    pub enum CompressorSpec;
}

#[inline]
fn check_pair(a: &[f64], b: &[f64]) {
    assert_eq!(
        a.len(),
        b.len(),
        "length mismatch: {} vs {}",
        a.len(),
        b.len()
    );
}

/// Uniform on `[0, 1)` with 53 random bits.
#[inline]
fn uniform(rng: &mut PathRng) -> f64 {
    rng.random::<f64>()
}

// ---------------------------------------------------------------------------------------------

/// `C(v) = v`: `ω = 0`, `Σ_C = Σ`. DCSGD with it is DSGD.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Identity;

impl Compressor for Identity {
    fn compress(&self, v: &[f64], _rng: &mut PathRng, out: &mut [f64]) {
        check_pair(v, out);
        out.copy_from_slice(v);
    }
    fn omega(&self, _d: usize) -> f64 {
        0.0
    }
    fn covariance_parts(&self, grad: &[f64], noise_var: &[f64], diag: &mut [f64]) -> f64 {
        check_pair(grad, noise_var);
        check_pair(grad, diag);
        diag.copy_from_slice(noise_var);
        0.0
    }
    fn covariance_is_diagonal(&self) -> bool {
        true
    }
    fn name(&self) -> &'static str {
        "identity"
    }
}

crate::kind_spec! {
    /// `kind = "identity"`.
    #[derive(Copy, Default)]
    pub struct IdentitySpec: KindSpec<Output = Identity, Context = usize> {}
    summary "no compression, omega = 0";
    build(self, _) { Ok(Identity) }
}

// ---------------------------------------------------------------------------------------------

/// Bernoulli random sparsification: `C(v)_j = b_j v_j / p`, `b_j ~ Bernoulli(p)` iid.
///
/// `ω = 1/p − 1` with equality in the variance bound; `Cov_ξ C(v) = ω diag(v∘v)`, so
/// `Σ_C = Σ + ω diag(∇f∘∇f + diag Σ)` (MATH.md §3, §5.3) — diagonal, exact.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BernoulliSparsifier {
    p: f64,
}

impl BernoulliSparsifier {
    /// Keep probability `p ∈ (0, 1]`.
    pub fn new(p: f64) -> Result<Self, ModelError> {
        if p.is_finite() && p > 0.0 && p <= 1.0 {
            Ok(BernoulliSparsifier { p })
        } else {
            Err(ModelError::invalid(
                "p",
                p,
                "keep probability must be in (0, 1]",
            ))
        }
    }

    /// Keep probability `p`.
    pub fn p(&self) -> f64 {
        self.p
    }
}

impl Compressor for BernoulliSparsifier {
    fn compress(&self, v: &[f64], rng: &mut PathRng, out: &mut [f64]) {
        check_pair(v, out);
        let inv_p = 1.0 / self.p;
        for (o, x) in out.iter_mut().zip(v) {
            *o = if uniform(rng) < self.p {
                x * inv_p
            } else {
                0.0
            };
        }
    }
    fn omega(&self, _d: usize) -> f64 {
        1.0 / self.p - 1.0
    }
    fn covariance_parts(&self, grad: &[f64], noise_var: &[f64], diag: &mut [f64]) -> f64 {
        check_pair(grad, noise_var);
        check_pair(grad, diag);
        let w = self.omega(grad.len());
        for ((o, g), s) in diag.iter_mut().zip(grad).zip(noise_var) {
            *o = s + w * (g * g + s);
        }
        0.0
    }
    fn covariance_is_diagonal(&self) -> bool {
        true
    }
    fn name(&self) -> &'static str {
        "bernoulli"
    }
}

crate::kind_spec! {
    /// `kind = "bernoulli"`.
    #[derive(Copy)]
    pub struct BernoulliSpec: KindSpec<Output = BernoulliSparsifier, Context = usize> {
        /// Keep probability.
        pub p: f64 => "number in (0, 1], required: keep probability",
    }
    summary "p in (0, 1]: omega = 1/p - 1";
    build(self, _) { BernoulliSparsifier::new(self.p) }
}

// ---------------------------------------------------------------------------------------------

/// rand-k: keep a uniform random `k`-subset `S` of the `d` coordinates, `C(v) = (d/k) Σ_{j∈S} v_j e_j`.
///
/// `ω = d/k − 1` (equality). `Cov_ξ C(v) = ω diag(v∘v) − c (vvᵀ − diag(v∘v))`,
/// `c = (d−k)/(k(d−1))` (MATH.md §3), so with `E_Z vvᵀ = ∇f∇fᵀ + Σ`, `E_Z diag(v∘v) = D`:
/// `Σ_C = Σ + ωD − c(∇f∇fᵀ + Σ − D)`, and for diagonal `Σ`, `Σ − D = −diag(∇f∘∇f)`, so
/// `Σ_C = diag(σ² + ω(∇f² + σ²) + c∇f²) − c ∇f∇fᵀ` — exact, diagonal minus rank one.
///
/// The subset is drawn by selection sampling (Knuth's Algorithm S): coordinate `j` is kept with
/// probability `(k − kept)/(d − j)`. One pass, one uniform per coordinate until the subset is
/// complete, no buffer — `compress` takes `&self`, so there is no scratch to shuffle in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RandK {
    k: usize,
    d: usize,
}

impl RandK {
    /// `k ∈ 1..=d`, `d ≥ 1`.
    pub fn new(k: usize, d: usize) -> Result<Self, ModelError> {
        if d == 0 {
            return Err(ModelError::invalid("d", d, "dimension must be >= 1"));
        }
        if k == 0 || k > d {
            return Err(ModelError::invalid(
                "k",
                k,
                format!("must be in 1..={d} (the dimension)"),
            ));
        }
        Ok(RandK { k, d })
    }

    /// Subset size `k`.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Dimension `d` this compressor was built for.
    pub fn dim(&self) -> usize {
        self.d
    }

    /// `c = (d−k)/(k(d−1))` (0 when `d = 1`).
    fn cross(&self) -> f64 {
        if self.d == 1 {
            0.0
        } else {
            (self.d - self.k) as f64 / (self.k as f64 * (self.d - 1) as f64)
        }
    }
}

impl Compressor for RandK {
    fn compress(&self, v: &[f64], rng: &mut PathRng, out: &mut [f64]) {
        check_pair(v, out);
        assert_eq!(
            v.len(),
            self.d,
            "rand-k built for d = {}, got {}",
            self.d,
            v.len()
        );
        let factor = self.d as f64 / self.k as f64;
        let mut needed = self.k;
        for (j, (o, x)) in out.iter_mut().zip(v).enumerate() {
            let remaining = self.d - j;
            let keep = needed > 0
                && (needed == remaining || uniform(rng) * (remaining as f64) < needed as f64);
            if keep {
                needed -= 1;
                *o = x * factor;
            } else {
                *o = 0.0;
            }
        }
    }
    /// `d/k − 1` for the dimension `d` this compressor was built for (the argument must match).
    fn omega(&self, d: usize) -> f64 {
        debug_assert_eq!(d, self.d, "rand-k built for d = {}", self.d);
        self.d as f64 / self.k as f64 - 1.0
    }
    fn covariance_parts(&self, grad: &[f64], noise_var: &[f64], diag: &mut [f64]) -> f64 {
        check_pair(grad, noise_var);
        check_pair(grad, diag);
        assert_eq!(grad.len(), self.d, "rand-k built for d = {}", self.d);
        let w = self.omega(self.d);
        let c = self.cross();
        for ((o, g), s) in diag.iter_mut().zip(grad).zip(noise_var) {
            *o = s + w * (g * g + s) + c * g * g;
        }
        c
    }
    /// Diagonal only when `k = d` (then `c = 0`: the identity up to relabelling).
    fn covariance_is_diagonal(&self) -> bool {
        self.cross() == 0.0
    }
    fn name(&self) -> &'static str {
        "rand_k"
    }
}

crate::kind_spec! {
    /// `kind = "rand_k"`.
    #[derive(Copy)]
    pub struct RandKSpec: KindSpec<Output = RandK, Context = usize> {
        /// Coordinates kept.
        pub k: usize => "integer in [1, d], required: coordinates kept",
    }
    summary "k in [1, d]: omega = d/k - 1";
    build(self, d) { RandK::new(self.k, *d) }
}

// ---------------------------------------------------------------------------------------------

/// QSGD with `s` levels (Alistarh et al. 2017): `C(v)_j = ‖v‖ sign(v_j) ζ_j / s`, where with
/// `r_j = s|v_j|/‖v‖` and `l_j = ⌊r_j⌋`, `ζ_j = l_j + 1` with probability `r_j − l_j`, else `l_j`
/// (independently over `j`). Unbiased; `ω = min(d/s², √d/s)`.
///
/// Given `v`, coordinates are independent, so `Cov_ξ C(v) = diag(u² h(r_j))` with `u = ‖v‖/s`
/// and `h(t) = frac(t)(1 − frac(t))` — exact ([`Qsgd::conditional_variance`]).
///
/// **`covariance` is an approximation** when `Σ ≠ 0`: `E_Z Cov_ξ C(∇f + Z)` has no closed form
/// (`‖v‖` couples the coordinates, `h` is not smooth), and only `diag Σ` is known here, not the
/// law of `Z`. We use a Gaussian-smoothed plug-in: `‖v‖` is replaced by its root mean square
/// `√(‖∇f‖² + Tr Σ)`, so `u = √(‖∇f‖² + Tr Σ)/s`, and the rounding variance is averaged over
/// `Z_j ~ N(0, σ_j²)` exactly: `Σ_C ≈ Σ + diag(u² E h((∂_j f + Z_j)/u))`
/// ([`expected_rounding_variance`]). It is **exact when `Σ = 0`** (noise-free gradients); with
/// noise, on the test case of tests/compress.rs (d = 5, `Tr Σ/‖∇f‖² ≈ 0.25`) its trace is within
/// 2% of a joint Monte Carlo, where the cruder `Σ + Cov_ξ C(∇f)` is 14–22% low. Its trace obeys
/// the ω bound of MATH.md §5.3: `E h(T_j) ≤ min(¼, E|T_j|)` and
/// `Σ_j E|T_j| ≤ √(d Σ_j E T_j²) = √d s`, so `Tr Σ_C ≤ Tr Σ + ω(‖∇f‖² + Tr Σ)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Qsgd {
    levels: u32,
}

impl Qsgd {
    /// `levels = s ≥ 1`.
    pub fn new(levels: u32) -> Result<Self, ModelError> {
        if levels == 0 {
            return Err(ModelError::invalid(
                "levels",
                levels,
                "QSGD needs s >= 1 levels",
            ));
        }
        Ok(Qsgd { levels })
    }

    /// Number of levels `s`.
    pub fn levels(&self) -> u32 {
        self.levels
    }

    /// Exact `diag Cov_ξ C(v)` for a fixed `v`: `(‖v‖/s)² p_j(1−p_j)`.
    pub fn conditional_variance(&self, v: &[f64], out: &mut [f64]) {
        check_pair(v, out);
        let norm = l2_norm(v);
        let s = f64::from(self.levels);
        if norm == 0.0 {
            out.fill(0.0);
            return;
        }
        let unit = norm / s;
        for (o, x) in out.iter_mut().zip(v) {
            let r = x.abs() / unit;
            let p = r - r.floor();
            *o = unit * unit * p * (1.0 - p);
        }
    }
}

impl Compressor for Qsgd {
    fn compress(&self, v: &[f64], rng: &mut PathRng, out: &mut [f64]) {
        check_pair(v, out);
        let norm = l2_norm(v);
        if norm == 0.0 {
            out.fill(0.0);
            return;
        }
        let unit = norm / f64::from(self.levels);
        for (o, x) in out.iter_mut().zip(v) {
            let r = x.abs() / unit;
            let l = r.floor();
            let level = if uniform(rng) < r - l { l + 1.0 } else { l };
            *o = (level * unit).copysign(*x);
        }
    }
    fn omega(&self, d: usize) -> f64 {
        let s = f64::from(self.levels);
        let d = d as f64;
        (d / (s * s)).min(d.sqrt() / s)
    }
    /// Gaussian-smoothed plug-in approximation; exact when `noise_var = 0` (see the type doc).
    fn covariance_parts(&self, grad: &[f64], noise_var: &[f64], diag: &mut [f64]) -> f64 {
        check_pair(grad, noise_var);
        check_pair(grad, diag);
        let rms2: f64 = grad.iter().map(|g| g * g).sum::<f64>() + noise_var.iter().sum::<f64>();
        if rms2 == 0.0 {
            diag.fill(0.0);
            return 0.0;
        }
        let u = rms2.sqrt() / f64::from(self.levels);
        for ((o, g), s2) in diag.iter_mut().zip(grad).zip(noise_var) {
            *o = s2 + u * u * expected_rounding_variance(g / u, s2.max(0.0).sqrt() / u);
        }
        0.0
    }
    fn covariance_is_diagonal(&self) -> bool {
        true
    }
    fn name(&self) -> &'static str {
        "qsgd"
    }
}

crate::kind_spec! {
    /// `kind = "qsgd"`.
    #[derive(Copy)]
    pub struct QsgdSpec: KindSpec<Output = Qsgd, Context = usize> {
        /// Quantization levels `s`.
        pub levels: u32 => "integer >= 1, required: quantization levels s",
    }
    summary "levels >= 1: omega = min(d/s^2, sqrt(d)/s)";
    build(self, _) { Qsgd::new(self.levels) }
}

/// `E[h(T)]` for `T ~ N(mean, sd²)` and `h(t) = frac(t)(1 − frac(t))`: the average variance of
/// stochastic rounding of `T` to the integer grid (used by [`Qsgd`]'s covariance).
///
/// `sd = 0`: `h(mean)`. `sd ≥ 1/4`: the Fourier series of the even, 1-periodic `h`,
/// `h(t) = 1/6 − Σ_{k≥1} cos(2πkt)/(π²k²)`, averaged term by term:
/// `1/6 − Σ_k cos(2πk·mean) e^{−2π²k²sd²}/(π²k²)` (≤ 12 terms to 1e-17). `sd < 1/4`: exact sum
/// over the unit intervals within 12 sd of the mean of the truncated-normal moments of
/// `h = t'(1 − t')`, `t' = T − n` (shifted so no large numbers cancel).
pub fn expected_rounding_variance(mean: f64, sd: f64) -> f64 {
    use crate::special::{normal_cdf, normal_pdf};
    use std::f64::consts::PI;
    if sd == 0.0 || !sd.is_finite() {
        if !sd.is_finite() {
            return if sd.is_nan() { f64::NAN } else { 1.0 / 6.0 };
        }
        let f = mean - mean.floor();
        return f * (1.0 - f);
    }
    if sd >= 0.25 {
        let mut acc = 1.0 / 6.0;
        for k in 1..64 {
            let kf = f64::from(k);
            let damp = (-2.0 * PI * PI * kf * kf * sd * sd).exp();
            if damp < 1e-18 {
                break;
            }
            acc -= (2.0 * PI * kf * mean).cos() * damp / (PI * PI * kf * kf);
        }
        return acc;
    }
    let lo = (mean - 12.0 * sd).floor();
    let hi = (mean + 12.0 * sd).floor();
    let mut acc = 0.0;
    let mut n = lo;
    while n <= hi {
        // T' = T − n ~ N(m, sd²) on [0, 1): E[T'(1 − T'); 0 ≤ T' < 1] = M1 − M2.
        let m = mean - n;
        let (a, b) = (-m / sd, (1.0 - m) / sd);
        let p = normal_cdf(b) - normal_cdf(a);
        let (pa, pb) = (normal_pdf(a), normal_pdf(b));
        let m1 = m * p + sd * (pa - pb);
        let m2 = (m * m + sd * sd) * p + 2.0 * m * sd * (pa - pb) + sd * sd * (a * pa - b * pb);
        acc += m1 - m2;
        n += 1.0;
    }
    acc
}

// ---------------------------------------------------------------------------------------------

impl Default for CompressorSpec {
    /// The identity.
    fn default() -> Self {
        CompressorSpec::Identity(IdentitySpec {})
    }
}
