//! Platen's explicit weak order 2.0 scheme (see [`PlatenWeak2`]).

use crate::noise::NoiseShape;
use crate::problem::Sde;
use crate::rng::PathRng;
use crate::scheme::{Scheme, SchemeInfo, Step, StepBuffers};
use rand::Rng;

/// Platen's explicit weak order 2.0 scheme for Itô SDEs (Kloeden & Platen 1992, §15.1,
/// eq. 15.1.3): derivative-free, every noise shape.
///
/// With `Ῡ = X + a h + Σ_j b^j ΔŴ_j`, `R̄^j_± = X + a h ± b^j sqrt(h)`, `Ū^j_± = X ± b^j sqrt(h)`:
///
/// ```text
/// X_{n+1} = X + ½ (a(t+h, Ῡ) + a) h
///   + ¼ Σ_j [ b^j(t+h, R̄^j_+) + b^j(t+h, R̄^j_−) + 2 b^j ] ΔŴ_j
///   + ¼ Σ_j Σ_{r≠j} [ b^j(t, Ū^r_+) + b^j(t, Ū^r_−) − 2 b^j ] ΔŴ_j
///   + ¼ Σ_j [ b^j(t+h, R̄^j_+) − b^j(t+h, R̄^j_−) ] ((ΔŴ_j)² − h) / sqrt(h)
///   + ¼ Σ_j Σ_{r≠j} [ b^j(t, Ū^r_+) − b^j(t, Ū^r_−) ] (ΔŴ_j ΔŴ_r + V_{r,j}) / sqrt(h)
/// ```
///
/// where `a`, `b^j` without arguments are at `(t, X)`, and the `V_{j1,j2}` are independent
/// two-point variables `±h` for `j2 < j1`, `V_{j1,j2} = −V_{j2,j1}` for `j2 > j1` (the diagonal
/// `V_{jj} = −h` is the `((ΔŴ_j)² − h)` of the third line). They are drawn from the path's
/// stream, one random bit each, after the increment.
///
/// **Time arguments.** The formula is usually quoted in autonomous form, and implementations
/// that evaluate every coefficient at `t` (as StochasticDiffEq.jl's `PL1WM` does) drop to weak
/// order 1 when the coefficients depend on time: weak order 2 needs the one-step expansion to
/// contain `½ ∂_t a h²` and `½ ∂_t b^j h ΔŴ_j` (from `L^0 a` and `L^0 b^j`). Evaluating `a(Ῡ)`
/// and `b^j(R̄^j_±)` at `t + h` supplies exactly these
/// (`¼ (b^j(t+h,·) + b^j(t+h,·) + 2 b^j(t,·)) ≈ b^j + ½ ∂_t b^j h`), while the `Ū^r_±` terms
/// must stay at `t` (at `t + h` they would add `½ ∂_t b^j h ΔŴ_j` once more per `r ≠ j`). The unit
/// tests check weak order 2 on time-dependent problems; with either wrong choice (all at `t`, or
/// `Ū^r_±` at `t + h`) they measure weak order 1 and fail.
///
/// One formula for every shape. Writing `q_j = ((ΔŴ_j)² − h)/sqrt(h)` and combining the `±`
/// terms, `[b(U₊) + b(U₋) − 2b] w + [b(U₊) − b(U₋)] c = b(U₊)(w + c) + b(U₋)(w − c) − 2bw`, so at
/// every supporting value the scheme needs one product `b(t, Y) · v` ([`Sde::diffusion_mul`],
/// the shape's `g_prod`: `O(d)` for the models' diagonal-minus-rank-one square roots) instead of
/// columns of a dense matrix, and the `b(t, X)` terms collect into `½ (2 − m) b ΔŴ`. The step
/// writes this formula once; a small table derived from the noise shape says which supporting
/// values it needs (how many `R̄` supports, which entries of `b` shift each, whether a support
/// multiplies one column or all of them, whether the `Ū` cross terms are present) and the
/// coefficient of `b ΔŴ`:
///
/// - `Scalar`, `Diagonal`: no cross terms (for `Diagonal`, `b_jj` depends on `x_j` only, so
///   `b^j(Ū^r_±) = b^j` for `r ≠ j`), and all the `R̄^j_±` are taken in one batch (component `j`
///   of the diffusion at `X + a h ± sqrt(h) Σ_j b^j` is `b_jj(R̄^j_±)`): 2 drift and 3 diffusion
///   calls, `O(d)`, no random bits;
/// - `General { m, .. }`, commutative or not: `b(t, X)` once (its columns give the shifts), then
///   `4m` products and `m(m−1)/2` random bits (no cross terms when `m = 1`);
/// - `Additive { .. }` or [`Sde::diffusion_is_state_independent`]: every difference of `b`
///   vanishes, so the table has no supporting values, and the step is
///   `X + ½ (a(t+h, Ῡ) + a) h + b(t + h/2) ΔŴ` with
///   `Ῡ = X + a h + b(t + h/2) ΔŴ`, one [`Sde::diffusion_mul`] call. The midpoint time reproduces
///   the `½ (b(t) + b(t+h))` of the general formula to `O(h²)`, which keeps weak order 2 for
///   time-dependent `b(t)`; for a constant `b` it is Kloeden & Platen's eq. 15.1.4 exactly.
///
/// The increments must match Gaussian moments up to order 5: [`crate::Gaussian`] or
/// [`crate::ThreePoint`] (the solver rejects [`crate::TwoPoint`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PlatenWeak2;

