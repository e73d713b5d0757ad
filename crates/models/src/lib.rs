//! # models
//!
//! The reference paper's optimizers and their SDE models (MATH.md): losses with their (L0, L1)
//! constants ([`loss`]), per-agent gradient noise ([`noise`]), compressors ([`compress`]),
//! learning-rate schedules ([`schedule`]), special functions for the Student-t sign drift
//! ([`special`]), the DSGD / DCSGD / DSignSGD update laws ([`method`]), the discrete process
//! ([`optimizer`]) and the SDE models (A), (B), (C) built generically from any method ([`sde`]).
//!
//! A new optimizer is one `impl` of [`method::GradientMethod`]; see
//! `examples/clipped_sgd.rs`. Every kind a configuration file can name (loss, noise, optimizer,
//! compressor, schedule) is defined once, next to its implementation, as a spec registered in its
//! family's list ([`kind`], `docs/ADDING_A_KIND.md`).
pub mod compress;
pub mod coupling;
pub mod data;
pub mod error;
pub mod kind;
pub mod loss;
pub mod method;
pub mod minibatch;
pub mod mlp;
pub mod network_spec;
pub mod noise;
pub mod optimizer;
pub mod order;
pub mod schedule;
pub mod sde;
pub mod special;

pub use compress::{
    BernoulliSparsifier, Compressor, CompressorKind, CompressorSpec, DiagMinusRankOne, Identity,
    Qsgd, RandK,
};
pub use error::ModelError;
pub use kind::{KeyDoc, KindInfo, KindSpec};
pub use loss::{
    DiagonalQuadratic, LeastSquares, Loss, LossKind, LossSpec, MixedQuadraticQuartic, Quadratic,
    Quartic, Smoothness,
};
pub use method::{
    Agent, AgentNoises, Dcsgd, Dsgd, DsignSgd, GradientMethod, Method, OptimizerSpec,
};
pub use noise::{GaussianNoise, GradientNoise, NoiseModel, NoiseSpec, StudentTNoise};
pub use optimizer::{Optimizer, StepWorkspace};
pub use order::{expected_weak_order, ExpectedOrder};
pub use schedule::{LearningRate, NormalizationInputs, Schedule, ScheduleSpec};
pub use sde::{ModelSde, SdeModel};
