//! placeholder
pub mod compress;
pub mod error;
pub mod loss;
pub mod noise;
pub mod schedule;
pub mod special;

pub use compress::{
    BernoulliSparsifier, Compressor, CompressorKind, DiagMinusRankOne, Identity, Qsgd, RandK,
};
pub use error::ModelError;
pub use loss::{
    DiagonalQuadratic, LeastSquares, Loss, LossKind, MixedQuadraticQuartic, Quadratic, Quartic,
    Smoothness,
};
pub use noise::{GaussianNoise, GradientNoise, NoiseModel, StudentTNoise};
pub use schedule::{NormalizationInputs, Schedule};
// optimizer and sde modules are added by another engineer
