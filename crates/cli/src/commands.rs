//! The work behind each subcommand. `main` has already parsed and validated the input (bad input
//! is exit code 2 before anything here runs); these functions do the numerics through `compare`,
//! write results with [`crate::output`] (every file atomically), and return
//! [`CliError::Failure`] on anything else.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::plot::{
    diverged_over_time_grid, panel_grid, stability_plot, svag_agreement_plot, svag_weak_error_plot,
    trajectory_plot, weak_error_plot, DivergedCurve, Panel,
};
use compare::figure1::{figure1_work, Arm, ArmId, Figure1Optimizer, Figure1Panel, Figure1Params};
use compare::stability::{
    stability_sweep_with_svag, stability_work, svag_stability_work, wilson95, StabilityCurve,
};
use compare::study::{can_couple, study_work, weak_error_study, WeakErrorCurve};
use compare::svag::{svag_study_work, svag_weak_error, SvagStudy};
use compare::trajectory::{trajectories, trajectory_work, TrajectoryReport};
use compare::{CompareError, Observable};
use indicatif::ProgressBar;
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

/// The result document of every subcommand (CLI.md): the same envelope around what the
/// subcommand found. `source` and `body` are flattened, so the keys stand in this order.
#[derive(Serialize)]
struct Document<S, B> {
    sdelab_version: &'static str,
    /// Fingerprint of the published files (see [`run_id`]).
    run_id: String,
    /// What the run was asked for: [`FromConfig`] or figure 1's `command`.
    #[serde(flatten)]
    source: S,
    /// Only in the `--json` document on stdout; the folder has them in `timing.json` (so a
    /// committed `result.json` does not change when it is regenerated).
    #[serde(skip_serializing_if = "Option::is_none")]
    wall_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    threads: Option<usize>,
    #[serde(flatten)]
    body: B,
    /// Every other file of the folder, with its size and hash.
    files: Vec<FileEntry>,
}

/// The source of the subcommands that read a config file.
#[derive(Serialize)]
struct FromConfig<'a> {
    /// The config file, as given on the command line.
    config_path: String,
    config: &'a ExperimentConfig,
}

/// A subcommand that reads a config file (`weak-error`, `run`, `stability`), from the moment
/// its input is read: the start and the end they share.
pub struct ConfigRun<'a> {
    cfg: &'a ExperimentConfig,
    opts: &'a OutputOptions,
    globals: &'a Globals,
    start: Instant,
    opt: build::Opt,
}

impl<'a> ConfigRun<'a> {
    /// Starts the clock and builds the optimizer of `cfg`.
    pub fn new(
        cfg: &'a ExperimentConfig,
        opts: &'a OutputOptions,
        globals: &'a Globals,
    ) -> Result<Self, CliError> {
        let start = Instant::now();
        let opt = build::optimizer(cfg)?;
        Ok(ConfigRun {
            cfg,
            opts,
            globals,
            start,
            opt,
        })
    }

    /// No progress and no announcement: asked for, or `--json` keeps stdout and stderr clean.
    fn quiet(&self) -> bool {
        self.globals.quiet || self.opts.json
    }

    /// [`begin`] in `--out`.
    fn begin(
        &self,
        estimate: Option<crate::budget::Estimate>,
        work: (u64, &str),
    ) -> Result<(Publication, ProgressBar), CliError> {
        begin(&self.opts.out, estimate, self.globals, self.quiet(), work)
    }

    /// [`finish`] with the config as the source; then the document alone on stdout with
    /// `--json`, else `table` and the files written.
    fn finish<B: Serialize>(
        &self,
        publication: Publication,
        body: B,
        table: impl FnOnce(),
    ) -> Result<(), CliError> {
        let source = FromConfig {
            config_path: self.opts.config_path.display().to_string(),
            config: self.cfg,
        };
        let (doc, names) = finish(publication, self.start, self.globals, source, body)?;
        if self.opts.json {
            return print_json(&doc);
        }
        table();
        print_written(&self.opts.out, &names, doc.wall_seconds.unwrap_or(0.0));
        Ok(())
    }
}

