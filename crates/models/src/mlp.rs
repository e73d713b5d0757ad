//! Networks on real data: multinomial logistic regression and multilayer perceptrons with smooth
//! activations, as a [`Loss`] of the flattened parameter vector.
//!
//! `f(θ) = (1/n) Σ_i ℓ(o(θ; x_i), y_i) + (λ/2) ‖θ‖²` over the training rows of a [`Split`], with
//! `o = W_L σ(… σ(W_1 x + b_1) …) + b_L` (activation σ after every hidden layer, a linear output),
//! `ℓ` softmax cross-entropy (`log Σ_c e^{o_c} − o_y`) or squared error (`½‖o − t‖²`, `t` the
//! value or the one-hot class). Logistic regression is the network without hidden layers.
//!
//! Layout of `θ`: layer after layer, `W_l` row-major (`out × in`) then `b_l`.
//!
//! Gradients are hand-derived backpropagation (`δ_L = ∂ℓ/∂o`, `δ_l = σ'(z_l) ⊙ W_{l+1}ᵀ δ_{l+1}`,
//! `∂W_l = δ_l a_{l−1}ᵀ`); Hessian-vector products are Pearlmutter's R-operator applied to that
//! pass (forward `R z_l = V_l a_{l−1} + W_l R a_{l−1} + v_{b_l}`, `R a_l = σ'(z_l) R z_l`;
//! output `R δ_L = ∇²_o ℓ · R o`; backward `R δ_l = σ''(z_l) R z_l ⊙ e_l + σ'(z_l) ⊙ R e_l`,
//! `e_l = W_{l+1}ᵀ δ_{l+1}`, `R e_l = V_{l+1}ᵀ δ_{l+1} + W_{l+1}ᵀ R δ_{l+1}`;
//! `R ∂W_l = R δ_l a_{l−1}ᵀ + δ_l (R a_{l−1})ᵀ`). tests/mlp.rs checks both against central finite
//! differences.
//!
//! All rows of a pass go through `ndarray` matrix products at once. Buffers live in a per-thread
//! workspace that only grows, so after the first call on a thread no pass allocates.

use crate::data::{DatasetName, Split};
use crate::error::{require_nonnegative, ModelError};
use crate::loss::{Loss, Smoothness};
use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayView2, ArrayViewMut2};
use rand_distr::{Distribution, StandardNormal};
use std::cell::RefCell;

/// Hidden-layer activation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    Tanh,
    /// `log(1 + e^z)`.
    Softplus,
}

impl Activation {
    pub fn parse(s: &str) -> Result<Self, ModelError> {
        match s {
            "tanh" => Ok(Activation::Tanh),
            "softplus" => Ok(Activation::Softplus),
            _ => Err(ModelError::invalid(
                "loss.activation",
                s,
                "unknown activation; known: tanh, softplus",
            )),
        }
    }
    pub fn name(&self) -> &'static str {
        match self {
            Activation::Tanh => "tanh",
            Activation::Softplus => "softplus",
        }
    }
    /// `a = σ(z)` elementwise. tanh goes through [`tanh_slice`]: libm's `tanh` (one `expm1`
    /// call per value) was three quarters of a minibatch iteration's time; softplus through
    /// [`softplus_slice`] for the same reason (libm's `exp` and `log1p`, 71% of its instructions).
    ///
    /// Softplus also writes its slope `s = σ'(z)` (the logistic), which shares `e^{−|z|}` with
    /// `σ(z)`, so the backward passes (two per SDE step, on one forward pass) only multiply;
    /// tanh leaves `s` alone (its slope is `1 − a²`).
    fn apply(&self, z: &[f64], a: &mut [f64], s: &mut [f64]) {
        match self {
            Activation::Tanh => tanh_slice(z, a),
            Activation::Softplus => softplus_logistic_slice(z, a, s),
        }
    }
    /// `out = σ'(z) ⊙ e` (the backward step through the activation) from `a = σ(z)` and the
    /// slope `s` that [`Activation::apply`] wrote, with the `match` outside the loop so that it
    /// vectorizes.
    fn times_slope(&self, a: &[f64], s: &[f64], e: &[f64], out: &mut [f64]) {
        match self {
            Activation::Tanh => {
                for ((o, av), ev) in out.iter_mut().zip(a).zip(e) {
                    *o = (1.0 - av * av) * ev;
                }
            }
            Activation::Softplus => {
                debug_assert_eq!(s.len(), out.len(), "softplus slopes are always grown");
                for ((o, sv), ev) in out.iter_mut().zip(s).zip(e) {
                    *o = sv * ev;
                }
            }
        }
    }
    /// `(σ'(z), σ''(z))` from `z` and `a = σ(z)`.
    #[inline]
    fn derivatives(&self, z: f64, a: f64) -> (f64, f64) {
        match self {
            Activation::Tanh => {
                let d1 = 1.0 - a * a;
                (d1, -2.0 * a * d1)
            }
            Activation::Softplus => logistic_pair_one(z),
        }
    }
}

/// A slice kernel with its wide versions: `$name` picks AVX-512 or AVX2 at run time (the same
/// operations four or eight lanes wide; no FMA contraction, which Rust never does, so the bits
/// do not depend on the CPU), `$baseline` runs the build's baseline (SSE2 on x86-64) for the
/// tests that say so.
macro_rules! wide_kernel {
    ($(#[$doc:meta])* $name:ident, $baseline:ident, $avx2:ident, $avx512:ident, $body:ident,
     ($($arg:ident: $ty:ty),*)) => {
        $(#[$doc])*
        pub fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: AVX-512F is present (checked just above).
                    unsafe { $avx512($($arg),*) };
                    return;
                }
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: AVX2 is present (checked just above).
                    unsafe { $avx2($($arg),*) };
                    return;
                }
            }
            $body($($arg),*);
        }

        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2")]
        unsafe fn $avx2($($arg: $ty),*) {
            $body($($arg),*);
        }

        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx512f")]
        unsafe fn $avx512($($arg: $ty),*) {
            $body($($arg),*);
        }

        #[doc(hidden)]
        pub fn $baseline($($arg: $ty),*) {
            $body($($arg),*);
        }
    };
}

wide_kernel!(
    /// `a_i = softplus(z_i) = log(1 + e^{z_i})`, written so that the loop vectorizes (see
    /// [`softplus_one`]); within a few ulp of libm's `max(z, 0) + log1p(exp(−|z|))` (tests/mlp.rs).
    softplus_slice,
    softplus_slice_baseline,
    softplus_slice_avx2,
    softplus_slice_avx512,
    softplus_slice_body,
    (z: &[f64], a: &mut [f64])
);

wide_kernel!(
    /// `s_i = 1/(1 + e^{−z_i})`, the logistic (softplus's derivative; see [`logistic_one`]).
    logistic_slice,
    logistic_slice_baseline,
    logistic_slice_avx2,
    logistic_slice_avx512,
    logistic_slice_body,
    (z: &[f64], s: &mut [f64])
);

wide_kernel!(
    /// `a_i = softplus(z_i)` and `s_i = logistic(z_i)` (its slope) in one pass: the bits of
    /// [`softplus_slice`] and [`logistic_slice`], one `e^{−|z|}` for the two.
    softplus_logistic_slice,
    softplus_logistic_slice_baseline,
    softplus_logistic_slice_avx2,
    softplus_logistic_slice_avx512,
    softplus_logistic_slice_body,
    (z: &[f64], a: &mut [f64], s: &mut [f64])
);

#[inline(always)]
fn softplus_slice_body(z: &[f64], a: &mut [f64]) {
    for (av, zv) in a.iter_mut().zip(z) {
        *av = softplus_one(*zv);
    }
}

#[inline(always)]
fn logistic_slice_body(z: &[f64], s: &mut [f64]) {
    for (sv, zv) in s.iter_mut().zip(z) {
        *sv = logistic_one(*zv);
    }
}

#[inline(always)]
fn softplus_logistic_slice_body(z: &[f64], a: &mut [f64], s: &mut [f64]) {
    for ((av, sv), zv) in a.iter_mut().zip(s.iter_mut()).zip(z) {
        let t = exp_neg_abs(*zv);
        *av = softplus_from(*zv, t);
        *sv = logistic_from(*zv, t);
    }
}

