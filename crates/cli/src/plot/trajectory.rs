use super::*;
use compare::Observable;

// ---------------------------------------------------------------------------------------------
// Trajectories
// ---------------------------------------------------------------------------------------------

/// One panel of a grid: a trajectory report seen through one observable.
#[derive(Clone, Debug)]
pub struct Panel<'a> {
    pub title: String,
    pub report: &'a TrajectoryReport,
    pub observable: Observable,
    pub log_y: bool,
}

/// One panel: for the discrete run and each model, the mean (solid), the median (dashed, when
/// 0.5 is one of the quantile levels) and a translucent band between the lowest and highest
/// quantile levels, against `t = kη`.
pub fn trajectory_plot(
    report: &TrajectoryReport,
    observable: Observable,
    log_y: bool,
    title: &str,
    stem: &Path,
) -> Result<(), PlotError> {
    let panel = Panel {
        title: title.to_string(),
        report,
        observable,
        log_y,
    };
    render(
        &GridFigure {
            panels: std::slice::from_ref(&panel),
            rows: 1,
            cols: 1,
            title: None,
            size: (1000, 680),
        },
        stem,
    )
}

/// A `rows × cols` grid of trajectory panels (row by row), about 600 × 480 px each, under a
/// common title; cells without a panel stay blank.
pub fn panel_grid(
    panels: &[Panel],
    rows: usize,
    cols: usize,
    title: &str,
    stem: &Path,
) -> Result<(), PlotError> {
    if rows == 0 || cols == 0 {
        return Err(PlotError::Plot(format!("a {rows}×{cols} grid has no cell")));
    }
    if panels.len() > rows * cols {
        return Err(PlotError::Plot(format!(
            "{} panels do not fit a {rows}×{cols} grid",
            panels.len()
        )));
    }
    let title_h = if title.is_empty() { 0 } else { 40 };
    let w = (600 * cols).min(12_000) as u32;
    let h = (480 * rows + title_h).min(12_000) as u32;
    render(
        &GridFigure {
            panels,
            rows,
            cols,
            title: (!title.is_empty()).then_some(title),
            size: (w, h),
        },
        stem,
    )
}

struct GridFigure<'p, 'a> {
    panels: &'p [Panel<'a>],
    rows: usize,
    cols: usize,
    title: Option<&'p str>,
    size: (u32, u32),
}

impl Figure for GridFigure<'_, '_> {
    fn size(&self) -> (u32, u32) {
        self.size
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let body = match self.title {
            Some(t) => root.margin(8, 0, 0, 0).titled(t, (FONT, 26))?,
            None => root.clone(),
        };
        let single = self.rows * self.cols == 1;
        let cells = body.split_evenly((self.rows, self.cols));
        for (panel, cell) in self.panels.iter().zip(&cells) {
            draw_panel(cell, panel, single)?;
        }
        Ok(())
    }
}

struct ProcessSeries {
    label: String,
    line: RGBColor,
    band: RGBColor,
    mean: Vec<Vec<(f64, f64)>>,
    median: Vec<Vec<(f64, f64)>>,
    /// Runs of `(t, low, high)`; on a log axis `low` may be non-positive (clamped when drawn).
    band_runs: Vec<Vec<(f64, f64, f64)>>,
    diverged: Option<(u64, u64)>,
}

struct PanelData {
    processes: Vec<ProcessSeries>,
    x: (f64, f64),
    y: Option<(f64, f64)>,
    band_levels: Option<(f64, f64)>,
    has_median: bool,
}

fn percent(q: f64) -> String {
    format!("{}%", fmt_num(q * 100.0))
}

