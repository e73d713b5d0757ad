//! Property tests: thousands of broken configs (valid TOML files mutated structurally, and raw text
//! mutated byte by byte). Parsing must never panic; it returns either a valid configuration that
//! satisfies every documented invariant, or a bad-input error (exit code 2) naming a key.
// `u64::is_multiple_of` needs Rust 1.87; the workspace supports 1.85.
#![allow(clippy::manual_is_multiple_of)]

use std::path::Path;
use std::sync::OnceLock;

use models::noise::Scale;
use proptest::prelude::*;
use sdelab::config::*;
use sdelab::error::CliError;
use toml::{Table, Value};

mod common;

const EXTRA_BASES: &[&str] = &[
    r#"
name = "per-agent"
seed = 2
[loss]
kind = "quadratic_full"
matrix = [[2.0, 0.5], [0.5, 1.0]]
x0 = [1.0, -1.0]
[agents]
n = 2
[[noise.agents]]
kind = "gaussian"
sigma0 = 0.3
sigma1 = 0.1
scale = [1.0, 2.0]
[[noise.agents]]
kind = "student_t"
nu = 3.0
scale = [0.5, 0.5]
[optimizer]
kind = "dcsgd"
compressor = { kind = "rand_k", k = 1 }
[schedule]
kind = "normalized"
c = 1.0
epsilon = 0.5
[sde]
models = ["first_order", "stability"]
scheme = "weak2"
substeps = 2
increments = "three_point"
[run]
horizon = 2
etas = [0.5, 0.25, 0.125]
paths = 100
observables = ["loss", "grad_norm"]
quantiles = [0.25, 0.75]
"#,
    r#"
name = "ls"
[loss]
kind = "least_squares"
samples = 30
seed = 5
noise = 0.1
x0 = [0.0, 0.0, 0.0]
[noise]
kind = "gaussian"
sigma0 = 1.0
[optimizer]
kind = "dcsgd"
[optimizer.compressor]
kind = "qsgd"
levels = 4
[schedule]
kind = "normalized_sgd"
c = 0.5
delta = 0.01
[run]
horizon = 1.0
etas = [0.1]
paths = 10
"#,
];

/// Valid configurations to mutate: the examples plus a few that cover the remaining kinds.
fn bases() -> &'static Vec<(String, Table)> {
    static BASES: OnceLock<Vec<(String, Table)>> = OnceLock::new();
    BASES.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/configs");
        let mut texts: Vec<String> = EXTRA_BASES.iter().map(|s| s.to_string()).collect();
        let mut paths: Vec<_> = std::fs::read_dir(dir)
            .expect("examples/configs")
            .map(|e| e.expect("entry").path())
            .collect();
        paths.sort();
        for p in paths {
            if p.extension().and_then(|e| e.to_str()) == Some("toml") {
                texts.push(std::fs::read_to_string(&p).expect("read example"));
            }
        }
        texts
            .into_iter()
            .map(|t| {
                assert!(
                    ExperimentConfig::from_toml_str(&t).is_ok(),
                    "base config must be valid:\n{t}"
                );
                let table: Table = t.parse().expect("base parses as TOML");
                (t, table)
            })
            .collect()
    })
}

#[derive(Debug, Clone)]
enum Seg {
    Key(String),
    Index(usize),
}

/// Every value path in the document (tables, arrays and their elements).
fn all_paths(v: &Value, prefix: &mut Vec<Seg>, out: &mut Vec<Vec<Seg>>) {
    match v {
        Value::Table(t) => {
            for (k, x) in t {
                prefix.push(Seg::Key(k.clone()));
                out.push(prefix.clone());
                all_paths(x, prefix, out);
                prefix.pop();
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                prefix.push(Seg::Index(i));
                out.push(prefix.clone());
                all_paths(x, prefix, out);
                prefix.pop();
            }
        }
        _ => {}
    }
}

fn get_mut<'a>(v: &'a mut Value, path: &[Seg]) -> Option<&'a mut Value> {
    let mut cur = v;
    for seg in path {
        cur = match (seg, cur) {
            (Seg::Key(k), Value::Table(t)) => t.get_mut(k)?,
            (Seg::Index(i), Value::Array(a)) => a.get_mut(*i)?,
            _ => return None,
        };
    }
    Some(cur)
}