/// `e^{−|z|}` without a libm call, so that loops over it vectorize: the Cody–Waite reduction
/// `−|z| = k ln2 + r`, `|r| ≤ ln2/2`, `e^r = 1 + (r + r² q(r))` with `q` the Taylor polynomial
/// of `(e^r − 1 − r)/r²` (degree 13 in all, remainder below 4e-18 relative), then `· 2^k` in two
/// factors `2^{k₁} 2^{k₂}` (`k₁ = ⌊k/2⌋`), each a normal number, so that results down to the
/// subnormals round once (in the last product). `|z|` is capped at 746, where the result
/// rounds to +0; NaN passes through.
#[inline(always)]
fn exp_neg_abs(z: f64) -> f64 {
    // fdlibm's split of ln 2: the high part has 32 trailing zero bits, so k·LN2_HI is exact.
    const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
    const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76);
    const INV_LN2: f64 = std::f64::consts::LOG2_E;
    // 1.5·2^52: adding it rounds a value of magnitude below 2^51 to an integer, and within that
    // binade consecutive integers have consecutive bit patterns (so the bits minus ROUND's are k).
    const ROUND: f64 = 6_755_399_441_055_744.0;
    let x = z.abs();
    let x = -(if x > 746.0 { 746.0 } else { x });
    let kr = x * INV_LN2 + ROUND;
    let kf = kr - ROUND;
    let r = (x - kf * LN2_HI) - kf * LN2_LO;
    let mut q = 1.0 / 6_227_020_800.0;
    q = q * r + 1.0 / 479_001_600.0;
    q = q * r + 1.0 / 39_916_800.0;
    q = q * r + 1.0 / 3_628_800.0;
    q = q * r + 1.0 / 362_880.0;
    q = q * r + 1.0 / 40_320.0;
    q = q * r + 1.0 / 5_040.0;
    q = q * r + 1.0 / 720.0;
    q = q * r + 1.0 / 120.0;
    q = q * r + 1.0 / 24.0;
    q = q * r + 1.0 / 6.0;
    q = q * r + 0.5;
    let er = 1.0 + (r + r * r * q);
    // k + 2048 ≥ 0 (−1076 ≤ k ≤ 0), so the halving is a logical shift (AVX2 has no 64-bit
    // arithmetic one); wrapping, as NaN's bits give garbage that the NaN product then ignores.
    let kp = kr
        .to_bits()
        .wrapping_sub(ROUND.to_bits())
        .wrapping_add(2048);
    let k1p = kp >> 1; // ⌊k/2⌋ + 1024
    let k2p = kp.wrapping_sub(k1p); // k − ⌊k/2⌋ + 1024
    let two_k1 = f64::from_bits(k1p.wrapping_sub(1) << 52);
    let two_k2 = f64::from_bits(k2p.wrapping_sub(1) << 52);
    er * two_k1 * two_k2
}

/// `softplus(z) = max(z, 0) + log1p(t)`, `t = e^{−|z|} ∈ [0, 1]` (stable for large |z|), with
/// `log1p(t) = log(u) + (t − (u − 1))/u` for `u = 1 + t` rounded (the correction restores the
/// bits of `t` that the sum lost; `u − 1` and `t − (u − 1)` are exact), and `log u` as fdlibm's
/// `log`: `u = 2^j (1 + f)` with `j ∈ {0, 1}`, `√2/2 < 1 + f ≤ √2`, `s = f/(2 + f)`,
/// `log(1 + f) = f − (h − s(h + R))`, `h = f²/2`, `R = Σ_{i=1}^{11} 2 s^{2i}/(2i + 1)` (Taylor;
/// `|s| ≤ 0.1716`, remainder below 1e-18 relative). `+∞ → +∞`, `−∞ → 0`, NaN → NaN.
#[inline(always)]
pub fn softplus_one(z: f64) -> f64 {
    softplus_from(z, exp_neg_abs(z))
}

/// [`softplus_one`] given `t = exp_neg_abs(z)`.
#[inline(always)]
fn softplus_from(z: f64, t: f64) -> f64 {
    const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
    const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76);
    let u = 1.0 + t;
    let big = u > std::f64::consts::SQRT_2;
    let v = if big { 0.5 * u } else { u };
    let j = if big { 1.0 } else { 0.0 };
    let f = v - 1.0;
    let s = f / (2.0 + f);
    let s2 = s * s;
    let mut rr = 2.0 / 23.0;
    rr = rr * s2 + 2.0 / 21.0;
    rr = rr * s2 + 2.0 / 19.0;
    rr = rr * s2 + 2.0 / 17.0;
    rr = rr * s2 + 2.0 / 15.0;
    rr = rr * s2 + 2.0 / 13.0;
    rr = rr * s2 + 2.0 / 11.0;
    rr = rr * s2 + 2.0 / 9.0;
    rr = rr * s2 + 2.0 / 7.0;
    rr = rr * s2 + 2.0 / 5.0;
    rr = rr * s2 + 2.0 / 3.0;
    let rr = rr * s2;
    let h = 0.5 * f * f;
    let c = (t - (u - 1.0)) / u;
    let log1p_t = j * LN2_HI - ((h - (s * (h + rr) + (j * LN2_LO + c))) - f);
    let pos = if z > 0.0 { z } else { 0.0 };
    pos + log1p_t
}

/// `logistic(z) = 1/(1 + e^{−z})` as `1/(1 + t)` (`z ≥ 0`) or `t/(1 + t)` (`z < 0`) with
/// `t = e^{−|z|}`: no cancellation and no overflow on either side. NaN → NaN.
#[inline(always)]
pub fn logistic_one(z: f64) -> f64 {
    logistic_from(z, exp_neg_abs(z))
}

/// [`logistic_one`] given `t = exp_neg_abs(z)`.
#[inline(always)]
fn logistic_from(z: f64, t: f64) -> f64 {
    let num = if z >= 0.0 { 1.0 } else { t };
    num / (1.0 + t)
}

/// `(σ'(z), σ''(z))` of softplus: the logistic `s` and `s(1 − s) = t/(1 + t)²`
/// (`t = e^{−|z|}`, on both sides; no cancellation in `1 − s` for large `z`).
#[inline(always)]
fn logistic_pair_one(z: f64) -> (f64, f64) {
    let t = exp_neg_abs(z);
    let u = 1.0 + t;
    let num = if z >= 0.0 { 1.0 } else { t };
    (num / u, t / (u * u))
}

/// `a_i = tanh(z_i)` within 2 ulp of the correctly rounded value (tests/mlp.rs compares it with
/// libm's `tanh`), written so that the loop vectorizes: `tanh|z| = e/(e + 2)` with
/// `e = expm1(2|z|)`, and `expm1(x) = 2^k (expm1(r) + 1) − 1 = 2^k expm1(r) + (2^k − 1)` after
/// the Cody–Waite reduction `x = k ln2 + r`, `|r| ≤ ln2/2`, where `expm1(r)` is its Taylor
/// polynomial to degree 13 (remainder below 2e-17 relative). `x ≥ 0`, so `k ≥ 0` and
/// `2^k expm1(r) ≥ −0.3 · 2^k` against `2^k − 1 ≥ 2^{k−1}`: at most a mild cancellation at
/// `k = 1`. `2|z|` is capped at 40 (`tanh 20` rounds to 1); NaN
/// passes through. With AVX2 (AVX-512) the same operations run four (eight) lanes wide: no FMA
/// contraction (Rust never fuses), so the bits do not depend on the CPU.
pub fn tanh_slice(z: &[f64], a: &mut [f64]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: AVX-512F is present (checked just above).
            unsafe { tanh_slice_avx512(z, a) };
            return;
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: AVX2 is present (checked just above).
            unsafe { tanh_slice_avx2(z, a) };
            return;
        }
    }
    tanh_slice_body(z, a);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn tanh_slice_avx2(z: &[f64], a: &mut [f64]) {
    tanh_slice_body(z, a);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn tanh_slice_avx512(z: &[f64], a: &mut [f64]) {
    tanh_slice_body(z, a);
}

/// [`tanh_slice`] without the wide instruction sets (the build's baseline, SSE2 on x86-64): for
/// the test that the bits do not depend on the CPU.
#[doc(hidden)]
pub fn tanh_slice_baseline(z: &[f64], a: &mut [f64]) {
    tanh_slice_body(z, a);
}

#[inline(always)]
fn tanh_slice_body(z: &[f64], a: &mut [f64]) {
    for (av, zv) in a.iter_mut().zip(z) {
        *av = tanh_one(*zv);
    }
}

#[inline(always)]
fn tanh_one(z: f64) -> f64 {
    // fdlibm's split of ln 2: the high part has 32 trailing zero bits, so k·LN2_HI is exact.
    const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
    const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76);
    const INV_LN2: f64 = std::f64::consts::LOG2_E;
    // 1.5·2^52: adding it rounds a small nonnegative value to an integer held in the low bits.
    const ROUND: f64 = 6_755_399_441_055_744.0;
    let x = 2.0 * z.abs();
    let x = if x > 40.0 { 40.0 } else { x };
    let kr = x * INV_LN2 + ROUND;
    let kf = kr - ROUND;
    let r = (x - kf * LN2_HI) - kf * LN2_LO;
    // Taylor coefficients 1/j! for j = 2..13, Horner from the top.
    let mut q = 1.0 / 6_227_020_800.0;
    q = q * r + 1.0 / 479_001_600.0;
    q = q * r + 1.0 / 39_916_800.0;
    q = q * r + 1.0 / 3_628_800.0;
    q = q * r + 1.0 / 362_880.0;
    q = q * r + 1.0 / 40_320.0;
    q = q * r + 1.0 / 5_040.0;
    q = q * r + 1.0 / 720.0;
    q = q * r + 1.0 / 120.0;
    q = q * r + 1.0 / 24.0;
    q = q * r + 1.0 / 6.0;
    q = q * r + 0.5;
    let p = r + r * r * q;
    // 2^k from the integer in kr's low bits (0 ≤ k ≤ 58).
    let k = kr.to_bits() & 0xfff;
    let two_k = f64::from_bits((k + 1023) << 52);
    let e = two_k * p + (two_k - 1.0);
    (e / (e + 2.0)).copysign(z)
}

/// Per-example loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Objective {
    CrossEntropy,
    Squared,
}

