//! The statistics behind a verdict: simultaneous intervals for a maximum over iterations,
//! binomial intervals for diverged fractions, and a weighted fit of the order.

use serde::Serialize;
use statrs::distribution::{ContinuousCDF, Normal, StudentsT};

/// `Φ^{-1}(p)` of the standard normal.
pub fn normal_quantile(p: f64) -> f64 {
    Normal::standard().inverse_cdf(p)
}

/// The two-sided 95% multiplier that holds simultaneously for `k` estimates (Bonferroni):
/// `Φ^{-1}(1 − 0.025/k)`. Conservative whatever the correlation between the estimates, which
/// for the iterations of one path is strong and unknown.
pub fn simultaneous_z95(k: usize) -> f64 {
    normal_quantile(1.0 - 0.025 / k.max(1) as f64)
}

/// The Wilson 95% interval of a binomial proportion `successes / n` (`[0, 1]` when `n = 0`).
/// Unlike the normal approximation it stays inside `[0, 1]` and is honest at 0 and `n`.
pub fn wilson95(successes: u64, n: u64) -> [f64; 2] {
    if n == 0 {
        return [0.0, 1.0];
    }
    let z = 1.959_963_984_540_054;
    let nf = n as f64;
    let p = successes as f64 / nf;
    let z2 = z * z;
    let centre = (p + z2 / (2.0 * nf)) / (1.0 + z2 / nf);
    let half = z / (1.0 + z2 / nf) * (p * (1.0 - p) / nf + z2 / (4.0 * nf * nf)).sqrt();
    // The ends are exact at the boundaries (rounding would otherwise leave 4e-19 at 0 successes).
    let lo = if successes == 0 {
        0.0
    } else {
        (centre - half).max(0.0)
    };
    let hi = if successes == n {
        1.0
    } else {
        (centre + half).min(1.0)
    };
    [lo, hi]
}

/// Paths at which a point's interval `ci95 = mc + bias` would reach `target · weak_error`: the
/// Monte Carlo half-width `mc` (measured on `paths` paths) shrinks as `1/sqrt(paths)`, the
/// integrator's bias bound does not (the study keeps it below a quarter of the Monte Carlo
/// half-width by refining, so this is slightly optimistic when the refinement is capped). `None`
/// when no number of paths would do: the bias bound alone is above the target, or an input is
/// not a positive finite number. Rounded up to a multiple of 100 (and at least `paths`).
pub fn paths_for_relative_ci(
    paths: u64,
    mc: f64,
    bias: f64,
    weak_error: f64,
    target: f64,
) -> Option<u64> {
    let room = target * weak_error - bias.max(0.0);
    if !(room > 0.0 && mc.is_finite() && mc >= 0.0 && paths > 0) {
        return None;
    }
    let need = (paths as f64 * (mc / room).powi(2)).ceil();
    if !need.is_finite() || need > 1e15 {
        return None;
    }
    Some(((need as u64).div_ceil(100) * 100).max(paths))
}

/// The learning-rate span (largest over smallest `η`) at which an order interval of half-width
/// `half_width`, measured over a span `span`, would shrink to `target`: the slope's standard
/// error falls as `1/log(span)` when the points keep their relative errors (the weights stay the
/// same, the spread of `log η` grows). `None` for a degenerate input.
pub fn span_for_order_half_width(span: f64, half_width: f64, target: f64) -> Option<f64> {
    if !(span > 1.0 && span.is_finite() && half_width > 0.0 && target > 0.0) {
        return None;
    }
    let s = span.powf(half_width / target);
    s.is_finite().then_some(s)
}

/// A weighted least-squares order fit of `log err = α log η + c`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct OrderFit {
    pub slope: f64,
    pub ci95: [f64; 2],
    pub std_err: f64,
    /// Weighted residual sum of squares over `n − 2`: about 1 when the Monte Carlo errors explain
    /// the scatter; above 1 the line does not fit within them (pre-asymptotic terms), and the
    /// interval is widened by its square root.
    pub reduced_chi2: f64,
    pub points: usize,
}

