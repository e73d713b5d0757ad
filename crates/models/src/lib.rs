//! # models
//!
//! The reference paper's optimizers and their SDE models (MATH.md): losses with their (L0, L1)
//! constants ([`loss`]), per-agent gradient noise ([`noise`]), compressors ([`compress`]),
//! learning-rate schedules ([`schedule`]), special functions for the Student-t sign drift
//! ([`special`]), the DSGD / DCSGD / DSignSGD update laws ([`method`]), the discrete process
//! ([`optimizer`]) and the SDE models (A), (B), (C) built generically from any method ([`sde`]).
//!
//! A new optimizer is one `impl` of [`method::GradientMethod`]; see
//! `examples/clipped_sgd.rs`.
pub mod compress;
pub mod coupling;
pub mod data;
pub mod error;
pub mod loss;
pub mod method;
pub mod minibatch;
pub mod mlp;
pub mod noise;
pub mod optimizer;
pub mod order;
pub mod schedule;
pub mod sde;
pub mod special;

pub use compress::{
    BernoulliSparsifier, Compressor, CompressorKind, DiagMinusRankOne, Identity, Qsgd, RandK,
};
pub use error::ModelError;
pub use loss::{
    DiagonalQuadratic, LeastSquares, Loss, LossKind, MixedQuadraticQuartic, Quadratic, Quartic,
    Smoothness,
};
pub use method::{Agent, Dcsgd, Dsgd, DsignSgd, GradientMethod, Method};
pub use noise::{GaussianNoise, GradientNoise, NoiseModel, StudentTNoise};
pub use optimizer::{Optimizer, StepWorkspace};
pub use order::{expected_weak_order, ExpectedOrder};
pub use schedule::{NormalizationInputs, Schedule};
pub use sde::{ModelSde, SdeModel};
