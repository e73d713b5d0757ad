//! Common random numbers between a discrete optimizer and its SDE model (issue 7, item 3).
//!
//! A weak-error study estimates `E g(x_k) − E g(X_{kη})`. If the discrete step and the SDE's
//! Brownian increment over the same iteration are driven by the same standard normals, the
//! paired difference has a far smaller variance than two independent ensembles, while each side
//! keeps its exact law. One coupled iteration consumes
//! [`GradientMethod::coupling_dim`](crate::method::GradientMethod::coupling_dim) iid standard
//! normals; [`GradientMethod::coupling_zeta`](crate::method::GradientMethod::coupling_zeta) maps
//! them to the `d` standard normals `ζ` that drive the SDE over the iteration, and
//! [`GradientMethod::sample_coupled`](crate::method::GradientMethod::sample_coupled) builds the
//! discrete direction from them.
//!
//! Every non-Gaussian draw is made by an inverse CDF evaluated at `Φ(ν)` of a driving normal `ν`
//! (the probability integral transform: `Φ(ν)` is uniform, so `F⁻¹(Φ(ν))` has law `F` exactly),
//! which makes the draw a non-decreasing function of `ν` (comonotone with it), the coupling of
//! maximal correlation for a given pair of marginals. The building blocks are here:
//!
//! * [`NormalTails`]: `Φ(ν)` and `1 − Φ(ν)`, each with full relative precision in its tail.
//! * [`normal_quantile`], [`student_t_quantile`]: the inverse CDFs.
//! * [`Fold`]: `Φ(ν)` folded at the probability that the noisy gradient coordinate is negative,
//!   giving a side and an independent uniform "distance from the extreme" `δ`; sparsifiers
//!   keep the coordinates with the smallest `δ`, and the noise is rebuilt from the side and a
//!   uniform position.
//! * [`MaskedDraw`]: a kept/dropped indicator `b ~ Bernoulli(p)` and a noise value `T`
//!   **independent of `b`**, such that `b (g + sT)` is the quantile of its own law at `Φ(ν)`
//!   (Bernoulli sparsification).
//! * [`poisson_binomial_quantile`]: the number of successes among independent Bernoulli trials
//!   of different probabilities, at a given uniform (used by DSignSGD).
//! * [`BernoulliAverage`]: the quantile of the agent average of Bernoulli-sparsified Gaussian
//!   gradients (identical agents), a binomial mixture of normals.
//! * [`RandKAverage`]: the agent average of rand-`k`-compressed Gaussian gradients (identical
//!   agents), coordinate by coordinate from its law given the coordinates already drawn (the
//!   agents' pick counts as a hidden Markov chain), on the normals of [`cholesky_normals`].
//!
//! Which method uses what is tabulated in [`crate::method`]. Two kinds of coupling:
//! *aggregate* (the `d` normals are `ζ` itself and each coordinate of the agent average is the
//! quantile of its own law at `Φ(ζ_j)`: DSGD Gaussian, DCSGD Bernoulli with identical Gaussian
//! agents, DSignSGD; for rand-k, whose coordinates are dependent, the quantile of its law given
//! the earlier coordinates at `Φ(ζ'_j)`, `ζ' = L⁻¹Bζ`) and *per agent* (`N d` normals `ν_ij`, `ζ_j = Σ_i ν_ij/√N`, each agent's
//! draw comonotone with its own `ν_i·`). The aggregate one is much stronger: the correlation of
//! a per-agent coupling with `ζ_j` is only the per-agent correlation (an average of independent
//! comonotone pairs), and with heterogeneous agents `ζ` weighs all agents equally whatever their
//! variances (`coupling_zeta` does not see `g`).
//!
//! **Using it** (what a study engine does per iteration `k`): draw `coupling_dim()` normals,
//! `ζ = coupling_zeta(normals)`, step the discrete side with
//! [`Optimizer::step_coupled`](crate::optimizer::Optimizer::step_coupled), and give the SDE the
//! Brownian increment `W = −√η ζ` over `[kη, (k+1)η]`; substep increments come from the
//! Brownian bridge (`m` iid `N(0, η/m)` shifted by `(W − Σ)/m` each), which has exactly the
//! conditional law of the substep increments given their sum. Both marginals are exact, so
//! `E g(x_k)` and `E g(X_{kη})` are unchanged; only the variance of their paired difference
//! drops. Measured (examples/coupling_variance.rs, model (A), loss at `T = 1`, 20 000 paths,
//! `N = 8`, `d = 2`) as `(Var d + Var s)/Var(d − s)`: DCSGD Bernoulli `p = 1/2` 119 / 212
//! (`η = 0.1 / 0.025`; per agent 9.7 / 11.0), DCSGD rand-1 4.0 / 4.3, DSignSGD Student-t
//! `ν = 3` 36 / 38, `ν = 1.5` 37 / 39. rand-k with the aggregate coupling (model (B), 16
//! substeps, `σ0 = 0.5`, diagonal quadratic, `N = 8`; per agent in brackets): rand-1 `d = 2`
//! (the mixed problem above) 77 / 140 (4.0 / 4.3 under (A)), rand-1 `d = 3` 35 / 44 (2.8 / 3.0),
//! rand-2 `d = 3` 246 / 488 (7.2 / 7.3), rand-1 `d = 10` 3.6 / 5.8 (1.45 / 1.66), rand-2
//! `d = 10` 12 / 16 (2.05 / 2.21). What limits `k/d` small is the law itself, not the
//! coupling: no coupling of one coordinate `u_j` (for `d = 10`, `k = 1`, `N = 8` an atom of
//! 0.43 at 0) with a normal of its variance has a residual below the squared Wasserstein-2
//! distance, the comonotone one: 0.14–0.18 of the variance for rand-1 `d = 10`, 0.04–0.06 for
//! rand-2 `d = 10`, 0.012–0.025 for rand-1 `d = 3`, 0.001–0.004 for rand-2 `d = 3` (at
//! `g_j ∈ [0.2, 2]`, `s_j = 0.5`; computed by quadrature), against measured per-draw residuals
//! of 0.023–0.03 (rand-1 `d = 3`) and 0.003–0.01 (rand-2 `d = 3`, tests/coupling.rs).
//!
//! **Cost** (`N = 8`, `d = 2`, instructions per draw under callgrind, coupled / `sample`):
//! DSGD Gaussian 500 / 1341, DCSGD Bernoulli aggregate 9.5k / 2.1k, per agent 6.4k / 2.1k,
//! rand-1 7.1k / 2.5k, DSignSGD Student-t `ν = 3` 4.4k / 3.9k, `ν = 1.5` 4.5k / 6.3k
//! (criterion: 0.05, 1.3, 1.8, 1.6, 0.77, 0.61 µs; benches/coupling.rs). What is left is
//! inherent to exact inverse-CDF draws: one normal tail per uniform, one normal quantile per
//! kept masked coordinate, and for the aggregate law `N` component tails per Halley round.
//!
//! Everything is a function of the normals and of the path's own `rng` (QSGD's rounding is the
//! only user of `rng`), so a path gives the same bits whatever the thread count.

