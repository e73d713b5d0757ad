//! Faults: kills at random moments, concurrent runs on one output folder, work above the
//! ceilings. The built `sdelab` binary is run as a child process.
#![cfg(unix)]

mod common;
use common::{command, ok, sdelab, small_config_without, stderr, write};
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// A `run` config of a fraction of a second in the release profile. With 200 paths most of the
/// time goes to drawing and writing the 8 plots and the CSV, so most kills land while files are
/// being written (~0.3 s of ~0.4 s on this project's machine kind).
fn config(seed: u64, paths: u64) -> String {
    let (seed, paths) = (seed.to_string(), paths.to_string());
    small_config_without(
        &["loss.diag", "run.observables"],
        &[
            ("name", r#""faults""#),
            ("seed", &seed),
            ("loss.kind", r#""quartic""#),
            ("loss.x0", "[1.5, -1.0, 0.5]"),
            ("agents.n", "4"),
            ("sde.models", r#"["first_order", "stability"]"#),
            ("sde.substeps", "2"),
            ("run.horizon", "2.0"),
            ("run.etas", "[0.01]"),
            ("run.paths", &paths),
        ],
    )
}

/// `text` with `from` replaced by `to`; `from` must be there (else the test would silently run
/// the unchanged config).
fn swap(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "{from:?} not in {text}");
    text.replace(from, to)
}

fn names_in(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect()
}

/// FNV-1a 64 (the hash of the manifest), written out again here so the check is independent of
/// the binary's code.
fn fnv1a64(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// Checks that `out` holds exactly one complete run and returns its id: `result.json` parses,
/// every file it lists is there with its size and hash, there is no other file but
/// `timing.json` of the same run, and the id is the hash of the manifest.
fn complete_run_id(out: &Path) -> String {
    let doc: serde_json::Value =
        serde_json::from_slice(&fs::read(out.join("result.json")).expect("result.json is there"))
            .expect("result.json parses");
    let id = doc["run_id"].as_str().expect("run_id").to_string();
    let mut expected: BTreeSet<String> = ["result.json", "timing.json"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut manifest = String::new();
    for f in doc["files"].as_array().expect("files") {
        let name = f["name"].as_str().expect("name");
        let bytes = fs::read(out.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            bytes.len() as u64,
            f["bytes"].as_u64().expect("bytes"),
            "{name}"
        );
        let hash = fnv1a64(&bytes);
        assert_eq!(
            hash,
            f["fnv1a64"].as_str().expect("hash"),
            "{name}: other run"
        );
        manifest.push_str(&format!("{name}\0{}\0{hash}\n", bytes.len()));
        expected.insert(name.to_string());
    }
    assert_eq!(
        fnv1a64(manifest.as_bytes()),
        id,
        "run_id is not the manifest's"
    );
    assert_eq!(names_in(out), expected, "files of no run or of another run");
    let timing: serde_json::Value =
        serde_json::from_slice(&fs::read(out.join("timing.json")).expect("timing.json"))
            .expect("timing.json parses");
    assert_eq!(timing["run_id"], id.as_str(), "timing.json of another run");
    id
}

fn signal(child: &Child, name: &str) {
    let status = std::process::Command::new("kill")
        .args(["-s", name, &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

/// splitmix64: fixed kill times from a fixed seed.
struct Rng(u64);
impl Rng {
    fn next_f64(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[test]
fn kills_at_random_moments_leave_the_old_or_the_new_complete_result() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Two configs that differ in the seed, so their results (and run ids) differ.
    let cfgs = [
        write(dir.path(), "a.toml", &config(1, 200)),
        write(dir.path(), "b.toml", &config(2, 200)),
    ];
    let out = dir.path().join("out");
    let out_s = out.to_str().expect("utf-8 path");
    // The complete result of each config, and how long a run takes.
    let mut ids = Vec::new();
    let mut shortest = Duration::MAX;
    for cfg in &cfgs {
        let start = Instant::now();
        let o = sdelab(&["-q", "run", "--config", cfg, "--out", out_s]);
        shortest = shortest.min(start.elapsed());
        ok(&o);
        ids.push(complete_run_id(&out));
    }
    assert_ne!(
        ids[0], ids[1],
        "the two configs must give different results"
    );
    let mut current = ids[1].clone();
    let mut rng = Rng(20_261_202);
    let signals = ["KILL", "TERM", "INT"];
    let (mut interrupted, mut finished) = (0, 0);
    for i in 0..24 {
        let which = i % 2;
        let mut child = command()
            .args(["-q", "run", "--config", &cfgs[which], "--out", out_s])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        // Uniform over the whole run, a little past its end.
        std::thread::sleep(shortest.mul_f64(1.1 * rng.next_f64()));
        let sig = signals[i % 3];
        signal(&child, sig);
        let status = child.wait().expect("wait");
        let id = complete_run_id(&out);
        if status.success() {
            finished += 1;
            assert_eq!(id, ids[which], "kill {i}: finished with another result");
        } else {
            interrupted += 1;
            assert!(
                id == current || id == ids[which],
                "kill {i} ({sig}): neither the earlier nor the new result"
            );
            if sig != "KILL" {
                // The handler removes this run's staging folder (one that an earlier SIGKILL
                // left may remain if this run was stopped before it took the lock).
                let mine = format!("out.tmp-{}-", child.id());
                let beside = names_in(dir.path());
                assert!(
                    beside.iter().all(|n| !n.starts_with(&mine)),
                    "kill {i} ({sig}): staging folder left: {beside:?}"
                );
            }
        }
        current = id;
    }
    // The kill times must have hit runs in progress, not only finished ones: ~90% should, unless
    // the machine is much slower now than during the two timing runs.
    assert!(
        interrupted >= 8,
        "only {interrupted} of 24 kills interrupted a run"
    );
    assert!(finished + interrupted == 24);
    eprintln!("kills: {interrupted} interrupted a run, {finished} came after its end");
    // What SIGKILL left beside --out is removed by the next run.
    let o = sdelab(&["-q", "run", "--config", &cfgs[0], "--out", out_s]);
    ok(&o);
    assert_eq!(complete_run_id(&out), ids[0]);
    let beside = names_in(dir.path());
    let expected: BTreeSet<String> = ["a.toml", "b.toml", "out", "out.lock"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(beside, expected);
}

/// Waits until the lock file names `pid` (the holder writes it once it has the lock).
fn wait_for_lock(lock: &Path, pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while fs::read_to_string(lock).ok().map(|s| s.trim().to_string()) != Some(pid.to_string()) {
        assert!(
            Instant::now() < deadline,
            "the first run never took the lock"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_second_run_on_a_locked_folder_fails_or_waits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = write(dir.path(), "c.toml", &config(3, 2000));
    let out: PathBuf = dir.path().join("shared");
    let out_s = out.to_str().expect("utf-8 path");
    let first = command()
        .args(["-q", "run", "--config", &cfg, "--out", out_s])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    wait_for_lock(&dir.path().join("shared.lock"), first.id());
    let second = sdelab(&["-q", "run", "--config", &cfg, "--out", out_s]);
    assert_eq!(second.status.code(), Some(1), "{}", stderr(&second));
    let msg = stderr(&second);
    assert!(msg.contains(out_s), "names the folder: {msg}");
    assert!(
        msg.contains(&format!("pid {}", first.id())),
        "names the holder: {msg}"
    );
    assert!(msg.contains("--wait"), "says how to wait: {msg}");
    // With --wait the third run starts after the first and publishes its own complete result.
    let third = command()
        .args(["-q", "--wait", "run", "--config", &cfg, "--out", out_s])
        .output()
        .expect("run");
    let first = first.wait_with_output().expect("wait");
    assert!(first.status.success(), "{}", stderr(&first));
    ok(&third);
    assert!(
        stderr(&third).contains("waiting for pid"),
        "{}",
        stderr(&third)
    );
    complete_run_id(&out);
}

#[test]
fn work_above_the_ceilings_is_refused_at_once_naming_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = config(1, 100);
    let cases = [
        (
            "paths",
            swap(&base, "paths = 100", "paths = 1e12"),
            "run.paths = 1000000000000",
        ),
        (
            "substeps",
            swap(&base, "substeps = 2", "substeps = 1e12"),
            "sde.substeps = 1000000000000",
        ),
    ];
    for (name, text, key) in cases {
        let cfg = write(dir.path(), &format!("{name}.toml"), &text);
        for sub in ["run", "weak-error"] {
            let text_for_sub = if sub == "weak-error" {
                swap(
                    &fs::read_to_string(&cfg).expect("read"),
                    "etas = [0.01]",
                    "etas = [0.02, 0.01]",
                )
            } else {
                fs::read_to_string(&cfg).expect("read")
            };
            let cfg_sub = write(dir.path(), &format!("{name}-{sub}.toml"), &text_for_sub);
            let out = dir.path().join(format!("out-{name}-{sub}"));
            let start = Instant::now();
            let o = sdelab(&[
                sub,
                "--config",
                &cfg_sub,
                "--out",
                out.to_str().expect("utf-8"),
            ]);
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "{name}: not at once"
            );
            assert_eq!(o.status.code(), Some(2), "{name} {sub}: {}", stderr(&o));
            let msg = stderr(&o);
            assert!(msg.contains(key), "{name} {sub}: {msg}");
            assert!(
                msg.contains("path-steps") && msg.contains("--force"),
                "{msg}"
            );
            assert!(!out.exists(), "{name} {sub}: output folder created");
        }
    }
    // A 6.5-million-dimensional starting point (and Hessian diagonal): refused before parsing.
    let d = 6_500_000;
    let ones = vec!["1"; d].join(",");
    let big = swap(
        &swap(
            &base,
            "kind = \"quartic\"",
            &format!("kind = \"quadratic\"\ndiag = [{ones}]"),
        ),
        "x0 = [1.5, -1.0, 0.5]",
        &format!("x0 = [{ones}]"),
    );
    let cfg = write(dir.path(), "big.toml", &big);
    let start = Instant::now();
    let o = sdelab(&[
        "run",
        "--config",
        &cfg,
        "--out",
        dir.path().join("o").to_str().expect("utf-8"),
    ]);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "big x0: not at once"
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let msg = stderr(&o);
    assert!(
        msg.contains("loss.") && msg.contains("6500000 numbers"),
        "{msg}"
    );
    assert!(msg.contains("GiB") && msg.contains("--force"), "{msg}");
}

#[test]
fn csv_outputs_hold_no_nan_and_shortest_scientific_numbers() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Every path of the discrete process diverges (a huge step on the quartic), so means over
    // surviving paths have no value and quantiles are infinite.
    let text = [
        ("x0 = [1.5, -1.0, 0.5]", "x0 = [30.0, -30.0, 30.0]"),
        ("etas = [0.01]", "etas = [0.5, 0.25]"),
        ("horizon = 2.0", "horizon = 1.0"),
    ]
    .iter()
    .fold(config(4, 50), |t, (from, to)| swap(&t, from, to));
    let cfg = write(dir.path(), "div.toml", &text);
    for sub in ["run", "weak-error"] {
        let out = dir.path().join(sub);
        let o = sdelab(&[
            "-q",
            sub,
            "--config",
            &cfg,
            "--out",
            out.to_str().expect("utf-8"),
        ]);
        assert_eq!(o.status.code(), Some(0), "{sub}: {}", stderr(&o));
        let stdout = String::from_utf8_lossy(&o.stdout);
        for name in names_in(&out) {
            assert!(stdout.contains(&name), "{sub}: stdout does not list {name}");
            if !name.ends_with(".csv") {
                continue;
            }
            let text = fs::read_to_string(out.join(&name)).expect("read");
            let mut lines = text.lines();
            let header: Vec<&str> = lines.next().expect("header").split(',').collect();
            for line in lines {
                for (cell, col) in line.split(',').zip(&header) {
                    assert!(
                        !cell.to_lowercase().contains("nan"),
                        "{name}: {col} = {cell}"
                    );
                    let integer = cell.chars().all(|c| c.is_ascii_digit());
                    if cell.parse::<f64>().is_ok() && !integer {
                        // Scientific, and shortest: re-formatting the value gives the same text.
                        let v: f64 = cell.parse().expect("number");
                        assert_eq!(format!("{v:e}"), cell, "{name}: {col}");
                    }
                }
                if name == "trajectories.csv" {
                    assert_eq!(line.split(',').next(), Some("faults"), "panel column");
                }
            }
        }
    }
    let traj = fs::read_to_string(dir.path().join("run/trajectories.csv")).expect("read");
    assert!(traj.contains(",inf,"), "diverged quantiles are inf");
    assert!(
        traj.contains(",,"),
        "means over no surviving path are empty"
    );
}
