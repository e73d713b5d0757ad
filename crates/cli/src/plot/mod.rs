//! Figures: weak error against the learning rate on log–log axes, and trajectory bands over time
//! (one panel, or a grid of panels such as the analogue of the paper's Figure 1).
//!
//! Every function writes `<stem>.png` and `<stem>.svg`. Text in the PNG is drawn with DejaVu Sans,
//! embedded in the binary (no system font or fontconfig needed); the SVG keeps text as text.
//! Non-finite values (the mean of an observable once every path diverged, say) are skipped, and
//! so are non-positive values on a logarithmic axis; empty data gives an empty panel with a note.

use crate::error::CliError;
use compare::study::{Verdict, WeakErrorCurve};
use compare::trajectory::{Trajectory, TrajectoryReport};
use models::sde::SdeModel;
use plotters::coord::cartesian::Cartesian2d;
use plotters::coord::combinators::LogCoord;
use plotters::coord::ranged1d::ValueFormatter;
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
const FONT_BYTES: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");
const FONT: &str = "sans-serif";

/// Discrete optimizer: black mean line, grey band.
pub const DISCRETE_LINE: RGBColor = RGBColor(25, 25, 25);
pub const DISCRETE_BAND: RGBColor = RGBColor(115, 115, 115);
const BLUE_C: RGBColor = RGBColor(31, 100, 200);
const GREEN_C: RGBColor = RGBColor(30, 150, 50);
const ORANGE_C: RGBColor = RGBColor(230, 85, 13);
const GREY_KEY: RGBColor = RGBColor(90, 90, 90);

mod diverged;
mod stability;
mod svag;
#[cfg(test)]
mod tests;
mod trajectory;
mod weak_error;

pub use diverged::{diverged_over_time_grid, DivergedCurve};
pub use stability::stability_plot;
pub use svag::svag_agreement_plot;
pub use trajectory::{panel_grid, trajectory_plot, Panel};
pub use weak_error::{svag_weak_error_plot, weak_error_plot};

/// Why a figure could not be written (the run fails with exit code 1).
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error("could not write {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("plotting failed: {0}")]
    Plot(String),
}

impl From<PlotError> for CliError {
    fn from(e: PlotError) -> Self {
        CliError::Failure(e.to_string())
    }
}

type DrawResult<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

/// Color of a model in every figure: first order blue, second order green, stability orange.
pub fn model_color(model: SdeModel) -> RGBColor {
    match model {
        SdeModel::FirstOrder => BLUE_C,
        SdeModel::SecondOrder => GREEN_C,
        SdeModel::Stability => ORANGE_C,
    }
}

// ---------------------------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------------------------

