//! Work estimate and ceiling: before a run starts, how many path-steps it will take, how long
//! that is expected to last and how much memory it needs; work above [`MAX_PATH_STEPS`] or
//! memory above [`MAX_MEMORY_BYTES`] is refused (exit code 2, naming the key that drives it)
//! unless `--force`.
//!
//! The time is a documented per-step cost, not a calibration run: one path-step costs about
//! [`NS_PER_PATH_STEP`] plus [`NS_PER_AGENT_COORDINATE`] per agent and coordinate on one core of
//! this project's machine kind. Fitted to two end-to-end runs on 2 cores: the DSGD weak-error
//! example (d = 1, N = 1, 2.7e8 path-steps, 48 core-seconds: observables, statistics and the
//! weak-order-2 scheme dominate) and `figure1` (d = 10, N = 8, 9.0e7 path-steps, 20
//! core-seconds); the formula gives 41 and 35 core-seconds. Estimates are meant to be right
//! within a factor of two.

use crate::config::{ExperimentConfig, LossKind, NoiseModel, NoiseSpec};
use crate::error::CliError;

/// Path-steps (discrete iterations plus SDE substeps, summed over paths, processes and learning
/// rates) above which a run is refused without `--force`: days of computing on a laptop.
pub const MAX_PATH_STEPS: f64 = 1e12;
/// Estimated peak memory above which a run is refused without `--force`.
pub const MAX_MEMORY_BYTES: f64 = 2.0 * 1024.0 * 1024.0 * 1024.0;
/// Single-core time of one path-step apart from the gradients (see the module documentation).
pub const NS_PER_PATH_STEP: f64 = 150.0;
/// Single-core time per agent and coordinate of one path-step (README, "Speed": a DSGD iteration
/// with N = 8, d = 10 draws 80 normals in 374 ns).
pub const NS_PER_AGENT_COORDINATE: f64 = 3.0;
/// Student-t draws cost about this many Gaussian ones (README, "Speed": 3.3 µs against 374 ns).
const STUDENT_T_FACTOR: f64 = 8.0;
/// `adaptive_em` cuts each substep into pieces where the coefficients are large: on `figure1`
/// (8 substeps) it measured 79 core-seconds where the Euler–Maruyama formula gives 22, so its
/// substeps count this many times.
const ADAPTIVE_EM_FACTOR: f64 = 3.5;

/// What one substep of `scheme` costs, in Euler–Maruyama substeps (the unit of the per-step cost).
fn substep_cost(scheme: sde_core::SchemeKind) -> f64 {
    match scheme {
        sde_core::SchemeKind::AdaptiveEm => ADAPTIVE_EM_FACTOR,
        _ => 1.0,
    }
}
/// Parsing TOML keeps about this many bytes per number of the file until the config is built
/// (measured: 800 MB for a config with 4 million numbers).
const PARSE_BYTES_PER_NUMBER: f64 = 200.0;
/// Runs expected to take longer than this print their estimate first.
const ANNOUNCE_ABOVE_SECONDS: f64 = 10.0;

/// What a run will cost.
#[derive(Debug, Clone, PartialEq)]
pub struct Estimate {
    pub path_steps: f64,
    /// Expected wall time on `threads` cores.
    pub seconds: f64,
    pub memory_bytes: f64,
    /// The config keys (with their values) that drive the path-steps and the memory.
    pub steps_key: String,
    pub memory_key: String,
    /// `weak-error` with `run.max_paths` above `run.paths`: the most a second stage can add
    /// (path-steps, seconds), were every learning rate rerun on `run.max_paths` paths. Announced,
    /// not checked against the ceiling: it runs only for curves that are unresolved for want of
    /// paths, and the cap is the user's.
    pub second_stage: Option<(f64, f64)>,
}

