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

    /// A refusal of `compare`, as bad input: a setting out of range (named by its config key, e.g.
    /// `run.etas[2] = -0.1: must be positive and finite`), or a model or integrator that cannot be
    /// built from the config.
    pub fn from_compare(e: compare::CompareError) -> Self {
        match e {
            compare::CompareError::BadSetting {
                field,
                value,
                reason,
            } => {
                let index = field.index.map_or(String::new(), |i| format!("[{i}]"));
                let key = config_key(field.setting);
                CliError::BadInput(format!("{key}{index} = {value}: {reason}"))
            }
            other => CliError::BadInput(other.to_string()),
        }
    }

    /// The message, without the variant (the binary prints the `Display` form).
    pub fn message(&self) -> &str {
        match self {
            CliError::BadInput(m) | CliError::Failure(m) => m,
        }
    }
}

/// The config key a setting of `compare` comes from (`dim` is Figure 1's own parameter).
pub fn config_key(setting: compare::Setting) -> &'static str {
    use compare::Setting;
    match setting {
        Setting::Etas => "run.etas",
        Setting::Horizon => "run.horizon",
        Setting::Paths => "run.paths",
        Setting::Substeps => "sde.substeps",
        Setting::MaxSubsteps => "sde.max_substeps",
        Setting::Models => "sde.models",
        Setting::Observables => "run.observables",
        Setting::X0 => "loss.x0",
        Setting::DivergeAbove => "run.diverge_above",
        Setting::ExactReference => "run.exact_reference",
        Setting::Scheme => "sde.scheme",
        Setting::CommonRandomNumbers => "run.common_random_numbers",
        Setting::X0Scales => "run.x0_scales",
        Setting::Quantiles => "run.quantiles",
        Setting::Dim => "dim",
        // Library-only settings (the theorem checks), not config keys.
        Setting::Epsilon => "epsilon",
        Setting::Kappas => "kappas",
        Setting::Checkpoints => "checkpoints",
        Setting::SvagL => "sde.svag_l",
        Setting::TargetRelCi => "run.target_rel_ci",
        Setting::MaxPaths => "run.max_paths",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use compare::{CompareError, Setting};

    /// Every setting maps to the config key of the same name (in its section), and the message
    /// is `key[index] = value: reason`, as the config's own errors are.
    #[test]
    fn compare_errors_are_printed_with_config_keys() {
        for s in Setting::ALL {
            let key = config_key(s);
            assert_eq!(key.rsplit('.').next(), Some(s.name()), "{s:?}");
        }
        let e = CliError::from_compare(CompareError::bad(
            Setting::Etas.at(2),
            -0.1,
            "must be positive and finite",
        ));
        assert_eq!(
            e,
            CliError::BadInput("run.etas[2] = -0.1: must be positive and finite".into())
        );
        let e = CliError::from_compare(CompareError::bad(
            Setting::Substeps,
            0,
            "must be at least 1",
        ));
        assert_eq!(e.message(), "sde.substeps = 0: must be at least 1");
        assert_eq!(e.exit_code(), CliError::EXIT_BAD_INPUT);
    }
}
