//! Platen's explicit weak order 2.0 scheme (see [`PlatenWeak2`]).

use crate::error::SdeError;
use crate::noise::NoiseShape;
use crate::problem::Sde;
use crate::rng::PathRng;
use crate::scheme::Scheme;
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
/// columns of a dense matrix, and the `b(t, X)` terms collect into `½ (2 − m) b ΔŴ`. What the
/// shape changes is which supporting values are needed:
///
/// - `Scalar`, `Diagonal`: no cross terms (for `Diagonal`, `b_jj` depends on `x_j` only, so
///   `b^j(Ū^r_±) = b^j` for `r ≠ j`), and all the `R̄^j_±` are taken in one batch (component `j`
///   of the diffusion at `X + a h ± sqrt(h) Σ_j b^j` is `b_jj(R̄^j_±)`): 2 drift and 3 diffusion
///   calls, `O(d)`, no random bits;
/// - `General { m, .. }`, commutative or not: `b(t, X)` once (its columns give the shifts), then
///   `4m` products and `m(m−1)/2` random bits (no cross terms when `m = 1`);
/// - `Additive { .. }` or [`Sde::diffusion_is_state_independent`]: every difference of `b`
///   vanishes and the step is `X + ½ (a(t+h, Ῡ) + a) h + b(t + h/2) ΔŴ` with
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
    /// `a(t, X)`, `d`.
    a: Vec<f64>,
    /// `a(t + h, Ῡ)`, `d`.
    a2: Vec<f64>,
    /// `b(t, X)`, diffusion layout; the product buffer of [`Sde::diffusion_mul`] afterwards.
    b: Vec<f64>,
    /// A second diffusion buffer for the products at the supporting values.
    b_prod: Vec<f64>,
    /// `b(t, X) ΔŴ`, `d`.
    bw: Vec<f64>,
    /// `X + a h`, `d`.
    base: Vec<f64>,
    /// The current supporting value, `d`.
    y: Vec<f64>,
    /// The noise terms of the step, `d`.
    acc: Vec<f64>,
    /// One product `b(t, Y) v`, `d`.
    prod: Vec<f64>,
    /// The vectors `v` of the `+` and `−` products, `m`.
    vp: Vec<f64>,
    vm: Vec<f64>,
    /// `V_{j1,j2}`, `m × m` row-major (empty unless the shape is general with `m > 1`).
    v: Vec<f64>,
    scratch: Vec<f64>,
}

impl Scheme for PlatenWeak2 {
    type Workspace = Weak2Workspace;

    fn name(&self) -> &'static str {
        "weak2"
    }
    fn strong_order(&self) -> Option<f64> {
        None
    }
    fn weak_order(&self) -> f64 {
        2.0
    }
    fn check<S: Sde + ?Sized>(&self, _sde: &S) -> Result<(), SdeError> {
        Ok(())
    }
    fn workspace<S: Sde + ?Sized>(&self, sde: &S) -> Weak2Workspace {
        let d = sde.dim();
        let noise = sde.noise();
        let len = noise.diffusion_len(d);
        let m = noise.noise_dim(d);
        let additive = is_additive(sde);
        let len_v = match noise {
            NoiseShape::General { .. } if m > 1 && !additive => m * m,
            _ => 0,
        };
        let len_m = if additive { 0 } else { m };
        Weak2Workspace {
            a: vec![0.0; d],
            a2: vec![0.0; d],
            b: vec![0.0; len],
            b_prod: vec![0.0; if additive { 0 } else { len }],
            bw: vec![0.0; d],
            base: vec![0.0; d],
            y: vec![0.0; d],
            acc: vec![0.0; d],
            prod: vec![0.0; d],
            vp: vec![0.0; len_m],
            vm: vec![0.0; len_m],
            v: vec![0.0; len_v],
            scratch: vec![0.0; sde.scratch_len()],
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
        rng: &mut PathRng,
        ws: &mut Weak2Workspace,
    ) {
        if is_additive(sde) {
            step_additive(sde, t, h, x, dw, ws)
        } else {
            step_platen(sde, t, h, x, dw, rng, ws)
        }
    }
}

