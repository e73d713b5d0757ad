//! Every example config in `examples/configs/` runs with the subcommand its header documents
//! (`#   sdelab <subcommand> --config examples/configs/<file>`), with its path count cut small:
//! exit code 0 and a valid result document (version, the config echoed back, the subcommand's
//! results, and every listed file present with its size).

use std::path::{Path, PathBuf};
use std::process::Command;

/// Paths per run: enough for every statistic to be defined, small enough for the suite.
const PATHS: u64 = 200;

fn configs() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/configs");
    let mut out: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    out.sort();
    out
}

/// The subcommand of the config's documented command line.
fn documented_subcommand(text: &str, file: &str) -> &'static str {
    let wanted = format!("--config examples/configs/{file}");
    let line = text
        .lines()
        .find(|l| l.trim_start_matches(['#', ' ']).starts_with("sdelab ") && l.contains(&wanted))
        .unwrap_or_else(|| panic!("{file}: no `sdelab <subcommand> {wanted}` line"));
    ["weak-error", "run", "stability"]
        .into_iter()
        .find(|s| line.contains(&format!("sdelab {s} ")))
        .unwrap_or_else(|| panic!("{file}: unknown subcommand in {line:?}"))
}

/// The config with `paths` (of `[run]`) cut to at most [`PATHS`].
fn cut_paths(text: &str) -> String {
    text.lines()
        .map(|l| {
            let Some(rest) = l.strip_prefix("paths") else {
                return l.to_string();
            };
            let Some((_, value)) = rest.split_once('=') else {
                return l.to_string();
            };
            let value = value
                .split('#')
                .next()
                .unwrap_or("")
                .trim()
                .replace('_', "");
            match value.parse::<f64>() {
                Ok(n) if n > PATHS as f64 => format!("paths = {PATHS}"),
                _ => l.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn every_example_config_runs_and_writes_a_valid_result() {
    let configs = configs();
    assert!(configs.len() >= 5, "{configs:?}");
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for path in configs {
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        let subcommand = documented_subcommand(&text, &file);
        let small = dir.path().join(&file);
        std::fs::write(&small, cut_paths(&text)).unwrap();
        let out = dir.path().join(file.trim_end_matches(".toml"));
        let o = Command::new(env!("CARGO_BIN_EXE_sdelab"))
            .args(["--quiet", "--force", subcommand, "--config"])
            .arg(&small)
            .arg("--out")
            .arg(&out)
            .output()
            .expect("run the sdelab binary");
        if !o.status.success() {
            failures.push(format!(
                "{file} ({subcommand}): {:?}: {}",
                o.status.code(),
                String::from_utf8_lossy(&o.stderr)
            ));
            continue;
        }
        let doc: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("result.json")).unwrap())
                .unwrap_or_else(|e| panic!("{file}: result.json: {e}"));
        assert_eq!(doc["sdelab_version"], env!("CARGO_PKG_VERSION"), "{file}");
        assert!(doc["config"]["name"].is_string(), "{file}");
        let key = match subcommand {
            "weak-error" => "weak_error",
            "run" => "trajectories",
            _ => "stability",
        };
        let results = &doc[key];
        assert!(
            results.as_array().is_some_and(|a| !a.is_empty()) || results.is_object(),
            "{file}: no {key} in result.json"
        );
        let files = doc["files"]
            .as_array()
            .unwrap_or_else(|| panic!("{file}: files"));
        assert!(!files.is_empty(), "{file}");
        for f in files {
            let name = f["name"].as_str().unwrap();
            let bytes =
                std::fs::read(out.join(name)).unwrap_or_else(|e| panic!("{file}: {name}: {e}"));
            assert_eq!(
                f["bytes"].as_u64(),
                Some(bytes.len() as u64),
                "{file}: {name}"
            );
            let hash = format!("{:016x}", sdelab::output::fnv1a64(&bytes));
            assert_eq!(f["fnv1a64"].as_str(), Some(hash.as_str()), "{file}: {name}");
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
