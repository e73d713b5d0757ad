//! Milstein: strong order 1, weak order 1, for commutative noise (see [`Milstein`]).

use crate::noise::NoiseShape;
use crate::problem::Sde;
use crate::scheme::{Scheme, SchemeInfo, Step, StepBuffers};

/// Where the Milstein correction `L^{j1} b^{j2}` comes from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MilsteinCorrection {
    /// The problem's [`Sde::diffusion_derivative`] when [`Sde::has_diffusion_derivative`] is
    /// true, the derivative-free Runge–Kutta form otherwise.
    #[default]
    Auto,
    /// Always the derivative-free Runge–Kutta form (Kloeden & Platen 1992, §11.1).
    DerivativeFree,
}

/// Milstein: strong order 1, weak order 1, for commutative noise.
///
/// ```text
/// X_{n+1} = X_n + a h + Σ_j b^j ΔW_j + ½ Σ_{j1,j2} (L^{j1} b^{j2}) (ΔW_{j1} ΔW_{j2} − δ_{j1 j2} h)
/// ```
///
/// with every coefficient at `(t_n, X_n)` and `L^{j1} b^{j2} = Σ_k b_{k j1} ∂_k b^{j2}`, which is
/// column `j2` of [`Sde::diffusion_derivative`] with `v = b^{j1}`. Replacing the iterated Itô
/// integrals `I_(j1,j2)` by `½ (ΔW_{j1} ΔW_{j2} − δ_{j1 j2} h)` is exact only when the noise is
/// commutative (`L^{j1} b^{j2} = L^{j2} b^{j1}`), so general non-commutative noise is rejected:
/// it would need the Lévy areas, which this scheme does not simulate.
///
/// Per noise shape:
///
/// - `Scalar`: one derivative call with `v = b`, correction `½ (L b) (ΔW² − h)`;
/// - `Diagonal`: **assumes `b_ii` depends on `x_i` only** (the usual meaning of diagonal noise,
///   under which it is commutative); one derivative call with `v = diag(b)` gives
///   `out_i = ∂_i b_ii · b_ii`, correction `½ out_i (ΔW_i² − h)`. A diagonal `b_ii` that depends
///   on other components is not detected and loses strong order 1 (declare such a problem
///   `General`);
/// - `General { commutative: true }`: `m` derivative calls, one per column `j1`.
///   `General { commutative: false }` is rejected by [`Scheme::check`] unless `m = 1` (one
///   Brownian motion is always commutative);
/// - `Additive`: `L^{j1} b^{j2} = 0`, so the step is Euler–Maruyama's (through
///   [`Sde::diffusion_mul`]).
///
/// Without a derivative (or with [`Milstein::derivative_free`]) the correction uses the
/// Runge–Kutta form of Kloeden & Platen (1992), §11.1: with the supporting values
/// `Υ^{j} = X + a h + b^{j} sqrt(h)` (evaluated at the same `t_n`),
/// `L^{j1} b^{j2} ≈ (b^{j2}(Υ^{j1}) − b^{j2}(X)) / sqrt(h)`, an `O(sqrt(h))` approximation that
/// keeps strong order 1. Scalar noise needs one supporting value; diagonal noise one supporting
/// value `Υ = X + a h + diag(b) sqrt(h)` taken componentwise (valid under the same assumption);
/// general commutative noise one per column.
///
/// The two forms differ by `O(h^{3/2})` per step.
///
/// ```
/// use sde_core::{Milstein, MilsteinCorrection};
/// assert_eq!(Milstein::default().correction, MilsteinCorrection::Auto);
/// assert_eq!(Milstein::derivative_free().correction, MilsteinCorrection::DerivativeFree);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Milstein {
    /// How the correction is computed.
    pub correction: MilsteinCorrection,
}

impl Milstein {
    /// Uses the problem's diffusion derivative when it supplies one (same as `default()`).
    pub const fn new() -> Self {
        Milstein {
            correction: MilsteinCorrection::Auto,
        }
    }

    /// Always uses the derivative-free Runge–Kutta form, even when the problem supplies a
    /// derivative.
    pub const fn derivative_free() -> Self {
        Milstein {
            correction: MilsteinCorrection::DerivativeFree,
        }
    }

