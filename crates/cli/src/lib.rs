//! `sdelab`: the library behind the `sdelab` command (its binary is one call of
//! [`run_cli`]). Weak-error studies of SDE models of distributed stochastic optimizers, and the
//! paper's Figure 1 analogue. The user-facing contract is `docs/CLI.md`; the config reference is
//! the "Config reference" section of the workspace README.
//!
//! Exit codes: 0 success, 2 bad input (the message names the key and the value), 1 any other
//! failure, 130 interrupted by a signal (see [`output`]).

pub mod budget;
pub mod build;
pub mod commands;
pub mod config;
pub mod error;
#[cfg(feature = "mpi")]
pub mod mpi;
pub mod output;
pub mod plot;
pub mod shard;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};

use crate::commands::{ConfigRun, Figure1Options, Globals, OutputOptions};
use crate::config::{ConfigError, ExperimentConfig};
use crate::error::CliError;
use crate::shard::{Discard, Job, MuteStdout, ShardSpec};
use compare::figure1::Figure1Params;
use sde_core::distribute::{set_distributor, DistributeError, Recorder, Replayer};

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

    /// Run only shard I of N (0 ≤ I < N) of every ensemble and write its statistics to
    /// <out>/shard-I-of-N.sdelab instead of the results; `sdelab merge` joins the N shards
    #[arg(long, global = true, value_name = "I/N", value_parser = shard::parse_shard)]
    shard: Option<ShardSpec>,

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

    /// Join the shards of one `--shard I/N` run (files, or folders of shard-*.sdelab files) and
    /// write the result folder of the unsharded run, bit for bit (timings aside)
    #[command(after_help = AFTER_HELP)]
    Merge(MergeArgs),

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

#[derive(Debug, Args)]
struct MergeArgs {
    /// Shard files, or folders holding them
    #[arg(value_name = "SHARD", required = true)]
    shards: Vec<PathBuf>,

    /// Output directory [default: that of the sharded command]
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

/// The whole `sdelab` command: parse `std::env::args`, run, and return the exit code (the
/// binary's `main` is this call).
pub fn run_cli() -> ExitCode {
    silence_distribute_panics();
    #[cfg(feature = "mpi")]
    let world = match mpi::World::init_if_launched() {
        Ok(w) => w,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(e.exit_code());
        }
    };
    #[cfg(feature = "mpi")]
    let ranks = world.as_ref().map(|w| w.ranks());
    #[cfg(not(feature = "mpi"))]
    let ranks: Option<Ranks> = None;
    let root = ranks.as_ref().is_none_or(|r| r.rank == 0);
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout with exit code 0; usage errors to stderr with 2.
            let code = if e.use_stderr() {
                CliError::EXIT_BAD_INPUT
            } else {
                0
            };
            if root {
                let _ = e.print();
            }
            return ExitCode::from(code);
        }
    };
    match dispatch(cli, ranks) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Stop::Before(e)) => {
            // Every rank checked the same input and stops alike: the root alone says why.
            if root {
                eprintln!("error: {e}");
            }
            ExitCode::from(e.exit_code())
        }
        Err(Stop::During(e)) => {
            #[cfg(feature = "mpi")]
            if let Some(w) = &world {
                // The other ranks may wait in a collective for this one: end them all.
                w.abort(&e);
            }
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// This process's place among the processes of an MPI run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ranks {
    pub rank: u64,
    pub size: u64,
}

/// How a run ended in failure: before any ensemble ran (every MPI rank sees the same input and
/// fails alike), or during the work (a rank may fail alone, so all must be ended).
enum Stop {
    Before(CliError),
    During(CliError),
}

impl From<CliError> for Stop {
    fn from(e: CliError) -> Self {
        Stop::Before(e)
    }
}

/// A distributor's failure unwinds as a panic carrying a [`DistributeError`] (the ensemble API
/// returns no `Result`); it is reported by [`execute`] as an error, so the panic hook stays quiet.
fn silence_distribute_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !info.payload().is::<DistributeError>() {
            default(info)
        }
    }));
}