impl Objective {
    pub fn parse(s: &str) -> Result<Self, ModelError> {
        match s {
            "cross_entropy" => Ok(Objective::CrossEntropy),
            "squared" => Ok(Objective::Squared),
            _ => Err(ModelError::invalid(
                "loss.objective",
                s,
                "unknown objective; known: cross_entropy, squared",
            )),
        }
    }
    pub fn name(&self) -> &'static str {
        match self {
            Objective::CrossEntropy => "cross_entropy",
            Objective::Squared => "squared",
        }
    }
}

/// Everything that defines a network loss (the `loss.*` keys).
#[derive(Clone, Debug, PartialEq)]
pub struct MlpSpec {
    pub dataset: DatasetName,
    /// Hidden-layer widths; empty for logistic regression.
    pub hidden: Vec<usize>,
    pub activation: Activation,
    /// `None`: cross-entropy for class data, squared error for regression data.
    pub objective: Option<Objective>,
    pub l2: f64,
    pub test_fraction: f64,
    pub seed: u64,
}

impl MlpSpec {
    /// Logistic regression (no hidden layer, cross-entropy) on `dataset`.
    pub fn logistic(dataset: DatasetName, seed: u64) -> Self {
        MlpSpec {
            dataset,
            hidden: Vec::new(),
            activation: Activation::Tanh,
            objective: None,
            l2: 0.0,
            test_fraction: 0.2,
            seed,
        }
    }
}

/// A network loss on the training rows of a split (see the module documentation).
#[derive(Clone, Debug, PartialEq)]
pub struct Mlp {
    spec: MlpSpec,
    split: Split,
    objective: Objective,
    /// `[p, h_1, …, k]`.
    sizes: Vec<usize>,
    /// Start of `W_l` in `θ`, for each layer, and `d` at the end.
    offsets: Vec<usize>,
    y_train: Vec<f64>,
    y_test: Vec<f64>,
    x0: Vec<f64>,
    id: NetId,
}

/// Buffers of one pass; per thread, grow-only.
#[derive(Default)]
struct Work {
    xb: Vec<f64>,
    yb: Vec<f64>,
    wb: Vec<f64>,
    z: Vec<Vec<f64>>,
    a: Vec<Vec<f64>>,
    /// Slopes `σ'(z)` of the hidden layers, softplus only (see [`Activation::apply`]).
    s: Vec<Vec<f64>>,
    delta: Vec<Vec<f64>>,
    rz: Vec<Vec<f64>>,
    ra: Vec<Vec<f64>>,
    rdelta: Vec<Vec<f64>>,
    e: Vec<f64>,
    re: Vec<f64>,
    fwd: ForwardKey,
    small: SmallWork,
}

/// Which forward pass `z`, `a` of a [`Work`] hold: the training rows of network `net` at the
/// parameters `theta` (bit for bit), or nothing reusable. An SDE step evaluates the drift's
/// gradient, the diffusion's gradient and its `d × n` factor at one state: the forward pass
/// (with its activations, the dearest part) runs once for the three.
#[derive(Default)]
struct ForwardKey {
    valid: bool,
    net: u64,
    theta: Vec<f64>,
}

impl ForwardKey {
    fn holds(&self, net: u64, th: &[f64]) -> bool {
        self.valid
            && self.net == net
            && self.theta.len() == th.len()
            && self
                .theta
                .iter()
                .zip(th)
                .all(|(a, b)| a.to_bits() == b.to_bits())
    }
    fn set(&mut self, net: u64, th: &[f64]) {
        self.theta.clear();
        self.theta.extend_from_slice(th);
        self.net = net;
        self.valid = true;
    }
}

/// A process-unique network identity for [`ForwardKey`] (an address could be reused by the next
/// network). Clones share it (they hold the same data); it takes no part in equality.
#[derive(Clone, Debug)]
struct NetId(u64);

impl PartialEq for NetId {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl NetId {
    fn fresh() -> Self {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        NetId(NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
    }
}

/// The first `n` entries of a slope buffer, or fewer: tanh layers never grow theirs (their
/// `times_slope` reads `a`).
fn slope(s: &[f64], n: usize) -> &[f64] {
    &s[..n.min(s.len())]
}

fn grow(v: &mut Vec<f64>, len: usize) {
    if v.len() < len {
        v.resize(len, 0.0);
    }
}

impl Work {
    fn ensure(&mut self, sizes: &[usize], m: usize, hvp: bool, act: Activation) {
        let layers = sizes.len() - 1;
        for list in [
            &mut self.z,
            &mut self.a,
            &mut self.s,
            &mut self.delta,
            &mut self.rz,
            &mut self.ra,
            &mut self.rdelta,
        ] {
            if list.len() < layers {
                list.resize_with(layers, Vec::new);
            }
        }
        let widest = *sizes.iter().max().unwrap_or(&1);
        for l in 0..layers {
            let len = m * sizes[l + 1];
            grow(&mut self.z[l], len);
            grow(&mut self.a[l], len);
            if act == Activation::Softplus {
                grow(&mut self.s[l], len);
            }
            grow(&mut self.delta[l], len);
            if hvp {
                grow(&mut self.rz[l], len);
                grow(&mut self.ra[l], len);
                grow(&mut self.rdelta[l], len);
            }
        }
        grow(&mut self.e, m * widest);
        if hvp {
            grow(&mut self.re, m * widest);
        }
    }
}

thread_local! {
    static WORK: RefCell<Work> = RefCell::new(Work::default());
}

fn view(buf: &[f64], rows: usize, cols: usize) -> ArrayView2<'_, f64> {
    ArrayView2::from_shape((rows, cols), &buf[..rows * cols]).expect("buffer sized by Work::ensure")
}

fn view_mut(buf: &mut [f64], rows: usize, cols: usize) -> ArrayViewMut2<'_, f64> {
    ArrayViewMut2::from_shape((rows, cols), &mut buf[..rows * cols])
        .expect("buffer sized by Work::ensure")
}

/// Which rows a pass runs over.
#[derive(Clone, Copy)]
enum Rows<'a> {
    /// Every training row.
    Train,
    /// Every test row.
    Test,
    /// These training rows (repeats allowed).
    Some(&'a [usize]),
}

/// Widest hidden layer `loss.hidden` accepts (two such layers on wine_quality: ~1.7e7 parameters).
pub const MAX_HIDDEN_UNITS: usize = 4096;

impl Mlp {
    /// Loads and splits the data set, checks the architecture, draws `x0` from `spec.seed`
    /// (`W_l ~ N(0, 1/in_l)` entrywise, LeCun; `b_l = 0`; from `sde_core::derive_stream(seed, 2)`).
    pub fn new(spec: MlpSpec) -> Result<Self, ModelError> {
        require_nonnegative("loss.l2", spec.l2)?;
        if let Some(bad) = spec.hidden.iter().position(|&h| h == 0) {
            return Err(ModelError::invalid(
                format!("loss.hidden[{bad}]"),
                0,
                "a hidden layer needs at least one unit",
            ));
        }
        if spec.hidden.len() > 2 {
            return Err(ModelError::invalid(
                "loss.hidden",
                format!("{:?}", spec.hidden),
                "at most two hidden layers",
            ));
        }
        // A width beyond this is a typo, not a model this machine-sized tool could train: refuse it
        // before the parameter and workspace vectors are allocated (a wrong width would abort on
        // allocation instead of naming the key).
        if let Some(bad) = spec.hidden.iter().position(|&h| h > MAX_HIDDEN_UNITS) {
            return Err(ModelError::invalid(
                format!("loss.hidden[{bad}]"),
                spec.hidden[bad],
                format!("at most {MAX_HIDDEN_UNITS} units per hidden layer"),
            ));
        }
        let split = Split::load(spec.dataset, spec.test_fraction, spec.seed)?;
        let classes = split.train.targets().classes();
        let objective = match (spec.objective, classes) {
            (Some(Objective::CrossEntropy), None) => {
                return Err(ModelError::invalid(
                    "loss.objective",
                    "cross_entropy",
                    format!(
                        "{} has real-valued targets; use squared",
                        spec.dataset.name()
                    ),
                ))
            }
            (Some(o), _) => o,
            (None, Some(_)) => Objective::CrossEntropy,
            (None, None) => Objective::Squared,
        };
        let k = classes.unwrap_or(1);
        let mut sizes = vec![split.train.features()];
        sizes.extend_from_slice(&spec.hidden);
        sizes.push(k);
        let mut offsets = vec![0];
        for w in sizes.windows(2) {
            let last = *offsets.last().unwrap_or(&0);
            offsets.push(last + (w[0] + 1) * w[1]);
        }
        let d = *offsets.last().unwrap_or(&0);
        let y_train = (0..split.train.rows())
            .map(|i| split.train.targets().as_f64(i))
            .collect();
        let y_test = (0..split.test.rows())
            .map(|i| split.test.targets().as_f64(i))
            .collect();
        let mut rng = sde_core::derive_stream(spec.seed, 2);
        let mut x0 = vec![0.0; d];
        for l in 0..sizes.len() - 1 {
            let (fan_in, out) = (sizes[l], sizes[l + 1]);
            let std = 1.0 / (fan_in as f64).sqrt();
            for w in &mut x0[offsets[l]..offsets[l] + fan_in * out] {
                let n: f64 = StandardNormal.sample(&mut rng);
                *w = std * n;
            }
        }
        Ok(Mlp {
            spec,
            split,
            objective,
            sizes,
            offsets,
            y_train,
            y_test,
            x0,
            id: NetId::fresh(),
        })
    }