fn remove(v: &mut Value, path: &[Seg]) {
    let Some((last, parent)) = path.split_last() else {
        return;
    };
    match (last, get_mut(v, parent)) {
        (Seg::Key(k), Some(Value::Table(t))) => {
            t.remove(k);
        }
        (Seg::Index(i), Some(Value::Array(a))) if *i < a.len() => {
            a.remove(*i);
        }
        _ => {}
    }
}

fn nasty_value(r: u64) -> Value {
    let strings = [
        "many",
        "",
        "cauchy",
        "gaussian",
        "first_order",
        "NaN",
        "1.0",
        "dcsgd",
        "x_sq",
        "\u{0}\n\"",
    ];
    match r % 24 {
        0 => Value::Float(f64::NAN),
        1 => Value::Float(f64::INFINITY),
        2 => Value::Float(f64::NEG_INFINITY),
        3 => Value::Float(0.0),
        4 => Value::Float(-0.1),
        5 => Value::Float(1e308),
        6 => Value::Float(5e-324),
        7 => Value::Float(-1e300),
        8 => Value::Integer(0),
        9 => Value::Integer(-1),
        10 => Value::Integer(i64::MAX),
        11 => Value::Integer(i64::MIN),
        12 => Value::Integer(1),
        13 => Value::Integer(2),
        14 => Value::Boolean(r % 2 == 0),
        15 => Value::Array(vec![]),
        16 => Value::Array(vec![Value::String("a".into()), Value::Integer(1)]),
        17 => Value::Array(vec![Value::Float(1.0); (r % 7) as usize]),
        18 => Value::Table(Table::new()),
        19 => {
            let mut t = Table::new();
            t.insert(
                "kind".into(),
                Value::String(strings[(r / 24 % 10) as usize].into()),
            );
            Value::Table(t)
        }
        20 => Value::Array(vec![Value::Table(Table::new())]),
        21 => Value::Float(0.5),
        22 => Value::Integer(100_000_000_000),
        _ => Value::String(strings[(r / 24 % 10) as usize].into()),
    }
}

const KEY_NAMES: &[&str] = &[
    "kind",
    "x0",
    "diag",
    "typo",
    "sigma0",
    "sigma1",
    "scale",
    "nu",
    "p",
    "k",
    "levels",
    "agents",
    "paths",
    "etas",
    "horizon",
    "models",
    "c",
    "epsilon",
    "l0",
    "power",
    "n",
    "seed",
    "name",
    "weird key",
    "",
];

