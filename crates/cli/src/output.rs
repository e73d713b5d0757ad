//! Output: publishing a run's folder, atomic file writes (JSON, CSV, anything), the one CSV
//! number convention, stdout JSON and progress bars.
//!
//! A run never writes into `--out` directly. [`Publication::begin`] takes an exclusive lock on
//! `<out>.lock` (beside the folder, so it survives the swap), creates a fresh staging folder
//! `<out>.tmp-<pid>-<nonce>` beside `--out`, and the run writes every file there (each one itself
//! with [`write_atomic`]). [`Publication::commit`] then swaps the staging folder into place in one
//! `renameat2(RENAME_EXCHANGE)` on Linux (two renames elsewhere, recovered by the next run) and
//! removes the previous folder. A reader, a crash or a kill at any moment therefore sees either the
//! complete earlier set of files or the complete new one. SIGINT, SIGTERM and SIGHUP remove the
//! staging folder before exiting; what a SIGKILL leaves (`<out>.tmp-*`) is removed by the next run
//! on the same `--out`.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{IsTerminal, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::error::CliError;

/// The staging folder of the run in progress, for the signal handler. Held while a commit swaps
/// folders, so a signal arriving then waits until the swap is complete.
static PENDING: Mutex<Option<PathBuf>> = Mutex::new(None);

fn pending() -> MutexGuard<'static, Option<PathBuf>> {
    // A panic while holding the lock leaves a valid `Option`; poisoning carries no meaning here.
    PENDING.lock().unwrap_or_else(|e| e.into_inner())
}

/// Exit status after SIGINT/SIGTERM/SIGHUP (the shell's 128 + SIGINT).
const EXIT_INTERRUPTED: i32 = 130;

