//! Real data through the config and the CLI's build (issue 9): `noise.kind = "minibatch"`,
//! `sde.models = [.., "svag"]` with `sde.svag_l`, and their errors, each naming the key.

mod common;

use compare::observable::Observable;
use compare::study::{weak_error_study, Verdict};
use compare::svag::svag_trajectories;
use compare::trajectory::trajectories;
use models::minibatch::AnyMethod;
use models::sde::SdeModel;
use sdelab::build;
use sdelab::config::*;

/// DSGD, N = 2 agents with B = 8 rows each (with replacement), logistic regression on iris.
const BASE: &str = r#"
name = "t"
seed = 3

[loss]
kind = "logistic"
dataset = "iris"
l2 = 0.01
seed = 1

[agents]
n = 2

[noise]
kind = "minibatch"
batch = 8

[optimizer]
kind = "dsgd"

[sde]
models = ["first_order"]
scheme = "euler_maruyama"

[run]
horizon = 1.0
etas = [0.4, 0.2]
paths = 1000
"#;

fn parse(text: &str) -> Result<ExperimentConfig, ConfigError> {
    ExperimentConfig::from_toml_str(text)
}

fn ok(text: &str) -> ExperimentConfig {
    parse(text).unwrap_or_else(|e| panic!("expected a valid config, got: {e}\n---\n{text}"))
}

fn edit(from: &str, to: &str) -> String {
    assert_eq!(BASE.matches(from).count(), 1, "{from:?}");
    BASE.replacen(from, to, 1)
}

/// The config is refused at `key` with a message containing every one of `parts`.
fn err(text: &str, key: &str, parts: &[&str]) {
    match parse(text) {
        Ok(_) => panic!("expected an error at {key}\n---\n{text}"),
        Err(e) => {
            assert_eq!(e.key, key, "{}", e.message);
            for p in parts {
                assert!(e.message.contains(p), "{:?} lacks {p:?}", e.message);
            }
        }
    }
}

#[test]
fn minibatch_noise_parses_with_its_defaults_and_round_trips() {
    let c = ok(BASE);
    assert_eq!(
        c.noise,
        NoiseSpec::Minibatch(MinibatchNoise {
            kind: MinibatchTag::Minibatch,
            batch: 8,
            replacement: true,
        })
    );
    let text = c.to_toml_string().unwrap();
    assert!(text.contains("kind = \"minibatch\""), "{text}");
    assert_eq!(ok(&text), c);
    let opt = build::optimizer(&c).unwrap();
    let AnyMethod::Minibatch(m) = opt.method() else {
        panic!("expected the minibatch method");
    };
    assert_eq!((m.agents(), m.batch(), m.replacement()), (2, 8, true));
    assert_eq!(m.net().train_rows(), 120);
    // Without replacement, with DCSGD (Bernoulli) and with DSignSGD.
    for (from, to, name) in [
        ("batch = 8", "batch = 8\nreplacement = false", "dsgd"),
        (
            "kind = \"dsgd\"",
            "kind = \"dcsgd\"\ncompressor = { kind = \"bernoulli\", p = 0.5 }",
            "dcsgd",
        ),
        ("kind = \"dsgd\"", "kind = \"dsignsgd\"", "dsignsgd"),
    ] {
        let c = ok(&edit(from, to));
        let opt = build::optimizer(&c).unwrap();
        assert!(matches!(opt.method(), AnyMethod::Minibatch(_)));
        use models::GradientMethod;
        assert_eq!(opt.method().name(), name);
        assert_eq!(ok(&c.to_toml_string().unwrap()), c);
    }
}

