//! The cost levers of a study at its defaults, checked against exact references: the bias-only
//! level runs on a subset of the paths and its bound still covers the integrator's true bias
//! (the exact chain expectation of the scheme on DSGD's quadratic, where every SDE model is an
//! Ornstein–Uhlenbeck process), and `target_rel_ci` grows the paths in batches, stops when the
//! target is reached, and gives the same bits for any thread count.

use compare::study::{
    weak_error_study, weak_error_study_with_cost, SdeEstimator, StudySettings, WeakErrorCurve,
};
use compare::Observable;
use models::{Schedule, SdeModel};
use sde_core::testing::{chain_moments, THREE_POINT};
use sde_core::PlatenWeak2;

mod common;
use common::{assert_bias_bound_covers, dsgd_quadratic, study_defaults, Opt};

/// DSGD on f = x²/2 (1-D) with one agent of additive noise σ = 1.
fn parabola() -> Opt {
    dsgd_quadratic(&[1.0], 1.0, 1, Schedule::constant())
}

fn settings(etas: &[f64], paths: u64, model: SdeModel) -> StudySettings {
    StudySettings {
        models: vec![model],
        observables: vec![Observable::X],
        ..study_defaults(etas, paths, 21, &[1.0])
    }
}

/// The true integrator bias of the reported value at every iteration `k = 1..K`: the exact mean
/// of the weak-2 chain at `substeps` steps per iteration (three-point increments share the
/// Gaussian moments the step uses: it is affine in x and quadratic in ΔW), or at the defaults the
/// Richardson extrapolation `E_{4b} + (E_{4b} − E_{2b})/3` of such means, minus the exact mean of
/// the Ornstein–Uhlenbeck process `dX = −a X dt + √η dW`.
fn true_bias(opt: &Opt, model: SdeModel, eta: f64, iters: usize, substeps: usize) -> Vec<f64> {
    let fine = level_bias(opt, model, eta, iters, substeps);
    if !substeps.is_multiple_of(4) {
        return fine;
    }
    let mid = level_bias(opt, model, eta, iters, substeps / 2);
    fine.iter()
        .zip(&mid)
        .map(|(f, m)| f + (f - m) / 3.0)
        .collect()
}

fn level_bias(opt: &Opt, model: SdeModel, eta: f64, iters: usize, substeps: usize) -> Vec<f64> {
    let sde = opt.sde(model, eta).unwrap();
    let a = match model {
        SdeModel::FirstOrder => 1.0,
        SdeModel::SecondOrder => 1.0 + eta / 2.0,
        SdeModel::Stability => 1.0 - eta / 2.0,
    };
    (1..=iters)
        .map(|k| {
            let t = k as f64 * eta;
            let (m, _) =
                chain_moments(&sde, &PlatenWeak2, &THREE_POINT, 0, t, k * substeps, &[1.0]);
            m[0] - (-a * t).exp()
        })
        .collect()
}

/// Checks the reported bias bound of the single point of `s` against the true bias.
fn check_bound(opt: &Opt, s: &StudySettings) -> (u64, u64) {
    let model = s.models[0];
    let curves = weak_error_study(opt, s, None, &|_| {}).unwrap();
    let p = &curves[0].points[0];
    assert_eq!(p.sde_estimator, SdeEstimator::Richardson);
    let last = p.refinement.last().unwrap();
    assert_eq!(last.paths, s.paths);
    assert_eq!(p.sde.paths, s.paths);
    let truth = true_bias(opt, model, p.eta, p.iterations, p.substeps);
    let label = format!(
        "{model:?} eta {}: {} substeps, bias paths {} of {}",
        p.eta, p.substeps, last.bias_paths, last.paths
    );
    assert_bias_bound_covers(&label, p, &truth);
    (last.bias_paths, last.paths)
}