use crate::noise::NoiseModel;
use crate::special::{normal_cdf, normal_pdf, student_t_cdf, student_t_pdf};

/// Grid step of the Mills-ratio table: Taylor expansions run at most 1/128 away from a node,
/// where degree 7 truncates at below 4e-20 relative (checked over all nodes in f64 with the
/// recurrence below), far under an ulp.
const MILLS_STEP: f64 = 1.0 / 64.0;
/// Nodes `z = 0, 1/64, …, 8`.
const MILLS_NODES: usize = 513;
/// Degree of the Taylor polynomial stored per node.
const MILLS_DEGREE: usize = 7;

/// Taylor coefficients `a_n = R^{(n)}(z)/n!`, `n = 0..=7`, of Mills' ratio
/// `R(z) = (1 − Φ(z))/φ(z)` at the nodes (32 KiB), built once: `a_0` from the slow but accurate
/// [`crate::special::normal_cdf`], the rest from `R' = zR − 1`, i.e.
/// `(n+1) a_{n+1} = z a_n + a_{n−1}` (Marsaglia 2004, "Evaluating the normal distribution").
/// Storing them makes an evaluation one Horner polynomial: the recurrence and its
/// convergence test per call were a serial chain of ~7 dependent steps and the main cost of
/// the coupled draws.
fn mills_table() -> &'static [[f64; MILLS_DEGREE + 1]; MILLS_NODES] {
    static TABLE: std::sync::OnceLock<[[f64; MILLS_DEGREE + 1]; MILLS_NODES]> =
        std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t = [[0.0; MILLS_DEGREE + 1]; MILLS_NODES];
        for (i, coef) in t.iter_mut().enumerate() {
            let z = i as f64 * MILLS_STEP;
            coef[0] = normal_cdf(-z) / normal_pdf(z);
            coef[1] = z * coef[0] - 1.0;
            for n in 1..MILLS_DEGREE {
                coef[n + 1] = (z * coef[n] + coef[n - 1]) / (n + 1) as f64;
            }
        }
        t
    })
}

/// The upper normal tail `1 − Φ(x) = φ(x) R(x)` for `x ≥ 0`, to ~1e-15·(30 + 2x²) relative
/// (tested; `x²` is the condition number of the tail): Mills' ratio by its degree-7 Taylor
/// polynomial around the nearest node ([`mills_table`]). Beyond the last node (`x > 8`, the
/// far tail) it defers to [`crate::special::normal_cdf`]. Why not that one everywhere: its
/// continued fraction costs 1–2.5 µs for `x ∈ [2, 3]`, and the couplings evaluate normal tails
/// several times per coordinate and agent.
fn upper_normal_tail(x: f64) -> f64 {
    upper_tail_with_pdf(x, normal_pdf(x))
}

/// [`upper_normal_tail`] given `φ(x)` (callers that need the density too share its `exp`).
#[inline]
fn upper_tail_with_pdf(x: f64, pdf: f64) -> f64 {
    let last = (MILLS_NODES - 1) as f64 * MILLS_STEP;
    if !(x <= last) {
        return if x.is_nan() { f64::NAN } else { normal_cdf(-x) };
    }
    // Nearest node by truncation of x/step + 1/2 (x ≥ 0 here): `f64::round` is a libm call. A
    // tie rounded either way leaves |h| ≤ step/2 + an ulp, where the bound above still holds.
    let i = (x * (1.0 / MILLS_STEP) + 0.5) as usize;
    let h = x - i as f64 * MILLS_STEP;
    let coef = &mills_table()[i];
    let mut sum = coef[MILLS_DEGREE];
    for c in coef[..MILLS_DEGREE].iter().rev() {
        sum = sum * h + c;
    }
    sum * pdf
}

/// `(1 − Φ(x), φ(x))` for any `x` (the tail above `x`, full precision when `x > 0`).
#[inline]
fn upper_tail_and_pdf(x: f64) -> (f64, f64) {
    let pdf = normal_pdf(x);
    let t = upper_tail_with_pdf(x.abs(), pdf);
    (if x >= 0.0 { t } else { 1.0 - t }, pdf)
}

/// Fast `Φ(x)` with full relative precision in the lower tail: Mills' ratio by its Taylor
/// series around tabulated nodes (Marsaglia 2004), about 20–50 ns against 1–2.5 µs for
/// [`crate::special::normal_cdf`]'s continued fraction at `|x| ∈ [2, 3]`; agrees with it to
/// `1e-15 (30 + 2x²)` relative (tests/coupling.rs; `x²` is the tail's condition number).
#[inline]
pub fn fast_normal_cdf(x: f64) -> f64 {
    if x <= 0.0 {
        upper_normal_tail(-x)
    } else {
        1.0 - upper_normal_tail(x)
    }
}

/// `Φ(ν)` and `1 − Φ(ν)` of a standard normal `ν`, both computed directly, so that neither
/// loses its relative precision in its own tail.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NormalTails {
    /// `U = Φ(ν)`.
    pub lower: f64,
    /// `1 − U = Φ(−ν)`.
    pub upper: f64,
}

impl NormalTails {
    #[inline]
    pub fn of(nu: f64) -> Self {
        let tail = upper_normal_tail(nu.abs());
        if nu <= 0.0 {
            NormalTails {
                lower: tail,
                upper: 1.0 - tail,
            }
        } else {
            NormalTails {
                lower: 1.0 - tail,
                upper: tail,
            }
        }
    }
}

/// `Φ⁻¹(p)` for `p ∈ [0, 1]` (`±∞` at the ends): statrs' `erfc_inv` (Boost's rational
/// approximations) polished by one Halley step on our `erfc`, so the round trip
/// `Φ(Φ⁻¹(p)) = p` holds to a few ulp of `min(p, 1 − p)` (tests/coupling.rs). Pass the smaller
/// tail when you have it: `Φ⁻¹(p) = −Φ⁻¹(1 − p)` is exact, `1 − p` of a tiny `p` is not.
pub fn normal_quantile(p: f64) -> f64 {
    if p <= 0.0 {
        return f64::NEG_INFINITY;
    }
    if p >= 1.0 {
        return f64::INFINITY;
    }
    if p > 0.5 {
        return -normal_quantile(1.0 - p);
    }
    let x = -std::f64::consts::SQRT_2 * statrs::function::erf::erfc_inv(2.0 * p);
    if !x.is_finite() {
        return x;
    }
    let pdf = normal_pdf(x);
    if pdf <= 0.0 {
        return x;
    }
    // x ≤ 0 (p ≤ 1/2), so Φ(x) = 1 − Φ(−x) is the upper tail at −x, which shares φ's `exp`.
    let e = (upper_tail_with_pdf(-x, pdf) - p) / pdf;
    x - e / (1.0 + 0.5 * x * e)
}