    pub fn spec(&self) -> &MlpSpec {
        &self.spec
    }
    pub fn split(&self) -> &Split {
        &self.split
    }
    pub fn objective(&self) -> Objective {
        self.objective
    }
    /// `[p, h_1, …, k]`.
    pub fn sizes(&self) -> &[usize] {
        &self.sizes
    }
    /// Training rows `n`.
    pub fn train_rows(&self) -> usize {
        self.split.train.rows()
    }
    /// The initialisation drawn from `loss.seed`.
    pub fn x0(&self) -> &[f64] {
        &self.x0
    }

    /// Multiply-adds of one forward and backward pass for one row (the FLOP bound of the benches
    /// is twice this per row: one multiply and one add each): forward `Σ in·out`, backward
    /// `Σ in·out` for the weight gradients plus `Σ_{l>1} in·out` for the deltas.
    pub fn pass_multiply_adds(&self) -> usize {
        let prods: Vec<usize> = self.sizes.windows(2).map(|w| w[0] * w[1]).collect();
        2 * prods.iter().sum::<usize>() + prods[1..].iter().sum::<usize>()
    }

    fn layers(&self) -> usize {
        self.sizes.len() - 1
    }

    fn weights<'a>(&self, th: &'a [f64], l: usize) -> (ArrayView2<'a, f64>, &'a [f64]) {
        let (fan_in, out) = (self.sizes[l], self.sizes[l + 1]);
        let o = self.offsets[l];
        (
            view(&th[o..], out, fan_in),
            &th[o + fan_in * out..o + (fan_in + 1) * out],
        )
    }

    fn rows_len(&self, rows: Rows) -> usize {
        match rows {
            Rows::Train => self.split.train.rows(),
            Rows::Test => self.split.test.rows(),
            Rows::Some(r) => r.len(),
        }
    }

    /// Input matrix and targets of `rows`; gathers a subset into `xb`, `yb`.
    fn inputs<'a>(
        &'a self,
        rows: Rows,
        xb: &'a mut Vec<f64>,
        yb: &'a mut Vec<f64>,
    ) -> (ArrayView2<'a, f64>, &'a [f64]) {
        let p = self.sizes[0];
        match rows {
            Rows::Train => (
                view(
                    self.split.train.feature_matrix(),
                    self.split.train.rows(),
                    p,
                ),
                &self.y_train,
            ),
            Rows::Test => (
                view(self.split.test.feature_matrix(), self.split.test.rows(), p),
                &self.y_test,
            ),
            Rows::Some(r) => {
                grow(xb, r.len() * p);
                grow(yb, r.len());
                for (k, &i) in r.iter().enumerate() {
                    xb[k * p..(k + 1) * p].copy_from_slice(self.split.train.row(i));
                    yb[k] = self.y_train[i];
                }
                (view(xb, r.len(), p), &yb[..r.len()])
            }
        }
    }

    /// Forward pass: `z[l]` pre-activations, `a[l]` activations of hidden layers, `s[l]` their
    /// slopes (softplus only). Skipped when `key` says they already hold this pass (training
    /// rows at `th`).
    #[allow(clippy::too_many_arguments)]
    fn forward(
        &self,
        th: &[f64],
        rows: Rows,
        x: ArrayView2<f64>,
        z: &mut [Vec<f64>],
        a: &mut [Vec<f64>],
        s: &mut [Vec<f64>],
        key: &mut ForwardKey,
    ) {
        let train = matches!(rows, Rows::Train);
        if train && key.holds(self.id.0, th) {
            return;
        }
        key.valid = false;
        let m = x.nrows();
        let act = self.spec.activation;
        for l in 0..self.layers() {
            let (w, b) = self.weights(th, l);
            let out = self.sizes[l + 1];
            let (before, after) = a.split_at_mut(l);
            let input = if l == 0 {
                x
            } else {
                view(&before[l - 1], m, self.sizes[l])
            };
            // The bias first, then the product accumulated onto it.
            for row in z[l][..m * out].chunks_exact_mut(out) {
                row.copy_from_slice(b);
            }
            let mut zl = view_mut(&mut z[l], m, out);
            general_mat_mul(1.0, &input, &w.t(), 1.0, &mut zl);
            if l + 1 < self.layers() {
                let sl = if act == Activation::Softplus {
                    &mut s[l][..m * out]
                } else {
                    &mut []
                };
                act.apply(&z[l][..m * out], &mut after[0][..m * out], sl);
            }
        }
        if train {
            key.set(self.id.0, th);
        }
    }

    /// Per-row loss of output row `o` with target `y` (class index or value); writes `∂ℓ/∂o`
    /// into `grad` when given.
    #[inline]
    fn row_loss(&self, o: &[f64], y: f64, grad: Option<&mut [f64]>) -> f64 {
        match self.objective {
            Objective::CrossEntropy => {
                let c = y as usize;
                let mx = o.iter().fold(f64::NEG_INFINITY, |m, v| m.max(*v));
                let s: f64 = o.iter().map(|v| (v - mx).exp()).sum();
                let lse = mx + s.ln();
                if let Some(gr) = grad {
                    for (j, (g, v)) in gr.iter_mut().zip(o).enumerate() {
                        *g = (v - lse).exp() - if j == c { 1.0 } else { 0.0 };
                    }
                }
                lse - o[c]
            }
            Objective::Squared => {
                let one_hot = self.split.train.targets().classes().is_some();
                let mut l = 0.0;
                let mut gr = grad;
                for (j, v) in o.iter().enumerate() {
                    let t = if one_hot {
                        if j == y as usize {
                            1.0
                        } else {
                            0.0
                        }
                    } else {
                        y
                    };
                    let r = v - t;
                    l += 0.5 * r * r;
                    if let Some(g) = gr.as_deref_mut() {
                        g[j] = r;
                    }
                }
                l
            }
        }
    }

    /// `Σ_r weight_r ℓ_r` over `rows` (unit weights when `weights` is `None`), and when
    /// `grad` is given, `grad = Σ_r weight_r ∇_θ ℓ_r` (no L2 term).
    fn pass(
        &self,
        th: &[f64],
        rows: Rows,
        weights: Option<&[f64]>,
        grad: Option<&mut [f64]>,
    ) -> f64 {
        assert_eq!(
            th.len(),
            self.dim(),
            "parameter vector has the wrong length"
        );
        let m = self.rows_len(rows);
        WORK.with(|cell| {
            let mut guard = cell.borrow_mut();
            let w = &mut *guard;
            w.ensure(&self.sizes, m, false, self.spec.activation);
            let Work {
                xb,
                yb,
                z,
                a,
                s,
                delta,
                e,
                fwd,
                ..
            } = w;
            let (x, y) = self.inputs(rows, xb, yb);
            self.forward(th, rows, x, z, a, s, fwd);
            let lay = self.layers();
            let k = self.sizes[lay];
            let want_grad = grad.is_some();
            let mut total = 0.0;
            for r in 0..m {
                let o = &z[lay - 1][r * k..(r + 1) * k];
                let wr = weights.map_or(1.0, |w| w[r]);
                let dl = if want_grad {
                    Some(&mut delta[lay - 1][r * k..(r + 1) * k])
                } else {
                    None
                };
                let l = self.row_loss(o, y[r], dl);
                total += wr * l;
                if want_grad {
                    delta[lay - 1][r * k..(r + 1) * k]
                        .iter_mut()
                        .for_each(|v| *v *= wr);
                }
            }
            if let Some(g) = grad {
                g.fill(0.0);
                self.backward(th, x, a, s, delta, e, g);
            }
            total
        })
    }

    /// Backward pass from `delta[L−1]` (already weighted) accumulating into `g`.
    #[allow(clippy::too_many_arguments)]
    fn backward(
        &self,
        th: &[f64],
        x: ArrayView2<f64>,
        a: &[Vec<f64>],
        s: &[Vec<f64>],
        delta: &mut [Vec<f64>],
        e: &mut [f64],
        g: &mut [f64],
    ) {
        let m = x.nrows();
        let act = self.spec.activation;
        for l in (0..self.layers()).rev() {
            let (fan_in, out) = (self.sizes[l], self.sizes[l + 1]);
            let o = self.offsets[l];
            let input = if l == 0 {
                x
            } else {
                view(&a[l - 1], m, fan_in)
            };
            let dl = view(&delta[l], m, out);
            let (gw, gb) = g[o..o + (fan_in + 1) * out].split_at_mut(fan_in * out);
            let mut gw = view_mut(gw, out, fan_in);
            general_mat_mul(1.0, &dl.t(), &input, 1.0, &mut gw);
            for row in delta[l][..m * out].chunks_exact(out) {
                gb.iter_mut().zip(row).for_each(|(b, v)| *b += v);
            }
            if l > 0 {
                let (w, _) = self.weights(th, l);
                let mut em = view_mut(e, m, fan_in);
                general_mat_mul(1.0, &dl, &w, 0.0, &mut em);
                let n = m * fan_in;
                let (ap, sp) = (&a[l - 1][..n], slope(&s[l - 1], n));
                act.times_slope(ap, sp, &e[..n], &mut delta[l - 1][..n]);
            }
        }
    }

    /// `g = Σ_r weights[r] ∇ℓ_{rows[r]}(θ)` over training rows (repeats allowed), without the L2
    /// term: the minibatch gradients of [`crate::minibatch`] are this with `weights = 1/B`.
    ///
    /// A network with one hidden layer takes the small-batch path (`SmallWork` in the source)
    /// on CPUs with FMA: the same bits as the general path, 1.4–1.5× faster at 128 rows of the
    /// 11-32-1 network (the minibatch bench).
    pub fn weighted_gradient(&self, th: &[f64], rows: &[usize], weights: &[f64], g: &mut [f64]) {
        assert_eq!(rows.len(), weights.len());
        if !rows.is_empty() && self.small_path_fits() && small_path_cpu() {
            assert_eq!(
                th.len(),
                self.dim(),
                "parameter vector has the wrong length"
            );
            assert_eq!(g.len(), self.dim());
            WORK.with(|cell| {
                let small = &mut cell.borrow_mut().small;
                small_gradient(self, th, rows, weights, g, small);
            });
        } else {
            self.pass(th, Rows::Some(rows), Some(weights), Some(g));
        }
    }

    /// [`Mlp::weighted_gradient`] through the general path (ndarray products) whatever the
    /// network: for the tests that the small-batch path gives its bits.
    #[doc(hidden)]
    pub fn weighted_gradient_general(
        &self,
        th: &[f64],
        rows: &[usize],
        weights: &[f64],
        g: &mut [f64],
    ) {
        assert_eq!(rows.len(), weights.len());
        self.pass(th, Rows::Some(rows), Some(weights), Some(g));
    }

    /// Whether the small-batch path handles this network: one hidden layer, and inner
    /// dimensions of the forward products within one `kc` block of matrixmultiply (so that its
    /// kernel's sums are single FMA chains, which the path repeats).
    fn small_path_fits(&self) -> bool {
        self.layers() == 2 && self.sizes.iter().all(|&s| s <= GEMM_KC)
    }

    /// `out = Σ_i (ξ_i − ξ̄) ∇ℓ_i(θ)` over all `n` training rows (`ξ` of length `n`): `G_cᵀ ξ` for
    /// the centred per-example gradient matrix `G_c` (rows `∇ℓ_i − ∇f̄`), in one weighted backward
    /// pass, `O(n d)`. `(1/n) G_cᵀ G_c` is the per-example gradient covariance `Σ(θ)`, so
    /// `G_cᵀ/√n` is a `d × n` square-root factor of it.
    pub fn centred_gradient_mul(&self, th: &[f64], xi: &[f64], out: &mut [f64]) {
        let n = self.train_rows();
        assert_eq!(xi.len(), n);
        WORK.with(|cell| {
            let mut guard = cell.borrow_mut();
            grow(&mut guard.wb, n);
            let mean = xi.iter().sum::<f64>() / n as f64;
            let mut wb = std::mem::take(&mut guard.wb);
            wb[..n].iter_mut().zip(xi).for_each(|(w, x)| *w = x - mean);
            drop(guard);
            self.pass(th, Rows::Train, Some(&wb[..n]), Some(out));
            cell.borrow_mut().wb = wb;
        });
    }

    /// Mean `(1/n) Σ_i ∇ℓ_i` (no L2 term) and per-coordinate variance
    /// `(1/n) Σ_i (∇ℓ_i − mean)²` of the per-example gradients over the training rows: the
    /// diagonal of `Σ(θ)`. The second moment of layer `l` is `Σ_i (δ_{l,i}²) (a_{l−1,i}²)ᵀ`
    /// (per-example gradients are outer products), one more matrix product per layer.
    pub fn gradient_moments(&self, th: &[f64], mean: &mut [f64], var: &mut [f64]) {
        let m = self.train_rows();
        let inv_n = 1.0 / m as f64;
        let act = self.spec.activation;
        let lay = self.layers();
        let k = self.sizes[lay];
        mean.fill(0.0);
        var.fill(0.0);
        WORK.with(|cell| {
            let mut guard = cell.borrow_mut();
            let w = &mut *guard;
            w.ensure(&self.sizes, m, true, self.spec.activation);
            let Work {
                xb,
                yb,
                z,
                a,
                s,
                delta,
                rdelta,
                e,
                re,
                fwd,
                ..
            } = w;
            let (x, y) = self.inputs(Rows::Train, xb, yb);
            self.forward(th, Rows::Train, x, z, a, s, fwd);
            for r in 0..m {
                let o = &z[lay - 1][r * k..(r + 1) * k];
                self.row_loss(o, y[r], Some(&mut delta[lay - 1][r * k..(r + 1) * k]));
            }
            for l in (0..lay).rev() {
                let (fan_in, out) = (self.sizes[l], self.sizes[l + 1]);
                let o = self.offsets[l];
                let input = if l == 0 {
                    x
                } else {
                    view(&a[l - 1], m, fan_in)
                };
                let dl = view(&delta[l], m, out);
                let (gw, gb) = mean[o..o + (fan_in + 1) * out].split_at_mut(fan_in * out);
                general_mat_mul(inv_n, &dl.t(), &input, 1.0, &mut view_mut(gw, out, fan_in));
                for row in dl.rows() {
                    gb.iter_mut().zip(row).for_each(|(b, v)| *b += inv_n * v);
                }
                // Squares of the deltas and of the inputs, then their product.
                let d2 = &mut rdelta[l][..m * out];
                d2.iter_mut()
                    .zip(&delta[l][..m * out])
                    .for_each(|(s, v)| *s = v * v);
                let in2 = &mut re[..m * fan_in];
                in2.iter_mut()
                    .zip(input.iter())
                    .for_each(|(s, v)| *s = v * v);
                let d2v = view(d2, m, out);
                let (sw, sb) = var[o..o + (fan_in + 1) * out].split_at_mut(fan_in * out);
                general_mat_mul(
                    inv_n,
                    &d2v.t(),
                    &view(in2, m, fan_in),
                    1.0,
                    &mut view_mut(sw, out, fan_in),
                );
                for row in d2v.rows() {
                    sb.iter_mut().zip(row).for_each(|(b, v)| *b += inv_n * v);
                }
                if l > 0 {
                    let (ww, _) = self.weights(th, l);
                    let mut em = view_mut(e, m, fan_in);
                    general_mat_mul(1.0, &dl, &ww, 0.0, &mut em);
                    let n = m * fan_in;
                    let (ap, sp) = (&a[l - 1][..n], slope(&s[l - 1], n));
                    act.times_slope(ap, sp, &e[..n], &mut delta[l - 1][..n]);
                }
            }
        });
        // Second moment minus squared mean; rounding may leave a hair below zero.
        var.iter_mut()
            .zip(mean.iter())
            .for_each(|(v, mu)| *v = (*v - mu * mu).max(0.0));
    }

    /// Per-example gradient `∇ℓ_i(θ)` of training row `i` (no L2 term). For tests and
    /// diagnostics, not hot loops.
    pub fn example_gradient(&self, th: &[f64], i: usize, g: &mut [f64]) {
        self.pass(th, Rows::Some(&[i]), None, Some(g));
    }

    /// Mean loss over the test rows (no L2 term); `NaN` without test rows.
    pub fn held_out_loss(&self, th: &[f64]) -> f64 {
        let m = self.split.test.rows();
        self.pass(th, Rows::Test, None, None) / m as f64
    }

    /// Mean loss over the training rows (no L2 term).
    pub fn train_loss(&self, th: &[f64]) -> f64 {
        self.pass(th, Rows::Train, None, None) / self.train_rows() as f64
    }

    /// Fraction of test rows whose largest output is the label; `None` for regression data (or
    /// without test rows).
    pub fn held_out_accuracy(&self, th: &[f64]) -> Option<f64> {
        self.split.train.targets().classes()?;
        let m = self.split.test.rows();
        if m == 0 {
            return None;
        }
        WORK.with(|cell| {
            let mut guard = cell.borrow_mut();
            let w = &mut *guard;
            w.ensure(&self.sizes, m, false, self.spec.activation);
            let Work {
                xb,
                yb,
                z,
                a,
                s,
                fwd,
                ..
            } = w;
            let (x, y) = self.inputs(Rows::Test, xb, yb);
            self.forward(th, Rows::Test, x, z, a, s, fwd);
            let lay = self.layers();
            let k = self.sizes[lay];
            let correct = (0..m)
                .filter(|&r| {
                    let o = &z[lay - 1][r * k..(r + 1) * k];
                    let best = (0..k).fold(0, |b, j| if o[j] > o[b] { j } else { b });
                    best == y[r] as usize
                })
                .count();
            Some(correct as f64 / m as f64)
        })
    }

    /// `out = (1/n) Σ_i ∇²ℓ_i v` over the training rows (no L2 term), by the R-operator.
    fn hvp_data(&self, th: &[f64], v: &[f64], out: &mut [f64]) {
        let m = self.train_rows();
        let inv_n = 1.0 / m as f64;
        let act = self.spec.activation;
        let lay = self.layers();
        let k = self.sizes[lay];
        WORK.with(|cell| {
            let mut guard = cell.borrow_mut();
            let w = &mut *guard;
            w.ensure(&self.sizes, m, true, self.spec.activation);
            let Work {
                xb,
                yb,
                z,
                a,
                s,
                delta,
                rz,
                ra,
                rdelta,
                e,
                re,
                fwd,
                ..
            } = w;
            let (x, y) = self.inputs(Rows::Train, xb, yb);
            self.forward(th, Rows::Train, x, z, a, s, fwd);
            // R-forward.
            for l in 0..lay {
                let (fan_in, outw) = (self.sizes[l], self.sizes[l + 1]);
                let (vw, vb) = self.weights(v, l);
                let (ww, _) = self.weights(th, l);
                let input = if l == 0 {
                    x
                } else {
                    view(&a[l - 1], m, fan_in)
                };
                let (rbefore, rafter) = ra.split_at_mut(l);
                let mut rzl = view_mut(&mut rz[l], m, outw);
                general_mat_mul(1.0, &input, &vw.t(), 0.0, &mut rzl);
                if l > 0 {
                    let rin = view(&rbefore[l - 1], m, fan_in);
                    general_mat_mul(1.0, &rin, &ww.t(), 1.0, &mut rzl);
                }
                for mut row in rzl.rows_mut() {
                    row.iter_mut().zip(vb).for_each(|(r, b)| *r += b);
                }
                if l + 1 < lay {
                    let n = m * outw;
                    let sl = slope(&s[l], n);
                    act.times_slope(&a[l][..n], sl, &rz[l][..n], &mut rafter[0][..n]);
                }
            }
            // Output: δ_L = ∂ℓ/∂o and R δ_L = ∇²_o ℓ · R o, both with the 1/n weight.
            for r in 0..m {
                let o = &z[lay - 1][r * k..(r + 1) * k];
                let dl = &mut delta[lay - 1][r * k..(r + 1) * k];
                self.row_loss(o, y[r], Some(dl));
                let ro = &rz[lay - 1][r * k..(r + 1) * k];
                let rd = &mut rdelta[lay - 1][r * k..(r + 1) * k];
                match self.objective {
                    Objective::CrossEntropy => {
                        // p = δ + e_y; ∇²_o ℓ = diag(p) − p pᵀ.
                        let c = y[r] as usize;
                        let pr: f64 = (0..k)
                            .map(|j| (dl[j] + if j == c { 1.0 } else { 0.0 }) * ro[j])
                            .sum();
                        for j in 0..k {
                            let p = dl[j] + if j == c { 1.0 } else { 0.0 };
                            rd[j] = p * (ro[j] - pr);
                        }
                    }
                    Objective::Squared => rd.copy_from_slice(ro),
                }
                dl.iter_mut().for_each(|v| *v *= inv_n);
                rd.iter_mut().for_each(|v| *v *= inv_n);
            }
            // R-backward.
            out.fill(0.0);
            for l in (0..lay).rev() {
                let (fan_in, outw) = (self.sizes[l], self.sizes[l + 1]);
                let o = self.offsets[l];
                let input = if l == 0 {
                    x
                } else {
                    view(&a[l - 1], m, fan_in)
                };
                let dl = view(&delta[l], m, outw);
                let rdl = view(&rdelta[l], m, outw);
                let (hw, hb) = out[o..o + (fan_in + 1) * outw].split_at_mut(fan_in * outw);
                let mut hw = view_mut(hw, outw, fan_in);
                general_mat_mul(1.0, &rdl.t(), &input, 1.0, &mut hw);
                if l > 0 {
                    let rin = view(&ra[l - 1], m, fan_in);
                    general_mat_mul(1.0, &dl.t(), &rin, 1.0, &mut hw);
                }
                for row in rdl.rows() {
                    hb.iter_mut().zip(row).for_each(|(b, v)| *b += v);
                }
                if l > 0 {
                    let (ww, _) = self.weights(th, l);
                    let (vw, _) = self.weights(v, l);
                    let mut em = view_mut(e, m, fan_in);
                    general_mat_mul(1.0, &dl, &ww, 0.0, &mut em);
                    let mut rem = view_mut(re, m, fan_in);
                    general_mat_mul(1.0, &rdl, &ww, 0.0, &mut rem);
                    general_mat_mul(1.0, &dl, &vw, 1.0, &mut rem);
                    let n = m * fan_in;
                    let (prev_d, prev_rd) = (&mut delta[l - 1], &mut rdelta[l - 1]);
                    for i in 0..n {
                        let (d1, d2) = act.derivatives(z[l - 1][i], a[l - 1][i]);
                        prev_d[i] = d1 * e[i];
                        prev_rd[i] = d2 * rz[l - 1][i] * e[i] + d1 * re[i];
                    }
                }
            }
        });
    }
}

