//! Output: the output directory, atomic file writes (JSON, CSV, anything), stdout JSON and
//! progress bars.
//!
//! Every result file is written with [`write_atomic`]: the bytes go to a temporary file in the same
//! directory, which is flushed to disk and then renamed over the target. A reader (or a crash) sees
//! either the old file or the complete new one, never a half-written result.

use std::fs::{self, File, OpenOptions};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::error::CliError;

/// Create `dir` and its parents if needed. Fails (exit code 1) with the path and the OS error, or
/// if `dir` exists and is not a directory.
pub fn create_out_dir(dir: &Path) -> Result<(), CliError> {
    if dir.exists() && !dir.is_dir() {
        return Err(CliError::Failure(format!(
            "output path {:?} exists and is not a directory",
            dir.display().to_string()
        )));
    }
    fs::create_dir_all(dir).map_err(|e| {
        CliError::Failure(format!(
            "cannot create output directory {:?}: {e}",
            dir.display().to_string()
        ))
    })
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Write `bytes` to `path` atomically: write a temporary file in the same directory, fsync it,
/// rename it over `path`, then fsync the directory (where the platform allows). The parent
/// directory must exist. On any error the temporary file is removed and `path` is untouched.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), CliError> {
    let shown = || path.display().to_string();
    let file_name = path
        .file_name()
        .ok_or_else(|| CliError::Failure(format!("cannot write {:?}: not a file path", shown())))?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let tmp = dir.join(format!(
        ".{}.tmp.{}.{}",
        file_name.to_string_lossy(),
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = write_and_sync(&tmp, bytes).and_then(|()| fs::rename(&tmp, path));
    if let Err(e) = result {
        // Best effort: the temporary file may not exist if creating it failed.
        let _ = fs::remove_file(&tmp);
        return Err(CliError::Failure(format!(
            "cannot write {:?}: {e}",
            shown()
        )));
    }
    sync_dir(&dir);
    Ok(())
}

fn write_and_sync(tmp: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = OpenOptions::new().write(true).create_new(true).open(tmp)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Make the rename durable. Directories cannot be opened for syncing everywhere (e.g. Windows), so
/// failures are ignored: the rename itself has already happened atomically.
fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Serialize `value` as pretty JSON (with a final newline) and write it atomically to `path`.
pub fn write_json<T: Serialize + ?Sized>(path: &Path, value: &T) -> Result<(), CliError> {
    let bytes = to_json_bytes(value)?;
    write_atomic(path, &bytes)
}

/// `value` as pretty JSON bytes with a final newline.
pub fn to_json_bytes<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CliError> {
    let mut bytes = serde_json::to_vec_pretty(value)
        .map_err(|e| CliError::Failure(format!("cannot serialize result as JSON: {e}")))?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// Print `value` as pretty JSON on stdout (for `--json`: the result document and nothing else).
pub fn print_json<T: Serialize + ?Sized>(value: &T) -> Result<(), CliError> {
    let bytes = to_json_bytes(value)?;
    let mut out = std::io::stdout().lock();
    out.write_all(&bytes)
        .and_then(|()| out.flush())
        .map_err(|e| CliError::Failure(format!("cannot write to stdout: {e}")))
}

/// One CSV cell from an `f64`: the shortest representation that round-trips; `NaN`, `inf`,
/// `-inf` for non-finite values.
pub fn csv_f64(x: f64) -> String {
    if x.is_nan() {
        "NaN".into()
    } else if x.is_infinite() {
        if x > 0.0 { "inf" } else { "-inf" }.into()
    } else {
        format!("{x}")
    }
}

/// Quote a CSV field if needed (RFC 4180: fields containing `,`, `"`, CR or LF are quoted, with
/// `"` doubled).
pub fn csv_escape(field: &str) -> String {
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_string()
    }
}

/// The CSV text of a header and rows (LF line endings, fields escaped). Every row must have as
/// many fields as the header.
pub fn csv_string<R: AsRef<[String]>>(header: &[&str], rows: &[R]) -> Result<String, CliError> {
    let mut s = String::new();
    let head: Vec<String> = header.iter().map(|h| csv_escape(h)).collect();
    s.push_str(&head.join(","));
    s.push('\n');
    for (i, row) in rows.iter().enumerate() {
        let row = row.as_ref();
        if row.len() != header.len() {
            return Err(CliError::Failure(format!(
                "internal error: CSV row {i} has {} fields but the header has {}",
                row.len(),
                header.len()
            )));
        }
        let cells: Vec<String> = row.iter().map(|c| csv_escape(c)).collect();
        s.push_str(&cells.join(","));
        s.push('\n');
    }
    Ok(s)
}

/// Write a CSV file atomically (see [`csv_string`]).
pub fn write_csv<R: AsRef<[String]>>(
    path: &Path,
    header: &[&str],
    rows: &[R],
) -> Result<(), CliError> {
    let text = csv_string(header, rows)?;
    write_atomic(path, text.as_bytes())
}

/// A progress bar on stderr for `len` steps, labelled `message`. Hidden (all calls are no-ops)
/// with `--quiet` or when stderr is not a terminal, so piped output and `--json` stay clean.
pub fn progress_bar(len: u64, message: &str, quiet: bool) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(
        "{msg:>12} [{elapsed_precise}] {wide_bar} {pos}/{len} (eta {eta})",
    ) {
        pb.set_style(style);
    }
    pb.set_message(message.to_string());
    pb.enable_steady_tick(Duration::from_millis(200));
    pb
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_atomic_creates_and_replaces_without_leftovers() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("result.json");
        write_atomic(&p, b"first").expect("first write");
        write_atomic(&p, b"second").expect("second write");
        assert_eq!(fs::read(&p).expect("read"), b"second");
        let names: Vec<_> = fs::read_dir(dir.path())
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names.len(), 1, "temporary files left behind: {names:?}");
    }

    #[test]
    fn write_atomic_into_missing_directory_fails_cleanly() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("missing").join("x.csv");
        let e = write_atomic(&p, b"x").expect_err("must fail");
        assert_eq!(e.exit_code(), 1);
        assert!(e.message().contains("x.csv"), "{e}");
    }

    #[test]
    fn create_out_dir_nested_and_rejects_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let nested = dir.path().join("a").join("b");
        create_out_dir(&nested).expect("create");
        assert!(nested.is_dir());
        create_out_dir(&nested).expect("idempotent");
        let file = dir.path().join("f");
        fs::write(&file, b"").expect("write");
        assert!(create_out_dir(&file).is_err());
    }

    #[test]
    fn json_and_csv_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("r.json");
        write_json(&p, &serde_json::json!({"a": [1, 2], "b": "x"})).expect("json");
        let v: serde_json::Value =
            serde_json::from_slice(&fs::read(&p).expect("read")).expect("parse");
        assert_eq!(v["a"][1], 2);

        let c = dir.path().join("r.csv");
        let rows = vec![
            vec!["0.1".to_string(), csv_f64(f64::NAN)],
            vec!["a,b".to_string(), "say \"hi\"".to_string()],
        ];
        write_csv(&c, &["eta", "value"], &rows).expect("csv");
        let text = fs::read_to_string(&c).expect("read");
        assert_eq!(text, "eta,value\n0.1,NaN\n\"a,b\",\"say \"\"hi\"\"\"\n");
        let bad = vec![vec!["1".to_string()]];
        assert!(write_csv(&c, &["a", "b"], &bad).is_err());
        assert_eq!(
            fs::read_to_string(&c).expect("read"),
            text,
            "a failed write must not touch the file"
        );
    }

    #[test]
    fn csv_f64_round_trips() {
        for x in [0.1, 1e-300, -2.5e17, 1.0 / 3.0] {
            assert_eq!(csv_f64(x).parse::<f64>().expect("parse"), x);
        }
        assert_eq!(csv_f64(f64::INFINITY), "inf");
    }

    #[test]
    fn quiet_progress_bar_is_hidden() {
        assert!(progress_bar(10, "x", true).is_hidden());
    }
}