/// The standard Student-t quantile `F_ν⁻¹(p)`, `p ∈ [0, 1]`. Start: the Cornish–Fisher
/// expansion in `1/ν` around the normal quantile (Abramowitz & Stegun 26.7.5), or for `ν < 3`
/// deep in the tail the power-law asymptote `F(t) ≈ K_ν ν^{(ν−1)/2} |t|^{−ν}`, whichever is
/// larger in magnitude (both undershoot where they are poor). Then Newton steps on
/// [`student_t_cdf`] (accurate in the lower tail) until the step is below 1e-12 relative (the
/// error after a quadratically convergent step is then far below an ulp). In the tail
/// (`p < 0.1`) Newton runs on `ln F` against `ln|t|`, nearly linear there, so a poor start
/// still converges; near the median on `F` itself. About 1.5 µs: statrs' incomplete-beta
/// inversion alone took 2.5–3 µs. `ν = ∞` is [`normal_quantile`]. The round trip
/// `F(F⁻¹(p)) = p` is tested to 1e-11 relative.
pub fn student_t_quantile(nu: f64, p: f64) -> f64 {
    if nu == f64::INFINITY {
        return normal_quantile(p);
    }
    if p <= 0.0 {
        return f64::NEG_INFINITY;
    }
    if p >= 1.0 {
        return f64::INFINITY;
    }
    if p > 0.5 {
        return -student_t_quantile(nu, 1.0 - p);
    }
    if p == 0.5 {
        return 0.0;
    }
    let x = normal_quantile(p);
    let x2 = x * x;
    let g1 = (x2 + 1.0) * x / 4.0;
    let g2 = ((5.0 * x2 + 16.0) * x2 + 3.0) * x / 96.0;
    let g3 = (((3.0 * x2 + 19.0) * x2 + 17.0) * x2 - 15.0) * x / 384.0;
    let g4 = ((((79.0 * x2 + 776.0) * x2 + 1482.0) * x2 - 1920.0) * x2 - 945.0) * x / 92160.0;
    let inv = 1.0 / nu;
    let mut t = x + inv * (g1 + inv * (g2 + inv * (g3 + inv * g4)));
    let tail = p < 0.1;
    if tail && nu < 3.0 {
        // K_ν ν^{(ν−1)/2} = p_ν(0) ν^{(ν−1)/2}; |t| = (that / p)^{1/ν}.
        let c = student_t_pdf(nu, 0.0) * nu.powf(0.5 * (nu - 1.0));
        let asym = -(c / p).powf(inv);
        if asym < t {
            t = asym;
        }
    }
    if !(t.is_finite() && t < 0.0) {
        t = -1.0;
    }
    for _ in 0..60 {
        let f = student_t_cdf(nu, t);
        let pdf = student_t_pdf(nu, t);
        if !(pdf > 0.0 && f > 0.0) {
            break;
        }
        let next = if tail {
            // x = ln(−t): d ln F / dx = pdf · t / F (< 0).
            let lx = (-t).ln();
            -(lx - (f.ln() - p.ln()) / (pdf * t / f)).exp()
        } else {
            let n = t - (f - p) / pdf;
            // Keep to the lower half: a long first step must not cross the median.
            if n < 0.0 {
                n
            } else {
                0.5 * t
            }
        };
        if !next.is_finite() {
            break;
        }
        let done = (next - t).abs() <= 1e-12 * t.abs();
        t = next;
        if done {
            break;
        }
    }
    t
}

/// The law of one agent's standardized noise coordinate `T` (`Z_j = s_j T`): what a coupled
/// draw needs to invert its CDF.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum StandardNoise {
    /// `T ~ N(0, 1)`.
    Gaussian,
    /// `T ~ t_ν`.
    StudentT(f64),
}

impl StandardNoise {
    pub fn of(noise: &NoiseModel) -> Self {
        match noise {
            NoiseModel::Gaussian(_) => StandardNoise::Gaussian,
            NoiseModel::StudentT(t) => StandardNoise::StudentT(t.nu()),
        }
    }

    /// `P(T ≤ y)`, accurate in the lower tail.
    #[inline]
    pub fn cdf(self, y: f64) -> f64 {
        match self {
            StandardNoise::Gaussian => fast_normal_cdf(y),
            StandardNoise::StudentT(nu) => student_t_cdf(nu, y),
        }
    }

    /// `(P(T ≤ −y), P(T ≤ y))`. The law is symmetric, so only the smaller of the two (the one at
    /// `−|y|`, accurate in its tail) is evaluated and the other is `1 −` it: that one is `≥ 1/2`,
    /// so the subtraction costs at most an ulp of relative precision. Half the CDF calls of
    /// evaluating both, which dominate the sign and fold couplings.
    #[inline]
    pub fn cdf_pair(self, y: f64) -> (f64, f64) {
        let small = self.cdf(-y.abs());
        if y >= 0.0 {
            (small, 1.0 - small)
        } else {
            (1.0 - small, small)
        }
    }

    /// `F⁻¹(p)`.
    #[inline]
    pub fn quantile(self, p: f64) -> f64 {
        match self {
            StandardNoise::Gaussian => normal_quantile(p),
            StandardNoise::StudentT(nu) => student_t_quantile(nu, p),
        }
    }

    /// `F⁻¹(Φ(ν))`, the comonotone transform of a standard normal (`ν` itself when Gaussian).
    #[inline]
    pub fn from_normal(self, nu: f64) -> f64 {
        match self {
            StandardNoise::Gaussian => nu,
            StandardNoise::StudentT(_) => {
                // Invert the smaller tail: symmetric law, so F⁻¹(1 − q) = −F⁻¹(q).
                if nu <= 0.0 {
                    self.quantile(fast_normal_cdf(nu))
                } else {
                    -self.quantile(fast_normal_cdf(-nu))
                }
            }
        }
    }
}