impl Loss for Mlp {
    fn dim(&self) -> usize {
        *self.offsets.last().unwrap_or(&0)
    }
    fn value(&self, x: &[f64]) -> f64 {
        let data = self.pass(x, Rows::Train, None, None) / self.train_rows() as f64;
        data + 0.5 * self.spec.l2 * x.iter().map(|v| v * v).sum::<f64>()
    }
    fn gradient(&self, x: &[f64], g: &mut [f64]) {
        assert_eq!(g.len(), self.dim());
        self.pass(x, Rows::Train, None, Some(g));
        let inv_n = 1.0 / self.train_rows() as f64;
        let l2 = self.spec.l2;
        g.iter_mut()
            .zip(x)
            .for_each(|(gi, xi)| *gi = *gi * inv_n + l2 * xi);
    }
    fn hessian_vec(&self, x: &[f64], v: &[f64], out: &mut [f64]) {
        assert_eq!(v.len(), self.dim());
        assert_eq!(out.len(), self.dim());
        self.hvp_data(x, v, out);
        let l2 = self.spec.l2;
        out.iter_mut().zip(v).for_each(|(o, vi)| *o += l2 * vi);
    }
    /// Without hidden layers the Hessian is `(1/n) Σ_i J_iᵀ ∇²_o ℓ J_i + λI` with `J_i` the
    /// input `[x_i; 1]` copied per output: `∇²_o ℓ ⪯ I` (squared) or `⪯ ½ I` (softmax
    /// cross-entropy: `diag(p) − ppᵀ` has eigenvalues `≤ max p ≤ 1`; we use the safe bound 1), so
    /// `L = c · λ_max((1/n) Σ x̃ x̃ᵀ) + λ` with `c = 1`: globally smooth. A network with hidden
    /// layers has no known global constant: `l0 = ∞` (supply `L0`, `L1` to schedules that need them).
    fn smoothness(&self) -> Smoothness {
        if self.layers() > 1 {
            return Smoothness {
                l0: f64::INFINITY,
                l1: 0.0,
                l_smooth: None,
            };
        }
        let p = self.sizes[0];
        let q = p + 1;
        let mut c = vec![0.0; q * q];
        let n = self.train_rows() as f64;
        for i in 0..self.train_rows() {
            let row = self.split.train.row(i);
            for a in 0..q {
                let xa = if a < p { row[a] } else { 1.0 };
                for b in 0..q {
                    let xb = if b < p { row[b] } else { 1.0 };
                    c[a * q + b] += xa * xb / n;
                }
            }
        }
        let eig = crate::loss::symmetric_eigenvalues(q, &c);
        let l = eig.last().copied().unwrap_or(0.0) + self.spec.l2;
        Smoothness {
            l0: l,
            l1: 0.0,
            l_smooth: Some(l),
        }
    }
    fn minimum(&self) -> Option<f64> {
        None
    }
    fn test_loss(&self, x: &[f64]) -> Option<f64> {
        (self.split.test.rows() > 0).then(|| self.held_out_loss(x))
    }
    fn test_accuracy(&self, x: &[f64]) -> Option<f64> {
        self.held_out_accuracy(x)
    }
    fn name(&self) -> &'static str {
        if self.layers() == 1 {
            "logistic"
        } else {
            "mlp"
        }
    }
}

