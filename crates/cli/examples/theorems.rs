//! The theorem report's numbers and plots (`results/theorems/`):
//!
//!     cargo run --release -p sdelab --example theorems [-- OUT_DIR]
//!
//! Writes `theorems.json` (both reports, every parameter), `step_condition.csv`,
//! `sign_decay.csv`, and `step_condition.png/.svg`, `sign_decay.png/.svg` (from x0 = 2) and
//! `sign_decay_near_minimum.png/.svg` (from x0 = 0.25).

use compare::theorems::{
    sign_decay, step_condition_sweep, SignDecayReport, SignDecaySettings, StepConditionReport,
    StepConditionSettings,
};
use plotters::prelude::*;
use plotters::style::FontStyle;
use std::error::Error;
use std::path::PathBuf;

const FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

type Res<T> = Result<T, Box<dyn Error>>;

fn color(process: &str) -> RGBColor {
    match process {
        "discrete" => RGBColor(0, 0, 0),
        "first_order" => RGBColor(31, 119, 180),
        _ => RGBColor(214, 39, 40),
    }
}

fn label(process: &str) -> &'static str {
    match process {
        "discrete" => "discrete",
        "first_order" => "(A) first order",
        _ => "(C) stability-aware",
    }
}

fn draw_step<DB: DrawingBackend>(
    r: &StepConditionReport,
    root: DrawingArea<DB, plotters::coord::Shift>,
) -> Res<()>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let k0 = r
        .settings
        .kappas
        .iter()
        .cloned()
        .fold(f64::INFINITY, f64::min)
        - 0.02;
    let k1 = r.settings.kappas.iter().cloned().fold(0.0, f64::max) + 0.02;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "§6.3 step-size condition: E‖∇f(x_K)‖²/‖∇f(x0)‖² against κ = step / bound",
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(k0..k1, (1e-42f64..1e8f64).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("κ = c ε (1 = the bound with ε → 1)")
        .y_desc("ratio after K = 20 iterations")
        .y_label_formatter(&|v| format!("{v:.0e}"))
        .draw()?;
    let (a, k, lam) = (r.a, r.settings.iterations as f64, r.settings.lambda);
    let grid: Vec<f64> = (0..=200)
        .map(|i| k0 + (k1 - k0) * i as f64 / 200.0)
        .collect();
    for process in ["discrete", "first_order", "stability"] {
        let c = color(process);
        let exact = |kappa: f64| {
            let u = kappa * 2.0 / (lam * (1.0 + a)) * lam;
            match process {
                "discrete" => ((1.0 - u).powi(2) + u * u * a).powf(k),
                "first_order" => (k * (-2.0 * u + u * u * a)).exp(),
                _ => (k * (-2.0 * u + u * u * (1.0 + a))).exp(),
            }
        };
        chart
            .draw_series(LineSeries::new(
                grid.iter().map(|&x| (x, exact(x).max(1e-42))),
                c.stroke_width(1),
            ))?
            .label(format!("{} (closed form)", label(process)))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
        for p in r.points.iter().filter(|p| p.process == process) {
            let lo = (p.ratio - p.ratio_ci95).max(1e-42);
            let hi = (p.ratio + p.ratio_ci95).max(1e-42);
            chart.draw_series(std::iter::once(Circle::new(
                (p.kappa, p.ratio.max(1e-42)),
                4,
                c.filled(),
            )))?;
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(p.kappa, lo), (p.kappa, hi)],
                c.stroke_width(2),
            )))?;
        }
    }
    chart.draw_series(std::iter::once(PathElement::new(
        vec![(1.0, 1e-42), (1.0, 1e8)],
        RGBColor(120, 120, 120).stroke_width(1),
    )))?;
    chart.draw_series(std::iter::once(PathElement::new(
        vec![(k0, 1.0), (k1, 1.0)],
        RGBColor(120, 120, 120).stroke_width(1),
    )))?;
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