/// Buffers of one weak-order-2 path.
pub struct Weak2Workspace {
    /// `a(t, X)`; `b(t, X)`, the product buffer of [`Sde::diffusion_mul`] afterwards;
    /// `b(t, X) ΔŴ` in `bdw`.
    c: StepBuffers,
    /// `a(t + h, Ῡ)`, `d`.
    a2: Vec<f64>,
    /// A second diffusion buffer for the products at the supporting values.
    b_prod: Vec<f64>,
    /// `X + a h`, `d`.
    base: Vec<f64>,
    /// The current supporting value, `d`.
    y: Vec<f64>,
    /// The noise terms of the step, `d`.
    acc: Vec<f64>,
    /// One product `b(t, Y) v`, `d`.
    prod: Vec<f64>,
    /// The product at `R̄₋` of the scalar and diagonal step (`prod` holds the one at `R̄₊`;
    /// `base` and `acc` hold `R̄₊` and `R̄₋` there), `d`; empty for other shapes.
    prod_m: Vec<f64>,
    /// The vectors `v` of the `+` and `−` products, `m`.
    vp: Vec<f64>,
    vm: Vec<f64>,
    /// `V_{j1,j2}`, `m × m` row-major (empty unless the shape is general with `m > 1`).
    v: Vec<f64>,
}

impl Scheme for PlatenWeak2 {
    type Workspace = Weak2Workspace;

