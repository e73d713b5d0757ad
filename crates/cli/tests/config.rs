//! Configuration parsing: every example parses, defaults are filled in, and every class of bad
//! input gives a message naming the key and the value.

use std::path::{Path, PathBuf};

use compare::study::iterations;
use models::compress::{BernoulliSpec, Compressor, QsgdSpec, RandKSpec};
use models::loss::{DiagonalQuadraticSpec, LeastSquaresSpec, QuarticSpec};
use models::method::DsgdSpec;
use models::noise::{GaussianSpec, Scale, StudentTSpec};
use models::schedule::{NormalizedSgdSpec, NormalizedSpec, PolySpec};
use sdelab::config::*;
use sdelab::error::CliError;

mod common;

fn gaussian(sigma0: f64, sigma1: f64, scale: Vec<f64>) -> NoiseModel {
    NoiseModel::Gaussian(GaussianSpec {
        sigma0,
        sigma1,
        scale: Some(scale),
    })
}

fn student_t_spec(nu: f64, scale: Vec<f64>, sigma0: f64, sigma1: f64) -> NoiseModel {
    NoiseModel::StudentT(StudentTSpec {
        nu,
        scale: Scale::Each(scale),
        sigma0,
        sigma1,
    })
}

const BASE: &str = r#"
name = "t"

[loss]
kind = "quadratic"
diag = [1.0, 2.0]
x0 = [1.0, 1.0]

[noise]
kind = "gaussian"
sigma0 = 0.5

[optimizer]
kind = "dsgd"

[run]
horizon = 1.0
etas = [0.1, 0.05]
paths = 1000
"#;

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/configs")
}

fn parse(text: &str) -> Result<ExperimentConfig, ConfigError> {
    ExperimentConfig::from_toml_str(text)
}

fn ok(text: &str) -> ExperimentConfig {
    match parse(text) {
        Ok(c) => c,
        Err(e) => panic!("expected a valid config, got: {e}\n---\n{text}"),
    }
}

/// Replace the unique occurrence of `from` in `text` by `to`.
fn edit(text: &str, from: &str, to: &str) -> String {
    assert_eq!(
        text.matches(from).count(),
        1,
        "{from:?} must occur exactly once"
    );
    text.replacen(from, to, 1)
}

/// `BASE` with `from` replaced by `to`.
fn base_with(from: &str, to: &str) -> String {
    edit(BASE, from, to)
}

/// Parsing fails with a message containing `expected`; the error key is returned.
#[track_caller]
fn err(text: &str, expected: &str) -> ConfigError {
    match parse(text) {
        Ok(c) => panic!("expected an error containing {expected:?}, got Ok({c:?})\n---\n{text}"),
        Err(e) => {
            assert!(
                e.message.contains(expected),
                "message {:?} does not contain {expected:?}",
                e.message
            );
            let c: CliError = e.clone().into();
            assert_eq!(c.exit_code(), 2);
            e
        }
    }
}

// ------------------------------------------------------------------------------------------
// Examples and defaults
// ------------------------------------------------------------------------------------------

#[test]
fn every_example_config_parses() {
    let mut n = 0;
    let mut entries: Vec<_> = std::fs::read_dir(examples_dir())
        .expect("examples/configs")
        .collect();
    entries.sort_by_key(|e| e.as_ref().map(|e| e.path()).ok());
    for entry in entries {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        let cfg = match ExperimentConfig::from_path(&path) {
            Ok(c) => c,
            Err(e) => panic!("{}: {e}", path.display()),
        };
        let stem = path.file_stem().and_then(|s| s.to_str()).expect("stem");
        assert_eq!(
            cfg.name,
            stem,
            "{}: name should match the file name",
            path.display()
        );
        n += 1;
    }
    assert!(n >= 4, "expected at least 4 example configs, found {n}");
}

#[test]
fn the_dsgd_quadratic_example_is_the_math_section_7_setting() {
    let cfg =
        ExperimentConfig::from_path(&examples_dir().join("dsgd-quadratic.toml")).expect("parse");
    assert_eq!(cfg.dim(), 1);
    assert_eq!(
        cfg.loss.kind,
        LossKind::DiagonalQuadratic(DiagonalQuadraticSpec { diag: vec![1.0] })
    );
    assert_eq!(cfg.loss.x0, vec![1.0]);
    assert_eq!(cfg.agents.n, 1);
    assert_eq!(cfg.noise, NoiseSpec::Shared(gaussian(1.0, 0.0, vec![1.0])));
    assert_eq!(cfg.optimizer.kind_name(), "dsgd");
    assert_eq!(cfg.schedule, ScheduleSpec::default());
    assert_eq!(
        cfg.sde.models,
        vec![
            SdeModel::FirstOrder,
            SdeModel::SecondOrder,
            SdeModel::Stability
        ]
    );
    assert_eq!(cfg.run.horizon, 1.0);
    assert_eq!(cfg.run.etas.len(), 4);
    let iters: Vec<usize> = cfg
        .run
        .etas
        .iter()
        .map(|&e| iterations(cfg.run.horizon, e))
        .collect();
    assert_eq!(iters, vec![10, 20, 40, 80]);
    assert!(cfg.check_for_weak_error().is_ok());
}

#[test]
fn defaults_are_filled_in() {
    let cfg = ok(BASE);
    assert_eq!(cfg.name, "t");
    assert_eq!(cfg.seed, 0);
    assert_eq!(cfg.agents, AgentsSpec { n: 1 });
    assert_eq!(
        cfg.noise,
        NoiseSpec::Shared(gaussian(0.5, 0.0, vec![1.0, 1.0]))
    );
    assert_eq!(cfg.optimizer, OptimizerSpec::Dsgd(DsgdSpec::default()));
    assert_eq!(cfg.schedule, ScheduleSpec::default());
    assert_eq!(
        cfg.sde,
        SdeSpec {
            models: vec![
                SdeModel::FirstOrder,
                SdeModel::SecondOrder,
                SdeModel::Stability
            ],
            scheme: SchemeKind::Weak2,
            substeps: None,
            max_substeps: 256,
            increments: IncrementKind::Gaussian,
            svag_l: Vec::new(),
        }
    );
    assert_eq!(
        cfg.run.observables,
        vec![
            Observable::Loss,
            Observable::X,
            Observable::XSq,
            Observable::GradNorm
        ]
    );
    assert_eq!(cfg.run.diverge_above, 1e8);
    assert!(cfg.run.common_random_numbers);
    assert!(!cfg.run.exact_reference);
    assert_eq!(cfg.run.quantiles, vec![0.1, 0.5, 0.9]);

    let q = ok(&base_with(
        "kind = \"quadratic\"\ndiag = [1.0, 2.0]",
        "kind = \"quartic\"",
    ));
    assert_eq!(
        q.loss.kind,
        LossKind::Quartic(QuarticSpec {
            coeffs: Some(vec![1.0, 1.0])
        })
    );
}

#[test]
fn serialized_config_has_defaults_and_the_documented_names() {
    let cfg = ok(BASE);
    let v = serde_json::to_value(&cfg).expect("json");
    assert_eq!(v["loss"]["kind"], "quadratic");
    assert_eq!(v["loss"]["x0"], serde_json::json!([1.0, 1.0]));
    assert_eq!(v["noise"]["kind"], "gaussian");
    assert_eq!(v["noise"]["scale"], serde_json::json!([1.0, 1.0]));
    assert_eq!(v["optimizer"]["kind"], "dsgd");
    assert_eq!(v["optimizer"]["compressor"]["kind"], "identity");
    assert_eq!(v["schedule"]["kind"], "constant");
    assert_eq!(
        v["sde"]["models"],
        serde_json::json!(["first_order", "second_order", "stability"])
    );
    assert_eq!(v["sde"]["scheme"], "weak2");
    assert!(v["sde"].get("substeps").is_none());
    assert_eq!(v["sde"]["max_substeps"], 256);
    assert_eq!(v["sde"]["increments"], "gaussian");
    assert_eq!(
        v["run"]["observables"],
        serde_json::json!(["loss", "x", "x_sq", "grad_norm"])
    );
    assert_eq!(v["run"]["quantiles"], serde_json::json!([0.1, 0.5, 0.9]));
    assert_eq!(v["seed"], 0);
    assert_eq!(v["agents"]["n"], 1);
}

