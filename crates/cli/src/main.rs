//! `sdelab`: weak-error studies of SDE models of distributed stochastic optimizers, and the
//! paper's Figure 1 analogue. The user-facing contract is `docs/CLI.md`; the config reference is
//! the "Config reference" section of the workspace README.
//!
//! Exit codes: 0 success, 2 bad input (the message names the key and the value), 1 any other
//! failure, 130 interrupted by a signal (see [`output`]).

mod budget;
mod build;
mod commands;
mod config;
mod error;
mod output;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::commands::{Figure1Options, Globals, OutputOptions};
use crate::config::{ConfigError, ExperimentConfig};
use crate::error::CliError;
use compare::figure1::Figure1Params;

const AFTER_HELP: &str = "\
Exit codes: 0 success; 2 bad input (the message names the key and the value); 1 any other failure;
130 interrupted (Ctrl-C, SIGTERM, SIGHUP: nothing is published).
Progress bars go to stderr, hidden when stderr is not a terminal or with --quiet.
Output folders are published whole: files are written beside --out and swapped in at the end, under
a lock on <out>.lock; an interrupted run leaves the earlier result untouched.";

/// Numerical integration of SDEs that model distributed stochastic optimizers (DSGD, DCSGD,
/// DSignSGD), and weak-error measurements between the algorithms and their SDE models.
#[derive(Debug, Parser)]
#[command(name = "sdelab", version, propagate_version = true, after_help = AFTER_HELP)]
struct Cli {
    /// Worker threads for the Monte Carlo ensembles [default: all cores]
    #[arg(long, global = true, value_name = "N", value_parser = parse_threads)]
    threads: Option<usize>,

    /// No progress bars, no work estimate
    #[arg(long, short = 'q', global = true)]
    quiet: bool,

    /// If another run is writing to the same output folder, wait for it instead of failing
    #[arg(long, global = true)]
    wait: bool,

    /// Run even work above the ceilings (1e12 path-steps, 2 GiB of memory)
    #[arg(long, global = true)]
    force: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The paper's Figure 1 analogue: DSGD, DCSGD with random sparsification and DSignSGD with
    /// Student-t noise, with and without scheduler, discrete against SDE
    #[command(after_help = AFTER_HELP)]
    Figure1(Figure1Args),

    /// Weak error between the discrete algorithm and its SDE models over the list of learning
    /// rates `run.etas`, with 95% confidence intervals and fitted orders
    #[command(after_help = AFTER_HELP)]
    WeakError(ExperimentArgs),

    /// One learning rate (the first of `run.etas`): mean and quantile trajectories of the
    /// observables, discrete and SDE side by side
    #[command(after_help = AFTER_HELP)]
    Run(ExperimentArgs),

    /// Stability thresholds: the fraction of paths that diverge by the horizon against the
    /// learning rates `run.etas` (and the starting-point factors `run.x0_scales`), discrete and
    /// each SDE model side by side, with 95% intervals and the substep-doubling check
    #[command(after_help = AFTER_HELP)]
    Stability(ExperimentArgs),

    /// Every loss, noise, compressor, schedule, optimizer, SDE model and scheme the build knows,
    /// with its parameters
    #[command(after_help = AFTER_HELP)]
    List {
        /// Print the README's generated tables of kinds and keys (Markdown) instead
        #[arg(long)]
        markdown: bool,
    },
}

#[derive(Debug, Args)]
struct Figure1Args {
    /// Output directory
    #[arg(long, value_name = "DIR", default_value = "results/figure1")]
    out: PathBuf,

    /// Monte Carlo paths per curve (at least 2)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(2..),
          default_value_t = Figure1Params::default().paths)]
    paths: u64,

    /// Master seed
    #[arg(long, value_name = "S", default_value_t = Figure1Params::default().seed)]
    seed: u64,
}

#[derive(Debug, Args)]
struct ExperimentArgs {
    /// Experiment config (TOML; see the Config reference in README.md)
    #[arg(long, value_name = "FILE")]
    config: PathBuf,

    /// Output directory [default: results/<name>/<subcommand>, with <name> from the config]
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,

    /// Print the full result document as JSON on stdout, and nothing else
    #[arg(long)]
    json: bool,
}

