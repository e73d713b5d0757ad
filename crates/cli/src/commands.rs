//! The work behind each subcommand. `main` has already parsed and validated the input (bad input
//! is exit code 2 before anything here runs); these functions do the numerics through `compare`,
//! write results with [`crate::output`] (every file atomically), and return
//! [`CliError::Failure`] on anything else.

use std::path::{Path, PathBuf};
use std::time::Instant;

use compare::figure1::{figure1_work, Figure1Params, Figure1Result};
use compare::plot::{panel_grid, trajectory_plot, weak_error_plot, Panel};
use compare::study::{can_couple, study_work, weak_error_study, WeakErrorCurve};
use compare::trajectory::{trajectories, trajectory_work, TrajectoryReport};
use compare::{CompareError, Observable};
use serde::Serialize;

use crate::build;
use crate::config::ExperimentConfig;
use crate::error::CliError;
use crate::output::{
    csv_f64, csv_opt_f64, manifest, print_json, progress_bar, run_id, write_atomic, write_csv,
    write_json, FileEntry, LockMode, Publication, RESULT_FILE, TIMING_FILE,
};

/// Options shared by every subcommand.
#[derive(Debug, Clone)]
pub struct Globals {
    /// `--quiet`: no progress bars (see [`crate::output::progress_bar`]).
    pub quiet: bool,
    /// The number of worker threads of the rayon global pool (`--threads`, default all cores).
    pub threads: usize,
    /// `--wait`: wait for a run holding the output folder instead of failing.
    pub wait: bool,
    /// `--force`: run work above the ceilings of [`crate::budget`].
    pub force: bool,
}

impl Globals {
    fn lock_mode(&self) -> LockMode {
        if self.wait {
            LockMode::Wait
        } else {
            LockMode::FailIfHeld
        }
    }
}

/// `timing.json`: what varies from run to run, kept out of `result.json` (which is the same bits
/// for the same inputs, so a committed result folder stays unchanged when it is regenerated).
#[derive(Serialize)]
struct Timing<'a> {
    run_id: &'a str,
    wall_seconds: f64,
    threads: usize,
}

/// Finish a run: list the files written so far in `pub_dir`, let `document` build the result
/// document from that manifest and the run id, write `result.json` and `timing.json`, publish
/// the folder, and report. Returns the document with the timings filled in (for `--json`).
fn finish<D: Serialize>(
    publication: Publication,
    start: Instant,
    globals: &Globals,
    document: impl FnOnce(String, Vec<FileEntry>) -> D,
    with_timing: impl FnOnce(D, f64, usize) -> D,
) -> Result<(D, Vec<String>), CliError> {
    let dir = publication.dir().to_path_buf();
    let files = manifest(&dir)?;
    let id = run_id(&files);
    let mut names: Vec<String> = files.iter().map(|f| f.name.clone()).collect();
    let doc = document(id.clone(), files);
    write_json(&dir.join(RESULT_FILE), &doc)?;
    let wall_seconds = start.elapsed().as_secs_f64();
    write_json(
        &dir.join(TIMING_FILE),
        &Timing {
            run_id: &id,
            wall_seconds,
            threads: globals.threads,
        },
    )?;
    publication.commit()?;
    names.insert(0, RESULT_FILE.to_string());
    names.push(TIMING_FILE.to_string());
    Ok((with_timing(doc, wall_seconds, globals.threads), names))
}

/// The closing lines of a run on stdout: the folder and every file in it that the run wrote.
fn print_written(out: &Path, names: &[String], wall_seconds: f64) {
    println!("wrote {} in {wall_seconds:.1} s:", out.display());
    for n in names {
        println!("  {}", out.join(n).display());
    }
}

/// `sdelab figure1` options.
#[derive(Debug, Clone)]
pub struct Figure1Options {
    /// `--out DIR` (default `results/figure1`).
    pub out: PathBuf,
    /// `--paths N` (≥ 2); `None`: the built-in default.
    pub paths: Option<usize>,
    /// `--seed S`; `None`: the built-in default.
    pub seed: Option<u64>,
}

/// Options of `sdelab weak-error` and `sdelab run`.
#[derive(Debug, Clone)]
pub struct OutputOptions {
    /// The config file the experiment came from.
    pub config_path: PathBuf,
    /// `--out DIR`, or the default `results/<name>/weak-error` / `results/<name>/run`.
    pub out: PathBuf,
    /// `--json`: print the result document on stdout, and nothing else.
    pub json: bool,
}