#[test]
fn minibatch_and_data_errors_name_the_key() {
    // An unknown data set lists the known ones.
    err(
        &edit("dataset = \"iris\"", "dataset = \"mnist\""),
        "loss.dataset",
        &["mnist", "iris", "wine_quality", "diabetes"],
    );
    // A hidden width past the cap is refused by name before anything is allocated (a proptest
    // mutation once asked for 6.4 TB and aborted on allocation).
    err(
        &edit(
            "kind = \"logistic\"",
            "kind = \"mlp\"\nhidden = [8, 100000000000]",
        ),
        "loss.hidden[1]",
        &["100000000000", "4096"],
    );
    // A loss without training rows.
    let quad = edit(
        "kind = \"logistic\"\ndataset = \"iris\"\nl2 = 0.01\nseed = 1",
        "kind = \"quadratic\"\ndiag = [1.0]\nx0 = [1.0]",
    );
    err(
        &quad,
        "noise.kind",
        &[
            "minibatch",
            "loss.kind = \"logistic\" | \"mlp\"",
            "quadratic",
        ],
    );
    // Batches larger than the 120 training rows, without replacement.
    err(
        &edit("batch = 8", "batch = 121\nreplacement = false"),
        "noise.batch",
        &["121", "1..=120"],
    );
    err(
        &edit("batch = 8", "batch = 0"),
        "noise.batch",
        &["noise.batch = 0"],
    );
    err(&edit("batch = 8\n", ""), "noise.batch", &["missing key"]);
    err(
        &edit("batch = 8", "batch = 8\nreplacement = \"yes\""),
        "noise.replacement",
        &["boolean"],
    );
    err(
        &edit("batch = 8", "batch = 8\nsigma0 = 1.0"),
        "noise.sigma0",
        &["unknown key", "minibatch", "batch", "replacement"],
    );
    // The unknown-kind message lists minibatch too.
    err(
        &edit("kind = \"minibatch\"", "kind = \"minibach\""),
        "noise.kind",
        &[
            "gaussian",
            "student_t",
            "minibatch",
            "did you mean \"minibatch\"",
        ],
    );
    // Only identity and Bernoulli compressors have an exact minibatch covariance.
    err(
        &edit(
            "kind = \"dsgd\"",
            "kind = \"dcsgd\"\ncompressor = { kind = \"rand_k\", k = 2 }",
        ),
        "optimizer.compressor.kind",
        &["rand_k", "identity and bernoulli"],
    );
    // The normalized schedule's a, b default to injected-noise constants.
    err(
        &edit(
            "[sde]",
            "[schedule]\nkind = \"normalized\"\nc = 1.0\nepsilon = 0.5\nl0 = 1.0\nl1 = 0.0\n\n[sde]",
        ),
        "schedule.a",
        &["missing key", "minibatch"],
    );
}

#[test]
fn svag_in_sde_models_and_its_errors() {
    let c = ok(&edit(
        "models = [\"first_order\"]",
        "models = [\"first_order\", \"svag\"]",
    ));
    assert_eq!(c.sde.models, vec![SdeModel::FirstOrder]);
    assert_eq!(c.sde.svag_l, vec![DEFAULT_SVAG_L]);
    assert_eq!(ok(&c.to_toml_string().unwrap()), c);
    let c = ok(&edit(
        "models = [\"first_order\"]",
        "models = [\"svag\"]\nsvag_l = [4, 32]",
    ));
    assert!(c.sde.models.is_empty());
    assert_eq!(c.sde.svag_l, vec![4, 32]);
    assert_eq!(ok(&c.to_toml_string().unwrap()), c);
    let e = c.check_for_weak_error().unwrap_err();
    assert_eq!(e.key, "sde.models", "{}", e.message);
    assert_eq!(
        ok(&edit(
            "models = [\"first_order\"]",
            "models = [\"svag\"]\nsvag_l = 8"
        ))
        .sde
        .svag_l,
        vec![8]
    );
    let with = |to: &str| edit("models = [\"first_order\"]", to);
    err(
        &with("models = [\"svag\"]\nsvag_l = 0"),
        "sde.svag_l",
        &["must be at least 1"],
    );
    err(
        &with("models = [\"svag\"]\nsvag_l = [4, 4]"),
        "sde.svag_l",
        &["listed twice"],
    );
    err(
        &with("models = [\"svag\", \"svag\"]"),
        "sde.models[1]",
        &["listed twice"],
    );
    err(
        &with("models = [\"first_order\", \"svga\"]"),
        "sde.models[1]",
        &[
            "unknown model",
            "stability",
            "svag",
            "did you mean \"svag\"",
        ],
    );
}

