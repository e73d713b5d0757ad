//! Schemes: one step of a one-step method, with declared orders and supported noise shapes.
//!
//! A scheme is a pure function of `(problem, t, h, x, ΔW)` plus a workspace it owns; adding one
//! is one file under `schemes/` implementing [`Scheme`]. A scheme rejects, at construction of a
//! [`crate::Solver`], any problem whose noise it cannot integrate to its declared order, so a
//! mismatch is an error, never a wrong number.

use crate::error::SdeError;
use crate::noise::NoiseShape;
use crate::problem::Sde;
use crate::rng::PathRng;

/// One step of a fixed-step scheme for Itô SDEs.
pub trait Scheme: Sync + Send + Clone {
    /// Per-path buffers, made once per path chunk and reused for every step.
    type Workspace: Send;
    /// Short name (used in errors and results).
    fn name(&self) -> &'static str;
    /// Strong (pathwise, mean-square) order with exact Gaussian increments; `None` when the
    /// scheme is not meant as a strong approximation.
    fn strong_order(&self) -> Option<f64>;
    /// Weak order (error of expectations of smooth functionals).
    fn weak_order(&self) -> f64;
    /// Whether the scheme can integrate this problem to its declared orders.
    fn check<S: Sde + ?Sized>(&self, sde: &S) -> Result<(), SdeError>;
    /// Buffers for one path of `sde`.
    fn workspace<S: Sde + ?Sized>(&self, sde: &S) -> Self::Workspace;
    /// Advances `x` from `t` to `t + h` with Brownian increment `dw` (length `m`). `rng` is the
    /// path's stream, for schemes that need auxiliary random variables beyond `dw`.
    #[allow(clippy::too_many_arguments)]
    fn step<S: Sde + ?Sized>(
        &self,
        sde: &S,
        t: f64,
        h: f64,
        x: &mut [f64],
        dw: &[f64],
        rng: &mut PathRng,
        ws: &mut Self::Workspace,
    );
}

/// Code generic over the scheme, given the concrete scheme chosen at run time by
/// [`SchemeKind::visit`] (so the hot loop stays monomorphic).
pub trait SchemeVisitor {
    type Output;
    fn visit<Sch: Scheme>(self, scheme: Sch) -> Self::Output;
}

/// Writes [`SchemeKind`] (its variants, names, `ALL` and `visit`) from the one list of schemes in
/// `schemes/mod.rs`: a new scheme is its file plus one line there.
macro_rules! scheme_registry {
    ($($(#[$doc:meta])* $variant:ident = $name:literal => $make:expr;)+) => {
        /// The schemes, for choosing at run time (configuration files).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
        pub enum SchemeKind {
            $($(#[$doc])* #[serde(rename = $name)] $variant,)+
        }

        impl SchemeKind {
            pub const ALL: &'static [SchemeKind] = &[$(SchemeKind::$variant,)+];

            /// The name used in configuration files and results (the serialized form).
            pub fn name(&self) -> &'static str {
                match self {
                    $(SchemeKind::$variant => $name,)+
                }
            }

            /// Calls `v.visit` with the concrete scheme (as configured by default).
            pub fn visit<V: $crate::scheme::SchemeVisitor>(self, v: V) -> V::Output {
                match self {
                    $(SchemeKind::$variant => v.visit($make),)+
                }
            }
        }
    };
}
pub(crate) use scheme_registry;

pub(crate) fn unsupported(
    scheme: &'static str,
    noise: NoiseShape,
    reason: &'static str,
) -> SdeError {
    SdeError::UnsupportedNoise {
        scheme,
        noise: noise.to_string(),
        reason,
    }
}