/// Apply one structural mutation chosen by `(op, a, b)`.
fn mutate(doc: &mut Value, op: u8, a: u64, b: u64) {
    let mut paths = Vec::new();
    all_paths(doc, &mut Vec::new(), &mut paths);
    if paths.is_empty() {
        return;
    }
    let path = paths[(a % paths.len() as u64) as usize].clone();
    match op % 7 {
        0 => remove(doc, &path),
        1 => {
            if let Some(v) = get_mut(doc, &path) {
                *v = nasty_value(b);
            }
        }
        2 => {
            // Insert a key (often unknown, sometimes a valid one in the wrong place) into a table.
            let tables: Vec<&Vec<Seg>> = paths
                .iter()
                .filter(|p| matches!(get_mut(&mut doc.clone(), p), Some(Value::Table(_))))
                .collect();
            let target: Vec<Seg> = if tables.is_empty() || b % 5 == 0 {
                vec![]
            } else {
                tables[(b % tables.len() as u64) as usize].clone()
            };
            if let Some(Value::Table(t)) = get_mut(doc, &target) {
                let key = KEY_NAMES[(b / 7 % KEY_NAMES.len() as u64) as usize];
                t.insert(key.to_string(), nasty_value(b / 131));
            }
        }
        3 => {
            if let Some(v) = get_mut(doc, &path) {
                let factors = [
                    -1.0,
                    0.0,
                    1e308,
                    1e-308,
                    1e10,
                    0.5,
                    2.0,
                    f64::NAN,
                    3.0,
                    -0.5,
                ];
                match v {
                    Value::Float(x) => *x *= factors[(b % factors.len() as u64) as usize],
                    Value::Integer(i) => {
                        let ints = [0, -1, 1, 2, 3, i64::MAX, i64::MIN, 1 << 40];
                        *i = ints[(b % ints.len() as u64) as usize];
                    }
                    _ => *v = nasty_value(b),
                }
            }
        }
        4 => {
            // Swap a kind (or any string) for another known name, or garbage.
            let names = common::all_kind_names();
            if let Some(v @ Value::String(_)) = get_mut(doc, &path) {
                *v = if b % 6 == 0 {
                    Value::String(format!("{}x", names[(b / 6 % names.len() as u64) as usize]))
                } else {
                    Value::String(names[(b % names.len() as u64) as usize].to_string())
                };
            }
        }
        5 => {
            if let Some(Value::Array(arr)) = get_mut(doc, &path) {
                match b % 4 {
                    0 => arr.clear(),
                    1 => {
                        arr.pop();
                    }
                    2 => {
                        if let Some(first) = arr.first().cloned() {
                            arr.push(first);
                        }
                    }
                    _ => arr.push(nasty_value(b / 4)),
                }
            } else if let Some(v) = get_mut(doc, &path) {
                *v = Value::Array(vec![v.clone()]);
            }
        }
        _ => {
            // Move a value to another key of the same table (a typo).
            if let (Some((Seg::Key(k), parent)), true) = (path.split_last(), b % 2 == 0) {
                if let Some(Value::Table(t)) = get_mut(doc, parent) {
                    if let Some(v) = t.remove(k) {
                        let typo = format!("{k}{}", ["s", "_", "x"][(b / 2 % 3) as usize]);
                        t.insert(typo, v);
                    }
                }
            } else if let Some(v) = get_mut(doc, &path) {
                *v = nasty_value(b);
            }
        }
    }
}

fn within(x: f64, lo: f64, hi: f64) -> bool {
    x.is_finite() && x >= lo && x <= hi
}