    fn info(&self) -> SchemeInfo {
        SchemeInfo {
            name: "weak2",
            strong_order: None,
            weak_order: 2.0,
        }
    }
    fn workspace<S: Sde + ?Sized>(&self, sde: &S) -> Weak2Workspace {
        let c = StepBuffers::new(sde);
        let (d, len) = (c.a.len(), c.b.len());
        let noise = sde.noise();
        let m = noise.noise_dim(d);
        let additive = is_additive(sde);
        let len_v = match noise {
            NoiseShape::General { .. } if m > 1 && !additive => m * m,
            _ => 0,
        };
        let len_m = if additive { 0 } else { m };
        let diag = !additive && matches!(noise, NoiseShape::Scalar | NoiseShape::Diagonal);
        Weak2Workspace {
            c,
            a2: vec![0.0; d],
            b_prod: vec![0.0; if additive { 0 } else { len }],
            base: vec![0.0; d],
            y: vec![0.0; d],
            acc: vec![0.0; d],
            prod: vec![0.0; d],
            prod_m: vec![0.0; if diag { d } else { 0 }],
            vp: vec![0.0; len_m],
            vm: vec![0.0; len_m],
            v: vec![0.0; len_v],
        }
    }
    #[inline]
    fn step<S: Sde + ?Sized>(&self, sde: &S, x: &mut [f64], st: Step<'_>, ws: &mut Weak2Workspace) {
        let Step { t, h, dw, rng } = st;
        let noise = sde.noise();
        let m = noise.noise_dim(x.len());
        let sup = Supports::of(noise, m, is_additive(sde));
        if sup.r == 0 && !sup.cross {
            // The additive step alone: the general path ([`general_step`]) with its `base`
            // and `acc` passes fused away (the same operations in the same order, so the same bits).
            additive_step(sde, t, h, sup, x, dw, ws);
            return;
        }
        // Scalar and diagonal noise (one batched support, no cross terms): the general path
        // in two passes over d instead of eight (the same operations in the same order).
        match noise {
            NoiseShape::Diagonal => diagonal_step::<S, true>(sde, t, h, x, dw, ws),
            NoiseShape::Scalar => diagonal_step::<S, false>(sde, t, h, x, dw, ws),
            _ => general_step(sde, x, Step { t, h, dw, rng }, ws),
        }
    }
}

/// Platen's formula through the table of [`Supports`], for every shape with supporting values
/// (the scheme takes it for general noise; scalar and diagonal noise take [`diagonal_step`],
/// the same bits, which the unit tests check against this).
#[inline(always)]
fn general_step<S: Sde + ?Sized>(sde: &S, x: &mut [f64], st: Step<'_>, ws: &mut Weak2Workspace) {
    let Step { t, h, dw, rng } = st;
    let noise = sde.noise();
    let m = noise.noise_dim(x.len());
    let sup = Supports::of(noise, m, is_additive(sde));
    let sh = h.sqrt();
    let inv_sh = 1.0 / sh;
    let t1 = t + h;
    drift_and_noise(sde, t, h, sup, x, dw, &mut ws.c);
    for ((((yi, ci), xi), ai), gi) in
        ws.y.iter_mut()
            .zip(ws.base.iter_mut())
            .zip(x.iter())
            .zip(&ws.c.a)
            .zip(&ws.c.bdw)
    {
        *ci = xi + ai * h;
        *yi = *ci + gi;
    }
    sde.drift(t1, &ws.y, &mut ws.a2, &mut ws.c.scratch);
    for (gi, bi) in ws.acc.iter_mut().zip(&ws.c.bdw) {
        *gi = sup.c0 * bi;
    }
    let q = |w: f64| (w * w - h) * inv_sh;

    // R̄ terms, at t + h from X + a h: support k shifts by b[k], b[k + stride], … (column k,
    // or every column at once) and takes the products with v_j = ΔŴ_j ± q_j on its
    // components (zero elsewhere).
    if sup.one_hot {
        ws.vp.fill(0.0);
        ws.vm.fill(0.0);
    }
    for k in 0..sup.r {
        let comps = if sup.one_hot { k..k + 1 } else { 0..m };
        for j in comps.clone() {
            let w = dw[j];
            ws.vp[j] = w + q(w);
            ws.vm[j] = w - q(w);
        }
        for (s, v) in [(sh, &ws.vp), (-sh, &ws.vm)] {
            support_product(
                sde,
                t1,
                &ws.base,
                ws.c.b.iter().skip(k).step_by(sup.stride).copied(),
                s,
                v,
                &mut ws.y,
                &mut ws.prod,
                &mut ws.b_prod,
                &mut ws.c.scratch,
                &mut ws.acc,
            );
        }
        if sup.one_hot {
            ws.vp[k] = 0.0;
            ws.vm[k] = 0.0;
        }
    }

    // Ū^r terms, at t from X ± b^r sqrt(h): the columns j ≠ r, with
    // v_j = ΔŴ_j ± (ΔŴ_j ΔŴ_r + V_{r,j}) / sqrt(h).
    if sup.cross {
        draw_v(&mut ws.v, m, h, rng);
        for (r, &wr) in dw.iter().enumerate().take(m) {
            let vrow = &ws.v[r * m..(r + 1) * m];
            for (j, ((p, q), (&wj, &vrj))) in ws
                .vp
                .iter_mut()
                .zip(ws.vm.iter_mut())
                .zip(dw.iter().zip(vrow))
                .enumerate()
            {
                let c = if j == r {
                    0.0
                } else {
                    (wj * wr + vrj) * inv_sh
                };
                let w = if j == r { 0.0 } else { wj };
                *p = w + c;
                *q = w - c;
            }
            for (s, v) in [(sh, &ws.vp), (-sh, &ws.vm)] {
                support_product(
                    sde,
                    t,
                    x,
                    ws.c.b.iter().skip(r).step_by(m).copied(),
                    s,
                    v,
                    &mut ws.y,
                    &mut ws.prod,
                    &mut ws.b_prod,
                    &mut ws.c.scratch,
                    &mut ws.acc,
                );
            }
        }
    }
    finish(x, &ws.c.a, &ws.a2, &ws.acc, h);
}