/// A validated subcommand, ready to run.
enum Task {
    Figure1(Figure1Options),
    WeakError(Box<ExperimentConfig>, OutputOptions),
    Run(Box<ExperimentConfig>, OutputOptions),
    Stability(Box<ExperimentConfig>, OutputOptions),
}

impl Task {
    fn execute(&self, globals: &Globals) -> Result<(), CliError> {
        match self {
            Task::Figure1(o) => commands::figure1(o, globals),
            Task::WeakError(cfg, o) => commands::weak_error(&ConfigRun::new(cfg, o, globals)?),
            Task::Run(cfg, o) => commands::run(&ConfigRun::new(cfg, o, globals)?),
            Task::Stability(cfg, o) => commands::stability(&ConfigRun::new(cfg, o, globals)?),
        }
    }

    /// What a shard records to run the task again.
    fn job(&self) -> Result<Job, CliError> {
        let exp =
            |cfg: &ExperimentConfig, o: &OutputOptions| -> Result<(String, String), CliError> {
                Ok((o.config_path.display().to_string(), cfg.to_toml_string()?))
            };
        Ok(match self {
            Task::Figure1(o) => Job::Figure1 {
                paths: o.paths,
                seed: o.seed,
            },
            Task::WeakError(cfg, o) => {
                let (config_path, config) = exp(cfg, o)?;
                Job::WeakError {
                    config_path,
                    config,
                }
            }
            Task::Run(cfg, o) => {
                let (config_path, config) = exp(cfg, o)?;
                Job::Run {
                    config_path,
                    config,
                }
            }
            Task::Stability(cfg, o) => {
                let (config_path, config) = exp(cfg, o)?;
                Job::Stability {
                    config_path,
                    config,
                }
            }
        })
    }

    fn config(&self) -> Option<&ExperimentConfig> {
        match self {
            Task::Figure1(_) => None,
            Task::WeakError(c, _) | Task::Run(c, _) | Task::Stability(c, _) => Some(c),
        }
    }

    fn out(&self) -> &Path {
        match self {
            Task::Figure1(o) => &o.out,
            Task::WeakError(_, o) | Task::Run(_, o) | Task::Stability(_, o) => &o.out,
        }
    }

    /// Sends the task's folder to `out`, without `--json` (for a process whose folder is
    /// discarded).
    fn redirect(&mut self, out: PathBuf) {
        match self {
            Task::Figure1(o) => o.out = out,
            Task::WeakError(_, o) | Task::Run(_, o) | Task::Stability(_, o) => {
                o.out = out;
                o.json = false;
            }
        }
    }

    /// The task a shard recorded, with the checks of its subcommand.
    fn from_job(job: &Job, out: Option<PathBuf>, json: bool) -> Result<Task, CliError> {
        let Some(cfg) = job.config()? else {
            let Job::Figure1 { paths, seed } = job else {
                return Err(CliError::Failure(
                    "a figure1 job without its options".into(),
                ));
            };
            return Ok(Task::Figure1(Figure1Options {
                out: out.unwrap_or_else(|| PathBuf::from("results/figure1")),
                paths: *paths,
                seed: *seed,
            }));
        };
        let name = job.name();
        let config_path = match job {
            Job::WeakError { config_path, .. }
            | Job::Run { config_path, .. }
            | Job::Stability { config_path, .. } => PathBuf::from(config_path),
            Job::Figure1 { .. } => PathBuf::new(),
        };
        let path = config_path.clone();
        let opts = output_options(
            ExperimentArgs {
                config: config_path,
                out,
                json,
            },
            &cfg,
            name,
        );
        Ok(match job {
            Job::WeakError { .. } => {
                cfg.check_for_weak_error().map_err(|e| in_file(&path, e))?;
                Task::WeakError(Box::new(cfg), opts)
            }
            Job::Run { .. } => {
                cfg.check_for_run().map_err(|e| in_file(&path, e))?;
                Task::Run(Box::new(cfg), opts)
            }
            _ => Task::Stability(Box::new(cfg), opts),
        })
    }
}

