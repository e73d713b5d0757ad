//! Choosing a scheme and an increment source at run time while keeping the hot loop
//! monomorphic: a visitor receives the concrete types. The schemes come from sde-core's registry
//! ([`SchemeKind::visit`]), so a new scheme needs no line here.

use sde_core::{
    Gaussian, IncrementKind, Increments, Scheme, SchemeKind, SchemeVisitor, ThreePoint, TwoPoint,
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
    struct WithIncrements<V> {
        increments: IncrementKind,
        v: V,
    }
    impl<V: SolverVisitor> SchemeVisitor for WithIncrements<V> {
        type Output = V::Output;
        fn visit<Sch: Scheme>(self, s: Sch) -> V::Output {
            match self.increments {
                IncrementKind::Gaussian => self.v.visit(s, Gaussian),
                IncrementKind::TwoPoint => self.v.visit(s, TwoPoint),
                IncrementKind::ThreePoint => self.v.visit(s, ThreePoint),
            }
        }
    }
    scheme.visit(WithIncrements { increments, v })
}