/// The example `dsgd-mlp-iris.toml` (DSGD, N = 4, B = 16 without replacement, MLP 4-8-3 on iris)
/// cut to (A) and 200 paths, at five learning rates: (A)'s weak error on the training loss,
/// against independent discrete runs, is resolved with an order interval containing 1. At the
/// committed 300 paths the weak errors are 7 to 13 times their simultaneous 95% half-widths, so
/// at 200 (half-widths × 1.22) every point stays far inside the 0.5 rule and the verdict does
/// not hang on the seed.
#[test]
fn small_mlp_weak_error_study_is_resolved() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/configs/dsgd-mlp-iris.toml");
    let text = std::fs::read_to_string(path).unwrap();
    let text = text
        .replace(
            "models = [\"first_order\", \"stability\"]",
            "models = [\"first_order\"]",
        )
        .replace(
            "etas = [0.4, 0.28, 0.2, 0.14]",
            "etas = [0.4, 0.28, 0.2, 0.14, 0.1]",
        )
        .replace("paths = 300", "paths = 200");
    let cfg = ok(&text);
    assert_eq!((cfg.run.paths, cfg.run.etas.len()), (200, 5));
    cfg.check_for_weak_error().unwrap();
    let opt = build::optimizer(&cfg).unwrap();
    let settings = build::study_settings(&cfg);
    let curves = weak_error_study(&opt, &settings, None, &|_| {}).unwrap();
    let c = &curves[0];
    for p in &c.points {
        eprintln!(
            "eta {} weak error {:?} ci95 {:?} bias {:?}",
            p.eta, p.weak_error, p.ci95, p.integrator_bias_bound
        );
    }
    assert_eq!(c.verdict, Verdict::Resolved, "{:?}", c.verdict_reasons);
    let [lo, hi] = c.order_ci95.unwrap();
    assert!(lo <= 1.0 && 1.0 <= hi, "order {:?} [{lo}, {hi}]", c.order);
}

/// SVAG(l = 32), which only samples minibatches, against Euler–Maruyama on (A) with the `d × n`
/// factor at 32 substeps, through the config and `sdelab run`'s library calls: the final means
/// agree within 1.5 times the 95% interval of their difference (≈ 2.9 standard errors). Both
/// carry an O(η/32) bias of the same sign (≈ 3e-4 on the loss here), far below the interval.
#[test]
fn svag_and_euler_maruyama_agree_through_the_cli_build() {
    let text = edit(
        "models = [\"first_order\"]",
        "models = [\"first_order\", \"svag\"]\nsvag_l = [32]\nsubsteps = 32",
    )
    .replace(
        "paths = 1000",
        "paths = 2000\nobservables = [\"loss\", \"distance_from_x0\"]",
    );
    let cfg = ok(&text);
    let opt = build::optimizer(&cfg).unwrap();
    let s = build::trajectory_settings(&cfg);
    let report = trajectories(&opt, &s, &|_| {}).unwrap();
    let svag = svag_trajectories(&opt, &s, &cfg.sde.svag_l, &|_| {}).unwrap();
    let (_, em) = &report.models[0];
    let (l, sv) = &svag[0];
    assert_eq!(*l, 32);
    assert_eq!(sv.label, "SVAG l=32");
    for obs in [Observable::Loss, Observable::DistanceFromX0] {
        let (a, b) = (em.band(obs).unwrap(), sv.band(obs).unwrap());
        let k = a.mean.len() - 1;
        let diff = (a.mean[k] - b.mean[k]).abs();
        let tol = 1.5 * a.ci95[k].hypot(b.ci95[k]);
        eprintln!(
            "{obs:?}: EM {} ± {}, SVAG {} ± {}",
            a.mean[k], a.ci95[k], b.mean[k], b.ci95[k]
        );
        assert!(diff <= tol, "{obs:?}: |{diff}| > {tol}");
    }
}

