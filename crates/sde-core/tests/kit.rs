//! The test kit itself: a scheme written outside the crate (the one of `crates/sde-core/README.md`)
//! gets its convergence tests from one line per problem, and the kit's checks fail when a scheme
//! declares an order it does not have.

use sde_core::testing::*;
use sde_core::*;

/// The README's example: Euler–Maruyama through `diffusion_mul`, declaring strong order 1/2 and
/// weak order 1 (or other orders, to see the kit reject them).
#[derive(Clone, Copy, Debug)]
struct MyScheme {
    strong: f64,
    weak: f64,
}

const MY_SCHEME: MyScheme = MyScheme {
    strong: 0.5,
    weak: 1.0,
};

impl Scheme for MyScheme {
    type Workspace = StepBuffers;
    fn info(&self) -> SchemeInfo {
        SchemeInfo {
            name: "my_scheme",
            strong_order: Some(self.strong),
            weak_order: self.weak,
        }
    }
    fn workspace<S: Sde + ?Sized>(&self, sde: &S) -> StepBuffers {
        StepBuffers::new(sde)
    }
    fn step<S: Sde + ?Sized>(&self, sde: &S, x: &mut [f64], st: Step<'_>, ws: &mut StepBuffers) {
        sde.drift(st.t, x, &mut ws.a, &mut ws.scratch);
        sde.diffusion_mul(st.t, x, st.dw, &mut ws.bdw, &mut ws.b, &mut ws.scratch);
        for ((xi, ai), gi) in x.iter_mut().zip(&ws.a).zip(&ws.bdw) {
            *xi += ai * st.h + gi;
        }
    }
}

#[test]
fn readme_scheme_gets_its_orders_from_the_kit() {
    let gbm = GeometricBrownianMotion::new(0.1, 0.5).unwrap();
    check_strong("MyScheme, GBM", &gbm, MY_SCHEME, &[1.0], 11);
    check_chain_order("MyScheme, GBM", &gbm, &MY_SCHEME, &TWO_POINT, 0, &[1.0]);
    check_chain_order(
        "MyScheme, OU 2-D",
        &OrnsteinUhlenbeck::spiral_2d(),
        &MY_SCHEME,
        &TWO_POINT,
        0,
        &[2.0, -1.0],
    );
}

#[test]
#[should_panic(expected = "declared order 2")]
fn chain_order_rejects_a_wrong_declared_weak_order() {
    let gbm = GeometricBrownianMotion::new(1.0, 0.8).unwrap();
    let wrong = MyScheme {
        weak: 2.0,
        ..MY_SCHEME
    };
    check_chain_order("weak 2 claimed", &gbm, &wrong, &TWO_POINT, 0, &[1.0]);
}

#[test]
#[should_panic(expected = "declared order 1 outside")]
fn strong_check_rejects_a_wrong_declared_strong_order() {
    let gbm = GeometricBrownianMotion::new(0.1, 0.5).unwrap();
    let wrong = MyScheme {
        strong: 1.0,
        ..MY_SCHEME
    };
    check_strong("strong 1 claimed", &gbm, wrong, &[1.0], 11);
}

#[test]
#[should_panic(expected = "declares no strong order")]
fn a_weak_scheme_has_no_strong_order_to_check() {
    declared_strong_order(&PlatenWeak2);
}

/// The margins are half-open like the ranges they replace: `declared − below ≤ slope <
/// declared + above`.
#[test]
fn margins_are_the_ranges_they_replace() {
    let m = Margin::from((0.1, 0.15));
    assert!(m.admits(1.9, 2.0) && m.admits(2.149, 2.0));
    assert!(!m.admits(1.899, 2.0) && !m.admits(2.15, 2.0));
    assert_eq!(Margin::from(0.05), Margin::from((0.05, 0.05)));
    let fit = fit_order(&[0.1, 0.05, 0.025], &[1e-2, 2.5e-3, 6.25e-4]).unwrap();
    assert!((fit.slope - 2.0).abs() < 1e-12);
    assert_order("exact square", &fit, 2.0, 1e-9);
    let caught = std::panic::catch_unwind(|| assert_order("exact square", &fit, 1.0, 0.5));
    assert!(caught.is_err());
    assert!((assert_local_order("halving", &[4e-2, 1e-2], 2.0, 1e-12) - 2.0).abs() < 1e-12);
}
