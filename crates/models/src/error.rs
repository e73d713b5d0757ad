//! Errors of the model constructors, and the small validators they share.
//!
//! Every constructor in this crate validates its input and returns `Result<Self, ModelError>`.
//! The error names the offending parameter and its value, so a configuration layer can point
//! the user at the exact key. Hot-path methods (gradients, sampling, sign means) never return
//! errors: their inputs were validated when the model was built.

use std::fmt::Display;

/// Why a model could not be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ModelError {
    /// A parameter has a value outside its domain (non-finite, wrong sign, out of range...).
    #[error("invalid parameter `{name}` = {value}: {reason}")]
    InvalidParameter {
        /// Parameter name, e.g. `nu` or `scale[3]`.
        name: String,
        /// The rejected value, formatted.
        value: String,
        /// What the value should have been.
        reason: String,
    },
    /// A vector or matrix parameter has the wrong length.
    #[error("dimension mismatch for `{name}`: expected {expected}, got {got}")]
    DimensionMismatch {
        /// Parameter name.
        name: String,
        /// Expected length.
        expected: usize,
        /// Actual length.
        got: usize,
    },
}

impl ModelError {
    /// An [`ModelError::InvalidParameter`] for `name = value`, rejected because of `reason`.
    pub fn invalid(
        name: impl Into<String>,
        value: impl Display,
        reason: impl Into<String>,
    ) -> ModelError {
        ModelError::InvalidParameter {
            name: name.into(),
            value: value.to_string(),
            reason: reason.into(),
        }
    }

    /// The parameter's name.
    pub fn name(&self) -> &str {
        match self {
            ModelError::InvalidParameter { name, .. }
            | ModelError::DimensionMismatch { name, .. } => name,
        }
    }

    /// The same error with the parameter `from` (or an entry `from[..]` of it) called `to`: a
    /// spec whose key differs from the constructor's argument (`diag` for `lambda`) reports the
    /// key.
    pub fn renamed(mut self, from: &str, to: &str) -> ModelError {
        if let ModelError::InvalidParameter { reason, .. } = &mut self {
            if !from.is_empty() {
                *reason = reason.replace(&format!("{from}["), &format!("{to}["));
            }
        }
        let name = match &mut self {
            ModelError::InvalidParameter { name, .. }
            | ModelError::DimensionMismatch { name, .. } => name,
        };
        if let Some(rest) = name.strip_prefix(from) {
            if from.is_empty() {
                *name = format!("{to}{rest}");
            } else if rest.is_empty() || rest.starts_with('[') {
                *name = format!("{to}{rest}");
            }
        }
        self
    }

    /// A [`ModelError::DimensionMismatch`] for `name`.
    pub fn dimension(name: impl Into<String>, expected: usize, got: usize) -> ModelError {
        ModelError::DimensionMismatch {
            name: name.into(),
            expected,
            got,
        }
    }
}

/// `v`, if it is finite.
pub fn require_finite(name: &str, v: f64) -> Result<f64, ModelError> {
    if v.is_finite() {
        Ok(v)
    } else {
        Err(ModelError::invalid(name, v, "must be finite"))
    }
}

/// `v`, if it is finite and `> 0`.
pub fn require_positive(name: &str, v: f64) -> Result<f64, ModelError> {
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err(ModelError::invalid(name, v, "must be finite and > 0"))
    }
}

/// `v`, if it is finite and `>= 0`.
pub fn require_nonnegative(name: &str, v: f64) -> Result<f64, ModelError> {
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err(ModelError::invalid(name, v, "must be finite and >= 0"))
    }
}

/// Checks that `got == expected`.
pub fn require_len(name: &str, expected: usize, got: usize) -> Result<(), ModelError> {
    if expected == got {
        Ok(())
    } else {
        Err(ModelError::dimension(name, expected, got))
    }
}

/// Checks that a vector parameter is non-empty (a model needs dimension `d >= 1`).
pub fn require_nonempty(name: &str, len: usize) -> Result<(), ModelError> {
    if len == 0 {
        Err(ModelError::invalid(
            name,
            "[]",
            "must have at least one entry (dimension d >= 1)",
        ))
    } else {
        Ok(())
    }
}

/// Applies a scalar validator to every entry, naming the entry `name[j]` on failure.
pub fn require_each(
    name: &str,
    values: &[f64],
    check: fn(&str, f64) -> Result<f64, ModelError>,
) -> Result<(), ModelError> {
    for (j, &v) in values.iter().enumerate() {
        check(&format!("{name}[{j}]"), v)?;
    }
    Ok(())
}
