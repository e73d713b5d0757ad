use super::*;
use compare::study::{Reference, SideSummary, WeakErrorPoint};
use compare::Observable;
use plotters::coord::ranged1d::BoldPoints;

const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];

/// Checks `<stem>.png` (signature, IHDR size, > 1 KB) and `<stem>.svg`.
fn check_outputs(stem: &Path, size: Option<(u32, u32)>) {
    let png = std::fs::read(with_suffix(stem, "png")).expect("png written");
    assert!(png.len() > 1024, "png too small: {} bytes", png.len());
    assert_eq!(png[..8], PNG_SIGNATURE, "not a PNG");
    assert_eq!(&png[12..16], b"IHDR");
    assert_eq!(&png[png.len() - 8..png.len() - 4], b"IEND", "truncated PNG");
    let w = u32::from_be_bytes(png[16..20].try_into().unwrap());
    let h = u32::from_be_bytes(png[20..24].try_into().unwrap());
    if let Some(s) = size {
        assert_eq!((w, h), s);
    }
    let svg = std::fs::read_to_string(with_suffix(stem, "svg")).expect("svg written");
    assert!(svg.contains("<svg"));
}

fn side() -> SideSummary {
    SideSummary {
        final_mean: Some(1.0),
        final_ci95: Some(0.01),
        paths: 100,
        diverged: 0,
        diverged_fraction: 0.0,
        diverged_ci95: [0.0, 0.037],
    }
}

fn curve(model: SdeModel, observable: Observable, c: f64, p: f64, etas: &[f64]) -> WeakErrorCurve {
    let points: Vec<WeakErrorPoint> = etas
        .iter()
        .enumerate()
        .map(|(i, &eta)| {
            let wobble = 1.0 + 0.08 * if i % 2 == 0 { 1.0 } else { -1.0 };
            let err = c * eta.powf(p) * wobble;
            // The smallest eta gets an interval wider than the error (clipped end).
            let ci = if i + 1 == etas.len() {
                1.5 * err
            } else {
                0.15 * err
            };
            WeakErrorPoint {
                eta,
                iterations: (1.0 / eta) as usize,
                substeps: 4,
                weak_error: Some(err),
                ci95: Some(ci),
                ci95_interval: Some([(err - ci).max(0.0), err + ci]),
                ci95_pointwise: Some(ci / 2.0),
                ci95_monte_carlo: Some(0.9 * ci),
                at_iteration: Some(3),
                sde_estimator: compare::study::SdeEstimator::Level,
                integrator_bias: Some(0.01 * ci),
                integrator_bias_bound: Some(0.02 * ci),
                refinement: Vec::new(),
                variance_reduction: None,
                discrete: side(),
                sde: side(),
                reference: Reference::Coupled,
                exact: None,
                random_numbers: Default::default(),
                target_rel_ci_met: None,
                rerun: None,
            }
        })
        .collect();
    let e: Vec<f64> = points.iter().map(|q| q.eta).collect();
    let w: Vec<f64> = points.iter().map(|q| q.weak_error.unwrap()).collect();
    let fit = sde_core::fit_order(&e, &w);
    WeakErrorCurve {
        model,
        observable,
        points,
        order: fit.map(|f| f.slope),
        order_ci95: fit.map(|f| [f.slope_ci95.0, f.slope_ci95.1]),
        expected_order: p,
        expected_order_reason: String::new(),
        verdict: Verdict::Resolved,
        verdict_reasons: Vec::new(),
        consistent_with_expected: Some(true),
        exact_order: None,
        next_order_fit: None,
        warnings: Vec::new(),
    }
}