/// The uniform `U = Φ(ν)` folded at `a = P(g + sT < 0)`, the point where one agent's noisy
/// gradient coordinate `v = g + sT` changes sign: `side_low = (U < a)` and the distance to the
/// nearer end, `δ = U/a` on the low side, `(1 − U)/(1 − a)` on the high side.
///
/// Because `U` is uniform, `side_low ~ Bernoulli(a)` and `δ ~ U(0, 1)` **independently**, and
/// `v = F⁻¹(U)`-style values are recovered from any `δ' ~ U(0, 1)` independent of the side by
/// [`Fold::noise`]: `T = F⁻¹(a δ')` (low side, `v < 0`) or `T = −F⁻¹((1 − a) δ')` (high side,
/// `v > 0`), which has law `F` (a mixture, with weights `a` and `1 − a`, of `F` restricted below
/// and above `−g/s`). With `δ' = δ` this is just `T = F⁻¹(U)`. A small `δ` means an extreme `U`,
/// i.e. a large `|v|` on the side of `ν`'s sign: the sparsifiers keep the coordinates with
/// the smallest `δ` ([`MaskedDraw`], and rand-k in `Dcsgd::sample_coupled`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Fold {
    /// `U < a`: the value is on the negative side.
    pub low: bool,
    /// Distance of `U` to the nearer end, in units of its side's mass: `U(0, 1)`, independent
    /// of `low`.
    pub delta: f64,
    /// `a = P(v < 0) = F(−g/s)`.
    pub a: f64,
    /// `1 − a = P(v > 0) = F(g/s)` (computed directly, tail-accurate).
    pub a_c: f64,
}

impl Fold {
    /// `(a, 1 − a) = (P(v < 0), P(v > 0))` for `v = g + sT`, `T ~ law`. With `s = 0` the value is
    /// the constant `g` and `a` is `1`, `0` or `1/2` for `g < 0`, `g > 0`, `g = 0`. A function of
    /// `g/s` only: identical agents share it (one CDF evaluation per coordinate, not per agent).
    #[inline]
    pub fn masses(g: f64, s: f64, law: StandardNoise) -> (f64, f64) {
        if s > 0.0 {
            law.cdf_pair(g / s)
        } else if g < 0.0 {
            (1.0, 0.0)
        } else if g > 0.0 {
            (0.0, 1.0)
        } else {
            (0.5, 0.5)
        }
    }

    /// Folds `Φ(ν)` for the coordinate `v = g + sT`, `T ~ law` (see [`Fold::masses`]).
    #[inline]
    pub fn of(g: f64, s: f64, law: StandardNoise, nu: f64) -> Fold {
        let (a, a_c) = Fold::masses(g, s, law);
        Fold::at(a, a_c, nu)
    }

    /// Folds `Φ(ν)` at side masses `(a, 1 − a)` from [`Fold::masses`].
    #[inline]
    pub fn at(a: f64, a_c: f64, nu: f64) -> Fold {
        let u = NormalTails::of(nu);
        if u.lower < a {
            Fold {
                low: true,
                delta: u.lower / a,
                a,
                a_c,
            }
        } else {
            Fold {
                low: false,
                delta: (u.upper / a_c).min(1.0),
                a,
                a_c,
            }
        }
    }

    /// The fold's side and masses only (`delta = 0`), to rebuild a noise value on a known side.
    #[inline]
    pub fn side(g: f64, s: f64, law: StandardNoise, low: bool) -> Fold {
        let (a, a_c) = if s > 0.0 {
            law.cdf_pair(g / s)
        } else {
            (0.5, 0.5)
        };
        Fold {
            low,
            delta: 0.0,
            a,
            a_c,
        }
    }

    /// The standardized noise `T` on this fold's side at the uniform position `frac ∈ (0, 1)`
    /// from the outer end (see the type doc).
    #[inline]
    pub fn noise(&self, frac: f64, law: StandardNoise) -> f64 {
        if self.low {
            law.quantile(self.a * frac)
        } else {
            -law.quantile(self.a_c * frac)
        }
    }
}

/// One agent coordinate of a Bernoulli-masked noisy gradient, `b (g + s T)` with
/// `b ~ Bernoulli(p)` independent of `T ~ F`, drawn at the driving normal `ν`: kept iff the
/// [`Fold`] distance `δ < p`, with `T` from the fold at `δ/p` (kept; a dropped coordinate's
/// `T`, which would come from the fold at `(δ − p)/(1 − p)`, is discarded by the compressor and
/// reported as 0).
///
/// **Why the law is exact.** `δ ~ U(0, 1)` independent of the side, so `b = [δ < p]` is
/// `Bernoulli(p)`, and given `b` the rescaled position is again `U(0, 1)` and independent of the
/// side, whence `T ~ F` given either value of `b`: `b` and `T` are independent with the right
/// marginals. **Why it is the best coupling.** Written out, kept-low is `U < p a` with
/// `T = F⁻¹(U/p)` and kept-high is `1 − U < p(1 − a)` with `T = −F⁻¹((1 − U)/p)`: `b(g + sT)` is
/// the quantile function of its own law (an atom `1 − p` at 0 plus `p` times the law of
/// `g + sT`) evaluated at `U`, non-decreasing in `ν`: the comonotone coupling.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MaskedDraw {
    /// `b = 1`.
    pub kept: bool,
    /// `T` (meaningful when kept; its law given `kept` is `F`).
    pub t: f64,
}

impl MaskedDraw {
    /// `p ∈ (0, 1]`, gradient coordinate `g`, noise scale `s ≥ 0`, standardized noise law.
    #[inline]
    pub fn draw(p: f64, g: f64, s: f64, law: StandardNoise, nu: f64) -> MaskedDraw {
        if p >= 1.0 {
            return MaskedDraw {
                kept: true,
                t: law.from_normal(nu),
            };
        }
        MaskedDraw::draw_at(p, Fold::masses(g, s, law), s, law, nu)
    }

    /// [`MaskedDraw::draw`] given the side masses [`Fold::masses`]`(g, s, law)`, which
    /// identical agents share.
    #[inline]
    pub fn draw_at(p: f64, masses: (f64, f64), s: f64, law: StandardNoise, nu: f64) -> MaskedDraw {
        if p >= 1.0 {
            return MaskedDraw {
                kept: true,
                t: law.from_normal(nu),
            };
        }
        let f = Fold::at(masses.0, masses.1, nu);
        let kept = f.delta < p;
        // A dropped coordinate's noise is discarded by the compressor: not computed (it would
        // be `f.noise((δ − p)/(1 − p))`, independent of `b` in the same way).
        let t = if s == 0.0 || !kept {
            0.0
        } else {
            f.noise(f.delta / p, law)
        };
        MaskedDraw { kept, t }
    }
}

