//! `--shard I/N` and `sdelab merge`: one run split over the tasks of a job array.
//!
//! A shard runs the whole command, but every ensemble computes only block `I` of `N` of its
//! chunks ([`sde_core::distribute::Recorder`]); instead of the result folder it writes its blocks
//! to `<out>/shard-<I>-of-<N>.sdelab`. `sdelab merge` checks that the files are the `N` shards of
//! one run, each once, then runs the command again with every ensemble served from the files
//! ([`sde_core::distribute::Replayer`]): the result folder is that of one run, bit for bit.
//!
//! A shard sees only its own paths, so a run whose later ensembles depend on the statistics of
//! earlier ones (the weak-error study's automatic substep refinement, the stability sweep's
//! substep doubling, the second stage a study runs when `run.max_paths > run.paths`, the batches
//! of `run.target_rel_ci`) cannot be split this way: [`check_splittable`] refuses it, naming the
//! key.
//! MPI runs share every statistic and have no such limit.
//!
//! # File format (version 1)
//!
//! 1. The line `sdelab-shard 1`.
//! 2. One line of JSON, [`ShardHeader`]: what was run, the config hash, `shard`, `shards`, and
//!    the number of ensembles.
//! 3. Per ensemble, in the order the run called them: one line of JSON, [`CallHeader`], then
//!    `words` 64-bit little-endian words: the encodings of chunks `chunks[0]..chunks[1]` (see
//!    `sde_core::ensemble`: per chunk its paths, the diverged counts per save point, then
//!    count, mean bits and m2 bits of every accumulator, then with `collect` each path's valid
//!    save points and values' bits).

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use sde_core::distribute::{EnsembleCall, RecordedCall};
use serde::{Deserialize, Serialize};

use crate::config::ExperimentConfig;
use crate::error::CliError;
use crate::output::{fnv1a64, write_atomic};

const MAGIC: &str = "sdelab-shard";
/// Version of the file format; a reader refuses any other.
pub const FORMAT_VERSION: u32 = 1;
/// Extension of shard files.
pub const EXTENSION: &str = "sdelab";

/// `--shard I/N`: task `index` of `count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShardSpec {
    pub index: u64,
    pub count: u64,
}

/// Largest `N` of `--shard I/N`.
pub const MAX_SHARDS: u64 = 1 << 20;

/// Parses `I/N` with `0 ≤ I < N ≤ MAX_SHARDS` (clap's value parser).
pub fn parse_shard(s: &str) -> Result<ShardSpec, String> {
    let bad = |why: &str| format!("--shard = {s:?}: {why}");
    let (i, n) = s
        .split_once('/')
        .ok_or_else(|| bad("expected I/N, e.g. 0/4 for the first of four shards"))?;
    let index: u64 = i.trim().parse().map_err(|_| bad("I is not an integer"))?;
    let count: u64 = n.trim().parse().map_err(|_| bad("N is not an integer"))?;
    if count == 0 || count > MAX_SHARDS {
        return Err(bad(&format!("N must be from 1 to {MAX_SHARDS}")));
    }
    if index >= count {
        return Err(bad("I must be below N (shards count from 0)"));
    }
    Ok(ShardSpec { index, count })
}

/// What a shard ran: enough to run it again in `merge`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "kebab-case")]
pub enum Job {
    Figure1 {
        paths: Option<usize>,
        seed: Option<u64>,
    },
    WeakError {
        config_path: String,
        /// The config as canonical TOML (it parses back to an equal config).
        config: String,
    },
    Run {
        config_path: String,
        config: String,
    },
    Stability {
        config_path: String,
        config: String,
    },
}

