//! The built `sdelab` binary run end to end on small problems: the files it promises exist and
//! hold what they should, `--json` prints the result document and nothing else.

mod common;
use common::{json, ok, sdelab, sdelab_json, small_config, stdout_json, write};
use std::path::Path;

/// The common small experiment, at a fixed number of substeps of the weak order 2 scheme.
fn config() -> String {
    small_config(&[
        ("name", r#""e2e""#),
        ("sde.scheme", r#""weak2""#),
        ("sde.substeps", "2"),
    ])
}

fn write_config(dir: &Path) -> String {
    write(dir, "e2e.toml", &config())
}

#[test]
fn weak_error_writes_the_documented_files() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path());
    let out = dir.path().join("out");
    let o = sdelab(&[
        "--quiet",
        "weak-error",
        "--config",
        &cfg,
        "--out",
        out.to_str().unwrap(),
    ]);
    ok(&o);
    for f in [
        "result.json",
        "weak_error.csv",
        "orders.csv",
        "config.toml",
        "weak_error_loss.png",
        "weak_error_loss.svg",
        "weak_error_x.png",
    ] {
        assert!(out.join(f).is_file(), "missing {f}");
    }
    let doc = json(&out.join("result.json"));
    assert_eq!(doc["sdelab_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(doc["config"]["run"]["paths"], 2000);
    let curves = doc["weak_error"].as_array().unwrap();
    assert_eq!(curves.len(), 4, "2 models × 2 observables");
    for c in curves {
        let points = c["points"].as_array().unwrap();
        assert_eq!(points.len(), 3);
        for p in points {
            assert!(p["weak_error"].as_f64().unwrap() >= 0.0);
            assert!(p["ci95"].as_f64().unwrap() >= 0.0);
            assert_eq!(p["reference"], "coupled");
        }
        assert!(c["order"].as_f64().is_some());
        assert_eq!(c["order_ci95"].as_array().unwrap().len(), 2);
    }
    // No temporary file is left behind by the atomic writes.
    for e in std::fs::read_dir(&out).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            !name.starts_with('.') && !name.contains("tmp"),
            "leftover {name}"
        );
    }
}

#[test]
fn json_flag_prints_only_the_document_and_same_seed_gives_same_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path());
    let run = |threads: &str, sub: &str| {
        let out = dir.path().join(format!("{sub}-{threads}"));
        stdout_json(&sdelab_json(threads, sub, Path::new(&cfg), &out))
    };
    let (a, b) = (run("1", "weak-error"), run("2", "weak-error"));
    assert_eq!(
        a["weak_error"], b["weak_error"],
        "results depend on the thread count"
    );
    let r = run("2", "run");
    let t = &r["trajectories"];
    assert_eq!(t["iterations"], 5);
    assert_eq!(t["discrete"]["times"].as_array().unwrap().len(), 6);
    assert_eq!(t["models"].as_array().unwrap().len(), 2);
}

#[test]
fn figure1_runs_with_few_paths() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("fig");
    let o = sdelab(&[
        "--quiet",
        "figure1",
        "--paths",
        "8",
        "--seed",
        "3",
        "--out",
        out.to_str().unwrap(),
    ]);
    ok(&o);
    for f in [
        "figure1.png",
        "figure1.svg",
        "figure1_additions.png",
        "figure1_diverged.png",
        "figure1.csv",
        "result.json",
    ] {
        assert!(out.join(f).is_file(), "missing {f}");
    }
    let doc = json(&out.join("result.json"));
    assert_eq!(doc["params"]["paths"], 8);
    assert_eq!(doc["params"]["seed"], 3);
    assert_eq!(doc["panels"].as_array().unwrap().len(), 6);
    let additions = doc["additions"].as_array().unwrap();
    assert_eq!(
        additions.len(),
        4,
        "decaying and step-matched arms of DSGD and DCSGD"
    );
    for a in additions {
        for p in a["processes"].as_array().unwrap() {
            let f = p["diverged_fraction"].as_f64().unwrap();
            let ci = p["diverged_ci95"].as_array().unwrap();
            assert!(ci[0].as_f64().unwrap() <= f && f <= ci[1].as_f64().unwrap());
        }
    }
    // One substep check per arm and SDE model (10 arms, one model by default).
    assert_eq!(doc["substep_checks"].as_array().unwrap().len(), 10);
}
