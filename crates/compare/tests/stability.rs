//! Stability thresholds against their closed forms (MATH.md §2, §6.3, §7): the parabola without
//! noise (discrete and (C) diverge exactly for η > 2/λ, (A) and (B) never), with affine noise
//! (thresholds move to the almost-sure ones), and the quartic (discrete iff η x0² > 2, (C) iff
//! η x0² > 2/3).

use compare::stability::ThresholdKind;
use compare::stability::{
    counts_agree, discrete_pathwise_critical_u, stability_sweep, stability_sweep_with_svag, theory,
    wilson95, StabilityCurve, StabilitySettings,
};
use compare::{CompareError, Setting};
use models::{
    Agent, CompressorKind, DiagonalQuadratic, Dsgd, GaussianNoise, Identity, LossKind, Method,
    NoiseModel, Optimizer, Quartic, Schedule, SdeModel,
};
use sde_core::{IncrementKind, SchemeKind};

type Opt = Optimizer<LossKind, Method>;

fn dsgd(loss: LossKind, agents: usize, sigma0: f64, sigma1: f64) -> Opt {
    let d = loss_dim(&loss);
    let agents = (0..agents)
        .map(|_| Agent {
            noise: NoiseModel::Gaussian(GaussianNoise::isotropic(d, sigma0, sigma1).unwrap()),
            compressor: CompressorKind::Identity(Identity),
        })
        .collect();
    Optimizer::new(
        loss,
        Method::Dsgd(Dsgd::new(agents).unwrap()),
        Schedule::constant(),
    )
    .unwrap()
}

fn loss_dim(l: &LossKind) -> usize {
    use models::loss::Loss;
    l.dim()
}

fn settings(
    etas: &[f64],
    horizon: f64,
    paths: u64,
    x0: Vec<f64>,
    scales: &[f64],
) -> StabilitySettings {
    StabilitySettings {
        etas: etas.to_vec(),
        x0_scales: scales.to_vec(),
        horizon,
        paths,
        seed: 11,
        x0,
        models: SdeModel::ALL.to_vec(),
        scheme: SchemeKind::EulerMaruyama,
        increments: IncrementKind::Gaussian,
        // One substep on purpose: the sweep must raise it where Euler–Maruyama would be unstable.
        substeps: 1,
        max_substeps: 4096,
        diverge_above: 1e8,
    }
}

fn curve<'a>(c: &'a [StabilityCurve], process: &str, scale: f64) -> &'a StabilityCurve {
    c.iter()
        .find(|c| c.process.name() == process && c.x0_scale == scale)
        .unwrap()
}

fn fraction_at(c: &StabilityCurve, eta: f64) -> f64 {
    c.points
        .iter()
        .find(|p| p.eta == eta)
        .unwrap()
        .diverged_fraction
}

fn run(opt: &Opt, s: &StabilitySettings) -> Vec<StabilityCurve> {
    stability_sweep(opt, s, &|x0| theory(opt, x0), &|_| {}).unwrap()
}

#[test]
fn wilson_interval_matches_known_values() {
    // k = 0: the upper end is z²/(n + z²) in closed form.
    let z2 = 1.959_963_984_540_054f64.powi(2);
    let [lo, hi] = wilson95(0, 10);
    assert_eq!(lo, 0.0);
    assert!((hi - z2 / (10.0 + z2)).abs() < 1e-12, "{hi}");
    // k = 5 of 10: the textbook Wilson interval [0.2366, 0.7634].
    let [lo, hi] = wilson95(5, 10);
    assert!(
        (lo - 0.2366).abs() < 1e-4 && (hi - 0.7634).abs() < 1e-4,
        "{lo} {hi}"
    );
    assert!(counts_agree(3, 3, 10));
    assert!(!counts_agree(0, 10, 10));
    assert!(counts_agree(48, 52, 100));
    assert!(!counts_agree(20, 60, 100));
}