/// The quantile at the uniform `U = Φ(ζ)` (given as [`NormalTails`]) of the number `K` of
/// successes among independent trials with success probabilities `q_i` (failure probabilities
/// `r_i = 1 − q_i` passed separately so that both keep their tail precision): the
/// Poisson-binomial law, its pmf built by the usual dynamic programme
/// `P_{i}(k) = P_{i−1}(k) r_i + P_{i−1}(k−1) q_i` (`O(n²)`, `pmf` of length `n + 1`).
/// `K = min{k : P(K ≤ k) ≥ U}`, evaluated from the lower end when `U ≤ 1/2` and as
/// `min{k : P(K > k) ≤ 1 − U}` from the upper end otherwise, so both tails are accurate.
/// The law of `K` is exact (inverse-CDF sampling) and `K` is non-decreasing in `ζ`.
pub fn poisson_binomial_quantile(
    trials: impl Iterator<Item = (f64, f64)>,
    u: NormalTails,
    pmf: &mut [f64],
) -> usize {
    pmf.fill(0.0);
    pmf[0] = 1.0;
    let mut n = 0;
    for (q, r) in trials {
        n += 1;
        for k in (1..=n).rev() {
            pmf[k] = pmf[k] * r + pmf[k - 1] * q;
        }
        pmf[0] *= r;
    }
    pmf_quantile(&pmf[..=n], u)
}

/// `K = min{k : P(K ≤ k) ≥ U}` for a law on `0..=n` given by its `pmf` (length `n + 1`),
/// evaluated from the lower end when `U ≤ 1/2` and as `min{k : P(K > k) ≤ 1 − U}` from the
/// upper end otherwise, so both tails are accurate.
fn pmf_quantile(pmf: &[f64], u: NormalTails) -> usize {
    let n = pmf.len() - 1;
    if u.lower <= 0.5 {
        let mut cdf = 0.0;
        for (k, p) in pmf.iter().enumerate() {
            cdf += p;
            if cdf >= u.lower {
                return k;
            }
        }
        n
    } else {
        // S(k) = P(K > k); S(n) = 0 ≤ 1 − U always.
        let mut k = n;
        let mut survival = 0.0;
        while k > 0 {
            survival += pmf[k];
            if survival > u.upper {
                break;
            }
            k -= 1;
        }
        k
    }
}

/// The comonotone draw of the agent average of Bernoulli-sparsified Gaussian gradients, one
/// coordinate: `u = (1/(pN)) Σ_i b_i (g + s N_i)`, `b_i ~ Bernoulli(p)`, `N_i ~ N(0, 1)`, all
/// independent (identical agents). Given the number kept `K = k ~ Bin(N, p)`, `u` is
/// `N(k g/(pN), k s²/(pN)²)` (a point mass at 0 when `k = 0`), so its CDF is the finite mixture
/// `F(x) = w_0 [x ≥ 0] + Σ_{k≥1} w_k Φ((x − m_k)/σ_k)`, `w_k = C(N,k) p^k (1−p)^{N−k}`.
/// [`BernoulliAverage::quantile`] returns `F⁻¹(Φ(ζ))`: exact law (inverse-CDF sampling) and the
/// maximal correlation with `ζ` of any draw with this law, better than averaging per-agent
/// comonotone draws (whose correlation with `Σ_i ν_i/√N` is only the per-agent one).
#[derive(Clone, Debug)]
pub struct BernoulliAverage {
    n: usize,
    p: f64,
    /// `w_k`, `k = 0..=N`.
    weights: Vec<f64>,
    /// Per component `k = 0..=N` (index 0 unused): `(k/(pN), √k/(pN), √k)`, the mean and
    /// standard deviation of component `k` per unit `g` and `s`, and `√k` for its mass below 0,
    /// so the quantile's inner loop neither divides by `pN` nor takes square roots.
    components: Vec<(f64, f64, f64)>,
}

impl BernoulliAverage {
    /// `n ≥ 1` agents, keep probability `p ∈ (0, 1]`.
    pub fn new(n: usize, p: f64) -> Self {
        let mut weights = vec![0.0; n + 1];
        weights[0] = 1.0;
        for m in 1..=n {
            for k in (1..=m).rev() {
                weights[k] = weights[k] * (1.0 - p) + weights[k - 1] * p;
            }
            weights[0] *= 1.0 - p;
        }
        let scale = p * n as f64;
        let components = (0..=n)
            .map(|k| {
                let root = (k as f64).sqrt();
                (k as f64 / scale, root / scale, root)
            })
            .collect();
        BernoulliAverage {
            n,
            p,
            weights,
            components,
        }
    }

    /// `p`.
    pub fn keep_probability(&self) -> f64 {
        self.p
    }

    /// `F⁻¹(Φ(ζ))` for gradient coordinate `g` and noise scale `s > 0` (with `s = 0` the law is
    /// discrete: use [`poisson_binomial_quantile`]). Safeguarded Halley iteration on whichever
    /// tail of `F` is smaller (so both tails keep their precision), started at the
    /// Cornish–Fisher point `g + sd (ζ + γ(ζ² − 1)/6)` (mean, sd and skewness `γ` of the law),
    /// falling back to Newton where the Halley factor is not a small correction, moving at most
    /// `2(|x| + sd)` per step, and kept inside a bracket that bisects when a step leaves it; the
    /// atom at 0 is returned when `Φ(ζ)` falls in it. Stops when the step, or the next step
    /// predicted from the cubic convergence, is below `1e-14 (|x| + sd)`; the round trip
    /// `F(x) = Φ(ζ)` holds to 1e-11 of the smaller tail for `|ζ| ≤ 6` (tests/coupling.rs,
    /// against an independently computed mixture CDF). Cost: `N` normal tails for the mass
    /// below 0, then `N` per round.
    pub fn quantile(&self, g: f64, s: f64, zeta: f64) -> f64 {
        let u = NormalTails::of(zeta);
        // The atom at 0 spans [P(u < 0), P(u < 0) + w_0]. Only where the quantile lies
        // matters; an error of an ulp in the bounds moves a null set of U.
        let g_over_s = g / s;
        let below0: f64 = self
            .weights
            .iter()
            .zip(&self.components)
            .skip(1)
            .map(|(w, (_, _, root))| w * fast_normal_cdf(-root * g_over_s))
            .sum();
        if u.lower >= below0 && u.lower <= below0 + self.weights[0] {
            return 0.0;
        }
        let n = self.n as f64;
        let var = (s * s / self.p + (1.0 / self.p - 1.0) * g * g) / n;
        let sd = var.sqrt().max(1e-300);
        // Per agent Y = b(g + sN)/p has E Yᵏ = E(g + sN)ᵏ/p^{k−1}, so
        // κ₃(Y) = (g³ + 3gs²)/p² − 3g(g² + s²)/p + 2g³, and κ₃(u) = κ₃(Y)/N².
        let p = self.p;
        let kappa3 = ((g * g * g + 3.0 * g * s * s) / (p * p) - 3.0 * g * (g * g + s * s) / p
            + 2.0 * g * g * g)
            / (n * n);
        let skew = kappa3 / (sd * sd * sd);
        mixture_quantile(
            &self.weights,
            &self.components,
            g,
            s,
            zeta,
            u,
            below0,
            sd,
            skew,
        )
    }
}