/// The shared network: minibatch methods hold the same `Arc` as the optimizer's loss.
impl Loss for std::sync::Arc<Mlp> {
    fn dim(&self) -> usize {
        (**self).dim()
    }
    fn value(&self, x: &[f64]) -> f64 {
        (**self).value(x)
    }
    fn gradient(&self, x: &[f64], g: &mut [f64]) {
        (**self).gradient(x, g)
    }
    fn hessian_vec(&self, x: &[f64], v: &[f64], out: &mut [f64]) {
        (**self).hessian_vec(x, v, out)
    }
    fn smoothness(&self) -> Smoothness {
        (**self).smoothness()
    }
    fn minimum(&self) -> Option<f64> {
        (**self).minimum()
    }
    fn name(&self) -> &'static str {
        (**self).name()
    }
    fn test_loss(&self, x: &[f64]) -> Option<f64> {
        (**self).test_loss(x)
    }
    fn test_accuracy(&self, x: &[f64]) -> Option<f64> {
        (**self).test_accuracy(x)
    }
}

/// matrixmultiply's `kc` for `f64` (its `D_KC`): a product with a longer inner dimension sums
/// it in blocks of this many terms, adding each block's FMA chain to the output in turn.
const GEMM_KC: usize = 256;

/// Lanes of the small-batch path's blocks: one AVX-512 register of `f64` (two AVX2 ones).
const LANES: usize = 8;

