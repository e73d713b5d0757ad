//! Losses: derivatives against central finite differences, the documented (L0, L1) constants on
//! many random points (large ones included), f*, and input validation.

use models::loss::{l2_norm, symmetric_eigenvalues};
use models::{
    DiagonalQuadratic, LeastSquares, Loss, LossKind, MixedQuadraticQuartic, ModelError, Quadratic,
    Quartic,
};
use rand::RngExt;
use sde_core::{derive_stream, PathRng};

fn all_losses() -> Vec<LossKind> {
    vec![
        DiagonalQuadratic::new(vec![1.0, 0.5, 3.0, 0.0])
            .unwrap()
            .into(),
        Quadratic::new(vec![
            vec![2.0, 0.5, 0.0],
            vec![0.5, 1.0, -0.3],
            vec![0.0, -0.3, 4.0],
        ])
        .unwrap()
        .into(),
        Quartic::standard(3).unwrap().into(),
        Quartic::new(vec![0.5, 2.0, 1.0, 0.1]).unwrap().into(),
        MixedQuadraticQuartic::new(vec![1.0, 0.0, 5.0, 0.3], vec![1.0, 2.0, 0.5, 0.0])
            .unwrap()
            .into(),
        LeastSquares::synthetic(40, 5, 0.3, 11).unwrap().into(),
    ]
}

fn random_point(rng: &mut PathRng, d: usize, scale: f64) -> Vec<f64> {
    (0..d)
        .map(|_| scale * (2.0 * rng.random::<f64>() - 1.0))
        .collect()
}

fn dense_hessian(loss: &dyn Loss, x: &[f64]) -> Vec<f64> {
    let d = loss.dim();
    let mut h = vec![0.0; d * d];
    let mut e = vec![0.0; d];
    let mut col = vec![0.0; d];
    for j in 0..d {
        e.fill(0.0);
        e[j] = 1.0;
        loss.hessian_vec(x, &e, &mut col);
        for i in 0..d {
            h[i * d + j] = col[i];
        }
    }
    h
}

#[test]
fn gradient_and_hessian_vec_match_finite_differences() {
    let mut rng = derive_stream(2024, 0);
    let mut worst_g = 0.0f64;
    let mut worst_h = 0.0f64;
    for loss in all_losses() {
        let d = loss.dim();
        let mut g = vec![0.0; d];
        let mut gp = vec![0.0; d];
        let mut gm = vec![0.0; d];
        let mut hv = vec![0.0; d];
        for _ in 0..50 {
            let x = random_point(&mut rng, d, 3.0);
            let v = random_point(&mut rng, d, 1.0);
            loss.gradient(&x, &mut g);
            // ∂_j f by central differences, step ~1e-5 relative (error O(h²) ~ 1e-10 relative).
            for j in 0..d {
                let h = 1e-5 * (1.0 + x[j].abs());
                let mut xp = x.clone();
                let mut xm = x.clone();
                xp[j] += h;
                xm[j] -= h;
                let fd = (loss.value(&xp) - loss.value(&xm)) / (2.0 * h);
                let err = (fd - g[j]).abs() / (1.0 + g[j].abs() + loss.value(&x).abs());
                worst_g = worst_g.max(err);
                assert!(
                    err <= 1e-7,
                    "{}: d_{j} f fd={fd} analytic={}",
                    loss.name(),
                    g[j]
                );
            }
            // ∇²f v by central differences of the gradient along v.
            let h = 1e-5;
            let xp: Vec<f64> = x.iter().zip(&v).map(|(a, b)| a + h * b).collect();
            let xm: Vec<f64> = x.iter().zip(&v).map(|(a, b)| a - h * b).collect();
            loss.gradient(&xp, &mut gp);
            loss.gradient(&xm, &mut gm);
            loss.hessian_vec(&x, &v, &mut hv);
            let scale = 1.0 + l2_norm(&hv) + l2_norm(&g);
            for j in 0..d {
                let fd = (gp[j] - gm[j]) / (2.0 * h);
                let err = (fd - hv[j]).abs() / scale;
                worst_h = worst_h.max(err);
                assert!(
                    err <= 1e-7,
                    "{}: (Hv)_{j} fd={fd} analytic={}",
                    loss.name(),
                    hv[j]
                );
            }
        }
    }
    println!("worst relative FD error: gradient {worst_g:e}, Hessian-vector {worst_h:e}");
}

