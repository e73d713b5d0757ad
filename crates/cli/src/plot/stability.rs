use super::*;
use compare::stability::{Process, StabilityCurve, ThresholdKind};

// ---------------------------------------------------------------------------------------------
// Stability: diverged fraction against η
// ---------------------------------------------------------------------------------------------

/// Diverged fraction by the horizon against η, one curve per process with its 95% interval as
/// error bars, one panel per x0 scale; dashed verticals mark the predicted thresholds of the
/// discrete method and of the models (pathwise or exact), in the process's color.
pub fn stability_plot(
    curves: &[StabilityCurve],
    title: &str,
    stem: &Path,
) -> Result<(), PlotError> {
    let mut scales: Vec<f64> = curves.iter().map(|c| c.x0_scale).collect();
    scales.sort_by(f64::total_cmp);
    scales.dedup();
    render(
        &StabilityFigure {
            title: title.to_string(),
            curves,
            scales,
        },
        stem,
    )
}

struct StabilityFigure<'a> {
    title: String,
    curves: &'a [StabilityCurve],
    scales: Vec<f64>,
}

/// `svag_index`: the curve's rank among the SVAG curves of its panel (their colors go by rank,
/// as in the weak-error figures).
fn process_color(process: Process, svag_index: usize) -> RGBColor {
    match process {
        Process::Discrete => DISCRETE_LINE,
        Process::Model(m) => model_color(m),
        Process::Svag(_) => super::svag::svag_color(svag_index),
    }
}

impl Figure for StabilityFigure<'_> {
    fn size(&self) -> (u32, u32) {
        ((520 * self.scales.len().max(1) as u32 + 40).max(860), 540)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let root = root.titled(&self.title, (FONT, 18))?;
        let cols = self.scales.len().max(1);
        let areas = root.split_evenly((1, cols));
        for (area, &scale) in areas.iter().zip(&self.scales) {
            let of_scale: Vec<&StabilityCurve> =
                self.curves.iter().filter(|c| c.x0_scale == scale).collect();
            let etas = of_scale
                .iter()
                .flat_map(|c| c.points.iter().map(|p| p.eta))
                .chain(of_scale.iter().flat_map(|c| {
                    c.theory
                        .iter()
                        .filter(|t| t.kind != ThresholdKind::MeanSquare)
                        .filter_map(|t| t.eta)
                }));
            let (lo, hi) = min_max(etas).unwrap_or((0.0, 1.0));
            // Sweeps over decades of η read better on a log axis.
            let log_x = lo > 0.0 && hi / lo > 8.0;
            let (x0, x1) = if log_x {
                log_range(lo, hi, 1.15)
            } else {
                lin_range(lo, hi)
            };
            let caption = format!("x0 scale {}", fmt_num(scale));
            if log_x {
                let mut chart = ChartBuilder::on(area)
                    .caption(caption, (FONT, 15))
                    .margin(10)
                    .x_label_area_size(40)
                    .y_label_area_size(55)
                    .build_cartesian_2d(log_axis((x0, x1)), -0.03f64..1.03f64)?;
                chart
                    .configure_mesh()
                    .x_desc("η (log scale)")
                    .y_desc("diverged fraction by the horizon (95% Wilson)")
                    .x_label_formatter(&|v| log_label(*v))
                    .label_style((FONT, 12))
                    .draw()?;
                self.draw_curves(&mut chart, &of_scale, x0, x1)?;
            } else {
                let mut chart = ChartBuilder::on(area)
                    .caption(caption, (FONT, 15))
                    .margin(10)
                    .x_label_area_size(40)
                    .y_label_area_size(55)
                    .build_cartesian_2d(x0..x1, -0.03f64..1.03f64)?;
                chart
                    .configure_mesh()
                    .x_desc("η")
                    .y_desc("diverged fraction by the horizon (95% Wilson)")
                    .x_label_formatter(&|v| fmt_num(*v))
                    .label_style((FONT, 12))
                    .draw()?;
                self.draw_curves(&mut chart, &of_scale, x0, x1)?;
            }
        }
        Ok(())
    }
}

impl StabilityFigure<'_> {
    fn draw_curves<'b, DB: DrawingBackend + 'b, X>(
        &self,
        chart: &mut ChartContext<'b, DB, Cartesian2d<X, RangedCoordf64>>,
        of_scale: &[&StabilityCurve],
        x0: f64,
        x1: f64,
    ) -> DrawResult<DB>
    where
        X: Ranged<ValueType = f64>,
    {
        for (i, c) in of_scale.iter().enumerate() {
            let svag_index = of_scale[..i]
                .iter()
                .filter(|c| matches!(c.process, Process::Svag(_)))
                .count();
            let color = process_color(c.process, svag_index);
            let mut pts: Vec<(f64, f64)> = c
                .points
                .iter()
                .map(|p| (p.eta, p.diverged_fraction))
                .collect();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            // Curves often coincide (all 0 or all 1): earlier ones get larger markers so
            // every process stays visible.
            let radius = (7 - 2 * i as i32).max(2);
            let label = match c.process {
                Process::Discrete => "discrete".to_string(),
                Process::Model(m) => format!("SDE {}", m.name()),
                Process::Svag(l) => format!("SVAG l={l}"),
            };
            chart
                .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))?
                .label(label)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
            chart.draw_series(
                pts.iter()
                    .map(|&(x, y)| Circle::new((x, y), radius, color.filled())),
            )?;
            for p in &c.points {
                chart.draw_series(std::iter::once(PathElement::new(
                    vec![(p.eta, p.ci95[0]), (p.eta, p.ci95[1])],
                    color.stroke_width(1),
                )))?;
            }
            for t in c
                .theory
                .iter()
                .filter(|t| t.kind != ThresholdKind::MeanSquare)
            {
                if let Some(e) = t.eta.filter(|e| *e >= x0 && *e <= x1) {
                    chart.draw_series(std::iter::once(DashedPathElement::new(
                        vec![(e, 0.0), (e, 1.0)],
                        6,
                        4,
                        color.stroke_width(1),
                    )))?;
                }
            }
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(GREY_KEY)
            .label_font((FONT, 12))
            .draw()?;
        Ok(())
    }
}
