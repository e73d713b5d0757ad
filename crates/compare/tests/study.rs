//! End-to-end checks of the weak-error machinery on DSGD with a quadratic loss, where every
//! expectation is known in closed form (MATH.md §7): the weak errors at the study's defaults
//! agree with the exact ones within the reported interval, the integrator's bias is measured and
//! controlled, the expected orders follow the schedule, and divergence is reported per side.

use compare::exact::{ExactMoments, QuadraticDsgdMoments};
use compare::study::{weak_error_study, Reference, StudySettings, Verdict, WeakErrorCurve};
use compare::{CompareError, Field, Observable, Setting};
use models::{
    Agent, CompressorKind, DiagonalQuadratic, Dsgd, GaussianNoise, Identity, Method, NoiseModel,
    Optimizer, Schedule, SdeModel,
};
use sde_core::SchemeKind;

mod common;
use common::{dsgd_quadratic, study_defaults, Opt};

/// DSGD on f = λ x²/2 (1-D) with one agent of additive noise σ and the given schedule.
fn parabola_with(lambda: f64, sigma: f64, schedule: Schedule) -> Opt {
    dsgd_quadratic(&[lambda], sigma, 1, schedule)
}

fn parabola(lambda: f64, sigma: f64) -> Opt {
    parabola_with(lambda, sigma, Schedule::constant())
}

/// The study's defaults, from x0 = 1.
fn settings(etas: &[f64], paths: u64, crn: bool) -> StudySettings {
    StudySettings {
        common_random_numbers: crn,
        ..study_defaults(etas, paths, 3, &[1.0])
    }
}

fn curve(c: &[WeakErrorCurve], model: SdeModel, obs: Observable) -> &WeakErrorCurve {
    c.iter()
        .find(|c| c.model == model && c.observable == obs)
        .unwrap()
}

fn exact(lambda: f64, noise_var: f64) -> QuadraticDsgdMoments {
    QuadraticDsgdMoments {
        lambda: vec![lambda],
        noise_var: vec![noise_var],
        x0: vec![1.0],
    }
}

/// At the study's defaults every point agrees with the closed-form weak error within twice its
/// (simultaneous) interval, the orders of (A), (B), (C) are resolved as 1, 2, 1 with intervals
/// that contain the slope of the exact weak errors, and the integrator's bias bound is below its
/// target (a quarter of the interval) everywhere.
#[test]
fn defaults_agree_with_exact_weak_errors_and_resolve_one_two_one() {
    let opt = parabola(1.0, 1.0);
    let s = settings(&[0.2, 0.1, 0.05, 0.025], 40_000, true);
    let ex = exact(1.0, 1.0);
    let curves = weak_error_study(&opt, &s, Some(&ex as &dyn ExactMoments), &|_| {}).unwrap();
    for model in SdeModel::ALL {
        for obs in [Observable::X, Observable::XSq] {
            let c = curve(&curves, model, obs);
            assert_eq!(
                c.verdict,
                Verdict::Resolved,
                "{model:?} {obs:?}: {:?}",
                c.verdict_reasons
            );
            assert_eq!(c.expected_order, model.weak_order());
            let [lo, hi] = c.order_ci95.expect("interval");
            let target = c.exact_order.expect("closed form");
            assert!(
                lo <= target && target <= hi,
                "{model:?} {obs:?}: order {:?} [{lo}, {hi}], exact slope {target}",
                c.order
            );
            assert!(hi - lo < 0.7, "{model:?} {obs:?}: [{lo}, {hi}]");
            for p in &c.points {
                let e = p.exact.as_ref().unwrap().weak_error;
                let (we, ci) = (p.weak_error.unwrap(), p.ci95.unwrap());
                assert!(
                    (we - e).abs() <= 2.0 * ci,
                    "{model:?} {obs:?} eta {}: {we} vs exact {e} (ci95 {ci}, substeps {}, bias bound {:?})",
                    p.eta,
                    p.substeps,
                    p.integrator_bias_bound
                );
                let mc = p.ci95_monte_carlo.unwrap();
                assert!(p.integrator_bias_bound.unwrap() <= mc / 4.0 + 1e-3 * we);
                assert!(p.ci95_pointwise.unwrap() <= mc && mc <= ci);
                assert_eq!(p.reference, Reference::Coupled);
                assert!(p.variance_reduction.unwrap() > 5.0);
            }
        }
    }
}