impl Estimate {
    /// Refuse the run (exit code 2) if it is above a ceiling and `force` is off.
    pub fn check(&self, force: bool) -> Result<(), CliError> {
        if force {
            return Ok(());
        }
        if !(self.path_steps <= MAX_PATH_STEPS) {
            return Err(CliError::BadInput(format!(
                "{}: the run would take {:.2e} path-steps (about {}), above the ceiling of \
                 {MAX_PATH_STEPS:.0e}; lower it, or pass --force to run anyway",
                self.steps_key,
                self.path_steps,
                human_seconds(self.seconds)
            )));
        }
        if !(self.memory_bytes <= MAX_MEMORY_BYTES) {
            return Err(CliError::BadInput(format!(
                "{}: the run would need about {} of memory, above the ceiling of {}; lower it, \
                 or pass --force to run anyway",
                self.memory_key,
                human_bytes(self.memory_bytes),
                human_bytes(MAX_MEMORY_BYTES)
            )));
        }
        Ok(())
    }

    /// Print the estimate on stderr when the run is long (not with `--quiet`).
    pub fn announce(&self, quiet: bool) {
        if !quiet && self.seconds > ANNOUNCE_ABOVE_SECONDS {
            eprintln!(
                "estimate: {:.2e} path-steps, about {} and {} of memory",
                self.path_steps,
                human_seconds(self.seconds),
                human_bytes(self.memory_bytes)
            );
            if let Some((steps, seconds)) = self.second_stage {
                eprintln!(
                    "  a second stage (run.max_paths) may add up to {steps:.2e} path-steps, about {}, if curves are unresolved for want of paths",
                    human_seconds(seconds)
                );
            }
        }
    }
}

/// The shape of a simulation, from which the estimate follows.
#[derive(Debug, Clone)]
pub struct Workload {
    /// Paths per process and learning rate (plus those run again for quantiles).
    pub paths: f64,
    /// Iterations `K` of each learning rate.
    pub iterations: Vec<usize>,
    /// Discrete-process runs per learning rate (the coupled study reruns it with each model).
    pub discrete_runs: f64,
    /// SDE model runs per learning rate.
    pub sde_runs: f64,
    pub substeps: f64,
    /// Path-steps per path and iteration of the SVAG runs (`sde.svag_l`, see [`svag_steps`]).
    pub svag_steps: f64,
    pub dim: f64,
    pub agents: f64,
    pub heavy_tailed: bool,
    /// Values kept in memory at once (quantile bands), in `f64`s.
    pub kept_values: f64,
    /// Numbers held by the loss (a full Hessian, a design matrix).
    pub loss_numbers: f64,
    pub threads: f64,
    /// Numbers in the config file (kept while parsing).
    pub config_numbers: f64,
}

impl Workload {
    pub fn estimate(&self, steps_key: String, memory_key: String) -> Estimate {
        let iters: f64 = self.iterations.iter().map(|&k| k as f64).sum();
        let path_steps = self.paths
            * iters
            * (self.discrete_runs + self.sde_runs * self.substeps.max(1.0) + self.svag_steps);
        let per_step = NS_PER_PATH_STEP
            + NS_PER_AGENT_COORDINATE
                * self.dim
                * self.agents
                * if self.heavy_tailed {
                    STUDENT_T_FACTOR
                } else {
                    1.0
                };
        let seconds = path_steps * per_step * 1e-9 / self.threads.max(1.0);
        // Per worker: every agent's gradient and a few state vectors of length d.
        let per_thread = (self.agents + 8.0) * self.dim * 8.0;
        let memory_bytes = self.threads.max(1.0) * per_thread
            + 8.0 * (self.kept_values + self.loss_numbers)
            + PARSE_BYTES_PER_NUMBER * self.config_numbers;
        Estimate {
            path_steps,
            seconds,
            memory_bytes,
            steps_key,
            memory_key,
            second_stage: None,
        }
    }
}

/// Path-steps per path and iteration of SVAG with every `l` in `ls`, as `compare::svag` runs it:
/// `l` substeps per iteration, each drawing two directions of the method (two stochastic
/// gradients: two discrete iterations' worth), so `2l`; `weak-error` also runs one independent
/// discrete ensemble per learning rate for the SVAG rows (`1`). `sdelab run` runs SVAG on the
/// trajectory's paths (quantile paths included), `weak-error` on `run.paths` per learning rate.
pub fn svag_steps(ls: &[usize], run: bool) -> f64 {
    if ls.is_empty() {
        return 0.0;
    }
    let substeps: f64 = ls.iter().map(|&l| 2.0 * l as f64).sum();
    substeps + if run { 0.0 } else { 1.0 }
}