fn failure(e: CompareError) -> CliError {
    match e {
        CompareError::BadSetting { .. } | CompareError::Model(_) | CompareError::Sde(_) => {
            CliError::BadInput(e.to_string())
        }
        other => CliError::Failure(other.to_string()),
    }
}

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The result document of `sdelab weak-error` (CLI.md).
#[derive(Serialize)]
struct WeakErrorDocument<'a> {
    sdelab_version: &'static str,
    /// Fingerprint of the published files (see [`run_id`]).
    run_id: String,
    /// The config file, as given on the command line.
    config_path: String,
    config: &'a ExperimentConfig,
    /// Only in the `--json` document on stdout; the folder has them in `timing.json`.
    #[serde(skip_serializing_if = "Option::is_none")]
    wall_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    threads: Option<usize>,
    common_random_numbers_used: bool,
    weak_error: &'a [WeakErrorCurve],
    /// Every other file of the folder, with its size and hash.
    files: Vec<FileEntry>,
}

/// `sdelab weak-error`: weak error and fitted orders over `cfg.run.etas`.
pub fn weak_error(
    cfg: &ExperimentConfig,
    opts: &OutputOptions,
    globals: &Globals,
) -> Result<(), CliError> {
    let start = Instant::now();
    let opt = build::optimizer(cfg)?;
    let settings = build::study_settings(cfg);
    let exact = build::exact_moments(cfg, &opt);
    let coupled = can_couple(&opt, &settings);
    let estimate = crate::budget::experiment(cfg, false, globals.threads, coupled);
    estimate.check(globals.force)?;
    estimate.announce(globals.quiet || opts.json);
    let publication = Publication::begin(&opts.out, globals.lock_mode())?;
    let bar = progress_bar(
        study_work(&settings, coupled),
        "weak error",
        globals.quiet || opts.json,
    );
    let curves = weak_error_study(
        &opt,
        &settings,
        exact
            .as_ref()
            .map(|e| e as &dyn compare::exact::ExactMoments),
        &|n| bar.inc(n),
    )
    .map_err(failure)?;
    bar.finish_and_clear();
    write_weak_error_files(publication.dir(), cfg, &curves)?;
    let (doc, names) = finish(
        publication,
        start,
        globals,
        |run_id, files| WeakErrorDocument {
            sdelab_version: VERSION,
            run_id,
            config_path: opts.config_path.display().to_string(),
            config: cfg,
            wall_seconds: None,
            threads: None,
            common_random_numbers_used: coupled,
            weak_error: &curves,
            files,
        },
        |doc, wall, threads| WeakErrorDocument {
            wall_seconds: Some(wall),
            threads: Some(threads),
            ..doc
        },
    )?;
    if opts.json {
        print_json(&doc)?;
    } else {
        print_weak_error_table(&curves);
        print_written(&opts.out, &names, doc.wall_seconds.unwrap_or(0.0));
    }
    Ok(())
}

fn write_weak_error_files(
    out: &Path,
    cfg: &ExperimentConfig,
    curves: &[WeakErrorCurve],
) -> Result<(), CliError> {
    let mut rows = Vec::new();
    for c in curves {
        for p in &c.points {
            rows.push(vec![
                c.model.to_string(),
                c.observable.to_string(),
                csv_f64(p.eta),
                p.iterations.to_string(),
                csv_f64(p.weak_error),
                csv_f64(p.ci95),
                p.at_iteration.to_string(),
                csv_f64(p.discrete.final_mean),
                csv_f64(p.sde.final_mean),
                p.discrete.diverged.to_string(),
                p.sde.diverged.to_string(),
                p.reference.to_string(),
                csv_opt_f64(p.exact.as_ref().map(|e| e.weak_error)),
            ]);
        }
    }
    write_csv(
        &out.join("weak_error.csv"),
        &[
            "model",
            "observable",
            "eta",
            "iterations",
            "weak_error",
            "ci95",
            "at_iteration",
            "discrete_final_mean",
            "sde_final_mean",
            "discrete_diverged",
            "sde_diverged",
            "reference",
            "exact_weak_error",
        ],
        &rows,
    )?;
    let orders: Vec<Vec<String>> = curves
        .iter()
        .map(|c| {
            vec![
                c.model.to_string(),
                c.observable.to_string(),
                csv_opt_f64(c.order),
                csv_opt_f64(c.order_ci95.map(|[lo, _]| lo)),
                csv_opt_f64(c.order_ci95.map(|[_, hi]| hi)),
                csv_f64(c.expected_order),
                csv_opt_f64(c.exact_order),
            ]
        })
        .collect();
    write_csv(
        &out.join("orders.csv"),
        &[
            "model",
            "observable",
            "order",
            "order_ci95_low",
            "order_ci95_high",
            "expected_order",
            "exact_order",
        ],
        &orders,
    )?;
    for obs in &cfg.run.observables {
        let name = obs.name();
        let of_obs: Vec<&WeakErrorCurve> = curves.iter().filter(|c| c.observable == name).collect();
        let title = format!("{}: weak error of {} against η", cfg.name, name);
        weak_error_plot(&of_obs, &title, &out.join(format!("weak_error_{name}")))
            .map_err(failure)?;
    }
    write_atomic(&out.join("config.toml"), cfg.to_toml_string()?.as_bytes())
}