/// Without noise the Monte Carlo interval is zero and the interval is the integrator's bias alone:
/// at the defaults, in d = 3 with three curvatures and two agents, every point still agrees with
/// the closed form within twice its interval, and the bias was refined below 0.1% of the error.
#[test]
fn noise_free_intervals_are_the_integrator_bias() {
    let agents = vec![
        Agent {
            noise: NoiseModel::Gaussian(GaussianNoise::isotropic(3, 0.0, 0.0).unwrap()),
            compressor: CompressorKind::Identity(Identity),
        };
        2
    ];
    let lambda = vec![1.0, 2.5, 0.3];
    let opt: Opt = Optimizer::new(
        DiagonalQuadratic::new(lambda.clone()).unwrap().into(),
        Method::Dsgd(Dsgd::new(agents).unwrap()),
        Schedule::constant(),
    )
    .unwrap();
    let mut s = settings(&[0.2, 0.1, 0.05], 8, true);
    s.x0 = vec![1.0, -0.5, 2.0];
    s.observables = vec![Observable::Loss, Observable::X, Observable::XSq];
    let ex = QuadraticDsgdMoments {
        lambda,
        noise_var: vec![0.0; 3],
        x0: s.x0.clone(),
    };
    let curves = weak_error_study(&opt, &s, Some(&ex as &dyn ExactMoments), &|_| {}).unwrap();
    for c in &curves {
        for p in &c.points {
            let e = p.exact.as_ref().unwrap().weak_error;
            let (we, ci) = (p.weak_error.unwrap(), p.ci95.unwrap());
            assert_eq!(p.ci95_monte_carlo, Some(0.0));
            assert!(
                ci > 0.0 && ci <= 1e-3 * we * 1.000_001,
                "{:?} {:?}: ci {ci} vs {we}",
                c.model,
                c.observable
            );
            assert!(
                (we - e).abs() <= 2.0 * ci,
                "{:?} {:?} eta {}: {we} vs exact {e} (ci95 {ci})",
                c.model,
                c.observable,
                p.eta
            );
        }
    }
}

/// The exact mean and second moment of Platen's weak-order-2 chain on the linear SDE
/// `dX = −μX dt + b dW` (additive noise): one step is `X' = X(1 − μh + μ²h²/2) + bΔW(1 − μh/2)`.
fn platen_chain(mu: f64, b2: f64, h: f64, steps: usize) -> (f64, f64) {
    let r = 1.0 - mu * h + 0.5 * mu * mu * h * h;
    let q = b2 * h * (1.0 - 0.5 * mu * h).powi(2);
    let (mut m, mut m2) = (1.0, 1.0);
    for _ in 0..steps {
        m *= r;
        m2 = r * r * m2 + q;
    }
    (m, m2)
}

/// The Richardson estimate of the integrator's bias is that of the exact discretised chain: at a
/// fixed `sde.substeps = 2` (the reported level; the check level has 4), for model (B) at
/// η = 0.1 where the issue measured a 13% bias, the estimate at the maximising iteration is
/// within 10% of the exact bias of the chain (the Richardson estimate's own truncation error is
/// O(h) relative, about 2.5% here; its Monte Carlo standard error is below 1%).
#[test]
fn integrator_bias_estimate_matches_the_exact_chain() {
    let opt = parabola(1.0, 1.0);
    let mut s = settings(&[0.1], 40_000, true);
    s.models = vec![SdeModel::SecondOrder];
    s.substeps = Some(2);
    let ex = exact(1.0, 1.0);
    let curves = weak_error_study(&opt, &s, Some(&ex as &dyn ExactMoments), &|_| {}).unwrap();
    let eta: f64 = 0.1;
    let mu = 1.0 + eta / 2.0;
    for obs in [Observable::X, Observable::XSq] {
        let p = &curve(&curves, SdeModel::SecondOrder, obs).points[0];
        assert_eq!(p.substeps, 2);
        let k = p.at_iteration.unwrap();
        let (m, m2) = platen_chain(mu, eta, eta / 2.0, 2 * k);
        let t = k as f64 * eta;
        let chain = if obs == Observable::X { m } else { m2 };
        let sde = ex.sde_mean(SdeModel::SecondOrder, obs, t, eta).unwrap();
        let exact_bias = chain - sde;
        let est = p.integrator_bias.unwrap();
        assert!(
            (est - exact_bias).abs() <= 0.1 * exact_bias.abs(),
            "{obs:?}: estimated bias {est} vs exact {exact_bias}"
        );
        // And it is flagged: at 2 substeps the bias is far above a quarter of the interval.
        assert!(p.integrator_bias_bound.unwrap() > p.ci95_monte_carlo.unwrap() / 4.0);
        let c = curve(&curves, SdeModel::SecondOrder, obs);
        assert_eq!(c.verdict, Verdict::Unresolved);
        assert!(c
            .verdict_reasons
            .iter()
            .any(|r| r.contains("integrator bias")));
    }
}