#[inline(always)]
fn is_additive<S: Sde + ?Sized>(sde: &S) -> bool {
    matches!(sde.noise(), NoiseShape::Additive { .. }) || sde.diffusion_is_state_independent()
}

/// What Platen's formula needs from a noise shape: which supporting values it evaluates the
/// diffusion at, and with which vectors it multiplies it there. The formula is written once,
/// in [`PlatenWeak2::step`]; only this table knows the shapes.
#[derive(Clone, Copy, Debug)]
struct Supports {
    /// Coefficient of `b(t + τh, X) ΔŴ` in the noise terms: `½` from the `R̄` terms,
    /// `−½ (m − 1)` from the `Ū` terms when present, `1` for the additive step.
    c0: f64,
    /// Time offset of that `b`, in steps.
    tau: f64,
    /// Number of `R̄` supporting values (each taken with `+` and `−`).
    r: usize,
    /// Step through the diffusion buffer of a shift: support `k` shifts by
    /// `b[k], b[k + stride], …`.
    stride: usize,
    /// Whether support `k` multiplies `e_k` only (one column) or every component at once.
    one_hot: bool,
    /// Whether the cross terms `Ū^r_±`, `r ≠ j`, are present.
    cross: bool,
}

impl Supports {
    #[inline(always)]
    fn of(noise: NoiseShape, m: usize, additive: bool) -> Supports {
        if additive {
            // Every difference of b vanishes; ¼ (b(t+h) + b(t+h) + 2 b(t)) ΔŴ = ½ (b(t) +
            // b(t+h)) ΔŴ is taken as b(t + h/2) ΔŴ, equal to O(h²) (weak order 2 kept for a
            // time-dependent b): one product instead of 2m + 1 diffusions.
            return Supports {
                c0: 1.0,
                tau: 0.5,
                r: 0,
                stride: 1,
                one_hot: false,
                cross: false,
            };
        }
        match noise {
            // One batched support: component j of b(X + a h ± sqrt(h) Σ_j b^j) is b_jj(R̄^j_±),
            // since b_jj depends on x_j only; no cross terms (b^j(Ū^r_±) = b^j for r ≠ j).
            NoiseShape::Scalar | NoiseShape::Diagonal => Supports {
                c0: 0.5,
                tau: 0.0,
                r: 1,
                stride: 1,
                one_hot: false,
                cross: false,
            },
            NoiseShape::General { .. } | NoiseShape::Additive { .. } => Supports {
                c0: 0.5 * (2.0 - m as f64),
                tau: 0.0,
                r: m,
                stride: m,
                one_hot: true,
                cross: m > 1,
            },
        }
    }
}