fn print_weak_error_table(curves: &[WeakErrorCurve]) {
    println!(
        "{:<13} {:<10} {:>9}  {:>18}  {:>8}",
        "model", "observable", "order", "95% interval", "expected"
    );
    for c in curves {
        let order = c.order.map_or("n/a".to_string(), |o| format!("{o:.3}"));
        let ci = c
            .order_ci95
            .map_or("n/a".to_string(), |[a, b]| format!("[{a:.3}, {b:.3}]"));
        println!(
            "{:<13} {:<10} {:>9}  {:>18}  {:>8}",
            c.model, c.observable, order, ci, c.expected_order
        );
        for w in &c.warnings {
            println!("    warning: {w}");
        }
    }
}

/// The result document of `sdelab run`.
#[derive(Serialize)]
struct RunDocument<'a> {
    sdelab_version: &'static str,
    /// Fingerprint of the published files (see [`run_id`]).
    run_id: String,
    /// The config file, as given on the command line.
    config_path: String,
    config: &'a ExperimentConfig,
    /// Only in the `--json` document on stdout; the folder has them in `timing.json`.
    #[serde(skip_serializing_if = "Option::is_none")]
    wall_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    threads: Option<usize>,
    /// The quantile bands are taken over the first this many paths (their values are kept in
    /// memory); means and intervals over all `run.paths`.
    quantile_paths: u64,
    trajectories: &'a TrajectoryReport,
    /// Every other file of the folder, with its size and hash.
    files: Vec<FileEntry>,
}

/// `sdelab run`: mean and quantile trajectories at `cfg.run.etas[0]`.
pub fn run(
    cfg: &ExperimentConfig,
    opts: &OutputOptions,
    globals: &Globals,
) -> Result<(), CliError> {
    let start = Instant::now();
    let opt = build::optimizer(cfg)?;
    let settings = build::trajectory_settings(cfg);
    let estimate = crate::budget::experiment(cfg, true, globals.threads, false);
    estimate.check(globals.force)?;
    estimate.announce(globals.quiet || opts.json);
    let publication = Publication::begin(&opts.out, globals.lock_mode())?;
    let dir = publication.dir().to_path_buf();
    let bar = progress_bar(
        trajectory_work(&settings),
        "run",
        globals.quiet || opts.json,
    );
    let report = trajectories(&opt, &settings, &|n| bar.inc(n)).map_err(failure)?;
    bar.finish_and_clear();
    write_trajectory_csv(&dir.join("trajectories.csv"), &[(&cfg.name, &report)])?;
    for obs in &settings.observables {
        let title = format!("{}: {} at η = {}", cfg.name, obs.label(), settings.eta);
        let log_y =
            *obs == Observable::Loss || *obs == Observable::GradNorm || *obs == Observable::XSq;
        let plot_report = clamp_for_plot(&report, settings.diverge_above);
        trajectory_plot(
            &plot_report,
            *obs,
            log_y,
            &title,
            &dir.join(format!("trajectory_{}", obs.name())),
        )
        .map_err(failure)?;
    }
    write_atomic(&dir.join("config.toml"), cfg.to_toml_string()?.as_bytes())?;
    let (doc, names) = finish(
        publication,
        start,
        globals,
        |run_id, files| RunDocument {
            sdelab_version: VERSION,
            run_id,
            config_path: opts.config_path.display().to_string(),
            config: cfg,
            wall_seconds: None,
            threads: None,
            quantile_paths: settings.quantile_paths,
            trajectories: &report,
            files,
        },
        |doc, wall, threads| RunDocument {
            wall_seconds: Some(wall),
            threads: Some(threads),
            ..doc
        },
    )?;
    if opts.json {
        print_json(&doc)?;
    } else {
        print_written(&opts.out, &names, doc.wall_seconds.unwrap_or(0.0));
    }
    Ok(())
}

