//! The one error type of the `sdelab` command, and its exit codes.
//!
//! | variant | exit code | when |
//! |---|---|---|
//! | [`CliError::BadInput`] | 2 | the user's input is wrong: an unreadable or invalid config file, a value out of range, an unknown key or kind. The message names the key and the value. |
//! | [`CliError::Failure`] | 1 | anything else: I/O failure while writing results, a numerical failure, an unimplemented feature. |
//!
//! Success is exit code 0. Command-line syntax errors are reported by clap, also with exit code 2.

/// Everything that can make `sdelab` fail. The message is complete and user-facing; `main` prints it
/// as `error: <message>` on stderr and exits with [`CliError::exit_code`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CliError {
    /// The user's input is wrong (exit code 2). The message names the key and the offending value,
    /// e.g. `run.etas[2] = -0.1: must be positive`.
    #[error("{0}")]
    BadInput(String),
    /// Any other failure (exit code 1): I/O, numerics, not implemented.
    #[error("{0}")]
    Failure(String),
}

impl CliError {
    /// Exit code for bad input.
    pub const EXIT_BAD_INPUT: u8 = 2;
    /// Exit code for any other failure.
    pub const EXIT_FAILURE: u8 = 1;

    /// The process exit code: 2 for [`CliError::BadInput`], 1 for [`CliError::Failure`].
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::BadInput(_) => Self::EXIT_BAD_INPUT,
            CliError::Failure(_) => Self::EXIT_FAILURE,
        }
    }

    /// The message, without the variant (the binary prints the `Display` form).
    pub fn message(&self) -> &str {
        match self {
            CliError::BadInput(m) | CliError::Failure(m) => m,
        }
    }
}