fn parse_threads(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if (1..=4096).contains(&n) => Ok(n),
        _ => Err(format!(
            "--threads = {s:?}: expected an integer from 1 to 4096"
        )),
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout with exit code 0; usage errors to stderr with 2.
            let code = if e.use_stderr() {
                CliError::EXIT_BAD_INPUT
            } else {
                0
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match dispatch(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Validate the input of the chosen subcommand (bad input: exit code 2), set up the thread pool,
/// and hand over to [`commands`].
fn dispatch(cli: Cli) -> Result<(), CliError> {
    let flags = GlobalFlags {
        threads: cli.threads,
        quiet: cli.quiet,
        wait: cli.wait,
        force: cli.force,
    };
    match cli.command {
        Command::Figure1(args) => {
            let defaults = Figure1Params::default();
            let paths = usize::try_from(args.paths)
                .map_err(|_| CliError::BadInput(format!("--paths = {}: too large", args.paths)))?;
            let globals = init_globals(&flags)?;
            // Only what differs from the defaults, so the recorded command stays short.
            commands::figure1(
                &Figure1Options {
                    out: args.out,
                    paths: (args.paths != defaults.paths).then_some(paths),
                    seed: (args.seed != defaults.seed).then_some(args.seed),
                },
                &globals,
            )
        }
        Command::WeakError(args) => {
            let cfg = read_config(&args.config, flags.force)?;
            cfg.check_for_weak_error()
                .map_err(|e| in_file(&args.config, e))?;
            let opts = output_options(args, &cfg, "weak-error");
            let globals = init_globals(&flags)?;
            commands::weak_error(&cfg, &opts, &globals)
        }
        Command::Run(args) => {
            let cfg = read_config(&args.config, flags.force)?;
            cfg.check_for_run().map_err(|e| in_file(&args.config, e))?;
            let opts = output_options(args, &cfg, "run");
            let globals = init_globals(&flags)?;
            commands::run(&cfg, &opts, &globals)
        }
        Command::Stability(args) => {
            let cfg = read_config(&args.config, flags.force)?;
            let opts = output_options(args, &cfg, "stability");
            let globals = init_globals(&flags)?;
            commands::stability(&cfg, &opts, &globals)
        }
        Command::List { markdown } => commands::list(markdown),
    }
}

/// Parse the config, refusing first (exit code 2, without parsing) a file whose lists alone
/// would pass the memory ceiling of [`budget`].
fn read_config(path: &Path, force: bool) -> Result<ExperimentConfig, CliError> {
    if !force {
        if let Ok(text) = std::fs::read_to_string(path) {
            budget::check_config_text(&text, false)
                .map_err(|e| CliError::BadInput(format!("{}: {e}", path.display())))?;
        }
    }
    ExperimentConfig::from_path(path)
}

/// A config error found after parsing, prefixed with the file like the parse errors.
fn in_file(path: &Path, e: ConfigError) -> CliError {
    CliError::BadInput(format!("{}: {}", path.display(), e.message))
}

fn output_options(args: ExperimentArgs, cfg: &ExperimentConfig, subcommand: &str) -> OutputOptions {
    let out = args
        .out
        .unwrap_or_else(|| Path::new("results").join(&cfg.name).join(subcommand));
    OutputOptions {
        config_path: args.config,
        out,
        json: args.json,
    }
}

/// Build the rayon global pool with `--threads N` (default: rayon's choice, all cores).
/// The global options, apart from the subcommand.
struct GlobalFlags {
    threads: Option<usize>,
    quiet: bool,
    wait: bool,
    force: bool,
}

fn init_globals(cli: &GlobalFlags) -> Result<Globals, CliError> {
    if let Some(n) = cli.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
            .map_err(|e| CliError::Failure(format!("cannot start {n} worker threads: {e}")))?;
    }
    Ok(Globals {
        quiet: cli.quiet,
        threads: rayon::current_num_threads(),
        wait: cli.wait,
        force: cli.force,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn subcommands_parse() {
        let cli = Cli::try_parse_from([
            "sdelab",
            "--threads",
            "2",
            "weak-error",
            "--config",
            "a.toml",
            "--json",
        ])
        .expect("parse");
        assert_eq!(cli.threads, Some(2));
        match cli.command {
            Command::WeakError(a) => {
                assert!(a.json);
                assert_eq!(a.config, PathBuf::from("a.toml"));
                assert_eq!(a.out, None);
            }
            other => panic!("unexpected {other:?}"),
        }
        let cli = Cli::try_parse_from([
            "sdelab", "figure1", "--quiet", "--paths", "100", "--seed", "3",
        ])
        .expect("parse");
        assert!(cli.quiet);
        match cli.command {
            Command::Figure1(a) => {
                assert_eq!(a.out, PathBuf::from("results/figure1"));
                assert_eq!(a.paths, 100);
                assert_eq!(a.seed, 3);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(Cli::try_parse_from(["sdelab", "run", "--config", "x.toml", "--out", "o"]).is_ok());
        assert!(Cli::try_parse_from(["sdelab", "list"]).is_ok());
        assert!(Cli::try_parse_from([
            "sdelab",
            "stability",
            "--config",
            "x.toml",
            "--json",
            "--quiet",
            "--threads",
            "1"
        ])
        .is_ok());
    }

    #[test]
    fn figure1_help_shows_the_real_defaults() {
        let mut cmd = Cli::command();
        let help = cmd
            .find_subcommand_mut("figure1")
            .expect("figure1")
            .render_help()
            .to_string();
        let d = Figure1Params::default();
        assert!(help.contains(&format!("[default: {}]", d.paths)), "{help}");
        assert!(help.contains(&format!("[default: {}]", d.seed)), "{help}");
        assert!(!help.contains("built in"), "{help}");
    }

    #[test]
    fn bad_arguments_are_rejected() {
        for args in [
            &["sdelab", "figure1", "--paths", "1"][..],
            &["sdelab", "--threads", "0", "list"],
            &["sdelab", "--threads", "many", "list"],
            &["sdelab", "run"],
            &["sdelab", "frobnicate"],
        ] {
            let e = Cli::try_parse_from(args).expect_err("must fail");
            assert!(e.use_stderr(), "{args:?}");
        }
    }
}