impl PlatenWeak2 {
    /// The auxiliary variables of one step as the scheme draws them from the path's stream
    /// (public so that reference implementations can replay them): fills `v` (`m × m`,
    /// row-major) with `V_{j1,j2} = ±h` (one bit each, `j2 < j1`), `V_{j2,j1} = −V_{j1,j2}`,
    /// `V_{jj} = −h`.
    pub fn draw_v(v: &mut [f64], m: usize, h: f64, rng: &mut PathRng) {
        draw_v(v, m, h, rng)
    }
}

impl Weak2Workspace {
    /// Whether this workspace was made for the additive step (no buffers for supporting
    /// values): additive noise or a state-independent diffusion.
    pub fn is_additive(&self) -> bool {
        self.b_prod.is_empty()
    }
}

#[inline]
fn draw_v(v: &mut [f64], m: usize, h: f64, rng: &mut PathRng) {
    let mut bits = 0u64;
    let mut left = 0u32;
    for j1 in 0..m {
        v[j1 * m + j1] = -h;
        for j2 in 0..j1 {
            if left == 0 {
                bits = rng.next_u64();
                left = 64;
            }
            let s = if bits & 1 == 1 { h } else { -h };
            bits >>= 1;
            left -= 1;
            v[j1 * m + j2] = s;
            v[j2 * m + j1] = -s;
        }
    }
}

/// `X + ½ (a(t+h, Ῡ) + a) h + c0 b(t + τh) ΔŴ` with `Ῡ = X + a h + b(t + τh) ΔŴ`: the
/// additive rows of [`Supports`].
#[inline(always)]
fn additive_step<S: Sde + ?Sized>(
    sde: &S,
    t: f64,
    h: f64,
    sup: Supports,
    x: &mut [f64],
    dw: &[f64],
    ws: &mut Weak2Workspace,
) {
    drift_and_noise(sde, t, h, sup, x, dw, &mut ws.c);
    for (((yi, xi), ai), gi) in ws.y.iter_mut().zip(x.iter()).zip(&ws.c.a).zip(&ws.c.bdw) {
        *yi = (xi + ai * h) + gi;
    }
    sde.drift(t + h, &ws.y, &mut ws.a2, &mut ws.c.scratch);
    let (hh, c0) = (0.5 * h, sup.c0);
    for (((xi, ai), a2i), gi) in x.iter_mut().zip(&ws.c.a).zip(&ws.a2).zip(&ws.c.bdw) {
        *xi += (ai + a2i) * hh + c0 * gi;
    }
}

