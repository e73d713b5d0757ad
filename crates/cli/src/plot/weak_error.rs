use super::*;
use compare::Observable;

// ---------------------------------------------------------------------------------------------
// Weak error against the learning rate
// ---------------------------------------------------------------------------------------------

/// Weak error against the learning rate on log–log axes: one series per curve (colored by
/// model) with 95% interval bars, the least-squares fit `exp(intercept)·η^order` dashed, and
/// faint reference slopes 1 and 2 through the largest error at the largest `η`. Points with a
/// non-positive or non-finite weak error are skipped and listed in a note.
pub fn weak_error_plot(
    curves: &[&WeakErrorCurve],
    title: &str,
    stem: &Path,
) -> Result<(), PlotError> {
    let named: Vec<Named> = curves.iter().map(|&c| (c, None)).collect();
    render(&WeakErrorFigure::new(&named, title), stem)
}

/// A curve and, overriding its model's, its legend name and color.
type Named<'a> = (&'a WeakErrorCurve, Option<(&'a str, RGBColor)>);

/// [`weak_error_plot`] of (A)'s curves and SVAG's (`(label, curve)`: SVAG(l) against the
/// discrete method), each SVAG curve under its label in a color of its own.
pub fn svag_weak_error_plot(
    first_order: &[&WeakErrorCurve],
    svag: &[(&str, &WeakErrorCurve)],
    title: &str,
    stem: &Path,
) -> Result<(), PlotError> {
    let named: Vec<Named> = first_order
        .iter()
        .map(|&c| (c, None))
        .chain(
            svag.iter()
                .enumerate()
                .map(|(i, &(label, c))| (c, Some((label, super::svag::svag_color(i))))),
        )
        .collect();
    render(&WeakErrorFigure::new(&named, title), stem)
}

struct CurveSeries {
    label: String,
    color: RGBColor,
    marker: usize,
    /// `(eta, error, ci95)` with `eta > 0` and `error > 0`, both finite.
    points: Vec<(f64, f64, f64)>,
    /// `(intercept, slope, eta_min, eta_max)`: the least-squares line of `ln error` on `ln eta`
    /// and the range of `eta` it was fitted on.
    fit: Option<(f64, f64, f64, f64)>,
}

struct WeakErrorFigure {
    title: String,
    series: Vec<CurveSeries>,
    y_desc: String,
    notes: Vec<String>,
}

impl WeakErrorFigure {
    fn new(curves: &[Named], title: &str) -> Self {
        let mut observables: Vec<Observable> = curves.iter().map(|c| c.0.observable).collect();
        observables.sort_unstable_by_key(|o| o.name());
        observables.dedup();
        let multi_obs = observables.len() > 1;
        let mut skipped = Vec::new();
        let mut seen_models: Vec<SdeModel> = Vec::new();
        let mut bias_notes = Vec::new();
        let series = curves
            .iter()
            .map(|&(c, named)| {
                let marker = seen_models.iter().filter(|m| **m == c.model).count();
                seen_models.push(c.model);
                let color = named.map_or(model_color(c.model), |n| n.1);
                let base = named.map_or(c.model.name(), |n| n.0);
                let name = if multi_obs {
                    format!("{} ({})", base, c.observable.label())
                } else {
                    base.to_string()
                };
                let order = match (c.verdict, c.order, c.order_ci95) {
                    (Verdict::Resolved, Some(o), Some([a, b])) => {
                        format!(
                            "order {o:.2} [{a:.2}, {b:.2}], expected {}",
                            c.expected_order
                        )
                    }
                    (Verdict::Diverged, ..) => "diverged".to_string(),
                    _ => format!("unresolved (expected {})", c.expected_order),
                };
                let mut points = Vec::new();
                for p in &c.points {
                    match (p.weak_error, p.ci95) {
                        (Some(e), Some(ci))
                            if p.eta > 0.0 && p.eta.is_finite() && e > 0.0 && e.is_finite() =>
                        {
                            points.push((p.eta, e, ci));
                            if let Some(b) = p.integrator_bias_bound {
                                if b > 0.0 && b.is_finite() {
                                    bias_notes.push((p.eta, b));
                                }
                            }
                        }
                        _ => skipped.push(format!("{} at η = {}", name, fmt_num(p.eta))),
                    }
                }
                let etas: Vec<f64> = points.iter().map(|p| p.0).collect();
                let errs: Vec<f64> = points.iter().map(|p| p.1).collect();
                let fit = if points.len() >= 2 {
                    sde_core::fit_order(&etas, &errs).and_then(|f| {
                        let (lo, hi) = min_max(etas.iter().copied())?;
                        (f.slope.is_finite() && f.intercept.is_finite()).then_some((
                            f.intercept,
                            f.slope,
                            lo,
                            hi,
                        ))
                    })
                } else {
                    None
                };
                CurveSeries {
                    label: format!("{name}: {order}"),
                    color,
                    marker,
                    points,
                    fit,
                }
            })
            .collect();
        let y_desc = match observables.as_slice() {
            [one] => format!("weak error of {}", one.label()),
            _ => "weak error".to_string(),
        };
        let mut notes = Vec::new();
        if let Some(worst) = bias_notes.iter().map(|b| b.1).reduce(f64::max) {
            notes.push(format!(
                "bars: simultaneous 95% intervals; integrator bias bound ≤ {}",
                fmt_num(worst)
            ));
        }
        if !skipped.is_empty() {
            notes.push(format!(
                "skipped {} point(s) with non-positive or non-finite weak error:",
                skipped.len()
            ));
            for chunk in skipped.chunks(3).take(4) {
                notes.push(chunk.join(", "));
            }
            if skipped.len() > 12 {
                notes.push("…".to_string());
            }
        }
        WeakErrorFigure {
            title: title.to_string(),
            series,
            y_desc,
            notes,
        }
    }

    /// The `eta` and error ranges of the axes, and the anchor `(eta, error)` of the reference
    /// slopes (the largest error at the largest `eta`). Lower interval ends more than a decade
    /// below the smallest error do not stretch the axis: they are clipped at its bottom.
    #[allow(clippy::type_complexity)]
    fn ranges(&self) -> Option<((f64, f64), (f64, f64), (f64, f64))> {
        let all = || self.series.iter().flat_map(|s| s.points.iter().copied());
        let (x_lo, x_hi) = min_max(all().map(|p| p.0))?;
        let (e_lo, e_hi) = min_max(all().map(|p| p.1))?;
        let floor = e_lo / 10.0;
        let ci = |c: f64| if c.is_finite() && c > 0.0 { c } else { 0.0 };
        let lower = all().map(|(_, e, c)| e - ci(c)).filter(|&l| l > floor);
        let upper = all().map(|(_, e, c)| e + ci(c));
        let y_lo = min_max(lower).map_or(e_lo, |m| m.0.min(e_lo));
        let y_hi = min_max(upper).map_or(e_hi, |m| m.1.max(e_hi));
        let anchor_err = all()
            .filter(|p| p.0 == x_hi)
            .map(|p| p.1)
            .fold(f64::NEG_INFINITY, f64::max);
        let y_hi = y_hi.max(2.0 * anchor_err);
        Some((
            log_range(x_lo, x_hi, 1.25),
            log_range(y_lo, y_hi, 1.6),
            (x_hi, anchor_err),
        ))
    }
}

impl Figure for WeakErrorFigure {
    fn size(&self) -> (u32, u32) {
        (1000, 720)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let ranges = self.ranges();
        let ((x0, x1), (y0, y1), anchor) = ranges.unwrap_or(((1e-3, 1.0), (1e-4, 1.0), (1.0, 1.0)));
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, (FONT, 24))
            .margin(18)
            .x_label_area_size(56)
            .y_label_area_size(86)
            .build_cartesian_2d(log_axis((x0, x1)), log_axis((y0, y1)))?;
        draw_log_log_mesh(&mut chart, "learning rate η", &self.y_desc)?;
        if ranges.is_none() {
            let area = chart.plotting_area().strip_coord_spec();
            draw_placed_note(
                &area,
                &["no positive weak error to plot".to_string()],
                18,
                NotePlace::Center,
            )?;
            return draw_placed_note(&area, &self.notes, 13, NotePlace::LowerRight);
        }

        // Reference slopes through twice the largest error at the largest eta (just above the
        // data): 1 solid, 2 dotted.
        let (ax, ay) = (anchor.0, anchor.1 * 2.0);
        let reference = BLACK.mix(0.35).stroke_width(1);
        if let Some(seg) = clip_power_line(ay.ln() - ax.ln(), 1.0, (x0, ax), (y0, y1)) {
            chart
                .draw_series(LineSeries::new(seg, reference))?
                .label("reference slope 1")
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 22, y)], reference));
        }
        if let Some(seg) = clip_power_line(ay.ln() - 2.0 * ax.ln(), 2.0, (x0, ax), (y0, y1)) {
            chart
                .draw_series(DashedLineSeries::new(seg, 2, 3, reference))?
                .label("reference slope 2")
                .legend(move |(x, y)| {
                    DashedPathElement::new(vec![(x, y), (x + 22, y)], 2, 3, reference)
                });
        }

        // Interval bars.
        for s in &self.series {
            let bar = s.color.mix(0.75).stroke_width(2);
            let mut lines = Vec::new();
            let mut caps = Vec::new();
            for &(eta, err, ci) in &s.points {
                if !(ci.is_finite() && ci > 0.0) {
                    continue;
                }
                let top = err + ci;
                let bottom = err - ci;
                let clipped = bottom.is_nan() || bottom <= y0;
                let bottom = if clipped { y0 } else { bottom };
                lines.push(PathElement::new(vec![(eta, bottom), (eta, top)], bar));
                caps.push(
                    EmptyElement::at((eta, top)) + PathElement::new(vec![(-5, 0), (5, 0)], bar),
                );
                if !clipped {
                    caps.push(
                        EmptyElement::at((eta, bottom))
                            + PathElement::new(vec![(-5, 0), (5, 0)], bar),
                    );
                }
            }
            chart.draw_series(lines)?;
            chart.draw_series(caps)?;
        }

        // Fitted lines.
        for s in &self.series {
            if let Some((a, p, lo, hi)) = s.fit {
                if let Some(seg) = clip_power_line(a, p, (lo, hi), (y0, y1)) {
                    chart.draw_series(DashedLineSeries::new(seg, 9, 5, s.color.stroke_width(2)))?;
                }
            }
        }

        // Markers, with the legend entry of the curve.
        for s in &self.series {
            let shape = marker_shape(s.marker, 5.0);
            let fill = s.color.filled();
            let anno = chart.draw_series(s.points.iter().map(|&(eta, err, _)| {
                EmptyElement::at((eta, err)) + Polygon::new(shape.clone(), fill)
            }))?;
            let color = s.color;
            let legend_shape = shape.clone();
            anno.label(s.label.clone()).legend(move |(x, y)| {
                EmptyElement::at((x, y))
                    + DashedPathElement::new(vec![(0, 0), (22, 0)], 5, 3, color.stroke_width(2))
                    + Polygon::new(
                        legend_shape
                            .iter()
                            .map(|&(dx, dy)| (dx + 11, dy))
                            .collect::<Vec<_>>(),
                        color.filled(),
                    )
            });
        }
        chart
            .draw_series(std::iter::empty::<PathElement<(f64, f64)>>())?
            .label("dashed: least-squares fit C·η^order")
            .legend(|(x, y)| {
                DashedPathElement::new(vec![(x, y), (x + 22, y)], 5, 3, GREY_KEY.stroke_width(2))
            });

        draw_log_log_legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
        let area = chart.plotting_area().strip_coord_spec();
        draw_placed_note(&area, &self.notes, 13, NotePlace::LowerRight)
    }
}