/// What every accepted configuration guarantees.
fn check_invariants(c: &ExperimentConfig) {
    let d = c.dim();
    assert!(d >= 1);
    assert!(c.loss.x0.iter().all(|x| x.is_finite()));
    match &c.loss.kind {
        LossKind::DiagonalQuadratic(q) => {
            assert!(q.diag.len() == d && q.diag.iter().all(|x| within(*x, 0.0, f64::MAX)))
        }
        LossKind::Quadratic(q) => {
            assert!(q.matrix.len() == d && q.matrix.iter().all(|r| r.len() == d))
        }
        LossKind::Quartic(q) => {
            let coeffs = q.coeffs.as_ref().expect("filled in");
            assert!(coeffs.len() == d && coeffs.iter().all(|x| *x >= 0.0))
        }
        LossKind::MixedQuadraticQuartic(m) => {
            assert!(m.diag.len() == d && m.quartic.len() == d)
        }
        LossKind::LeastSquares(ls) => {
            assert!(ls.samples >= 1 && within(ls.noise, 0.0, f64::MAX))
        }
        LossKind::Logistic(l) => assert!(within(l.l2, 0.0, f64::MAX)),
        LossKind::Mlp(m) => assert!(!m.hidden.is_empty() && within(m.l2, 0.0, f64::MAX)),
    }
    assert!(c.agents.n >= 1);
    let models = c.noise.per_agent(c.agents.n);
    if let NoiseSpec::Minibatch(b) = &c.noise {
        // No injected noise: the batches are the noise, and only data-set losses take them.
        assert!(models.is_empty() && b.batch >= 1);
        assert!(matches!(
            c.loss.kind,
            LossKind::Logistic(_) | LossKind::Mlp(_)
        ));
    } else {
        assert_eq!(models.len(), c.agents.n);
    }
    for m in &models {
        match m {
            NoiseModel::Gaussian(g) => {
                let scale = g.scale.as_ref().expect("filled in");
                assert!(within(g.sigma0, 0.0, f64::MAX) && within(g.sigma1, 0.0, f64::MAX));
                assert!(scale.len() == d && scale.iter().all(|s| within(*s, 0.0, f64::MAX)));
            }
            NoiseModel::StudentT(t) => {
                let nu = t.nu;
                assert!(nu.is_finite() && nu > 0.0 && within(t.sigma1, 0.0, f64::MAX));
                assert!(within(t.sigma0, 0.0, f64::MAX));
                let Scale::Each(scale) = &t.scale else {
                    panic!("scale is stored expanded")
                };
                assert!(scale.len() == d && scale.iter().all(|s| s.is_finite() && *s > 0.0));
                if c.optimizer.kind_name() != "dsignsgd" {
                    assert!(nu > 2.0, "D(C)SGD accepted Student-t noise with nu = {nu}");
                }
            }
        }
    }
    match c.optimizer.compressor() {
        CompressorSpec::Identity(_) => {}
        CompressorSpec::Bernoulli(b) => assert!(b.p > 0.0 && b.p <= 1.0),
        CompressorSpec::RandK(r) => assert!(r.k >= 1 && r.k <= d),
        CompressorSpec::Qsgd(q) => assert!(q.levels >= 1),
        CompressorSpec::RandKReplace(r) => assert!(r.k >= 1),
    }
    if c.optimizer.kind_name() != "dcsgd" {
        assert_eq!(*c.optimizer.compressor(), CompressorSpec::default());
    }
    match c.schedule {
        ScheduleSpec::Constant(_) => {}
        ScheduleSpec::Poly(p) => assert!(within(p.power, 0.0, f64::MAX)),
        ScheduleSpec::PolyTime(p) => {
            assert!(within(p.power, 0.0, f64::MAX) && p.t0 > 0.0 && p.t0.is_finite())
        }
        ScheduleSpec::Normalized(n) => {
            let (cc, epsilon, l0, l1) = (n.c, n.epsilon, n.l0, n.l1);
            let (a, b) = (n.a.expect("filled in"), n.b.expect("filled in"));
            assert!(cc.is_finite() && cc > 0.0 && epsilon > 0.0 && epsilon < 1.0);
            assert!(l0.is_none_or(|x| within(x, 0.0, f64::MAX)));
            assert!(l1.is_none_or(|x| within(x, 0.0, f64::MAX)));
            assert!(within(a, 0.0, f64::MAX) && within(b, 0.0, f64::MAX));
            if let (Some(l0), Some(l1)) = (l0, l1) {
                let den = l0 * (1.0 + a) + l1 * b;
                assert!(den.is_finite() && den > 0.0);
            }
        }
        ScheduleSpec::NormalizedSgd(n) => {
            assert!(n.c > 0.0 && n.delta > 0.0 && n.c.is_finite() && n.delta.is_finite())
        }
    }
    // `sde.models` may be empty only when SVAG is the one process beside the discrete method.
    assert!(!(c.sde.models.is_empty() && c.sde.svag_l.is_empty()));
    assert!(c.sde.substeps.is_none_or(|s| s >= 1));
    assert!(c.sde.svag_l.iter().all(|&l| l >= 1));
    if c.run.exact_reference {
        assert!(matches!(c.loss.kind, LossKind::DiagonalQuadratic(_)));
        assert_eq!(c.optimizer.kind_name(), "dsgd");
        assert_eq!(c.schedule, ScheduleSpec::default());
        assert!(models
            .iter()
            .all(|m| matches!(m, NoiseModel::Gaussian(g) if g.sigma1 == 0.0)));
    }
    let r = &c.run;
    assert!(r.horizon.is_finite() && r.horizon > 0.0);
    assert!(!r.etas.is_empty());
    for &eta in &r.etas {
        assert!(eta.is_finite() && eta > 0.0 && compare::study::iterations(r.horizon, eta) >= 1);
    }
    assert!(r.paths >= 2);
    assert!(!r.observables.is_empty());
    assert!(r.diverge_above.is_finite() && r.diverge_above > 0.0);
    assert!(r.quantiles.iter().all(|q| *q > 0.0 && *q < 1.0));
    // The result document can embed it, and its TOML form parses back to the same value.
    serde_json::to_string(c).expect("config serializes to JSON");
    let text = c.to_toml_string().expect("config serializes to TOML");
    let back = ExperimentConfig::from_toml_str(&text)
        .unwrap_or_else(|e| panic!("round trip failed: {e}\n{text}"));
    assert_eq!(&back, c);
}

