//! Schedules: values, η_{t_k} = η_k, η̇_t against finite differences, the §6.2 constants A and B,
//! the §6.3 stability condition, and validation.

use models::{ModelError, NormalizationInputs, Schedule};

fn valid_schedules() -> Vec<Schedule> {
    vec![
        Schedule::constant(),
        Schedule::polynomial(0.0).unwrap(),
        Schedule::polynomial(0.5).unwrap(),
        Schedule::polynomial(1.0).unwrap(),
        Schedule::polynomial(2.3).unwrap(),
        Schedule::poly_time(0.5, 0.25).unwrap(),
        Schedule::normalized(0.5, 0.5, 4.0, 1.0, 2.0, 3.0).unwrap(),
        Schedule::normalized(1.0, 0.9, 0.0, 2.0, 0.0, 0.5).unwrap(),
        Schedule::normalized_sgd(0.1, 0.01).unwrap(),
    ]
}

#[test]
fn values() {
    assert_eq!(Schedule::constant().eta_k(17, 0.1, 3.0), 1.0);
    let rm = Schedule::polynomial(0.5).unwrap();
    assert_eq!(rm.eta_k(0, 0.1, 9.0), 1.0);
    assert_eq!(rm.eta_k(3, 0.1, 9.0), 0.5);
    assert!((rm.eta_k(99, 0.1, 0.0) - 0.1).abs() <= 1e-15);
    assert!((rm.eta_t(0.3, 0.1, 0.0) - 0.5).abs() <= 1e-15);
    // §6.3: c·2ε / [(L0 + L1 g)(1 + A) + L1 B] = 0.5 · 1 / [(4 + 2)·3 + 3] = 0.5/21.
    let n = Schedule::normalized(0.5, 0.5, 4.0, 1.0, 2.0, 3.0).unwrap();
    assert!((n.eta_k(5, 0.1, 2.0) - 0.5 / 21.0).abs() <= 1e-16);
    assert_eq!(n.eta_t(123.0, 0.01, 2.0), n.eta_k(7, 0.1, 2.0));
    // Plain normalised SGD: c / max(g, δ).
    let s = Schedule::normalized_sgd(0.1, 0.01).unwrap();
    assert!((s.eta_k(0, 0.1, 0.5) - 0.2).abs() <= 1e-16);
    assert!((s.eta_k(0, 0.1, 1e-3) - 10.0).abs() <= 1e-14);
    assert!((s.eta_t(1.0, 0.1, 0.0) - 10.0).abs() <= 1e-14);
    // Dependence on the gradient.
    let deps: Vec<bool> = valid_schedules()
        .iter()
        .map(|s| s.depends_on_gradient())
        .collect();
    assert_eq!(
        deps,
        [false, false, false, false, false, false, true, true, true]
    );
}

/// `η_{t_k} = η_k` at `t_k = kη` (MATH.md §3), for k up to 1e4 and several η.
#[test]
fn continuous_form_matches_discrete_at_grid_times() {
    let mut worst = 0.0f64;
    for s in valid_schedules() {
        for eta in [0.3, 0.1, 0.01, 1e-3] {
            for k in (0..10_000u64).step_by(7) {
                for g in [0.0, 0.7, 30.0] {
                    let a = s.eta_k(k, eta, g);
                    let b = s.eta_t(k as f64 * eta, eta, g);
                    let rel = (a - b).abs() / a;
                    worst = worst.max(rel);
                    assert!(rel <= 1e-12, "{s:?} k={k} eta={eta}: {a} vs {b}");
                }
            }
        }
    }
    println!("worst relative |eta_t(k eta) - eta_k| = {worst:e}");
}