fn round_trip(cfg: &ExperimentConfig) {
    let text = cfg.to_toml_string().expect("to toml");
    let back = match parse(&text) {
        Ok(c) => c,
        Err(e) => panic!("serialized config does not parse back: {e}\n---\n{text}"),
    };
    assert_eq!(&back, cfg, "round trip changed the config\n---\n{text}");
}

#[test]
fn serialized_toml_parses_back_to_the_same_config() {
    round_trip(&ok(BASE));
    for entry in std::fs::read_dir(examples_dir()).expect("dir") {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|e| e.to_str()) == Some("toml") {
            round_trip(&ExperimentConfig::from_path(&path).expect("parse"));
        }
    }
    round_trip(&ok(&per_agent_noise(&["sigma0 = 0.1", "sigma0 = 0.2"])));
    round_trip(&ok(LEAST_SQUARES_NORMALIZED));
    round_trip(&ok(&base_with(
        "kind = \"quadratic\"\ndiag = [1.0, 2.0]",
        "kind = \"quadratic_full\"\nmatrix = [[2.0, 1.0], [1.0, 2.0]]",
    )));
    round_trip(&ok(&base_with(
        "kind = \"dsgd\"",
        "kind = \"dcsgd\"\ncompressor = { kind = \"rand_k\", k = 1 }\n[schedule]\nkind = \"normalized_sgd\"\nc = 0.5\ndelta = 0.1",
    )));
}

// ------------------------------------------------------------------------------------------
// Messages: key and value
// ------------------------------------------------------------------------------------------

#[test]
fn messages_of_the_brief() {
    let e = err(
        &base_with("etas = [0.1, 0.05]", "etas = [0.1, 0.05, -0.1]"),
        "run.etas[2] = -0.1: must be positive",
    );
    assert_eq!(e.key, "run.etas[2]");
    assert_eq!(e.message, "run.etas[2] = -0.1: must be positive");

    let e = err(
        &base_with("kind = \"gaussian\"", "kind = \"cauchy\""),
        "noise.kind = \"cauchy\": unknown kind (expected one of gaussian, student_t, minibatch)",
    );
    assert_eq!(e.key, "noise.kind");

    let e = err(&base_with("x0 = [1.0, 1.0]", ""), "loss.x0: missing key");
    assert_eq!(e.message, "loss.x0: missing key");

    let e = err(
        &base_with("paths = 1000", "paths = \"many\""),
        "run.paths = \"many\": expected an integer",
    );
    assert_eq!(e.message, "run.paths = \"many\": expected an integer");

    let e = err(
        &base_with("diag = [1.0, 2.0]", "diag = [1.0, 2.0, 3.0]"),
        "loss.diag has length 3 but loss.x0 has length 2",
    );
    assert_eq!(e.message, "loss.diag has length 3 but loss.x0 has length 2");
}

#[test]
fn learning_rates_are_checked() {
    err(
        &base_with("etas = [0.1, 0.05]", "etas = [0.1, 0.0]"),
        "run.etas[1] = 0.0: must be positive",
    );
    err(
        &base_with("etas = [0.1, 0.05]", "etas = [nan]"),
        "run.etas[0] = nan: must be a finite number",
    );
    err(
        &base_with("etas = [0.1, 0.05]", "etas = [inf]"),
        "run.etas[0] = inf: must be a finite number",
    );
    err(
        &base_with("etas = [0.1, 0.05]", "etas = []"),
        "run.etas = []: must not be empty",
    );
    err(
        &base_with("etas = [0.1, 0.05]", "etas = 0.1"),
        "run.etas = 0.1: expected a list",
    );
    err(
        &base_with("etas = [0.1, 0.05]", "etas = [0.1, \"x\"]"),
        "run.etas[1] = \"x\": expected a number",
    );
    err(
        &base_with("etas = [0.1, 0.05]", "etas = [0.1, 0.1]"),
        "run.etas[1] = 0.1: listed twice",
    );
    err(
        &base_with("etas = [0.1, 0.05]", "etas = [2.0]"),
        "run.etas[0] = 2.0: larger than run.horizon = 1.0",
    );
    // Integers are numbers; T/eta need not be an integer.
    let c = ok(&base_with("etas = [0.1, 0.05]", "etas = [1, 0.3]"));
    assert_eq!(c.run.etas, vec![1.0, 0.3]);
    assert_eq!(iterations(c.run.horizon, 0.3), 3);
    assert_eq!(iterations(c.run.horizon, 1.0), 1);
}

#[test]
fn iterations_tolerate_rounding() {
    // The rule the README's config reference documents for run.etas, `compare::study::iterations`.
    assert_eq!(iterations(0.3, 0.1), 3); // 0.3 / 0.1 = 2.9999999999999996
    assert_eq!(iterations(1.0, 0.1), 10);
    assert_eq!(iterations(1.0, 0.0125), 80);
    assert_eq!(iterations(1.0, 0.3), 3);
    assert_eq!(iterations(1.0, 0.7), 1);
    assert_eq!(iterations(10.0, 0.05), 200);
    // The parser applies it: 0.3 / 0.1 is one iteration per 0.1, not "larger than the horizon".
    let c = ok(&base_with(
        "horizon = 1.0\netas = [0.1, 0.05]",
        "horizon = 0.3\netas = [0.1, 0.3]",
    ));
    assert_eq!(c.run.etas, vec![0.1, 0.3]);
    // A quotient that overflows is too many iterations, not too few.
    err(
        &base_with("horizon = 1.0", "horizon = 1e308"),
        "run.etas[0] = 0.1: run.horizon / eta = inf iterations, more than the limit of 10000000",
    );
}

#[test]
fn library_enums_serialize_to_their_config_names() {
    fn check<T: Named + serde::Serialize>() {
        for &t in T::all() {
            assert_eq!(
                serde_json::to_value(t).expect("json"),
                t.config_name(),
                "{}",
                t.config_name()
            );
        }
    }
    check::<SdeModel>();
    check::<SchemeKind>();
    check::<IncrementKind>();
    check::<Observable>();
    assert_eq!(
        names::<SdeModel>(),
        ["first_order", "second_order", "stability"]
    );
    assert_eq!(
        names::<SchemeKind>(),
        ["euler_maruyama", "milstein", "weak2", "adaptive_em"]
    );
    assert_eq!(
        names::<IncrementKind>(),
        ["gaussian", "two_point", "three_point"]
    );
    assert_eq!(
        names::<Observable>(),
        [
            "loss",
            "x",
            "x_sq",
            "grad_norm",
            "grad_norm_sq",
            "test_loss",
            "test_accuracy",
            "distance_from_x0"
        ]
    );
}

#[test]
fn scalars_are_checked() {
    err(
        &base_with("paths = 1000", "paths = 1"),
        "run.paths = 1: must be at least 2",
    );
    err(
        &base_with("paths = 1000", "paths = -5"),
        "run.paths = -5: must be at least 2",
    );
    err(
        &base_with("paths = 1000", "paths = 2.5"),
        "run.paths = 2.5: expected an integer",
    );
    assert_eq!(
        ok(&base_with("paths = 1000", "paths = 1e5")).run.paths,
        100_000
    );
    assert_eq!(
        ok(&base_with("paths = 1000", "paths = 200_000")).run.paths,
        200_000
    );
    err(
        &base_with("horizon = 1.0", "horizon = 0"),
        "run.horizon = 0: must be positive",
    );
    err(
        &base_with("horizon = 1.0", "horizon = -1.0"),
        "run.horizon = -1.0: must be positive",
    );
    err(
        &base_with("horizon = 1.0", "horizon = inf"),
        "run.horizon = inf: must be a finite number",
    );
    err(
        &base_with("horizon = 1.0", "horizon = \"1\""),
        "run.horizon = \"1\": expected a number",
    );
    err(
        &base_with("horizon = 1.0", "horizon = 1.0\ndiverge_above = -1"),
        "run.diverge_above = -1: must be positive",
    );
    err(
        &base_with(
            "horizon = 1.0",
            "horizon = 1.0\ncommon_random_numbers = \"yes\"",
        ),
        "run.common_random_numbers = \"yes\": expected a boolean",
    );
    err(
        &base_with("horizon = 1.0", "horizon = 1.0\nexact_reference = 1"),
        "run.exact_reference = 1: expected a boolean",
    );
    err(
        &base_with("name = \"t\"", "name = \"t\"\nseed = -1"),
        "seed = -1: must not be negative",
    );
    err(
        &base_with("name = \"t\"", "name = \"t\"\nseed = 1.5"),
        "seed = 1.5: expected an integer",
    );
    assert_eq!(
        ok(&base_with("name = \"t\"", "name = \"t\"\nseed = 42")).seed,
        42
    );
    err(
        &base_with("name = \"t\"", "name = \"a/b\""),
        "name = \"a/b\": must be a plain folder name",
    );
    err(
        &base_with("name = \"t\"", "name = \"\""),
        "name = \"\": must be a plain folder name",
    );
    err(
        &base_with("name = \"t\"", "name = \"..\""),
        "name = \"..\": must be a plain folder name",
    );
    err(
        &base_with("name = \"t\"", "name = 3"),
        "name = 3: expected a string",
    );
    err(&base_with("name = \"t\"", ""), "name: missing key");
}