/// `(F(x), F'(x), F''(x))` (`upper = false`) or `(1 − F(x), F'(x), F''(x))` (`upper = true`) on the
/// continuous part (`x ≠ 0`); `F` counts the atom at 0 as below every `x > 0`. Each tail is
/// summed from its own component tails, so it keeps its relative precision.
#[inline]
fn mixture_cdf(
    weights: &[f64],
    components: &[(f64, f64, f64)],
    g: f64,
    s: f64,
    x: f64,
    upper: bool,
) -> (f64, f64, f64) {
    let atom_counts = (x >= 0.0) != upper;
    let mut tail = if atom_counts { weights[0] } else { 0.0 };
    let (mut density, mut slope) = (0.0, 0.0);
    for (w, (mean_coef, sd_coef, _)) in weights.iter().zip(components).skip(1) {
        let inv_sd = 1.0 / (s * sd_coef);
        let z = (x - mean_coef * g) * inv_sd;
        let (above, pdf) = upper_tail_and_pdf(if upper { z } else { -z });
        tail += w * above;
        let wd = w * pdf * inv_sd;
        density += wd;
        slope -= wd * z * inv_sd;
    }
    (tail, density, slope)
}

/// The quantile iteration of [`BernoulliAverage::quantile`] for any weights `w_k` on the
/// components `k = 0..=N` of [`BernoulliAverage`] (shared with [`RandKAverage`], whose count
/// law is not binomial): `u` is `Φ(ζ)`, `below0` the mass below 0, `sd` and `skew` the law's
/// standard deviation and skewness (they only place the start). The caller has excluded the
/// atom at 0.
#[allow(clippy::too_many_arguments)]
fn mixture_quantile(
    weights: &[f64],
    components: &[(f64, f64, f64)],
    g: f64,
    s: f64,
    zeta: f64,
    u: NormalTails,
    below0: f64,
    sd: f64,
    skew: f64,
) -> f64 {
    let negative = u.lower < below0;
    // Bracket on the side of the atom the quantile lies on.
    let (mut lo, mut hi) = if negative {
        (f64::NEG_INFINITY, 0.0)
    } else {
        (0.0, f64::INFINITY)
    };
    // Start: Cornish–Fisher with the skewness, one order beyond the moment-matched normal,
    // which typically saves one Halley round (N component evaluations).
    let start = zeta + skew * (zeta * zeta - 1.0) / 6.0;
    // Only a start: the bracketed iteration below converges from anywhere.
    let start = if start.is_finite() { start } else { zeta };
    let mut x = (g + sd * start).clamp(
        if negative { f64::MIN } else { 0.0 },
        if negative { 0.0 } else { f64::MAX },
    );
    if x == 0.0 {
        x = if negative { -1e-3 * sd } else { 1e-3 * sd };
    }
    let mut prev_step: Option<f64> = None;
    for _ in 0..200 {
        // r > 0 ⇔ x is above the quantile; computed on the smaller tail.
        let upper = u.lower > 0.5;
        let (tail, dens, slope) = mixture_cdf(weights, components, g, s, x, upper);
        let r = if upper {
            u.upper - tail
        } else {
            tail - u.lower
        };
        if r > 0.0 {
            hi = x;
        } else {
            lo = x;
        }
        // Halley: F'' = Σ −w z φ(z)/σ², cubic convergence from the moment-matched start.
        // The Halley factor is used only while it is a correction (|c| < 1/2): in a gap
        // between well-separated components (small s/g) the density is tiny and curved, and
        // an uncapped 1/(1 − c) shrank a huge Newton step to a tiny one, which passed the
        // convergence test far from the root (caught by the round-trip test).
        let newton = r / dens;
        let c = 0.5 * newton * slope / dens;
        let halley = c.abs() < 0.5;
        let mut next = if dens > 0.0 {
            if halley {
                x - newton / (1.0 - c)
            } else {
                x - newton
            }
        } else {
            f64::NAN
        };
        // A Newton step from a gap between separated components (density nearly 0) can
        // land absurdly far inside a half-infinite bracket, after which bisection needs
        // hundreds of halvings: move at most 2(|x| + sd) at a time (and as a non-Halley
        // step).
        let reach = 2.0 * (x.abs() + sd);
        let halley = if (next - x).abs() > reach {
            next = x + reach.copysign(next - x);
            false
        } else {
            halley
        };
        let tol = 1e-14 * (x.abs() + sd);
        let step = (next - x).abs();
        if r == 0.0 || step <= tol {
            return next.clamp(lo, hi);
        }
        if next > lo && next < hi {
            // Halley converges cubically: after a step δ the next one is ≈ K δ³. Estimate
            // K from the last two steps (floored at 1/sd², the curvature scale of the
            // mixture, for when the previous step was still far from the root) and stop
            // when 4 K δ³ is within tolerance, instead of evaluating the whole mixture
            // once more only to confirm a step below it (a third of the evaluations).
            match prev_step {
                Some(prev) if halley => {
                    let k = (step / (prev * prev * prev)).max(1.0 / (sd * sd));
                    if 4.0 * k * step * step * step <= tol {
                        return next;
                    }
                }
                _ => {}
            }
            prev_step = if halley { Some(step) } else { None };
        } else {
            prev_step = None;
            next = if lo.is_finite() && hi.is_finite() {
                0.5 * (lo + hi)
            } else if lo.is_finite() {
                lo + 2.0 * sd.max(lo.abs())
            } else {
                hi - 2.0 * sd.max(hi.abs())
            };
        }
        if (next - x).abs() <= 1e-14 * (x.abs() + sd) {
            return next;
        }
        x = next;
    }
    x
}

/// Largest pick-histogram transition table [`RandKAverage`] builds (about 5 MB); beyond it the
/// per-coordinate filter would also cost more than the per-agent coupling saves.
const RAND_K_MAX_STEPS: usize = 200_000;

/// One transition of the agents' pick histogram over one coordinate: from state `from` to `to`
/// with `kappa` agents picking the coordinate, with probability `prob`.
#[derive(Clone, Copy, Debug)]
struct PickStep {
    from: u32,
    to: u32,
    kappa: u32,
    prob: f64,
}

