//! The schemes, one file each.

mod adaptive_em;
mod euler_maruyama;
mod milstein;
mod weak2;

pub use adaptive_em::{AdaptiveEm, AdaptiveEmWorkspace};
pub use euler_maruyama::{EmWorkspace, EulerMaruyama};
pub use milstein::{Milstein, MilsteinCorrection, MilsteinWorkspace};
pub use weak2::{PlatenWeak2, Weak2Workspace};