/// Runs one of the library's commands (`weak_error`, `stability`, ...) on the config `text` with
/// its `paths = 1000` cut to `paths`, into `dir/name`; returns the folder and its `result.json`.
fn run_command(
    command: fn(&sdelab::commands::ConfigRun) -> Result<(), sdelab::error::CliError>,
    dir: &std::path::Path,
    text: &str,
    name: &str,
    paths: u64,
) -> (std::path::PathBuf, serde_json::Value) {
    use sdelab::commands::{ConfigRun, Globals, OutputOptions};
    let cfg = ok(&text.replace("paths = 1000", &format!("paths = {paths}")));
    let out = dir.join(name);
    let opts = OutputOptions {
        config_path: name.into(),
        out: out.clone(),
        json: false,
    };
    let globals = Globals {
        quiet: true,
        threads: 2,
        wait: false,
        force: false,
    };
    command(&ConfigRun::new(&cfg, &opts, &globals).unwrap()).unwrap();
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("result.json")).unwrap()).unwrap();
    (out, doc)
}

/// `sdelab weak-error` with `"svag"` in `sde.models`, through the library's command: the SVAG rows
/// and files are written, and everything the study wrote without SVAG keeps its bits (SVAG runs
/// after the study, on streams of its own).
#[test]
fn weak_error_with_svag_adds_rows_and_keeps_the_study_bits() {
    use sdelab::commands::weak_error;
    let dir = tempfile::tempdir().unwrap();
    let run = |text: &str, name: &str| run_command(weak_error, dir.path(), text, name, 300);
    let (plain_dir, plain) = run(BASE, "plain");
    let (svag_dir, svag) = run(
        &edit(
            "models = [\"first_order\"]",
            "models = [\"first_order\", \"svag\"]\nsvag_l = [2, 32]",
        ),
        "svag",
    );
    assert!(plain.get("svag").is_none());
    assert_eq!(plain["weak_error"], svag["weak_error"]);
    let sv = &svag["svag"];
    assert!(sv["estimand"].as_str().unwrap().contains("independent"));
    let n_obs = svag["config"]["run"]["observables"]
        .as_array()
        .unwrap()
        .len();
    let curves = sv["curves"].as_array().unwrap();
    assert_eq!(curves.len(), 2 * n_obs, "2 l × the observables");
    assert_eq!(curves[0]["label"], "svag l=2");
    // Every row counts the words its SVAG paths drew (the minibatches' indices); the rows of one
    // l and learning rate share the count across observables, and the total counts it once.
    let mut total = 0;
    for c in curves {
        for p in c["curve"]["points"].as_array().unwrap() {
            assert_eq!(p["sde_estimator"], "svag");
            assert_eq!(p["reference"], "independent");
            assert!(p["ci95"].as_f64().unwrap() > 0.0);
            assert!(p["random_numbers"]["discrete"].is_null(), "{p}");
            let words = p["random_numbers"]["sde"].as_u64().unwrap();
            assert!(words > 0, "{p}");
            if c["curve"]["observable"] == curves[0]["curve"]["observable"] {
                total += words;
            }
        }
    }
    assert_eq!(sv["random_numbers"].as_u64(), Some(total));
    let agreement = sv["agreement"].as_array().unwrap();
    assert_eq!(
        agreement.len(),
        2 * 2 * n_obs,
        "2 l × 2 learning rates × the observables"
    );
    for a in agreement {
        let (d, ci) = (
            a["difference"].as_f64().unwrap(),
            a["ci95"].as_f64().unwrap(),
        );
        let [lo, hi] = [0, 1].map(|i| a["ci95_interval"][i].as_f64().unwrap());
        assert!(ci > 0.0 && (lo - (d - ci)).abs() < 1e-15 && (hi - (d + ci)).abs() < 1e-15);
        assert_eq!(a["contains_zero"], lo <= 0.0 && 0.0 <= hi);
    }
    // The CSV files: the model rows unchanged and first, the SVAG rows after them.
    for f in ["weak_error.csv", "orders.csv"] {
        let a = std::fs::read_to_string(plain_dir.join(f)).unwrap();
        let b = std::fs::read_to_string(svag_dir.join(f)).unwrap();
        assert!(b.starts_with(&a), "{f}");
        let extra: Vec<&str> = b[a.len()..].lines().collect();
        assert!(
            !extra.is_empty() && extra.iter().all(|r| r.starts_with("svag l=")),
            "{f}"
        );
    }
    let agreement_csv = std::fs::read_to_string(svag_dir.join("svag_agreement.csv")).unwrap();
    assert_eq!(agreement_csv.lines().count(), 1 + 4 * n_obs);
    for f in [
        "svag_order_in_l.csv",
        "svag_weak_error_loss.png",
        "svag_weak_error_loss.svg",
        "svag_agreement_loss.png",
        "svag_agreement_loss.svg",
    ] {
        assert!(svag_dir.join(f).is_file(), "missing {f}");
        assert!(!plain_dir.join(f).exists(), "{f} without SVAG");
    }
}