/// The estimate of `sdelab weak-error` (`quantiles: false`) or `sdelab run` (`true`).
pub fn experiment(cfg: &ExperimentConfig, run: bool, threads: usize, coupled: bool) -> Estimate {
    let models = cfg.sde.models.len() as f64;
    let etas: &[f64] = if run {
        &cfg.run.etas[..1]
    } else {
        &cfg.run.etas
    };
    let iterations: Vec<usize> = etas
        .iter()
        .map(|&eta| compare::study::iterations(cfg.run.horizon, eta))
        .collect();
    let paths = cfg.run.paths as f64;
    // SDE steps per iteration. A study that chooses its own substeps integrates each point at
    // three levels (b, 2b and 4b on one Brownian path, Richardson-extrapolated; at worst every level
    // on every path: 7b), b = 2 being typical at the defaults; with sde.max_substeps below 4, one
    // refined level and its half (1.5 s) up to the cap. With sde.substeps set: s and 2s.
    let substeps = match (cfg.sde.substeps, run) {
        (Some(s), true) => s as f64,
        (None, true) => crate::config::DEFAULT_RUN_SUBSTEPS as f64,
        (Some(s), false) => 3.0 * s as f64,
        (None, false) if cfg.sde.max_substeps >= 4 => {
            7.0 * (cfg.sde.max_substeps as f64 / 4.0).min(2.0)
        }
        (None, false) => 1.5 * cfg.sde.max_substeps as f64,
    } * substep_cost(cfg.sde.scheme);
    let quantile_paths = (crate::build::QUANTILE_PATHS as f64).min(paths);
    let (discrete_runs, sde_runs, paths_run, kept) = if run {
        let k = iterations[0] as f64 + 1.0;
        let extra = if quantile_paths < paths {
            quantile_paths
        } else {
            0.0
        };
        let kept = quantile_paths * k * cfg.run.observables.len() as f64;
        (1.0, models, paths + extra, kept)
    } else if cfg.run.exact_reference {
        (1.0, 0.0, paths, 0.0)
    } else if coupled {
        (models, models, paths, 0.0)
    } else {
        (1.0, models, paths, 0.0)
    };
    let d = cfg.dim() as f64;
    let loss_numbers = match &cfg.loss.kind {
        LossKind::Quadratic(_) => d * d,
        LossKind::LeastSquares(ls) => ls.samples as f64 * (d + 1.0),
        _ => 0.0,
    };
    let workload = Workload {
        paths: paths_run,
        iterations,
        discrete_runs,
        sde_runs,
        substeps,
        svag_steps: svag_steps(&cfg.sde.svag_l, run),
        dim: d,
        agents: cfg.agents.n as f64,
        heavy_tailed: heavy_tailed(cfg),
        kept_values: kept,
        loss_numbers,
        threads: threads as f64,
        config_numbers: cfg_numbers(cfg),
    };
    let est = workload.estimate(String::new(), String::new());
    // Name the key that drives each figure: the largest factor.
    let max_k = workload.iterations.iter().copied().max().unwrap_or(0);
    let mut factors = vec![
        (paths, format!("run.paths = {}", cfg.run.paths)),
        (
            substeps,
            match cfg.sde.substeps {
                Some(s) => format!("sde.substeps = {s}"),
                None => format!("sde.max_substeps = {}", cfg.sde.max_substeps),
            },
        ),
        (
            max_k as f64,
            format!(
                "run.horizon = {} / run.etas (up to {max_k} iterations)",
                cfg.run.horizon
            ),
        ),
    ];
    if workload.svag_steps > substeps {
        // SVAG's substeps outweigh the models': name the key that asks for them.
        let ls: Vec<String> = cfg.sde.svag_l.iter().map(|l| l.to_string()).collect();
        factors.push((
            workload.svag_steps,
            format!("sde.svag_l = [{}]", ls.join(", ")),
        ));
    }
    factors.sort_by(|a, b| b.0.total_cmp(&a.0));
    let steps_key = factors
        .iter()
        .map(|(_, k)| k.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let d_bytes = workload.threads.max(1.0) * (workload.agents + 8.0) * d * 8.0
        + PARSE_BYTES_PER_NUMBER * workload.config_numbers;
    let memory_key = if 8.0 * loss_numbers > d_bytes.max(8.0 * kept) {
        match &cfg.loss.kind {
            LossKind::LeastSquares(ls) => {
                format!("loss.samples = {} with d = {}", ls.samples, cfg.dim())
            }
            _ => format!("loss.matrix ({0} × {0})", cfg.dim()),
        }
    } else if 8.0 * kept > d_bytes {
        format!(
            "run.paths = {} and run.horizon / run.etas[0] ({} iterations): quantile bands keep {} paths",
            cfg.run.paths, workload.iterations[0], quantile_paths
        )
    } else {
        format!("loss.x0 (d = {})", cfg.dim())
    };
    // The second stage reruns the study's ensembles (not SVAG's) of a learning rate on up to
    // run.max_paths paths.
    let second_stage = (!run && cfg.run.max_paths > cfg.run.paths).then(|| {
        let study = Workload {
            svag_steps: 0.0,
            ..workload.clone()
        }
        .estimate(String::new(), String::new());
        let factor = cfg.run.max_paths as f64 / paths;
        (study.path_steps * factor, study.seconds * factor)
    });
    Estimate {
        steps_key,
        memory_key,
        second_stage,
        ..est
    }
}

fn heavy_tailed(cfg: &ExperimentConfig) -> bool {
    let student_t = |m: &NoiseModel| matches!(m, NoiseModel::StudentT(_));
    match &cfg.noise {
        NoiseSpec::Shared(m) => student_t(m),
        NoiseSpec::PerAgent { agents } => agents.iter().any(student_t),
        NoiseSpec::Minibatch(_) => false,
    }
}

/// Numbers the parsed config holds (the lists of the loss), for the parse cost.
fn cfg_numbers(cfg: &ExperimentConfig) -> f64 {
    let d = cfg.dim() as f64;
    d + match &cfg.loss.kind {
        LossKind::MixedQuadraticQuartic(_) => 2.0 * d,
        LossKind::Quadratic(_) => d * d,
        LossKind::LeastSquares(_) => 0.0,
        _ => d,
    }
}

/// The estimate of `sdelab figure1`.
pub fn figure1(p: &compare::figure1::Figure1Params, threads: usize) -> Estimate {
    let k = compare::study::iterations(p.horizon, p.eta);
    let extra = if p.quantile_paths < p.paths {
        p.quantile_paths as f64
    } else {
        0.0
    };
    let workload = Workload {
        paths: p.paths as f64 + extra,
        // Six panels.
        iterations: vec![k; 6],
        discrete_runs: 1.0,
        sde_runs: p.models.len() as f64,
        svag_steps: 0.0,
        substeps: p.substeps as f64 * substep_cost(p.scheme),
        dim: p.dim as f64,
        agents: p.agents as f64,
        // One panel in three is heavy-tailed: count it as a third.
        heavy_tailed: false,
        kept_values: (p.quantile_paths.min(p.paths) as f64) * (k as f64 + 1.0) * 2.0,
        loss_numbers: 0.0,
        threads: threads as f64,
        config_numbers: 0.0,
    };
    workload.estimate(
        format!("--paths {}", p.paths),
        format!("--paths {}", p.paths),
    )
}

/// Before parsing a config file (TOML keeps ~200 bytes per number while parsing): refuse a file
/// whose lists alone would pass the memory ceiling, naming the longest list. A cheap scan, not a
/// parser: it counts the numbers in each `key = [ … ]` list, keyed by the current `[table]`.
pub fn check_config_text(text: &str, force: bool) -> Result<(), CliError> {
    if force {
        return Ok(());
    }
    let (total, key, count) = scan_lists(text);
    let bytes = PARSE_BYTES_PER_NUMBER * total as f64;
    if bytes > MAX_MEMORY_BYTES {
        return Err(CliError::BadInput(format!(
            "{key}: a list of {count} numbers; parsing the config would need about {} of \
             memory, above the ceiling of {}; pass --force to run anyway",
            human_bytes(bytes),
            human_bytes(MAX_MEMORY_BYTES)
        )));
    }
    Ok(())
}

/// (numbers in all lists, the key of the longest list, its length).
fn scan_lists(text: &str) -> (usize, String, usize) {
    let mut table = String::new();
    let mut key = String::new();
    let mut depth = 0usize;
    let (mut total, mut best_key, mut best) = (0usize, String::new(), 0usize);
    let mut current = 0usize;
    let mut in_string = false;
    for line in text.lines() {
        let code = if in_string {
            line
        } else {
            line.split('#').next().unwrap_or("")
        };
        let trimmed = code.trim();
        if depth == 0 {
            if trimmed.starts_with('[') && !trimmed.contains('=') {
                table = trimmed
                    .trim_matches(|c| c == '[' || c == ']')
                    .trim()
                    .to_string();
                continue;
            }
            if let Some((k, _)) = trimmed.split_once('=') {
                key = if table.is_empty() {
                    k.trim().to_string()
                } else {
                    format!("{table}.{}", k.trim())
                };
                current = 0;
            }
        }
        let mut prev_is_sep = true;
        for c in code.chars() {
            match c {
                '"' => in_string = !in_string,
                _ if in_string => {}
                '[' => depth += 1,
                ']' => depth = depth.saturating_sub(1),
                _ => {}
            }
            let starts_number = depth > 0 && (c.is_ascii_digit() || c == '-' || c == '+');
            if starts_number && prev_is_sep {
                current += 1;
                total += 1;
            }
            prev_is_sep = depth > 0 && (c == ',' || c == '[' || c.is_whitespace());
        }
        if current > best {
            best = current;
            best_key = key.clone();
        }
    }
    (total, best_key, best)
}

fn human_seconds(s: f64) -> String {
    if s < 120.0 {
        format!("{s:.0} s")
    } else if s < 7200.0 {
        format!("{:.0} min", s / 60.0)
    } else if s < 3.0 * 86400.0 {
        format!("{:.1} h", s / 3600.0)
    } else if s < 1e4 * 86400.0 {
        format!("{:.0} days", s / 86400.0)
    } else {
        format!("{:.1e} days", s / 86400.0)
    }
}

fn human_bytes(b: f64) -> String {
    if b < 1024.0 * 1024.0 * 1024.0 {
        format!("{:.0} MiB", b / (1024.0 * 1024.0))
    } else {
        format!("{:.1} GiB", b / (1024.0 * 1024.0 * 1024.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_counts_the_numbers_of_each_list() {
        let text = "name = \"a, [b]\"\n[loss]\nkind = \"quadratic\" # 1, 2, 3\nx0 = [1.0, -2, 3e5,\n  4]\ndiag = [1,2]\n[run]\netas = [0.1]\n";
        let (total, key, count) = scan_lists(text);
        assert_eq!((total, key.as_str(), count), (7, "loss.x0", 4));
    }

    /// DSGD on a 2-D quadratic, 64 paths at η = 0.2 and 0.1, with `sde` and `run` lines added
    /// to those sections.
    fn small_dsgd(sde: &str, run: &str) -> ExperimentConfig {
        ExperimentConfig::from_toml_str(&format!(
            "name = \"b\"\nseed = 3\n[loss]\nkind = \"quadratic\"\ndiag = [1.0, 2.0]\n\
             x0 = [1.0, -1.0]\n[agents]\nn = 2\n[noise]\nkind = \"gaussian\"\n\
             sigma0 = 0.5\n[optimizer]\nkind = \"dsgd\"\n[sde]\n\
             models = [\"first_order\"]\n{sde}\n[run]\nhorizon = 1.0\n\
             etas = [0.2, 0.1]\npaths = 64\nobservables = [\"x\"]\n{run}\n"
        ))
        .unwrap()
    }

    /// The SVAG part of the estimate is what `compare::svag` runs. `weak-error`: the path-steps
    /// `sde.svag_l` adds are the SVAG rows' discrete iterations plus two per SVAG substep, as
    /// their cost counts them (no path diverges here). `run`: two per substep on every
    /// trajectory path.
    #[test]
    fn svag_path_steps_are_those_the_svag_runs_take() {
        let with = small_dsgd("svag_l = [2, 5]", "");
        let without = small_dsgd("", "");
        let added = |run: bool| {
            experiment(&with, run, 1, true).path_steps
                - experiment(&without, run, 1, true).path_steps
        };
        let opt = crate::build::optimizer(&with).unwrap();
        let s = crate::build::study_settings(&with);
        let (_, cost) =
            compare::svag::svag_weak_error_with_cost(&opt, &s, &with.sde.svag_l, &[], &|_| {})
                .unwrap();
        let ran = cost.discrete_steps + 2 * cost.sde_steps;
        assert_eq!(added(false), ran as f64);
        // Two learning rates of 5 and 10 iterations, 64 paths: 64 · 15 · (1 + 2·(2 + 5)), by hand.
        assert_eq!(ran, 64 * 15 * 15);
        let t = crate::build::trajectory_settings(&with);
        let k = compare::study::iterations(t.horizon, t.eta) as u64;
        let paths = compare::svag::svag_work(&t, &[1]);
        assert_eq!(added(true), (paths * k * 2 * 7) as f64);
    }

    /// The second stage's announced worst case is the study (not SVAG) rerun at every learning
    /// rate on `run.max_paths`; with one stage (`max_paths = paths`) there is none, and `run`
    /// has none.
    #[test]
    fn the_second_stage_worst_case_is_the_study_at_max_paths() {
        let cfg = |more: &str| small_dsgd("svag_l = [2]", more);
        let with_svag = experiment(&cfg(""), false, 1, true);
        let mut no_svag = cfg("");
        no_svag.sde.svag_l.clear();
        let study = experiment(&no_svag, false, 1, true).path_steps;
        // The default: max(4 x 64, 2000) paths.
        let (steps, _) = with_svag
            .second_stage
            .expect("default max_paths above paths");
        assert_eq!(steps, 2000.0 / 64.0 * study);
        let (steps, _) = experiment(&cfg("max_paths = 96"), false, 1, true)
            .second_stage
            .expect("max_paths above paths");
        assert_eq!(steps, 1.5 * study);
        assert!(experiment(&cfg("max_paths = 64"), false, 1, true)
            .second_stage
            .is_none());
        assert!(experiment(&cfg(""), true, 1, true).second_stage.is_none());
    }

    #[test]
    fn path_steps_are_the_product_of_the_factors() {
        // Two learning rates with 10 and 20 iterations, 100 paths, one discrete and two SDE
        // runs with 4 substeps: 100 · 30 · (1 + 2·4) = 27 000, by hand.
        let w = Workload {
            paths: 100.0,
            iterations: vec![10, 20],
            discrete_runs: 1.0,
            sde_runs: 2.0,
            substeps: 4.0,
            svag_steps: 0.0,
            dim: 10.0,
            agents: 8.0,
            heavy_tailed: false,
            kept_values: 0.0,
            loss_numbers: 0.0,
            threads: 2.0,
            config_numbers: 0.0,
        };
        let e = w.estimate("k".into(), "m".into());
        assert_eq!(e.path_steps, 27_000.0);
        assert!((e.seconds - 27_000.0 * (150.0 + 3.0 * 80.0) * 1e-9 / 2.0).abs() < 1e-15);
        assert!(e.check(false).is_ok());
        let big = Workload {
            paths: 1e12,
            ..w.clone()
        }
        .estimate("run.paths = 1000000000000".into(), "m".into());
        let err = big.check(false).expect_err("above the ceiling");
        assert_eq!(err.exit_code(), 2);
        assert!(
            err.message().starts_with("run.paths = 1000000000000"),
            "{err}"
        );
        assert!(big.check(true).is_ok());
    }
}