#[test]
fn agents_are_checked() {
    let with_agents = |n: &str| base_with("[noise]", &format!("[agents]\nn = {n}\n\n[noise]"));
    assert_eq!(ok(&with_agents("8")).agents.n, 8);
    err(&with_agents("0"), "agents.n = 0: must be at least 1");
    err(
        &with_agents("\"8\""),
        "agents.n = \"8\": expected an integer",
    );
    err(
        &base_with("[noise]", "[agents]\n\n[noise]"),
        "agents.n: missing key",
    );
    err(
        &base_with("[noise]", "[agents]\nn = 2\nm = 3\n\n[noise]"),
        "agents.m = 3: unknown key (expected one of n)",
    );
}

#[test]
fn sections_must_be_tables_and_present() {
    err(&base_with("[run]\nhorizon", "[runs]\nhorizon"), "runs = { ");
    err(
        &base_with("[run]\nhorizon", "[runs]\nhorizon"),
        "unknown key (expected one of name, seed, loss",
    );
    err(
        &base_with("[run]\nhorizon", "[runs]\nhorizon"),
        "did you mean \"run\"?",
    );
    err("name = \"t\"\nloss = 3\n", "loss = 3: expected a table");
    err(
        "name = \"t\"\n[loss]\nkind = \"quartic\"\nx0 = [1.0]\n",
        "noise: missing key",
    );
}

#[test]
fn unknown_keys_are_rejected_everywhere() {
    let e = err(
        &base_with("name = \"t\"", "name = \"t\"\nsed = 3"),
        "sed = 3: unknown key (expected one of",
    );
    assert!(e.message.contains("did you mean \"seed\"?"), "{e}");
    err(
        &base_with("paths = 1000", "pathz = 1000"),
        "run.pathz = 1000: unknown key",
    );
    err(
        &base_with("paths = 1000", "pathz = 1000"),
        "did you mean \"paths\"?",
    );
    err(
        &base_with("diag = [1.0, 2.0]", "diag = [1.0, 2.0]\nquartic = [1.0, 1.0]"),
        "loss.quartic = [1.0, 1.0]: unknown key for loss.kind = \"quadratic\" (expected one of kind, x0, diag)",
    );
    err(
        &base_with("sigma0 = 0.5", "sigma0 = 0.5\nnu = 3"),
        "noise.nu = 3: unknown key for noise.kind = \"gaussian\"",
    );
    err(
        &base_with("kind = \"dsgd\"", "kind = \"dsgd\"\nlr = 0.1"),
        "optimizer.lr = 0.1: unknown key",
    );
    err(
        &base_with(
            "kind = \"dsgd\"",
            "kind = \"dcsgd\"\ncompressor = { kind = \"bernoulli\", p = 0.5, q = 1 }",
        ),
        "optimizer.compressor.q = 1: unknown key for optimizer.compressor.kind = \"bernoulli\"",
    );
    err(
        &base_with("[run]", "[sde]\nschem = \"weak2\"\n\n[run]"),
        "sde.schem = \"weak2\": unknown key",
    );
    err(
        &base_with("[run]", "[sde]\nschem = \"weak2\"\n\n[run]"),
        "did you mean \"scheme\"?",
    );
    err(
        &base_with(
            "[run]",
            "[schedule]\nkind = \"poly\"\npower = 0.5\nc = 1\n\n[run]",
        ),
        "schedule.c = 1: unknown key for schedule.kind = \"poly\"",
    );
    // Quoted keys are shown quoted.
    err(
        &base_with("name = \"t\"", "name = \"t\"\n\"odd key\" = 1"),
        "\"odd key\" = 1: unknown key",
    );
}

#[test]
fn kinds_are_checked() {
    let e = err(&base_with("kind = \"quadratic\"\n", ""), "loss.kind: missing key (expected one of quadratic, quadratic_full, quartic, mixed, least_squares, logistic, mlp)");
    assert_eq!(e.key, "loss.kind");
    err(
        &base_with("kind = \"quadratic\"", "kind = \"quadratik\""),
        "loss.kind = \"quadratik\": unknown kind",
    );
    err(
        &base_with("kind = \"quadratic\"", "kind = \"quadratik\""),
        "did you mean \"quadratic\"?",
    );
    err(
        &base_with("kind = \"quadratic\"", "kind = 1"),
        "loss.kind = 1: expected a string",
    );
    err(
        &base_with("kind = \"dsgd\"", "kind = \"adam\""),
        "optimizer.kind = \"adam\": unknown kind (expected one of dsgd, dcsgd, dsignsgd)",
    );
    err(
        &base_with("[run]", "[schedule]\nkind = \"cosine\"\n\n[run]"),
        "schedule.kind = \"cosine\": unknown kind (expected one of constant, poly, poly_time, normalized, normalized_sgd)",
    );
    err(
        &base_with("kind = \"dsgd\"", "kind = \"dcsgd\"\ncompressor = { kind = \"topk\" }"),
        "optimizer.compressor.kind = \"topk\": unknown kind (expected one of identity, bernoulli, rand_k, qsgd, rand_k_replace)",
    );
}

// ------------------------------------------------------------------------------------------
// Losses
// ------------------------------------------------------------------------------------------

#[test]
fn losses_are_checked() {
    err(
        &base_with("x0 = [1.0, 1.0]", "x0 = []"),
        "loss.x0 = []: must not be empty",
    );
    err(
        &base_with("x0 = [1.0, 1.0]", "x0 = [1.0, nan]"),
        "loss.x0[1] = nan: must be a finite number",
    );
    err(
        &base_with("x0 = [1.0, 1.0]", "x0 = 1.0"),
        "loss.x0 = 1.0: expected a list",
    );
    err(
        &base_with("diag = [1.0, 2.0]", "diag = [1.0, -2.0]"),
        "loss.diag[1] = -2.0: must be finite and >= 0",
    );
    err(
        &base_with("diag = [1.0, 2.0]", "diag = [1.0]"),
        "loss.diag has length 1 but loss.x0 has length 2",
    );
    err(
        &base_with("diag = [1.0, 2.0]\n", ""),
        "loss.diag: missing key",
    );

    let quartic = |rest: &str| {
        base_with(
            "kind = \"quadratic\"\ndiag = [1.0, 2.0]",
            &format!("kind = \"quartic\"\n{rest}"),
        )
    };
    assert_eq!(
        ok(&quartic("coeffs = [0.5, 2]")).loss.kind,
        LossKind::Quartic(QuarticSpec {
            coeffs: Some(vec![0.5, 2.0])
        })
    );
    err(
        &quartic("coeffs = [0.5]"),
        "loss.coeffs has length 1 but loss.x0 has length 2",
    );

    let mixed = |rest: &str| {
        base_with(
            "kind = \"quadratic\"\ndiag = [1.0, 2.0]",
            &format!("kind = \"mixed\"\n{rest}"),
        )
    };
    assert!(parse(&mixed("diag = [1, 1]\nquartic = [0.5, 0.5]")).is_ok());
    err(&mixed("diag = [1, 1]"), "loss.quartic: missing key");
    err(
        &mixed("diag = [1, 1]\nquartic = [0.5, 0.5, 1]"),
        "loss.quartic has length 3 but loss.x0 has length 2",
    );

    let full = |m: &str| {
        base_with(
            "kind = \"quadratic\"\ndiag = [1.0, 2.0]",
            &format!("kind = \"quadratic_full\"\nmatrix = {m}"),
        )
    };
    let c = ok(&full("[[2.0, 1.0], [1.0, 2.0]]"));
    let (l0, l1) = c
        .loss
        .smoothness()
        .expect("valid loss")
        .expect("smoothness");
    assert!((l0 - 3.0).abs() < 1e-12 && l1 == 0.0, "{l0} {l1}");
    err(
        &full("[[2.0, 1.0], [0.5, 2.0]]"),
        "loss.matrix[0][1] = 1.0: H must be symmetric, but matrix[1][0] = 0.5",
    );
    err(
        &full("[[1.0, 2.0], [2.0, 1.0]]"),
        "loss.matrix = [[1.0, 2.0], [2.0, 1.0]]: not positive semi-definite (smallest eigenvalue -1.00000e0)",
    );
    err(
        &full("[[1.0, 0.0]]"),
        "loss.matrix has length 1 but loss.x0 has length 2",
    );
    err(
        &full("[[1.0, 0.0], [0.0]]"),
        "loss.matrix[1] has length 1 but loss.x0 has length 2",
    );
    err(
        &full("[[1.0, 0.0], 3]"),
        "loss.matrix[1] = 3: expected a list",
    );
    err(
        &full("[[1.0, 0.0], [0.0, \"a\"]]"),
        "loss.matrix[1][1] = \"a\": expected a number",
    );

    let ls = |rest: &str| {
        base_with(
            "kind = \"quadratic\"\ndiag = [1.0, 2.0]",
            &format!("kind = \"least_squares\"\n{rest}"),
        )
    };
    let c = ok(&ls("samples = 50\nseed = 9"));
    assert_eq!(
        c.loss.kind,
        LossKind::LeastSquares(LeastSquaresSpec {
            samples: 50,
            seed: 9,
            noise: 0.0
        })
    );
    assert_eq!(c.loss.smoothness().expect("valid loss"), None);
    err(&ls("samples = 50"), "loss.seed: missing key");
    err(
        &ls("samples = 0\nseed = 1"),
        "loss.samples = 0: must be in [1, 10000000]",
    );
    err(
        &ls("samples = 5\nseed = 1\nnoise = -1"),
        "loss.noise = -1: must be finite and >= 0",
    );
}