/// The step for scalar (`DIAG = false`) and diagonal noise: the rows `Scalar`, `Diagonal` of
/// [`Supports`] (`c0 = ½`, one batched support `R̄_± = X + a h ± sqrt(h) b`, no cross terms)
/// with every pass over `d` of the general path fused into the two the data allow: one after
/// `a(t, X)` and `b(t, X)` (the product `b ΔŴ`, `Ῡ`, `R̄_±` and, for diagonal noise, the
/// vectors `v_± = ΔŴ ± q`), one after the three coefficient calls at the supports (the update).
/// Each value is computed with the operations of the general path in the same order, so the
/// same bits: `noise.apply`'s `b_i w_i`, `(x_i + a_i h) + b_i w_i`, `(x_i + a_i h) ± sqrt(h) b_i`,
/// and the noise terms `((½ b_i w_i + ¼ p₊ᵢ) + ¼ p₋ᵢ)` that the general path accumulates in
/// `acc`. The coefficient calls keep their order (`a(t, X)`, `b(t, X)`, `a(t+h, Ῡ)`,
/// `b(t+h, R̄₊) v₊`, `b(t+h, R̄₋) v₋`), so a model's cache keyed on the state sees the same
/// sequence.
#[inline(always)]
fn diagonal_step<S: Sde + ?Sized, const DIAG: bool>(
    sde: &S,
    t: f64,
    h: f64,
    x: &mut [f64],
    dw: &[f64],
    ws: &mut Weak2Workspace,
) {
    let sh = h.sqrt();
    let inv_sh = 1.0 / sh;
    let q = |w: f64| (w * w - h) * inv_sh;
    let c = &mut ws.c;
    sde.drift_and_diffusion(t, x, &mut c.a, &mut c.b, &mut c.scratch);
    let n = x.len();
    let (a, b, bdw) = (&c.a[..n], &c.b[..n], &mut c.bdw[..n]);
    let (y, yp, ym) = (&mut ws.y[..n], &mut ws.base[..n], &mut ws.acc[..n]);
    if DIAG {
        let (dw, vp, vm) = (&dw[..n], &mut ws.vp[..n], &mut ws.vm[..n]);
        for i in 0..n {
            let (w, bi) = (dw[i], b[i]);
            let g = bi * w;
            let base = x[i] + a[i] * h;
            bdw[i] = g;
            y[i] = base + g;
            yp[i] = base + sh * bi;
            ym[i] = base + -sh * bi;
            vp[i] = w + q(w);
            vm[i] = w - q(w);
        }
    } else {
        let w = dw[0];
        for i in 0..n {
            let bi = b[i];
            let g = bi * w;
            let base = x[i] + a[i] * h;
            bdw[i] = g;
            y[i] = base + g;
            yp[i] = base + sh * bi;
            ym[i] = base + -sh * bi;
        }
        ws.vp[0] = w + q(w);
        ws.vm[0] = w - q(w);
    }
    let t1 = t + h;
    sde.drift(t1, &ws.y, &mut ws.a2, &mut c.scratch);
    sde.diffusion_mul(
        t1,
        &ws.base,
        &ws.vp,
        &mut ws.prod,
        &mut ws.b_prod,
        &mut c.scratch,
    );
    sde.diffusion_mul(
        t1,
        &ws.acc,
        &ws.vm,
        &mut ws.prod_m,
        &mut ws.b_prod,
        &mut c.scratch,
    );
    let hh = 0.5 * h;
    let (a, a2, bdw) = (&c.a[..n], &ws.a2[..n], &c.bdw[..n]);
    let (pp, pm) = (&ws.prod[..n], &ws.prod_m[..n]);
    for i in 0..n {
        let noise = 0.5 * bdw[i] + 0.25 * pp[i] + 0.25 * pm[i];
        x[i] += (a[i] + a2[i]) * hh + noise;
    }
}

/// `a(t, X)` into `c.a` and `b(t + τh) ΔŴ` into `c.bdw`, with `b(t, X)` in `c.b` when the
/// supporting values shift by its columns.
#[inline(always)]
fn drift_and_noise<S: Sde + ?Sized>(
    sde: &S,
    t: f64,
    h: f64,
    sup: Supports,
    x: &[f64],
    dw: &[f64],
    c: &mut StepBuffers,
) {
    if sup.r == 0 {
        // No supporting value shifts by a column of b, so b itself is not needed: the
        // shape's product gives b(τ) ΔŴ directly.
        sde.drift(t, x, &mut c.a, &mut c.scratch);
        sde.diffusion_mul(t + sup.tau * h, x, dw, &mut c.bdw, &mut c.b, &mut c.scratch);
    } else {
        sde.drift_and_diffusion(t, x, &mut c.a, &mut c.b, &mut c.scratch);
        sde.noise().apply(&c.b, dw, &mut c.bdw);
    }
}

