//! Choosing a scheme and an increment source at run time while keeping the hot loop
//! monomorphic: a visitor receives the concrete types.

use sde_core::{
    AdaptiveEm, EulerMaruyama, Gaussian, IncrementKind, Increments, Milstein, PlatenWeak2, Scheme,
    SchemeKind, ThreePoint, TwoPoint,
};

/// Code generic over the scheme and the increments, run by [`dispatch`].
pub trait SolverVisitor {
    type Output;
    fn visit<Sch: Scheme, I: Increments>(self, scheme: Sch, increments: I) -> Self::Output;
}

/// Calls `v.visit` with the concrete scheme and increment types named by the kinds.
pub fn dispatch<V: SolverVisitor>(
    scheme: SchemeKind,
    increments: IncrementKind,
    v: V,
) -> V::Output {
    fn inc<Sch: Scheme, V: SolverVisitor>(s: Sch, increments: IncrementKind, v: V) -> V::Output {
        match increments {
            IncrementKind::Gaussian => v.visit(s, Gaussian),
            IncrementKind::TwoPoint => v.visit(s, TwoPoint),
            IncrementKind::ThreePoint => v.visit(s, ThreePoint),
        }
    }
    match scheme {
        SchemeKind::EulerMaruyama => inc(EulerMaruyama, increments, v),
        SchemeKind::Milstein => inc(Milstein::default(), increments, v),
        SchemeKind::Weak2 => inc(PlatenWeak2, increments, v),
        SchemeKind::AdaptiveEm => inc(AdaptiveEm::default(), increments, v),
    }
}
