//! The schemes, one file each, and their registry: adding a scheme is its file plus a `mod` and a
//! registry line here.

mod adaptive_em;
mod euler_maruyama;
mod milstein;
mod weak2;

pub use adaptive_em::{AdaptiveEm, AdaptiveEmWorkspace};
pub use euler_maruyama::EulerMaruyama;
pub use milstein::{Milstein, MilsteinCorrection, MilsteinWorkspace};
pub use weak2::{PlatenWeak2, Weak2Workspace};

kind_registry! {
    /// The schemes, for choosing at run time (configuration files).
    SchemeKind visited by crate::scheme::SchemeVisitor {
        /// Euler–Maruyama: strong order 1/2, weak order 1.
        EulerMaruyama = "euler_maruyama" => EulerMaruyama;
        /// Milstein (derivative-free correction unless one is supplied): strong order 1.
        Milstein = "milstein" => Milstein::default();
        /// Platen's weak-order-2 scheme.
        Weak2 = "weak2" => PlatenWeak2;
        /// Euler–Maruyama on a state-adapted dyadic mesh, for superlinearly growing coefficients.
        AdaptiveEm = "adaptive_em" => AdaptiveEm::default();
    }
}