fn trajectory(
    label: &str,
    eta: f64,
    k: usize,
    decay: f64,
    spread: f64,
    nan_after: Option<usize>,
) -> Trajectory {
    let times: Vec<f64> = (0..=k).map(|i| i as f64 * eta).collect();
    let val = |t: f64, i: usize, s: f64| {
        if nan_after.is_some_and(|n| i > n) {
            f64::NAN
        } else {
            (2.0 * (-decay * t).exp() + 0.05) * s
        }
    };
    let mean: Vec<f64> = times
        .iter()
        .enumerate()
        .map(|(i, &t)| val(t, i, 1.0))
        .collect();
    let q = |s: f64| {
        times
            .iter()
            .enumerate()
            .map(|(i, &t)| val(t, i, s))
            .collect::<Vec<_>>()
    };
    let mut q10 = q(1.0 - spread);
    // A few non-positive lower quantiles exercise the log-scale clamp.
    if let Some(v) = q10.get_mut(k / 2) {
        *v = 0.0;
    }
    let loss = compare::trajectory::Band {
        observable: Observable::Loss,
        mean: mean.clone(),
        ci95: vec![0.01; k + 1],
        quantiles: vec![q10, q(0.95), q(1.0 + spread)],
    };
    // A signed observable: crosses zero.
    let x = compare::trajectory::Band {
        observable: Observable::X,
        mean: times
            .iter()
            .map(|&t| (3.0 * t).cos() * (-decay * t).exp())
            .collect(),
        ci95: vec![0.01; k + 1],
        quantiles: vec![
            times
                .iter()
                .map(|&t| (3.0 * t).cos() * (-decay * t).exp() - 0.3)
                .collect(),
            times
                .iter()
                .map(|&t| (3.0 * t).cos() * (-decay * t).exp())
                .collect(),
            times
                .iter()
                .map(|&t| (3.0 * t).cos() * (-decay * t).exp() + 0.3)
                .collect(),
        ],
    };
    let diverged = (0..=k)
        .map(|i| {
            if nan_after.is_some_and(|n| i > n) {
                1000
            } else {
                0
            }
        })
        .collect();
    Trajectory {
        label: label.to_string(),
        times,
        bands: vec![loss, x],
        diverged,
        paths: 1000,
    }
}

fn report(with_diverged: bool) -> TrajectoryReport {
    let (eta, k) = (0.05, 100);
    let mut discrete = trajectory("discrete", eta, k, 1.0, 0.6, with_diverged.then_some(70));
    if with_diverged {
        // Only part of the discrete paths diverged by the end.
        discrete.diverged = (0..=k).map(|i| if i > 70 { 12 } else { 0 }).collect();
        discrete.bands[0].mean[80..]
            .iter_mut()
            .for_each(|v| *v = f64::NAN);
        for row in &mut discrete.bands[0].quantiles {
            row[80..].iter_mut().for_each(|v| *v = f64::NAN);
        }
        discrete.bands[0].mean[75] = f64::INFINITY;
    }
    TrajectoryReport {
        eta,
        iterations: k,
        quantile_levels: vec![0.1, 0.5, 0.9],
        discrete,
        models: vec![
            (
                SdeModel::FirstOrder,
                trajectory("SDE first_order", eta, k, 0.9, 0.5, None),
            ),
            (
                SdeModel::SecondOrder,
                trajectory("SDE second_order", eta, k, 0.97, 0.55, None),
            ),
            (
                SdeModel::Stability,
                trajectory("SDE stability", eta, k, 1.1, 0.45, None),
            ),
        ],
        svag: Vec::new(),
    }
}

fn empty_report() -> TrajectoryReport {
    let t = Trajectory {
        label: "discrete".into(),
        times: Vec::new(),
        bands: Vec::new(),
        diverged: Vec::new(),
        paths: 0,
    };
    TrajectoryReport {
        eta: 0.1,
        iterations: 0,
        quantile_levels: Vec::new(),
        discrete: t.clone(),
        models: vec![(SdeModel::FirstOrder, t)],
        svag: Vec::new(),
    }
}

