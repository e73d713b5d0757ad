//! Builders shared by the models integration tests: agents and their gradient noise.
// Each test file uses a subset.
#![allow(dead_code)]

use models::compress::{CompressorKind, Identity};
use models::method::Agent;
use models::noise::{GaussianNoise, NoiseModel, StudentTNoise};

/// Gaussian noise of dimension `scale.len()`.
pub fn gaussian(scale: &[f64], sigma0: f64, sigma1: f64) -> NoiseModel {
    GaussianNoise::new(scale.len(), scale.to_vec(), sigma0, sigma1)
        .unwrap()
        .into()
}

/// Student-t noise of dimension `scale.len()`.
pub fn student(nu: f64, scale: &[f64], sigma0: f64, sigma1: f64) -> NoiseModel {
    StudentTNoise::new(scale.len(), nu, scale.to_vec(), sigma0, sigma1)
        .unwrap()
        .into()
}

/// An agent with its compressor.
pub fn agent(noise: NoiseModel, compressor: impl Into<CompressorKind>) -> Agent {
    Agent {
        noise,
        compressor: compressor.into(),
    }
}

/// An agent sending uncompressed messages (DSGD, DSignSGD).
pub fn uncompressed(noise: NoiseModel) -> Agent {
    agent(noise, Identity)
}