/// f = λx²/2 with λ = 2, no noise: the discrete iteration x ← (1 − ηλ)x and (C)'s drift
/// −λ(1 − ηλ/2)x both diverge exactly for η > 2/λ = 1; (A) and (B) decay for every η. The
/// horizon (80) lets every grid point ≥ 1.1 pass the loss threshold 1e8 (discrete: 1.44^72;
/// (C): e^(0.4·80)); the grid straddles the threshold, so the bracket is (0.9, 1.1].
#[test]
fn parabola_threshold_is_two_over_lambda_for_discrete_and_c_only() {
    let opt = dsgd(
        DiagonalQuadratic::new(vec![2.0]).unwrap().into(),
        1,
        0.0,
        0.0,
    );
    let etas = [0.25, 0.5, 0.75, 0.9, 1.1, 1.25, 1.5];
    let s = settings(&etas, 80.0, 2, vec![1.0], &[1.0]);
    let curves = run(&opt, &s);
    for process in ["discrete", "stability"] {
        let c = curve(&curves, process, 1.0);
        assert_eq!(c.measured_threshold.last_stable_eta, Some(0.9), "{process}");
        assert_eq!(
            c.measured_threshold.first_diverging_eta,
            Some(1.1),
            "{process}"
        );
        for p in &c.points {
            let expect = if p.eta > 1.0 { 1.0 } else { 0.0 };
            assert_eq!(p.diverged_fraction, expect, "{process} at η = {}", p.eta);
        }
        assert_eq!(c.theory[0].eta, Some(1.0));
    }
    for process in ["first_order", "second_order"] {
        let c = curve(&curves, process, 1.0);
        assert!(
            c.points.iter().all(|p| p.diverged == 0),
            "{process}: {:?}",
            c.points
        );
        assert_eq!(c.measured_threshold.first_diverging_eta, None);
        assert_eq!(c.theory[0].eta, None);
    }
    // (B) at η = 1.5 has drift rate λ(1 + ηλ/2) = 5: Euler–Maruyama with one substep (h = 1.5)
    // is unstable there, so the sweep must have started finer and still agree when doubling.
    let b = curve(&curves, "second_order", 1.0);
    for p in b
        .points
        .iter()
        .chain(&curve(&curves, "stability", 1.0).points)
    {
        let check = p.substep_check.as_ref().unwrap();
        assert!(check.agrees, "{check:?}");
        assert_eq!(check.substeps, 2 * check.substeps_coarse);
    }
    let at = |eta: f64| b.points.iter().find(|p| p.eta == eta).unwrap();
    assert!(at(1.5).substep_check.as_ref().unwrap().substeps_coarse as f64 * 2.0 >= 1.5 * 5.0);
}

/// The discrete almost-sure threshold against its small-noise expansion: one step multiplies |x|
/// by |1 − u − u s z|, and E log of that vanishes at u* = 2 + 2s² + O(s⁴). For s = 0.1 the
/// O(s⁴) term is ~1e-4·const and the estimate's Monte Carlo SE ~ 5e-4 (sd 0.2 / sqrt(2e5), slope
/// ≈ 1), so 0.005 is ten SEs.
#[test]
fn discrete_pathwise_threshold_matches_small_noise_expansion() {
    let u = discrete_pathwise_critical_u(1, 0.1);
    assert!((u - 2.02).abs() < 0.005, "{u}");
    assert_eq!(discrete_pathwise_critical_u(1, 0.0), 2.0);
}

