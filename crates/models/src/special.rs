//! Special functions: Gauss's hypergeometric function ₂F₁, the Student-t CDF and density, and the
//! sign-mean function `Ξ_ν` of MATH.md §5.4–§5.5, with their Gaussian limits.
//!
//! # Two independent routes to `Ξ_ν`
//! MATH.md §5.4 writes the DSignSGD drift under Student-t noise through
//! `Ξ_ν(y) = F_ν(y) − 1/2 = y K_ν ₂F₁(1/2, (ν+1)/2; 3/2; −y²/ν)`, `K_ν = Γ((ν+1)/2)/(√(πν) Γ(ν/2))`.
//! Production code ([`xi`], [`student_t_cdf`]) uses the regularized incomplete beta function
//! (statrs `beta_reg`, MATH.md §5.5 and §10; [`xi_via_beta`]), except for two documented cases:
//! integer `ν ≤ 64`, where [`xi`] uses exact finite sums ~10× faster ([`xi_integer_nu`]), and
//! `ν > 1e4`, where statrs loses digits ([`NU_BETA_MAX`]). The ₂F₁ route ([`xi_via_hyp2f1`],
//! built on [`hyp2f1`]) is an independent algorithm (power series plus analytic continuation
//! instead of a continued fraction) kept to check the others: all agree to ≤ 1e-12 for
//! `ν ∈ [0.5, 100]`, `|y| ≤ 1e3` (measured max 1.0e-13; tests/special.rs).
//!
//! # Cost (test profile, one core)
//! `xi`: ~45 ns for `ν = 1, 3`, ~100 ns for `ν = 30`, ~400–600 ns for non-integer `ν` (statrs'
//! continued fraction). [`erf`]: ~70 ns. `xi_via_hyp2f1`: microseconds; not for hot loops.
//! [`XiTable`] (per-`ν` Chebyshev pieces, built in ~0.3 ms): ~25 ns for every `ν`
//! (`benches/xi.rs`), ≤ 1e-13 from the exact routes; [`crate::noise::StudentTNoise`] uses it
//! wherever [`xi`] would take the incomplete beta.
//!
//! # How ₂F₁ is evaluated near argument 1
//! After the Pfaff transform (MATH.md §5.5) the argument is `w = y²/(y²+ν) ∈ [0, 1)`. The power
//! series converges like `wⁿ`, so for `ν = 0.5, |y| = 1e3` (`1 − w = 2.5e-7`) it would need ~1e8
//! terms. We use instead the connection formula `w → 1 − w` (DLMF 15.8.4), which needs a few
//! terms when `w` is near 1. That formula has Gamma-function poles when `s = c − a − b` is an
//! integer (for Student-t, `s = −ν/2`, so every even `ν`). Two ways out, chosen automatically:
//! * **Unit parameter** (the Student-t case). When an upper parameter equals 1 the poles cancel
//!   in closed form: `Γ(c−1−b)/Γ(c−b) = 1/(c−1−b)`, and the second series collapses to
//!   `₂F₁(c−1, c−b; c−b; 1−w) = w^{1−c}`. So
//!   `F(1,b;c;w) = (c−1)/(c−1−b) · F(1,b;b−c+2;1−w) + Γ(c)Γ(b+1−c)/Γ(b) · w^{1−c}(1−w)^{c−1−b}`,
//!   which is regular for every `b + 1 − c ∉ {0, −1, −2, …}`. For Student-t, `b + 1 − c = ν/2 > 0`,
//!   so it is regular for **every** `ν > 0`, even integers included. No limit formula needed.
//! * **Generic parameters** with `s` within `H ≲ 2e-3` of an integer: the generic formula is
//!   evaluated at six perturbed values `c + kH` (`k = ±1, ±2, ±3`), where it is accurate to about
//!   `ε/H`, and the analytic function of `c` is interpolated (degree-5 Lagrange). `H` is adapted to
//!   `ln(1−w)` to balance rounding against interpolation error; the relative error stays
//!   ≲ 1e-12 for `1 − w ≥ 1e-9` (tested on `2F1(1,1;2;z)` and `2F1(½,½;1;z) = 1/AGM(1,√(1−z))`).
//!
//! Series are summed with Neumaier compensation and a running rescale (values are carried as
//! `mantissa · e^{scale}`), so large parameters (`ν` up to 1e6 and beyond) neither overflow nor lose
//! the tiny prefactors `(1−w)^b`. The direct series is preferred whenever its estimated cost is lower.

use statrs::function::beta::beta_reg;
use statrs::function::gamma::ln_gamma;
use std::f64::consts::{FRAC_1_SQRT_2, FRAC_2_SQRT_PI, LN_10, PI};

/// Above this `ν`, [`xi`] and [`student_t_cdf`] switch from statrs' incomplete beta to the ₂F₁
/// route. statrs computes the prefactor of `I_x(a, b)` as `exp(lnΓ(a+b) − lnΓ(a) − lnΓ(b) + …)`,
/// a difference of numbers of size `ν ln ν` that loses `≈ ε · ν ln ν` absolute: 3e-13 at
/// `ν = 1e4`, 4e-11 at `1e5`, 8e-9 at `1e7` (measured against the ₂F₁ route, which computes
/// `Γ((ν+1)/2)/Γ(ν/2)` without cancellation and matches the `O(1/ν)` expansion around the normal CDF).
pub const NU_BETA_MAX: f64 = 1e4;

/// Hard cap on series terms; only reachable for parameters far outside this crate's needs.
const MAX_TERMS: usize = 5_000_000;
/// Relative truncation tolerance of the series.
const SERIES_TOL: f64 = 1e-17;
/// Rescale step of the running sum (value = mantissa · e^scale).
const RESCALE_EXP10: i32 = 200;

// ---------------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------------

/// A number stored as `m · e^l`, so intermediate prefactors like `(1−w)^{(ν+1)/2}` or
/// `Γ(ν/2)` can be carried without overflow or underflow.
#[derive(Clone, Copy, Debug)]
struct Scaled {
    m: f64,
    l: f64,
}

impl Scaled {
    const ZERO: Scaled = Scaled { m: 0.0, l: 0.0 };

    fn nan() -> Scaled {
        Scaled {
            m: f64::NAN,
            l: 0.0,
        }
    }

    fn value(self) -> f64 {
        if self.m == 0.0 || self.l == 0.0 {
            return self.m;
        }
        if self.l.abs() < 600.0 {
            return self.m * self.l.exp();
        }
        // Large scale: combine in log space.
        self.m.signum() * (self.l + self.m.abs().ln()).exp()
    }

    fn add(self, o: Scaled) -> Scaled {
        if self.m == 0.0 {
            return o;
        }
        if o.m == 0.0 {
            return self;
        }
        let l = self.l.max(o.l);
        Scaled {
            m: self.m * (self.l - l).exp() + o.m * (o.l - l).exp(),
            l,
        }
    }

    fn mul(self, sign: f64, ln_factor: f64) -> Scaled {
        Scaled {
            m: self.m * sign,
            l: self.l + ln_factor,
        }
    }
}

fn is_nonpositive_integer(x: f64) -> bool {
    x <= 0.0 && x == x.floor()
}

