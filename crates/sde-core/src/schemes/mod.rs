//! The schemes, one file each.

mod euler_maruyama;

pub use euler_maruyama::{EmWorkspace, EulerMaruyama};