impl PanelData {
    fn new(p: &Panel) -> Self {
        let r = p.report;
        let levels = &r.quantile_levels;
        let finite_levels = || levels.iter().enumerate().filter(|(_, q)| q.is_finite());
        let lo_q = finite_levels().min_by(|a, b| a.1.total_cmp(b.1));
        let hi_q = finite_levels().max_by(|a, b| a.1.total_cmp(b.1));
        let band_idx = match (lo_q, hi_q) {
            (Some((i, a)), Some((j, b))) if a < b => Some((i, j, *a, *b)),
            _ => None,
        };
        let median_idx = levels.iter().position(|q| (q - 0.5).abs() < 1e-9);
        let log = p.log_y;
        let valid = move |y: f64| y.is_finite() && (!log || y > 0.0);

        let mut procs: Vec<(String, RGBColor, RGBColor, &Trajectory)> = vec![(
            "discrete".to_string(),
            DISCRETE_LINE,
            DISCRETE_BAND,
            &r.discrete,
        )];
        for (m, t) in &r.models {
            let label = if t.label.is_empty() {
                format!("SDE {}", m.name())
            } else {
                t.label.clone()
            };
            let c = model_color(*m);
            procs.push((label, c, c, t));
        }
        for (i, (_, t)) in r.svag.iter().enumerate() {
            let c = SVAG_COLORS[i % SVAG_COLORS.len()];
            procs.push((t.label.clone(), c, c, t));
        }
        let mut has_median = false;
        let mut has_band = false;
        let processes = procs
            .into_iter()
            .map(|(label, line, band_color, t)| {
                let diverged = t.diverged.last().map(|&d| (d, t.paths));
                let Some(band) = t.band(p.observable) else {
                    return ProcessSeries {
                        label,
                        line,
                        band: band_color,
                        mean: Vec::new(),
                        median: Vec::new(),
                        band_runs: Vec::new(),
                        diverged,
                    };
                };
                let times = &t.times;
                let mean = runs(
                    times.iter().copied().zip(band.mean.iter().copied()),
                    |_, y| valid(y),
                );
                let median = median_idx
                    .and_then(|q| band.quantiles.get(q))
                    .map(|row| {
                        runs(times.iter().copied().zip(row.iter().copied()), |_, y| {
                            valid(y)
                        })
                    })
                    .unwrap_or_default();
                has_median |= !median.is_empty();
                let mut band_runs = Vec::new();
                if let Some((i, j, _, _)) = band_idx {
                    if let (Some(lo), Some(hi)) = (band.quantiles.get(i), band.quantiles.get(j)) {
                        let mut cur: Vec<(f64, f64, f64)> = Vec::new();
                        for ((&x, &l), &h) in times.iter().zip(lo).zip(hi) {
                            if x.is_finite() && l.is_finite() && valid(h) && l <= h {
                                cur.push((x, l, h));
                            } else if !cur.is_empty() {
                                band_runs.push(std::mem::take(&mut cur));
                            }
                        }
                        if !cur.is_empty() {
                            band_runs.push(cur);
                        }
                    }
                }
                has_band |= !band_runs.is_empty();
                ProcessSeries {
                    label,
                    line,
                    band: band_color,
                    mean,
                    median,
                    band_runs,
                    diverged,
                }
            })
            .collect::<Vec<_>>();

        let xs = processes.iter().flat_map(|s| {
            let lines = s.mean.iter().chain(&s.median).flatten().map(|p| p.0);
            lines.chain(s.band_runs.iter().flatten().map(|p| p.0))
        });
        let x = match min_max(xs) {
            Some((a, b)) if b > a => (a.min(0.0), b),
            Some((a, _)) => (a - 0.5, a + 0.5),
            None => (0.0, 1.0),
        };
        let ys = processes.iter().flat_map(|s| {
            let lines = s.mean.iter().chain(&s.median).flatten().map(|p| p.1);
            let bands = s.band_runs.iter().flatten().flat_map(|p| [p.1, p.2]);
            lines.chain(bands).filter(|&y| valid(y))
        });
        let y = min_max(ys).map(|(a, b)| {
            if log {
                log_range(a, b, 1.3)
            } else {
                lin_range(a, b)
            }
        });
        PanelData {
            processes,
            x,
            y,
            band_levels: if has_band {
                band_idx.map(|(_, _, a, b)| (a, b))
            } else {
                None
            },
            has_median,
        }
    }

    /// How much data a box of the plotting area hides: mean and median points count 3, band
    /// slices 1. `to_px` maps data to pixels of the plotting area.
    fn crowding(&self, to_px: &dyn Fn(f64, f64) -> (i32, i32), b: PxBox, log: bool) -> usize {
        let (bx0, by0, bx1, by1) = (b.0, b.1, b.0 + b.2, b.1 + b.3);
        let y0 = self.y.map_or(0.0, |y| y.0);
        let mut n = 0;
        for s in &self.processes {
            let lines = s.mean.iter().chain(&s.median).flatten();
            n += 3 * lines
                .filter(|&&(x, y)| {
                    let (px, py) = to_px(x, y);
                    (bx0..=bx1).contains(&px) && (by0..=by1).contains(&py)
                })
                .count();
            n += s
                .band_runs
                .iter()
                .flatten()
                .filter(|&&(x, l, h)| {
                    let (px, p_low) = to_px(x, if log { l.max(y0) } else { l });
                    let (_, p_high) = to_px(x, h);
                    // Pixel rows grow downwards: the high quantile has the smaller row.
                    (bx0..=bx1).contains(&px) && p_high <= by1 && p_low >= by0
                })
                .count();
        }
        n
    }