impl Job {
    pub fn name(&self) -> &'static str {
        match self {
            Job::Figure1 { .. } => "figure1",
            Job::WeakError { .. } => "weak-error",
            Job::Run { .. } => "run",
            Job::Stability { .. } => "stability",
        }
    }

    /// Hash of everything that changes the result: the command, the sdelab version and the
    /// inputs (canonical config and the path the result document records; figure 1's options).
    pub fn hash(&self) -> String {
        let text = serde_json::to_string(self).unwrap_or_default();
        let text = format!("{}\0{}", env!("CARGO_PKG_VERSION"), text);
        format!("{:016x}", fnv1a64(text.as_bytes()))
    }

    /// The config of an experiment job, parsed back.
    pub fn config(&self) -> Result<Option<ExperimentConfig>, CliError> {
        match self {
            Job::Figure1 { .. } => Ok(None),
            Job::WeakError {
                config_path,
                config,
            }
            | Job::Run {
                config_path,
                config,
            }
            | Job::Stability {
                config_path,
                config,
            } => ExperimentConfig::from_toml_str(config)
                .map(Some)
                .map_err(|e| {
                    CliError::BadInput(format!("{config_path} (in a shard): {}", e.message))
                }),
        }
    }
}

/// Refuses (exit code 2) a job whose ensembles depend on earlier ensembles' statistics.
pub fn check_splittable(job: &Job, cfg: Option<&ExperimentConfig>) -> Result<(), CliError> {
    match (job, cfg) {
        (Job::WeakError { config_path, .. }, Some(cfg)) if cfg.sde.substeps.is_none() => {
            Err(CliError::BadInput(format!(
                "{config_path}: sde.substeps is not set, so the study refines the substeps from a \
                 probe of all paths; a --shard sees only its own paths. Set sde.substeps (e.g. the \
                 substeps an unsharded run reports) to split it, or run it with mpirun"
            )))
        }
        (Job::WeakError { config_path, .. }, Some(cfg)) if cfg.run.max_paths > cfg.run.paths => {
            Err(CliError::BadInput(format!(
                "{config_path}: run.max_paths = {} is above run.paths = {}, so the study may run a \
                 learning rate again when its first stage is unresolved, a decision taken on all \
                 paths; a --shard sees only its own paths. Set run.max_paths = {} to split it, or \
                 run it with mpirun",
                cfg.run.max_paths, cfg.run.paths, cfg.run.paths
            )))
        }
        (Job::WeakError { config_path, .. }, Some(cfg)) if cfg.run.target_rel_ci.is_some() => {
            Err(CliError::BadInput(format!(
                "{config_path}: run.target_rel_ci grows the paths in batches until the interval \
                 is reached, a decision taken on all paths; a --shard sees only its own paths. \
                 Remove run.target_rel_ci to split it, or run it with mpirun"
            )))
        }
        (Job::Stability { config_path, .. }, _) => Err(CliError::BadInput(format!(
            "{config_path}: sdelab stability doubles sde.substeps until the diverged fractions of \
             all paths agree; a --shard sees only its own paths, so stability cannot be split into \
             shards. Run it with mpirun, which shares every statistic"
        ))),
        _ => Ok(()),
    }
}

/// First line after the magic line of a shard file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardHeader {
    pub format_version: u32,
    pub sdelab_version: String,
    pub config_hash: String,
    pub shard: u64,
    pub shards: u64,
    pub job: Job,
    pub ensembles: u64,
}

/// The line before each ensemble's words.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallHeader {
    pub paths: u64,
    pub seed: u64,
    pub n_save: u64,
    pub n_observables: u64,
    pub collect: bool,
    pub chunks: [u64; 2],
    pub words: u64,
    pub counters: Vec<u64>,
}

/// The file name of shard `index` of `count`.
pub fn file_name(spec: ShardSpec) -> String {
    format!("shard-{}-of-{}.{EXTENSION}", spec.index, spec.count)
}