/// `sin(πx)` with exact zeros at integers and argument reduction for large `|x|`.
fn sin_pi(x: f64) -> f64 {
    let r = x - 2.0 * (x / 2.0).round(); // r ∈ [−1, 1]
    if r == 0.0 || r.abs() == 1.0 {
        return 0.0;
    }
    (PI * r).sin()
}

/// `(ln|Γ(x)|, sign Γ(x))` for `x` not a non-positive integer (reflection for `x ≤ 0`).
fn ln_gamma_signed(x: f64) -> (f64, f64) {
    if x > 0.0 {
        (ln_gamma(x), 1.0)
    } else {
        // Γ(x) = π / (sin(πx) Γ(1 − x)), Γ(1 − x) > 0 for x ≤ 0.
        let s = sin_pi(x);
        (PI.ln() - s.abs().ln() - ln_gamma(1.0 - x), s.signum())
    }
}

/// `Γ(x + 1/2) / Γ(x)` for `x > 0`, to a few ulp for every `x` (including `x` ~ 1e8, where the
/// difference of two `ln Γ` values would lose ~8 digits). It is `√(πν) p_ν(0)` at `x = ν/2`.
///
/// For `x ≥ 30`, Stirling with the Binet remainder `J(x) = 1/(12x) − 1/(360x³) + 1/(1260x⁵) −
/// 1/(1680x⁷) + 1/(1188x⁹)` (next term < 1e-19 at `x = 30`), arranged so no large numbers
/// cancel: `Γ(x+½)/Γ(x) = √x · exp(x·ln1p(1/(2x)) − ½ + J(x+½) − J(x))`. Below 30, the
/// recurrence `R(x) = R(x+1) · x/(x+½)` shifts the argument up (≤ 30 factors). statrs' `gamma` is
/// not used: its relative error reaches ~2e-13 for `x` in 30..150.
pub fn gamma_ratio_half(x: f64) -> f64 {
    if x.is_nan() || x <= 0.0 {
        return f64::NAN;
    }
    if x == f64::INFINITY {
        return f64::INFINITY;
    }
    fn binet(x: f64) -> f64 {
        let r = 1.0 / x;
        let r2 = r * r;
        r * (1.0 / 12.0
            - r2 * (1.0 / 360.0 - r2 * (1.0 / 1260.0 - r2 * (1.0 / 1680.0 - r2 / 1188.0))))
    }
    let mut shifted = x;
    let mut factor = 1.0;
    while shifted < 30.0 {
        factor *= shifted / (shifted + 0.5);
        shifted += 1.0;
    }
    let e = shifted * (0.5 / shifted).ln_1p() - 0.5 + (binet(shifted + 0.5) - binet(shifted));
    factor * shifted.sqrt() * e.exp()
}

/// Rough number of terms the ₂F₁ power series at `x ∈ [0,1)` needs (peak of the terms, plus the
/// geometric tail). Only used to choose between the direct series and the connection formula.
fn series_cost(a: f64, b: f64, c: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 1.0;
    }
    if x >= 1.0 {
        return f64::INFINITY;
    }
    let start = series_start(a, b, c, x);
    let tail = (40.0 + (1.0 + start).ln()) / (-x.ln());
    let spread = 10.0 * (start / (1.0 - x)).sqrt();
    start + tail.max(spread)
}

/// Index after which the terms of the series have a fixed sign and decrease: past every
/// parameter sign change and past the largest root of
/// `(a+n)(b+n)x = (c+n)(n+1)` (where the term ratio crosses 1).
fn series_start(a: f64, b: f64, c: f64, x: f64) -> f64 {
    let qa = 1.0 - x;
    let qb = (c + 1.0) - (a + b) * x;
    let qc = c - a * b * x;
    let disc = qb * qb - 4.0 * qa * qc;
    let peak = if disc > 0.0 {
        ((-qb + disc.sqrt()) / (2.0 * qa)).max(0.0)
    } else {
        0.0
    };
    peak.max(-a).max(-b).max(-c).max(0.0)
}

/// Power series `Σ (a)_n (b)_n / ((c)_n n!) xⁿ` for `x ∈ [0, 1)`, Neumaier-compensated, with
/// running rescale. Stops when the remaining tail is below `SERIES_TOL` relative: past
/// `series_start` the term ratio is monotone in `n` and tends to `x`, so every later ratio is at
/// most `r = max(|ratio|, x)` and the tail is at most `|term| · r/(1−r)`.
fn series(a: f64, b: f64, c: f64, x: f64) -> Scaled {
    if x == 0.0 {
        return Scaled { m: 1.0, l: 0.0 };
    }
    let start = series_start(a, b, c, x);
    let hi = 10f64.powi(RESCALE_EXP10);
    let lo = 10f64.powi(-RESCALE_EXP10);
    let ln_step = f64::from(RESCALE_EXP10) * LN_10;
    let mut term = 1.0f64;
    let mut sum = 1.0f64;
    let mut comp = 0.0f64;
    let mut scale = 0.0f64;
    let mut small_in_a_row = 0;
    for n in 0..MAX_TERMS {
        let nf = n as f64;
        let ratio = (a + nf) * (b + nf) / ((c + nf) * (nf + 1.0)) * x;
        term *= ratio;
        if term == 0.0 {
            // Terminating (polynomial) series, or the terms underflowed.
            return Scaled {
                m: sum + comp,
                l: scale,
            };
        }
        neumaier_add(&mut sum, &mut comp, term);
        if sum.abs() > hi {
            sum *= lo;
            comp *= lo;
            term *= lo;
            scale += ln_step;
        }
        if nf >= start {
            let r = ratio.abs().max(x);
            if r < 1.0 && term.abs() * r / (1.0 - r) <= SERIES_TOL * (sum + comp).abs() {
                small_in_a_row += 1;
                if small_in_a_row >= 2 {
                    return Scaled {
                        m: sum + comp,
                        l: scale,
                    };
                }
            } else {
                small_in_a_row = 0;
            }
        }
    }
    Scaled::nan()
}

// ---------------------------------------------------------------------------------------------
// ₂F₁ on [0, 1): direct series or connection formulas
// ---------------------------------------------------------------------------------------------

/// Which evaluation of `F(a,b;c;w)`, `w ∈ [0,1)`, is used, with its estimated cost.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Route {
    Direct,
    /// Connection formula with `a = 1` (the flag says whether `b` was swapped into `a`).
    Unit {
        swapped: bool,
    },
    Generic,
    /// Generic formula interpolated across an integer `c − a − b`.
    NearInteger,
}

/// Half-width below which `c − a − b` is treated as (near) integer.
const NEAR_INT: f64 = 2e-3;

fn unit_ok(b: f64, c: f64) -> bool {
    !is_nonpositive_integer(b + 1.0 - c)
}