/// Prepares a report for drawing. Quantile bands count diverged paths as `+∞`; they are pinned
/// at the divergence threshold so a band that reaches them shows the blow-up instead of
/// vanishing. The mean is over the paths that have not diverged; once half of them have, it
/// describes a minority of survivors and would read as convergence, so it is not drawn.
fn clamp_for_plot(report: &TrajectoryReport, ceiling: f64) -> TrajectoryReport {
    let mut r = report.clone();
    let procs = std::iter::once(&mut r.discrete).chain(r.models.iter_mut().map(|(_, t)| t));
    for t in procs {
        for b in &mut t.bands {
            for (m, &div) in b.mean.iter_mut().zip(&t.diverged) {
                if 2 * div >= t.paths {
                    *m = f64::NAN;
                }
            }
            for q in &mut b.quantiles {
                for v in q.iter_mut() {
                    if *v == f64::INFINITY {
                        *v = ceiling;
                    }
                }
            }
        }
    }
    r
}

/// One CSV of every process, observable and iteration: mean, 95% half-width, quantiles,
/// diverged count. The first element of each pair labels the report in the `panel` column (the
/// experiment name for `run`, `<optimizer>:<schedule>` for figure 1).
fn write_trajectory_csv(
    path: &Path,
    reports: &[(&str, &TrajectoryReport)],
) -> Result<(), CliError> {
    let Some((_, first)) = reports.first() else {
        return Ok(());
    };
    let levels = &first.quantile_levels;
    let mut header: Vec<String> = vec![
        "panel".into(),
        "process".into(),
        "observable".into(),
        "k".into(),
        "t".into(),
        "mean".into(),
        "ci95".into(),
    ];
    header.extend(levels.iter().map(|q| format!("q{q}")));
    header.push("diverged".into());
    let mut rows = Vec::new();
    for (panel, report) in reports {
        let procs = std::iter::once(&report.discrete).chain(report.models.iter().map(|(_, t)| t));
        for t in procs {
            for b in &t.bands {
                for k in 0..t.times.len() {
                    let mut row = vec![
                        panel.to_string(),
                        t.label.clone(),
                        b.observable.to_string(),
                        k.to_string(),
                        csv_f64(t.times[k]),
                        csv_f64(b.mean[k]),
                        csv_f64(b.ci95[k]),
                    ];
                    row.extend(b.quantiles.iter().map(|q| csv_f64(q[k])));
                    row.push(t.diverged[k].to_string());
                    rows.push(row);
                }
            }
        }
    }
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    write_csv(path, &header, &rows)
}

/// Per-panel summary in `result.json` (the full curves are in `figure1.csv`).
#[derive(Serialize)]
struct PanelSummary<'a> {
    row: usize,
    column: usize,
    title: &'a str,
    optimizer: &'a str,
    schedule: &'a str,
    eta: f64,
    iterations: usize,
    paths: u64,
    processes: Vec<ProcessSummary>,
}

#[derive(Serialize)]
struct ProcessSummary {
    label: String,
    initial_mean_loss: f64,
    final_mean_loss: f64,
    final_median_loss: f64,
    diverged: u64,
}

#[derive(Serialize)]
struct Figure1Document<'a> {
    sdelab_version: &'static str,
    /// Fingerprint of the published files (see [`run_id`]).
    run_id: String,
    command: String,
    /// Never in `result.json` (the committed figure must not change when regenerated): the
    /// folder has the timings in `timing.json`.
    #[serde(skip_serializing_if = "Option::is_none")]
    wall_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    threads: Option<usize>,
    params: &'a Figure1Params,
    panels: Vec<PanelSummary<'a>>,
    /// Every other file of the folder, with its size and hash.
    files: Vec<FileEntry>,
}

