//! The work behind each subcommand. `main` has already parsed and validated the input (bad input
//! is exit code 2 before anything here runs); these functions do the numerics through `compare`,
//! write results with [`crate::output`], and return [`CliError::Failure`] on anything else.
//!
//! Stubs until the numerical crates land.

use std::path::PathBuf;

use crate::config::ExperimentConfig;
use crate::error::CliError;

/// Options shared by every subcommand.
#[derive(Debug, Clone)]
pub struct Globals {
    /// `--quiet`: no progress bars (see [`crate::output::progress_bar`]).
    pub quiet: bool,
    /// The number of worker threads of the rayon global pool (`--threads`, default all cores).
    pub threads: usize,
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
    /// The config file the experiment came from (e.g. to copy it next to the results).
    pub config_path: PathBuf,
    /// `--out DIR`, or the default `results/<name>/weak-error` / `results/<name>/run`.
    pub out: PathBuf,
    /// `--json`: print the result document on stdout, and nothing else.
    pub json: bool,
}

/// `sdelab figure1`: the Figure 1 analogue.
pub fn figure1(opts: &Figure1Options, globals: &Globals) -> Result<(), CliError> {
    let _ = (opts, globals);
    Err(CliError::Failure("not yet implemented: figure1".into()))
}

/// `sdelab weak-error`: weak error and fitted orders over `cfg.run.etas`.
pub fn weak_error(
    cfg: &ExperimentConfig,
    opts: &OutputOptions,
    globals: &Globals,
) -> Result<(), CliError> {
    let _ = (cfg, opts, globals);
    Err(CliError::Failure("not yet implemented: weak-error".into()))
}

/// `sdelab run`: mean and quantile trajectories at `cfg.run.etas[0]`.
pub fn run(
    cfg: &ExperimentConfig,
    opts: &OutputOptions,
    globals: &Globals,
) -> Result<(), CliError> {
    let _ = (cfg, opts, globals);
    Err(CliError::Failure("not yet implemented: run".into()))
}

/// `sdelab list`: every loss, noise, compressor, schedule, optimizer, SDE model and scheme the
/// build knows, with its parameters (see [`crate::config::CATALOG`]).
pub fn list() -> Result<(), CliError> {
    Err(CliError::Failure("not yet implemented: list".into()))
}
