//! The schemes, one file each.

mod euler_maruyama;
mod milstein;
mod weak2;

pub use euler_maruyama::{EmWorkspace, EulerMaruyama};
pub use milstein::{Milstein, MilsteinCorrection, MilsteinWorkspace};
pub use weak2::{PlatenWeak2, Weak2Workspace};