fn draw_sign<DB: DrawingBackend>(
    r: &SignDecayReport,
    root: DrawingArea<DB, plotters::coord::Shift>,
) -> Res<()>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let ks: Vec<f64> = r.settings.checkpoints.iter().map(|&k| k as f64).collect();
    let (x0, x1) = (ks[0] * 0.8, ks[ks.len() - 1] * 1.25);
    let ymax = r.points.iter().map(|p| p.bound).fold(0.0, f64::max) * 2.0;
    let ymin = r
        .points
        .iter()
        .map(|p| p.lhs - p.lhs_ci95)
        .filter(|v| *v > 0.0)
        .fold(f64::INFINITY, f64::min)
        * 0.5;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "DSignSGD, η_k = (k+1)^-1/2, Cauchy noise, x0 = {}: E Φ(x_t̂) vs derived bound [RECONSTRUCTED]",
                r.settings.x0
            ),
            ("sans-serif", 16),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d((x0..x1).log_scale(), (ymin..ymax).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("iterations K (T = Kη)")
        .y_desc("η-weighted mean of Φ = Σ min(g²/s, |g|)")
        .y_label_formatter(&|v| format!("{v:.1e}"))
        .x_label_formatter(&|v| format!("{v:.0}"))
        .draw()?;
    for process in ["discrete", "first_order"] {
        let c = color(process);
        let pts: Vec<_> = r.points.iter().filter(|p| p.process == process).collect();
        chart
            .draw_series(LineSeries::new(
                pts.iter().map(|p| (p.iterations as f64, p.lhs)),
                c.stroke_width(2),
            ))?
            .label(label(process))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
        for p in &pts {
            chart.draw_series(std::iter::once(PathElement::new(
                vec![
                    (p.iterations as f64, (p.lhs - p.lhs_ci95).max(ymin)),
                    (p.iterations as f64, p.lhs + p.lhs_ci95),
                ],
                c.stroke_width(2),
            )))?;
        }
    }
    let pts: Vec<_> = r
        .points
        .iter()
        .filter(|p| p.process == "first_order")
        .collect();
    let grey = RGBColor(100, 100, 100);
    chart
        .draw_series(LineSeries::new(
            pts.iter().map(|p| (p.iterations as f64, p.bound)),
            grey.stroke_width(2),
        ))?
        .label("bound for (A)")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], grey.stroke_width(2)));
    let light = RGBColor(170, 170, 170);
    chart
        .draw_series(LineSeries::new(
            pts.iter().map(|p| (p.iterations as f64, p.bound_floor)),
            light.stroke_width(1),
        ))?
        .label("its floor term ∝ ∫η²/∫η")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], light.stroke_width(1)));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