fn plan(a: f64, b: f64, c: f64, w: f64, wc: f64) -> (Route, f64) {
    let direct = series_cost(a, b, c, w);
    let mut best = (Route::Direct, direct);
    if a == 1.0 && unit_ok(b, c) {
        let cost = series_cost(1.0, b, b - c + 2.0, wc) + 5.0;
        if cost < best.1 {
            best = (Route::Unit { swapped: false }, cost);
        }
    } else if b == 1.0 && unit_ok(a, c) {
        let cost = series_cost(1.0, a, a - c + 2.0, wc) + 5.0;
        if cost < best.1 {
            best = (Route::Unit { swapped: true }, cost);
        }
    }
    if matches!(best.0, Route::Direct) {
        let s = c - a - b;
        let generic =
            series_cost(a, b, 1.0 - s, wc) + series_cost(c - a, c - b, 1.0 + s, wc) + 10.0;
        let near = (s - s.round()).abs() < NEAR_INT;
        // Interpolation costs six evaluations and is the least accurate route: weigh it heavily.
        let cost = if near { 30.0 * generic + 50.0 } else { generic };
        if cost < best.1 {
            best = (
                if near {
                    Route::NearInteger
                } else {
                    Route::Generic
                },
                cost,
            );
        }
    }
    best
}

/// `F(a,b;c;w)` for `w ∈ [0,1)` with `wc = 1 − w` given separately (so that `1 − w` keeps full
/// relative precision when `w` comes from a Pfaff transform of a large negative argument).
fn f_unit(a: f64, b: f64, c: f64, w: f64, wc: f64) -> Scaled {
    match plan(a, b, c, w, wc).0 {
        Route::Direct => series(a, b, c, w),
        Route::Unit { swapped: false } => connect_unit(b, c, w, wc),
        Route::Unit { swapped: true } => connect_unit(a, c, w, wc),
        Route::Generic => connect_generic(a, b, c, wc),
        Route::NearInteger => connect_near_integer(a, b, c, wc),
    }
}

/// `F(1,b;c;w) = (c−1)/(c−1−b)·F(1,b;b−c+2;1−w) + Γ(c)Γ(b+1−c)/Γ(b)·w^{1−c}(1−w)^{c−1−b}`,
/// the connection formula DLMF 15.8.4 with the pole pair cancelled analytically (module doc).
fn connect_unit(b: f64, c: f64, w: f64, wc: f64) -> Scaled {
    let ser = series(1.0, b, b - c + 2.0, wc);
    let t1 = ser.mul((c - 1.0) / (c - 1.0 - b), 0.0);
    let powers = (1.0 - c) * w.ln() + (c - 1.0 - b) * wc.ln();
    let t2 = if c == 1.5 && b > 0.5 {
        // Student-t case: Γ(3/2)Γ(b−½)/Γ(b) = (√π/2) / R(b−½), R = gamma_ratio_half, which is
        // accurate to a few ulp where three separate ln Γ values would leave ~1e-14.
        Scaled {
            m: 0.5 * PI.sqrt() / gamma_ratio_half(b - 0.5),
            l: powers,
        }
    } else {
        let (lc, sc) = ln_gamma_signed(c);
        let (lq, sq) = ln_gamma_signed(b + 1.0 - c);
        let (lb, sb) = ln_gamma_signed(b);
        Scaled {
            m: sc * sq * sb,
            l: lc + lq - lb + powers,
        }
    };
    t1.add(t2)
}

/// DLMF 15.8.4 for `s = c − a − b` not an integer:
/// `F = Γ(c)Γ(s)/(Γ(c−a)Γ(c−b)) F(a,b;1−s;1−w) + (1−w)^s Γ(c)Γ(−s)/(Γ(a)Γ(b)) F(c−a,c−b;1+s;1−w)`.
fn connect_generic(a: f64, b: f64, c: f64, wc: f64) -> Scaled {
    let s = c - a - b;
    let (lc, sc) = ln_gamma_signed(c);
    let t1 = if is_nonpositive_integer(c - a) || is_nonpositive_integer(c - b) {
        Scaled::ZERO // 1/Γ at a pole
    } else {
        let (ls, ss) = ln_gamma_signed(s);
        let (l1, s1) = ln_gamma_signed(c - a);
        let (l2, s2) = ln_gamma_signed(c - b);
        series(a, b, 1.0 - s, wc).mul(sc * ss * s1 * s2, lc + ls - l1 - l2)
    };
    let (lms, sms) = ln_gamma_signed(-s);
    let (la, sa) = ln_gamma_signed(a);
    let (lb, sb) = ln_gamma_signed(b);
    let t2 =
        series(c - a, c - b, 1.0 + s, wc).mul(sc * sms * sa * sb, lc + lms - la - lb + s * wc.ln());
    t1.add(t2)
}

/// Generic connection formula interpolated in `c` across the integer nearest to `c − a − b`.
/// `F` is analytic in `c`; the six nodes `c_k = a + b + m + kH`, `k = ±1, ±2, ±3`, keep the
/// generic formula `≥ H` away from its poles (rounding `≈ ε/H`), and the degree-5 interpolation
/// error is `≈ 36H⁶/720 · |∂⁶_c F|` with `|∂⁶_c F| ≲ |F| (1 + |ln(1−w)|)⁶`. `H` balances the two.
fn connect_near_integer(a: f64, b: f64, c: f64, wc: f64) -> Scaled {
    let s = c - a - b;
    let m = s.round();
    let delta = s - m;
    let big_l = 1.0 + (-wc.ln()).max(0.0);
    let h = (f64::EPSILON * 20.0 / big_l.powi(6))
        .powf(1.0 / 7.0)
        .clamp(NEAR_INT / 3.0, 2.0 * NEAR_INT);
    const K: [f64; 6] = [-3.0, -2.0, -1.0, 1.0, 2.0, 3.0];
    let mut vals = [Scaled::ZERO; 6];
    for (v, k) in vals.iter_mut().zip(K) {
        *v = connect_generic(a, b, a + b + m + k * h, wc);
    }
    let lref = vals.iter().map(|v| v.l).fold(f64::NEG_INFINITY, f64::max);
    let mut acc = 0.0;
    for (i, (v, ki)) in vals.iter().zip(K).enumerate() {
        let basis: f64 = K
            .iter()
            .enumerate()
            .filter(|&(j, _)| j != i)
            .map(|(_, &kj)| (delta - kj * h) / ((ki - kj) * h))
            .product();
        acc += basis * v.m * (v.l - lref).exp();
    }
    Scaled { m: acc, l: lref }
}