/// Registers the embedded font under the family names plotters asks for (once per process).
fn register_fonts() -> Result<(), PlotError> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        for family in ["sans-serif", "serif", "monospace"] {
            plotters::style::register_font(family, FontStyle::Normal, FONT_BYTES)
                .map_err(|_| "the embedded font DejaVuSans.ttf could not be parsed".to_string())?;
        }
        Ok(())
    })
    .clone()
    .map_err(PlotError::Plot)
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
fn render<F: Figure>(fig: &F, stem: &Path) -> Result<(), PlotError> {
    register_fonts()?;
    if let Some(dir) = stem.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| PlotError::Io {
            path: dir.display().to_string(),
            source,
        })?;
    }
    let size = fig.size();
    let fail = |path: &Path, e: String| PlotError::Plot(format!("{}: {e}", path.display()));
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
    let written = std::fs::write(&svg_tmp, text.as_bytes()).map_err(|source| PlotError::Io {
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
fn publish_temp(drawn: Result<(), PlotError>, tmp: &Path, target: &Path) -> Result<(), PlotError> {
    let renamed = drawn.and_then(|()| {
        std::fs::rename(tmp, target).map_err(|source| PlotError::Io {
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

/// A positive range padded by the factor `pad` (and to at least a factor 2 overall), its lower
/// end then lowered to a power of ten and its upper end raised to at least the next one.
/// plotters' log axis labels powers of ten (and their multiples only when asked for more labels
/// than the figures can hold): this way both ends of the data lie between labelled decades.
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
    // The tolerance keeps a bound that is a power of ten up to rounding from losing a decade.
    let down = 10f64.powf((lo.log10() + 1e-9).floor());
    if down > 0.0 {
        (down, hi.max(10.0 * down))
    } else {
        (lo, hi)
    }
}

/// Label of a log-axis tick: `m·10^k` is labelled for `m` = 1, 2, 3, 5 only; the other
/// multiples keep their grid line (labelled, 7, 8 and 9 would crowd the top of each decade).
fn log_label(v: f64) -> String {
    if !(v > 0.0 && v.is_finite()) {
        return String::new();
    }
    let k = (v.log10() + 1e-9).floor();
    let m = v / 10f64.powf(k);
    let r = m.round();
    if (m - r).abs() < 1e-6 && [1.0, 2.0, 3.0, 5.0, 10.0].contains(&r) {
        fmt_num(v)
    } else {
        String::new()
    }
}

/// Labels asked of a log axis: plotters labels the multiples 2…9 of each power of ten only when
/// asked for ten labels per decade or more, so a range of a decade or so gets them and a wider
/// one its powers of ten alone.
const LOG_LABELS: usize = 10;

/// plotters' log axis over `(lo, hi)`, a range from [`log_range`]. Its ticks start at
/// `10^ceil(log10 lo)`, and `log10(0.1)` rounds to a hair above −1: the range is widened by a
/// relative 1e-9 so that the power of ten at its bottom is ticked.
fn log_axis((lo, hi): (f64, f64)) -> LogCoord<f64> {
    (lo * (1.0 - 1e-9)..hi * (1.0 + 1e-9)).log_scale().into()
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

/// The mesh of a log–log chart: decade labels on both axes, a light grid, the axes' names.
fn draw_log_log_mesh<DB: DrawingBackend>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<LogCoord<f64>, LogCoord<f64>>>,
    x_desc: &str,
    y_desc: &str,
) -> DrawResult<DB> {
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .x_labels(LOG_LABELS)
        .y_labels(LOG_LABELS)
        .x_label_formatter(&|v| log_label(*v))
        .y_label_formatter(&|v| log_label(*v))
        .label_style((FONT, 15))
        .axis_desc_style((FONT, 17))
        .bold_line_style(BLACK.mix(0.12))
        .light_line_style(BLACK.mix(0.04))
        .draw()
}

/// The legend of a log–log chart at `position`: the weak-error figures' box and font.
fn draw_log_log_legend<'a, DB: DrawingBackend + 'a>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<LogCoord<f64>, LogCoord<f64>>>,
    position: SeriesLabelPosition,
) -> DrawResult<DB> {
    chart
        .configure_series_labels()
        .position(position)
        .margin(12)
        .legend_area_size(30)
        .label_font((FONT, 15))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK.mix(0.3))
        .draw()
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

/// Where [`draw_placed_note`] puts a note in its area.
#[derive(Clone, Copy)]
pub(crate) enum NotePlace {
    Center,
    /// 10 px from the right and bottom edges.
    LowerRight,
}

/// Writes a note of `lines` at `place` in `area`, sized to its text.
fn draw_placed_note<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    lines: &[String],
    size: u32,
    place: NotePlace,
) -> DrawResult<DB> {
    let (w, h) = note_size(area, lines, size)?;
    let (aw, ah) = area.dim_in_pixel();
    let (aw, ah) = (aw as i32, ah as i32);
    let (x, y) = match place {
        NotePlace::Center => ((aw - w) / 2, (ah - h) / 2),
        NotePlace::LowerRight => (aw - w - 10, ah - h - 10),
    };
    draw_note(area, lines, (x, y, w, h), size)
}