/// Writes a shard file into `dir` (created if missing), atomically.
pub fn write(
    dir: &Path,
    spec: ShardSpec,
    job: &Job,
    calls: &[RecordedCall],
) -> Result<PathBuf, CliError> {
    let header = ShardHeader {
        format_version: FORMAT_VERSION,
        sdelab_version: env!("CARGO_PKG_VERSION").to_string(),
        config_hash: job.hash(),
        shard: spec.index,
        shards: spec.count,
        job: job.clone(),
        ensembles: calls.len() as u64,
    };
    let words: usize = calls.iter().map(|c| c.data.len()).sum();
    let mut bytes = Vec::with_capacity(8 * words + 256 * (calls.len() + 1));
    bytes.extend_from_slice(format!("{MAGIC} {FORMAT_VERSION}\n").as_bytes());
    bytes.extend_from_slice(json_line(&header)?.as_bytes());
    for c in calls {
        let h = CallHeader {
            paths: c.call.paths,
            seed: c.call.seed,
            n_save: c.call.n_save,
            n_observables: c.call.n_observables,
            collect: c.call.collect,
            chunks: [c.chunks.start, c.chunks.end],
            words: c.data.len() as u64,
            counters: c.counters.clone(),
        };
        bytes.extend_from_slice(json_line(&h)?.as_bytes());
        for w in &c.data {
            bytes.extend_from_slice(&w.to_le_bytes());
        }
    }
    fs::create_dir_all(dir).map_err(|e| {
        CliError::Failure(format!(
            "cannot create the folder {:?} for the shard: {e}",
            dir.display().to_string()
        ))
    })?;
    let path = dir.join(file_name(spec));
    write_atomic(&path, &bytes)?;
    Ok(path)
}

/// One line of JSON.
fn json_line<T: Serialize>(v: &T) -> Result<String, CliError> {
    serde_json::to_string(v)
        .map(|s| s + "\n")
        .map_err(|e| CliError::Failure(format!("cannot write a shard header: {e}")))
}

/// Reads one shard file. A file that is not a shard of this format is bad input.
pub fn read(path: &Path) -> Result<(ShardHeader, Vec<RecordedCall>), CliError> {
    let shown = path.display().to_string();
    let bad = |why: String| CliError::BadInput(format!("{shown:?}: {why}"));
    let file = fs::File::open(path).map_err(|e| bad(format!("cannot open: {e}")))?;
    let mut r = BufReader::new(file);
    let mut line = String::new();
    let mut next_line = |r: &mut BufReader<fs::File>| -> Result<String, CliError> {
        line.clear();
        // A header line is short; a longer "line" is not a shard file.
        let n = r
            .by_ref()
            .take(1 << 20)
            .read_line(&mut line)
            .map_err(|e| bad(format!("not a shard file ({e})")))?;
        if n == 0 || !line.ends_with('\n') {
            return Err(bad("truncated or not a shard file".to_string()));
        }
        Ok(line.trim_end().to_string())
    };
    let magic = next_line(&mut r)?;
    if magic != format!("{MAGIC} {FORMAT_VERSION}") {
        return Err(bad(if magic.starts_with(MAGIC) {
            format!(
                "shard format {:?}, this sdelab reads version {FORMAT_VERSION}",
                magic
            )
        } else {
            "not a shard file (written by sdelab --shard)".to_string()
        }));
    }
    let header: ShardHeader = serde_json::from_str(&next_line(&mut r)?)
        .map_err(|e| bad(format!("corrupt shard header: {e}")))?;
    let mut calls = Vec::new();
    for k in 0..header.ensembles {
        let h: CallHeader = serde_json::from_str(&next_line(&mut r)?)
            .map_err(|e| bad(format!("corrupt header of ensemble {k}: {e}")))?;
        let call = EnsembleCall {
            paths: h.paths,
            seed: h.seed,
            n_save: h.n_save,
            n_observables: h.n_observables,
            collect: h.collect,
        };
        let chunks = h.chunks[0]..h.chunks[1];
        if chunks.start > chunks.end
            || chunks.end > call.n_chunks()
            || call.words(chunks.clone()) as u64 != h.words
        {
            return Err(bad(format!(
                "ensemble {k}: inconsistent sizes (corrupt shard)"
            )));
        }
        let mut raw = vec![0u8; 8 * h.words as usize];
        r.read_exact(&mut raw)
            .map_err(|e| bad(format!("ensemble {k}: truncated ({e})")))?;
        let data = raw
            .chunks_exact(8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
            .collect();
        calls.push(RecordedCall {
            call,
            chunks,
            data,
            counters: h.counters,
        });
    }
    let mut rest = [0u8; 1];
    if r.read(&mut rest).map_err(|e| bad(e.to_string()))? != 0 {
        return Err(bad(
            "data after the last ensemble (corrupt shard)".to_string()
        ));
    }
    Ok((header, calls))
}

/// The shard files named on the command line: files as given, folders by their
/// `shard-*.sdelab` files.
fn shard_files(args: &[PathBuf]) -> Result<Vec<PathBuf>, CliError> {
    let mut files = Vec::new();
    for a in args {
        if a.is_dir() {
            let mut found: Vec<PathBuf> = fs::read_dir(a)
                .map_err(|e| {
                    CliError::BadInput(format!("cannot read {:?}: {e}", a.display().to_string()))
                })?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
                    name.is_some_and(|n| {
                        n.starts_with("shard-") && n.ends_with(&format!(".{EXTENSION}"))
                    })
                })
                .collect();
            if found.is_empty() {
                return Err(CliError::BadInput(format!(
                    "{:?}: no shard-*.{EXTENSION} files in this folder",
                    a.display().to_string()
                )));
            }
            found.sort();
            files.extend(found);
        } else if a.is_file() {
            files.push(a.clone());
        } else {
            return Err(CliError::BadInput(format!(
                "{:?}: no such shard file or folder",
                a.display().to_string()
            )));
        }
    }
    Ok(files)
}

