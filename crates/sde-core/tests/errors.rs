//! Bad input is an error whose message names the offending quantity, never a panic or a wrong
//! number.

use sde_core::problems::{
    matrix_from_row_major, DiagonalLinear, GeometricBrownianMotion, LinearSde, Matrix,
    OrnsteinUhlenbeck, TimeDependentLinear,
};
use sde_core::*;

/// The error's message contains every one of `parts`.
fn says(err: &SdeError, parts: &[&str]) {
    let msg = err.to_string();
    for p in parts {
        assert!(msg.contains(p), "message {msg:?} lacks {p:?}");
    }
}

fn scalar_gbm() -> impl Sde {
    SdeFn::new(
        1,
        NoiseShape::Scalar,
        |_t, x: &[f64], a: &mut [f64]| a[0] = 0.1 * x[0],
        |_t, x: &[f64], b: &mut [f64]| b[0] = 0.2 * x[0],
    )
    .unwrap()
}

#[test]
fn mismatched_initial_state_length() {
    let sde = scalar_gbm();
    let solver = Solver::new(&sde, EulerMaruyama, Gaussian).unwrap();
    let grid = Grid::new(0.0, 1.0, 10).unwrap();
    let err = SdePaths::new(solver.clone(), grid, &[1.0, 2.0])
        .err()
        .unwrap();
    assert_eq!(
        err,
        SdeError::DimensionMismatch {
            what: "x0",
            expected: 1,
            got: 2
        }
    );
    says(&err, &["x0", "expected 1", "got 2"]);
    says(
        &SdePaths::new(solver.clone(), grid, &[]).err().unwrap(),
        &["x0", "got 0"],
    );
    says(
        &solver.check_state(&[1.0; 3]).unwrap_err(),
        &["x0", "got 3"],
    );
    // A 3-D problem given a 2-D state.
    let diag = DiagonalLinear::new(vec![0.1; 3], vec![0.2; 3]).unwrap();
    let solver = Solver::new(&diag, Milstein::default(), Gaussian).unwrap();
    says(
        &SdePaths::new(solver, grid, &[1.0, 1.0]).err().unwrap(),
        &["x0", "expected 3", "got 2"],
    );
}

#[test]
fn non_positive_or_non_finite_step() {
    for h in [0.0, -0.1, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let err = Grid::with_step(0.0, h, 10).unwrap_err();
        assert!(
            matches!(err, SdeError::InvalidParameter { name: "h", .. }),
            "{err:?}"
        );
        says(&err, &["`h`", &h.to_string(), "positive and finite"]);
    }
    // An empty or reversed interval is a non-positive step too; it names the end time.
    for t1 in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        says(&Grid::new(0.0, t1, 10).unwrap_err(), &["`t1`", "after t0"]);
    }
    says(
        &Grid::new(f64::NAN, 1.0, 10).unwrap_err(),
        &["`t0`", "finite"],
    );
}

#[test]
fn zero_steps() {
    for err in [
        Grid::new(0.0, 1.0, 0).unwrap_err(),
        Grid::with_step(0.0, 0.1, 0).unwrap_err(),
    ] {
        assert!(matches!(
            err,
            SdeError::InvalidParameter { name: "steps", .. }
        ));
        says(&err, &["`steps` = 0", "at least 1"]);
    }
}

#[test]
fn save_every_must_divide_the_steps() {
    let grid = Grid::new(0.0, 1.0, 10).unwrap();
    for k in [3, 4, 11, 0] {
        let err = grid.save_every(k).unwrap_err();
        says(&err, &["`save_every`", &format!("= {k}"), "divisor"]);
    }
    for k in [1, 2, 5, 10] {
        assert_eq!(grid.save_every(k).unwrap().n_save(), 10 / k + 1);
    }
}

#[test]
fn fewer_than_two_paths() {
    for paths in [0, 1] {
        let err = Ensemble::new(paths, 7).unwrap_err();
        assert!(matches!(
            err,
            SdeError::InvalidParameter { name: "paths", .. }
        ));
        says(&err, &["`paths`", &format!("= {paths}"), "at least 2"]);
    }
    assert!(Ensemble::new(2, 7).is_ok());
}

#[test]
fn milstein_rejects_non_commutative_noise() {
    let nc = LinearSde::noncommutative_2d();
    for scheme in [Milstein::default(), Milstein::derivative_free()] {
        let err = Solver::new(&nc, scheme, Gaussian).err().unwrap();
        assert!(matches!(err, SdeError::UnsupportedNoise { .. }), "{err:?}");
        says(&err, &["milstein", "non-commutative", "m = 2", "Lévy"]);
    }
    // The same through closures, with the shape declared by hand.
    let f = SdeFn::new(
        2,
        NoiseShape::General {
            m: 2,
            commutative: false,
        },
        |_t, x: &[f64], a: &mut [f64]| a.copy_from_slice(x),
        |_t, x: &[f64], b: &mut [f64]| {
            b.fill(0.0);
            b[0] = x[0];
            b[3] = x[0];
        },
    )
    .unwrap();
    says(
        &Solver::new(&f, Milstein::default(), Gaussian)
            .err()
            .unwrap(),
        &["milstein", "non-commutative"],
    );
    // Declared commutative, the same shape is accepted; so is every other scheme.
    assert!(Solver::new(&LinearSde::commutative_2d(), Milstein::default(), Gaussian).is_ok());
    assert!(Solver::new(&nc, EulerMaruyama, Gaussian).is_ok());
    assert!(Solver::new(&nc, PlatenWeak2, ThreePoint).is_ok());
}

