//! Figures: weak error against the learning rate on log–log axes, and trajectory bands over time
//! (one panel, or a grid of panels such as the analogue of the paper's Figure 1).
//!
//! Every function writes `<stem>.png` and `<stem>.svg`. Text in the PNG is drawn with DejaVu Sans,
//! embedded in the binary (no system font or fontconfig needed); the SVG keeps text as text.
//! Non-finite values (the mean of an observable once every path diverged, say) are skipped, and
//! so are non-positive values on a logarithmic axis; empty data gives an empty panel with a note.

use crate::error::CompareError;
use crate::observable::Observable;
use crate::study::{Verdict, WeakErrorCurve};
use crate::trajectory::{Trajectory, TrajectoryReport};
use models::sde::SdeModel;
use plotters::coord::ranged1d::{KeyPointHint, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::element::{DashedPathElement, MultiLineText};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::f64::consts::PI;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// DejaVu Sans (Bitstream Vera license, see `assets/DejaVuSans-LICENSE.txt`).
const FONT_BYTES: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
const FONT: &str = "sans-serif";

/// Discrete optimizer: black mean line, grey band.
pub const DISCRETE_LINE: RGBColor = RGBColor(25, 25, 25);
pub const DISCRETE_BAND: RGBColor = RGBColor(115, 115, 115);
const BLUE_C: RGBColor = RGBColor(31, 100, 200);
const GREEN_C: RGBColor = RGBColor(30, 150, 50);
const ORANGE_C: RGBColor = RGBColor(230, 85, 13);
/// For curves whose model name is none of [`SdeModel::ALL`].
const EXTRA: [RGBColor; 4] = [
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(150, 150, 30),
];
const GREY_KEY: RGBColor = RGBColor(90, 90, 90);

type DrawResult<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

/// Color of a model in every figure: first order blue, second order green, stability orange.
pub fn model_color(model: SdeModel) -> RGBColor {
    match model {
        SdeModel::FirstOrder => BLUE_C,
        SdeModel::SecondOrder => GREEN_C,
        SdeModel::Stability => ORANGE_C,
    }
}

fn color_for_name(name: &str, fallback: usize) -> RGBColor {
    SdeModel::ALL
        .iter()
        .find(|m| m.name() == name)
        .map(|&m| model_color(m))
        .unwrap_or(EXTRA[fallback % EXTRA.len()])
}

fn observable_label(name: &str) -> &str {
    Observable::ALL
        .iter()
        .find(|o| o.name() == name)
        .map(|o| o.label())
        .unwrap_or(name)
}

// ---------------------------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------------------------

/// Registers the embedded font under the family names plotters asks for (once per process).
fn register_fonts() -> Result<(), CompareError> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        for family in ["sans-serif", "serif", "monospace"] {
            plotters::style::register_font(family, FontStyle::Normal, FONT_BYTES)
                .map_err(|_| "the embedded font DejaVuSans.ttf could not be parsed".to_string())?;
        }
        Ok(())
    })
    .clone()
    .map_err(CompareError::Plot)
}

/// `stem` with `.ext` appended (not replacing anything: `fig.v2` gives `fig.v2.png`).
fn with_suffix(stem: &Path, ext: &str) -> PathBuf {
    let mut s: OsString = stem.as_os_str().to_owned();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}

/// A figure that can be drawn on any backend.
trait Figure {
    fn size(&self) -> (u32, u32);
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB>;
}

/// Draws `fig` to `<stem>.png` and `<stem>.svg`, creating the parent folder if needed. Each file
/// is drawn into a temporary file beside it and renamed over the target, so an interrupted run
/// never leaves a truncated figure in place of an earlier good one.
fn render<F: Figure>(fig: &F, stem: &Path) -> Result<(), CompareError> {
    register_fonts()?;
    if let Some(dir) = stem.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| CompareError::Io {
            path: dir.display().to_string(),
            source,
        })?;
    }
    let size = fig.size();
    let fail = |path: &Path, e: String| CompareError::Plot(format!("{}: {e}", path.display()));
    let png = with_suffix(stem, "png");
    // The bitmap backend picks the format from the extension, so the temporary name keeps it.
    let png_tmp = temp_beside(&png, "png");
    let drawn = (|| {
        let root = BitMapBackend::new(&png_tmp, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| fail(&png, e.to_string()))?;
        fig.draw(&root).map_err(|e| fail(&png, e.to_string()))?;
        root.present().map_err(|e| fail(&png, e.to_string()))
    })();
    publish_temp(drawn, &png_tmp, &png)?;
    let svg = with_suffix(stem, "svg");
    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| fail(&svg, e.to_string()))?;
        fig.draw(&root).map_err(|e| fail(&svg, e.to_string()))?;
        root.present().map_err(|e| fail(&svg, e.to_string()))?;
    }
    let svg_tmp = temp_beside(&svg, "svg");
    let written = std::fs::write(&svg_tmp, text.as_bytes()).map_err(|source| CompareError::Io {
        path: svg.display().to_string(),
        source,
    });
    publish_temp(written, &svg_tmp, &svg)
}