/// Gauss's hypergeometric function `₂F₁(a, b; c; z)` for real `z < 1` (and `z = 1` when
/// `c − a − b > 0`, by Gauss's sum; any finite `z` when the series terminates).
///
/// Returns NaN for non-finite input, for `c` a non-positive integer, and for `z > 1`.
///
/// Method (see the module doc for why): `z < 0` is first mapped to `w = z/(z−1) ∈ [0,1)` by one
/// of the two Pfaff transforms (DLMF 15.8.1) — the one whose parameters are all positive (no
/// cancelling terms), then the one with an upper parameter equal to 1 (closed-form continuation),
/// then the cheaper one. On `[0,1)` the direct series or a connection formula `w → 1−w` is
/// used, whichever is estimated cheaper. Accuracy: ~1e-14 relative for moderate parameters; the
/// Student-t parameters `(½, (ν+1)/2; 3/2; −y²/ν)` are accurate to ≤ 1e-13 for every `ν > 0`
/// and `y` (tests/special.rs); generic parameters with `c − a − b` within 2e-3 of an integer
/// lose accuracy slowly as `z → 1` (≲ 1e-12 down to `1 − z = 1e-9`).
pub fn hyp2f1(a: f64, b: f64, c: f64, z: f64) -> f64 {
    if !(a.is_finite() && b.is_finite() && c.is_finite() && z.is_finite()) {
        return f64::NAN;
    }
    if is_nonpositive_integer(c) {
        return f64::NAN;
    }
    if a == 0.0 || b == 0.0 || z == 0.0 {
        return 1.0;
    }
    if is_nonpositive_integer(a) || is_nonpositive_integer(b) {
        return polynomial(a, b, c, z);
    }
    if z > 1.0 {
        return f64::NAN;
    }
    if z == 1.0 {
        let s = c - a - b;
        if s <= 0.0 {
            return f64::NAN;
        }
        if is_nonpositive_integer(c - a) || is_nonpositive_integer(c - b) {
            return 0.0;
        }
        let (lc, sc) = ln_gamma_signed(c);
        let (ls, ss) = ln_gamma_signed(s);
        let (l1, s1) = ln_gamma_signed(c - a);
        let (l2, s2) = ln_gamma_signed(c - b);
        return sc * ss * s1 * s2 * (lc + ls - l1 - l2).exp();
    }
    if a == c {
        return (1.0 - z).powf(-b);
    }
    if b == c {
        return (1.0 - z).powf(-a);
    }
    if z > 0.0 {
        return f_unit(a, b, c, z, 1.0 - z).value();
    }
    // z < 0: Pfaff. w = z/(z−1) = (−z)/(1−z), 1 − w = 1/(1−z) (both without cancellation).
    let w = -z / (1.0 - z);
    let wc = 1.0 / (1.0 - z);
    // ln(1 − w) = −ln1p(−z) exactly enough: `wc.ln()` would carry the rounding of `wc`
    // (~1e-16 absolute), multiplied by the prefactor exponent, which can be ~1e6 (Student-t, ν ~ 1e6).
    let ln_wc = -(-z).ln_1p();
    // Variant 1: (1−z)^{−a} F(a, c−b; c; w);  variant 2: (1−z)^{−b} F(c−a, b; c; w).
    let score = |p: f64, q: f64| -> (bool, bool, f64) {
        let has_negative = p < 0.0 || q < 0.0 || c < 0.0;
        let unit = (p == 1.0 && unit_ok(q, c)) || (q == 1.0 && unit_ok(p, c));
        let cost = plan(p, q, c, w, wc).1;
        (has_negative, !unit, cost)
    };
    let s1 = score(a, c - b);
    let s2 = score(c - a, b);
    let first = s1
        .partial_cmp(&s2)
        .is_none_or(|o| o != std::cmp::Ordering::Greater);
    let (p, q, pre) = if first { (a, c - b, a) } else { (c - a, b, b) };
    f_unit(p, q, c, w, wc).mul(1.0, pre * ln_wc).value()
}

/// Terminating series (`a` or `b` a non-positive integer), evaluated directly at any finite `z`.
fn polynomial(a: f64, b: f64, c: f64, z: f64) -> f64 {
    let mut term = 1.0f64;
    let mut sum = 1.0f64;
    let mut comp = 0.0f64;
    let mut n = 0.0f64;
    loop {
        let ratio = (a + n) * (b + n) / ((c + n) * (n + 1.0)) * z;
        if ratio == 0.0 || !ratio.is_finite() {
            break;
        }
        term *= ratio;
        neumaier_add(&mut sum, &mut comp, term);
        n += 1.0;
    }
    sum + comp
}

// ---------------------------------------------------------------------------------------------
// Student-t
// ---------------------------------------------------------------------------------------------

/// `K_ν = Γ((ν+1)/2) / (√(νπ) Γ(ν/2)) = p_ν(0)`, the Student-t density at 0.
fn t_norm(nu: f64) -> f64 {
    gamma_ratio_half(nu / 2.0) / (nu * PI).sqrt()
}

/// `sum += term` with Neumaier's compensation: the rounding error of the addition is added to
/// `comp` (the caller's result is `sum + comp`).
#[inline]
fn neumaier_add(sum: &mut f64, comp: &mut f64, term: f64) {
    let t = *sum + term;
    *comp += if sum.abs() >= term.abs() {
        (*sum - t) + term
    } else {
        (term - t) + *sum
    };
    *sum = t;
}

fn nu_invalid(nu: f64) -> bool {
    nu.is_nan() || nu <= 0.0
}

/// The two cases every function of `(ν, y)` answers before its Student-t formula: NaN for
/// `ν ≤ 0` or NaN `y`, and for `ν = +∞` the normal limit `normal(y)`. `None` for finite `ν > 0`.
#[inline]
fn invalid_or_normal(nu: f64, y: f64, normal: fn(f64) -> f64) -> Option<f64> {
    if nu_invalid(nu) || y.is_nan() {
        Some(f64::NAN)
    } else if nu == f64::INFINITY {
        Some(normal(y))
    } else {
        None
    }
}

/// `(Ξ_ν(|y|), 1 − F_ν(|y|))` for `ν` finite, each with full *relative* precision.
///
/// With `z = y²/(ν+y²)` and `1 − z = ν/(ν+y²)` (both computed without cancellation):
/// `2Ξ_ν(|y|) = I_z(1/2, ν/2)` and `2(1 − F_ν(|y|)) = I_{1−z}(ν/2, 1/2)` (MATH.md §5.5).
/// statrs' continued fraction is accurate when its argument is below `(a+1)/(a+b+2)` and
/// otherwise evaluates `1 − I` internally; the two thresholds are complementary, so we call the
/// form that statrs evaluates directly, and get the other by subtraction from 1/2. This keeps the
/// tail mass accurate for large `|y|` (statrs would round `I` to 1 when `1 − z < 1e-15`).
fn xi_and_tail(nu: f64, t: f64) -> (f64, f64) {
    if t == f64::INFINITY {
        return (0.5, 0.0);
    }
    if t < 1e-30 {
        // Ξ_ν(t) = p_ν(0) t (1 + O(t²/ν)); statrs would see z = t²/ν underflow to 0.
        let x = t_norm(nu) * t;
        return (x, 0.5 - x);
    }
    // z = t²/(ν+t²), 1 − z = ν/(ν+t²) via q = t/√ν or its inverse, so t² cannot overflow.
    let sqrt_nu = nu.sqrt();
    let (z, zc) = if t <= sqrt_nu {
        let q = t / sqrt_nu;
        let q2 = q * q;
        (q2 / (1.0 + q2), 1.0 / (1.0 + q2))
    } else {
        let r = sqrt_nu / t;
        let r2 = r * r;
        (1.0 / (1.0 + r2), r2 / (1.0 + r2))
    };
    let half_nu = 0.5 * nu;
    if z < 1.5 / (half_nu + 2.5) {
        let x = 0.5 * beta_reg(0.5, half_nu, z);
        (x, 0.5 - x)
    } else {
        let tail = 0.5 * beta_reg(half_nu, 0.5, zc);
        (0.5 - tail, tail)
    }
}

/// Integer `ν` up to this value use the finite sums of [`xi_integer_nu`] in [`xi`].
pub const NU_FINITE_SUM_MAX: f64 = 64.0;