/// `x_i += ½ (a_i + a2_i) h + acc_i`.
#[inline(always)]
fn finish(x: &mut [f64], a: &[f64], a2: &[f64], acc: &[f64], h: f64) {
    let hh = 0.5 * h;
    for (((xi, ai), a2i), gi) in x.iter_mut().zip(a).zip(a2).zip(acc) {
        *xi += (ai + a2i) * hh + gi;
    }
}

/// `ws.y = origin ± sqrt(h) · shift` (sign in `s`), then `acc += ¼ b(t, y) · v`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn support_product<S: Sde + ?Sized>(
    sde: &S,
    t: f64,
    origin: &[f64],
    shift: impl Iterator<Item = f64>,
    s: f64,
    v: &[f64],
    y: &mut [f64],
    prod: &mut [f64],
    b_prod: &mut [f64],
    scratch: &mut [f64],
    acc: &mut [f64],
) {
    for ((yi, oi), ci) in y.iter_mut().zip(origin).zip(shift) {
        *yi = oi + s * ci;
    }
    sde.diffusion_mul(t, y, v, prod, b_prod, scratch);
    for (gi, pi) in acc.iter_mut().zip(prod.iter()) {
        *gi += 0.25 * pi;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::problem::SdeFn;
    use crate::rng::derive_stream;
    use rand_distr::{Distribution, StandardNormal};

    /// The scalar and diagonal step against the general path it fuses, bit for bit, over
    /// chains of steps with state- and time-dependent coefficients (increments up to ±4.5σ,
    /// and a zero diffusion entry).
    #[test]
    fn diagonal_step_has_the_bits_of_the_general_path() {
        let drift = |t: f64, x: &[f64], a: &mut [f64]| {
            for (i, (ai, xi)) in a.iter_mut().zip(x).enumerate() {
                *ai = (1.0 + t) * xi.sin() - 0.3 * xi * xi * xi + 0.1 * i as f64;
            }
        };
        let diffusion = |t: f64, x: &[f64], b: &mut [f64]| {
            for (i, (bi, xi)) in b.iter_mut().zip(x).enumerate() {
                *bi = if i == 2 {
                    0.0
                } else {
                    (0.5 + 0.2 * t) * (1.0 + xi * xi).sqrt() / (1.0 + i as f64)
                };
            }
        };
        let d = 4;
        for (noise, diag) in [(NoiseShape::Diagonal, true), (NoiseShape::Scalar, false)] {
            let sde = SdeFn::new(d, noise, drift, diffusion).unwrap();
            let m = noise.noise_dim(d);
            let (mut ws_fast, mut ws_gen) =
                (PlatenWeak2.workspace(&sde), PlatenWeak2.workspace(&sde));
            let mut normals = derive_stream(11, u64::from(diag));
            let mut rng = derive_stream(12, 0);
            let (mut x, mut y): (Vec<f64>, Vec<f64>) =
                ((0..d).map(|i| 0.3 - 0.4 * i as f64).collect(), vec![0.0; d]);
            y.copy_from_slice(&x);
            let h = 0.05;
            for k in 0..200 {
                let t = k as f64 * h;
                let dw: Vec<f64> = (0..m)
                    .map(|j| {
                        let z: f64 = StandardNormal.sample(&mut normals);
                        let z = if (k + j) % 37 == 0 {
                            4.5f64.copysign(z)
                        } else {
                            z
                        };
                        z * h.sqrt()
                    })
                    .collect();
                let rng = &mut rng;
                PlatenWeak2.step(&sde, &mut x, Step { t, h, dw: &dw, rng }, &mut ws_fast);
                general_step(&sde, &mut y, Step { t, h, dw: &dw, rng }, &mut ws_gen);
                for (a, b) in x.iter().zip(&y) {
                    assert_eq!(
                        a.to_bits(),
                        b.to_bits(),
                        "{noise:?}, step {k}: {x:?} vs {y:?}"
                    );
                }
            }
            assert!(x.iter().all(|v| v.is_finite()));
        }
    }
}
