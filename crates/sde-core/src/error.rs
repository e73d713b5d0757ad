//! Errors: every message names the offending quantity and its value.

use thiserror::Error;

/// What can go wrong when a problem, scheme, grid or ensemble is put together.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum SdeError {
    /// A buffer or vector has the wrong length.
    #[error("dimension mismatch for `{what}`: expected {expected}, got {got}")]
    DimensionMismatch {
        what: &'static str,
        expected: usize,
        got: usize,
    },
    /// A numeric parameter is out of its domain.
    #[error("invalid `{name}` = {value}: {reason}")]
    InvalidParameter {
        name: &'static str,
        value: String,
        reason: &'static str,
    },
    /// The scheme cannot integrate this noise shape (or needs something the problem lacks).
    #[error("scheme `{scheme}` does not support {noise}: {reason}")]
    UnsupportedNoise {
        scheme: &'static str,
        noise: String,
        reason: &'static str,
    },
    /// The increments are too coarse for the scheme's weak order.
    #[error("scheme `{scheme}` (weak order {weak_order}) cannot use {increments} increments: they match moments only up to weak order {increment_order}")]
    IncrementsTooCoarse {
        scheme: &'static str,
        weak_order: f64,
        increments: &'static str,
        increment_order: f64,
    },
}

impl SdeError {
    pub(crate) fn invalid(name: &'static str, value: impl ToString, reason: &'static str) -> Self {
        SdeError::InvalidParameter {
            name,
            value: value.to_string(),
            reason,
        }
    }

    pub(crate) fn check_len(what: &'static str, expected: usize, got: usize) -> Result<(), Self> {
        if expected == got {
            Ok(())
        } else {
            Err(SdeError::DimensionMismatch {
                what,
                expected,
                got,
            })
        }
    }
}