/// A scheme whose weak order is below the model's is refused at a fixed number of substeps
/// (its bias would be read as model error); without `substeps` the study refines it instead.
#[test]
fn low_order_scheme_is_refused_at_fixed_substeps() {
    let opt = parabola(1.0, 1.0);
    let mut s = settings(&[0.1, 0.05], 100, true);
    s.scheme = SchemeKind::EulerMaruyama;
    s.substeps = Some(4);
    let err = weak_error_study(&opt, &s, None, &|_| {}).unwrap_err();
    assert!(
        matches!(&err, CompareError::BadSetting { field, reason, .. }
            if *field == Setting::Scheme.into() && reason.contains("second_order")),
        "{err}"
    );
    s.models = vec![SdeModel::FirstOrder];
    assert!(weak_error_study(&opt, &s, None, &|_| {}).is_ok());
}

/// (B) under the iteration-indexed `(k+1)^{-1/2}` is expected at order 1 (MATH.md §5.1), and
/// measured there; under `poly_time` (a schedule on SDE time) it keeps order 2. Noise-free, so
/// the weak errors are deterministic and the slopes those of the exact processes.
#[test]
fn second_order_model_order_follows_the_schedule() {
    let mut s = settings(&[0.1, 0.05, 0.025, 0.0125], 2, true);
    s.models = vec![SdeModel::SecondOrder];
    s.observables = vec![Observable::X];
    let poly = parabola_with(1.0, 0.0, Schedule::polynomial(0.5).unwrap());
    let c = &weak_error_study(&poly, &s, None, &|_| {}).unwrap()[0];
    assert_eq!(c.expected_order, 1.0, "{}", c.expected_order_reason);
    assert!(c.expected_order_reason.contains("poly_time"));
    let o = c.order.unwrap();
    assert!((o - 1.0).abs() < 0.15, "poly: order {o}");
    let pt = parabola_with(1.0, 0.0, Schedule::poly_time(0.5, 0.25).unwrap());
    let c = &weak_error_study(&pt, &s, None, &|_| {}).unwrap()[0];
    assert_eq!(c.expected_order, 2.0);
    let o = c.order.unwrap();
    assert!((o - 2.0).abs() < 0.15, "poly_time: order {o}");
    assert_eq!(c.verdict, Verdict::Resolved, "{:?}", c.verdict_reasons);
    eprintln!("poly_time: order {:?} {:?}", c.order, c.order_ci95);
}

/// Coupling shrinks the interval of the difference: at the same number of paths the coupled
/// half-width is at least 5 times smaller than the independent one.
#[test]
fn common_random_numbers_shrink_the_interval() {
    let opt = parabola(1.0, 1.0);
    let mut s_on = settings(&[0.1, 0.05], 20_000, true);
    s_on.substeps = Some(2);
    let mut s_off = s_on.clone();
    s_off.common_random_numbers = false;
    let on = weak_error_study(&opt, &s_on, None, &|_| {}).unwrap();
    let off = weak_error_study(&opt, &s_off, None, &|_| {}).unwrap();
    for model in SdeModel::ALL {
        let (a, b) = (
            curve(&on, model, Observable::X),
            curve(&off, model, Observable::X),
        );
        assert_eq!(b.points[0].reference, Reference::Independent);
        for (pa, pb) in a.points.iter().zip(&b.points) {
            assert!(
                pa.ci95.unwrap() * 5.0 < pb.ci95.unwrap(),
                "{model:?} eta {}: coupled ±{:?} vs independent ±{:?}",
                pa.eta,
                pa.ci95,
                pb.ci95
            );
        }
    }
}

