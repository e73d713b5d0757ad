//! The `sdelab` binary and the library agree bit for bit: the result document the binary prints
//! (`--json`, one worker thread) holds exactly the curves and trajectories that the library's
//! config reader, builders and `compare` functions return in this process (rayon's default pool,
//! so the thread count differs too).

use std::path::Path;

use sdelab::{build, config::ExperimentConfig};

// The binary's test harness, shared with the sdelab package's own tests.
#[path = "../crates/cli/tests/common/mod.rs"]
mod common;
use common::{sdelab_json, small_config, stdout_json};

/// DCSGD with a Bernoulli compressor and affine noise: more of the build than the default.
fn config(dir: &Path) -> (std::path::PathBuf, ExperimentConfig) {
    let path = dir.join("agree.toml");
    let text = small_config(&[
        ("name", r#""agree""#),
        ("seed", "17"),
        ("loss.diag", "[1.0, 3.0]"),
        ("loss.x0", "[1.0, -2.0]"),
        ("agents.n", "3"),
        ("noise.sigma0", "0.4"),
        ("noise.sigma1", "0.3"),
        ("optimizer.kind", r#""dcsgd""#),
        ("optimizer.compressor", r#"{ kind = "bernoulli", p = 0.5 }"#),
        ("run.horizon", "0.8"),
        ("run.etas", "[0.2, 0.1]"),
        ("run.paths", "3000"),
        ("run.observables", r#"["loss", "x", "grad_norm"]"#),
    ]);
    std::fs::write(&path, text).unwrap();
    let cfg = ExperimentConfig::from_path(&path).unwrap();
    (path, cfg)
}

/// The document `sdelab <subcommand> --json` prints (one worker thread).
fn binary_document(subcommand: &str, config: &Path, out: &Path) -> serde_json::Value {
    stdout_json(&sdelab_json("1", subcommand, config, out))
}

/// Through the same text form as the binary's: equal values then mean equal bits (the shortest
/// decimal that round-trips is unique to each `f64`).
fn as_json<T: serde::Serialize>(value: &T) -> serde_json::Value {
    serde_json::from_str(&serde_json::to_string(value).unwrap()).unwrap()
}

#[test]
fn weak_error_document_is_the_library_study() {
    let dir = tempfile::tempdir().unwrap();
    let (path, cfg) = config(dir.path());
    let doc = binary_document("weak-error", &path, &dir.path().join("we"));
    let opt = build::optimizer(&cfg).unwrap();
    let settings = build::study_settings(&cfg);
    let exact = build::exact_moments(&cfg, &opt);
    let curves = compare::weak_error_study(
        &opt,
        &settings,
        exact
            .as_ref()
            .map(|e| e as &dyn compare::exact::ExactMoments),
        &|_| {},
    )
    .unwrap();
    assert_eq!(curves.len(), 6);
    assert_eq!(doc["weak_error"], as_json(&curves));
    assert_eq!(
        doc["common_random_numbers_used"],
        compare::study::can_couple(&opt, &settings)
    );
}

#[test]
fn run_document_is_the_library_trajectories() {
    let dir = tempfile::tempdir().unwrap();
    let (path, cfg) = config(dir.path());
    let doc = binary_document("run", &path, &dir.path().join("run"));
    let opt = build::optimizer(&cfg).unwrap();
    let settings = build::trajectory_settings(&cfg);
    let report = compare::trajectory::trajectories(&opt, &settings, &|_| {}).unwrap();
    assert_eq!(report.models.len(), 2);
    assert_eq!(doc["trajectories"], as_json(&report));
}