#[test]
fn smoothness_constants() {
    let c = ok(BASE);
    assert_eq!(c.loss.smoothness().expect("valid loss"), Some((2.0, 0.0)));
    let q = ok(&base_with(
        "kind = \"quadratic\"\ndiag = [1.0, 2.0]",
        "kind = \"quartic\"\ncoeffs = [1.0, 0.5]",
    ));
    assert_eq!(q.loss.smoothness().expect("valid loss"), Some((4.0, 1.0)));
    let m = ok(&base_with(
        "kind = \"quadratic\"\ndiag = [1.0, 2.0]",
        "kind = \"mixed\"\ndiag = [1, 3]\nquartic = [1, 0]",
    ));
    // Coordinate 0 (a = c = 1): max_x>=0 (1 + 3x^2 - x - x^3) at x = 1 + sqrt(2/3); coordinate 1: 3.
    let (l0, l1) = m
        .loss
        .smoothness()
        .expect("valid loss")
        .expect("smoothness");
    assert!(
        (l0 - 3.088662107903634).abs() < 1e-12 && l1 == 1.0,
        "{l0} {l1}"
    );
    let m = ok(&base_with(
        "kind = \"quadratic\"\ndiag = [1.0, 2.0]",
        "kind = \"mixed\"\ndiag = [4, 0]\nquartic = [1, 0.5]",
    ));
    assert_eq!(m.loss.smoothness().expect("valid loss"), Some((4.0, 1.0))); // max(4 (a > 3c), 4 * 0.5)
    let m = ok(&base_with(
        "kind = \"quadratic\"\ndiag = [1.0, 2.0]",
        "kind = \"mixed\"\ndiag = [4, 2]\nquartic = [0, 0]",
    ));
    assert_eq!(m.loss.smoothness().expect("valid loss"), Some((4.0, 0.0)));
}

// ------------------------------------------------------------------------------------------
// Noise
// ------------------------------------------------------------------------------------------

fn student_t(optimizer: &str, nu: &str) -> String {
    edit(
        &base_with(
            "kind = \"gaussian\"\nsigma0 = 0.5",
            &format!("kind = \"student_t\"\nnu = {nu}\nscale = 1.0"),
        ),
        "kind = \"dsgd\"",
        &format!(
            "kind = \"{optimizer}\"{}",
            if optimizer == "dcsgd" {
                "\ncompressor = { kind = \"identity\" }"
            } else {
                ""
            }
        ),
    )
}

#[test]
fn noise_is_checked() {
    err(
        &base_with("sigma0 = 0.5", "sigma0 = -0.5"),
        "noise.sigma0 = -0.5: must be finite and >= 0",
    );
    err(
        &base_with("sigma0 = 0.5\n", ""),
        "noise.sigma0: missing key",
    );
    err(
        &base_with("sigma0 = 0.5", "sigma0 = 0.5\nsigma1 = nan"),
        "noise.sigma1 = nan: must be finite and >= 0",
    );
    err(
        &base_with("sigma0 = 0.5", "sigma0 = 0.5\nscale = [1.0]"),
        "noise.scale has length 1 but loss.x0 has length 2",
    );
    let c = ok(&base_with(
        "sigma0 = 0.5",
        "sigma0 = 0.5\nsigma1 = 0.25\nscale = [1.0, 0.0]",
    ));
    assert_eq!(
        c.noise,
        NoiseSpec::Shared(gaussian(0.5, 0.25, vec![1.0, 0.0]))
    );

    let t = |rest: &str| {
        base_with(
            "kind = \"gaussian\"\nsigma0 = 0.5",
            &format!("kind = \"student_t\"\n{rest}"),
        )
    };
    let c = ok(&edit(
        &t("nu = 1\nscale = 2"),
        "kind = \"dsgd\"",
        "kind = \"dsignsgd\"",
    ));
    assert_eq!(
        c.noise,
        NoiseSpec::Shared(student_t_spec(1.0, vec![2.0, 2.0], 1.0, 0.0))
    );
    let c = ok(&edit(
        &t("nu = 1\nscale = [1, 3]\nsigma0 = 0.0\nsigma1 = 0.5"),
        "kind = \"dsgd\"",
        "kind = \"dsignsgd\"",
    ));
    assert_eq!(
        c.noise,
        NoiseSpec::Shared(student_t_spec(1.0, vec![1.0, 3.0], 0.0, 0.5))
    );
    err(
        &t("nu = 0\nscale = 1"),
        "noise.nu = 0: degrees of freedom must be finite and > 0",
    );
    err(
        &t("nu = -1\nscale = 1"),
        "noise.nu = -1: degrees of freedom must be finite and > 0",
    );
    err(&t("scale = 1"), "noise.nu: missing key");
    err(
        &t("nu = 3\nscale = 0"),
        "noise.scale = 0: must be finite and > 0",
    );
    err(
        &t("nu = 3\nscale = [1, 0]"),
        "noise.scale[1] = 0: must be finite and > 0",
    );
    err(
        &t("nu = 3\nscale = \"big\""),
        "noise.scale = \"big\": expected number > 0 or list of d numbers > 0",
    );
    err(
        &t("nu = 3\nscale = [1, 2, 3]"),
        "noise.scale has length 3 but loss.x0 has length 2",
    );
}

#[test]
fn dsgd_and_dcsgd_reject_infinite_variance_student_t() {
    for opt in ["dsgd", "dcsgd"] {
        for nu in ["1", "1.5", "2"] {
            let e = err(&student_t(opt, nu), &format!("noise.nu = {nu}"));
            assert_eq!(e.key, "noise.nu");
            assert!(
                e.message.contains(&format!("optimizer.kind = \"{opt}\"")),
                "{e}"
            );
            assert!(e.message.contains("infinite variance"), "{e}");
            assert!(e.message.contains("the SDE does not exist"), "{e}");
        }
        assert!(parse(&student_t(opt, "2.5")).is_ok());
    }
    for nu in ["0.5", "1", "2", "30"] {
        assert!(
            parse(&student_t("dsignsgd", nu)).is_ok(),
            "dsignsgd accepts nu = {nu}"
        );
    }
}

fn per_agent_noise(agents: &[&str]) -> String {
    let tables: String = agents
        .iter()
        .map(|a| format!("[[noise.agents]]\nkind = \"gaussian\"\n{a}\n\n"))
        .collect();
    base_with(
        "[noise]\nkind = \"gaussian\"\nsigma0 = 0.5\n",
        &format!("[agents]\nn = {}\n\n{tables}", agents.len()),
    )
}