#[test]
fn time_derivative_matches_finite_differences() {
    for s in valid_schedules() {
        for eta in [0.1, 0.01] {
            for t in [0.0f64, 0.05, 0.7, 3.0, 40.0] {
                let g = 1.3;
                let h = 1e-6 * (eta + t);
                let lo = (t - h).max(0.0);
                let fd = (s.eta_t(t + h, eta, g) - s.eta_t(lo, eta, g)) / (t + h - lo);
                let d = s.eta_t_dot(t, eta, g);
                // One-sided at t = 0: O(h) error, relative ~1e-4 at most.
                let tol = if t == 0.0 { 1e-4 } else { 1e-7 };
                assert!(
                    (fd - d).abs() <= tol * (1.0 + d.abs()),
                    "{s:?} t={t} eta={eta}: fd {fd} vs {d}"
                );
            }
        }
        if !matches!(s, Schedule::Polynomial { power } | Schedule::PolyTime { power, .. } if power > 0.0)
        {
            assert_eq!(s.eta_t_dot(1.0, 0.1, 2.0), 0.0);
        }
    }
    // Closed form: η_t = (t/η+1)^{-1/2}, η̇ = −(1/(2η))(t/η+1)^{-3/2}; at t = 3η: −1/(16η).
    let rm = Schedule::polynomial(0.5).unwrap();
    assert!((rm.eta_t_dot(0.3, 0.1, 0.0) + 1.0 / 1.6).abs() <= 1e-14);
    // On SDE time the derivative does not depend on η: (1 + t/t0)^{-p} with p = 1/2, t0 = 1/4,
    // at t = 3/4: η̇ = −(p/t0)(1 + t/t0)^{-3/2} = −2 · 4^{-3/2} = −1/4, for every η.
    let pt = Schedule::poly_time(0.5, 0.25).unwrap();
    for eta in [0.1, 0.01, 1e-4] {
        assert!((pt.eta_t_dot(0.75, eta, 0.0) + 0.25).abs() <= 1e-15);
        assert!((pt.eta_k(30, 0.025, 0.0) - 0.5).abs() <= 1e-15);
    }
    assert!(pt.smooth_on_sde_time() && !rm.smooth_on_sde_time());
    assert!(Schedule::polynomial(0.0).unwrap().smooth_on_sde_time());
}

#[test]
fn every_valid_schedule_is_finite_and_positive() {
    for s in valid_schedules() {
        for g in [0.0, 1e-300, 1e-3, 1.0, 1e6, 1e100] {
            for k in [0u64, 1, 1000, u64::MAX / 2] {
                let e = s.eta_k(k, 0.1, g);
                assert!(
                    e.is_finite() && e > 0.0,
                    "{s:?}: eta_k({k}, 0.1, {g}) = {e}"
                );
                let e = s.eta_t(k as f64 * 0.01, 0.01, g);
                assert!(e.is_finite() && e > 0.0, "{s:?}: eta_t = {e}");
            }
        }
        assert!(s.validate().is_ok());
    }
}

#[test]
fn normalization_constants_from_agents() {
    // N = 2, d = 3, ω = (1, 3), σ0 = (0.5, 1), σ1 = (0.2, 0.4):
    // ω̄ = 2, σ1² = 0.1, σ1²ω = 0.26, σ0² = 0.625, σ0²ω = 1.625;
    // A = (2 + 3(0.26 + 0.1))/2 = 1.54, B = 3(0.625 + 1.625)/2 = 3.375.
    let inp = NormalizationInputs::from_agents(3, &[1.0, 3.0], &[0.5, 1.0], &[0.2, 0.4]).unwrap();
    assert!((inp.omega_bar - 2.0).abs() <= 1e-15);
    assert!((inp.sigma1_sq - 0.1).abs() <= 1e-15);
    assert!((inp.sigma1_sq_omega - 0.26).abs() <= 1e-15);
    assert!((inp.sigma0_sq - 0.625).abs() <= 1e-15);
    assert!((inp.sigma0_sq_omega - 1.625).abs() <= 1e-15);
    assert!((inp.a() - 1.54).abs() <= 1e-14);
    assert!((inp.b() - 3.375).abs() <= 1e-14);
    let s = Schedule::normalized_for(0.8, 0.5, 2.0, 1.0, &inp).unwrap();
    match s {
        Schedule::Normalized { a, b, .. } => {
            assert!((a - 1.54).abs() <= 1e-14 && (b - 3.375).abs() <= 1e-14)
        }
        _ => panic!("expected Normalized"),
    }
    // GD limit (§6.3): no noise, no compression, L1 = 0 → η_k = 2εc/L0.
    let gd = NormalizationInputs::from_agents(4, &[0.0; 8], &[0.0; 8], &[0.0; 8]).unwrap();
    assert_eq!((gd.a(), gd.b()), (0.0, 0.0));
    let s = Schedule::normalized_for(1.0, 0.5, 4.0, 0.0, &gd).unwrap();
    assert!((s.eta_k(0, 0.1, 123.0) - 0.25).abs() <= 1e-16);
}