/// The start of every subcommand that writes a folder: the work is checked against the ceilings
/// of [`crate::budget`] (unless there is no estimate) and announced before the output folder is
/// taken, so a refused run leaves the folder as it was; then the progress bar of `work` units.
fn begin(
    out: &Path,
    estimate: Option<crate::budget::Estimate>,
    globals: &Globals,
    quiet: bool,
    (work, label): (u64, &str),
) -> Result<(Publication, ProgressBar), CliError> {
    if let Some(estimate) = estimate {
        estimate.check(globals.force)?;
        estimate.announce(quiet);
    }
    let publication = Publication::begin(out, globals.lock_mode())?;
    Ok((publication, progress_bar(work, label, quiet)))
}

/// Keeps the config next to the results it produced.
fn write_config_copy(dir: &Path, cfg: &ExperimentConfig) -> Result<(), CliError> {
    write_atomic(&dir.join("config.toml"), cfg.to_toml_string()?.as_bytes())
}

/// Finish a run: list the files written so far in the publication's folder, build the result
/// document from that manifest and the run id, write `result.json` and `timing.json`, publish
/// the folder. Returns the document with the timings filled in (for `--json`) and the names of
/// the files written.
fn finish<S: Serialize, B: Serialize>(
    publication: Publication,
    start: Instant,
    globals: &Globals,
    source: S,
    body: B,
) -> Result<(Document<S, B>, Vec<String>), CliError> {
    let dir = publication.dir().to_path_buf();
    let files = manifest(&dir)?;
    let id = run_id(&files);
    let mut names: Vec<String> = files.iter().map(|f| f.name.clone()).collect();
    let mut doc = Document {
        sdelab_version: VERSION,
        run_id: id,
        source,
        wall_seconds: None,
        threads: None,
        body,
        files,
    };
    write_json(&dir.join(RESULT_FILE), &doc)?;
    let wall_seconds = start.elapsed().as_secs_f64();
    write_json(
        &dir.join(TIMING_FILE),
        &Timing {
            run_id: &doc.run_id,
            wall_seconds,
            threads: globals.threads,
        },
    )?;
    publication.commit()?;
    names.insert(0, RESULT_FILE.to_string());
    names.push(TIMING_FILE.to_string());
    doc.wall_seconds = Some(wall_seconds);
    doc.threads = Some(globals.threads);
    Ok((doc, names))
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
    CliError::from_compare(e)
}

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// What the result document of `sdelab weak-error` holds (CLI.md).
#[derive(Serialize)]
struct WeakErrorBody<'a> {
    common_random_numbers_used: bool,
    weak_error: &'a [WeakErrorCurve],
    /// SVAG as a weak-error reference, when `sde.models` lists "svag" (absent otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    svag: Option<&'a SvagStudy>,
}

/// `sdelab weak-error`: weak error and fitted orders over `cfg.run.etas`.
pub fn weak_error(job: &ConfigRun) -> Result<(), CliError> {
    let (cfg, opt) = (job.cfg, &job.opt);
    let settings = build::study_settings(cfg);
    let exact = build::exact_moments(cfg, opt);
    let coupled = can_couple(opt, &settings);
    let estimate = crate::budget::experiment(cfg, false, job.globals.threads, coupled);
    let svag_l = &cfg.sde.svag_l;
    let svag_work = if svag_l.is_empty() {
        0
    } else {
        svag_study_work(&settings, svag_l)
    };
    let (publication, bar) = job.begin(
        Some(estimate),
        (study_work(&settings, coupled) + svag_work, "weak error"),
    )?;
    let curves = weak_error_study(
        opt,
        &settings,
        exact
            .as_ref()
            .map(|e| e as &dyn compare::exact::ExactMoments),
        &|n| bar.inc(n),
    )
    .map_err(failure)?;
    // After the study, on streams of its own: the study's numbers do not depend on it.
    let svag = if svag_l.is_empty() {
        None
    } else {
        Some(svag_weak_error(opt, &settings, svag_l, &curves, &|n| bar.inc(n)).map_err(failure)?)
    };
    bar.finish_and_clear();
    write_weak_error_files(publication.dir(), cfg, &curves, svag.as_ref())?;
    let body = WeakErrorBody {
        common_random_numbers_used: coupled,
        weak_error: &curves,
        svag: svag.as_ref(),
    };
    job.finish(publication, body, || {
        print_weak_error_table(&curves);
        if let Some(sv) = &svag {
            print_svag_table(sv);
        }
    })
}