#[test]
fn per_agent_noise_lists() {
    let c = ok(&per_agent_noise(&[
        "sigma0 = 0.1",
        "sigma0 = 0.2\nsigma1 = 0.3",
    ]));
    let NoiseSpec::PerAgent { agents } = &c.noise else {
        panic!("expected per-agent noise")
    };
    assert_eq!(agents.len(), 2);
    assert_eq!(agents[1], gaussian(0.2, 0.3, vec![1.0, 1.0]));
    assert_eq!(c.noise.per_agent(2), *agents);
    let v = serde_json::to_value(&c).expect("json");
    assert_eq!(v["noise"]["agents"][0]["sigma0"], 0.1);

    err(
        &per_agent_noise(&["sigma0 = 0.1", "sigma0 = -0.2"]),
        "noise.agents[1].sigma0 = -0.2: must be finite and >= 0",
    );
    err(
        &per_agent_noise(&["sigma0 = 0.1", "sigma0 = 0.2\nsigmaa = 1"]),
        "noise.agents[1].sigmaa = 1: unknown key for noise.agents[1].kind = \"gaussian\"",
    );
    let wrong_n = edit(
        &per_agent_noise(&["sigma0 = 0.1", "sigma0 = 0.2"]),
        "n = 2",
        "n = 3",
    );
    err(&wrong_n, "noise.agents has 2 entries but agents.n = 3");
    let mixed = edit(
        &per_agent_noise(&["sigma0 = 0.1"]),
        "[[noise.agents]]",
        "[noise]\nkind = \"gaussian\"\n[[noise.agents]]",
    );
    err(&mixed, "noise.kind: not allowed together with noise.agents");
    let t = edit(
        &per_agent_noise(&["sigma0 = 0.1", "sigma0 = 0.2"]),
        "kind = \"gaussian\"\nsigma0 = 0.2",
        "kind = \"student_t\"\nnu = 1.5\nscale = 1",
    );
    err(
        &t,
        "noise.agents[1].nu = 1.5: optimizer.kind = \"dsgd\" needs noise with finite covariance",
    );
    err(
        &base_with("sigma0 = 0.5\n", "sigma0 = 0.5\nagents = []\n"),
        "noise.kind: not allowed together with noise.agents",
    );
}

// ------------------------------------------------------------------------------------------
// Optimizer and compressors
// ------------------------------------------------------------------------------------------

fn dcsgd(compressor: &str) -> String {
    base_with(
        "kind = \"dsgd\"",
        &format!("kind = \"dcsgd\"\ncompressor = {compressor}"),
    )
}

#[test]
fn compressors_are_checked() {
    assert_eq!(
        ok(&dcsgd("{ kind = \"bernoulli\", p = 0.5 }"))
            .optimizer
            .compressor()
            .clone(),
        CompressorSpec::Bernoulli(BernoulliSpec { p: 0.5 })
    );
    assert_eq!(
        ok(&dcsgd("{ kind = \"bernoulli\", p = 1 }"))
            .optimizer
            .compressor()
            .clone(),
        CompressorSpec::Bernoulli(BernoulliSpec { p: 1.0 })
    );
    err(
        &dcsgd("{ kind = \"bernoulli\", p = 0 }"),
        "optimizer.compressor.p = 0: keep probability must be in (0, 1]",
    );
    err(
        &dcsgd("{ kind = \"bernoulli\", p = 1.5 }"),
        "optimizer.compressor.p = 1.5: keep probability must be in (0, 1]",
    );
    err(
        &dcsgd("{ kind = \"bernoulli\", p = nan }"),
        "optimizer.compressor.p = nan: keep probability must be in (0, 1]",
    );
    err(
        &dcsgd("{ kind = \"bernoulli\" }"),
        "optimizer.compressor.p: missing key",
    );
    assert_eq!(
        ok(&dcsgd("{ kind = \"rand_k\", k = 2 }"))
            .optimizer
            .compressor()
            .clone(),
        CompressorSpec::RandK(RandKSpec { k: 2 })
    );
    err(
        &dcsgd("{ kind = \"rand_k\", k = 3 }"),
        "optimizer.compressor.k = 3: must be in 1..=2 (the dimension)",
    );
    err(
        &dcsgd("{ kind = \"rand_k\", k = 0 }"),
        "optimizer.compressor.k = 0: must be in 1..=2 (the dimension)",
    );
    assert_eq!(
        ok(&dcsgd("{ kind = \"qsgd\", levels = 4 }"))
            .optimizer
            .compressor()
            .clone(),
        CompressorSpec::Qsgd(QsgdSpec { levels: 4 })
    );
    err(
        &dcsgd("{ kind = \"qsgd\", levels = 0 }"),
        "optimizer.compressor.levels = 0: QSGD needs s >= 1 levels",
    );
    err(
        &dcsgd("\"bernoulli\""),
        "optimizer.compressor = \"bernoulli\": expected a table",
    );
    err(
        &base_with("kind = \"dsgd\"", "kind = \"dcsgd\""),
        "optimizer.compressor: missing key (table, required: every agent's compressor, e.g. compressor = { kind = \"bernoulli\", p = 0.5 })",
    );
    // Section form works the same as the inline table.
    let c = ok(&base_with(
        "kind = \"dsgd\"",
        "kind = \"dcsgd\"\n[optimizer.compressor]\nkind = \"bernoulli\"\np = 0.25",
    ));
    assert_eq!(
        *c.optimizer.compressor(),
        CompressorSpec::Bernoulli(BernoulliSpec { p: 0.25 })
    );
    // DSGD / DSignSGD: only the identity.
    assert!(parse(&base_with(
        "kind = \"dsgd\"",
        "kind = \"dsgd\"\ncompressor = { kind = \"identity\" }"
    ))
    .is_ok());
    err(
        &base_with(
            "kind = \"dsgd\"",
            "kind = \"dsgd\"\ncompressor = { kind = \"bernoulli\", p = 0.5 }",
        ),
        "optimizer.compressor.kind = \"bernoulli\": compression needs optimizer.kind = \"dcsgd\"",
    );
}

#[test]
fn compressor_omega() {
    // omega is the models compressor's; these check that each spec builds the right one.
    let omega = |c: CompressorSpec, d: usize| c.build(&d).map(|c| c.omega(d));
    assert_eq!(omega(CompressorSpec::default(), 5), Ok(0.0));
    assert_eq!(
        omega(CompressorSpec::Bernoulli(BernoulliSpec { p: 0.25 }), 5),
        Ok(3.0)
    );
    assert_eq!(
        omega(CompressorSpec::RandK(RandKSpec { k: 2 }), 10),
        Ok(4.0)
    );
    assert_eq!(
        omega(CompressorSpec::Qsgd(QsgdSpec { levels: 1 }), 4),
        Ok(2.0)
    ); // min(4, 2)
    assert_eq!(
        omega(CompressorSpec::Qsgd(QsgdSpec { levels: 4 }), 4),
        Ok(0.25)
    ); // min(1/4, 1/2)
    let c = CompressorSpec::RandK(RandKSpec { k: 3 })
        .build(&6)
        .expect("rand_k builds");
    assert_eq!((c.name(), c.omega(6)), ("rand_k", 1.0));
}

// ------------------------------------------------------------------------------------------
// Schedules
// ------------------------------------------------------------------------------------------

fn schedule(body: &str) -> String {
    base_with("[run]", &format!("[schedule]\n{body}\n\n[run]"))
}

const LEAST_SQUARES_NORMALIZED: &str = r#"
name = "ls"
[loss]
kind = "least_squares"
samples = 20
seed = 4
x0 = [0.0, 0.0, 0.0]
[noise]
kind = "gaussian"
sigma0 = 1.0
[optimizer]
kind = "dsgd"
[schedule]
kind = "normalized"
c = 1.0
epsilon = 0.5
[run]
horizon = 1.0
etas = [0.1]
paths = 10
"#;