/// `sdelab stability` with SVAG: one curve `svag l=<l>` per l after the discrete method's and the
/// models', in `result.json`, `stability.csv` (the other rows unchanged and first) and the plot;
/// without SVAG the document has no `svag_method` and the same curves.
#[test]
fn stability_with_svag_adds_curves_and_keeps_the_others() {
    use sdelab::commands::stability;
    let dir = tempfile::tempdir().unwrap();
    let run = |text: &str, name: &str| run_command(stability, dir.path(), text, name, 200);
    let (plain_dir, plain) = run(BASE, "plain");
    let (svag_dir, svag) = run(
        &edit(
            "models = [\"first_order\"]",
            "models = [\"first_order\", \"svag\"]\nsvag_l = [2, 8]",
        ),
        "svag",
    );
    assert!(plain.get("svag_method").is_none());
    assert!(svag["svag_method"].as_str().unwrap().contains("svag l=<l>"));
    let (a, b) = (
        plain["stability"].as_array().unwrap(),
        svag["stability"].as_array().unwrap(),
    );
    assert_eq!(b.len(), a.len() + 2);
    assert_eq!(a[..], b[..a.len()]);
    for (c, l) in b[a.len()..].iter().zip([2, 8]) {
        assert_eq!(c["process"], format!("svag l={l}"));
        for p in c["points"].as_array().unwrap() {
            assert_eq!(p["paths"], 200);
            assert!(p.get("substep_check").is_none(), "{p}");
        }
    }
    let a = std::fs::read_to_string(plain_dir.join("stability.csv")).unwrap();
    let b = std::fs::read_to_string(svag_dir.join("stability.csv")).unwrap();
    assert!(b.starts_with(&a));
    let extra: Vec<&str> = b[a.len()..].lines().collect();
    assert_eq!(extra.len(), 2 * 2, "2 l × 2 learning rates");
    assert!(extra.iter().all(|r| r.starts_with("svag l=")), "{extra:?}");
    assert!(svag_dir.join("stability.png").is_file());
}