/// `.<name>.tmp-<pid>-<n>.<ext>` in the folder of `target`.
fn temp_beside(target: &Path, ext: &str) -> PathBuf {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = target
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    target.with_file_name(format!(".{name}.tmp-{}-{n}.{ext}", std::process::id()))
}

/// Rename `tmp` over `target` if `drawn` succeeded; remove `tmp` otherwise.
fn publish_temp(
    drawn: Result<(), CompareError>,
    tmp: &Path,
    target: &Path,
) -> Result<(), CompareError> {
    let renamed = drawn.and_then(|()| {
        std::fs::rename(tmp, target).map_err(|source| CompareError::Io {
            path: target.display().to_string(),
            source,
        })
    });
    if renamed.is_err() {
        let _ = std::fs::remove_file(tmp);
    }
    renamed
}

// ---------------------------------------------------------------------------------------------
// Axes and labels
// ---------------------------------------------------------------------------------------------

fn trim_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

/// Short tick label: up to 4 significant digits in `[1e-3, 1e4)`, scientific outside.
fn fmt_num(v: f64) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    if v == 0.0 {
        return "0".into();
    }
    let a = v.abs();
    if (1e-3..1e4).contains(&a) {
        let decimals = (3 - a.log10().floor() as i32).max(0) as usize;
        trim_zeros(&format!("{v:.decimals$}")).to_string()
    } else {
        let s = format!("{v:.2e}");
        match s.split_once('e') {
            Some((m, e)) => format!("{}e{e}", trim_zeros(m)),
            None => s,
        }
    }
}

/// A positive range padded by the factor `pad` (and to at least a factor 2 overall).
fn log_range(lo: f64, hi: f64, pad: f64) -> (f64, f64) {
    if !(lo > 0.0 && hi >= lo && hi.is_finite()) {
        return (0.1, 10.0);
    }
    let (mut lo, mut hi) = (lo / pad, hi * pad);
    if hi / lo < 2.0 {
        let widen = (2.0 * lo / hi).sqrt();
        lo /= widen;
        hi *= widen;
    }
    (lo, hi)
}

/// Mantissa sets of log-axis ticks, densest first; sparser still are powers of ten only every
/// few decades.
const LOG_MANTISSAS: [&[f64]; 5] = [
    &[
        1.0, 1.2, 1.4, 1.6, 1.8, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 6.0, 7.0, 8.0, 9.0,
    ],
    &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0],
    &[1.0, 2.0, 3.0, 5.0],
    &[1.0, 2.0, 5.0],
    &[1.0],
];

/// A base-10 logarithmic axis whose ticks are `m·10^k` for the densest mantissa set that fits
/// the requested number of labels, from the low end of the range up (the log axis of plotters
/// only ticks from the first power of ten up, which leaves most of a decade unlabelled).
#[derive(Clone, Debug)]
struct LogAxis {
    lo: f64,
    hi: f64,
}

impl LogAxis {
    fn new((lo, hi): (f64, f64)) -> Self {
        if lo > 0.0 && hi > lo && hi.is_finite() {
            LogAxis { lo, hi }
        } else {
            LogAxis { lo: 0.1, hi: 10.0 }
        }
    }