#[test]
fn schedules_are_checked() {
    assert_eq!(
        ok(&schedule("kind = \"constant\"")).schedule,
        ScheduleSpec::default()
    );
    assert_eq!(
        ok(&schedule("kind = \"poly\"\npower = 0.5")).schedule,
        ScheduleSpec::Poly(PolySpec { power: 0.5 })
    );
    err(
        &schedule("kind = \"poly\"\npower = -0.5"),
        "schedule.power = -0.5: must be finite and >= 0",
    );
    err(&schedule("kind = \"poly\""), "schedule.power: missing key");
    assert_eq!(
        ok(&schedule(
            "kind = \"normalized_sgd\"\nc = 0.5\ndelta = 1e-3"
        ))
        .schedule,
        ScheduleSpec::NormalizedSgd(NormalizedSgdSpec {
            c: 0.5,
            delta: 1e-3
        })
    );
    err(
        &schedule("kind = \"normalized_sgd\"\nc = 0.5\ndelta = 0"),
        "schedule.delta = 0: must be finite and > 0",
    );
    err(
        &schedule("kind = \"normalized\"\nc = 1\nepsilon = 1"),
        "schedule.epsilon = 1: must be in (0, 1)",
    );
    err(
        &schedule("kind = \"normalized\"\nc = 0\nepsilon = 0.5"),
        "schedule.c = 0: must be finite and > 0",
    );
    err(
        &schedule("kind = \"normalized\"\nc = 1\nepsilon = 0.5\nl0 = -1"),
        "schedule.l0 = -1: must be finite and >= 0",
    );
    // L0 = 0 is allowed when L1 B > 0 keeps the denominator positive; here L1 = 0.
    err(
        &schedule("kind = \"normalized\"\nc = 1\nepsilon = 0.5\nl0 = 0"),
        "schedule.l0 = 0: the denominator (L0 + L1|grad|)(1 + A) + L1 B must stay > 0; at grad = 0 it is L0(1 + A) + L1 B = 0 (need l0 > 0, or l1 > 0 and b > 0)",
    );
    assert!(parse(&schedule(
        "kind = \"normalized\"\nc = 1\nepsilon = 0.5\nl0 = 0\nl1 = 1"
    ))
    .is_ok());
    err(
        &schedule("kind = \"normalized\"\nc = 1\nepsilon = 0.5\na = -1"),
        "schedule.a = -1: must be finite and >= 0",
    );
}

#[test]
fn normalized_schedule_defaults_are_computed() {
    // d = 2, N = 4, Bernoulli p = 0.5 (omega = 1), sigma0 = 0.5, sigma1 = 0.2:
    // A = (omega + d sigma1^2 (1 + omega)) / N = (1 + 2 * 0.04 * 2) / 4 = 0.29
    // B = d sigma0^2 (1 + omega) / N = 2 * 0.25 * 2 / 4 = 0.25;  (L0, L1) = (max diag, 0) = (2, 0).
    let text = edit(
        &edit(
            &base_with("sigma0 = 0.5", "sigma0 = 0.5\nsigma1 = 0.2"),
            "kind = \"dsgd\"",
            "kind = \"dcsgd\"\ncompressor = { kind = \"bernoulli\", p = 0.5 }",
        ),
        "[noise]",
        "[agents]\nn = 4\n\n[noise]",
    );
    let c = ok(&edit(
        &text,
        "[run]",
        "[schedule]\nkind = \"normalized\"\nc = 1\nepsilon = 0.5\n\n[run]",
    ));
    let ScheduleSpec::Normalized(n) = c.schedule else {
        panic!("normalized")
    };
    let (a, b) = (n.a.expect("filled in"), n.b.expect("filled in"));
    assert_eq!(
        (n.c, n.epsilon, n.l0, n.l1),
        (1.0, 0.5, Some(2.0), Some(0.0))
    );
    assert!((a - 0.29).abs() < 1e-12, "a = {a}");
    assert!((b - 0.25).abs() < 1e-12, "b = {b}");
    // Explicit values win.
    let c = ok(&edit(&text, "[run]", "[schedule]\nkind = \"normalized\"\nc = 1\nepsilon = 0.5\nl0 = 7\nl1 = 2\na = 0\nb = 0\n\n[run]"));
    assert_eq!(
        c.schedule,
        ScheduleSpec::Normalized(NormalizedSpec {
            c: 1.0,
            epsilon: 0.5,
            l0: Some(7.0),
            l1: Some(2.0),
            a: Some(0.0),
            b: Some(0.0)
        })
    );

    // least_squares: L0, L1 depend on the generated data and stay unset.
    let c = ok(LEAST_SQUARES_NORMALIZED);
    let ScheduleSpec::Normalized(n) = c.schedule else {
        panic!("normalized")
    };
    let (l0, l1, a, b) = (n.l0, n.l1, n.a.expect("filled in"), n.b.expect("filled in"));
    assert_eq!((l0, l1), (None, None));
    assert!(
        (a - 0.0).abs() < 1e-15 && (b - 3.0).abs() < 1e-12,
        "a = {a}, b = {b}"
    );
    let v = serde_json::to_value(&c).expect("json");
    assert!(v["schedule"].get("l0").is_none());

    // Infinite-variance noise: a and b must be given explicitly.
    let sign = edit(
        &student_t("dsignsgd", "1"),
        "[run]",
        "[schedule]\nkind = \"normalized\"\nc = 1\nepsilon = 0.5\n\n[run]",
    );
    err(&sign, "schedule.a: missing key (its default cannot be computed: noise.nu = 1.0 has infinite variance");
    let sign = edit(
        &student_t("dsignsgd", "1"),
        "[run]",
        "[schedule]\nkind = \"normalized\"\nc = 1\nepsilon = 0.5\na = 1\nb = 1\n\n[run]",
    );
    assert!(parse(&sign).is_ok());

    // Zero curvature and L1 = 0: the default L0 = 0 would make eta_k infinite.
    let flat = edit(
        &base_with("diag = [1.0, 2.0]", "diag = [0.0, 0.0]"),
        "[run]",
        "[schedule]\nkind = \"normalized\"\nc = 1\nepsilon = 0.5\n\n[run]",
    );
    err(
        &flat,
        "schedule.l0 = 0: the denominator (L0 + L1|grad|)(1 + A) + L1 B must stay > 0",
    );
}

// ------------------------------------------------------------------------------------------
// SDE and run lists
// ------------------------------------------------------------------------------------------

fn sde(body: &str) -> String {
    base_with("[run]", &format!("[sde]\n{body}\n\n[run]"))
}

#[test]
fn sde_section_is_checked() {
    let c = ok(&sde("models = [\"stability\", \"first_order\"]\nscheme = \"milstein\"\nsubsteps = 16\nincrements = \"three_point\""));
    assert_eq!(
        c.sde,
        SdeSpec {
            models: vec![SdeModel::Stability, SdeModel::FirstOrder],
            scheme: SchemeKind::Milstein,
            substeps: Some(16),
            max_substeps: 256,
            increments: IncrementKind::ThreePoint,
            svag_l: Vec::new(),
        }
    );
    err(&sde("models = []"), "sde.models = []: must not be empty");
    err(
        &sde("models = [\"first_order\", \"third_order\"]"),
        "sde.models[1] = \"third_order\": unknown model (expected one of first_order, second_order, stability, svag)",
    );
    err(
        &sde("models = [\"first_order\", \"first_order\"]"),
        "sde.models[1] = \"first_order\": listed twice",
    );
    err(
        &sde("models = \"first_order\""),
        "sde.models = \"first_order\": expected a list",
    );
    err(
        &sde("scheme = \"rk4\""),
        "sde.scheme = \"rk4\": unknown scheme (expected one of euler_maruyama, milstein, weak2, adaptive_em)",
    );
    err(&sde("substeps = 0"), "sde.substeps = 0: must be at least 1");
    err(
        &sde("increments = \"uniform\""),
        "sde.increments = \"uniform\": unknown increment kind",
    );
    err(
        &sde("scheme = \"weak2\"\nincrements = \"two_point\""),
        "sde.increments = \"two_point\": sde.scheme = \"weak2\" needs",
    );
    assert!(parse(&sde("scheme = \"weak2\"\nincrements = \"three_point\"")).is_ok());
    assert!(parse(&sde(
        "scheme = \"euler_maruyama\"\nincrements = \"two_point\""
    ))
    .is_ok());
}

#[test]
fn observables_and_quantiles_are_checked() {
    let run = |extra: &str| base_with("paths = 1000", &format!("paths = 1000\n{extra}"));
    assert_eq!(
        ok(&run("observables = [\"x_sq\", \"x\"]")).run.observables,
        vec![Observable::XSq, Observable::X]
    );
    err(
        &run("observables = []"),
        "run.observables = []: must not be empty",
    );
    let e = err(
        &run("observables = [\"loss2\"]"),
        "run.observables[0] = \"loss2\": unknown observable",
    );
    assert!(e.message.contains("did you mean \"loss\"?"), "{e}");
    err(
        &run("observables = [\"x\", \"x\"]"),
        "run.observables[1] = \"x\": listed twice",
    );
    assert_eq!(ok(&run("quantiles = []")).run.quantiles, Vec::<f64>::new());
    assert_eq!(
        ok(&run("quantiles = [0.9, 0.5]")).run.quantiles,
        vec![0.9, 0.5]
    );
    err(
        &run("quantiles = [0.5, 1.0]"),
        "run.quantiles[1] = 1.0: must be in (0, 1)",
    );
    err(
        &run("quantiles = [0.0]"),
        "run.quantiles[0] = 0.0: must be in (0, 1)",
    );
    err(
        &run("quantiles = [0.5, 0.5]"),
        "run.quantiles[1] = 0.5: listed twice",
    );
    err(
        &run("quantiles = 0.5"),
        "run.quantiles = 0.5: expected a list",
    );
}