    /// Whether steps on `sde` use its diffusion derivative (rather than the Runge–Kutta form).
    pub fn uses_derivative<S: Sde + ?Sized>(&self, sde: &S) -> bool {
        self.correction == MilsteinCorrection::Auto && sde.has_diffusion_derivative()
    }
}

/// Buffers of one Milstein path: the coefficients at `X` (`bdw` holds `b ΔW` plus the
/// correction for general noise) and two more.
pub struct MilsteinWorkspace {
    c: StepBuffers,
    /// The derivative `Σ_k ∂_k b v_k`, or `b` at a supporting value; diffusion layout.
    lb: Vec<f64>,
    /// A supporting value or a column of `b`, `d`.
    y: Vec<f64>,
    use_derivative: bool,
}

impl Scheme for Milstein {
    type Workspace = MilsteinWorkspace;

    fn info(&self) -> SchemeInfo {
        SchemeInfo {
            name: "milstein",
            strong_order: Some(1.0),
            weak_order: 1.0,
        }
    }
    fn supports(&self, noise: NoiseShape) -> Result<(), &'static str> {
        match noise {
            // One Brownian motion is always commutative.
            NoiseShape::General {
                m,
                commutative: false,
            } if m > 1 => Err(
                "without the commutativity condition L^{j1} b^{j2} = L^{j2} b^{j1} the \
                 iterated integrals I_(j1,j2) (Lévy areas) would be needed, which this scheme \
                 does not simulate; declare the noise commutative if the condition holds, or use \
                 euler_maruyama (strong order 1/2) or weak2 (weak order 2)",
            ),
            _ => Ok(()),
        }
    }
    fn workspace<S: Sde + ?Sized>(&self, sde: &S) -> MilsteinWorkspace {
        let c = StepBuffers::new(sde);
        MilsteinWorkspace {
            lb: vec![0.0; c.b.len()],
            y: vec![0.0; c.a.len()],
            c,
            use_derivative: self.uses_derivative(sde),
        }
    }
    #[inline]
    fn step<S: Sde + ?Sized>(
        &self,
        sde: &S,
        x: &mut [f64],
        st: Step<'_>,
        ws: &mut MilsteinWorkspace,
    ) {
        let Step { t, h, dw, .. } = st;
        match sde.noise() {
            NoiseShape::Scalar => step_separable::<S, false>(sde, t, h, x, dw, ws),
            NoiseShape::Diagonal => step_separable::<S, true>(sde, t, h, x, dw, ws),
            NoiseShape::General { m, .. } => step_general(sde, t, h, x, dw, m, ws),
            NoiseShape::Additive { .. } => ws.c.euler_step(sde, x, t, h, dw),
        }
    }
}

/// Scalar (`DIAG = false`, every component driven by `dw[0]`) or diagonal (`DIAG = true`,
/// component `i` driven by `dw[i]`) noise: the diffusion buffer is a `d`-vector and the
/// correction of component `i` is `½ (L b)_i (w_i² − h)`.
#[inline(always)]
fn step_separable<S: Sde + ?Sized, const DIAG: bool>(
    sde: &S,
    t: f64,
    h: f64,
    x: &mut [f64],
    dw: &[f64],
    ws: &mut MilsteinWorkspace,
) {
    let MilsteinWorkspace {
        c: StepBuffers { a, b, scratch, .. },
        lb,
        y,
        use_derivative,
    } = ws;
    if x.len() == 1 {
        // One component (the W3 benchmark, GBM): the coefficients write into one-element stack
        // arrays, which the compiler keeps in registers once the closures are inlined, so the
        // only memory traffic of the step is one load and one store of `x[0]`. (Through the
        // workspace buffers every value would take a store and a reload on the dependency chain,
        // since the compiler cannot prove they do not alias `x`.)
        let xl = [x[0]];
        let (mut al, mut bl, mut ll) = ([0.0], [0.0], [0.0]);
        sde.drift(t, &xl, &mut al, scratch);
        sde.diffusion(t, &xl, &mut bl, scratch);
        let (x0, a0, b0, w) = (xl[0], al[0], bl[0], dw[0]);
        let l0 = if *use_derivative && sde.diffusion_derivative(t, &xl, &bl, &mut ll, scratch) {
            0.5 * ll[0]
        } else {
            let sh = h.sqrt();
            let c = 0.5 / sh; // off the dependency chain through x
            let yl = [x0 + a0 * h + b0 * sh];
            sde.diffusion(t, &yl, &mut ll, scratch);
            c * (ll[0] - b0)
        };
        x[0] = x0 + a0 * h + b0 * w + l0 * (w * w - h);
        return;
    }
    sde.drift(t, x, a, scratch);
    sde.diffusion(t, x, b, scratch);
    // Diagonal: `v = diag(b)` gives `out_i = Σ_k ∂_k b_ii b_kk = ∂_i b_ii b_ii` when `b_ii`
    // depends on `x_i` only. Scalar: `v = b` gives `L b`.
    if *use_derivative && sde.diffusion_derivative(t, x, b, lb, scratch) {
        update::<DIAG, false>(x, a, b, lb, dw, h, 0.5);
    } else {
        let sh = h.sqrt();
        for (((yi, xi), ai), bi) in y.iter_mut().zip(x.iter()).zip(a.iter()).zip(b.iter()) {
            *yi = xi + ai * h + bi * sh;
        }
        sde.diffusion(t, y, lb, scratch);
        update::<DIAG, true>(x, a, b, lb, dw, h, 0.5 / sh);
    }
}