/// A small diabetes study through the binary (DSGD, N = 4, B = 16, MLP 10-8-1, 60 independent
/// paths per side): at η = 0.025 its simultaneous interval is well above half the weak error (a
/// Monte Carlo floor), and the reason says how many paths would lift it, computed from the
/// point's own numbers: `paths · (ci95_monte_carlo / (weak_error/2 − bias bound))²`, rounded up
/// to a hundred. The verdict is `unresolved` and the command still succeeds.
#[test]
fn a_small_diabetes_study_says_how_many_paths_would_resolve_it() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("diabetes.toml");
    std::fs::write(
        &cfg,
        r#"
name = "diabetes-small"
seed = 5
[loss]
kind = "mlp"
dataset = "diabetes"
hidden = [8]
activation = "tanh"
l2 = 0.001
seed = 1
[agents]
n = 4
[noise]
kind = "minibatch"
batch = 16
[optimizer]
kind = "dsgd"
[sde]
models = ["first_order"]
scheme = "euler_maruyama"
max_substeps = 32
[run]
horizon = 0.5
etas = [0.1, 0.05, 0.025]
paths = 60
max_paths = 60
observables = ["loss"]
"#,
    )
    .unwrap();
    let out = common::sdelab_json("2", "weak-error", &cfg, &dir.path().join("out"));
    let doc = common::stdout_json(&out);
    let curve = &doc["weak_error"][0];
    assert_eq!(curve["verdict"], "unresolved", "{curve}");
    let reasons: Vec<String> = curve["verdict_reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_string())
        .collect();
    let mut floors = 0;
    for p in curve["points"].as_array().unwrap() {
        let (e, ci) = (
            p["weak_error"].as_f64().unwrap(),
            p["ci95"].as_f64().unwrap(),
        );
        if ci <= 0.5 * e {
            continue;
        }
        floors += 1;
        let mc = p["ci95_monte_carlo"].as_f64().unwrap();
        let bias = p["integrator_bias_bound"].as_f64().unwrap();
        let need = (60.0 * (mc / (0.5 * e - bias)).powi(2)).ceil() as u64;
        let want = format!(
            "Monte Carlo floor at eta = {}: the simultaneous 95% interval (±{ci:.3e}) is more than 0.5 of the weak error ({e:.3e}): run.paths = {} would bring it",
            p["eta"],
            need.div_ceil(100) * 100
        );
        assert!(
            reasons.iter().any(|r| r.starts_with(&want)),
            "{want}\n{reasons:#?}"
        );
    }
    assert!(floors >= 1, "{reasons:#?}");
    // At the default run.max_paths (max(4 x 60, 2000)) the second stage reruns the floor points'
    // learning rates (and, for a too-wide order interval, the others) on fresh paths, at most
    // 2000, and says so in every point it replaced.
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("max_paths = 60\n", "");
    std::fs::write(&cfg, text).unwrap();
    let out = common::sdelab_json("2", "weak-error", &cfg, &dir.path().join("out2"));
    let doc = common::stdout_json(&out);
    assert_eq!(doc["config"]["run"]["max_paths"], 2000);
    let first = curve["points"].as_array().unwrap();
    let mut reruns = 0;
    for (i, p) in doc["weak_error"][0]["points"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        let (e, ci) = (
            first[i]["weak_error"].as_f64().unwrap(),
            first[i]["ci95"].as_f64().unwrap(),
        );
        match p.get("rerun") {
            Some(r) => {
                reruns += 1;
                assert_eq!(r["first_paths"], 60);
                assert_eq!(r["first_weak_error"], first[i]["weak_error"]);
                let paths = p["sde"]["paths"].as_u64().unwrap();
                assert!(paths > 60 && paths <= 2000, "{paths}");
                assert_eq!(p["discrete"]["paths"].as_u64(), Some(paths));
                assert!(r["asked_by"][0]
                    .as_str()
                    .unwrap()
                    .starts_with("first_order loss: Monte Carlo floor"));
            }
            None => {
                // Every floor point is rerun (a too-wide order interval reruns the others too).
                assert!(ci <= 0.5 * e, "a floor point must be rerun: {p}");
                assert_eq!(p["weak_error"], first[i]["weak_error"], "{p}");
            }
        }
    }
    assert!(reruns >= floors, "{doc}");
}