    /// Ticks `m·10^k` in range, for `m` in `set`, every `every` decades.
    fn ticks(&self, set: &[f64], every: i32) -> Vec<f64> {
        let (k0, k1) = (
            self.lo.log10().floor() as i32,
            self.hi.log10().ceil() as i32,
        );
        let (lo, hi) = (self.lo * (1.0 - 1e-9), self.hi * (1.0 + 1e-9));
        let mut out = Vec::new();
        for k in k0..=k1 {
            if k.rem_euclid(every) != 0 {
                continue;
            }
            // m / 10^-k is exact for the short decimal values we want, unlike m * 10^k.
            let scale = |m: f64| {
                if k < 0 {
                    m / 10f64.powi(-k)
                } else {
                    m * 10f64.powi(k)
                }
            };
            out.extend(
                set.iter()
                    .map(|&m| scale(m))
                    .filter(|v| (lo..=hi).contains(v)),
            );
        }
        out
    }

    /// Index into [`LOG_MANTISSAS`] (then decade steps 2, 3, …) of the densest tick set with at
    /// most `max` ticks.
    fn level(&self, max: usize) -> usize {
        let max = max.max(1);
        (0..LOG_MANTISSAS.len() + 400)
            .find(|&l| self.ticks_at(l).len() <= max)
            .unwrap_or(LOG_MANTISSAS.len())
    }

    fn ticks_at(&self, level: usize) -> Vec<f64> {
        match LOG_MANTISSAS.get(level) {
            Some(set) => self.ticks(set, 1),
            None => self.ticks(&[1.0], (level - LOG_MANTISSAS.len() + 2) as i32),
        }
    }
}

impl Ranged for LogAxis {
    type FormatOption = plotters::coord::ranged1d::DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let f = (value.ln() - self.lo.ln()) / (self.hi.ln() - self.lo.ln());
        if !f.is_finite() {
            return if *value > self.lo { limit.1 } else { limit.0 };
        }
        let f = f.clamp(-4.0, 5.0);
        limit.0 + (f * f64::from(limit.1 - limit.0)).round() as i32
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        let bold = self.level(hint.bold_points());
        if hint.weight().allow_light_points() && hint.max_num_points() > hint.bold_points() {
            // Light grid lines: a denser set, 1..9 per decade where the labels are sparser.
            let light = match bold {
                0 => 0,
                1 => 0,
                l if l < LOG_MANTISSAS.len() => 1,
                l => l - 1,
            };
            self.ticks_at(light)
        } else {
            self.ticks_at(bold)
        }
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.lo..self.hi
    }
}

/// A linear range padded by 5% on each side (a point gets a unit or 10% width).
fn lin_range(lo: f64, hi: f64) -> (f64, f64) {
    if !(lo.is_finite() && hi.is_finite() && lo <= hi) {
        return (0.0, 1.0);
    }
    let d = if hi > lo {
        (hi - lo) * 0.05
    } else if lo == 0.0 {
        1.0
    } else {
        lo.abs() * 0.1
    };
    let (a, b) = (lo - d, hi + d);
    if a.is_finite() && b.is_finite() && a < b {
        (a, b)
    } else {
        (lo, hi.max(lo + 1.0))
    }
}

/// `(min, max)` of the finite values, `None` if there is none.
fn min_max(values: impl IntoIterator<Item = f64>) -> Option<(f64, f64)> {
    values
        .into_iter()
        .filter(|v| v.is_finite())
        .fold(None, |acc, v| match acc {
            None => Some((v, v)),
            Some((a, b)) => Some((a.min(v), b.max(v))),
        })
}

/// The part of the line `ln y = a + p ln x` with `x ∈ [x0, x1]` and `y ∈ [y0, y1]`, as its two
/// end points (a straight segment on log–log axes), or `None` if it misses the box.
fn clip_power_line(
    a: f64,
    p: f64,
    (x0, x1): (f64, f64),
    (y0, y1): (f64, f64),
) -> Option<[(f64, f64); 2]> {
    if !(a.is_finite() && p.is_finite() && x0 > 0.0 && y0 > 0.0 && x0 < x1 && y0 < y1) {
        return None;
    }
    let (mut l0, mut l1) = (x0.ln(), x1.ln());
    let (ly0, ly1) = (y0.ln(), y1.ln());
    if p == 0.0 {
        if a < ly0 || a > ly1 {
            return None;
        }
    } else {
        let (u, v) = ((ly0 - a) / p, (ly1 - a) / p);
        l0 = l0.max(u.min(v));
        l1 = l1.min(u.max(v));
    }
    if l0.is_nan() || l1.is_nan() || l0 >= l1 {
        return None;
    }
    let at = |l: f64| (l.exp(), (a + p * l).exp());
    Some([at(l0), at(l1)])
}