/// Scratch of the small-batch path (a network with one hidden layer, `p → h → k`, over a few
/// rows: the minibatch gradients). The hidden width is padded to `hp`, a multiple of
/// [`LANES`], with zero weights, so that every hidden-unit loop runs whole vectors.
///
/// Bits: the path repeats the general path's arithmetic operation for operation. matrixmultiply
/// (with FMA; its AVX-512 and AVX2 kernels alike) computes each entry of `C ← A B + β C` as an
/// FMA chain over the inner index in order, from `+0`, then `C = chain + β C`; the inner index
/// is cut in blocks of [`GEMM_KC`] (each block's chain added to `C` in turn). Sums that are not
/// products (the bias gradients) are plain additions in row order, as in `backward`.
#[derive(Default)]
struct SmallWork {
    /// `W_1ᵀ` (`p × hp`), `b_1` (`hp`), `W_2` (`k × hp`), padded with zeros.
    w1t: Vec<f64>,
    b1: Vec<f64>,
    w2: Vec<f64>,
    /// The batch's inputs transposed (`p × m`), targets (`m`).
    xt: Vec<f64>,
    y: Vec<f64>,
    /// Pre-activations, activations and (softplus) slopes of the hidden layer (`m × hp`).
    z: Vec<f64>,
    a: Vec<f64>,
    s: Vec<f64>,
    /// Output deltas `w_r ∂ℓ_r/∂o` (`m × k`), hidden deltas (`m × hp`).
    dout: Vec<f64>,
    dhid: Vec<f64>,
    /// Outputs of a group of rows (`ROW_GROUP × k`), accumulators of `∂W_1ᵀ` (`p × hp`) and
    /// of `∂W_2`, `∂b_1` (`hp`).
    o: Vec<f64>,
    acc: Vec<f64>,
    accb: Vec<f64>,
}

/// Whether this CPU runs the small-batch path: it needs hardware FMA (matrixmultiply's kernels
/// on CPUs without it round every product, and `f64::mul_add` would be a libm call).
fn small_path_cpu() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("fma") && std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `g = Σ_r weights[r] ∇ℓ_{rows[r]}(θ)` for a network with one hidden layer, with the bits of
/// the general path (see [`SmallWork`]). The caller checked [`small_path_cpu`].
fn small_gradient(
    net: &Mlp,
    th: &[f64],
    rows: &[usize],
    weights: &[f64],
    g: &mut [f64],
    s: &mut SmallWork,
) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: AVX-512F and FMA are present (checked here and by the caller).
            unsafe { small_gradient_avx512(net, th, rows, weights, g, s) };
            return;
        }
        // SAFETY: AVX2 and FMA are present (checked by the caller).
        unsafe { small_gradient_avx2(net, th, rows, weights, g, s) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    small_gradient_body(net, th, rows, weights, g, s);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
unsafe fn small_gradient_avx512(
    net: &Mlp,
    th: &[f64],
    rows: &[usize],
    weights: &[f64],
    g: &mut [f64],
    s: &mut SmallWork,
) {
    small_gradient_body(net, th, rows, weights, g, s);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn small_gradient_avx2(
    net: &Mlp,
    th: &[f64],
    rows: &[usize],
    weights: &[f64],
    g: &mut [f64],
    s: &mut SmallWork,
) {
    small_gradient_body(net, th, rows, weights, g, s);
}

fn fit(v: &mut Vec<f64>, len: usize) {
    if v.len() < len {
        v.resize(len, 0.0);
    }
}

/// A fixed-size block of `W` entries of `v` from `at` (one bounds check, and loops over it
/// unroll into whole vectors).
#[inline(always)]
fn blk<const W: usize>(v: &[f64], at: usize) -> &[f64; W] {
    v[at..at + W].try_into().expect("block inside the buffer")
}

#[inline(always)]
fn blk_mut<const W: usize>(v: &mut [f64], at: usize) -> &mut [f64; W] {
    (&mut v[at..at + W])
        .try_into()
        .expect("block inside the buffer")
}

/// Hidden pre-activations of two rows `x0`, `x1`, lanes `j..j + W`:
/// `z = (Σ_kk x[kk] W_1ᵀ[kk][j]) + b`, the sum an FMA chain over `kk` from `+0` (the bias is
/// the product's `C`, β = 1).
#[inline(always)]
fn hidden_block2<const W: usize>(
    x0: &[f64],
    x1: &[f64],
    w1t: &[f64],
    b1: &[f64],
    hp: usize,
    j: usize,
) -> ([f64; W], [f64; W]) {
    let mut a0 = [0.0; W];
    let mut a1 = [0.0; W];
    for (kk, (&u, &v)) in x0.iter().zip(x1).enumerate() {
        let wr = blk::<W>(w1t, kk * hp + j);
        for l in 0..W {
            a0[l] = u.mul_add(wr[l], a0[l]);
            a1[l] = v.mul_add(wr[l], a1[l]);
        }
    }
    let b = blk::<W>(b1, j);
    for l in 0..W {
        a0[l] += b[l];
        a1[l] += b[l];
    }
    (a0, a1)
}

/// `acc[kk·hp + l] += Σ_r d[r·hp + l] x_{start + r}[kk]` (`xt` the `p × m` transposed inputs;
/// the sum an FMA chain over the rows from `+0`) for the `KB` inputs `kk0..kk0 + KB`, lanes
/// `j0..j0 + W`: `KB · W / 8` independent chains (16 at `W = 32`, `KB = 4`), enough to keep
/// both FMA units busy, and 4 + 4 loads per 16 FMAs.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn outer_block<const W: usize, const KB: usize>(
    d: &[f64],
    xt: &[f64],
    m: usize,
    start: usize,
    rows: usize,
    hp: usize,
    kk0: usize,
    j0: usize,
    acc: &mut [f64],
) {
    // One explicit chain array per input: LLVM keeps these in registers (an array of arrays
    // indexed in a loop it spilled).
    let mut c0 = [0.0; W];
    let mut c1 = [0.0; W];
    let mut c2 = [0.0; W];
    let mut c3 = [0.0; W];
    let x = |b: usize| {
        let o = (kk0 + b.min(KB - 1)) * m + start;
        &xt[o..o + rows]
    };
    let (x0, x1, x2, x3) = (x(0), x(1), x(2), x(3));
    for r in 0..rows {
        let dr = blk::<W>(d, r * hp + j0);
        let v = x0[r];
        for l in 0..W {
            c0[l] = dr[l].mul_add(v, c0[l]);
        }
        if KB > 1 {
            let v = x1[r];
            for l in 0..W {
                c1[l] = dr[l].mul_add(v, c1[l]);
            }
        }
        if KB > 2 {
            let v = x2[r];
            for l in 0..W {
                c2[l] = dr[l].mul_add(v, c2[l]);
            }
        }
        if KB > 3 {
            let v = x3[r];
            for l in 0..W {
                c3[l] = dr[l].mul_add(v, c3[l]);
            }
        }
    }
    for (b, cb) in [c0, c1, c2, c3].iter().enumerate().take(KB) {
        let a = blk_mut::<W>(acc, (kk0 + b) * hp + j0);
        for l in 0..W {
            a[l] += cb[l];
        }
    }
}

/// [`outer_block`] for every lane block, `KB` inputs from `kk0`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn outer_blocks<const KB: usize>(
    d: &[f64],
    xt: &[f64],
    m: usize,
    start: usize,
    rows: usize,
    hp: usize,
    kk0: usize,
    acc: &mut [f64],
) {
    let mut j = 0;
    while j + 4 * LANES <= hp {
        outer_block::<{ 4 * LANES }, KB>(d, xt, m, start, rows, hp, kk0, j, acc);
        j += 4 * LANES;
    }
    while j < hp {
        outer_block::<LANES, KB>(d, xt, m, start, rows, hp, kk0, j, acc);
        j += LANES;
    }
}

/// `acc[l] += Σ_r dout[r·k + c] a[r·hp + j + l]` over `rows` (the sum an FMA chain over the rows
/// from `+0`), lanes `j..j + W`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn output_grad_block<const W: usize>(
    dout: &[f64],
    a: &[f64],
    rows: std::ops::Range<usize>,
    k: usize,
    c: usize,
    hp: usize,
    j: usize,
    acc: &mut [f64],
) {
    let mut ch = [0.0; W];
    for r in rows {
        let dv = dout[r * k + c];
        let ar = blk::<W>(a, r * hp + j);
        for l in 0..W {
            ch[l] = dv.mul_add(ar[l], ch[l]);
        }
    }
    let out = blk_mut::<W>(acc, j);
    for l in 0..W {
        out[l] += ch[l];
    }
}

/// Rows handled together by the output layer's dot products (each a serial FMA chain over the
/// hidden units: interleaving rows hides the FMA latency).
const ROW_GROUP: usize = 8;