fn install_signal_handler() -> Result<(), CliError> {
    static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();
    INSTALLED
        .get_or_init(|| {
            ctrlc::set_handler(|| {
                let mut guard = pending();
                if let Some(dir) = guard.take() {
                    // The run's threads go on writing until the exit: a file created during the
                    // removal makes it fail, so try again until the folder is gone.
                    for _ in 0..200 {
                        if fs::remove_dir_all(&dir).is_ok() || !dir.exists() {
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
                eprintln!("interrupted: nothing was published");
                std::process::exit(EXIT_INTERRUPTED);
            })
            .map_err(|e| format!("cannot install the signal handler: {e}"))
        })
        .clone()
        .map_err(CliError::Failure)
}

/// File names a run owns in its output folder: these are replaced as a set by each run. Anything
/// else found in an earlier output folder (a README, notes) is carried over into the new one.
fn is_run_output(name: &str) -> bool {
    matches!(name, "result.json" | "timing.json" | "config.toml")
        || [".csv", ".png", ".svg"]
            .iter()
            .any(|ext| name.ends_with(ext))
}

/// How `--out` is locked while a run writes to it: wait for the holder (`--wait`) or fail at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// Fail with exit code 1, naming the folder and the pid of the run that holds it.
    FailIfHeld,
    /// Block until the other run has finished.
    Wait,
}

/// A run's output folder while it is being written (see the module documentation). Dropping it
/// without [`Publication::commit`] removes the staging folder and leaves `--out` untouched.
pub struct Publication {
    out: PathBuf,
    staging: PathBuf,
    /// The open lock file; the lock is released when it is closed (also by the OS on a kill).
    _lock: File,
    committed: bool,
}

impl Publication {
    /// Lock `out`, clean up what killed runs left beside it, and create an empty staging folder.
    ///
    /// Refuses (exit code 2) an `out` that is a file, or an existing non-empty folder without a
    /// `result.json` (not an sdelab output folder: replacing it could destroy the user's files).
    pub fn begin(out: &Path, mode: LockMode) -> Result<Self, CliError> {
        let out = resolve_out(out)?;
        let shown = out.display().to_string();
        let name = out
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| CliError::BadInput(format!("--out = {shown:?}: not a folder name")))?;
        let parent = parent_of(&out);
        fs::create_dir_all(&parent).map_err(|e| {
            CliError::Failure(format!(
                "cannot create the folder {:?} that holds --out: {e}",
                parent.display().to_string()
            ))
        })?;
        install_signal_handler()?;
        let lock = lock_out(&parent.join(format!("{name}.lock")), &shown, mode)?;
        recover_and_clean(&out, &parent, &name)?;
        if let Ok(meta) = fs::symlink_metadata(&out) {
            if !meta.is_dir() {
                return Err(CliError::BadInput(format!(
                    "--out = {shown:?}: exists and is not a folder"
                )));
            }
            let has_result = out.join("result.json").is_file();
            let empty = fs::read_dir(&out)
                .map(|mut d| d.next().is_none())
                .unwrap_or(false);
            if !has_result && !empty {
                return Err(CliError::BadInput(format!(
                    "--out = {shown:?}: the folder exists, is not empty and holds no result.json, so \
                     it is not an sdelab output folder; sdelab replaces its output folder as a whole, \
                     so choose a new or empty folder"
                )));
            }
        }
        let staging = parent.join(format!("{name}.tmp-{}-{}", std::process::id(), nonce()));
        fs::create_dir(&staging).map_err(|e| {
            CliError::Failure(format!(
                "cannot create the staging folder {:?}: {e}",
                staging.display().to_string()
            ))
        })?;
        *pending() = Some(staging.clone());
        Ok(Self {
            out,
            staging,
            _lock: lock,
            committed: false,
        })
    }

    /// The staging folder: write every output file here.
    pub fn dir(&self) -> &Path {
        &self.staging
    }

    /// Publish the staging folder as `--out` in one step, carrying over the files of the earlier
    /// folder that are not run outputs, then remove the earlier folder.
    pub fn commit(mut self) -> Result<(), CliError> {
        let fail = |what: &str, e: std::io::Error| {
            CliError::Failure(format!(
                "cannot publish {:?} ({what}): {e}",
                self.out.display().to_string()
            ))
        };
        // Held to the end: a signal now waits for the swap instead of interrupting it.
        let mut guard = pending();
        let old_exists = self.out.is_dir();
        if old_exists {
            carry_over(&self.out, &self.staging).map_err(|e| fail("carrying over files", e))?;
        }
        // Plots are written by the plotting library without fsync: make every file durable
        // before the swap, so a power cut cannot publish a folder of empty files.
        sync_files(&self.staging).map_err(|e| fail("syncing files", e))?;
        sync_dir(&self.staging);
        if old_exists {
            swap_dirs(&self.staging, &self.out).map_err(|e| fail("swapping folders", e))?;
            // `staging` now holds the earlier result; a kill before it is gone leaves a
            // `.tmp-` folder that the next run removes.
            let _ = fs::remove_dir_all(&self.staging);
        } else {
            fs::rename(&self.staging, &self.out).map_err(|e| fail("renaming", e))?;
        }
        sync_dir(&parent_of(&self.out));
        *guard = None;
        self.committed = true;
        Ok(())
    }
}

impl Drop for Publication {
    fn drop(&mut self) {
        if !self.committed {
            let mut guard = pending();
            let _ = fs::remove_dir_all(&self.staging);
            *guard = None;
        }
    }
}

fn sync_files(dir: &Path) -> std::io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            File::open(entry.path())?.sync_all()?;
        }
    }
    Ok(())
}

/// `out` itself, or the folder it links to (renaming would replace the link, not the folder).
fn resolve_out(out: &Path) -> Result<PathBuf, CliError> {
    match fs::symlink_metadata(out) {
        Ok(m) if m.file_type().is_symlink() => fs::canonicalize(out).map_err(|e| {
            CliError::BadInput(format!(
                "--out = {:?}: a link that cannot be followed: {e}",
                out.display().to_string()
            ))
        }),
        _ => Ok(out.to_path_buf()),
    }
}

fn parent_of(p: &Path) -> PathBuf {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn nonce() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    t ^ TEMP_COUNTER.fetch_add(1, Ordering::Relaxed).rotate_left(32)
}