/// Runs `task`, turning a distributor's failure (a panic with a [`DistributeError`]) into an
/// error.
fn execute(task: &Task, globals: &Globals) -> Result<(), CliError> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| task.execute(globals))) {
        Ok(r) => r,
        Err(payload) => match payload.downcast::<DistributeError>() {
            Ok(e) if e.exit_code == CliError::EXIT_BAD_INPUT => Err(CliError::BadInput(e.message)),
            Ok(e) => Err(CliError::Failure(e.message)),
            Err(other) => std::panic::resume_unwind(other),
        },
    }
}

/// Validate the input of the chosen subcommand (bad input: exit code 2), set up the thread pool,
/// and hand over to [`commands`]: locally, as one shard, as a merge of shards, or as one rank of
/// an MPI run.
fn dispatch(cli: Cli, ranks: Option<Ranks>) -> Result<(), Stop> {
    let flags = GlobalFlags {
        threads: cli.threads,
        quiet: cli.quiet,
        wait: cli.wait,
        force: cli.force,
    };
    let shard = cli.shard;
    let not_sharded = |what: &str| -> Result<(), CliError> {
        match shard {
            Some(_) => Err(CliError::BadInput(format!(
                "--shard applies to figure1, weak-error, run and stability, not to {what}"
            ))),
            None => Ok(()),
        }
    };
    let task = match cli.command {
        Command::Figure1(args) => {
            let defaults = Figure1Params::default();
            let paths = usize::try_from(args.paths)
                .map_err(|_| CliError::BadInput(format!("--paths = {}: too large", args.paths)))?;
            // Only what differs from the defaults, so the recorded command stays short.
            Task::Figure1(Figure1Options {
                out: args.out,
                paths: (args.paths != defaults.paths).then_some(paths),
                seed: (args.seed != defaults.seed).then_some(args.seed),
            })
        }
        Command::WeakError(args) => {
            let cfg = read_config(&args.config, flags.force)?;
            cfg.check_for_weak_error()
                .map_err(|e| in_file(&args.config, e))?;
            let opts = output_options(args, &cfg, "weak-error");
            Task::WeakError(Box::new(cfg), opts)
        }
        Command::Run(args) => {
            let cfg = read_config(&args.config, flags.force)?;
            cfg.check_for_run().map_err(|e| in_file(&args.config, e))?;
            let opts = output_options(args, &cfg, "run");
            Task::Run(Box::new(cfg), opts)
        }
        Command::Stability(args) => {
            let cfg = read_config(&args.config, flags.force)?;
            let opts = output_options(args, &cfg, "stability");
            Task::Stability(Box::new(cfg), opts)
        }
        Command::Merge(args) => {
            not_sharded("merge")?;
            if ranks.is_some_and(|r| r.size > 1) {
                return Err(CliError::BadInput(
                    "merge reads shards and computes nothing: run it without mpirun".into(),
                )
                .into());
            }
            return merge(args, &flags);
        }
        Command::List { markdown } => {
            not_sharded("list")?;
            return Ok(commands::list(markdown)?);
        }
    };
    if let Some(spec) = shard {
        if ranks.is_some_and(|r| r.size > 1) {
            return Err(CliError::BadInput(
                "--shard I/N splits a run over the tasks of a job array; under mpirun the ranks \
                 already split it: give one or the other"
                    .into(),
            )
            .into());
        }
        return run_shard(task, spec, &flags);
    }
    match ranks {
        Some(r) if r.size > 1 => run_rank(task, r, &flags),
        _ => {
            let globals = init_globals(&flags)?;
            execute(&task, &globals).map_err(Stop::During)
        }
    }
}