#[test]
fn weak_error_needs_two_learning_rates() {
    let c = ok(&base_with("etas = [0.1, 0.05]", "etas = [0.1]"));
    let e = c.check_for_weak_error().expect_err("one eta");
    assert_eq!(
        e.message,
        "run.etas = [0.1]: weak-error needs at least 2 learning rates to fit an order"
    );
    assert!(c.check_for_run().is_ok());
}

// ------------------------------------------------------------------------------------------
// Syntax, files, exit codes, docs
// ------------------------------------------------------------------------------------------

#[test]
fn byte_order_mark_and_crlf_are_accepted() {
    let text = format!("\u{feff}{}", BASE.replace('\n', "\r\n"));
    assert_eq!(ok(&text), ok(BASE));
}

#[test]
fn toml_syntax_errors_name_the_line() {
    let e = err("name = \"t\"\n[loss\nkind = 1\n", "invalid TOML");
    assert!(e.message.contains("line 2"), "{e}");
    err("name = \"t\"\nname = \"u\"\n", "invalid TOML");
    err("", "name: missing key");
}

#[test]
fn files_errors_are_bad_input_and_name_the_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("nope.toml");
    let e = ExperimentConfig::from_path(&missing).expect_err("missing");
    assert_eq!(e.exit_code(), 2);
    assert!(e.to_string().contains("cannot read config file"), "{e}");
    assert!(e.to_string().contains("nope.toml"), "{e}");
    assert!(e.to_string().contains("os error"), "{e}");

    let e = ExperimentConfig::from_path(dir.path()).expect_err("a directory");
    assert_eq!(e.exit_code(), 2);

    let binary = dir.path().join("bin.toml");
    std::fs::write(&binary, b"name = \"t\xff\xfe\"\n").expect("write");
    let e = ExperimentConfig::from_path(&binary).expect_err("not utf-8");
    assert_eq!(e.exit_code(), 2);
    assert!(e.to_string().contains("bin.toml: not UTF-8"), "{e}");

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, base_with("paths = 1000", "paths = 1")).expect("write");
    let e = ExperimentConfig::from_path(&bad).expect_err("bad");
    assert_eq!(
        e,
        CliError::BadInput(format!(
            "{}: run.paths = 1: must be at least 2",
            bad.display()
        ))
    );
}

#[test]
fn cli_error_exit_codes() {
    assert_eq!(CliError::BadInput("x".into()).exit_code(), 2);
    assert_eq!(CliError::Failure("x".into()).exit_code(), 1);
    assert_eq!(CliError::Failure("boom".into()).to_string(), "boom");
}

/// Every key path the configuration accepts.
const KNOWN_KEYS: &[&str] = &[
    "name",
    "seed",
    "loss.kind",
    "loss.x0",
    "loss.diag",
    "loss.matrix",
    "loss.coeffs",
    "loss.quartic",
    "loss.samples",
    "loss.seed",
    "loss.noise",
    "agents.n",
    "noise.kind",
    "noise.sigma0",
    "noise.sigma1",
    "noise.scale",
    "noise.nu",
    "noise.agents",
    "optimizer.kind",
    "optimizer.compressor.kind",
    "optimizer.compressor.p",
    "optimizer.compressor.k",
    "optimizer.compressor.levels",
    "schedule.kind",
    "schedule.power",
    "schedule.t0",
    "schedule.c",
    "schedule.epsilon",
    "schedule.l0",
    "schedule.l1",
    "schedule.a",
    "schedule.b",
    "schedule.delta",
    "sde.models",
    "sde.scheme",
    "sde.substeps",
    "sde.max_substeps",
    "sde.increments",
    "run.horizon",
    "run.etas",
    "run.paths",
    "run.observables",
    "run.diverge_above",
    "run.common_random_numbers",
    "run.exact_reference",
    "run.quantiles",
    "run.x0_scales",
    "run.target_rel_ci",
    "run.max_paths",
    "sde.svag_l",
    "noise.batch",
    "noise.replacement",
];

#[test]
fn config_reference_documents_every_key() {
    // The config reference lives in the workspace README.
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
            .expect("README.md");
    for key in KNOWN_KEYS {
        assert!(
            doc.contains(&format!("`{key}`")),
            "README.md does not document `{key}`"
        );
    }
    for k in common::all_kind_names() {
        assert!(
            doc.contains(&format!("`{k}`")),
            "README.md does not mention `{k}`"
        );
    }
}

/// The tables of kinds and keys in README.md and docs/CLI.md are generated from the definitions
/// (`config::key_tables_markdown`). Regenerate them with
/// `SDELAB_WRITE_KEY_TABLES=1 cargo test --release -p sdelab --test config key_tables`.
#[test]
fn generated_key_tables_are_current() {
    let tables = key_tables_markdown();
    let write = std::env::var_os("SDELAB_WRITE_KEY_TABLES").is_some();
    for doc in ["README.md", "docs/CLI.md"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(doc);
        let text = std::fs::read_to_string(&path).expect("readable doc");
        let start = text
            .find(KEY_TABLES_BEGIN)
            .unwrap_or_else(|| panic!("{doc}: no {KEY_TABLES_BEGIN}"));
        let end = text[start..]
            .find(KEY_TABLES_END)
            .map(|e| start + e + KEY_TABLES_END.len() + 1)
            .unwrap_or_else(|| panic!("{doc}: no {KEY_TABLES_END}"));
        if write {
            let new = format!("{}{tables}{}", &text[..start], &text[end.min(text.len())..]);
            std::fs::write(&path, new).expect("writable doc");
        } else {
            assert!(
                text[start..end.min(text.len())] == tables,
                "{doc}: the generated key tables are out of date; regenerate with \
                 SDELAB_WRITE_KEY_TABLES=1 cargo test --release -p sdelab --test config key_tables"
            );
        }
    }
}

#[test]
fn every_kind_of_the_models_registries_is_accepted_by_name() {
    // The config knows no kind by name: each family's list comes from its models registry.
    for kinds in [
        LossKind::KINDS,
        NoiseModel::KINDS,
        OptimizerSpec::KINDS,
        CompressorSpec::KINDS,
        ScheduleSpec::KINDS,
    ] {
        assert!(!kinds.is_empty());
    }
    let c = ok(&dcsgd("{ kind = \"rand_k_replace\", k = 5 }"));
    assert_eq!(c.optimizer.compressor().kind_name(), "rand_k_replace");
    err(
        &dcsgd("{ kind = \"rand_k_replace\", k = 0 }"),
        "optimizer.compressor.k = 0: must be >= 1 (draws)",
    );
}

#[test]
fn student_t_sigma0_defaults_to_one_and_sets_the_normalization_constants() {
    // Student-t nu = 4 (variance nu/(nu-2) = 2), scale 0.5, sigma0 default 1, N = 1, d = 2, DSGD:
    // A = d * 2 * 0.25 * sigma1^2 = 0, B = d * 2 * 0.25 * sigma0^2 = 1.
    let text = edit(
        &base_with(
            "kind = \"gaussian\"\nsigma0 = 0.5",
            "kind = \"student_t\"\nnu = 4\nscale = 0.5",
        ),
        "[run]",
        "[schedule]\nkind = \"normalized\"\nc = 1\nepsilon = 0.5\n\n[run]",
    );
    let c = ok(&text);
    let ScheduleSpec::Normalized(n) = c.schedule else {
        panic!("normalized")
    };
    let (a, b) = (n.a.expect("filled in"), n.b.expect("filled in"));
    assert!(
        a.abs() < 1e-15 && (b - 1.0).abs() < 1e-12,
        "a = {a}, b = {b}"
    );
    let NoiseSpec::Shared(m) = &c.noise else {
        panic!("shared")
    };
    // Var Z_j = nu/(nu-2) scale^2 sigma0^2 = 0.5: sigma0 = sqrt(0.5) effectively.
    let (s0, s1) = variance_bound(m, 2)
        .expect("valid noise")
        .expect("finite variance");
    assert!((s0 * s0 - 0.5).abs() < 1e-15 && s1 == 0.0, "{s0} {s1}");
    assert!(has_finite_covariance(m));
}

