//! Errors of a comparison: bad settings (naming the setting and value) or a failed model.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum CompareError {
    /// A setting is out of its domain; `key` is the config key it comes from.
    #[error("{key} = {value}: {reason}")]
    BadSetting {
        key: String,
        value: String,
        reason: String,
    },
    #[error(transparent)]
    Model(#[from] models::ModelError),
    #[error(transparent)]
    Sde(#[from] sde_core::SdeError),
}

impl CompareError {
    pub fn bad(key: impl Into<String>, value: impl ToString, reason: impl Into<String>) -> Self {
        CompareError::BadSetting {
            key: key.into(),
            value: value.to_string(),
            reason: reason.into(),
        }
    }
}