/// `--shard I/N`: run the task with every ensemble reduced to block `I` of `N`, then write the
/// blocks, and nothing else, to `<out>/shard-I-of-N.sdelab`.
fn run_shard(mut task: Task, spec: ShardSpec, flags: &GlobalFlags) -> Result<(), Stop> {
    let job = task.job()?;
    shard::check_splittable(&job, task.config())?;
    let out = task.out().to_path_buf();
    let globals = init_globals(flags)?;
    let discard = Discard::new()?;
    task.redirect(discard.out());
    let recorder = Arc::new(Recorder::new(spec.index, spec.count));
    set_distributor(Some(recorder.clone()));
    let ran = {
        let _mute = MuteStdout::new();
        execute(&task, &globals)
    };
    set_distributor(None);
    ran.map_err(Stop::During)?;
    let calls = recorder.take();
    let path = shard::write(&out, spec, &job, &calls).map_err(Stop::During)?;
    let words: usize = calls.iter().map(|c| c.data.len()).sum();
    println!(
        "wrote shard {}/{} ({} ensembles, {} bytes of statistics): {}",
        spec.index,
        spec.count,
        calls.len(),
        8 * words,
        path.display()
    );
    Ok(())
}

/// `sdelab merge`: check the shards, then run their task once more with every ensemble served
/// from them.
fn merge(args: MergeArgs, flags: &GlobalFlags) -> Result<(), Stop> {
    let (job, calls) = shard::gather(&args.shards)?;
    let replayer = Arc::new(Replayer::new(calls).map_err(|e| CliError::BadInput(e.message))?);
    let task = Task::from_job(&job, args.out, args.json)?;
    let globals = init_globals(flags)?;
    set_distributor(Some(replayer.clone()));
    let ran = execute(&task, &globals);
    set_distributor(None);
    ran.map_err(Stop::During)?;
    if replayer.remaining() != 0 {
        return Err(Stop::During(CliError::BadInput(format!(
            "the shards recorded {} ensembles more than the merged run used: they come from a run \
             that took other decisions, so the merged result may not be theirs",
            replayer.remaining()
        ))));
    }
    Ok(())
}

/// One rank of an MPI run: every rank computes its share of each ensemble and folds all of
/// them; rank 0 alone writes the folder and shows progress.
#[cfg(feature = "mpi")]
fn run_rank(mut task: Task, ranks: Ranks, flags: &GlobalFlags) -> Result<(), Stop> {
    let mut globals = init_globals(flags)?;
    let distributor = mpi::distributor()?;
    set_distributor(Some(distributor));
    if ranks.rank == 0 {
        return execute(&task, &globals).map_err(Stop::During);
    }
    globals.quiet = true;
    let discard = Discard::new()?;
    task.redirect(discard.out());
    let _mute = MuteStdout::new();
    execute(&task, &globals).map_err(Stop::During)
}

#[cfg(not(feature = "mpi"))]
fn run_rank(_task: Task, _ranks: Ranks, _flags: &GlobalFlags) -> Result<(), Stop> {
    Err(CliError::Failure("this sdelab was built without the mpi feature".into()).into())
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

/// The global options, apart from the subcommand.
struct GlobalFlags {
    threads: Option<usize>,
    quiet: bool,
    wait: bool,
    force: bool,
}

/// Build the rayon global pool with `--threads N` (default: rayon's choice, all cores).
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
    fn shard_and_merge_parse() {
        let cli = Cli::try_parse_from([
            "sdelab",
            "weak-error",
            "--config",
            "a.toml",
            "--shard",
            "1/3",
        ])
        .expect("parse");
        assert_eq!(cli.shard, Some(ShardSpec { index: 1, count: 3 }));
        let cli = Cli::try_parse_from(["sdelab", "merge", "a", "b", "--out", "o"]).expect("parse");
        match cli.command {
            Command::Merge(m) => {
                assert_eq!(m.shards, vec![PathBuf::from("a"), PathBuf::from("b")]);
                assert_eq!(m.out, Some(PathBuf::from("o")));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(Cli::try_parse_from(["sdelab", "merge"]).is_err());
        assert!(Cli::try_parse_from(["sdelab", "run", "--config", "a", "--shard", "3/3"]).is_err());
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
