//! Properties every schedule has: η_{t_k} = η_k, η̇_t and ∂η_t/∂‖g‖ against finite differences,
//! finite positive values. Each schedule's own values, constants and refusals are tested in its
//! file (`crates/models/src/schedule/<name>.rs`).

use models::schedule::{PolyTime, Polynomial};
use models::Schedule;

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
fn only_the_normalized_schedules_depend_on_the_gradient() {
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
        if !matches!(s, Schedule::Poly(Polynomial { power }) | Schedule::PolyTime(PolyTime { power, .. }) if power > 0.0)
        {
            assert_eq!(s.eta_t_dot(1.0, 0.1, 2.0), 0.0);
        }
    }
}

/// `∂η_t/∂‖g‖` (the `∇_x η_t · m` term of the SDE models) against central differences in `g`,
/// away from `normalized_sgd`'s kink at `g = δ`.
#[test]
fn grad_norm_derivative_matches_finite_differences() {
    for s in valid_schedules() {
        for g in [0.003, 0.3, 1.3, 40.0] {
            let (t, eta) = (0.7, 0.1);
            let h = 1e-6 * g;
            let fd = (s.eta_t(t, eta, g + h) - s.eta_t(t, eta, g - h)) / (2.0 * h);
            let d = s.grad_norm_derivative(t, eta, g);
            assert!(
                (fd - d).abs() <= 1e-7 * (1.0 + d.abs()) * (1.0 + 1.0 / g),
                "{s:?} g={g}: fd {fd} vs {d}"
            );
            if !s.depends_on_gradient() {
                assert_eq!(d, 0.0);
            }
        }
    }
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