/// Take the exclusive lock on `lock_path` and record our pid in it for the message of a second
/// run. The file is never removed: removing a lock file races with a run that has opened it.
fn lock_out(lock_path: &Path, shown_out: &str, mode: LockMode) -> Result<File, CliError> {
    let shown_lock = lock_path.display().to_string();
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(lock_path)
        .map_err(|e| CliError::Failure(format!("cannot open the lock file {shown_lock:?}: {e}")))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let holder = read_holder(&mut file);
            match mode {
                LockMode::FailIfHeld => {
                    return Err(CliError::Failure(format!(
                        "output folder {shown_out:?} is in use by another sdelab run ({holder}, \
                         lock file {shown_lock:?}); wait for it, pass --wait, or choose another --out"
                    )))
                }
                LockMode::Wait => {
                    eprintln!("waiting for {holder} to finish writing {shown_out:?}");
                    file.lock().map_err(|e| {
                        CliError::Failure(format!("cannot lock {shown_lock:?}: {e}"))
                    })?;
                }
            }
        }
        Err(TryLockError::Error(e)) => {
            return Err(CliError::Failure(format!(
                "cannot lock {shown_lock:?}: {e}"
            )))
        }
    }
    let pid = format!("{}\n", std::process::id());
    let record = file
        .set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| file.write_all(pid.as_bytes()))
        .and_then(|()| file.flush());
    record.map_err(|e| CliError::Failure(format!("cannot write {shown_lock:?}: {e}")))?;
    Ok(file)
}

fn read_holder(file: &mut File) -> String {
    let mut text = String::new();
    let _ = file.rewind().and_then(|()| file.read_to_string(&mut text));
    match text.trim().parse::<u32>() {
        Ok(pid) => format!("pid {pid}"),
        Err(_) => "pid unknown".to_string(),
    }
}

/// Under the lock: put back an earlier result that a kill between the two renames of the
/// non-Linux swap left aside, and remove the staging folders of killed runs.
fn recover_and_clean(out: &Path, parent: &Path, name: &str) -> Result<(), CliError> {
    let Ok(entries) = fs::read_dir(parent) else {
        return Ok(());
    };
    let (tmp, old) = (format!("{name}.tmp-"), format!("{name}.old-"));
    let mut leftovers: Vec<PathBuf> = Vec::new();
    let mut aside: Option<PathBuf> = None;
    for entry in entries.flatten() {
        let n = entry.file_name().to_string_lossy().into_owned();
        if n.starts_with(&tmp) {
            leftovers.push(entry.path());
        } else if n.starts_with(&old) {
            if aside.is_none() && !out.exists() {
                aside = Some(entry.path());
            } else {
                leftovers.push(entry.path());
            }
        }
    }
    if let Some(a) = aside {
        fs::rename(&a, out).map_err(|e| {
            CliError::Failure(format!(
                "cannot restore the earlier result {:?} to {:?}: {e}",
                a.display().to_string(),
                out.display().to_string()
            ))
        })?;
    }
    for l in leftovers {
        let _ = fs::remove_dir_all(&l);
    }
    Ok(())
}

/// Hard-link (or copy, across file systems) every entry of `old` that is not a run output and
/// not already in `new`; folders recursively.
fn carry_over(old: &Path, new: &Path) -> std::io::Result<()> {
    for entry in fs::read_dir(old)? {
        let entry = entry?;
        let name = entry.file_name();
        if is_run_output(&name.to_string_lossy()) || new.join(&name).exists() {
            continue;
        }
        link_tree(&entry.path(), &new.join(&name))?;
    }
    Ok(())
}

fn link_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    let meta = fs::symlink_metadata(from)?;
    if meta.is_dir() {
        fs::create_dir(to)?;
        for entry in fs::read_dir(from)? {
            let entry = entry?;
            link_tree(&entry.path(), &to.join(entry.file_name()))?;
        }
        Ok(())
    } else if meta.file_type().is_symlink() {
        let target = fs::read_link(from)?;
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(target, to)
        }
        #[cfg(not(unix))]
        {
            let _ = target;
            fs::copy(from, to).map(|_| ())
        }
    } else {
        fs::hard_link(from, to).or_else(|_| fs::copy(from, to).map(|_| ()))
    }
}

/// Exchange the folders `a` and `b` in one step (Linux), or as two renames elsewhere: `b` aside
/// to `<b>.old-…`, `a` to `b`, the old one back to `a`'s name for removal. A kill between the two
/// renames leaves no `b` and a complete `<b>.old-…`, which [`recover_and_clean`] puts back.
fn swap_dirs(a: &Path, b: &Path) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use rustix::fs::{renameat_with, RenameFlags, CWD};
        match renameat_with(CWD, a, CWD, b, RenameFlags::EXCHANGE) {
            Ok(()) => return Ok(()),
            // Some file systems (and old kernels) lack RENAME_EXCHANGE: fall back.
            Err(e) if e == rustix::io::Errno::INVAL || e == rustix::io::Errno::NOSYS => {}
            Err(e) => return Err(e.into()),
        }
    }
    let name = b
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let aside = parent_of(b).join(format!("{name}.old-{}-{}", std::process::id(), nonce()));
    fs::rename(b, &aside)?;
    fs::rename(a, b)?;
    fs::rename(&aside, a)
}

