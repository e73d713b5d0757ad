//! Milstein's step against hand computations for every noise shape, its refusals, and its strong
//! order on GBM refined on one Brownian path (moved from the scheme's inline tests).

use sde_core::problem::SdeFn;
use sde_core::rng::derive_stream;
use sde_core::testing::{assert_order, declared_strong_order};
use sde_core::EulerMaruyama;
use sde_core::*;

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
    scheme.step(sde, &mut x, Step::new(t, h, dw, &mut rng), &mut ws);
    x
}

/// One step of `scheme` from `x0` at `(t, h)` lands on `want` to a relative 1e-14.
fn assert_step<S: Sde, Sch: Scheme>(
    sde: &S,
    scheme: Sch,
    (t, h): (f64, f64),
    x0: &[f64],
    dw: &[f64],
    want: &[f64],
) {
    assert_close(&one_step(sde, scheme, t, h, x0, dw), want, 1e-14);
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

/// The drift or diffusion of an [`SdeFn`].
type Coefficient = fn(f64, &[f64], &mut [f64]);

// Scalar noise, d = 2: a = (x1, −x0 t), b = (sin x0, x0 x1); no diffusion derivative.
fn scalar_without_derivative() -> SdeFn<Coefficient, Coefficient> {
    SdeFn::<Coefficient, Coefficient>::new(
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
}

// The same with its diffusion derivative.
fn scalar_problem() -> impl Sde {
    scalar_without_derivative().with_derivative(|_t, x: &[f64], v: &[f64], out: &mut [f64]| {
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
    assert_step(&sde, Milstein::default(), (t, h), &x, &[w], &want);

    // Runge–Kutta form by hand.
    let sh = h.sqrt();
    let y = [x[0] + a[0] * h + b[0] * sh, x[1] + a[1] * h + b[1] * sh];
    let by = [y[0].sin(), y[0] * y[1]];
    let want: Vec<f64> = (0..2)
        .map(|i| x[i] + a[i] * h + b[i] * w + 0.5 * (by[i] - b[i]) / sh * (w * w - h))
        .collect();
    assert_step(&sde, Milstein::derivative_free(), (t, h), &x, &[w], &want);

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
        .with_derivative(|_t, x: &[f64], v: &[f64], out: &mut [f64]| out[0] = 2.0 * x[0] * v[0]);
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
    let without = scalar_without_derivative();
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
    assert_step(&sde, Milstein::default(), (t, h), &x, &w, &want);

    let sh = h.sqrt();
    let y = [x[0] + a[0] * h + b[0] * sh, x[1] + a[1] * h + b[1] * sh];
    let by = [0.3 * y[0] * y[0], 2.0 + y[1].sin()];
    let want: Vec<f64> = (0..2)
        .map(|i| x[i] + a[i] * h + b[i] * w[i] + 0.5 * (by[i] - b[i]) / sh * (w[i] * w[i] - h))
        .collect();
    assert_step(&sde, Milstein::derivative_free(), (t, h), &x, &w, &want);

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
    let (t, h, x, w): (f64, f64, [f64; 2], [f64; 3]) = (0.0, 0.01, [0.5, 0.9], [0.12, -0.07, 0.2]);
    let f = [x[1].sin(), x[0].cos()];
    let c = [1.0, 0.5, 0.0];
    let a = [0.2 * x[0], -x[1]];
    // f'·f
    let dff = [x[1].cos() * f[1], -x[0].sin() * f[0]];
    // x + a h + Σ_j b^j ΔW_j, which both forms add their corrections to.
    let euler = |i: usize| {
        let mut v = x[i] + a[i] * h;
        for j in 0..3 {
            v += c[j] * f[i] * w[j];
        }
        v
    };
    let want: Vec<f64> = (0..2)
        .map(|i| {
            let mut v = euler(i);
            for j1 in 0..3 {
                for j2 in 0..3 {
                    let delta = if j1 == j2 { h } else { 0.0 };
                    v += 0.5 * c[j1] * c[j2] * dff[i] * (w[j1] * w[j2] - delta);
                }
            }
            v
        })
        .collect();
    assert_step(&sde, Milstein::default(), (t, h), &x, &w, &want);

    // Runge–Kutta form by hand: Υ^{j1} = x + a h + c_{j1} f sqrt(h).
    let sh = h.sqrt();
    let want: Vec<f64> = (0..2)
        .map(|i| {
            let mut v = euler(i);
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
    assert_step(&sde, Milstein::derivative_free(), (t, h), &x, &w, &want);

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
    assert!(sde_core::Solver::new(&sde, Milstein::derivative_free(), sde_core::Gaussian).is_err());
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
    use sde_core::{Ensemble, Gaussian, Grid, PathSimulation, Refined, SdePaths, Solver};
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
        let fit = sde_core::fit_order(&hs, &errs).unwrap();
        let label = format!("{scheme:?}: {errs:?}");
        assert_order(&label, &fit, declared_strong_order(&scheme), 0.15);
    }
}