#[test]
fn weak_error_plot_writes_png_and_svg() {
    let dir = tempfile::tempdir().unwrap();
    let etas = [0.2, 0.1, 0.05, 0.025, 0.0125];
    let a = curve(SdeModel::FirstOrder, Observable::Loss, 0.3, 1.0, &etas);
    let b = curve(SdeModel::SecondOrder, Observable::Loss, 0.5, 2.0, &etas);
    let mut c = curve(SdeModel::Stability, Observable::Loss, 0.2, 1.0, &etas);
    c.points[2].weak_error = Some(0.0);
    c.points[3].weak_error = None;
    c.order = None;
    c.order_ci95 = None;
    c.verdict = Verdict::Unresolved;
    let stem = dir.path().join("nested").join("weak");
    weak_error_plot(&[&a, &b, &c], "weak error vs η", &stem).unwrap();
    check_outputs(&stem, Some((1000, 720)));
    let svg = std::fs::read_to_string(with_suffix(&stem, "svg")).unwrap();
    assert!(svg.contains("first_order: order"), "legend label missing");
    assert!(svg.contains("unresolved (expected 1)"));
    assert!(svg.contains("skipped 2 point(s)"));
}

#[test]
fn weak_error_plot_survives_empty_and_degenerate_input() {
    let dir = tempfile::tempdir().unwrap();
    weak_error_plot(&[], "nothing", &dir.path().join("empty")).unwrap();
    check_outputs(&dir.path().join("empty"), None);
    let mut all_bad = curve(
        SdeModel::FirstOrder,
        Observable::XSq,
        0.3,
        1.0,
        &[0.1, 0.05],
    );
    all_bad.points.iter_mut().for_each(|p| p.weak_error = None);
    let single = curve(SdeModel::SecondOrder, Observable::X, 0.3, 1.0, &[0.1]);
    let stem = dir.path().join("degenerate");
    weak_error_plot(&[&all_bad, &single], "degenerate", &stem).unwrap();
    check_outputs(&stem, None);
}

#[test]
fn trajectory_plot_linear_and_log() {
    let dir = tempfile::tempdir().unwrap();
    let r = report(true);
    let stem = dir.path().join("traj_log");
    trajectory_plot(&r, Observable::Loss, true, "loss", &stem).unwrap();
    check_outputs(&stem, Some((1000, 680)));
    let svg = std::fs::read_to_string(with_suffix(&stem, "svg")).unwrap();
    assert!(svg.contains("diverged"));
    assert!(svg.contains("discrete 12/1000"));
    let stem = dir.path().join("traj_lin");
    trajectory_plot(&r, Observable::X, false, "x", &stem).unwrap();
    check_outputs(&stem, None);
    // A signed observable on a log axis: non-positive values are skipped.
    let stem = dir.path().join("traj_x_log");
    trajectory_plot(&r, Observable::X, true, "x (log)", &stem).unwrap();
    check_outputs(&stem, None);
}

#[test]
fn trajectory_plot_survives_missing_and_nan_data() {
    let dir = tempfile::tempdir().unwrap();
    let stem = dir.path().join("empty");
    trajectory_plot(&empty_report(), Observable::Loss, true, "empty", &stem).unwrap();
    check_outputs(&stem, None);
    let svg = std::fs::read_to_string(with_suffix(&stem, "svg")).unwrap();
    assert!(svg.contains("no finite values"));
    // Every path diverged: all values NaN.
    let mut r = report(false);
    for b in &mut r.discrete.bands {
        b.mean.iter_mut().for_each(|v| *v = f64::NAN);
        b.quantiles.iter_mut().flatten().for_each(|v| *v = f64::NAN);
    }
    r.models.clear();
    let stem = dir.path().join("nan");
    trajectory_plot(&r, Observable::Loss, false, "all NaN", &stem).unwrap();
    check_outputs(&stem, None);
    // Observable not recorded.
    let stem = dir.path().join("missing");
    trajectory_plot(
        &report(false),
        Observable::GradNorm,
        false,
        "missing",
        &stem,
    )
    .unwrap();
    check_outputs(&stem, None);
}

