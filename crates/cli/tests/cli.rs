//! The built `sdelab` binary: exit codes and messages for bad input, help on every subcommand.

mod common;
use common::{sdelab, sdelab_json, stderr, stdout, stdout_json};

const VALID: &str = r#"
name = "t"
[loss]
kind = "quadratic"
diag = [1.0]
x0 = [1.0]
[noise]
kind = "gaussian"
sigma0 = 1.0
[optimizer]
kind = "dsgd"
[run]
horizon = 1.0
etas = [0.1, 0.05]
paths = 100
"#;

#[test]
fn help_exits_zero_on_every_subcommand() {
    let o = sdelab(&["--help"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    for sub in [
        "figure1",
        "weak-error",
        "run",
        "list",
        "--threads",
        "--quiet",
    ] {
        assert!(out.contains(sub), "--help does not mention {sub}:\n{out}");
    }
    for (sub, flags) in [
        ("figure1", &["--out", "--paths", "--seed"][..]),
        ("weak-error", &["--config", "--out", "--json"]),
        ("run", &["--config", "--out", "--json"]),
        ("list", &[]),
    ] {
        let o = sdelab(&[sub, "--help"]);
        assert_eq!(o.status.code(), Some(0), "{sub} --help: {}", stderr(&o));
        let out = stdout(&o);
        for f in flags {
            assert!(out.contains(f), "{sub} --help does not mention {f}:\n{out}");
        }
        assert!(
            out.contains("Exit codes"),
            "{sub} --help should document exit codes"
        );
        let o = sdelab(&["help", sub]);
        assert_eq!(o.status.code(), Some(0));
    }
    let o = sdelab(&["--version"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).contains(env!("CARGO_PKG_VERSION")));
}

#[test]
fn missing_config_file_is_bad_input() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("does-not-exist.toml");
    let missing = missing.to_str().expect("utf-8 path");
    for sub in ["weak-error", "run"] {
        let o = sdelab(&[sub, "--config", missing, "--json"]);
        assert_eq!(o.status.code(), Some(2), "{sub}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(err.contains("error: cannot read config file"), "{err}");
        assert!(err.contains("does-not-exist.toml"), "{err}");
        assert!(stdout(&o).is_empty(), "nothing on stdout on error");
    }
}

#[test]
fn broken_config_is_bad_input_naming_key_and_value() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases = [
        (
            "etas = [0.1, 0.05]",
            "etas = [0.1, 0.05, -0.1]",
            "run.etas[2] = -0.1: must be positive",
        ),
        (
            "kind = \"gaussian\"",
            "kind = \"cauchy\"",
            "noise.kind = \"cauchy\": unknown kind (expected one of gaussian, student_t, minibatch)",
        ),
        (
            "paths = 100",
            "paths = \"many\"",
            "run.paths = \"many\": expected an integer",
        ),
        ("x0 = [1.0]", "", "loss.x0: missing key"),
        ("paths = 100", "pathz = 100", "run.pathz = 100: unknown key"),
        ("[loss", "[[loss", "invalid TOML"),
    ];
    for (i, (from, to, expected)) in cases.iter().enumerate() {
        let p = dir.path().join(format!("broken{i}.toml"));
        std::fs::write(&p, VALID.replacen(from, to, 1)).expect("write");
        for sub in ["weak-error", "run"] {
            let o = sdelab(&[
                "--quiet",
                sub,
                "--config",
                p.to_str().expect("utf-8"),
                "--json",
            ]);
            assert_eq!(o.status.code(), Some(2), "{sub} {expected}: {}", stderr(&o));
            let err = stderr(&o);
            assert!(
                err.contains(expected),
                "{sub}: stderr {err:?} does not contain {expected:?}"
            );
            assert!(
                err.contains(&format!("broken{i}.toml")),
                "the message names the file: {err}"
            );
            assert!(stdout(&o).is_empty());
        }
    }
}

#[test]
fn weak_error_needs_two_learning_rates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("one-eta.toml");
    std::fs::write(&p, VALID.replacen("etas = [0.1, 0.05]", "etas = [0.1]", 1)).expect("write");
    let o = sdelab(&["weak-error", "--config", p.to_str().expect("utf-8")]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("run.etas = [0.1]: weak-error needs at least 2 learning rates"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn bad_arguments_are_bad_input() {
    for args in [
        &["figure1", "--paths", "1"][..],
        &["figure1", "--paths", "many"],
        &["--threads", "0", "list"],
        &["weak-error"],
        &["run", "--config"],
        &["frobnicate"],
        &[],
    ] {
        let o = sdelab(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(!stderr(&o).is_empty(), "{args:?}: a message on stderr");
    }
}

#[test]
fn valid_config_gets_past_validation() {
    // The numerics may not be wired up yet: a valid config must not be reported as bad input.
    // (A tiny config, so this stays fast once the subcommands do real work.)
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("tiny.toml");
    std::fs::write(&cfg, VALID).expect("write");
    for sub in ["weak-error", "run"] {
        let o = sdelab_json("1", sub, &cfg, &dir.path().join(sub));
        // Either it ran (0) or failed for another reason (1), never bad input (2).
        assert_ne!(o.status.code(), Some(2), "{sub}: {}", stderr(&o));
        if o.status.code() == Some(0) {
            let v: serde_json::Value =
                serde_json::from_slice(&o.stdout).expect("--json prints one JSON document");
            assert!(v.get("config").is_some());
        } else {
            assert!(stdout(&o).is_empty(), "{sub}: nothing on stdout on failure");
        }
    }
}

/// `sdelab stability` end to end on the noise-free parabola f = x²/2 (threshold η = 2 for the
/// discrete method and (C), none for (A) and (B)): the CLI.md document shape, the files, and bad
/// input naming `run.x0_scales`.
#[test]
fn stability_reports_the_parabola_threshold() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("stab.toml");
    // VALID without noise, over longer times and at the sweep's learning rates.
    let text = VALID.replace("sigma0 = 1.0", "sigma0 = 0.0").replace(
        "horizon = 1.0\netas = [0.1, 0.05]\npaths = 100",
        "horizon = 120.0\netas = [1.5, 2.5]\nx0_scales = [1.0, 2.0]\npaths = 2",
    );
    assert!(
        text.contains("sigma0 = 0.0") && text.contains("x0_scales"),
        "VALID changed: {text}"
    );
    std::fs::write(&cfg, &text).expect("write");
    let out = dir.path().join("out");
    let v = stdout_json(&sdelab_json("1", "stability", &cfg, &out));
    let curves = v["stability"].as_array().expect("stability array");
    assert_eq!(curves.len(), 2 * 4, "2 scales x (discrete + 3 models)");
    for c in curves {
        let process = c["process"].as_str().unwrap();
        let fractions: Vec<f64> = c["points"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                assert_eq!(p["paths"], 2);
                let ci = p["ci95"].as_array().unwrap();
                assert_eq!(ci.len(), 2);
                p["diverged_fraction"].as_f64().unwrap()
            })
            .collect();
        let expect = if process == "discrete" || process == "stability" {
            vec![0.0, 1.0]
        } else {
            vec![0.0, 0.0]
        };
        assert_eq!(fractions, expect, "{process} at scale {}", c["x0_scale"]);
    }
    assert_eq!(v["substep_checks_pass"], true);
    for f in [
        "result.json",
        "stability.csv",
        "stability.png",
        "stability.svg",
    ] {
        assert!(out.join(f).exists(), "{f} missing");
    }
    std::fs::write(&cfg, text.replace("[1.0, 2.0]", "[0.0]")).expect("write");
    let o = sdelab(&["--quiet", "stability", "--config", cfg.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("run.x0_scales[0]"), "{}", stderr(&o));
}

/// A refusal of the comparison library (not of the config reader) is printed with the config key
/// of the field it names: `compare` names `Setting::Scheme`, the command says `sde.scheme`.
#[test]
fn library_refusals_name_the_config_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("scheme.toml");
    let text = format!(
        "{VALID}[sde]\nmodels = [\"second_order\"]\nscheme = \"euler_maruyama\"\nsubsteps = 2\n"
    );
    std::fs::write(&cfg, text).expect("write");
    let out = dir.path().join("out");
    let o = sdelab(&[
        "--quiet",
        "weak-error",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).starts_with("error: sde.scheme = euler_maruyama: has weak order 1, below"),
        "{}",
        stderr(&o)
    );
}