/// `Ξ_ν(y) = F_ν(y) − 1/2`, the production evaluation (the DSignSGD sign mean is `2Ξ_ν(g/s)`,
/// MATH.md §5.4). `ν = +∞` gives the Gaussian limit `erf(y/√2)/2`; NaN for `ν ≤ 0` or NaN `y`.
///
/// Routes, all tested against each other and against the ₂F₁ route to ≤ 1e-12:
/// * integer `ν ≤` [`NU_FINITE_SUM_MAX`]: the finite sums of [`xi_integer_nu`] (A&S 26.7.3–4),
///   ~10× faster than the incomplete beta (ν = 1, 2, 3 are the values of MATH.md §8);
/// * other `ν ≤` [`NU_BETA_MAX`]: the regularized incomplete beta, [`xi_via_beta`] (MATH.md §5.5, §10);
/// * `ν >` [`NU_BETA_MAX`]: [`xi_via_hyp2f1`] (see [`NU_BETA_MAX`] for why).
pub fn xi(nu: f64, y: f64) -> f64 {
    if nu_invalid(nu) || y.is_nan() {
        return f64::NAN;
    }
    if nu <= NU_FINITE_SUM_MAX && nu == nu.floor() {
        return xi_integer_nu(nu as u32, y);
    }
    xi_via_beta(nu, y)
}

/// `Ξ_ν(y)` through the regularized incomplete beta function (MATH.md §5.5):
/// `Ξ_ν(y) = sign(y) · ½ · I_{y²/(ν+y²)}(1/2, ν/2)` (statrs `beta_reg`, with the argument chosen so
/// both `Ξ` and the tail `½ − |Ξ|` keep relative precision). For `ν >` [`NU_BETA_MAX`] it defers
/// to [`xi_via_hyp2f1`]; `ν = +∞` gives `erf(y/√2)/2`. NaN for `ν ≤ 0` or NaN `y`.
pub fn xi_via_beta(nu: f64, y: f64) -> f64 {
    if let Some(v) = invalid_or_normal(nu, y, gaussian_xi) {
        return v;
    }
    if y == 0.0 {
        return 0.0;
    }
    if nu > NU_BETA_MAX {
        return xi_via_hyp2f1(nu, y);
    }
    let (x, _) = xi_and_tail(nu, y.abs());
    x.copysign(y)
}

/// `Ξ_ν(y)` for integer `ν ≥ 1` by the finite sums of Abramowitz & Stegun 26.7.3–26.7.4, with
/// `θ = atan(y/√ν)`:
/// * odd `ν`: `Ξ = (1/π)[θ + sinθ cosθ (1 + (2/3)cos²θ + (2·4)/(3·5)cos⁴θ + … (ν−1)/2 − 1 terms)]`
///   (`θ/π` for `ν = 1`: Cauchy);
/// * even `ν`: `Ξ = (sinθ/2)[1 + (1/2)cos²θ + (1·3)/(2·4)cos⁴θ + … ν/2 terms]`.
///
/// All terms have the sign of `y`, so there is no cancellation (accuracy a few ulp); cost `O(ν)`.
/// Reproduces the closed forms of MATH.md §5.5 for `ν = 1..4`. NaN for `ν = 0`.
#[inline]
pub fn xi_integer_nu(nu: u32, y: f64) -> f64 {
    if nu == 0 || y.is_nan() {
        return f64::NAN;
    }
    if y.is_infinite() {
        return 0.5f64.copysign(y);
    }
    if nu <= 4 {
        return xi_small_nu(nu, y);
    }
    xi_integer_sum(nu, y)
}

/// The finite sums of [`xi_integer_nu`] for every `ν ≥ 1` and finite `y` (the reference
/// [`xi_small_nu`] is tested against, bit for bit).
fn xi_integer_sum(nu: u32, y: f64) -> f64 {
    let nu_f = f64::from(nu);
    let t = y / nu_f.sqrt();
    // cos²θ = 1/(1+t²), sinθ = t/√(1+t²), sinθcosθ = t/(1+t²); guard t² overflow.
    let (cos2, sin, sincos) = if t.abs() > 1e150 {
        (0.0, 1.0f64.copysign(t), 0.0)
    } else {
        let q = 1.0 + t * t;
        (1.0 / q, t / q.sqrt(), t / q)
    };
    if nu % 2 == 1 {
        let theta = t.atan();
        if nu == 1 {
            return theta / PI;
        }
        // (ν−1)/2 bracket terms: k = 0 .. (ν−3)/2.
        let mut term = 1.0;
        let mut sum = 1.0;
        for k in 1..(nu - 1) / 2 {
            let kf = f64::from(k);
            term *= (2.0 * kf) / (2.0 * kf + 1.0) * cos2;
            sum += term;
        }
        (theta + sincos * sum) / PI
    } else {
        let mut term = 1.0;
        let mut sum = 1.0;
        for k in 1..nu / 2 {
            let kf = f64::from(k);
            term *= (2.0 * kf - 1.0) / (2.0 * kf) * cos2;
            sum += term;
        }
        0.5 * sin * sum
    }
}

/// [`xi_integer_nu`] for `ν = 1..=4` and finite `y`, operation for operation (so the same bits),
/// with `√ν` a constant, the empty or one-term bracket unrolled and only the trigonometric
/// quantities each `ν` needs: `ν = 1, 3` never take `sinθ`, `ν = 2, 4` never take `atan`.
#[inline]
fn xi_small_nu(nu: u32, y: f64) -> f64 {
    // The `1e150` guard of the general path: t² would overflow.
    let big = |t: f64| t.abs() > 1e150;
    match nu {
        1 => (y / 1.0f64.sqrt()).atan() / PI,
        3 => {
            let t = y / 3.0f64.sqrt();
            let sincos = if big(t) { 0.0 } else { t / (1.0 + t * t) };
            (t.atan() + sincos) / PI
        }
        2 => {
            let t = y / 2.0f64.sqrt();
            let sin = if big(t) {
                1.0f64.copysign(t)
            } else {
                t / (1.0 + t * t).sqrt()
            };
            0.5 * sin
        }
        _ => {
            let t = y / 2.0;
            let (cos2, sin) = if big(t) {
                (0.0, 1.0f64.copysign(t))
            } else {
                let q = 1.0 + t * t;
                (1.0 / q, t / q.sqrt())
            };
            0.5 * sin * (1.0 + 0.5 * cos2)
        }
    }
}

/// Standard Student-t CDF `F_ν(y)` (incomplete-beta route), with the lower tail computed
/// directly so that `F_ν(−10⁶)` keeps its relative precision. `ν = +∞` gives `Φ(y)`.
pub fn student_t_cdf(nu: f64, y: f64) -> f64 {
    if let Some(v) = invalid_or_normal(nu, y, normal_cdf) {
        return v;
    }
    if y == 0.0 || nu > NU_BETA_MAX {
        // No lower tail of its own on these routes: `½ + Ξ_ν(y)` (`½`, or the ₂F₁ route).
        return 0.5 + xi_via_beta(nu, y);
    }
    let (x, tail) = xi_and_tail(nu, y.abs());
    if y > 0.0 {
        0.5 + x
    } else {
        tail
    }
}

