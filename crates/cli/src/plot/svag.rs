use super::*;
use compare::svag::SvagAgreementPoint;

// ---------------------------------------------------------------------------------------------
// SVAG against (A): the disagreement against l
// ---------------------------------------------------------------------------------------------

/// Colors of SVAG series (by `l`, or by learning rate), apart from the models' blue, green and
/// orange.
const SVAG_COLORS: [RGBColor; 5] = [
    RGBColor(148, 52, 160),
    RGBColor(200, 40, 110),
    RGBColor(120, 80, 30),
    RGBColor(20, 150, 160),
    RGBColor(110, 110, 20),
];

pub(super) fn svag_color(i: usize) -> RGBColor {
    SVAG_COLORS[i % SVAG_COLORS.len()]
}

/// `|E g(SVAG_l) − E g((A))|` at the horizon against `l` on log–log axes, one series per learning
/// rate with its 95% interval bars; filled markers where the interval excludes 0 (SVAG(l) and (A)
/// resolved apart), hollow where it contains 0 (they agree); a reference slope −1 (the `O(1/l)`
/// the theory gives) through the largest difference at the smallest `l`.
pub fn svag_agreement_plot(
    points: &[&SvagAgreementPoint],
    title: &str,
    stem: &Path,
) -> Result<(), PlotError> {
    render(&AgreementFigure::new(points, title), stem)
}

struct AgreementSeries {
    eta: f64,
    color: RGBColor,
    /// `(l, |d|, ci95, contains_zero)`, `|d| > 0` and finite; `l` moved by a few percent per
    /// learning rate.
    points: Vec<(f64, f64, f64, bool)>,
}

struct AgreementFigure {
    title: String,
    series: Vec<AgreementSeries>,
}

impl AgreementFigure {
    fn new(points: &[&SvagAgreementPoint], title: &str) -> Self {
        let mut series: Vec<AgreementSeries> = Vec::new();
        let mut etas: Vec<f64> = Vec::new();
        for a in points {
            if !etas.contains(&a.eta) {
                etas.push(a.eta);
            }
        }
        for a in points {
            let (Some(d), Some(ci)) = (a.difference, a.ci95) else {
                continue;
            };
            if !(d.abs() > 0.0 && d.is_finite()) {
                continue;
            }
            // Each learning rate's points sit a little apart at the same l, so that the bars of
            // one do not hide another's.
            let i = etas.iter().position(|e| *e == a.eta).unwrap_or(0) as f64;
            let dodge = 1.0 + 0.03 * (i - (etas.len() as f64 - 1.0) / 2.0);
            let point = (
                a.l as f64 * dodge,
                d.abs(),
                ci,
                a.contains_zero == Some(true),
            );
            match series.iter_mut().find(|s| s.eta == a.eta) {
                Some(s) => s.points.push(point),
                None => {
                    let color = svag_color(series.len());
                    series.push(AgreementSeries {
                        eta: a.eta,
                        color,
                        points: vec![point],
                    });
                }
            }
        }
        AgreementFigure {
            title: title.to_string(),
            series,
        }
    }
}

impl Figure for AgreementFigure {
    fn size(&self) -> (u32, u32) {
        (1000, 720)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let all = || self.series.iter().flat_map(|s| s.points.iter().copied());
        let ranges =
            min_max(all().map(|p| p.0)).zip(min_max(all().flat_map(|(_, d, ci, _)| [d, d + ci])));
        let ((x0, x1), (y0, y1)) = ranges.map_or(((1.0, 100.0), (1e-4, 1.0)), |(x, y)| {
            (log_range(x.0, x.1, 1.4), log_range(y.0, y.1, 1.8))
        });
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, (FONT, 22))
            .margin(18)
            .x_label_area_size(56)
            .y_label_area_size(86)
            .build_cartesian_2d(log_axis((x0, x1)), log_axis((y0, y1)))?;
        draw_log_log_mesh(
            &mut chart,
            "SVAG parameter l",
            "|difference| at the horizon",
        )?;
        let area = chart.plotting_area().strip_coord_spec();
        if ranges.is_none() {
            return draw_placed_note(
                &area,
                &["no difference to plot".to_string()],
                18,
                NotePlace::Center,
            );
        }
        // Reference slope −1 through the largest difference at the smallest l.
        let l_min = all().map(|p| p.0).fold(f64::INFINITY, f64::min);
        let d_max = all()
            .filter(|p| p.0 == l_min)
            .map(|p| p.1)
            .fold(f64::NEG_INFINITY, f64::max);
        let anchor = (l_min, d_max);
        let reference = BLACK.mix(0.35).stroke_width(1);
        if let Some(seg) = clip_power_line(anchor.1.ln() + anchor.0.ln(), -1.0, (x0, x1), (y0, y1))
        {
            chart
                .draw_series(DashedLineSeries::new(seg, 5, 4, reference))?
                .label("reference slope −1 (C/l)")
                .legend(move |(x, y)| {
                    DashedPathElement::new(vec![(x, y), (x + 22, y)], 5, 4, reference)
                });
        }
        for (i, s) in self.series.iter().enumerate() {
            let bar = s.color.mix(0.75).stroke_width(2);
            chart.draw_series(s.points.iter().map(|&(l, d, ci, _)| {
                let bottom = if d - ci > y0 { d - ci } else { y0 };
                PathElement::new(vec![(l, bottom), (l, d + ci)], bar)
            }))?;
            chart.draw_series(LineSeries::new(
                s.points.iter().map(|p| (p.0, p.1)),
                s.color.mix(0.5).stroke_width(1),
            ))?;
            let shape = marker_shape(i, 6.0);
            let color = s.color;
            let mut outline = shape.clone();
            outline.extend(shape.first().copied());
            chart.draw_series(s.points.iter().filter(|p| p.3).map(|&(l, d, _, _)| {
                EmptyElement::at((l, d)) + PathElement::new(outline.clone(), color.stroke_width(2))
            }))?;
            let anno =
                chart.draw_series(s.points.iter().filter(|p| !p.3).map(|&(l, d, _, _)| {
                    EmptyElement::at((l, d)) + Polygon::new(shape.clone(), color.filled())
                }))?;
            let legend_shape = shape.clone();
            anno.label(format!("η = {}", fmt_num(s.eta)))
                .legend(move |(x, y)| {
                    EmptyElement::at((x + 11, y))
                        + Polygon::new(legend_shape.clone(), color.filled())
                });
        }
        draw_log_log_legend(&mut chart, SeriesLabelPosition::UpperRight)?;
        draw_placed_note(
            &area,
            &[
                "bars: 95% intervals of the difference (SVAG and (A) independent)".to_string(),
                "hollow: the interval contains 0 (SVAG(l) and (A) agree)".to_string(),
            ],
            13,
            NotePlace::LowerRight,
        )
    }
}
