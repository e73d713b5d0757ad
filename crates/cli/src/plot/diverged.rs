use super::*;

// ---------------------------------------------------------------------------------------------
// Diverged fraction over time
// ---------------------------------------------------------------------------------------------

/// One curve of [`diverged_over_time_grid`]: paths diverged at or before each time.
pub struct DivergedCurve<'a> {
    pub label: String,
    /// Index into a fixed palette (arms of one panel share colors across panels).
    pub color: usize,
    /// Dashed (the SDE side) or solid with its Wilson 95% band (the discrete side).
    pub dashed: bool,
    pub times: &'a [f64],
    pub diverged: &'a [u64],
    pub paths: u64,
}

const ARM_COLORS: [RGBColor; 4] = [
    RGBColor(200, 30, 30),
    RGBColor(31, 100, 200),
    RGBColor(230, 140, 0),
    RGBColor(30, 150, 50),
];

/// Panels side by side, each the diverged fraction against time of several curves.
pub fn diverged_over_time_grid(
    panels: &[(String, Vec<DivergedCurve>)],
    title: &str,
    stem: &Path,
) -> Result<(), PlotError> {
    render(
        &DivergedFigure {
            panels,
            title: title.to_string(),
        },
        stem,
    )
}

struct DivergedFigure<'p, 'a> {
    panels: &'p [(String, Vec<DivergedCurve<'a>>)],
    title: String,
}

impl Figure for DivergedFigure<'_, '_> {
    fn size(&self) -> (u32, u32) {
        (640 * self.panels.len().max(1) as u32, 520)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let root = root.titled(&self.title, (FONT, 18))?;
        let areas = root.split_evenly((1, self.panels.len().max(1)));
        for (area, (caption, curves)) in areas.iter().zip(self.panels) {
            let t_max = curves
                .iter()
                .filter_map(|c| c.times.last().copied())
                .fold(0.0f64, f64::max);
            let mut chart = ChartBuilder::on(area)
                .caption(caption, (FONT, 15))
                .margin(10)
                .x_label_area_size(40)
                .y_label_area_size(55)
                .build_cartesian_2d(0.0..t_max.max(1e-9), -0.02f64..1.02f64)?;
            chart
                .configure_mesh()
                .x_desc("t = kη")
                .y_desc("fraction of paths diverged (95% Wilson band)")
                .x_label_formatter(&|v| fmt_num(*v))
                .label_style((FONT, 12))
                .draw()?;
            for c in curves {
                let color = ARM_COLORS[c.color % ARM_COLORS.len()];
                let frac: Vec<(f64, f64)> = c
                    .times
                    .iter()
                    .zip(c.diverged)
                    .map(|(&t, &d)| (t, d as f64 / c.paths as f64))
                    .collect();
                if !c.dashed {
                    let mut poly: Vec<(f64, f64)> = c
                        .times
                        .iter()
                        .zip(c.diverged)
                        .map(|(&t, &d)| (t, compare::stability::wilson95(d, c.paths)[1]))
                        .collect();
                    poly.extend(
                        c.times
                            .iter()
                            .zip(c.diverged)
                            .rev()
                            .map(|(&t, &d)| (t, compare::stability::wilson95(d, c.paths)[0])),
                    );
                    chart.draw_series(std::iter::once(Polygon::new(poly, color.mix(0.2))))?;
                    chart
                        .draw_series(LineSeries::new(frac, color.stroke_width(2)))?
                        .label(c.label.clone())
                        .legend(move |(x, y)| {
                            PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                        });
                } else {
                    chart
                        .draw_series(std::iter::once(DashedPathElement::new(
                            frac,
                            6,
                            4,
                            color.stroke_width(2),
                        )))?
                        .label(c.label.clone())
                        .legend(move |(x, y)| {
                            DashedPathElement::new(
                                vec![(x, y), (x + 18, y)],
                                4,
                                3,
                                color.stroke_width(2),
                            )
                        });
                }
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::MiddleRight)
                .background_style(WHITE.mix(0.85))
                .border_style(GREY_KEY)
                .label_font((FONT, 11))
                .draw()?;
        }
        Ok(())
    }
}