    /// "diverged: discrete 12/1000, SDE first_order 0/1000" when some path diverged by the end
    /// (one process a line when that is too long for a panel).
    fn diverged_note(&self) -> Vec<String> {
        if !self
            .processes
            .iter()
            .any(|s| s.diverged.is_some_and(|(d, _)| d > 0))
        {
            return Vec::new();
        }
        let items: Vec<String> = self
            .processes
            .iter()
            .filter_map(|s| s.diverged.map(|(d, n)| format!("{} {d}/{n}", s.label)))
            .collect();
        let one_line = format!("diverged: {}", items.join(", "));
        if one_line.chars().count() <= 50 {
            return vec![one_line];
        }
        std::iter::once("diverged by the end:".to_string())
            .chain(items.into_iter().map(|i| format!("  {i}")))
            .collect()
    }
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    panel: &Panel,
    single: bool,
) -> DrawResult<DB> {
    let data = PanelData::new(panel);
    let (x0, x1) = data.x;
    let caption = if single { 22 } else { 19 };
    let mut builder = ChartBuilder::on(area);
    builder
        .caption(&panel.title, (FONT, caption))
        .margin(12)
        .margin_right(20)
        .x_label_area_size(46)
        .y_label_area_size(66);
    if panel.log_y {
        let (y0, y1) = data.y.unwrap_or((0.1, 10.0));
        let chart = builder.build_cartesian_2d(x0..x1, log_axis((y0, y1)))?;
        panel_body(chart, panel, &data, (y0, y1), single)
    } else {
        let (y0, y1) = data.y.unwrap_or((0.0, 1.0));
        let chart = builder.build_cartesian_2d(x0..x1, y0..y1)?;
        panel_body(chart, panel, &data, (y0, y1), single)
    }
}