#[test]
fn panel_grid_two_by_three() {
    let dir = tempfile::tempdir().unwrap();
    let (r1, r2) = (report(false), report(true));
    let empty = empty_report();
    let panels = vec![
        Panel {
            title: "loss, η = 0.05".into(),
            report: &r1,
            observable: Observable::Loss,
            log_y: true,
        },
        Panel {
            title: "loss, diverging".into(),
            report: &r2,
            observable: Observable::Loss,
            log_y: true,
        },
        Panel {
            title: "x".into(),
            report: &r1,
            observable: Observable::X,
            log_y: false,
        },
        Panel {
            title: "loss (linear)".into(),
            report: &r1,
            observable: Observable::Loss,
            log_y: false,
        },
        Panel {
            title: "empty".into(),
            report: &empty,
            observable: Observable::Loss,
            log_y: true,
        },
    ];
    let stem = dir.path().join("grid");
    panel_grid(&panels, 2, 3, "discrete vs SDE", &stem).unwrap();
    check_outputs(&stem, Some((1800, 1000)));
    let svg = std::fs::read_to_string(with_suffix(&stem, "svg")).unwrap();
    assert!(svg.contains("t = kη"));
    assert!(svg.contains("discrete 12/1000") && svg.contains("SDE stability 0/1000"));
    assert!(matches!(
        panel_grid(&panels, 2, 2, "too small", &stem),
        Err(PlotError::Plot(_))
    ));
    assert!(matches!(
        panel_grid(&panels, 0, 3, "none", &stem),
        Err(PlotError::Plot(_))
    ));
}

#[test]
fn number_formatting_and_ranges() {
    assert_eq!(fmt_num(0.0), "0");
    assert_eq!(fmt_num(0.020000000000000004), "0.02");
    assert_eq!(fmt_num(1234.0), "1234");
    assert_eq!(fmt_num(2.5e-5), "2.5e-5");
    assert_eq!(fmt_num(1e6), "1e6");
    assert_eq!(fmt_num(-0.5), "-0.5");
    // From a power of ten up to at least the next: plotters' log axis always has two labels.
    assert_eq!(log_range(0.3, 0.4, 1.0), (0.1, 1.0));
    assert_eq!(log_range(0.0095, 0.25, 1.0), (0.001, 0.25));
    assert_eq!(log_range(0.1, 10.0, 1.0), (0.1, 10.0));
    assert_eq!(log_range(0.05, 0.2, 1.25), (0.01, 0.25));
    for (lo, hi) in [(0.31, 0.69), (0.0095, 0.25), (1e-12, 1e3), (3.0, 3.0)] {
        let (a, b) = log_range(lo, hi, 1.2);
        let axis = log_axis((a, b));
        let ticks = axis.key_points(BoldPoints(6));
        assert!(ticks.len() >= 2, "{lo}..{hi}: {ticks:?}");
        // The power of ten at the bottom is ticked (no rounding loses it).
        assert!(
            ticks.iter().any(|t| (t / a - 1.0).abs() < 1e-6),
            "{lo}..{hi}: {ticks:?}"
        );
        assert!(a < lo && b > hi, "{lo}..{hi}: ({a}, {b})");
    }
    // Ten labels requested over one decade: 1, 2, …, 9 times its power of ten, and 10 times.
    // (plotters lists the top decade twice: as the last light point and as the next bold one).
    let mut dense = log_axis((0.1, 1.0)).key_points(BoldPoints(10));
    dense.dedup_by(|a, b| (*a / *b - 1.0).abs() < 1e-9);
    assert_eq!(dense.len(), 10, "{dense:?}");
    assert!((dense[0] - 0.1).abs() < 1e-12 && (dense[9] - 1.0).abs() < 1e-12);
    let labels: Vec<String> = [
        0.1,
        0.2,
        0.30000000000000004,
        0.4,
        0.5,
        0.7,
        0.9,
        0.99999999,
    ]
    .iter()
    .map(|&v| log_label(v))
    .collect();
    assert_eq!(labels, ["0.1", "0.2", "0.3", "", "0.5", "", "", "1"]);
    assert_eq!(log_label(2e-5), "2e-5");
    assert_eq!(log_label(0.0), "");
    assert_eq!(log_range(0.0, 1.0, 1.2), (0.1, 10.0));
    assert_eq!(lin_range(f64::NAN, 1.0), (0.0, 1.0));
    let (a, b) = lin_range(2.0, 2.0);
    assert!(a < 2.0 && b > 2.0);
    let seg = clip_power_line(0.0, 1.0, (0.01, 1.0), (0.1, 10.0)).unwrap();
    assert!((seg[0].0 - 0.1).abs() < 1e-12 && (seg[1].0 - 1.0).abs() < 1e-12);
    assert!(clip_power_line(0.0, 1.0, (0.01, 0.05), (0.1, 10.0)).is_none());
    assert_eq!(
        runs(
            [(0.0, 1.0), (1.0, f64::NAN), (2.0, 2.0), (3.0, 3.0)],
            |_, y| y.is_finite()
        )
        .len(),
        2
    );
}

