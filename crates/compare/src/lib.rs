//! # compare
//!
//! How far is an SDE model from the discrete optimizer it claims to describe, and how does that
//! distance shrink with the learning rate? This crate answers with error bars: weak errors with
//! 95% intervals and fitted orders ([`study`]), common random numbers where the noise allows,
//! closed-form references where they exist ([`exact`]), trajectory bands ([`trajectory`]) and
//! stability sweeps ([`stability`]). It draws nothing: the figures are the `sdelab` crate's.

pub mod error;
pub mod exact;
pub mod figure1;
pub mod inference;
pub mod ladder;
pub mod observable;
pub mod sim;
pub mod solver_choice;
pub mod stability;
pub mod streams;
pub mod study;
pub mod svag;
pub mod theorems;
pub mod trajectory;

pub use error::{CompareError, Field, Setting};
pub use observable::Observable;
pub use study::{weak_error_study, StudySettings, WeakErrorCurve, WeakErrorPoint};