fn main() -> Res<()> {
    let out = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "results/theorems".into()),
    );
    std::fs::create_dir_all(&out)?;
    for family in ["sans-serif", "serif", "monospace"] {
        plotters::style::register_font(family, FontStyle::Normal, FONT).map_err(|_| "font")?;
    }
    let none = |_: u64| {};
    let step = step_condition_sweep(&StepConditionSettings::default(), &none)?;
    let sign = sign_decay(&SignDecaySettings::default(), &none)?;
    // Started near the minimum, the transient term f(x0)/∫η no longer hides the floor ∫η²/∫η.
    let sign_near = sign_decay(
        &SignDecaySettings {
            x0: 0.25,
            ..SignDecaySettings::default()
        },
        &none,
    )?;

    let mut csv = String::from(
        "kappa,c,step,process,ratio,ratio_ci95,exact,exact_simulated,verdict,diverged\n",
    );
    for p in &step.points {
        csv.push_str(&format!(
            "{},{},{},{},{:e},{:e},{:e},{:e},{},{}\n",
            p.kappa,
            p.c,
            p.step,
            p.process,
            p.ratio,
            p.ratio_ci95,
            p.exact,
            p.exact_simulated,
            p.verdict,
            p.diverged
        ));
    }
    std::fs::write(out.join("step_condition.csv"), csv)?;
    let mut csv = String::from(
        "x0,process,iterations,horizon,int_eta,int_eta_sq,floor_shape,lhs,lhs_ci95,grad_norm_sq,grad_norm_sq_ci95,bound,bound_floor\n",
    );
    for (x0, p) in sign
        .points
        .iter()
        .map(|p| (2.0, p))
        .chain(sign_near.points.iter().map(|p| (0.25, p)))
    {
        csv.push_str(&format!(
            "{x0},{},{},{},{:e},{:e},{:e},{:e},{:e},{:e},{:e},{:e},{:e}\n",
            p.process,
            p.iterations,
            p.horizon,
            p.int_eta,
            p.int_eta_sq,
            p.floor_shape,
            p.lhs,
            p.lhs_ci95,
            p.grad_norm_sq,
            p.grad_norm_sq_ci95,
            p.bound,
            p.bound_floor
        ));
    }
    std::fs::write(out.join("sign_decay.csv"), csv)?;
    let doc = serde_json::json!({
        "command": "cargo run --release -p sdelab --example theorems",
        "reconstructed": "The §6.3 condition is [QUOTED]; its bound and the DSignSGD bound's shape are [RECONSTRUCTED] (MATH.md §6.2-6.4); the DSignSGD constants (ℓ_ν = 2Ξ_ν(1), candidate (b)) are this project's derivation, not the paper's.",
        "step_condition": step,
        "sign_decay": sign,
        "sign_decay_near_minimum": sign_near,
    });
    std::fs::write(
        out.join("theorems.json"),
        serde_json::to_string_pretty(&doc)? + "\n",
    )?;

    let size = (900, 600);
    draw_step(
        &step,
        BitMapBackend::new(&out.join("step_condition.png"), size).into_drawing_area(),
    )?;
    let mut svg = String::new();
    draw_step(
        &step,
        SVGBackend::with_string(&mut svg, size).into_drawing_area(),
    )?;
    std::fs::write(out.join("step_condition.svg"), svg)?;
    draw_sign(
        &sign,
        BitMapBackend::new(&out.join("sign_decay.png"), size).into_drawing_area(),
    )?;
    let mut svg = String::new();
    draw_sign(
        &sign,
        SVGBackend::with_string(&mut svg, size).into_drawing_area(),
    )?;
    std::fs::write(out.join("sign_decay.svg"), svg)?;
    draw_sign(
        &sign_near,
        BitMapBackend::new(&out.join("sign_decay_near_minimum.png"), size).into_drawing_area(),
    )?;
    let mut svg = String::new();
    draw_sign(
        &sign_near,
        SVGBackend::with_string(&mut svg, size).into_drawing_area(),
    )?;
    std::fs::write(out.join("sign_decay_near_minimum.svg"), svg)?;

    for p in &step.points {
        println!(
            "κ = {:.2} {:<12} ratio {:.3e} ± {:.1e} (closed form {:.3e}; Euler chain {:.3e}) {}",
            p.kappa, p.process, p.ratio, p.ratio_ci95, p.exact, p.exact_simulated, p.verdict
        );
    }
    for p in sign.points.iter().chain(&sign_near.points) {
        println!(
            "{:<12} K = {:>5}: E Φ(x_t̂) {:.3e} ± {:.1e}, E‖∇f‖² {:.3e}, bound {:.3e} (floor {:.3e}), ∫η²/∫η {:.3e}",
            p.process, p.iterations, p.lhs, p.lhs_ci95, p.grad_norm_sq, p.bound, p.bound_floor, p.floor_shape
        );
    }
    println!(
        "ℓ_ν = {:.5}, ε = {:.4}, slopes of log E Φ on log(∫η²/∫η): x0 = 2 {:?}, x0 = 0.25 {:?}",
        sign.ell_nu, sign.epsilon, sign.slopes, sign_near.slopes
    );
    Ok(())
}