/// The §6.3 condition `η η_t < 2ε / ((L0 + L1‖∇f‖)(1 + A) + L1 B)` holds exactly when `η c < 1`.
#[test]
fn normalized_schedule_meets_the_stability_condition_iff_eta_c_below_one() {
    let (eps, l0, l1, a, b) = (0.5, 4.0, 1.0, 1.54, 3.375);
    for c in [0.5, 1.0, 2.0] {
        let s = Schedule::normalized(c, eps, l0, l1, a, b).unwrap();
        for eta in [0.1, 0.49, 0.51, 0.99, 1.01] {
            for g in [0.0, 0.3, 10.0, 1e4] {
                let lhs = eta * s.eta_k(0, eta, g);
                let rhs = 2.0 * eps / ((l0 + l1 * g) * (1.0 + a) + l1 * b);
                assert_eq!(lhs < rhs, eta * c < 1.0, "c={c} eta={eta} g={g}");
            }
        }
    }
}

#[test]
fn invalid_constants_are_rejected() {
    let name = |e: ModelError| match e {
        ModelError::InvalidParameter { name, .. } => name,
        other => panic!("unexpected {other:?}"),
    };
    assert_eq!(name(Schedule::polynomial(-0.5).unwrap_err()), "power");
    assert_eq!(name(Schedule::poly_time(-0.5, 1.0).unwrap_err()), "power");
    assert_eq!(name(Schedule::poly_time(0.5, 0.0).unwrap_err()), "t0");
    assert!(Schedule::poly_time(0.5, f64::NAN).is_err());
    assert!(Schedule::polynomial(f64::NAN).is_err());
    assert!(Schedule::polynomial(f64::INFINITY).is_err());
    assert_eq!(
        name(Schedule::normalized(0.0, 0.5, 1.0, 1.0, 0.0, 0.0).unwrap_err()),
        "c"
    );
    assert_eq!(
        name(Schedule::normalized(1.0, 0.0, 1.0, 1.0, 0.0, 0.0).unwrap_err()),
        "epsilon"
    );
    assert_eq!(
        name(Schedule::normalized(1.0, 1.0, 1.0, 1.0, 0.0, 0.0).unwrap_err()),
        "epsilon"
    );
    assert_eq!(
        name(Schedule::normalized(1.0, 0.5, -1.0, 1.0, 0.0, 0.0).unwrap_err()),
        "l0"
    );
    assert_eq!(
        name(Schedule::normalized(1.0, 0.5, 1.0, -1.0, 0.0, 0.0).unwrap_err()),
        "l1"
    );
    assert_eq!(
        name(Schedule::normalized(1.0, 0.5, 1.0, 1.0, -0.1, 0.0).unwrap_err()),
        "a"
    );
    assert_eq!(
        name(Schedule::normalized(1.0, 0.5, 1.0, 1.0, 0.0, f64::NAN).unwrap_err()),
        "b"
    );
    // Infinite at ∇f = 0: L0 = 0 and L1·B = 0.
    let e = Schedule::normalized(1.0, 0.5, 0.0, 1.0, 2.0, 0.0).unwrap_err();
    assert!(e.to_string().contains("must stay > 0"), "{e}");
    assert!(Schedule::normalized(1.0, 0.5, 0.0, 1.0, 2.0, 0.1).is_ok());
    assert_eq!(
        name(Schedule::normalized_sgd(1.0, 0.0).unwrap_err()),
        "delta"
    );
    assert_eq!(name(Schedule::normalized_sgd(-1.0, 0.1).unwrap_err()), "c");
    // Hand-built variants can be checked.
    assert!(Schedule::Polynomial { power: -1.0 }.validate().is_err());
    assert!(Schedule::NormalizedSgd {
        c: 1.0,
        delta: f64::NAN
    }
    .validate()
    .is_err());
    // Agent averages.
    assert!(NormalizationInputs::from_agents(3, &[], &[], &[]).is_err());
    assert_eq!(
        NormalizationInputs::from_agents(3, &[1.0, 2.0], &[0.1], &[0.1, 0.2]).unwrap_err(),
        ModelError::DimensionMismatch {
            name: "sigma0".into(),
            expected: 2,
            got: 1
        }
    );
    assert_eq!(
        name(NormalizationInputs::from_agents(3, &[1.0, -2.0], &[0.1; 2], &[0.1; 2]).unwrap_err()),
        "omega[1]"
    );
    assert!(NormalizationInputs::from_agents(0, &[1.0], &[0.1], &[0.1]).is_err());
    let bad = NormalizationInputs {
        omega_bar: 1.0,
        sigma1_sq: 0.0,
        sigma1_sq_omega: 0.0,
        sigma0_sq: 0.0,
        sigma0_sq_omega: 0.0,
        n_agents: 0,
        dim: 2,
    };
    assert!(Schedule::normalized_for(1.0, 0.5, 1.0, 0.0, &bad).is_err());
}