/// Student-t density `p_ν(y) = K_ν (1 + y²/ν)^{−(ν+1)/2}`, `K_ν = Γ((ν+1)/2)/(√(νπ)Γ(ν/2))`.
/// `p_ν = Ξ_ν'` enters the DSignSGD Jacobian (MATH.md §5.4). `ν = +∞` gives the normal density.
pub fn student_t_pdf(nu: f64, y: f64) -> f64 {
    if let Some(v) = invalid_or_normal(nu, y, normal_pdf) {
        return v;
    }
    student_t_pdf_with(t_norm(nu), nu, y)
}

/// `K_ν = p_ν(0) = Γ((ν+1)/2)/(√(νπ)Γ(ν/2))`, the constant of [`student_t_pdf`]; NaN for
/// `ν ≤ 0`.
pub fn student_t_pdf_norm(nu: f64) -> f64 {
    if nu_invalid(nu) {
        return f64::NAN;
    }
    t_norm(nu)
}

/// [`student_t_pdf`] for finite `ν > 0` with its constant `k_nu =` [`student_t_pdf_norm`]`(ν)`
/// computed once by the caller: the same bits, without the `Γ` ratio (a 30-step recurrence)
/// at every call.
#[inline]
pub fn student_t_pdf_with(k_nu: f64, nu: f64, y: f64) -> f64 {
    k_nu * (-0.5 * (nu + 1.0) * (y * y / nu).ln_1p()).exp()
}

/// `Ξ_ν(y)` through ₂F₁ (MATH.md §5.4): `y K_ν ₂F₁(1/2, (ν+1)/2; 3/2; −y²/ν)`.
/// An independent check of [`xi`], not used in hot loops. NaN for `ν ≤ 0` or `ν = ∞`.
pub fn xi_via_hyp2f1(nu: f64, y: f64) -> f64 {
    if nu_invalid(nu) || !nu.is_finite() || y.is_nan() {
        return f64::NAN;
    }
    if y == 0.0 {
        return 0.0;
    }
    if y.is_infinite() || y.abs() > 1e150 {
        // y² would overflow; the tail mass `1/2 − |Ξ|` there is `O(|y|^{−ν})` (< 1e-37 for ν ≥ 0.5).
        return 0.5f64.copysign(y);
    }
    y * t_norm(nu) * hyp2f1(0.5, 0.5 * (nu + 1.0), 1.5, -y * y / nu)
}

/// Candidate (a) for `M_ν` (MATH.md §5.4): the slope of the sign mean at 0,
/// `2 p_ν(0) = 2Γ((ν+1)/2)/(√(πν)Γ(ν/2))`, an upper bound on `(2Ξ_ν)'`; `→ √(2/π)` as `ν → ∞`.
pub fn sign_slope_at_zero(nu: f64) -> f64 {
    if nu_invalid(nu) {
        return f64::NAN;
    }
    if nu == f64::INFINITY {
        return gaussian_sign_slope_at_zero();
    }
    2.0 * t_norm(nu)
}

/// Candidate (b) for `ℓ_ν` (MATH.md §5.4): the chord `2F_ν(1) − 1 = 2Ξ_ν(1)`, which gives the
/// descent lower bound `y · 2Ξ_ν(y) ≥ (2Ξ_ν(1)) min(y², |y|)`.
pub fn sign_chord(nu: f64) -> f64 {
    2.0 * xi(nu, 1.0)
}

// ---------------------------------------------------------------------------------------------
// Gaussian analogues (the ν → ∞ limits)
// ---------------------------------------------------------------------------------------------

/// Above this `|x|`, `erfc` uses its continued fraction (for relative precision in the tail).
const ERFC_SPLIT: f64 = 1.5;
/// Above this `|x|`, `erf(x) = ±1` in double precision (`erfc(6) = 2.2e-17 < ε/2`).
const ERF_ONE: f64 = 6.0;
/// Terms of the erf series needed up to `|x| = 6` (with margin).
const ERF_TERMS: usize = 192;
/// `1/(2k+1)`, so the erf series needs no division.
const ERF_INV_ODD: [f64; ERF_TERMS] = {
    let mut t = [0.0; ERF_TERMS];
    let mut k = 0;
    while k < ERF_TERMS {
        t[k] = 1.0 / (2 * k + 1) as f64;
        k += 1;
    }
    t
};

/// `erf(x)`, accurate to a few ulp (tests/special.rs: ≤ 3e-16 relative against reference values).
///
/// Why not statrs: statrs 0.19's `erf` (a port of Boost's rational approximations) stores the
/// Boost offsets (`0.3440242112`, `0.419990927`, …, float literals in Boost) as decimal `f64`s,
/// so for `|x| ≥ 0.5` it is off by up to ~5e-11 (e.g. `erf(1/√2)` by 2.7e-11). That is far below
/// any Monte Carlo error but would break the `ν → ∞` checks of `Ξ_ν` and the ≤ 1e-12 claims here.
///
/// Method: the non-alternating series `erf(x) = (2/√π) e^{−x²} Σ_n 2ⁿ x^{2n+1}/(2n+1)!!` for
/// `|x| < 6` (positive terms, so no cancellation; ~25 terms at `|x| = 1`, a table of `1/(2k+1)`
/// keeps divisions out of the loop — the Gaussian sign mean of DSignSGD calls this per
/// coordinate per step), and `±1` beyond.
pub fn erf(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    let a = x.abs();
    let r = if a < ERF_ONE { erf_series(a) } else { 1.0 };
    r.copysign(x)
}

/// `erfc(x) = 1 − erf(x)`, with full relative precision in the upper tail
/// (`erfc(x) = Γ(½, x²)/√π` by Legendre's continued fraction, modified Lentz, for `x ≥ 1.5`).
pub fn erfc(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    if x >= ERFC_SPLIT {
        erfc_cf(x)
    } else if x > -ERFC_SPLIT {
        1.0 - erf(x)
    } else {
        2.0 - erfc_cf(-x)
    }
}

fn erf_series(a: f64) -> f64 {
    let two_x2 = 2.0 * a * a;
    let mut term = a;
    let mut sum = a;
    for inv in &ERF_INV_ODD[1..] {
        term *= two_x2 * inv;
        sum += term;
        if term <= 1e-17 * sum {
            break;
        }
    }
    FRAC_2_SQRT_PI * (-0.5 * two_x2).exp() * sum
}

/// `erfc(a)`, `a ≥ 1.5`: `Γ(½, a²) = e^{−a²} a · 1/(a² + ½ − 1·½/(a² + 5/2 − 2·(3/2)/(a² + 9/2 − …)))`,
/// which converges fast for `a² > 3/2` (≈ 40 iterations at `a = 1.5`, ≈ 10 at `a = 5`).
fn erfc_cf(a: f64) -> f64 {
    if a == f64::INFINITY {
        return 0.0;
    }
    let x = a * a;
    if x > 750.0 {
        return 0.0; // e^{−x²} underflows
    }
    let tiny = 1e-300;
    let mut b = x + 0.5;
    let mut c = 1.0 / tiny;
    let mut d = 1.0 / b;
    let mut h = d;
    for i in 1..500 {
        let fi = f64::from(i);
        let an = -fi * (fi - 0.5);
        b += 2.0;
        d = an * d + b;
        if d.abs() < tiny {
            d = tiny;
        }
        c = b + an / c;
        if c.abs() < tiny {
            c = tiny;
        }
        d = 1.0 / d;
        let del = d * c;
        h *= del;
        if (del - 1.0).abs() <= 1e-16 {
            break;
        }
    }
    (-x).exp() * a * h / PI.sqrt()
}