#[inline(always)]
fn small_gradient_body(
    net: &Mlp,
    th: &[f64],
    rows: &[usize],
    weights: &[f64],
    g: &mut [f64],
    s: &mut SmallWork,
) {
    let (p, h, k) = (net.sizes[0], net.sizes[1], net.sizes[2]);
    let hp = h.div_ceil(LANES) * LANES;
    let m = rows.len();
    let act = net.spec.activation;
    let o2 = net.offsets[1];
    let (w1, b1) = (&th[..h * p], &th[h * p..h * p + h]);
    let (w2, b2) = (&th[o2..o2 + k * h], &th[o2 + k * h..o2 + k * h + k]);
    fit(&mut s.w1t, p * hp);
    fit(&mut s.acc, p * hp);
    fit(&mut s.b1, hp);
    fit(&mut s.accb, hp);
    fit(&mut s.w2, k * hp);
    fit(&mut s.xt, m * p);
    fit(&mut s.y, m);
    fit(&mut s.z, m * hp);
    fit(&mut s.a, m * hp);
    if act == Activation::Softplus {
        fit(&mut s.s, m * hp);
    }
    fit(&mut s.dhid, m * hp);
    fit(&mut s.dout, m * k);
    fit(&mut s.o, k * ROW_GROUP);
    // Plain slices, so that stores into one buffer cannot look (to LLVM) like stores into
    // another's `Vec` header, which it would then reload in every loop.
    let SmallWork {
        w1t,
        b1: b1p,
        w2: w2p,
        xt,
        y: ys,
        z,
        a,
        s: slopes,
        dout,
        dhid,
        o,
        acc: accw,
        accb,
    } = s;
    let (w1t, b1p, w2p) = (&mut w1t[..p * hp], &mut b1p[..hp], &mut w2p[..k * hp]);
    let (xt, ys) = (&mut xt[..m * p], &mut ys[..m]);
    let (z, a, dhid) = (&mut z[..m * hp], &mut a[..m * hp], &mut dhid[..m * hp]);
    let (dout, o) = (&mut dout[..m * k], &mut o[..k * ROW_GROUP]);
    let (accw, accb) = (&mut accw[..p * hp], &mut accb[..hp]);
    // Padded parameters (the padding lanes compute z = 0 and never reach g).
    for kk in 0..p {
        for j in 0..hp {
            w1t[kk * hp + j] = if j < h { w1[j * p + kk] } else { 0.0 };
        }
    }
    for j in 0..hp {
        b1p[j] = if j < h { b1[j] } else { 0.0 };
        for c in 0..k {
            w2p[c * hp + j] = if j < h { w2[c * h + j] } else { 0.0 };
        }
    }
    // The batch's inputs transposed (`p × m`: the weight gradient broadcasts them), filled
    // column by column (contiguous stores); the forward pass reads the rows in place.
    let feats = net.split.train.feature_matrix();
    for (kk, col) in xt.chunks_exact_mut(m).enumerate() {
        for (xv, &i) in col.iter_mut().zip(rows) {
            *xv = feats[i * p + kk];
        }
    }
    for (yv, &i) in ys.iter_mut().zip(rows) {
        *yv = net.y_train[i];
    }
    // Forward, hidden layer, two rows at a time (eight independent FMA chains at h = 32),
    // then σ.
    let mut r = 0;
    while r < m {
        let two = r + 1 < m;
        let x0 = net.split.train.row(rows[r]);
        let x1 = if two {
            net.split.train.row(rows[r + 1])
        } else {
            x0
        };
        let mut j = 0;
        while j + 4 * LANES <= hp {
            let (z0, z1) = hidden_block2::<{ 4 * LANES }>(x0, x1, w1t, b1p, hp, j);
            *blk_mut::<{ 4 * LANES }>(z, r * hp + j) = z0;
            if two {
                *blk_mut::<{ 4 * LANES }>(z, (r + 1) * hp + j) = z1;
            }
            j += 4 * LANES;
        }
        while j < hp {
            let (z0, z1) = hidden_block2::<LANES>(x0, x1, w1t, b1p, hp, j);
            *blk_mut::<LANES>(z, r * hp + j) = z0;
            if two {
                *blk_mut::<LANES>(z, (r + 1) * hp + j) = z1;
            }
            j += LANES;
        }
        r += 2;
    }
    match act {
        Activation::Tanh => tanh_slice_body(&z[..m * hp], &mut a[..m * hp]),
        Activation::Softplus => {
            softplus_logistic_slice_body(&z[..m * hp], &mut a[..m * hp], &mut slopes[..m * hp])
        }
    }
    // Output layer (an FMA chain over the h units, then the bias), loss, weighted deltas.
    // Squared error on a real target is `row_loss`'s `δ = o − y` inline.
    let real_squared =
        net.objective == Objective::Squared && net.split.train.targets().classes().is_none();
    let mut r0 = 0;
    while r0 < m {
        let n = ROW_GROUP.min(m - r0);
        for c in 0..k {
            let wc = &w2p[c * hp..c * hp + h];
            if n == ROW_GROUP {
                let ar: [&[f64]; ROW_GROUP] =
                    std::array::from_fn(|q| &a[(r0 + q) * hp..(r0 + q) * hp + h]);
                let mut acc = [0.0; ROW_GROUP];
                for (j, wv) in wc.iter().enumerate() {
                    for q in 0..ROW_GROUP {
                        acc[q] = ar[q][j].mul_add(*wv, acc[q]);
                    }
                }
                for q in 0..ROW_GROUP {
                    o[q * k + c] = acc[q] + b2[c];
                }
            } else {
                for q in 0..n {
                    let ar = &a[(r0 + q) * hp..(r0 + q) * hp + h];
                    let mut acc = 0.0;
                    for (av, wv) in ar.iter().zip(wc) {
                        acc = av.mul_add(*wv, acc);
                    }
                    o[q * k + c] = acc + b2[c];
                }
            }
        }
        for q in 0..n {
            let r = r0 + q;
            let dr = &mut dout[r * k..(r + 1) * k];
            if real_squared {
                dr[0] = (o[q] - ys[r]) * weights[r];
            } else {
                net.row_loss(&o[q * k..(q + 1) * k], ys[r], Some(dr));
                dr.iter_mut().for_each(|v| *v *= weights[r]);
            }
        }
        r0 += n;
    }
    g.fill(0.0);
    // Output layer gradients: ∂W_2 = Σ_r δ_r a_rᵀ (chains over the rows in blocks of kc),
    // ∂b_2 = Σ_r δ_r in row order.
    {
        let (gw2, gb2) = g[o2..o2 + (h + 1) * k].split_at_mut(h * k);
        for c in 0..k {
            let acc = &mut accb[..hp];
            acc.fill(0.0);
            let mut start = 0;
            while start < m {
                let end = (start + GEMM_KC).min(m);
                let mut j = 0;
                while j + 4 * LANES <= hp {
                    output_grad_block::<{ 4 * LANES }>(dout, a, start..end, k, c, hp, j, acc);
                    j += 4 * LANES;
                }
                while j < hp {
                    output_grad_block::<LANES>(dout, a, start..end, k, c, hp, j, acc);
                    j += LANES;
                }
                start = end;
            }
            gw2[c * h..(c + 1) * h].copy_from_slice(&acc[..h]);
            for r in 0..m {
                gb2[c] += dout[r * k + c];
            }
        }
    }
    // Hidden deltas: e = Σ_c δ_c W_2[c] (an FMA chain over the outputs from +0; β = 0), then
    // σ'(z) e (`times_slope`'s expressions; the `match` outside the loops, which vectorize).
    for r in 0..m {
        let dr = &dout[r * k..(r + 1) * k];
        let mut j = 0;
        while j < hp {
            let mut e = [0.0; LANES];
            for (c, dv) in dr.iter().enumerate() {
                let wc = blk::<LANES>(w2p, c * hp + j);
                for l in 0..LANES {
                    e[l] = dv.mul_add(wc[l], e[l]);
                }
            }
            *blk_mut::<LANES>(dhid, r * hp + j) = e;
            j += LANES;
        }
    }
    match act {
        Activation::Tanh => {
            for (dv, av) in dhid.iter_mut().zip(a.iter()) {
                *dv *= 1.0 - av * av;
            }
        }
        Activation::Softplus => {
            // `times_slope`'s product (IEEE multiplication commutes: the general path's bits).
            for (dv, sv) in dhid.iter_mut().zip(slopes[..m * hp].iter()) {
                *dv *= sv;
            }
        }
    }
    // Hidden layer gradients: ∂W_1 = Σ_r δ_r x_rᵀ (transposed in `acc`), ∂b_1 = Σ_r δ_r.
    let acc = &mut accw[..p * hp];
    acc.fill(0.0);
    let mut start = 0;
    while start < m {
        let end = (start + GEMM_KC).min(m);
        let d = &dhid[start * hp..end * hp];
        let (xt, n) = (&xt[..p * m], end - start);
        let mut kk = 0;
        while kk + 4 <= p {
            outer_blocks::<4>(d, xt, m, start, n, hp, kk, acc);
            kk += 4;
        }
        match p - kk {
            3 => outer_blocks::<3>(d, xt, m, start, n, hp, kk, acc),
            2 => outer_blocks::<2>(d, xt, m, start, n, hp, kk, acc),
            1 => outer_blocks::<1>(d, xt, m, start, n, hp, kk, acc),
            _ => {}
        }
        start = end;
    }
    let (gw1, gb1) = g[..(p + 1) * h].split_at_mut(p * h);
    for j in 0..h {
        for kk in 0..p {
            gw1[j * p + kk] = acc[kk * hp + j];
        }
    }
    let accb = &mut accb[..hp];
    accb.fill(0.0);
    for r in 0..m {
        let dr = &dhid[r * hp..(r + 1) * hp];
        accb.iter_mut().zip(dr).for_each(|(b, v)| *b += v);
    }
    gb1.copy_from_slice(&accb[..h]);
}
