//! What a study draws and shares: the random numbers it counts follow from its paths,
//! iterations and substeps; one ladder for every model gives each model the numbers a ladder of
//! that model alone gives; the counts do not depend on the thread count.

use compare::study::{
    weak_error_study, weak_error_study_with_cost, RandomNumbers, StudySettings, WeakErrorCurve,
};
use compare::Observable;
use models::{
    Agent, CompressorKind, Dsgd, GaussianNoise, Identity, LossKind, Method, MixedQuadraticQuartic,
    NoiseModel, Optimizer, Schedule, SdeModel,
};

type Opt = Optimizer<LossKind, Method>;

mod common;
use common::study_defaults;

/// DSGD, two heterogeneous agents, d = 2, on a separable mixed loss (no closed form needed).
fn dsgd() -> Opt {
    let agents = (0..2)
        .map(|i| Agent {
            noise: NoiseModel::Gaussian(
                GaussianNoise::isotropic(2, 0.5 + 0.5 * i as f64, 0.0).unwrap(),
            ),
            compressor: CompressorKind::Identity(Identity),
        })
        .collect();
    Optimizer::new(
        LossKind::MixedQuadraticQuartic(
            MixedQuadraticQuartic::new(vec![1.0, 0.5], vec![0.5, 1.0]).unwrap(),
        ),
        Method::Dsgd(Dsgd::new(agents).unwrap()),
        Schedule::constant(),
    )
    .unwrap()
}

fn settings(models: Vec<SdeModel>, substeps: Option<usize>, paths: u64) -> StudySettings {
    StudySettings {
        horizon: 0.8,
        models,
        substeps,
        max_substeps: 64,
        observables: vec![Observable::Loss, Observable::XSq],
        ..study_defaults(&[0.2, 0.1, 0.05], paths, 9, &[1.0, -0.5])
    }
}

#[test]
fn counted_random_numbers_follow_paths_iterations_and_substeps() {
    let opt = dsgd();
    let (paths, c) = (500u64, 3usize);
    let s = settings(SdeModel::ALL.to_vec(), Some(c), paths);
    let (curves, cost) = weak_error_study_with_cost(&opt, &s, None, &|_| {}).unwrap();
    let cdim = opt.coupling_dim() as u64;
    assert!(cdim > 0);
    let d = 2u64;
    let mut total = 0;
    for &eta in &s.etas {
        let k = s.iterations(eta) as u64;
        // Per iteration: the coupling normals, and a Brownian bridge of 2c normals per component
        // for the fine level (the coarse level sums pairs of them).
        let expect = RandomNumbers {
            discrete: Some(paths * k * cdim),
            sde: paths * k * 2 * c as u64 * d,
        };
        for curve in &curves {
            let p = curve.points.iter().find(|p| p.eta == eta).unwrap();
            assert_eq!(p.random_numbers, expect, "{:?} at eta = {eta}", curve.model);
        }
        // One ladder for the three models: the shared numbers are drawn once.
        total += expect.discrete.unwrap() + expect.sde;
    }
    assert_eq!(cost.random_numbers, total);
    assert_eq!(cost.ladder_runs, s.etas.len() as u64);
}

fn same_points(a: &WeakErrorCurve, b: &WeakErrorCurve) {
    assert_eq!(a.points.len(), b.points.len());
    for (p, q) in a.points.iter().zip(&b.points) {
        assert_eq!(p.substeps, q.substeps);
        assert_eq!(p.refinement, q.refinement);
        assert_eq!(
            p.weak_error.map(f64::to_bits),
            q.weak_error.map(f64::to_bits)
        );
        assert_eq!(p.ci95.map(f64::to_bits), q.ci95.map(f64::to_bits));
        assert_eq!(
            p.integrator_bias.map(f64::to_bits),
            q.integrator_bias.map(f64::to_bits)
        );
        assert_eq!(p.discrete.final_mean, q.discrete.final_mean);
        assert_eq!(p.sde.final_mean, q.sde.final_mean);
    }
}

/// The models of one learning rate share a ladder (one discrete side; models refining to
/// different substeps get their own increments): each model's points are bit for bit those of a
/// study of that model alone.
#[test]
fn one_ladder_for_all_models_gives_each_model_its_own_numbers() {
    let opt = dsgd();
    let all = weak_error_study(
        &opt,
        &settings(SdeModel::ALL.to_vec(), None, 3000),
        None,
        &|_| {},
    )
    .unwrap();
    let levels: std::collections::BTreeSet<usize> = all
        .iter()
        .flat_map(|c| c.points.iter().map(|p| p.substeps))
        .collect();
    for model in SdeModel::ALL {
        let alone =
            weak_error_study(&opt, &settings(vec![model], None, 3000), None, &|_| {}).unwrap();
        for c in &alone {
            let shared = all
                .iter()
                .find(|a| a.model == model && a.observable == c.observable)
                .unwrap();
            same_points(shared, c);
        }
    }
    assert!(!levels.is_empty());
}

#[test]
fn counts_do_not_depend_on_the_thread_count() {
    let opt = dsgd();
    let s = settings(SdeModel::ALL.to_vec(), None, 3000);
    let run = |threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| weak_error_study_with_cost(&opt, &s, None, &|_| {}).unwrap())
    };
    let (c1, k1) = run(1);
    let (c2, k2) = run(2);
    assert_eq!(k1, k2);
    for (a, b) in c1.iter().zip(&c2) {
        same_points(a, b);
        for (p, q) in a.points.iter().zip(&b.points) {
            assert_eq!(p.random_numbers, q.random_numbers);
        }
    }
}
