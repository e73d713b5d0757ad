//! Errors of a comparison: bad settings (naming the field of the settings and the value) or a
//! failed model. Fields are named as this crate's settings name them; a front end that reads them
//! from somewhere else (the `sdelab` config) maps each [`Setting`] to its own key.

use serde::Serialize;
use std::fmt;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum CompareError {
    /// A setting is out of its domain.
    #[error("{field} = {value}: {reason}")]
    BadSetting {
        field: Field,
        value: String,
        reason: String,
    },
    #[error(transparent)]
    Model(#[from] models::ModelError),
    #[error(transparent)]
    Sde(#[from] sde_core::SdeError),
}

impl CompareError {
    pub fn bad(field: impl Into<Field>, value: impl ToString, reason: impl Into<String>) -> Self {
        CompareError::BadSetting {
            field: field.into(),
            value: value.to_string(),
            reason: reason.into(),
        }
    }
}

/// A setting of the study, trajectory, stability or Figure 1 settings, named in errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Setting {
    Etas,
    Horizon,
    Paths,
    Substeps,
    MaxSubsteps,
    Models,
    Observables,
    X0,
    DivergeAbove,
    ExactReference,
    Scheme,
    CommonRandomNumbers,
    X0Scales,
    Quantiles,
    /// The dimension of the Figure 1 problem (and of the theorem checks).
    Dim,
    /// The theorem checks' settings (`theorems`): tolerance, multipliers, checkpoints.
    Epsilon,
    Kappas,
    Checkpoints,
    /// SVAG's multiplier `l` (`svag`).
    SvagL,
    /// The relative interval adaptive path counts aim for (`run.target_rel_ci`).
    TargetRelCi,
    /// The cap on a rerun point's paths (`run.max_paths`).
    MaxPaths,
}

impl Setting {
    pub const ALL: [Setting; 21] = [
        Setting::Etas,
        Setting::Horizon,
        Setting::Paths,
        Setting::Substeps,
        Setting::MaxSubsteps,
        Setting::Models,
        Setting::Observables,
        Setting::X0,
        Setting::DivergeAbove,
        Setting::ExactReference,
        Setting::Scheme,
        Setting::CommonRandomNumbers,
        Setting::X0Scales,
        Setting::Quantiles,
        Setting::Dim,
        Setting::Epsilon,
        Setting::Kappas,
        Setting::Checkpoints,
        Setting::SvagL,
        Setting::TargetRelCi,
        Setting::MaxPaths,
    ];

    /// The field's name in the settings structs.
    pub fn name(&self) -> &'static str {
        match self {
            Setting::Etas => "etas",
            Setting::Horizon => "horizon",
            Setting::Paths => "paths",
            Setting::Substeps => "substeps",
            Setting::MaxSubsteps => "max_substeps",
            Setting::Models => "models",
            Setting::Observables => "observables",
            Setting::X0 => "x0",
            Setting::DivergeAbove => "diverge_above",
            Setting::ExactReference => "exact_reference",
            Setting::Scheme => "scheme",
            Setting::CommonRandomNumbers => "common_random_numbers",
            Setting::X0Scales => "x0_scales",
            Setting::Quantiles => "quantiles",
            Setting::Dim => "dim",
            Setting::Epsilon => "epsilon",
            Setting::Kappas => "kappas",
            Setting::Checkpoints => "checkpoints",
            Setting::SvagL => "svag_l",
            Setting::TargetRelCi => "target_rel_ci",
            Setting::MaxPaths => "max_paths",
        }
    }

    /// Element `index` of a list setting.
    pub fn at(self, index: usize) -> Field {
        Field {
            setting: self,
            index: Some(index),
        }
    }
}

/// A setting, or one element of a list setting (`etas[2]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Field {
    pub setting: Setting,
    pub index: Option<usize>,
}

impl From<Setting> for Field {
    fn from(setting: Setting) -> Self {
        Field {
            setting,
            index: None,
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.setting.name())?;
        match self.index {
            Some(i) => write!(f, "[{i}]"),
            None => Ok(()),
        }
    }
}