#[inline(always)]
fn is_additive<S: Sde + ?Sized>(sde: &S) -> bool {
    matches!(sde.noise(), NoiseShape::Additive { .. }) || sde.diffusion_is_state_independent()
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

/// Platen's formula for `Scalar`, `Diagonal` and `General` noise (see [`PlatenWeak2`]).
fn step_platen<S: Sde + ?Sized>(
    sde: &S,
    t: f64,
    h: f64,
    x: &mut [f64],
    dw: &[f64],
    rng: &mut PathRng,
    ws: &mut Weak2Workspace,
) {
    let noise = sde.noise();
    let d = x.len();
    let m = noise.noise_dim(d);
    let sh = h.sqrt();
    let inv_sh = 1.0 / sh;
    let t1 = t + h;
    sde.drift(t, x, &mut ws.a, &mut ws.scratch);
    sde.diffusion(t, x, &mut ws.b, &mut ws.scratch);
    noise.apply(&ws.b, dw, &mut ws.bw);
    for ((((yi, ci), xi), ai), gi) in
        ws.y.iter_mut()
            .zip(ws.base.iter_mut())
            .zip(x.iter())
            .zip(&ws.a)
            .zip(&ws.bw)
    {
        *ci = xi + ai * h;
        *yi = *ci + gi;
    }
    sde.drift(t1, &ws.y, &mut ws.a2, &mut ws.scratch);

    // The b(t, X) terms: ½ b ΔŴ from the R̄ terms, −½ (m − 1) b ΔŴ from the Ū terms (which
    // Scalar and Diagonal noise do not have).
    let c0 = match noise {
        NoiseShape::Scalar | NoiseShape::Diagonal => 0.5,
        _ => 0.5 * (2.0 - m as f64),
    };
    for (gi, bi) in ws.acc.iter_mut().zip(&ws.bw) {
        *gi = c0 * bi;
    }
    let q = |w: f64| (w * w - h) * inv_sh;

    match noise {
        NoiseShape::Scalar | NoiseShape::Diagonal => {
            for ((p, n), &w) in ws.vp.iter_mut().zip(ws.vm.iter_mut()).zip(dw) {
                *p = w + q(w);
                *n = w - q(w);
            }
            // R̄^j_± for every j in one batch: the shift is Σ_j b^j, the diffusion buffer itself.
            for (s, v) in [(sh, &ws.vp), (-sh, &ws.vm)] {
                support_product(
                    sde,
                    t1,
                    &ws.base,
                    ws.b.iter().copied(),
                    s,
                    v,
                    &mut ws.y,
                    &mut ws.prod,
                    &mut ws.b_prod,
                    &mut ws.scratch,
                    &mut ws.acc,
                );
            }
        }
        NoiseShape::General { .. } | NoiseShape::Additive { .. } => {
            // R̄^j_± = X + a h ± b^j sqrt(h), at t + h: only column j of the product, so v is
            // (ΔŴ_j ± q_j) e_j (one-hot in vp, cleared again after use).
            ws.vp.fill(0.0);
            for (j, &w) in dw.iter().enumerate().take(m) {
                for (s, c) in [(sh, w + q(w)), (-sh, w - q(w))] {
                    ws.vp[j] = c;
                    support_product(
                        sde,
                        t1,
                        &ws.base,
                        ws.b.iter().skip(j).step_by(m).copied(),
                        s,
                        &ws.vp,
                        &mut ws.y,
                        &mut ws.prod,
                        &mut ws.b_prod,
                        &mut ws.scratch,
                        &mut ws.acc,
                    );
                }
                ws.vp[j] = 0.0;
            }
            // Ū^r_± = X ± b^r sqrt(h), at t: the columns j ≠ r, with
            // v_j = ΔŴ_j ± (ΔŴ_j ΔŴ_r + V_{r,j}) / sqrt(h).
            if m > 1 {
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
                            ws.b.iter().skip(r).step_by(m).copied(),
                            s,
                            v,
                            &mut ws.y,
                            &mut ws.prod,
                            &mut ws.b_prod,
                            &mut ws.scratch,
                            &mut ws.acc,
                        );
                    }
                }
            }
        }
    }
    finish(x, &ws.a, &ws.a2, &ws.acc, h);
}

#[inline(always)]
fn step_additive<S: Sde + ?Sized>(
    sde: &S,
    t: f64,
    h: f64,
    x: &mut [f64],
    dw: &[f64],
    ws: &mut Weak2Workspace,
) {
    sde.drift(t, x, &mut ws.a, &mut ws.scratch);
    sde.diffusion_mul(t + 0.5 * h, x, dw, &mut ws.acc, &mut ws.b, &mut ws.scratch);
    for (((yi, xi), ai), gi) in ws.y.iter_mut().zip(x.iter()).zip(&ws.a).zip(&ws.acc) {
        *yi = xi + ai * h + gi;
    }
    sde.drift(t + h, &ws.y, &mut ws.a2, &mut ws.scratch);
    finish(x, &ws.a, &ws.a2, &ws.acc, h);
}