/// The aggregate (Knothe–Rosenblatt) coupling of the agent average of rand-`k`-compressed
/// Gaussian gradients, identical agents:
/// `u_j = (d/(kN)) Σ_{i: j∈S_i} (g_j + s_j T_ij)`, `S_i` iid uniform `k`-subsets of the `d`
/// coordinates, `T_ij` iid `N(0, 1)` independent of the masks.
///
/// **The law.** With `K_j = #{i : j ∈ S_i}`, given the masks the `u_j` are independent and
/// `u_j ~ N(K_j g_j/(pN), K_j s_j²/(pN)²)`, `p = k/d`: the components of [`BernoulliAverage`].
/// Only the count vector `K` is not a product law (every agent picks exactly `k`). Drawing each
/// agent's subset by selection sampling (an agent with `r` picks among the first `j`
/// coordinates picks coordinate `j + 1` with probability `(k − r)/(d − j)`, independently of
/// the other agents) makes the histogram `h = (h_0, …, h_k)` of the agents' pick counts a Markov
/// chain over the coordinates, with `K_{j+1}` the number of agents that move up. It has
/// `C(N + k, k)` states (45 for `N = 8`, `k = 2`); the transitions per coordinate are
/// tabulated once.
///
/// **The draw.** Coordinate by coordinate, `u_j` is the quantile, at `Φ(ζ_j)`, of its law
/// given `u_1, …, u_{j−1}`: a mixture over `K_j` of the same normals, with weights from the
/// filtered law of `h` (a hidden Markov model forward pass: predict through the table, then
/// weigh by the likelihood of the drawn `u_j`). Sequential conditional quantiles (the
/// Knothe–Rosenblatt map) give exactly the joint law; each `u_j` is comonotone with `ζ_j`
/// given the past. For `N(0, C)` itself this map is the Cholesky factor `L`, so the caller
/// passes `ζ = L⁻¹Bζ_SDE` ([`cholesky_normals`], an orthogonal map of `ζ_SDE`, still
/// `N(0, I)`), whence `u − g → Bζ_SDE` as the law approaches its normal limit. With `s_j = 0`
/// the law of `u_j` is discrete (`K_j` itself, at `Φ(ζ_j)` or `Φ(−ζ_j)` by the sign of
/// `g_j`). No `rng` is used.
#[derive(Clone, Debug)]
pub struct RandKAverage {
    n: usize,
    d: usize,
    states: usize,
    initial: usize,
    /// Transitions of coordinate `j`: `steps[offsets[j]..offsets[j + 1]]`.
    offsets: Vec<usize>,
    steps: Vec<PickStep>,
    /// The normal components (its binomial weights are not used).
    mixture: BernoulliAverage,
    /// `ln √κ`, `κ = 0..=N` (entry 0 unused), for the likelihood of a drawn value.
    ln_root: Vec<f64>,
}

impl RandKAverage {
    /// `n ≥ 1` identical agents, dimension `d`, `k ∈ 1..d` kept coordinates; `None` when
    /// `k ≥ d` (no compression) or the table would exceed [`RAND_K_MAX_STEPS`] transitions
    /// (then use the per-agent coupling).
    pub fn new(n: usize, d: usize, k: usize) -> Option<Self> {
        if n == 0 || k == 0 || k >= d || u32::try_from(n).is_err() {
            return None;
        }
        let mut count = 1.0f64;
        for r in 1..=k {
            count *= (n + r) as f64 / r as f64;
        }
        if count > RAND_K_MAX_STEPS as f64 {
            return None;
        }
        // All histograms (h_0, …, h_k) with Σ h_r = n, in lexicographic order.
        let mut hists: Vec<Vec<u32>> = Vec::new();
        let mut h = vec![0u32; k + 1];
        fn fill(r: usize, left: u32, h: &mut Vec<u32>, out: &mut Vec<Vec<u32>>) {
            if r + 1 == h.len() {
                h[r] = left;
                out.push(h.clone());
                return;
            }
            for v in 0..=left {
                h[r] = v;
                fill(r + 1, left - v, h, out);
            }
        }
        fill(0, n as u32, &mut h, &mut hists);
        let index: std::collections::HashMap<Vec<u32>, usize> = hists
            .iter()
            .enumerate()
            .map(|(i, h)| (h.clone(), i))
            .collect();
        let mut initial_hist = vec![0u32; k + 1];
        initial_hist[0] = n as u32;
        let initial = index[&initial_hist];
        // binom[a][b] = C(a, b), a ≤ n.
        let mut binom = vec![vec![0.0f64; n + 1]; n + 1];
        for a in 0..=n {
            binom[a][0] = 1.0;
            for b in 1..=a {
                binom[a][b] = binom[a - 1][b - 1] + if b < a { binom[a - 1][b] } else { 0.0 };
            }
        }
        let states = hists.len();
        let mut reachable = vec![false; states];
        reachable[initial] = true;
        let mut offsets = vec![0usize];
        let mut steps = Vec::new();
        let mut moved = vec![0u32; k];
        let mut to = vec![0u32; k + 1];
        for j in 0..d {
            let remaining = (d - j) as f64;
            let pick: Vec<f64> = (0..k)
                .map(|r| ((k - r) as f64 / remaining).min(1.0))
                .collect();
            let mut next = vec![false; states];
            for (from, hist) in hists.iter().enumerate() {
                if !reachable[from] {
                    continue;
                }
                // Every vector 0 ≤ moved_r ≤ h_r (odometer).
                moved.fill(0);
                loop {
                    let mut prob = 1.0;
                    for r in 0..k {
                        let (hr, x) = (hist[r] as i32, moved[r] as i32);
                        prob *= binom[hist[r] as usize][moved[r] as usize]
                            * pick[r].powi(x)
                            * (1.0 - pick[r]).powi(hr - x);
                    }
                    if prob > 0.0 {
                        to.copy_from_slice(hist);
                        for r in 0..k {
                            to[r] -= moved[r];
                            to[r + 1] += moved[r];
                        }
                        let t = index[&to];
                        next[t] = true;
                        steps.push(PickStep {
                            from: from as u32,
                            to: t as u32,
                            kappa: moved.iter().sum(),
                            prob,
                        });
                        if steps.len() > RAND_K_MAX_STEPS {
                            return None;
                        }
                    }
                    let mut r = 0;
                    while r < k && moved[r] == hist[r] {
                        moved[r] = 0;
                        r += 1;
                    }
                    if r == k {
                        break;
                    }
                    moved[r] += 1;
                }
            }
            offsets.push(steps.len());
            reachable = next;
        }
        Some(RandKAverage {
            n,
            d,
            states,
            initial,
            offsets,
            steps,
            mixture: BernoulliAverage::new(n, k as f64 / d as f64),
            ln_root: (0..=n).map(|c| 0.5 * (c.max(1) as f64).ln()).collect(),
        })
    }

