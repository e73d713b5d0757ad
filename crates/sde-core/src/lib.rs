//! # sde-core
//!
//! Fixed-step integrators for Itô SDEs `dX = a(t, X) dt + b(t, X) dW`, after diffrax's five
//! orthogonal ideas:
//!
//! - **problem** ([`Sde`], [`SdeFn`]): drift and diffusion writing into caller buffers, with a
//!   [`NoiseShape`] (scalar, diagonal, general `d × m`, additive);
//! - **scheme** ([`Scheme`]): one `step`, declared strong and weak orders, and a check that
//!   rejects noise it cannot integrate ([`EulerMaruyama`], [`Milstein`], [`PlatenWeak2`]);
//! - **increments** ([`Increments`]): exact Gaussian, two-point or three-point, from a per-path
//!   stream, replayable on a coarser grid ([`Refined`]);
//! - **grid** ([`Grid`]): fixed step, save points on the grid;
//! - **ensemble** ([`Ensemble`]): seeded parallel paths with streaming statistics that are the
//!   same bits for any number of threads, with diverged paths counted and kept out.
//!
//! ```
//! use sde_core::*;
//! // Geometric Brownian motion with Milstein: E X_1 = e^{0.05}.
//! let gbm = SdeFn::new(1, NoiseShape::Scalar,
//!     |_t, x: &[f64], a: &mut [f64]| a[0] = 0.05 * x[0],
//!     |_t, x: &[f64], b: &mut [f64]| b[0] = 0.2 * x[0]).unwrap();
//! let solver = Solver::new(&gbm, Milstein::default(), Gaussian).unwrap();
//! let grid = Grid::new(0.0, 1.0, 100).unwrap().save_final();
//! let stats = Ensemble::new(10_000, 7).unwrap().run(&SdePaths::new(solver, grid, &[1.0]).unwrap());
//! let s = stats.summary(1, 0);
//! assert!((s.mean - 0.05f64.exp()).abs() < 4.0 * s.std_err);
//! ```

pub mod distribute;
#[macro_use]
mod registry;

pub mod ensemble;
pub mod error;
pub mod increments;
pub mod noise;
pub mod problem;
#[cfg(feature = "testing")]
pub mod problems;
pub mod rng;
pub mod scheme;
pub mod schemes;
pub mod solver;
pub mod stats;
#[cfg(feature = "testing")]
pub mod testing;

pub use ensemble::{
    Divergence, Ensemble, EnsembleStats, FnObserver, Observer, PathInput, PathSimulation,
    PathValues, SdePaths, StateObserver,
};
pub use error::SdeError;
pub use increments::{
    Gaussian, IncrementKind, IncrementVisitor, Increments, Refined, ThreePoint, TwoPoint,
};
pub use noise::NoiseShape;
pub use problem::{Sde, SdeFn};
pub use rng::{derive_key, derive_stream, PathRng};
pub use scheme::{Scheme, SchemeInfo, SchemeVisitor, Step, StepBuffers};
pub use schemes::*;
pub use solver::{Grid, Solver, SolverWorkspace};
pub use stats::{fit_line, fit_order, LineFit, Summary, Welford};