fn panel_summaries(r: &Figure1Result) -> Vec<PanelSummary<'_>> {
    r.panels
        .iter()
        .map(|p| {
            let procs =
                std::iter::once(&p.report.discrete).chain(p.report.models.iter().map(|(_, t)| t));
            PanelSummary {
                row: p.row,
                column: p.column,
                title: &p.title,
                optimizer: p.optimizer,
                schedule: &p.schedule,
                eta: p.eta,
                iterations: p.report.iterations,
                paths: p.report.discrete.paths,
                processes: procs
                    .map(|t| {
                        let band = t.band(Observable::Loss);
                        let last = t.times.len() - 1;
                        ProcessSummary {
                            label: t.label.clone(),
                            initial_mean_loss: band.map_or(f64::NAN, |b| b.mean[0]),
                            final_mean_loss: band.map_or(f64::NAN, |b| b.mean[last]),
                            final_median_loss: band
                                .and_then(|b| b.quantiles.get(1).map(|q| q[last]))
                                .unwrap_or(f64::NAN),
                            diverged: t.diverged[last],
                        }
                    })
                    .collect(),
            }
        })
        .collect()
}

/// `sdelab figure1`: the Figure 1 analogue.
pub fn figure1(opts: &Figure1Options, globals: &Globals) -> Result<(), CliError> {
    let start = Instant::now();
    let mut params = Figure1Params::default();
    if let Some(p) = opts.paths {
        params.paths = p as u64;
        params.quantile_paths = params.quantile_paths.min(p as u64);
    }
    if let Some(s) = opts.seed {
        params.seed = s;
    }
    let estimate = crate::budget::figure1(&params, globals.threads);
    estimate.check(globals.force)?;
    estimate.announce(globals.quiet);
    let publication = Publication::begin(&opts.out, globals.lock_mode())?;
    let dir = publication.dir().to_path_buf();
    let bar = progress_bar(figure1_work(&params), "figure 1", globals.quiet);
    let result = compare::figure1::figure1(&params, &|n| bar.inc(n)).map_err(failure)?;
    bar.finish_and_clear();
    let labelled: Vec<(String, &TrajectoryReport)> = result
        .panels
        .iter()
        .map(|p| {
            (
                format!(
                    "{}:{}",
                    p.optimizer,
                    if p.row == 0 {
                        "no_scheduler"
                    } else {
                        "scheduler"
                    }
                ),
                &p.report,
            )
        })
        .collect();
    let refs: Vec<(&str, &TrajectoryReport)> =
        labelled.iter().map(|(l, r)| (l.as_str(), *r)).collect();
    write_trajectory_csv(&dir.join("figure1.csv"), &refs)?;
    let clamped: Vec<TrajectoryReport> = result
        .panels
        .iter()
        .map(|p| clamp_for_plot(&p.report, params.diverge_above))
        .collect();
    let panels: Vec<Panel> = result
        .panels
        .iter()
        .zip(&clamped)
        .map(|(p, r)| Panel {
            title: p.title.clone(),
            report: r,
            observable: Observable::Loss,
            log_y: true,
        })
        .collect();
    let title = format!(
        "Loss: discrete optimizer vs first-order SDE ({} paths, N = {}, d = {}; median dashed, 10-90% band, diverged at the top)",
        params.paths, params.agents, params.dim
    );
    panel_grid(&panels, 2, 3, &title, &dir.join("figure1")).map_err(failure)?;
    let mut command = String::from("sdelab figure1");
    if let Some(p) = opts.paths {
        command.push_str(&format!(" --paths {p}"));
    }
    if let Some(s) = opts.seed {
        command.push_str(&format!(" --seed {s}"));
    }
    let (doc, names) = finish(
        publication,
        start,
        globals,
        |run_id, files| Figure1Document {
            sdelab_version: VERSION,
            run_id,
            command,
            wall_seconds: None,
            threads: None,
            params: &params,
            panels: panel_summaries(&result),
            files,
        },
        |doc, wall, threads| Figure1Document {
            wall_seconds: Some(wall),
            threads: Some(threads),
            ..doc
        },
    )?;
    for p in &doc.panels {
        let cells: Vec<String> = p
            .processes
            .iter()
            .map(|s| {
                format!(
                    "{}: final mean loss {:.3e}, diverged {}/{}",
                    s.label, s.final_mean_loss, s.diverged, p.paths
                )
            })
            .collect();
        println!("{:<55} {}", p.title, cells.join("; "));
    }
    print_written(&opts.out, &names, doc.wall_seconds.unwrap_or(0.0));
    Ok(())
}

/// `sdelab list`: every loss, noise, compressor, schedule, optimizer, SDE model and scheme the
/// build knows, with its parameters.
pub fn list() -> Result<(), CliError> {
    let mut section = "";
    for (kind, name, params) in crate::config::catalog() {
        if kind != section {
            println!("{kind}:");
            section = kind;
        }
        println!("  {name:<16} {params}");
    }
    Ok(())
}
