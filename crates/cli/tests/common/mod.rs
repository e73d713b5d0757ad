//! Running the built `sdelab` binary: what the tests that do (cli, end_to_end, shards, faults and
//! the workspace's cli_library_agree) share.
// Each test file uses a subset.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

/// The built binary, for a caller that sets up the child process itself.
pub fn command() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sdelab"));
    // A logging setting of the caller's shell must not change what the tests read on stderr.
    c.env_remove("RUST_LOG");
    c
}

/// Runs the binary with `args` to completion.
pub fn sdelab(args: &[&str]) -> Output {
    command()
        .args(args)
        .output()
        .expect("run the sdelab binary")
}

/// `sdelab --quiet --threads THREADS SUBCOMMAND --config CONFIG --out OUT --json`: the result
/// document alone on stdout.
pub fn sdelab_json(threads: &str, subcommand: &str, config: &Path, out: &Path) -> Output {
    command()
        .args([
            "--quiet",
            "--threads",
            threads,
            subcommand,
            "--json",
            "--config",
        ])
        .arg(config)
        .arg("--out")
        .arg(out)
        .output()
        .expect("run the sdelab binary")
}

/// The document a successful `--json` run printed.
pub fn stdout_json(o: &Output) -> serde_json::Value {
    ok(o);
    serde_json::from_slice(&o.stdout).expect("one JSON document on stdout")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A path as a command-line argument.
pub fn arg(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Exit code 0; the message is the binary's standard error.
pub fn ok(o: &Output) {
    assert_eq!(o.status.code(), Some(0), "{}", stderr(o));
}

/// Exit code 2 (bad input) with `needle` in the error.
pub fn bad_input(o: &Output, needle: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains(needle), "expected {needle:?} in {err}");
}

/// Writes `dir/name`; returns its path as an argument.
pub fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write config");
    p.to_string_lossy().into_owned()
}

pub fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The small experiment the binary's tests start from: DSGD on a 2-d quadratic with Gaussian
/// noise, both SDE models, a few thousand paths (a fraction of a second in the release profile).
const SMALL: &str = r#"
name = "small"
seed = 5
[loss]
kind = "quadratic"
diag = [1.0, 2.0]
x0 = [1.0, -1.0]
[agents]
n = 2
[noise]
kind = "gaussian"
sigma0 = 0.5
[optimizer]
kind = "dsgd"
[sde]
models = ["first_order", "second_order"]
[run]
horizon = 1.0
etas = [0.2, 0.1, 0.05]
paths = 2000
observables = ["loss", "x"]
"#;

/// [`SMALL`] with `overrides`: each `(dotted key, TOML value)` sets that key (adding it, and its
/// tables, where `SMALL` has none), so a test states only how its experiment differs.
pub fn small_config(overrides: &[(&str, &str)]) -> String {
    small_config_without(&[], overrides)
}

/// [`small_config`] without the dotted keys `removed` (a key another kind does not take, or one
/// left to its default).
pub fn small_config_without(removed: &[&str], overrides: &[(&str, &str)]) -> String {
    let mut doc: toml::Table = SMALL.parse().expect("SMALL is TOML");
    for key in removed {
        let (table, last) = key.split_once('.').unwrap_or(("", key));
        let from = if table.is_empty() {
            &mut doc
        } else {
            doc[table].as_table_mut().expect("a table of SMALL")
        };
        assert!(from.remove(last).is_some(), "SMALL has no {key}");
    }
    for &(key, value) in overrides {
        let parsed: toml::Table = format!("v = {value}")
            .parse()
            .unwrap_or_else(|e| panic!("override {key} = {value} is not a TOML value: {e}"));
        let (tables, last) = match key.rsplit_once('.') {
            Some((tables, last)) => (tables.split('.').collect(), last),
            None => (Vec::new(), key),
        };
        let mut table = &mut doc;
        for t in tables {
            table = table
                .entry(t)
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                .as_table_mut()
                .unwrap_or_else(|| panic!("{t} in {key} is not a table"));
        }
        table.insert(last.to_string(), parsed["v"].clone());
    }
    toml::to_string(&doc).expect("a TOML table serializes")
}

/// Every kind name a config may give (losses, noises, optimizers, compressors, schedules, SDE
/// models, schemes, increments, observables), from their definitions.
pub fn all_kind_names() -> Vec<&'static str> {
    use sdelab::config::*;
    [
        LossKind::KINDS.to_vec(),
        NoiseModel::KINDS.to_vec(),
        OptimizerSpec::KINDS.to_vec(),
        CompressorSpec::KINDS.to_vec(),
        ScheduleSpec::KINDS.to_vec(),
        names::<SdeModel>(),
        names::<SchemeKind>(),
        names::<IncrementKind>(),
        names::<Observable>(),
    ]
    .concat()
}
