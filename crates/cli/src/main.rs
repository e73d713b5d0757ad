//! The `sdelab` command; everything is in the library (`crates/cli/src/lib.rs`).

fn main() -> std::process::ExitCode {
    sdelab::run_cli()
}