/// Affine noise σ1 = 0.5, one agent, d = 1 (s² = 0.25): the diverged fraction follows the
/// almost-sure thresholds, discrete u* ≈ 2.27 and (C) 2/(1 − s²) = 2.67, not the mean-square
/// one 2/(1 + s²) = 1.6 (MATH.md §6.3's condition); (A) and (B) decay pathwise in d = 1. Each
/// probed η sits ≥ 0.3 from its threshold, where 400 paths over T = 400 give fractions near 0
/// or 1 (measured: discrete 3/400 at η = 2.0, 399/400 at 2.6); the bounds 0.25 / 0.75 leave
/// more than 10 binomial SEs (SE ≤ 0.025).
#[test]
fn affine_noise_moves_thresholds_to_the_almost_sure_ones() {
    let opt = dsgd(
        DiagonalQuadratic::new(vec![1.0]).unwrap().into(),
        1,
        0.0,
        0.5,
    );
    let etas = [1.9, 2.35, 2.6, 3.0];
    let s = settings(&etas, 400.0, 400, vec![1.0], &[1.0]);
    let curves = run(&opt, &s);
    let disc = curve(&curves, "discrete", 1.0);
    let c = curve(&curves, "stability", 1.0);
    let path = |c: &StabilityCurve| {
        c.theory
            .iter()
            .find(|t| t.kind == ThresholdKind::Pathwise)
            .unwrap()
            .eta
    };
    let ms = |c: &StabilityCurve| {
        c.theory
            .iter()
            .find(|t| t.kind == ThresholdKind::MeanSquare)
            .unwrap()
            .eta
    };
    assert!((path(c).unwrap() - 2.0 / 0.75).abs() < 1e-12);
    assert!((ms(disc).unwrap() - 1.6).abs() < 1e-12);
    let u = path(disc).unwrap();
    assert!((2.2..2.35).contains(&u), "{u}");
    assert!(fraction_at(disc, 1.9) < 0.25, "{disc:?}");
    assert!(fraction_at(disc, 2.6) > 0.75, "{disc:?}");
    assert!(fraction_at(c, 2.35) < 0.25, "{c:?}");
    assert!(fraction_at(c, 3.0) > 0.75, "{c:?}");
    for process in ["first_order", "second_order"] {
        let m = curve(&curves, process, 1.0);
        assert!(m.points.iter().all(|p| p.diverged == 0), "{process}: {m:?}");
    }
    for p in curves.iter().flat_map(|c| &c.points) {
        assert!(p.ci95[0] <= p.diverged_fraction && p.diverged_fraction <= p.ci95[1]);
    }
}

/// Quartic f = x⁴/4 from x0 ∈ {1, 2}: gradient descent x ← x(1 − ηx²) diverges iff η x0² > 2
/// (η = 2 and 0.5), (C) iff η x0² > 2/3 (η = 2/3 and 1/6); (A), (B) never. The grid brackets
/// each threshold tightly (±5–15%).
#[test]
fn quartic_thresholds_scale_with_the_starting_point() {
    let opt = dsgd(Quartic::new(vec![1.0]).unwrap().into(), 1, 0.0, 0.0);
    let etas = [0.15, 0.18, 0.45, 0.55, 0.6, 0.72, 1.9, 2.1];
    let s = settings(&etas, 50.0, 2, vec![1.0], &[1.0, 2.0]);
    let curves = run(&opt, &s);
    let bracket = |p: &str, sc: f64| {
        let m = &curve(&curves, p, sc).measured_threshold;
        (m.last_stable_eta, m.first_diverging_eta)
    };
    assert_eq!(bracket("discrete", 1.0), (Some(1.9), Some(2.1)));
    assert_eq!(bracket("discrete", 2.0), (Some(0.45), Some(0.55)));
    assert_eq!(bracket("stability", 1.0), (Some(0.6), Some(0.72)));
    assert_eq!(bracket("stability", 2.0), (Some(0.15), Some(0.18)));
    for sc in [1.0, 2.0] {
        for p in ["first_order", "second_order"] {
            assert_eq!(bracket(p, sc).1, None, "{p} at scale {sc}");
        }
        let t = &curve(&curves, "stability", sc).theory[0];
        assert!((t.eta.unwrap() - 2.0 / (3.0 * sc * sc)).abs() < 1e-12);
    }
}

#[test]
fn same_seed_same_counts_for_any_thread_count() {
    let opt = dsgd(
        DiagonalQuadratic::new(vec![1.0]).unwrap().into(),
        2,
        0.3,
        0.6,
    );
    let s = settings(&[1.5, 2.5], 40.0, 300, vec![1.0], &[1.0, 3.0]);
    let counts = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| run(&opt, &s))
            .iter()
            .flat_map(|c| c.points.iter().map(|p| p.diverged))
            .collect::<Vec<_>>()
    };
    let one = counts(1);
    assert_eq!(one, counts(2));
    assert!(
        one.iter().any(|&d| d > 0) && one.iter().any(|&d| d < 300),
        "{one:?}"
    );
}