#[test]
fn exact_reference_needs_a_closed_form() {
    let with_exact =
        |text: &str| edit(text, "paths = 1000", "paths = 1000\nexact_reference = true");
    assert!(ok(&with_exact(BASE)).run.exact_reference);
    let quartic = base_with(
        "kind = \"quadratic\"\ndiag = [1.0, 2.0]",
        "kind = \"quartic\"",
    );
    let e = err(
        &with_exact(&quartic),
        "run.exact_reference = true: no closed form for this experiment",
    );
    assert!(e.message.contains("but loss.kind = \"quartic\""), "{e}");
    err(
        &with_exact(&dcsgd("{ kind = \"identity\" }")),
        "but optimizer.kind = \"dcsgd\"",
    );
    err(
        &with_exact(&base_with("sigma0 = 0.5", "sigma0 = 0.5\nsigma1 = 0.1")),
        "but noise.sigma1 = 0.1",
    );
    err(
        &with_exact(&schedule("kind = \"poly\"\npower = 0.5")),
        "but schedule.kind = \"poly\"",
    );
    err(
        &with_exact(&student_t("dsgd", "3")),
        "but noise.kind = \"student_t\"",
    );
}

/// The sections' keys are their specs' serde fields, documented once: `sdelab list` and the
/// generated tables show every one, and minibatch noise among the noise kinds.
#[test]
fn sections_are_listed_from_their_specs() {
    let list = catalog();
    let has = |section: &str, name: &str| list.iter().any(|(s, n, _)| *s == section && *n == name);
    for (section, key) in [
        ("top-level keys", "name"),
        ("top-level keys", "seed"),
        ("top-level keys", "run"),
        ("[agents] keys", "n"),
        ("[sde] keys", "svag_l"),
        ("[sde] keys", "max_substeps"),
        ("[run] keys", "target_rel_ci"),
        ("[run] keys", "x0_scales"),
        ("noise", "minibatch"),
    ] {
        assert!(has(section, key), "sdelab list lacks {section} {key}");
    }
    let sections = sections();
    let count: usize = sections.iter().map(|(_, keys)| keys.len()).sum();
    // 9 top-level keys, agents.n, 6 of [sde], 11 of [run].
    assert_eq!(count, 9 + 1 + 6 + 11);
    for (_, keys) in &sections {
        for d in *keys {
            assert!(
                d.doc.contains(':') && !d.doc.is_empty(),
                "{}: {}",
                d.key,
                d.doc
            );
        }
    }
    let tables = key_tables_markdown();
    for key in [
        "`name`",
        "`agents.n`",
        "`sde.svag_l`",
        "`run.target_rel_ci`",
        "`noise.batch`",
    ] {
        assert!(tables.contains(key), "generated tables lack {key}");
    }
}

/// The errors of the section specs, exactly: unknown keys listed from the serde fields, type
/// errors from serde with their paths, range errors from the spec's `build`.
#[test]
fn section_spec_errors_name_key_and_value() {
    let run = |line: &str| base_with("paths = 1000", &format!("paths = 1000\n{line}"));
    let sde = |line: &str| base_with("[run]", &format!("[sde]\n{line}\n\n[run]"));
    let exact = |text: &str, message: &str| {
        let e = parse(text).expect_err("must be refused");
        assert_eq!(e.message, message);
    };
    exact(
        &base_with("paths = 1000", "pathz = 1000"),
        "run.pathz = 1000: unknown key (expected one of horizon, etas, paths, observables, \
         diverge_above, common_random_numbers, exact_reference, quantiles, x0_scales, \
         target_rel_ci, max_paths); did you mean \"paths\"?",
    );
    exact(
        &sde("svag = 4"),
        "sde.svag = 4: unknown key (expected one of models, scheme, substeps, max_substeps, \
         increments, svag_l); did you mean \"svag_l\"?",
    );
    exact(&run("target_rel_ci = 1.5"), "run.target_rel_ci = 1.5: must be in (0, 1): the largest ci95 / weak_error the paths are grown to");
    exact(
        &run("max_paths = 999"),
        "run.max_paths = 999: must be at least run.paths = 1000 (it caps the paths of a rerun point)",
    );
    exact(
        &run("max_paths = 2000\ntarget_rel_ci = 0.2"),
        "run.max_paths = 2000: cannot be combined with run.target_rel_ci, whose doubling batches \
         already grow the paths up to run.paths: remove one of them",
    );
    exact(
        &run("target_rel_ci = \"x\""),
        "run.target_rel_ci = \"x\": expected a number",
    );
    exact(
        &run("x0_scales = [1.0, -2]"),
        "run.x0_scales[1] = -2: must be positive",
    );
    exact(
        &run("x0_scales = [2, 2.0]"),
        "run.x0_scales[1] = 2.0: listed twice",
    );
    exact(
        &run("x0_scales = []"),
        "run.x0_scales = []: must not be empty",
    );
    exact(
        &run("quantiles = [0.5, nan]"),
        "run.quantiles[1] = nan: must be a finite number",
    );
    exact(
        &run("observables = [\"x\", 3]"),
        "run.observables[1] = 3: expected a string",
    );
    exact(
        &run("observables = [\"xsq\"]"),
        &format!(
            "run.observables[0] = \"xsq\": unknown observable (expected one of {}); did you mean \"x_sq\"?",
            names::<Observable>().join(", ")
        ),
    );
    exact(
        &sde("svag_l = [4, 4]"),
        "sde.svag_l = [4, 4]: 4 listed twice",
    );
    exact(
        &sde("svag_l = [4, 0]"),
        "sde.svag_l[1] = 0: must be at least 1",
    );
    exact(
        &sde("svag_l = [4, 1.5]"),
        "sde.svag_l[1] = 1.5: expected an integer",
    );
    exact(
        &sde("svag_l = \"x\""),
        "sde.svag_l = \"x\": expected an integer",
    );
    exact(&sde("svag_l = []"), "sde.svag_l = []: must not be empty");
    exact(
        &sde("max_substeps = 1"),
        "sde.max_substeps = 1: must be at least 2",
    );
    exact(
        &sde("substeps = 2.5"),
        "sde.substeps = 2.5: expected an integer",
    );
    exact(
        &sde("models = [\"svag\", \"svag\"]"),
        "sde.models[1] = \"svag\": listed twice",
    );
    exact(
        &base_with("[run]", "[agents]\nn = 2e6\n\n[run]"),
        "agents.n = 2000000.0: must be at most 1000000",
    );
    exact(
        &base_with("name = \"t\"", "name = \"t\"\nseed = \"1\""),
        "seed = \"1\": expected an integer",
    );
    exact(
        &base_with("name = \"t\"", "name = \"t\"\nagents = 3"),
        "agents = 3: expected a table",
    );
    // A required key that is missing names its doc.
    let e = parse(&base_with("paths = 1000", "")).expect_err("paths is required");
    assert!(
        e.message
            .starts_with("run.paths: missing key (integer >= 2, required"),
        "{e}"
    );
    // Integral floats are integers everywhere, as before.
    assert_eq!(ok(&sde("svag_l = 4e0")).sde.svag_l, vec![4]);
    assert_eq!(
        ok(&base_with("name = \"t\"", "name = \"t\"\nseed = 7e0")).seed,
        7
    );
    assert_eq!(
        ok(&run("x0_scales = [1, 2.5]")).run.x0_scales,
        vec![1.0, 2.5]
    );
    assert_eq!(ok(&run("target_rel_ci = 0.1")).run.target_rel_ci, Some(0.1));
    // run.max_paths: max(4 x run.paths, 2000) by default, run.paths with target_rel_ci (one
    // stage).
    assert_eq!(ok(&run("")).run.max_paths, 4000);
    assert_eq!(
        ok(&base_with("paths = 1000", "paths = 300")).run.max_paths,
        2000
    );
    assert_eq!(ok(&run("target_rel_ci = 0.1")).run.max_paths, 1000);
    assert_eq!(ok(&run("max_paths = 2500")).run.max_paths, 2500);
    assert_eq!(ok(&run("max_paths = 1000")).run.max_paths, 1000);
}
