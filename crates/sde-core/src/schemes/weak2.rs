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

/// Fills `v` (`m × m`, row-major) with `V_{j1,j2} = ±h` (one bit each, `j2 < j1`),
/// `V_{j2,j1} = −V_{j1,j2}`, `V_{jj} = −h`.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::problem::SdeFn;
    use crate::rng::derive_stream;

    /// The diffusion as its columns `b^j(t, x)`.
    type Columns = dyn Fn(f64, &[f64]) -> Vec<Vec<f64>>;

    /// A reference implementation of eq. 15.1.3 on a dense `d × m` diffusion `bf(t, x)`
    /// (column `j` = `b^j`), written from the formula without any of the scheme's shortcuts.
    #[allow(clippy::too_many_arguments)]
    fn reference(
        af: &dyn Fn(f64, &[f64]) -> Vec<f64>,
        bf: &Columns,
        t: f64,
        h: f64,
        x: &[f64],
        w: &[f64],
        v: &dyn Fn(usize, usize) -> f64,
    ) -> Vec<f64> {
        let d = x.len();
        let m = w.len();
        let sh = h.sqrt();
        let a = af(t, x);
        let b = bf(t, x); // b[j] = column j
        let shift = |p: &[f64], c: &[f64], s: f64| -> Vec<f64> {
            p.iter().zip(c).map(|(pi, ci)| pi + s * ci).collect()
        };
        let xa: Vec<f64> = (0..d).map(|i| x[i] + a[i] * h).collect();
        let mut ups = xa.clone();
        for j in 0..m {
            ups = shift(&ups, &b[j], w[j]);
        }
        let a2 = af(t + h, &ups);
        let mut out: Vec<f64> = (0..d).map(|i| x[i] + 0.5 * (a2[i] + a[i]) * h).collect();
        for j in 0..m {
            let rp = bf(t + h, &shift(&xa, &b[j], sh));
            let rm = bf(t + h, &shift(&xa, &b[j], -sh));
            for i in 0..d {
                out[i] += 0.25 * (rp[j][i] + rm[j][i] + 2.0 * b[j][i]) * w[j];
                out[i] += 0.25 * (rp[j][i] - rm[j][i]) * (w[j] * w[j] - h) / sh;
            }
            for r in 0..m {
                if r == j {
                    continue;
                }
                let up = bf(t, &shift(x, &b[r], sh));
                let um = bf(t, &shift(x, &b[r], -sh));
                for i in 0..d {
                    out[i] += 0.25 * (up[j][i] + um[j][i] - 2.0 * b[j][i]) * w[j];
                    out[i] += 0.25 * (up[j][i] - um[j][i]) * (w[j] * w[r] + v(r, j)) / sh;
                }
            }
        }
        out
    }

    /// `V_{r,j}` as the scheme will draw it from a copy of `rng`.
    fn v_of(rng: &PathRng, m: usize, h: f64) -> Vec<f64> {
        let mut v = vec![0.0; m * m];
        if m > 1 {
            draw_v(&mut v, m, h, &mut rng.clone());
        }
        v
    }

    fn one_step<S: Sde>(
        sde: &S,
        t: f64,
        h: f64,
        x0: &[f64],
        dw: &[f64],
        rng: &mut PathRng,
    ) -> Vec<f64> {
        let mut ws = PlatenWeak2.workspace(sde);
        let mut x = x0.to_vec();
        PlatenWeak2.step(sde, t, h, &mut x, dw, rng, &mut ws);
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

    #[test]
    fn v_is_antisymmetric_with_minus_h_diagonal() {
        let mut rng = derive_stream(1, 2);
        let (m, h) = (12, 0.1);
        let mut v = vec![0.0; m * m];
        let (mut plus, mut total) = (0, 0);
        for _ in 0..200 {
            draw_v(&mut v, m, h, &mut rng);
            for j1 in 0..m {
                assert_eq!(v[j1 * m + j1], -h);
                for j2 in 0..j1 {
                    assert_eq!(v[j1 * m + j2].abs(), h);
                    assert_eq!(v[j1 * m + j2], -v[j2 * m + j1]);
                    plus += (v[j1 * m + j2] > 0.0) as u32;
                    total += 1;
                }
            }
        }
        let frac = plus as f64 / total as f64;
        assert!((frac - 0.5).abs() < 0.03, "{frac}");
    }

    #[test]
    fn scalar_step_matches_hand_computation() {
        // a = (x1 cos t, −x0), b = (sin x0 + t, x0 x1), time-dependent.
        let af = |t: f64, x: &[f64]| vec![x[1] * t.cos(), -x[0]];
        let bf = |t: f64, x: &[f64]| vec![vec![x[0].sin() + t, x[0] * x[1]]];
        let sde = SdeFn::new(
            2,
            NoiseShape::Scalar,
            move |t, x: &[f64], a: &mut [f64]| a.copy_from_slice(&af(t, x)),
            move |t, x: &[f64], b: &mut [f64]| b.copy_from_slice(&bf(t, x)[0]),
        )
        .unwrap();
        let (t, h, x, w): (f64, f64, [f64; 2], f64) = (0.4, 0.03, [0.7, -1.2], 0.21);
        let mut rng = derive_stream(3, 3);
        let got = one_step(&sde, t, h, &x, &[w], &mut rng);
        // Eq. 15.1.1 by hand.
        let sh = h.sqrt();
        let a = af(t, &x);
        let b = bf(t, &x)[0].clone();
        let ups = [x[0] + a[0] * h + b[0] * w, x[1] + a[1] * h + b[1] * w];
        let a2 = af(t + h, &ups);
        let rp = bf(
            t + h,
            &[x[0] + a[0] * h + b[0] * sh, x[1] + a[1] * h + b[1] * sh],
        )[0]
        .clone();
        let rm = bf(
            t + h,
            &[x[0] + a[0] * h - b[0] * sh, x[1] + a[1] * h - b[1] * sh],
        )[0]
        .clone();
        let want: Vec<f64> = (0..2)
            .map(|i| {
                x[i] + 0.5 * (a2[i] + a[i]) * h
                    + 0.25 * (rp[i] + rm[i] + 2.0 * b[i]) * w
                    + 0.25 * (rp[i] - rm[i]) * (w * w - h) / sh
            })
            .collect();
        assert_close(&got, &want, 1e-14);
        // The scalar path draws no V.
        assert_eq!(rng.next_u64(), derive_stream(3, 3).next_u64());
        let reference = reference(&af, &bf, t, h, &x, &[w], &|_, _| unreachable!());
        assert_close(&got, &reference, 1e-14);
    }

    #[test]
    fn diagonal_step_matches_reference() {
        // b_jj depends on (t, x_j) only: b = (x0² + t, cos x1 + 0.1, 1 + t x2²).
        let af = |t: f64, x: &[f64]| vec![-x[0] + t, x[2], 0.5 * x[1] * x[0]];
        let diag =
            |t: f64, x: &[f64]| vec![x[0] * x[0] + t, x[1].cos() + 0.1, 1.0 + t * x[2] * x[2]];
        let bf = move |t: f64, x: &[f64]| {
            let g = diag(t, x);
            (0..3)
                .map(|j| (0..3).map(|i| if i == j { g[j] } else { 0.0 }).collect())
                .collect::<Vec<Vec<f64>>>()
        };
        let sde = SdeFn::new(
            3,
            NoiseShape::Diagonal,
            move |t, x: &[f64], a: &mut [f64]| a.copy_from_slice(&af(t, x)),
            move |t, x: &[f64], b: &mut [f64]| b.copy_from_slice(&diag(t, x)),
        )
        .unwrap();
        let (t, h, x, w) = (0.2, 0.02, [0.3, -0.6, 0.9], [0.1, -0.2, 0.05]);
        for seed in 0..4 {
            let mut rng = derive_stream(seed, 0);
            let v = v_of(&rng, 3, h);
            let got = one_step(&sde, t, h, &x, &w, &mut rng);
            // The reference keeps the cross terms (they vanish for diagonal noise) and its V.
            let want = reference(&af, &bf, t, h, &x, &w, &|r, j| v[r * 3 + j]);
            assert_close(&got, &want, 1e-13);
            // Diagonal noise has no cross terms, so the step draws no V.
            assert_eq!(rng.next_u64(), derive_stream(seed, 0).next_u64());
        }
    }

    #[test]
    fn coupled_diagonal_matrix_declared_general_matches_reference() {
        // A diagonal matrix whose entries depend on every component is general noise:
        // b = diag(x0 x1 + t, cos x0 + 0.1 x2, 1 + x2²), dense layout.
        let af = |t: f64, x: &[f64]| vec![-x[0] + t, x[2], 0.5 * x[1] * x[0]];
        let diag =
            |t: f64, x: &[f64]| vec![x[0] * x[1] + t, x[0].cos() + 0.1 * x[2], 1.0 + x[2] * x[2]];
        let bf = move |t: f64, x: &[f64]| {
            let g = diag(t, x);
            (0..3)
                .map(|j| (0..3).map(|i| if i == j { g[j] } else { 0.0 }).collect())
                .collect::<Vec<Vec<f64>>>()
        };
        let sde = SdeFn::new(
            3,
            NoiseShape::General {
                m: 3,
                commutative: false,
            },
            move |t, x: &[f64], a: &mut [f64]| a.copy_from_slice(&af(t, x)),
            move |t, x: &[f64], b: &mut [f64]| {
                b.fill(0.0);
                for (j, g) in diag(t, x).into_iter().enumerate() {
                    b[j * 3 + j] = g;
                }
            },
        )
        .unwrap();
        let (t, h, x, w) = (0.2, 0.02, [0.3, -0.6, 0.9], [0.1, -0.2, 0.05]);
        for seed in 0..4 {
            let mut rng = derive_stream(seed, 0);
            let v = v_of(&rng, 3, h);
            let got = one_step(&sde, t, h, &x, &w, &mut rng);
            let want = reference(&af, &bf, t, h, &x, &w, &|r, j| v[r * 3 + j]);
            assert_close(&got, &want, 1e-13);
        }
    }

    /// A diagonal problem whose diffusion depends on `t` only, declared through
    /// [`Sde::diffusion_is_state_independent`] (no dense buffer): the step equals the
    /// `Additive` one on the same coefficients, and the general formula to rounding when `b` is
    /// constant.
    #[test]
    fn state_independent_diagonal_takes_the_additive_step() {
        struct Ou {
            time_dependent: bool,
            independent: bool,
        }
        impl Sde for Ou {
            fn dim(&self) -> usize {
                2
            }
            fn noise(&self) -> NoiseShape {
                NoiseShape::Diagonal
            }
            fn drift(&self, t: f64, x: &[f64], out: &mut [f64], _s: &mut [f64]) {
                out[0] = -x[0] * x[1] + t;
                out[1] = x[0].sin();
            }
            fn diffusion(&self, t: f64, _x: &[f64], out: &mut [f64], _s: &mut [f64]) {
                let s = if self.time_dependent { t } else { 0.3 };
                out.copy_from_slice(&[1.0 + s, 0.5 - 0.2 * s * s]);
            }
            fn diffusion_is_state_independent(&self) -> bool {
                self.independent
            }
        }
        let additive = SdeFn::new(
            2,
            NoiseShape::Additive { m: 2 },
            |t, x: &[f64], a: &mut [f64]| {
                a[0] = -x[0] * x[1] + t;
                a[1] = x[0].sin();
            },
            |t, _x: &[f64], b: &mut [f64]| {
                b.copy_from_slice(&[1.0 + t, 0.0, 0.0, 0.5 - 0.2 * t * t])
            },
        )
        .unwrap();
        let (t, h, x, w): (f64, f64, [f64; 2], [f64; 2]) = (0.4, 0.05, [0.3, -0.8], [0.1, 0.05]);
        let ou = Ou {
            time_dependent: true,
            independent: true,
        };
        let got = one_step(&ou, t, h, &x, &w, &mut derive_stream(0, 0));
        let want = one_step(&additive, t, h, &x, &w, &mut derive_stream(0, 0));
        assert_close(&got, &want, 1e-15);
        let constant = |independent| Ou {
            time_dependent: false,
            independent,
        };
        let fast = one_step(&constant(true), t, h, &x, &w, &mut derive_stream(0, 0));
        let full = one_step(&constant(false), t, h, &x, &w, &mut derive_stream(0, 0));
        assert_close(&fast, &full, 1e-14);
        assert!(PlatenWeak2.workspace(&ou).b_prod.is_empty());
    }

    #[test]
    fn general_non_commutative_step_matches_reference() {
        // d = 2, m = 3, non-commutative, time-dependent.
        let af = |t: f64, x: &[f64]| vec![x[1] - t * x[0], -x[0].sin()];
        let bf = |t: f64, x: &[f64]| {
            vec![
                vec![x[1], 0.5 + t],
                vec![x[0] * x[0], 0.3 * x[1]],
                vec![1.0, x[0].cos()],
            ]
        };
        let noise = NoiseShape::General {
            m: 3,
            commutative: false,
        };
        let sde = SdeFn::new(
            2,
            noise,
            move |t, x: &[f64], a: &mut [f64]| a.copy_from_slice(&af(t, x)),
            move |t, x: &[f64], b: &mut [f64]| {
                let cols = bf(t, x);
                for i in 0..2 {
                    for j in 0..3 {
                        b[i * 3 + j] = cols[j][i];
                    }
                }
            },
        )
        .unwrap();
        let (t, h, x, w) = (0.5, 0.01, [0.4, 1.3], [0.07, -0.12, 0.02]);
        for seed in 0..4 {
            let mut rng = derive_stream(seed, 1);
            let v = v_of(&rng, 3, h);
            let got = one_step(&sde, t, h, &x, &w, &mut rng);
            let want = reference(&af, &bf, t, h, &x, &w, &|r, j| v[r * 3 + j]);
            assert_close(&got, &want, 1e-13);
        }
    }

    #[test]
    fn additive_step_uses_the_midpoint_diffusion() {
        let sde = SdeFn::new(
            2,
            NoiseShape::Additive { m: 2 },
            |t, x: &[f64], a: &mut [f64]| {
                a[0] = -x[0] * x[1] + t;
                a[1] = x[0].sin();
            },
            |t, _x: &[f64], b: &mut [f64]| b.copy_from_slice(&[1.0, t, 0.5, -0.2 * t * t]),
        )
        .unwrap();
        let (t, h, x, w): (f64, f64, [f64; 2], [f64; 2]) = (0.4, 0.05, [0.3, -0.8], [0.1, 0.05]);
        let mut rng = derive_stream(0, 0);
        let got = one_step(&sde, t, h, &x, &w, &mut rng);
        let tm = t + 0.5 * h;
        let g = [w[0] + tm * w[1], 0.5 * w[0] - 0.2 * tm * tm * w[1]];
        let a = [-x[0] * x[1] + t, x[0].sin()];
        let ups = [x[0] + a[0] * h + g[0], x[1] + a[1] * h + g[1]];
        let a2 = [-ups[0] * ups[1] + t + h, ups[0].sin()];
        let want: Vec<f64> = (0..2)
            .map(|i| x[i] + 0.5 * (a[i] + a2[i]) * h + g[i])
            .collect();
        assert_close(&got, &want, 1e-14);
        // With b constant in t, the general formula gives the same step.
        let general = SdeFn::new(
            2,
            NoiseShape::General {
                m: 2,
                commutative: false,
            },
            |t, x: &[f64], a: &mut [f64]| {
                a[0] = -x[0] * x[1] + t;
                a[1] = x[0].sin();
            },
            |_t, _x: &[f64], b: &mut [f64]| b.copy_from_slice(&[1.0, 0.3, 0.5, -0.2]),
        )
        .unwrap();
        let additive = SdeFn::new(
            2,
            NoiseShape::Additive { m: 2 },
            |t, x: &[f64], a: &mut [f64]| {
                a[0] = -x[0] * x[1] + t;
                a[1] = x[0].sin();
            },
            |_t, _x: &[f64], b: &mut [f64]| b.copy_from_slice(&[1.0, 0.3, 0.5, -0.2]),
        )
        .unwrap();
        let g = one_step(&general, t, h, &x, &w, &mut derive_stream(0, 0));
        let a = one_step(&additive, t, h, &x, &w, &mut derive_stream(0, 0));
        assert_close(&g, &a, 1e-14);
    }

    /// Three-point increments: values `−sqrt(3h), 0, sqrt(3h)` with probabilities 1/6, 2/3, 1/6.
    fn three_point(h: f64) -> [(f64, f64); 3] {
        let s = (3.0 * h).sqrt();
        [(-s, 1.0 / 6.0), (0.0, 2.0 / 3.0), (s, 1.0 / 6.0)]
    }

    /// Exact `E f(X_T)` of the scheme with three-point increments on a scalar-noise problem,
    /// by summing over the `3^steps` leaves of the increment tree (the scalar path draws no V).
    fn tree_expectation<S: Sde>(
        sde: &S,
        x0: f64,
        t1: f64,
        steps: usize,
        f: &dyn Fn(f64) -> f64,
    ) -> f64 {
        #[allow(clippy::too_many_arguments)]
        fn rec<S: Sde>(
            sde: &S,
            ws: &mut Weak2Workspace,
            rng: &mut PathRng,
            x: f64,
            n: usize,
            steps: usize,
            h: f64,
            f: &dyn Fn(f64) -> f64,
        ) -> f64 {
            if n == steps {
                return f(x);
            }
            let mut e = 0.0;
            for (w, p) in three_point(h) {
                let mut y = [x];
                PlatenWeak2.step(sde, n as f64 * h, h, &mut y, &[w], rng, ws);
                e += p * rec(sde, ws, rng, y[0], n + 1, steps, h, f);
            }
            e
        }
        let mut ws = PlatenWeak2.workspace(sde);
        let mut rng = derive_stream(0, 0);
        rec(sde, &mut ws, &mut rng, x0, 0, steps, t1 / steps as f64, f)
    }

    #[test]
    fn weak_order_two_nonlinear_time_dependent_scalar() {
        // X = sinh(Y), dY = c(t) dt + s(t) dW with c = 0.3 + 0.5 t, s = 0.5 (1 + t):
        // dX = [c sqrt(1 + X²) + ½ s² X] dt + s sqrt(1 + X²) dW, nonlinear and time-dependent.
        // Y_T ~ N(μ, v), E X_T = sinh(μ) e^{v/2}, E X_T² = (e^{2v} cosh 2μ − 1) / 2.
        let c = |t: f64| 0.3 + 0.5 * t;
        let s = |t: f64| 0.5 * (1.0 + t);
        let sde = SdeFn::new(
            1,
            NoiseShape::Scalar,
            move |t, x: &[f64], a: &mut [f64]| {
                a[0] = c(t) * (1.0 + x[0] * x[0]).sqrt() + 0.5 * s(t) * s(t) * x[0]
            },
            move |t, x: &[f64], b: &mut [f64]| b[0] = s(t) * (1.0 + x[0] * x[0]).sqrt(),
        )
        .unwrap();
        // T = 0.5 keeps the errors in the asymptotic regime for these step counts (at T = 1 the
        // local slopes of E X² are still 1.71 … 1.89 at 4 … 13 steps).
        let (y0, t1) = (0.2f64, 0.5);
        let mu = y0 + 0.3 * t1 + 0.25 * t1 * t1;
        let v = 0.25 * ((1.0 + t1).powi(3) - 1.0) / 3.0;
        let m1 = mu.sinh() * (0.5 * v).exp();
        let m2 = ((2.0 * v).exp() * (2.0 * mu).cosh() - 1.0) / 2.0;
        let (mut hs, mut e1, mut e2) = (vec![], vec![], vec![]);
        for steps in [4usize, 6, 8, 10, 12] {
            hs.push(t1 / steps as f64);
            e1.push((tree_expectation(&sde, y0.sinh(), t1, steps, &|x| x) - m1).abs());
            e2.push((tree_expectation(&sde, y0.sinh(), t1, steps, &|x| x * x) - m2).abs());
        }
        for e in [&e1, &e2] {
            let fit = crate::fit_order(&hs, e).unwrap();
            assert!(
                (1.9..2.15).contains(&fit.slope),
                "errors {e:?}, fit {fit:?}"
            );
        }
    }

    /// Exact first and second moments of the scheme on a linear SDE `dX = A(t) X dt +
    /// Σ_j B_j(t) X dW_j` (the step is linear in X): `M(ΔŴ, V)` is found by stepping the basis
    /// vectors, and `E X X^T` propagates as `Σ_{(ΔŴ,V)} p M Σ M^T` over the three-point values
    /// of each ΔŴ_j and both signs of V_{1,0} (m = 2). The rng is replaced by seeds whose first
    /// bit is the wanted sign.
    fn linear_scheme_moments<S: Sde>(
        sde: &S,
        x0: [f64; 2],
        t1: f64,
        steps: usize,
    ) -> ([f64; 2], [f64; 4]) {
        // Seeds whose first u64 has low bit 0 and 1.
        let mut seeds = [None, None];
        let mut k = 0;
        while seeds.iter().any(|s| s.is_none()) {
            let bit = (derive_stream(99, k).next_u64() & 1) as usize;
            seeds[bit].get_or_insert(k);
            k += 1;
        }
        let h = t1 / steps as f64;
        let mut ws = PlatenWeak2.workspace(sde);
        let mut mean = x0;
        let mut cov = [x0[0] * x0[0], x0[0] * x0[1], x0[1] * x0[0], x0[1] * x0[1]];
        for n in 0..steps {
            let t = n as f64 * h;
            let (mut new_mean, mut new_cov) = ([0.0; 2], [0.0; 4]);
            for (w0, p0) in three_point(h) {
                for (w1, p1) in three_point(h) {
                    for seed in seeds {
                        let p = p0 * p1 * 0.5;
                        let mut mat = [0.0; 4]; // row-major M
                        for col in 0..2 {
                            let mut e = [0.0; 2];
                            e[col] = 1.0;
                            let mut rng = derive_stream(99, seed.unwrap());
                            PlatenWeak2.step(sde, t, h, &mut e, &[w0, w1], &mut rng, &mut ws);
                            mat[col] = e[0];
                            mat[2 + col] = e[1];
                        }
                        for i in 0..2 {
                            new_mean[i] += p * (mat[2 * i] * mean[0] + mat[2 * i + 1] * mean[1]);
                            for j in 0..2 {
                                let mut s = 0.0;
                                for k in 0..2 {
                                    for l in 0..2 {
                                        s += mat[2 * i + k] * cov[2 * k + l] * mat[2 * j + l];
                                    }
                                }
                                new_cov[2 * i + j] += p * s;
                            }
                        }
                    }
                }
            }
            mean = new_mean;
            cov = new_cov;
        }
        (mean, cov)
    }

    /// Exact moments of the linear SDE by RK4 on `m' = A m`, `S' = A S + S A^T + Σ_j B_j S B_j^T`.
    fn linear_exact_moments(
        a: &dyn Fn(f64) -> [f64; 4],
        bs: &dyn Fn(f64) -> [[f64; 4]; 2],
        x0: [f64; 2],
        t1: f64,
    ) -> ([f64; 2], [f64; 4]) {
        let mul = |p: &[f64; 4], q: &[f64; 4]| {
            let mut r = [0.0; 4];
            for i in 0..2 {
                for j in 0..2 {
                    r[2 * i + j] = p[2 * i] * q[j] + p[2 * i + 1] * q[2 + j];
                }
            }
            r
        };
        let tr = |p: &[f64; 4]| [p[0], p[2], p[1], p[3]];
        let rhs = |t: f64, y: &[f64; 6]| -> [f64; 6] {
            let am = a(t);
            let m = [y[0], y[1]];
            let s = [y[2], y[3], y[4], y[5]];
            let mut ds = mul(&am, &s);
            let sat = mul(&s, &tr(&am));
            for b in bs(t) {
                let bsb = mul(&mul(&b, &s), &tr(&b));
                for k in 0..4 {
                    ds[k] += bsb[k];
                }
            }
            [
                am[0] * m[0] + am[1] * m[1],
                am[2] * m[0] + am[3] * m[1],
                ds[0] + sat[0],
                ds[1] + sat[1],
                ds[2] + sat[2],
                ds[3] + sat[3],
            ]
        };
        let n = 4000;
        let h = t1 / n as f64;
        let mut y = [
            x0[0],
            x0[1],
            x0[0] * x0[0],
            x0[0] * x0[1],
            x0[1] * x0[0],
            x0[1] * x0[1],
        ];
        let add = |y: &[f64; 6], k: &[f64; 6], c: f64| {
            let mut r = *y;
            for i in 0..6 {
                r[i] += c * k[i];
            }
            r
        };
        for i in 0..n {
            let t = i as f64 * h;
            let k1 = rhs(t, &y);
            let k2 = rhs(t + 0.5 * h, &add(&y, &k1, 0.5 * h));
            let k3 = rhs(t + 0.5 * h, &add(&y, &k2, 0.5 * h));
            let k4 = rhs(t + h, &add(&y, &k3, h));
            for j in 0..6 {
                y[j] += h / 6.0 * (k1[j] + 2.0 * k2[j] + 2.0 * k3[j] + k4[j]);
            }
        }
        ([y[0], y[1]], [y[2], y[3], y[4], y[5]])
    }

    fn assert_weak_order_two_linear<S: Sde>(
        sde: &S,
        a: &dyn Fn(f64) -> [f64; 4],
        bs: &dyn Fn(f64) -> [[f64; 4]; 2],
    ) {
        let (x0, t1) = ([1.0, 0.5], 1.0);
        let (m_ex, s_ex) = linear_exact_moments(a, bs, x0, t1);
        let (mut hs, mut em, mut es) = (vec![], vec![], vec![]);
        for steps in [8usize, 16, 32, 64] {
            let (m, s) = linear_scheme_moments(sde, x0, t1, steps);
            hs.push(t1 / steps as f64);
            em.push((0..2).map(|i| (m[i] - m_ex[i]).abs()).fold(0.0, f64::max));
            es.push((0..4).map(|i| (s[i] - s_ex[i]).abs()).fold(0.0, f64::max));
        }
        for e in [&em, &es] {
            let fit = crate::fit_order(&hs, e).unwrap();
            assert!(
                (1.85..2.2).contains(&fit.slope),
                "errors {e:?}, fit {fit:?}"
            );
        }
    }

    #[test]
    fn weak_order_two_general_non_commutative_time_dependent() {
        // A(t) = [[−0.5, t], [−1, 0.2]], B_1(t) = [[0.2, 0.6 + 0.2 t], [0, 0.1]],
        // B_2 = [[0.1, 0], [0.5, −0.2]]: the commutator B_1 B_2 − B_2 B_1 is of the size of
        // B_1 B_2, so dropping the V terms (or getting their sign wrong) gives weak order 1.
        let a = |t: f64| [-0.5, t, -1.0, 0.2];
        let bs = |t: f64| [[0.2, 0.6 + 0.2 * t, 0.0, 0.1], [0.1, 0.0, 0.5, -0.2]];
        let sde = SdeFn::new(
            2,
            NoiseShape::General {
                m: 2,
                commutative: false,
            },
            move |t, x: &[f64], out: &mut [f64]| {
                let am = a(t);
                out[0] = am[0] * x[0] + am[1] * x[1];
                out[1] = am[2] * x[0] + am[3] * x[1];
            },
            move |t, x: &[f64], out: &mut [f64]| {
                for (j, b) in bs(t).iter().enumerate() {
                    out[j] = b[0] * x[0] + b[1] * x[1];
                    out[2 + j] = b[2] * x[0] + b[3] * x[1];
                }
            },
        )
        .unwrap();
        assert_weak_order_two_linear(&sde, &a, &bs);
    }

    #[test]
    fn weak_order_two_diagonal_coupled_time_dependent() {
        // b_00 = (1 + t) (0.3 x0 + 0.2 x1), b_11 = 0.4 x0 − 0.1 x1: each depends on both
        // components, B_0 = E_00 C_0(t), B_1 = E_11 C_1. Not diagonal noise in the Milstein
        // sense, so declared general (dense, zero off-diagonal entries).
        let a = |t: f64| [-0.3 * (1.0 + t), 0.5, -0.4, 0.1 * t];
        let bs = |t: f64| {
            [
                [0.3 * (1.0 + t), 0.2 * (1.0 + t), 0.0, 0.0],
                [0.0, 0.0, 0.4, -0.1],
            ]
        };
        let sde = SdeFn::new(
            2,
            NoiseShape::General {
                m: 2,
                commutative: false,
            },
            move |t, x: &[f64], out: &mut [f64]| {
                let am = a(t);
                out[0] = am[0] * x[0] + am[1] * x[1];
                out[1] = am[2] * x[0] + am[3] * x[1];
            },
            move |t, x: &[f64], out: &mut [f64]| {
                let b = bs(t);
                out.copy_from_slice(&[
                    b[0][0] * x[0] + b[0][1] * x[1],
                    0.0,
                    0.0,
                    b[1][2] * x[0] + b[1][3] * x[1],
                ]);
            },
        )
        .unwrap();
        assert_weak_order_two_linear(&sde, &a, &bs);
    }

    #[test]
    fn weak_order_two_diagonal_time_dependent() {
        // Diagonal noise: b_00 = (1 + t) 0.3 x0, b_11 = −0.25 x1, drift coupled and
        // time-dependent; B_0 = E_00 C_0(t), B_1 = E_11 C_1 with C diagonal.
        let a = |t: f64| [-0.3 * (1.0 + t), 0.5, -0.4, 0.1 * t];
        let bs = |t: f64| [[0.3 * (1.0 + t), 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, -0.25]];
        let sde = SdeFn::new(
            2,
            NoiseShape::Diagonal,
            move |t, x: &[f64], out: &mut [f64]| {
                let am = a(t);
                out[0] = am[0] * x[0] + am[1] * x[1];
                out[1] = am[2] * x[0] + am[3] * x[1];
            },
            move |t, x: &[f64], out: &mut [f64]| {
                out[0] = 0.3 * (1.0 + t) * x[0];
                out[1] = -0.25 * x[1];
            },
        )
        .unwrap();
        assert_weak_order_two_linear(&sde, &a, &bs);
    }
}
