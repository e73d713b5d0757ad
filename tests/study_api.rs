//! A weak-error study through the public APIs of `models`, `sde-core` and `compare` only, end to
//! end, against a closed form the study does not know.
//!
//! DCSGD with Bernoulli sparsification on the quadratic `f = Σ_j λ_j x_j²/2`: the compressor is
//! unbiased and the gradient linear, so whatever the noise and the compression,
//! `E x_k = (1 − ηλ)^k x0` for the discrete method, `E X_t = e^{−λt} x0` for model (A) (drift
//! `−∇f`) and `E X_t = e^{−λ(1 + ηλ/2)t} x0` for model (B) (drift `−∇(f + (η/4)‖∇f‖²)`). The
//! weak error of the observable `Σ_j x_j` is then `max_k |Σ_j x0_j (mean_discrete − mean_sde)|`.

use compare::study::{weak_error_study, StudySettings, DEFAULT_MAX_SUBSTEPS};
use compare::Observable;
use models::{
    Agent, BernoulliSparsifier, CompressorKind, Dcsgd, DiagonalQuadratic, GaussianNoise, LossKind,
    Method, NoiseModel, Optimizer, Schedule, SdeModel,
};
use sde_core::{IncrementKind, SchemeKind};

const LAMBDA: [f64; 2] = [1.0, 2.0];
// Same signs: the two coordinates add their errors instead of cancelling them.
const X0: [f64; 2] = [1.0, 0.5];

fn optimizer() -> Optimizer<LossKind, Method> {
    let agent = Agent {
        noise: NoiseModel::Gaussian(GaussianNoise::isotropic(2, 0.3, 0.2).unwrap()),
        compressor: CompressorKind::Bernoulli(BernoulliSparsifier::new(0.5).unwrap()),
    };
    Optimizer::new(
        DiagonalQuadratic::new(LAMBDA.to_vec()).unwrap().into(),
        Method::Dcsgd(Dcsgd::new(vec![agent; 3]).unwrap()),
        Schedule::constant(),
    )
    .unwrap()
}

/// The closed-form weak error of `Σ_j x_j` at learning rate `eta` over `iterations` steps.
fn exact_weak_error(model: SdeModel, eta: f64, iterations: usize) -> f64 {
    (1..=iterations)
        .map(|k| {
            let t = k as f64 * eta;
            LAMBDA
                .iter()
                .zip(X0)
                .map(|(&l, x0)| {
                    let sde_rate = match model {
                        SdeModel::FirstOrder => l,
                        SdeModel::SecondOrder => l * (1.0 + eta * l / 2.0),
                        other => panic!("no closed form here for {other:?}"),
                    };
                    x0 * ((1.0 - eta * l).powi(k as i32) - (-sde_rate * t).exp())
                })
                .sum::<f64>()
                .abs()
        })
        .fold(0.0, f64::max)
}

#[test]
fn dcsgd_study_matches_the_closed_form_mean_of_every_model() {
    let models = vec![SdeModel::FirstOrder, SdeModel::SecondOrder];
    let s = StudySettings {
        etas: vec![0.2, 0.1],
        horizon: 1.0,
        paths: 40_000,
        seed: 11,
        x0: X0.to_vec(),
        models: models.clone(),
        scheme: SchemeKind::Weak2,
        increments: IncrementKind::Gaussian,
        substeps: None,
        max_substeps: DEFAULT_MAX_SUBSTEPS,
        observables: vec![Observable::X, Observable::Loss],
        diverge_above: 1e8,
        common_random_numbers: true,
        exact_reference: false,
        target_rel_ci: None,
        max_paths: None,
    };
    let curves = weak_error_study(&optimizer(), &s, None, &|_| {}).unwrap();
    assert_eq!(curves.len(), models.len() * s.observables.len());
    for model in models {
        let c = curves
            .iter()
            .find(|c| c.model == model && c.observable == Observable::X)
            .unwrap();
        assert_eq!(c.points.len(), s.etas.len());
        for p in &c.points {
            let exact = exact_weak_error(model, p.eta, s.iterations(p.eta));
            let (we, ci) = (p.weak_error.unwrap(), p.ci95.unwrap());
            // Twice the simultaneous 95% interval (which carries the integrator's bias): a
            // fixed seed, so this either always holds or always fails.
            assert!(
                (we - exact).abs() <= 2.0 * ci,
                "{model:?} eta {}: {we} vs closed form {exact} (ci95 {ci})",
                p.eta
            );
            // The interval is narrow enough for the agreement to mean something.
            assert!(
                ci < exact / 2.0,
                "{model:?} eta {}: ci95 {ci} vs {exact}",
                p.eta
            );
            assert_eq!(p.discrete.diverged + p.sde.diverged, 0);
        }
    }
}
