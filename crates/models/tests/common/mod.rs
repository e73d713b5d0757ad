//! Builders shared by the models integration tests: agents and their gradient noise.
// Each test file uses a subset.
#![allow(dead_code)]

use models::compress::{CompressorKind, Identity};
use models::data::DatasetName;
use models::method::Agent;
use models::mlp::{Activation, MlpSpec};
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

/// A small MLP on iris (one hidden layer of 5 tanh units, `l2 = 0.01`, a 20% test split) whose
/// split and initialisation come from `seed`.
pub fn iris_mlp(seed: u64) -> MlpSpec {
    MlpSpec {
        dataset: DatasetName::Iris,
        hidden: vec![5],
        activation: Activation::Tanh,
        objective: None,
        l2: 0.01,
        test_fraction: 0.2,
        seed,
    }
}

/// `sign(v)` with `sign(0) = 0` (`f64::signum` gives `±1` at `±0`), the reference the methods'
/// signs are checked against.
pub fn sign(v: f64) -> f64 {
    if v == 0.0 {
        0.0
    } else {
        v.signum()
    }
}