/// `‖∇²f(x)‖₂ ≤ L0 + L1 ‖∇f(x)‖₂` (MATH.md §2) on 2000 random points per loss, at scales from
/// 1e-2 to 1e3 (the quartic's Hessian grows like x², its gradient like x³: large points test L1,
/// points near |x| = 2 test L0). The spectral norm is computed from the dense Hessian (built
/// from `hessian_vec`) by Jacobi. Tolerance: 1e-12 relative (rounding only).
#[test]
fn l0_l1_smoothness_holds_on_random_points() {
    let mut rng = derive_stream(77, 0);
    for loss in all_losses() {
        let d = loss.dim();
        let s = loss.smoothness();
        let mut g = vec![0.0; d];
        let mut max_ratio = 0.0f64;
        for i in 0..2000 {
            let scale = [1e-2, 0.5, 2.0, 3.0, 10.0, 1e3][i % 6];
            let x = random_point(&mut rng, d, scale);
            loss.gradient(&x, &mut g);
            let h = dense_hessian(&loss, &x);
            let norm = symmetric_eigenvalues(d, &h)
                .iter()
                .fold(0.0f64, |m, e| m.max(e.abs()));
            let bound = s.hessian_bound(l2_norm(&g));
            max_ratio = max_ratio.max(norm / bound);
            assert!(
                norm <= bound * (1.0 + 1e-12) + 1e-12,
                "{}: ||H|| = {norm} > L0 + L1||g|| = {bound} at {x:?}",
                loss.name()
            );
            if let Some(l) = s.l_smooth {
                assert!(
                    norm <= l * (1.0 + 1e-12) + 1e-12,
                    "{}: not {l}-smooth",
                    loss.name()
                );
            }
        }
        println!(
            "{}: max ||H|| / (L0 + L1||g||) = {max_ratio:.6}",
            loss.name()
        );
    }
}

/// The constants are tight where the derivation says so (not just valid).
#[test]
fn smoothness_constants_are_tight() {
    // Quartic: equality at x = 2 e_j for the largest c_j: 3c·4 = 4c + c·8.
    let q = Quartic::new(vec![0.5, 2.0, 1.0]).unwrap();
    let s = q.smoothness();
    assert_eq!((s.l0, s.l1, s.l_smooth), (8.0, 1.0, None));
    let x = [0.0, 2.0, 0.0];
    let mut g = [0.0; 3];
    q.gradient(&x, &mut g);
    let hnorm = 3.0 * 2.0 * 4.0;
    assert!((s.hessian_bound(l2_norm(&g)) - hnorm).abs() <= 1e-12);
    // Mixed, one coordinate: equality at the maximiser of h(u) = a + 3cu² − au − cu³, which is
    // u+ = 1 + √(1 − a/(3c)) when h(u+) ≥ h(0) = a (e.g. a = 1, c = 1), and u = 0 otherwise
    // (a = 2.9, c = 1: h(u+) ≈ 2.02 < 2.9).
    for (a, c) in [(1.0, 1.0), (0.5, 2.0), (2.9, 1.0), (0.0, 1.0)] {
        let m = MixedQuadraticQuartic::new(vec![a], vec![c]).unwrap();
        let s = m.smoothness();
        let up: f64 = 1.0 + (1.0 - a / (3.0 * c)).sqrt();
        let h_up = a + 3.0 * c * up * up - a * up - c * up * up * up;
        let u = if h_up >= a { up } else { 0.0 };
        let mut g = [0.0];
        m.gradient(&[u], &mut g);
        let h = a + 3.0 * c * u * u;
        assert!(
            (s.hessian_bound(g[0].abs()) - h).abs() <= 1e-12,
            "a={a} c={c}"
        );
        assert!(s.l0 <= a + 4.0 * c + 1e-12, "simple bound a + 4c");
    }
    // a > 3c: the maximum is at u = 0, L0 = a.
    let m = MixedQuadraticQuartic::new(vec![5.0], vec![1.0]).unwrap();
    assert_eq!(m.smoothness().l0, 5.0);
    // All c = 0: globally smooth.
    let m = MixedQuadraticQuartic::new(vec![1.0, 3.0], vec![0.0, 0.0]).unwrap();
    assert_eq!(m.smoothness().l_smooth, Some(3.0));
    // Quadratic with known spectrum {1, 3}.
    let q = Quadratic::new(vec![vec![2.0, 1.0], vec![1.0, 2.0]]).unwrap();
    let e = q.eigenvalues();
    assert!((e[0] - 1.0).abs() <= 1e-14 && (e[1] - 3.0).abs() <= 1e-14);
    assert!((q.smoothness().l0 - 3.0).abs() <= 1e-14);
}

