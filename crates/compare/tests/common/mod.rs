//! What the study tests share: DSGD on diagonal quadratics (every expectation in closed form,
//! MATH.md §7) and the study's default settings.
// Each test file uses a subset.
#![allow(dead_code)]

use compare::study::{StudySettings, DEFAULT_MAX_SUBSTEPS};
use compare::Observable;
use models::{
    Agent, CompressorKind, DiagonalQuadratic, Dsgd, GaussianNoise, Identity, LossKind, Method,
    NoiseModel, Optimizer, Schedule, SdeModel,
};
use sde_core::{IncrementKind, SchemeKind};

pub type Opt = Optimizer<LossKind, Method>;

/// DSGD on f = Σ λ_j x_j²/2 with `agents` agents of additive isotropic noise `sigma`.
pub fn dsgd_quadratic(lambda: &[f64], sigma: f64, agents: usize, schedule: Schedule) -> Opt {
    let d = lambda.len();
    let agents = (0..agents)
        .map(|_| Agent {
            noise: NoiseModel::Gaussian(GaussianNoise::isotropic(d, sigma, 0.0).unwrap()),
            compressor: CompressorKind::Identity(Identity),
        })
        .collect();
    Optimizer::new(
        DiagonalQuadratic::new(lambda.to_vec()).unwrap().into(),
        Method::Dsgd(Dsgd::new(agents).unwrap()),
        schedule,
    )
    .unwrap()
}

/// The study's defaults (weak2, substeps chosen by the study, every model, coupled) over
/// `horizon = 1`, observing `x` and `x²`.
pub fn study_defaults(etas: &[f64], paths: u64, seed: u64, x0: &[f64]) -> StudySettings {
    StudySettings {
        etas: etas.to_vec(),
        horizon: 1.0,
        paths,
        seed,
        x0: x0.to_vec(),
        models: SdeModel::ALL.to_vec(),
        scheme: SchemeKind::Weak2,
        increments: IncrementKind::Gaussian,
        substeps: None,
        max_substeps: DEFAULT_MAX_SUBSTEPS,
        observables: vec![Observable::X, Observable::XSq],
        diverge_above: 1e8,
        common_random_numbers: true,
        exact_reference: false,
        target_rel_ci: None,
        max_paths: None,
    }
}

/// The reported integrator-bias bound of `p` covers `truth`, the true bias at iterations
/// `k = 1..K`, at every iteration, and the estimate at the maximising iteration lies within the
/// bound of the truth there. `label` names the case (and the levels) in the messages.
pub fn assert_bias_bound_covers(label: &str, p: &compare::study::WeakErrorPoint, truth: &[f64]) {
    let worst = truth.iter().fold(0.0f64, |m, b| m.max(b.abs()));
    let bound = p.integrator_bias_bound.unwrap();
    let k = p.at_iteration.unwrap();
    let est = p.integrator_bias.unwrap();
    eprintln!(
        "{label}: true bias max {worst:.3e}, at k = {k} {:.3e}; estimate {est:.3e}, bound {bound:.3e}",
        truth[k - 1]
    );
    assert!(worst > 0.0, "{label}: no bias to bound");
    assert!(
        bound >= worst,
        "{label}: bound {bound:.3e} < true {worst:.3e}"
    );
    assert!(
        (est - truth[k - 1]).abs() <= bound,
        "{label}: estimate {est:.3e} vs true {:.3e}, bound {bound:.3e}",
        truth[k - 1]
    );
}