/// Weighted fit of `log err_i` against `log eta_i` with `Var(log err_i) ≈ (se_i / err_i)²`
/// (delta method). The slope's standard error is `sqrt(max(1, χ²_red) / S_xx,w)`; its 95%
/// interval uses Student's t with `n − 2` degrees of freedom when the scatter exceeds the Monte
/// Carlo errors (the variances are then partly estimated from the residuals) and the normal
/// quantile otherwise. `None` with fewer than two usable points (an error must be positive,
/// finite and have a positive finite standard error).
pub fn weighted_order_fit(eta: &[f64], err: &[f64], se: &[f64]) -> Option<OrderFit> {
    let pts: Vec<(f64, f64, f64)> = eta
        .iter()
        .zip(err)
        .zip(se)
        .filter(|((e, r), s)| {
            **e > 0.0 && e.is_finite() && **r > 0.0 && r.is_finite() && **s > 0.0 && s.is_finite()
        })
        .map(|((e, r), s)| {
            let sd_log = s / r;
            (e.ln(), r.ln(), 1.0 / (sd_log * sd_log))
        })
        .collect();
    let n = pts.len();
    if n < 2 {
        return None;
    }
    let sw: f64 = pts.iter().map(|p| p.2).sum();
    let mx = pts.iter().map(|p| p.2 * p.0).sum::<f64>() / sw;
    let my = pts.iter().map(|p| p.2 * p.1).sum::<f64>() / sw;
    let sxx: f64 = pts.iter().map(|p| p.2 * (p.0 - mx).powi(2)).sum();
    if !(sxx > 0.0) {
        return None;
    }
    let sxy: f64 = pts.iter().map(|p| p.2 * (p.0 - mx) * (p.1 - my)).sum();
    let slope = sxy / sxx;
    let intercept = my - slope * mx;
    let (chi2_red, mult) = if n > 2 {
        let chi2: f64 = pts
            .iter()
            .map(|p| p.2 * (p.1 - intercept - slope * p.0).powi(2))
            .sum();
        let red = chi2 / (n - 2) as f64;
        let mult = if red > 1.0 {
            StudentsT::new(0.0, 1.0, (n - 2) as f64)
                .map(|t| t.inverse_cdf(0.975))
                .unwrap_or(f64::INFINITY)
        } else {
            1.959_963_984_540_054
        };
        (red, mult)
    } else {
        (f64::NAN, 1.959_963_984_540_054)
    };
    let inflate = if chi2_red.is_finite() {
        chi2_red.max(1.0)
    } else {
        1.0
    };
    let se = (inflate / sxx).sqrt();
    Some(OrderFit {
        slope,
        ci95: [slope - mult * se, slope + mult * se],
        std_err: se,
        reduced_chi2: chi2_red,
        points: n,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_matches_a_textbook_value_and_stays_in_range() {
        // 0 of 10: [0, 0.2775] (Wilson, z = 1.96); 5 of 10: [0.2366, 0.7634].
        let a = wilson95(0, 10);
        assert!(a[0] == 0.0 && (a[1] - 0.277_532).abs() < 1e-5, "{a:?}");
        let b = wilson95(5, 10);
        assert!(
            (b[0] - 0.236_6).abs() < 1e-4 && (b[1] - 0.763_4).abs() < 1e-4,
            "{b:?}"
        );
        assert_eq!(wilson95(3, 0), [0.0, 1.0]);
        let c = wilson95(10, 10);
        assert!(c[1] == 1.0 && c[0] > 0.7);
    }

    #[test]
    fn bonferroni_multiplier() {
        assert!((simultaneous_z95(1) - 1.959_964).abs() < 1e-6);
        // Φ^{-1}(1 − 0.025/80) = 3.4205.
        assert!((simultaneous_z95(80) - 3.4205).abs() < 1e-3);
    }

    #[test]
    fn weighted_fit_recovers_an_exact_power_law_and_weighs_points() {
        let eta = [0.1, 0.05, 0.025, 0.0125];
        let err: Vec<f64> = eta.iter().map(|e: &f64| 3.0 * e * e).collect();
        let se: Vec<f64> = err.iter().map(|e| 0.01 * e).collect();
        let f = weighted_order_fit(&eta, &err, &se).unwrap();
        assert!((f.slope - 2.0).abs() < 1e-12 && f.reduced_chi2 < 1e-20);
        // Known variances: se = sqrt(1 / Σ w (x − x̄)²) with w = 1e4.
        let xs: Vec<f64> = eta.iter().map(|e| e.ln()).collect();
        let mx = xs.iter().sum::<f64>() / 4.0;
        let sxx: f64 = xs.iter().map(|x| 1e4 * (x - mx).powi(2)).sum();
        assert!((f.std_err - (1.0 / sxx).sqrt()).abs() < 1e-12);
        // A noisy point with a huge standard error barely moves the slope.
        let mut err2 = err.clone();
        err2[3] *= 3.0;
        let mut se2 = se.clone();
        se2[3] = 10.0 * err2[3];
        let g = weighted_order_fit(&eta, &err2, &se2).unwrap();
        assert!((g.slope - 2.0).abs() < 0.01, "{g:?}");
        assert!(weighted_order_fit(&eta[..1], &err[..1], &se[..1]).is_none());
        assert!(weighted_order_fit(&eta, &[0.0; 4], &se).is_none());
    }

    #[test]
    fn paths_advice_scales_as_the_square_of_the_relative_interval() {
        // mc = 1e-3 on 1000 paths, e = 1e-3, target 0.5: the interval must halve, 4x paths.
        assert_eq!(
            paths_for_relative_ci(1000, 1e-3, 0.0, 1e-3, 0.5),
            Some(4000)
        );
        // A bias bound of 1e-4 leaves 4e-4 of room: 1000 * (10/4)^2 = 6250 -> 6300.
        assert_eq!(
            paths_for_relative_ci(1000, 1e-3, 1e-4, 1e-3, 0.5),
            Some(6300)
        );
        // Already met: never fewer paths than measured.
        assert_eq!(
            paths_for_relative_ci(1000, 1e-4, 0.0, 1e-3, 0.5),
            Some(1000)
        );
        // The bias bound alone is above the target: no number of paths helps.
        assert_eq!(paths_for_relative_ci(1000, 1e-3, 6e-4, 1e-3, 0.5), None);
        assert_eq!(paths_for_relative_ci(1000, f64::NAN, 0.0, 1e-3, 0.5), None);
    }

    #[test]
    fn span_advice_widens_the_log_span_by_the_half_width_ratio() {
        // Half-width 0.75 over a span of 8 (log 8): a log-span 1.5 times as long, 8^1.5.
        let s = span_for_order_half_width(8.0, 0.75, 0.5).unwrap();
        assert!((s - 8f64.powf(1.5)).abs() < 1e-9, "{s}");
        // Check against the fit itself: four points with equal relative errors over spans 8 and
        // 8^1.5 give standard errors in the ratio 1.5.
        let fit = |span: f64| {
            let eta: Vec<f64> = (0..4).map(|i| span.powf(-(i as f64) / 3.0)).collect();
            let err: Vec<f64> = eta.clone();
            let se: Vec<f64> = err.iter().map(|e| 0.1 * e).collect();
            weighted_order_fit(&eta, &err, &se).unwrap().std_err
        };
        assert!((fit(8.0) / fit(s) - 1.5).abs() < 1e-9);
        assert_eq!(span_for_order_half_width(1.0, 0.75, 0.5), None);
    }
}

/// A fit of the weak errors by the expected order plus the next one,
/// `err_i ≈ a η_i^q + b η_i^{q+1}` (weighted least squares, weights `1/se_i²`). It asks whether
/// a fitted order outside its expected value is explained by one next-order term (pre-asymptotic:
/// the expansion of the weak error in `η` has more than its leading term at these learning rates)
/// or is evidence against order `q`.
#[derive(Clone, Debug, Serialize)]
pub struct NextOrderFit {
    /// The expected order `q` the fit assumes.
    pub order: f64,
    /// `a`, the coefficient of `η^q`, and its 95% interval (Monte Carlo errors only).
    pub leading: f64,
    pub leading_ci95: [f64; 2],
    /// `b`, the coefficient of `η^{q+1}`, and its 95% interval.
    pub next: f64,
    pub next_ci95: [f64; 2],
    /// Weighted residual sum of squares over `n − 2`.
    pub reduced_chi2: f64,
    /// The 95% point of `χ²_{n−2}/(n − 2)`: `fits` is `reduced_chi2 ≤ chi2_95`.
    pub chi2_95: f64,
    /// Whether the two terms fit the points within their Monte Carlo errors.
    pub fits: bool,
    pub points: usize,
}

/// [`NextOrderFit`] of `err` against `eta` with standard errors `se`, or `None` with fewer than
/// three usable points (positive finite `eta`, finite `err`, positive finite `se`) or a singular
/// design.
pub fn next_order_fit(eta: &[f64], err: &[f64], se: &[f64], q: f64) -> Option<NextOrderFit> {
    let pts: Vec<(f64, f64, f64)> = eta
        .iter()
        .zip(err)
        .zip(se)
        .filter(|((h, e), s)| {
            h.is_finite() && **h > 0.0 && e.is_finite() && s.is_finite() && **s > 0.0
        })
        .map(|((h, e), s)| (*h, *e, *s))
        .collect();
    if pts.len() < 3 {
        return None;
    }
    // Normal equations of the 2-parameter linear model in the basis (η^q, η^{q+1}), each column
    // scaled by its largest entry so the 2×2 system is well conditioned at small η.
    let cx = pts.iter().map(|p| p.0.powf(q)).fold(0.0, f64::max);
    let cy = pts.iter().map(|p| p.0.powf(q + 1.0)).fold(0.0, f64::max);
    let (mut sxx, mut sxy, mut syy, mut sxe, mut sye) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for &(h, e, s) in &pts {
        let (x, y, w) = (h.powf(q) / cx, h.powf(q + 1.0) / cy, 1.0 / (s * s));
        sxx += w * x * x;
        sxy += w * x * y;
        syy += w * y * y;
        sxe += w * x * e;
        sye += w * y * e;
    }
    let det = sxx * syy - sxy * sxy;
    if !(det.is_finite() && det > 1e-12 * sxx * syy) {
        return None;
    }
    let (a, b) = ((syy * sxe - sxy * sye) / det, (sxx * sye - sxy * sxe) / det);
    let (va, vb) = (syy / det, sxx / det);
    let chi2: f64 = pts
        .iter()
        .map(|&(h, e, s)| {
            let r = e - a * h.powf(q) / cx - b * h.powf(q + 1.0) / cy;
            (r / s).powi(2)
        })
        .sum();
    let dof = (pts.len() - 2) as f64;
    let chi2_95 = reduced_chi2_95(pts.len() - 2);
    let z = Z95_NORMAL;
    let (a, b, ha, hb) = (a / cx, b / cy, z * va.sqrt() / cx, z * vb.sqrt() / cy);
    Some(NextOrderFit {
        order: q,
        leading: a,
        leading_ci95: [a - ha, a + ha],
        next: b,
        next_ci95: [b - hb, b + hb],
        reduced_chi2: chi2 / dof,
        chi2_95,
        fits: chi2 / dof <= chi2_95,
        points: pts.len(),
    })
}

/// The 95% point of `χ²_dof / dof`: a reduced χ² above it means the points scatter beyond their
/// Monte Carlo errors. `dof = 0` is treated as 1 (the caller decides whether a fit without degrees
/// of freedom is tested at all).
pub fn reduced_chi2_95(dof: usize) -> f64 {
    let k = dof.max(1) as f64;
    statrs::distribution::ChiSquared::new(k)
        .map(|c| c.inverse_cdf(0.95) / k)
        .unwrap_or(f64::INFINITY)
}

/// The two-sided 95% normal quantile.
const Z95_NORMAL: f64 = 1.959_963_984_540_054;

#[cfg(test)]
mod next_order_tests {
    use super::*;

    #[test]
    fn an_order_one_curve_with_an_eta_squared_term_is_explained_by_it() {
        // E = 0.5 η + 3 η²: the log-log slope over 0.2..0.025 is well above 1.
        let eta = [0.2, 0.1, 0.05, 0.025];
        let err: Vec<f64> = eta.iter().map(|h| 0.5 * h + 3.0 * h * h).collect();
        let se: Vec<f64> = err.iter().map(|e| 0.01 * e).collect();
        let slope = weighted_order_fit(&eta, &err, &se).unwrap();
        assert!(slope.ci95[0] > 1.1, "{slope:?}");
        let f = next_order_fit(&eta, &err, &se, 1.0).unwrap();
        assert!(f.fits && f.reduced_chi2 < 1e-12, "{f:?}");
        assert!(
            (f.leading - 0.5).abs() < 1e-9 && (f.next - 3.0).abs() < 1e-8,
            "{f:?}"
        );
        assert!(f.leading_ci95[0] > 0.0, "{f:?}");
    }

    #[test]
    fn a_curve_that_levels_off_is_not_explained_by_a_next_order_term() {
        // An O(1) floor (model error) under an order-1 part: slope near 0 at small η; the
        // two-term fit of order 1 misses the points far beyond their 1% errors.
        let eta = [0.2, 0.1, 0.05, 0.025];
        let err: Vec<f64> = eta.iter().map(|h| 0.01 + 0.5 * h).collect();
        let se: Vec<f64> = err.iter().map(|e| 0.01 * e).collect();
        let f = next_order_fit(&eta, &err, &se, 1.0).unwrap();
        assert!(!f.fits, "{f:?}");
        // Three points are the fewest that leave a degree of freedom.
        assert!(next_order_fit(&eta[..2], &err[..2], &se[..2], 1.0).is_none());
    }
}