#[test]
fn minimum_values() {
    for loss in all_losses() {
        let f_star = loss
            .minimum()
            .expect("all test losses have a known minimum");
        let mut rng = derive_stream(5, 0);
        for _ in 0..200 {
            let x = random_point(&mut rng, loss.dim(), 5.0);
            assert!(loss.value(&x) >= f_star - 1e-12, "{}", loss.name());
        }
    }
    // Least squares: f* = f(x̂) with ∇f(x̂) = 0, and f* ≈ noise²/2 · (n − d)/n for large n.
    let ls = LeastSquares::synthetic(4000, 4, 0.5, 3).unwrap();
    let x = ls.solution().unwrap().to_vec();
    let mut g = vec![0.0; 4];
    ls.gradient(&x, &mut g);
    assert!(l2_norm(&g) <= 1e-12);
    let f_star = ls.minimum().unwrap();
    assert_eq!(f_star, ls.value(&x));
    // E f* = σ²(n−d)/(2n) = 0.12475; sd ≈ σ²/√(2n) · ... ≈ 0.0028; margin 5 sd.
    assert!((f_star - 0.12475).abs() <= 0.014, "f* = {f_star}");
    // Underdetermined: AᵀA singular, minimum unknown.
    assert_eq!(
        LeastSquares::synthetic(2, 5, 0.1, 1).unwrap().minimum(),
        None
    );
    // Indefinite quadratic / negative curvature: unbounded below.
    let q = Quadratic::new(vec![vec![1.0, 0.0], vec![0.0, -1.0]]).unwrap();
    assert_eq!(q.minimum(), None);
    assert_eq!(
        DiagonalQuadratic::new(vec![1.0, -2.0]).unwrap().minimum(),
        None
    );
}

#[test]
fn synthetic_least_squares_is_reproducible() {
    let a = LeastSquares::synthetic(30, 3, 0.2, 9).unwrap();
    let b = LeastSquares::synthetic(30, 3, 0.2, 9).unwrap();
    let c = LeastSquares::synthetic(30, 3, 0.2, 10).unwrap();
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert_eq!(a.samples(), 30);
}

#[test]
fn loss_kind_dispatches() {
    let inner = Quartic::new(vec![1.0, 2.0]).unwrap();
    let kind = LossKind::from(inner.clone());
    let x = [0.3, -1.2];
    assert_eq!(kind.value(&x), inner.value(&x));
    assert_eq!(kind.name(), "quartic");
    assert_eq!(kind.smoothness(), inner.smoothness());
    let boxed: Box<dyn Loss> = Box::new(kind);
    assert_eq!(boxed.dim(), 2);
}

#[test]
fn bad_inputs_are_rejected() {
    let msg = |e: ModelError| e.to_string();
    assert!(DiagonalQuadratic::new(vec![]).is_err());
    assert!(DiagonalQuadratic::new(vec![1.0, f64::NAN]).is_err());
    assert_eq!(
        msg(Quartic::new(vec![1.0, -1.0]).unwrap_err()),
        "invalid parameter `c[1]` = -1: must be finite and > 0"
    );
    assert!(Quartic::new(vec![0.0]).is_err());
    assert!(Quartic::standard(0).is_err());
    assert_eq!(
        MixedQuadraticQuartic::new(vec![1.0, 2.0], vec![1.0]).unwrap_err(),
        ModelError::DimensionMismatch {
            name: "c".into(),
            expected: 2,
            got: 1
        }
    );
    assert!(MixedQuadraticQuartic::new(vec![-1.0], vec![1.0]).is_err());
    assert!(MixedQuadraticQuartic::new(vec![1.0], vec![f64::INFINITY]).is_err());
    // Non-symmetric, non-square, non-finite H.
    let e = Quadratic::new(vec![vec![1.0, 2.0], vec![0.0, 1.0]]).unwrap_err();
    assert!(msg(e).contains("symmetric"));
    assert!(Quadratic::new(vec![vec![1.0, 2.0], vec![2.0]]).is_err());
    assert!(Quadratic::new(vec![vec![f64::NAN]]).is_err());
    assert!(Quadratic::from_row_major(2, vec![1.0; 3]).is_err());
    assert!(Quadratic::new(vec![]).is_err());
    // Least squares sizes and values.
    assert!(LeastSquares::new(2, 2, vec![1.0; 3], vec![0.0; 2]).is_err());
    assert!(LeastSquares::new(2, 2, vec![1.0; 4], vec![0.0; 3]).is_err());
    assert!(LeastSquares::new(1, 1, vec![f64::NAN], vec![0.0]).is_err());
    assert!(LeastSquares::synthetic(10, 2, -0.1, 0).is_err());
    assert!(LeastSquares::synthetic(0, 2, 0.1, 0).is_err());
    assert!(LeastSquares::synthetic(10, 0, 0.1, 0).is_err());
}