/// The reported bound (a 95% bound: `|b| + z se`, with the bias level's own standard error on the
/// paths it ran on) covers the true bias of the reported level at every iteration, and the
/// estimate at the maximising iteration lies within the bound of the truth: with the fine level
/// capped at 4 substeps (a bias well above zero), and at the defaults where the finer levels run
/// on a subset of the paths.
#[test]
fn bias_bound_covers_the_true_integrator_bias_with_a_subset() {
    let opt = parabola();
    for model in [SdeModel::SecondOrder, SdeModel::FirstOrder] {
        let mut s = settings(&[0.1], 40_000, model);
        s.max_substeps = 4;
        check_bound(&opt, &s);
    }
    let mut subset = false;
    for eta in [0.025, 0.0125] {
        let mut s = settings(&[eta], 40_000, SdeModel::Stability);
        s.observables = vec![Observable::X, Observable::XSq, Observable::Loss];
        // Independent ensembles: the weak error's spread is that of the processes, far above
        // the levels' differences, and the finer levels run on a subset.
        s.common_random_numbers = false;
        let (bias_paths, paths) = check_bound(&opt, &s);
        subset |= bias_paths < paths;
    }
    assert!(subset, "the bias level ran on every path");
}

/// The study's SDE substeps against those of its finest level alone on every path (at the
/// defaults the extrapolation of three levels `b, 2b, 4b`): never more than the probe plus the
/// three levels on every path (7/4 ×), less where the subsets apply.
#[test]
fn bias_level_cost_is_counted() {
    let opt = parabola();
    let s = settings(&[0.1, 0.05], 40_000, SdeModel::SecondOrder);
    let (_, cost) = weak_error_study_with_cost(&opt, &s, None, &|_| {}).unwrap();
    let ratio = cost.sde_steps as f64 / cost.reported_sde_steps as f64;
    eprintln!("{cost:?}: ratio {ratio:.3}");
    assert!(
        (0.25..=1.75 * 17.0 / 16.0).contains(&ratio),
        "ratio {ratio}"
    );
    assert_eq!(cost.discrete_steps, (10 + 20) * (2_500 + 40_000));
}

fn in_pool<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
        .install(f)
}

fn run(s: &StudySettings, threads: usize) -> Vec<WeakErrorCurve> {
    let opt = parabola();
    in_pool(threads, || {
        weak_error_study(&opt, s, None, &|_| {}).unwrap()
    })
}

/// A reachable target stops the growth early: every point meets it with fewer paths than the
/// budget, and no warning is given.
#[test]
fn target_rel_ci_stops_early_when_reached() {
    let mut s = settings(&[0.1, 0.05], 64_000, SdeModel::FirstOrder);
    s.target_rel_ci = Some(0.2);
    let curves = run(&s, 2);
    let c = &curves[0];
    for p in &c.points {
        assert_eq!(p.target_rel_ci_met, Some(true));
        assert!(p.ci95.unwrap() <= 0.2 * p.weak_error.unwrap());
        assert!(p.sde.paths < s.paths, "{} paths", p.sde.paths);
    }
    assert!(c.warnings.iter().all(|w| !w.contains("target_rel_ci")));
}

/// An unreachable target spends the budget in doubling batches, says so, and the result is the
/// same, bit for bit, at 1 and 2 threads.
#[test]
fn target_rel_ci_grows_in_batches_and_is_thread_independent() {
    let mut s = settings(&[0.1, 0.05], 16_000, SdeModel::SecondOrder);
    s.target_rel_ci = Some(0.01);
    let one = run(&s, 1);
    let two = run(&s, 2);
    assert_eq!(format!("{one:?}"), format!("{two:?}"));
    let c = &one[0];
    for p in &c.points {
        assert_eq!(p.target_rel_ci_met, Some(false));
        assert_eq!(p.sde.paths, s.paths);
        let paths: Vec<u64> = p.refinement.iter().map(|r| r.paths).collect();
        assert!(
            paths
                .windows(2)
                .any(|w| w[1] == 2 * w[0] && w[1] <= s.paths),
            "{paths:?}"
        );
    }
    assert!(c.warnings.iter().any(|w| w.contains("run.target_rel_ci")));
}

#[test]
fn target_rel_ci_out_of_range_names_the_setting() {
    let opt = parabola();
    for t in [0.0, 1.0, f64::NAN] {
        let mut s = settings(&[0.1], 4000, SdeModel::FirstOrder);
        s.target_rel_ci = Some(t);
        let e = weak_error_study(&opt, &s, None, &|_| {}).unwrap_err();
        assert!(format!("{e}").contains("target_rel_ci"), "{e}");
    }
}