/// Reads the shards named by `args` and checks that they are shards `0..N` of one run, each
/// exactly once. Returns the job and the shards' calls in shard order.
pub fn gather(args: &[PathBuf]) -> Result<(Job, Vec<Vec<RecordedCall>>), CliError> {
    let files = shard_files(args)?;
    let mut first: Option<(PathBuf, ShardHeader)> = None;
    let mut slots: Vec<Option<(PathBuf, Vec<RecordedCall>)>> = Vec::new();
    for f in files {
        let (h, calls) = read(&f)?;
        let shown = f.display().to_string();
        let Some((f0, h0)) = &first else {
            slots = (0..h.shards).map(|_| None).collect();
            if h.shard >= h.shards {
                return Err(CliError::BadInput(format!(
                    "{shown:?}: shard {} of {} (corrupt header)",
                    h.shard, h.shards
                )));
            }
            slots[h.shard as usize] = Some((f.clone(), calls));
            first = Some((f, h));
            continue;
        };
        let shown0 = f0.display().to_string();
        if h.config_hash != h0.config_hash || h.job != h0.job {
            return Err(CliError::BadInput(format!(
                "{shown:?} belongs to another run than {shown0:?}: config hash {} ({}) against {} \
                 ({}); merge only the shards of one command and config",
                h.config_hash,
                h.job.name(),
                h0.config_hash,
                h0.job.name()
            )));
        }
        if h.shards != h0.shards {
            return Err(CliError::BadInput(format!(
                "{shown:?} is shard {}/{} but {shown0:?} is shard {}/{}: the shards of one run \
                 share N",
                h.shard, h.shards, h0.shard, h0.shards
            )));
        }
        let slot = &mut slots[h.shard as usize];
        if let Some((other, _)) = slot {
            return Err(CliError::BadInput(format!(
                "shard {}/{} given twice: {:?} and {shown:?}",
                h.shard,
                h.shards,
                other.display().to_string()
            )));
        }
        *slot = Some((f, calls));
    }
    let Some((_, h0)) = first else {
        return Err(CliError::BadInput("no shard files given".to_string()));
    };
    let missing: Vec<String> = slots
        .iter()
        .enumerate()
        .filter(|(_, s)| s.is_none())
        .map(|(i, _)| format!("{i}/{}", h0.shards))
        .collect();
    if !missing.is_empty() {
        return Err(CliError::BadInput(format!(
            "shard{} {} missing: a merge needs all {} shards of the run",
            if missing.len() > 1 { "s" } else { "" },
            missing.join(", "),
            h0.shards
        )));
    }
    let calls = slots.into_iter().flatten().map(|(_, c)| c).collect();
    Ok((h0.job, calls))
}

/// A private folder that collects what a process writes but does not publish (a shard's
/// result folder, a non-root MPI rank's), removed when dropped.
pub struct Discard {
    root: PathBuf,
}

impl Discard {
    pub fn new() -> Result<Self, CliError> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let root =
            std::env::temp_dir().join(format!("sdelab-discard-{}-{nanos}", std::process::id()));
        fs::create_dir_all(&root).map_err(|e| {
            CliError::Failure(format!(
                "cannot create the scratch folder {:?}: {e}",
                root.display().to_string()
            ))
        })?;
        Ok(Discard { root })
    }

    /// The `--out` to give the command.
    pub fn out(&self) -> PathBuf {
        self.root.join("out")
    }
}

