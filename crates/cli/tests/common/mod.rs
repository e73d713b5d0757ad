//! Running the built `sdelab` binary: what the tests that do (end_to_end, shards, faults) share.
// Each test file uses a subset.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

/// The built binary, for a caller that sets up the child process itself.
pub fn command() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sdelab"))
}

/// Runs the binary with `args` to completion.
pub fn sdelab(args: &[&str]) -> Output {
    command()
        .args(args)
        .output()
        .expect("run the sdelab binary")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
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
