//! sde-core: placeholder while the engine is written.
pub mod rng;
pub use rng::{derive_key, derive_stream, PathRng};