    /// Scratch [`RandKAverage::sample`] needs.
    pub fn scratch_len(&self) -> usize {
        2 * self.states + 2 * (self.n + 1)
    }

    /// Writes `u` (length `d`) for gradient `g`, noise scales `s` (`s_j ≥ 0`, `Z_ij = s_j T_ij`)
    /// and driving normals `zeta` (see the type doc). `scratch` holds
    /// [`RandKAverage::scratch_len`] values.
    pub fn sample(&self, g: &[f64], s: &[f64], zeta: &[f64], u: &mut [f64], scratch: &mut [f64]) {
        let (pi, rest) = scratch.split_at_mut(self.states);
        let (next, rest) = rest.split_at_mut(self.states);
        let (w, rest) = rest.split_at_mut(self.n + 1);
        let lik = &mut rest[..self.n + 1];
        pi.fill(0.0);
        pi[self.initial] = 1.0;
        for j in 0..self.d {
            let steps = &self.steps[self.offsets[j]..self.offsets[j + 1]];
            w.fill(0.0);
            for st in steps {
                w[st.kappa as usize] += pi[st.from as usize] * st.prob;
            }
            // π is normalised, so Σ w = 1 but for rounding; make it exact for the tails.
            let total: f64 = w.iter().sum();
            w.iter_mut().for_each(|x| *x /= total);
            u[j] = self.draw(w, g[j], s[j], zeta[j], lik);
            if j + 1 == self.d {
                break;
            }
            next.fill(0.0);
            for st in steps {
                next[st.to as usize] += pi[st.from as usize] * st.prob * lik[st.kappa as usize];
            }
            let total: f64 = next.iter().sum();
            for (p, x) in pi.iter_mut().zip(next.iter()) {
                *p = x / total;
            }
        }
    }

    /// One coordinate: `u_j` at `Φ(ζ)` from the count weights `w`, and in `lik` the likelihood
    /// of the drawn value under each count `κ` (up to a common factor).
    fn draw(&self, w: &[f64], g: f64, s: f64, zeta: f64, lik: &mut [f64]) -> f64 {
        let comps = &self.mixture.components;
        if !(s > 0.0) {
            if g == 0.0 {
                lik.fill(1.0);
                return 0.0;
            }
            // u = κ g/(pN), increasing in κ when g > 0: the count at Φ(±ζ).
            let tails = NormalTails::of(if g > 0.0 { zeta } else { -zeta });
            let kappa = pmf_quantile(w, tails);
            lik.fill(0.0);
            lik[kappa] = 1.0;
            return comps[kappa].0 * g;
        }
        let u = NormalTails::of(zeta);
        let g_over_s = g / s;
        let below0: f64 = w
            .iter()
            .zip(comps)
            .skip(1)
            .map(|(w, (_, _, root))| w * fast_normal_cdf(-root * g_over_s))
            .sum();
        if u.lower >= below0 && u.lower <= below0 + w[0] {
            lik.fill(0.0);
            lik[0] = 1.0;
            return 0.0;
        }
        // Moments of u = f (K g + s √K T), f = 1/(pN), only to start the iteration:
        // Var u = f²(g² Var K + s² E K), κ₃(u) = f³(g³ κ₃(K) + 3 g s² Var K).
        let mean_k: f64 = w.iter().enumerate().map(|(c, x)| c as f64 * x).sum();
        let (mut var_k, mut k3) = (0.0, 0.0);
        for (c, x) in w.iter().enumerate() {
            let dev = c as f64 - mean_k;
            var_k += x * dev * dev;
            k3 += x * dev * dev * dev;
        }
        let f = comps[1].0;
        let sd = (f * (g * g * var_k + s * s * mean_k).sqrt()).max(1e-300);
        let skew = f * f * f * (g * g * g * k3 + 3.0 * g * s * s * var_k) / (sd * sd * sd);
        let x = mixture_quantile(w, comps, g, s, zeta, u, below0, sd, skew);
        // Likelihood of x under count κ ≥ 1, relative to the largest (no underflow when x
        // lies between well-separated components).
        lik[0] = 0.0;
        let mut best = f64::NEG_INFINITY;
        for (((l, (mean_coef, sd_coef, _)), ln_root), wc) in
            lik.iter_mut().zip(comps).zip(&self.ln_root).zip(w).skip(1)
        {
            let z = (x - mean_coef * g) / (s * sd_coef);
            *l = -0.5 * z * z - ln_root;
            // Only counts that can occur set the scale: x comes from one of them.
            if *wc > 0.0 {
                best = best.max(*l);
            }
        }
        for l in lik.iter_mut().skip(1) {
            *l = (*l - best).exp();
        }
        x
    }
}

/// The normals of the Cholesky factor: given `y = Bζ` for a square root `B` of
/// `C = diag(diag) − coef · v vᵀ` (any `B` with `BBᵀ = C`), writes `out = L⁻¹ y = L⁻¹Bζ`, `L`
/// the lower Cholesky factor of `C`. `L⁻¹B` is orthogonal, so `out ~ N(0, I)` exactly when
/// `ζ ~ N(0, I)` is independent of `C`; then `Lout = y`. Row `j` is the standardised
/// conditional residual `(y_j − E[y_j | y_{<j}])/√Var[y_j | y_{<j}]`, in `O(d)` by
/// Sherman–Morrison on the leading block: with `a = Σ_{i<j} v_i²/D_i` and
/// `b = Σ_{i<j} v_i y_i/D_i`, `E[y_j | y_{<j}] = −coef v_j b/(1 − coef a)` and
/// `Var = D_j − coef v_j²/(1 − coef a)`. A coordinate with `D_j = 0` (then `v_j = 0` and
/// `y` does not involve `ζ_j`) passes `ζ_j` through. When `C` is numerically singular
/// (a pivot below `1e-9 D_j`) `out = ζ` (also exact: the choice depends on `C` only) and the
/// function returns `false`.
pub fn cholesky_normals(
    diag: &[f64],
    coef: f64,
    v: &[f64],
    y: &[f64],
    zeta: &[f64],
    out: &mut [f64],
) -> bool {
    let (mut a, mut b) = (0.0, 0.0);
    for j in 0..diag.len() {
        let dj = diag[j];
        if !(dj > 0.0) {
            out[j] = zeta[j];
            continue;
        }
        let denom = 1.0 - coef * a;
        let pivot = dj - coef * v[j] * v[j] / denom;
        if !(denom > 1e-12 && pivot > 1e-9 * dj) {
            out.copy_from_slice(zeta);
            return false;
        }
        out[j] = (y[j] + coef * v[j] * b / denom) / pivot.sqrt();
        a += v[j] * v[j] / dj;
        b += v[j] * y[j] / dj;
    }
    true
}
