//! `--shard I/N` and `sdelab merge` through the built binary: the merge of the shards writes the
//! result document of one run bit for bit, whatever the shards' thread counts; shards of another
//! config, a missing or a duplicate shard, and runs with data-dependent decisions are refused
//! with exit code 2.

mod common;
use common::{arg, bad_input, ok, sdelab, small_config, write};
use std::path::Path;

/// A small weak-error study, coupled, two models; diverging paths are possible at the largest
/// η. With `fixed_substeps` there is no data-dependent refinement, so it can be sharded.
fn weak(fixed_substeps: bool) -> String {
    weak_with(fixed_substeps, &[])
}

/// [`weak`] with more `overrides`.
fn weak_with(fixed_substeps: bool, more: &[(&str, &str)]) -> String {
    let mut overrides = vec![
        ("name", r#""shards""#),
        ("seed", "17"),
        ("loss.diag", "[1.0, 3.0]"),
        ("loss.x0", "[1.0, -0.5]"),
        ("agents.n", "3"),
        ("noise.sigma0", "0.7"),
        ("sde.scheme", r#""weak2""#),
        ("run.etas", "[0.2, 0.1]"),
        ("run.paths", "3001"),
    ];
    if fixed_substeps {
        overrides.push(("sde.substeps", "2"));
        // One stage: a second one would be decided on all paths.
        if !more.iter().any(|(k, _)| *k == "run.max_paths") {
            overrides.push(("run.max_paths", "3001"));
        }
    }
    overrides.extend_from_slice(more);
    small_config(&overrides)
}

/// `sdelab run`: means over all paths, then quantile bands over the first 4000 (values gathered).
const RUN: &str = r#"
name = "shards-run"
seed = 3
[loss]
kind = "quartic"
x0 = [1.5, -1.0]
[agents]
n = 2
[noise]
kind = "gaussian"
sigma0 = 1.0
[optimizer]
kind = "dsgd"
[sde]
models = ["first_order"]
scheme = "euler_maruyama"
substeps = 2
[run]
horizon = 1.0
etas = [0.1]
paths = 4100
observables = ["loss"]
"#;

/// One run against its three shards merged: the same `result.json`, byte for byte (returned).
fn single_equals_merge(cmd: &str, config: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = write(dir.path(), "c.toml", config);
    let single = dir.path().join("single");
    ok(&sdelab(&[
        "--quiet",
        cmd,
        "--config",
        &cfg,
        "--out",
        arg(&single),
    ]));
    let shards = dir.path().join("shards");
    for (i, threads) in [(0, "1"), (1, "2"), (2, "3")] {
        let o = sdelab(&[
            "--quiet",
            "--threads",
            threads,
            cmd,
            "--config",
            &cfg,
            "--out",
            arg(&shards),
            "--shard",
            &format!("{i}/3"),
        ]);
        ok(&o);
        let stdout = String::from_utf8_lossy(&o.stdout);
        assert!(
            stdout.starts_with(&format!("wrote shard {i}/3")),
            "{stdout}"
        );
        assert!(shards.join(format!("shard-{i}-of-3.sdelab")).is_file());
    }
    assert!(
        !shards.join("result.json").exists(),
        "a shard writes no result"
    );
    let merged = dir.path().join("merged");
    ok(&sdelab(&[
        "--quiet",
        "merge",
        arg(&shards),
        "--out",
        arg(&merged),
    ]));
    let a = std::fs::read(single.join("result.json")).expect("single result");
    let b = std::fs::read(merged.join("result.json")).expect("merged result");
    assert!(
        a == b,
        "{cmd}: the merged result.json differs from the single run's"
    );
    b
}

#[test]
fn merged_weak_error_shards_are_the_single_run() {
    single_equals_merge("weak-error", &weak(true));
}

#[test]
fn merged_run_shards_are_the_single_run() {
    single_equals_merge("run", RUN);
}

/// SVAG goes through shards like every ensemble: the merged study's SVAG rows, agreement with
/// (A) and random-number counts (written back from the shards' counters) are the single run's.
#[test]
fn merged_svag_shards_are_the_single_run() {
    let weak_svag = weak_with(
        true,
        &[
            ("sde.models", r#"["first_order", "second_order", "svag"]"#),
            ("sde.svag_l", "[1, 4]"),
        ],
    );
    let merged = single_equals_merge("weak-error", &weak_svag);
    let doc: serde_json::Value = serde_json::from_slice(&merged).expect("result.json is JSON");
    let svag = &doc["svag"];
    let rows = svag["curves"].as_array().expect("svag curves");
    assert_eq!(rows.len(), 2 * 2, "two l, two observables");
    let mut sum = 0;
    for c in rows.iter().filter(|c| c["curve"]["observable"] == "x") {
        for p in c["curve"]["points"].as_array().expect("points") {
            let n = p["random_numbers"]["sde"].as_u64().expect("a count");
            assert!(n > 0, "{p}");
            sum += n;
        }
    }
    assert_eq!(svag["random_numbers"].as_u64(), Some(sum));
    single_equals_merge(
        "run",
        &RUN.replace(
            "models = [\"first_order\"]",
            "models = [\"first_order\", \"svag\"]\nsvag_l = 4",
        ),
    );
}

#[test]
fn foreign_missing_and_duplicate_shards_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = write(dir.path(), "a.toml", RUN);
    let b = write(dir.path(), "b.toml", &RUN.replace("seed = 3", "seed = 4"));
    let shard = |cfg: &str, out: &str, spec: &str| {
        let out = dir.path().join(out);
        ok(&sdelab(&[
            "--quiet",
            "run",
            "--config",
            cfg,
            "--out",
            arg(&out),
            "--shard",
            spec,
        ]));
        out.join(format!("shard-{}.sdelab", spec.replace('/', "-of-")))
    };
    let a0 = shard(&a, "a", "0/2");
    let a1 = shard(&a, "a", "1/2");
    let b1 = shard(&b, "b", "1/2");
    let a1_of_3 = shard(&a, "a3", "1/3");
    let out = dir.path().join("merged");
    let merge = |files: &[&Path]| {
        let mut args = vec!["--quiet", "merge", "--out", arg(&out)];
        args.extend(files.iter().map(|f| arg(f)));
        sdelab(&args)
    };
    bad_input(&merge(&[&a0, &b1]), "belongs to another run");
    bad_input(&merge(&[&a0]), "shard 1/2 missing");
    bad_input(&merge(&[&a0, &a1, &a1]), "shard 1/2 given twice");
    bad_input(&merge(&[&a0, &a1_of_3]), "share N");
    let junk = dir.path().join("junk.sdelab");
    std::fs::write(&junk, "hello\n").expect("write");
    bad_input(&merge(&[&junk]), "not a shard file");
    bad_input(&merge(&[&dir.path().join("nothing")]), "no such shard file");
    assert!(!out.exists(), "a refused merge writes nothing");
    ok(&merge(&[&a1, &a0]));
}

#[test]
fn runs_with_data_dependent_decisions_are_not_sharded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = write(dir.path(), "c.toml", &weak(false));
    let out = dir.path().join("o");
    for sub in ["weak-error", "stability"] {
        let o = sdelab(&[sub, "--config", &cfg, "--out", arg(&out), "--shard", "0/2"]);
        bad_input(&o, "sde.substeps");
    }
    // With the substeps fixed, a second stage (run.max_paths above run.paths, the default) or
    // run.target_rel_ci's batches are still decided on all paths.
    for (more, key) in [
        (("run.max_paths", "12004"), "run.max_paths = 12004"),
        (("run.target_rel_ci", "0.2"), "run.target_rel_ci"),
    ] {
        let cfg = write(dir.path(), "d.toml", &weak_with(true, &[more]));
        let o = sdelab(&[
            "weak-error",
            "--config",
            &cfg,
            "--out",
            arg(&out),
            "--shard",
            "0/2",
        ]);
        bad_input(&o, key);
    }
    bad_input(&sdelab(&["--shard", "0/2", "list"]), "--shard applies to");
    let o = sdelab(&["run", "--config", &cfg, "--shard", "2/2"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(!out.exists());
}