/// Create `dir` and its parents if needed. Fails (exit code 1) with the path and the OS error, or
/// if `dir` exists and is not a directory. For folders that are not published as a whole; run
/// outputs go through [`Publication`].
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

/// One published file in the `files` list of `result.json`: its size and FNV-1a 64-bit hash, so a
/// reader can check that a folder holds exactly the files of one run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileEntry {
    pub name: String,
    pub bytes: u64,
    /// 16 lowercase hex digits.
    pub fnv1a64: String,
}

/// Files that describe the run but are not listed in its manifest: the document itself, and the
/// timings, which differ from run to run.
pub const RESULT_FILE: &str = "result.json";
pub const TIMING_FILE: &str = "timing.json";

/// FNV-1a, 64 bits: a content fingerprint (not a defence against tampering).
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Every regular file of `dir` (not recursive) except [`RESULT_FILE`] and [`TIMING_FILE`],
/// sorted by name, with sizes and hashes.
pub fn manifest(dir: &Path) -> Result<Vec<FileEntry>, CliError> {
    let fail = |e: std::io::Error| {
        CliError::Failure(format!(
            "cannot list the output files in {:?}: {e}",
            dir.display().to_string()
        ))
    };
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).map_err(fail)? {
        let entry = entry.map_err(fail)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == RESULT_FILE || name == TIMING_FILE || !entry.file_type().map_err(fail)?.is_file()
        {
            continue;
        }
        let bytes = fs::read(entry.path()).map_err(fail)?;
        files.push(FileEntry {
            name,
            bytes: bytes.len() as u64,
            fnv1a64: format!("{:016x}", fnv1a64(&bytes)),
        });
    }
    files.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(files)
}