/// Splits `(x, y)` pairs into runs of consecutive points that pass `keep`.
fn runs(
    points: impl IntoIterator<Item = (f64, f64)>,
    keep: impl Fn(f64, f64) -> bool,
) -> Vec<Vec<(f64, f64)>> {
    let mut out = Vec::new();
    let mut cur = Vec::new();
    for (x, y) in points {
        if x.is_finite() && keep(x, y) {
            cur.push((x, y));
        } else if !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Pixel offsets of a filled marker: circle, triangle, square, diamond.
fn marker_shape(kind: usize, r: f64) -> Vec<(i32, i32)> {
    let (n, rot, r) = match kind % 4 {
        0 => (16, 0.0, r),
        1 => (3, -PI / 2.0, r * 1.3),
        2 => (4, PI / 4.0, r * 1.2),
        _ => (4, 0.0, r * 1.3),
    };
    (0..n)
        .map(|i| {
            let t = rot + 2.0 * PI * i as f64 / n as f64;
            ((r * t.cos()).round() as i32, (r * t.sin()).round() as i32)
        })
        .collect()
}

/// A box `(x, y, w, h)` in pixels of a drawing area, `(x, y)` its upper left corner.
type PxBox = (i32, i32, i32, i32);

/// Whether two boxes come closer than `gap` pixels.
fn boxes_overlap(a: PxBox, b: PxBox, gap: i32) -> bool {
    a.0 < b.0 + b.2 + gap && b.0 < a.0 + a.2 + gap && a.1 < b.1 + b.3 + gap && b.1 < a.1 + a.3 + gap
}

/// Candidate places of a `w × h` box in a `width × height` area, in order of preference:
/// upper right, upper left, lower left, lower right, then middle right and middle left.
fn corner_boxes((w, h): (i32, i32), (width, height): (i32, i32), pad: i32) -> Vec<PxBox> {
    let (l, r) = (pad, width - pad - w);
    let (t, b, m) = (pad, height - pad - h, (height - h) / 2);
    vec![
        (r, t, w, h),
        (l, t, w, h),
        (l, b, w, h),
        (r, b, w, h),
        (r, m, w, h),
        (l, m, w, h),
    ]
}

/// Size in pixels of lines of notes in the given font size (with their background margin).
fn note_size<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    lines: &[String],
    size: u32,
) -> Result<(i32, i32), DrawingAreaErrorKind<DB::ErrorType>> {
    let style = TextStyle::from((FONT, size).into_font());
    let mut width = 0i32;
    for l in lines {
        width = width.max(area.estimate_text_size(l, &style)?.0 as i32);
    }
    let lh = (f64::from(size) * 1.35).round() as i32;
    Ok((width + 14, lines.len() as i32 * lh + 8))
}

/// Writes lines of text in the box `at` of `area` (from [`note_size`]) on a translucent
/// background.
fn draw_note<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    lines: &[String],
    at: PxBox,
    size: u32,
) -> DrawResult<DB> {
    if lines.is_empty() {
        return Ok(());
    }
    let (x, y, w, h) = at;
    area.draw(&Rectangle::new(
        [(x, y), (x + w, y + h)],
        WHITE.mix(0.85).filled(),
    ))?;
    let style = TextStyle::from((FONT, size).into_font())
        .color(&BLACK)
        .pos(Pos::new(HPos::Left, VPos::Top));
    let lh = (f64::from(size) * 1.35).round() as i32;
    for (i, l) in lines.iter().enumerate() {
        area.draw(&Text::new(
            l.clone(),
            (x + 6, y + 5 + i as i32 * lh),
            style.clone(),
        ))?;
    }
    Ok(())
}

/// Writes a note in the center of `area`.
fn draw_center_note<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    lines: &[String],
    size: u32,
) -> DrawResult<DB> {
    let (w, h) = note_size(area, lines, size)?;
    let (aw, ah) = area.dim_in_pixel();
    let at = ((aw as i32 - w) / 2, (ah as i32 - h) / 2, w, h);
    draw_note(area, lines, at, size)
}