/// `Φ(y) − 1/2 = erf(y/√2)/2`: the Gaussian `Ξ_∞`; `E sign(g + sN) = erf(g/(√2 s))`.
pub fn gaussian_xi(y: f64) -> f64 {
    0.5 * erf(y * FRAC_1_SQRT_2)
}

/// Standard normal CDF `Φ(y) = erfc(−y/√2)/2` (accurate in the lower tail).
pub fn normal_cdf(y: f64) -> f64 {
    0.5 * erfc(-y * FRAC_1_SQRT_2)
}

/// Standard normal density.
pub fn normal_pdf(y: f64) -> f64 {
    (-0.5 * y * y).exp() / (2.0 * PI).sqrt()
}

/// `2φ(0) = √(2/π) ≈ 0.797885`, the `ν = ∞` value of [`sign_slope_at_zero`].
pub fn gaussian_sign_slope_at_zero() -> f64 {
    (2.0 / PI).sqrt()
}

/// `2Φ(1) − 1 = erf(1/√2) ≈ 0.682689`, the `ν = ∞` value of [`sign_chord`].
pub fn gaussian_sign_chord() -> f64 {
    erf(FRAC_1_SQRT_2)
}

// ---------------------------------------------------------------------------------------------
// Tabulated Ξ_ν for hot loops
// ---------------------------------------------------------------------------------------------

/// Degree of the Chebyshev interpolant on every piece of an [`XiTable`].
const XI_TABLE_DEGREE: usize = 10;
/// Pieces per region of the first attempt; doubled until the verification passes.
const XI_TABLE_MIN_PIECES: usize = 4;
/// Refinement stops here; a `ν` that still fails keeps the exact path. That happens for large
/// `ν` (measured: `ν = 150.5` tabulates with 128 core pieces, `ν = 1000` does not), where the
/// incomplete beta's own error (`≈ ε ν ln ν`, see [`NU_BETA_MAX`]) exceeds the fit tolerance.
const XI_TABLE_MAX_PIECES: usize = 1024;
/// Absolute error of `Ξ` allowed at the verification points (the exact routes themselves are
/// accurate to a few 1e-15 here; a relative test on `R` or `Q` would chase their rounding noise).
const XI_TABLE_FIT_TOL: f64 = 3e-14;

/// `Ξ_ν(y)` for one fixed `ν`, tabulated at set-up for hot loops (the DSignSGD drift under
/// Student-t noise evaluates it per coordinate, per agent, per step).
///
/// The real line is split at `Y0 = √(24ν)` into two regions, each covered by uniform pieces of
/// Chebyshev interpolants (degree 10, interpolation at first-kind nodes of the exact function):
/// * **core** `|y| ≤ Y0`: `R(y) = Ξ_ν(y)/y`, even and analytic (poles of `p_ν` at `±i√ν`, a
///   distance `√ν` from the axis); `Ξ = y R(|y|)` is exactly odd and exactly 0 at 0;
/// * **tail** `|y| > Y0`: with `z = ν/(ν+y²) ∈ [0, 1/25)`, the tail mass is
///   `½ − |Ξ_ν| = ½ I_z(ν/2, ½) = z^{ν/2} Q(z)` with `Q` analytic on `[0, 1)` (the incomplete beta
///   series `I_z(a,b) = z^a (1−z)^b ₂F₁(a+b, 1; a+1; z)/(a B(a,b))`), so `Q` is tabulated and the
///   non-analytic factor `z^{ν/2}` (the `|y|^{−ν}` decay) is computed by `powf`.
///
/// The piece count of each region is doubled from 4 until `R` and `Q` match the exact routes to
/// `2e-14` relative at points between the nodes; tests/special.rs checks `|Ξ_table − Ξ| ≤ 1e-12`
/// on a dense grid including the tails for `ν ∈ [0.5, 100]`. The exact routes ([`xi`],
/// [`xi_via_beta`]) stay the reference. The density [`XiTable::pdf`] is `p_ν = Ξ_ν'` with the
/// normalising constant computed once.
#[derive(Clone, PartialEq)]
pub struct XiTable {
    nu: f64,
    /// `p_ν(0)`.
    k_nu: f64,
    /// `Y0 = √(24ν)`.
    y0: f64,
    /// `pieces / Y0` and `pieces / Z0`: scale to piece index.
    core_scale: f64,
    tail_scale: f64,
    core_pieces: usize,
    tail_pieces: usize,
    /// Chebyshev coefficients, `XI_TABLE_DEGREE + 1` per piece.
    core: Vec<f64>,
    tail: Vec<f64>,
    /// `false` when refinement failed (large `ν`): every call takes the exact route.
    tabulated: bool,
}

/// Only `ν` and the piece counts: the coefficients would flood every `Debug` of a noise model.
impl std::fmt::Debug for XiTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XiTable")
            .field("nu", &self.nu)
            .field("pieces", &self.pieces())
            .finish()
    }
}

/// `Y0² / ν`: the core covers `|y| ≤ √(24ν)` (where DSignSGD's `g/s` usually lies), so the
/// `powf` of the tail is paid only beyond.
const XI_TABLE_CORE_SPAN: f64 = 24.0;
/// `Z0 = ν/(ν + Y0²)`.
const XI_TABLE_Z0: f64 = 1.0 / (1.0 + XI_TABLE_CORE_SPAN);

/// Chebyshev coefficients of the interpolant of `f` at the first-kind nodes of `[lo, hi]`.
fn chebyshev_fit(lo: f64, hi: f64, f: &dyn Fn(f64) -> f64, out: &mut [f64]) {
    let n = out.len();
    let (mid, half) = (0.5 * (lo + hi), 0.5 * (hi - lo));
    let values: Vec<f64> = (0..n)
        .map(|k| {
            let x = (PI * (k as f64 + 0.5) / n as f64).cos();
            f(mid + half * x)
        })
        .collect();
    for (j, c) in out.iter_mut().enumerate() {
        let s: f64 = values
            .iter()
            .enumerate()
            .map(|(k, v)| v * (PI * j as f64 * (k as f64 + 0.5) / n as f64).cos())
            .sum();
        *c = 2.0 * s / n as f64;
    }
    out[0] *= 0.5;
}

/// `Σ c_j T_j(x)` by Clenshaw's recurrence. Plain `*`/`+`, not `mul_add`: without a target
/// feature `fma`, `f64::mul_add` is a libm call (~10× slower than the whole recurrence).
#[inline(always)]
fn clenshaw(c: &[f64], x: f64) -> f64 {
    let two_x = 2.0 * x;
    let (mut b1, mut b2) = (0.0, 0.0);
    for &cj in c[1..].iter().rev() {
        let b0 = two_x * b1 + (cj - b2);
        b2 = b1;
        b1 = b0;
    }
    x * b1 + (c[0] - b2)
}