fn write_weak_error_files(
    out: &Path,
    cfg: &ExperimentConfig,
    curves: &[WeakErrorCurve],
    svag: Option<&SvagStudy>,
) -> Result<(), CliError> {
    // No NaN in a CSV: a missing value is an empty cell.
    let opt = csv_opt_f64;
    // The model column: the model's name, or `svag l=<l>` for an SVAG row.
    let labelled: Vec<(String, &WeakErrorCurve)> = curves
        .iter()
        .map(|c| (c.model.name().to_string(), c))
        .chain(
            svag.into_iter()
                .flat_map(|s| s.curves.iter().map(|c| (c.label.clone(), &c.curve))),
        )
        .collect();
    let mut rows = Vec::new();
    for (name, c) in &labelled {
        for p in &c.points {
            rows.push(vec![
                name.clone(),
                c.observable.name().to_string(),
                csv_f64(p.eta),
                p.iterations.to_string(),
                p.substeps.to_string(),
                p.sde_estimator.name().to_string(),
                opt(p.weak_error),
                opt(p.ci95),
                opt(p.ci95_interval.map(|i| i[0])),
                opt(p.ci95_interval.map(|i| i[1])),
                opt(p.ci95_monte_carlo),
                opt(p.ci95_pointwise),
                p.at_iteration.map_or(String::new(), |k| k.to_string()),
                opt(p.integrator_bias),
                opt(p.integrator_bias_bound),
                opt(p.variance_reduction),
                opt(p.discrete.final_mean),
                opt(p.sde.final_mean),
                p.discrete.diverged.to_string(),
                csv_f64(p.discrete.diverged_fraction),
                p.sde.diverged.to_string(),
                csv_f64(p.sde.diverged_fraction),
                p.reference.name().to_string(),
                opt(p.exact.as_ref().map(|e| e.weak_error)),
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
            "substeps",
            "sde_estimator",
            "weak_error",
            "ci95",
            "ci95_low",
            "ci95_high",
            "ci95_monte_carlo",
            "ci95_pointwise",
            "at_iteration",
            "integrator_bias",
            "integrator_bias_bound",
            "variance_reduction",
            "discrete_final_mean",
            "sde_final_mean",
            "discrete_diverged",
            "discrete_diverged_fraction",
            "sde_diverged",
            "sde_diverged_fraction",
            "reference",
            "exact_weak_error",
        ],
        &rows,
    )?;
    let orders: Vec<Vec<String>> = labelled
        .iter()
        .map(|(name, c)| {
            vec![
                name.clone(),
                c.observable.name().to_string(),
                c.verdict.name().to_string(),
                opt(c.order),
                opt(c.order_ci95.map(|i| i[0])),
                opt(c.order_ci95.map(|i| i[1])),
                csv_f64(c.expected_order),
                c.consistent_with_expected
                    .map_or(String::new(), |b| b.to_string()),
                opt(c.exact_order),
            ]
        })
        .collect();
    write_csv(
        &out.join("orders.csv"),
        &[
            "model",
            "observable",
            "verdict",
            "order",
            "order_ci95_low",
            "order_ci95_high",
            "expected_order",
            "consistent_with_expected",
            "exact_order",
        ],
        &orders,
    )?;
    for obs in &cfg.run.observables {
        let of_obs: Vec<&WeakErrorCurve> = curves.iter().filter(|c| c.observable == *obs).collect();
        let name = obs.name();
        let title = format!("{}: weak error of {} against η", cfg.name, name);
        weak_error_plot(&of_obs, &title, &out.join(format!("weak_error_{name}")))?;
    }
    if let Some(sv) = svag {
        write_svag_files(out, cfg, curves, sv)?;
    }
    write_config_copy(out, cfg)
}

/// `svag_agreement.csv`, `svag_order_in_l.csv` and the SVAG figures (CLI.md).
fn write_svag_files(
    out: &Path,
    cfg: &ExperimentConfig,
    curves: &[WeakErrorCurve],
    sv: &SvagStudy,
) -> Result<(), CliError> {
    let opt = csv_opt_f64;
    let rows: Vec<Vec<String>> = sv
        .agreement
        .iter()
        .map(|a| {
            vec![
                a.l.to_string(),
                a.observable.name().to_string(),
                csv_f64(a.eta),
                a.iterations.to_string(),
                opt(a.svag_mean),
                opt(a.svag_ci95),
                opt(a.sde_mean),
                opt(a.sde_ci95),
                opt(a.sde_integrator_bias_bound),
                a.sde_reference.name().to_string(),
                opt(a.difference),
                opt(a.ci95),
                opt(a.ci95_interval.map(|i| i[0])),
                opt(a.ci95_interval.map(|i| i[1])),
                a.contains_zero.map_or(String::new(), |b| b.to_string()),
                a.svag_diverged.to_string(),
            ]
        })
        .collect();
    write_csv(
        &out.join("svag_agreement.csv"),
        &[
            "l",
            "observable",
            "eta",
            "iterations",
            "svag_final_mean",
            "svag_final_ci95",
            "first_order_final_mean",
            "first_order_final_ci95",
            "first_order_integrator_bias_bound",
            "first_order_reference",
            "difference",
            "ci95",
            "ci95_low",
            "ci95_high",
            "contains_zero",
            "svag_diverged",
        ],
        &rows,
    )?;
    let rows: Vec<Vec<String>> = sv
        .agreement_in_l
        .iter()
        .map(|f| {
            let ls: Vec<String> = f.fitted_l.iter().map(|l| l.to_string()).collect();
            vec![
                f.observable.name().to_string(),
                csv_f64(f.eta),
                ls.join(" "),
                opt(f.fit.map(|x| x.slope)),
                opt(f.fit.map(|x| x.ci95[0])),
                opt(f.fit.map(|x| x.ci95[1])),
                csv_f64(f.expected_order),
                f.resolved.to_string(),
            ]
        })
        .collect();
    write_csv(
        &out.join("svag_order_in_l.csv"),
        &[
            "observable",
            "eta",
            "fitted_l",
            "order",
            "order_ci95_low",
            "order_ci95_high",
            "expected_order",
            "resolved",
        ],
        &rows,
    )?;
    for obs in &cfg.run.observables {
        let name = obs.name();
        let first_order: Vec<&WeakErrorCurve> = curves
            .iter()
            .filter(|c| c.observable == *obs && c.model == models::sde::SdeModel::FirstOrder)
            .collect();
        let svag: Vec<(&str, &WeakErrorCurve)> = sv
            .curves
            .iter()
            .filter(|c| c.curve.observable == *obs)
            .map(|c| (c.label.as_str(), &c.curve))
            .collect();
        let title = format!(
            "{}: weak error of {} against η, SVAG(l) and (A)",
            cfg.name, name
        );
        svag_weak_error_plot(
            &first_order,
            &svag,
            &title,
            &out.join(format!("svag_weak_error_{name}")),
        )?;
        let agreement: Vec<_> = sv
            .agreement
            .iter()
            .filter(|a| a.observable == *obs)
            .collect();
        let title = format!(
            "{}: |E {name}(SVAG l) − E {name}((A))| at the horizon",
            cfg.name
        );
        svag_agreement_plot(
            &agreement,
            &title,
            &out.join(format!("svag_agreement_{name}")),
        )?;
    }
    Ok(())
}

fn print_svag_table(sv: &SvagStudy) {
    println!();
    println!("SVAG against the discrete method (independent ensembles):");
    print_weak_error_table_labelled(sv.curves.iter().map(|c| (c.label.as_str(), &c.curve)));
    println!("SVAG against (A) at the horizon: difference [95% interval]");
    for a in &sv.agreement {
        let (d, ci) = (a.difference.unwrap_or(f64::NAN), a.ci95.unwrap_or(f64::NAN));
        println!(
            "  l = {:<5} eta = {:<8} {:<10} {:>+11.3e} [{:+.3e}, {:+.3e}] {}",
            a.l,
            a.eta,
            a.observable.name(),
            d,
            d - ci,
            d + ci,
            match a.contains_zero {
                Some(true) => "agree",
                Some(false) => "differ",
                None => "—",
            }
        );
    }
    for note in &sv.notes {
        println!("  {note}");
    }
}

fn print_weak_error_table(curves: &[WeakErrorCurve]) {
    print_weak_error_table_labelled(curves.iter().map(|c| (c.model.name(), c)));
    // The second stage, once per learning rate (every curve's point there was rerun).
    let mut seen: Vec<f64> = Vec::new();
    for p in curves.iter().flat_map(|c| &c.points) {
        if let Some(r) = &p.rerun {
            if seen.contains(&p.eta) {
                continue;
            }
            seen.push(p.eta);
            println!(
                "second stage: eta = {} ran again on {} fresh paths (first stage: {}; the points shown are the second stage's), asked by:",
                p.eta,
                p.sde.paths.max(p.discrete.paths),
                r.first_paths
            );
            for a in &r.asked_by {
                println!("    {a}");
            }
        }
    }
}

/// The table of curves, each under its name (a model's, or `svag l=<l>`).
fn print_weak_error_table_labelled<'a>(
    curves: impl IntoIterator<Item = (&'a str, &'a WeakErrorCurve)>,
) {
    println!(
        "{:<13} {:<10} {:<11} {:>9}  {:>18}  {:>8}",
        "model", "observable", "verdict", "order", "95% interval", "expected"
    );
    for (name, c) in curves {
        // An order is shown only where the measurement supports it.
        let (order, ci) = match (c.verdict, c.order, c.order_ci95) {
            (compare::study::Verdict::Resolved, Some(o), Some([a, b])) => {
                (format!("{o:.3}"), format!("[{a:.3}, {b:.3}]"))
            }
            _ => ("—".to_string(), "—".to_string()),
        };
        println!(
            "{:<13} {:<10} {:<11} {:>9}  {:>18}  {:>8}",
            name,
            c.observable.name(),
            c.verdict.name(),
            order,
            ci,
            c.expected_order
        );
        for r in &c.verdict_reasons {
            println!("    {r}");
        }
        for w in &c.warnings {
            println!("    warning: {w}");
        }
    }
}

/// What the result document of `sdelab run` holds.
#[derive(Serialize)]
struct RunBody<'a> {
    /// The quantile bands are taken over the first this many paths (their values are kept in
    /// memory); means and intervals over all `run.paths`.
    quantile_paths: u64,
    trajectories: &'a TrajectoryReport,
}

