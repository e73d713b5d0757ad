//! Platen's weak order 2 step against a reference implementation of Kloeden & Platen's eq. 15.1.3
//! for every noise shape, and its weak order on nonlinear and linear time-dependent problems by
//! exact expectations (moved from the scheme's inline tests).

use rand::Rng;
use sde_core::problem::SdeFn;
use sde_core::rng::derive_stream;
use sde_core::testing::{assert_order, chain_moments, THREE_POINT};
use sde_core::*;

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
        PlatenWeak2::draw_v(&mut v, m, h, &mut rng.clone());
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
    PlatenWeak2.step(sde, &mut x, Step::new(t, h, dw, rng), &mut ws);
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

fn general(m: usize) -> NoiseShape {
    NoiseShape::General {
        m,
        commutative: false,
    }
}

/// The problem `dX = a dt + Σ_j b^j dW_j` with `b` given by its columns, stored dense
/// (`d × m`, general non-commutative noise): the layout the reference reads.
fn dense_sde(
    d: usize,
    m: usize,
    af: impl Fn(f64, &[f64]) -> Vec<f64> + Send + Sync,
    bf: impl Fn(f64, &[f64]) -> Vec<Vec<f64>> + Send + Sync,
) -> impl Sde {
    SdeFn::new(
        d,
        general(m),
        move |t, x: &[f64], a: &mut [f64]| a.copy_from_slice(&af(t, x)),
        move |t, x: &[f64], b: &mut [f64]| {
            for (j, col) in bf(t, x).iter().enumerate() {
                for (i, bij) in col.iter().enumerate() {
                    b[i * m + j] = *bij;
                }
            }
        },
    )
    .unwrap()
}

/// The columns of `diag(g(t, x))`.
fn diagonal_columns(
    g: impl Fn(f64, &[f64]) -> Vec<f64> + Copy + Send + Sync,
) -> impl Fn(f64, &[f64]) -> Vec<Vec<f64>> + Copy + Send + Sync {
    move |t: f64, x: &[f64]| {
        let g = g(t, x);
        (0..g.len())
            .map(|j| {
                (0..g.len())
                    .map(|i| if i == j { g[j] } else { 0.0 })
                    .collect()
            })
            .collect()
    }
}

/// One step of `sde` against [`reference`] from `(t, x)` with increments `w`, over four path
/// streams (`V` as the scheme draws it). With `draws_v = false` the step must leave the stream
/// untouched (no cross terms, no `V`).
#[allow(clippy::too_many_arguments)]
fn check_against_reference<S: Sde>(
    sde: &S,
    af: &dyn Fn(f64, &[f64]) -> Vec<f64>,
    bf: &Columns,
    (t, h): (f64, f64),
    x: &[f64],
    w: &[f64],
    stream: u64,
    draws_v: bool,
) {
    let m = w.len();
    for seed in 0..4 {
        let mut rng = derive_stream(seed, stream);
        let v = v_of(&rng, m, h);
        let got = one_step(sde, t, h, x, w, &mut rng);
        // The reference keeps the cross terms (they vanish for diagonal noise) and its V.
        let want = reference(af, bf, t, h, x, w, &|r, j| v[r * m + j]);
        assert_close(&got, &want, 1e-13);
        if !draws_v {
            assert_eq!(rng.next_u64(), derive_stream(seed, stream).next_u64());
        }
    }
}

/// The drift `(−x0 x1 + t, sin x0)` of the additive-noise tests.
fn additive_drift(t: f64, x: &[f64], a: &mut [f64]) {
    a[0] = -x[0] * x[1] + t;
    a[1] = x[0].sin();
}

/// The drift `A(t) x` of the linear tests (`A` row-major).
fn linear_drift(
    a: impl Fn(f64) -> [f64; 4] + Send + Sync,
) -> impl Fn(f64, &[f64], &mut [f64]) + Send + Sync {
    move |t: f64, x: &[f64], out: &mut [f64]| {
        let am = a(t);
        out[0] = am[0] * x[0] + am[1] * x[1];
        out[1] = am[2] * x[0] + am[3] * x[1];
    }
}