/// Writes a note in the lower right corner of `area`.
fn draw_lower_right_note<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    lines: &[String],
    size: u32,
) -> DrawResult<DB> {
    let (w, h) = note_size(area, lines, size)?;
    let (aw, ah) = area.dim_in_pixel();
    draw_note(
        area,
        lines,
        (aw as i32 - w - 10, ah as i32 - h - 10, w, h),
        size,
    )
}

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
) -> Result<(), CompareError> {
    render(&WeakErrorFigure::new(curves, title), stem)
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
    fn new(curves: &[&WeakErrorCurve], title: &str) -> Self {
        let mut observables: Vec<&str> = curves.iter().map(|c| c.observable.name()).collect();
        observables.sort_unstable();
        observables.dedup();
        let multi_obs = observables.len() > 1;
        let mut skipped = Vec::new();
        let mut seen_models: Vec<SdeModel> = Vec::new();
        let mut bias_notes = Vec::new();
        let series = curves
            .iter()
            .map(|c| {
                let marker = seen_models.iter().filter(|m| **m == c.model).count();
                seen_models.push(c.model);
                let color = model_color(c.model);
                let name = if multi_obs {
                    format!(
                        "{} ({})",
                        c.model.name(),
                        observable_label(c.observable.name())
                    )
                } else {
                    c.model.name().to_string()
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
            [one] => format!("weak error of {}", observable_label(one)),
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
            .build_cartesian_2d(LogAxis::new((x0, x1)), LogAxis::new((y0, y1)))?;
        chart
            .configure_mesh()
            .x_desc("learning rate η")
            .y_desc(self.y_desc.clone())
            .x_labels(6)
            .y_labels(8)
            .x_label_formatter(&|v| fmt_num(*v))
            .y_label_formatter(&|v| fmt_num(*v))
            .label_style((FONT, 15))
            .axis_desc_style((FONT, 17))
            .bold_line_style(BLACK.mix(0.12))
            .light_line_style(BLACK.mix(0.04))
            .draw()?;
        if ranges.is_none() {
            let area = chart.plotting_area().strip_coord_spec();
            draw_center_note(&area, &["no positive weak error to plot".to_string()], 18)?;
            return draw_lower_right_note(&area, &self.notes, 13);
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

        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .margin(12)
            .legend_area_size(30)
            .label_font((FONT, 15))
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK.mix(0.3))
            .draw()?;
        let area = chart.plotting_area().strip_coord_spec();
        draw_lower_right_note(&area, &self.notes, 13)
    }
}

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
) -> Result<(), CompareError> {
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
) -> Result<(), CompareError> {
    if rows == 0 || cols == 0 {
        return Err(CompareError::Plot(format!(
            "a {rows}×{cols} grid has no cell"
        )));
    }
    if panels.len() > rows * cols {
        return Err(CompareError::Plot(format!(
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
        for (i, (m, t)) in r.models.iter().enumerate() {
            let label = if t.label.is_empty() {
                format!("SDE {}", m.name())
            } else {
                t.label.clone()
            };
            let c = color_for_name(m.name(), i);
            procs.push((label, c, c, t));
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
        let chart = builder.build_cartesian_2d(x0..x1, LogAxis::new((y0, y1)))?;
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
        .y_labels(7)
        .x_label_formatter(&|v| fmt_num(*v))
        .y_label_formatter(&|v| fmt_num(*v))
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
        draw_center_note(&area, &[empty], label_size + 2)?;
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

// ---------------------------------------------------------------------------------------------
// Stability: diverged fraction against η
// ---------------------------------------------------------------------------------------------

/// Diverged fraction by the horizon against η, one curve per process with its 95% interval as
/// error bars, one panel per x0 scale; dashed verticals mark the predicted thresholds of the
/// discrete method and of the models (pathwise or exact), in the process's color.
pub fn stability_plot(
    curves: &[crate::stability::StabilityCurve],
    title: &str,
    stem: &Path,
) -> Result<(), CompareError> {
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
    curves: &'a [crate::stability::StabilityCurve],
    scales: Vec<f64>,
}

fn process_color(name: &str) -> RGBColor {
    if name == "discrete" {
        DISCRETE_LINE
    } else {
        color_for_name(name, 0)
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
            let of_scale: Vec<&crate::stability::StabilityCurve> =
                self.curves.iter().filter(|c| c.x0_scale == scale).collect();
            let etas = of_scale
                .iter()
                .flat_map(|c| c.points.iter().map(|p| p.eta))
                .chain(of_scale.iter().flat_map(|c| {
                    c.theory
                        .iter()
                        .filter(|t| t.kind != "mean_square")
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
                    .build_cartesian_2d((x0..x1).log_scale(), -0.03f64..1.03f64)?;
                chart
                    .configure_mesh()
                    .x_desc("η (log scale)")
                    .y_desc("diverged fraction by the horizon (95% Wilson)")
                    .x_label_formatter(&|v| fmt_num(*v))
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
        of_scale: &[&crate::stability::StabilityCurve],
        x0: f64,
        x1: f64,
    ) -> DrawResult<DB>
    where
        X: Ranged<ValueType = f64>,
    {
        for (i, c) in of_scale.iter().enumerate() {
            let color = process_color(&c.process);
            let mut pts: Vec<(f64, f64)> = c
                .points
                .iter()
                .map(|p| (p.eta, p.diverged_fraction))
                .collect();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            // Curves often coincide (all 0 or all 1): earlier ones get larger markers so
            // every process stays visible.
            let radius = (7 - 2 * i as i32).max(2);
            let label = if c.process == "discrete" {
                "discrete".to_string()
            } else {
                format!("SDE {}", c.process)
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
            for t in c.theory.iter().filter(|t| t.kind != "mean_square") {
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
) -> Result<(), CompareError> {
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
                        .map(|(&t, &d)| (t, crate::stability::wilson95(d, c.paths)[1]))
                        .collect();
                    poly.extend(
                        c.times
                            .iter()
                            .zip(c.diverged)
                            .rev()
                            .map(|(&t, &d)| (t, crate::stability::wilson95(d, c.paths)[0])),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::study::{Reference, SideSummary, WeakErrorPoint};
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

    fn curve(
        model: SdeModel,
        observable: Observable,
        c: f64,
        p: f64,
        etas: &[f64],
    ) -> WeakErrorCurve {
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
                    integrator_bias: Some(0.01 * ci),
                    integrator_bias_bound: Some(0.02 * ci),
                    refinement: Vec::new(),
                    variance_reduction: None,
                    random_numbers: Default::default(),
                    discrete: side(),
                    sde: side(),
                    reference: Reference::Coupled,
                    exact: None,
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
        let loss = crate::trajectory::Band {
            observable: "loss",
            mean: mean.clone(),
            ci95: vec![0.01; k + 1],
            quantiles: vec![q10, q(0.95), q(1.0 + spread)],
        };
        // A signed observable: crosses zero.
        let x = crate::trajectory::Band {
            observable: "x",
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
            Err(CompareError::Plot(_))
        ));
        assert!(matches!(
            panel_grid(&panels, 0, 3, "none", &stem),
            Err(CompareError::Plot(_))
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
        let (lo, hi) = log_range(0.3, 0.4, 1.0);
        assert!(lo < 0.3 && hi > 0.4 && hi / lo >= 2.0 - 1e-9);
        // Ticks start at the low end of the range, not at the first power of ten.
        let axis = LogAxis::new((0.0095, 0.25));
        assert_eq!(
            axis.key_points(BoldPoints(5)),
            vec![0.01, 0.02, 0.05, 0.1, 0.2]
        );
        assert_eq!(axis.key_points(BoldPoints(3)), vec![0.01, 0.1]);
        assert_eq!(
            LogAxis::new((0.31, 0.69)).key_points(BoldPoints(6)),
            vec![0.35, 0.4, 0.45, 0.5, 0.6]
        );
        let wide = LogAxis::new((1e-12, 1e3));
        let ticks = wide.key_points(BoldPoints(6));
        assert!(!ticks.is_empty() && ticks.len() <= 6, "{ticks:?}");
        assert_eq!(LogAxis::new((0.0, 1.0)).range(), 0.1..10.0);
        assert_eq!(axis.map(&0.0095, (0, 100)), 0);
        assert_eq!(axis.map(&0.25, (0, 100)), 100);
        assert_eq!(axis.map(&0.0, (0, 100)), 0);
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
    /// `cargo test -p compare plot::tests::render_samples -- --ignored`.
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
}
