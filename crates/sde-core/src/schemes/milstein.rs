//! Milstein: strong order 1, weak order 1, for commutative noise (see [`Milstein`]).

use crate::error::SdeError;
use crate::noise::NoiseShape;
use crate::problem::Sde;
use crate::rng::PathRng;
use crate::scheme::{unsupported, Scheme};

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

/// Buffers of one Milstein path.
pub struct MilsteinWorkspace {
    /// `a(t, X)`, `d`.
    a: Vec<f64>,
    /// `b(t, X)`, diffusion layout.
    b: Vec<f64>,
    /// The derivative `Σ_k ∂_k b v_k`, or `b` at a supporting value; diffusion layout.
    lb: Vec<f64>,
    /// A supporting value or a column of `b`, `d`.
    y: Vec<f64>,
    /// `b ΔW` plus the correction (general and additive noise), `d`.
    acc: Vec<f64>,
    scratch: Vec<f64>,
    use_derivative: bool,
}

impl Scheme for Milstein {
    type Workspace = MilsteinWorkspace;

    fn name(&self) -> &'static str {
        "milstein"
    }
    fn strong_order(&self) -> Option<f64> {
        Some(1.0)
    }
    fn weak_order(&self) -> f64 {
        1.0
    }
    fn check<S: Sde + ?Sized>(&self, sde: &S) -> Result<(), SdeError> {
        match sde.noise() {
            // One Brownian motion is always commutative.
            NoiseShape::General {
                m,
                commutative: false,
            } if m > 1 => Err(unsupported(
                self.name(),
                sde.noise(),
                "without the commutativity condition L^{j1} b^{j2} = L^{j2} b^{j1} the \
                 iterated integrals I_(j1,j2) (Lévy areas) would be needed, which this scheme \
                 does not simulate; declare the noise commutative if the condition holds, or use \
                 euler_maruyama (strong order 1/2) or weak2 (weak order 2)",
            )),
            _ => Ok(()),
        }
    }
    fn workspace<S: Sde + ?Sized>(&self, sde: &S) -> MilsteinWorkspace {
        let d = sde.dim();
        let len = sde.noise().diffusion_len(d);
        MilsteinWorkspace {
            a: vec![0.0; d],
            b: vec![0.0; len],
            lb: vec![0.0; len],
            y: vec![0.0; d],
            acc: vec![0.0; d],
            scratch: vec![0.0; sde.scratch_len()],
            use_derivative: self.uses_derivative(sde),
        }
    }
    #[inline]
    fn step<S: Sde + ?Sized>(
        &self,
        sde: &S,
        t: f64,
        h: f64,
        x: &mut [f64],
        dw: &[f64],
        _rng: &mut PathRng,
        ws: &mut MilsteinWorkspace,
    ) {
        match sde.noise() {
            NoiseShape::Scalar => step_separable::<S, false>(sde, t, h, x, dw, ws),
            NoiseShape::Diagonal => step_separable::<S, true>(sde, t, h, x, dw, ws),
            NoiseShape::General { m, .. } => step_general(sde, t, h, x, dw, m, ws),
            NoiseShape::Additive { .. } => {
                sde.drift(t, x, &mut ws.a, &mut ws.scratch);
                sde.diffusion_mul(t, x, dw, &mut ws.acc, &mut ws.b, &mut ws.scratch);
                for ((xi, ai), gi) in x.iter_mut().zip(&ws.a).zip(&ws.acc) {
                    *xi += ai * h + gi;
                }
            }
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
        a,
        b,
        lb,
        y,
        scratch,
        use_derivative,
        ..
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
        a,
        b,
        lb,
        y,
        acc,
        scratch,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::problem::SdeFn;
    use crate::rng::derive_stream;
    use crate::EulerMaruyama;

    fn one_step<S: Sde, Sch: Scheme>(
        sde: &S,
        scheme: Sch,
        t: f64,
        h: f64,
        x0: &[f64],
        dw: &[f64],
    ) -> Vec<f64> {
        let mut ws = scheme.workspace(sde);
        let mut x = x0.to_vec();
        let mut rng = derive_stream(0, 0);
        scheme.step(sde, t, h, &mut x, dw, &mut rng, &mut ws);
        x
    }

    fn assert_close(got: &[f64], want: &[f64], tol: f64) {
        for (g, w) in got.iter().zip(want) {
            assert!(
                (g - w).abs() <= tol * (1.0 + w.abs()),
                "got {got:?}, want {want:?}"
            );
        }
    }

    /// `max_i |x_i − y_i|` of the two forms at `h`, `h/4`, `h/16` with `dw = z sqrt(h)`:
    /// successive ratios must be close to `4^{3/2} = 8`.
    fn assert_forms_agree_to_h32<S: Sde>(sde: &S, x0: &[f64], z: &[f64]) {
        assert!(sde.has_diffusion_derivative());
        let mut diffs = Vec::new();
        for k in 0..3 {
            let h = 0.01 / 4f64.powi(k);
            let dw: Vec<f64> = z.iter().map(|zi| zi * h.sqrt()).collect();
            let exact = one_step(sde, Milstein::default(), 0.3, h, x0, &dw);
            let free = one_step(sde, Milstein::derivative_free(), 0.3, h, x0, &dw);
            let diff = exact
                .iter()
                .zip(&free)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            diffs.push(diff);
        }
        for r in [diffs[0] / diffs[1], diffs[1] / diffs[2]] {
            assert!(
                (6.5..9.5).contains(&r),
                "ratios should be ~8, diffs {diffs:?}"
            );
        }
    }

    // Scalar noise, d = 2: a = (x1, −x0 t), b = (sin x0, x0 x1).
    fn scalar_problem() -> impl Sde {
        SdeFn::new(
            2,
            NoiseShape::Scalar,
            |t, x: &[f64], a: &mut [f64]| {
                a[0] = x[1];
                a[1] = -x[0] * t;
            },
            |_t, x: &[f64], b: &mut [f64]| {
                b[0] = x[0].sin();
                b[1] = x[0] * x[1];
            },
        )
        .unwrap()
        .with_derivative(|_t, x: &[f64], v: &[f64], out: &mut [f64]| {
            out[0] = x[0].cos() * v[0];
            out[1] = x[1] * v[0] + x[0] * v[1];
        })
    }

    #[test]
    fn scalar_step_matches_hand_computation() {
        let sde = scalar_problem();
        let (t, h, x, w): (f64, f64, [f64; 2], f64) = (0.3, 0.01, [0.7, -1.2], 0.25);
        let a = [x[1], -x[0] * t];
        let b = [x[0].sin(), x[0] * x[1]];
        let lb = [x[0].cos() * b[0], x[1] * b[0] + x[0] * b[1]];
        let want: Vec<f64> = (0..2)
            .map(|i| x[i] + a[i] * h + b[i] * w + 0.5 * lb[i] * (w * w - h))
            .collect();
        assert_close(
            &one_step(&sde, Milstein::default(), t, h, &x, &[w]),
            &want,
            1e-14,
        );

        // Runge–Kutta form by hand.
        let sh = h.sqrt();
        let y = [x[0] + a[0] * h + b[0] * sh, x[1] + a[1] * h + b[1] * sh];
        let by = [y[0].sin(), y[0] * y[1]];
        let want: Vec<f64> = (0..2)
            .map(|i| x[i] + a[i] * h + b[i] * w + 0.5 * (by[i] - b[i]) / sh * (w * w - h))
            .collect();
        assert_close(
            &one_step(&sde, Milstein::derivative_free(), t, h, &x, &[w]),
            &want,
            1e-14,
        );

        assert_forms_agree_to_h32(&sde, &x, &[1.3]);
    }

    #[test]
    fn one_component_fast_path_matches_hand_computation() {
        // d = 1 takes the register path; b = x² + sin t, a = −x t, for scalar and diagonal noise.
        for noise in [NoiseShape::Scalar, NoiseShape::Diagonal] {
            let sde = SdeFn::new(
                1,
                noise,
                |t, x: &[f64], a: &mut [f64]| a[0] = -x[0] * t,
                |t, x: &[f64], b: &mut [f64]| b[0] = x[0] * x[0] + t.sin(),
            )
            .unwrap()
            .with_derivative(|_t, x: &[f64], v: &[f64], out: &mut [f64]| {
                out[0] = 2.0 * x[0] * v[0]
            });
            let (t, h, x, w): (f64, f64, f64, f64) = (0.6, 0.01, 0.8, -0.17);
            let (a, b) = (-x * t, x * x + t.sin());
            let want = x + a * h + b * w + 0.5 * (2.0 * x * b) * (w * w - h);
            assert_close(
                &one_step(&sde, Milstein::default(), t, h, &[x], &[w]),
                &[want],
                1e-15,
            );
            let sh = h.sqrt();
            let y = x + a * h + b * sh;
            let want = x + a * h + b * w + 0.5 * (y * y + t.sin() - b) / sh * (w * w - h);
            let got = one_step(&sde, Milstein::derivative_free(), t, h, &[x], &[w]);
            assert_close(&got, &[want], 1e-15);
            assert_forms_agree_to_h32(&sde, &[x], &[0.7]);
        }
    }

    #[test]
    fn default_without_derivative_is_the_runge_kutta_form() {
        let with = scalar_problem();
        let without = SdeFn::new(
            2,
            NoiseShape::Scalar,
            |t, x: &[f64], a: &mut [f64]| {
                a[0] = x[1];
                a[1] = -x[0] * t;
            },
            |_t, x: &[f64], b: &mut [f64]| {
                b[0] = x[0].sin();
                b[1] = x[0] * x[1];
            },
        )
        .unwrap();
        assert!(!Milstein::default().uses_derivative(&without));
        assert!(Milstein::default().uses_derivative(&with));
        assert!(!Milstein::derivative_free().uses_derivative(&with));
        let (x, dw) = ([0.7, -1.2], [0.25]);
        let a = one_step(&without, Milstein::default(), 0.3, 0.01, &x, &dw);
        let b = one_step(&with, Milstein::derivative_free(), 0.3, 0.01, &x, &dw);
        assert_eq!(a, b);
    }

    #[test]
    fn diagonal_step_matches_hand_computation() {
        // b_ii depends on x_i only: b = (0.3 x0², 2 + sin x1).
        let sde = SdeFn::new(
            2,
            NoiseShape::Diagonal,
            |_t, x: &[f64], a: &mut [f64]| {
                a[0] = -x[0] + x[1];
                a[1] = 0.5 * x[0];
            },
            |_t, x: &[f64], b: &mut [f64]| {
                b[0] = 0.3 * x[0] * x[0];
                b[1] = 2.0 + x[1].sin();
            },
        )
        .unwrap()
        .with_derivative(|_t, x: &[f64], v: &[f64], out: &mut [f64]| {
            out[0] = 0.6 * x[0] * v[0];
            out[1] = x[1].cos() * v[1];
        });
        let (t, h, x, w): (f64, f64, [f64; 2], [f64; 2]) = (0.0, 0.02, [1.1, 0.4], [0.1, -0.3]);
        let a = [-x[0] + x[1], 0.5 * x[0]];
        let b = [0.3 * x[0] * x[0], 2.0 + x[1].sin()];
        let lb = [0.6 * x[0] * b[0], x[1].cos() * b[1]];
        let want: Vec<f64> = (0..2)
            .map(|i| x[i] + a[i] * h + b[i] * w[i] + 0.5 * lb[i] * (w[i] * w[i] - h))
            .collect();
        assert_close(
            &one_step(&sde, Milstein::default(), t, h, &x, &w),
            &want,
            1e-14,
        );

        let sh = h.sqrt();
        let y = [x[0] + a[0] * h + b[0] * sh, x[1] + a[1] * h + b[1] * sh];
        let by = [0.3 * y[0] * y[0], 2.0 + y[1].sin()];
        let want: Vec<f64> = (0..2)
            .map(|i| x[i] + a[i] * h + b[i] * w[i] + 0.5 * (by[i] - b[i]) / sh * (w[i] * w[i] - h))
            .collect();
        assert_close(
            &one_step(&sde, Milstein::derivative_free(), t, h, &x, &w),
            &want,
            1e-14,
        );

        assert_forms_agree_to_h32(&sde, &x, &[0.8, -1.4]);
    }

    /// Commutative general noise: b^1 = f(x), b^2 = ½ f(x) with f = (sin x1, cos x0), so that
    /// L^{j1} b^{j2} = c_{j1} c_{j2} (f'·f) is symmetric; plus a third column of zeros to check
    /// the loops over j2.
    fn general_problem() -> impl Sde {
        SdeFn::new(
            2,
            NoiseShape::General {
                m: 3,
                commutative: true,
            },
            |_t, x: &[f64], a: &mut [f64]| {
                a[0] = 0.2 * x[0];
                a[1] = -x[1];
            },
            |_t, x: &[f64], b: &mut [f64]| {
                let f = [x[1].sin(), x[0].cos()];
                for i in 0..2 {
                    b[i * 3] = f[i];
                    b[i * 3 + 1] = 0.5 * f[i];
                    b[i * 3 + 2] = 0.0;
                }
            },
        )
        .unwrap()
        .with_derivative(|_t, x: &[f64], v: &[f64], out: &mut [f64]| {
            // ∂f·v = (cos x1 v1, −sin x0 v0)
            let df = [x[1].cos() * v[1], -x[0].sin() * v[0]];
            for i in 0..2 {
                out[i * 3] = df[i];
                out[i * 3 + 1] = 0.5 * df[i];
                out[i * 3 + 2] = 0.0;
            }
        })
    }

    #[test]
    fn general_commutative_step_matches_hand_computation() {
        let sde = general_problem();
        let (t, h, x, w): (f64, f64, [f64; 2], [f64; 3]) =
            (0.0, 0.01, [0.5, 0.9], [0.12, -0.07, 0.2]);
        let f = [x[1].sin(), x[0].cos()];
        let c = [1.0, 0.5, 0.0];
        let a = [0.2 * x[0], -x[1]];
        // f'·f
        let dff = [x[1].cos() * f[1], -x[0].sin() * f[0]];
        let want: Vec<f64> = (0..2)
            .map(|i| {
                let mut v = x[i] + a[i] * h;
                for j in 0..3 {
                    v += c[j] * f[i] * w[j];
                }
                for j1 in 0..3 {
                    for j2 in 0..3 {
                        let delta = if j1 == j2 { h } else { 0.0 };
                        v += 0.5 * c[j1] * c[j2] * dff[i] * (w[j1] * w[j2] - delta);
                    }
                }
                v
            })
            .collect();
        assert_close(
            &one_step(&sde, Milstein::default(), t, h, &x, &w),
            &want,
            1e-14,
        );

        // Runge–Kutta form by hand: Υ^{j1} = x + a h + c_{j1} f sqrt(h).
        let sh = h.sqrt();
        let want: Vec<f64> = (0..2)
            .map(|i| {
                let mut v = x[i] + a[i] * h;
                for j in 0..3 {
                    v += c[j] * f[i] * w[j];
                }
                for j1 in 0..3 {
                    let y = [
                        x[0] + a[0] * h + c[j1] * f[0] * sh,
                        x[1] + a[1] * h + c[j1] * f[1] * sh,
                    ];
                    let fy = [y[1].sin(), y[0].cos()];
                    for j2 in 0..3 {
                        let delta = if j1 == j2 { h } else { 0.0 };
                        let l = c[j2] * (fy[i] - f[i]) / sh;
                        v += 0.5 * l * (w[j1] * w[j2] - delta);
                    }
                }
                v
            })
            .collect();
        assert_close(
            &one_step(&sde, Milstein::derivative_free(), t, h, &x, &w),
            &want,
            1e-14,
        );

        assert_forms_agree_to_h32(&sde, &x, &[0.9, -1.1, 0.4]);
    }

    #[test]
    fn additive_noise_is_euler_maruyama() {
        let sde = SdeFn::new(
            2,
            NoiseShape::Additive { m: 2 },
            |_t, x: &[f64], a: &mut [f64]| {
                a[0] = -x[0] * x[1];
                a[1] = x[0];
            },
            |t, _x: &[f64], b: &mut [f64]| b.copy_from_slice(&[1.0, t, 0.5, -0.2]),
        )
        .unwrap();
        let (x, w) = ([0.3, -0.8], [0.1, 0.05]);
        let em = one_step(&sde, EulerMaruyama, 0.4, 0.01, &x, &w);
        let mil = one_step(&sde, Milstein::default(), 0.4, 0.01, &x, &w);
        assert_eq!(em, mil);
    }

    #[test]
    fn rejects_non_commutative_general_noise() {
        let noise = NoiseShape::General {
            m: 2,
            commutative: false,
        };
        let sde = SdeFn::new(
            2,
            noise,
            |_t, _x: &[f64], a: &mut [f64]| a.fill(0.0),
            |_t, x: &[f64], b: &mut [f64]| b.copy_from_slice(&[x[1], 0.0, 0.0, x[0]]),
        )
        .unwrap();
        let err = Milstein::default().check(&sde).unwrap_err();
        assert!(matches!(
            err,
            SdeError::UnsupportedNoise {
                scheme: "milstein",
                ..
            }
        ));
        let msg = err.to_string();
        assert!(msg.contains("milstein"), "{msg}");
        assert!(msg.contains("non-commutative"), "{msg}");
        assert!(msg.contains("Lévy areas"), "{msg}");
        assert!(crate::Solver::new(&sde, Milstein::derivative_free(), crate::Gaussian).is_err());
        // Commutative general, scalar, diagonal, additive, and m = 1 are accepted.
        for noise in [
            NoiseShape::General {
                m: 2,
                commutative: true,
            },
            NoiseShape::General {
                m: 1,
                commutative: false,
            },
            NoiseShape::Scalar,
            NoiseShape::Diagonal,
            NoiseShape::Additive { m: 3 },
        ] {
            let sde = SdeFn::new(
                2,
                noise,
                |_t, _x: &[f64], a: &mut [f64]| a.fill(0.0),
                |_t, _x: &[f64], b: &mut [f64]| b.fill(0.0),
            )
            .unwrap();
            assert!(Milstein::default().check(&sde).is_ok(), "{noise}");
        }
    }

    /// Strong error on GBM (state augmented by W itself, so the exact solution is observable on
    /// the same path): `E |X_T − X_exact|` at five step sizes on one Brownian path per sample.
    fn gbm_strong_errors(scheme: Milstein) -> (Vec<f64>, Vec<f64>) {
        use crate::{Ensemble, Gaussian, Grid, PathSimulation, Refined, SdePaths, Solver};
        let (mu, sigma) = (0.5, 0.8);
        let gbm = SdeFn::new(
            2,
            NoiseShape::Scalar,
            move |_t, x: &[f64], a: &mut [f64]| {
                a[0] = mu * x[0];
                a[1] = 0.0;
            },
            move |_t, x: &[f64], b: &mut [f64]| {
                b[0] = sigma * x[0];
                b[1] = 1.0;
            },
        )
        .unwrap()
        .with_derivative(move |_t, _x: &[f64], v: &[f64], out: &mut [f64]| {
            out[0] = sigma * v[0];
            out[1] = 0.0;
        });
        let finest = 256;
        let (mut hs, mut errs) = (Vec::new(), Vec::new());
        for steps in [8usize, 16, 32, 64, 128] {
            let solver = Solver::new(&gbm, scheme, Refined::new(Gaussian, finest / steps)).unwrap();
            let grid = Grid::new(0.0, 1.0, steps).unwrap().save_final();
            let paths = SdePaths::new(solver, grid, &[1.0, 0.0])
                .unwrap()
                .observe_with(1, move |t, x: &[f64], out: &mut [f64]| {
                    let exact = ((mu - 0.5 * sigma * sigma) * t + sigma * x[1]).exp();
                    out[0] = (x[0] - exact).abs();
                });
            assert_eq!(paths.n_save(), 2);
            let stats = Ensemble::new(4000, 5).unwrap().run(&paths);
            hs.push(1.0 / steps as f64);
            errs.push(stats.mean(1, 0));
        }
        (hs, errs)
    }

    #[test]
    fn strong_order_one_on_gbm() {
        for scheme in [Milstein::default(), Milstein::derivative_free()] {
            let (hs, errs) = gbm_strong_errors(scheme);
            let fit = crate::fit_order(&hs, &errs).unwrap();
            assert!(
                (0.85..1.15).contains(&fit.slope),
                "{scheme:?}: {errs:?} slope {fit:?}"
            );
        }
    }
}