/// `x_i += a_i h + b_i w_i + c · L_i (w_i² − h)` with `L_i = l_i` (derivative) or
/// `L_i = l_i − b_i` (`FREE`: `l` is `b` at the supporting value, `c` carries `1/sqrt(h)`).
#[inline(always)]
fn update<const DIAG: bool, const FREE: bool>(
    x: &mut [f64],
    a: &[f64],
    b: &[f64],
    l: &[f64],
    dw: &[f64],
    h: f64,
    c: f64,
) {
    let lb = |li: f64, bi: f64| if FREE { li - bi } else { li };
    if DIAG {
        for ((((xi, ai), bi), li), wi) in x.iter_mut().zip(a).zip(b).zip(l).zip(dw) {
            *xi += ai * h + bi * wi + c * lb(*li, *bi) * (wi * wi - h);
        }
    } else {
        let w = dw[0];
        let q = c * (w * w - h);
        for (((xi, ai), bi), li) in x.iter_mut().zip(a).zip(b).zip(l) {
            *xi += ai * h + bi * w + q * lb(*li, *bi);
        }
    }
}

/// General commutative noise (`d × m`, row-major): one derivative call (or one supporting
/// value) per column `j1`.
fn step_general<S: Sde + ?Sized>(
    sde: &S,
    t: f64,
    h: f64,
    x: &mut [f64],
    dw: &[f64],
    m: usize,
    ws: &mut MilsteinWorkspace,
) {
    let MilsteinWorkspace {
        c:
            StepBuffers {
                a,
                b,
                bdw: acc,
                scratch,
            },
        lb,
        y,
        use_derivative,
    } = ws;
    sde.drift(t, x, a, scratch);
    sde.diffusion(t, x, b, scratch);
    NoiseShape::General {
        m,
        commutative: true,
    }
    .apply(b, dw, acc);
    let sh = h.sqrt();
    for (j1, &w1) in dw.iter().enumerate().take(m) {
        for (yi, row) in y.iter_mut().zip(b.chunks_exact(m)) {
            *yi = row[j1];
        }
        let (c, free) = if *use_derivative && sde.diffusion_derivative(t, x, y, lb, scratch) {
            (0.5, false)
        } else {
            for ((yi, xi), ai) in y.iter_mut().zip(x.iter()).zip(a.iter()) {
                *yi = xi + ai * h + *yi * sh;
            }
            sde.diffusion(t, y, lb, scratch);
            (0.5 / sh, true)
        };
        // acc_i += c Σ_{j2} L^{j1} b^{j2}_i (w1 w2 − δ_{j1 j2} h)
        for ((ai, lrow), brow) in acc
            .iter_mut()
            .zip(lb.chunks_exact(m))
            .zip(b.chunks_exact(m))
        {
            let mut s = 0.0;
            for (j2, ((l, bv), w2)) in lrow.iter().zip(brow).zip(dw).enumerate() {
                let lv = if free { l - bv } else { *l };
                let q = if j2 == j1 { w1 * w2 - h } else { w1 * w2 };
                s += lv * q;
            }
            *ai += c * s;
        }
    }
    for ((xi, ai), gi) in x.iter_mut().zip(a.iter()).zip(acc.iter()) {
        *xi += ai * h + gi;
    }
}