/// SVAG(l) on f = λx²/2 without noise is the iteration x ← (1 − ηλ/l)x taken l times per
/// iteration: it diverges exactly for η > 2l/λ. With λ = 2: SVAG(1) shares the discrete threshold
/// 1, SVAG(2) has 2, and (A), which never diverges, is the limit as l grows. The horizon lets
/// every diverging grid point pass the loss threshold 1e8 (slowest: SVAG(2) at η = 2.5, |1 − 2.5|²
/// per iteration over 32 iterations, 2.25^32 ≈ 2e11 in x). The other curves keep their counts,
/// and SVAG's are the same for one and two threads.
#[test]
fn svag_threshold_moves_from_the_discrete_one_towards_first_orders() {
    let opt = dsgd(
        DiagonalQuadratic::new(vec![2.0]).unwrap().into(),
        1,
        0.0,
        0.0,
    );
    let etas = [0.9, 1.1, 1.5, 1.9, 2.5];
    let s = settings(&etas, 80.0, 2, vec![1.0], &[1.0]);
    let sweep = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            stability_sweep_with_svag(&opt, &s, &[1, 2], &|x0| theory(&opt, x0), &|_| {}).unwrap()
        })
    };
    let curves = sweep(1);
    for (l, bracket) in [(1, (0.9, 1.1)), (2, (1.9, 2.5))] {
        let name = format!("svag l={l}");
        let c = curve(&curves, &name, 1.0);
        assert_eq!(c.process.name(), name.as_str());
        assert_eq!(
            c.measured_threshold.last_stable_eta,
            Some(bracket.0),
            "{name}"
        );
        assert_eq!(
            c.measured_threshold.first_diverging_eta,
            Some(bracket.1),
            "{name}"
        );
        for p in &c.points {
            let expect = if p.eta > l as f64 { 1.0 } else { 0.0 };
            assert_eq!(p.diverged_fraction, expect, "{name} at η = {}", p.eta);
            assert!(p.substep_check.is_none());
        }
        assert!(c.theory.is_empty());
    }
    assert!(curve(&curves, "first_order", 1.0)
        .points
        .iter()
        .all(|p| p.diverged == 0));
    let without = run(&opt, &s);
    assert_eq!(curves.len(), without.len() + 2);
    for (a, b) in curves.iter().zip(&without) {
        assert_eq!(a.process, b.process);
        let counts = |c: &StabilityCurve| c.points.iter().map(|p| p.diverged).collect::<Vec<_>>();
        assert_eq!(counts(a), counts(b), "{}", a.process.name());
    }
    let counts = |c: &[StabilityCurve]| {
        c.iter()
            .flat_map(|c| c.points.iter().map(|p| p.diverged))
            .collect::<Vec<_>>()
    };
    assert_eq!(counts(&curves), counts(&sweep(2)));
    let e = stability_sweep_with_svag(&opt, &s, &[0], &|_| Vec::new(), &|_| {}).unwrap_err();
    assert!(e.to_string().contains("svag_l"), "{e}");
}

#[test]
fn bad_settings_name_their_key() {
    let opt = dsgd(
        DiagonalQuadratic::new(vec![1.0]).unwrap().into(),
        1,
        0.0,
        0.0,
    );
    let err = |s: StabilitySettings| match stability_sweep(&opt, &s, &|_| Vec::new(), &|_| {}) {
        Err(CompareError::BadSetting { field, value, .. }) => (field, value),
        other => panic!("{other:?}"),
    };
    let ok = settings(&[0.5], 10.0, 4, vec![1.0], &[1.0]);
    let mut s = ok.clone();
    s.etas.clear();
    assert_eq!(err(s), (Setting::Etas.into(), "[]".to_string()));
    let mut s = ok.clone();
    s.x0_scales = vec![1.0, -2.0];
    assert_eq!(err(s), (Setting::X0Scales.at(1), "-2".to_string()));
    let mut s = ok.clone();
    s.etas = vec![20.0];
    assert_eq!(err(s), (Setting::Etas.at(0), "20".to_string()));
    let mut s = ok;
    s.x0 = vec![1.0, 2.0];
    assert_eq!(err(s).0, Setting::X0.into());
}