impl Drop for Discard {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.root);
    }
}

/// Sends this process's stdout to `/dev/null` until dropped (the tables and "wrote" lines of a
/// run whose folder is discarded would mislead).
pub struct MuteStdout {
    #[cfg(target_os = "linux")]
    saved: Option<std::os::fd::OwnedFd>,
}

impl MuteStdout {
    pub fn new() -> Self {
        let _ = std::io::stdout().flush();
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsFd;
            let saved = rustix::io::dup(std::io::stdout().as_fd()).ok();
            let null = fs::OpenOptions::new().write(true).open("/dev/null");
            if let (Some(_), Ok(null)) = (&saved, null) {
                if rustix::stdio::dup2_stdout(null.as_fd()).is_ok() {
                    return MuteStdout { saved };
                }
            }
            MuteStdout { saved: None }
        }
        #[cfg(not(target_os = "linux"))]
        MuteStdout {}
    }
}

impl Default for MuteStdout {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for MuteStdout {
    fn drop(&mut self) {
        let _ = std::io::stdout().flush();
        #[cfg(target_os = "linux")]
        if let Some(fd) = &self.saved {
            use std::os::fd::AsFd;
            let _ = rustix::stdio::dup2_stdout(fd.as_fd());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_specs_parse() {
        assert_eq!(parse_shard("2/3"), Ok(ShardSpec { index: 2, count: 3 }));
        assert_eq!(parse_shard(" 0 / 1 "), Ok(ShardSpec { index: 0, count: 1 }));
        for bad in ["3/3", "1", "a/2", "1/0", "-1/2", "0/2000000"] {
            let e = parse_shard(bad).expect_err(bad);
            assert!(e.starts_with("--shard"), "{e}");
        }
    }

    fn recorded(k: u64) -> RecordedCall {
        let call = EnsembleCall {
            paths: 200,
            seed: k,
            n_save: 2,
            n_observables: 1,
            collect: k == 1,
        };
        let chunks = 1..3;
        RecordedCall {
            call,
            data: (0..call.words(chunks.clone()) as u64)
                .map(|w| w.wrapping_mul(0x9e37_79b9_7f4a_7c15))
                .collect(),
            chunks,
            counters: vec![k, u64::MAX],
        }
    }

    #[test]
    fn a_shard_file_reads_back_what_was_written() {
        let dir = tempfile::tempdir().expect("tempdir");
        let job = Job::Run {
            config_path: "a.toml".into(),
            config: "name = \"x\"\n".into(),
        };
        let calls = vec![recorded(0), recorded(1)];
        let spec = ShardSpec { index: 1, count: 4 };
        let path = write(dir.path(), spec, &job, &calls).expect("write");
        assert_eq!(path.file_name().unwrap(), "shard-1-of-4.sdelab");
        let (h, back) = read(&path).expect("read");
        assert_eq!(back, calls);
        assert_eq!(
            (h.shard, h.shards, h.job, h.config_hash),
            (1, 4, job.clone(), job.hash())
        );
        // Truncated, or with a byte more: refused as bad input.
        let bytes = fs::read(&path).expect("read");
        for broken in [
            &bytes[..bytes.len() - 3],
            &[&bytes[..], b"x"].concat()[..],
            b"hello\n",
        ] {
            fs::write(&path, broken).expect("write");
            assert_eq!(read(&path).expect_err("broken").exit_code(), 2);
        }
    }

    #[test]
    fn the_hash_covers_the_command_and_the_inputs() {
        let a = Job::WeakError {
            config_path: "a.toml".into(),
            config: "x".into(),
        };
        let b = Job::Run {
            config_path: "a.toml".into(),
            config: "x".into(),
        };
        let c = Job::WeakError {
            config_path: "a.toml".into(),
            config: "y".into(),
        };
        let f = |seed| Job::Figure1 { paths: None, seed };
        assert_ne!(a.hash(), b.hash());
        assert_ne!(a.hash(), c.hash());
        assert_ne!(f(None).hash(), f(Some(1)).hash());
        assert_eq!(a.hash(), a.clone().hash());
    }
}