/// `sdelab run`: mean and quantile trajectories at `cfg.run.etas[0]`.
pub fn run(job: &ConfigRun) -> Result<(), CliError> {
    let (cfg, opt) = (job.cfg, &job.opt);
    let settings = build::trajectory_settings(cfg);
    let estimate = crate::budget::experiment(cfg, true, job.globals.threads, false);
    let svag_l = &cfg.sde.svag_l;
    let work = trajectory_work(&settings) + compare::svag::svag_work(&settings, svag_l);
    let (publication, bar) = job.begin(Some(estimate), (work, "run"))?;
    let dir = publication.dir().to_path_buf();
    let mut report = trajectories(opt, &settings, &|n| bar.inc(n)).map_err(failure)?;
    report.svag = compare::svag::svag_trajectories(opt, &settings, svag_l, &|n| bar.inc(n))
        .map_err(failure)?;
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
        )?;
    }
    write_config_copy(&dir, cfg)?;
    let body = RunBody {
        quantile_paths: settings.quantile_paths,
        trajectories: &report,
    };
    job.finish(publication, body, || ())
}

/// Prepares a report for drawing. Quantile bands count diverged paths as `+∞`; they are pinned
/// at the divergence threshold so a band that reaches them shows the blow-up instead of
/// vanishing. The mean is over the paths that have not diverged; once half of them have, it
/// describes a minority of survivors and would read as convergence, so it is not drawn.
fn clamp_for_plot(report: &TrajectoryReport, ceiling: f64) -> TrajectoryReport {
    let mut r = report.clone();
    for t in r.processes_mut() {
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
        for t in report.processes() {
            for b in &t.bands {
                for k in 0..t.times.len() {
                    let mut row = vec![
                        panel.to_string(),
                        t.label.clone(),
                        b.observable.name().to_string(),
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
    /// `no_scheduler`, `scheduler` (the seed's two rows), `decaying`, `step_matched` (additions).
    arm: Arm,
    title: &'a str,
    optimizer: Figure1Optimizer,
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
    /// Mean loss of the surviving paths at the horizon; `null` once half of the paths or more
    /// diverged (it would describe a minority of survivors).
    final_mean_loss_of_survivors: Option<f64>,
    /// Median over all paths (diverged ones count as +∞), over the quantile paths.
    final_median_loss: f64,
    diverged: u64,
    diverged_fraction: f64,
    /// Wilson score 95% interval of the diverged fraction.
    diverged_ci95: [f64; 2],
}

/// The source of `sdelab figure1`: the command line that reproduces it.
#[derive(Serialize)]
struct Figure1Command {
    command: String,
}

/// What the result document of `sdelab figure1` holds.
#[derive(Serialize)]
struct Figure1Body<'a> {
    params: &'a Figure1Params,
    panels: Vec<PanelSummary<'a>>,
    /// Arms the seed's Appendix B does not have: the pre-scheduled decay `(k+1)^{-1/2}` of
    /// D(C)SGD and the step-matched constant control.
    additions: Vec<PanelSummary<'a>>,
    /// The SDE side rerun at twice the substeps, per arm (`optimizer:arm`).
    substep_checks: &'a [(ArmId, compare::figure1::SubstepCheck)],
    substep_checks_pass: bool,
}

fn panel_summaries(panels: &[Figure1Panel]) -> Vec<PanelSummary<'_>> {
    panels
        .iter()
        .map(|p| {
            let procs =
                std::iter::once(&p.report.discrete).chain(p.report.models.iter().map(|(_, t)| t));
            PanelSummary {
                row: p.row,
                column: p.column,
                arm: p.arm,
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
                        let diverged = t.diverged[last];
                        ProcessSummary {
                            label: t.label.clone(),
                            initial_mean_loss: band.map_or(f64::NAN, |b| b.mean[0]),
                            final_mean_loss_of_survivors: band
                                .map(|b| b.mean[last])
                                .filter(|_| 2 * diverged < t.paths),
                            final_median_loss: band
                                .and_then(|b| b.quantiles.get(1).map(|q| q[last]))
                                .unwrap_or(f64::NAN),
                            diverged,
                            diverged_fraction: diverged as f64 / t.paths as f64,
                            diverged_ci95: wilson95(diverged, t.paths),
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
    let work = (figure1_work(&params), "figure 1");
    let (publication, bar) = begin(&opts.out, Some(estimate), globals, globals.quiet, work)?;
    let dir = publication.dir().to_path_buf();
    let result = compare::figure1::figure1(&params, &|n| bar.inc(n)).map_err(failure)?;
    bar.finish_and_clear();
    let all: Vec<&Figure1Panel> = result.panels.iter().chain(&result.additions).collect();
    let labelled: Vec<(String, &TrajectoryReport)> = all
        .iter()
        .map(|p| {
            let id = ArmId {
                optimizer: p.optimizer,
                arm: p.arm,
            };
            (id.to_string(), &p.report)
        })
        .collect();
    let refs: Vec<(&str, &TrajectoryReport)> =
        labelled.iter().map(|(l, r)| (l.as_str(), *r)).collect();
    write_trajectory_csv(&dir.join("figure1.csv"), &refs)?;
    let clamped: Vec<TrajectoryReport> = all
        .iter()
        .map(|p| clamp_for_plot(&p.report, params.diverge_above))
        .collect();
    let panels: Vec<Panel> = all
        .iter()
        .zip(&clamped)
        .map(|(p, r)| Panel {
            title: p.title.clone(),
            report: r,
            observable: Observable::Loss,
            log_y: true,
        })
        .collect();
    let (seed_panels, added_panels) = panels.split_at(result.panels.len());
    let title = format!(
        "Loss: discrete optimizer vs first-order SDE ({} paths, N = {}, d = {}; median dashed, 10-90% band, diverged at the top)",
        params.paths, params.agents, params.dim
    );
    panel_grid(seed_panels, 2, 3, &title, &dir.join("figure1"))?;
    let title = "Additions to Figure 1: pre-scheduled decay (k+1)^-1/2 and the step-matched constant control (discrete vs first-order SDE)";
    panel_grid(added_panels, 2, 2, title, &dir.join("figure1_additions"))?;
    let mut diverged_panels = Vec::new();
    for (optimizer, name) in [
        (Figure1Optimizer::Dsgd, "DSGD"),
        (Figure1Optimizer::Dcsgd, "DCSGD, random sparsification"),
    ] {
        let mut curves = Vec::new();
        for p in all.iter().filter(|p| p.optimizer == optimizer) {
            let arm = match p.arm {
                Arm::NoScheduler => format!("constant η = {}", p.eta),
                Arm::Scheduler => "normalized (§6.3)".to_string(),
                Arm::Decaying => "(k+1)^-1/2 (addition)".to_string(),
                Arm::StepMatched => format!("constant η = {:.3}, step-matched (addition)", p.eta),
            };
            let r = &p.report;
            curves.push(DivergedCurve {
                label: format!("discrete, {arm}"),
                color: p.row,
                dashed: false,
                times: &r.discrete.times,
                diverged: &r.discrete.diverged,
                paths: r.discrete.paths,
            });
            for (_, t) in &r.models {
                curves.push(DivergedCurve {
                    label: format!("{}, {arm}", t.label),
                    color: p.row,
                    dashed: true,
                    times: &t.times,
                    diverged: &t.diverged,
                    paths: t.paths,
                });
            }
        }
        diverged_panels.push((name.to_string(), curves));
    }
    diverged_over_time_grid(
        &diverged_panels,
        &format!(
            "Paths diverged over time, from x0 = {} (discrete solid with 95% band, SDE dashed)",
            params.x0
        ),
        &dir.join("figure1_diverged"),
    )?;
    let mut command = String::from("sdelab figure1");
    if let Some(p) = opts.paths {
        command.push_str(&format!(" --paths {p}"));
    }
    if let Some(s) = opts.seed {
        command.push_str(&format!(" --seed {s}"));
    }
    let body = Figure1Body {
        params: &params,
        panels: panel_summaries(&result.panels),
        additions: panel_summaries(&result.additions),
        substep_checks: &result.substep_checks,
        substep_checks_pass: result.substep_checks.iter().all(|(_, c)| c.agrees),
    };
    let (doc, names) = finish(
        publication,
        start,
        globals,
        Figure1Command { command },
        body,
    )?;
    for p in doc.body.panels.iter().chain(&doc.body.additions) {
        let cells: Vec<String> = p
            .processes
            .iter()
            .map(|s| {
                let survivors = s
                    .final_mean_loss_of_survivors
                    .map_or(String::new(), |m| format!(", mean of survivors {m:.3e}"));
                format!(
                    "{}: diverged {}/{} [{:.3}, {:.3}], final median loss {:.3e}{survivors}",
                    s.label,
                    s.diverged,
                    p.paths,
                    s.diverged_ci95[0],
                    s.diverged_ci95[1],
                    s.final_median_loss
                )
            })
            .collect();
        println!("{:<55} {}", p.title, cells.join("; "));
    }
    for (arm, c) in &result.substep_checks {
        if !c.agrees {
            let gap = c.max_mean_loss_gap_in_ci95.map_or(String::new(), |g| {
                format!(", mean loss gap {g:.1} x its 95% half-width")
            });
            println!(
                "warning: {arm}: the SDE moves when its substeps double ({} -> {}: {} -> {} diverged{gap})",
                c.substeps, c.substeps_doubled, c.diverged, c.diverged_doubled
            );
        }
    }
    print_written(&opts.out, &names, doc.wall_seconds.unwrap_or(0.0));
    Ok(())
}

/// What the result document of `sdelab stability` holds (CLI.md).
#[derive(Serialize)]
struct StabilityBody<'a> {
    /// How `diverged`, `ci95` and the substep check are defined.
    method: &'static str,
    /// Whether every SDE point passed its substep-doubling check.
    substep_checks_pass: bool,
    /// How the SVAG curves are run, when `sde.svag_l` asks for them (absent otherwise, so the
    /// document of a sweep without SVAG is unchanged).
    #[serde(skip_serializing_if = "Option::is_none")]
    svag_method: Option<&'static str>,
    stability: &'a [StabilityCurve],
}

const STABILITY_SVAG_METHOD: &str = "process 'svag l=<l>': SVAG(l) (Li, Malladi & Arora 2021): per iteration l steps of eta/l, each along r1 u1 + r2 u2 with u1, u2 two independent draws of the method's direction and r1,2 = (1 +- sqrt(2l - 1))/2; diverged and ci95 as for the discrete method, one run per point on its own stream (no integrator, so no substep check and no theory). l = 1 is the discrete method in law; as l grows SVAG(l) tends weakly to (A), so its threshold moves from the discrete method's towards (A)'s";

const STABILITY_METHOD: &str = "diverged = paths whose loss passes run.diverge_above (or turns non-finite) at any iteration up to the horizon; ci95 = Wilson score 95% interval; measured_threshold = grid points around the first eta with diverged_fraction >= 1/2; SDE points: run at m and 2m substeps (m from sde.substeps, raised so that eta/m times the drift's Jacobian norm at x0 is <= 1), doubling while a pooled two-proportion test at 95% rejects equality, up to eta/4096; the finer run is reported; theory: 'exact' (noise-free closed form), 'pathwise' (almost-sure growth rate; the long-horizon limit of the diverged fraction), 'mean_square' (growth of E|x|^2), given where the build knows them";

/// `sdelab stability`: diverged fraction against η (and x0 scale).
pub fn stability(job: &ConfigRun) -> Result<(), CliError> {
    let (cfg, opt) = (job.cfg, &job.opt);
    let settings = build::stability_settings(cfg);
    let svag_l = &cfg.sde.svag_l;
    let work = stability_work(&settings) + svag_stability_work(&settings, svag_l);
    let (publication, bar) = job.begin(None, (work, "stability"))?;
    let dir = publication.dir().to_path_buf();
    let curves = stability_sweep_with_svag(
        opt,
        &settings,
        svag_l,
        &|x0| build::stability_theory(opt, x0),
        &|n| bar.inc(n),
    )
    .map_err(failure)?;
    bar.finish_and_clear();
    let mut rows = Vec::new();
    for c in &curves {
        for p in &c.points {
            let check = p.substep_check.as_ref();
            rows.push(vec![
                c.process.name().to_string(),
                csv_f64(c.x0_scale),
                csv_f64(p.eta),
                p.iterations.to_string(),
                p.diverged.to_string(),
                p.paths.to_string(),
                csv_f64(p.diverged_fraction),
                csv_f64(p.ci95[0]),
                csv_f64(p.ci95[1]),
                check.map_or(String::new(), |c| c.substeps.to_string()),
                check.map_or(String::new(), |c| c.substeps_coarse.to_string()),
                check.map_or(String::new(), |c| c.diverged_coarse.to_string()),
                check.map_or(String::new(), |c| c.agrees.to_string()),
            ]);
        }
    }
    write_csv(
        &dir.join("stability.csv"),
        &[
            "process",
            "x0_scale",
            "eta",
            "iterations",
            "diverged",
            "paths",
            "diverged_fraction",
            "ci95_low",
            "ci95_high",
            "substeps",
            "substeps_coarse",
            "diverged_coarse",
            "substep_check_agrees",
        ],
        &rows,
    )?;
    let title = format!(
        "{}: paths diverged by T = {} against η ({} paths per point)",
        cfg.name, cfg.run.horizon, cfg.run.paths
    );
    stability_plot(&curves, &title, &dir.join("stability"))?;
    write_config_copy(&dir, cfg)?;
    let substep_checks_pass = curves
        .iter()
        .flat_map(|c| &c.points)
        .all(|p| p.substep_check.as_ref().is_none_or(|c| c.agrees));
    let body = StabilityBody {
        method: STABILITY_METHOD,
        substep_checks_pass,
        svag_method: (!svag_l.is_empty()).then_some(STABILITY_SVAG_METHOD),
        stability: &curves,
    };
    job.finish(publication, body, || {
        print_stability_table(&curves);
        if !substep_checks_pass {
            println!("warning: some SDE points still move when their substeps double (see substep_check in result.json)");
        }
    })
}

fn print_stability_table(curves: &[StabilityCurve]) {
    println!(
        "{:<13} {:>8}  {:>24}  theory",
        "process", "x0 scale", "threshold bracket (η)"
    );
    for c in curves {
        let m = &c.measured_threshold;
        let show = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{x}"));
        let bracket = match m.first_diverging_eta {
            None => format!("none diverges (≤ {})", show(m.last_stable_eta)),
            Some(hi) => format!("({}, {hi}]", show(m.last_stable_eta)),
        };
        let theory: Vec<String> = c
            .theory
            .iter()
            .map(|t| {
                format!(
                    "{} {}",
                    t.kind.name(),
                    t.eta.map_or("never".to_string(), |e| format!("{e:.4}"))
                )
            })
            .collect();
        println!(
            "{:<13} {:>8}  {:>24}  {}",
            c.process.name(),
            c.x0_scale,
            bracket,
            theory.join(", ")
        );
    }
}

/// `sdelab list`: every loss, noise, compressor, schedule, optimizer, SDE model and scheme the
/// build knows, with its parameters.
pub fn list(markdown: bool) -> Result<(), CliError> {
    if markdown {
        print!("{}", crate::config::key_tables_markdown());
        return Ok(());
    }
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