#[test]
fn weak2_rejects_two_point_increments() {
    let sde = scalar_gbm();
    let err = Solver::new(&sde, PlatenWeak2, TwoPoint).err().unwrap();
    assert_eq!(
        err,
        SdeError::IncrementsTooCoarse {
            scheme: "weak2",
            weak_order: 2.0,
            increments: "two_point",
            increment_order: 1.0,
        }
    );
    says(
        &err,
        &["weak2", "weak order 2", "two_point", "up to weak order 1"],
    );
    // Refined two-point increments are no finer.
    assert!(Solver::new(&sde, PlatenWeak2, Refined::new(TwoPoint, 4)).is_err());
    // Enough for weak order 1, and three-point or Gaussian increments for weak order 2.
    assert!(Solver::new(&sde, EulerMaruyama, TwoPoint).is_ok());
    assert!(Solver::new(&sde, Milstein::default(), TwoPoint).is_ok());
    assert!(Solver::new(&sde, PlatenWeak2, ThreePoint).is_ok());
    assert!(Solver::new(&sde, PlatenWeak2, Gaussian).is_ok());
}

#[test]
fn dimension_zero() {
    let err = SdeFn::new(
        0,
        NoiseShape::Scalar,
        |_t, _x: &[f64], _a: &mut [f64]| {},
        |_t, _x: &[f64], _b: &mut [f64]| {},
    )
    .err()
    .unwrap();
    assert!(matches!(
        err,
        SdeError::InvalidParameter { name: "dim", .. }
    ));
    says(&err, &["`dim` = 0", "at least 1"]);
    for noise in [
        NoiseShape::General {
            m: 0,
            commutative: true,
        },
        NoiseShape::Additive { m: 0 },
    ] {
        let err = SdeFn::new(
            2,
            noise,
            |_t, _x: &[f64], _a: &mut [f64]| {},
            |_t, _x: &[f64], _b: &mut [f64]| {},
        )
        .err()
        .unwrap();
        says(&err, &["`m` = 0", "noise dimension"]);
    }
    // The problem library checks the same.
    says(
        &DiagonalLinear::new(vec![], vec![]).unwrap_err(),
        &["`dim` = 0"],
    );
    says(
        &LinearSde::new(Matrix::zeros(0, 0), vec![]).unwrap_err(),
        &["`dim` = 0"],
    );
    says(
        &LinearSde::new(Matrix::identity(2, 2), vec![]).unwrap_err(),
        &["`m` = 0"],
    );
    says(
        &OrnsteinUhlenbeck::new(Matrix::zeros(0, 0), vec![], Matrix::zeros(0, 1)).unwrap_err(),
        &["`dim` = 0"],
    );
    says(
        &OrnsteinUhlenbeck::new(Matrix::identity(2, 2), vec![0.0; 2], Matrix::zeros(2, 0))
            .unwrap_err(),
        &["`m` = 0"],
    );
}

#[test]
fn problem_library_rejects_inconsistent_parameters() {
    says(
        &DiagonalLinear::new(vec![0.1, 0.2], vec![0.3]).unwrap_err(),
        &["`b`", "expected 2", "got 1"],
    );
    says(
        &DiagonalLinear::new(vec![0.1, f64::NAN], vec![0.3, 0.3]).unwrap_err(),
        &["`a`", "NaN", "finite"],
    );
    says(
        &GeometricBrownianMotion::new(f64::INFINITY, 0.2).unwrap_err(),
        &["`mu`", "inf", "finite"],
    );
    says(
        &TimeDependentLinear::new(0.0, 0.0, 0.0, f64::NAN).unwrap_err(),
        &["`b1`", "finite"],
    );
    says(
        &OrnsteinUhlenbeck::new(Matrix::identity(2, 2), vec![0.0; 3], Matrix::identity(2, 2))
            .unwrap_err(),
        &["`mu`", "expected 2", "got 3"],
    );
    says(
        &OrnsteinUhlenbeck::new(Matrix::identity(2, 2), vec![0.0; 2], Matrix::identity(3, 3))
            .unwrap_err(),
        &["`sigma rows`", "expected 2", "got 3"],
    );
    says(
        &LinearSde::new(Matrix::identity(2, 2), vec![Matrix::identity(3, 3)]).unwrap_err(),
        &["`B_j rows`", "expected 2", "got 3"],
    );
    says(
        &LinearSde::new(Matrix::zeros(2, 3), vec![Matrix::identity(2, 2)]).unwrap_err(),
        &["`A columns`", "expected 2", "got 3"],
    );
    says(
        &matrix_from_row_major(2, 2, &[1.0; 3]).unwrap_err(),
        &["`matrix data`", "expected 4", "got 3"],
    );
}

#[test]
fn divergence_threshold_must_be_positive() {
    let sde = scalar_gbm();
    let solver = Solver::new(&sde, EulerMaruyama, Gaussian).unwrap();
    let grid = Grid::new(0.0, 1.0, 10).unwrap();
    for th in [0.0, -1.0, f64::NAN] {
        let err = SdePaths::new(solver.clone(), grid, &[1.0])
            .unwrap()
            .diverge_above(th)
            .err()
            .unwrap();
        says(&err, &["`diverge_above`", "positive"]);
    }
}