fn panel_body<'a, DB, Y>(
    mut chart: ChartContext<'a, DB, Cartesian2d<RangedCoordf64, Y>>,
    panel: &Panel,
    data: &PanelData,
    (y0, _y1): (f64, f64),
    single: bool,
) -> DrawResult<DB>
where
    DB: DrawingBackend + 'a,
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let label_size = if single { 15 } else { 13 };
    let log = panel.log_y;
    chart
        .configure_mesh()
        .x_desc("t = kη")
        .y_desc(panel.observable.label())
        .x_labels(7)
        .y_labels(if log { LOG_LABELS } else { 7 })
        .x_label_formatter(&|v| fmt_num(*v))
        .y_label_formatter(&|v| if log { log_label(*v) } else { fmt_num(*v) })
        .label_style((FONT, label_size))
        .axis_desc_style((FONT, label_size + 2))
        .bold_line_style(BLACK.mix(0.12))
        .light_line_style(BLACK.mix(0.04))
        .draw()?;

    let area = chart.plotting_area().strip_coord_spec();
    let (aw, ah) = area.dim_in_pixel();
    let area_size = (aw as i32, ah as i32);
    let note = data.diverged_note();
    let note_dim = note_size(&area, &note, label_size)?;
    if data.y.is_none() {
        let empty = format!("no finite values of {} to plot", panel.observable.label());
        draw_placed_note(&area, &[empty], label_size + 2, NotePlace::Center)?;
        let at = corner_boxes(note_dim, area_size, 10)[2];
        return draw_note(&area, &note, at, label_size);
    }

    // Bands first (lowest layer), then medians, then means on top.
    for s in &data.processes {
        let fill = s
            .band
            .mix(if s.band == DISCRETE_BAND { 0.22 } else { 0.18 })
            .filled();
        let polys = s.band_runs.iter().map(|run| {
            let upper = run.iter().map(|&(x, _, h)| (x, h));
            let lower = run
                .iter()
                .rev()
                .map(|&(x, l, _)| (x, if log { l.max(y0) } else { l }));
            Polygon::new(upper.chain(lower).collect::<Vec<_>>(), fill)
        });
        chart.draw_series(polys)?;
        let edge = s.band.mix(0.45).stroke_width(1);
        for run in &s.band_runs {
            let lower = run
                .iter()
                .map(|&(x, l, _)| (x, if log { l.max(y0) } else { l }));
            chart.draw_series(LineSeries::new(lower, edge))?;
            chart.draw_series(LineSeries::new(run.iter().map(|&(x, _, h)| (x, h)), edge))?;
        }
    }
    for s in &data.processes {
        for run in &s.median {
            chart.draw_series(DashedLineSeries::new(
                run.clone(),
                6,
                4,
                s.line.mix(0.9).stroke_width(1),
            ))?;
        }
    }
    for s in &data.processes {
        for run in &s.mean {
            chart.draw_series(LineSeries::new(run.iter().copied(), s.line.stroke_width(2)))?;
        }
    }

    // Legend and note go where they hide the least data.
    let mut labels: Vec<String> = data.processes.iter().map(|s| s.label.clone()).collect();
    labels.push("mean".into());
    if data.has_median {
        labels.push("median".into());
    }
    if let Some((a, b)) = data.band_levels {
        labels.push(format!("{}–{} quantiles", percent(a), percent(b)));
    }
    let (legend_margin, legend_key) = (8, 30);
    let legend_dim = {
        let font = TextStyle::from((FONT, label_size).into_font());
        let mut text = MultiLineText::<_, &str>::new((0, 0), font);
        labels.iter().for_each(|l| text.push_line(l.as_str()));
        // Only a font error makes this fail; a rough size is then good enough.
        let rough = (
            12 * label_size as i32,
            labels.len() as i32 * label_size as i32 * 5 / 4,
        );
        let (w, h) = text.estimate_dimension().unwrap_or(rough);
        (w + legend_key + 2 * legend_margin, h + 2 * legend_margin)
    };
    let (legend_at, note_at) = {
        let (xr, yr) = chart.plotting_area().get_pixel_range();
        let to_px = |x: f64, y: f64| {
            let (px, py) = chart.backend_coord(&(x, y));
            (px - xr.start, py - yr.start)
        };
        let best = |candidates: Vec<PxBox>| {
            candidates
                .into_iter()
                .min_by_key(|&b| data.crowding(&to_px, b, log))
        };
        let legend_at = best(corner_boxes(legend_dim, area_size, 5)).unwrap_or_default();
        let note_at = best(
            corner_boxes(note_dim, area_size, 10)
                .into_iter()
                .chain([
                    // Right below or above the legend.
                    (
                        legend_at.0 + legend_at.2 - note_dim.0,
                        legend_at.1 + legend_at.3 + 8,
                        note_dim.0,
                        note_dim.1,
                    ),
                    (
                        legend_at.0,
                        legend_at.1 + legend_at.3 + 8,
                        note_dim.0,
                        note_dim.1,
                    ),
                    (
                        legend_at.0 + legend_at.2 - note_dim.0,
                        legend_at.1 - 8 - note_dim.1,
                        note_dim.0,
                        note_dim.1,
                    ),
                    (
                        legend_at.0,
                        legend_at.1 - 8 - note_dim.1,
                        note_dim.0,
                        note_dim.1,
                    ),
                ])
                .filter(|&b| {
                    !boxes_overlap(b, legend_at, 4)
                        && b.0 >= 0
                        && b.1 >= 0
                        && b.0 + b.2 <= area_size.0
                        && b.1 + b.3 <= area_size.1
                })
                .collect(),
        )
        .unwrap_or_else(|| corner_boxes(note_dim, area_size, 10)[2]);
        (legend_at, note_at)
    };

    // Legend: one entry per process, then the line styles.
    for s in &data.processes {
        let (line, band) = (s.line, s.band);
        let has_band = data.band_levels.is_some();
        chart
            .draw_series(std::iter::empty::<PathElement<(f64, f64)>>())?
            .label(s.label.clone())
            .legend(move |(x, y)| {
                EmptyElement::at((x, y))
                    + Rectangle::new(
                        [(0, -6), (22, 6)],
                        if has_band {
                            band.mix(0.25).filled()
                        } else {
                            WHITE.mix(0.0).filled()
                        },
                    )
                    + PathElement::new(vec![(0, 0), (22, 0)], line.stroke_width(2))
            });
    }
    chart
        .draw_series(std::iter::empty::<PathElement<(f64, f64)>>())?
        .label("mean")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 22, y)], GREY_KEY.stroke_width(2)));
    if data.has_median {
        chart
            .draw_series(std::iter::empty::<PathElement<(f64, f64)>>())?
            .label("median")
            .legend(|(x, y)| {
                DashedPathElement::new(vec![(x, y), (x + 22, y)], 6, 4, GREY_KEY.stroke_width(1))
            });
    }
    if let Some((a, b)) = data.band_levels {
        chart
            .draw_series(std::iter::empty::<PathElement<(f64, f64)>>())?
            .label(format!("{}–{} quantiles", percent(a), percent(b)))
            .legend(|(x, y)| {
                Rectangle::new([(x, y - 6), (x + 22, y + 6)], GREY_KEY.mix(0.25).filled())
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::Coordinate(legend_at.0, legend_at.1))
        .margin(legend_margin as u32)
        .legend_area_size(legend_key as u32)
        .label_font((FONT, label_size))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .draw()?;

    draw_note(&area, &note, note_at, label_size)
}

/// SVAG runs: purple shades, one per `l` (darker for larger `l`, closer to the SDE).
const SVAG_COLORS: [RGBColor; 3] = [
    RGBColor(190, 140, 220),
    RGBColor(140, 80, 190),
    RGBColor(90, 30, 140),
];
