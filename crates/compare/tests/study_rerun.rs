//! The study's second stage (`StudySettings::max_paths`): a learning rate at which a curve is
//! unresolved only for want of paths runs again on fresh streams, and only the rerun is reported.

mod common;

use common::{dsgd_quadratic, study_defaults};
use compare::streams::rerun_seed;
use compare::study::{
    paths_needed, rerun_plan, weak_error_study, StudySettings, Verdict, WeakErrorCurve,
    WeakErrorPoint,
};
use compare::Observable;
use models::{Schedule, SdeModel};

/// DSGD on x²/2 with unit noise, one agent, independent ensembles (no coupling): the weak error
/// of (A) on x² falls as η while the Monte Carlo error does not, so 1000 paths leave the smallest
/// learning rates on a Monte Carlo floor.
fn settings(max_paths: Option<u64>) -> StudySettings {
    StudySettings {
        models: vec![SdeModel::FirstOrder],
        observables: vec![Observable::XSq],
        common_random_numbers: false,
        max_paths,
        ..study_defaults(&[0.4, 0.2, 0.1, 0.05], 1000, 3, &[2.0])
    }
}

fn bits(p: &WeakErrorPoint) -> [Option<u64>; 3] {
    [
        p.weak_error.map(f64::to_bits),
        p.ci95.map(f64::to_bits),
        p.ci95_monte_carlo.map(f64::to_bits),
    ]
}

fn study(s: &StudySettings) -> Vec<WeakErrorCurve> {
    let opt = dsgd_quadratic(&[1.0], 1.0, 1, Schedule::constant());
    weak_error_study(&opt, s, None, &|_| {}).expect("study runs")
}

#[test]
fn a_floor_point_is_rerun_on_fresh_streams_and_only_the_rerun_is_reported() {
    let one = study(&settings(None));
    let c1 = &one[0];
    assert_eq!(c1.verdict, Verdict::Unresolved, "{:?}", c1.verdict_reasons);
    assert!(
        c1.verdict_reasons
            .iter()
            .any(|r| r.contains("Monte Carlo floor")),
        "{:?}",
        c1.verdict_reasons
    );
    let s = settings(Some(8000));
    let plan = rerun_plan(&one, &s).expect("a floor within 4x the paths is rerun");
    let two = study(&s);
    let c2 = &two[0];
    let mut rerun = 0;
    for (i, (p1, p2)) in c1.points.iter().zip(&c2.points).enumerate() {
        match plan.iter().find(|(ei, _, _)| *ei == i) {
            None => {
                // Not rerun: the first stage's point, bit for bit.
                assert!(p2.rerun.is_none());
                assert_eq!(bits(p1), bits(p2), "eta = {}", p1.eta);
            }
            Some((_, paths, asked_by)) => {
                rerun += 1;
                assert!(*paths > 1000 && *paths <= 8000, "{paths}");
                let r = p2.rerun.as_ref().expect("a rerun point says so");
                // What the first stage measured is kept beside it.
                assert_eq!(r.first_paths, 1000);
                assert_eq!(r.first_weak_error.map(f64::to_bits), bits(p1)[0]);
                assert_eq!(r.first_ci95.map(f64::to_bits), bits(p1)[1]);
                assert_eq!(r.first_random_numbers, p1.random_numbers);
                assert_eq!(&r.asked_by, asked_by);
                assert!(asked_by[0].starts_with("first_order x_sq: Monte Carlo floor"));
                assert_eq!(r.seed, rerun_seed(3));
                assert_eq!(p2.discrete.paths, *paths);
                assert_eq!(p2.sde.paths, *paths);
                // The rerun is the point of a one-stage study at the rerun's seed and paths:
                // its streams are those of the seed tree below `rerun_seed`, not the first
                // stage's (whose numbers decided that it runs, and would bias it).
                let fresh = study(&StudySettings {
                    paths: *paths,
                    seed: rerun_seed(3),
                    ..settings(None)
                });
                assert_eq!(bits(&fresh[0].points[i]), bits(p2), "eta = {}", p2.eta);
                assert_ne!(bits(p1), bits(p2));
            }
        }
    }
    assert!(rerun >= 1);
    // Its interval shrank as 1/sqrt(paths): the Monte Carlo floor is gone.
    assert_eq!(c2.verdict, Verdict::Resolved, "{:?}", c2.verdict_reasons);
}

#[test]
fn no_second_stage_at_max_paths_equal_to_paths_or_above_the_cap() {
    let one = study(&settings(None));
    let same = study(&settings(Some(1000)));
    for (a, b) in one[0].points.iter().zip(&same[0].points) {
        assert!(b.rerun.is_none());
        assert_eq!(bits(a), bits(b));
    }
    assert!(rerun_plan(&one, &settings(Some(1000))).is_none());
    // A cap below what the threshold needs: not rerun (it could not resolve the curve).
    let (need, _) = paths_needed(&one[0], 1_000_000).expect("paths can resolve it");
    let most = *need.iter().max().expect("points");
    assert!(most > 1000);
    assert!(paths_needed(&one[0], 1001).is_none());
}

#[test]
fn max_paths_below_paths_or_with_target_rel_ci_is_refused() {
    let opt = dsgd_quadratic(&[1.0], 1.0, 1, Schedule::constant());
    let e = weak_error_study(&opt, &settings(Some(999)), None, &|_| {}).unwrap_err();
    assert!(e.to_string().contains("max_paths"), "{e}");
    let s = StudySettings {
        target_rel_ci: Some(0.3),
        ..settings(Some(2000))
    };
    let e = weak_error_study(&opt, &s, None, &|_| {}).unwrap_err();
    assert!(e.to_string().contains("target_rel_ci"), "{e}");
}