#[test]
fn v_is_antisymmetric_with_minus_h_diagonal() {
    let mut rng = derive_stream(1, 2);
    let (m, h) = (12, 0.1f64);
    let mut v = vec![0.0; m * m];
    let (mut plus, mut total) = (0, 0);
    for _ in 0..200 {
        PlatenWeak2::draw_v(&mut v, m, h, &mut rng);
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
    let diag = |t: f64, x: &[f64]| vec![x[0] * x[0] + t, x[1].cos() + 0.1, 1.0 + t * x[2] * x[2]];
    let sde = SdeFn::new(
        3,
        NoiseShape::Diagonal,
        move |t, x: &[f64], a: &mut [f64]| a.copy_from_slice(&af(t, x)),
        move |t, x: &[f64], b: &mut [f64]| b.copy_from_slice(&diag(t, x)),
    )
    .unwrap();
    let (x, w) = ([0.3, -0.6, 0.9], [0.1, -0.2, 0.05]);
    // Diagonal noise has no cross terms, so the step draws no V.
    let bf = diagonal_columns(diag);
    check_against_reference(&sde, &af, &bf, (0.2, 0.02), &x, &w, 0, false);
}

#[test]
fn coupled_diagonal_matrix_declared_general_matches_reference() {
    // A diagonal matrix whose entries depend on every component is general noise:
    // b = diag(x0 x1 + t, cos x0 + 0.1 x2, 1 + x2²), dense layout.
    let af = |t: f64, x: &[f64]| vec![-x[0] + t, x[2], 0.5 * x[1] * x[0]];
    let diag =
        |t: f64, x: &[f64]| vec![x[0] * x[1] + t, x[0].cos() + 0.1 * x[2], 1.0 + x[2] * x[2]];
    let bf = diagonal_columns(diag);
    let sde = dense_sde(3, 3, af, bf);
    let (x, w) = ([0.3, -0.6, 0.9], [0.1, -0.2, 0.05]);
    check_against_reference(&sde, &af, &bf, (0.2, 0.02), &x, &w, 0, true);
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
            additive_drift(t, x, out)
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
        additive_drift,
        |t, _x: &[f64], b: &mut [f64]| b.copy_from_slice(&[1.0 + t, 0.0, 0.0, 0.5 - 0.2 * t * t]),
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
    assert!(PlatenWeak2.workspace(&ou).is_additive());
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
    let sde = dense_sde(2, 3, af, bf);
    let (x, w) = ([0.4, 1.3], [0.07, -0.12, 0.02]);
    check_against_reference(&sde, &af, &bf, (0.5, 0.01), &x, &w, 1, true);
}

#[test]
fn additive_step_uses_the_midpoint_diffusion() {
    let sde = SdeFn::new(
        2,
        NoiseShape::Additive { m: 2 },
        additive_drift,
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
        general(2),
        additive_drift,
        |_t, _x: &[f64], b: &mut [f64]| b.copy_from_slice(&[1.0, 0.3, 0.5, -0.2]),
    )
    .unwrap();
    let additive = SdeFn::new(
        2,
        NoiseShape::Additive { m: 2 },
        additive_drift,
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
            PlatenWeak2.step(sde, &mut y, Step::new(n as f64 * h, h, &[w], rng), ws);
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
        let fit = sde_core::fit_order(&hs, e).unwrap();
        let label = format!("errors {e:?}");
        assert_order(&label, &fit, PlatenWeak2.weak_order(), (0.1, 0.15));
    }
}

/// Exact first and second moments of the scheme on a linear SDE `dX = A(t) X dt +
/// Σ_j B_j(t) X dW_j` (the step is linear in X), from the kit's exact chain expectation over
/// the three-point values of each ΔŴ_j and both signs of V_{1,0} (m = 2), as row-major arrays.
fn linear_scheme_moments<S: Sde>(
    sde: &S,
    x0: [f64; 2],
    t1: f64,
    steps: usize,
) -> ([f64; 2], [f64; 4]) {
    let (m, s) = chain_moments(sde, &PlatenWeak2, &THREE_POINT, 1, t1, steps, &x0);
    ([m[0], m[1]], [s[(0, 0)], s[(0, 1)], s[(1, 0)], s[(1, 1)]])
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
        let fit = sde_core::fit_order(&hs, e).unwrap();
        let label = format!("errors {e:?}");
        assert_order(&label, &fit, PlatenWeak2.weak_order(), (0.15, 0.2));
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
        general(2),
        linear_drift(a),
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
        general(2),
        linear_drift(a),
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
        linear_drift(a),
        move |t, x: &[f64], out: &mut [f64]| {
            out[0] = 0.3 * (1.0 + t) * x[0];
            out[1] = -0.25 * x[1];
        },
    )
    .unwrap();
    assert_weak_order_two_linear(&sde, &a, &bs);
}