/// The run id: a fingerprint of the manifest. Deterministic (the same inputs and seed give the
/// same files, hence the same id), and different whenever any published byte differs.
pub fn run_id(files: &[FileEntry]) -> String {
    let mut text = String::new();
    for f in files {
        text.push_str(&format!("{}\0{}\0{}\n", f.name, f.bytes, f.fnv1a64));
    }
    format!("{:016x}", fnv1a64(text.as_bytes()))
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

/// One CSV cell from an `f64`, the one number convention of every CSV sdelab writes: the
/// shortest decimal that parses back to the same `f64`, in scientific notation (`1e-1`,
/// `2.5e17`); `inf`/`-inf` for infinite values (a quantile of diverged paths); an empty cell for
/// "no value" (NaN: a mean over no surviving path, an order that could not be fitted). The JSON
/// documents write `null` for the last two.
pub fn csv_f64(x: f64) -> String {
    if x.is_nan() {
        String::new()
    } else if x.is_infinite() {
        if x > 0.0 { "inf" } else { "-inf" }.into()
    } else {
        format!("{x:e}")
    }
}

/// A CSV cell for an optional number: empty for `None` (see [`csv_f64`]).
pub fn csv_opt_f64(x: Option<f64>) -> String {
    x.map_or(String::new(), csv_f64)
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
            vec![csv_f64(0.1), csv_f64(f64::NAN)],
            vec!["a,b".to_string(), "say \"hi\"".to_string()],
        ];
        write_csv(&c, &["eta", "value"], &rows).expect("csv");
        let text = fs::read_to_string(&c).expect("read");
        assert_eq!(text, "eta,value\n1e-1,\n\"a,b\",\"say \"\"hi\"\"\"\n");
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
        // Independent reference: Rust's parser, which is exact (correctly rounded).
        for x in [
            0.1,
            1e-300,
            -2.5e17,
            1.0 / 3.0,
            f64::MIN_POSITIVE,
            5e-324,
            f64::MAX,
            0.0,
        ] {
            let cell = csv_f64(x);
            assert_eq!(cell.parse::<f64>().expect("parse"), x, "{cell}");
            assert!(cell.contains('e'), "{cell}: not scientific");
        }
        assert_eq!(csv_f64(0.1), "1e-1");
        assert_eq!(csv_f64(-2.5e17), "-2.5e17");
        // Shortest: 0.1 + 0.2 needs 17 digits, 1/3 needs 16.
        assert_eq!(csv_f64(0.1 + 0.2), "3.0000000000000004e-1");
        assert_eq!(csv_f64(f64::INFINITY), "inf");
        assert_eq!(csv_f64(f64::NEG_INFINITY), "-inf");
        assert_eq!(csv_f64(f64::NAN), "");
        assert_eq!(csv_opt_f64(None), "");
    }

    #[test]
    fn fnv1a64_matches_published_vectors() {
        // Test vectors of the FNV reference (Fowler, Noll, Vo): "" and "a".
        assert_eq!(fnv1a64(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x85944171f73967e8);
    }

    #[test]
    fn publication_replaces_the_folder_as_a_whole_and_keeps_foreign_files() {
        let root = tempfile::tempdir().expect("tempdir");
        let out = root.path().join("out");
        let first = Publication::begin(&out, LockMode::FailIfHeld).expect("begin");
        write_atomic(&first.dir().join("result.json"), b"{}").expect("write");
        write_atomic(&first.dir().join("a.csv"), b"1").expect("write");
        assert!(!out.exists(), "nothing is visible before the commit");
        first.commit().expect("commit");
        fs::write(out.join("README.md"), b"notes").expect("notes");

        let second = Publication::begin(&out, LockMode::FailIfHeld).expect("begin");
        // The lock is held: a concurrent run is refused, naming the folder and our pid.
        let e = match Publication::begin(&out, LockMode::FailIfHeld) {
            Err(e) => e,
            Ok(_) => panic!("second lock taken"),
        };
        assert_eq!(e.exit_code(), 1);
        assert!(e.message().contains("out"), "{e}");
        assert!(
            e.message().contains(&format!("pid {}", std::process::id())),
            "{e}"
        );
        write_atomic(&second.dir().join("result.json"), b"{\"v\": 2}").expect("write");
        write_atomic(&second.dir().join("b.csv"), b"2").expect("write");
        second.commit().expect("commit");
        let mut names: Vec<String> = fs::read_dir(&out)
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        // a.csv of the first run is gone (no mixed set); the user's README.md is kept.
        assert_eq!(names, ["README.md", "b.csv", "result.json"]);
        let beside: Vec<String> = fs::read_dir(root.path())
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(beside.len(), 2, "leftovers beside --out: {beside:?}");
    }

    #[test]
    fn dropped_publication_leaves_the_earlier_result_and_no_staging() {
        let root = tempfile::tempdir().expect("tempdir");
        let out = root.path().join("out");
        let p = Publication::begin(&out, LockMode::FailIfHeld).expect("begin");
        write_atomic(&p.dir().join("result.json"), b"1").expect("write");
        p.commit().expect("commit");
        let p = Publication::begin(&out, LockMode::FailIfHeld).expect("begin");
        let staging = p.dir().to_path_buf();
        write_atomic(&staging.join("result.json"), b"2").expect("write");
        drop(p);
        assert!(!staging.exists());
        assert_eq!(fs::read(out.join("result.json")).expect("read"), b"1");
    }

    #[test]
    fn leftovers_of_killed_runs_are_cleaned_and_a_result_left_aside_is_restored() {
        let root = tempfile::tempdir().expect("tempdir");
        let out = root.path().join("out");
        // What a kill between the two renames of the portable swap leaves.
        let aside = root.path().join("out.old-1-2");
        fs::create_dir(&aside).expect("mkdir");
        fs::write(aside.join("result.json"), b"old").expect("write");
        let killed = root.path().join("out.tmp-3-4");
        fs::create_dir(&killed).expect("mkdir");
        let p = Publication::begin(&out, LockMode::FailIfHeld).expect("begin");
        assert_eq!(fs::read(out.join("result.json")).expect("restored"), b"old");
        assert!(!killed.exists() && !aside.exists());
        drop(p);
    }

    #[test]
    fn a_foreign_non_empty_folder_is_refused() {
        let root = tempfile::tempdir().expect("tempdir");
        fs::write(root.path().join("precious.txt"), b"x").expect("write");
        let e = match Publication::begin(root.path(), LockMode::FailIfHeld) {
            Err(e) => e,
            Ok(_) => panic!("accepted a foreign folder"),
        };
        assert_eq!(e.exit_code(), 2);
        assert!(e.message().contains("result.json"), "{e}");
        assert!(root.path().join("precious.txt").exists());
    }

    #[test]
    fn quiet_progress_bar_is_hidden() {
        assert!(progress_bar(10, "x", true).is_hidden());
    }
}