/// Divergence is a quantity per side: GD on λx²/2 with η = 2.5 > 2/λ blows up on every path,
/// (A) never does. The point then has no weak error (never 0 ± 0), the discrete side reports
/// every path diverged with a Wilson interval, the SDE side none, and the verdict is `diverged`.
#[test]
fn divergence_is_counted_per_side() {
    let opt = parabola(1.0, 0.1);
    let mut s = settings(&[2.5], 500, true);
    s.horizon = 250.0;
    s.models = vec![SdeModel::FirstOrder];
    s.observables = vec![Observable::Loss];
    s.substeps = Some(8);
    let c = &weak_error_study(&opt, &s, None, &|_| {}).unwrap()[0];
    let p = &c.points[0];
    assert_eq!(p.discrete.diverged, 500);
    assert_eq!(p.discrete.diverged_fraction, 1.0);
    assert!(p.discrete.diverged_ci95[0] > 0.99);
    assert_eq!(p.sde.diverged, 0);
    assert_eq!(p.sde.diverged_ci95[0], 0.0);
    assert!(p.discrete.final_mean.is_none());
    assert_eq!(c.verdict, Verdict::Diverged);
    assert!(c
        .verdict_reasons
        .iter()
        .any(|r| r.contains("discrete paths diverged")));
}

/// The exact reference replaces the SDE side by its closed form; the discrete side stays Monte
/// Carlo, so its final mean must agree with the exact discrete mean within 4 standard errors.
#[test]
fn exact_reference_replaces_the_sde_side() {
    let opt = parabola(2.0, 0.5);
    let mut s = settings(&[0.1, 0.05], 20_000, true);
    s.exact_reference = true;
    let ex = exact(2.0, 0.25);
    let curves = weak_error_study(&opt, &s, Some(&ex as &dyn ExactMoments), &|_| {}).unwrap();
    for c in &curves {
        for p in &c.points {
            assert_eq!(p.reference, Reference::Exact);
            let e = p.exact.as_ref().unwrap();
            assert_eq!(p.sde.final_mean, Some(e.sde_final));
            let se = p.discrete.final_ci95.unwrap() / sde_core::stats::Z95;
            let m = p.discrete.final_mean.unwrap();
            assert!(
                (m - e.discrete_final).abs() < 4.0 * se + 1e-12,
                "{:?} {:?}: {m} vs {}",
                c.model,
                c.observable,
                e.discrete_final
            );
        }
    }
    let err = weak_error_study(&opt, &s, None, &|_| {}).unwrap_err();
    assert!(
        matches!(&err, CompareError::BadSetting { field, .. } if *field == Setting::ExactReference.into()),
        "{err}"
    );
}

/// Same seed, same bits, at 1 and 2 threads (refinement included).
#[test]
fn study_is_thread_count_independent() {
    let opt = parabola(1.0, 1.0);
    let s = settings(&[0.1, 0.05], 3_001, true);
    let run = |threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| weak_error_study(&opt, &s, None, &|_| {}).unwrap())
    };
    let (a, b) = (run(1), run(2));
    let bits = |x: Option<f64>| x.map(f64::to_bits);
    for (ca, cb) in a.iter().zip(&b) {
        for (pa, pb) in ca.points.iter().zip(&cb.points) {
            assert_eq!(bits(pa.weak_error), bits(pb.weak_error));
            assert_eq!(bits(pa.ci95), bits(pb.ci95));
            assert_eq!(bits(pa.integrator_bias), bits(pb.integrator_bias));
            assert_eq!(pa.substeps, pb.substeps);
            assert_eq!(bits(pa.discrete.final_mean), bits(pb.discrete.final_mean));
        }
    }
}