fn check_error(e: &ConfigError) {
    assert!(!e.message.is_empty());
    let cli: CliError = e.clone().into();
    assert_eq!(cli.exit_code(), 2);
    assert!(matches!(cli, CliError::BadInput(_)));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 10_000, failure_persistence: None, ..ProptestConfig::default() })]

    /// Structural mutations of valid configs: never a panic; Ok satisfies the invariants; an error
    /// is bad input and names its key.
    #[test]
    fn structurally_mutated_configs_never_panic(
        base in 0usize..64,
        muts in prop::collection::vec((any::<u8>(), any::<u64>(), any::<u64>()), 1..4),
    ) {
        let bases = bases();
        let (_, table) = &bases[base % bases.len()];
        let mut doc = Value::Table(table.clone());
        for (op, a, b) in &muts {
            mutate(&mut doc, *op, *a, *b);
        }
        let Value::Table(t) = &doc else { unreachable!("root stays a table") };
        // Validate the table directly, and through its TOML text where it has one.
        let direct = ExperimentConfig::from_table(t);
        match &direct {
            Ok(c) => check_invariants(c),
            Err(e) => {
                check_error(e);
                prop_assert!(!e.key.is_empty(), "structural errors name a key: {}", e.message);
                prop_assert!(e.message.contains(&e.key), "message {:?} does not name key {:?}", e.message, e.key);
            }
        }
        if let Ok(text) = toml::to_string(t) {
            let via_text = ExperimentConfig::from_toml_str(&text);
            match (&direct, &via_text) {
                (Ok(a), Ok(b)) => prop_assert_eq!(a, b),
                (Err(_), Err(e)) => check_error(e),
                _ => prop_assert!(false, "table and text disagree:\n{text}\n{direct:?}\n{via_text:?}"),
            }
        }
    }

    /// Raw text mutations (garbage bytes, truncation, deletions, duplicated lines).
    #[test]
    fn byte_mutated_configs_never_panic(
        base in 0usize..64,
        ops in prop::collection::vec((0u8..5, any::<u64>(), prop::collection::vec(any::<u8>(), 0..12)), 1..5),
    ) {
        let bases = bases();
        let mut bytes = bases[base % bases.len()].0.clone().into_bytes();
        for (op, pos, junk) in &ops {
            let at = if bytes.is_empty() { 0 } else { (*pos % bytes.len() as u64) as usize };
            match op {
                0 => { bytes.splice(at..at, junk.iter().copied()); }
                1 => bytes.truncate(at),
                2 => { let end = (at + junk.len() + 1).min(bytes.len()); bytes.drain(at..end); }
                3 => {
                    for (i, j) in junk.iter().enumerate() {
                        if let Some(b) = bytes.get_mut(at + i) { *b = *j; }
                    }
                }
                _ => {
                    // Duplicate the line containing `at` (duplicate keys, repeated tables).
                    let start = bytes[..at].iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1);
                    let end = bytes[at..].iter().position(|b| *b == b'\n').map_or(bytes.len(), |p| at + p + 1);
                    let line: Vec<u8> = bytes[start..end].to_vec();
                    bytes.splice(end..end, line);
                }
            }
        }
        let text = String::from_utf8_lossy(&bytes);
        match ExperimentConfig::from_toml_str(&text) {
            Ok(c) => check_invariants(&c),
            Err(e) => check_error(&e),
        }
    }
}

#[test]
fn garbage_files_are_bad_input() {
    let dir = tempfile::tempdir().expect("tempdir");
    let samples: &[&[u8]] = &[
        b"",
        b"\xff\xfe\x00",
        b"[[[",
        b"name = ",
        b"\x00\x01\x02",
        b"= 3",
        &[b'['; 10_000],
    ];
    for (i, s) in samples.iter().enumerate() {
        let p = dir.path().join(format!("g{i}.toml"));
        std::fs::write(&p, s).expect("write");
        let e = ExperimentConfig::from_path(&p).expect_err("garbage must be rejected");
        assert_eq!(e.exit_code(), 2, "{e}");
    }
}