/// Renders samples to `<temp>/sdelab-plot-samples` for a visual check:
/// `cargo test --release -p sdelab --lib plot::tests::render_samples -- --ignored`.
#[test]
#[ignore]
fn render_samples() {
    let dir = std::env::temp_dir().join("sdelab-plot-samples");
    let etas = [0.2, 0.1, 0.05, 0.025, 0.0125];
    let a = curve(SdeModel::FirstOrder, Observable::Loss, 0.3, 1.0, &etas);
    let b = curve(SdeModel::SecondOrder, Observable::Loss, 0.5, 2.0, &etas);
    let mut c = curve(SdeModel::Stability, Observable::Loss, 0.2, 1.0, &etas);
    c.points[2].weak_error = Some(0.0);
    weak_error_plot(
        &[&a, &b, &c],
        "Weak error of f(x), DSGD on a quadratic",
        &dir.join("weak"),
    )
    .unwrap();
    let mut bad = curve(
        SdeModel::FirstOrder,
        Observable::XSq,
        0.3,
        1.0,
        &[0.1, 0.05],
    );
    bad.points.iter_mut().for_each(|p| p.weak_error = None);
    weak_error_plot(&[&bad], "all weak errors NaN", &dir.join("weak_empty")).unwrap();
    let r1 = report(false);
    let r2 = report(true);
    trajectory_plot(
        &r2,
        Observable::Loss,
        true,
        "loss, η = 0.05",
        &dir.join("traj"),
    )
    .unwrap();
    // Row 1: the Figure 1 layout (loss on log scale); row 2: a signed observable, loss on a
    // linear axis with paths diverging, and a panel without data.
    let mut nan = report(false);
    for b in &mut nan.discrete.bands {
        b.mean.iter_mut().for_each(|v| *v = f64::NAN);
        b.quantiles.iter_mut().flatten().for_each(|v| *v = f64::NAN);
    }
    nan.discrete.diverged = vec![1000; nan.discrete.times.len()];
    nan.models.clear();
    let panel = |title: &str, report, observable, log_y| Panel {
        title: title.to_string(),
        report,
        observable,
        log_y,
    };
    let panels = vec![
        panel("loss, η = 0.05", &r1, Observable::Loss, true),
        panel("loss, η = 0.05, diverging", &r2, Observable::Loss, true),
        panel("loss, η = 0.05 (again)", &r1, Observable::Loss, true),
        panel("Σ x_j", &r1, Observable::X, false),
        panel("loss, linear axis", &r2, Observable::Loss, false),
        panel("every path diverged", &nan, Observable::Loss, true),
    ];
    panel_grid(
        &panels,
        2,
        3,
        "Discrete vs SDE: mean and 10–90% band",
        &dir.join("grid"),
    )
    .unwrap();
}