/// Bad settings are refused with the field named.
#[test]
fn bad_settings_name_the_key() {
    let opt = parabola(1.0, 1.0);
    type Mutation = Box<dyn Fn(&mut StudySettings)>;
    let cases: Vec<(Mutation, Field)> = vec![
        (Box::new(|s| s.etas = vec![]), Setting::Etas.into()),
        (Box::new(|s| s.etas = vec![0.1, -0.1]), Setting::Etas.at(1)),
        (Box::new(|s| s.etas = vec![2.0]), Setting::Etas.at(0)),
        (Box::new(|s| s.paths = 1), Setting::Paths.into()),
        (Box::new(|s| s.substeps = Some(0)), Setting::Substeps.into()),
        (
            Box::new(|s| s.max_substeps = 1),
            Setting::MaxSubsteps.into(),
        ),
        (Box::new(|s| s.x0 = vec![1.0, 2.0]), Setting::X0.into()),
        (Box::new(|s| s.models.clear()), Setting::Models.into()),
    ];
    for (mutate, key) in cases {
        let mut s = settings(&[0.1, 0.05], 10, true);
        mutate(&mut s);
        match weak_error_study(&opt, &s, None, &|_| {}) {
            Err(CompareError::BadSetting { field, .. }) => assert_eq!(field, key),
            other => panic!("{key}: {other:?}"),
        }
    }
    // Milstein cannot integrate the state-dependent (non-commutative) diffusion of a model
    // with affine-variance noise: refused before any simulation.
    let noise = NoiseModel::Gaussian(GaussianNoise::isotropic(2, 0.1, 0.5).unwrap());
    let agents = vec![Agent {
        noise,
        compressor: CompressorKind::Identity(Identity),
    }];
    let opt2: Opt = Optimizer::new(
        DiagonalQuadratic::new(vec![1.0, 2.0]).unwrap().into(),
        Method::Dsgd(Dsgd::new(agents).unwrap()),
        Schedule::constant(),
    )
    .unwrap();
    let mut s = settings(&[0.1, 0.05], 10, true);
    s.x0 = vec![1.0, 1.0];
    s.scheme = SchemeKind::Milstein;
    let err = weak_error_study(&opt2, &s, None, &|_| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("milstein"), "{err}");
}

/// Every optimizer is coupled: DCSGD with Bernoulli sparsification and DSignSGD with Student-t
/// noise run as coupled studies, and the coupling shrinks the variance of the difference by more
/// than 10× (measured 30–270 on these settings at 20 000 paths; with 4000 paths the variance
/// ratio's relative standard error is about 2%, so the margin is wide).
#[test]
fn dcsgd_and_dsignsgd_are_coupled() {
    use models::{
        BernoulliSparsifier, Dcsgd, DsignSgd, MixedQuadraticQuartic, Quartic, StudentTNoise,
    };
    let gaussian = NoiseModel::Gaussian(GaussianNoise::isotropic(2, 0.5, 0.2).unwrap());
    let bern = CompressorKind::Bernoulli(BernoulliSparsifier::new(0.5).unwrap());
    let agents = vec![
        Agent {
            noise: gaussian,
            compressor: bern,
        };
        8
    ];
    let dcsgd: Opt = Optimizer::new(
        MixedQuadraticQuartic::new(vec![1.0, 0.5], vec![0.5, 1.0])
            .unwrap()
            .into(),
        Method::Dcsgd(Dcsgd::new(agents).unwrap()),
        Schedule::constant(),
    )
    .unwrap();
    let t = NoiseModel::StudentT(StudentTNoise::isotropic(2, 3.0, 2.0, 0.0).unwrap());
    let agents = vec![
        Agent {
            noise: t,
            compressor: CompressorKind::Identity(Identity),
        };
        8
    ];
    let dsign: Opt = Optimizer::new(
        Quartic::new(vec![1.0, 1.0]).unwrap().into(),
        Method::DsignSgd(DsignSgd::new(agents).unwrap()),
        Schedule::constant(),
    )
    .unwrap();
    for (name, opt) in [("dcsgd", &dcsgd), ("dsignsgd", &dsign)] {
        let mut s = settings(&[0.1, 0.05], 4000, true);
        s.x0 = vec![1.0, -0.5];
        s.models = vec![SdeModel::FirstOrder];
        s.observables = vec![Observable::Loss];
        s.substeps = Some(2);
        let c = &weak_error_study(opt, &s, None, &|_| {}).unwrap()[0];
        for p in &c.points {
            assert_eq!(p.reference, Reference::Coupled, "{name}");
            let vr = p.variance_reduction.unwrap();
            assert!(vr > 10.0, "{name} eta {}: variance reduction {vr}", p.eta);
        }
    }
}