/// Fits `f` on `pieces` uniform pieces of `[0, hi]` and checks it at four points per piece
/// between the nodes; `None` when some error, times `weight` (the factor that turns it into an
/// error of `Ξ`), exceeds [`XI_TABLE_FIT_TOL`].
fn fit_region(
    hi: f64,
    pieces: usize,
    f: &dyn Fn(f64) -> f64,
    weight: &dyn Fn(f64) -> f64,
) -> Option<Vec<f64>> {
    let n = XI_TABLE_DEGREE + 1;
    let mut coef = vec![0.0; pieces * n];
    let width = hi / pieces as f64;
    for (p, c) in coef.chunks_exact_mut(n).enumerate() {
        let lo = p as f64 * width;
        chebyshev_fit(lo, lo + width, f, c);
        for x in [-0.93, -0.31, 0.52, 0.97] {
            let at = lo + width * 0.5 * (1.0 + x);
            let exact = f(at);
            let got = clenshaw(c, x);
            if !((got - exact).abs() * weight(at) <= XI_TABLE_FIT_TOL) {
                return None;
            }
        }
    }
    Some(coef)
}

impl XiTable {
    /// The table for `ν`; an error naming `nu` for `ν ≤ 0`, NaN or `+∞` (use the Gaussian sign
    /// mean for `ν = ∞`). Cost: a few hundred exact evaluations (≈ 0.1–1 ms).
    pub fn new(nu: f64) -> Result<Self, crate::error::ModelError> {
        if !(nu.is_finite() && nu > 0.0) {
            return Err(crate::error::ModelError::invalid(
                "nu",
                nu,
                "the Xi table needs finite degrees of freedom > 0",
            ));
        }
        let y0 = (XI_TABLE_CORE_SPAN * nu).sqrt();
        let k_nu = t_norm(nu);
        // R(y) = Ξ(y)/y; the node nearest 0 is > 0, where the series limit p_ν(0) is not needed.
        let core_fn = |y: f64| xi_via_beta(nu, y) / y;
        // Q(z) = tail mass / z^{ν/2}, with y = √(ν(1−z)/z); the tail from the lower CDF keeps its
        // relative precision.
        let tail_fn = |z: f64| {
            let y = (nu * (1.0 - z) / z).sqrt();
            student_t_cdf(nu, -y) / z.powf(0.5 * nu)
        };
        let refine = |hi: f64, f: &dyn Fn(f64) -> f64, weight: &dyn Fn(f64) -> f64| {
            let mut pieces = XI_TABLE_MIN_PIECES;
            while pieces <= XI_TABLE_MAX_PIECES {
                if let Some(c) = fit_region(hi, pieces, f, weight) {
                    return Some((pieces, c));
                }
                pieces *= 2;
            }
            None
        };
        let core = refine(y0, &core_fn, &|y| y);
        let tail = refine(XI_TABLE_Z0, &tail_fn, &|z| z.powf(0.5 * nu));
        let tabulated = core.is_some() && tail.is_some();
        let (core_pieces, core) = core.unwrap_or((1, Vec::new()));
        let (tail_pieces, tail) = tail.unwrap_or((1, Vec::new()));
        Ok(XiTable {
            nu,
            k_nu,
            y0,
            core_scale: core_pieces as f64 / y0,
            tail_scale: tail_pieces as f64 / XI_TABLE_Z0,
            core_pieces,
            tail_pieces,
            core,
            tail,
            tabulated,
        })
    }

    /// Degrees of freedom `ν`.
    pub fn nu(&self) -> f64 {
        self.nu
    }

    /// Number of pieces (core, tail); `None` when the table fell back to the exact route.
    pub fn pieces(&self) -> Option<(usize, usize)> {
        self.tabulated
            .then_some((self.core_pieces, self.tail_pieces))
    }

    /// `Ξ_ν(y)`; NaN for NaN `y`.
    #[inline]
    pub fn xi(&self, y: f64) -> f64 {
        if !self.tabulated {
            return xi(self.nu, y);
        }
        let n = XI_TABLE_DEGREE + 1;
        let a = y.abs();
        if a <= self.y0 {
            let u = a * self.core_scale;
            let p = (u as usize).min(self.core_pieces - 1);
            let x = 2.0 * (u - p as f64) - 1.0;
            y * clenshaw(&self.core[p * n..(p + 1) * n], x)
        } else if a.is_nan() {
            f64::NAN
        } else {
            // z = 1/(1 + y²/ν) without overflow of y² (z → 0 gives ½ exactly).
            let q = a / self.nu.sqrt();
            let z = if q < 1e150 { 1.0 / (q * q + 1.0) } else { 0.0 };
            let u = z * self.tail_scale;
            let p = (u as usize).min(self.tail_pieces - 1);
            let x = 2.0 * (u - p as f64) - 1.0;
            let mass = z.powf(0.5 * self.nu) * clenshaw(&self.tail[p * n..(p + 1) * n], x);
            (0.5 - mass).copysign(y)
        }
    }

    /// The Student-t density `p_ν(y) = Ξ_ν'(y)`, as [`student_t_pdf`] with the constant cached.
    #[inline]
    pub fn pdf(&self, y: f64) -> f64 {
        self.k_nu * (-0.5 * (self.nu + 1.0) * (y * y / self.nu).ln_1p()).exp()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Arguments over the whole line: 0, ±tiny, the bulk, the tails and past the `t² > 1e300`
    /// guard.
    fn args() -> Vec<f64> {
        let mut ys = vec![
            0.0,
            -0.0,
            5e-324,
            1e-300,
            1e-30,
            1e-8,
            1e149,
            1e151,
            1e300,
            f64::MAX,
        ];
        ys.extend((0..4001).map(|i| -20.0 + 0.01 * f64::from(i)));
        ys.extend((0..200).map(|i| 10f64.powf(-10.0 + 0.1 * f64::from(i))));
        let neg: Vec<f64> = ys.iter().map(|y| -y).collect();
        ys.extend(neg);
        ys
    }

    #[test]
    fn small_nu_forms_have_the_bits_of_the_finite_sums() {
        for nu in 1..=4u32 {
            for y in args() {
                let (a, b) = (xi_small_nu(nu, y), xi_integer_sum(nu, y));
                assert_eq!(
                    a.to_bits(),
                    b.to_bits(),
                    "nu = {nu}, y = {y:e}: {a:e} vs {b:e}"
                );
            }
        }
    }

    #[test]
    fn small_nu_forms_match_the_incomplete_beta() {
        for nu in 1..=4u32 {
            for y in args() {
                let (a, b) = (xi_integer_nu(nu, y), xi_via_beta(f64::from(nu), y));
                assert!(
                    (a - b).abs() <= 1e-13,
                    "nu = {nu}, y = {y:e}: {a:e} vs {b:e}"
                );
            }
        }
    }

    #[test]
    fn pdf_with_a_cached_constant_has_the_same_bits() {
        for nu in [0.5, 1.0, 2.5, 3.0, 30.5] {
            let k = student_t_pdf_norm(nu);
            for y in args().into_iter().step_by(7) {
                let (a, b) = (student_t_pdf_with(k, nu, y), student_t_pdf(nu, y));
                assert_eq!(a.to_bits(), b.to_bits(), "nu = {nu}, y = {y:e}");
            }
        }
    }
}
